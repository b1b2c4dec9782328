-- Steps: add, alter (NULL leaves a setting unchanged), drop, move.
-- An action is 'next', 'succeed' (quit reporting success), 'fail' (quit
-- reporting failure) or the name of another step of the job (go to it).

-- Resolves an action argument to (action, target step id).
CREATE FUNCTION pgautomator._step_action(p_job_id bigint, p_arg text, p_action text,
                                         OUT action text, OUT target bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_action IN ('next', 'succeed', 'fail') THEN
        action := p_action;
        RETURN;
    END IF;
    SELECT id INTO target FROM pgautomator.step WHERE job_id = p_job_id AND name = p_action;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'invalid % "%"', p_arg, p_action
            USING ERRCODE = '22023',
                  HINT = 'Use next, succeed, fail, or the name of an existing step of the same job.';
    END IF;
    action := 'goto';
END
$$;
COMMENT ON FUNCTION pgautomator._step_action(bigint, text, text) IS 'Resolves an on_success/on_failure argument to an action and go-to target.';

-- Checks a step's definition after it has been merged with the stored one.
-- Whether a connection string holds a password: the key=value form, URI
-- query parameters (percent-encoded too: libpq decodes them), user:password@
-- in a URI, and ODBC's PWD= in a DB-API argument (dbapi:MODULE:ARGUMENT).
CREATE FUNCTION pgautomator._has_password(p_connection text)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_plain text := p_connection;
    v_hex   text;
BEGIN
    -- (ASCII bytes only: the keys are ASCII, and chr() of a byte above 127
    -- fails in some server encodings)
    FOR v_hex IN SELECT DISTINCT m[1] FROM regexp_matches(p_connection, '%([0-7][0-9A-Fa-f])', 'g') AS m
                  WHERE m[1] <> '00' LOOP
        v_plain := replace(v_plain, '%' || v_hex, chr(('x' || v_hex)::bit(8)::integer));
    END LOOP;
    RETURN v_plain ~* '(^|[\s?&;:])(ssl)?(password|pwd)\s*=|://[^/@]*:[^/@]*@';
END
$$;
COMMENT ON FUNCTION pgautomator._has_password(text) IS 'Whether a step''s connection string holds a password (key=value, URI query or user:password@, percent-encoded or not, or ODBC PWD=).';

CREATE FUNCTION pgautomator._check_step(p_step pgautomator.step)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgautomator._check_name('step', p_step.name);
    IF p_step.name IN ('next', 'succeed', 'fail') THEN
        RAISE EXCEPTION 'step name "%" is reserved for an action', p_step.name USING ERRCODE = '22023';
    END IF;
    PERFORM pgautomator._check_choice('kind', p_step.kind, ARRAY['sql', 'shell', 'remote_sql']);
    IF p_step.code IS NULL OR p_step.code !~ '\S' THEN
        RAISE EXCEPTION 'code of step "%" must not be empty', p_step.name USING ERRCODE = '22023';
    END IF;
    PERFORM pgautomator._check_choice('transaction', p_step.transaction, ARRAY['autocommit', 'single']);
    PERFORM pgautomator._check_choice('shell', p_step.shell, ARRAY['sh', 'bash', 'cmd', 'powershell']);
    PERFORM pgautomator._check_range('retries', p_step.retries, 0, 1000);
    PERFORM pgautomator._check_interval('retry_interval', p_step.retry_interval, true);
    PERFORM pgautomator._check_interval('timeout', p_step.timeout);
    PERFORM pgautomator._check_choice('notify_on', p_step.notify_on, ARRAY['never', 'failure', 'success', 'always']);
    IF p_step.database IS NOT NULL THEN
        IF p_step.kind <> 'sql' THEN
            RAISE EXCEPTION 'database applies to sql steps only; % steps use connection', p_step.kind
                USING ERRCODE = '22023';
        END IF;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_database WHERE datname = p_step.database) THEN
            RAISE EXCEPTION 'database "%" does not exist', p_step.database USING ERRCODE = '3D000';
        END IF;
    END IF;
    IF p_step.kind = 'remote_sql' AND (p_step.connection IS NULL OR p_step.connection !~ '\S') THEN
        RAISE EXCEPTION 'remote_sql step "%" needs a connection', p_step.name
            USING ERRCODE = '22023', HINT = 'A libpq connection string, e.g. ''host=db2 dbname=app user=etl''.';
    END IF;
    -- key=value form, URI query parameters (also percent-encoded, which
    -- libpq decodes), user:password@ in a URI, and ODBC's PWD= in a DB-API
    -- argument.
    IF pgautomator._has_password(p_step.connection) THEN
        RAISE EXCEPTION 'connection must not contain a password'
            USING ERRCODE = '22023',
                  HINT = 'Put it in the agent''s ~/.pgpass or a service file: connections are readable by operators.';
    END IF;
    PERFORM pgautomator._check_list('success_codes', p_step.success_codes);
    IF p_step.success_codes IS NULL OR cardinality(p_step.success_codes) = 0
       OR array_position(p_step.success_codes, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'success_codes must list at least one exit code' USING ERRCODE = '22023';
    END IF;
END
$$;
COMMENT ON FUNCTION pgautomator._check_step(pgautomator.step) IS 'Validates a complete step definition.';

-- A report under way reads the job's steps to decide what follows, over
-- several statements.  So the step paths lock the job's active runs first,
-- in the order of every path (job, run, step run, step): a step change
-- waits for such a report, and a report never sees half of one.
CREATE FUNCTION pgautomator._lock_active_runs(p_job_id bigint)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM FROM pgautomator.run r
      WHERE r.job_id = p_job_id AND r.state IN ('queued', 'running')
      ORDER BY r.id
        FOR KEY SHARE;
END
$$;
COMMENT ON FUNCTION pgautomator._lock_active_runs(bigint) IS 'Key-shares the active runs of a job, which step changes do before locking steps so that they wait for a report under way, which reads the steps.';

CREATE FUNCTION pgautomator.add_step(
    job             bigint,
    name            text,
    code            text,
    kind            text DEFAULT 'sql',
    database        text DEFAULT NULL,
    connection      text DEFAULT NULL,
    on_success      text DEFAULT 'next',
    on_failure      text DEFAULT 'fail',
    retries         integer DEFAULT 0,
    retry_interval  interval DEFAULT '1 minute',
    timeout         interval DEFAULT NULL,
    transaction     text DEFAULT 'autocommit',
    enabled         boolean DEFAULT true,
    description     text DEFAULT '',
    shell           text DEFAULT NULL,
    success_codes   integer[] DEFAULT '{0}',
    at_position     integer DEFAULT NULL,
    notify_on       text DEFAULT 'never',
    notify_to       text[] DEFAULT '{}',
    notify_subject  text DEFAULT NULL,
    notify_body     text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job  pgautomator.job := pgautomator._job_for(add_step.job, NULL, 'program');
    v_step pgautomator.step;
    v_last integer;
    v_ok   record;
    v_fail record;
BEGIN
    PERFORM pgautomator._lock_active_runs(v_job.id);
    SELECT coalesce(max(s.position), 0) INTO v_last FROM pgautomator.step s WHERE s.job_id = v_job.id;
    PERFORM pgautomator._check_range('position', add_step.at_position, 1, v_last + 1);
    v_step.job_id := v_job.id;
    v_step.name := add_step.name;
    v_step.code := add_step.code;
    v_step.kind := coalesce(add_step.kind, 'sql');
    v_step.database := add_step.database;
    v_step.connection := add_step.connection;
    v_step.shell := add_step.shell;
    v_step.success_codes := coalesce(add_step.success_codes, '{0}');
    v_step.retries := coalesce(add_step.retries, 0);
    v_step.retry_interval := coalesce(add_step.retry_interval, interval '1 minute');
    v_step.timeout := add_step.timeout;
    v_step.transaction := coalesce(add_step.transaction, 'autocommit');
    v_step.notify_on := coalesce(add_step.notify_on, 'never');
    PERFORM pgautomator._check_step(v_step);
    PERFORM pgautomator._check_addresses('notify_to', add_step.notify_to);
    PERFORM pgautomator._check_length('description', add_step.description, 10000);
    v_ok := pgautomator._step_action(v_job.id, 'on_success', coalesce(add_step.on_success, 'next'));
    v_fail := pgautomator._step_action(v_job.id, 'on_failure', coalesce(add_step.on_failure, 'fail'));
    -- Make room when inserting before existing steps.
    IF add_step.at_position IS NOT NULL THEN
        UPDATE pgautomator.step s SET position = s.position + 1
         WHERE s.job_id = v_job.id AND s.position >= add_step.at_position;
    END IF;
    INSERT INTO pgautomator.step (job_id, position, name, description, enabled, kind, code, database,
                                  connection, shell, success_codes, on_success, on_success_step,
                                  on_failure, on_failure_step, retries, retry_interval, timeout,
                                  transaction, notify_on, notify_to, notify_subject, notify_body)
    VALUES (v_job.id, coalesce(add_step.at_position, v_last + 1), v_step.name,
            coalesce(add_step.description, ''), coalesce(add_step.enabled, true), v_step.kind, v_step.code,
            v_step.database, v_step.connection, v_step.shell, v_step.success_codes, v_ok.action, v_ok.target,
            v_fail.action, v_fail.target, v_step.retries, v_step.retry_interval, v_step.timeout,
            v_step.transaction, v_step.notify_on, coalesce(add_step.notify_to, '{}'),
            add_step.notify_subject, add_step.notify_body)
    RETURNING id INTO v_step.id;
    UPDATE pgautomator.job SET modified_at = pg_catalog.now() WHERE id = v_job.id;
    RETURN v_step.id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'step "%" already exists in job "%"', add_step.name, v_job.name USING ERRCODE = '23505';
END
$$;
COMMENT ON FUNCTION pgautomator.add_step(bigint, text, text, text, text, text, text, text, integer, interval, interval, text, boolean, text, text, integer[], integer, text, text[], text, text)
    IS 'Adds a step to a job (at the end, or at at_position) and returns its id. on_success/on_failure: next, succeed, fail or a step name.';

CREATE FUNCTION pgautomator.add_step(
    job text, name text, code text, kind text DEFAULT 'sql', database text DEFAULT NULL,
    connection text DEFAULT NULL, on_success text DEFAULT 'next', on_failure text DEFAULT 'fail',
    retries integer DEFAULT 0, retry_interval interval DEFAULT '1 minute', timeout interval DEFAULT NULL,
    transaction text DEFAULT 'autocommit', enabled boolean DEFAULT true, description text DEFAULT '',
    shell text DEFAULT NULL, success_codes integer[] DEFAULT '{0}', at_position integer DEFAULT NULL,
    notify_on text DEFAULT 'never', notify_to text[] DEFAULT '{}', notify_subject text DEFAULT NULL,
    notify_body text DEFAULT NULL)
RETURNS bigint LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgautomator.add_step((pgautomator._job_for(NULL, $1, 'manage')).id, $2, $3, $4, $5, $6, $7, $8,
                                $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
$$;
COMMENT ON FUNCTION pgautomator.add_step(text, text, text, text, text, text, text, text, integer, interval, interval, text, boolean, text, text, integer[], integer, text, text[], text, text)
    IS 'Adds a step to a job named by name; see add_step(bigint, ...).';

CREATE FUNCTION pgautomator.alter_step(
    job             bigint,
    step            text,
    name            text DEFAULT NULL,
    code            text DEFAULT NULL,
    kind            text DEFAULT NULL,
    database        text DEFAULT NULL,
    connection      text DEFAULT NULL,
    on_success      text DEFAULT NULL,
    on_failure      text DEFAULT NULL,
    retries         integer DEFAULT NULL,
    retry_interval  interval DEFAULT NULL,
    timeout         interval DEFAULT NULL,
    transaction     text DEFAULT NULL,
    enabled         boolean DEFAULT NULL,
    description     text DEFAULT NULL,
    shell           text DEFAULT NULL,
    success_codes   integer[] DEFAULT NULL,
    notify_on       text DEFAULT NULL,
    notify_to       text[] DEFAULT NULL,
    notify_subject  text DEFAULT NULL,
    notify_body     text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job  pgautomator.job := pgautomator._job_for(alter_step.job, NULL, 'program');
    v_step pgautomator.step;
    v_ok   record;
    v_fail record;
BEGIN
    PERFORM pgautomator._lock_active_runs(v_job.id);
    v_step := pgautomator._step_of(v_job.id, alter_step.step);
    -- '' clears database, connection and shell; interval '0' clears timeout.
    v_step.name := coalesce(alter_step.name, v_step.name);
    v_step.code := coalesce(alter_step.code, v_step.code);
    v_step.kind := coalesce(alter_step.kind, v_step.kind);
    v_step.database := CASE WHEN alter_step.database IS NULL THEN v_step.database
                            ELSE nullif(alter_step.database, '') END;
    v_step.connection := CASE WHEN alter_step.connection IS NULL THEN v_step.connection
                              ELSE nullif(alter_step.connection, '') END;
    v_step.shell := CASE WHEN alter_step.shell IS NULL THEN v_step.shell ELSE nullif(alter_step.shell, '') END;
    v_step.success_codes := coalesce(alter_step.success_codes, v_step.success_codes);
    v_step.retries := coalesce(alter_step.retries, v_step.retries);
    v_step.retry_interval := coalesce(alter_step.retry_interval, v_step.retry_interval);
    PERFORM pgautomator._check_interval('timeout', alter_step.timeout, true);
    v_step.timeout := CASE WHEN alter_step.timeout IS NULL THEN v_step.timeout
                           ELSE nullif(alter_step.timeout, interval '0') END;
    v_step.transaction := coalesce(alter_step.transaction, v_step.transaction);
    v_step.notify_on := coalesce(alter_step.notify_on, v_step.notify_on);
    PERFORM pgautomator._check_step(v_step);
    PERFORM pgautomator._check_addresses('notify_to', alter_step.notify_to);
    PERFORM pgautomator._check_length('description', alter_step.description, 10000);
    IF alter_step.on_success IS NOT NULL THEN
        v_ok := pgautomator._step_action(v_job.id, 'on_success', alter_step.on_success);
        v_step.on_success := v_ok.action;
        v_step.on_success_step := v_ok.target;
    END IF;
    IF alter_step.on_failure IS NOT NULL THEN
        v_fail := pgautomator._step_action(v_job.id, 'on_failure', alter_step.on_failure);
        v_step.on_failure := v_fail.action;
        v_step.on_failure_step := v_fail.target;
    END IF;
    UPDATE pgautomator.step s SET
        name = v_step.name, code = v_step.code, kind = v_step.kind, database = v_step.database,
        connection = v_step.connection, shell = v_step.shell, success_codes = v_step.success_codes,
        on_success = v_step.on_success, on_success_step = v_step.on_success_step,
        on_failure = v_step.on_failure, on_failure_step = v_step.on_failure_step,
        retries = v_step.retries, retry_interval = v_step.retry_interval, timeout = v_step.timeout,
        transaction = v_step.transaction, enabled = coalesce(alter_step.enabled, s.enabled),
        description = coalesce(alter_step.description, s.description), notify_on = v_step.notify_on,
        notify_to = coalesce(alter_step.notify_to, s.notify_to),
        notify_subject = coalesce(alter_step.notify_subject, s.notify_subject),
        notify_body = coalesce(alter_step.notify_body, s.notify_body),
        modified_at = pg_catalog.now()
    WHERE s.id = v_step.id;
    UPDATE pgautomator.job SET modified_at = pg_catalog.now() WHERE id = v_job.id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'step "%" already exists in job "%"', alter_step.name, v_job.name USING ERRCODE = '23505';
END
$$;
COMMENT ON FUNCTION pgautomator.alter_step(bigint, text, text, text, text, text, text, text, text, integer, interval, interval, text, boolean, text, text, integer[], text, text[], text, text)
    IS 'Changes the given settings of a step (named by name or id); NULL leaves a setting unchanged.';

CREATE FUNCTION pgautomator.alter_step(
    job text, step text, name text DEFAULT NULL, code text DEFAULT NULL, kind text DEFAULT NULL,
    database text DEFAULT NULL, connection text DEFAULT NULL, on_success text DEFAULT NULL,
    on_failure text DEFAULT NULL, retries integer DEFAULT NULL, retry_interval interval DEFAULT NULL,
    timeout interval DEFAULT NULL, transaction text DEFAULT NULL, enabled boolean DEFAULT NULL,
    description text DEFAULT NULL, shell text DEFAULT NULL, success_codes integer[] DEFAULT NULL,
    notify_on text DEFAULT NULL, notify_to text[] DEFAULT NULL, notify_subject text DEFAULT NULL,
    notify_body text DEFAULT NULL)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgautomator.alter_step((pgautomator._job_for(NULL, $1, 'manage')).id, $2, $3, $4, $5, $6, $7, $8,
                                  $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
$$;
COMMENT ON FUNCTION pgautomator.alter_step(text, text, text, text, text, text, text, text, text, integer, interval, interval, text, boolean, text, text, integer[], text, text[], text, text)
    IS 'Changes the given settings of a step of a job named by name; see alter_step(bigint, ...).';

CREATE FUNCTION pgautomator._drop_step(p_job pgautomator.job, p_step text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_step pgautomator.step;
    v_from text;
BEGIN
    -- (a report under way reads the steps: see _lock_active_runs)
    PERFORM pgautomator._lock_active_runs(p_job.id);
    v_step := pgautomator._step_of(p_job.id, p_step);
    SELECT string_agg(format('"%s"', s.name), ', ' ORDER BY s.position) INTO v_from
      FROM pgautomator.step s
     WHERE s.job_id = p_job.id AND s.id <> v_step.id
       AND v_step.id IN (s.on_success_step, s.on_failure_step);
    IF v_from IS NOT NULL THEN
        RAISE EXCEPTION 'step "%" is the go-to target of step %', v_step.name, v_from
            USING ERRCODE = '2BP01', HINT = 'Change their on_success/on_failure first.';
    END IF;
    DELETE FROM pgautomator.step WHERE id = v_step.id;
    UPDATE pgautomator.step s SET position = s.position - 1
     WHERE s.job_id = p_job.id AND s.position > v_step.position;
    UPDATE pgautomator.job SET modified_at = pg_catalog.now() WHERE id = p_job.id;
END
$$;
COMMENT ON FUNCTION pgautomator._drop_step(pgautomator.job, text) IS 'Deletes a step and closes the gap in positions.';

CREATE FUNCTION pgautomator.drop_step(job bigint, step text)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._drop_step(pgautomator._job_for($1, NULL, 'manage'), $2) $$;
COMMENT ON FUNCTION pgautomator.drop_step(bigint, text) IS 'Drops a step (by name or id) of a job named by id; refused while another step goes to it.';

CREATE FUNCTION pgautomator.drop_step(job text, step text)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._drop_step(pgautomator._job_for(NULL, $1, 'manage'), $2) $$;
COMMENT ON FUNCTION pgautomator.drop_step(text, text) IS 'Drops a step (by name or id) of a job named by name; refused while another step goes to it.';

CREATE FUNCTION pgautomator._move_step(p_job pgautomator.job, p_step text, p_position integer)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_step pgautomator.step;
    v_last integer;
BEGIN
    PERFORM pgautomator._lock_active_runs(p_job.id);
    v_step := pgautomator._step_of(p_job.id, p_step);
    SELECT max(position) INTO v_last FROM pgautomator.step WHERE job_id = p_job.id;
    IF p_position IS NULL THEN
        RAISE EXCEPTION 'position must not be NULL' USING ERRCODE = '22004';
    END IF;
    PERFORM pgautomator._check_range('position', p_position, 1, v_last);
    -- One statement: the position key is checked at its end.
    UPDATE pgautomator.step s SET position = CASE
            WHEN s.id = v_step.id THEN p_position
            WHEN p_position < v_step.position THEN s.position + 1
            ELSE s.position - 1 END
     WHERE s.job_id = p_job.id
       AND s.position BETWEEN least(p_position, v_step.position) AND greatest(p_position, v_step.position);
    UPDATE pgautomator.job SET modified_at = pg_catalog.now() WHERE id = p_job.id;
END
$$;
COMMENT ON FUNCTION pgautomator._move_step(pgautomator.job, text, integer) IS 'Moves a step to a position, shifting the steps between.';

CREATE FUNCTION pgautomator.move_step(job bigint, step text, new_position integer)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._move_step(pgautomator._job_for($1, NULL, 'manage'), $2, $3) $$;
COMMENT ON FUNCTION pgautomator.move_step(bigint, text, integer) IS 'Moves a step of a job named by id to a position (1 = first).';

CREATE FUNCTION pgautomator.move_step(job text, step text, new_position integer)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._move_step(pgautomator._job_for(NULL, $1, 'manage'), $2, $3) $$;
COMMENT ON FUNCTION pgautomator.move_step(text, text, integer) IS 'Moves a step of a job named by name to a position (1 = first).';

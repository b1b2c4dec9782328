-- Jobs: create, alter (NULL leaves a setting unchanged), drop, enable, disable.
-- Each public function has an overload naming the job by id and one by name.

-- Checks the settings shared by create_job and alter_job; NULL means "not given".
CREATE FUNCTION pgautomator._check_job_settings(
    p_timeout interval, p_overlap text, p_max_parallel integer, p_misfire text,
    p_misfire_limit integer, p_notify_on text, p_notify_to text[])
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgautomator._check_interval('timeout', p_timeout, true);
    PERFORM pgautomator._check_choice('overlap', p_overlap, ARRAY['skip', 'queue', 'parallel']);
    PERFORM pgautomator._check_range('max_parallel', p_max_parallel, 1, 1000);
    PERFORM pgautomator._check_choice('misfire', p_misfire, ARRAY['run_once', 'skip', 'run_all']);
    PERFORM pgautomator._check_range('misfire_limit', p_misfire_limit, 1, 10000);
    PERFORM pgautomator._check_choice('notify_on', p_notify_on, ARRAY['never', 'failure', 'success', 'always']);
    PERFORM pgautomator._check_addresses('notify_to', p_notify_to);
END
$$;
COMMENT ON FUNCTION pgautomator._check_job_settings(interval, text, integer, text, integer, text, text[]) IS 'Validates job settings given to create_job or alter_job.';

-- A job's own sender for its mails: admins only, since mail goes out
-- through the database agent's SMTP account, whose relay vouches for the
-- sender (a user could otherwise mail anyone as anyone through it).
CREATE FUNCTION pgautomator._check_notify_from(p_from text)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_from IS NULL THEN
        RETURN;
    END IF;
    IF NOT pgautomator._is_admin() THEN
        RAISE EXCEPTION 'permission denied to set notify_from' USING ERRCODE = '42501',
            HINT = 'Mail is sent as the SMTP settings'' sender; admins may set another per job.';
    END IF;
    PERFORM pgautomator._check_addresses('notify_from', ARRAY[p_from]);
END
$$;
COMMENT ON FUNCTION pgautomator._check_notify_from(text) IS 'Checks a job''s notify_from: admins only, one e-mail address.';

CREATE FUNCTION pgautomator.create_job(
    name            text,
    description     text DEFAULT '',
    category        text DEFAULT NULL,
    enabled         boolean DEFAULT true,
    run_as          text DEFAULT NULL,
    agent           text DEFAULT NULL,
    timeout         interval DEFAULT NULL,
    overlap         text DEFAULT 'skip',
    max_parallel    integer DEFAULT 1,
    misfire         text DEFAULT 'run_once',
    misfire_limit   integer DEFAULT 10,
    retry_on_crash  boolean DEFAULT false,
    notify_on       text DEFAULT 'never',
    notify_to       text[] DEFAULT '{}',
    notify_from     text DEFAULT NULL,
    notify_subject  text DEFAULT NULL,
    notify_body     text DEFAULT NULL,
    owner           text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM pgautomator._require_user();
    PERFORM pgautomator._check_name('job', create_job.name);
    PERFORM pgautomator._check_job_settings(create_job.timeout, create_job.overlap, create_job.max_parallel,
        create_job.misfire, create_job.misfire_limit, create_job.notify_on, create_job.notify_to);
    PERFORM pgautomator._check_notify_from(create_job.notify_from);
    PERFORM pgautomator._check_length('description', create_job.description, 10000);
    INSERT INTO pgautomator.job (name, description, category_id, enabled, owner, run_as, agent, timeout,
                                 overlap, max_parallel, misfire, misfire_limit, retry_on_crash,
                                 notify_on, notify_to, notify_from, notify_subject, notify_body)
    VALUES (create_job.name, coalesce(create_job.description, ''),
            pgautomator._category_id(create_job.category), coalesce(create_job.enabled, true),
            pgautomator._check_owner(create_job.owner),
            pgautomator._check_run_as(coalesce(create_job.run_as, session_user)),
            nullif(create_job.agent, ''), nullif(create_job.timeout, interval '0'),
            coalesce(create_job.overlap, 'skip'), coalesce(create_job.max_parallel, 1),
            coalesce(create_job.misfire, 'run_once'), coalesce(create_job.misfire_limit, 10),
            coalesce(create_job.retry_on_crash, false), coalesce(create_job.notify_on, 'never'),
            coalesce(create_job.notify_to, '{}'), create_job.notify_from, create_job.notify_subject,
            create_job.notify_body)
    RETURNING id INTO v_id;
    PERFORM pgautomator._wake('job');
    RETURN v_id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'job "%" already exists', create_job.name USING ERRCODE = '23505';
END
$$;
COMMENT ON FUNCTION pgautomator.create_job(text, text, text, boolean, text, text, interval, text, integer, text, integer, boolean, text, text[], text, text, text, text)
    IS 'Creates a job (without steps or schedules) and returns its id. run_as defaults to the caller and must be a LOGIN role the caller is a member of.';

CREATE FUNCTION pgautomator.alter_job(
    job             bigint,
    name            text DEFAULT NULL,
    description     text DEFAULT NULL,
    category        text DEFAULT NULL,
    enabled         boolean DEFAULT NULL,
    run_as          text DEFAULT NULL,
    agent           text DEFAULT NULL,
    timeout         interval DEFAULT NULL,
    overlap         text DEFAULT NULL,
    max_parallel    integer DEFAULT NULL,
    misfire         text DEFAULT NULL,
    misfire_limit   integer DEFAULT NULL,
    retry_on_crash  boolean DEFAULT NULL,
    notify_on       text DEFAULT NULL,
    notify_to       text[] DEFAULT NULL,
    notify_from     text DEFAULT NULL,
    notify_subject  text DEFAULT NULL,
    notify_body     text DEFAULT NULL,
    owner           text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job pgautomator.job := pgautomator._job_for(alter_job.job, NULL, 'manage');
BEGIN
    IF alter_job.name IS NOT NULL THEN
        PERFORM pgautomator._check_name('job', alter_job.name);
    END IF;
    PERFORM pgautomator._check_job_settings(alter_job.timeout, alter_job.overlap, alter_job.max_parallel,
        alter_job.misfire, alter_job.misfire_limit, alter_job.notify_on, alter_job.notify_to);
    PERFORM pgautomator._check_notify_from(alter_job.notify_from);
    PERFORM pgautomator._check_length('description', alter_job.description, 10000);
    UPDATE pgautomator.job j SET
        name           = coalesce(alter_job.name, j.name),
        description    = coalesce(alter_job.description, j.description),
        -- '' clears the category, the agent affinity; interval '0' the timeout.
        category_id    = CASE WHEN alter_job.category IS NULL THEN j.category_id
                              ELSE pgautomator._category_id(nullif(alter_job.category, '')) END,
        enabled        = coalesce(alter_job.enabled, j.enabled),
        run_as         = CASE WHEN alter_job.run_as IS NULL THEN j.run_as
                              ELSE pgautomator._check_run_as(alter_job.run_as) END,
        agent          = CASE WHEN alter_job.agent IS NULL THEN j.agent ELSE nullif(alter_job.agent, '') END,
        timeout        = CASE WHEN alter_job.timeout IS NULL THEN j.timeout
                              ELSE nullif(alter_job.timeout, interval '0') END,
        overlap        = coalesce(alter_job.overlap, j.overlap),
        max_parallel   = coalesce(alter_job.max_parallel, j.max_parallel),
        misfire        = coalesce(alter_job.misfire, j.misfire),
        misfire_limit  = coalesce(alter_job.misfire_limit, j.misfire_limit),
        retry_on_crash = coalesce(alter_job.retry_on_crash, j.retry_on_crash),
        notify_on      = coalesce(alter_job.notify_on, j.notify_on),
        notify_to      = coalesce(alter_job.notify_to, j.notify_to),
        notify_from    = coalesce(alter_job.notify_from, j.notify_from),
        notify_subject = coalesce(alter_job.notify_subject, j.notify_subject),
        notify_body    = coalesce(alter_job.notify_body, j.notify_body),
        owner          = CASE WHEN alter_job.owner IS NULL THEN j.owner
                              ELSE pgautomator._check_owner(alter_job.owner) END,
        modified_at    = pg_catalog.now()
    WHERE j.id = v_job.id;
    -- Runs keep the job's owner for row-level security.
    IF alter_job.owner IS NOT NULL THEN
        UPDATE pgautomator.run SET owner = alter_job.owner::name WHERE job_id = v_job.id;
    END IF;
    PERFORM pgautomator._wake('job');
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'job "%" already exists', alter_job.name USING ERRCODE = '23505';
END
$$;
COMMENT ON FUNCTION pgautomator.alter_job(bigint, text, text, text, boolean, text, text, interval, text, integer, text, integer, boolean, text, text[], text, text, text, text)
    IS 'Changes the given settings of a job; NULL leaves a setting unchanged, '''' clears category and agent, interval ''0'' clears timeout.';

CREATE FUNCTION pgautomator.alter_job(
    job text, name text DEFAULT NULL, description text DEFAULT NULL, category text DEFAULT NULL,
    enabled boolean DEFAULT NULL, run_as text DEFAULT NULL, agent text DEFAULT NULL,
    timeout interval DEFAULT NULL, overlap text DEFAULT NULL, max_parallel integer DEFAULT NULL,
    misfire text DEFAULT NULL, misfire_limit integer DEFAULT NULL, retry_on_crash boolean DEFAULT NULL,
    notify_on text DEFAULT NULL, notify_to text[] DEFAULT NULL, notify_from text DEFAULT NULL,
    notify_subject text DEFAULT NULL, notify_body text DEFAULT NULL, owner text DEFAULT NULL)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgautomator.alter_job((pgautomator._job_for(NULL, $1, 'manage')).id, $2, $3, $4, $5, $6, $7, $8,
                                 $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
$$;
COMMENT ON FUNCTION pgautomator.alter_job(text, text, text, text, boolean, text, text, interval, text, integer, text, integer, boolean, text, text[], text, text, text, text)
    IS 'Changes the given settings of a job named by name; see alter_job(bigint, ...).';

CREATE FUNCTION pgautomator._drop_job(p_job pgautomator.job)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM pgautomator.run WHERE job_id = p_job.id AND state IN ('queued', 'running')) THEN
        RAISE EXCEPTION 'job "%" has active runs', p_job.name
            USING ERRCODE = '55006', HINT = 'Stop them with stop_run first.';
    END IF;
    -- Steps, schedule links and the job's own runs go with it (ON DELETE CASCADE).
    DELETE FROM pgautomator.job WHERE id = p_job.id;
    PERFORM pgautomator._wake('job');
END
$$;
COMMENT ON FUNCTION pgautomator._drop_job(pgautomator.job) IS 'Deletes a job with its steps, schedule links and history.';

CREATE FUNCTION pgautomator.drop_job(job bigint)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._drop_job(pgautomator._job_for($1, NULL, 'manage')) $$;
COMMENT ON FUNCTION pgautomator.drop_job(bigint) IS 'Drops a job by id with its steps, schedule links and history; refused while it has active runs.';

CREATE FUNCTION pgautomator.drop_job(job text)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._drop_job(pgautomator._job_for(NULL, $1, 'manage')) $$;
COMMENT ON FUNCTION pgautomator.drop_job(text) IS 'Drops a job by name with its steps, schedule links and history; refused while it has active runs.';

CREATE FUNCTION pgautomator._set_job_enabled(p_job pgautomator.job, p_enabled boolean)
RETURNS void LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE pgautomator.job SET enabled = p_enabled, modified_at = pg_catalog.now() WHERE id = p_job.id;
    -- A re-enabled job does not fire the instants it missed while disabled.
    SELECT pgautomator._refresh_next_fire(p_job.id) WHERE p_enabled;
    SELECT pgautomator._wake('job');
$$;
COMMENT ON FUNCTION pgautomator._set_job_enabled(pgautomator.job, boolean) IS 'Enables or disables a job.';

CREATE FUNCTION pgautomator.enable_job(job bigint)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._set_job_enabled(pgautomator._job_for($1, NULL, 'operate'), true) $$;
COMMENT ON FUNCTION pgautomator.enable_job(bigint) IS 'Enables a job by id: its schedules fire again.';

CREATE FUNCTION pgautomator.enable_job(job text)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._set_job_enabled(pgautomator._job_for(NULL, $1, 'operate'), true) $$;
COMMENT ON FUNCTION pgautomator.enable_job(text) IS 'Enables a job by name: its schedules fire again.';

CREATE FUNCTION pgautomator.disable_job(job bigint)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._set_job_enabled(pgautomator._job_for($1, NULL, 'operate'), false) $$;
COMMENT ON FUNCTION pgautomator.disable_job(bigint) IS 'Disables a job by id: schedules no longer fire it; running runs go on.';

CREATE FUNCTION pgautomator.disable_job(job text)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._set_job_enabled(pgautomator._job_for(NULL, $1, 'operate'), false) $$;
COMMENT ON FUNCTION pgautomator.disable_job(text) IS 'Disables a job by name: schedules no longer fire it; running runs go on.';

-- Runs for people: start a job now, stop a run, purge history; and the
-- dispatcher's settings (history retention and friends), which admins
-- change with set_setting and everyone reads in the settings view.

-- The settings and their defaults come with the extension (setting_default,
-- made by this script and not dumped); what an admin changed is a row of
-- its own (setting), which pg_dump keeps: after a restore the extension
-- makes the defaults again and the dump brings back the changes.  (Were the
-- changes kept in the defaults' rows, a restore would reset them, a
-- history_retention of off included.)
CREATE TABLE pgautomator.setting_default (
    name          text PRIMARY KEY,
    default_value text NOT NULL,
    description   text NOT NULL
);
COMMENT ON TABLE pgautomator.setting_default IS 'The dispatcher settings and their defaults (made by the extension).';
INSERT INTO pgautomator.setting_default (name, default_value, description) VALUES
    ('history_retention', '30 days',
     'How long finished runs are kept; the dispatcher deletes older ones in small batches. off keeps them forever.'),
    ('purge_batch', '500', 'Runs deleted per batch when history is past retention (at most one batch a second).'),
    ('misfire_grace', '1 minute',
     'How late a fire instant may be and still fire normally; later ones follow the job''s misfire policy.'),
    ('fire_batch', '200', 'Due (job, schedule) pairs fired per dispatcher pass.'),
    ('output_limit', '65536',
     'Characters kept of a step''s output, messages and error (the tail; the head is cut with a mark).'),
    ('crash_retries', '3',
     'How many crash retries one run may get in a row (jobs with retry_on_crash).'),
    ('kill_grace', '10 seconds',
     'How long a cancelled in-database step may take to stop before its worker is terminated.');

CREATE TABLE pgautomator.setting (
    name        text PRIMARY KEY REFERENCES pgautomator.setting_default ON DELETE CASCADE,
    value       text NOT NULL,
    modified_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    modified_by name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE pgautomator.setting IS 'Dispatcher settings an admin changed (set_setting); the others have their default.';
GRANT SELECT ON pgautomator.setting, pgautomator.setting_default TO pgautomator_user;

CREATE VIEW pgautomator.settings WITH (security_invoker = true) AS
SELECT d.name, coalesce(s.value, d.default_value) AS value, d.default_value, d.description,
       s.modified_at, s.modified_by
  FROM pgautomator.setting_default d
  LEFT JOIN pgautomator.setting s ON s.name = d.name;
COMMENT ON VIEW pgautomator.settings IS 'Dispatcher settings with their defaults; change them with set_setting.';

CREATE FUNCTION pgautomator._setting(p_name text)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT s.value FROM pgautomator.settings s WHERE s.name = p_name);
END
$$;
COMMENT ON FUNCTION pgautomator._setting(text) IS 'The value of a setting: what an admin set, else its default.';

CREATE FUNCTION pgautomator._setting_int(p_name text)
RETURNS integer LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ BEGIN RETURN pgautomator._setting(p_name)::integer; END $$;
COMMENT ON FUNCTION pgautomator._setting_int(text) IS 'Reads an integer setting.';

CREATE FUNCTION pgautomator._setting_interval(p_name text)
RETURNS interval LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ BEGIN RETURN nullif(pgautomator._setting(p_name), 'off')::interval; END $$;
COMMENT ON FUNCTION pgautomator._setting_interval(text) IS 'Reads an interval setting (NULL for off).';

-- Validates a setting's new value and returns it in canonical form.
CREATE FUNCTION pgautomator._check_setting(p_name text, p_value text)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_int integer;
    v_iv  interval;
BEGIN
    BEGIN
        CASE p_name
        WHEN 'history_retention' THEN
            IF lower(btrim(p_value)) = 'off' THEN
                RETURN 'off';
            END IF;
            v_iv := pgautomator._check_interval(p_name, p_value::interval);   -- (bounded parts)
            IF v_iv < interval '1 minute' THEN
                RAISE EXCEPTION USING ERRCODE = '22023';
            END IF;
            RETURN v_iv::text;
        WHEN 'misfire_grace', 'kill_grace' THEN
            v_iv := pgautomator._check_interval(p_name, p_value::interval, p_name <> 'kill_grace');
            RETURN v_iv::text;
        ELSE
            v_int := p_value::integer;
            IF (p_name = 'purge_batch' AND v_int NOT BETWEEN 1 AND 100000)
               OR (p_name = 'fire_batch' AND v_int NOT BETWEEN 1 AND 10000)
               OR (p_name = 'output_limit' AND v_int NOT BETWEEN 1024 AND 10485760)
               OR (p_name = 'crash_retries' AND v_int NOT BETWEEN 0 AND 100) THEN
                RAISE EXCEPTION USING ERRCODE = '22023';
            END IF;
            RETURN v_int::text;
        END CASE;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'invalid value "%" for setting "%"', p_value, p_name
            USING ERRCODE = '22023',
                  HINT = CASE p_name
                      WHEN 'history_retention' THEN 'Use an interval from 1 minute to 100 years, or off.'
                      WHEN 'misfire_grace' THEN 'Use a non-negative interval of at most 100 years.'
                      WHEN 'kill_grace' THEN 'Use a positive interval of at most 100 years.'
                      WHEN 'purge_batch' THEN 'Use an integer from 1 to 100000.'
                      WHEN 'fire_batch' THEN 'Use an integer from 1 to 10000.'
                      WHEN 'output_limit' THEN 'Use an integer from 1024 to 10485760.'
                      ELSE 'Use an integer from 0 to 100.' END;
    END;
END
$$;
COMMENT ON FUNCTION pgautomator._check_setting(text, text) IS 'Validates a new setting value and returns it in canonical form.';

CREATE FUNCTION pgautomator.set_setting(name text, value text)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_default text;
    v_value   text;
BEGIN
    PERFORM pgautomator._require_admin('change settings');
    IF set_setting.name IS NULL THEN
        RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT d.default_value INTO v_default FROM pgautomator.setting_default d WHERE d.name = set_setting.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'setting "%" does not exist', set_setting.name
            USING ERRCODE = '42704',
                  HINT = (SELECT 'Settings: ' || string_agg(d.name, ', ' ORDER BY d.name) || '.'
                            FROM pgautomator.setting_default d);
    END IF;
    v_value := pgautomator._check_setting(set_setting.name, coalesce(set_setting.value, v_default));
    IF set_setting.value IS NULL THEN
        DELETE FROM pgautomator.setting s WHERE s.name = set_setting.name;   -- the default again
    ELSE
        INSERT INTO pgautomator.setting AS s (name, value) VALUES (set_setting.name, v_value)
        ON CONFLICT ON CONSTRAINT setting_pkey DO UPDATE
           SET value = excluded.value, modified_at = pg_catalog.now(), modified_by = session_user;
    END IF;
    PERFORM pgautomator._wake('setting');
    RETURN v_value;
END
$$;
COMMENT ON FUNCTION pgautomator.set_setting(text, text) IS 'Changes a dispatcher setting (admins); NULL restores its default. Returns the stored value.';

-- start_job: a manual run now, whether or not the job is scheduled or
-- enabled.  It starts at once when the job's overlap limit allows (skip and
-- queue: no other run running; parallel: fewer than max_parallel), else it
-- waits its turn: a manual start is never skipped.
CREATE FUNCTION pgautomator._start_job(p_job pgautomator.job, p_from_step text)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_step_id bigint;
    v_id      bigint;
    v_running integer;
BEGIN
    -- (the caller, start_job, holds the run tables' locks)
    IF p_from_step IS NOT NULL THEN
        v_step_id := (pgautomator._step_of(p_job.id, p_from_step)).id;
    END IF;
    INSERT INTO pgautomator.run (job_id, owner, trigger, started_by, start_step_id, state)
    VALUES (p_job.id, p_job.owner, 'manual', session_user, v_step_id, 'queued')
    RETURNING id INTO v_id;
    PERFORM pgautomator._admit(p_job);
    IF (SELECT r.state FROM pgautomator.run r WHERE r.id = v_id) = 'queued' THEN
        SELECT count(*) INTO v_running FROM pgautomator.run r WHERE r.job_id = p_job.id AND r.state = 'running';
        UPDATE pgautomator.run r
           SET message = pg_catalog.format('waiting: %s run(s) of the job are running (overlap %s, limit %s)',
                                           v_running, p_job.overlap, pgautomator._run_limit(p_job))
         WHERE r.id = v_id;
    END IF;
    PERFORM pgautomator._wake('start');
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION pgautomator._start_job(pgautomator.job, text) IS 'Creates a manual run of a job (from a step when given) and starts it when its overlap limit allows.';

-- The run tables, written after reads through their indexes, are locked
-- first, so that a REINDEX of one waits for this call or it for the
-- REINDEX, instead of a deadlock (as the launcher, the workers and the
-- agent calls do); and before the job's row lock that _job_for takes: held
-- the other way round, a REINDEX and the launcher could close a cycle.
CREATE FUNCTION pgautomator.start_job(job bigint, from_step text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    LOCK TABLE pgautomator.run, pgautomator.step_run IN ROW EXCLUSIVE MODE;
    RETURN pgautomator._start_job(pgautomator._job_for(start_job.job, NULL, 'operate'), start_job.from_step);
END
$$;
COMMENT ON FUNCTION pgautomator.start_job(bigint, text) IS 'Runs a job named by id now (from the step from_step when given) and returns the run id; it waits while the job''s overlap limit is reached.';

CREATE FUNCTION pgautomator.start_job(job text, from_step text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    LOCK TABLE pgautomator.run, pgautomator.step_run IN ROW EXCLUSIVE MODE;   -- (see above)
    RETURN pgautomator._start_job(pgautomator._job_for(NULL, start_job.job, 'operate'), start_job.from_step);
END
$$;
COMMENT ON FUNCTION pgautomator.start_job(text, text) IS 'Runs a job named by name now (from the step from_step when given) and returns the run id; it waits while the job''s overlap limit is reached.';

-- stop_run: a queued run ends stopped at once; a running one gets a stop
-- request: its waiting step runs end stopped, its running in-database step
-- is cancelled now (pg_cancel_backend) and the dispatcher keeps cancelling
-- it (terminating after kill_grace); a remote agent learns it from its
-- heartbeat.  The run ends stopped when the step reports; later steps never
-- start.  Returns false, with a notice, when the run had already ended.
CREATE FUNCTION pgautomator.stop_run(run bigint)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job_id bigint;
    v_job    pgautomator.job;
    v_run    pgautomator.run;
    v_sr     record;
    v_busy   boolean := false;
BEGIN
    IF stop_run.run IS NULL THEN
        RAISE EXCEPTION 'run must not be NULL' USING ERRCODE = '22004';
    END IF;
    LOCK TABLE pgautomator.run, pgautomator.step_run IN ROW EXCLUSIVE MODE;     -- (see start_job)
    SELECT r.job_id INTO v_job_id FROM pgautomator.run r WHERE r.id = stop_run.run
       AND (pgautomator._is_operator() OR pgautomator._may_manage(r.owner));
    IF NOT FOUND THEN
        -- Also for runs the caller may not see: their existence is not its business.
        RAISE EXCEPTION 'run % does not exist', stop_run.run USING ERRCODE = '42704';
    END IF;
    v_job := pgautomator._job_for(v_job_id, NULL, 'operate');
    SELECT * INTO v_run FROM pgautomator.run r WHERE r.id = stop_run.run FOR UPDATE;
    IF v_run.state NOT IN ('queued', 'running') THEN
        RAISE NOTICE 'run % had already ended %', v_run.id, v_run.state;
        RETURN false;
    END IF;
    IF v_run.state = 'queued' THEN
        PERFORM pgautomator._finish_run(v_run.id, 'stopped',
            pg_catalog.format('stopped by %s before it started', session_user));
        RETURN true;
    END IF;
    -- A second stop_run keeps the first request (and its kill_grace clock).
    UPDATE pgautomator.run r
       SET stop_requested_at = coalesce(r.stop_requested_at, pg_catalog.now()),
           stop_requested_by = coalesce(r.stop_requested_by, session_user)
     WHERE r.id = v_run.id;
    UPDATE pgautomator.step_run sr
       SET state = 'stopped', finished_at = pg_catalog.now(),
           messages = pg_catalog.format('not started: stopped by %s', session_user)
     WHERE sr.run_id = v_run.id AND sr.state = 'queued';
    FOR v_sr IN
        UPDATE pgautomator.step_run sr
           SET cancel_requested_at = coalesce(sr.cancel_requested_at, pg_catalog.now()), cancel_reason = 'stop'
          FROM pgautomator.agent a
         WHERE sr.run_id = v_run.id AND sr.state = 'running' AND a.id = sr.agent_id
        RETURNING sr.id, sr.worker_pid, a.kind
    LOOP
        v_busy := true;
        IF v_sr.kind = 'database' AND v_sr.worker_pid IS NOT NULL THEN
            PERFORM pgautomator._signal_worker(v_sr.id, v_sr.worker_pid, false);
        END IF;
    END LOOP;
    IF NOT v_busy THEN
        PERFORM pgautomator._finish_run(v_run.id, 'stopped', pg_catalog.format('stopped by %s', session_user));
        PERFORM pgautomator._admit(v_job);
    END IF;
    PERFORM pgautomator._wake('stop');
    RETURN true;
END
$$;
COMMENT ON FUNCTION pgautomator.stop_run(bigint) IS 'Stops a run (operators, or those who manage its job): its running statement is cancelled at once, later steps never start, and it ends stopped. False when it had already ended.';

-- purge_history: admins delete every finished run older than older_than;
-- other users only runs of jobs they manage.
CREATE FUNCTION pgautomator.purge_history(older_than interval)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_before       timestamptz;
    v_managed_only boolean;
    v_n            integer;
    v_total        bigint := 0;
BEGIN
    PERFORM pgautomator._require_user();
    IF purge_history.older_than IS NULL THEN
        RAISE EXCEPTION 'older_than must not be NULL' USING ERRCODE = '22004';
    END IF;
    PERFORM pgautomator._check_interval('older_than', purge_history.older_than, true);
    v_before := pg_catalog.now() - purge_history.older_than;
    v_managed_only := NOT pgautomator._is_admin();
    LOCK TABLE pgautomator.run, pgautomator.step_run, pgautomator.mail IN ROW EXCLUSIVE MODE;   -- (see start_job)
    -- In batches, as the dispatcher's retention: runs whose rows someone
    -- holds (a running mail, a stop in an open transaction) are left for a
    -- later purge instead of waited for.
    LOOP
        v_n := pgautomator._purge_runs(v_before, 10000, v_managed_only);
        v_total := v_total + v_n;
        EXIT WHEN v_n < 10000;
    END LOOP;
    RETURN v_total;
END
$$;
COMMENT ON FUNCTION pgautomator.purge_history(interval) IS 'Deletes finished runs (with their step runs) that ended more than older_than ago and returns how many runs were deleted; non-admins purge only runs of jobs they manage; runs whose rows someone holds are left for a later purge.';

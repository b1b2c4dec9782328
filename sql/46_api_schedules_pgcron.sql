-- pg_cron's shorthand: a job with one sql step running as the caller, fired
-- by a cron schedule of the same name. Calling it again with the same name
-- replaces the command and the cron expression, as pg_cron does.

-- The cron schedule of a job that schedule() made (a step "command" and a
-- cron schedule of the job's name); NULL for any other job.
CREATE FUNCTION pgautomator._pgcron_schedule(p_job pgautomator.job)
RETURNS bigint LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT js.schedule_id
      FROM pgautomator.job_schedule js JOIN pgautomator.schedule s ON s.id = js.schedule_id
     WHERE js.job_id = p_job.id AND s.name = p_job.name AND s.frequency = 'cron'
       AND EXISTS (SELECT FROM pgautomator.step st WHERE st.job_id = p_job.id AND st.name = 'command')
$$;
COMMENT ON FUNCTION pgautomator._pgcron_schedule(pgautomator.job) IS 'The cron schedule of a job made by schedule(); NULL for any other job.';

CREATE FUNCTION pgautomator.schedule(name text, cron text, command text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job pgautomator.job;
    v_schedule_id bigint;
BEGIN
    PERFORM pgautomator._require_user();
    PERFORM pgautomator._check_name('job', schedule.name);
    IF NOT EXISTS (SELECT FROM pgautomator.job j WHERE j.name = schedule.name) THEN
        v_job.id := pgautomator.create_job(schedule.name, description => 'created by schedule()');
        PERFORM pgautomator.add_step(v_job.id, 'command', schedule.command);
        v_schedule_id := pgautomator.create_schedule(schedule.name, 'cron', cron => schedule.cron,
                                                     description => 'created by schedule()');
        PERFORM pgautomator.attach_schedule(v_job.id, v_schedule_id);
        RETURN v_job.id;
    END IF;
    v_job := pgautomator._job_for(NULL, schedule.name, 'manage');
    v_schedule_id := pgautomator._pgcron_schedule(v_job);
    IF v_schedule_id IS NULL THEN
        RAISE EXCEPTION 'job "%" already exists and was not created by schedule()', schedule.name
            USING ERRCODE = '23505', HINT = 'Use another name, or alter_step and alter_schedule.';
    END IF;
    PERFORM pgautomator.alter_step(v_job.id, 'command', code => schedule.command);
    PERFORM pgautomator.alter_schedule(v_schedule_id, cron => schedule.cron);
    RETURN v_job.id;
END
$$;
COMMENT ON FUNCTION pgautomator.schedule(text, text, text) IS 'pg_cron style: runs a SQL command as the caller on a cron schedule; returns the job id. The same name again replaces command and cron.';

CREATE FUNCTION pgautomator._unschedule(p_job pgautomator.job)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_s pgautomator.schedule;
BEGIN
    -- (as schedule() refuses to take over such a job, unschedule() refuses
    -- to drop one, with its history: drop_job says what it does)
    SELECT s.* INTO v_s FROM pgautomator.schedule s WHERE s.id = pgautomator._pgcron_schedule(p_job);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job "%" was not created by schedule()', p_job.name USING ERRCODE = '42809',
            HINT = 'drop_job drops any job, with its history.';
    END IF;
    PERFORM pgautomator.drop_job(p_job.id);
    -- The job's own schedule goes too, unless another job uses it.
    IF v_s.id IS NOT NULL AND pgautomator._may_manage(v_s.owner)
       AND NOT EXISTS (SELECT FROM pgautomator.job_schedule js WHERE js.schedule_id = v_s.id) THEN
        DELETE FROM pgautomator.schedule WHERE id = v_s.id;
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION pgautomator._unschedule(pgautomator.job) IS 'Drops a job made by schedule() and its schedule of the same name.';

CREATE FUNCTION pgautomator.unschedule(name text)
RETURNS boolean LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._unschedule(pgautomator._job_for(NULL, $1, 'manage')) $$;
COMMENT ON FUNCTION pgautomator.unschedule(text) IS 'pg_cron style: drops a job (by name) made by schedule(), with its schedule of the same name.';

CREATE FUNCTION pgautomator.unschedule(job bigint)
RETURNS boolean LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._unschedule(pgautomator._job_for($1, NULL, 'manage')) $$;
COMMENT ON FUNCTION pgautomator.unschedule(bigint) IS 'pg_cron style: drops a job (by id) made by schedule(), with its schedule of the same name.';

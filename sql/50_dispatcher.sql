-- The dispatcher: the parts of one launcher pass (_launcher_tick in
-- sql/53_launcher_api.sql).  Every part finds its work through an index
-- over what is due or active, never over history, so a pass costs the same
-- with 10 or 100,000 jobs and with millions of finished runs.  Every lock
-- is taken with SKIP LOCKED: a pass never waits; what it skips it retries
-- on the next pass, which its return value brings forward.

-- Cancel bookkeeping on step runs: why and since when the dispatcher has
-- been cancelling a running step (stop, step or job timeout), and since
-- when its in-database worker has been seen gone.
ALTER TABLE pgautomator.step_run
    ADD COLUMN cancel_requested_at timestamptz,
    ADD COLUMN cancel_reason pgautomator.cancel_reason,
    ADD COLUMN lost_since timestamptz;

-- Claims look for ready step runs of the kinds an executor runs.
CREATE INDEX step_run_claim_idx ON pgautomator.step_run (kind, not_before, id) WHERE state = 'queued';
-- Foreign keys that delete or null history rows need an index on the
-- referencing side, or purging a run scans it.
CREATE INDEX run_retry_of_idx ON pgautomator.run (retry_of) WHERE retry_of IS NOT NULL;

-- One fire instant of a (job, schedule) pair becomes a run, exactly once
-- (run_fire_once_idx).  The overlap policy decides its state:
--   skip      a fire while a run of the job is queued or running is recorded
--             as a skipped run;
--   queue     it waits (at most 100 waiting runs per job) and starts when
--             the running one ends;
--   parallel  it starts while fewer than max_parallel runs are running,
--             else it is recorded as skipped.
-- Catch-up runs of misfire run_all always queue.  The caller holds the
-- job's lock.  Returns the run id, NULL when the instant had fired already.
CREATE FUNCTION pgautomator._fire_run(p_job pgautomator.job, p_schedule_id bigint, p_at timestamptz,
                                      p_catch_up boolean, p_note text)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_running integer;
    v_queued  integer;
    v_active  bigint;
    v_state   text := 'queued';
    v_message text := p_note;
    v_id      bigint;
BEGIN
    -- (The running ones are few, as many as the job may run at once; the
    -- queue is counted only up to its cap: manual starts are not bounded,
    -- and each fire would otherwise read all of them.)
    SELECT count(*), min(r.id) INTO v_running, v_active
      FROM pgautomator.run r WHERE r.job_id = p_job.id AND r.state = 'running';
    SELECT count(*), least(v_active, min(q.id)) INTO v_queued, v_active
      FROM (SELECT r.id FROM pgautomator.run r WHERE r.job_id = p_job.id AND r.state = 'queued'
             ORDER BY r.id LIMIT 100) q;
    IF p_job.overlap = 'skip' AND NOT p_catch_up AND v_running + v_queued > 0 THEN
        v_state := 'skipped';
        v_message := pg_catalog.format('skipped: run %s was still active (overlap skip)', v_active);
    ELSIF p_job.overlap = 'parallel' AND NOT p_catch_up AND v_running >= p_job.max_parallel THEN
        v_state := 'skipped';
        v_message := pg_catalog.format('skipped: %s runs were running (overlap parallel, max_parallel %s)',
                                       v_running, p_job.max_parallel);
    ELSIF v_queued >= 100 THEN           -- (the cap above)
        v_state := 'skipped';
        v_message := 'skipped: 100 runs of the job were already waiting';
    END IF;
    INSERT INTO pgautomator.run (job_id, owner, schedule_id, scheduled_at, trigger, state, message, finished_at)
    VALUES (p_job.id, p_job.owner, p_schedule_id, p_at, 'schedule', v_state, v_message,
            CASE WHEN v_state = 'skipped' THEN pg_catalog.now() END)
    ON CONFLICT (job_id, schedule_id, scheduled_at) WHERE trigger = 'schedule' DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NOT NULL AND v_state = 'queued' THEN
        PERFORM pgautomator._admit(p_job);
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION pgautomator._fire_run(pgautomator.job, bigint, timestamptz, boolean, text) IS 'Turns one fire instant into a run exactly once, applying the overlap policy; NULL when it had fired already. Caller holds the job lock.';

-- The dispatcher's call of the schedule engine.  A schedule the engine
-- refuses (22023: a time zone with neither a file nor recorded rules, say)
-- or fails on (38000: an error in the engine itself) must not stop the
-- pass for every other schedule: its link gets no next instant (it fires
-- no more until the schedule is altered or enabled again), with a WARNING
-- naming it.  Any other error fails the pass as before, to be tried again.
CREATE FUNCTION pgautomator._next_fire_in_pass(p_schedule_id bigint, p_after timestamptz)
RETURNS timestamptz LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_error text;
    v_code  text;
BEGIN
    RETURN pgautomator._next_fire(p_schedule_id, p_after);
EXCEPTION WHEN invalid_parameter_value OR external_routine_exception THEN
    GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT, v_code = RETURNED_SQLSTATE;
    RAISE WARNING 'pgautomator: schedule "%" fires no more: its next instant after % cannot be computed: %',
        (SELECT s.name FROM pgautomator.schedule s WHERE s.id = p_schedule_id), p_after, v_error
        USING ERRCODE = v_code, HINT = 'Alter the schedule, or disable and enable it, once the cause is mended.';
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgautomator._next_fire_in_pass(bigint, timestamptz) IS 'The dispatcher''s _next_fire: NULL, with a WARNING, for a schedule the engine refuses or fails on, so that the pass goes on for the others.';

-- One due (job, schedule) pair.  An instant at most misfire_grace late is
-- an ordinary fire; an older one was missed (the launcher was down or
-- behind, or someone held the job's row that long), and the job's misfire
-- policy applies to the instants missed:
--   run_once  one run, for the first missed instant;
--   skip      a skipped run records the first missed instant, none runs;
--   run_all   one queued run per missed instant, oldest first, at most
--             misfire_limit of them (any beyond are dropped).
-- Then next_fire_at moves on: past the fired instant (computed by the next
-- pass: 'infinity' marks it), or past p_now after a misfire.  A disabled
-- job fires nothing and its instants pass by.
CREATE FUNCTION pgautomator._fire_due(p_job pgautomator.job, p_schedule pgautomator.schedule,
                                      p_at timestamptz, p_now timestamptz)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_after  timestamptz := p_at;
    v_last   timestamptz := p_at;
    v_at     timestamptz;
    v_n      integer := 1;
    v_defer  boolean := false;
BEGIN
    IF NOT p_schedule.enabled THEN
        UPDATE pgautomator.job_schedule SET next_fire_at = NULL
         WHERE job_id = p_job.id AND schedule_id = p_schedule.id;
        RETURN;
    END IF;
    IF NOT p_job.enabled THEN
        v_after := p_now;
        v_last := NULL;
    ELSIF p_now - p_at <= pgautomator._setting_interval('misfire_grace') THEN
        PERFORM pgautomator._fire_run(p_job, p_schedule.id, p_at, false, NULL);
        v_defer := true;
    ELSE
        v_after := p_now;
        IF p_job.misfire = 'run_once' THEN
            PERFORM pgautomator._fire_run(p_job, p_schedule.id, p_at, false,
                pg_catalog.format('misfire: the instant %s was missed (the launcher was down or behind, or the job '
                                  'was held locked); run once (misfire run_once)', p_at));
        ELSIF p_job.misfire = 'skip' THEN
            INSERT INTO pgautomator.run (job_id, owner, schedule_id, scheduled_at, trigger, state, message,
                                         finished_at)
            VALUES (p_job.id, p_job.owner, p_schedule.id, p_at, 'schedule', 'skipped',
                    pg_catalog.format('skipped: the instant %s and later ones up to %s were missed (the launcher '
                                      'was down or behind, or the job was held locked; misfire skip)', p_at, p_now),
                    pg_catalog.now())
            ON CONFLICT (job_id, schedule_id, scheduled_at) WHERE trigger = 'schedule' DO NOTHING;
        ELSE
            v_at := p_at;
            LOOP
                PERFORM pgautomator._fire_run(p_job, p_schedule.id, v_at, true,
                    pg_catalog.format('misfire: catching up the instant %s (misfire run_all)', v_at));
                v_last := v_at;
                EXIT WHEN v_n >= p_job.misfire_limit;
                v_at := pgautomator._next_fire_in_pass(p_schedule.id, v_at);
                EXIT WHEN v_at IS NULL OR v_at > p_now;
                v_n := v_n + 1;
            END LOOP;
        END IF;
    END IF;
    -- After an ordinary fire the next instant is computed by the next pass
    -- (_dispatch_fires step 1), off the path from fire instant to step start.
    UPDATE pgautomator.job_schedule
       SET next_fire_at = CASE WHEN v_defer THEN 'infinity'
                               ELSE pgautomator._next_fire_in_pass(p_schedule.id, v_after) END,
           last_fire_at = coalesce(v_last, last_fire_at)
     WHERE job_id = p_job.id AND schedule_id = p_schedule.id;
END
$$;
COMMENT ON FUNCTION pgautomator._fire_due(pgautomator.job, pgautomator.schedule, timestamptz, timestamptz) IS 'Fires one due (job, schedule) pair, applying the misfire policy when it is late by more than misfire_grace, and moves next_fire_at on.';

-- Fires due pairs, at most fire_batch of them per pass, oldest instant
-- first, over job_schedule_due_idx.  The common case (an enabled job on an
-- enabled schedule, on time, with no active run and an enabled first step)
-- is fired set-based in one statement; every other pair goes through
-- _fire_due.  Computing the next instant (a call into the schedule engine,
-- about 0.3 ms) is left to the next pass, which the return value makes
-- immediate: the launcher claims the new step runs in between.  Returns
-- when the next pair is due (p_now: call again at once).
CREATE FUNCTION pgautomator._dispatch_fires(p_now timestamptz)
RETURNS timestamptz LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_batch  integer := pgautomator._setting_int('fire_batch');
    v_grace  interval := pgautomator._setting_interval('misfire_grace');
    v_jobs   bigint[];
    v_scheds bigint[];
    v_ats    timestamptz[];
    v_fast   bigint[];
    v_i      integer;
    v_job    pgautomator.job;
    v_sched  pgautomator.schedule;
    v_next   timestamptz;
    v_more   boolean := false;
    v_computed integer;
BEGIN
    -- 1. The next instants of pairs earlier passes fired: one engine call
    --    per (schedule, fired instant), whichever number of jobs share it,
    --    50 calls per pass so that a pass stays short while work waits.
    WITH keys AS (
        SELECT DISTINCT p.schedule_id, p.last_fire_at
          FROM pgautomator.job_schedule p
         WHERE p.next_fire_at = 'infinity'
         LIMIT 50),
    nexts AS (
        SELECT k.schedule_id, k.last_fire_at,
               CASE WHEN s.enabled THEN pgautomator._next_fire_in_pass(k.schedule_id, k.last_fire_at) END AS next_at
          FROM keys k JOIN pgautomator.schedule s ON s.id = k.schedule_id),
    todo AS (
        SELECT p.job_id, p.schedule_id, n.next_at
          FROM pgautomator.job_schedule p
          JOIN nexts n ON n.schedule_id = p.schedule_id AND n.last_fire_at = p.last_fire_at
          JOIN pgautomator.job j ON j.id = p.job_id
          JOIN pgautomator.schedule ps ON ps.id = p.schedule_id
         WHERE p.next_fire_at = 'infinity'
           FOR UPDATE OF p SKIP LOCKED
           FOR KEY SHARE OF j, ps SKIP LOCKED),
    moved AS (
        UPDATE pgautomator.job_schedule js SET next_fire_at = todo.next_at
          FROM todo
         WHERE js.job_id = todo.job_id AND js.schedule_id = todo.schedule_id
        RETURNING 1)
    SELECT (SELECT count(*) FROM nexts) + 0 * (SELECT count(*) FROM moved) INTO v_computed;

    -- 2. A batch of due pairs, locked with their jobs and schedules.
    SELECT array_agg(d.job_id ORDER BY d.at), array_agg(d.schedule_id ORDER BY d.at), array_agg(d.at ORDER BY d.at)
      INTO v_jobs, v_scheds, v_ats
      FROM (SELECT js.job_id, js.schedule_id, js.next_fire_at AS at
              FROM pgautomator.job_schedule js
              JOIN pgautomator.job j ON j.id = js.job_id
              JOIN pgautomator.schedule s ON s.id = js.schedule_id
             WHERE js.next_fire_at <= p_now
             ORDER BY js.next_fire_at
             LIMIT v_batch
               FOR UPDATE OF js SKIP LOCKED
               FOR NO KEY UPDATE OF j SKIP LOCKED
               FOR KEY SHARE OF s SKIP LOCKED) d;
    IF v_jobs IS NULL THEN
        v_jobs := '{}';
    END IF;
    v_more := cardinality(v_jobs) >= v_batch OR v_computed >= 50;

    -- 3. The common case, set-based.
    WITH batch AS (
        SELECT * FROM unnest(v_jobs, v_scheds, v_ats) AS b(job_id, schedule_id, at)),
    simple AS (
        SELECT b.job_id, b.schedule_id, b.at, j.owner
          FROM batch b
          JOIN pgautomator.job j ON j.id = b.job_id
          JOIN pgautomator.schedule s ON s.id = b.schedule_id
         WHERE j.enabled AND s.enabled AND p_now - b.at <= v_grace
           AND (SELECT count(*) FROM batch b2 WHERE b2.job_id = b.job_id) = 1
           AND NOT EXISTS (SELECT FROM pgautomator.run r
                            WHERE r.job_id = b.job_id AND r.state IN ('queued', 'running'))
           AND EXISTS (SELECT FROM pgautomator.step st
                        WHERE st.job_id = b.job_id AND st.position = 1 AND st.enabled)),
    new_runs AS (
        INSERT INTO pgautomator.run (job_id, owner, schedule_id, scheduled_at, trigger, state, started_at)
        SELECT job_id, owner, schedule_id, at, 'schedule', 'running', greatest(pg_catalog.now(), at) FROM simple
        ON CONFLICT (job_id, schedule_id, scheduled_at) WHERE trigger = 'schedule' DO NOTHING
        RETURNING id, job_id),
    first_steps AS (
        INSERT INTO pgautomator.step_run (run_id, step_id, step_name, kind, attempt, state, not_before)
        SELECT nr.id, st.id, st.name, st.kind, 1, 'queued', pg_catalog.now()
          FROM new_runs nr JOIN pgautomator.step st ON st.job_id = nr.job_id AND st.position = 1
        RETURNING 1),
    moved AS (
        UPDATE pgautomator.job_schedule js SET last_fire_at = simple.at, next_fire_at = 'infinity'
          FROM simple
         WHERE js.job_id = simple.job_id AND js.schedule_id = simple.schedule_id
        RETURNING js.job_id)
    SELECT array_agg(moved.job_id) INTO v_fast FROM moved;
    IF v_fast IS NOT NULL THEN
        PERFORM pgautomator._wake('fire');
    END IF;

    -- 4. Every other pair, one by one.
    FOR v_i IN 1 .. cardinality(v_jobs) LOOP
        CONTINUE WHEN v_jobs[v_i] = ANY (coalesce(v_fast, '{}'));
        SELECT * INTO v_job FROM pgautomator.job WHERE id = v_jobs[v_i];
        SELECT * INTO v_sched FROM pgautomator.schedule WHERE id = v_scheds[v_i];
        PERFORM pgautomator._fire_due(v_job, v_sched, v_ats[v_i], p_now);
    END LOOP;

    IF v_more OR cardinality(v_jobs) > 0 THEN
        RETURN p_now;               -- more due, or next instants to compute
    END IF;
    v_next := (SELECT min(js.next_fire_at) FROM pgautomator.job_schedule js WHERE js.next_fire_at IS NOT NULL);
    IF v_next <= p_now THEN
        RETURN p_now + interval '1 second';   -- due but locked by someone else
    END IF;
    RETURN v_next;
END
$$;
COMMENT ON FUNCTION pgautomator._dispatch_fires(timestamptz) IS 'Fires up to fire_batch due (job, schedule) pairs; returns when the next pair is due.';

-- Starts queued runs whose job has room (manual starts waiting for a slot,
-- overlap queue, crash retries).  Returns p_now + 1 s when a job was locked
-- by someone else, so the next pass comes soon.
CREATE FUNCTION pgautomator._dispatch_queued(p_now timestamptz)
RETURNS timestamptz LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job_id  bigint;
    v_job     pgautomator.job;
    v_blocked boolean := false;
BEGIN
    -- The jobs with queued runs, one index probe each however long their
    -- queues (a loose scan of run_active_idx), and of those only the ones
    -- with room: locking every job with a queue at every pass would write
    -- a row lock each.  (_admit counts again under the lock.)
    FOR v_job_id IN
        WITH RECURSIVE queued AS (
            (SELECT r.job_id FROM pgautomator.run r WHERE r.state = 'queued' ORDER BY r.job_id LIMIT 1)
            UNION ALL
            SELECT (SELECT r.job_id FROM pgautomator.run r
                     WHERE r.state = 'queued' AND r.job_id > q.job_id ORDER BY r.job_id LIMIT 1)
              FROM queued q WHERE q.job_id IS NOT NULL)
        SELECT j.id FROM queued q JOIN pgautomator.job j ON j.id = q.job_id
         CROSS JOIN LATERAL (SELECT pgautomator._run_limit(j) AS n) lim
         WHERE (SELECT count(*) FROM (SELECT FROM pgautomator.run r
                                       WHERE r.job_id = j.id AND r.state = 'running' LIMIT lim.n) x) < lim.n
    LOOP
        SELECT * INTO v_job FROM pgautomator.job WHERE id = v_job_id FOR NO KEY UPDATE SKIP LOCKED;
        IF FOUND THEN
            PERFORM pgautomator._admit(v_job);
        ELSE
            v_blocked := true;
        END IF;
    END LOOP;
    RETURN CASE WHEN v_blocked THEN p_now + interval '1 second' END;
END
$$;
COMMENT ON FUNCTION pgautomator._dispatch_queued(timestamptz) IS 'Starts queued runs while their jobs'' overlap limits allow.';

-- Cancels (or terminates) an in-database step worker, if that pid is
-- still a pgautomator step worker: one that exited is not signalled, nor a
-- process that reused its pid.
CREATE FUNCTION pgautomator._signal_worker(p_step_run_id bigint, p_pid integer, p_terminate boolean)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state text;
    v_pid   integer;
BEGIN
    IF p_pid IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_stat_get_activity(p_pid) a
                                     WHERE a.backend_type LIKE 'pgautomator step%') THEN
        RETURN false;
    END IF;
    -- Only while that worker still runs this step run, checked on the row
    -- locked now (without waiting: the worker may be recording it): a
    -- worker that recorded it may already run its next step.
    IF pgautomator._lock_step_run(p_step_run_id) IS NULL THEN
        RETURN false;
    END IF;
    SELECT sr.state, sr.worker_pid INTO v_state, v_pid FROM pgautomator.step_run sr WHERE sr.id = p_step_run_id;
    IF v_state IS DISTINCT FROM 'running' OR v_pid IS DISTINCT FROM p_pid THEN
        RETURN false;
    END IF;
    -- Recorded with its step, the worker runs another one now (a deferred
    -- outcome, 55_deferred_outcomes.sql; its row lock orders this check
    -- against that record).
    IF EXISTS (SELECT FROM pgautomator.step_outcome o WHERE o.step_run_id = p_step_run_id) THEN
        RETURN false;
    END IF;
    IF p_terminate THEN
        RETURN pg_catalog.pg_terminate_backend(p_pid);
    END IF;
    RETURN pg_catalog.pg_cancel_backend(p_pid);
END
$$;
COMMENT ON FUNCTION pgautomator._signal_worker(bigint, integer, boolean) IS 'Cancels or terminates the step worker running a step run, only while that pid is still a pgautomator step worker running it.';

-- Locks a step run for an update by the dispatcher without waiting, with
-- its run, which its foreign key names: updating a row this transaction
-- wrote before (the launcher's pass reports, claims and records pids in the
-- same transaction as its tick) makes PostgreSQL check its foreign keys,
-- which would wait for a run that stop_run holds.  NULL when either is busy.
-- Callers test it beside `id = ...`: a volatile call as the only key would
-- make the update scan every step run.
CREATE FUNCTION pgautomator._lock_step_run(p_step_run_id bigint)
RETURNS bigint LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    -- The run first, then the step run: the lock order of every path.
    SELECT sr.id FROM pgautomator.step_run sr
     WHERE sr.id = p_step_run_id
       AND EXISTS (SELECT FROM pgautomator.run r WHERE r.id = sr.run_id FOR KEY SHARE SKIP LOCKED)
       FOR UPDATE OF sr SKIP LOCKED
$$;
COMMENT ON FUNCTION pgautomator._lock_step_run(bigint) IS 'Locks a step run, key-sharing its run, without waiting; NULL when either is busy.';

-- Stop requests and timeouts of running step runs.  The in-database worker
-- is cancelled (pg_cancel_backend) at once and again on every pass; after
-- kill_grace without a report it is terminated.  Remote agents learn it
-- from agent_heartbeat_v1.  A run waiting (retry delay, no free worker)
-- when its job timeout passes ends failed here.  Returns the next deadline.
CREATE FUNCTION pgautomator._dispatch_deadlines(p_now timestamptz)
RETURNS timestamptz LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_next   timestamptz;
    v_grace  interval := pgautomator._setting_interval('kill_grace');
    v        record;
    v_reason text;
BEGIN
    FOR v IN
        SELECT sr.id, sr.worker_pid, sr.cancel_requested_at, a.kind AS agent_kind,
               r.stop_requested_at,
               r.started_at + j.timeout AS job_deadline,
               sr.started_at + s.timeout AS step_deadline
          FROM pgautomator.step_run sr
          JOIN pgautomator.run r ON r.id = sr.run_id
          JOIN pgautomator.job j ON j.id = r.job_id
          LEFT JOIN pgautomator.step s ON s.id = sr.step_id
          LEFT JOIN pgautomator.agent a ON a.id = sr.agent_id
         WHERE sr.state = 'running'
    LOOP
        v_reason := CASE WHEN v.stop_requested_at IS NOT NULL THEN 'stop'
                         WHEN v.job_deadline <= p_now THEN 'job_timeout'
                         WHEN v.step_deadline <= p_now THEN 'timeout' END;
        IF v_reason IS NULL THEN
            v_next := least(v_next, v.job_deadline, v.step_deadline);
            CONTINUE;
        END IF;
        IF v.cancel_requested_at IS NULL THEN
            UPDATE pgautomator.step_run SET cancel_requested_at = p_now, cancel_reason = v_reason
             WHERE id = v.id AND pgautomator._lock_step_run(v.id) IS NOT NULL;
            IF v.agent_kind = 'remote' THEN
                PERFORM pgautomator._wake('kill');      -- the agent heartbeats and kills
            END IF;
        END IF;
        IF v.agent_kind = 'database' AND v.worker_pid IS NOT NULL THEN
            PERFORM pgautomator._signal_worker(v.id, v.worker_pid,
                v.cancel_requested_at IS NOT NULL AND v.cancel_requested_at + v_grace <= p_now);
        END IF;
        v_next := least(v_next, p_now + interval '1 second');
    END LOOP;

    -- Runs being stopped with no step left running (a claim was handed
    -- back, or the worker went without a report) end stopped.
    FOR v IN
        SELECT r.id, r.job_id, r.stop_requested_by
          FROM pgautomator.run r
         WHERE r.state = 'running' AND r.stop_requested_at IS NOT NULL
           AND NOT EXISTS (SELECT FROM pgautomator.step_run sr WHERE sr.run_id = r.id AND sr.state = 'running')
    LOOP
        CONTINUE WHEN NOT EXISTS (SELECT FROM pgautomator.job WHERE id = v.job_id FOR NO KEY UPDATE SKIP LOCKED);
        -- (IS NOT DISTINCT FROM, not =: with few runs active, "state =
        -- 'running'" would let the generic plan, kept for the launcher's
        -- life, read run_active_idx, every active run, instead of the key)
        CONTINUE WHEN NOT EXISTS (SELECT FROM pgautomator.run WHERE id = v.id AND state IS NOT DISTINCT FROM 'running'
                                     FOR UPDATE SKIP LOCKED);
        PERFORM pgautomator._finish_run(v.id, 'stopped', pg_catalog.format('stopped by %s', v.stop_requested_by));
        PERFORM pgautomator._admit((SELECT j FROM pgautomator.job j WHERE j.id = v.job_id));
    END LOOP;

    -- Runs with no step running whose job timeout has passed: from the
    -- jobs with a timeout (job_timeout_idx), most jobs have none, while a
    -- burst of fires has hundreds of runs running.
    FOR v IN
        SELECT r.id, j.id AS job_id, j.timeout, r.started_at + j.timeout AS deadline
          FROM pgautomator.job j
          JOIN pgautomator.run r ON r.job_id = j.id AND r.state = 'running'
         WHERE j.timeout IS NOT NULL
    LOOP
        IF v.deadline > p_now THEN
            v_next := least(v_next, v.deadline);
            CONTINUE;
        END IF;
        CONTINUE WHEN EXISTS (SELECT FROM pgautomator.step_run sr WHERE sr.run_id = v.id AND sr.state = 'running');
        CONTINUE WHEN NOT EXISTS (SELECT FROM pgautomator.job WHERE id = v.job_id FOR NO KEY UPDATE SKIP LOCKED);
        CONTINUE WHEN NOT EXISTS (SELECT FROM pgautomator.run WHERE id = v.id AND state IS NOT DISTINCT FROM 'running'
                                     FOR UPDATE SKIP LOCKED);
        PERFORM pgautomator._finish_run(v.id, 'failed',
            pg_catalog.format('job timeout of %s exceeded while waiting for the next step', v.timeout));
        PERFORM pgautomator._admit((SELECT j FROM pgautomator.job j WHERE j.id = v.job_id));
    END LOOP;
    RETURN v_next;
END
$$;
COMMENT ON FUNCTION pgautomator._dispatch_deadlines(timestamptz) IS 'Cancels running step runs that were stopped or timed out (terminating them after kill_grace) and fails waiting runs past their job timeout; returns the next deadline.';

-- Step runs whose executor is gone end crashed: remote agents whose
-- heartbeat expired, and in-database workers whose process has been gone
-- for 10 seconds without a report (or that never started within a minute).
-- The 10 seconds cover the launcher reporting a worker that just exited.
CREATE FUNCTION pgautomator._dispatch_crashes(p_now timestamptz)
RETURNS timestamptz LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v      record;
    v_next timestamptz;
BEGIN
    FOR v IN
        SELECT sr.id, sr.run_id, r.job_id, sr.worker_pid, sr.started_at, sr.lost_since,
               a.kind AS agent_kind, a.name AS agent_name, a.last_heartbeat, a.heartbeat_timeout
          FROM pgautomator.step_run sr
          JOIN pgautomator.run r ON r.id = sr.run_id
          LEFT JOIN pgautomator.agent a ON a.id = sr.agent_id
         WHERE sr.state = 'running'
    LOOP
        IF v.agent_kind IS NULL THEN
            PERFORM pgautomator._crash_locked(v.job_id, v.run_id, v.id, 'its agent was dropped');
        ELSIF v.agent_kind = 'remote' THEN
            IF coalesce(v.last_heartbeat, '-infinity') + v.heartbeat_timeout < p_now THEN
                PERFORM pgautomator._crash_locked(v.job_id, v.run_id, v.id,
                    pg_catalog.format('agent "%s" stopped sending heartbeats (last %s)', v.agent_name,
                                      coalesce(v.last_heartbeat::text, 'never')));
            ELSE
                v_next := least(v_next, v.last_heartbeat + v.heartbeat_timeout);
            END IF;
        ELSIF v.lost_since IS NOT NULL THEN
            IF v.lost_since + interval '10 seconds' <= p_now THEN
                PERFORM pgautomator._crash_locked(v.job_id, v.run_id, v.id,
                    CASE WHEN v.worker_pid IS NULL THEN 'its worker never started'
                         ELSE pg_catalog.format('its worker (pid %s) exited without reporting', v.worker_pid) END);
            ELSE
                v_next := least(v_next, v.lost_since + interval '10 seconds');
            END IF;
        ELSIF (v.worker_pid IS NULL AND v.started_at + interval '1 minute' <= p_now)
              -- (and still a step worker's: one reused by another process
              -- would keep a lost step run running for good; a worker just
              -- started may show no type yet, which is no sign of reuse)
              OR (v.worker_pid IS NOT NULL
                  AND NOT EXISTS (SELECT FROM pg_catalog.pg_stat_get_activity(v.worker_pid) w
                                   WHERE w.backend_type IS NOT DISTINCT FROM 'pgautomator step'
                                      OR w.backend_type IS NULL)) THEN
            UPDATE pgautomator.step_run SET lost_since = p_now
             WHERE id = v.id AND pgautomator._lock_step_run(v.id) IS NOT NULL;
            v_next := least(v_next, p_now + interval '10 seconds');
        END IF;
    END LOOP;
    RETURN v_next;
END
$$;
COMMENT ON FUNCTION pgautomator._dispatch_crashes(timestamptz) IS 'Ends as crashed the running step runs whose agent or worker is gone; returns when to look again.';

-- Takes the job, run and step-run locks in order without waiting, then
-- crashes the step run; false (to retry on the next pass) when one is busy.
CREATE FUNCTION pgautomator._crash_locked(p_job_id bigint, p_run_id bigint, p_step_run_id bigint, p_reason text)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- (the schedule a crash retry names is no foreign key: a dropped one
    -- must not keep its runs from ending)
    IF NOT EXISTS (SELECT FROM pgautomator.job WHERE id = p_job_id FOR NO KEY UPDATE SKIP LOCKED)
       OR NOT EXISTS (SELECT FROM pgautomator.run WHERE id = p_run_id FOR UPDATE SKIP LOCKED)
       OR pgautomator._lock_step_run(p_step_run_id) IS NULL THEN
        RETURN false;
    END IF;
    PERFORM pgautomator._crash_step_run(p_step_run_id, p_reason);
    RETURN true;
END
$$;
COMMENT ON FUNCTION pgautomator._crash_locked(bigint, bigint, bigint, text) IS 'Crashes a step run after taking its job, run and step-run locks without waiting; false when one was busy.';

-- Deletes finished runs older than p_before, at most p_limit, oldest first
-- over run_finished_idx.  Deleting a run also deletes its step runs and
-- mails and clears retry_of of its crash retries (foreign key actions),
-- which would wait for whoever holds those rows: another purge, the mailer
-- sending.  So they are all locked first without waiting, and a run with
-- any of them busy is left for a later batch: the launcher's pass, which
-- purges, never waits here behind a transaction that may be waiting for it.
CREATE FUNCTION pgautomator._purge_runs(p_before timestamptz, p_limit integer,
                                        p_managed_only boolean DEFAULT false)
RETURNS integer LANGUAGE plpgsql
-- A generic plan guesses many rows; JIT would cost more than the purge.
SET jit = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_runs bigint[];
    v_n    integer;
BEGIN
    v_runs := ARRAY(SELECT d.id FROM pgautomator.run d
                     WHERE d.finished_at < p_before
                       AND (NOT p_managed_only OR pgautomator._may_manage(d.owner))
                       -- (not while its mail is still to be sent: retries
                       -- take minutes, retention can be one; an hour at
                       -- most, since without SMTP settings or a mailer a
                       -- mail stays queued for good)
                       AND NOT EXISTS (SELECT FROM pgautomator.mail m
                                        WHERE m.run_id = d.id AND m.state = 'queued'
                                          AND m.queued_at > pg_catalog.now() - interval '1 hour')
                     ORDER BY d.finished_at
                     LIMIT p_limit
                       FOR UPDATE SKIP LOCKED);
    IF cardinality(v_runs) = 0 THEN
        RETURN 0;
    END IF;
    -- What the deletes will touch, against what could be locked now.
    WITH steps AS MATERIALIZED (
        SELECT s.id FROM pgautomator.step_run s WHERE s.run_id = ANY (v_runs)
           FOR UPDATE SKIP LOCKED),
    retries AS MATERIALIZED (
        SELECT c.id FROM pgautomator.run c WHERE c.retry_of = ANY (v_runs)
           FOR NO KEY UPDATE SKIP LOCKED),
    mails AS MATERIALIZED (
        SELECT m.id FROM pgautomator.mail m WHERE m.run_id = ANY (v_runs)
           FOR UPDATE SKIP LOCKED),
    busy AS (
        SELECT s.run_id FROM pgautomator.step_run s
         WHERE s.run_id = ANY (v_runs) AND NOT EXISTS (SELECT FROM steps l WHERE l.id = s.id)
        UNION
        SELECT c.retry_of FROM pgautomator.run c
         WHERE c.retry_of = ANY (v_runs) AND NOT EXISTS (SELECT FROM retries l WHERE l.id = c.id)
        UNION
        SELECT m.run_id FROM pgautomator.mail m
         WHERE m.run_id = ANY (v_runs) AND NOT EXISTS (SELECT FROM mails l WHERE l.id = m.id))
    SELECT ARRAY(SELECT b.id FROM unnest(v_runs) AS b(id) WHERE b.id NOT IN (SELECT busy.run_id FROM busy))
      INTO v_runs;
    -- (A step mail names its run too: the mails of the step runs are among these.)
    DELETE FROM pgautomator.run r WHERE r.id = ANY (v_runs);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;
COMMENT ON FUNCTION pgautomator._purge_runs(timestamptz, integer, boolean) IS 'Deletes up to p_limit finished runs (with their step runs) that finished before p_before (p_managed_only: only runs of jobs the session user manages), skipping those whose rows someone holds; returns how many.';

-- Retention: one small batch at most once a second (the session remembers
-- when), so that catching up on a long history never slows a busy launcher.
CREATE FUNCTION pgautomator._dispatch_retention(p_now timestamptz)
RETURNS timestamptz LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_keep  interval := pgautomator._setting_interval('history_retention');
    v_batch integer := pgautomator._setting_int('purge_batch');
    v_last  timestamptz := nullif(pg_catalog.current_setting('pgautomator_dispatch.last_purge', true), '');
BEGIN
    IF v_keep IS NULL THEN
        RETURN NULL;
    END IF;
    IF v_last > p_now - interval '1 second' AND v_last <= p_now THEN
        RETURN v_last + interval '1 second';
    END IF;
    PERFORM pg_catalog.set_config('pgautomator_dispatch.last_purge', p_now::text, false);
    IF pgautomator._purge_runs(p_now - v_keep, v_batch) >= v_batch THEN
        RETURN p_now + interval '1 second';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgautomator._dispatch_retention(timestamptz) IS 'Purges one batch of runs older than history_retention, at most once a second; returns when to purge again.';

-- Deferred outcomes: how a burst of steps starts at the speed of the steps.
--
-- At a fire instant the launcher claims the burst's first steps ahead of
-- the instant, in the transaction that commits at it, and hands those it
-- has no idle worker for to a queue in shared memory (handout.c).  A
-- worker in pgautomator's database that finishes a step takes its next one
-- from that queue instead of claiming it, and records its step's outcome
-- in step_outcome (_worker_defer), in the step's own transaction: one
-- insert, where recording it in full (_step_report: locking the run,
-- updating the step run and the run, deciding what follows) and claiming
-- the next step costs the worker several times the step itself.  The run
-- is moved on later, when the burst has started (_apply_outcomes, from the
-- launcher's pass): until then its step run still shows as running.
--
-- The outcome commits with the step's work, as a full record does: a crash
-- never leaves a step whose work committed without its outcome.  Whoever
-- would end a running step run otherwise (the crash check, the launcher's
-- start, a cancel for a stop or a timeout) looks for its deferred outcome
-- first.

CREATE TABLE pgautomator.step_outcome (
    -- (no foreign key: a key check and its row lock would cost every
    -- deferred step; an outcome whose step run is gone is dropped when
    -- applied)
    step_run_id   bigint PRIMARY KEY,
    succeeded     boolean NOT NULL,
    sqlstate      text,
    error         text,
    messages      text,
    rows_affected bigint,
    output        text,
    ended_at      timestamptz NOT NULL
);
COMMENT ON TABLE pgautomator.step_outcome IS 'Outcomes of step runs recorded with their steps and not yet applied to their runs (the launcher applies them within moments).';

-- A step worker that finished step run p_step_run_id and took step run
-- p_next from the launcher's hand-out queue: records the outcome for later
-- and makes p_next its own (its pid, for a stop or a timeout to cancel it).
-- Returns 1 when p_next is its to run; 0 when p_next is busy (locked by a
-- stop or a timeout just now: the worker puts it back in the queue); -1
-- when p_next may no longer run here (its run is being stopped or ended,
-- another worker has it, its time is up): it goes
-- back to the ready queue for the dispatcher to end or claim again, and
-- the worker drops it.  A stop is seen on p_next itself (stop_run marks its
-- running step runs); its run and job are read only when p_check_run (the
-- worker passes whether p_next has a time limit): whether the job's
-- timeout passed while it waited.  In C (bgworker/step_defer.c): one
-- statement planned once per worker, which the worker runs directly, as
-- the bootstrap superuser (see _worker_settle); this is the same code for
-- SQL (tests, the rehearsal).  Granted to no one.
CREATE FUNCTION pgautomator._worker_defer(p_step_run_id bigint, p_succeeded boolean, p_sqlstate text,
                                          p_error text, p_messages text, p_rows bigint, p_output text,
                                          p_next bigint, p_pid integer, p_check_run boolean DEFAULT true)
RETURNS integer LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp   -- (the worker pins the same itself)
AS 'MODULE_PATHNAME', 'pga_worker_defer';
COMMENT ON FUNCTION pgautomator._worker_defer(bigint, boolean, text, text, text, bigint, text, bigint, integer, boolean) IS 'Called by an in-database step worker that took its next step run from the launcher''s hand-out queue: records its finished step run''s outcome for later (step_outcome) and makes the next one its own; 1: run it, 0: busy, put it back, -1: not to run (given back to the ready queue).';

-- The rest of _worker_defer when the next step run p_next could not be
-- taken: 0 when someone else holds it now (a stop or a timeout at work),
-- else -1, after giving it back to the ready queue as a claim the launcher
-- could not start (a run being stopped then ends at the next pass).
CREATE FUNCTION pgautomator._worker_defer_refused(p_next bigint)
RETURNS integer LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pgautomator.step_run sr WHERE sr.id = p_next FOR NO KEY UPDATE SKIP LOCKED) THEN
        RETURN CASE WHEN EXISTS (SELECT FROM pgautomator.step_run sr WHERE sr.id = p_next) THEN 0 ELSE -1 END;
    END IF;
    UPDATE pgautomator.step_run
       SET state = 'queued', agent_id = NULL, started_at = NULL, lost_since = NULL,
           cancel_requested_at = NULL, cancel_reason = NULL
     WHERE id = p_next AND state IS NOT DISTINCT FROM 'running' AND worker_pid IS NULL;
    IF FOUND THEN
        PERFORM pgautomator._wake('release');
    END IF;
    RETURN -1;
END
$$;
COMMENT ON FUNCTION pgautomator._worker_defer_refused(bigint) IS 'The end of _worker_defer for a next step run it could not take: 0 when it is busy (locked by someone else), else -1 after giving it back to the ready queue.';

-- Applies one deferred outcome as the worker would have reported it, at
-- the instant it recorded it, and drops it.  False when there was none.
-- The caller holds, or may wait for, the locks of its run.
CREATE FUNCTION pgautomator._apply_outcome(p_step_run_id bigint)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v pgautomator.step_outcome;
BEGIN
    DELETE FROM pgautomator.step_outcome o WHERE o.step_run_id = p_step_run_id RETURNING o.* INTO v;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- (false when the step run is gone or no longer running: nothing to do)
    PERFORM pgautomator._step_report(v.step_run_id, pgautomator._database_agent(), v.succeeded, NULL, v.sqlstate,
                                     v.error, v.messages, v.rows_affected, v.output, false, v.ended_at);
    RETURN true;
END
$$;
COMMENT ON FUNCTION pgautomator._apply_outcome(bigint) IS 'Applies the deferred outcome of a step run (if it has one) to its run, as of when it was recorded, and drops it; true when there was one.';

-- Applies every deferred outcome, oldest first, each in a block of its
-- own.  The launcher never waits here: an outcome whose run someone holds
-- (a stop_run in an open transaction) waits for a later pass, as does one
-- that met a conflict that may pass (a deadlock, a lock timeout).  One
-- that fails otherwise would fail each time: it is logged and dropped, and
-- its step run is marked lost, which the crash check ends as crashed 10
-- seconds later.  Returns how many are left for a later pass.
CREATE FUNCTION pgautomator._apply_outcomes()
RETURNS integer LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan   -- see _launcher_tick
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id    bigint;
    v_left  integer := 0;
    v_error text;
    v_code  text;
BEGIN
    FOR v_id IN SELECT o.step_run_id FROM pgautomator.step_outcome o ORDER BY o.step_run_id LOOP
        BEGIN
            -- (the run's lock, the first of every path, without waiting;
            -- a step run that is gone has none to take)
            IF EXISTS (SELECT FROM pgautomator.step_run sr WHERE sr.id = v_id)
               AND NOT EXISTS (SELECT FROM pgautomator.run r
                                WHERE r.id = (SELECT sr.run_id FROM pgautomator.step_run sr WHERE sr.id = v_id)
                                  FOR UPDATE SKIP LOCKED) THEN
                v_left := v_left + 1;
                CONTINUE;
            END IF;
            PERFORM pgautomator._apply_outcome(v_id);
        EXCEPTION WHEN deadlock_detected OR lock_not_available OR serialization_failure THEN
            v_left := v_left + 1;
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT, v_code = RETURNED_SQLSTATE;
            RAISE WARNING 'pgautomator: could not apply the outcome of step run %: %', v_id, v_error
                USING ERRCODE = v_code, HINT = 'The step run ends as crashed.';
            DELETE FROM pgautomator.step_outcome WHERE step_run_id = v_id;
            -- (no pid, lost since now: the crash check ends it; its worker
            -- runs other steps, which no stop of it may reach)
            UPDATE pgautomator.step_run SET worker_pid = NULL, lost_since = pg_catalog.now()
             WHERE id = v_id AND state IS NOT DISTINCT FROM 'running';
        END;
    END LOOP;
    RETURN v_left;
END
$$;
COMMENT ON FUNCTION pgautomator._apply_outcomes() IS 'Applies the deferred step outcomes to their runs, oldest first, without waiting for a lock (one that fails for good is logged and dropped); returns how many are left for a later pass.';

-- Which of the step runs waiting in the launcher's hand-out queue (p_ids)
-- no worker is to take any more: those whose runs are being stopped or
-- have ended, whose job timeout has passed, that a timeout or a stop is
-- cancelling, or that are no longer claimed and waiting.  The launcher
-- takes them out of the queue and gives them back to the ready queue
-- (_launcher_release, which leaves alone one that is not waiting), where
-- the dispatcher ends them as it ends any.
CREATE FUNCTION pgautomator._launcher_handout_stale(p_ids bigint[])
RETURNS SETOF bigint LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT i.id
      FROM pg_catalog.unnest(p_ids) AS i(id)
      LEFT JOIN pgautomator.step_run sr ON sr.id = i.id
      LEFT JOIN pgautomator.run r ON r.id = sr.run_id
      LEFT JOIN pgautomator.job j ON j.id = r.job_id
     WHERE sr.id IS NULL OR sr.state IS DISTINCT FROM 'running' OR sr.worker_pid IS NOT NULL
        OR sr.cancel_requested_at IS NOT NULL OR sr.step_id IS NULL
        OR r.state IS DISTINCT FROM 'running' OR r.stop_requested_at IS NOT NULL
        OR r.started_at + j.timeout <= pg_catalog.now()
$$;
COMMENT ON FUNCTION pgautomator._launcher_handout_stale(bigint[]) IS 'Of the step runs waiting in the launcher''s hand-out queue, those no worker is to take any more (their runs are being stopped or have ended, their time is up, or they no longer wait).';

-- The run state machine (README.md "Running jobs"): starting a run,
-- deciding what follows a finished step, finishing a run, admitting queued
-- runs, and crashing what an executor lost.  Executors never decide: they
-- claim a step run, execute it and report; these functions do the rest.
--
-- Lock order, everywhere: job, then run, then step_run (claims, reports,
-- the launcher's other calls and stop_run all lock the run before its step
-- run).  Paths that hold a run and then need its job (a report ending a
-- run) take the job lock with SKIP LOCKED and leave admission to the
-- dispatcher when it is busy.  The dispatcher takes every lock with SKIP
-- LOCKED and retries on its next pass: the launcher's pass holds its locks
-- until it commits, so it must never wait behind a user's transaction that
-- waits for it.
--
-- What happened when is statement_timestamp(), not now(): a step worker
-- records a step that succeeded in the step's own transaction, which began
-- when the step's statement did; it sets the statement time to the step's
-- end first (pga_settle_in_step), so a step queued after it is queued then
-- (not_before, queued_at), behind what was queued while it ran.

-- How many runs of a job may run at once.
CREATE FUNCTION pgautomator._run_limit(p_job pgautomator.job)
RETURNS integer LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ BEGIN RETURN CASE WHEN p_job.overlap = 'parallel' THEN p_job.max_parallel ELSE 1 END; END $$;
COMMENT ON FUNCTION pgautomator._run_limit(pgautomator.job) IS 'How many runs of a job may be running at once (max_parallel for overlap parallel, else 1).';

-- Step output and messages are bounded: the tail is what tells why a step
-- failed, so the head is cut, with a mark saying how much.
CREATE FUNCTION pgautomator._tail(p_text text, p_limit integer)
RETURNS text LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN CASE WHEN p_text IS NULL OR pg_catalog.length(p_text) <= p_limit THEN p_text
                ELSE pg_catalog.format(E'[%s characters cut]\n', pg_catalog.length(p_text) - p_limit)
                     || pg_catalog.right(p_text, p_limit) END;
END
$$;
COMMENT ON FUNCTION pgautomator._tail(text, integer) IS 'Keeps the last p_limit characters of a text, marking how many were cut.';

-- First line of an error, for run messages.
CREATE FUNCTION pgautomator._first_line(p_text text)
RETURNS text LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ BEGIN RETURN pg_catalog.left(pg_catalog.split_part(p_text, E'\n', 1), 500); END $$;
COMMENT ON FUNCTION pgautomator._first_line(text) IS 'The first line of a text, at most 500 characters.';

-- Queues one attempt of a step in a run.
CREATE FUNCTION pgautomator._queue_step(p_run_id bigint, p_step pgautomator.step, p_attempt integer,
                                        p_not_before timestamptz)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO pgautomator.step_run (run_id, step_id, step_name, kind, attempt, state, not_before, queued_at)
    VALUES (p_run_id, p_step.id, p_step.name, p_step.kind, p_attempt, 'queued', p_not_before,
            pg_catalog.statement_timestamp())
    RETURNING id INTO v_id;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION pgautomator._queue_step(bigint, pgautomator.step, integer, timestamptz) IS 'Queues an attempt of a step in a run, ready at p_not_before.';

-- The first enabled step at or after a position; disabled steps passed over
-- are recorded as skipped step runs so the history shows them.
CREATE FUNCTION pgautomator._next_enabled(p_run_id bigint, p_job_id bigint, p_position integer)
RETURNS pgautomator.step LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_step pgautomator.step;
BEGIN
    FOR v_step IN
        SELECT * FROM pgautomator.step s WHERE s.job_id = p_job_id AND s.position >= p_position ORDER BY s.position
    LOOP
        IF v_step.enabled THEN
            RETURN v_step;
        END IF;
        INSERT INTO pgautomator.step_run (run_id, step_id, step_name, kind, state, queued_at, finished_at, messages)
        VALUES (p_run_id, v_step.id, v_step.name, v_step.kind, 'skipped', pg_catalog.statement_timestamp(),
                pg_catalog.statement_timestamp(),
                'skipped: the step is disabled');
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgautomator._next_enabled(bigint, bigint, integer) IS 'Returns the first enabled step of a job at or after a position (NULL: none), recording disabled ones as skipped.';

-- Ends a run and queues its notification.  Step runs not yet started end
-- with it; running ones (a worker being cancelled) report later.  Returns
-- whether a run of the same job is queued, waiting for its overlap policy
-- (the caller may admit it: _try_admit).
CREATE FUNCTION pgautomator._finish_run(p_run_id bigint, p_state text, p_message text,
                                        p_sweep boolean DEFAULT true)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_mail   boolean;
    v_queued boolean;
BEGIN
    -- (whether the job sends e-mail and whether another of its runs waits,
    -- read by the update: statements less on the path of every run's end)
    UPDATE pgautomator.run r
       SET state = p_state, finished_at = pg_catalog.statement_timestamp(), message = p_message
     WHERE r.id = p_run_id
    RETURNING EXISTS (SELECT FROM pgautomator.job j
                       WHERE j.id = r.job_id AND j.notify_on <> 'never' AND cardinality(j.notify_to) > 0),
              EXISTS (SELECT FROM pgautomator.run q
                       WHERE q.job_id = r.job_id AND q.state = 'queued' AND q.id <> r.id)
      INTO v_mail, v_queued;
    -- (p_sweep false: the caller knows no step run of the run is queued)
    IF p_sweep THEN
        UPDATE pgautomator.step_run
           SET state = CASE WHEN p_state = 'stopped' THEN 'stopped' ELSE 'skipped' END,
               finished_at = pg_catalog.statement_timestamp(),
               messages = 'not started: the run ended ' || p_state
         WHERE run_id = p_run_id AND state = 'queued';
    END IF;
    IF v_mail THEN
        PERFORM pgautomator._queue_run_mail(p_run_id);
    END IF;
    RETURN coalesce(v_queued, false);
END
$$;
COMMENT ON FUNCTION pgautomator._finish_run(bigint, text, text, boolean) IS 'Ends a run in a final state with a message; its queued step runs end too (unless p_sweep is false). True when another run of its job is queued.';

-- Starts a queued run: its first enabled step (from start_step_id when
-- given) is queued.  A job without enabled steps ends skipped, not failed.
-- The caller holds the job's lock.
CREATE FUNCTION pgautomator._start_run(p_run_id bigint)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run  pgautomator.run;
    v_from integer := 1;
    v_step pgautomator.step;
    v_state text;
BEGIN
    -- Locked by primary key alone, its state checked here (see
    -- _claim_local); an instant the launcher prepared ahead starts at the
    -- instant.
    SELECT r.state INTO v_state FROM pgautomator.run r WHERE r.id = p_run_id FOR NO KEY UPDATE;
    IF v_state IS DISTINCT FROM 'queued' THEN
        RETURN;
    END IF;
    UPDATE pgautomator.run
       SET state = 'running', started_at = greatest(pg_catalog.statement_timestamp(), scheduled_at),
           message = CASE WHEN message LIKE 'waiting:%' THEN NULL ELSE message END
     WHERE id = p_run_id
    RETURNING * INTO v_run;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_run.start_step_id IS NOT NULL THEN
        SELECT s.position INTO v_from FROM pgautomator.step s WHERE s.id = v_run.start_step_id;
        IF NOT FOUND THEN
            PERFORM pgautomator._finish_run(p_run_id, 'failed',
                'the step this run was to start from no longer exists');
            RETURN;
        END IF;
    END IF;
    v_step := pgautomator._next_enabled(p_run_id, v_run.job_id, v_from);
    IF v_step.id IS NOT NULL THEN
        PERFORM pgautomator._queue_step(p_run_id, v_step, 1, pg_catalog.statement_timestamp());
    ELSIF EXISTS (SELECT FROM pgautomator.step s WHERE s.job_id = v_run.job_id) THEN
        PERFORM pgautomator._finish_run(p_run_id, 'skipped',
            CASE WHEN v_run.start_step_id IS NULL THEN 'the job has no enabled steps'
                 ELSE 'the job has no enabled steps from the start step on' END);
    ELSE
        PERFORM pgautomator._finish_run(p_run_id, 'skipped', 'the job has no steps');
    END IF;
END
$$;
COMMENT ON FUNCTION pgautomator._start_run(bigint) IS 'Starts a queued run by queueing its first enabled step; a run with none ends skipped. Caller holds the job lock.';

-- Starts queued runs of a job, oldest first, while its overlap limit
-- allows.  The caller holds the job's lock, which makes the count exact.
CREATE FUNCTION pgautomator._admit(p_job pgautomator.job)
RETURNS integer LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limit   integer := pgautomator._run_limit(p_job);
    v_running integer;
    v_next    bigint;
    v_started integer := 0;
BEGIN
    -- Counted once (at most up to the limit), then kept up to date: a
    -- started run is running unless it ended at once (no enabled steps).
    SELECT count(*) INTO v_running
      FROM (SELECT FROM pgautomator.run r WHERE r.job_id = p_job.id AND r.state = 'running' LIMIT v_limit) x;
    LOOP
        EXIT WHEN v_running >= v_limit;
        SELECT r.id INTO v_next FROM pgautomator.run r
         WHERE r.job_id = p_job.id AND r.state = 'queued'
         ORDER BY r.id LIMIT 1;
        EXIT WHEN NOT FOUND;
        PERFORM pgautomator._start_run(v_next);
        v_started := v_started + 1;
        IF (SELECT r.state FROM pgautomator.run r WHERE r.id = v_next) = 'running' THEN
            v_running := v_running + 1;
        END IF;
    END LOOP;
    IF v_started > 0 THEN
        PERFORM pgautomator._wake('run');
    END IF;
    RETURN v_started;
END
$$;
COMMENT ON FUNCTION pgautomator._admit(pgautomator.job) IS 'Starts queued runs of a job while its overlap limit allows; returns how many. Caller holds the job lock.';

-- Admission from a path that already holds run or step-run locks: the job
-- lock is taken only if free; otherwise the dispatcher admits on its next
-- pass, which the wake-up brings forward.
CREATE FUNCTION pgautomator._try_admit(p_job_id bigint)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job pgautomator.job;
BEGIN
    IF NOT EXISTS (SELECT FROM pgautomator.run r
                    WHERE r.job_id = p_job_id AND r.state = 'queued') THEN
        RETURN;
    END IF;
    SELECT * INTO v_job FROM pgautomator.job WHERE id = p_job_id FOR NO KEY UPDATE SKIP LOCKED;
    IF FOUND THEN
        PERFORM pgautomator._admit(v_job);
    ELSE
        PERFORM pgautomator._wake('admit');
    END IF;
END
$$;
COMMENT ON FUNCTION pgautomator._try_admit(bigint) IS 'Admits queued runs of a job if its lock is free, else leaves it to the dispatcher.';

-- What follows a finished step run (its outcome already recorded): a retry
-- after its delay while retries remain, else the step's on_success or
-- on_failure action.  The caller holds the run's lock; the run is running.
-- A run that ends here lets a queued run of its job in (_try_admit).
-- p_later: whether a step follows p_step (NULL: looked up here).
CREATE FUNCTION pgautomator._advance(p_run pgautomator.run, p_step_run pgautomator.step_run, p_ok boolean,
                                     p_step pgautomator.step, p_later boolean DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_step    pgautomator.step := p_step;
    v_action  text;
    v_target  bigint;
    v_next    pgautomator.step;
    v_failed  integer;
    v_what    text;
    v_state   text;             -- how the run ends (NULL: it goes on)
    v_message text;
BEGIN
    IF v_step.id IS NULL THEN
        v_state := 'failed';
        v_message := pg_catalog.format('step "%s" was dropped while the run was going', p_step_run.step_name);
    ELSIF NOT p_ok AND p_step_run.attempt <= v_step.retries THEN
        PERFORM pgautomator._queue_step(p_run.id, v_step, p_step_run.attempt + 1,
                                        pg_catalog.statement_timestamp() + v_step.retry_interval);
        RETURN false;
    ELSE
        IF v_step.notify_on <> 'never' AND cardinality(v_step.notify_to) > 0 THEN
            PERFORM pgautomator._queue_step_mail(p_step_run.id);    -- its final outcome
        END IF;
        IF p_ok THEN
            v_action := v_step.on_success;
            v_target := v_step.on_success_step;
        ELSE
            v_action := v_step.on_failure;
            v_target := v_step.on_failure_step;
        END IF;
        -- (what the run's message says when this action ends it; only then)
        IF v_action IN ('succeed', 'fail') THEN
            v_what := CASE WHEN p_ok THEN pg_catalog.format('step "%s" succeeded', v_step.name)
                           ELSE pg_catalog.format('step "%s" failed%s: %s', v_step.name,
                                    CASE WHEN p_step_run.attempt > 1
                                         THEN pg_catalog.format(' after %s attempts', p_step_run.attempt) END,
                                    coalesce(pgautomator._first_line(p_step_run.error), 'no error message')) END;
        END IF;

        IF v_action = 'succeed' THEN
            v_state := 'succeeded';
            v_message := v_what || CASE WHEN p_ok THEN '' ELSE '; its on_failure action is succeed' END;
        ELSIF v_action = 'fail' THEN
            v_state := 'failed';
            v_message := v_what || CASE WHEN p_ok THEN '; its on_success action is fail' ELSE '' END;
        ELSE
            IF v_action = 'goto' THEN
                v_next := pgautomator._next_enabled(p_run.id, p_run.job_id,
                                                    (SELECT s.position FROM pgautomator.step s WHERE s.id = v_target));
            ELSE
                IF p_later IS NULL THEN
                    p_later := EXISTS (SELECT FROM pgautomator.step s
                                        WHERE s.job_id = p_run.job_id AND s.position > v_step.position);
                END IF;
                -- (checked first: a run's last step, the most common, needs no call)
                IF p_later THEN
                    v_next := pgautomator._next_enabled(p_run.id, p_run.job_id, v_step.position + 1);
                END IF;
            END IF;

            IF v_next.id IS NOT NULL THEN
                -- A go-to loop is allowed (polling jobs use one) but not endless.
                IF (SELECT count(*) FROM pgautomator.step_run sr WHERE sr.run_id = p_run.id) < 10000 THEN
                    -- A failure the run goes on from is marked in the run's
                    -- message, if it has none yet (it says so while the run
                    -- goes on): a run whose message is still NULL at its end
                    -- has no failure to count.
                    IF NOT p_ok AND p_run.message IS NULL THEN
                        UPDATE pgautomator.run
                           SET message = pg_catalog.format('step "%s" failed; the run goes on with step "%s"',
                                                           v_step.name, v_next.name)
                         WHERE id = p_run.id;
                    END IF;
                    PERFORM pgautomator._queue_step(p_run.id, v_next, 1, pg_catalog.statement_timestamp());
                    RETURN false;
                END IF;
                v_state := 'failed';
                v_message := 'the run reached 10000 step runs; a go-to loop does not end';
            ELSE
                -- Past the last step: the run succeeded; failures that
                -- on_failure actions passed over are counted in the message.
                IF p_run.message IS NOT NULL OR NOT p_ok THEN
                    SELECT count(*) INTO v_failed FROM pgautomator.step_run sr
                     WHERE sr.run_id = p_run.id AND sr.state = 'failed'
                       AND NOT EXISTS (SELECT FROM pgautomator.step_run later
                                        WHERE later.run_id = sr.run_id AND later.step_id = sr.step_id
                                          AND later.id > sr.id AND later.attempt = sr.attempt + 1);
                END IF;
                v_state := 'succeeded';
                v_message := CASE WHEN coalesce(v_failed, 0) = 0 THEN 'all steps done'
                                  ELSE pg_catalog.format('all steps done; %s failed step(s) were passed over by their on_failure action',
                                                         v_failed) END;
            END IF;
        END IF;
    END IF;

    IF pgautomator._finish_run(p_run.id, v_state, v_message, false) THEN
        PERFORM pgautomator._try_admit(p_run.job_id);
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION pgautomator._advance(pgautomator.run, pgautomator.step_run, boolean, pgautomator.step, boolean) IS 'Decides what follows a finished step run: retry, next step, go-to, or the end of the run (and lets a queued run of the job in); true when the run ended. Caller holds the run lock.';

-- Records the outcome of a running step run and moves the run on.  Shared
-- by _launcher_report (in-database workers) and agent_report_v1.  Returns
-- false, changing nothing, when the step run is no longer running (it was
-- stopped, crashed or already reported) or belongs to another agent.
CREATE FUNCTION pgautomator._step_report(
    p_step_run_id bigint, p_agent_id bigint, p_ok boolean, p_exit_code integer, p_sqlstate text,
    p_error text, p_messages text, p_rows bigint, p_output text, p_keep_output boolean DEFAULT false,
    p_ended_at timestamptz DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run     pgautomator.run;
    v_sr      pgautomator.step_run;
    v_job     pgautomator.job;
    v_step    pgautomator.step;
    v_limit   integer;        -- output_limit, read only for a text that may exceed it
    v_state   text;
    v_error   text := p_error;
    v_end     text;
    v_upd     record;
    -- when the step ended: now, or for a deferred outcome (55_deferred_outcomes.sql) when it committed
    v_at      timestamptz := coalesce(p_ended_at, pg_catalog.statement_timestamp());
BEGIN
    IF p_ok IS NULL THEN
        RAISE EXCEPTION 'succeeded must not be NULL' USING ERRCODE = '22004';
    END IF;
    -- The run first, then the step run (the lock order of every path).
    SELECT * INTO v_run FROM pgautomator.run
     WHERE id = (SELECT sr.run_id FROM pgautomator.step_run sr WHERE sr.id = p_step_run_id)
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;                       -- purged or its job dropped
    END IF;
    -- (no lock of its own: every path that changes its state holds its
    -- run, at least key-shared, and this one now holds it exclusively; an
    -- agent's streamed output may still change it, which the update below
    -- re-reads.  A success needs nothing of it before the update, which
    -- checks its state and agent itself.)
    IF p_ok THEN
        v_state := 'succeeded';
        IF v_run.stop_requested_at IS NOT NULL THEN
            v_end := 'stopped';             -- it finished first; later steps never start
        END IF;
    ELSE
        SELECT * INTO v_sr FROM pgautomator.step_run WHERE id = p_step_run_id;
        IF v_sr.state IS DISTINCT FROM 'running'
           OR (p_agent_id IS NOT NULL AND v_sr.agent_id IS DISTINCT FROM p_agent_id) THEN
            RETURN false;
        END IF;
        SELECT * INTO v_step FROM pgautomator.step WHERE id = v_sr.step_id;   -- (its timeout)
        SELECT * INTO v_job FROM pgautomator.job WHERE id = v_run.job_id;
        v_state := 'failed';
        -- Why it failed decides what follows: a stop ends the run stopped, a
        -- job timeout ends it failed, a step timeout is a failure like any.
        -- (a deferred outcome's failure came before a stop requested later)
        IF (v_run.stop_requested_at IS NOT NULL AND (p_ended_at IS NULL OR v_run.stop_requested_at <= p_ended_at))
           OR (v_sr.cancel_reason = 'stop' AND (p_ended_at IS NULL OR v_sr.cancel_requested_at <= p_ended_at)) THEN
            v_state := 'stopped';
            v_end := 'stopped';
            v_error := pg_catalog.format('stopped by %s: %s', coalesce(v_run.stop_requested_by, 'request'),
                                         coalesce(p_error, 'cancelled'));
        -- (a cancel requested after a deferred outcome's step ended did
        -- not end it)
        ELSIF (v_sr.cancel_reason = 'job_timeout' AND (p_ended_at IS NULL OR v_sr.cancel_requested_at <= p_ended_at))
              OR (v_job.timeout IS NOT NULL AND v_run.started_at + v_job.timeout <= v_at) THEN
            v_end := 'job_timeout';
            v_error := pg_catalog.format('job timeout of %s exceeded: %s', v_job.timeout,
                                         coalesce(p_error, 'cancelled'));
        ELSIF (v_sr.cancel_reason = 'timeout' AND (p_ended_at IS NULL OR v_sr.cancel_requested_at <= p_ended_at))
              OR (v_step.timeout IS NOT NULL AND v_sr.started_at + v_step.timeout <= v_at) THEN
            v_error := pg_catalog.format('step timeout of %s exceeded: %s', v_step.timeout,
                                         coalesce(p_error, 'cancelled'));
        END IF;
    END IF;

    -- (no setting is below 1024: most texts are shorter, and a read costs)
    IF greatest(length(v_error), length(p_messages), length(p_output)) > 1024 THEN
        v_limit := pgautomator._setting_int('output_limit');
    END IF;
    -- (the step and whether a step follows it, read by the update: the
    -- statements of every step's end)
    UPDATE pgautomator.step_run u SET
        state = v_state,
        finished_at = v_at,
        exit_code = p_exit_code,
        sqlstate = CASE WHEN p_ok THEN NULL ELSE coalesce(p_sqlstate, sqlstate) END,
        -- (_tail only for long texts: most are short, and a call costs)
        error = CASE WHEN length(v_error) > v_limit THEN pgautomator._tail(v_error, v_limit) ELSE v_error END,
        messages = CASE WHEN length(p_messages) > v_limit THEN pgautomator._tail(p_messages, v_limit)
                        ELSE p_messages END,
        rows_affected = p_rows,
        output = CASE WHEN p_keep_output AND p_output IS NULL THEN output
                      WHEN length(p_output) > v_limit THEN pgautomator._tail(p_output, v_limit)
                      ELSE p_output END
    -- (IS NOT DISTINCT FROM, not =: "state = 'running'" would let the generic
    -- plan, kept for the life of a worker, scan step_run_running_idx, every
    -- running step run, instead of the primary key)
     WHERE id = p_step_run_id AND state IS NOT DISTINCT FROM 'running'
       AND (p_agent_id IS NULL OR agent_id = p_agent_id)
    RETURNING u AS sr, (SELECT st FROM pgautomator.step st WHERE st.id = u.step_id) AS st,
              EXISTS (SELECT FROM pgautomator.step st JOIN pgautomator.step later ON later.job_id = st.job_id
                       WHERE st.id = u.step_id AND later.position > st.position) AS later
      INTO v_upd;
    IF NOT FOUND THEN
        RETURN false;                       -- no longer running, or another agent's
    END IF;
    v_sr := v_upd.sr;
    v_step := v_upd.st;

    IF v_run.state <> 'running' THEN
        RETURN true;                        -- the run already ended (forced)
    END IF;
    IF v_end IS NOT NULL THEN
        PERFORM pgautomator._queue_step_mail(v_sr.id);
    END IF;
    IF v_end = 'stopped' THEN
        IF pgautomator._finish_run(v_run.id, 'stopped',
               pg_catalog.format('stopped by %s during step "%s"', coalesce(v_run.stop_requested_by, 'request'),
                                 v_sr.step_name)) THEN
            PERFORM pgautomator._try_admit(v_run.job_id);
        END IF;
        RETURN true;
    ELSIF v_end = 'job_timeout' THEN
        IF pgautomator._finish_run(v_run.id, 'failed',
               pg_catalog.format('job timeout of %s exceeded during step "%s"', v_job.timeout, v_sr.step_name)) THEN
            PERFORM pgautomator._try_admit(v_run.job_id);
        END IF;
        RETURN true;
    ELSIF pgautomator._advance(v_run, v_sr, p_ok, v_step, v_upd.later) THEN
        RETURN true;                        -- the run ended
    END IF;
    -- Wake whoever runs the step queued now: remote agents for shell and
    -- remote_sql steps, the launcher for a sql step after a remote one, and
    -- the launcher for a retry after its delay (to wake at its time: a step
    -- worker that records its own outcome does not tell it).  Not on every
    -- report: each NOTIFY makes every agent heartbeat and claim.
    -- (OFFSET 0: the run's step runs by run_id, never a scan of a partial
    -- index on state, which a generic plan could choose)
    IF EXISTS (SELECT FROM (SELECT sr.state, sr.not_before, sr.kind FROM pgautomator.step_run sr
                             WHERE sr.run_id = v_run.id OFFSET 0) sr
                WHERE sr.state = 'queued'
                  AND (sr.not_before > pg_catalog.statement_timestamp() OR sr.kind <> 'sql'
                       OR NOT EXISTS (SELECT FROM pgautomator.agent a WHERE a.id = v_sr.agent_id AND a.kind = 'database'))) THEN
        PERFORM pgautomator._wake('step');
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION pgautomator._step_report(bigint, bigint, boolean, integer, text, text, text, bigint, text, boolean, timestamptz) IS 'Records the outcome of a running step run (p_ended_at: when it ended, default now) and advances its run; false when the step run is no longer running.';

-- Ends a step run that its executor lost (server restart, killed worker,
-- agent gone) as crashed, its run too, and queues a crash retry of the run
-- from the crashed step when the job asks for one (retry_on_crash) and the
-- chain of crash retries is shorter than the crash_retries setting.
-- The caller holds the job's and the run's locks.
CREATE FUNCTION pgautomator._crash_step_run(p_step_run_id bigint, p_reason text)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sr    pgautomator.step_run;
    v_run   pgautomator.run;
    v_job   pgautomator.job;
    v_depth   integer;
    v_retry   bigint;
    v_message text;
BEGIN
    -- Its worker recorded an outcome with the step and went on (a deferred
    -- outcome, 55_deferred_outcomes.sql): that outcome, not a crash.
    IF pgautomator._apply_outcome(p_step_run_id) THEN
        RETURN NULL;
    END IF;
    -- One the dispatcher was cancelling for a timeout, and then ended when
    -- it outlived kill_grace, failed by its timeout, not by a crash: its
    -- retries, on_failure or the job timeout apply, never a crash retry
    -- (which would start the timed-out step again, with a new job timeout).
    IF (SELECT sr.cancel_reason FROM pgautomator.step_run sr
         WHERE sr.id = p_step_run_id AND sr.state IS NOT DISTINCT FROM 'running') IN ('timeout', 'job_timeout') THEN
        PERFORM pgautomator._step_report(p_step_run_id, NULL, false, NULL, '57014',
            pg_catalog.format('it did not end when cancelled and was ended (%s)', p_reason), NULL, NULL, NULL, true);
        RETURN NULL;
    END IF;
    UPDATE pgautomator.step_run
       SET state = 'crashed', finished_at = pg_catalog.statement_timestamp(), error = p_reason
     WHERE id = p_step_run_id AND state = 'running'
    RETURNING * INTO v_sr;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT * INTO v_run FROM pgautomator.run WHERE id = v_sr.run_id;
    IF v_run.state <> 'running' THEN
        RETURN NULL;
    END IF;
    SELECT * INTO v_job FROM pgautomator.job WHERE id = v_run.job_id;
    PERFORM pgautomator._queue_step_mail(v_sr.id);
    v_message := pg_catalog.format('crashed during step "%s": %s', v_sr.step_name, p_reason);
    IF v_job.retry_on_crash AND v_run.stop_requested_at IS NULL THEN
        v_depth := v_run.crash_depth;
        IF v_depth < pgautomator._setting_int('crash_retries') THEN
            INSERT INTO pgautomator.run (job_id, owner, schedule_id, scheduled_at, trigger, started_by,
                                         retry_of, start_step_id, state, message, crash_depth)
            VALUES (v_run.job_id, v_run.owner, v_run.schedule_id, v_run.scheduled_at, 'crash_retry',
                    v_run.started_by, v_run.id, v_sr.step_id, 'queued',
                    pg_catalog.format('retry of crashed run %s from step "%s"', v_run.id, v_sr.step_name),
                    v_depth + 1)
            RETURNING id INTO v_retry;
            v_message := v_message || pg_catalog.format('; retried as run %s', v_retry);
        ELSE
            v_message := v_message || pg_catalog.format('; not retried: %s crash retries already made', v_depth);
        END IF;
    END IF;
    IF v_run.stop_requested_at IS NOT NULL THEN
        -- It was being stopped anyway: the run ends as asked.
        PERFORM pgautomator._finish_run(v_run.id, 'stopped',
            pg_catalog.format('stopped by %s; step "%s" was lost meanwhile: %s',
                              v_run.stop_requested_by, v_sr.step_name, p_reason));
    ELSE
        PERFORM pgautomator._finish_run(v_run.id, 'crashed', v_message);
    END IF;
    PERFORM pgautomator._admit(v_job);
    PERFORM pgautomator._wake('crash');
    RETURN v_retry;
END
$$;
COMMENT ON FUNCTION pgautomator._crash_step_run(bigint, text) IS 'Ends a lost running step run and its run as crashed, queueing a crash retry when the job asks for it (one being cancelled for a timeout fails by its timeout instead); returns the retry run id. Caller holds the job and run locks.';

-- What the C launcher calls (docs/contracts.md "Dispatcher and run state
-- machine"), each in its own transaction, as the bootstrap superuser.
-- Not granted to anyone: functions starting with _ stay private.

-- One claimed in-database step run, as a step worker needs it.
CREATE TYPE pgautomator.local_step AS (
    step_run_id bigint,
    database    name,
    run_as      name,
    code        text,
    transaction text,
    timeout_ms  bigint          -- 0: none
);
COMMENT ON TYPE pgautomator.local_step IS 'A claimed sql step run for an in-database step worker (_launcher_claim).';

-- The in-database executor: the agent named 'database'.
CREATE FUNCTION pgautomator._database_agent()
RETURNS bigint LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ BEGIN RETURN (SELECT a.id FROM pgautomator.agent a WHERE a.name = 'database' AND a.kind = 'database'); END $$;
COMMENT ON FUNCTION pgautomator._database_agent() IS 'The id of the in-database executor (agent "database"), NULL before the launcher first started.';

-- Registers the database agent and crashes the step runs a previous
-- launcher or server life left running: those whose worker is not alive
-- (or started before the server did: a reused pid is not our worker).
CREATE FUNCTION pgautomator._launcher_start(p_pid integer)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent   bigint;
    v_workers text := pg_catalog.current_setting('pgautomator.max_workers', true);
    v_sleep   text := pg_catalog.current_setting('pgautomator.max_sleep', true);
    v         record;
BEGIN
    IF EXISTS (SELECT FROM pgautomator.agent a WHERE a.name = 'database' AND a.kind <> 'database') THEN
        RAISE EXCEPTION 'a remote agent is registered under the reserved name "database"'
            USING ERRCODE = '55000', HINT = 'Drop it with drop_agent(''database'').';
    END IF;
    -- The launcher passes at least every max_sleep, heartbeat included: it
    -- is shown down after three missed passes (at least 30 seconds).
    INSERT INTO pgautomator.agent AS a (name, kind, host, capabilities, max_parallel, pid, version, last_heartbeat,
                                        registered_at, heartbeat_timeout)
    VALUES ('database', 'database', pg_catalog.current_database(), '{sql}',
            CASE WHEN v_workers ~ '^[0-9]{1,4}$' THEN greatest(1, least(1000, v_workers::integer)) ELSE 8 END,
            p_pid, (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'pgautomator'),
            pg_catalog.now(), pg_catalog.now(),
            greatest(interval '30 seconds',
                     3 * CASE WHEN v_sleep ~ '^[0-9]{1,4}s$' THEN v_sleep::interval ELSE interval '10 seconds' END))
    ON CONFLICT (name) DO UPDATE
       SET host = excluded.host, capabilities = excluded.capabilities, max_parallel = excluded.max_parallel,
           pid = excluded.pid, version = excluded.version, last_heartbeat = excluded.last_heartbeat,
           registered_at = excluded.registered_at, heartbeat_timeout = excluded.heartbeat_timeout
    RETURNING a.id INTO v_agent;

    -- What the workers of the previous life recorded with their steps and
    -- did not apply yet (55_deferred_outcomes.sql), oldest first: those
    -- step runs ended as they did, not as crashed.
    PERFORM pgautomator._apply_outcomes();
    FOR v IN
        SELECT sr.id, sr.run_id, r.job_id, sr.worker_pid
          FROM pgautomator.step_run sr
          JOIN pgautomator.run r ON r.id = sr.run_id
         WHERE sr.state = 'running' AND sr.agent_id = v_agent
           AND (sr.worker_pid IS NULL
                OR sr.started_at < pg_catalog.pg_postmaster_start_time()
                OR NOT EXISTS (SELECT FROM pg_catalog.pg_stat_get_activity(sr.worker_pid)))
         ORDER BY r.job_id, sr.run_id
    LOOP
        PERFORM FROM pgautomator.job WHERE id = v.job_id FOR NO KEY UPDATE;
        PERFORM FROM pgautomator.run WHERE id = v.run_id FOR UPDATE;
        PERFORM pgautomator._crash_step_run(v.id,
            CASE WHEN v.worker_pid IS NULL THEN 'the launcher restarted before its worker started'
                 ELSE pg_catalog.format('its worker (pid %s) was lost: server restart or killed process',
                                        v.worker_pid) END);
    END LOOP;
    PERFORM pgautomator._wake('launcher');
    RETURN v_agent;
END
$$;
COMMENT ON FUNCTION pgautomator._launcher_start(integer) IS 'Launcher start: registers the database agent and ends step runs left running by a previous life as crashed (retrying per retry_on_crash); returns the agent id.';

-- One dispatcher pass; returns when the next thing is due (at or before
-- now: call again at once), NULL when nothing is scheduled.  p_now is for
-- tests: the pass decides as if it were that instant.
CREATE FUNCTION pgautomator._launcher_tick(p_now timestamptz DEFAULT NULL)
RETURNS timestamptz LANGUAGE plpgsql
-- Short index lookups: compiling would dominate.  And generic plans: a
-- range over next_fire_at looks large to the planner, so it would re-plan
-- each statement every pass (custom plans), a cost that grows with jobs.
SET jit = off
SET plan_cache_mode = force_generic_plan
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now  timestamptz := coalesce(p_now, pg_catalog.now());
    v_next  timestamptz;
    v_last  timestamptz;
    v_zones timestamptz;
    v_error text;
    v_code  text;
BEGIN
    -- The database agent's heartbeat, written at most once a second.
    UPDATE pgautomator.agent a SET last_heartbeat = v_now
     WHERE a.id = (SELECT d.id FROM pgautomator.agent d
                    WHERE d.name = 'database' AND d.kind = 'database'
                      AND (d.last_heartbeat IS NULL OR d.last_heartbeat <= v_now - interval '1 second')
                      FOR UPDATE SKIP LOCKED);
    -- Time zone rules updated under the running server: checked at the
    -- launcher's first pass and then at the first pass a minute or more
    -- after the last check (it wakes at least every pgautomator.max_sleep;
    -- 47_zone_rules.sql), before the fires; a failure is logged and never
    -- stops the pass.
    v_zones := nullif(pg_catalog.current_setting('pgautomator_dispatch.zone_check', true), '')::timestamptz;
    IF v_zones IS NULL OR v_now NOT BETWEEN v_zones AND v_zones + interval '1 minute' THEN
        IF EXISTS (SELECT FROM pgautomator.zone_rules) THEN
            BEGIN
                PERFORM pgautomator._zone_rules_check();
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT, v_code = RETURNED_SQLSTATE;
                RAISE WARNING 'pgautomator: could not check the time zone rules: %', v_error
                    USING ERRCODE = v_code, HINT = 'The check is tried again in a minute.';
            END;
        END IF;
        PERFORM pg_catalog.set_config('pgautomator_dispatch.zone_check', v_now::text, false);
    END IF;
    -- The outcomes step workers deferred in a burst, first: until then
    -- their step runs look running (55_deferred_outcomes.sql).  Those left
    -- (their runs locked by someone) are tried again within 100 ms.
    IF EXISTS (SELECT FROM pgautomator.step_outcome) AND pgautomator._apply_outcomes() > 0 THEN
        v_next := v_now + interval '100 milliseconds';
    END IF;
    v_next := least(v_next, pgautomator._dispatch_deadlines(v_now));
    v_next := least(v_next, pgautomator._dispatch_crashes(v_now));
    v_next := least(v_next, pgautomator._dispatch_fires(v_now));
    v_next := least(v_next, pgautomator._dispatch_queued(v_now));
    -- Retry delays: the next queued step run that is not ready yet, of
    -- each kind (step_run_claim_idx leads with the kind).
    v_next := least(v_next, (SELECT min(n.at) FROM pg_catalog.unnest(ARRAY['sql', 'shell', 'remote_sql']) AS k(kind),
                             LATERAL (SELECT sr.not_before AS at FROM pgautomator.step_run sr
                                       WHERE sr.state = 'queued' AND sr.kind = k.kind AND sr.not_before > v_now
                                       ORDER BY sr.not_before LIMIT 1) n));
    v_next := least(v_next, pgautomator._dispatch_retention(v_now));
    -- Remote agents learn of retries whose delay ended since the previous
    -- pass (the launcher's session remembers when that was).
    v_last := nullif(pg_catalog.current_setting('pgautomator_dispatch.last_tick', true), '')::timestamptz;
    IF EXISTS (SELECT FROM pgautomator.step_run sr
                WHERE sr.state = 'queued' AND sr.kind IN ('shell', 'remote_sql')
                  AND sr.not_before <= v_now AND sr.not_before > coalesce(v_last, v_now - interval '1 minute')) THEN
        PERFORM pgautomator._wake('retry');
    END IF;
    PERFORM pg_catalog.set_config('pgautomator_dispatch.last_tick', v_now::text, false);
    RETURN v_next;
END
$$;
COMMENT ON FUNCTION pgautomator._launcher_tick(timestamptz) IS 'One dispatcher pass (fires, overlap, misfire, queued runs, timeouts, stops, crashes, retention); returns when the next thing is due, NULL if nothing is scheduled.';

-- A step run that cannot start (its run-as role or database is gone):
-- recorded as a failed attempt, so retries and on_failure apply.  The
-- caller holds the run's and the step run's locks.
CREATE FUNCTION pgautomator._fail_unstarted(p_sr pgautomator.step_run, p_sqlstate text, p_error text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run pgautomator.run;
BEGIN
    UPDATE pgautomator.step_run
       SET state = 'failed', started_at = pg_catalog.statement_timestamp(), finished_at = pg_catalog.statement_timestamp(),
           sqlstate = p_sqlstate, error = p_error
     WHERE id = p_sr.id
    RETURNING * INTO p_sr;
    SELECT * INTO v_run FROM pgautomator.run WHERE id = p_sr.run_id;
    -- (a run this ends lets a queued run of its job in: _advance)
    PERFORM pgautomator._advance(v_run, p_sr, false,
                                 (SELECT st FROM pgautomator.step st WHERE st.id = p_sr.step_id));
    PERFORM pgautomator._wake('step');
END
$$;
COMMENT ON FUNCTION pgautomator._fail_unstarted(pgautomator.step_run, text, text) IS 'Records a step run that could not start as a failed attempt and advances its run.';

-- A step run about to start whose run is past its job timeout: the run
-- ends failed, as a job timeout during a step does.  Caller holds the run's
-- and the step run's locks.
CREATE FUNCTION pgautomator._job_timed_out(p_sr pgautomator.step_run, p_job pgautomator.job)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE pgautomator.step_run
       SET state = 'skipped', finished_at = pg_catalog.statement_timestamp(),
           messages = pg_catalog.format('not started: job timeout of %s exceeded', p_job.timeout)
     WHERE id = p_sr.id;
    PERFORM pgautomator._finish_run(p_sr.run_id, 'failed',
        pg_catalog.format('job timeout of %s exceeded before step "%s" could start', p_job.timeout, p_sr.step_name));
    PERFORM pgautomator._try_admit(p_job.id);
    PERFORM pgautomator._wake('step');
END
$$;
COMMENT ON FUNCTION pgautomator._job_timed_out(pgautomator.step_run, pgautomator.job) IS 'Ends a run whose job timeout passed before its next step could start.';

-- Claims up to p_max ready sql step runs for in-database workers, oldest
-- first.  The run-as role is checked again here: it may have been dropped
-- or lost LOGIN since the job was created, and a worker can only connect as
-- a LOGIN role.  Such a step fails with a clear message instead of running.
-- p_database and p_run_as (both or neither) narrow the claim to the steps a
-- connected worker of that database and role can run (_worker_settle),
-- whose caller has checked that the role may log in and the database
-- allows connections; p_pid is that worker.  p_now is the instant the
-- claim counts as made (default now()): the launcher prepares the claims
-- of a fire instant just before it and commits them at the instant.
CREATE FUNCTION pgautomator._claim_local(p_max integer, p_now timestamptz, p_database name,
                                         p_run_as name, p_pid integer, p_agent bigint DEFAULT NULL)
RETURNS SETOF pgautomator.local_step LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan   -- see _launcher_tick
-- Queue order is step_run_claim_idx's order.  Planned when the queue looks
-- empty, a generic plan would otherwise sort the whole queue at every claim
-- (all of a burst's step runs share one not_before): quadratic in a burst.
SET enable_sort = off
SET enable_incremental_sort = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent   bigint := coalesce(p_agent, pgautomator._database_agent());
    v_now     timestamptz := coalesce(p_now, pg_catalog.statement_timestamp());
    v_sr      bigint := 0;               -- the last candidate and its place in the queue
    v_after   timestamptz := '-infinity';
    v_c       record;
    v_login   boolean;
    v_dbok    boolean;
    v_left    interval;
    v_ms      bigint;
    v_claimed integer := 0;
BEGIN
    IF v_agent IS NULL THEN
        RAISE EXCEPTION 'the database agent is not registered' USING ERRCODE = '55000',
            HINT = 'The launcher registers it with _launcher_start.';
    END IF;
    -- One candidate per statement, in queue order straight off
    -- step_run_claim_idx, locked as read: one claimed or locked by another
    -- worker is passed over at once (SKIP LOCKED; one claimed since this
    -- statement's snapshot fails its condition when re-read).  Locking the
    -- step run before its run breaks the lock order of every other path
    -- (run, then step run), but never waits, so it cannot close a cycle.
    -- Each statement starts past the last candidate (an index condition):
    -- one passed over below stays locked until this transaction ends, and
    -- a transaction's own lock does not skip; the entries of those claimed
    -- are not read again either, so claiming n costs one pass over the
    -- queue.  (A statement per candidate, not a cursor: a worker claims
    -- one, and a cursor costs more to open than it saves.)
    WHILE v_claimed < coalesce(p_max, 0) LOOP
        SELECT sr.id, sr.not_before INTO v_sr, v_after
          FROM pgautomator.step_run sr
         WHERE sr.state = 'queued' AND sr.kind = 'sql' AND sr.not_before <= v_now
           AND (sr.not_before, sr.id) > (v_after, v_sr)
         ORDER BY sr.not_before, sr.id
         LIMIT 1
           FOR UPDATE SKIP LOCKED;
        EXIT WHEN NOT FOUND;
        -- Its run (locked; by primary key alone, states checked here: a
        -- condition on state would let a generic plan, cached for the life
        -- of a worker, scan a partial index on state instead) and all the
        -- checks need, in one statement, as scalars (whole rows would be
        -- built and taken apart at every claim).
        SELECT r.started_at, r.state, r.stop_requested_at, r.job_id,
               sr.run_id, sr.step_name,
               j.run_as, j.name AS job_name, j.timeout AS job_timeout,
               st.id AS step_id, st.code, st.transaction, st.timeout AS step_timeout,
               coalesce(st.database, pg_catalog.current_database()) AS db
          INTO v_c
          FROM pgautomator.step_run sr
          JOIN pgautomator.run r ON r.id = sr.run_id
          JOIN pgautomator.job j ON j.id = r.job_id
          LEFT JOIN pgautomator.step st ON st.id = sr.step_id
         WHERE sr.id = v_sr
           FOR UPDATE OF r SKIP LOCKED;
        -- being stopped or ended
        CONTINUE WHEN NOT FOUND OR v_c.state <> 'running' OR v_c.stop_requested_at IS NOT NULL;
        -- A worker claims only the oldest ready step run, and only if it
        -- can run it: it never keeps its role ahead of another one.
        -- (Checked once locked: a check before the locks costs a join per
        -- candidate; the other role's step stays locked only until this
        -- worker's transaction ends, a few milliseconds.)
        IF p_run_as IS NOT NULL AND (v_c.run_as <> p_run_as OR v_c.db <> p_database) THEN
            RETURN;
        END IF;
        -- Whether the role may log in and the database allows connections:
        -- a connected worker's caller checked both for its own role and
        -- database (and the plan of a statement that needs neither is
        -- smaller: every step's claim pays for what its plan holds).
        IF p_run_as IS NULL THEN
            v_login := (SELECT rl.rolcanlogin FROM pg_catalog.pg_authid rl   -- (the callers are superusers)
                         WHERE rl.rolname = v_c.run_as);
            v_dbok := EXISTS (SELECT FROM pg_catalog.pg_database d WHERE d.datname = v_c.db AND d.datallowconn);
        ELSE
            v_login := true;
            v_dbok := true;
        END IF;
        IF v_c.step_id IS NULL OR v_login IS NOT TRUE OR NOT v_dbok THEN
            PERFORM pgautomator._fail_unstarted(sr,
                        CASE WHEN v_c.step_id IS NULL OR v_login IS NULL THEN '42704'
                             WHEN NOT v_login THEN '28000' ELSE '3D000' END,
                        CASE WHEN v_c.step_id IS NULL
                             THEN pg_catalog.format('step "%s" was dropped before it could run', v_c.step_name)
                             WHEN v_login IS NULL
                             THEN pg_catalog.format('run_as role "%s" of job "%s" does not exist',
                                                    v_c.run_as, v_c.job_name)
                             WHEN NOT v_login
                             THEN pg_catalog.format('run_as role "%s" of job "%s" cannot log in (steps connect as it)',
                                                    v_c.run_as, v_c.job_name)
                             ELSE pg_catalog.format('database "%s" of step "%s" does not exist or does not allow connections',
                                                    v_c.db, v_c.step_name) END)
              FROM pgautomator.step_run sr WHERE sr.id = v_sr;
            CONTINUE;
        END IF;
        -- The worker's time limit: the step's timeout or what is left of
        -- the job's, whichever is smaller.
        v_left := least(v_c.step_timeout, v_c.started_at + v_c.job_timeout - v_now);
        IF v_left IS NOT NULL AND v_left <= interval '0' THEN
            PERFORM pgautomator._job_timed_out(sr, j)
              FROM pgautomator.step_run sr, pgautomator.job j WHERE sr.id = v_sr AND j.id = v_c.job_id;
            CONTINUE;
        END IF;
        v_ms := CASE WHEN v_left IS NULL THEN 0
                     ELSE greatest(1, ceil(extract(epoch FROM v_left) * 1000))::bigint END;
        UPDATE pgautomator.step_run
           SET state = 'running', agent_id = v_agent, started_at = v_now, worker_pid = nullif(p_pid, 0)
         WHERE id = v_sr;
        v_claimed := v_claimed + 1;
        RETURN NEXT ROW(v_sr, v_c.db, v_c.run_as, v_c.code, v_c.transaction, v_ms)::pgautomator.local_step;
    END LOOP;
END
$$;
COMMENT ON FUNCTION pgautomator._claim_local(integer, timestamptz, name, name, integer, bigint) IS 'Claims up to p_max ready sql step runs (FOR UPDATE SKIP LOCKED), optionally only those a worker of one database and role can run, and marks them running for the database agent (p_agent: its id when the caller knows it); steps whose run-as role or database is unusable fail instead.';

-- The launcher's claim: any database and role, for the workers it starts
-- or hands work to.
CREATE FUNCTION pgautomator._launcher_claim(p_max integer, p_now timestamptz DEFAULT NULL)
RETURNS SETOF pgautomator.local_step LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$ BEGIN RETURN QUERY SELECT * FROM pgautomator._claim_local(p_max, p_now, NULL, NULL, NULL); END $$;
COMMENT ON FUNCTION pgautomator._launcher_claim(integer, timestamptz) IS 'Claims up to p_max ready sql step runs for in-database workers (see _claim_local); p_now is the instant the claim counts as made (default now()).';

-- Every launcher call that changes a step run locks its run first: the
-- lock order of every path (run, then step run), so that the launcher's
-- pass, which holds its locks until it commits, never meets a stop_run the
-- other way round.
CREATE FUNCTION pgautomator._lock_run_of(p_step_run_id bigint)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    SELECT r.id INTO v_id FROM pgautomator.run r
     WHERE r.id = (SELECT sr.run_id FROM pgautomator.step_run sr WHERE sr.id = p_step_run_id)
       FOR KEY SHARE;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION pgautomator._lock_run_of(bigint) IS 'Key-share locks the run of a step run (NULL when gone): the lock the launcher takes before changing a step run.';

-- pid 0 means "no worker" (the launcher could not hand it over).
CREATE FUNCTION pgautomator._launcher_started(p_step_run_id bigint, p_pid integer)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- (locked by primary key alone, its state checked here: see _claim_local)
    -- (not one whose worker deferred its outcome and went on: see
    -- _worker_defer)
    IF pgautomator._lock_run_of(p_step_run_id) IS NOT NULL
       AND (SELECT sr.state FROM pgautomator.step_run sr WHERE sr.id = p_step_run_id FOR NO KEY UPDATE) = 'running'
       AND NOT EXISTS (SELECT FROM pgautomator.step_outcome o WHERE o.step_run_id = p_step_run_id) THEN
        UPDATE pgautomator.step_run SET worker_pid = nullif(p_pid, 0), lost_since = NULL
         WHERE id = p_step_run_id;
    END IF;
END
$$;
COMMENT ON FUNCTION pgautomator._launcher_started(bigint, integer) IS 'Records the pid of the worker running a step run, for cancelling it on stop or timeout.';

CREATE FUNCTION pgautomator._launcher_report(p_step_run_id bigint, p_succeeded boolean, p_sqlstate text,
                                             p_error text, p_messages text, p_rows bigint, p_output text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgautomator._step_report(p_step_run_id, pgautomator._database_agent(), p_succeeded, NULL,
                                     nullif(p_sqlstate, ''), p_error, p_messages, p_rows, p_output);
END
$$;
COMMENT ON FUNCTION pgautomator._launcher_report(bigint, boolean, text, text, text, bigint, text) IS 'Records the outcome of an in-database step run and advances its run; ignored when the step run is no longer running.';

-- A claimed step run the launcher could not start (no free background
-- worker slot): back to the queue, ready at once, as if never claimed.  A
-- run stopped meanwhile is ended by the dispatcher's next pass.
CREATE FUNCTION pgautomator._launcher_release(p_step_run_id bigint)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pgautomator._lock_run_of(p_step_run_id) IS NULL THEN
        RETURN;
    END IF;
    UPDATE pgautomator.step_run
       SET state = 'queued', agent_id = NULL, started_at = NULL, lost_since = NULL,
           cancel_requested_at = NULL, cancel_reason = NULL
     WHERE id = p_step_run_id AND state = 'running' AND worker_pid IS NULL;
    IF FOUND THEN
        PERFORM pgautomator._wake('release');
    END IF;
END
$$;
COMMENT ON FUNCTION pgautomator._launcher_release(bigint) IS 'Puts a claimed step run whose worker could not be started back in the queue; a run stopped meanwhile ends at the next dispatcher pass.';

-- A step worker connected to this database settles its own step run:
-- records the outcome (as _launcher_report) and, when p_claim, claims the
-- next ready step run it can run itself (same database and run-as role) in
-- the same transaction, so a busy worker goes from step to step without a
-- round trip through the launcher.  The worker calls it from C with the
-- bootstrap superuser as its current user (a security-restricted operation;
-- the session user stays the run-as role), never from the step's SQL: the
-- function is granted to no one.  Fairness: it claims only when the oldest
-- ready step run is one it can run (see _claim_local), so a worker never
-- keeps its role ahead of a step of another role that waits for the
-- launcher.
CREATE FUNCTION pgautomator._worker_settle(p_step_run_id bigint, p_succeeded boolean, p_sqlstate text,
                                           p_error text, p_messages text, p_rows bigint, p_output text,
                                           p_claim boolean, p_run_as name, p_pid integer)
RETURNS SETOF pgautomator.local_step LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan   -- see _launcher_tick
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent    bigint := pgautomator._database_agent();
    v_reported boolean;
BEGIN
    -- (as _launcher_report, without a call in between; an assignment, not
    -- PERFORM: a simple expression needs no executor of its own)
    v_reported := pgautomator._step_report(p_step_run_id, v_agent, p_succeeded, NULL,
                                           nullif(p_sqlstate, ''), p_error, p_messages, p_rows, p_output);
    IF p_claim THEN
        RETURN QUERY SELECT * FROM pgautomator._claim_local(1, NULL, pg_catalog.current_database(), p_run_as, p_pid,
                                                            v_agent);
    END IF;
END
$$;
COMMENT ON FUNCTION pgautomator._worker_settle(bigint, boolean, text, text, text, bigint, text, boolean, name, integer) IS 'Called by an in-database step worker in the extension''s database: records its step run''s outcome and, when p_claim, claims its next step run of the same role if that is the oldest ready one.';

-- A step worker started ahead of a fire instant rehearses its bookkeeping
-- before its first step, so that the first step of each new worker does
-- not pay for compiling and planning it (several milliseconds of CPU each,
-- when a burst needs every core).  In a block that always rolls back, it
-- makes a one-step job of the worker's role with three running runs: one
-- whose step run the worker "ran", one whose step run is ready before any
-- other (not_before -infinity), and one whose step run the launcher
-- claimed for its hand-out queue.  It settles the first as a success with
-- a claim, as _worker_settle does after a real step (the claim takes the
-- rehearsal's own step run, never a real one), then defers the outcome of
-- the second and takes the third, as _worker_defer does in a burst.
-- Nothing of it stays (sequence numbers aside) and nobody else sees it.
-- True when the rehearsal went through to its last step.
CREATE FUNCTION pgautomator._worker_rehearse(p_run_as name, p_pid integer)
RETURNS boolean LANGUAGE plpgsql
SET lock_timeout = '100ms'          -- never wait on someone's row for this
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent   bigint := pgautomator._database_agent();
    v_job     bigint;
    v_step    bigint;
    v_runs    bigint[];
    v_done    bigint;
    v_ready   bigint;
    v_handed  bigint;
    v_claimed boolean := false;
BEGIN
    IF v_agent IS NULL THEN
        RETURN false;
    END IF;
    BEGIN
        INSERT INTO pgautomator.job (name, owner, run_as)
        VALUES (pg_catalog.format('pgautomator rehearsal %s %s', p_pid, pg_catalog.gen_random_uuid()),
                p_run_as, p_run_as)
        RETURNING id INTO v_job;
        INSERT INTO pgautomator.step (job_id, position, name, code)
        VALUES (v_job, 1, 'rehearsal', 'SELECT 1')
        RETURNING id INTO v_step;
        WITH r AS (
            INSERT INTO pgautomator.run (job_id, owner, trigger, state, started_at)
            SELECT v_job, p_run_as, 'manual', 'running', pg_catalog.now() FROM pg_catalog.generate_series(1, 3)
            RETURNING id)
        SELECT pg_catalog.array_agg(id ORDER BY id) INTO v_runs FROM r;
        INSERT INTO pgautomator.step_run (run_id, step_id, step_name, kind, state, agent_id, worker_pid, started_at)
        VALUES (v_runs[1], v_step, 'rehearsal', 'sql', 'running', v_agent, p_pid, pg_catalog.now())
        RETURNING id INTO v_done;
        INSERT INTO pgautomator.step_run (run_id, step_id, step_name, kind, state, not_before)
        VALUES (v_runs[2], v_step, 'rehearsal', 'sql', 'queued', '-infinity')
        RETURNING id INTO v_ready;
        -- (and one the launcher claimed for its hand-out queue)
        INSERT INTO pgautomator.step_run (run_id, step_id, step_name, kind, state, agent_id, started_at)
        VALUES (v_runs[3], v_step, 'rehearsal', 'sql', 'running', v_agent, pg_catalog.now())
        RETURNING id INTO v_handed;
        v_claimed := EXISTS (SELECT FROM pgautomator._worker_settle(v_done, true, NULL, NULL, NULL, 1, NULL,
                                                                    true, p_run_as, p_pid) c
                              WHERE c.step_run_id = v_ready);
        -- the step after that one, taken from the hand-out queue
        v_claimed := v_claimed
                     AND pgautomator._worker_defer(v_ready, true, NULL, NULL, NULL, 1, NULL, v_handed, p_pid) = 1;
        RAISE EXCEPTION USING ERRCODE = 'PA001';    -- undoes all of the above
    EXCEPTION WHEN SQLSTATE 'PA001' THEN
        NULL;
    END;
    RETURN v_claimed;
END
$$;
COMMENT ON FUNCTION pgautomator._worker_rehearse(name, integer) IS 'Called by an in-database step worker started ahead of a fire instant: settles a made-up step run of its role and claims another, in a block that always rolls back, so that its first real step finds the bookkeeping compiled and planned; true when the rehearsal reached its claim.';

-- Which sessions the steps due by p_at will need: for each database and
-- run-as role of the first steps of the (job, schedule) pairs due by then,
-- how many, leaving out the fires that the job's overlap policy will skip
-- or queue.  The launcher starts idle workers of those ahead of the
-- instant (spares), when it has room, so that a burst of steps finds them
-- connected.  A reading only: it locks nothing and fires nothing.
CREATE FUNCTION pgautomator._launcher_sessions_due(p_at timestamptz)
RETURNS TABLE (database name, run_as name, steps integer) LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT f.db, j.run_as, pg_catalog.count(*)::integer
      FROM (SELECT js.job_id FROM pgautomator.job_schedule js
             WHERE js.next_fire_at <= p_at LIMIT 10000) d
      JOIN pgautomator.job j ON j.id = d.job_id AND j.enabled
      CROSS JOIN LATERAL (SELECT pgautomator._run_limit(j) AS runs) l
      CROSS JOIN LATERAL (SELECT coalesce(st.database, pg_catalog.current_database()) AS db, st.kind
                            FROM pgautomator.step st
                           WHERE st.job_id = j.id AND st.enabled
                           ORDER BY st.position LIMIT 1) f
     WHERE f.kind = 'sql'
       -- (a fire that its overlap policy will skip or queue starts no step)
       AND (SELECT pg_catalog.count(*)
              FROM (SELECT FROM pgautomator.run r WHERE r.job_id = j.id AND r.state IN ('queued', 'running')
                     LIMIT l.runs) active) < l.runs
       AND EXISTS (SELECT FROM pg_catalog.pg_authid a WHERE a.rolname = j.run_as AND a.rolcanlogin)
       AND EXISTS (SELECT FROM pg_catalog.pg_database db WHERE db.datname = f.db AND db.datallowconn)
     GROUP BY f.db, j.run_as
     ORDER BY 3 DESC, 1, 2
$$;
COMMENT ON FUNCTION pgautomator._launcher_sessions_due(timestamptz) IS 'For the launcher''s spare workers: how many first sql steps of the pairs due by p_at each database and run-as role will run (a reading; locks and fires nothing).';

-- The launcher prepares a fire instant just before it comes: in a
-- transaction that it commits only at the instant, it fires the (job,
-- schedule) pairs due by p_at as if it were p_at, then claims their first
-- steps (_launcher_claim with p_now).  Nobody sees any of it before the
-- commit, so runs still start at their instant, not earlier; what moves
-- ahead of the instant is only the launcher's work.  Fires batch after
-- batch while the instant has not come.  Returns how many pairs were due.
CREATE FUNCTION pgautomator._launcher_prefire(p_at timestamptz)
RETURNS integer LANGUAGE plpgsql
SET jit = off
SET plan_cache_mode = force_generic_plan   -- see _launcher_tick
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_due integer;
BEGIN
    SELECT count(*) INTO v_due
      FROM (SELECT FROM pgautomator.job_schedule js WHERE js.next_fire_at <= p_at LIMIT 10000) d;
    IF v_due = 0 THEN
        RETURN 0;
    END IF;
    LOOP
        EXIT WHEN pgautomator._dispatch_fires(p_at) IS DISTINCT FROM p_at
               OR pg_catalog.clock_timestamp() >= p_at;
    END LOOP;
    RETURN v_due;
END
$$;
COMMENT ON FUNCTION pgautomator._launcher_prefire(timestamptz) IS 'Fires the pairs due by p_at ahead of that instant, in the launcher''s transaction that commits at the instant; returns how many pairs were due.';

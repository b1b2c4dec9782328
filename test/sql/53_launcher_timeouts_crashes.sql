-- The launcher's side of the state machine: step and job timeouts as state
-- changes made by _launcher_tick at fixed instants, crash recovery by
-- _launcher_start and by the dispatcher, and releasing unstarted claims.
BEGIN;
SET client_min_messages = error;   -- pg_cancel_backend of made-up worker pids warns
SELECT plan(39);

SELECT pgautomator._launcher_start(4242) AS agent \gset
-- Passes run at instants in 2030: retention must not purge today's runs.
SELECT pgautomator.set_setting('history_retention', 'off');
SELECT is((SELECT concat_ws(' ', kind, capabilities, pid) FROM pgautomator.agent WHERE id = :agent),
          'database {sql} 4242', 'the launcher registers the database agent');
SELECT is(pgautomator._launcher_start(4343), :agent::bigint, 'a restarted launcher keeps the same agent');

CREATE FUNCTION pg_temp.claim_one(p_run bigint) RETURNS bigint LANGUAGE sql AS $$
    SELECT c.step_run_id FROM pgautomator._launcher_claim(100) c
      JOIN pgautomator.step_run sr ON sr.id = c.step_run_id WHERE sr.run_id = p_run
$$;
CREATE FUNCTION pg_temp.run_state(p_run bigint) RETURNS text LANGUAGE sql AS $$
    SELECT state || ' / ' || coalesce(message, '') FROM pgautomator.run WHERE id = p_run
$$;
-- Moves a run and its running step runs back in time to a fixed start.
CREATE FUNCTION pg_temp.started(p_run bigint, p_at timestamptz) RETURNS void LANGUAGE sql AS $$
    UPDATE pgautomator.run SET started_at = p_at WHERE id = p_run;
    UPDATE pgautomator.step_run SET started_at = p_at WHERE run_id = p_run AND state = 'running';
$$;

-- step timeout: the claim passes it to the worker; the dispatcher cancels
SELECT pgautomator.create_job('lt_step', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 'slow', 'SELECT pg_sleep(60)', timeout => '5 seconds', on_failure => 'next');
SELECT pgautomator.add_step(:j, 'after', 'SELECT 1');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT is((SELECT timeout_ms FROM pgautomator._launcher_claim(10)), 5000::bigint, 'the claim gives the step timeout in ms');
SELECT pg_temp.started(:r, '2030-01-01 00:00:00+00');
SELECT pgautomator._launcher_started((SELECT id FROM pgautomator.step_run WHERE run_id = :r), 2147483000);
SELECT is(pgautomator._launcher_tick('2030-01-01 00:00:04+00'), '2030-01-01 00:00:05+00'::timestamptz,
          'before its timeout the dispatcher wakes at the step''s deadline');
SELECT is((SELECT cancel_reason FROM pgautomator.step_run WHERE run_id = :r), NULL, '... and cancels nothing');
SELECT is(pgautomator._launcher_tick('2030-01-01 00:00:05+00'), '2030-01-01 00:00:06+00'::timestamptz,
          'at its timeout the dispatcher cancels the worker and looks again a second later');
SELECT is((SELECT cancel_reason || ' ' || cancel_requested_at FROM pgautomator.step_run WHERE run_id = :r),
          'timeout 2030-01-01 00:00:05+00', 'the step run records why and when it is being cancelled');
SELECT pgautomator._launcher_report((SELECT id FROM pgautomator.step_run WHERE run_id = :r), false, '57014',
                                    'canceling statement due to user request', NULL, NULL, NULL);
SELECT is((SELECT state || ' / ' || error FROM pgautomator.step_run WHERE run_id = :r AND step_name = 'slow'),
          'failed / step timeout of 00:00:05 exceeded: canceling statement due to user request',
          'a timed-out step fails saying so');
SELECT is((SELECT state FROM pgautomator.step_run WHERE run_id = :r AND step_name = 'after'), 'queued',
          'a step timeout is a failure like any: on_failure next goes on');

-- a step that outlives its timeout's cancel and is ended (kill_grace) failed
-- by its timeout: on_failure applies, not a crash retry
SELECT pgautomator.create_job('lt_stubborn', run_as => 'postgres', retry_on_crash => true) AS j \gset
SELECT pgautomator.add_step(:j, 'slow', 'SELECT pg_sleep(60)', timeout => '5 seconds', on_failure => 'next');
SELECT pgautomator.add_step(:j, 'after', 'SELECT 1');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT pg_temp.claim_one(:r) AS sr \gset
SELECT pg_temp.started(:r, '2030-01-01 00:00:00+00');
SELECT pgautomator._launcher_started(:sr, 2147483000);
SELECT pgautomator._launcher_tick('2030-01-01 00:00:05+00');
SELECT pgautomator._crash_step_run(:sr, 'its worker (pid 2147483000) exited without reporting');
SELECT is((SELECT state || ' / ' || error FROM pgautomator.step_run WHERE id = :sr),
          'failed / step timeout of 00:00:05 exceeded: it did not end when cancelled and was ended (its worker (pid 2147483000) exited without reporting)',
          'a step ended after its timeout''s cancel fails by the timeout, not as a crash');
SELECT is((SELECT string_agg(state, ' ' ORDER BY id) FROM pgautomator.run WHERE job_id = :j), 'running',
          '... its run goes on (on_failure next), with no crash retry');

-- job timeout: the claim gives what is left; a timeout during a step fails the run
SELECT pgautomator.create_job('lt_job', run_as => 'postgres', timeout => '1 minute') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1', timeout => '1 hour', on_failure => 'next');
SELECT pgautomator.add_step(:j, 's2', 'SELECT 2');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT cmp_ok((SELECT c.timeout_ms FROM pgautomator._launcher_claim(10) c
                JOIN pgautomator.step_run sr ON sr.id = c.step_run_id WHERE sr.run_id = :r), '<=', 60000::bigint,
              'the claim gives the smaller of step timeout and what is left of the job''s');
SELECT pg_temp.started(:r, '2030-01-01 00:00:00+00');
SELECT pgautomator._launcher_tick('2030-01-01 00:01:00+00');
SELECT is((SELECT cancel_reason FROM pgautomator.step_run WHERE run_id = :r), 'job_timeout',
          'at the job timeout its running step is cancelled');
SELECT pgautomator._launcher_report((SELECT id FROM pgautomator.step_run WHERE run_id = :r), false, '57014',
                                    'canceling statement due to user request', NULL, NULL, NULL);
SELECT is(pg_temp.run_state(:r), 'failed / job timeout of 00:01:00 exceeded during step "s1"',
          'a job timeout ends the run failed, whatever the step''s on_failure says');
SELECT is((SELECT count(*)::int FROM pgautomator.step_run WHERE run_id = :r), 1, 'no later step starts');

-- job timeout while the run waits for a retry
SELECT pgautomator.alter_step(:j, 's1', retries => 3, retry_interval => '1 hour');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT pgautomator._launcher_report(pg_temp.claim_one(:r), false, 'P0001', 'x', NULL, NULL, NULL);
SELECT pg_temp.started(:r, '2030-01-01 00:00:00+00');
SELECT is(pgautomator._launcher_tick('2030-01-01 00:00:30+00'), '2030-01-01 00:01:00+00'::timestamptz,
          'a waiting run''s job deadline is a wake-up time');
SELECT pgautomator._launcher_tick('2030-01-01 00:01:00+00');
SELECT is(pg_temp.run_state(:r), 'failed / job timeout of 00:01:00 exceeded while waiting for the next step',
          'a run waiting for a retry fails at its job timeout');
SELECT is((SELECT state FROM pgautomator.step_run WHERE run_id = :r ORDER BY id DESC LIMIT 1), 'skipped',
          'its waiting retry never starts');

-- crash recovery at launcher start: a lost worker crashes its run, retried when the job asks
SELECT pgautomator.create_job('lt_crash', run_as => 'postgres', retry_on_crash => true) AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1');
SELECT pgautomator.add_step(:j, 's2', 'SELECT 2');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT pgautomator._launcher_report(pg_temp.claim_one(:r), true, NULL, NULL, NULL, 1, NULL);
SELECT pgautomator._launcher_started(pg_temp.claim_one(:r), 2147483000);
SELECT pgautomator._launcher_start(4444);
SELECT is((SELECT state || ' / ' || error FROM pgautomator.step_run WHERE run_id = :r AND step_name = 's2'),
          'crashed / its worker (pid 2147483000) was lost: server restart or killed process',
          'a step run whose worker is gone ends crashed when the launcher starts');
SELECT matches(pg_temp.run_state(:r), '^crashed / crashed during step "s2": .*; retried as run [0-9]+$',
               'its run ends crashed and names its retry');
SELECT is((SELECT concat_ws(' ', trigger, state, retry_of = :r, start_step_id = (SELECT id FROM pgautomator.step WHERE job_id = :j AND name = 's2'))
             FROM pgautomator.run WHERE retry_of = :r),
          'crash_retry running t t', 'the crash retry runs again from the crashed step');
SELECT pgautomator.alter_job(:j, retry_on_crash => false);
SELECT pgautomator._launcher_started(pg_temp.claim_one(r.id), 2147483000) FROM pgautomator.run r WHERE r.retry_of = :r;
SELECT pgautomator._launcher_start(4445);
SELECT is((SELECT state FROM pgautomator.run WHERE retry_of = :r), 'crashed', 'the retry crashed too');
SELECT is((SELECT count(*)::int FROM pgautomator.run WHERE job_id = :j), 2,
          'without retry_on_crash a crashed run is not retried');

-- the chain of crash retries is bounded by crash_retries
SELECT pgautomator.alter_job(:j, retry_on_crash => true);
SELECT pgautomator.set_setting('crash_retries', '2');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT pgautomator._launcher_started(pg_temp.claim_one(:r), NULL);
SELECT pgautomator._launcher_start(1), pgautomator._launcher_started(pg_temp.claim_one(r.id), NULL)
  FROM pgautomator.run r WHERE r.job_id = :j AND r.state = 'running';
SELECT pgautomator._launcher_start(2), pgautomator._launcher_started(pg_temp.claim_one(r.id), NULL)
  FROM pgautomator.run r WHERE r.job_id = :j AND r.state = 'running';
SELECT pgautomator._launcher_start(3);
SELECT is((SELECT count(*)::int FROM pgautomator.run WHERE job_id = :j AND id >= :r), 3,
          'a run is retried at most crash_retries times in a row');
SELECT matches((SELECT message FROM pgautomator.run WHERE job_id = :j ORDER BY id DESC LIMIT 1),
               'not retried: 2 crash retries already made$', 'the last crashed run says why it was not retried');
-- ... also when history is purged meanwhile (the retry_of chain then breaks)
SELECT pgautomator.start_job(:j) AS r2 \gset
SELECT pgautomator._launcher_started(pg_temp.claim_one(:r2), NULL);
SELECT pgautomator._launcher_start(4), pgautomator._launcher_started(pg_temp.claim_one(r.id), NULL)
  FROM pgautomator.run r WHERE r.job_id = :j AND r.state = 'running';
UPDATE pgautomator.run SET finished_at = now() - interval '2 days' WHERE job_id = :j AND state = 'crashed';
SELECT ok(pgautomator.purge_history('1 day') > 0, 'the crashed runs so far are purged');
SELECT pgautomator._launcher_start(5), pgautomator._launcher_started(pg_temp.claim_one(r.id), NULL)
  FROM pgautomator.run r WHERE r.job_id = :j AND r.state = 'running';
SELECT pgautomator._launcher_start(6);
SELECT matches((SELECT message FROM pgautomator.run WHERE job_id = :j ORDER BY id DESC LIMIT 1),
               'not retried: 2 crash retries already made$',
               'purged history does not lengthen the chain of crash retries');

-- the dispatcher notices a worker gone without a report, after a grace period
SELECT pgautomator.create_job('lt_lost', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT pgautomator._launcher_started(pg_temp.claim_one(:r), 2147483000);
SELECT is(pgautomator._launcher_tick('2030-01-01 00:00:00+00'), '2030-01-01 00:00:10+00'::timestamptz,
          'a worker seen gone is given 10 seconds for its report');
SELECT is((SELECT state || ' ' || lost_since FROM pgautomator.step_run WHERE run_id = :r),
          'running 2030-01-01 00:00:00+00', '... the step run records since when it is lost');
SELECT pgautomator._launcher_tick('2030-01-01 00:00:10+00');
SELECT is(pg_temp.run_state(:r), 'crashed / crashed during step "s1": its worker (pid 2147483000) exited without reporting',
          'then its run ends crashed');

-- a run being stopped whose worker is lost ends stopped, not crashed
SELECT pgautomator.start_job(:j) AS r \gset
SELECT pgautomator._launcher_started(pg_temp.claim_one(:r), 2147483000);
SELECT pgautomator.stop_run(:r);
SELECT pgautomator._launcher_start(6);
SELECT is(pg_temp.run_state(:r), 'stopped / stopped by postgres; step "s1" was lost meanwhile: its worker (pid 2147483000) was lost: server restart or killed process',
          'a lost step of a run being stopped ends the run stopped');

-- a worker's pid taken since by another kind of process (here this client
-- backend: a reused pid) is no sign of the worker (a live worker is left
-- alone: test_worker_steps.py, a step running past the grace period)
SELECT pgautomator.start_job(:j) AS r \gset
SELECT pgautomator._launcher_started(pg_temp.claim_one(:r), pg_backend_pid());
SELECT pgautomator._launcher_tick('2030-01-01 00:00:00+00');
SELECT is((SELECT state || ' ' || lost_since FROM pgautomator.step_run WHERE run_id = :r),
          'running 2030-01-01 00:00:00+00', 'a step run whose worker''s pid another process took is seen lost');

-- release: a claim whose worker could not start goes back to the queue
SELECT pgautomator.create_job('lt_release', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT pgautomator._launcher_release(pg_temp.claim_one(:r));
SELECT is((SELECT state || coalesce(agent_id::text, '') FROM pgautomator.step_run WHERE run_id = :r), 'queued',
          'a released step run is queued again');
SELECT isnt(pg_temp.claim_one(:r), NULL, '... and claimed again');
SELECT pgautomator.stop_run(:r);
SELECT pgautomator._launcher_release((SELECT id FROM pgautomator.step_run WHERE run_id = :r));
SELECT is(pg_temp.claim_one(:r), NULL, 'a released step run of a stopping run is not claimed again');
SELECT pgautomator._launcher_tick();
SELECT is(pg_temp.run_state(:r), 'stopped / stopped by postgres',
          'the next pass ends the run stopped');
SELECT is((SELECT state FROM pgautomator.step_run WHERE run_id = :r), 'stopped', '... and its step run');

-- a run whose job timeout passed before its next step could start
SELECT pgautomator.create_job('lt_late', run_as => 'postgres', timeout => '1 minute') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1');
SELECT pgautomator.start_job(:j) AS r \gset
UPDATE pgautomator.run SET started_at = now() - interval '2 minutes' WHERE id = :r;
SELECT is(pg_temp.claim_one(:r), NULL, 'a step is not handed out after its job timeout');
SELECT is(pg_temp.run_state(:r) || ' / ' || (SELECT state FROM pgautomator.step_run WHERE run_id = :r),
          'failed / job timeout of 00:01:00 exceeded before step "s1" could start / skipped',
          'the run ends failed with the job timeout');

SELECT * FROM finish();
ROLLBACK;

-- start_job, stop_run, purge_history and settings: arguments, rights,
-- overlap of manual starts, what a stop does at each stage of a run.
BEGIN;
SET client_min_messages = error;   -- pg_cancel_backend of made-up worker pids warns
SELECT plan(56);

SELECT pgautomator._launcher_start(4242);
CREATE ROLE rt_owner LOGIN IN ROLE pgautomator_user;
CREATE ROLE rt_other LOGIN IN ROLE pgautomator_user;
CREATE ROLE rt_op LOGIN IN ROLE pgautomator_operator;
CREATE ROLE rt_none LOGIN;

CREATE FUNCTION pg_temp.claim_one(p_run bigint) RETURNS bigint LANGUAGE sql AS $$
    SELECT c.step_run_id FROM pgautomator._launcher_claim(100) c
      JOIN pgautomator.step_run sr ON sr.id = c.step_run_id WHERE sr.run_id = p_run
$$;
CREATE FUNCTION pg_temp.run_state(p_run bigint) RETURNS text LANGUAGE sql AS $$
    SELECT state || ' / ' || coalesce(message, '') FROM pgautomator.run WHERE id = p_run
$$;

SET SESSION AUTHORIZATION rt_owner;
SELECT pgautomator.create_job('rt_job') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1');
SELECT pgautomator.add_step(:j, 's2', 'SELECT 2', retries => 1, retry_interval => '1 hour');
SELECT pgautomator.add_step(:j, 's3', 'SELECT 3');

-- start_job: by id and by name, arguments, rights
SELECT pgautomator.start_job('rt_job') AS r1 \gset
SELECT is((SELECT trigger || ' ' || started_by || ' ' || state FROM pgautomator.run WHERE id = :r1),
          'manual rt_owner running', 'start_job by name starts a manual run recording who started it');
SELECT throws_ok('SELECT * FROM pgautomator._launcher_claim(1)', '42501', NULL, 'a user cannot call the launcher''s functions');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT run_as::text FROM pgautomator._launcher_claim(1)), 'rt_owner', 'steps run as the job''s run-as role');

SET SESSION AUTHORIZATION rt_owner;
SELECT pgautomator.start_job(:j) AS r2 \gset
SELECT is(pg_temp.run_state(:r2), 'queued / waiting: 1 run(s) of the job are running (overlap skip, limit 1)',
          'a manual start while a run is running waits its turn instead of being skipped');
SELECT throws_ok('SELECT pgautomator.start_job(NULL::bigint)', '22004', 'job must not be NULL',
                 'start_job(NULL) is refused');
SELECT throws_ok($$SELECT pgautomator.start_job('no_such_job')$$, '42704', 'job "no_such_job" does not exist',
                 'start_job of an unknown job is refused');
SELECT throws_ok(format('SELECT pgautomator.start_job(%s, from_step => %L)', :j, 'nope'), '42704',
                 format('step "nope" does not exist in job %s', :j), 'start_job from an unknown step is refused');
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION rt_other;
SELECT throws_ok($$SELECT pgautomator.start_job('rt_job')$$, '42704', 'job "rt_job" does not exist',
                 'a user who may not see the job cannot start it (nor learn that it exists)');
SELECT throws_ok(format('SELECT pgautomator.stop_run(%s)', :r1), '42704', format('run %s does not exist', :r1),
                 'nor stop its runs');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION rt_none;
SELECT throws_ok($$SELECT pgautomator.start_job('rt_job')$$, '42501', NULL,
                 'a role outside pgautomator cannot start jobs');
RESET SESSION AUTHORIZATION;

-- stop_run: a queued run ends at once
SET SESSION AUTHORIZATION rt_op;
SELECT is(pgautomator.stop_run(:r2), true, 'an operator may stop any run');
RESET SESSION AUTHORIZATION;
SELECT is(pg_temp.run_state(:r2), 'stopped / stopped by rt_op before it started', 'a queued run ends stopped at once');

-- stop_run: a running step is cancelled, the run ends stopped when it reports
UPDATE pgautomator.step_run SET worker_pid = 2147483000 WHERE run_id = :r1 AND state = 'running';
SET SESSION AUTHORIZATION rt_owner;
SELECT is(pgautomator.stop_run(:r1), true, 'the job''s owner may stop its run');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT state || ' ' || stop_requested_by FROM pgautomator.run WHERE id = :r1), 'running rt_owner',
          'the run records the stop request while its step is being cancelled');
SELECT is((SELECT cancel_reason FROM pgautomator.step_run WHERE run_id = :r1 AND state = 'running'), 'stop',
          'the running step run is marked for cancelling');
UPDATE pgautomator.step_run SET cancel_requested_at = '2020-01-01 00:00:00+00' WHERE run_id = :r1 AND state = 'running';
SET SESSION AUTHORIZATION rt_op;
SELECT is(pgautomator.stop_run(:r1), true, 'a second stop of a stopping run is accepted');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT stop_requested_by || ' ' || (SELECT cancel_requested_at = '2020-01-01 00:00:00+00'
                                                 FROM pgautomator.step_run WHERE run_id = :r1 AND state = 'running')
             FROM pgautomator.run WHERE id = :r1), 'rt_owner true',
          '... and keeps the first request and its kill_grace clock');
SELECT is((SELECT count(*)::int FROM pgautomator._launcher_claim(10)), 0, 'nothing of a stopping run is claimed');
SELECT pgautomator._launcher_report((SELECT id FROM pgautomator.step_run WHERE run_id = :r1 AND state = 'running'),
                                    false, '57014', 'canceling statement due to user request', NULL, NULL, NULL);
SELECT is(pg_temp.run_state(:r1), 'stopped / stopped by rt_owner during step "s1"',
          'when the cancelled step reports, the run ends stopped');
SELECT is((SELECT string_agg(step_name || ':' || state, ' ' ORDER BY id) FROM pgautomator.step_run WHERE run_id = :r1),
          's1:stopped', 'later steps never started');
SELECT is((SELECT error FROM pgautomator.step_run WHERE run_id = :r1),
          'stopped by rt_owner: canceling statement due to user request', 'the step run says who stopped it');
SELECT is(pgautomator.stop_run(:r1), false, 'stopping a finished run returns false');
SELECT throws_ok('SELECT pgautomator.stop_run(-1)', '42704', 'run -1 does not exist', 'stop_run of an unknown run');
SELECT throws_ok('SELECT pgautomator.stop_run(NULL)', '22004', 'run must not be NULL', 'stop_run(NULL)');

-- a step that finishes while the stop is on its way: no later step starts
SELECT pgautomator.start_job(:j) AS r \gset
SELECT pg_temp.claim_one(:r) AS sr \gset
SELECT pgautomator.stop_run(:r);
SELECT pgautomator._launcher_report(:sr, true, NULL, NULL, NULL, 1, NULL);
SELECT is(pg_temp.run_state(:r) || ' ' || (SELECT state FROM pgautomator.step_run WHERE id = :sr),
          'stopped / stopped by postgres during step "s1" succeeded',
          'a step that succeeded despite the stop is recorded, and the run still ends stopped');

-- a run waiting for a retry stops at once
SELECT pgautomator.start_job(:j) AS r \gset
SELECT pgautomator._launcher_report(pg_temp.claim_one(:r), true, NULL, NULL, NULL, 1, NULL);
SELECT pgautomator._launcher_report(pg_temp.claim_one(:r), false, 'P0001', 'x', NULL, NULL, NULL);
SELECT is((SELECT count(*)::int FROM pgautomator.step_run WHERE run_id = :r AND state = 'queued'), 1,
          'the failed step waits for its retry');
SELECT pgautomator.stop_run(:r);
SELECT is(pg_temp.run_state(:r), 'stopped / stopped by postgres', 'a run with no running step ends stopped at once');
SELECT is((SELECT state FROM pgautomator.step_run WHERE run_id = :r ORDER BY id DESC LIMIT 1), 'stopped',
          'its waiting retry ends stopped');

-- overlap parallel: manual starts run side by side up to max_parallel
SELECT pgautomator.alter_job(:j, overlap => 'parallel', max_parallel => 2);
SELECT pgautomator.start_job(:j) AS p1 \gset
SELECT pgautomator.start_job(:j) AS p2 \gset
SELECT pgautomator.start_job(:j) AS p3 \gset
SELECT is((SELECT string_agg(state, ' ' ORDER BY id) FROM pgautomator.run WHERE id IN (:p1, :p2, :p3)),
          'running running queued', 'overlap parallel runs max_parallel runs at once; the next one waits');
SELECT pgautomator.stop_run(:p1);
SELECT is((SELECT state FROM pgautomator.run WHERE id = :p3), 'running', 'when one ends, the waiting run starts');
SELECT pgautomator.stop_run(:p2);
SELECT pgautomator.stop_run(:p3);

-- the dispatcher's admission pass: however long the queues, it locks and
-- admits only the jobs with room
SELECT is((SELECT count(*)::int FROM pgautomator.run WHERE state = 'queued'), 0, 'no run is queued yet');
SELECT pgautomator.create_job('rt_full', overlap => 'queue', run_as => 'rt_owner') AS qa \gset
SELECT pgautomator.add_step(:qa, 's1', 'SELECT 1');
SELECT pgautomator.create_job('rt_room', overlap => 'queue', run_as => 'rt_owner') AS qb \gset
SELECT pgautomator.add_step(:qb, 's1', 'SELECT 1');
SELECT count(*) FROM (SELECT pgautomator.start_job(:qa) FROM generate_series(1, 300)) x;
-- (queued with room: as a crash retry or a run whose job was locked finds it)
INSERT INTO pgautomator.run (job_id, owner, trigger, state)
SELECT :qb, 'rt_owner', 'manual', 'queued' FROM generate_series(1, 2);
CREATE FUNCTION pg_temp.admit_calls() RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_xact_user_functions
     WHERE schemaname = 'pgautomator' AND funcname = '_admit'
$$;
SET LOCAL track_functions = 'pl';
SELECT pg_temp.admit_calls() AS admits \gset
SELECT pgautomator._dispatch_queued(now());
SELECT is(pg_temp.admit_calls() - :admits, 1::bigint, 'the admission pass locks and admits only the job with room');
SELECT is((SELECT string_agg(state, ' ' ORDER BY id) FROM pgautomator.run WHERE job_id = :qb), 'running queued',
          'the job with room starts its oldest queued run, as its limit allows');
SELECT is((SELECT count(*) FILTER (WHERE state = 'queued') || ' ' || count(*) FILTER (WHERE state = 'running')
             FROM pgautomator.run WHERE job_id = :qa), '299 1', 'the full job''s queue stays as it was');
DELETE FROM pgautomator.job WHERE id IN (:qa, :qb);

-- purge_history
UPDATE pgautomator.run SET finished_at = '2020-01-01 00:00:00+00' WHERE id IN (:r1, :r2);
INSERT INTO pgautomator.mail (run_id, recipients, subject, body) VALUES (:r1, '{a@example.com}', 's', 'b');
SELECT is(pgautomator.purge_history('1 day'), 1::bigint, 'a run whose mail is still to be sent is kept');
UPDATE pgautomator.mail SET queued_at = now() - interval '2 hours' WHERE run_id = :r1;
SELECT is(pgautomator.purge_history('1 day'), 1::bigint,
          'purge_history deletes finished runs older than the interval (kept for its mail an hour at most)');
SELECT is((SELECT count(*)::int FROM pgautomator.step_run WHERE run_id IN (:r1, :r2)), 0, '... with their step runs');
SELECT is(pgautomator.purge_history('1 day'), 0::bigint, 'a second purge finds nothing');
SELECT throws_ok($$SELECT pgautomator.purge_history('-1 day')$$, '22023',
                 'older_than must be a non-negative interval, not -1 days', 'a negative interval is refused');
SELECT throws_ok('SELECT pgautomator.purge_history(NULL)', '22004', 'older_than must not be NULL',
                 'purge_history(NULL) is refused');
SET SESSION AUTHORIZATION rt_none;
SELECT throws_ok($$SELECT pgautomator.purge_history('1 day')$$, '42501', NULL,
                 'a role outside pgautomator cannot purge');
RESET SESSION AUTHORIZATION;
UPDATE pgautomator.run SET finished_at = '2020-01-01 00:00:00+00' WHERE id = :p1;
SET SESSION AUTHORIZATION rt_other;
SELECT is(pgautomator.purge_history('1 day'), 0::bigint, 'a user purges only runs of jobs they manage');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION rt_owner;
SELECT is(pgautomator.purge_history('1 day'), 1::bigint, '... and the owner purges their job''s');
RESET SESSION AUTHORIZATION;

-- settings and retention applied by the dispatcher in batches
SELECT throws_ok($$SELECT pgautomator.set_setting('nope', '1')$$, '42704', 'setting "nope" does not exist',
                 'an unknown setting is refused');
SELECT throws_ok($$SELECT pgautomator.set_setting('history_retention', 'soon')$$, '22023',
                 'invalid value "soon" for setting "history_retention"', 'a bad retention is refused');
SELECT throws_ok($$SELECT pgautomator.set_setting('purge_batch', '0')$$, '22023',
                 'invalid value "0" for setting "purge_batch"', 'a bad batch size is refused');
SELECT throws_ok($$SELECT pgautomator.set_setting('kill_grace', '1000000 years')$$, '22023',
                 'invalid value "1000000 years" for setting "kill_grace"', 'an unbounded grace is refused');
SET SESSION AUTHORIZATION rt_op;
SELECT throws_ok($$SELECT pgautomator.set_setting('purge_batch', '10')$$, '42501', 'permission denied to change settings',
                 'only admins change settings');
RESET SESSION AUTHORIZATION;
SELECT is(pgautomator.set_setting('history_retention', '2 days'), '2 days', 'set_setting returns the stored value');
SET SESSION AUTHORIZATION rt_other;
SELECT is((SELECT value FROM pgautomator.settings WHERE name = 'history_retention'), '2 days',
          'every user reads the settings view');
RESET SESSION AUTHORIZATION;
SELECT pgautomator.set_setting('purge_batch', '2');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT pgautomator.stop_run(:r);
UPDATE pgautomator.run SET finished_at = '2030-01-01 00:00:00+00'::timestamptz - interval '3 days' * id WHERE job_id = :j;
SELECT is(pgautomator._launcher_tick('2030-01-01 00:00:00+00'), '2030-01-01 00:00:01+00'::timestamptz,
          'a full purge batch brings the next pass forward');
SELECT is((SELECT count(*)::int FROM pgautomator.run WHERE job_id = :j), 3, 'one pass purges one batch');
SELECT is(pgautomator._launcher_tick('2030-01-01 00:00:00.5+00'), '2030-01-01 00:00:01+00'::timestamptz,
          'a pass within the same second purges nothing and names when it will');
SELECT is((SELECT count(*)::int FROM pgautomator.run WHERE job_id = :j), 3, '... so a busy launcher is not slowed down');
SELECT pgautomator._launcher_tick('2030-01-01 00:00:01+00');
SELECT is((SELECT count(*)::int FROM pgautomator.run WHERE job_id = :j), 1, 'the next pass purges the rest');
SELECT is(pgautomator.set_setting('history_retention', NULL), '30 days', 'NULL restores the default');

SELECT * FROM finish();
ROLLBACK;

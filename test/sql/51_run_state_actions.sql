-- The run state machine without the C worker: runs are started with
-- start_job, step runs claimed with _launcher_claim and reported with
-- _launcher_report, all inside this transaction.
BEGIN;
SELECT plan(59);

SELECT pgautomator._launcher_start(4242) AS agent \gset

-- Reports the outcome of the one step run of a run that is running.
CREATE FUNCTION pg_temp.report(p_run bigint, p_ok boolean, p_error text DEFAULT 'boom')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_name text;
BEGIN
    SELECT c.step_run_id INTO v_id FROM pgautomator._launcher_claim(100) c
      JOIN pgautomator.step_run sr ON sr.id = c.step_run_id WHERE sr.run_id = p_run;
    IF v_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT step_name INTO v_name FROM pgautomator.step_run WHERE id = v_id;
    PERFORM pgautomator._launcher_report(v_id, p_ok, CASE WHEN p_ok THEN NULL ELSE 'P0001' END,
                                         CASE WHEN p_ok THEN NULL ELSE p_error END, NULL, 1, NULL);
    RETURN v_name;
END
$$;
CREATE FUNCTION pg_temp.trail(p_run bigint) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(step_name || ':' || state, ' ' ORDER BY id) FROM pgautomator.step_run WHERE run_id = p_run
$$;
CREATE FUNCTION pg_temp.run_state(p_run bigint) RETURNS text LANGUAGE sql AS $$
    SELECT state || ' / ' || coalesce(message, '') FROM pgautomator.run WHERE id = p_run
$$;

-- next, disabled steps skipped, falling off the end
SELECT pgautomator.create_job('sm_next', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1');
SELECT pgautomator.add_step(:j, 's2', 'SELECT 2', enabled => false);
SELECT pgautomator.add_step(:j, 's3', 'SELECT 3', database => 'postgres', transaction => 'single');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT is((SELECT state FROM pgautomator.run WHERE id = :r), 'running', 'a started run is running');
SELECT is((SELECT concat_ws('|', database, run_as, code, transaction, timeout_ms) FROM pgautomator._launcher_claim(10)),
    concat_ws('|', current_database(), 'postgres', 'SELECT 1', 'autocommit', 0),
    'the claim returns the first step with its database, run-as role, code, mode and no timeout');
SELECT is((SELECT state || '@' || agent_id FROM pgautomator.step_run WHERE run_id = :r), 'running@' || :agent,
          'a claimed step run is running on the database agent');
SELECT is_empty('SELECT * FROM pgautomator._launcher_claim(10)', 'a running step run is not claimed twice');
SELECT pgautomator._launcher_report((SELECT id FROM pgautomator.step_run WHERE run_id = :r), true, NULL, NULL,
                                    'NOTICE:  hello', 3, 'out');
SELECT is((SELECT concat_ws('|', database, code, transaction) FROM pgautomator._launcher_claim(10)),
    'postgres|SELECT 3|single',
    'next skips the disabled step and claims s3 in its own database and mode');
SELECT is(pg_temp.trail(:r), 's1:succeeded s2:skipped s3:running', 'the disabled step is recorded as skipped');
SELECT is((SELECT messages || '|' || rows_affected || '|' || output FROM pgautomator.step_run
            WHERE run_id = :r AND step_name = 's1'), 'NOTICE:  hello|3|out',
          'messages, rows and output of a step are recorded');
SELECT pgautomator._launcher_report((SELECT id FROM pgautomator.step_run WHERE run_id = :r AND state = 'running'),
                                    true, NULL, NULL, NULL, 1, NULL);
SELECT is(pg_temp.run_state(:r), 'succeeded / all steps done', 'after the last step the run succeeded');
SELECT ok((SELECT finished_at IS NOT NULL AND duration IS NOT NULL FROM pgautomator.runs WHERE id = :r),
          'a finished run has its end and duration');
SELECT lives_ok(format('SELECT pgautomator._launcher_report(%s, false, %L, %L, NULL, NULL, NULL)',
                       (SELECT min(id) FROM pgautomator.step_run WHERE run_id = :r), '57014', 'late'),
                'a report for a step run that is no longer running is accepted');
SELECT is(pg_temp.trail(:r), 's1:succeeded s2:skipped s3:succeeded', '... and ignored');

-- on_failure fail (the default)
SELECT pgautomator.create_job('sm_fail', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1');
SELECT pgautomator.add_step(:j, 's2', 'SELECT 2');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT is(pg_temp.report(:r, false, E'division by zero\nCONTEXT: x'), 's1', 's1 ran and failed');
SELECT is(pg_temp.run_state(:r), 'failed / step "s1" failed: division by zero',
          'on_failure fail ends the run failed with the first line of the error');
SELECT is(pg_temp.trail(:r), 's1:failed', 'the steps after a failure never start');
SELECT is((SELECT sqlstate FROM pgautomator.step_run WHERE run_id = :r), 'P0001', 'the SQLSTATE is recorded');

-- on_success succeed / on_success fail / on_failure succeed / on_failure next
SELECT pgautomator.create_job('sm_succeed', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1', on_success => 'succeed');
SELECT pgautomator.add_step(:j, 's2', 'SELECT 2');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT is(pg_temp.report(:r, true), 's1', 's1 ran');
SELECT is(pg_temp.run_state(:r), 'succeeded / step "s1" succeeded', 'on_success succeed quits reporting success');
SELECT is(pg_temp.trail(:r), 's1:succeeded', '... without running s2');

SELECT pgautomator.create_job('sm_okfail', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1', on_success => 'fail');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT is(pg_temp.report(:r, true), 's1', 's1 ran');
SELECT is(pg_temp.run_state(:r), 'failed / step "s1" succeeded; its on_success action is fail',
          'on_success fail quits reporting failure');

SELECT pgautomator.create_job('sm_failok', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1', on_failure => 'succeed');
SELECT pgautomator.add_step(:j, 's2', 'SELECT 2');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT is(pg_temp.report(:r, false), 's1', 's1 ran');
SELECT is(pg_temp.run_state(:r), 'succeeded / step "s1" failed: boom; its on_failure action is succeed',
          'on_failure succeed quits reporting success');

SELECT pgautomator.create_job('sm_failnext', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1', on_failure => 'next');
SELECT pgautomator.add_step(:j, 's2', 'SELECT 2');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT is(pg_temp.report(:r, false), 's1', 's1 failed');
SELECT is(pg_temp.run_state(:r), 'running / step "s1" failed; the run goes on with step "s2"',
          'while it goes on, the run says which failure it passed over');
SELECT is(pg_temp.report(:r, true), 's2', 'on_failure next runs s2');
SELECT is(pg_temp.run_state(:r), 'succeeded / all steps done; 1 failed step(s) were passed over by their on_failure action',
          'a run that passed over a failure succeeds and says so');

-- a failed attempt that was retried is not a failure passed over
SELECT pgautomator.create_job('sm_retryok', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1', retries => 1, retry_interval => '0 seconds');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT is(pg_temp.report(:r, false), 's1', 's1 failed its first attempt');
SELECT is(pg_temp.run_state(:r), 'running / ', 'a failure that will be retried is not marked');
SELECT is(pg_temp.report(:r, true), 's1', 's1 succeeded on its retry');
SELECT is(pg_temp.run_state(:r), 'succeeded / all steps done', 'a retried failure is not counted');

-- go to a named step, on success and on failure
SELECT pgautomator.create_job('sm_goto', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 'cleanup', 'SELECT 0', on_success => 'fail');
SELECT pgautomator.add_step(:j, 'work', 'SELECT 1', on_failure => 'cleanup');
SELECT pgautomator.add_step(:j, 'more', 'SELECT 2');
SELECT pgautomator.add_step(:j, 'last', 'SELECT 3');
SELECT pgautomator.alter_step(:j, 'work', on_success => 'last');
SELECT pgautomator.start_job(:j, from_step => 'work') AS r \gset
SELECT is(pg_temp.report(:r, true), 'work', 'from_step starts the run at that step');
SELECT is(pg_temp.report(:r, true), 'last', 'on_success goto jumps over "more" to "last"');
SELECT is(pg_temp.trail(:r), 'work:succeeded last:succeeded', 'the skipped-over step never ran');
SELECT pgautomator.start_job(:j, 'work') AS r \gset
SELECT is(pg_temp.report(:r, false), 'work', 'work failed');
SELECT is(pg_temp.run_state(:r), 'running / step "work" failed; the run goes on with step "cleanup"',
          'a failure passed over by a go-to is marked too');
SELECT is(pg_temp.report(:r, true), 'cleanup', 'on_failure goto jumps back to "cleanup"');
SELECT is(pg_temp.run_state(:r), 'failed / step "cleanup" succeeded; its on_success action is fail',
          'the go-to target''s own action ends the run');

-- a failure at the last step that its on_failure action passes over is counted
SELECT pgautomator.create_job('sm_lastfail', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1', on_failure => 'next');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT is(pg_temp.report(:r, false), 's1', 's1 failed');
SELECT is(pg_temp.run_state(:r), 'succeeded / all steps done; 1 failed step(s) were passed over by their on_failure action',
          'a failure passed over at the last step is counted');

-- retries with their delay
SELECT pgautomator.create_job('sm_retry', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1', retries => 2, retry_interval => '10 minutes');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT is(pg_temp.report(:r, false), 's1', 'attempt 1 failed');
SELECT is((SELECT attempt || ' ' || state || ' ' || (not_before - queued_at) FROM pgautomator.step_run
            WHERE run_id = :r ORDER BY id DESC LIMIT 1), '2 queued 00:10:00',
          'a retry is queued as attempt 2, ready after retry_interval');
SELECT is(pg_temp.report(:r, true), NULL, 'a retry is not claimed before its delay');
SELECT is(pgautomator._launcher_tick(),
          (SELECT not_before FROM pgautomator.step_run WHERE run_id = :r AND state = 'queued'),
          'the dispatcher wakes when the retry delay ends');
UPDATE pgautomator.step_run SET not_before = now() WHERE run_id = :r AND state = 'queued';
SELECT is(pg_temp.report(:r, false), 's1', 'attempt 2 ran once its delay had passed, and failed');
UPDATE pgautomator.step_run SET not_before = now() WHERE run_id = :r AND state = 'queued';
SELECT is(pg_temp.report(:r, false, 'still broken'), 's1', 'attempt 3 ran and failed');
SELECT is(pg_temp.run_state(:r), 'failed / step "s1" failed after 3 attempts: still broken',
          'once retries are spent the on_failure action applies');
SELECT is(pg_temp.trail(:r), 's1:failed s1:failed s1:failed', 'three attempts were made');

-- a retry that succeeds continues with the next step
SELECT pgautomator.create_job('sm_retry_ok', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1', retries => 1, retry_interval => '0');
SELECT pgautomator.add_step(:j, 's2', 'SELECT 2');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT pg_temp.report(:r, false);
SELECT is(pg_temp.report(:r, true), 's1', 'a zero retry_interval retries at once');
SELECT is(pg_temp.report(:r, true), 's2', 'after a successful retry the next step runs');

-- jobs without (enabled) steps end with a clear state
SELECT pgautomator.create_job('sm_empty', run_as => 'postgres') AS j \gset
SELECT is(pg_temp.run_state(pgautomator.start_job(:j)), 'skipped / the job has no steps',
          'a job without steps ends skipped');
SELECT pgautomator.add_step(:j, 'off', 'SELECT 1', enabled => false);
SELECT pgautomator.start_job(:j) AS r \gset
SELECT is(pg_temp.run_state(:r), 'skipped / the job has no enabled steps',
          'a job without enabled steps ends skipped');
SELECT is(pg_temp.trail(:r), 'off:skipped', '... recording the disabled step');

-- bounded output: the tail is kept
SELECT pgautomator.create_job('sm_output', run_as => 'postgres') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1');
SELECT pgautomator.start_job(:j) AS r \gset
SELECT pgautomator._launcher_report(c.step_run_id, true, NULL, NULL, repeat('m', 70000) || 'END', 1,
                                    repeat('x', 70000) || 'TAIL')
  FROM pgautomator._launcher_claim(10) c;
SELECT is((SELECT length(right(output, 65536)) || ' ' || right(output, 4) || ' ' || split_part(output, E'\n', 1)
             FROM pgautomator.step_run WHERE run_id = :r),
          '65536 TAIL [4468 characters cut]', 'output keeps its last 65536 characters and says how many were cut');
SELECT ok((SELECT right(messages, 3) = 'END' AND length(messages) < 65600 FROM pgautomator.step_run WHERE run_id = :r),
          'messages are bounded the same way');

-- the run-as role is checked again when the step is claimed
CREATE ROLE sm_gone LOGIN;
SELECT pgautomator.create_job('sm_runas', run_as => 'sm_gone') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1');
SELECT pgautomator.start_job(:j) AS r \gset
ALTER ROLE sm_gone NOLOGIN;
SELECT is_empty('SELECT * FROM pgautomator._launcher_claim(10)', 'a step whose run-as role cannot log in is not handed out');
SELECT is((SELECT sqlstate || ' ' || error FROM pgautomator.step_run WHERE run_id = :r),
          '28000 run_as role "sm_gone" of job "sm_runas" cannot log in (steps connect as it)',
          '... it fails with a clear message');
SELECT is((SELECT state FROM pgautomator.run WHERE id = :r), 'failed', '... and its run follows on_failure');

CREATE ROLE sm_dropped LOGIN;
SELECT pgautomator.create_job('sm_dropped', run_as => 'sm_dropped') AS j \gset
SELECT pgautomator.add_step(:j, 's1', 'SELECT 1', database => 'postgres');
SELECT pgautomator.start_job(:j) AS r \gset
DROP ROLE sm_dropped;
SELECT is_empty('SELECT * FROM pgautomator._launcher_claim(10)', 'a step whose run-as role was dropped is not handed out');
SELECT is((SELECT sqlstate || ' ' || error FROM pgautomator.step_run WHERE run_id = :r),
          '42704 run_as role "sm_dropped" of job "sm_dropped" does not exist', '... it fails saying so');

SELECT * FROM finish();
ROLLBACK;

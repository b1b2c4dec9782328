-- A step worker settling its own step run (_worker_settle) and the launcher
-- preparing a fire instant ahead (_launcher_prefire, _launcher_claim with
-- an instant), at fixed instants.
BEGIN;
SELECT plan(25);

SELECT pgautomator._launcher_start(4242);
SELECT pgautomator.set_setting('history_retention', 'off');
CREATE ROLE sp_a LOGIN IN ROLE pgautomator_user;
CREATE ROLE sp_b LOGIN IN ROLE pgautomator_user;

-- _worker_settle: report, then the next step of the same role
SELECT pgautomator.create_job('sp_two', run_as => 'sp_a') AS ja \gset
SELECT pgautomator.add_step(:ja, 'first', 'SELECT 1');
SELECT pgautomator.add_step(:ja, 'second', 'SELECT 2', transaction => 'single', timeout => '5 seconds');
SELECT pgautomator.start_job(:ja) AS ra \gset
SELECT step_run_id AS sr1 FROM pgautomator._launcher_claim(10) \gset
SELECT is((SELECT concat_ws('|', database, run_as, code, transaction, timeout_ms)
             FROM pgautomator._worker_settle(:sr1, true, NULL, NULL, 'a notice', 1, '1', true, 'sp_a', 4343)),
          current_database() || '|sp_a|SELECT 2|single|5000',
          'settling a step run claims the next step of its run for the same worker');
SELECT is((SELECT concat_ws('|', state, messages, rows_affected, output) FROM pgautomator.step_run WHERE id = :sr1),
          'succeeded|a notice|1|1', 'the outcome is recorded as a launcher report would record it');
SELECT is((SELECT concat_ws('|', state, worker_pid) FROM pgautomator.step_run
            WHERE run_id = :ra AND step_name = 'second'),
          'running|4343', 'the claimed step run is running with the worker''s pid');
SELECT id AS sr2 FROM pgautomator.step_run WHERE run_id = :ra AND step_name = 'second' \gset
SELECT is_empty($$SELECT * FROM pgautomator._worker_settle($$ || :sr2 || $$, false, '42P01', 'no table', NULL, 0,
                                                           NULL, true, 'sp_a', 4343)$$,
                'with nothing ready it claims nothing');
SELECT is((SELECT state || ' / ' || message FROM pgautomator.run WHERE id = :ra),
          'failed / step "second" failed: no table', 'the failed last step ends the run failed');
SELECT is_empty($$SELECT * FROM pgautomator._worker_settle($$ || :sr2 || $$, true, NULL, NULL, NULL, 0,
                                                           NULL, true, 'sp_a', 4343)$$,
                'a second report of the same step run changes nothing');
SELECT is((SELECT state FROM pgautomator.step_run WHERE id = :sr2), 'failed', '... and leaves its outcome');

-- fairness: a worker does not pass the oldest ready step of another role
SELECT pgautomator.create_job('sp_other', run_as => 'sp_b') AS jb \gset
SELECT pgautomator.add_step(:jb, 'only', 'SELECT 3');
SELECT pgautomator.start_job(:ja) AS ra2 \gset
SELECT step_run_id AS sr3 FROM pgautomator._launcher_claim(10) \gset
SELECT pgautomator.start_job(:jb) AS rb \gset
SELECT is_empty($$SELECT * FROM pgautomator._worker_settle($$ || :sr3 || $$, true, NULL, NULL, NULL, 1,
                                                           NULL, true, 'sp_a', 4343)$$,
                'a worker claims nothing while the oldest ready step run is another role''s');
SELECT is((SELECT string_agg(run_as::text, ',' ORDER BY step_run_id) FROM pgautomator._launcher_claim(10)),
          'sp_b,sp_a', 'the launcher hands that one out first');
SELECT is((SELECT run_as::text FROM pgautomator._worker_settle(
             (SELECT id FROM pgautomator.step_run WHERE run_id = :rb), true, NULL, NULL, NULL, 1, NULL,
             false, 'sp_b', 4444)), NULL, 'without p_claim a worker only reports');

-- _launcher_prefire: fire an instant ahead, claim as of it
SELECT pgautomator.create_schedule('sp_once', 'once', on_date => '2099-06-01', at_time => '12:00',
                                   timezone => 'UTC') AS s \gset
SELECT pgautomator.create_job('sp_fired', run_as => 'sp_a') AS jf \gset
SELECT pgautomator.add_step(:jf, 'only', 'SELECT 4');
SELECT pgautomator.attach_schedule(:jf, :s);
SELECT is(pgautomator._launcher_prefire('2099-06-01 11:59:59+00'), 0, 'nothing is due by an earlier instant');
SELECT is(pgautomator._launcher_prefire('2099-06-01 12:00:00+00'), 1, 'the pair due at the instant is fired ahead');
SELECT is((SELECT concat_ws('|', state, scheduled_at, started_at) FROM pgautomator.run WHERE job_id = :jf),
          'running|2099-06-01 12:00:00+00|2099-06-01 12:00:00+00',
          'its run starts at the instant, not when it was prepared');
SELECT is((SELECT code FROM pgautomator._launcher_claim(10, '2099-06-01 12:00:00+00')), 'SELECT 4',
          'a claim as of the instant takes it');
SELECT is((SELECT sr.started_at FROM pgautomator.step_run sr JOIN pgautomator.run r ON r.id = sr.run_id
            WHERE r.job_id = :jf), '2099-06-01 12:00:00+00'::timestamptz, '... starting it at the instant');

-- _launcher_sessions_due: the sessions the first steps due by an instant need
SELECT pgautomator.create_job('sp_due_b', run_as => 'sp_b') AS jdb \gset
SELECT pgautomator.add_step(:jdb, 'only', 'SELECT 5');
SELECT pgautomator.attach_schedule(:jdb, :s);
SELECT pgautomator.create_job('sp_due_b2', run_as => 'sp_b') AS jdb2 \gset
SELECT pgautomator.add_step(:jdb2, 'off', 'SELECT 6', enabled => false);
SELECT pgautomator.add_step(:jdb2, 'on', 'SELECT 7', database => 'postgres');
SELECT pgautomator.attach_schedule(:jdb2, :s);
SELECT pgautomator.create_job('sp_due_shell', run_as => 'sp_b') AS jds \gset
SELECT pgautomator.add_step(:jds, 'sh', 'true', kind => 'shell');
SELECT pgautomator.attach_schedule(:jds, :s);
SELECT pgautomator.create_job('sp_due_off', run_as => 'sp_b', enabled => false) AS jdo \gset
SELECT pgautomator.add_step(:jdo, 'only', 'SELECT 8');
SELECT pgautomator.attach_schedule(:jdo, :s);
CREATE ROLE sp_nologin LOGIN IN ROLE pgautomator_user;
SELECT pgautomator.create_job('sp_due_nologin', run_as => 'sp_nologin') AS jdn \gset
SELECT pgautomator.add_step(:jdn, 'only', 'SELECT 9');
SELECT pgautomator.attach_schedule(:jdn, :s);
ALTER ROLE sp_nologin NOLOGIN;
SELECT pgautomator.create_job('sp_due_busy', run_as => 'sp_b') AS jdy \gset
SELECT pgautomator.add_step(:jdy, 'only', 'SELECT 10');
SELECT pgautomator.attach_schedule(:jdy, :s);
SELECT pgautomator.start_job(:jdy);
SELECT is((SELECT array_agg(concat_ws('|', database, run_as, steps) ORDER BY 1)
             FROM pgautomator._launcher_sessions_due('2099-06-01 12:00:00+00')),
          (SELECT array_agg(x ORDER BY x) FROM (VALUES ('postgres|sp_b|1'), (current_database() || '|sp_b|1')) v(x)),
          'the sessions of the first enabled sql steps due (not shell steps, disabled jobs, roles that cannot log in or fires the overlap policy skips)');
SELECT pgautomator.create_job('sp_due_par', run_as => 'sp_b', overlap => 'parallel', max_parallel => 2) AS jdp \gset
SELECT pgautomator.add_step(:jdp, 'only', 'SELECT 11');
SELECT pgautomator.attach_schedule(:jdp, :s);
SELECT pgautomator.start_job(:jdp);
SELECT is((SELECT steps FROM pgautomator._launcher_sessions_due('2099-06-01 12:00:00+00')
            WHERE database = current_database() AND run_as = 'sp_b'), 2,
          'a job that runs in parallel counts while it runs fewer than max_parallel');
SELECT pgautomator.start_job(:jdp);
SELECT is((SELECT steps FROM pgautomator._launcher_sessions_due('2099-06-01 12:00:00+00')
            WHERE database = current_database() AND run_as = 'sp_b'), 1,
          '... and not once it runs max_parallel');
SELECT is_empty($$SELECT * FROM pgautomator._launcher_sessions_due('2099-06-01 11:59:59+00')$$,
                'none before the instant');
SELECT is((SELECT count(*)::integer FROM pgautomator.run WHERE job_id IN (:jdb, :jdb2, :jds)), 0,
          'a reading: nothing is fired');

-- _worker_rehearse: the whole bookkeeping of a step, undone
SELECT pgautomator.start_job(:jdb) AS rreal \gset
SELECT count(*) AS jobs_before FROM pgautomator.job \gset
SELECT count(*) AS runs_before FROM pgautomator.run \gset
SELECT count(*) AS srs_before FROM pgautomator.step_run \gset
SELECT ok(pgautomator._worker_rehearse('sp_b', 4545), 'the rehearsal records a step and claims the next one');
SELECT is((SELECT state FROM pgautomator.step_run WHERE run_id = :rreal), 'queued',
          'a real step run of the same role, ready before it, is not claimed');
SELECT is((SELECT array[count(*) FILTER (WHERE t = 'job'), count(*) FILTER (WHERE t = 'run'),
                        count(*) FILTER (WHERE t = 'step_run')]
             FROM (SELECT 'job' AS t FROM pgautomator.job UNION ALL SELECT 'run' FROM pgautomator.run
                   UNION ALL SELECT 'step_run' FROM pgautomator.step_run) x),
          array[:jobs_before, :runs_before, :srs_before]::bigint[], 'nothing of the rehearsal stays');
SELECT is((SELECT count(*)::integer FROM pgautomator.job WHERE name LIKE 'pgautomator rehearsal%'), 0,
          '... not even its job');

SET SESSION AUTHORIZATION sp_a;
SELECT throws_ok('SELECT * FROM pgautomator._worker_settle(1, true, NULL, NULL, NULL, 0, NULL, true, ''sp_a'', 1)',
                 '42501', NULL, 'a step''s own SQL cannot call _worker_settle');
RESET SESSION AUTHORIZATION;

SELECT * FROM finish();
ROLLBACK;

-- Deferred outcomes (55_deferred_outcomes.sql): a worker that takes its
-- next step run from the launcher's hand-out queue records its outcome for
-- later (_worker_defer); the launcher applies it (_apply_outcomes), and
-- whoever would end its step run otherwise applies it first.
BEGIN;
SELECT plan(37);

SELECT pgautomator._launcher_start(4242);
SELECT pgautomator.set_setting('history_retention', 'off');
CREATE ROLE do_a LOGIN IN ROLE pgautomator_user;

-- A two-step job started twice: the first run's step is the worker's
-- (pid 4343), the second run's the launcher claimed for the queue.
SELECT pgautomator.create_job('do_two', run_as => 'do_a', overlap => 'parallel', max_parallel => 5) AS j \gset
SELECT pgautomator.add_step(:j, 'first', 'SELECT 1');
SELECT pgautomator.add_step(:j, 'second', 'SELECT 2');
SELECT pgautomator.start_job(:j) AS r1 \gset
SELECT pgautomator.start_job(:j) AS r2 \gset
SELECT array_agg(step_run_id ORDER BY step_run_id) AS claimed FROM pgautomator._launcher_claim(10) \gset
SELECT (:'claimed'::bigint[])[1] AS a, (:'claimed'::bigint[])[2] AS b \gset
SELECT pgautomator._launcher_started(:a, 4343);
SELECT started_at AS b_claimed FROM pgautomator.step_run WHERE id = :b \gset

SELECT is(pgautomator._worker_defer(:a, true, NULL, NULL, 'a notice', 1, '1', :b, 4343), 1,
          'the worker takes the handed-out step run');
SELECT is((SELECT concat_ws('|', state, worker_pid, started_at > :'b_claimed') FROM pgautomator.step_run
            WHERE id = :b), 'running|4343|t',
          '... which is now its own (its pid, for a stop or a timeout), started now');
SELECT is((SELECT concat_ws('|', state, worker_pid) FROM pgautomator.step_run WHERE id = :a), 'running',
          'the finished step run is not recorded yet, and no longer the worker''s');
SELECT is((SELECT concat_ws('|', succeeded, messages, rows_affected, output) FROM pgautomator.step_outcome
            WHERE step_run_id = :a), 't|a notice|1|1', '... its outcome waits in step_outcome');
SELECT ended_at AS ended FROM pgautomator.step_outcome WHERE step_run_id = :a \gset

SELECT is(pgautomator._apply_outcomes(), 0, 'the launcher applies it, none left');
SELECT is((SELECT concat_ws('|', state, messages, rows_affected, output, finished_at = :'ended')
             FROM pgautomator.step_run WHERE id = :a),
          'succeeded|a notice|1|1|t', 'as the worker would have recorded it, when the worker recorded it');
SELECT is((SELECT state FROM pgautomator.step_run WHERE run_id = :r1 AND step_name = 'second'), 'queued',
          'and its run goes on with the next step');
SELECT is_empty('SELECT FROM pgautomator.step_outcome', 'the outcome is gone once applied');

-- A deferred failure: a timeout flagged after the step ended did not end it
UPDATE pgautomator.step_run SET cancel_requested_at = clock_timestamp() + interval '1 second',
                                cancel_reason = 'timeout'
 WHERE id = :b;
SELECT array_agg(step_run_id ORDER BY step_run_id) AS claimed2 FROM pgautomator._launcher_claim(10) \gset
SELECT (:'claimed2'::bigint[])[1] AS c \gset
SELECT is(pgautomator._worker_defer(:b, false, '42P01', 'no table', NULL, 0, NULL, :c, 4343), 1,
          'a failed step run is deferred too');
SELECT pgautomator._apply_outcomes();
SELECT is((SELECT concat_ws('|', state, sqlstate, error) FROM pgautomator.step_run WHERE id = :b),
          'failed|42P01|no table', 'a cancel requested after the step ended does not make it a timeout');
SELECT is((SELECT state || ' / ' || message FROM pgautomator.run WHERE id = :r2),
          'failed / step "first" failed: no table', 'its run ends as the failure says');

-- A deferred failure: a stop requested after the step ended did not stop it
SELECT pgautomator.start_job(:j) AS r7 \gset
SELECT pgautomator.start_job(:j) AS r8 \gset
SELECT array_agg(step_run_id ORDER BY step_run_id) AS claimed7 FROM pgautomator._launcher_claim(10) \gset
SELECT (:'claimed7'::bigint[])[1] AS h, (:'claimed7'::bigint[])[2] AS k \gset
UPDATE pgautomator.run SET stop_requested_at = clock_timestamp() + interval '1 second' WHERE id = :r7;
SELECT is(pgautomator._worker_defer(:h, false, 'P0001', 'boom', NULL, 0, NULL, :k, 4343), 1, '(deferred)');
SELECT pgautomator._apply_outcomes();
SELECT is((SELECT concat_ws('|', state, error) FROM pgautomator.step_run WHERE id = :h), 'failed|boom',
          'a stop requested after a deferred failure ended does not make it a stopped step');
UPDATE pgautomator.step_run SET state = 'succeeded' WHERE id = :k;   -- (out of the way)

-- A handed-out step run that may no longer run here
SELECT pgautomator.start_job(:j) AS r3 \gset
SELECT pgautomator.start_job(:j) AS r4 \gset
SELECT array_agg(step_run_id ORDER BY step_run_id) AS claimed3 FROM pgautomator._launcher_claim(2) \gset
SELECT (:'claimed3'::bigint[])[1] AS d, (:'claimed3'::bigint[])[2] AS e \gset
SELECT pgautomator.stop_run(:r3);
SELECT is(pgautomator._worker_defer(:c, true, NULL, NULL, NULL, 1, NULL, :d, 4343), -1,
          'a step run whose run is being stopped is not taken');
SELECT is((SELECT concat_ws('|', state, worker_pid, agent_id) FROM pgautomator.step_run WHERE id = :d), 'queued',
          '... it goes back to the ready queue');
SELECT is((SELECT count(*)::integer FROM pgautomator.step_outcome WHERE step_run_id = :c), 1,
          '... and the outcome is deferred all the same');
SELECT pgautomator._launcher_tick();
SELECT is((SELECT state FROM pgautomator.run WHERE id = :r3), 'stopped', 'the next pass ends the stopped run');
SELECT is((SELECT state FROM pgautomator.step_run WHERE id = :c), 'succeeded', '... and applies the outcome first');

SELECT pgautomator._launcher_started(:e, 5555);
SELECT is(pgautomator._worker_defer(-1, true, NULL, NULL, NULL, 1, NULL, :e, 4343), -1,
          'a step run another worker runs is not taken');
SELECT is((SELECT concat_ws('|', state, worker_pid) FROM pgautomator.step_run WHERE id = :e), 'running|5555',
          '... and stays that worker''s');
DELETE FROM pgautomator.step_outcome;
SELECT is(pgautomator._worker_defer(:e, true, NULL, NULL, NULL, 1, NULL, -1, 4343), -1,
          'nor one that does not exist');

-- Whoever ends a running step run applies its deferred outcome first
SELECT is(pgautomator._apply_outcomes(), 0, '(applied)');
SELECT pgautomator.start_job(:j) AS r5 \gset
SELECT step_run_id AS f FROM pgautomator._launcher_claim(1) \gset
SELECT pgautomator._launcher_started(:f, 2147483647);     -- (no such process: lost, as after a restart)
SELECT is(pgautomator._worker_defer(:f, true, NULL, NULL, NULL, 7, NULL, -1, 2147483647), -1, '(deferred)');
SELECT pgautomator._launcher_start(4242);
SELECT is((SELECT concat_ws('|', state, rows_affected) FROM pgautomator.step_run WHERE id = :f), 'succeeded|7',
          'a launcher starting again applies what its workers deferred, rather than crash it');
SELECT pgautomator.start_job(:j) AS r6 \gset
SELECT step_run_id AS g FROM pgautomator._launcher_claim(1) \gset
SELECT pgautomator._launcher_started(:g, 2147483647);
SELECT pgautomator._worker_defer(:g, false, '22012', 'division by zero', NULL, NULL, NULL, -1, 2147483647);
SELECT is(pgautomator._crash_step_run(:g, 'its worker was lost'), NULL::bigint, 'a crash of a step run with an outcome');
SELECT is((SELECT concat_ws('|', state, sqlstate) FROM pgautomator.step_run WHERE id = :g), 'failed|22012',
          '... applies the outcome instead');
SELECT is((SELECT state FROM pgautomator.run WHERE id = (SELECT run_id FROM pgautomator.step_run WHERE id = :g)),
          'failed', '... to its run too, no crash retry');

-- the rehearsal leaves no outcome behind
SELECT ok(pgautomator._worker_rehearse('do_a', 4545), 'the rehearsal goes through to a handed-out step');
SELECT is_empty('SELECT FROM pgautomator.step_outcome', '... and leaves no outcome behind');

-- Its run and job unread (the worker, for a step run with no time limit):
-- a stop is seen on the step run itself; a job timeout is left to the
-- launcher, which cancels the step as it would any running one.
SELECT pgautomator.create_job('do_four', run_as => 'do_a', overlap => 'parallel', max_parallel => 4) AS j4 \gset
SELECT pgautomator.add_step(:j4, 'only', 'SELECT 4');
SELECT pgautomator.start_job(:j4) AS r8 \gset
SELECT pgautomator.start_job(:j4) AS r9 \gset
SELECT pgautomator.start_job(:j4) AS r10 \gset
SELECT pgautomator.start_job(:j4) AS r11 \gset
SELECT count(*) FROM pgautomator._launcher_claim(10);
SELECT max(id) FILTER (WHERE run_id = :r8) AS m, max(id) FILTER (WHERE run_id = :r9) AS n,
       max(id) FILTER (WHERE run_id = :r10) AS o, max(id) FILTER (WHERE run_id = :r11) AS q
  FROM pgautomator.step_run WHERE state = 'running' \gset
SELECT pgautomator.stop_run(:r9);
SELECT is(pgautomator._worker_defer(:m, true, NULL, NULL, NULL, 1, NULL, :n, 4343, p_check_run => false), -1,
          'unread, a step run whose run is being stopped is not taken either');
-- (the worker passes false for a time limit of 0; a job timeout alone gives one)
SELECT pgautomator.create_job('do_timed', run_as => 'do_a', timeout => interval '1 hour') AS jt \gset
SELECT pgautomator.add_step(:jt, 'only', 'SELECT 5');
SELECT pgautomator.start_job(:jt) AS rt \gset
SELECT is((SELECT c.timeout_ms BETWEEN 1 AND 3600000 FROM pgautomator._launcher_claim(10) c
            JOIN pgautomator.step_run sr ON sr.id = c.step_run_id WHERE sr.run_id = :rt), true,
          'a step run whose job alone has a timeout is claimed with a time limit');
UPDATE pgautomator.job SET timeout = interval '1 minute' WHERE id = :j4;
UPDATE pgautomator.run SET started_at = started_at - interval '1 hour' WHERE id IN (:r10, :r11);
SELECT is(pgautomator._worker_defer(-1, true, NULL, NULL, NULL, 1, NULL, :q, 4343), -1,
          'read, a step run whose job timeout passed while it waited is not taken');
SELECT is(pgautomator._worker_defer(-1, true, NULL, NULL, NULL, 1, NULL, :o, 4343, p_check_run => false), 1,
          'unread, it is: the worker passes false only for a step run with no time limit');

-- NULL where the statement needs a value: a clear error, nothing written
SELECT throws_ok($$SELECT pgautomator._worker_defer(1, NULL, NULL, NULL, NULL, 1, NULL, 2, 4343)$$,
    '22004', NULL, 'a NULL p_succeeded is refused');
SELECT throws_ok($$SELECT pgautomator._worker_defer(1, true, NULL, NULL, NULL, 1, NULL, NULL, 4343)$$,
    '22004', NULL, 'a NULL p_next is refused');
SELECT throws_ok($$SELECT pgautomator._worker_defer(1, true, NULL, NULL, NULL, 1, NULL, 2, NULL)$$,
    '22004', NULL, 'a NULL p_pid is refused');
SELECT throws_ok($$SELECT pgautomator._worker_defer(1, true, NULL, NULL, NULL, 1, NULL, 2, 4343, NULL)$$,
    '22004', NULL, 'a NULL p_check_run is refused');

SELECT * FROM finish();
ROLLBACK;

-- Firing schedules with _launcher_tick at fixed instants: exactly once per
-- fire instant, two schedules at one instant, overlap and misfire policies,
-- disabled jobs and schedules, batches.
BEGIN;
SELECT plan(51);

SELECT pgautomator._launcher_start(4242);
SELECT pgautomator.set_setting('history_retention', 'off');
SELECT pgautomator.create_schedule('f_min', 'daily', every_n => 1, every_unit => 'minute', timezone => 'UTC',
                                   starts_at => '2030-01-01') AS s \gset
SELECT pgautomator.create_schedule('f_min2', 'cron', cron => '* * * * *', timezone => 'UTC',
                                   starts_at => '2030-01-01') AS s2 \gset

CREATE FUNCTION pg_temp.runs(p_job bigint) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(concat_ws(' ', to_char(scheduled_at AT TIME ZONE 'UTC', 'HH24:MI'), state), ', ' ORDER BY id)
      FROM pgautomator.run WHERE job_id = p_job
$$;
CREATE FUNCTION pg_temp.next(p_job bigint) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(to_char(next_fire_at AT TIME ZONE 'UTC', 'HH24:MI:SS'), ' ' ORDER BY schedule_id)
      FROM pgautomator.job_schedule WHERE job_id = p_job
$$;
-- Ends every running run of a job as its step succeeding.
CREATE FUNCTION pg_temp.finish(p_job bigint) RETURNS void LANGUAGE sql AS $$
    SELECT pgautomator._launcher_report(c.step_run_id, true, NULL, NULL, NULL, 1, NULL)
      FROM pgautomator._launcher_claim(100) c
      JOIN pgautomator.step_run sr ON sr.id = c.step_run_id
      JOIN pgautomator.run r ON r.id = sr.run_id
     WHERE r.job_id = p_job;
$$;
-- A job with one step on the given schedules, its next fire set from an instant.
CREATE FUNCTION pg_temp.job(p_name text, p_schedules bigint[], p_from timestamptz, p_overlap text DEFAULT 'skip',
                            p_max integer DEFAULT 1, p_misfire text DEFAULT 'run_once', p_limit integer DEFAULT 10)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_job bigint := pgautomator.create_job(p_name, run_as => 'postgres', overlap => p_overlap, max_parallel => p_max,
                                           misfire => p_misfire, misfire_limit => p_limit);
    v_s bigint;
BEGIN
    PERFORM pgautomator.add_step(v_job, 'only', 'SELECT 1');
    FOREACH v_s IN ARRAY p_schedules LOOP
        PERFORM pgautomator.attach_schedule(v_job, v_s);
    END LOOP;
    PERFORM pgautomator._refresh_next_fire(v_job, NULL, p_from);
    RETURN v_job;
END
$$;

-- an ordinary fire
SELECT pg_temp.job('f_plain', ARRAY[:s], '2029-12-31 23:59:59+00') AS j \gset
SELECT is(pg_temp.next(:j), '00:00:00', 'the job is due at 00:00');
SELECT is(pgautomator._launcher_tick('2029-12-31 23:59:59.5+00'), '2030-01-01 00:00:00+00'::timestamptz,
          'before the instant nothing fires and the dispatcher wakes at it');
SELECT is(pg_temp.runs(:j), NULL, 'no run yet');
SELECT is(pgautomator._launcher_tick('2030-01-01 00:00:00.004+00'), '2030-01-01 00:00:00.004+00'::timestamptz,
          'at the instant the pair fires, and the next pass is due at once');
SELECT is((SELECT concat_ws(' ', trigger, schedule_id = :s, scheduled_at, state) FROM pgautomator.run WHERE job_id = :j),
          'schedule t 2030-01-01 00:00:00+00 running', 'the run records the schedule that fired it and the fire instant');
SELECT is((SELECT count(*)::int FROM pgautomator.step_run sr JOIN pgautomator.run r ON r.id = sr.run_id
            WHERE r.job_id = :j AND sr.state = 'queued'), 1, 'its first step is queued for a worker');
SELECT is((SELECT next_fire_at FROM pgautomator.job_schedule WHERE job_id = :j), 'infinity'::timestamptz,
          'until then the fired pair is not due (its next instant is yet to be computed)');
SELECT is(pgautomator._launcher_tick('2030-01-01 00:00:00.005+00'), '2030-01-01 00:01:00+00'::timestamptz,
          'the next pass computes the next instant and wakes at it');
SELECT is(pg_temp.next(:j) || ' ' || (SELECT last_fire_at FROM pgautomator.job_schedule WHERE job_id = :j),
          '00:01:00 2030-01-01 00:00:00+00', 'next_fire_at moved on and last_fire_at is the fired instant');

-- exactly once: the same instant due again (a refresh from an earlier point) fires nothing
SELECT pg_temp.finish(:j);
SELECT pgautomator._refresh_next_fire(:j, NULL, '2029-12-31 23:59:59+00');
SELECT pgautomator._launcher_tick('2030-01-01 00:00:00.5+00');
SELECT pgautomator._launcher_tick('2030-01-01 00:00:00.6+00');
SELECT is(pg_temp.runs(:j), '00:00 succeeded', 'one schedule never starts two runs for one instant');
SELECT is(pg_temp.next(:j), '00:01:00', 'the pair still moves on');
SELECT throws_ok(format($$INSERT INTO pgautomator.run (job_id, owner, schedule_id, scheduled_at, trigger)
                          VALUES (%s, 'postgres', %s, '2030-01-01 00:00:00+00', 'schedule')$$, :j, :s),
                 '23505', NULL, 'the unique key refuses a second run for one fire instant, whoever tries');

-- two schedules firing at one instant start two runs
SELECT pg_temp.job('f_two', ARRAY[:s, :s2], '2029-12-31 23:59:59+00', 'parallel', 2) AS j \gset
SELECT pgautomator._launcher_tick('2030-01-01 00:00:00.001+00');
SELECT is(pg_temp.runs(:j), '00:00 running, 00:00 running', 'two schedules firing at one instant start two runs');
SELECT is((SELECT count(DISTINCT schedule_id)::int FROM pgautomator.run WHERE job_id = :j), 2,
          '... each recording its own schedule');
SELECT pg_temp.finish(:j);

-- a job whose first step is disabled fires through the one-by-one path
SELECT pg_temp.job('f_first_off', ARRAY[:s], '2029-12-31 23:59:59+00') AS j \gset
SELECT pgautomator.alter_step(:j, 'only', enabled => false);
SELECT pgautomator.add_step(:j, 'second', 'SELECT 2');
SELECT pgautomator._launcher_tick('2030-01-01 00:00:00+00');
SELECT is((SELECT string_agg(sr.step_name || ':' || sr.state, ' ' ORDER BY sr.id) FROM pgautomator.step_run sr
             JOIN pgautomator.run r ON r.id = sr.run_id WHERE r.job_id = :j),
          'only:skipped second:queued', 'a fired run skips a disabled first step');
SELECT pg_temp.finish(:j);

-- overlap skip: a fire while a run is active is recorded as skipped
SELECT pg_temp.job('f_skip', ARRAY[:s], '2029-12-31 23:59:59+00') AS j \gset
SELECT pgautomator._launcher_tick('2030-01-01 00:00:00+00');
SELECT pgautomator._launcher_tick('2030-01-01 00:01:00+00');
SELECT is(pg_temp.runs(:j), '00:00 running, 00:01 skipped', 'overlap skip records the overlapping fire as skipped');
SELECT matches((SELECT message FROM pgautomator.run WHERE job_id = :j AND state = 'skipped'),
               '^skipped: run [0-9]+ was still active \(overlap skip\)$', '... saying why');
SELECT pg_temp.finish(:j);
SELECT pgautomator._launcher_tick('2030-01-01 00:02:00+00');
SELECT is(pg_temp.runs(:j), '00:00 succeeded, 00:01 skipped, 00:02 running', 'once the run ended the next fire runs');
SELECT pg_temp.finish(:j);

-- overlap queue: it waits and starts when the running one ends
SELECT pg_temp.job('f_queue', ARRAY[:s], '2029-12-31 23:59:59+00', 'queue') AS j \gset
SELECT pgautomator._launcher_tick('2030-01-01 00:00:00+00');
SELECT pgautomator._launcher_tick('2030-01-01 00:01:00+00');
SELECT is(pg_temp.runs(:j), '00:00 running, 00:01 queued', 'overlap queue makes the overlapping fire wait');
SELECT pg_temp.finish(:j);
SELECT is(pg_temp.runs(:j), '00:00 succeeded, 00:01 running', 'the waiting run starts when the running one ends');
SELECT pg_temp.finish(:j);

-- overlap parallel: up to max_parallel, then skipped
SELECT pg_temp.job('f_par', ARRAY[:s], '2029-12-31 23:59:59+00', 'parallel', 2) AS j \gset
SELECT pgautomator._launcher_tick('2030-01-01 00:00:00+00');
SELECT pgautomator._launcher_tick('2030-01-01 00:01:00+00');
SELECT pgautomator._launcher_tick('2030-01-01 00:02:00+00');
SELECT is(pg_temp.runs(:j), '00:00 running, 00:01 running, 00:02 skipped',
          'overlap parallel runs up to max_parallel at once and skips beyond');
SELECT matches((SELECT message FROM pgautomator.run WHERE job_id = :j AND state = 'skipped'),
               '^skipped: 2 runs were running \(overlap parallel, max_parallel 2\)$', '... saying why');
SELECT pg_temp.finish(:j);

-- a late fire within misfire_grace is an ordinary fire
SELECT pg_temp.job('f_late', ARRAY[:s], '2029-12-31 23:59:59+00') AS j \gset
SELECT pgautomator._launcher_tick('2030-01-01 00:00:40+00');
SELECT pgautomator._launcher_tick('2030-01-01 00:00:40.1+00');
SELECT is((SELECT state || ' ' || coalesce(message, '-') FROM pgautomator.run WHERE job_id = :j), 'running -',
          'a fire 40 s late (within misfire_grace) runs normally');
SELECT is(pg_temp.next(:j), '00:01:00', '... and the next instant stays the next one');
SELECT pg_temp.finish(:j);

-- misfire run_once after downtime
SELECT pg_temp.job('f_once', ARRAY[:s], '2029-12-31 23:59:59+00', p_misfire => 'run_once') AS j \gset
SELECT pgautomator._launcher_tick('2030-01-01 03:00:30+00');
SELECT is(pg_temp.runs(:j), '00:00 running', 'misfire run_once runs once for the missed instants');
SELECT is((SELECT message FROM pgautomator.run WHERE job_id = :j),
          'misfire: the instant 2030-01-01 00:00:00+00 was missed (the launcher was down or behind, or the job was held locked); run once (misfire run_once)',
          '... saying so');
SELECT is(pg_temp.next(:j), '03:01:00', 'the next fire is the first instant after now');
SELECT pg_temp.finish(:j);

-- misfire skip
SELECT pg_temp.job('f_mskip', ARRAY[:s], '2029-12-31 23:59:59+00', p_misfire => 'skip') AS j \gset
SELECT pgautomator._launcher_tick('2030-01-01 03:00:30+00');
SELECT is(pg_temp.runs(:j), '00:00 skipped', 'misfire skip runs nothing and records the miss');
SELECT is(pg_temp.next(:j), '03:01:00', '... and moves on to the first instant after now');

-- misfire run_all, bounded by misfire_limit; catch-up runs queue even under overlap skip
SELECT pg_temp.job('f_all', ARRAY[:s], '2029-12-31 23:59:59+00', p_misfire => 'run_all', p_limit => 4) AS j \gset
SELECT pgautomator._launcher_tick('2030-01-01 00:10:30+00');
SELECT is(pg_temp.runs(:j), '00:00 running, 00:01 queued, 00:02 queued, 00:03 queued',
          'misfire run_all runs the missed instants oldest first, at most misfire_limit');
SELECT is(pg_temp.next(:j), '00:11:00', 'instants beyond the limit are dropped');
SELECT pg_temp.finish(:j);
SELECT is(pg_temp.runs(:j), '00:00 succeeded, 00:01 running, 00:02 queued, 00:03 queued',
          'catch-up runs run one after another');
SELECT pg_temp.finish(:j);
SELECT pg_temp.finish(:j);
SELECT pg_temp.finish(:j);
SELECT pg_temp.job('f_all2', ARRAY[:s], '2029-12-31 23:59:59+00', p_misfire => 'run_all', p_limit => 100) AS j \gset
SELECT pgautomator._launcher_tick('2030-01-01 00:02:30+00');
SELECT is(pg_temp.runs(:j), '00:00 running, 00:01 queued, 00:02 queued', 'run_all catches up every missed instant within the limit');
SELECT is(pg_temp.next(:j), '00:03:00', '... and continues with the next one');
SELECT pg_temp.finish(:j);
SELECT pg_temp.finish(:j);
SELECT pg_temp.finish(:j);

-- disabled jobs and schedules fire nothing
SELECT pg_temp.job('f_off', ARRAY[:s], '2029-12-31 23:59:59+00') AS j \gset
SELECT pgautomator.disable_job(:j);
SELECT pgautomator._launcher_tick('2030-01-01 00:00:00+00');
SELECT is(pg_temp.runs(:j), NULL, 'a disabled job does not fire');
SELECT is(pg_temp.next(:j), '00:01:00', '... its instants pass by');
SELECT pg_temp.job('f_soff', ARRAY[:s2], '2029-12-31 23:59:59+00') AS j \gset
UPDATE pgautomator.schedule SET enabled = false WHERE id = :s2;
SELECT pgautomator._launcher_tick('2030-01-01 00:00:00+00');
SELECT is(pg_temp.runs(:j) || pg_temp.next(:j), NULL, 'a disabled schedule fires nothing and is no longer due');
UPDATE pgautomator.schedule SET enabled = true WHERE id = :s2;

-- fire_batch bounds the work of one pass
SELECT pgautomator.set_setting('fire_batch', '2');
SELECT pg_temp.job('f_b1', ARRAY[:s], '2029-12-31 23:59:59+00') AS b1 \gset
SELECT pg_temp.job('f_b2', ARRAY[:s], '2029-12-31 23:59:59+00') AS b2 \gset
SELECT pg_temp.job('f_b3', ARRAY[:s], '2029-12-31 23:59:59+00') AS b3 \gset
SELECT cmp_ok(pgautomator._launcher_tick('2030-01-01 00:00:00+00'), '<=', '2030-01-01 00:00:00+00'::timestamptz,
              'when more pairs are due than one batch, the next pass is due at once');
SELECT is((SELECT count(*)::int FROM pgautomator.run WHERE job_id IN (:b1, :b2, :b3)), 2, 'one pass fired one batch');
SELECT pgautomator._launcher_tick('2030-01-01 00:00:00.001+00');
SELECT is((SELECT count(*)::int FROM pgautomator.run WHERE job_id IN (:b1, :b2, :b3)), 3, 'the next pass fired the rest');
SELECT is((SELECT count(*)::int FROM pgautomator.run WHERE job_id IN (:b1, :b2, :b3) AND scheduled_at = '2030-01-01 00:00:00+00'),
          3, 'all at their fire instant');

-- next instants: one engine call per (schedule, instant), 50 calls per pass
SELECT pgautomator.set_setting('fire_batch', NULL);
SELECT pgautomator._launcher_tick('2030-01-01 00:00:00.002+00');
SELECT array_agg(pg_temp.job('f_many' || g, ARRAY[:s], '2030-01-01 00:00:59+00')) AS many
  FROM generate_series(1, 60) g \gset
SELECT pgautomator._launcher_tick('2030-01-01 00:01:00+00');
SELECT is((SELECT count(*)::int FROM pgautomator.job_schedule WHERE job_id = ANY(:'many') AND next_fire_at = 'infinity'),
          60, '60 pairs fired in one pass');
SELECT pgautomator._launcher_tick('2030-01-01 00:01:00.1+00');
SELECT is((SELECT string_agg(DISTINCT to_char(next_fire_at AT TIME ZONE 'UTC', 'HH24:MI'), ' ')
             FROM pgautomator.job_schedule WHERE job_id = ANY(:'many')), '00:02',
          'the next pass computes the next instant once for the 60 jobs sharing the schedule');
SELECT array_agg(pg_temp.job('f_own' || g,
                             ARRAY[pgautomator.create_schedule('f_own' || g, 'cron', cron => '* * * * *', timezone => 'UTC',
                                                               starts_at => '2030-01-01')],
                             '2030-01-01 00:01:59+00')) AS own
  FROM generate_series(1, 55) g \gset
SELECT pgautomator._launcher_tick('2030-01-01 00:02:00+00');
SELECT count(DISTINCT (schedule_id, last_fire_at)) AS keys FROM pgautomator.job_schedule
 WHERE next_fire_at = 'infinity' \gset
SELECT is(pgautomator._launcher_tick('2030-01-01 00:02:00.1+00'), '2030-01-01 00:02:00.1+00'::timestamptz,
          'a pass makes at most 50 engine calls and asks for another pass at once');
SELECT is((SELECT count(DISTINCT (schedule_id, last_fire_at)) FROM pgautomator.job_schedule
            WHERE next_fire_at = 'infinity'), :keys - 50::bigint, '... leaving the rest of the (schedule, instant) pairs');
SELECT pgautomator._launcher_tick('2030-01-01 00:02:00.2+00');
SELECT is((SELECT string_agg(DISTINCT to_char(next_fire_at AT TIME ZONE 'UTC', 'HH24:MI'), ' ')
             FROM pgautomator.job_schedule WHERE job_id = ANY(:'own')), '00:03', 'the next pass computes the rest');

-- A job's queue is capped for fires, not for manual starts: a fire that
-- finds 100 runs waiting is skipped (the fire counts the queue only up to
-- the cap, however long manual starts made it).
SELECT pg_temp.job('f_cap', ARRAY[:s], '2030-01-01 00:02:59+00', 'queue') AS j \gset
SELECT pgautomator._launcher_tick('2030-01-01 00:03:00+00');
SELECT count(pgautomator.start_job(:j)) FROM generate_series(1, 150);
SELECT is((SELECT count(*) FROM pgautomator.run WHERE job_id = :j AND state = 'queued'), 150::bigint,
          'manual starts queue behind a running run without a cap');
SELECT pgautomator._launcher_tick('2030-01-01 00:04:00+00');
SELECT is((SELECT state || ' / ' || message FROM pgautomator.run
            WHERE job_id = :j AND scheduled_at = '2030-01-01 00:04:00+00'),
          'skipped / skipped: 100 runs of the job were already waiting',
          'a fire with 100 or more runs waiting is skipped, saying why');
SELECT idx_tup_fetch + seq_tup_read AS reads FROM pg_stat_xact_user_tables
 WHERE relid = 'pgautomator.run'::regclass \gset
SET LOCAL enable_seqscan = off;     -- (the plan of a big table, whatever this one's statistics say)
SELECT pgautomator._fire_run(j, :s, '2030-01-01 00:05:00+00', false, NULL) FROM pgautomator.job j WHERE j.id = :j;
RESET enable_seqscan;
SELECT cmp_ok((SELECT idx_tup_fetch + seq_tup_read FROM pg_stat_xact_user_tables
                WHERE relid = 'pgautomator.run'::regclass) - :reads, '<=', 101::bigint,
              '... reading the running run and the queue up to the cap, not the whole queue');

-- A schedule changed while the launcher is down keeps the instants its
-- links missed, for the misfire policy (it recomputed them from now).
SELECT pgautomator.create_schedule('f_down', 'daily', every_n => 1, every_unit => 'minute', timezone => 'UTC',
                                   starts_at => now() - interval '1 hour') AS sd \gset
SELECT pgautomator.create_job('f_down_job', run_as => 'postgres', misfire => 'skip') AS jd \gset
SELECT pgautomator.add_step(:jd, 's', 'SELECT 1');
SELECT pgautomator.attach_schedule(:jd::bigint, :sd::bigint);
UPDATE pgautomator.job_schedule SET next_fire_at = date_trunc('minute', now()) - interval '10 minutes'
 WHERE job_id = :jd;                                    -- as after 10 minutes down
SELECT pgautomator.alter_schedule(:sd::bigint, description => 'edited while the launcher is down');
SELECT is((SELECT next_fire_at FROM pgautomator.job_schedule WHERE job_id = :jd),
          date_trunc('minute', now()) - interval '10 minutes',
          'a schedule edited while the launcher is down keeps its first missed instant');
SELECT pgautomator.add_exclusion(:sd::bigint, from_at => date_trunc('minute', now()) - interval '10 minutes',
                                 until_at => date_trunc('minute', now()) - interval '8 minutes');
SELECT is((SELECT next_fire_at FROM pgautomator.job_schedule WHERE job_id = :jd),
          date_trunc('minute', now()) - interval '8 minutes',
          'an exclusion added meanwhile passes over the excluded instants only');

SELECT * FROM finish();
ROLLBACK;

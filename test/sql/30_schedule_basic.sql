-- Schedules: creating, attaching and the stored next fire instant.
BEGIN;
SELECT plan(11);
SET LOCAL TimeZone = 'UTC';

SELECT lives_ok($$SELECT pgautomator.create_schedule('t_daily', 'daily', at_time => '02:30',
    timezone => 'America/New_York', starts_at => '2024-03-01')$$, 'a daily schedule is created');
SELECT results_eq($$SELECT pgautomator.next_runs('t_daily', '2024-03-08', 4)$$,
    $$VALUES ('2024-03-08 07:30+00'::timestamptz), ('2024-03-09 07:30+00'),
             ('2024-03-10 07:00+00'), ('2024-03-11 06:30+00')$$,
    '02:30 New York: the spring-forward day fires at 03:00 EDT, the first instant after the gap');
SELECT is(pgautomator._next_fire((SELECT id FROM pgautomator.schedule WHERE name = 't_daily'), '2024-03-10 07:00+00'),
    '2024-03-11 06:30+00'::timestamptz, '_next_fire is strictly after the given instant');

SELECT pgautomator.create_job('t_job');
SELECT lives_ok($$SELECT pgautomator.attach_schedule('t_job', 't_daily')$$, 'a schedule is attached by names');
SELECT isnt((SELECT next_fire_at FROM pgautomator.job_schedule js JOIN pgautomator.job j ON j.id = js.job_id
              WHERE j.name = 't_job'), NULL, 'attaching stores the next fire instant');
SELECT pgautomator._refresh_next_fire(NULL, (SELECT id FROM pgautomator.schedule WHERE name = 't_daily'),
                                      '2024-03-09 07:30+00');
SELECT is((SELECT next_fire_at FROM pgautomator.job_schedule js JOIN pgautomator.job j ON j.id = js.job_id
            WHERE j.name = 't_job'), '2024-03-10 07:00+00'::timestamptz, '_refresh_next_fire recomputes after an instant');
-- One schedule, two jobs: refreshing by job touches only that job's link.
SELECT pgautomator.create_job('t_job2');
SELECT pgautomator.attach_schedule('t_job2', 't_daily');
SELECT pgautomator._refresh_next_fire(NULL, NULL, '2024-03-08 00:00+00');
SELECT pgautomator._refresh_next_fire((SELECT id FROM pgautomator.job WHERE name = 't_job2'), NULL, '2024-03-10 12:00+00');
SELECT results_eq($$SELECT j.name, js.next_fire_at FROM pgautomator.job_schedule js
                     JOIN pgautomator.job j ON j.id = js.job_id WHERE j.name LIKE 't_job%' ORDER BY 1$$,
    $$VALUES ('t_job', '2024-03-08 07:30+00'::timestamptz), ('t_job2', '2024-03-11 06:30+00'::timestamptz)$$,
    '_refresh_next_fire recomputes the matching links only');
-- enable_job recomputes from now: a re-enabled job does not fire what it missed.
SELECT pgautomator.disable_job('t_job2');
SELECT pgautomator.enable_job('t_job2');
SELECT cmp_ok((SELECT js.next_fire_at FROM pgautomator.job_schedule js JOIN pgautomator.job j ON j.id = js.job_id
                WHERE j.name = 't_job2'), '>', now(), 'enable_job moves the next fire past now');
SELECT throws_ok($$SELECT pgautomator.create_schedule('t_bad', 'cron', cron => '61 * * * *', timezone => 'UTC')$$,
    '22023', 'invalid cron expression "61 * * * *": minute field value "61" is out of range 0-59',
    'a malformed cron field is named');
SELECT throws_ok($$SELECT pgautomator.create_schedule('t_bad', 'daily', timezone => 'Mars/Olympus')$$,
    '22023', 'unknown time zone "Mars/Olympus"', 'an unknown zone is named');

-- Exclusion windows: overlapping and adjacent ones act as one, and a chain
-- of 3,000 is passed over at once (each window is found by bisection).
SELECT pgautomator.create_schedule('chain', 'cron', cron => '* * * * * *', starts_at => '2030-01-01 00:00+00',
                                   timezone => 'UTC');
SELECT count(pgautomator.add_exclusion('chain', from_at => '2030-01-01 00:00+00'::timestamptz + make_interval(secs => g),
                                       until_at => '2030-01-01 00:00+00'::timestamptz + make_interval(secs => g + 1)))
  FROM generate_series(0, 2999) g;
SELECT pgautomator.add_exclusion('chain', from_at => '2030-01-01 00:10+00', until_at => '2030-01-01 00:51+00');
SELECT pgautomator.add_exclusion('chain', from_at => '2030-01-01 00:51+00', until_at => '2030-01-01 00:51:30+00');
SELECT results_eq($$SELECT pgautomator.next_runs('chain', '2029-12-31 23:59+00', 2)$$,
    $$VALUES ('2030-01-01 00:51:30+00'::timestamptz), ('2030-01-01 00:51:31+00')$$,
    'the first instant after a chain of windows, overlapping and adjacent ones merged');

SELECT * FROM finish();
ROLLBACK;

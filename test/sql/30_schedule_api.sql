-- The schedule API: alter, enable/disable, exclusions, attach/detach, drop,
-- next_job_runs, the schedules view, schedule()/unschedule(), and rights.
BEGIN;
SELECT plan(53);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE ROLE pga_s_alice LOGIN IN ROLE pgautomator_user;
CREATE ROLE pga_s_bob LOGIN IN ROLE pgautomator_user;
GRANT ALL ON ALL TABLES IN SCHEMA pg_temp TO PUBLIC;
GRANT ALL ON ALL SEQUENCES IN SCHEMA pg_temp TO PUBLIC;

SELECT pgautomator.create_schedule('noon', 'daily', at_time => '12:00', timezone => 'UTC',
                                   starts_at => '2024-01-01 00:00+00');
-- alter: NULL leaves settings unchanged; a new frequency starts a clean day rule
SELECT lives_ok($$SELECT pgautomator.alter_schedule('noon', at_time => '13:00')$$, 'alter by name');
SELECT results_eq($$SELECT pgautomator.next_runs('noon', '2024-01-01 00:00+00', 1)$$,
    $$VALUES ('2024-01-01 13:00+00'::timestamptz)$$, 'the new time of day applies, the rest is kept');
SELECT lives_ok($$SELECT pgautomator.alter_schedule((SELECT id FROM pgautomator.schedule WHERE name = 'noon'),
                  frequency => 'weekly', weekdays => '{sat,sun}')$$, 'alter by id to another frequency');
SELECT results_eq($$SELECT pgautomator.next_runs('noon', '2024-01-01 00:00+00', 2)$$,
    $$VALUES ('2024-01-06 13:00+00'::timestamptz), ('2024-01-07 13:00+00')$$, 'weekends at 13:00 now');
SELECT is(pgautomator.describe_schedule('noon'), 'at 13:00 on weekends, UTC', 'described after the change');
SELECT lives_ok($$SELECT pgautomator.alter_schedule('noon', every_n => 30, every_unit => 'minute',
                  between_start => '09:00', between_end => '10:00')$$, 'every_n replaces at_time');
SELECT results_eq($$SELECT pgautomator.next_runs('noon', '2024-01-06 09:40+00', 2)$$,
    $$VALUES ('2024-01-06 10:00+00'::timestamptz), ('2024-01-07 09:00+00')$$, 'every 30 minutes from 09:00 to 10:00');
SELECT throws_ok($$SELECT pgautomator.alter_schedule('noon', weekdays => '{}')$$, '22023',
    'weekdays must list at least one day', 'alter validates too');
SELECT is(pgautomator.describe_schedule('noon'), 'every 30 minutes from 09:00 to 10:00 on weekends, UTC',
    'a refused alter changes nothing');
SELECT throws_ok($$SELECT pgautomator.alter_schedule('nope', every => 2)$$, '42704',
    'schedule "nope" does not exist', 'altering a missing schedule');

-- attach and the stored next fire instant
SELECT pgautomator.create_job('sjob');
SELECT lives_ok($$SELECT pgautomator.attach_schedule('sjob', 'noon')$$, 'attach by names');
SELECT lives_ok($$SELECT pgautomator.attach_schedule('sjob', 'noon')$$, 'attaching twice is a no-op');
SELECT cmp_ok((SELECT next_fire_at FROM pgautomator.job_schedule), '>', now(), 'the link has a next fire instant');
SELECT pgautomator.alter_schedule('noon', starts_at => '2030-01-01 00:00+00');
SELECT is((SELECT next_fire_at FROM pgautomator.job_schedule), '2030-01-05 09:00+00'::timestamptz,
    'altering the schedule recomputes its links (the first weekend of 2030)');
SELECT pgautomator.disable_schedule('noon');
SELECT is((SELECT next_fire_at FROM pgautomator.job_schedule), NULL, 'a disabled schedule has no next fire');
SELECT is(pgautomator.describe_schedule('noon'), 'every 30 minutes from 09:00 to 10:00 on weekends, UTC (disabled)',
    'and says so');
SELECT pgautomator.enable_schedule('noon');
SELECT is((SELECT next_fire_at FROM pgautomator.job_schedule), '2030-01-05 09:00+00'::timestamptz,
    'enabling it computes the next fire again');

-- exclusions
SELECT pgautomator.add_exclusion('noon', on_date => '2030-01-05', reason => 'holiday');
SELECT is((SELECT next_fire_at FROM pgautomator.job_schedule), '2030-01-06 09:00+00'::timestamptz,
    'an excluded date moves the next fire');
SELECT pgautomator.add_exclusion('noon', from_at => '2030-01-06 00:00+00', until_at => '2030-01-06 09:30+00');
SELECT results_eq($$SELECT pgautomator.next_runs('noon', '2030-01-01 00:00+00', 3)$$,
    $$VALUES ('2030-01-06 09:30+00'::timestamptz), ('2030-01-06 10:00+00'), ('2030-01-12 09:00+00')$$,
    'a window [from_at, until_at) excludes the instants inside it');
SELECT pgautomator.drop_exclusion((SELECT id FROM pgautomator.exclusion WHERE reason = 'holiday'));
SELECT is((SELECT next_fire_at FROM pgautomator.job_schedule), '2030-01-05 09:00+00'::timestamptz,
    'dropping the exclusion brings the date back');
SELECT throws_ok($$SELECT pgautomator.add_exclusion('noon', on_date => '2030-01-01', from_at => now(), until_at => now())$$,
    '22023', 'give either on_date or from_at and until_at, not both', 'an exclusion is a date or a window');
SELECT throws_ok($$SELECT pgautomator.add_exclusion('noon', from_at => '2030-01-02', until_at => '2030-01-01')$$,
    '22023', 'until_at 2030-01-01 00:00:00+00 is not after from_at 2030-01-02 00:00:00+00', 'a window that ends first');
SELECT throws_ok($$SELECT pgautomator.drop_exclusion(-1)$$, '42704', 'exclusion -1 does not exist', 'a missing exclusion');

-- next_job_runs merges the enabled schedules of a job
SELECT pgautomator.create_schedule('dawn', 'daily', at_time => '05:00', timezone => 'UTC', starts_at => '2030-01-01 00:00+00');
SELECT pgautomator.attach_schedule((SELECT id FROM pgautomator.job WHERE name = 'sjob'),
                                   (SELECT id FROM pgautomator.schedule WHERE name = 'dawn'));
SELECT results_eq($$SELECT fire_at, schedule FROM pgautomator.next_job_runs('sjob', '2030-01-04 00:00+00', 4)$$,
    $$VALUES ('2030-01-04 05:00+00'::timestamptz, 'dawn'), ('2030-01-05 05:00+00', 'dawn'),
             ('2030-01-05 09:00+00', 'noon'), ('2030-01-05 09:30+00', 'noon')$$,
    'next_job_runs merges the job''s schedules in time order');
SELECT is((SELECT jobs FROM pgautomator.schedules WHERE name = 'dawn'), 1::bigint, 'the view counts the jobs using a schedule');
SELECT is((SELECT next_fire_at::text || ' / ' || summary FROM pgautomator.schedules WHERE name = 'dawn'),
    '2030-01-01 05:00:00+00 / at 05:00 every day, UTC', 'the view shows the next fire instant and the summary');
SELECT pgautomator.disable_schedule('dawn');
SELECT is((SELECT next_fire_at FROM pgautomator.schedules WHERE name = 'dawn'), NULL, 'none while disabled');
SELECT pgautomator.enable_schedule('dawn');

-- drop
SELECT throws_ok($$SELECT pgautomator.drop_schedule('dawn')$$, '2BP01',
    'schedule "dawn" is attached to jobs: sjob', 'a schedule in use is not dropped');
SELECT lives_ok($$SELECT pgautomator.detach_schedule('sjob', 'dawn')$$, 'detach by names');
SELECT throws_ok($$SELECT pgautomator.detach_schedule('sjob', 'dawn')$$, '42704',
    'schedule "dawn" is not attached to job "sjob"', 'detaching twice');
SELECT lives_ok($$SELECT pgautomator.drop_schedule('noon', force => true)$$, 'force drops a schedule in use');
SELECT is((SELECT count(*) FROM pgautomator.job_schedule), 0::bigint, 'and its links');
SELECT throws_ok($$SELECT pgautomator.create_schedule('dawn', 'daily')$$, '23505', 'schedule "dawn" already exists',
    'schedule names are unique');

-- rights: schedules are shared, changed by their owners
SET SESSION AUTHORIZATION pga_s_alice;
SELECT pgautomator.create_schedule('alice_s', 'daily', timezone => 'UTC');
SET SESSION AUTHORIZATION pga_s_bob;
SELECT throws_ok($$SELECT pgautomator.alter_schedule('alice_s', every => 2)$$, '42501',
    'permission denied for schedule "alice_s"', 'another user cannot alter a schedule');
SELECT throws_ok($$SELECT pgautomator.drop_schedule('alice_s')$$, '42501',
    'permission denied for schedule "alice_s"', 'nor drop it');
SELECT pgautomator.create_job('bob_job');
SELECT lives_ok($$SELECT pgautomator.attach_schedule('bob_job', 'alice_s')$$, 'but may attach it to an own job');
SET SESSION AUTHORIZATION pga_s_alice;
SELECT throws_ok($$SELECT pgautomator.drop_schedule('alice_s')$$, '2BP01',
    'schedule "alice_s" is attached to jobs: 1 of other users', 'a schedule in use names only the jobs its dropper may see');
SET SESSION AUTHORIZATION pga_s_bob;
SELECT throws_ok($$SELECT pgautomator.attach_schedule('sjob', 'alice_s')$$, '42704',
    'job "sjob" does not exist', 'not to a job it may not see');
SELECT throws_ok(format('SELECT * FROM pgautomator.next_job_runs(%s::bigint)',
                        (SELECT id FROM pgautomator.jobs WHERE name = 'bob_job') - 1),
    '42704', NULL, 'next_job_runs of a job it may not see: it does not exist (its name is not told)');
SELECT is((SELECT summary || ' / ' || jobs FROM pgautomator.schedules WHERE name = 'alice_s'), 'at 00:00 every day, UTC / 1',
    'every user reads the schedules view (here: alice''s schedule, used by one of bob''s jobs)');
RESET SESSION AUTHORIZATION;

-- pg_cron's shorthand
SELECT ok(pgautomator.schedule('nightly', '0 3 * * *', 'SELECT 1') > 0, 'schedule() returns a job id');
SELECT is((SELECT count(*) FROM pgautomator.job_schedule js JOIN pgautomator.job j ON j.id = js.job_id
            JOIN pgautomator.schedule s ON s.id = js.schedule_id WHERE j.name = 'nightly' AND s.cron = '0 3 * * *'),
    1::bigint, 'of a job fired by a cron schedule of the same name');
SELECT pgautomator.schedule('nightly', '0 4 * * *', 'SELECT 2');
SELECT is((SELECT s.cron || ' / ' || st.code FROM pgautomator.schedule s, pgautomator.step st
            JOIN pgautomator.job j ON j.id = st.job_id WHERE s.name = 'nightly' AND j.name = 'nightly'),
    '0 4 * * * / SELECT 2', 'the same name again replaces cron and command');
SELECT ok(pgautomator.unschedule('nightly'), 'unschedule() returns true');
SELECT ok(NOT EXISTS (SELECT FROM pgautomator.schedule WHERE name = 'nightly')
          AND NOT EXISTS (SELECT FROM pgautomator.job WHERE name = 'nightly'), 'and drops the job and its schedule');
SELECT throws_ok($$SELECT pgautomator.unschedule('bob_job')$$, '42809', 'job "bob_job" was not created by schedule()',
    'unschedule() drops only what schedule() made, as schedule() takes over only that');

-- NULL and out-of-range arguments of the previews: 22004 / 22023 naming them
SELECT throws_ok($$SELECT pgautomator.next_runs(NULL::text)$$, '22004', 'schedule must not be NULL',
    'next_runs of NULL');
SELECT throws_ok($$SELECT pgautomator.next_job_runs(NULL::bigint)$$, '22004', 'job must not be NULL',
    'next_job_runs of NULL');
SELECT throws_ok($$SELECT pgautomator.next_runs('dawn', now(), NULL)$$, '22004', 'n must not be NULL', 'n NULL');
SELECT throws_ok($$SELECT pgautomator.next_runs('dawn', '294247-01-11 00:00+00', 2)$$, '22023',
    'after must be before 9000-01-01, not 294247-01-11 00:00:00+00', 'an instant past the engine''s calendar');
SELECT throws_ok($$SELECT pgautomator.describe_schedule(NULL::text)$$, '22004', 'schedule must not be NULL',
    'describe_schedule of NULL');
SELECT throws_ok($$SELECT pgautomator.describe_schedule(NULL::bigint)$$, '22004', 'schedule must not be NULL',
    'describe_schedule of NULL by id');
SELECT throws_ok($$SELECT pgautomator.drop_exclusion(NULL)$$, '22004', 'exclusion must not be NULL',
    'drop_exclusion of NULL');

SELECT * FROM finish();
ROLLBACK;

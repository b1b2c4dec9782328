-- Every schedule type with fixed instants: leap years, month ends, relative
-- days, sub-day repetition, start and end bounds (README "Schedules").
BEGIN;
SELECT plan(23);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE FUNCTION pg_temp.mk(p_name text, p_frequency text, p_args text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v bigint;
BEGIN
    EXECUTE format('SELECT pgautomator.create_schedule(%L, %L, %s)', p_name, p_frequency, p_args) INTO v;
    RETURN v;
END $$;

-- once
SELECT pg_temp.mk('once', 'once', $$on_date => '2024-02-29', at_time => '12:00', timezone => 'UTC', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('once', '2024-01-01 00:00+00')$$,
    $$VALUES ('2024-02-29 12:00+00'::timestamptz)$$, 'once fires on its date (a leap day) and only then');
SELECT is_empty($$SELECT pgautomator.next_runs('once', '2024-02-29 12:00+00')$$, 'once never fires again');

-- daily
SELECT pg_temp.mk('daily3', 'daily', $$every => 3, at_time => '06:00', timezone => 'UTC', starts_at => '2024-02-27 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('daily3', '2024-02-26 00:00+00', 4)$$,
    $$VALUES ('2024-02-27 06:00+00'::timestamptz), ('2024-03-01 06:00+00'), ('2024-03-04 06:00+00'), ('2024-03-07 06:00+00')$$,
    'every 3 days counts from the start date across Feb 29');
SELECT pg_temp.mk('daily3late', 'daily', $$every => 3, at_time => '06:00', timezone => 'UTC', starts_at => '2024-02-27 10:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('daily3late', '2024-01-01 00:00+00', 2)$$,
    $$VALUES ('2024-03-01 06:00+00'::timestamptz), ('2024-03-04 06:00+00')$$,
    'nothing fires before starts_at, and the day count still starts on its date');
SELECT results_eq($$SELECT pgautomator.next_runs('daily3', '2024-03-01 06:00+00', 1)$$,
    $$VALUES ('2024-03-04 06:00+00'::timestamptz)$$, 'next_runs is strictly after the given instant');

-- weekly
SELECT pg_temp.mk('biweekly', 'weekly', $$every => 2, weekdays => '{mon,friday}', at_time => '09:00', timezone => 'UTC', starts_at => '2024-01-03 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('biweekly', '2024-01-01 00:00+00', 5)$$,
    $$VALUES ('2024-01-05 09:00+00'::timestamptz), ('2024-01-15 09:00+00'), ('2024-01-19 09:00+00'),
             ('2024-01-29 09:00+00'), ('2024-02-02 09:00+00')$$,
    'every 2 weeks on Monday and Friday, weeks counted from the week of the start date');

-- monthly
SELECT pg_temp.mk('day31', 'monthly', $$month_days => '{31}', timezone => 'UTC', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('day31', '2024-01-01 00:00+00', 6)$$,
    $$VALUES ('2024-01-31 00:00+00'::timestamptz), ('2024-03-31 00:00+00'), ('2024-05-31 00:00+00'),
             ('2024-07-31 00:00+00'), ('2024-08-31 00:00+00'), ('2024-10-31 00:00+00')$$,
    'day 31 is skipped in months without it (Feb, Apr, Jun, Sep), never an error');
SELECT pg_temp.mk('day29', 'monthly', $$month_days => '{29}', at_time => '01:00', timezone => 'UTC', starts_at => '2023-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('day29', '2023-01-30 00:00+00', 3)$$,
    $$VALUES ('2023-03-29 01:00+00'::timestamptz), ('2023-04-29 01:00+00'), ('2023-05-29 01:00+00')$$,
    'day 29 skips February of a common year');
SELECT results_eq($$SELECT pgautomator.next_runs('day29', '2024-01-30 00:00+00', 2)$$,
    $$VALUES ('2024-02-29 01:00+00'::timestamptz), ('2024-03-29 01:00+00')$$,
    'day 29 fires in February of a leap year');
SELECT pg_temp.mk('last3', 'monthly', $$every => 3, month_days => '{last}', timezone => 'UTC', starts_at => '2024-01-15 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('last3', '2024-01-01 00:00+00', 5)$$,
    $$VALUES ('2024-01-31 00:00+00'::timestamptz), ('2024-04-30 00:00+00'), ('2024-07-31 00:00+00'),
             ('2024-10-31 00:00+00'), ('2025-01-31 00:00+00')$$,
    'the last day every 3 months, counted from the start month');
SELECT pg_temp.mk('midlast', 'monthly', $$month_days => '{15,last}', timezone => 'UTC', starts_at => '2025-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('midlast', '2025-02-01 00:00+00', 4)$$,
    $$VALUES ('2025-02-15 00:00+00'::timestamptz), ('2025-02-28 00:00+00'), ('2025-03-15 00:00+00'), ('2025-03-31 00:00+00')$$,
    'the last day beside other days (pgAgent ignores it)');

-- monthly_relative
SELECT pg_temp.mk('firstmon', 'monthly_relative', $$relative_week => 'first', relative_day => 'monday', at_time => '08:00', timezone => 'UTC', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('firstmon', '2024-01-01 00:00+00', 3)$$,
    $$VALUES ('2024-01-01 08:00+00'::timestamptz), ('2024-02-05 08:00+00'), ('2024-03-04 08:00+00')$$,
    'the first Monday of every month');
SELECT pg_temp.mk('lastfri', 'monthly_relative', $$relative_week => 'last', relative_day => 'friday', timezone => 'UTC', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('lastfri', '2024-01-01 00:00+00', 3)$$,
    $$VALUES ('2024-01-26 00:00+00'::timestamptz), ('2024-02-23 00:00+00'), ('2024-03-29 00:00+00')$$,
    'the last Friday of every month');
SELECT pg_temp.mk('thanksgiving', 'monthly_relative', $$every => 12, relative_week => 'fourth', relative_day => 'thursday', timezone => 'UTC', starts_at => '2024-11-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('thanksgiving', '2024-01-01 00:00+00', 2)$$,
    $$VALUES ('2024-11-28 00:00+00'::timestamptz), ('2025-11-27 00:00+00')$$,
    'the fourth Thursday of every 12 months');
SELECT pg_temp.mk('day2', 'monthly_relative', $$relative_week => 'second', relative_day => 'day', timezone => 'UTC', starts_at => '2024-01-01 00:00+00'$$);
SELECT pg_temp.mk('lastday', 'monthly_relative', $$relative_week => 'last', relative_day => 'day', timezone => 'UTC', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('day2', '2024-01-01 00:00+00', 2) UNION ALL SELECT pgautomator.next_runs('lastday', '2024-01-01 00:00+00', 2)$$,
    $$VALUES ('2024-01-02 00:00+00'::timestamptz), ('2024-02-02 00:00+00'), ('2024-01-31 00:00+00'), ('2024-02-29 00:00+00')$$,
    'the second day and the last day of the month');
SELECT pg_temp.mk('wkday1', 'monthly_relative', $$relative_week => 'first', relative_day => 'weekday', timezone => 'UTC', starts_at => '2024-05-01 00:00+00'$$);
SELECT pg_temp.mk('wkdaylast', 'monthly_relative', $$relative_week => 'last', relative_day => 'weekday', timezone => 'UTC', starts_at => '2024-03-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('wkday1', '2024-04-30 00:00+00', 2) UNION ALL SELECT pgautomator.next_runs('wkdaylast', '2024-03-01 00:00+00', 1)$$,
    $$VALUES ('2024-05-01 00:00+00'::timestamptz), ('2024-06-03 00:00+00'), ('2024-03-29 00:00+00')$$,
    'the first weekday (June 1 2024 is a Saturday) and the last weekday (March 31 2024 is a Sunday)');
SELECT pg_temp.mk('wkend', 'monthly_relative', $$relative_week => 'second', relative_day => 'weekend_day', timezone => 'UTC', starts_at => '2024-01-01 00:00+00'$$);
SELECT pg_temp.mk('wkendlast', 'monthly_relative', $$relative_week => 'last', relative_day => 'weekend_day', timezone => 'UTC', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('wkend', '2024-01-01 00:00+00', 1) UNION ALL SELECT pgautomator.next_runs('wkendlast', '2024-01-01 00:00+00', 1)$$,
    $$VALUES ('2024-01-07 00:00+00'::timestamptz), ('2024-01-28 00:00+00')$$,
    'the second and the last weekend day of January 2024');

-- within the day
SELECT pg_temp.mk('every20', 'daily', $$every_n => 20, every_unit => 'minute', between_start => '08:10', between_end => '09:10', timezone => 'UTC', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('every20', '2024-01-01 00:00+00', 5)$$,
    $$VALUES ('2024-01-01 08:10+00'::timestamptz), ('2024-01-01 08:30+00'), ('2024-01-01 08:50+00'),
             ('2024-01-01 09:10+00'), ('2024-01-02 08:10+00')$$,
    'every 20 minutes from 08:10 to 09:10, the end inclusive, counted from the start each day');
SELECT pg_temp.mk('every7h', 'daily', $$every_n => 7, every_unit => 'hours', timezone => 'UTC', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('every7h', '2024-01-01 00:00+00', 5)$$,
    $$VALUES ('2024-01-01 07:00+00'::timestamptz), ('2024-01-01 14:00+00'), ('2024-01-01 21:00+00'),
             ('2024-01-02 00:00+00'), ('2024-01-02 07:00+00')$$,
    'every 7 hours restarts at midnight: wall-clock times, no drift');
SELECT pg_temp.mk('every45s', 'daily', $$every_n => 45, every_unit => 'second', between_start => '23:58', timezone => 'UTC', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('every45s', '2024-01-01 00:00+00', 4)$$,
    $$VALUES ('2024-01-01 23:58:00+00'::timestamptz), ('2024-01-01 23:58:45+00'), ('2024-01-01 23:59:30+00'),
             ('2024-01-02 23:58:00+00')$$,
    'every 45 seconds from 23:58 to the end of the day');

-- start and end
SELECT pg_temp.mk('bounded', 'daily', $$at_time => '12:00', timezone => 'UTC', starts_at => '2024-01-10 13:00+00', ends_at => '2024-01-13 12:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('bounded', '2024-01-01 00:00+00', 10)$$,
    $$VALUES ('2024-01-11 12:00+00'::timestamptz), ('2024-01-12 12:00+00'), ('2024-01-13 12:00+00')$$,
    'fires from starts_at to ends_at inclusive, then never');

-- a rule that can never fire returns nothing instead of searching forever
SELECT pg_temp.mk('never', 'monthly', $$every => 12, month_days => '{31}', timezone => 'UTC', starts_at => '2024-02-01 00:00+00'$$);
SELECT is_empty($$SELECT pgautomator.next_runs('never', '2024-01-01 00:00+00')$$,
    'day 31 every 12 months from February never fires: no instants, no endless search');

SELECT results_eq($$SELECT pgautomator.describe_schedule(n) FROM unnest(ARRAY['every20', 'once', 'daily3', 'biweekly',
                       'midlast', 'last3', 'firstmon', 'wkend', 'every7h', 'every45s', 'bounded']) AS n$$,
    ARRAY['every 20 minutes from 08:10 to 09:10 every day, UTC',
          'at 12:00 on 2024-02-29, UTC',
          'at 06:00 every 3 days, UTC',
          'at 09:00 on Monday and Friday every 2 weeks, UTC',
          'at 00:00 on day 15 and the last day of every month, UTC',
          'at 00:00 on the last day of every 3 months, UTC',
          'at 08:00 on the first Monday of every month, UTC',
          'at 00:00 on the second weekend day of every month, UTC',
          'every 7 hours every day, UTC',
          'every 45 seconds from 23:58 to the end of the day every day, UTC',
          'at 12:00 every day, UTC, until 2024-01-13 12:00'],
    'describe_schedule says each type in English');

SELECT * FROM finish();
ROLLBACK;

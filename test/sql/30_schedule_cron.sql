-- Cron expressions: fields, names, ranges, steps, lists, macros, pg_cron's
-- "$" and "N seconds", a leading seconds field, Vixie's day rule.
BEGIN;
SELECT plan(18);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE FUNCTION pg_temp.cron(p_expr text, p_after timestamptz, p_n integer)
RETURNS SETOF timestamptz LANGUAGE plpgsql AS $$
DECLARE v bigint;
BEGIN
    v := pgautomator.create_schedule('c' || md5(p_expr), 'cron', cron => p_expr, timezone => 'UTC',
                                     starts_at => '2000-01-01 00:00+00');
    RETURN QUERY SELECT pgautomator.next_runs(v, p_after, p_n);
    PERFORM pgautomator.drop_schedule(v);
END $$;

SELECT results_eq($$SELECT pg_temp.cron('*/15 9-17 * * mon-fri', '2024-01-05 17:40+00', 3)$$,
    $$VALUES ('2024-01-05 17:45+00'::timestamptz), ('2024-01-08 09:00+00'), ('2024-01-08 09:15+00')$$,
    'steps, ranges and day names: office hours on weekdays');
SELECT results_eq($$SELECT pg_temp.cron('0 12 * JAN,jul sun', '2024-01-01 00:00+00', 5)$$,
    $$VALUES ('2024-01-07 12:00+00'::timestamptz), ('2024-01-14 12:00+00'), ('2024-01-21 12:00+00'),
             ('2024-01-28 12:00+00'), ('2024-07-07 12:00+00')$$,
    'month and day names in lists, any case');
SELECT results_eq($$SELECT pg_temp.cron('0 0 13 * 5', '2024-09-01 00:00+00', 8)$$,
    $$VALUES ('2024-09-06 00:00+00'::timestamptz), ('2024-09-13 00:00+00'), ('2024-09-20 00:00+00'),
             ('2024-09-27 00:00+00'), ('2024-10-04 00:00+00'), ('2024-10-11 00:00+00'),
             ('2024-10-13 00:00+00'), ('2024-10-18 00:00+00')$$,
    'both day fields restricted: the 13th or a Friday (Vixie)');
SELECT results_eq($$SELECT pg_temp.cron('0 0 */10 * 1', '2023-12-31 00:00+00', 4)$$,
    $$VALUES ('2024-01-01 00:00+00'::timestamptz), ('2024-03-11 00:00+00'), ('2024-04-01 00:00+00'),
             ('2024-07-01 00:00+00')$$,
    'a day field starting with * counts as unrestricted: days 1, 11, 21, 31 that are Mondays (Vixie)');
SELECT results_eq($$SELECT pg_temp.cron('0 0 $ * *', '2024-02-01 00:00+00', 3)$$,
    $$VALUES ('2024-02-29 00:00+00'::timestamptz), ('2024-03-31 00:00+00'), ('2024-04-30 00:00+00')$$,
    'pg_cron''s $ is the last day of the month');
SELECT results_eq($$SELECT pg_temp.cron('0 6 15,$ * *', '2023-02-01 00:00+00', 3)$$,
    $$VALUES ('2023-02-15 06:00+00'::timestamptz), ('2023-02-28 06:00+00'), ('2023-03-15 06:00+00')$$,
    '$ in a list beside other days');
SELECT results_eq($$SELECT pg_temp.cron('30 seconds', '2024-01-01 00:00:10+00', 3)$$,
    $$VALUES ('2024-01-01 00:00:30+00'::timestamptz), ('2024-01-01 00:01:00+00'), ('2024-01-01 00:01:30+00')$$,
    'pg_cron''s "N seconds" form');
SELECT results_eq($$SELECT pg_temp.cron('15 30 8 * * *', '2024-01-01 00:00+00', 2)$$,
    $$VALUES ('2024-01-01 08:30:15+00'::timestamptz), ('2024-01-02 08:30:15+00')$$,
    'a leading seconds field');
SELECT results_eq($$SELECT pg_temp.cron('@hourly', '2024-01-01 00:30+00', 1)
                    UNION ALL SELECT pg_temp.cron('@daily', '2024-01-01 00:30+00', 1)
                    UNION ALL SELECT pg_temp.cron('@weekly', '2024-01-01 00:30+00', 1)
                    UNION ALL SELECT pg_temp.cron('@monthly', '2024-01-01 00:30+00', 1)
                    UNION ALL SELECT pg_temp.cron('@yearly', '2024-01-01 00:30+00', 1)$$,
    $$VALUES ('2024-01-01 01:00+00'::timestamptz), ('2024-01-02 00:00+00'), ('2024-01-07 00:00+00'),
             ('2024-02-01 00:00+00'), ('2025-01-01 00:00+00')$$,
    'the @hourly, @daily, @weekly, @monthly and @yearly macros');
SELECT results_eq($$SELECT pg_temp.cron('0 0 * * 7', '2024-01-01 00:00+00', 1)$$,
    $$VALUES ('2024-01-07 00:00+00'::timestamptz)$$, 'day of week 7 is Sunday');
SELECT results_eq($$SELECT pg_temp.cron('5/20 0 * * *', '2024-01-01 00:00+00', 3)$$,
    $$VALUES ('2024-01-01 00:05+00'::timestamptz), ('2024-01-01 00:25+00'), ('2024-01-01 00:45+00')$$,
    'a/s steps from a to the end of the field');
SELECT results_eq($$SELECT pg_temp.cron('0 0-12/6 * * *', '2024-01-01 00:00+00', 3)$$,
    $$VALUES ('2024-01-01 06:00+00'::timestamptz), ('2024-01-01 12:00+00'), ('2024-01-02 00:00+00')$$,
    'a range with a step');
SELECT results_eq($$SELECT pg_temp.cron('0 0 29 2 *', '2024-03-01 00:00+00', 2)$$,
    $$VALUES ('2028-02-29 00:00+00'::timestamptz), ('2032-02-29 00:00+00')$$,
    'February 29 waits for the next leap year');
SELECT is_empty($$SELECT pg_temp.cron('0 0 30 2 *', '2024-01-01 00:00+00', 5)$$,
    'February 30 never fires: no instants and no endless search');
SELECT pgautomator.create_schedule('nyc', 'cron', cron => '30 2 * * *', timezone => 'America/New_York',
                                   starts_at => '2024-01-01 00:00+00');
SELECT results_eq($$SELECT pgautomator.next_runs('nyc', '2024-03-09 00:00+00', 3)$$,
    $$VALUES ('2024-03-09 07:30+00'::timestamptz), ('2024-03-10 07:00+00'), ('2024-03-11 06:30+00')$$,
    'cron runs in the schedule''s zone: 02:30 on the spring-forward day fires at 03:00 EDT');
SELECT is(pgautomator.describe_schedule('nyc'), 'at 02:30 every day (cron "30 2 * * *"), America/New_York',
    'a cron schedule described');
SELECT results_eq($$SELECT pgautomator._describe_cron(e) FROM unnest(ARRAY['*/5 * * * *', '*/15 9-17 * * mon-fri',
                     '0 0 13 * 5', '0 6 15,$ * *', '30 seconds', '@weekly', '0 12 * jan,jul sun', '30 * * * *',
                     '0 9,12,17 * * *', '0 0 1-31 * 1']) AS e$$,
    ARRAY['every 5 minutes', 'every 15 minutes from 09:00 to 17:59 on weekdays',
          'at 00:00 on day 13 of the month and on Friday', 'at 06:00 on day 15 and the last day of the month',
          'every 30 seconds', 'at 00:00 on Sunday', 'at 12:00 on Sunday in January and July',
          'at minute 30 of every hour', 'at 09:00, 12:00 and 17:00 every day', 'at 00:00 every day'],
    'common cron shapes in English (both day fields restricted: either matches)');
SELECT pgautomator.create_schedule('odd', 'cron', cron => '*/25 * * * *', timezone => 'UTC');
SELECT is(pgautomator.describe_schedule('odd'), 'on cron schedule "*/25 * * * *", UTC',
    'other shapes are shown as the expression');

SELECT * FROM finish();
ROLLBACK;

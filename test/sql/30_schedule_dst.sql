-- Daylight saving: a local time that does not exist fires once at the first
-- instant after the gap; one that happens twice fires once, at its first
-- occurrence. New York and London (one hour), Lord Howe (half an hour),
-- Tokyo and UTC (no daylight saving).
BEGIN;
SELECT plan(14);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE FUNCTION pg_temp.mk(p_name text, p_frequency text, p_args text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v bigint;
BEGIN
    EXECUTE format('SELECT pgautomator.create_schedule(%L, %L, %s)', p_name, p_frequency, p_args) INTO v;
    RETURN v;
END $$;

-- America/New_York: 2024-03-10 02:00 EST -> 03:00 EDT; 2024-11-03 02:00 EDT -> 01:00 EST.
SELECT pg_temp.mk('ny_spring', 'once', $$on_date => '2024-03-10', every_n => 30, every_unit => 'minute', between_start => '01:00', between_end => '04:00', timezone => 'America/New_York', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('ny_spring', '2024-01-01 00:00+00', 10)$$,
    $$VALUES ('2024-03-10 06:00+00'::timestamptz), ('2024-03-10 06:30+00'), ('2024-03-10 07:00+00'),
             ('2024-03-10 07:30+00'), ('2024-03-10 08:00+00')$$,
    'New York spring: 02:00 and 02:30 do not exist and fire once, together with 03:00 EDT');
SELECT pg_temp.mk('ny_autumn', 'once', $$on_date => '2024-11-03', every_n => 30, every_unit => 'minute', between_start => '00:30', between_end => '02:30', timezone => 'America/New_York', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('ny_autumn', '2024-01-01 00:00+00', 10)$$,
    $$VALUES ('2024-11-03 04:30+00'::timestamptz), ('2024-11-03 05:00+00'), ('2024-11-03 05:30+00'),
             ('2024-11-03 07:00+00'), ('2024-11-03 07:30+00')$$,
    'New York autumn: 01:00 and 01:30 happen twice and fire at their first (EDT) occurrence only');
SELECT pg_temp.mk('ny_hourly', 'cron', $$cron => '0 * * * *', timezone => 'America/New_York', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('ny_hourly', '2024-03-10 05:30+00', 3)$$,
    $$VALUES ('2024-03-10 06:00+00'::timestamptz), ('2024-03-10 07:00+00'), ('2024-03-10 08:00+00')$$,
    'New York hourly cron in spring: the hour of the gap fires once at 03:00 EDT');
SELECT results_eq($$SELECT pgautomator.next_runs('ny_hourly', '2024-11-03 04:30+00', 3)$$,
    $$VALUES ('2024-11-03 05:00+00'::timestamptz), ('2024-11-03 07:00+00'), ('2024-11-03 08:00+00')$$,
    'New York hourly cron in autumn: the repeated 01:00 fires once');
SELECT pg_temp.mk('ny_daily', 'daily', $$at_time => '01:30', timezone => 'America/New_York', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('ny_daily', '2024-11-02 00:00+00', 3)$$,
    $$VALUES ('2024-11-02 05:30+00'::timestamptz), ('2024-11-03 05:30+00'), ('2024-11-04 06:30+00')$$,
    'New York daily 01:30 across the autumn change: once, at the EDT occurrence');

-- Europe/London: 2024-03-31 01:00 GMT -> 02:00 BST; 2024-10-27 02:00 BST -> 01:00 GMT.
SELECT pg_temp.mk('london', 'daily', $$at_time => '01:30', timezone => 'Europe/London', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('london', '2024-03-30 00:00+00', 3)$$,
    $$VALUES ('2024-03-30 01:30+00'::timestamptz), ('2024-03-31 01:00+00'), ('2024-04-01 00:30+00')$$,
    'London spring: 01:30 does not exist and fires at 02:00 BST');
SELECT results_eq($$SELECT pgautomator.next_runs('london', '2024-10-26 00:00+00', 3)$$,
    $$VALUES ('2024-10-26 00:30+00'::timestamptz), ('2024-10-27 00:30+00'), ('2024-10-28 01:30+00')$$,
    'London autumn: 01:30 happens twice and fires at 01:30 BST');

-- Australia/Lord_Howe: +10:30 standard, +11 summer, a half-hour shift at
-- 02:00 local: 2024-10-06 02:00 -> 02:30; 2024-04-07 02:00 -> 01:30.
SELECT pg_temp.mk('lhi_spring', 'daily', $$at_time => '02:15', timezone => 'Australia/Lord_Howe', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('lhi_spring', '2024-10-04 00:00+00', 3)$$,
    $$VALUES ('2024-10-04 15:45+00'::timestamptz), ('2024-10-05 15:30+00'), ('2024-10-06 15:15+00')$$,
    'Lord Howe spring: 02:15 falls in the half-hour gap and fires at 02:30 (+11)');
SELECT pg_temp.mk('lhi_autumn', 'daily', $$at_time => '01:45', timezone => 'Australia/Lord_Howe', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('lhi_autumn', '2024-04-05 00:00+00', 3)$$,
    $$VALUES ('2024-04-05 14:45+00'::timestamptz), ('2024-04-06 14:45+00'), ('2024-04-07 15:15+00')$$,
    'Lord Howe autumn: 01:45 happens twice, half an hour apart, and fires at the first');
SELECT pg_temp.mk('lhi_every', 'once', $$on_date => '2024-04-07', every_n => 15, every_unit => 'minute', between_start => '01:15', between_end => '02:00', timezone => 'Australia/Lord_Howe', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('lhi_every', '2024-01-01 00:00+00', 10)$$,
    $$VALUES ('2024-04-06 14:15+00'::timestamptz), ('2024-04-06 14:30+00'), ('2024-04-06 14:45+00'),
             ('2024-04-06 15:30+00')$$,
    'Lord Howe autumn every 15 minutes: the repeated half hour is not fired again');

-- No daylight saving: Tokyo and UTC keep a fixed offset on those dates.
SELECT pg_temp.mk('tokyo', 'daily', $$at_time => '02:30', timezone => 'Asia/Tokyo', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('tokyo', '2024-03-08 00:00+00', 3)$$,
    $$VALUES ('2024-03-08 17:30+00'::timestamptz), ('2024-03-09 17:30+00'), ('2024-03-10 17:30+00')$$,
    'Tokyo: 02:30 JST is 17:30 UTC every day');
SELECT pg_temp.mk('utc_hourly', 'daily', $$every_n => 1, every_unit => 'hour', timezone => 'UTC', starts_at => '2024-01-01 00:00+00'$$);
SELECT results_eq($$SELECT pgautomator.next_runs('utc_hourly', '2024-10-27 00:30+00', 3)$$,
    $$VALUES ('2024-10-27 01:00+00'::timestamptz), ('2024-10-27 02:00+00'), ('2024-10-27 03:00+00')$$,
    'UTC: hourly without gaps or repeats');

-- The zone defaults to the session's TimeZone.
SET LOCAL TimeZone = 'Europe/Berlin';
SELECT pg_temp.mk('default_zone', 'daily', $$at_time => '08:00', starts_at => '2024-01-01 00:00+00'$$);
SELECT is((SELECT timezone FROM pgautomator.schedule WHERE name = 'default_zone'), 'Europe/Berlin',
    'the time zone defaults to the TimeZone setting');
SET LOCAL TimeZone = 'UTC';
SELECT results_eq($$SELECT pgautomator.next_runs('default_zone', '2024-07-01 00:00+00', 1)$$,
    $$VALUES ('2024-07-01 06:00+00'::timestamptz)$$, '08:00 Berlin summer time is 06:00 UTC');

SELECT * FROM finish();
ROLLBACK;

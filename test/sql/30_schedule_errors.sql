-- Bad schedule definitions: a clear 22023 naming the field, nothing stored.
BEGIN;
SELECT plan(44);
SET LOCAL TimeZone = 'UTC';

CREATE FUNCTION pg_temp.bad(p_frequency text, p_args text, p_message text, p_description text)
RETURNS text LANGUAGE sql AS $$
    SELECT throws_ok(format('SELECT pgautomator.create_schedule(%L, %L%s)', 'bad', p_frequency,
                            CASE WHEN p_args = '' THEN '' ELSE ', ' || p_args END),
                     '22023', p_message, p_description)
$$;

SELECT pg_temp.bad('monthly', $$month_days => '{0}'$$,
    'invalid month_days value "0": a day must be between 1 and 31, or last', 'day 0');
SELECT pg_temp.bad('monthly', $$month_days => '{1,32}'$$,
    'invalid month_days value "32": a day must be between 1 and 31, or last', 'day 32');
SELECT pg_temp.bad('monthly', $$month_days => '{}'$$, 'month_days must list at least one day', 'an empty day list');
SELECT pg_temp.bad('monthly', '', 'month_days must list at least one day (1..31 or last) for frequency monthly',
    'monthly without days');
SELECT pg_temp.bad('daily', 'every => 0', 'every must be between 1 and 1000, not 0', 'interval 0');
SELECT pg_temp.bad('daily', $$every_n => 0, every_unit => 'minute'$$, 'every_n must be between 1 and 86400, not 0',
    'a sub-day interval of 0');
SELECT pg_temp.bad('daily', $$every_n => 25, every_unit => 'hour'$$, 'every_n 25 hour is longer than a day',
    'a sub-day interval longer than a day');
SELECT pg_temp.bad('daily', $$every_n => 5$$, 'every_n and every_unit must be given together', 'every_n without a unit');
SELECT pg_temp.bad('daily', $$every_n => 5, every_unit => 'fortnight'$$, 'invalid every_unit "fortnight"', 'an unknown unit');
SELECT pg_temp.bad('daily', $$every_n => 5, every_unit => 'minute', between_start => '09:00', between_end => '08:00'$$,
    'between_end 08:00:00 is before between_start 09:00:00', 'a window that ends before it starts');
SELECT pg_temp.bad('daily', $$at_time => '08:00', every_n => 5, every_unit => 'minute'$$,
    'give either at_time or every_n, not both', 'at_time and every_n together');
SELECT pg_temp.bad('daily', $$between_start => '08:00'$$, 'between_start and between_end apply only with every_n',
    'a window without every_n');
SELECT pg_temp.bad('daily', $$starts_at => '2024-02-01 00:00+00', ends_at => '2024-01-01 00:00+00'$$,
    'ends_at 2024-01-01 00:00:00+00 is not after starts_at 2024-02-01 00:00:00+00', 'an end before the start');
SELECT pg_temp.bad('daily', $$timezone => 'Mars/Olympus'$$, 'unknown time zone "Mars/Olympus"', 'an unknown zone');
SELECT pg_temp.bad('daily', $$timezone => ''$$, 'timezone must not be empty', 'an empty zone');
SELECT pg_temp.bad('daily', $$timezone => 'right/Europe/Berlin'$$, 'time zone "right/Europe/Berlin" is not supported',
    'a leap-second zone (timestamptz has no leap seconds, and its file no rules for later years)');
SELECT pg_temp.bad('cron', format('cron => %L', repeat('1,', 600) || '1 * * * *'),
    'cron must be at most 1000 characters, not 1209', 'an overlong cron expression (errors quote it)');
SELECT pg_temp.bad('daily', $$timezone => 'localtime'$$, 'time zone "localtime" is not supported',
    'a zone that follows the host');
SELECT pg_temp.bad('hourly', '', 'invalid frequency "hourly"', 'an unknown frequency');
SELECT pg_temp.bad(NULL, '', 'frequency must be given', 'no frequency');
SELECT pg_temp.bad('weekly', $$weekdays => '{}'$$, 'weekdays must list at least one day', 'an empty weekday list');
SELECT pg_temp.bad('weekly', '', 'weekdays must list at least one day for frequency weekly', 'weekly without weekdays');
SELECT pg_temp.bad('weekly', $$weekdays => '{funday}'$$, 'invalid weekdays value "funday"', 'an unknown weekday');
SELECT pg_temp.bad('once', '', 'on_date must be given for frequency once', 'once without a date');
SELECT pg_temp.bad('monthly_relative', $$relative_week => 'fifth', relative_day => 'monday'$$,
    'invalid relative_week "fifth"', 'an unknown relative week');
SELECT pg_temp.bad('monthly_relative', $$relative_week => 'first'$$,
    'relative_week and relative_day must be given for frequency monthly_relative', 'a relative week without a day');
SELECT pg_temp.bad('daily', $$weekdays => '{mon}'$$, 'weekdays does not apply to frequency daily',
    'weekdays on a daily schedule');
SELECT pg_temp.bad('weekly', $$weekdays => '{mon}', month_days => '{1}'$$, 'month_days does not apply to frequency weekly',
    'month_days on a weekly schedule');
SELECT pg_temp.bad('daily', $$on_date => '2024-01-01'$$, 'on_date does not apply to frequency daily',
    'on_date on a daily schedule');
SELECT pg_temp.bad('cron', $$cron => '* * * * *', at_time => '08:00'$$, 'at_time does not apply to frequency cron',
    'at_time on a cron schedule');
SELECT pg_temp.bad('daily', $$cron => '* * * * *'$$, 'cron does not apply to frequency daily', 'cron on a daily schedule');
SELECT pg_temp.bad('once', $$on_date => '2024-01-01', every => 2$$, 'every does not apply to frequency once',
    'every on a once schedule');
SELECT pg_temp.bad('cron', $$cron => '* * * *'$$, 'invalid cron expression "* * * *": it has 4 fields',
    'a cron expression with 4 fields');
SELECT pg_temp.bad('cron', $$cron => 'x * * * *'$$,
    'invalid cron expression "x * * * *": minute field value "x" is not a number', 'a malformed minute field');
SELECT pg_temp.bad('cron', $$cron => '0 0 * 13 *'$$,
    'invalid cron expression "0 0 * 13 *": month field value "13" is out of range 1-12', 'month 13');
SELECT pg_temp.bad('cron', $$cron => '0 0 * * 8'$$,
    'invalid cron expression "0 0 * * 8": day-of-week field value "8" is out of range 0-7', 'day of week 8');
SELECT pg_temp.bad('cron', $$cron => '*/0 * * * *'$$,
    'invalid cron expression "*/0 * * * *": minute field step "0" must be at least 1', 'a step of 0');
SELECT pg_temp.bad('cron', $$cron => '0 17-9 * * *'$$,
    'invalid cron expression "0 17-9 * * *": hour field range "17-9" runs backwards', 'a backwards range');
SELECT pg_temp.bad('cron', $$cron => '@reboot'$$, 'invalid cron expression "@reboot": unknown macro', 'an unknown macro');
SELECT pg_temp.bad('cron', $$cron => '90 seconds'$$,
    'invalid cron expression "90 seconds": seconds must be between 1 and 59, not 90', 'too many seconds');
SELECT pg_temp.bad('daily', $$starts_at => '1800-01-01 00:00+00'$$,
    'starts_at must be between 1900-01-01 and 9000-01-01, not 1800-01-01 00:00:00+00', 'a start outside the calendar');
SELECT pg_temp.bad('daily', $$at_time => '24:00'$$, 'times of day must be before 24:00', 'the time 24:00');
SELECT throws_ok($$SELECT pgautomator.next_runs('nope', now())$$, '42704', 'schedule "nope" does not exist',
    'next_runs of a missing schedule');
SELECT is((SELECT count(*) FROM pgautomator.schedule WHERE name = 'bad'), 0::bigint, 'nothing was stored');

SELECT * FROM finish();
ROLLBACK;

-- Example objects for make demo: jobs running on their schedules as a
-- non-superuser role, a multi-step job with retries, maintenance, and a
-- slow job to start and stop by hand.
\set QUIET on
SET client_min_messages = warning;
\o /dev/null

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'demo_etl') THEN
        CREATE ROLE demo_etl LOGIN;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS public.demo_events (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(),
                                               what text NOT NULL);
CREATE TABLE IF NOT EXISTS public.demo_daily (day date PRIMARY KEY, events bigint NOT NULL);
GRANT SELECT, INSERT, UPDATE, DELETE ON public.demo_events, public.demo_daily TO demo_etl;
GRANT USAGE ON SEQUENCE public.demo_events_id_seq TO demo_etl;
ALTER TABLE public.demo_events OWNER TO demo_etl;    -- so its steps may VACUUM it

SELECT pgautomator.create_category('maintenance', 'housekeeping of the demo database');
SELECT pgautomator.create_category('etl', 'loading and summarising data');

-- schedules are objects of their own; one may serve many jobs
SELECT pgautomator.create_schedule('every 5 seconds', 'daily', every_n => 5, every_unit => 'second');
SELECT pgautomator.create_schedule('every minute', 'cron', cron => '* * * * *');
SELECT pgautomator.create_schedule('office hours', 'weekly', weekdays => '{weekdays}', every_n => 15,
                                   every_unit => 'minute', between_start => '08:00', between_end => '18:00',
                                   timezone => 'Europe/Berlin');
SELECT pgautomator.create_schedule('nightly', 'daily', at_time => '03:00', timezone => 'UTC');
SELECT pgautomator.add_exclusion('nightly', on_date => (current_date + 7), reason => 'maintenance window');

SELECT pgautomator.create_job('heartbeat', 'writes a row every 5 seconds', category => 'etl', run_as => 'demo_etl');
SELECT pgautomator.add_step('heartbeat', 'record', $$INSERT INTO public.demo_events (what) VALUES ('tick')$$);
SELECT pgautomator.attach_schedule('heartbeat', 'every 5 seconds');

SELECT pgautomator.create_job('summarise', 'rolls events up per day, then cleans up', category => 'etl',
                              run_as => 'demo_etl', overlap => 'skip', timeout => '10 minutes');
SELECT pgautomator.add_step('summarise', 'roll up', $$
    INSERT INTO public.demo_daily
    SELECT at::date, count(*) FROM public.demo_events GROUP BY 1
    ON CONFLICT (day) DO UPDATE SET events = excluded.events$$);
SELECT pgautomator.add_step('summarise', 'clean up', $$DELETE FROM public.demo_events WHERE at < now() - interval '1 hour'$$,
                            retries => 2, retry_interval => '5 seconds');
SELECT pgautomator.attach_schedule('summarise', 'every minute');
SELECT pgautomator.attach_schedule('summarise', 'office hours');

SELECT pgautomator.create_job('vacuum', 'VACUUM ANALYZE the demo tables', category => 'maintenance',
                              run_as => 'demo_etl');
SELECT pgautomator.add_step('vacuum', 'vacuum', 'VACUUM (ANALYZE) public.demo_events');
SELECT pgautomator.attach_schedule('vacuum', 'nightly');

SELECT pgautomator.create_job('slow', 'sleeps: start it by hand, then stop it', category => 'maintenance',
                              run_as => 'demo_etl');
SELECT pgautomator.add_step('slow', 'sleep', 'SELECT pg_sleep(600)', timeout => '15 minutes');

\o
\echo
\echo Schedules:
SELECT name, summary, next_fire_at, jobs FROM pgautomator.schedules ORDER BY id;
\echo Jobs:
SELECT name, category, steps, run_as, next_run_at FROM pgautomator.jobs ORDER BY id;

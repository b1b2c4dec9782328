-- Example objects for make demo. Each later part of pgautomator adds its
-- examples here, so the demo shows what exists.
\set QUIET on
SET client_min_messages = warning;
\o /dev/null
SELECT pgautomator.create_category('maintenance', 'housekeeping of the demo database');
SELECT pgautomator.create_category('etl', 'loading and summarising data');

CREATE TABLE IF NOT EXISTS public.demo_events (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(),
                                 what text NOT NULL);
CREATE TABLE IF NOT EXISTS public.demo_daily (day date PRIMARY KEY, events bigint NOT NULL);

SELECT pgautomator.create_job('heartbeat', 'writes a row every few seconds', category => 'etl');
SELECT pgautomator.add_step('heartbeat', 'record', $$INSERT INTO public.demo_events (what) VALUES ('tick')$$);

SELECT pgautomator.create_job('summarise', 'rolls events up per day, then cleans up', category => 'etl',
                              overlap => 'skip', timeout => '10 minutes');
SELECT pgautomator.add_step('summarise', 'roll up', $$
    INSERT INTO public.demo_daily
    SELECT at::date, count(*) FROM public.demo_events GROUP BY 1
    ON CONFLICT (day) DO UPDATE SET events = excluded.events$$, on_failure => 'fail');
SELECT pgautomator.add_step('summarise', 'clean up', $$DELETE FROM public.demo_events WHERE at < now() - interval '1 hour'$$,
                            retries => 2, retry_interval => '5 seconds');

SELECT pgautomator.create_job('vacuum', 'VACUUM ANALYZE the demo tables', category => 'maintenance');
SELECT pgautomator.add_step('vacuum', 'vacuum', 'VACUUM (ANALYZE) public.demo_events; VACUUM (ANALYZE) public.demo_daily');

SELECT pgautomator.create_job('slow', 'sleeps: start it by hand, then stop it', category => 'maintenance');
SELECT pgautomator.add_step('slow', 'sleep', 'SELECT pg_sleep(600)', timeout => '15 minutes');

\o
\echo Example jobs:
SELECT name, category, steps, run_as FROM pgautomator.jobs ORDER BY id;

-- After an update of the time zone database the dispatcher computes again
-- the coming next fire instants of the zones whose tzdata file changed
-- (_check_time_zones), when its session starts and then once an hour.
BEGIN;
SELECT plan(16);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

SELECT isnt(pgautomator._tz_fingerprint('Europe/Berlin'), NULL, 'a zone has a fingerprint');
SELECT is(pgautomator._tz_fingerprint('Europe/Berlin'), pgautomator._tz_fingerprint('Europe/Berlin', true),
          'the same file gives the same fingerprint, cached zones dropped or not');
SELECT isnt(pgautomator._tz_fingerprint('Europe/Berlin'), pgautomator._tz_fingerprint('America/New_York'),
            'another zone, another fingerprint');
SELECT is(pgautomator._tz_fingerprint('../../etc/passwd'), NULL, 'a path is not a zone');
SELECT is(pgautomator._tz_fingerprint('Nowhere/Atlantis'), NULL, 'an unknown zone has none');

-- A daily schedule in Berlin fires three jobs: one link still to come, one
-- due, one whose next instant is still to be computed by the dispatcher.
SELECT pgautomator.create_schedule('tz_daily', 'daily', at_time => '02:30', timezone => 'Europe/Berlin') AS s \gset
SELECT pgautomator.create_job('tz_' || x) FROM (VALUES ('a'), ('b'), ('c')) v(x);
SELECT pgautomator.add_step('tz_' || x, 'only', 'SELECT 1') FROM (VALUES ('a'), ('b'), ('c')) v(x);
SELECT pgautomator.attach_schedule('tz_' || x, 'tz_daily') FROM (VALUES ('a'), ('b'), ('c')) v(x);
SELECT js.next_fire_at AS right_at FROM pgautomator.job_schedule js JOIN pgautomator.job j ON j.id = js.job_id
 WHERE j.name = 'tz_a' \gset
CREATE FUNCTION pg_temp.next_of(p_job text) RETURNS timestamptz LANGUAGE sql AS $$
    SELECT js.next_fire_at FROM pgautomator.job_schedule js JOIN pgautomator.job j ON j.id = js.job_id
     WHERE j.name = p_job $$;
-- as if computed with other rules: an hour off
CREATE FUNCTION pg_temp.stale(p_right timestamptz) RETURNS void LANGUAGE sql AS $$
    UPDATE pgautomator.job_schedule js SET next_fire_at = CASE j.name
               WHEN 'tz_a' THEN p_right + interval '1 hour'
               WHEN 'tz_b' THEN pg_catalog.now() - interval '1 minute'
               ELSE 'infinity' END
      FROM pgautomator.job j WHERE j.id = js.job_id AND j.name LIKE 'tz\_%';
    UPDATE pgautomator.tz_rules SET fingerprint = 'older rules' WHERE zone = 'Europe/Berlin' $$;

DELETE FROM pgautomator.tz_rules;
SELECT pg_temp.stale(:'right_at');
SELECT is(pgautomator._check_time_zones(now()), 0, 'a zone seen for the first time is only recorded');
SELECT is((SELECT fingerprint FROM pgautomator.tz_rules WHERE zone = 'Europe/Berlin'),
          pgautomator._tz_fingerprint('Europe/Berlin'), '... with its fingerprint');

SELECT pg_temp.stale(:'right_at');
SELECT is(pgautomator._check_time_zones(now()), 1, 'when its rules changed, the links still to come are computed again');
SELECT is(pg_temp.next_of('tz_a'), :'right_at'::timestamptz, '... and their next instant is right again');
SELECT is(pg_temp.next_of('tz_b'), now() - interval '1 minute', 'a due link fires as it is');
SELECT is(pg_temp.next_of('tz_c'), 'infinity'::timestamptz, 'one the dispatcher is to compute is left to it');
SELECT is((SELECT fingerprint FROM pgautomator.tz_rules WHERE zone = 'Europe/Berlin'),
          pgautomator._tz_fingerprint('Europe/Berlin'), 'the new rules are recorded');
SELECT is(pgautomator._check_time_zones(now()), 0, 'with no change since, nothing is computed again');

-- the dispatcher looks when its session starts, then once an hour
SELECT pg_temp.stale(:'right_at');
SELECT pgautomator._dispatch_time_zones(now() - interval '2 hours');
SELECT is(pg_temp.next_of('tz_a'), :'right_at'::timestamptz, 'the first look of a session computes again');
SELECT pg_temp.stale(:'right_at');
SELECT pgautomator._dispatch_time_zones(now() - interval '61 minutes');
SELECT is(pg_temp.next_of('tz_a'), :'right_at'::timestamptz + interval '1 hour', 'within the hour it does not look');
SELECT pgautomator._dispatch_time_zones(now());
SELECT is(pg_temp.next_of('tz_a'), :'right_at'::timestamptz, 'an hour later it looks again');

SELECT * FROM finish();
ROLLBACK;

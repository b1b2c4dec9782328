-- Time zone rules: what a schedule records of its zone, and how often the
-- dispatcher's pass compares them with the zone files (once a minute).
-- The files themselves change only in the pytest tests
-- (test_schedule_zone_rules.py), which can point a session elsewhere.
BEGIN;
SELECT plan(5);

SELECT pgautomator._launcher_start(4242);
SELECT pgautomator.create_schedule('zr_utc', 'daily', at_time => '12:00', timezone => 'UTC') AS s \gset
SELECT ok((SELECT fingerprint = encode(sha256(rules), 'hex') AND length(rules) > 0
             FROM pgautomator.zone_rules WHERE zone = 'UTC'),
          'a schedule records the rules of its zone (the file and its SHA-256)');

-- A recorded fingerprint that no file has: the check rewrites it.
UPDATE pgautomator.zone_rules SET fingerprint = 'x' WHERE zone = 'UTC';
SELECT pgautomator._launcher_tick('2031-01-01 00:00:00+00');
SELECT isnt((SELECT fingerprint FROM pgautomator.zone_rules WHERE zone = 'UTC'), 'x',
            'the first pass of a session checks the rules');
UPDATE pgautomator.zone_rules SET fingerprint = 'x' WHERE zone = 'UTC';
SELECT pgautomator._launcher_tick('2031-01-01 00:00:30+00');
SELECT is((SELECT fingerprint FROM pgautomator.zone_rules WHERE zone = 'UTC'), 'x',
          'a pass within a minute of the check does not check again');
SELECT pgautomator._launcher_tick('2031-01-01 00:01:01+00');
SELECT isnt((SELECT fingerprint FROM pgautomator.zone_rules WHERE zone = 'UTC'), 'x',
            'the first pass a minute after the check does');

CREATE ROLE zr_user LOGIN IN ROLE pgautomator_user;
SET SESSION AUTHORIZATION zr_user;
SELECT throws_ok('SELECT * FROM pgautomator.check_time_zone_rules()', '42501', NULL,
                 'only admins check the rules');
RESET SESSION AUTHORIZATION;

SELECT * FROM finish();
ROLLBACK;

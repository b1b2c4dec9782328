-- Roles, ownership, run-as rules and row-level security, as non-superusers.
BEGIN;
SELECT plan(30);

CREATE ROLE pga_alice LOGIN IN ROLE pgautomator_user;
CREATE ROLE pga_bob LOGIN IN ROLE pgautomator_user;
CREATE ROLE pga_etl LOGIN;
GRANT pga_etl TO pga_alice;
CREATE ROLE pga_op LOGIN IN ROLE pgautomator_operator;
CREATE ROLE pga_admin LOGIN IN ROLE pgautomator_admin;
CREATE ROLE pga_nobody LOGIN;
-- pgTAP keeps its state in temporary tables owned by the session that
-- planned; the roles we switch to must be able to write them.
GRANT ALL ON ALL TABLES IN SCHEMA pg_temp TO PUBLIC;
GRANT ALL ON ALL SEQUENCES IN SCHEMA pg_temp TO PUBLIC;

SET SESSION AUTHORIZATION pga_nobody;
SELECT throws_ok($$SELECT pgautomator.create_job('x')$$, '42501', NULL,
                 'a role outside pgautomator_user cannot call the API');
SELECT throws_ok($$SELECT * FROM pgautomator.job$$, '42501', NULL, 'nor read the tables');

SET SESSION AUTHORIZATION pga_alice;
SELECT lives_ok($$SELECT pgautomator.create_job('alice-job')$$, 'a user creates a job');
SELECT throws_ok($$SELECT pgautomator.create_job('alice-spoof', notify_from => 'ceo@example.com')$$, '42501',
                 'permission denied to set notify_from',
                 'only admins choose a job''s mail sender (mail goes out through the admin''s SMTP account)');
SELECT is((SELECT run_as::text || '/' || owner::text FROM pgautomator.job WHERE name = 'alice-job'),
          'pga_alice/pga_alice', 'it runs as and is owned by its creator');
SELECT lives_ok($$SELECT pgautomator.create_job('etl-job', run_as => 'pga_etl')$$,
                'a user may run a job as a role it is a member of');
SELECT throws_ok($$SELECT pgautomator.create_job('bad', run_as => 'pga_bob')$$, '42501',
                 'permission denied to run jobs as role "pga_bob"', 'but not as a role it is not a member of');
SELECT throws_ok($$SELECT pgautomator.create_job('bad', run_as => 'postgres')$$, '42501',
                 'permission denied to run jobs as role "postgres"', 'and never as a superuser');
SELECT throws_ok($$SELECT pgautomator.create_job('bad', owner => 'pga_bob')$$, '42501',
                 'permission denied to give objects to role "pga_bob"', 'nor give a job to another role');
SELECT pgautomator.add_step('alice-job', 's', 'SELECT 1');
SELECT throws_ok($$INSERT INTO pgautomator.category (name) VALUES ('direct')$$, '42501', NULL,
                 'tables are not writable directly');
SELECT throws_ok($$UPDATE pgautomator.job SET run_as = 'postgres'$$, '42501', NULL,
                 'a job cannot be changed behind the API');
SELECT throws_ok($$SELECT pgautomator.create_category('c')$$, '42501', 'permission denied to create categories',
                 'only admins manage categories');
SELECT throws_ok($$SELECT smtp_password FROM pgautomator.agent$$, '42501', NULL,
                 'SMTP passwords are not readable');

SET SESSION AUTHORIZATION pga_bob;
SELECT is((SELECT count(*) FROM pgautomator.jobs WHERE name IN ('alice-job', 'etl-job')), 0::bigint,
          'another user does not see her jobs');
SELECT is((SELECT count(*) FROM pgautomator.steps WHERE job = 'alice-job'), 0::bigint, 'nor their steps');
SELECT throws_ok($$SELECT pgautomator.alter_job('alice-job', description => 'mine now')$$, '42704',
                 'job "alice-job" does not exist', 'nor alter them: for him they do not exist');
SELECT throws_ok($$SELECT pgautomator.drop_job('alice-job')$$, '42704', 'job "alice-job" does not exist',
                 'nor drop them');
SELECT throws_ok($$SELECT pgautomator.disable_job('alice-job')$$, '42704', 'job "alice-job" does not exist',
                 'nor disable them');
SELECT throws_ok($$SELECT pgautomator.alter_step('alice-job', 's', code => 'DROP TABLE x')$$, '42704',
                 'job "alice-job" does not exist', 'nor change their steps');

SET SESSION AUTHORIZATION pga_op;
SELECT is((SELECT count(*) FROM pgautomator.jobs WHERE name IN ('alice-job', 'etl-job')), 2::bigint,
          'an operator sees every job');
SELECT lives_ok($$SELECT pgautomator.disable_job('alice-job')$$, 'an operator may disable any job');
SELECT throws_ok($$SELECT pgautomator.alter_job('alice-job', run_as => 'pga_op')$$, '42501',
                 'permission denied for job "alice-job"', 'but not redefine it');

SET SESSION AUTHORIZATION pga_admin;
SELECT lives_ok($$SELECT pgautomator.alter_job('alice-job', description => 'reviewed')$$,
                'an admin may alter any job');
SELECT throws_ok($$SELECT pgautomator.alter_job('alice-job', run_as => 'pga_etl')$$, '42501',
                 'permission denied to run jobs as role "pga_etl"',
                 'but even an admin cannot make a job run as a role it is not a member of');
SELECT lives_ok($$SELECT pgautomator.create_category('reviewed')$$, 'an admin manages categories');
SELECT throws_ok($$SELECT pgautomator.alter_step('alice-job', 's', code => 'SELECT 2')$$, '42501',
                 'permission denied to change the steps of job "alice-job"',
                 'an admin who is not a member of the run-as role cannot change what a job runs');
SELECT throws_ok($$SELECT pgautomator.add_step('alice-job', 'more', 'SELECT 2')$$, '42501',
                 'permission denied to change the steps of job "alice-job"', 'nor add steps to it');

-- A job shared with a team: team members manage it, but only members of
-- its run-as role change its steps.
RESET SESSION AUTHORIZATION;
CREATE ROLE pga_team NOLOGIN;
GRANT pga_team TO pga_alice, pga_bob;
SET SESSION AUTHORIZATION pga_alice;
SELECT pgautomator.create_job('team-job', run_as => 'pga_etl', owner => 'pga_team');
SELECT pgautomator.add_step('team-job', 's', 'SELECT 1');
SET SESSION AUTHORIZATION pga_bob;
SELECT lives_ok($$SELECT pgautomator.alter_job('team-job', description => 'bob was here')$$,
                'a member of the owner role manages a team job');
SELECT throws_ok($$SELECT pgautomator.alter_step('team-job', 's', code => 'SELECT secret FROM etl.keys')$$, '42501',
                 'permission denied to change the steps of job "team-job"',
                 'but cannot make it run his code as a role he is not a member of');

RESET SESSION AUTHORIZATION;

-- From PostgreSQL 16 a membership may deny SET ROLE: such a member may not
-- run jobs as the role (pg_has_role's MEMBER would say it may).
DO $$ BEGIN
    IF current_setting('server_version_num')::integer >= 160000 THEN
        EXECUTE 'CREATE ROLE pga_noset LOGIN';
        EXECUTE 'GRANT pga_noset TO pga_alice WITH INHERIT FALSE, SET FALSE';
    END IF;
END $$;
SET SESSION AUTHORIZATION pga_alice;
SELECT CASE WHEN current_setting('server_version_num')::integer < 160000
            THEN skip('a membership WITH SET FALSE needs PostgreSQL 16', 1)
            ELSE throws_ok($$SELECT pgautomator.create_job('noset-job', run_as => 'pga_noset')$$, '42501',
                           'permission denied to run jobs as role "pga_noset"',
                           'a member that may not SET ROLE to a role may not run jobs as it') END;
RESET SESSION AUTHORIZATION;

SELECT * FROM finish();
ROLLBACK;

-- An agent belongs to the role it registered as: another agent role can
-- neither take over its name nor claim, report or heartbeat for it.
BEGIN;
SELECT plan(21);

CREATE ROLE pga_agent_a LOGIN IN ROLE pgautomator_agent;
CREATE ROLE pga_agent_b LOGIN IN ROLE pgautomator_agent;
CREATE ROLE pga_not_agent LOGIN;
CREATE ROLE pga_etl2 LOGIN;
GRANT ALL ON ALL TABLES IN SCHEMA pg_temp TO PUBLIC;
GRANT ALL ON ALL SEQUENCES IN SCHEMA pg_temp TO PUBLIC;

SET SESSION AUTHORIZATION pga_agent_a;
SELECT lives_ok($$SELECT pgautomator.agent_register_v1('host-a', 'a.example', '{shell}', 2, '0.1.0', 1)$$,
                'an agent role registers an agent');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT login::text FROM pgautomator.agent WHERE name = 'host-a'), 'pga_agent_a',
          'the agent remembers the role it registered as');
SELECT set_config('test.agent_a', (SELECT id::text FROM pgautomator.agent WHERE name = 'host-a'), true);

SET SESSION AUTHORIZATION pga_agent_b;
SELECT throws_ok($$SELECT pgautomator.agent_register_v1('host-a', 'b.example', '{shell}', 2, '0.1.0', 2)$$,
                 '42501', 'permission denied for agent "host-a": it belongs to role "pga_agent_a"',
                 'another agent role cannot take over the name');
SELECT throws_ok(format('SELECT pgautomator.agent_claim_v1(%s, 1)', current_setting('test.agent_a')),
                 '42501', NULL, 'nor claim as that agent');
SELECT throws_ok(format('SELECT pgautomator.agent_heartbeat_v1(%s)', current_setting('test.agent_a')),
                 '42501', NULL, 'nor heartbeat as that agent');
SELECT throws_ok(format('SELECT pgautomator.agent_running_v1(%s)', current_setting('test.agent_a')),
                 '42501', NULL, 'nor list what that agent runs');
SELECT throws_ok(format('SELECT pgautomator.agent_report_v1(%s, 1, true, 0, NULL, NULL, NULL, NULL)',
                        current_setting('test.agent_a')),
                 '42501', NULL, 'nor report as that agent');

SET SESSION AUTHORIZATION pga_agent_a;
SELECT lives_ok(format('SELECT pgautomator.agent_heartbeat_v1(%s)', current_setting('test.agent_a')),
                'its own role keeps acting as it');
SELECT lives_ok($$SELECT pgautomator.agent_register_v1('host-a', 'a.example', '{shell}', 2, '0.1.1', 3)$$,
                'and may register it again (a restart)');

RESET SESSION AUTHORIZATION;
SELECT lives_ok(format('SELECT pgautomator.agent_heartbeat_v1(%s)', current_setting('test.agent_a')),
                'a superuser may act as any agent');

-- An agent an admin registered ahead of its process.
SELECT set_config('test.agent_c', pgautomator.register_agent('host-c')::text, true);
SET SESSION AUTHORIZATION pga_agent_b;
SELECT throws_ok(format('SELECT pgautomator.agent_claim_v1(%s, 1)', current_setting('test.agent_c')), '42501',
                 'permission denied for agent "host-c": no agent process has registered it yet',
                 'no agent role may claim for an agent that has not registered');
RESET SESSION AUTHORIZATION;
SELECT lives_ok($$SELECT pgautomator.register_agent('host-d', login => 'pga_agent_a')$$,
                'an admin may bind a pre-registered agent to its login role');
SET SESSION AUTHORIZATION pga_agent_b;
SELECT throws_ok($$SELECT pgautomator.agent_register_v1('host-d', 'b.example', '{shell}', 2, '0.1.0', 4)$$,
                 '42501', 'permission denied for agent "host-d": it belongs to role "pga_agent_a"',
                 'then no other agent role can take it');
RESET SESSION AUTHORIZATION;
SELECT throws_ok($$SELECT pgautomator.register_agent('host-e', login => 'no_such_role')$$, '42704',
                 'login role "no_such_role" does not exist', 'the login must be a role');
SELECT throws_ok($$SELECT pgautomator.register_agent('host-e', login => 'pga_not_agent')$$, '22023',
                 'login role "pga_not_agent" is not a member of pgautomator_agent', 'the login must be an agent role');

-- An agent restricted to the jobs of some run-as roles claims only those.
SELECT pgautomator.create_job('shell-etl', run_as => 'pga_etl2');
SELECT pgautomator.add_step('shell-etl', 'list', 'ls', kind => 'shell');
SELECT pgautomator.create_job('shell-root', run_as => 'postgres');
SELECT pgautomator.add_step('shell-root', 'list', 'ls', kind => 'shell');
SELECT throws_ok($$SELECT pgautomator.alter_agent('host-a', run_as_roles => '{no_such_role}')$$, '42704',
                 'run_as_roles names role "no_such_role", which does not exist', 'run_as_roles must name roles');
SELECT lives_ok($$SELECT pgautomator.alter_agent('host-a', run_as_roles => '{pga_etl2}')$$,
                'an admin restricts an agent to the jobs of a role');
SELECT pgautomator.start_job('shell-etl');
SELECT pgautomator.start_job('shell-root');
SET SESSION AUTHORIZATION pga_agent_a;
SELECT results_eq(format('SELECT job_name FROM pgautomator.agent_claim_v1(%s, 10)', current_setting('test.agent_a')),
                  $$VALUES ('shell-etl'::text)$$,
                  'it claims the steps of those jobs only, never those of a more privileged role');
SELECT throws_ok($$SELECT pgautomator.agent_register_v1('host-a-shadow', 'a.example', '{shell}', 2, '0.1.0', 5)$$,
                 '42501',
                 'permission denied to register agent "host-a-shadow": an admin restricted or disabled the agents of role "pga_agent_a"',
                 'nor may its role shed the restriction under a new name');
SET SESSION AUTHORIZATION pga_agent_b;
SELECT lives_ok($$SELECT pgautomator.agent_register_v1('host-b2', 'b.example', '{shell}', 2, '0.1.0', 6)$$,
                'a role whose agents nobody restricted registers new names');
RESET SESSION AUTHORIZATION;
SELECT lives_ok($$SELECT pgautomator.register_agent('host-a2', login => 'pga_agent_a')$$,
                'an admin registers a new name for a restricted role');
SELECT * FROM finish();
ROLLBACK;

-- The remote-agent API: registration, claims by capability and affinity
-- within max_parallel, streamed output, reports, the heartbeat kill list,
-- lost agents, SMTP settings and dropping agents.
BEGIN;
SET client_min_messages = error;   -- re-registration notices
SELECT plan(58);

SELECT pgautomator._launcher_start(4242) AS db_agent \gset
SELECT pgautomator.set_setting('history_retention', 'off');
CREATE ROLE ag_proc LOGIN IN ROLE pgautomator_agent;
CREATE ROLE ag_user LOGIN IN ROLE pgautomator_user;

-- registration
SET SESSION AUTHORIZATION ag_proc;
SELECT pgautomator.agent_register_v1('host-a', 'a.example', '{shell,remote_sql}', 2, '1.0', 100) AS a \gset
SELECT pgautomator.agent_register_v1('host-b', 'b.example', '{shell}', 4, '1.0', 200) AS b \gset
SELECT is(pgautomator.agent_register_v1('host-a', 'a.example', '{shell,remote_sql}', 2, '1.1', 101), :a::bigint,
          're-registering a name keeps its id');
SELECT throws_ok($$SELECT pgautomator.agent_register_v1('database', 'x', '{shell}', 1, '1', 1)$$, '22023',
                 'agent name "database" is reserved for the in-database executor', 'the name database is reserved');
SELECT throws_ok($$SELECT pgautomator.agent_register_v1('x', 'x', '{sql}', 1, '1', 1)$$, '22023',
                 'invalid capabilities {sql}', 'remote agents cannot take sql steps');
SELECT throws_ok($$SELECT pgautomator.agent_register_v1('x', 'x', '{shell}', 0, '1', 1)$$, '22023',
                 'max_parallel must be between 1 and 1000, not 0', 'max_parallel is checked');
SELECT throws_ok('SELECT pgautomator.agent_heartbeat_v1(-5)', '42704', 'agent -5 does not exist',
                 'an unknown agent id is refused');
SELECT throws_ok(format('SELECT pgautomator.agent_heartbeat_v1(%s)', :db_agent), '42704', NULL,
                 'the database agent is not a remote agent');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION ag_user;
SELECT throws_ok($$SELECT pgautomator.agent_register_v1('y', 'y', '{shell}', 1, '1', 1)$$, '42501', NULL,
                 'only agent roles may call the agent protocol');
SELECT throws_ok($$SELECT pgautomator.register_agent('y')$$, '42501', 'permission denied to register agents',
                 'only admins pre-register agents');
RESET SESSION AUTHORIZATION;
SELECT pgautomator.register_agent('host-c', capabilities => '{remote_sql}') AS c \gset
SELECT throws_ok($$SELECT pgautomator.register_agent('host-c')$$, '23505', 'agent "host-c" already exists',
                 'registering a name twice is refused');
SELECT is((SELECT string_agg(name || ':' || kind || ':' || up, ' ' ORDER BY id) FROM pgautomator.agents),
          'database:database:true host-a:remote:true host-b:remote:true host-c:remote:false',
          'the agents view shows which agents are up');

-- a job mixing sql and shell steps; shell and remote_sql jobs with affinity
SELECT pgautomator.create_job('ag_mixed', run_as => 'postgres') AS jm \gset
SELECT pgautomator.add_step(:jm, 'prepare', 'SELECT 1');
SELECT pgautomator.add_step(:jm, 'copy', 'cp a b', kind => 'shell', shell => 'bash', success_codes => '{0,3}',
                            timeout => '30 seconds');
SELECT pgautomator.add_step(:jm, 'finish', 'SELECT 2');
SELECT pgautomator.create_job('ag_remote', run_as => 'postgres', agent => 'host-b') AS jr \gset
SELECT pgautomator.add_step(:jr, 'query', 'VACUUM', kind => 'remote_sql', connection => 'host=db2 dbname=app');
SELECT pgautomator.create_job('ag_pinned', run_as => 'postgres', agent => 'host-b') AS jp \gset
SELECT pgautomator.add_step(:jp, 'sh', 'echo hi', kind => 'shell');

SELECT pgautomator.start_job(:jm) AS rm \gset
SELECT pgautomator.start_job(:jr) AS rr \gset
SELECT pgautomator.start_job(:jp) AS rp \gset
SET SESSION AUTHORIZATION ag_proc;
SELECT is_empty(format('SELECT * FROM pgautomator.agent_claim_v1(%s, 10)', :a),
                'nothing for host-a yet: the sql step runs in the database, the others are pinned to host-b');
RESET SESSION AUTHORIZATION;
SELECT pgautomator._launcher_report(c.step_run_id, true, NULL, NULL, NULL, 1, NULL)
  FROM pgautomator._launcher_claim(10) c;
SET SESSION AUTHORIZATION ag_proc;
SELECT is((SELECT concat_ws('|', run_id = :rm, job_name, step_name, kind, code, shell, success_codes, timeout_ms,
                            transaction, attempt, run_as)
             FROM pgautomator.agent_claim_v1(:a, 10)),
          't|ag_mixed|copy|shell|cp a b|bash|{0,3}|30000|autocommit|1|postgres',
          'after the sql step, the shell step goes to an agent with its code, shell, success codes and timeout');
SELECT is((SELECT string_agg(step_name, ' ' ORDER BY step_run_id) FROM pgautomator.agent_claim_v1(:b, 10)), 'sh',
          'host-b gets the pinned shell step but not the remote_sql step it has no capability for');
RESET SESSION AUTHORIZATION;
SELECT pgautomator.agent_register_v1('host-b', 'b.example', '{shell,remote_sql}', 4, '1.0', 201);
SELECT is((SELECT state || ' / ' || message FROM pgautomator.run WHERE id = :rp),
          'crashed / crashed during step "sh": agent "host-b" re-registered (pid 201): its previous process lost this step',
          're-registering crashes what the previous process held');
SELECT is((SELECT string_agg(step_name, ' ') FROM pgautomator.agent_claim_v1(:b, 10)), 'query',
          'with the capability, host-b claims the remote_sql step pinned to it');
SELECT is((SELECT string_agg(step_name, ' ') FROM pgautomator.agent_claim_v1(:c, 10)), NULL,
          'another agent with the capability does not get a step pinned to host-b');

-- streamed output, report, and the run goes on in the database
SELECT id AS copy FROM pgautomator.step_run WHERE run_id = :rm AND step_name = 'copy' \gset
SELECT id AS query FROM pgautomator.step_run WHERE run_id = :rr AND state = 'running' \gset
SET SESSION AUTHORIZATION ag_proc;
SELECT is(pgautomator.agent_output_v1(:a, :copy, 'line 1' || E'\n'), true, 'streamed output is accepted while the step runs');
SELECT pgautomator.agent_output_v1(:a, :copy, 'line 2');
SELECT is(pgautomator.agent_output_v1(:b, :copy, 'x'), false, 'another agent cannot write to the step run');
SELECT pgautomator.agent_report_v1(:a, :copy, true, 3, NULL, NULL, NULL, NULL);
RESET SESSION AUTHORIZATION;
SELECT is((SELECT concat_ws(' ', state, exit_code, output) FROM pgautomator.step_run WHERE id = :copy),
          E'succeeded 3 line 1\nline 2', 'chunks are appended; the report records the exit code and keeps the streamed output');
SELECT is((SELECT step_name || ' ' || state FROM pgautomator.step_run WHERE run_id = :rm ORDER BY id DESC LIMIT 1),
          'finish queued', 'the next (sql) step is queued for the database');
SELECT pgautomator._launcher_report(c.step_run_id, true, NULL, NULL, NULL, 1, NULL) FROM pgautomator._launcher_claim(10) c;
SELECT is((SELECT state FROM pgautomator.run WHERE id = :rm), 'succeeded', 'the mixed job ran in order across executors');

-- report with output replaces what was streamed; a failure follows on_failure
SET SESSION AUTHORIZATION ag_proc;
SELECT pgautomator.agent_output_v1(:b, :query, 'partial');
SELECT pgautomator.agent_report_v1(:b, :query, false, NULL, '42P01', 'complete output', 'relation x does not exist', NULL,
                                   'NOTICE: n');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT concat_ws(' | ', state, sqlstate, output, error, messages) FROM pgautomator.step_run WHERE id = :query),
          'failed | 42P01 | complete output | relation x does not exist | NOTICE: n',
          'a failed remote step records its SQLSTATE, error, messages; the report''s output replaces the streamed one');
SELECT is((SELECT state FROM pgautomator.run WHERE id = :rr), 'failed', 'its run follows on_failure');
SELECT lives_ok(format('SELECT pgautomator.agent_report_v1(%s, %s, true, 0, NULL, NULL, NULL, NULL)', :b, :query),
                'a late second report is accepted');
SELECT is((SELECT state FROM pgautomator.step_run WHERE id = :query), 'failed', '... and ignored');

-- max_parallel bounds claims
SELECT pgautomator.create_job('ag_many', run_as => 'postgres', overlap => 'parallel', max_parallel => 5) AS jn \gset
SELECT pgautomator.add_step(:jn, 'sh', 'sleep 1', kind => 'shell');
SELECT pgautomator.start_job(:jn) FROM generate_series(1, 4);
SELECT is((SELECT count(*)::int FROM pgautomator.agent_claim_v1(:a, 10)), 2, 'an agent claims at most max_parallel steps');
SELECT is((SELECT count(*)::int FROM pgautomator.agent_claim_v1(:a, 10)), 0, '... counting the ones it runs');
SELECT is((SELECT count(*)::int FROM pgautomator.agent_claim_v1(:b, 1)), 1, 'and at most max_steps per call');

SELECT is((SELECT array_agg(r) FROM pgautomator.agent_running_v1(:a) r),
          (SELECT array_agg(id ORDER BY id) FROM pgautomator.step_run WHERE agent_id = :a AND state = 'running'),
          'agent_running_v1 lists the step runs the agent holds, in order');
SELECT step_run_id AS mine FROM pgautomator.agent_claim_v1(:b, 1, pid => 4242) \gset
SELECT is((SELECT array_agg(r) FROM pgautomator.agent_running_v1(:b, pid => 4242) r), ARRAY[:mine::bigint],
          'with a pid, only what that process claimed: another process''s under the same name is not its to hand back');
SELECT pgautomator.agent_report_v1(:b, :mine, true, 0, NULL, NULL, NULL, NULL);

-- stop: the heartbeat names what to kill, output says stop, the report ends it stopped
SELECT sr.run_id AS rs, sr.id AS srs FROM pgautomator.step_run sr
 WHERE sr.agent_id = :a AND sr.state = 'running' ORDER BY sr.id LIMIT 1 \gset
SELECT is_empty(format('SELECT * FROM pgautomator.agent_heartbeat_v1(%s)', :a), 'nothing to kill yet');
SELECT pgautomator.stop_run(:rs);
SELECT is((SELECT array_agg(k) FROM pgautomator.agent_heartbeat_v1(:a) k), ARRAY[:srs::bigint],
          'after stop_run the heartbeat returns the step run to kill');
SELECT is(pgautomator.agent_output_v1(:a, :srs, 'more'), false, 'agent_output_v1 returns false: stop');
SELECT pgautomator.agent_report_v1(:a, :srs, false, -15, NULL, NULL, 'killed by signal 15', NULL);
SELECT is((SELECT state FROM pgautomator.run WHERE id = :rs), 'stopped', 'the killed step ends its run stopped');

-- a timed-out remote step is on the kill list
UPDATE pgautomator.step SET timeout = '1 second' WHERE job_id = :jn;
UPDATE pgautomator.step_run SET started_at = now() - interval '1 minute' WHERE agent_id = :b AND state = 'running';
SELECT is((SELECT count(*)::int FROM pgautomator.agent_heartbeat_v1(:b)), 1, 'a timed-out step is on the kill list');
-- (no timeouts below: a step being cancelled for one fails by it when its
-- executor is lost, see 53_launcher_timeouts_crashes.sql)
UPDATE pgautomator.step SET timeout = NULL WHERE job_id = :jn;

-- a lost agent: its heartbeat expires and the dispatcher crashes its runs
SELECT pgautomator._launcher_tick(now() + interval '29 seconds');
SELECT is((SELECT count(*)::int FROM pgautomator.step_run WHERE agent_id = :a AND state = 'running'), 1,
          'within heartbeat_timeout nothing happens');
SELECT pgautomator._launcher_tick(now() + interval '31 seconds');
SELECT is((SELECT string_agg(DISTINCT state, ' ') FROM pgautomator.step_run WHERE agent_id IN (:a, :b) AND state <> 'stopped'
              AND run_id IN (SELECT id FROM pgautomator.run WHERE job_id = :jn) AND id <> :mine),
          'crashed', 'after it, the step runs of silent agents end crashed');
SELECT matches((SELECT message FROM pgautomator.run WHERE job_id = :jn AND state = 'crashed' ORDER BY id LIMIT 1),
               'agent "host-a" stopped sending heartbeats', 'the run says which agent was lost');

-- release and deregister
SELECT pgautomator.stop_run(id) FROM pgautomator.run WHERE job_id = :jn AND state IN ('queued', 'running');
SELECT pgautomator.start_job(:jp) AS rp \gset
SELECT pgautomator.agent_claim_v1(:b, 1);
SELECT is(pgautomator.agent_release_v1(:b, (SELECT id FROM pgautomator.step_run WHERE run_id = :rp)), true,
          'an agent can hand back a step run it will not run');
SELECT is((SELECT state FROM pgautomator.step_run WHERE run_id = :rp), 'queued', '... which is queued again');
SELECT pgautomator.agent_claim_v1(:b, 1);
SELECT is(pgautomator.agent_deregister_v1(:b), 1, 'deregistering crashes what the agent still held');
SELECT is((SELECT up FROM pgautomator.agents WHERE id = :b), false, 'a deregistered agent is shown down');

-- altering agents: a disabled agent claims nothing
SELECT pgautomator.alter_agent('host-c', enabled => false, max_parallel => 7);
SELECT is((SELECT enabled::text || max_parallel FROM pgautomator.agent WHERE id = :c), 'false7',
          'alter_agent changes the given settings only');
SELECT pgautomator.start_job(:jr) AS rr2 \gset
SELECT pgautomator.alter_job(:jr, agent => '');
SELECT is_empty(format('SELECT * FROM pgautomator.agent_claim_v1(%s, 10)', :c), 'a disabled agent claims nothing');
SELECT throws_ok($$SELECT pgautomator.alter_agent('host-c', capabilities => '{sql}')$$, '22023',
                 'invalid capabilities {sql}', 'alter_agent checks capabilities');
SELECT throws_ok($$SELECT pgautomator.alter_agent('database', enabled => false)$$, '55000', NULL,
                 'the database agent is not altered this way');
SELECT pgautomator.stop_run(:rr2);

-- SMTP settings and dropping agents
SELECT lives_ok($$SELECT pgautomator.set_agent_smtp('host-c', 'smtp.example.com', security => 'tls', username => 'u',
                                                    password => 'p', sender => 'jobs@example.com')$$, 'set_agent_smtp');
SELECT is((SELECT concat_ws(' ', smtp_host, smtp_port, smtp_security, smtp_user, smtp_from) FROM pgautomator.agent WHERE id = :c),
          'smtp.example.com 465 tls u jobs@example.com', 'the port defaults from the security mode');
SELECT throws_ok($$SELECT pgautomator.set_agent_smtp('host-c', 'smtp.example.com', security => 'ssl')$$, '22023',
                 'invalid security "ssl"', 'a bad security mode is refused');
SELECT throws_ok($$SELECT pgautomator.set_agent_smtp('host-c', 'smtp.example.com', sender => 'nobody')$$, '22023',
                 'invalid sender address "nobody"', 'a bad sender is refused');
SELECT throws_ok($$SELECT pgautomator.set_agent_smtp('host-c', 'smtp.example.com', username => 'u', password => 'pässword')$$,
                 '22023', 'SMTP user and password must be ASCII', 'a password smtplib cannot send is refused');
SELECT throws_ok($$SELECT pgautomator.set_agent_smtp('nope', 'smtp.example.com')$$, '42704', 'agent "nope" does not exist',
                 'an unknown agent is refused');
SELECT throws_ok($$SELECT pgautomator.drop_agent('database')$$, '55000', NULL, 'the database agent cannot be dropped');
SELECT pgautomator.start_job(:jm) AS rd \gset
SELECT pgautomator._launcher_report(c.step_run_id, true, NULL, NULL, NULL, 1, NULL) FROM pgautomator._launcher_claim(10) c;
SELECT pgautomator.agent_claim_v1(:a, 10);
SELECT throws_ok($$SELECT pgautomator.drop_agent('host-a')$$, '55006', 'agent "host-a" is running steps',
                 'an agent running steps cannot be dropped');
SELECT pgautomator.stop_run(:rd);
SET SESSION AUTHORIZATION ag_user;
SELECT throws_ok($$SELECT pgautomator.drop_agent('host-c')$$, '42501', 'permission denied to drop agents',
                 'only admins drop agents');
RESET SESSION AUTHORIZATION;
SELECT lives_ok($$SELECT pgautomator.drop_agent('host-c')$$, 'an idle agent can be dropped');

SELECT throws_ok($$SELECT pgautomator.register_agent('flat', capabilities => '{{shell},{shell}}')$$, '22023',
                 'capabilities must be a one-dimensional list, not {{shell},{shell}}', 'a 2-D capability list is refused');
-- What an agent relays from a driver: kept only when it fits its column
SELECT pgautomator.create_job('ag_relay', run_as => 'postgres', agent => 'host-a') AS jrel \gset
SELECT pgautomator.add_step(:jrel, 'q', 'SELECT 1', kind => 'remote_sql', connection => 'host=db2');
SELECT pgautomator.start_job(:jrel) AS rrel \gset
SET SESSION AUTHORIZATION ag_proc;
SELECT step_run_id AS srel FROM pgautomator.agent_claim_v1(:a, 10) WHERE run_id = :rrel \gset
SELECT pgautomator.agent_report_v1(:a, :srel, false, NULL, repeat('x', 1000) || E'\n', NULL, 'driver error', -5);
RESET SESSION AUTHORIZATION;
SELECT is((SELECT concat_ws(' | ', state, coalesce(sqlstate, 'no sqlstate'), coalesce(rows_affected::text, 'no count'), error)
             FROM pgautomator.step_run WHERE id = :srel),
          'failed | no sqlstate | no count | driver error',
          'a malformed SQLSTATE and a negative row count are dropped, the outcome kept');
SELECT * FROM finish();
ROLLBACK;

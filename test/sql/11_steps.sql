-- Steps: ordered, actions with go-to, add/alter/move/drop, validation.
BEGIN;
SELECT plan(41);

SELECT pgautomator.create_job('j');
SELECT isnt(pgautomator.add_step('j', 'extract', 'SELECT 1'), NULL, 'add_step returns an id');
SELECT pgautomator.add_step('j', 'transform', 'SELECT 2', retries => 3, retry_interval => '10 seconds');
SELECT pgautomator.add_step('j', 'load', 'SELECT 3', transaction => 'single', timeout => '5 minutes');
SELECT results_eq($$SELECT position, name FROM pgautomator.steps WHERE job = 'j' ORDER BY position$$,
                  $$VALUES (1, 'extract'::text), (2, 'transform'), (3, 'load')$$,
                  'steps are numbered in the order added');
SELECT pgautomator.add_step('j', 'prepare', 'SELECT 0', at_position => 1);
SELECT results_eq($$SELECT position, name FROM pgautomator.steps WHERE job = 'j' ORDER BY position$$,
                  $$VALUES (1, 'prepare'::text), (2, 'extract'), (3, 'transform'), (4, 'load')$$,
                  'at_position inserts before existing steps');
SELECT results_eq($$SELECT on_success, on_failure, retries, transaction FROM pgautomator.steps
                     WHERE job = 'j' AND name = 'transform'$$,
                  $$VALUES ('next'::text, 'fail'::text, 3, 'autocommit'::text)$$,
                  'defaults: next on success, fail on failure, autocommit');

-- actions
SELECT lives_ok($$SELECT pgautomator.alter_step('j', 'extract', on_failure => 'load', on_success => 'succeed')$$,
                'an action can name another step');
SELECT results_eq($$SELECT on_success, on_failure FROM pgautomator.steps WHERE job = 'j' AND name = 'extract'$$,
                  $$VALUES ('succeed'::text, 'load'::text)$$, 'the go-to target is shown by name');
SELECT throws_ok($$SELECT pgautomator.alter_step('j', 'extract', on_failure => 'nowhere')$$, '22023',
                 'invalid on_failure "nowhere"', 'an unknown go-to target is refused');
SELECT pgautomator.create_job('k');
SELECT pgautomator.add_step('k', 'other', 'SELECT 1');
SELECT throws_ok($$SELECT pgautomator.add_step('k', 'x', 'SELECT 1', on_success => 'load')$$, '22023',
                 'invalid on_success "load"', 'a step of another job is not a go-to target');
SELECT throws_ok($$SELECT pgautomator.drop_step('j', 'load')$$, '2BP01',
                 'step "load" is the go-to target of step "extract"', 'a go-to target cannot be dropped');

-- validation
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'extract', 'SELECT 1')$$, '23505',
                 'step "extract" already exists in job "j"', 'a duplicate step name is refused');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'next', 'SELECT 1')$$, '22023',
                 'step name "next" is reserved for an action', 'action words are not step names');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', '   ')$$, '22023', 'code of step "e" must not be empty',
                 'empty code is refused');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'SELECT 1', kind => 'perl')$$, '22023', 'invalid kind "perl"',
                 'an unknown kind is refused');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'SELECT 1', transaction => 'maybe')$$, '22023',
                 'invalid transaction "maybe"', 'an unknown transaction mode is refused');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'SELECT 1', retries => -1)$$, '22023',
                 'retries must be between 0 and 1000, not -1', 'negative retries are refused');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'SELECT 1', timeout => '0')$$, '22023',
                 'timeout must be a positive interval, not 00:00:00', 'a zero step timeout is refused');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'SELECT 1', database => 'no_such_db')$$, '3D000',
                 'database "no_such_db" does not exist', 'an unknown database is refused');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'ls', kind => 'shell', database => 'postgres')$$, '22023',
                 'database applies to sql steps only; shell steps use connection', 'database only for sql steps');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'SELECT 1', kind => 'remote_sql')$$, '22023',
                 'remote_sql step "e" needs a connection', 'remote_sql needs a connection');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'SELECT 1', kind => 'remote_sql',
                                                connection => 'host=db2 password=secret')$$, '22023',
                 'connection must not contain a password', 'passwords stay out of connection strings');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'SELECT 1', kind => 'remote_sql',
                                                connection => 'postgresql://db2/app?sslmode=require&password=secret')$$,
                 '22023', 'connection must not contain a password', 'nor in a URI''s query');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'SELECT 1', kind => 'remote_sql',
                                                connection => 'postgresql://db2/app?%70assword=secret')$$,
                 '22023', 'connection must not contain a password', 'nor percent-encoded (libpq decodes it)');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'SELECT 1', kind => 'remote_sql',
                                                connection => 'dbapi:pyodbc:DSN=dw;UID=etl;PWD=secret')$$,
                 '22023', 'connection must not contain a password', 'nor as ODBC''s PWD in a DB-API argument');
SELECT lives_ok($$SELECT pgautomator.add_step(pgautomator.create_job('jpw'), 'pwless', 'SELECT 1', kind => 'remote_sql',
                                               connection => 'postgresql://db2/pwd?application_name=%41pp')$$,
                'a connection without a password (a database named pwd, an encoded name) is taken');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'SELECT 1', retry_interval => '200000 years')$$, '22023',
                 'retry_interval must be at most 100 years, not 200000 years', 'an unbounded retry delay is refused');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'SELECT 1', notify_on => 'failure',
                                                notify_to => ARRAY[E'a@b.example\nBcc: c@d.example'])$$,
                 '22023', NULL, 'a step notify_to that would add mail headers is refused');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'exit 3', kind => 'shell', success_codes => '{}')$$, '22023',
                 'success_codes must list at least one exit code', 'success_codes must not be empty');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'SELECT 1', at_position => 9)$$, '22023',
                 'position must be between 1 and 5, not 9', 'a position past the end is refused');
SELECT throws_ok($$SELECT pgautomator.add_step('missing', 'e', 'SELECT 1')$$, '42704', 'job "missing" does not exist',
                 'add_step to a missing job names it');
SELECT is((SELECT count(*) FROM pgautomator.step WHERE name = 'e'), 0::bigint, 'refused steps wrote nothing');
SELECT lives_ok($$SELECT pgautomator.add_step('j', 'shell-step', 'echo hi', kind => 'shell', shell => 'bash',
                                               success_codes => '{0,3}')$$, 'a shell step with its own exit codes');

-- move and drop keep positions dense
SELECT lives_ok($$SELECT pgautomator.move_step('j', 'load', 1)$$, 'move_step to the front');
SELECT results_eq($$SELECT position, name FROM pgautomator.steps WHERE job = 'j' ORDER BY position$$,
                  $$VALUES (1, 'load'::text), (2, 'prepare'), (3, 'extract'), (4, 'transform'), (5, 'shell-step')$$,
                  'the others shift down');
SELECT lives_ok($$SELECT pgautomator.move_step('j', 'load', 4)$$, 'move_step towards the end');
SELECT results_eq($$SELECT position, name FROM pgautomator.steps WHERE job = 'j' ORDER BY position$$,
                  $$VALUES (1, 'prepare'::text), (2, 'extract'), (3, 'transform'), (4, 'load'), (5, 'shell-step')$$,
                  'the others shift up');
SELECT throws_ok($$SELECT pgautomator.move_step('j', 'load', 0)$$, '22023', 'position must be between 1 and 5, not 0',
                 'a position before the start is refused');
SELECT pgautomator.alter_step('j', 'extract', on_failure => 'fail');
SELECT lives_ok($$SELECT pgautomator.drop_step('j', 'extract')$$, 'drop_step by name');
SELECT results_eq($$SELECT position, name FROM pgautomator.steps WHERE job = 'j' ORDER BY position$$,
                  $$VALUES (1, 'prepare'::text), (2, 'transform'), (3, 'load'), (4, 'shell-step')$$,
                  'positions close the gap');
SELECT throws_ok($$SELECT pgautomator.drop_step('j', 'extract')$$, '42704', 'step "extract" does not exist in job ' ||
                 (SELECT id FROM pgautomator.job WHERE name = 'j'), 'dropping a missing step names it');

SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'exit 1', kind => 'shell', success_codes => '{{0,1},{2,3}}')$$,
                 '22023', 'success_codes must be a one-dimensional list, not {{0,1},{2,3}}', 'a 2-D list of codes is refused');
SELECT throws_ok($$SELECT pgautomator.add_step('j', 'e', 'exit 1', kind => 'shell', success_codes => '[5:5]={0}')$$,
                 '22023', NULL, 'a list that does not start at 1 is refused');

SELECT * FROM finish();
ROLLBACK;

-- Categories and jobs: create, alter (NULL = unchanged), enable/disable, drop, errors.
BEGIN;
SELECT plan(52);

-- categories
SELECT isnt(pgautomator.create_category('etl', 'loading data'), NULL, 'create_category returns an id');
SELECT throws_ok($$SELECT pgautomator.create_category('etl')$$, '23505', 'category "etl" already exists',
                 'a duplicate category name is refused');
SELECT throws_ok($$SELECT pgautomator.create_category('  ')$$, '22023', 'category name must not be empty',
                 'a blank category name is refused');
SELECT throws_ok($$SELECT pgautomator.drop_category('nope')$$, '42704', 'category "nope" does not exist',
                 'dropping a missing category names it');

-- jobs
SELECT isnt(pgautomator.create_job('nightly', 'the nightly load', category => 'etl'), NULL,
            'create_job returns an id');
SELECT results_eq($$SELECT name, description, category, enabled, run_as::text COLLATE "default", overlap, misfire
                      FROM pgautomator.jobs WHERE name = 'nightly'$$,
                  $$VALUES ('nightly'::text, 'the nightly load'::text, 'etl'::text, true, 'postgres'::text, 'skip'::text, 'run_once'::text)$$,
                  'the jobs view shows the new job with its defaults');
SELECT throws_ok($$SELECT pgautomator.create_job('nightly')$$, '23505', 'job "nightly" already exists',
                 'a duplicate job name is refused');
SELECT throws_ok($$SELECT pgautomator.create_job('')$$, '22023', 'job name must not be empty',
                 'an empty job name is refused');
SELECT throws_ok($$SELECT pgautomator.create_job(repeat('x', 201))$$, '22023', 'job name is longer than 200 characters',
                 'an overlong job name is refused');
SELECT throws_ok($$SELECT pgautomator.create_job('j2', category => 'nope')$$, '42704', 'category "nope" does not exist',
                 'an unknown category is refused');
SELECT throws_ok($$SELECT pgautomator.create_job('j2', overlap => 'sometimes')$$, '22023', 'invalid overlap "sometimes"',
                 'an unknown overlap policy is refused');
SELECT throws_ok($$SELECT pgautomator.create_job('j2', misfire => 'later')$$, '22023', 'invalid misfire "later"',
                 'an unknown misfire policy is refused');
SELECT throws_ok($$SELECT pgautomator.create_job('j2', max_parallel => 0)$$, '22023',
                 'max_parallel must be between 1 and 1000, not 0', 'max_parallel 0 is refused');
SELECT throws_ok($$SELECT pgautomator.create_job('j2', timeout => '-1 minute')$$, '22023',
                 'timeout must be a non-negative interval, not -00:01:00', 'a negative timeout is refused');
SELECT throws_ok($$SELECT pgautomator.create_job('j2', timeout => '1000000 years')$$, '22023',
                 'timeout must be at most 100 years, not 1000000 years',
                 'a timeout past what an instant can hold is refused (it failed every dispatcher pass)');
SELECT throws_ok($$SELECT pgautomator.create_job('j2', timeout => '4000000 months -119990000 days')$$, '22023',
                 'timeout must not mix positive and negative parts, not 333333 years 4 mons -119990000 days',
                 'nor one whose parts would overflow though the whole compares as 27 years');
SELECT throws_ok($$SELECT pgautomator.create_job('j2', run_as => 'no_such_role')$$, '42704',
                 'run_as role "no_such_role" does not exist', 'an unknown run_as role is refused');
CREATE ROLE pga_t_nologin NOLOGIN;
SELECT throws_ok($$SELECT pgautomator.create_job('j2', run_as => 'pga_t_nologin')$$, '22023',
                 'run_as role "pga_t_nologin" cannot log in', 'a run_as role without LOGIN is refused');
SELECT throws_ok($$SELECT pgautomator.create_job('j2', notify_to => ARRAY['not an address'])$$, '22023', NULL,
                 'a malformed notify_to address is refused');
SELECT throws_ok($$SELECT pgautomator.create_job('j2', notify_to => ARRAY['ops@[10.0.0.1'])$$, '22023', NULL,
                 'an address the mailer cannot parse (a bracket left open) is refused');
SELECT lives_ok($$SELECT pgautomator.create_job('j-literal', notify_to => ARRAY['ops@[10.0.0.1]', 'a.b+c@mail.example.com'])$$,
                'address literals and plus addressing are taken');
SELECT throws_ok(format('SELECT pgautomator.create_job(%L, notify_to => %L)', 'j2',
                        (SELECT array_agg('u' || g || '@example.com') FROM generate_series(1, 101) g)),
                 '22023', 'notify_to must hold at most 100 addresses, not 101', 'at most 100 recipients');
SELECT is(pgautomator._mail_text('{job}: {error} {nope}', '{"job": "j", "error": "{output} {job}", "output": "x"}'),
          'j: {output} {job} {nope}', 'placeholders are filled once: a value holding one stays as it is');
SELECT throws_ok($$SELECT pgautomator.create_job('j2', notify_from => E'a@b.example\nBcc: c@d.example')$$, '22023',
                 NULL, 'a notify_from that would add mail headers is refused');
SELECT throws_ok($$SELECT pgautomator.create_job(E'j2\nBcc: c@d.example')$$, '22023',
                 'job name must not contain control characters', 'a name with a line break is refused');
SELECT is((SELECT count(*) FROM pgautomator.job WHERE name = 'j2'), 0::bigint,
          'failed creates wrote nothing');

-- alter: NULL leaves settings unchanged, '' and '0' clear
SELECT lives_ok($$SELECT pgautomator.alter_job('nightly', description => 'changed', timeout => '1 hour',
                                                 agent => 'host-a', overlap => 'queue')$$,
                'alter_job by name changes given settings');
SELECT results_eq($$SELECT description, category, timeout, agent, overlap FROM pgautomator.jobs WHERE name = 'nightly'$$,
                  $$VALUES ('changed'::text, 'etl'::text, interval '1 hour', 'host-a'::text, 'queue'::text)$$,
                  'unchanged settings kept, changed ones stored');
SELECT lives_ok($$SELECT pgautomator.alter_job((SELECT id FROM pgautomator.job WHERE name = 'nightly'),
                                                 category => '', agent => '', timeout => '0')$$,
                'alter_job by id clears category, agent and timeout');
SELECT results_eq($$SELECT category, timeout, agent FROM pgautomator.jobs WHERE name = 'nightly'$$,
                  $$VALUES (NULL::text, NULL::interval, NULL::text)$$, 'cleared settings are NULL');
SELECT throws_ok($$SELECT pgautomator.alter_job('nightly', misfire_limit => 0)$$, '22023',
                 'misfire_limit must be between 1 and 10000, not 0', 'alter_job validates like create_job');
SELECT throws_ok($$SELECT pgautomator.alter_job('missing', description => 'x')$$, '42704', 'job "missing" does not exist',
                 'alter_job of a missing job names it');
SELECT throws_ok($$SELECT pgautomator.alter_job(-1::bigint, description => 'x')$$, '42704', 'job "-1" does not exist',
                 'alter_job of a missing id names it');
SELECT pgautomator.create_job('other');
SELECT throws_ok($$SELECT pgautomator.alter_job('other', name => 'nightly')$$, '23505', 'job "nightly" already exists',
                 'renaming onto an existing name is refused');

-- enable / disable
SELECT lives_ok($$SELECT pgautomator.disable_job('nightly')$$, 'disable_job by name');
SELECT is((SELECT enabled FROM pgautomator.job WHERE name = 'nightly'), false, 'the job is disabled');
SELECT lives_ok(format('SELECT pgautomator.enable_job(%s::bigint)', (SELECT id FROM pgautomator.job WHERE name = 'nightly')),
                'enable_job by id');
SELECT is((SELECT enabled FROM pgautomator.job WHERE name = 'nightly'), true, 'the job is enabled again');

-- dropping a category keeps its jobs
SELECT pgautomator.alter_job('nightly', category => 'etl');
SELECT lives_ok($$SELECT pgautomator.drop_category('etl')$$, 'drop_category by name');
SELECT is((SELECT category_id FROM pgautomator.job WHERE name = 'nightly'), NULL, 'its jobs become uncategorised');

-- drop: steps go with the job, never another job's
SELECT pgautomator.add_step('nightly', 's1', 'SELECT 1');
SELECT pgautomator.add_step('other', 's1', 'SELECT 1');
SELECT lives_ok($$SELECT pgautomator.drop_job('nightly')$$, 'drop_job by name');
SELECT is((SELECT count(*) FROM pgautomator.step s JOIN pgautomator.job j ON j.id = s.job_id WHERE j.name = 'nightly'),
          0::bigint, 'its steps are gone');
SELECT is((SELECT count(*) FROM pgautomator.step s JOIN pgautomator.job j ON j.id = s.job_id WHERE j.name = 'other'),
          1::bigint, 'another job keeps its steps');
SELECT throws_ok($$SELECT pgautomator.drop_job('nightly')$$, '42704', 'job "nightly" does not exist',
                 'dropping it again names the missing job');
SELECT throws_ok($$SELECT pgautomator.drop_job(NULL::text)$$, '22004', 'job must not be NULL',
                 'a NULL job is refused');

SELECT throws_ok($$SELECT pgautomator.drop_category(NULL::text)$$, '22004', 'category must not be NULL',
                 'drop_category(NULL) is refused, not a silent no-op');
SELECT throws_ok($$SELECT pgautomator.drop_category(NULL::bigint)$$, '22004', 'category must not be NULL',
                 'by id too');
SELECT throws_ok(format('SELECT pgautomator.create_job(%L, notify_to => ARRAY[%L])', 'j-sep', 'a' || chr(8232) || 'b@example.com'),
                 '22023', NULL, 'an address with a line separator is refused (Python refuses it in a header)');

SELECT throws_ok(format('SELECT pgautomator.create_job(%L)', chr(160) || chr(12288)), '22023', 'job name must not be empty',
                 'a name of no-break and ideographic spaces only is empty');
SELECT throws_ok(format('SELECT pgautomator.create_job(%L)', 'pay' || chr(8238) || 'txt.exe'), '22023',
                 'job name must not contain line separators or bidirectional controls', 'a right-to-left override is refused');
SELECT throws_ok(format('SELECT pgautomator.create_job(%L)', 'a' || chr(8232) || 'b'), '22023',
                 'job name must not contain line separators or bidirectional controls', 'a line separator is refused');
SELECT throws_ok(format('SELECT pgautomator.create_job(%L, description => %L)', 'j-long', repeat('x', 10001)), '22023',
                 'description is longer than 10000 characters', 'a description has a bound (a 100 MB one was stored)');
SELECT * FROM finish();
ROLLBACK;

-- The extension's shape: schema, tables, API functions and their hygiene.
BEGIN;
SELECT plan(9);

SELECT has_schema('pgautomator', 'schema pgautomator exists');
SELECT tables_are('pgautomator',
    ARRAY['agent', 'category', 'exclusion', 'job', 'job_schedule', 'mail', 'run', 'schedule', 'setting', 'setting_default', 'step', 'step_outcome', 'step_run', 'zone_rules'],
    'the data model has exactly its tables');
SELECT has_role('pgautomator_admin', 'role pgautomator_admin exists');
SELECT has_role('pgautomator_operator', 'role pgautomator_operator exists');
SELECT has_role('pgautomator_user', 'role pgautomator_user exists');

SELECT is_empty($$
    SELECT p.oid::regprocedure::text
      FROM pg_proc p
     WHERE p.pronamespace = 'pgautomator'::regnamespace
       AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
$$, 'every function sets search_path');

SELECT is_empty($$
    SELECT p.oid::regprocedure::text
      FROM pg_proc p
     WHERE p.pronamespace = 'pgautomator'::regnamespace
       AND obj_description(p.oid, 'pg_proc') IS NULL
$$, 'every function has a COMMENT');

SELECT is_empty($$
    SELECT p.oid::regprocedure::text
      FROM pg_proc p
     WHERE p.pronamespace = 'pgautomator'::regnamespace
       AND has_function_privilege('public', p.oid, 'EXECUTE')
$$, 'PUBLIC may execute no function');

SELECT is_empty($$
    SELECT c.oid::regclass::text
      FROM pg_class c
     WHERE c.relnamespace = 'pgautomator'::regnamespace AND c.relkind IN ('r', 'v')
       AND (has_table_privilege('public', c.oid, 'SELECT')
            OR has_table_privilege('pgautomator_admin', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE'))
$$, 'PUBLIC reads nothing and not even admins write tables directly');

SELECT * FROM finish();
ROLLBACK;

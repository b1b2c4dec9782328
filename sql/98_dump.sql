-- pg_dump: the extension's tables hold user data (jobs, schedules, agents,
-- history), so their rows and id sequences are dumped with the database and
-- restored after CREATE EXTENSION. pg_dump orders the tables by their
-- foreign keys; self-references (go-to steps, crash retries) are checked at
-- the end of each COPY, so rows restore in any order.
-- The settings an admin changed (setting) are dumped; their defaults
-- (setting_default) are made again by the install script.  The time zone
-- rules the instants were computed with (zone_rules) travel with them: a
-- machine with other tzdata recomputes them at its launcher's first check.
DO $dump$
DECLARE
    v_table regclass;
    v_seq   text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['pgautomator.category', 'pgautomator.agent', 'pgautomator.job',
                                   'pgautomator.step', 'pgautomator.schedule', 'pgautomator.exclusion',
                                   'pgautomator.job_schedule', 'pgautomator.run', 'pgautomator.step_run',
                                   'pgautomator.step_outcome', 'pgautomator.mail', 'pgautomator.setting',
                                   'pgautomator.zone_rules']::regclass[]
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(v_table, '');
        v_seq := NULL;
        IF EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = v_table AND attname = 'id') THEN
            v_seq := pg_catalog.pg_get_serial_sequence(v_table::text, 'id');
        END IF;
        IF v_seq IS NOT NULL THEN
            PERFORM pg_catalog.pg_extension_config_dump(v_seq::regclass, '');
        END IF;
    END LOOP;
END
$dump$;

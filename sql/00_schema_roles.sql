-- The schema is created here, not by CREATE EXTENSION from the control
-- file, so that it is a member of the extension and DROP EXTENSION removes
-- it (as pg_cron does; the control file names pg_catalog for that reason).
CREATE SCHEMA pgautomator;
COMMENT ON SCHEMA pgautomator IS 'pgautomator: job scheduler tables, views and API functions';

-- Roles that decide who may do what (README "Roles").  Roles belong to the
-- cluster, not the database, so they are created only when missing and
-- survive DROP EXTENSION (another database may use them); every privilege
-- granted to them here is dropped with the extension's objects.
--   pgautomator_user      create and manage own jobs, run them as themselves
--                         or as roles they are a member of
--   pgautomator_operator  read everything, start and stop any run,
--                         enable and disable any job
--   pgautomator_admin     manage every job, schedule, category and agent
--   pgautomator_agent     remote agents: register, heartbeat, claim, report
DO $roles$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['pgautomator_user', 'pgautomator_operator',
                                  'pgautomator_admin', 'pgautomator_agent']
    LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', v_role);
        END IF;
    END LOOP;
    -- Operators can do what users can; admins what operators can.
    IF NOT pg_catalog.pg_has_role('pgautomator_operator', 'pgautomator_user', 'MEMBER') THEN
        GRANT pgautomator_user TO pgautomator_operator;
    END IF;
    IF NOT pg_catalog.pg_has_role('pgautomator_admin', 'pgautomator_operator', 'MEMBER') THEN
        GRANT pgautomator_operator TO pgautomator_admin;
    END IF;
END
$roles$;


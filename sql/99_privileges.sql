-- Privileges (README "Roles"). Tables are written only by the API functions
-- (SECURITY DEFINER, owned by the extension's owner); callers may read
-- through row-level security, which keeps users to their own jobs and runs.

-- Row-level security: the owner role's members, and operators, see a job
-- and everything hanging off it.
CREATE FUNCTION pgautomator._may_see(p_owner name)
RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.pg_has_role(current_user, 'pgautomator_operator', 'MEMBER')
        OR (EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = p_owner)
            AND pg_catalog.pg_has_role(current_user, p_owner, 'MEMBER'))
$$;
COMMENT ON FUNCTION pgautomator._may_see(name) IS 'Row-level security: whether the current user may see rows owned by a role.';

REVOKE ALL ON ALL TABLES IN SCHEMA pgautomator FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgautomator FROM PUBLIC;
-- Functions are executable by PUBLIC by default; nothing here should be.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgautomator FROM PUBLIC;

GRANT USAGE ON SCHEMA pgautomator TO pgautomator_user, pgautomator_agent;
GRANT EXECUTE ON FUNCTION pgautomator._may_see(name) TO pgautomator_user;

-- Reading: users see their own rows (policies below), operators everything.
GRANT SELECT ON pgautomator.category, pgautomator.job, pgautomator.step, pgautomator.schedule,
                pgautomator.exclusion, pgautomator.job_schedule, pgautomator.run, pgautomator.step_run,
                pgautomator.mail, pgautomator.zone_rules
   TO pgautomator_user;
-- Not the SMTP password.
GRANT SELECT (id, name, kind, host, capabilities, max_parallel, enabled, version, pid, login, run_as_roles, registered_at,
              last_heartbeat, heartbeat_timeout, smtp_host, smtp_port, smtp_security, smtp_user, smtp_from)
   ON pgautomator.agent TO pgautomator_user;


ALTER TABLE pgautomator.job ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_visible ON pgautomator.job FOR SELECT USING (pgautomator._may_see(owner));
ALTER TABLE pgautomator.step ENABLE ROW LEVEL SECURITY;
CREATE POLICY step_visible ON pgautomator.step FOR SELECT
    USING (EXISTS (SELECT FROM pgautomator.job j WHERE j.id = job_id));
ALTER TABLE pgautomator.run ENABLE ROW LEVEL SECURITY;
CREATE POLICY run_visible ON pgautomator.run FOR SELECT USING (pgautomator._may_see(owner));
ALTER TABLE pgautomator.step_run ENABLE ROW LEVEL SECURITY;
CREATE POLICY step_run_visible ON pgautomator.step_run FOR SELECT
    USING (EXISTS (SELECT FROM pgautomator.run r WHERE r.id = run_id));
ALTER TABLE pgautomator.mail ENABLE ROW LEVEL SECURITY;
CREATE POLICY mail_visible ON pgautomator.mail FOR SELECT
    USING (EXISTS (SELECT FROM pgautomator.run r WHERE r.id = run_id));
ALTER TABLE pgautomator.schedule ENABLE ROW LEVEL SECURITY;
-- Schedules are shared objects: every user may see and attach any schedule.
CREATE POLICY schedule_visible ON pgautomator.schedule FOR SELECT USING (true);
ALTER TABLE pgautomator.job_schedule ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_schedule_visible ON pgautomator.job_schedule FOR SELECT
    USING (EXISTS (SELECT FROM pgautomator.job j WHERE j.id = job_id));

-- The API. Functions starting with _ stay private.
DO $grants$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure
          FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'pgautomator'::regnamespace
           AND p.proname !~ '^_'
           AND p.proname !~ '_v[0-9]+$'
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO pgautomator_user', v_fn);
    END LOOP;
    -- Every view is security_invoker: row-level security still applies.
    EXECUTE (SELECT 'GRANT SELECT ON ' || pg_catalog.string_agg(c.oid::regclass::text, ', ')
                    || ' TO pgautomator_user'
               FROM pg_catalog.pg_class c
              WHERE c.relnamespace = 'pgautomator'::regnamespace AND c.relkind = 'v');
    -- Versioned functions are the remote agents' protocol.
    FOR v_fn IN
        SELECT p.oid::regprocedure
          FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'pgautomator'::regnamespace
           AND p.proname ~ '^agent_.*_v[0-9]+$'
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO pgautomator_agent', v_fn);
    END LOOP;
END
$grants$;

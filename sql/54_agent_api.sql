-- Remote agents (docs/contracts.md "Remote agents"): admins register and
-- configure them; agent processes (members of pgautomator_agent) register
-- themselves, send heartbeats, claim shell and remote_sql step runs, stream
-- output and report.  The versioned names are the agents' protocol: a new
-- version gets new functions, old agents keep working.

-- One claimed step run for a remote agent.
CREATE TYPE pgautomator.claimed_step_v1 AS (
    step_run_id   bigint,
    run_id        bigint,
    job_id        bigint,
    job_name      text,
    step_name     text,
    kind          text,
    code          text,
    connection    text,
    shell         text,
    success_codes integer[],
    timeout_ms    bigint,        -- 0: none
    transaction   text,
    attempt       integer,
    run_as        name
);
COMMENT ON TYPE pgautomator.claimed_step_v1 IS 'A step run claimed by a remote agent (agent_claim_v1).';

CREATE FUNCTION pgautomator._check_agent(p_name text, p_capabilities text[], p_max_parallel integer,
                                         p_heartbeat_timeout interval)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgautomator._check_name('agent', p_name);
    IF p_name = 'database' THEN
        RAISE EXCEPTION 'agent name "database" is reserved for the in-database executor' USING ERRCODE = '22023';
    END IF;
    IF p_capabilities IS NULL OR cardinality(p_capabilities) = 0 THEN
        RAISE EXCEPTION 'capabilities must list at least one step kind' USING ERRCODE = '22023',
            HINT = 'Remote agents run shell and remote_sql steps.';
    END IF;
    PERFORM pgautomator._check_list('capabilities', p_capabilities);
    IF NOT p_capabilities <@ ARRAY['shell', 'remote_sql'] OR array_position(p_capabilities, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'invalid capabilities %', p_capabilities USING ERRCODE = '22023',
            HINT = 'Remote agents run shell and remote_sql steps; sql steps run inside the database.';
    END IF;
    PERFORM pgautomator._check_range('max_parallel', p_max_parallel, 1, 1000);
    PERFORM pgautomator._check_interval('heartbeat_timeout', p_heartbeat_timeout);
END
$$;
COMMENT ON FUNCTION pgautomator._check_agent(text, text[], integer, interval) IS 'Validates a remote agent''s name, capabilities, max_parallel and heartbeat timeout.';

-- Only the role an agent registered as (and superusers) may act as that
-- agent. An agent an admin registered without a login is bound to the role
-- of the first agent process that registers under its name.
CREATE FUNCTION pgautomator._check_agent_login(p_agent pgautomator.agent, p_registering boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = session_user)
       OR p_agent.login = session_user
       OR (p_agent.login IS NULL AND p_registering) THEN
        RETURN;
    END IF;
    IF p_agent.login IS NULL THEN
        RAISE EXCEPTION 'permission denied for agent "%": no agent process has registered it yet', p_agent.name
            USING ERRCODE = '42501', HINT = 'An agent process binds its name to its role with agent_register_v1.';
    END IF;
    RAISE EXCEPTION 'permission denied for agent "%": it belongs to role "%"', p_agent.name, p_agent.login
        USING ERRCODE = '42501',
              HINT = 'Each agent process logs in as the role it registered with; give each agent its own name.';
END
$$;
COMMENT ON FUNCTION pgautomator._check_agent_login(pgautomator.agent, boolean) IS 'Raises 42501 unless the session user is the role the agent registered as (or, registering, the agent has none yet), or a superuser.';

-- Raises 42501 unless the session user may speak the agent protocol.
CREATE FUNCTION pgautomator._require_agent_role()
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT (pg_catalog.pg_has_role(session_user, 'pgautomator_agent', 'MEMBER') OR pgautomator._is_admin()) THEN
        RAISE EXCEPTION 'permission denied: role "%" is not a member of pgautomator_agent', session_user
            USING ERRCODE = '42501';
    END IF;
END
$$;
COMMENT ON FUNCTION pgautomator._require_agent_role() IS 'Raises 42501 unless the session user is a member of pgautomator_agent (or an admin).';

-- The calling agent process: a member of pgautomator_agent (or an admin)
-- naming an existing remote agent registered by its role.
CREATE FUNCTION pgautomator._agent_for(p_agent_id bigint)
RETURNS pgautomator.agent LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent pgautomator.agent;
BEGIN
    PERFORM pgautomator._require_agent_role();
    -- Every agent call writes some of these after reading them through
    -- their indexes: locked first, a REINDEX of one of them (REINDEX
    -- DATABASE, a maintenance step users schedule) and the call wait for
    -- each other instead of deadlocking (as the launcher and the workers).
    LOCK TABLE pgautomator.agent, pgautomator.run, pgautomator.step_run IN ROW EXCLUSIVE MODE;
    IF p_agent_id IS NULL THEN
        RAISE EXCEPTION 'agent_id must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO v_agent FROM pgautomator.agent WHERE id = p_agent_id;
    IF NOT FOUND OR v_agent.kind <> 'remote' THEN
        RAISE EXCEPTION 'agent % does not exist', p_agent_id USING ERRCODE = '42704',
            HINT = 'Register with agent_register_v1 first.';
    END IF;
    PERFORM pgautomator._check_agent_login(v_agent);
    RETURN v_agent;
END
$$;
COMMENT ON FUNCTION pgautomator._agent_for(bigint) IS 'Checks that the caller is an agent process and resolves a remote agent by id; 42704 when missing.';

-- Crashes every step run an agent holds (re-registration, deregistration),
-- taking the job, run and step-run locks in order.
CREATE FUNCTION pgautomator._crash_agent_work(p_agent_id bigint, p_reason text)
RETURNS integer LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v   record;
    v_n integer := 0;
BEGIN
    FOR v IN
        SELECT sr.id, sr.run_id, r.job_id
          FROM pgautomator.step_run sr JOIN pgautomator.run r ON r.id = sr.run_id
         WHERE sr.state = 'running' AND sr.agent_id = p_agent_id
         ORDER BY r.job_id, sr.run_id
    LOOP
        PERFORM FROM pgautomator.job WHERE id = v.job_id FOR NO KEY UPDATE;
        PERFORM FROM pgautomator.run WHERE id = v.run_id FOR UPDATE;
        PERFORM pgautomator._crash_step_run(v.id, p_reason);
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END
$$;
COMMENT ON FUNCTION pgautomator._crash_agent_work(bigint, text) IS 'Ends the step runs an agent holds as crashed (retrying per retry_on_crash); returns how many.';

CREATE FUNCTION pgautomator.register_agent(
    name              text,
    host              text DEFAULT NULL,
    capabilities      text[] DEFAULT '{shell,remote_sql}',
    max_parallel      integer DEFAULT 4,
    heartbeat_timeout interval DEFAULT '30 seconds',
    enabled           boolean DEFAULT true,
    login             text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM pgautomator._require_admin('register agents');
    PERFORM pgautomator._check_agent(register_agent.name, register_agent.capabilities,
                                     coalesce(register_agent.max_parallel, 4), register_agent.heartbeat_timeout);
    IF register_agent.login IS NOT NULL THEN
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = register_agent.login) THEN
            RAISE EXCEPTION 'login role "%" does not exist', register_agent.login USING ERRCODE = '42704';
        END IF;
        IF NOT pg_catalog.pg_has_role(register_agent.login, 'pgautomator_agent', 'MEMBER') THEN
            RAISE EXCEPTION 'login role "%" is not a member of pgautomator_agent', register_agent.login
                USING ERRCODE = '22023';
        END IF;
    END IF;
    INSERT INTO pgautomator.agent (name, kind, host, capabilities, max_parallel, heartbeat_timeout, enabled, login)
    VALUES (register_agent.name, 'remote', register_agent.host, register_agent.capabilities,
            coalesce(register_agent.max_parallel, 4), coalesce(register_agent.heartbeat_timeout, interval '30 seconds'),
            coalesce(register_agent.enabled, true), register_agent.login)
    RETURNING id INTO v_id;
    RETURN v_id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'agent "%" already exists', register_agent.name USING ERRCODE = '23505';
END
$$;
COMMENT ON FUNCTION pgautomator.register_agent(text, text, text[], integer, interval, boolean, text) IS 'Registers a remote agent ahead of its process (admins), e.g. to set its SMTP settings or a job''s affinity; login binds it to the role its process logs in as (otherwise the first process to register takes it); returns its id.';

CREATE FUNCTION pgautomator._agent_named(p_agent_id bigint, p_agent_name text)
RETURNS pgautomator.agent LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent pgautomator.agent;
BEGIN
    IF p_agent_id IS NULL AND p_agent_name IS NULL THEN
        RAISE EXCEPTION 'agent must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO v_agent FROM pgautomator.agent
     WHERE CASE WHEN p_agent_id IS NOT NULL THEN id = p_agent_id ELSE name = p_agent_name END
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'agent "%" does not exist', coalesce(p_agent_name, p_agent_id::text) USING ERRCODE = '42704';
    END IF;
    RETURN v_agent;
END
$$;
COMMENT ON FUNCTION pgautomator._agent_named(bigint, text) IS 'Resolves and locks an agent by id or name; 42704 when missing.';

CREATE FUNCTION pgautomator._alter_agent(p_agent pgautomator.agent, p_host text, p_capabilities text[],
                                         p_max_parallel integer, p_heartbeat_timeout interval, p_enabled boolean,
                                         p_run_as_roles text[] DEFAULT NULL)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgautomator._require_admin('configure agents');
    IF p_agent.kind = 'database' THEN
        RAISE EXCEPTION 'the database agent is configured by the launcher''s settings' USING ERRCODE = '55000',
            HINT = 'pgautomator.max_workers bounds it; enable or disable it with pgautomator.enabled.';
    END IF;
    PERFORM pgautomator._check_agent(p_agent.name, coalesce(p_capabilities, p_agent.capabilities),
                                     p_max_parallel, p_heartbeat_timeout);
    UPDATE pgautomator.agent SET
        host = coalesce(p_host, host),
        capabilities = coalesce(p_capabilities, capabilities),
        max_parallel = coalesce(p_max_parallel, max_parallel),
        heartbeat_timeout = coalesce(p_heartbeat_timeout, heartbeat_timeout),
        enabled = coalesce(p_enabled, enabled),
        -- '{}' lifts the restriction (NULL leaves it unchanged).
        run_as_roles = CASE WHEN p_run_as_roles IS NULL THEN run_as_roles
                            WHEN cardinality(p_run_as_roles) = 0 THEN NULL
                            ELSE pgautomator._check_roles('run_as_roles', p_run_as_roles) END
     WHERE id = p_agent.id;
    PERFORM pgautomator._wake('agent');
END
$$;
COMMENT ON FUNCTION pgautomator._alter_agent(pgautomator.agent, text, text[], integer, interval, boolean, text[]) IS 'Changes the given settings of a remote agent after checking them.';

CREATE FUNCTION pgautomator.alter_agent(agent bigint, host text DEFAULT NULL, capabilities text[] DEFAULT NULL,
                                        max_parallel integer DEFAULT NULL, heartbeat_timeout interval DEFAULT NULL,
                                        enabled boolean DEFAULT NULL, run_as_roles text[] DEFAULT NULL)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._alter_agent(pgautomator._agent_named($1, NULL), $2, $3, $4, $5, $6, $7) $$;
COMMENT ON FUNCTION pgautomator.alter_agent(bigint, text, text[], integer, interval, boolean, text[]) IS 'Changes settings of a remote agent by id (admins); NULL leaves a setting unchanged. A disabled agent claims nothing; run_as_roles limits it to jobs whose run-as role is a member of one of them (''{}'' lifts that).';

CREATE FUNCTION pgautomator.alter_agent(agent text, host text DEFAULT NULL, capabilities text[] DEFAULT NULL,
                                        max_parallel integer DEFAULT NULL, heartbeat_timeout interval DEFAULT NULL,
                                        enabled boolean DEFAULT NULL, run_as_roles text[] DEFAULT NULL)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._alter_agent(pgautomator._agent_named(NULL, $1), $2, $3, $4, $5, $6, $7) $$;
COMMENT ON FUNCTION pgautomator.alter_agent(text, text, text[], integer, interval, boolean, text[]) IS 'Changes settings of a remote agent by name (admins); NULL leaves a setting unchanged. A disabled agent claims nothing; run_as_roles limits it to jobs whose run-as role is a member of one of them (''{}'' lifts that).';

CREATE FUNCTION pgautomator._set_agent_smtp(p_agent pgautomator.agent, p_host text, p_port integer,
                                            p_security text, p_user text, p_password text, p_from text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgautomator._require_admin('configure agents');
    PERFORM pgautomator._check_choice('security', p_security, ARRAY['none', 'starttls', 'tls']);
    PERFORM pgautomator._check_range('port', p_port, 1, 65535);
    IF p_host IS NOT NULL AND (p_host !~ '\S' OR p_host ~ '\s') THEN
        RAISE EXCEPTION 'invalid host "%"', p_host USING ERRCODE = '22023';
    END IF;
    IF p_host IS NULL AND (p_user IS NOT NULL OR p_password IS NOT NULL OR p_from IS NOT NULL) THEN
        RAISE EXCEPTION 'host must not be NULL when other SMTP settings are given' USING ERRCODE = '22004',
            HINT = 'set_agent_smtp(agent, NULL) clears the SMTP settings.';
    END IF;
    IF p_password IS NOT NULL AND p_user IS NULL THEN
        RAISE EXCEPTION 'a password needs a user' USING ERRCODE = '22023';
    END IF;
    IF p_from IS NOT NULL AND NOT pgautomator._is_address(p_from) THEN
        RAISE EXCEPTION 'invalid sender address "%"', p_from USING ERRCODE = '22023';
    END IF;
    -- (smtplib logs in with ASCII only: anything else failed every send)
    IF p_user ~ '[^\x01-\x7f]' OR p_password ~ '[^\x01-\x7f]' THEN
        RAISE EXCEPTION 'SMTP user and password must be ASCII' USING ERRCODE = '22023';
    END IF;
    UPDATE pgautomator.agent SET
        smtp_host = p_host,
        smtp_security = coalesce(p_security, 'starttls'),
        smtp_port = CASE WHEN p_host IS NULL THEN NULL
                         ELSE coalesce(p_port, CASE coalesce(p_security, 'starttls')
                                                   WHEN 'tls' THEN 465 WHEN 'starttls' THEN 587 ELSE 25 END) END,
        smtp_user = p_user,
        smtp_password = p_password,
        smtp_from = p_from
     WHERE id = p_agent.id;
END
$$;
COMMENT ON FUNCTION pgautomator._set_agent_smtp(pgautomator.agent, text, integer, text, text, text, text) IS 'Stores an agent''s SMTP settings after checking them.';

CREATE FUNCTION pgautomator.set_agent_smtp(agent bigint, host text, port integer DEFAULT NULL,
                                           security text DEFAULT 'starttls', username text DEFAULT NULL,
                                           password text DEFAULT NULL, sender text DEFAULT NULL)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._set_agent_smtp(pgautomator._agent_named($1, NULL), $2, $3, $4, $5, $6, $7) $$;
COMMENT ON FUNCTION pgautomator.set_agent_smtp(bigint, text, integer, text, text, text, text) IS 'Sets the SMTP server an agent (by id) sends notifications through (admins); host NULL clears it. port defaults by security: 465 tls, 587 starttls, 25 none.';

CREATE FUNCTION pgautomator.set_agent_smtp(agent text, host text, port integer DEFAULT NULL,
                                           security text DEFAULT 'starttls', username text DEFAULT NULL,
                                           password text DEFAULT NULL, sender text DEFAULT NULL)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._set_agent_smtp(pgautomator._agent_named(NULL, $1), $2, $3, $4, $5, $6, $7) $$;
COMMENT ON FUNCTION pgautomator.set_agent_smtp(text, text, integer, text, text, text, text) IS 'Sets the SMTP server an agent (by name) sends notifications through (admins); host NULL clears it. port defaults by security: 465 tls, 587 starttls, 25 none.';

CREATE FUNCTION pgautomator._drop_agent(p_agent pgautomator.agent)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgautomator._require_admin('drop agents');
    IF p_agent.kind = 'database' THEN
        RAISE EXCEPTION 'the database agent belongs to the launcher and cannot be dropped' USING ERRCODE = '55000';
    END IF;
    IF EXISTS (SELECT FROM pgautomator.step_run sr WHERE sr.agent_id = p_agent.id AND sr.state = 'running') THEN
        RAISE EXCEPTION 'agent "%" is running steps', p_agent.name USING ERRCODE = '55006',
            HINT = 'Stop its runs with stop_run, or wait for them to end.';
    END IF;
    -- History keeps its rows; they no longer name the agent.
    DELETE FROM pgautomator.agent WHERE id = p_agent.id;
END
$$;
COMMENT ON FUNCTION pgautomator._drop_agent(pgautomator.agent) IS 'Deletes a remote agent that runs nothing.';

CREATE FUNCTION pgautomator.drop_agent(agent bigint)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._drop_agent(pgautomator._agent_named($1, NULL)) $$;
COMMENT ON FUNCTION pgautomator.drop_agent(bigint) IS 'Drops a remote agent by id (admins); refused while it runs steps.';

CREATE FUNCTION pgautomator.drop_agent(agent text)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._drop_agent(pgautomator._agent_named(NULL, $1)) $$;
COMMENT ON FUNCTION pgautomator.drop_agent(text) IS 'Drops a remote agent by name (admins); refused while it runs steps.';

-- An agent process starts: it registers (or re-registers) under its name.
-- Step runs a previous process of that name held are lost: crashed.
CREATE FUNCTION pgautomator.agent_register_v1(name text, host text, capabilities text[],
                                              max_parallel integer, version text, pid integer)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent pgautomator.agent;
BEGIN
    PERFORM pgautomator._require_agent_role();
    LOCK TABLE pgautomator.agent, pgautomator.run, pgautomator.step_run IN ROW EXCLUSIVE MODE;   -- (see _agent_for)
    PERFORM pgautomator._check_agent(agent_register_v1.name, agent_register_v1.capabilities,
                                     agent_register_v1.max_parallel, NULL);
    IF agent_register_v1.max_parallel IS NULL THEN
        RAISE EXCEPTION 'max_parallel must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO v_agent FROM pgautomator.agent a WHERE a.name = agent_register_v1.name FOR UPDATE;
    IF FOUND THEN
        PERFORM pgautomator._check_agent_login(v_agent, true);
        PERFORM pgautomator._crash_agent_work(v_agent.id,
            pg_catalog.format('agent "%s" re-registered (pid %s): its previous process lost this step',
                              v_agent.name, agent_register_v1.pid));
        UPDATE pgautomator.agent a
           SET host = agent_register_v1.host, capabilities = agent_register_v1.capabilities,
               max_parallel = agent_register_v1.max_parallel, version = agent_register_v1.version,
               pid = agent_register_v1.pid, registered_at = pg_catalog.now(), last_heartbeat = pg_catalog.now(),
               login = coalesce(a.login, session_user)
         WHERE a.id = v_agent.id;
        RETURN v_agent.id;
    END IF;
    -- A restriction an admin put on the agents of a role binds the role: it
    -- may not shed it under a new name (nor a disabled agent's stop).
    IF NOT pgautomator._is_admin()
       AND EXISTS (SELECT FROM pgautomator.agent a
                    WHERE a.kind = 'remote' AND a.login = session_user
                      AND (a.run_as_roles IS NOT NULL OR NOT a.enabled)) THEN
        RAISE EXCEPTION 'permission denied to register agent "%": an admin restricted or disabled the agents of role "%"',
            agent_register_v1.name, session_user
            USING ERRCODE = '42501',
                  HINT = 'An admin registers a new name for it with register_agent(name, login => ...) and alter_agent.';
    END IF;
    INSERT INTO pgautomator.agent AS a (name, kind, host, capabilities, max_parallel, version, pid, last_heartbeat,
                                        login)
    VALUES (agent_register_v1.name, 'remote', agent_register_v1.host, agent_register_v1.capabilities,
            agent_register_v1.max_parallel, agent_register_v1.version, agent_register_v1.pid, pg_catalog.now(),
            session_user)
    RETURNING a.id INTO v_agent.id;
    RETURN v_agent.id;
END
$$;
COMMENT ON FUNCTION pgautomator.agent_register_v1(text, text, text[], integer, text, integer) IS 'An agent process registers under its name and gets its id; step runs a previous process of that name held end crashed.';

-- Step runs of an agent that must be killed now: stop requested, or step
-- or job timeout passed.
CREATE FUNCTION pgautomator._agent_kill_list(p_agent_id bigint)
RETURNS SETOF bigint LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sr.id
      FROM pgautomator.step_run sr
      JOIN pgautomator.run r ON r.id = sr.run_id
      JOIN pgautomator.job j ON j.id = r.job_id
      LEFT JOIN pgautomator.step s ON s.id = sr.step_id
     WHERE sr.agent_id = p_agent_id AND sr.state = 'running'
       AND (sr.cancel_requested_at IS NOT NULL OR r.stop_requested_at IS NOT NULL
            OR r.started_at + j.timeout <= pg_catalog.now()
            OR sr.started_at + s.timeout <= pg_catalog.now())
     ORDER BY sr.id
$$;
COMMENT ON FUNCTION pgautomator._agent_kill_list(bigint) IS 'The running step runs of an agent that were stopped or timed out.';

CREATE FUNCTION pgautomator.agent_heartbeat_v1(agent_id bigint)
RETURNS SETOF bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent pgautomator.agent := pgautomator._agent_for(agent_heartbeat_v1.agent_id);
BEGIN
    UPDATE pgautomator.agent a SET last_heartbeat = pg_catalog.now() WHERE a.id = v_agent.id;
    RETURN QUERY SELECT * FROM pgautomator._agent_kill_list(v_agent.id);
END
$$;
COMMENT ON FUNCTION pgautomator.agent_heartbeat_v1(bigint) IS 'Records an agent''s heartbeat; returns the ids of its running step runs to kill now (stopped or timed out).';

-- Claims step runs the agent can run (its capabilities) and may run (the
-- job's agent affinity, if any, names it), up to its free slots.
-- pid: the claiming process's, kept on its step runs (worker_pid), so that
-- agent_running_v1 tells each process its own claims apart from those of
-- another process under the same name.
CREATE FUNCTION pgautomator.agent_claim_v1(agent_id bigint, max_steps integer, pid integer DEFAULT NULL)
RETURNS SETOF pgautomator.claimed_step_v1 LANGUAGE plpgsql SECURITY DEFINER
SET plan_cache_mode = force_generic_plan   -- see _launcher_tick
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent pgautomator.agent := pgautomator._agent_for(agent_claim_v1.agent_id);
    v_free  integer;
    v       record;
    v_sr    pgautomator.step_run;
    v_left  interval;
BEGIN
    PERFORM pgautomator._check_range('max_steps', agent_claim_v1.max_steps, 0, 1000);
    UPDATE pgautomator.agent a SET last_heartbeat = pg_catalog.now() WHERE a.id = v_agent.id;
    IF NOT v_agent.enabled THEN
        RETURN;
    END IF;
    SELECT v_agent.max_parallel - count(*) INTO v_free
      FROM pgautomator.step_run sr WHERE sr.agent_id = v_agent.id AND sr.state = 'running';
    v_free := least(v_free, coalesce(agent_claim_v1.max_steps, v_free));
    IF v_free <= 0 THEN
        RETURN;
    END IF;
    FOR v IN
        SELECT sr.id AS step_run_id
          FROM pgautomator.step_run sr
          JOIN pgautomator.run r ON r.id = sr.run_id
          JOIN pgautomator.job j ON j.id = r.job_id
         WHERE sr.state = 'queued' AND sr.kind = ANY (v_agent.capabilities) AND sr.kind <> 'sql'
           AND sr.not_before <= pg_catalog.statement_timestamp()   -- (as the state machine queues)
           -- (IS NOT DISTINCT FROM: "= 'running'" would let a plan read the run
           -- through run_active_idx, every active run, instead of its primary key)
           AND r.state IS NOT DISTINCT FROM 'running' AND r.stop_requested_at IS NULL
           AND (j.agent IS NULL OR j.agent = v_agent.name)
           AND (v_agent.run_as_roles IS NULL
                -- a superuser is a member of every role: it must be listed itself
                OR EXISTS (SELECT FROM unnest(v_agent.run_as_roles) AS allowed(role)
                             JOIN pg_catalog.pg_roles ra ON ra.rolname = j.run_as
                            WHERE allowed.role = j.run_as
                               OR (NOT ra.rolsuper
                                   AND EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = allowed.role)
                                   AND pg_catalog.pg_has_role(j.run_as, allowed.role, 'MEMBER'))))
         ORDER BY sr.not_before, sr.id
         LIMIT v_free
           FOR UPDATE OF r SKIP LOCKED
    LOOP
        -- The run first, then its step run: the lock order of every path.
        -- (by primary key, the state checked on the row: see _claim_local)
        SELECT * INTO v_sr FROM pgautomator.step_run WHERE id = v.step_run_id FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND OR v_sr.state <> 'queued';
        DECLARE
            v_run  pgautomator.run;
            v_job  pgautomator.job;
            v_step pgautomator.step;
        BEGIN
            SELECT * INTO v_run FROM pgautomator.run WHERE id = v_sr.run_id;
            SELECT * INTO v_job FROM pgautomator.job WHERE id = v_run.job_id;
            SELECT * INTO v_step FROM pgautomator.step WHERE id = v_sr.step_id;
            IF v_step.id IS NULL THEN
                PERFORM pgautomator._fail_unstarted(v_sr, '42704',
                    pg_catalog.format('step "%s" was dropped before it could run', v_sr.step_name));
                CONTINUE;
            END IF;
            v_left := least(v_step.timeout, v_run.started_at + v_job.timeout - pg_catalog.now());
            IF v_left IS NOT NULL AND v_left <= interval '0' THEN
                PERFORM pgautomator._job_timed_out(v_sr, v_job);
                CONTINUE;
            END IF;
            UPDATE pgautomator.step_run
               SET state = 'running', agent_id = v_agent.id, started_at = pg_catalog.now(),
                   worker_pid = agent_claim_v1.pid
             WHERE id = v_sr.id;
            RETURN NEXT ROW(v_sr.id, v_run.id, v_job.id, v_job.name, v_step.name, v_step.kind, v_step.code,
                            v_step.connection, v_step.shell, v_step.success_codes,
                            CASE WHEN v_left IS NULL THEN 0
                                 ELSE greatest(1, ceil(extract(epoch FROM v_left) * 1000))::bigint END,
                            v_step.transaction, v_sr.attempt, v_job.run_as)::pgautomator.claimed_step_v1;
        END;
    END LOOP;
END
$$;
COMMENT ON FUNCTION pgautomator.agent_claim_v1(bigint, integer, integer) IS 'Claims up to max_steps ready shell/remote_sql step runs the agent''s capabilities cover and the jobs'' agent affinity allows (FOR UPDATE SKIP LOCKED), within its max_parallel; pid, the claiming process''s, is kept on them.';

CREATE FUNCTION pgautomator.agent_output_v1(agent_id bigint, step_run_id bigint, chunk text)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent pgautomator.agent := pgautomator._agent_for(agent_output_v1.agent_id);
BEGIN
    UPDATE pgautomator.step_run sr
       SET output = pgautomator._tail(coalesce(sr.output, '') || coalesce(agent_output_v1.chunk, ''),
                                      pgautomator._setting_int('output_limit'))
     WHERE sr.id = agent_output_v1.step_run_id AND sr.agent_id = v_agent.id AND sr.state = 'running';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN NOT EXISTS (SELECT FROM pgautomator._agent_kill_list(v_agent.id) k WHERE k = agent_output_v1.step_run_id);
END
$$;
COMMENT ON FUNCTION pgautomator.agent_output_v1(bigint, bigint, text) IS 'Appends streamed output to a running step run (bounded, the tail kept); false means stop: the step run was stopped, timed out or is no longer this agent''s.';

CREATE FUNCTION pgautomator.agent_report_v1(agent_id bigint, step_run_id bigint, succeeded boolean,
                                            exit_code integer, sqlstate text, output text, error text,
                                            rows_affected bigint, messages text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent pgautomator.agent := pgautomator._agent_for(agent_report_v1.agent_id);
BEGIN
    IF agent_report_v1.step_run_id IS NULL THEN
        RAISE EXCEPTION 'step_run_id must not be NULL' USING ERRCODE = '22004';
    END IF;
    UPDATE pgautomator.agent a SET last_heartbeat = pg_catalog.now() WHERE a.id = v_agent.id;
    -- (what an agent relays from a driver is kept only when it is what the
    -- columns mean: a SQLSTATE is five digits or capitals, a count is not
    -- negative; the outcome itself is never refused for it)
    PERFORM pgautomator._step_report(agent_report_v1.step_run_id, v_agent.id, agent_report_v1.succeeded,
        agent_report_v1.exit_code,
        CASE WHEN agent_report_v1.sqlstate ~ '^[0-9A-Z]{5}$' THEN agent_report_v1.sqlstate END,
        agent_report_v1.error, agent_report_v1.messages,
        CASE WHEN agent_report_v1.rows_affected >= 0 THEN agent_report_v1.rows_affected END,
        agent_report_v1.output, true);
END
$$;
COMMENT ON FUNCTION pgautomator.agent_report_v1(bigint, bigint, boolean, integer, text, text, text, bigint, text) IS 'Reports the outcome of a step run the agent ran; output, when not NULL, replaces what was streamed. Ignored when the step run is no longer running (stopped, crashed).';

CREATE FUNCTION pgautomator.agent_release_v1(agent_id bigint, step_run_id bigint)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent pgautomator.agent := pgautomator._agent_for(agent_release_v1.agent_id);
BEGIN
    -- The run first (the lock order of every path): a report under way
    -- holds it, reads the step run unlocked, and must not see it change.
    PERFORM pgautomator._lock_run_of(agent_release_v1.step_run_id);
    UPDATE pgautomator.step_run sr
       SET state = 'queued', agent_id = NULL, started_at = NULL, output = NULL, worker_pid = NULL
     WHERE sr.id = agent_release_v1.step_run_id AND sr.agent_id = v_agent.id AND sr.state = 'running'
       AND sr.cancel_requested_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pgautomator._wake('release');
    RETURN true;
END
$$;
COMMENT ON FUNCTION pgautomator.agent_release_v1(bigint, bigint) IS 'Hands a claimed step run the agent will not run back to the queue (e.g. on SIGTERM before it started); false when it is not the agent''s running step run.';

-- What the database holds as running on an agent: the agent compares it
-- with what it runs (a claim whose answer was lost, a step run crashed
-- while the agent was cut off).
CREATE FUNCTION pgautomator.agent_running_v1(agent_id bigint, pid integer DEFAULT NULL)
RETURNS SETOF bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent pgautomator.agent := pgautomator._agent_for(agent_running_v1.agent_id);
BEGIN
    RETURN QUERY SELECT sr.id FROM pgautomator.step_run sr
                  WHERE sr.agent_id = v_agent.id AND sr.state = 'running'
                    AND (agent_running_v1.pid IS NULL OR sr.worker_pid IS NOT DISTINCT FROM agent_running_v1.pid)
                  ORDER BY sr.id;
END
$$;
COMMENT ON FUNCTION pgautomator.agent_running_v1(bigint, integer) IS 'The ids of the step runs the database holds as running on the agent (with pid: those that process claimed), in order; the agent releases those it does not run and stops those it runs that are not listed.';

CREATE FUNCTION pgautomator.agent_deregister_v1(agent_id bigint)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent pgautomator.agent := pgautomator._agent_for(agent_deregister_v1.agent_id);
    v_n     integer;
BEGIN
    v_n := pgautomator._crash_agent_work(v_agent.id,
        pg_catalog.format('agent "%s" shut down while running this step', v_agent.name));
    UPDATE pgautomator.agent a SET last_heartbeat = NULL, pid = NULL WHERE a.id = v_agent.id;
    RETURN v_n;
END
$$;
COMMENT ON FUNCTION pgautomator.agent_deregister_v1(bigint) IS 'An agent process shuts down: it is shown down, and step runs it still held end crashed (retrying per retry_on_crash); returns how many.';

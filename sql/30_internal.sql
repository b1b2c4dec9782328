-- Internal helpers shared by the API functions: who is calling, name
-- resolution, rights checks, argument checks, waking the launcher.
-- The caller is session_user: inside a SECURITY DEFINER function the
-- invoker's current_user is not visible, and session_user can never carry
-- fewer rights than a role the session switched to.

CREATE FUNCTION pgautomator._is_admin()
RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.pg_has_role(session_user, 'pgautomator_admin', 'MEMBER') $$;
COMMENT ON FUNCTION pgautomator._is_admin() IS 'Whether the session user may manage every object (superusers and pgautomator_admin members).';

CREATE FUNCTION pgautomator._is_operator()
RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.pg_has_role(session_user, 'pgautomator_operator', 'MEMBER') $$;
COMMENT ON FUNCTION pgautomator._is_operator() IS 'Whether the session user may read everything and start or stop any run.';

-- Whether the session user may manage an object owned by p_owner.
CREATE FUNCTION pgautomator._may_manage(p_owner name)
RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgautomator._is_admin()
        OR (EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = p_owner)
            AND pg_catalog.pg_has_role(session_user, p_owner, 'MEMBER'))
$$;
COMMENT ON FUNCTION pgautomator._may_manage(name) IS 'Whether the session user is an admin or a member of the given owner role.';

CREATE FUNCTION pgautomator._require_user()
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_catalog.pg_has_role(session_user, 'pgautomator_user', 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied: role "%" is not a member of pgautomator_user', session_user
            USING ERRCODE = '42501';
    END IF;
END
$$;
COMMENT ON FUNCTION pgautomator._require_user() IS 'Raises 42501 unless the session user may use pgautomator at all.';

CREATE FUNCTION pgautomator._require_admin(p_action text)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pgautomator._is_admin() THEN
        RAISE EXCEPTION 'permission denied to %', p_action
            USING ERRCODE = '42501', HINT = 'Only members of pgautomator_admin may do this.';
    END IF;
END
$$;
COMMENT ON FUNCTION pgautomator._require_admin(text) IS 'Raises 42501 unless the session user is a pgautomator admin.';

-- A name argument: present, not blank, at most 200 characters.
CREATE FUNCTION pgautomator._check_name(p_what text, p_name text)
RETURNS text LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_name IS NULL OR p_name !~ '\S' THEN
        RAISE EXCEPTION '% name must not be empty', p_what USING ERRCODE = '22023';
    END IF;
    IF length(p_name) > 200 THEN
        RAISE EXCEPTION '% name is longer than 200 characters', p_what USING ERRCODE = '22023';
    END IF;
    -- Names go into logs and e-mail headers: no line breaks or other controls.
    IF p_name ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION '% name must not contain control characters', p_what USING ERRCODE = '22023';
    END IF;
    -- Nor Unicode's line and paragraph separators and bidirectional controls
    -- (which reorder what a log line shows), nor only blanks of other kinds.
    -- (chr() above 255 exists only in UTF8 databases: checked there alone.)
    IF pg_catalog.getdatabaseencoding() = 'UTF8' THEN
        IF p_name ~ ('[' || chr(8232) || chr(8233) || chr(8234) || '-' || chr(8238)
                     || chr(8294) || '-' || chr(8297) || ']') THEN
            RAISE EXCEPTION '% name must not contain line separators or bidirectional controls', p_what
                USING ERRCODE = '22023';
        END IF;
        IF p_name !~ ('[^[:space:]' || chr(160) || chr(5760) || chr(8192) || '-' || chr(8203)
                      || chr(8239) || chr(8287) || chr(12288) || chr(65279) || ']') THEN
            RAISE EXCEPTION '% name must not be empty', p_what USING ERRCODE = '22023';
        END IF;
    END IF;
    RETURN p_name;
END
$$;
COMMENT ON FUNCTION pgautomator._check_name(text, text) IS 'Validates an object name and returns it.';

-- Raises 22023 naming the argument when p_value is not one of p_allowed.
CREATE FUNCTION pgautomator._check_choice(p_arg text, p_value text, p_allowed text[])
RETURNS text LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NOT NULL AND NOT (p_value = ANY (p_allowed)) THEN
        RAISE EXCEPTION 'invalid % "%"', p_arg, p_value
            USING ERRCODE = '22023', HINT = format('Use one of: %s.', array_to_string(p_allowed, ', '));
    END IF;
    RETURN p_value;
END
$$;
COMMENT ON FUNCTION pgautomator._check_choice(text, text, text[]) IS 'Validates an enumerated argument and returns it.';

-- Raises 22023 naming the argument unless every element is a plain e-mail
-- address (no spaces or line breaks: they end up in mail headers).
-- Raises 22023 when a free text (a description, a reason) is longer than
-- p_max characters: they are shown in views, logs and the UI, and errors
-- quote arguments.
CREATE FUNCTION pgautomator._check_length(p_arg text, p_value text, p_max integer)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF length(p_value) > p_max THEN
        RAISE EXCEPTION '% is longer than % characters', p_arg, p_max USING ERRCODE = '22023';
    END IF;
END
$$;
COMMENT ON FUNCTION pgautomator._check_length(text, text, integer) IS 'Raises 22023 when a free text argument is longer than p_max characters.';

-- Raises 22023 unless an array argument is a plain list (one dimension,
-- from 1): a '[5:5]={0}' or a 2-D array would reach agents and checks that
-- read it as one.
CREATE FUNCTION pgautomator._check_list(p_arg text, p_values anyarray)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.array_ndims(p_values) > 1 OR pg_catalog.array_lower(p_values, 1) <> 1 THEN
        RAISE EXCEPTION '% must be a one-dimensional list, not %', p_arg, p_values USING ERRCODE = '22023';
    END IF;
END
$$;
COMMENT ON FUNCTION pgautomator._check_list(text, anyarray) IS 'Raises 22023 unless an array argument is one-dimensional and starts at 1.';

-- An e-mail address as the mailer can send to: local@domain, the domain a
-- host name or a bracketed address literal. Python's e-mail parser raises
-- on anything looser (an "ops@[10.0.0.1" typo stopped every later mail),
-- and no header can be smuggled in. False for NULL.
CREATE FUNCTION pgautomator._is_address(p_value text)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL
       OR p_value !~ '^[^@\s[:cntrl:]<>,;:"()\[\]\\]+@([^@\s[:cntrl:]<>,;:"()\[\]\\]+|\[[0-9A-Za-z.:]+\])$' THEN
        RETURN false;
    END IF;
    -- Line breaks \s may not know (it follows the database's LC_CTYPE):
    -- NEL and Unicode's line and paragraph separators, which Python refuses
    -- in a header. (chr() above 255 exists only in UTF8 databases.)
    IF pg_catalog.getdatabaseencoding() = 'UTF8' THEN
        RETURN p_value !~ ('[' || chr(133) || chr(8232) || chr(8233) || ']');
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION pgautomator._is_address(text) IS 'Whether a text is an e-mail address the mailer can send to.';

CREATE FUNCTION pgautomator._check_addresses(p_arg text, p_values text[])
RETURNS text[] LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgautomator._check_list(p_arg, p_values);
    IF EXISTS (SELECT FROM unnest(p_values) AS a WHERE NOT pgautomator._is_address(a)) THEN
        RAISE EXCEPTION '% must hold e-mail addresses, not %', p_arg, p_values USING ERRCODE = '22023';
    END IF;
    IF cardinality(p_values) > 100 THEN
        RAISE EXCEPTION '% must hold at most 100 addresses, not %', p_arg, cardinality(p_values)
            USING ERRCODE = '22023';
    END IF;
    RETURN p_values;
END
$$;
COMMENT ON FUNCTION pgautomator._check_addresses(text, text[]) IS 'Validates a list of e-mail addresses and returns it.';

-- Raises 42704 naming the argument unless every element names a role.
CREATE FUNCTION pgautomator._check_roles(p_arg text, p_roles text[])
RETURNS name[] LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_missing text;
BEGIN
    PERFORM pgautomator._check_list(p_arg, p_roles);
    SELECT r INTO v_missing FROM unnest(p_roles) AS r
     WHERE r IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% names role "%", which does not exist', p_arg, v_missing USING ERRCODE = '42704';
    END IF;
    RETURN p_roles::name[];
END
$$;
COMMENT ON FUNCTION pgautomator._check_roles(text, text[]) IS 'Validates a list of role names and returns it.';

-- Raises 22023 unless p_value is NULL or within [p_min, p_max].
CREATE FUNCTION pgautomator._check_range(p_arg text, p_value bigint, p_min bigint, p_max bigint)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NOT NULL AND (p_value < p_min OR p_value > p_max) THEN
        RAISE EXCEPTION '% must be between % and %, not %', p_arg, p_min, p_max, p_value
            USING ERRCODE = '22023';
    END IF;
    RETURN p_value;
END
$$;
COMMENT ON FUNCTION pgautomator._check_range(text, bigint, bigint, bigint) IS 'Validates an integer argument against bounds and returns it.';

-- Raises 22023 unless p_value is NULL or a positive interval (or zero when allowed).
CREATE FUNCTION pgautomator._check_interval(p_arg text, p_value interval, p_allow_zero boolean DEFAULT false)
RETURNS interval LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_months bigint;
    v_days   bigint;
    v_time   interval;
BEGIN
    IF p_value IS NULL THEN
        RETURN NULL;
    END IF;
    IF p_value < interval '0' OR (p_value = interval '0' AND NOT p_allow_zero) THEN
        RAISE EXCEPTION '% must be % interval, not %', p_arg,
            CASE WHEN p_allow_zero THEN 'a non-negative' ELSE 'a positive' END, p_value
            USING ERRCODE = '22023';
    END IF;
    -- Bounded, each part: the dispatcher adds these to instants (months,
    -- then days, then time), and an instant past the timestamp range would
    -- fail every pass, for all jobs. Comparing whole intervals counts a
    -- month as 30 days, which '4000000 months -119990000 days' slips past.
    v_months := extract(year FROM p_value)::bigint * 12 + extract(month FROM p_value)::bigint;
    v_days := extract(day FROM p_value)::bigint;
    v_time := p_value - pg_catalog.make_interval(months => v_months::integer, days => v_days::integer);
    IF v_months < 0 OR v_days < 0 OR v_time < interval '0' THEN
        RAISE EXCEPTION '% must not mix positive and negative parts, not %', p_arg, p_value USING ERRCODE = '22023';
    END IF;
    IF p_value > interval '100 years' OR v_months > 1200 OR v_days > 36525 OR v_time > interval '876600 hours' THEN
        RAISE EXCEPTION '% must be at most 100 years, not %', p_arg, p_value USING ERRCODE = '22023';
    END IF;
    RETURN p_value;
END
$$;
COMMENT ON FUNCTION pgautomator._check_interval(text, interval, boolean) IS 'Validates an interval argument and returns it.';

-- Whether the session user may act as a role (its jobs' steps run as it):
-- a member that may SET ROLE to it.  From PostgreSQL 16 a membership can
-- deny SET (GRANT ... WITH SET FALSE) and pg_has_role's MEMBER ignores that;
-- before 16 every member may SET ROLE.
CREATE FUNCTION pgautomator._may_act_as(p_role name)
RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = p_role)
       AND CASE WHEN pg_catalog.current_setting('server_version_num')::integer >= 160000
                THEN pg_catalog.pg_has_role(session_user, p_role, 'SET')
                ELSE pg_catalog.pg_has_role(session_user, p_role, 'MEMBER') END
$$;
COMMENT ON FUNCTION pgautomator._may_act_as(name) IS 'Whether the session user may act as a role (SET ROLE to it): the run-as rule.';

-- The run-as rule: the role exists, can log in (a worker connects as it),
-- and the session user is a member of it (superusers are members of all).
CREATE FUNCTION pgautomator._check_run_as(p_role text)
RETURNS name LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_login boolean;
BEGIN
    IF p_role IS NULL OR p_role !~ '\S' THEN
        RAISE EXCEPTION 'run_as must name a role' USING ERRCODE = '22023';
    END IF;
    SELECT rolcanlogin INTO v_login FROM pg_catalog.pg_roles WHERE rolname = p_role;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run_as role "%" does not exist', p_role USING ERRCODE = '42704';
    END IF;
    IF NOT pgautomator._may_act_as(p_role) THEN
        RAISE EXCEPTION 'permission denied to run jobs as role "%"', p_role
            USING ERRCODE = '42501',
                  HINT = format('Only superusers and members of "%s" may create jobs that run as it.', p_role);
    END IF;
    IF NOT v_login THEN
        RAISE EXCEPTION 'run_as role "%" cannot log in', p_role
            USING ERRCODE = '22023',
                  HINT = 'Steps connect as the run-as role: grant it LOGIN (ALTER ROLE ... LOGIN).';
    END IF;
    RETURN p_role::name;
END
$$;
COMMENT ON FUNCTION pgautomator._check_run_as(text) IS 'Validates a run-as role: it exists, can log in, and the session user is a member of it.';

-- The owner of a new object: the session user, or a role it is a member of.
CREATE FUNCTION pgautomator._check_owner(p_role text)
RETURNS name LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_role IS NULL THEN
        RETURN session_user;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = p_role) THEN
        RAISE EXCEPTION 'owner role "%" does not exist', p_role USING ERRCODE = '42704';
    END IF;
    IF NOT pg_catalog.pg_has_role(session_user, p_role, 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied to give objects to role "%"', p_role USING ERRCODE = '42501';
    END IF;
    RETURN p_role::name;
END
$$;
COMMENT ON FUNCTION pgautomator._check_owner(text) IS 'Validates the owner of a new object: the session user or one of its roles.';

CREATE FUNCTION pgautomator._category_id(p_category text)
RETURNS bigint LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    IF p_category IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT id INTO v_id FROM pgautomator.category WHERE name = p_category;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'category "%" does not exist', p_category USING ERRCODE = '42704';
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION pgautomator._category_id(text) IS 'Resolves a category name to its id; 42704 when missing.';

-- Resolves a job by id or name, locks it, and checks that the session user
-- may act on it: p_for 'manage' (owner members and admins), 'program'
-- (manage, and a member of the run-as role: adding or changing steps) or
-- 'operate' (also operators: start, stop, enable, disable).
CREATE FUNCTION pgautomator._job_for(p_job_id bigint, p_job_name text, p_for text)
RETURNS pgautomator.job LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job pgautomator.job;
BEGIN
    IF p_job_id IS NULL AND p_job_name IS NULL THEN
        RAISE EXCEPTION 'job must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO v_job FROM pgautomator.job
     WHERE CASE WHEN p_job_id IS NOT NULL THEN id = p_job_id ELSE name = p_job_name END
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job "%" does not exist', coalesce(p_job_name, p_job_id::text) USING ERRCODE = '42704';
    END IF;
    IF NOT (pgautomator._may_manage(v_job.owner)
            OR (p_for = 'operate' AND pgautomator._is_operator())) THEN
        -- A job the caller may not even see does not exist for it: the
        -- error must not reveal other users' job names.
        IF NOT pgautomator._is_operator() THEN
            RAISE EXCEPTION 'job "%" does not exist', coalesce(p_job_name, p_job_id::text) USING ERRCODE = '42704';
        END IF;
        RAISE EXCEPTION 'permission denied for job "%"', v_job.name USING ERRCODE = '42501';
    END IF;
    -- What a job runs is code executed as its run-as role: only members of
    -- that role may add or change it, not every owner member or admin.
    IF p_for = 'program' AND NOT pgautomator._may_act_as(v_job.run_as) THEN
        RAISE EXCEPTION 'permission denied to change the steps of job "%"', v_job.name
            USING ERRCODE = '42501',
                  HINT = format('Its steps run as role "%s"; only superusers and members of it may add or change them.',
                                v_job.run_as);
    END IF;
    RETURN v_job;
END
$$;
COMMENT ON FUNCTION pgautomator._job_for(bigint, text, text) IS 'Resolves, locks and checks rights on a job.';

-- Resolves a step of a job by name, or by its id.
CREATE FUNCTION pgautomator._step_of(p_job_id bigint, p_step text)
RETURNS pgautomator.step LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_step pgautomator.step;
BEGIN
    IF p_step IS NULL THEN
        RAISE EXCEPTION 'step must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO v_step FROM pgautomator.step WHERE job_id = p_job_id AND name = p_step FOR UPDATE;
    IF NOT FOUND AND p_step ~ '^[0-9]{1,18}$' THEN
        SELECT * INTO v_step FROM pgautomator.step WHERE job_id = p_job_id AND id = p_step::bigint FOR UPDATE;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'step "%" does not exist in job %', p_step, p_job_id USING ERRCODE = '42704';
    END IF;
    RETURN v_step;
END
$$;
COMMENT ON FUNCTION pgautomator._step_of(bigint, text) IS 'Resolves a step of a job by name or id; 42704 when missing.';

-- Wakes the launcher: it listens on this channel and re-reads what is due.
-- NOTIFY is delivered at commit, so a rolled-back change wakes nobody.
-- Helpers on the dispatcher's hot path are PL/pgSQL, not SQL: a SQL
-- function with a SET clause is never inlined and is planned again at
-- every call, PL/pgSQL keeps its plans for the session.
CREATE FUNCTION pgautomator._wake(p_reason text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$ BEGIN PERFORM pg_catalog.pg_notify('pgautomator_wake', p_reason); END $$;
COMMENT ON FUNCTION pgautomator._wake(text) IS 'Notifies the launcher and agents that jobs, schedules or runs changed.';

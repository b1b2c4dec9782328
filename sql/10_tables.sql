-- Core objects: categories, agents, jobs and their ordered steps.
-- Clients never write these tables directly: every change goes through the
-- API functions, which check rights and arguments (README "API").

CREATE TABLE pgautomator.category (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE
                CHECK (name OPERATOR(pg_catalog.~) '\S' AND pg_catalog.length(name) <= 200),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE pgautomator.category IS 'User-defined groups of like jobs.';

-- An executor: the database itself (kind database, runs sql steps through
-- background workers) or a remote agent process (shell and remote_sql steps).
CREATE TABLE pgautomator.agent (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE
                    CHECK (name OPERATOR(pg_catalog.~) '\S' AND pg_catalog.length(name) <= 200),
    kind            text NOT NULL DEFAULT 'remote' CHECK (kind IN ('database', 'remote')),
    host            text,
    capabilities    text[] NOT NULL DEFAULT '{shell,remote_sql}'
                    CHECK (capabilities OPERATOR(pg_catalog.<@) ARRAY['sql', 'shell', 'remote_sql']),
    max_parallel    integer NOT NULL DEFAULT 4 CHECK (max_parallel BETWEEN 1 AND 1000),
    enabled         boolean NOT NULL DEFAULT true,
    version         text,
    pid             integer,
    -- The role a remote agent process logs in as: only it (and superusers) may
    -- act as this agent, so one agent's role cannot claim or report for
    -- another. Set when the agent first registers.
    login           name,
    -- Remote agents run steps with their own credentials and OS user: an
    -- admin may restrict an agent to jobs whose run-as role is a member of
    -- one of these roles (a superuser run-as role only when listed itself).
    -- NULL: any job.
    run_as_roles    name[],
    registered_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_heartbeat  timestamptz,
    -- An agent whose last heartbeat is older than this is shown as down.
    heartbeat_timeout interval NOT NULL DEFAULT '30 seconds'
                    CHECK (heartbeat_timeout > '0'),
    smtp_host       text,
    smtp_port       integer CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_security   text NOT NULL DEFAULT 'starttls'
                    CHECK (smtp_security IN ('none', 'starttls', 'tls')),
    smtp_user       text,
    smtp_password   text,
    smtp_from       text
);
COMMENT ON TABLE pgautomator.agent IS 'Executors: the database itself and remote agents, with their SMTP settings.';

CREATE TABLE pgautomator.job (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE
                    CHECK (name OPERATOR(pg_catalog.~) '\S' AND pg_catalog.length(name) <= 200),
    description     text NOT NULL DEFAULT '',
    category_id     bigint REFERENCES pgautomator.category ON DELETE SET NULL,
    enabled         boolean NOT NULL DEFAULT true,
    -- The role that owns the job (its creator unless given); members of it
    -- may manage the job.
    owner           name NOT NULL,
    -- Steps run with exactly this role's rights: it is the session user of
    -- every sql step from connection time.
    run_as          name NOT NULL,
    -- Host-agent affinity by agent name (the agent may register later);
    -- NULL means any agent able to run the step.
    agent           text,
    timeout         interval CHECK (timeout > '0'),
    overlap         text NOT NULL DEFAULT 'skip' CHECK (overlap IN ('skip', 'queue', 'parallel')),
    max_parallel    integer NOT NULL DEFAULT 1 CHECK (max_parallel BETWEEN 1 AND 1000),
    misfire         text NOT NULL DEFAULT 'run_once' CHECK (misfire IN ('run_once', 'skip', 'run_all')),
    misfire_limit   integer NOT NULL DEFAULT 10 CHECK (misfire_limit BETWEEN 1 AND 10000),
    retry_on_crash  boolean NOT NULL DEFAULT false,
    notify_on       text NOT NULL DEFAULT 'never'
                    CHECK (notify_on IN ('never', 'failure', 'success', 'always')),
    notify_to       text[] NOT NULL DEFAULT '{}',
    notify_from     text,
    notify_subject  text,
    notify_body     text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    modified_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE pgautomator.job IS 'Jobs: what runs (steps), as whom, and how runs may overlap.';
CREATE INDEX job_category_idx ON pgautomator.job (category_id);
CREATE INDEX job_owner_idx ON pgautomator.job (owner);
-- The dispatcher's job timeouts start from the jobs that have one.
CREATE INDEX job_timeout_idx ON pgautomator.job (id) WHERE timeout IS NOT NULL;

CREATE TABLE pgautomator.step (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id          bigint NOT NULL REFERENCES pgautomator.job ON DELETE CASCADE,
    position        integer NOT NULL CHECK (position >= 1),
    name            text NOT NULL
                    CHECK (name OPERATOR(pg_catalog.~) '\S' AND pg_catalog.length(name) <= 200),
    description     text NOT NULL DEFAULT '',
    enabled         boolean NOT NULL DEFAULT true,
    kind            text NOT NULL DEFAULT 'sql' CHECK (kind IN ('sql', 'shell', 'remote_sql')),
    code            text NOT NULL CHECK (code OPERATOR(pg_catalog.~) '\S'),
    -- sql steps: the database to run in (NULL: the extension's database).
    database        name,
    -- remote_sql steps: a libpq connection string (passwords belong in the
    -- agent's ~/.pgpass or service file, not here).
    connection      text,
    -- shell steps: which shell runs the code (NULL: the agent's default).
    shell           text CHECK (shell IN ('sh', 'bash', 'cmd', 'powershell')),
    success_codes   integer[] NOT NULL DEFAULT '{0}',
    on_success      text NOT NULL DEFAULT 'next' CHECK (on_success IN ('next', 'succeed', 'fail', 'goto')),
    on_success_step bigint,
    on_failure      text NOT NULL DEFAULT 'fail' CHECK (on_failure IN ('next', 'succeed', 'fail', 'goto')),
    on_failure_step bigint,
    retries         integer NOT NULL DEFAULT 0 CHECK (retries BETWEEN 0 AND 1000),
    retry_interval  interval NOT NULL DEFAULT '1 minute' CHECK (retry_interval >= '0'),
    timeout         interval CHECK (timeout > '0'),
    transaction     text NOT NULL DEFAULT 'autocommit' CHECK (transaction IN ('autocommit', 'single')),
    notify_on       text NOT NULL DEFAULT 'never'
                    CHECK (notify_on IN ('never', 'failure', 'success', 'always')),
    notify_to       text[] NOT NULL DEFAULT '{}',
    notify_subject  text,
    notify_body     text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    modified_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    UNIQUE (job_id, name),
    -- Deferrable so that move_step can shift positions in one statement.
    CONSTRAINT step_position_key UNIQUE (job_id, position) DEFERRABLE INITIALLY IMMEDIATE,
    UNIQUE (job_id, id),
    -- A go-to target is a step of the same job.
    FOREIGN KEY (job_id, on_success_step) REFERENCES pgautomator.step (job_id, id),
    FOREIGN KEY (job_id, on_failure_step) REFERENCES pgautomator.step (job_id, id),
    CHECK ((on_success = 'goto') = (on_success_step IS NOT NULL)),
    CHECK ((on_failure = 'goto') = (on_failure_step IS NOT NULL)),
    CHECK (kind <> 'remote_sql' OR connection IS NOT NULL),
    CHECK (kind = 'sql' OR database IS NULL)
);
COMMENT ON TABLE pgautomator.step IS 'Ordered steps of a job with their on-success and on-failure actions.';
CREATE INDEX step_on_success_idx ON pgautomator.step (job_id, on_success_step) WHERE on_success_step IS NOT NULL;
CREATE INDEX step_on_failure_idx ON pgautomator.step (job_id, on_failure_step) WHERE on_failure_step IS NOT NULL;

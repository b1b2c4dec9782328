-- Runs and step runs: the log of everything that ran (DESIGN.md section 5)
-- and, while a run is going, its state machine.
-- States: queued, running, succeeded, failed, stopped, crashed, skipped.

CREATE TABLE pgautomator.run (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id            bigint NOT NULL REFERENCES pgautomator.job ON DELETE CASCADE,
    owner             name NOT NULL,            -- the job's owner, for row-level security
    schedule_id       bigint,                   -- the schedule that fired it (see step_run.agent_id)
    scheduled_at      timestamptz,              -- the fire instant (NULL when started by hand)
    trigger           pgautomator.run_trigger NOT NULL,
    started_by        name,                     -- who started it by hand
    retry_of          bigint REFERENCES pgautomator.run ON DELETE SET NULL,
    start_step_id     bigint,
    state             pgautomator.run_state NOT NULL DEFAULT 'queued',
    queued_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at        timestamptz,
    finished_at       timestamptz,     -- (how long it took: the runs view; not stored, see step_run)
    message           text,
    stop_requested_at timestamptz,
    stop_requested_by name,
    -- how many crash retries led to this run: kept on the run, since purged
    -- history breaks the retry_of chain (the crash_retries bound)
    crash_depth       integer NOT NULL DEFAULT 0
);
COMMENT ON TABLE pgautomator.run IS 'One execution of a job: who or what started it, when, and how it ended (which agent ran it: its step runs say).';
-- A fire instant of a (job, schedule) pair becomes at most one run.
CREATE UNIQUE INDEX run_fire_once_idx ON pgautomator.run (job_id, schedule_id, scheduled_at)
    WHERE trigger = 'schedule';
CREATE INDEX run_job_idx ON pgautomator.run (job_id, id);
-- Active runs by job and state, oldest first: a job's running count and
-- its oldest queued run read their own entries, not the job's queue; the
-- jobs with queued runs are found one probe each (_dispatch_queued).
CREATE INDEX run_active_idx ON pgautomator.run (job_id, state, id) WHERE state IN ('queued', 'running');
-- Runs asked to stop and still running: the dispatcher's pass looks for
-- them at every tick, among however many runs are queued.
CREATE INDEX run_stopping_idx ON pgautomator.run (id) WHERE state = 'running' AND stop_requested_at IS NOT NULL;
CREATE INDEX run_finished_idx ON pgautomator.run (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE pgautomator.step_run (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id        bigint NOT NULL REFERENCES pgautomator.run ON DELETE CASCADE,
    step_id       bigint,        -- (see agent_id; step_name keeps its name)
    step_name     text NOT NULL,
    kind          pgautomator.step_kind NOT NULL,
    attempt       pgautomator.attempt_number NOT NULL DEFAULT 1,
    state         pgautomator.run_state NOT NULL DEFAULT 'queued',
    not_before    timestamptz NOT NULL DEFAULT pg_catalog.now(),   -- retry delay
    -- The agent that claimed it.  History names its step, agent and
    -- schedule by id without foreign keys: ids are never reused, so a
    -- dropped one's history keeps an id that names nothing (the views show
    -- no name; step_name stays).  A foreign key costs every step run a
    -- checking query and a WAL-logged row lock (the database agent's one
    -- row, share-locked by every worker at once), and an index updated at
    -- every change of state, for what only a drop needs.
    agent_id      bigint,
    worker_pid    integer,
    queued_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at    timestamptz,
    finished_at   timestamptz,   -- (how long it took: the step_runs view; a stored
                                 -- generated column costs every update of a step
                                 -- run an expression built and computed again)
    rows_affected bigint,
    sqlstate      text,
    exit_code     integer,
    output        text,          -- bounded; the tail is kept
    messages      text,          -- NOTICE / WARNING lines, bounded
    error         text
);
COMMENT ON TABLE pgautomator.step_run IS 'One attempt of one step within a run, with its output and error.';
CREATE INDEX step_run_run_idx ON pgautomator.step_run (run_id, id);
CREATE INDEX step_run_running_idx ON pgautomator.step_run (agent_id) WHERE state = 'running';

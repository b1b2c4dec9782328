-- Views for people and the UI. security_invoker: row-level security on the
-- tables decides what each caller sees (own jobs, or all for operators).

CREATE VIEW pgautomator.categories WITH (security_invoker = true) AS
SELECT c.id, c.name, c.description,
       (SELECT count(*) FROM pgautomator.job j WHERE j.category_id = c.id) AS jobs
  FROM pgautomator.category c;
COMMENT ON VIEW pgautomator.categories IS 'Job categories with how many (visible) jobs each holds.';

CREATE VIEW pgautomator.jobs WITH (security_invoker = true) AS
SELECT j.id, j.name, j.description, c.name AS category, j.enabled, j.owner, j.run_as, j.agent,
       j.timeout, j.overlap, j.max_parallel, j.misfire, j.misfire_limit, j.retry_on_crash,
       (SELECT count(*) FROM pgautomator.step s WHERE s.job_id = j.id) AS steps,
       (SELECT min(js.next_fire_at) FROM pgautomator.job_schedule js WHERE js.job_id = j.id) AS next_run_at,
       last.state AS last_state, last.started_at AS last_started_at, last.finished_at AS last_finished_at,
       j.notify_on, j.notify_to, j.created_at, j.modified_at
  FROM pgautomator.job j
  LEFT JOIN pgautomator.category c ON c.id = j.category_id
  LEFT JOIN LATERAL (SELECT r.state, r.started_at, r.finished_at FROM pgautomator.run r
                      WHERE r.job_id = j.id ORDER BY r.id DESC LIMIT 1) last ON true;
COMMENT ON VIEW pgautomator.jobs IS 'Jobs with their category, step count, next run and last run.';

CREATE VIEW pgautomator.steps WITH (security_invoker = true) AS
SELECT s.id, s.job_id, j.name AS job, s.position, s.name, s.description, s.enabled, s.kind, s.code,
       s.database, s.connection, s.shell, s.success_codes,
       CASE s.on_success WHEN 'goto' THEN ok.name ELSE s.on_success END AS on_success,
       CASE s.on_failure WHEN 'goto' THEN nok.name ELSE s.on_failure END AS on_failure,
       s.retries, s.retry_interval, s.timeout, s.transaction, s.notify_on, s.notify_to
  FROM pgautomator.step s
  JOIN pgautomator.job j ON j.id = s.job_id
  LEFT JOIN pgautomator.step ok ON ok.id = s.on_success_step
  LEFT JOIN pgautomator.step nok ON nok.id = s.on_failure_step;
COMMENT ON VIEW pgautomator.steps IS 'Steps in order, with go-to actions shown by step name.';

CREATE VIEW pgautomator.runs WITH (security_invoker = true) AS
SELECT r.id, r.job_id, j.name AS job, r.state, r.trigger, sc.name AS schedule, r.scheduled_at,
       r.started_by, a.name AS agent, r.queued_at, r.started_at, r.finished_at,
       r.finished_at - r.started_at AS duration,
       r.message, r.retry_of,
       (SELECT count(*) FROM pgautomator.step_run sr WHERE sr.run_id = r.id) AS step_runs,
       (SELECT count(*) FROM pgautomator.step_run sr WHERE sr.run_id = r.id AND sr.attempt > 1) AS retries
  FROM pgautomator.run r
  JOIN pgautomator.job j ON j.id = r.job_id
  LEFT JOIN pgautomator.schedule sc ON sc.id = r.schedule_id
  -- the agent of its latest claimed step run
  LEFT JOIN LATERAL (SELECT sr.agent_id FROM pgautomator.step_run sr
                      WHERE sr.run_id = r.id AND sr.agent_id IS NOT NULL
                      ORDER BY sr.id DESC LIMIT 1) ra ON true
  LEFT JOIN pgautomator.agent a ON a.id = ra.agent_id;
COMMENT ON VIEW pgautomator.runs IS 'Every run: which job, which schedule or who started it, which agent, when, how it ended.';

CREATE VIEW pgautomator.step_runs WITH (security_invoker = true) AS
SELECT sr.id, sr.run_id, r.job_id, j.name AS job, sr.step_id, sr.step_name AS step, sr.kind, sr.attempt,
       sr.attempt - 1 AS retries, sr.state, a.name AS agent, sr.queued_at, sr.not_before, sr.started_at,
       sr.finished_at, sr.finished_at - sr.started_at AS duration, sr.rows_affected, sr.sqlstate, sr.exit_code, sr.error, sr.messages,
       sr.output
  FROM pgautomator.step_run sr
  JOIN pgautomator.run r ON r.id = sr.run_id
  JOIN pgautomator.job j ON j.id = r.job_id
  LEFT JOIN pgautomator.agent a ON a.id = sr.agent_id;
COMMENT ON VIEW pgautomator.step_runs IS 'Every step attempt with its state, timing, output, messages and error.';

CREATE VIEW pgautomator.agents WITH (security_invoker = true) AS
SELECT a.id, a.name, a.kind, a.host, a.capabilities, a.max_parallel, a.enabled, a.version, a.pid, a.login, a.run_as_roles,
       a.registered_at, a.last_heartbeat,
       coalesce(a.last_heartbeat > pg_catalog.now() - a.heartbeat_timeout, false) AS up,
       (SELECT count(*) FROM pgautomator.step_run sr WHERE sr.agent_id = a.id AND sr.state = 'running') AS running,
       (SELECT string_agg(format('run %s job %s step %s', sr.run_id, j.name, sr.step_name), '; ' ORDER BY sr.id)
          FROM pgautomator.step_run sr
          JOIN pgautomator.run r ON r.id = sr.run_id
          JOIN pgautomator.job j ON j.id = r.job_id
         WHERE sr.agent_id = a.id AND sr.state = 'running') AS doing,
       a.smtp_host IS NOT NULL AS smtp_configured
  FROM pgautomator.agent a;
COMMENT ON VIEW pgautomator.agents IS 'Executors: whether each is up (recent heartbeat) and what it is running now.';

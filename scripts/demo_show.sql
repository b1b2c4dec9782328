-- What make demo shows once the example jobs have run for a while.
\set QUIET on
SET client_min_messages = warning;
\echo Runs so far (newest first):
SELECT id, job, state, trigger, schedule, scheduled_at::time(0) AS due, started_at::time(3) AS started,
       duration, message
  FROM pgautomator.runs ORDER BY id DESC LIMIT 8;
\echo Agents:
SELECT name, kind, up, running, doing FROM pgautomator.agents;

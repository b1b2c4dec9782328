-- E-mail notifications per job and per step. Finishing a run or a step
-- queues a message in an outbox (in the same transaction, so a rolled-back
-- outcome sends nothing); the mailer sends the outbox through the SMTP
-- settings of the database agent (set_agent_smtp), outside the dispatcher's
-- transactions, retrying with backoff when the server is unreachable.

CREATE TABLE pgautomator.mail (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          bigint REFERENCES pgautomator.run ON DELETE CASCADE,
    step_run_id     bigint REFERENCES pgautomator.step_run ON DELETE CASCADE,
    recipients      text[] NOT NULL CHECK (cardinality(recipients) > 0),
    sender          text,
    subject         text NOT NULL,
    body            text NOT NULL,
    state           text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_error      text,
    queued_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    sent_at         timestamptz
);
COMMENT ON TABLE pgautomator.mail IS 'Outbox of notification e-mails about runs and steps.';
CREATE INDEX mail_queued_idx ON pgautomator.mail (next_attempt_at) WHERE state = 'queued';
CREATE INDEX mail_run_idx ON pgautomator.mail (run_id);
-- Purging a step run deletes its mails: without this, a scan of the outbox each.
CREATE INDEX mail_step_run_idx ON pgautomator.mail (step_run_id) WHERE step_run_id IS NOT NULL;

-- Whether an outcome matches a notify_on setting.
CREATE FUNCTION pgautomator._notify_matches(p_notify_on text, p_state text)
RETURNS boolean LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p_notify_on
        WHEN 'always' THEN p_state IN ('succeeded', 'failed', 'stopped', 'crashed')
        WHEN 'success' THEN p_state = 'succeeded'
        WHEN 'failure' THEN p_state IN ('failed', 'crashed')
        ELSE false END
$$;
COMMENT ON FUNCTION pgautomator._notify_matches(text, text) IS 'Whether a final state calls for a notification under a notify_on setting.';

-- Fills {placeholders} of a subject or body template, in one pass: a
-- value that holds "{output}" (an error message may) stays as it is, never
-- expanded again; an unknown placeholder stays as written.
CREATE FUNCTION pgautomator._mail_text(p_template text, p_values jsonb)
RETURNS text LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(string_agg(CASE WHEN t.tok ~ '^\{[a-z_]+\}$' AND p_values ? btrim(t.tok, '{}')
                                    THEN coalesce(p_values ->> btrim(t.tok, '{}'), '')
                                    ELSE t.tok END, '' ORDER BY t.n), '')
      FROM regexp_matches(p_template, '\{[a-z_]+\}|[^{]+|\{', 'g') WITH ORDINALITY AS m(parts, n),
           LATERAL (SELECT m.parts[1] AS tok, m.n) AS t
$$;
COMMENT ON FUNCTION pgautomator._mail_text(text, jsonb) IS 'Replaces {name} placeholders in a notification template, in one pass.';

-- A header value on one line: line breaks and other controls (from a
-- template, an error message or a job name) become spaces, so a value can
-- never add headers of its own; at most 250 characters.
CREATE FUNCTION pgautomator._mail_header(p_value text)
RETURNS text LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT left(regexp_replace(p_value, '[[:cntrl:]]+', ' ', 'g'), 250) $$;
COMMENT ON FUNCTION pgautomator._mail_header(text) IS 'Makes a text safe as a one-line e-mail header value.';

-- Queues the job-level notification for a finished run, if its job asks for one.
CREATE FUNCTION pgautomator._queue_run_mail(p_run_id bigint)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run pgautomator.run;
    v_job pgautomator.job;
    v_values jsonb;
BEGIN
    SELECT * INTO v_run FROM pgautomator.run WHERE id = p_run_id;
    SELECT * INTO v_job FROM pgautomator.job WHERE id = v_run.job_id;
    IF NOT FOUND OR cardinality(v_job.notify_to) = 0
       OR NOT pgautomator._notify_matches(v_job.notify_on, v_run.state) THEN
        RETURN;
    END IF;
    v_values := jsonb_build_object(
        'job', v_job.name, 'state', v_run.state, 'run', v_run.id,
        'schedule', (SELECT name FROM pgautomator.schedule WHERE id = v_run.schedule_id),
        'started', v_run.started_at, 'finished', v_run.finished_at,
        'duration', v_run.finished_at - v_run.started_at, 'message', v_run.message);
    INSERT INTO pgautomator.mail (run_id, recipients, sender, subject, body)
    VALUES (v_run.id, v_job.notify_to, v_job.notify_from,
            pgautomator._mail_header(pgautomator._mail_text(
                coalesce(v_job.notify_subject, 'pgautomator: job {job} {state}'), v_values)),
            pgautomator._mail_text(coalesce(v_job.notify_body,
                'Job {job} run {run} {state}.' || E'\n' || 'Started {started}, finished {finished} ({duration}).'
                || E'\n' || 'Schedule: {schedule}' || E'\n' || '{message}'), v_values));
    PERFORM pg_catalog.pg_notify('pgautomator_mail', '');
END
$$;
COMMENT ON FUNCTION pgautomator._queue_run_mail(bigint) IS 'Queues the job notification for a finished run when the job''s notify_on matches.';

-- Queues the step-level notification for a step run's final outcome.
CREATE FUNCTION pgautomator._queue_step_mail(p_step_run_id bigint)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sr pgautomator.step_run;
    v_step pgautomator.step;
    v_job pgautomator.job;
    v_values jsonb;
BEGIN
    SELECT * INTO v_sr FROM pgautomator.step_run WHERE id = p_step_run_id;
    SELECT * INTO v_step FROM pgautomator.step WHERE id = v_sr.step_id;
    IF NOT FOUND OR cardinality(v_step.notify_to) = 0
       OR NOT pgautomator._notify_matches(v_step.notify_on, v_sr.state) THEN
        RETURN;
    END IF;
    SELECT * INTO v_job FROM pgautomator.job WHERE id = v_step.job_id;
    v_values := jsonb_build_object(
        'job', v_job.name, 'step', v_step.name, 'state', v_sr.state, 'run', v_sr.run_id,
        'attempt', v_sr.attempt, 'started', v_sr.started_at, 'finished', v_sr.finished_at,
        'duration', v_sr.finished_at - v_sr.started_at, 'sqlstate', v_sr.sqlstate, 'exit_code', v_sr.exit_code,
        'error', v_sr.error, 'output', right(coalesce(v_sr.output, ''), 4000));
    INSERT INTO pgautomator.mail (run_id, step_run_id, recipients, sender, subject, body)
    VALUES (v_sr.run_id, v_sr.id, v_step.notify_to, v_job.notify_from,
            pgautomator._mail_header(pgautomator._mail_text(
                coalesce(v_step.notify_subject, 'pgautomator: step {step} of job {job} {state}'), v_values)),
            pgautomator._mail_text(coalesce(v_step.notify_body,
                'Step {step} of job {job} (run {run}, attempt {attempt}) {state}.' || E'\n'
                || 'Started {started}, finished {finished} ({duration}).' || E'\n'
                || 'SQLSTATE {sqlstate} exit code {exit_code}' || E'\n' || '{error}' || E'\n' || '{output}'),
                v_values));
    PERFORM pg_catalog.pg_notify('pgautomator_mail', '');
END
$$;
COMMENT ON FUNCTION pgautomator._queue_step_mail(bigint) IS 'Queues the step notification for a step run''s final outcome when the step''s notify_on matches.';

-- Sends up to p_limit queued messages through the database agent's SMTP
-- settings; returns how many it handled (sent, or an attempt recorded).
-- The mailer calls it for one message per transaction, so that a message
-- the server accepted is marked sent before the next one goes (a batch
-- rolled back by a crash or an error resent what it had sent). The SMTP
-- session is kept (SD) between calls while it answers, a minute at most.
-- Failures are retried with exponential backoff, five attempts in all; a
-- message that cannot be built, or that the server refuses for good (5xx),
-- fails at once, alone. Standard library only.
CREATE FUNCTION pgautomator._send_mail(p_limit integer DEFAULT 20)
RETURNS integer LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $py$
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

smtp = plpy.execute(
    "SELECT smtp_host, smtp_port, smtp_security, smtp_user, smtp_password, smtp_from "
    "FROM pgautomator.agent WHERE kind = 'database' AND smtp_host IS NOT NULL ORDER BY id LIMIT 1")
if not smtp:
    return 0
cfg = smtp[0]
if "plans" not in SD:
    SD["plans"] = {
        "claim": plpy.prepare(
            "SELECT id, recipients, sender, subject, body FROM pgautomator.mail "
            "WHERE state = 'queued' AND next_attempt_at <= pg_catalog.now() "
            "ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED", ["integer"]),
        "done": plpy.prepare(
            "UPDATE pgautomator.mail SET state = 'sent', sent_at = pg_catalog.now(), "
            "attempts = attempts + 1, last_error = $2 WHERE id = $1", ["bigint", "text"]),
        "failed": plpy.prepare(
            "UPDATE pgautomator.mail SET attempts = attempts + 1, last_error = $2, "
            "state = CASE WHEN attempts + 1 >= 5 THEN 'failed' ELSE 'queued' END, "
            "next_attempt_at = pg_catalog.now() + pg_catalog.make_interval(secs => 30 * 2 ^ attempts) "
            "WHERE id = $1", ["bigint", "text"]),
        "unsendable": plpy.prepare(
            "UPDATE pgautomator.mail SET attempts = attempts + 1, last_error = $2, state = 'failed' "
            "WHERE id = $1", ["bigint", "text"]),
    }
plans = SD["plans"]
rows = plpy.execute(plans["claim"], [p_limit])
if not rows:
    return 0
security = cfg["smtp_security"]
port = cfg["smtp_port"] or {"tls": 465, "starttls": 587}.get(security, 25)
key = (cfg["smtp_host"], port, security, cfg["smtp_user"], cfg["smtp_password"])


def drop():
    held = SD.pop("smtp", None)
    if held is not None:
        try:
            held[1].close()
        except Exception:
            pass


def session():
    held = SD.get("smtp")
    if held is not None and held[0] == key and time.monotonic() - held[2] < 60:
        try:
            if held[1].noop()[0] == 250:
                return held[1]
        except Exception:
            pass
    drop()
    if security == "tls":
        server = smtplib.SMTP_SSL(cfg["smtp_host"], port, timeout=10, context=ssl.create_default_context())
    else:
        server = smtplib.SMTP(cfg["smtp_host"], port, timeout=10)
        if security == "starttls":
            server.starttls(context=ssl.create_default_context())
    if cfg["smtp_user"]:
        server.login(cfg["smtp_user"], cfg["smtp_password"] or "")
    SD["smtp"] = [key, server, time.monotonic()]
    return server


def permanent(exc):
    """A refusal no retry changes: every code 5xx."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
    else:
        codes = [getattr(exc, "smtp_code", 0)]
    return bool(codes) and all(500 <= code < 600 for code in codes)


handled = 0
for row in rows:
    handled += 1
    try:
        msg = EmailMessage()
        msg["From"] = row["sender"] or cfg["smtp_from"] or "pgautomator@localhost"
        msg["To"] = ", ".join(row["recipients"])
        # (one line: Unicode's line separators too, which Python refuses)
        msg["Subject"] = " ".join(row["subject"].splitlines())
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = make_msgid(domain="pgautomator")
        msg.set_content(row["body"])
    except Exception as exc:
        # A message that cannot be built never will be: it fails alone.
        plpy.execute(plans["unsendable"], [row["id"], "cannot build the message: %s" % exc])
        continue
    try:
        server = session()
    except Exception as exc:
        drop()
        plpy.execute(plans["failed"], [row["id"], "SMTP connection: %s" % exc])
        continue
    try:
        refused = server.send_message(msg)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        plpy.execute(plans["unsendable" if permanent(exc) else "failed"], [row["id"], str(exc)])
        continue
    except Exception as exc:
        drop()   # (a dropped connection: the next message connects again)
        plpy.execute(plans["failed"], [row["id"], str(exc)])
        continue
    SD["smtp"][2] = time.monotonic()
    plpy.execute(plans["done"], [row["id"], ("refused recipients: %s" % ", ".join(sorted(refused))) if refused else None])
return handled
$py$;
COMMENT ON FUNCTION pgautomator._send_mail(integer) IS 'Sends queued notification e-mails through the database agent''s SMTP settings, each failing alone; returns how many it handled (sent or attempted).';

CREATE VIEW pgautomator.mails WITH (security_invoker = true) AS
SELECT m.id, m.run_id, r.job_id, m.step_run_id, m.recipients, m.subject, m.state, m.attempts,
       m.last_error, m.queued_at, m.sent_at
  FROM pgautomator.mail m
  JOIN pgautomator.run r ON r.id = m.run_id;
COMMENT ON VIEW pgautomator.mails IS 'Notification e-mails about the caller''s visible runs and whether they were sent.';

"""Notification e-mails: queued when a run or step ends as its settings ask,
and sent by the mailer background worker to a real SMTP server through the
database agent's SMTP settings."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller

from conftest import scalar, wait_until


class _Inbox:
    """A real SMTP server's handler: keeps what it accepts; refuses, for
    good, the recipients in `refuse`."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def database_agent(admin: psycopg.Connection) -> str:
    """The in-database agent, registered by the launcher when it starts."""

    def registered() -> bool:
        return admin.execute("SELECT FROM pgautomator.agent WHERE name = 'database'").fetchone() is not None

    wait_until("the launcher to register the database agent", registered)
    return "database"


@pytest.fixture
def inbox(admin: psycopg.Connection, database_agent: str) -> Iterator[_Inbox]:
    handler = _Inbox()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    admin.execute(
        "SELECT pgautomator.set_agent_smtp(%s, '127.0.0.1', %s, security => 'none',"
        " sender => 'scheduler@example.com')",
        (database_agent, port),
    )
    yield handler
    admin.execute("SELECT pgautomator.set_agent_smtp(%s, NULL)", (database_agent,))
    controller.stop()


def _run_to_end(admin: psycopg.Connection, job: str) -> int:
    row = admin.execute("SELECT pgautomator.start_job(%s)", (job,)).fetchone()
    assert row is not None
    run = int(row[0])

    def ended() -> bool:
        state = admin.execute("SELECT state FROM pgautomator.run WHERE id = %s", (run,)).fetchone()
        return state is not None and state[0] not in ("queued", "running")

    wait_until(f"run {run} to end", ended)
    return run


def test_job_mail_on_failure_only(admin: psycopg.Connection, inbox: _Inbox) -> None:
    job = f"mail-{uuid.uuid4().hex[:8]}"
    admin.execute(
        "SELECT pgautomator.create_job(%s, notify_on => 'failure',"
        " notify_to => ARRAY['dba@example.com', 'ops@example.com'], notify_subject => '[{state}] {job}')",
        (job,),
    )
    admin.execute("SELECT pgautomator.add_step(%s, 'check', 'SELECT 1/0')", (job,))
    ok_job = f"{job}-ok"
    admin.execute(
        "SELECT pgautomator.create_job(%s, notify_on => 'failure', notify_to => ARRAY['dba@example.com'])",
        (ok_job,),
    )
    admin.execute("SELECT pgautomator.add_step(%s, 'check', 'SELECT 1')", (ok_job,))
    _run_to_end(admin, ok_job)
    run = _run_to_end(admin, job)
    wait_until("the failure e-mail", lambda: len(inbox.messages) >= 1)
    msg = inbox.messages[0]
    assert msg["Subject"] == f"[failed] {job}"
    assert msg["To"] == "dba@example.com, ops@example.com"
    assert msg["From"] == "scheduler@example.com"
    assert f"Job {job} run {run} failed." in str(msg.get_payload())
    sent = admin.execute("SELECT state, attempts FROM pgautomator.mails WHERE run_id = %s", (run,)).fetchone()
    assert sent == ("sent", 1)
    # The succeeded run of the other job queued nothing.
    assert admin.execute(
        "SELECT count(*) FROM pgautomator.mail m JOIN pgautomator.run r ON r.id = m.run_id"
        " JOIN pgautomator.job j ON j.id = r.job_id WHERE j.name = %s",
        (ok_job,),
    ).fetchone() == (0,)
    assert len(inbox.messages) == 1
    admin.execute("SELECT pgautomator.drop_job(%s)", (job,))
    admin.execute("SELECT pgautomator.drop_job(%s)", (ok_job,))


def test_step_mail_names_the_step_and_error(admin: psycopg.Connection, inbox: _Inbox) -> None:
    job = f"mail-{uuid.uuid4().hex[:8]}"
    admin.execute("SELECT pgautomator.create_job(%s)", (job,))
    admin.execute(
        "SELECT pgautomator.add_step(%s, 'divide', 'SELECT 1/0', notify_on => 'failure',"
        " notify_to => ARRAY['dev@example.com'])",
        (job,),
    )
    _run_to_end(admin, job)
    wait_until("the step e-mail", lambda: len(inbox.messages) >= 1)
    msg = inbox.messages[0]
    assert msg["Subject"] == f"pgautomator: step divide of job {job} failed"
    body = str(msg.get_payload())
    assert "SQLSTATE 22012" in body
    assert "division by zero" in body
    admin.execute("SELECT pgautomator.drop_job(%s)", (job,))


def test_a_refusal_for_good_fails_its_mail_alone(admin: psycopg.Connection, inbox: _Inbox) -> None:
    # A 5xx for every recipient: the mail fails at once (five retries would
    # change nothing); a 5xx for some: sent to the others, saying so.
    inbox.refuse = {"gone@example.com"}
    jobs = [f"mail-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for job, to in zip(jobs, (["gone@example.com"], ["gone@example.com", "dba@example.com"]), strict=True):
        admin.execute(
            "SELECT pgautomator.create_job(%s, notify_on => 'always', notify_to => %s)",
            (job, to),
        )
        admin.execute("SELECT pgautomator.add_step(%s, 'ok', 'SELECT 1')", (job,))
    runs = [_run_to_end(admin, job) for job in jobs]

    def outcomes() -> list[tuple[Any, ...]] | None:
        rows = admin.execute(
            "SELECT state, attempts, last_error FROM pgautomator.mail WHERE run_id = ANY(%s) ORDER BY run_id",
            (runs,),
        ).fetchall()
        return rows if len(rows) == 2 and all(r[0] != "queued" for r in rows) else None

    refused, partly = wait_until("both mails handled", outcomes)
    assert refused[:2] == ("failed", 1) and "550" in refused[2]
    assert partly == ("sent", 1, "refused recipients: gone@example.com")
    assert [m["To"] for m in inbox.messages] == ["gone@example.com, dba@example.com"]
    for job in jobs:
        admin.execute("SELECT pgautomator.drop_job(%s)", (job,))


def test_a_line_separator_in_an_error_still_makes_a_subject(admin: psycopg.Connection, inbox: _Inbox) -> None:
    # U+2028 is no control character, but Python refuses it in a header:
    # the mail failed ("cannot build the message").
    job = f"mail-{uuid.uuid4().hex[:8]}"
    admin.execute("SELECT pgautomator.create_job(%s)", (job,))
    code = "DO $$ BEGIN RAISE EXCEPTION 'one%two', chr(8232); END $$"
    admin.execute(
        "SELECT pgautomator.add_step(%s, 'raise', %s, notify_on => 'failure',"
        " notify_to => ARRAY['dev@example.com'], notify_subject => 'failed: {error}')",
        (job, code),
    )
    _run_to_end(admin, job)
    wait_until("the step e-mail", lambda: len(inbox.messages) >= 1)
    subject = " ".join(str(inbox.messages[0]["Subject"]).split())  # (unfolded)
    assert subject.startswith("failed: one two"), subject
    admin.execute("SELECT pgautomator.drop_job(%s)", (job,))


def test_unreachable_server_is_retried_with_backoff(admin: psycopg.Connection, database_agent: str) -> None:
    admin.execute(
        "SELECT pgautomator.set_agent_smtp(%s, '127.0.0.1', %s, security => 'none')",
        (database_agent, _free_port()),  # nothing listens there
    )
    job = f"mail-{uuid.uuid4().hex[:8]}"
    admin.execute(
        "SELECT pgautomator.create_job(%s, notify_on => 'always', notify_to => ARRAY['a@example.com'])",
        (job,),
    )
    admin.execute("SELECT pgautomator.add_step(%s, 'ok', 'SELECT 1')", (job,))
    run = _run_to_end(admin, job)

    def attempted() -> bool:
        row = admin.execute("SELECT attempts FROM pgautomator.mail WHERE run_id = %s", (run,)).fetchone()
        return row is not None and row[0] >= 1

    wait_until("a delivery attempt", attempted)
    row = admin.execute(
        "SELECT state, last_error LIKE 'SMTP connection:%%', next_attempt_at > now()"
        " FROM pgautomator.mail WHERE run_id = %s",
        (run,),
    ).fetchone()
    assert row == ("queued", True, True)
    admin.execute("SELECT pgautomator.set_agent_smtp(%s, NULL)", (database_agent,))
    admin.execute("SELECT pgautomator.drop_job(%s)", (job,))


def test_a_broken_message_never_holds_back_the_others(admin: psycopg.Connection, inbox: _Inbox) -> None:
    job = f"mail-{uuid.uuid4().hex[:8]}"
    admin.execute(
        "SELECT pgautomator.create_job(%s, notify_on => 'always', notify_to => ARRAY['dba@example.com'],"
        " notify_subject => E'[{state}]\\nBcc: evil@example.com')",
        (job,),
    )
    admin.execute("SELECT pgautomator.add_step(%s, 'ok', 'SELECT 1')", (job,))
    # A message no API path can make any more (a header-breaking sender),
    # written directly, queued before the good one.
    admin.execute(
        "INSERT INTO pgautomator.mail (recipients, sender, subject, body)"
        " VALUES (ARRAY['a@example.com'], E'x@example.com\\nBcc: evil@example.com', 'broken', 'broken')"
    )
    run = _run_to_end(admin, job)
    wait_until("the good e-mail", lambda: len(inbox.messages) >= 1)
    msg = inbox.messages[0]
    assert msg["Subject"] == "[succeeded] Bcc: evil@example.com"  # one line: no header of its own
    assert msg["Bcc"] is None
    assert admin.execute("SELECT state FROM pgautomator.mail WHERE run_id = %s", (run,)).fetchone() == (
        "sent",
    )
    broken = admin.execute(
        "SELECT state, last_error FROM pgautomator.mail WHERE subject = 'broken'"
    ).fetchone()
    assert broken is not None and broken[0] == "failed" and "cannot build the message" in broken[1]
    admin.execute("DELETE FROM pgautomator.mail WHERE subject = 'broken'")
    admin.execute("SELECT pgautomator.drop_job(%s)", (job,))


def test_the_mailer_calls_the_sender_only_when_an_email_is_due(
    admin: psycopg.Connection, inbox: _Inbox, setting: Callable[[str, str], None]
) -> None:
    """Every NOTIFY in the database wakes the mailer (the launcher's own
    too): it first looks for a due e-mail and calls the PL/Python sender
    only when one is due."""
    setting("track_functions", "pl")
    admin.execute("DELETE FROM pgautomator.mail WHERE state = 'queued'")  # left by other tests

    def calls() -> int:
        sql = (
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions"
            " WHERE schemaname = 'pgautomator' AND funcname = '_send_mail'"
        )
        return int(scalar(admin, sql))

    def probes() -> int:
        """Reads of the mail table, by index or not (its plan depends on its
        statistics): only the mailer reads it meanwhile."""
        sql = (
            "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables"
            " WHERE relid = 'pgautomator.mail'::regclass"
        )
        return int(scalar(admin, sql))

    def woken(check: Callable[[], bool]) -> Callable[[], bool]:
        """check(), after waking the mailer once more (its statistics reach
        the view at its next pass a second after the last)."""

        def poll() -> bool:
            admin.execute("NOTIFY pgautomator_mail")
            return check()

        return poll

    # The sender runs for a due e-mail, and the mailer's calls are counted
    # (from here: the counts add up over the cluster's life).
    before = calls()
    job = f"mail-{uuid.uuid4().hex[:8]}"
    admin.execute(
        "SELECT pgautomator.create_job(%s, notify_on => 'failure', notify_to => ARRAY['dba@example.com'])",
        (job,),
    )
    admin.execute("SELECT pgautomator.add_step(%s, 'check', 'SELECT 1/0')", (job,))
    try:
        _run_to_end(admin, job)
        wait_until("the failure e-mail", lambda: len(inbox.messages) >= 1)
        wait_until("the sender's call counted", woken(lambda: calls() >= before + 1))
        # With nothing due, the mailer wakes and looks, and calls nothing.
        sent_calls, looked = calls(), probes()
        wait_until("the mailer to look three more times", woken(lambda: probes() >= looked + 3))
        assert calls() == sent_calls, "the mailer called the sender with no e-mail due"
    finally:
        admin.execute("SELECT pgautomator.drop_job(%s)", (job,))

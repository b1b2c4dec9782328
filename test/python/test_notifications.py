"""Notification e-mails: queued when a run or step ends as its settings ask,
sent for real to an SMTP server through the database agent's settings."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def inbox() -> Iterator[tuple[_Inbox, int]]:
    handler = _Inbox()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def _smtp(admin: psycopg.Connection, port: int) -> None:
    # Fixture data written directly: the SMTP settings of the database agent.
    admin.execute(
        """INSERT INTO pgautomator.agent
                  (name, kind, capabilities, smtp_host, smtp_port, smtp_security, smtp_from)
           VALUES ('database', 'database', '{sql}', '127.0.0.1', %s, 'none', 'scheduler@example.com')
           ON CONFLICT (name) DO UPDATE SET smtp_host = excluded.smtp_host, smtp_port = excluded.smtp_port,
                                            smtp_security = 'none', smtp_from = excluded.smtp_from""",
        (port,),
    )


def _finished_run(admin: psycopg.Connection, job: str, state: str) -> int:
    row = admin.execute(
        """INSERT INTO pgautomator.run (job_id, owner, trigger, state, started_at, finished_at, message)
           SELECT id, owner, 'manual', %s, now() - interval '5 seconds', now(), 'it ended'
             FROM pgautomator.job WHERE name = %s RETURNING id""",
        (state, job),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_failure_mail_is_sent_and_success_is_not(
    admin: psycopg.Connection, inbox: tuple[_Inbox, int]
) -> None:
    handler, port = inbox
    _smtp(admin, port)
    job = f"mail-{uuid.uuid4().hex[:8]}"
    admin.execute(
        "SELECT pgautomator.create_job(%s, notify_on => 'failure',"
        " notify_to => ARRAY['dba@example.com', 'ops@example.com'], notify_subject => '[{state}] {job}')",
        (job,),
    )
    ok_run = _finished_run(admin, job, "succeeded")
    bad_run = _finished_run(admin, job, "failed")
    admin.execute("SELECT pgautomator._queue_run_mail(%s)", (ok_run,))
    admin.execute("SELECT pgautomator._queue_run_mail(%s)", (bad_run,))
    assert admin.execute("SELECT pgautomator._send_mail()").fetchone() == (1,)
    assert len(handler.messages) == 1
    msg = handler.messages[0]
    assert msg["Subject"] == f"[failed] {job}"
    assert msg["To"] == "dba@example.com, ops@example.com"
    assert msg["From"] == "scheduler@example.com"
    assert f"Job {job} run {bad_run} failed." in msg.get_payload()
    state = admin.execute(
        "SELECT state, attempts FROM pgautomator.mail WHERE run_id = %s", (bad_run,)
    ).fetchone()
    assert state == ("sent", 1)
    admin.execute("SELECT pgautomator.drop_job(%s)", (job,))


def test_unreachable_server_is_retried_with_backoff(admin: psycopg.Connection) -> None:
    _smtp(admin, _free_port())  # nothing listens there
    job = f"mail-{uuid.uuid4().hex[:8]}"
    admin.execute(
        "SELECT pgautomator.create_job(%s, notify_on => 'always', notify_to => ARRAY['a@example.com'])",
        (job,),
    )
    run = _finished_run(admin, job, "succeeded")
    admin.execute("SELECT pgautomator._queue_run_mail(%s)", (run,))
    assert admin.execute("SELECT pgautomator._send_mail()").fetchone() == (0,)
    row = admin.execute(
        "SELECT state, attempts, last_error LIKE 'SMTP connection:%%', next_attempt_at > now()"
        " FROM pgautomator.mail WHERE run_id = %s",
        (run,),
    ).fetchone()
    assert row == ("queued", 1, True, True)
    admin.execute("SELECT pgautomator.drop_job(%s)", (job,))

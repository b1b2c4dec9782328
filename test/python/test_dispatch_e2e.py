"""The dispatcher with the preloaded launcher: schedules fire and their steps
run in order, each fire instant exactly once per schedule, retries wait
their delay, and agents are woken when a retry becomes ready."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conftest import DEADLINE, scalar, wait_until


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def launcher(admin: psycopg.Connection) -> None:
    """These tests need the launcher (preloaded by the harness) running."""
    wait_until(
        "the pgautomator launcher",
        lambda: scalar(
            admin, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgautomator launcher'"
        ),
    )


@pytest.fixture
def cleanup(admin: psycopg.Connection) -> Iterator[list[str]]:
    """SQL statements run after the test (dropping what it made), in reverse."""
    todo: list[str] = []
    yield todo
    for sql in reversed(todo):
        admin.execute(sql)


def every_second(admin: psycopg.Connection, cleanup: list[str]) -> str:
    name = _name("sec")
    admin.execute(
        "SELECT pgautomator.create_schedule(%s, 'daily', every_n => 1, every_unit => 'second',"
        " timezone => 'UTC')",
        (name,),
    )
    cleanup.append(f"SELECT pgautomator.drop_schedule('{name}', force => true)")
    return name


def make_job(admin: psycopg.Connection, cleanup: list[str], **args: Any) -> int:
    name = _name("e2e")
    named = "".join(f", {k} => %({k})s" for k in args)
    row = admin.execute(
        f"SELECT pgautomator.create_job(%(name)s, run_as => 'postgres'{named})", {"name": name, **args}
    ).fetchone()
    assert row is not None
    job_id = int(row[0])
    cleanup.append(f"DELETE FROM pgautomator.job WHERE id = {job_id}")
    return job_id


@pytest.fixture
def table(admin: psycopg.Connection) -> Iterator[str]:
    name = f"public.e2e_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE TABLE {name} (run bigint, step text, at timestamptz DEFAULT clock_timestamp())")
    yield name
    admin.execute(f"DROP TABLE {name}")


def test_a_schedule_fires_and_its_steps_run_in_order(
    admin: psycopg.Connection, cleanup: list[str], table: str
) -> None:
    job = make_job(admin, cleanup)
    for step in ("first", "second", "third"):
        admin.execute(
            "SELECT pgautomator.add_step(%s, %s, %s)",
            (job, step, f"INSERT INTO {table} (step) VALUES ('{step}')"),
        )
    schedule = every_second(admin, cleanup)
    admin.execute("SELECT pgautomator.attach_schedule(%s, %s)", (job, schedule))
    run = wait_until(
        "a scheduled run to succeed",
        lambda: admin.execute(
            "SELECT id, schedule_id, scheduled_at FROM pgautomator.run"
            " WHERE job_id = %s AND trigger = 'schedule' AND state = 'succeeded' ORDER BY id LIMIT 1",
            (job,),
        ).fetchone(),
    )
    admin.execute("SELECT pgautomator.detach_schedule(%s, %s)", (job, schedule))
    assert run[1] == scalar(admin, "SELECT id FROM pgautomator.schedule WHERE name = %s", (schedule,))
    assert run[2] is not None
    steps = admin.execute(
        "SELECT step_name, state FROM pgautomator.step_run WHERE run_id = %s ORDER BY id", (run[0],)
    ).fetchall()
    assert steps == [("first", "succeeded"), ("second", "succeeded"), ("third", "succeeded")]
    started = admin.execute(
        "SELECT started_at FROM pgautomator.step_run WHERE run_id = %s ORDER BY id", (run[0],)
    ).fetchall()
    assert [s[0] for s in started] == sorted(s[0] for s in started)


def test_two_schedules_one_instant_two_runs_never_two_per_schedule(
    admin: psycopg.Connection, cleanup: list[str]
) -> None:
    job = make_job(admin, cleanup, overlap="parallel", max_parallel=10)
    admin.execute("SELECT pgautomator.add_step(%s, 'only', 'SELECT 1')", (job,))
    first, second = every_second(admin, cleanup), every_second(admin, cleanup)
    admin.execute("SELECT pgautomator.attach_schedule(%s, %s)", (job, first))
    admin.execute("SELECT pgautomator.attach_schedule(%s, %s)", (job, second))
    # Wait for three instants that both schedules fired.
    wait_until(
        "three instants fired by both schedules",
        lambda: (
            scalar(
                admin,
                "SELECT count(*) FROM (SELECT scheduled_at FROM pgautomator.run WHERE job_id = %s"
                " GROUP BY scheduled_at HAVING count(DISTINCT schedule_id) = 2) x",
                (job,),
            )
            >= 3
        ),
    )
    admin.execute("SELECT pgautomator.detach_schedule(%s, %s)", (job, first))
    admin.execute("SELECT pgautomator.detach_schedule(%s, %s)", (job, second))
    per_pair = admin.execute(
        "SELECT schedule_id, scheduled_at, count(*) FROM pgautomator.run WHERE job_id = %s"
        " GROUP BY schedule_id, scheduled_at",
        (job,),
    ).fetchall()
    assert per_pair and all(n == 1 for _, _, n in per_pair), "one schedule started two runs for one instant"
    per_instant = admin.execute(
        "SELECT scheduled_at, count(*) FROM pgautomator.run WHERE job_id = %s GROUP BY scheduled_at", (job,)
    ).fetchall()
    assert all(n <= 2 for _, n in per_instant)
    assert sum(1 for _, n in per_instant if n == 2) >= 3


def test_retries_wait_their_delay(admin: psycopg.Connection, cleanup: list[str], table: str) -> None:
    job = make_job(admin, cleanup)
    # Fails on its first attempt (one row so far), succeeds on the second.
    admin.execute(
        "SELECT pgautomator.add_step(%s, 'flaky', %s, retries => 2, retry_interval => '2 seconds')",
        (job, f"INSERT INTO {table} (step) VALUES ('try'); SELECT 1 / (count(*) - 1) FROM {table}"),
    )
    run = int(scalar(admin, "SELECT pgautomator.start_job(%s::bigint)", (job,)))
    wait_until(
        "the run to end",
        lambda: (
            scalar(admin, "SELECT state FROM pgautomator.run WHERE id = %s", (run,))
            not in ("queued", "running")
        ),
    )
    attempts = admin.execute(
        "SELECT attempt, state, sqlstate, started_at, finished_at, not_before FROM pgautomator.step_run"
        " WHERE run_id = %s ORDER BY id",
        (run,),
    ).fetchall()
    assert [(a[0], a[1], a[2]) for a in attempts] == [(1, "failed", "22012"), (2, "succeeded", None)]
    # The retry was not started before its delay had passed.
    assert attempts[1][5] >= attempts[0][4] + datetime.timedelta(seconds=2)
    assert attempts[1][3] >= attempts[1][5]
    assert scalar(admin, "SELECT state FROM pgautomator.run WHERE id = %s", (run,)) == "succeeded"


def test_agents_are_woken_when_a_retry_delay_ends(
    admin: psycopg.Connection, dsn: str, cleanup: list[str]
) -> None:
    agent_name = _name("waker")
    agent = int(
        scalar(
            admin, "SELECT pgautomator.agent_register_v1(%s, 'test', '{shell}', 4, 'test', 1)", (agent_name,)
        )
    )
    cleanup.append(f"SELECT pgautomator.drop_agent({agent}::bigint)")
    job = make_job(admin, cleanup, agent=agent_name)
    admin.execute(
        "SELECT pgautomator.add_step(%s, 'sh', 'false', kind => 'shell', retries => 1,"
        " retry_interval => '2 seconds')",
        (job,),
    )
    run = int(scalar(admin, "SELECT pgautomator.start_job(%s::bigint)", (job,)))
    first = wait_until(
        "the agent to claim the first attempt",
        lambda: admin.execute(
            "SELECT step_run_id FROM pgautomator.agent_claim_v1(%s, 1)", (agent,)
        ).fetchone(),
    )
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN pgautomator_wake")
        admin.execute(
            "SELECT pgautomator.agent_report_v1(%s, %s, false, 1, NULL, NULL, 'exit 1', NULL)",
            (agent, first[0]),
        )
        not_before = scalar(
            admin, "SELECT not_before FROM pgautomator.step_run WHERE run_id = %s AND attempt = 2", (run,)
        )
        payloads: list[str] = []
        end = time.monotonic() + DEADLINE
        while "retry" not in payloads and time.monotonic() < end:
            payloads.extend(n.payload for n in listener.notifies(timeout=1.0, stop_after=1))
        assert "retry" in payloads, f"no wake-up for the retry; got {payloads}"
        # The wake-up came when the retry was ready: the agent can claim it now.
        assert scalar(admin, "SELECT now() >= %s", (not_before,))
        second = admin.execute(
            "SELECT step_run_id, attempt FROM pgautomator.agent_claim_v1(%s, 1)", (agent,)
        ).fetchone()
        assert second is not None and second[1] == 2
        admin.execute(
            "SELECT pgautomator.agent_report_v1(%s, %s, true, 0, NULL, NULL, NULL, NULL)", (agent, second[0])
        )
    assert scalar(admin, "SELECT state FROM pgautomator.run WHERE id = %s", (run,)) == "succeeded"

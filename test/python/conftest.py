"""Fixtures for the integration tests: connections to the private cluster
that scripts/test.sh started (PGHOST, PGPORT, PGDATABASE, PGUSER are set)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest


def _dsn(**overrides: str) -> str:
    params = {
        "host": os.environ.get("PGHOST", "localhost"),
        "port": os.environ.get("PGPORT", "5432"),
        "dbname": os.environ.get("PGDATABASE", "pgautomator_test"),
        "user": os.environ.get("PGUSER", "postgres"),
    }
    params.update(overrides)
    return " ".join(f"{k}={v}" for k, v in params.items())


@pytest.fixture
def dsn() -> str:
    """Connection string of the superuser in the test database."""
    return _dsn()


@pytest.fixture
def admin() -> Iterator[psycopg.Connection]:
    """An autocommit superuser connection."""
    with psycopg.connect(_dsn(), autocommit=True) as conn:
        yield conn


@pytest.fixture
def make_role(admin: psycopg.Connection) -> Iterator[Callable[..., str]]:
    """Creates LOGIN roles (optionally in pgautomator groups) and drops them,
    with everything they own in pgautomator, after the test."""
    created: list[str] = []

    def make(*groups: str) -> str:
        name = f"t_{uuid.uuid4().hex[:10]}"
        admin.execute(f'CREATE ROLE "{name}" LOGIN')
        for group in groups:
            admin.execute(f'GRANT "{group}" TO "{name}"')
        created.append(name)
        return name

    yield make
    for name in created:
        admin.execute("DELETE FROM pgautomator.job WHERE owner = %s OR run_as = %s", (name, name))
        admin.execute("DELETE FROM pgautomator.schedule WHERE owner = %s", (name,))
        admin.execute(f'DROP ROLE "{name}"')


def connect_as(role: str, autocommit: bool = True) -> psycopg.Connection:
    """A connection whose session user is the given role."""
    return psycopg.connect(_dsn(user=role), autocommit=autocommit)


# Deadlines are generous on purpose: they bound a failing test, never pace a passing one.
DEADLINE = 90.0


def wait_until(what: str, check: Callable[[], Any], deadline: float = DEADLINE) -> Any:
    """Polls check() until it returns something truthy, and returns that;
    fails the test after deadline seconds."""
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def scalar(conn: psycopg.Connection, sql: str, params: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row of a query."""
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


# --- jobs with steps, run by the launcher (in-database executor tests) ---

FINISHED = ("succeeded", "failed", "stopped", "crashed", "skipped")


def run_state(admin: psycopg.Connection, run_id: int) -> str:
    row = admin.execute("SELECT state FROM pgautomator.run WHERE id = %s", (run_id,)).fetchone()
    assert row is not None
    return str(row[0])


def wait_run(admin: psycopg.Connection, run_id: int) -> str:
    """Waits until the run has ended and returns its state."""
    return str(wait_until(f"run {run_id} to end", lambda: (s := run_state(admin, run_id)) in FINISHED and s))


def step_runs(admin: psycopg.Connection, run_id: int) -> list[dict[str, Any]]:
    cur = admin.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(
        "SELECT step_name, state, sqlstate, error, messages, output, rows_affected, worker_pid"
        " FROM pgautomator.step_run WHERE run_id = %s ORDER BY id",
        (run_id,),
    ).fetchall()


@pytest.fixture
def job(admin: psycopg.Connection) -> Iterator[Callable[..., int]]:
    """Creates jobs with the given steps (dicts of add_step arguments) and drops them."""
    made: list[int] = []

    def make(*steps: dict[str, Any], **job_args: Any) -> int:
        name = f"w_{uuid.uuid4().hex[:10]}"
        names = ", ".join(f"{k} => %({k})s" for k in job_args)
        sql = f"SELECT pgautomator.create_job(%(name)s{', ' + names if names else ''})"
        row = admin.execute(sql, {"name": name, **job_args}).fetchone()
        assert row is not None
        job_id = int(row[0])
        made.append(job_id)
        for i, step in enumerate(steps):
            args = {"name": f"s{i + 1}", **step}
            named = ", ".join(f"{k} => %({k})s" for k in args)
            admin.execute(f"SELECT pgautomator.add_step(%(job)s, {named})", {"job": job_id, **args})
        return job_id

    yield make
    for job_id in made:
        admin.execute("DELETE FROM pgautomator.job WHERE id = %s", (job_id,))


@pytest.fixture
def table(admin: psycopg.Connection) -> Iterator[str]:
    """A scratch table (x int, at timestamptz) everyone may write."""
    name = f"wt_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE TABLE public.{name} (x int, at timestamptz DEFAULT clock_timestamp())")
    admin.execute(f"GRANT ALL ON public.{name} TO PUBLIC")
    yield f"public.{name}"
    admin.execute(f"DROP TABLE IF EXISTS public.{name}")


def start(admin: psycopg.Connection, job_id: int) -> int:
    row = admin.execute("SELECT pgautomator.start_job(%s::bigint)", (job_id,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def setting(admin: psycopg.Connection) -> Iterator[Callable[[str, str], None]]:
    """Changes pgautomator settings with ALTER SYSTEM and a reload, undone after the test."""
    changed: list[str] = []

    def change(name: str, value: str) -> None:
        admin.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        admin.execute("SELECT pg_reload_conf()")
        changed.append(name)
        wait_until(f"{name} = {value}", lambda: scalar(admin, f"SHOW {name}") == value)

    yield change
    for name in changed:
        admin.execute(f"ALTER SYSTEM RESET {name}")
    admin.execute("SELECT pg_reload_conf()")


def wait_launcher_disabled(admin: psycopg.Connection) -> None:
    """Waits until the launcher shows it saw pgautomator.enabled = off."""
    wait_until(
        "the launcher to show it is disabled",
        lambda: scalar(
            admin,
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgautomator launcher'"
            " AND query LIKE 'disabled%%'",
        ),
    )


def wait_launcher(admin: psycopg.Connection) -> None:
    """Waits until the launcher is connected (on a fresh cluster it starts
    again a few seconds after its database was created) and its first pass
    has run, so that it prepares the next fire instant ahead."""
    wait_until(
        "the launcher",
        lambda: scalar(
            admin,
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgautomator launcher'"
            " AND query LIKE 'waiting%%'",
        ),
    )


def once_schedule(admin: psycopg.Connection, seconds: int) -> tuple[datetime, int]:
    """A 'once' schedule at a whole second `seconds` or a little less from now."""
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
    schedule = scalar(
        admin,
        "SELECT pgautomator.create_schedule(%s, 'once', on_date => %s, at_time => %s, timezone => 'UTC')",
        (f"once_{uuid.uuid4().hex[:8]}", at.date(), at.time()),
    )
    return at, int(schedule)

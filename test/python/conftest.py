"""Fixtures for the integration tests: connections to the private cluster
that scripts/test.sh started (PGHOST, PGPORT, PGDATABASE, PGUSER are set)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
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

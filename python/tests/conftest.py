"""Fixtures for the tests that need the private cluster of scripts/test.sh
(PGHOST, PGPORT, PGDATABASE, PGUSER are set there); without it they skip."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest


def cluster_params(**overrides: str) -> dict[str, str]:
    params = {
        "host": os.environ.get("PGHOST", "localhost"),
        "port": os.environ.get("PGPORT", "5432"),
        "dbname": os.environ.get("PGDATABASE", "pgautomator_test"),
        "user": os.environ.get("PGUSER", "postgres"),
    }
    params.update(overrides)
    return params


def conninfo(**overrides: str) -> str:
    return " ".join(f"{key}={value}" for key, value in cluster_params(**overrides).items())


@pytest.fixture
def cluster() -> None:
    if "PGAUTOMATOR_TEST_BASE" not in os.environ:
        pytest.skip("needs the test cluster: run through scripts/test.sh (make test)")


@pytest.fixture
def admin(cluster: None) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit superuser connection to the test database."""
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        yield conn


@pytest.fixture
def make_role(admin: psycopg.Connection[Any]) -> Iterator[Callable[..., str]]:
    """Creates LOGIN roles in the given groups; drops them and what they own afterwards."""
    created: list[str] = []

    def make(*groups: str) -> str:
        name = f"t_{uuid.uuid4().hex[:10]}"
        admin.execute(f'CREATE ROLE "{name}" LOGIN'.encode())
        for group in groups:
            admin.execute(f'GRANT "{group}" TO "{name}"'.encode())
        created.append(name)
        return name

    yield make
    for name in created:
        admin.execute(f'DROP OWNED BY "{name}" CASCADE'.encode())
        if admin.execute("SELECT to_regclass('pgautomator.job')").fetchone() != (None,):
            admin.execute("DELETE FROM pgautomator.job WHERE owner = %s OR run_as = %s", (name, name))
            admin.execute("DELETE FROM pgautomator.schedule WHERE owner = %s", (name,))
        admin.execute(f'DROP ROLE "{name}"'.encode())

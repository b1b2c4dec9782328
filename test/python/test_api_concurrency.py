"""API calls from several connections at once keep the data consistent."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg import errors

from conftest import connect_as

WORKERS = 8


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _parallel(fn: Callable[[int], object], n: int = WORKERS) -> list[object]:
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(fn, range(n)))


def test_same_job_name_created_once(admin: psycopg.Connection, dsn: str) -> None:
    name = _name("race")

    def create(_: int) -> str:
        with psycopg.connect(dsn, autocommit=True) as conn:
            try:
                conn.execute("SELECT pgautomator.create_job(%s)", (name,))
                return "created"
            except errors.UniqueViolation as exc:
                assert f'job "{name}" already exists' in str(exc)
                return "duplicate"

    outcomes = _parallel(create)
    assert outcomes.count("created") == 1
    assert outcomes.count("duplicate") == WORKERS - 1
    admin.execute("SELECT pgautomator.drop_job(%s)", (name,))


def test_concurrent_add_step_keeps_positions_dense(admin: psycopg.Connection, dsn: str) -> None:
    job = _name("steps")
    admin.execute("SELECT pgautomator.create_job(%s)", (job,))

    def add(i: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for k in range(5):
                # Half of them insert at the front, which shifts every other step.
                conn.execute(
                    "SELECT pgautomator.add_step(%s, %s, 'SELECT 1', at_position => %s)",
                    (job, f"s{i}-{k}", 1 if i % 2 else None),
                )

    _parallel(add)
    rows = admin.execute(
        "SELECT position FROM pgautomator.steps WHERE job = %s ORDER BY position", (job,)
    ).fetchall()
    assert [r[0] for r in rows] == list(range(1, WORKERS * 5 + 1))
    admin.execute("SELECT pgautomator.drop_job(%s)", (job,))


def test_concurrent_moves_and_drops_stay_consistent(admin: psycopg.Connection, dsn: str) -> None:
    job = _name("moves")
    admin.execute("SELECT pgautomator.create_job(%s)", (job,))
    for i in range(20):
        admin.execute("SELECT pgautomator.add_step(%s, %s, 'SELECT 1')", (job, f"s{i}"))

    def churn(i: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pgautomator.move_step(%s, %s, %s)", (job, f"s{i}", 1 + i % 3))
            conn.execute("SELECT pgautomator.drop_step(%s, %s)", (job, f"s{i + 10}"))

    _parallel(churn)
    rows = admin.execute(
        "SELECT position, name FROM pgautomator.steps WHERE job = %s ORDER BY position", (job,)
    ).fetchall()
    assert [r[0] for r in rows] == list(range(1, 20 - WORKERS + 1))
    assert {r[1] for r in rows} == {f"s{i}" for i in range(20)} - {f"s{i + 10}" for i in range(WORKERS)}
    admin.execute("SELECT pgautomator.drop_job(%s)", (job,))


def test_users_see_only_their_own_jobs(make_role: Callable[..., str]) -> None:
    alice, bob = make_role("pgautomator_user"), make_role("pgautomator_user")
    with connect_as(alice, autocommit=True) as conn:
        conn.execute("SELECT pgautomator.create_job(%s)", (f"{alice}-job",))
    with connect_as(bob, autocommit=True) as conn:
        conn.execute("SELECT pgautomator.create_job(%s)", (f"{bob}-job",))
        names = [r[0] for r in conn.execute("SELECT name FROM pgautomator.jobs").fetchall()]
        assert names == [f"{bob}-job"]
        with pytest.raises(errors.UndefinedObject, match="does not exist"):
            conn.execute("SELECT pgautomator.drop_job(%s)", (f"{alice}-job",))


def test_run_as_requires_membership_and_login(
    make_role: Callable[..., str], admin: psycopg.Connection
) -> None:
    alice, target = make_role("pgautomator_user"), make_role()
    with (
        connect_as(alice, autocommit=True) as conn,
        pytest.raises(errors.InsufficientPrivilege, match=f'run jobs as role "{target}"'),
    ):
        conn.execute("SELECT pgautomator.create_job(%s, run_as => %s)", (_name("j"), target))
    admin.execute(f'GRANT "{target}" TO "{alice}"')
    admin.execute(f'ALTER ROLE "{target}" NOLOGIN')
    with (
        connect_as(alice, autocommit=True) as conn,
        pytest.raises(errors.InvalidParameterValue, match="cannot log in"),
    ):
        conn.execute("SELECT pgautomator.create_job(%s, run_as => %s)", (_name("j"), target))
    admin.execute(f'ALTER ROLE "{target}" LOGIN')
    with connect_as(alice, autocommit=True) as conn:
        conn.execute("SELECT pgautomator.create_job(%s, run_as => %s)", (_name("j"), target))

"""Concurrent claims and dispatcher passes from several connections: no step
run is handed to two claimers, no fire instant becomes two runs.

A preloaded launcher may claim and tick at the same time as these tests;
that only adds one more concurrent claimer, which the assertions allow."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from conftest import wait_launcher_disabled

CLAIMERS = 6
RUNS = 240


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _parallel(fn: Callable[[int], list[int]], n: int = CLAIMERS) -> list[list[int]]:
    barrier = threading.Barrier(n)

    def start(i: int) -> list[int]:
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(start, range(n)))


@pytest.fixture
def job(admin: psycopg.Connection) -> Iterator[Callable[[str], int]]:
    """Creates parallel jobs with one step of a kind and RUNS started runs;
    removes them with their history afterwards."""
    made: list[int] = []

    def make(kind: str) -> int:
        code = "SELECT 1" if kind == "sql" else "true"
        row = admin.execute(
            "SELECT pgautomator.create_job(%s, run_as => 'postgres', overlap => 'parallel',"
            " max_parallel => 1000)",
            (_name("claims"),),
        ).fetchone()
        assert row is not None
        job_id = int(row[0])
        made.append(job_id)
        admin.execute("SELECT pgautomator.add_step(%s, 'only', %s, kind => %s)", (job_id, code, kind))
        admin.execute("SELECT pgautomator.start_job(%s) FROM generate_series(1, %s)", (job_id, RUNS))
        return job_id

    yield make
    for job_id in made:
        admin.execute("DELETE FROM pgautomator.job WHERE id = %s", (job_id,))


CLAIM_SQL = """SELECT c.step_run_id FROM pgautomator._launcher_claim(7) c
                 JOIN pgautomator.step_run sr ON sr.id = c.step_run_id
                 JOIN pgautomator.run r ON r.id = sr.run_id
                WHERE r.job_id = %s"""


def _claimed_twice(claims: list[list[int]]) -> list[int]:
    return [sr for sr, n in Counter(sr for c in claims for sr in c).items() if n > 1]


@pytest.mark.timeout(120)
def test_launcher_claims_never_overlap(
    admin: psycopg.Connection, dsn: str, job: Callable[[str], int], setting: Callable[[str, str], None]
) -> None:
    # The preloaded launcher would run these steps meanwhile: only the
    # claimers of this test take them.
    setting("pgautomator.enabled", "off")
    wait_launcher_disabled(admin)
    job_id = job("sql")
    first_round = threading.Barrier(CLAIMERS)
    # Register the database agent unless a running launcher already did
    # (_launcher_start would crash that launcher's fresh claims).
    admin.execute(
        "SELECT pgautomator._launcher_start(pg_backend_pid()) WHERE pgautomator._database_agent() IS NULL"
    )

    def claim(_: int) -> list[int]:
        got: list[int] = []
        with psycopg.connect(dsn, autocommit=True) as conn:
            with conn.transaction():
                got.extend(int(r[0]) for r in conn.execute(CLAIM_SQL, (job_id,)).fetchall())
                # each holds its first claim until all made one: spread
                first_round.wait(timeout=60)
            while True:
                rows = conn.execute(CLAIM_SQL, (job_id,)).fetchall()
                if not rows:
                    left = conn.execute(
                        """SELECT count(*) FROM pgautomator.step_run sr
                             JOIN pgautomator.run r ON r.id = sr.run_id
                            WHERE r.job_id = %s AND sr.state = 'queued'""",
                        (job_id,),
                    ).fetchone()
                    if left == (0,):
                        return got
                got.extend(int(r[0]) for r in rows)

    claims = _parallel(claim)
    assert _claimed_twice(claims) == []
    assert sum(1 for c in claims if c) > 1, "the claims were not spread over several connections"
    # Every step run claimed here is running, once, on the database agent.
    mine = [sr for c in claims for sr in c]
    row = admin.execute(
        """SELECT count(*) FROM pgautomator.step_run sr JOIN pgautomator.agent a ON a.id = sr.agent_id
            WHERE sr.id = ANY(%s) AND sr.state = 'running' AND a.name = 'database'""",
        (mine,),
    ).fetchone()
    assert row == (len(mine),)
    for sr in mine:
        admin.execute("SELECT pgautomator._launcher_report(%s, true, NULL, NULL, NULL, 1, NULL)", (sr,))


@pytest.mark.timeout(120)
def test_agent_claims_never_overlap(admin: psycopg.Connection, dsn: str, job: Callable[[str], int]) -> None:
    job_id = job("shell")
    first_round = threading.Barrier(CLAIMERS)
    agents = []
    for i in range(CLAIMERS):
        row = admin.execute(
            "SELECT pgautomator.agent_register_v1(%s, 'test', '{shell}', 1000, 'test', %s)",
            (_name(f"claimer{i}"), i),
        ).fetchone()
        assert row is not None
        agents.append(int(row[0]))

    def claim(i: int) -> list[int]:
        got: list[int] = []
        sql = "SELECT step_run_id, job_id FROM pgautomator.agent_claim_v1(%s, 5)"
        with psycopg.connect(dsn, autocommit=True) as conn:
            with conn.transaction():
                got.extend(int(r[0]) for r in conn.execute(sql, (agents[i],)).fetchall() if r[1] == job_id)
                # each holds its first claim until all made one: spread
                first_round.wait(timeout=60)
            while True:
                rows = conn.execute(sql, (agents[i],)).fetchall()
                if not rows:
                    return got
                got.extend(int(r[0]) for r in rows if r[1] == job_id)

    try:
        claims = _parallel(claim)
        assert _claimed_twice(claims) == []
        assert sum(len(c) for c in claims) == RUNS
        assert sum(1 for c in claims if c) > 1, "the claims were not spread over several agents"
        row = admin.execute(
            """SELECT count(DISTINCT sr.id) FROM pgautomator.step_run sr
                 JOIN pgautomator.run r ON r.id = sr.run_id
                WHERE r.job_id = %s AND sr.state = 'running' AND sr.agent_id = ANY(%s)""",
            (job_id, agents),
        ).fetchone()
        assert row == (RUNS,)
        for i, got in enumerate(claims):
            for sr in got:
                admin.execute(
                    "SELECT pgautomator.agent_report_v1(%s, %s, true, 0, NULL, NULL, NULL, NULL)",
                    (agents[i], sr),
                )
    finally:
        admin.execute("DELETE FROM pgautomator.job WHERE id = %s", (job_id,))
        for agent in agents:
            admin.execute("SELECT pgautomator.drop_agent(%s::bigint)", (agent,))


@pytest.mark.timeout(120)
def test_concurrent_ticks_fire_each_instant_once(admin: psycopg.Connection, dsn: str) -> None:
    jobs = 40
    schedule = _name("tick")
    admin.execute(
        "SELECT pgautomator.create_schedule(%s, 'cron', cron => '* * * * *', timezone => 'UTC')", (schedule,)
    )
    job_ids: list[int] = []
    try:
        for i in range(jobs):
            row = admin.execute(
                "SELECT pgautomator.create_job(%s, run_as => 'postgres', overlap => 'parallel',"
                " max_parallel => 10)",
                (_name(f"tick{i}"),),
            ).fetchone()
            assert row is not None
            job_ids.append(int(row[0]))
            admin.execute("SELECT pgautomator.add_step(%s, 'only', 'SELECT 1')", (job_ids[-1],))
            admin.execute("SELECT pgautomator.attach_schedule(%s, %s)", (job_ids[-1], schedule))
        # Make the current minute due for every pair (within misfire_grace), twice over.
        for _ in range(2):
            admin.execute(
                """UPDATE pgautomator.job_schedule SET next_fire_at = date_trunc('minute', now())
                    WHERE job_id = ANY(%s)""",
                (job_ids,),
            )

            def tick(_: int) -> list[int]:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    for _ in range(5):
                        conn.execute("SELECT pgautomator._launcher_tick()")
                return []

            _parallel(tick)
        rows = admin.execute(
            """SELECT job_id, scheduled_at, count(*) FROM pgautomator.run
                WHERE job_id = ANY(%s) AND trigger = 'schedule'
                GROUP BY job_id, scheduled_at""",
            (job_ids,),
        ).fetchall()
        assert all(n == 1 for _, _, n in rows), "a fire instant became more than one run"
        assert {job for job, _, _ in rows} == set(job_ids), "every due pair fired"
    finally:
        for job_id in job_ids:
            admin.execute("DELETE FROM pgautomator.job WHERE id = %s", (job_id,))
        admin.execute("SELECT pgautomator.drop_schedule(%s, force => true)", (schedule,))

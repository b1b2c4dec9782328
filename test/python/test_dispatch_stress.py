"""Starts, stops, reports and dispatcher passes racing on the same jobs:
no error (no deadlock), the overlap limit is never exceeded, every run ends
in a final state and nothing is left half-done."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

SECONDS = 8.0
FINAL = ("succeeded", "failed", "stopped", "crashed", "skipped")


def _scalar(conn: psycopg.Connection, sql: str, params: tuple[object, ...] = ()) -> object:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def _loop(
    errors: list[str], stop: threading.Event, dsn: str, body: Callable[[psycopg.Connection], None]
) -> None:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                body(conn)
    except Exception as exc:  # collected and asserted on
        errors.append(f"{type(exc).__name__}: {exc}")


@pytest.mark.timeout(120)
def test_races_keep_the_state_machine_consistent(admin: psycopg.Connection, dsn: str) -> None:
    jobs: dict[int, int] = {}
    for overlap, limit in (("queue", 1), ("skip", 1), ("parallel", 3)):
        job = int(
            _scalar(  # type: ignore[call-overload]
                admin,
                "SELECT pgautomator.create_job(%s, run_as => 'postgres', overlap => %s, max_parallel => %s)",
                (f"stress_{overlap}_{uuid.uuid4().hex[:6]}", overlap, limit),
            )
        )
        admin.execute("SELECT pgautomator.add_step(%s, 'a', 'SELECT pg_sleep(0.005)')", (job,))
        admin.execute(
            "SELECT pgautomator.add_step(%s, 'b', 'SELECT 1/0', on_failure => 'next', retries => 1,"
            " retry_interval => '0')",
            (job,),
        )
        admin.execute("SELECT pgautomator.add_step(%s, 'c', 'SELECT pg_sleep(0.005)')", (job,))
        jobs[job] = limit
    ids = list(jobs)
    stop = threading.Event()
    errors: list[str] = []
    over: list[str] = []

    def starter(conn: psycopg.Connection) -> None:
        # A few waiting runs per job at most, so that the end drains quickly.
        conn.execute(
            "SELECT pgautomator.start_job(%(job)s::bigint) WHERE (SELECT count(*) FROM pgautomator.run"
            " WHERE job_id = %(job)s AND state IN ('queued', 'running')) < 5",
            {"job": random.choice(ids)},
        )
        time.sleep(0.002)

    def stopper(conn: psycopg.Connection) -> None:
        row = conn.execute(
            "SELECT id FROM pgautomator.run WHERE job_id = ANY(%s) AND state IN ('queued', 'running')"
            " ORDER BY random() LIMIT 1",
            (ids,),
        ).fetchone()
        if row:
            conn.execute("SELECT pgautomator.stop_run(%s)", (row[0],))
        time.sleep(0.01)

    def ticker(conn: psycopg.Connection) -> None:
        conn.execute("SELECT pgautomator._launcher_tick()")
        time.sleep(0.005)

    def watcher(conn: psycopg.Connection) -> None:
        for job, n in conn.execute(
            "SELECT job_id, count(*) FROM pgautomator.run WHERE job_id = ANY(%s) AND state = 'running'"
            " GROUP BY job_id",
            (ids,),
        ).fetchall():
            if n > jobs[job]:
                over.append(f"job {job}: {n} running, limit {jobs[job]}")

    threads = [
        threading.Thread(target=_loop, args=(errors, stop, dsn, body))
        for body in (starter, starter, starter, stopper, ticker, watcher)
    ]
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert over == []
        # Everything drains: the launcher runs what is left.
        end = time.monotonic() + 60
        while _scalar(
            admin,
            "SELECT count(*) FROM pgautomator.run WHERE job_id = ANY(%s) AND state <> ALL(%s)",
            (ids, list(FINAL)),
        ):
            assert time.monotonic() < end, "runs did not drain"
            time.sleep(0.1)
        assert (
            _scalar(admin, "SELECT count(*) > 0 FROM pgautomator.run WHERE job_id = ANY(%s)", (ids,)) is True
        )
        # No step run is left unfinished in an ended run.
        assert (
            _scalar(
                admin,
                "SELECT count(*) FROM pgautomator.step_run sr JOIN pgautomator.run r ON r.id = sr.run_id"
                " WHERE r.job_id = ANY(%s) AND sr.state IN ('queued', 'running')",
                (ids,),
            )
            == 0
        )
        # Every run that ran its steps to the end passed over b's failure and its retry.
        trails = admin.execute(
            "SELECT string_agg(sr.step_name || ':' || sr.state, ' ' ORDER BY sr.id) FROM pgautomator.run r"
            " JOIN pgautomator.step_run sr ON sr.run_id = r.id"
            " WHERE r.job_id = ANY(%s) AND r.state = 'succeeded' GROUP BY r.id",
            (ids,),
        ).fetchall()
        assert trails and all(t[0] == "a:succeeded b:failed b:failed c:succeeded" for t in trails)
        stopped = _scalar(
            admin,
            "SELECT count(*) > 0 FROM pgautomator.run WHERE job_id = ANY(%s) AND state = 'stopped'",
            (ids,),
        )
        assert stopped is True, "the race never stopped a run"
        log = Path(os.environ.get("PGAUTOMATOR_TEST_BASE", "/nonexistent")) / "log" / "server.log"
        if log.exists():
            assert "deadlock detected" not in log.read_text(errors="replace")
    finally:
        stop.set()
        for (run,) in admin.execute(
            "SELECT id FROM pgautomator.run WHERE job_id = ANY(%s) AND state IN ('queued', 'running')", (ids,)
        ).fetchall():
            admin.execute("SELECT pgautomator.stop_run(%s)", (run,))
        for job in ids:
            admin.execute("DELETE FROM pgautomator.job WHERE id = %s", (job,))

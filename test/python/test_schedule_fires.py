"""End to end: a schedule made with the pg_cron-style shorthand fires its job
through the launcher, at the engine's instants."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

DEADLINE = 60.0


def test_schedule_shorthand_fires_at_engine_instants(admin: psycopg.Connection[Any]) -> None:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    table = f"public.ticks_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE TABLE {table} (at timestamptz DEFAULT clock_timestamp())")
    try:
        row = admin.execute(
            "SELECT pgautomator.schedule(%s, '2 seconds', %s)", (name, f"INSERT INTO {table} DEFAULT VALUES")
        ).fetchone()
        assert row is not None
        job_id = row[0]
        end = time.monotonic() + DEADLINE
        while True:
            done = admin.execute(
                "SELECT count(*) FROM pgautomator.run WHERE job_id = %s AND state = 'succeeded'", (job_id,)
            ).fetchone()
            assert done is not None
            if done[0] >= 3:
                break
            if time.monotonic() > end:
                pytest.fail("the schedule did not fire its job three times")
            time.sleep(0.1)
        fired = [
            r[0]
            for r in admin.execute(
                "SELECT scheduled_at FROM pgautomator.run WHERE job_id = %s AND trigger = 'schedule' "
                "ORDER BY 1",
                (job_id,),
            ).fetchall()
        ]
        for at in fired:
            # "2 seconds" fires at the even seconds of every minute, exactly.
            assert at.microsecond == 0 and at.second % 2 == 0, at
            engine = admin.execute(
                "SELECT pgautomator.next_runs(%s, %s, 1)", (name, at - timedelta(microseconds=1))
            ).fetchone()
            assert engine is not None and engine[0] == at
        ticks = admin.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert ticks is not None and ticks[0] >= 3
        # A job with a run going cannot be dropped: stop the schedule, let it end.
        admin.execute("SELECT pgautomator.disable_schedule(%s)", (name,))
        wait_idle(admin, job_id)
        assert admin.execute("SELECT pgautomator.unschedule(%s)", (name,)).fetchone() == (True,)
        assert admin.execute(
            "SELECT count(*) FROM pgautomator.schedule WHERE name = %s", (name,)
        ).fetchone() == (0,)
    finally:
        admin.execute(f"DROP TABLE {table}")


def wait_idle(admin: psycopg.Connection[Any], job_id: int) -> None:
    end = time.monotonic() + DEADLINE
    while True:
        active = admin.execute(
            "SELECT count(*) FROM pgautomator.run WHERE job_id = %s AND state IN ('queued', 'running')",
            (job_id,),
        ).fetchone()
        if active == (0,):
            return
        if time.monotonic() > end:
            pytest.fail("the job's last run did not end")
        time.sleep(0.1)

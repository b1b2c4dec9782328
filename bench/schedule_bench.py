"""Schedule engine benchmark (make bench-schedules).

Starts its own private cluster (scripts/common.sh), then measures:
  1. the next 1,000 fire instants for each of 1,000 mixed schedules
     (every type, ten zones), cold (fresh backend) and warm (parsed
     definitions cached);
  2. recomputing next_fire_at for 100,000 job-schedule links;
  3. the dispatcher's "what is due now" query with 10 and with 100,000
     links: its plan (an index range scan on job_schedule_due_idx) and its
     latency.
Prints the figures; asserts nothing.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Pacific/Chatham",
    "America/Los_Angeles",
]
KINDS = [
    "frequency => 'daily', at_time => '02:30'",
    "frequency => 'daily', every_n => 15, every_unit => 'minute', "
    "between_start => '08:00', between_end => '18:00'",
    "frequency => 'weekly', weekdays => '{mon,wed,fri}', at_time => '06:00'",
    "frequency => 'weekly', every => 2, weekdays => '{weekdays}', every_n => 1, every_unit => 'hour'",
    "frequency => 'monthly', month_days => '{1,15,31,last}', at_time => '23:30'",
    "frequency => 'monthly_relative', relative_week => 'last', relative_day => 'friday', at_time => '17:00'",
    "frequency => 'monthly_relative', relative_week => 'first', relative_day => 'weekday', "
    "at_time => '09:00'",
    "frequency => 'cron', cron => '*/5 * * * *'",
    "frequency => 'cron', cron => '0 9-17 * * mon-fri'",
    "frequency => 'cron', cron => '30 2 $ * *'",
]
DUE = (
    "SELECT job_id, schedule_id, next_fire_at FROM pgautomator.job_schedule "
    "WHERE next_fire_at <= now() ORDER BY next_fire_at LIMIT 100"
)


def sh(script: str, *args: str) -> str:
    """Runs a snippet with scripts/common.sh sourced; returns its stdout."""
    out = subprocess.run(
        ["bash", "-c", f". scripts/common.sh; {script}", "bench", *args],
        cwd=ROOT,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return out.stdout.strip()


@contextmanager
def private_cluster() -> Iterator[str]:
    base = tempfile.mkdtemp(prefix="pgautomator-bench.")
    bindir = ""
    try:
        bindir = sh('make_image "$1/inst"', base)
        port = sh("free_port")
        # No launcher: nothing may fire and move next_fire_at while we measure.
        sh(
            "PGAUTOMATOR_DB=bench PGAUTOMATOR_EXTRA_CONF=\"shared_preload_libraries = ''\" "
            'cluster_init "$1" "$2" "$3" && cluster_start "$1" "$2"',
            base,
            bindir,
            port,
        )
        dsn = f"host={base}/sock port={port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE DATABASE bench")
        yield f"host={base}/sock port={port} user=postgres dbname=bench"
    finally:
        if bindir:
            sh('cluster_stop "$1" "$2"', base, bindir)
        shutil.rmtree(base, ignore_errors=True)


def timed(conn: psycopg.Connection[Any], sql: str) -> tuple[float, Any]:
    t0 = time.perf_counter()
    row = conn.execute(sql).fetchone()
    return time.perf_counter() - t0, row[0] if row else None


def main() -> None:
    with private_cluster() as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pgautomator CASCADE")
        conn.execute("SET client_min_messages = warning")
        t0 = time.perf_counter()
        for i in range(1000):
            conn.execute(
                f"SELECT pgautomator.create_schedule('s{i}', {KINDS[i % len(KINDS)]}, "
                f"timezone => '{ZONES[i // len(KINDS) % len(ZONES)]}', starts_at => '2025-01-01 00:00+00')"
            )
        created = time.perf_counter() - t0
        print(
            f"create_schedule, 1,000 mixed schedules: {created:.2f} s ({created * 1000 / 1000:.2f} ms each)"
        )

        instants = (
            "SELECT count(*) FROM pgautomator.schedule s, "
            "pgautomator.next_runs(s.id, '2026-01-01 00:00+00', 1000)"
        )
        with psycopg.connect(dsn, autocommit=True) as fresh:
            cold, count = timed(fresh, instants)
            warm = min(timed(fresh, instants)[0] for _ in range(3))
        print(
            f"next 1,000 fire instants of each of 1,000 mixed schedules ({count:,} instants): "
            f"cold {cold:.2f} s, warm {warm:.2f} s ({warm * 1000 / 1000:.2f} ms per schedule, "
            f"{warm / count * 1e6:.2f} us per instant)"
        )

        # 100 jobs x 1,000 schedules = 100,000 links, due or not around now.
        for j in range(100):
            conn.execute(f"SELECT pgautomator.create_job('j{j}', enabled => false)")
        conn.execute(
            "INSERT INTO pgautomator.job_schedule (job_id, schedule_id) "
            "SELECT j.id, s.id FROM pgautomator.job j, pgautomator.schedule s"
        )
        refresh, _ = timed(
            conn, "SELECT pgautomator._refresh_next_fire(NULL, NULL, now() - interval '1 hour')"
        )
        links = conn.execute("SELECT count(*) FROM pgautomator.job_schedule").fetchone()
        due = conn.execute(
            "SELECT count(*) FROM pgautomator.job_schedule WHERE next_fire_at <= now()"
        ).fetchone()
        assert links and due
        print(
            f"_refresh_next_fire for {links[0]:,} links: {refresh:.2f} s "
            f"({refresh / links[0] * 1e6:.0f} us per link); {due[0]:,} due now"
        )
        conn.execute("VACUUM ANALYZE pgautomator.job_schedule")
        report_due(conn, f"{links[0]:,} links")

        conn.execute(
            "DELETE FROM pgautomator.job_schedule WHERE job_id <> (SELECT min(id) FROM pgautomator.job)"
        )
        conn.execute(
            "DELETE FROM pgautomator.job_schedule WHERE schedule_id NOT IN "
            "(SELECT id FROM pgautomator.schedule ORDER BY id LIMIT 10)"
        )
        conn.execute("SELECT pgautomator._refresh_next_fire(NULL, NULL, now() - interval '1 hour')")
        conn.execute("VACUUM ANALYZE pgautomator.job_schedule")
        report_due(conn, "10 links")


def report_due(conn: psycopg.Connection[Any], label: str) -> None:
    plan = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + DUE).fetchall()]
    samples: list[float] = []
    for _ in range(2000):
        t0 = time.perf_counter()
        conn.execute(DUE, prepare=True).fetchall()
        samples.append(time.perf_counter() - t0)
    p99 = sorted(samples)[int(len(samples) * 0.99)]
    print(
        f'"what is due now" with {label}: median {statistics.median(samples) * 1e6:.0f} us, '
        f"p99 {p99 * 1e6:.0f} us per query (client round trip, 2,000 runs)"
    )
    for line in plan:
        print("    " + line)


if __name__ == "__main__":
    if os.environ.get("PGAUTOMATOR_BENCH_HELP"):
        print(__doc__)
        sys.exit(0)
    main()

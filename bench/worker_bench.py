"""Start lag and throughput of the in-database executor (issue 4).

Run through bench/worker_bench.sh, which starts a private cluster and sets
PGHOST, PGPORT, PGUSER and PGDATABASE.  Figures are reported, not asserted.

Start lag: --jobs jobs share two 'once' schedules, a few seconds ahead and
--gap seconds apart; each job's only step records clock_timestamp() when
it runs.  Lag = that timestamp minus the fire instant: everything from the
instant to the step's SQL running (the launcher waking, the dispatcher
creating the runs, the claim, the worker's start and connection).  The
first burst finds no step worker connected (cold); the second finds the
first burst's workers idle and connected (warm).

Repeated bursts (--bursts N): the same jobs on a cron schedule every 3
seconds, N bursts; the median of the bursts' median lags.

Throughput: --parallel jobs that allow parallel runs get runs started in
batches (start_job) so that ready steps never run out; trivial one-step
runs (SELECT 1) finished per second over --seconds, after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg


def connect() -> psycopg.Connection[Any]:
    return psycopg.connect(autocommit=True)


def one(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(label: str, values_ms: list[float]) -> str:
    return (
        f"{label}: n={len(values_ms)} median={statistics.median(values_ms):.1f} ms"
        f" p95={percentile(values_ms, 95):.1f} ms p99={percentile(values_ms, 99):.1f} ms"
        f" max={max(values_ms):.1f} ms"
    )


def start_lag(conn: psycopg.Connection[Any], jobs: int, lead: float, gap: float) -> None:
    """Two bursts: at the first instant no worker is connected yet (cold);
    `gap` seconds later the workers of the first burst are still idle and
    connected (warm, when gap < pgautomator.worker_idle_time)."""
    conn.execute("CREATE TABLE IF NOT EXISTS public.bench_lag (i int, at timestamptz)")
    conn.execute("TRUNCATE public.bench_lag")
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead)
    second = first + timedelta(seconds=gap)
    with conn.transaction():
        schedules = [
            one(
                conn,
                "SELECT pgautomator.create_schedule(%s, 'once', on_date => %s, at_time => %s,"
                " timezone => 'UTC')",
                (f"lag-{fire:%H%M%S}-{n}", fire.date(), fire.time()),
            )
            for n, fire in enumerate((first, second))
        ]
        for i in range(jobs):
            job = one(conn, "SELECT pgautomator.create_job(%s)", (f"lag-{first:%H%M%S}-{i}",))
            conn.execute(
                "SELECT pgautomator.add_step(%s, 'mark', %s)",
                (job, f"INSERT INTO public.bench_lag VALUES ({i}, clock_timestamp())"),
            )
            for schedule in schedules:
                conn.execute("SELECT pgautomator.attach_schedule(%s::bigint, %s::bigint)", (job, schedule))
    if datetime.now(UTC) >= first:
        raise SystemExit("creating the jobs took longer than --lead; raise it")
    print(f"{jobs} jobs due at {first:%H:%M:%S} UTC and again at {second:%H:%M:%S} UTC")
    deadline = time.monotonic() + lead + gap + 120
    while one(conn, "SELECT count(*) FROM public.bench_lag") < 2 * jobs:
        if time.monotonic() > deadline:
            raise SystemExit("not every job ran within two minutes")
        time.sleep(0.2)
    for label, fire, later in (("cold", first, second), ("warm", second, None)):
        lags = [
            float(r[0])
            for r in conn.execute(
                "SELECT extract(epoch FROM at - %s) * 1000 FROM public.bench_lag"
                " WHERE at >= %s AND (%s::timestamptz IS NULL OR at < %s)",
                (fire, fire, later, later),
            ).fetchall()
        ]
        print(summary(f"start lag, {label} workers (fire instant to the step's SQL running)", lags))


def feeder(stop: threading.Event, jobs: list[int], backlog: int) -> None:
    """Keeps at least `backlog` runs waiting to be executed, starting them
    about 100 at a time: one large transaction would make them all visible
    at once, after the executor had run out of work meanwhile."""
    per_job = max(1, 100 // len(jobs))
    with connect() as conn:
        while not stop.is_set():
            waiting = one(
                conn,
                "SELECT count(*) FROM pgautomator.run WHERE state IN ('queued', 'running')"
                " AND job_id = ANY(%s)",
                (jobs,),
            )
            if waiting < backlog:
                conn.execute(
                    "SELECT pgautomator.start_job(j) FROM unnest(%s::bigint[]) j, generate_series(1, %s)",
                    (jobs, per_job),
                )
            else:
                time.sleep(0.05)


def throughput(conn: psycopg.Connection[Any], parallel: int, seconds: float, warmup: float) -> None:
    tag = datetime.now(UTC).strftime("%H%M%S")
    jobs: list[int] = []
    for i in range(parallel):
        job = one(
            conn,
            "SELECT pgautomator.create_job(%s, overlap => 'parallel', max_parallel => 1000)",
            (f"tp-{tag}-{i}",),
        )
        conn.execute("SELECT pgautomator.add_step(%s, 'trivial', 'SELECT 1')", (job,))
        jobs.append(int(job))
    stop = threading.Event()
    feed = threading.Thread(target=feeder, args=(stop, jobs, 2000), daemon=True)
    feed.start()
    time.sleep(warmup)
    t0 = one(conn, "SELECT clock_timestamp()")
    time.sleep(seconds)
    t1 = one(conn, "SELECT clock_timestamp()")
    stop.set()
    feed.join()
    done = int(
        one(
            conn,
            "SELECT count(*) FROM pgautomator.step_run sr JOIN pgautomator.run r ON r.id = sr.run_id"
            " WHERE r.job_id = ANY(%s) AND sr.finished_at >= %s AND sr.finished_at < %s",
            (jobs, t0, t1),
        )
    )
    failed = one(
        conn,
        "SELECT count(*) FROM pgautomator.step_run sr JOIN pgautomator.run r ON r.id = sr.run_id"
        " WHERE r.job_id = ANY(%s) AND sr.state IN ('failed', 'crashed')",
        (jobs,),
    )
    elapsed = (t1 - t0).total_seconds()
    print(
        f"throughput: {done} one-step runs finished in {elapsed:.1f} s ="
        f" {done / elapsed:.0f} step runs/s ({failed} failed)"
    )
    # Let the backlog drain (stopping runs in bulk would race the launcher).
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and one(
        conn,
        "SELECT count(*) FROM pgautomator.run WHERE job_id = ANY(%s) AND state IN ('queued', 'running')",
        (jobs,),
    ):
        time.sleep(0.5)


def one_step_jobs(
    conn: psycopg.Connection[Any], schedule: int, prefix: str, count: int, code: str
) -> list[int]:
    """Creates `count` jobs named prefix1, prefix2, ... with one step running
    `code`, on `schedule`; returns their ids."""
    ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT pgautomator.create_job(%s || g) FROM generate_series(1, %s) g", (prefix, count)
        ).fetchall()
    ]
    conn.execute("SELECT pgautomator.add_step(j, 'step', %s) FROM unnest(%s::bigint[]) j", (code, ids))
    conn.execute(
        "SELECT pgautomator.attach_schedule(j, %s::bigint) FROM unnest(%s::bigint[]) j", (schedule, ids)
    )
    return ids


def sustained(conn: psycopg.Connection[Any], jobs: int, seconds: float, warmup: float) -> None:
    """`jobs` one-step jobs (SELECT 1) share one schedule firing every
    second, for `seconds` after a warm-up: the scheduler's own load, fired by
    the launcher and run by the step workers.  A fire while the job's
    previous run is still active is skipped (overlap skip), so skipped fires
    say the system did not keep up."""
    tag = datetime.now(UTC).strftime("%H%M%S")
    with conn.transaction():
        schedule = one(
            conn,
            "SELECT pgautomator.create_schedule(%s, 'daily', every_n => 1, every_unit => 'second',"
            " timezone => 'UTC')",
            (f"sustained-{tag}",),
        )
        ids = one_step_jobs(conn, schedule, f"st-{tag}-", jobs, "SELECT 1")
    time.sleep(warmup)
    t0 = one(conn, "SELECT date_trunc('second', clock_timestamp()) + interval '1 second'")
    time.sleep(seconds + 1)
    t1 = t0 + timedelta(seconds=seconds)
    conn.execute(
        "SELECT pgautomator.detach_schedule(j, %s::bigint) FROM unnest(%s::bigint[]) j", (schedule, ids)
    )
    time.sleep(3)
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE r.state = 'succeeded'), count(*) FILTER (WHERE r.state = 'skipped'),"
        " count(*) FILTER (WHERE r.state NOT IN ('succeeded', 'skipped')),"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM sr.started_at - r.scheduled_at)),"
        " percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM sr.started_at - r.scheduled_at))"
        " FROM pgautomator.run r LEFT JOIN pgautomator.step_run sr ON sr.run_id = r.id"
        " WHERE r.job_id = ANY(%s) AND r.scheduled_at >= %s AND r.scheduled_at < %s",
        (ids, t0, t1),
    ).fetchone()
    assert row is not None
    ran, skipped, other, p50, p99 = row
    print(
        f"sustained: {jobs} jobs every second for {seconds:.0f} s: {ran / seconds:.0f} step runs/s"
        f" ({ran} of {jobs * seconds:.0f} fires ran, {skipped} skipped as still active, {other} other);"
        f" start lag median {1000 * (p50 or 0):.1f} ms, p99 {1000 * (p99 or 0):.1f} ms"
    )


def repeated_lag(conn: psycopg.Connection[Any], jobs: int, bursts: int) -> None:
    """Warm bursts over and over: `jobs` jobs on a cron schedule firing every
    3 seconds, `bursts` times; each burst's median lag, and the median of
    those (the first burst, which may find no worker connected, is left out).
    Steadier than one warm burst, whose median varies more from run to run."""
    period = 3
    conn.execute("CREATE TABLE IF NOT EXISTS public.bench_bursts (at timestamptz)")
    conn.execute("TRUNCATE public.bench_bursts")
    tag = f"{time.time_ns()}"
    with conn.transaction():
        schedule = one(
            conn,
            "SELECT pgautomator.create_schedule(%s, 'cron', cron => %s, timezone => 'UTC')",
            (f"bursts-{tag}", f"*/{period} * * * * *"),
        )
        ids = one_step_jobs(
            conn, schedule, f"bu-{tag}-", jobs, "INSERT INTO public.bench_bursts VALUES (clock_timestamp())"
        )
    time.sleep(period * (bursts + 1) + 1)
    conn.execute(
        "SELECT pgautomator.detach_schedule(j, %s::bigint) FROM unnest(%s::bigint[]) j", (schedule, ids)
    )
    time.sleep(period)
    rows = conn.execute(
        "SELECT floor(extract(epoch FROM at) / %s) AS burst,"
        " (extract(epoch FROM at) - floor(extract(epoch FROM at) / %s) * %s) * 1000 AS lag"
        " FROM public.bench_bursts ORDER BY 1, 2",
        (period, period, period),
    ).fetchall()
    by_burst: dict[float, list[float]] = {}
    for burst, lag in rows:
        by_burst.setdefault(float(burst), []).append(float(lag))
    medians = [statistics.median(v) for _, v in sorted(by_burst.items())[1:] if len(v) == jobs]
    if not medians:
        raise SystemExit("no complete burst was recorded")
    print(
        f"repeated warm bursts: {jobs} jobs every {period} s, {len(medians)} complete bursts:"
        f" median of the bursts' median lags {statistics.median(medians):.1f} ms"
        f" (each burst's: {min(medians):.1f}-{max(medians):.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200, help="jobs due at one instant (200)")
    parser.add_argument("--lead", type=float, default=20, help="seconds from now to the first burst (20)")
    parser.add_argument("--gap", type=float, default=3, help="seconds between the two bursts (3)")
    parser.add_argument("--seconds", type=float, default=60, help="throughput measuring window (60)")
    parser.add_argument("--warmup", type=float, default=5, help="throughput warm-up seconds (5)")
    parser.add_argument("--parallel", type=int, default=20, help="jobs the throughput runs spread over (20)")
    parser.add_argument(
        "--sustained-jobs",
        type=int,
        default=1500,
        help="jobs firing every second in the sustained test (1500)",
    )
    parser.add_argument(
        "--bursts",
        type=int,
        default=0,
        help="repeated warm bursts of --jobs every 3 s, after the rest (0: none)",
    )
    parser.add_argument("--skip-lag", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-sustained", action="store_true")
    args = parser.parse_args()
    with connect() as conn:
        print(
            f"PostgreSQL {one(conn, 'SHOW server_version')}, pgautomator.max_workers ="
            f" {one(conn, 'SHOW pgautomator.max_workers')}, max_worker_processes ="
            f" {one(conn, 'SHOW max_worker_processes')}, synchronous_commit ="
            f" {one(conn, 'SHOW synchronous_commit')}"
        )
        if not args.skip_lag:
            start_lag(conn, args.jobs, args.lead, args.gap)
        if not args.skip_throughput:
            throughput(conn, args.parallel, args.seconds, args.warmup)
        if not args.skip_sustained:
            sustained(conn, args.sustained_jobs, args.seconds, args.warmup)
        if args.bursts > 0:
            repeated_lag(conn, args.jobs, args.bursts)


if __name__ == "__main__":
    main()

"""Runs the workloads on each system one after the other, with a progress bar."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from compare import workloads as w
from compare.adapters import Adapter, make_adapters
from compare.context import HITS_DDL, Context, next_minute, now_utc
from compare.model import Result

WORKLOADS = ("burst", "multistep", "steady", "scale")
SYSTEMS = ("pgautomator", "pg_cron", "pgagent")
CLUSTER_SETTINGS = (
    "server_version",
    "max_connections",
    "max_worker_processes",
    "max_parallel_workers",
    "shared_preload_libraries",
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "TimeZone",
)


@dataclass
class Task:
    ad: Adapter
    label: str
    run: Callable[[w.Tick], list[Result]]
    # Waits for a minute boundary before its work starts.
    minute_aligned: bool
    est_s: float


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1])
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        pass
    os_name = ""
    try:
        with open("/etc/os-release") as f:
            os_name = next(
                (ln.split("=", 1)[1].strip().strip('"') for ln in f if ln.startswith("PRETTY_NAME")), ""
            )
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "os": os_name,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def setup_db(ctx: Context) -> bool:
    """Creates the hit table and the run-as role; returns whether the role is new."""
    created = False
    with ctx.connect() as conn:
        conn.execute(HITS_DDL)
        role = ctx.options.run_as
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(f'CREATE ROLE "{role}" LOGIN')
            created = True
        conn.execute(f'GRANT USAGE ON SCHEMA bench_compare TO "{role}"')
        conn.execute(f'GRANT INSERT ON bench_compare.hit TO "{role}"')
        conn.execute("TRUNCATE bench_compare.hit")
    return created


def teardown_db(ctx: Context, drop_role: bool) -> None:
    """Leaves a shared database as it was (the smoke test runs in the test database)."""
    with ctx.connect() as conn:
        conn.execute("DROP SCHEMA bench_compare CASCADE")
        if drop_role:
            conn.execute(f'DROP ROLE "{ctx.options.run_as}"')


def cluster_settings(ctx: Context) -> dict[str, str]:
    with ctx.connect() as conn:
        rows = conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s) ORDER BY 1",
            (list(CLUSTER_SETTINGS),),
        ).fetchall()
    return {str(n): str(v) for n, v in rows}


def plan_tasks(ctx: Context, ads: list[Adapter], wanted: list[str]) -> list[Task]:
    o = ctx.options
    tasks: list[Task] = []

    def add(ad: Adapter, label: str, fn: Callable[[w.Tick], list[Result]], aligned: bool, est: float) -> None:
        tasks.append(Task(ad, label, fn, aligned, est))

    def burst(ad: Adapter, n: int) -> Callable[[w.Tick], list[Result]]:
        return lambda t: [w.burst(ctx, ad, n, t)]

    def multistep(ad: Adapter) -> Callable[[w.Tick], list[Result]]:
        return lambda t: [w.multistep(ctx, ad, t)]

    def steady(ad: Adapter) -> Callable[[w.Tick], list[Result]]:
        return lambda t: [w.steady(ctx, ad, t)]

    def scale(ad: Adapter) -> Callable[[w.Tick], list[Result]]:
        return lambda t: w.scale(ctx, ad, t)

    if "burst" in wanted:
        for n in o.burst_sizes:
            for ad in ads:
                aligned = not (o.fire_mode == "second" and ad.exact_second)
                add(ad, f"burst {n}", burst(ad, n), aligned, 5 + n * 0.05)
    if "multistep" in wanted:
        for ad in ads:
            add(ad, "multi-step", multistep(ad), False, 5 + o.multistep_steps * 0.05)
    if "steady" in wanted:
        for ad in ads:
            add(ad, "steady", steady(ad), False, o.steady_seconds + 5)
    if "scale" in wanted:
        for ad in ads:
            est = 5 + sum(o.scale_sizes) * 0.0005 + o.history_rows * 0.00002 + 4 * o.idle_cpu_seconds
            add(ad, "scale", scale(ad), False, est)
    return tasks


def _next(tasks: list[Task], margin_s: float) -> Task:
    """The next task to run: the first one, unless it waits for a minute
    boundary that is far off and a later task fits in the wait."""
    first = tasks[0]
    if first.minute_aligned:
        wait = (next_minute(now_utc(), margin_s) - now_utc()).total_seconds()
        for t in tasks[1:]:
            if not t.minute_aligned and t.est_s < wait - margin_s - 3:
                return t
    return first


def run(
    ctx: Context, systems: list[str], wanted: list[str], console: Console
) -> tuple[dict[str, Any], list[Result]]:
    started = now_utc()
    new_role = setup_db(ctx)
    ads = make_adapters(ctx, systems)
    results: list[Result] = []
    live: list[Adapter] = []
    versions: dict[str, str] = {}
    settings: dict[str, dict[str, str]] = {}
    for ad in ads:
        why = ad.unavailable()
        if why is not None:
            console.print(f"[yellow]{ad.name}: skipped: {why}[/]")
            for wl in wanted:
                labels = [f"burst {n}" for n in ctx.options.burst_sizes] if wl == "burst" else [wl]
                for label in labels:
                    results.append(Result(ad.name, label.replace("multistep", "multi-step"), "skipped", why))
            ad.close()
            continue
        versions[ad.name] = ad.version()
        settings[ad.name] = ad.settings()
        live.append(ad)
    try:
        for ad in live:
            ad.start()
        tasks = plan_tasks(ctx, live, wanted)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            bar = progress.add_task("benchmark", total=len(tasks))

            def tick(msg: str) -> None:
                progress.update(bar, description=msg)

            pending = list(tasks)
            while pending:
                t = _next(pending, 3.0)
                pending.remove(t)
                tick(f"{t.ad.name}: {t.label}")
                t0 = time.monotonic()
                try:
                    got = t.run(tick)
                except Exception as e:  # one failed measurement must not lose the others
                    got = [Result(t.ad.name, t.label, "error", f"{type(e).__name__}: {e}")]
                    console.print(f"[red]{t.ad.name} {t.label}: {e}[/]")
                for r in got:
                    r.metrics.setdefault("wall_s", round(time.monotonic() - t0, 1))
                results.extend(got)
                progress.advance(bar)
            tick("done")
    finally:
        for ad in live:
            try:
                ad.stop()
            finally:
                ad.close()
        if not ctx.options.private_cluster:
            teardown_db(ctx, new_role)
    order = {s: i for i, s in enumerate(SYSTEMS)}
    results.sort(key=lambda r: (_workload_order(r.workload), order.get(r.system, 9)))
    meta: dict[str, Any] = {
        "started": started.isoformat(),
        "finished": now_utc().isoformat(),
        "duration_s": round((now_utc() - started).total_seconds(), 1),
        "machine": machine(),
        "cluster": {**cluster_settings(ctx), **ctx.settings},
        "versions": versions,
        "system_settings": settings,
        "options": asdict(ctx.options),
    }
    return meta, results


def _workload_order(workload: str) -> tuple[int, int]:
    fam = workload.split(" ")[0]
    idx = {"burst": 0, "multi-step": 1, "steady": 2, "scale": 3}.get(fam, 9)
    num = 0
    for part in workload.split():
        if part.replace(",", "").isdigit():
            num = int(part.replace(",", ""))
            break
    extra = 1 if "history" in workload else 0
    return idx, num * 2 + extra


def stamp(t: datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%SZ")

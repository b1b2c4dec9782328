"""The four workloads, each run on one system at a time.

Every job step inserts clock_timestamp() into bench_compare.hit, so start
lags are measured the same way on every system: the instant the step's SQL
ran, minus the instant the job was due.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from compare.adapters.base import Adapter, cpu_seconds
from compare.context import Context, next_minute, next_second, now_utc, sleep_until
from compare.model import Result
from compare.stats import lag_summary, percentile, slope

Tick = Callable[[str], None]


def hit_sql(system: str, tag: str, job_no: int, step_no: int = 1) -> str:
    return (
        "INSERT INTO bench_compare.hit (system, tag, job_no, step_no, at) "
        f"VALUES ('{system}', '{tag}', {job_no}, {step_no}, clock_timestamp())"
    )


def _hits(ad: Adapter, tag: str) -> list[tuple[int, int, datetime]]:
    return [
        (int(r[0]), int(r[1]), r[2])
        for r in ad.q("SELECT job_no, step_no, at FROM bench_compare.hit WHERE tag = %s ORDER BY at", (tag,))
    ]


def _count(ad: Adapter, tag: str) -> int:
    return int(ad.one("SELECT count(*) FROM bench_compare.hit WHERE tag = %s", (tag,)))


def _cleanup(ad: Adapter, tag: str) -> None:
    ad.drop(tag)
    ad.q("DELETE FROM bench_compare.hit WHERE tag = %s", (tag,))


def _wait_hits(
    ad: Adapter, tag: str, want: int, since: datetime, timeout_s: float, stall_s: float = 30.0
) -> int:
    """Waits until want hits arrived, the system reports all runs finished,
    nothing moved for stall_s, or the timeout passed; returns the hit count."""
    deadline = time.monotonic() + timeout_s
    last, last_change = -1, time.monotonic()
    while True:
        n = _count(ad, tag)
        if n >= want:
            return n
        if n != last:
            last, last_change = n, time.monotonic()
        now = time.monotonic()
        if now >= deadline:
            return n
        if now - last_change > stall_s and now_utc() > since:
            if ad.outcomes(tag, since).finished >= want:
                return _count(ad, tag)
            if now - last_change > 2 * stall_s:
                return n
        time.sleep(0.1)


def fire_instant(ctx: Context, ad: Adapter, margin_s: float) -> tuple[datetime, bool]:
    exact = ctx.options.fire_mode == "second" and ad.exact_second
    at = next_second(now_utc(), margin_s) if exact else next_minute(now_utc(), margin_s)
    return at, exact


def arm_margin(n: int) -> float:
    """Seconds to allow for arming n jobs before their fire instant."""
    return 2.0 + n * 0.01


def burst(ctx: Context, ad: Adapter, n: int, tick: Tick) -> Result:
    res = Result(ad.name, f"burst {n}")
    tag = f"burst{n}-{ad.name}"
    _cleanup(ad, tag)
    ad.create_jobs(tag, [hit_sql(ad.name, tag, i) for i in range(1, n + 1)])
    at, exact = fire_instant(ctx, ad, arm_margin(n))
    t0 = time.monotonic()
    ad.arm_at(tag, at, exact)
    armed_s = time.monotonic() - t0
    if now_utc() >= at:
        res.notes.append(f"arming took {armed_s:.1f} s and ended after the fire instant")
    res.notes.append(
        "due at "
        + (f"the second {at:%H:%M:%S}" if exact else f"the minute {at:%H:%M}")
        + " UTC"
        + (" (jobnextrun set directly, as pgAdmin's Run now)" if exact and ad.name == "pgagent" else "")
    )
    tick(f"{ad.name}: burst of {n} due at {at:%H:%M:%S}")
    sleep_until(at)
    got = _wait_hits(ad, tag, n, at, timeout_s=60 + n * 0.25)
    # Let the system's own log catch up with the last step.
    deadline = time.monotonic() + 15
    out = ad.outcomes(tag, at)
    while out.finished < got and time.monotonic() < deadline:
        time.sleep(0.2)
        out = ad.outcomes(tag, at)
    hits = _hits(ad, tag)
    lags = [(h[2] - at).total_seconds() for h in hits]
    res.samples = {"lag_s": lags, "t_s": lags}
    res.metrics.update(
        {
            "jobs": n,
            "started": len({h[0] for h in hits}),
            "ran twice": len(hits) - len({h[0] for h in hits}),
            # Jobs whose step never ran, and runs the system logged as failed
            # (a job may fail and be retried, or fail after its step ran).
            "not run": n - len({h[0] for h in hits}),
            "failures": out.failed,
            **lag_summary(lags),
            "all_finished_s": round(
                max([x for x in [out.last_finish_s, *lags] if x is not None], default=0), 3
            ),
            "arm_s": round(armed_s, 2),
        }
    )
    if out.errors:
        res.notes.append("its log: " + " | ".join(e.strip()[:200] for e in out.errors))
    _cleanup(ad, tag)
    return res


def steady(ctx: Context, ad: Adapter, tick: Tick) -> Result:
    o = ctx.options
    res = Result(ad.name, "steady")
    if ad.minute_only and o.steady_seconds < 150:
        res.status = "skipped"
        res.reason = (
            f"{ad.name} fires at most once a minute (no seconds); a {o.steady_seconds} s window holds "
            "too few runs: the full benchmark runs it for several minutes"
        )
        return res
    tag = f"steady-{ad.name}"
    _cleanup(ad, tag)
    period = ad.create_recurring(tag, [hit_sql(ad.name, tag, i) for i in range(1, o.steady_jobs + 1)])
    start = now_utc()
    end = start + timedelta(seconds=o.steady_seconds)
    tick(f"{ad.name}: {o.steady_jobs} jobs every {period} for {o.steady_seconds} s")
    while now_utc() < end:
        time.sleep(min(1.0, max(0.0, (end - now_utc()).total_seconds())))
    # Stop the schedule, let the last runs land, then pair runs with hits.
    time.sleep(2.0)
    instants = ad.fire_instants(tag)
    hits: dict[int, list[datetime]] = {}
    for job_no, _, at in _hits(ad, tag):
        hits.setdefault(job_no, []).append(at)
    out = ad.outcomes(tag, start)
    _cleanup(ad, tag)
    lags: list[float] = []
    ts: list[float] = []
    unpaired = 0
    for job_no, fired in instants.items():
        got = hits.get(job_no, [])
        unpaired += abs(len(fired) - len(got))
        for inst, h in zip(fired, got, strict=False):
            if start <= inst <= end:
                lags.append((h - inst).total_seconds())
                ts.append((inst - start).total_seconds())
    step_s = 1.0 if period == "1 second" else 60.0
    expected = o.steady_jobs * int(o.steady_seconds // step_s)
    order = sorted(range(len(ts)), key=lambda i: ts[i])
    ts = [ts[i] for i in order]
    lags = [lags[i] for i in order]
    # Over less than a minute one slow run dominates the slope: no drift figure.
    drift = slope(ts, lags) if o.steady_seconds >= 60 else None
    if drift is None:
        res.notes.append("drift: not computed (needs a window of a minute or more)")
    res.samples = {"lag_s": lags, "t_s": ts}
    res.metrics.update(
        {
            "period": period,
            "jobs": o.steady_jobs,
            "seconds": o.steady_seconds,
            "runs": len(lags),
            "expected_runs": expected,
            "failures": out.failed,
            **lag_summary(lags),
            # ms of extra lag per minute of running: 0 = no drift.
            "drift_ms_per_min": None if drift is None else round(drift * 60_000.0, 2),
        }
    )
    if unpaired:
        res.notes.append(f"{unpaired} runs without a hit or hits without a run (cut at the window edges)")
    return res


def multistep(ctx: Context, ad: Adapter, tick: Tick) -> Result:
    o = ctx.options
    res = Result(ad.name, "multi-step")
    if not ad.has_steps:
        res.status = "skipped"
        res.reason = f"{ad.name} has no steps: a job is one command"
        return res
    tag = f"multi-{ad.name}"
    _cleanup(ad, tag)
    n = o.multistep_steps
    ad.create_multistep(tag, [hit_sql(ad.name, tag, 1, s) for s in range(1, n + 1)])
    tick(f"{ad.name}: one job of {n} steps")
    t_start = now_utc()
    ad.trigger(tag)
    got = _wait_hits(ad, tag, n, t_start, timeout_s=60 + n * 0.5)
    deadline = time.monotonic() + 15
    out = ad.outcomes(tag, t_start)
    while out.finished < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
        out = ad.outcomes(tag, t_start)
    hits = _hits(ad, tag)
    _cleanup(ad, tag)
    times = [h[2] for h in sorted(hits, key=lambda h: h[1])]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    res.samples = {"lag_s": gaps, "t_s": [(t - t_start).total_seconds() for t in times[1:]]}
    res.metrics.update(
        {
            "steps": n,
            "steps_run": got,
            "failures": out.failed,
            "first_step_after_start_ms": round((times[0] - t_start).total_seconds() * 1000, 1)
            if times
            else None,
            "all_steps_s": round((times[-1] - times[0]).total_seconds(), 3) if times else None,
            "per_step_median_ms": _ms(percentile(gaps, 50)),
            "per_step_p95_ms": _ms(percentile(gaps, 95)),
            "per_step_max_ms": _ms(max(gaps) if gaps else None),
        }
    )
    if ad.name == "pgagent":
        res.notes.append(
            "started by setting jobnextrun = now(): the first step waits for the next poll"
            f" (-t {o.pgagent_poll_s})"
        )
    return res


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000.0, 1)


def _time_probe(ad: Adapter, sql: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ad.q(sql)
        times.append(time.perf_counter() - t0)
    return round((percentile(times, 50) or 0.0) * 1000.0, 3)


def _explain(ad: Adapter, sql: str) -> tuple[str, list[str]]:
    plan = [str(r[0]) for r in ad.q("EXPLAIN (ANALYZE, BUFFERS) " + sql)]
    scans = [ln.strip().split("  (")[0].lstrip("-> ") for ln in plan if " Scan " in ln]
    exec_ms = next((ln.split(":")[1].strip() for ln in plan if ln.startswith("Execution Time")), "")
    return f"{'; '.join(scans) or 'no scan'}; {exec_ms}", plan


def _idle_cpu(ad: Adapter, seconds: float) -> float | None:
    backends, procs = ad.scheduler_pids()
    pids = backends + procs
    if not pids:
        return None
    before = [cpu_seconds(p) for p in pids]
    time.sleep(seconds)
    after = [cpu_seconds(p) for p in pids]
    used = sum((a - b) for a, b in zip(after, before, strict=True) if a is not None and b is not None)
    return round(used * 1000.0 * 60.0 / seconds, 1)


def _due_lag(ctx: Context, ad: Adapter, tag: str) -> float | None:
    """Start lag of one job due amid the bulk ones; None if it did not run."""
    _cleanup(ad, tag)
    ad.create_jobs(tag, [hit_sql(ad.name, tag, 1)])
    at, exact = fire_instant(ctx, ad, 2.0)
    ad.arm_at(tag, at, exact)
    sleep_until(at)
    _wait_hits(ad, tag, 1, at, timeout_s=60)
    hits = _hits(ad, tag)
    # Drop the job only once its run has ended (not while its step reports).
    deadline = time.monotonic() + 15
    while hits and ad.outcomes(tag, at).finished < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    _cleanup(ad, tag)
    return round((hits[0][2] - at).total_seconds() * 1000.0, 1) if hits else None


def scale_point(ctx: Context, ad: Adapter, label: str, due_lag: bool) -> Result:
    o = ctx.options
    res = Result(ad.name, f"scale {label}")
    for p in ad.probes():
        if p.part:
            res.metrics[f"{p.name} ms (part)"] = _time_probe(ad, p.sql, o.probe_repeats)
            continue
        res.metrics[f"{p.name} ms"] = _time_probe(ad, p.sql, o.probe_repeats)
        if p.explain:
            summary, plan = _explain(ad, p.sql)
            res.metrics[f"{p.name} plan"] = summary
            res.details[f"{p.name} plan"] = "\n".join(plan)
        res.notes.append(f"{p.name}: {p.what}")
    res.metrics["idle CPU ms/min"] = _idle_cpu(ad, o.idle_cpu_seconds)
    if due_lag:
        res.metrics["one due: lag ms"] = _due_lag(ctx, ad, f"due-{ad.name}")
    else:
        res.metrics["one due: lag ms"] = None
        res.notes.append(
            "one due job: not measured in this mode (minute granularity would wait for the minute)"
        )
    return res


def scale(ctx: Context, ad: Adapter, tick: Tick) -> list[Result]:
    o = ctx.options
    results: list[Result] = []
    hour = (now_utc().hour + 12) % 24
    have = 0
    tags: list[str] = []
    due_lag = not ad.minute_only or (ad.exact_second and o.fire_mode == "second") or not o.quick
    label = ""
    try:
        for n in o.scale_sizes:
            label = f"{n} jobs"
            tag = f"scale{n}-{ad.name}"
            tick(f"{ad.name}: {n} enabled jobs (bulk insert)")
            ad.bulk_jobs(tag, n - have, hour)
            tags.append(tag)
            have = n
            r = scale_point(ctx, ad, label, due_lag)
            r.metrics["jobs"] = n
            results.append(r)
        label = f"{have} jobs + {o.history_rows:,} history"
        tick(f"{ad.name}: {o.history_rows:,} history rows (generate_series)")
        t0 = time.monotonic()
        how = ad.bulk_history(o.history_rows)
        gen_s = time.monotonic() - t0
        r = scale_point(ctx, ad, label, due_lag)
        r.metrics["jobs"] = have
        r.metrics["history rows"] = o.history_rows
        r.notes.append(f"history: {how}, generated with generate_series as superuser in {gen_s:.0f} s")
        results.append(r)
    except Exception as e:  # keep the points measured so far
        results.append(Result(ad.name, f"scale {label}", "error", f"{type(e).__name__}: {e}"))
    finally:
        if o.private_cluster:
            ad.clear_history()
        for tag in tags:
            ad.drop(tag)
    return results

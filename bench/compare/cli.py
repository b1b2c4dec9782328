"""Command line: python bench/run.py [--quick | --smoke] --dsn ... --out ..."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console

from compare import report
from compare.context import Context, Options, now_utc
from compare.runner import SYSTEMS, WORKLOADS, run, stamp


def default_dsn() -> str:
    env = {"host": "PGHOST", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER"}
    return " ".join(f"{k}={os.environ[v]}" for k, v in env.items() if os.environ.get(v))


def options_for(args: argparse.Namespace) -> Options:
    o = Options(
        pgagent_bin=args.pgagent_bin, pgagent_poll_s=args.pgagent_poll, private_cluster=args.private_cluster
    )
    if args.quick:
        o.quick = True
        o.fire_mode = "second"
        o.burst_sizes = [200]
        o.steady_jobs, o.steady_seconds = 2, 10
        o.scale_sizes = [10, 1000]
        o.history_rows = 100_000
        o.idle_cpu_seconds, o.probe_repeats = 2.0, 5
    if args.smoke:
        o.quick = o.smoke = True
        o.fire_mode = "second"
        o.burst_sizes = [3]
        o.steady_jobs, o.steady_seconds = 1, 4
        o.multistep_steps = 5
        o.scale_sizes = [10]
        o.history_rows = 1000
        o.idle_cpu_seconds, o.probe_repeats = 0.5, 2
    if args.fire_mode:
        o.fire_mode = args.fire_mode
    return o


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__)
    p.add_argument("--dsn", default=default_dsn(), help="libpq connection string of the benchmark database")
    p.add_argument("--out", type=Path, help="results folder (default bench/results/<timestamp>)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a run of under two minutes")
    mode.add_argument("--smoke", action="store_true", help="a tiny run for the test suite")
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--fire-mode", choices=("minute", "second"))
    p.add_argument("--pgagent-bin", default="pgagent")
    p.add_argument("--pgagent-poll", type=int, default=1, help="pgAgent's poll time -t in seconds")
    p.add_argument("--settings-file", type=Path, help="JSON of cluster settings to add to the report")
    p.add_argument("--private-cluster", action="store_true", help="the cluster is the benchmark's own")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--replot", type=Path, metavar="DIR", help="redraw tables and plots of an earlier run")
    args = p.parse_args(argv)
    # Wide enough for the tables when the output is a pipe or a log file.
    console = Console(width=None if sys.stdout.isatty() else 160)
    if args.replot:
        meta, old = report.load(args.replot / "results.json")
        report.print_tables(console, old)
        (args.replot / "summary.md").write_text(report.markdown(old, meta))
        report.plots(args.replot, old)
        return 0

    systems = [s for s in args.systems.split(",") if s]
    wanted = [x for x in args.workloads.split(",") if x]
    bad = [s for s in systems if s not in SYSTEMS] + [x for x in wanted if x not in WORKLOADS]
    if bad:
        p.error(f"unknown system or workload: {', '.join(bad)}")
    out = args.out or Path(__file__).resolve().parents[1] / "results" / stamp(now_utc())
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o777)  # pgAgent, running as postgres, appends its log here
    extra = json.loads(args.settings_file.read_text()) if args.settings_file else {}
    ctx = Context(dsn=args.dsn, out=out, options=options_for(args), log=console.print, settings=extra)
    meta, results = run(ctx, systems, wanted, console)
    meta["commit"] = os.environ.get("BENCH_COMMIT", "")
    # make bench names itself; a direct run records its arguments.
    meta["command"] = os.environ.get("BENCH_COMMAND") or " ".join(
        ["bench/run.py", *(argv if argv is not None else sys.argv[1:])]
    )
    report.print_tables(console, results)
    report.write_json(out / "results.json", meta, results)
    (out / "summary.md").write_text(report.markdown(results, meta))
    pngs = [] if args.no_plots else report.plots(out, results)
    console.print(f"results: {out}/results.json, summary.md" + "".join(f", {p.name}" for p in pngs))
    return 0

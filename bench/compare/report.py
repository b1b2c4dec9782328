"""The report: terminal tables, results.json, summary.md and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from compare.model import Metric, Result

# Columns per workload family: (metric key, header).
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "burst": [
        ("started", "started"),
        ("not run", "not run"),
        ("failures", "failed runs"),
        ("lag_median_ms", "lag p50 ms"),
        ("lag_p95_ms", "p95 ms"),
        ("lag_p99_ms", "p99 ms"),
        ("lag_max_ms", "max ms"),
        ("all_finished_s", "all done s"),
    ],
    "steady": [
        ("period", "period"),
        ("runs", "runs"),
        ("expected_runs", "expected"),
        ("failures", "failed"),
        ("lag_median_ms", "lag p50 ms"),
        ("lag_p95_ms", "p95 ms"),
        ("lag_max_ms", "max ms"),
        ("drift_ms_per_min", "drift ms/min"),
    ],
    "multi-step": [
        ("steps_run", "steps run"),
        ("failures", "failed"),
        ("first_step_after_start_ms", "1st step ms"),
        ("per_step_median_ms", "per step p50 ms"),
        ("per_step_p95_ms", "p95 ms"),
        ("all_steps_s", "all steps s"),
    ],
    "scale": [
        ("*ms", "dispatcher query ms (median)"),
        ("*plan", "plan; execution"),
        ("idle CPU ms/min", "idle CPU ms/min"),
        ("one due: lag ms", "one due: lag ms"),
    ],
}


def family(workload: str) -> str:
    return workload.split(" ")[0]


def _fmt(v: Metric) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _cells(r: Result, fam: str, reasons: dict[str, int]) -> list[str]:
    if r.status != "ok":
        mark = reasons.setdefault(f"{r.system} {r.status}: {r.reason}", len(reasons) + 1)
        return [f"{r.status} [{mark}]"] + [""] * (len(COLUMNS[fam]) - 1)
    cells = []
    for key, _ in COLUMNS[fam]:
        if key.startswith("*"):
            suffix = key[1:]
            parts = [
                f"{k.removesuffix(' ' + suffix)}: {_fmt(v)}"
                for k, v in r.metrics.items()
                if k.endswith(" " + suffix) and k != "one due: lag ms" and k != "idle CPU ms/min"
            ]
            cells.append("\n".join(parts) or "–")
        else:
            cells.append(_fmt(r.metrics.get(key)))
    return cells


def _rows(results: list[Result], fam: str) -> list[Result]:
    return [r for r in results if family(r.workload) == fam]


def print_tables(console: Console, results: list[Result]) -> None:
    for fam, cols in COLUMNS.items():
        rows = _rows(results, fam)
        if not rows:
            continue
        t = Table(title=fam, show_lines=fam == "scale")
        t.add_column("workload", no_wrap=True)
        t.add_column("system", no_wrap=True)
        for _, head in cols:
            t.add_column(head, overflow="fold")
        reasons: dict[str, int] = {}
        for r in rows:
            t.add_row(r.workload, r.system, *_cells(r, fam, reasons))
        console.print(t)
        for text, mark in reasons.items():
            console.print(f"  [{mark}] {text}", highlight=False, markup=False)


def header(meta: dict[str, Any]) -> str:
    """Machine, versions, settings and command of a run, as Markdown."""
    m = meta.get("machine", {})
    out = [
        f"Run {meta.get('started', '?')[:19]} UTC, {meta.get('duration_s', 0) / 60:.0f} min: "
        f"`{meta.get('command', '?')}`" + (f" at commit {meta['commit']}" if meta.get("commit") else ""),
        "",
        f"- machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory', '?')}, "
        f"{m.get('os', '?')}, kernel {m.get('kernel', '?')}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()),
        "- cluster: " + ", ".join(f"{k} = {v}" for k, v in meta.get("cluster", {}).items()),
    ]
    for system, settings in meta.get("system_settings", {}).items():
        out.append(f"- {system}: " + ", ".join(f"{k} = {v}" for k, v in settings.items()))
    o = meta.get("options", {})
    out.append(
        "- options: "
        + ", ".join(
            f"{k} = {o[k]}"
            for k in (
                "fire_mode",
                "burst_sizes",
                "steady_jobs",
                "steady_seconds",
                "multistep_steps",
                "scale_sizes",
                "history_rows",
                "idle_cpu_seconds",
                "probe_repeats",
                "pgagent_poll_s",
            )
            if k in o
        )
    )
    return "\n".join(out) + "\n\n"


def markdown(results: list[Result], meta: dict[str, Any] | None = None) -> str:
    out: list[str] = [header(meta)] if meta else []
    for fam, cols in COLUMNS.items():
        rows = _rows(results, fam)
        if not rows:
            continue
        out.append(f"### {fam}\n")
        out.append("| workload | system | " + " | ".join(h for _, h in cols) + " |")
        out.append("|---|---|" + "---|" * len(cols))
        reasons: dict[str, int] = {}
        for r in rows:
            cells = [c.replace("\n", "<br>").replace("|", "\\|") for c in _cells(r, fam, reasons)]
            out.append(f"| {r.workload} | {r.system} | " + " | ".join(cells) + " |")
        notes = [f"[{m}] {t}" for t, m in reasons.items()]
        notes += sorted({f"{r.system}: {n}" for r in rows for n in r.notes})
        if notes:
            out.append("")
            out.extend(f"- {n}" for n in notes)
        out.append("")
    return "\n".join(out)


def write_json(path: Path, meta: dict[str, Any], results: list[Result]) -> None:
    path.write_text(json.dumps({**meta, "results": [r.to_json() for r in results]}, indent=2, default=str))


COLORS = {"pgautomator": "tab:blue", "pg_cron": "tab:orange", "pgagent": "tab:green"}


def plots(out: Path, results: list[Result]) -> list[Path]:
    """Lag distributions of the bursts (ECDF) and lag against time (steady
    and bursts); returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")

    written: list[Path] = []
    bursts = [
        r for r in results if family(r.workload) == "burst" and r.status == "ok" and r.samples.get("lag_s")
    ]
    sizes = sorted({int(r.workload.split()[1]) for r in bursts})
    if bursts:
        fig, axes = plt.subplots(1, len(sizes), figsize=(6.5 * len(sizes), 4.5), squeeze=False)
        for ax, n in zip(axes[0], sizes, strict=True):
            for r in bursts:
                if r.workload != f"burst {n}":
                    continue
                lags = sorted(r.samples["lag_s"])
                ys = [(i + 1) / n for i in range(len(lags))]
                ax.step(lags, ys, where="post", label=r.system, color=COLORS.get(r.system))
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(plain)
            ax.set_title(f"burst of {n} jobs due at one instant")
            ax.set_xlabel("start lag after the fire instant (s, log scale)")
            ax.set_ylabel("share of jobs started")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.tight_layout()
        p = out / "burst_lag_distribution.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    steadies = [r for r in results if r.workload == "steady" and r.status == "ok" and r.samples.get("lag_s")]
    if steadies:
        fig, ax = plt.subplots(figsize=(10, 4.5))
        for r in steadies:
            ax.plot(
                r.samples["t_s"],
                [x * 1000 for x in r.samples["lag_s"]],
                ".",
                ms=3,
                label=f"{r.system} (every {r.metrics.get('period')})",
                color=COLORS.get(r.system),
            )
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plain)
        ax.set_title("steady schedules: start lag of each run against time")
        ax.set_xlabel("seconds since the workload started")
        ax.set_ylabel("start lag (ms, log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        p = out / "steady_lag_over_time.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    if bursts:
        fig, axes = plt.subplots(1, len(sizes), figsize=(6.5 * len(sizes), 4.5), squeeze=False)
        for ax, n in zip(axes[0], sizes, strict=True):
            for r in bursts:
                if r.workload != f"burst {n}":
                    continue
                lags = sorted(r.samples["lag_s"])
                ax.plot(lags, range(1, len(lags) + 1), label=r.system, color=COLORS.get(r.system))
            ax.set_title(f"burst of {n}: jobs started against time")
            ax.set_xlabel("seconds after the fire instant")
            ax.set_ylabel("jobs started")
            ax.grid(True, alpha=0.3)
            ax.legend()
        fig.tight_layout()
        p = out / "burst_started_over_time.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    return written


def load(path: Path) -> tuple[dict[str, Any], list[Result]]:
    """Reads a results.json back (to redraw plots and tables)."""
    data = json.loads(path.read_text())
    results = [Result(**r) for r in data.pop("results")]
    return data, results

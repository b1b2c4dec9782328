"""The benchmark code (bench/) on a tiny workload, so that it cannot rot.

Runs bench/run.py --smoke against the harness cluster. pgautomator is
measured whenever its launcher runs in this cluster; pg_cron is not loaded
here and is reported as skipped with its reason; pgAgent is measured in a
database of its own when the pgagent package is installed. No timing is
asserted: only that every workload ran to the end and reported sane figures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench(dsn: str, out: Path, systems: str) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--smoke",
            "--dsn",
            dsn,
            "--out",
            str(out),
            "--systems",
            systems,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    summary = (out / "summary.md").read_text()
    assert summary.startswith("Run ") and "### burst" in summary
    return data


def by_system(data: dict[str, Any], system: str) -> list[dict[str, Any]]:
    return [r for r in data["results"] if r["system"] == system]


def check_measured(results: list[dict[str, Any]], out: Path) -> None:
    """Every workload of a measured system ran fully and without failures."""
    assert results, "no results"
    errors = [r for r in results if r["status"] == "error"]
    assert not errors, errors
    burst = next(r for r in results if r["workload"] == "burst 3")
    assert burst["status"] == "ok"
    assert burst["metrics"]["started"] == 3
    assert burst["metrics"]["failures"] == 0
    assert burst["metrics"]["not run"] == 0
    assert len(burst["samples"]["lag_s"]) == 3
    assert burst["metrics"]["lag_median_ms"] is not None
    multi = next(r for r in results if r["workload"] == "multi-step")
    assert multi["status"] == "ok"
    assert multi["metrics"]["steps_run"] == 5
    assert multi["metrics"]["failures"] == 0
    scale = [r for r in results if r["workload"].startswith("scale")]
    assert [r["workload"] for r in scale] == ["scale 10 jobs", "scale 10 jobs + 1,000 history"]
    for r in scale:
        assert r["status"] == "ok", r
        assert any(k.endswith(" ms") and isinstance(v, float) for k, v in r["metrics"].items())
        assert r["metrics"]["one due: lag ms"] is not None
    assert (out / "burst_lag_distribution.png").stat().st_size > 1000


def launcher_running(admin: psycopg.Connection) -> bool:
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgautomator launcher'"
    ).fetchone()
    return row is not None and row[0] > 0


def test_bench_smoke_in_test_database(dsn: str, admin: psycopg.Connection, tmp_path: Path) -> None:
    preload = str(admin.execute("SHOW shared_preload_libraries").fetchone()[0])  # type: ignore[index]
    if "pgautomator" in preload:
        # The launcher restarts a few seconds after the cluster started
        # without the test database; the benchmark needs it up.
        deadline = time.monotonic() + 60
        while not launcher_running(admin):
            assert time.monotonic() < deadline, "the pgautomator launcher did not start"
            time.sleep(0.1)
    data = run_bench(dsn, tmp_path, "pgautomator,pg_cron,pgagent")
    assert data["machine"]["cores"] >= 1
    assert "max_connections" in data["cluster"]
    auto = by_system(data, "pgautomator")
    if "pgautomator" in preload:
        check_measured(auto, tmp_path)
        steady = next(r for r in auto if r["workload"] == "steady")
        assert steady["status"] == "ok", steady
        assert steady["metrics"]["runs"] >= 1
        assert steady["metrics"]["failures"] == 0
        assert data["versions"]["pgautomator"]
    else:
        assert auto and all(r["status"] == "skipped" and r["reason"] for r in auto)

    cron = by_system(data, "pg_cron")
    assert cron and all(r["status"] == "skipped" and "pg_cron" in r["reason"] for r in cron)
    # pgAgent's schema is not in the test database: skipped with its reason.
    agent = by_system(data, "pgagent")
    assert agent and all(r["status"] == "skipped" and "pgagent" in r["reason"] for r in agent)
    # The benchmark leaves the shared test database as it found it.
    assert admin.execute("SELECT to_regnamespace('bench_compare')").fetchone() == (None,)


@pytest.fixture
def pgagent_dsn(admin: psycopg.Connection) -> Any:
    """A database of its own with the pgagent schema, if pgAgent is installed."""
    if shutil.which("pgagent") is None:
        pytest.skip("the pgagent daemon is not installed (Debian package pgagent; make bench installs it)")
    if not admin.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pgagent'").fetchone():
        pytest.skip("the pgagent extension was not installed when the test server image was built")
    admin.execute("DROP DATABASE IF EXISTS bench_smoke_pgagent")
    admin.execute("CREATE DATABASE bench_smoke_pgagent")
    with psycopg.connect(
        admin.info.dsn.replace(f"dbname={admin.info.dbname}", "dbname=bench_smoke_pgagent"), autocommit=True
    ) as conn:
        conn.execute("CREATE EXTENSION pgagent")
    params = {
        "host": os.environ.get("PGHOST", "localhost"),
        "port": os.environ.get("PGPORT", "5432"),
        "user": os.environ.get("PGUSER", "postgres"),
        "dbname": "bench_smoke_pgagent",
    }
    yield " ".join(f"{k}={v}" for k, v in params.items())
    admin.execute("DROP DATABASE bench_smoke_pgagent WITH (FORCE)")


def test_bench_smoke_pgagent(pgagent_dsn: str, tmp_path: Path) -> None:
    data = run_bench(pgagent_dsn, tmp_path, "pgagent")
    results = by_system(data, "pgagent")
    check_measured(results, tmp_path)
    steady = next(r for r in results if r["workload"] == "steady")
    assert steady["status"] == "skipped" and "minute" in steady["reason"]
    assert "poll time (-t)" in data["system_settings"]["pgagent"]

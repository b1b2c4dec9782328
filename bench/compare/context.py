"""What every adapter and workload needs: the database, the options, the clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

# The table every benchmark step writes into: one row per step execution,
# stamped with clock_timestamp() by the step itself.
HITS_DDL = """
CREATE SCHEMA IF NOT EXISTS bench_compare;
CREATE TABLE IF NOT EXISTS bench_compare.hit (
    system   text NOT NULL,
    tag      text NOT NULL,
    job_no   integer NOT NULL,
    step_no  integer NOT NULL DEFAULT 1,
    at       timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS hit_tag_idx ON bench_compare.hit (tag);
"""


@dataclass
class Options:
    quick: bool = False
    smoke: bool = False
    # minute: every burst fires at a minute boundary through each system's
    # own schedules (the faithful comparison); second: systems that can fire
    # at an arbitrary second do so (pgautomator 'once' schedules, pgAgent's
    # jobnextrun), minute-only systems still wait for the minute.
    fire_mode: str = "minute"
    burst_sizes: list[int] = field(default_factory=lambda: [200, 1000])
    steady_jobs: int = 5
    steady_seconds: int = 180
    multistep_steps: int = 100
    scale_sizes: list[int] = field(default_factory=lambda: [10, 1000, 100000])
    history_rows: int = 10_000_000
    idle_cpu_seconds: float = 10.0
    probe_repeats: int = 20
    pgagent_bin: str = "pgagent"
    pgagent_poll_s: int = 1
    run_as: str = "bench_runner"
    # The cluster belongs to the benchmark (make bench): history tables may
    # be truncated instead of deleted row by row.
    private_cluster: bool = False


@dataclass
class Context:
    dsn: str
    out: Path
    options: Options
    log: Callable[[str], None]
    settings: dict[str, Any] = field(default_factory=dict)

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        """An autocommit connection whose session time zone is UTC."""
        return psycopg.connect(self.dsn, autocommit=True, options="-c TimeZone=UTC")


def now_utc() -> datetime:
    return datetime.now(UTC)


def wait_until(cond: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Polls cond until it holds or the deadline passes; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def sleep_until(at: datetime) -> None:
    delay = (at - now_utc()).total_seconds()
    if delay > 0:
        time.sleep(delay)


def next_minute(after: datetime, margin_s: float) -> datetime:
    """The first whole minute at least margin_s after `after`."""
    t = after + timedelta(seconds=margin_s)
    base = t.replace(second=0, microsecond=0)
    return base if base >= t else base + timedelta(minutes=1)


def next_second(after: datetime, margin_s: float) -> datetime:
    t = after + timedelta(seconds=margin_s)
    base = t.replace(microsecond=0)
    return base if base >= t else base + timedelta(seconds=1)


def cron_at(at: datetime) -> str:
    """A five-field cron expression that matches the minute `at` (UTC)."""
    return f"{at.minute} {at.hour} {at.day} {at.month} *"

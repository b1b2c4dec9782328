"""The interface each scheduler adapter implements.

An adapter creates jobs through its scheduler's own API (or, for bulk data
in the scale workload, by inserting rows the way the API would, as a
superuser: stated in the report), reads outcomes from the scheduler's own
log, and names the queries its dispatcher runs so they can be timed.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from compare.context import Context
from compare.model import Outcome


@dataclass
class Probe:
    """A query a scheduler runs to find work, timed by the scale workload."""

    name: str
    sql: str
    explain: bool  # whether EXPLAIN ANALYZE of it is meaningful
    what: str  # what it stands for, and how comparable it is
    # A part of another probe: timed into the JSON, left out of the table.
    part: bool = False


class Adapter(ABC):
    name: str = ""
    # Schedules resolve to whole minutes only (pg_cron 1.4.2, pgAgent).
    minute_only: bool = False
    # Whether a fire instant can be an arbitrary second (for --fire-mode second).
    exact_second: bool = False
    has_steps: bool = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.conn = ctx.connect()

    def q(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def one(self, sql: str, params: Any = None) -> Any:
        rows = self.q(sql, params)
        return rows[0][0] if rows else None

    def close(self) -> None:
        self.conn.close()

    # --- lifecycle -------------------------------------------------------
    @abstractmethod
    def unavailable(self) -> str | None:
        """Why this system cannot be measured here, or None if it can."""

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def settings(self) -> dict[str, str]:
        """The settings that shape this system's behaviour, for the report."""

    def start(self) -> None:  # noqa: B027 - most systems run inside the server
        """Starts whatever runs outside the server (pgAgent's daemon)."""

    def stop(self) -> None:  # noqa: B027
        """Stops what start() started."""

    # --- jobs ------------------------------------------------------------
    @abstractmethod
    def create_jobs(self, tag: str, codes: list[str]) -> None:
        """One job per code, each of one SQL step, named tag-1..tag-n, not yet scheduled."""

    @abstractmethod
    def arm_at(self, tag: str, at: datetime, exact: bool) -> None:
        """Makes every job of tag due at `at` (exact: at that second, else its minute)."""

    @abstractmethod
    def create_recurring(self, tag: str, codes: list[str]) -> str:
        """Jobs on the finest recurring schedule the system has; returns its period."""

    @abstractmethod
    def create_multistep(self, tag: str, codes: list[str]) -> None: ...

    @abstractmethod
    def trigger(self, tag: str) -> None:
        """Starts the (multi-step) job of tag now."""

    @abstractmethod
    def outcomes(self, tag: str, since: datetime) -> Outcome:
        """Finished and failed runs of tag's jobs, from the system's own log."""

    @abstractmethod
    def fire_instants(self, tag: str) -> dict[int, list[datetime]]:
        """Per job number, the intended fire instants of the runs that started, in order."""

    @abstractmethod
    def drop(self, tag: str) -> None:
        """Removes tag's jobs, schedules and their history."""

    # --- scale -----------------------------------------------------------
    @abstractmethod
    def bulk_jobs(self, tag: str, n: int, hour: int) -> None:
        """n enabled one-step jobs, each daily at `hour`:(i mod 60) UTC (not due now)."""

    @abstractmethod
    def bulk_history(self, rows: int) -> str:
        """Inserts about `rows` history rows; returns how they were split."""

    @abstractmethod
    def clear_history(self) -> None: ...

    @abstractmethod
    def probes(self) -> list[Probe]: ...

    @abstractmethod
    def scheduler_pids(self) -> tuple[list[int], list[int]]:
        """(server backends, outside processes) that do this system's scheduling."""


def cpu_seconds(pid: int) -> float | None:
    """CPU time of a process (all its threads), in seconds: from
    /proc/PID/schedstat (nanoseconds) where the kernel has it, else from
    /proc/PID/stat (clock ticks, usually 10 ms)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

"""Result records shared by the workloads, the runner and the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

Metric = float | int | str | None


@dataclass
class Result:
    """One workload on one system: its metrics, raw samples and caveats.

    status is ok, skipped (the system cannot do this or is absent: reason
    says why), or error (it failed while measuring: reason holds the error).
    """

    system: str
    workload: str
    status: str = "ok"
    reason: str = ""
    metrics: dict[str, Metric] = field(default_factory=dict)
    # Raw series for the plots and the JSON: lag_s (seconds) and t_s
    # (seconds since the workload's first fire instant), same length.
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Longer text kept for the JSON only (query plans).
    details: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Outcome:
    """What a system's own log says about the runs of a set of jobs."""

    finished: int
    failed: int
    last_finish_s: float | None  # seconds after the reference instant
    errors: list[str] = field(default_factory=list)

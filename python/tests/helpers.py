"""Shared helpers of the agent tests."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgautomator.steps import ClaimedStep


def shell_step(code: str, **overrides: Any) -> ClaimedStep:
    values: dict[str, Any] = {
        "step_run_id": 31,
        "run_id": 21,
        "job_id": 11,
        "job_name": "nightly",
        "step_name": "copy",
        "kind": "shell",
        "code": code,
    }
    values.update(overrides)
    return ClaimedStep(**values)


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Polls until `condition()` is truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def process_gone(pid: int) -> bool:
    """True when the process no longer exists (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def read_pids(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().split()]


def pids_alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if not process_gone(pid)]


def cleanup_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)

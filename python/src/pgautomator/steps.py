"""What the agent claims (a step run) and what it reports back."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClaimedStep:
    """One row of pgautomator.agent_claim_v1 (type pgautomator.claimed_step_v1)."""

    step_run_id: int
    run_id: int
    job_id: int
    job_name: str
    step_name: str
    kind: str
    code: str
    connection: str | None = None
    shell: str | None = None
    success_codes: Sequence[int] = (0,)
    timeout_ms: int = 0  # 0: no timeout
    transaction: str = "autocommit"
    attempt: int = 1
    run_as: str | None = None

    @property
    def timeout(self) -> float | None:
        return self.timeout_ms / 1000.0 if self.timeout_ms and self.timeout_ms > 0 else None


@dataclass
class StepResult:
    """The arguments of pgautomator.agent_report_v1 for one step run."""

    succeeded: bool
    exit_code: int | None = None
    sqlstate: str | None = None
    output: str | None = None
    error: str | None = None
    rows_affected: int | None = None
    messages: str | None = None


class StopSignal:
    """Set when a running step must end now; carries why (shown in its error)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def set(self, reason: str) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None) -> bool:
        return self._event.wait(timeout)

    def on_set(self, callback: Callable[[], None]) -> None:
        """Calls `callback` when the signal is set (at once if it already is)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()


# Streams a piece of output to the database; returns False when the step
# must stop (agent_output_v1's answer).
OutputSink = Callable[[str], bool]


@dataclass
class StepContext:
    """What an executor needs besides the step itself."""

    stop: StopSignal = field(default_factory=StopSignal)
    sink: OutputSink | None = None
    output_limit: int = 64 * 1024
    kill_timeout: float = 5.0
    default_shell: str = "sh"
    work_dir: str | None = None
    stream_interval: float = 0.5
    dbapi_drivers: tuple[str, ...] = ()

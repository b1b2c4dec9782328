"""The agent protocol: calls of pgautomator's versioned agent API functions
(docs/contracts.md, "Remote agents"). The agent never touches a table.

Arguments are passed in named notation so that parameters the extension
adds later (with defaults) do not break an older agent.
"""

from __future__ import annotations

import os
import threading
from dataclasses import fields
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgautomator.steps import ClaimedStep, StepResult

WAKE_CHANNEL = "pgautomator_wake"
_CLAIMED_FIELDS = {f.name for f in fields(ClaimedStep)}


class AgentApi:
    """The API calls over one autocommit connection, serialized by a lock
    (step threads stream output while the main loop heartbeats)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def _rows(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock, self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query.encode(), params)
            return cur.fetchall()

    def register(
        self, name: str, host: str, capabilities: list[str], max_parallel: int, version: str, pid: int
    ) -> int:
        rows = self._rows(
            "SELECT pgautomator.agent_register_v1(name => %(name)s, host => %(host)s,"
            " capabilities => %(capabilities)s::text[], max_parallel => %(max_parallel)s,"
            " version => %(version)s, pid => %(pid)s) AS id",
            {
                "name": name,
                "host": host,
                "capabilities": capabilities,
                "max_parallel": max_parallel,
                "version": version,
                "pid": pid,
            },
        )
        return int(rows[0]["id"])

    def heartbeat(self, agent_id: int) -> list[int]:
        """Records a heartbeat; returns the step runs to kill now."""
        rows = self._rows(
            "SELECT id FROM pgautomator.agent_heartbeat_v1(agent_id => %(agent_id)s) AS id",
            {"agent_id": agent_id},
        )
        return [int(row["id"]) for row in rows]

    def claim(self, agent_id: int, max_steps: int) -> list[ClaimedStep]:
        # (this process's pid is kept on the claims: see running)
        rows = self._rows(
            "SELECT * FROM pgautomator.agent_claim_v1(agent_id => %(agent_id)s, max_steps => %(max_steps)s,"
            " pid => %(pid)s)",
            {"agent_id": agent_id, "max_steps": max_steps, "pid": os.getpid()},
        )
        steps = []
        for row in rows:
            values = {key: value for key, value in row.items() if key in _CLAIMED_FIELDS}
            values["success_codes"] = tuple(values.get("success_codes") or (0,))
            values["timeout_ms"] = int(values.get("timeout_ms") or 0)
            values["transaction"] = values.get("transaction") or "autocommit"
            steps.append(ClaimedStep(**values))
        return steps

    def output(self, agent_id: int, step_run_id: int, chunk: str) -> bool:
        """Streams output; False means the step must stop."""
        rows = self._rows(
            "SELECT pgautomator.agent_output_v1(agent_id => %(agent_id)s,"
            " step_run_id => %(step_run_id)s, chunk => %(chunk)s) AS go_on",
            {"agent_id": agent_id, "step_run_id": step_run_id, "chunk": chunk},
        )
        return rows[0]["go_on"] is not False

    def report(self, agent_id: int, step_run_id: int, result: StepResult) -> None:
        """Reports the outcome; `output` replaces what was streamed."""
        self._rows(
            "SELECT pgautomator.agent_report_v1(agent_id => %(agent_id)s, step_run_id => %(step_run_id)s,"
            " succeeded => %(succeeded)s, exit_code => %(exit_code)s, sqlstate => %(sqlstate)s,"
            " output => %(output)s, error => %(error)s, rows_affected => %(rows_affected)s,"
            " messages => %(messages)s)",
            {
                "agent_id": agent_id,
                "step_run_id": step_run_id,
                "succeeded": result.succeeded,
                # (as a signed 32-bit value: Windows reports crash codes
                # such as 0xC0000005 unsigned, which integer cannot take)
                "exit_code": _int32(result.exit_code),
                "sqlstate": result.sqlstate,
                "output": result.output,
                "error": result.error,
                "rows_affected": result.rows_affected,
                "messages": result.messages,
            },
        )

    def running(self, agent_id: int) -> list[int]:
        """The step runs the database holds as running on this agent and
        this process claimed (not another process's under the same name)."""
        rows = self._rows(
            "SELECT id FROM pgautomator.agent_running_v1(agent_id => %(agent_id)s, pid => %(pid)s) AS id",
            {"agent_id": agent_id, "pid": os.getpid()},
        )
        return [int(row["id"]) for row in rows]

    def release(self, agent_id: int, step_run_id: int) -> bool:
        """Hands a step run back to the queue; False when it is no longer
        this agent's running step run or a stop or timeout was requested."""
        rows = self._rows(
            "SELECT pgautomator.agent_release_v1(agent_id => %(agent_id)s,"
            " step_run_id => %(step_run_id)s) AS released",
            {"agent_id": agent_id, "step_run_id": step_run_id},
        )
        return rows[0]["released"] is True

    def deregister(self, agent_id: int) -> None:
        """The agent shuts down: shown as down at once."""
        self._rows(
            "SELECT pgautomator.agent_deregister_v1(agent_id => %(agent_id)s)",
            {"agent_id": agent_id},
        )


def _int32(value: int | None) -> int | None:
    """An exit code as PostgreSQL's integer: unsigned 32-bit values wrap."""
    if value is None or -(2**31) <= value < 2**31:
        return value
    return (value + 2**31) % 2**32 - 2**31

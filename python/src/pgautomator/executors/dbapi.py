"""remote_sql steps on other databases through a Python DB-API 2.0 driver.

A step whose connection is `dbapi:MODULE:ARGUMENT` runs its code with
MODULE.connect(ARGUMENT) (sqlite3, pyodbc, oracledb, ... whatever the agent
has installed and lists in its `dbapi_drivers` setting). The statement runs
in a child Python process, so a timeout or a stop kills it the way a shell
step is killed; the child leaves its rows affected and error in a small JSON
file in the step's temporary directory.

Run as `python -m pgautomator.executors.dbapi MODULE CODE_FILE SUMMARY_FILE`
with ARGUMENT on stdin: on the command line, any local user would see it
(an ODBC PWD=, an Oracle user/password@dsn).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

from pgautomator.executors.shell import start_process, step_environment, supervise
from pgautomator.steps import ClaimedStep, StepContext, StepResult

PREFIX = "dbapi:"
MAX_ROWS_SHOWN = 1000


def is_dbapi(connection: str | None) -> bool:
    return connection is not None and connection.startswith(PREFIX)


def parse_connection(connection: str) -> tuple[str, str]:
    """('MODULE', 'ARGUMENT') of 'dbapi:MODULE:ARGUMENT'."""
    module, sep, argument = connection[len(PREFIX) :].partition(":")
    if not sep or not module:
        raise ValueError(f"invalid DB-API connection {connection!r}: use dbapi:MODULE:ARGUMENT")
    return module, argument


def run_dbapi(step: ClaimedStep, ctx: StepContext, base_env: Mapping[str, str] | None = None) -> StepResult:
    """Runs a dbapi remote_sql step to its end (done, error, timeout or stop)."""
    try:
        module, argument = parse_connection(step.connection or "")
    except ValueError as exc:
        return StepResult(succeeded=False, error=str(exc))
    if module not in ctx.dbapi_drivers:
        allowed = ", ".join(ctx.dbapi_drivers) or "none"
        return StepResult(
            succeeded=False,
            error=f"DB-API driver {module!r} is not in this agent's dbapi_drivers (allowed: {allowed})",
        )
    with tempfile.TemporaryDirectory(prefix=f"pgautomator-{step.step_run_id}-", dir=ctx.work_dir) as tmp:
        code_file = os.path.join(tmp, "step.sql")
        summary_file = os.path.join(tmp, "result.json")
        with open(code_file, "w", encoding="utf-8") as handle:
            handle.write(step.code)
        argv = [sys.executable, "-m", "pgautomator.executors.dbapi", module, code_file, summary_file]
        env = step_environment(step, os.environ if base_env is None else base_env, tmp)
        try:
            proc = start_process(argv, tmp, env, stdin=argument.encode("utf-8"))
        except OSError as exc:
            return StepResult(succeeded=False, error=f"cannot start the DB-API runner: {exc}")
        result = supervise(step, ctx, proc)
        summary = _read_summary(summary_file)
    result.exit_code = None  # the child's exit code means nothing to the user
    if result.succeeded:
        result.rows_affected = summary.get("rows")
    elif summary.get("error"):
        result.error = summary["error"]
        result.sqlstate = summary.get("sqlstate")
    return result


def _read_summary(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- the child process ---


def main(argv: list[str]) -> int:
    module_name, code_file, summary_file = argv
    argument = sys.stdin.buffer.read().decode("utf-8")
    with open(code_file, encoding="utf-8") as handle:
        code = handle.read()
    summary: dict[str, Any] = {}

    def finish(status: int) -> int:
        with open(summary_file, "w", encoding="utf-8") as handle:
            json.dump(summary, handle)
        return status

    try:
        driver: Any = importlib.import_module(module_name)
        conn = driver.connect(argument)
    except Exception as exc:
        summary["error"] = f"cannot connect with {module_name}: {exc}"
        print(summary["error"], file=sys.stderr)
        return finish(1)
    try:
        cur = conn.cursor()
        cur.execute(code)
        if cur.description:
            print("\t".join(str(col[0]) for col in cur.description))
            shown = cur.fetchmany(MAX_ROWS_SHOWN)
            for row in shown:
                print("\t".join("NULL" if v is None else str(v).replace("\t", " ") for v in row))
            more = len(cur.fetchall())
            if more:
                print(f"({more} more rows not shown)")
            summary["rows"] = len(shown) + more
        elif cur.rowcount is not None and cur.rowcount >= 0:
            summary["rows"] = cur.rowcount
        conn.commit()
    except Exception as exc:
        summary["error"] = str(exc) or type(exc).__name__
        sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if isinstance(sqlstate, str):
            summary["sqlstate"] = sqlstate
        print(f"ERROR: {summary['error']}", file=sys.stderr)
        # The connection may be gone: nothing to roll back then.
        with contextlib.suppress(Exception):
            conn.rollback()
        return finish(1)
    finally:
        conn.close()
    return finish(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""remote_sql steps: the step's SQL runs on another PostgreSQL server through
a libpq connection string or service name (passwords come from ~/.pgpass or
the service file), in autocommit mode or as one transaction.

The code is sent in one simple-query message, so it may hold several
statements; in autocommit mode PostgreSQL runs such a string as one implicit
transaction, so VACUUM or CREATE INDEX CONCURRENTLY belong in a step alone.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict

from pgautomator.libpq import with_tcp_defaults
from pgautomator.output import TailBuffer
from pgautomator.steps import ClaimedStep, StepContext, StepResult

MAX_ROWS_SHOWN = 1000
MAX_STATEMENT_TIMEOUT_MS = 2_147_483_647
Connect = Callable[..., psycopg.Connection[Any]]


def connection_params(step: ClaimedStep) -> dict[str, Any]:
    """libpq parameters for the step's connection.

    Without a user or service in the connection string the step connects as
    the job's run-as role, as in-database steps do.
    """
    params: dict[str, Any] = conninfo_to_dict(step.connection or "")
    if "user" not in params and "service" not in params and step.run_as:
        params["user"] = step.run_as
    params.setdefault("application_name", f"pgautomator step run {step.step_run_id}")
    params.setdefault("connect_timeout", "10")
    return with_tcp_defaults(params)


def run_remote_sql(step: ClaimedStep, ctx: StepContext, connect: Connect = psycopg.connect) -> StepResult:
    """Runs a remote_sql step to its end (done, error, timeout or stop)."""
    try:
        params = connection_params(step)
    except psycopg.Error as exc:
        return StepResult(succeeded=False, error=f"invalid connection string: {exc}")
    single = step.transaction == "single"
    messages = TailBuffer(ctx.output_limit)
    output = TailBuffer(ctx.output_limit)
    try:
        conn = connect(**params, autocommit=not single)
    except psycopg.Error as exc:
        return StepResult(
            succeeded=False, sqlstate=exc.sqlstate, error=f"cannot connect: {_message(exc)}".strip()
        )

    def on_notice(diag: psycopg.errors.Diagnostic) -> None:
        messages.write(f"{diag.severity}: {diag.message_primary}\n".encode())

    # Both a stop and the step's timeout cancel the running query; the cancel
    # is sent from a thread of its own so that whoever asks is not held up.
    def cancel() -> None:
        threading.Thread(target=_cancel, args=(conn,), name="cancel", daemon=True).start()

    timer: threading.Timer | None = None
    try:
        conn.add_notice_handler(on_notice)
        if step.timeout is not None:
            # Within PostgreSQL's int range (24.8 days) the server enforces it
            # too; beyond it, 0 (none there): our own timer alone, which a
            # clamped value would have beaten at 24.8 days.
            statement_timeout = step.timeout_ms if step.timeout_ms <= MAX_STATEMENT_TIMEOUT_MS else 0
            conn.execute(
                "SELECT pg_catalog.set_config('statement_timeout', %s, false)", (str(statement_timeout),)
            )
            timer = threading.Timer(step.timeout, lambda: ctx.stop.set(f"timed out after {step.timeout:g} s"))
            timer.daemon = True
            timer.start()
        ctx.stop.on_set(cancel)
        if ctx.stop.is_set():
            return StepResult(succeeded=False, error=ctx.stop.reason or "stopped")
        rows = _execute(conn, step.code, output)
        if single:
            conn.commit()
        return StepResult(
            succeeded=True, rows_affected=rows, output=output.text(), messages=messages.text() or None
        )
    except psycopg.Error as exc:
        error = _message(exc)
        if isinstance(exc, errors.QueryCanceled) and ctx.stop.is_set():
            error = ctx.stop.reason or "stopped"
        elif isinstance(exc, errors.QueryCanceled) and step.timeout is not None:
            # statement_timeout fired on the server before our own timer.
            error = f"timed out after {step.timeout:g} s ({error})"
        return StepResult(
            succeeded=False,
            sqlstate=exc.sqlstate,
            error=error,
            output=output.text() or None,
            messages=messages.text() or None,
        )
    finally:
        if timer is not None:
            timer.cancel()
        conn.close()


def _execute(conn: psycopg.Connection[Any], code: str, output: TailBuffer) -> int:
    """Runs the code; writes each statement's tag and rows to `output`;
    returns the number of rows the statements affected or returned."""
    total = 0
    with conn.cursor() as cur:
        # No parameters: psycopg sends the simple-query message, so several
        # statements may be given at once.
        cur.execute(code.encode())
        while True:
            if cur.rowcount > 0:
                total += cur.rowcount
            if cur.description is not None:
                names = [col.name for col in cur.description]
                output.write(("\t".join(names) + "\n").encode())
                shown = cur.fetchmany(MAX_ROWS_SHOWN)
                for row in shown:
                    output.write(("\t".join(_cell(v) for v in row) + "\n").encode())
                if cur.rowcount > len(shown):
                    output.write(f"({cur.rowcount - len(shown)} more rows not shown)\n".encode())
            if cur.statusmessage:
                output.write((cur.statusmessage + "\n").encode())
            if not cur.nextset():
                break
    return total


def _cell(value: object) -> str:
    return "NULL" if value is None else str(value).replace("\t", " ").replace("\n", " ")


def _message(exc: psycopg.Error) -> str:
    diag = exc.diag
    text = diag.message_primary or str(exc).strip()
    if diag.message_detail:
        text += f"\nDETAIL: {diag.message_detail}"
    if diag.message_hint:
        text += f"\nHINT: {diag.message_hint}"
    return text


def _cancel(conn: psycopg.Connection[Any]) -> None:
    # The query may have ended meanwhile or the server be gone: nothing to cancel then.
    with contextlib.suppress(psycopg.Error, OSError):
        conn.cancel_safe(timeout=10)

"""remote_sql executor against the test cluster (no agent API needed):
statements, NOTICEs, rows, SQLSTATEs, transaction modes, timeout and stop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from conftest import conninfo

from helpers import shell_step, wait_for
from pgautomator.executors.remote_sql import connection_params, run_remote_sql
from pgautomator.steps import ClaimedStep, StepContext, StepResult, StopSignal


def sql_step(code: str, **overrides: Any) -> ClaimedStep:
    values: dict[str, Any] = {"kind": "remote_sql", "connection": conninfo(), "step_run_id": 4242}
    values.update(overrides)
    return shell_step(code, **values)


@pytest.fixture
def scratch(admin: psycopg.Connection[Any]) -> Any:
    admin.execute("DROP TABLE IF EXISTS public.agent_scratch")
    admin.execute("CREATE TABLE public.agent_scratch (n integer)")
    yield admin
    admin.execute("DROP TABLE IF EXISTS public.agent_scratch")


def test_statements_rows_notices_and_output(scratch: psycopg.Connection[Any]) -> None:
    code = (
        "INSERT INTO public.agent_scratch SELECT generate_series(1, 3);"
        "DO $$ BEGIN RAISE NOTICE 'hello from %', 'remote'; END $$;"
        "UPDATE public.agent_scratch SET n = n + 10 WHERE n > 1;"
        "SELECT n FROM public.agent_scratch ORDER BY n"
    )
    result = run_remote_sql(sql_step(code), StepContext())
    assert result.succeeded, result.error
    assert result.rows_affected == 3 + 2 + 3
    assert result.messages == "NOTICE: hello from remote\n"
    assert result.output == "INSERT 0 3\nDO\nUPDATE 2\nn\n1\n12\n13\nSELECT 3\n"


def test_error_gives_sqlstate_and_message(cluster: None) -> None:
    result = run_remote_sql(sql_step("SELECT 1; SELECT * FROM public.no_such_table"), StepContext())
    assert not result.succeeded
    assert result.sqlstate == "42P01"
    assert result.error == 'relation "public.no_such_table" does not exist'


def test_single_transaction_rolls_back_everything(scratch: psycopg.Connection[Any]) -> None:
    step = sql_step("INSERT INTO public.agent_scratch VALUES (1)", transaction="single")
    assert run_remote_sql(step, StepContext()).succeeded
    failing = sql_step("INSERT INTO public.agent_scratch VALUES (2); SELECT 1/0", transaction="single")
    result = run_remote_sql(failing, StepContext())
    assert result.sqlstate == "22012"
    assert scratch.execute("SELECT array_agg(n) FROM public.agent_scratch").fetchone() == ([1],)


def test_autocommit_allows_vacuum_and_single_refuses_it(scratch: psycopg.Connection[Any]) -> None:
    assert run_remote_sql(sql_step("VACUUM public.agent_scratch"), StepContext()).succeeded
    result = run_remote_sql(sql_step("VACUUM public.agent_scratch", transaction="single"), StepContext())
    assert result.sqlstate == "25001"


def test_connects_as_run_as_unless_the_string_names_a_user(make_role: Callable[..., str]) -> None:
    role = make_role()
    params = connection_params(sql_step("SELECT 1", connection="host=h dbname=d", run_as=role))
    assert params["user"] == role
    assert connection_params(sql_step("x", connection="service=s", run_as=role)).get("user") is None
    step = sql_step("SELECT session_user", connection=_without_user(conninfo()), run_as=role)
    result = run_remote_sql(step, StepContext())
    assert result.succeeded, result.error
    assert result.output == f"session_user\n{role}\nSELECT 1\n"


def _without_user(info: str) -> str:
    return " ".join(part for part in info.split() if not part.startswith("user="))


def test_bad_connection_is_a_failed_step(cluster: None) -> None:
    result = run_remote_sql(sql_step("SELECT 1", connection=conninfo(dbname="no_such_db")), StepContext())
    assert not result.succeeded
    assert result.error is not None and result.error.startswith("cannot connect:")
    assert "no_such_db" in result.error
    bad = run_remote_sql(sql_step("SELECT 1", connection="host='unclosed"), StepContext())
    assert bad.error is not None and bad.error.startswith("invalid connection string")


def _backend_running(admin: psycopg.Connection[Any], step_run_id: int) -> bool:
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state = 'active'",
        (f"pgautomator step run {step_run_id}",),
    ).fetchone()
    return row is not None and row[0] > 0


def test_timeout_cancels_the_query(admin: psycopg.Connection[Any]) -> None:
    result = run_remote_sql(sql_step("SELECT pg_sleep(300)", timeout_ms=300, step_run_id=4243), StepContext())
    assert not result.succeeded
    assert result.sqlstate == "57014"
    assert result.error is not None and result.error.startswith("timed out after 0.3 s")
    wait_for(lambda: not _backend_running(admin, 4243), what="the query to end")


def test_stop_cancels_the_query(admin: psycopg.Connection[Any]) -> None:
    stop = StopSignal()
    results: list[StepResult] = []
    step = sql_step("SELECT pg_sleep(300)", step_run_id=4244)
    worker = threading.Thread(target=lambda: results.append(run_remote_sql(step, StepContext(stop=stop))))
    worker.start()
    wait_for(lambda: _backend_running(admin, 4244), what="the query to start")
    stop.set("stopped by request")
    worker.join(60)
    assert results and not results[0].succeeded
    assert results[0].sqlstate == "57014"
    assert results[0].error == "stopped by request"
    wait_for(lambda: not _backend_running(admin, 4244), what="the query to end")


def test_a_timeout_beyond_postgresqls_range_still_runs(cluster: None) -> None:
    # A 30-day job timeout: statement_timeout of 2592000000 ms was refused
    # (22023, exceeds integer range) and the step failed before it ran.
    step = sql_step("SELECT current_setting('statement_timeout')", timeout_ms=30 * 86400 * 1000)
    result = run_remote_sql(step, StepContext())
    assert result.succeeded, result.error
    # (none on the server: past its range, the agent's own timer alone)
    assert result.output == "current_setting\n0\nSELECT 1\n"

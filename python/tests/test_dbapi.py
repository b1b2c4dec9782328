"""remote_sql steps through a DB-API driver (sqlite3 from the standard
library): rows, errors, the driver allow-list, and a timeout that kills the
runner process."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from helpers import shell_step
from pgautomator.config import ConfigError, load_config
from pgautomator.executors.dbapi import parse_connection, run_dbapi
from pgautomator.executors.shell import start_process
from pgautomator.steps import ClaimedStep, StepContext

ALLOWED = StepContext(dbapi_drivers=("sqlite3",))


def step(db: Path, code: str, **overrides: Any) -> ClaimedStep:
    return shell_step(code, kind="remote_sql", connection=f"dbapi:sqlite3:{db}", **overrides)


def test_statements_rows_and_output(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    assert run_dbapi(step(db, "CREATE TABLE t (n integer, s text)"), ALLOWED).succeeded
    inserted = run_dbapi(step(db, "INSERT INTO t VALUES (1, 'a'), (2, NULL)"), ALLOWED)
    assert inserted.succeeded, inserted.error
    assert inserted.rows_affected == 2
    selected = run_dbapi(step(db, "SELECT n, s FROM t ORDER BY n"), ALLOWED)
    assert selected.succeeded
    assert selected.output == "n\ts\n1\ta\n2\tNULL\n"
    assert selected.rows_affected == 2
    assert sqlite3.connect(db).execute("SELECT count(*) FROM t").fetchone() == (2,)  # committed


def test_error_is_reported_and_rolled_back(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    result = run_dbapi(step(db, "SELECT * FROM missing"), ALLOWED)
    assert not result.succeeded
    assert result.error == "no such table: missing"
    assert result.exit_code is None


def test_driver_must_be_allowed(tmp_path: Path) -> None:
    result = run_dbapi(step(tmp_path / "x.db", "SELECT 1"), StepContext())
    assert not result.succeeded
    assert result.error == "DB-API driver 'sqlite3' is not in this agent's dbapi_drivers (allowed: none)"
    assert not (tmp_path / "x.db").exists()  # never imported, never connected


def test_timeout_kills_the_runner(tmp_path: Path) -> None:
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    result = run_dbapi(step(tmp_path / "app.db", endless, timeout_ms=500), ALLOWED)
    assert not result.succeeded
    assert result.error == "timed out after 0.5 s"


def test_connection_syntax() -> None:
    assert parse_connection("dbapi:sqlite3:/tmp/a:b.db") == ("sqlite3", "/tmp/a:b.db")
    with pytest.raises(ValueError, match="use dbapi:MODULE:ARGUMENT"):
        parse_connection("dbapi:sqlite3")


def test_dbapi_drivers_setting() -> None:
    assert load_config({"db_name": "x", "dbapi_drivers": "sqlite3, pyodbc"}, {}).dbapi_drivers == (
        "sqlite3",
        "pyodbc",
    )
    with pytest.raises(ConfigError, match=r"^dbapi_drivers: 'os; rm' is not a Python module name"):
        load_config({"db_name": "x", "dbapi_drivers": ["os; rm"]}, {})


def test_the_connection_argument_is_not_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `ps` showed it to every local user: an ODBC PWD=, an Oracle user/pw@dsn.
    started: list[list[str]] = []

    def spy(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        started.append(argv)
        return start_process(argv, *args, **kwargs)

    monkeypatch.setattr("pgautomator.executors.dbapi.start_process", spy)
    db = tmp_path / "PWD=secret.db"
    result = run_dbapi(step(db, "CREATE TABLE t (n integer)"), ALLOWED)
    assert result.succeeded, result.error
    assert db.exists()
    (argv,) = started
    assert not any("secret" in part for part in argv)

"""Random arguments to the API never reach an internal error or crash a
backend, and a refused call writes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

texts = st.one_of(
    st.none(),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30),
    st.sampled_from(
        ["", " ", "next", "fail", "skip", "queue", "parallel", "sql", "shell", "postgres", "x" * 250]
    ),
)
ints = st.one_of(st.none(), st.integers(min_value=-(2**31), max_value=2**31 - 1))
intervals = st.one_of(st.none(), st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=3)))

CALLS: dict[str, tuple[str, list[st.SearchStrategy[Any]]]] = {
    "create_job": (
        "SELECT pgautomator.create_job(%s, description => %s, category => %s, run_as => %s, "
        "timeout => %s, overlap => %s, max_parallel => %s, misfire => %s, misfire_limit => %s)",
        [texts, texts, texts, texts, intervals, texts, ints, texts, ints],
    ),
    "add_step": (
        "SELECT pgautomator.add_step('fuzz-job', %s, %s, kind => %s, database => %s, connection => %s, "
        "on_success => %s, on_failure => %s, retries => %s, retry_interval => %s, timeout => %s, "
        "transaction => %s, at_position => %s)",
        [texts, texts, texts, texts, texts, texts, texts, ints, intervals, intervals, texts, ints],
    ),
    "alter_job": (
        "SELECT pgautomator.alter_job('fuzz-job', name => %s, run_as => %s, timeout => %s, overlap => %s, "
        "max_parallel => %s, agent => %s)",
        [texts, texts, intervals, texts, ints, texts],
    ),
    "move_step": ("SELECT pgautomator.move_step('fuzz-job', %s, %s)", [texts, ints]),
    "drop_step": ("SELECT pgautomator.drop_step('fuzz-job', %s)", [texts]),
}


@pytest.fixture(scope="module")
def fuzz_conn(request: pytest.FixtureRequest) -> Any:
    from conftest import _dsn

    conn = psycopg.connect(_dsn(), autocommit=True)
    conn.execute("SELECT pgautomator.drop_job(name) FROM pgautomator.job WHERE name = 'fuzz-job'")
    conn.execute("SELECT pgautomator.create_job('fuzz-job')")
    conn.execute("SELECT pgautomator.add_step('fuzz-job', 'first', 'SELECT 1')")
    yield conn
    conn.execute("SELECT pgautomator.drop_job(name) FROM pgautomator.job WHERE name LIKE 'fuzz%'")
    conn.close()


def _snapshot(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT j.name, j.run_as, j.timeout, j.overlap, s.name, s.position, s.code "
        "FROM pgautomator.job j LEFT JOIN pgautomator.step s ON s.job_id = j.id "
        "WHERE j.name = 'fuzz-job' ORDER BY s.position"
    ).fetchall()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), call=st.sampled_from(sorted(CALLS)))
def test_random_arguments_get_clean_errors(
    fuzz_conn: psycopg.Connection, data: st.DataObject, call: str
) -> None:
    sql, strategies = CALLS[call]
    args = [data.draw(s) for s in strategies]
    # Every call runs in a transaction rolled back afterwards, so the fixture
    # job stays as it is and refusals can be compared with the state before.
    with fuzz_conn.transaction(force_rollback=True):
        before = _snapshot(fuzz_conn)
        try:
            with fuzz_conn.transaction():
                fuzz_conn.execute(sql, args)
        except psycopg.Error as exc:
            state = exc.sqlstate or ""
            assert not state.startswith("XX"), f"{call}{args!r} -> internal error {exc}"
            assert state[:2] in {"22", "23", "42", "2B", "3D", "55"}, f"{call}{args!r} -> {state} {exc}"
            assert _snapshot(fuzz_conn) == before, "a refused call changed something"
    assert fuzz_conn.execute("SELECT 1").fetchone() == (1,)

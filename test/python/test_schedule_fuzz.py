"""Random arguments to the schedule API get clean errors (never an internal
error, nor a PL/Python traceback), and a refused call stores nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import _dsn

texts = st.one_of(
    st.none(),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20),
    st.sampled_from(["", " ", "last", "mon", "weekdays", "day", "weekend day", "x" * 250]),
)
frequencies = st.one_of(
    texts, st.sampled_from(["once", "daily", "weekly", "monthly", "monthly_relative", "cron", "DAILY"])
)
crons = st.one_of(
    texts,
    st.sampled_from(
        ["* * * * *", "@hourly", "@reboot", "30 seconds", "0 0 $ * *", "0 0 30 2 *", "1-2-3 * * * *"]
    ),
    st.lists(
        st.sampled_from(
            ["*", "*/0", "*/7", "5", "60", "1-5", "5-1", "mon", "$", ",", "1/3", "jan-mar", "?", "-1"]
        ),
        min_size=3,
        max_size=7,
    ).map(" ".join),
)
zones = st.one_of(
    texts,
    st.sampled_from(["UTC", "Europe/Berlin", "Mars/Olympus", "../etc/passwd", "/etc/localtime", "EST5EDT"]),
)
ints = st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1), st.integers(-2, 40))
arrays = st.one_of(
    st.none(),
    st.lists(
        st.one_of(
            st.none(), st.sampled_from(["0", "1", "15", "31", "32", "last", "mon", "7", "8", "weekend"])
        )
    ),
)
times = st.one_of(st.none(), st.times())
instants = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)),
)
dates = st.one_of(st.none(), st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))

CALLS: dict[str, tuple[str, list[st.SearchStrategy[Any]]]] = {
    "create_schedule": (
        "SELECT pgautomator.create_schedule('fuzz-new', %s, every => %s, on_date => %s, weekdays => %s, "
        "month_days => %s, relative_week => %s, relative_day => %s, at_time => %s, every_n => %s, "
        "every_unit => %s, between_start => %s, between_end => %s, cron => %s, timezone => %s, "
        "starts_at => %s, ends_at => %s)",
        [
            *(
                frequencies,
                ints,
                dates,
                arrays,
                arrays,
                texts,
                texts,
                times,
                ints,
                texts,
                times,
                times,
                crons,
            ),
            *(zones, instants, instants),
        ],
    ),
    "alter_schedule": (
        "SELECT pgautomator.alter_schedule('fuzz-sched', frequency => %s, every => %s, weekdays => %s, "
        "month_days => %s, at_time => %s, every_n => %s, every_unit => %s, cron => %s, timezone => %s, "
        "starts_at => %s, ends_at => %s, name => %s)",
        [frequencies, ints, arrays, arrays, times, ints, texts, crons, zones, instants, instants, texts],
    ),
    "add_exclusion": (
        "SELECT pgautomator.add_exclusion('fuzz-sched', on_date => %s, from_at => %s, until_at => %s, "
        "reason => %s)",
        [dates, instants, instants, texts],
    ),
    "next_runs": ("SELECT count(*) FROM pgautomator.next_runs('fuzz-sched', %s, %s)", [instants, ints]),
    "describe_schedule": ("SELECT pgautomator.describe_schedule(%s::text)", [texts]),
    "schedule": ("SELECT pgautomator.schedule(%s, %s, %s)", [texts, crons, texts]),
}


@pytest.fixture(scope="module")
def conn() -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(_dsn(), autocommit=True) as c:
        c.execute("SET client_min_messages = warning")
        c.execute(
            "SELECT pgautomator.drop_schedule(name, force => true) "
            "FROM pgautomator.schedule WHERE name LIKE 'fuzz%'"
        )
        c.execute(
            "SELECT pgautomator.create_schedule('fuzz-sched', 'weekly', weekdays => '{mon}', "
            "timezone => 'America/New_York', starts_at => '2024-01-01')"
        )
        yield c
        c.execute(
            "SELECT pgautomator.drop_schedule(name, force => true) "
            "FROM pgautomator.schedule WHERE name LIKE 'fuzz%'"
        )


def _snapshot(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT s.*, (SELECT count(*) FROM pgautomator.exclusion e WHERE e.schedule_id = s.id), "
        "(SELECT count(*) FROM pgautomator.job) FROM pgautomator.schedule s ORDER BY s.id"
    ).fetchall()


@settings(max_examples=400, deadline=None)
@given(data=st.data(), call=st.sampled_from(sorted(CALLS)))
def test_random_schedule_arguments_get_clean_errors(
    conn: psycopg.Connection[Any], data: st.DataObject, call: str
) -> None:
    sql, strategies = CALLS[call]
    args = [data.draw(s) for s in strategies]
    with conn.transaction(force_rollback=True):
        before = _snapshot(conn)
        try:
            with conn.transaction():
                conn.execute(sql, args)
        except psycopg.Error as exc:
            state = exc.sqlstate or ""
            message = str(exc)
            assert not state.startswith("XX"), f"{call}{args!r} -> internal error {exc}"
            assert state[:2] in {"22", "23", "42", "2B"}, f"{call}{args!r} -> {state} {exc}"
            assert "plpy" not in message and "Traceback" not in message, f"{call}{args!r} -> {exc}"
            assert _snapshot(conn) == before, "a refused call changed something"
    assert conn.execute("SELECT 1").fetchone() == (1,)

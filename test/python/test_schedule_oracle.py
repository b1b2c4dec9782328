"""Property test: random schedules of every type, in zones with and without
daylight saving, agree with the brute-force oracle in schedule_oracle.py.

Each hypothesis example is a batch of schedules created through the public
API in one transaction (rolled back), with their next_runs fetched in one
query: thousands of cases per run at a few SQL round trips each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schedule_oracle import DAYS, MONTHS, Oracle, Spec, offsets

from conftest import _dsn

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Lord_Howe",  # half-hour shift
    "Asia/Tokyo",  # no daylight saving
    "Asia/Kolkata",  # +05:30, none
    "Asia/Kathmandu",  # +05:45
    "Pacific/Chatham",  # +12:45 / +13:45
    "America/St_Johns",  # -03:30 / -02:30
    "Antarctica/Troll",  # two-hour shift
    "America/Santiago",  # changes at midnight
    "Africa/Casablanca",  # suspended around Ramadan
    "Australia/Adelaide",  # southern hemisphere, +09:30
]
LOW = int(datetime(2010, 1, 1, tzinfo=UTC).timestamp())
HIGH = int(datetime(2034, 1, 1, tzinfo=UTC).timestamp())
HORIZON_DAYS = 800
BATCH = 30


@dataclass
class Case:
    spec: Spec
    after_us: int
    n: int


def cron_field(draw: st.DrawFn, low: int, high: int, names: list[str] | None = None) -> str:
    def value() -> str:
        v = draw(st.integers(low, high))
        if names and draw(st.booleans()):
            return names[v - low] if len(names) == high - low + 1 else names[v % 7]
        return str(v)

    kind = draw(st.sampled_from(["*", "*/k", "a", "a-b", "a-b/k", "a,b", "a/k"]))
    if kind == "*":
        return "*"
    if kind == "*/k":
        return f"*/{draw(st.integers(1, high - low + 1))}"
    if kind == "a":
        return value()
    if kind in ("a-b", "a-b/k"):
        a, b = sorted((draw(st.integers(low, high)), draw(st.integers(low, high))))
        text = f"{a}-{b}"
        return text + (f"/{draw(st.integers(1, 6))}" if kind == "a-b/k" else "")
    if kind == "a,b":
        return f"{value()},{value()}"
    return f"{draw(st.integers(low, high))}/{draw(st.integers(1, 10))}"


@st.composite
def cron_expr(draw: st.DrawFn) -> str:
    form = draw(st.sampled_from(["fields"] * 8 + ["seconds_field", "macro", "n_seconds"]))
    if form == "macro":
        return draw(
            st.sampled_from(["@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"])
        )
    if form == "n_seconds":
        return f"{draw(st.integers(5, 59))} seconds"
    dom = cron_field(draw, 1, 31)
    if draw(st.integers(0, 5)) == 0:
        dom = draw(st.sampled_from(["$", "15,$", "1,$"]))
    fields = [
        cron_field(draw, 0, 59),
        cron_field(draw, 0, 23)
        if draw(st.booleans())
        else draw(st.sampled_from(["0-3", "1", "2", "*/2", "1,2", "0"])),
        dom,
        cron_field(draw, 1, 12, [m.upper() if draw(st.booleans()) else m for m in MONTHS]),
        cron_field(draw, 0, 6, DAYS)
        if draw(st.booleans())
        else draw(st.sampled_from(["*", "7", "1-5", "sat,sun"])),
    ]
    if form == "seconds_field":
        fields.insert(0, draw(st.sampled_from(["0", "30", "*/15", "10,40", "5-8"])))
    return " ".join(fields)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    zone = draw(st.sampled_from(ZONES))
    changes = [t for t in offsets(zone)[0][1:] if LOW < t < HIGH]
    if changes and draw(st.integers(0, 3)) > 0:
        # Mostly just before a daylight-saving change, where the rules bite.
        after = (draw(st.sampled_from(changes)) - draw(st.integers(0, 3 * 86400))) * 1_000_000
        starts = after - draw(st.integers(-86400, 400 * 86400)) * 1_000_000
    else:
        starts = draw(st.integers(LOW, HIGH)) * 1_000_000 + draw(st.sampled_from([0, 0, 0, 123456]))
        after = starts + draw(st.integers(-40 * 86400, 500 * 86400)) * 1_000_000
    after += draw(st.sampled_from([0, 0, 999999]))
    frequency = draw(
        st.sampled_from(["once", "daily", "weekly", "monthly", "monthly_relative", "cron", "cron"])
    )
    spec = Spec(frequency=frequency, timezone=zone, starts_at=starts)
    if draw(st.integers(0, 4)) == 0:
        spec.ends_at = starts + draw(st.integers(1, 600 * 86400)) * 1_000_000
    if frequency == "cron":
        spec.cron = draw(cron_expr())
    else:
        spec.every = draw(st.sampled_from([1, 1, 1, 2, 3, 5, 13]))
        within = draw(st.sampled_from(["at", "at", "minutes", "hours", "seconds"]))
        if within == "at":
            # Changes happen at night: times of day there most of the time.
            minute = draw(st.one_of(st.integers(60, 180), st.integers(0, 240), st.integers(0, 1439)))
            spec.at_time = minute * 60 + draw(st.sampled_from([0, 0, 0, 0, 30]))
        else:
            spec.every_unit = within.rstrip("s")
            spec.every_n = {
                "minutes": draw(st.integers(1, 240)),
                "hours": draw(st.integers(1, 13)),
                "seconds": draw(st.integers(7, 3600)),
            }[within]
            a = draw(st.integers(0, 1439)) * 60
            b = draw(st.integers(a, 86399 if within != "seconds" else min(86399, a + 4 * 3600)))
            spec.between_start, spec.between_end = a, b
        if frequency == "once":
            spec.every = 1
            local_day = datetime.fromtimestamp(after // 1_000_000, UTC).date()
            spec.on_date = local_day + timedelta(days=draw(st.integers(-2, 60)))
        elif frequency == "weekly":
            spec.weekdays = sorted(draw(st.sets(st.integers(1, 7), min_size=1)))
        elif frequency == "monthly":
            # Month ends are where rules differ: days 28 to 31 often.
            spec.month_days = sorted(
                draw(st.sets(st.one_of(st.integers(1, 31), st.integers(28, 31)), max_size=3))
            )
            spec.month_last = not spec.month_days or draw(st.booleans())
        elif frequency == "monthly_relative":
            spec.relative_week = draw(st.sampled_from(["first", "second", "third", "fourth", "last"]))
            spec.relative_day = draw(
                st.sampled_from(
                    [
                        *("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
                        *("day", "weekday", "weekend_day"),
                    ]
                )
            )
    if draw(st.integers(0, 3)) == 0:
        base = datetime.fromtimestamp(after // 1_000_000, UTC).date()
        dates = {base + timedelta(days=draw(st.integers(0, 30))) for _ in range(2)}
        run_from = base + timedelta(days=draw(st.integers(0, 30)))
        dates |= {run_from + timedelta(days=i) for i in range(draw(st.integers(0, 4)))}  # a run of days
        spec.excluded_dates = sorted(dates)
        # Windows apart, adjacent or overlapping (the engine merges them).
        a = after + draw(st.integers(0, 20 * 86400)) * 1_000_000
        for _ in range(draw(st.integers(1, 3))):
            b = a + draw(st.integers(1, 3 * 86400)) * 1_000_000
            spec.excluded_windows.append((a, b))
            a = b + draw(st.sampled_from([0, draw(st.integers(-86400, 86400))])) * 1_000_000
    return Case(spec, after, draw(st.integers(1, 8)))


def _ts(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _tod(seconds: int | None) -> time | None:
    return None if seconds is None else time(seconds // 3600, seconds // 60 % 60, seconds % 60)


def _create_args(name: str, s: Spec) -> dict[str, Any]:
    return {
        "name": name,
        "frequency": s.frequency,
        "every": s.every,
        "on_date": s.on_date,
        "weekdays": [str(d) for d in s.weekdays] if s.weekdays else None,
        "month_days": ([str(d) for d in s.month_days] + (["last"] if s.month_last else []))
        if s.frequency == "monthly"
        else None,
        "relative_week": s.relative_week,
        "relative_day": s.relative_day,
        "at_time": _tod(s.at_time),
        "every_n": s.every_n,
        "every_unit": s.every_unit,
        "between_start": _tod(s.between_start),
        "between_end": _tod(s.between_end),
        "cron": s.cron,
        "timezone": s.timezone,
        "starts_at": _ts(s.starts_at),
        "ends_at": None if s.ends_at is None else _ts(s.ends_at),
    }


CREATE = """
SELECT pgautomator.create_schedule(%(name)s, %(frequency)s, every => %(every)s, on_date => %(on_date)s,
    weekdays => %(weekdays)s::text[], month_days => %(month_days)s::text[],
    relative_week => %(relative_week)s, relative_day => %(relative_day)s, at_time => %(at_time)s::time,
    every_n => %(every_n)s, every_unit => %(every_unit)s, between_start => %(between_start)s::time,
    between_end => %(between_end)s::time, cron => %(cron)s, timezone => %(timezone)s,
    starts_at => %(starts_at)s, ends_at => %(ends_at)s)
"""
EXCLUDE = """
SELECT pgautomator.add_exclusion(%(name)s, on_date => %(on_date)s, from_at => %(from_at)s,
                                 until_at => %(until_at)s)
"""
NEXT_RUNS = """
SELECT q.k, ARRAY(SELECT pgautomator.next_runs(q.k, q.a, q.n))
  FROM unnest(%s::text[], %s::timestamptz[], %s::int[]) AS q(k, a, n)
"""


@pytest.fixture(scope="module")
def conn() -> Any:
    with psycopg.connect(_dsn()) as c:
        c.execute("SET client_min_messages = warning")
        c.commit()
        yield c


def check_batch(conn: psycopg.Connection[Any], batch: list[Case]) -> None:
    names = [f"prop{i}" for i in range(len(batch))]
    try:
        with conn.cursor() as cur:
            cur.executemany(CREATE, [_create_args(k, c.spec) for k, c in zip(names, batch, strict=True)])
            exclusions: list[dict[str, Any]] = []
            for k, c in zip(names, batch, strict=True):
                exclusions += [
                    {"name": k, "on_date": d, "from_at": None, "until_at": None}
                    for d in c.spec.excluded_dates
                ]
                exclusions += [
                    {"name": k, "on_date": None, "from_at": _ts(a), "until_at": _ts(b)}
                    for a, b in c.spec.excluded_windows
                ]
            if exclusions:
                cur.executemany(EXCLUDE, exclusions)
            cur.execute(NEXT_RUNS, (names, [_ts(c.after_us) for c in batch], [c.n for c in batch]))
            got = {k: [int(x.timestamp()) for x in runs] for k, runs in cur.fetchall()}
    finally:
        conn.rollback()
    for k, case in zip(names, batch, strict=True):
        horizon = case.after_us // 1_000_000 + HORIZON_DAYS * 86400
        want = Oracle(case.spec).fires(case.after_us, case.n, horizon)
        engine = got[k] if len(want) == case.n else [x for x in got[k] if x <= horizon]
        shown = [[str(_ts(x * 1_000_000)) for x in xs] for xs in (engine, want)]
        assert engine == want, (
            f"engine and oracle disagree for {case.spec} after {_ts(case.after_us)} n={case.n}:\n"
            f"  engine {shown[0]}\n  oracle {shown[1]}"
        )


@settings(
    max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(batch=st.lists(cases(), min_size=BATCH, max_size=BATCH))
def test_engine_agrees_with_oracle(conn: psycopg.Connection[Any], batch: list[Case]) -> None:
    check_batch(conn, batch)


def test_oracle_sees_the_rules() -> None:
    """The oracle itself, on cases worked out by hand (README "Schedules")."""
    start = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
    ny = Spec("daily", "America/New_York", start, at_time=2 * 3600 + 1800)
    after = int(datetime(2024, 3, 9, tzinfo=UTC).timestamp()) * 1_000_000
    got = [_ts(x * 1_000_000) for x in Oracle(ny).fires(after, 3, 2**40)]
    assert got == [
        datetime(2024, 3, 9, 7, 30, tzinfo=UTC),
        datetime(2024, 3, 10, 7, 0, tzinfo=UTC),  # 02:30 does not exist: 03:00 EDT
        datetime(2024, 3, 11, 6, 30, tzinfo=UTC),
    ]
    autumn = Spec("cron", "America/New_York", start, cron="0 * * * *")
    after = int(datetime(2024, 11, 3, 4, 30, tzinfo=UTC).timestamp()) * 1_000_000
    got = [_ts(x * 1_000_000) for x in Oracle(autumn).fires(after, 3, 2**40)]
    assert got == [
        datetime(2024, 11, 3, 5, 0, tzinfo=UTC),  # 01:00 EDT; 01:00 EST does not fire again
        datetime(2024, 11, 3, 7, 0, tzinfo=UTC),
        datetime(2024, 11, 3, 8, 0, tzinfo=UTC),
    ]
    vixie = Spec("cron", "UTC", start, cron="0 0 13 * 5")
    after = int(datetime(2024, 9, 1, tzinfo=UTC).timestamp()) * 1_000_000
    got = [_ts(x * 1_000_000) for x in Oracle(vixie).fires(after, 3, 2**40)]
    assert [g.date() for g in got] == [date(2024, 9, 6), date(2024, 9, 13), date(2024, 9, 20)]

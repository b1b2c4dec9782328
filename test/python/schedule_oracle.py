"""An independent oracle for schedule fire instants, for the property tests.

It shares no code or method with the engine (sql/45_schedule_engine.sql):
the engine maps local wall times to instants with zoneinfo; this walks the
UTC timeline second by second (or minute by minute), reads the local wall
clock with python-dateutil's tz implementation, and fires at an instant
when a wall time that the rule matches has just been reached for the first
time. That is the documented rule read literally: a wall time skipped by a
forward jump fires at the first instant after the jump, a wall time that
happens twice fires only the first time. Stretches of wall time that cannot
match (wrong day, before the first or after the last time of day) are
skipped when no offset change lies inside them.
"""

from __future__ import annotations

import bisect
import calendar
import functools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from dateutil import tz

EPOCH_DAY = date(1970, 1, 1).toordinal()
DAY = 86400
RANGE = (datetime(2008, 1, 1, tzinfo=UTC), datetime(2040, 1, 1, tzinfo=UTC))


@functools.cache
def offsets(zone: str) -> tuple[list[int], list[int]]:
    """UTC seconds at which each offset starts (within RANGE) and the offset."""
    z = tz.gettz(zone)
    assert z is not None, zone

    def off(s: int) -> int:
        o = datetime.fromtimestamp(s, UTC).astimezone(z).utcoffset()
        assert o is not None
        return int(o.total_seconds())

    lo_s, hi_s = (int(x.timestamp()) for x in RANGE)
    starts, offs = [lo_s], [off(lo_s)]
    s, step = lo_s, 4 * 3600
    while s < hi_s:
        nxt = s + step
        o = off(nxt)
        if o != offs[-1]:
            a, b = s, nxt  # off(a) is the old offset, off(b) the new one
            while b - a > 1:
                mid = (a + b) // 2
                if off(mid) == offs[-1]:
                    a = mid
                else:
                    b = mid
            starts.append(b)
            offs.append(o)
        s = nxt
    return starts, offs


@dataclass
class Cron:
    seconds: set[int]
    minutes: set[int]
    hours: set[int]
    dom: set[int]
    dom_last: bool
    months: set[int]
    dow: set[int]  # 0 = Sunday
    either: bool  # both day fields restricted: a day matching either fires


MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _cron_values(
    text: str, low: int, high: int, names: list[str] | None, first: int
) -> tuple[set[int], bool]:
    values: set[int] = set()
    last = False
    for part in text.split(","):
        if part == "$":
            last = True
            continue
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            a, b = low, high
        else:
            ends = [
                names.index(x.lower()) + first if names and x.lower() in names else int(x)
                for x in base.split("-")
            ]
            a = ends[0]
            b = ends[1] if len(ends) > 1 else (high if step_text else a)
        values.update(x for x in range(low, high + 1) if a <= x <= b and (x - a) % step == 0)
    return values, last


def parse_cron(expr: str) -> Cron:
    text = expr.strip()
    if text.lower().endswith(("seconds", "second")):
        text = f"*/{int(text.split()[0])} * * * * *"
    text = MACROS.get(text.lower(), text)
    fields = text.split()
    if len(fields) == 5:
        fields.insert(0, "0")
    sec, _ = _cron_values(fields[0], 0, 59, None, 0)
    mins, _ = _cron_values(fields[1], 0, 59, None, 0)
    hours, _ = _cron_values(fields[2], 0, 23, None, 0)
    dom, dom_last = _cron_values(fields[3], 1, 31, None, 0)
    months, _ = _cron_values(fields[4], 1, 12, MONTHS, 1)
    dow, _ = _cron_values(fields[5], 0, 7, DAYS, 0)
    if 7 in dow:
        dow = (dow - {7}) | {0}
    either = not fields[3].startswith("*") and not fields[5].startswith("*")
    return Cron(sec, mins, hours, dom, dom_last, months, dow, either)


@dataclass
class Spec:
    """A schedule as the test creates it (the create_schedule arguments)."""

    frequency: str
    timezone: str
    starts_at: int  # epoch microseconds
    ends_at: int | None = None
    every: int = 1
    on_date: date | None = None
    weekdays: list[int] | None = None  # ISO
    month_days: list[int] = field(default_factory=list)
    month_last: bool = False
    relative_week: str | None = None
    relative_day: str | None = None
    at_time: int | None = None  # seconds of the day
    every_n: int | None = None
    every_unit: str | None = None
    between_start: int | None = None
    between_end: int | None = None
    cron: str | None = None
    excluded_dates: list[date] = field(default_factory=list)
    excluded_windows: list[tuple[int, int]] = field(default_factory=list)  # epoch microseconds


def _is_last_day(d: date) -> bool:
    return (d + timedelta(days=1)).month != d.month


def _nth_in_month(d: date, week: str, kind: str) -> bool:
    days = [date(d.year, d.month, x) for x in range(1, calendar.monthrange(d.year, d.month)[1] + 1)]
    if kind == "day":
        pick = days
    elif kind == "weekday":
        pick = [x for x in days if x.isoweekday() <= 5]
    elif kind == "weekend_day":
        pick = [x for x in days if x.isoweekday() >= 6]
    else:
        pick = [x for x in days if x.strftime("%A").lower() == kind]
    index = {"first": 0, "second": 1, "third": 2, "fourth": 3, "last": -1}[week]
    return pick[index] == d


class Oracle:
    def __init__(self, spec: Spec) -> None:
        self.s = spec
        self.starts, self.offs = offsets(spec.timezone)
        start_s = spec.starts_at // 1_000_000
        self.start_date = date.fromordinal(EPOCH_DAY + self.wall(start_s) // DAY)
        self.cron = parse_cron(spec.cron) if spec.cron else None
        seconds_level = False
        if self.cron:
            seconds_level = self.cron.seconds != {0}
            self.first_tod = (
                min(self.cron.hours) * 3600 + min(self.cron.minutes) * 60 + min(self.cron.seconds)
            )
            self.last_tod = max(self.cron.hours) * 3600 + max(self.cron.minutes) * 60 + max(self.cron.seconds)
        elif spec.every_n is not None:
            assert spec.between_start is not None and spec.between_end is not None and spec.every_unit
            self.unit = {"second": 1, "minute": 60, "hour": 3600}[spec.every_unit] * spec.every_n
            seconds_level = spec.every_unit == "second" or spec.between_start % 60 != 0
            self.first_tod, self.last_tod = spec.between_start, spec.between_end
        else:
            assert spec.at_time is not None
            seconds_level = spec.at_time % 60 != 0
            self.first_tod = self.last_tod = spec.at_time
        self.step = 1 if seconds_level else 60

    def offset_index(self, u: int) -> int:
        return bisect.bisect_right(self.starts, u) - 1

    def wall(self, u: int) -> int:
        return u + self.offs[self.offset_index(u)]

    def day_ok(self, d: date) -> bool:
        s = self.s
        months_since = (d.year * 12 + d.month) - (self.start_date.year * 12 + self.start_date.month)
        if s.frequency == "once":
            return d == s.on_date
        if s.frequency == "daily":
            return d >= self.start_date and (d - self.start_date).days % s.every == 0
        if s.frequency == "weekly":
            assert s.weekdays
            weeks = (
                (d - timedelta(days=d.weekday()))
                - (self.start_date - timedelta(days=self.start_date.weekday()))
            ).days // 7
            return d.isoweekday() in s.weekdays and weeks >= 0 and weeks % s.every == 0
        if s.frequency == "monthly":
            return (
                months_since >= 0
                and months_since % s.every == 0
                and (d.day in s.month_days or (s.month_last and _is_last_day(d)))
            )
        if s.frequency == "monthly_relative":
            assert s.relative_week and s.relative_day
            return (
                months_since >= 0
                and months_since % s.every == 0
                and _nth_in_month(d, s.relative_week, s.relative_day)
            )
        c = self.cron
        assert c is not None
        if d.month not in c.months:
            return False
        dom_ok = d.day in c.dom or (c.dom_last and _is_last_day(d))
        dow_ok = d.isoweekday() % 7 in c.dow
        return (dom_ok or dow_ok) if c.either else (dom_ok and dow_ok)

    def tod_ok(self, t: int) -> bool:
        if self.cron:
            return (
                t // 3600 in self.cron.hours
                and t // 60 % 60 in self.cron.minutes
                and t % 60 in self.cron.seconds
            )
        if self.s.every_n is not None:
            return self.first_tod <= t <= self.last_tod and (t - self.first_tod) % self.unit == 0
        return t == self.first_tod

    def matches(self, w: int) -> bool:
        return self.tod_ok(w % DAY) and self.day_ok(date.fromordinal(EPOCH_DAY + w // DAY))

    def allowed(self, u: int, w: int) -> bool:
        d = date.fromordinal(EPOCH_DAY + w // DAY)
        if d in self.s.excluded_dates:
            return False
        us = u * 1_000_000
        return not any(a <= us < b for a, b in self.s.excluded_windows)

    def fires(self, after_us: int, n: int, horizon: int) -> list[int]:
        """Up to n fire instants (epoch seconds) strictly after after_us, up to horizon."""
        step = self.step
        u = max(after_us // (step * 1_000_000) + 1, -(-self.s.starts_at // (step * 1_000_000))) * step
        end = horizon if self.s.ends_at is None else min(horizon, self.s.ends_at // 1_000_000)
        # The highest wall time reached before u: just before a backward jump
        # it is higher than the wall time of the instant before u.
        high = self.wall(u - step)
        i = self.offset_index(u - step)
        while i > 0 and self.starts[i] > u - 2 * DAY:
            high = max(high, self.starts[i] - step + self.offs[i - 1])
            i -= 1
        out: list[int] = []
        while len(out) < n and u <= end:
            w = self.wall(u)
            if w > high:
                if w - high <= step:
                    hit = self.matches(w)
                else:  # a forward jump: every wall time skipped fires now
                    hit = any(self.matches(x) for x in range(high + step, w + step, step))
                high = w
                if hit and self.allowed(u, w):
                    out.append(u)
                target = self.skip_target(w)
                if target is not None:
                    i = self.offset_index(u)
                    nxt = self.starts[i + 1] if i + 1 < len(self.starts) else 2**62
                    jump = min(u + (target - w), nxt - step)
                    if jump > u + step:
                        high = w + (jump - u) - step
                        u = jump
                        continue
            u += step
        return out

    def skip_target(self, w: int) -> int | None:
        """A later wall time before which nothing after w can match."""
        day_start, t = w - w % DAY, w % DAY
        if not self.day_ok(date.fromordinal(EPOCH_DAY + w // DAY)) or t >= self.last_tod:
            return day_start + DAY
        if t + self.step < self.first_tod:
            return day_start + self.first_tod - self.step
        return None

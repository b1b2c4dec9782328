"""A tzdata update under a running server (sql/47_zone_rules.sql): the
rules of a zone change, and the next fire instants already stored for its
schedules are recomputed; what is not affected stays as it is.

The test session reads its zones from a directory of its own first
(zoneinfo.reset_tzpath, this backend only), so that it can change the rules
of a zone without touching the machine's tzdata: "PgaTest/Zone..." starts
as a copy of Europe/Berlin and becomes a copy of America/New_York.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from conftest import connect_as, scalar

SYSTEM_ZONES = Path("/usr/share/zoneinfo")


class Zone:
    """A zone whose rules the test controls, in a directory the cluster's
    OS user can read."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pga-zones-"))
        self.name = f"PgaTest/Zone{uuid.uuid4().hex[:8]}"
        self.path = self.root / self.name
        self.path.parent.mkdir()
        for d in (self.root, self.path.parent):
            d.chmod(0o755)

    def rules_of(self, system_zone: str) -> None:
        """Replaces the zone's file as a package update does: a new file
        renamed over the old one."""
        new = self.path.with_suffix(".new")
        shutil.copyfile(SYSTEM_ZONES / system_zone, new)
        new.chmod(0o644)
        os.replace(new, self.path)

    def use_in(self, conn: psycopg.Connection) -> None:
        """Makes the session's PL/Python look in the zone's directory first."""
        root = str(self.root)
        conn.execute(
            f"DO $py$ import zoneinfo; zoneinfo.reset_tzpath(to=[{root!r}] + list(zoneinfo.TZPATH)) $py$"
            " LANGUAGE plpython3u"
        )


@pytest.fixture
def zone(admin: psycopg.Connection) -> Iterator[Zone]:
    z = Zone()
    z.rules_of("Europe/Berlin")
    z.use_in(admin)
    yield z
    admin.execute("DELETE FROM pgautomator.job WHERE name LIKE %s", (f"{z.name}%",))
    admin.execute("DELETE FROM pgautomator.schedule WHERE timezone = %s", (z.name,))
    admin.execute("DELETE FROM pgautomator.zone_rules WHERE zone = %s", (z.name,))
    shutil.rmtree(z.root)


def attached(admin: psycopg.Connection, zone: Zone, label: str, frequency: str, **args: object) -> int:
    """A job fired by a new schedule in the zone; returns the schedule's id."""
    named = "".join(f", {k} => %s" for k in args)
    sid = scalar(
        admin,
        f"SELECT pgautomator.create_schedule(%s, %s, timezone => %s{named})",
        (f"{zone.name} {label}", frequency, zone.name, *args.values()),
    )
    job = scalar(admin, "SELECT pgautomator.create_job(%s)", (f"{zone.name} {label}",))
    admin.execute("SELECT pgautomator.add_step(%s, 'noop', 'SELECT 1')", (job,))
    admin.execute("SELECT pgautomator.attach_schedule(%s::bigint, %s::bigint)", (job, sid))
    return int(sid)


def next_fire(admin: psycopg.Connection, schedule_id: int) -> datetime:
    at: datetime = scalar(
        admin, "SELECT next_fire_at FROM pgautomator.job_schedule WHERE schedule_id = %s", (schedule_id,)
    )
    return at


def checked(conn: psycopg.Connection) -> list[tuple[str, int]]:
    return [tuple(r) for r in conn.execute("SELECT zone, links FROM pgautomator.check_time_zone_rules()")]


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_changed_rules_recompute_the_instants_still_to_come(admin: psycopg.Connection, zone: Zone) -> None:
    once = attached(admin, zone, "once", "once", on_date="2031-07-01", at_time="12:00")
    daily = attached(admin, zone, "daily", "daily", at_time="12:00")
    assert next_fire(admin, once) == utc(2031, 7, 1, 10)  # Berlin in summer: UTC+2
    # first seen: the stored instants were computed with these rules
    assert [c for c in checked(admin) if c[0] == zone.name] == []
    assert scalar(admin, "SELECT count(*) FROM pgautomator.zone_rules WHERE zone = %s", (zone.name,)) == 1

    zone.rules_of("America/New_York")
    # every session's engine reads the new rules at once ...
    assert scalar(admin, "SELECT pgautomator._next_fire(%s, now())", (once,)) == utc(2031, 7, 1, 16)
    # ... but the stored instants are those of the old rules until the check
    assert next_fire(admin, once) == utc(2031, 7, 1, 10)
    assert checked(admin) == [(zone.name, 2)]
    assert next_fire(admin, once) == utc(2031, 7, 1, 16)  # New York in summer: UTC-4
    assert next_fire(admin, daily) == scalar(admin, "SELECT pgautomator._next_fire(%s, now())", (daily,))
    assert next_fire(admin, daily).astimezone(UTC).hour in (16, 17)  # 12:00 in New York
    assert checked(admin) == []  # recorded: once only


def test_the_launchers_pass_checks_the_rules(admin: psycopg.Connection, zone: Zone) -> None:
    once = attached(admin, zone, "once", "once", on_date="2031-01-15", at_time="08:30")
    assert checked(admin) == []
    zone.rules_of("America/New_York")
    # A pass in a new session of the test's own (rolled back): its first
    # pass checks, as the launcher's does at its start and once a minute.
    with psycopg.connect(admin.info.dsn) as conn:
        zone.use_in(conn)
        conn.execute("SELECT pgautomator._launcher_tick()")
        assert next_fire(conn, once) == utc(2031, 1, 15, 13, 30)  # New York in winter: UTC-5
        conn.rollback()
    assert next_fire(admin, once) == utc(2031, 1, 15, 7, 30)  # Berlin in winter: UTC+1


def test_a_schedule_made_after_the_update_gets_the_new_rules(admin: psycopg.Connection, zone: Zone) -> None:
    first = attached(admin, zone, "first", "once", on_date="2031-07-01", at_time="12:00")
    zone.rules_of("America/New_York")
    # the session holds the old rules (the first schedule's): a definition
    # compiled now must not get them
    second = attached(admin, zone, "second", "once", on_date="2031-07-02", at_time="12:00")
    assert next_fire(admin, second) == utc(2031, 7, 2, 16)
    assert checked(admin) == [(zone.name, 2)]
    assert next_fire(admin, first) == utc(2031, 7, 1, 16)


def test_a_zone_another_session_cannot_read_is_left_alone(admin: psycopg.Connection, zone: Zone) -> None:
    once = attached(admin, zone, "once", "once", on_date="2031-07-01", at_time="12:00")
    assert checked(admin) == []
    recorded = "SELECT fingerprint FROM pgautomator.zone_rules WHERE zone = %s"
    before = scalar(admin, recorded, (zone.name,))
    zone.rules_of("America/New_York")
    # a session that does not look in the test's directory (the launcher's,
    # for one) finds no file for the zone: it warns, records and recomputes
    # nothing
    with psycopg.connect(admin.info.dsn, autocommit=True) as other:
        notices: list[str] = []
        other.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        assert checked(other) == []
    assert f'the file of time zone "{zone.name}" cannot be read' in " ".join(notices)
    assert next_fire(admin, once) == utc(2031, 7, 1, 10)
    assert scalar(admin, recorded, (zone.name,)) == before
    assert checked(admin) == [(zone.name, 1)]


def test_a_link_held_by_another_transaction_fails_the_check_not_the_pass(
    admin: psycopg.Connection, zone: Zone
) -> None:
    once = attached(admin, zone, "once", "once", on_date="2031-07-01", at_time="12:00")
    zone.rules_of("America/New_York")
    with psycopg.connect(admin.info.dsn) as holder:
        holder.execute("SELECT FROM pgautomator.job_schedule WHERE schedule_id = %s FOR UPDATE", (once,))
        with pytest.raises(psycopg.errors.LockNotAvailable, match="another transaction holds"):
            checked(admin)
        # the launcher's pass does not wait for it either: it warns and goes on
        with psycopg.connect(admin.info.dsn) as conn:
            zone.use_in(conn)
            notices: list[str] = []
            conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
            conn.execute("SELECT pgautomator._launcher_tick()")
            conn.rollback()
        assert "could not check the time zone rules" in " ".join(notices)
        holder.rollback()
    assert next_fire(admin, once) == utc(2031, 7, 1, 10)
    assert checked(admin) == [(zone.name, 1)]  # (tried again: nothing was recorded)
    assert next_fire(admin, once) == utc(2031, 7, 1, 16)


def test_an_admin_recomputes_every_zone_on_request(
    admin: psycopg.Connection, make_role: Callable[..., str]
) -> None:
    role = make_role("pgautomator_admin")
    name = f"zone-rules-{uuid.uuid4().hex[:8]}"
    sid = scalar(
        admin,
        "SELECT pgautomator.create_schedule(%s, 'once', on_date => '2031-07-01', at_time => '12:00',"
        " timezone => 'UTC')",
        (name,),
    )
    job = scalar(admin, "SELECT pgautomator.create_job(%s)", (name,))
    try:
        admin.execute("SELECT pgautomator.add_step(%s, 'noop', 'SELECT 1')", (job,))
        admin.execute("SELECT pgautomator.attach_schedule(%s::bigint, %s::bigint)", (job, sid))
        with connect_as(role) as conn:
            # (not a superuser: the function is granted, and checks who asks)
            rows = conn.execute(
                "SELECT zone, links FROM pgautomator.check_time_zone_rules(all_zones => true)"
            )
            links = {str(zone): int(n) for zone, n in rows}
        assert links.get("UTC", 0) >= 1
        assert next_fire(admin, sid) == utc(2031, 7, 1, 12)  # the same rules: the same instant
    finally:
        admin.execute("SELECT pgautomator.drop_job(%s::bigint)", (job,))
        admin.execute("SELECT pgautomator.drop_schedule(%s::bigint)", (sid,))


def test_only_admins_check_the_rules(make_role: Callable[..., str]) -> None:
    user = make_role("pgautomator_user")
    with connect_as(user) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        checked(conn)


def test_a_zone_whose_file_is_gone_keeps_firing_by_its_recorded_rules(
    admin: psycopg.Connection, zone: Zone
) -> None:
    once = attached(admin, zone, "once", "once", on_date="2031-07-01", at_time="12:00")
    zone.path.unlink()
    # a new session (the launcher's after a restart, say) finds no file:
    # the rules recorded with the schedule serve, and its pass goes on
    with psycopg.connect(admin.info.dsn, autocommit=True) as conn:
        zone.use_in(conn)
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        assert scalar(conn, "SELECT pgautomator._next_fire(%s, now())", (once,)) == utc(2031, 7, 1, 10)
        with conn.transaction(force_rollback=True):
            conn.execute("SELECT pgautomator._launcher_tick()")
        conn.execute("SELECT * FROM pgautomator._zone_rules_check()")
        gone = f'the file of time zone "{zone.name}" cannot be read'
        assert sum(gone in n for n in notices) == 1  # once per session
        # a schedule saved meanwhile says which rules it gets
        attached(conn, zone, "later", "once", on_date="2031-07-02", at_time="12:00")
        assert f'time zone "{zone.name}" has no usable tzdata file on this server' in " ".join(notices)
        # the file comes back (with other rules): read at the next use
        zone.rules_of("America/New_York")
        assert scalar(conn, "SELECT pgautomator._next_fire(%s, now())", (once,)) == utc(2031, 7, 1, 16)
    assert next_fire(admin, once) == utc(2031, 7, 1, 10)


def test_a_broken_zone_file_is_left_as_recorded(admin: psycopg.Connection, zone: Zone) -> None:
    once = attached(admin, zone, "once", "once", on_date="2031-07-01", at_time="12:00")
    zone.path.write_bytes(b"not a TZif file")
    with psycopg.connect(admin.info.dsn, autocommit=True) as conn:
        zone.use_in(conn)
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        assert checked(conn) == []  # (no error: other zones are still checked)
        assert scalar(conn, "SELECT pgautomator._next_fire(%s, now())", (once,)) == utc(2031, 7, 1, 10)
    assert f'the file of time zone "{zone.name}" cannot be read' in " ".join(notices)
    assert next_fire(admin, once) == utc(2031, 7, 1, 10)


def test_a_schedule_the_engine_cannot_evaluate_stops_alone(admin: psycopg.Connection, zone: Zone) -> None:
    broken = attached(admin, zone, "broken", "daily", at_time="12:00")
    fine = scalar(
        admin,
        "SELECT pgautomator.create_schedule(%s, 'daily', at_time => '12:00', timezone => 'UTC')",
        (f"{zone.name} fine",),
    )
    job = scalar(admin, "SELECT pgautomator.create_job(%s)", (f"{zone.name} fine",))
    admin.execute("SELECT pgautomator.add_step(%s, 'noop', 'SELECT 1')", (job,))
    admin.execute("SELECT pgautomator.attach_schedule(%s::bigint, %s::bigint)", (job, fine))
    with psycopg.connect(
        admin.info.dsn
    ) as conn:  # (one transaction, rolled back: the launcher sees none of it)
        zone.use_in(conn)
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        # both links as a pass leaves those it fired: the next instant to
        # compute; the zone of one has lost its file and its record
        conn.execute(
            "UPDATE pgautomator.job_schedule SET next_fire_at = 'infinity', last_fire_at = now()"
            " WHERE schedule_id IN (%s, %s)",
            (broken, fine),
        )
        conn.execute("DELETE FROM pgautomator.zone_rules WHERE zone = %s", (zone.name,))
        zone.path.unlink()
        conn.execute("SELECT pgautomator._launcher_tick()")  # no error: the pass goes on
        assert next_fire(conn, broken) is None
        assert next_fire(conn, fine) == scalar(
            conn,
            "SELECT pgautomator._next_fire(%s, last_fire_at) FROM pgautomator.job_schedule"
            " WHERE schedule_id = %s",
            (fine, fine),
        )
        conn.rollback()
    assert f'schedule "{zone.name} broken" fires no more' in " ".join(notices)

"""A step worker in the extension's database settles its own step runs, and
the launcher prepares a fire instant ahead: end to end against the cluster
with the launcher preloaded."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import psycopg
import pytest

from conftest import once_schedule, scalar, start, step_runs, wait_launcher_disabled, wait_run, wait_until


def wait_for_lock_waiter(admin: psycopg.Connection, key: int) -> None:
    """Waits until a step blocks on the advisory lock `key` the test holds."""
    sql = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s"
    wait_until("a step waiting for the lock", lambda: scalar(admin, sql, (key,)) == 1)


SETTLE_ARGS = "1, true, NULL, NULL, NULL, 0, NULL, true, NULL, 0"


def test_a_worker_runs_the_next_steps_of_its_run_itself_with_a_fresh_session(
    admin: psycopg.Connection, job: Callable[..., int], make_role: Callable[..., str]
) -> None:
    role = make_role("pgautomator_user")
    job_id = job(
        {
            "code": "CREATE TEMP TABLE leak (x int); SET work_mem = '77MB';"
            " SELECT set_config('pga.leak', 'leaked', false); SELECT pg_advisory_lock(4343)"
        },
        {
            "code": "SELECT session_user, current_user, current_setting('work_mem'),"
            " coalesce(current_setting('pga.leak', true), ''), to_regclass('pg_temp.leak') IS NULL,"
            " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())"
        },
        # the bookkeeping between steps ran with more rights: none of them is left
        {"code": "DELETE FROM pgautomator.step_run", "on_failure": "next"},
        {"code": f"SELECT * FROM pgautomator._worker_settle({SETTLE_ARGS})", "on_failure": "next"},
        {"code": "RESET ROLE; DELETE FROM pgautomator.run", "on_failure": "next"},
        run_as=role,
    )
    run_id = start(admin, job_id)
    assert wait_run(admin, run_id) == "succeeded"
    results = step_runs(admin, run_id)
    assert [r["state"] for r in results] == ["succeeded", "succeeded", "failed", "failed", "failed"]
    fresh_work_mem = scalar(admin, "SELECT current_setting('work_mem')")
    assert results[1]["output"] == f"{role}|{role}|{fresh_work_mem}||t|0\n"
    assert [r["sqlstate"] for r in results[2:]] == ["42501"] * 3
    # each step was claimed by the worker that ran the step before it
    assert len({r["worker_pid"] for r in results}) == 1, results


def test_steps_of_another_database_are_reported_by_the_launcher(
    admin: psycopg.Connection, job: Callable[..., int], make_role: Callable[..., str]
) -> None:
    role = make_role("pgautomator_user")
    other = f"pga_other_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {other}")
    try:
        job_id = job(
            {"code": "SELECT current_database()", "database": other},
            {"code": "SELECT current_database()", "database": other},
            run_as=role,
        )
        run_id = start(admin, job_id)
        assert wait_run(admin, run_id) == "succeeded"
        results = step_runs(admin, run_id)
        assert [r["output"] for r in results] == [f"{other}\n"] * 2
    finally:
        admin.execute(f"DROP DATABASE {other} WITH (FORCE)")


@pytest.mark.parametrize("ahead", ["spares", "held"])
def test_a_prepared_instant_never_starts_a_step_before_it(
    admin: psycopg.Connection,
    job: Callable[..., int],
    table: str,
    make_role: Callable[..., str],
    setting: Callable[[str, str], None],
    ahead: str,
) -> None:
    """A new role: no idle worker of it exists, so the launcher starts its
    workers ahead of the instant: idle spares a second before it or, with
    worker_idle_time 0 (no spares), workers held until the claims of the
    prepared instant commit."""
    if ahead == "held":
        setting("pgautomator.worker_idle_time", "0")
    role = make_role("pgautomator_user")
    at, schedule = once_schedule(admin, seconds=3)
    jobs = [job({"code": f"INSERT INTO {table} (x) VALUES ({i})"}, run_as=role) for i in range(5)]
    try:
        for job_id in jobs:
            admin.execute("SELECT pgautomator.attach_schedule(%s::bigint, %s::bigint)", (job_id, schedule))
        wait_until("the five steps", lambda: scalar(admin, f"SELECT count(*) FROM {table}") == 5)
        first_hit = scalar(admin, f"SELECT min(at) FROM {table}")
        assert first_hit >= at, "a step ran before its fire instant"
        rows = admin.execute(
            "SELECT r.scheduled_at, r.started_at, sr.started_at FROM pgautomator.run r"
            " JOIN pgautomator.step_run sr ON sr.run_id = r.id WHERE r.job_id = ANY(%s)",
            (jobs,),
        ).fetchall()
        assert len(rows) == 5
        assert all(
            scheduled == at and run_start >= at and step_start >= run_start
            for scheduled, run_start, step_start in rows
        )
    finally:
        admin.execute("SELECT pgautomator.drop_schedule(%s::bigint, force => true)", (schedule,))


def test_spare_workers_connect_before_the_instant_and_run_its_steps(
    admin: psycopg.Connection, job: Callable[..., int], table: str, make_role: Callable[..., str]
) -> None:
    """The steps due at an instant of a role with no idle worker run in
    workers the launcher started before the instant; their rehearsal of the
    bookkeeping leaves nothing behind."""
    role = make_role("pgautomator_user")
    at, schedule = once_schedule(admin, seconds=4)
    code = f"INSERT INTO {table} (x) VALUES (pg_backend_pid())"
    jobs = [job({"code": code}, run_as=role) for _ in range(3)]
    job_ids_used = "SELECT last_value FROM pgautomator.job_id_seq"
    before = scalar(admin, job_ids_used)
    try:
        for job_id in jobs:
            admin.execute("SELECT pgautomator.attach_schedule(%s::bigint, %s::bigint)", (job_id, schedule))
        # (a worker held for a prepared claim starts at most 0.2 s before)
        spares = (
            "SELECT pid FROM pg_stat_activity WHERE usename = %s AND backend_type = 'pgautomator step'"
            " AND backend_start < %s - interval '0.5 seconds'"
        )
        wait_until("the three steps", lambda: scalar(admin, f"SELECT count(*) FROM {table}") == 3)
        ran_in = {pid for (pid,) in admin.execute(f"SELECT x FROM {table}").fetchall()}
        # (idle workers stay connected for worker_idle_time: all are still there)
        started_ahead = {pid for (pid,) in admin.execute(spares, (role, at)).fetchall()}
        assert ran_in <= started_ahead, "a step of the instant waited for a worker to start"
        # each spare rehearsed with a job of its own, rolled back: only its id is used up
        assert scalar(admin, job_ids_used) > before
        rehearsals = "SELECT count(*) FROM pgautomator.job WHERE name LIKE 'pgautomator rehearsal%%'"
        assert scalar(admin, rehearsals) == 0
    finally:
        admin.execute("SELECT pgautomator.drop_schedule(%s::bigint, force => true)", (schedule,))


def test_a_role_made_again_is_not_served_by_the_old_session(
    admin: psycopg.Connection, job: Callable[..., int]
) -> None:
    """A worker claims its next step by role name: after the role was dropped
    and created again, the old session must not run the new role's step."""
    role = f"t_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE ROLE "{role}" LOGIN IN ROLE pgautomator_user')
    try:
        job_id = job(
            {"code": "SELECT pg_advisory_lock(424242); SELECT pg_advisory_unlock(424242)"},
            {"code": "SELECT session_user"},
            run_as=role,
        )
        admin.execute("SELECT pg_advisory_lock(424242)")
        try:
            run_id = start(admin, job_id)
            wait_for_lock_waiter(admin, 424242)
            admin.execute(f'DROP ROLE "{role}"')
            admin.execute(f'CREATE ROLE "{role}" LOGIN IN ROLE pgautomator_user')
        finally:
            admin.execute("SELECT pg_advisory_unlock(424242)")
        assert wait_run(admin, run_id) == "succeeded"
        first, second = step_runs(admin, run_id)
        assert second["output"] == f"{role}\n"
        assert first["worker_pid"] != second["worker_pid"]
    finally:
        admin.execute("DELETE FROM pgautomator.job WHERE run_as = %s", (role,))
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_a_busy_worker_claims_nothing_once_disabled(
    admin: psycopg.Connection, job: Callable[..., int], setting: Callable[[str, str], None]
) -> None:
    job_id = job(
        {"code": "SELECT pg_advisory_lock(434343); SELECT pg_advisory_unlock(434343)"},
        {"code": "SELECT 2"},
    )
    admin.execute("SELECT pg_advisory_lock(434343)")
    try:
        run_id = start(admin, job_id)
        wait_for_lock_waiter(admin, 434343)
        setting("pgautomator.enabled", "off")
        wait_launcher_disabled(admin)
    finally:
        admin.execute("SELECT pg_advisory_unlock(434343)")
    wait_until(
        "the first step to end",
        lambda: [r["state"] for r in step_runs(admin, run_id)] == ["succeeded", "queued"],
    )
    setting("pgautomator.enabled", "on")
    assert wait_run(admin, run_id) == "succeeded"


def test_a_cancel_reaches_only_the_step_run_it_is_meant_for(
    admin: psycopg.Connection, job: Callable[..., int]
) -> None:
    """The dispatcher signals a worker by pid; a worker that recorded one step
    run may already run the next, so the signal names the step run too."""
    job_id = job({"code": "SELECT 1"}, {"code": "SELECT pg_sleep(300)"})
    run_id = start(admin, job_id)

    def sleeping_pid() -> int | None:
        rows = step_runs(admin, run_id)
        if len(rows) < 2 or rows[1]["state"] != "running" or rows[1]["worker_pid"] is None:
            return None
        pid = int(rows[1]["worker_pid"])
        sql = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND pid = %s"
        return pid if scalar(admin, sql, (pid,)) == 1 else None

    pid = wait_until("the second step sleeping", sleeping_pid)
    ids = [
        int(r[0])
        for r in admin.execute("SELECT id FROM pgautomator.step_run WHERE run_id = %s ORDER BY id", (run_id,))
    ]
    sql = "SELECT pgautomator._signal_worker(%s, %s, false)"
    assert scalar(admin, sql, (ids[0], pid)) is False, "the first step run is over: no signal"
    assert step_runs(admin, run_id)[1]["state"] == "running"
    assert scalar(admin, sql, (ids[1], pid)) is True
    assert wait_run(admin, run_id) == "failed"
    assert step_runs(admin, run_id)[1]["sqlstate"] == "57014"


PLANNER_POISON = "enable_indexscan = off, enable_bitmapscan = off, enable_nestloop = off"


@pytest.mark.parametrize("where", ["step", "role", "role, recorded after the commit"])
def test_a_steps_planner_settings_never_reach_the_bookkeeping(
    admin: psycopg.Connection, job: Callable[..., int], make_role: Callable[..., str], where: str
) -> None:
    # A worker plans its bookkeeping once and keeps the plans for its life.
    # Planned with the step's or its role's planner settings (here: no
    # index scans), every later settle and claim would read the whole of
    # step_run, and history makes that slow for every job.  The record is
    # taken in the step's transaction, or (repeatable read steps) after
    # its commit and the session reset, with the role's own settings back.
    role = make_role("pgautomator_user")
    sets = "; ".join(f"SET {s}" for s in PLANNER_POISON.split(", "))
    if where.startswith("role"):
        for s in PLANNER_POISON.split(", "):
            admin.execute(f'ALTER ROLE "{role}" SET {s}')
    after_commit = {
        "code": "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT 1",
        "transaction": "single",
    }
    later = after_commit if where.endswith("commit") else {"code": "SELECT 1"}
    steps = 20
    job_id = job(
        {"code": f"{sets}; SELECT 1"} if where == "step" else later,
        *(later for _ in range(steps)),
        run_as=role,
    )
    # History, so that a planner left alone reads step_run by its indexes:
    # a table of a page or two is read whole by any plan, poisoned or not.
    history = job({"code": "SELECT 1"})
    admin.execute(
        "WITH r AS (INSERT INTO pgautomator.run (job_id, owner, trigger, state, finished_at)"
        " SELECT %s, 'postgres', 'manual', 'succeeded', now() FROM generate_series(1, 10000) RETURNING id)"
        " INSERT INTO pgautomator.step_run (run_id, step_name, kind, state, finished_at)"
        " SELECT r.id, 's1', 'sql', 'succeeded', now() FROM r, generate_series(1, 2)",
        (history,),
    )
    admin.execute("ANALYZE pgautomator.run, pgautomator.step_run")

    def counters() -> tuple[int, int]:
        row = admin.execute(
            "SELECT seq_scan, n_tup_upd FROM pg_stat_user_tables"
            " WHERE relid = 'pgautomator.step_run'::regclass"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    seq_before, upd_before = counters()
    run_id = start(admin, job_id)
    assert wait_run(admin, run_id) == "succeeded"
    results = step_runs(admin, run_id)
    # one worker ran them all, planning its bookkeeping at the first step
    assert len({r["worker_pid"] for r in results}) == 1, results
    # its statistics arrive when it goes idle: a claim and a record per step
    wait_until("the worker's statistics", lambda: counters()[1] - upd_before >= 2 * steps)
    assert counters()[0] - seq_before < steps // 4

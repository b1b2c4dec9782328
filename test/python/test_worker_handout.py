"""The launcher's hand-out queue and deferred outcomes (handout.c,
55_deferred_outcomes.sql): the first steps of a fire instant beyond the
workers the launcher has are claimed with the instant and taken by busy
workers as their next step, which defer the outcome of the step they
finished; the launcher then applies those outcomes.  End to end against
the cluster with the launcher preloaded (pgautomator.max_workers = 8)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from conftest import once_schedule, scalar, wait_launcher, wait_run, wait_until

BURST = 40  # five times the workers the harness's cluster may run


def attach_all(admin: psycopg.Connection, jobs: list[int], schedule: int) -> None:
    for job_id in jobs:
        admin.execute("SELECT pgautomator.attach_schedule(%s::bigint, %s::bigint)", (job_id, schedule))


def test_a_burst_beyond_the_workers_is_handed_out_and_every_run_completes(
    admin: psycopg.Connection, job: Callable[..., int], table: str, make_role: Callable[..., str]
) -> None:
    role = make_role("pgautomator_user")
    jobs = [
        job(
            {"code": f"INSERT INTO {table} (x) VALUES ({i})"},
            {"code": f"INSERT INTO {table} (x) VALUES ({1000 + i})"},
            run_as=role,
        )
        for i in range(BURST)
    ]
    wait_launcher(admin)
    deferred = "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = 'pgautomator.step_outcome'::regclass"
    before = scalar(admin, deferred)
    at, schedule = once_schedule(admin, seconds=4)
    try:
        attach_all(admin, jobs, schedule)
        runs = wait_until(
            "the burst's runs",
            lambda: (
                [
                    r
                    for (r,) in admin.execute(
                        "SELECT id FROM pgautomator.run WHERE job_id = ANY(%s)", (jobs,)
                    ).fetchall()
                ]
                or None
            ),
        )
        assert len(runs) == BURST
        assert {wait_run(admin, run_id) for run_id in runs} == {"succeeded"}
        assert scalar(admin, f"SELECT count(DISTINCT x) FROM {table}") == 2 * BURST, (
            "a step ran twice or never"
        )
        first = admin.execute(
            "SELECT sr.started_at, sr.finished_at, later.started_at"
            " FROM pgautomator.step_run sr JOIN pgautomator.run r ON r.id = sr.run_id"
            " JOIN pgautomator.step_run later ON later.run_id = sr.run_id AND later.step_name = 's2'"
            " WHERE r.job_id = ANY(%s) AND sr.step_name = 's1'",
            (jobs,),
        ).fetchall()
        # each first step started at or after the instant, its outcome was
        # recorded when it ended, and its run went on from there
        assert all(at <= started <= finished <= second for started, finished, second in first)
        # the workers took the 32 step runs beyond their first ones from the
        # hand-out queue, deferring an outcome each time (the statistics
        # come from the workers, once idle)
        wait_until(
            "the deferred outcomes in the statistics",
            lambda: scalar(admin, deferred) - before >= BURST - 8,
        )
        assert scalar(admin, "SELECT count(*) FROM pgautomator.step_outcome") == 0
    finally:
        admin.execute("SELECT pgautomator.drop_schedule(%s::bigint, force => true)", (schedule,))


def test_a_handed_out_step_of_a_stopped_run_never_starts(
    admin: psycopg.Connection, job: Callable[..., int], table: str, make_role: Callable[..., str]
) -> None:
    """While the workers are busy, the step runs waiting in the hand-out
    queue are claimed but have no worker; stopping their runs then ends
    them stopped without their steps ever running."""
    role = make_role("pgautomator_user")
    # 8 steps keep the 8 workers busy for a while; 4 more wait in the queue
    jobs = [
        job({"code": f"INSERT INTO {table} (x) VALUES ({i}); SELECT pg_sleep(3)"}, run_as=role)
        for i in range(12)
    ]
    wait_launcher(admin)
    at, schedule = once_schedule(admin, seconds=4)
    try:
        attach_all(admin, jobs, schedule)
        busy = "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND wait_event = 'PgSleep'"
        wait_until("the eight workers busy", lambda: scalar(admin, busy, (role,)) == 8)
        waiting_sql = (
            "SELECT sr.run_id FROM pgautomator.step_run sr JOIN pgautomator.run r ON r.id = sr.run_id"
            " WHERE r.job_id = ANY(%s) AND sr.state = 'running' AND sr.worker_pid IS NULL"
        )
        # (the pids of the eight may be recorded a pass after their steps started)
        waiting = wait_until(
            "the step runs waiting in the hand-out queue",
            lambda: rows if len(rows := admin.execute(waiting_sql, (jobs,)).fetchall()) == 4 else None,
        )
        assert len(waiting) == 4
        for (run_id,) in waiting:
            assert scalar(admin, "SELECT pgautomator.stop_run(%s::bigint)", (run_id,)) is True
        assert {wait_run(admin, run_id) for (run_id,) in waiting} == {"stopped"}
        runs = [r for (r,) in admin.execute("SELECT id FROM pgautomator.run WHERE job_id = ANY(%s)", (jobs,))]
        assert sorted(wait_run(admin, run_id) for run_id in runs) == ["stopped"] * 4 + ["succeeded"] * 8
        # the stopped ones never ran: only the 8 others' rows are there
        assert scalar(admin, f"SELECT count(*) FROM {table}") == 8
        assert scalar(admin, "SELECT min(at) FROM " + table) >= at
    finally:
        admin.execute("SELECT pgautomator.drop_schedule(%s::bigint, force => true)", (schedule,))

"""End-to-end tests of the in-database executor: the C launcher claims sql
step runs and step workers run them at top level, as the job's run-as
role, in the step's transaction mode (bgworker/, README.md "The in-database executor")."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from conftest import (
    DEADLINE,
    _dsn,
    connect_as,
    run_state,
    scalar,
    start,
    step_runs,
    wait_launcher_disabled,
    wait_run,
    wait_until,
)


def test_launcher_shows_in_pg_stat_activity(admin: psycopg.Connection) -> None:
    row = wait_until(
        "the launcher",
        lambda: admin.execute(
            "SELECT application_name, datname, usename FROM pg_stat_activity"
            " WHERE backend_type = 'pgautomator launcher'"
        ).fetchone(),
    )
    assert row[0] == "pgautomator launcher"
    assert row[1] == "pgautomator_test"
    agent = wait_until(
        "the database agent",
        lambda: admin.execute("SELECT kind, pid FROM pgautomator.agent WHERE name = 'database'").fetchone(),
    )
    assert agent[0] == "database"


def test_steps_run_in_order(admin: psycopg.Connection, job: Callable[..., int], table: str) -> None:
    job_id = job(*({"code": f"INSERT INTO {table} (x) VALUES ({i})"} for i in (1, 2, 3)))
    run_id = start(admin, job_id)
    assert wait_run(admin, run_id) == "succeeded"
    rows = admin.execute(f"SELECT x FROM {table} ORDER BY at").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3]
    assert [s["state"] for s in step_runs(admin, run_id)] == ["succeeded"] * 3
    assert all(s["rows_affected"] == 1 for s in step_runs(admin, run_id))


def test_top_level_statements(admin: psycopg.Connection, job: Callable[..., int], table: str) -> None:
    proc = f"{table}_proc"
    admin.execute(
        f"CREATE PROCEDURE {proc}() LANGUAGE plpgsql AS $$ BEGIN"
        f" INSERT INTO {table} (x) VALUES (10); COMMIT;"
        f" INSERT INTO {table} (x) VALUES (11); ROLLBACK;"
        f" INSERT INTO {table} (x) VALUES (12); END $$"
    )
    try:
        job_id = job(
            {"code": f"INSERT INTO {table} (x) SELECT -g FROM generate_series(1, 100) g"},
            {"code": f"VACUUM (ANALYZE) {table}"},
            {"code": f"CREATE INDEX CONCURRENTLY ON {table} (x)"},
            {"code": f"ANALYZE {table}; REINDEX TABLE CONCURRENTLY {table}"},
            {"code": f"CALL {proc}()"},
            {"code": "VACUUM", "transaction": "single"},
            {"code": f"REINDEX DATABASE {scalar(admin, 'SELECT current_database()')}"},
        )
        run_id = start(admin, job_id)
        state = wait_run(admin, run_id)
        # (what failed, in full: a long list is cut in the report)
        failed = [(s["step_name"], s["sqlstate"], s["error"]) for s in step_runs(admin, run_id)]
        assert state == "succeeded", [f for f in failed if f[1] is not None]
        valid = admin.execute(
            "SELECT bool_and(i.indisvalid) FROM pg_index i WHERE i.indrelid = %s::regclass", (table,)
        ).fetchone()
        assert valid is not None and valid[0] is True
        got = admin.execute(f"SELECT x FROM {table} WHERE x >= 10 ORDER BY x").fetchall()
        assert [r[0] for r in got] == [10, 12]
        assert admin.execute(
            "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relid = %s::regclass", (table,)
        ).fetchone() == (True,)
    finally:
        admin.execute(f"DROP PROCEDURE IF EXISTS {proc}()")


def test_run_as_role_has_its_rights_and_no_more(
    admin: psycopg.Connection, job: Callable[..., int], make_role: Callable[..., str]
) -> None:
    role = make_role("pgautomator_user")
    secret = f"public.ws_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE TABLE {secret} (x int)")
    try:
        attempts = [
            "SELECT * FROM {t}",
            "RESET ROLE; SELECT * FROM {t}",
            "RESET SESSION AUTHORIZATION; SELECT * FROM {t}",
            "SET ROLE postgres; SELECT * FROM {t}",
            "SET SESSION AUTHORIZATION postgres; SELECT * FROM {t}",
        ]
        job_id = job(
            {"code": "SELECT session_user, current_user", "on_failure": "next"},
            *({"code": a.format(t=secret), "on_failure": "next"} for a in attempts),
            run_as=role,
        )
        run_id = start(admin, job_id)
        wait_run(admin, run_id)
        results = step_runs(admin, run_id)
        assert results[0]["state"] == "succeeded"
        assert results[0]["output"] == f"{role}|{role}\n"
        for result in results[1:]:
            assert result["state"] == "failed"
            assert result["sqlstate"] == "42501", result
        assert results[0]["worker_pid"] is not None
    finally:
        admin.execute(f"DROP TABLE {secret}")


def test_single_rolls_back_everything(admin: psycopg.Connection, job: Callable[..., int], table: str) -> None:
    job_id = job(
        {
            "code": f"INSERT INTO {table} (x) VALUES (1); INSERT INTO {table} (x) VALUES (1/0)",
            "transaction": "single",
        }
    )
    run_id = start(admin, job_id)
    assert wait_run(admin, run_id) == "failed"
    [result] = step_runs(admin, run_id)
    assert result["sqlstate"] == "22012"
    assert "division by zero" in result["error"]
    assert admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


def test_autocommit_keeps_earlier_statements(
    admin: psycopg.Connection, job: Callable[..., int], table: str
) -> None:
    job_id = job(
        {
            "code": f"INSERT INTO {table} (x) VALUES (1); INSERT INTO {table} (x) VALUES (1/0);"
            f" INSERT INTO {table} (x) VALUES (3)"
        }
    )
    run_id = start(admin, job_id)
    assert wait_run(admin, run_id) == "failed"
    assert [r[0] for r in admin.execute(f"SELECT x FROM {table}").fetchall()] == [1]


def test_messages_and_output_are_captured(admin: psycopg.Connection, job: Callable[..., int]) -> None:
    code = (
        "DO $$BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; RAISE INFO 'fyi'; END$$;"
        " SELECT g, 'row ' || g, NULL FROM generate_series(1, 3) g"
    )
    run_id = start(admin, job({"code": code}))
    assert wait_run(admin, run_id) == "succeeded"
    [result] = step_runs(admin, run_id)
    assert result["messages"] == "NOTICE:  hello 42\nWARNING:  careful\nINFO:  fyi\n"
    assert result["output"] == "1|row 1|\n2|row 2|\n3|row 3|\n"
    assert result["rows_affected"] == 3


def test_left_open_transaction_block_fails(
    admin: psycopg.Connection, job: Callable[..., int], table: str
) -> None:
    run_id = start(admin, job({"code": f"BEGIN; INSERT INTO {table} (x) VALUES (1)"}))
    assert wait_run(admin, run_id) == "failed"
    [result] = step_runs(admin, run_id)
    assert result["sqlstate"] == "2D000"
    assert admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


def test_timeout_stops_a_sleep(admin: psycopg.Connection, job: Callable[..., int]) -> None:
    run_id = start(admin, job({"code": "SELECT pg_sleep(300)", "timeout": "200 milliseconds"}))
    assert wait_run(admin, run_id) == "failed"
    [result] = step_runs(admin, run_id)
    assert result["state"] == "failed"
    assert result["sqlstate"] == "57014"


@pytest.mark.parametrize("timeout", ["30 days", "100 years"])
def test_a_timeout_beyond_24_days_is_taken(
    admin: psycopg.Connection, job: Callable[..., int], timeout: str
) -> None:
    """Timeouts past what an int counts in milliseconds (24.8 days) are set
    at their instant, up to the API's bound: the step runs (they used to be
    clipped to 24.8 days, and would have cancelled a longer step early)."""
    run_id = start(admin, job({"code": "SELECT pg_sleep(0.01)", "timeout": timeout}))
    assert wait_run(admin, run_id) == "succeeded"


def test_stop_run_cancels_the_running_statement(
    admin: psycopg.Connection, job: Callable[..., int], table: str
) -> None:
    job_id = job({"code": "SELECT pg_sleep(300)"}, {"code": f"INSERT INTO {table} (x) VALUES (1)"})
    run_id = start(admin, job_id)
    pid = wait_until(
        "the step worker",
        lambda: admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgautomator step ' || ("
            " SELECT id FROM pgautomator.step_run WHERE run_id = %s ORDER BY id LIMIT 1)"
            " AND state = 'active'",
            (run_id,),
        ).fetchone(),
    )[0]
    admin.execute("SELECT pgautomator.stop_run(%s::bigint)", (run_id,))
    assert wait_run(admin, run_id) == "stopped"
    wait_until(
        "the worker to exit",
        lambda: scalar(admin, "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)", (pid,)),
    )
    assert step_runs(admin, run_id)[0]["state"] == "stopped"
    assert admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


def test_more_ready_steps_than_workers_all_run(
    admin: psycopg.Connection, job: Callable[..., int], table: str
) -> None:
    workers = int(scalar(admin, "SHOW pgautomator.max_workers"))
    jobs = [
        job({"code": f"SELECT pg_sleep(0.05); INSERT INTO {table} (x) VALUES ({i})"})
        for i in range(workers * 3)
    ]
    runs = [start(admin, j) for j in jobs]
    assert [wait_run(admin, r) for r in runs] == ["succeeded"] * len(runs)
    assert admin.execute(f"SELECT count(DISTINCT x) FROM {table}").fetchone() == (len(runs),)


def test_role_that_cannot_log_in_fails_clearly(
    admin: psycopg.Connection, job: Callable[..., int], make_role: Callable[..., str]
) -> None:
    role = make_role("pgautomator_user")
    job_id = job({"code": "SELECT 1"}, run_as=role)
    admin.execute(f'ALTER ROLE "{role}" NOLOGIN')
    try:
        run_id = start(admin, job_id)
        assert wait_run(admin, run_id) == "failed"
        [result] = step_runs(admin, run_id)
        assert result["sqlstate"] == "28000"
        assert "log in" in result["error"]
    finally:
        admin.execute(f'ALTER ROLE "{role}" LOGIN')


def test_connected_worker_of_a_role_that_lost_login_claims_nothing_more(
    admin: psycopg.Connection, job: Callable[..., int], make_role: Callable[..., str]
) -> None:
    """A worker connected as the run-as role would claim the run's next step
    itself; once the role has lost LOGIN it must not (the worker checks it,
    the claim trusts that check), and the step fails as it would for a new
    worker."""
    role = make_role("pgautomator_user")
    job_id = job({"code": "SELECT pg_sleep(5)"}, {"code": "SELECT 1"}, run_as=role)
    try:
        run_id = start(admin, job_id)
        # (running as the role: its worker has connected, not only been claimed)
        wait_until(
            "the first step to run in a session of the role",
            lambda: scalar(
                admin,
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND query = 'SELECT pg_sleep(5)'"
                " AND state = 'active'",
                (role,),
            ),
        )
        admin.execute(f'ALTER ROLE "{role}" NOLOGIN')
        assert wait_run(admin, run_id) == "failed"
        first, second = step_runs(admin, run_id)
        assert first["state"] == "succeeded"
        assert (second["state"], second["sqlstate"]) == ("failed", "28000")
        assert "log in" in second["error"]
    finally:
        admin.execute(f'ALTER ROLE "{role}" LOGIN')


def test_steps_connect_as_the_role_without_a_client(
    admin: psycopg.Connection, job: Callable[..., int], make_role: Callable[..., str]
) -> None:
    role = make_role("pgautomator_user")
    with connect_as(role, autocommit=True) as conn:
        row = conn.execute("SELECT pgautomator.create_job(%s)", (f"own_{uuid.uuid4().hex[:8]}",)).fetchone()
        assert row is not None
        own_job = int(row[0])
        conn.execute("SELECT pgautomator.add_step(%s, 'who', 'SELECT session_user')", (own_job,))
        row = conn.execute("SELECT pgautomator.start_job(%s::bigint)", (own_job,)).fetchone()
        assert row is not None
        run_id = int(row[0])
    assert wait_run(admin, run_id) == "succeeded"
    assert step_runs(admin, run_id)[0]["output"] == f"{role}\n"


def test_a_reused_worker_starts_each_step_with_a_fresh_session(
    admin: psycopg.Connection, job: Callable[..., int], make_role: Callable[..., str]
) -> None:
    role = make_role("pgautomator_user")
    first = job(
        {
            "code": "CREATE TEMP TABLE leak (x int); SET work_mem = '77MB';"
            " SELECT set_config('pga.leak', 'leaked', false); PREPARE leak_plan AS SELECT 1;"
            " SELECT pg_advisory_lock(4242)"
        },
        run_as=role,
    )
    second = job(
        {
            "code": "SELECT current_setting('work_mem'), coalesce(current_setting('pga.leak', true), ''),"
            " to_regclass('pg_temp.leak') IS NULL,"
            " (SELECT count(*) FROM pg_prepared_statements),"
            " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())"
        },
        run_as=role,
    )
    run_a = start(admin, first)
    assert wait_run(admin, run_a) == "succeeded"
    run_b = start(admin, second)
    assert wait_run(admin, run_b) == "succeeded"
    a, b = step_runs(admin, run_a)[0], step_runs(admin, run_b)[0]
    assert a["worker_pid"] == b["worker_pid"], "the second step should reuse the idle worker"
    fresh_work_mem = scalar(admin, "SELECT current_setting('work_mem')")
    assert b["output"] == f"{fresh_work_mem}||t|0|0\n"


def test_a_step_larger_than_an_idle_workers_segment_gets_a_new_worker(
    admin: psycopg.Connection, job: Callable[..., int], make_role: Callable[..., str]
) -> None:
    """An idle worker's segment holds at least 16 kB of code, or its first
    step's: a larger step needs a new worker, not the idle one."""
    role = make_role("pgautomator_user")
    run_a = start(admin, job({"code": "SELECT 1"}, run_as=role))
    assert wait_run(admin, run_a) == "succeeded"
    large = "SELECT length('" + "x" * 40_000 + "')"
    run_b = start(admin, job({"code": large}, run_as=role))
    assert wait_run(admin, run_b) == "succeeded"
    a, b = step_runs(admin, run_a)[0], step_runs(admin, run_b)[0]
    assert b["output"] == "40000\n"
    assert a["worker_pid"] != b["worker_pid"]


def test_a_role_made_again_gets_a_new_worker(
    admin: psycopg.Connection, job: Callable[..., int], make_role: Callable[..., str]
) -> None:
    role = make_role("pgautomator_user")
    run_a = start(admin, job({"code": "SELECT session_user"}, run_as=role))
    assert wait_run(admin, run_a) == "succeeded"
    old_pid = step_runs(admin, run_a)[0]["worker_pid"]
    admin.execute("DELETE FROM pgautomator.job WHERE run_as = %s", (role,))
    admin.execute(f'DROP ROLE "{role}"')
    admin.execute(f'CREATE ROLE "{role}" LOGIN IN ROLE pgautomator_user')
    run_b = start(admin, job({"code": "SELECT session_user, pg_backend_pid()"}, run_as=role))
    assert wait_run(admin, run_b) == "succeeded"
    result = step_runs(admin, run_b)[0]
    assert result["output"].startswith(f"{role}|")
    assert result["worker_pid"] != old_pid


def test_disabled_launcher_starts_nothing_until_enabled(
    admin: psycopg.Connection, job: Callable[..., int], table: str, setting: Callable[[str, str], None]
) -> None:
    setting("pgautomator.enabled", "off")
    wait_launcher_disabled(admin)
    run_id = start(admin, job({"code": f"INSERT INTO {table} (x) VALUES (1)"}))
    # The run exists and its step waits: nothing claims it while disabled.
    assert (
        scalar(
            admin,
            "SELECT count(*) FROM pgautomator.step_run WHERE run_id = %s AND state = 'queued'",
            (run_id,),
        )
        == 1
    )
    setting("pgautomator.enabled", "on")
    assert wait_run(admin, run_id) == "succeeded"


def test_more_steps_than_background_worker_slots_wait_their_turn(
    admin: psycopg.Connection, job: Callable[..., int], table: str, setting: Callable[[str, str], None]
) -> None:
    slots = int(scalar(admin, "SHOW max_worker_processes"))
    setting("pgautomator.max_workers", str(slots + 20))
    n = slots + 10
    runs = [
        start(admin, job({"code": f"SELECT pg_sleep(0.5); INSERT INTO {table} (x) VALUES ({i})"}))
        for i in range(n)
    ]
    assert [wait_run(admin, r) for r in runs] == ["succeeded"] * n
    assert scalar(admin, f"SELECT count(DISTINCT x) FROM {table}") == n


def test_output_and_messages_are_bounded_keeping_the_tail(
    admin: psycopg.Connection, job: Callable[..., int]
) -> None:
    code = (
        "DO $$BEGIN FOR i IN 1..3000 LOOP RAISE NOTICE 'message %', i; END LOOP; END$$;"
        " SELECT repeat('x', 90) || g FROM generate_series(1, 2000) g"
    )
    run_id = start(admin, job({"code": code}))
    assert wait_run(admin, run_id) == "succeeded"
    [result] = step_runs(admin, run_id)
    full_output = "".join(f"{'x' * 90}{g}\n" for g in range(1, 2001))
    full_messages = "".join(f"NOTICE:  message {i}\n" for i in range(1, 3001))
    for text, full, limit in (
        (result["output"], full_output, 65536),
        (result["messages"], full_messages, 32768),
    ):
        mark, _, tail = text.partition("\n")
        assert mark == f"[{len(full) - len(tail)} characters cut]", mark
        assert full.endswith(tail)
        assert len(text.encode()) <= limit
    assert result["rows_affected"] == 2000


def test_a_failing_dispatcher_pass_does_not_stop_the_launcher(
    admin: psycopg.Connection, job: Callable[..., int], table: str
) -> None:
    def launcher_pid() -> Any:
        row = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgautomator launcher'"
        ).fetchone()
        return row[0] if row else None

    pid = wait_until("the launcher", launcher_pid)
    original = str(
        scalar(admin, "SELECT pg_get_functiondef('pgautomator._launcher_tick(timestamptz)'::regprocedure)")
    )
    head, _, rest = original.partition("AS $function$")
    _, _, tail = rest.partition("$function$")
    broken = f"{head}AS $function$BEGIN RAISE EXCEPTION 'test: the dispatcher is broken'; END$function${tail}"
    try:
        admin.execute(broken)
        # start_job notifies: the pass's tick fails, its claim still works
        run_id = start(admin, job({"code": f"INSERT INTO {table} (x) VALUES (1)"}))
        assert wait_run(admin, run_id) == "succeeded"
        assert launcher_pid() == pid
    finally:
        admin.execute(original)
    log = os.path.join(os.environ.get("PGAUTOMATOR_TEST_BASE", ""), "log", "server.log")
    if os.path.exists(log):
        with open(log, encoding="utf-8", errors="replace") as f:
            assert "_launcher_tick failed: test: the dispatcher is broken" in f.read()


def test_the_launcher_reports_its_table_statistics(admin: psycopg.Connection) -> None:
    """Autovacuum sizes its work by these counts: a launcher that never sent
    them would let the queue tables bloat."""

    def heartbeats() -> int:
        sql = "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relid = 'pgautomator.agent'::regclass"
        return int(scalar(admin, sql))

    before = heartbeats()
    wait_until("the launcher's heartbeat updates in pg_stat_user_tables", lambda: heartbeats() > before)


def test_reindex_of_the_schedulers_tables_never_deadlocks_with_it(
    admin: psycopg.Connection, job: Callable[..., int]
) -> None:
    # A REINDEX (not CONCURRENTLY) holds a table in SHARE mode and then locks
    # its indexes: a bookkeeping transaction that read the table through an
    # index and then writes it would close a cycle with it (REINDEX
    # DATABASE, a maintenance step users schedule, reaches every table).
    # Before the launcher and the workers locked these tables first, 44-83
    # of these 300 runs failed with a deadlock, and now and then a REINDEX.
    job_id = job({"code": "SELECT 1"}, {"code": "SELECT 2"}, overlap="parallel", max_parallel=50)
    deadlocks_before = scalar(
        admin, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    )
    runs = [
        int(r[0])
        for r in admin.execute(
            "SELECT pgautomator.start_job(%s::bigint) FROM generate_series(1, 300)", (job_id,)
        ).fetchall()
    ]
    active = "SELECT count(*) FROM pgautomator.run WHERE id = ANY(%s) AND state IN ('queued', 'running')"
    deadlocks: list[str] = []
    end = time.monotonic() + DEADLINE
    with psycopg.connect(_dsn(), autocommit=True) as other:
        other.execute("SET statement_timeout = '60s'")
        while scalar(admin, active, (runs,)) > 0:
            if time.monotonic() > end:
                pytest.fail("the runs did not end")
            for table in ("run", "step_run", "job_schedule"):
                try:
                    other.execute(f"REINDEX TABLE pgautomator.{table}")
                except psycopg.errors.DeadlockDetected as e:
                    deadlocks.append(str(e))
    failed = admin.execute(
        "SELECT sr.step_name, sr.error FROM pgautomator.step_run sr"
        " WHERE sr.run_id = ANY(%s) AND sr.state <> 'succeeded'",
        (runs,),
    ).fetchall()
    assert deadlocks == [] and failed == [], (deadlocks, failed[:3], len(failed))
    assert (
        scalar(
            admin, "SELECT count(*) FROM pgautomator.run WHERE id = ANY(%s) AND state = 'succeeded'", (runs,)
        )
        == 300
    )
    # nor a launcher pass or a record taken after a commit, retried unseen
    # (as far as their statistics arrived: at most a second late)
    assert (
        scalar(admin, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        == deadlocks_before
    )


def test_a_step_running_past_the_lost_grace_is_left_alone(
    admin: psycopg.Connection, job: Callable[..., int]
) -> None:
    # A worker seen gone is given 10 seconds before its step run is crashed:
    # a live one, running longer while the dispatcher passes, never is.
    run = start(admin, job({"code": "SELECT pg_sleep(12)"}))
    end = time.monotonic() + 60
    while run_state(admin, run) in ("queued", "running") and time.monotonic() < end:
        admin.execute("NOTIFY pgautomator_wake")  # a dispatcher pass, crash checks included
        time.sleep(0.5)
    assert wait_run(admin, run) == "succeeded"
    assert admin.execute(
        "SELECT lost_since FROM pgautomator.step_run WHERE run_id = %s", (run,)
    ).fetchone() == (None,)

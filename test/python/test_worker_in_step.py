"""A step that succeeds in the extension's database has its outcome recorded
in its own last transaction, just before that commits: the step's work and
its record commit together."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from conftest import scalar, start, step_runs, wait_run, wait_until


@pytest.fixture
def xids(admin: psycopg.Connection) -> Iterator[str]:
    """A table where steps write (their step run, their transaction), and a
    trigger that writes the same for each step run recorded as succeeded:
    one transaction for both means the step and its record committed
    together."""
    name = f"public.wx_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE TABLE {name} (step_run bigint, xid bigint, by text)")
    admin.execute(f"GRANT ALL ON {name} TO PUBLIC")
    admin.execute(
        f"""CREATE FUNCTION {name}_note() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO {name} VALUES (NEW.id, txid_current(), 'record');
                RETURN NULL;
            END $$"""
    )
    admin.execute(
        f"""CREATE TRIGGER {name.split(".")[1]}_note AFTER UPDATE OF state ON pgautomator.step_run
            FOR EACH ROW WHEN (OLD.state = 'running' AND NEW.state = 'succeeded')
            EXECUTE FUNCTION {name}_note()"""
    )
    try:
        yield name
    finally:
        admin.execute(f"DROP TRIGGER {name.split('.')[1]}_note ON pgautomator.step_run")
        admin.execute(f"DROP TABLE {name}")
        admin.execute(f"DROP FUNCTION {name}_note()")


def test_a_step_and_its_record_commit_together(
    admin: psycopg.Connection, job: Callable[..., int], xids: str
) -> None:
    mark = (
        f"INSERT INTO {xids} SELECT split_part(current_setting('application_name'), ' ', 3)::bigint,"
        " txid_current(), 'step'"
    )
    job_id = job(
        # one statement that commits on its own: recorded with it
        {"code": mark},
        # a single-mode block: recorded with it
        {"code": f"SELECT 1; {mark}", "transaction": "single"},
        # a transaction that does not read or wait as the bookkeeping must
        {"code": f"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; {mark}", "transaction": "single"},
        {"code": f"SET LOCAL synchronous_commit = off; {mark}", "transaction": "single"},
        # commits of its own (VACUUM) or a read-only transaction: after it
        {"code": f"VACUUM {xids}"},
        {"code": "SET TRANSACTION READ ONLY; SELECT 6", "transaction": "single"},
    )
    run_id = start(admin, job_id)
    assert wait_run(admin, run_id) == "succeeded"
    assert [r["state"] for r in step_runs(admin, run_id)] == ["succeeded"] * 6
    assert step_runs(admin, run_id)[5]["output"] == "6\n"
    together = admin.execute(
        f"""SELECT sr.step_name, s.xid = r.xid
              FROM pgautomator.step_run sr
              JOIN {xids} s ON s.step_run = sr.id AND s.by = 'step'
              JOIN {xids} r ON r.step_run = sr.id AND r.by = 'record'
             WHERE sr.run_id = %s ORDER BY sr.id""",
        (run_id,),
    ).fetchall()
    assert together == [("s1", True), ("s2", True), ("s3", False), ("s4", False)]


def test_a_commit_that_fails_takes_the_record_with_it(
    admin: psycopg.Connection, job: Callable[..., int], table: str
) -> None:
    """A deferred check fails at the end of the step (before its record is
    taken, as at its commit): nothing of the step is kept, and its step run
    ends failed with the check's error."""
    admin.execute(
        f"""CREATE FUNCTION {table}_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'refused at commit' USING ERRCODE = '23514'; END $$"""
    )
    try:
        admin.execute(
            f"""CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON {table}
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {table}_refuse()"""
        )
        job_id = job({"code": f"INSERT INTO {table} (x) VALUES (1)"})
        run_id = start(admin, job_id)
        assert wait_run(admin, run_id) == "failed"
        (result,) = step_runs(admin, run_id)
        assert (result["state"], result["sqlstate"]) == ("failed", "23514")
        assert "refused at commit" in result["error"]
        assert scalar(admin, f"SELECT count(*) FROM {table}") == 0
    finally:
        admin.execute(f"DROP TRIGGER IF EXISTS refuse ON {table}")
        admin.execute(f"DROP FUNCTION {table}_refuse()")


def test_a_superuser_step_that_changes_the_session_user_claims_nothing_for_it(
    admin: psycopg.Connection, job: Callable[..., int], make_role: Callable[..., str]
) -> None:
    """A superuser's step may change the session user; the worker's next
    step run is still claimed, and run, as the role it connected as."""
    role = make_role("pgautomator_user")
    job_id = job(
        {"code": f'SET SESSION AUTHORIZATION "{role}"; SELECT 1'},
        {"code": "SELECT session_user"},
    )
    run_id = start(admin, job_id)
    assert wait_run(admin, run_id) == "succeeded"
    results = step_runs(admin, run_id)
    run_as = scalar(admin, "SELECT run_as FROM pgautomator.job WHERE id = %s", (job_id,))
    assert results[1]["output"] == f"{run_as}\n"
    assert results[0]["worker_pid"] == results[1]["worker_pid"]


def test_what_is_recorded_with_the_step_says_when_it_ended(
    admin: psycopg.Connection, job: Callable[..., int]
) -> None:
    """The step's transaction began when its statement did: its record,
    and the claim of the next step, say when it ended."""
    job_id = job({"code": "SELECT pg_sleep(0.3)"}, {"code": "SELECT pg_sleep(0.2)"})
    run_id = start(admin, job_id)
    assert wait_run(admin, run_id) == "succeeded"
    first, second = admin.execute(
        """SELECT started_at, finished_at, extract(epoch FROM duration)
             FROM pgautomator.step_runs WHERE run_id = %s ORDER BY id""",
        (run_id,),
    ).fetchall()
    assert first[2] >= 0.3 and second[2] >= 0.2
    assert second[0] >= first[1]
    run = admin.execute(
        "SELECT finished_at, extract(epoch FROM duration) FROM pgautomator.runs WHERE id = %s", (run_id,)
    ).fetchone()
    assert run is not None and run[0] >= second[1] and run[1] >= 0.5


def test_the_run_as_roles_settings_reach_its_steps_not_the_bookkeeping(
    admin: psycopg.Connection, job: Callable[..., int], make_role: Callable[..., str]
) -> None:
    """ALTER ROLE ... SET values apply to the steps (a read-only, serializable
    transaction is recorded after it) and never to the bookkeeping, which
    pins how it reads and waits."""
    role = make_role("pgautomator_user")
    for setting in (
        "default_transaction_read_only = on",
        "default_transaction_isolation = serializable",
        "lock_timeout = '1ms'",
    ):
        admin.execute(f'ALTER ROLE "{role}" SET {setting}')
    job_id = job(
        {"code": "SELECT current_setting('transaction_read_only'), current_setting('transaction_isolation')"},
        {"code": "SELECT 2"},
        run_as=role,
    )
    run_id = start(admin, job_id)
    assert wait_run(admin, run_id) == "succeeded"
    first, second = step_runs(admin, run_id)
    assert first["output"] == "on|serializable\n"
    assert second["output"] == "2\n"
    assert first["worker_pid"] == second["worker_pid"], "the worker claimed the second step itself"


def test_a_stop_reaches_a_step_in_its_deferred_triggers(
    admin: psycopg.Connection, job: Callable[..., int], table: str
) -> None:
    """The step's deferred triggers run before its record is taken, as its
    commit would run them: meanwhile the step holds none of pgautomator's
    row locks, so stop_run does not wait for them and its cancel lands."""
    admin.execute(
        f"""CREATE FUNCTION {table}_slow() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep(300); RETURN NULL; END $$"""
    )
    try:
        admin.execute(
            f"""CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON {table}
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {table}_slow()"""
        )
        run_id = start(admin, job({"code": f"INSERT INTO {table} (x) VALUES (1)"}))
        sql = """SELECT count(*) FROM pg_stat_activity
                  WHERE wait_event = 'PgSleep' AND backend_type LIKE 'pgautomator step%%'
                    AND application_name = 'pgautomator step ' ||
                        (SELECT id FROM pgautomator.step_run WHERE run_id = %s)"""
        wait_until("the step's deferred trigger sleeping", lambda: scalar(admin, sql, (run_id,)) == 1)
        admin.execute("SET statement_timeout = '20s'")
        try:
            admin.execute("SELECT pgautomator.stop_run(%s)", (run_id,))
        finally:
            admin.execute("RESET statement_timeout")
        assert wait_run(admin, run_id) == "stopped"
        assert scalar(admin, f"SELECT count(*) FROM {table}") == 0
    finally:
        admin.execute(f"DROP TRIGGER IF EXISTS slow ON {table}")
        admin.execute(f"DROP FUNCTION {table}_slow()")


def test_a_record_that_fails_fails_the_step_and_rolls_back_its_work(
    admin: psycopg.Connection, dsn: str, job: Callable[..., int], table: str
) -> None:
    """The record joins the step's transaction with no subtransaction: when
    it fails (here a deadlock with a session that holds the run and waits
    for the step's row), the step fails as at a failing commit, and the work
    of that transaction is rolled back with the record."""
    admin.execute(f"INSERT INTO {table} (x) VALUES (0)")
    job_id = job(
        {
            "code": f"UPDATE {table} SET x = x + 1; SELECT pg_advisory_xact_lock_shared(4545)",
            "transaction": "single",
        }
    )
    waiting = (
        "SELECT count(*) FROM pg_locks l WHERE NOT l.granted AND l.locktype = ANY(%s)"
        " AND l.pid = ANY(SELECT sr.worker_pid FROM pgautomator.step_run sr WHERE sr.run_id = %s)"
    )
    with psycopg.connect(dsn, autocommit=True) as holder:
        admin.execute("SELECT pg_advisory_lock(4545)")
        try:
            run_id = start(admin, job_id)
            wait_until(
                "the step to hold its row", lambda: scalar(admin, waiting, (["advisory"], run_id)) == 1
            )
            # The holder takes the run, then waits for the step's row.  The
            # step's record closes the cycle when it waits for the run, so
            # the step's backend is the one that finds the deadlock (the
            # holder would look only after a minute).
            holder.execute("SET deadlock_timeout = '60s'")
            holder.execute("BEGIN")
            holder.execute("SELECT FROM pgautomator.run WHERE id = %s FOR UPDATE", (run_id,))
            holder_pid = scalar(holder, "SELECT pg_backend_pid()")
            update = threading.Thread(target=holder.execute, args=(f"UPDATE {table} SET x = x + 100",))
            update.start()
            holder_waits = "SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted"
            wait_until(
                "the holder to wait for the step's row",
                lambda: scalar(admin, holder_waits, (holder_pid,)) == 1,
            )
        finally:
            admin.execute("SELECT pg_advisory_unlock(4545)")
        update.join()
        holder.execute("COMMIT")
    assert wait_run(admin, run_id) == "failed"
    result = step_runs(admin, run_id)[0]
    assert result["sqlstate"] == "40P01"
    assert result["error"].startswith("could not record the step's outcome in its transaction")
    assert result["rows_affected"] == 0
    assert scalar(admin, f"SELECT x FROM {table}") == 100, "the step's update was kept"

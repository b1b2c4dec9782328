"""A step that succeeds in the extension's database has its outcome recorded
in its own last transaction, just before that commits: the step's work and
its record commit together.  A deferred constraint trigger of the step's
table sees, at commit, whether the record is already in the transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from conftest import scalar, start, step_runs, wait_run


@pytest.fixture
def watched(admin: psycopg.Connection, table: str) -> Iterator[str]:
    """The scratch table, with a deferred trigger that notes, per row, the
    state its own step run has inside the step's transaction at commit (the
    worker names its step run in application_name)."""
    seen = f"{table}_seen"
    admin.execute(f"CREATE TABLE {seen} (x int, state text)")
    admin.execute(
        f"""CREATE FUNCTION {seen}_note() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO {seen}
                SELECT NEW.x, sr.state FROM pgautomator.step_run sr
                 WHERE sr.id = split_part(current_setting('application_name'), ' ', 3)::bigint;
                RETURN NULL;
            END $$"""
    )
    admin.execute(
        f"""CREATE CONSTRAINT TRIGGER note AFTER INSERT ON {table}
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {seen}_note()"""
    )
    yield seen
    admin.execute(f"DROP TRIGGER note ON {table}")
    admin.execute(f"DROP TABLE {seen}")
    admin.execute(f"DROP FUNCTION {seen}_note()")


def test_a_step_and_its_record_commit_together(
    admin: psycopg.Connection, job: Callable[..., int], table: str, watched: str
) -> None:
    job_id = job(
        # one statement that commits on its own: recorded with it
        {"code": f"INSERT INTO {table} (x) VALUES (1)"},
        # a single-mode block: recorded with it
        {
            "code": f"INSERT INTO {table} (x) VALUES (2); INSERT INTO {table} (x) VALUES (3)",
            "transaction": "single",
        },
        # a transaction that does not read as the bookkeeping must: after it
        {
            "code": f"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; INSERT INTO {table} (x) VALUES (4)",
            "transaction": "single",
        },
        {
            "code": f"SET LOCAL synchronous_commit = off; INSERT INTO {table} (x) VALUES (5)",
            "transaction": "single",
        },
        # commits of its own (VACUUM) or a read-only transaction: after it
        {"code": f"VACUUM {table}"},
        {"code": "SET TRANSACTION READ ONLY; SELECT 6", "transaction": "single"},
    )
    run_id = start(admin, job_id)
    assert wait_run(admin, run_id) == "succeeded"
    assert [r["state"] for r in step_runs(admin, run_id)] == ["succeeded"] * 6
    assert step_runs(admin, run_id)[5]["output"] == "6\n"
    seen = admin.execute(f"SELECT x, state FROM {watched} ORDER BY x").fetchall()
    assert seen == [
        (1, "succeeded"),
        (2, "succeeded"),
        (3, "succeeded"),
        (4, "running"),
        (5, "running"),
    ]


def test_a_commit_that_fails_takes_the_record_with_it(
    admin: psycopg.Connection, job: Callable[..., int], table: str
) -> None:
    """The step's commit fails after its success was recorded in it (a
    deferred check): both roll back, and the step run ends failed."""
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
             FROM pgautomator.step_run WHERE run_id = %s ORDER BY id""",
        (run_id,),
    ).fetchall()
    assert first[2] >= 0.3 and second[2] >= 0.2
    assert second[0] >= first[1]
    run = admin.execute(
        "SELECT finished_at, extract(epoch FROM duration) FROM pgautomator.run WHERE id = %s", (run_id,)
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

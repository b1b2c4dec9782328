"""Crash behaviour of the in-database executor: a step worker killed with
SIGKILL (the postmaster then restarts every process) or terminated with
pg_terminate_backend, and a server restart, all end the running step's run
as crashed, and a job with retry_on_crash runs again.  Each test waits
until the server and the launcher are back, so later tests find the
cluster as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from conftest import scalar, start
from conftest import wait_run as conftest_wait_run
from conftest import wait_until as _wait_until

# The first attempt marks the table and sleeps; the retry marks it again
# and finishes at once.
STEP = (
    "INSERT INTO {t} VALUES (1);"
    " SELECT pg_sleep(CASE WHEN (SELECT count(*) FROM {t}) = 1 THEN 300 ELSE 0 END)"
)


def wait_until(what: str, check: Callable[[], Any]) -> Any:
    """conftest.wait_until, where a lost connection (the server is
    restarting) counts as not yet."""

    def guarded() -> Any:
        try:
            return check()
        except psycopg.OperationalError:
            return None

    return _wait_until(what, guarded)


def query(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Runs one statement on a fresh connection (the old ones die with the
    server); libpq takes the harness's PGHOST, PGPORT, PGUSER, PGDATABASE."""
    with psycopg.connect(autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []


def as_cluster_owner(*args: str) -> list[str]:
    """The command, run as the postgres OS user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return list(args)


@pytest.fixture
def crash_job() -> Iterator[tuple[int, str]]:
    """A job with retry_on_crash whose one step sleeps on its first attempt."""
    table = f"public.wc_{uuid.uuid4().hex[:10]}"
    query(f"CREATE TABLE {table} (x int)")
    query(f"GRANT ALL ON {table} TO PUBLIC")
    row = query(
        "SELECT pgautomator.create_job(%s, retry_on_crash => true)", (f"crash_{uuid.uuid4().hex[:8]}",)
    )
    job_id = int(row[0][0])
    query("SELECT pgautomator.add_step(%s, 'sleepy', %s)", (job_id, STEP.format(t=table)))
    yield job_id, table
    query("DELETE FROM pgautomator.job WHERE id = %s", (job_id,))
    query(f"DROP TABLE IF EXISTS {table}")


def start_and_find_worker(job_id: int) -> tuple[int, int]:
    """Starts the job; returns the run id and the pid of its sleeping step worker."""
    run_id = int(query("SELECT pgautomator.start_job(%s::bigint)", (job_id,))[0][0])
    rows = wait_until(
        "the step worker to sleep",
        lambda: query(
            "SELECT a.pid FROM pg_stat_activity a JOIN pgautomator.step_run sr"
            " ON a.application_name = 'pgautomator step ' || sr.id"
            " WHERE sr.run_id = %s AND a.wait_event = 'PgSleep'",
            (run_id,),
        ),
    )
    return run_id, int(rows[0][0])


def check_crashed_and_retried(run_id: int) -> None:
    """The run ends crashed and its crash retry succeeds."""
    state = wait_until(
        "the run to end crashed",
        lambda: query(
            "SELECT state FROM pgautomator.run WHERE id = %s AND state NOT IN ('queued', 'running')",
            (run_id,),
        ),
    )
    assert state[0][0] == "crashed"
    retry = wait_until(
        "the crash retry to succeed",
        lambda: query(
            "SELECT trigger, state FROM pgautomator.run WHERE retry_of = %s AND state = 'succeeded'",
            (run_id,),
        ),
    )
    assert retry[0][0] == "crash_retry"
    step = query(
        "SELECT state, error FROM pgautomator.step_run WHERE run_id = %s ORDER BY id LIMIT 1", (run_id,)
    )
    assert step[0][0] == "crashed"
    assert step[0][1]


def wait_for_launcher() -> None:
    wait_until(
        "the launcher to be back",
        lambda: query("SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pgautomator launcher'"),
    )


def test_sigkill_of_a_step_worker(crash_job: tuple[int, str]) -> None:
    job_id, table = crash_job
    run_id, pid = start_and_find_worker(job_id)
    os.kill(pid, signal.SIGKILL)
    check_crashed_and_retried(run_id)
    assert query(f"SELECT count(*) FROM {table}") == [(2,)]
    wait_for_launcher()


def test_pg_terminate_backend_of_a_step_worker(crash_job: tuple[int, str]) -> None:
    job_id, table = crash_job
    run_id, pid = start_and_find_worker(job_id)
    assert query("SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]
    check_crashed_and_retried(run_id)
    assert query(f"SELECT count(*) FROM {table}") == [(2,)]


@pytest.mark.skipif(
    not os.environ.get("PGAUTOMATOR_TEST_BASE") or not os.environ.get("PGAUTOMATOR_TEST_BINDIR"),
    reason="needs the harness's cluster (scripts/test.sh)",
)
def test_server_restart_while_a_step_runs(crash_job: tuple[int, str]) -> None:
    job_id, table = crash_job
    base = os.environ["PGAUTOMATOR_TEST_BASE"]
    bindir = os.environ["PGAUTOMATOR_TEST_BINDIR"]
    run_id, _ = start_and_find_worker(job_id)
    subprocess.run(
        as_cluster_owner(
            f"{bindir}/pg_ctl",
            "-D",
            f"{base}/data",
            "-l",
            f"{base}/log/server.log",
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "restart",
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    check_crashed_and_retried(run_id)
    assert query(f"SELECT count(*) FROM {table}") == [(2,)]
    wait_for_launcher()


@pytest.mark.parametrize("idle_worker", [False, True], ids=["new worker", "idle worker"])
def test_a_pid_that_failed_to_record_is_recorded_later(
    admin: psycopg.Connection,
    job: Callable[..., int],
    make_role: Callable[..., str],
    setting: Callable[[str, str], None],
    idle_worker: bool,
) -> None:
    """Recording a step worker's pid fails once (a deadlock, a cancelled
    lock wait would do): the launcher records it in a later pass, rather
    than leave the running step run without a pid, to be taken for lost,
    crashed and maybe retried while it still runs, and not cancellable."""
    role = make_role("pgautomator_user")
    setting("pgautomator.worker_idle_time", "90s")
    idle_pid = None
    if idle_worker:
        # a worker of the role that finished a step waits, idle, for the next
        first = start(admin, job({"code": "SELECT 1"}, run_as=role))
        assert conftest_wait_run(admin, first) == "succeeded"
        idle_pid = wait_until(
            "the worker to idle",
            lambda: admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE usename = %s"
                " AND application_name = 'pgautomator step idle'",
                (role,),
            ).fetchone(),
        )[0]
    job_id = job({"code": "SELECT pg_sleep(300)"}, run_as=role)
    seq = f"public.fail_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE SEQUENCE {seq}")
    original = str(
        admin.execute(
            "SELECT pg_get_functiondef('pgautomator._launcher_started(bigint, integer)'::regprocedure)"
        ).fetchone()[0]  # type: ignore[index]
    )
    head, sep, body = original.partition("BEGIN")
    # (a sequence: what the failing subtransaction did is rolled back, not nextval)
    failing = (
        f"{head}{sep} IF p_pid <> 0 AND (SELECT r.job_id FROM pgautomator.step_run sr"
        f" JOIN pgautomator.run r ON r.id = sr.run_id WHERE sr.id = p_step_run_id) = {job_id}"
        f" AND pg_catalog.nextval('{seq}') = 1 THEN"
        " RAISE EXCEPTION 'test: recording the pid fails once'; END IF;"
        f"{body}"
    )
    try:
        admin.execute(failing)
        run_id = start(admin, job_id)
        wait_until(
            "the record of the pid to fail",
            lambda: admin.execute(f"SELECT is_called FROM {seq}").fetchone() == (True,),
        )
        row = wait_until(
            "the pid to be recorded while the step runs",
            lambda: admin.execute(
                "SELECT worker_pid, state FROM pgautomator.step_run"
                " WHERE run_id = %s AND worker_pid IS NOT NULL",
                (run_id,),
            ).fetchone(),
        )
        assert row[1] == "running"
        if idle_pid is not None:
            assert row[0] == idle_pid, "the idle worker should have taken the step"
        # recorded, the stop reaches the worker
        admin.execute("SELECT pgautomator.stop_run(%s::bigint)", (run_id,))
        assert conftest_wait_run(admin, run_id) == "stopped"
    finally:
        admin.execute(original)
        admin.execute(f"DROP SEQUENCE IF EXISTS {seq}")


@pytest.mark.parametrize("backend_type", ["pgautomator launcher", "pgautomator mailer"])
def test_a_cancel_while_idle_leaves_it_running(
    admin: psycopg.Connection, job: Callable[..., int], backend_type: str
) -> None:
    """pg_cancel_backend on the idle launcher (or mailer), as a script that
    cancels idle sessions would send it, has nothing to cancel: it used to
    end the launcher, and with it every running step."""

    def idle() -> Any:
        return admin.execute(
            "SELECT pid, state_change FROM pg_stat_activity WHERE backend_type = %s AND state = 'idle'",
            (backend_type,),
        ).fetchone()

    pid, since = wait_until(f"the {backend_type} to idle", idle)
    assert admin.execute("SELECT pg_cancel_backend(%s)", (pid,)).fetchone() == (True,)
    # the cancel wakes it: it goes through its loop (a pass) and idles again, or it is gone
    wait_until(
        f"the {backend_type} to take the cancel",
        lambda: (
            admin.execute(
                "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s AND backend_type = %s"
                " AND (state <> 'idle' OR state_change = %s))",
                (pid, backend_type, since),
            ).fetchone()
            == (True,)
        ),
    )
    assert admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = %s", (backend_type,)
    ).fetchall() == [(pid,)], f"the {backend_type} should live on"
    if backend_type == "pgautomator launcher":
        run_id = start(admin, job({"code": "SELECT 1"}))
        assert conftest_wait_run(admin, run_id) == "succeeded"
        assert admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = %s", (backend_type,)
        ).fetchall() == [(pid,)]


def test_the_extension_made_again_stops_the_workers_of_the_one_before(admin: psycopg.Connection) -> None:
    """DROP and CREATE EXTENSION while a step runs: its step run went with
    the old installation, and its id, given again by the new one, names
    another step run there.  The launcher stops that worker rather than let
    it (or itself) record its outcome into the new installation."""
    job_id = int(scalar(admin, "SELECT pgautomator.create_job(%s)", (f"again_{uuid.uuid4().hex[:8]}",)))
    admin.execute("SELECT pgautomator.add_step(%s, 'sleepy', 'SELECT pg_sleep(300)')", (job_id,))
    run_id = start(admin, job_id)
    pid = wait_until(
        "the step worker to sleep",
        lambda: admin.execute(
            "SELECT a.pid FROM pg_stat_activity a JOIN pgautomator.step_run sr"
            " ON a.application_name = 'pgautomator step ' || sr.id"
            " WHERE sr.run_id = %s AND a.wait_event = 'PgSleep'",
            (run_id,),
        ).fetchone(),
    )[0]
    admin.execute("DROP EXTENSION pgautomator")
    admin.execute("CREATE EXTENSION pgautomator")
    wait_until(
        "the old installation's worker to be stopped",
        lambda: scalar(admin, "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)", (pid,)),
    )
    # the launcher serves the new installation
    wait_until("the database agent", lambda: scalar(admin, "SELECT pgautomator._database_agent()"))
    job_id = int(scalar(admin, "SELECT pgautomator.create_job(%s)", (f"again_{uuid.uuid4().hex[:8]}",)))
    admin.execute("SELECT pgautomator.add_step(%s, 'quick', 'SELECT 1')", (job_id,))
    run_id = start(admin, job_id)
    assert conftest_wait_run(admin, run_id) == "succeeded"
    admin.execute("DELETE FROM pgautomator.job WHERE id = %s", (job_id,))


def test_a_step_run_whose_report_is_given_up_ends_crashed(
    admin: psycopg.Connection,
    job: Callable[..., int],
    make_role: Callable[..., str],
    setting: Callable[[str, str], None],
) -> None:
    """The launcher gives up reporting an outcome (here _launcher_report
    fails each time for the job): the step run is still running with the
    worker's pid, so the worker is asked to exit, and the dispatcher then
    ends it crashed.  Idle and alive, the worker kept the step run running
    for good (and a stop of it would have cancelled its next steps)."""
    setting("pgautomator.max_sleep", "1s")
    setting("pgautomator.worker_idle_time", "1h")
    role = make_role("pgautomator_user")
    other = f"pga_other_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {other}")
    original = str(
        scalar(
            admin,
            "SELECT pg_get_functiondef('pgautomator._launcher_report(bigint, boolean, text, text, text,"
            " bigint, text)'::regprocedure)",
        )
    )
    try:
        # steps of another database are reported by the launcher
        # (a second: its pid is recorded while it runs)
        job_id = job({"code": "SELECT pg_sleep(1)", "database": other}, run_as=role)
        head, sep, body = original.partition("BEGIN")
        admin.execute(
            f"{head}{sep} IF (SELECT r.job_id FROM pgautomator.step_run sr JOIN pgautomator.run r"
            f" ON r.id = sr.run_id WHERE sr.id = p_step_run_id) = {job_id} THEN"
            f" RAISE EXCEPTION 'test: the report fails'; END IF;{body}"
        )
        run_id = start(admin, job_id)
        pid = wait_until(
            "the step run's worker",
            lambda: scalar(
                admin,
                "SELECT (SELECT pid FROM pg_stat_activity WHERE usename = %s AND datname = %s"
                " AND backend_type = 'pgautomator step' LIMIT 1)",
                (role, other),
            ),
        )
        wait_until(
            "the worker to exit",
            lambda: scalar(admin, "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)", (pid,)),
        )
        assert conftest_wait_run(admin, run_id) == "crashed"
    finally:
        admin.execute(original)
        admin.execute(f"DROP DATABASE {other} WITH (FORCE)")

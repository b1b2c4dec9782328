"""End to end: real agent processes against the test cluster, driven only
through the public API (jobs are made and started by an ordinary user)."""

from __future__ import annotations

import contextlib
import signal
import socket
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from agents import AgentProcess
from conftest import conninfo

from helpers import cleanup_pids, pids_alive, read_pids, wait_for

Row = tuple[Any, ...]


@pytest.fixture
def agent_role(make_role: Callable[..., str]) -> str:
    return make_role("pgautomator_agent")


@pytest.fixture
def user(make_role: Callable[..., str], admin: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection of a pgautomator_user member (owner and run-as role of the jobs)."""
    role = make_role("pgautomator_user")
    with psycopg.connect(conninfo(user=role), autocommit=True) as conn:
        yield conn


@pytest.fixture
def agents(
    agent_role: str, tmp_path: Path, admin: psycopg.Connection[Any]
) -> Iterator[Callable[..., AgentProcess]]:
    """Starts agent processes; stops them and forgets them afterwards."""
    started: list[AgentProcess] = []

    def start(
        name: str | None = None, environ: dict[str, str] | None = None, **settings: str
    ) -> AgentProcess:
        agent = AgentProcess(
            name or f"t-agent-{uuid.uuid4().hex[:8]}", agent_role, tmp_path, environ=environ, **settings
        )
        started.append(agent)
        agent.wait_registered(admin)
        return agent

    yield start
    for agent in started:
        agent.close()
        # Shown by pytest when the test failed.
        print(f"--- log of agent {agent.name} ---\n{agent.log()}")
    names = [agent.name for agent in started]
    admin.execute("DELETE FROM pgautomator.agent WHERE name = ANY(%s)", (names,))


def make_job(user: psycopg.Connection[Any], steps: list[dict[str, Any]], **job: Any) -> str:
    name = f"t-job-{uuid.uuid4().hex[:8]}"
    args = ", ".join(f"{key} => %({key})s" for key in job)
    user.execute(
        f"SELECT pgautomator.create_job(%(name)s{', ' + args if args else ''})".encode(),
        {"name": name, **job},
    )
    for index, step in enumerate(steps):
        step = {"kind": "shell", **step}
        args = ", ".join(f"{key} => %({key})s" for key in step)
        user.execute(
            f"SELECT pgautomator.add_step(%(job)s, %(step_name)s, {args})".encode(),
            {"job": name, "step_name": f"step{index + 1}", **step},
        )
    return name


def start(user: psycopg.Connection[Any], job: str) -> int:
    row = user.execute("SELECT pgautomator.start_job(%s)", (job,)).fetchone()
    assert row is not None
    return int(row[0])


def run_state(admin: psycopg.Connection[Any], run_id: int) -> str:
    row = admin.execute("SELECT state FROM pgautomator.run WHERE id = %s", (run_id,)).fetchone()
    assert row is not None
    return str(row[0])


def wait_run(admin: psycopg.Connection[Any], run_id: int, states: tuple[str, ...], tick: bool = False) -> str:
    """Waits until the run is in one of `states`; with `tick`, drives the
    dispatcher meanwhile (as the launcher would)."""

    def reached() -> str | None:
        if tick:
            admin.execute("SELECT pgautomator._launcher_tick()")
        state = run_state(admin, run_id)
        return state if state in states else None

    state: str = wait_for(reached, timeout=60, what=f"run {run_id} to reach {states}")
    return state


def step_runs(admin: psycopg.Connection[Any], run_id: int) -> list[dict[str, Any]]:
    with admin.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            "SELECT id, step_name, state, agent_id, exit_code, output, error, sqlstate, attempt"
            " FROM pgautomator.step_run WHERE run_id = %s ORDER BY id",
            (run_id,),
        )
        return cur.fetchall()


def test_shell_steps_run_in_order_and_their_output_lands_in_the_log(
    agents: Callable[..., AgentProcess], user: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    agent = agents()
    job = make_job(
        user,
        [
            {"code": 'echo "run $PGAUTOMATOR_RUN_ID job $PGAUTOMATOR_JOB_ID"; echo warn >&2'},
            {"code": "echo second; exit 3", "success_codes": [3]},
        ],
    )
    run_id = start(user, job)
    assert wait_run(admin, run_id, ("succeeded", "failed")) == "succeeded"
    first, second = step_runs(admin, run_id)
    job_id = admin.execute("SELECT id FROM pgautomator.job WHERE name = %s", (job,)).fetchone()
    assert job_id is not None
    assert first["output"] == f"run {run_id} job {job_id[0]}\nwarn\n"
    assert (first["state"], first["exit_code"], first["agent_id"]) == ("succeeded", 0, agent.agent_id)
    assert (second["state"], second["exit_code"], second["output"]) == ("succeeded", 3, "second\n")


def test_a_job_mixing_sql_and_shell_steps_runs_them_in_order_across_database_and_agent(
    agents: Callable[..., AgentProcess], user: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    preload = admin.execute("SHOW shared_preload_libraries").fetchone()
    if preload is None or "pgautomator" not in preload[0]:
        pytest.skip("no in-database executor here: bgworker/ is not built into this checkout")
    # The launcher starts (or restarts) on its own schedule.
    wait_for(
        lambda: (
            admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgautomator launcher'"
            ).fetchone()
            != (0,)
        ),
        what="the pgautomator launcher",
    )
    agent = agents()
    steps = [
        {"kind": "sql", "code": "SELECT 1"},
        {"kind": "shell", "code": "echo from the agent"},
        {"kind": "sql", "code": "SELECT 2"},
    ]
    run_id = start(user, make_job(user, steps))
    assert wait_run(admin, run_id, ("succeeded", "failed")) == "succeeded"
    with admin.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(
            "SELECT sr.kind, sr.state, sr.output, a.kind AS executor, a.id AS agent_id,"
            " sr.started_at, sr.finished_at"
            " FROM pgautomator.step_run sr JOIN pgautomator.agent a ON a.id = sr.agent_id"
            " WHERE sr.run_id = %s ORDER BY sr.id",
            (run_id,),
        ).fetchall()
    assert [(r["kind"], r["state"], r["executor"]) for r in rows] == [
        ("sql", "succeeded", "database"),
        ("shell", "succeeded", "remote"),
        ("sql", "succeeded", "database"),
    ]
    assert rows[1]["agent_id"] == agent.agent_id
    assert rows[1]["output"] == "from the agent\n"
    # Each step started only after the one before it had finished.
    assert rows[0]["finished_at"] <= rows[1]["started_at"]
    assert rows[1]["finished_at"] <= rows[2]["started_at"]


def test_output_is_streamed_while_the_step_runs_and_bounded(
    agents: Callable[..., AgentProcess],
    user: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    agents()
    code = (
        "i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done; echo progress;"
        f" i=0; while [ ! -e {go} ] && [ $i -lt 1200 ]; do i=$((i+1)); sleep 0.05; done; echo the end"
    )
    run_id = start(user, make_job(user, [{"code": code}]))

    def streamed() -> bool:
        (step,) = step_runs(admin, run_id)
        return step["state"] == "running" and (step["output"] or "").endswith("progress\n")

    wait_for(streamed, what="the output to reach the log while the step runs")
    go.touch()
    assert wait_run(admin, run_id, ("succeeded", "failed")) == "succeeded"
    (step,) = step_runs(admin, run_id)
    assert step["output"].endswith("line 19999\nprogress\nthe end\n")
    assert "line 0\n" not in step["output"]  # the head was dropped: bounded, tail kept
    # A first line says how much was cut; the rest is within the limit.
    mark, kept = step["output"].split("\n", 1)
    assert mark.startswith("[") and ("cut" in mark or "dropped" in mark)
    limit = admin.execute("SELECT pgautomator._setting_int('output_limit')").fetchone()
    assert limit is not None and len(kept) <= limit[0]


def test_any_output_character_with_another_client_encoding(
    agents: Callable[..., AgentProcess], user: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    # With PGCLIENTENCODING=LATIN1, "✓" (or invalid UTF-8, read as U+FFFD)
    # could not be encoded: the streamer died, then the report killed the
    # agent, and the step run stayed running.
    agent = agents(environ={"PGCLIENTENCODING": "LATIN1"})
    code = r"printf 'ok \342\234\223\n'; printf '\377\376 binary\n'"
    run_id = start(user, make_job(user, [{"code": code}]))
    assert wait_run(admin, run_id, ("succeeded", "failed")) == "succeeded"
    assert step_runs(admin, run_id)[0]["output"] == "ok \u2713\n\ufffd\ufffd binary\n"
    assert agent.proc.poll() is None


def test_failing_shell_step_fails_the_run(
    agents: Callable[..., AgentProcess], user: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    agents()
    run_id = start(user, make_job(user, [{"code": "echo oops; exit 4"}]))
    assert wait_run(admin, run_id, ("succeeded", "failed")) == "failed"
    (step,) = step_runs(admin, run_id)
    assert (step["state"], step["exit_code"], step["output"]) == ("failed", 4, "oops\n")
    assert "exit code 4" in step["error"]


def test_a_failed_shell_step_is_retried_after_its_delay(
    agents: Callable[..., AgentProcess],
    user: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    # No NOTIFY marks the end of a retry delay: the agent's poll finds it.
    agents(poll_time="0.5")
    code = f"if [ -e {tmp_path}/marker ]; then echo second try; exit 0; fi; touch {tmp_path}/marker; exit 1"
    run_id = start(user, make_job(user, [{"code": code, "retries": 1, "retry_interval": "1 second"}]))
    assert wait_run(admin, run_id, ("succeeded", "failed")) == "succeeded"
    first, second = step_runs(admin, run_id)
    assert (first["attempt"], first["state"], first["exit_code"]) == (1, "failed", 1)
    assert (second["attempt"], second["state"], second["output"]) == (2, "succeeded", "second try\n")


def test_remote_sql_step(
    agents: Callable[..., AgentProcess], user: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    agents()
    code = "DO $$ BEGIN RAISE NOTICE 'remote hello'; END $$; SELECT 40 + 2 AS answer"
    run_id = start(user, make_job(user, [{"kind": "remote_sql", "connection": conninfo(), "code": code}]))
    assert wait_run(admin, run_id, ("succeeded", "failed")) == "succeeded"
    row = admin.execute(
        "SELECT output, messages, rows_affected FROM pgautomator.step_run WHERE run_id = %s", (run_id,)
    ).fetchone()
    assert row is not None
    assert row[0] == "DO\nanswer\n42\nSELECT 1\n"
    assert "NOTICE: remote hello" in row[1]
    assert row[2] == 1


def _password_trap() -> tuple[int, list[bytes], threading.Thread]:
    """A server that speaks PostgreSQL's protocol up to a cleartext password
    request, and keeps the password a client sends (if any)."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    passwords: list[bytes] = []

    def read(conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def serve() -> None:
        server.settimeout(60)
        with server, server.accept()[0] as conn:
            conn.settimeout(60)
            while True:  # SSL and GSS encryption requests first: refused
                (length,) = struct.unpack("!I", read(conn, 4))
                body = read(conn, length - 4)
                if struct.unpack("!I", body[:4])[0] not in (80877103, 80877104):
                    break
                conn.sendall(b"N")
            conn.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
            try:
                kind = read(conn, 1)
                (length,) = struct.unpack("!I", read(conn, 4))
                if kind == b"p":
                    passwords.append(read(conn, length - 4).rstrip(b"\0"))
                conn.sendall(b"E" + struct.pack("!I", 4 + 37) + b"SFATAL\0C28P01\0Mpassword refused here\0\0")
            except ConnectionError:
                pass  # the client gave up: it had no password to send

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, passwords, thread


def test_a_remote_sql_step_never_gets_the_agents_own_password(
    agents: Callable[..., AgentProcess], user: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    # libpq gives PGPASSWORD to every connection of a process that has it:
    # a step's connection string naming another host sent the agent's own
    # password there, in clear text when that server asked for it so.
    agents(environ={"PGPASSWORD": "the-agents-own-secret"})  # (the test cluster trusts the agent)
    port, passwords, trap = _password_trap()
    connection = f"host=127.0.0.1 port={port} dbname=any user=anyone sslmode=disable gssencmode=disable"
    run_id = start(
        user, make_job(user, [{"kind": "remote_sql", "connection": connection, "code": "SELECT 1"}])
    )
    assert wait_run(admin, run_id, ("succeeded", "failed")) == "failed"
    trap.join(timeout=60)
    assert passwords == []
    (step,) = step_runs(admin, run_id)
    assert "no password supplied" in step["error"], step["error"]


def test_dbapi_step(
    agents: Callable[..., AgentProcess],
    user: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    agents(dbapi_drivers="sqlite3")
    db = tmp_path / "other.db"
    steps = [
        {"kind": "remote_sql", "connection": f"dbapi:sqlite3:{db}", "code": code}
        for code in (
            "CREATE TABLE t (n integer)",
            "INSERT INTO t VALUES (1), (2), (3)",
            "SELECT sum(n) AS total FROM t",
        )
    ]
    run_id = start(user, make_job(user, steps))
    assert wait_run(admin, run_id, ("succeeded", "failed")) == "succeeded"
    rows = step_runs(admin, run_id)
    assert [r["state"] for r in rows] == ["succeeded"] * 3
    assert rows[2]["output"] == "total\n6\n"


def test_two_agents_never_run_the_same_step_run(
    agents: Callable[..., AgentProcess],
    user: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    # Each agent runs at most two steps at once, and the first four steps
    # wait for each other: they can only finish if both agents run them.
    runs = 12
    code = (
        f"touch {tmp_path}/started.$PGAUTOMATOR_STEP_RUN_ID; i=0;"
        f" while [ $(ls {tmp_path} | grep -c '^started') -lt 4 ]; do"
        "   i=$((i+1)); [ $i -gt 1200 ] && exit 9; sleep 0.05; done;"
        f" echo $PGAUTOMATOR_STEP_RUN_ID >> {tmp_path}/ran"
    )
    first, second = agents(max_parallel="2"), agents(max_parallel="2")
    job = make_job(user, [{"code": code}], overlap="parallel", max_parallel=runs)
    run_ids = [start(user, job) for _ in range(runs)]
    for run_id in run_ids:
        assert wait_run(admin, run_id, ("succeeded", "failed")) == "succeeded"
    ran = (tmp_path / "ran").read_text().split()
    rows = [step_runs(admin, run_id) for run_id in run_ids]
    assert all(len(steps) == 1 and steps[0]["attempt"] == 1 for steps in rows)
    assert sorted(ran) == sorted(str(steps[0]["id"]) for steps in rows)  # each exactly once
    used = {steps[0]["agent_id"] for steps in rows}
    assert used == {first.agent_id, second.agent_id}


def test_affinity_is_respected(
    agents: Callable[..., AgentProcess], user: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    other_name = f"t-agent-{uuid.uuid4().hex[:8]}"
    agents()
    pinned = start(user, make_job(user, [{"code": "echo pinned"}], agent=other_name))
    # A later job that any agent may run: once it is done, the first agent
    # has claimed after the pinned run was ready, and passed it over.
    free = start(user, make_job(user, [{"code": "echo free"}]))
    assert wait_run(admin, free, ("succeeded", "failed")) == "succeeded"
    assert [s["state"] for s in step_runs(admin, pinned)] == ["queued"]
    other = agents(name=other_name)
    assert wait_run(admin, pinned, ("succeeded", "failed")) == "succeeded"
    assert step_runs(admin, pinned)[0]["agent_id"] == other.agent_id


def test_capabilities_are_respected(
    agents: Callable[..., AgentProcess], user: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    agents(capabilities="remote_sql")
    shell_run = start(user, make_job(user, [{"code": "echo shell"}]))
    sql_run = start(
        user, make_job(user, [{"kind": "remote_sql", "connection": conninfo(), "code": "SELECT 1"}])
    )
    assert wait_run(admin, sql_run, ("succeeded", "failed")) == "succeeded"
    assert [s["state"] for s in step_runs(admin, shell_run)] == ["queued"]
    agents(capabilities="shell")
    assert wait_run(admin, shell_run, ("succeeded", "failed")) == "succeeded"


SLEEPER = "sleep 300 & echo $! > {pids}; echo started; wait"


def test_stop_run_kills_the_sleep(
    agents: Callable[..., AgentProcess],
    user: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    agents()
    run_id = start(user, make_job(user, [{"code": SLEEPER.format(pids=pids)}, {"code": "echo never"}]))
    try:
        wait_for(lambda: read_pids(pids), what="the sleep to start")
        assert user.execute("SELECT pgautomator.stop_run(%s)", (run_id,)).fetchone() == (True,)
        assert wait_run(admin, run_id, ("stopped", "failed", "succeeded")) == "stopped"
        wait_for(lambda: not pids_alive(read_pids(pids)), what="the sleep to be killed")
        steps = step_runs(admin, run_id)
        assert [s["state"] for s in steps] == ["stopped"]  # the second step never started
        assert steps[0]["error"] == f"stopped by {user.info.user}: killed on the scheduler's request"
        assert "started" in steps[0]["output"]
    finally:
        cleanup_pids(read_pids(pids))


def test_timeout_kills_the_sleep(
    agents: Callable[..., AgentProcess],
    user: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    agents()
    job = make_job(user, [{"code": SLEEPER.format(pids=pids), "timeout": "1 second"}])
    run_id = start(user, job)
    try:
        assert wait_run(admin, run_id, ("stopped", "failed", "succeeded")) == "failed"
        wait_for(lambda: not pids_alive(read_pids(pids)), what="the sleep to be killed")
        (step,) = step_runs(admin, run_id)
        assert step["state"] == "failed"
        assert step["output"] == "started\n"
        assert step["error"].startswith("step timeout of 00:00:01 exceeded: ")
    finally:
        cleanup_pids(read_pids(pids))


def test_sigkill_crashes_the_run_and_it_is_retried_on_the_other_agent(
    agents: Callable[..., AgentProcess],
    user: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    # The first attempt hangs; the retry finds the marker and succeeds.
    code = (
        f"if [ -e {tmp_path}/marker ]; then echo retried; exit 0; fi; touch {tmp_path}/marker; "
        + SLEEPER.format(pids=pids)
    )
    doomed = agents()
    admin.execute(
        "UPDATE pgautomator.agent SET heartbeat_timeout = '1 second' WHERE name = %s", (doomed.name,)
    )
    run_id = start(user, make_job(user, [{"code": code}], retry_on_crash=True))
    try:
        wait_for(lambda: read_pids(pids), what="the first attempt to start")
        doomed.kill()
        survivor = agents()
        assert wait_run(admin, run_id, ("crashed", "failed", "succeeded"), tick=True) == "crashed"
        retry = wait_for(
            lambda: admin.execute(
                "SELECT id FROM pgautomator.run WHERE retry_of = %s AND trigger = 'crash_retry'", (run_id,)
            ).fetchone(),
            what="the retry run",
        )[0]
        assert wait_run(admin, retry, ("crashed", "failed", "succeeded"), tick=True) == "succeeded"
        (step,) = step_runs(admin, retry)
        assert step["agent_id"] == survivor.agent_id
        assert step["output"] == "retried\n"
    finally:
        cleanup_pids(read_pids(pids))


def test_restart_under_the_same_name_crashes_what_the_old_process_held(
    agents: Callable[..., AgentProcess],
    user: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    code = (
        f"if [ -e {tmp_path}/marker ]; then echo again; exit 0; fi; touch {tmp_path}/marker; "
        + SLEEPER.format(pids=pids)
    )
    old = agents()
    run_id = start(user, make_job(user, [{"code": code}], retry_on_crash=True))
    try:
        wait_for(lambda: read_pids(pids), what="the step to start")
        old.kill()
        new = agents(name=old.name)
        assert new.agent_id == old.agent_id
        # At once, not after the heartbeat timeout: the error says why.
        assert wait_run(admin, run_id, ("crashed", "failed", "succeeded")) == "crashed"
        (step,) = step_runs(admin, run_id)
        assert f"re-registered (pid {new.proc.pid})" in step["error"]
        retry = wait_for(
            lambda: admin.execute("SELECT id FROM pgautomator.run WHERE retry_of = %s", (run_id,)).fetchone(),
            what="the retry run",
        )[0]
        assert wait_run(admin, retry, ("crashed", "failed", "succeeded")) == "succeeded"
        assert step_runs(admin, retry)[0]["output"] == "again\n"
    finally:
        cleanup_pids(read_pids(pids))


def test_sigterm_lets_the_running_step_finish(
    agents: Callable[..., AgentProcess],
    user: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    agent = agents(grace_period="120")
    code = f"echo waiting; i=0; while [ ! -e {go} ] && [ $i -lt 1200 ]; do i=$((i+1)); sleep 0.05; done; echo done"
    run_id = start(user, make_job(user, [{"code": code}]))
    wait_for(
        lambda: [s for s in step_runs(admin, run_id) if s["state"] == "running"], what="the step to start"
    )
    agent.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "shutting down" in agent.log(), what="the agent to begin its shutdown")
    assert agent.proc.poll() is None  # still running: the step has not finished
    go.touch()
    assert agent.proc.wait(60) == 0
    assert run_state(admin, run_id) == "succeeded"
    assert step_runs(admin, run_id)[0]["output"] == "waiting\ndone\n"
    row = admin.execute(
        "SELECT last_heartbeat FROM pgautomator.agent WHERE name = %s", (agent.name,)
    ).fetchone()
    assert row == (None,)  # deregistered: shown as down at once


def test_sigterm_hands_back_what_outlives_the_grace_period(
    agents: Callable[..., AgentProcess],
    user: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    agent = agents(grace_period="0.5")
    run_id = start(user, make_job(user, [{"code": SLEEPER.format(pids=pids)}], retry_on_crash=True))
    try:
        wait_for(lambda: read_pids(pids), what="the sleep to start")
        assert agent.terminate() == 0
        wait_for(lambda: not pids_alive(read_pids(pids)), what="the sleep to be killed")
        # Killed by the shutdown, not failed: it ends crashed and, as the job
        # asks, runs again (on whichever agent comes next).
        assert run_state(admin, run_id) == "crashed"
        (step,) = step_runs(admin, run_id)
        assert step["state"] == "crashed"
        assert "shut down while running this step" in step["error"]
        assert "started" in step["output"]  # what was streamed stays
        retry = admin.execute(
            "SELECT state FROM pgautomator.run WHERE retry_of = %s AND trigger = 'crash_retry'", (run_id,)
        ).fetchone()
        assert retry is not None
        assert "handed back" in agent.log()
    finally:
        cleanup_pids(read_pids(pids))


def test_bad_database_settings_stop_the_agent_with_status_2(
    agent_role: str, make_role: Callable[..., str], tmp_path: Path, admin: psycopg.Connection[Any]
) -> None:
    missing_db = AgentProcess("t-bad-db", agent_role, tmp_path, db_name="no_such_database")
    assert missing_db.proc.wait(60) == 2
    assert "db_name: cannot connect with db_name = 'no_such_database'" in missing_db.log()
    missing_db.close()

    outsider = make_role()  # not in pgautomator_agent
    refused = AgentProcess("t-bad-role", outsider, tmp_path)
    assert refused.proc.wait(60) == 2
    assert f"GRANT pgautomator_agent TO {outsider}" in refused.log()
    refused.close()

    reserved = AgentProcess("database", agent_role, tmp_path)
    assert reserved.proc.wait(60) == 2
    assert 'agent name "database" is reserved' in reserved.log()
    reserved.close()
    assert admin.execute("SELECT count(*) FROM pgautomator.agent WHERE name LIKE 't-bad-%'").fetchone() == (
        0,
    )


def test_too_many_connections_at_start_is_retried(
    agent_role: str, tmp_path: Path, admin: psycopg.Connection[Any]
) -> None:
    # 'role "' matched "too many connections for role": exit 2, which the
    # systemd unit never restarts (a quick restart while the old process's
    # connections still count against the role's limit).
    admin.execute(f"ALTER ROLE {agent_role} CONNECTION LIMIT 0".encode())
    agent = AgentProcess(f"t-agent-{uuid.uuid4().hex[:8]}", agent_role, tmp_path)
    try:
        try:
            wait_for(
                lambda: "cannot connect to the database" in agent.log() or agent.proc.poll() is not None,
                what="the first attempt to connect",
            )
            assert agent.proc.poll() is None, agent.log()
        finally:
            admin.execute(f"ALTER ROLE {agent_role} CONNECTION LIMIT -1".encode())
        agent.wait_registered(admin)
        assert agent.terminate() == 0
    finally:
        agent.close()
        admin.execute("DELETE FROM pgautomator.agent WHERE name = %s", (agent.name,))


def _terminate_connections(admin: psycopg.Connection[Any], agent: AgentProcess) -> int:
    row = admin.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
        (f"pgautomator agent {agent.name}",),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _start_waiting_step(user: psycopg.Connection[Any], admin: psycopg.Connection[Any], go: Path) -> int:
    """Starts a job whose one shell step waits for the file `go` and prints
    "finished"; returns its run once the step runs."""
    code = f"i=0; while [ ! -e {go} ] && [ $i -lt 1200 ]; do i=$((i+1)); sleep 0.05; done; echo finished"
    run_id = start(user, make_job(user, [{"code": code}]))
    wait_for(
        lambda: [s for s in step_runs(admin, run_id) if s["state"] == "running"], what="the step to start"
    )
    return run_id


@contextlib.contextmanager
def _shut_out(admin: psycopg.Connection[Any], agent_role: str, agent: AgentProcess) -> Iterator[None]:
    """The agent's connections cut, and its role unable to connect again
    until the block ends."""
    admin.execute(f"ALTER ROLE {agent_role} CONNECTION LIMIT 0".encode())
    try:
        assert _terminate_connections(admin, agent) == 2
        yield
    finally:
        admin.execute(f"ALTER ROLE {agent_role} CONNECTION LIMIT -1".encode())


def test_lost_connection_keeps_the_result_of_a_step_that_finished_meanwhile(
    agents: Callable[..., AgentProcess],
    user: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    agent = agents()
    run_id = _start_waiting_step(user, admin, go)
    assert _terminate_connections(admin, agent) == 2  # the API connection and the LISTEN one
    wait_for(lambda: "lost the database connection" in agent.log(), what="the agent to notice")
    go.touch()  # the step ends while the agent may still be disconnected
    assert wait_run(admin, run_id, ("succeeded", "failed")) == "succeeded"
    assert step_runs(admin, run_id)[0]["output"] == "finished\n"
    assert "reconnected to the database" in agent.log()
    assert agent.proc.poll() is None


def test_a_report_that_fails_for_a_passing_reason_is_made_again(
    agents: Callable[..., AgentProcess],
    agent_role: str,
    user: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    # A deadlock or a lock timeout fails a report without breaking the
    # connection; the agent used to drop such a report, and the step run
    # stayed running for good.
    admin.execute(f"ALTER ROLE {agent_role} SET lock_timeout = '200ms'".encode())
    go = tmp_path / "go"
    agent = agents()
    run_id = _start_waiting_step(user, admin, go)
    with psycopg.connect(conninfo()) as holder:
        # The report locks the run first: it waits 200 ms and fails with 55P03.
        holder.execute("SELECT FROM pgautomator.run WHERE id = %s FOR UPDATE", (run_id,))
        go.touch()
        wait_for(
            lambda: (
                "step run" in agent.log()
                and ("report failed" in agent.log() or "report refused" in agent.log())
            ),
            what="a report to fail",
        )
        assert run_state(admin, run_id) == "running"
    assert wait_run(admin, run_id, ("succeeded", "failed")) == "succeeded"
    assert step_runs(admin, run_id)[0]["output"] == "finished\n"


def test_lost_connection_without_retry_on_crash_exits_1(
    agents: Callable[..., AgentProcess], admin: psycopg.Connection[Any]
) -> None:
    agent = agents(retry_on_crash="no")
    assert _terminate_connections(admin, agent) == 2
    assert agent.proc.wait(60) == 1
    assert "retry_on_crash is off: exiting" in agent.log()


def _freeze(agent: AgentProcess) -> None:
    """Stops the agent's process (SIGSTOP) and waits until it is stopped."""
    agent.proc.send_signal(signal.SIGSTOP)
    stat = Path(f"/proc/{agent.proc.pid}/stat")
    wait_for(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "T", what="the agent to stop")


def _claim_behind_its_back(admin: psycopg.Connection[Any], agent: AgentProcess) -> int:
    """Claims one step run for the agent (stopped meanwhile): as if the
    claim committed and its answer was lost with the connection."""
    rows = admin.execute(
        "SELECT step_run_id FROM pgautomator.agent_claim_v1(%s, 1, pid => %s)",
        (agent.agent_id, agent.proc.pid),
    ).fetchall()
    assert len(rows) == 1
    return int(rows[0][0])


def test_a_claim_whose_answer_was_lost_is_handed_back_or_ends_failed(
    agents: Callable[..., AgentProcess], user: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    # The step run stayed running on an agent that knew nothing of it, for
    # good: its heartbeats went on, and even stop_run could not end it.
    agent = agents()
    _freeze(agent)
    try:
        run_id = start(user, make_job(user, [{"code": "echo ran"}], agent=agent.name))
        step_run_id = _claim_behind_its_back(admin, agent)
    finally:
        agent.proc.send_signal(signal.SIGCONT)
    # Handed back to the queue (it never ran), claimed again, run.
    assert wait_run(admin, run_id, ("succeeded", "failed")) == "succeeded"
    (step,) = step_runs(admin, run_id)
    assert (step["id"], step["output"], step["attempt"]) == (step_run_id, "ran\n", 1)
    assert f"step run {step_run_id}: its claim was lost: handed back to the queue" in agent.log()

    # A stop requested meanwhile: not handed back, it ends (stopped) with
    # an error that says what happened.
    _freeze(agent)
    try:
        run_id = start(user, make_job(user, [{"code": "echo never"}], agent=agent.name))
        _claim_behind_its_back(admin, agent)
        assert user.execute("SELECT pgautomator.stop_run(%s)", (run_id,)).fetchone() == (True,)
    finally:
        agent.proc.send_signal(signal.SIGCONT)
    assert wait_run(admin, run_id, ("stopped", "failed", "succeeded")) == "stopped"
    (step,) = step_runs(admin, run_id)
    assert step["error"] == (
        f"stopped by {user.info.user}: agent {agent.name} was not running this step run: its claim was lost"
    )


def test_a_step_run_crashed_while_its_agent_was_cut_off_is_killed_there(
    agents: Callable[..., AgentProcess],
    user: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    # An outage longer than the heartbeat timeout: the database crashed the
    # step run (and may have retried it elsewhere), but the agent went on
    # running it once back, for as long as it printed nothing.
    pids = tmp_path / "pids"
    agent = agents()
    admin.execute("SELECT pgautomator.alter_agent(%s, heartbeat_timeout => '1 second')", (agent.name,))
    run_id = start(user, make_job(user, [{"code": SLEEPER.format(pids=pids)}]))
    try:
        # (Output streamed later would be refused, and that stopped it.)
        wait_for(lambda: step_runs(admin, run_id)[0]["output"] == "started\n", what="the output")
        _freeze(agent)  # cut off: no heartbeat
        try:
            assert wait_run(admin, run_id, ("crashed", "failed", "succeeded"), tick=True) == "crashed"
        finally:
            agent.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: not pids_alive(read_pids(pids)), what="the sleep to be killed")
        wait_for(lambda: "not reported" in agent.log(), what="the agent to drop the step run")
        (step,) = step_runs(admin, run_id)
        assert step["state"] == "crashed"
        assert "stopped sending heartbeats" in step["error"]
        assert agent.proc.poll() is None
    finally:
        cleanup_pids(read_pids(pids))


def test_reconnecting_is_retried_at_least_every_5_seconds(
    agents: Callable[..., AgentProcess], agent_role: str, admin: psycopg.Connection[Any]
) -> None:
    # Backing off up to 30 s, an agent back after an outage of 16-25 s
    # reconnected past the default heartbeat timeout (30 s): its step runs
    # were crashed meanwhile.
    agent = agents()
    with _shut_out(admin, agent_role, agent):
        wait_for(lambda: "retrying in 5 s" in agent.log(), timeout=60, what="the backoff to reach 5 s")
    wait_for(lambda: "reconnected to the database" in agent.log(), what="the agent to reconnect")
    assert "retrying in 8 s" not in agent.log()


def test_sigterm_while_disconnected_ends_the_wait_at_once(
    agents: Callable[..., AgentProcess], agent_role: str, admin: psycopg.Connection[Any]
) -> None:
    # An idle agent waited out its backoff (up to 30 s) after a SIGTERM,
    # then tried to connect once more.
    agent = agents()
    with _shut_out(admin, agent_role, agent):
        wait_for(lambda: "retrying in 4 s" in agent.log(), what="a backoff of 4 s")
        agent.proc.send_signal(signal.SIGTERM)
    # (connecting would now succeed: the agent must not try)
    assert agent.proc.wait(60) == 0
    assert "reconnected to the database" not in agent.log()

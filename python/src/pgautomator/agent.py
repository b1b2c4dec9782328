"""The agent's main loop: register, heartbeat, claim, run, report.

One thread (the caller of Agent.run) talks to the database: it heartbeats,
claims as many step runs as it has free slots, and delivers results. Each
claimed step runs in a thread of its own and streams its output through the
same (locked) connection. A second connection LISTENs on pgautomator_wake,
so new work and stop requests arrive at once; poll_time is only a fallback.

A lost connection is retried with backoff; results of steps that finished
meanwhile wait in memory and are delivered after the reconnect (the agent
does not re-register then, which would crash its own running step runs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import psycopg
from psycopg import errors
from psycopg.conninfo import make_conninfo

from pgautomator import __version__
from pgautomator.config import AgentConfig, conninfo_params
from pgautomator.executors.dbapi import is_dbapi, run_dbapi
from pgautomator.executors.remote_sql import run_remote_sql
from pgautomator.executors.shell import run_shell
from pgautomator.libpq import with_tcp_defaults
from pgautomator.protocol import WAKE_CHANNEL, AgentApi
from pgautomator.steps import ClaimedStep, StepContext, StepResult, StopSignal

log = logging.getLogger("pgautomator.agent")

KILLED_BY_SCHEDULER = "killed on the scheduler's request"
SHUTDOWN = "stopped: the agent shut down before the step finished"
# Well below the default heartbeat_timeout (30 s): a reconnect after a short
# outage comes before the database crashes the agent's step runs.
MAX_BACKOFF = 5.0
# Reports failed for a passing reason are made again at most this many times
# (about a heartbeat interval apart), then handled as refused.
MAX_TRANSIENT_TRIES = 30
# How long killed steps get to end, beyond kill_timeout, before the agent
# exits without them.
KILL_JOIN_GRACE = 15.0


class StartupError(Exception):
    """The agent cannot start: exit status 2 for settings, 1 otherwise."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class ConnectionLost(Exception):
    """The database connection broke; the loop reconnects."""


@dataclass
class _Running:
    step: ClaimedStep
    stop: StopSignal
    thread: threading.Thread


class Agent:
    def __init__(
        self, config: AgentConfig, environ: Mapping[str, str] | None = None, password: str | None = None
    ) -> None:
        self.config = config
        self.environ = dict(os.environ if environ is None else environ)
        # The agent's own password (PGPASSWORD, taken out of the process's
        # environment by the CLI): given to its own connections only.
        self._password = password
        self.agent_id: int | None = None
        self._api: AgentApi | None = None
        self._listen: psycopg.Connection[Any] | None = None
        self._running: dict[int, _Running] = {}
        self._results: list[tuple[int, StepResult]] = []
        self._unreported: set[int] = set()  # reports given up
        self._lost: set[int] = set()  # run here, no longer held by the database
        self._can_reconcile = True  # False on an extension without agent_running_v1
        self._transient_tries: dict[int, int] = {}  # reports failed for a passing reason
        self._lock = threading.Lock()
        # A socket pair, not a pipe: select() takes only sockets on Windows.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._shutdown_at: float | None = None  # when a shutdown was asked for
        self._kill_at: float | None = None  # when remaining steps get killed
        self._exit_status = 0

    @property
    def shutting_down(self) -> bool:
        return self._shutdown_at is not None

    # --- called from signal handlers and other threads ---

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"x")

    def shutdown(self) -> None:
        """Stop claiming; finish running steps within grace_period, then kill
        them. A second call kills at once."""
        now = time.monotonic()
        if self._shutdown_at is None:
            self._shutdown_at = now
            self._kill_at = now + self.config.grace_period
        else:
            self._kill_at = now
        self.wake()

    # --- the loop ---

    def run(self) -> int:
        """Runs until shutdown(); returns the exit status."""
        try:
            return self._run()
        except BaseException:
            # Whatever ends the loop unexpectedly, the steps' processes (in
            # sessions of their own) must not outlive the agent.
            self._kill_all(SHUTDOWN)
            raise

    def _run(self) -> int:
        if not self._start():
            log.info("agent %s stopped before it could connect", self.config.name)
            return 0
        backoff = 1.0
        notified = True
        next_heartbeat = 0.0
        while True:
            try:
                if self._api is None:
                    self._reconnect()
                    backoff = 1.0
                    notified = True
                self._deliver_results()
                now = time.monotonic()
                if notified or now >= next_heartbeat:
                    self._heartbeat()
                    next_heartbeat = now + self.config.heartbeat_interval
                self._handle_shutdown()
                if self._finished():
                    break
                if self._shutdown_at is None:
                    self._claim()
                timeout = max(0.0, min(next_heartbeat - time.monotonic(), self.config.poll_time))
                if self._kill_at is not None and time.monotonic() < self._kill_at:
                    timeout = min(timeout, self._kill_at - time.monotonic())
                # (After the kill, each step thread wakes the loop when it ends.)
                notified = self._wait(timeout)
            except ConnectionLost as exc:
                self._drop_connections()
                if not self.config.retry_on_crash:
                    log.error("lost the database connection (%s); retry_on_crash is off: exiting", exc)
                    self._kill_all(SHUTDOWN)
                    return 1
                if self._finished():
                    break
                log.warning("lost the database connection (%s); retrying in %.0f s", exc, backoff)
                self._reap()
                with self._lock:
                    idle = not self._running and not self._results
                # Nothing to finish or deliver: a shutdown ends the wait.
                self._sleep(backoff, until_shutdown=idle)
                if idle and self._shutdown_at is not None:
                    break
                backoff = min(backoff * 2, MAX_BACKOFF)
                if self._kill_at is not None and time.monotonic() >= self._kill_at:
                    self._kill_all(SHUTDOWN)
        self._deregister()
        self._drop_connections()
        self._wake_r.close()
        self._wake_w.close()
        log.info("agent %s stopped", self.config.name)
        return self._exit_status

    def _finished(self) -> bool:
        """A shutdown is done when nothing runs and every result is delivered
        (or the connection is gone and the steps have been killed)."""
        if self._shutdown_at is None:
            return False
        self._reap()
        with self._lock:
            if self._running:
                return False
            return not self._results or (
                self._api is None and self._kill_at is not None and time.monotonic() >= self._kill_at
            )

    # --- connections ---

    def connection_params(self) -> dict[str, str]:
        """libpq parameters of the agent's own connections."""
        params = conninfo_params(self.config)
        if self._password is not None:
            params["password"] = self._password
        params["application_name"] = f"pgautomator agent {self.config.name}"[:63]
        # Output and errors hold any character: with another client encoding
        # (PGCLIENTENCODING, a service file) psycopg fails to encode them.
        params["client_encoding"] = "UTF8"
        params.setdefault("connect_timeout", "10")
        return with_tcp_defaults(params)

    def _connect(self) -> tuple[AgentApi, psycopg.Connection[Any]]:
        conninfo = make_conninfo(**self.connection_params())
        try:
            control = psycopg.connect(conninfo, autocommit=True)
        except psycopg.OperationalError as exc:
            raise ConnectionLost(_first_line(exc)) from exc
        try:
            listen = psycopg.connect(conninfo, autocommit=True)
            listen.execute(f"LISTEN {WAKE_CHANNEL}".encode())
        except psycopg.OperationalError as exc:
            control.close()
            raise ConnectionLost(_first_line(exc)) from exc
        return AgentApi(control), listen

    def _start(self) -> bool:
        """Connects and registers; False when a shutdown came first. Settings
        that cannot work raise StartupError."""
        backoff = 1.0
        while True:
            try:
                api, listen = self._connect()
                break
            except ConnectionLost as exc:
                _raise_if_settings(str(exc), self.config)
                if not self.config.retry_on_crash:
                    raise StartupError(f"cannot connect to the database: {exc}", status=1) from None
                log.warning("cannot connect to the database (%s); retrying in %.0f s", exc, backoff)
                self._sleep(backoff, until_shutdown=True)
                if self._shutdown_at is not None:
                    return False
                backoff = min(backoff * 2, MAX_BACKOFF)
        self._api, self._listen = api, listen
        self._register()
        return True

    def _register(self) -> None:
        api = self._api
        assert api is not None
        user, dbname = api.conn.info.user, api.conn.info.dbname
        try:
            self.agent_id = api.register(
                name=self.config.name,
                host=socket.gethostname(),
                capabilities=list(self.config.capabilities),
                max_parallel=self.config.max_parallel,
                version=__version__,
                pid=os.getpid(),
            )
        except (errors.UndefinedFunction, errors.InvalidSchemaName) as exc:
            self._drop_connections()
            raise StartupError(
                f"database {dbname!r} has no pgautomator agent API "
                f"({_first_line(exc)}): install the pgautomator extension there (CREATE EXTENSION "
                "pgautomator) or check db_name"
            ) from None
        except errors.InsufficientPrivilege as exc:
            self._drop_connections()
            raise StartupError(
                f"db_user: role {user!r} may not act as an agent ({_first_line(exc)}); "
                f"grant it with: GRANT pgautomator_agent TO {user}"
            ) from None
        except psycopg.OperationalError as exc:
            if self.agent_id is not None:  # registering again while running
                raise ConnectionLost(_first_line(exc)) from exc
            self._drop_connections()
            raise StartupError(f"lost the database connection while registering: {exc}") from None
        except psycopg.Error as exc:
            self._drop_connections()
            raise StartupError(
                f"the database refused to register agent {self.config.name!r}: {exc}"
            ) from None
        log.info(
            "agent %s registered as id %s (capabilities %s, max_parallel %s)",
            self.config.name,
            self.agent_id,
            ",".join(self.config.capabilities),
            self.config.max_parallel,
        )

    def _reconnect(self) -> None:
        api, listen = self._connect()
        self._api, self._listen = api, listen
        log.info("reconnected to the database")

    def _drop_connections(self) -> None:
        api, listen = self._api, self._listen
        self._api = self._listen = None
        for conn in (api.conn if api else None, listen):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _call(self, what: Callable[[AgentApi], Any]) -> Any:
        """Runs one API call; a broken connection becomes ConnectionLost."""
        api = self._api
        if api is None:
            raise ConnectionLost("not connected")
        try:
            return what(api)
        except psycopg.OperationalError as exc:
            if api.conn.closed or api.conn.broken:
                raise ConnectionLost(_first_line(exc)) from exc
            raise

    # --- protocol steps ---

    def _heartbeat(self) -> None:
        assert self.agent_id is not None
        agent_id = self.agent_id
        try:
            kill = self._call(lambda api: api.heartbeat(agent_id))
        except ConnectionLost:
            raise
        except errors.UndefinedObject:
            # An admin dropped the agent while it ran (or the database was
            # restored): register again under the same name.
            log.warning("agent id %s is unknown to the database: registering again", agent_id)
            self._register()
            return
        except psycopg.Error as exc:
            log.error("heartbeat refused: %s", _first_line(exc))
            return
        for step_run_id in kill:
            with self._lock:
                running = self._running.get(step_run_id)
            if running is not None:
                log.info("step run %s: killing it on the scheduler's request", step_run_id)
                running.stop.set(KILLED_BY_SCHEDULER)
        self._reconcile(agent_id)

    def _reconcile(self, agent_id: int) -> None:
        """Makes what the database holds as running on this agent and what
        the agent runs agree (called after each heartbeat, so also right
        after a reconnect)."""
        if not self._can_reconcile:
            return
        try:
            held = set(self._call(lambda api: api.running(agent_id)))
        except ConnectionLost:
            raise
        except errors.UndefinedFunction:
            log.info("the extension has no agent_running_v1: what the agent runs is not checked")
            self._can_reconcile = False
            return
        except psycopg.Error as exc:
            log.warning("could not list the step runs held for this agent: %s", _first_line(exc))
            return
        self._reap()
        # (Claims are made by this thread too: none is under way.)
        with self._lock:
            running = dict(self._running)
            finished = {step_run_id for step_run_id, _ in self._results} | self._unreported
            self._unreported &= held
            lost = set(self._lost)
        for step_run_id, item in running.items():
            if step_run_id not in held and step_run_id not in finished and step_run_id not in lost:
                # Crashed after missed heartbeats (a long outage, the agent
                # stopped): a crash retry may run it elsewhere already.
                log.warning(
                    "step run %s: the database no longer holds it for this agent: killing it, unreported",
                    step_run_id,
                )
                with self._lock:
                    self._lost.add(step_run_id)
                item.stop.set(KILLED_BY_SCHEDULER)
        if self._shutdown_at is not None:
            return  # what was handed back at shutdown is crashed by deregistering
        # (held lists this process's claims only: another process's under the
        # same name, two agents named after one host say, are never handed
        # back, which would run them twice)
        for step_run_id in sorted(held - running.keys() - finished):
            # Claimed, but the answer never reached the agent.
            try:
                released = self._call(partial(_release, agent_id=agent_id, step_run_id=step_run_id))
            except ConnectionLost:
                raise
            except psycopg.Error as exc:
                log.warning("step run %s: could not hand it back: %s", step_run_id, _first_line(exc))
                continue
            if released:
                log.warning("step run %s: its claim was lost: handed back to the queue", step_run_id)
                continue
            # A stop or timeout was requested meanwhile: it ends failed.
            error = f"agent {self.config.name} was not running this step run: its claim was lost"
            log.warning("step run %s: %s", step_run_id, error)
            with self._lock:
                self._results.append((step_run_id, StepResult(succeeded=False, error=error)))

    def _claim(self) -> None:
        assert self.agent_id is not None
        agent_id = self.agent_id
        self._reap()
        with self._lock:
            free = self.config.max_parallel - len(self._running)
        if free <= 0:
            return
        try:
            steps: list[ClaimedStep] = self._call(lambda api: api.claim(agent_id, free))
        except ConnectionLost:
            raise
        except psycopg.Error as exc:
            log.error("claim refused: %s", _first_line(exc))
            return
        for step in steps:
            self._launch(step)

    def _launch(self, step: ClaimedStep) -> None:
        stop = StopSignal()
        thread = threading.Thread(
            target=self._execute, args=(step, stop), name=f"step-run-{step.step_run_id}", daemon=True
        )
        with self._lock:
            self._running[step.step_run_id] = _Running(step, stop, thread)
        log.info(
            "step run %s: %s step %r of job %r (run %s, attempt %s)",
            step.step_run_id,
            step.kind,
            step.step_name,
            step.job_name,
            step.run_id,
            step.attempt,
        )
        thread.start()

    def _execute(self, step: ClaimedStep, stop: StopSignal) -> None:
        """Runs in the step's thread; always leaves a result behind."""
        ctx = StepContext(
            stop=stop,
            sink=lambda chunk: self._stream(step.step_run_id, chunk),
            output_limit=self.config.output_limit,
            kill_timeout=self.config.kill_timeout,
            default_shell=self.config.shell,
            work_dir=self.config.work_dir,
            dbapi_drivers=self.config.dbapi_drivers,
        )
        try:
            if step.kind not in self.config.capabilities:
                result = StepResult(
                    succeeded=False, error=f"agent {self.config.name} cannot run {step.kind} steps"
                )
            elif step.kind == "shell":
                result = run_shell(step, ctx, self.environ)
            elif step.kind == "remote_sql" and is_dbapi(step.connection):
                result = run_dbapi(step, ctx, self.environ)
            elif step.kind == "remote_sql":
                result = run_remote_sql(step, ctx)
            else:
                result = StepResult(succeeded=False, error=f"unknown step kind {step.kind!r}")
        except Exception as exc:  # an executor failure must still end the step run
            log.exception("step run %s: executor failed", step.step_run_id)
            result = StepResult(succeeded=False, error=f"agent error: {exc}")
        outcome = "succeeded" if result.succeeded else "failed"
        if not result.succeeded and stop.is_set():
            outcome = "ended early"
        log.info(
            "step run %s: %s%s",
            step.step_run_id,
            outcome,
            f" ({result.error.splitlines()[0]})" if result.error else "",
        )
        with self._lock:
            lost = step.step_run_id in self._lost
            self._lost.discard(step.step_run_id)
        if lost:
            log.info("step run %s: not reported (the database no longer holds it)", step.step_run_id)
            self.wake()
            return
        if not result.succeeded and stop.is_set() and stop.reason == SHUTDOWN:
            # Not the step's failure: handed back instead of reported, so that
            # deregistering ends it crashed and the job's retry_on_crash
            # decides whether it runs again (on another agent).
            log.info("step run %s: handed back (killed at shutdown)", step.step_run_id)
            self.wake()
            return
        with self._lock:
            self._results.append((step.step_run_id, result))
        self.wake()

    def _stream(self, step_run_id: int, chunk: str) -> bool:
        """Output sink of a step thread: never fails the step itself."""
        api, agent_id = self._api, self.agent_id
        if api is None or agent_id is None:
            return True
        try:
            return api.output(agent_id, step_run_id, chunk)
        except Exception as exc:  # the final report still carries the output
            log.debug("step run %s: output not streamed: %s", step_run_id, _first_line(exc))
            return True

    def _deliver_results(self) -> None:
        assert self.agent_id is not None
        agent_id = self.agent_id
        with self._lock:
            pending = list(self._results)
        for item in pending:
            step_run_id, result = item
            again = self._deliver(agent_id, step_run_id, result)
            with self._lock:
                index = next(i for i, r in enumerate(self._results) if r is item)
                if again is None:
                    del self._results[index]
                else:
                    self._results[index] = (step_run_id, again)

    def _deliver(self, agent_id: int, step_run_id: int, result: StepResult) -> StepResult | None:
        """Reports a result; returns what to report again later, or None
        when it was delivered or given up. A refused report is made again
        with its texts escaped to ASCII (a character the database's encoding
        lacks, say), then as a bare failure, so the step run does not stay
        running."""
        attempts = [result]
        while attempts:
            attempt = attempts.pop(0)
            try:
                self._call(partial(_report, agent_id=agent_id, step_run_id=step_run_id, result=attempt))
                self._transient_tries.pop(step_run_id, None)
                return None
            except ConnectionLost:
                raise
            except Exception as exc:  # anything else must not end the loop
                tries = self._transient_tries.get(step_run_id, 0) + 1
                if isinstance(exc, psycopg.Error) and _transient(exc) and tries < MAX_TRANSIENT_TRIES:
                    # A deadlock, a lock or statement timeout, a serialization
                    # failure: the same report goes through later (a bounded
                    # number of times: a shutdown waits for every report).
                    self._transient_tries[step_run_id] = tries
                    log.warning(
                        "step run %s: report failed, retrying later: %s", step_run_id, _first_line(exc)
                    )
                    return attempt
                self._transient_tries[step_run_id] = tries  # (the fallbacks below are not retried later)
                log.error("step run %s: report refused: %s", step_run_id, _first_line(exc))
                if attempt is result:
                    safe = _ascii_result(result)
                    # (the outcome itself is kept: a success reported as a
                    # failure would run the step's retries or on_failure)
                    bare = StepResult(
                        succeeded=result.succeeded,
                        exit_code=result.exit_code,
                        error=_ascii(f"the database refused this step run's report: {_first_line(exc)}"),
                    )
                    attempts = [safe, bare] if safe != result else [bare]
        self._transient_tries.pop(step_run_id, None)
        with self._lock:
            self._unreported.add(step_run_id)
        return None

    def _reap(self) -> None:
        with self._lock:
            done = [key for key, running in self._running.items() if not running.thread.is_alive()]
            for key in done:
                del self._running[key]

    def _kill_all(self, reason: str) -> None:
        with self._lock:
            running = list(self._running.values())
        for item in running:
            item.stop.set(reason)
        # Bounded: a thread stuck in a call that never returns (a remote
        # server that ignores the cancel) must not keep the agent up.
        deadline = time.monotonic() + self.config.kill_timeout + KILL_JOIN_GRACE
        for item in running:
            item.thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [item.step.step_run_id for item in running if item.thread.is_alive()]
        if stuck:
            log.warning("step run(s) %s did not end in time: leaving them", ", ".join(map(str, stuck)))
        self._reap()

    def _handle_shutdown(self) -> None:
        if self._shutdown_at is None:
            return
        with self._lock:
            running = list(self._running.values())
        if running and self._kill_at is not None and time.monotonic() >= self._kill_at:
            log.warning("grace period over: killing %d running step(s)", len(running))
            for item in running:
                item.stop.set(SHUTDOWN)

    def _deregister(self) -> None:
        if self._api is None or self.agent_id is None:
            return
        agent_id = self.agent_id
        try:
            self._api.deregister(agent_id)
        except errors.UndefinedFunction:
            log.debug("the extension has no agent_deregister_v1: the agent will show as down")
        except psycopg.Error as exc:
            log.warning("could not deregister: %s", _first_line(exc))

    # --- waiting ---

    def _wait(self, timeout: float) -> bool:
        """Sleeps until a NOTIFY, a wake-up or the timeout; True on a NOTIFY
        or a wake-up (a step ended, a signal came)."""
        listen = self._listen
        if listen is None:
            raise ConnectionLost("not connected")
        try:
            ready, _, _ = select.select([listen.fileno(), self._wake_r.fileno()], [], [], timeout)
        except InterruptedError:
            ready = []
        woke = self._drain_wake()
        if listen.fileno() in ready:
            try:
                notifies = list(listen.notifies(timeout=0))
            except psycopg.OperationalError as exc:
                raise ConnectionLost(_first_line(exc)) from exc
            if notifies:
                log.debug("woken by NOTIFY (%s)", ", ".join(n.payload for n in notifies))
                return True
            if listen.closed or listen.broken:
                raise ConnectionLost("the LISTEN connection closed")
        return woke

    def _drain_wake(self) -> bool:
        woke = False
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                woke = True
        return woke

    def _sleep(self, seconds: float, until_shutdown: bool = False) -> None:
        """Sleeps, but wakes up early when steps must be killed (or, with
        `until_shutdown`, at any shutdown request)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            select.select([self._wake_r.fileno()], [], [], left)
            self._drain_wake()
            if until_shutdown and self._shutdown_at is not None:
                return
            if self._kill_at is not None and time.monotonic() >= self._kill_at:
                return


def _transient(exc: psycopg.Error) -> bool:
    """Whether the same call may succeed when made again: the transaction
    rollback class (deadlock, serialization failure), a lock not available,
    a statement cancelled (statement_timeout) and insufficient resources."""
    sqlstate = exc.sqlstate or ""
    # (25006: a read-only transaction, as on a standby after a failover)
    return sqlstate[:2] in ("40", "53") or sqlstate in ("55P03", "57014", "25006")


def _report(api: AgentApi, *, agent_id: int, step_run_id: int, result: StepResult) -> None:
    api.report(agent_id, step_run_id, result)


def _release(api: AgentApi, *, agent_id: int, step_run_id: int) -> bool:
    return api.release(agent_id, step_run_id)


def _ascii(text: str | None) -> str | None:
    if text is None:
        return None
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\x00", "\\x00")


def _ascii_result(result: StepResult) -> StepResult:
    """The result with its texts escaped to ASCII (any encoding takes it)."""
    return dataclasses.replace(
        result,
        output=_ascii(result.output),
        messages=_ascii(result.messages),
        error=_ascii(result.error),
        sqlstate=_ascii(result.sqlstate),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# libpq's messages for settings that no retry will fix, and the key to blame.
# Exact: "too many connections for role" (an old process's connections still
# counted) or a DNS server not up yet at boot pass, and are retried.
_SETTING_ERRORS = (
    (re.compile(r"password authentication failed|no password supplied"), "db_user"),
    (re.compile(r'role "[^"]*" (does not exist|is not permitted to log in)'), "db_user"),
    (re.compile(r'database "[^"]*" does not exist'), "db_name"),
    (re.compile(r"definition of service"), "db_service"),
    (re.compile(r"could not translate host name .*: (?!.*(temporary|try again))", re.IGNORECASE), "db_host"),
    # (psycopg 3.2+ resolves names itself, with the resolver's own words)
    (re.compile(r"failed to resolve host .*(Name or service not known|nodename nor servname)"), "db_host"),
    (re.compile(r"invalid port number"), "db_port"),
)


def _raise_if_settings(message: str, config: AgentConfig) -> None:
    for pattern, key in _SETTING_ERRORS:
        if pattern.search(message):
            value = getattr(config, key)
            raise StartupError(f"{key}: cannot connect with {key} = {value!r}: {message}")

"""The agent's loop without a database: its calls go to a fake AgentApi."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from psycopg import errors

from helpers import shell_step
from pgautomator.agent import Agent, StartupError, _raise_if_settings, _Running
from pgautomator.config import AgentConfig
from pgautomator.protocol import AgentApi, _int32
from pgautomator.steps import StepResult, StopSignal

Refusal = Callable[[StepResult], Exception | None]


class FakeApi(AgentApi):
    """Records reports; `refuse` may turn one down with an exception."""

    def __init__(self, refuse: Refusal | None = None, held: list[int] | None = None) -> None:
        self.reports: list[tuple[int, StepResult]] = []
        self.held = held  # None: an extension without agent_running_v1
        self.released: list[int] = []
        self.refuse = refuse
        self.conn = cast(Any, SimpleNamespace(closed=False, broken=False))

    def report(self, agent_id: int, step_run_id: int, result: StepResult) -> None:
        exc = self.refuse(result) if self.refuse else None
        if exc is not None:
            raise exc
        self.reports.append((step_run_id, result))

    def running(self, agent_id: int) -> list[int]:
        if self.held is None:
            raise errors.UndefinedFunction(
                "function pgautomator.agent_running_v1(agent_id => bigint) does not exist"
            )
        return self.held

    def release(self, agent_id: int, step_run_id: int) -> bool:
        self.released.append(step_run_id)
        return True

    def output(self, agent_id: int, step_run_id: int, chunk: str) -> bool:
        chunk.encode("latin-1")  # as psycopg does with client_encoding LATIN1
        return True


def make_agent(api: FakeApi) -> Agent:
    agent = Agent(AgentConfig(db_name="x", name="t-unit"))
    agent.agent_id = 1
    agent._api = api
    return agent


def non_ascii(result: StepResult) -> bool:
    texts = (result.output, result.error, result.messages)
    return any(text is not None and not text.isascii() for text in texts)


def test_a_report_the_database_cannot_encode_is_made_again_escaped() -> None:
    # A LATIN1 database refuses "✓" (22P05): the report used to be dropped
    # and the step run stayed running.
    api = FakeApi(
        lambda r: errors.UntranslatableCharacter("no equivalent in LATIN1") if non_ascii(r) else None
    )
    agent = make_agent(api)
    agent._results.append((7, StepResult(succeeded=True, exit_code=0, output="ok \u2713\n\x00")))
    agent._deliver_results()
    assert api.reports == [(7, StepResult(succeeded=True, exit_code=0, output="ok \\u2713\n\\x00"))]
    assert agent._results == []


def test_a_client_side_encoding_error_does_not_end_the_loop() -> None:
    # psycopg raises UnicodeEncodeError (no psycopg.Error) with a client
    # encoding that lacks the character: it used to kill the agent.
    def refuse(result: StepResult) -> Exception | None:
        try:
            (result.error or "").encode("latin-1")
        except UnicodeEncodeError as exc:
            return exc
        return None

    api = FakeApi(refuse)
    agent = make_agent(api)
    agent._results.append((8, StepResult(succeeded=False, error="failed \u2717")))
    agent._deliver_results()
    assert api.reports == [(8, StepResult(succeeded=False, error="failed \\u2717"))]


def test_a_report_refused_whatever_its_texts_ends_the_step_run_with_its_outcome() -> None:
    # Its outcome is kept: a success reported as a failure would run the
    # step's retries or on_failure again.
    api = FakeApi(lambda r: errors.NumericValueOutOfRange("out of range") if r.rows_affected else None)
    agent = make_agent(api)
    agent._results.append((9, StepResult(succeeded=True, rows_affected=2**70)))
    agent._deliver_results()
    ((step_run_id, result),) = api.reports
    assert (step_run_id, result.succeeded, result.rows_affected) == (9, True, None)
    assert result.error == "the database refused this step run's report: out of range"
    assert agent._results == []


def test_a_passing_refusal_is_made_again_a_bounded_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    # A shutdown waits for every report: one refused for ever "for a passing
    # reason" (a role's statement_timeout shorter than the report) kept the
    # agent from ending.
    monkeypatch.setattr("pgautomator.agent.MAX_TRANSIENT_TRIES", 3)
    api = FakeApi(lambda r: errors.QueryCanceled("canceling statement due to statement timeout"))
    agent = make_agent(api)
    agent._results.append((11, StepResult(succeeded=True)))
    for _ in range(2):
        agent._deliver_results()
        assert [i for i, _ in agent._results] == [11]
    agent._deliver_results()
    assert agent._results == [] and 11 in agent._unreported


def test_a_passing_refusal_keeps_the_report() -> None:
    api = FakeApi(lambda r: errors.LockNotAvailable("lock timeout"))
    agent = make_agent(api)
    agent._results.append((10, StepResult(succeeded=True)))
    agent._deliver_results()
    assert agent._results == [(10, StepResult(succeeded=True))]
    api.refuse = None
    agent._deliver_results()
    assert api.reports == [(10, StepResult(succeeded=True))]
    assert agent._results == []


def test_streaming_survives_any_error() -> None:
    agent = make_agent(FakeApi())
    # The step goes on (True) when its output cannot be sent.
    assert agent._stream(7, "\u2713") is True


def test_an_extension_without_agent_running_v1_is_not_reconciled() -> None:
    agent = make_agent(FakeApi())
    agent._reconcile(1)
    agent._reconcile(1)
    assert not agent._can_reconcile


def test_a_step_run_whose_report_is_pending_or_given_up_is_not_handed_back() -> None:
    # It ran: handing it back would run it again.
    api = FakeApi(held=[5, 6, 7])
    agent = make_agent(api)
    agent._results.append((5, StepResult(succeeded=True)))
    agent._unreported.add(6)
    agent._reconcile(1)
    assert api.released == [7]


@pytest.mark.parametrize(
    ("message", "key"),
    [
        ('FATAL:  password authentication failed for user "ag"', "db_user"),
        ('FATAL:  role "ag" does not exist', "db_user"),
        ('FATAL:  role "ag" is not permitted to log in', "db_user"),
        ('FATAL:  database "jobs" does not exist', "db_name"),
        ('could not translate host name "dbx" to address: Name or service not known', "db_host"),
        ("failed to resolve host 'dbx': [Errno -2] Name or service not known", "db_host"),
        # Passing: an old process's connections still counted, DNS not up yet.
        ('FATAL:  too many connections for role "ag"', None),
        ("FATAL:  sorry, too many clients already", None),
        ('could not translate host name "db" to address: Temporary failure in name resolution', None),
    ],
)
def test_only_settings_no_retry_can_fix_stop_the_agent_at_start(message: str, key: str | None) -> None:
    config = AgentConfig(db_name="jobs", db_user="ag", db_host="dbx")
    if key is None:
        _raise_if_settings(message, config)
        return
    with pytest.raises(StartupError, match=f"^{key}: cannot connect with {key} = ") as info:
        _raise_if_settings(message, config)
    assert info.value.status == 2


def test_killing_all_steps_does_not_wait_for_ever(monkeypatch: pytest.MonkeyPatch) -> None:
    # A step thread stuck in a call (a remote server that never answers the
    # cancel) kept an agent that lost its connection from exiting.
    monkeypatch.setattr("pgautomator.agent.KILL_JOIN_GRACE", 0.2, raising=False)
    agent = Agent(AgentConfig(db_name="x", name="t-unit", kill_timeout=0.1))
    release = threading.Event()
    stuck = threading.Thread(target=release.wait, daemon=True)
    stuck.start()
    step = shell_step("sleep 300")
    agent._running[step.step_run_id] = _Running(step, StopSignal(), stuck)
    try:
        killer = threading.Thread(target=agent._kill_all, args=("stopped",), daemon=True)
        killer.start()
        killer.join(30)
        assert not killer.is_alive()
    finally:
        release.set()


def test_an_exit_code_beyond_integer_is_reported_as_a_signed_32_bit_value() -> None:
    # Windows reports a crash (0xC0000005) unsigned: the report failed (42883).
    assert _int32(3221225477) == -1073741819
    assert (_int32(None), _int32(0), _int32(-15), _int32(2**31 - 1)) == (None, 0, -15, 2**31 - 1)

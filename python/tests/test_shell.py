"""Shell executor: exit codes, environment, bounded output, streaming, and
timeouts and stops that kill the whole process group."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path

import pytest

from helpers import cleanup_pids, pids_alive, read_pids, shell_step, wait_for
from pgautomator.executors.shell import run_shell, shell_argv
from pgautomator.steps import StepContext, StopSignal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell semantics")


def test_success_captures_stdout_and_stderr() -> None:
    result = run_shell(shell_step("echo out; echo err >&2"), StepContext())
    assert result.succeeded
    assert result.exit_code == 0
    assert result.error is None
    assert result.output is not None
    assert "out\n" in result.output and "err\n" in result.output


def test_failing_exit_code() -> None:
    result = run_shell(shell_step("echo before; exit 3"), StepContext())
    assert not result.succeeded
    assert result.exit_code == 3
    assert result.error == "exit code 3 (success codes: 0)"
    assert result.output == "before\n"


def test_listed_success_codes() -> None:
    result = run_shell(shell_step("exit 3", success_codes=(0, 3)), StepContext())
    assert result.succeeded
    assert result.exit_code == 3
    assert not run_shell(shell_step("exit 0", success_codes=(1,)), StepContext()).succeeded


def test_environment_and_fresh_directory(tmp_path: Path) -> None:
    report = tmp_path / "env.txt"
    code = (
        f'{{ echo "$PGAUTOMATOR_JOB_ID $PGAUTOMATOR_RUN_ID $PGAUTOMATOR_STEP_RUN_ID"; '
        f'echo "pw=${{PGPASSWORD-unset}} cfg=${{PGAUTOMATOR_DB_NAME-unset}}"; pwd; ls -A; }} > {report}'
    )
    base = {"PATH": os.environ["PATH"], "PGPASSWORD": "secret", "PGAUTOMATOR_DB_NAME": "jobs", "KEEP": "1"}
    result = run_shell(shell_step(code, job_id=7, run_id=8, step_run_id=9), StepContext(), base)
    assert result.succeeded, result.error
    ids, secrets, cwd, listing = report.read_text().splitlines()[:4]
    assert ids == "7 8 9"
    assert secrets == "pw=unset cfg=unset"
    assert Path(cwd).name.startswith("pgautomator-9-")
    assert listing == "step.sh"  # only the script: a fresh directory
    assert not Path(cwd).exists()  # removed afterwards


def test_step_shell_overrides_the_default() -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash not installed")
    code = 'echo "${BASH_VERSION:+bash}"'
    assert run_shell(shell_step(code, shell="bash"), StepContext()).output == "bash\n"
    assert run_shell(shell_step(code), StepContext(default_shell="bash")).output == "bash\n"
    assert run_shell(shell_step(code), StepContext(default_shell="sh")).output != "bash\n"


def test_missing_shell_is_a_clear_failure() -> None:
    if shutil.which("pwsh") is not None:
        pytest.skip("PowerShell is installed here")
    result = run_shell(shell_step("Write-Output 1", shell="powershell"), StepContext())
    assert not result.succeeded
    assert result.error is not None and "cannot start shell 'powershell'" in result.error
    assert shell_argv("cmd", "x.cmd")[:3] == ["cmd.exe", "/D", "/C"]


def test_output_is_bounded_and_keeps_the_tail() -> None:
    code = "i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done; echo LAST >&2"
    result = run_shell(shell_step(code), StepContext(output_limit=4096))
    assert result.succeeded
    assert result.output is not None
    assert result.output.startswith("[... ")
    assert result.output.endswith("line 19999\nLAST\n")
    assert len(result.output.split("]\n", 1)[1].encode()) <= 4096


def test_output_streams_while_running(tmp_path: Path) -> None:
    # The script goes on only once the sink has seen its first line, so it
    # succeeds only if output reaches the sink while it still runs.
    marker = tmp_path / "seen"
    code = (
        f"echo first; i=0; while [ ! -e {marker} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done;"
        f" test -e {marker}"
    )
    chunks: list[str] = []

    def sink(chunk: str) -> bool:
        chunks.append(chunk)
        if "first" in chunk:
            marker.touch()
        return True

    result = run_shell(shell_step(code), StepContext(sink=sink, stream_interval=0.05))
    assert result.succeeded, result.error
    assert chunks[0] == "first\n"


SPAWN_TREE = """
sleep 300 & echo $! >> {pids}
sh -c 'sleep 300 & echo $! >> {pids}; wait' &
echo $! >> {pids}
echo started
wait
"""


def test_timeout_kills_the_process_group_with_grandchildren(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    step = shell_step(SPAWN_TREE.format(pids=pids_file), timeout_ms=300)
    try:
        result = run_shell(step, StepContext())
        assert not result.succeeded
        assert result.error == "timed out after 0.3 s"
        assert result.exit_code is None
        pids = read_pids(pids_file)
        assert len(pids) == 3
        wait_for(lambda: not pids_alive(pids), what="the step's processes to end")
    finally:
        cleanup_pids(read_pids(pids_file))


def test_stop_kills_the_process_group(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    stop = StopSignal()
    seen = threading.Event()

    def sink(chunk: str) -> bool:
        if "started" in chunk:
            seen.set()
        return True

    def stop_when_started() -> None:
        seen.wait(30)
        stop.set("stopped by request")

    threading.Thread(target=stop_when_started, daemon=True).start()
    try:
        result = run_shell(
            shell_step(SPAWN_TREE.format(pids=pids_file)),
            StepContext(stop=stop, sink=sink, stream_interval=0.05),
        )
        assert not result.succeeded
        assert result.error == "stopped by request"
        assert result.output is not None and "started" in result.output
        pids = read_pids(pids_file)
        assert len(pids) == 3
        wait_for(lambda: not pids_alive(pids), what="the step's processes to end")
    finally:
        cleanup_pids(read_pids(pids_file))


def test_sink_answering_false_stops_the_step() -> None:
    result = run_shell(
        shell_step("echo hi; sleep 300"), StepContext(sink=lambda chunk: False, stream_interval=0.05)
    )
    assert not result.succeeded
    assert result.error == "stopped"


def test_sigterm_ignoring_processes_get_sigkill(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    code = f"trap '' TERM; sleep 300 & echo $! >> {pids_file}; wait"
    try:
        result = run_shell(shell_step(code, timeout_ms=200), StepContext(kill_timeout=0.3))
        assert result.error == "timed out after 0.2 s"
        wait_for(lambda: not pids_alive(read_pids(pids_file)), what="the sleep to end")
    finally:
        cleanup_pids(read_pids(pids_file))


def test_background_processes_do_not_outlive_the_step(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    try:
        result = run_shell(shell_step(f"sleep 300 & echo $! >> {pids_file}; echo done"), StepContext())
        assert result.succeeded
        assert result.output == "done\n"
        wait_for(lambda: not pids_alive(read_pids(pids_file)), what="the background sleep to end")
    finally:
        cleanup_pids(read_pids(pids_file))


def test_death_by_signal_is_reported() -> None:
    result = run_shell(shell_step("kill -9 $$"), StepContext())
    assert not result.succeeded
    assert result.exit_code == 137
    assert result.error == "killed by SIGKILL"

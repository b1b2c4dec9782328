"""Shell steps: the step's code runs as a script in the platform's shell, in
a fresh temporary directory, in a process group of its own so that a timeout
or a stop kills everything it started (grandchildren included)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import IO, Any

from pgautomator.output import TailBuffer
from pgautomator.steps import ClaimedStep, StepContext, StepResult

SCRIPT_SUFFIX = {"sh": ".sh", "bash": ".sh", "cmd": ".cmd", "powershell": ".ps1"}
# The agent's own credentials and settings are not the step's business.
HIDDEN_ENV = ("PGPASSWORD",)
HIDDEN_ENV_PREFIX = "PGAUTOMATOR_"


def shell_argv(shell: str, script: str) -> list[str]:
    """The command line that runs `script` in `shell`."""
    windows = sys.platform == "win32"
    if shell == "sh":
        return ["sh" if windows else "/bin/sh", script]
    if shell == "bash":
        return ["bash", script]
    if shell == "cmd":
        return ["cmd.exe", "/D", "/C", script]
    if shell == "powershell":
        exe = "powershell.exe" if windows else "pwsh"
        return [
            exe,
            "-NoLogo",
            "-NoProfile",
            "-NonInteractive",
            "-ExecutionPolicy",
            "Bypass",
            "-File",
            script,
        ]
    raise ValueError(f"unknown shell {shell!r}")


def step_environment(step: ClaimedStep, base: Mapping[str, str], work_dir: str) -> dict[str, str]:
    """The agent's environment without its secrets, plus the step's identity."""
    env = {
        key: value
        for key, value in base.items()
        if key not in HIDDEN_ENV and not key.startswith(HIDDEN_ENV_PREFIX)
    }
    env.update(
        PGAUTOMATOR_JOB_ID=str(step.job_id),
        PGAUTOMATOR_JOB_NAME=step.job_name,
        PGAUTOMATOR_RUN_ID=str(step.run_id),
        PGAUTOMATOR_STEP_RUN_ID=str(step.step_run_id),
        PGAUTOMATOR_STEP_NAME=step.step_name,
        PGAUTOMATOR_ATTEMPT=str(step.attempt),
        PGAUTOMATOR_WORK_DIR=work_dir,
    )
    return env


def run_shell(step: ClaimedStep, ctx: StepContext, base_env: Mapping[str, str] | None = None) -> StepResult:
    """Runs a shell step to its end (exit, timeout or stop) and returns its result."""
    shell = step.shell or ctx.default_shell
    with tempfile.TemporaryDirectory(prefix=f"pgautomator-{step.step_run_id}-", dir=ctx.work_dir) as tmp:
        script = os.path.join(tmp, "step" + SCRIPT_SUFFIX.get(shell, ".txt"))
        with open(script, "w", encoding="utf-8", newline="\r\n" if shell == "cmd" else "\n") as handle:
            handle.write(step.code)
            if not step.code.endswith("\n"):
                handle.write("\n")
        try:
            argv = shell_argv(shell, script)
            env = step_environment(step, os.environ if base_env is None else base_env, tmp)
            proc = start_process(argv, tmp, env)
        except (OSError, ValueError) as exc:
            return StepResult(succeeded=False, error=f"cannot start shell {shell!r}: {exc}")
        return supervise(step, ctx, proc)


def start_process(
    argv: list[str], cwd: str, env: Mapping[str, str], stdin: bytes | None = None
) -> subprocess.Popen[bytes]:
    """Starts a step's process in a process group of its own, stdout and
    stderr into one pipe; `stdin`, if given, is its whole input."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **_group_options(),
    )
    if proc.stdin is not None:
        # The process may have ended without reading it.
        with contextlib.suppress(OSError):
            proc.stdin.write(stdin or b"")
        with contextlib.suppress(OSError):
            proc.stdin.close()
    return proc


def supervise(step: ClaimedStep, ctx: StepContext, proc: subprocess.Popen[bytes]) -> StepResult:
    """Captures and streams the process's output until it exits, its step
    times out or is stopped (then its group is killed); returns the result."""
    buffer = TailBuffer(ctx.output_limit)
    assert proc.stdout is not None
    reader = threading.Thread(target=_pump, args=(proc.stdout, buffer), name="output-reader", daemon=True)
    reader.start()

    # Woken at once by the script's exit or a stop, not by polling.
    event = threading.Event()
    threading.Thread(target=_wait_exit, args=(proc, event), name="exit-waiter", daemon=True).start()
    ctx.stop.on_set(event.set)
    # Output goes to the database from a thread of its own, so that a slow
    # database never delays a timeout or a stop.
    streaming = threading.Event()
    streamer = threading.Thread(
        target=_stream_loop, args=(buffer, ctx, streaming), name="output-streamer", daemon=True
    )
    if ctx.sink is not None:
        streamer.start()

    timeout = step.timeout
    deadline = time.monotonic() + timeout if timeout is not None else None
    ended_by: str | None = None
    while proc.poll() is None:
        now = time.monotonic()
        if ctx.stop.is_set():
            ended_by = ctx.stop.reason or "stopped"
        elif deadline is not None and now >= deadline:
            ended_by = f"timed out after {timeout:g} s"
        if ended_by:
            kill_group(proc, ctx.kill_timeout)
            break
        event.wait(None if deadline is None else max(deadline - now, 0.0))
    streaming.set()
    # Whatever the script left running in its group does not outlive the step
    # (it would also hold the output pipe open).
    kill_group(proc, ctx.kill_timeout)
    reader.join(timeout=10)
    if streamer.is_alive():
        streamer.join(timeout=10)

    output = buffer.text()
    if ended_by:
        return StepResult(succeeded=False, output=output, error=ended_by)
    code = proc.returncode
    if code < 0:  # died of a signal it did not get from us
        signo = -code
        try:
            name = signal.Signals(signo).name
        except ValueError:
            name = f"signal {signo}"
        return StepResult(succeeded=False, exit_code=128 + signo, output=output, error=f"killed by {name}")
    if code in step.success_codes:
        return StepResult(succeeded=True, exit_code=code, output=output)
    codes = ", ".join(str(c) for c in step.success_codes)
    return StepResult(
        succeeded=False, exit_code=code, output=output, error=f"exit code {code} (success codes: {codes})"
    )


def _wait_exit(proc: subprocess.Popen[bytes], event: threading.Event) -> None:
    proc.wait()
    event.set()


def _stream_loop(buffer: TailBuffer, ctx: StepContext, done: threading.Event) -> None:
    """Sends new output every stream_interval until `done`; a False answer
    of the sink stops the step."""
    while not done.wait(ctx.stream_interval):
        chunk = buffer.take_pending()
        if chunk and ctx.sink is not None and not ctx.sink(chunk):
            ctx.stop.set("stopped")


def _pump(stream: IO[bytes], buffer: TailBuffer) -> None:
    """Copies the child's output into the buffer until end of file."""
    fd = stream.fileno()
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buffer.write(chunk)
    except OSError:
        pass
    finally:
        stream.close()


def _group_options() -> dict[str, Any]:
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """Ends the process and everything in its group: SIGTERM, then SIGKILL
    after `grace` seconds for whatever is still there. Reaps the process."""
    if sys.platform == "win32":
        if proc.poll() is None:
            subprocess.run(
                ["taskkill", "/T", "/F", "/PID", str(proc.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        proc.wait()
        return
    pgid = proc.pid  # start_new_session made the shell the leader of its own group
    if not _signal_group(pgid, signal.SIGTERM):
        proc.wait()
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            return
        time.sleep(0.02)
    _signal_group(pgid, signal.SIGKILL)
    proc.wait()


def _group_alive(pgid: int) -> bool:
    """Whether the group has a member that is not a zombie. Orphans become
    zombies until init reaps them, which some inits do slowly."""
    if not sys.platform.startswith("linux"):
        return _signal_group(pgid, 0)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def _signal_group(pgid: int, signo: int) -> bool:
    """Signals a process group; False when it has no member left."""
    if sys.platform == "win32":
        return False
    try:
        os.killpg(pgid, signo)
    except ProcessLookupError:
        return False
    except PermissionError:
        # A member changed its user (setuid); nothing we may signal is left.
        return False
    return True

"""The `pgautomator agent` command: settings errors stop it with status 2
and a message naming the key; --check shows the merged settings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from helpers import wait_for

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PGAUTOMATOR_")}
    base["PYTHONPATH"] = SRC
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pgautomator", *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=60,
        cwd=SRC,  # not a checkout's root, whose pgautomator.so `-m` would import
    )


def test_check_prints_merged_settings(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("db_name: jobs\nmax_parallel: 2\nname: file\nlog_level: 3\n")
    done = run_cli(
        "agent", "--config", str(config), "--check", "--name", "flag", env={"PGAUTOMATOR_MAX_PARALLEL": "6"}
    )
    assert done.returncode == 0, done.stderr
    settings = yaml.safe_load(done.stdout)
    assert settings["db_name"] == "jobs"
    assert settings["max_parallel"] == 6
    assert settings["name"] == "flag"
    assert settings["log_level"] == 3


def test_bad_setting_exits_2_naming_the_key() -> None:
    done = run_cli("agent", "--db-name", "jobs", "--poll-time", "never")
    assert done.returncode == 2
    assert "configuration error: poll_time: must be a number of seconds, not 'never'" in done.stderr
    assert "--poll-time" in done.stderr


def test_missing_db_name_exits_2() -> None:
    done = run_cli("agent")
    assert done.returncode == 2
    assert "db_name: is required" in done.stderr


def test_password_in_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("db_name: jobs\ndb_password: hunter2\n")
    done = run_cli("agent", "-c", str(config))
    assert done.returncode == 2
    assert "db_password: passwords do not belong in the config file" in done.stderr
    assert "hunter2" not in done.stderr


def test_config_file_from_environment_missing() -> None:
    done = run_cli("agent", env={"PGAUTOMATOR_CONFIG": "/nonexistent/agent.yaml"})
    assert done.returncode == 2
    assert "config: cannot read /nonexistent/agent.yaml" in done.stderr


def test_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("pgautomator ")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _agent_without_server(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / "agent.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGAUTOMATOR_", "PG"))}
    env["PYTHONPATH"] = SRC
    argv = [sys.executable, "-m", "pgautomator", "agent", "--db-host", "127.0.0.1"]
    argv += ["--db-port", str(_free_port()), "--db-name", "jobs", "--db-user", "nobody", *flags]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    return proc, log


def test_unreachable_server_is_retried_until_sigterm(tmp_path: Path) -> None:
    proc, log = _agent_without_server(tmp_path)
    try:
        wait_for(lambda: "retrying in 1 s" in log.read_text(), what="the first retry")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert "stopped before it could connect" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_unreachable_server_without_retry_exits_1(tmp_path: Path) -> None:
    proc, log = _agent_without_server(tmp_path, "--retry-on-crash", "no")
    assert proc.wait(60) == 1
    assert "cannot connect to the database" in log.read_text()

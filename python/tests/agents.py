"""Real agent processes for the end-to-end tests: `python -m pgautomator
agent` against the test cluster, with this checkout's source."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import yaml
from conftest import cluster_params

from helpers import wait_for

SRC = str(Path(__file__).resolve().parents[1] / "src")


class AgentProcess:
    def __init__(
        self, name: str, role: str, log_dir: Path, environ: dict[str, str] | None = None, **settings: str
    ) -> None:
        self.name = name
        self.agent_id: int | None = None
        self.log_path = log_dir / f"agent-{name}.log"
        params = cluster_params(user=role)
        # The base settings come from a YAML file, as in production; the
        # test's own settings are flags, which override the file.
        config = log_dir / f"agent-{name}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "db_host": params["host"],
                    "db_port": int(params["port"]),
                    "db_name": params["dbname"],
                    "db_user": role,
                    "name": name,
                    "log_level": 0,
                    # NOTIFY is what wakes the agent; a long poll_time proves it.
                    "poll_time": 60,
                    "heartbeat_interval": 0.5,
                    # Steps' temporary directories with the test's files: one
                    # whose agent a test kills is never removed otherwise.
                    "work_dir": str(log_dir),
                }
            )
        )
        argv = [sys.executable, "-m", "pgautomator", "agent", "--config", str(config)]
        for key, value in settings.items():
            argv += ["--" + key.replace("_", "-"), value]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PGAUTOMATOR_", "PG"))}
        env["PYTHONPATH"] = SRC
        env.update(environ or {})
        self._log = self.log_path.open("wb")
        # cwd: a checkout's root holds pgautomator.so, which `-m pgautomator` would import.
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=log_dir)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_registered(self, admin: psycopg.Connection[Any]) -> int:
        """The agent's id once its process has registered."""

        def registered() -> int | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent {self.name} exited {self.proc.returncode}:\n{self.log()}")
            row = admin.execute(
                "SELECT id FROM pgautomator.agent WHERE name = %s AND pid = %s", (self.name, self.proc.pid)
            ).fetchone()
            return int(row[0]) if row else None

        agent_id: int = wait_for(registered, what=f"agent {self.name} to register")
        self.agent_id = agent_id
        return agent_id

    def terminate(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

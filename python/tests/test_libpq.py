"""Connection defaults: TCP keepalives and a user timeout on the agent's
own connections and on remote_sql steps, unless the user or a service file
sets them."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import shell_step
from pgautomator.agent import Agent
from pgautomator.config import AgentConfig
from pgautomator.executors.remote_sql import connection_params
from pgautomator.libpq import TCP_DEFAULTS


@pytest.fixture(autouse=True)
def no_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PGSERVICE", "PGSERVICEFILE", "PGSYSCONFDIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.pg_service.conf


def test_the_agents_connections_detect_a_dead_network_and_use_utf8() -> None:
    params = Agent(AgentConfig(db_name="jobs", name="t-unit")).connection_params()
    assert params["keepalives"] == "1"
    assert params["keepalives_idle"] == "10"
    assert params["keepalives_interval"] == "5"
    assert params["keepalives_count"] == "3"
    assert params["tcp_user_timeout"] == "25000"
    assert params["client_encoding"] == "UTF8"


def test_a_service_file_keeps_its_own_keepalive_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    services = tmp_path / "services.conf"
    services.write_text("[jobs]\nhost=db.example.com\nkeepalives_idle=60\n\n[other]\ntcp_user_timeout=1\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    params = Agent(AgentConfig(db_service="jobs", name="t-unit")).connection_params()
    assert "keepalives_idle" not in params  # libpq takes the file's 60
    assert params["tcp_user_timeout"] == "25000"
    step = shell_step("SELECT 1", kind="remote_sql", connection="service=jobs")
    assert "keepalives_idle" not in connection_params(step)
    monkeypatch.setenv("PGSERVICE", "other")  # libpq's default service
    assert "tcp_user_timeout" not in connection_params(
        shell_step("x", kind="remote_sql", connection="host=h")
    )


def test_remote_sql_connections_get_them_unless_the_step_sets_them() -> None:
    step = shell_step("SELECT 1", kind="remote_sql", connection="host=h dbname=d keepalives_idle=30")
    params = connection_params(step)
    assert params["keepalives_idle"] == "30"
    assert {key: params[key] for key in TCP_DEFAULTS if key != "keepalives_idle"} == {
        key: value for key, value in TCP_DEFAULTS.items() if key != "keepalives_idle"
    }

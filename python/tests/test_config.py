"""Configuration: file < environment < flags, and clear errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import shell_step
from pgautomator.config import KEYS, ConfigError, env_name, load_config
from pgautomator.executors.shell import run_shell
from pgautomator.steps import StepContext

NO_FLAGS: dict[str, object | None] = {}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "agent.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "db_name: from_file\ndb_host: filehost\ndb_port: 5433\npoll_time: 7\nname: file-agent\n"
        "retry_on_crash: 'yes'\nlog_level: 2\ncapabilities: [shell]\n",
    )
    env = {"PGAUTOMATOR_DB_HOST": "envhost", "PGAUTOMATOR_POLL_TIME": "3", "PGAUTOMATOR_NAME": "env-agent"}
    flags = {"poll_time": "1.5", "db_port": None}
    config = load_config(flags, env, path)
    assert config.db_name == "from_file"  # only in the file
    assert config.db_port == 5433  # flag not given: the file's value stays
    assert config.db_host == "envhost"  # environment beats the file
    assert config.name == "env-agent"
    assert config.poll_time == 1.5  # the flag beats both
    assert config.retry_on_crash is True
    assert config.log_level == 2
    assert config.capabilities == ("shell",)


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "db_name: viaenv\n")
    config = load_config(NO_FLAGS, {"PGAUTOMATOR_CONFIG": path})
    assert config.db_name == "viaenv"


def test_defaults() -> None:
    config = load_config({"db_name": "x"}, {})
    assert config.capabilities == ("shell", "remote_sql")
    assert config.max_parallel == 4
    assert config.shell == "sh"
    assert config.poll_time == 10
    assert config.log_level == 1
    assert config.retry_on_crash is True
    assert config.name  # the host name


def test_every_key_has_an_environment_variable() -> None:
    env = {env_name(key): "" for key in KEYS}
    # Empty variables count as unset.
    assert load_config({"db_name": "x"}, env).db_name == "x"


def test_capabilities_from_a_comma_list() -> None:
    config = load_config({"db_name": "x", "capabilities": "remote_sql, shell"}, {})
    assert config.capabilities == ("remote_sql", "shell")


@pytest.mark.parametrize(
    ("flags", "env", "key", "fragment"),
    [
        ({}, {}, "db_name", "is required"),
        ({"db_name": "x", "poll_time": "soon"}, {}, "poll_time", "'soon'"),
        ({"db_name": "x", "poll_time": "0"}, {}, "poll_time", "more than 0"),
        ({"db_name": "x"}, {"PGAUTOMATOR_DB_PORT": "99999"}, "db_port", "PGAUTOMATOR_DB_PORT"),
        ({"db_name": "x", "log_level": "4"}, {}, "log_level", "between 0 and 3"),
        ({"db_name": "x", "max_parallel": "0"}, {}, "max_parallel", "between 1 and 1000"),
        ({"db_name": "x", "capabilities": "shell,sql"}, {}, "capabilities", "'sql'"),
        ({"db_name": "x", "capabilities": ""}, {}, "capabilities", "at least one"),
        ({"db_name": "x", "shell": "zsh"}, {}, "shell", "sh, bash, cmd, powershell"),
        ({"db_name": "x", "retry_on_crash": "maybe"}, {}, "retry_on_crash", "yes/no"),
        ({"db_name": "x", "name": " "}, {}, "name", "must not be empty"),
        ({"db_name": "x", "work_dir": "/nonexistent/dir"}, {}, "work_dir", "does not exist"),
        ({"db_name": "x", "grace_period": "-1"}, {}, "grace_period", "at least 0"),
    ],
)
def test_bad_values_name_the_key(
    flags: dict[str, object | None], env: dict[str, str], key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(flags, env)
    assert info.value.key == key
    assert str(info.value).startswith(key + ":")
    assert fragment in str(info.value)


def test_flag_errors_name_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"max_parallel: .* \(from --max-parallel\)"):
        load_config({"db_name": "x", "max_parallel": "many"}, {})


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, "db_name: x\npol_time: 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(NO_FLAGS, {}, path)
    assert info.value.key == "pol_time"
    assert "unknown setting" in str(info.value)
    assert path in str(info.value)


@pytest.mark.parametrize("key", ["password", "db_password"])
def test_password_in_file_is_refused(tmp_path: Path, key: str) -> None:
    path = write(tmp_path, f"db_name: x\n{key}: secret\n")
    with pytest.raises(ConfigError) as info:
        load_config(NO_FLAGS, {}, path)
    assert info.value.key == key
    assert "PGPASSWORD" in str(info.value)
    assert "secret" not in str(info.value)


def test_bad_value_in_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "db_name: x\nmax_parallel: lots\n")
    with pytest.raises(
        ConfigError, match=r"^max_parallel: must be an integer, not 'lots' \(from .*agent.yaml\)"
    ):
        load_config(NO_FLAGS, {}, path)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("db_name: [unclosed\n", "not valid YAML"), ("- a\n- b\n", "must hold a mapping")],
)
def test_malformed_file(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(NO_FLAGS, {}, write(tmp_path, text))
    assert info.value.key == "config"
    assert fragment in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config: cannot read .*missing.yaml"):
        load_config(NO_FLAGS, {}, str(tmp_path / "missing.yaml"))


def test_service_instead_of_db_name() -> None:
    assert load_config({"db_service": "jobs"}, {}).db_service == "jobs"


def test_describe_round_trips_through_the_file(tmp_path: Path) -> None:
    config = load_config({"db_name": "x", "db_port": "6000", "capabilities": "shell"}, {})
    again = load_config(NO_FLAGS, {}, write(tmp_path, config.describe()))
    assert again == config


def test_a_relative_work_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Kept relative, it was resolved again in the step's own temporary
    # directory: every shell and DB-API step failed ("cannot open wd/...").
    (tmp_path / "wd").mkdir()
    monkeypatch.chdir(tmp_path)
    config = load_config({"db_name": "x", "work_dir": "wd"}, {})
    assert config.work_dir == str(tmp_path / "wd")
    result = run_shell(shell_step("pwd"), StepContext(work_dir=config.work_dir))
    assert result.succeeded, result.error
    assert (result.output or "").startswith(str(tmp_path / "wd" / "pgautomator-"))

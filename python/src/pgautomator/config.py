"""Agent configuration: a YAML file, then PGAUTOMATOR_* environment variables,
then command-line flags, each overriding the one before.

Every value is checked at start; a wrong or missing one raises ConfigError
naming the key and where the value came from, so the agent stops before it
touches the database.  The database password is never a setting: libpq reads
it from PGPASSWORD, ~/.pgpass or a service file.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "PGAUTOMATOR_"
CONFIG_ENV = "PGAUTOMATOR_CONFIG"
SHELLS = ("sh", "bash", "cmd", "powershell")
CAPABILITIES = ("shell", "remote_sql")
LOG_LEVELS = {0: "DEBUG", 1: "INFO", 2: "WARNING", 3: "ERROR"}
# Keys that look like a password: refused in the file so that it never holds one.
SECRET_KEYS = ("password", "db_password", "passwd", "db_passwd")


class ConfigError(Exception):
    """A setting is wrong or missing; the message names the key."""

    def __init__(self, key: str, message: str, source: str | None = None) -> None:
        self.key = key
        self.source = source
        where = f" (from {source})" if source else ""
        super().__init__(f"{key}: {message}{where}")


def default_shell() -> str:
    return "cmd" if sys.platform == "win32" else "sh"


@dataclass(frozen=True)
class AgentConfig:
    """The agent's effective settings."""

    db_name: str | None = None
    db_host: str | None = None
    db_port: int | None = None
    db_user: str | None = None
    db_service: str | None = None
    name: str = field(default_factory=socket.gethostname)
    capabilities: tuple[str, ...] = CAPABILITIES
    max_parallel: int = 4
    shell: str = field(default_factory=default_shell)
    poll_time: float = 10.0
    heartbeat_interval: float = 5.0
    retry_on_crash: bool = True
    log_level: int = 1
    grace_period: float = 30.0
    kill_timeout: float = 5.0
    output_limit: int = 64 * 1024
    work_dir: str | None = None
    dbapi_drivers: tuple[str, ...] = ()

    def describe(self) -> str:
        """The settings as YAML (nothing secret is in them)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["capabilities"] = list(self.capabilities)
        data["dbapi_drivers"] = list(self.dbapi_drivers)
        return yaml.safe_dump(data, sort_keys=False)


# --- value parsers: each takes a YAML value or a string and returns the typed value ---


def _text(value: object) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ValueError(f"must be a string, not {value!r}")
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _integer(low: int, high: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError(f"must be an integer, not {value!r}")
        try:
            number = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            raise ValueError(f"must be an integer, not {value!r}") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}, not {number}")
        return number

    return parse


def _seconds(low: float, high: float, allow_low: bool = False) -> Callable[[object], float]:
    def parse(value: object) -> float:
        if isinstance(value, bool):
            raise ValueError(f"must be a number of seconds, not {value!r}")
        try:
            number = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
        except ValueError:
            raise ValueError(f"must be a number of seconds, not {value!r}") from None
        if number != number or number > high or number < low or (number == low and not allow_low):
            bound = f"at least {low:g}" if allow_low else f"more than {low:g}"
            raise ValueError(f"must be {bound} and at most {high:g} seconds, not {value!r}")
        return number

    return parse


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be yes/no (true/false, on/off, 1/0), not {value!r}")


def _choice(allowed: tuple[str, ...]) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = _text(value).lower()
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, not {value!r}")
        return text

    return parse


def _capabilities(value: object) -> tuple[str, ...]:
    items: list[object]
    if isinstance(value, str):
        items = [part for part in value.replace(" ", ",").split(",") if part]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"must be a list of step kinds, not {value!r}")
    if not items:
        raise ValueError(f"must name at least one of {', '.join(CAPABILITIES)}")
    parsed: list[str] = []
    for item in items:
        kind = str(item).strip().lower()
        if kind not in CAPABILITIES:
            raise ValueError(f"unknown step kind {item!r} (use {', '.join(CAPABILITIES)})")
        if kind not in parsed:
            parsed.append(kind)
    return tuple(parsed)


def _modules(value: object) -> tuple[str, ...]:
    items: list[object]
    if isinstance(value, str):
        items = [part for part in value.replace(" ", ",").split(",") if part]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"must be a list of Python module names, not {value!r}")
    names = []
    for item in items:
        name = str(item).strip()
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", name):
            raise ValueError(f"{item!r} is not a Python module name")
        names.append(name)
    return tuple(dict.fromkeys(names))


def _name(value: object) -> str:
    text = _text(value)
    if len(text) > 200:
        raise ValueError("must be at most 200 characters")
    return text


def _directory(value: object) -> str:
    text = _text(value)
    if not Path(text).is_dir():
        raise ValueError(f"directory {text!r} does not exist")
    # Absolute: a step's process runs in its temporary directory, where a
    # relative path would be resolved again.
    return os.path.abspath(text)


PARSERS: dict[str, Callable[[object], Any]] = {
    "db_name": _text,
    "db_host": _text,
    "db_port": _integer(1, 65535),
    "db_user": _text,
    "db_service": _text,
    "name": _name,
    "capabilities": _capabilities,
    "max_parallel": _integer(1, 1000),
    "shell": _choice(SHELLS),
    "poll_time": _seconds(0, 3600),
    "heartbeat_interval": _seconds(0, 60),
    "retry_on_crash": _boolean,
    "log_level": _integer(0, 3),
    "grace_period": _seconds(0, 86400, allow_low=True),
    "kill_timeout": _seconds(0, 3600),
    "output_limit": _integer(1024, 64 * 1024 * 1024),
    "work_dir": _directory,
    "dbapi_drivers": _modules,
}
KEYS = tuple(PARSERS)


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


def read_file(path: str) -> dict[str, object]:
    """The settings of a YAML file: a mapping of known keys."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("config", f"{path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("config", f"{path} must hold a mapping of settings, not {type(data).__name__}")
    settings: dict[str, object] = {}
    for key, value in data.items():
        skey = str(key)
        if skey.lower() in SECRET_KEYS:
            raise ConfigError(
                skey,
                "passwords do not belong in the config file: use PGPASSWORD, ~/.pgpass or a service file",
                path,
            )
        if skey not in PARSERS:
            raise ConfigError(skey, f"unknown setting (known: {', '.join(KEYS)})", path)
        if value is not None:
            settings[skey] = value
    return settings


def load_config(
    flags: Mapping[str, object | None],
    environ: Mapping[str, str],
    config_path: str | None = None,
) -> AgentConfig:
    """Merges file < environment < flags and checks every value.

    `flags` maps setting keys to values given on the command line (None: not
    given); `config_path` falls back to PGAUTOMATOR_CONFIG.
    """
    raw: dict[str, tuple[object, str]] = {}
    path = config_path or environ.get(CONFIG_ENV) or None
    if path:
        for key, value in read_file(path).items():
            raw[key] = (value, path)
    for key in KEYS:
        if env_name(key) in environ and environ[env_name(key)] != "":
            raw[key] = (environ[env_name(key)], env_name(key))
    for key, value in flags.items():
        if key not in PARSERS:
            raise ConfigError(key, "unknown setting")
        if value is not None:
            raw[key] = (value, "--" + key.replace("_", "-"))

    values: dict[str, Any] = {}
    for key, (value, source) in raw.items():
        try:
            values[key] = PARSERS[key](value)
        except ValueError as exc:
            raise ConfigError(key, str(exc), source) from None
    if "db_name" not in values and "db_service" not in values:
        raise ConfigError(
            "db_name",
            "is required: set db_name in the config file, PGAUTOMATOR_DB_NAME or --db-name "
            "(or db_service naming a service that sets dbname)",
        )
    return AgentConfig(**values)


def conninfo_params(config: AgentConfig) -> dict[str, str]:
    """libpq parameters for the agent's own connection (no password)."""
    params = {
        "dbname": config.db_name,
        "host": config.db_host,
        "port": str(config.db_port) if config.db_port is not None else None,
        "user": config.db_user,
        "service": config.db_service,
    }
    return {key: value for key, value in params.items() if value is not None}

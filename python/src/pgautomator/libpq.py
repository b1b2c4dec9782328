"""libpq connection defaults shared by the agent's own connections and
remote_sql steps: TCP keepalives and a user timeout, so that a dead network
ends in an error instead of a query that waits for ever."""

from __future__ import annotations

import configparser
import functools
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from psycopg import pq

# A silent peer is given up after about 25 s: 10 s idle, then 3 probes 5 s
# apart; data left unacknowledged for 25 s ends the connection too.
TCP_DEFAULTS = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "25000",
}


@functools.cache
def _known_keywords() -> frozenset[str]:
    """The parameters this libpq knows (tcp_user_timeout needs 12+)."""
    return frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults())


def with_tcp_defaults(params: dict[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`params` plus TCP_DEFAULTS for what neither they nor their service
    file (libpq gives explicit parameters precedence over it) set."""
    env = os.environ if environ is None else environ
    service = params.get("service") or env.get("PGSERVICE")
    taken = service_keys(str(service), env) if service else set()
    known = _known_keywords()
    for key, value in TCP_DEFAULTS.items():
        if key in known and key not in taken:
            params.setdefault(key, value)
    return params


def service_keys(service: str, environ: Mapping[str, str]) -> set[str]:
    """The keys the service's section sets, from the first file that has it,
    as libpq looks: PGSERVICEFILE (or the user's file), then PGSYSCONFDIR's."""
    if "PGSERVICEFILE" in environ:
        user_file = Path(environ["PGSERVICEFILE"])
    elif sys.platform == "win32":
        user_file = Path(environ.get("APPDATA", "")) / "postgresql" / ".pg_service.conf"
    else:
        user_file = Path.home() / ".pg_service.conf"
    files = [user_file]
    if "PGSYSCONFDIR" in environ:
        files.append(Path(environ["PGSYSCONFDIR"]) / "pg_service.conf")
    for path in files:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(path.read_text(encoding="utf-8", errors="replace"))
        except (OSError, configparser.Error):
            continue
        if parser.has_section(service):
            return {key.strip().lower() for key in parser.options(service)}
    return set()

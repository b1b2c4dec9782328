"""One adapter per scheduler; each speaks that scheduler's own API."""

from __future__ import annotations

from compare.adapters.base import Adapter
from compare.adapters.pg_cron import PgCron
from compare.adapters.pgagent import PgAgent
from compare.adapters.pgautomator import Pgautomator
from compare.context import Context

__all__ = ["ADAPTERS", "Adapter", "make_adapters"]

ADAPTERS: dict[str, type[Adapter]] = {
    "pgautomator": Pgautomator,
    "pg_cron": PgCron,
    "pgagent": PgAgent,
}


def make_adapters(ctx: Context, names: list[str]) -> list[Adapter]:
    return [ADAPTERS[n](ctx) for n in names]

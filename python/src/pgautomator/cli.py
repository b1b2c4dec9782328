"""The `pgautomator` command. Subcommand `agent` runs the remote agent.

Exit status: 0 after a clean shutdown, 1 when the agent stopped on a lost or
impossible connection (retry_on_crash off), 2 for wrong or missing settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from pgautomator import __version__
from pgautomator.agent import Agent, StartupError
from pgautomator.config import CAPABILITIES, LOG_LEVELS, SHELLS, AgentConfig, ConfigError, load_config

EXIT_SETTINGS = 2

# Flags of `pgautomator agent`: (setting key, help). Each is also a YAML key
# and a PGAUTOMATOR_<KEY> environment variable.
AGENT_FLAGS = (
    ("db_host", "database host or socket directory"),
    ("db_port", "database port"),
    ("db_name", "database where the pgautomator extension is installed (required)"),
    ("db_user", "role to connect as (a member of pgautomator_agent)"),
    ("db_service", "libpq service name (pg_service.conf) for the connection"),
    ("name", "agent name, unique among agents; jobs name it for affinity (default: host name)"),
    ("capabilities", f"step kinds this agent runs, comma-separated ({','.join(CAPABILITIES)})"),
    ("max_parallel", "steps run at the same time (default 4)"),
    ("shell", f"default shell of shell steps ({', '.join(SHELLS)})"),
    ("poll_time", "seconds between checks for work when no NOTIFY came (default 10)"),
    ("heartbeat_interval", "seconds between heartbeats (default 5)"),
    ("retry_on_crash", "reconnect after a lost connection (yes) or exit with status 1 (no)"),
    ("log_level", "0 debug, 1 info, 2 warning, 3 error (default 1)"),
    ("grace_period", "seconds running steps may finish after SIGTERM (default 30)"),
    ("kill_timeout", "seconds between SIGTERM and SIGKILL of a step's processes (default 5)"),
    (
        "output_limit",
        "bytes of output kept per step, the tail (default 65536; the database keeps at most its own output_limit setting)",
    ),
    ("work_dir", "directory for the steps' temporary directories (default: system temp)"),
    ("dbapi_drivers", "DB-API modules remote_sql steps may use with dbapi:MODULE:ARGUMENT (default: none)"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgautomator", description="pgautomator client tools.")
    parser.add_argument("--version", action="version", version=f"pgautomator {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    agent = commands.add_parser(
        "agent",
        help="run a remote agent (shell and remote_sql steps)",
        description="Runs shell and remote_sql steps claimed from pgautomator. Settings come from the "
        "config file, then PGAUTOMATOR_* environment variables, then these flags (strongest). "
        "The password comes from PGPASSWORD, ~/.pgpass or a service file.",
    )
    agent.add_argument("-c", "--config", help="YAML config file (default: $PGAUTOMATOR_CONFIG)")
    agent.add_argument(
        "--check", action="store_true", help="print the effective settings and exit without connecting"
    )
    for key, text in AGENT_FLAGS:
        agent.add_argument("--" + key.replace("_", "-"), dest=key, default=None, metavar="VALUE", help=text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "agent":
        return run_agent(args)
    return EXIT_SETTINGS  # argparse rejects unknown commands before this


def run_agent(args: argparse.Namespace) -> int:
    flags = {key: getattr(args, key) for key, _ in AGENT_FLAGS}
    try:
        config = load_config(flags, os.environ, args.config)
    except ConfigError as exc:
        print(f"pgautomator agent: configuration error: {exc}", file=sys.stderr)
        return EXIT_SETTINGS
    if args.check:
        sys.stdout.write(config.describe())
        return 0
    _setup_logging(config)
    # libpq would give PGPASSWORD to every connection of this process, a
    # remote_sql step's to any host too: the agent's own connections get it
    # as a parameter, and the environment no longer has it.
    agent = Agent(config, password=os.environ.pop("PGPASSWORD", None))

    def on_signal(signo: int, _frame: FrameType | None) -> None:
        logging.getLogger("pgautomator.agent").info(
            "%s: %s", signal.Signals(signo).name, "killing steps" if agent.shutting_down else "shutting down"
        )
        agent.shutdown()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if sys.platform == "win32":  # what a Windows service manager or Ctrl-Break sends
        signal.signal(signal.SIGBREAK, on_signal)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        logging.getLogger("pgautomator.agent").warning(
            "running as root: shell steps run as root too; prefer an unprivileged user"
        )
    try:
        return agent.run()
    except StartupError as exc:
        print(f"pgautomator agent: {exc}", file=sys.stderr)
        return exc.status


def _setup_logging(config: AgentConfig) -> None:
    logging.basicConfig(
        level=LOG_LEVELS[config.log_level],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # psycopg's own debug output is noise at our debug level.
    logging.getLogger("psycopg").setLevel(
        max(logging.INFO, logging.getLevelName(LOG_LEVELS[config.log_level]))
    )

"""Packaging facts that must not drift apart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]


def _control_version() -> str:
    text = (ROOT / "pgautomator.control").read_text()
    match = re.search(r"^default_version\s*=\s*'([^']+)'", text, re.M)
    assert match, "default_version missing from pgautomator.control"
    return match.group(1)


def test_meta_json_matches_control_file() -> None:
    meta = json.loads((ROOT / "META.json").read_text())
    template = (ROOT / "META.json.in").read_text().replace("@VERSION@", _control_version())
    assert meta == json.loads(template), "META.json is stale: run make META.json"
    assert meta["provides"]["pgautomator"]["version"] == _control_version()


def test_installed_version_is_the_control_version(admin: psycopg.Connection) -> None:
    row = admin.execute("SELECT extversion FROM pg_extension WHERE extname = 'pgautomator'").fetchone()
    assert row == (_control_version(),)

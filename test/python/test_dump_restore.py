"""pg_dump of a database with the extension keeps its jobs, steps (with
go-to actions), schedules, links, history and changed settings, and
pg_restore brings them back."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

BINDIR = os.environ.get("PGAUTOMATOR_TEST_BINDIR", "")

SNAPSHOT = {
    "jobs": "SELECT name, run_as, overlap, timeout FROM pgautomator.jobs ORDER BY name",
    "steps": "SELECT job, position, name, on_success, on_failure, retries FROM pgautomator.steps"
    " ORDER BY job, position",
    "schedules": "SELECT name, summary FROM pgautomator.schedules ORDER BY name",
    "links": "SELECT j.name, s.name FROM pgautomator.job_schedule js"
    " JOIN pgautomator.job j ON j.id = js.job_id"
    " JOIN pgautomator.schedule s ON s.id = js.schedule_id ORDER BY 1, 2",
    "runs": "SELECT id, job, state, retry_of FROM pgautomator.runs ORDER BY id",
    "settings": "SELECT name, value, default_value, modified_by FROM pgautomator.settings ORDER BY name",
}


def _snapshot(conn: psycopg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {key: conn.execute(sql).fetchall() for key, sql in SNAPSHOT.items()}


@pytest.mark.skipif(not BINDIR, reason="needs PGAUTOMATOR_TEST_BINDIR from scripts/test.sh")
def test_dump_and_restore_keep_everything(admin: psycopg.Connection, dsn: str, tmp_path: Path) -> None:
    source, target = (f"t_dump_{uuid.uuid4().hex[:8]}" for _ in range(2))
    admin.execute(f"CREATE DATABASE {source}")
    admin.execute(f"CREATE DATABASE {target}")
    try:
        with psycopg.connect(dsn, dbname=source, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pgautomator CASCADE")
            conn.execute("SELECT pgautomator.create_job('etl', overlap => 'queue', timeout => '1 hour')")
            # The go-to target is added after the step pointing at it is
            # altered to use it: the pointing row is physically first.
            conn.execute("SELECT pgautomator.add_step('etl', 'load', 'SELECT 1')")
            conn.execute("SELECT pgautomator.add_step('etl', 'cleanup', 'SELECT 2')")
            conn.execute(
                "SELECT pgautomator.alter_step('etl', 'load', on_failure => 'cleanup', retries => 2)"
            )
            conn.execute(
                "SELECT pgautomator.create_schedule('nightly', 'daily', at_time => '02:00',"
                " timezone => 'UTC')"
            )
            conn.execute("SELECT pgautomator.attach_schedule('etl', 'nightly')")
            # History with a crash retry pointing at an older run that was updated later.
            conn.execute(
                "INSERT INTO pgautomator.run (job_id, owner, trigger, state) "
                "SELECT id, owner, 'manual', 'crashed' FROM pgautomator.job"
            )
            conn.execute(
                "INSERT INTO pgautomator.run (job_id, owner, trigger, state, retry_of) "
                "SELECT job_id, owner, 'crash_retry', 'succeeded', id FROM pgautomator.run"
            )
            conn.execute("UPDATE pgautomator.run SET message = 'crashed' WHERE retry_of IS NULL")
            # A changed setting survives; one changed and restored stays at its default.
            conn.execute("SELECT pgautomator.set_setting('history_retention', 'off')")
            conn.execute("SELECT pgautomator.set_setting('fire_batch', '50')")
            conn.execute("SELECT pgautomator.set_setting('fire_batch', NULL)")
            before = _snapshot(conn)
            assert [
                row[:3] for row in before["settings"] if row[0] in ("fire_batch", "history_retention")
            ] == [
                ("fire_batch", "200", "200"),
                ("history_retention", "off", "30 days"),
            ]
        dump = tmp_path / "db.dump"
        env = {**os.environ, "PGDATABASE": source}
        subprocess.run([f"{BINDIR}/pg_dump", "-Fc", "-f", str(dump)], check=True, env=env)
        restore = subprocess.run(
            [f"{BINDIR}/pg_restore", "--exit-on-error", "-d", target, str(dump)],
            env=env,
            capture_output=True,
            text=True,
        )
        assert restore.returncode == 0, restore.stderr
        with psycopg.connect(dsn, dbname=target, autocommit=True) as conn:
            assert _snapshot(conn) == before
            # Ids continue after the restored ones.
            new_job = conn.execute("SELECT pgautomator.create_job('after-restore')").fetchone()
            old_max = conn.execute(
                "SELECT max(id) FROM pgautomator.job WHERE name <> 'after-restore'"
            ).fetchone()
            assert new_job is not None and old_max is not None and new_job[0] > old_max[0]
    finally:
        admin.execute(f"DROP DATABASE {source} WITH (FORCE)")
        admin.execute(f"DROP DATABASE {target} WITH (FORCE)")

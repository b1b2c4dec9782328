"""The extension can be created, dropped without leftovers, and created again."""

from __future__ import annotations

import uuid

import psycopg


def _objects(conn: psycopg.Connection) -> int:
    row = conn.execute(
        """SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'pgautomator')
                + (SELECT count(*) FROM pg_proc WHERE proname LIKE '%pgautomator%')
                + (SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
                    WHERE e.extname = 'pgautomator')"""
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_create_drop_create_leaves_nothing(admin: psycopg.Connection, dsn: str) -> None:
    db = f"t_install_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {db}")
    try:
        with psycopg.connect(dsn, dbname=db, autocommit=True) as conn:
            before = _objects(conn)
            conn.execute("CREATE EXTENSION pgautomator CASCADE")
            conn.execute("SELECT pgautomator.create_job('j', run_as => 'postgres')")
            assert _objects(conn) > before
            conn.execute("DROP EXTENSION pgautomator")
            assert _objects(conn) == before
            # plpython3u stays (it was required, not owned); a second create works.
            conn.execute("CREATE EXTENSION pgautomator")
            row = conn.execute("SELECT count(*) FROM pgautomator.job").fetchone()
            assert row == (0,)
    finally:
        admin.execute(f"DROP DATABASE {db} WITH (FORCE)")

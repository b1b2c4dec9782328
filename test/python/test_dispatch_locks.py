"""Lock order between the public API and the dispatcher or a report: each
test forces one interleaving with explicit transactions and row locks (the
locks the paths themselves take, in their order), then checks that nothing
deadlocks and that the dispatcher's purge never waits behind a user.

Remote (shell) steps claimed by an agent of the test's own keep the
preloaded launcher out of these runs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from conftest import _dsn, scalar, wait_until

# Older than any history the other tests write, newer than history_retention.
OLD = "now() - interval '10 days'"
CUTOFF = "now() - interval '9 days'"


class Call:
    """A statement, or several in one transaction, run on its own connection
    in a thread: done, or waiting on a lock.  The result is the last one's."""

    def __init__(
        self, dsn: str, sql: str, params: tuple[Any, ...] = (), *more: tuple[str, tuple[Any, ...]]
    ) -> None:
        self.conn = psycopg.connect(dsn, autocommit=not more)
        self.pid = self.conn.info.backend_pid
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=([(sql, params), *more],))
        self.thread.start()

    def _run(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        try:
            for sql, params in statements:
                row = self.conn.execute(sql, params).fetchone()
                self.result = row[0] if row else None
            self.conn.commit()
        except BaseException as exc:  # re-raised by join()
            self.error = exc

    def waiting(self, admin: psycopg.Connection) -> bool:
        return bool(
            scalar(
                admin,
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock')",
                (self.pid,),
            )
        )

    def done_or_waiting(self, admin: psycopg.Connection) -> str:
        """Waits until the statement has ended or waits on a lock; says which."""
        return str(
            wait_until(
                "the statement to end or to wait on a lock",
                lambda: "done" if not self.thread.is_alive() else ("waiting" if self.waiting(admin) else ""),
            )
        )

    def join(self) -> Any:
        self.thread.join(timeout=90)
        assert not self.thread.is_alive(), "the statement never ended"
        self.conn.close()
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture
def agent(admin: psycopg.Connection) -> Iterator[tuple[int, str]]:
    """A remote agent of this test only (jobs name it as their agent)."""
    name = f"locks-{uuid.uuid4().hex[:8]}"
    agent_id = int(
        scalar(admin, "SELECT pgautomator.agent_register_v1(%s, 'test', '{shell}', 10, 'test', 1)", (name,))
    )
    yield agent_id, name
    admin.execute("SELECT pgautomator.drop_agent(%s::bigint)", (agent_id,))


@pytest.fixture
def job(admin: psycopg.Connection, agent: tuple[int, str]) -> Iterator[Callable[..., int]]:
    """Creates jobs bound to the test's agent with the given shell steps; drops what is left."""
    made: list[int] = []

    def make(*steps: dict[str, Any], kind: str = "shell") -> int:
        job_id = int(
            scalar(
                admin,
                "SELECT pgautomator.create_job(%s, run_as => 'postgres', agent => %s)",
                (f"locks-{uuid.uuid4().hex[:8]}", agent[1] if kind == "shell" else None),
            )
        )
        made.append(job_id)
        for step in steps:
            named = ", ".join(f"{k} => %({k})s" for k in step)
            admin.execute(
                f"SELECT pgautomator.add_step(%(job)s, {named}, kind => %(kind)s)",
                {"job": job_id, "kind": kind, **step},
            )
        return job_id

    yield make
    for job_id in made:
        admin.execute("DELETE FROM pgautomator.job WHERE id = %s", (job_id,))


def claim(admin: psycopg.Connection, agent_id: int, job_id: int) -> int:
    """Claims the job's ready step run for the agent."""
    rows = wait_until(
        "a step run to claim",
        lambda: [
            r
            for r in admin.execute(
                "SELECT step_run_id, job_id FROM pgautomator.agent_claim_v1(%s, 10)", (agent_id,)
            ).fetchall()
            if r[1] == job_id
        ],
    )
    return int(rows[0][0])


@pytest.mark.timeout(120)
def test_drop_step_waits_for_a_report_under_way(
    admin: psycopg.Connection, dsn: str, agent: tuple[int, str], job: Callable[..., int]
) -> None:
    # A failed attempt of "flaky" queues its next attempt, which references the step.
    job_id = job(
        {"name": "flaky", "code": "false", "retries": 1, "retry_interval": "1 hour"},
        {"name": "last", "code": "true"},
    )
    run_id = int(scalar(admin, "SELECT pgautomator.start_job(%s)", (job_id,)))
    step_run = claim(admin, agent[0], job_id)

    # The report under way: it has locked the run, then the step run (its order).
    with psycopg.connect(dsn) as reporter:
        reporter.execute("SELECT FROM pgautomator.run WHERE id = %s FOR UPDATE", (run_id,))
        reporter.execute("SELECT FROM pgautomator.step_run WHERE id = %s FOR UPDATE", (step_run,))
        drop = Call(dsn, "SELECT pgautomator.drop_step(%s, 'flaky')", (job_id,))
        assert drop.done_or_waiting(admin) == "waiting"
        # The report goes on: it queues the next attempt of "flaky".
        reporter.execute(
            "SELECT pgautomator.agent_report_v1(%s, %s, false, 1, NULL, NULL, 'exit 1', NULL)",
            (agent[0], step_run),
        )
        reporter.commit()
    drop.join()

    rows = admin.execute(
        """SELECT step_name, attempt, state,
                  NOT EXISTS (SELECT FROM pgautomator.step s WHERE s.id = step_id)
             FROM pgautomator.step_run WHERE run_id = %s ORDER BY id""",
        (run_id,),
    ).fetchall()
    assert rows == [("flaky", 1, "failed", True), ("flaky", 2, "queued", True)]
    assert scalar(admin, "SELECT count(*) FROM pgautomator.step WHERE job_id = %s", (job_id,)) == 1


@pytest.mark.timeout(120)
def test_step_changes_in_a_transaction_wait_for_a_report_under_way(
    admin: psycopg.Connection, dsn: str, agent: tuple[int, str], job: Callable[..., int]
) -> None:
    job_id = job(
        {"name": "flaky", "code": "false", "retries": 1, "retry_interval": "1 hour"},
        {"name": "last", "code": "true"},
    )
    run_id = int(scalar(admin, "SELECT pgautomator.start_job(%s)", (job_id,)))
    step_run = claim(admin, agent[0], job_id)
    with psycopg.connect(dsn) as reporter:
        reporter.execute("SELECT FROM pgautomator.run WHERE id = %s FOR UPDATE", (run_id,))
        reporter.execute("SELECT FROM pgautomator.step_run WHERE id = %s FOR UPDATE", (step_run,))
        # One user transaction: move a step (which locks the job's steps),
        # then stop the run (which waits for the run's lock).
        user = Call(
            dsn,
            "SELECT pgautomator.move_step(%s, 'flaky', 2)",
            (job_id,),
            ("SELECT pgautomator.stop_run(%s)", (run_id,)),
        )
        assert user.done_or_waiting(admin) == "waiting"
        # The report queues the next attempt of "flaky", which references it.
        reporter.execute(
            "SELECT pgautomator.agent_report_v1(%s, %s, false, 1, NULL, NULL, 'exit 1', NULL)",
            (agent[0], step_run),
        )
        reporter.commit()
    assert user.join() is True
    assert scalar(admin, "SELECT state FROM pgautomator.run WHERE id = %s", (run_id,)) == "stopped"
    assert [
        r[0]
        for r in admin.execute(
            "SELECT name FROM pgautomator.step WHERE job_id = %s ORDER BY position", (job_id,)
        ).fetchall()
    ] == ["last", "flaky"]


@pytest.mark.timeout(120)
def test_drop_step_never_waits_for_the_dispatcher(
    admin: psycopg.Connection, dsn: str, job: Callable[..., int]
) -> None:
    """History names its step by id, without a foreign key: dropping a step
    touches no step run, so it neither waits for a launcher pass that holds
    one nor makes that pass wait (the cycle a foreign key's check closed)."""
    job_id = job({"name": "one", "code": "SELECT 1"}, {"name": "two", "code": "SELECT 2"}, kind="sql")
    # Register the database agent unless the running launcher already did.
    admin.execute(
        "SELECT pgautomator._launcher_start(pg_backend_pid()) WHERE pgautomator._database_agent() IS NULL"
    )
    # A step run of the database agent whose worker never started (a minute ago).
    run_id = int(
        scalar(
            admin,
            """INSERT INTO pgautomator.run (job_id, owner, trigger, state, started_at)
               VALUES (%s, 'postgres', 'manual', 'running', now() - interval '2 minutes') RETURNING id""",
            (job_id,),
        )
    )
    row = admin.execute(
        """INSERT INTO pgautomator.step_run
                  (run_id, step_id, step_name, kind, state, agent_id, started_at)
           SELECT %s, s.id, s.name, 'sql', 'running', pgautomator._database_agent(),
                  now() - interval '2 minutes'
             FROM pgautomator.step s WHERE s.job_id = %s AND s.name = 'one'
           RETURNING step_id, id""",
        (run_id, job_id),
    ).fetchone()
    assert row is not None
    step_id, step_run = row
    # One launcher pass, one transaction: it records that no worker took the
    # step run (a write to it), then ticks, which marks it lost: a second
    # write to a row this transaction wrote.
    with psycopg.connect(dsn) as launcher:
        launcher.execute("SELECT pgautomator._launcher_started(%s, 0)", (step_run,))
        drop = Call(dsn, "SELECT pgautomator.drop_step(%s, 'one')", (job_id,))
        assert drop.done_or_waiting(admin) == "done"
        drop.join()
        launcher.execute("SELECT pgautomator._launcher_tick()")
        assert launcher.execute(
            "SELECT lost_since IS NOT NULL FROM pgautomator.step_run WHERE id = %s", (step_run,)
        ).fetchone() == (True,)
        launcher.commit()
    # The history keeps the dropped step's id and name; no step has that id.
    assert admin.execute(
        "SELECT step_id, step_name FROM pgautomator.step_run WHERE id = %s", (step_run,)
    ).fetchone() == (step_id, "one")
    assert [
        r[0]
        for r in admin.execute("SELECT name FROM pgautomator.step WHERE job_id = %s", (job_id,)).fetchall()
    ] == ["two"]


def old_runs(admin: psycopg.Connection, job_id: int, n: int) -> list[int]:
    """n finished runs of a job, ten days old, each the crash retry of the
    one before, with one step run each of the job's first step."""
    ids: list[int] = []
    for i in range(n):
        ids.append(
            int(
                scalar(
                    admin,
                    f"""INSERT INTO pgautomator.run
                               (job_id, owner, trigger, retry_of, state, started_at, finished_at)
                        VALUES (%s, 'postgres', %s, %s, %s, {OLD}, {OLD} + %s * interval '1 second')
                        RETURNING id""",
                    (
                        job_id,
                        "crash_retry" if ids else "manual",
                        ids[-1] if ids else None,
                        "crashed" if i < n - 1 else "succeeded",
                        i,
                    ),
                )
            )
        )
        admin.execute(
            f"""INSERT INTO pgautomator.step_run
                       (run_id, step_id, step_name, kind, state, started_at, finished_at)
                SELECT %s, s.id, s.name, s.kind, 'succeeded', {OLD}, {OLD}
                  FROM pgautomator.step s WHERE s.job_id = %s AND s.position = 1""",
            (ids[-1], job_id),
        )
    return ids


def purge(dsn: str) -> Call:
    """The dispatcher's retention batch (purge_history runs the same)."""
    return Call(dsn, f"SELECT pgautomator._purge_runs({CUTOFF}, 500)")


@pytest.mark.timeout(120)
def test_purge_does_not_wait_for_drop_step(
    admin: psycopg.Connection, dsn: str, job: Callable[..., int]
) -> None:
    job_id = job({"name": "one", "code": "true"}, {"name": "two", "code": "true"})
    runs = old_runs(admin, job_id, 2)
    with psycopg.connect(dsn) as user:
        # drop_step leaves the step's history alone (it names the step by id)
        user.execute("SELECT pgautomator.drop_step(%s, 'one')", (job_id,))
        batch = purge(dsn)
        assert batch.done_or_waiting(admin) == "done", "the purge waited behind a user's transaction"
        assert batch.join() == 2
        # The same transaction drops the job: its history goes too, with no deadlock.
        user.execute("SELECT pgautomator.drop_job(%s)", (job_id,))
        user.commit()
    assert scalar(admin, "SELECT count(*) FROM pgautomator.run WHERE id = ANY(%s)", (runs,)) == 0


@pytest.mark.timeout(120)
def test_purge_skips_runs_whose_retry_is_held(
    admin: psycopg.Connection, dsn: str, job: Callable[..., int]
) -> None:
    job_id = job({"name": "one", "code": "true"})
    first, retry = old_runs(admin, job_id, 2)
    with psycopg.connect(dsn) as user:
        # Purging the first run clears retry_of of its retry, which a stop_run
        # in an open transaction holds (it locks the run, ended or not).
        assert user.execute("SELECT pgautomator.stop_run(%s)", (retry,)).fetchone() == (False,)
        batch = purge(dsn)
        assert batch.done_or_waiting(admin) == "done", "the purge waited behind a user's transaction"
        assert batch.join() == 0  # the retry is held, and so the first run waits for a later batch
        user.rollback()
    assert scalar(admin, "SELECT count(*) FROM pgautomator.run WHERE id IN (%s, %s)", (first, retry)) == 2
    assert purge(dsn).join() == 2
    assert scalar(admin, "SELECT count(*) FROM pgautomator.run WHERE id IN (%s, %s)", (first, retry)) == 0


@pytest.mark.timeout(120)
def test_a_users_purge_skips_held_runs_instead_of_waiting(
    admin: psycopg.Connection, dsn: str, job: Callable[..., int], make_role: Callable[..., str]
) -> None:
    role = make_role("pgautomator_user")
    job_id = job({"name": "one", "code": "true"})
    first, retry = old_runs(admin, job_id, 2)
    admin.execute("UPDATE pgautomator.run SET owner = %s WHERE id IN (%s, %s)", (role, first, retry))
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT FROM pgautomator.step_run WHERE run_id = %s FOR UPDATE", (retry,))
        purge_as_user = Call(_dsn(user=role), "SELECT pgautomator.purge_history('1 day')")
        assert purge_as_user.done_or_waiting(admin) == "done", "a user's purge waited behind a held row"
        assert purge_as_user.join() == 1  # the first run; its retry, whose step run is held, stays
        holder.rollback()
    assert scalar(admin, "SELECT count(*) FROM pgautomator.run WHERE id IN (%s, %s)", (first, retry)) == 1
    assert Call(_dsn(user=role), "SELECT pgautomator.purge_history('1 day')").join() == 1
    assert scalar(admin, "SELECT count(*) FROM pgautomator.run WHERE id IN (%s, %s)", (first, retry)) == 0


@pytest.mark.timeout(300)
def test_reindex_never_deadlocks_with_agent_calls_or_stops(
    admin: psycopg.Connection, dsn: str, agent: tuple[int, str], job: Callable[..., int]
) -> None:
    # A REINDEX (not CONCURRENTLY) holds a table in SHARE mode and then locks
    # its indexes; an agent call that read the table through an index and
    # then writes it closed a cycle with it.  Before the agent calls, stop_run
    # and start_job locked their tables first, 13 agent calls and 5 REINDEXes
    # of 300 such runs ended in a deadlock.
    agent_id = agent[0]
    job_id = job({"name": "a", "code": "true"}, {"name": "b", "code": "true"})
    admin.execute(
        "SELECT pgautomator.alter_job(%s::bigint, overlap => 'parallel', max_parallel => 100)", (job_id,)
    )
    deadlocks_before = scalar(
        admin, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    )
    errors: list[str] = []
    done = threading.Event()

    def reindex() -> None:
        with psycopg.connect(dsn, autocommit=True) as other:
            other.execute("SET statement_timeout = '60s'")
            while not done.is_set():
                for table in ("run", "step_run", "agent"):
                    try:
                        other.execute(f"REINDEX TABLE pgautomator.{table}")
                    except psycopg.errors.DeadlockDetected as e:
                        errors.append(f"REINDEX TABLE {table}: {e}")

    runs: list[int] = []
    reindexing = threading.Thread(target=reindex)
    reindexing.start()
    try:
        with psycopg.connect(dsn, autocommit=True) as api:

            def call(sql: str, params: tuple[Any, ...]) -> list[Any]:
                try:
                    return api.execute(sql, params).fetchall()
                except psycopg.errors.DeadlockDetected as e:
                    errors.append(f"{sql.split('(')[0]}: {e}")
                    return []

            for _ in range(100):
                runs += [
                    r[0]
                    for r in call(
                        "SELECT pgautomator.start_job(%s::bigint) FROM generate_series(1, 3)", (job_id,)
                    )
                ]
            for run_id in runs[::10]:
                call("SELECT pgautomator.stop_run(%s)", (run_id,))
            active = (
                "SELECT count(*) FROM pgautomator.run WHERE id = ANY(%s) AND state IN ('queued', 'running')"
            )

            def work() -> bool:
                call("SELECT pgautomator.agent_heartbeat_v1(%s)", (agent_id,))
                for (step_run_id,) in call(
                    "SELECT step_run_id FROM pgautomator.agent_claim_v1(%s, 10)", (agent_id,)
                ):
                    call("SELECT pgautomator.agent_output_v1(%s, %s, 'out')", (agent_id, step_run_id))
                    call(
                        "SELECT pgautomator.agent_report_v1(%s, %s, true, 0, NULL, 'out', NULL, NULL)",
                        (agent_id, step_run_id),
                    )
                return bool(errors) or scalar(admin, active, (runs,)) == 0

            wait_until("the runs to end", work)
    finally:
        done.set()
        reindexing.join(timeout=90)
    assert errors == [], errors[:3]
    assert len(runs) == 300
    states: dict[str, int] = dict(
        admin.execute(
            "SELECT state, count(*) FROM pgautomator.run WHERE id = ANY(%s) GROUP BY state", (runs,)
        ).fetchall()
    )
    assert states == {"succeeded": 270, "stopped": 30}, states
    assert (
        scalar(admin, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        == deadlocks_before
    )

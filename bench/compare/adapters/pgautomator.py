"""pgautomator: jobs, steps and schedule objects through the SQL API; the C
launcher wakes at the next due instant (or on NOTIFY), runs the dispatcher
pass (_launcher_tick) and starts one background worker per ready SQL step,
at most pgautomator.max_workers at once.
"""

from __future__ import annotations

from datetime import datetime

from compare.adapters.base import Adapter, Probe
from compare.model import Outcome

# What the benchmark needs from the extension: the execution issue (launcher,
# dispatcher, start_job) and the schedule engine.
REQUIRED = (
    "pgautomator.create_job",
    "pgautomator.add_step",
    "pgautomator.create_schedule",
    "pgautomator.attach_schedule",
    "pgautomator.start_job",
    "pgautomator._launcher_tick",
)


class Pgautomator(Adapter):
    name = "pgautomator"
    minute_only = False
    exact_second = True
    has_steps = True

    def unavailable(self) -> str | None:
        if self.one("SELECT extversion FROM pg_extension WHERE extname = 'pgautomator'") is None:
            return "the pgautomator extension is not created in this database"
        missing = [
            f
            for f in REQUIRED
            if not self.one(
                "SELECT count(*) FROM pg_proc"
                " WHERE proname = %s AND pronamespace = 'pgautomator'::regnamespace",
                (f.split(".", 1)[1],),
            )
        ]
        if missing:
            return "this build of pgautomator lacks " + ", ".join(missing) + " (execution not merged yet)"
        if self.one("SELECT current_setting('pgautomator.database', true)") != self.one(
            "SELECT current_database()"
        ):
            return "pgautomator.database does not name this database (its launcher works elsewhere)"
        if not self.one("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgautomator launcher'"):
            return "the pgautomator launcher is not running (shared_preload_libraries)"
        if not self.one(
            "SELECT count(*) FROM pg_roles WHERE rolname = %s AND rolcanlogin", (self._run_as(),)
        ):
            return f"the run-as role {self._run_as()} does not exist"
        return None

    def _run_as(self) -> str:
        return self.ctx.options.run_as

    def version(self) -> str:
        return str(self.one("SELECT extversion FROM pg_extension WHERE extname = 'pgautomator'"))

    def settings(self) -> dict[str, str]:
        gucs = {
            str(n): str(s)
            for n, s in self.q(
                "SELECT name, setting || coalesce(' ' || unit, '') FROM pg_settings"
                " WHERE name LIKE 'pgautomator.%' ORDER BY 1"
            )
        }
        try:
            rows = self.q("SELECT name, value FROM pgautomator.settings ORDER BY 1")
        except Exception:
            rows = []
        gucs.update({f"setting {n}": str(v) for n, v in rows})
        return gucs

    def create_jobs(self, tag: str, codes: list[str]) -> None:
        names = [f"{tag}-{i}" for i in range(1, len(codes) + 1)]
        self.q(
            "SELECT count(pgautomator.create_job(n, run_as => %s)) FROM unnest(%s::text[]) AS n",
            (self._run_as(), names),
        )
        self.q(
            "SELECT count(pgautomator.add_step(n, 'insert', c))"
            " FROM unnest(%s::text[], %s::text[]) AS t(n, c)",
            (names, codes),
        )

    def _attach(self, tag: str, schedule_sql: str, params: tuple[object, ...]) -> None:
        """Creates one schedule per job (as the peers have) and attaches it, in one transaction."""
        names = self.q("SELECT name FROM pgautomator.job WHERE name LIKE %s ORDER BY id", (f"{tag}-%",))
        with self.conn.transaction():
            self.q(
                f"SELECT count(pgautomator.attach_schedule(n, {schedule_sql})) FROM unnest(%s::text[]) AS n",
                (*params, [str(r[0]) for r in names]),
            )

    def arm_at(self, tag: str, at: datetime, exact: bool) -> None:
        if exact:
            self._attach(
                tag,
                "pgautomator.create_schedule(n, 'once', on_date => %s, at_time => %s, timezone => 'UTC')",
                (at.date(), at.time().replace(tzinfo=None)),
            )
        else:
            self._attach(
                tag,
                "pgautomator.create_schedule(n, 'cron', cron => %s, timezone => 'UTC')",
                (f"{at.minute} {at.hour} {at.day} {at.month} *",),
            )

    def create_recurring(self, tag: str, codes: list[str]) -> str:
        self.create_jobs(tag, codes)
        self._attach(
            tag,
            "pgautomator.create_schedule(n, 'daily', every_n => 1, every_unit => 'second',"
            " timezone => 'UTC')",
            (),
        )
        return "1 second"

    def create_multistep(self, tag: str, codes: list[str]) -> None:
        name = f"{tag}-1"
        self.q("SELECT pgautomator.create_job(%s, run_as => %s)", (name, self._run_as()))
        self.q(
            "SELECT count(pgautomator.add_step(%s, format('step-%%s', lpad(o::text, 4, '0')), c))"
            " FROM unnest(%s::text[]) WITH ORDINALITY AS t(c, o)",
            (name, codes),
        )

    def trigger(self, tag: str) -> None:
        self.q("SELECT pgautomator.start_job(%s)", (f"{tag}-1",))

    def outcomes(self, tag: str, since: datetime) -> Outcome:
        row = self.q(
            """SELECT count(*) FILTER (WHERE r.finished_at IS NOT NULL),
                      count(*) FILTER (WHERE r.state IN ('failed', 'crashed', 'stopped')),
                      extract(epoch FROM max(r.finished_at) - %s)::float8,
                      (array_agg(r.message) FILTER (WHERE r.state IN ('failed', 'crashed', 'stopped')))[1:3]
                 FROM pgautomator.run r JOIN pgautomator.job j ON j.id = r.job_id
                WHERE j.name LIKE %s AND r.state <> 'skipped'""",
            (since, f"{tag}-%"),
        )[0]
        return Outcome(int(row[0]), int(row[1]), row[2], [str(m) for m in row[3] or []])

    def fire_instants(self, tag: str) -> dict[int, list[datetime]]:
        out: dict[int, list[datetime]] = {}
        for no, at in self.q(
            """SELECT split_part(j.name, '-', -1)::int, r.scheduled_at
                 FROM pgautomator.run r JOIN pgautomator.job j ON j.id = r.job_id
                WHERE j.name LIKE %s AND r.started_at IS NOT NULL AND r.scheduled_at IS NOT NULL
                ORDER BY r.scheduled_at""",
            (f"{tag}-%",),
        ):
            out.setdefault(int(no), []).append(at)
        return out

    def drop(self, tag: str) -> None:
        # Jobs take their steps, links and history with them; schedules are
        # objects of their own.
        self.q("DELETE FROM pgautomator.job WHERE name LIKE %s", (f"{tag}-%",))
        self.q("DELETE FROM pgautomator.schedule WHERE name LIKE %s", (f"{tag}-%",))

    def bulk_jobs(self, tag: str, n: int, hour: int) -> None:
        # Rows as create_job/add_step/create_schedule/attach_schedule write
        # them, inserted in bulk (n API calls would take minutes at 100,000);
        # next_fire_at is what _refresh_next_fire computes for these crons.
        with self.conn.transaction():
            self.q(
                """INSERT INTO pgautomator.job (name, owner, run_as)
                   SELECT %s || '-' || i, current_user, %s FROM generate_series(1, %s) AS i""",
                (tag, self._run_as(), n),
            )
            self.q(
                """INSERT INTO pgautomator.step (job_id, position, name, code)
                   SELECT id, 1, 'one', 'SELECT 1' FROM pgautomator.job WHERE name LIKE %s""",
                (f"{tag}-%",),
            )
            self.q(
                """INSERT INTO pgautomator.schedule (name, owner, frequency, cron, timezone)
                   SELECT %s || '-' || i, current_user, 'cron', format('%%s %%s * * *', i %% 60, %s), 'UTC'
                     FROM generate_series(1, %s) AS i""",
                (tag, hour, n),
            )
            self.q(
                """INSERT INTO pgautomator.job_schedule (job_id, schedule_id, next_fire_at)
                   SELECT j.id, s.id,
                          date_trunc('day', now()) + make_interval(hours => %s,
                              mins => split_part(s.cron, ' ', 1)::int)
                          + CASE WHEN date_trunc('day', now()) + make_interval(hours => %s,
                                      mins => split_part(s.cron, ' ', 1)::int) <= now()
                                 THEN interval '1 day' ELSE interval '0' END
                     FROM pgautomator.job j JOIN pgautomator.schedule s ON s.name = j.name
                    WHERE j.name LIKE %s""",
                (hour, hour, f"{tag}-%"),
            )
        self.q("ANALYZE pgautomator.job_schedule")

    def bulk_history(self, rows: int) -> str:
        half = rows // 2
        with self.conn.transaction():
            ids = self.one("SELECT array_agg(id ORDER BY id) FROM pgautomator.job WHERE name LIKE 'scale%'")
            if not ids:
                raise RuntimeError("bulk_history needs jobs to refer to")
            # Finished runs of the last days (inside history_retention, so the
            # dispatcher's purge leaves them alone), one step run each.
            self.q(
                """INSERT INTO pgautomator.run (job_id, owner, trigger, started_by, state, queued_at,
                                                started_at, finished_at)
                   SELECT (%s::bigint[])[1 + i %% %s], current_user, 'manual', current_user, 'succeeded',
                          now() - i * interval '20 ms', now() - i * interval '20 ms',
                          now() - i * interval '20 ms' + interval '5 ms'
                     FROM generate_series(1, %s) AS i""",
                (ids, len(ids), half),
            )
            self.q(
                """INSERT INTO pgautomator.step_run (run_id, step_name, kind, state, queued_at, started_at,
                                                     finished_at, rows_affected)
                   SELECT id, 'one', 'sql', 'succeeded', queued_at, started_at, finished_at, 1
                     FROM pgautomator.run WHERE job_id = ANY(%s)""",
                (ids,),
            )
        self.q("ANALYZE pgautomator.run")
        self.q("ANALYZE pgautomator.step_run")
        return f"{half} rows in pgautomator.run + {half} in pgautomator.step_run"

    def clear_history(self) -> None:
        self.q("TRUNCATE pgautomator.step_run, pgautomator.run CASCADE")

    def probes(self) -> list[Probe]:
        batch = self.one("SELECT value FROM pgautomator.settings WHERE name = 'fire_batch'") or "200"
        return [
            Probe(
                "_launcher_tick()",
                "SELECT pgautomator._launcher_tick()",
                False,
                "one whole dispatcher pass (fires, queue, timeouts, crashes, retention): more work "
                "than either peer's poll, run at each due instant or wake-up, at most every "
                "pgautomator.max_sleep when idle",
            ),
            Probe(
                "due query",
                "SELECT js.job_id, js.schedule_id, js.next_fire_at FROM pgautomator.job_schedule js"
                f" WHERE js.next_fire_at <= now() ORDER BY js.next_fire_at LIMIT {int(batch)}",
                True,
                "the query inside the pass that finds due (job, schedule) pairs; "
                "comparable to pgAgent's poll query",
            ),
            *self._tick_parts(),
        ]

    def _tick_parts(self) -> list[Probe]:
        """The passes _launcher_tick() is made of, to see which one costs."""
        names = [
            str(r[0])
            for r in self.q(
                "SELECT proname FROM pg_proc WHERE pronamespace = 'pgautomator'::regnamespace"
                " AND proname LIKE '\\_dispatch\\_%%' AND pronargs = 1"
                " AND proargtypes[0] = 'timestamptz'::regtype ORDER BY 1"
            )
        ]
        return [
            Probe(f"{n}()", f"SELECT pgautomator.{n}(now())", False, "part of _launcher_tick()", part=True)
            for n in names
        ]

    def scheduler_pids(self) -> tuple[list[int], list[int]]:
        pids = [
            int(r[0])
            for r in self.q("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgautomator launcher'")
        ]
        return pids, []

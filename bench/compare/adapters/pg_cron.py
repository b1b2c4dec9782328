"""pg_cron 1.4.2: cron.schedule() jobs of one command each, minute granularity.

pg_cron has no steps and no seconds in 1.4.2 (seconds came with 1.5). Its
launcher keeps the job list in memory, reloads it when cron.job changes, and
at each minute starts the due commands, at most cron.max_running_jobs at once.
"""

from __future__ import annotations

from datetime import datetime

from compare.adapters.base import Adapter, Probe
from compare.context import Context, cron_at
from compare.model import Outcome


class PgCron(Adapter):
    name = "pg_cron"
    minute_only = True
    exact_second = False
    has_steps = False

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._pending: dict[str, list[str]] = {}

    def unavailable(self) -> str | None:
        if self.one("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'") is None:
            loaded = "pg_cron" in str(self.one("SHOW shared_preload_libraries"))
            return (
                "pg_cron is not created in this database"
                + ("" if loaded else " (and not in shared_preload_libraries of this cluster)")
                + "; make bench sets up a cluster with it"
            )
        db = self.one("SELECT current_setting('cron.database_name', true)")
        if db != self.one("SELECT current_database()"):
            return f"cron.database_name is {db!r}, not this database"
        if not self.one("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher'"):
            return "the pg_cron launcher is not running"
        return None

    def version(self) -> str:
        return str(self.one("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'"))

    def settings(self) -> dict[str, str]:
        return {
            str(n): str(s)
            for n, s in self.q("SELECT name, setting FROM pg_settings WHERE name LIKE 'cron.%' ORDER BY 1")
        }

    # pg_cron has no unscheduled job: cron.schedule() both creates and arms.
    def create_jobs(self, tag: str, codes: list[str]) -> None:
        self._pending[tag] = codes

    def arm_at(self, tag: str, at: datetime, exact: bool) -> None:
        codes = self._pending.pop(tag)
        names = [f"{tag}-{i}" for i in range(1, len(codes) + 1)]
        # One statement, one transaction: the launcher sees all jobs at once.
        self.q(
            "SELECT count(cron.schedule(n, %s, c)) FROM unnest(%s::text[], %s::text[]) AS t(n, c)",
            (cron_at(at), names, codes),
        )

    def create_recurring(self, tag: str, codes: list[str]) -> str:
        names = [f"{tag}-{i}" for i in range(1, len(codes) + 1)]
        self.q(
            "SELECT count(cron.schedule(n, '* * * * *', c)) FROM unnest(%s::text[], %s::text[]) AS t(n, c)",
            (names, codes),
        )
        return "1 minute"

    def create_multistep(self, tag: str, codes: list[str]) -> None:
        raise NotImplementedError("pg_cron has no steps")

    def trigger(self, tag: str) -> None:
        raise NotImplementedError("pg_cron cannot start a job by hand")

    def outcomes(self, tag: str, since: datetime) -> Outcome:
        row = self.q(
            """SELECT count(*) FILTER (WHERE d.status IN ('succeeded', 'failed')),
                      count(*) FILTER (WHERE d.status = 'failed'),
                      extract(epoch FROM max(d.end_time) - %s)::float8,
                      (array_agg(d.return_message) FILTER (WHERE d.status = 'failed'))[1:3]
                 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                WHERE j.jobname LIKE %s AND d.start_time >= %s - interval '1 minute'""",
            (since, f"{tag}-%", since),
        )[0]
        return Outcome(int(row[0]), int(row[1]), row[2], list(row[3] or []))

    def fire_instants(self, tag: str) -> dict[int, list[datetime]]:
        # pg_cron records no intended instant: its runs start at a minute
        # boundary plus the lag, and lags stay far below a minute here.
        out: dict[int, list[datetime]] = {}
        for no, at in self.q(
            """SELECT split_part(j.jobname, '-', -1)::int, date_trunc('minute', d.start_time)
                 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                WHERE j.jobname LIKE %s ORDER BY d.start_time""",
            (f"{tag}-%",),
        ):
            out.setdefault(int(no), []).append(at)
        return out

    def drop(self, tag: str) -> None:
        self.q(
            """DELETE FROM cron.job_run_details WHERE jobid IN
                 (SELECT jobid FROM cron.job WHERE jobname LIKE %s)""",
            (f"{tag}-%",),
        )
        self.q("DELETE FROM cron.job WHERE jobname LIKE %s", (f"{tag}-%",))

    def bulk_jobs(self, tag: str, n: int, hour: int) -> None:
        # Rows as cron.schedule() writes them, in one statement (faster than
        # n calls; the statement trigger reloads the launcher's cache once).
        self.q(
            """INSERT INTO cron.job (schedule, command, nodename, nodeport, jobname)
               SELECT format('%%s %%s * * *', i %% 60, %s), 'SELECT 1',
                      current_setting('cron.host'), current_setting('port')::int, %s || '-' || i
                 FROM generate_series(1, %s) AS i""",
            (hour, tag, n),
        )

    def bulk_history(self, rows: int) -> str:
        # Runs of the scale jobs (so dropping those jobs removes them too).
        ids = self.one("SELECT array_agg(jobid ORDER BY jobid) FROM cron.job WHERE jobname LIKE 'scale%'")
        if not ids:
            raise RuntimeError("bulk_history needs jobs to refer to")
        self.q(
            """INSERT INTO cron.job_run_details
                      (jobid, job_pid, database, username, command, status, return_message,
                       start_time, end_time)
               SELECT (%s::bigint[])[1 + i %% %s], 1000 + i %% 30000, current_database(), 'postgres',
                      'SELECT 1', 'succeeded', 'SELECT 1',
                      now() - i * interval '10 ms', now() - i * interval '10 ms' + interval '5 ms'
                 FROM generate_series(1, %s) AS i""",
            (ids, len(ids), rows),
        )
        self.q("ANALYZE cron.job_run_details")
        return f"{rows} rows in cron.job_run_details"

    def clear_history(self) -> None:
        self.q("TRUNCATE cron.job_run_details")

    def probes(self) -> list[Probe]:
        return [
            Probe(
                "job list load",
                "SELECT jobid, schedule, command, nodename, nodeport, database, username, active, jobname"
                " FROM cron.job WHERE active",
                True,
                "what the launcher reads after cron.job changes (not every minute: it then "
                "matches schedules in memory, which no SQL can time)",
            )
        ]

    def scheduler_pids(self) -> tuple[list[int], list[int]]:
        pids = [
            int(r[0])
            for r in self.q("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher'")
        ]
        return pids, []

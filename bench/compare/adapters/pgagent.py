"""pgAgent 4.2.2: a daemon outside the server that polls pgagent.pga_job.

Every poll (-t seconds) it selects the enabled jobs whose jobnextrun has
passed and starts a thread per job; each thread opens its own connections
(one for the job's bookkeeping, one per step database), runs the steps in
name order and writes pga_joblog / pga_jobsteplog. Schedules are minute
arrays; a trigger recomputes jobnextrun from them. "Run now" in pgAdmin sets
jobnextrun = now(), which is what --fire-mode second uses.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from datetime import datetime
from typing import IO

from compare.adapters.base import Adapter, Probe
from compare.context import Context, wait_until
from compare.model import Outcome


def _bools(n: int, true_at: set[int] | None) -> str:
    """A Postgres boolean array literal of n elements (None: all true)."""
    return "{" + ",".join("t" if true_at is None or i in true_at else "f" for i in range(n)) + "}"


STATES = {"f": "failed", "i": "internal failure", "d": "aborted"}


class PgAgent(Adapter):
    name = "pgagent"
    minute_only = True
    exact_second = True  # through jobnextrun, as pgAdmin's "Run now" does
    has_steps = True

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file: IO[bytes] | None = None

    def _binary(self) -> str | None:
        b = self.ctx.options.pgagent_bin
        return b if os.path.isabs(b) and os.access(b, os.X_OK) else shutil.which(b)

    def unavailable(self) -> str | None:
        if self.one("SELECT extversion FROM pg_extension WHERE extname = 'pgagent'") is None:
            return (
                "the pgagent extension is not created in this database; make bench sets up a cluster with it"
            )
        if self._binary() is None:
            return f"the pgagent daemon ({self.ctx.options.pgagent_bin}) is not installed (package pgagent)"
        return None

    def version(self) -> str:
        ext = self.one("SELECT extversion FROM pg_extension WHERE extname = 'pgagent'")
        b = self._binary()
        out = subprocess.run([b, "-v"], capture_output=True, text=True).stdout if b else ""
        daemon = out.strip().splitlines()[-1] if out.strip() else "?"
        return f"{daemon.replace('Version:', '').strip()} (schema {ext})"

    def settings(self) -> dict[str, str]:
        return {
            "poll time (-t)": f"{self.ctx.options.pgagent_poll_s} s (default 10 s)",
            "connections": "one per job thread plus one per step database, from max_connections",
        }

    def start(self) -> None:
        b = self._binary()
        assert b is not None
        self.q("DELETE FROM pgagent.pga_jobagent")
        cmd = [b, "-f", "-t", str(self.ctx.options.pgagent_poll_s), "-l", "1", self.ctx.dsn]
        self.log_file = open(self.ctx.out / "pgagent.log", "ab")  # noqa: SIM115 - closed in stop()
        user = "postgres" if os.geteuid() == 0 else None
        if user is not None:
            pw = pwd.getpwnam(user)
            self.proc = subprocess.Popen(
                cmd, stdout=self.log_file, stderr=subprocess.STDOUT, user=pw.pw_uid, group=pw.pw_gid
            )
        else:
            self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=subprocess.STDOUT)
        if not wait_until(lambda: bool(self.one("SELECT count(*) FROM pgagent.pga_jobagent")), 30):
            raise RuntimeError("pgagent did not register within 30 s (see pgagent.log)")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None
        self.q("UPDATE pgagent.pga_job SET jobagentid = NULL WHERE jobagentid IS NOT NULL")
        self.q("DELETE FROM pgagent.pga_jobagent")

    def create_jobs(self, tag: str, codes: list[str]) -> None:
        names = [f"{tag}-{i}" for i in range(1, len(codes) + 1)]
        self.q(
            """WITH j AS (
                 INSERT INTO pgagent.pga_job (jobjclid, jobname)
                 SELECT (SELECT min(jclid) FROM pgagent.pga_jobclass), n FROM unnest(%s::text[]) AS n
                 RETURNING jobid, jobname)
               INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname)
               SELECT j.jobid, 'step-0001', 's', t.c, current_database()
                 FROM j JOIN unnest(%s::text[], %s::text[]) AS t(n, c) ON t.n = j.jobname""",
            (names, names, codes),
        )

    def _schedule(self, tag: str, minutes: set[int] | None, hours: set[int] | None) -> None:
        # Weekdays, month days and months all false means "any" to pgAgent.
        self.q(
            """INSERT INTO pgagent.pga_schedule
                      (jscjobid, jscname, jscstart, jscminutes, jschours, jscweekdays,
                       jscmonthdays, jscmonths)
               SELECT jobid, jobname, now() - interval '1 day', %s, %s, %s, %s, %s
                 FROM pgagent.pga_job WHERE jobname LIKE %s""",
            (
                _bools(60, minutes),
                _bools(24, hours),
                _bools(7, set()),
                _bools(32, set()),
                _bools(12, set()),
                f"{tag}-%",
            ),
        )

    def arm_at(self, tag: str, at: datetime, exact: bool) -> None:
        if exact:
            self.q("UPDATE pgagent.pga_job SET jobnextrun = %s WHERE jobname LIKE %s", (at, f"{tag}-%"))
        else:
            self._schedule(tag, {at.minute}, {at.hour})

    def create_recurring(self, tag: str, codes: list[str]) -> str:
        self.create_jobs(tag, codes)
        self._schedule(tag, None, None)
        return "1 minute"

    def create_multistep(self, tag: str, codes: list[str]) -> None:
        self.q(
            """WITH j AS (
                 INSERT INTO pgagent.pga_job (jobjclid, jobname)
                 VALUES ((SELECT min(jclid) FROM pgagent.pga_jobclass), %s) RETURNING jobid)
               INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname)
               SELECT j.jobid, format('step-%%s', lpad(s.ord::text, 4, '0')), 's', s.code, current_database()
                 FROM j, unnest(%s::text[]) WITH ORDINALITY AS s(code, ord)""",
            (f"{tag}-1", codes),
        )

    def trigger(self, tag: str) -> None:
        self.q("UPDATE pgagent.pga_job SET jobnextrun = now() WHERE jobname LIKE %s", (f"{tag}-%",))

    def outcomes(self, tag: str, since: datetime) -> Outcome:
        row = self.q(
            """SELECT count(*) FILTER (WHERE l.jlgstatus IN ('s', 'f', 'd')),
                      count(*) FILTER (WHERE l.jlgstatus IN ('f', 'd')),
                      extract(epoch FROM max(l.jlgstart + l.jlgduration) - %s)::float8
                 FROM pgagent.pga_joblog l JOIN pgagent.pga_job j ON j.jobid = l.jlgjobid
                WHERE j.jobname LIKE %s AND l.jlgstart >= %s - interval '1 minute'""",
            (since, f"{tag}-%", since),
        )[0]
        # State i (internal failure) is not counted as a failure: with a
        # short poll, a job whose thread has not claimed it yet is picked up
        # again by the next poll, and that second thread, finding the job
        # claimed, logs i. The job itself runs once (its hit is there).
        errors = [
            f"{n} log rows in state {st} ({STATES.get(st, '?')})"
            + (
                ": duplicate pickups by the next poll of a job whose thread had not claimed it yet"
                if st == "i"
                else ""
            )
            for st, n in self.q(
                """SELECT l.jlgstatus, count(*) FROM pgagent.pga_joblog l
                     JOIN pgagent.pga_job j ON j.jobid = l.jlgjobid
                    WHERE j.jobname LIKE %s AND l.jlgstatus IN ('f', 'i', 'd')
                      AND l.jlgstart >= %s - interval '1 minute' GROUP BY 1""",
                (f"{tag}-%", since),
            )
        ]
        errors += [
            str(r[0])
            for r in self.q(
                """SELECT left(s.jsloutput, 200) FROM pgagent.pga_jobsteplog s
                     JOIN pgagent.pga_joblog l ON l.jlgid = s.jsljlgid
                     JOIN pgagent.pga_job j ON j.jobid = l.jlgjobid
                    WHERE j.jobname LIKE %s AND s.jslstatus = 'f' AND s.jsloutput <> '' LIMIT 2""",
                (f"{tag}-%",),
            )
        ]
        return Outcome(int(row[0]), int(row[1]), row[2], errors)

    def fire_instants(self, tag: str) -> dict[int, list[datetime]]:
        # pgAgent keeps no intended instant either: minute of the log start.
        out: dict[int, list[datetime]] = {}
        for no, at in self.q(
            """SELECT split_part(j.jobname, '-', -1)::int, date_trunc('minute', l.jlgstart)
                 FROM pgagent.pga_joblog l JOIN pgagent.pga_job j ON j.jobid = l.jlgjobid
                WHERE j.jobname LIKE %s ORDER BY l.jlgstart""",
            (f"{tag}-%",),
        ):
            out.setdefault(int(no), []).append(at)
        return out

    def drop(self, tag: str) -> None:
        self.q("DELETE FROM pgagent.pga_job WHERE jobname LIKE %s", (f"{tag}-%",))

    def bulk_jobs(self, tag: str, n: int, hour: int) -> None:
        # Rows as pgAdmin writes them; the triggers that compute jobnextrun
        # are bypassed (replica role) and jobnextrun is set to the same value.
        with self.conn.transaction():
            self.q("SET LOCAL session_replication_role = replica")
            self.q(
                """INSERT INTO pgagent.pga_job (jobjclid, jobname, jobnextrun)
                   SELECT (SELECT min(jclid) FROM pgagent.pga_jobclass), %s || '-' || i,
                          date_trunc('day', now()) + make_interval(hours => %s, mins => i %% 60)
                            + CASE WHEN date_trunc('day', now()) + make_interval(hours => %s, mins => i %% 60)
                                        <= now() THEN interval '1 day' ELSE interval '0' END
                     FROM generate_series(1, %s) AS i""",
                (tag, hour, hour, n),
            )
            self.q(
                """INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname)
                   SELECT jobid, 'step-0001', 's', 'SELECT 1', current_database()
                     FROM pgagent.pga_job WHERE jobname LIKE %s""",
                (f"{tag}-%",),
            )
            self.q(
                """INSERT INTO pgagent.pga_schedule
                          (jscjobid, jscname, jscminutes, jschours, jscweekdays, jscmonthdays, jscmonths)
                   SELECT jobid, jobname,
                          (SELECT array_agg(m = extract(minute FROM jobnextrun)::int ORDER BY m)
                             FROM generate_series(0, 59) m),
                          (SELECT array_agg(h = %s ORDER BY h) FROM generate_series(0, 23) h),
                          %s, %s, %s
                     FROM pgagent.pga_job WHERE jobname LIKE %s""",
                (hour, _bools(7, set()), _bools(32, set()), _bools(12, set()), f"{tag}-%"),
            )
        self.q("ANALYZE pgagent.pga_job")

    def bulk_history(self, rows: int) -> str:
        half = rows // 2
        with self.conn.transaction():
            self.q("SET LOCAL session_replication_role = replica")
            ids = self.one(
                "SELECT array_agg(jobid ORDER BY jobid) FROM pgagent.pga_job WHERE jobname LIKE 'scale%'"
            )
            if not ids:
                raise RuntimeError("bulk_history needs jobs to refer to")
            self.q(
                """INSERT INTO pgagent.pga_joblog (jlgjobid, jlgstatus, jlgstart, jlgduration)
                   SELECT (%s::int[])[1 + i %% %s], 's', now() - i * interval '20 ms', interval '5 ms'
                     FROM generate_series(1, %s) AS i""",
                (ids, len(ids), half),
            )
            self.q(
                """INSERT INTO pgagent.pga_jobsteplog
                          (jsljlgid, jsljstid, jslstatus, jslresult, jslstart, jslduration, jsloutput)
                   SELECT l.jlgid, s.jstid, 's', 1, l.jlgstart, l.jlgduration, ''
                     FROM pgagent.pga_joblog l JOIN pgagent.pga_jobstep s ON s.jstjobid = l.jlgjobid
                    WHERE l.jlgjobid = ANY(%s)""",
                (ids,),
            )
        self.q("ANALYZE pgagent.pga_joblog")
        self.q("ANALYZE pgagent.pga_jobsteplog")
        return f"{half} rows in pga_joblog + {half} in pga_jobsteplog"

    def clear_history(self) -> None:
        self.q("TRUNCATE pgagent.pga_jobsteplog, pgagent.pga_joblog")

    def probes(self) -> list[Probe]:
        host = self.one("SELECT jagstation FROM pgagent.pga_jobagent LIMIT 1") or ""
        return [
            Probe(
                "poll query",
                "SELECT J.jobid FROM pgagent.pga_job J WHERE jobenabled AND jobagentid IS NULL"
                " AND jobnextrun <= now() AND (jobhostagent = '' OR jobhostagent = "
                + "'"
                + str(host).replace("'", "''")
                + "') ORDER BY jobnextrun",
                True,
                "the query pgAgent 4.2 runs every poll (-t); directly comparable to the due query",
            )
        ]

    def scheduler_pids(self) -> tuple[list[int], list[int]]:
        backends = [int(r[0]) for r in self.q("SELECT jagpid FROM pgagent.pga_jobagent")]
        return backends, ([self.proc.pid] if self.proc is not None else [])

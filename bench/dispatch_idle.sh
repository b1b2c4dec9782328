#!/usr/bin/env bash
# The dispatcher's cost when nothing is due, as the number of jobs and of
# history rows grows: pgbench runs `SELECT pgautomator._launcher_tick()` (one
# transaction each, as the launcher does) against a private cluster holding
# 10, then 100,000 scheduled jobs, then also HISTORY finished runs with two
# step runs each.  Prints, per configuration, the median and the range of
# pgbench's average latency over REPEAT (3) runs of 10 s, after VACUUM
# ANALYZE and CHECKPOINT of what was loaded: on a shared machine single
# runs of the same pass vary by half.  Last, the same with QUEUED (100,000)
# runs waiting: 1,000 of the jobs have a run running (its step waiting for a
# worker) and QUEUED / 1,000 queued behind it each.  About 7 minutes on the
# 2-core test machine.
#   bench/dispatch_idle.sh                 # HISTORY=10000000 runs (20 M step runs)
#   HISTORY=2000000 bench/dispatch_idle.sh # a quicker look, about 2 minutes
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

history=${HISTORY:-10000000}
scratch_cluster_dir bench

bindir=$(make_image "$base/inst") || exit 1
port=$(free_port)
# No preloaded launcher: this measures the SQL pass alone.
PGAUTOMATOR_DB=bench cluster_init "$base" "$bindir" "$port"
sed -i "s/^shared_preload_libraries = .*/shared_preload_libraries = ''/" "$base/data/postgresql.conf"
cluster_start "$base" "$bindir"
export PGHOST="$base/sock" PGPORT="$port" PGUSER=postgres PGDATABASE=bench
export PGOPTIONS="-c client_min_messages=warning"
psql -qX -d postgres -c "CREATE DATABASE bench" || exit 1
psql -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION pgautomator CASCADE" \
     -c "SELECT pgautomator._launcher_start(pg_backend_pid())" >/dev/null || exit 1
echo "SELECT pgautomator._launcher_tick();" > "$base/tick.sql"

jobs() {   # jobs N: N jobs, each with one step and a schedule due tomorrow
    psql -qX -v ON_ERROR_STOP=1 -v n="$1" <<'SQL' >/dev/null
TRUNCATE pgautomator.job CASCADE;
SELECT pgautomator.create_schedule('daily', 'daily', at_time => '03:00', timezone => 'UTC')
 WHERE NOT EXISTS (SELECT FROM pgautomator.schedule WHERE name = 'daily');
INSERT INTO pgautomator.job (name, owner, run_as) SELECT 'bench' || g, 'postgres', 'postgres' FROM generate_series(1, :n) g;
INSERT INTO pgautomator.step (job_id, position, name, code) SELECT id, 1, 's', 'SELECT 1' FROM pgautomator.job;
INSERT INTO pgautomator.job_schedule (job_id, schedule_id, next_fire_at)
SELECT j.id, s.id, now() + interval '1 day' FROM pgautomator.job j, pgautomator.schedule s WHERE s.name = 'daily';
VACUUM ANALYZE;
CHECKPOINT;
SQL
}

measure() {   # measure LABEL: median (min-max) of REPEAT runs, in ms
    local i lats=()
    for ((i = 0; i < ${REPEAT:-3}; i++)); do
        lats+=("$("$bindir/pgbench" -n -c 1 -T 10 -f "$base/tick.sql" 2>/dev/null |
                  sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p')")
    done
    # The machine's load average says whether other work shared the cores.
    printf '%s\n' "${lats[@]}" | sort -g |
        awk -v label="$1" -v load="$(cut -d' ' -f1 /proc/loadavg)" '{ v[NR] = $1 }
            END { printf "%-48s %.3f ms (%.3f-%.3f, %d runs; load %s)\n",
                         label, v[int((NR + 1) / 2)], v[1], v[NR], NR, load }'
}

jobs 10;      measure "10 jobs, no history"
jobs 100000;  measure "100,000 jobs, no history"
psql -qX -v ON_ERROR_STOP=1 -v n="$history" <<'SQL' >/dev/null
-- Finished runs within retention (the last 16 hours), two step runs each.
INSERT INTO pgautomator.run (job_id, owner, trigger, state, queued_at, started_at, finished_at)
SELECT (SELECT min(id) FROM pgautomator.job) + g % 100000, 'postgres', 'manual', 'succeeded',
       now() - interval '1 day', now() - interval '1 day', now() - (g % 1000) * interval '1 minute'
  FROM generate_series(1, :n) g;
INSERT INTO pgautomator.step_run (run_id, step_name, kind, state, finished_at)
SELECT r.id, 's', 'sql', 'succeeded', r.finished_at FROM pgautomator.run r, generate_series(1, 2);
VACUUM ANALYZE;
CHECKPOINT;
SQL
measure "100,000 jobs, $history runs + $((history * 2)) step runs"
psql -qX -v ON_ERROR_STOP=1 -v n="${QUEUED:-100000}" <<'SQL' >/dev/null
-- 1,000 jobs with a run running (its step queued: no worker claims here)
-- and the rest of the runs queued behind them, as overlap queue leaves them.
WITH busy AS (SELECT id FROM pgautomator.job ORDER BY id LIMIT 1000),
     running AS (
    INSERT INTO pgautomator.run (job_id, owner, trigger, state, started_at)
    SELECT id, 'postgres', 'manual', 'running', now() FROM busy RETURNING id)
INSERT INTO pgautomator.step_run (run_id, step_name, kind, state)
SELECT id, 's', 'sql', 'queued' FROM running;
INSERT INTO pgautomator.run (job_id, owner, trigger, state)
SELECT r.job_id, 'postgres', 'manual', 'queued'
  FROM pgautomator.run r, generate_series(1, :n / 1000) WHERE r.state = 'running';
VACUUM ANALYZE;
CHECKPOINT;
SQL
measure "... and ${QUEUED:-100000} runs queued behind 1,000 running"

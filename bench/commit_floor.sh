#!/usr/bin/env bash
# The floor under the executor's start lag (README "Performance"): how many
# durable one-row INSERT transactions per second this machine's PostgreSQL
# commits with no scheduler at all, from pgbench clients as many as the
# workers a burst uses; a step does the same INSERT, its commit and the
# bookkeeping.  Throwaway private cluster with the benchmark's settings.
#   bench/commit_floor.sh            # 8 and 2 clients, 3 rounds of 5 s each
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

scratch_cluster_dir floor

bindir=$(make_image "$base/inst")
port=$(free_port)
export PGAUTOMATOR_DB=bench
export PGAUTOMATOR_EXTRA_CONF="
# --- bench/commit_floor.sh (as bench/worker_bench.sh) ---
shared_buffers = '256MB'
timezone = 'UTC'
"
cluster_init "$base" "$bindir" "$port"
cluster_start "$base" "$bindir"
export PGHOST="$base/sock" PGPORT="$port" PGUSER=postgres PGDATABASE=bench
psql -qX -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE bench" >/dev/null
psql -qX -v ON_ERROR_STOP=1 -c "CREATE TABLE public.floor (at timestamptz, pid integer)"
echo "INSERT INTO public.floor VALUES (clock_timestamp(), pg_backend_pid());" > "$base/insert.sql"
chmod a+r "$base/insert.sql"
cores=$(nproc)
log "$(psql -qXAt -c 'SELECT version()' | cut -d, -f1), synchronous_commit = $(psql -qXAt -c 'SHOW synchronous_commit'), $cores CPUs"
for clients in 8 2; do
    for round in 1 2 3; do
        "$bindir/pgbench" -n -c "$clients" -j 2 -T 5 -f "$base/insert.sql" > "$base/pgbench.out" 2>&1 \
            || { cat "$base/pgbench.out" >&2; exit 1; }
        tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$base/pgbench.out")
        awk -v c="$clients" -v t="$tps" -v n="$cores" 'BEGIN {
            printf "%d clients: %.0f durable INSERT transactions/s; %.0f us of machine CPU each at most; 200 take %.1f ms\n",
                   c, t, n * 1e6 / t, 200 * 1000 / t }'
    done
done

#!/usr/bin/env bash
# make bench / make bench-quick: the side-by-side benchmark of pgautomator,
# pg_cron and pgAgent on one private cluster.
#  - installs the peers if missing (Debian packages postgresql-N-cron and
#    pgagent) BEFORE the server image is built, since make_image copies the
#    server's share and lib directories;
#  - builds the private server image with this checkout's pgautomator;
#  - starts a throwaway cluster as the postgres OS user (never the system
#    cluster) with the settings below, which the report lists;
#  - runs bench/run.py (arguments are passed on: --quick, --systems, ...),
#    which starts the pgagent daemon itself, then removes the cluster.
# PGAUTOMATOR_KEEP=1 keeps the cluster directory.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

major=$(pg_major_available)
need=()
for pkg in "postgresql-$major-cron" pgagent; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    log "installing the peers: ${need[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o Dpkg::Options::=--force-confdef "${need[@]}" >/dev/null
fi

out="bench/results/$(date -u +%Y%m%dT%H%M%SZ)"
# The server log goes with the results (pgAgent's refused connections,
# pg_cron's job lines, launcher messages).
scratch_before_removal() {
    [ -d "$out" ] && cp "$base/log/server.log" "$out/server.log" 2>/dev/null
    true
}
scratch_cluster_dir bench

log "building the private server image"
bindir=$(make_image "$base/inst")
port=$(free_port)
preload="pg_cron"
[ -f "$(dirname "$bindir")/lib/pgautomator.so" ] && preload="pg_cron,pgautomator"

# Concurrency caps made equal where a system has one: pg_cron runs at most
# cron.max_running_jobs commands at once (its default, 32), pgautomator at
# most pgautomator.max_workers steps; pgAgent has no cap (a thread and a
# connection or two per job), so max_connections leaves it room for a burst
# of 1,000 (with the default 100, about half its jobs fail with "too many
# clients"). pg_cron connects through libpq over the socket (its default
# mode, cron.use_background_workers = off).
workers=${BENCH_WORKERS:-32}
export PGAUTOMATOR_DB=bench
export PGAUTOMATOR_EXTRA_CONF="
# --- benchmark settings (bench/bench.sh) ---
shared_preload_libraries = '$preload'
max_connections = 2500
max_worker_processes = $((workers + 16))
shared_buffers = '512MB'
timezone = 'UTC'
cron.database_name = 'bench'
cron.host = '$base/sock'
cron.use_background_workers = off
cron.max_running_jobs = $workers
cron.log_run = on
pgautomator.max_workers = $workers
"
cluster_init "$base" "$bindir" "$port"
cluster_start "$base" "$bindir"
log "cluster up: port $port, socket $base/sock, log $base/log/server.log"

export PGHOST="$base/sock" PGPORT="$port" PGUSER=postgres PGDATABASE=bench
psql -qX -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE bench" >/dev/null
psql -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION pg_cron" -c "CREATE EXTENSION pgagent" >/dev/null
if ! psql -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION pgautomator CASCADE" >/dev/null; then
    log "CREATE EXTENSION pgautomator failed: pgautomator is reported as skipped"
fi
# The launchers of pg_cron and pgautomator started before the database
# existed: a restart lets both find it.
cluster_stop "$base" "$bindir"
cluster_start "$base" "$bindir"

# The settings file: what the report states about this cluster.
settings="$base/settings.json"
printf '{"pg_cron mode": "libpq connections over the unix socket (cron.use_background_workers = off)",
 "pgagent daemon": "pgagent -f -t <poll> as the postgres OS user, connection string to the bench database",
 "cluster": "private (bench/bench.sh): initdb as postgres, trust authentication, unix socket and 127.0.0.1",
 "peers installed from": "%s"}\n' \
    "$(dpkg-query -W -f='${Package} ${Version}, ' "postgresql-$major-cron" pgagent | sed 's/, $//')" >"$settings"

export BENCH_COMMAND="bench/bench.sh${*:+ $*}"
BENCH_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo +changes)"
export BENCH_COMMIT
.venv/bin/python bench/run.py --private-cluster --settings-file "$settings" --out "$out" \
    --dsn "host=$base/sock port=$port dbname=bench user=postgres" "$@"

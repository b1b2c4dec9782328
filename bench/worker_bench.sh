#!/usr/bin/env bash
# The in-database executor's own benchmark (issue 4): start lag of jobs due
# at one instant and throughput of trivial one-step runs, on a throwaway
# private cluster (never the machine's own). Arguments go to
# bench/worker_bench.py (--jobs, --seconds, ...); BENCH_WORKERS sets
# pgautomator.max_workers (default 32). PGAUTOMATOR_KEEP=1 keeps the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

scratch_cluster_dir wbench

workers=${BENCH_WORKERS:-32}
log "building the private server image"
bindir=$(make_image "$base/inst")
port=$(free_port)
export PGAUTOMATOR_DB=bench
export PGAUTOMATOR_EXTRA_CONF="
# --- bench/worker_bench.sh ---
max_worker_processes = $((workers + 16))
pgautomator.max_workers = $workers
shared_buffers = '256MB'
timezone = 'UTC'
${BENCH_EXTRA_CONF:-}
"
cluster_init "$base" "$bindir" "$port"
cluster_start "$base" "$bindir"
export PGHOST="$base/sock" PGPORT="$port" PGUSER=postgres PGDATABASE=bench
psql -qX -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE bench" >/dev/null
psql -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION pgautomator CASCADE" >/dev/null
log "cluster up: port $port, pgautomator.max_workers = $workers, $(nproc) CPUs"
.venv/bin/python bench/worker_bench.py "$@"

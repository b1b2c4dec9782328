#!/usr/bin/env bash
# make demo / make demo-stop: a private cluster that stays up, with the
# extension and example jobs and schedules. Data lives in $PGAUTOMATOR_DEMO_DIR
# (default .demo/ in the checkout); nothing of the machine's own PostgreSQL
# installation or clusters is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

base=${PGAUTOMATOR_DEMO_DIR:-$PWD/.demo}
export PGAUTOMATOR_DB=pgautomator

case "${1:-start}" in
stop)
    if [ -f "$base/bindir" ]; then
        cluster_stop "$base" "$(cat "$base/bindir")"
        log "demo cluster stopped (data kept in $base; rm -rf it to start afresh)"
    else
        log "no demo cluster in $base"
    fi
    exit 0 ;;
start) ;;
*) die "usage: demo.sh start|stop" ;;
esac

mkdir -p "$base"
if [ -f "$base/bindir" ]; then cluster_stop "$base" "$(cat "$base/bindir")"; fi
log "building into a private server image in $base/inst"
rm -rf "$base/inst"
bindir=$(make_image "$base/inst")
echo "$bindir" >"$base/bindir"
if [ ! -f "$base/data/PG_VERSION" ]; then
    port=$(free_port)
    cluster_init "$base" "$bindir" "$port"
    echo "$port" >"$base/port"
fi
port=$(cat "$base/port")
# A demo directory made before the library was built would start without it.
if [ -f "$(dirname "$bindir")/lib/pgautomator.so" ]; then
    as_pg sed -i "s/^shared_preload_libraries = .*/shared_preload_libraries = 'pgautomator'/" \
        "$base/data/postgresql.conf"
fi
cluster_start "$base" "$bindir"

export PGHOST="$base/sock" PGPORT="$port" PGUSER=postgres
if ! psql -qXtA -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$PGAUTOMATOR_DB'" | grep -q 1; then
    psql -qX -d postgres -c "CREATE DATABASE $PGAUTOMATOR_DB" >/dev/null
fi
export PGDATABASE=$PGAUTOMATOR_DB
# A rebuilt extension replaces the old one; the example objects are made anew.
psql -qX -v ON_ERROR_STOP=1 -c "DROP EXTENSION IF EXISTS pgautomator" \
     -c "CREATE EXTENSION pgautomator CASCADE" >/dev/null
psql -qX -v ON_ERROR_STOP=1 -f scripts/demo.sql

# Let the schedules fire a few times, then start the slow job by hand and stop it.
sleep 12
psql -qX -f scripts/demo_show.sql
run=$(psql -qXtA -c "SELECT pgautomator.start_job('slow')")
log "started job slow by hand: run $run"
for _ in $(seq 1 100); do
    [ "$(psql -qXtA -c "SELECT state FROM pgautomator.step_runs WHERE run_id = $run ORDER BY id DESC LIMIT 1")" = running ] && break
    sleep 0.1
done
psql -qX -c "SELECT id, job, state, started_at::time(3) AS started FROM pgautomator.runs WHERE id = $run" \
     -c "SELECT name, up, running, doing FROM pgautomator.agents"
psql -qXtA -c "SELECT pgautomator.stop_run($run)" >/dev/null
log "stopped run $run"
for _ in $(seq 1 100); do
    [ "$(psql -qXtA -c "SELECT state FROM pgautomator.runs WHERE id = $run")" = stopped ] && break
    sleep 0.1
done
psql -qX -c "SELECT r.id, r.job, r.state, r.duration, r.message, s.sqlstate, s.error
               FROM pgautomator.runs r JOIN pgautomator.step_runs s ON s.run_id = r.id WHERE r.id = $run"

cat <<MSG

  pgautomator demo is running (PostgreSQL $("$bindir/postgres" --version | awk '{print $3}'), port $port).

  Connect:   psql -h $base/sock -p $port -U postgres $PGAUTOMATOR_DB
         or  psql "host=127.0.0.1 port=$port user=postgres dbname=$PGAUTOMATOR_DB"

  Look at:   SELECT * FROM pgautomator.jobs;
             SELECT * FROM pgautomator.steps;
             SELECT * FROM pgautomator.agents;
             SELECT * FROM pgautomator.runs ORDER BY id DESC LIMIT 10;
             SELECT * FROM pgautomator.step_runs ORDER BY id DESC LIMIT 10;

  Server log: $base/log/server.log
  Stop it:    make demo-stop

MSG

# Shared shell functions for deps.sh, test.sh, demo.sh and the benchmarks.
# Sourced, not run.

log() { printf '\033[1m[pgautomator]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# The newest PostgreSQL major with a server package in apt (or installed).
pg_major_available() {
    if [ -n "${PGAUTOMATOR_PG_MAJOR:-}" ]; then echo "$PGAUTOMATOR_PG_MAJOR"; return; fi
    local v
    v=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1)
    if [ -z "$v" ]; then
        v=$(apt-cache search --names-only '^postgresql-[0-9]+$' 2>/dev/null \
            | sed -n 's/^postgresql-\([0-9]*\) .*/\1/p' | sort -n | tail -n 1)
    fi
    if [ -z "$v" ]; then
        as_root apt-get update -qq >/dev/null
        v=$(apt-cache search --names-only '^postgresql-[0-9]+$' \
            | sed -n 's/^postgresql-\([0-9]*\) .*/\1/p' | sort -n | tail -n 1)
    fi
    [ -n "$v" ] || die "no PostgreSQL server package found in apt"
    echo "$v"
}

# PostgreSQL refuses to run as root: the cluster runs as the postgres OS user
# when we are root, and as ourselves otherwise.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$(( 20000 + RANDOM % 30000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    die "no free TCP port found"
}

# make_image DIR: a private copy of the server installation with this
# checkout's extension installed into it. The server finds its share and lib
# directories relative to its own binary, so the machine's installation is
# never modified and several checkouts can test side by side.
make_image() {
    local dir=$1 major bindir sharedir libdir
    major=$(pg_major_available)
    bindir=/usr/lib/postgresql/$major/bin
    [ -x "$bindir/postgres" ] || die "$bindir/postgres missing (run make deps)"
    sharedir=$("$bindir/pg_config" --sharedir)
    libdir=$("$bindir/pg_config" --pkglibdir)
    mkdir -p "$dir$(dirname "$bindir")" "$dir$(dirname "$sharedir")" "$dir$(dirname "$libdir")"
    cp -a "$bindir" "$dir$bindir"
    cp -a "$sharedir" "$dir$(dirname "$sharedir")/"
    cp -a "$libdir" "$dir$(dirname "$libdir")/"
    make -s PG_CONFIG="$bindir/pg_config" >/dev/null
    make -s PG_CONFIG="$bindir/pg_config" install DESTDIR="$dir" >/dev/null
    echo "$dir$bindir"
}

# cluster_init BASE BINDIR PORT: initdb BASE/data and write its settings.
# Connections are local only (unix socket in BASE/sock and 127.0.0.1) with
# trust authentication for the private cluster's own roles.
cluster_init() {
    local base=$1 bindir=$2 port=$3 preload=""
    mkdir -p "$base/data" "$base/sock" "$base/log"
    chmod 755 "$base"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$base/data" "$base/sock" "$base/log"
    as_pg "$bindir/initdb" -D "$base/data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$base/initdb.log" 2>&1 \
        || { cat "$base/initdb.log" >&2; die "initdb failed"; }
    [ -f "$(dirname "$bindir")/lib/pgautomator.so" ] && preload="pgautomator"
    as_pg tee -a "$base/data/postgresql.conf" >/dev/null <<CONF
# --- pgautomator private cluster ---
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$base/sock'
shared_preload_libraries = '$preload'
max_worker_processes = 32
max_connections = 200
pgautomator.database = '${PGAUTOMATOR_DB:-pgautomator}'
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %b '
${PGAUTOMATOR_EXTRA_CONF:-}
CONF
}

cluster_start() {
    local base=$1 bindir=$2
    as_pg "$bindir/pg_ctl" -D "$base/data" -l "$base/log/server.log" -w -t 60 start >/dev/null \
        || { tail -n 30 "$base/log/server.log" >&2; die "cluster did not start"; }
}

cluster_stop() {
    local base=$1 bindir=$2
    [ -f "$base/data/postmaster.pid" ] || return 0
    as_pg "$bindir/pg_ctl" -D "$base/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

# scratch_cluster_dir NAME: a temporary directory for a throwaway cluster in
# $base ($bindir stays empty until make_image fills it); on exit the
# cluster is stopped and the directory removed, or kept with
# PGAUTOMATOR_KEEP=1.  A caller's scratch_before_removal runs first.
scratch_cluster_dir() {
    base=$(mktemp -d "/tmp/pgautomator-$1.XXXXXX")
    bindir=""
    trap scratch_cluster_cleanup EXIT
}

scratch_cluster_cleanup() {
    [ -n "$bindir" ] && cluster_stop "$base" "$bindir"
    if declare -F scratch_before_removal >/dev/null; then scratch_before_removal; fi
    if [ -n "${PGAUTOMATOR_KEEP:-}" ]; then log "kept $base"; else rm -rf "$base"; fi
}

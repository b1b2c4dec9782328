#!/usr/bin/env bash
# make test: builds the extension into a private server image, starts a
# throwaway cluster as the postgres OS user on a free port, runs the pgTAP
# suite (pg_prove) and the pytest suite against it, then removes it.
# Set PGAUTOMATOR_KEEP=1 to keep the cluster directory for inspection;
# PYTEST_ARGS / PGTAP_FILES narrow the run.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

scratch_cluster_dir test

log "building into a private server image"
bindir=$(make_image "$base/inst") || exit 1
port=$(free_port)
export PGAUTOMATOR_DB=pgautomator_test
cluster_init "$base" "$bindir" "$port"
cluster_start "$base" "$bindir"
log "cluster up: port $port, socket $base/sock, log $base/log/server.log"

export PGHOST="$base/sock" PGPORT="$port" PGUSER=postgres PGDATABASE="$PGAUTOMATOR_DB"
export PGAUTOMATOR_TEST_BASE="$base" PGAUTOMATOR_TEST_BINDIR="$bindir"
psql -qX -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $PGAUTOMATOR_DB" >/dev/null || exit 1
if ! psql -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION pgautomator CASCADE" >/dev/null; then
    # Replay the script through psql to name the failing line of the assembled file.
    psql -qX -d postgres -c "CREATE DATABASE scratch" -c "CREATE EXTENSION IF NOT EXISTS plpython3u" >/dev/null
    sed '2s/.*//' pgautomator--*.sql | psql -qX -v ON_ERROR_STOP=1 -d scratch -f - 2>&1 | grep -m1 ERROR
    exit 1
fi

status=0
log "pgTAP suite"
# shellcheck disable=SC2086
pg_prove --failures ${PGTAP_FILES:-test/sql/*.sql} || status=1

log "pytest suite"
# shellcheck disable=SC2086
.venv/bin/python -m pytest -p no:cacheprovider ${PYTEST_ARGS:-test/python} || status=1

log "static checks (ruff, mypy)"
scripts/lint.sh || status=1

# The Python package's own tests (python/tests; the agent's run against this
# cluster). PYTHON_TESTS narrows them; narrowing with PYTEST_ARGS alone skips
# them. PYTHONPATH: this checkout's source, whatever the shared .venv's
# editable install points at.
if [ -f python/pyproject.toml ] && { [ -n "${PYTHON_TESTS:-}" ] || [ -z "${PYTEST_ARGS:-}" ]; }; then
    log "python package tests"
    # shellcheck disable=SC2086
    # -P: the built pgautomator.so in the checkout must not shadow the package.
    PYTHONPATH="$PWD/python/src" .venv/bin/python -P -m pytest -p no:cacheprovider \
        ${PYTHON_TESTS:-python/tests} || status=1
fi

if [ $status -ne 0 ]; then
    log "FAILED; last server log lines:"
    tail -n 40 "$base/log/server.log" >&2
fi
exit $status

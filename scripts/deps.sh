#!/usr/bin/env bash
# Installs what `make test` and `make demo` need on Debian or Ubuntu: the
# PostgreSQL server with PL/Python, its headers, pgTAP and pg_prove, and a
# Python virtual environment (.venv) with the test and client packages.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

need_apt=()
PGMAJOR=$(pg_major_available)
for pkg in "postgresql-$PGMAJOR" "postgresql-plpython3-$PGMAJOR" \
           "postgresql-server-dev-$PGMAJOR" "postgresql-$PGMAJOR-pgtap" \
           libtap-parser-sourcehandler-pgtap-perl python3-venv python3-dev \
           gcc make tzdata; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing Debian packages: ${need_apt[*]}"
    as_root apt-get update -qq
    # The server package must not start a system cluster we would then share.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o Dpkg::Options::=--force-confdef "${need_apt[@]}" >/dev/null
fi

# The venv uses the system's python3 on purpose: PL/Python runs that one too.
if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    /usr/bin/python3 -m venv .venv
fi
stamp=.venv/.requirements-stamp
if [ ! -f "$stamp" ] || [ requirements-dev.txt -nt "$stamp" ] \
   || { [ -f python/pyproject.toml ] && [ python/pyproject.toml -nt "$stamp" ]; }; then
    log "installing Python packages into .venv"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r requirements-dev.txt
    if [ -f python/pyproject.toml ]; then
        .venv/bin/pip install -q -e ./python
    fi
    touch "$stamp"
fi

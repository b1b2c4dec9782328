#!/usr/bin/env bash
# Static checks of the Python code: ruff (lint and format) and mypy --strict.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
targets=(test/python)
[ -d bench ] && ls bench/*.py >/dev/null 2>&1 && targets+=(bench)
[ -d python/src ] && targets+=(python/src python/tests)
status=0
.venv/bin/ruff check -q "${targets[@]}" || status=1
.venv/bin/ruff format -q --check "${targets[@]}" || status=1
# python/src on MYPYPATH: the tests are checked against this checkout's
# package, not whichever one the shared .venv's editable install points at.
for t in "${targets[@]}"; do
    MYPYPATH=test/python:python/src .venv/bin/mypy --no-error-summary "$t" || status=1
done
[ $status -eq 0 ] && log "lint: ruff and mypy clean" || log "lint: FAILED"
exit $status

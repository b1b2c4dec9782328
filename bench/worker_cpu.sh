#!/usr/bin/env bash
# Worker CPU per step in repeated bursts (README "Performance"): runs
# bench/worker_bench.sh --bursts 12 (200 jobs every 3 s, 8 workers) and
# reads /proc/<pid>/schedstat of the step workers over 18 s, six bursts
# once the workers are warm; prints CPU per step and the bursts' medians.
# Run nothing else meanwhile.
#   bench/worker_cpu.sh [CHECKOUT]   # default: this one; about a minute
set -euo pipefail
dir=$(cd "${1:-$(dirname "$0")/..}" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
(cd "$dir" && BENCH_WORKERS=8 timeout 600 bash bench/worker_bench.sh \
    --skip-lag --skip-throughput --skip-sustained --bursts 12 >"$out" 2>&1) &
bench=$!
snap() { for p in $(pgrep -f "pgautomator step"); do echo "$p $(cut -d' ' -f1 "/proc/$p/schedstat")"; done; }
sleep 16
before=$(snap)
sleep 18
after=$(snap)
wait "$bench" || { cat "$out" >&2; exit 1; }
python3 - "$before" "$after" <<'PY'
import sys
a = dict(line.split() for line in sys.argv[1].splitlines())
c = dict(line.split() for line in sys.argv[2].splitlines())
ns = sum(int(c[p]) - int(a.get(p, 0)) for p in c)
print(f"step workers {len(a)} -> {len(c)}; worker CPU per step {ns / 6 / 200 / 1000:.0f} us")
PY
grep "repeated warm" "$out"

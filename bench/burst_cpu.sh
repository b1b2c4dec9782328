#!/usr/bin/env bash
# Who has the two cores while a burst starts (README "Performance"): runs
# bench/worker_bench.sh --bursts 12 (200 jobs every 3 s, 8 workers), samples
# every CPU with `perf record -a` for 15 s once the workers are warm, and
# splits the samples that fall within each burst (from the first to the
# last sample of a step worker) among the step workers, the launcher, idle
# and everything else. Needs perf and root; run nothing else meanwhile.
#   bench/burst_cpu.sh [CHECKOUT]   # default: this one; about a minute
set -euo pipefail
dir=$(cd "${1:-$(dirname "$0")/..}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v perf >/dev/null || { echo "burst_cpu.sh: perf is not installed" >&2; exit 1; }
(cd "$dir" && BENCH_WORKERS=8 timeout 600 bash bench/worker_bench.sh \
    --skip-lag --skip-throughput --skip-sustained --bursts 12 >"$tmp/bench.out" 2>&1) &
bench=$!
sleep 16
pgrep -f "pgautomator step" >"$tmp/workers" || true
pgrep -f "pgautomator launcher" >"$tmp/launcher" || true
perf record -a -F 4000 -o "$tmp/perf.data" -- sleep 15 >/dev/null 2>&1
perf script -i "$tmp/perf.data" -F comm,pid,time >"$tmp/samples" 2>/dev/null
wait "$bench" || { cat "$tmp/bench.out" >&2; exit 1; }
python3 - "$tmp" <<'PY'
import collections
import sys

tmp = sys.argv[1]
workers = {int(p) for p in open(f"{tmp}/workers").read().split()}
launcher = {int(p) for p in open(f"{tmp}/launcher").read().split()}
samples = []
for line in open(f"{tmp}/samples"):
    parts = line.split()
    if len(parts) >= 3:
        samples.append((parts[0], int(parts[-2]), float(parts[-1].rstrip(":"))))
# A burst: step worker samples no more than 0.5 s apart.
bursts: list[list[float]] = []
for t in sorted(t for _, pid, t in samples if pid in workers):
    if bursts and t - bursts[-1][1] < 0.5:
        bursts[-1][1] = t
    else:
        bursts.append([t, t])
total: collections.Counter[str] = collections.Counter()
for start, end in bursts:
    for comm, pid, t in samples:
        if start <= t <= end:
            who = ("step workers" if pid in workers else "launcher" if pid in launcher
                   else "idle" if pid == 0 else comm.split("/")[0])
            total[who] += 1
n = sum(total.values())
if not bursts or not n:
    raise SystemExit("burst_cpu.sh: no burst was sampled")
span = sum(end - start for start, end in bursts) / len(bursts) * 1000
print(f"{len(bursts)} bursts sampled, {span:.1f} ms each from first to last worker sample;"
      " share of both CPUs' samples within them:")
for who, count in total.most_common(6):
    print(f"  {who:14} {100 * count / n:5.1f} %")
PY
grep "repeated warm" "$tmp/bench.out"

#!/usr/bin/env bash
# Benchmarks rmsfuse on this CPU: every ISA path x flag set x working-set
# size, against the same-traffic roofline and plain-C peers, in one run.
# Writes results/<host>-<date>/{bench.json,console.txt,report.md,*.png} and
# prints the Markdown table.  See docs/performance.md.
#
# usage: scripts/bench.sh [--quick] [extra rmsfuse_bench / --benchmark_* options]
#   --quick   one repetition, only the cache-class sizes (a smoke test)
# environment: REPETITIONS (default 5), MIN_TIME (seconds per repetition,
#   default 0.05), BUILD_DIR (default build/release), RESULTS_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

REPETITIONS="${REPETITIONS:-5}"
MIN_TIME="${MIN_TIME:-0.05}"
BUILD_DIR="${BUILD_DIR:-build/release}"
ORIG_ARGS="$*"
EXTRA=()
if [[ "${1:-}" == "--quick" ]]; then
    shift
    REPETITIONS=1
    EXTRA+=(--rmsfuse_sweep=0)
fi
EXTRA+=("$@")

# ---- prerequisites (Debian package names) ----------------------------------
# shellcheck source=scripts/deps.sh
. scripts/deps.sh
rmsfuse_need_packages build-essential cmake g++ pkg-config libbenchmark-dev libhwloc-dev \
    python3-matplotlib python3-numpy
PY=/usr/bin/python3 # Debian's, which has matplotlib (a python3 earlier on PATH may not)

# ---- build -------------------------------------------------------------------
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DRMSFUSE_BUILD_BENCH=ON -DRMSFUSE_BUILD_TESTS=OFF >&2
cmake --build "$BUILD_DIR" --target rmsfuse_bench -j"$(nproc)" >&2

# ---- run ---------------------------------------------------------------------
OUT="${RESULTS_DIR:-results/$(uname -n)-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
read -r load1 _ </proc/loadavg
echo "bench.sh: load average $load1 (take final figures at < 0.5); writing $OUT" >&2
BENCH_ARGS=(--benchmark_out="$OUT/bench.json" --benchmark_out_format=json
            --benchmark_repetitions="$REPETITIONS" --benchmark_report_aggregates_only=true
            --benchmark_min_time="$MIN_TIME" --benchmark_enable_random_interleaving=true "${EXTRA[@]}")
"$BUILD_DIR/bench/rmsfuse_bench" "${BENCH_ARGS[@]}" 2>&1 | tee "$OUT/console.txt" >&2

# ---- report ------------------------------------------------------------------
"$PY" bench/report.py "$OUT/bench.json" "$OUT" --command "scripts/bench.sh${ORIG_ARGS:+ $ORIG_ARGS} (REPETITIONS=$REPETITIONS MIN_TIME=$MIN_TIME)"
echo >&2
echo "bench.sh: wrote $OUT/report.md and $OUT/*.png" >&2

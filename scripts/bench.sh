#!/usr/bin/env bash
# Benchmarks rmsfuse on this CPU: every rule's flag sets (RMSProp, AdaGrad,
# SGD, Adam/AdamW) x ISA path x working-set size, each against its
# same-traffic roofline and plain-C peers, and the sparse-gradient step
# (a share of the gradients exactly zero, state driven subnormal: the
# presets' RMSFUSE_FLUSH_SUBNORMAL against exact IEEE) and the storage types
# (bf16/f16/8-bit arrays against their own roofline and float32), in one
# run; then, if PyTorch is installed, rmsfuse.torch.RMSprop against
# torch.optim.RMSprop (bench/python_bench.py).
# Writes results/<host>-<date>/{bench.json,console.txt,report.md,*.png,
# python_bench.json,python.md} and prints the Markdown tables.
# See docs/performance.md and docs/python.md.
#
# usage: scripts/bench.sh [--quick] [--rules=LIST] [--classes] [--sparse | --no-sparse]
#                         [--storage | --no-storage] [extra rmsfuse_bench / --benchmark_* options]
#   --quick        one repetition, only the cache-class sizes (a smoke test)
#   --rules=LIST   only these rules or flag sets, comma-separated, e.g.
#                  --rules=adam or --rules=sgd/plain,rmsprop/momentum
#                  (the binary's --rmsfuse_rules)
#   --classes      only the four cache-class sizes, no sweep (--rmsfuse_sweep=0)
#   --sparse       only the sparse-gradient benchmarks (sparse/...: RMSProp
#                  with momentum, Adam, SGD with momentum, AdaGrad; 0/10/50/90%
#                  zero gradients; in cache and at the DRAM size), and the
#                  Python benchmark's sparse part alone (torch and the drop-ins)
#   --no-sparse    without them (in C and in Python)
#   --storage      only the storage-type benchmarks (storage/...: typed steps
#                  of bf16/f16/8-bit arrays against their own roofline and the
#                  float32 step, four flag sets, the class sizes; every ISA at
#                  the DRAM size) and the sqrt + div floors, and the Python
#                  benchmark's bf16-model part alone (the drop-ins' storage
#                  choices against torch)
#   --no-storage   without them (in C and in Python)
# The default run (all 11 flag sets, 5 repetitions, the whole sweep) makes
# about 8300 benchmark runs of ~0.1 s: 12-15 minutes of benchmarks on a
# 2-core machine with a 32 MiB L3, plus the build and the Python benchmark
# (where the L3 is reported as 508 MiB: 14,360 runs, 55 minutes; see
# docs/performance.md, or cap the sizes with --rmsfuse_max_ws=300M); each flag set
# adds ~80 s (--rules=adagrad: 1.5 minutes, adam or sgd ~4, rmsprop ~5.5).
# The sparse-gradient part (96 benchmarks, 480 runs, their warm-ups
# included) adds about a minute (1:04 on the 2-core development machine
# under load; --sparse runs only it); the exact-IEEE rows at the class sizes
# (dispatched_exact, 44 benchmarks) ~30 s; the storage-type part (1005
# benchmarks on 2 cores, 5025 runs; --storage runs only it) about 10 minutes
# (20 with 10 repetitions on the Zen 5 VM, 2026-12-05).  The Python benchmark's sparse
# part (python_bench.py --sparse) takes ~2.5 minutes, its training-step part
# (--train: unscale, clip by norm and update against torch's sequence) ~2,
# its bf16-model part (--storage: the drop-ins' storage choices against
# torch over a bf16 ResNet-50) about half a minute.
# The benchmark prints a progress line (runs done, time elapsed and left)
# every 15 s (--rmsfuse_progress=SECONDS changes that).
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
# the Python benchmark's parts beside the drop-ins' float32 rows (torch and the drop-ins):
# sparse gradients, the training step and the bf16 model; PY_ONLY: one part alone
PY_SPARSE=1 PY_STORAGE=1 PY_ONLY=
for a in "$@"; do
    case "$a" in
    --quick)
        REPETITIONS=1
        EXTRA+=(--rmsfuse_sweep=0)
        ;;
    --rules=*) EXTRA+=("--rmsfuse_rules=${a#--rules=}") ;;
    --classes) EXTRA+=(--rmsfuse_sweep=0) ;;
    --sparse)
        EXTRA+=(--benchmark_filter='^sparse/')
        PY_ONLY=--sparse-only
        ;;
    --no-sparse)
        EXTRA+=(--rmsfuse_sparse=0)
        PY_SPARSE=0
        ;;
    --storage)
        EXTRA+=(--benchmark_filter='^(storage/|floor/sqrt_div)' --rmsfuse_sparse=0)
        PY_ONLY=--storage-only
        ;;
    --no-storage)
        EXTRA+=(--rmsfuse_storage=0)
        PY_STORAGE=0
        ;;
    *) EXTRA+=("$a") ;;
    esac
done

# ---- prerequisites (Debian package names) ----------------------------------
# shellcheck source=scripts/deps.sh
. scripts/deps.sh
rmsfuse_need_packages build-essential cmake g++ pkg-config libbenchmark-dev libhwloc-dev \
    python3-matplotlib python3-numpy
# PyTorch, for the Python benchmark: installed when running as root; without
# root and without it, that one step is skipped.
if [ "$(id -u)" -eq 0 ]; then rmsfuse_need_packages python3-torch; fi
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

# ---- Python: the PyTorch drop-in against torch.optim.RMSprop -------------------
# Needs Debian python3-torch (installed above when running as root):
# without it the step is skipped.  Writes python_bench.json and python.md, and
# appends python.md to report.md.
if "$PY" -c "import torch" 2>/dev/null; then
    if [ -n "$PY_ONLY" ]; then
        PY_BENCH=("$PY_ONLY")
    else
        PY_BENCH=(--train)
        [ "$PY_SPARSE" = 1 ] && PY_BENCH+=(--sparse)
        [ "$PY_STORAGE" = 1 ] && PY_BENCH+=(--storage)
    fi
    [[ "$REPETITIONS" == 1 ]] && PY_BENCH+=(--rounds 1 --steps 2)
    # The L3 size given to the C benchmark is the one the Python target uses.
    for a in "${EXTRA[@]}"; do
        if [[ "$a" =~ ^--rmsfuse_l3=([0-9]+)([KkMmGg]?)$ ]]; then
            v=${BASH_REMATCH[1]}
            case ${BASH_REMATCH[2]} in
            [Gg]) v=$((v * 1024)) ;;
            [Mm]) ;;
            [Kk]) v=$((v / 1024)) ;;
            *) v=$((v >> 20)) ;;
            esac
            PY_BENCH+=(--l3-mb "$v")
        fi
    done
    echo >&2
    RMSFUSE_LIBRARY="$BUILD_DIR/librmsfuse.so.0" RMSFUSE_POOL_LIBRARY="$BUILD_DIR/librmsfuse_pool.so.0" \
        "$PY" bench/python_bench.py --out "$OUT" "${PY_BENCH[@]}" \
        --command "scripts/bench.sh${ORIG_ARGS:+ $ORIG_ARGS} (bench/python_bench.py ${PY_BENCH[*]})"
    { echo; cat "$OUT/python.md"; } >>"$OUT/report.md"
else
    echo "bench.sh: PyTorch is not installed (Debian: python3-torch): skipping the Python benchmark" >&2
fi
# The sparse-gradient rows of the Python benchmark, when it writes them
# (a "sparse" list in python_bench.json: the format is in bench/report.py),
# join report.py's sparse table: the report is made again with them.
if [ -f "$OUT/python_bench.json" ] && "$PY" -c 'import json, sys
sys.exit(0 if isinstance(json.load(open(sys.argv[1])).get("sparse"), list) else 1)' "$OUT/python_bench.json" 2>/dev/null; then
    "$PY" bench/report.py "$OUT/bench.json" "$OUT" --python "$OUT/python_bench.json" \
        --command "scripts/bench.sh${ORIG_ARGS:+ $ORIG_ARGS} (REPETITIONS=$REPETITIONS MIN_TIME=$MIN_TIME)" >/dev/null
    [ -f "$OUT/python.md" ] && { echo; cat "$OUT/python.md"; } >>"$OUT/report.md"
fi
echo >&2
echo "bench.sh: wrote $OUT/report.md and $OUT/*.png" >&2

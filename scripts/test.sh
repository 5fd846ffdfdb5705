#!/usr/bin/env bash
# Builds rmsfuse and runs the whole test suite: the README's test command.
#
#   scripts/test.sh          everything (what CI runs)
#   scripts/test.sh native   only the native build and its ctest run
#
# Stages (each a separate build under build/):
#   native    ctest: auto + every ISA forced, golden vectors, thread pool, package consumer
#   valgrind  the suite under memcheck (valgrind hides AVX-512: detection must
#             fall back cleanly, the forced avx512 run must skip)
#   qemu-x86  the suite under qemu-x86_64 on an SSE2-only CPU model (detection
#             must pick sse2, nothing illegal may execute) and on Haswell (avx2)
#   aarch64   cross build with gcc-aarch64-linux-gnu, suite under qemu-aarch64
#             on a CPU without SVE: detection must pick neon
#   sve       the same build on qemu's "max" CPU at SVE vector lengths 128,
#             256, 512 (qemu's default: the whole suite, detection picking
#             sve) and 2048 bits (every test that forces sve, test_isa and
#             the fuzz replay): the sve
#             path bit for bit against scalar, predicated tails against guard
#             pages; detection must pick sve, and neon at 128 bits
#   bench     the benchmark suite builds, runs briefly at small sizes, and the
#             report (tables and plots) renders: the README's main command works
#   mpi       the distributed example (examples/mpi_zero1.c, Open MPI): 2, 3 and
#             4 ranks on this host give the single-process result bit for bit
#   python    the Python binding and the PyTorch drop-in (python/rmsfuse) with
#             NumPy and PyTorch installed: ctest -L python
#   packages  the Debian packages (CPack) and pip install ./python: built,
#             lintian-clean, installed, used from /usr and from a fresh venv,
#             purged (scripts/check_packages.sh; root)
#   sanitize  the whole suite built with ASan + UBSan (clang-14, preset
#             sanitize), every ISA this CPU runs forced in turn (AVX-512 is
#             built only where it runs; docs/reliability.md)
#   tsan      the threaded tests (test_isa, test_pool, test_concurrency)
#             under ThreadSanitizer, every ISA this CPU runs forced in turn
#             (test_pool: every vector ISA)
#   fuzz      the libFuzzer target (the sanitize stage's build) for a
#             bounded time from the seed corpus; any crash or failed check fails
# The slow stages (valgrind, qemu-x86, aarch64, sve, sanitize, tsan) run each
# ISA's code once per CPU: a test forcing the ISA that detection picks for the
# unforced tests skips (RMSFUSE_TEST_SKIP_DETECTED, tests/test_common.h), and
# a second emulated CPU model leaves out the ISAs the first one ran.
# As root it installs the Debian packages it needs when they are missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/deps.sh
. scripts/deps.sh

stages=${*:-native valgrind qemu-x86 aarch64 sve bench mpi python packages sanitize tsan fuzz}
jobs=$(nproc 2>/dev/null || echo 2)

pkgs=(build-essential cmake pkg-config check python3-numpy libhwloc-dev libeigen3-dev)
# ccache only saves time (native_build below): installed as root, used where present.
[ "$(id -u)" -ne 0 ] || pkgs+=(ccache)
case " $stages " in *" valgrind "*) pkgs+=(valgrind) ;; esac
case " $stages " in *" qemu-x86 "*) pkgs+=(qemu-user) ;; esac
case " $stages " in *" aarch64 "* | *" sve "*) pkgs+=(qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross check:arm64) ;; esac
case " $stages " in *" bench "*) pkgs+=(g++ libbenchmark-dev python3-matplotlib) ;; esac
case " $stages " in *" mpi "*) pkgs+=(openmpi-bin libopenmpi-dev) ;; esac
case " $stages " in *" python "*) pkgs+=(python3-torch python3-sklearn python3-matplotlib) ;; esac
case " $stages " in *" packages "*) pkgs+=(dpkg-dev file lintian python3-venv python3-pip python3-setuptools python3-wheel python3-torch) ;; esac
# TSan comes with gcc (libtsan2); ASan, UBSan and libFuzzer with clang's runtime.
case " $stages " in *" sanitize "* | *" fuzz "*) pkgs+=(clang-14 libclang-rt-14-dev) ;; esac
rmsfuse_need_packages "${pkgs[@]}"

summary=()
run_stage() { # name, then the commands of the stage as a function
    local name=$1
    shift
    echo
    echo "==================== $name ===================="
    local t0=$SECONDS
    "$@"
    summary+=("$name: passed ($((SECONDS - t0)) s)")
}

configure_build() { # dir, cmake args...
    local dir=$1
    shift
    mkdir -p "$dir"
    cmake -S . -B "$dir" -DRMSFUSE_BUILD_TESTS=ON "$@" >"$dir.configure.log" 2>&1 ||
        { cat "$dir.configure.log"; return 1; }
    cmake --build "$dir" -j "$jobs"
}

# The native build, build/test, with the test programs run through a launcher
# ($1, a ;-list, or empty): the valgrind, qemu-x86, bench, mpi and python
# stages reuse its objects (only the tests' commands change), which saves CI a
# build each.  Release, as the packages and scripts/bench.sh build: the tests
# run the code that ships.  Through ccache, with its cache in build/ccache
# (a clean checkout starts empty): the packages stage then compiles every
# object with the same command, found in the cache.
export CCACHE_DIR="$root/build/ccache"
with_ccache() { # command...: CMake configures the compilers' launcher from these
    if command -v ccache >/dev/null; then
        CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache "$@"
    else
        "$@"
    fi
}
native_build() { # launcher, then more cmake args
    with_ccache configure_build build/test -DCMAKE_BUILD_TYPE=Release -DRMSFUSE_BUILD_POOL=ON \
        "-DRMSFUSE_TEST_LAUNCHER=$1" "${@:2}"
}

stage_native() {
    native_build ""
    # The Python tests are the python stage's (the same build, run there).
    # CK_FORK=no, as in every other stage: Check's fork per test cost about
    # 11 ms on the Zen 5 VM (test_golden's 401 tests: 4.7 s -> 0.3 s).
    CK_FORK=no ctest --test-dir build/test -j "$jobs" --output-on-failure -LE python
}

stage_valgrind() {
    native_build "valgrind;--quiet;--error-exitcode=99;--leak-check=full;--errors-for-leak-kinds=definite"
    # Valgrind implements AVX2 but not AVX-512.
    local expect=sse2
    grep -qw avx2 /proc/cpuinfo && expect=avx2
    # Left to the native stage, in this one and in qemu-x86: the conversions'
    # second run (label software), and the golden vectors' generator (Python,
    # never under the launcher).
    CK_FORK=no RMSFUSE_TEST_QUICK=1 RMSFUSE_TEST_SKIP_DETECTED=1 RMSFUSE_EXPECT_ISA=$expect \
        ctest --test-dir build/test -j "$jobs" --output-on-failure -LE '^(software|golden)$'
}

stage_qemu_x86() {
    native_build "qemu-x86_64"
    # Check forks each test by default; forked children hang under qemu-user.
    # An SSE2-only CPU (qemu64 without SSE3/CX16): detection must pick sse2.
    QEMU_CPU=qemu64,-pni,-cx16 CK_FORK=no RMSFUSE_TEST_QUICK=1 RMSFUSE_TEST_SKIP_DETECTED=1 \
        RMSFUSE_EXPECT_ISA=sse2 ctest --test-dir build/test -j "$jobs" --output-on-failure -LE '^(software|golden)$'
    # Haswell (AVX2, no AVX-512): detection must pick avx2, avx512 must skip.
    # Forced scalar and sse2 would run the same instructions as on the
    # SSE2-only CPU above: left out.
    QEMU_CPU=Haswell-noTSX CK_FORK=no RMSFUSE_TEST_QUICK=1 RMSFUSE_TEST_SKIP_DETECTED=1 \
        RMSFUSE_EXPECT_ISA=avx2 ctest --test-dir build/test -j "$jobs" --output-on-failure -LE '^(software|golden|scalar|sse2)$'
}

# The AArch64 cross build, build/aarch64, Release as the native one: the
# aarch64 and sve stages run the same objects.
aarch64_build() {
    configure_build build/aarch64 -DCMAKE_BUILD_TYPE=Release --toolchain cmake/toolchain-aarch64-linux-gnu.cmake
}

stage_aarch64() {
    aarch64_build
    # qemu-aarch64's default CPU ("max") has SVE: switched off here.
    # (As in valgrind, the golden vectors' generator is the native stage's.)
    QEMU_CPU=max,sve=off CK_FORK=no RMSFUSE_TEST_QUICK=1 RMSFUSE_TEST_SKIP_DETECTED=1 RMSFUSE_EXPECT_ISA=neon \
        ctest --test-dir build/aarch64 -j "$jobs" --output-on-failure -LE '^golden$'
}

stage_sve() {
    aarch64_build
    local bytes expect
    for bytes in 64 16 32 256; do # vector length in bytes: 512 bits first (qemu's default)
        expect=sve
        [ "$bytes" = 16 ] && expect=neon # at 128 bits detection keeps neon (docs/dispatch.md)
        echo "-- SVE vector length $((bytes * 8)) bits: detection must pick $expect"
        # At 512 bits every test that does not force an ISA (they run sve):
        # forced scalar and neon run the same instructions as in the aarch64
        # stage, forced sve the same as the unforced tests here.
        local only=(-LE '^(golden|scalar|neon|sve)$')
        [ "$bytes" = 64 ] || only=(-R '[.]sve$|^test_isa$|^fuzz_replay$')
        QEMU_CPU="max,sve-default-vector-length=$bytes" CK_FORK=no RMSFUSE_TEST_QUICK=1 \
            RMSFUSE_EXPECT_ISA=$expect ctest --test-dir build/aarch64 -j "$jobs" --output-on-failure "${only[@]}"
    done
}

stage_bench() {
    # The native build with the benchmarks added (this run checks that they
    # build, run and report, not how fast; scripts/bench.sh measures, in its
    # own build).
    native_build "" -DRMSFUSE_BUILD_BENCH=ON
    local out=build/test/bench-smoke
    mkdir -p "$out"
    # Every benchmark kind, at small sizes, briefly.
    build/test/bench/rmsfuse_bench --rmsfuse_sweep=0 --rmsfuse_max_ws=1M --benchmark_min_time=0.001 \
        --benchmark_out="$out/bench.json" --benchmark_out_format=json >/dev/null
    # the start-up checks: the peers and the unfused storage step give the library's bits
    grep -q '"peers_bitexact_with_library": "yes"' "$out/bench.json"
    grep -q '"storage_unfused_bitexact_with_typed": "yes"' "$out/bench.json"
    grep -q '"work_eighths"' "$out/bench.json" # the same-work roofline found its work
    /usr/bin/python3 bench/report.py "$out/bench.json" "$out/report" \
        --command "scripts/test.sh bench (smoke run)" >/dev/null
    ls "$out"/report/*.png
}

stage_mpi() {
    native_build "" -DRMSFUSE_BUILD_MPI_EXAMPLE=ON
    ctest --test-dir build/test -L mpi --output-on-failure --no-tests=error
}

stage_python() {
    # The Python tests (the native stage leaves them here), which must run, not skip.
    native_build ""
    ctest --test-dir build/test -j "$jobs" -L python --output-on-failure --no-tests=error | tee build/test/ctest-python.log
    ! grep -q "Not Run\|Skipped" build/test/ctest-python.log
}

stage_packages() {
    # Installs the .debs into this system, uses them, purges them: root only.
    [ "$(id -u)" -eq 0 ] || { echo "packages: needs root (it installs and purges Debian packages)"; return 1; }
    with_ccache scripts/check_packages.sh
}

# ---- hardening (docs/reliability.md) ----
# Configures CMake preset $1 (more cache options after it), its log shown
# only on failure.
configure_preset() {
    local preset=$1
    shift
    mkdir -p build
    cmake --preset "$preset" "$@" >"build/$preset.configure.log" 2>&1 ||
        { cat "build/$preset.configure.log"; return 1; }
}

# The sanitizer builds compile only the x86 paths this CPU can run: on a
# CPU without AVX-512 (or an OS that hides it: the kernel then leaves avx512f
# out of /proc/cpuinfo) every test forcing avx512 would skip, so its object
# would only be compiled, which the native stage does already.  Under ASan
# and UBSan that object alone took about 100 s of CPU on the Zen 3 VM.
runnable_isa_args() {
    grep -qw avx512f /proc/cpuinfo || echo -DRMSFUSE_ENABLE_AVX512=OFF
}

stage_sanitize() {
    # One clang build for this stage and for fuzz: the whole suite runs on
    # the instrumented library that the fuzzer explores (docs/reliability.md).
    # shellcheck disable=SC2046 # runnable_isa_args: zero or one word
    configure_preset sanitize $(runnable_isa_args) || return 1
    cmake --build --preset sanitize -j "$jobs"
    RMSFUSE_TEST_SKIP_DETECTED=1 ctest --preset sanitize -j "$jobs"
}

stage_tsan() {
    # Without the AVX-512 objects, the largest to compile (about 40% of the
    # library's compile time since 2026-12-05): ThreadSanitizer checks the
    # pool's and the dispatcher's threads, whose code is the same whatever
    # ISA runs the kernels; the sanitize stage runs AVX-512 instrumented.
    configure_preset tsan -DRMSFUSE_BUILD_POOL=ON -DRMSFUSE_ENABLE_AVX512=OFF || return 1
    cmake --build --preset tsan -j "$jobs" --target test_isa test_pool test_concurrency
    # Not test_pool forcing scalar: its threads touch the same ranges as
    # with the vector paths, element by element, each access instrumented
    # (82 s under TSan on the Zen 3 VM, 34 s forcing sse2); test_isa and
    # test_concurrency, which switch ISAs under running threads, force it.
    RMSFUSE_TEST_SKIP_DETECTED=1 ctest --preset tsan -j "$jobs" -R '^(test_isa|test_pool|test_concurrency)(\.|$)' \
        -E '^test_pool[.]scalar$'
}

stage_fuzz() {
    # The sanitize preset's build: after the sanitize stage it has the
    # target already and nothing is compiled here.
    # shellcheck disable=SC2046
    configure_preset sanitize $(runnable_isa_args) || return 1
    cmake --build build/sanitize -j "$jobs" --target fuzz_rules
    # New inputs go to a scratch copy; the committed seeds stay as they are.
    local dir=build/sanitize/fuzz
    local work=$dir/corpus
    rm -rf "$work" "$dir/artifacts"
    mkdir -p "$work" "$dir/artifacts"
    cp tests/fuzz/corpus/* "$work"/
    local rc=0
    build/sanitize/tests/fuzz/fuzz_rules -max_total_time="${RMSFUSE_FUZZ_SECONDS:-45}" -max_len=4096 -timeout=30 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "$work" \
        >"$dir/fuzz.log" 2>&1 || rc=$?
    grep -E '^(INFO: seed corpus|#[0-9]+[[:space:]]+(INITED|DONE)|stat::|Done )' "$dir/fuzz.log" || true
    echo "corpus after the run: $(find "$work" -type f | wc -l) inputs ($dir/fuzz.log has the whole log)"
    if [ "$rc" -ne 0 ] || [ -n "$(ls "$dir/artifacts")" ]; then
        tail -n 60 "$dir/fuzz.log"
        echo "fuzz: failed (exit $rc); reproduce with build/sanitize/tests/fuzz/fuzz_rules $dir/artifacts/<file>"
        return 1
    fi
    return 0
}

for s in $stages; do
    case $s in
        native) run_stage native stage_native ;;
        valgrind) run_stage valgrind stage_valgrind ;;
        qemu-x86) run_stage qemu-x86 stage_qemu_x86 ;;
        aarch64) run_stage aarch64 stage_aarch64 ;;
        sve) run_stage sve stage_sve ;;
        bench) run_stage bench stage_bench ;;
        mpi) run_stage mpi stage_mpi ;;
        python) run_stage python stage_python ;;
        packages) run_stage packages stage_packages ;;
        sanitize) run_stage sanitize stage_sanitize ;;
        tsan) run_stage tsan stage_tsan ;;
        fuzz) run_stage fuzz stage_fuzz ;;
        *) echo "unknown stage: $s (native valgrind qemu-x86 aarch64 sve bench mpi python packages sanitize tsan fuzz)" >&2; exit 2 ;;
    esac
done
echo
echo "==================== summary ===================="
printf '%s\n' "${summary[@]}"

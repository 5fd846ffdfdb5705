#!/usr/bin/env bash
# ctest's example_eigen: installs the built rmsfuse into a scratch prefix (as
# tests/consumer/run.sh does), configures and builds examples/eigen against it
# with find_package(rmsfuse), and runs it: it must train (exit 0).
# Usage: run.sh <cmake> <rmsfuse build dir> <scratch dir> <C++ compiler>
# Exit 77 (ctest: skipped) when Eigen 3 is not installed (Debian: libeigen3-dev).
set -euo pipefail
cmake_bin=$1 build=$2 work=$3 cxx=$4
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
"$cmake_bin" --install "$build" --prefix "$prefix" >"$work/install.log"
if ! "$cmake_bin" -S "$here" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx" \
        -DCMAKE_BUILD_TYPE=Release >"$work/configure.log" 2>&1; then
    if grep -q "provided by \"Eigen3\"" "$work/configure.log"; then
        echo "example_eigen: skipped, Eigen 3 not found (Debian: libeigen3-dev)"
        exit 77
    fi
    cat "$work/configure.log"
    exit 1
fi
"$cmake_bin" --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
# It loads the installed library, not the build tree's.
ldd "$work/build/train_mlp" | grep "$prefix" >/dev/null || { echo "train_mlp does not load $prefix"; exit 1; }
"$work/build/train_mlp"

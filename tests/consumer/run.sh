#!/usr/bin/env bash
# Installs the built library into a scratch prefix and builds the consumer
# project against it twice: with find_package(rmsfuse) (shared and static
# targets) and with pkg-config (shared, and static via --static).
# Usage: run.sh <cmake> <rmsfuse build dir> <scratch dir> <C compiler>
set -euo pipefail
cmake_bin=$1 build=$2 work=$3 cc=$4
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix

"$cmake_bin" --install "$build" --prefix "$prefix" >"$work/install.log"
header=$(find "$prefix" -name rmsfuse.h)
pc=$(find "$prefix" -name rmsfuse.pc)
config=$(find "$prefix" -name rmsfuseConfig.cmake)
soname=$(find "$prefix" -name 'librmsfuse.so.0' -printf '%f\n')
echo "installed: ${header#"$prefix"/} ${pc#"$prefix"/} ${config#"$prefix"/} $soname"

echo "== find_package(rmsfuse)"
"$cmake_bin" -S "$here" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_BUILD_TYPE=Release >"$work/configure.log"
"$cmake_bin" --build "$work/cmake" >"$work/build.log"
"$work/cmake/consumer_shared"
"$work/cmake/consumer_static"
# The shared consumer really loads the installed library.
# (grep reads all of ldd's output: with -q it could exit first and, under
# pipefail, ldd's SIGPIPE would fail the test at random.)
ldd "$work/cmake/consumer_shared" | grep "$prefix" >/dev/null || { echo "consumer_shared does not load $prefix"; exit 1; }

echo "== pkg-config rmsfuse"
export PKG_CONFIG_PATH=$(dirname "$pc")
echo "pkg-config: $(pkg-config --modversion rmsfuse) $(pkg-config --cflags --libs rmsfuse)"
libdir=$(pkg-config --variable=libdir rmsfuse)
# shellcheck disable=SC2046
"$cc" -std=c11 -ffp-contract=off "$here/consumer.c" -o "$work/consumer_pc" $(pkg-config --cflags --libs rmsfuse) \
    -lm -Wl,-rpath,"$libdir"
"$work/consumer_pc"
# shellcheck disable=SC2046
"$cc" -std=c11 -ffp-contract=off "$here/consumer.c" -o "$work/consumer_pc_static" \
    $(pkg-config --cflags rmsfuse) "$libdir/librmsfuse.a" $(pkg-config --static --libs-only-l rmsfuse | sed 's/-lrmsfuse//')
"$work/consumer_pc_static"
# The thread pool, when it was built (hwloc found): find_package and pkg-config.
if [ -f "$(dirname "$pc")/rmsfuse_pool.pc" ]; then
    echo "== rmsfuse_pool"
    "$work/cmake/consumer_pool"
    echo "pkg-config: $(pkg-config --modversion rmsfuse_pool) $(pkg-config --cflags --libs rmsfuse_pool)"
    # shellcheck disable=SC2046
    "$cc" -std=c11 "$here/pool_consumer.c" -o "$work/consumer_pool_pc" $(pkg-config --cflags --libs rmsfuse_pool) \
        -Wl,-rpath,"$libdir"
    "$work/consumer_pool_pc"
fi
echo "package consumer: ok"

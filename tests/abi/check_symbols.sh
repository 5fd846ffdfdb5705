#!/bin/sh
# ABI checks of the built libraries (docs/abi.md):
#   - a shared library exports exactly the functions its public header
#     declares (RMSFUSE_API), all named rmsfuse_*, and nothing else
#     (nm -D --defined-only);
#   - its SONAME is lib<name>.so.<RMSFUSE_VERSION_MAJOR>;
#   - the static library defines only rmsfuse_* global symbols, so that it
#     cannot clash with an application's names.
#
# Usage: check_symbols.sh <nm> <objdump> <include dir> <static lib> <shared lib> <headers> [<shared lib> <headers>]...
#   <headers>: the library's public headers, separated by commas
set -eu
nm=$1 objdump=$2 inc=$3 static=$4
shift 4
major=$(sed -n 's/^#define RMSFUSE_VERSION_MAJOR \([0-9]*\).*/\1/p' "$inc/rmsfuse_common.h")
status=0
words() { printf '%s\n' "$1" | tr '\n' ' '; }
fail() {
    echo "FAIL: $*"
    status=1
}

while [ $# -ge 2 ]; do
    lib=$1 headers=$(printf '%s' "$2" | tr ',' ' ')
    header=$(for h in $headers; do basename "$h"; done | tr '\n' ' ')
    shift 2
    # Less the bounds of clang's coverage sections (the sanitize preset's
    # -fsanitize=fuzzer-no-link): the linker defines them, the library does not.
    exported=$("$nm" -D --defined-only "$lib" | awk '{print $NF}' |
        grep -Ev '^__(start|stop)___sancov_[a-z]+$' | sort -u)
    # shellcheck disable=SC2086 # the list of headers is split on purpose
    declared=$(sed -n 's/^RMSFUSE_API[^(]*[ *]\(rmsfuse_[a-z0-9_]*\)(.*/\1/p' $headers | sort -u)
    [ -n "$declared" ] || fail "no RMSFUSE_API function found in $header"
    foreign=$(printf '%s\n' "$exported" | grep -v '^rmsfuse_' || true)
    [ -z "$foreign" ] || fail "$lib exports symbols outside the rmsfuse_ namespace: $(words "$foreign")"
    extra=$(printf '%s\n' "$exported" | grep -vxF "$declared" || true)
    [ -z "$extra" ] || fail "$lib exports symbols $header does not declare: $(words "$extra")"
    missing=$(printf '%s\n' "$declared" | grep -vxF "$exported" || true)
    [ -z "$missing" ] || fail "$lib does not export: $(words "$missing")"
    base=$(basename "$lib")
    want_soname="${base%%.so*}.so.$major"
    soname=$("$objdump" -p "$lib" | awk '$1 == "SONAME" {print $2}')
    [ "$soname" = "$want_soname" ] || fail "$lib has SONAME '$soname', expected $want_soname"
    echo "$base: $(printf '%s\n' "$exported" | wc -l) exported functions, all declared in $header; SONAME $soname"
done

globals=$("$nm" -g --defined-only "$static" | awk 'NF >= 3 {print $NF}' | sort -u)
foreign=$(printf '%s\n' "$globals" | grep -v '^rmsfuse_' || true)
[ -z "$foreign" ] || fail "$static defines global symbols outside the rmsfuse_ namespace: $(words "$foreign")"
echo "$(basename "$static"): $(printf '%s\n' "$globals" | wc -l) global symbols, all rmsfuse_*"
exit $status

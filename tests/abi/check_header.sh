#!/bin/sh
# The public headers compile with the given compiler and flags (warnings
# as errors), and the object refers to every public function by its plain
# C name (extern "C" in C++: no mangled rmsfuse symbol).
#
# Usage: check_header.sh <compiler> <nm> <include dir> <object to write> <flags...>
set -eu
cc=$1 nm=$2 inc=$3 obj=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)

echo "$cc $* -I$inc -c $here/headers.c"
"$cc" "$@" -I"$inc" -c "$here/headers.c" -o "$obj"

# Every function the headers declare (RMSFUSE_API ... name(...)).
declared=$(sed -n 's/^RMSFUSE_API[^(]*[ *]\(rmsfuse_[a-z0-9_]*\)(.*/\1/p' "$inc"/rmsfuse*.h | sort -u)
referenced=$("$nm" -u "$obj" | awk '{print $NF}' | sort -u)
status=0
for f in $declared; do
    if ! printf '%s\n' "$referenced" | grep -qx "$f"; then
        echo "FAIL: $obj does not refer to $f by its C name"
        status=1
    fi
done
mangled=$("$nm" "$obj" | awk '{print $NF}' | grep '^_Z.*rmsfuse' || true)
if [ -n "$mangled" ]; then
    echo "FAIL: C++-mangled rmsfuse symbols (missing extern \"C\"?):"
    echo "$mangled"
    status=1
fi
[ "$status" -eq 0 ] && echo "ok: $(printf '%s\n' "$declared" | wc -l) functions, by their C names"
exit $status

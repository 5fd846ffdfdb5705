#!/usr/bin/env bash
# Builds and checks the installable packages of rmsfuse (CI stage "packages"):
#
#   scripts/check_packages.sh
#
#  1. the Debian packages librmsfuse0, librmsfuse-dev and python3-rmsfuse from CPack
#     (cmake/RmsfusePackaging.cmake), Release with the thread pool, in build/packages;
#  2. their names, versions, dependencies and paths (dpkg-deb --info/--contents);
#  3. lintian on them: any error fails (the few unavoidable tags are overridden in the
#     packages themselves, /usr/share/lintian/overrides);
#  4. installs them for real (apt-get install ./build/packages/*.deb), builds tests/consumer
#     against the installed files only (find_package(rmsfuse) and pkg-config) and runs it,
#     imports rmsfuse with /usr/bin/python3 from / (the system library under /usr/lib) and
#     runs /usr/bin/rmsfuse; then purges the packages, so later stages see a clean system;
#  5. pip: a fresh venv (build/packages/venv, system site packages), `pip install
#     --no-build-isolation ./python` offline (no package index), import from /: the library
#     bundled in the venv, a NumPy step, a rmsfuse.torch step, the rmsfuse command.
#
# As root (the packages are installed into the system: run it on a disposable machine, as
# CI does); it installs the Debian packages it needs when they are missing (scripts/deps.sh).
# The pip build reuses build/packages' CMake build (same options: it only relinks);
# RMSFUSE_PACKAGES_FRESH_PIP=1 makes pip build in its own temporary folder, as a user's does.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/deps.sh
. scripts/deps.sh

if [ "$(id -u)" -ne 0 ]; then
    echo "check_packages: must run as root (it installs and purges Debian packages)" >&2
    exit 2
fi
# Nothing from a build tree may leak into the checks of the installed files.
unset PKG_CONFIG_PATH LD_LIBRARY_PATH CMAKE_PREFIX_PATH RMSFUSE_LIBRARY RMSFUSE_POOL_LIBRARY PYTHONPATH \
    RMSFUSE_CMAKE_BUILD_DIR RMSFUSE_SOURCE_DIR
export DEBIAN_FRONTEND=noninteractive

rmsfuse_need_packages build-essential cmake pkg-config libhwloc-dev dpkg-dev file lintian \
    python3-numpy python3-torch python3-venv python3-pip python3-setuptools python3-wheel

out=build/packages
jobs=$(nproc 2>/dev/null || echo 2)
py=/usr/bin/python3
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
pkgs_purge=(python3-rmsfuse librmsfuse-dev librmsfuse0)
summary=()
t_start=$SECONDS

fail() {
    echo "check_packages: FAILED: $*" >&2
    exit 1
}
step() { # name, function
    local name=$1 t0=$SECONDS
    shift
    echo
    echo "==================== packages: $name ===================="
    "$@"
    summary+=("$name: ok ($((SECONDS - t0)) s)")
}
pkg_present() { # in any state but not-installed (config-files, half-installed, ...)
    local st
    st=$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)
    [ -n "$st" ] && [ "$st" != not-installed ]
}
purge_packages() {
    local installed=() p
    for p in "${pkgs_purge[@]}"; do
        if pkg_present "$p"; then installed+=("$p"); fi
    done
    if [ ${#installed[@]} -gt 0 ]; then
        apt-get purge -y -qq "${installed[@]}" >/dev/null
    fi
}
on_exit() {
    local rc=$?
    purge_packages || true
    if [ $rc -ne 0 ]; then
        echo
        echo "==================== packages: summary ===================="
        printf '%s\n' "${summary[@]}"
        echo "packages: FAILED (exit $rc)"
    fi
}
trap on_exit EXIT

# ---- 1. build the .deb files ---------------------------------------------
build_debs() {
    purge_packages # a previous run that was killed
    mkdir -p "$out"
    rm -f "$out"/*.deb
    # The README's command: the preset "packages" (CMakePresets.json: Release, /usr, the pool,
    # -z now for lintian's hardening-no-bindnow; its RPATH options undo what a pip build reusing
    # this folder sets, setup.py) configures, builds and runs cpack in build/packages.
    [ "$out" = build/packages ] || fail "the preset builds in build/packages, not $out"
    CMAKE_BUILD_PARALLEL_LEVEL=$jobs cmake --workflow --preset packages >"$out.workflow.log" 2>&1 ||
        { tail -n 60 "$out.workflow.log"; fail "cmake --workflow --preset packages"; }
    grep "package: " "$out.workflow.log"
}


# ---- 2. what the packages hold -------------------------------------------
# (No `cmd | grep -q` here: grep -q exits at the first match and, under pipefail, the
# writer's SIGPIPE would fail the pipeline at random.)
field() { dpkg-deb --field "$1" "$2"; }
expect_field() { # deb, field, extended regex
    local v
    v=$(field "$1" "$2")
    echo "$v" | grep -E -- "$3" >/dev/null || fail "$(basename "$1"): $2 is '$v', expected /$3/"
}
inspect_debs() {
    version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$out/CMakeCache.txt")
    dv=$version-$(sed -n 's/^RMSFUSE_DEB_RELEASE:STRING=//p' "$out/CMakeCache.txt")
    major=${version%%.*}
    echo "version $dv, architecture $arch ($multiarch)"
    lib="$out/librmsfuse${major}_${dv}_${arch}.deb"
    dev="$out/librmsfuse-dev_${dv}_${arch}.deb"
    pyd="$out/python3-rmsfuse_${dv}_all.deb"
    local n
    n=$(find "$out" -maxdepth 1 -name '*.deb' | wc -l)
    [ "$n" -eq 3 ] || fail "expected 3 .deb files in $out, found $n"
    for d in "$lib" "$dev" "$pyd"; do
        [ -f "$d" ] || fail "missing $d"
        echo "-- $(basename "$d")"
        dpkg-deb --info "$d" | sed -n '/^ [A-Z][A-Za-z-]*:/p'
        # Every path under /usr, owned by root, nothing else at the top.
        dpkg-deb --contents "$d" | awk '{print $2, $6}' >"$d.contents"
        if grep -v ' \./$' "$d.contents" | grep -v ' \./usr/' | grep . >/dev/null; then
            fail "$(basename "$d") has files outside /usr: $(grep -v ' \./usr/' "$d.contents" | grep -v ' \./$' | head -3)"
        fi
        if grep -Ev ' \./(usr/(bin|include|lib|share/(doc|man|lintian))/.*)?$|^[^ ]+ \./usr/(lib|share)?/?$' "$d.contents" | grep . >/dev/null; then
            fail "$(basename "$d") has files outside the usual paths: $(grep -Ev ' \./(usr/(bin|include|lib|share/(doc|man|lintian))/.*)?$|^[^ ]+ \./usr/(lib|share)?/?$' "$d.contents" | head -3)"
        fi
        if awk '{print $1}' "$d.contents" | grep -v '^root/root$' >/dev/null; then
            fail "$(basename "$d") has files not owned by root/root"
        fi
        if grep -q "__pycache__\|\.pyc$\|/build/\|egg-info" "$d.contents"; then fail "$(basename "$d") holds build leftovers"; fi
        expect_field "$d" Version "^$dv\$"
        expect_field "$d" Maintainer ".+<.+@.+>"
        expect_field "$d" Homepage "^https?://"
        [ -n "$(dpkg-deb --field "$d" Description | sed -n 2p)" ] || fail "$(basename "$d"): no long description"
        (dpkg-deb --fsys-tarfile "$d" | tar -t | grep "^./usr/share/doc/$(field "$d" Package)/copyright$" >/dev/null) ||
            fail "$(basename "$d"): no copyright file"
    done
    local L=./usr/lib/$multiarch
    # librmsfuse0: the shared libraries (files and SONAME links) only.
    expect_field "$lib" Package "^librmsfuse${major}\$"
    expect_field "$lib" Architecture "^$arch\$"
    expect_field "$lib" Section "^libs\$"
    expect_field "$lib" Depends "libc6 \(>= [0-9.]+\)"
    expect_field "$lib" Depends "libhwloc15 \(>= [0-9.]+\)"
    for f in "$L/librmsfuse.so.$major" "$L/librmsfuse.so.$version" "$L/librmsfuse_pool.so.$major" \
        "$L/librmsfuse_pool.so.$version"; do
        grep -q " $f\$" "$lib.contents" || fail "$(basename "$lib") lacks $f"
    done
    # (files only: directory entries end with /)
    if grep -v '/$' "$lib.contents" | grep -Ev " ($L/librmsfuse(_pool)?\.so\.$major(\.[0-9]+)*|\./usr/share/(doc|lintian)/.*)\$"; then
        fail "$(basename "$lib") holds more than the shared libraries (above)"
    fi
    dpkg-deb --ctrl-tarfile "$lib" | tar -xO ./shlibs | grep "^librmsfuse $major librmsfuse$major (>= $dv)" >/dev/null ||
        fail "$(basename "$lib"): no shlibs entry for librmsfuse"
    dpkg-deb --ctrl-tarfile "$lib" | tar -xO ./triggers | grep "^activate-noawait ldconfig" >/dev/null ||
        fail "$(basename "$lib"): no ldconfig trigger"
    # librmsfuse-dev: headers, static library, the .so links, CMake package, pkg-config.
    expect_field "$dev" Package "^librmsfuse-dev\$"
    expect_field "$dev" Architecture "^$arch\$"
    expect_field "$dev" Section "^libdevel\$"
    expect_field "$dev" Depends "(^|, )librmsfuse$major \(= $dv\)(,|\$)"
    expect_field "$dev" Depends "libhwloc-dev"
    for f in ./usr/include/rmsfuse.h ./usr/include/rmsfuse_pool.h "$L/librmsfuse.a" "$L/librmsfuse.so" \
        "$L/librmsfuse_pool.so" "$L/cmake/rmsfuse/rmsfuseConfig.cmake" "$L/cmake/rmsfuse/rmsfuseConfigVersion.cmake" \
        "$L/cmake/rmsfuse/rmsfuseTargets.cmake" "$L/pkgconfig/rmsfuse.pc" "$L/pkgconfig/rmsfuse_pool.pc"; do
        grep -q " $f\$" "$dev.contents" || fail "$(basename "$dev") lacks $f"
    done
    if grep -q "\.so\.$major" "$dev.contents"; then fail "$(basename "$dev") holds a runtime library"; fi
    # python3-rmsfuse: the package in dist-packages, the command; the system's library.
    expect_field "$pyd" Package "^python3-rmsfuse\$"
    expect_field "$pyd" Architecture "^all\$"
    expect_field "$pyd" Section "^python\$"
    expect_field "$pyd" Depends "(^|, )python3(,|\$)"
    expect_field "$pyd" Depends "(^|, )python3-numpy(,|\$)"
    expect_field "$pyd" Depends "(^|, )librmsfuse$major \(= $dv\)(,|\$)"
    expect_field "$pyd" Suggests "python3-torch"
    for f in ./usr/lib/python3/dist-packages/rmsfuse/__init__.py ./usr/lib/python3/dist-packages/rmsfuse/_lib.py \
        ./usr/lib/python3/dist-packages/rmsfuse/torch.py ./usr/bin/rmsfuse ./usr/share/man/man1/rmsfuse.1.gz; do
        grep -q " $f\$" "$pyd.contents" || fail "$(basename "$pyd") lacks $f"
    done
    if grep -q "\.so" "$pyd.contents"; then fail "$(basename "$pyd") bundles a library (it must use librmsfuse$major)"; fi
    rm -f "$out"/*.deb.contents
}

# ---- 3. lintian ------------------------------------------------------------
run_lintian() {
    local rc=0
    lintian --version
    lintian --fail-on error --display-info --show-overrides "$out"/*.deb >"$out/lintian.log" 2>&1 || rc=$?
    grep -v "running with root privileges" "$out/lintian.log" || true
    echo "lintian: $(grep -c '^E:' "$out/lintian.log" || true) errors, $(grep -c '^W:' "$out/lintian.log" || true) warnings," \
        "$(grep -c '^I:' "$out/lintian.log" || true) info, $(grep -c '^O:' "$out/lintian.log" || true) overridden"
    [ "$rc" -eq 0 ] || fail "lintian reports errors (exit $rc)"
}

# ---- 4. install them, use them, purge them -----------------------------------
install_debs() {
    apt-get install -y -qq --no-install-recommends "$root/$lib" "$root/$dev" "$root/$pyd" >"$out/apt-install.log" 2>&1 ||
        { cat "$out/apt-install.log"; fail "apt-get install"; }
    dpkg-query -W -f='${Package} ${Version} ${Status}\n' "${pkgs_purge[@]}"
}

consumer() {
    local w=$out/consumer cc=${CC:-cc}
    rm -rf "$w"
    mkdir -p "$w"
    echo "== find_package(rmsfuse) from /usr"
    cmake -S tests/consumer -B "$w/cmake" -DCMAKE_BUILD_TYPE=Release >"$w/configure.log" 2>&1 ||
        { cat "$w/configure.log"; fail "consumer: cmake configure"; }
    grep -q "^rmsfuse_DIR:PATH=/usr/lib/$multiarch/cmake/rmsfuse\$" "$w/cmake/CMakeCache.txt" ||
        fail "consumer: find_package did not take /usr/lib/$multiarch/cmake/rmsfuse ($(grep '^rmsfuse_DIR' "$w/cmake/CMakeCache.txt"))"
    cmake --build "$w/cmake" >"$w/build.log" 2>&1 || { cat "$w/build.log"; fail "consumer: build"; }
    "$w/cmake/consumer_shared"
    "$w/cmake/consumer_static"
    "$w/cmake/consumer_pool"
    ldd "$w/cmake/consumer_shared" | grep -E "librmsfuse\.so\.0 => (/usr)?/lib/$multiarch/librmsfuse\.so\.0" >/dev/null ||
        fail "consumer_shared does not load the system librmsfuse: $(ldd "$w/cmake/consumer_shared" | grep rmsfuse)"
    echo "== pkg-config rmsfuse, rmsfuse_pool (system paths only)"
    echo "pkg-config: rmsfuse $(pkg-config --modversion rmsfuse): $(pkg-config --cflags --libs rmsfuse)"
    echo "pkg-config: rmsfuse_pool $(pkg-config --modversion rmsfuse_pool): $(pkg-config --cflags --libs rmsfuse_pool)"
    [ "$(pkg-config --variable=libdir rmsfuse)" -ef "/usr/lib/$multiarch" ] ||
        fail "pkg-config libdir is $(pkg-config --variable=libdir rmsfuse)"
    # shellcheck disable=SC2046
    "$cc" -std=c11 -ffp-contract=off tests/consumer/consumer.c -o "$w/consumer_pc" $(pkg-config --cflags --libs rmsfuse) -lm
    "$w/consumer_pc"
    # shellcheck disable=SC2046
    "$cc" -std=c11 -ffp-contract=off tests/consumer/consumer.c -o "$w/consumer_pc_static" $(pkg-config --cflags rmsfuse) \
        "$(pkg-config --variable=libdir rmsfuse)/librmsfuse.a" -lm
    "$w/consumer_pc_static"
    # shellcheck disable=SC2046
    "$cc" -std=c11 tests/consumer/pool_consumer.c -o "$w/consumer_pool_pc" $(pkg-config --cflags --libs rmsfuse_pool)
    "$w/consumer_pool_pc"
}

# The Python check, for the system package and for the venv: argv[1] is the folder the
# package must come from, argv[2] the one the loaded libraries must be in.
python_check() { # python, package dir, library dir
    (cd / && "$1" - "$2" "$3" <<'EOF'
import os, sys
import numpy as np
import rmsfuse, rmsfuse.torch
import torch

pkg_dir, lib_dir = (os.path.realpath(p) for p in sys.argv[1:3])
here = os.path.realpath(os.path.dirname(rmsfuse.__file__))
assert here == pkg_dir, f"rmsfuse imported from {here}, expected {pkg_dir}"
# The files really mapped (library_path is the one the loader mapped, from /proc/self/maps too).
maps = {}
with open("/proc/self/maps") as f:
    for line in f:
        p = line.split(None, 5)[-1].strip()
        for so in ("librmsfuse.so.0", "librmsfuse_pool.so.0"):
            if os.path.basename(p).startswith(so):
                maps.setdefault(so, os.path.realpath(p))
print(f"rmsfuse {rmsfuse.version()} from {here}")
print(f"library_path={rmsfuse.library_path} pool_available={rmsfuse.pool_available()}")
for so in ("librmsfuse.so.0", "librmsfuse_pool.so.0"):
    assert so in maps, f"{so} is not loaded"
    print(f"  {so}: {maps[so]}")
    assert os.path.dirname(maps[so]) == lib_dir, f"{so} loaded from {maps[so]}, expected {lib_dir}"
assert rmsfuse.pool_available(), "the thread pool library is not available"
assert os.path.realpath(rmsfuse.library_path) == maps["librmsfuse.so.0"], rmsfuse.library_path

# A NumPy step against PyTorch's RMSProp formula.
p = np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
g = np.array([0.1, -0.2, 0.3, 0.0], dtype=np.float32)
sq = np.zeros_like(p)
p0 = p.copy()
rmsfuse.step(rmsfuse.Config.pytorch(lr=0.01), p, g, sq)
sq_ref = (1 - 0.99) * g.astype(np.float64) ** 2
p_ref = p0 - 0.01 * g / (np.sqrt(sq_ref) + 1e-8)
assert np.allclose(sq, sq_ref, rtol=1e-6) and np.allclose(p, p_ref, rtol=1e-6), (p, p_ref)
# A rmsfuse.torch step against torch.optim, with the pool.
torch.manual_seed(0)
w = torch.randn(1000)
for cls_f, cls_t in ((rmsfuse.torch.Adam, torch.optim.Adam), (rmsfuse.torch.RMSprop, torch.optim.RMSprop)):
    a, b = w.clone().requires_grad_(), w.clone().requires_grad_()
    oa, ob = cls_f([a], lr=1e-2, threads=2), cls_t([b], lr=1e-2)
    for _ in range(3):
        for x, o in ((a, oa), (b, ob)):
            o.zero_grad()
            (x * x).sum().backward()
            o.step()
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (cls_f.__name__, (a - b).abs().max())
print(f"numpy step and rmsfuse.torch steps (threads=2) agree with the references; ISA {rmsfuse.active_isa()}")
EOF
    )
}

system_python() {
    python_check "$py" /usr/lib/python3/dist-packages/rmsfuse "/usr/lib/$multiarch"
    echo "== /usr/bin/rmsfuse info"
    (cd / && rmsfuse info >"$root/$out/rmsfuse-info.log") || { cat "$out/rmsfuse-info.log"; fail "/usr/bin/rmsfuse info"; }
    head -n 3 "$out/rmsfuse-info.log"
    [ -f /usr/share/man/man1/rmsfuse.1.gz ] || fail "no manual page"
}

purge_debs() {
    apt-get purge -y -qq "${pkgs_purge[@]}" >"$out/apt-purge.log" 2>&1 || { cat "$out/apt-purge.log"; fail "apt-get purge"; }
    local p
    for p in "${pkgs_purge[@]}"; do
        if pkg_present "$p"; then fail "$p is still installed"; fi
    done
    [ ! -e /usr/lib/python3/dist-packages/rmsfuse ] || fail "/usr/lib/python3/dist-packages/rmsfuse left after purge"
    [ ! -e "/usr/lib/$multiarch/librmsfuse.so.0" ] || fail "librmsfuse.so.0 left after purge"
    [ ! -e /usr/bin/rmsfuse ] || fail "/usr/bin/rmsfuse left after purge"
    echo "purged: ${pkgs_purge[*]}"
}

# ---- 5. pip install ./python in a fresh venv ---------------------------------------
pip_venv() {
    local venv=$root/$out/venv
    rm -rf "$venv"
    "$py" -m venv --system-site-packages "$venv"
    local reuse=("RMSFUSE_CMAKE_BUILD_DIR=$root/$out")
    [ "${RMSFUSE_PACKAGES_FRESH_PIP:-0}" = 1 ] && reuse=()
    # Offline: no package index, no local wheel folders (numpy comes from the system site packages).
    env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL "${reuse[@]}" PIP_NO_INDEX=1 "$venv/bin/pip" install --no-build-isolation ./python >"$out/pip.log" 2>&1 ||
        { tail -n 40 "$out/pip.log"; fail "pip install --no-build-isolation ./python"; }
    grep -E "bundled|Created wheel|Successfully installed|WARNING" "$out/pip.log" || true
    grep -q "py3-none-linux_" "$out/pip.log" || fail "the wheel is not platform specific (py3-none-linux_*)"
    # Nothing left in the source tree.
    if [ -e python/build ] || compgen -G "python/*.egg-info" >/dev/null || compgen -G "python/rmsfuse/*.so*" >/dev/null; then
        fail "pip left build files in python/: $(ls -d python/build python/*.egg-info python/rmsfuse/*.so* 2>/dev/null)"
    fi
    local site
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
    python_check "$venv/bin/python" "$site/rmsfuse" "$site/rmsfuse"
    if [ -f python/rmsfuse/cli.py ]; then
        (cd / && "$venv/bin/rmsfuse" info >"$root/$out/venv-rmsfuse-info.log") ||
            { cat "$out/venv-rmsfuse-info.log"; fail "$venv/bin/rmsfuse info"; }
        head -n 2 "$out/venv-rmsfuse-info.log"
    else
        echo "(python/rmsfuse/cli.py is not there yet: the rmsfuse command is not run)"
    fi
}

step "build (Release, pool, CPack)" build_debs
step "dpkg-deb checks" inspect_debs
step "lintian" run_lintian
step "apt-get install" install_debs
step "consumer (find_package, pkg-config)" consumer
step "system python3" system_python
step "apt-get purge" purge_debs
step "pip install ./python (venv)" pip_venv
echo
echo "==================== packages: summary ===================="
printf '%s\n' "${summary[@]}"
for f in "$out"/*.deb; do echo "$f ($(stat -c %s "$f") bytes)"; done
echo "packages: all checks passed ($((SECONDS - t_start)) s)"

"""Builds the C libraries and bundles them in the Python package.

``pip install ./python`` (from a clone; see README.md) runs this through setuptools: the
build_py step configures and builds the repository root (``..``) with CMake in a scratch
folder (Release, the thread pool on, no tests) and copies ``librmsfuse.so.0`` and
``librmsfuse_pool.so.0`` into the package, next to ``_lib.py``, which loads them first.
Nothing is written into the source tree: setuptools' ``build/`` and ``*.egg-info`` go to a
temporary folder too.  The wheel is platform specific (it holds native code) but not tied
to a Python version or ABI (the binding is ctypes): ``py3-none-linux_<arch>``.

Without hwloc's development files (Debian: libhwloc-dev, pkg-config) the pool cannot be
built: the package is then built without it (``rmsfuse.pool_available()`` is False) and
the build says so.  Environment variables:

    RMSFUSE_SOURCE_DIR   the rmsfuse source tree (default: the parent of this folder)
    RMSFUSE_BUILD_POOL   ON (default: fall back to OFF, with a warning, if hwloc is
                         missing), OFF, or REQUIRED (fail without hwloc)
    RMSFUSE_CMAKE_ARGS   more arguments for the CMake configure step (split on spaces)
    RMSFUSE_CMAKE_BUILD_DIR  a persistent CMake build folder to (re)use, instead of a
                         temporary one
    CMAKE                the cmake program (default: cmake on PATH)
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py as _build_py

try:  # setuptools >= 70.1 has its own bdist_wheel; before, the wheel package's
    from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel
except ImportError:  # pragma: no cover
    try:
        from wheel.bdist_wheel import bdist_wheel as _bdist_wheel
    except ImportError:
        _bdist_wheel = None

HERE = os.path.dirname(os.path.abspath(__file__))
SONAMES = ("librmsfuse.so.0", "librmsfuse_pool.so.0")

# setuptools' build/ and rmsfuse.egg-info/ would otherwise land in python/: a scratch folder
# per run instead, removed at exit (pip runs each build hook in its own process).
_SCRATCH = tempfile.mkdtemp(prefix="rmsfuse-pybuild-")
atexit.register(shutil.rmtree, _SCRATCH, True)


def _say(msg):
    print("rmsfuse: " + msg, file=sys.stderr, flush=True)


def _source_dir():
    src = os.path.abspath(os.environ.get("RMSFUSE_SOURCE_DIR") or os.path.join(HERE, ".."))
    cml = os.path.join(src, "CMakeLists.txt")
    if not (os.path.isfile(cml) and os.path.isfile(os.path.join(src, "include", "rmsfuse.h"))):
        raise SystemExit(
            f"rmsfuse: the C sources are not at {src}: install from a clone of the repository "
            "(pip install ./python), or set RMSFUSE_SOURCE_DIR to the source tree")
    return src


def _run(cmd, log):
    _say("$ " + " ".join(cmd))
    with open(log, "ab") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    return r.returncode == 0


def _tail(log, n=40):
    with open(log, errors="replace") as f:
        lines = f.readlines()
    return "".join(lines[-n:])


def build_libraries():
    """Configures and builds rmsfuse with CMake; returns (folder with the libraries, pool built?)."""
    cmake = os.environ.get("CMAKE", "cmake")
    if shutil.which(cmake) is None:
        raise SystemExit("rmsfuse: cmake (>= 3.25) is needed to build the library (Debian: cmake)")
    src = _source_dir()
    bdir = os.environ.get("RMSFUSE_CMAKE_BUILD_DIR") or os.path.join(_SCRATCH, "cmake")
    bdir = os.path.abspath(bdir)
    os.makedirs(bdir, exist_ok=True)
    log = os.path.join(bdir, "rmsfuse-build.log")
    pool = os.environ.get("RMSFUSE_BUILD_POOL", "ON").upper()
    base = [cmake, "-S", src, "-B", bdir,
            "-DCMAKE_BUILD_TYPE=Release", "-DRMSFUSE_BUILD_TESTS=OFF", "-DRMSFUSE_BUILD_BENCH=OFF",
            "-DRMSFUSE_BUILD_MPI_EXAMPLE=OFF", "-DRMSFUSE_BUILD_FUZZ=OFF",
            # The bundled pool finds the core next to it, wherever the package is installed.
            "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON", "-DCMAKE_INSTALL_RPATH=$ORIGIN"]
    base += os.environ.get("RMSFUSE_CMAKE_ARGS", "").split()
    with_pool = pool != "OFF"
    if with_pool and not _run(base + ["-DRMSFUSE_BUILD_POOL=ON"], log):
        if pool == "REQUIRED":
            raise SystemExit("rmsfuse: CMake configure failed (RMSFUSE_BUILD_POOL=REQUIRED):\n" + _tail(log))
        _say("WARNING: the thread pool cannot be built (hwloc's development files are missing? "
             "Debian: apt-get install libhwloc-dev pkg-config); building without it: "
             "rmsfuse.pool_available() will be False")
        with_pool = False
    if not with_pool and not _run(base + ["-DRMSFUSE_BUILD_POOL=OFF"], log):
        raise SystemExit("rmsfuse: CMake configure failed:\n" + _tail(log))
    jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 2)
    targets = ["rmsfuse"] + (["rmsfuse_pool"] if with_pool else [])
    if not _run([cmake, "--build", bdir, "-j", jobs, "--target"] + targets, log):
        raise SystemExit("rmsfuse: building the library failed:\n" + _tail(log))
    return bdir, with_pool


class build_py(_build_py):
    """Copies the modules, then builds the C libraries and puts them in the package."""

    def run(self):
        super().run()
        if self.dry_run:
            return
        bdir, with_pool = build_libraries()
        dest = os.path.join(self.build_lib, "rmsfuse")
        os.makedirs(dest, exist_ok=True)
        for name in SONAMES[:2 if with_pool else 1]:
            # librmsfuse.so.0 is a symlink to librmsfuse.so.0.x.y: copy the file itself.
            src = os.path.realpath(os.path.join(bdir, name))
            shutil.copyfile(src, os.path.join(dest, name))
            os.chmod(os.path.join(dest, name), 0o755)
            _say(f"bundled {name} (from {src})")
        for name in SONAMES[1:] if not with_pool else ():
            stale = os.path.join(dest, name)
            if os.path.exists(stale):
                os.remove(stale)

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [
            os.path.join(self.build_lib, "rmsfuse", n) for n in SONAMES
            if os.path.exists(os.path.join(self.build_lib, "rmsfuse", n))]


class BinaryDistribution(Distribution):
    """Native code inside: build/ and install/ use the platform library folders (platlib)."""

    def has_ext_modules(self):
        return True


cmdclass = {"build_py": build_py}

if _bdist_wheel is not None:
    class bdist_wheel(_bdist_wheel):
        """A platform wheel (native libraries inside), for any Python 3 (ctypes, no extension)."""

        def finalize_options(self):
            super().finalize_options()
            self.root_is_pure = False

        def get_tag(self):
            _, _, plat = super().get_tag()
            return "py3", "none", plat

    cmdclass["bdist_wheel"] = bdist_wheel

setup(
    distclass=BinaryDistribution,
    cmdclass=cmdclass,
    options={
        "build": {"build_base": os.path.join(_SCRATCH, "build")},
        "egg_info": {"egg_base": _SCRATCH},
    },
)

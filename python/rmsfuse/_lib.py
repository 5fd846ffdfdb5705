"""Loading librmsfuse (and librmsfuse_pool when present) with ctypes.

Search order for the core library (the first that loads wins):

1. the environment variable RMSFUSE_LIBRARY: a path to the shared library
   (``.../librmsfuse.so.0``); if it is set and cannot be loaded, import fails
   rather than silently taking another copy;
2. next to the package (``rmsfuse/librmsfuse.so.0``, for a copy bundled
   with the package);
3. the source tree's build folders, when the package is used from a clone
   (``<repo>/python/rmsfuse``): ``build/release``, ``build/test``,
   ``build/dev``, then any other ``build/*``;
4. the system: ``ctypes.util.find_library("rmsfuse")`` (an installed
   ``librmsfuse.so.0`` that ldconfig knows, e.g. under /usr/local/lib).

The thread pool library is looked for in the same folder as the core
library that was loaded (or as RMSFUSE_POOL_LIBRARY says), then through
``find_library("rmsfuse_pool")``.  It is optional: without it
``rmsfuse.pool_available()`` is False.

Every function's ctypes signature, and every struct, comes from _abi.py, which
scripts/gen_python_abi.py generates from the C headers.
"""

import ctypes
import ctypes.util
import glob
import os

from . import _abi
from ._abi import rmsfuse_rmsprop_config, rmsfuse_tensor  # noqa: F401  (the names of 0.1)

# The ABI this binding was generated from (include/rmsfuse_common.h; docs/abi.md: 0.x, a minor
# version may change it).
ABI_MAJOR_MINOR = _abi.VERSION[:2]

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_HERE))
_SONAME = "librmsfuse.so.0"
_POOL_SONAME = "librmsfuse_pool.so.0"
_BUILD_DIRS = ("release", "test", "dev")


class LibraryNotFound(ImportError):
    """librmsfuse could not be found or loaded."""


def _candidates():
    here = os.path.join(_HERE, _SONAME)
    if os.path.exists(here):
        yield here
    if os.path.isfile(os.path.join(_REPO, "include", "rmsfuse.h")):
        seen = set()
        for d in _BUILD_DIRS:
            p = os.path.join(_REPO, "build", d, _SONAME)
            seen.add(p)
            if os.path.exists(p):
                yield p
        others = sorted(glob.glob(os.path.join(_REPO, "build", "*", _SONAME)), key=os.path.getmtime, reverse=True)
        for p in others:
            if p not in seen:
                yield p
    found = ctypes.util.find_library("rmsfuse")
    if found:
        yield found


def _where_loaded(name):
    """The file the dynamic loader mapped for a library loaded by soname (find_library gives a bare
    name such as librmsfuse.so.0): its path from /proc/self/maps, or the name when that is unknown."""
    if os.path.sep in name:
        return name
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(None, 5)[-1].strip()
                if os.path.basename(path) == name or os.path.basename(path).startswith(name + "."):
                    return path
    except OSError:
        pass
    return name


def _load_core():
    env = os.environ.get("RMSFUSE_LIBRARY")
    if env:
        try:
            return ctypes.CDLL(env), env
        except OSError as e:
            raise LibraryNotFound(f"RMSFUSE_LIBRARY={env!r} could not be loaded: {e}") from None
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path), _where_loaded(path)
        except OSError as e:  # e.g. a build for another architecture
            errors.append(f"{path}: {e}")
    raise LibraryNotFound(
        "librmsfuse not found: set RMSFUSE_LIBRARY to the path of librmsfuse.so.0, build the "
        "library in this clone (cmake -S . -B build/release && cmake --build build/release), or install it"
        + ("" if not errors else " (tried: " + "; ".join(errors) + ")"))


def _load_pool(core_path):
    env = os.environ.get("RMSFUSE_POOL_LIBRARY")
    paths = []
    if env:
        paths.append(env)
    else:
        if os.path.sep in core_path:
            paths.append(os.path.join(os.path.dirname(core_path), _POOL_SONAME))
        found = ctypes.util.find_library("rmsfuse_pool")
        if found:
            paths.append(found)
    for p in paths:
        if os.path.sep in p and not os.path.exists(p):
            continue
        try:
            return ctypes.CDLL(p), _where_loaded(p)
        except OSError:
            continue
    return None, None


def _declare(lib, which):
    """Sets restype and argtypes of every function of `which` ("core" or "pool") from the headers' prototypes."""
    for name, (where, res, args, _) in _abi.FUNCTIONS.items():
        if where == which:
            f = getattr(lib, name)
            f.restype, f.argtypes = res, args


lib, path = _load_core()
try:
    _declare(lib, "core")
except AttributeError as e:
    raise LibraryNotFound(f"{path} is not a usable librmsfuse ({e})") from None
version = lib.rmsfuse_version().decode()
if tuple(int(x) for x in version.split(".")[:2]) != ABI_MAJOR_MINOR:
    raise LibraryNotFound(f"{path} is librmsfuse {version}; this binding needs "
                          f"{ABI_MAJOR_MINOR[0]}.{ABI_MAJOR_MINOR[1]}.x")

pool_lib, pool_path = _load_pool(path)
if pool_lib is not None:
    try:
        _declare(pool_lib, "pool")
    except AttributeError:
        pool_lib, pool_path = None, None

"""rmsfuse: fused, SIMD-accelerated RMSProp updates on NumPy float32 arrays.

A ctypes binding of the C library librmsfuse (and of the thread pool
librmsfuse_pool when it is built).  See docs/python.md.

    import numpy as np, rmsfuse
    cfg = rmsfuse.Config.pytorch(lr=0.01)          # torch.optim.RMSprop defaults
    rmsfuse.step(cfg, param, grad, square_avg)     # in place, one pass

Arrays must be NumPy float32 (native byte order), C-contiguous, aligned and
of the same shape as param; param and the state arrays must be writeable.
Bad input raises TypeError / ValueError (from the binding's checks) or
RmsfuseError (a ValueError with the library's status) and changes nothing.
"""

import ctypes

from . import _lib
from ._lib import LibraryNotFound  # noqa: F401  (re-exported)

try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    raise ImportError("rmsfuse needs NumPy (Debian: python3-numpy)") from e

__all__ = [
    "Config", "RmsfuseError", "step", "step_multi", "check", "active_isa", "isa_supported", "set_isa",
    "isa_names", "isa_env_status", "version", "library_path", "pool_available", "Pool", "machine_cores",
    "CENTERED", "EPS_IN_SQRT", "LR_IN_MOMENTUM", "MAXIMIZE", "ALL_FLAGS",
]

__version__ = _lib.version

CENTERED = 1 << 0
EPS_IN_SQRT = 1 << 1
LR_IN_MOMENTUM = 1 << 2
MAXIMIZE = 1 << 3
ALL_FLAGS = CENTERED | EPS_IN_SQRT | LR_IN_MOMENTUM | MAXIMIZE

STATUS_NAMES = {
    0: "RMSFUSE_OK", -1: "RMSFUSE_E_NULL_CONFIG", -2: "RMSFUSE_E_NULL_ARRAY", -3: "RMSFUSE_E_NULL_MOMENTUM_BUF",
    -4: "RMSFUSE_E_NULL_GRAD_AVG", -5: "RMSFUSE_E_NONFINITE", -6: "RMSFUSE_E_LR", -7: "RMSFUSE_E_ALPHA",
    -8: "RMSFUSE_E_EPS", -9: "RMSFUSE_E_WEIGHT_DECAY", -10: "RMSFUSE_E_MOMENTUM", -11: "RMSFUSE_E_FLAGS",
    -12: "RMSFUSE_E_OVERLAP", -13: "RMSFUSE_E_SIZE", -14: "RMSFUSE_E_UNKNOWN_ISA",
    -15: "RMSFUSE_E_ISA_UNSUPPORTED", -16: "RMSFUSE_E_NULL_LIST", -17: "RMSFUSE_E_NO_MEMORY",
    -18: "RMSFUSE_E_NULL_POOL", -19: "RMSFUSE_E_THREADS",
}
globals().update({name[len("RMSFUSE_"):]: code for code, name in STATUS_NAMES.items()})  # OK, E_LR, ...

library_path = _lib.path
_L = _lib.lib


class RmsfuseError(ValueError):
    """The library refused a call; .status is the rmsfuse_status code, .name its name."""

    def __init__(self, status, context=""):
        self.status = status
        self.name = STATUS_NAMES.get(status, str(status))
        msg = f"{self.name}: {_L.rmsfuse_strerror(status).decode()}"
        super().__init__(f"{context}: {msg}" if context else msg)


def _raise_on(status, context=""):
    if status != 0:
        raise RmsfuseError(status, context)


class Config:
    """RMSProp hyperparameters and flags: the C struct rmsfuse_rmsprop_config.

    The defaults are torch.optim.RMSprop's.  Start from a preset
    (Config.pytorch / .tensorflow / .keras) or give every field.  The values
    are checked by the library on every step (and by .validate()).
    """

    __slots__ = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "eps_in_sqrt", "lr_in_momentum",
                 "maximize")

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 eps_in_sqrt=False, lr_in_momentum=False, maximize=False):
        self.lr, self.alpha, self.eps = float(lr), float(alpha), float(eps)
        self.weight_decay, self.momentum = float(weight_decay), float(momentum)
        self.centered, self.eps_in_sqrt = bool(centered), bool(eps_in_sqrt)
        self.lr_in_momentum, self.maximize = bool(lr_in_momentum), bool(maximize)

    @classmethod
    def _from_c(cls, c):
        f = c.flags
        return cls(c.lr, c.alpha, c.eps, c.weight_decay, c.momentum, bool(f & CENTERED), bool(f & EPS_IN_SQRT),
                   bool(f & LR_IN_MOMENTUM), bool(f & MAXIMIZE))

    @classmethod
    def pytorch(cls, lr=1e-2):
        """torch.optim.RMSprop: alpha 0.99, eps 1e-8 outside the sqrt, lr outside the momentum buffer."""
        return cls._from_c(_L.rmsfuse_rmsprop_pytorch(float(lr)))

    @classmethod
    def tensorflow(cls, lr=1e-3):
        """TensorFlow ApplyRMSProp: rho 0.9, eps 1e-10 inside the sqrt, lr inside the momentum buffer."""
        return cls._from_c(_L.rmsfuse_rmsprop_tensorflow(float(lr)))

    @classmethod
    def keras(cls, lr=1e-3):
        """Keras RMSprop: rho 0.9, eps 1e-7 inside the sqrt, lr inside the momentum buffer."""
        return cls._from_c(_L.rmsfuse_rmsprop_keras(float(lr)))

    @property
    def flags(self):
        return ((CENTERED if self.centered else 0) | (EPS_IN_SQRT if self.eps_in_sqrt else 0)
                | (LR_IN_MOMENTUM if self.lr_in_momentum else 0) | (MAXIMIZE if self.maximize else 0))

    def _c(self):
        return _lib.rmsfuse_rmsprop_config(self.lr, self.alpha, self.eps, self.weight_decay, self.momentum,
                                           self.flags)

    def validate(self):
        """Raises RmsfuseError if the library would refuse these hyperparameters; returns self."""
        _raise_on(_L.rmsfuse_rmsprop_check_config(ctypes.byref(self._c())), "invalid configuration")
        return self

    def __repr__(self):
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"rmsfuse.Config({fields})"

    def __eq__(self, other):
        return isinstance(other, Config) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)


_F32 = np.dtype(np.float32)


def _ptr(a, what, shape, writeable):
    """Checks one array and returns its address (a Python int)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{what} must be a numpy.ndarray, not {type(a).__name__}")
    if a.dtype != _F32:
        raise TypeError(f"{what} must have dtype float32 (native byte order), not {a.dtype.str} ({a.dtype})")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{what} has shape {a.shape}, param has shape {shape}: the sizes must match")
    if not a.flags.c_contiguous:
        raise ValueError(f"{what} is not C-contiguous (strides {a.strides}); the update is in place, so a "
                         f"contiguous copy would not be updated")
    if not a.flags.aligned:
        raise ValueError(f"{what} is not aligned to 4 bytes")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{what} is read-only; param and the optimizer state are updated in place")
    return a.ctypes.data if a.size else None


def _pointers(cfg, arrays, where=""):
    """(param, grad, square_avg, momentum_buf, grad_avg) -> their addresses and n; unused state is None."""
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be an rmsfuse.Config, not {type(cfg).__name__}")
    if len(arrays) < 3 or len(arrays) > 5:
        raise TypeError(f"{where}expected (param, grad, square_avg[, momentum_buf[, grad_avg]]), "
                        f"got {len(arrays)} arrays")
    param, grad, sq = arrays[:3]
    mom = arrays[3] if len(arrays) > 3 else None
    gavg = arrays[4] if len(arrays) > 4 else None
    pp = _ptr(param, where + "param", None, True)
    shape = param.shape
    ptrs = [pp, _ptr(grad, where + "grad", shape, False), _ptr(sq, where + "square_avg", shape, True), None, None]
    # State a configuration does not use is ignored, as by the C library.
    if cfg.momentum != 0 and mom is not None:
        ptrs[3] = _ptr(mom, where + "momentum_buf", shape, True)
    if cfg.centered and gavg is not None:
        ptrs[4] = _ptr(gavg, where + "grad_avg", shape, True)
    return ptrs, param.size


def step(cfg, param, grad, square_avg, momentum_buf=None, grad_avg=None):
    """One RMSProp step in place over float32 arrays of one shape.

    momentum_buf is needed when cfg.momentum != 0, grad_avg when
    cfg.centered; otherwise they are ignored.  On any error (TypeError,
    ValueError, RmsfuseError) no array has been changed.
    """
    ptrs, n = _pointers(cfg, (param, grad, square_avg, momentum_buf, grad_avg))
    _raise_on(_L.rmsfuse_rmsprop_step(ctypes.byref(cfg._c()), *ptrs, n))


def check(cfg, param, grad, square_avg, momentum_buf=None, grad_avg=None):
    """The status code step() would get from the library (0 if it would run); changes nothing.

    Binding-level problems (dtype, layout, shapes) still raise as in step()."""
    ptrs, n = _pointers(cfg, (param, grad, square_avg, momentum_buf, grad_avg))
    return _L.rmsfuse_rmsprop_check(ctypes.byref(cfg._c()), *ptrs, n)


def _tensor_list(cfg, tensors):
    tensors = list(tensors)
    arr = (_lib.rmsfuse_tensor * len(tensors))()
    for i, t in enumerate(tensors):
        if isinstance(t, np.ndarray) or not isinstance(t, (tuple, list)):
            raise TypeError(f"tensors[{i}] must be a tuple (param, grad, square_avg[, momentum_buf[, grad_avg]])")
        ptrs, n = _pointers(cfg, tuple(t), f"tensors[{i}].")
        arr[i] = _lib.rmsfuse_tensor(*ptrs, n)
    return arr


def step_multi(cfg, tensors):
    """One step of every (param, grad, square_avg[, momentum_buf[, grad_avg]]) tuple, in one library call.

    The same bits as step() on each; everything is checked before anything
    is written, and no array written may overlap any other array of the list
    (gradients may be shared).  On error no array has changed.
    """
    arr = _tensor_list(cfg, tensors)
    _raise_on(_L.rmsfuse_rmsprop_step_multi(ctypes.byref(cfg._c()), arr, len(arr)))


# ---- instruction sets ---------------------------------------------------------
def active_isa():
    """The implementation in use: "avx512", "avx2", "sse2", "neon" or "scalar"."""
    return _L.rmsfuse_active_isa().decode()


def isa_supported(name):
    """True if `name` is compiled in and runs on this CPU/OS ("auto" is always True)."""
    return bool(_L.rmsfuse_isa_supported(str(name).encode()))


def set_isa(name):
    """Forces an implementation by name, or "auto" for detection (process-wide).

    Raises RmsfuseError (RMSFUSE_E_UNKNOWN_ISA / RMSFUSE_E_ISA_UNSUPPORTED);
    the active ISA is then unchanged."""
    _raise_on(_L.rmsfuse_set_isa(str(name).encode()), f"set_isa({name!r})")


def isa_names():
    """Every ISA this build of the library knows, best last."""
    out, p, i = [], _L.rmsfuse_isa_names(), 0
    while p[i] is not None:
        out.append(p[i].decode())
        i += 1
    return out


def isa_env_status():
    """0 if RMSFUSE_ISA was unset or applied at first use, else the status why it was ignored."""
    return _L.rmsfuse_isa_env_status()


def version():
    """The loaded library's version string."""
    return _lib.version


# ---- the thread pool ------------------------------------------------------------
def pool_available():
    """True if librmsfuse_pool was found (built when hwloc is available)."""
    return _lib.pool_lib is not None


def _pool_lib():
    if _lib.pool_lib is None:
        raise RuntimeError("the thread pool library librmsfuse_pool was not found next to " + library_path
                           + " (it is built when hwloc is found: Debian libhwloc-dev)")
    return _lib.pool_lib


def machine_cores():
    """Cores on this machine as hwloc counts them (needs the pool library)."""
    return _pool_lib().rmsfuse_pool_machine_cores()


class Pool:
    """Worker threads bound to cores that split a step (rmsfuse_pool.h).

    Results are bit-identical to step()/step_multi().  threads=0: one per
    core.  Close it with .close() or use it as a context manager.
    """

    def __init__(self, threads=0):
        lib = _pool_lib()
        if not isinstance(threads, int) or isinstance(threads, bool):
            raise TypeError(f"threads must be an int, not {type(threads).__name__}")
        h = ctypes.c_void_p()
        _raise_on(lib.rmsfuse_pool_create(ctypes.byref(h), threads), f"Pool({threads})")
        self._lib, self._h = lib, h

    @property
    def threads(self):
        return self._lib.rmsfuse_pool_threads(self._handle())

    def _handle(self):
        if self._h is None:
            raise ValueError("the pool is closed")
        return self._h

    def set_chunk(self, elements):
        _raise_on(self._lib.rmsfuse_pool_set_chunk(self._handle(), int(elements)))

    def step(self, cfg, param, grad, square_avg, momentum_buf=None, grad_avg=None):
        """step() on the pool's threads."""
        ptrs, n = _pointers(cfg, (param, grad, square_avg, momentum_buf, grad_avg))
        _raise_on(self._lib.rmsfuse_pool_rmsprop_step(self._handle(), ctypes.byref(cfg._c()), *ptrs, n))

    def step_multi(self, cfg, tensors):
        """step_multi() on the pool's threads."""
        arr = _tensor_list(cfg, tensors)
        _raise_on(self._lib.rmsfuse_pool_rmsprop_step_multi(self._handle(), ctypes.byref(cfg._c()), arr,
                                                            len(arr)))

    def close(self):
        if getattr(self, "_h", None) is not None:
            self._lib.rmsfuse_pool_destroy(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

"""rmsfuse: fused, SIMD-accelerated optimizer updates on NumPy float32 arrays.

A ctypes binding of the C library librmsfuse (and of the thread pool
librmsfuse_pool when it is built): RMSProp, AdaGrad, SGD, Adam/AdamW.  See
docs/python.md.

    import numpy as np, rmsfuse
    cfg = rmsfuse.Config.pytorch(lr=0.01)          # torch.optim.RMSprop defaults
    rmsfuse.step(cfg, param, grad, square_avg)     # in place, one pass

    cfg = rmsfuse.AdamWConfig.pytorch(lr=1e-3)     # torch.optim.AdamW defaults
    cfg.step = 1                                   # this step's number (bias corrections)
    rmsfuse.step(cfg, param, grad, exp_avg, exp_avg_sq)

The presets, as the C library's, set flush_subnormal (RMSFUSE_FLUSH_SUBNORMAL:
state values below FLT_MIN become +0, so exactly-zero gradients never leave
the state subnormal and every later step slow); a configuration built by hand
(rmsfuse.Config(lr=...)) has it off unless flush_subnormal=True, as a C config
with flags = 0.  docs/python.md says why.

The rule is the configuration's: step(), check(), step_multi(), Plan and
Pool take any rule's config (Config/RMSpropConfig, AdagradConfig, SGDConfig,
AdamConfig, AdamWConfig) and that rule's arrays, in the order of the C
function (ARRAYS[rule]).  Arrays must be NumPy float32 (native byte order),
C-contiguous, aligned and of the same shape as param; param and the state
arrays must be writeable.  Bad input raises TypeError / ValueError (from the
binding's checks) or RmsfuseError (a ValueError with the library's status)
and changes nothing.

Storage types (docs/math.md, "Storage types"): step_typed(), check_typed(),
step_multi_typed(), check_multi_typed() and Plan(..., storage=) take arrays in
narrower types than float32, described by a Storage (bf16/f16 params and
gradients as uint16 arrays of their bits, split bf16 and float32 master weights
through param_extra, bf16 state, 8-bit block-quantised state as (codes,
scales) pairs); convert_from_f32() and convert_to_f32() convert with the
library's own rounding.  docs/python.md, "Storage types".

The status codes, flag bits, structs and function signatures come from
_abi.py, generated from the C headers by scripts/gen_python_abi.py.
"""

import ctypes
import inspect
import numbers

from . import _abi, _lib
from ._lib import LibraryNotFound  # noqa: F401  (re-exported)

try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    raise ImportError("rmsfuse needs NumPy (Debian: python3-numpy)") from e

__version__ = _lib.version
library_path = _lib.path
_L = _lib.lib

# ---- status codes and flags, from the headers ----------------------------------
STATUS_NAMES = {value: name for name, value, _ in _abi.STATUS}
STATUS_TEXTS = {value: text for _, value, text in _abi.STATUS}
STATUS = {name[len("RMSFUSE_"):]: value for name, value, _ in _abi.STATUS}  # {"OK": 0, "E_LR": -6, ...}
FLAGS = {name: value for name, value, _ in _abi.FLAGS}  # {"CENTERED": 1, ...}
globals().update(STATUS)  # rmsfuse.OK, rmsfuse.E_LR, ...
globals().update(FLAGS)  # rmsfuse.CENTERED, rmsfuse.NESTEROV, ...
globals().update(_abi.MASKS)  # rmsfuse.ALL_FLAGS, rmsfuse.ADAM_FLAGS, ...

STORAGE_TYPES = dict(_abi.STORAGE_TYPES)  # {"F32": 0, "BF16": 1, ...}
STORAGE_FLAGS = {name: value for name, value, _ in _abi.STORAGE_FLAGS}  # {"MASTER_WEIGHTS": 1, ...}
globals().update(STORAGE_TYPES)  # rmsfuse.F32, rmsfuse.BF16, ..., rmsfuse.Q8_LINEAR
globals().update(STORAGE_FLAGS)  # rmsfuse.MASTER_WEIGHTS, rmsfuse.STOCHASTIC_ROUNDING
Q8_BLOCK = _abi.Q8_BLOCK  # elements per block of 8-bit state (one float32 scale each)
# (the names the binding itself uses, spelled out)
F32, BF16, F16, SPLIT_BF16 = (STORAGE_TYPES[n] for n in ("F32", "BF16", "F16", "SPLIT_BF16"))
MASTER_WEIGHTS, STOCHASTIC_ROUNDING = STORAGE_FLAGS["MASTER_WEIGHTS"], STORAGE_FLAGS["STOCHASTIC_ROUNDING"]

RULES = tuple(_abi.RULES)  # ("adagrad", "adam", "rmsprop", "sgd")
ARRAYS = {rule: tuple(name for name, _ in spec["arrays"]) for rule, spec in _abi.RULES.items()}

__all__ = (["Config", "RMSpropConfig", "AdagradConfig", "SGDConfig", "AdamConfig", "AdamWConfig", "RmsfuseError",
            "step", "check", "step_multi", "check_multi", "Plan", "active_isa", "isa_supported", "set_isa",
            "isa_names", "isa_env_status", "version", "library_path", "pool_available", "Pool", "machine_cores",
            "status_name", "strerror", "STATUS_NAMES", "RULES", "ARRAYS",
            "Storage", "step_typed", "check_typed", "step_multi_typed", "check_multi_typed", "convert_from_f32",
            "convert_to_f32", "typed_zeros", "nonneg_state", "STORAGE_TYPES", "STORAGE_FLAGS", "Q8_BLOCK"]
           + list(STATUS) + list(FLAGS) + list(_abi.MASKS) + list(STORAGE_TYPES) + list(STORAGE_FLAGS))


def status_name(status):
    """The library's name of a status code ("RMSFUSE_E_LR"), or None for an unknown code."""
    name = _L.rmsfuse_status_name(int(status))
    return None if name is None else name.decode()


def strerror(status):
    """The library's description of a status code."""
    return _L.rmsfuse_strerror(int(status)).decode()


class RmsfuseError(ValueError):
    """The library refused a call; .status is the rmsfuse_status code, .name its name."""

    def __init__(self, status, context=""):
        self.status = status
        self.name = STATUS_NAMES.get(status, str(status))
        msg = f"{self.name}: {strerror(status)}"
        super().__init__(f"{context}: {msg}" if context else msg)


def _raise_on(status, context=""):
    if status != 0:
        raise RmsfuseError(status, context)


# ---- rules -------------------------------------------------------------------------
# State arrays a configuration may leave out, and when it uses them (the rule headers'
# comments: "used when cfg->momentum != 0", "when RMSFUSE_CENTERED", "with RMSFUSE_AMSGRAD").
# State a configuration does not use is ignored, neither checked nor passed, as in C.
_OPTIONAL_STATE = {
    "momentum_buf": lambda cfg: cfg.momentum != 0,
    "grad_avg": lambda cfg: cfg.centered,
    "max_exp_avg_sq": lambda cfg: cfg.amsgrad,
}


class _Rule:
    """One update rule of the library, from _abi.RULES: its structs, arrays, flags and functions."""

    def __init__(self, name, spec):
        self.name = name
        self.config_struct, self.tensor_struct = spec["config"], spec["tensor"]
        self.arrays = tuple(a for a, _ in spec["arrays"])
        self.written = dict(spec["arrays"])
        self.optional = tuple(a for a in self.arrays if a in _OPTIONAL_STATE)
        self.required = tuple(a for a in self.arrays if a not in _OPTIONAL_STATE)
        self.usage = "(" + ", ".join(self.required) + "".join(f"[, {a}" for a in self.optional) \
            + "]" * len(self.optional) + ")"
        self.fields = tuple(f for f, _ in self.config_struct._fields_ if f != "flags")
        self.int_fields = {f for f, t in self.config_struct._fields_ if t is ctypes.c_longlong}
        self.flag_mask = spec["flags"]
        self.flags = tuple((n.lower(), v) for n, v, _ in _abi.FLAGS if v & self.flag_mask)
        self.attrs = self.fields + tuple(n for n, _ in self.flags)
        self.presets = spec["presets"]
        for fn in _abi.RULE_FUNCS:
            setattr(self, fn, getattr(_L, f"rmsfuse_{name}_{fn}"))
        # The tensor list is passed as rows of machine words (fast to build from Python ints):
        # it must be exactly the struct's layout.
        word = ctypes.sizeof(ctypes.c_void_p)
        fields = self.tensor_struct._fields_
        assert ctypes.sizeof(self.tensor_struct) == word * len(fields) and all(
            getattr(self.tensor_struct, f).offset == i * word for i, (f, _) in enumerate(fields)), name


_RULES = {name: _Rule(name, spec) for name, spec in _abi.RULES.items()}

# Each framework's default learning rate, for the presets' lr= default (torch.optim, Keras,
# TF1; torch.optim.SGD has none: Keras' 0.01).  A preset missing here requires lr.
_DEFAULT_LR = {
    ("rmsprop", "pytorch"): 1e-2, ("rmsprop", "tensorflow"): 1e-3, ("rmsprop", "keras"): 1e-3,
    ("adagrad", "pytorch"): 1e-2, ("adagrad", "keras"): 1e-3, ("adagrad", "classic"): 1e-2,
    ("sgd", "pytorch"): 1e-2, ("sgd", "keras"): 1e-2,
    ("adam", "pytorch"): 1e-3, ("adam", "keras"): 1e-3, ("adam", "tensorflow"): 1e-3,
    ("adamw", "pytorch"): 1e-3, ("adamw", "keras"): 1e-3,
}
_REQUIRED = inspect.Parameter.empty


class _RuleConfig:
    """Hyperparameters and flags of one rule: its C config struct, flags as booleans.

    Fields as in the C struct (lr, ...; step for AdaGrad and Adam), then one
    boolean per flag the rule accepts (centered, eps_in_sqrt, ...,
    flush_subnormal).  The values are checked by the library on every step
    (and by .validate()).  The presets (.pytorch(), ...) return the C
    presets, which set flush_subnormal; built by hand, every flag is off
    unless given, as in a C struct with flags = 0.
    """

    __slots__ = ()
    _rule = None
    _family = None
    _defaults = {}

    def __init__(self, *args, **kw):
        attrs = self._rule.attrs
        if len(args) > len(attrs):
            raise TypeError(f"{type(self).__name__}() takes at most {len(attrs)} positional arguments "
                            f"({len(args)} given)")
        values = dict(self._defaults)
        values.update(zip(attrs, args))
        for k, v in kw.items():
            if k not in attrs:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {k!r} "
                                f"(fields: {', '.join(attrs)})")
            if k in attrs[:len(args)]:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument {k!r}")
            values[k] = v
        for k in attrs:
            setattr(self, k, self._convert(k, values[k]))

    def _convert(self, k, v):
        if k in self._rule.int_fields:
            return int(v)
        if k in self._rule.fields:
            return float(v)
        return bool(v)

    @classmethod
    def _from_c(cls, c):
        kw = {f: getattr(c, f) for f in cls._rule.fields}
        kw.update({n: bool(c.flags & v) for n, v in cls._rule.flags})
        return cls(**kw)

    @property
    def flags(self):
        """The flag bits (RMSFUSE_*) of the boolean flag attributes."""
        bits = 0
        for n, v in self._rule.flags:
            if getattr(self, n):
                bits |= v
        return bits

    @flags.setter
    def flags(self, bits):
        unknown = int(bits) & ~self._rule.flag_mask
        if unknown:
            raise ValueError(f"flag bits 0x{unknown:x} are not flags of {self._rule.name}")
        for n, v in self._rule.flags:
            setattr(self, n, bool(int(bits) & v))

    @property
    def rule(self):
        """The rule's name: "rmsprop", "adagrad", "sgd" or "adam"."""
        return self._rule.name

    def _c(self):
        r = self._rule
        return r.config_struct(*(int(getattr(self, f)) if f in r.int_fields else float(getattr(self, f))
                                 for f in r.fields), self.flags)

    def validate(self):
        """Raises RmsfuseError if the library would refuse these hyperparameters; returns self."""
        _raise_on(self._rule.check_config(ctypes.byref(self._c())), "invalid configuration")
        return self

    def replace(self, **kw):
        """A copy with some fields changed: cfg.replace(step=2)."""
        return type(self)(**dict({k: getattr(self, k) for k in self._rule.attrs}, **kw))

    def __repr__(self):
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._rule.attrs)
        return f"rmsfuse.{type(self).__name__}({fields})"

    def __eq__(self, other):
        return (isinstance(other, _RuleConfig) and other._rule is self._rule
                and all(getattr(self, k) == getattr(other, k) for k in self._rule.attrs))

    __hash__ = None


def _make_preset(family, preset, function, comment):
    fn = getattr(_L, function)
    default_lr = _DEFAULT_LR.get((family, preset), _REQUIRED)

    def make(cls, lr=default_lr):
        return cls._from_c(fn(float(lr)))

    make.__name__ = preset
    make.__doc__ = f"{comment}\n\n(C: {function}; default lr {default_lr!r}.)" if default_lr is not _REQUIRED \
        else f"{comment}\n\n(C: {function}.)"
    make.__signature__ = inspect.Signature(
        [inspect.Parameter("cls", inspect.Parameter.POSITIONAL_OR_KEYWORD),
         inspect.Parameter("lr", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default_lr)])
    return classmethod(make)


# Flags that every C preset sets and that a configuration built by hand does not (as in C, where
# a struct built by hand has flags = 0): RMSFUSE_FLUSH_SUBNORMAL (docs/math.md, "Subnormal-safe
# state").  Config.pytorch() sets it, Config(...) leaves it off unless flush_subnormal=True.
_PRESETS_ONLY = ("flush_subnormal",)


def _make_config(name, rule, family, doc):
    """The config class of a rule's preset family: slots, presets and defaults from _abi."""
    r = _RULES[rule]
    cls = type(name, (_RuleConfig,), {"__slots__": r.attrs, "_rule": r, "_family": family, "__doc__": doc,
                                      "__module__": __name__})
    for fam, preset, function, comment in r.presets:
        if fam == family:
            setattr(cls, preset, _make_preset(fam, preset, function, comment))
    base = cls.pytorch()  # defaults: the torch preset at torch's default lr ...
    cls._defaults = {k: getattr(base, k) for k in r.attrs}
    # ... except the flags every preset sets that are not the framework's semantics: a config
    # built by hand is a C config built by hand (flags 0 unless given), the presets the C presets.
    cls._defaults.update((k, False) for k in _PRESETS_ONLY if k in cls._defaults)
    cls.__signature__ = inspect.Signature(
        [inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=cls._defaults[k]) for k in r.attrs])
    return cls


Config = RMSpropConfig = _make_config("Config", "rmsprop", "rmsprop", """RMSProp: the C struct rmsfuse_rmsprop_config.

    Config(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, eps_in_sqrt=False,
           lr_in_momentum=False, maximize=False, decoupled_decay=False, nesterov=False,
           flush_subnormal=False)
    The defaults are torch.optim.RMSprop's.  Presets: Config.pytorch / .tensorflow / .keras.
    Every preset also sets flush_subnormal (RMSFUSE_FLUSH_SUBNORMAL: state below FLT_MIN becomes
    +0, so zero gradients never leave it subnormal and slow); a config built by hand has it off,
    as a C struct built with flags = 0 (exact IEEE state).  So Config.pytorch() ==
    Config(flush_subnormal=True).
    Arrays: (param, grad, square_avg[, momentum_buf[, grad_avg]]).""")
AdagradConfig = _make_config("AdagradConfig", "adagrad", "adagrad", """AdaGrad: the C struct rmsfuse_adagrad_config.

    AdagradConfig(lr=1e-2, lr_decay=0, weight_decay=0, eps=1e-10, step=1, eps_in_sqrt=False, maximize=False,
                  decoupled_decay=False, flush_subnormal=False)
    step is this step's number, from 1 (lr_decay uses it).  The defaults are torch.optim.Adagrad's.
    Presets: .pytorch / .keras / .classic (they also set flush_subnormal, as Config's).
    Arrays: (param, grad, sum).""")
SGDConfig = _make_config("SGDConfig", "sgd", "sgd", """SGD: the C struct rmsfuse_sgd_config.

    SGDConfig(lr=1e-2, momentum=0, dampening=0, weight_decay=0, lr_in_momentum=False, maximize=False,
              decoupled_decay=False, nesterov=False, init_momentum=False, flush_subnormal=False)
    init_momentum: this step sets momentum_buf to the gradient (torch's first step with momentum).
    Presets: .pytorch (torch.optim.SGD) / .keras (lr_in_momentum: Keras' velocity); they also set
    flush_subnormal, as Config's.
    Arrays: (param, grad[, momentum_buf]).""")
AdamConfig = _make_config("AdamConfig", "adam", "adam", """Adam: the C struct rmsfuse_adam_config.

    AdamConfig(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0, step=1, maximize=False,
               decoupled_decay=False, amsgrad=False, eps_hat=False, flush_subnormal=False)
    step is this step's number, from 1 (the bias corrections).  The defaults are torch.optim.Adam's.
    Presets: .pytorch / .keras / .tensorflow (they also set flush_subnormal, as Config's).
    Arrays: (param, grad, exp_avg, exp_avg_sq[, max_exp_avg_sq]).""")
AdamWConfig = _make_config("AdamWConfig", "adam", "adamw", """AdamW: Adam with decoupled decay (rmsfuse_adam_config).

    The same fields as AdamConfig, with torch.optim.AdamW's defaults (weight_decay 0.01,
    decoupled_decay=True, flush_subnormal=False).  Presets: .pytorch / .keras (they also set
    flush_subnormal).  Equal to the AdamConfig of the same values.""")
_CONFIG_NAMES = "rmsfuse.Config, rmsfuse.AdagradConfig, rmsfuse.SGDConfig, rmsfuse.AdamConfig or rmsfuse.AdamWConfig"

# ---- arrays ----------------------------------------------------------------------
_F32 = np.dtype(np.float32)


def _rule_of(cfg):
    if not isinstance(cfg, _RuleConfig):
        raise TypeError(f"cfg must be an {_CONFIG_NAMES}, not {type(cfg).__name__}")
    return cfg._rule


def _ptr(a, what, shape, writeable, dtype=_F32, kind="float32"):
    """Checks one array and returns its address (a Python int)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{what} must be a numpy.ndarray, not {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{what} must have dtype {kind} (native byte order), not {a.dtype.str} ({a.dtype})")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{what} has shape {a.shape}, param has shape {shape}: the sizes must match")
    if not a.flags.c_contiguous:
        raise ValueError(f"{what} is not C-contiguous (strides {a.strides}); the update is in place, so a "
                         f"contiguous copy would not be updated")
    if not a.flags.aligned:
        raise ValueError(f"{what} is not aligned to {a.dtype.alignment} bytes")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{what} is read-only; param and the optimizer state are updated in place")
    return a.ctypes.data if a.size else None


def _bind(rule, positional, named, what):
    """(param, grad, *state) and state by name -> the rule's arrays in C order (None where absent)."""
    if len(positional) > len(rule.arrays):
        raise TypeError(f"{what}: {rule.name} takes the arrays {rule.usage}, got {len(positional)}")
    arrays = dict(zip(rule.arrays, positional))
    for k, v in named.items():
        if k not in rule.written:
            raise TypeError(f"{what}: unexpected array {k!r}; {rule.name} takes {rule.usage}")
        if k in arrays:
            raise TypeError(f"{what}: got multiple values for {k!r}")
        arrays[k] = v
    missing = [a for a in rule.required if a not in arrays]
    if missing:
        raise TypeError(f"{what}: missing {', '.join(missing)}; {rule.name} takes {rule.usage}")
    return [arrays.get(a) for a in rule.arrays]


def _pointers(cfg, rule, arrays, where=""):
    """The rule's arrays (C order) -> their addresses and n; state the config does not use is None."""
    param = arrays[0]
    ptrs = [_ptr(param, where + "param", None, True)]
    for name, a in zip(rule.arrays[1:], arrays[1:]):
        used = _OPTIONAL_STATE.get(name)
        if used is not None and (a is None or not used(cfg)):
            ptrs.append(None)  # unused: ignored; missing but used: the library's NULL status
        else:
            ptrs.append(_ptr(a, where + name, param.shape, rule.written[name]))
    return ptrs, param.size


def _rows(cfg, rule, tensors):
    """A tensor list (tuples of the rule's arrays) -> rows of words laid out as the C tensor struct."""
    rows = []
    for i, t in enumerate(tensors):
        if isinstance(t, np.ndarray) or not isinstance(t, (tuple, list)):
            raise TypeError(f"tensors[{i}] must be a tuple {rule.usage}")
        if not len(rule.required) <= len(t) <= len(rule.arrays):
            raise TypeError(f"tensors[{i}]: expected {rule.usage}, got {len(t)} arrays")
        ptrs, n = _pointers(cfg, rule, list(t) + [None] * (len(rule.arrays) - len(t)), f"tensors[{i}].")
        rows.append([p or 0 for p in ptrs] + [n])
    return np.array(rows, dtype=np.uintp).reshape(len(rows), len(rule.arrays) + 1)


def _words(rows):
    """The address of a rows array (any address when it is empty: the count is 0)."""
    return rows.ctypes.data


def step(cfg, param, grad, *state, **named_state):
    """One step of cfg's rule, in place, over float32 arrays of one shape.

    The arrays are the rule's, in the order of its C function (ARRAYS[rule]),
    positional or by name:
      RMSProp (Config)        param, grad, square_avg[, momentum_buf[, grad_avg]]
      AdaGrad (AdagradConfig) param, grad, sum
      SGD (SGDConfig)         param, grad[, momentum_buf]
      Adam (AdamConfig, AdamWConfig) param, grad, exp_avg, exp_avg_sq[, max_exp_avg_sq]
    Optional state is needed when the config uses it (momentum_buf: momentum
    != 0; grad_avg: centered; max_exp_avg_sq: amsgrad); otherwise it is
    ignored.  On any error (TypeError, ValueError, RmsfuseError) no array has
    been changed.
    """
    rule = _rule_of(cfg)
    ptrs, n = _pointers(cfg, rule, _bind(rule, (param, grad) + state, named_state, "step()"))
    _raise_on(rule.step(ctypes.byref(cfg._c()), *ptrs, n))


def check(cfg, param, grad, *state, **named_state):
    """The status code step() would get from the library (0 if it would run); changes nothing.

    Binding-level problems (dtype, layout, shapes) still raise as in step()."""
    rule = _rule_of(cfg)
    ptrs, n = _pointers(cfg, rule, _bind(rule, (param, grad) + state, named_state, "check()"))
    return rule.check(ctypes.byref(cfg._c()), *ptrs, n)


def step_multi(cfg, tensors):
    """One step of every tensor, a tuple of the rule's arrays (as step() takes them), in one library call.

    The same bits as step() on each; everything is checked before anything
    is written, and no array written may overlap any other array of the list
    (gradients may be shared).  On error no array has changed.
    """
    rule = _rule_of(cfg)
    rows = _rows(cfg, rule, tensors)
    _raise_on(rule.step_multi(ctypes.byref(cfg._c()), _words(rows), len(rows)))


def check_multi(cfg, tensors):
    """The status step_multi() would get from the library; changes nothing."""
    rule = _rule_of(cfg)
    rows = _rows(cfg, rule, tensors)
    return rule.check_multi(ctypes.byref(cfg._c()), _words(rows), len(rows))


# ---- storage types -----------------------------------------------------------------
# docs/math.md, "Storage types"; rmsfuse_storage and rmsfuse_typed_tensor in rmsfuse_common.h.
_TYPE_NAME = {v: n.lower() for n, v in STORAGE_TYPES.items()}  # {0: "f32", 1: "bf16", ...}
_TYPE_VALUE = {n.lower(): v for n, v in STORAGE_TYPES.items()}
_TYPE_VALUE.update({alias: _TYPE_VALUE[n] for alias, n in (("float32", "f32"), ("fp32", "f32"), ("bfloat16", "bf16"),
                                                           ("float16", "f16"), ("fp16", "f16")) if n in _TYPE_VALUE})
_ALLOWED = {field: tuple(STORAGE_TYPES[n] for n in names) for field, names in _abi.STORAGE_ALLOWED.items()}
_Q8_TYPES = tuple(STORAGE_TYPES[n] for n in ("Q8", "Q8_LINEAR") if n in STORAGE_TYPES)
_U16 = np.dtype(np.uint16)
_U8 = np.dtype(np.uint8)
# The NumPy dtype of an array of each type (8-bit state: the codes; their scales are float32).
_NP_DTYPE = {F32: (_F32, "float32"), BF16: (_U16, "uint16 (the bf16 bits)"), F16: (_U16, "uint16 (the f16 bits)"),
             SPLIT_BF16: (_U16, "uint16 (the upper 16 bits of the float32 weights)")}
_NP_DTYPE.update({t: (_U8, "uint8 (8-bit codes)") for t in _Q8_TYPES})

# State arrays that are never negative: the unsigned code map of 8-bit state (rmsfuse_common.h,
# "storage types"; docs/math.md: RMSProp's square_avg, AdaGrad's sum, Adam's exp_avg_sq and
# max_exp_avg_sq).  convert_from_f32/convert_to_f32 of such a state need nonneg=True.
_NONNEG = frozenset(("square_avg", "sum", "exp_avg_sq", "max_exp_avg_sq"))


def nonneg_state(name):
    """True if the state array `name` (ARRAYS[rule][2:]) uses the unsigned map of 8-bit state."""
    return name in _NONNEG


def _storage_type(t, what, field=None):
    """A storage type given as a name ("bf16", "q8_linear", ...) or a value (rmsfuse.BF16) -> its value."""
    if isinstance(t, str):
        v = _TYPE_VALUE.get(t.lower())
    elif isinstance(t, numbers.Integral) and not isinstance(t, bool):
        v = int(t) if int(t) in _TYPE_NAME else None
    else:
        raise TypeError(f"{what} must be a storage type name ({', '.join(_TYPE_NAME.values())}) or value, "
                        f"not {type(t).__name__}")
    if v is None:
        raise ValueError(f"{what}: unknown storage type {t!r} (one of {', '.join(_TYPE_NAME.values())})")
    if field is not None and v not in _ALLOWED[field]:
        raise ValueError(f"{what}: a {field} array cannot be {_TYPE_NAME[v]} (it may be "
                         f"{', '.join(_TYPE_NAME[a] for a in _ALLOWED[field])})")
    return v


class Storage:
    """The storage types of a typed step: the C struct rmsfuse_storage.

    Storage(param="f32", grad=None, state="f32", *, master_weights=False, stochastic_rounding=False,
            seed=0, step=0)

    param  "f32", "bf16", "f16" or "split_bf16"
    grad   "f32", "bf16" or "f16"; None: the param's ("bf16" for "split_bf16")
    state  every state array: "f32", "bf16", "q8" or "q8_linear"
    master_weights       RMSFUSE_MASTER_WEIGHTS: a bf16/f16 param with a float32 master copy
                         (param_extra) that the step updates; the param is written rounded from it
    stochastic_rounding  RMSFUSE_STOCHASTIC_ROUNDING: a bf16/f16 param is rounded at random, from a
                         hash of (seed, step, the tensor's stream, the element's index)
    seed, step           stochastic rounding's run seed and step counter (0 <= each < 2**64)

    Types are also accepted as values (rmsfuse.BF16) and the aliases float32, bfloat16, float16;
    the attributes hold the names.  Arrays of each type, as NumPy arrays: f32 float32; bf16, f16
    and split_bf16 uint16 (the bits); q8 and q8_linear a pair (codes, scales): uint8 codes of the
    array's shape and float32 scales of ceil(size / Q8_BLOCK) elements.  Combinations the library
    refuses (master weights with a float32 param, ...) raise RmsfuseError E_STORAGE at the step.
    """

    __slots__ = ("param", "grad", "state", "master_weights", "stochastic_rounding", "seed", "step")

    def __init__(self, param="f32", grad=None, state="f32", *, master_weights=False, stochastic_rounding=False,
                 seed=0, step=0):
        p = _storage_type(param, "Storage param", "param")
        if grad is None:
            grad = BF16 if p == SPLIT_BF16 else p
        self.param = _TYPE_NAME[p]
        self.grad = _TYPE_NAME[_storage_type(grad, "Storage grad", "grad")]
        self.state = _TYPE_NAME[_storage_type(state, "Storage state", "state")]
        self.master_weights = bool(master_weights)
        self.stochastic_rounding = bool(stochastic_rounding)
        for k, v in (("seed", seed), ("step", step)):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or not 0 <= v < 2 ** 64:
                raise ValueError(f"Storage {k} must be an int in [0, 2**64), not {v!r}")
            setattr(self, k, int(v))

    @property
    def flags(self):
        """The rmsfuse_storage.flags bits of master_weights and stochastic_rounding."""
        return (MASTER_WEIGHTS if self.master_weights else 0) | (STOCHASTIC_ROUNDING if self.stochastic_rounding
                                                                 else 0)

    def _types(self):
        return _TYPE_VALUE[self.param], _TYPE_VALUE[self.grad], _TYPE_VALUE[self.state]

    def _c(self):
        p, g, s = self._types()
        return _abi.rmsfuse_storage(p, g, s, self.flags, self.seed, self.step)

    def replace(self, **kw):
        """A copy with some fields changed: storage.replace(step=2)."""
        values = {k: getattr(self, k) for k in self.__slots__}
        if "param" in kw and "grad" not in kw:
            values["grad"] = None if values["grad"] == Storage(values["param"]).grad else values["grad"]
        values.update(kw)
        return Storage(values.pop("param"), values.pop("grad"), values.pop("state"), **values)

    def __repr__(self):
        return "rmsfuse.Storage(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

    def __eq__(self, other):
        return isinstance(other, Storage) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None


def _storage_of(storage):
    if not isinstance(storage, Storage):
        raise TypeError(f"storage must be an rmsfuse.Storage, not {type(storage).__name__}")
    return storage


# A typed tensor list is passed as rows of 64-bit words when rmsfuse_typed_tensor is exactly that
# (64-bit machines: 13 words), else as an array of the ctypes struct.
_TT = _abi.rmsfuse_typed_tensor
_TT_WORDS = 5 + 2 * _abi.TYPED_SLOTS  # param, param_extra, grad, state[], scale[], n, stream
_TT_FLAT = ctypes.sizeof(ctypes.c_void_p) == 8 and ctypes.sizeof(_TT) == 8 * _TT_WORDS and \
    _TT.n.offset == 8 * (_TT_WORDS - 2) and _TT.stream.offset == 8 * (_TT_WORDS - 1)


class _TypedList:
    """A list of rmsfuse_typed_tensor in memory; rows: [param, param_extra, grad, *state, *scale, n,
    stream] as ints (0 for NULL).  .address, len()."""

    __slots__ = ("buf", "address", "count")

    def __init__(self, rows):
        self.count = len(rows)
        if _TT_FLAT:
            self.buf = np.array(rows, dtype=np.uint64).reshape(len(rows), _TT_WORDS)
            self.address = self.buf.ctypes.data
        else:  # pragma: no cover (32-bit machines)
            k = _abi.TYPED_SLOTS
            self.buf = (_TT * max(len(rows), 1))()
            for t, r in zip(self.buf, rows):
                t.param, t.param_extra, t.grad = r[0] or None, r[1] or None, r[2] or None
                t.state[:] = [x or None for x in r[3:3 + k]]
                t.scale[:] = [x or None for x in r[3 + k:3 + 2 * k]]
                t.n, t.stream = r[3 + 2 * k], r[4 + 2 * k]
            self.address = ctypes.addressof(self.buf)

    def __len__(self):
        return self.count


def _q8_blocks(n):
    return -(-n // Q8_BLOCK)


def _pair(a, what):
    if isinstance(a, np.ndarray) or not isinstance(a, (tuple, list)) or len(a) != 2:
        raise TypeError(f"{what} must be a pair (codes, scales) for 8-bit state, not {type(a).__name__}")
    return a


def _typed_row(cfg, rule, storage, arrays, extra, stream, where=""):
    """The rule's arrays (C order) of one typed tensor -> a row of _TypedList (ints, 0 for NULL)."""
    pt, gt, stt = storage._types()
    param = arrays[0]
    dt, kind = _NP_DTYPE[pt]
    ptrs = [_ptr(param, where + "param", None, True, dt, kind)]
    shape, n = param.shape, param.size
    if pt == SPLIT_BF16:
        xdt = _NP_DTYPE[SPLIT_BF16][0], "uint16 (the lower 16 bits of the float32 weights: the trail)"
    elif storage.master_weights:
        xdt = _F32, "float32 (the master weights)"
    else:
        xdt = None
    if extra is not None and xdt is None:
        raise TypeError(f"{where}param_extra is given, but the storage has neither master weights nor a "
                        f"split_bf16 param")
    ptrs.append(None if extra is None else _ptr(extra, where + "param_extra", shape, True, *xdt))
    ptrs.append(_ptr(arrays[1], where + "grad", shape, False, *_NP_DTYPE[gt]))
    slots = _abi.TYPED_SLOTS
    state, scale = [None] * slots, [None] * slots
    for j, (name, a) in enumerate(zip(rule.arrays[2:], arrays[2:])):
        used = _OPTIONAL_STATE.get(name)
        if used is not None and (a is None or not used(cfg)):
            continue  # unused: ignored; missing but used: the library's NULL status
        if stt in _Q8_TYPES:
            codes, sc = _pair(a, where + name)
            state[j] = _ptr(codes, where + name + " codes", shape, True, *_NP_DTYPE[stt])
            if not isinstance(sc, np.ndarray) or sc.size != _q8_blocks(n):
                raise ValueError(f"{where}{name} scales must be a float32 array of ceil({n} / {Q8_BLOCK}) = "
                                 f"{_q8_blocks(n)} elements, not "
                                 f"{sc.size if isinstance(sc, np.ndarray) else type(sc).__name__}")
            scale[j] = _ptr(sc, where + name + " scales", None, True)
        else:
            if isinstance(a, (tuple, list)):
                raise TypeError(f"{where}{name} is a pair, but the storage's state is {storage.state}, not "
                                f"8-bit: give an array")
            state[j] = _ptr(a, where + name, shape, True, *_NP_DTYPE[stt])
    if not isinstance(stream, numbers.Integral) or isinstance(stream, bool) or not 0 <= stream < 2 ** 64:
        raise ValueError(f"{where}stream must be an int in [0, 2**64), not {stream!r}")
    return [p or 0 for p in ptrs + state + scale] + [n, int(stream)]


_ENTRY_KEYS = ("param_extra", "stream")


def _typed_entry(rule, t, i):
    """An entry of a typed tensor list: a tuple (param, grad, *state) (stream i), or a dict of the
    rule's arrays by name with param_extra= and stream= -> (arrays, extra, stream)."""
    if isinstance(t, dict):
        unknown = [k for k in t if k not in rule.written and k not in _ENTRY_KEYS]
        if unknown:
            raise TypeError(f"tensors[{i}]: unexpected keys {unknown}; {rule.name} takes {rule.usage}, "
                            f"param_extra and stream")
        named = {k: v for k, v in t.items() if k in rule.written}
        arrays = _bind(rule, (), named, f"tensors[{i}]")
        return arrays, t.get("param_extra"), t.get("stream", i)
    if isinstance(t, np.ndarray) or not isinstance(t, (tuple, list)):
        raise TypeError(f"tensors[{i}] must be a tuple {rule.usage} or a dict, not {type(t).__name__}")
    if not len(rule.required) <= len(t) <= len(rule.arrays):
        raise TypeError(f"tensors[{i}]: expected {rule.usage}, got {len(t)} arrays")
    return list(t) + [None] * (len(rule.arrays) - len(t)), None, i


def _typed_list(cfg, rule, storage, tensors):
    rows = []
    for i, t in enumerate(tensors):
        arrays, extra, stream = _typed_entry(rule, t, i)
        rows.append(_typed_row(cfg, rule, storage, arrays, extra, stream, f"tensors[{i}]."))
    return _TypedList(rows)


def _typed_one(cfg, storage, param, grad, state, named_state, param_extra, stream, what):
    rule = _rule_of(cfg)
    storage = _storage_of(storage)
    arrays = _bind(rule, (param, grad) + state, named_state, what)
    return rule, storage, _TypedList([_typed_row(cfg, rule, storage, arrays, param_extra, stream)])


def step_typed(cfg, storage, param, grad, *state, param_extra=None, stream=0, **named_state):
    """One step of cfg's rule over arrays in the storage types of `storage` (an rmsfuse.Storage).

    The arrays are step()'s, each in its type: f32 float32; bf16, f16 and split_bf16 uint16 (the
    bits); 8-bit state (q8, q8_linear) a pair (codes uint8 of param's shape, scales float32 of
    ceil(param.size / Q8_BLOCK)).  param_extra: the float32 master weights (master_weights) or the
    uint16 trail (a split_bf16 param).  stream: stochastic rounding's stream of this tensor.  The
    arithmetic is float32, as step()'s; each value is rounded to its type when written
    (docs/math.md, "Storage types").  On any error no array has been changed.
    """
    rule, storage, rows = _typed_one(cfg, storage, param, grad, state, named_state, param_extra, stream,
                                     "step_typed()")
    _raise_on(_run_typed_rows(rule, cfg._c(), storage._c(), rows))


def check_typed(cfg, storage, param, grad, *state, param_extra=None, stream=0, **named_state):
    """The status step_typed() would get from the library (0 if it would run); changes nothing."""
    rule, storage, rows = _typed_one(cfg, storage, param, grad, state, named_state, param_extra, stream,
                                     "check_typed()")
    return rule.check_typed(ctypes.byref(cfg._c()), ctypes.byref(storage._c()), rows.address, len(rows))


def step_multi_typed(cfg, storage, tensors):
    """step_typed() of every tensor in one library call.

    Each entry is a tuple (param, grad, *state) (stream: its index in the list) or a dict of the
    rule's arrays by name, with optional "param_extra" and "stream".  Everything is checked before
    anything is written."""
    rule = _rule_of(cfg)
    storage = _storage_of(storage)
    _raise_on(_run_typed_rows(rule, cfg._c(), storage._c(), _typed_list(cfg, rule, storage, tensors)))


def check_multi_typed(cfg, storage, tensors):
    """The status step_multi_typed() would get from the library; changes nothing."""
    rule = _rule_of(cfg)
    storage = _storage_of(storage)
    rows = _typed_list(cfg, rule, storage, tensors)
    return rule.check_typed(ctypes.byref(cfg._c()), ctypes.byref(storage._c()), rows.address, len(rows))


def typed_zeros(type, shape):
    """Zeros of a storage type: float32 (f32), uint16 (bf16, f16: +0), a pair (codes, scales) for q8 and
    q8_linear (zero codes and scales: every element 0), a pair (hi, lo) of uint16 for split_bf16."""
    t = _storage_type(type, "typed_zeros")
    if t in _Q8_TYPES:
        size = int(np.prod(shape, dtype=np.int64))
        return np.zeros(shape, _U8), np.zeros(_q8_blocks(size), _F32)
    if t == SPLIT_BF16:
        return np.zeros(shape, _U16), np.zeros(shape, _U16)
    return np.zeros(shape, _NP_DTYPE[t][0])


def _out(out, shape, dtype, kind, what):
    if out is None:
        return np.empty(shape, dtype)
    _ptr(out, what, shape, True, dtype, kind)
    return out


def convert_from_f32(type, src, *, nonneg=False, out=None):
    """float32 values in a storage type, with the library's rounding (rmsfuse_convert_from_f32).

    src is a float32 array.  Returns, of src's shape: a uint16 array for bf16 and f16 (round to
    nearest even); a pair (codes uint8, scales float32 of ceil(size / Q8_BLOCK)) for q8 and
    q8_linear, with the unsigned map when nonneg (the state arrays nonneg_state() names: values
    must then be >= 0 or NaN); a pair (hi, lo) of uint16 for split_bf16 (the upper and lower 16
    bits: exact); a copy for f32.  out: arrays to write instead (as returned)."""
    t = _storage_type(type, "convert_from_f32")
    _ptr(src, "src", None, False)
    if t == F32:
        dst = _out(out, src.shape, _F32, "float32", "out")
        dst[...] = src
        return dst
    if t == SPLIT_BF16:
        hi, lo = _pair(out, "out") if out is not None else (None, None)
        hi, lo = _out(hi, src.shape, _U16, "uint16", "out[0]"), _out(lo, src.shape, _U16, "uint16", "out[1]")
        u = src.view(np.uint32)
        hi[...] = u >> 16
        lo[...] = u & 0xFFFF
        return hi, lo
    if t in _Q8_TYPES:
        codes, scales = _pair(out, "out") if out is not None else (None, None)
        dst = _out(codes, src.shape, _U8, "uint8", "out[0]")
        sc = _out(scales, (_q8_blocks(src.size),), _F32, "float32", "out[1]")
    else:
        dst, sc = _out(out, src.shape, _U16, "uint16", "out"), None
    if src.size:
        _raise_on(_L.rmsfuse_convert_from_f32(t, int(bool(nonneg)), src.ctypes.data, dst.ctypes.data,
                                              None if sc is None else sc.ctypes.data, src.size),
                  "convert_from_f32")
    return (dst, sc) if sc is not None else dst


def convert_to_f32(type, src, *, nonneg=False, out=None):
    """Values of a storage type as float32 (rmsfuse_convert_to_f32): the inverse of convert_from_f32
    (src: a uint16 array for bf16 and f16, a pair (codes, scales) for q8 and q8_linear, a pair
    (hi, lo) for split_bf16, a float32 array for f32).  Exact for bf16, f16 and split_bf16; 8-bit
    codes decode as the steps read them.  out: a float32 array to write instead."""
    t = _storage_type(type, "convert_to_f32")
    if t == F32:
        _ptr(src, "src", None, False)
        dst = _out(out, src.shape, _F32, "float32", "out")
        dst[...] = src
        return dst
    if t == SPLIT_BF16:
        hi, lo = _pair(src, "src")
        _ptr(hi, "src[0]", None, False, _U16, "uint16")
        _ptr(lo, "src[1]", hi.shape, False, _U16, "uint16")
        dst = _out(out, hi.shape, _F32, "float32", "out")
        dst.view(np.uint32)[...] = (hi.astype(np.uint32) << 16) | lo
        return dst
    if t in _Q8_TYPES:
        codes, sc = _pair(src, "src")
        _ptr(codes, "src[0]", None, False, _U8, "uint8")
        _ptr(sc, "src[1]", None, False)
        if sc.size != _q8_blocks(codes.size):
            raise ValueError(f"src[1] must have ceil({codes.size} / {Q8_BLOCK}) elements, not {sc.size}")
        data, scp = codes, sc.ctypes.data
    else:
        _ptr(src, "src", None, False, _U16, "uint16")
        data, scp = src, None
    dst = _out(out, data.shape, _F32, "float32", "out")
    if data.size:
        _raise_on(_L.rmsfuse_convert_to_f32(t, int(bool(nonneg)), data.ctypes.data, scp, dst.ctypes.data,
                                            data.size), "convert_to_f32")
    return dst


class Plan:
    """A checked step over a tensor list: rmsfuse_<rule>_plan (rmsfuse_common.h).

    Plan(cfg, tensors) checks what step_multi() checks and prepares the step
    with cfg's values as they are now (later changes to cfg do not reach it).
    The tensors are laid end to end as elements [0, plan.elements); run(begin,
    end) updates a sub-range, run() all of them: one step, the same bits as
    step_multi() whatever the cut.  A plan may be run again for another step
    with the same hyperparameters (not for Adam/AdaGrad's next step number).
    Pool.run_plan(plan) runs it on a thread pool.  The plan keeps references
    to its arrays; close() frees it (also a context manager).

    Plan(cfg, tensors, storage=rmsfuse.Storage(...)) is a typed step
    (rmsfuse_<rule>_plan_typed) over step_multi_typed()'s tensor list; with
    8-bit state a range must start and end at a block boundary of its tensors
    (multiples of Q8_BLOCK from a tensor's start, or its end; cut() returns
    such boundaries), else RmsfuseError E_BLOCK.
    """

    def __init__(self, cfg, tensors, storage=None):
        rule = _rule_of(cfg)
        self._h = None
        if storage is None:
            tensors = [tuple(t) if isinstance(t, (tuple, list)) else t for t in tensors]
            rows = _rows(cfg, rule, tensors)
            h = ctypes.c_void_p()
            _raise_on(rule.plan(ctypes.byref(cfg._c()), _words(rows), len(rows), ctypes.byref(h)), "Plan")
        else:
            storage = _storage_of(storage)
            tensors = [dict(t) if isinstance(t, dict) else tuple(t) if isinstance(t, (tuple, list)) else t
                       for t in tensors]
            rows = _typed_list(cfg, rule, storage, tensors)
            h = ctypes.c_void_p()
            _raise_on(rule.plan_typed(ctypes.byref(cfg._c()), ctypes.byref(storage._c()), rows.address, len(rows),
                                      ctypes.byref(h)), "Plan")
        self._h, self._arrays, self.rule, self.storage = h, tensors, rule.name, storage

    def _handle(self):
        if self._h is None:
            raise ValueError("the plan is closed")
        return self._h

    @property
    def elements(self):
        """Elements the plan updates (the sum of its tensors' sizes)."""
        return _L.rmsfuse_plan_elements(self._handle())

    def run(self, begin=0, end=None):
        """Runs elements [begin, end) (default: all); RmsfuseError E_RANGE for a bad range."""
        h = self._handle()
        end = _L.rmsfuse_plan_elements(h) if end is None else end
        if begin < 0 or end < 0:
            raise ValueError(f"element range [{begin}, {end}) is negative")
        _raise_on(_L.rmsfuse_plan_run(h, begin, end), f"Plan.run({begin}, {end})")

    def cut(self, f):
        """The first element >= f where a range may start without sharing a cache line of param."""
        return _L.rmsfuse_plan_cut(self._handle(), f)

    def close(self):
        if getattr(self, "_h", None) is not None:
            _L.rmsfuse_plan_free(self._h)
            self._h = None
            self._arrays = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


# ---- instruction sets ---------------------------------------------------------
def active_isa():
    """The implementation in use: "avx512", "avx2", "sse2", "sve", "neon" or "scalar"."""
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


def _run_rows(rule, c_cfg, rows, pool=None, opt=None):
    """One step of a rows tensor list: step_multi (step_ex with gradient options `opt`, an
    _abi.rmsfuse_grad_options), or on `pool` through a plan; returns the status."""
    if pool is None:
        if opt is None:
            return rule.step_multi(ctypes.byref(c_cfg), _words(rows), len(rows))
        return rule.step_ex(ctypes.byref(c_cfg), _words(rows), len(rows), ctypes.byref(opt), None)
    h = ctypes.c_void_p()
    status = rule.plan(ctypes.byref(c_cfg), _words(rows), len(rows), ctypes.byref(h))
    return _run_plan_handle(h, status, pool, opt)


def _run_typed_rows(rule, c_cfg, c_storage, rows, pool=None, opt=None):
    """One typed step of a typed tensor list (_TypedList): step_typed, or on `pool` through a
    plan_typed; returns the status.  c_storage is an _abi.rmsfuse_storage."""
    if pool is None:
        return rule.step_typed(ctypes.byref(c_cfg), ctypes.byref(c_storage), rows.address, len(rows),
                               None if opt is None else ctypes.byref(opt), None)
    h = ctypes.c_void_p()
    status = rule.plan_typed(ctypes.byref(c_cfg), ctypes.byref(c_storage), rows.address, len(rows),
                             ctypes.byref(h))
    return _run_plan_handle(h, status, pool, opt)


def _run_plan_handle(h, status, pool, opt):
    """Runs a freshly made plan on the pool (with options `opt`, or none) and frees it."""
    if status != 0:
        return status
    try:
        if opt is None:
            return pool._lib.rmsfuse_pool_run_plan(pool._handle(), h)
        return pool._lib.rmsfuse_pool_run_plan_ex(pool._handle(), h, ctypes.byref(opt), None)
    finally:
        _L.rmsfuse_plan_free(h)


def _grad_scale_ok(scale):
    """Whether the library takes `scale` as rmsfuse_grad_options.scale (> 0, a finite float > 0)."""
    return _L.rmsfuse_grad_block_sumsq(None, 0, scale, None) == 0


class Pool:
    """Worker threads bound to cores that split a step (rmsfuse_pool.h).

    Runs any rule's step through a plan (rmsfuse_pool_run_plan).  Results
    are bit-identical to step()/step_multi().  threads=0: one per core.
    Close it with .close() or use it as a context manager.
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

    def run_plan(self, plan):
        """Runs every element of a Plan on the pool's threads: one step."""
        if not isinstance(plan, Plan):
            raise TypeError(f"plan must be an rmsfuse.Plan, not {type(plan).__name__}")
        _raise_on(self._lib.rmsfuse_pool_run_plan(self._handle(), plan._handle()), "Pool.run_plan")

    def step(self, cfg, param, grad, *state, **named_state):
        """step() on the pool's threads."""
        self._handle()
        rule = _rule_of(cfg)
        self.step_multi(cfg, [tuple(_bind(rule, (param, grad) + state, named_state, "Pool.step()"))])

    def step_multi(self, cfg, tensors):
        """step_multi() on the pool's threads."""
        self._handle()
        rule = _rule_of(cfg)
        _raise_on(_run_rows(rule, cfg._c(), _rows(cfg, rule, tensors), self))

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

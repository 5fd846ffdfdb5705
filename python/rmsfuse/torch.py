"""Drop-in torch.optim optimizers for CPU float32 (and bfloat16, float16) tensors, computed by rmsfuse.

    from rmsfuse.torch import Adam        # or AdamW, SGD, Adagrad, RMSprop
    opt = Adam(model.parameters(), lr=1e-3)   # was: torch.optim.Adam(...)

Each class takes the constructor arguments (with the same defaults) of its
torch 1.13 namesake, keeps the same param_groups and the same state names and
types, so state_dicts move between the two:

    RMSprop  'step' (int), 'square_avg', 'momentum_buffer', 'grad_avg'
    Adagrad  'step' (0-dim float tensor), 'sum'
    SGD      'momentum_buffer' (None without momentum)
    Adam, AdamW  'step' (0-dim float tensor), 'exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'

Each step() is one fused library call per parameter group (rmsfuse_<rule>_step_multi
over every parameter with a gradient), or one plan run on a thread pool with
threads=.  Parameters of one group whose step numbers differ (Adam, Adagrad:
a parameter that had no gradient on some steps) or whose SGD momentum buffer
is new for some only, go in one call per distinct value.

Storage types (docs/python.md, "Storage types"), keyword-only, per parameter group:
  * bfloat16 and float16 parameters (gradients of the same dtype, read as they
    are) with master_weights="fp32" (the default: a float32 copy in state
    'master', updated by the step, the parameter written from it rounded to
    nearest even), "split" (bfloat16 only: the parameter is the upper 16 bits of
    the float32 weight, state 'trail' (int16) the lower 16) or None (the
    parameter is rounded each step; stochastic_rounding=True rounds it at random
    from seed=, the parameter's step number and its index in the optimizer).
  * state_dtype=torch.float32 (default), torch.bfloat16, "q8" or "q8_linear"
    (8-bit block-quantised state: uint8 codes under the state's name and
    float32 block scales under '<name>_scale', ceil(numel / 256) of them).
  float32 parameters with float32 state take exactly the float32 step.

Differences (see docs/python.md):
  * only CPU dense tensors, float32 (or bfloat16, float16: above); anything else
    raises TypeError (sparse gradients: RuntimeError, as torch).  Tensors must be contiguous, or
    dense and non-overlapping in another memory format (channels_last, ...)
    with param, grad and state all laid out alike; otherwise ValueError.
    There is no silent fallback to torch's code.
  * foreach and fused are accepted and stored, and change nothing (every
    step is one fused call); differentiable=True and capturable=True are
    refused (the update runs in C, outside autograd and CUDA graphs).
  * subnormal-safe state by default (deliberately unlike torch): every class
    takes flush_subnormal=True (keyword-only, per parameter group), which
    sets RMSFUSE_FLUSH_SUBNORMAL: a state value below FLT_MIN (1.18e-38)
    becomes +0 as it is computed, so elements whose gradient is exactly zero
    for many steps (pruned or masked weights, dead units, embedding rows)
    never leave the state subnormal, where every step gets several times
    slower.  The parameters keep their bits unless eps < 1.8e-12 (eps = 0:
    NaN where gradient and state are zero) or a parameter is below ~1e-30;
    torch keeps subnormal state unless torch.set_flush_denormal(True).
    flush_subnormal=False gives exact IEEE state (docs/python.md).
  * loss scaling and clipping fused into the step (docs/python.md): every class takes
    max_grad_norm= (clip by the global norm of all the step's gradients, as
    torch.nn.utils.clip_grad_norm_) and clip_value= (as clip_grad_value_), per group,
    and step(grad_scale=) reads the gradients divided by a loss scale and skips the whole
    step when one is Inf or NaN; after a step, .grad_norm and .found_inf say what it
    found.  GradScaler plays torch.cuda.amp.GradScaler's role on the CPU.
  * keyword-only extras beyond torch 1.13: threads=, flush_subnormal=, max_grad_norm=, clip_value=,
    master_weights=, state_dtype=, stochastic_rounding=, seed= (every class);
    RMSprop(nesterov=, decoupled_weight_decay=), Adam(decoupled_weight_decay=),
    Adagrad(eps_in_sqrt=) and the later torch keywords (fused, capturable,
    differentiable) where torch 1.13 lacks them.
  * values the library refuses although torch accepts them (RMSprop alpha > 1
    or momentum >= 1, non-finite values or values beyond float range) raise
    ValueError at construction, when a group is added, or at step().
  * a step that raises has changed no parameter and no state.
"""

import ctypes
import math
import numbers

import numpy as np
import torch
from torch.optim.optimizer import required

import rmsfuse
from rmsfuse import _abi

__all__ = ["RMSprop", "Adagrad", "SGD", "Adam", "AdamW", "GradScaler", "grad_sumsq"]


def _dense_strides(t):
    """True if t's elements exactly fill t.numel() consecutive slots from t.data_ptr()."""
    expected = 1
    for stride, size in sorted((st, sz) for st, sz in zip(t.stride(), t.shape) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _layout_ok(p, others):
    """param, grad and state may be handed to the library as flat arrays."""
    if p.is_contiguous() and all(t.is_contiguous() for t in others):
        return True
    if not _dense_strides(p):
        return False
    ps = [s for s, n in zip(p.stride(), p.shape) if n != 1]
    return all(t.shape == p.shape and [s for s, n in zip(t.stride(), t.shape) if n != 1] == ps for t in others)


def _describe(t):
    return (f"{type(t).__name__}(shape={tuple(t.shape)}, dtype={t.dtype}, device={t.device}, "
            f"layout={t.layout}, strides={t.stride() if t.layout == torch.strided else '-'})")


# torch 1.13's constructor checks, with its messages (each class checks those of its arguments).
_TORCH_CHECKS = (
    ("lr", lambda v: v is required or 0.0 <= v, "Invalid learning rate: {}"),
    ("lr_decay", lambda v: 0.0 <= v, "Invalid lr_decay value: {}"),
    ("eps", lambda v: 0.0 <= v, "Invalid epsilon value: {}"),
    ("momentum", lambda v: 0.0 <= v, "Invalid momentum value: {}"),
    ("weight_decay", lambda v: 0.0 <= v, "Invalid weight_decay value: {}"),
    ("alpha", lambda v: 0.0 <= v, "Invalid alpha value: {}"),
    ("initial_accumulator_value", lambda v: 0.0 <= v, "Invalid initial_accumulator_value value: {}"),
)


def _torch_checks(kw):
    for name, ok, msg in _TORCH_CHECKS:
        if name in kw and not ok(kw[name]):
            raise ValueError(msg.format(kw[name]))
    if "betas" in kw:
        for i, b in enumerate(kw["betas"]):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {b}")


# ---- storage types (docs/python.md, "Storage types") ----------------------------------
# The storage type of a parameter (and its gradient, which torch keeps in the parameter's dtype).
_PARAM_TYPE = {torch.float32: rmsfuse.F32, torch.bfloat16: rmsfuse.BF16, torch.float16: rmsfuse.F16}
_Q8 = (rmsfuse.Q8, rmsfuse.Q8_LINEAR)
# The torch dtype of a state array of each state type (8-bit: the codes; their scales are float32).
_STATE_DTYPE = {rmsfuse.F32: torch.float32, rmsfuse.BF16: torch.bfloat16, rmsfuse.Q8: torch.uint8,
                rmsfuse.Q8_LINEAR: torch.uint8}
_STATE_NAMES = {"float32": rmsfuse.F32, "fp32": rmsfuse.F32, "f32": rmsfuse.F32, "bfloat16": rmsfuse.BF16,
                "bf16": rmsfuse.BF16, "q8": rmsfuse.Q8, "q8_linear": rmsfuse.Q8_LINEAR}
_STATE_TORCH = {torch.float32: rmsfuse.F32, torch.bfloat16: rmsfuse.BF16}
_TYPE_TEXT = {rmsfuse.F32: "torch.float32", rmsfuse.BF16: "torch.bfloat16", rmsfuse.Q8: "'q8'",
              rmsfuse.Q8_LINEAR: "'q8_linear'"}
# Keyword-only group options of the storage types, with their defaults.
_STORAGE_EXTRAS = {"master_weights": "fp32", "state_dtype": torch.float32, "stochastic_rounding": False, "seed": 0}
_MASTER, _TRAIL = "master", "trail"  # the state keys of the float32 master weights and of split bf16's trail


def _scale_key(key):
    """The state key of the block scales of 8-bit state `key`."""
    return key + "_scale"


def _master_mode(v):
    """master_weights= as "fp32", "split" or None; ValueError for anything else."""
    if v is None or v is False:
        return None
    if v is True or v is torch.float32 or (isinstance(v, str) and v.lower() in ("fp32", "float32")):
        return "fp32"
    if isinstance(v, str) and v.lower() == "split":
        return "split"
    raise ValueError(f"master_weights must be 'fp32' (a float32 copy in the state), 'split' (bf16 parameters: "
                     f"the lower 16 bits in the state) or None (none: the parameter is rounded each step), "
                     f"not {v!r}")


def _state_type(v):
    """state_dtype= as a storage type (rmsfuse.F32, BF16, Q8, Q8_LINEAR); ValueError for anything else."""
    t = _STATE_TORCH.get(v) if isinstance(v, torch.dtype) else _STATE_NAMES.get(v.lower()) \
        if isinstance(v, str) else None
    if t is None:
        raise ValueError(f"state_dtype must be torch.float32, torch.bfloat16, 'q8' or 'q8_linear' (8-bit block "
                         f"state), not {v!r}")
    return t


def _blocks(n):
    return -(-n // rmsfuse.Q8_BLOCK)


def _encode(src, stype, nonneg):
    """A new float32 tensor `src` in state type stype, with the library's rounding: (tensor laid out
    as src, block scales or None)."""
    if stype == rmsfuse.F32:
        return src, None
    dst = torch.empty_like(src, dtype=_STATE_DTYPE[stype], memory_format=torch.preserve_format)
    scale = torch.zeros(_blocks(src.numel()), dtype=torch.float32) if stype in _Q8 else None
    n = src.numel()
    if n:
        st = rmsfuse._L.rmsfuse_convert_from_f32(stype, int(bool(nonneg)), src.data_ptr(), dst.data_ptr(),
                                                 None if scale is None else scale.data_ptr(), n)
        if st != 0:
            raise rmsfuse.RmsfuseError(st, "state conversion")
    return dst, scale


def _split_master(p, trail):
    """The float32 weights of a split bf16 parameter: its bits above the trail's."""
    hi = p.detach().view(torch.int16).to(torch.int32) << 16
    return (hi | (trail.to(torch.int32) & 0xFFFF)).view(torch.float32)


class _Work:
    """One parameter of a typed step, checked: skey, its storage key (param, grad and state types,
    flags, stochastic rounding's step); fresh: state made or converted
    for this step (recorded once the step has run); created: state arrays made new; drop: state keys
    of another storage to remove; row: the typed tensor row; view: the state the step reads."""

    __slots__ = ("skey", "fresh", "created", "drop", "row", "view")

    def __init__(self, skey, fresh, created, drop, row, view):
        self.skey, self.fresh, self.created, self.drop, self.row, self.view = skey, fresh, created, drop, row, view


class _Call:
    """One library call of a step: a rule's step_multi over float32 rows (storage None), or its
    step_typed over a typed tensor list with `storage` (an _abi.rmsfuse_storage)."""

    __slots__ = ("rule", "c", "storage", "rows", "params", "key", "group")

    def __init__(self, rule, c, storage, rows, params, key, group):
        self.rule, self.c, self.storage, self.rows = rule, c, storage, rows
        self.params, self.key, self.group = params, key, group

    def check(self):
        if self.storage is None:
            return self.rule.check_multi(self.c, self.rows.ctypes.data, len(self.rows))
        return self.rule.check_typed(self.c, ctypes.byref(self.storage), self.rows.address, len(self.rows))

    def sumsq(self, scale, acc):
        if self.storage is None:
            return self.rule.grad_sumsq(self.rows.ctypes.data, len(self.rows), scale, ctypes.byref(acc))
        return rmsfuse._L.rmsfuse_grad_sumsq_typed(ctypes.byref(self.storage), self.rows.address, len(self.rows),
                                                   scale, ctypes.byref(acc))

    def run(self, pool, opt):
        if self.storage is None:
            return rmsfuse._run_rows(self.rule, self.c, self.rows, pool, opt)
        return rmsfuse._run_typed_rows(self.rule, self.c, self.storage, self.rows, pool, opt)


class _Fused(torch.optim.Optimizer):
    """The machinery every drop-in shares; a subclass says what differs (class attributes and _config).

    _state    ((state key, C array), ...) in the rule's array order after param and grad
    _step     how torch 1.13 keeps state['step']: "int", "tensor" or None (no step)
    _extras   keyword-only group options beyond torch 1.13, with their defaults
    """

    _state = ()
    _step = None
    _extras = {}
    # Keyword-only group options every class takes beyond torch 1.13, with their defaults.
    _common_extras = {"flush_subnormal": True, "max_grad_norm": None, "clip_value": None, **_STORAGE_EXTRAS}

    def __init__(self, params, defaults, threads):
        _torch_checks(defaults)
        self._refuse(defaults)
        if threads is not None and (not isinstance(threads, numbers.Integral) or isinstance(threads, bool)
                                    or threads < 0):
            raise ValueError(f"threads must be None or an int >= 0 (0: one per core), not {threads!r}")
        self._pool = None
        super().__init__(params, defaults)
        self._pool = rmsfuse.Pool(int(threads)) if threads is not None else None

    @classmethod
    def _refuse(cls, group):
        if group.get("differentiable"):
            raise ValueError(f"rmsfuse.torch.{cls.__name__}: differentiable=True is not supported (the update runs "
                             f"in C, outside autograd); use torch.optim.{cls.__name__}")
        if group.get("capturable"):
            raise ValueError(f"rmsfuse.torch.{cls.__name__}: capturable=True is not supported (CUDA graph "
                             f"capture; rmsfuse runs on the CPU)")

    def _config(self, group):
        """The group's rmsfuse config (step 1 where the rule counts steps)."""
        raise NotImplementedError

    def _valid_config(self, group):
        for key in ("max_grad_norm", "clip_value"):
            v = group.get(key)
            if v is not None and (not isinstance(v, numbers.Real) or isinstance(v, bool) or not v >= 0):
                raise ValueError(f"rmsfuse.torch.{type(self).__name__}: {key} must be None or a number >= 0, "
                                 f"not {v!r}")
        self._storage_opts(group)
        cfg = self._config(group)
        try:
            cfg.validate()
        except rmsfuse.RmsfuseError as e:
            hp = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            raise ValueError(f"rmsfuse.torch.{type(self).__name__}: hyperparameters not supported by rmsfuse "
                             f"({e}); {hp}") from None
        return cfg

    def _storage_opts(self, group):
        """The group's storage options, checked: (master mode "fp32"/"split"/None, state type, stochastic
        rounding, seed)."""
        name = type(self).__name__
        try:
            master = _master_mode(group.get("master_weights", "fp32"))
            stype = _state_type(group.get("state_dtype", torch.float32))
        except ValueError as e:
            raise ValueError(f"rmsfuse.torch.{name}: {e}") from None
        sr, seed = group.get("stochastic_rounding", False), group.get("seed", 0)
        if not isinstance(sr, bool):
            raise ValueError(f"rmsfuse.torch.{name}: stochastic_rounding must be True or False, not {sr!r}")
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed < 2 ** 64:
            raise ValueError(f"rmsfuse.torch.{name}: seed must be an int in [0, 2**64), not {seed!r}")
        if sr and master == "split":
            raise ValueError(f"rmsfuse.torch.{name}: stochastic_rounding=True rounds a bfloat16/float16 parameter "
                             f"when it is written, and master_weights='split' rounds nothing (the parameter and "
                             f"its trail keep every bit of the float32 weight): use one or the other")
        return master, stype, sr, int(seed)

    def _group_config(self, gi, group):
        """The group's checked config, its C struct and its storage options, made again only when a
        hyperparameter changed (the group's values are compared with the last step's; unhashable ones,
        such as a tensor lr, are never cached)."""
        try:
            key = tuple((k, v) for k, v in group.items() if k != "params")
            hash(key)
        except TypeError:
            key = None
        cache = self.__dict__.setdefault("_cfg_cache", {})
        hit = cache.get(gi)
        if key is not None and hit is not None and hit[0] == key:
            return hit[1], hit[2], hit[3]
        cfg = self._valid_config(group)
        c = cfg._c()
        opts = self._storage_opts(group)
        if key is not None:
            cache[gi] = (key, cfg, c, opts)
        return cfg, c, opts

    def _init_state(self, p, group, cfg, kind=None):
        """A parameter's state before its first step, as torch 1.13 creates it (kind: the parameter's
        storage, _param_kind; the step then makes the state arrays of other types than float32)."""
        state = {"step": 0} if self._step == "int" else {"step": torch.tensor(0.0)} if self._step else {}
        if kind is None:
            for key, array in self._state:
                if self._uses(cfg, array):
                    state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    @staticmethod
    def _uses(cfg, array):
        used = rmsfuse._OPTIONAL_STATE.get(array)
        return used is None or used(cfg)

    def _overrides(self, cfg, state, created):
        """Config fields that differ per parameter: the step number where the rule counts steps."""
        if self._step == "tensor":
            return (("step", int(state["step"].item()) + 1),)
        return ()

    def _sr_step(self, state):
        """Stochastic rounding's step counter of this step of a parameter: its step number (from 1)."""
        s = state.get("step", 0)
        return (int(s.item()) if torch.is_tensor(s) else int(s)) + 1

    @staticmethod
    def _param_kind(dtype, opts, state_used):
        """The storage of a parameter of `dtype` (float32, bfloat16 or float16) and its gradient:
        None for float32 everywhere (the plain step), else (param type, grad type, state type, flags)."""
        master, stype, sr, _ = opts
        pt = _PARAM_TYPE[dtype]
        st = stype if state_used else rmsfuse.F32
        if pt == rmsfuse.F32:
            return None if st == rmsfuse.F32 else (pt, pt, st, 0)
        gt, flags = pt, 0
        if master == "split":
            if pt != rmsfuse.BF16:
                raise ValueError(f"master_weights='split' is for bfloat16 parameters (a bfloat16 is the upper 16 "
                                 f"bits of a float32), not {dtype}: use master_weights='fp32'")
            pt = rmsfuse.SPLIT_BF16
        elif master == "fp32":
            flags |= rmsfuse.MASTER_WEIGHTS
        if sr and pt != rmsfuse.SPLIT_BF16:
            flags |= rmsfuse.STOCHASTIC_ROUNDING
        return pt, gt, st, flags

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._refuse(group)
        self._valid_config(group)  # refuse what the library would refuse, now rather than at step()
        opts = self._storage_opts(group)
        for i, p in enumerate(group["params"]):
            if p.dtype in _PARAM_TYPE:
                try:
                    self._param_kind(p.dtype, opts, False)
                except ValueError as e:
                    raise ValueError(f"rmsfuse.torch.{type(self).__name__}: param_groups[{len(self.param_groups) - 1}]"
                                     f"['params'][{i}]: {e}") from None

    def load_state_dict(self, state_dict):
        """torch's load_state_dict, keeping each state tensor's dtype: torch casts every floating-point
        state tensor to its parameter's dtype, which would round a bfloat16 parameter's float32 master
        weights and turn 8-bit codes, block scales and trails into other values.  The storage options
        (master_weights, state_dtype, stochastic_rounding, seed) of a state_dict that lacks them (one
        of torch.optim) stay this optimizer's; state of another float dtype than state_dtype asks for
        is converted at the next step."""
        saved = state_dict.get("state", {})
        groups = state_dict.get("param_groups", ())
        ids = [i for g in groups for i in g["params"]]
        # storage options a state_dict does not have (torch.optim's) stay this optimizer's
        keep = [{k: g[k] for k in _STORAGE_EXTRAS if k in g and k not in saved_g}
                for g, saved_g in zip(self.param_groups, groups)]
        super().load_state_dict(state_dict)
        for g, kept in zip(self.param_groups, keep):
            g.update(kept)
        params = [p for g in self.param_groups for p in g["params"]]
        for i, p in zip(ids, params):
            old, now = saved.get(i), self.state.get(p)
            if not old or not now:
                continue
            for k, v in old.items():
                if k != "step" and torch.is_tensor(v) and torch.is_tensor(now.get(k)) and now[k].dtype != v.dtype:
                    now[k] = v.to(device=p.device, copy=True)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            for k, v in self._setstate_defaults().items():
                group.setdefault(k, v)
        if self._step == "tensor":
            for s in self.state.values():
                if "step" in s and not torch.is_tensor(s["step"]):
                    s["step"] = torch.tensor(float(s["step"]))
        self.__dict__.setdefault("_pool", None)

    def _setstate_defaults(self):
        return dict({"foreach": None, "maximize": False}, **self._common_extras, **self._extras)

    @staticmethod
    def _flush(group):
        """The group's flush_subnormal (True where a group predates the option)."""
        return bool(group.get("flush_subnormal", True))

    @property
    def threads(self):
        """Workers of the thread pool, or None when steps run on the calling thread."""
        pool = getattr(self, "_pool", None)
        return None if pool is None else pool.threads

    def _collect(self, gi, group, cfg, opts, first):
        """Checks one group; returns [(p, grad, fresh, typed)] without changing anything: fresh, state
        converted to float32 for the plain step (or None); typed, a _Work for a typed step (or None).
        first: the global index of the group's first parameter (stochastic rounding's stream)."""
        name = type(self).__name__
        used = [key for key, array in self._state if self._uses(cfg, array)]
        plain_f32 = opts[1] == rmsfuse.F32 or not used  # float32 params take the plain step
        f32, strided = torch.float32, torch.strided
        work = []
        for i, p in enumerate(group["params"]):
            g = p.grad
            if g is None:
                continue
            # The common case in one test of identities (dtypes and layouts are singletons); the
            # messages below say what is wrong.
            if (p.dtype is f32 and g.dtype is f32 and p.layout is strided and g.layout is strided
                    and p.is_cpu and g.is_cpu and g.shape == p.shape and plain_f32):
                where = None
            else:
                where = f"param_groups[{gi}]['params'][{i}]"
                if g.is_sparse:
                    raise RuntimeError(f"{name} does not support sparse gradients ({where})")
                if p.dtype not in _PARAM_TYPE or g.dtype != p.dtype:
                    raise TypeError(f"rmsfuse.torch.{name} supports float32 tensors only, and bfloat16 and float16 "
                                    f"ones with a gradient of their dtype (docs/python.md, 'Storage types'): "
                                    f"{where} is {p.dtype} with a {g.dtype} gradient")
                if p.device.type != "cpu" or g.device.type != "cpu":
                    raise TypeError(f"rmsfuse.torch.{name} supports CPU tensors only: {where} is on {p.device}, "
                                    f"its gradient on {g.device}")
                if p.layout != torch.strided or g.layout != torch.strided:
                    raise TypeError(f"rmsfuse.torch.{name} supports dense (strided) tensors only: {where} is "
                                    f"{_describe(p)}, gradient {_describe(g)}")
                if g.shape != p.shape:
                    raise ValueError(f"{where}: gradient shape {tuple(g.shape)} != parameter shape "
                                     f"{tuple(p.shape)}")
                try:
                    kind = self._param_kind(p.dtype, opts, bool(used))
                except ValueError as e:
                    raise ValueError(f"rmsfuse.torch.{name}: {where}: {e}") from None
                if kind is not None:
                    work.append((p, g, None, self._typed_work(where, p, g, kind, cfg, group, first + i)))
                    continue
            state = self.state.get(p) or {}
            others = [g]
            fresh = None
            for key in used:
                s = state.get(key)
                if s is None:
                    continue  # created at the step, like the parameter's first state
                if (not torch.is_tensor(s) or s.dtype is not f32 or not s.is_cpu
                        or s.layout is not strided or s.shape != p.shape):
                    where = f"param_groups[{gi}]['params'][{i}]"
                    if (torch.is_tensor(s) and s.is_floating_point() and s.is_cpu and s.layout is strided
                            and s.shape == p.shape):  # another float dtype (state_dtype changed): float32
                        fresh = {} if fresh is None else fresh
                        s = fresh[key] = s.to(torch.float32, copy=True)
                    else:
                        raise TypeError(f"{where}: state '{key}' must be a CPU float32 tensor of the "
                                        f"parameter's shape, not {_describe(s) if torch.is_tensor(s) else repr(s)}")
                others.append(s)
            if not _layout_ok(p, others):
                where = f"param_groups[{gi}]['params'][{i}]"
                raise ValueError(f"rmsfuse.torch.{name} needs parameter, gradient and state laid out alike "
                                 f"and densely (contiguous, or e.g. all channels_last): {where} is "
                                 f"{_describe(p)}, gradient {_describe(g)}; make them contiguous")
            work.append((p, g, fresh, None))
        return work

    def _typed_work(self, where, p, g, kind, cfg, group, stream):
        """One parameter of another storage than float32 everywhere: its state checked, and what is
        missing made (or converted from another float dtype) aside; its typed tensor row."""
        pt, gt, st, flags = kind
        name = type(self).__name__
        base = self.state.get(p)
        fresh = {} if base else self._init_state(p, group, cfg, kind)
        view = base if base else fresh
        created, drop = set(), []
        strided = torch.strided

        def fits(t, dtype, shape):
            return (torch.is_tensor(t) and t.dtype is dtype and t.is_cpu and t.layout is strided
                    and t.shape == shape)

        def refuse(key, want, t):
            raise TypeError(f"rmsfuse.torch.{name}: {where}: state '{key}' must be {want}, not "
                            f"{_describe(t) if torch.is_tensor(t) else repr(t)}")

        def convertible(t):
            return torch.is_tensor(t) and t.is_floating_point() and t.is_cpu and t.layout is strided \
                and t.shape == p.shape

        extra, others = 0, [g]
        if flags & rmsfuse.MASTER_WEIGHTS:
            m = view.get(_MASTER)
            if m is None:
                trail = view.get(_TRAIL)
                m = fresh[_MASTER] = _split_master(p, trail) if fits(trail, torch.int16, p.shape) and \
                    p.dtype is torch.bfloat16 else \
                    torch.empty_like(p, dtype=torch.float32, memory_format=torch.preserve_format).copy_(p)
            elif not fits(m, torch.float32, p.shape):
                if not convertible(m):
                    refuse(_MASTER, "a CPU float32 tensor of the parameter's shape (the master weights)", m)
                m = fresh[_MASTER] = m.to(torch.float32, copy=True)  # e.g. cast by torch.optim's load_state_dict
            extra = m.data_ptr()
            others.append(m)
            drop.append(_TRAIL)
        elif pt == rmsfuse.SPLIT_BF16:
            t = view.get(_TRAIL)
            if t is None:  # the parameter's bits are the upper half of its float32 weights
                t = fresh[_TRAIL] = torch.zeros_like(p, dtype=torch.int16, memory_format=torch.preserve_format)
            elif not fits(t, torch.int16, p.shape):
                refuse(_TRAIL, "a CPU int16 tensor of the parameter's shape (the lower 16 bits of the weights)", t)
            extra = t.data_ptr()
            others.append(t)
            drop.append(_MASTER)
        else:
            drop += [_MASTER, _TRAIL]

        slots = rmsfuse._abi.TYPED_SLOTS
        states, scales = [0] * slots, [0] * slots
        dtype = _STATE_DTYPE[st]
        for j, (key, array) in enumerate(self._state):
            if not self._uses(cfg, array):
                continue
            nonneg = rmsfuse.nonneg_state(array)
            t = view.get(key)
            sk = _scale_key(key)
            if t is None:
                t = fresh[key] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
                created.add(key)
                if st in _Q8:
                    fresh[sk] = torch.zeros(_blocks(p.numel()), dtype=torch.float32)
            elif not fits(t, dtype, p.shape) or (st in _Q8 and not fits(view.get(sk), torch.float32,
                                                                          (_blocks(p.numel()),))):
                if dtype is torch.uint8 and fits(t, torch.uint8, p.shape):
                    refuse(sk, f"a CPU float32 tensor of {_blocks(p.numel())} elements (the block scales of "
                               f"'{key}')", view.get(sk))
                if not convertible(t):
                    refuse(key, f"a CPU {dtype} tensor of the parameter's shape (state_dtype "
                                f"{_TYPE_TEXT[st]}), or a floating-point one to convert", t)
                # state of another float dtype (state_dtype changed, or a state_dict of another
                # optimizer): converted with the library's rounding
                t, sc = _encode(t.to(torch.float32, copy=True), st, nonneg)
                fresh[key] = t
                if sc is not None:
                    fresh[sk] = sc
            if st in _Q8:
                sc = fresh.get(sk, view.get(sk))
                if not sc.is_contiguous():
                    refuse(sk, "a contiguous tensor", sc)
                scales[j] = sc.data_ptr() if sc.numel() else 0
            elif sk in view:
                drop.append(sk)
            states[j] = t.data_ptr()
            others.append(t)
        if not _layout_ok(p, others):
            raise ValueError(f"rmsfuse.torch.{name} needs parameter, gradient and state laid out alike "
                             f"and densely (contiguous, or e.g. all channels_last): {where} is "
                             f"{_describe(p)}, gradient {_describe(g)}; make them contiguous")
        sr_step = 0
        if flags & rmsfuse.STOCHASTIC_ROUNDING:
            if self._step is None and "step" not in view:
                fresh["step"] = 0  # SGD counts its steps for stochastic rounding only
            sr_step = self._sr_step(fresh if "step" in fresh else view)
        row = [p.data_ptr(), extra, g.data_ptr()] + states + scales + [p.numel(), stream]
        if p.numel() == 0:
            row = [0] * (len(row) - 2) + [0, stream]
        return _Work((pt, gt, st, flags, sr_step), fresh, created, [k for k in drop if k in view], row, view)

    @staticmethod
    def _grad_scale(grad_scale):
        """step()'s grad_scale (a number or a one-element tensor) as the gradients' multiplier."""
        if torch.is_tensor(grad_scale):
            if grad_scale.numel() != 1:
                raise ValueError(f"grad_scale must be a number or a one-element tensor, not a tensor of "
                                 f"shape {tuple(grad_scale.shape)}")
            grad_scale = grad_scale.item()
        if not isinstance(grad_scale, numbers.Real) or isinstance(grad_scale, bool):
            raise TypeError(f"grad_scale must be a number or a one-element tensor, not {type(grad_scale).__name__}")
        scale = 1.0 / float(grad_scale) if grad_scale != 0 else float("inf")
        if not rmsfuse._grad_scale_ok(scale):
            raise ValueError(f"grad_scale {grad_scale!r}: 1/grad_scale must be a finite float32 above 0")
        return scale

    @torch.no_grad()
    def step(self, closure=None, *, grad_scale=None, grad_sumsq=None):
        """Performs a single optimization step (one rmsfuse call per parameter group).

        Args:
            closure (Callable, optional): A closure that reevaluates the model
                and returns the loss.
            grad_scale (float or one-element tensor, optional): the loss scale the
                gradients carry: the step reads each gradient divided by it (times
                1/grad_scale rounded to float32 once, as torch's GradScaler unscales),
                and if any gradient of any group is then Inf or NaN the whole step is
                skipped: no parameter or state changes, the step is not counted,
                and self.found_inf is True.

        The groups' max_grad_norm clips by the global norm of every gradient of the
        step (all groups, after the unscale), as torch.nn.utils.clip_grad_norm_ over
        all the parameters; clip_value clamps each gradient to [-clip_value,
        clip_value] after that.  Both are fused into the step (docs/python.md).
        After the step, self.grad_norm is that norm (None when nothing needed it)
        and self.found_inf whether a gradient was Inf or NaN (None if not checked).

            grad_sumsq (float, optional): the sum of squares of every gradient of the
                training step (times 1/grad_scale), from grad_sumsq(), when this optimizer
                holds only part of the parameters (ZeroRedundancyOptimizer's partition, or
                several optimizers over one model): the norm and the Inf/NaN check then
                use it instead of this optimizer's own gradients, so every part clips and
                skips as one optimizer over all the parameters would.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        scale = 1.0 if grad_scale is None else self._grad_scale(grad_scale)
        if grad_sumsq is not None:
            if torch.is_tensor(grad_sumsq):
                grad_sumsq = grad_sumsq.item()
            if not isinstance(grad_sumsq, numbers.Real) or isinstance(grad_sumsq, bool) or grad_sumsq < 0:
                raise ValueError(f"grad_sumsq must be a sum of squares (>= 0, inf or nan), not {grad_sumsq!r}")
            grad_sumsq = float(grad_sumsq)

        # Check everything and make the missing state first: a step that raises changes nothing.
        checked, first = [], 0
        for gi, group in enumerate(self.param_groups):
            cfg, c_cfg, storage_opts = self._group_config(gi, group)
            checked.append((group, cfg, c_cfg, storage_opts, self._collect(gi, group, cfg, storage_opts, first)))
            first += len(group["params"])
        calls, new_state, drops = [], {}, []
        for group, cfg, c_cfg, storage_opts, work in checked:
            batches = {}
            for p, g, fresh, w in work:
                if w is None:  # float32 everywhere: the plain step
                    state = self.state.get(p)
                    if not state:
                        state = new_state[p] = self._init_state(p, group, cfg)
                    if fresh:  # state converted to float32
                        new_state.setdefault(p, {}).update(fresh)
                        state = dict(state, **fresh)
                    created = set()
                    arrays = [p.data_ptr(), g.data_ptr()]
                    for name, array in self._state:
                        if not self._uses(cfg, array):
                            arrays.append(0)
                            continue
                        s = state.get(name)
                        if s is None:
                            s = torch.zeros_like(p, memory_format=torch.preserve_format)
                            new_state.setdefault(p, {})[name] = s
                            created.add(name)
                        arrays.append(s.data_ptr())
                    key = (self._overrides(cfg, state, created), None)
                    row = arrays + [p.numel()]
                else:  # a typed step (rmsfuse_<rule>_step_typed): state made or converted in _collect
                    if w.fresh:
                        new_state.setdefault(p, {}).update(w.fresh)
                    if w.drop:
                        drops.append((p, w.drop))
                    key = (self._overrides(cfg, w.view, w.created), w.skey)
                    row = w.row
                rows, params = batches.setdefault(key, ([], []))
                rows.append(row)
                params.append(p)
            for (key, skey), (rows, params) in batches.items():
                c = c_cfg
                if key and all(name in cfg._rule.fields for name, _ in key):
                    # numeric fields (the step number): a copy of the checked struct with them set
                    c = type(c_cfg).from_buffer_copy(c_cfg)
                    for name, value in key:
                        setattr(c, name, value)
                elif key:  # a flag (SGD's first-step buffer)
                    c = cfg.replace(**dict(key))._c()
                if skey is None:
                    calls.append(_Call(cfg._rule, c, None, np.array(rows, dtype=np.uintp), params, dict(key), group))
                else:
                    pt, gt, st, flags, sr_step = skey
                    storage = _abi.rmsfuse_storage(pt, gt, st, flags, storage_opts[3], sr_step)
                    calls.append(_Call(cfg._rule, c, storage, rmsfuse._TypedList(rows), params, dict(key), group))

        where = f"rmsfuse.torch.{type(self).__name__}.step"
        if len(calls) > 1:  # several calls: all must pass before the first writes
            for call in calls:
                st = call.check()
                if st != 0:
                    raise rmsfuse.RmsfuseError(st, where)
        opts = self._grad_options(calls, scale, grad_scale is not None, grad_sumsq, where)
        if opts is None:  # a non-finite gradient with grad_scale: nothing is written, the step not counted
            return loss
        for call, opt in zip(calls, opts):
            st = call.run(self._pool, opt)
            if st != 0:
                raise rmsfuse.RmsfuseError(st, where)

        # Written: now record the state and count the step, as torch does.
        for p, s in new_state.items():
            self.state[p].update(s)
        for p, keys in drops:  # what another storage of the parameter kept (master, trail, block scales)
            for k in keys:
                self.state[p].pop(k, None)
        if self._step == "int":
            for call in calls:
                for p in call.params:
                    self.state[p]["step"] += 1
        elif self._step == "tensor":  # torch's step_t += 1; the new number is the call's (a third of the cost)
            for call in calls:
                for p in call.params:
                    self.state[p]["step"].fill_(call.key["step"])
        else:  # SGD counts steps only for stochastic rounding
            for call in calls:
                if call.storage is not None and call.storage.flags & rmsfuse.STOCHASTIC_ROUNDING:
                    for p in call.params:
                        self.state[p]["step"] += 1
        return loss

    def _grad_options(self, calls, scale, skip, given, where):
        """Each call's rmsfuse_grad_options (None: a plain step), or None for the whole step when it
        must be skipped.  The norm, when a group clips by it or grad_scale asks for the check, is of
        every gradient of the step: one read-only pass (rmsfuse_<rule>_grad_sumsq, or
        rmsfuse_grad_sumsq_typed for typed calls, calls in order), or the sum `given` (step()'s
        grad_sumsq), given to every call (RMSFUSE_SUMSQ_GIVEN)."""
        inf = float("inf")
        clip = [(call.group.get("max_grad_norm"), call.group.get("clip_value")) for call in calls]
        self.found_inf, self.grad_norm = None, None
        if not skip and given is None and scale == 1.0 and all(m is None and v is None for m, v in clip):
            return [None] * len(calls)
        flags = 0
        sumsq = ctypes.c_double(0.0 if given is None else given)
        if skip or given is not None or any(m is not None for m, _ in clip):
            for call in (calls if given is None else ()):
                st = call.sumsq(scale, sumsq)
                if st != 0:
                    raise rmsfuse.RmsfuseError(st, where)
            self.found_inf = not math.isfinite(sumsq.value)
            self.grad_norm = math.sqrt(sumsq.value) if sumsq.value >= 0 else sumsq.value
            if self.found_inf and skip:
                return None
            flags = _abi.GRAD_FLAGS["SKIP_NONFINITE"] * skip | _abi.GRAD_FLAGS["SUMSQ_GIVEN"]
        return [_abi.rmsfuse_grad_options(scale, inf if v is None else float(v), inf if m is None else float(m),
                                          flags, sumsq.value) for m, v in clip]

    def close(self):
        """Stops the thread pool, if any (it is also stopped when the optimizer is collected)."""
        if getattr(self, "_pool", None) is not None:
            self._pool.close()
            self._pool = None


class RMSprop(_Fused):
    """torch.optim.RMSprop computed by rmsfuse (one fused pass per step).

    Arguments as torch.optim.RMSprop 1.13, plus keyword-only:
      nesterov=False       Nesterov momentum (RMSFUSE_NESTEROV): p -= lr * (g/d + momentum * buf);
                           needs momentum > 0.  Not in torch.
      decoupled_weight_decay=False  weight decay as AdamW's, p *= 1 - lr * weight_decay, instead of
                           coupled into the gradient (RMSFUSE_DECOUPLED_DECAY).  Not in torch's RMSprop.
      capturable=False     (later torch) accepted; True is refused.
      flush_subnormal=True state values below FLT_MIN become +0 (RMSFUSE_FLUSH_SUBNORMAL), so zero
                           gradients never leave square_avg, grad_avg or the momentum buffer
                           subnormal (and every step slow).  Not torch's behaviour (it keeps them
                           unless torch.set_flush_denormal(True)); the parameters keep their bits
                           for eps >= 1.8e-12 (docs/python.md).  False: exact IEEE state.
      max_grad_norm=None   clip by the global norm of every gradient of the step (all groups, after
                           step()'s grad_scale): g *= max_grad_norm / (norm + 1e-6) when that is < 1,
                           fused into the step (one read-only pass for the norm).  Per group.
      clip_value=None      clamp each gradient to [-clip_value, clip_value], fused.  Per group.
      threads=None         None runs on the calling thread; an int k runs every step on an rmsfuse
                           thread pool with k workers (0: one per core).  Bit-identical either way.
      master_weights="fp32" bfloat16/float16 parameters: "fp32" a float32 copy in state 'master' that
                           the step updates (the parameter is written from it, rounded to nearest
                           even); "split" (bfloat16) the parameter holds the upper 16 bits of the
                           float32 weight and state 'trail' the lower 16; None the parameter itself,
                           rounded each step.  Ignored for float32 parameters.  Every class.
      state_dtype=torch.float32  torch.bfloat16, "q8" or "q8_linear": the state arrays in bf16 or in
                           8-bit blocks of 256 with a float32 scale each ('<name>_scale').  Every class.
      stochastic_rounding=False, seed=0  round a bfloat16/float16 parameter at random when it is
                           written (a hash of seed, the parameter's step number and its index in the
                           optimizer: reproducible).  Every class.
    """

    _state = (("square_avg", "square_avg"), ("momentum_buffer", "momentum_buf"), ("grad_avg", "grad_avg"))
    _step = "int"
    _extras = {"nesterov": False, "decoupled_weight_decay": False, "capturable": False}

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 foreach=None, maximize=False, differentiable=False, *, nesterov=False,
                 decoupled_weight_decay=False, capturable=False, flush_subnormal=True, max_grad_norm=None,
                 clip_value=None, master_weights="fp32",
                 state_dtype=torch.float32, stochastic_rounding=False, seed=0, threads=None):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, nesterov=nesterov,
                        decoupled_weight_decay=decoupled_weight_decay, capturable=capturable,
                        flush_subnormal=flush_subnormal, max_grad_norm=max_grad_norm, clip_value=clip_value,
                        master_weights=master_weights, state_dtype=state_dtype,
                        stochastic_rounding=stochastic_rounding, seed=seed)
        super().__init__(params, defaults, threads)

    def _setstate_defaults(self):
        return dict(super()._setstate_defaults(), momentum=0, centered=False, differentiable=False)

    def _config(self, group):
        return rmsfuse.Config(lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
                              weight_decay=group["weight_decay"], momentum=group["momentum"],
                              centered=group["centered"], maximize=group["maximize"],
                              nesterov=group.get("nesterov", False),
                              decoupled_decay=group.get("decoupled_weight_decay", False),
                              flush_subnormal=self._flush(group))


class Adagrad(_Fused):
    """torch.optim.Adagrad computed by rmsfuse (one fused pass per step).

    Arguments as torch.optim.Adagrad 1.13 (the state 'sum' starts at
    initial_accumulator_value, 'step' is a 0-dim float tensor), plus keyword-only:
      eps_in_sqrt=False    True: the classic formula p -= clr * g / sqrt(sum + eps) (Keras' placement,
                           RMSFUSE_EPS_IN_SQRT) instead of torch's sqrt(sum) + eps.  Not in torch.
      differentiable=False, fused=None  (later torch) accepted; differentiable=True is refused, fused
                           changes nothing.
      flush_subnormal=True as RMSprop's ('sum' never decays, so only a squared gradient below
                           FLT_MIN makes it subnormal).
      threads=None         as RMSprop's.
    """

    _state = (("sum", "sum"),)
    _step = "tensor"
    _extras = {"eps_in_sqrt": False, "differentiable": False, "fused": None}

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, eps_in_sqrt=False, differentiable=False, fused=None,
                 flush_subnormal=True, max_grad_norm=None, clip_value=None, master_weights="fp32",
                 state_dtype=torch.float32, stochastic_rounding=False, seed=0, threads=None):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        eps_in_sqrt=eps_in_sqrt, differentiable=differentiable, fused=fused,
                        flush_subnormal=flush_subnormal, max_grad_norm=max_grad_norm, clip_value=clip_value,
                        master_weights=master_weights, state_dtype=state_dtype,
                        stochastic_rounding=stochastic_rounding, seed=seed)
        super().__init__(params, defaults, threads)
        # torch creates Adagrad's state up front, with the constructor's initial_accumulator_value
        # even for a group that gives its own (torch 1.13 does; a group's own value is used only
        # for the state of a group added later, which torch would not create at all).
        # The sum is made in the group's state_dtype (8-bit: encoded with the unsigned map).
        for group in self.param_groups:
            opts = self._storage_opts(group)
            for p in group["params"]:
                kind = self._param_kind(p.dtype, opts, True) if p.dtype in _PARAM_TYPE else None
                self.state[p] = self._init_state(p, self.defaults, None, kind)

    def _init_state(self, p, group, cfg, kind=None):
        v = group["initial_accumulator_value"]
        if kind is None:
            return {"step": torch.tensor(0.0), "sum": torch.full_like(p, v, memory_format=torch.preserve_format)}
        s, scale = _encode(torch.full_like(p, v, dtype=torch.float32, memory_format=torch.preserve_format), kind[2],
                           True)
        state = {"step": torch.tensor(0.0), "sum": s}
        if scale is not None:
            state[_scale_key("sum")] = scale
        return state

    def _config(self, group):
        return rmsfuse.AdagradConfig(lr=group["lr"], lr_decay=group["lr_decay"], weight_decay=group["weight_decay"],
                                     eps=group["eps"], step=1, eps_in_sqrt=group.get("eps_in_sqrt", False),
                                     maximize=group["maximize"], flush_subnormal=self._flush(group))


class SGD(_Fused):
    """torch.optim.SGD computed by rmsfuse (one fused pass per step).

    Arguments as torch.optim.SGD 1.13.  State 'momentum_buffer' is None until
    the first step with momentum, which sets it to the gradient
    (RMSFUSE_INIT_MOMENTUM), as torch.  Keyword-only extras: fused=None (later
    torch; changes nothing), flush_subnormal=True (as RMSprop's: the momentum
    buffer), threads=None (as RMSprop's).
    """

    _state = (("momentum_buffer", "momentum_buf"),)
    _extras = {"fused": None}

    def __init__(self, params, lr=required, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None, flush_subnormal=True,
                 max_grad_norm=None, clip_value=None, master_weights="fp32",
                 state_dtype=torch.float32, stochastic_rounding=False, seed=0, threads=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                        fused=fused, flush_subnormal=flush_subnormal, max_grad_norm=max_grad_norm,
                        clip_value=clip_value,
                        master_weights=master_weights, state_dtype=state_dtype,
                        stochastic_rounding=stochastic_rounding, seed=seed)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults, threads)

    def _setstate_defaults(self):
        return dict(super()._setstate_defaults(), nesterov=False, differentiable=False)

    def _init_state(self, p, group, cfg, kind=None):
        return {"momentum_buffer": None}  # what torch stores after a step without momentum

    def _overrides(self, cfg, state, created):
        # A buffer made for this step is set to the gradient by the library, as torch clones d_p.
        return (("init_momentum", True),) if "momentum_buffer" in created else ()

    def _config(self, group):
        return rmsfuse.SGDConfig(lr=group["lr"], momentum=group["momentum"],
                                 dampening=group["dampening"], weight_decay=group["weight_decay"],
                                 nesterov=group["nesterov"], maximize=group["maximize"],
                                 flush_subnormal=self._flush(group))


class Adam(_Fused):
    """torch.optim.Adam computed by rmsfuse (one fused pass per step).

    Arguments as torch.optim.Adam 1.13 ('step' a 0-dim float tensor), plus keyword-only:
      decoupled_weight_decay=False  True: AdamW's decay (later torch's Adam has this keyword).
      flush_subnormal=True as RMSprop's: exp_avg, exp_avg_sq and max_exp_avg_sq.
      threads=None         as RMSprop's.
    foreach and fused are accepted and change nothing; capturable=True and
    differentiable=True are refused.
    """

    _state = (("exp_avg", "exp_avg"), ("exp_avg_sq", "exp_avg_sq"), ("max_exp_avg_sq", "max_exp_avg_sq"))
    _step = "tensor"
    _extras = {"decoupled_weight_decay": False}
    _decoupled = None  # AdamW: always

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=False,
                 decoupled_weight_decay=False, flush_subnormal=True, max_grad_norm=None, clip_value=None,
                 master_weights="fp32", state_dtype=torch.float32, stochastic_rounding=False, seed=0, threads=None):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay,
                        flush_subnormal=flush_subnormal, max_grad_norm=max_grad_norm, clip_value=clip_value,
                        master_weights=master_weights, state_dtype=state_dtype,
                        stochastic_rounding=stochastic_rounding, seed=seed)
        super().__init__(params, defaults, threads)

    def _setstate_defaults(self):
        return dict(super()._setstate_defaults(), amsgrad=False, capturable=False, differentiable=False,
                    fused=False)

    def _config(self, group):
        beta1, beta2 = group["betas"]
        decoupled = self._decoupled if self._decoupled is not None else group.get("decoupled_weight_decay", False)
        return rmsfuse.AdamConfig(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                                  weight_decay=group["weight_decay"], step=1, maximize=group["maximize"],
                                  decoupled_decay=decoupled, amsgrad=group["amsgrad"],
                                  flush_subnormal=self._flush(group))


class AdamW(Adam):
    """torch.optim.AdamW computed by rmsfuse (one fused pass per step).

    Arguments as torch.optim.AdamW 1.13 (weight decay decoupled:
    p *= 1 - lr * weight_decay), plus the later torch keywords
    differentiable=False (True refused) and fused=None (changes nothing), and
    flush_subnormal=True (as Adam's) and threads=.
    """

    _extras = {"differentiable": False, "fused": None}
    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None,
                 flush_subnormal=True, max_grad_norm=None, clip_value=None, master_weights="fp32",
                 state_dtype=torch.float32, stochastic_rounding=False, seed=0, threads=None):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        foreach=foreach, maximize=maximize, capturable=capturable, differentiable=differentiable,
                        fused=fused, flush_subnormal=flush_subnormal, max_grad_norm=max_grad_norm,
                        clip_value=clip_value,
                        master_weights=master_weights, state_dtype=state_dtype,
                        stochastic_rounding=stochastic_rounding, seed=seed)
        _Fused.__init__(self, params, defaults, threads)

    def _setstate_defaults(self):
        return dict(_Fused._setstate_defaults(self), amsgrad=False, capturable=False)


def grad_sumsq(params, grad_scale=None):
    """The sum of squares of every gradient of `params` (times 1/grad_scale), as a drop-in's step
    computes it for its norm: float32 products squared and added in double in the library's fixed
    order (rmsfuse_grad_block_sumsq, tensor after tensor in the order given; docs/math.md).  Pass it
    to step(grad_sumsq=) of optimizers that hold only part of the parameters (ZeRO): with the
    parameters in the order one drop-in over all of them would take them (its param_groups'
    order), each part clips and skips exactly as that one optimizer would.  Parameters without a
    gradient are left out; gradients must be CPU float32, bfloat16 or float16 and dense (bfloat16
    and float16 ones are read as float32, exactly, as the typed steps read them:
    rmsfuse_grad_block_sumsq_typed)."""
    scale = 1.0 if grad_scale is None else _Fused._grad_scale(grad_scale)
    acc = 0.0
    for i, p in enumerate(params):
        g = p.grad
        if g is None or g.numel() == 0:
            continue
        if g.dtype not in _PARAM_TYPE or not g.is_cpu or g.layout is not torch.strided or not _dense_strides(g):
            raise TypeError(f"grad_sumsq: the gradient of parameter {i} must be a dense CPU float32 (or bfloat16, "
                            f"float16) tensor, not {_describe(g)}")
        sums = np.empty(-(-g.numel() // _abi.NORM_BLOCK), dtype=np.float64)
        if g.dtype is torch.float32:
            st = rmsfuse._L.rmsfuse_grad_block_sumsq(g.data_ptr(), g.numel(), scale, sums.ctypes.data)
        else:
            st = rmsfuse._L.rmsfuse_grad_block_sumsq_typed(_PARAM_TYPE[g.dtype], g.data_ptr(), g.numel(), scale,
                                                           sums.ctypes.data)
        if st != 0:
            raise rmsfuse.RmsfuseError(st, "grad_sumsq")
        for b in sums.tolist():  # one after the other, in double: the library's order
            acc += b
    return acc


class GradScaler:
    """Loss scaling for CPU training with the drop-ins: torch.cuda.amp.GradScaler's role (torch 1.13
    has no CPU GradScaler), with the unscale and the found-inf check fused into the optimizer step.

        scaler = rmsfuse.torch.GradScaler()
        loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()      # gradients carry the scale
        scaler.step(opt)                   # opt.step(grad_scale=scale): unscaled as read, skipped on Inf/NaN
        scaler.update()                    # torch's growth/backoff rules

    The arguments and update() rules are torch's: the scale starts at init_scale; a step whose
    gradients hold an Inf or NaN is skipped (no parameter or state changes) and multiplies the scale
    by backoff_factor; growth_interval steps in a row without one multiply it by growth_factor (if
    that stays finite).  The scale is a one-element float32 tensor, as torch's.  Clipping needs no
    unscale_(): give the optimizer max_grad_norm= (the norm is of the unscaled gradients).  Under
    ZeroRedundancyOptimizer(optimizer_class=a drop-in), pass the whole model's sum so that every
    rank skips together: scaler.step(zero, grad_sumsq=grad_sumsq(model.parameters(),
    grad_scale=scaler.get_scale())).
    """

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        if not growth_factor > 1.0:
            raise ValueError("The growth factor must be > 1.0.")
        if not backoff_factor < 1.0:
            raise ValueError("The backoff factor must be < 1.0.")
        if not (isinstance(growth_interval, numbers.Integral) and growth_interval > 0):
            raise ValueError("growth_interval must be a positive int")
        self._enabled = bool(enabled)
        self._init_scale, self._growth_factor = float(init_scale), float(growth_factor)
        self._backoff_factor, self._growth_interval = float(backoff_factor), int(growth_interval)
        self._scale = torch.full((1,), self._init_scale, dtype=torch.float32)
        self._growth_tracker = 0
        self._found_inf = None  # of the steps since the last update(): None before the first

    def is_enabled(self):
        return self._enabled

    def get_scale(self):
        """The current scale as a Python float (1.0 when disabled)."""
        return float(self._scale.item()) if self._enabled else 1.0

    def scale(self, outputs):
        """outputs (a tensor, or a list/tuple of them) times the scale."""
        if not self._enabled:
            return outputs
        if torch.is_tensor(outputs):
            return outputs * self._scale.to(device=outputs.device)
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        raise ValueError("outputs must be a Tensor or a list/tuple of Tensors")

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step(*args, grad_scale=scale, **kwargs): returns its value, or None when the
        step was skipped for an Inf or NaN gradient."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        # a drop-in, or a wrapper that steps one (ZeroRedundancyOptimizer: .optim, kwargs passed on)
        inner = optimizer if isinstance(optimizer, _Fused) else getattr(optimizer, "optim", None)
        if not isinstance(inner, _Fused):
            raise TypeError(f"rmsfuse.torch.GradScaler steps the rmsfuse.torch optimizers (their step() "
                            f"unscales and checks), or a ZeroRedundancyOptimizer of one, not "
                            f"{type(optimizer).__name__}")
        retval = optimizer.step(*args, grad_scale=self._scale, **kwargs)
        found = bool(inner.found_inf)
        self._found_inf = found or bool(self._found_inf)
        return None if found else retval

    def update(self, new_scale=None):
        """The scale for the next steps: new_scale if given, else torch's rules from the steps since
        the last update (each product computed in double and rounded to float32 once)."""
        if not self._enabled:
            return
        if new_scale is not None:
            value = float(new_scale.item()) if torch.is_tensor(new_scale) else float(new_scale)
            self._scale.fill_(value)
        elif self._found_inf is not None:
            scale = float(self._scale.item())
            if self._found_inf:
                self._scale.fill_(float(np.float32(scale * self._backoff_factor)))
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    grown = np.float32(scale * self._growth_factor)
                    if np.isfinite(grown):
                        self._scale.fill_(float(grown))
                    self._growth_tracker = 0
        self._found_inf = None

    def state_dict(self):
        """torch's GradScaler.state_dict() keys."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        self._scale.fill_(float(state_dict["scale"]))
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])

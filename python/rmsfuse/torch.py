"""rmsfuse.torch.RMSprop: a drop-in torch.optim.RMSprop for CPU float32 tensors.

    from rmsfuse.torch import RMSprop
    opt = RMSprop(model.parameters(), lr=1e-2, momentum=0.9)   # was: torch.optim.RMSprop(...)

Same constructor arguments, defaults, param_groups and state names ('step',
'square_avg', 'momentum_buffer', 'grad_avg') as torch.optim.RMSprop, so
state_dicts move between the two.  Each step() is one library call per
parameter group (rmsfuse_rmsprop_step_multi over every parameter with a
gradient), or one call on a thread pool with threads=.

Differences (see docs/python.md):
  * only CPU float32 dense tensors; anything else raises TypeError (sparse
    gradients: RuntimeError, as torch).  Tensors must be contiguous, or
    dense and non-overlapping in another memory format (channels_last, ...)
    with param, grad and state all laid out alike; otherwise ValueError.
    There is no silent fallback to torch's code.
  * foreach is accepted and ignored (every step is one fused call);
    differentiable=True is refused.
  * rmsfuse also requires alpha <= 1 and momentum < 1 (torch accepts any
    alpha, momentum >= 0); ValueError otherwise.
  * a step that raises has changed no parameter and no state.
"""

import numbers

import numpy as np
import torch

import rmsfuse
from rmsfuse import _lib

__all__ = ["RMSprop"]

_lib_core = _lib.lib


def _config(group):
    cfg = rmsfuse.Config(lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
                         weight_decay=group["weight_decay"], momentum=group["momentum"],
                         centered=bool(group["centered"]), maximize=bool(group["maximize"]))
    try:
        cfg.validate()
    except rmsfuse.RmsfuseError as e:
        raise ValueError(f"rmsfuse.torch.RMSprop: hyperparameters not supported by rmsfuse ({e}); "
                         f"lr={group['lr']}, alpha={group['alpha']}, eps={group['eps']}, "
                         f"weight_decay={group['weight_decay']}, momentum={group['momentum']}") from None
    return cfg


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


class RMSprop(torch.optim.Optimizer):
    """torch.optim.RMSprop computed by rmsfuse (one fused pass per step).

    Arguments as torch.optim.RMSprop, plus the keyword-only threads=:
    None (default) runs on the calling thread; an int k runs every step on
    an rmsfuse thread pool with k workers bound to cores (0: one per core),
    which needs librmsfuse_pool.  Results are bit-identical either way.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 foreach=None, maximize=False, differentiable=False, *, threads=None):
        if not 0.0 <= lr:
            raise ValueError("Invalid learning rate: {}".format(lr))
        if not 0.0 <= eps:
            raise ValueError("Invalid epsilon value: {}".format(eps))
        if not 0.0 <= momentum:
            raise ValueError("Invalid momentum value: {}".format(momentum))
        if not 0.0 <= weight_decay:
            raise ValueError("Invalid weight_decay value: {}".format(weight_decay))
        if not 0.0 <= alpha:
            raise ValueError("Invalid alpha value: {}".format(alpha))
        if differentiable:
            raise ValueError("rmsfuse.torch.RMSprop: differentiable=True is not supported (the update runs in C, "
                             "outside autograd); use torch.optim.RMSprop")
        if threads is not None and (not isinstance(threads, numbers.Integral) or isinstance(threads, bool)
                                    or threads < 0):
            raise ValueError(f"threads must be None or an int >= 0 (0: one per core), not {threads!r}")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, foreach=foreach, maximize=maximize,
                        differentiable=differentiable)
        super().__init__(params, defaults)
        self._pool = rmsfuse.Pool(int(threads)) if threads is not None else None

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if group.get("differentiable"):
            raise ValueError("rmsfuse.torch.RMSprop: differentiable=True is not supported")
        _config(group)  # refuse hyperparameters the library would refuse, now rather than at step()

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("momentum", 0)
            group.setdefault("centered", False)
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
        self.__dict__.setdefault("_pool", None)

    @property
    def threads(self):
        """Workers of the thread pool, or None when steps run on the calling thread."""
        pool = getattr(self, "_pool", None)
        return None if pool is None else pool.threads

    def _collect(self, gi, group):
        """Checks one group; returns (config, [(p, grad)], [state keys]) without changing anything."""
        cfg = _config(group)
        mom, centered = cfg.momentum != 0, cfg.centered
        work = []
        for i, p in enumerate(group["params"]):
            g = p.grad
            if g is None:
                continue
            where = f"param_groups[{gi}]['params'][{i}]"
            if g.is_sparse:
                raise RuntimeError(f"RMSprop does not support sparse gradients ({where})")
            if p.dtype != torch.float32 or g.dtype != torch.float32:
                raise TypeError(f"rmsfuse.torch.RMSprop supports float32 tensors only: {where} is {p.dtype} "
                                f"with a {g.dtype} gradient")
            if p.device.type != "cpu" or g.device.type != "cpu":
                raise TypeError(f"rmsfuse.torch.RMSprop supports CPU tensors only: {where} is on {p.device}, "
                                f"its gradient on {g.device}")
            if p.layout != torch.strided or g.layout != torch.strided:
                raise TypeError(f"rmsfuse.torch.RMSprop supports dense (strided) tensors only: {where} is "
                                f"{_describe(p)}, gradient {_describe(g)}")
            if g.shape != p.shape:
                raise ValueError(f"{where}: gradient shape {tuple(g.shape)} != parameter shape {tuple(p.shape)}")
            state = self.state.get(p)
            others = [g]
            if state:
                for key, used in (("square_avg", True), ("momentum_buffer", mom), ("grad_avg", centered)):
                    s = state.get(key)
                    if s is None:
                        if used and key == "square_avg":
                            raise ValueError(f"{where}: optimizer state has no 'square_avg'")
                        continue  # created below, like the parameter
                    if not used:
                        continue
                    if (s.dtype != torch.float32 or s.device.type != "cpu" or s.layout != torch.strided
                            or s.shape != p.shape):
                        raise TypeError(f"{where}: state '{key}' must be a CPU float32 tensor of the "
                                        f"parameter's shape, not {_describe(s)}")
                    others.append(s)
            if not _layout_ok(p, others):
                raise ValueError(f"rmsfuse.torch.RMSprop needs parameter, gradient and state laid out alike "
                                 f"and densely (contiguous, or e.g. all channels_last): {where} is "
                                 f"{_describe(p)}, gradient {_describe(g)}; make them contiguous")
            work.append((p, g))
        return cfg, work

    @torch.no_grad()
    def step(self, closure=None):
        """Performs a single optimization step (one rmsfuse call per parameter group).

        Args:
            closure (Callable, optional): A closure that reevaluates the model
                and returns the loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        # Check everything first: a step that raises changes nothing.
        plans = [self._collect(gi, group) for gi, group in enumerate(self.param_groups)]
        calls = []
        new_state = {}
        for cfg, work in plans:
            mom, centered = cfg.momentum != 0, cfg.centered
            rows = []
            for p, g in work:
                state = self.state.get(p)
                if not state:
                    state = new_state.setdefault(p, {"step": 0, "square_avg": torch.zeros_like(
                        p, memory_format=torch.preserve_format)})
                sq = state["square_avg"]
                mb = ga = None
                if mom:
                    mb = state.get("momentum_buffer")
                    if mb is None:
                        mb = new_state.setdefault(p, {})["momentum_buffer"] = torch.zeros_like(
                            p, memory_format=torch.preserve_format)
                if centered:
                    ga = state.get("grad_avg")
                    if ga is None:
                        ga = new_state.setdefault(p, {})["grad_avg"] = torch.zeros_like(
                            p, memory_format=torch.preserve_format)
                rows.append((p.data_ptr(), g.data_ptr(), sq.data_ptr(), mb.data_ptr() if mb is not None else 0,
                             ga.data_ptr() if ga is not None else 0, p.numel()))
            if rows:
                calls.append((cfg, np.array(rows, dtype=np.uintp), [p for p, _ in work]))

        c_cfgs = [cfg._c() for cfg, _, _ in calls]
        if len(calls) > 1:
            # Several groups: all must pass before the first is written.
            for c, (_, arr, _) in zip(c_cfgs, calls):
                st = _lib_core.rmsfuse_rmsprop_check_multi(c, arr.ctypes.data, len(arr))
                if st != 0:
                    raise rmsfuse.RmsfuseError(st, "rmsfuse.torch.RMSprop.step")
        for c, (_, arr, _) in zip(c_cfgs, calls):
            if self._pool is not None:
                st = self._pool._lib.rmsfuse_pool_rmsprop_step_multi(self._pool._handle(), c, arr.ctypes.data,
                                                                     len(arr))
            else:
                st = _lib_core.rmsfuse_rmsprop_step_multi(c, arr.ctypes.data, len(arr))
            if st != 0:
                raise rmsfuse.RmsfuseError(st, "rmsfuse.torch.RMSprop.step")

        # Written: now record the state and count the step, as torch does.
        for p, s in new_state.items():
            self.state[p].update(s)
        for _, _, ps in calls:
            for p in ps:
                self.state[p]["step"] += 1
        return loss

    def close(self):
        """Stops the thread pool, if any (it is also stopped when the optimizer is collected)."""
        if getattr(self, "_pool", None) is not None:
            self._pool.close()
            self._pool = None

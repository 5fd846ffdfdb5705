"""NumPy references for the Python tests (independent of the C library).

* emulate_f32: the spec's update (shared/spec/update-rules.md, docs/math.md)
  op for op in float32, every intermediate a float32 array: what rmsfuse must
  return bit for bit; emulate_rule: the same for any rule's config.
* torch_f64 / tf_f64 / spec_f64: the frameworks' own formulas evaluated in
  float64 with the exact (double) hyperparameters, as in
  tests/golden/gen_golden.py: torch.optim.RMSprop 1.13 (_single_tensor_rmsprop),
  TensorFlow ApplyRMSProp / ApplyCenteredRMSProp and Keras RMSprop
  (ms += (g*g - ms)*(1-rho), mg += (g - mg)*(1-rho), mom = mom*momentum +
  lr*g/sqrt(ms - mg^2 + eps), var -= mom), and the spec for mixed flag sets.
* tf_f32_ops: the TensorFlow formula in float32 in TF's op order (what the
  framework's own float32 kernel computes, up to its compiler's contractions).
* ulps: |x - ref| in units of the float32 spacing at ref.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden"))
import gen_golden as _golden  # noqa: E402  (tests/golden: the float32 emulation of the spec)

CENTERED, EPS_IN_SQRT, LR_IN_MOMENTUM, MAXIMIZE = 1, 2, 4, 8
TF_FLAGS = EPS_IN_SQRT | LR_IN_MOMENTUM
F32 = np.float32


def _c(x):
    assert isinstance(x, np.ndarray) and x.dtype == F32, (type(x), getattr(x, "dtype", None))
    return x


def emulate_f32(hp, flags, p, g, v, b, ga):
    """hp = (lr, alpha, eps, weight_decay, momentum); returns new (p, v, b, ga) float32 copies.

    The golden-vector generator's emulation (tests/golden/gen_golden.py), so
    the C tests and the Python tests check against the same op order."""
    lr, alpha, eps, wd, mom = hp
    arrs = [np.array(x, dtype=F32) for x in (p, v, b, ga)]
    with np.errstate(all="ignore"):
        out = _golden.emulate_f32(hp, arrs, np.array(g, dtype=F32), flags, wd != 0, mom != 0)
    return tuple(out)


def emulate_rule(cfg, arrays):
    """One step of cfg's rule (an rmsfuse config of any rule) in float32: the golden-vector
    generator's oracle of docs/math.md (tests/golden/gen_golden.py, EMULATE[rule]).

    arrays: {name: array} with the rule's arrays (rmsfuse.ARRAYS[rule]); returns {name: array}
    of param and the state after the step (new float32 copies; unused state: None or a copy)."""
    names = cfg._rule.arrays  # the C function's order: param, grad, state
    hp = tuple(getattr(cfg, f) for f in cfg._rule.fields)  # the C struct's order, as the oracle takes it
    out = _golden.EMULATE[cfg.rule](hp, cfg.flags, *(arrays.get(n) for n in names))
    return dict(zip(names[:1] + names[2:], out))


def refusal(cfg):
    """The RMSFUSE_E_* name under which docs/math.md (the oracle) refuses cfg, or None."""
    return _golden.refusal(cfg.rule, tuple(getattr(cfg, f) for f in cfg._rule.fields), cfg.flags)


def _pre(hp, flags, p, g):
    wd = hp[3]
    if flags & MAXIMIZE:
        g = -g
    if wd != 0:
        g = g + wd * p
    return g


def torch_f64(hp, flags, p, g, v, b, ga):
    """torch.optim.RMSprop (1.13, _single_tensor_rmsprop) in float64."""
    lr, alpha, eps, wd, mom = hp
    p, g, v, b, ga = (np.asarray(x, dtype=np.float64) for x in (p, g, v, b, ga))
    g = _pre(hp, flags, p, g)
    v = v * alpha + ((1 - alpha) * g) * g                 # mul_(alpha).addcmul_(g, g, value=1-alpha)
    if flags & CENTERED:
        ga = ga * alpha + (1 - alpha) * g                # mul_(alpha).add_(g, alpha=1-alpha)
        avg = np.sqrt(v + (-1.0 * ga) * ga) + eps        # addcmul(ga, ga, value=-1).sqrt_().add_(eps)
    else:
        avg = np.sqrt(v) + eps
    if mom != 0:
        b = b * mom + g / avg                            # mul_(momentum).addcdiv_(g, avg)
        p = p + (-lr) * b                                # add_(buf, alpha=-lr)
    else:
        p = p + ((-lr) * g) / avg                        # addcdiv_(g, avg, value=-lr)
    return p, v, b, ga


def tf_f64(hp, flags, p, g, v, b, ga):
    """TensorFlow ApplyRMSProp / ApplyCenteredRMSProp (and Keras RMSprop) in float64."""
    lr, rho, eps, wd, mom = hp
    p, g, v, b, ga = (np.asarray(x, dtype=np.float64) for x in (p, g, v, b, ga))
    g = _pre(hp, flags, p, g)
    v = v + (g * g - v) * (1 - rho)
    if flags & CENTERED:
        ga = ga + (g - ga) * (1 - rho)
        denom = (v - ga * ga) + eps
    else:
        denom = v + eps
    u = (g * lr) / np.sqrt(denom)
    if mom != 0:
        b = b * mom + u
        p = p - b
    else:
        p = p - u
    return p, v, b, ga


def spec_f64(hp, flags, p, g, v, b, ga):
    """The spec's formula in float64 (flag sets that are neither torch's nor TF's)."""
    lr, alpha, eps, wd, mom = hp
    p, g, v, b, ga = (np.asarray(x, dtype=np.float64) for x in (p, g, v, b, ga))
    g = _pre(hp, flags, p, g)
    v = v * alpha + ((1 - alpha) * g) * g
    if flags & CENTERED:
        ga = ga * alpha + (1 - alpha) * g
        s = v - ga * ga
    else:
        s = v
    d = np.sqrt(s + eps) if flags & EPS_IN_SQRT else np.sqrt(s) + eps
    if flags & LR_IN_MOMENTUM:
        u = (lr * g) / d
        if mom != 0:
            b = b * mom + u
            p = p - b
        else:
            p = p - u
    else:
        if mom != 0:
            b = b * mom + g / d
            p = p + (-lr) * b
        else:
            p = p + ((-lr) * g) / d
    return p, v, b, ga


def ref_f64(hp, flags, *arrays):
    """The framework formula the flag set stands for, in float64."""
    if flags & TF_FLAGS == 0:
        return torch_f64(hp, flags, *arrays)
    if flags & TF_FLAGS == TF_FLAGS:
        return tf_f64(hp, flags, *arrays)
    return spec_f64(hp, flags, *arrays)


def tf_f32_ops(hp, flags, p, g, v, b, ga):
    """TF's formula with float32 NumPy ops in TF's order (hyperparameters are float32 scalars in TF's op)."""
    lr, rho, eps, wd, mom = hp
    with np.errstate(all="ignore"):
        p, g, v, b, ga = (np.array(x, dtype=F32) for x in (p, g, v, b, ga))
        if flags & MAXIMIZE:
            g = -g
        if wd != 0:
            g = _c(g + _c(F32(wd) * p))
        omr = F32(F32(1.0) - F32(rho))  # TF: static_cast<T>(1) - rho(), rho a float32 scalar
        v = _c(v + _c(_c(_c(g * g) - v) * omr))
        if flags & CENTERED:
            ga = _c(ga + _c(_c(g - ga) * omr))
            denom = _c(_c(v - _c(ga * ga)) + F32(eps))
        else:
            denom = _c(v + F32(eps))
        u = _c(_c(g * F32(lr)) / _c(np.sqrt(denom)))
        if mom != 0:
            b = _c(_c(b * F32(mom)) + u)
            p = _c(p - b)
        else:
            p = _c(p - u)
    return p, v, b, ga


def ulps(x32, ref64, before=None):
    """Elementwise |x32 - ref64| in float32 ulps, in float64.

    The ulp is the float32 spacing at |ref64|, or, given the array's value
    before the step, at max(|before|, |ref64|): every update is
    new = before * k + t (param: k = 1; state: k = alpha or momentum), and
    where the two terms cancel the result's own ulp says nothing about the
    accuracy of an evaluation (every float32 evaluation loses the same digits).
    """
    x = np.asarray(x32, dtype=np.float64)
    r = np.asarray(ref64, dtype=np.float64)
    scale = np.abs(r) if before is None else np.maximum(np.abs(r), np.abs(np.asarray(before, dtype=np.float64)))
    sp = np.spacing(scale.astype(F32)).astype(np.float64)
    return np.abs(x - r) / sp


def variants():
    """Every kernel variant: (flags, weight decay on, momentum on), 64 in all."""
    return [(f, wd, mom) for f in range(16) for wd in (False, True) for mom in (False, True)]


def variant_name(flags, wd, mom):
    parts = [nm for bit, nm in ((CENTERED, "centered"), (EPS_IN_SQRT, "eps_in_sqrt"),
                                (LR_IN_MOMENTUM, "lr_in_momentum"), (MAXIMIZE, "maximize")) if flags & bit]
    if wd:
        parts.append("wd")
    if mom:
        parts.append("momentum")
    return "+".join(parts) if parts else "plain"


# ---- float64 framework formulas of the other rules ---------------------------------------
# Each takes the rule's config (an rmsfuse config: its fields and boolean flags) and a dict of
# the rule's arrays, and returns {name: float64 array} of param and the state after one step:
# torch 1.13's formula (torch/optim/{adagrad,sgd,adam,adamw}.py, _single_tensor_*) where the
# flags are torch's, else the framework's the flag stands for (Keras' for EPS_HAT and
# LR_IN_MOMENTUM, the classic AdaGrad formula for EPS_IN_SQRT).
def _f64(arrays):
    return {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items() if v is not None}


def _sign_and_decay(cfg, p, g, lr):
    g = -g if cfg.maximize else g
    if cfg.weight_decay != 0 and not cfg.decoupled_decay:
        g = g + cfg.weight_decay * p                     # grad.add(param, alpha=weight_decay)
    if cfg.weight_decay != 0 and cfg.decoupled_decay:
        p = p * (1 - lr * cfg.weight_decay)              # param.mul_(1 - lr * weight_decay) (AdamW)
    return p, g


def adagrad_f64(cfg, arrays):
    a = _f64(arrays)
    clr = cfg.lr / (1 + (cfg.step - 1) * cfg.lr_decay)
    p, g = _sign_and_decay(cfg, a["param"], a["grad"], clr)
    s = a["sum"] + g * g                                 # state_sum.addcmul_(grad, grad, value=1)
    std = np.sqrt(s + cfg.eps) if cfg.eps_in_sqrt else np.sqrt(s) + cfg.eps  # classic / torch
    return {"param": p - clr * g / std, "sum": s}        # param.addcdiv_(grad, std, value=-clr)


def sgd_f64(cfg, arrays):
    a = _f64(arrays)
    p, g = _sign_and_decay(cfg, a["param"], a["grad"], cfg.lr)
    out = {}
    if cfg.momentum == 0:
        d = g
    elif cfg.lr_in_momentum:                             # Keras: v = m v - lr g; p += v (Nesterov: m v - lr g)
        v = cfg.momentum * a["momentum_buf"] - cfg.lr * g
        out["momentum_buf"] = v
        return dict(out, param=p + (cfg.momentum * v - cfg.lr * g if cfg.nesterov else v))
    else:                                                # torch: buf.mul_(m).add_(d_p, alpha=1-dampening)
        buf = g.copy() if cfg.init_momentum else a["momentum_buf"] * cfg.momentum + (1 - cfg.dampening) * g
        out["momentum_buf"] = buf
        d = g + cfg.momentum * buf if cfg.nesterov else buf
    return dict(out, param=p - cfg.lr * d)               # param.add_(d_p, alpha=-lr)


def adam_f64(cfg, arrays):
    a = _f64(arrays)
    t = cfg.step
    bc1, bc2 = 1 - cfg.beta1 ** t, 1 - cfg.beta2 ** t
    p, g = _sign_and_decay(cfg, a["param"], a["grad"], cfg.lr)
    m = a["exp_avg"] * cfg.beta1 + (1 - cfg.beta1) * g    # exp_avg.mul_(beta1).add_(grad, alpha=1-beta1)
    v = a["exp_avg_sq"] * cfg.beta2 + (1 - cfg.beta2) * g * g
    out = {"exp_avg": m, "exp_avg_sq": v}
    r = v
    if cfg.amsgrad:
        r = out["max_exp_avg_sq"] = np.maximum(a["max_exp_avg_sq"], v)
    if cfg.eps_hat:                                      # Keras / TF: lr_t m / (sqrt(v) + eps_hat)
        p = p - (cfg.lr * np.sqrt(bc2) / bc1) * m / (np.sqrt(r) + cfg.eps)
    else:                                                # torch: denom = sqrt(v)/sqrt(bc2) + eps
        p = p - (cfg.lr / bc1) * m / (np.sqrt(r) / np.sqrt(bc2) + cfg.eps)
    return dict(out, param=p)


RULE_F64 = {"adagrad": adagrad_f64, "sgd": sgd_f64, "adam": adam_f64}

#!/usr/bin/env python3
"""Golden vectors for every rmsfuse update rule (tests/test_golden.c), and the float32
oracle of docs/math.md for other tests to import.

Usage (Debian's /usr/bin/python3, which has NumPy):

    /usr/bin/python3 tests/golden/gen_golden.py OUTFILE          write OUTFILE
    /usr/bin/python3 tests/golden/gen_golden.py --check OUTFILE  regenerate in memory and
                                                                 compare: exit 0 identical,
                                                                 1 different, 77 no NumPy
    add --stats to either form to print the report (per rule and reference formula: the
    observed |out32 - ref64| as a fraction of its bound), and --selftest to check every
    bound against an 80-digit decimal evaluation of the exact update (|out32 - exact| <=
    E32 and |ref64 - exact| <= E64, see below).

Importable API: the float32 oracle
----------------------------------
    sys.path.insert(0, "<repository>/tests/golden"); import gen_golden as G

Flag bits, the values of include/rmsfuse_common.h: G.CENTERED 1, EPS_IN_SQRT 2,
LR_IN_MOMENTUM 4, MAXIMIZE 8, DECOUPLED_DECAY 16, NESTEROV 32, INIT_MOMENTUM 64, AMSGRAD 128,
EPS_HAT 256, FLUSH_SUBNORMAL 512 (every rule).

Each emulate_<rule> is one step of the rule, operation for operation as docs/math.md writes
it, in NumPy float32: every intermediate is a float32 array (asserted), no fused
multiply-add, sqrt and / correctly rounded.  Hyperparameters are Python floats (doubles)
and the step a Python int, in the order of the rule's C config struct; every constant is
derived in double and rounded once to float32 exactly as docs/math.md's tables say.  Arrays
are 1-D float32 arrays of one length (anything np.asarray(x, np.float32) takes); they are
not modified: the function returns new arrays, one per output in the order shown.  A state
array the configuration does not use may be None (it is returned as None, or as an
unchanged copy when given).  A configuration docs/math.md refuses raises ValueError whose
message starts with the RMSFUSE_E_* name (see refusal()).  NaN results: rmsfuse promises
NaN-ness only (payload and sign may differ); every other result is bit-exact.  With
FLUSH_SUBNORMAL each state value is flushed as soon as it is computed (docs/math.md,
Subnormal-safe state: +0 where |x| < FLT_MIN, -0 included; NaN and +-Inf unchanged), and the
flushed value is stored and used by the rest of the step: RMSProp's v, ga, b (and the centred
s = v - ga*ga); AdaGrad's sum;
SGD's b (INIT_MOMENTUM's b = g too); Adam's m, v and vm = flush(max(vm, v)).

  emulate_rmsprop((lr, alpha, eps, weight_decay, momentum), flags,
                  param, grad, square_avg, momentum_buf=None, grad_avg=None)
      -> (param, square_avg, momentum_buf, grad_avg)
  emulate_adagrad((lr, lr_decay, weight_decay, eps, step), flags, param, grad, sum)
      -> (param, sum)
  emulate_sgd((lr, momentum, dampening, weight_decay), flags, param, grad, momentum_buf=None)
      -> (param, momentum_buf)
  emulate_adam((lr, beta1, beta2, eps, weight_decay, step), flags,
               param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq=None)
      -> (param, exp_avg, exp_avg_sq, max_exp_avg_sq)

  constants(rule, hp, flags) -> dict: the loop's float32 constants (np.float32, the names
      of docs/math.md's tables) and what runs ("wd", "decoupled", "mom": bools).
  refusal(rule, hp, flags) -> None, or the RMSFUSE_E_* name of a rule docs/math.md states
      that the configuration breaks.  rule: "rmsprop", "adagrad", "sgd" or "adam".
  emulate_f32(hp, arrs, grad, flags, wd_on, mom_on) -> [param, square_avg, momentum_buf,
      grad_avg]: RMSProp in the interface of tests/python/reference.py (hp = (lr, alpha, eps,
      weight_decay, momentum), arrs = [param, square_avg, momentum_buf, grad_avg]; weight
      decay and momentum run only when wd_on / mom_on).

Adam's bias corrections use Python's float ** (C's pow, as the library does); the
generator asserts that it is correctly rounded for every step it uses.

The generator
-------------
It is independent of the C code: it never calls the library, and the op orders below are
written from docs/math.md.  It is deterministic: its random inputs come from a splitmix64
generator in pure Python, seeded with the CRC-32 of each case's name (for RMSProp the name
without "rmsprop/", so the vectors of rmsfuse 0.1 are unchanged), and are built from
integer bits with exact operations only, so the output does not depend on the platform,
the time, or NumPy's random streams.

Cases
-----
A variant class of a rule is a set of flags together with which optional hyperparameters
are zero or not; the classes are every combination docs/math.md accepts:
  RMSProp  flags CENTERED, EPS_IN_SQRT, LR_IN_MOMENTUM, MAXIMIZE, DECOUPLED_DECAY,
           NESTEROV, FLUSH_SUBNORMAL x weight_decay, momentum zero/non-zero: 384 classes
  AdaGrad  EPS_IN_SQRT, MAXIMIZE, DECOUPLED_DECAY, FLUSH_SUBNORMAL x lr_decay,
           weight_decay: 64
  SGD      LR_IN_MOMENTUM, MAXIMIZE, DECOUPLED_DECAY, NESTEROV, INIT_MOMENTUM,
           FLUSH_SUBNORMAL x momentum, dampening, weight_decay: 208
  Adam     MAXIMIZE, DECOUPLED_DECAY, AMSGRAD, EPS_HAT, FLUSH_SUBNORMAL x weight_decay: 64
(that includes flag combinations that select no other code path, such as DECOUPLED_DECAY
with weight_decay 0 or LR_IN_MOMENTUM without momentum: they must change nothing).  The C
test enumerates the classes again with the library's check_config and requires a case for
each.  Every class without FLUSH_SUBNORMAL runs with several hyperparameter sets (SETS
below): RMSProp's 64 classes of rmsfuse 0.1 (without DECOUPLED_DECAY and NESTEROV) with the
six sets of 0.1 and their 10 elements (those vectors are unchanged), its other 128 with
three; AdaGrad with five, SGD with three, Adam with six; 5 elements per case.  Among the
sets: the presets' constants, an "eps0" edge set in which two elements have zero gradient
and zero state (0/0: NaN), step > 1 (Adam's bias corrections up to step 1000, AdaGrad's
lr_decay), betas 0, alpha 0.5 (ATen lerp's other branch), dampening 1, momentum > 1 (SGD).
In the cases of the sets and chains element 0 has fresh (zero) state and element 1 a zero
gradient in the first step.  Every class with FLUSH_SUBNORMAL runs once, with the rule's
sets in turn, 5 elements, the last of which (except in the eps0 set) has param 0, a zero
gradient and state just above FLT_MIN (AdaGrad's sum and Adam's max_exp_avg_sq a loaded
subnormal: flush_probe), which the step flushes to +0.  Chains run 6 consecutive steps on
the same state (Adam's and AdaGrad's step incrementing, SGD's first step with
INIT_MOMENTUM and the next ones without).  Subnormal chains (DECAY_CHAINS: 36 steps,
AdaGrad 6) drive the state through the subnormal range with zero gradients, each flag set
without and with FLUSH_SUBNORMAL: from 1e-36 the exact IEEE mode reaches the smallest
subnormal and stays there, the flush mode holds +0 from the step where the value falls
below FLT_MIN; a loaded subnormal state; a state revived by gradients after the flush.
Every preset (rmsfuse_<rule>_<framework>: they set FLUSH_SUBNORMAL) runs 4 steps from its
framework's initial state (TF1's square average 1.0, Keras' accumulator 0.1), one element
with the gradient 2^-64 (a subnormal square) in the first step and 0 after it.
Special-value cases (SPECIAL: NaN, +-Inf, -0, subnormals, float32 overflow, AMSGrad's
NaN-propagating max and its sign of zero; some flag sets with FLUSH_SUBNORMAL too) check the
bits against the emulation and, where no bound exists, NaN-ness only; the flush cases
(flush_special: state just above FLT_MIN, exactly FLT_MIN, -0, loaded subnormals, NaN and
+-Inf state, subnormal gradients and params, AMSGrad's max of subnormals, a param 0 that
shows a flushed momentum; FLUSH_SPECIAL_CASES, eps = 0 among them) likewise.

For each case and step the file holds
  (a) the float32 inputs as uint32 bit patterns,
  (b) the expected float32 outputs (param and the rule's state arrays) as bit patterns,
      from the emulation above,
  (c) a float64 reference: the frameworks' own formulas in float64 with the exact double
      hyperparameters, an independent float64 trajectory over multi-step cases:
        RMSProp  torch.optim.RMSprop 1.13 without EPS_IN_SQRT and LR_IN_MOMENTUM; TF
                 ApplyRMSProp/ApplyCenteredRMSProp with both (Keras 3 RMSprop with
                 decoupled decay); Keras 2's own update for LR_IN_MOMENTUM alone without
                 momentum; optax.rmsprop for LR_IN_MOMENTUM with NESTEROV (eps_in_sqrt,
                 centered as the flags say); docs/math.md's formula in float64 otherwise
        AdaGrad  torch.optim.Adagrad 1.13; Keras 3 Adagrad with EPS_IN_SQRT
        SGD      torch.optim.SGD 1.13; Keras 3 SGD with LR_IN_MOMENTUM
        Adam     torch.optim.Adam/AdamW 1.13; Keras 3 Adam/AdamW with EPS_HAT
      MAXIMIZE negates g and coupled weight decay adds wd*p to g first in all of them;
      decoupled decay is p*(1 - lr*wd) (torch's AdamW), or p - p*wd*lr where the
      reference is Keras 3's; where a framework lacks a feature (decoupled decay in
      torch's RMSprop, lr_decay in Keras) it is added in that form; no framework flushes
      subnormals, and neither do the references: with FLUSH_SUBNORMAL they compute the
      exact IEEE update, and the flush is part of the float32 error (see below),
  (d) an absolute error bound for |float32 output - float64 reference|.

The bound
---------
All formulas are the same function in exact real arithmetic; they differ only in rounding
(torch's Adam divides sqrt(v) by sqrt(bc2) where rmsfuse folds sqrt(bc2) into eps and the
step size: the same real number, see docs/math.md).  Let X be the exact real result of the
update applied to the float32 inputs with the exact double hyperparameters.  For both
evaluations (float32 in docs/math.md's order, float64 in the framework's order) the script
carries, next to every computed intermediate x^, a bound ex >= |x^ - x| (x the exact
intermediate), with u = 2^-24 (float32) or 2^-53 (float64), round to nearest:

  constants   float32 constants (float)K: |(float)K - K_exact| computed exactly (fractions;
              80-digit decimals where K has a square root, Adam's ns and e), so the
              double computation of K is included; float64 hyperparameters are exact;
              the float64 references' own constants (1 - alpha, lr / bc1, ...) are
              ordinary ops, and a float64 pow(beta, t) gets its exact error
  z = x +- y  ez = ex + ey + u|z|
  z = x * y   ez = |x|ey + |y|ex + ex ey + u|z| + eta
  z = x / y   ez = (ex + |x/y| ey) / (|y| - ey) + u|z| + eta     (requires |y| > ey)
  z = sqrt(x) ez = min(ex / (sqrt(x) + sqrt(max(x - ex, 0))), sqrt(ex)) + u|z|
              (requires x - ex >= 0, unless x is a sum of squares whose exact value is
              known to be >= 0: otherwise the exact radicand may be negative)
  z = -x      ez = ex;   z = max(x, y)  ez = max(ex, ey)
  flush(x)    z = 0, ez = (ex + |x^|)(1 + 2^-50) where |x^| < FLT_MIN; else z = x^, ez = ex
              (FLUSH_SUBNORMAL, float32 only: X is the update without the flush, so a
              flushed state value differs from X's by up to the value itself plus its error,
              and so does everything computed from it; the selftest checks that too.  The
              report counts these outputs apart: their ratio to the bound is near 1/1.01)

with eta = 2^-149 (float32) or 2^-1074 (float64) for underflow (0 when an operand is 0:
the result is then exact).  These are rigorous, not only first-order, apart from the
rounding of the bound arithmetic itself in double (relative ~1e-16 per op).  Multi-step
cases propagate the state bounds from step to step.  The stored bound is

  bound = 1.01 * (E32 + E64)

rounded up to 3 significant decimal digits, where E32 bounds |out32 - X| and E64 bounds
|ref64 - X|; so |out32 - ref64| <= bound.  The 1.01 covers the rounding of the bound
computation.  When the analysis gives no finite bound (0/0, a possibly negative radicand)
or an output or the reference is not finite, the stored bound is -1: the test then checks
that NaN-ness of output and reference agree.  Only the eps0 edge sets and the special-value
and flush cases have such entries (asserted).  Only those special-value and flush cases may
have -2: NaN-ness differs between the two evaluations, because float32 overflows where
float64 does not, or because the framework's op order makes a NaN of an infinite input
where docs/math.md's does not (TF's ms + (g*g - ms)(1 - rho) and Keras' m + (g - m)(1 -
beta1) with a state of +-Inf, ATen's lerp with grad_avg = +-Inf, Keras' p - p*wd*lr with
p = +-Inf), or because with eps = 0 a flushed state makes the denominator 0 (0/0 = NaN)
where the reference's is tiny and positive; there only the bits are checked.  All other
inputs are drawn so that RMSProp's centred s = v - ga^2 stays well above its error bound
(or ga is exactly 0: then s = v, known to be >= 0) and no divisor is near 0.

The script checks its own output before writing: its float32 emulation and the value path
of the error analysis agree bit for bit, and |out32 - ref64| <= bound holds in double
arithmetic exactly as the C test evaluates it.
"""

import math
import sys
import zlib
from decimal import Decimal, DivisionByZero, InvalidOperation, localcontext, ROUND_CEILING
from fractions import Fraction

try:
    import numpy as np
except ImportError:  # ctest: SKIP_RETURN_CODE 77
    print("gen_golden.py: NumPy is not available: skipped")
    sys.exit(77)

# Flag bits (include/rmsfuse_common.h).
CENTERED, EPS_IN_SQRT, LR_IN_MOMENTUM, MAXIMIZE = 1, 2, 4, 8
DECOUPLED_DECAY, NESTEROV, INIT_MOMENTUM, AMSGRAD, EPS_HAT = 16, 32, 64, 128, 256
FLUSH_SUBNORMAL = 512
TF_FLAGS = EPS_IN_SQRT | LR_IN_MOMENTUM
RULE_FLAGS = {
    "rmsprop": CENTERED | EPS_IN_SQRT | LR_IN_MOMENTUM | MAXIMIZE | DECOUPLED_DECAY | NESTEROV | FLUSH_SUBNORMAL,
    "adagrad": EPS_IN_SQRT | MAXIMIZE | DECOUPLED_DECAY | FLUSH_SUBNORMAL,
    "sgd": LR_IN_MOMENTUM | MAXIMIZE | DECOUPLED_DECAY | NESTEROV | INIT_MOMENTUM | FLUSH_SUBNORMAL,
    "adam": MAXIMIZE | DECOUPLED_DECAY | AMSGRAD | EPS_HAT | FLUSH_SUBNORMAL,
}
# (FLUSH_SUBNORMAL last: the classes without it keep their order of before the flag)
FLAG_NAMES = ((CENTERED, "C"), (EPS_IN_SQRT, "ES"), (LR_IN_MOMENTUM, "LM"), (MAXIMIZE, "MX"),
              (DECOUPLED_DECAY, "DD"), (NESTEROV, "NS"), (INIT_MOMENTUM, "IM"), (AMSGRAD, "AMS"),
              (EPS_HAT, "EH"), (FLUSH_SUBNORMAL, "FL"))
SAFETY = 1.01
FLT_MIN = 2.0**-126


# ===========================================================================
# The float32 oracle (importable).
# ===========================================================================
def _c(x):
    assert isinstance(x, np.ndarray) and x.dtype == np.float32, (type(x), getattr(x, "dtype", None))
    return x


def _arr(x):
    return None if x is None else np.array(x, dtype=np.float32).reshape(-1)


def _f(x):
    """(float)x: a double rounded once to float32."""
    with np.errstate(over="ignore"):
        return np.float32(x)


def _floats(hp, k):
    assert len(hp) == k, ("expected %d hyperparameters" % k, hp)
    return [float(x) for x in hp]


def _pow(beta, t):
    """pow(beta, t) in double, as C's pow and Python's float ** (checked correctly rounded)."""
    try:
        return beta ** float(t)
    except (OverflowError, ZeroDivisionError):  # (refused configurations only)
        return math.inf


def _div(a, b):
    """a / b in double with IEEE results (inf, nan) where Python would raise."""
    with np.errstate(all="ignore"):
        return float(np.float64(a) / np.float64(b))


def _sqrt(x):
    with np.errstate(all="ignore"):
        return float(np.sqrt(np.float64(x)))


def constants(rule, hp, flags):
    """The loop constants of docs/math.md's table for `rule`, and what runs."""
    if rule == "rmsprop":
        lr, alpha, eps, wd, mom = _floats(hp, 5)
        k = dict(a=_f(alpha), c=_f(1.0 - alpha), e=_f(eps), m=_f(mom), w=_f(wd), dk=_f(1.0 - lr * wd),
                 l=_f(lr), nl=_f(-lr), mom=mom != 0.0)
    elif rule == "adagrad":
        lr, lr_decay, wd, eps = _floats(hp[:4], 4)
        step = int(hp[4])
        clr = _div(lr, 1.0 + float(step - 1) * lr_decay)
        k = dict(clr=clr, ncl=_f(-clr), e=_f(eps), w=_f(wd), dk=_f(1.0 - clr * wd), mom=False)
    elif rule == "sgd":
        lr, mom, damp, wd = _floats(hp, 4)
        k = dict(m=_f(mom), dd=_f(1.0 - damp), nl=_f(-lr), w=_f(wd), dk=_f(1.0 - lr * wd), mom=mom != 0.0)
    elif rule == "adam":
        lr, b1, b2, eps, wd = _floats(hp[:5], 5)
        step = int(hp[5])
        bc1, bc2 = 1.0 - _pow(b1, step), 1.0 - _pow(b2, step)
        k = dict(bc1=bc1, bc2=bc2, b1=_f(b1), c1=_f(1.0 - b1), b2=_f(b2), c2=_f(1.0 - b2),
                 ns=_f(_div(-lr * _sqrt(bc2), bc1)),
                 e=_f(eps) if flags & EPS_HAT else _f(eps * _sqrt(bc2)),
                 w=_f(wd), dk=_f(1.0 - lr * wd), mom=False)
    else:
        raise ValueError("unknown rule %r" % (rule,))
    k["wd"] = wd != 0.0
    k["decoupled"] = wd != 0.0 and bool(flags & DECOUPLED_DECAY)
    return k


def refusal(rule, hp, flags):
    """None if docs/math.md accepts the configuration, else the RMSFUSE_E_* name of a rule it breaks."""
    if rule not in RULE_FLAGS:
        raise ValueError("unknown rule %r" % (rule,))
    nums = [float(x) for x in hp]
    if not all(math.isfinite(x) and np.isfinite(_f(x)) for x in nums):
        return "RMSFUSE_E_NONFINITE"  # NaN, infinite, or beyond the float range
    if rule in ("adagrad", "adam") and int(hp[-1]) < 1:
        return "RMSFUSE_E_STEP"
    lr = nums[0]
    if lr < 0:
        return "RMSFUSE_E_LR"
    if rule == "rmsprop":
        _, alpha, eps, wd, mom = nums
        checks = [(0 <= alpha <= 1, "ALPHA"), (eps >= 0, "EPS"), (wd >= 0, "WEIGHT_DECAY"),
                  (0 <= mom < 1, "MOMENTUM"), (not flags & ~RULE_FLAGS[rule], "FLAGS"),
                  (not (flags & NESTEROV and mom == 0), "NESTEROV")]
    elif rule == "adagrad":
        _, lr_decay, wd, eps, _ = nums
        checks = [(lr_decay >= 0, "LR_DECAY"), (eps >= 0, "EPS"), (wd >= 0, "WEIGHT_DECAY"),
                  (not flags & ~RULE_FLAGS[rule], "FLAGS")]
    elif rule == "sgd":
        _, mom, damp, wd = nums
        checks = [(mom >= 0, "MOMENTUM"), (0 <= damp <= 1, "DAMPENING"), (wd >= 0, "WEIGHT_DECAY"),
                  (not flags & ~RULE_FLAGS[rule], "FLAGS"),
                  (not (flags & LR_IN_MOMENTUM and flags & INIT_MOMENTUM), "FLAGS"),
                  (not (flags & NESTEROV and (mom == 0 or damp != 0)), "NESTEROV"),
                  (not (flags & LR_IN_MOMENTUM and damp != 0), "DAMPENING")]
    else:
        _, b1, b2, eps, wd, _ = nums
        checks = [(0 <= b1 < 1, "BETA1"), (0 <= b2 < 1, "BETA2"), (eps >= 0, "EPS"),
                  (wd >= 0, "WEIGHT_DECAY"), (not flags & ~RULE_FLAGS[rule], "FLAGS")]
    for ok, name in checks:
        if not ok:
            return "RMSFUSE_E_" + name
    with np.errstate(all="ignore"):
        k = constants(rule, hp, flags)
        if not all(np.isfinite(x) for x in k.values() if isinstance(x, np.float32)):
            return "RMSFUSE_E_NONFINITE"  # a derived constant beyond the float range
    return None


def _accept(rule, hp, flags):
    why = refusal(rule, hp, flags)
    if why:
        raise ValueError("%s: %s refuses hp %r flags %#x (docs/math.md)" % (why, rule, tuple(hp), flags))
    return constants(rule, hp, flags)


def _shared(k, flags, p, g):
    """docs/math.md, Shared steps: sign, coupled or decoupled weight decay."""
    if flags & MAXIMIZE:
        g = _c(-g)
    if k["wd"] and not k["decoupled"]:
        g = _c(g + _c(k["w"] * p))
    if k["decoupled"]:
        p = _c(p * k["dk"])
    return p, g


def _flush(flags, x):
    """docs/math.md, Subnormal-safe state: with FLUSH_SUBNORMAL, +0 where |x| < FLT_MIN (zero or
    subnormal, -0 included), x elsewhere (NaN and +-Inf unchanged); without it, x."""
    if not flags & FLUSH_SUBNORMAL:
        return x
    return _c(np.where(np.abs(x) < np.float32(FLT_MIN), np.float32(0.0), x))


def _sqrt_denominator(flags, s, e):
    return _c(np.sqrt(_c(s + e))) if flags & EPS_IN_SQRT else _c(_c(np.sqrt(s)) + e)


def emulate_rmsprop(hp, flags, param, grad, square_avg, momentum_buf=None, grad_avg=None):
    k = _accept("rmsprop", hp, flags)
    p, g, v, b, ga = (_arr(x) for x in (param, grad, square_avg, momentum_buf, grad_avg))
    if k["mom"] and b is None:
        raise ValueError("RMSFUSE_E_NULL_MOMENTUM_BUF")
    if flags & CENTERED and ga is None:
        raise ValueError("RMSFUSE_E_NULL_GRAD_AVG")
    with np.errstate(all="ignore"):
        p, g = _shared(k, flags, p, g)
        v = _flush(flags, _c(_c(v * k["a"]) + _c(_c(k["c"] * g) * g)))
        if flags & CENTERED:
            ga = _flush(flags, _c(_c(ga * k["a"]) + _c(k["c"] * g)))
            s = _flush(flags, _c(v - _c(ga * ga)))
        else:
            s = v
        d = _sqrt_denominator(flags, s, k["e"])
        if not k["mom"]:
            p = _c(p + _c(_c(k["nl"] * g) / d))
        elif flags & LR_IN_MOMENTUM:                       # TensorFlow, Keras, optax
            u = _c(_c(k["l"] * g) / d)
            b = _flush(flags, _c(_c(b * k["m"]) + u))
            p = _c(p - _c(u + _c(k["m"] * b))) if flags & NESTEROV else _c(p - b)
        else:                                              # PyTorch
            q = _c(g / d)
            b = _flush(flags, _c(_c(b * k["m"]) + q))
            p = _c(p + _c(k["nl"] * _c(q + _c(k["m"] * b)))) if flags & NESTEROV else _c(p + _c(k["nl"] * b))
    return p, v, b, ga


def emulate_adagrad(hp, flags, param, grad, sum):  # noqa: A002 (the C API's name)
    k = _accept("adagrad", hp, flags)
    p, g, s = (_arr(x) for x in (param, grad, sum))
    with np.errstate(all="ignore"):
        p, g = _shared(k, flags, p, g)
        s = _flush(flags, _c(s + _c(g * g)))
        d = _sqrt_denominator(flags, s, k["e"])
        p = _c(p + _c(_c(k["ncl"] * g) / d))
    return p, s


def emulate_sgd(hp, flags, param, grad, momentum_buf=None):
    k = _accept("sgd", hp, flags)
    p, g, b = (_arr(x) for x in (param, grad, momentum_buf))
    if k["mom"] and b is None and not flags & INIT_MOMENTUM:
        raise ValueError("RMSFUSE_E_NULL_MOMENTUM_BUF")
    with np.errstate(all="ignore"):
        p, g = _shared(k, flags, p, g)
        if not k["mom"]:
            p = _c(p + _c(k["nl"] * g))
        elif not flags & LR_IN_MOMENTUM:                   # PyTorch
            b = _flush(flags, g.copy() if flags & INIT_MOMENTUM else _c(_c(b * k["m"]) + _c(k["dd"] * g)))
            if flags & NESTEROV:
                p = _c(p + _c(k["nl"] * _c(g + _c(k["m"] * b))))
            else:
                p = _c(p + _c(k["nl"] * b))
        else:                                              # Keras: velocity
            b = _flush(flags, _c(_c(b * k["m"]) + _c(k["nl"] * g)))
            p = _c(p + _c(_c(b * k["m"]) + _c(k["nl"] * g))) if flags & NESTEROV else _c(p + b)
    return p, b


def _max_nan(vm, v):
    """vm = (vm < v) ? v : vm; if v is NaN: vm = v (NaN if either is NaN)."""
    r = _c(np.where(vm < v, v, vm))
    return _c(np.where(np.isnan(v), v, r))


def emulate_adam(hp, flags, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq=None):
    k = _accept("adam", hp, flags)
    p, g, m, v, vm = (_arr(x) for x in (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq))
    if flags & AMSGRAD and vm is None:
        raise ValueError("RMSFUSE_E_NULL_ARRAY")
    with np.errstate(all="ignore"):
        p, g = _shared(k, flags, p, g)
        m = _flush(flags, _c(_c(m * k["b1"]) + _c(k["c1"] * g)))
        v = _flush(flags, _c(_c(v * k["b2"]) + _c(_c(k["c2"] * g) * g)))
        if flags & AMSGRAD:
            vm = _flush(flags, _max_nan(vm, v))
            r = vm
        else:
            r = v
        d = _c(_c(np.sqrt(r)) + k["e"])
        p = _c(p + _c(_c(k["ns"] * m) / d))
    return p, m, v, vm


def emulate_f32(hp, arrs, grad, flags, wd_on, mom_on):
    """RMSProp in the interface of tests/python/reference.py (see the module docstring)."""
    lr, alpha, eps, wd, mom = hp
    hp2 = (lr, alpha, eps, wd if wd_on else 0.0, mom if mom_on else 0.0)
    p, v, b, ga = arrs
    return list(emulate_rmsprop(hp2, flags, p, grad, v, b, ga))


EMULATE = {"rmsprop": emulate_rmsprop, "adagrad": emulate_adagrad, "sgd": emulate_sgd, "adam": emulate_adam}


# ===========================================================================
# Values with forward error bounds.
# ===========================================================================
class Rng:
    """splitmix64; exact constructions only."""
    M64 = (1 << 64) - 1

    def __init__(self, seed):
        self.s = seed & self.M64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & self.M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.M64
        return z ^ (z >> 31)

    def below(self, k):
        return self.next() % k

    def irange(self, lo, hi):  # integer in [lo, hi]
        return lo + self.below(hi - lo + 1)

    def mant(self):  # [1, 2) with 23 random fraction bits: exact in float32
        return 1.0 + (self.next() >> 41) * 2.0**-23

    def sign(self):
        return -1.0 if self.next() >> 63 else 1.0


def f32(x):
    """Round a Python float (double) to float32 once, as a Python float."""
    return float(np.float32(x))


class Fmt:
    def __init__(self, name, dtype, u, eta):
        self.name, self.dtype, self.u, self.eta = name, dtype, u, eta


F32 = Fmt("float32", np.float32, 2.0**-24, 2.0**-149)
F64 = Fmt("float64", np.float64, 2.0**-53, 2.0**-1074)


class EV:
    """Computed values v (the format's dtype, asserted: no silent promotion) and a float64
    bound e on |v - exact|; fl (None: nowhere) marks the elements whose bound includes the
    error of a flush (FLUSH_SUBNORMAL), here or in an operand, for the report."""
    __slots__ = ("v", "e", "f", "fl")

    def __init__(self, v, e, f, fl=None):
        assert isinstance(v, np.ndarray) and v.dtype == f.dtype, (v.dtype, f.name)
        self.v, self.f = v, f
        self.e = np.broadcast_to(np.asarray(e, dtype=np.float64), v.shape).copy()
        self.fl = fl

    def a64(self):
        return np.abs(self.v.astype(np.float64))

    def flushed(self):
        return np.zeros(self.v.shape, bool) if self.fl is None else self.fl


def _fl(*xs):
    """The flush marks of a result: those of its operands."""
    fls = [x.fl for x in xs if x.fl is not None]
    if not fls:
        return None
    out = fls[0].copy()
    for f in fls[1:]:
        out |= f
    return out


def _round_err(z, f):
    return f.u * np.abs(z.astype(np.float64))


def ev_add(x, y):
    z = x.v + y.v
    return EV(z, x.e + y.e + _round_err(z, x.f), x.f, _fl(x, y))


def ev_sub(x, y):
    z = x.v - y.v
    return EV(z, x.e + y.e + _round_err(z, x.f), x.f, _fl(x, y))


def ev_mul(x, y):
    z = x.v * y.v
    eta = np.where((x.v == 0) | (y.v == 0), 0.0, x.f.eta)  # an exact zero product has no rounding
    e = x.a64() * y.e + y.a64() * x.e + x.e * y.e + _round_err(z, x.f) + eta
    return EV(z, e, x.f, _fl(x, y))


def ev_div(x, y):
    z = x.v / y.v
    ay = y.a64()
    den = ay - y.e
    ok = den > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        q = x.a64() / ay * (1.0 + 2.0**-50)  # |x/y|, rounded up
        e = np.where(ok, (x.e + q * y.e) / np.where(ok, den, 1.0), np.inf)
    eta = np.where(x.v == 0, 0.0, x.f.eta)
    return EV(z, e + _round_err(z, x.f) + eta, x.f, _fl(x, y))


def ev_sqrt(x, nonneg=False):
    """nonneg: the exact radicand is known to be >= 0 (a sum of squares and of such sums)."""
    z = np.sqrt(x.v)
    ax = x.v.astype(np.float64)
    lo = ax - x.e
    ok = (lo >= 0) | (nonneg & (ax >= 0))
    lo = np.maximum(lo, 0.0)
    sx = np.sqrt(np.where(ok, ax, 0.0))
    sl = np.sqrt(np.where(ok, lo, 0.0))
    den = sx + sl
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.where(den > 0, x.e / np.where(den > 0, den, 1.0), np.inf)
    e = np.where(x.e == 0, 0.0, np.minimum(e1, np.sqrt(x.e)))
    return EV(z, np.where(ok, e, np.inf) + _round_err(z, x.f), x.f, _fl(x))


def ev_neg(x):
    return EV(-x.v, x.e, x.f, _fl(x))


def ev_max_nan(vm, v):
    """(vm < v) ? v : vm, v where v is NaN: |max(a^, b^) - max(a, b)| <= max(ea, eb)."""
    z = np.where(vm.v < v.v, v.v, vm.v)
    z = np.where(np.isnan(v.v), v.v, z)
    return EV(z, np.maximum(vm.e, v.e), v.f, _fl(vm, v))


def ev_flush(c, x):
    """FLUSH_SUBNORMAL on a tracked float32 value (docs/math.md): z = +0 where |x^| < FLT_MIN.
    The exact value X is that of the update without the flush (what the float64 references
    compute), so the flush is one more error: |0 - X| <= |x^| + ex; elsewhere z = x^ exactly."""
    if not c.has(FLUSH_SUBNORMAL):
        return x
    assert x.f is F32, "the float64 references never flush"
    tiny = np.abs(x.v) < np.float32(FLT_MIN)
    z = np.where(tiny, np.float32(0.0), x.v).astype(np.float32)
    e = np.where(tiny, (x.e + x.a64()) * (1.0 + 2.0**-50), x.e)  # (rounded up: the error can be exactly |x^|)
    return EV(z, e, x.f, x.flushed() | (tiny & (x.v != 0)))


def ev_copy(x):
    return EV(x.v.copy(), x.e, x.f, _fl(x))


def ev_full(n, value, err, f):
    return EV(np.full(n, value, dtype=f.dtype), err, f)


def abs_err(fv, exact):
    """|fv - exact| rounded up to a double: exact a Fraction (exact) or a Decimal (~80 digits)."""
    if isinstance(exact, Fraction):
        return float(abs(Fraction(fv) - exact)) * (1.0 + 2.0**-50)
    with localcontext() as ctx:
        ctx.prec = 100
        d = abs(Decimal(fv) - exact) + abs(exact) * Decimal(10) ** -75
        return float(d) * (1.0 + 2.0**-50) + 2.0**-1074


def const32(n, value64, exact):
    """The float32 constant (float)value64 (value64 a double), error vs. exact."""
    fv = np.float32(value64)
    return ev_full(n, fv, abs_err(float(fv), exact), F32)


def const64(n, value, exact=None):
    """A float64 value: a hyperparameter (exact) or, with `exact`, a computed double."""
    return ev_full(n, value, 0.0 if exact is None else abs_err(float(value), exact), F64)


def exact_pow(beta, t):
    return Fraction(beta) ** t


def bias_corrections_exact(b1, b2, t):
    """(1 - beta1^t, sqrt(1 - beta2^t)) as 90-digit Decimals."""
    with localcontext() as ctx:
        ctx.prec = 90
        bc1 = 1 - Decimal(b1) ** t
        bc2 = 1 - Decimal(b2) ** t
        return bc1, bc2.sqrt()


class Ctx:
    """What runs in a step: the flags and the zero/non-zero hyperparameters."""

    def __init__(self, rule, hp, flags):
        k = constants(rule, hp, flags)
        self.flags, self.wd, self.dec, self.mom = flags, k["wd"], k["decoupled"], k["mom"]

    def has(self, bit):
        return bool(self.flags & bit)


def shared_ev(K, c, st_p, g):
    """Shared steps on tracked values: K["w"], K["dk"] constants (EV)."""
    p = st_p
    if c.has(MAXIMIZE):
        g = ev_neg(g)
    if c.wd and not c.dec:
        g = ev_add(g, ev_mul(K["w"], p))
    if c.dec:
        p = ev_mul(p, K["dk"])
    return p, g


def pre_grad64(c, p, g, wd):
    """The frameworks' own sign flip and coupled decay (grad.add(param, alpha=wd))."""
    n = len(g.v)
    if c.has(MAXIMIZE):
        g = ev_neg(g)
    if c.wd and not c.dec:
        g = ev_add(g, ev_mul(const64(n, wd), p))
    return g


def decay64(c, p, lr_ev, wd, form):
    """Decoupled decay in float64: "torch" p * (1 - lr*wd) (AdamW, docs/math.md's dk), "keras"
    p - p*wd*lr (Keras 3's _apply_weight_decay)."""
    if not c.dec:
        return p
    n = len(p.v)
    if form == "keras":
        return ev_sub(p, ev_mul(ev_mul(p, const64(n, wd)), lr_ev))
    return ev_mul(p, ev_sub(const64(n, 1.0), ev_mul(lr_ev, const64(n, wd))))


# ===========================================================================
# RMSProp
# ===========================================================================
def rmsprop_spec_ev(K, c, st, g):
    """docs/math.md's RMSProp on tracked values: K float32 constants, or float64 ones for the
    flag sets no framework has (the spec's formula in double)."""
    p, v0, b0, ga0 = st
    p, g = shared_ev(K, c, p, g)
    v = ev_flush(c, ev_add(ev_mul(v0, K["a"]), ev_mul(ev_mul(K["c"], g), g)))
    if c.has(CENTERED):
        ga = ev_flush(c, ev_add(ev_mul(ga0, K["a"]), ev_mul(K["c"], g)))
        # where ga is exactly 0 (value and bound), s = v exactly and its exact value is >= 0
        s, nonneg = ev_flush(c, ev_sub(v, ev_mul(ga, ga))), (ga.v == 0) & (ga.e == 0)
    else:
        ga, s, nonneg = ga0, v, True
    if c.has(EPS_IN_SQRT):
        d = ev_sqrt(ev_add(s, K["e"]), nonneg)
    else:
        d = ev_add(ev_sqrt(s, nonneg), K["e"])
    b = b0
    if not c.mom:
        p = ev_add(p, ev_div(ev_mul(K["nl"], g), d))
    elif c.has(LR_IN_MOMENTUM):
        u = ev_div(ev_mul(K["l"], g), d)
        b = ev_flush(c, ev_add(ev_mul(b0, K["m"]), u))
        p = ev_sub(p, ev_add(u, ev_mul(K["m"], b))) if c.has(NESTEROV) else ev_sub(p, b)
    else:
        q = ev_div(g, d)
        b = ev_flush(c, ev_add(ev_mul(b0, K["m"]), q))
        if c.has(NESTEROV):
            p = ev_add(p, ev_mul(K["nl"], ev_add(q, ev_mul(K["m"], b))))
        else:
            p = ev_add(p, ev_mul(K["nl"], b))
    return [p, v, b, ga]


def rmsprop_consts32(n, hp):
    lr, alpha, eps, wd, mom = (Fraction(x) for x in hp)
    flr, falpha, feps, fwd, fmom = hp
    return {"a": const32(n, falpha, alpha), "c": const32(n, 1.0 - falpha, 1 - alpha),
            "e": const32(n, feps, eps), "m": const32(n, fmom, mom), "w": const32(n, fwd, wd),
            "dk": const32(n, 1.0 - flr * fwd, 1 - lr * wd), "l": const32(n, flr, lr),
            "nl": const32(n, -flr, -lr)}


def rmsprop_consts64(n, hp):
    lr, alpha, eps, wd, mom = hp
    one = const64(n, 1.0)
    return {"a": const64(n, alpha), "c": ev_sub(one, const64(n, alpha)), "e": const64(n, eps),
            "m": const64(n, mom), "w": const64(n, wd), "l": const64(n, lr), "nl": const64(n, -lr),
            "dk": ev_sub(one, ev_mul(const64(n, lr), const64(n, wd)))}


def rmsprop_spec32(hp, flags, st, g):
    return rmsprop_spec_ev(rmsprop_consts32(len(g.v), hp), Ctx("rmsprop", hp, flags), st, g)


def rmsprop_torch64(hp, c, st, g):
    """torch.optim.RMSprop 1.13 (_single_tensor_rmsprop) in float64."""
    lr, alpha, eps, wd, mom = hp
    n = len(g.v)
    C = lambda x: const64(n, x)  # noqa: E731
    p, v0, b0, ga0 = st
    g = pre_grad64(c, p, g, wd)                                   # grad.add(param, alpha=wd)
    p = decay64(c, p, C(lr), wd, "torch")                         # (not in torch: the spec's dk)
    w = ev_sub(C(1.0), C(alpha))                                  # 1 - alpha (Python float)
    v = ev_add(ev_mul(v0, C(alpha)), ev_mul(ev_mul(w, g), g))     # mul_(alpha).addcmul_(g, g, value=1-alpha)
    if c.has(CENTERED):
        # grad_avg.lerp_(grad, 1 - alpha), ATen: |w| < 0.5 ? self + w*(end - self)
        #                                              : end - (end - self)*(1 - w)
        diff = ev_sub(g, ga0)
        if abs(float(w.v[0])) < 0.5:
            ga = ev_add(ga0, ev_mul(w, diff))
        else:
            ga = ev_sub(g, ev_mul(diff, ev_sub(C(1.0), w)))
        s = ev_add(v, ev_mul(ev_mul(C(-1.0), ga), ga))            # addcmul(ga, ga, value=-1)
        avg = ev_add(ev_sqrt(s), C(eps))                          # .sqrt_().add_(eps)
    else:
        ga = ga0
        avg = ev_add(ev_sqrt(v, True), C(eps))                    # square_avg.sqrt().add_(eps)
    b = b0
    if c.mom:
        b = ev_add(ev_mul(b0, C(mom)), ev_div(ev_mul(C(1.0), g), avg))  # buf.mul_(m).addcdiv_(g, avg)
        p = ev_add(p, ev_mul(C(-lr), b))                          # param.add_(buf, alpha=-lr)
    else:
        p = ev_add(p, ev_div(ev_mul(C(-lr), g), avg))             # addcdiv_(g, avg, value=-lr)
    return [p, v, b, ga]


def rmsprop_tf64(hp, c, st, g):
    """TensorFlow ApplyRMSProp / ApplyCenteredRMSProp (training_ops.cc) in float64."""
    lr, rho, eps, wd, mom = hp
    n = len(g.v)
    C = lambda x: const64(n, x)  # noqa: E731
    p, v0, b0, ga0 = st
    g = pre_grad64(c, p, g, wd)
    omr = ev_sub(C(1.0), C(rho))                                  # 1 - rho
    v = ev_add(v0, ev_mul(ev_sub(ev_mul(g, g), v0), omr))         # ms += (g*g - ms)*(1-rho)
    if c.has(CENTERED):
        ga = ev_add(ga0, ev_mul(ev_sub(g, ga0), omr))             # mg += (g - mg)*(1-rho)
        denom = ev_add(ev_sub(v, ev_mul(ga, ga)), C(eps))         # (ms - mg^2) + eps
        sq = ev_sqrt(denom)
    else:
        ga = ga0
        sq = ev_sqrt(ev_add(v, C(eps)), True)                     # ms + eps
    u = ev_div(ev_mul(g, C(lr)), sq)                              # (grad*lr) / sqrt(denom)
    b = b0
    if c.mom:
        b = ev_add(ev_mul(b0, C(mom)), u)                         # mom = mom*momentum + ...
        p = ev_sub(p, b)                                          # var -= mom
    else:
        p = ev_sub(p, u)                                          # (TF's mom would be u; var -= u)
    return [p, v, b, ga]


def rmsprop_keras3_64(hp, c, st, g):
    """Keras 3 RMSprop.update_step, after _apply_weight_decay (p - p*wd*lr), in float64."""
    lr, rho, eps, wd, mom = hp
    n = len(g.v)
    C = lambda x: const64(n, x)  # noqa: E731
    p, v0, b0, ga0 = st
    g = pre_grad64(c, p, g, wd)
    p = decay64(c, p, C(lr), wd, "keras")
    omr = ev_sub(C(1.0), C(rho))
    v = ev_add(ev_mul(C(rho), v0), ev_mul(omr, ev_mul(g, g)))     # rho*v + (1-rho)*square(g)
    if c.has(CENTERED):
        ga = ev_add(ev_mul(C(rho), ga0), ev_mul(omr, g))
        sq = ev_sqrt(ev_add(ev_sub(v, ev_mul(ga, ga)), C(eps)))   # sqrt(v - square(ga) + eps)
    else:
        ga = ga0
        sq = ev_sqrt(ev_add(v, C(eps)), True)
    inc = ev_div(ev_mul(C(lr), g), sq)                            # (lr*g) / sqrt(denominator)
    b = b0
    if c.mom:
        b = ev_add(ev_mul(C(mom), b0), inc)
        p = ev_sub(p, b)
    else:
        p = ev_sub(p, inc)
    return [p, v, b, ga]


def rmsprop_keras2_64(hp, c, st, g):
    """Keras 2 RMSprop without momentum (its own Python update, eps outside) in float64."""
    lr, rho, eps, wd, mom = hp
    n = len(g.v)
    C = lambda x: const64(n, x)  # noqa: E731
    p, v0, b0, ga0 = st
    g = pre_grad64(c, p, g, wd)
    omr = ev_sub(C(1.0), C(rho))
    v = ev_add(ev_mul(C(rho), v0), ev_mul(omr, ev_mul(g, g)))     # rho*rms + one_minus_rho*square(g)
    if c.has(CENTERED):
        ga = ev_add(ev_mul(C(rho), ga0), ev_mul(omr, g))
        den = ev_add(ev_sqrt(ev_sub(v, ev_mul(ga, ga))), C(eps))
    else:
        ga = ga0
        den = ev_add(ev_sqrt(v, True), C(eps))
    p = ev_sub(p, ev_div(ev_mul(C(lr), g), den))                  # var - lr_t*grad/(sqrt(denom)+eps)
    return [p, v, b0, ga]


def rmsprop_optax64(hp, c, st, g):
    """optax.rmsprop(lr, decay, eps, eps_in_sqrt, centered, momentum, nesterov) in float64:
    scale_by_rms / scale_by_stddev, scale_by_learning_rate, trace.  optax's trace t is -b."""
    lr, decay, eps, wd, mom = hp
    n = len(g.v)
    C = lambda x: const64(n, x)  # noqa: E731
    p, v0, b0, ga0 = st
    g = pre_grad64(c, p, g, wd)                                   # add_decayed_weights: g + wd*p
    p = decay64(c, p, C(lr), wd, "torch")
    omd = ev_sub(C(1.0), C(decay))
    nu = ev_add(ev_mul(omd, ev_mul(g, g)), ev_mul(C(decay), v0))  # (1-decay)*g**2 + decay*nu
    if c.has(CENTERED):
        mu = ev_add(ev_mul(omd, g), ev_mul(C(decay), ga0))        # (1-decay)*g + decay*mu
        var, nonneg = ev_sub(nu, ev_mul(mu, mu)), False
    else:
        mu, var, nonneg = ga0, nu, True
    if c.has(EPS_IN_SQRT):
        scaling = ev_div(C(1.0), ev_sqrt(ev_add(var, C(eps)), nonneg))   # rsqrt(nu + eps)
    else:
        scaling = ev_div(C(1.0), ev_add(ev_sqrt(var, nonneg), C(eps)))   # 1/(sqrt(nu) + eps)
    u = ev_mul(C(-lr), ev_mul(scaling, g))                        # scale(-lr)(s * g)
    t = ev_add(u, ev_mul(C(mom), ev_neg(b0)))                     # trace: g + decay*t
    upd = ev_add(u, ev_mul(C(mom), t)) if c.has(NESTEROV) else t
    p = ev_add(p, upd)                                            # apply_updates
    return [p, nu, ev_neg(t), mu]


def rmsprop_spec64(hp, c, st, g):
    """docs/math.md's formula in float64 (flag sets that are no framework's)."""
    return rmsprop_spec_ev(rmsprop_consts64(len(g.v), hp), c, st, g)


def rmsprop_ref64(hp, flags, st, g):
    flags &= ~FLUSH_SUBNORMAL  # no framework flushes: the references compute the IEEE update
    c = Ctx("rmsprop", hp, flags)
    tf = flags & TF_FLAGS
    if c.has(NESTEROV):
        fn, name = ((rmsprop_optax64, "optax.rmsprop") if c.has(LR_IN_MOMENTUM)
                    else (rmsprop_spec64, "docs/math.md in float64"))
    elif tf == 0:
        fn, name = rmsprop_torch64, "torch.optim.RMSprop"
    elif tf == TF_FLAGS:
        fn, name = ((rmsprop_keras3_64, "keras.optimizers.RMSprop (3)") if c.dec
                    else (rmsprop_tf64, "TF ApplyRMSProp"))
    elif tf == LR_IN_MOMENTUM and not c.mom and not c.dec:
        fn, name = rmsprop_keras2_64, "Keras 2 RMSprop (no momentum)"
    else:
        fn, name = rmsprop_spec64, "docs/math.md in float64"
    return fn(hp, c, st, g), name


def rmsprop_exact(hp, flags, st, g):
    D = Decimal
    lr, alpha, eps, wd, mom = (D(x) for x in hp)
    c = Ctx("rmsprop", hp, flags)
    p, v, b, ga = st
    if c.has(MAXIMIZE):
        g = -g
    if c.wd and not c.dec:
        g = g + wd * p
    if c.dec:
        p = p * (1 - lr * wd)
    cc = 1 - alpha
    v = v * alpha + cc * g * g
    if c.has(CENTERED):
        ga = ga * alpha + cc * g
        s = v - ga * ga
    else:
        s = v
    rad = s + eps if c.has(EPS_IN_SQRT) else s
    if rad < 0:
        return [None, v, None if c.mom else b, ga]
    d = rad.sqrt() if c.has(EPS_IN_SQRT) else s.sqrt() + eps
    if d == 0:
        return [None, v, None if c.mom else b, ga]
    if not c.mom:
        p = p - lr * g / d
    elif c.has(LR_IN_MOMENTUM):
        u = lr * g / d
        b = b * mom + u
        p = p - (u + mom * b) if c.has(NESTEROV) else p - b
    else:
        q = g / d
        b = b * mom + q
        p = p - lr * (q + mom * b) if c.has(NESTEROV) else p - lr * b
    return [p, v, b, ga]


def rmsprop_unused(hp, flags):
    c = Ctx("rmsprop", hp, flags)
    return (0 if c.mom else 4) | (0 if c.has(CENTERED) else 8)


def rmsprop_inputs(rng, n, steps, flags, hp, kind, init):
    """param, square_avg, momentum_buf, grad_avg, and `steps` gradients (float32 arrays).

    Per element a gradient scale sigma = 2^k (k in [-20, 3]); g ~ sigma, v ~ sigma^2;
    grad_avg = +-sigma*t, t in [1/16, 2), and v = 1.25*ga^2 + sigma^2*U, so the centred
    v - ga^2 >= 0.2 v.  Element 0 has fresh (zero) state; element 1 a zero gradient in
    step 0 (plus weight decay it is still non-zero).  In the edge set elements 0 and 1
    have zero param, gradient and state: with eps == 0 the update is 0/0.  (The draws of
    rmsfuse 0.1, unchanged.)
    """
    if kind in GENERIC_KINDS:
        return generic_inputs(rng, n, steps, "rmsprop", flags, hp, kind, init)
    edge = kind == "edge"
    lr = hp[0]
    p = np.zeros(n, np.float32)
    v = np.zeros(n, np.float32)
    b = np.zeros(n, np.float32)
    ga = np.zeros(n, np.float32)
    gs = [np.zeros(n, np.float32) for _ in range(steps)]
    bscale = lr if flags & LR_IN_MOMENTUM else 1.0
    for i in range(n):
        k = rng.irange(-20, 3)
        sigma = 2.0**k
        pv = 0.0 if rng.below(16) == 0 else rng.sign() * rng.mant() * 2.0**rng.irange(-8, 1)
        gav = rng.sign() * sigma * rng.mant() * 2.0**rng.irange(-4, 0)
        vv = f32(1.25 * gav * gav + sigma * sigma * rng.mant() * 2.0**rng.irange(-2, 1))
        bv = f32(rng.sign() * rng.mant() * 2.0**rng.irange(-3, 1) * bscale)
        for s in range(steps):
            gs[s][i] = rng.sign() * sigma * rng.mant() * 2.0**rng.irange(-2, 1)
        if i == 0 or (edge and i == 1):
            vv = gav = 0.0
            bv = 0.0 if not edge else bv
        if edge and i < 2:
            pv = 0.0
            for s in range(steps):
                gs[s][i] = 0.0
        elif i == 1:
            gs[0][i] = 0.0
        p[i], v[i], b[i], ga[i] = pv, vv, bv, gav
    return [p, v, b, ga], gs


# ===========================================================================
# AdaGrad
# ===========================================================================
def adagrad_clr_exact(hp):
    lr, lr_decay, _, _, step = hp
    return Fraction(lr) / (1 + (step - 1) * Fraction(lr_decay))


def adagrad_spec32(hp, flags, st, g):
    n = len(g.v)
    c = Ctx("adagrad", hp, flags)
    k = constants("adagrad", hp, flags)
    lr, lr_decay, wd, eps, step = hp
    clr = adagrad_clr_exact(hp)
    K = {"ncl": const32(n, -k["clr"], -clr), "e": const32(n, eps, Fraction(eps)),
         "w": const32(n, wd, Fraction(wd)), "dk": const32(n, 1.0 - k["clr"] * wd, 1 - clr * Fraction(wd))}
    p, s0 = st
    p, g = shared_ev(K, c, p, g)
    s = ev_flush(c, ev_add(s0, ev_mul(g, g)))
    if c.has(EPS_IN_SQRT):
        d = ev_sqrt(ev_add(s, K["e"]), True)
    else:
        d = ev_add(ev_sqrt(s, True), K["e"])
    p = ev_add(p, ev_div(ev_mul(K["ncl"], g), d))
    return [p, s]


def adagrad_ref64(hp, flags, st, g):
    flags &= ~FLUSH_SUBNORMAL  # (as rmsprop_ref64)
    lr, lr_decay, wd, eps, step = hp
    n = len(g.v)
    C = lambda x: const64(n, x)  # noqa: E731
    c = Ctx("adagrad", hp, flags)
    p, s0 = st
    g = pre_grad64(c, p, g, wd)                                   # grad.add(param, alpha=wd)
    # clr = lr / (1 + (step - 1) * lr_decay), step a Python float
    clr = ev_div(C(lr), ev_add(C(1.0), ev_mul(C(float(step - 1)), C(lr_decay))))
    if not c.has(EPS_IN_SQRT):
        # torch.optim.Adagrad 1.13 (_single_tensor_adagrad)
        p = decay64(c, p, clr, wd, "torch")                       # (not in torch: the spec's dk)
        s = ev_add(s0, ev_mul(ev_mul(C(1.0), g), g))              # state_sum.addcmul_(g, g, value=1)
        std = ev_add(ev_sqrt(s, True), C(eps))                    # state_sum.sqrt().add_(eps)
        p = ev_add(p, ev_div(ev_mul(ev_neg(clr), g), std))        # param.addcdiv_(g, std, value=-clr)
        return [p, s], "torch.optim.Adagrad"
    # Keras 3 Adagrad.update_step (lr: torch's clr when lr_decay != 0)
    p = decay64(c, p, clr, wd, "keras")                           # p - p*wd*lr
    s = ev_add(s0, ev_mul(g, g))                                  # accumulator += square(g)
    p = ev_sub(p, ev_div(ev_mul(clr, g), ev_sqrt(ev_add(s, C(eps)), True)))  # p -= lr*g/sqrt(acc + eps)
    return [p, s], "keras.optimizers.Adagrad"


def adagrad_exact(hp, flags, st, g):
    D = Decimal
    lr, lr_decay, wd, eps, step = hp
    c = Ctx("adagrad", hp, flags)
    clr = D(lr) / (1 + (step - 1) * D(lr_decay))
    wd, eps = D(wd), D(eps)
    p, s = st
    if c.has(MAXIMIZE):
        g = -g
    if c.wd and not c.dec:
        g = g + wd * p
    if c.dec:
        p = p * (1 - clr * wd)
    s = s + g * g
    d = (s + eps).sqrt() if c.has(EPS_IN_SQRT) else s.sqrt() + eps
    if d == 0:
        return [None, s]
    return [p - clr * g / d, s]


def adagrad_inputs(rng, n, steps, flags, hp, kind, init):
    """param, sum and the gradients: sigma = 2^k per element, g ~ sigma, sum ~ sigma^2 * [1/2,
    32) (several steps accumulated).  Element 0: fresh sum (0); element 1: zero gradient in
    step 0.  Edge: elements 0 and 1 zero everywhere (0/0 with eps 0)."""
    if kind in GENERIC_KINDS:
        return generic_inputs(rng, n, steps, "adagrad", flags, hp, kind, init)
    p, s = np.zeros(n, np.float32), np.zeros(n, np.float32)
    gs = [np.zeros(n, np.float32) for _ in range(steps)]
    for i in range(n):
        sigma = 2.0**rng.irange(-20, 3)
        p[i] = draw_param(rng)
        s[i] = f32(sigma * sigma * rng.mant() * 2.0**rng.irange(-1, 4))
        for t in range(steps):
            gs[t][i] = draw_grad(rng, sigma)
        if i == 0:
            s[i] = 0.0
        if i == 1:
            gs[0][i] = 0.0
        if kind == "edge" and i < 2:
            p[i] = s[i] = 0.0
            for t in range(steps):
                gs[t][i] = 0.0
    return [p, s], gs


# ===========================================================================
# SGD
# ===========================================================================
def sgd_spec32(hp, flags, st, g):
    n = len(g.v)
    lr, mom, damp, wd = hp
    c = Ctx("sgd", hp, flags)
    Fl, Fm, Fd, Fw = (Fraction(x) for x in hp)
    K = {"m": const32(n, mom, Fm), "dd": const32(n, 1.0 - damp, 1 - Fd), "nl": const32(n, -lr, -Fl),
         "w": const32(n, wd, Fw), "dk": const32(n, 1.0 - lr * wd, 1 - Fl * Fw)}
    p, b0 = st
    p, g = shared_ev(K, c, p, g)
    b = b0
    if not c.mom:
        p = ev_add(p, ev_mul(K["nl"], g))
    elif not c.has(LR_IN_MOMENTUM):
        b = ev_flush(c, ev_copy(g) if c.has(INIT_MOMENTUM) else ev_add(ev_mul(b0, K["m"]), ev_mul(K["dd"], g)))
        if c.has(NESTEROV):
            p = ev_add(p, ev_mul(K["nl"], ev_add(g, ev_mul(K["m"], b))))
        else:
            p = ev_add(p, ev_mul(K["nl"], b))
    else:
        b = ev_flush(c, ev_add(ev_mul(b0, K["m"]), ev_mul(K["nl"], g)))
        p = ev_add(p, ev_add(ev_mul(b, K["m"]), ev_mul(K["nl"], g))) if c.has(NESTEROV) else ev_add(p, b)
    return [p, b]


def sgd_ref64(hp, flags, st, g):
    flags &= ~FLUSH_SUBNORMAL  # (as rmsprop_ref64)
    lr, mom, damp, wd = hp
    n = len(g.v)
    C = lambda x: const64(n, x)  # noqa: E731
    c = Ctx("sgd", hp, flags)
    p, b0 = st
    g = pre_grad64(c, p, g, wd)                                   # d_p.add(param, alpha=wd)
    b = b0
    if not c.has(LR_IN_MOMENTUM):
        # torch.optim.SGD 1.13 (_single_tensor_sgd)
        p = decay64(c, p, C(lr), wd, "torch")                     # (not in torch: the spec's dk)
        if c.mom:
            if c.has(INIT_MOMENTUM):
                b = ev_copy(g)                                    # buf = torch.clone(d_p)
            else:
                b = ev_add(ev_mul(b0, C(mom)), ev_mul(ev_sub(C(1.0), C(damp)), g))  # mul_(m).add_(d_p, alpha=1-damp)
            d_p = ev_add(g, ev_mul(C(mom), b)) if c.has(NESTEROV) else b        # d_p.add(buf, alpha=m)
        else:
            d_p = g
        return [ev_add(p, ev_mul(C(-lr), d_p)), b], "torch.optim.SGD"  # param.add_(d_p, alpha=-lr)
    # Keras 3 SGD.update_step
    p = decay64(c, p, C(lr), wd, "keras")
    if c.mom:
        b = ev_sub(ev_mul(b0, C(mom)), ev_mul(g, C(lr)))          # m = m*momentum - g*lr
        if c.has(NESTEROV):
            p = ev_add(p, ev_sub(ev_mul(b, C(mom)), ev_mul(g, C(lr))))  # p += m*momentum - g*lr
        else:
            p = ev_add(p, b)                                      # p += m
    else:
        p = ev_sub(p, ev_mul(g, C(lr)))                           # p -= g*lr
    return [p, b], "keras.optimizers.SGD"


def sgd_exact(hp, flags, st, g):
    D = Decimal
    lr, mom, damp, wd = (D(x) for x in hp)
    c = Ctx("sgd", hp, flags)
    p, b = st
    if c.has(MAXIMIZE):
        g = -g
    if c.wd and not c.dec:
        g = g + wd * p
    if c.dec:
        p = p * (1 - lr * wd)
    if not c.mom:
        return [p - lr * g, b]
    if not c.has(LR_IN_MOMENTUM):
        b = g if c.has(INIT_MOMENTUM) else b * mom + (1 - damp) * g
        return [p - lr * (g + mom * b) if c.has(NESTEROV) else p - lr * b, b]
    b = b * mom - lr * g
    return [p + (b * mom - lr * g) if c.has(NESTEROV) else p + b, b]


def sgd_unused(hp, flags):
    return 0 if Ctx("sgd", hp, flags).mom else 2


def sgd_inputs(rng, n, steps, flags, hp, kind, init):
    """param, momentum_buf and the gradients: g ~ sigma = 2^k, the buffer ~ sigma (torch) or
    lr*sigma (Keras' velocity).  Element 0: zero buffer; element 1: zero gradient in step 0."""
    if kind in GENERIC_KINDS:
        return generic_inputs(rng, n, steps, "sgd", flags, hp, kind, init)
    lr = hp[0]
    bscale = lr if flags & LR_IN_MOMENTUM else 1.0
    p, b = np.zeros(n, np.float32), np.zeros(n, np.float32)
    gs = [np.zeros(n, np.float32) for _ in range(steps)]
    for i in range(n):
        sigma = 2.0**rng.irange(-20, 3)
        p[i] = draw_param(rng)
        b[i] = f32(rng.sign() * sigma * rng.mant() * 2.0**rng.irange(-3, 1) * bscale)
        for t in range(steps):
            gs[t][i] = draw_grad(rng, sigma)
        if i == 0:
            b[i] = 0.0
        if i == 1:
            gs[0][i] = 0.0
    return [p, b], gs


# ===========================================================================
# Adam
# ===========================================================================
def check_pow(beta, t):
    """Python's (C's) pow(beta, t) is the correctly rounded beta^t (what the vectors assume)."""
    got = _pow(beta, t)
    want = float(exact_pow(beta, t))  # Fraction -> float: correctly rounded
    assert got == want, ("pow(%r, %d) = %r is not correctly rounded (%r)" % (beta, t, got, want))
    return got


def adam_spec32(hp, flags, st, g):
    n = len(g.v)
    lr, b1, b2, eps, wd, step = hp
    check_pow(b1, step)
    check_pow(b2, step)
    c = Ctx("adam", hp, flags)
    k = constants("adam", hp, flags)
    bc1, sbc2 = bias_corrections_exact(b1, b2, step)
    with localcontext() as ctx:
        ctx.prec = 90
        ns_exact = -Decimal(lr) * sbc2 / bc1
        e_exact = Decimal(eps) if flags & EPS_HAT else Decimal(eps) * sbc2
    Fl, Fw = Fraction(lr), Fraction(wd)
    K = {"b1": const32(n, b1, Fraction(b1)), "c1": const32(n, 1.0 - b1, 1 - Fraction(b1)),
         "b2": const32(n, b2, Fraction(b2)), "c2": const32(n, 1.0 - b2, 1 - Fraction(b2)),
         "ns": ev_full(n, k["ns"], abs_err(float(k["ns"]), ns_exact), F32),
         "e": ev_full(n, k["e"], abs_err(float(k["e"]), e_exact), F32),
         "w": const32(n, wd, Fw), "dk": const32(n, 1.0 - lr * wd, 1 - Fl * Fw)}
    p, m0, v0, vm0 = st
    p, g = shared_ev(K, c, p, g)
    m = ev_flush(c, ev_add(ev_mul(m0, K["b1"]), ev_mul(K["c1"], g)))
    v = ev_flush(c, ev_add(ev_mul(v0, K["b2"]), ev_mul(ev_mul(K["c2"], g), g)))
    if c.has(AMSGRAD):
        vm = ev_flush(c, ev_max_nan(vm0, v))
        r = vm
    else:
        vm, r = vm0, v
    d = ev_add(ev_sqrt(r, True), K["e"])
    p = ev_add(p, ev_div(ev_mul(K["ns"], m), d))
    return [p, m, v, vm]


def pow64(n, beta, t):
    return const64(n, _pow(beta, t), exact_pow(beta, t))


def adam_ref64(hp, flags, st, g):
    flags &= ~FLUSH_SUBNORMAL  # (as rmsprop_ref64)
    lr, b1, b2, eps, wd, step = hp
    n = len(g.v)
    C = lambda x: const64(n, x)  # noqa: E731
    c = Ctx("adam", hp, flags)
    p, m0, v0, vm0 = st
    g = pre_grad64(c, p, g, wd)                                   # grad.add(param, alpha=wd)
    if not c.has(EPS_HAT):
        # torch.optim.Adam / AdamW 1.13 (_single_tensor_adam, _single_tensor_adamw)
        p = decay64(c, p, C(lr), wd, "torch")                     # param.mul_(1 - lr * weight_decay)
        m = ev_add(ev_mul(m0, C(b1)), ev_mul(ev_sub(C(1.0), C(b1)), g))      # mul_(b1).add_(g, alpha=1-b1)
        v = ev_add(ev_mul(v0, C(b2)), ev_mul(ev_mul(ev_sub(C(1.0), C(b2)), g), g))  # .addcmul_(g, g, value=1-b2)
        bc1 = ev_sub(C(1.0), pow64(n, b1, step))                  # 1 - beta1 ** step
        bc2 = ev_sub(C(1.0), pow64(n, b2, step))
        step_size = ev_div(C(lr), bc1)                            # lr / bias_correction1
        bc2_sqrt = ev_sqrt(bc2, True)                             # math.sqrt(bias_correction2)
        if c.has(AMSGRAD):
            vm = ev_max_nan(vm0, v)                               # torch.maximum(max_exp_avg_sq, v)
            r = vm
        else:
            vm, r = vm0, v
        denom = ev_add(ev_div(ev_sqrt(r, True), bc2_sqrt), C(eps))  # (sqrt(r) / bc2_sqrt).add_(eps)
        p = ev_add(p, ev_div(ev_mul(ev_neg(step_size), m), denom))  # addcdiv_(m, denom, value=-step_size)
        return [p, m, v, vm], ("torch.optim.AdamW" if c.dec else "torch.optim.Adam")
    # Keras 3 Adam.update_step (AdamW: _apply_weight_decay first), the epsilon-hat form
    p = decay64(c, p, C(lr), wd, "keras")                         # p - p*wd*lr
    b1p, b2p = pow64(n, b1, step), pow64(n, b2, step)             # ops.power(beta, local_step)
    alpha = ev_div(ev_mul(C(lr), ev_sqrt(ev_sub(C(1.0), b2p), True)), ev_sub(C(1.0), b1p))
    m = ev_add(m0, ev_mul(ev_sub(g, m0), ev_sub(C(1.0), C(b1))))  # m += (g - m)*(1 - beta_1)
    v = ev_add(v0, ev_mul(ev_sub(ev_mul(g, g), v0), ev_sub(C(1.0), C(b2))))  # v += (g^2 - v)*(1 - beta_2)
    if c.has(AMSGRAD):
        vm = ev_max_nan(vm0, v)                                   # v_hat = maximum(v_hat, v)
        r = vm
    else:
        vm, r = vm0, v
    p = ev_sub(p, ev_div(ev_mul(m, alpha), ev_add(ev_sqrt(r, True), C(eps))))  # p -= (m*alpha)/(sqrt(v)+eps)
    return [p, m, v, vm], ("keras.optimizers.AdamW" if c.dec else "keras.optimizers.Adam")


def adam_exact(hp, flags, st, g):
    D = Decimal
    lr, b1, b2, eps, wd, step = hp
    c = Ctx("adam", hp, flags)
    lr, b1, b2, eps, wd = (D(x) for x in (lr, b1, b2, eps, wd))
    p, m, v, vm = st
    if c.has(MAXIMIZE):
        g = -g
    if c.wd and not c.dec:
        g = g + wd * p
    if c.dec:
        p = p * (1 - lr * wd)
    m = m * b1 + (1 - b1) * g
    v = v * b2 + (1 - b2) * g * g
    if c.has(AMSGRAD):
        vm = v if v.is_nan() or vm.is_nan() else max(vm, v)
        r = vm
    else:
        r = v
    bc1 = 1 - b1 ** step
    sbc2 = (1 - b2 ** step).sqrt()
    e = eps if c.has(EPS_HAT) else eps * sbc2
    d = r.sqrt() + e
    if d == 0:
        return [None, m, v, vm]
    return [p - lr * sbc2 / bc1 * m / d, m, v, vm]


def adam_unused(hp, flags):
    return 0 if flags & AMSGRAD else 8


def adam_inputs(rng, n, steps, flags, hp, kind, init):
    """param, exp_avg, exp_avg_sq, max_exp_avg_sq and the gradients: g ~ sigma = 2^k,
    m ~ sigma, v ~ sigma^2, max_exp_avg_sq = v * [1/2, 2) (the max goes either way).
    Element 0: fresh state; element 1: zero gradient in step 0.  Edge: elements 0 and 1
    zero everywhere (0/0 with eps 0)."""
    if kind in GENERIC_KINDS:
        return generic_inputs(rng, n, steps, "adam", flags, hp, kind, init)
    p, m, v, vm = (np.zeros(n, np.float32) for _ in range(4))
    gs = [np.zeros(n, np.float32) for _ in range(steps)]
    for i in range(n):
        sigma = 2.0**rng.irange(-20, 3)
        p[i] = draw_param(rng)
        m[i] = f32(rng.sign() * sigma * rng.mant() * 2.0**rng.irange(-3, 0))
        v[i] = f32(sigma * sigma * rng.mant() * 2.0**rng.irange(-2, 1))
        vm[i] = f32(float(v[i]) * rng.mant() * 2.0**rng.irange(-1, 0))
        for t in range(steps):
            gs[t][i] = draw_grad(rng, sigma)
        if i == 0:
            m[i] = v[i] = vm[i] = 0.0
        if i == 1:
            gs[0][i] = 0.0
        if kind == "edge" and i < 2:
            p[i] = m[i] = v[i] = vm[i] = 0.0
            for t in range(steps):
                gs[t][i] = 0.0
    return [p, m, v, vm], gs


GENERIC_KINDS = ("fresh", "special", "fspecial", "decay")


# ===========================================================================
# Inputs shared by the rules: fresh state (presets), special values, subnormal state.
# ===========================================================================
def draw_param(rng):
    return 0.0 if rng.below(16) == 0 else rng.sign() * rng.mant() * 2.0**rng.irange(-8, 1)


def draw_grad(rng, sigma):
    return rng.sign() * sigma * rng.mant() * 2.0**rng.irange(-2, 1)


NAN, INF = float("nan"), float("inf")
# Special elements: overrides of (param, grad, state 1, state 2, state 3) on a benign element
# (param 0.75, grad 0.5, state 0.5 / 0.25 / 0.125 ... see BENIGN).
SPECIAL = [
    {"g": NAN}, {"g": INF}, {"g": -INF}, {"p": NAN}, {"p": INF}, {"p": -INF},
    {"s1": NAN}, {"s1": INF}, {"s2": NAN}, {"s3": NAN}, {"s3": INF},
    {"g": 2.0**-140, "p": 1.0, "s1": 0.0, "s2": 0.0, "s3": 0.0},          # subnormal gradient
    {"p": 2.0**-135, "g": 2.0**-130},                                      # subnormal param
    {"p": -0.0, "g": -0.0, "s1": 0.0, "s2": 0.0, "s3": 0.0},               # signed zeros
    {"p": -0.0, "g": 0.0, "s1": -0.0, "s2": -0.0, "s3": -0.0},
    {"g": 2.0**100},                                                       # float32 overflow of g*g
    {"g": -3.0e38},
    {"s1": 3.0e38, "g": 2.0**60},
]
BENIGN = {"rmsprop": (0.75, 0.5, [0.5, 0.25, 0.125]), "adagrad": (0.75, 0.5, [0.5]),
          "sgd": (0.75, 0.5, [0.25]), "adam": (0.75, 0.5, [0.25, 0.5, 0.375])}


# Subnormal-safe state (FLUSH_SUBNORMAL): values around FLT_MIN = 2^-126.
ABOVE = FLT_MIN * (1 + 2.0**-10)  # just above FLT_MIN: any decay factor <= 0.999 takes it below
SUB, SUB2, MAXSUB = 2.0**-140, 2.0**-130, FLT_MIN - 2.0**-149  # subnormals (the largest last)
# Per rule, the state arrays whose values are signed by nature (momenta, first moments, the
# centred average); the others (square averages, sums, maxima) are >= 0 in any real use.
SIGNED = {"rmsprop": (False, True, True), "adagrad": (False,), "sgd": (True,), "adam": (True, False, False)}


def _st(rule, pos, neg=None, both=None):
    """A state override for every state array of `rule`: `pos` in the non-negative ones, `neg`
    (default pos) in the signed ones; `both`, when given, everywhere."""
    if both is not None:
        return [both] * len(SIGNED[rule])
    return [neg if (sg and neg is not None) else pos for sg in SIGNED[rule]]


def flush_special(rule):
    """The elements of the flush cases (kind "fspecial"): (param, grad, states), every state
    array of the rule at once.  What happens to each under FLUSH_SUBNORMAL, in docs/math.md's
    op order (a = the decay factor of the state, 0.9 or 0.999 here):"""
    p0, g0, s0 = BENIGN[rule]
    T = ABOVE
    out = [
        (p0, 0.0, _st(rule, T)),              # zero gradient: T*a < FLT_MIN, flushed to +0
        (0.0, 0.0, _st(rule, T, -T)),         # the same, param 0: p shows the flushed momentum
        (p0, -0.0, _st(rule, 0, both=-0.0)),  # -0 state: b*m + (-0) = -0, ga, m likewise: +0
        (p0, 0.0, _st(rule, 0, both=-0.0)),   # Keras' velocity b*m + nl*0 = -0: +0
        (p0, 0.0, _st(rule, SUB)),            # subnormal state loaded: x*a subnormal, flushed
        (0.0, 0.0, _st(rule, MAXSUB, -MAXSUB)),  # the largest subnormal; AdaGrad's sum + 0 too
        (p0, g0, _st(rule, SUB, -SUB)),       # subnormal state, normal gradient: normal, kept
        (p0, 0.0, _st(rule, FLT_MIN)),        # FLT_MIN*a flushed; AdaGrad's FLT_MIN + 0 kept
        (p0, 0.0, _st(rule, NAN)),            # NaN state unchanged
        (p0, 0.0, _st(rule, INF, -INF)),      # +-Inf state unchanged
        (p0, 2.0**-64, _st(rule, 0.0)),       # c*g*g subnormal (g*g = 2^-128): v, sum flushed
        (1.0, 2.0**-140, _st(rule, 0.0)),     # subnormal gradient (never flushed): m, b flushed,
                                              # SGD's INIT_MOMENTUM b = flush(g) = 0, p uses g
        (2.0**-130, -2.0**-135, _st(rule, 0.0)),  # subnormal param stays (never flushed)
        (0.0, 0.0, _st(rule, SUB, -SUB)),     # param 0: what a flushed momentum leaves in p
    ]
    if rule == "rmsprop":
        out += [(p0, 0.0, [T, -SUB, -T]),      # negative b and ga flushed
                (p0, 0.0, [SUB, g0, NAN]),     # ga NaN: s = v - ga*ga NaN
                (p0, 2.0**-66, [0.0, 0.0, 0.0])]  # centred: v = c*g*g flushed, ga = c*g normal:
                                                  # s = -ga*ga flushed to 0 (else NaN via sqrt)
    if rule == "adam":
        out += [(p0, 0.0, [s0[0], SUB, SUB2]),  # AMSGrad: vm = flush(max(SUB2, flush(SUB*b2))) = 0
                (p0, g0, [s0[0], s0[1], SUB2]),  # max(subnormal vm, normal v) = v
                (p0, 0.0, [T, T, NAN]),         # max(NaN, 0): NaN, unchanged by the flush
                (0.0, 0.0, [SUB2, 2.0**-60, 2.0**-60]),  # m flushed: (ns*m)/d would be ~1e-32
                (p0, 0.0, [T, 0.5, -0.0])]      # vm = max(-0, v) = v (normal)
    if rule == "sgd":
        out += [(0.0, 0.0, [-SUB])]
    return out


def generic_inputs(rng, n, steps, rule, flags, hp, kind, init):
    """kind "fresh": the framework's initial state (`init`: the value of state 1, 0 by
    default) and random params and gradients; the last element's gradient is 2^-64 in step 0
    and 0 after it (the square of 2^-64 is subnormal: FLUSH_SUBNORMAL's domain); "special":
    the SPECIAL elements (n of them); "fspecial": those of flush_special(rule); "decay": the
    chains of DECAY_CHAINS (decay_inputs)."""
    nst = len(BENIGN[rule][2])
    arrs = [np.zeros(n, np.float32) for _ in range(1 + nst)]
    gs = [np.zeros(n, np.float32) for _ in range(steps)]
    if kind == "fresh":
        for i in range(n):
            sigma = 2.0**rng.irange(-12, 2)
            arrs[0][i] = draw_param(rng)
            for t in range(steps):
                gs[t][i] = draw_grad(rng, sigma)
        arrs[1][:] = np.float32(init or 0.0)
        for t in range(steps):
            gs[t][n - 1] = 2.0**-64 if t == 0 else 0.0
        return arrs, gs
    if kind == "decay":
        return decay_inputs(rng, n, steps, rule, arrs, gs)
    if kind == "fspecial":
        assert steps == 1
        elems = flush_special(rule)
        assert n == len(elems)
        for i, (pv, gv, sv) in enumerate(elems):
            arrs[0][i], gs[0][i] = pv, gv
            for j in range(nst):
                arrs[1 + j][i] = sv[j]
        return arrs, gs
    assert steps == 1 and n == len(SPECIAL)
    p0, g0, s0 = BENIGN[rule]
    for i, sp in enumerate(SPECIAL):
        arrs[0][i] = sp.get("p", p0)
        gs[0][i] = sp.get("g", g0)
        for j in range(nst):
            arrs[1 + j][i] = sp.get("s%d" % (j + 1), s0[j])
    return arrs, gs


def decay_inputs(rng, n, steps, rule, arrs, gs):
    """Zero gradients drive the state through the subnormal range (DECAY_CHAINS):
      0: param 0.75, every state 1e-36, gradient 0 in every step: the decay (0.52, 0.55)
         reaches the smallest subnormal after 31 to 34 steps and stays there (0.55 * 2^-149
         rounds to 2^-149); with FLUSH_SUBNORMAL the state is +0 from the step where it falls
         below FLT_MIN on;
      1: param 0, every state 2^-138 (loaded subnormal), gradient 0;
      2: state 0, gradient 2^-62 in steps 0-2 (c*g*g near FLT_MIN), then 0;
      3: state just above FLT_MIN, gradient 0 in steps 0-9, then normal gradients: the state
         revives from +0 (or from a subnormal)."""
    assert n == 4
    nst = len(arrs) - 1
    sigma = 2.0**-10
    for i in range(n):
        arrs[0][i] = (0.75, 0.0, draw_param(rng), draw_param(rng))[i]
        st = (f32(1e-36), 2.0**-138, 0.0, ABOVE)[i]
        for j in range(nst):
            arrs[1 + j][i] = st
        for t in range(steps):
            gs[t][i] = (0.0, 0.0, 2.0**-62 if t < 3 else 0.0, draw_grad(rng, sigma) if t >= 10 else 0.0)[i]
    if rule == "rmsprop":
        arrs[2][0] = -arrs[2][0]  # a negative momentum buffer
    if rule in ("sgd", "adam"):
        arrs[1][1] = -arrs[1][1]  # a negative momentum buffer, first moment
    return arrs, gs


def flush_probe(rule, flags, arrs, gs):
    """The flush classes' cases (kind "normal", one step): the last element gets param 0, a zero
    gradient and state just above FLT_MIN (AdaGrad's sum and Adam's max_exp_avg_sq a loaded
    subnormal; momenta negative), so that a decay factor below 0.999 takes it below FLT_MIN and
    FLUSH_SUBNORMAL makes it +0.  A centred grad_avg stays exactly 0 unless EPS_IN_SQRT (else
    s = v - ga*ga would be a 0 whose exact value may be negative: no bound)."""
    i = len(arrs[0]) - 1
    arrs[0][i] = 0.0
    for g in gs:
        g[i] = 0.0
    vals = {"rmsprop": [ABOVE, -ABOVE, -ABOVE if flags & EPS_IN_SQRT else 0.0],
            "adagrad": [SUB2], "sgd": [-ABOVE if flags & LR_IN_MOMENTUM else ABOVE],
            "adam": [-ABOVE, ABOVE, SUB2]}[rule]
    for j, x in enumerate(vals):
        arrs[1 + j][i] = x


# ===========================================================================
# The rules' tables
# ===========================================================================
class RuleSpec:
    def __init__(self, **kw):
        self.__dict__.update(kw)


RULES = {
    "rmsprop": RuleSpec(
        cname="GOLDEN_RMSPROP", hp_names=("lr", "alpha", "eps", "weight_decay", "momentum"),
        outs=("param", "square_avg", "momentum_buf", "grad_avg"), step_idx=None,
        nz=(("wd", 3), ("mom", 4)), spec32=rmsprop_spec32, ref64=rmsprop_ref64, exact=rmsprop_exact,
        inputs=rmsprop_inputs, unused=rmsprop_unused),
    "adagrad": RuleSpec(
        cname="GOLDEN_ADAGRAD", hp_names=("lr", "lr_decay", "weight_decay", "eps", "step"),
        outs=("param", "sum"), step_idx=4, nz=(("lrd", 1), ("wd", 2)),
        spec32=adagrad_spec32, ref64=adagrad_ref64, exact=adagrad_exact, inputs=adagrad_inputs,
        unused=lambda hp, flags: 0),
    "sgd": RuleSpec(
        cname="GOLDEN_SGD", hp_names=("lr", "momentum", "dampening", "weight_decay"),
        outs=("param", "momentum_buf"), step_idx=None, nz=(("mom", 1), ("damp", 2), ("wd", 3)),
        spec32=sgd_spec32, ref64=sgd_ref64, exact=sgd_exact, inputs=sgd_inputs, unused=sgd_unused),
    "adam": RuleSpec(
        cname="GOLDEN_ADAM", hp_names=("lr", "beta1", "beta2", "eps", "weight_decay", "step"),
        outs=("param", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"), step_idx=5, nz=(("wd", 4),),
        spec32=adam_spec32, ref64=adam_ref64, exact=adam_exact, inputs=adam_inputs, unused=adam_unused),
}
RULE_ORDER = ("rmsprop", "adagrad", "sgd", "adam")


def hp_at(rule, hp, s):
    """The hyperparameters of step s of a multi-step case: the step number increments."""
    i = RULES[rule].step_idx
    if i is None:
        return tuple(hp)
    hp = list(hp)
    hp[i] = int(hp[i]) + s
    return tuple(hp)


def flag_name(flags):
    parts = [nm for bit, nm in FLAG_NAMES if flags & bit]
    return "|".join(parts) if parts else "plain"


def classes(rule, hp_on, ext_filter=None):
    """Every variant class docs/math.md accepts: (flags, {name: on}); hp_on holds the
    non-zero values of the optional hyperparameters."""
    spec = RULES[rule]
    mask = RULE_FLAGS[rule]
    bits = [b for b, _ in FLAG_NAMES if mask & b]
    out = []
    for zi in range(1 << len(spec.nz)):  # (the order of rmsfuse 0.1's RMSProp cases)
        on = {nm: bool(zi >> j & 1) for j, (nm, _) in enumerate(spec.nz)}
        hp = hp_with(rule, hp_on, on)
        for fi in range(1 << len(bits)):
            flags = sum(b for j, b in enumerate(bits) if fi >> j & 1)
            if ext_filter is not None and not ext_filter(flags):
                continue
            if refusal(rule, hp, flags) is None:
                out.append((flags, on))
    return out


def hp_with(rule, hp_on, on):
    hp = list(hp_on)
    for nm, idx in RULES[rule].nz:
        if not on[nm]:
            hp[idx] = 0.0
    return tuple(hp)


def on_name(rule, on):
    return "/".join("%s%d" % (nm, on[nm]) for nm, _ in RULES[rule].nz)


# ===========================================================================
# Case lists
# ===========================================================================
# Hyperparameter sets: the values used where a class has the optional hyperparameter on.
#   name, hp, elements per case, classes ("all", or "base": RMSProp without DD and NS), kind
SETS = {
    "rmsprop": [  # (lr, alpha, eps, weight_decay, momentum)
        ("torch", (0.01, 0.99, 1e-8, 1e-2, 0.9), 10, "base", "normal"),     # torch.optim.RMSprop preset
        ("tf", (0.001, 0.9, 1e-10, 1e-4, 0.9), 10, "base", "normal"),       # TF ApplyRMSProp preset
        ("keras", (0.001, 0.9, 1e-7, 4e-3, 0.5), 10, "all", "normal"),      # Keras RMSprop preset
        ("misc", (0.1, 0.95, 1e-6, 0.3, 0.99), 10, "all", "normal"),
        ("coarse", (3e-4, 0.5, 1e-4, 0.05, 0.7), 10, "base", "normal"),     # alpha 0.5: ATen lerp's other branch
        ("eps0", (0.01, 0.999, 0.0, 1e-3, 0.9), 6, "all", "edge"),          # eps == 0, 0/0 elements
    ],
    "adagrad": [  # (lr, lr_decay, weight_decay, eps, step)
        ("torch", (0.01, 0.01, 1e-2, 1e-10, 3), 10, "all", "normal"),
        ("keras", (0.001, 0.05, 4e-3, 1e-7, 1), 10, "all", "normal"),
        ("decay", (0.1, 0.25, 0.3, 1e-6, 7), 10, "all", "normal"),
        ("late", (1.5, 1e-3, 0.05, 1e-4, 1000), 10, "all", "normal"),
        ("eps0", (0.01, 0.1, 1e-3, 0.0, 2), 6, "all", "edge"),
    ],
    "sgd": [  # (lr, momentum, dampening, weight_decay)
        ("torch", (0.01, 0.9, 0.1, 1e-3), 10, "all", "normal"),
        ("big", (0.1, 1.25, 0.5, 0.3), 10, "all", "normal"),                 # momentum > 1 (torch allows it)
        ("full", (1e-4, 0.5, 1.0, 1e-5), 10, "all", "normal"),               # dampening 1: (float)(1-1) = 0
    ],
    "adam": [  # (lr, beta1, beta2, eps, weight_decay, step)
        ("torch", (1e-3, 0.9, 0.999, 1e-8, 1e-2, 1), 10, "all", "normal"),
        ("keras", (1e-3, 0.9, 0.999, 1e-7, 4e-3, 3), 10, "all", "normal"),
        ("late", (3e-4, 0.9, 0.999, 1e-8, 0.1, 1000), 10, "all", "normal"),
        ("coarse", (0.01, 0.5, 0.75, 1e-4, 0.05, 7), 10, "all", "normal"),
        ("beta0", (0.1, 0.0, 0.0, 1e-6, 0.3, 2), 10, "all", "normal"),       # betas 0: m = g, v = g^2
        ("eps0", (1e-3, 0.9, 0.999, 0.0, 1e-2, 2), 6, "all", "edge"),
    ],
}

# Chains: consecutive steps on the same state, every optional hyperparameter on.
CHAIN_STEPS = 6
RMSPROP_CHAIN_NEW = (NESTEROV, DECOUPLED_DECAY, LR_IN_MOMENTUM | NESTEROV, TF_FLAGS | NESTEROV,
                     CENTERED | TF_FLAGS | NESTEROV | DECOUPLED_DECAY, CENTERED | NESTEROV | MAXIMIZE,
                     TF_FLAGS | DECOUPLED_DECAY, CENTERED | LR_IN_MOMENTUM | DECOUPLED_DECAY | MAXIMIZE)
_SGD_TORCH = (0, NESTEROV, INIT_MOMENTUM, INIT_MOMENTUM | NESTEROV, INIT_MOMENTUM | MAXIMIZE | DECOUPLED_DECAY,
              INIT_MOMENTUM | NESTEROV | DECOUPLED_DECAY, NESTEROV | MAXIMIZE, DECOUPLED_DECAY)
_SGD_KERAS = (LR_IN_MOMENTUM, LR_IN_MOMENTUM | NESTEROV, LR_IN_MOMENTUM | DECOUPLED_DECAY,
              LR_IN_MOMENTUM | NESTEROV | MAXIMIZE | DECOUPLED_DECAY)
#   rule: [(set name, hp, n, flag sets)]; INIT_MOMENTUM applies to the first step only.
CHAINS = {
    "rmsprop": [("chain", (0.02, 0.8, 1e-5, 2e-2, 0.95), 8, tuple(range(16)) + RMSPROP_CHAIN_NEW)],
    "adagrad": [("chain", (0.05, 0.1, 1e-2, 1e-8, 1), 8, tuple(range(0, 32, 2)))],   # step 1..6, lr_decay on
    "sgd": [("chain", (0.02, 0.9, 0.0, 1e-2), 8, _SGD_TORCH + _SGD_KERAS),          # dampening 0
            ("chaind", (0.02, 0.8, 0.3, 1e-2), 8,
             (0, MAXIMIZE, DECOUPLED_DECAY, INIT_MOMENTUM | MAXIMIZE | DECOUPLED_DECAY))],
    "adam": [("chain", (2e-3, 0.9, 0.99, 1e-8, 2e-2, 1), 8, tuple(range(0, 512, 8)))],  # step 1..6
}

# Presets: rmsfuse_<rule>_<framework>(lr) from the framework's initial state, 4 steps.
#   function, rule, hp, flags, initial value of the first state array
PRESET_STEPS = 4
#   (every preset sets FLUSH_SUBNORMAL, FL below)
FL = FLUSH_SUBNORMAL
PRESETS = [
    ("rmsfuse_rmsprop_pytorch", "rmsprop", (0.01, 0.99, 1e-8, 0.0, 0.0), FL, 0.0),
    ("rmsfuse_rmsprop_tensorflow", "rmsprop", (0.001, 0.9, 1e-10, 0.0, 0.0), TF_FLAGS | FL, 1.0),  # TF1: rms = 1
    ("rmsfuse_rmsprop_keras", "rmsprop", (0.001, 0.9, 1e-7, 0.0, 0.0), TF_FLAGS | FL, 0.0),
    ("rmsfuse_adagrad_pytorch", "adagrad", (0.01, 0.0, 0.0, 1e-10, 1), FL, 0.0),
    ("rmsfuse_adagrad_keras", "adagrad", (0.001, 0.0, 0.0, 1e-7, 1), EPS_IN_SQRT | FL, 0.1),          # Keras: 0.1
    ("rmsfuse_adagrad_classic", "adagrad", (0.01, 0.0, 0.0, 1e-8, 1), EPS_IN_SQRT | FL, 0.0),
    ("rmsfuse_sgd_pytorch", "sgd", (0.01, 0.0, 0.0, 0.0), FL, 0.0),
    ("rmsfuse_sgd_keras", "sgd", (0.01, 0.0, 0.0, 0.0), LR_IN_MOMENTUM | FL, 0.0),
    ("rmsfuse_adam_pytorch", "adam", (1e-3, 0.9, 0.999, 1e-8, 0.0, 1), FL, 0.0),
    ("rmsfuse_adamw_pytorch", "adam", (1e-3, 0.9, 0.999, 1e-8, 0.01, 1), DECOUPLED_DECAY | FL, 0.0),
    ("rmsfuse_adam_tensorflow", "adam", (1e-3, 0.9, 0.999, 1e-8, 0.0, 1), EPS_HAT | FL, 0.0),
    ("rmsfuse_adam_keras", "adam", (1e-3, 0.9, 0.999, 1e-7, 0.0, 1), EPS_HAT | FL, 0.0),
    ("rmsfuse_adamw_keras", "adam", (1e-3, 0.9, 0.999, 1e-7, 0.004, 1), EPS_HAT | DECOUPLED_DECAY | FL, 0.0),
]

# Special values: a few flag sets per rule, every optional hyperparameter on.
SPECIAL_CASES = {
    "rmsprop": ((0.01, 0.9, 1e-8, 1e-2, 0.9),
                (0, TF_FLAGS, CENTERED | MAXIMIZE, TF_FLAGS | NESTEROV | DECOUPLED_DECAY,
                 CENTERED | NESTEROV | DECOUPLED_DECAY)),
    "adagrad": ((0.01, 0.1, 1e-2, 1e-10, 3), (0, EPS_IN_SQRT | DECOUPLED_DECAY | MAXIMIZE)),
    "sgd": ((0.01, 0.9, 0.0, 1e-2), (0, NESTEROV | MAXIMIZE, INIT_MOMENTUM | DECOUPLED_DECAY,
                                     LR_IN_MOMENTUM | NESTEROV | DECOUPLED_DECAY)),
    "adam": ((1e-3, 0.9, 0.999, 1e-8, 1e-2, 2), (0, AMSGRAD, AMSGRAD | EPS_HAT | DECOUPLED_DECAY,
                                                 AMSGRAD | MAXIMIZE)),
}
# The same elements with FLUSH_SUBNORMAL on a few flag sets (SPECIAL_CASES' first and last).
# The flush itself (flush_special): every flag set with FLUSH_SUBNORMAL; decoupled decay, so
# that a zero gradient stays zero; and the eps = 0 hyperparameters of "eps0" below, where a
# flushed state makes the denominator 0 (0/0: NaN, docs/math.md) and the reference is finite.
FLUSH_SPECIAL_CASES = {
    "rmsprop": ((0.01, 0.9, 1e-8, 1e-2, 0.9),
                (DECOUPLED_DECAY, TF_FLAGS | DECOUPLED_DECAY, CENTERED | EPS_IN_SQRT | MAXIMIZE | DECOUPLED_DECAY,
                 TF_FLAGS | NESTEROV | DECOUPLED_DECAY, CENTERED | NESTEROV, CENTERED | LR_IN_MOMENTUM | DECOUPLED_DECAY),
                (0.01, 0.9, 0.0, 1e-2, 0.9), (DECOUPLED_DECAY, TF_FLAGS | CENTERED | DECOUPLED_DECAY)),
    "adagrad": ((0.01, 0.1, 1e-2, 1e-10, 3), (DECOUPLED_DECAY, EPS_IN_SQRT | MAXIMIZE | DECOUPLED_DECAY, 0),
                (0.01, 0.1, 1e-2, 0.0, 3), (DECOUPLED_DECAY,)),
    "sgd": ((0.01, 0.9, 0.0, 1e-2), (DECOUPLED_DECAY, NESTEROV | MAXIMIZE | DECOUPLED_DECAY,
                                     INIT_MOMENTUM | DECOUPLED_DECAY, INIT_MOMENTUM | NESTEROV,
                                     LR_IN_MOMENTUM | NESTEROV | DECOUPLED_DECAY, LR_IN_MOMENTUM | DECOUPLED_DECAY),
            None, ()),
    "adam": ((1e-3, 0.9, 0.999, 1e-8, 1e-2, 2), (DECOUPLED_DECAY, AMSGRAD | DECOUPLED_DECAY,
                                                 AMSGRAD | EPS_HAT | DECOUPLED_DECAY | MAXIMIZE, AMSGRAD),
             (1e-3, 0.9, 0.999, 0.0, 1e-2, 2), (AMSGRAD | DECOUPLED_DECAY,)),
}

# Zero gradients through the subnormal range (decay_inputs): DECAY_STEPS steps (AdaGrad, whose
# sum never decays, CHAIN_STEPS), each flag set without and with FLUSH_SUBNORMAL, 4 elements;
# decay factors 0.52 and 0.55, so that 1e-36 reaches the smallest subnormal within the chain
# (x * a rounds back to 2^-149 for any a > 0.5).
DECAY_STEPS = 36
DECAY_CHAINS = {
    "rmsprop": ((0.01, 0.52, 1e-8, 0.0, 0.55), (0, CENTERED | EPS_IN_SQRT | LR_IN_MOMENTUM | NESTEROV)),
    "adagrad": ((0.01, 0.0, 0.0, 1e-10, 1), (0, EPS_IN_SQRT)),
    "sgd": ((0.01, 0.55, 0.0, 0.0), (NESTEROV, LR_IN_MOMENTUM)),
    "adam": ((1e-3, 0.55, 0.52, 1e-8, 0.0, 1), (0, AMSGRAD | EPS_HAT)),
}

NEW_N = 5  # elements per case, except RMSProp's cases of rmsfuse 0.1 (their n unchanged)
KIND_CODE = {"normal": 0, "fresh": 0, "decay": 0, "edge": 1, "special": 2, "fspecial": 2}


# ===========================================================================
# Running a case
# ===========================================================================
def ceil3(x):
    """Decimal string of x rounded up to 3 significant digits (x >= 0 finite)."""
    if x == 0:
        return "0.0", 0.0
    with localcontext() as ctx:
        ctx.prec = 3
        ctx.rounding = ROUND_CEILING
        r = +Decimal(x)
    s = "{:.2E}".format(r).replace("E-0", "E-").replace("E+0", "E+").replace("E+", "E")
    val = float(s)
    assert val >= x, (s, x)
    return s, val


def hexd(x):
    """Exact C literal of a double."""
    if x != x:
        return "NAN"
    if x in (float("inf"), float("-inf")):
        return "INFINITY" if x > 0 else "-INFINITY"
    return float.hex(x).replace("0x0.0p+0", "0.0").replace("p+", "p")


class Case:
    pass


def run_case(rule, name, hp, flags, n, steps, kind, flags_later=None, init=None):
    spec = RULES[rule]
    K = len(spec.outs)
    flags_later = flags if flags_later is None else flags_later
    for s in range(steps):
        why = refusal(rule, hp_at(rule, hp, s), flags if s == 0 else flags_later)
        assert why is None, (name, why)
    seed_name = name[len("rmsprop/"):] if rule == "rmsprop" else name
    rng = Rng(zlib.crc32(seed_name.encode()))
    arrs, gs = spec.inputs(rng, n, steps, flags, hp, kind, init)
    if flags & FLUSH_SUBNORMAL and kind == "normal" and steps == 1:
        flush_probe(rule, flags, arrs, gs)
    cs = Case()
    cs.rule, cs.name, cs.hp, cs.flags, cs.flags_later = rule, name, tuple(hp), flags, flags_later
    cs.n, cs.steps, cs.kind, cs.K = n, steps, kind, K
    cs.unused = spec.unused(hp, flags)
    cs.inputs = [arrs[0], gs[0]] + arrs[1:] + gs[1:]
    cs.grads = gs
    cs.out32, cs.ref64, cs.bound, cs.bound_s, cs.ratios, cs.e32, cs.e64 = [], [], [], [], [], [], []
    cs.refs = []
    st32 = [EV(a.copy(), 0.0, F32) for a in arrs]
    st64 = [EV(a.astype(np.float64), 0.0, F64) for a in arrs]
    plain = [a.copy() for a in arrs]
    with np.errstate(all="ignore"):
        for s in range(steps):
            hs = hp_at(rule, hp, s)
            fs = flags if s == 0 else flags_later
            g32 = EV(gs[s].copy(), 0.0, F32)
            g64 = EV(gs[s].astype(np.float64), 0.0, F64)
            st32 = spec.spec32(hs, fs, st32, g32)
            st64, ref_name = spec.ref64(hs, fs, st64, g64)
            cs.refs.append(ref_name)
            plain = list(EMULATE[rule](hs, fs, plain[0], gs[s], *plain[1:]))
            for k in range(K):
                o32, o64, pl = st32[k], st64[k], plain[k]
                assert o32.v.dtype == np.float32 and o64.v.dtype == np.float64
                # the emulation and the tracked value path agree bit for bit
                same = (o32.v.view(np.uint32) == pl.view(np.uint32)) | (np.isnan(o32.v) & np.isnan(pl))
                assert same.all(), (name, s, k, o32.v, pl)
                out = o32.v.astype(np.float64)
                ref = o64.v
                raw = SAFETY * (o32.e + o64.e)
                for i in range(n):
                    if np.isfinite(raw[i]) and np.isfinite(out[i]) and np.isfinite(ref[i]):
                        bs, bv = ceil3(float(raw[i]))
                        diff = abs(float(out[i]) - float(ref[i]))  # as the C test computes it
                        assert diff <= bv, (name, s, k, i, diff, bv)
                        cs.ratios.append((diff / bv if bv > 0 else 0.0, bv, float(out[i]), k, ref_name,
                                          bool(o32.flushed()[i])))
                    else:
                        assert KIND_CODE[kind] > 0, ("unbounded output", name, s, k, i, out[i], ref[i])
                        if np.isnan(out[i]) == np.isnan(ref[i]):
                            bs, bv = "-1.0", -1.0
                        else:
                            assert KIND_CODE[kind] == 2, ("NaN-ness differs", name, s, k, i, out[i], ref[i])
                            bs, bv = "-2.0", -2.0
                    cs.bound.append(bv)
                    cs.bound_s.append(bs)
                cs.out32.append(o32.v.copy())
                cs.ref64.append(ref.copy())
                cs.e32.append(o32.e.copy())
                cs.e64.append(o64.e.copy())
    return cs


def build_cases():
    cases = []
    noflush = lambda f: not f & FLUSH_SUBNORMAL  # noqa: E731
    base = lambda f: not f & (DECOUPLED_DECAY | NESTEROV | FLUSH_SUBNORMAL)  # noqa: E731  (RMSProp's classes of 0.1)

    def class_name(rule, sname, flags, on):
        return "%s/%s/%s/%s" % (rule, sname, flag_name(flags), on_name(rule, on))

    for rule in RULE_ORDER:
        # every class without FLUSH_SUBNORMAL with every set
        for (sname, hp_on, n, which, kind) in SETS[rule]:
            cls = classes(rule, hp_on, base if which == "base" else noflush)
            if rule == "rmsprop" and which == "all":  # the classes of 0.1 first, in their order
                cls = sorted(cls, key=lambda fo: (not base(fo[0]),))
            for flags, on in cls:
                hp = hp_with(rule, hp_on, on)
                nn = n if rule == "rmsprop" and base(flags) else NEW_N
                cases.append(run_case(rule, class_name(rule, sname, flags, on), hp, flags, nn, 1, kind))
        # every class with FLUSH_SUBNORMAL once, the sets in turn (flush_probe: the last element)
        sets = SETS[rule]
        flush_cls = classes(rule, sets[0][1], lambda f: f & FLUSH_SUBNORMAL)
        for j, (flags, on) in enumerate(flush_cls):
            sname, hp_on, _, _, kind = sets[j % len(sets)]
            hp = hp_with(rule, hp_on, on)
            assert refusal(rule, hp, flags) is None
            cases.append(run_case(rule, class_name(rule, sname, flags, on), hp, flags, NEW_N, 1, kind))
        # chains
        for sname, hp, n, flag_sets in CHAINS[rule]:
            for flags in flag_sets:
                if flags & ~RULE_FLAGS[rule]:
                    continue
                on = {nm: hp[idx] != 0 for nm, idx in RULES[rule].nz}
                if rule == "rmsprop":
                    name = "rmsprop/%s/%s/wd1/mom1/%dsteps" % (sname, flag_name(flags), CHAIN_STEPS)
                else:
                    name = "%s/%s/%s/%s/%dsteps" % (rule, sname, flag_name(flags), on_name(rule, on), CHAIN_STEPS)
                nn = n if rule == "rmsprop" and base(flags) else NEW_N
                cases.append(run_case(rule, name, hp, flags, nn, CHAIN_STEPS, "normal",
                                      flags_later=flags & ~INIT_MOMENTUM))
        # zero gradients through the subnormal range, without and with the flush
        hp, flag_sets = DECAY_CHAINS[rule]
        steps = CHAIN_STEPS if rule == "adagrad" else DECAY_STEPS
        on = {nm: hp[idx] != 0 for nm, idx in RULES[rule].nz}
        for flags in flag_sets:
            for fl in (0, FLUSH_SUBNORMAL):
                name = "%s/subnormal/%s/%s/%dsteps" % (rule, flag_name(flags | fl), on_name(rule, on), steps)
                cases.append(run_case(rule, name, hp, flags | fl, 4, steps, "decay"))
        for fn, prule, hp, flags, init in PRESETS:
            if prule == rule:
                name = "%s/preset/%s/%dsteps" % (rule, fn, PRESET_STEPS)
                cases.append(run_case(rule, name, hp, flags, NEW_N, PRESET_STEPS, "fresh", init=init))
        hp, flag_sets = SPECIAL_CASES[rule]
        for flags in flag_sets + (flag_sets[0] | FLUSH_SUBNORMAL, flag_sets[-1] | FLUSH_SUBNORMAL):
            name = "%s/special/%s" % (rule, flag_name(flags))
            cases.append(run_case(rule, name, hp, flags, len(SPECIAL), 1, "special"))
        hp, flag_sets, hp0, flag_sets0 = FLUSH_SPECIAL_CASES[rule]
        nf = len(flush_special(rule))
        for sname, h, fsets in (("flush", hp, flag_sets), ("flush-eps0", hp0, flag_sets0)):
            for flags in fsets:
                name = "%s/%s/%s" % (rule, sname, flag_name(flags | FLUSH_SUBNORMAL))
                cases.append(run_case(rule, name, h, flags | FLUSH_SUBNORMAL, nf, 1, "fspecial"))
    return cases


# ===========================================================================
# --selftest: the bounds against the exact update, evaluated with 80-digit decimal
# arithmetic (independent of the error analysis and of NumPy).
# ===========================================================================
def selftest(cases):
    worst = {}
    checked = 0
    with localcontext() as ctx:
        ctx.prec = 80
        ctx.traps[InvalidOperation] = ctx.traps[DivisionByZero] = False  # NaN and Inf inputs: NaN, Inf
        for cs in cases:
            spec = RULES[cs.rule]
            K, n = cs.K, cs.n
            ins = [cs.inputs[0]] + cs.inputs[2:2 + K - 1]
            st = [[Decimal(float(a[i])) for a in ins] for i in range(n)]
            for s in range(cs.steps):
                hs = hp_at(cs.rule, cs.hp, s)
                fs = cs.flags if s == 0 else cs.flags_later
                for i in range(n):
                    if all(x is not None for x in st[i]):
                        st[i] = spec.exact(hs, fs, st[i], Decimal(float(cs.grads[s][i])))
                    else:
                        st[i] = [None] * K
                for k in range(K):
                    out, ref = cs.out32[s * K + k], cs.ref64[s * K + k]
                    e32, e64 = cs.e32[s * K + k], cs.e64[s * K + k]
                    for i in range(n):
                        if cs.bound[(s * K + k) * n + i] < 0:
                            continue
                        x = st[i][k]
                        assert x is not None and x.is_finite(), (cs.name, s, k, i, x)
                        d32 = abs(Decimal(float(out[i])) - x)
                        d64 = abs(Decimal(float(ref[i])) - x)
                        assert d32 <= Decimal(float(e32[i])), (cs.name, s, k, i, d32, e32[i])
                        assert d64 <= Decimal(float(e64[i])), (cs.name, s, k, i, d64, e64[i])
                        w = worst.setdefault(cs.rule, [0.0, 0.0, 0])
                        if e32[i] > 0:
                            w[0] = max(w[0], float(d32) / float(e32[i]))
                        if e64[i] > 0:
                            w[1] = max(w[1], float(d64) / float(e64[i]))
                        w[2] += 1
                        checked += 1
    for rule in RULE_ORDER:
        w = worst.get(rule, [0, 0, 0])
        print("selftest %-8s %6d outputs: max |out32 - exact|/E32 = %.3g, max |ref64 - exact|/E64 = %.3g"
              " (both must be <= 1)" % (rule, w[2], w[0], w[1]), file=sys.stderr)
    print("selftest: %d outputs checked against the exact update" % checked, file=sys.stderr)


# ===========================================================================
# Output
# ===========================================================================
def u32s(a):
    return ["0x%08xu" % int(x) for x in a.view(np.uint32)]


def emit_rows(lines, items, per_line):
    for i in range(0, len(items), per_line):
        lines.append("    " + ", ".join(items[i:i + per_line]) + ",")


HEADER = """\
/*
 * Golden vectors for tests/test_golden.c.  GENERATED by tests/golden/gen_golden.py:
 * do not edit; regenerate with
 *     /usr/bin/python3 tests/golden/gen_golden.py tests/golden/golden_vectors.inc
 * (ctest's golden_vectors_uptodate checks that this file is what the script writes).
 *
 * Include after defining golden_case and the GOLDEN_<RULE> constants (see
 * test_golden.c).  K = the rule's outputs per step: RMSProp 4 (param, square_avg,
 * momentum_buf, grad_avg), AdaGrad 2 (param, sum), SGD 2 (param, momentum_buf), Adam 4
 * (param, exp_avg, exp_avg_sq, max_exp_avg_sq).  Per case:
 *   hp[]                       the rule's config fields in order (RMSProp lr, alpha, eps,
 *                              weight_decay, momentum; AdaGrad lr, lr_decay, weight_decay,
 *                              eps; SGD lr, momentum, dampening, weight_decay; Adam lr,
 *                              beta1, beta2, eps, weight_decay); step: AdaGrad's and
 *                              Adam's step number of the first step, +1 per further step
 *   flags, flags_later         the flags of step 0 and of the steps after it
 *   unused                     bit k: output k is an array the configuration does not use
 *   special                    0: every bound finite; 1: eps == 0 edge (-1 allowed);
 *                              2: special values and subnormal-state (flush) cases
 *                              (-1 and -2 allowed)
 *   golden_in[in_off ...]      float32 bits: param, grad (step 0), the state arrays in
 *                              output order (n each), then the gradients of steps
 *                              1 .. steps-1 (n each)
 *   golden_out32[out_off ...]  per step the K outputs after the step, float32 bits of a
 *                              NumPy float32 emulation of docs/math.md's op order: BIT-EXACT
 *   golden_ref64[out_off ...]  same layout: float64 reference from the frameworks'
 *                              formulas (the case's `ref`), exact double hyperparameters,
 *                              an independent float64 trajectory over multi-step cases
 *   golden_bound[out_off ...]  same layout: |out32 - ref64| <= bound.  -1: no bound,
 *                              NaN-ness of out32 and ref64 must agree; -2: their
 *                              NaN-ness differs (float32 overflow, or the framework's
 *                              op order on an infinite input): bits only.
 *   golden_ref64 and golden_bound have golden_out32's layout (its comments name the
 *   cases).
 * Arrays a configuration does not use are expected unchanged.
 *
 * The bound: both evaluations are rounded versions of the same exact real update X
 * (float32 inputs, exact double hyperparameters).  Forward error analysis carries a
 * rigorous bound on |computed - exact| for every intermediate, unit roundoff u = 2^-24
 * per float32 op and 2^-53 per float64 op, constants' rounding from double to float32
 * included (computed exactly):
 *   x +- y: ex + ey + u|z|            x * y: |x|ey + |y|ex + ex*ey + u|z| + eta
 *   x / y: (ex + |x/y|ey)/(|y| - ey) + u|z| + eta
 *   sqrt(x): min(ex/(sqrt(x) + sqrt(max(x - ex, 0))), sqrt(ex)) + u|z|
 *   max(x, y): max(ex, ey)
 *   flush(x) (FLUSH_SUBNORMAL, float32): 0 with (ex + |x|)(1 + 2^-50) where |x| < FLT_MIN
 * (eta = 2^-149 resp. 2^-1074 for underflow; the references never flush: X is the update
 * without the flush).  bound = 1.01 * (E32 + E64), rounded up to 3 significant digits,
 * where E32 bounds |out32 - X| and E64 |ref64 - X|.
 */
"""


def render(cases):
    lines = [HEADER.rstrip("\n"), ""]
    lines.append("#define GOLDEN_N_CASES %d" % len(cases))
    lines.append("")
    lines.append("/* name, rule, ref, hp[5], step, flags, flags_later, unused, special, n, steps, in_off,"
                 " out_off */")
    lines.append("static const golden_case golden_cases[GOLDEN_N_CASES] = {")
    in_off = out_off = 0
    for cs in cases:
        spec = RULES[cs.rule]
        si = spec.step_idx
        hp5 = [float(x) for j, x in enumerate(cs.hp) if j != si] + [0.0] * 5
        hp5 = hp5[:5]
        step = int(cs.hp[si]) if si is not None else 0
        refs = sorted(set(cs.refs), key=cs.refs.index)
        comment = " ".join("%s %r" % (nm, x) for nm, x in zip(spec.hp_names, cs.hp))
        lines.append("    {\"%s\", %s, \"%s\", {%s}, %dLL, %uu, %uu, %uu, %uu, %uu, %uu, %uu, %uu}, /* %s */"
                     % (cs.name, spec.cname, " / ".join(refs), ", ".join(hexd(x) for x in hp5), step,
                        cs.flags, cs.flags_later, cs.unused, KIND_CODE[cs.kind], cs.n, cs.steps, in_off,
                        out_off, comment))
        cs.in_off, cs.out_off = in_off, out_off
        in_off += cs.n * (cs.K + cs.steps)
        out_off += cs.n * cs.K * cs.steps
    lines.append("};")
    lines.append("")
    lines.append("#define GOLDEN_IN_LEN %d" % in_off)
    lines.append("#define GOLDEN_OUT_LEN %d" % out_off)
    lines.append("")
    lines.append("static const uint32_t golden_in[GOLDEN_IN_LEN] = {")
    for cs in cases:
        names = ", ".join(("param", "grad") + RULES[cs.rule].outs[1:])
        lines.append("    /* %s: %s%s */" % (cs.name, names, ", grads of steps 1..%d" % (cs.steps - 1)
                                               if cs.steps > 1 else ""))
        for a in cs.inputs:
            emit_rows(lines, u32s(a), 10)
    lines.append("};")
    lines.append("")
    lines.append("static const uint32_t golden_out32[GOLDEN_OUT_LEN] = {")
    for cs in cases:
        lines.append("    /* %s */" % cs.name)
        for a in cs.out32:
            emit_rows(lines, u32s(a), 10)
    lines.append("};")
    lines.append("")
    lines.append("static const double golden_ref64[GOLDEN_OUT_LEN] = {")
    for cs in cases:
        for a in cs.ref64:
            emit_rows(lines, [hexd(float(x)) for x in a], 5)
    lines.append("};")
    lines.append("")
    lines.append("static const double golden_bound[GOLDEN_OUT_LEN] = {")
    for cs in cases:
        emit_rows(lines, cs.bound_s, 10)
    lines.append("};")
    lines.append("")
    return "\n".join(lines)


def _q(rs):
    rs = sorted(rs)
    return len(rs), rs[len(rs) // 2], rs[int(len(rs) * 0.9)], rs[-1]


def _line(label, rs):
    return "  %-44s %6d  %7.3g  %7.3g  %7.3g" % ((label,) + _q(rs)) if rs else "  %-44s      0" % label


def case_group(cs):
    """For the report: "subnormal" (the zero-gradient chains), "chain" (the other multi-step
    cases: chains and presets), "single" (one step)."""
    if "/subnormal/" in cs.name:
        return "subnormal"
    return "chain" if cs.steps > 1 else "single"


def print_stats(cases):
    """The report: the observed |out32 - ref64| as a fraction of its bound."""
    out = sys.stderr
    print("Report: |out32 - ref64| / bound for every output with a bound (bound = 1.01 (E32 + E64),\n"
          "rounded up to 3 digits; ratio <= 1 is asserted here and in tests/test_golden.c).  With\n"
          "FLUSH_SUBNORMAL, an output whose bound includes a flush (a state value below FLT_MIN made\n"
          "+0, in this step or before) differs from the exact update by up to the flushed value\n"
          "itself: its ratio is near 1/1.01; the lines below \"all outputs\" leave those out.", file=out)
    print("  %-44s %6s  %7s  %7s  %7s" % ("", "n", "median", "p90", "max"), file=out)
    rows = [(cs, r, bv, o, k, ref, fl) for cs in cases for (r, bv, o, k, ref, fl) in cs.ratios]
    for rule in RULE_ORDER:
        ra = [x for x in rows if x[0].rule == rule and x[2] > 0]
        rr = [x for x in ra if not x[6]]
        ncases = sum(1 for cs in cases if cs.rule == rule)
        nfl = sum(1 for cs in cases if cs.rule == rule and cs.flags & FLUSH_SUBNORMAL)
        print("%s (%d cases, %d with FLUSH_SUBNORMAL)" % (rule, ncases, nfl), file=out)
        print(_line("all outputs", [x[1] for x in ra]), file=out)
        print(_line("a flush in the bound", [x[1] for x in ra if x[6]]), file=out)
        print(_line("no flush in the bound", [x[1] for x in rr]), file=out)
        for k, nm in enumerate(RULES[rule].outs):
            print(_line(nm, [x[1] for x in rr if x[4] == k]), file=out)
        for ref in sorted({x[5] for x in rr}):
            print(_line("vs " + ref, [x[1] for x in rr if x[5] == ref]), file=out)
            print(_line("vs " + ref + ": param", [x[1] for x in rr if x[5] == ref and x[4] == 0]), file=out)
        # how tight: the bound in float32 ulps of the output, and the float64 reference's share
        ul = [x[2] / float(np.spacing(np.float32(abs(x[3])))) for x in ra if x[3] != 0]
        n, med, p90, mx = _q(ul)
        e64 = [float(cs.e64[i // cs.n][i % cs.n] / (cs.e32[i // cs.n][i % cs.n] + cs.e64[i // cs.n][i % cs.n]))
               for cs in cases if cs.rule == rule for i, b in enumerate(cs.bound)
               if b > 0 and cs.e32[i // cs.n][i % cs.n] > 0]
        print("  bound in float32 ulps of the output: median %.3g, p90 %.3g, max %.3g;\n"
              "  the float64 reference's share E64 / (E32 + E64) at most %.2g (where E32 > 0)"
              % (med, p90, mx, max(e64)), file=out)
    torch_adam = [x[1] for x in rows if x[0].rule == "adam" and x[2] > 0 and x[4] == 0
                  and x[5].startswith("torch") and not x[6]]
    if torch_adam:
        n, med, p90, mx = _q(torch_adam)
        print("Adam's param against torch.optim.Adam/AdamW, whose formula differs algebraically (torch:\n"
              "(lr/bc1) m / (sqrt(v)/sqrt(bc2) + eps); rmsfuse: (lr sqrt(bc2)/bc1) m / (sqrt(v) + eps\n"
              "sqrt(bc2)), the same real number): %d outputs without a flush, the error is a median\n"
              "%.3g, p90 %.3g and at most %.3g of its bound." % (n, med, p90, mx), file=out)
    for label, sel in (("all rules", lambda x: True), ("  no flush in the bound", lambda x: not x[6]),
                       ("  a flush in the bound", lambda x: x[6])):
        allr = [x[1] for x in rows if x[2] > 0 and sel(x)]
        n, med, p90, mx = _q(allr)
        print("%s: %d bounded outputs, median %.3g, p90 %.3g, max %.3g of the bound" % (label, n, med, p90, mx),
              file=out)
    big = [(x[2] / float(np.spacing(np.float32(abs(x[3])))), case_group(x[0])) for x in rows
           if x[2] > 0 and x[3] != 0]
    big = [b for b in big if b[0] > 1e3]
    print("bound above 10^3 float32 ulps of the output: %d outputs (at most %.2g); %d in the zero-gradient\n"
          "chains through the subnormal range, %d in the other multi-step cases, %d in one-step cases"
          % (len(big), max([b[0] for b in big] or [0]), sum(1 for b in big if b[1] == "subnormal"),
             sum(1 for b in big if b[1] == "chain"), sum(1 for b in big if b[1] == "single")), file=out)
    nz = sum(1 for cs in cases for b in cs.bound if b == 0.0)
    nm1 = sum(1 for cs in cases for b in cs.bound if b == -1.0)
    nm2 = sum(1 for cs in cases for b in cs.bound if b == -2.0)
    print("outputs %d: bound 0 (unchanged or exact) %d, NaN-ness only (-1) %d, bits only (-2) %d"
          % (sum(len(cs.bound) for cs in cases), nz, nm1, nm2), file=out)


def check_coverage(cases):
    """Every class of every rule has a case; every preset has one."""
    for rule in RULE_ORDER:
        spec = RULES[rule]
        want = {(f, tuple(sorted(on.items()))) for f, on in classes(rule, SETS[rule][0][1])}
        have = set()
        for cs in cases:
            if cs.rule == rule:
                on = {nm: cs.hp[idx] != 0 for nm, idx in spec.nz}
                have.add((cs.flags, tuple(sorted(on.items()))))
        assert want <= have, (rule, sorted(want - have)[:5])
    assert len({fn for fn, *_ in PRESETS}) == len(PRESETS)


def main(argv):
    opts = {"--stats", "--selftest"}
    args = [a for a in argv[1:] if a not in opts]
    stats = "--stats" in argv[1:]
    self_test = "--selftest" in argv[1:]
    check = False
    if args and args[0] == "--check":
        check = True
        args = args[1:]
    if len(args) != 1:
        print(__doc__.split("\nImportable API")[0].split("\n\n", 1)[1], file=sys.stderr)
        return 2
    path = args[0]
    cases = build_cases()
    check_coverage(cases)
    text = render(cases)
    if self_test:
        selftest(cases)
    if stats:
        print_stats(cases)
        print("size %d bytes, %d lines" % (len(text.encode()), text.count("\n")), file=sys.stderr)
    if check:
        try:
            with open(path, encoding="utf-8", newline="") as fh:
                old = fh.read()
        except OSError as exc:
            print("gen_golden.py --check: cannot read %s: %s" % (path, exc))
            return 1
        if old == text:
            print("%s is up to date (%d cases)" % (path, len(cases)))
            return 0
        a, b = old.split("\n"), text.split("\n")
        for i in range(max(len(a), len(b))):
            la = a[i] if i < len(a) else "<end of file>"
            lb = b[i] if i < len(b) else "<end of file>"
            if la != lb:
                print("%s differs from the generator's output at line %d:\n  file:      %s\n"
                      "  generated: %s\nregenerate with: /usr/bin/python3 %s %s"
                      % (path, i + 1, la[:200], lb[:200], argv[0], path))
                break
        return 1
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    print("wrote %s: %d cases, %d bytes" % (path, len(cases), len(text.encode())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

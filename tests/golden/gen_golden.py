#!/usr/bin/env python3
"""Golden vectors for rmsfuse's RMSProp update (tests/test_golden.c).

Usage (Debian's /usr/bin/python3, which has NumPy):

    /usr/bin/python3 tests/golden/gen_golden.py OUTFILE          write OUTFILE
    /usr/bin/python3 tests/golden/gen_golden.py --check OUTFILE  regenerate in memory and
                                                                 compare: exit 0 identical,
                                                                 1 different, 77 no NumPy
    add --stats to either form to print |out - ref64| / bound statistics on stderr,
    and --selftest to check the bounds against an 80-digit decimal evaluation of the
    exact update (|out32 - exact| <= E32 and |ref64 - exact| <= E64, see below).

The generator is independent of the C code: it never calls the library.  It is
deterministic: its random inputs come from a splitmix64 generator in pure
Python, seeded with the CRC-32 of each case's name, and are built from integer
bits with exact operations only (no libm calls), so the output does not depend
on the platform, the time, or the NumPy version's random streams.

Cases
-----
Every one of the 64 kernel variants (the flag bits CENTERED=1, EPS_IN_SQRT=2,
LR_IN_MOMENTUM=4, MAXIMIZE=8, times weight_decay zero/non-zero, times momentum
zero/non-zero) is run with each of several hyperparameter sets: the PyTorch
preset (alpha 0.99, eps 1e-8), the TensorFlow ApplyRMSProp preset (rho 0.9, eps
1e-10), the Keras preset (rho 0.9, eps 1e-7), two others with non-trivial
weight decay and momentum, and an edge set with eps == 0 in which two elements
per case have zero gradient and zero state (0/0: NaN).  A further group runs
several consecutive steps on the same state.

For each case and step the file holds
  (a) the float32 inputs as uint32 bit patterns,
  (b) the expected float32 outputs (param, square_avg, momentum_buf, grad_avg) as
      bit patterns, from a NumPy float32 emulation of the op order of
      shared/spec/update-rules.md; every intermediate is a float32 array (asserted),
      and the constants are derived in double and rounded once to float32 exactly
      as the spec says;
  (c) a float64 reference from the frameworks' own formulas evaluated in float64
      with the exact double hyperparameters: torch.optim.RMSprop for variants
      without EPS_IN_SQRT and LR_IN_MOMENTUM (addcmul as self + (value*t1)*t2,
      ATen's lerp for the centred average, addcdiv as self + (value*t1)/t2);
      TensorFlow ApplyRMSProp/ApplyCenteredRMSProp for variants with both
      (ms += (g*g - ms)*(1-rho), mg += (g - mg)*(1-rho), mom = mom*momentum +
      (g*lr)/sqrt(denom), var -= mom); the spec's formula in float64 for the mixed
      variants.  MAXIMIZE negates g and weight decay adds wd*param to g first, in
      all three.  Arrays a variant does not use are expected unchanged (TF's op
      would overwrite mom with lr*g/d when momentum is 0; the spec leaves it alone).
  (d) an absolute error bound for |float32 output - float64 reference|.

The bound
---------
All formulas above are the same function in exact real arithmetic; they differ
only in rounding.  Let X be the exact real result of the update applied to the
float32 inputs with the exact double hyperparameters.  For both evaluations (the
float32 one in the spec's order, the float64 one in the framework's order) the
script carries, next to every computed intermediate x^, a bound ex >= |x^ - x|
(x the exact intermediate), with u = 2^-24 (float32) or 2^-53 (float64) and
round-to-nearest, fl(t) = t / (1 + d), |d| <= u, hence |fl(t) - t| <= u |fl(t)|:

  constants   float32 a, c, e, m, w, l, nl: |(float)K - K_exact| computed exactly
              with fractions (c = (float)(1.0 - alpha) is compared with 1 - alpha,
              so the double subtraction's rounding is included); float64
              hyperparameters are exact, float64 1 - alpha is an ordinary op
  z = x +- y  ez = ex + ey + u|z|
  z = x * y   ez = |x|ey + |y|ex + ex ey + u|z| + eta
  z = x / y   ez = (ex + |x/y| ey) / (|y| - ey) + u|z| + eta     (requires |y| > ey)
  z = sqrt(x) ez = min(ex / (sqrt(x) + sqrt(max(x - ex, 0))), sqrt(ex)) + u|z|
              (requires x - ex >= 0: otherwise the exact radicand may be negative)
  z = -x      ez = ex

with eta = 2^-149 (float32) or 2^-1074 (float64) for underflow.  These are
rigorous, not only first-order, apart from the rounding of the bound arithmetic
itself in double (relative ~1e-16 per op).  Multi-step cases propagate the state
bounds from step to step, so the float64 reference is an independent float64
trajectory.  The stored bound is

  bound = 1.01 * (E32 + E64)

rounded up to 3 significant decimal digits, where E32 bounds |out32 - X| and E64
bounds |ref64 - X|; so |out32 - ref64| <= bound.  The 1.01 covers the rounding of
the bound computation (and any second-order slack).  When the analysis cannot
give a finite bound (0/0, a possibly negative radicand) or an output or the
reference is not finite, the stored bound is -1: the test then only checks that
NaN-ness of the output and the reference agree.  Only the eps == 0 edge set has
such outputs (asserted); all other inputs are drawn so that the centred
s = v - ga^2 stays well above its error bound and no divisor is near 0.

The script checks its own output before writing: its float32 emulation and the
value path of the error analysis agree bit for bit, and |out32 - ref64| <= bound
holds in double arithmetic exactly as the C test evaluates it.
"""

import sys
import zlib
from decimal import Decimal, localcontext, ROUND_CEILING
from fractions import Fraction

try:
    import numpy as np
except ImportError:  # ctest: SKIP_RETURN_CODE 77
    print("gen_golden.py: NumPy is not available: skipped")
    sys.exit(77)

CENTERED, EPS_IN_SQRT, LR_IN_MOMENTUM, MAXIMIZE = 1, 2, 4, 8
V_WD, V_MOM = 16, 32
TF_FLAGS = EPS_IN_SQRT | LR_IN_MOMENTUM
SAFETY = 1.01

# ---------------------------------------------------------------------------
# Hyperparameter sets.  wd / mom are the values used by the variants with
# weight decay / momentum; the other variants use 0.
#   name, lr, alpha, eps, wd, mom, elements per case
SETS = [
    ("torch", 0.01, 0.99, 1e-8, 1e-2, 0.9, 10),    # torch.optim.RMSprop preset
    ("tf", 0.001, 0.9, 1e-10, 1e-4, 0.9, 10),      # TF ApplyRMSProp preset
    ("keras", 0.001, 0.9, 1e-7, 4e-3, 0.5, 10),    # Keras RMSprop preset
    ("misc", 0.1, 0.95, 1e-6, 0.3, 0.99, 10),
    ("coarse", 3e-4, 0.5, 1e-4, 0.05, 0.7, 10),    # alpha 0.5: ATen lerp's other branch
    ("eps0", 0.01, 0.999, 0.0, 1e-3, 0.9, 6),      # edge: eps == 0, 0/0 elements
]
# Several consecutive steps, every flag combination, weight decay and momentum on.
CHAIN = ("chain", 0.02, 0.8, 1e-5, 2e-2, 0.95, 8, 6)  # ..., n, steps

# ---------------------------------------------------------------------------
# Deterministic random numbers (splitmix64), exact constructions only.
M64 = (1 << 64) - 1


class Rng:
    def __init__(self, seed):
        self.s = seed & M64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
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
    """Round a Python float (double) to float32 once."""
    return float(np.float32(x))


class Fmt:
    def __init__(self, name, dtype, u, eta):
        self.name, self.dtype, self.u, self.eta = name, dtype, u, eta


F32 = Fmt("float32", np.float32, 2.0**-24, 2.0**-149)
F64 = Fmt("float64", np.float64, 2.0**-53, 2.0**-1074)


# ---------------------------------------------------------------------------
# Values with forward error bounds.  v: computed values (dtype of the format,
# asserted at every op: no silent promotion); e: float64 bound on |v - exact|.
class EV:
    __slots__ = ("v", "e", "f")

    def __init__(self, v, e, f):
        assert isinstance(v, np.ndarray) and v.dtype == f.dtype, (v.dtype, f.name)
        self.v, self.f = v, f
        self.e = np.broadcast_to(np.asarray(e, dtype=np.float64), v.shape).copy()

    def a64(self):
        return np.abs(self.v.astype(np.float64))


def _mk(z, e, f):
    return EV(z, e, f)


def ev_add(x, y):
    z = x.v + y.v
    return _mk(z, x.e + y.e + x.f.u * np.abs(z.astype(np.float64)), x.f)


def ev_sub(x, y):
    z = x.v - y.v
    return _mk(z, x.e + y.e + x.f.u * np.abs(z.astype(np.float64)), x.f)


def ev_mul(x, y):
    z = x.v * y.v
    e = x.a64() * y.e + y.a64() * x.e + x.e * y.e + x.f.u * np.abs(z.astype(np.float64)) + x.f.eta
    return _mk(z, e, x.f)


def ev_div(x, y):
    z = x.v / y.v
    ay = y.a64()
    den = ay - y.e
    q = x.a64() / ay * (1.0 + 2.0**-50)  # |x/y|, rounded up
    ok = den > 0
    e = np.where(ok, (x.e + q * y.e) / np.where(ok, den, 1.0), np.inf)
    e = e + x.f.u * np.abs(z.astype(np.float64)) + x.f.eta
    return _mk(z, e, x.f)


def ev_sqrt(x):
    z = np.sqrt(x.v)
    ax = x.v.astype(np.float64)
    lo = ax - x.e
    ok = lo >= 0  # the exact radicand is surely >= 0
    sx = np.sqrt(np.where(ok, ax, 0.0))
    sl = np.sqrt(np.where(ok, lo, 0.0))
    den = sx + sl
    e1 = np.where(den > 0, x.e / np.where(den > 0, den, 1.0), np.inf)
    e = np.where(x.e == 0, 0.0, np.minimum(e1, np.sqrt(x.e)))
    e = np.where(ok, e, np.inf) + x.f.u * np.abs(z.astype(np.float64))
    return _mk(z, e, x.f)


def ev_neg(x):
    return _mk(-x.v, x.e, x.f)


def ev_full(n, value, err, f):
    return EV(np.full(n, value, dtype=f.dtype), err, f)


def const32(n, value64, exact):
    """float32 constant (float)value64 (value64 a double), error vs. exact (Fraction)."""
    fv = np.float32(value64)
    err = abs(Fraction(float(fv)) - exact)
    return ev_full(n, fv, float(err) * (1.0 + 2.0**-50), F32)


def const64(n, value):
    return ev_full(n, value, 0.0, F64)


class State:
    """param, square_avg, momentum_buf, grad_avg (EV each)."""

    def __init__(self, p, v, b, ga):
        self.p, self.v, self.b, self.ga = p, v, b, ga

    def outs(self):
        return (self.p, self.v, self.b, self.ga)


def state_from_f32(arrs, f):
    """Exact float32 inputs as a State of format f (error 0)."""
    return State(*(EV(a.astype(f.dtype), 0.0, f) for a in arrs))


# ---------------------------------------------------------------------------
# The spec's update, op for op, on tracked values (float32 with the C-style
# constants, or float64 with the exact hyperparameters for mixed variants).
def spec_step(K, st, g, flags, wd_on, mom_on):
    if flags & MAXIMIZE:
        g = ev_neg(g)
    if wd_on:
        g = ev_add(g, ev_mul(K["w"], st.p))
    v = ev_add(ev_mul(st.v, K["a"]), ev_mul(ev_mul(K["c"], g), g))
    if flags & CENTERED:
        ga = ev_add(ev_mul(st.ga, K["a"]), ev_mul(K["c"], g))
        s = ev_sub(v, ev_mul(ga, ga))
    else:
        ga = st.ga
        s = v
    if flags & EPS_IN_SQRT:
        d = ev_sqrt(ev_add(s, K["e"]))
    else:
        d = ev_add(ev_sqrt(s), K["e"])
    b = st.b
    if flags & LR_IN_MOMENTUM:
        u = ev_div(ev_mul(K["l"], g), d)
        if mom_on:
            b = ev_add(ev_mul(st.b, K["m"]), u)
            p = ev_sub(st.p, b)
        else:
            p = ev_sub(st.p, u)
    else:
        if mom_on:
            b = ev_add(ev_mul(st.b, K["m"]), ev_div(g, d))
            p = ev_add(st.p, ev_mul(K["nl"], b))
        else:
            p = ev_add(st.p, ev_div(ev_mul(K["nl"], g), d))
    return State(p, v, b, ga)


def consts32(n, hp):
    lr, alpha, eps, wd, mom = hp
    return {
        "a": const32(n, alpha, Fraction(alpha)),
        "c": const32(n, 1.0 - alpha, 1 - Fraction(alpha)),
        "e": const32(n, eps, Fraction(eps)),
        "m": const32(n, mom, Fraction(mom)),
        "w": const32(n, wd, Fraction(wd)),
        "l": const32(n, lr, Fraction(lr)),
        "nl": const32(n, -lr, -Fraction(lr)),
    }


def consts64(n, hp):
    lr, alpha, eps, wd, mom = hp
    one = const64(n, 1.0)
    return {
        "a": const64(n, alpha),
        "c": ev_sub(one, const64(n, alpha)),  # 1.0 - alpha in double: one rounding
        "e": const64(n, eps),
        "m": const64(n, mom),
        "w": const64(n, wd),
        "l": const64(n, lr),
        "nl": const64(n, -lr),
    }


def pre_grad(st, g, flags, wd_on, wd):
    if flags & MAXIMIZE:
        g = ev_neg(g)
    if wd_on:
        g = ev_add(g, ev_mul(const64(len(g.v), wd), st.p))
    return g


def torch_step(hp, st, g, flags, wd_on, mom_on):
    """torch.optim.RMSprop (_single_tensor_rmsprop) in float64."""
    lr, alpha, eps, wd, mom = hp
    n = len(g.v)
    g = pre_grad(st, g, flags, wd_on, wd)                          # grad.add(param, alpha=wd)
    w = ev_sub(const64(n, 1.0), const64(n, alpha))                 # 1 - alpha (Python float)
    v = ev_add(ev_mul(st.v, const64(n, alpha)), ev_mul(ev_mul(w, g), g))  # mul_(alpha).addcmul_
    if flags & CENTERED:
        # grad_avg.lerp_(grad, 1 - alpha), ATen: |w| < 0.5 ? self + w*(end - self)
        #                                              : end - (end - self)*(1 - w)
        diff = ev_sub(g, st.ga)
        if abs(float(w.v[0])) < 0.5:
            ga = ev_add(st.ga, ev_mul(w, diff))
        else:
            ga = ev_sub(g, ev_mul(diff, ev_sub(const64(n, 1.0), w)))
        # square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_().add_(eps)
        s = ev_add(v, ev_mul(ev_mul(const64(n, -1.0), ga), ga))
        avg = ev_add(ev_sqrt(s), const64(n, eps))
    else:
        ga = st.ga
        avg = ev_add(ev_sqrt(v), const64(n, eps))                  # square_avg.sqrt().add_(eps)
    b = st.b
    if mom_on:
        # buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
        b = ev_add(ev_mul(st.b, const64(n, mom)), ev_div(ev_mul(const64(n, 1.0), g), avg))
        p = ev_add(st.p, ev_mul(const64(n, -lr), b))
    else:
        p = ev_add(st.p, ev_div(ev_mul(const64(n, -lr), g), avg))  # addcdiv_(grad, avg, value=-lr)
    return State(p, v, b, ga)


def tf_step(hp, st, g, flags, wd_on, mom_on):
    """TensorFlow ApplyRMSProp / ApplyCenteredRMSProp (training_ops.cc) in float64."""
    lr, alpha, eps, wd, mom = hp
    n = len(g.v)
    g = pre_grad(st, g, flags, wd_on, wd)
    omr = ev_sub(const64(n, 1.0), const64(n, alpha))               # 1 - rho
    v = ev_add(st.v, ev_mul(ev_sub(ev_mul(g, g), st.v), omr))      # ms += (g*g - ms)*(1-rho)
    if flags & CENTERED:
        ga = ev_add(st.ga, ev_mul(ev_sub(g, st.ga), omr))          # mg += (g - mg)*(1-rho)
        denom = ev_add(ev_sub(v, ev_mul(ga, ga)), const64(n, eps))  # (ms - mg^2) + eps
    else:
        ga = st.ga
        denom = ev_add(v, const64(n, eps))                         # ms + eps
    u = ev_div(ev_mul(g, const64(n, lr)), ev_sqrt(denom))          # (grad*lr) / sqrt(denom)
    b = st.b
    if mom_on:
        b = ev_add(ev_mul(st.b, const64(n, mom)), u)               # mom = mom*momentum + ...
        p = ev_sub(st.p, b)                                        # var -= mom
    else:
        p = ev_sub(st.p, u)                                        # mom would be u; var -= u
    return State(p, v, b, ga)


def ref_step(hp, st, g, flags, wd_on, mom_on):
    if flags & TF_FLAGS == 0:
        return torch_step(hp, st, g, flags, wd_on, mom_on)
    if flags & TF_FLAGS == TF_FLAGS:
        return tf_step(hp, st, g, flags, wd_on, mom_on)
    return spec_step(consts64(len(g.v), hp), st, g, flags, wd_on, mom_on)


# ---------------------------------------------------------------------------
# Plain float32 emulation of the spec (no error tracking): cross-checks the
# value path of spec_step.
def _c(x):
    assert isinstance(x, np.ndarray) and x.dtype == np.float32, x
    return x


def emulate_f32(hp, arrs, grad, flags, wd_on, mom_on):
    lr, alpha, eps, wd, mom = hp
    n = len(grad)
    K = lambda x: np.full(n, np.float32(x), dtype=np.float32)  # noqa: E731
    a, c, e, m, w = K(alpha), K(1.0 - alpha), K(eps), K(mom), K(wd)
    l, nl = K(lr), K(-lr)
    p, v, b, ga = (_c(x.copy()) for x in arrs)
    g = _c(grad.copy())
    if flags & MAXIMIZE:
        g = _c(-g)
    if wd_on:
        g = _c(g + _c(w * p))
    v = _c(_c(v * a) + _c(_c(c * g) * g))
    if flags & CENTERED:
        ga = _c(_c(ga * a) + _c(c * g))
        s = _c(v - _c(ga * ga))
    else:
        s = v
    d = _c(np.sqrt(_c(s + e))) if flags & EPS_IN_SQRT else _c(_c(np.sqrt(s)) + e)
    if flags & LR_IN_MOMENTUM:
        u = _c(_c(l * g) / d)
        if mom_on:
            b = _c(_c(b * m) + u)
            p = _c(p - b)
        else:
            p = _c(p - u)
    else:
        if mom_on:
            b = _c(_c(b * m) + _c(g / d))
            p = _c(p + _c(nl * b))
        else:
            p = _c(p + _c(_c(nl * g) / d))
    return [p, v, b, ga]


# ---------------------------------------------------------------------------
# Inputs.
def flag_name(flags):
    parts = [nm for bit, nm in ((CENTERED, "C"), (EPS_IN_SQRT, "ES"), (LR_IN_MOMENTUM, "LM"),
                                (MAXIMIZE, "MX")) if flags & bit]
    return "|".join(parts) if parts else "plain"


def make_inputs(rng, n, steps, flags, lr, edge):
    """param, square_avg, momentum_buf, grad_avg, and `steps` gradients (float32 arrays).

    Per element a gradient scale sigma = 2^k (k in [-20, 3]); g ~ sigma, v ~ sigma^2;
    grad_avg = +-sigma*t, t in [1/16, 2), and v = 1.25*ga^2 + sigma^2*U, so the centred
    v - ga^2 >= 0.2 v.  Element 0 has fresh (zero) state; element 1 a zero gradient in
    step 0 (plus weight decay it is still non-zero).  In the edge set elements 0 and 1
    have zero param, gradient and state: with eps == 0 the update is 0/0.
    """
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


# ---------------------------------------------------------------------------
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


def run_case(name, hp, flags, wd_on, mom_on, n, steps, edge):
    lr, alpha, eps, wd, mom = hp
    hp_used = (lr, alpha, eps, wd if wd_on else 0.0, mom if mom_on else 0.0)
    rng = Rng(zlib.crc32(name.encode()))
    arrs, gs = make_inputs(rng, n, steps, flags, lr, edge)
    cs = Case()
    cs.name, cs.hp, cs.flags, cs.n, cs.steps = name, hp_used, flags, n, steps
    cs.inputs = [arrs[0], gs[0], arrs[1], arrs[2], arrs[3]] + gs[1:]
    cs.out32, cs.ref64, cs.bound, cs.bound_s, cs.ratios = [], [], [], [], []
    cs.e32, cs.e64, cs.wd_on, cs.mom_on = [], [], wd_on, mom_on
    K32 = consts32(n, hp_used)
    st32 = state_from_f32(arrs, F32)
    st64 = state_from_f32(arrs, F64)
    plain = [a.copy() for a in arrs]
    with np.errstate(all="ignore"):
        for s in range(steps):
            g32 = EV(gs[s].copy(), 0.0, F32)
            g64 = EV(gs[s].astype(np.float64), 0.0, F64)
            st32 = spec_step(K32, st32, g32, flags, wd_on, mom_on)
            st64 = ref_step(hp_used, st64, g64, flags, wd_on, mom_on)
            plain = emulate_f32(hp_used, plain, gs[s], flags, wd_on, mom_on)
            for k, (o32, o64, pl) in enumerate(zip(st32.outs(), st64.outs(), plain)):
                assert o32.v.dtype == np.float32 and o64.v.dtype == np.float64
                # the emulation and the tracked value path agree bit for bit
                bits_a = o32.v.view(np.uint32)
                bits_b = pl.view(np.uint32)
                same = (bits_a == bits_b) | (np.isnan(o32.v) & np.isnan(pl))
                assert same.all(), (name, s, k)
                out = o32.v.astype(np.float64)
                ref = o64.v
                raw = SAFETY * (o32.e + o64.e)
                for i in range(n):
                    if not (np.isfinite(raw[i]) and np.isfinite(out[i]) and np.isfinite(ref[i])):
                        assert edge, ("unbounded output outside the edge set", name, s, k, i)
                        assert np.isnan(out[i]) == np.isnan(ref[i]), (name, s, k, i)
                        bs, bv = "-1.0", -1.0
                    else:
                        bs, bv = ceil3(float(raw[i]))
                        diff = abs(float(out[i]) - float(ref[i]))  # as the C test computes it
                        assert diff <= bv, (name, s, k, i, diff, bv)
                        cs.ratios.append((diff / bv if bv > 0 else 0.0, bv, float(out[i]), k))
                    cs.bound.append(bv)
                    cs.bound_s.append(bs)
                cs.out32.append(o32.v.copy())
                cs.ref64.append(ref.copy())
                cs.e32.append(o32.e.copy())
                cs.e64.append(o64.e.copy())
    return cs


def build_cases():
    cases = []
    for (sname, lr, alpha, eps, wd, mom, n) in SETS:
        hp = (lr, alpha, eps, wd, mom)
        for var in range(64):
            flags, wd_on, mom_on = var & 15, bool(var & V_WD), bool(var & V_MOM)
            name = "%s/%s/wd%d/mom%d" % (sname, flag_name(flags), wd_on, mom_on)
            cases.append(run_case(name, hp, flags, wd_on, mom_on, n, 1, sname == "eps0"))
    sname, lr, alpha, eps, wd, mom, n, steps = CHAIN
    for flags in range(16):
        name = "%s/%s/wd1/mom1/%dsteps" % (sname, flag_name(flags), steps)
        cases.append(run_case(name, (lr, alpha, eps, wd, mom), flags, True, True, n, steps, False))
    return cases


# ---------------------------------------------------------------------------
# --selftest: the bounds against the exact update, evaluated with 80-digit
# decimal arithmetic (independent of the error analysis and of NumPy).
def exact_step(hp, st, g, flags, wd_on, mom_on):
    D = Decimal
    lr, alpha, eps, wd, mom = (D(x) for x in hp)
    p, v, b, ga = st
    if flags & MAXIMIZE:
        g = -g
    if wd_on:
        g = g + wd * p
    c = 1 - alpha
    v = v * alpha + c * g * g
    if flags & CENTERED:
        ga = ga * alpha + c * g
        s = v - ga * ga
    else:
        s = v
    if s < 0 or (flags & EPS_IN_SQRT and s + eps < 0):
        d = None
    else:
        d = (s + eps).sqrt() if flags & EPS_IN_SQRT else s.sqrt() + eps
    if d is None or d == 0 or p is None:  # undefined update: 0/0 or sqrt of a negative
        return [None, v, b if not mom_on else None, ga]
    if flags & LR_IN_MOMENTUM:
        u = lr * g / d
        if mom_on:
            b = b * mom + u
            p = p - b
        else:
            p = p - u
    else:
        if mom_on:
            b = b * mom + g / d
            p = p - lr * b
        else:
            p = p - lr * g / d
    return [p, v, b, ga]


def selftest(cases):
    worst32 = worst64 = 0.0
    checked = 0
    with localcontext() as ctx:
        ctx.prec = 80
        for cs in cases:
            n = cs.n
            st = [[Decimal(float(cs.inputs[idx][i])) for idx in (0, 2, 3, 4)] for i in range(n)]
            grads = [cs.inputs[1]] + cs.inputs[5:]
            for s in range(cs.steps):
                for i in range(n):
                    st[i] = exact_step(cs.hp, st[i], Decimal(float(grads[s][i])), cs.flags,
                                       cs.wd_on, cs.mom_on)
                for k in range(4):
                    out, ref = cs.out32[s * 4 + k], cs.ref64[s * 4 + k]
                    e32, e64 = cs.e32[s * 4 + k], cs.e64[s * 4 + k]
                    for i in range(n):
                        if cs.bound[(s * 4 + k) * n + i] < 0:
                            continue
                        x = st[i][k]
                        assert x is not None, (cs.name, s, k, i)
                        d32 = abs(Decimal(float(out[i])) - x)
                        d64 = abs(Decimal(float(ref[i])) - x)
                        assert d32 <= Decimal(float(e32[i])), (cs.name, s, k, i, d32, e32[i])
                        assert d64 <= Decimal(float(e64[i])), (cs.name, s, k, i, d64, e64[i])
                        if e32[i] > 0:
                            worst32 = max(worst32, float(d32) / float(e32[i]))
                        if e64[i] > 0:
                            worst64 = max(worst64, float(d64) / float(e64[i]))
                        checked += 1
    print("selftest: %d outputs; max |out32 - exact|/E32 = %.3g, max |ref64 - exact|/E64 = %.3g"
          " (both must be <= 1)" % (checked, worst32, worst64), file=sys.stderr)


ARRAY_NAMES_IN = ("param", "grad", "square_avg", "momentum_buf", "grad_avg")


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
 * Include after defining golden_case (see test_golden.c).  Per case:
 *   golden_in[in_off ...]      float32 bits: param, grad (step 0), square_avg,
 *                              momentum_buf, grad_avg (n each), then the gradients
 *                              of steps 1 .. steps-1 (n each)
 *   golden_out32[out_off ...]  per step: param, square_avg, momentum_buf, grad_avg
 *                              after the step, float32 bits of a NumPy float32
 *                              emulation of the spec's op order: BIT-EXACT
 *   golden_ref64[out_off ...]  same layout: float64 reference from the frameworks'
 *                              formulas (torch.optim.RMSprop without EPS_IN_SQRT and
 *                              LR_IN_MOMENTUM, TF ApplyRMSProp/ApplyCenteredRMSProp
 *                              with both, the spec's formula in float64 otherwise),
 *                              exact double hyperparameters, an independent float64
 *                              trajectory over multi-step cases
 *   golden_bound[out_off ...]  same layout: |out32 - ref64| <= bound.  -1 means "no
 *                              bound: NaN-ness of out32 and ref64 must agree".
 * Arrays a variant does not use (momentum_buf when momentum == 0, grad_avg without
 * CENTERED) are expected unchanged.
 *
 * The bound: both evaluations are rounded versions of the same exact real update X
 * (float32 inputs, exact double hyperparameters).  Forward error analysis carries
 * a rigorous bound on |computed - exact| for every intermediate, unit roundoff
 * u = 2^-24 per float32 op and 2^-53 per float64 op, constants' rounding from
 * double to float32 included (exactly, with fractions):
 *   x +- y: ex + ey + u|z|            x * y: |x|ey + |y|ex + ex*ey + u|z| + eta
 *   x / y: (ex + |x/y|ey)/(|y| - ey) + u|z| + eta
 *   sqrt(x): min(ex/(sqrt(x) + sqrt(max(x - ex, 0))), sqrt(ex)) + u|z|
 * (eta = 2^-149 resp. 2^-1074 for underflow).  bound = 1.01 * (E32 + E64), rounded
 * up to 3 significant digits, where E32 bounds |out32 - X| and E64 |ref64 - X|.
 * Inputs keep the centred s = v - ga^2 far from 0 and divisors far from 0; only
 * the eps == 0 edge set (0/0) has unbounded (-1) entries.
 */
"""


def render(cases):
    lines = [HEADER.rstrip("\n"), ""]
    lines.append("#define GOLDEN_N_CASES %d" % len(cases))
    lines.append("")
    lines.append("/* name, lr, alpha, eps, weight_decay, momentum, flags, n, steps, in_off, out_off */")
    lines.append("static const golden_case golden_cases[GOLDEN_N_CASES] = {")
    in_off = out_off = 0
    for cs in cases:
        lr, alpha, eps, wd, mom = cs.hp
        lines.append("    {\"%s\", %s, %s, %s, %s, %s, %uu, %uu, %uu, %uu, %uu}, /* lr %r alpha %r eps %r"
                     " wd %r mom %r */"
                     % (cs.name, hexd(lr), hexd(alpha), hexd(eps), hexd(wd), hexd(mom), cs.flags,
                        cs.n, cs.steps, in_off, out_off, lr, alpha, eps, wd, mom))
        cs.in_off, cs.out_off = in_off, out_off
        in_off += cs.n * (4 + cs.steps)
        out_off += cs.n * 4 * cs.steps
    lines.append("};")
    lines.append("")
    lines.append("#define GOLDEN_IN_LEN %d" % in_off)
    lines.append("#define GOLDEN_OUT_LEN %d" % out_off)
    lines.append("")
    lines.append("static const uint32_t golden_in[GOLDEN_IN_LEN] = {")
    for cs in cases:
        lines.append("    /* %s: param, grad, square_avg, momentum_buf, grad_avg%s */"
                     % (cs.name, ", grads of steps 1..%d" % (cs.steps - 1) if cs.steps > 1 else ""))
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
        lines.append("    /* %s */" % cs.name)
        for a in cs.ref64:
            emit_rows(lines, [hexd(float(x)) for x in a], 5)
    lines.append("};")
    lines.append("")
    lines.append("static const double golden_bound[GOLDEN_OUT_LEN] = {")
    for cs in cases:
        lines.append("    /* %s */" % cs.name)
        emit_rows(lines, cs.bound_s, 10)
    lines.append("};")
    lines.append("")
    return "\n".join(lines)


def print_stats(cases):
    names = ("param", "square_avg", "momentum_buf", "grad_avg")
    allr = []
    for k in range(4):
        rs = [r for cs in cases for (r, bv, out, kk) in cs.ratios if kk == k and bv > 0]
        allr += rs
        if rs:
            rs.sort()
            print("%-12s n=%5d |out-ref64|/bound: median %.3g  p90 %.3g  max %.3g"
                  % (names[k], len(rs), rs[len(rs) // 2], rs[int(len(rs) * 0.9)], rs[-1]),
                  file=sys.stderr)
    allr.sort()
    print("%-12s n=%5d |out-ref64|/bound: median %.3g  p90 %.3g  max %.3g"
          % ("all", len(allr), allr[len(allr) // 2], allr[int(len(allr) * 0.9)], allr[-1]),
          file=sys.stderr)
    # bound in float32 ulps of the output: is the bound tight?
    ul = []
    for cs in cases:
        for (r, bv, out, kk) in cs.ratios:
            if bv > 0 and out != 0:
                ulp = float(np.spacing(np.float32(abs(out))))
                ul.append(bv / ulp)
    ul.sort()
    print("bound in float32 ulps of the output: median %.3g  p90 %.3g  max %.3g"
          % (ul[len(ul) // 2], ul[int(len(ul) * 0.9)], ul[-1]), file=sys.stderr)
    nz = sum(1 for cs in cases for b in cs.bound if b == 0.0)
    nm = sum(1 for cs in cases for b in cs.bound if b < 0)
    print("cases %d, outputs %d (bound 0: %d unchanged/exact, unbounded NaN-only: %d)"
          % (len(cases), sum(len(cs.bound) for cs in cases), nz, nm), file=sys.stderr)


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
        print(__doc__.split("\nThe generator")[0].split("\n\n", 1)[1], file=sys.stderr)
        return 2
    path = args[0]
    cases = build_cases()
    variants = {c.flags | (V_WD if c.hp[3] else 0) | (V_MOM if c.hp[4] else 0) for c in cases}
    assert variants == set(range(64))
    text = render(cases)
    if self_test:
        selftest(cases)
    if stats:
        print_stats(cases)
        print("size %d bytes" % len(text.encode()), file=sys.stderr)
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

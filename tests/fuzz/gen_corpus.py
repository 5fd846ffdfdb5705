#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz target (tests/fuzz/corpus/).

Each seed is one input in the format documented at the top of
tests/fuzz/fuzz_rules.c, chosen so that replaying the corpus alone (ctest
fuzz_replay) reaches every rule deterministically, and to start the fuzzer
at the interesting places:

- every kernel variant of every rule (each effective flag combination,
  with and without momentum, coupled and decoupled weight decay), each as
  one tensor, a list and a plan of the list run over cuts, at sizes around
  the vector widths, with special and arbitrary float data; each again with
  RMSFUSE_FLUSH_SUBNORMAL (the subnormal-safe variants, after the others);
- with FLUSH_SUBNORMAL, state at the flush's edges laid out element by
  element (just above and at FLT_MIN, subnormals of both signs, -0, NaN,
  +-Inf, zero and subnormal gradients), one tensor and a list, eps = 0
  among them;
- every status each rule can return, from each range edge of docs/math.md
  (derived constants that overflow float included);
- NULL, overlapping, aliased and wild arrays, huge n, tensor lists (shared
  gradients, overlaps across tensors, empty tensors, a NULL list, count 0),
  lists of 65 to 128 tensors in every layout, and plans (snapped cuts,
  every run order, a second run, the ISA switched, bad ranges);
- the gradient options (after the seeds above, so those keep their names):
  step_ex over lists and plan_run_ex over plans with scales, clip values
  and max norms (edges of the float range included), skipping on an Inf or
  NaN gradient (or one that overflows once scaled), the sum of squares
  given (from grad_sumsq, a part of the list, or NaN, +Inf, -0 ...), every
  refused option, and the precedence of the configuration, the options, the
  arrays and the norm; one list whose gradients span several norm blocks;
- storage types (the rule byte's bit 2): typed steps of the lists' shapes
  in every storage type of every array, master weights, split pairs,
  stochastic rounding, 8-bit state and plans cut on its blocks or not,
  every refused storage, NULL extras and scales, a NULL list, count 0.

    gen_corpus.py [DIR]            write the seeds into DIR (default: corpus/ here)
    gen_corpus.py --check [DIR]    exit 1 if DIR differs from what would be written
"""
import os
import struct
import sys

# hyper_table in fuzz_rules.c, by name.
HYPER = [
    0.0, 1.0, 0.5, 0.9, 0.99, 0.999, 0.999999, 1e-8,
    1e-7, 1e-10, 1e-3, 0.01, 0.1, "-0", "-tiny", -1.0,
    3e38, "FLT_MAX", "FLT_MAX+half_ulp", "below_tie", 1e39, "FLT_TRUE_MIN", 1e-46, "DBL_TRUE_MIN", "DBL_MAX",
    "inf", "-inf", "nan", "1-2^-53", "1+2^-52", 2.0, 100.0, 1e30, "-nan",
    "1-2^-25", "1-2^-24", "1-1e-12", "2^64", "below_2^64", 1.8446744e19, 1e20, 1e-30, "FLT_MIN", 1e-38,
    "-FLT_MAX", -1e39, 1e10, 1e-20, 1e23, 3.7e22, 0.3, 0.75, 1.5, "1-1e-9", 1e-5, 1e-4, 0.2, 4.0, 10.0, 1e6,
    "2^-24", "2^-150", "1.5*2^-150", 1e-45,
]
assert len(HYPER) == 64
H = {x: i for i, x in enumerate(HYPER)}

# step_table in fuzz_rules.c.
STEPS = [1, 2, 3, 4, 5, 10, 100, 1000, 0, -1, -2**63, 2**63 - 1, 2**53, 2**53 + 1, 10**6, 7,
         50, 20, 2**31, 2**32 + 1, 6, 8, 16, 30, 10**9, 10**12, -2, 9, 12, 25, 200, 2**62 + 3]
assert len(STEPS) == 32

RMSPROP, ADAGRAD, SGD, ADAM = range(4)
RULES = ["rmsprop", "adagrad", "sgd", "adam"]
SLOTS = [5, 3, 3, 5]

CENTERED, EPS_IN_SQRT, LR_IN_MOMENTUM, MAXIMIZE = 1, 2, 4, 8
DECOUPLED, NESTEROV, INIT_MOMENTUM, AMSGRAD, EPS_HAT = 16, 32, 64, 128, 256
FLUSH = 512  # RMSFUSE_FLUSH_SUBNORMAL: every rule

# special_bits in fuzz_rules.c (data mode SPECIAL: one data byte per float), by name.
SPECIAL_BITS = ["+0", "-0", "inf", "-inf", "nan", "-nan", "snan", "-snan",
                "FLT_MIN", "-FLT_MIN", "min_sub", "-min_sub", "FLT_MAX", "-FLT_MAX", "max_sub", "-sub",
                "1", "-1", "3", "0.5", "1e-20", "1e20", "1.5FLT_MIN", "sub_1e-38",
                "65504", "-2", "0.1", "0.001", "1000", "2^64", "2^-64", "7"]
assert len(SPECIAL_BITS) == 32
SB = {x: i for i, x in enumerate(SPECIAL_BITS)}

SINGLE, LIST, BOTH, LONG = 0, 1, 2, 3
RAW, SPECIAL, SMALL, MIXED = 0, 1, 2, 3

# The hyperparameters of each rule, in the order the target reads them,
# with the defaults of the seeds.
NAMES = [["lr", "alpha", "eps", "wd", "mom"],
         ["lr", "lr_decay", "wd", "eps"],
         ["lr", "mom", "damp", "wd"],
         ["lr", "beta1", "beta2", "eps", "wd"]]
DEFAULTS = [dict(lr=0.01, alpha=0.99, eps=1e-8, wd=0.0, mom=0.0),
            dict(lr=0.01, lr_decay=0.0, wd=0.0, eps=1e-10),
            dict(lr=0.01, mom=0.0, damp=0.0, wd=0.0),
            dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.0)]


def hyper(x):
    if isinstance(x, tuple) and x[0] == "raw":
        return bytes([0x80]) + struct.pack("<d", x[1])
    return bytes([H[x]])


def step_bytes(s):
    if s in STEPS:
        return bytes([STEPS.index(s)])
    return bytes([0x80]) + struct.pack("<q", s)


def config(rule, step=1, flags=0, unknown_bit=None, bit31=False, **kw):
    """The hyperparameters (5 bytes or raw doubles), step and flags."""
    vals = dict(DEFAULTS[rule])
    for k, v in kw.items():
        assert k in vals, (RULES[rule], k)
        vals[k] = v
    names = NAMES[rule] + [None] * (5 - len(NAMES[rule]))
    f = flags
    assert f < 0x400
    if unknown_bit is not None:
        assert 10 <= unknown_bit <= 25
        f |= 0x400 | ((unknown_bit - 10) << 11)
    if bit31:
        f |= 0x8000
    return (b"".join(hyper(vals[n]) if n else hyper(0.0) for n in names) + step_bytes(step)
            + struct.pack("<H", f))


def own(mis=0):
    """An array in its own block, `mis` bytes past a malloc'd address (0..31)."""
    assert 0 <= mis < 32  # the target: (x & 3) bytes + 4 * (x >> 2), x = mis
    return bytes([mis << 3])


NULL = bytes([3])


def arena(offset):
    return bytes([4]) + struct.pack("<H", offset)


def alias(k):
    """The k-th array decoded before this one (mod the count so far)."""
    return bytes([6 | (k << 3)])


def wild(x=0):
    return bytes([7 | (x << 3)])


def n_small(n):
    return struct.pack("<H", n)


def n_large(i):
    """65536 + 67 i elements: the kernels' prefetching loop."""
    return struct.pack("<H", 0xBF00 | i)


def n_huge(i):
    return struct.pack("<H", 0xC000 | i)


def tensor(n, arrays):
    """n (from n_small/n_huge) and the rule's arrays; the target reads five
    specs, so shorter lists are padded with NULLs it ignores."""
    assert len(arrays) <= 5
    return n + b"".join(arrays) + NULL * (5 - len(arrays))


def owns(rule, mis=(0, 0, 0, 0, 0)):
    return [own(m) for m in mis[:SLOTS[rule]]]


def plist(*tensors):
    return bytes([len(tensors)]) + b"".join(tensors)


def plan(cuts=(), order=0, twice=False, switch_isa=False, snap=False, bad=(0, 0)):
    """How the target cuts and runs the plan of the list."""
    assert len(cuts) <= 7
    b = len(cuts) | (order << 3) | (0x20 if twice else 0) | (0x40 if switch_isa else 0) | (0x80 if snap else 0)
    return bytes([b]) + b"".join(struct.pack("<H", c) for c in cuts) + struct.pack("<HH", *bad)


def mix32(h):
    h &= 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x7FEB352D) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x846CA68B) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def long_sizes(count, nmax_code, seed):
    """The tensor sizes read_long_list gives."""
    nmax = 1 + 2 * nmax_code
    return [mix32(seed * 0x9E3779B9 + i) % (nmax + 1) for i in range(count)]


def long_list(count, place, shared=False, inject=False, nmax_code=7, seed=1, same=False, slots=(0, 1)):
    """count in 65..128; place 0 own blocks, 1 arena per kind in order, 2 the
    same reversed, 3 tensor by tensor; inject: array slots[0] of one tensor
    on array slots[1] of another (`same`: its own) of the same size, > 0."""
    assert 65 <= count <= 128 and 0 <= nmax_code < 16
    lay = place | (4 if shared else 0) | (8 if inject else 0) | (nmax_code << 4)
    i = j = 0
    if inject:
        n = long_sizes(count, nmax_code, seed)
        i = max(k for k in range(count) if n[k] > 0)
        j = i if same else min(k for k in range(count) if n[k] == n[i])
        assert n[i] > 0 and (same or i != j)
    return bytes([count - 65, lay, seed, i, j, slots[0] | slots[1] << 3])


def data(length, seed):
    """Deterministic data bytes (xorshift)."""
    out, s = bytearray(), seed | 1
    for _ in range(length):
        s ^= (s << 13) & 0xFFFFFFFFFFFFFFFF
        s ^= s >> 7
        s ^= (s << 17) & 0xFFFFFFFFFFFFFFFF
        out.append(s >> 56)
    return bytes(out)


def op_byte(what, mode, null_cfg=False, null_list=False, ex=False):
    """ex: the list case reads gradient options (ex_opts) after its plan."""
    v = (6 if ex else 7) if null_list else (1 if ex else 0)
    return what | (mode << 2) | (v << 4) | (0x80 if null_cfg else 0)


# scale_table, clip_table and sumsq_table in fuzz_rules.c, by name (the
# gradient options of step_ex).
SCALES = [1.0, 0.5, 2.0, "2^-10", "2^10", "1/3", 0.1, 3.0,
          "2^-16", 65536.0, "FLT_MIN", "FLT_TRUE_MIN", 7.0, 1e20, 1e-20, 0.75,
          "FLT_MAX", "below_tie", "1.5*2^-150", 1e30,
          "2^-150", 1e-46, 1e-300, 0.0, "-0", -1.0, "FLT_MAX+half_ulp", 1e39, "DBL_MAX", "inf", "nan", "-inf"]
assert len(SCALES) == 32
BAD_SCALES = SCALES[20:]
CLIPS = ["inf", 0.0, 1.0, 0.5, 1e-3, 10.0, 1e30, "FLT_TRUE_MIN",
         1e-50, 1e39, "DBL_MAX", "FLT_MAX", "-0", "nan", -1.0, "-inf"]
assert len(CLIPS) == 16
SUMSQS = [0.0, 1.0, 0.25, 4.0, 1e-300, 1e300, "DBL_MAX", "inf",
          "nan", "-0", "DBL_TRUE_MIN", 1e6, -1.0, "-inf", -1e-300, "-nan"]
assert len(SUMSQS) == 16
SKIP_NONFINITE, SUMSQ_GIVEN = 1, 2
# sum given: grad_sumsq's, the table's, the oracle's over the first `parts` tensors
SRC_LIB, SRC_TABLE, SRC_PART = 0, 1, 2
INJ_INF, INJ_NEG_INF, INJ_NAN, INJ_FLT_MAX = range(4)


def ex_opts(scale=1.0, clip="inf", max_norm="inf", flags=0, unknown_bit=None, src=SRC_TABLE, sumsq=0.0,
            info_null=False, opt_null=False, inject=None, parts=0, plan_given=False):
    """The 8 bytes of gradient options; inject = (kind, tensor, element)."""
    b2 = flags | (4 if unknown_bit is not None else 0) | (src << 3) | (0x20 if info_null else 0) \
        | (0x40 if opt_null else 0) | (0x80 if inject else 0)
    u = 0
    if unknown_bit is not None:
        assert unknown_bit == 31 or 2 <= unknown_bit <= 16
        u = 15 if unknown_bit == 31 else unknown_bit - 2
    kind, ti, at = inject or (0, 0, 0)
    return bytes([SCALES.index(scale) | (0x20 if plan_given else 0), CLIPS.index(clip) | CLIPS.index(max_norm) << 4,
                  b2, SUMSQS.index(sumsq) | u << 4, kind | ti << 2]) + struct.pack("<HB", at, parts)


# The typed step (storage types): bit 2 of the rule byte, and its spec read
# after the list's other specs (typed_spec in fuzz_rules.c).
TYPED = 4
P_F32, P_BF16, P_F16, P_SPLIT = range(4)
G_F32, G_BF16, G_F16, G_BAD = range(4)
S_F32, S_BF16, S_Q8, S_Q8L = range(4)
BAD_STATE_F16, BAD_PARAM_Q8, BAD_PARAM_9, BAD_GRAD_SPLIT, BAD_FLAG, BAD_NULL_STORAGE = range(1, 7)
NULL_EXTRA, NULL_SCALE = 1, 2
FILL_CONVERTED, FILL_RAW, FILL_MIXED = range(3)


def typed_spec(param=P_F32, grad=G_F32, state=S_F32, master=False, sr=False, bad=0, null_kind=0, null_at=0,
               fill=FILL_CONVERTED, unsnapped=False, seed=0, step=0):
    """The typed step's storage, an injected error and how its arrays are filled."""
    return bytes([param | grad << 2 | state << 4 | (0x40 if master else 0) | (0x80 if sr else 0),
                  bad | null_kind << 3 | null_at << 5, fill | (4 if unsnapped else 0), seed, step])


def make(rule, op, cfg, body, seed, data_len=64):
    """rule and op bytes + config + body, then data: the target reads its data
    from the second half of the input, so the data is at least as long as
    the rest."""
    head = bytes([rule, op]) + cfg + body
    return head + data(max(data_len, len(head)), seed)


def make_exact(rule, op, cfg, body, payload, seed):
    """As make, with `payload` exactly where the target's data starts: the
    structure is padded (bytes it never reads) to the payload's length, and
    a payload shorter than the structure is extended with data()."""
    head = bytes([rule, op]) + cfg + body
    if len(payload) < len(head):
        payload += data(len(head) - len(payload), seed)
    return head + bytes(len(payload) - len(head)) + payload


# The effective variants of each rule: (name, config keywords).
def variants(rule):
    out = []
    wds = [("", {}), ("-wd", dict(wd=0.01)), ("-adamw", dict(wd=0.1, flags=DECOUPLED))]
    if rule == RMSPROP:
        moms = [("", 0.0, 0), ("-mom", 0.9, 0), ("-mom-nesterov", 0.9, NESTEROV), ("-mom-lrin", 0.5, LR_IN_MOMENTUM),
                ("-mom-lrin-nesterov", 0.5, LR_IN_MOMENTUM | NESTEROV)]
        for c in (0, CENTERED):
            for e in (0, EPS_IN_SQRT):
                for mname, mom, mf in moms:
                    for wname, wkw in wds:
                        flags = c | e | mf | wkw.get("flags", 0)
                        k = len(out)
                        if k % 3 == 1:
                            flags |= MAXIMIZE
                        name = "%s%s%s%s%s" % ("c" if c else "", "e" if e else "", mname, wname,
                                               "-max" if flags & MAXIMIZE else "")
                        out.append((name.lstrip("-") or "plain",
                                    dict(alpha=0.9, eps=1e-7, mom=mom, flags=flags, wd=wkw.get("wd", 0.0))))
    elif rule == ADAGRAD:
        for e in (0, EPS_IN_SQRT):
            for wname, wkw in wds:
                for mx in (0, MAXIMIZE):
                    flags = e | mx | wkw.get("flags", 0)
                    name = "%s%s%s" % ("e" if e else "", wname, "-max" if mx else "")
                    out.append((name.lstrip("-") or "plain",
                                dict(lr_decay=0.01 if mx else 0.0, step=3 if mx else 1, eps=1e-7 if e else 1e-10,
                                     flags=flags, wd=wkw.get("wd", 0.0))))
    elif rule == SGD:
        moms = [("", 0.0, 0, 0.0), ("mom", 0.9, 0, 0.0), ("mom-damp", 0.9, 0, 0.1), ("mom-nesterov", 0.9, NESTEROV, 0.0),
                ("mom-init", 0.9, INIT_MOMENTUM, 0.5), ("mom-init-nesterov", 0.9, INIT_MOMENTUM | NESTEROV, 0.0),
                ("keras", 0.9, LR_IN_MOMENTUM, 0.0), ("keras-nesterov", 0.9, LR_IN_MOMENTUM | NESTEROV, 0.0),
                ("mom-above-1", 2.0, 0, 0.0)]
        for mname, mom, mf, damp in moms:
            for wname, wkw in wds:
                flags = mf | wkw.get("flags", 0)
                if len(out) % 2:
                    flags |= MAXIMIZE
                name = "%s%s%s" % (mname, wname, "-max" if flags & MAXIMIZE else "")
                out.append((name.lstrip("-") or "plain", dict(mom=mom, damp=damp, flags=flags, wd=wkw.get("wd", 0.0))))
    else:
        for a in (0, AMSGRAD):
            for e in (0, EPS_HAT):
                for wname, wkw in wds:
                    for mx in (0, MAXIMIZE):
                        flags = a | e | mx | wkw.get("flags", 0)
                        name = "%s%s%s%s" % ("ams" if a else "", "-hat" if e else "", wname, "-max" if mx else "")
                        out.append((name.lstrip("-") or "plain",
                                    dict(step=10 if e else 1, flags=flags, wd=wkw.get("wd", 0.0))))
    return out


def seeds():
    out = {}
    k = 0

    def add(rule, name, op, cfg, body, data_len=64):
        nonlocal k
        k += 1
        key = "%03d-%s-%s" % (k, RULES[rule], name)
        assert key not in out
        out[key] = make(rule, op, cfg, body, 1000 + k, data_len)

    def add_typed(rule, name, op, cfg, body, data_len=64):
        """A seed whose list case also makes a typed step (body ends with its spec)."""
        nonlocal k
        k += 1
        key = "%03d-%s-typed-%s" % (k, RULES[rule], name)
        assert key not in out
        out[key] = make(rule | TYPED, op, cfg, body, 1000 + k, data_len)

    def add_exact(rule, name, op, cfg, body, payload, seed):
        nonlocal k
        k += 1
        key = "%03d-%s-%s" % (k, RULES[rule], name)
        assert key not in out
        out[key] = make_exact(rule, op, cfg, body, payload, seed)

    # Every variant of every rule: one tensor at a size around the vector
    # widths (1, 4, 8, 16 floats), a list of three, a plan of it over cuts.
    sizes = [1, 3, 7, 15, 16, 17, 31, 33, 64, 100, 129, 257]
    for rule in range(4):
        for i, (name, kw) in enumerate(variants(rule)):
            n = sizes[i % len(sizes)]
            mode = (SMALL, SPECIAL, RAW, MIXED)[i % 4]
            mis = (i % 4, 0, 4 * (i % 3), 1, 2)
            body = (tensor(n_small(n), owns(rule, mis))
                    + plist(tensor(n_small(n), owns(rule)), tensor(n_small(i % 5), owns(rule, (1, 2, 3, 0, 1))),
                            tensor(n_small(40), owns(rule, (0, 4, 8, 12, 16))))
                    + plan(cuts=(i % 7 + 1, n + 3, n + 20), order=i % 4, twice=i % 3 == 0, switch_isa=i % 2 == 1,
                           snap=i % 5 < 2))
            add(rule, name, op_byte(BOTH, mode), config(rule, **kw), body, data_len=4 * (n + 60) if mode == RAW else 64)

    # Large sizes: one tensor of 1024 and a list with 256 in a plan cut in seven.
    for rule in range(4):
        add(rule, "n1024-n256-seven-cuts", op_byte(BOTH, MIXED), config(rule, wd=0.01),
            tensor(n_small(1024), owns(rule, (3, 2, 1, 0, 0)))
            + plist(tensor(n_small(256), owns(rule)), tensor(n_small(200), owns(rule)))
            + plan(cuts=(17, 64, 100, 255, 256, 300, 400), order=2, snap=True), data_len=512)

    # A large n, where the kernels prefetch ahead (the loop is the same for
    # every rule; RMSProp with five arrays prefetches every slot): one
    # tensor, and a list of one whose plan is cut inside the prefetching
    # part.  One seed only: replaying it and its mutations takes time.
    add(RMSPROP, "large-n-prefetch", op_byte(BOTH, MIXED),
        config(RMSPROP, mom=0.9, flags=CENTERED | LR_IN_MOMENTUM),
        tensor(n_large(0), owns(RMSPROP, (0, 1, 2, 3, 0)))
        + plist(tensor(n_large(1), owns(RMSPROP, (4, 0, 0, 0, 0)))) + plan(cuts=(1000, 40000), snap=True),
        data_len=4096)

    # The range edges and errors of every rule (one tensor of 17, a list of it).
    def cfg_case(rule, name, **kw):
        add(rule, name, op_byte(BOTH, SMALL), config(rule, **kw),
            tensor(n_small(17), owns(rule)) + plist(tensor(n_small(5), owns(rule))) + plan(cuts=(2,)))

    for rule in range(4):
        cfg_case(rule, "err-nan-lr", lr="nan")
        cfg_case(rule, "err-neg-nan-lr", lr="-nan")
        cfg_case(rule, "err-inf-lr", lr="inf")
        cfg_case(rule, "err-lr-overflows-float", lr="FLT_MAX+half_ulp")
        cfg_case(rule, "lr-just-below-float-overflow", lr="below_tie")
        cfg_case(rule, "err-negative-lr", lr=-1.0)
        cfg_case(rule, "lr-minus-zero", lr="-0")
        cfg_case(rule, "err-lr-beyond-float-negative", lr=-1e39)
        cfg_case(rule, "err-negative-wd", wd="-tiny")
        cfg_case(rule, "err-wd-dbl-max", wd="DBL_MAX")
        cfg_case(rule, "wd-rounds-to-zero", wd=1e-46, flags=MAXIMIZE)
        cfg_case(rule, "err-unknown-flag-bit10", unknown_bit=10)
        cfg_case(rule, "err-unknown-flag-bit31", bit31=True)
        cfg_case(rule, "err-unknown-flag-bit20", unknown_bit=20)
        # dk = (float)(1 - lr * wd) overflows when decoupled, and is not used coupled.
        cfg_case(rule, "err-decoupled-dk-overflows", lr="2^64", wd="2^64", flags=DECOUPLED)
        cfg_case(rule, "coupled-huge-lr-wd", lr="2^64", wd="2^64")
        cfg_case(rule, "decoupled-dk-just-finite", lr="below_2^64", wd="below_2^64", flags=DECOUPLED)
    # Each rule's flags that are unknown to it.
    for rule, flag in ((RMSPROP, INIT_MOMENTUM), (RMSPROP, AMSGRAD), (RMSPROP, EPS_HAT), (ADAGRAD, CENTERED),
                       (ADAGRAD, NESTEROV), (ADAGRAD, LR_IN_MOMENTUM), (SGD, EPS_IN_SQRT), (SGD, AMSGRAD),
                       (SGD, CENTERED), (ADAM, EPS_IN_SQRT), (ADAM, NESTEROV), (ADAM, INIT_MOMENTUM)):
        cfg_case(rule, "err-foreign-flag-%d" % flag, flags=flag)
    # NULL config, in every function.
    for rule in range(4):
        add(rule, "err-null-config", op_byte(BOTH, SMALL, null_cfg=True), config(rule),
            tensor(n_small(5), owns(rule)) + plist(tensor(n_small(5), owns(rule))) + plan())

    # RMSProp's ranges.
    cfg_case(RMSPROP, "alpha1-eps0", alpha=1.0, eps=0.0)
    cfg_case(RMSPROP, "alpha0", alpha=0.0, mom=0.5, flags=CENTERED)
    cfg_case(RMSPROP, "err-alpha-above-1", alpha="1+2^-52")
    cfg_case(RMSPROP, "err-alpha-negative", alpha="-tiny")
    cfg_case(RMSPROP, "err-alpha-beyond-float", alpha=-1e39)
    cfg_case(RMSPROP, "err-negative-eps", eps=-1.0)
    cfg_case(RMSPROP, "err-momentum-1", mom=1.0)
    cfg_case(RMSPROP, "err-momentum-negative", mom="-tiny")
    cfg_case(RMSPROP, "momentum-rounds-to-1f", mom="1-2^-25", flags=LR_IN_MOMENTUM | NESTEROV)
    cfg_case(RMSPROP, "momentum-below-1", mom="1-2^-53")
    cfg_case(RMSPROP, "momentum-rounds-to-0f", mom=1e-46, flags=NESTEROV)
    cfg_case(RMSPROP, "err-nesterov-no-momentum", flags=NESTEROV)
    cfg_case(RMSPROP, "err-nesterov-momentum-minus-0", mom="-0", flags=NESTEROV | LR_IN_MOMENTUM)
    cfg_case(RMSPROP, "huge-lr-subnormal-eps", lr="FLT_MAX", alpha=0.5, eps="FLT_TRUE_MIN", wd=1e30,
             mom=0.999999, flags=CENTERED | MAXIMIZE)
    cfg_case(RMSPROP, "raw-double-hyper", lr=("raw", 0.0123), alpha=("raw", 0.875), eps=("raw", 1e-6))
    # AdaGrad's.
    cfg_case(ADAGRAD, "err-lr-decay-negative", lr_decay=-1.0, step=1)
    cfg_case(ADAGRAD, "err-lr-decay-negative-clr-infinite", lr_decay=("raw", -0.5), step=3)
    cfg_case(ADAGRAD, "err-lr-decay-beyond-float", lr_decay=1e39)
    cfg_case(ADAGRAD, "lr-decay-huge-step-huge", lr_decay="FLT_MAX", step=2**63 - 1)
    cfg_case(ADAGRAD, "lr-decay-step-2^53+1", lr_decay=0.5, step=2**53 + 1)
    cfg_case(ADAGRAD, "err-step-0", step=0)
    cfg_case(ADAGRAD, "err-step-negative", step=-1)
    cfg_case(ADAGRAD, "err-step-llong-min", step=-2**63, lr_decay=1.0)
    cfg_case(ADAGRAD, "err-negative-eps", eps=-1.0, flags=EPS_IN_SQRT)
    cfg_case(ADAGRAD, "eps0-inside", eps=0.0, flags=EPS_IN_SQRT)
    cfg_case(ADAGRAD, "err-decoupled-clr-dk-overflows", lr="2^64", wd="2^64", step=1, lr_decay=0.0, flags=DECOUPLED)
    cfg_case(ADAGRAD, "decoupled-lr-decay-shrinks-dk", lr="2^64", wd="2^64", step=3, lr_decay=1.0, flags=DECOUPLED)
    cfg_case(ADAGRAD, "raw-step", step=12345678901, lr_decay=1e-3)
    # SGD's.
    cfg_case(SGD, "err-momentum-negative", mom=-1.0)
    cfg_case(SGD, "momentum-huge", mom=3e38)
    cfg_case(SGD, "err-momentum-beyond-float", mom=1e39)
    cfg_case(SGD, "err-dampening-above-1", mom=0.9, damp="1+2^-52")
    cfg_case(SGD, "err-dampening-negative", mom=0.9, damp="-tiny")
    cfg_case(SGD, "dampening-1", mom=0.9, damp=1.0)
    cfg_case(SGD, "err-dampening-with-lr-in-momentum", mom=0.9, damp=0.1, flags=LR_IN_MOMENTUM)
    cfg_case(SGD, "err-dampening-lr-in-no-momentum", damp=0.1, flags=LR_IN_MOMENTUM)
    cfg_case(SGD, "err-lr-in-and-init", mom=0.9, flags=LR_IN_MOMENTUM | INIT_MOMENTUM)
    cfg_case(SGD, "err-lr-in-and-init-no-momentum", flags=LR_IN_MOMENTUM | INIT_MOMENTUM)
    cfg_case(SGD, "err-nesterov-no-momentum", flags=NESTEROV)
    cfg_case(SGD, "err-nesterov-dampening", mom=0.9, damp=0.5, flags=NESTEROV)
    cfg_case(SGD, "init-no-momentum", flags=INIT_MOMENTUM)
    cfg_case(SGD, "momentum-subnormal-double", mom="DBL_TRUE_MIN", flags=NESTEROV | LR_IN_MOMENTUM)
    # Adam's.
    cfg_case(ADAM, "err-beta1-1", beta1=1.0)
    cfg_case(ADAM, "err-beta2-1", beta2=1.0)
    cfg_case(ADAM, "err-beta1-negative", beta1="-tiny")
    cfg_case(ADAM, "err-beta2-above-1", beta2="1+2^-52")
    cfg_case(ADAM, "err-beta2-beyond-float", beta2=-1e39)
    cfg_case(ADAM, "beta1-rounds-to-1f", beta1="1-2^-25", beta2="1-2^-25", flags=AMSGRAD)
    cfg_case(ADAM, "beta1-below-1", beta1="1-2^-53", beta2="1-2^-53")
    cfg_case(ADAM, "err-ns-overflows-beta1-below-1", beta1="1-2^-53", lr=1e23, beta2=0.0)
    cfg_case(ADAM, "ns-finite-beta1-below-1", beta1="1-2^-53", lr=1e20, beta2=0.0)
    cfg_case(ADAM, "err-ns-overflows-lr", lr=3e38, beta1=0.9, beta2=0.0)
    cfg_case(ADAM, "betas-0", beta1=0.0, beta2=0.0, flags=EPS_HAT)
    cfg_case(ADAM, "err-step-0", step=0)
    cfg_case(ADAM, "err-step-llong-min", step=-2**63)
    cfg_case(ADAM, "step-llong-max", step=2**63 - 1, flags=AMSGRAD)
    cfg_case(ADAM, "step-2^53+1-hat", step=2**53 + 1, beta1=0.999999, beta2="1-1e-12", flags=EPS_HAT)
    cfg_case(ADAM, "err-negative-eps", eps="-tiny", flags=EPS_HAT)
    cfg_case(ADAM, "eps-huge", eps="FLT_MAX", beta2=0.5, step=2)
    cfg_case(ADAM, "eps0", eps=0.0)

    # Arrays: NULLs, overlaps, aliases, wild pointers, huge n.
    for rule in range(4):
        S = SLOTS[rule]
        # Everything the rule can use: momentum, centred, AMSGrad.
        full = dict(((RMSPROP, dict(mom=0.9, flags=CENTERED)), (ADAGRAD, {}), (SGD, dict(mom=0.9)),
                     (ADAM, dict(flags=AMSGRAD))))[rule]
        for j in range(S):
            arrs = owns(rule)
            arrs[j] = NULL
            add(rule, "err-null-slot%d" % j, op_byte(SINGLE, SMALL), config(rule, **full), tensor(n_small(9), arrs))
        add(rule, "n0-all-null", op_byte(BOTH, SMALL), config(rule, **full),
            tensor(n_small(0), [NULL] * S) + plist(tensor(n_small(0), [wild(2)] * S)) + plan(cuts=(0,)))
        # The arrays the plain configuration does not use: NULL, wild, overlapping.
        if S == 5 or rule == SGD:
            unused = [own(), own(), own(), wild(3), NULL] if rule != SGD else [own(), own(), wild(3)]
            if rule == ADAM:
                unused = [own(), own(), own(), own(), wild(3)]
            add(rule, "unused-arrays-null-or-wild", op_byte(BOTH, MIXED), config(rule),
                tensor(n_small(50), unused) + plist(tensor(n_small(20), unused)) + plan(cuts=(7,)))
            ov = [arena(0), arena(400), arena(800), arena(0), arena(4)] if rule != SGD else [arena(0), arena(400), arena(0)]
            if rule == ADAM:
                ov = [arena(0), arena(400), arena(800), arena(1200), arena(2)]
            add(rule, "unused-arrays-overlap", op_byte(SINGLE, SMALL), config(rule), tensor(n_small(64), ov))
        add(rule, "err-overlap-arena", op_byte(SINGLE, SMALL), config(rule, **full),
            tensor(n_small(64), [arena(0), arena(512), arena(100), arena(1000), arena(1400)][:S]))
        add(rule, "err-overlap-last-two", op_byte(SINGLE, SMALL), config(rule, **full),
            tensor(n_small(64), [arena(0), arena(300), arena(600), arena(900), arena(1200)][:S - 1]
                   + [arena(300 * (S - 2) + 252)]))
        add(rule, "disjoint-arena", op_byte(SINGLE, SPECIAL), config(rule, **full),
            tensor(n_small(64), [arena(1), arena(300), arena(600), arena(900), arena(1200)][:S]))
        add(rule, "adjacent-arena", op_byte(SINGLE, SPECIAL), config(rule, **full),
            tensor(n_small(64), [arena(0), arena(256), arena(512), arena(768), arena(1024)][:S]))
        add(rule, "err-alias-param-grad", op_byte(SINGLE, SMALL), config(rule), tensor(n_small(8), [own(), alias(0)] + owns(rule)[2:]))
        add(rule, "err-alias-state-param", op_byte(SINGLE, SMALL), config(rule, **full),
            tensor(n_small(8), owns(rule)[:S - 1] + [alias(0)]))
        add(rule, "err-wild-param-wraps", op_byte(SINGLE, SMALL), config(rule), tensor(n_small(8), [wild(5)] + owns(rule)[1:]))
        add(rule, "err-wild-grad-ends-at-2^64", op_byte(SINGLE, SMALL), config(rule),
            tensor(n_small(8), [own(), wild(7)] + owns(rule)[2:]))
        add(rule, "err-huge-n", op_byte(SINGLE, SMALL), config(rule), tensor(n_huge(0), owns(rule)))
        add(rule, "err-huge-n-wraps", op_byte(SINGLE, SMALL), config(rule), tensor(n_huge(7), owns(rule)))
        add(rule, "err-huge-n-size-overflow", op_byte(SINGLE, SMALL), config(rule), tensor(n_huge(4), owns(rule)))
        add(rule, "err-huge-n-null-and-wild", op_byte(SINGLE, SMALL), config(rule),
            tensor(n_huge(3), [wild(1), NULL] + owns(rule)[2:]))

        # Lists.
        add(rule, "list-four-disjoint", op_byte(LIST, SMALL), config(rule, wd=0.01, **full),
            plist(*[tensor(n_small(n), owns(rule, (i, 0, 1, 2, 3))) for i, n in enumerate([1, 17, 100, 256])])
            + plan(cuts=(1, 18, 50, 117, 200, 300), order=1, twice=True, snap=True))
        add(rule, "list-shared-grad", op_byte(LIST, MIXED), config(rule, **full),
            plist(tensor(n_small(40), owns(rule)), tensor(n_small(40), [own(), alias(1)] + owns(rule)[2:]),
                  tensor(n_small(40), [own(), alias(1)] + owns(rule)[2:]))
            + plan(cuts=(39, 40, 41, 80), order=3, switch_isa=True))
        add(rule, "err-list-cross-overlap", op_byte(LIST, SMALL), config(rule, **full),
            plist(tensor(n_small(32), [arena(0)] + owns(rule)[1:]), tensor(n_small(32), owns(rule)[:2] + [arena(64)] + owns(rule)[3:]))
            + plan(cuts=(5,)))
        add(rule, "err-list-grad-on-other-param", op_byte(LIST, SMALL), config(rule),
            plist(tensor(n_small(32), owns(rule)), tensor(n_small(16), [own(), alias(0)] + owns(rule)[2:])) + plan())
        add(rule, "list-arena-in-order", op_byte(LIST, SPECIAL), config(rule, **full),
            plist(tensor(n_small(30), [arena(1000 * j) for j in range(S)]),
                  tensor(n_small(30), [arena(1000 * j + 120) for j in range(S)]))
            + plan(cuts=(10, 30, 31), snap=True))
        add(rule, "list-arena-reversed", op_byte(LIST, SPECIAL), config(rule, **full),
            plist(tensor(n_small(30), [arena(4000 + 128 * j) for j in range(S)]),
                  tensor(n_small(30), [arena(64 + 128 * j) for j in range(S)]))
            + plan(cuts=(29, 33), order=1, snap=True))
        add(rule, "list-empty-tensors", op_byte(LIST, SMALL), config(rule, **full),
            plist(tensor(n_small(0), [NULL] * S), tensor(n_small(20), owns(rule)), tensor(n_small(0), [wild(1)] * S))
            + plan(cuts=(0, 20, 20), twice=True))
        add(rule, "err-list-null", op_byte(LIST, SMALL, null_list=True), config(rule),
            plist(tensor(n_small(3), owns(rule))) + plan())
        add(rule, "list-null-count-0", op_byte(LIST, SMALL, null_list=True), config(rule), plist() + plan(cuts=(3,)))
        add(rule, "list-count-0", op_byte(LIST, SMALL), config(rule), plist() + plan(bad=(1, 0)))
        add(rule, "err-list-huge-n", op_byte(LIST, SMALL), config(rule),
            plist(tensor(n_small(10), owns(rule)), tensor(n_huge(3), owns(rule))) + plan())
        add(rule, "list-bad-plan-ranges", op_byte(LIST, RAW), config(rule, **full),
            plist(tensor(n_small(33), owns(rule, (1, 1, 1, 1, 1))), tensor(n_small(7), owns(rule)))
            + plan(cuts=(3, 9, 27, 35, 39), order=2, bad=(40, 41)), data_len=256)

        # Long lists (65 to 128 tensors): every layout.
        for place in range(4):
            add(rule, "long-list-place%d" % place, op_byte(LONG, (SMALL, MIXED, SPECIAL, RAW)[place]),
                config(rule, **full),
                long_list(65 + 21 * place, place, nmax_code=3 + place, seed=place + 1)
                + plan(cuts=(7, 300, 100, 250, 1000), order=place, twice=place == 1, snap=place % 2 == 0),
                data_len=128)
        add(rule, "long-list-shared-grad", op_byte(LONG, SMALL), config(rule, **full),
            long_list(128, 1, shared=True, nmax_code=15, seed=9) + plan(cuts=(64, 128, 2000), switch_isa=True))
        add(rule, "err-long-list-overlap", op_byte(LONG, SMALL), config(rule, **full),
            long_list(100, 2, inject=True, nmax_code=2, seed=5) + plan())
        add(rule, "err-long-list-state-overlap", op_byte(LONG, MIXED), config(rule, **full),
            long_list(90, 2, inject=True, nmax_code=3, seed=11, slots=(2, 2)) + plan())
        add(rule, "err-long-list-param-on-param", op_byte(LONG, MIXED), config(rule, **full),
            long_list(77, 3, inject=True, nmax_code=4, seed=12, slots=(0, 0)) + plan())
        add(rule, "err-list-reversed-state-overlap", op_byte(LIST, SMALL), config(rule, **full),
            plist(tensor(n_small(30), [arena(4000 + 128 * j) for j in range(S)]),
                  tensor(n_small(30), [arena(64 + 128 * j) for j in range(S - 1)] + [arena(4000 + 128 * (S - 1) + 60)]))
            + plan())
        add(rule, "err-long-list-overlap-own", op_byte(LONG, SMALL), config(rule, **full),
            long_list(66, 0, inject=True, same=True, nmax_code=1, seed=7) + plan())
        add(rule, "err-long-list-null", op_byte(LONG, SMALL, null_list=True), config(rule),
            long_list(70, 1) + plan())
    # A tensor whose param is 1 byte past a malloc'd (16-byte aligned)
    # address: no element starts a cache line, so rmsfuse_plan_cut(plan, 5)
    # is 5 itself (rmsfuse_common.h).
    add(RMSPROP, "plan-cut-misaligned-param", op_byte(LIST, SMALL), config(RMSPROP),
        plist(tensor(n_small(40), [own(1), own(), own(), NULL, NULL])) + plan(cuts=(5,), snap=True))

    # RMSFUSE_FLUSH_SUBNORMAL: every kernel variant again with the flag (the
    # seeds of the first loop, the flag added), and the flag alone among
    # the unknown bits' neighbours.
    sizes = [1, 3, 7, 15, 16, 17, 31, 33, 64, 100, 129, 257]
    for rule in range(4):
        for i, (name, kw) in enumerate(variants(rule)):
            kw = dict(kw, flags=kw["flags"] | FLUSH)
            n = sizes[(i + 5) % len(sizes)]
            mode = (SPECIAL, MIXED, SMALL, RAW)[i % 4]
            body = (tensor(n_small(n), owns(rule, (i % 4, 1, 4 * (i % 3), 0, 2)))
                    + plist(tensor(n_small(n), owns(rule)), tensor(n_small(i % 5), owns(rule, (1, 2, 3, 0, 1))),
                            tensor(n_small(40), owns(rule, (0, 4, 8, 12, 16))))
                    + plan(cuts=(i % 7 + 1, n + 3, n + 20), order=(i + 1) % 4, twice=i % 3 == 1,
                           switch_isa=i % 2 == 0, snap=i % 5 >= 2))
            add(rule, "flush-" + name, op_byte(BOTH, mode), config(rule, **kw), body,
                data_len=4 * (n + 60) if mode == RAW else 64)
        cfg_case(rule, "flush-and-unknown-bit11", flags=FLUSH, unknown_bit=11)

    # The flush's edges element by element (data mode SPECIAL: a byte per
    # float), one tensor of 48 and a list of two (a plan of it): params,
    # gradients mostly zero (-0, subnormal, 2^-64 whose square is
    # subnormal), and every state array cycling through just above and at
    # FLT_MIN, subnormals of both signs, -0, NaN, +-Inf, at other offsets
    # per array.
    P = ["0.5", "+0", "-0", "min_sub", "1", "-min_sub"]
    Gs = ["+0", "-0", "+0", "min_sub", "0.5", "2^-64", "+0", "-min_sub", "max_sub", "+0", "1e-20"]
    St = ["FLT_MIN", "1.5FLT_MIN", "min_sub", "-min_sub", "max_sub", "-sub", "sub_1e-38", "-0",
          "+0", "-FLT_MIN", "nan", "-nan", "snan", "inf", "-inf", "0.5"]

    def edge_arrays(rule, n, shift):
        arrs = [[P[(e + shift) % len(P)] for e in range(n)], [Gs[(e + shift) % len(Gs)] for e in range(n)]]
        for j in range(SLOTS[rule] - 2):
            arrs.append([St[(e + 5 * j + shift) % len(St)] for e in range(n)])
        return b"".join(bytes(SB[x] for x in a) for a in arrs)

    flush_cfgs = {
        RMSPROP: [("torch", dict(alpha=0.9, mom=0.9, flags=FLUSH)),
                  ("c-lrin-nesterov", dict(alpha=0.99, mom=0.5, flags=FLUSH | CENTERED | LR_IN_MOMENTUM | NESTEROV)),
                  ("e-adamw", dict(alpha=0.999, wd=0.1, flags=FLUSH | EPS_IN_SQRT | DECOUPLED)),
                  ("c-mom-eps0", dict(alpha=0.9, mom=0.9, eps=0.0, flags=FLUSH | CENTERED | MAXIMIZE))],
        ADAGRAD: [("torch", dict(flags=FLUSH)), ("e-eps0", dict(eps=0.0, flags=FLUSH | EPS_IN_SQRT | MAXIMIZE)),
                  ("adamw", dict(wd=0.1, flags=FLUSH | DECOUPLED))],
        SGD: [("mom", dict(mom=0.9, flags=FLUSH)), ("init-nesterov", dict(mom=0.9, flags=FLUSH | INIT_MOMENTUM | NESTEROV)),
              ("keras-nesterov", dict(mom=0.9, flags=FLUSH | LR_IN_MOMENTUM | NESTEROV)),
              ("keras-adamw", dict(mom=0.5, wd=0.1, flags=FLUSH | LR_IN_MOMENTUM | DECOUPLED | MAXIMIZE))],
        ADAM: [("torch", dict(flags=FLUSH)), ("ams", dict(flags=FLUSH | AMSGRAD, step=3)),
               ("ams-hat-max", dict(flags=FLUSH | AMSGRAD | EPS_HAT | MAXIMIZE, step=10)),
               ("ams-eps0", dict(eps=0.0, flags=FLUSH | AMSGRAD))],
    }
    for rule in range(4):
        for name, kw in flush_cfgs[rule]:
            sd = 5000 + len(out)
            # (own blocks at offset 0: each array takes exactly n data bytes, in the order read)
            add_exact(rule, "flush-edges-" + name, op_byte(SINGLE, SPECIAL), config(rule, **kw),
                      tensor(n_small(48), owns(rule)), edge_arrays(rule, 48, 0), sd)
            add_exact(rule, "flush-edges-list-" + name, op_byte(LIST, SPECIAL), config(rule, **kw),
                      plist(tensor(n_small(20), owns(rule)), tensor(n_small(33), owns(rule)))
                      + plan(cuts=(7, 20, 40), order=3, twice=True, snap=True),
                      edge_arrays(rule, 20, 3) + edge_arrays(rule, 33, 7), sd)

    # The gradient options (rmsfuse_<rule>_step_ex, grad_sumsq, the block
    # sums, plan_run_ex): a list of three and a plan of it, with options
    # read after the plan.
    def ex_case(rule, name, opts, mode=MIXED, what=LIST, null_cfg=False, null_list=False, kw=None, lst=None,
                cuts=(5, 30, 44), data_len=64):
        body = lst if lst is not None else plist(
            tensor(n_small(17), owns(rule, (1, 0, 2, 3, 0))), tensor(n_small(0), [NULL] * SLOTS[rule]),
            tensor(n_small(40), owns(rule, (0, 4, 8, 12, 16))))
        add(rule, "ex-" + name.replace("*", "x"), op_byte(what, mode, null_cfg=null_cfg, null_list=null_list, ex=True),
            config(rule, **(kw or {})), body + plan(cuts=cuts, order=2, snap=True, twice=True) + opts,
            data_len=data_len)

    for rule in range(4):
        # scale and clip by value over a few kernel variants, norm clipping, skipping
        for i, (name, kw) in enumerate(variants(rule)[::3]):
            scale = [0.5, 3.0, "1/3", "2^10", 0.1, 1.0][i % 6]
            clip = ["inf", 1.0, 0.5, 0.0, 1e-3, 10.0][(i + 1) % 6]
            max_norm = ["inf", 1.0, 10.0, 1e-3, 0.5][i % 5]
            ex_case(rule, "v-" + name, ex_opts(scale, clip, max_norm, flags=SKIP_NONFINITE if i % 3 == 0 else 0,
                                               plan_given=i % 3 == 1, parts=i),
                    mode=(SMALL, MIXED, RAW)[i % 3], kw=kw)
        ex_case(rule, "skip-inf", ex_opts(0.5, max_norm=1.0, flags=SKIP_NONFINITE, inject=(INJ_INF, 2, 7)), SMALL)
        ex_case(rule, "skip-nan-no-info", ex_opts(flags=SKIP_NONFINITE, inject=(INJ_NAN, 0, 16), info_null=True),
                SMALL)
        ex_case(rule, "skip-overflow-flt-max-x2", ex_opts(2.0, flags=SKIP_NONFINITE, inject=(INJ_FLT_MAX, 2, 39)),
                SMALL)
        ex_case(rule, "noskip-inf-factor-0", ex_opts(max_norm=1.0, inject=(INJ_NEG_INF, 0, 3)), SMALL)
        ex_case(rule, "noskip-nan-factor-nan", ex_opts(max_norm=10.0, clip=1.0, inject=(INJ_NAN, 2, 0)), SMALL)
        ex_case(rule, "special-data-skip", ex_opts(flags=SKIP_NONFINITE, max_norm=1.0), SPECIAL)
        ex_case(rule, "special-data-clip", ex_opts(0.5, clip=0.5, max_norm=0.5), SPECIAL)
        # odd scales: g * s has every bit, so the sum's order shows in its bits
        ex_case(rule, "norm-order-third", ex_opts("1/3", max_norm=1.0, parts=2), SMALL,
                lst=plist(*[tensor(n_small(256), owns(rule, (j, 1, 2, 3, 0))) for j in range(4)]),
                cuts=(100, 256, 700), data_len=1024)
        ex_case(rule, "norm-order-tenth-skip", ex_opts(0.1, clip=0.5, flags=SKIP_NONFINITE, parts=1), SMALL,
                lst=plist(tensor(n_small(100), owns(rule)), tensor(n_small(33), owns(rule, (3, 2, 1, 0, 1)))),
                cuts=(50, 99, 120))
        # the sum given
        ex_case(rule, "given-grad-sumsq", ex_opts(0.5, max_norm=0.5, flags=SKIP_NONFINITE | SUMSQ_GIVEN,
                                                  src=SRC_LIB, parts=1))
        ex_case(rule, "given-part-sum", ex_opts(3.0, max_norm=1.0, flags=SUMSQ_GIVEN, src=SRC_PART, parts=1))
        ex_case(rule, "given-nan-skip", ex_opts(flags=SKIP_NONFINITE | SUMSQ_GIVEN, sumsq="nan"))
        ex_case(rule, "given-inf-factor-0", ex_opts(max_norm=1.0, flags=SUMSQ_GIVEN, sumsq="inf"))
        ex_case(rule, "given-minus-nan", ex_opts(max_norm=1.0, flags=SUMSQ_GIVEN, sumsq="-nan"))
        ex_case(rule, "given-minus-0", ex_opts(max_norm="-0", flags=SUMSQ_GIVEN, sumsq="-0"))
        ex_case(rule, "given-huge", ex_opts(max_norm="DBL_MAX", flags=SUMSQ_GIVEN | SKIP_NONFINITE, sumsq="DBL_MAX"))
        ex_case(rule, "err-given-negative", ex_opts(flags=SUMSQ_GIVEN, sumsq=-1.0))
        ex_case(rule, "err-given-minus-inf", ex_opts(flags=SUMSQ_GIVEN, sumsq="-inf"))
        ex_case(rule, "err-given-minus-tiny", ex_opts(flags=SUMSQ_GIVEN, sumsq=-1e-300))
        # options at their edges, and refused
        for sc in ("FLT_TRUE_MIN", "FLT_MAX", "below_tie", "1.5*2^-150", "FLT_MIN"):
            ex_case(rule, "scale-" + sc, ex_opts(sc, max_norm=1.0), SPECIAL)
        for cl in (1e-50, 1e39, "-0", "FLT_TRUE_MIN"):
            ex_case(rule, "clip-%s" % cl, ex_opts(0.5, clip=cl, max_norm=cl), SMALL)
        for sc in BAD_SCALES:
            ex_case(rule, "err-scale-%s" % sc, ex_opts(sc))
        for cl in ("nan", -1.0, "-inf"):
            ex_case(rule, "err-clip-%s" % cl, ex_opts(clip=cl))
            ex_case(rule, "err-max-norm-%s" % cl, ex_opts(max_norm=cl))
        ex_case(rule, "err-flag-bit2", ex_opts(flags=SKIP_NONFINITE, unknown_bit=2))
        ex_case(rule, "err-flag-bit31", ex_opts(unknown_bit=31))
        # precedence: configuration, options, arrays, norm
        ex_case(rule, "err-config-before-options", ex_opts("nan"), kw=dict(lr=-1.0))
        ex_case(rule, "err-null-config-before-options", ex_opts(clip="nan"), null_cfg=True)
        ex_case(rule, "err-options-before-arrays", ex_opts(0.0),
                lst=plist(tensor(n_small(9), [own(), NULL] + owns(rule)[2:])))
        ex_case(rule, "err-arrays-before-norm", ex_opts(flags=SKIP_NONFINITE, inject=(INJ_NAN, 0, 0)),
                lst=plist(tensor(n_small(9), [own(), alias(0)] + owns(rule)[2:])))
        ex_case(rule, "err-null-grad", ex_opts(max_norm=1.0),
                lst=plist(tensor(n_small(9), owns(rule)), tensor(n_small(3), [own(), NULL] + owns(rule)[2:])))
        ex_case(rule, "err-wild-grad", ex_opts(flags=SKIP_NONFINITE),
                lst=plist(tensor(n_small(9), owns(rule)), tensor(n_small(3), [own(), wild(1)] + owns(rule)[2:])))
        ex_case(rule, "err-null-list", ex_opts(max_norm=1.0), null_list=True)
        ex_case(rule, "err-null-list-bad-options", ex_opts(-1.0), null_list=True)
        ex_case(rule, "count-0", ex_opts(flags=SKIP_NONFINITE, max_norm=0.0), lst=plist())
        ex_case(rule, "shared-grads", ex_opts(2.0, clip=0.5, max_norm=1.0, flags=SKIP_NONFINITE, plan_given=True),
                SMALL, lst=plist(tensor(n_small(20), owns(rule)), tensor(n_small(20), [own(), alias(1)] + owns(rule)[2:])))
        ex_case(rule, "options-null", ex_opts(-1.0, opt_null=True, plan_given=True))
        ex_case(rule, "both", ex_opts(0.5, max_norm=1.0, flags=SKIP_NONFINITE), SMALL, what=BOTH,
                lst=tensor(n_small(33), owns(rule)) + plist(tensor(n_small(33), owns(rule)), tensor(n_small(7), owns(rule))))
        ex_case(rule, "long-list", ex_opts("1/3", clip=0.5, max_norm=1.0, flags=SKIP_NONFINITE, plan_given=True,
                                           parts=40),
                SMALL, what=LONG, lst=long_list(100, 1, shared=rule % 2 == 1, nmax_code=6, seed=3), cuts=(7, 300, 100))
    # Several norm blocks (4096 elements): a large tensor between two small
    # ones, clipped by norm, the plan cut inside its blocks (one seed: it is slow).
    ex_case(SGD, "large-n-blocks", ex_opts(0.5, max_norm=1.0, flags=SKIP_NONFINITE, plan_given=True, parts=7),
            mode=SMALL, kw=dict(mom=0.9),
            lst=plist(tensor(n_small(5), owns(SGD)), tensor(n_large(3), owns(SGD, (1, 2, 3))),
                      tensor(n_small(100), owns(SGD))), cuts=(4100, 8200, 40000, 65530), data_len=4096)

    # Storage types (after the seeds above, so those keep their names): the
    # list case also makes a typed step of the list's shapes, its arrays
    # converted from the list's floats or raw data bytes, every type of every
    # array, master weights, split pairs, stochastic rounding, a plan over
    # cuts snapped to the 8-bit blocks or not (RMSFUSE_E_BLOCK), and each
    # refused storage, NULL extra and scale arrays, a NULL list, a bad
    # configuration first.
    storages = [  # (name, typed_spec keywords)
        ("bf16-grad", dict(grad=G_BF16)),
        ("f16-grad", dict(grad=G_F16)),
        ("bf16-param", dict(param=P_BF16)),
        ("f16-param", dict(param=P_F16, grad=G_F16)),
        ("bf16-master", dict(param=P_BF16, grad=G_BF16, master=True)),
        ("f16-master-sr", dict(param=P_F16, master=True, sr=True, seed=7, step=3)),
        ("split", dict(param=P_SPLIT, grad=G_BF16)),
        ("bf16-state", dict(state=S_BF16)),
        ("q8", dict(state=S_Q8)),
        ("q8-linear", dict(state=S_Q8L, grad=G_F16)),
        ("bf16-sr-q8", dict(param=P_BF16, sr=True, state=S_Q8, seed=200, step=9)),
        ("split-q8-linear", dict(param=P_SPLIT, state=S_Q8L)),
        ("master-bf16-state", dict(param=P_BF16, grad=G_F16, state=S_BF16, master=True)),
        ("f32", dict()),
    ]

    def typed_list(rule, mis=0):
        return plist(tensor(n_small(17), owns(rule, (mis, 1, 2, 3, 0))), tensor(n_small(0), [NULL] * SLOTS[rule]),
                     tensor(n_small(300), owns(rule, (0, 4, 8, 12, 16))), tensor(n_small(256), owns(rule)))

    for rule in range(4):
        for i, (name, kw) in enumerate(variants(rule)[::4]):
            sname, skw = storages[(i + 3 * rule) % len(storages)]
            skw = dict(skw, fill=(FILL_CONVERTED, FILL_RAW, FILL_MIXED)[i % 3] if "q8" in sname else i % 2,
                       unsnapped=i % 4 == 3)
            add_typed(rule, "%s-%s" % (name, sname), op_byte(LIST, (SMALL, MIXED, SPECIAL, RAW)[i % 4]),
                      config(rule, **kw),
                      typed_list(rule, i % 4) + plan(cuts=(5, 256 + i, 317, 600), order=i % 4, snap=i % 2 == 0)
                      + typed_spec(**skw), data_len=256)
        for sname, skw in storages:
            add_typed(rule, sname, op_byte(LIST, SMALL), config(rule, mom=0.5, flags=FLUSH)
                      if rule in (RMSPROP, SGD) else config(rule, flags=FLUSH | (AMSGRAD if rule == ADAM else 0)),
                      typed_list(rule) + plan(cuts=(17, 273, 317)) + typed_spec(**skw))
        for bad in range(BAD_STATE_F16, BAD_NULL_STORAGE + 1):
            add_typed(rule, "err-storage-%d" % bad, op_byte(LIST, SMALL), config(rule),
                      typed_list(rule) + plan() + typed_spec(param=P_BF16, state=S_Q8, bad=bad))
        add_typed(rule, "err-master-f32-param", op_byte(LIST, SMALL), config(rule),
                  typed_list(rule) + plan() + typed_spec(master=True))
        add_typed(rule, "err-sr-split", op_byte(LIST, SMALL), config(rule),
                  typed_list(rule) + plan() + typed_spec(param=P_SPLIT, sr=True))
        add_typed(rule, "err-grad-q8", op_byte(LIST, SMALL), config(rule),
                  typed_list(rule) + plan() + typed_spec(grad=G_BAD))
        add_typed(rule, "err-null-extra", op_byte(LIST, SMALL), config(rule),
                  typed_list(rule) + plan() + typed_spec(param=P_F16, master=True, null_kind=NULL_EXTRA, null_at=2))
        add_typed(rule, "err-null-scale", op_byte(LIST, SMALL),
                  config(rule, mom=0.9) if rule in (RMSPROP, SGD) else config(rule),
                  typed_list(rule) + plan() + typed_spec(state=S_Q8L, null_kind=NULL_SCALE, null_at=3))
        add_typed(rule, "err-null-list", op_byte(LIST, SMALL, null_list=True), config(rule),
                  typed_list(rule) + plan() + typed_spec(param=P_SPLIT))
        add_typed(rule, "err-config-first", op_byte(LIST, SMALL), config(rule, lr=-1.0),
                  typed_list(rule) + plan() + typed_spec(bad=BAD_PARAM_9))
        add_typed(rule, "count-0", op_byte(LIST, SMALL), config(rule), plist() + plan() + typed_spec(state=S_Q8))
        add_typed(rule, "unsnapped-q8", op_byte(LIST, MIXED), config(rule, mom=0.9) if rule in (RMSPROP, SGD)
                  else config(rule), typed_list(rule) + plan(cuts=(1, 256, 300, 317, 556, 573)) +
                  typed_spec(param=P_BF16, state=S_Q8, unsnapped=True))
        add_typed(rule, "long-list", op_byte(LONG, SMALL), config(rule),
                  long_list(90, 3, nmax_code=9, seed=5) + plan(cuts=(100, 7, 700)) +
                  typed_spec(param=P_F16, grad=G_BF16, state=S_Q8, master=True, sr=True, seed=1, step=1))
        add_typed(rule, "with-options", op_byte(LIST, SMALL, ex=True), config(rule),
                  typed_list(rule) + plan(cuts=(5, 30, 44), snap=True) + ex_opts(0.5, max_norm=1.0) +
                  typed_spec(param=P_BF16, grad=G_BF16, state=S_BF16))

    return out


def same_files(d, want):
    have = sorted(os.listdir(d)) if os.path.isdir(d) else []
    if have != sorted(want):
        print("%s: files differ: run tests/fuzz/gen_corpus.py" % d)
        return False
    for name, body in want.items():
        with open(os.path.join(d, name), "rb") as f:
            if f.read() != body:
                print("%s differs: run tests/fuzz/gen_corpus.py" % os.path.join(d, name))
                return False
    return True


def write_files(d, want):
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        os.remove(os.path.join(d, name))
    for name, body in want.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(body)


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    d = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    want = seeds()
    if check:
        if not same_files(d, want):
            return 1
        print("%d seeds up to date" % len(want))
        return 0
    write_files(d, want)
    print("wrote %d seeds to %s" % (len(want), d))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

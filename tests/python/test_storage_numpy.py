"""Storage types: the library's conversions and stochastic rounding, bit for bit, against NumPy.

Run: /usr/bin/python3 tests/python/run.py test_storage_numpy   (ctest: python_storage_numpy)

docs/math.md, "Storage types", defines every conversion on the bits.  This
module implements each definition again in vectorised NumPy integer
arithmetic (uint32 / uint64, from that text only, not from the C code) and
checks the library against it on every ISA the build has and this CPU runs:

* TestOracle: the oracle itself, without the library: bf16 and f16 against
  torch's and NumPy's casts (round to nearest even) for every non-NaN input
  below, f16 decoding against NumPy's exact float16, the 8-bit code maps
  against a brute-force nearest-code search, the round-trip bounds, the hash
  against plain-Python splitmix64 / lowbias32 and splitmix64's known first
  output.
* TestConvert: rmsfuse_convert_to_f32 on all 65536 bf16 and all 65536 f16
  patterns; rmsfuse_convert_from_f32 to bf16 and f16 on every rounding
  boundary of every 16-bit output (the value, the midpoint to its neighbour,
  one float32 ulp either side), special values (NaN payloads, signalling
  included, +-Inf, +-0, float32 subnormals, FLT_MAX, values rounding to
  infinity) and a few million random float32 patterns; RMSFUSE_Q8 and
  RMSFUSE_Q8_LINEAR, signed and unsigned maps: codes and block scales of
  random blocks with special values (zeros, subnormal-only blocks, NaN, Inf,
  ties, amax near FLT_MAX and FLT_MIN, n not a multiple of 256), decoding of
  every code at many scales, the round-trip error bounds, and
  encode(decode(c)) == c for every code an encoding can produce; torch's
  casts once more against the library; refusals.  Two readings of the text
  are pinned down: in a block below FLT_MIN the signed map's byte keeps the
  element's sign (0x80 for a negative one: "every code is 0" is c, the
  magnitude); and +-Inf in a block of scale Inf, whose y = Inf * 0 is a NaN
  with the platform's sign, gets the NaN code, which has no sign (0x7F).
* TestStochasticRounding: RMSFUSE_STOCHASTIC_ROUNDING through
  rmsfuse_sgd_step_typed (lr 0 with master weights, so the written bf16/f16
  param is the rounding of the unchanged float32 master; and without master
  weights, lr a power of two, the param read from bf16/f16), several seeds,
  steps, streams and tensor sizes; rmsfuse_sgd_plan_typed run in random
  sub-ranges gives the same bits; the rounding is unbiased (mean of 2^16
  roundings of one value within 6 sigma of the value).

The conversion functions and the typed step are called through the
package's ctypes handle (rmsfuse._lib.lib) with signatures declared here from
include/rmsfuse_common.h and include/rmsfuse_sgd.h.
"""

import ctypes
import unittest

import numpy as np

import rmsfuse
from rmsfuse import _lib

try:  # optional: the cross-check against torch's casts
    import torch
except ImportError:  # pragma: no cover
    torch = None

# ---- constants of include/rmsfuse_common.h ----------------------------------------------------------------------
F32, BF16, F16, SPLIT_BF16, Q8, Q8_LINEAR = 0, 1, 2, 3, 4, 5
Q8_BLOCK = 256
MASTER_WEIGHTS, STOCHASTIC_ROUNDING = 1, 2
OK, E_NULL_ARRAY, E_STORAGE = 0, -2, -29

U32 = np.uint32
U64 = np.uint64
FLT_MIN = np.float32(np.finfo(np.float32).tiny)
FLT_MAX_BITS = 0x7F7FFFFF


def u32(x):
    return np.asarray(x, dtype=np.uint32)


def f32_bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def bits_f32(u):
    return np.ascontiguousarray(u, dtype=np.uint32).view(np.float32)


# =================================================================================================================
# The oracle: docs/math.md, "Storage types", in NumPy integer arithmetic (modulo 2^32, logical shifts).
# =================================================================================================================

def bf16_to_f32(h):
    """bf16 read: h << 16 (float32 bits)."""
    return u32(h).astype(np.uint32) << U32(16)


def f32_to_bf16(u, r=None):
    """bf16 written from float32 bits u: NaN -> (u >> 16) | 0x0040; else (u + 0x7FFF + ((u >> 16) & 1)) >> 16;
    with r (stochastic rounding) the non-NaN values become (u + (r >> 16)) >> 16."""
    u = u32(u)
    if r is None:
        rounded = (u + U32(0x7FFF) + ((u >> U32(16)) & U32(1))) >> U32(16)
    else:
        rounded = (u + (u32(r) >> U32(16))) >> U32(16)
    nan = (u & U32(0x7FFFFFFF)) > U32(0x7F800000)
    return np.where(nan, (u >> U32(16)) | U32(0x0040), rounded).astype(np.uint16)


def f16_to_f32(h):
    """f16 read (float32 bits)."""
    h = u32(h)
    E = (h >> U32(10)) & U32(31)
    M = h & U32(0x3FF)
    S = (h & U32(0x8000)) << U32(16)
    inf_nan = S | U32(0x7F800000) | (M << U32(13))
    normal = S | ((E + U32(112)) << U32(23)) | (M << U32(13))
    sub = S | f32_bits(M.astype(np.float32) * np.float32(2.0 ** -24))  # M x 2^-24, exact
    return np.where(E == 31, inf_nan, np.where(E > 0, normal, sub)).astype(np.uint32)


def _round_shift(m, sh, r=None):
    """The subnormal rounding of docs/math.md: t = min(sh, 31), m' = m >> min(sh - t, 31), (m' + b) >> t with
    b = (1 << (t - 1)) - 1 + ((m' >> t) & 1) (nearest even), or b = r & ((1 << t) - 1) (stochastic)."""
    sh = u32(sh)
    t = np.minimum(sh, U32(31))
    m2 = u32(m) >> np.minimum(sh - t, U32(31))
    if r is None:
        b = (U32(1) << (t - U32(1))) - U32(1) + ((m2 >> t) & U32(1))
    else:
        b = u32(r) & ((U32(1) << t) - U32(1))
    return (m2 + b) >> t


def f32_to_f16(u, r=None):
    """f16 written from float32 bits u (round to nearest even, or stochastic with r)."""
    u = u32(u)
    S = (u >> U32(16)) & U32(0x8000)
    a = u & U32(0x7FFFFFFF)
    e = a >> U32(23)
    nan = a > U32(0x7F800000)
    big = a >= U32(0x47800000)
    normal = e >= U32(113)
    if r is None:
        b = U32(0xFFF) + ((a >> U32(13)) & U32(1))
    else:
        b = u32(r) & U32(0x1FFF)
    c_normal = (a - U32(0x38000000) + b) >> U32(13)   # wraps where not selected
    m = (a & U32(0x7FFFFF)) | np.where(e > 0, U32(0x800000), U32(0))
    sh = U32(126) - np.maximum(e, U32(1))              # wraps where e > 126 (not selected)
    c_sub = _round_shift(m, np.where(normal, U32(14), sh), r)
    out = np.where(nan, U32(0x7E00) | ((a >> U32(13)) & U32(0x3FF)),
                   np.where(big, U32(0x7C00), np.where(normal, c_normal, c_sub)))
    return (S | out).astype(np.uint16)


# ---- 8-bit block-quantised state --------------------------------------------------------------------------------

def _q8_bias(nonneg):
    return 31 if nonneg else 15


def q8_code_of_magnitude(a, B):
    """The float-like code of |y| (float32 bits a, 0 <= |y| <= 1): round to nearest even."""
    a = u32(a)
    e = a >> U32(23)
    normal = a >= U32((128 - B) << 23)
    c_normal = ((a + U32(0x7FFFF) + ((a >> U32(20)) & U32(1))) >> U32(20)) - U32((127 - B) << 3)
    m = (a & U32(0x7FFFFF)) | np.where(e > 0, U32(0x800000), U32(0))
    sh = U32(148 - B) - np.maximum(e, U32(1))
    c_sub = _round_shift(m, np.where(normal, U32(21), sh))
    return np.where(normal, c_normal, c_sub).astype(np.uint32)


def q8_magnitude_of_code(c, B):
    """The float32 value of a magnitude code c (no sign), as docs/math.md builds it."""
    c = u32(c)
    E = c >> U32(3)
    M = c & U32(7)
    normal = bits_f32(((E + U32(127 - B)) << U32(23)) | (M << U32(20)))
    sub = M.astype(np.float32) * np.float32(2.0 ** (-B - 2))
    return np.where(E > 0, normal, sub).astype(np.float32)


def _blocks(x):
    """x as (blocks, 256), the last block padded with NaN (ignored by amax, codes dropped)."""
    n = x.size
    nb = -(-n // Q8_BLOCK)
    xb = np.full(nb * Q8_BLOCK, np.nan, dtype=np.float32)
    xb[:n] = x
    return xb.reshape(nb, Q8_BLOCK)


def q8_encode(x, nonneg, linear):
    """(codes uint8[n], scales float32[ceil(n/256)]) of float32 x, RMSFUSE_Q8 (linear False) or Q8_LINEAR."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.size
    xb = _blocks(x)
    with np.errstate(invalid="ignore", over="ignore", under="ignore", divide="ignore"):
        xnan = np.isnan(xb)
        amax = np.where(xnan, np.float32(0), np.abs(xb)).max(axis=1).astype(np.float32)
        tiny = amax < FLT_MIN
        scale = np.where(tiny, np.float32(0), amax).astype(np.float32)
        q = (np.float32(1) / np.where(tiny, np.float32(1), amax)).astype(np.float32)
        y = (xb * q[:, None]).astype(np.float32)
        ynan = np.isnan(y)
        ay = np.minimum(np.abs(np.where(ynan, np.float32(0), y)), np.float32(1)).astype(np.float32)
        sign = (f32_bits(xb) >> U32(31)).astype(np.uint32)
        if not linear:
            B = _q8_bias(nonneg)
            c = q8_code_of_magnitude(f32_bits(ay), B)
            if nonneg:
                code, nan_code = c, np.full_like(c, 0xFF)
            else:
                code, nan_code = c | (sign << U32(7)), np.full_like(c, 0x7F)  # the NaN code has no sign
        else:
            k = np.float32(254 if nonneg else 127)
            c = np.rint((ay * k).astype(np.float32)).astype(np.int64)  # rint: nearest, ties to even
            if nonneg:
                code, nan_code = c, np.full_like(c, 255)
            else:
                code, nan_code = np.where(sign == 1, -c, c) & 0xFF, np.full_like(c, 0x80)
        # a block below FLT_MIN: every code 0 (the signed map's sign bit kept: the byte of a negative
        # element is 0x80, as for a value that rounds to zero in another block)
        code = np.where(tiny[:, None], sign << U32(7) if not (linear or nonneg) else 0, code)
        code = np.where(ynan | xnan, nan_code, code)
    return code.reshape(-1)[:n].astype(np.uint8), scale


def q8_is_nan_code(codes, nonneg, linear):
    codes = np.asarray(codes, dtype=np.uint8)
    if nonneg:
        return codes == 0xFF
    if linear:
        return codes == 0x80
    return (codes & 0x7F) == 0x7F


def q8_decode(codes, scales, nonneg, linear):
    """float32[n] of 8-bit codes and block scales: code value x scale (one float32 product); NaN codes -> NaN."""
    codes = np.asarray(codes, dtype=np.uint8)
    n = codes.size
    sc = np.repeat(np.asarray(scales, dtype=np.float32), Q8_BLOCK)[:n]
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        if not linear:
            B = _q8_bias(nonneg)
            if nonneg:
                v = q8_magnitude_of_code(codes, B)
            else:
                v = q8_magnitude_of_code(codes & 0x7F, B)
                v = np.where(codes >= 0x80, -v, v).astype(np.float32)
            out = (v * sc).astype(np.float32)
        else:
            k = np.float32(1) / np.float32(254 if nonneg else 127)
            factor = (sc * k).astype(np.float32)
            c = codes.astype(np.int64) if nonneg else codes.view(np.int8).astype(np.int64)
            out = (c.astype(np.float32) * factor).astype(np.float32)
    return np.where(q8_is_nan_code(codes, nonneg, linear), np.float32(np.nan), out).astype(np.float32)


# ---- stochastic rounding: r(i) ----------------------------------------------------------------------------------

_M64 = (1 << 64) - 1


def mix64(z):
    """splitmix64's finaliser, z += 0x9E3779B97F4A7C15 included, modulo 2^64 (uint64 arrays)."""
    with np.errstate(over="ignore"):
        z = np.asarray(z, dtype=np.uint64) + U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
        return z ^ (z >> U64(31))


def mix32(x):
    """lowbias32, modulo 2^32 (uint32 arrays)."""
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=np.uint32)
        x = x ^ (x >> U32(16))
        x = x * U32(0x7FEB352D)
        x = x ^ (x >> U32(15))
        x = x * U32(0x846CA68B)
        return x ^ (x >> U32(16))


def sr_random(seed, step, stream, i):
    """r(i) of docs/math.md for element indices i (uint64 array) of one tensor."""
    K = mix64(mix64(mix64(np.array([seed], dtype=np.uint64)) ^ U64(step)) ^ U64(stream))
    i = np.asarray(i, dtype=np.uint64)
    K2 = mix64(K ^ (i >> U64(32)))
    with np.errstate(over="ignore"):
        return mix32(((i + K2) & U64(0xFFFFFFFF)).astype(np.uint32))


def _mix64_py(z):
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _mix32_py(x):
    M = 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M
    x ^= x >> 15
    x = (x * 0x846CA68B) & M
    return x ^ (x >> 16)


def _sr_random_py(seed, step, stream, i):
    K = _mix64_py(_mix64_py(_mix64_py(seed) ^ step) ^ stream)
    K2 = _mix64_py(K ^ (i >> 32))
    return _mix32_py((i + K2) & 0xFFFFFFFF)


# =================================================================================================================
# Inputs
# =================================================================================================================

def nan_payloads():
    """float32 NaN bit patterns: both signs, quiet and signalling, many payloads."""
    rng = np.random.default_rng(11)
    mant = [1, 2, 0x1FFF, 0x2000, 0x3FFF, 0xFFFF, 0x10000, 0x1FFFF, 0x3FFFFF, 0x400000, 0x400001, 0x7FFFFF,
            0x7FE000, 0x7FFF00, 0x40E000, 0x00E000]
    mant += [1 << k for k in range(23)] + [(1 << 23) - (1 << k) for k in range(23)]
    mant += list(rng.integers(1, 1 << 23, 2000))
    mant = np.array(mant, dtype=np.uint32)
    return np.concatenate([U32(0x7F800000) | mant, U32(0xFF800000) | mant])


def special_f32():
    rng = np.random.default_rng(12)
    mags = [0, 1, 2, 3, 0x7FFFFF, 0x400000, 0x3FFFFF, 0x800000, 0x800001, FLT_MAX_BITS, FLT_MAX_BITS - 1,
            0x7F800000, 0x7F7F8000, 0x7F7F7FFF, 0x7F7F8001, 0x7F7F0000, 0x7F7EFFFF,
            0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0x477FFFFF, 0x47800000, 0x47800001, 0x501502F9,
            0x38800000, 0x387FFFFF, 0x387FF000, 0x387FE000, 0x33000000, 0x33000001, 0x32FFFFFF, 0x33800000,
            0x337FFFFF, 0x2F800000, 0x1F800000, 0x0F800000, 0x3F800000, 0x3F808000, 0x3F818000, 0x3F800001]
    mags += list(rng.integers(1, 1 << 23, 3000))                      # float32 subnormals
    mags += list(rng.integers(0x800000, 0x39000000, 3000))            # below the f16 normal range
    mags = np.array(mags, dtype=np.uint32)
    return np.concatenate([mags, mags | U32(0x80000000), nan_payloads()])


def bf16_boundaries():
    """Every bf16 value's float32 pattern and, towards its upper neighbour, one ulp below the midpoint, the
    midpoint, one above, and the last float32 before the neighbour (both signs; all 2^16 outputs)."""
    h = np.arange(1 << 16, dtype=np.uint32) << U32(16)
    return (h[:, None] + u32([0, 0x7FFF, 0x8000, 0x8001, 0xFFFF])[None, :]).reshape(-1)


def f16_boundaries():
    """Every f16 value's float32 pattern +-1 ulp and, towards its upper neighbour (65536 above 65504), the
    float32 midpoint +-1 ulp, both signs."""
    h = np.arange(0x7C00, dtype=np.uint32)
    lo = bits_f32(f16_to_f32(h)).astype(np.float64)
    hi = np.append(lo[1:], 65536.0)
    mid = f32_bits(((lo + hi) / 2).astype(np.float32))  # exact: 12 significant bits
    assert np.all(bits_f32(mid).astype(np.float64) == (lo + hi) / 2)
    val = f32_bits(lo.astype(np.float32))
    d = u32([0, 1, 0xFFFFFFFF])  # +0, +1, -1 (modulo 2^32)
    pats = np.concatenate([(val[:, None] + d[None, :]).reshape(-1), (mid[:, None] + d[None, :]).reshape(-1)])
    pats = pats[pats <= U32(0x7F800000)]  # the -1 of +0 wraps
    return np.concatenate([pats, pats | U32(0x80000000)])


def random_f32_bits(n, seed=13):
    return np.random.default_rng(seed).integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)


_CACHE = {}


def conversion_inputs():
    """name -> float32 bit patterns (computed once)."""
    if "inputs" not in _CACHE:
        _CACHE["inputs"] = {"special": special_f32(), "bf16 boundaries": bf16_boundaries(),
                            "f16 boundaries": f16_boundaries(), "random": random_f32_bits(3_000_000)}
    return _CACHE["inputs"]


def expected_16(kind, name):
    key = (kind, name)
    if key not in _CACHE:
        u = conversion_inputs()[name]
        _CACHE[key] = f32_to_bf16(u) if kind == BF16 else f32_to_f16(u)
    return _CACHE[key]


def q8_code_values(B):
    """The float64 values of every magnitude code up to 1 (the codes an encoding can produce)."""
    out = []
    for c in range(256):
        E, M = c >> 3, c & 7
        v = 2.0 ** (E - B) * (1 + M / 8) if E > 0 else M * 2.0 ** (-B - 2)
        if v <= 1:
            out.append(v)
    return np.array(out)


def q8_blocks(seed, nonneg, linear, nblocks=600):
    """Blocks of many kinds, flattened (the caller cuts the tail to a size that is not a multiple of 256)."""
    rng = np.random.default_rng(seed)
    B = _q8_bias(nonneg)
    blocks = []
    kinds = 16
    for k in range(nblocks):
        kind = k % kinds
        x = None
        if kind == 0:    # normal values, one exponent range
            x = rng.standard_normal(Q8_BLOCK) * 10.0 ** rng.uniform(-30, 30)
        elif kind == 1:  # wide dynamic range: the subnormal codes and zero
            x = rng.choice([-1, 1], Q8_BLOCK) * 2.0 ** rng.uniform(-45 if B == 31 else -25, 0, Q8_BLOCK)
            x *= 2.0 ** rng.integers(-60, 60)
        elif kind == 2:  # zeros among values, -0 included
            x = rng.standard_normal(Q8_BLOCK)
            x[rng.random(Q8_BLOCK) < 0.5] = 0.0
            x[rng.random(Q8_BLOCK) < 0.2] = -0.0
        elif kind == 3:  # all zero
            x = np.zeros(Q8_BLOCK)
            x[::3] = -0.0
        elif kind == 4:  # subnormal only: scale 0
            x = bits_f32(rng.integers(0, 1 << 23, Q8_BLOCK, dtype=np.uint32) | (
                rng.integers(0, 2, Q8_BLOCK, dtype=np.uint32) << U32(31)))
        elif kind == 5:  # NaN elements among values
            x = rng.standard_normal(Q8_BLOCK).astype(np.float32)
            pl = nan_payloads()
            idx = rng.choice(Q8_BLOCK, 40, replace=False)
            x[idx] = bits_f32(pl[rng.integers(0, pl.size, 40)])
        elif kind == 6:  # an infinity (scale Inf), NaN too
            x = rng.standard_normal(Q8_BLOCK).astype(np.float32)
            x[rng.integers(0, Q8_BLOCK, 3)] = np.inf
            x[rng.integers(0, Q8_BLOCK, 2)] = -np.inf
            x[rng.integers(0, Q8_BLOCK)] = np.nan
        elif kind == 7:  # ties and near-ties of the code map, amax a power of two (y = x * q exact)
            p = 2.0 ** rng.integers(-100, 100)
            if not linear:
                v = q8_code_values(B)
                mids = np.float32((v[:-1] + v[1:]) / 2)
            else:
                kk = 254 if nonneg else 127
                mids = (np.arange(kk) + np.float32(0.5)).astype(np.float32) / np.float32(kk)
            mb = f32_bits(mids)
            cand = np.concatenate([mb, mb + U32(1), mb - U32(1)])
            y = bits_f32(cand[rng.integers(0, cand.size, Q8_BLOCK)])
            x = y.astype(np.float64) * p * rng.choice([-1, 1], Q8_BLOCK)
            x[0] = p
        elif kind == 8:  # amax near FLT_MAX: q subnormal, y = amax * q may exceed 1
            x = rng.standard_normal(Q8_BLOCK) * 1e37
            x[0] = bits_f32(u32([FLT_MAX_BITS - rng.integers(0, 1 << 20)]))[0]
        elif kind == 9:  # amax exactly FLT_MIN, or the largest subnormal (scale 0)
            x = rng.uniform(-1, 1, Q8_BLOCK) * 2.0 ** -126
            x[0] = float(FLT_MIN) if rng.random() < 0.5 else -float(FLT_MIN)
            if k % 32 == 9:
                x = bits_f32(rng.integers(0, 1 << 23, Q8_BLOCK, dtype=np.uint32))
                x[0] = bits_f32(u32([0x7FFFFF]))[0]
        elif kind == 10:  # all NaN
            x = np.full(Q8_BLOCK, np.nan)
        elif kind == 11:  # random float32 patterns (NaN, Inf, subnormal, huge)
            x = random_f32_bits(Q8_BLOCK, seed + k)
        elif kind == 12:  # random finite patterns
            u = random_f32_bits(Q8_BLOCK, seed + k)
            x = bits_f32(np.where((u & U32(0x7F800000)) == U32(0x7F800000), u & U32(0x807FFFFF), u))
        elif kind == 13:  # values with one huge outlier (small elements in the low codes)
            x = rng.standard_normal(Q8_BLOCK) * 1e-3
            x[rng.integers(0, Q8_BLOCK)] = 1e6
        elif kind == 14:  # identical magnitudes
            x = np.full(Q8_BLOCK, rng.standard_normal()) * rng.choice([-1, 1], Q8_BLOCK)
        else:            # random float32 values near 1 (|y| near 1, the clamp)
            x = 1 - rng.random(Q8_BLOCK) * 1e-6
        x = np.asarray(x, dtype=np.float32) if np.asarray(x).dtype != np.float32 else x
        blocks.append(x)
    x = np.concatenate(blocks).astype(np.float32)
    if nonneg:  # values >= 0 or NaN (NaN bits kept)
        x = np.where(np.isnan(x), x, np.abs(x)).astype(np.float32)
    return x


# =================================================================================================================
# The library, through the package's ctypes handle
# =================================================================================================================

class Storage(ctypes.Structure):
    _fields_ = [("param", ctypes.c_uint), ("grad", ctypes.c_uint), ("state", ctypes.c_uint),
                ("flags", ctypes.c_uint), ("seed", ctypes.c_ulonglong), ("step", ctypes.c_ulonglong)]


class TypedTensor(ctypes.Structure):
    _fields_ = [("param", ctypes.c_void_p), ("param_extra", ctypes.c_void_p), ("grad", ctypes.c_void_p),
                ("state", ctypes.c_void_p * 4), ("scale", ctypes.POINTER(ctypes.c_float) * 4),
                ("n", ctypes.c_size_t), ("stream", ctypes.c_ulonglong)]


class SgdConfig(ctypes.Structure):
    _fields_ = [("lr", ctypes.c_double), ("momentum", ctypes.c_double), ("dampening", ctypes.c_double),
                ("weight_decay", ctypes.c_double), ("flags", ctypes.c_uint)]


class _Api:
    """Fresh function pointers (lib[name], not lib.name: the package's own declarations stay untouched)."""

    def __init__(self, lib):
        vp, sz, i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int

        def fn(name, res, args):
            f = lib[name]
            f.restype, f.argtypes = res, args
            return f

        self.from_f32 = fn("rmsfuse_convert_from_f32", i, [ctypes.c_uint, i, vp, vp, vp, sz])
        self.to_f32 = fn("rmsfuse_convert_to_f32", i, [ctypes.c_uint, i, vp, vp, vp, sz])
        tp = ctypes.POINTER(TypedTensor)
        cp, spt = ctypes.POINTER(SgdConfig), ctypes.POINTER(Storage)
        self.sgd_step_typed = fn("rmsfuse_sgd_step_typed", i, [cp, spt, tp, sz, vp, vp])
        self.sgd_check_typed = fn("rmsfuse_sgd_check_typed", i, [cp, spt, tp, sz])
        self.sgd_plan_typed = fn("rmsfuse_sgd_plan_typed", i, [cp, spt, tp, sz, ctypes.POINTER(vp)])
        self.plan_run = fn("rmsfuse_plan_run", i, [vp, sz, sz])
        self.plan_elements = fn("rmsfuse_plan_elements", sz, [vp])
        self.plan_free = fn("rmsfuse_plan_free", None, [vp])


def api():
    if "api" not in _CACHE:
        try:
            _CACHE["api"] = _Api(_lib.lib)
        except AttributeError as e:
            raise AssertionError(f"{_lib.path} has no storage-type functions ({e})") from None
    return _CACHE["api"]


def _ptr(a):
    return None if a is None else a.ctypes.data


def lib_from_f32(kind, x, nonneg=False):
    """The library's codes (uint16 or uint8) and, for 8-bit types, block scales of float32 x."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.size
    if kind in (BF16, F16):
        dst, scale = np.full(n, 0xA5A5, dtype=np.uint16), None
    else:
        dst, scale = np.full(n, 0xA5, dtype=np.uint8), np.full(-(-n // Q8_BLOCK), -7.0, dtype=np.float32)
    st = api().from_f32(kind, int(nonneg), _ptr(x), _ptr(dst), _ptr(scale), n)
    if st != OK:
        raise AssertionError(f"rmsfuse_convert_from_f32({kind}, {nonneg}, n={n}) returned {st}")
    return dst, scale


def lib_to_f32(kind, codes, scale=None, nonneg=False):
    codes = np.ascontiguousarray(codes)
    n = codes.size
    dst = np.full(n, -9.0, dtype=np.float32)
    st = api().to_f32(kind, int(nonneg), _ptr(codes), _ptr(scale), _ptr(dst), n)
    if st != OK:
        raise AssertionError(f"rmsfuse_convert_to_f32({kind}, {nonneg}, n={n}) returned {st}")
    return dst


def isas():
    return [name for name in rmsfuse.isa_names() if rmsfuse.isa_supported(name)]


def first_mismatch(got, want, inputs=None, width=8):
    """A message naming the first differing element and how many differ."""
    got, want = np.asarray(got), np.asarray(want)
    bad = np.flatnonzero(got != want)
    if bad.size == 0:
        return None
    k = bad[0]
    msg = f"{bad.size} of {got.size} differ; first at [{k}]: got 0x{int(got[k]):0{width}X}, " \
          f"want 0x{int(want[k]):0{width}X}"
    if inputs is not None:
        msg += f" (input 0x{int(np.asarray(inputs)[k]):08X})"
    return msg


# =================================================================================================================
# Tests
# =================================================================================================================

class TestOracle(unittest.TestCase):
    """The oracle against independent implementations (no library needed)."""

    def test_bf16_against_torch_and_numpy(self):
        for name, u in conversion_inputs().items():
            finite_or_inf = (u & U32(0x7FFFFFFF)) <= U32(0x7F800000)
            x = bits_f32(u[finite_or_inf])
            want = expected_16(BF16, name)[finite_or_inf]
            if torch is not None:
                got = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
                self.assertIsNone(first_mismatch(want, got, u[finite_or_inf], 4), f"{name}: oracle vs torch")
            # Independently: the nearest bf16 in float64, ties to the even pattern.
            xd = x.astype(np.float64)
            t = (u[finite_or_inf] >> U32(16)).astype(np.uint16)            # truncation (toward zero)
            lo = bits_f32(bf16_to_f32(t)).astype(np.float64)
            with np.errstate(over="ignore", invalid="ignore"):  # t + 1 may be a NaN pattern (unused)
                up = np.where((t & 0x7FFF) == 0x7F7F, np.copysign(2.0 ** 128, lo),
                              bits_f32(bf16_to_f32(t + 1)).astype(np.float64))
            with np.errstate(invalid="ignore"):
                dlo, dup = np.abs(xd - lo), np.abs(up - xd)
            take_up = (dup < dlo) | ((dup == dlo) & (t & 1 == 1))
            take_up &= ~np.isinf(xd)
            near = np.where(take_up, t + 1, t).astype(np.uint16)
            self.assertIsNone(first_mismatch(want, near, u[finite_or_inf], 4), f"{name}: oracle vs nearest")

    def test_f16_against_torch_and_numpy(self):
        for name, u in conversion_inputs().items():
            fin = (u & U32(0x7FFFFFFF)) <= U32(0x7F800000)
            x = bits_f32(u[fin])
            want = expected_16(F16, name)[fin]
            with np.errstate(over="ignore"):
                got = x.astype(np.float16).view(np.uint16)
            self.assertIsNone(first_mismatch(want, got, u[fin], 4), f"{name}: oracle vs numpy")
            if torch is not None:
                got = torch.from_numpy(x.copy()).to(torch.float16).view(torch.int16).numpy().view(np.uint16)
                self.assertIsNone(first_mismatch(want, got, u[fin], 4), f"{name}: oracle vs torch")

    def test_decoding_against_numpy_and_torch(self):
        h = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
        f16 = f16_to_f32(h)
        nan = ((h & 0x7C00) == 0x7C00) & ((h & 0x3FF) != 0)
        ref = h.view(np.float16).astype(np.float32)
        np.testing.assert_array_equal(f16[~nan], f32_bits(ref)[~nan])
        self.assertTrue(np.all(np.isnan(bits_f32(f16)[nan])))
        # f16 NaN payload kept (quiet bit as it was) and sign kept
        np.testing.assert_array_equal((f16[nan] >> U32(13)) & U32(0x3FF), h[nan] & 0x3FF)
        np.testing.assert_array_equal(f16[nan] >> U32(31), h[nan] >> 15)
        if torch is not None:
            for kind, dt in ((F16, torch.float16), (BF16, torch.bfloat16)):
                want = f16_to_f32(h) if kind == F16 else bf16_to_f32(h)
                fin = ~np.isnan(bits_f32(want))
                got = torch.from_numpy(h.view(np.int16).copy()).view(dt).float().numpy()
                np.testing.assert_array_equal(f32_bits(got)[fin], want[fin])
        # round trip: every non-NaN 16-bit value converts back to itself
        for enc, dec in ((f32_to_bf16, bf16_to_f32), (f32_to_f16, f16_to_f32)):
            back = enc(dec(h))
            keep = ~np.isnan(bits_f32(dec(h)))
            np.testing.assert_array_equal(back[keep], h[keep])

    def test_q8_codes_are_nearest(self):
        rng = np.random.default_rng(3)
        for nonneg in (False, True):
            B = _q8_bias(nonneg)
            vals = q8_code_values(B)
            codes = np.array([c for c in range(256) if (c >> 3 > 0 and 2.0 ** ((c >> 3) - B) * (1 + (c & 7) / 8) <= 1)
                              or (c >> 3 == 0)])
            self.assertEqual(codes.size, vals.size)
            self.assertEqual(int(codes[-1]), 248 if nonneg else 120)
            np.testing.assert_array_equal(q8_magnitude_of_code(codes, B).astype(np.float64), vals)
            # midpoints, +-1 ulp, random values over the range, exact code values
            mids = (vals[:-1] + vals[1:]) / 2
            mb = f32_bits(mids.astype(np.float32))
            ys = np.concatenate([bits_f32(mb), bits_f32(mb + U32(1)), bits_f32(mb - U32(1)), vals.astype(np.float32),
                                 (2.0 ** rng.uniform(-B - 6, 0, 200000)).astype(np.float32),
                                 bits_f32(rng.integers(0, 0x3F800001, 200000, dtype=np.uint32))])
            got = q8_code_of_magnitude(f32_bits(ys), B)
            yd = ys.astype(np.float64)
            pos = np.searchsorted(vals, yd, side="right") - 1          # vals[pos] <= y
            pos = np.clip(pos, 0, vals.size - 1)
            nxt = np.minimum(pos + 1, vals.size - 1)
            dlo, dup = yd - vals[pos], vals[nxt] - yd
            want = np.where((dup < dlo) | ((dup == dlo) & (codes[pos] & 1 == 1)), codes[nxt], codes[pos])
            np.testing.assert_array_equal(got, want)

    def test_q8_round_trip_bounds(self):
        for nonneg in (False, True):
            for linear in (False, True):
                with self.subTest(nonneg=nonneg, linear=linear):
                    x = q8_blocks(21, nonneg, linear)
                    codes, scales = q8_encode(x, nonneg, linear)
                    self.check_round_trip(self, x, codes, scales, nonneg, linear)

    @staticmethod
    def check_round_trip(tc, x, codes, scales, nonneg, linear):
        dec = q8_decode(codes, scales, nonneg, linear)
        with np.errstate(invalid="ignore"):  # signalling NaNs
            xb = x.astype(np.float64)
        n = x.size
        amax = np.repeat(scales.astype(np.float64), Q8_BLOCK)[:n]
        ok_block = np.isfinite(amax) & (amax > 0)
        xnan = np.isnan(xb)
        # NaN stays NaN; a NaN code decodes as NaN
        tc.assertTrue(np.all(np.isnan(dec[xnan])))
        tc.assertTrue(np.all(q8_is_nan_code(codes[xnan], nonneg, linear)))
        sel = ok_block & ~xnan
        err = np.abs(dec[sel].astype(np.float64) - xb[sel])
        ax, am = np.abs(xb[sel]), amax[sel]
        slop = ax * 2.0 ** -18 + am * 2.0 ** -20
        if not linear:
            B = _q8_bias(nonneg)
            normal = ax >= am * 2.0 ** (1 - B)
            bound = np.where(normal, ax / 16, am * 2.0 ** (-B - 3)) + slop
        else:
            bound = am / (508 if nonneg else 254) + slop
        worst = np.argmax(err - bound) if err.size else 0
        tc.assertTrue(np.all(err <= bound), f"round trip error {err[worst]:.6g} > bound {bound[worst]:.6g} "
                                            f"at x={xb[sel][worst]!r}, amax={am[worst]!r}")
        # tiny blocks (scale 0): every element decodes to +-0, within amax < FLT_MIN
        tiny = (amax == 0) & ~xnan
        tc.assertTrue(np.all(dec[tiny] == 0))
        # Inf blocks: the state has diverged: NaN where the code is 0 or the value was infinite
        infb = np.isinf(amax) & ~xnan
        zero_code = (codes & (0xFF if nonneg or linear else 0x7F)) == 0
        tc.assertTrue(np.all(np.isnan(dec[infb & (zero_code | np.isinf(xb))])))

    def test_hash(self):
        self.assertEqual(_mix64_py(0), 0xE220A8397B1DCDAF)  # splitmix64's first output from state 0
        self.assertEqual(int(mix64(np.array([0], dtype=np.uint64))[0]), 0xE220A8397B1DCDAF)
        self.assertEqual(_mix32_py(0), 0)
        rng = np.random.default_rng(4)
        for seed, step, stream in ((0, 0, 0), (1, 2, 3), (_M64, 12345, 1 << 63), (0xDEADBEEF, 1, 7)):
            i = np.concatenate([np.arange(100, dtype=np.uint64),
                                rng.integers(0, 1 << 63, 100, dtype=np.uint64) * np.uint64(2) + np.uint64(1)])
            got = sr_random(seed, step, stream, i)
            want = [_sr_random_py(seed, step, stream, int(k)) for k in i]
            np.testing.assert_array_equal(got, np.array(want, dtype=np.uint32))
        r = sr_random(5, 6, 7, np.arange(1 << 18, dtype=np.uint64))
        for sh in (0, 8, 16, 24):  # roughly uniform bytes
            counts = np.bincount(((r >> U32(sh)) & U32(0xFF)).astype(np.int64), minlength=256)
            self.assertLess(np.abs(counts - 1024).max(), 1024 * 0.2)
        # what rounding reads (r >> 16, bf16; r & 0x1FFF, f16) uncorrelated between neighbours, the next step
        # and the next tensor (stream): |correlation| within 5 standard errors (1 / sqrt(n)) of 0
        nxt = {"neighbour": sr_random(5, 6, 7, np.arange(1, (1 << 18) + 1, dtype=np.uint64)),
               "step": sr_random(5, 7, 7, np.arange(1 << 18, dtype=np.uint64)),
               "stream": sr_random(5, 6, 8, np.arange(1 << 18, dtype=np.uint64))}
        for name, r2 in nxt.items():
            for f in (lambda v: v >> U32(16), lambda v: v & U32(0x1FFF)):
                c = np.corrcoef(f(r).astype(np.float64), f(r2).astype(np.float64))[0, 1]
                self.assertLess(abs(c), 5 / np.sqrt(r.size), name)

    def test_stochastic_rounding_oracle(self):
        # SR gives the value towards zero (r = 0: truncation) or the next one away from zero, x itself where x
        # is exact, RNE's bits for NaN, Inf (and f16 values >= 65536); and it is unbiased.  (Below 2^-55 an
        # f16 SR rounds to zero whatever r: the pre-shift of docs/math.md drops everything under 2^-55.)
        rng = np.random.default_rng(5)
        u = f32_bits(sr_master_values(40000, rng))
        r = sr_random(1, 2, 3, np.arange(u.size, dtype=np.uint64))
        with np.errstate(invalid="ignore"):
            x = bits_f32(u).astype(np.float64)
        for enc, dec in ((f32_to_bf16, bf16_to_f32), (f32_to_f16, f16_to_f32)):
            s = enc(u, r)
            down = enc(u, np.zeros_like(u))
            special = np.isnan(x) | np.isinf(x) | ((enc is f32_to_f16) & (np.abs(x) >= 65536))
            np.testing.assert_array_equal(s[special], enc(u)[special])
            fin = ~special
            self.assertTrue(np.all(((s == down) | (s == down + 1))[fin]))
            with np.errstate(over="ignore", invalid="ignore"):  # NaN patterns where not finite
                dv = bits_f32(dec(down)).astype(np.float64)
                nv = bits_f32(dec(down + 1)).astype(np.float64)
            self.assertTrue(np.all(np.abs(dv[fin]) <= np.abs(x[fin])))
            self.assertTrue(np.all(np.abs(x[fin]) < np.abs(nv[fin])))
            exact = fin & (dv == x)
            np.testing.assert_array_equal(s[exact], down[exact])
            for xv in (1 / 3, -2.7182817, 1e-6, 2e-8):  # mean of 2^16 roundings of one value
                v = np.full(1 << 16, xv, dtype=np.float32)
                rr = sr_random(9, 8, 7, np.arange(v.size, dtype=np.uint64))
                vals = bits_f32(dec(enc(f32_bits(v), rr))).astype(np.float64)
                lo = float(bits_f32(dec(enc(f32_bits(v[:1]), np.zeros(1, np.uint32))))[0])
                hi = float(bits_f32(dec(enc(f32_bits(v[:1]), np.full(1, 0xFFFFFFFF, np.uint32))))[0])
                x0 = float(v[0])
                pu = (x0 - lo) / (hi - lo)
                sigma = abs(hi - lo) * np.sqrt(pu * (1 - pu) / v.size)
                self.assertLess(abs(vals.mean() - x0), 6 * sigma)


def sr_master_values(n, rng):
    """n float32 master weights for the stochastic-rounding tests: special values first, exact bf16 values,
    then every rounding region of bf16 and f16 (normal, f16 subnormal, below f16's smallest step, f16's
    largest values and overflow, random patterns with |x| < 2), mixed."""
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 65504.0, 65519.0, 65520.0, -65520.0,
                         float(FLT_MIN), 1e-45, -1e-45, 3.4028235e38, -3.4028235e38, 2.0 ** -25, 2.0 ** -24],
                        dtype=np.float32)
    bf = bits_f32(bf16_to_f32(rng.integers(0, 0x7F80, 50, dtype=np.uint32)))
    parts = [rng.standard_normal(n) * 2.0 ** rng.integers(-30, 20, n),
             rng.uniform(-1, 1, n) * 2.0 ** -14,
             rng.uniform(-1, 1, n) * 2.0 ** rng.integers(-60, -24, n),
             rng.uniform(60000, 70000, n) * rng.choice([-1, 1], n),
             bits_f32(random_f32_bits(n, int(rng.integers(1 << 30))) & U32(0xBFFFFFFF))]
    mixed = np.concatenate([p.astype(np.float32) for p in parts])
    mixed = mixed[rng.permutation(mixed.size)[:n]]
    return np.ascontiguousarray(np.concatenate([specials, bf, mixed])[:n], dtype=np.float32)


class _PerIsa(unittest.TestCase):
    def setUp(self):
        api()

    def tearDown(self):
        rmsfuse.set_isa("auto")

    def each_isa(self):
        """Every ISA this build has and this CPU runs, forced in turn (the loop's body runs in a subTest)."""
        names = isas()
        self.assertIn("scalar", names)
        for name in names:
            rmsfuse.set_isa(name)
            self.assertEqual(rmsfuse.active_isa(), name)
            yield name


class TestConvert(_PerIsa):
    def test_to_f32_every_16_bit_pattern(self):
        h = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
        want = {BF16: bf16_to_f32(h), F16: f16_to_f32(h)}
        for isa in self.each_isa():
            with self.subTest(isa=isa):
                for kind in (BF16, F16):
                    got = f32_bits(lib_to_f32(kind, h))
                    self.assertIsNone(first_mismatch(got, want[kind], h, 8),
                                      f"{isa}: convert_to_f32({'BF16' if kind == BF16 else 'F16'})")

    def test_from_f32_16_bit(self):
        inputs = conversion_inputs()
        for isa in self.each_isa():
            with self.subTest(isa=isa):
                for kind in (BF16, F16):
                    for name, u in inputs.items():
                        got, _ = lib_from_f32(kind, bits_f32(u))
                        self.assertIsNone(first_mismatch(got, expected_16(kind, name), u, 4),
                                          f"{isa}: convert_from_f32({'BF16' if kind == BF16 else 'F16'}), {name}")
                # odd sizes and offsets (vector tails, unaligned starts)
                u = inputs["random"][:1000]
                for kind in (BF16, F16):
                    want = f32_to_bf16(u) if kind == BF16 else f32_to_f16(u)
                    for start, stop in ((0, 1), (1, 2), (3, 20), (5, 37), (1, 1000), (7, 71)):
                        got, _ = lib_from_f32(kind, bits_f32(u)[start:stop])
                        np.testing.assert_array_equal(got, want[start:stop])
                        back = lib_to_f32(kind, want[start:stop])
                        np.testing.assert_array_equal(
                            f32_bits(back), (bf16_to_f32 if kind == BF16 else f16_to_f32)(want[start:stop]))

    @unittest.skipIf(torch is None, "torch is not installed")
    def test_against_torch(self):
        inputs = conversion_inputs()
        ref = {}
        for name, u in inputs.items():
            fin = (u & U32(0x7FFFFFFF)) <= U32(0x7F800000)
            t = torch.from_numpy(bits_f32(u[fin]).copy())
            ref[name] = (fin, t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16),
                         t.to(torch.float16).view(torch.int16).numpy().view(np.uint16))
        for isa in self.each_isa():
            with self.subTest(isa=isa):
                for name, u in inputs.items():
                    fin, tb, th = ref[name]
                    got, _ = lib_from_f32(BF16, bits_f32(u[fin]))
                    self.assertIsNone(first_mismatch(got, tb, u[fin], 4), f"{isa} {name}: BF16 vs torch")
                    got, _ = lib_from_f32(F16, bits_f32(u[fin]))
                    self.assertIsNone(first_mismatch(got, th, u[fin], 4), f"{isa} {name}: F16 vs torch")

    def q8_cases(self):
        for nonneg in (False, True):
            for linear in (False, True):
                yield nonneg, linear, (Q8_LINEAR if linear else Q8)

    @staticmethod
    def q8_name(nonneg, linear):
        return ("Q8_LINEAR" if linear else "Q8") + (" unsigned" if nonneg else " signed")

    def check_q8(self, isa, x, nonneg, linear, label=""):
        kind = Q8_LINEAR if linear else Q8
        name = f"{isa} {self.q8_name(nonneg, linear)}{label} n={x.size}"
        want_c, want_s = q8_encode(x, nonneg, linear)
        got_c, got_s = lib_from_f32(kind, x, nonneg)
        self.assertIsNone(first_mismatch(f32_bits(got_s), f32_bits(want_s), None), f"{name}: block scales")
        differ = got_c != want_c
        if not (linear or nonneg):
            # +-Inf in a block of scale Inf: y = Inf x 0 is the invalid operation's NaN, whose sign IEEE 754
            # leaves to the platform; test_q8_signed_nan_code_of_infinity checks the sign; here either NaN code
            differ &= ~(np.isinf(x) & ((got_c & 0x7F) == 0x7F))
        bad = np.flatnonzero(differ)
        if bad.size:
            k = bad[0]
            self.fail(f"{name}: {bad.size} codes differ; first at [{k}] (block {k // Q8_BLOCK}, scale "
                      f"{float(want_s[k // Q8_BLOCK])!r}): x bits 0x{int(f32_bits(x)[k]):08X}, "
                      f"got 0x{int(got_c[k]):02X}, want 0x{int(want_c[k]):02X}")
        dec = lib_to_f32(kind, got_c, got_s, nonneg)
        want = q8_decode(want_c, want_s, nonneg, linear)
        nan = np.isnan(want)
        self.assertTrue(np.array_equal(np.isnan(dec), nan), f"{name}: decoded NaN positions")
        self.assertIsNone(first_mismatch(f32_bits(dec)[~nan], f32_bits(want)[~nan]), f"{name}: decoded values")
        return got_c, got_s, dec

    def test_q8_encode_decode(self):
        data = {(nonneg, linear): q8_blocks(31 + 2 * nonneg + linear, nonneg, linear)
                for nonneg, linear, _ in self.q8_cases()}
        for k, isa in enumerate(self.each_isa()):
            with self.subTest(isa=isa):
                for nonneg, linear, kind in self.q8_cases():
                    x = data[(nonneg, linear)]
                    codes, scales, _ = self.check_q8(isa, x[:x.size - 77], nonneg, linear)
                    if k == 0:
                        TestOracle.check_round_trip(self, x[:x.size - 77], codes, scales, nonneg, linear)
                    for j, n in enumerate((1, 2, 17, 255, 256, 257, 511, 1000)):  # odd sizes, odd offsets
                        self.check_q8(isa, x[1000 + j:1000 + j + n], nonneg, linear)
                    if not nonneg:
                        continue
                    # the unsigned map drops a sign (docs/math.md); its header asks for values >= 0 or NaN
                    xs = data[(False, linear)][:5000]
                    self.check_q8(isa, xs, nonneg, linear, " (negative inputs: sign dropped)")

    def test_q8_codes_of_every_rounding_pattern(self):
        # Every |y| <= 1 whose low 12 bits are 0, 1, 0x800 or 0xFFF (all of bits 12-30: every tie, near-tie
        # and sticky pattern of the code map's rounding, whose tie bit is 19 or above), in blocks whose
        # largest element is 1 (scale 1, y = x exactly); the signed map with alternating signs.
        hi = np.arange(0x3F801, dtype=np.uint32) << U32(12)
        mags = (hi[:, None] | np.array([0, 1, 0x800, 0xFFF], dtype=np.uint32)).reshape(-1)
        mags = mags[mags <= U32(0x3F800000)]
        nb = -(-mags.size // (Q8_BLOCK - 1))
        u = np.full((nb, Q8_BLOCK - 1), 0x3F800000, dtype=np.uint32).reshape(-1)
        u[:mags.size] = mags
        u = np.concatenate([np.full((nb, 1), 0x3F800000, dtype=np.uint32), u.reshape(nb, -1)], axis=1).reshape(-1)
        signs = (np.arange(u.size, dtype=np.uint32) & U32(1)) << U32(31)
        for isa in self.each_isa():
            with self.subTest(isa=isa):
                for nonneg in (False, True):
                    self.check_q8(isa, bits_f32(u if nonneg else u | signs), nonneg, False, " (rounding patterns)")

    def test_q8_signed_nan_code_of_infinity(self):
        # docs/math.md: a NaN y gets the NaN code 0x7F, which has no sign, and every conversion "gives the
        # same bits on every ISA".  For +-Inf in a block of scale Inf, y = x * q = Inf * 0 is a NaN made by an
        # invalid operation, whose sign is the platform's default NaN's (negative on x86, positive on
        # AArch64): the code must not depend on it.
        x = np.array([np.inf, -np.inf, 1.0, -1.0, np.nan, -np.nan, 0.0, -0.0] * 4, dtype=np.float32)
        want = np.array([0x7F, 0x7F, 0x00, 0x80, 0x7F, 0x7F, 0x00, 0x80] * 4, dtype=np.uint8)
        np.testing.assert_array_equal(q8_encode(x, False, False)[0], want)
        for isa in self.each_isa():
            with self.subTest(isa=isa):
                got, scale = lib_from_f32(Q8, x)
                self.assertTrue(np.isinf(scale[0]))
                self.assertIsNone(first_mismatch(got, want, f32_bits(x), 2),
                                  f"{isa}: signed Q8 codes of [+Inf, -Inf, 1, -1, NaN, -NaN, 0, -0] in a block "
                                  f"of scale Inf")

    def test_q8_decode_every_code(self):
        scales = np.array([1.0, 3.0, 0.1, 1e-30, 1e30, 2.0 ** 100, 2.0 ** -100, 3.4028235e38, float(FLT_MIN),
                           0.0, np.inf, 7.0, 1e-5, 65504.0], dtype=np.float32)
        codes = np.tile(np.arange(256, dtype=np.uint8), scales.size)  # one block per scale
        for isa in self.each_isa():
            with self.subTest(isa=isa):
                for nonneg, linear, kind in self.q8_cases():
                    got = lib_to_f32(kind, codes, scales, nonneg)
                    want = q8_decode(codes, scales, nonneg, linear)
                    nan = np.isnan(want)
                    name = f"{isa} {self.q8_name(nonneg, linear)}"
                    bad = np.flatnonzero(np.isnan(got) != nan)
                    if bad.size:
                        k = bad[0]
                        self.fail(f"{name}: NaN-ness differs at code 0x{int(codes[k]):02X}, scale "
                                  f"{float(scales[k // 256])!r}: got {got[k]!r}, want {want[k]!r}")
                    bad = np.flatnonzero(f32_bits(got)[~nan] != f32_bits(want)[~nan])
                    if bad.size:
                        k = np.flatnonzero(~nan)[bad[0]]
                        self.fail(f"{name}: {bad.size} decoded values differ; first code 0x{int(codes[k]):02X} scale "
                                  f"{float(scales[k // 256])!r}: got 0x{int(f32_bits(got)[k]):08X} want "
                                  f"0x{int(f32_bits(want)[k]):08X}")

    def test_q8_encode_of_decode_is_identity(self):
        # every code an encoding can produce, in one block with the largest one (so that amax is the scale)
        scales = [1.0, 3.0, 0.1, 1e-20, 1e20, 2.0 ** 100, 1.5 * 2.0 ** -90, 3.4028235e38, 1e-3, 12345.678]
        sets = {}
        for nonneg, linear, kind in self.q8_cases():
            if linear:
                c = np.arange(256, dtype=np.uint8)
            else:
                mags = np.arange(249 if nonneg else 121, dtype=np.uint8)
                c = mags if nonneg else np.concatenate([mags, mags | 0x80])
                c = np.concatenate([c, [0xFF] if nonneg else [0x7F, 0xFF]]).astype(np.uint8)
            sets[(nonneg, linear)] = c
        for isa in self.each_isa():
            with self.subTest(isa=isa):
                for nonneg, linear, kind in self.q8_cases():
                    c = sets[(nonneg, linear)]
                    for s in scales:
                        if not linear and nonneg and s * 2.0 ** -33 < float(FLT_MIN):
                            continue  # the smallest code times the scale would be subnormal
                        sc = np.array([s], dtype=np.float32)
                        name = f"{isa} {self.q8_name(nonneg, linear)} scale {s!r}"
                        dec = lib_to_f32(kind, c, sc, nonneg)
                        want = q8_decode(c, sc, nonneg, linear)
                        wnan = np.isnan(want)
                        np.testing.assert_array_equal(np.isnan(dec), wnan, name)
                        np.testing.assert_array_equal(f32_bits(dec)[~wnan], f32_bits(want)[~wnan], name)
                        back, bs = lib_from_f32(kind, dec, nonneg)
                        # Q8: amax is 1 x scale, the scale itself; linear: 127 (254) x (scale x (1/127)), an ulp
                        # or so away
                        _, ws = q8_encode(dec, nonneg, linear)
                        self.assertEqual(f32_bits(bs)[0], f32_bits(ws)[0], name)
                        if not linear:
                            self.assertEqual(f32_bits(bs)[0], f32_bits(sc)[0], name)
                        else:
                            self.assertLessEqual(abs(float(bs[0]) / float(sc[0]) - 1), 2.0 ** -22, name)
                        nan = q8_is_nan_code(c, nonneg, linear)
                        self.assertTrue(np.all(q8_is_nan_code(back[nan], nonneg, linear)), name)
                        self.assertIsNone(first_mismatch(back[~nan], c[~nan], None, 2), name)
                        # and the oracle agrees
                        oc, _ = q8_encode(dec, nonneg, linear)
                        np.testing.assert_array_equal(oc[~nan], c[~nan])

    def test_refusals(self):
        x = np.ones(300, dtype=np.float32)
        d = np.zeros(300, dtype=np.uint16)
        s = np.zeros(2, dtype=np.float32)
        a = api()
        for isa in self.each_isa():
            with self.subTest(isa=isa):
                self.assertEqual(a.from_f32(99, 0, _ptr(x), _ptr(d), _ptr(s), 300), E_STORAGE)
                self.assertEqual(a.to_f32(99, 0, _ptr(d), _ptr(s), _ptr(x), 300), E_STORAGE)
                self.assertEqual(a.from_f32(BF16, 0, None, _ptr(d), None, 300), E_NULL_ARRAY)
                self.assertEqual(a.from_f32(BF16, 0, _ptr(x), None, None, 300), E_NULL_ARRAY)
                self.assertEqual(a.to_f32(F16, 0, None, None, _ptr(x), 300), E_NULL_ARRAY)
                self.assertEqual(a.from_f32(Q8, 0, _ptr(x), _ptr(d), None, 300), E_NULL_ARRAY)
                self.assertEqual(a.to_f32(Q8_LINEAR, 1, _ptr(d), None, _ptr(x), 300), E_NULL_ARRAY)
                self.assertEqual(a.from_f32(BF16, 0, None, None, None, 0), OK)
                np.testing.assert_array_equal(x, 1.0)  # nothing written on error
                np.testing.assert_array_equal(d, 0)


class TestStochasticRounding(_PerIsa):
    CASES = [(0, 0), (1, 1), (_M64, 12345), (0x0123456789ABCDEF, 1 << 40)]

    def make_tensors(self, kind, sizes_streams, rng, master=True):
        arrays, tensors = [], (TypedTensor * len(sizes_streams))()
        for t, (n, stream) in enumerate(sizes_streams):
            m = sr_master_values(n, rng) if n else np.zeros(0, np.float32)
            if not master:  # params stored in bf16/f16: values of that type
                enc, dec = (f32_to_bf16, bf16_to_f32) if kind == BF16 else (f32_to_f16, f16_to_f32)
                m = bits_f32(dec(enc(f32_bits(m))))
            g = np.zeros(n, dtype=np.float32)
            p = np.full(n, 0xDEAD, dtype=np.uint16)
            arrays.append({"master": m, "grad": g, "param": p, "stream": stream})
            tensors[t].param = p.ctypes.data if n else None
            tensors[t].param_extra = m.ctypes.data if (n and master) else None
            tensors[t].grad = g.ctypes.data if n else None
            tensors[t].n = n
            tensors[t].stream = stream
        return arrays, tensors

    def expected(self, kind, arrays, seed, step, values=None):
        enc = f32_to_bf16 if kind == BF16 else f32_to_f16
        out = []
        for k, a in enumerate(arrays):
            v = a["master"] if values is None else values[k]
            n = v.size
            r = sr_random(seed, step, a["stream"], np.arange(n, dtype=np.uint64))
            out.append(enc(f32_bits(v), r))
        return out

    def test_step_typed_master_weights(self):
        rng = np.random.default_rng(40)
        layout = [(1, 0), (7, 1), (64, 2), (1000, 3), (0, 4), (4099, 1 << 63), (333, _M64)]
        cfg = SgdConfig(lr=0.0)
        a = api()
        for isa in self.each_isa():
            with self.subTest(isa=isa):
                for kind in (BF16, F16):
                    arrays, tensors = self.make_tensors(kind, layout, rng)
                    masters = [x["master"].copy() for x in arrays]
                    for seed, step in self.CASES:
                        name = f"{isa} {'BF16' if kind == BF16 else 'F16'} seed {seed:#x} step {step}"
                        st = Storage(param=kind, grad=F32, state=F32, flags=MASTER_WEIGHTS | STOCHASTIC_ROUNDING,
                                     seed=seed, step=step)
                        self.assertEqual(a.sgd_check_typed(ctypes.byref(cfg), ctypes.byref(st), tensors,
                                                           len(layout)), OK)
                        for x in arrays:
                            x["param"][:] = 0xDEAD
                        self.assertEqual(a.sgd_step_typed(ctypes.byref(cfg), ctypes.byref(st), tensors, len(layout),
                                                          None, None), OK, name)
                        for k, x in enumerate(arrays):
                            # lr 0, gradient +0: p + (-0) * 0 keeps every non-NaN master's bits
                            keep = ~np.isnan(masters[k])
                            np.testing.assert_array_equal(f32_bits(x["master"])[keep], f32_bits(masters[k])[keep])
                            self.assertTrue(np.all(np.isnan(x["master"][~keep])))
                        want = self.expected(kind, arrays, seed, step)
                        for k, x in enumerate(arrays):
                            self.assertIsNone(first_mismatch(x["param"], want[k], f32_bits(x["master"]), 4),
                                              f"{name}: tensor {k} (n={x['master'].size}, stream {x['stream']:#x})")
                        # the same bits through a plan run in random ranges, in random order
                        plan = ctypes.c_void_p()
                        self.assertEqual(a.sgd_plan_typed(ctypes.byref(cfg), ctypes.byref(st), tensors, len(layout),
                                                          ctypes.byref(plan)), OK)
                        try:
                            total = a.plan_elements(plan)
                            self.assertEqual(total, sum(n for n, _ in layout))
                            for trial in range(3):
                                for x in arrays:
                                    x["param"][:] = 0xBEEF
                                cuts = np.unique(np.concatenate([[0, total], rng.integers(0, total, 5 + 10 * trial)]))
                                ranges = list(zip(cuts[:-1], cuts[1:]))
                                for j in rng.permutation(len(ranges)):
                                    self.assertEqual(a.plan_run(plan, int(ranges[j][0]), int(ranges[j][1])), OK)
                                for k, x in enumerate(arrays):
                                    self.assertIsNone(first_mismatch(x["param"], want[k], None, 4),
                                                      f"{name}: plan, cuts {list(cuts)}: tensor {k}")
                        finally:
                            a.plan_free(plan)

    def test_step_typed_without_master(self):
        # params in bf16/f16 read exactly; p + nl * g with nl = -2^-3 and g in bf16 (exact products), rounded
        # stochastically; the gradient itself stored as bf16 or f16 (read exactly)
        rng = np.random.default_rng(41)
        layout = [(5, 9), (2000, 10), (129, 11)]
        lr = 0.125
        a = api()
        for isa in self.each_isa():
            with self.subTest(isa=isa):
                for kind in (BF16, F16):
                    for gkind in (F32, BF16, F16):
                        arrays, tensors = self.make_tensors(kind, layout, rng, master=False)
                        new_vals, keep = [], []
                        for k, x in enumerate(arrays):
                            n = x["master"].size
                            enc, dec = (f32_to_bf16, bf16_to_f32) if kind == BF16 else (f32_to_f16, f16_to_f32)
                            p16 = enc(f32_bits(x["master"]))
                            x["param"][:] = p16
                            g = bits_f32(f16_to_f32(f32_to_f16(f32_bits(rng.standard_normal(n).astype(np.float32)))))
                            if gkind == BF16:
                                x["g16"] = f32_to_bf16(f32_bits(g))
                                g = bits_f32(bf16_to_f32(x["g16"]))
                            elif gkind == F16:
                                x["g16"] = f32_to_f16(f32_bits(g))
                            else:
                                x["g16"] = g.astype(np.float32)
                            x["g16"] = np.ascontiguousarray(x["g16"])
                            tensors[k].grad = x["g16"].ctypes.data
                            p = bits_f32(dec(p16))
                            with np.errstate(invalid="ignore", over="ignore"):
                                v = (p + (np.float32(-lr) * g).astype(np.float32)).astype(np.float32)
                            new_vals.append(v)
                            keep.append(v != 0)  # the sign of an exact zero is beside the point here
                        cfg = SgdConfig(lr=lr)
                        seed, step = 77, 3
                        st = Storage(param=kind, grad=gkind, state=F32, flags=STOCHASTIC_ROUNDING, seed=seed, step=step)
                        self.assertEqual(a.sgd_step_typed(ctypes.byref(cfg), ctypes.byref(st), tensors, len(layout),
                                                          None, None), OK)
                        want = self.expected(kind, arrays, seed, step, new_vals)
                        for k, x in enumerate(arrays):
                            kp = keep[k]
                            self.assertIsNone(first_mismatch(x["param"][kp], want[k][kp], f32_bits(new_vals[k])[kp], 4),
                                              f"{isa} param {kind} grad {gkind}: tensor {k}")

    def test_unbiased(self):
        N = 1 << 16
        values = {BF16: [1 + 0.3 * 2.0 ** -7, 1 / 3, -2.7182817, 1e-30, 3e38, 5e-39],
                  F16: [1 / 3, -2.7182817, 1e-6, -3e-7, 2e-8, 1e-10, 60000.5, 1 + 2.0 ** -12]}
        a = api()
        cfg = SgdConfig(lr=0.0)
        isa_list = isas()
        for k, isa in enumerate(self.each_isa()):
            with self.subTest(isa=isa):
                if k not in (0, len(isa_list) - 1):
                    continue  # the bits are checked on every ISA above; the statistics on two are enough
                for kind in (BF16, F16):
                    dec = bf16_to_f32 if kind == BF16 else f16_to_f32
                    enc = f32_to_bf16 if kind == BF16 else f32_to_f16
                    xs = values[kind]
                    m = np.repeat(np.array(xs, dtype=np.float32), N)
                    g = np.zeros(m.size, dtype=np.float32)
                    p = np.zeros(m.size, dtype=np.uint16)
                    t = TypedTensor(param=p.ctypes.data, param_extra=m.ctypes.data, grad=g.ctypes.data, n=m.size,
                                    stream=99)
                    previous = None
                    for step in (1, 2):
                        st = Storage(param=kind, grad=F32, state=F32, flags=MASTER_WEIGHTS | STOCHASTIC_ROUNDING,
                                     seed=2024, step=step)
                        self.assertEqual(a.sgd_step_typed(ctypes.byref(cfg), ctypes.byref(st), ctypes.byref(t), 1,
                                                          None, None), OK)
                        if previous is not None:  # another step: other random bits
                            self.assertGreater(np.count_nonzero(p != previous), m.size // 20)
                        previous = p.copy()
                        vals = bits_f32(dec(p)).astype(np.float64).reshape(len(xs), N)
                        for j, x in enumerate(xs):
                            x = float(np.float32(x))
                            lo = float(bits_f32(dec(enc(f32_bits(np.float32(x)), np.zeros(1, np.uint32))))[0])
                            hi_all = vals[j][vals[j] != lo]
                            hi = float(hi_all[0]) if hi_all.size else lo
                            self.assertTrue(np.all((vals[j] == lo) | (vals[j] == hi)),
                                            f"{isa} {kind} x={x!r}: more than two values")
                            p_up = (x - lo) / (hi - lo) if hi != lo else 0.0
                            sigma = abs(hi - lo) * np.sqrt(max(p_up * (1 - p_up), 1e-4) / N)
                            mean = vals[j].mean()
                            self.assertLess(abs(mean - x), 6 * sigma + abs(x) * 1e-12,
                                            f"{isa} {kind} step {step} x={x!r}: mean {mean!r} (p_up {p_up:.4f})")


if __name__ == "__main__":
    unittest.main()

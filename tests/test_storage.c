/*
 * Storage types (include/rmsfuse_common.h, "storage types"; docs/math.md,
 * "Storage types"): typed steps of every rule, their plans, their errors,
 * and the conversions, through the public API, on the ISA ctest forces
 * (RMSFUSE_ISA; the expected values are always computed with the scalar
 * ISA, so every run compares its ISA against scalar).
 *
 * The oracle: docs/math.md's conversions are written out here
 * independently of src/isa/storage.h: bf16, f16 and the float-like 8-bit
 * codes round to nearest even by searching the grid of values their codes
 * decode to (ties to the even code), the linear codes and the decodings as
 * the table gives them, stochastic rounding from the counter-based hash of
 * (seed, step, stream, index).  test_convert checks rmsfuse_convert_* against
 * it; the typed steps are then checked against float32 steps wrapped in the
 * library's conversions, as docs/math.md defines them: every array decoded
 * to float32 (rmsfuse_convert_to_f32, the split pair joined, the master
 * copy), the rule's step_multi / step_ex over those floats under the scalar
 * ISA, and every array the step writes encoded back (rmsfuse_convert_from_f32
 * with the array's unsigned or signed map, the split pair, the master copy
 * and the param rounded from it, stochastic rounding by the oracle).
 *
 * Every case lives in one arena of bytes: arrays at any byte offset (odd
 * ones for 2-byte arrays too) or packed back to back, random bytes in the
 * gaps; the whole arena is compared after each call (the arrays the step
 * writes element by element, NaN-ness for NaNs; everything else, the
 * gradients, unused arrays and the gaps, byte for byte).
 *
 *   convert          rmsfuse_convert_* against the oracle: every bf16 and f16
 *                    code read, every tie and its neighbours written, random
 *                    and special floats, 8-bit blocks of 1 to 700 elements
 *                    (codes and scales), every code decoded, the round trip,
 *                    infinite blocks, the statuses
 *   zero_block       a block whose largest magnitude is below FLT_MIN: scale
 *                    0, zero codes with the sign of x where the map has one
 *   equivalence      every rule, representative variants (plain, momentum,
 *                    centered, Nesterov, both weight decays, AMSGrad, the
 *                    flush ...), 22 storages (each type of each array, master
 *                    weights, split, 8-bit state, stochastic rounding, mixes):
 *                    step_typed over 75 tensors of 1..70, 255, 256, 257, 1000
 *                    and 4097 elements (quick: fewer) == the float32 step
 *                    wrapped in conversions; check_typed's status without
 *                    writing; a plan of the same list run over cuts; all-F32
 *                    storage == step_multi on the same ISA (NaN-ness for NaNs)
 *   every_combination  (the native run with detection) every combination of
 *                    every rule, each with one of the storages
 *   steps            several steps: the split pair == a float32 param stepped
 *                    with step_multi, bit for bit; the master copy likewise
 *                    and the param its rounding; bf16 and 8-bit state each
 *                    step == decode, step, encode
 *   stochastic       the oracle's bits; each value one of the two neighbours;
 *                    the same bits again, under every ISA and for any cut of a
 *                    plan; other bits for another seed, step or stream; the
 *                    mean of many roundings is the value
 *   grad_options     scale, clip value, max_norm (bf16 and f16 gradients):
 *                    step_ex's bits and info over the decoded gradients; the
 *                    norm is rmsfuse_grad_sumsq_typed's and the block sums
 *                    rmsfuse_grad_block_sumsq_typed's and the plan's; an Inf
 *                    gradient with RMSFUSE_SKIP_NONFINITE: RMSFUSE_SKIPPED and
 *                    nothing written (master, trail, codes and scales
 *                    included), also through plan_run_ex
 *   errors           every storage error (RMSFUSE_E_STORAGE), NULL arrays,
 *                    extras and scales, NULL list, huge n; configuration and
 *                    options errors; nothing written, info untouched, check
 *                    and plan the same status; unused pointers ignored
 *   overlaps         every pair of arrays of a tensor (extras and scales
 *                    included), across tensors, by one byte: RMSFUSE_E_OVERLAP;
 *                    shared gradients and packed arrays are accepted
 *   blocks           plans with 8-bit state: ranges inside a block
 *                    RMSFUSE_E_BLOCK (plan_run and plan_run_ex), nothing
 *                    written; rmsfuse_plan_cut at block boundaries; norm blocks
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_common.h"
#include "test_rules.h"

/* ==== docs/math.md's conversions, written out independently ==================== */

/* The magnitude of a non-negative code on a grid that rounds to nearest
 * even; `top` is the code of infinity (or the largest code), taken as the
 * next value of the grid for rounding. */
typedef double (*grid_value)(unsigned code, int arg);

static double bf16_mag(unsigned c, int arg)
{
    (void)arg;
    return c >= 0x7F80u ? 0x1p128 : (double)u2f((uint32_t)c << 16);
}

/* 2^n, exact, for -1022 <= n <= 1023 (ldexp's value; a multiplication by it
 * is exact here, and much cheaper than libm's ldexp under valgrind and qemu). */
static double pow2i(int n)
{
    const uint64_t b = (uint64_t)(1023 + n) << 52;
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static double f16_mag(unsigned c, int arg)
{
    (void)arg;
    if (c >= 0x7C00u)
        return 65536.0;
    const unsigned E = c >> 10, M = c & 0x3FFu;
    return E ? (1.0 + M / 1024.0) * pow2i((int)E - 15) : (double)M * pow2i(-24);
}

/* The float-like 8-bit code's magnitude (docs/math.md's table, without the scale). */
static double q8_mag(unsigned c, int nonneg)
{
    const int B = nonneg ? 31 : 15;
    const unsigned E = c >> 3, M = c & 7u;
    return E ? (1.0 + M / 8.0) * pow2i((int)E - B) : (double)M * pow2i(-(B + 2));
}

/* Round to nearest, ties to the even code, of a >= 0 on the grid 0..top. */
static unsigned grid_rne(double a, grid_value val, int arg, unsigned top)
{
    if (a >= val(top, arg))
        return top;
    unsigned lo = 0, hi = top; /* val(lo) <= a < val(hi) */
    while (hi - lo > 1) {
        const unsigned mid = lo + (hi - lo) / 2;
        if (val(mid, arg) <= a)
            lo = mid;
        else
            hi = mid;
    }
    const double mid = (val(lo, arg) + val(hi, arg)) / 2; /* exact: neighbours of few bits */
    if (a < mid)
        return lo;
    if (a > mid)
        return hi;
    return (lo & 1u) ? hi : lo;
}

static float bf16_read(uint16_t h)
{
    return u2f((uint32_t)h << 16);
}

static uint16_t bf16_write(float x)
{
    const uint32_t u = f2u(x);
    if (isnan(x))
        return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)(((u >> 16) & 0x8000u) | grid_rne(fabs((double)x), bf16_mag, 0, 0x7F80u));
}

static float f16_read(uint16_t h)
{
    const uint32_t S = (uint32_t)(h & 0x8000u) << 16, E = (h >> 10) & 31u, M = h & 0x3FFu;
    if (E == 31)
        return u2f(S | 0x7F800000u | M << 13);
    const float mag = (float)f16_mag(h & 0x7FFFu, 0); /* exact */
    return S ? -mag : mag;
}

static uint16_t f16_write(float x)
{
    const uint32_t u = f2u(x), S = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u)
        return (uint16_t)(S | 0x7E00u | ((a >> 13) & 0x3FFu));
    return (uint16_t)(S | grid_rne(fabs((double)x), f16_mag, 0, 0x7C00u));
}

/* The 8-bit code of element x of a block whose multiplier is q, y = x * q
 * (docs/math.md, steps 2 and 3: |y| limited to 1; the sign of x in the
 * signed maps; the NaN codes have no sign). */
static uint8_t q8_code(unsigned type, int nonneg, float x, float q)
{
    const float y = x * q;
    if (isnan(y))
        return (uint8_t)(nonneg ? 0xFFu : type == RMSFUSE_Q8 ? 0x7Fu : 0x80u);
    const int neg = !nonneg && signbit(x);
    float a = fabsf(y);
    if (a > 1.0f)
        a = 1.0f;
    if (type == RMSFUSE_Q8) {
        const unsigned mag = grid_rne(a, q8_mag, nonneg, nonneg ? 248u : 120u);
        return (uint8_t)((neg ? 0x80u : 0u) | mag);
    }
    const float v = a * (nonneg ? 254.0f : 127.0f);
    const unsigned c = (unsigned)nearbyintf(v); /* the default mode: nearest, ties to even */
    return (uint8_t)(neg ? (256u - c) & 0xFFu : c);
}

/* One block of an 8-bit array: codes and its scale (amax below FLT_MIN:
 * scale 0 and q = 0). */
static void q8_encode_block(unsigned type, int nonneg, const float *x, size_t n, uint8_t *codes, float *scale)
{
    float amax = 0.0f;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i]) && fabsf(x[i]) > amax)
            amax = fabsf(x[i]);
    const float q = amax >= FLT_MIN ? 1.0f / amax : 0.0f;
    *scale = amax >= FLT_MIN ? amax : 0.0f;
    for (size_t i = 0; i < n; i++)
        codes[i] = q8_code(type, nonneg, x[i], q);
}

static void q8_encode(unsigned type, int nonneg, const float *x, size_t n, uint8_t *codes, float *scales)
{
    for (size_t b = 0; b < n; b += RMSFUSE_Q8_BLOCK) {
        const size_t m = n - b < RMSFUSE_Q8_BLOCK ? n - b : RMSFUSE_Q8_BLOCK;
        q8_encode_block(type, nonneg, x + b, m, codes + b, scales + b / RMSFUSE_Q8_BLOCK);
    }
}

static float q8_read(unsigned type, int nonneg, uint8_t c, float scale)
{
    if (type == RMSFUSE_Q8) {
        if (nonneg)
            return c == 0xFFu ? NAN : (float)q8_mag(c, 1) * scale;
        const unsigned mag = c & 0x7Fu;
        if (mag == 0x7Fu)
            return NAN;
        const float v = (float)q8_mag(mag, 0);
        return (c & 0x80u ? -v : v) * scale;
    }
    if (nonneg)
        return c == 255u ? NAN : (float)c * (scale * (1.0f / 254.0f));
    return c == 0x80u ? NAN : (float)(int8_t)c * (scale * (1.0f / 127.0f));
}

/* ---- stochastic rounding (docs/math.md) ---- */
static uint64_t sr_mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t sr_mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16);
}

static uint32_t sr_random(uint64_t seed, uint64_t step, uint64_t stream, uint64_t i)
{
    const uint64_t K = sr_mix64(sr_mix64(sr_mix64(seed) ^ step) ^ stream);
    const uint64_t K2 = sr_mix64(K ^ (i >> 32));
    return sr_mix32((uint32_t)(i + K2));
}

static uint16_t bf16_write_sr(float x, uint32_t r)
{
    if (isnan(x))
        return bf16_write(x);
    return (uint16_t)((f2u(x) + (r >> 16)) >> 16);
}

static uint16_t f16_write_sr(float x, uint32_t r)
{
    const uint32_t u = f2u(x), S = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu, e = a >> 23;
    if (a > 0x7F800000u || a >= 0x47800000u)
        return f16_write(x);
    if (e >= 113u)
        return (uint16_t)(S | ((a - 0x38000000u + (r & 0x1FFFu)) >> 13));
    const uint32_t m = (a & 0x7FFFFFu) | (e ? 0x800000u : 0u);
    const uint32_t sh = 126u - (e > 1u ? e : 1u), t = sh < 31u ? sh : 31u;
    const uint32_t m2 = m >> (sh - t < 31u ? sh - t : 31u);
    return (uint16_t)(S | ((m2 + (r & ((1u << t) - 1u))) >> t));
}

/* ==== the rules' typed API, for any rule ====================================== */

static int typed_step(const rule_cfg *c, const rmsfuse_storage *st, const rmsfuse_typed_tensor *t, size_t count,
                      const rmsfuse_grad_options *o, rmsfuse_grad_info *info)
{
    switch (c->rule) {
    case RULE_RMSPROP: return rmsfuse_rmsprop_step_typed(RULE_CFG_(c, rmsprop), st, t, count, o, info);
    case RULE_ADAGRAD: return rmsfuse_adagrad_step_typed(RULE_CFG_(c, adagrad), st, t, count, o, info);
    case RULE_SGD: return rmsfuse_sgd_step_typed(RULE_CFG_(c, sgd), st, t, count, o, info);
    default: return rmsfuse_adam_step_typed(RULE_CFG_(c, adam), st, t, count, o, info);
    }
}

static int typed_check(const rule_cfg *c, const rmsfuse_storage *st, const rmsfuse_typed_tensor *t, size_t count)
{
    switch (c->rule) {
    case RULE_RMSPROP: return rmsfuse_rmsprop_check_typed(RULE_CFG_(c, rmsprop), st, t, count);
    case RULE_ADAGRAD: return rmsfuse_adagrad_check_typed(RULE_CFG_(c, adagrad), st, t, count);
    case RULE_SGD: return rmsfuse_sgd_check_typed(RULE_CFG_(c, sgd), st, t, count);
    default: return rmsfuse_adam_check_typed(RULE_CFG_(c, adam), st, t, count);
    }
}

static int typed_plan(const rule_cfg *c, const rmsfuse_storage *st, const rmsfuse_typed_tensor *t, size_t count,
                      rmsfuse_plan **plan)
{
    switch (c->rule) {
    case RULE_RMSPROP: return rmsfuse_rmsprop_plan_typed(RULE_CFG_(c, rmsprop), st, t, count, plan);
    case RULE_ADAGRAD: return rmsfuse_adagrad_plan_typed(RULE_CFG_(c, adagrad), st, t, count, plan);
    case RULE_SGD: return rmsfuse_sgd_plan_typed(RULE_CFG_(c, sgd), st, t, count, plan);
    default: return rmsfuse_adam_plan_typed(RULE_CFG_(c, adam), st, t, count, plan);
    }
}

/* Whether state slot j of `rule` (2..4) uses the unsigned 8-bit map
 * (docs/math.md: square averages, second moments, AdaGrad's sum). */
static int slot_nonneg(int rule, unsigned j)
{
    switch (rule) {
    case RULE_RMSPROP: return j == 2;
    case RULE_ADAGRAD: return j == 2;
    case RULE_SGD: return 0;
    default: return j == 3 || j == 4;
    }
}

static size_t type_bytes(unsigned type)
{
    return type == RMSFUSE_F32 ? 4 : type == RMSFUSE_Q8 || type == RMSFUSE_Q8_LINEAR ? 1 : 2;
}

static int is_q8(unsigned type)
{
    return type == RMSFUSE_Q8 || type == RMSFUSE_Q8_LINEAR;
}

static unsigned slot_type(const rmsfuse_storage *st, unsigned j)
{
    return j == SLOT_PARAM ? st->param : j == SLOT_GRAD ? st->grad : st->state;
}

static const char *type_name(unsigned t)
{
    switch (t) {
    case RMSFUSE_F32: return "f32";
    case RMSFUSE_BF16: return "bf16";
    case RMSFUSE_F16: return "f16";
    case RMSFUSE_SPLIT_BF16: return "split";
    case RMSFUSE_Q8: return "q8";
    case RMSFUSE_Q8_LINEAR: return "q8lin";
    default: return "?";
    }
}

static const char *storage_text(const rmsfuse_storage *s)
{
    static char buf[160];
    snprintf(buf, sizeof buf, "storage {param %s, grad %s, state %s%s%s}", type_name(s->param), type_name(s->grad),
             type_name(s->state), (s->flags & RMSFUSE_MASTER_WEIGHTS) ? ", master" : "",
             (s->flags & RMSFUSE_STOCHASTIC_ROUNDING) ? ", stochastic" : "");
    return buf;
}

static rmsfuse_storage storage_of(unsigned param, unsigned grad, unsigned state, unsigned flags)
{
    rmsfuse_storage s = rmsfuse_storage_f32();
    s.param = param;
    s.grad = grad;
    s.state = state;
    s.flags = flags;
    s.seed = 0x0123456789abcdefull;
    s.step = 1;
    return s;
}

/* The storages every rule is tested with. */
#define MW RMSFUSE_MASTER_WEIGHTS
#define SR RMSFUSE_STOCHASTIC_ROUNDING
static const unsigned storages[][4] = {
    {RMSFUSE_F32, RMSFUSE_F32, RMSFUSE_F32, 0},
    {RMSFUSE_F32, RMSFUSE_BF16, RMSFUSE_F32, 0},
    {RMSFUSE_F32, RMSFUSE_F16, RMSFUSE_F32, 0},
    {RMSFUSE_BF16, RMSFUSE_F32, RMSFUSE_F32, 0},
    {RMSFUSE_F16, RMSFUSE_F32, RMSFUSE_F32, 0},
    {RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_F32, MW},
    {RMSFUSE_F16, RMSFUSE_F16, RMSFUSE_F32, MW},
    {RMSFUSE_SPLIT_BF16, RMSFUSE_BF16, RMSFUSE_F32, 0},
    {RMSFUSE_SPLIT_BF16, RMSFUSE_F32, RMSFUSE_F32, 0},
    {RMSFUSE_F32, RMSFUSE_F32, RMSFUSE_BF16, 0},
    {RMSFUSE_F32, RMSFUSE_F32, RMSFUSE_Q8, 0},
    {RMSFUSE_F32, RMSFUSE_F32, RMSFUSE_Q8_LINEAR, 0},
    {RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_Q8, 0},
    {RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_Q8_LINEAR, 0},
    {RMSFUSE_SPLIT_BF16, RMSFUSE_F32, RMSFUSE_Q8, 0},
    {RMSFUSE_F16, RMSFUSE_BF16, RMSFUSE_BF16, MW | SR},
    {RMSFUSE_BF16, RMSFUSE_F16, RMSFUSE_Q8, SR},
    {RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_F32, SR},
    {RMSFUSE_BF16, RMSFUSE_F32, RMSFUSE_BF16, MW | SR},
    /* a 16-bit param beside bf16 state: the AVX-512 BF16 loops for a bf16
     * and for an f16 param and gradient, and the one for other pairs */
    {RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_BF16, 0},
    {RMSFUSE_F16, RMSFUSE_F16, RMSFUSE_BF16, 0},
    {RMSFUSE_F16, RMSFUSE_BF16, RMSFUSE_BF16, 0},
    /* all-bf16 rounded stochastically: AVX2's loops of pairs (elements
     * i + 2l and i + 2l + 1, each with its own random number) */
    {RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_BF16, SR},
    /* the fewest bytes, a bf16 param rounded stochastically beside 8-bit
     * state: AVX2's and AVX-512's constant loops for it (and AVX-512's
     * beside float32 state: {BF16, BF16, F32, SR} above) */
    {RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_Q8, SR},
};
enum { N_STORAGES = sizeof storages / sizeof storages[0] };

static rmsfuse_storage storage_k(unsigned k)
{
    return storage_of(storages[k][0], storages[k][1], storages[k][2], storages[k][3]);
}

/* Representative variants of each rule: what changes the arrays a step
 * uses or the kernel loop (plain, momentum, centred, Nesterov, both weight
 * decays, AMSGrad, the flush ...). */
static const combo variants_rmsprop[] = {
    {0u, 0u},
    {0u, TOG_MOM},
    {RMSFUSE_CENTERED, TOG_MOM | TOG_WD},
    {RMSFUSE_NESTEROV, TOG_MOM},
    {RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM, TOG_MOM},
    {RMSFUSE_DECOUPLED_DECAY | RMSFUSE_MAXIMIZE, TOG_WD},
    {RMSFUSE_CENTERED | RMSFUSE_FLUSH_SUBNORMAL, TOG_MOM | TOG_WD},
    /* variants of RMSFUSE_TXHOT_<rule> (src/rules/registry.h): AVX2's loops
     * with the variant a constant */
    {RMSFUSE_FLUSH_SUBNORMAL, TOG_MOM | TOG_WD},
    {RMSFUSE_DECOUPLED_DECAY | RMSFUSE_FLUSH_SUBNORMAL, TOG_WD},
};
static const combo variants_adagrad[] = {
    {0u, 0u},
    {RMSFUSE_EPS_IN_SQRT, TOG_WD},
    {RMSFUSE_DECOUPLED_DECAY, TOG_WD},
    {RMSFUSE_FLUSH_SUBNORMAL | RMSFUSE_MAXIMIZE, 0u},
    {RMSFUSE_FLUSH_SUBNORMAL, TOG_WD},
};
static const combo variants_sgd[] = {
    {0u, 0u},
    {0u, TOG_MOM},
    {RMSFUSE_NESTEROV, TOG_MOM | TOG_WD},
    {RMSFUSE_INIT_MOMENTUM, TOG_MOM | TOG_DAMP},
    {RMSFUSE_LR_IN_MOMENTUM, TOG_MOM},
    {RMSFUSE_DECOUPLED_DECAY | RMSFUSE_FLUSH_SUBNORMAL, TOG_WD | TOG_MOM},
    {RMSFUSE_FLUSH_SUBNORMAL, 0u},
};
static const combo variants_adam[] = {
    {0u, 0u},
    {RMSFUSE_AMSGRAD, TOG_WD},
    {RMSFUSE_DECOUPLED_DECAY, TOG_WD},
    {RMSFUSE_EPS_HAT | RMSFUSE_AMSGRAD | RMSFUSE_FLUSH_SUBNORMAL, 0u},
    {RMSFUSE_MAXIMIZE, 0u},
    {RMSFUSE_DECOUPLED_DECAY | RMSFUSE_FLUSH_SUBNORMAL, TOG_WD},
};

static const combo *variants_of(int rule, unsigned *count)
{
    switch (rule) {
    case RULE_RMSPROP: *count = sizeof variants_rmsprop / sizeof variants_rmsprop[0]; return variants_rmsprop;
    case RULE_ADAGRAD: *count = sizeof variants_adagrad / sizeof variants_adagrad[0]; return variants_adagrad;
    case RULE_SGD: *count = sizeof variants_sgd / sizeof variants_sgd[0]; return variants_sgd;
    default: *count = sizeof variants_adam / sizeof variants_adam[0]; return variants_adam;
    }
}

/* A variant's configuration (a valid combination: checked). */
static rule_cfg variant_config(int rule, combo cb, int hp)
{
    ck_assert(rule_combo_valid(rule, cb));
    return rule_config(rule, cb, hp);
}

/* ==== cases: typed tensors in one arena ======================================== */

enum { MAXT = 80 };
#define NONE SIZE_MAX

/* Where each array of a tensor is in the arena (NONE: a NULL pointer). */
typedef struct tlay {
    size_t a[MAX_ARR], scale[MAX_ARR], extra;
} tlay;

/* How a case is laid out and filled. */
enum {
    C_PACKED = 1,      /* arrays back to back, no gaps (else 0..15 bytes between them) */
    C_NULL_UNUSED = 2, /* arrays the configuration does not use are NULL */
    C_SPECIALS = 4,    /* NaN, infinities, zeros, subnormals, huge values among the values */
    C_RAW_CODES = 8,   /* random 2-byte and 8-bit codes and scales among the values */
};

typedef struct rig {
    rule_cfg cfg;
    rmsfuse_storage st;
    unsigned used;
    size_t count, n[MAXT];
    tlay lay[MAXT];
    unsigned char *A, *O, *E; /* the arena now, at the start, expected */
    size_t size;
    rmsfuse_typed_tensor t[MAXT];
    float *fblock;            /* the decoded float32 arrays */
    float *f[MAXT][MAX_ARR];
} rig;

static size_t put(size_t *at, size_t bytes, size_t align, size_t gap)
{
    size_t o = *at + gap;
    o = (o + align - 1) / align * align;
    *at = o + bytes;
    return o;
}

static int uses(const rig *R, unsigned j)
{
    return (R->used >> j) & 1u;
}

static int has_extra(const rmsfuse_storage *st)
{
    return st->param == RMSFUSE_SPLIT_BF16 || (st->flags & RMSFUSE_MASTER_WEIGHTS);
}

static size_t extra_bytes(const rmsfuse_storage *st)
{
    return st->param == RMSFUSE_SPLIT_BF16 ? 2 : 4;
}

static void *arena_ptr(unsigned char *base, size_t off)
{
    return off == NONE ? NULL : base + off;
}

/* The tensors' pointers into base. */
static void rig_point(rig *R, unsigned char *base, rmsfuse_typed_tensor *t)
{
    for (size_t i = 0; i < R->count; i++) {
        const tlay *L = &R->lay[i];
        t[i].param = arena_ptr(base, L->a[SLOT_PARAM]);
        t[i].grad = arena_ptr(base, L->a[SLOT_GRAD]);
        t[i].param_extra = arena_ptr(base, L->extra);
        for (unsigned k = 0; k < 4; k++) {
            t[i].state[k] = k + 2 < MAX_ARR ? arena_ptr(base, L->a[k + 2]) : NULL;
            t[i].scale[k] = k + 2 < MAX_ARR ? (float *)arena_ptr(base, L->scale[k + 2]) : NULL;
        }
        t[i].n = R->n[i];
        t[i].stream = R->t[i].stream;
    }
}

static const float special_values[] = {
    NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, FLT_MIN, -FLT_MIN, 1e-40f, -1e-45f, 0x1p-24f, 3e-5f,
    65504.0f, 65519.996f, 65520.0f, -70000.0f, 1e38f, -FLT_MAX, 1.00390625f /* bf16 tie */,
    1.00048828125f /* f16 tie */, 2.0f, -0.5f,
};
enum { N_SPECIALS = sizeof special_values / sizeof special_values[0] };

/* A value of array slot j: realistic, or (with `specials`) now and then special. */
static float gen_value(test_rng *r, int rule, unsigned j, int specials)
{
    if (specials && rng_next(r) % 12 == 0)
        return special_values[rng_next(r) % N_SPECIALS];
    return rule_realistic(rule, j, r, 1.0f);
}

/* Writes n values of slot j (type `type`) at p (and its scales, its extra). */
static void fill_array(rig *R, test_rng *r, unsigned j, unsigned char *p, float *scale_arena_ptr, unsigned char *extra,
                       size_t n, unsigned how)
{
    const int rule = R->cfg.rule;
    const unsigned type = slot_type(&R->st, j);
    const int specials = (how & C_SPECIALS) != 0, raw = (how & C_RAW_CODES) != 0;
    float *v = malloc((n ? n : 1) * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < n; i++)
        v[i] = gen_value(r, rule, j, specials && !is_q8(type)); /* 8-bit: specials below, sparingly */
    if (j == SLOT_PARAM && (R->st.flags & RMSFUSE_MASTER_WEIGHTS)) {
        memcpy(extra, v, n * 4); /* the master; the param's bytes stay random: never read */
    } else if (type == RMSFUSE_F32) {
        memcpy(p, v, n * 4);
    } else if (type == RMSFUSE_BF16 || type == RMSFUSE_F16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h = type == RMSFUSE_BF16 ? bf16_write(v[i]) : f16_write(v[i]);
            if (raw && rng_next(r) % 8 == 0)
                h = (uint16_t)rng_next(r);
            memcpy(p + 2 * i, &h, 2);
        }
    } else if (type == RMSFUSE_SPLIT_BF16) {
        for (size_t i = 0; i < n; i++) {
            uint32_t u = f2u(v[i]);
            if (raw && rng_next(r) % 8 == 0)
                u = (uint32_t)rng_next(r);
            const uint16_t hi = (uint16_t)(u >> 16), lo = (uint16_t)u;
            memcpy(p + 2 * i, &hi, 2);
            memcpy(extra + 2 * i, &lo, 2);
        }
    } else { /* 8-bit state: blocks encoded from values, or random codes and scales */
        const int nonneg = slot_nonneg(rule, j);
        for (size_t b = 0; b < n; b += RMSFUSE_Q8_BLOCK) {
            const size_t m = n - b < RMSFUSE_Q8_BLOCK ? n - b : RMSFUSE_Q8_BLOCK;
            float s;
            if (specials && rng_next(r) % 4 == 0) /* one special in the block */
                v[b + rng_next(r) % m] = special_values[rng_next(r) % N_SPECIALS];
            if (raw && rng_next(r) % 4 == 0) {
                for (size_t i = 0; i < m; i++)
                    p[b + i] = (unsigned char)rng_next(r);
                static const float scales[] = {1.0f, 0.25f, 3.0f, 0.0f, 1e-30f, 1e30f, 1e-40f, INFINITY};
                s = scales[rng_next(r) % 8];
            } else {
                uint8_t codes[RMSFUSE_Q8_BLOCK];
                q8_encode_block(type, nonneg, v + b, m, codes, &s);
                memcpy(p + b, codes, m);
            }
            memcpy((unsigned char *)scale_arena_ptr + b / RMSFUSE_Q8_BLOCK * 4, &s, 4);
        }
    }
    free(v);
}

/* A case: `count` tensors of sizes n[] of configuration c, storage st,
 * in one arena, laid out and filled as `how` says. */
static void rig_make(rig *R, const rule_cfg *c, const rmsfuse_storage *st, const size_t *n, size_t count,
                     test_rng *r, unsigned how)
{
    memset(R, 0, sizeof *R);
    ck_assert_uint_le(count, MAXT);
    R->cfg = *c;
    R->st = *st;
    R->used = rule_used(c);
    R->count = count;
    const unsigned narr = rule_infos[c->rule].narr;
    size_t maxn = 0;
    for (size_t i = 0; i < count; i++)
        maxn = n[i] > maxn ? n[i] : maxn;
    /* room before the first array too: the overlap test points arrays anywhere */
    size_t at = 64 + 4 * maxn, floats = 0, biggest = 0;
    for (size_t i = 0; i < count; i++) {
        R->n[i] = n[i];
        floats += narr * n[i];
        tlay *L = &R->lay[i];
        for (unsigned j = 0; j < MAX_ARR; j++)
            L->a[j] = L->scale[j] = NONE;
        L->extra = NONE;
        for (unsigned j = 0; j < narr; j++) {
            if ((how & C_NULL_UNUSED) && !uses(R, j))
                continue;
            const unsigned type = slot_type(st, j);
            const size_t gap = (how & C_PACKED) ? 0 : (size_t)(rng_next(r) % 16);
            const size_t bytes = n[i] * type_bytes(type);
            L->a[j] = put(&at, bytes, 1, gap);
            biggest = bytes > biggest ? bytes : biggest;
            if (j >= 2 && is_q8(type)) {
                const size_t sb = (n[i] + RMSFUSE_Q8_BLOCK - 1) / RMSFUSE_Q8_BLOCK * 4;
                L->scale[j] = put(&at, sb, (how & C_PACKED) ? 1 : 4, (how & C_PACKED) ? 0 : 4 * (rng_next(r) % 3));
            }
            if (j == SLOT_PARAM && has_extra(st)) {
                L->extra = put(&at, n[i] * extra_bytes(st), 1, (how & C_PACKED) ? 0 : (size_t)(rng_next(r) % 16));
                biggest = n[i] * 4 > biggest ? n[i] * 4 : biggest;
            }
        }
        R->t[i].stream = rng_next(r) % 4 ? (unsigned long long)i : rng_next(r);
    }
    /* room after the last array: the overlap test points arrays anywhere */
    R->size = at + biggest + 64;
    R->A = malloc(R->size);
    R->O = malloc(R->size);
    R->E = malloc(R->size);
    R->fblock = malloc((floats ? floats : 1) * sizeof(float));
    ck_assert(R->A && R->O && R->E && R->fblock);
    for (size_t k = 0; k < R->size; k++)
        R->A[k] = (unsigned char)rng_next(r);
    float *fb = R->fblock;
    for (size_t i = 0; i < count; i++)
        for (unsigned j = 0; j < narr; j++) {
            R->f[i][j] = fb;
            fb += n[i];
        }
    for (size_t i = 0; i < count; i++) {
        const tlay *L = &R->lay[i];
        for (unsigned j = 0; j < narr; j++)
            if (L->a[j] != NONE)
                fill_array(R, r, j, R->A + L->a[j], (float *)arena_ptr(R->A, L->scale[j]),
                           (unsigned char *)arena_ptr(R->A, L->extra), n[i], how);
    }
    rig_point(R, R->A, R->t);
    memcpy(R->O, R->A, R->size);
}

static void rig_free(rig *R)
{
    free(R->A);
    free(R->O);
    free(R->E);
    free(R->fblock);
}

/* ---- the expected step: decode, a float32 step under scalar, encode ---- */

/* The float32 values of every array of base (R->f); the ISA active now converts. */
static void rig_decode(rig *R, unsigned char *base)
{
    const unsigned narr = rule_infos[R->cfg.rule].narr;
    for (size_t i = 0; i < R->count; i++) {
        const tlay *L = &R->lay[i];
        const size_t n = R->n[i];
        for (unsigned j = 0; j < narr; j++) {
            float *f = R->f[i][j];
            if (L->a[j] == NONE || n == 0)
                continue;
            const unsigned type = slot_type(&R->st, j);
            const unsigned char *p = base + L->a[j];
            if (j == SLOT_PARAM && (R->st.flags & RMSFUSE_MASTER_WEIGHTS)) {
                memcpy(f, base + L->extra, n * 4);
            } else if (type == RMSFUSE_SPLIT_BF16) {
                for (size_t e = 0; e < n; e++) {
                    uint16_t hi, lo;
                    memcpy(&hi, p + 2 * e, 2);
                    memcpy(&lo, base + L->extra + 2 * e, 2);
                    f[e] = u2f((uint32_t)hi << 16 | lo);
                }
            } else {
                const int nonneg = j >= 2 && slot_nonneg(R->cfg.rule, j);
                if (is_q8(type) && L->scale[j] == NONE)
                    continue;
                ck_assert_int_eq(rmsfuse_convert_to_f32(type, nonneg, p, (const float *)arena_ptr(base, L->scale[j]),
                                                        f, n),
                                 RMSFUSE_OK);
            }
        }
    }
}

/* rule_tensors over the decoded arrays (the used ones). */
static void rig_float_list(const rig *R, rule_tensor *lt)
{
    for (size_t i = 0; i < R->count; i++) {
        for (unsigned j = 0; j < MAX_ARR; j++)
            lt[i].a[j] = j < rule_infos[R->cfg.rule].narr && uses(R, j) ? R->f[i][j] : NULL;
        lt[i].n = R->n[i];
    }
}

static void write_u16(unsigned char *p, uint16_t h)
{
    memcpy(p, &h, 2);
}

/* A param value as written: round to nearest even, or stochastically with
 * the oracle's random number of element e of tensor i. */
static uint16_t param_code(const rig *R, size_t i, size_t e, float x)
{
    const rmsfuse_storage *st = &R->st;
    if (st->flags & RMSFUSE_STOCHASTIC_ROUNDING) {
        const uint32_t rr = sr_random(st->seed, st->step, R->t[i].stream, e);
        return st->param == RMSFUSE_BF16 ? bf16_write_sr(x, rr) : f16_write_sr(x, rr);
    }
    return st->param == RMSFUSE_BF16 ? bf16_write(x) : f16_write(x);
}

/* Writes what the step writes, from R->f, into base (a copy of the arena
 * before the step): the library's conversions (the ISA active now) for
 * round to nearest and the 8-bit state, the oracle for stochastic rounding. */
static void rig_encode(const rig *R, unsigned char *base)
{
    const unsigned narr = rule_infos[R->cfg.rule].narr;
    for (size_t i = 0; i < R->count; i++) {
        const tlay *L = &R->lay[i];
        const size_t n = R->n[i];
        if (n == 0)
            continue;
        for (unsigned j = 0; j < narr; j++) {
            if (!uses(R, j) || j == SLOT_GRAD)
                continue;
            const float *f = R->f[i][j];
            const unsigned type = slot_type(&R->st, j);
            unsigned char *p = base + L->a[j];
            if (j == SLOT_PARAM) {
                if (R->st.flags & RMSFUSE_MASTER_WEIGHTS)
                    memcpy(base + L->extra, f, n * 4);
                if (type == RMSFUSE_F32) {
                    memcpy(p, f, n * 4);
                } else if (type == RMSFUSE_SPLIT_BF16) {
                    for (size_t e = 0; e < n; e++) {
                        write_u16(p + 2 * e, (uint16_t)(f2u(f[e]) >> 16));
                        write_u16(base + L->extra + 2 * e, (uint16_t)f2u(f[e]));
                    }
                } else if (R->st.flags & RMSFUSE_STOCHASTIC_ROUNDING) {
                    for (size_t e = 0; e < n; e++)
                        write_u16(p + 2 * e, param_code(R, i, e, f[e]));
                } else {
                    ck_assert_int_eq(rmsfuse_convert_from_f32(type, 0, f, p, NULL, n), RMSFUSE_OK);
                }
                continue;
            }
            ck_assert_int_eq(rmsfuse_convert_from_f32(type, slot_nonneg(R->cfg.rule, j), f, p,
                                                      (float *)arena_ptr(base, L->scale[j]), n),
                             RMSFUSE_OK);
        }
    }
}

static const char *entry_isa;

static void use_isa(const char *name)
{
    ck_assert_int_eq(rmsfuse_set_isa(name), RMSFUSE_OK);
}

/* The expected arena (R->E) of a step with options o (NULL: none) from
 * the arena as it is now, computed with the scalar ISA; returns the
 * float32 step's status, its info in *info. */
static int rig_expect(rig *R, const rmsfuse_grad_options *o, rmsfuse_grad_info *info)
{
    use_isa("scalar");
    rig_decode(R, R->A);
    rule_tensor lt[MAXT];
    rig_float_list(R, lt);
    rmsfuse_grad_info tmp;
    const int st = o ? rule_step_ex(&R->cfg, lt, R->count, o, info ? info : &tmp)
                     : rule_step_multi(&R->cfg, lt, R->count);
    memcpy(R->E, R->A, R->size);
    if (st == RMSFUSE_OK)
        rig_encode(R, R->E);
    use_isa(entry_isa);
    return st;
}

/* ---- comparing arenas ---- */

static const char *case_text(const rig *R)
{
    static char buf[512];
    char cd[256];
    rule_describe(&R->cfg, cd, sizeof cd);
    snprintf(buf, sizeof buf, "%s, %s, isa %s", cd, storage_text(&R->st), rmsfuse_active_isa());
    return buf;
}

static float elem_value(unsigned type, int nonneg, const unsigned char *p, size_t e, const unsigned char *scales)
{
    if (type == RMSFUSE_F32) {
        float x;
        memcpy(&x, p + 4 * e, 4);
        return x;
    }
    if (type == RMSFUSE_BF16 || type == RMSFUSE_F16) {
        uint16_t h;
        memcpy(&h, p + 2 * e, 2);
        return type == RMSFUSE_BF16 ? bf16_read(h) : f16_read(h);
    }
    float s;
    memcpy(&s, scales + e / RMSFUSE_Q8_BLOCK * 4, 4);
    return q8_read(type, nonneg, p[e], s);
}

/* One array of n elements of `type` at offset off (8-bit: scales at soff;
 * split: the trail at soff), element by element in got and want (NaN-ness
 * for NaNs); marks its bytes. */
static void compare_array(const rig *R, const unsigned char *got, const unsigned char *want, unsigned char *mark,
                          size_t ti, const char *what, unsigned type, int nonneg, size_t off, size_t soff,
                          size_t n, const char *label)
{
    for (size_t e = 0; e < n; e++) {
        float x, y;
        if (type == RMSFUSE_SPLIT_BF16) {
            uint16_t h1, l1, h2, l2;
            memcpy(&h1, got + off + 2 * e, 2);
            memcpy(&l1, got + soff + 2 * e, 2);
            memcpy(&h2, want + off + 2 * e, 2);
            memcpy(&l2, want + soff + 2 * e, 2);
            x = u2f((uint32_t)h1 << 16 | l1);
            y = u2f((uint32_t)h2 << 16 | l2);
        } else {
            x = elem_value(type, nonneg, got + off, e, is_q8(type) ? got + soff : NULL);
            y = elem_value(type, nonneg, want + off, e, is_q8(type) ? want + soff : NULL);
        }
        REQUIRE_MSG(same_float(x, y), "%s: %s: tensor %zu (n %zu) %s[%zu] (%s) = %a, expected %a", label,
                    case_text(R), ti, n, what, e, type_name(type), (double)x, (double)y);
    }
    memset(mark + off, 1, n * (type == RMSFUSE_SPLIT_BF16 ? 2 : type_bytes(type)));
    if (type == RMSFUSE_SPLIT_BF16)
        memset(mark + soff, 1, n * 2);
}

/* got == want: the arrays the step writes element by element (NaN-ness for
 * NaNs), every other byte (gradients, unused arrays, block scales, gaps)
 * exactly. */
static void rig_compare(const rig *R, const unsigned char *got, const unsigned char *want, const char *label)
{
    if (memcmp(got, want, R->size) == 0)
        return;
    unsigned char *mark = calloc(R->size, 1);
    ck_assert_ptr_nonnull(mark);
    const rule_info *ri = &rule_infos[R->cfg.rule];
    for (size_t i = 0; i < R->count; i++) {
        const tlay *L = &R->lay[i];
        const size_t n = R->n[i];
        if (n == 0)
            continue;
        for (unsigned j = 0; j < ri->narr; j++) {
            if (!uses(R, j) || j == SLOT_GRAD)
                continue;
            const unsigned type = slot_type(&R->st, j);
            if (j == SLOT_PARAM && (R->st.flags & RMSFUSE_MASTER_WEIGHTS))
                compare_array(R, got, want, mark, i, "master", RMSFUSE_F32, 0, L->extra, 0, n, label);
            compare_array(R, got, want, mark, i, ri->arr_name[j], type, j >= 2 && slot_nonneg(R->cfg.rule, j),
                          L->a[j], type == RMSFUSE_SPLIT_BF16 ? L->extra : L->scale[j], n, label);
        }
    }
    for (size_t k = 0; k < R->size; k++)
        REQUIRE_MSG(mark[k] || got[k] == want[k],
                    "%s: %s: byte %zu of the arena (not an element the step writes) is %#x, expected %#x", label,
                    case_text(R), k, got[k], want[k]);
    free(mark);
}

/* ---- runs ---- */

/* The plan's cuts: ncut random points (snapped with rmsfuse_plan_cut when
 * the plan has 8-bit state, and half the time otherwise), sorted, 0 and
 * total at the ends; returns the number of ranges. */
static int cmp_size(const void *a, const void *b)
{
    const size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

static size_t make_cuts(const rmsfuse_plan *plan, int q8, test_rng *r, size_t *cut, size_t ncut)
{
    const size_t total = rmsfuse_plan_elements(plan);
    size_t m = 0;
    cut[m++] = 0;
    const int snap = q8 || rng_next(r) % 2;
    for (size_t k = 0; k < ncut; k++) {
        const size_t f = total ? (size_t)(rng_next(r) % (total + 1)) : 0;
        cut[m++] = snap ? rmsfuse_plan_cut(plan, f) : f;
    }
    cut[m++] = total;
    qsort(cut, m, sizeof *cut, cmp_size);
    return m - 1;
}

/* Runs a plan over its ranges in a random order (with options o through
 * plan_run_ex, or plan_run); every range returns `want`. */
static void run_plan_ranges(const rmsfuse_plan *plan, int q8, test_rng *r, size_t ncut, const rmsfuse_grad_options *o,
                            int want)
{
    size_t cut[40], order[40];
    ck_assert_uint_le(ncut, 38);
    const size_t nr = make_cuts(plan, q8, r, cut, ncut);
    for (size_t k = 0; k < nr; k++)
        order[k] = k;
    for (size_t k = nr; k > 1; k--) {
        const size_t x = (size_t)(rng_next(r) % k), tmp = order[k - 1];
        order[k - 1] = order[x];
        order[x] = tmp;
    }
    for (size_t k = 0; k < nr; k++) {
        const size_t b = cut[order[k]], e = cut[order[k] + 1];
        const int st = o ? rmsfuse_plan_run_ex(plan, b, e, o, NULL) : rmsfuse_plan_run(plan, b, e);
        REQUIRE_MSG(st == want || (b == e && st == RMSFUSE_OK), "plan range [%zu, %zu): status %d, expected %d", b, e,
                    st, want);
    }
}

static int storage_q8(const rig *R)
{
    return is_q8(R->st.state) && (R->used >> 2) != 0;
}

/* One case: check_typed (nothing written), step_typed against the
 * expected arena, and (plans) a plan of the list over random cuts. */
static void run_case(rig *R, test_rng *r, int with_plan)
{
    ck_assert_int_eq(rig_expect(R, NULL, NULL), RMSFUSE_OK);
    ck_assert_int_eq(typed_check(&R->cfg, &R->st, R->t, R->count), RMSFUSE_OK);
    REQUIRE_MSG(memcmp(R->A, R->O, R->size) == 0, "check_typed wrote: %s", case_text(R));
    ck_assert_int_eq(typed_step(&R->cfg, &R->st, R->t, R->count, NULL, NULL), RMSFUSE_OK);
    rig_compare(R, R->A, R->E, "step_typed");
    if (with_plan) {
        memcpy(R->A, R->O, R->size);
        rmsfuse_plan *plan = NULL;
        ck_assert_int_eq(typed_plan(&R->cfg, &R->st, R->t, R->count, &plan), RMSFUSE_OK);
        ck_assert_ptr_nonnull(plan);
        REQUIRE_MSG(memcmp(R->A, R->O, R->size) == 0, "plan_typed wrote: %s", case_text(R));
        size_t total = 0;
        for (size_t i = 0; i < R->count; i++)
            total += R->n[i];
        ck_assert_uint_eq(rmsfuse_plan_elements(plan), total);
        run_plan_ranges(plan, storage_q8(R), r, 1 + (size_t)(rng_next(r) % 30), NULL, RMSFUSE_OK);
        rig_compare(R, R->A, R->E, "plan_typed over cuts");
        rmsfuse_plan_free(plan);
    }
}

/* The sizes of a case's tensors: 1..70, 255, 256, 257, 1000, 4097 (quick:
 * a spread of them up to 257; test_equivalence's one-tensor cases have
 * 1000 and 4097 elements in turn). */
static size_t case_sizes(size_t *n)
{
    size_t k = 0;
    if (test_quick_mode()) {
        static const size_t q[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 47, 64, 65, 70, 255, 256, 257};
        for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
            n[k++] = q[i];
        return k;
    }
    for (size_t s = 1; s <= 70; s++)
        n[k++] = s;
    n[k++] = 255;
    n[k++] = 256;
    n[k++] = 257;
    n[k++] = 1000;
    n[k++] = 4097;
    return k;
}

/* Shuffles n[0, k) and puts a few empty tensors among them. */
static void shuffle_sizes(size_t *n, size_t k, test_rng *r)
{
    for (size_t i = k; i > 1; i--) {
        const size_t x = (size_t)(rng_next(r) % i), t = n[i - 1];
        n[i - 1] = n[x];
        n[x] = t;
    }
    n[rng_next(r) % k] = 0;
}

/* ==== tests ===================================================================== */

START_TEST(test_convert)
{
    test_rng r = {test_run_seed(0xc0471u)};
    const int quick = test_quick_mode();
    /* every bf16 and f16 code read, from odd byte offsets */
    unsigned char *src = malloc(2 * 65536 + 3);
    float *dst = malloc(65536 * sizeof(float) + 4);
    ck_assert(src && dst);
    for (unsigned h = 0; h < 65536; h++)
        write_u16(src + 1 + 2 * h, (uint16_t)h);
    ck_assert_int_eq(rmsfuse_convert_to_f32(RMSFUSE_BF16, 0, src + 1, NULL, dst, 65536), RMSFUSE_OK);
    for (unsigned h = 0; h < 65536; h++)
        REQUIRE_MSG(f2u(dst[h]) == f2u(bf16_read((uint16_t)h)), "bf16 %#x read as %a", h, (double)dst[h]);
    ck_assert_int_eq(rmsfuse_convert_to_f32(RMSFUSE_F16, 0, src + 1, NULL, dst, 65536), RMSFUSE_OK);
    for (unsigned h = 0; h < 65536; h++)
        REQUIRE_MSG(f2u(dst[h]) == f2u(f16_read((uint16_t)h)), "f16 %#x read as %a (%#x), expected %a (%#x)", h,
                    (double)dst[h], f2u(dst[h]), (double)f16_read((uint16_t)h), f2u(f16_read((uint16_t)h)));

    /* written: every tie of each type and its neighbours, every value, random and special floats */
    enum { NX = 6 * 65536 + 40000 + N_SPECIALS + 8 };
    float *x = malloc(NX * sizeof(float) + 4);
    unsigned char *out = malloc(2 * (size_t)NX + 3);
    ck_assert(x && out);
    for (unsigned type = RMSFUSE_BF16; type <= RMSFUSE_F16; type++) {
        size_t m = 0;
        for (unsigned h = 0; h < 65536; h += quick ? 7 : 1) {
            const float v = type == RMSFUSE_BF16 ? bf16_read((uint16_t)h) : f16_read((uint16_t)h);
            const float w = type == RMSFUSE_BF16 ? bf16_read((uint16_t)(h + 1)) : f16_read((uint16_t)(h + 1));
            x[m++] = v;
            if ((h & 0x7FFFu) >= (type == RMSFUSE_BF16 ? 0x7F80u : 0x7C00u) - 1u || (h & 0x7FFFu) == 0x7FFFu)
                continue; /* infinities, NaNs: no tie above */
            const float tie = (float)(((double)v + (double)w) / 2); /* exact for bf16; f16 ties are floats too */
            x[m++] = tie;
            x[m++] = nextafterf(tie, 0.0f);
            x[m++] = nextafterf(tie, INFINITY * tie);
            x[m++] = nextafterf(v, INFINITY * v);
        }
        for (int k = 0; k < (quick ? 5000 : 40000); k++)
            x[m++] = k % 2 ? rng_any_float(&r) : ldexpf(rng_uniform(&r, -1.0f, 1.0f), (int)(rng_next(&r) % 60) - 30);
        for (int k = 0; k < N_SPECIALS; k++)
            x[m++] = special_values[k];
        /* bf16's overflow: the tie between its largest value and 2^128, and its neighbours */
        static const uint32_t edges[] = {0x7F7F8000u, 0x7F7F7FFFu, 0x7F7F8001u, 0xFF7F8000u, 0x7F7FFFFFu};
        for (size_t k = 0; k < sizeof edges / sizeof edges[0]; k++)
            x[m++] = u2f(edges[k]);
        ck_assert_uint_le(m, NX);
        const size_t shift = 1 + (size_t)(rng_next(&r) % 3);
        ck_assert_int_eq(rmsfuse_convert_from_f32(type, 0, x, out + shift, NULL, m), RMSFUSE_OK);
        for (size_t e = 0; e < m; e++) {
            uint16_t got;
            memcpy(&got, out + shift + 2 * e, 2);
            const uint16_t want = type == RMSFUSE_BF16 ? bf16_write(x[e]) : f16_write(x[e]);
            REQUIRE_MSG(got == want, "%s of %a (%#x) = %#x, expected %#x", type_name(type), (double)x[e],
                        f2u(x[e]), got, want);
        }
    }

    /* 8-bit: blocks of 1 to 700 elements, both maps, both types */
    static const size_t qn[] = {1, 2, 15, 16, 17, 255, 256, 257, 511, 512, 700};
    for (unsigned type = RMSFUSE_Q8; type <= RMSFUSE_Q8_LINEAR; type++)
        for (int nonneg = 0; nonneg <= 1; nonneg++)
            for (size_t s = 0; s < sizeof qn / sizeof qn[0]; s++)
                for (int fillk = 0; fillk < 6; fillk++) {
                    const size_t n = qn[s], nb = (n + 255) / 256;
                    for (size_t e = 0; e < n; e++) {
                        float v = fillk == 0   ? rng_uniform(&r, -1.0f, 1.0f)
                                  : fillk == 1 ? ldexpf(rng_uniform(&r, 0.5f, 1.0f), -(int)(rng_next(&r) % 40))
                                  : fillk == 2 ? rng_uniform(&r, -1e-39f, 1e-39f) /* a zero-scale block */
                                  : fillk == 3 ? special_values[rng_next(&r) % N_SPECIALS]
                                  : fillk == 4 ? rng_any_float(&r)
                                               : (float)(int)(rng_next(&r) % 9) - 4.0f;
                        if (nonneg && fillk != 3 && fillk != 4)
                            v = fabsf(v);
                        x[e] = v;
                    }
                    uint8_t codes[700], want[700];
                    float scales[4], wscales[4], back[700];
                    q8_encode(type, nonneg, x, n, want, wscales);
                    ck_assert_int_eq(rmsfuse_convert_from_f32(type, nonneg, x, codes, scales, n), RMSFUSE_OK);
                    for (size_t b = 0; b < nb; b++)
                        REQUIRE_MSG(f2u(scales[b]) == f2u(wscales[b]), "%s nonneg %d n %zu fill %d: scale %zu = %a, expected %a",
                                    type_name(type), nonneg, n, fillk, b, (double)scales[b], (double)wscales[b]);
                    for (size_t e = 0; e < n; e++)
                        REQUIRE_MSG(codes[e] == want[e],
                                    "%s nonneg %d n %zu fill %d: %a (block scale %a) coded %#x, expected %#x",
                                    type_name(type), nonneg, n, fillk, (double)x[e],
                                    (double)scales[e / 256], codes[e], want[e]);
                    ck_assert_int_eq(rmsfuse_convert_to_f32(type, nonneg, codes, scales, back, n), RMSFUSE_OK);
                    for (size_t e = 0; e < n; e++) {
                        const float w = q8_read(type, nonneg, codes[e], scales[e / 256]);
                        REQUIRE_MSG(same_float(back[e], w), "%s nonneg %d: code %#x scale %a read %a, expected %a",
                                    type_name(type), nonneg, codes[e], (double)scales[e / 256],
                                    (double)back[e], (double)w);
                    }
                    /* the round trip of finite data: the same codes and scales (where the
                     * values read back stay normal floats: scales 0 or above 2^-90) */
                    int finite = 1;
                    for (size_t e = 0; e < n; e++)
                        finite &= isfinite(x[e]);
                    for (size_t b = 0; b < nb; b++)
                        finite &= scales[b] == 0.0f || scales[b] >= 0x1p-90f;
                    if (finite) {
                        uint8_t again[700];
                        float s2[4];
                        ck_assert_int_eq(rmsfuse_convert_from_f32(type, nonneg, back, again, s2, n),
                                         RMSFUSE_OK);
                        ck_assert_msg(memcmp(again, codes, n) == 0, "%s nonneg %d n %zu fill %d: round trip codes",
                                      type_name(type), nonneg, n, fillk);
                        /* the same scales for the float-like codes (the largest code reads as the
                         * scale itself); the linear ones read it as 127 * (scale * (1.0f / 127)) */
                        for (size_t b = 0; b < nb; b++)
                            ck_assert_msg(type == RMSFUSE_Q8 ? f2u(s2[b]) == f2u(scales[b])
                                                             : ulp_distance(s2[b], scales[b]) <= 2,
                                          "%s nonneg %d n %zu fill %d: round trip scale %a, first %a", type_name(type),
                                          nonneg, n, fillk, (double)s2[b], (double)scales[b]);
                    }
                }
    /* every code read, with assorted scales */
    for (unsigned type = RMSFUSE_Q8; type <= RMSFUSE_Q8_LINEAR; type++)
        for (int nonneg = 0; nonneg <= 1; nonneg++) {
            static const float sc[] = {1.0f, 0.375f, 3e38f, 1e-38f, 0.0f, INFINITY};
            uint8_t codes[256];
            float back[256];
            for (unsigned c = 0; c < 256; c++)
                codes[c] = (uint8_t)c;
            for (size_t k = 0; k < sizeof sc / sizeof sc[0]; k++) {
                ck_assert_int_eq(rmsfuse_convert_to_f32(type, nonneg, codes, &sc[k], back, 256), RMSFUSE_OK);
                for (unsigned c = 0; c < 256; c++)
                    REQUIRE_MSG(same_float(back[c], q8_read(type, nonneg, (uint8_t)c, sc[k])),
                                "%s nonneg %d code %#x scale %a: %a", type_name(type), nonneg, c,
                                (double)sc[k], (double)back[c]);
            }
        }
    /* an infinite block: scale infinity, NaN where the code is 0 or the value was infinite */
    {
        float v[5] = {1.0f, INFINITY, -2.0f, 0.0f, 3.0f}, back[5], s;
        uint8_t c[5];
        for (unsigned type = RMSFUSE_Q8; type <= RMSFUSE_Q8_LINEAR; type++) {
            ck_assert_int_eq(rmsfuse_convert_from_f32(type, 0, v, c, &s, 5), RMSFUSE_OK);
            ck_assert(s == INFINITY);
            ck_assert_int_eq(rmsfuse_convert_to_f32(type, 0, c, &s, back, 5), RMSFUSE_OK);
            for (int e = 0; e < 5; e++)
                ck_assert(isnan(back[e]));
        }
    }
    /* F32 is a copy */
    {
        float v[3] = {1.5f, NAN, -0.0f}, w[3];
        ck_assert_int_eq(rmsfuse_convert_from_f32(RMSFUSE_F32, 0, v, w, NULL, 3), RMSFUSE_OK);
        ck_assert(memcmp(v, w, sizeof v) == 0);
        memset(w, 0, sizeof w);
        ck_assert_int_eq(rmsfuse_convert_to_f32(RMSFUSE_F32, 1, v, NULL, w, 3), RMSFUSE_OK);
        ck_assert(memcmp(v, w, sizeof v) == 0);
    }
    /* statuses: nothing written on error */
    {
        float v[2] = {1.0f, 2.0f}, s[1] = {-7.0f};
        unsigned char d[8];
        memset(d, 0xAB, sizeof d);
        static const unsigned bad_types[] = {RMSFUSE_SPLIT_BF16, 6u, 7u, 255u, 0x80000000u, UINT_MAX};
        for (size_t k = 0; k < sizeof bad_types / sizeof bad_types[0]; k++) {
            ck_assert_int_eq(rmsfuse_convert_from_f32(bad_types[k], 0, v, d, s, 2), RMSFUSE_E_STORAGE);
            ck_assert_int_eq(rmsfuse_convert_to_f32(bad_types[k], 0, d, s, v, 2), RMSFUSE_E_STORAGE);
        }
        ck_assert_int_eq(rmsfuse_convert_from_f32(RMSFUSE_BF16, 0, NULL, d, NULL, 2), RMSFUSE_E_NULL_ARRAY);
        ck_assert_int_eq(rmsfuse_convert_from_f32(RMSFUSE_BF16, 0, v, NULL, NULL, 2), RMSFUSE_E_NULL_ARRAY);
        ck_assert_int_eq(rmsfuse_convert_to_f32(RMSFUSE_F16, 0, NULL, NULL, v, 2), RMSFUSE_E_NULL_ARRAY);
        ck_assert_int_eq(rmsfuse_convert_to_f32(RMSFUSE_F16, 0, d, NULL, NULL, 2), RMSFUSE_E_NULL_ARRAY);
        ck_assert_int_eq(rmsfuse_convert_from_f32(RMSFUSE_Q8, 0, v, d, NULL, 2), RMSFUSE_E_NULL_ARRAY);
        ck_assert_int_eq(rmsfuse_convert_to_f32(RMSFUSE_Q8_LINEAR, 1, d, NULL, v, 2), RMSFUSE_E_NULL_ARRAY);
        ck_assert_int_eq(rmsfuse_convert_from_f32(RMSFUSE_Q8, 0, NULL, NULL, NULL, 0), RMSFUSE_OK);
        ck_assert_int_eq(rmsfuse_convert_to_f32(RMSFUSE_BF16, 0, NULL, NULL, NULL, 0), RMSFUSE_OK);
        ck_assert_int_eq(rmsfuse_convert_from_f32(RMSFUSE_SPLIT_BF16, 0, NULL, NULL, NULL, 0), RMSFUSE_E_STORAGE);
        for (size_t k = 0; k < sizeof d; k++)
            ck_assert_uint_eq(d[k], 0xAB);
        ck_assert(s[0] == -7.0f && v[0] == 1.0f && v[1] == 2.0f);
    }
    free(src);
    free(dst);
    free(x);
    free(out);
}
END_TEST

/* docs/math.md, "8-bit block-quantised state", step 2: a block whose
 * largest magnitude is below FLT_MIN (zero or subnormal) has scale 0, and
 * every code is that of zero, with the sign of x in the signed maps, except
 * NaN's; the signed float-like map's NaN code has no sign. */
START_TEST(test_zero_block)
{
    const float x[6] = {-1e-40f, -0.0f, 1e-41f, 0.0f, NAN, -NAN};
    static const uint8_t want[2][2][6] = {{{0x80, 0x80, 0, 0, 0x7F, 0x7F}, {0, 0, 0, 0, 0xFF, 0xFF}},
                                          {{0, 0, 0, 0, 0x80, 0x80}, {0, 0, 0, 0, 0xFF, 0xFF}}};
    for (unsigned type = RMSFUSE_Q8; type <= RMSFUSE_Q8_LINEAR; type++)
        for (int nonneg = 0; nonneg <= 1; nonneg++) {
            uint8_t c[6];
            float s = 7.0f, back[6];
            ck_assert_int_eq(rmsfuse_convert_from_f32(type, nonneg, x, c, &s, 6), RMSFUSE_OK);
            ck_assert(f2u(s) == 0);
            for (int e = 0; e < 6; e++)
                ck_assert_msg(c[e] == want[type - RMSFUSE_Q8][nonneg][e], "%s nonneg %d: %a coded %#x, expected %#x",
                              type_name(type), nonneg, (double)x[e], c[e], want[type - RMSFUSE_Q8][nonneg][e]);
            ck_assert_int_eq(rmsfuse_convert_to_f32(type, nonneg, c, &s, back, 6), RMSFUSE_OK);
            for (int e = 0; e < 4; e++) /* zeros; -0 where the code has the sign */
                ck_assert(back[e] == 0.0f && !!signbit(back[e]) == (c[e] == 0x80 && type == RMSFUSE_Q8));
            ck_assert(isnan(back[4]) && isnan(back[5]));
        }
}
END_TEST

/* Every rule, its representative variants, every storage. */
START_TEST(test_equivalence)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0x5e0u + (uint64_t)rule)};
    unsigned nv;
    const combo *vs = variants_of(rule, &nv);
    size_t n[MAXT];
    const size_t k = case_sizes(n);
    unsigned cases = 0;
    for (unsigned v = 0; v < nv; v++)
        for (unsigned s = 0; s < N_STORAGES; s++, cases++) {
            /* hyperparameters: the first set mostly, the others in turn */
            const int hp = cases % 3 ? 0 : (int)(cases / 3 % (unsigned)rule_nhypers(rule));
            const rule_cfg c = variant_config(rule, vs[v], hp);
            rmsfuse_storage st = storage_k(s);
            st.seed = rng_next(&r);
            st.step = rng_next(&r) % 1000;
            size_t nn[MAXT];
            memcpy(nn, n, k * sizeof *n);
            shuffle_sizes(nn, k, &r);
            const unsigned how = (cases % 4 == 1 ? C_PACKED : 0u) | (cases % 3 == 2 ? C_NULL_UNUSED : 0u) |
                                 (cases % 2 ? C_SPECIALS : 0u) | (cases % 5 < 2 ? C_RAW_CODES : 0u);
            rig R;
            rig_make(&R, &c, &st, nn, k, &r, how);
            run_case(&R, &r, cases % 2 == 0 || test_full_run());
            /* all float32: step_typed is step_multi on this ISA (for NaNs their
             * NaN-ness: step_multi's decoded arrays have other alignments, so
             * other elements take the width-1 loop, docs/math.md) */
            if (s == 0) {
                memcpy(R.E, R.O, R.size);
                rig_decode(&R, R.E);
                rule_tensor lt[MAXT];
                rig_float_list(&R, lt);
                ck_assert_int_eq(rule_step_multi(&R.cfg, lt, R.count), RMSFUSE_OK);
                rig_encode(&R, R.E);
                rig_compare(&R, R.A, R.E, "all-F32 step_typed against step_multi");
            }
            /* one tensor, packed, then two */
            rig_free(&R);
            const size_t one = cases % 4 == 0 ? (cases % 8 ? 1000 : 4097) : n[rng_next(&r) % k];
            rig_make(&R, &c, &st, &one, 1, &r, how ^ C_PACKED);
            run_case(&R, &r, 1);
            rig_free(&R);
            const size_t two[2] = {n[rng_next(&r) % k], n[rng_next(&r) % k]};
            rig_make(&R, &c, &st, two, 2, &r, how);
            run_case(&R, &r, 1);
            rig_free(&R);
        }
}
END_TEST

/* Every combination of every rule (the native run with detection only),
 * each with one of the storages in turn. */
START_TEST(test_every_combination)
{
    const int rule = _i;
    if (!test_full_run())
        return;
    test_rng r = {test_run_seed(0xa11u + (uint64_t)rule)};
    static const size_t n[] = {1, 17, 255, 257, 600, 0, 33};
    const unsigned nc = rule_ncombos(rule);
    for (unsigned q = 0; q < nc; q++) {
        const rule_cfg c = rule_config(rule, rule_combo(rule, q), (int)(q % (unsigned)rule_nhypers(rule)));
        rmsfuse_storage st = storage_k((q * 7 + (unsigned)rule) % N_STORAGES);
        st.seed = rng_next(&r);
        rig R;
        rig_make(&R, &c, &st, n, sizeof n / sizeof n[0], &r, q % 2 ? C_SPECIALS : C_RAW_CODES);
        run_case(&R, &r, q % 3 == 0);
        rig_free(&R);
    }
}
END_TEST

/* Several steps.  Split bf16 and master weights (float32 gradients and
 * state): the pair, and the master copy, are a float32 param stepped by
 * step_multi, bit for bit, every step; the param is the master rounded.
 * bf16 and 8-bit state: each step is decode, step, encode. */
START_TEST(test_steps)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0x57e9u + (uint64_t)rule)};
    const rule_cfg c0 = rule_full_config(rule);
    static const size_t n[] = {300, 1, 17, 64, 1000};
    enum { NT = sizeof n / sizeof n[0], STEPS = 5 };
    static const unsigned kinds[][4] = {
        {RMSFUSE_SPLIT_BF16, RMSFUSE_F32, RMSFUSE_F32, 0},
        {RMSFUSE_BF16, RMSFUSE_F32, RMSFUSE_F32, MW},
        {RMSFUSE_F16, RMSFUSE_F32, RMSFUSE_F32, MW},
        {RMSFUSE_F16, RMSFUSE_F32, RMSFUSE_F32, MW | SR},
    };
    for (size_t kk = 0; kk < sizeof kinds / sizeof kinds[0]; kk++) {
        rmsfuse_storage st = storage_of(kinds[kk][0], kinds[kk][1], kinds[kk][2], kinds[kk][3]);
        st.seed = rng_next(&r);
        rig R;
        rig_make(&R, &c0, &st, n, NT, &r, C_SPECIALS);
        /* the float32 mirror: the arrays decoded once, then only stepped */
        use_isa("scalar");
        rig_decode(&R, R.A);
        use_isa(entry_isa);
        const unsigned narr = rule_infos[rule].narr;
        size_t floats = 0;
        for (size_t i = 0; i < NT; i++)
            floats += narr * n[i];
        float *mirror = malloc(floats * sizeof(float));
        ck_assert_ptr_nonnull(mirror);
        memcpy(mirror, R.fblock, floats * sizeof(float));
        rule_tensor lt[NT];
        rig_float_list(&R, lt);
        for (size_t i = 0; i < NT; i++)
            for (unsigned j = 0; j < MAX_ARR; j++)
                lt[i].a[j] = lt[i].a[j] ? mirror + (lt[i].a[j] - R.fblock) : NULL;
        rule_cfg c = c0;
        for (int s = 0; s < STEPS; s++, rule_advance_step(&c)) {
            R.cfg = c;
            R.st.step = (unsigned long long)s;
            ck_assert_int_eq(rule_step_multi(&c, lt, NT), RMSFUSE_OK);
            ck_assert_int_eq(typed_step(&c, &R.st, R.t, NT, NULL, NULL), RMSFUSE_OK);
            for (size_t i = 0; i < NT; i++) {
                const tlay *L = &R.lay[i];
                for (size_t e = 0; e < n[i]; e++) {
                    const float want = lt[i].a[SLOT_PARAM][e];
                    float got;
                    if (st.param == RMSFUSE_SPLIT_BF16) {
                        uint16_t hi, lo;
                        memcpy(&hi, R.A + L->a[SLOT_PARAM] + 2 * e, 2);
                        memcpy(&lo, R.A + L->extra + 2 * e, 2);
                        got = u2f((uint32_t)hi << 16 | lo);
                    } else {
                        memcpy(&got, R.A + L->extra + 4 * e, 4);
                        uint16_t h;
                        memcpy(&h, R.A + L->a[SLOT_PARAM] + 2 * e, 2);
                        const uint16_t hw = param_code(&R, i, e, got);
                        REQUIRE_MSG(h == hw || (isnan(got) && (st.param == RMSFUSE_BF16 ? isnan(bf16_read(h))
                                                                                         : isnan(f16_read(h)))),
                                    "step %d %s: param[%zu] %#x is not its master %a rounded (%#x)", s,
                                    storage_text(&st), e, h, (double)got, hw);
                    }
                    REQUIRE_MSG(same_float(got, want), "step %d %s: tensor %zu param[%zu] = %a, float32 step %a", s,
                                storage_text(&st), i, e, (double)got, (double)want);
                    for (unsigned j = 2; j < narr; j++)
                        if (uses(&R, j)) {
                            float sv;
                            memcpy(&sv, R.A + L->a[j] + 4 * e, 4);
                            REQUIRE_MSG(same_float(sv, lt[i].a[j][e]), "step %d %s: %s[%zu] = %a, float32 step %a", s,
                                        storage_text(&st), rule_infos[rule].arr_name[j], e, (double)sv,
                                        (double)lt[i].a[j][e]);
                        }
                }
            }
        }
        free(mirror);
        rig_free(&R);
    }
    /* bf16 and 8-bit state, bf16 param: every step decode, step, encode */
    static const unsigned st_kinds[][4] = {
        {RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_BF16, 0},
        {RMSFUSE_F32, RMSFUSE_F16, RMSFUSE_Q8, 0},
        {RMSFUSE_F16, RMSFUSE_F32, RMSFUSE_Q8_LINEAR, MW},
    };
    for (size_t kk = 0; kk < sizeof st_kinds / sizeof st_kinds[0]; kk++) {
        const rmsfuse_storage st = storage_of(st_kinds[kk][0], st_kinds[kk][1], st_kinds[kk][2], st_kinds[kk][3]);
        rig R;
        rig_make(&R, &c0, &st, n, NT, &r, 0);
        rule_cfg c = c0;
        for (int s = 0; s < STEPS; s++, rule_advance_step(&c)) {
            R.cfg = c;
            ck_assert_int_eq(rig_expect(&R, NULL, NULL), RMSFUSE_OK);
            ck_assert_int_eq(typed_step(&c, &R.st, R.t, NT, NULL, NULL), RMSFUSE_OK);
            rig_compare(&R, R.A, R.E, "a later step");
        }
        rig_free(&R);
    }
}
END_TEST

/* Stochastic rounding. */
START_TEST(test_stochastic)
{
    test_rng r = {test_run_seed(0x5700u)};
    const rule_cfg c = rule_full_config(RULE_ADAM);
    const size_t n[] = {4097, 300, 1, 255};
    enum { NT = 4 };
    for (int k = 0; k < 4; k++) {
        const unsigned ptype = k % 2 ? RMSFUSE_F16 : RMSFUSE_BF16;
        rmsfuse_storage st = storage_of(ptype, RMSFUSE_F32, k < 2 ? RMSFUSE_F32 : RMSFUSE_Q8, SR | (k == 1 ? MW : 0u));
        st.seed = rng_next(&r);
        st.step = rng_next(&r);
        rig R;
        rig_make(&R, &c, &st, n, NT, &r, k == 3 ? C_SPECIALS : 0u);
        /* the oracle's bits (run_case: step and a plan over random cuts) */
        run_case(&R, &r, 1);
        unsigned char *first = malloc(R.size);
        ck_assert_ptr_nonnull(first);
        memcpy(first, R.A, R.size);
        /* every value one of its two neighbours: the float32 step's param
         * (R.f after rig_expect) rounded down or up in magnitude */
        for (size_t i = 0; i < NT; i++)
            for (size_t e = 0; e < n[i]; e++) {
                const float x = R.f[i][SLOT_PARAM][e];
                if (!isfinite(x))
                    continue;
                uint16_t h;
                memcpy(&h, R.A + R.lay[i].a[SLOT_PARAM] + 2 * e, 2);
                const double a = fabs((double)x);
                const grid_value val = ptype == RMSFUSE_BF16 ? bf16_mag : f16_mag;
                const unsigned top = ptype == RMSFUSE_BF16 ? 0x7F80u : 0x7C00u;
                unsigned down = top; /* the largest code of magnitude at most a */
                if (a < val(top, 0)) {
                    unsigned hi = top;
                    down = 0;
                    while (hi - down > 1) {
                        const unsigned mid = down + (hi - down) / 2;
                        if (val(mid, 0) <= a)
                            down = mid;
                        else
                            hi = mid;
                    }
                }
                const double vd = val(down, 0), vu = vd == a || down == top ? vd : val(down + 1, 0);
                const double gv = val(h & 0x7FFFu, 0);
                REQUIRE_MSG(((h >> 15) != 0) == (signbit(x) != 0) && (gv == vd || gv == vu),
                            "stochastic %s of %a = %#x, not a neighbour (%a or %a)", type_name(ptype), (double)x, h,
                            vd, vu);
            }
        /* the same inputs again: the same bits, under every ISA */
        for (const char *const *nm = rmsfuse_isa_names(); *nm; nm++) {
            if (!rmsfuse_isa_supported(*nm))
                continue;
            use_isa(*nm);
            memcpy(R.A, R.O, R.size);
            ck_assert_int_eq(typed_step(&c, &R.st, R.t, NT, NULL, NULL), RMSFUSE_OK);
            rig_compare(&R, R.A, first, "stochastic rounding again, under every ISA");
        }
        use_isa(entry_isa);
        /* another seed, step or stream: other bits (4097 random roundings) */
        for (int w = 0; w < 3; w++) {
            memcpy(R.A, R.O, R.size);
            rmsfuse_storage s2 = R.st;
            rmsfuse_typed_tensor t2[NT];
            memcpy(t2, R.t, sizeof t2);
            if (w == 0)
                s2.seed ^= 1;
            else if (w == 1)
                s2.step++;
            else
                t2[0].stream ^= 0x100000000ull;
            ck_assert_int_eq(typed_step(&c, &s2, t2, NT, NULL, NULL), RMSFUSE_OK);
            const size_t off = R.lay[0].a[SLOT_PARAM];
            ck_assert_msg(memcmp(R.A + off, first + off, 2 * n[0]) != 0,
                          "%s: changing the %s changes no bit of 4097 stochastic roundings", storage_text(&st),
                          w == 0 ? "seed" : w == 1 ? "step" : "stream");
            if (w == 2) /* the other tensors' streams did not change: their bits neither */
                for (size_t i = 1; i < NT; i++)
                    ck_assert(memcmp(R.A + R.lay[i].a[SLOT_PARAM], first + R.lay[i].a[SLOT_PARAM], 2 * n[i]) == 0);
        }
        free(first);
        rig_free(&R);
    }
    /* unbiased: 1 + 0.3 ulp of bf16 rounded 20000 times (other elements,
     * other random numbers) averages to it */
    {
        enum { M = 20000 };
        float *v = malloc(M * sizeof(float)), *g = calloc(M, sizeof(float));
        uint16_t *p = malloc(M * sizeof(uint16_t));
        ck_assert(v && g && p);
        const float x = 1.0f + 0.3f * 0x1p-7f;
        for (size_t e = 0; e < M; e++)
            v[e] = x;
        for (unsigned type = RMSFUSE_BF16; type <= RMSFUSE_F16; type++) {
            rmsfuse_storage st = storage_of(type, RMSFUSE_F32, RMSFUSE_F32, MW | SR);
            st.seed = 42;
            const rmsfuse_typed_tensor t = {p, v, g, {NULL}, {NULL}, M, 7};
            rmsfuse_sgd_config sc = rmsfuse_sgd_pytorch(0.0); /* lr 0: param = master */
            sc.flags = 0;
            ck_assert_int_eq(rmsfuse_sgd_step_typed(&sc, &st, &t, 1, NULL, NULL), RMSFUSE_OK);
            double sum = 0.0;
            size_t up = 0;
            for (size_t e = 0; e < M; e++) {
                const float y = type == RMSFUSE_BF16 ? bf16_read(p[e]) : f16_read(p[e]);
                sum += y;
                up += y > x;
            }
            const double frac = type == RMSFUSE_BF16 ? 0.3 : 0.3 * 0x1p-7 / 0x1p-10 - 2.0; /* f16: 2.4 ulps, 0.4 */
            ck_assert_msg(fabs((double)up / M - frac) < 0.02, "%s: %zu of %d rounded up, expected about %g",
                          type_name(type), up, M, frac);
            ck_assert_msg(fabs(sum / M - x) < 0.02 * (type == RMSFUSE_BF16 ? 0x1p-7 : 0x1p-10), "%s: mean %a of %a",
                          type_name(type), sum / M, (double)x);
        }
        free(v);
        free(g);
        free(p);
    }
}
END_TEST

static int same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* Gradient options with typed gradients. */
START_TEST(test_grad_options)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0x6a0u + (uint64_t)rule)};
    static const size_t n[] = {5000, 1, 4096, 300, 17, 0, 9000};
    enum { NT = sizeof n / sizeof n[0] };
    static const unsigned kinds[][4] = {
        {RMSFUSE_F32, RMSFUSE_BF16, RMSFUSE_F32, 0},
        {RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_Q8, MW},
        {RMSFUSE_SPLIT_BF16, RMSFUSE_F16, RMSFUSE_BF16, 0},
        {RMSFUSE_F16, RMSFUSE_F16, RMSFUSE_Q8_LINEAR, SR},
    };
    const rmsfuse_grad_options opts[] = {
        {0.5, HUGE_VAL, HUGE_VAL, 0u, 0.0},
        {1.0, 0.05, HUGE_VAL, 0u, 0.0},
        {0.25, HUGE_VAL, 3.0, 0u, 0.0},                      /* clips: the norm is about 25 */
        {1.0 / 1024, 0.5, 1e6, RMSFUSE_SKIP_NONFINITE, 0.0}, /* does not clip */
        {3.0, HUGE_VAL, HUGE_VAL, RMSFUSE_SKIP_NONFINITE, 0.0},
    };
    const int nopt = (int)(sizeof opts / sizeof opts[0]);
    for (size_t kk = 0; kk < sizeof kinds / sizeof kinds[0]; kk++)
        for (int q = 0; q < nopt; q++) {
            const rule_cfg c = rule_config(rule, rule_combo(rule, (unsigned)(rng_next(&r) % rule_ncombos(rule))), 0);
            rmsfuse_storage st = storage_of(kinds[kk][0], kinds[kk][1], kinds[kk][2], kinds[kk][3]);
            st.seed = rng_next(&r);
            rig R;
            rig_make(&R, &c, &st, n, NT, &r, 0);
            rmsfuse_grad_info want = {-7.0, -7.0, -7}, got = {-5.0, -5.0, -5};
            const int sw = rig_expect(&R, &opts[q], &want);
            ck_assert_int_eq(sw, RMSFUSE_OK);
            const int sg = typed_step(&c, &st, R.t, NT, &opts[q], &got);
            ck_assert_int_eq(sg, sw);
            rig_compare(&R, R.A, R.E, "step_typed with gradient options");
            REQUIRE_MSG(same_double(got.norm, want.norm) && same_double(got.clip_factor, want.clip_factor) &&
                            got.nonfinite == want.nonfinite,
                        "%s: info {%a, %a, %d}, float32 step_ex {%a, %a, %d}", case_text(&R), got.norm,
                        got.clip_factor, got.nonfinite, want.norm, want.clip_factor, want.nonfinite);
            if (q == 2)
                ck_assert(got.clip_factor < 1.0);
            /* the norm: rmsfuse_grad_sumsq_typed's, and the decoded gradients' */
            double ss = 0.0, fs = 0.0;
            ck_assert_int_eq(rmsfuse_grad_sumsq_typed(&st, R.t, NT, opts[q].scale, &ss), RMSFUSE_OK);
            rule_tensor lt[NT];
            rig_float_list(&R, lt); /* R.f: the inputs decoded by rig_expect */
            ck_assert_int_eq(rule_grad_sumsq(rule, lt, NT, opts[q].scale, &fs), RMSFUSE_OK);
            REQUIRE_MSG(same_double(ss, fs), "grad_sumsq_typed %a, over the decoded gradients %a", ss, fs);
            if (!isnan(want.norm))
                REQUIRE_MSG(same_double(sqrt(ss), want.norm), "norm %a, sqrt(grad_sumsq_typed) %a", want.norm,
                            sqrt(ss));
            /* by parts */
            double p1 = 0.0;
            ck_assert_int_eq(rmsfuse_grad_sumsq_typed(&st, R.t, 3, opts[q].scale, &p1), RMSFUSE_OK);
            ck_assert_int_eq(rmsfuse_grad_sumsq_typed(&st, R.t + 3, NT - 3, opts[q].scale, &p1), RMSFUSE_OK);
            ck_assert(same_double(p1, ss));
            /* block sums of each tensor, typed and decoded; folded: the sum */
            double folded = 0.0;
            for (size_t i = 0; i < NT; i++) {
                double bt[4] = {-1, -1, -1, -1}, bf[4] = {-2, -2, -2, -2};
                const size_t nb = (n[i] + RMSFUSE_NORM_BLOCK - 1) / RMSFUSE_NORM_BLOCK;
                ck_assert_int_eq(rmsfuse_grad_block_sumsq_typed(st.grad, R.t[i].grad, n[i], opts[q].scale, bt),
                                 RMSFUSE_OK);
                ck_assert_int_eq(rmsfuse_grad_block_sumsq(R.f[i][SLOT_GRAD], n[i], opts[q].scale, bf), RMSFUSE_OK);
                for (size_t b = 0; b < nb; b++) {
                    ck_assert(same_double(bt[b], bf[b]));
                    folded += bt[b];
                }
                ck_assert(bt[nb] == -1.0);
            }
            ck_assert(same_double(folded, ss));
            /* a plan: its block sums, and plan_run_ex over cuts with the sum given */
            memcpy(R.A, R.O, R.size);
            rmsfuse_plan *plan = NULL;
            ck_assert_int_eq(typed_plan(&c, &st, R.t, NT, &plan), RMSFUSE_OK);
            const size_t nb = rmsfuse_plan_blocks(plan);
            ck_assert_uint_eq(nb, 2 + 1 + 1 + 1 + 1 + 0 + 3);
            double sums[16], ps = 0.0;
            ck_assert_int_eq(rmsfuse_plan_block_sumsq(plan, opts[q].scale, 0, 4, sums), RMSFUSE_OK);
            ck_assert_int_eq(rmsfuse_plan_block_sumsq(plan, opts[q].scale, 4, nb, sums + 4), RMSFUSE_OK);
            for (size_t b = 0; b < nb; b++)
                ps += sums[b];
            ck_assert(same_double(ps, ss));
            rmsfuse_grad_options og = opts[q];
            og.flags |= RMSFUSE_SUMSQ_GIVEN;
            og.sumsq = ps;
            run_plan_ranges(plan, storage_q8(&R), &r, 5, &og, RMSFUSE_OK);
            rig_compare(&R, R.A, R.E, "plan_run_ex with the sum given");
            memcpy(R.A, R.O, R.size);
            run_plan_ranges(plan, storage_q8(&R), &r, 3, &opts[q], RMSFUSE_OK); /* each range computes the norm */
            rig_compare(&R, R.A, R.E, "plan_run_ex");

            /* an infinite gradient with SKIP_NONFINITE: skipped, nothing written */
            if (opts[q].flags & RMSFUSE_SKIP_NONFINITE) {
                memcpy(R.A, R.O, R.size);
                const size_t ti = (size_t)(rng_next(&r) % 2) * 6; /* the first or the last tensor */
                const size_t e = (size_t)(rng_next(&r) % n[ti]);
                unsigned char *gp = R.A + R.lay[ti].a[SLOT_GRAD] + e * type_bytes(st.grad);
                if (st.grad == RMSFUSE_F32) {
                    const float inf = q % 2 ? INFINITY : NAN;
                    memcpy(gp, &inf, 4);
                } else {
                    write_u16(gp, st.grad == RMSFUSE_BF16 ? 0xFF80u : 0x7C00u);
                }
                memcpy(R.O, R.A, R.size);
                rmsfuse_grad_info info = {-7.0, -7.0, -7};
                ck_assert_int_eq(typed_step(&c, &st, R.t, NT, &opts[q], &info), RMSFUSE_SKIPPED);
                REQUIRE_MSG(memcmp(R.A, R.O, R.size) == 0, "a skipped step wrote: %s", case_text(&R));
                ck_assert(info.nonfinite == 1 && !isfinite(info.norm));
                ck_assert_int_eq(rmsfuse_plan_run_ex(plan, 0, rmsfuse_plan_elements(plan), &opts[q], &info),
                                 RMSFUSE_SKIPPED);
                REQUIRE_MSG(memcmp(R.A, R.O, R.size) == 0, "a skipped plan_run_ex wrote: %s", case_text(&R));
                /* without SKIP_NONFINITE it steps (the float32 step_ex's bits) */
                rmsfuse_grad_options on = opts[q];
                on.flags &= ~RMSFUSE_SKIP_NONFINITE;
                on.max_norm = 1.0;
                ck_assert_int_eq(rig_expect(&R, &on, &want), RMSFUSE_OK);
                ck_assert_int_eq(typed_step(&c, &st, R.t, NT, &on, &got), RMSFUSE_OK);
                rig_compare(&R, R.A, R.E, "a non-finite gradient, not skipped");
                ck_assert(got.nonfinite == 1 && same_double(got.clip_factor, want.clip_factor));
            }
            rmsfuse_plan_free(plan);
            rig_free(&R);
        }
    /* the typed sums' own errors */
    {
        const rmsfuse_storage st = storage_of(RMSFUSE_F32, RMSFUSE_BF16, RMSFUSE_F32, 0);
        const uint16_t g[3] = {0x3F80, 0x4000, 0xC040};
        double s = 5.0, sums[2] = {5.0, 5.0};
        rmsfuse_typed_tensor t[2];
        memset(t, 0, sizeof t);
        t[0].grad = g;
        t[0].n = 3;
        t[1].n = 2; /* grad NULL */
        ck_assert_int_eq(rmsfuse_grad_sumsq_typed(&st, t, 1, 1.0, NULL), RMSFUSE_E_GRAD_OPTIONS);
        ck_assert_int_eq(rmsfuse_grad_sumsq_typed(&st, t, 1, 0.0, &s), RMSFUSE_E_GRAD_OPTIONS);
        ck_assert_int_eq(rmsfuse_grad_sumsq_typed(NULL, t, 1, 1.0, &s), RMSFUSE_E_STORAGE);
        rmsfuse_storage bad = st;
        bad.grad = RMSFUSE_Q8;
        ck_assert_int_eq(rmsfuse_grad_sumsq_typed(&bad, t, 1, 1.0, &s), RMSFUSE_E_STORAGE);
        ck_assert_int_eq(rmsfuse_grad_sumsq_typed(&st, NULL, 1, 1.0, &s), RMSFUSE_E_NULL_LIST);
        ck_assert_int_eq(rmsfuse_grad_sumsq_typed(&st, t, 2, 1.0, &s), RMSFUSE_E_NULL_ARRAY);
        ck_assert(s == 5.0);
        ck_assert_int_eq(rmsfuse_grad_sumsq_typed(&st, t, 1, 1.0, &s), RMSFUSE_OK);
        ck_assert(s == 5.0 + 1.0 + 4.0 + 9.0);
        ck_assert_int_eq(rmsfuse_grad_block_sumsq_typed(RMSFUSE_SPLIT_BF16, g, 3, 1.0, sums), RMSFUSE_E_STORAGE);
        ck_assert_int_eq(rmsfuse_grad_block_sumsq_typed(RMSFUSE_Q8, g, 3, 1.0, sums), RMSFUSE_E_STORAGE);
        ck_assert_int_eq(rmsfuse_grad_block_sumsq_typed(RMSFUSE_BF16, NULL, 3, 1.0, sums), RMSFUSE_E_NULL_ARRAY);
        ck_assert_int_eq(rmsfuse_grad_block_sumsq_typed(RMSFUSE_BF16, g, 3, 1.0, NULL), RMSFUSE_E_NULL_ARRAY);
        ck_assert_int_eq(rmsfuse_grad_block_sumsq_typed(RMSFUSE_BF16, g, 3, -1.0, sums), RMSFUSE_E_GRAD_OPTIONS);
        ck_assert_int_eq(rmsfuse_grad_block_sumsq_typed(RMSFUSE_F16, NULL, 0, 1.0, NULL), RMSFUSE_OK);
        ck_assert(sums[0] == 5.0 && sums[1] == 5.0);
        ck_assert_int_eq(rmsfuse_grad_block_sumsq_typed(RMSFUSE_BF16, g, 3, 2.0, sums), RMSFUSE_OK);
        ck_assert(sums[0] == 4.0 + 16.0 + 36.0 && sums[1] == 5.0);
    }
}
END_TEST

/* A bad case: every call returns `want`, writes nothing, leaves info and
 * *plan alone (NULL). */
static void expect_refused(rig *R, const rule_cfg *c, const rmsfuse_storage *st, const rmsfuse_typed_tensor *t,
                           size_t count, int want, const char *what)
{
    rmsfuse_grad_info info = {-7.0, -7.0, -7};
    const rmsfuse_grad_options o = {0.5, 1.0, 2.0, RMSFUSE_SKIP_NONFINITE, 0.0};
    int st1 = typed_check(c, st, t, count);
    REQUIRE_MSG(st1 == want, "%s: check_typed %d (%s), expected %d (%s)", what, st1, rmsfuse_strerror(st1), want,
                rmsfuse_strerror(want));
    st1 = typed_step(c, st, t, count, NULL, &info);
    REQUIRE_MSG(st1 == want, "%s: step_typed %d (%s), expected %d (%s)", what, st1, rmsfuse_strerror(st1), want,
                rmsfuse_strerror(want));
    st1 = typed_step(c, st, t, count, &o, &info);
    REQUIRE_MSG(st1 == want, "%s: step_typed with options %d, expected %d", what, st1, want);
    ck_assert(info.norm == -7.0 && info.clip_factor == -7.0 && info.nonfinite == -7);
    rmsfuse_plan *plan = (rmsfuse_plan *)(uintptr_t)16;
    st1 = typed_plan(c, st, t, count, &plan);
    REQUIRE_MSG(st1 == want && plan == NULL, "%s: plan_typed %d (plan %p), expected %d", what, st1, (void *)plan,
                want);
    REQUIRE_MSG(memcmp(R->A, R->O, R->size) == 0, "%s: a refused call wrote", what);
}

START_TEST(test_errors)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0xe77u + (uint64_t)rule)};
    const rule_cfg c = rule_full_config(rule);
    const unsigned narr = rule_infos[rule].narr;
    static const size_t n[] = {300, 5, 1};
    enum { NT = 3 };
    /* storages refused whatever the arrays */
    const rmsfuse_storage bad[] = {
        storage_of(RMSFUSE_Q8, RMSFUSE_F32, RMSFUSE_F32, 0),
        storage_of(RMSFUSE_Q8_LINEAR, RMSFUSE_F32, RMSFUSE_F32, 0),
        storage_of(6u, RMSFUSE_F32, RMSFUSE_F32, 0),
        storage_of(UINT_MAX, RMSFUSE_F32, RMSFUSE_F32, 0),
        storage_of(RMSFUSE_F32, RMSFUSE_SPLIT_BF16, RMSFUSE_F32, 0),
        storage_of(RMSFUSE_F32, RMSFUSE_Q8, RMSFUSE_F32, 0),
        storage_of(RMSFUSE_F32, 7u, RMSFUSE_F32, 0),
        storage_of(RMSFUSE_F32, RMSFUSE_F32, RMSFUSE_F16, 0),
        storage_of(RMSFUSE_F32, RMSFUSE_F32, RMSFUSE_SPLIT_BF16, 0),
        storage_of(RMSFUSE_F32, RMSFUSE_F32, 6u, 0),
        storage_of(RMSFUSE_F32, RMSFUSE_F32, 0x80000001u, 0),
        storage_of(RMSFUSE_F32, RMSFUSE_F32, RMSFUSE_F32, MW),
        storage_of(RMSFUSE_SPLIT_BF16, RMSFUSE_F32, RMSFUSE_F32, MW),
        storage_of(RMSFUSE_F32, RMSFUSE_F32, RMSFUSE_F32, SR),
        storage_of(RMSFUSE_SPLIT_BF16, RMSFUSE_F32, RMSFUSE_F32, SR),
        storage_of(RMSFUSE_BF16, RMSFUSE_F32, RMSFUSE_F32, 4u),
        storage_of(RMSFUSE_F16, RMSFUSE_F32, RMSFUSE_F32, MW | 0x80000000u),
    };
    /* arrays for the widest storage (every array, extras, scales) */
    const rmsfuse_storage wide = storage_of(RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_Q8, MW);
    rig R;
    rig_make(&R, &c, &wide, n, NT, &r, 0);
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        char what[96];
        snprintf(what, sizeof what, "bad storage %zu {%u, %u, %u, %#x}", b, bad[b].param, bad[b].grad, bad[b].state,
                 bad[b].flags);
        expect_refused(&R, &c, &bad[b], R.t, NT, RMSFUSE_E_STORAGE, what);
        expect_refused(&R, &c, &bad[b], NULL, 0, RMSFUSE_E_STORAGE, what); /* even with no tensors */
        /* the configuration is checked first */
        rule_cfg nul = c;
        nul.as_null = 1;
        expect_refused(&R, &nul, &bad[b], R.t, NT, RMSFUSE_E_NULL_CONFIG, what);
        /* and its sums of squares refuse it too */
        double s = 0.0;
        ck_assert_int_eq(rmsfuse_grad_sumsq_typed(&bad[b], R.t, NT, 1.0, &s), RMSFUSE_E_STORAGE);
    }
    expect_refused(&R, &c, NULL, R.t, NT, RMSFUSE_E_STORAGE, "storage NULL");
    /* the good storage: the arrays' errors, one at a time, in the last tensor or the first */
    for (size_t which = 0; which < NT; which += NT - 1) {
        rmsfuse_typed_tensor t[NT];
        for (unsigned j = 0; j < narr + 2; j++) {
            memcpy(t, R.t, sizeof t);
            int want;
            const char *what;
            if (j == 0) {
                t[which].param = NULL, want = RMSFUSE_E_NULL_ARRAY, what = "param NULL";
            } else if (j == 1) {
                t[which].grad = NULL, want = RMSFUSE_E_NULL_ARRAY, what = "grad NULL";
            } else if (j < narr) {
                t[which].state[j - 2] = NULL, want = rule_infos[rule].null_status[j], what = "a state NULL";
            } else if (j == narr) {
                t[which].param_extra = NULL, want = RMSFUSE_E_NULL_ARRAY, what = "master NULL";
            } else {
                t[which].scale[narr - 3] = NULL, want = RMSFUSE_E_NULL_ARRAY, what = "a scale NULL";
            }
            expect_refused(&R, &c, &wide, t, NT, want, what);
        }
        /* huge n */
        memcpy(t, R.t, sizeof t);
        t[which].n = SIZE_MAX / 4 + 1;
        expect_refused(&R, &c, &wide, t, NT, RMSFUSE_E_SIZE, "n beyond the address space");
        t[which].n = SIZE_MAX;
        expect_refused(&R, &c, &wide, t, NT, RMSFUSE_E_SIZE, "n = SIZE_MAX");
    }
    /* a split param without its trail */
    {
        const rmsfuse_storage sp = storage_of(RMSFUSE_SPLIT_BF16, RMSFUSE_F32, RMSFUSE_F32, 0);
        rig S;
        rig_make(&S, &c, &sp, n, NT, &r, 0);
        S.t[1].param_extra = NULL;
        expect_refused(&S, &c, &sp, S.t, NT, RMSFUSE_E_NULL_ARRAY, "split without its trail");
        rig_free(&S);
    }
    expect_refused(&R, &c, &wide, NULL, NT, RMSFUSE_E_NULL_LIST, "tensors NULL");
    /* bad hyperparameters and options come first too */
    {
        rule_cfg bc = c;
        *rule_lr(&bc) = -1.0;
        expect_refused(&R, &bc, &wide, R.t, NT, RMSFUSE_E_LR, "lr < 0");
        rmsfuse_grad_info info = {-7.0, -7.0, -7};
        const rmsfuse_grad_options bo = {0.0, HUGE_VAL, HUGE_VAL, 0u, 0.0};
        ck_assert_int_eq(typed_step(&c, &wide, R.t, NT, &bo, &info), RMSFUSE_E_GRAD_OPTIONS);
        ck_assert(info.nonfinite == -7);
        const rmsfuse_grad_options uf = {1.0, HUGE_VAL, HUGE_VAL, 8u, 0.0};
        ck_assert_int_eq(typed_step(&c, &wide, R.t, NT, &uf, &info), RMSFUSE_E_GRAD_OPTIONS);
        ck_assert(memcmp(R.A, R.O, R.size) == 0);
    }
    /* count 0 and empty tensors: successful no-ops, NULL pointers and all */
    {
        ck_assert_int_eq(typed_step(&c, &wide, NULL, 0, NULL, NULL), RMSFUSE_OK);
        rmsfuse_typed_tensor z[2];
        memset(z, 0, sizeof z);
        ck_assert_int_eq(typed_step(&c, &wide, z, 2, NULL, NULL), RMSFUSE_OK);
        ck_assert_int_eq(typed_check(&c, &wide, z, 2), RMSFUSE_OK);
        rmsfuse_plan *plan = NULL;
        ck_assert_int_eq(typed_plan(&c, &wide, z, 2, &plan), RMSFUSE_OK);
        ck_assert_uint_eq(rmsfuse_plan_elements(plan), 0);
        ck_assert_int_eq(rmsfuse_plan_run(plan, 0, 0), RMSFUSE_OK);
        rmsfuse_plan_free(plan);
        ck_assert_int_eq(typed_plan(&c, &wide, R.t, NT, NULL), RMSFUSE_E_NULL_PLAN);
        ck_assert(memcmp(R.A, R.O, R.size) == 0);
    }
    rig_free(&R);

    /* unused pointers are ignored: a state the configuration does not use,
     * scales of non-8-bit state, the extra of a plain param, NULL or
     * overlapping anything */
    {
        rule_cfg pc = rule_config(rule, rule_combo(rule, 0), 0); /* no flags, no momentum */
        const rmsfuse_storage bs = storage_of(RMSFUSE_BF16, RMSFUSE_F32, RMSFUSE_BF16, 0);
        rig U;
        rig_make(&U, &pc, &bs, n, NT, &r, C_NULL_UNUSED);
        for (size_t i = 0; i < NT; i++) {
            U.t[i].param_extra = U.t[i].param; /* overlaps param: unused */
            for (unsigned k = 0; k < 4; k++) {
                if (!uses(&U, k + 2))
                    U.t[i].state[k] = k % 2 ? U.t[i].param : (void *)(uintptr_t)8; /* never touched */
                U.t[i].scale[k] = (float *)U.t[i].param;
            }
        }
        run_case(&U, &r, 1);
        rig_free(&U);
    }
}
END_TEST

/* A byte range of an array of a typed tensor. */
typedef struct arr_ref {
    const char *name;
    void **ptr;       /* the field in the tensor */
    size_t bytes;
    int written;
} arr_ref;

/* The arrays tensor t of R uses (extras and scales included). */
static size_t arrays_of(rig *R, rmsfuse_typed_tensor *t, size_t i, arr_ref *out)
{
    size_t k = 0;
    const size_t n = R->n[i];
    const unsigned narr = rule_infos[R->cfg.rule].narr;
    for (unsigned j = 0; j < narr; j++) {
        if (!uses(R, j))
            continue;
        const unsigned type = slot_type(&R->st, j);
        void **p = j == SLOT_PARAM ? &t->param : j == SLOT_GRAD ? (void **)(void *)&t->grad : &t->state[j - 2];
        out[k++] = (arr_ref){rule_infos[R->cfg.rule].arr_name[j], p, n * type_bytes(type), j != SLOT_GRAD};
        if (j >= 2 && is_q8(type))
            out[k++] = (arr_ref){"a scale", (void **)(void *)&t->scale[j - 2],
                                 (n + RMSFUSE_Q8_BLOCK - 1) / RMSFUSE_Q8_BLOCK * 4, 1};
    }
    if (has_extra(&R->st))
        out[k++] = (arr_ref){"param_extra", &t->param_extra, n * extra_bytes(&R->st), 1};
    return k;
}

START_TEST(test_overlaps)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0x0e1u + (uint64_t)rule)};
    const rule_cfg c = rule_full_config(rule);
    static const size_t n[] = {300, 40};
    enum { NT = 2 };
    const rmsfuse_storage sts[] = {storage_of(RMSFUSE_BF16, RMSFUSE_F16, RMSFUSE_Q8, MW),
                                   storage_of(RMSFUSE_SPLIT_BF16, RMSFUSE_BF16, RMSFUSE_Q8_LINEAR, 0),
                                   storage_of(RMSFUSE_F32, RMSFUSE_F32, RMSFUSE_BF16, 0)};
    for (size_t s = 0; s < sizeof sts / sizeof sts[0]; s++) {
        rig R;
        rig_make(&R, &c, &sts[s], n, NT, &r, 0);
        arr_ref a0[12], a1[12];
        rmsfuse_typed_tensor t[NT];
        /* within a tensor: X starts inside Y (at its start, its last byte) */
        for (size_t ti = 0; ti < NT; ti++) {
            memcpy(t, R.t, sizeof t);
            const size_t k = arrays_of(&R, &t[ti], ti, a0);
            for (size_t x = 0; x < k; x++)
                for (size_t y = 0; y < k; y++) {
                    if (x == y)
                        continue;
                    for (int at = 0; at < 2; at++) {
                        memcpy(t, R.t, sizeof t);
                        arrays_of(&R, &t[ti], ti, a0);
                        unsigned char *py = *a0[y].ptr;
                        *a0[x].ptr = at ? py + a0[y].bytes - 1 : py;
                        char what[128];
                        snprintf(what, sizeof what, "%s: tensor %zu: %s inside %s", storage_text(&sts[s]), ti,
                                 a0[x].name, a0[y].name);
                        expect_refused(&R, &c, &sts[s], t, NT, RMSFUSE_E_OVERLAP, what);
                    }
                }
        }
        /* across tensors: an array of tensor 1 overlapping one of tensor 0
         * by one byte (its last byte on their first); two gradients may */
        memcpy(t, R.t, sizeof t);
        const size_t k0 = arrays_of(&R, &t[0], 0, a0), k1 = arrays_of(&R, &t[1], 1, a1);
        for (size_t x = 0; x < k1; x++)
            for (size_t y = 0; y < k0; y++) {
                memcpy(t, R.t, sizeof t);
                arrays_of(&R, &t[0], 0, a0);
                arrays_of(&R, &t[1], 1, a1);
                const int both_grads = !a1[x].written && !a0[y].written;
                /* two gradients: tensor 1's inside tensor 0's (it is shorter) */
                *a1[x].ptr = (unsigned char *)*a0[y].ptr - (both_grads ? 0 : a1[x].bytes - 1);
                char what[384]; /* storage_text: up to 159 characters, the names beside it */
                snprintf(what, sizeof what, "%s: tensor 1's %s on tensor 0's %s", storage_text(&sts[s]), a1[x].name,
                         a0[y].name);
                if (!both_grads)
                    expect_refused(&R, &c, &sts[s], t, NT, RMSFUSE_E_OVERLAP, what);
                else
                    ck_assert_int_eq(typed_check(&c, &sts[s], t, NT), RMSFUSE_OK);
            }
        rig_free(&R);
        /* a gradient shared by two tensors: accepted, both read it */
        const size_t same[3] = {77, 77, 300};
        rig_make(&R, &c, &sts[s], same, 3, &r, C_SPECIALS);
        R.t[1].grad = R.t[0].grad;
        R.lay[1].a[SLOT_GRAD] = R.lay[0].a[SLOT_GRAD];
        run_case(&R, &r, 1);
        rig_free(&R);
        /* every array back to back: accepted */
        rig_make(&R, &c, &sts[s], n, NT, &r, C_PACKED);
        run_case(&R, &r, 1);
        rig_free(&R);
    }
}
END_TEST

/* Plans with 8-bit state: ranges on block boundaries only. */
START_TEST(test_blocks)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0xb10u + (uint64_t)rule)};
    const rule_cfg c = rule_full_config(rule);
    static const size_t n[] = {300, 700, 256, 0, 5};
    enum { NT = 5 };
    const size_t total = 300 + 700 + 256 + 5;
    for (int k = 0; k < 3; k++) {
        const rmsfuse_storage st = storage_of(k == 2 ? RMSFUSE_F16 : RMSFUSE_F32, RMSFUSE_BF16,
                                              k == 0 ? RMSFUSE_Q8 : k == 1 ? RMSFUSE_Q8_LINEAR : RMSFUSE_BF16,
                                              k == 2 ? MW | SR : 0u);
        const int q8 = k < 2;
        rig R;
        rig_make(&R, &c, &st, n, NT, &r, 0);
        ck_assert_int_eq(rig_expect(&R, NULL, NULL), RMSFUSE_OK);
        rmsfuse_plan *plan = NULL;
        ck_assert_int_eq(typed_plan(&c, &st, R.t, NT, &plan), RMSFUSE_OK);
        ck_assert_uint_eq(rmsfuse_plan_elements(plan), total);
        /* the tensors' starts in the plan: 0, 300, 1000, 1256; the blocks' */
        const size_t starts[] = {0, 300, 1000, 1256, total};
        const size_t tn[] = {300, 700, 256, 5};
        /* rmsfuse_plan_cut: the next block boundary of the tensor, or its end */
        for (size_t f = 0; f <= total + 2; f++) {
            size_t want = f >= total ? total : f;
            for (size_t j = 0; j < 4 && f < total; j++)
                if (f > starts[j] && f < starts[j] + tn[j]) {
                    const size_t o = f - starts[j], up = (o + 255) / 256 * 256;
                    want = starts[j] + (up < tn[j] ? up : tn[j]);
                }
            const size_t got = rmsfuse_plan_cut(plan, f);
            if (q8) {
                REQUIRE_MSG(got == want, "%s: rmsfuse_plan_cut(%zu) = %zu, expected %zu", storage_text(&st), f, got,
                            want);
            } else { /* a cut: from f on, within f's tensor */
                size_t end = total;
                for (size_t j = 0; j < 4; j++)
                    if (f >= starts[j] && f < starts[j] + tn[j])
                        end = starts[j] + tn[j];
                const size_t lo = f < total ? f : total;
                const int fixed = f == 0 || f >= total || f == starts[1] || f == starts[2] || f == starts[3];
                REQUIRE_MSG(got >= lo && got <= end && (!fixed || got == lo), "%s: rmsfuse_plan_cut(%zu) = %zu",
                            storage_text(&st), f, got);
            }
        }
        ck_assert_uint_eq(rmsfuse_plan_cut(plan, SIZE_MAX), total);
        /* ranges inside a block: RMSFUSE_E_BLOCK with 8-bit state, nothing written */
        const struct {
            size_t b, e;
        } inside[] = {{0, 100}, {100, 256}, {1, 300}, {256, 299}, {300, 301}, {299, 1000}, {1000, 1255},
                      {1256, 1260}, {1257, total}, {556, 1000 + 255}};
        for (size_t q = 0; q < sizeof inside / sizeof inside[0]; q++) {
            const int want = q8 ? RMSFUSE_E_BLOCK : RMSFUSE_OK;
            const rmsfuse_grad_options o = {1.0, HUGE_VAL, 1.0, RMSFUSE_SKIP_NONFINITE, 0.0};
            if (q8) {
                ck_assert_int_eq(rmsfuse_plan_run(plan, inside[q].b, inside[q].e), want);
                ck_assert_int_eq(rmsfuse_plan_run_ex(plan, inside[q].b, inside[q].e, &o, NULL), want);
                ck_assert_int_eq(rmsfuse_plan_run_ex(plan, inside[q].b, inside[q].e, NULL, NULL), want);
                REQUIRE_MSG(memcmp(R.A, R.O, R.size) == 0, "[%zu, %zu): a refused range wrote", inside[q].b,
                            inside[q].e);
            }
        }
        /* the range errors come first; empty ranges anywhere are no-ops */
        ck_assert_int_eq(rmsfuse_plan_run(plan, 5, 4), RMSFUSE_E_RANGE);
        ck_assert_int_eq(rmsfuse_plan_run(plan, 1, total + 1), RMSFUSE_E_RANGE);
        ck_assert_int_eq(rmsfuse_plan_run_ex(plan, 1, total + 1, NULL, NULL), RMSFUSE_E_RANGE);
        ck_assert_int_eq(rmsfuse_plan_run(plan, 7, 7), RMSFUSE_OK);
        ck_assert_int_eq(rmsfuse_plan_run(plan, total, total), RMSFUSE_OK);
        ck_assert(memcmp(R.A, R.O, R.size) == 0);
        /* ranges on boundaries (tensor ends included), in pieces: the step's bits */
        const size_t good[][2] = {{1256, total}, {300, 556}, {0, 256}, {556, 1000}, {256, 300}, {1000, 1256}};
        for (size_t q = 0; q < sizeof good / sizeof good[0]; q++)
            ck_assert_int_eq(rmsfuse_plan_run(plan, good[q][0], good[q][1]), RMSFUSE_OK);
        rig_compare(&R, R.A, R.E, "plan ranges on block boundaries");
        if (!q8) { /* without 8-bit state any cut does */
            memcpy(R.A, R.O, R.size);
            ck_assert_int_eq(rmsfuse_plan_run(plan, 0, 137), RMSFUSE_OK);
            ck_assert_int_eq(rmsfuse_plan_run(plan, 601, 1259), RMSFUSE_OK);
            ck_assert_int_eq(rmsfuse_plan_run(plan, 137, 601), RMSFUSE_OK);
            ck_assert_int_eq(rmsfuse_plan_run(plan, 1259, total), RMSFUSE_OK);
            rig_compare(&R, R.A, R.E, "plan ranges anywhere");
        }
        /* the plan runs again: a second step from its own results */
        memcpy(R.O, R.A, R.size);
        ck_assert_int_eq(rig_expect(&R, NULL, NULL), RMSFUSE_OK);
        run_plan_ranges(plan, q8, &r, 9, NULL, RMSFUSE_OK);
        rig_compare(&R, R.A, R.E, "a plan's second step");
        rmsfuse_plan_free(plan);
        rig_free(&R);
    }
    /* SGD without momentum has no state: no block constraint */
    if (rule == RULE_SGD) {
        const rule_cfg pc = rule_config(RULE_SGD, rule_combo(RULE_SGD, 0), 0);
        const rmsfuse_storage st = storage_of(RMSFUSE_BF16, RMSFUSE_F32, RMSFUSE_Q8, 0);
        rig R;
        rig_make(&R, &pc, &st, n, NT, &r, C_NULL_UNUSED);
        ck_assert_int_eq(rig_expect(&R, NULL, NULL), RMSFUSE_OK);
        rmsfuse_plan *plan = NULL;
        ck_assert_int_eq(typed_plan(&pc, &st, R.t, NT, &plan), RMSFUSE_OK);
        ck_assert_int_eq(rmsfuse_plan_run(plan, 0, 100), RMSFUSE_OK);
        ck_assert_int_eq(rmsfuse_plan_run(plan, 100, total), RMSFUSE_OK);
        rig_compare(&R, R.A, R.E, "SGD without momentum, any range");
        rmsfuse_plan_free(plan);
        rig_free(&R);
    }
}
END_TEST

static Suite *storage_suite(void)
{
    Suite *s = suite_create("storage");
    TCase *tc = tcase_create("storage");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_convert);
    tcase_add_test(tc, test_zero_block);
    tcase_add_loop_test(tc, test_equivalence, 0, N_RULES);
    tcase_add_loop_test(tc, test_every_combination, 0, N_RULES);
    tcase_add_loop_test(tc, test_steps, 0, N_RULES);
    tcase_add_test(tc, test_stochastic);
    tcase_add_loop_test(tc, test_grad_options, 0, N_RULES);
    tcase_add_loop_test(tc, test_errors, 0, N_RULES);
    tcase_add_loop_test(tc, test_overlaps, 0, N_RULES);
    tcase_add_loop_test(tc, test_blocks, 0, N_RULES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    entry_isa = rmsfuse_active_isa();
    return rmsfuse_test_run(storage_suite());
}

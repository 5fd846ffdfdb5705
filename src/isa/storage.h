/*
 * Storage types for one ISA (docs/math.md, "Storage types"): the typed
 * run of every rule and the bulk conversions.  Included by
 * src/isa/kernels.c after the float32 kernels, with the conversions of the
 * scalar operations (suffix _c1) and, for fixed-width ISAs, the ISA's
 * (suffix _cw) already instantiated from storage_conv.h.
 *
 * A typed step goes through its tensor in blocks of RMSFUSE_Q8_BLOCK (256)
 * elements from the tensor's element 0.  The common storages take the fused
 * loops of storage_fused.h (the rule's element math with loads and stores
 * that convert in registers).  The others, and the last VW - 1 elements of
 * a block, take the block path below: each array that is not float32 is
 * converted into a float32 buffer on the stack (1 KiB, in L1), the rule's
 * float32 kernel of the same ISA, specialised for the variant, runs over
 * the block (float32 arrays in place, the others in their buffers), and
 * what it wrote is converted back (8-bit state once the block's largest
 * magnitude is known).  Both are one pass over memory and give the same
 * bits (the same operations on the same values); neither adds code of its
 * own per rule.
 */
#ifndef RMSFUSE_ISA_STORAGE_H
#define RMSFUSE_ISA_STORAGE_H

#define QB RMSFUSE_Q8_BLOCK

/* ---- n elements to and from float32, the type a constant of each loop -------- */

#if RMSFUSE_WIDE && !defined(VLA)
#define RMSFUSE_CONV_WIDE 1
#else
#define RMSFUSE_CONV_WIDE 0 /* the scalar ISA, and SVE (a width known only at run time): width 1 */
#endif

/* Which fused loops (storage_fused.h) this ISA has: "the fused loops"
 * below says why. */
#if !RMSFUSE_CONV_WIDE
/* the scalar path and SVE (VW not a preprocessor constant): the block path */
#elif VW == 16 && defined(__x86_64__) && (defined(__clang__) ? __clang_major__ >= 9 : __GNUC__ >= 10)
#define RMSFUSE_TX_BUILT 1
#define RMSFUSE_TX_HW_BUILT 1
#elif !(defined(__SSE2__) && !defined(__AVX2__))
#define RMSFUSE_TX_BUILT 1
#if defined(__AVX2__) && defined(__x86_64__)
#define RMSFUSE_TX_F16C_BUILT 1
#endif
#endif

#if RMSFUSE_KPART == 3 && !defined(RMSFUSE_TX_BUILT)
typedef int rmsfuse_no_fused_loops_; /* one rule's fused loops, on an ISA without them: nothing */
#else

static RMSFUSE_ALWAYS_INLINE void conv_to_t(const unsigned type, const int nonneg, const char *src, float scale,
                                            float *dst, size_t n)
{
    const size_t bytes = rmsfuse_type_bytes(type);
    size_t i = 0;
#if RMSFUSE_CONV_WIDE
    for (; i + VW <= n; i += VW)
        st_f32_cw((char *)(dst + i), load_cw(type, nonneg, src + i * bytes, scale));
#endif
    for (; i < n; i++)
        st_f32_c1((char *)(dst + i), load_c1(type, nonneg, src + i * bytes, scale));
}

/*
 * f16 by F16C on x86 (the AVX2 and AVX-512 builds; run where
 * rmsfuse_cpu_has_f16_convert()).  vcvtps2ph rounding to nearest even gives
 * the integer rule's bits for every float32 input (compared over all 2^32;
 * a float32 subnormal becomes a signed zero either way), vcvtph2ps for every
 * f16 except a signalling NaN, which it quiets: a vector with a NaN lane is
 * converted again by the integer rule (docs/math.md).
 */
#if RMSFUSE_CONV_WIDE && defined(__x86_64__) /* (not SVE, whose VW is not a preprocessor constant) */
#if VW == 8 || VW == 16
#define RMSFUSE_F16C_BUILT 1
#if RMSFUSE_KPART_STORAGE_OPS
static __attribute__((target("f16c"))) void f16_to_f32_hw(const char *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(src + i * 2)));
        if (__builtin_expect(_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0, 0))
            conv_to_t(RMSFUSE_F16, 0, src + i * 2, 0.0f, dst + i, 8);
        else
            _mm256_storeu_ps(dst + i, v);
    }
    conv_to_t(RMSFUSE_F16, 0, src + i * 2, 0.0f, dst + i, n - i);
}
#endif
#endif
#endif

/* The block conversions, the split weights' halves, the bulk conversions,
 * the typed norm and the block path's block: part 2's (the fused loops call
 * the block from there), less the 8-bit coding, which the fused loops
 * share. */
#if RMSFUSE_KPART_STORAGE_OPS
/* n elements of `type` at src (8-bit: at most one block, with its scale) into dst. */
static void conv_to_f32(unsigned type, int nonneg, const char *src, float scale, float *dst, size_t n)
{
    switch (type) {
    case RMSFUSE_BF16:
        conv_to_t(RMSFUSE_BF16, 0, src, scale, dst, n);
        break;
    case RMSFUSE_F16:
#ifdef RMSFUSE_F16C_BUILT
        if (rmsfuse_cpu_has_f16_convert()) {
            f16_to_f32_hw(src, dst, n);
            break;
        }
#endif
        conv_to_t(RMSFUSE_F16, 0, src, scale, dst, n);
        break;
    case RMSFUSE_Q8:
        if (nonneg)
            conv_to_t(RMSFUSE_Q8, 1, src, scale, dst, n);
        else
            conv_to_t(RMSFUSE_Q8, 0, src, scale, dst, n);
        break;
    case RMSFUSE_Q8_LINEAR:
        if (nonneg)
            conv_to_t(RMSFUSE_Q8_LINEAR, 1, src, scale, dst, n);
        else
            conv_to_t(RMSFUSE_Q8_LINEAR, 0, src, scale, dst, n);
        break;
    default:
        memcpy(dst, src, n * sizeof(float));
        break;
    }
}
#endif /* RMSFUSE_KPART_STORAGE_OPS */

/* The largest of the magnitudes' bits of n floats x that are not NaNs:
 * out of line, for the rare block with a NaN (q8_amax_of is inlined in
 * each of the fused loops, storage_fused.h). */
static __attribute__((noinline, unused)) uint32_t q8_amax_no_nan(const float *x, size_t n)
{
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        u &= 0x7FFFFFFFu;
        if (u <= 0x7F800000u && u > m)
            m = u;
    }
    return m;
}

/* The largest |x| of n floats x, NaNs ignored, given `all`, the largest
 * of their magnitudes' bits (NaNs included: on the bits, the order of
 * non-negative floats is the integers' order); *finite: none is an
 * infinity or a NaN. */
static RMSFUSE_ALWAYS_INLINE float q8_amax_of(uint32_t all, const float *x, size_t n, int *finite)
{
    *finite = all < 0x7F800000u;
    const uint32_t m = all <= 0x7F800000u ? all : q8_amax_no_nan(x, n); /* no NaN: the largest of all */
    float a;
    memcpy(&a, &m, sizeof a);
    return a;
}

#if RMSFUSE_CONV_WIDE
/* The largest lane of x. */
static RMSFUSE_ALWAYS_INLINE uint32_t hmax_cw(u_t_cw x)
{
#if VW == 16 && defined(__AVX512F__)
    __m512i v;
    memcpy(&v, &x, sizeof v);
    return (uint32_t)_mm512_reduce_max_epu32(v);
#else
    uint32_t all = 0;
    for (unsigned l = 0; l < VW; l++)
        all = x[l] > all ? x[l] : all;
    return all;
#endif
}
#endif

/* The largest |x| of n floats, NaNs ignored; *finite as q8_amax_of. */
static float block_amax(const float *x, size_t n, int *finite)
{
    uint32_t all = 0;
    size_t i = 0;
#if RMSFUSE_CONV_WIDE
    u_t_cw raw = splat_cw(0u);
    for (; i + VW <= n; i += VW)
        raw = smax_cw(raw, bits_cw(ld_f32_cw((const char *)(x + i))) & 0x7FFFFFFFu);
    all = hmax_cw(raw);
#endif
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        u &= 0x7FFFFFFFu;
        all = u > all ? u : all;
    }
    return q8_amax_of(all, x, n, finite);
}

static RMSFUSE_ALWAYS_INLINE void conv_q8_run(const unsigned type, const int nonneg, const int finite, const float *src,
                                              char *dst, float q, size_t n)
{
    size_t i = 0;
#if RMSFUSE_CONV_WIDE
    for (; i + 4 * VW <= n; i += 4 * VW)
        q8_encode_x4_cw(type, nonneg, finite, src + i, q, dst + i);
    for (; i + VW <= n; i += VW)
        st_u8_cw(dst + i, q8_encode_cw(type, nonneg, finite, ld_f32_cw((const char *)(src + i)), q));
#endif
    for (; i < n; i++)
        st_u8_c1(dst + i, q8_encode_c1(type, nonneg, finite, ld_f32_c1((const char *)(src + i)), q));
}

/* A block's scale (*s) and encoding multiplier (*q, 1 / amax) from its
 * largest magnitude amax, NaNs ignored (docs/math.md: both 0 below
 * FLT_MIN). */
static RMSFUSE_ALWAYS_INLINE void q8_scale_of(const float amax, float *s, float *q)
{
    *s = amax >= FLT_MIN ? amax : 0.0f;
    *q = amax >= FLT_MIN ? 1.0f / amax : 0.0f;
}

/* A block of n float32 values at src encoded into dst, with its scale s
 * and multiplier q (q8_scale_of) and finite as q8_amax_of gives it; s
 * stored at scale. */
static RMSFUSE_ALWAYS_INLINE void conv_q8_sq(const unsigned type, const int nonneg, const float *src, char *dst,
                                             char *scale, size_t n, const float s, const float q, const int finite)
{
    memcpy(scale, &s, sizeof s);
    if (finite)
        conv_q8_run(type, nonneg, 1, src, dst, q, n);
    else
        conv_q8_run(type, nonneg, 0, src, dst, q, n);
}

/* A block's n new values at src (the fused loops' buffer, storage_fused.h)
 * encoded as `type` (RMSFUSE_Q8 or RMSFUSE_Q8_LINEAR) into dst and its
 * scale, given s, q and finite (conv_q8_sq): the caller finds them as
 * soon as the block's values are known, and calls this later, so that
 * the division is done by then.  Out of line: one call per block, its code
 * once per object, not once per loop. */
static __attribute__((noinline, unused)) void q8_encode_block(const unsigned type, const int nonneg, const float *src,
                                                              char *dst, char *scale, size_t n, float s, float q,
                                                              int fin)
{
    if (type == RMSFUSE_Q8_LINEAR) {
        if (nonneg)
            conv_q8_sq(RMSFUSE_Q8_LINEAR, 1, src, dst, scale, n, s, q, fin);
        else
            conv_q8_sq(RMSFUSE_Q8_LINEAR, 0, src, dst, scale, n, s, q, fin);
    } else if (nonneg)
        conv_q8_sq(RMSFUSE_Q8, 1, src, dst, scale, n, s, q, fin);
    else
        conv_q8_sq(RMSFUSE_Q8, 0, src, dst, scale, n, s, q, fin);
}

static RMSFUSE_ALWAYS_INLINE void conv_q8_t(const unsigned type, const int nonneg, const float *src, char *dst,
                                            char *scale, size_t n)
{
    int finite;
    float s, q;
    q8_scale_of(block_amax(src, n, &finite), &s, &q);
    conv_q8_sq(type, nonneg, src, dst, scale, n, s, q, finite);
}

static RMSFUSE_ALWAYS_INLINE void conv_16_t(const unsigned type, const int sr, const float *src, char *dst, size_t n,
                                            uint64_t key, uint64_t i0)
{
    size_t i = 0;
#if RMSFUSE_CONV_WIDE
    for (; i + VW <= n; i += VW)
        store_cw(type, dst + i * 2, ld_f32_cw((const char *)(src + i)), sr, key, i0 + i);
#endif
    for (; i < n; i++)
        store_c1(type, dst + i * 2, ld_f32_c1((const char *)(src + i)), sr, key, i0 + i);
}

#if RMSFUSE_KPART_STORAGE_OPS
#ifdef RMSFUSE_F16C_BUILT
static __attribute__((target("f16c"))) void f16_from_f32_hw(const float *src, char *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(dst + i * 2),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    conv_16_t(RMSFUSE_F16, 0, src + i, dst + i * 2, n - i, 0, 0);
}
#endif

/* n float32 at src into dst of `type`: BF16, F16 rounded to nearest even
 * or, with sr, stochastically (element i0 first); 8-bit: at most one
 * block, its scale into *scale. */
static void conv_from_f32(unsigned type, int nonneg, const float *src, char *dst, char *scale, size_t n, int sr,
                          uint64_t key, uint64_t i0)
{
    switch (type) {
    case RMSFUSE_BF16:
        if (sr)
            conv_16_t(RMSFUSE_BF16, 1, src, dst, n, key, i0);
        else
            conv_16_t(RMSFUSE_BF16, 0, src, dst, n, key, i0);
        break;
    case RMSFUSE_F16:
        if (sr)
            conv_16_t(RMSFUSE_F16, 1, src, dst, n, key, i0);
#ifdef RMSFUSE_F16C_BUILT
        else if (rmsfuse_cpu_has_f16_convert())
            f16_from_f32_hw(src, dst, n);
#endif
        else
            conv_16_t(RMSFUSE_F16, 0, src, dst, n, key, i0);
        break;
    case RMSFUSE_Q8:
        if (nonneg)
            conv_q8_t(RMSFUSE_Q8, 1, src, dst, scale, n);
        else
            conv_q8_t(RMSFUSE_Q8, 0, src, dst, scale, n);
        break;
    case RMSFUSE_Q8_LINEAR:
        if (nonneg)
            conv_q8_t(RMSFUSE_Q8_LINEAR, 1, src, dst, scale, n);
        else
            conv_q8_t(RMSFUSE_Q8_LINEAR, 0, src, dst, scale, n);
        break;
    default:
        memcpy(dst, src, n * sizeof(float));
        break;
    }
}

static void typed_from_f32(unsigned type, int nonneg, const float *src, char *dst, char *scale, size_t n)
{
    const size_t bytes = rmsfuse_type_bytes(type);
    for (size_t b = 0; b < n; b += QB)
        conv_from_f32(type, nonneg, src + b, dst + b * bytes, scale ? scale + b / QB * 4 : NULL,
                      n - b < QB ? n - b : QB, 0, 0, 0);
}

static void typed_to_f32(unsigned type, int nonneg, const char *src, const char *scale, float *dst, size_t n)
{
    const size_t bytes = rmsfuse_type_bytes(type);
    for (size_t b = 0; b < n; b += QB) {
        float s = 0.0f;
        if (rmsfuse_type_is_q8(type))
            memcpy(&s, scale + b / QB * 4, sizeof s);
        conv_to_f32(type, nonneg, src + b * bytes, s, dst + b, n - b < QB ? n - b : QB);
    }
}

static double typed_block_sumsq(unsigned type, const char *g, size_t n, float s)
{
    if (type == RMSFUSE_F32)
        return block_sumsq(g, n, s);
    float buf[RMSFUSE_NORM_BLOCK] __attribute__((aligned(64)));
    conv_to_f32(type, 0, g, 0.0f, buf, n);
    return block_sumsq((const char *)buf, n, s);
}

/* Split bf16: the float32 weights of n pairs (hi, lo), and back. */
static void split_join(const char *hi, const char *lo, float *dst, size_t n)
{
    size_t i = 0;
#if RMSFUSE_CONV_WIDE
    for (; i + VW <= n; i += VW)
        st_f32_cw((char *)(dst + i), flt_cw((ld_u16_cw(hi + 2 * i) << 16) | ld_u16_cw(lo + 2 * i)));
#endif
    for (; i < n; i++)
        st_f32_c1((char *)(dst + i), flt_c1((ld_u16_c1(hi + 2 * i) << 16) | ld_u16_c1(lo + 2 * i)));
}

static void split_part(const float *src, char *hi, char *lo, size_t n)
{
    size_t i = 0;
#if RMSFUSE_CONV_WIDE
    for (; i + VW <= n; i += VW) {
        const u_t_cw u = bits_cw(ld_f32_cw((const char *)(src + i)));
        st_u16_cw(hi + 2 * i, u >> 16);
        st_u16_cw(lo + 2 * i, u & 0xFFFFu);
    }
#endif
    for (; i < n; i++) {
        const u_t_c1 u = bits_c1(ld_f32_c1((const char *)(src + i)));
        st_u16_c1(hi + 2 * i, u >> 16);
        st_u16_c1(lo + 2 * i, u & 0xFFFFu);
    }
}
#endif /* RMSFUSE_KPART_STORAGE_OPS */

/* ---- the typed run ----------------------------------------------------------------- */

/* (Shared by the ISA's objects: hidden, named after the ISA.) */
#define typed_block RMSFUSE_CAT(rmsfuse_typed_block_, RMSFUSE_ISA)
__attribute__((visibility("hidden"))) void typed_block(rmsfuse_kernel kernel, const void *k, unsigned variant,
                                                       const rmsfuse_typed_job *J, size_t i0, size_t m);

/* Elements [begin, end) of a typed tensor through the block path, in blocks
 * from the tensor's element 0. */
static RMSFUSE_ALWAYS_INLINE void typed_blocks(rmsfuse_kernel kernel, const void *k, unsigned variant,
                                               const rmsfuse_typed_job *J, size_t begin, size_t end)
{
    size_t i = begin;
    while (i < end) {
        const size_t next = (i / QB + 1) * QB;
        const size_t m = (next < end ? next : end) - i;
        typed_block(kernel, k, variant, J, i, m);
        i += m;
    }
}

/*
 * The fused loops (storage_fused.h): NEON with integer conversions, AVX2
 * the same for a few classes (below); AVX-512 for CPUs with
 * AVX512_BF16 (every CPU detection gives AVX-512: AMD Zen 4 and later),
 * with vcvtneps2bf16 for the bf16 stores rounded to nearest even and, where
 * the CPU has F16C, f16 params and gradients by vcvtph2ps and vcvtps2ph.
 * The scalar path, SSE2 alone (x86-64's
 * baseline, which no AVX2 CPU dispatches) and AVX-512 forced on a CPU
 * without AVX512_BF16 (or with RMSFUSE_CONVERSIONS=software) take the block
 * path: the same bits, and one instantiation per ISA keeps CI's many
 * builds within their time.
 */
#if defined(RMSFUSE_TX_HW_BUILT)
#define RMSFUSE_TX_HW_TARGET __attribute__((target("avx512bf16,avx512dq,avx512bw,avx512vl")))
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512bf16,avx512dq,avx512bw,avx512vl"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512bf16,avx512dq,avx512bw,avx512vl")
#endif
#define TX_SUFFIX _hw
#define TX_HW 1
#define TX_F16C 0
#define TX_FEW_CLASSES 0
#include "storage_fused.h"
#undef TX_SUFFIX
#undef TX_HW
#undef TX_F16C
#undef TX_FEW_CLASSES
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#elif defined(RMSFUSE_TX_BUILT)
#define TX_SUFFIX _sw
#define TX_HW 0
#if defined(__AVX2__)
/* AVX2's 16 registers: with bf16 or 8-bit state or master weights its fused
 * loops rebuilt constants in every iteration and ran slower than the block
 * path (Zen 4, AdamW in L2, ns per element fused / block: all-bf16 1.13 /
 * 0.88, master weights 0.67 / 0.56, 8-bit state 1.66 / 1.56; a bf16
 * gradient beside float32 state 0.38 / 0.47, split 0.57 / 0.58).  So only
 * a few classes get fused loops here: float32 state beside a float32 or
 * split param, all-bf16 in the common variants with their bits
 * constants (storage_fused.h, TX_FEW_BF16_), master weights in the same
 * variants (TX_FEW_MASTER_: faster than the blocks on Zen 3 once the
 * loops were software-pipelined, TX_PIPED; not measured since on Zen 4),
 * 8-bit state beside a float32 or bf16 param in the same variants where
 * they have one state slot (TX_FEW_Q8_), and (below, TX_F16C) f16 params
 * and gradients beside bf16 state in the same variants. */
#define TX_FEW_CLASSES 1
#else
#define TX_FEW_CLASSES 0
#endif
#define TX_F16C 0
#include "storage_fused.h"
#undef TX_SUFFIX
#undef TX_HW
#undef TX_F16C
#if defined(RMSFUSE_TX_F16C_BUILT)
/* And f16 params and gradients beside bf16 state (storage_fused.h,
 * TX_F16C): their constant loops under the target of F16C, run where the
 * CPU has it (rmsfuse_cpu_has_f16_convert), f16 by vcvtph2ps and
 * vcvtps2ph, which give the block path's bits (the comment on F16C
 * above; a signalling NaN comes out quiet, still a NaN: docs/math.md). */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("f16c")
#endif
#define TX_SUFFIX _f16c
#define TX_HW 0
#define TX_F16C 1
#include "storage_fused.h"
#undef TX_SUFFIX
#undef TX_HW
#undef TX_F16C
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
#undef TX_FEW_CLASSES
#endif

#if RMSFUSE_KPART_STORAGE_OPS
/* Elements [i0, i0 + m) of a typed tensor, within one block of QB. */
void typed_block(rmsfuse_kernel kernel, const void *k, unsigned variant, const rmsfuse_typed_job *J, size_t i0,
                 size_t m)
{
    float buf[RMSFUSE_MAX_SLOTS][QB] __attribute__((aligned(64)));
    char *b[RMSFUSE_MAX_SLOTS];
    const int master = (J->flags & RMSFUSE_MASTER_WEIGHTS) != 0;
    const int sr = (J->flags & RMSFUSE_STOCHASTIC_ROUNDING) != 0;
    for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++) {
        b[s] = NULL;
        if (!(J->used & (1u << s)))
            continue;
        const unsigned t = J->type[s];
        const char *p = J->a[s] + i0 * rmsfuse_type_bytes(t);
        if (s == RMSFUSE_SLOT_PARAM && master) {
            b[s] = J->extra + i0 * 4; /* the master, updated in place */
        } else if (t == RMSFUSE_F32) {
            b[s] = (char *)p;
        } else {
            if (s == RMSFUSE_SLOT_PARAM && t == RMSFUSE_SPLIT_BF16) {
                split_join(p, J->extra + i0 * 2, buf[s], m);
            } else {
                float sc = 0.0f;
                if (rmsfuse_type_is_q8(t))
                    memcpy(&sc, J->scale[s] + i0 / QB * 4, sizeof sc);
                conv_to_f32(t, (J->nonneg >> s) & 1u, p, sc, buf[s], m);
            }
            b[s] = (char *)buf[s];
        }
    }
    kernel(k, variant, b, m);
    for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++) {
        if (!(J->used & (1u << s)) || s == RMSFUSE_SLOT_GRAD)
            continue;
        const unsigned t = J->type[s];
        char *p = J->a[s] + i0 * rmsfuse_type_bytes(t);
        if (s == RMSFUSE_SLOT_PARAM && t == RMSFUSE_SPLIT_BF16)
            split_part(buf[s], p, J->extra + i0 * 2, m);
        else if (s == RMSFUSE_SLOT_PARAM && t != RMSFUSE_F32)
            conv_from_f32(t, 0, (const float *)b[s], p, NULL, m, sr, J->key, i0);
        else if (t != RMSFUSE_F32)
            conv_from_f32(t, (J->nonneg >> s) & 1u, buf[s], p,
                          rmsfuse_type_is_q8(t) ? J->scale[s] + i0 / QB * 4 : NULL, m, 0, 0, 0);
    }
}

/* The typed run and the operations' table. */
/* Elements [begin, end) of a typed tensor through the rule's kernel, in
 * blocks from the tensor's element 0. */
static RMSFUSE_ALWAYS_INLINE void typed_run_t(const int hw, rmsfuse_kernel kernel, const void *k, unsigned variant,
                                              const rmsfuse_typed_job *J, size_t begin, size_t end)
{
    int convert = (J->flags & RMSFUSE_MASTER_WEIGHTS) != 0;
    for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++)
        convert |= (J->used & (1u << s)) && J->type[s] != RMSFUSE_F32;
    if (!convert) { /* every array float32: the kernel over the whole range, as step_multi */
        char *a[RMSFUSE_MAX_SLOTS];
        for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++)
            a[s] = J->a[s] ? J->a[s] + begin * sizeof(float) : NULL;
        if (end > begin)
            kernel(k, variant, a, end - begin);
        return;
    }
#ifdef RMSFUSE_TX_BUILT
#ifdef RMSFUSE_TX_HW_BUILT
    const int c = tx_class_of(J, hw && rmsfuse_cpu_has_f16_convert(), tx_q8_pre_hw);
    if (hw && c >= 0 && tx_table_hw[J->rule][c]) {
        tx_table_hw[J->rule][c](kernel, k, variant, J, begin, end);
        return;
    }
#else
#ifdef RMSFUSE_TX_F16C_BUILT
    if (J->type[RMSFUSE_SLOT_PARAM] == RMSFUSE_F16 && rmsfuse_cpu_has_f16_convert()) {
        const int c16 = tx_class_of(J, 1, tx_q8_pre_f16c);
        if (c16 >= 0 && tx_table_f16c[J->rule][c16]) {
            tx_table_f16c[J->rule][c16](kernel, k, variant, J, begin, end);
            return;
        }
    }
#endif
    const int c = tx_class_of(J, 0, tx_q8_pre_sw);
    if (c >= 0 && tx_table_sw[J->rule][c]) {
        tx_table_sw[J->rule][c](kernel, k, variant, J, begin, end);
        return;
    }
#endif
#endif
    (void)hw;
    typed_blocks(kernel, k, variant, J, begin, end);
}

static void typed_run(rmsfuse_kernel kernel, const void *k, unsigned variant, const rmsfuse_typed_job *J,
                      size_t begin, size_t end)
{
    typed_run_t(0, kernel, k, variant, J, begin, end);
}

static const rmsfuse_storage_ops storage_ops = {typed_run, typed_block_sumsq, typed_from_f32, typed_to_f32};

#ifdef RMSFUSE_TX_HW_BUILT
static void typed_run_hw(rmsfuse_kernel kernel, const void *k, unsigned variant, const rmsfuse_typed_job *J,
                         size_t begin, size_t end)
{
    typed_run_t(1, kernel, k, variant, J, begin, end);
}

/* Float32 to bf16 with vcvtneps2bf16 where no input is subnormal (the
 * conversion API; the other types as typed_from_f32). */
static RMSFUSE_TX_HW_TARGET void typed_from_f32_hw(unsigned type, int nonneg, const float *src, char *dst, char *scale, size_t n)
{
    if (type != RMSFUSE_BF16) {
        typed_from_f32(type, nonneg, src, dst, scale, n);
        return;
    }
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        tx_st_bf16_hw(dst + i * 2, VLOAD((const char *)(src + i)));
    conv_from_f32(type, 0, src + i, dst + i * 2, NULL, n - i, 0, 0, 0);
}

static const rmsfuse_storage_ops storage_ops_hw = {typed_run_hw, typed_block_sumsq, typed_from_f32_hw, typed_to_f32};
#endif

/* This ISA's storage operations on this CPU. */
static const rmsfuse_storage_ops *storage_ops_active(void)
{
#ifdef RMSFUSE_TX_HW_BUILT
    if (rmsfuse_cpu_has_bf16_convert())
        return &storage_ops_hw;
#endif
    return &storage_ops;
}
#endif /* RMSFUSE_KPART_STORAGE_OPS */
#endif /* RMSFUSE_KPART == 3 && !RMSFUSE_TX_BUILT */

#undef typed_block
#undef RMSFUSE_CONV_WIDE
#undef QB
#endif /* RMSFUSE_ISA_STORAGE_H */

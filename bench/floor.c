/*
 * The divider's limit: FLOOR_LANES independent vector sqrts and FLOOR_LANES
 * independent vector divs per round, on registers, no memory traffic and no
 * dependency chains (an empty asm makes each input look new every round, and
 * another consumes each result, so nothing is hoisted or dropped).  A round
 * is one sqrt + one div for FLOOR_LANES * width elements: the per-element
 * cost of the kernels' sqrt and div when nothing else limits them.
 * Inputs have full mantissas (no special values).  The x86 functions are
 * compiled for their ISA with a target attribute; each must only be called
 * when rmsfuse_isa_supported() says that ISA runs here.  RMSProp, AdaGrad
 * and Adam need one sqrt and one division per element; SGD needs neither
 * (its floor is its roofline).
 *
 * grouped 2 and 3 measure instead what the denominator costs without the
 * divider, from IEEE multiplies and adds only (the "fast mode" of issue 14:
 * no FMA, no hardware rsqrt/rcp estimates, so that every ISA would give the
 * same bits): a bit-trick initial guess (an integer subtract, and a shift)
 * refined by Newton steps, as few as reach float accuracy (docs/performance.md,
 * "Past the divider"):
 *   2 (eps inside the sqrt, x / sqrt(v + e)):   x * rsqrt(v)       3 steps
 *   3 (eps outside, x / (sqrt(v) + e)):         x * rcp(v * rsqrt(v) + e)
 *                                               3 + 3 steps
 * rsqrt: y = 0x5f375a86 - (bits(v) >> 1), then y *= 1.5 - (0.5 v * y) * y;
 * rcp:   y = 0x7ef311c3 - bits(d),        then y *= 2 - d * y.
 * Same lanes, rounds and barriers as the sqrt + div floor; one element is
 * one denominator and its multiply.
 */
#include <string.h>

#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VREG(x) "v"(x) /* any SSE/AVX/AVX-512 register */
#define FLOOR_X86 1
#elif defined(__aarch64__)
#include <arm_neon.h>
#include <arm_sve.h> /* its functions need SVE enabled: only in floor_sve's target */
#define VREG(x) "w"(x) /* any FP/SIMD register (NEON's, and SVE's z registers) */
#endif

#if defined(FLOOR_X86) || defined(__aarch64__)

/* One lane: x_j's sqrt, and x_j / x_{j+1}. */
#define FLOOR_LANE(SQRT, DIV, xj, xk)                                   \
    do {                                                                \
        __asm__ volatile("" : "+" VREG(xj));                            \
        __typeof__(xj) s_ = SQRT(xj), d_ = DIV(xj, xk);                 \
        __asm__ volatile("" : : VREG(s_), VREG(d_));                    \
    } while (0)

/* The same work as FLOOR_LANE, as all sqrts of a round, then all divs. */
#define FLOOR_SQRT(SQRT, xj)                                            \
    do {                                                                \
        __asm__ volatile("" : "+" VREG(xj));                            \
        __typeof__(xj) s_ = SQRT(xj);                                   \
        __asm__ volatile("" : : VREG(s_));                              \
    } while (0)
#define FLOOR_DIV(DIV, xj, xk)                                          \
    do {                                                                \
        __asm__ volatile("" : "+" VREG(xj));                            \
        __typeof__(xj) d_ = DIV(xj, xk);                                \
        __asm__ volatile("" : : VREG(d_));                              \
    } while (0)

/* Newton's denominators (grouped 2 and 3, above), with the ISA's bit-trick
 * guesses RSQ0(x) and RCP0(x). */
#define NEWTON_RSQ(MUL, SUB, SET1, RSQ0, y, x)                          \
    do {                                                                \
        const __typeof__(x) h_ = MUL(x, SET1(0.5f));                    \
        y = RSQ0(x);                                                    \
        y = MUL(y, SUB(SET1(1.5f), MUL(MUL(h_, y), y)));                \
        y = MUL(y, SUB(SET1(1.5f), MUL(MUL(h_, y), y)));                \
        y = MUL(y, SUB(SET1(1.5f), MUL(MUL(h_, y), y)));                \
    } while (0)
#define NEWTON_RCP(MUL, SUB, SET1, RCP0, y, d)                          \
    do {                                                                \
        y = RCP0(d);                                                    \
        y = MUL(y, SUB(SET1(2.0f), MUL(d, y)));                         \
        y = MUL(y, SUB(SET1(2.0f), MUL(d, y)));                         \
        y = MUL(y, SUB(SET1(2.0f), MUL(d, y)));                         \
    } while (0)
#define NEWTON_LANE(ADD, SUB, MUL, SET1, RSQ0, RCP0, out, xj, xk)       \
    do {                                                                \
        __asm__ volatile("" : "+" VREG(xj));                            \
        __typeof__(xj) r_;                                              \
        NEWTON_RSQ(MUL, SUB, SET1, RSQ0, r_, xj);                       \
        if (out) {                                                      \
            const __typeof__(xj) d_ = ADD(MUL(xj, r_), SET1(1e-8f));    \
            NEWTON_RCP(MUL, SUB, SET1, RCP0, r_, d_);                   \
        }                                                               \
        r_ = MUL(xk, r_);                                               \
        __asm__ volatile("" : : VREG(r_));                              \
    } while (0)
#define NEWTON_BODY(VF, SET1, ADD, SUB, MUL, RSQ0, RCP0, STORE, W)      \
    VF x0 = SET1(1.6180339f), x1 = SET1(1.7548776f), x2 = SET1(1.3247180f), \
       x3 = SET1(1.4142135f), x4 = SET1(1.7320508f), x5 = SET1(1.2599210f), \
       x6 = SET1(1.1892071f), x7 = SET1(1.8392868f);                    \
    const int out = grouped == 3;                                       \
    for (int64_t r = 0; r < reps; r++) {                                \
        NEWTON_LANE(ADD, SUB, MUL, SET1, RSQ0, RCP0, out, x0, x1);      \
        NEWTON_LANE(ADD, SUB, MUL, SET1, RSQ0, RCP0, out, x1, x2);      \
        NEWTON_LANE(ADD, SUB, MUL, SET1, RSQ0, RCP0, out, x2, x3);      \
        NEWTON_LANE(ADD, SUB, MUL, SET1, RSQ0, RCP0, out, x3, x4);      \
        NEWTON_LANE(ADD, SUB, MUL, SET1, RSQ0, RCP0, out, x4, x5);      \
        NEWTON_LANE(ADD, SUB, MUL, SET1, RSQ0, RCP0, out, x5, x6);      \
        NEWTON_LANE(ADD, SUB, MUL, SET1, RSQ0, RCP0, out, x6, x7);      \
        NEWTON_LANE(ADD, SUB, MUL, SET1, RSQ0, RCP0, out, x7, x0);      \
    }                                                                   \
    VF acc = ADD(ADD(ADD(x0, x1), ADD(x2, x3)), ADD(ADD(x4, x5), ADD(x6, x7))); \
    float out_[W];                                                      \
    STORE(out_, acc);                                                   \
    return out_[0];

/* grouped == 0: sqrt and div alternate; grouped != 0: the round's sqrts,
 * then its divs.  CPUs whose sqrt and div share a unit can be faster with
 * either order (Zen 5 with the grouped one, by ~25%), so the floor is the
 * faster of the two. */
#define FLOOR_BODY(VF, SET1, ADD, SQRT, DIV, STORE, W)                  \
    VF x0 = SET1(1.6180339f), x1 = SET1(1.7548776f), x2 = SET1(1.3247180f), \
       x3 = SET1(1.4142135f), x4 = SET1(1.7320508f), x5 = SET1(1.2599210f), \
       x6 = SET1(1.1892071f), x7 = SET1(1.8392868f);                    \
    if (grouped)                                                        \
        for (int64_t r = 0; r < reps; r++) {                            \
            FLOOR_SQRT(SQRT, x0); FLOOR_SQRT(SQRT, x1);                 \
            FLOOR_SQRT(SQRT, x2); FLOOR_SQRT(SQRT, x3);                 \
            FLOOR_SQRT(SQRT, x4); FLOOR_SQRT(SQRT, x5);                 \
            FLOOR_SQRT(SQRT, x6); FLOOR_SQRT(SQRT, x7);                 \
            FLOOR_DIV(DIV, x0, x1); FLOOR_DIV(DIV, x1, x2);             \
            FLOOR_DIV(DIV, x2, x3); FLOOR_DIV(DIV, x3, x4);             \
            FLOOR_DIV(DIV, x4, x5); FLOOR_DIV(DIV, x5, x6);             \
            FLOOR_DIV(DIV, x6, x7); FLOOR_DIV(DIV, x7, x0);             \
        }                                                               \
    else                                                                \
    for (int64_t r = 0; r < reps; r++) {                                \
        FLOOR_LANE(SQRT, DIV, x0, x1);                                  \
        FLOOR_LANE(SQRT, DIV, x1, x2);                                  \
        FLOOR_LANE(SQRT, DIV, x2, x3);                                  \
        FLOOR_LANE(SQRT, DIV, x3, x4);                                  \
        FLOOR_LANE(SQRT, DIV, x4, x5);                                  \
        FLOOR_LANE(SQRT, DIV, x5, x6);                                  \
        FLOOR_LANE(SQRT, DIV, x6, x7);                                  \
        FLOOR_LANE(SQRT, DIV, x7, x0);                                  \
    }                                                                   \
    VF acc = ADD(ADD(ADD(x0, x1), ADD(x2, x3)), ADD(ADD(x4, x5), ADD(x6, x7))); \
    float out[W];                                                       \
    STORE(out, acc);                                                    \
    return out[0];

#endif

/* The floor at each library ISA's width, by the ISA's name. */
typedef struct floor_entry {
    const char *isa;
    floor_fn fn;
    int width; /* floats per vector; 0: read from the CPU (SVE) */
} floor_entry;

/* Width 1: the bit-trick guesses on a float's bits (memcpy compiles to a move). */
static inline float s_rsq0(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u = 0x5f375a86u - (u >> 1);
    memcpy(&x, &u, 4);
    return x;
}
static inline float s_rcp0(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u = 0x7ef311c3u - u;
    memcpy(&x, &u, 4);
    return x;
}
static inline float s_set1(float x) { return x; }
static inline float s_add(float x, float y) { return x + y; }
static inline float s_sub(float x, float y) { return x - y; }
static inline float s_mul(float x, float y) { return x * y; }
static inline float s_div(float x, float y) { return x / y; }
static inline void s_store(float *out, float x) { out[0] = x; }

#if defined(FLOOR_X86)
static __attribute__((target("sse2"))) __m128 sse2_rsq0(__m128 x)
{
    return _mm_castsi128_ps(_mm_sub_epi32(_mm_set1_epi32(0x5f375a86), _mm_srli_epi32(_mm_castps_si128(x), 1)));
}
static __attribute__((target("sse2"))) __m128 sse2_rcp0(__m128 x)
{
    return _mm_castsi128_ps(_mm_sub_epi32(_mm_set1_epi32(0x7ef311c3), _mm_castps_si128(x)));
}
static __attribute__((target("avx2"))) __m256 avx2_rsq0(__m256 x)
{
    return _mm256_castsi256_ps(
        _mm256_sub_epi32(_mm256_set1_epi32(0x5f375a86), _mm256_srli_epi32(_mm256_castps_si256(x), 1)));
}
static __attribute__((target("avx2"))) __m256 avx2_rcp0(__m256 x)
{
    return _mm256_castsi256_ps(_mm256_sub_epi32(_mm256_set1_epi32(0x7ef311c3), _mm256_castps_si256(x)));
}
static __attribute__((target("avx512f"))) __m512 avx512_rsq0(__m512 x)
{
    return _mm512_castsi512_ps(
        _mm512_sub_epi32(_mm512_set1_epi32(0x5f375a86), _mm512_srli_epi32(_mm512_castps_si512(x), 1)));
}
static __attribute__((target("avx512f"))) __m512 avx512_rcp0(__m512 x)
{
    return _mm512_castsi512_ps(_mm512_sub_epi32(_mm512_set1_epi32(0x7ef311c3), _mm512_castps_si512(x)));
}

static __attribute__((target("sse2"))) float floor_sse2(int64_t reps, int grouped)
{
    if (grouped >= 2) {
        NEWTON_BODY(__m128, _mm_set1_ps, _mm_add_ps, _mm_sub_ps, _mm_mul_ps, sse2_rsq0, sse2_rcp0, _mm_storeu_ps, 4)
    }
    FLOOR_BODY(__m128, _mm_set1_ps, _mm_add_ps, _mm_sqrt_ps, _mm_div_ps, _mm_storeu_ps, 4)
}

static __attribute__((target("avx2"))) float floor_avx2(int64_t reps, int grouped)
{
    if (grouped >= 2) {
        NEWTON_BODY(__m256, _mm256_set1_ps, _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps, avx2_rsq0, avx2_rcp0,
                    _mm256_storeu_ps, 8)
    }
    FLOOR_BODY(__m256, _mm256_set1_ps, _mm256_add_ps, _mm256_sqrt_ps, _mm256_div_ps, _mm256_storeu_ps, 8)
}

static __attribute__((target("avx512f"))) float floor_avx512(int64_t reps, int grouped)
{
    if (grouped >= 2) {
        NEWTON_BODY(__m512, _mm512_set1_ps, _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps, avx512_rsq0, avx512_rcp0,
                    _mm512_storeu_ps, 16)
    }
    FLOOR_BODY(__m512, _mm512_set1_ps, _mm512_add_ps, _mm512_sqrt_ps, _mm512_div_ps, _mm512_storeu_ps, 16)
}

/* Scalar: the sqrtss and divss the scalar path uses (one element each; the
 * upper lanes ride along untouched); Newton's steps on floats. */
static __attribute__((target("sse2"))) float floor_scalar(int64_t reps, int grouped)
{
    if (grouped >= 2) {
        NEWTON_BODY(float, s_set1, s_add, s_sub, s_mul, s_rsq0, s_rcp0, s_store, 1)
    }
    FLOOR_BODY(__m128, _mm_set1_ps, _mm_add_ss, _mm_sqrt_ss, _mm_div_ss, _mm_storeu_ps, 4)
}

static const floor_entry floors[] = {
    {"scalar", floor_scalar, 1}, {"sse2", floor_sse2, 4}, {"avx2", floor_avx2, 8}, {"avx512", floor_avx512, 16}};
#elif defined(__aarch64__)
static inline float32x4_t neon_rsq0(float32x4_t x)
{
    return vreinterpretq_f32_u32(vsubq_u32(vdupq_n_u32(0x5f375a86u), vshrq_n_u32(vreinterpretq_u32_f32(x), 1)));
}
static inline float32x4_t neon_rcp0(float32x4_t x)
{
    return vreinterpretq_f32_u32(vsubq_u32(vdupq_n_u32(0x7ef311c3u), vreinterpretq_u32_f32(x)));
}
static float floor_neon(int64_t reps, int grouped)
{
    if (grouped >= 2) {
        NEWTON_BODY(float32x4_t, vdupq_n_f32, vaddq_f32, vsubq_f32, vmulq_f32, neon_rsq0, neon_rcp0, vst1q_f32, 4)
    }
    FLOOR_BODY(float32x4_t, vdupq_n_f32, vaddq_f32, vsqrtq_f32, vdivq_f32, vst1q_f32, 4)
}

/* Scalar fsqrt and fdiv on single-precision registers. */
static float floor_scalar(int64_t reps, int grouped)
{
    if (grouped >= 2) {
        NEWTON_BODY(float, s_set1, s_add, s_sub, s_mul, s_rsq0, s_rcp0, s_store, 1)
    }
    FLOOR_BODY(float, s_set1, s_add, __builtin_sqrtf, s_div, s_store, 1)
}

/* SVE at the CPU's vector length (svcntw() floats); out[] in FLOOR_BODY
 * holds the widest, 2048 bits. */
#define SVE_SET1(f)       svdup_n_f32(f)
#define SVE_ADD(x, y)     svadd_f32_x(svptrue_b32(), (x), (y))
#define SVE_SQRT(x)       svsqrt_f32_x(svptrue_b32(), (x))
#define SVE_DIV(x, y)     svdiv_f32_x(svptrue_b32(), (x), (y))
#define SVE_STORE(out, x) svst1_f32(svptrue_b32(), (out), (x))
#define SVE_SUB(x, y)     svsub_f32_x(svptrue_b32(), (x), (y))
#define SVE_MUL(x, y)     svmul_f32_x(svptrue_b32(), (x), (y))
#define SVE_RSQ0(x)                                                                              \
    svreinterpret_f32_u32(svsub_u32_x(svptrue_b32(), svdup_n_u32(0x5f375a86u),                   \
                                      svlsr_n_u32_x(svptrue_b32(), svreinterpret_u32_f32(x), 1)))
#define SVE_RCP0(x) \
    svreinterpret_f32_u32(svsub_u32_x(svptrue_b32(), svdup_n_u32(0x7ef311c3u), svreinterpret_u32_f32(x)))
static __attribute__((target("+sve"))) float floor_sve(int64_t reps, int grouped)
{
    if (grouped >= 2) {
        NEWTON_BODY(svfloat32_t, SVE_SET1, SVE_ADD, SVE_SUB, SVE_MUL, SVE_RSQ0, SVE_RCP0, SVE_STORE, 64)
    }
    FLOOR_BODY(svfloat32_t, SVE_SET1, SVE_ADD, SVE_SQRT, SVE_DIV, SVE_STORE, 64)
}

static __attribute__((target("+sve"))) int sve_width(void)
{
    return (int)svcntw();
}

static const floor_entry floors[] = {{"scalar", floor_scalar, 1}, {"neon", floor_neon, 4}, {"sve", floor_sve, 0}};
#else
static const floor_entry floors[] = {{NULL, NULL, 0}};
#endif

floor_fn floor_kernel(const char *isa, int *width)
{
    for (size_t i = 0; i < sizeof floors / sizeof floors[0]; i++)
        if (floors[i].isa && !strcmp(floors[i].isa, isa)) {
            *width = floors[i].width;
#if defined(__aarch64__) && !defined(FLOOR_X86)
            if (floors[i].fn == floor_sve)
                *width = sve_width(); /* the caller checked that SVE runs here */
#endif
            return floors[i].fn;
        }
    *width = 0;
    return NULL;
}

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

#if defined(FLOOR_X86)
static __attribute__((target("sse2"))) float floor_sse2(int64_t reps, int grouped)
{
    FLOOR_BODY(__m128, _mm_set1_ps, _mm_add_ps, _mm_sqrt_ps, _mm_div_ps, _mm_storeu_ps, 4)
}

static __attribute__((target("avx2"))) float floor_avx2(int64_t reps, int grouped)
{
    FLOOR_BODY(__m256, _mm256_set1_ps, _mm256_add_ps, _mm256_sqrt_ps, _mm256_div_ps, _mm256_storeu_ps, 8)
}

static __attribute__((target("avx512f"))) float floor_avx512(int64_t reps, int grouped)
{
    FLOOR_BODY(__m512, _mm512_set1_ps, _mm512_add_ps, _mm512_sqrt_ps, _mm512_div_ps, _mm512_storeu_ps, 16)
}

/* Scalar: the sqrtss and divss the scalar path uses (one element each; the
 * upper lanes ride along untouched). */
static __attribute__((target("sse2"))) float floor_scalar(int64_t reps, int grouped)
{
    FLOOR_BODY(__m128, _mm_set1_ps, _mm_add_ss, _mm_sqrt_ss, _mm_div_ss, _mm_storeu_ps, 4)
}

static const floor_entry floors[] = {
    {"scalar", floor_scalar, 1}, {"sse2", floor_sse2, 4}, {"avx2", floor_avx2, 8}, {"avx512", floor_avx512, 16}};
#elif defined(__aarch64__)
static float floor_neon(int64_t reps, int grouped)
{
    FLOOR_BODY(float32x4_t, vdupq_n_f32, vaddq_f32, vsqrtq_f32, vdivq_f32, vst1q_f32, 4)
}

/* Scalar fsqrt and fdiv on single-precision registers. */
static inline float s_set1(float x) { return x; }
static inline float s_add(float x, float y) { return x + y; }
static inline float s_div(float x, float y) { return x / y; }
static inline void s_store(float *out, float x) { out[0] = x; }
static float floor_scalar(int64_t reps, int grouped)
{
    FLOOR_BODY(float, s_set1, s_add, __builtin_sqrtf, s_div, s_store, 1)
}

/* SVE at the CPU's vector length (svcntw() floats); out[] in FLOOR_BODY
 * holds the widest, 2048 bits. */
#define SVE_SET1(f)       svdup_n_f32(f)
#define SVE_ADD(x, y)     svadd_f32_x(svptrue_b32(), (x), (y))
#define SVE_SQRT(x)       svsqrt_f32_x(svptrue_b32(), (x))
#define SVE_DIV(x, y)     svdiv_f32_x(svptrue_b32(), (x), (y))
#define SVE_STORE(out, x) svst1_f32(svptrue_b32(), (out), (x))
static __attribute__((target("+sve"))) float floor_sve(int64_t reps, int grouped)
{
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

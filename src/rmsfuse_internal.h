/*
 * Internal interface between the API layer (src/rmsfuse.c), the dispatcher
 * (src/dispatch.c) and the per-ISA kernels (src/<isa>/).  Not installed.
 */
#ifndef RMSFUSE_INTERNAL_H
#define RMSFUSE_INTERNAL_H

#include <float.h>
#include <stddef.h>

#include "rmsfuse.h"

/* Bit-exactness needs IEEE binary32 evaluation of every float expression
 * (no x87 excess precision). */
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#  error "rmsfuse needs FLT_EVAL_METHOD == 0 (on 32-bit x86 build with -msse2 -mfpmath=sse)"
#endif

/* Kernel variant: the public flag bits plus two derived from the config.
 * Each kernel is specialised on all 64 variants, so its loop has no
 * per-element branches. */
#define RMSFUSE_V_CENTERED    RMSFUSE_CENTERED
#define RMSFUSE_V_EPS_IN_SQRT RMSFUSE_EPS_IN_SQRT
#define RMSFUSE_V_LR_IN_MOM   RMSFUSE_LR_IN_MOMENTUM
#define RMSFUSE_V_MAXIMIZE    RMSFUSE_MAXIMIZE
#define RMSFUSE_V_WD          (1u << 4) /* weight_decay != 0 */
#define RMSFUSE_V_MOM         (1u << 5) /* momentum != 0 */
#define RMSFUSE_N_VARIANTS    64u

/* Loop constants, derived once in double and rounded once to float
 * (docs/math.md). */
typedef struct rmsfuse_consts {
    float a;  /* (float)alpha */
    float c;  /* (float)(1.0 - alpha) */
    float e;  /* (float)eps */
    float m;  /* (float)momentum */
    float w;  /* (float)weight_decay */
    float l;  /* (float)lr */
    float nl; /* (float)(-lr) */
    unsigned variant;
} rmsfuse_consts;

/* A kernel: arrays already validated (non-NULL where the variant uses them,
 * non-overlapping), n > 0. */
typedef void (*rmsfuse_rmsprop_kernel)(const rmsfuse_consts *k, float *p, const float *g, float *v, float *b,
                                       float *ga, size_t n);

/* Per-ISA kernels (each defined in src/<isa>/rmsprop_<isa>.c). */
void rmsfuse_rmsprop_scalar(const rmsfuse_consts *k, float *p, const float *g, float *v, float *b, float *ga,
                            size_t n);
void rmsfuse_rmsprop_sse2(const rmsfuse_consts *k, float *p, const float *g, float *v, float *b, float *ga,
                          size_t n);
void rmsfuse_rmsprop_avx2(const rmsfuse_consts *k, float *p, const float *g, float *v, float *b, float *ga,
                          size_t n);
void rmsfuse_rmsprop_avx512(const rmsfuse_consts *k, float *p, const float *g, float *v, float *b, float *ga,
                            size_t n);
void rmsfuse_rmsprop_neon(const rmsfuse_consts *k, float *p, const float *g, float *v, float *b, float *ga,
                          size_t n);

/* Dispatcher (src/dispatch.c): the kernel of the active ISA. */
rmsfuse_rmsprop_kernel rmsfuse_active_rmsprop_kernel(void);

/* CPU feature detection (src/cpu_x86.c, or trivially true elsewhere). */
int rmsfuse_cpu_has_sse2(void);
int rmsfuse_cpu_has_avx2(void);
int rmsfuse_cpu_has_avx512(void);
/* Whether detection should take AVX-512 over AVX2 on this CPU (src/cpu_x86.c). */
int rmsfuse_cpu_prefers_avx512(void);

#if defined(__GNUC__) || defined(__clang__)
#  define RMSFUSE_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#  define RMSFUSE_ALWAYS_INLINE inline
#endif

/* X(v) for every variant v: the switch that instantiates a specialised
 * loop per variant. */
#define RMSFUSE_X8(X, b) X(b + 0) X(b + 1) X(b + 2) X(b + 3) X(b + 4) X(b + 5) X(b + 6) X(b + 7)
#define RMSFUSE_FOR_EACH_VARIANT(X)                                                                   \
    RMSFUSE_X8(X, 0) RMSFUSE_X8(X, 8) RMSFUSE_X8(X, 16) RMSFUSE_X8(X, 24) RMSFUSE_X8(X, 32)         \
        RMSFUSE_X8(X, 40) RMSFUSE_X8(X, 48) RMSFUSE_X8(X, 56)

#endif /* RMSFUSE_INTERNAL_H */

/* AArch64 SVE: vectors of svcntw() floats, a width known only at run time
 * (128 to 2048 bits).  svdiv/svsqrt are the correctly rounded IEEE
 * operations; svmul/svadd only (no FMA: -ffp-contract=off).  The operations
 * are those listed in ops_scalar.h, plus what a vector-length-agnostic
 * loop needs (src/isa/kernels.c):
 *   VLA                  defined: VW is not a constant, the loop is predicated
 *   VPRED(i, n)          the lanes of elements i .. min(i + VW, n) - 1
 *   VLOADP(pg, p)        load the lanes of pg from byte address p (others 0);
 *                        memory beyond them is never touched
 *   VSTOREP(pg, p, x)    store the lanes of pg
 * Arithmetic runs on every lane (the _x forms under an all-true predicate):
 * the inactive lanes hold zeros whose results are never stored. */
#ifndef RMSFUSE_OPS_SVE_H
#define RMSFUSE_OPS_SVE_H
#include <arm_sve.h>
#include <float.h>

#define RMSFUSE_SVE_ALL svptrue_b32()

static RMSFUSE_ALWAYS_INLINE svfloat32_t rmsfuse_sve_xor(svfloat32_t x, uint32_t u)
{
    return svreinterpret_f32_u32(sveor_n_u32_x(RMSFUSE_SVE_ALL, svreinterpret_u32_f32(x), u));
}

static RMSFUSE_ALWAYS_INLINE svfloat32_t rmsfuse_sve_max_nan(svfloat32_t a, svfloat32_t b)
{
    const svfloat32_t r = svsel_f32(svcmplt_f32(RMSFUSE_SVE_ALL, a, b), b, a);
    return svsel_f32(svcmpuo_f32(RMSFUSE_SVE_ALL, b, b), b, r);
}

/* svaclt: |x| < FLT_MIN, false for NaN; those lanes become +0. */
static RMSFUSE_ALWAYS_INLINE svfloat32_t rmsfuse_sve_flush(svfloat32_t x)
{
    return svsel_f32(svaclt_n_f32(RMSFUSE_SVE_ALL, x, FLT_MIN), svdup_n_f32(0.0f), x);
}
#endif

#define VLA                 1
#define VF                  svfloat32_t
#define VW                  ((size_t)svcntw())
#define VPRED(i, n)         svwhilelt_b32_u64((uint64_t)(i), (uint64_t)(n))
#define VLOADP(pg, p)       svld1_f32((pg), (const float *)(const void *)(p))
#define VSTOREP(pg, p, x)   svst1_f32((pg), (float *)(void *)(p), (x))
#define VSET1(f)            svdup_n_f32(f)
#define VADD(x, y)          svadd_f32_x(RMSFUSE_SVE_ALL, (x), (y))
#define VSUB(x, y)          svsub_f32_x(RMSFUSE_SVE_ALL, (x), (y))
#define VMUL(x, y)          svmul_f32_x(RMSFUSE_SVE_ALL, (x), (y))
#define VDIV(x, y)          svdiv_f32_x(RMSFUSE_SVE_ALL, (x), (y))
#define VSQRT(x)            svsqrt_f32_x(RMSFUSE_SVE_ALL, (x))
#define VXOR_BITS(x, u)     rmsfuse_sve_xor((x), (u))
#define VMAX_NAN(a, b)      rmsfuse_sve_max_nan((a), (b))
#define VFLUSH(x)           rmsfuse_sve_flush(x)
#define VMIN_C(c, x)        svmin_f32_x(RMSFUSE_SVE_ALL, (c), (x)) /* FMIN: NaN where x is NaN */
#define VMAX_C(c, x)        svmax_f32_x(RMSFUSE_SVE_ALL, (c), (x))

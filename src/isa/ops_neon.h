/* AArch64 NEON (4 floats), baseline on AArch64; vdivq_f32 and vsqrtq_f32
 * are the correctly rounded IEEE operations.  The operations are listed in
 * ops_scalar.h. */
#ifndef RMSFUSE_OPS_NEON_H
#define RMSFUSE_OPS_NEON_H
#include <arm_neon.h>
#include <float.h>

static RMSFUSE_ALWAYS_INLINE float32x4_t rmsfuse_neon_xor(float32x4_t x, uint32_t u)
{
    return vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(u)));
}

static RMSFUSE_ALWAYS_INLINE float32x4_t rmsfuse_neon_max_nan(float32x4_t a, float32x4_t b)
{
    const float32x4_t r = vbslq_f32(vcltq_f32(a, b), b, a);
    return vbslq_f32(vmvnq_u32(vceqq_f32(b, b)), b, r);
}

/* vcaltq_f32: |x| < |FLT_MIN|, false for NaN; those lanes become +0. */
static RMSFUSE_ALWAYS_INLINE float32x4_t rmsfuse_neon_flush(float32x4_t x)
{
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(x), vcaltq_f32(x, vdupq_n_f32(FLT_MIN))));
}
#endif

#define VF              float32x4_t
#define VW              4
#define VLOAD(p)        vld1q_f32((const float *)(const void *)(p))
#define VSTORE(p, x)    vst1q_f32((float *)(void *)(p), (x))
#define VSET1(f)        vdupq_n_f32(f)
#define VADD            vaddq_f32
#define VSUB            vsubq_f32
#define VMUL            vmulq_f32
#define VDIV            vdivq_f32
#define VSQRT           vsqrtq_f32
#define VXOR_BITS(x, u) rmsfuse_neon_xor((x), (u))
#define VMAX_NAN(a, b)  rmsfuse_neon_max_nan((a), (b))
#define VFLUSH(x)       rmsfuse_neon_flush(x)
#define VMIN_C(c, x)    vminq_f32((c), (x)) /* FMIN: NaN where x is NaN (c never is) */
#define VMAX_C(c, x)    vmaxq_f32((c), (x))

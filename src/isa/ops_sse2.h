/* SSE2 (4 floats), the x86-64 baseline; compiled with -msse2.  The
 * operations are listed in ops_scalar.h. */
#ifndef RMSFUSE_OPS_SSE2_H
#define RMSFUSE_OPS_SSE2_H
#include <emmintrin.h>

static RMSFUSE_ALWAYS_INLINE __m128 rmsfuse_sse2_select(__m128 mask, __m128 t, __m128 f)
{
    return _mm_or_ps(_mm_and_ps(mask, t), _mm_andnot_ps(mask, f));
}

static RMSFUSE_ALWAYS_INLINE __m128 rmsfuse_sse2_max_nan(__m128 a, __m128 b)
{
    const __m128 r = rmsfuse_sse2_select(_mm_cmplt_ps(a, b), b, a);
    return rmsfuse_sse2_select(_mm_cmpunord_ps(b, b), b, r);
}

/* +0 where the exponent field is 0 (zero or subnormal): |x| < FLT_MIN. */
static RMSFUSE_ALWAYS_INLINE __m128 rmsfuse_sse2_flush(__m128 x)
{
    const __m128i e = _mm_and_si128(_mm_castps_si128(x), _mm_set1_epi32(0x7f800000));
    return _mm_andnot_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(e, _mm_setzero_si128())), x);
}
#endif

#define VF              __m128
#define VW              4
#define VLOAD(p)        _mm_loadu_ps((const float *)(const void *)(p))
#define VSTORE(p, x)    _mm_storeu_ps((float *)(void *)(p), (x))
#define VSET1(f)        _mm_set1_ps(f)
#define VADD            _mm_add_ps
#define VSUB            _mm_sub_ps
#define VMUL            _mm_mul_ps
#define VDIV            _mm_div_ps
#define VSQRT           _mm_sqrt_ps
#define VXOR_BITS(x, u) _mm_xor_ps((x), _mm_castsi128_ps(_mm_set1_epi32((int)(u))))
#define VMAX_NAN(a, b)  rmsfuse_sse2_max_nan((a), (b))
#define VFLUSH(x)       rmsfuse_sse2_flush(x)
#define VMIN_C(c, x)    _mm_min_ps((c), (x)) /* (c < x) ? c : x: the second operand where either is NaN */
#define VMAX_C(c, x)    _mm_max_ps((c), (x))

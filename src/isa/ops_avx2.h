/* AVX2 (8 floats); compiled with -mavx2 and never with -mfma: the
 * contract is no fused multiply-add.  The operations are listed in
 * ops_scalar.h. */
#ifndef RMSFUSE_OPS_AVX2_H
#define RMSFUSE_OPS_AVX2_H
#include <immintrin.h>
#if defined(__FMA__)
#  error "the AVX2 kernels must not be compiled with FMA enabled"
#endif

static RMSFUSE_ALWAYS_INLINE __m256 rmsfuse_avx2_max_nan(__m256 a, __m256 b)
{
    const __m256 r = _mm256_blendv_ps(a, b, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
    return _mm256_blendv_ps(r, b, _mm256_cmp_ps(b, b, _CMP_UNORD_Q));
}

/* +0 where the exponent field is 0 (zero or subnormal): |x| < FLT_MIN.
 * vpsignd keeps x where its exponent field e (never negative as an
 * integer) is above 0 and gives 0 where it is 0: two operations, not an
 * AND, a compare and an ANDN. */
static RMSFUSE_ALWAYS_INLINE __m256 rmsfuse_avx2_flush(__m256 x)
{
    const __m256i u = _mm256_castps_si256(x);
    return _mm256_castsi256_ps(_mm256_sign_epi32(u, _mm256_and_si256(u, _mm256_set1_epi32(0x7f800000))));
}
#endif

#define VF              __m256
#define VW              8
#define VPIPE           1 /* software pipelining: the float32 loops (src/isa/kernels.c, RMSFUSE_F32_PIPE) and
                                     the typed ones (src/isa/storage_fused.h, TX_PIPED) */
#define VLOAD(p)        _mm256_loadu_ps((const float *)(const void *)(p))
#define VSTORE(p, x)    _mm256_storeu_ps((float *)(void *)(p), (x))
#define VSET1(f)        _mm256_set1_ps(f)
#define VADD            _mm256_add_ps
#define VSUB            _mm256_sub_ps
#define VMUL            _mm256_mul_ps
#define VDIV            _mm256_div_ps
#define VSQRT           _mm256_sqrt_ps
#define VXOR_BITS(x, u) _mm256_xor_ps((x), _mm256_castsi256_ps(_mm256_set1_epi32((int)(u))))
#define VMAX_NAN(a, b)  rmsfuse_avx2_max_nan((a), (b))
#define VFLUSH(x)       rmsfuse_avx2_flush(x)
#define VMIN_C(c, x)    _mm256_min_ps((c), (x)) /* (c < x) ? c : x: the second operand where either is NaN */
#define VMAX_C(c, x)    _mm256_max_ps((c), (x))

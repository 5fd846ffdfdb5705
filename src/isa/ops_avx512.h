/* AVX-512F (16 floats); compiled with -mavx512f (which implies FMA
 * hardware: -ffp-contract=off keeps the compiler from using it).  The
 * operations are listed in ops_scalar.h. */
#ifndef RMSFUSE_OPS_AVX512_H
#define RMSFUSE_OPS_AVX512_H
#include <immintrin.h>

static RMSFUSE_ALWAYS_INLINE __m512 rmsfuse_avx512_xor(__m512 x, uint32_t u)
{
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)u)));
}

static RMSFUSE_ALWAYS_INLINE __m512 rmsfuse_avx512_max_nan(__m512 a, __m512 b)
{
    const __m512 r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), a, b);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q), r, b);
}

/* Keeps the lanes whose exponent field is not 0 (vptestmd), +0 elsewhere:
 * |x| < FLT_MIN becomes +0. */
static RMSFUSE_ALWAYS_INLINE __m512 rmsfuse_avx512_flush(__m512 x)
{
    return _mm512_maskz_mov_ps(_mm512_test_epi32_mask(_mm512_castps_si512(x), _mm512_set1_epi32(0x7f800000)), x);
}
#endif

#define VF              __m512
#define VW              16
#define VPIPE           2 /* software pipelining: only the typed loops of the variants whose second stage
                                     has state traffic, where there are no halves (src/isa/storage_fused.h,
                                     TX_PIPED, TX_HALVES) */
#define VLOAD(p)        _mm512_loadu_ps((const void *)(p))
#define VSTORE(p, x)    _mm512_storeu_ps((void *)(p), (x))
#define VSET1(f)        _mm512_set1_ps(f)
#define VADD            _mm512_add_ps
#define VSUB            _mm512_sub_ps
#define VMUL            _mm512_mul_ps
#define VDIV            _mm512_div_ps
#define VSQRT           _mm512_sqrt_ps
#define VXOR_BITS(x, u) rmsfuse_avx512_xor((x), (u))
#define VMAX_NAN(a, b)  rmsfuse_avx512_max_nan((a), (b))
#define VFLUSH(x)       rmsfuse_avx512_flush(x)
#define VMIN_C(c, x)    _mm512_min_ps((c), (x)) /* (c < x) ? c : x: the second operand where either is NaN */
#define VMAX_C(c, x)    _mm512_max_ps((c), (x))

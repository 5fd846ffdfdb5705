/* RMSProp kernel, AVX2 (8 floats).  Compiled with -mavx2, never with -mfma:
 * the contract is no fused multiply-add. */
#include <immintrin.h>

#include "../rmsfuse_internal.h"

#if defined(__FMA__)
#  error "src/avx2 must not be compiled with FMA enabled"
#endif

#define VF             __m256
#define VW             8
#define VLOAD(ptr)     _mm256_loadu_ps(ptr)
#define VSTORE(ptr, x) _mm256_storeu_ps((ptr), (x))
#define VSET1(f)       _mm256_set1_ps(f)
#define VNEG(x)        _mm256_xor_ps((x), _mm256_set1_ps(-0.0f))
#define VADD           _mm256_add_ps
#define VSUB           _mm256_sub_ps
#define VMUL           _mm256_mul_ps
#define VDIV           _mm256_div_ps
#define VSQRT          _mm256_sqrt_ps
#define RMSFUSE_VEC_FUNC rmsfuse_rmsprop_avx2

#include "../rmsprop_vec_template.h"

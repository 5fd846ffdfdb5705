/* RMSProp kernel, AVX-512F (16 floats).  Compiled with -mavx512f.  (AVX-512F
 * implies FMA hardware; -ffp-contract=off keeps the compiler from using it.) */
#include <immintrin.h>

#include "../rmsfuse_internal.h"

#define VF             __m512
#define VW             16
#define VLOAD(ptr)     _mm512_loadu_ps(ptr)
#define VSTORE(ptr, x) _mm512_storeu_ps((ptr), (x))
#define VSET1(f)       _mm512_set1_ps(f)
#define VNEG(x)        _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN)))
#define VADD           _mm512_add_ps
#define VSUB           _mm512_sub_ps
#define VMUL           _mm512_mul_ps
#define VDIV           _mm512_div_ps
#define VSQRT          _mm512_sqrt_ps
#define RMSFUSE_VEC_FUNC rmsfuse_rmsprop_avx512

#include <stdint.h>

#include "../rmsprop_vec_template.h"

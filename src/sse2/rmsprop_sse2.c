/* RMSProp kernel, SSE2 (4 floats).  Compiled with -msse2 (x86-64 baseline). */
#include <emmintrin.h>

#include "../rmsfuse_internal.h"

#define VF             __m128
#define VW             4
#define VLOAD(ptr)     _mm_loadu_ps(ptr)
#define VSTORE(ptr, x) _mm_storeu_ps((ptr), (x))
#define VSET1(f)       _mm_set1_ps(f)
#define VNEG(x)        _mm_xor_ps((x), _mm_set1_ps(-0.0f))
#define VADD           _mm_add_ps
#define VSUB           _mm_sub_ps
#define VMUL           _mm_mul_ps
#define VDIV           _mm_div_ps
#define VSQRT          _mm_sqrt_ps
#define RMSFUSE_VEC_FUNC rmsfuse_rmsprop_sse2

#include "../rmsprop_vec_template.h"

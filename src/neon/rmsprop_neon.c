/* RMSProp kernel, AArch64 NEON (4 floats).  NEON is baseline on AArch64;
 * vdivq_f32/vsqrtq_f32 are the correctly rounded IEEE operations. */
#include <arm_neon.h>

#include "../rmsfuse_internal.h"

#define VF             float32x4_t
#define VW             4
#define VLOAD(ptr)     vld1q_f32(ptr)
#define VSTORE(ptr, x) vst1q_f32((ptr), (x))
#define VSET1(f)       vdupq_n_f32(f)
#define VNEG(x)        vnegq_f32(x)
#define VADD           vaddq_f32
#define VSUB           vsubq_f32
#define VMUL           vmulq_f32
#define VDIV           vdivq_f32
#define VSQRT          vsqrtq_f32
#define RMSFUSE_VEC_FUNC rmsfuse_rmsprop_neon

#include "../rmsprop_vec_template.h"

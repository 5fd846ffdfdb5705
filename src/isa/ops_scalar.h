/*
 * Width 1: the operations of the scalar reference, also used for every
 * ISA's heads and tails.  Plain C float arithmetic (compiled with
 * -ffp-contract=off); elements are read and written through memcpy, since
 * the API takes arrays at any byte address and an access through a float
 * pointer that is not float-aligned is undefined behaviour in C (x86 and
 * AArch64 load floats from any address, and memcpy of 4 bytes compiles to
 * the same single instruction).
 *
 * An ops header defines, for vectors VF of VW floats:
 *   VLOAD(p), VSTORE(p, x)  unaligned load/store at byte address p
 *   VSET1(f)                broadcast
 *   VADD VSUB VMUL VDIV(x, y), VSQRT(x)   IEEE, correctly rounded
 *   VXOR_BITS(x, u)         x with the 32-bit pattern u XORed into each lane
 *   VMAX_NAN(a, b)          (a < b) ? b : a, and b where b is NaN
 *   VFLUSH(x)               +0 where |x| < FLT_MIN (zero or subnormal), else x
 *   VMIN_C(c, x)            (x > c) ? c : x: x where it is NaN (and where x == c)
 *   VMAX_C(c, x)            (x < c) ? c : x: x where it is NaN (and where x == c)
 * It has no include guard for these (src/isa/kernels.c includes an ops
 * header per width and ends each with ops_end.h); helpers go under a guard.
 */
#ifndef RMSFUSE_OPS_SCALAR_H
#define RMSFUSE_OPS_SCALAR_H
#include <float.h>
#include <math.h>
#include <string.h>

static RMSFUSE_ALWAYS_INLINE float rmsfuse_s_load(const char *p)
{
    float x;
    memcpy(&x, p, sizeof x);
    return x;
}

static RMSFUSE_ALWAYS_INLINE void rmsfuse_s_store(char *p, float x)
{
    memcpy(p, &x, sizeof x);
}

static RMSFUSE_ALWAYS_INLINE float rmsfuse_s_xor(float x, uint32_t u)
{
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    b ^= u;
    memcpy(&x, &b, sizeof x);
    return x;
}

static RMSFUSE_ALWAYS_INLINE float rmsfuse_s_max_nan(float a, float b)
{
    const float r = a < b ? b : a;
    return b != b ? b : r;
}

static RMSFUSE_ALWAYS_INLINE float rmsfuse_s_min_c(float c, float x)
{
    return x > c ? c : x;
}

static RMSFUSE_ALWAYS_INLINE float rmsfuse_s_max_c(float c, float x)
{
    return x < c ? c : x;
}

static RMSFUSE_ALWAYS_INLINE float rmsfuse_s_flush(float x)
{
    return fabsf(x) < FLT_MIN ? 0.0f : x;
}
#endif /* RMSFUSE_OPS_SCALAR_H */

#define VF              float
#define VW              1
#define VLOAD(p)        rmsfuse_s_load(p)
#define VSTORE(p, x)    rmsfuse_s_store((p), (x))
#define VSET1(f)        (f)
#define VADD(x, y)      ((x) + (y))
#define VSUB(x, y)      ((x) - (y))
#define VMUL(x, y)      ((x) * (y))
#define VDIV(x, y)      ((x) / (y))
#define VSQRT(x)        sqrtf(x)
#define VXOR_BITS(x, u) rmsfuse_s_xor((x), (u))
#define VMAX_NAN(a, b)  rmsfuse_s_max_nan((a), (b))
#define VFLUSH(x)       rmsfuse_s_flush(x)
#define VMIN_C(c, x)    rmsfuse_s_min_c((c), (x))
#define VMAX_C(c, x)    rmsfuse_s_max_c((c), (x))

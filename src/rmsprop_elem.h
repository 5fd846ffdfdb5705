/*
 * The definition of one RMSProp element update, in the exact op order of
 * docs/math.md (and ../shared/spec/update-rules.md).  The scalar reference
 * is this function in a loop; the SIMD kernels use it for heads and tails
 * and mirror it op for op in their vector bodies.
 *
 * V is a compile-time constant at every call site, so the branches on it
 * fold away.  Compiled with -ffp-contract=off: no FMA contraction.
 */
#ifndef RMSFUSE_RMSPROP_ELEM_H
#define RMSFUSE_RMSPROP_ELEM_H

#include <math.h>
#include <string.h>

#include "rmsfuse_internal.h"

/* Element i of an array, read and written through memcpy: the API takes
 * arrays at any byte address, and in C an access through a float pointer
 * that is not float-aligned is undefined behaviour (UBSan reports it).
 * x86 and AArch64 load and store floats at any address, and memcpy of 4
 * bytes compiles to the same single instruction as a plain access. */
static RMSFUSE_ALWAYS_INLINE float rmsfuse_ld(const float *a, size_t i)
{
    float x;
    memcpy(&x, (const unsigned char *)a + i * sizeof(float), sizeof x);
    return x;
}

static RMSFUSE_ALWAYS_INLINE void rmsfuse_st(float *a, size_t i, float x)
{
    memcpy((unsigned char *)a + i * sizeof(float), &x, sizeof x);
}

static RMSFUSE_ALWAYS_INLINE void rmsfuse_rmsprop_elem(const rmsfuse_consts *k, const unsigned V, float *p,
                                                       const float *grad, float *v, float *b, float *ga,
                                                       size_t i)
{
    float g = rmsfuse_ld(grad, i);
    float pi = rmsfuse_ld(p, i);
    float s, d;

    if (V & RMSFUSE_V_MAXIMIZE)
        g = -g;
    if (V & RMSFUSE_V_WD)
        g = g + k->w * pi;

    float vi = rmsfuse_ld(v, i) * k->a + (k->c * g) * g;
    rmsfuse_st(v, i, vi);

    if (V & RMSFUSE_V_CENTERED) {
        float gai = rmsfuse_ld(ga, i) * k->a + k->c * g;
        rmsfuse_st(ga, i, gai);
        s = vi - gai * gai;
    } else {
        s = vi;
    }

    if (V & RMSFUSE_V_EPS_IN_SQRT)
        d = sqrtf(s + k->e);
    else
        d = sqrtf(s) + k->e;

    if (V & RMSFUSE_V_LR_IN_MOM) {
        float u = (k->l * g) / d;
        if (V & RMSFUSE_V_MOM) {
            float bi = rmsfuse_ld(b, i) * k->m + u;
            rmsfuse_st(b, i, bi);
            pi = pi - bi;
        } else {
            pi = pi - u;
        }
    } else {
        if (V & RMSFUSE_V_MOM) {
            float bi = rmsfuse_ld(b, i) * k->m + g / d;
            rmsfuse_st(b, i, bi);
            pi = pi + k->nl * bi;
        } else {
            pi = pi + (k->nl * g) / d;
        }
    }
    rmsfuse_st(p, i, pi);
}

#endif /* RMSFUSE_RMSPROP_ELEM_H */

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

#include "rmsfuse_internal.h"

static RMSFUSE_ALWAYS_INLINE void rmsfuse_rmsprop_elem(const rmsfuse_consts *k, const unsigned V, float *p,
                                                       const float *grad, float *v, float *b, float *ga,
                                                       size_t i)
{
    float g = grad[i];
    float pi = p[i];
    float s, d;

    if (V & RMSFUSE_V_MAXIMIZE)
        g = -g;
    if (V & RMSFUSE_V_WD)
        g = g + k->w * pi;

    float vi = v[i] * k->a + (k->c * g) * g;
    v[i] = vi;

    if (V & RMSFUSE_V_CENTERED) {
        float gai = ga[i] * k->a + k->c * g;
        ga[i] = gai;
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
            float bi = b[i] * k->m + u;
            b[i] = bi;
            pi = pi - bi;
        } else {
            pi = pi - u;
        }
    } else {
        if (V & RMSFUSE_V_MOM) {
            float bi = b[i] * k->m + g / d;
            b[i] = bi;
            pi = pi + k->nl * bi;
        } else {
            pi = pi + (k->nl * g) / d;
        }
    }
    p[i] = pi;
}

#endif /* RMSFUSE_RMSPROP_ELEM_H */

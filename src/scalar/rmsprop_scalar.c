/*
 * Scalar reference: the definition every SIMD path matches bit for bit.
 * A baseline file: it must not be compiled with any ISA extension flag.
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/scalar is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include "../rmsprop_elem.h"

static RMSFUSE_ALWAYS_INLINE void scalar_loop(const rmsfuse_consts *kp, const unsigned V, float *p, const float *g,
                                              float *v, float *b, float *ga, size_t n)
{
    const rmsfuse_consts kc = *kp; /* local: the array stores cannot alias it */
    const rmsfuse_consts *k = &kc;
    for (size_t i = 0; i < n; i++)
        rmsfuse_rmsprop_elem(k, V, p, g, v, b, ga, i);
}

#define RMSFUSE_SCALAR_CASE(V)                  \
    case (V):                                   \
        scalar_loop(k, (V), p, g, v, b, ga, n); \
        break;

void rmsfuse_rmsprop_scalar(const rmsfuse_consts *k, float *p, const float *g, float *v, float *b, float *ga,
                            size_t n)
{
    switch (k->variant) {
        RMSFUSE_FOR_EACH_VARIANT(RMSFUSE_SCALAR_CASE)
    default:
        break;
    }
}

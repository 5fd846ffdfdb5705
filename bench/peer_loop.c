/*
 * The peer: the RMSProp step as a user would write it in plain C, one
 * function per flag set, in the op order of the spec (PyTorch placement: eps
 * outside the sqrt, lr outside the momentum buffer).  Compiled twice
 * (bench/CMakeLists.txt), PEER_SFX naming the build:
 *   o2      -O2 for baseline x86-64 (what a distribution package gets)
 *   native  -O3 -march=native
 * both with -ffp-contract=off (no FMA: same bits as the library) and
 * -fno-math-errno (else GCC cannot vectorise sqrtf at all).
 */
#include <math.h>

#include "kernels.h"

#define CAT_(a, b) a##_##b
#define CAT(a, b)  CAT_(a, b)
#define PEER(name) CAT(name, PEER_SFX)

void PEER(peer_plain)(const peer_consts *k, float *restrict p, const float *restrict g, float *restrict v,
                      float *restrict b, float *restrict ga, size_t n)
{
    const float a = k->a, c = k->c, e = k->e, nl = k->nl;
    (void)b, (void)ga;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float vi = v[i] * a + (c * gi) * gi;
        v[i] = vi;
        p[i] = p[i] + (nl * gi) / (sqrtf(vi) + e);
    }
}

void PEER(peer_momentum)(const peer_consts *k, float *restrict p, const float *restrict g, float *restrict v,
                         float *restrict b, float *restrict ga, size_t n)
{
    const float a = k->a, c = k->c, e = k->e, m = k->m, nl = k->nl;
    (void)ga;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float vi = v[i] * a + (c * gi) * gi;
        v[i] = vi;
        float bi = b[i] * m + gi / (sqrtf(vi) + e);
        b[i] = bi;
        p[i] = p[i] + nl * bi;
    }
}

void PEER(peer_centered)(const peer_consts *k, float *restrict p, const float *restrict g, float *restrict v,
                         float *restrict b, float *restrict ga, size_t n)
{
    const float a = k->a, c = k->c, e = k->e, nl = k->nl;
    (void)b;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float vi = v[i] * a + (c * gi) * gi;
        v[i] = vi;
        float gai = ga[i] * a + c * gi;
        ga[i] = gai;
        p[i] = p[i] + (nl * gi) / (sqrtf(vi - gai * gai) + e);
    }
}

void PEER(peer_centered_momentum)(const peer_consts *k, float *restrict p, const float *restrict g,
                                  float *restrict v, float *restrict b, float *restrict ga, size_t n)
{
    const float a = k->a, c = k->c, e = k->e, m = k->m, nl = k->nl;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float vi = v[i] * a + (c * gi) * gi;
        v[i] = vi;
        float gai = ga[i] * a + c * gi;
        ga[i] = gai;
        float bi = b[i] * m + gi / (sqrtf(vi - gai * gai) + e);
        b[i] = bi;
        p[i] = p[i] + nl * bi;
    }
}

/*
 * The roofline: the same arrays as each RMSProp flag set, the same reads and
 * in-place writes (STREAM counting: plain 20, momentum 28, centered 28,
 * centered + momentum 36 bytes per element), and no real arithmetic
 * (x = g - x keeps the values bounded).  Compiled -O3 -march=native, it is
 * what this memory system gives for this traffic.
 */
#include "kernels.h"

void roofline_plain(const peer_consts *k, float *restrict p, const float *restrict g, float *restrict v,
                    float *restrict b, float *restrict ga, size_t n)
{
    (void)k, (void)b, (void)ga;
    for (size_t i = 0; i < n; i++) {
        v[i] = g[i] - v[i];
        p[i] = g[i] - p[i];
    }
}

void roofline_momentum(const peer_consts *k, float *restrict p, const float *restrict g, float *restrict v,
                       float *restrict b, float *restrict ga, size_t n)
{
    (void)k, (void)ga;
    for (size_t i = 0; i < n; i++) {
        v[i] = g[i] - v[i];
        b[i] = g[i] - b[i];
        p[i] = g[i] - p[i];
    }
}

void roofline_centered(const peer_consts *k, float *restrict p, const float *restrict g, float *restrict v,
                       float *restrict b, float *restrict ga, size_t n)
{
    (void)k, (void)b;
    for (size_t i = 0; i < n; i++) {
        v[i] = g[i] - v[i];
        ga[i] = g[i] - ga[i];
        p[i] = g[i] - p[i];
    }
}

void roofline_centered_momentum(const peer_consts *k, float *restrict p, const float *restrict g,
                                float *restrict v, float *restrict b, float *restrict ga, size_t n)
{
    (void)k;
    for (size_t i = 0; i < n; i++) {
        v[i] = g[i] - v[i];
        ga[i] = g[i] - ga[i];
        b[i] = g[i] - b[i];
        p[i] = g[i] - p[i];
    }
}

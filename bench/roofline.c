/*
 * The roofline: a copy-style kernel with a flag set's traffic and no real
 * arithmetic.  Every flag set of every rule reads the gradient and reads and
 * writes each of its other arrays in place (param and the state the
 * configuration uses), so its traffic is one read-only stream and k
 * read-and-written ones: 4 + 8k bytes per element in the STREAM convention
 * (RMSProp plain k = 2: 20 B, with momentum or centered 28, both 36;
 * AdaGrad 20; SGD without momentum 12, with 20; Adam/AdamW 28, AMSGrad 36).
 * x = g - x keeps the values bounded.  Compiled -O3 -march=native, it is
 * what this memory system gives for that traffic.
 */
#include "kernels.h"

/* One function per k with restrict parameters (noinline, so that nothing
 * loses them), so the compiler vectorises without overlap checks. */
static __attribute__((noinline)) void rw1(const float *restrict g, float *restrict x0, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x0[i] = g[i] - x0[i];
}

static __attribute__((noinline)) void rw2(const float *restrict g, float *restrict x0, float *restrict x1, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        x0[i] = g[i] - x0[i];
        x1[i] = g[i] - x1[i];
    }
}

static __attribute__((noinline)) void rw3(const float *restrict g, float *restrict x0, float *restrict x1,
                                          float *restrict x2, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        x0[i] = g[i] - x0[i];
        x1[i] = g[i] - x1[i];
        x2[i] = g[i] - x2[i];
    }
}

static __attribute__((noinline)) void rw4(const float *restrict g, float *restrict x0, float *restrict x1,
                                          float *restrict x2, float *restrict x3, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        x0[i] = g[i] - x0[i];
        x1[i] = g[i] - x1[i];
        x2[i] = g[i] - x2[i];
        x3[i] = g[i] - x3[i];
    }
}

static void roofline_1(const float *g, float *const *x, size_t n)
{
    rw1(g, x[0], n);
}

static void roofline_2(const float *g, float *const *x, size_t n)
{
    rw2(g, x[0], x[1], n);
}

static void roofline_3(const float *g, float *const *x, size_t n)
{
    rw3(g, x[0], x[1], x[2], n);
}

static void roofline_4(const float *g, float *const *x, size_t n)
{
    rw4(g, x[0], x[1], x[2], x[3], n);
}

roofline_fn roofline_kernel(int k)
{
    static const roofline_fn by_k[ROOFLINE_MAX_INPLACE + 1] = {NULL, roofline_1, roofline_2, roofline_3,
                                                               roofline_4};
    return k >= 1 && k <= ROOFLINE_MAX_INPLACE ? by_k[k] : NULL;
}

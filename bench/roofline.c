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

/*
 * Rooflines of mixed widths, for the storage-type benchmarks
 * (storage/...): the exact traffic of a typed step, every array in its own
 * element width (4 float32, 2 bf16/f16, 1 for 8-bit codes) and the 8-bit
 * state's block scales (one float per RMSFUSE_Q8_BLOCK elements), each
 * stream read only, read and written in place, or written only (a bf16
 * param with master weights: the step does not read its old value).  No
 * real arithmetic: an integer add of each element's own width.  The
 * streams go through the elements in blocks of ROOF_BLOCK, each stream's
 * part of a block in its own loop, which the compiler vectorises at its
 * width; the library's typed path also works block by block (of 256), and
 * at the DRAM size this gives the fused float32 rooflines' rate within
 * noise (docs/performance.md, "Storage types").
 */
#define ROOF_BLOCK 1024u /* a multiple of every stream's `per` (256) */

#define ROOF_LOOPS_(T, sfx)                                                                  \
    static __attribute__((noinline)) uint32_t rd_##sfx(const T *restrict x, size_t m)        \
    {                                                                                        \
        T acc = 0;                                                                           \
        for (size_t i = 0; i < m; i++)                                                       \
            acc ^= x[i];                                                                     \
        return acc;                                                                          \
    }                                                                                        \
    static __attribute__((noinline)) void rw_##sfx(T *restrict x, size_t m, T c)             \
    {                                                                                        \
        for (size_t i = 0; i < m; i++)                                                       \
            x[i] = (T)(x[i] + c);                                                            \
    }                                                                                        \
    static __attribute__((noinline)) void wr_##sfx(T *restrict x, size_t m, T c)             \
    {                                                                                        \
        for (size_t i = 0; i < m; i++)                                                       \
            x[i] = (T)(c ^ (T)i);                                                            \
    }
ROOF_LOOPS_(uint8_t, u8)
ROOF_LOOPS_(uint16_t, u16)
ROOF_LOOPS_(uint32_t, u32)

double roofline_stream_bytes(const roofline_stream *s, int count)
{
    double b = 0.0;
    for (int k = 0; k < count; k++)
        b += (double)s[k].width * (s[k].mode == ROOF_RW ? 2 : 1) / (double)s[k].per;
    return b;
}

uint32_t roofline_mixed(const roofline_stream *s, int count, size_t n, uint32_t c)
{
    uint32_t acc = 0;
    for (size_t b = 0; b < n; b += ROOF_BLOCK) {
        const size_t e = n - b < ROOF_BLOCK ? n : b + ROOF_BLOCK;
        for (int k = 0; k < count; k++) {
            const size_t lo = b / s[k].per, m = (e + s[k].per - 1) / s[k].per - lo;
            char *p = (char *)s[k].p + lo * (size_t)s[k].width;
            switch (s[k].mode * 8 + s[k].width) {
            case ROOF_READ * 8 + 1: acc ^= rd_u8((const uint8_t *)p, m); break;
            case ROOF_READ * 8 + 2: acc ^= rd_u16((const uint16_t *)p, m); break;
            case ROOF_READ * 8 + 4: acc ^= rd_u32((const uint32_t *)p, m); break;
            case ROOF_RW * 8 + 1: rw_u8((uint8_t *)p, m, (uint8_t)c); break;
            case ROOF_RW * 8 + 2: rw_u16((uint16_t *)p, m, (uint16_t)c); break;
            case ROOF_RW * 8 + 4: rw_u32((uint32_t *)p, m, c); break;
            case ROOF_WRITE * 8 + 1: wr_u8((uint8_t *)p, m, (uint8_t)c); break;
            case ROOF_WRITE * 8 + 2: wr_u16((uint16_t *)p, m, (uint16_t)c); break;
            case ROOF_WRITE * 8 + 4: wr_u32((uint32_t *)p, m, c); break;
            default: break;
            }
        }
    }
    return acc;
}

/* A split bf16 param's halves joined into float32 bits and parted again
 * (the unfused storage benchmark's cast of a split param): one vectorised
 * pass each, at this file's flags, as a framework's own cast would be. */
void split_join(const uint16_t *hi, const uint16_t *lo, uint32_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (uint32_t)hi[i] << 16 | lo[i];
}

void split_part(const uint32_t *src, uint16_t *hi, uint16_t *lo, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        hi[i] = (uint16_t)(src[i] >> 16);
        lo[i] = (uint16_t)src[i];
    }
}

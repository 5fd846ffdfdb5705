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
#include <string.h>

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
 * real arithmetic: integer xors and adds.
 *
 * roofline_mixed runs the benchmark's stream lists in fused loops, every
 * width a constant (rf_match, below); any other list in roofline_any: one
 * loop over the elements, ROOF_E at a time, moving every stream's part of
 * them (width * ROOF_E bytes, in vectors of ROOF_VB) before the next
 * ROOF_E; a stream of one element per `per` (the scales) moves its element
 * where the step's elements reach a multiple of `per`.
 *
 * Measured on an AMD Zen 3 VM (64 Mi elements, best of 10 or 12
 * alternations in one process, three or four runs, ns per element):
 *   - AdamW's float32 traffic (a read stream, three read and written): the
 *     fused float32 roofline (rw3) 1.07-1.47; the fused loop here
 *     1.42-1.49 beside rw3's 1.36-1.47; roofline_any 1.05-1.25 x rw3's
 *     time (ROOF_E 32, 128 or 256, or the streams taken in turn vector by
 *     vector: slower still); the version before these, each stream's part
 *     of a block of 1024 elements in a loop of its own, 1.37-1.60 x.
 *   - All-bf16 RMSProp's traffic (10 bytes): the fused loop here 0.56-0.57
 *     beside 0.52-0.55 for a loop written for it alone; roofline_any
 *     0.48-0.56 beside that loop's 0.39-0.44 in a faster spell; blocks of
 *     1024, 0.87-0.89.
 */
#define ROOF_E  64u /* elements per iteration: a 1-byte stream's cache line; `per` (256) a multiple */
#define ROOF_VB 32u /* bytes per vector */
typedef uint32_t roof_v __attribute__((vector_size(ROOF_VB)));

static inline roof_v roof_ld(const char *p)
{
    roof_v v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void roof_st(char *p, roof_v v)
{
    memcpy(p, &v, sizeof v);
}

double roofline_stream_bytes(const roofline_stream *s, int count)
{
    double b = 0.0;
    for (int k = 0; k < count; k++)
        b += (double)s[k].width * (s[k].mode == ROOF_RW ? 2 : 1) / (double)s[k].per;
    return b;
}

/* Element i of stream s (n elements of the step): read, read and written
 * (x += c), or written. */
static void roof_one(const roofline_stream *s, size_t i, uint32_t c, uint32_t *acc)
{
    char *const p = (char *)s->p + i * (size_t)s->width;
    uint32_t x = 0;
    memcpy(&x, p, (size_t)s->width);
    if (s->mode == ROOF_READ)
        *acc ^= x;
    else {
        x = s->mode == ROOF_RW ? x + c : c ^ (uint32_t)i;
        memcpy(p, &x, (size_t)s->width);
    }
}

/*
 * The work of roofline_mixed_work: after each RF_SUB elements of the
 * streams, units of float arithmetic on registers, seeded by those
 * elements' gradient (so that they wait for its loads, as a step's
 * arithmetic does) and independent of the other elements' work, so that
 * the work is interleaved with the loads and stores as a step's is (after
 * each block of 256 instead, one core overlapped nothing: the roofline's
 * time plus the work's at DRAM size, AMD Zen 5 VM).  `work` counts eighths
 * of a unit per RF_SUB elements: each run of RF_SUB gets work / 8 units,
 * rounded up in (work % 8) of every 8 runs.  A unit is x = x / 2 + 1
 * (which stays in [1, 3)) on 8 vectors of 8 floats.  The benchmark finds
 * `work` by timing (bench/rmsfuse_bench.c).
 */
#define RF_BLOCK 256u /* RMSFUSE_Q8_BLOCK */
#define RF_SUB   64u /* ROOF_E */
typedef float rf_wv __attribute__((vector_size(32)));
static inline __attribute__((always_inline)) uint32_t rf_work(unsigned work, uint32_t seed)
{
    const float s0 = 1.0f + (float)(seed & 0xFFFFu) * 0x1p-17f;
    rf_wv x[8];
    for (int j = 0; j < 8; j++)
        x[j] = (rf_wv){0} + (s0 + 0.125f * (float)j);
    for (unsigned k = 0; k < work; k++)
        for (int j = 0; j < 8; j++)
            x[j] = x[j] * 0.5f + 1.0f;
    const rf_wv t = ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]));
    uint32_t u;
    memcpy(&u, &t, sizeof u);
    return u;
}

static uint32_t roofline_any(const roofline_stream *s, int count, size_t n, uint32_t c, unsigned work)
{
    /* the streams of one element per element, their bytes per iteration */
    char *p[ROOFLINE_MAX_STREAMS];
    unsigned bytes[ROOFLINE_MAX_STREAMS];
    int mode[ROOFLINE_MAX_STREAMS], m = 0;
    for (int k = 0; k < count; k++)
        if (s[k].per == 1) {
            p[m] = s[k].p;
            bytes[m] = (unsigned)s[k].width * ROOF_E;
            mode[m++] = s[k].mode;
        }
    roof_v acc = {0}, cv = {0};
    cv += c;
    uint32_t acc1 = 0;
    const size_t steps = n / ROOF_E;
    for (size_t it = 0; it < steps; it++) {
        for (int k = 0; k < m; k++) {
            char *const q = p[k];
            p[k] += bytes[k];
            if (mode[k] == ROOF_READ)
                for (unsigned o = 0; o < bytes[k]; o += ROOF_VB)
                    acc ^= roof_ld(q + o);
            else if (mode[k] == ROOF_RW)
                for (unsigned o = 0; o < bytes[k]; o += ROOF_VB)
                    roof_st(q + o, roof_ld(q + o) + cv);
            else
                for (unsigned o = 0; o < bytes[k]; o += ROOF_VB)
                    roof_st(q + o, cv);
        }
        const unsigned u = (work + (unsigned)(it % 8u)) / 8u; /* work / 8 on average */
        if (u)
            acc1 ^= rf_work(u, (uint32_t)acc[0]);
        if (m < count) {
            const size_t i = it * ROOF_E;
            for (int k = 0; k < count; k++)
                if (s[k].per > 1 && i % s[k].per == 0)
                    roof_one(&s[k], i / s[k].per, c, &acc1);
        }
    }
    /* the last n % ROOF_E elements */
    for (int k = 0; k < count; k++)
        for (size_t i = steps * ROOF_E; i < n; i++)
            if (i % s[k].per == 0)
                roof_one(&s[k], i / s[k].per, c, &acc1);
    for (unsigned l = 0; l < ROOF_VB / 4; l++)
        acc1 ^= acc[l];
    return acc1;
}


/*
 * The streams of the benchmark's combinations (combo_streams) in one loop
 * over the elements each, with every stream's width a constant, which the
 * compiler vectorises: the gradient read (G bytes); the param, read and
 * written or written only (P0), and a second param stream (the master or
 * the trail, P1 bytes, or none); NS state arrays of S bytes, with a block
 * scale each where S is 1 (8-bit), moved after each block of RF_BLOCK
 * elements.
 */
enum { RF_RW2, RF_RW4, RF_WR2, RF_NP0 };
#define RF_FN_(G, P0, P1, S, NS)                                                                                    \
    static __attribute__((noinline)) uint32_t rf_##G##_##P0##_##P1##_##S##_##NS(char *const *a, size_t n,          \
                                                                                 uint32_t c, unsigned work)        \
    {                                                                                                               \
        return rf_loop_##G##_##P0##_##P1##_##S##_##NS(                                                              \
            (const RF_T##G *)a[0], (RF_TP0_##P0 *)a[1], (RF_T##P1 *)a[2], (RF_T##S *)a[3], (RF_T##S *)a[4],         \
            (uint32_t *)a[5], (uint32_t *)a[6], n, c, 0u * work); /* without work: a constant 0 */                  \
    }                                                                                                               \
    static __attribute__((noinline)) uint32_t rfw_##G##_##P0##_##P1##_##S##_##NS(char *const *a, size_t n,         \
                                                                                  uint32_t c, unsigned work)       \
    {                                                                                                               \
        return rf_loop_##G##_##P0##_##P1##_##S##_##NS(                                                              \
            (const RF_T##G *)a[0], (RF_TP0_##P0 *)a[1], (RF_T##P1 *)a[2], (RF_T##S *)a[3], (RF_T##S *)a[4],         \
            (uint32_t *)a[5], (uint32_t *)a[6], n, c, work);                                                        \
    }
#define RF_ELEM_(i, G, P0, P1, S, NS)                                                                               \
    do {                                                                                                            \
        bacc ^= g[i];                                                                                               \
        p0[i] = (RF_TP0_##P0)((P0) == RF_WR2 ? c ^ (uint32_t)(i) : p0[i] + c);                                      \
        if ((P1) != 0)                                                                                              \
            p1[i] = (RF_T##P1)(p1[i] + c);                                                                          \
        s0[i] = (RF_T##S)(s0[i] + c);                                                                               \
        if ((NS) > 1)                                                                                               \
            s1[i] = (RF_T##S)(s1[i] + c);                                                                           \
    } while (0)
#define RF_LOOP_(G, P0, P1, S, NS)                                                                                  \
    static inline __attribute__((always_inline)) uint32_t rf_loop_##G##_##P0##_##P1##_##S##_##NS(                  \
        const RF_T##G *restrict g, RF_TP0_##P0 *restrict p0, RF_T##P1 *restrict p1, RF_T##S *restrict s0,          \
        RF_T##S *restrict s1, uint32_t *restrict q0, uint32_t *restrict q1, size_t n, uint32_t c, unsigned work)   \
    {                                                                                                               \
        RF_T##G acc = 0;                                                                                            \
        uint32_t wacc = 0;                                                                                          \
        for (size_t b = 0; b < n; b += RF_BLOCK) {                                                                  \
            const size_t e = n - b < RF_BLOCK ? n : b + RF_BLOCK;                                                   \
            for (size_t sb = b, se; sb < e; sb = se) { /* without work: the block at once */                        \
                se = work && e - sb > RF_SUB ? sb + RF_SUB : e;                                                     \
                RF_T##G bacc = 0;                                                                                   \
                if (work && se - sb == RF_SUB)                                                                      \
                    for (size_t i = sb; i < sb + RF_SUB; i++)                                                       \
                        RF_ELEM_(i, G, P0, P1, S, NS);                                                              \
                else                                                                                                \
                    for (size_t i = sb; i < se; i++)                                                                \
                        RF_ELEM_(i, G, P0, P1, S, NS);                                                              \
                acc ^= bacc;                                                                                        \
                const unsigned u = (work + (unsigned)(sb / RF_SUB % 8u)) / 8u; /* work / 8 on average */          \
                if (u)                                                                                              \
                    wacc ^= rf_work(u, bacc);                                                                       \
            }                                                                                                       \
            if ((S) == 1) {                                                                                         \
                q0[b / RF_BLOCK] += c;                                                                              \
                if ((NS) > 1)                                                                                       \
                    q1[b / RF_BLOCK] += c;                                                                          \
            }                                                                                                       \
        }                                                                                                           \
        return acc ^ wacc;                                                                                          \
    }
typedef uint8_t RF_T0; /* no stream (never written) */
typedef uint8_t RF_T1;
typedef uint16_t RF_T2;
typedef uint32_t RF_T4;
typedef uint16_t RF_TP0_0; /* RF_RW2 */
typedef uint32_t RF_TP0_1; /* RF_RW4 */
typedef uint16_t RF_TP0_2; /* RF_WR2 */
_Static_assert(RF_RW2 == 0 && RF_RW4 == 1 && RF_WR2 == 2, "RF_TP0_<P0>");
/* the (P0, P1) pairs of the combinations: a float32 or 16-bit param, split
 * (two 16-bit halves), master weights (16-bit written, float32 read and
 * written) */
#define RF_S_(X, G, P0, P1) X(G, P0, P1, 1, 1) X(G, P0, P1, 1, 2) X(G, P0, P1, 2, 1) X(G, P0, P1, 2, 2) \
    X(G, P0, P1, 4, 1) X(G, P0, P1, 4, 2)
#define RF_P_(X, G) RF_S_(X, G, 1, 0) RF_S_(X, G, 0, 0) RF_S_(X, G, 0, 2) RF_S_(X, G, 2, 4)
#define RF_ALL_(X) RF_P_(X, 2) RF_P_(X, 4)
RF_ALL_(RF_LOOP_)
RF_ALL_(RF_FN_)

typedef uint32_t (*rf_fn)(char *const *a, size_t n, uint32_t c, unsigned work);
#define RF_CASE_(G, P0, P1, S, NS)                                                                                  \
    if (g == (G) && p0 == (P0) && p1 == (P1) && sw == (S) && ns == (NS))                                            \
        return work ? rfw_##G##_##P0##_##P1##_##S##_##NS : rf_##G##_##P0##_##P1##_##S##_##NS;
static rf_fn rf_find(int g, int p0, int p1, int sw, int ns, unsigned work)
{
    RF_ALL_(RF_CASE_)
    return NULL;
}

/* The fused loop for streams s and their pointers in a[] (rf_fn's), or NULL. */
static rf_fn rf_match(const roofline_stream *s, int count, char **a, unsigned work)
{
    if (count < 3 || s[0].mode != ROOF_READ || s[0].per != 1 || s[1].per != 1)
        return NULL;
    const int p0 = s[1].mode == ROOF_WRITE && s[1].width == 2 ? RF_WR2
                   : s[1].mode == ROOF_RW && s[1].width == 2  ? RF_RW2
                   : s[1].mode == ROOF_RW && s[1].width == 4  ? RF_RW4
                                                              : RF_NP0;
    /* the rest: read-and-written streams of one element per element, each
     * 8-bit one followed by its scale */
    const roofline_stream *r[4];
    char *q[2] = {NULL, NULL};
    int nr = 0, nq = 0;
    for (int k = 2; k < count; k++) {
        if (s[k].mode != ROOF_RW)
            return NULL;
        if (s[k].per == 1) {
            if (nr == 4)
                return NULL;
            r[nr++] = &s[k];
        } else if (s[k].per == RF_BLOCK && s[k].width == 4 && nr > 0 && r[nr - 1]->width == 1 && nq < 2 &&
                   &s[k - 1] == r[nr - 1]) {
            q[nq++] = s[k].p;
        } else {
            return NULL;
        }
    }
    /* a second param stream (always beside a param written only: the
     * master), then one or two state arrays of one width */
    int p1 = 0, first = 0;
    if (p0 == RF_WR2 || nr == 3 || (nr == 2 && r[0]->width != r[1]->width)) {
        p1 = r[0]->width;
        first = 1;
    }
    const int ns = nr - first, sw = ns > 0 ? r[first]->width : 0;
    if (ns < 1 || ns > 2 || (ns == 2 && r[first + 1]->width != sw) || (p1 == 1) || nq != (sw == 1 ? ns : 0))
        return NULL;
    const rf_fn f = rf_find(s[0].width, p0, p1, sw, ns, work);
    if (!f)
        return NULL;
    a[0] = s[0].p;
    a[1] = s[1].p;
    a[2] = p1 ? r[0]->p : NULL;
    a[3] = r[first]->p;
    a[4] = ns > 1 ? r[first + 1]->p : NULL;
    a[5] = q[0];
    a[6] = q[1];
    return f;
}

uint32_t roofline_mixed(const roofline_stream *s, int count, size_t n, uint32_t c)
{
    return roofline_mixed_work(s, count, n, c, 0u);
}

uint32_t roofline_mixed_work(const roofline_stream *s, int count, size_t n, uint32_t c, unsigned work)
{
    char *a[7];
    const rf_fn f = rf_match(s, count, a, work);
    return f ? f(a, n, c, work) : roofline_any(s, count, n, c, work);
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

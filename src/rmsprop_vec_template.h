/*
 * The RMSProp vector loop, written once for every SIMD ISA.  An ISA file
 * defines the macros below and includes this header; it gets
 * RMSFUSE_VEC_FUNC, the kernel specialised on all 64 variants.
 *
 *   VF            vector type of VW floats
 *   VLOAD(ptr)    unaligned load        VSTORE(ptr, x)  unaligned store
 *   VSET1(f)      broadcast             VNEG(x)         flip the sign bit
 *   VADD VSUB VMUL VDIV(x, y)           VSQRT(x)   (IEEE, correctly rounded)
 *
 * The vector body mirrors rmsfuse_rmsprop_elem() op for op.  Elements
 * before the first VW*4-byte-aligned param address, and the last n % VW,
 * go through rmsfuse_rmsprop_elem() itself, so no access leaves [0, n).
 */
#include <stdint.h>

#include "rmsprop_elem.h"

#define RMSFUSE_VEC_BYTES (VW * sizeof(float))

static RMSFUSE_ALWAYS_INLINE void vec_body(const rmsfuse_consts *k, const unsigned V, float *p, const float *grad,
                                           float *v, float *b, float *ga, size_t i)
{
    VF g = VLOAD(grad + i);
    VF pi = VLOAD(p + i);
    VF s, d;

    if (V & RMSFUSE_V_MAXIMIZE)
        g = VNEG(g);
    if (V & RMSFUSE_V_WD)
        g = VADD(g, VMUL(VSET1(k->w), pi));

    VF vi = VADD(VMUL(VLOAD(v + i), VSET1(k->a)), VMUL(VMUL(VSET1(k->c), g), g));
    VSTORE(v + i, vi);

    if (V & RMSFUSE_V_CENTERED) {
        VF gai = VADD(VMUL(VLOAD(ga + i), VSET1(k->a)), VMUL(VSET1(k->c), g));
        VSTORE(ga + i, gai);
        s = VSUB(vi, VMUL(gai, gai));
    } else {
        s = vi;
    }

    if (V & RMSFUSE_V_EPS_IN_SQRT)
        d = VSQRT(VADD(s, VSET1(k->e)));
    else
        d = VADD(VSQRT(s), VSET1(k->e));

    if (V & RMSFUSE_V_LR_IN_MOM) {
        VF u = VDIV(VMUL(VSET1(k->l), g), d);
        if (V & RMSFUSE_V_MOM) {
            VF bi = VADD(VMUL(VLOAD(b + i), VSET1(k->m)), u);
            VSTORE(b + i, bi);
            pi = VSUB(pi, bi);
        } else {
            pi = VSUB(pi, u);
        }
    } else {
        if (V & RMSFUSE_V_MOM) {
            VF bi = VADD(VMUL(VLOAD(b + i), VSET1(k->m)), VDIV(g, d));
            VSTORE(b + i, bi);
            pi = VADD(pi, VMUL(VSET1(k->nl), bi));
        } else {
            pi = VADD(pi, VDIV(VMUL(VSET1(k->nl), g), d));
        }
    }
    VSTORE(p + i, pi);
}

#ifndef RMSFUSE_PREFETCH_AHEAD
#define RMSFUSE_PREFETCH_AHEAD 512 /* elements: 2 KiB per array */
#endif
#ifndef RMSFUSE_PREFETCH_MIN_N
#define RMSFUSE_PREFETCH_MIN_N (1u << 16) /* 256 KiB per array: beyond L2, the data comes from L3 or memory */
#endif

/* Prefetches element j of every array the variant uses.  The arrays the
 * step writes get the write hint, which the ISA flags used here compile to
 * the same prefetcht0 as the read hint (no -mprfchw). */
static RMSFUSE_ALWAYS_INLINE void rmsfuse_prefetch(const unsigned V, const float *p, const float *g, const float *v,
                                                   const float *b, const float *ga, size_t j)
{
    __builtin_prefetch(g + j, 0);
    __builtin_prefetch(p + j, 1);
    __builtin_prefetch(v + j, 1);
    if (V & RMSFUSE_V_MOM)
        __builtin_prefetch(b + j, 1);
    if (V & RMSFUSE_V_CENTERED)
        __builtin_prefetch(ga + j, 1);
}

static RMSFUSE_ALWAYS_INLINE void vec_loop(const rmsfuse_consts *kp, const unsigned V, float *p, const float *g,
                                           float *v, float *b, float *ga, size_t n)
{
    /* A local copy: stores through the float arrays cannot alias it, so the
     * constants (and their broadcasts) stay in registers across the loop. */
    const rmsfuse_consts kc = *kp;
    const rmsfuse_consts *k = &kc;
    size_t i = 0;
    /* Head: reach a vector-aligned param address (when param is at least
     * float-aligned; otherwise every access stays unaligned). */
    size_t head = 0;
    if (((uintptr_t)p % sizeof(float)) == 0)
        head = (size_t)((RMSFUSE_VEC_BYTES - ((uintptr_t)p % RMSFUSE_VEC_BYTES)) % RMSFUSE_VEC_BYTES) /
               sizeof(float);
    if (head > n)
        head = n;
    for (; i < head; i++)
        rmsfuse_rmsprop_elem(k, V, p, g, v, b, ga, i);
    /* The vector part's end, computed once: a bound that does not depend on
     * i keeps the loop to one induction variable. */
    const size_t vec_end = head + (n - head) / VW * VW;
    /* Large arrays come from memory: while more than RMSFUSE_PREFETCH_AHEAD
     * elements remain, ask for each array's data that far ahead (a hint:
     * it never faults), so the loads are in flight before the loop, held
     * up by the divider, reaches them. */
    if (n >= RMSFUSE_PREFETCH_MIN_N && vec_end > RMSFUSE_PREFETCH_AHEAD) {
        const size_t pf_end = vec_end - RMSFUSE_PREFETCH_AHEAD;
        for (; i < pf_end; i += VW) {
            rmsfuse_prefetch(V, p, g, v, b, ga, i + RMSFUSE_PREFETCH_AHEAD);
            vec_body(k, V, p, g, v, b, ga, i);
        }
    }
    for (; i < vec_end; i += VW)
        vec_body(k, V, p, g, v, b, ga, i);
    for (; i < n; i++)
        rmsfuse_rmsprop_elem(k, V, p, g, v, b, ga, i);
}

#define RMSFUSE_VEC_CASE(V)                  \
    case (V):                                \
        vec_loop(k, (V), p, g, v, b, ga, n); \
        break;

void RMSFUSE_VEC_FUNC(const rmsfuse_consts *k, float *p, const float *g, float *v, float *b, float *ga, size_t n)
{
    switch (k->variant) {
        RMSFUSE_FOR_EACH_VARIANT(RMSFUSE_VEC_CASE)
    default:
        break;
    }
}

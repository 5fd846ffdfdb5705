/*
 * Every rule's kernels for one ISA.  CMake compiles this file once per ISA
 * of the registry (src/core/dispatch.c) with -DRMSFUSE_ISA=<name> and, when
 * the compiler and target can build that ISA, -DRMSFUSE_ISA_OPS="ops_<name>.h"
 * and the ISA's flags.  It defines rmsfuse_kernels_<name>(), which returns
 * the table of one kernel per rule of src/rules/registry.h (NULL when the
 * ISA is not built, which the dispatcher reads as "not usable").  A
 * function rather than a global array: the library defines no global
 * variables, so instrumented builds (ASan) add no symbols of their own.
 *
 * Each rule's element math (src/rules/<rule>.h) is instantiated twice: at
 * width 1 with the scalar operations (the scalar reference itself, and the
 * heads and tails of every fixed-width SIMD loop) and at the ISA's width
 * (for SVE, a width known only at run time, with predicated tails).  The loop
 * below is written once for every rule and ISA; each kernel is a switch
 * over the rule's variants, so the inner loops have no per-element branches.
 *
 * The file has three kinds of part, RMSFUSE_KPART: 1, the float32 kernel
 * table and the norm's block sum; 2, the storage types (src/isa/storage.h),
 * which call the float32 kernels through pointers only, less the fused
 * loops of storage_fused.h; 3, with -DRMSFUSE_TX_RULE=<rule>, the fused
 * loops of that rule (where the ISA has them; elsewhere nothing), which
 * part 2's table names.  CMake compiles each part of each ISA as its own
 * object (cmake/RmsfuseIsa.cmake), once per rule for part 3, so an ISA's
 * code builds in parallel; undefined or 0: everything in one object.
 */
#include "../core/internal.h"

#ifndef RMSFUSE_ISA
#  error "compile src/isa/kernels.c with -DRMSFUSE_ISA=<name> (CMake does)"
#endif
#define RMSFUSE_KTABLE RMSFUSE_CAT(rmsfuse_kernels_, RMSFUSE_ISA)
#ifndef RMSFUSE_KPART
#  define RMSFUSE_KPART 0
#endif
#define RMSFUSE_KPART_F32 (RMSFUSE_KPART == 0 || RMSFUSE_KPART == 1)
#define RMSFUSE_KPART_STORAGE (RMSFUSE_KPART != 1)           /* 0, 2 and 3: storage.h */
#define RMSFUSE_KPART_STORAGE_OPS (RMSFUSE_KPART == 0 || RMSFUSE_KPART == 2)
#if RMSFUSE_KPART == 3 && !defined(RMSFUSE_TX_RULE)
#  error "part 3 of src/isa/kernels.c needs -DRMSFUSE_TX_RULE=<rule> (CMake gives it)"
#endif

#ifndef RMSFUSE_ISA_OPS

/* This ISA is not built here (other architecture, or compiler without it). */
#if RMSFUSE_KPART_F32
const rmsfuse_kernel *RMSFUSE_KTABLE(void)
{
    return NULL;
}

rmsfuse_block_sumsq_fn RMSFUSE_CAT(rmsfuse_block_sumsq_, RMSFUSE_ISA)(void)
{
    return NULL;
}
#endif

#if RMSFUSE_KPART_STORAGE_OPS
const rmsfuse_storage_ops *RMSFUSE_CAT(rmsfuse_storage_ops_, RMSFUSE_ISA)(void)
{
    return NULL;
}
#endif
#if RMSFUSE_KPART == 3
typedef int rmsfuse_no_fused_loops_; /* nothing here (ISO C: a file is not empty) */
#endif

#else

/* Loads and stores of slot s at element i, for the rule bodies; x flushed
 * (subnormal to +0) when `cond`, a constant of the variant, holds. */
#define LD(s)    VLOAD(a[s] + i * sizeof(float))
#define ST(s, x) VSTORE(a[s] + i * sizeof(float), (x))
#define FLUSH_IF(cond, x) ((cond) ? VFLUSH(x) : (x))
/* The gradient as the step reads it (docs/math.md): x * gs clamped to
 * [-gc, gc], NaN kept (VMIN_C, VMAX_C), in the operations of the width in
 * scope where it is expanded. */
#define GRAD_IN(x, gs, gc) VMAX_C(VSET1(-(gc)), VMIN_C(VSET1(gc), VMUL((x), VSET1(gs))))

/* ---- width 1 --------------------------------------------------------------- */
#include "ops_scalar.h"
#define RMSFUSE_BODY(r) rmsfuse_##r##_body_w1
#include "../rules/registry.h"
#undef RMSFUSE_BODY

/* The gradient transform of one element (see grad_transform below; part 1
 * only, hence unused elsewhere). */
static RMSFUSE_ALWAYS_INLINE __attribute__((unused)) float grad_in_w1(float x, float gs, float gc)
{
    return GRAD_IN(x, gs, gc);
}

/* ---- storage types at width 1 (src/isa/storage_conv.h, storage.h) ---------- */
#define CW 1
#define CV(name) name##_c1
#include "storage_conv.h"
#undef CW
#undef CV

#include "ops_end.h"

/* ---- the ISA's width ------------------------------------------------------- */
#include RMSFUSE_ISA_OPS
/* RMSFUSE_WIDE: the ISA has vectors (a fixed VW > 1, or VLA: a width known
 * only at run time). */
#if defined(VLA)
#  define RMSFUSE_WIDE 1
#elif VW > 1
#  define RMSFUSE_WIDE 1
#else
#  define RMSFUSE_WIDE 0
#endif
#if RMSFUSE_WIDE
#  ifdef VLA
/* Vector-length agnostic: every load and store is predicated on the lanes
 * below the loop's end n, which the kernel passes after the slots, in
 * a[RMSFUSE_MAX_SLOTS] (the rule bodies see only a and i).  One predicated
 * loop then covers every element, the last partial vector included, and no
 * access touches memory at or beyond element n. */
#    undef LD
#    undef ST
#    define RMSFUSE_PG(i) VPRED((i), (uintptr_t)a[RMSFUSE_MAX_SLOTS])
#    define LD(s)    VLOADP(RMSFUSE_PG(i), a[s] + i * sizeof(float))
#    define ST(s, x) VSTOREP(RMSFUSE_PG(i), a[s] + i * sizeof(float), (x))
#  endif
/*
 * Software pipelining (ISAs whose ops define VPIPE 1: AVX2), as in the fused
 * typed loops (src/isa/storage_fused.h, TX_PIPED): in the flush variants
 * of the rules with a stage point (RMSFUSE_PIPED_<rule>) over at least
 * RMSFUSE_PIPE_MIN_N elements, each pass of the vector loop runs the
 * body's first stage (loads, state, square root) over the vector at i and
 * its second (division, momentum, param) over the vector before, whose
 * stage-point values and i the kernel's f32_ctx kept; f32_drain runs the
 * last vector's second stage.  Each element takes the same operations in
 * the same order: the same bits.  AMD Zen 3 VM, in L2, ns per element, 3
 * alternations, before -> after: AMSGrad 0.570 -> 0.498, RMSProp centred
 * with momentum 0.552 -> 0.504, centred 0.426 -> 0.399, with momentum
 * 0.392 -> 0.373, Adam and AdamW 0.365 -> 0.348; at DRAM size AdamW 0.614
 * -> 0.594, RMSProp centred with momentum 0.781 -> 0.745.  Not the exact
 * variants: no faster in L2, where they run at the divider's floor
 * already (without the flush's two operations twice on the chain through
 * the division), and slower on small arrays.
 */
#  if defined(VPIPE) && VPIPE == 1
#    define RMSFUSE_F32_PIPE 1
#  else
#    define RMSFUSE_F32_PIPE 0
#  endif
#  if defined(VPIPE)
/* A stage point's exchange (here and in src/isa/storage_fused.h, TXN(pipe);
 * unused, hence the attribute, in an object with no pipelined loop, as
 * AVX-512's without the typed ones): keeps the body's x, y, d and, with
 * keep_i, its i in the kept ones (k*) and gives the body those of the pass
 * before; draining, the arrays of the second stage (ra) back into a.  0
 * where there is no pass before. */
static RMSFUSE_ALWAYS_INLINE __attribute__((unused)) int rmsfuse_pipe_swap(VF *kx, VF *ky, VF *kd, size_t *ki,
                                                                           const int keep_i, VF *x, VF *y, VF *d,
                                                                           size_t *pi, const int drain, char **a,
                                                                           char *const *ra)
{
    const VF tx = *kx, ty = *ky, td = *kd;
    const size_t ti = *ki;
    *kx = *x;
    *ky = *y;
    *kd = *d;
    if (keep_i)
        *ki = *pi;
    *x = tx;
    *y = ty;
    *d = td;
    *pi = ti;
    if (drain)
        for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++)
            a[s] = ra[s];
    return ti != SIZE_MAX;
}
/* A drain's first stage over the scratch vector zs: the arrays into ra,
 * zs in their place (the stage point gives them back). */
static RMSFUSE_ALWAYS_INLINE __attribute__((unused)) void rmsfuse_pipe_scratch(char **a, char **ra, char *zs)
{
    for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++) {
        ra[s] = a[s];
        a[s] = zs;
    }
}
#  endif
#  if RMSFUSE_F32_PIPE
enum { F32_PIPE = 1u << 8, F32_DRAIN = 1u << 9 }; /* V's bits above every rule's variant */
/* The kernel's array addresses (the bodies' a) and the pipeline's state. */
struct f32_ctx {
    char *a[RMSFUSE_MAX_SLOTS + 1];
    VF px, py, pd; /* the vector before's stage-point values */
    size_t pi;     /* its i, or SIZE_MAX before the first */
    char *ra[RMSFUSE_MAX_SLOTS]; /* draining: the arrays of the second stage */
};
/* The float32 bodies' stage point. */
static RMSFUSE_ALWAYS_INLINE int f32_pipe(const unsigned V, char *const *a, size_t *pi, VF *x, VF *y, VF *d)
{
    struct f32_ctx *const X = (struct f32_ctx *)(void *)a;
    return rmsfuse_pipe_swap(&X->px, &X->py, &X->pd, &X->pi, 1, x, y, d, pi, (V & F32_DRAIN) != 0, X->a, X->ra);
}
#    undef RMSFUSE_PIPE
#    define RMSFUSE_PIPE(x, y, d)                                                                      \
        do {                                                                                           \
            if ((V & F32_PIPE) && !f32_pipe(V, a, &i, &(x), &(y), &(d)))                               \
                return;                                                                                \
        } while (0)
#  endif
#  define RMSFUSE_BODY(r) rmsfuse_##r##_body_wv
#  include "../rules/registry.h"
#  undef RMSFUSE_BODY
#  if RMSFUSE_F32_PIPE
#    undef RMSFUSE_PIPE
#    define RMSFUSE_PIPE(x, y, d) ((void)0)
#  endif

#if RMSFUSE_WIDE && !defined(VLA)
/* ---- storage types at the ISA's width -------------------------------------- */
#define CW VW
#define CV(name) name##_cw
#include "storage_conv.h"
#undef CW
#undef CV

#endif /* RMSFUSE_WIDE && !VLA */
#elif defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "the scalar reference is a baseline file: do not compile it with -mavx*/-march flags"
#endif

/* Rule R's pieces, by a rule id that is a constant at every call site (the
 * switches fold away). */
#define RMSFUSE_W1_CASE_(r)                                                              \
    case RMSFUSE_RULE_##r:                                                               \
        rmsfuse_##r##_body_w1((const rmsfuse_##r##_k *)k, V, a, i);                      \
        break;
static RMSFUSE_ALWAYS_INLINE void body_w1(const int R, const void *k, const unsigned V, char *const *a, size_t i)
{
    switch (R) {
        RMSFUSE_RULES(RMSFUSE_W1_CASE_)
    default:
        break;
    }
}

#if RMSFUSE_WIDE
#define RMSFUSE_WV_CASE_(r)                                                              \
    case RMSFUSE_RULE_##r:                                                               \
        rmsfuse_##r##_body_wv((const rmsfuse_##r##_k *)k, V, a, i);                      \
        break;
static RMSFUSE_ALWAYS_INLINE void body_wv(const int R, const void *k, const unsigned V, char *const *a, size_t i)
{
    switch (R) {
        RMSFUSE_RULES(RMSFUSE_WV_CASE_)
    default:
        break;
    }
}
#endif /* RMSFUSE_WIDE */

#if RMSFUSE_WIDE && !defined(VLA)

#define RMSFUSE_USED_CASE_(r)                                                            \
    case RMSFUSE_RULE_##r:                                                               \
        return rmsfuse_##r##_used(V);
static RMSFUSE_ALWAYS_INLINE unsigned used_slots(const int R, const unsigned V)
{
    switch (R) {
        RMSFUSE_RULES(RMSFUSE_USED_CASE_)
    default:
        return 0;
    }
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
#define RMSFUSE_PREFETCH_SLOT_(s)                                                        \
    if (used & (1u << (s))) {                                                            \
        if ((s) == RMSFUSE_SLOT_GRAD)                                                    \
            __builtin_prefetch(a[s] + j * sizeof(float), 0);                             \
        else                                                                             \
            __builtin_prefetch(a[s] + j * sizeof(float), 1);                             \
    }
static RMSFUSE_ALWAYS_INLINE void prefetch_slots(const unsigned used, char *const *a, size_t j)
{
    _Static_assert(RMSFUSE_MAX_SLOTS == 6, "prefetch_slots lists every slot");
    RMSFUSE_PREFETCH_SLOT_(0)
    RMSFUSE_PREFETCH_SLOT_(1)
    RMSFUSE_PREFETCH_SLOT_(2)
    RMSFUSE_PREFETCH_SLOT_(3)
    RMSFUSE_PREFETCH_SLOT_(4)
    RMSFUSE_PREFETCH_SLOT_(5)
}
#endif /* RMSFUSE_WIDE && !VLA */

#ifndef RMSFUSE_PIPE_MIN_N
/* Elements: fewer take the loop without pipelining, whose drain costs more
 * than it gains (Zen 3 VM, ungated: 1000 tensors of 16 elements through
 * rmsfuse_rmsprop_step_multi with momentum 36% slower, of 256 elements 9%,
 * a 4096-byte working set 10%; faster from 65536 bytes, 2340 elements). */
#define RMSFUSE_PIPE_MIN_N 2048
#endif
#if RMSFUSE_WIDE && RMSFUSE_F32_PIPE
#define RMSFUSE_PIPED_CASE_(r)                                                           \
    case RMSFUSE_RULE_##r:                                                               \
        return RMSFUSE_PIPED_##r != 0 && (V & RMSFUSE_FLUSHED_##r) != 0;
static RMSFUSE_ALWAYS_INLINE int piped(const int R, const unsigned V)
{
    switch (R) {
        RMSFUSE_RULES(RMSFUSE_PIPED_CASE_)
    default:
        return 0;
    }
}
/* The last vector's second stage: the first stage over a scratch vector. */
static __attribute__((noinline)) void f32_drain(const int R, const void *k, const unsigned VP, struct f32_ctx z)
{
    float zs[VW] __attribute__((aligned(32))) = {0};
    rmsfuse_pipe_scratch(z.a, z.ra, (char *)zs);
    body_wv(R, k, VP | F32_DRAIN, z.a, 0);
}
#define F32_DRAIN_CALL(R, k, VP, a) f32_drain((R), (k), (VP), *(const struct f32_ctx *)(const void *)(a))
#else
#define F32_PIPE 0u
#define piped(R, V) 0
#define F32_DRAIN_CALL(R, k, VP, a) ((void)0)
#endif

#if RMSFUSE_WIDE && !defined(VLA)
/* The vector part of rule_loop, from i to vec_end; returns vec_end. */
static RMSFUSE_ALWAYS_INLINE size_t vec_loops(const int R, const void *k, const unsigned V, char *const *a, size_t i,
                                              const size_t n, const size_t vec_end)
{
    if (n >= RMSFUSE_PREFETCH_MIN_N && vec_end > RMSFUSE_PREFETCH_AHEAD && rmsfuse_cpu_prefers_prefetch()) {
        const unsigned used = used_slots(R, V);
        const size_t pf_end = vec_end - RMSFUSE_PREFETCH_AHEAD;
        for (; i < pf_end; i += VW) {
            prefetch_slots(used, a, i + RMSFUSE_PREFETCH_AHEAD);
            body_wv(R, k, V, a, i);
        }
    }
    for (; i < vec_end; i += VW)
        body_wv(R, k, V, a, i);
    return i;
}
#endif

/*
 * The loop of every kernel.  A vector-length-agnostic ISA (VLA: SVE) runs
 * one predicated loop over every element.  Fixed widths: elements before
 * the first VW*4-byte-aligned param address, and the last (n - head) % VW,
 * go through the width-1 body, so no access leaves [0, n).  Large arrays
 * come from memory: while more than RMSFUSE_PREFETCH_AHEAD elements
 * remain, each array's data that far ahead is prefetched (a hint: it never
 * faults), so the loads are in flight before the loop, held up by the
 * divider, reaches them; not on CPUs where that measured slower than the
 * hardware prefetchers alone (AMD Zen 4: rmsfuse_cpu_prefers_prefetch,
 * src/core/cpu_x86.c).  Part 1's only (hence unused elsewhere).
 */
static RMSFUSE_ALWAYS_INLINE __attribute__((unused)) void rule_loop(const int R, const void *k, const unsigned V, char *const *a, size_t n)
{
    size_t i = 0;
#if defined(VLA)
    for (; i < n; i += VW) /* predicated: the last vector stops at n */
        body_wv(R, k, V, a, i);
#elif VW > 1
    const size_t vbytes = VW * sizeof(float);
    size_t head = 0;
    const uintptr_t p0 = (uintptr_t)a[RMSFUSE_SLOT_PARAM];
    if (p0 % sizeof(float) == 0) /* else every access stays unaligned */
        head = (size_t)((vbytes - p0 % vbytes) % vbytes) / sizeof(float);
    if (head > n)
        head = n;
    for (; i < head; i++)
        body_w1(R, k, V, a, i);
    /* The vector part's end, computed once: a bound that does not depend on
     * i keeps the loop to one induction variable. */
    const size_t vec_end = head + (n - head) / VW * VW;
    if (piped(R, V) && vec_end - i >= RMSFUSE_PIPE_MIN_N) {
        i = vec_loops(R, k, V | F32_PIPE, a, i, n, vec_end);
        F32_DRAIN_CALL(R, k, V | F32_PIPE, a);
    } else {
        i = vec_loops(R, k, V, a, i, n, vec_end);
    }
#endif
    for (; i < n; i++)
        body_w1(R, k, V, a, i);
}

/* X(r, v) for v in 0 .. 255: every variant code a rule may have. */
#define RMSFUSE_V8_(X, r, b) X(r, b + 0) X(r, b + 1) X(r, b + 2) X(r, b + 3) X(r, b + 4) X(r, b + 5) X(r, b + 6) X(r, b + 7)
#define RMSFUSE_V32_(X, r, b) RMSFUSE_V8_(X, r, b) RMSFUSE_V8_(X, r, b + 8) RMSFUSE_V8_(X, r, b + 16) RMSFUSE_V8_(X, r, b + 24)
#define RMSFUSE_V128_(X, r, b) \
    RMSFUSE_V32_(X, r, b) RMSFUSE_V32_(X, r, b + 32) RMSFUSE_V32_(X, r, b + 64) RMSFUSE_V32_(X, r, b + 96)
#define RMSFUSE_FOR_EACH_VARIANT(X, r) RMSFUSE_V128_(X, r, 0) RMSFUSE_V128_(X, r, 128)

/* ---- the global norm's block sum (docs/math.md, "The gradient as the step reads it") ---- */
/*
 * The sum of (double)(g[i] * s)^2 over elements [0, n) of one block (n at
 * most RMSFUSE_NORM_BLOCK): element i goes to lane i % 16, each lane adds its
 * squares in increasing i, then the lanes are added pairwise (lane j + lane
 * j + 8, then j + 4, j + 2, j + 1).  g * s is a float product; its square is
 * exact in double.  Each lane's operations are the same IEEE operations on
 * every ISA, so the bits are too; written once with the compiler's vector
 * extension, which each ISA's flags turn into its own instructions (two,
 * four or eight doubles per operation; no FMA: -ffp-contract=off).
 */
typedef float rmsfuse_v8f_ __attribute__((vector_size(8 * sizeof(float))));
typedef double rmsfuse_v8d_ __attribute__((vector_size(8 * sizeof(double))));
/* Parts 1 and 2: the float32 step's norm and the typed one (storage.h). */
#if RMSFUSE_KPART != 3
static double block_sumsq(const char *g, size_t n, float s)
{
    _Static_assert(RMSFUSE_NORM_LANES == 16, "two vectors of 8 lanes");
    rmsfuse_v8d_ acc0 = {0}, acc1 = {0};
    size_t i = 0;
    for (; i + RMSFUSE_NORM_LANES <= n; i += RMSFUSE_NORM_LANES) {
        rmsfuse_v8f_ x0, x1;
        memcpy(&x0, g + i * sizeof(float), sizeof x0);
        memcpy(&x1, g + (i + 8) * sizeof(float), sizeof x1);
        x0 *= s;
        x1 *= s;
        const rmsfuse_v8d_ d0 = __builtin_convertvector(x0, rmsfuse_v8d_);
        const rmsfuse_v8d_ d1 = __builtin_convertvector(x1, rmsfuse_v8d_);
        acc0 += d0 * d0;
        acc1 += d1 * d1;
    }
    double lane[RMSFUSE_NORM_LANES];
    memcpy(lane, &acc0, sizeof acc0);
    memcpy(lane + 8, &acc1, sizeof acc1);
    for (unsigned j = 0; i < n; i++, j++) {
        float x;
        memcpy(&x, g + i * sizeof(float), sizeof x);
        x *= s;
        lane[j] += (double)x * (double)x;
    }
    for (unsigned w = RMSFUSE_NORM_LANES / 2; w >= 1; w /= 2)
        for (unsigned j = 0; j < w; j++)
            lane[j] += lane[j + w];
    return lane[0];
}
#endif /* RMSFUSE_KPART != 3 */

/* ---- part 1: the float32 kernels ------------------------------------------- */
#if RMSFUSE_KPART_F32

#if RMSFUSE_WIDE && RMSFUSE_F32_PIPE
#define F32_CTX_DECL(a)                                                                                  \
    struct f32_ctx ctx_;                                                                                 \
    ctx_.pi = SIZE_MAX;                                                                                  \
    char **const a = ctx_.a
#else
#define F32_CTX_DECL(a) char *a[RMSFUSE_MAX_SLOTS + 1]
#endif

/* One specialised loop per variant the rule can produce; codes beyond the
 * rule's count, or that its API never produces, compile to nothing. */
#define RMSFUSE_VARIANT_CASE_(r, v)                                                      \
    case (v):                                                                            \
        if ((v) < RMSFUSE_NVAR_##r && rmsfuse_##r##_valid(v))                            \
            rule_loop(RMSFUSE_RULE_##r, &kc, (v), a, n);                                 \
        break;

/*
 * dst[0, n) = clamp(src * gs, -gc, gc), element by element (n <= the
 * block): the gradient of a step with a scale or a clip value, into a
 * buffer that the rule's loop then reads in place of the gradient.  The
 * same operations at every width (ops_scalar.h: VMIN_C, VMAX_C keep NaN).
 */
static void grad_transform(float *dst, const char *src, size_t n, float gs, float gc)
{
    size_t i = 0;
#if defined(VLA)
    for (; i < n; i += VW)
        VSTOREP(VPRED(i, n), (char *)dst + i * sizeof(float),
                GRAD_IN(VLOADP(VPRED(i, n), src + i * sizeof(float)), gs, gc));
#elif RMSFUSE_WIDE
    for (; i + VW <= n; i += VW)
        VSTORE((char *)dst + i * sizeof(float),
               GRAD_IN(VLOAD(src + i * sizeof(float)), gs, gc));
#endif
    for (; i < n; i++) {
        float x;
        memcpy(&x, src + i * sizeof(float), sizeof x);
        dst[i] = grad_in_w1(x, gs, gc);
    }
}

/* Elements per block of a transformed gradient: 2 KiB of stack, in L1
 * (256, 512, 1024 and 2048 measured on Zen 4: 512 best in L2 and at DRAM). */
#define RMSFUSE_GRAD_BLOCK 512

/* A step whose gradient is scaled or clamped (rmsfuse_grad_k): block by
 * block, the transformed gradient into a buffer, then the rule's kernel
 * itself over the block, with the buffer as its gradient and a copy of the
 * constants that transforms nothing.  Blocks are whole cache lines of
 * every float-aligned array, so each block's loop has the head the whole
 * loop would have had.  Not inlined or cloned: a copy per rule could
 * inline the kernel it calls back, every variant a second time. */
#if defined(__clang__)
#define RMSFUSE_NOCLONE /* noclone is gcc's attribute only */
#else
#define RMSFUSE_NOCLONE , noclone
#endif
static __attribute__((noinline RMSFUSE_NOCLONE)) void run_transformed(rmsfuse_kernel kernel, const void *kp,
                                                                      size_t ksize, unsigned variant, char *const *a,
                                                                      size_t n)
{
    union {
        rmsfuse_grad_k in;
        unsigned char bytes[64];
    } k;
    memcpy(k.bytes, kp, ksize);
    const rmsfuse_grad_k in = k.in;
    k.in.gs = 1.0f;
    k.in.gc = INFINITY;
    float buf[RMSFUSE_GRAD_BLOCK] __attribute__((aligned(64)));
    for (size_t i = 0; i < n; i += RMSFUSE_GRAD_BLOCK) {
        const size_t m = n - i < RMSFUSE_GRAD_BLOCK ? n - i : RMSFUSE_GRAD_BLOCK;
        grad_transform(buf, a[RMSFUSE_SLOT_GRAD] + i * sizeof(float), m, in.gs, in.gc);
        char *b[RMSFUSE_MAX_SLOTS];
        for (int s = 0; s < RMSFUSE_MAX_SLOTS; s++)
            b[s] = a[s] ? a[s] + i * sizeof(float) : NULL;
        b[RMSFUSE_SLOT_GRAD] = (char *)buf;
        kernel(k.bytes, variant, b, m);
    }
}

/* The kernel of rule r: local copies of the constants and the array
 * addresses (stores through the arrays cannot alias them, so they stay in
 * registers across the loop), then the variant's loop; or, where the
 * gradient is scaled or clamped, the same block by block. */
#define RMSFUSE_DEFINE_KERNEL_(r)                                                                         \
    static void rmsfuse_##r##_kernel(const void *kp, unsigned variant, char *const *arrays, size_t n)    \
    {                                                                                                    \
        _Static_assert(RMSFUSE_NVAR_##r <= 256, "RMSFUSE_FOR_EACH_VARIANT covers 256 variant codes");    \
        _Static_assert(offsetof(rmsfuse_##r##_k, in) == 0, "rmsfuse_grad_k is the constants' first member"); \
        _Static_assert(sizeof(rmsfuse_##r##_k) <= 64, "run_transformed copies at most 64 bytes");        \
        const rmsfuse_##r##_k kc = *(const rmsfuse_##r##_k *)kp;                                         \
        if (!(kc.in.gs == 1.0f && kc.in.gc == INFINITY)) {                                               \
            run_transformed(rmsfuse_##r##_kernel, kp, sizeof kc, variant, arrays, n);                   \
            return;                                                                                      \
        }                                                                                                \
        F32_CTX_DECL(a);                                                                                 \
        for (int s = 0; s < RMSFUSE_MAX_SLOTS; s++)                                                      \
            a[s] = arrays[s];                                                                            \
        a[RMSFUSE_MAX_SLOTS] = (char *)(uintptr_t)n; /* the loop's end, for predicated ISAs (VLA) */     \
        switch (variant) {                                                                               \
            RMSFUSE_FOR_EACH_VARIANT(RMSFUSE_VARIANT_CASE_, r)                                           \
        default:                                                                                         \
            break;                                                                                       \
        }                                                                                                \
    }
RMSFUSE_RULES(RMSFUSE_DEFINE_KERNEL_)

#define RMSFUSE_KENTRY_(r) rmsfuse_##r##_kernel,
const rmsfuse_kernel *RMSFUSE_KTABLE(void)
{
    static const rmsfuse_kernel table[RMSFUSE_N_RULES] = {RMSFUSE_RULES(RMSFUSE_KENTRY_)};
    return table;
}

rmsfuse_block_sumsq_fn RMSFUSE_CAT(rmsfuse_block_sumsq_, RMSFUSE_ISA)(void)
{
    return block_sumsq;
}
#endif /* RMSFUSE_KPART_F32 */

/* ---- part 2: storage types (docs/math.md, "Storage types") ---------------- */
#if RMSFUSE_KPART_STORAGE
#include "storage.h"
#endif
#if RMSFUSE_KPART_STORAGE_OPS
const rmsfuse_storage_ops *RMSFUSE_CAT(rmsfuse_storage_ops_, RMSFUSE_ISA)(void)
{
    return storage_ops_active();
}
#endif /* RMSFUSE_KPART_STORAGE_OPS */

#endif /* RMSFUSE_ISA_OPS */

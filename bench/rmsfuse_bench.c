/*
 * rmsfuse benchmarks: every rule's flag sets x ISA path x working-set size,
 * each next to its same-traffic roofline and two plain-C peers, in one run.
 *
 *   <rule>/<flags>/<impl>/ws:<bytes>    one step of the rule over n elements
 *   floor/sqrt_div/<isa>                sqrt + div throughput on registers
 *   floor/sqrt_div_grouped/<isa>        the same, all sqrts then all divs
 *   threads/<rule>/<flags>/<impl>/t:<k>/ws:<bytes>
 *                                       the step on k cores: a plan run by
 *                                       rmsfuse_pool (pool) against the
 *                                       roofline on the same k workers
 *   multi/<rule>/<flags>/<impl>/tensors:<count>/n:<elems>
 *                                       many small tensors: one step_multi
 *                                       call, one step per tensor, one plan
 *                                       run again, a plan per step on the
 *                                       pool, and one step over a single
 *                                       flat array
 *   sparse/<rule>/<flags>/<impl>/zero:<pct>/ws:<bytes>
 *                                       the steady-state step when pct% of
 *                                       the gradient entries are exactly 0
 *                                       (after a warm-up that drives their
 *                                       state into the subnormal range):
 *                                       dispatched (the preset, with
 *                                       RMSFUSE_FLUSH_SUBNORMAL),
 *                                       dispatched_exact (the flag cleared:
 *                                       exact IEEE) and peer_native (the
 *                                       -O3 -march=native loop, exact IEEE)
 *   storage/<rule>/<flags>/<combo>/<impl>/ws:<bytes>
 *                                       a typed step (rmsfuse_<rule>_step_typed)
 *                                       with bf16/f16/8-bit arrays, combo
 *                                       p<type>_g<type>_s<type> (or "plain": the
 *                                       float32 step): dispatched and roofline
 *                                       (exactly its traffic, each array in its
 *                                       width) at the class sizes, every ISA at
 *                                       the largest, unfused there (float32
 *                                       copies, the float32 step, converted
 *                                       back), roofline_work there (the
 *                                       roofline with as much arithmetic as
 *                                       the step's own at the L2 size), and
 *                                       there on every core
 *                                       too: pool_t<k> (the typed plan on
 *                                       rmsfuse_pool) and roofline_t<k> (on
 *                                       the same k workers); <bytes>: the float32
 *                                       working set of the same n elements
 *                                       (see "storage types" below)
 *
 * <rule>/<flags>: the flag sets of flagsets.h (rmsprop/plain ...
 *          adam/amsgrad), each from its rule's PyTorch preset, lr 1e-4; the
 *          presets set RMSFUSE_FLUSH_SUBNORMAL, so every library path runs
 *          with it, as users get it.
 * <impl>:  every ISA of rmsfuse_isa_names() (forced with rmsfuse_set_isa),
 *          dispatched ("auto"), dispatched_exact ("auto" with the flag
 *          cleared: exact IEEE; at the class sizes only), roofline,
 *          peer_O2, peer_native (kernels.h; exact IEEE loops, no flush).
 * <bytes>: the working set, every array of the flag set counted once; the
 *          sizes are powers of two from 4 KiB to the DRAM class plus, from
 *          hwloc, half of L1d, L2 and L3 and 8 x L3 ("DRAM", at most 1/8 of
 *          the RAM), listed in the JSON context as size_classes_ws.
 *
 * Rates use the STREAM convention: bytes per element are the explicit reads
 * and writes of the arrays the flag set uses, derived from its
 * configuration (used_arrays): the gradient is read, param and every state
 * array used are read and written in place.  That gives RMSProp plain 20,
 * momentum 28, centered 28, centered + momentum 36; AdaGrad 20; SGD without
 * momentum 12, with momentum 20; Adam/AdamW 28, AMSGrad 36.  At start-up
 * the derivation is checked against the arrays the library's rule files
 * say each variant touches.  The thread is bound to the last core.
 *
 * Own options (before the --benchmark_* ones):
 *   --rmsfuse_rules=LIST   rules or flag sets, comma-separated
 *                          (adam,sgd/momentum); default all
 *   --rmsfuse_min_ws=SIZE --rmsfuse_max_ws=SIZE  bound the sizes (K/M/G suffixes)
 *   --rmsfuse_sweep=0      only the cache-class sizes
 *   --rmsfuse_l3=SIZE      the L3 size one core really has, where hwloc
 *                          reports another (a VM may show the whole socket's L3)
 *   --rmsfuse_progress=S   a progress line on stderr at most every S seconds
 *                          (default 15; 0: none)
 *   --rmsfuse_sparse=0     no sparse/... benchmarks
 *   --rmsfuse_storage=0    no storage/... benchmarks
 *   --rmsfuse_sparse_warmup=MIN[,MAX]  the sparse warm-up's masked steps:
 *                          at least MIN, then on to the fixed point, at most
 *                          MAX (default 12000,1000000; 200,200 for a smoke run)
 */
#define _POSIX_C_SOURCE 200809L

#include <float.h>
#include <hwloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flagsets.h"
#include "kernels.h"
#include "rmsfuse.h"
#include "rmsfuse_pool.h"
#include "shim.h"

/* ---- rules and flag sets ---------------------------------------------------- */
enum rule { R_rmsprop, R_adagrad, R_sgd, R_adam };

typedef union bench_config {
    rmsfuse_rmsprop_config rmsprop;
    rmsfuse_adagrad_config adagrad;
    rmsfuse_sgd_config sgd;
    rmsfuse_adam_config adam;
} bench_config;

/* Each rule's arrays, in the order of its step arguments (= slots). */
static const char *const SLOT_NAMES[][BENCH_SLOTS] = {
    [R_rmsprop] = {"param", "grad", "square_avg", "momentum_buf", "grad_avg"},
    [R_adagrad] = {"param", "grad", "sum"},
    [R_sgd] = {"param", "grad", "momentum_buf"},
    [R_adam] = {"param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
};
#define SLOT_PARAM 0
#define SLOT_GRAD  1

typedef struct flagset {
    enum rule rule;
    const char *rule_name, *name;
    char id[48];       /* "<rule>/<name>" */
    bench_config cfg;       /* as users get it: the preset's RMSFUSE_FLUSH_SUBNORMAL kept */
    bench_config cfg_exact; /* the same with RMSFUSE_FLUSH_SUBNORMAL cleared: exact IEEE */
    int flush;              /* cfg sets RMSFUSE_FLUSH_SUBNORMAL */
    unsigned used;     /* bit s: the flag set reads slot s (and writes it, except grad) */
    int narrays;       /* arrays used */
    int inplace[BENCH_SLOTS]; /* the slots read and written in place: param, then state */
    int ninplace;
    int stream_bytes;  /* 4 (grad) + 8 per in-place array */
    int divider;       /* one sqrt and one division per element */
    int refresh_slot;  /* zeroed every REFRESH_STEPS steps, or -1 (see refresh()) */
    peer_fn peer_o2, peer_native;
    int selected;
} flagset;

/* One function per flag set: its configuration (flagsets.h). */
#define FS_SETUP_(rule, name, config, variant)                                   \
    static void setup_##rule##_##name(bench_config *u)                           \
    {                                                                            \
        rmsfuse_##rule##_config c = rmsfuse_##rule##_pytorch(BENCH_LR);          \
        config u->rule = c;                                                      \
    }
BENCH_FLAGSETS(FS_SETUP_)

typedef struct flagset_def {
    enum rule rule;
    const char *rule_name, *name;
    void (*setup)(bench_config *);
} flagset_def;
#define FS_DEF_(rule, name, config, variant) {R_##rule, #rule, #name, setup_##rule##_##name},
static const flagset_def FS_DEFS[] = {BENCH_FLAGSETS(FS_DEF_)};
#define N_FLAGSETS (sizeof FS_DEFS / sizeof FS_DEFS[0])
static flagset FSETS[N_FLAGSETS];

/* The arrays a configuration uses, by the public contract of each rule's
 * step (include/rmsfuse_<rule>.h): param and grad always; RMSProp
 * square_avg, momentum_buf when momentum != 0, grad_avg when CENTERED;
 * AdaGrad sum; SGD momentum_buf when momentum != 0; Adam exp_avg and
 * exp_avg_sq, max_exp_avg_sq with AMSGRAD. */
static unsigned used_arrays(enum rule r, const bench_config *c)
{
    const unsigned pg = 1u << SLOT_PARAM | 1u << SLOT_GRAD;
    switch (r) {
    case R_rmsprop:
        return pg | 1u << 2 | (c->rmsprop.momentum != 0.0 ? 1u << 3 : 0u) |
               ((c->rmsprop.flags & RMSFUSE_CENTERED) ? 1u << 4 : 0u);
    case R_adagrad:
        return pg | 1u << 2;
    case R_sgd:
        return pg | (c->sgd.momentum != 0.0 ? 1u << 2 : 0u);
    case R_adam:
        return pg | 1u << 2 | 1u << 3 | ((c->adam.flags & RMSFUSE_AMSGRAD) ? 1u << 4 : 0u);
    }
    return pg;
}

/* The flags of a rule's configuration. */
static unsigned *flags_of(enum rule r, bench_config *c)
{
    switch (r) {
    case R_rmsprop:
        return &c->rmsprop.flags;
    case R_adagrad:
        return &c->adagrad.flags;
    case R_sgd:
        return &c->sgd.flags;
    case R_adam:
        return &c->adam.flags;
    }
    return &c->rmsprop.flags;
}

static void init_flagsets(void)
{
    for (size_t i = 0; i < N_FLAGSETS; i++) {
        flagset *f = &FSETS[i];
        const flagset_def *d = &FS_DEFS[i];
        memset(f, 0, sizeof *f);
        f->rule = d->rule;
        f->rule_name = d->rule_name;
        f->name = d->name;
        snprintf(f->id, sizeof f->id, "%s/%s", d->rule_name, d->name);
        d->setup(&f->cfg);
        f->cfg_exact = f->cfg;
        *flags_of(f->rule, &f->cfg_exact) &= ~RMSFUSE_FLUSH_SUBNORMAL;
        f->flush = (*flags_of(f->rule, &f->cfg) & RMSFUSE_FLUSH_SUBNORMAL) != 0;
        f->used = used_arrays(f->rule, &f->cfg);
        f->refresh_slot = -1;
        for (int s = 0; s < BENCH_SLOTS; s++) {
            if (!(f->used & (1u << s)))
                continue;
            f->narrays++;
            if (s != SLOT_GRAD)
                f->inplace[f->ninplace++] = s;
        }
        /* STREAM convention: the gradient read, each other array read and
         * written in place. */
        f->stream_bytes = 4 + 8 * f->ninplace;
        f->divider = f->rule != R_sgd; /* docs/math.md: SGD has no sqrt or division */
        if (f->rule == R_rmsprop && (f->cfg.rmsprop.flags & RMSFUSE_CENTERED))
            f->refresh_slot = 4; /* grad_avg */
        f->peer_o2 = peer_fns_o2[i];
        f->peer_native = peer_fns_native[i];
        f->selected = 1;
    }
}

/* What the flag set is, for the report: the configuration and arrays. */
static void describe(const flagset *f, char *buf, size_t size)
{
    const bench_config *c = &f->cfg;
    int k = 0;
    switch (f->rule) {
    case R_rmsprop:
        k = snprintf(buf, size, "lr %g, alpha %g, eps %g%s, momentum %g%s%s", c->rmsprop.lr, c->rmsprop.alpha,
                     c->rmsprop.eps, (c->rmsprop.flags & RMSFUSE_EPS_IN_SQRT) ? " (in the sqrt)" : "",
                     c->rmsprop.momentum, (c->rmsprop.flags & RMSFUSE_CENTERED) ? ", centered" : "",
                     (c->rmsprop.flags & RMSFUSE_NESTEROV) ? ", Nesterov" : "");
        break;
    case R_adagrad:
        k = snprintf(buf, size, "lr %g, lr_decay %g, eps %g%s", c->adagrad.lr, c->adagrad.lr_decay, c->adagrad.eps,
                     (c->adagrad.flags & RMSFUSE_EPS_IN_SQRT) ? " (in the sqrt)" : "");
        break;
    case R_sgd:
        k = snprintf(buf, size, "lr %g, momentum %g, dampening %g%s%s", c->sgd.lr, c->sgd.momentum,
                     c->sgd.dampening, (c->sgd.flags & RMSFUSE_NESTEROV) ? ", Nesterov" : "",
                     (c->sgd.flags & RMSFUSE_LR_IN_MOMENTUM) ? ", Keras velocity" : "");
        break;
    case R_adam:
        k = snprintf(buf, size, "lr %g, betas %g/%g, eps %g%s, step %lld%s%s", c->adam.lr, c->adam.beta1,
                     c->adam.beta2, c->adam.eps, (c->adam.flags & RMSFUSE_EPS_HAT) ? " (epsilon-hat)" : "",
                     c->adam.step, (c->adam.flags & RMSFUSE_AMSGRAD) ? ", AMSGrad" : "",
                     (c->adam.flags & RMSFUSE_DECOUPLED_DECAY) ? ", decoupled (AdamW)" : "");
        break;
    }
    double wd = f->rule == R_rmsprop ? c->rmsprop.weight_decay
                : f->rule == R_adagrad ? c->adagrad.weight_decay
                : f->rule == R_sgd ? c->sgd.weight_decay
                : c->adam.weight_decay;
    if (k >= 0 && (size_t)k < size)
        k += snprintf(buf + k, size - (size_t)k, ", weight_decay %g%s; arrays", wd,
                      f->flush ? ", RMSFUSE_FLUSH_SUBNORMAL (the preset's)" : ", exact IEEE (no flush)");
    for (int s = 0; s < BENCH_SLOTS && k >= 0 && (size_t)k < size; s++)
        if (f->used & (1u << s))
            k += snprintf(buf + k, size - (size_t)k, " %s", SLOT_NAMES[f->rule][s]);
    if (k >= 0 && (size_t)k < size)
        snprintf(buf + k, size - (size_t)k, "; %d B/elem", f->stream_bytes);
}

/* ---- the library, per rule ---------------------------------------------------- */
/* One step over n elements with configuration c (f->cfg or f->cfg_exact);
 * a[s] is slot s's array (NULL where unused). */
static inline int lib_step_cfg(const flagset *f, const bench_config *c, float *const *a, size_t n)
{
    switch (f->rule) {
    case R_rmsprop:
        return rmsfuse_rmsprop_step(&c->rmsprop, a[0], a[1], a[2], a[3], a[4], n);
    case R_adagrad:
        return rmsfuse_adagrad_step(&c->adagrad, a[0], a[1], a[2], n);
    case R_sgd:
        return rmsfuse_sgd_step(&c->sgd, a[0], a[1], a[2], n);
    case R_adam:
        return rmsfuse_adam_step(&c->adam, a[0], a[1], a[2], a[3], a[4], n);
    }
    return RMSFUSE_E_NULL_CONFIG;
}

/* One step of the flag set as users get it. */
static inline int lib_step(const flagset *f, float *const *a, size_t n)
{
    return lib_step_cfg(f, &f->cfg, a, n);
}

static float *at(float *x, size_t off)
{
    return x ? x + off : NULL;
}

/* count tensors of n elements, tensor i at element i * n of every array:
 * an array of the rule's tensor struct (free it). */
static void *make_tensors(const flagset *f, float *const *a, size_t n, size_t count)
{
    size_t size = f->rule == R_rmsprop ? sizeof(rmsfuse_tensor)
                  : f->rule == R_adagrad ? sizeof(rmsfuse_adagrad_tensor)
                  : f->rule == R_sgd ? sizeof(rmsfuse_sgd_tensor)
                  : sizeof(rmsfuse_adam_tensor);
    void *t = malloc(count * size);
    if (!t)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        float *x[BENCH_SLOTS];
        for (int s = 0; s < BENCH_SLOTS; s++)
            x[s] = at(a[s], i * n);
        switch (f->rule) {
        case R_rmsprop:
            ((rmsfuse_tensor *)t)[i] = (rmsfuse_tensor){x[0], x[1], x[2], x[3], x[4], n};
            break;
        case R_adagrad:
            ((rmsfuse_adagrad_tensor *)t)[i] = (rmsfuse_adagrad_tensor){x[0], x[1], x[2], n};
            break;
        case R_sgd:
            ((rmsfuse_sgd_tensor *)t)[i] = (rmsfuse_sgd_tensor){x[0], x[1], x[2], n};
            break;
        case R_adam:
            ((rmsfuse_adam_tensor *)t)[i] = (rmsfuse_adam_tensor){x[0], x[1], x[2], x[3], x[4], n};
            break;
        }
    }
    return t;
}

static inline int lib_step_multi(const flagset *f, const void *t, size_t count)
{
    const bench_config *c = &f->cfg;
    switch (f->rule) {
    case R_rmsprop:
        return rmsfuse_rmsprop_step_multi(&c->rmsprop, t, count);
    case R_adagrad:
        return rmsfuse_adagrad_step_multi(&c->adagrad, t, count);
    case R_sgd:
        return rmsfuse_sgd_step_multi(&c->sgd, t, count);
    case R_adam:
        return rmsfuse_adam_step_multi(&c->adam, t, count);
    }
    return RMSFUSE_E_NULL_CONFIG;
}

static inline int lib_step_ex(const flagset *f, const void *t, size_t count, const rmsfuse_grad_options *o)
{
    const bench_config *c = &f->cfg;
    switch (f->rule) {
    case R_rmsprop:
        return rmsfuse_rmsprop_step_ex(&c->rmsprop, t, count, o, NULL);
    case R_adagrad:
        return rmsfuse_adagrad_step_ex(&c->adagrad, t, count, o, NULL);
    case R_sgd:
        return rmsfuse_sgd_step_ex(&c->sgd, t, count, o, NULL);
    case R_adam:
        return rmsfuse_adam_step_ex(&c->adam, t, count, o, NULL);
    }
    return RMSFUSE_E_NULL_CONFIG;
}

static inline int lib_plan(const flagset *f, const void *t, size_t count, rmsfuse_plan **plan)
{
    const bench_config *c = &f->cfg;
    switch (f->rule) {
    case R_rmsprop:
        return rmsfuse_rmsprop_plan(&c->rmsprop, t, count, plan);
    case R_adagrad:
        return rmsfuse_adagrad_plan(&c->adagrad, t, count, plan);
    case R_sgd:
        return rmsfuse_sgd_plan(&c->sgd, t, count, plan);
    case R_adam:
        return rmsfuse_adam_plan(&c->adam, t, count, plan);
    }
    return RMSFUSE_E_NULL_CONFIG;
}

/* ---- the arrays ----------------------------------------------------------- */
/* One array per slot, allocated once for the largest case that uses the
 * slot and reused.  Each starts 2 MiB-aligned plus slot * 320 bytes, so the
 * arrays never share a 4 KiB page offset (no 4K aliasing between a store
 * stream and a load stream); every kernel measured gets the same layout. */
#define ARRAY_ALIGN   (2u << 20)
#define ARRAY_STAGGER 320u
static float *arrays[BENCH_SLOTS];
static size_t array_n[BENCH_SLOTS];

static int alloc_arrays(void)
{
    for (int s = 0; s < BENCH_SLOTS; s++) {
        if (!array_n[s])
            continue;
        void *mem = NULL;
        if (posix_memalign(&mem, ARRAY_ALIGN, array_n[s] * sizeof(float) + ARRAY_STAGGER * BENCH_SLOTS) != 0)
            return -1;
        arrays[s] = (float *)((char *)mem + ARRAY_STAGGER * (unsigned)s);
        memset(arrays[s], 0, array_n[s] * sizeof(float)); /* fault the pages in now */
    }
    return 0;
}

/* The arrays of flag set f (NULL for the slots it does not use). */
static void arrays_of(const flagset *f, float **a)
{
    for (int s = 0; s < BENCH_SLOTS; s++)
        a[s] = (f->used & (1u << s)) ? arrays[s] : NULL;
}

/* Fresh, well-scaled state: |g| in [0.1, 1) with mixed signs, param in
 * (-0.5, 0.5], the first state array (RMSProp's square average, AdaGrad's
 * sum, Adam's first moment, SGD's buffer) in [0.01, 0.26), the others zero;
 * no zeros in g, no subnormals or special values.  A pattern of
 * FILL_PERIOD elements, tiled. */
#define FILL_PERIOD 65536u
static float pattern[BENCH_SLOTS][FILL_PERIOD];

static void make_pattern(void)
{
    uint32_t x = 12345u;
    for (size_t i = 0; i < FILL_PERIOD; i++) {
        x = x * 1664525u + 1013904223u;
        float r = (float)(x >> 8) * (1.0f / 16777216.0f); /* [0, 1) */
        pattern[1][i] = (x & 1u) ? 0.1f + 0.9f * r : -0.1f - 0.9f * r;
        pattern[0][i] = 0.5f - r;
        pattern[2][i] = 0.25f * r + 0.01f;
        for (int s = 3; s < BENCH_SLOTS; s++)
            pattern[s][i] = 0.0f;
    }
}

static void fill_slots(float *const *a, size_t n)
{
    for (int s = 0; s < BENCH_SLOTS; s++)
        if (a[s])
            for (size_t i = 0; i < n; i += FILL_PERIOD)
                memcpy(a[s] + i, pattern[s], (n - i < FILL_PERIOD ? n - i : FILL_PERIOD) * sizeof(float));
}

/* A benchmark's state is filled fresh when another benchmark ran since it
 * last did (its calls follow each other while Google Benchmark sizes the
 * iteration count, and then carry on from the same state). */
static const void *filled_by;
static uint32_t steps_since_fill;

static void fresh_state(const void *bc, float *const *a, size_t n)
{
    if (filled_by == bc)
        return;
    fill_slots(a, n);
    filled_by = bc;
    steps_since_fill = 0;
}

/* The gradient never changes between steps, so in RMSProp's centred flag
 * sets the variance estimate v - ga * ga decays to rounding noise within
 * ~1000 steps and its sqrt turns NaN, which real training never sees (and
 * which slows scalar sqrt down).  Every implementation therefore zeroes
 * grad_avg every REFRESH_STEPS steps inside its timed loop: a write of 4n
 * bytes per REFRESH_STEPS * (28 or 36)n bytes of traffic (< 0.1%, not
 * counted). */
#define REFRESH_STEPS 256u
static inline void refresh(const flagset *f, float *const *a, size_t n)
{
    if (++steps_since_fill % REFRESH_STEPS == 0 && f->refresh_slot >= 0)
        memset(a[f->refresh_slot], 0, n * sizeof(float));
}

/* ---- the benchmarks ------------------------------------------------------- */
enum kind { K_ISA, K_DISPATCHED, K_DISPATCHED_EXACT, K_ROOFLINE, K_PEER_O2, K_PEER_NATIVE, K_FLOOR, K_POOL,
            K_POOL_ROOFLINE, K_SPARSE, K_SPARSE_PEER, K_STORAGE, K_STORAGE_ROOFLINE, K_STORAGE_UNFUSED, K_STORAGE_POOL,
            K_STORAGE_POOL_ROOFLINE, K_STORAGE_WORK, K_MULTI, K_MULTI_LOOP, K_MULTI_PLAN, K_MULTI_POOL, K_MULTI_FLAT,
            K_TRAIN_SCALE, K_TRAIN_NORM };

typedef struct bench_case {
    enum kind kind;
    const char *isa; /* K_ISA, K_FLOOR */
    const flagset *fs;
    size_t n;
    size_t ws;    /* bytes actually touched: narrays * 4 * n */
    int threads;  /* K_POOL*, K_MULTI_POOL: workers */
    size_t count; /* K_MULTI*: tensors of n elements each; K_FLOOR: 1 = grouped order,
                   * 2, 3 = Newton's denominators, eps inside / outside (bench/floor.c) */
    size_t fsi;   /* K_SPARSE*: the flag set's index, the zero share's index, */
    size_t zi;    /* and whether the library runs it with the flag cleared */
    int exact;    /* (K_SPARSE_PEER: always) */
    int combo;    /* K_STORAGE*: index into COMBOS, or -1: the float32 step (the plain API) */
    size_t cal_n; /* K_STORAGE_WORK: the elements at the L2 size, where its work is found */
} bench_case;

static void set_rates(rmsfuse_bench_state *st, const bench_case *bc, size_t elems)
{
    const int64_t it = rmsfuse_bench_iterations(st);
    rmsfuse_bench_set_bytes_processed(st, it * (int64_t)elems * bc->fs->stream_bytes);
    rmsfuse_bench_set_items_processed(st, it * (int64_t)elems);
    rmsfuse_bench_set_counter(st, "n", (double)bc->n, 0);
    rmsfuse_bench_set_counter(st, "stream_bytes_per_elem", (double)bc->fs->stream_bytes, 0);
    rmsfuse_bench_set_counter(st, "sqrt_div_per_elem", bc->fs->divider ? 1.0 : 0.0, 0);
}

static void bench_step(rmsfuse_bench_state *st, void *arg)
{
    const bench_case *bc = arg;
    const flagset *f = bc->fs;
    const size_t n = bc->n;
    float *a[BENCH_SLOTS];
    char msg[160];
    arrays_of(f, a);

    if (bc->kind == K_ISA || bc->kind == K_DISPATCHED || bc->kind == K_DISPATCHED_EXACT) {
        const char *isa = bc->kind == K_ISA ? bc->isa : "auto";
        const bench_config *cfg = bc->kind == K_DISPATCHED_EXACT ? &f->cfg_exact : &f->cfg;
        int s = rmsfuse_set_isa(isa);
        if (s != RMSFUSE_OK) {
            snprintf(msg, sizeof msg, "%s: %s", isa, rmsfuse_strerror(s));
            rmsfuse_bench_skip(st, msg);
            return;
        }
        fresh_state(bc, a, n);
        s = lib_step_cfg(f, cfg, a, n); /* warm-up, and check */
        if (s != RMSFUSE_OK) {
            snprintf(msg, sizeof msg, "rmsfuse_%s_step: %s", f->rule_name, rmsfuse_strerror(s));
            rmsfuse_bench_skip(st, msg);
            rmsfuse_set_isa("auto");
            return;
        }
        snprintf(msg, sizeof msg, "isa=%s%s", rmsfuse_active_isa(),
                 bc->kind == K_DISPATCHED_EXACT ? ", exact IEEE" : "");
        rmsfuse_bench_set_label(st, msg);
        while (rmsfuse_bench_keep_running(st)) {
            lib_step_cfg(f, cfg, a, n);
            refresh(f, a, n);
        }
        rmsfuse_set_isa("auto");
    } else if (bc->kind == K_ROOFLINE) {
        float *x[BENCH_SLOTS];
        for (int j = 0; j < f->ninplace; j++)
            x[j] = a[f->inplace[j]];
        const roofline_fn fn = roofline_kernel(f->ninplace);
        fresh_state(bc, a, n);
        fn(a[SLOT_GRAD], x, n); /* warm-up */
        while (rmsfuse_bench_keep_running(st)) {
            fn(a[SLOT_GRAD], x, n);
            refresh(f, a, n);
        }
    } else {
        const peer_fn fn = bc->kind == K_PEER_O2 ? f->peer_o2 : f->peer_native;
        fresh_state(bc, a, n);
        fn(&f->cfg, a, n); /* warm-up */
        while (rmsfuse_bench_keep_running(st)) {
            fn(&f->cfg, a, n);
            refresh(f, a, n);
        }
    }
    rmsfuse_bench_clobber_memory();
    set_rates(st, bc, n);
    rmsfuse_bench_set_counter(st, "ws_bytes", (double)bc->ws, 0);
}

/* ---- sparse gradients: the steady state with zero gradients --------------- */
/* When an element's gradient is exactly 0 step after step, its decaying
 * state (RMSProp's square average and momentum buffer, Adam's moments,
 * SGD's buffer) shrinks into the subnormal range and sticks there
 * (0.99 x the smallest subnormal rounds back to it), where most CPUs
 * compute many times slower; RMSFUSE_FLUSH_SUBNORMAL makes it 0 instead
 * (docs/math.md).  One flag set per rule (AdaGrad's sum does not decay: it
 * is there for completeness), a share of the gradient entries set to 0 by a
 * fixed pseudo-random mask, and the step timed once that state is reached.
 *
 * The warm-up (sparse_state) is the issue's recipe, on SPARSE_TILE
 * elements: the fill pattern's state, SPARSE_DENSE_STEPS steps with the
 * whole gradient, then steps with the masked one, at least
 * sparse_min_steps of them (the issue's 12,000) and on (at most
 * sparse_max_steps) until a step leaves
 * the state of every masked element unchanged: with g = 0 and no weight
 * decay an element's state update depends on its state alone, so that is a
 * fixed point, the steady state (a stuck subnormal, or 0 with the flush).
 * RMSProp reaches it in ~10,000 masked steps, Adam's exp_avg_sq (beta2
 * 0.999) only after ~95,000: at 12,000 steps it is still ~1e-7.
 * Larger sizes tile that state: gradient, mask and fill repeat every
 * SPARSE_TILE elements and each element's update depends only on its own
 * values (with the same bits on every path), so the tiled state is bit for
 * bit what the recipe would give at that size, at 1/(n / SPARSE_TILE) of
 * its cost.  The library runs its warm-up in the mode it is timed in; the
 * peer starts from the exact warm-up (check_peers: it computes the bits of
 * the exact configuration, subnormals included). */
static const char *const SPARSE_FLAGSETS[] = {"rmsprop/momentum", "adam/torch", "sgd/momentum", "adagrad/torch"};
static const int SPARSE_ZERO_PCT[] = {0, 10, 50, 90};
#define N_SPARSE_PCT       (sizeof SPARSE_ZERO_PCT / sizeof SPARSE_ZERO_PCT[0])
#define SPARSE_TILE        8192u /* the in-cache size (the issue's), and the period of the state */
#define SPARSE_DENSE_STEPS 100u
#define SPARSE_CHECK_EVERY 1000u
static unsigned sparse_min_steps = 12000u, sparse_max_steps = 1000000u; /* --rmsfuse_sparse_warmup */

/* Whether element i's gradient is 0 at a share of pct percent: a hash of
 * i mod SPARSE_TILE against the share, so the masks are nested (the 10%
 * one is part of the 50% one, which is part of the 90% one). */
static int sparse_masked(size_t i, int pct)
{
    uint32_t x = (uint32_t)(i % SPARSE_TILE) + 0x9e3779b9u;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return (uint64_t)x * 100u < ((uint64_t)(unsigned)pct << 32);
}

typedef struct sparse_snap {
    int done;                 /* 1: computed, -1: failed */
    float *tile[BENCH_SLOTS]; /* the state after the warm-up, SPARSE_TILE floats per used slot */
    unsigned steps;           /* masked steps of the warm-up */
    int fixed_point;          /* it reached the fixed point (else it stopped at sparse_max_steps) */
    double zero_share;        /* gradient entries that are 0 */
    double subnormal_share;   /* elements with a subnormal state value after the warm-up */
    double seconds;           /* the warm-up's time */
} sparse_snap;
static sparse_snap sparse_snaps[N_FLAGSETS][N_SPARSE_PCT][2]; /* [flag set][share][exact] */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int is_subnormal(float x)
{
    return x != 0.0f && fabsf(x) < FLT_MIN;
}

/* The state slots of flag set f: the used ones besides param and grad. */
static int is_state_slot(const flagset *f, int s)
{
    return s != SLOT_PARAM && s != SLOT_GRAD && (f->used & (1u << s));
}

/* The state after flag set fsi's warm-up at share SPARSE_ZERO_PCT[zi], in
 * the exact or the flush mode; computed on first use (only the benchmarks
 * that run pay for it), NULL when the library refused the step. */
static const sparse_snap *sparse_state(size_t fsi, size_t zi, int exact)
{
    sparse_snap *S = &sparse_snaps[fsi][zi][exact];
    if (S->done)
        return S->done > 0 ? S : NULL;
    S->done = -1;
    const flagset *f = &FSETS[fsi];
    const bench_config *cfg = exact ? &f->cfg_exact : &f->cfg;
    const int pct = SPARSE_ZERO_PCT[zi];
    float *a[BENCH_SLOTS] = {NULL}, *prev[BENCH_SLOTS] = {NULL};
    for (int s = 0; s < BENCH_SLOTS; s++) {
        if (!(f->used & (1u << s)))
            continue;
        a[s] = malloc(SPARSE_TILE * sizeof(float));
        prev[s] = malloc(SPARSE_TILE * sizeof(float));
        if (!a[s] || !prev[s])
            return NULL;
        memcpy(a[s], pattern[s], SPARSE_TILE * sizeof(float));
    }
    const double t0 = now_s();
    rmsfuse_set_isa("auto");
    for (unsigned k = 0; k < SPARSE_DENSE_STEPS; k++)
        if (lib_step_cfg(f, cfg, a, SPARSE_TILE) != RMSFUSE_OK)
            return NULL;
    size_t zeros = 0;
    for (size_t i = 0; i < SPARSE_TILE; i++)
        if (sparse_masked(i, pct)) {
            a[SLOT_GRAD][i] = 0.0f;
            zeros++;
        }
    for (S->steps = 0; S->steps < sparse_max_steps;) {
        if (S->steps >= sparse_min_steps && (S->steps - sparse_min_steps) % SPARSE_CHECK_EVERY == 0) {
            for (int s = 0; s < BENCH_SLOTS; s++)
                if (is_state_slot(f, s))
                    memcpy(prev[s], a[s], SPARSE_TILE * sizeof(float));
            lib_step_cfg(f, cfg, a, SPARSE_TILE);
            S->steps++;
            int same = 1;
            for (int s = 0; s < BENCH_SLOTS && same; s++)
                if (is_state_slot(f, s))
                    for (size_t i = 0; i < SPARSE_TILE && same; i++)
                        same = !sparse_masked(i, pct) || !memcmp(&a[s][i], &prev[s][i], sizeof(float));
            if (same) {
                S->fixed_point = 1;
                break;
            }
            continue;
        }
        lib_step_cfg(f, cfg, a, SPARSE_TILE);
        S->steps++;
    }
    S->seconds = now_s() - t0;
    size_t sub = 0;
    for (size_t i = 0; i < SPARSE_TILE; i++) {
        int any = 0;
        for (int s = 0; s < BENCH_SLOTS; s++)
            any |= is_state_slot(f, s) && is_subnormal(a[s][i]);
        sub += (size_t)any;
    }
    S->zero_share = (double)zeros / SPARSE_TILE;
    S->subnormal_share = (double)sub / SPARSE_TILE;
    for (int s = 0; s < BENCH_SLOTS; s++) {
        S->tile[s] = a[s];
        free(prev[s]);
    }
    S->done = 1;
    return S;
}

/* The steady-state step: the warm-up's state tiled into the arrays
 * whenever another benchmark ran since this one last did (its calls carry
 * on from the same state), then the step with the masked gradient. */
static void bench_sparse(rmsfuse_bench_state *st, void *arg)
{
    const bench_case *bc = arg;
    const flagset *f = bc->fs;
    const size_t n = bc->n;
    float *a[BENCH_SLOTS];
    char msg[160];
    arrays_of(f, a);
    rmsfuse_set_isa("auto");
    const sparse_snap *S = sparse_state(bc->fsi, bc->zi, bc->exact);
    if (!S) {
        snprintf(msg, sizeof msg, "rmsfuse_%s_step refused the warm-up's step", f->rule_name);
        rmsfuse_bench_skip(st, msg);
        return;
    }
    if (filled_by != bc) {
        for (int s = 0; s < BENCH_SLOTS; s++)
            if (a[s])
                for (size_t i = 0; i < n; i += SPARSE_TILE)
                    memcpy(a[s] + i, S->tile[s], (n - i < SPARSE_TILE ? n - i : SPARSE_TILE) * sizeof(float));
        filled_by = bc;
        steps_since_fill = 0;
    }
    if (bc->kind == K_SPARSE) {
        const bench_config *cfg = bc->exact ? &f->cfg_exact : &f->cfg;
        int s = lib_step_cfg(f, cfg, a, n); /* warm-up, and check */
        if (s != RMSFUSE_OK) {
            snprintf(msg, sizeof msg, "rmsfuse_%s_step: %s", f->rule_name, rmsfuse_strerror(s));
            rmsfuse_bench_skip(st, msg);
            return;
        }
        snprintf(msg, sizeof msg, "isa=%s, %s", rmsfuse_active_isa(), bc->exact ? "exact IEEE" : "flush");
        rmsfuse_bench_set_label(st, msg);
        while (rmsfuse_bench_keep_running(st))
            lib_step_cfg(f, cfg, a, n);
    } else {
        f->peer_native(&f->cfg, a, n); /* warm-up */
        rmsfuse_bench_set_label(st, "-O3 -march=native loop, exact IEEE");
        while (rmsfuse_bench_keep_running(st))
            f->peer_native(&f->cfg, a, n);
    }
    rmsfuse_bench_clobber_memory();
    set_rates(st, bc, n);
    rmsfuse_bench_set_counter(st, "ws_bytes", (double)bc->ws, 0);
    rmsfuse_bench_set_counter(st, "zero_share", S->zero_share, 0);
    rmsfuse_bench_set_counter(st, "subnormal_share", S->subnormal_share, 0);
    rmsfuse_bench_set_counter(st, "warmup_steps", (double)(SPARSE_DENSE_STEPS + S->steps), 0);
    rmsfuse_bench_set_counter(st, "warmup_fixed_point", S->fixed_point, 0);
    rmsfuse_bench_set_counter(st, "warmup_seconds", S->seconds, 0);
    rmsfuse_bench_set_counter(st, "flush", bc->exact ? 0.0 : 1.0, 0);
}

/* ---- storage types: typed steps against their own roofline and float32 ------ */
/* A step over arrays stored in narrower types (rmsfuse_<rule>_step_typed;
 * docs/math.md, "Storage types") for a few flag sets and storage
 * combinations, each against a roofline of exactly its traffic and against
 * the float32 step, at the cache-class sizes:
 *
 *   storage/<rule>/<flags>/<combo>/<impl>/ws:<bytes>
 *
 * <combo> is p<type>_g<type>_s<type> (param, gradient, every state array;
 * "m": with a float32 master copy, RMSFUSE_MASTER_WEIGHTS; "sr": stochastic
 * rounding of the param; "split": RMSFUSE_SPLIT_BF16), or "plain": the
 * float32 step of the plain API (rmsfuse_<rule>_step), the reference.
 * <impl>: dispatched and roofline at every class size; every ISA at the
 * largest class size run (DRAM, unless --rmsfuse_max_ws caps it), and there
 * unfused (unfused_step: converted to float32 copies, the float32 step,
 * converted back; the same bits in three passes: what the typed step saves),
 * roofline_work (the roofline with as much arithmetic as the step's own at
 * the L2 size, find_work: what one core gives for that traffic and that
 * arithmetic together) and, on all k cores where there are several: pool_t<k>, the typed plan run by
 * rmsfuse_pool_run_plan (made per step, as threads/... does), and
 * roofline_t<k>, the same streams run by the same k workers over the same
 * split (the memory system shared by k cores is the limit users meet when
 * they run the step on every core).
 * <bytes>: the class size, the float32 working set of the flag set's
 * arrays: every combination of a flag set runs over the same n elements
 * (the same model), so their rates compare as they would for one model;
 * the combination's own bytes are the counter ws_bytes.
 *
 * Traffic (STREAM convention, per element): the gradient read (4 or 2);
 * a param of 4 or 2 bytes read and written; a split bf16 param both its
 * halves read and written (2 x (2 + 2)); a bf16 or f16 param with master
 * weights written only (2: the step does not read its old value) and its
 * float32 master read and written (8); each state array read and written
 * (float32 8, bf16 4, 8-bit 2) and an 8-bit one's block scale read and
 * written once per 256 elements (8 / 256).  The roofline
 * (bench/roofline.c, roofline_mixed) moves exactly those streams, each in
 * its own width; its bytes per element are the rate's. */
static const char *const STORAGE_FLAGSETS[] = {"rmsprop/plain", "rmsprop/momentum", "adagrad/torch", "adam/adamw", "sgd/momentum"};

typedef struct storage_combo {
    const char *name;
    unsigned param, grad, state, flags;
} storage_combo;
static const storage_combo COMBOS[] = {
    {"pf32_gf32_sf32", RMSFUSE_F32, RMSFUSE_F32, RMSFUSE_F32, 0u},
    {"pf32_gbf16_sf32", RMSFUSE_F32, RMSFUSE_BF16, RMSFUSE_F32, 0u},
    {"pbf16m_gbf16_sf32", RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_F32, RMSFUSE_MASTER_WEIGHTS},
    {"psplit_gbf16_sf32", RMSFUSE_SPLIT_BF16, RMSFUSE_BF16, RMSFUSE_F32, 0u},
    {"pbf16sr_gbf16_sf32", RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_F32, RMSFUSE_STOCHASTIC_ROUNDING},
    {"pf32_gf32_sq8", RMSFUSE_F32, RMSFUSE_F32, RMSFUSE_Q8, 0u},
    {"pbf16_gbf16_sbf16", RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_BF16, 0u},
    {"pbf16sr_gbf16_sbf16", RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_STOCHASTIC_ROUNDING},
    {"pf16_gf16_sbf16", RMSFUSE_F16, RMSFUSE_F16, RMSFUSE_BF16, 0u},
    {"pbf16_gbf16_sq8", RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_Q8, 0u},
    {"pbf16_gbf16_sq8lin", RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_Q8_LINEAR, 0u},
    {"pbf16sr_gbf16_sq8", RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_Q8, RMSFUSE_STOCHASTIC_ROUNDING},
};
#define N_COMBOS (sizeof COMBOS / sizeof COMBOS[0])

static const char *type_name(unsigned t)
{
    static const char *const names[] = {"f32", "bf16", "f16", "split bf16", "q8", "q8 linear"};
    return t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static size_t type_bytes(unsigned t)
{
    return t == RMSFUSE_F32 ? 4u : t == RMSFUSE_Q8 || t == RMSFUSE_Q8_LINEAR ? 1u : 2u;
}

static int type_is_q8(unsigned t)
{
    return t == RMSFUSE_Q8 || t == RMSFUSE_Q8_LINEAR;
}

/* The state slots whose values are never negative: the unsigned 8-bit map
 * (rmsfuse_common.h): RMSProp's square_avg, AdaGrad's sum, Adam's
 * exp_avg_sq and max_exp_avg_sq. */
static unsigned nonneg_slots(enum rule r)
{
    return r == R_rmsprop || r == R_adagrad ? 1u << 2 : r == R_adam ? 1u << 3 | 1u << 4 : 0u;
}

static int is_storage_flagset(const flagset *f)
{
    for (size_t j = 0; j < sizeof STORAGE_FLAGSETS / sizeof STORAGE_FLAGSETS[0]; j++)
        if (!strcmp(f->id, STORAGE_FLAGSETS[j]))
            return 1;
    return 0;
}

/* The arrays of a typed step besides the slot arrays (which hold each
 * slot's elements in its type): the param's extra array (master or trail)
 * and the 8-bit state's block scales, allocated like the slot arrays. */
static char *extra_array;
static size_t extra_n; /* elements (4 bytes each at most) */
static float *scale_arrays[BENCH_SLOTS];

static void need_storage(size_t n)
{
    if (extra_n < n)
        extra_n = n;
}

static int alloc_storage_arrays(void)
{
    if (!extra_n)
        return 0;
    void *mem = NULL;
    if (posix_memalign(&mem, ARRAY_ALIGN, extra_n * sizeof(float) + ARRAY_STAGGER * (BENCH_SLOTS + 1)) != 0)
        return -1;
    extra_array = (char *)mem + ARRAY_STAGGER * BENCH_SLOTS;
    memset(extra_array, 0, extra_n * sizeof(float));
    const size_t blocks = extra_n / RMSFUSE_Q8_BLOCK + 1;
    for (int s = 2; s < BENCH_SLOTS; s++)
        if (!(scale_arrays[s] = calloc(blocks, sizeof(float))))
            return -1;
    return 0;
}

/* The typed tensor of flag set f in combination c over n elements of
 * the slot arrays a[], the param's extra array and the state's block
 * scales scale[] (each slot's). */
static rmsfuse_typed_tensor typed_tensor_at(const flagset *f, const storage_combo *c, size_t n, void *const *a,
                                            void *extra, float *const *scale)
{
    rmsfuse_typed_tensor t;
    memset(&t, 0, sizeof t);
    t.param = a[SLOT_PARAM];
    t.grad = a[SLOT_GRAD];
    if (c->param == RMSFUSE_SPLIT_BF16 || (c->flags & RMSFUSE_MASTER_WEIGHTS))
        t.param_extra = extra;
    for (int s = 2; s < BENCH_SLOTS; s++)
        if (f->used & (1u << s)) {
            t.state[s - 2] = a[s];
            t.scale[s - 2] = type_is_q8(c->state) ? scale[s] : NULL;
        }
    t.n = n;
    return t;
}

/* The typed tensor of flag set f in combination c over n elements of the
 * benchmark's arrays. */
static rmsfuse_typed_tensor typed_tensor(const flagset *f, const storage_combo *c, size_t n)
{
    void *a[BENCH_SLOTS];
    for (int s = 0; s < BENCH_SLOTS; s++)
        a[s] = arrays[s];
    return typed_tensor_at(f, c, n, a, extra_array, scale_arrays);
}

/* The streams of flag set f's typed step in combination c (the traffic
 * above); returns how many. */
static int combo_streams(const flagset *f, const storage_combo *c, roofline_stream *st)
{
    int k = 0;
    st[k++] = (roofline_stream){arrays[SLOT_GRAD], (int)type_bytes(c->grad), ROOF_READ, 1u};
    if (c->param == RMSFUSE_SPLIT_BF16) {
        st[k++] = (roofline_stream){arrays[SLOT_PARAM], 2, ROOF_RW, 1u};
        st[k++] = (roofline_stream){extra_array, 2, ROOF_RW, 1u};
    } else if (c->flags & RMSFUSE_MASTER_WEIGHTS) {
        st[k++] = (roofline_stream){arrays[SLOT_PARAM], (int)type_bytes(c->param), ROOF_WRITE, 1u};
        st[k++] = (roofline_stream){extra_array, 4, ROOF_RW, 1u};
    } else {
        st[k++] = (roofline_stream){arrays[SLOT_PARAM], (int)type_bytes(c->param), ROOF_RW, 1u};
    }
    for (int s = 2; s < BENCH_SLOTS; s++)
        if (f->used & (1u << s)) {
            st[k++] = (roofline_stream){arrays[s], (int)type_bytes(c->state), ROOF_RW, 1u};
            if (type_is_q8(c->state))
                st[k++] = (roofline_stream){scale_arrays[s], 4, ROOF_RW, RMSFUSE_Q8_BLOCK};
        }
    return k;
}

/* STREAM bytes per element of f in combination c (NULL: float32, plain). */
static double combo_stream_bytes(const flagset *f, const storage_combo *c)
{
    if (!c)
        return f->stream_bytes;
    roofline_stream st[ROOFLINE_MAX_STREAMS];
    return roofline_stream_bytes(st, combo_streams(f, c, st));
}

/* Memory per parameter: what the model holds as its param (a split
 * param's bf16 half), the optimizer's extra copy (master or trail), the
 * gradient and the state arrays (8-bit: 1 byte and a scale per 256). */
typedef struct combo_memory {
    double param, extra, grad, state;
} combo_memory;

static combo_memory combo_memory_of(const flagset *f, const storage_combo *c)
{
    const unsigned p = c ? c->param : RMSFUSE_F32, g = c ? c->grad : RMSFUSE_F32, sv = c ? c->state : RMSFUSE_F32;
    combo_memory m = {(double)type_bytes(p), 0.0, (double)type_bytes(g), 0.0};
    if (p == RMSFUSE_SPLIT_BF16)
        m.extra = 2.0;
    else if (c && (c->flags & RMSFUSE_MASTER_WEIGHTS))
        m.extra = 4.0;
    for (int s = 2; s < BENCH_SLOTS; s++)
        if (f->used & (1u << s))
            m.state += (double)type_bytes(sv) + (type_is_q8(sv) ? 4.0 / RMSFUSE_Q8_BLOCK : 0.0);
    return m;
}

/* The storage type of slot s in combination c. */
static unsigned slot_type(const storage_combo *c, int s)
{
    return s == SLOT_PARAM ? c->param : s == SLOT_GRAD ? c->grad : c->state;
}

/* Each slot's array of typed tensor t, in slot order (NULL where unused). */
static void typed_slots(const rmsfuse_typed_tensor *t, char **a)
{
    a[SLOT_PARAM] = (char *)t->param;
    a[SLOT_GRAD] = (char *)t->grad;
    for (int s = 2; s < BENCH_SLOTS; s++)
        a[s] = (char *)t->state[s - 2];
}

/* The fill pattern in every array of typed tensor t of flag set f in
 * combination c (each value rounded to its type: the library's own
 * conversions). */
static void fill_typed(const flagset *f, const storage_combo *c, const rmsfuse_typed_tensor *t)
{
    const unsigned nonneg = nonneg_slots(f->rule);
    char *dsts[BENCH_SLOTS];
    typed_slots(t, dsts);
    for (size_t i = 0; i < t->n; i += FILL_PERIOD) {
        const size_t m = t->n - i < FILL_PERIOD ? t->n - i : FILL_PERIOD; /* i: a multiple of the 8-bit block */
        for (int s = 0; s < BENCH_SLOTS; s++) {
            if (!dsts[s])
                continue;
            const unsigned ty = slot_type(c, s);
            char *dst = dsts[s] + i * type_bytes(ty);
            char *const extra = t->param_extra;
            if (s == SLOT_PARAM && ty == RMSFUSE_SPLIT_BF16) {
                for (size_t j = 0; j < m; j++) {
                    uint32_t u;
                    memcpy(&u, &pattern[s][j], sizeof u);
                    const uint16_t hi = (uint16_t)(u >> 16), lo = (uint16_t)u;
                    memcpy(dst + 2 * j, &hi, 2);
                    memcpy(extra + 2 * (i + j), &lo, 2);
                }
                continue;
            }
            if (s == SLOT_PARAM && (c->flags & RMSFUSE_MASTER_WEIGHTS))
                memcpy(extra + 4 * i, pattern[s], m * sizeof(float));
            if (ty == RMSFUSE_F32)
                memcpy(dst, pattern[s], m * sizeof(float));
            else
                rmsfuse_convert_from_f32(ty, (nonneg >> s) & 1u, pattern[s], dst,
                                         type_is_q8(ty) ? t->scale[s - 2] + i / RMSFUSE_Q8_BLOCK : NULL, m);
        }
    }
}

/* The fill pattern in every array of the combination, when another
 * benchmark ran since this one last filled. */
static void storage_fill(const bench_case *bc, const flagset *f, const storage_combo *c, size_t n)
{
    if (filled_by == bc)
        return;
    filled_by = bc;
    steps_since_fill = 0;
    if (!c) {
        float *a[BENCH_SLOTS];
        arrays_of(f, a);
        fill_slots(a, n);
        return;
    }
    const rmsfuse_typed_tensor t = typed_tensor(f, c, n);
    fill_typed(f, c, &t);
}

static inline int lib_step_typed(const flagset *f, const rmsfuse_storage *st, const rmsfuse_typed_tensor *t)
{
    const bench_config *c = &f->cfg;
    switch (f->rule) {
    case R_rmsprop:
        return rmsfuse_rmsprop_step_typed(&c->rmsprop, st, t, 1, NULL, NULL);
    case R_adagrad:
        return rmsfuse_adagrad_step_typed(&c->adagrad, st, t, 1, NULL, NULL);
    case R_sgd:
        return rmsfuse_sgd_step_typed(&c->sgd, st, t, 1, NULL, NULL);
    case R_adam:
        return rmsfuse_adam_step_typed(&c->adam, st, t, 1, NULL, NULL);
    }
    return RMSFUSE_E_NULL_CONFIG;
}

static inline int lib_plan_typed(const flagset *f, const rmsfuse_storage *st, const rmsfuse_typed_tensor *t,
                                 rmsfuse_plan **plan)
{
    const bench_config *c = &f->cfg;
    switch (f->rule) {
    case R_rmsprop:
        return rmsfuse_rmsprop_plan_typed(&c->rmsprop, st, t, 1, plan);
    case R_adagrad:
        return rmsfuse_adagrad_plan_typed(&c->adagrad, st, t, 1, plan);
    case R_sgd:
        return rmsfuse_sgd_plan_typed(&c->sgd, st, t, 1, plan);
    case R_adam:
        return rmsfuse_adam_plan_typed(&c->adam, st, t, 1, plan);
    }
    return RMSFUSE_E_NULL_CONFIG;
}

/* The unfused step, what a framework without typed steps does: every
 * array not in float32 converted into a float32 copy of the whole tensor
 * (rmsfuse_convert_to_f32; a split param's halves joined), the float32 step
 * (rmsfuse_<rule>_step) over the copies (over the master itself where there
 * is one), and what it wrote converted back (rmsfuse_convert_from_f32: the
 * param from its master, the state with new block scales).  bitsandbytes'
 * CPU path for 8-bit state works this way, as does a float32 master copy
 * cast to bf16 after the step.  Three passes over memory where the typed
 * step makes one, with the same bits (check_unfused); w: a float32 array
 * of t->n elements per slot.  Round to nearest even only (the conversion
 * calls have no stochastic rounding); a split param's casts are
 * bench/roofline.c's, vectorised for this CPU. */
static int unfused_step(const flagset *f, const storage_combo *c, const rmsfuse_typed_tensor *t, float *const *w)
{
    const unsigned nonneg = nonneg_slots(f->rule);
    const size_t n = t->n;
    char *src[BENCH_SLOTS];
    typed_slots(t, src);
    const int master = (c->flags & RMSFUSE_MASTER_WEIGHTS) != 0;
    float *x[BENCH_SLOTS];
    int rc = RMSFUSE_OK;
    for (int s = 0; s < BENCH_SLOTS; s++) {
        const unsigned ty = slot_type(c, s);
        x[s] = w[s];
        if (!src[s])
            x[s] = NULL;
        else if (s == SLOT_PARAM && master)
            x[s] = (float *)t->param_extra;
        else if (ty == RMSFUSE_F32)
            x[s] = (float *)src[s];
        else if (ty == RMSFUSE_SPLIT_BF16)
            split_join((const uint16_t *)(void *)src[s], (const uint16_t *)t->param_extra, (uint32_t *)(void *)w[s], n);
        else if (rc == RMSFUSE_OK)
            rc = rmsfuse_convert_to_f32(ty, (nonneg >> s) & 1u, src[s], s >= 2 ? t->scale[s - 2] : NULL, w[s], n);
    }
    if (rc == RMSFUSE_OK)
        rc = lib_step(f, x, n);
    for (int s = 0; s < BENCH_SLOTS && rc == RMSFUSE_OK; s++) {
        const unsigned ty = slot_type(c, s);
        if (s == SLOT_GRAD || !src[s] || ty == RMSFUSE_F32)
            continue;
        if (ty == RMSFUSE_SPLIT_BF16)
            split_part((const uint32_t *)(void *)w[s], (uint16_t *)(void *)src[s], (uint16_t *)t->param_extra, n);
        else
            rc = rmsfuse_convert_from_f32(ty, (nonneg >> s) & 1u, x[s], src[s], s >= 2 ? t->scale[s - 2] : NULL, n);
    }
    return rc;
}

/* Whether combination c has the unfused benchmark (round to nearest even). */
static int has_unfused(const storage_combo *c)
{
    return c && !(c->flags & RMSFUSE_STOCHASTIC_ROUNDING);
}

/* The unfused step must do the typed step's work: the same bytes in every
 * array after a few steps from the fill, for every storage flag set and
 * combination that has it, over a length that ends in a partial 8-bit
 * block. */
static const char *check_unfused(void)
{
    enum { N = 1003, STEPS = 3, B = N * sizeof(float) };
    static char mem[2][BENCH_SLOTS + 1][B];
    static float sc[2][BENCH_SLOTS][N / RMSFUSE_Q8_BLOCK + 1], w[BENCH_SLOTS][N];
    static char msg[192];
    float *const wp[BENCH_SLOTS] = {w[0], w[1], w[2], w[3], w[4]};
    for (size_t i = 0; i < N_FLAGSETS; i++) {
        const flagset *f = &FSETS[i];
        if (!f->selected || !is_storage_flagset(f))
            continue;
        for (size_t ci = 0; ci < N_COMBOS; ci++) {
            const storage_combo *c = &COMBOS[ci];
            if (!has_unfused(c))
                continue;
            memset(mem, 0, sizeof mem);
            memset(sc, 0, sizeof sc);
            rmsfuse_typed_tensor t[2];
            for (int r = 0; r < 2; r++) {
                void *a[BENCH_SLOTS];
                float *scale[BENCH_SLOTS];
                for (int s = 0; s < BENCH_SLOTS; s++) {
                    a[s] = mem[r][s];
                    scale[s] = sc[r][s];
                }
                t[r] = typed_tensor_at(f, c, N, a, mem[r][BENCH_SLOTS], scale);
                fill_typed(f, c, &t[r]);
            }
            const rmsfuse_storage sto = {c->param, c->grad, c->state, c->flags, 0x5eedull, 0ull};
            for (int k = 0; k < STEPS; k++)
                if (lib_step_typed(f, &sto, &t[0]) != RMSFUSE_OK || unfused_step(f, c, &t[1], wp) != RMSFUSE_OK) {
                    snprintf(msg, sizeof msg, "NO: %s %s refused", f->id, c->name);
                    return msg;
                }
            if (memcmp(mem[0], mem[1], sizeof mem[0]) || memcmp(sc[0], sc[1], sizeof sc[0])) {
                snprintf(msg, sizeof msg, "NO: the unfused step differs from the typed step in %s %s", f->id,
                         c->name);
                return msg;
            }
        }
    }
    return "yes";
}

/* The float32 copies of the unfused benchmark: n floats for each slot a
 * flag set uses, made at the first run that needs them (runs without it
 * take no memory for them). */
static float *unfused_w[BENCH_SLOTS];
static size_t unfused_n[BENCH_SLOTS];

static int unfused_arrays(const flagset *f, size_t n)
{
    for (int s = 0; s < BENCH_SLOTS; s++) {
        if (!(f->used & (1u << s)) || unfused_n[s] >= n)
            continue;
        free(unfused_w[s]);
        unfused_w[s] = NULL;
        unfused_n[s] = 0;
        void *p = NULL;
        if (posix_memalign(&p, ARRAY_ALIGN, n * sizeof(float)) != 0)
            return -1;
        memset(p, 0, n * sizeof(float));
        unfused_w[s] = p;
        unfused_n[s] = n;
    }
    return 0;
}

static volatile uint32_t roofline_sink;

/*
 * The roofline with a step's own work (storage/.../roofline_work): the
 * step's streams (roofline_mixed) with arithmetic on registers
 * interleaved (roofline_mixed_work), as much as makes the roofline
 * take the step's own time at the L2 size, where memory does not limit
 * either.  At the largest size it is then what this core and memory give
 * for the step's traffic and as much arithmetic: where the step's
 * arithmetic takes about as long as its traffic, one core overlaps the two
 * only in part, and the slower of the two (the one-core bound of the
 * report) is more than it can reach.  Found by timing in the benchmark's
 * own run: the best of WORK_TRIES batches of WORK_BATCH calls for each
 * count tried, over the first cal_n elements of the arrays.  The roofline
 * runs with c = 0 here (x += 0: the same loads and stores, the values kept),
 * so that the step timed beside it finds only its own steps' values, as
 * the dispatched benchmark's steps do (no fill again after the
 * calibration): with c = 1 the 8-bit codes and scales moved at every call,
 * and the linear map's step took 5 x its time (AMD Zen 5 VM).
 */
enum { WORK_TRIES = 15, WORK_BATCH = 8, WORK_MAX = 1u << 14 };
typedef struct work_cal {
    unsigned work;  /* eighths of a unit per 64 elements (roofline_mixed_work) */
    double step_ns; /* ns per element at the L2 size: the typed step, */
    double work_ns; /* the roofline with that work, */
    double plain_ns; /* and without */
} work_cal;

static double work_time(const roofline_stream *rs, int k, size_t n, unsigned work)
{
    double best = 1e30;
    uint32_t acc = roofline_mixed_work(rs, k, n, 0u, work);
    for (int t = 0; t < WORK_TRIES; t++) {
        const double t0 = now_s();
        for (int j = 0; j < WORK_BATCH; j++)
            acc ^= roofline_mixed_work(rs, k, n, 0u, work);
        const double dt = (now_s() - t0) / WORK_BATCH;
        best = dt < best ? dt : best;
    }
    roofline_sink = acc;
    return best * 1e9 / (double)n;
}

static const char *find_work(const flagset *f, const storage_combo *c, const roofline_stream *rs, int k,
                             size_t cal_n, work_cal *wc)
{
    rmsfuse_storage sto = {c->param, c->grad, c->state, c->flags, 0x5eedull, 0ull};
    const rmsfuse_typed_tensor t = typed_tensor(f, c, cal_n);
    if (cal_n == 0 || lib_step_typed(f, &sto, &t) != RMSFUSE_OK)
        return "the step at the L2 size failed";
    double best = 1e30;
    for (int r = 0; r < WORK_TRIES; r++) {
        const double t0 = now_s();
        for (int j = 0; j < WORK_BATCH; j++) {
            sto.step++;
            lib_step_typed(f, &sto, &t);
        }
        const double dt = (now_s() - t0) / WORK_BATCH;
        best = dt < best ? dt : best;
    }
    wc->step_ns = best * 1e9 / (double)cal_n;
    /* the work whose roofline takes the step's time: doubling, then halving
     * the interval (the time grows with the work) */
    wc->plain_ns = work_time(rs, k, cal_n, 0u);
    if (wc->plain_ns >= wc->step_ns) {
        wc->work = 0;
        wc->work_ns = wc->plain_ns;
        return NULL;
    }
    unsigned lo = 0, hi = 1;
    double thi = work_time(rs, k, cal_n, hi);
    while (thi < wc->step_ns && hi < WORK_MAX) {
        lo = hi;
        hi *= 2;
        thi = work_time(rs, k, cal_n, hi);
    }
    while (hi - lo > 1) {
        const unsigned mid = lo + (hi - lo) / 2;
        const double tm = work_time(rs, k, cal_n, mid);
        if (tm < wc->step_ns)
            lo = mid;
        else {
            hi = mid;
            thi = tm;
        }
    }
    /* the nearer of the two in time (the roofline without work, lo = 0, has
     * no cost of the interleaving at all) */
    const double tlo = lo ? work_time(rs, k, cal_n, lo) : wc->plain_ns;
    if (wc->step_ns - tlo < thi - wc->step_ns) {
        wc->work = lo;
        wc->work_ns = tlo;
    } else {
        wc->work = hi;
        wc->work_ns = thi;
    }
    return NULL;
}

static void storage_counters(rmsfuse_bench_state *st, const flagset *f, const storage_combo *c, size_t n);

static void bench_storage(rmsfuse_bench_state *st, void *arg)
{
    const bench_case *bc = arg;
    const flagset *f = bc->fs;
    const storage_combo *c = bc->combo >= 0 ? &COMBOS[bc->combo] : NULL;
    const size_t n = bc->n;
    float *a[BENCH_SLOTS];
    char msg[160];
    arrays_of(f, a);
    if (bc->kind == K_STORAGE) {
        const char *isa = bc->isa ? bc->isa : "auto";
        rmsfuse_set_isa("auto");
        storage_fill(bc, f, c, n); /* the best ISA's conversions: the scalar 8-bit ones take seconds at DRAM sizes */
        int s = rmsfuse_set_isa(isa);
        if (s != RMSFUSE_OK) {
            snprintf(msg, sizeof msg, "%s: %s", isa, rmsfuse_strerror(s));
            rmsfuse_bench_skip(st, msg);
            rmsfuse_set_isa("auto");
            return;
        }
        rmsfuse_storage sto = {RMSFUSE_F32, RMSFUSE_F32, RMSFUSE_F32, 0u, 0x5eedull, 0ull};
        if (c)
            sto = (rmsfuse_storage){c->param, c->grad, c->state, c->flags, 0x5eedull, 0ull};
        const rmsfuse_typed_tensor t = c ? typed_tensor(f, c, n) : (rmsfuse_typed_tensor){0};
        s = c ? lib_step_typed(f, &sto, &t) : lib_step(f, a, n); /* warm-up, and check */
        if (s != RMSFUSE_OK) {
            snprintf(msg, sizeof msg, "rmsfuse_%s_step%s: %s", f->rule_name, c ? "_typed" : "", rmsfuse_strerror(s));
            rmsfuse_bench_skip(st, msg);
            rmsfuse_set_isa("auto");
            return;
        }
        snprintf(msg, sizeof msg, "isa=%s", rmsfuse_active_isa());
        rmsfuse_bench_set_label(st, msg);
        if (c)
            while (rmsfuse_bench_keep_running(st)) {
                sto.step++; /* stochastic rounding: new bits each step */
                lib_step_typed(f, &sto, &t);
            }
        else
            while (rmsfuse_bench_keep_running(st))
                lib_step(f, a, n);
        rmsfuse_set_isa("auto");
    } else if (bc->kind == K_STORAGE_UNFUSED) {
        if (unfused_arrays(f, n) != 0) {
            rmsfuse_bench_skip(st, "cannot allocate the float32 copies");
            return;
        }
        storage_fill(bc, f, c, n);
        const rmsfuse_typed_tensor t = typed_tensor(f, c, n);
        const int s = unfused_step(f, c, &t, unfused_w); /* warm-up, and check */
        if (s != RMSFUSE_OK) {
            snprintf(msg, sizeof msg, "unfused: %s", rmsfuse_strerror(s));
            rmsfuse_bench_skip(st, msg);
            return;
        }
        while (rmsfuse_bench_keep_running(st))
            unfused_step(f, c, &t, unfused_w);
    } else if (bc->kind == K_STORAGE_WORK) {
        roofline_stream rs[ROOFLINE_MAX_STREAMS];
        const int k = combo_streams(f, c, rs);
        storage_fill(bc, f, c, n);
        work_cal wc;
        const char *why = find_work(f, c, rs, k, bc->cal_n, &wc);
        if (why) {
            rmsfuse_bench_skip(st, why);
            return;
        }
        /* each iteration the step and the roofline without work too,
         * outside the benchmark's time, just before the roofline with work:
         * the three times of each repetition come from the same moments of
         * the machine, whose memory changes speed by up to 2 x within
         * minutes (a ratio of separate benchmarks, run minutes apart, moved
         * by +-10% and more between runs) */
        rmsfuse_storage sto = {c->param, c->grad, c->state, c->flags, 0x5eedull, 0ull};
        const rmsfuse_typed_tensor t = typed_tensor(f, c, n);
        lib_step_typed(f, &sto, &t);
        uint32_t acc = roofline_mixed_work(rs, k, n, 0u, wc.work); /* warm-up */
        double ts = 0.0, tr = 0.0, tw = 0.0;
        while (rmsfuse_bench_keep_running(st)) {
            /* the step and the roofline without work, outside the time */
            rmsfuse_bench_pause(st);
            sto.step++;
            const double t0 = now_s();
            lib_step_typed(f, &sto, &t);
            const double t1 = now_s();
            acc ^= roofline_mixed_work(rs, k, n, 0u, 0u);
            const double t2 = now_s();
            rmsfuse_bench_resume(st);
            const double t3 = now_s();
            acc ^= roofline_mixed_work(rs, k, n, 0u, wc.work);
            const double t4 = now_s();
            ts += t1 - t0;
            tr += t2 - t1;
            tw += t4 - t3;
        }
        roofline_sink = acc;
        const double its = (double)rmsfuse_bench_iterations(st);
        rmsfuse_bench_set_counter(st, "pair_step_ns_per_elem", ts * 1e9 / (its * (double)n), 0);
        rmsfuse_bench_set_counter(st, "pair_of_roofline", ts > 0.0 ? tr / ts : 0.0, 0);
        rmsfuse_bench_set_counter(st, "pair_of_same_work", ts > 0.0 ? tw / ts : 0.0, 0);
        rmsfuse_bench_set_counter(st, "work_eighths", (double)wc.work, 0);
        rmsfuse_bench_set_counter(st, "work_cal_n", (double)bc->cal_n, 0);
        rmsfuse_bench_set_counter(st, "work_step_ns_per_elem", wc.step_ns, 0);
        rmsfuse_bench_set_counter(st, "work_roofline_ns_per_elem", wc.work_ns, 0);
        rmsfuse_bench_set_counter(st, "work_plain_ns_per_elem", wc.plain_ns, 0);
    } else if (!c) {
        float *x[BENCH_SLOTS];
        for (int j = 0; j < f->ninplace; j++)
            x[j] = a[f->inplace[j]];
        const roofline_fn fn = roofline_kernel(f->ninplace);
        storage_fill(bc, f, c, n);
        fn(a[SLOT_GRAD], x, n); /* warm-up */
        while (rmsfuse_bench_keep_running(st))
            fn(a[SLOT_GRAD], x, n);
    } else {
        roofline_stream rs[ROOFLINE_MAX_STREAMS];
        const int k = combo_streams(f, c, rs);
        storage_fill(bc, f, c, n);
        uint32_t acc = roofline_mixed(rs, k, n, 1u); /* warm-up */
        while (rmsfuse_bench_keep_running(st))
            acc ^= roofline_mixed(rs, k, n, 1u);
        roofline_sink = acc;
    }
    rmsfuse_bench_clobber_memory();
    storage_counters(st, f, c, n);
}

/* The rates and counters of a storage/... benchmark over n elements. */
static void storage_counters(rmsfuse_bench_state *st, const flagset *f, const storage_combo *c, size_t n)
{
    const double bytes = combo_stream_bytes(f, c);
    const combo_memory mem = combo_memory_of(f, c);
    const int64_t it = rmsfuse_bench_iterations(st);
    rmsfuse_bench_set_bytes_processed(st, (int64_t)llround((double)it * (double)n * bytes));
    rmsfuse_bench_set_items_processed(st, it * (int64_t)n);
    rmsfuse_bench_set_counter(st, "n", (double)n, 0);
    rmsfuse_bench_set_counter(st, "stream_bytes_per_elem", bytes, 0);
    rmsfuse_bench_set_counter(st, "sqrt_div_per_elem", f->divider ? 1.0 : 0.0, 0);
    rmsfuse_bench_set_counter(st, "ws_bytes", (double)n * (mem.param + mem.extra + mem.grad + mem.state), 0);
    rmsfuse_bench_set_counter(st, "mem_param_bytes", mem.param, 0);
    rmsfuse_bench_set_counter(st, "mem_extra_bytes", mem.extra, 0);
    rmsfuse_bench_set_counter(st, "mem_grad_bytes", mem.grad, 0);
    rmsfuse_bench_set_counter(st, "mem_state_bytes", mem.state, 0);
}

/* ---- many cores: plans on rmsfuse_pool against the roofline on the same workers */
static rmsfuse_pool *pools[65]; /* by worker count, created on first use */

static rmsfuse_pool *pool_for(int threads)
{
    if (threads < 1 || threads > 64)
        return NULL;
    if (!pools[threads] && rmsfuse_pool_create(&pools[threads], threads) != RMSFUSE_OK)
        pools[threads] = NULL;
    return pools[threads];
}

typedef struct roofline_job {
    roofline_fn fn;
    const float *g;
    float *x[BENCH_SLOTS];
    size_t n;
} roofline_job;

/* Each worker: the roofline kernel over the range the pool gives it for a
 * single array (rmsfuse_pool_split), so traffic and split are the pool's. */
static void roofline_worker(void *arg, int w, int nw)
{
    const roofline_job *J = arg;
    size_t lo, hi;
    rmsfuse_pool_split(J->x[0], J->n, w, nw, &lo, &hi);
    if (hi > lo) {
        float *x[BENCH_SLOTS];
        for (int j = 0; j < BENCH_SLOTS; j++)
            x[j] = J->x[j] ? J->x[j] + lo : NULL;
        J->fn(J->g + lo, x, hi - lo);
    }
}

/* A step on the pool: a plan (validated and prepared per step, as a caller
 * whose hyperparameters or step number change does, and as
 * rmsfuse_pool_rmsprop_step does) run by rmsfuse_pool_run_plan and freed;
 * s: what making it returned. */
static inline int pool_run_new_plan(rmsfuse_pool *pool, int s, rmsfuse_plan *plan)
{
    if (s == RMSFUSE_OK)
        s = rmsfuse_pool_run_plan(pool, plan);
    rmsfuse_plan_free(plan);
    return s;
}

/* A step on the pool over float32 tensors. */
static inline int pool_step(rmsfuse_pool *pool, const flagset *f, const void *tensors, size_t count)
{
    rmsfuse_plan *plan;
    const int s = lib_plan(f, tensors, count, &plan);
    return pool_run_new_plan(pool, s, plan);
}

static void bench_threads(rmsfuse_bench_state *st, void *arg)
{
    const bench_case *bc = arg;
    const flagset *f = bc->fs;
    const size_t n = bc->n;
    float *a[BENCH_SLOTS];
    char msg[160];
    arrays_of(f, a);
    rmsfuse_pool *pool = pool_for(bc->threads);
    if (!pool) {
        rmsfuse_bench_skip(st, "rmsfuse_pool_create failed");
        return;
    }
    rmsfuse_set_isa("auto");
    fresh_state(bc, a, n);
    if (bc->kind == K_POOL) {
        void *t = make_tensors(f, a, n, 1);
        int s = t ? pool_step(pool, f, t, 1) : RMSFUSE_E_NO_MEMORY;
        if (s != RMSFUSE_OK) {
            snprintf(msg, sizeof msg, "rmsfuse_%s_plan + rmsfuse_pool_run_plan: %s", f->rule_name,
                     rmsfuse_strerror(s));
            rmsfuse_bench_skip(st, msg);
            free(t);
            return;
        }
        while (rmsfuse_bench_keep_running(st)) {
            pool_step(pool, f, t, 1);
            refresh(f, a, n);
        }
        free(t);
    } else {
        roofline_job J = {roofline_kernel(f->ninplace), a[SLOT_GRAD], {NULL}, n};
        for (int j = 0; j < f->ninplace; j++)
            J.x[j] = a[f->inplace[j]];
        rmsfuse_pool_run(pool, roofline_worker, &J);
        while (rmsfuse_bench_keep_running(st)) {
            rmsfuse_pool_run(pool, roofline_worker, &J);
            refresh(f, a, n);
        }
    }
    rmsfuse_bench_clobber_memory();
    set_rates(st, bc, n);
    rmsfuse_bench_set_counter(st, "ws_bytes", (double)bc->ws, 0);
    rmsfuse_bench_set_counter(st, "threads", (double)bc->threads, 0);
}

/* ---- storage types on many cores: a typed plan on rmsfuse_pool against the
 * same-traffic roofline run by the same workers over the same split ---------- */
typedef struct storage_roofline_job {
    const rmsfuse_plan *plan; /* whose cuts split the elements, as the pool's */
    roofline_stream rs[ROOFLINE_MAX_STREAMS];
    int k;
    size_t n;
    uint32_t acc[65];
} storage_roofline_job;

/* The pool's default cut (rmsfuse_pool_set_chunk, rmsfuse_pool.h): one
 * piece per worker, none under this many elements. */
#define POOL_MIN_PIECE 16384u

/* Worker w of nw: the streams over the range rmsfuse_pool_run_plan gives
 * it, [cut(n w / p), cut(n (w + 1) / p)) of p pieces (a cut of a plan with
 * 8-bit state is a block boundary, so every stream's part starts on an
 * element of its own). */
static void storage_roofline_worker(void *arg, int w, int nw)
{
    storage_roofline_job *J = arg;
    const size_t n = J->n, most = n / POOL_MIN_PIECE, p = most < 1 ? 1 : most < (size_t)nw ? most : (size_t)nw;
    if ((size_t)w >= p)
        return;
    /* piece k starts at n k / p (without overflow, p <= 64), then moves to a cut */
#define PIECE_START(k) rmsfuse_plan_cut(J->plan, n / p * (k) + n % p * (k) / p)
    const size_t lo = PIECE_START((size_t)w), hi = PIECE_START((size_t)w + 1);
#undef PIECE_START
    if (hi <= lo)
        return;
    roofline_stream rs[ROOFLINE_MAX_STREAMS];
    for (int j = 0; j < J->k; j++) {
        rs[j] = J->rs[j];
        rs[j].p = (char *)rs[j].p + lo / rs[j].per * (size_t)rs[j].width;
    }
    J->acc[w] ^= roofline_mixed(rs, J->k, hi - lo, 1u);
}

/* A typed step on the pool (as pool_step's). */
static inline int pool_step_typed(rmsfuse_pool *pool, const flagset *f, const rmsfuse_storage *sto,
                                  const rmsfuse_typed_tensor *t)
{
    rmsfuse_plan *plan;
    const int s = lib_plan_typed(f, sto, t, &plan);
    return pool_run_new_plan(pool, s, plan);
}

static void bench_storage_threads(rmsfuse_bench_state *st, void *arg)
{
    const bench_case *bc = arg;
    const flagset *f = bc->fs;
    const storage_combo *c = &COMBOS[bc->combo];
    const size_t n = bc->n;
    char msg[160];
    rmsfuse_pool *pool = pool_for(bc->threads);
    if (!pool) {
        rmsfuse_bench_skip(st, "rmsfuse_pool_create failed");
        return;
    }
    rmsfuse_set_isa("auto");
    storage_fill(bc, f, c, n);
    rmsfuse_storage sto = {c->param, c->grad, c->state, c->flags, 0x5eedull, 0ull};
    const rmsfuse_typed_tensor t = typed_tensor(f, c, n);
    rmsfuse_plan *plan = NULL;
    int s = lib_plan_typed(f, &sto, &t, &plan);
    if (s == RMSFUSE_OK && bc->kind == K_STORAGE_POOL)
        s = rmsfuse_pool_run_plan(pool, plan); /* warm-up, and check */
    if (s != RMSFUSE_OK) {
        snprintf(msg, sizeof msg, "rmsfuse_%s_plan_typed + rmsfuse_pool_run_plan: %s", f->rule_name,
                 rmsfuse_strerror(s));
        rmsfuse_bench_skip(st, msg);
        rmsfuse_plan_free(plan);
        return;
    }
    if (bc->kind == K_STORAGE_POOL) {
        while (rmsfuse_bench_keep_running(st)) {
            sto.step++; /* stochastic rounding: new bits each step */
            pool_step_typed(pool, f, &sto, &t);
        }
    } else {
        storage_roofline_job J;
        memset(&J, 0, sizeof J);
        J.plan = plan;
        J.k = combo_streams(f, c, J.rs);
        J.n = n;
        rmsfuse_pool_run(pool, storage_roofline_worker, &J); /* warm-up */
        while (rmsfuse_bench_keep_running(st))
            rmsfuse_pool_run(pool, storage_roofline_worker, &J);
        uint32_t acc = 0;
        for (int w = 0; w < 65; w++)
            acc ^= J.acc[w];
        roofline_sink = acc;
    }
    rmsfuse_plan_free(plan);
    rmsfuse_bench_clobber_memory();
    storage_counters(st, f, c, n);
    rmsfuse_bench_set_counter(st, "threads", (double)bc->threads, 0);
}

/* ---- many small tensors ---------------------------------------------------- */
/* count tensors of n elements, cut from the arrays: one step_multi call, a
 * loop of single steps, one plan made once and run again on this thread
 * (the cost of the elements once validation is done), a plan per step run
 * on the pool of every core, and one step over the same elements as a
 * single array (what the work costs without any per-tensor cost). */
static void bench_multi(rmsfuse_bench_state *st, void *arg)
{
    const bench_case *bc = arg;
    const flagset *f = bc->fs;
    const size_t n = bc->n, count = bc->count, total = n * count;
    float *a[BENCH_SLOTS];
    char msg[160];
    arrays_of(f, a);
    void *t = make_tensors(f, a, n, count);
    rmsfuse_pool *pool = bc->kind == K_MULTI_POOL ? pool_for(bc->threads) : NULL;
    rmsfuse_plan *plan = NULL;
    if (!t || (bc->kind == K_MULTI_POOL && !pool)) {
        rmsfuse_bench_skip(st, t ? "rmsfuse_pool_create failed" : "out of memory");
        free(t);
        return;
    }
    rmsfuse_set_isa("auto");
    fresh_state(bc, a, total);
    int s = lib_step_multi(f, t, count);
    if (s == RMSFUSE_OK && bc->kind == K_MULTI_PLAN)
        s = lib_plan(f, t, count, &plan);
    if (s != RMSFUSE_OK) {
        snprintf(msg, sizeof msg, "rmsfuse_%s_step_multi or _plan: %s", f->rule_name, rmsfuse_strerror(s));
        rmsfuse_bench_skip(st, msg);
        free(t);
        return;
    }
    switch (bc->kind) {
    case K_MULTI:
        while (rmsfuse_bench_keep_running(st))
            lib_step_multi(f, t, count);
        break;
    case K_MULTI_LOOP:
        while (rmsfuse_bench_keep_running(st))
            for (size_t i = 0; i < count; i++) {
                float *x[BENCH_SLOTS];
                for (int j = 0; j < BENCH_SLOTS; j++)
                    x[j] = at(a[j], i * n);
                lib_step(f, x, n);
            }
        break;
    case K_MULTI_PLAN:
        while (rmsfuse_bench_keep_running(st))
            rmsfuse_plan_run(plan, 0, total);
        break;
    case K_MULTI_POOL:
        while (rmsfuse_bench_keep_running(st))
            pool_step(pool, f, t, count);
        break;
    case K_TRAIN_SCALE:
    case K_TRAIN_NORM: {
        /* A training step's gradient options (rmsfuse_<rule>_step_ex): the
         * loss scale's inverse, and for _NORM also the global norm's pass
         * (clip by a max_norm that does not bind, skip on overflow). */
        rmsfuse_grad_options o = rmsfuse_grad_options_none();
        o.scale = 1.0 / 1024.0;
        if (bc->kind == K_TRAIN_NORM) {
            o.max_norm = 1e30;
            o.flags = RMSFUSE_SKIP_NONFINITE;
        }
        while (rmsfuse_bench_keep_running(st))
            lib_step_ex(f, t, count, &o);
        break;
    }
    default:
        while (rmsfuse_bench_keep_running(st))
            lib_step(f, a, total);
        break;
    }
    rmsfuse_bench_clobber_memory();
    rmsfuse_plan_free(plan);
    free(t);
    set_rates(st, bc, total);
    rmsfuse_bench_set_counter(st, "tensors", (double)count, 0);
    if (bc->kind == K_MULTI_POOL)
        rmsfuse_bench_set_counter(st, "threads", (double)bc->threads, 0);
}

#define FLOOR_REPS 256
static volatile float floor_sink;

static void bench_floor(rmsfuse_bench_state *st, void *arg)
{
    const bench_case *bc = arg;
    int width = 0;
    char msg[160];
    /* Asked only where the ISA runs: SVE's width is read from the CPU. */
    const floor_fn fn = rmsfuse_isa_supported(bc->isa) ? floor_kernel(bc->isa, &width) : NULL;
    if (!fn) {
        snprintf(msg, sizeof msg, "%s: %s", bc->isa,
                 rmsfuse_isa_supported(bc->isa) ? "no floor kernel here" : "not usable on this CPU/OS");
        rmsfuse_bench_skip(st, msg);
        return;
    }
    float sum = 0.0f;
    while (rmsfuse_bench_keep_running(st))
        sum += fn(FLOOR_REPS, (int)bc->count); /* count: the grouped order */
    floor_sink = sum;
    int64_t per_call = (int64_t)FLOOR_REPS * FLOOR_LANES * width; /* elements: 1 sqrt + 1 div each */
    rmsfuse_bench_set_items_processed(st, rmsfuse_bench_iterations(st) * per_call);
    rmsfuse_bench_set_counter(st, "width", (double)width, 0);
}

/* ---- hwloc: caches, CPU model, binding ------------------------------------ */
typedef struct machine {
    size_t cache[4]; /* [1..3]: data/unified cache sizes seen by the bound PU */
    size_t dram_ws;  /* the DRAM class: 8 x L3, at most 1/8 of physical memory */
    char model[128];
    char bound[64];
    const char *cache_source;
} machine;

/* The DRAM class: 8 x L3, at most 1/8 of physical memory. */
static void set_dram_ws(machine *m)
{
    m->dram_ws = m->cache[3] * 8;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 && m->dram_ws > (size_t)pages / 8 * (size_t)page)
        m->dram_ws = (size_t)pages / 8 * (size_t)page;
}

static void discover(machine *m)
{
    hwloc_topology_t topo;
    memset(m, 0, sizeof *m);
    m->cache_source = "hwloc";
    snprintf(m->model, sizeof m->model, "unknown");
    snprintf(m->bound, sizeof m->bound, "not bound");

    if (hwloc_topology_init(&topo) != 0 || hwloc_topology_load(topo) != 0) {
        m->cache_source = "default (hwloc failed)";
    } else {
        int ncores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
        hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, ncores > 0 ? ncores - 1 : 0);
        hwloc_obj_t pu = core ? hwloc_get_obj_inside_cpuset_by_type(topo, core->cpuset, HWLOC_OBJ_PU, 0)
                              : hwloc_get_obj_by_type(topo, HWLOC_OBJ_PU, 0);
        if (pu) {
            if (hwloc_set_cpubind(topo, pu->cpuset, HWLOC_CPUBIND_THREAD) == 0)
                snprintf(m->bound, sizeof m->bound, "PU os_index %u (core L#%u)", pu->os_index,
                         core ? core->logical_index : 0u);
            for (hwloc_obj_t o = pu->parent; o; o = o->parent)
                if (hwloc_obj_type_is_dcache(o->type) && o->attr->cache.depth >= 1 && o->attr->cache.depth <= 3 &&
                    m->cache[o->attr->cache.depth] == 0)
                    m->cache[o->attr->cache.depth] = (size_t)o->attr->cache.size;
        }
        const char *model = NULL;
        for (hwloc_obj_t o = pu; o && !model; o = o->parent)
            model = hwloc_obj_get_info_by_name(o, "CPUModel");
        if (!model) {
            hwloc_obj_t pkg = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PACKAGE, 0);
            model = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUModel") : NULL;
        }
        if (model)
            snprintf(m->model, sizeof m->model, "%s", model);
        hwloc_topology_destroy(topo);
    }
    static const size_t fallback[4] = {0, 32u << 10, 1u << 20, 32u << 20};
    for (int l = 1; l <= 3; l++)
        if (m->cache[l] == 0) {
            m->cache[l] = fallback[l];
            m->cache_source = "hwloc, with defaults for missing levels";
        }
    set_dram_ws(m);
}

/* ---- options, sizes, registration ----------------------------------------- */
static size_t parse_size(const char *s)
{
    char *end;
    double x = strtod(s, &end);
    switch (*end) {
    case 'k': case 'K': x *= 1024.0; break;
    case 'm': case 'M': x *= 1024.0 * 1024.0; break;
    case 'g': case 'G': x *= 1024.0 * 1024.0 * 1024.0; break;
    default: break;
    }
    return x > 0 ? (size_t)x : 0;
}

typedef struct options {
    size_t min_ws, max_ws, l3;
    int sweep;
    const char *rules; /* NULL: all */
    double progress;
    int sparse;
    int storage;
} options;

/* Removes our own --rmsfuse_* options from argv. */
static void parse_options(int *argc, char **argv, options *o)
{
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--rmsfuse_min_ws=", 17))
            o->min_ws = parse_size(a + 17);
        else if (!strncmp(a, "--rmsfuse_max_ws=", 17))
            o->max_ws = parse_size(a + 17);
        else if (!strncmp(a, "--rmsfuse_sweep=", 16))
            o->sweep = atoi(a + 16);
        else if (!strncmp(a, "--rmsfuse_l3=", 13))
            o->l3 = parse_size(a + 13);
        else if (!strncmp(a, "--rmsfuse_rules=", 16))
            o->rules = a + 16;
        else if (!strncmp(a, "--rmsfuse_progress=", 19))
            o->progress = atof(a + 19);
        else if (!strncmp(a, "--rmsfuse_sparse=", 17))
            o->sparse = atoi(a + 17);
        else if (!strncmp(a, "--rmsfuse_storage=", 18))
            o->storage = atoi(a + 18);
        else if (!strncmp(a, "--rmsfuse_sparse_warmup=", 24)) {
            char *end;
            sparse_min_steps = (unsigned)strtoul(a + 24, &end, 10);
            if (*end == ',')
                sparse_max_steps = (unsigned)strtoul(end + 1, NULL, 10);
            if (sparse_max_steps < sparse_min_steps)
                sparse_max_steps = sparse_min_steps;
        }
        else
            argv[out++] = argv[i];
    }
    *argc = out;
    argv[out] = NULL;
}

/* --rmsfuse_rules: each comma-separated item is a rule ("adam") or a flag
 * set ("adam/amsgrad").  Returns 0 and prints the choices on an unknown
 * item. */
static int select_flagsets(const char *list)
{
    if (!list || !*list || !strcmp(list, "all"))
        return 1;
    for (size_t i = 0; i < N_FLAGSETS; i++)
        FSETS[i].selected = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        int hit = 0;
        for (size_t i = 0; i < N_FLAGSETS; i++)
            if (!strcmp(item, FSETS[i].rule_name) || !strcmp(item, FSETS[i].id))
                FSETS[i].selected = hit = 1;
        if (!hit) {
            fprintf(stderr, "rmsfuse_bench: --rmsfuse_rules: no rule or flag set '%s'; there are:", item);
            for (size_t i = 0; i < N_FLAGSETS; i++)
                fprintf(stderr, " %s", FSETS[i].id);
            fprintf(stderr, "\n");
            return 0;
        }
    }
    return 1;
}

static int cmp_size(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    return (a > b) - (a < b);
}

/* Target working sets: the class sizes and the sweep up to the DRAM class
 * (beyond it every size is a DRAM size), sorted, unique. */
static int target_sizes(const machine *m, const options *o, size_t *out, int cap)
{
    int k = 0;
    size_t classes[4] = {m->cache[1] / 2, m->cache[2] / 2, m->cache[3] / 2, m->dram_ws};
    for (int i = 0; i < 4 && k < cap; i++)
        out[k++] = classes[i];
    if (o->sweep)
        for (size_t s = 4096; s <= m->dram_ws && s <= ((size_t)512 << 20) && k < cap; s *= 2)
            out[k++] = s;
    qsort(out, (size_t)k, sizeof *out, cmp_size);
    int u = 0;
    for (int i = 0; i < k; i++)
        if (out[i] >= o->min_ws && out[i] <= o->max_ws && (u == 0 || out[u - 1] != out[i]))
            out[u++] = out[i];
    return u;
}

static size_t elements_for(const flagset *f, size_t ws)
{
    size_t n = ws / ((size_t)f->narrays * sizeof(float));
    n -= n % 16; /* whole cache lines per array */
    return n < 16 ? 16 : n;
}

static int is_class_size(const machine *m, size_t ws)
{
    return ws == m->cache[1] / 2 || ws == m->cache[2] / 2 || ws == m->cache[3] / 2 || ws == m->dram_ws;
}

/* Room in every array flag set f uses for n elements. */
static void need(const flagset *f, size_t n)
{
    for (int s = 0; s < BENCH_SLOTS; s++)
        if ((f->used & (1u << s)) && array_n[s] < n)
            array_n[s] = n;
}

/* The sparse benchmarks' sizes for flag set f: the tile (in cache) and the
 * DRAM class, those within --rmsfuse_min_ws / --rmsfuse_max_ws; returns how
 * many, elements in n[] and the working set named in ws[]. */
static int sparse_sizes(const flagset *f, const machine *m, const options *o, size_t *n, size_t *ws)
{
    int k = 0;
    const size_t tile_ws = SPARSE_TILE * (size_t)f->narrays * sizeof(float);
    if (tile_ws >= o->min_ws && tile_ws <= o->max_ws) {
        n[k] = SPARSE_TILE;
        ws[k++] = tile_ws;
    }
    if (m->dram_ws > tile_ws && m->dram_ws >= o->min_ws && m->dram_ws <= o->max_ws) {
        n[k] = elements_for(f, m->dram_ws);
        ws[k++] = m->dram_ws;
    }
    return k;
}

static int is_sparse_flagset(const flagset *f)
{
    for (size_t j = 0; j < sizeof SPARSE_FLAGSETS / sizeof SPARSE_FLAGSETS[0]; j++)
        if (!strcmp(f->id, SPARSE_FLAGSETS[j]))
            return 1;
    return 0;
}

static bench_case *add(enum kind kind, const char *isa, const flagset *f, size_t n, const char *name)
{
    bench_case *bc = calloc(1, sizeof *bc);
    if (!bc) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    bc->kind = kind;
    bc->isa = isa;
    bc->fs = f;
    bc->n = n;
    bc->ws = f ? n * (size_t)f->narrays * sizeof(float) : 0;
    bc->threads = 1;
    rmsfuse_bench_fn fn = bench_step;
    if (kind == K_FLOOR)
        fn = bench_floor;
    else if (kind == K_POOL || kind == K_POOL_ROOFLINE)
        fn = bench_threads;
    else if (kind == K_SPARSE || kind == K_SPARSE_PEER)
        fn = bench_sparse;
    else if (kind == K_STORAGE || kind == K_STORAGE_ROOFLINE || kind == K_STORAGE_UNFUSED || kind == K_STORAGE_WORK)
        fn = bench_storage;
    else if (kind == K_STORAGE_POOL || kind == K_STORAGE_POOL_ROOFLINE)
        fn = bench_storage_threads;
    else if (kind >= K_MULTI)
        fn = bench_multi;
    rmsfuse_bench_register(name, fn, bc);
    return bc;
}

/* The traffic model must be the library's: the arrays each flag set uses,
 * derived from its configuration above, are those the library's rule file
 * says its variant touches.  NULL, or what differs. */
static const char *check_traffic_model(void)
{
    static char msg[160];
    for (size_t i = 0; i < N_FLAGSETS; i++) {
        if (!roofline_kernel(FSETS[i].ninplace)) {
            snprintf(msg, sizeof msg, "%s: no roofline kernel for %d in-place arrays", FSETS[i].id,
                     FSETS[i].ninplace);
            return msg;
        }
        if (FSETS[i].used != peer_used_native(i)) {
            snprintf(msg, sizeof msg, "%s: arrays 0x%x by the public contract, 0x%x by src/rules", FSETS[i].id,
                     FSETS[i].used, peer_used_native(i));
            return msg;
        }
    }
    return NULL;
}

/* The peers must do the library's work: the bits of the library's exact
 * IEEE configuration (the flag set with RMSFUSE_FLUSH_SUBNORMAL cleared;
 * the peers have no flush) in every array after a few steps, from the
 * dense fill, and from a state with subnormal values where half of the
 * gradient entries are 0 (the sparse benchmarks' peer runs on such state). */
static const char *check_peers(void)
{
    enum { N = 1003, STEPS = 3 };
    static float buf[3][BENCH_SLOTS][N];
    static char msg[192];
    for (int sub = 0; sub < 2; sub++)
        for (size_t i = 0; i < N_FLAGSETS; i++) {
            const flagset *f = &FSETS[i];
            if (!f->selected)
                continue;
            for (int r = 0; r < 3; r++) {
                float *x[BENCH_SLOTS];
                for (int s = 0; s < BENCH_SLOTS; s++) {
                    memcpy(buf[r][s], pattern[s], sizeof buf[r][s]);
                    x[s] = (f->used & (1u << s)) ? buf[r][s] : NULL;
                }
                if (sub)
                    for (size_t e = 0; e < N; e++) {
                        if (!sparse_masked(e, 50))
                            continue;
                        x[SLOT_GRAD][e] = 0.0f;
                        for (int s = 0; s < BENCH_SLOTS; s++)
                            if (is_state_slot(f, s)) {
                                /* k x 2^-149 for k up to 700 (where the decays stick), or just
                                 * below FLT_MIN */
                                uint32_t bits = e % 4 ? 1u + (uint32_t)(e * 7 + (size_t)s) % 700u
                                                      : 0x007fffffu - (uint32_t)e;
                                memcpy(&x[s][e], &bits, sizeof bits);
                            }
                    }
                for (int k = 0; k < STEPS; k++) {
                    if (r == 0) {
                        if (lib_step_cfg(f, &f->cfg_exact, x, N) != RMSFUSE_OK) {
                            snprintf(msg, sizeof msg, "NO: the library refused %s", f->id);
                            return msg;
                        }
                    } else {
                        (r == 1 ? f->peer_o2 : f->peer_native)(&f->cfg, x, N);
                    }
                }
            }
            for (int r = 1; r < 3; r++)
                if (memcmp(buf[0], buf[r], sizeof buf[0])) {
                    snprintf(msg, sizeof msg, "NO: %s differs from the library (exact IEEE) in %s%s",
                             r == 1 ? "peer_O2" : "peer_native", f->id, sub ? " from subnormal state" : "");
                    return msg;
                }
        }
    return "yes";
}

/* The flag sets of the many-tensor benchmarks: one per rule, with a state
 * array besides the rule's first. */
static const char *const MULTI_FLAGSETS[] = {"rmsprop/momentum", "adagrad/torch", "sgd/momentum", "adam/torch"};

/* Whether flag set f has the many-tensor and training-step benchmarks. */
static int is_multi_flagset(const flagset *f)
{
    for (size_t j = 0; j < sizeof MULTI_FLAGSETS / sizeof MULTI_FLAGSETS[0]; j++)
        if (!strcmp(f->id, MULTI_FLAGSETS[j]))
            return 1;
    return 0;
}
static const size_t MULTI_SHAPES[][2] = {{1000, 16}, {1000, 256}, {200, 4096}};
/* The training-step benchmark's lists: 64 tensors in L2 (256 KiB per
 * array), and 64 of 128 Ki elements (32 MiB per array: beyond L3). */
static const size_t TRAIN_SHAPES[][2] = {{64, 1024}, {64, 131072}};

static void join(char *buf, size_t size, const char *item)
{
    size_t len = strlen(buf);
    snprintf(buf + len, size - len, "%s%s", len ? "," : "", item);
}

int main(int argc, char **argv)
{
    options o = {0, (size_t)-1, 0, 1, NULL, 15.0, 1, 1};
    parse_options(&argc, argv, &o);
    init_flagsets();
    if (!select_flagsets(o.rules))
        return 2;
    rmsfuse_bench_set_progress(o.progress);
    const char *bad_model = check_traffic_model();
    if (bad_model) {
        fprintf(stderr, "rmsfuse_bench: the traffic model is wrong: %s\n", bad_model);
        return 1;
    }
    make_pattern();

    /* The pools first: a pool's workers keep to the CPUs of the thread that
     * creates it, which discover() narrows to one core. */
    const int cores = rmsfuse_pool_machine_cores(); /* those this process may use */
    for (int t = 1; t <= cores && t <= 64; t++)
        (void)pool_for(t);

    machine m;
    discover(&m); /* binds this thread, which runs every benchmark */
    if (o.l3) {
        m.cache[3] = o.l3;
        set_dram_ws(&m);
        m.cache_source = "hwloc, L3 from --rmsfuse_l3";
    }

    size_t sizes[64];
    const int nsizes = target_sizes(&m, &o, sizes, 64);
    /* Many cores at the DRAM size (below it when --rmsfuse_max_ws caps it:
     * for smoke runs). */
    const size_t tws = m.dram_ws < o.max_ws ? m.dram_ws : o.max_ws;
    const int threads_on = tws >= o.min_ws;
    int dividers = 0;
    for (size_t i = 0; i < N_FLAGSETS; i++) {
        const flagset *f = &FSETS[i];
        if (!f->selected)
            continue;
        dividers |= f->divider;
        for (int k = 0; k < nsizes; k++)
            need(f, elements_for(f, sizes[k]));
        if (threads_on)
            need(f, elements_for(f, tws));
        if (is_multi_flagset(f)) {
            for (size_t s = 0; s < sizeof MULTI_SHAPES / sizeof MULTI_SHAPES[0]; s++)
                need(f, MULTI_SHAPES[s][0] * MULTI_SHAPES[s][1]);
            for (size_t s = 0; s < sizeof TRAIN_SHAPES / sizeof TRAIN_SHAPES[0]; s++)
                if (TRAIN_SHAPES[s][0] * TRAIN_SHAPES[s][1] * f->narrays * sizeof(float) <= o.max_ws)
                    need(f, TRAIN_SHAPES[s][0] * TRAIN_SHAPES[s][1]);
        }
        if (o.sparse && is_sparse_flagset(f)) {
            size_t sn[2], sws[2];
            for (int k = sparse_sizes(f, &m, &o, sn, sws); k-- > 0;)
                need(f, sn[k]);
        }
        if (o.storage && is_storage_flagset(f))
            for (int k = 0; k < nsizes; k++)
                if (is_class_size(&m, sizes[k])) {
                    need(f, elements_for(f, sizes[k]));
                    need_storage(elements_for(f, sizes[k]));
                }
    }
    if (alloc_arrays() != 0 || alloc_storage_arrays() != 0) {
        fprintf(stderr, "rmsfuse_bench: cannot allocate the arrays (%zu floats each at most)\n", array_n[0]);
        return 1;
    }

    /* Context for the JSON (and the console header). */
    char buf[1024];
    rmsfuse_bench_add_context("cpu_model", m.model);
    rmsfuse_bench_add_context("bound_to", m.bound);
    const char *lv[4] = {"", "cache_l1d_bytes", "cache_l2_bytes", "cache_l3_bytes"};
    for (int l = 1; l <= 3; l++) {
        snprintf(buf, sizeof buf, "%zu", m.cache[l]);
        rmsfuse_bench_add_context(lv[l], buf);
    }
    rmsfuse_bench_add_context("cache_source", m.cache_source);
    snprintf(buf, sizeof buf, "L1=%zu,L2=%zu,L3=%zu,DRAM=%zu", m.cache[1] / 2, m.cache[2] / 2, m.cache[3] / 2,
             m.dram_ws);
    rmsfuse_bench_add_context("size_classes_ws", buf);
    rmsfuse_bench_add_context("rmsfuse_version", rmsfuse_version());
    rmsfuse_set_isa("auto");
    rmsfuse_bench_add_context("rmsfuse_active_isa", rmsfuse_active_isa());
    buf[0] = '\0';
    for (const char *const *nm = rmsfuse_isa_names(); *nm; nm++)
        join(buf, sizeof buf, *nm);
    rmsfuse_bench_add_context("rmsfuse_isa_names", buf); /* every ISA the library knows, best last */
    buf[0] = '\0';
    for (const char *const *nm = rmsfuse_isa_names(); *nm; nm++)
        if (rmsfuse_isa_supported(*nm))
            join(buf, sizeof buf, *nm);
    rmsfuse_bench_add_context("rmsfuse_isas_supported", buf);
    rmsfuse_bench_add_context("compiler", RMSFUSE_BENCH_COMPILER);
    rmsfuse_bench_add_context("build_type", RMSFUSE_BENCH_BUILD_TYPE);
    rmsfuse_bench_add_context("peer_O2_flags", RMSFUSE_BENCH_PEER_O2_FLAGS);
    rmsfuse_bench_add_context("peer_native_flags", RMSFUSE_BENCH_PEER_NATIVE_FLAGS);
    rmsfuse_bench_add_context("peer_source", "the library's width-1 rule body (src/rules/<rule>.h over "
                                             "src/isa/ops_scalar.h) in a plain loop, vectorised by the compiler");
    rmsfuse_bench_add_context("roofline_flags", "-O3 -march=native");
    rmsfuse_bench_add_context("peers_bitexact_with_library", check_peers());
    buf[0] = '\0';
    for (size_t i = 0; i < N_FLAGSETS; i++)
        if (FSETS[i].selected) {
            char key[64], desc[384];
            join(buf, sizeof buf, FSETS[i].id);
            snprintf(key, sizeof key, "flagset:%s", FSETS[i].id);
            describe(&FSETS[i], desc, sizeof desc);
            rmsfuse_bench_add_context(key, desc);
        }
    rmsfuse_bench_add_context("flag_sets", buf);
    /* Which mode the library paths run the flag sets in. */
    buf[0] = '\0';
    for (size_t i = 0; i < N_FLAGSETS; i++)
        if (FSETS[i].selected && FSETS[i].flush)
            join(buf, sizeof buf, FSETS[i].id);
    rmsfuse_bench_add_context("flush_subnormal_flag_sets", buf);
    rmsfuse_bench_add_context("modes", "library paths (the ISAs, dispatched, threads, multi): the flag set as "
                                       "configured, from its preset, which sets RMSFUSE_FLUSH_SUBNORMAL; "
                                       "dispatched_exact: the same with the flag cleared (exact IEEE); "
                                       "peer_O2, peer_native, roofline: exact IEEE loops (no flush)");
    if (o.sparse) {
        buf[0] = '\0';
        for (size_t i = 0; i < N_FLAGSETS; i++)
            if (FSETS[i].selected && is_sparse_flagset(&FSETS[i]))
                join(buf, sizeof buf, FSETS[i].id);
        rmsfuse_bench_add_context("sparse_flag_sets", buf);
        snprintf(buf, sizeof buf,
                 "fill pattern, %u dense steps, then the masked gradient (a fixed pseudo-random mask sets the "
                 "share of its entries to exactly 0) for at least %u steps and on until a step leaves every "
                 "masked element's state unchanged (the fixed point: a stuck subnormal, or 0 with the flush; "
                 "at most %u), on %u elements, in the mode timed (the peer from the exact warm-up); larger "
                 "sizes tile that state (gradient, mask and fill repeat every %u elements, each element's "
                 "update depends only on its own values: the recipe's state bit for bit)",
                 SPARSE_DENSE_STEPS, sparse_min_steps, sparse_max_steps, SPARSE_TILE, SPARSE_TILE);
        rmsfuse_bench_add_context("sparse_warmup", buf);
        rmsfuse_bench_add_context("sparse_impls", "dispatched: the preset (RMSFUSE_FLUSH_SUBNORMAL); "
                                                  "dispatched_exact: the flag cleared (exact IEEE); "
                                                  "peer_native: the -O3 -march=native loop (exact IEEE)");
    }
    if (o.storage) {
        buf[0] = '\0';
        for (size_t i = 0; i < N_FLAGSETS; i++)
            if (FSETS[i].selected && is_storage_flagset(&FSETS[i]))
                join(buf, sizeof buf, FSETS[i].id);
        rmsfuse_bench_add_context("storage_flag_sets", buf);
        for (size_t ci = 0; ci < N_COMBOS; ci++) {
            const storage_combo *c = &COMBOS[ci];
            char key[64];
            snprintf(key, sizeof key, "storage:%s", c->name);
            snprintf(buf, sizeof buf, "param %s%s%s, grad %s, state %s", type_name(c->param),
                     (c->flags & RMSFUSE_MASTER_WEIGHTS) ? " + f32 master" : "",
                     (c->flags & RMSFUSE_STOCHASTIC_ROUNDING) ? " (stochastic rounding)" : "", type_name(c->grad),
                     type_name(c->state));
            rmsfuse_bench_add_context(key, buf);
        }
        rmsfuse_bench_add_context("storage:plain", "float32 everywhere, the plain API (rmsfuse_<rule>_step)");
        snprintf(buf, sizeof buf, "plain");
        for (size_t ci = 0; ci < N_COMBOS; ci++)
            join(buf, sizeof buf, COMBOS[ci].name);
        rmsfuse_bench_add_context("storage_combos", buf);
        rmsfuse_bench_add_context("storage_unfused_bitexact_with_typed", check_unfused());
        rmsfuse_bench_add_context("storage_impls",
                                  "dispatched and roofline (the combination's exact traffic, bench/roofline.c, "
                                  "-O3 -march=native) at every class size; every ISA at the largest, and there "
                                  "unfused (each array converted into a float32 copy, the float32 step, "
                                  "converted back: three passes; not with stochastic rounding) and "
                                  "pool_t<k> and roofline_t<k> on all k cores (rmsfuse_pool); ws: the "
                                  "float32 working set of the same n elements (counter ws_bytes: the "
                                  "combination's own)");
    }
    snprintf(buf, sizeof buf, "one array per slot, each 2 MiB-aligned + slot*%u bytes, reused across benchmarks",
             ARRAY_STAGGER);
    rmsfuse_bench_add_context("array_layout", buf);
    snprintf(buf, sizeof buf, "%d", FLOOR_LANES);
    rmsfuse_bench_add_context("floor_independent_chains", buf);
    snprintf(buf, sizeof buf, "%d", cores);
    rmsfuse_bench_add_context("machine_cores", buf);

    /* The divider's limit first (when a selected rule has a divider), then
     * each flag set by size; at one size every implementation is
     * registered back to back. */
    if (dividers)
        for (const char *const *nm = rmsfuse_isa_names(); *nm; nm++) {
            snprintf(buf, sizeof buf, "floor/sqrt_div/%s", *nm);
            add(K_FLOOR, *nm, NULL, 0, buf);
            snprintf(buf, sizeof buf, "floor/sqrt_div_grouped/%s", *nm);
            add(K_FLOOR, *nm, NULL, 0, buf)->count = 1;
            /* The same denominators without the divider (bench/floor.c): the bound of a fast mode. */
            snprintf(buf, sizeof buf, "floor/newton_eps_in/%s", *nm);
            add(K_FLOOR, *nm, NULL, 0, buf)->count = 2;
            snprintf(buf, sizeof buf, "floor/newton_eps_out/%s", *nm);
            add(K_FLOOR, *nm, NULL, 0, buf)->count = 3;
        }
    for (size_t fi = 0; fi < N_FLAGSETS; fi++) {
        const flagset *f = &FSETS[fi];
        if (!f->selected)
            continue;
        for (int i = 0; i < nsizes; i++) {
            size_t n = elements_for(f, sizes[i]);
#define ADD(kind, isa, impl)                                                     \
    do {                                                                        \
        snprintf(buf, sizeof buf, "%s/%s/ws:%zu", f->id, impl, sizes[i]);       \
        add(kind, isa, f, n, buf);                                              \
    } while (0)
            for (const char *const *nm = rmsfuse_isa_names(); *nm; nm++)
                /* an ISA that cannot run is listed (skipped, with the reason)
                 * at the class sizes only, to keep the output short */
                if (rmsfuse_isa_supported(*nm) || is_class_size(&m, sizes[i]))
                    ADD(K_ISA, *nm, *nm);
            ADD(K_DISPATCHED, NULL, "dispatched");
            /* exact IEEE (the flag cleared), at the class sizes: what the
             * flush costs where no state is subnormal */
            if (f->flush && is_class_size(&m, sizes[i]))
                ADD(K_DISPATCHED_EXACT, NULL, "dispatched_exact");
            ADD(K_ROOFLINE, NULL, "roofline");
            ADD(K_PEER_O2, NULL, "peer_O2");
            ADD(K_PEER_NATIVE, NULL, "peer_native");
#undef ADD
        }
    }
    /* Many cores: the step on 1..all cores at the DRAM size, each against
     * the roofline run by the same workers. */
    if (threads_on)
        for (size_t fi = 0; fi < N_FLAGSETS; fi++) {
            const flagset *f = &FSETS[fi];
            if (!f->selected)
                continue;
            for (int t = 1; t <= cores && t <= 64; t++) {
                size_t n = elements_for(f, tws);
                snprintf(buf, sizeof buf, "threads/%s/pool/t:%d/ws:%zu", f->id, t, tws);
                add(K_POOL, NULL, f, n, buf)->threads = t;
                snprintf(buf, sizeof buf, "threads/%s/roofline/t:%d/ws:%zu", f->id, t, tws);
                add(K_POOL_ROOFLINE, NULL, f, n, buf)->threads = t;
            }
        }

    /* Sparse gradients: per rule, size and share of zero gradients, the
     * preset, the exact configuration and the exact -O3 -march=native loop. */
    if (o.sparse)
        for (size_t fi = 0; fi < N_FLAGSETS; fi++) {
            const flagset *f = &FSETS[fi];
            if (!f->selected || !is_sparse_flagset(f))
                continue;
            size_t sn[2], sws[2];
            const int nsz = sparse_sizes(f, &m, &o, sn, sws);
            for (int k = 0; k < nsz; k++)
                for (size_t zi = 0; zi < N_SPARSE_PCT; zi++)
                    for (int impl = 0; impl < 3; impl++) {
                        static const char *const names[] = {"dispatched", "dispatched_exact", "peer_native"};
                        snprintf(buf, sizeof buf, "sparse/%s/%s/zero:%d/ws:%zu", f->id, names[impl],
                                 SPARSE_ZERO_PCT[zi], sws[k]);
                        bench_case *bc = add(impl == 2 ? K_SPARSE_PEER : K_SPARSE, NULL, f, sn[k], buf);
                        bc->fsi = fi;
                        bc->zi = zi;
                        bc->exact = impl != 0 || !f->flush;
                    }
        }

    /* Storage types: each combination of the storage flag sets at the class
     * sizes (dispatched, its roofline), every ISA at the largest class size
     * run; "plain" is the float32 step of the plain API. */
    size_t storage_isa_ws = 0;
    for (int i = 0; i < nsizes; i++)
        if (is_class_size(&m, sizes[i]))
            storage_isa_ws = sizes[i];
    if (o.storage)
        for (size_t fi = 0; fi < N_FLAGSETS; fi++) {
            const flagset *f = &FSETS[fi];
            if (!f->selected || !is_storage_flagset(f))
                continue;
            for (int i = 0; i < nsizes; i++) {
                if (!is_class_size(&m, sizes[i]))
                    continue;
                const size_t n = elements_for(f, sizes[i]);
                for (int ci = -1; ci < (int)N_COMBOS; ci++) {
                    const char *cname = ci < 0 ? "plain" : COMBOS[ci].name;
                    snprintf(buf, sizeof buf, "storage/%s/%s/dispatched/ws:%zu", f->id, cname, sizes[i]);
                    add(K_STORAGE, NULL, f, n, buf)->combo = ci;
                    snprintf(buf, sizeof buf, "storage/%s/%s/roofline/ws:%zu", f->id, cname, sizes[i]);
                    add(K_STORAGE_ROOFLINE, NULL, f, n, buf)->combo = ci;
                    /* all cores, at that size too: the typed plans on the
                     * pool (not the float32 step: threads/... has it) */
                    if (sizes[i] == storage_isa_ws && ci >= 0 && cores > 1)
                        for (int r = 0; r < 2; r++) {
                            snprintf(buf, sizeof buf, "storage/%s/%s/%s_t%d/ws:%zu", f->id, cname,
                                     r ? "roofline" : "pool", cores > 64 ? 64 : cores, sizes[i]);
                            bench_case *bp = add(r ? K_STORAGE_POOL_ROOFLINE : K_STORAGE_POOL, NULL, f, n, buf);
                            bp->combo = ci;
                            bp->threads = cores > 64 ? 64 : cores;
                        }
                    /* the roofline with the step's own work, at that size
                     * too (its work found at the L2 size) */
                    if (sizes[i] == storage_isa_ws && ci >= 0 && m.cache[2] / 2 <= sizes[i]) {
                        snprintf(buf, sizeof buf, "storage/%s/%s/roofline_work/ws:%zu", f->id, cname, sizes[i]);
                        bench_case *bw = add(K_STORAGE_WORK, NULL, f, n, buf);
                        bw->combo = ci;
                        bw->cal_n = elements_for(f, m.cache[2] / 2);
                    }
                    /* the unfused step, at that size too */
                    if (sizes[i] == storage_isa_ws && ci >= 0 && has_unfused(&COMBOS[ci])) {
                        snprintf(buf, sizeof buf, "storage/%s/%s/unfused/ws:%zu", f->id, cname, sizes[i]);
                        add(K_STORAGE_UNFUSED, NULL, f, n, buf)->combo = ci;
                    }
                    if (sizes[i] == storage_isa_ws)
                        for (const char *const *nm = rmsfuse_isa_names(); *nm; nm++) {
                            if (!rmsfuse_isa_supported(*nm))
                                continue; /* the ISAs that cannot run are listed in the main tables */
                            snprintf(buf, sizeof buf, "storage/%s/%s/%s/ws:%zu", f->id, cname, *nm, sizes[i]);
                            add(K_STORAGE, *nm, f, n, buf)->combo = ci;
                        }
                }
            }
        }

    /* A training step (issue 15): a list beyond L3 and one in L2, the plain
     * step against step_ex with a gradient scale, and with the norm's pass. */
    static const char *const timpls[] = {"step_multi", "step_ex_scale", "step_ex_norm"};
    static const enum kind tkinds[] = {K_MULTI, K_TRAIN_SCALE, K_TRAIN_NORM};
    for (size_t fi = 0; fi < N_FLAGSETS; fi++) {
        const flagset *f = &FSETS[fi];
        if (!f->selected || !is_multi_flagset(f))
            continue;
        for (size_t i = 0; i < sizeof TRAIN_SHAPES / sizeof TRAIN_SHAPES[0]; i++) {
            const size_t count = TRAIN_SHAPES[i][0], n = TRAIN_SHAPES[i][1];
            if (count * n * f->narrays * sizeof(float) > o.max_ws)
                continue;
            for (size_t k = 0; k < sizeof timpls / sizeof timpls[0]; k++) {
                snprintf(buf, sizeof buf, "train/%s/%s/tensors:%zu/n:%zu", f->id, timpls[k], count, n);
                add(tkinds[k], NULL, f, n, buf)->count = count;
            }
        }
    }

    /* Many small tensors. */
    static const char *const impls[] = {"step_multi", "step_loop", "plan", "pool", "flat"};
    static const enum kind kinds[] = {K_MULTI, K_MULTI_LOOP, K_MULTI_PLAN, K_MULTI_POOL, K_MULTI_FLAT};
    for (size_t fi = 0; fi < N_FLAGSETS; fi++) {
        const flagset *f = &FSETS[fi];
        if (!f->selected || !is_multi_flagset(f))
            continue;
        for (size_t i = 0; i < sizeof MULTI_SHAPES / sizeof MULTI_SHAPES[0]; i++)
            for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
                const size_t count = MULTI_SHAPES[i][0], n = MULTI_SHAPES[i][1];
                snprintf(buf, sizeof buf, "multi/%s/%s/tensors:%zu/n:%zu", f->id, impls[k], count, n);
                bench_case *bc = add(kinds[k], NULL, f, n, buf);
                bc->count = count;
                if (kinds[k] == K_MULTI_POOL)
                    bc->threads = cores < 1 ? 1 : cores > 64 ? 64 : cores;
            }
    }
    return rmsfuse_bench_main(argc, argv);
}

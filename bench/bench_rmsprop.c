/*
 * rmsfuse benchmarks: every ISA path x flag set x working-set size, next to
 * the same-traffic roofline and two plain-C peers, in one run.
 *
 *   rmsprop/<flags>/<impl>/ws:<bytes>   one RMSProp step over n elements
 *   floor/sqrt_div/<isa>                sqrt + div throughput on registers
 *   floor/sqrt_div_grouped/<isa>        the same, all sqrts then all divs
 *   threads/<flags>/<impl>/t:<k>/ws:<bytes>  the step on k cores (rmsfuse_pool)
 *                                       against the roofline on the same k workers
 *   multi/<impl>/tensors:<count>/n:<elems>   many small tensors: one
 *                                       step_multi call, one step per tensor,
 *                                       and one step over a single flat array
 *
 * <flags>: plain, momentum, centered, centered_momentum (PyTorch placement,
 * lr 1e-4, alpha 0.99, eps 1e-8, momentum 0.9 when used).
 * <impl>:  scalar sse2 avx2 avx512 neon (forced with rmsfuse_set_isa),
 *          dispatched ("auto"), roofline, peer_O2, peer_native (kernels.h).
 * <bytes>: the working set, every array of the flag set counted once; the
 *          sizes are powers of two (4 KiB .. 512 MiB) plus, from hwloc, half
 *          of L1d, L2 and L3 and 8 x L3 ("DRAM", at most 1/8 of the RAM),
 *          listed in the JSON context as size_classes_ws.
 *
 * Rates use the STREAM convention of the spec (bytes per element: plain 20,
 * momentum 28, centered 28, centered + momentum 36).  The thread is bound to
 * the last core.  Own options (before the --benchmark_* ones):
 *   --rmsfuse_min_ws=SIZE --rmsfuse_max_ws=SIZE  bound the sizes (K/M/G suffixes)
 *   --rmsfuse_sweep=0                            only the cache-class sizes
 *   --rmsfuse_l3=SIZE                            the L3 size one core really has,
 *       where hwloc reports another (a VM may show the whole socket's L3)
 */
#define _POSIX_C_SOURCE 200809L

#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"
#include "rmsfuse.h"
#include "rmsfuse_pool.h"
#include "shim.h"

/* ---- flag sets and implementations ---------------------------------------- */
typedef struct flagset {
    const char *name;
    int narrays;      /* arrays touched: p, g, v (+ b) (+ ga) */
    int stream_bytes; /* STREAM bytes per element */
    double momentum;
    unsigned flags;
    bench_kernel roofline, peer_o2, peer_native;
} flagset;

static const flagset FSETS[FS_COUNT] = {
    {"plain", 3, 20, 0.0, 0u, roofline_plain, peer_plain_o2, peer_plain_native},
    {"momentum", 4, 28, 0.9, 0u, roofline_momentum, peer_momentum_o2, peer_momentum_native},
    {"centered", 4, 28, 0.0, RMSFUSE_CENTERED, roofline_centered, peer_centered_o2, peer_centered_native},
    {"centered_momentum", 5, 36, 0.9, RMSFUSE_CENTERED, roofline_centered_momentum, peer_centered_momentum_o2,
     peer_centered_momentum_native},
};

enum kind { K_ISA, K_DISPATCHED, K_ROOFLINE, K_PEER_O2, K_PEER_NATIVE, K_FLOOR, K_POOL, K_POOL_ROOFLINE,
             K_MULTI, K_MULTI_LOOP, K_MULTI_FLAT };

typedef struct bench_case {
    enum kind kind;
    const char *isa; /* K_ISA, K_FLOOR */
    int fs;
    size_t n;
    size_t ws; /* bytes actually touched: narrays * 4 * n */
    int threads;   /* K_POOL*: workers */
    size_t count;  /* K_MULTI*: tensors of n elements each; K_FLOOR: 1 = grouped order */
} bench_case;

static rmsfuse_rmsprop_config make_config(const flagset *f)
{
    rmsfuse_rmsprop_config cfg = rmsfuse_rmsprop_pytorch(1e-4);
    cfg.momentum = f->momentum;
    cfg.flags = f->flags;
    return cfg;
}

static peer_consts make_consts(const rmsfuse_rmsprop_config *cfg)
{
    peer_consts k = {(float)cfg->alpha, (float)(1.0 - cfg->alpha), (float)cfg->eps, (float)cfg->momentum,
                     (float)(-cfg->lr)};
    return k;
}

/* ---- the arrays ----------------------------------------------------------- */
/* Five arrays, allocated once for the largest case and reused.  Each starts
 * 2 MiB-aligned plus i * 320 bytes, so the arrays never share a 4 KiB page
 * offset (no 4K aliasing between a store stream and a load stream); every
 * kernel measured gets the same layout. */
#define N_ARRAYS     5
#define ARRAY_ALIGN  (2u << 20)
#define ARRAY_STAGGER 320u
static float *arrays[N_ARRAYS];

static int alloc_arrays(size_t n)
{
    for (int i = 0; i < N_ARRAYS; i++) {
        void *mem = NULL;
        if (posix_memalign(&mem, ARRAY_ALIGN, n * sizeof(float) + ARRAY_STAGGER * N_ARRAYS) != 0)
            return -1;
        arrays[i] = (float *)((char *)mem + ARRAY_STAGGER * (unsigned)i);
        memset(arrays[i], 0, n * sizeof(float)); /* fault the pages in now */
    }
    return 0;
}

/* Fresh, well-scaled state: |g| in [0.1, 1) with mixed signs; no zeros,
 * subnormals or special values. */
static void fill_arrays(size_t n)
{
    float *p = arrays[0], *g = arrays[1], *v = arrays[2], *b = arrays[3], *ga = arrays[4];
    uint32_t x = 12345u;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        float r = (float)(x >> 8) * (1.0f / 16777216.0f); /* [0, 1) */
        g[i] = (x & 1u) ? 0.1f + 0.9f * r : -0.1f - 0.9f * r;
        p[i] = 0.5f - r;
        v[i] = 0.25f * r + 0.01f;
        b[i] = 0.0f;
        ga[i] = 0.0f;
    }
}

/* ---- the benchmarks ------------------------------------------------------- */
/* The gradient never changes between steps, so in the centred flag sets the
 * variance estimate v - ga * ga decays to rounding noise within ~1000 steps
 * and its sqrt turns NaN, which real training never sees (and which slows
 * scalar sqrt down).  Every implementation therefore zeroes grad_avg every
 * REFRESH_STEPS steps inside its timed loop: a write of 4n bytes per
 * REFRESH_STEPS * (28 or 36)n bytes of traffic (< 0.1%, not counted). */
#define REFRESH_STEPS 256u
static inline void refresh(float *ga, size_t n, uint32_t step)
{
    if (ga && step % REFRESH_STEPS == 0)
        memset(ga, 0, n * sizeof(float));
}

static void bench_rmsprop(rmsfuse_bench_state *st, void *arg)
{
    const bench_case *bc = arg;
    const flagset *f = &FSETS[bc->fs];
    const size_t n = bc->n;
    char msg[160];

    float *p = arrays[0], *g = arrays[1], *v = arrays[2];
    float *b = f->momentum != 0.0 ? arrays[3] : NULL;
    float *ga = (f->flags & RMSFUSE_CENTERED) ? arrays[4] : NULL;
    rmsfuse_rmsprop_config cfg = make_config(f);
    peer_consts k = make_consts(&cfg);

    if (bc->kind == K_ISA || bc->kind == K_DISPATCHED) {
        const char *isa = bc->kind == K_ISA ? bc->isa : "auto";
        int s = rmsfuse_set_isa(isa);
        if (s != RMSFUSE_OK) {
            snprintf(msg, sizeof msg, "%s: %s", isa, rmsfuse_strerror(s));
            rmsfuse_bench_skip(st, msg);
            return;
        }
        fill_arrays(n);
        s = rmsfuse_rmsprop_step(&cfg, p, g, v, b, ga, n); /* warm-up, and check */
        if (s != RMSFUSE_OK) {
            snprintf(msg, sizeof msg, "rmsfuse_rmsprop_step: %s", rmsfuse_strerror(s));
            rmsfuse_bench_skip(st, msg);
            rmsfuse_set_isa("auto");
            return;
        }
        snprintf(msg, sizeof msg, "isa=%s", rmsfuse_active_isa());
        rmsfuse_bench_set_label(st, msg);
        for (uint32_t i = 1; rmsfuse_bench_keep_running(st); i++) {
            rmsfuse_rmsprop_step(&cfg, p, g, v, b, ga, n);
            refresh(ga, n, i);
        }
        rmsfuse_set_isa("auto");
    } else {
        bench_kernel fn = bc->kind == K_ROOFLINE ? f->roofline : bc->kind == K_PEER_O2 ? f->peer_o2 : f->peer_native;
        fill_arrays(n);
        fn(&k, p, g, v, b, ga, n); /* warm-up */
        for (uint32_t i = 1; rmsfuse_bench_keep_running(st); i++) {
            fn(&k, p, g, v, b, ga, n);
            refresh(ga, n, i);
        }
    }
    rmsfuse_bench_clobber_memory();

    int64_t it = rmsfuse_bench_iterations(st);
    rmsfuse_bench_set_bytes_processed(st, it * (int64_t)n * f->stream_bytes);
    rmsfuse_bench_set_items_processed(st, it * (int64_t)n);
    rmsfuse_bench_set_counter(st, "n", (double)n, 0);
    rmsfuse_bench_set_counter(st, "ws_bytes", (double)bc->ws, 0);
    rmsfuse_bench_set_counter(st, "stream_bytes_per_elem", (double)f->stream_bytes, 0);
}

/* ---- many cores: rmsfuse_pool against the roofline on the same workers ---- */
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
    bench_kernel fn;
    const peer_consts *k;
    float *p, *g, *v, *b, *ga;
    size_t n;
} roofline_job;

/* Each worker: the roofline kernel over the range the pool gives it for a
 * single array (rmsfuse_pool_split), so traffic and split are the pool's. */
static void roofline_worker(void *arg, int w, int nw)
{
    const roofline_job *J = arg;
    size_t lo, hi;
    rmsfuse_pool_split(J->p, J->n, w, nw, &lo, &hi);
    if (hi > lo)
        J->fn(J->k, J->p + lo, J->g + lo, J->v + lo, J->b ? J->b + lo : NULL, J->ga ? J->ga + lo : NULL, hi - lo);
}

static void bench_threads(rmsfuse_bench_state *st, void *arg)
{
    const bench_case *bc = arg;
    const flagset *f = &FSETS[bc->fs];
    const size_t n = bc->n;
    float *p = arrays[0], *g = arrays[1], *v = arrays[2];
    float *b = f->momentum != 0.0 ? arrays[3] : NULL;
    float *ga = (f->flags & RMSFUSE_CENTERED) ? arrays[4] : NULL;
    rmsfuse_rmsprop_config cfg = make_config(f);
    peer_consts k = make_consts(&cfg);
    rmsfuse_pool *pool = pool_for(bc->threads);
    char msg[160];
    if (!pool) {
        rmsfuse_bench_skip(st, "rmsfuse_pool_create failed");
        return;
    }
    rmsfuse_set_isa("auto");
    fill_arrays(n);
    if (bc->kind == K_POOL) {
        int s = rmsfuse_pool_rmsprop_step(pool, &cfg, p, g, v, b, ga, n);
        if (s != RMSFUSE_OK) {
            snprintf(msg, sizeof msg, "rmsfuse_pool_rmsprop_step: %s", rmsfuse_strerror(s));
            rmsfuse_bench_skip(st, msg);
            return;
        }
        for (uint32_t i = 1; rmsfuse_bench_keep_running(st); i++) {
            rmsfuse_pool_rmsprop_step(pool, &cfg, p, g, v, b, ga, n);
            refresh(ga, n, i);
        }
    } else {
        roofline_job J = {f->roofline, &k, p, g, v, b, ga, n};
        rmsfuse_pool_run(pool, roofline_worker, &J);
        for (uint32_t i = 1; rmsfuse_bench_keep_running(st); i++) {
            rmsfuse_pool_run(pool, roofline_worker, &J);
            refresh(ga, n, i);
        }
    }
    rmsfuse_bench_clobber_memory();
    int64_t it = rmsfuse_bench_iterations(st);
    rmsfuse_bench_set_bytes_processed(st, it * (int64_t)n * f->stream_bytes);
    rmsfuse_bench_set_items_processed(st, it * (int64_t)n);
    rmsfuse_bench_set_counter(st, "n", (double)n, 0);
    rmsfuse_bench_set_counter(st, "ws_bytes", (double)bc->ws, 0);
    rmsfuse_bench_set_counter(st, "threads", (double)bc->threads, 0);
    rmsfuse_bench_set_counter(st, "stream_bytes_per_elem", (double)f->stream_bytes, 0);
}

/* ---- many small tensors ---------------------------------------------------- */
/* count tensors of n elements, cut from the five arrays (momentum flag set);
 * one step_multi call, a loop of single steps, and one step over the same
 * elements as a single array (what the work costs without any per-tensor
 * cost). */
static void bench_multi(rmsfuse_bench_state *st, void *arg)
{
    const bench_case *bc = arg;
    const flagset *f = &FSETS[FS_MOMENTUM];
    const size_t n = bc->n, count = bc->count, total = n * count;
    rmsfuse_rmsprop_config cfg = make_config(f);
    rmsfuse_tensor *t = malloc(count * sizeof *t);
    if (!t) {
        rmsfuse_bench_skip(st, "out of memory");
        return;
    }
    for (size_t i = 0; i < count; i++) {
        rmsfuse_tensor x = {arrays[0] + i * n, arrays[1] + i * n, arrays[2] + i * n, arrays[3] + i * n, NULL, n};
        t[i] = x;
    }
    rmsfuse_set_isa("auto");
    fill_arrays(total);
    if (rmsfuse_rmsprop_step_multi(&cfg, t, count) != RMSFUSE_OK) {
        rmsfuse_bench_skip(st, "rmsfuse_rmsprop_step_multi failed");
        free(t);
        return;
    }
    if (bc->kind == K_MULTI) {
        while (rmsfuse_bench_keep_running(st))
            rmsfuse_rmsprop_step_multi(&cfg, t, count);
    } else if (bc->kind == K_MULTI_LOOP) {
        while (rmsfuse_bench_keep_running(st))
            for (size_t i = 0; i < count; i++)
                rmsfuse_rmsprop_step(&cfg, t[i].param, t[i].grad, t[i].square_avg, t[i].momentum_buf, NULL, n);
    } else {
        while (rmsfuse_bench_keep_running(st))
            rmsfuse_rmsprop_step(&cfg, arrays[0], arrays[1], arrays[2], arrays[3], NULL, total);
    }
    rmsfuse_bench_clobber_memory();
    free(t);
    int64_t it = rmsfuse_bench_iterations(st);
    rmsfuse_bench_set_bytes_processed(st, it * (int64_t)total * f->stream_bytes);
    rmsfuse_bench_set_items_processed(st, it * (int64_t)total);
    rmsfuse_bench_set_counter(st, "tensors", (double)count, 0);
    rmsfuse_bench_set_counter(st, "n", (double)n, 0);
}

#define FLOOR_REPS 256
static volatile float floor_sink;

static void bench_floor(rmsfuse_bench_state *st, void *arg)
{
    const bench_case *bc = arg;
    float (*fn)(int64_t, int) = NULL;
    int width = 0;
    char msg[160];

    if (!strcmp(bc->isa, "scalar"))
        fn = floor_sqrtdiv_scalar, width = 1;
    else if (!strcmp(bc->isa, "sse2"))
        fn = floor_sqrtdiv_sse2, width = 4;
    else if (!strcmp(bc->isa, "avx2"))
        fn = floor_sqrtdiv_avx2, width = 8;
    else if (!strcmp(bc->isa, "avx512"))
        fn = floor_sqrtdiv_avx512, width = 16;
    else if (!strcmp(bc->isa, "neon"))
        fn = floor_sqrtdiv_neon, width = 4;
    if (!fn || !rmsfuse_isa_supported(bc->isa)) {
        snprintf(msg, sizeof msg, "%s: %s", bc->isa, fn ? "not usable on this CPU/OS" : "no floor kernel");
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

/* Removes our own --rmsfuse_* options from argv. */
static void parse_options(int *argc, char **argv, size_t *min_ws, size_t *max_ws, int *sweep, size_t *l3)
{
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--rmsfuse_min_ws=", 17))
            *min_ws = parse_size(a + 17);
        else if (!strncmp(a, "--rmsfuse_max_ws=", 17))
            *max_ws = parse_size(a + 17);
        else if (!strncmp(a, "--rmsfuse_sweep=", 16))
            *sweep = atoi(a + 16);
        else if (!strncmp(a, "--rmsfuse_l3=", 13))
            *l3 = parse_size(a + 13);
        else
            argv[out++] = argv[i];
    }
    *argc = out;
    argv[out] = NULL;
}

static int cmp_size(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    return (a > b) - (a < b);
}

/* Target working sets: the sweep and the class sizes, sorted, unique. */
static int target_sizes(const machine *m, size_t min_ws, size_t max_ws, int sweep, size_t *out, int cap)
{
    int k = 0;
    size_t classes[4] = {m->cache[1] / 2, m->cache[2] / 2, m->cache[3] / 2, m->dram_ws};
    for (int i = 0; i < 4 && k < cap; i++)
        out[k++] = classes[i];
    if (sweep)
        for (size_t s = 4096; s <= ((size_t)512 << 20) && k < cap; s *= 2)
            out[k++] = s;
    qsort(out, (size_t)k, sizeof *out, cmp_size);
    int u = 0;
    for (int i = 0; i < k; i++)
        if (out[i] >= min_ws && out[i] <= max_ws && (u == 0 || out[u - 1] != out[i]))
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

static bench_case *add(enum kind kind, const char *isa, int fs, size_t n, const char *name)
{
    bench_case *bc = malloc(sizeof *bc);
    if (!bc) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    bc->kind = kind;
    bc->isa = isa;
    bc->fs = fs;
    bc->n = n;
    bc->ws = fs >= 0 ? n * (size_t)FSETS[fs].narrays * sizeof(float) : 0;
    bc->threads = 1;
    bc->count = 0;
    rmsfuse_bench_fn fn = bench_rmsprop;
    if (kind == K_FLOOR)
        fn = bench_floor;
    else if (kind == K_POOL || kind == K_POOL_ROOFLINE)
        fn = bench_threads;
    else if (kind == K_MULTI || kind == K_MULTI_LOOP || kind == K_MULTI_FLAT)
        fn = bench_multi;
    rmsfuse_bench_register(name, fn, bc);
    return bc;
}

/* The peers must do the library's work: same bits after a few steps. */
static const char *check_peers(void)
{
    enum { N = 1003, STEPS = 3 };
    static float buf[3][N_ARRAYS][N];
    for (int fs = 0; fs < FS_COUNT; fs++) {
        const flagset *f = &FSETS[fs];
        rmsfuse_rmsprop_config cfg = make_config(f);
        peer_consts k = make_consts(&cfg);
        for (int r = 0; r < 3; r++) {
            fill_arrays(N);
            for (int a = 0; a < N_ARRAYS; a++)
                memcpy(buf[r][a], arrays[a], sizeof buf[r][a]);
            float **x = (float *[]){buf[r][0], buf[r][1], buf[r][2], buf[r][3], buf[r][4]};
            for (int s = 0; s < STEPS; s++) {
                if (r == 0)
                    rmsfuse_rmsprop_step(&cfg, x[0], x[1], x[2], x[3], x[4], N);
                else
                    (r == 1 ? f->peer_o2 : f->peer_native)(&k, x[0], x[1], x[2], x[3], x[4], N);
            }
        }
        if (memcmp(buf[0], buf[1], sizeof buf[0]) || memcmp(buf[0], buf[2], sizeof buf[0]))
            return "NO: a peer differs from the library";
    }
    return "yes";
}

int main(int argc, char **argv)
{
    size_t min_ws = 0, max_ws = (size_t)-1;
    int sweep = 1;
    size_t l3 = 0;
    parse_options(&argc, argv, &min_ws, &max_ws, &sweep, &l3);

    /* The pools first: a pool's workers keep to the CPUs of the thread that
     * creates it, which discover() narrows to one core. */
    const int cores = rmsfuse_pool_machine_cores(); /* those this process may use */
    for (int t = 1; t <= cores && t <= 64; t++)
        (void)pool_for(t);

    machine m;
    discover(&m); /* binds this thread, which runs every benchmark */
    if (l3) {
        m.cache[3] = l3;
        set_dram_ws(&m);
        m.cache_source = "hwloc, L3 from --rmsfuse_l3";
    }

    size_t sizes[64];
    int nsizes = target_sizes(&m, min_ws, max_ws, sweep, sizes, 64);
    size_t max_n = 1u << 20; /* room for the many-tensors lists too */
    for (int fs = 0; fs < FS_COUNT; fs++)
        for (int i = 0; i < nsizes; i++)
            if (elements_for(&FSETS[fs], sizes[i]) > max_n)
                max_n = elements_for(&FSETS[fs], sizes[i]);
    if (alloc_arrays(max_n) != 0) {
        fprintf(stderr, "rmsfuse_bench: cannot allocate %d x %zu floats\n", N_ARRAYS, max_n);
        return 1;
    }

    /* Context for the JSON (and the console header). */
    char buf[512];
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
        if (rmsfuse_isa_supported(*nm)) {
            if (buf[0])
                strcat(buf, ",");
            strcat(buf, *nm);
        }
    rmsfuse_bench_add_context("rmsfuse_isas_supported", buf);
    rmsfuse_bench_add_context("compiler", RMSFUSE_BENCH_COMPILER);
    rmsfuse_bench_add_context("build_type", RMSFUSE_BENCH_BUILD_TYPE);
    rmsfuse_bench_add_context("peer_O2_flags", RMSFUSE_BENCH_PEER_O2_FLAGS);
    rmsfuse_bench_add_context("peer_native_flags", RMSFUSE_BENCH_PEER_NATIVE_FLAGS);
    rmsfuse_bench_add_context("roofline_flags", "-O3 -march=native");
    rmsfuse_bench_add_context("peers_bitexact_with_library", check_peers());
    rmsfuse_bench_add_context("config", "PyTorch placement, lr 1e-4, alpha 0.99, eps 1e-8, momentum 0.9 if used");
    snprintf(buf, sizeof buf, "%d arrays, each 2 MiB-aligned + i*%u bytes, reused across benchmarks",
             N_ARRAYS, ARRAY_STAGGER);
    rmsfuse_bench_add_context("array_layout", buf);
    snprintf(buf, sizeof buf, "%d", FLOOR_LANES);
    rmsfuse_bench_add_context("floor_independent_chains", buf);

    /* The divider's limit first, then each flag set by size; at one size
     * every implementation runs back to back, so ratios see the same
     * machine state. */
    static const char *floor_isas[] = {"scalar", "sse2", "avx2", "avx512", "neon"};
    for (size_t i = 0; i < sizeof floor_isas / sizeof floor_isas[0]; i++) {
        snprintf(buf, sizeof buf, "floor/sqrt_div/%s", floor_isas[i]);
        add(K_FLOOR, floor_isas[i], -1, 0, buf);
        snprintf(buf, sizeof buf, "floor/sqrt_div_grouped/%s", floor_isas[i]);
        add(K_FLOOR, floor_isas[i], -1, 0, buf)->count = 1;
    }
    for (int fs = 0; fs < FS_COUNT; fs++) {
        for (int i = 0; i < nsizes; i++) {
            const flagset *f = &FSETS[fs];
            size_t n = elements_for(f, sizes[i]);
            char pre[96];
            snprintf(pre, sizeof pre, "rmsprop/%s/", f->name);
#define ADD(kind, isa, impl)                                                     \
    do {                                                                        \
        snprintf(buf, sizeof buf, "%s%s/ws:%zu", pre, impl, sizes[i]);          \
        add(kind, isa, fs, n, buf);                                             \
    } while (0)
            for (const char *const *nm = rmsfuse_isa_names(); *nm; nm++)
                /* an ISA that cannot run is listed (skipped, with the reason)
                 * at the class sizes only, to keep the output short */
                if (rmsfuse_isa_supported(*nm) || is_class_size(&m, sizes[i]))
                    ADD(K_ISA, *nm, *nm);
            ADD(K_DISPATCHED, NULL, "dispatched");
            ADD(K_ROOFLINE, NULL, "roofline");
            ADD(K_PEER_O2, NULL, "peer_O2");
            ADD(K_PEER_NATIVE, NULL, "peer_native");
#undef ADD
        }
    }
    /* Many cores: the step on 1..all cores at the DRAM size, each against
     * the roofline run by the same workers. */
    snprintf(buf, sizeof buf, "%d", cores);
    rmsfuse_bench_add_context("machine_cores", buf);
    /* (Below the DRAM size when --rmsfuse_max_ws caps it: for smoke runs.) */
    const size_t tws = m.dram_ws < max_ws ? m.dram_ws : max_ws;
    if (tws >= min_ws)
        for (int fs = 0; fs < FS_COUNT; fs++)
            for (int t = 1; t <= cores && t <= 64; t++) {
                const flagset *f = &FSETS[fs];
                size_t n = elements_for(f, tws);
                snprintf(buf, sizeof buf, "threads/%s/pool/t:%d/ws:%zu", f->name, t, tws);
                add(K_POOL, NULL, fs, n, buf)->threads = t;
                snprintf(buf, sizeof buf, "threads/%s/roofline/t:%d/ws:%zu", f->name, t, tws);
                add(K_POOL_ROOFLINE, NULL, fs, n, buf)->threads = t;
            }

    /* Many small tensors (momentum flag set). */
    static const size_t multi_shapes[][2] = {{1000, 16}, {1000, 256}, {200, 4096}};
    static const char *multi_impls[] = {"step_multi", "step_loop", "flat"};
    for (size_t i = 0; i < sizeof multi_shapes / sizeof multi_shapes[0]; i++)
        for (int k = 0; k < 3; k++) {
            const size_t count = multi_shapes[i][0], n = multi_shapes[i][1];
            if (count * n > max_n)
                continue;
            snprintf(buf, sizeof buf, "multi/%s/tensors:%zu/n:%zu", multi_impls[k], count, n);
            add(k == 0 ? K_MULTI : k == 1 ? K_MULTI_LOOP : K_MULTI_FLAT, NULL, FS_MOMENTUM, n, buf)->count = count;
        }
    return rmsfuse_bench_main(argc, argv);
}

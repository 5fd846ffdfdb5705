/*
 * The thread pool (include/rmsfuse_pool.h): workers bound to cores with
 * hwloc, woken per call through a condition variable, each running the
 * pieces of a prepared step (a plan of any rule, validated once by the
 * core library) dealt to it.  A baseline file, as every file outside src/<isa>/.
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/pool/rmsfuse_pool.c is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include "rmsfuse_pool.h"

#include "../core/lines.h"

#include <hwloc.h>
#include <pthread.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>

enum {
    MAX_THREADS = 4096,
    MIN_PIECE = 16384,    /* elements: below this per worker, fewer workers are used */
    LINE_FLOATS = 16,     /* a 64-byte cache line */
};

/* One call's work: a plan's elements [0, total) in `pieces` pieces. */
typedef struct job {
    const rmsfuse_plan *plan;
    size_t total;
    size_t pieces;
    size_t chunk; /* piece k starts at element k * chunk; 0: even split into `pieces` */
    const rmsfuse_grad_options *opt; /* NULL: rmsfuse_plan_run; else rmsfuse_plan_run_ex with the sum given */
} job;

typedef struct pool_worker {
    rmsfuse_pool *pool;
    int index;
    pthread_t thread;
} pool_worker;

struct rmsfuse_pool {
    int nthreads;
    size_t chunk;
    pool_worker *workers;
    hwloc_topology_t topo;
    hwloc_cpuset_t *cpusets; /* per worker, or NULL entries when unbound */

    pthread_mutex_t call_mu; /* one call at a time */
    pthread_mutex_t mu;
    pthread_cond_t start_cv, done_cv;
    unsigned long generation;
    int pending, stop;
    void (*fn)(void *, int, int);
    void *arg;

};

/* ---- cutting ------------------------------------------------------------ */

/* Element where piece k starts, before moving it to a cut. */
static size_t piece_start(const job *J, size_t k)
{
    if (k >= J->pieces)
        return J->total;
    if (J->chunk)
        return k * J->chunk; /* k < pieces = ceil(total / chunk): no overflow */
    /* total * k / pieces without overflow: pieces <= MAX_THREADS. */
    return J->total / J->pieces * k + J->total % J->pieces * k / J->pieces;
}

static void job_worker(void *arg, int w, int nw)
{
    const job *J = arg;
    for (size_t k = (size_t)w; k < J->pieces; k += (size_t)nw) {
        const size_t a = rmsfuse_plan_cut(J->plan, piece_start(J, k)), b = rmsfuse_plan_cut(J->plan, piece_start(J, k + 1));
        if (J->opt)
            (void)rmsfuse_plan_run_ex(J->plan, a, b, J->opt, NULL);
        else
            (void)rmsfuse_plan_run(J->plan, a, b);
    }
}

/* The norm's pass: blocks [0, blocks) of a plan in `pieces` even pieces,
 * each block's sum into sums[block]. */
typedef struct norm_job {
    const rmsfuse_plan *plan;
    double scale;
    size_t blocks, pieces;
    double *sums;
} norm_job;

static void norm_worker(void *arg, int w, int nw)
{
    const norm_job *J = arg;
    for (size_t k = (size_t)w; k < J->pieces; k += (size_t)nw) {
        const size_t a = J->blocks / J->pieces * k + J->blocks % J->pieces * k / J->pieces;
        const size_t b = J->blocks / J->pieces * (k + 1) + J->blocks % J->pieces * (k + 1) / J->pieces;
        (void)rmsfuse_plan_block_sumsq(J->plan, J->scale, a, b, J->sums + a);
    }
}

void rmsfuse_pool_split(const float *param, size_t n, int worker, int workers, size_t *begin, size_t *end)
{
    if (workers < 1 || workers > MAX_THREADS || worker < 0 || worker >= workers) {
        *begin = *end = 0;
        return;
    }
    /* The cuts of a one-tensor plan (rmsfuse_plan_cut), on param alone. */
    const job J = {NULL, n, (size_t)workers, 0, NULL};
    size_t cut[2];
    for (int e = 0; e < 2; e++) {
        const size_t f = piece_start(&J, (size_t)worker + (size_t)e);
        const size_t skip = f == 0 || f >= n ? 0 : rmsfuse_to_line(param + f, sizeof *param);
        cut[e] = skip < n - f ? f + skip : n;
    }
    *begin = cut[0];
    *end = cut[1];
}

/* ---- threads ------------------------------------------------------------ */

static void *worker_main(void *arg)
{
    pool_worker *me = arg;
    rmsfuse_pool *P = me->pool;
    if (P->cpusets[me->index])
        (void)hwloc_set_cpubind(P->topo, P->cpusets[me->index], HWLOC_CPUBIND_THREAD);
    /* Unbound if that fails (a restricted container): still correct. */
    unsigned long seen = 0;
    pthread_mutex_lock(&P->mu);
    for (;;) {
        while (P->generation == seen && !P->stop)
            pthread_cond_wait(&P->start_cv, &P->mu);
        if (P->stop)
            break;
        seen = P->generation;
        void (*fn)(void *, int, int) = P->fn;
        void *fn_arg = P->arg;
        pthread_mutex_unlock(&P->mu);
        fn(fn_arg, me->index, P->nthreads);
        pthread_mutex_lock(&P->mu);
        if (--P->pending == 0)
            pthread_cond_signal(&P->done_cv);
    }
    pthread_mutex_unlock(&P->mu);
    return NULL;
}

/* With call_mu held: fn on every worker, back when all are done. */
static void run_all(rmsfuse_pool *P, void (*fn)(void *, int, int), void *arg)
{
    pthread_mutex_lock(&P->mu);
    P->fn = fn;
    P->arg = arg;
    P->pending = P->nthreads;
    P->generation++;
    pthread_cond_broadcast(&P->start_cv);
    while (P->pending > 0)
        pthread_cond_wait(&P->done_cv, &P->mu);
    pthread_mutex_unlock(&P->mu);
}

int rmsfuse_pool_run(rmsfuse_pool *pool, void (*fn)(void *arg, int worker, int workers), void *arg)
{
    if (!pool || !fn)
        return RMSFUSE_E_NULL_POOL;
    pthread_mutex_lock(&pool->call_mu);
    run_all(pool, fn, arg);
    pthread_mutex_unlock(&pool->call_mu);
    return RMSFUSE_OK;
}

static int load_topology(hwloc_topology_t *topo)
{
    if (hwloc_topology_init(topo) != 0)
        return 0;
    if (hwloc_topology_load(*topo) != 0) {
        hwloc_topology_destroy(*topo);
        return 0;
    }
    return 1;
}

/* The CPUs the calling thread may run on: its binding, which taskset,
 * mpirun's --bind-to or a cgroup cpuset give the whole process (not the
 * union over the process's threads: the workers of an earlier pool must not
 * widen it), or all that hwloc allows when it cannot tell.  NULL only when
 * out of memory. */
static hwloc_bitmap_t usable_cpus(hwloc_topology_t topo)
{
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (!set)
        return NULL;
    const hwloc_const_bitmap_t allowed = hwloc_topology_get_allowed_cpuset(topo);
    if (hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_THREAD) != 0)
        hwloc_bitmap_zero(set);
    hwloc_bitmap_and(set, set, allowed);
    if (hwloc_bitmap_iszero(set))
        hwloc_bitmap_copy(set, allowed);
    return set;
}

/* The cores (or PUs, if the topology has no cores) that share a CPU with
 * `usable`, in hwloc's logical order: *count of them; the k-th with
 * usable_core(). */
static hwloc_obj_type_t core_type(hwloc_topology_t topo)
{
    return hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
}

static hwloc_obj_t usable_core(hwloc_topology_t topo, hwloc_const_bitmap_t usable, int k)
{
    const hwloc_obj_type_t type = core_type(topo);
    hwloc_obj_t o = NULL;
    while ((o = hwloc_get_next_obj_by_type(topo, type, o)) != NULL)
        if (o->cpuset && hwloc_bitmap_intersects(o->cpuset, usable) && k-- == 0)
            return o;
    return NULL;
}

static int count_cores(hwloc_topology_t topo, hwloc_const_bitmap_t usable)
{
    int n = 0;
    while (usable_core(topo, usable, n))
        n++;
    return n;
}

int rmsfuse_pool_machine_cores(void)
{
    hwloc_topology_t topo;
    if (!load_topology(&topo))
        return 0;
    hwloc_bitmap_t usable = usable_cpus(topo);
    const int n = usable ? count_cores(topo, usable) : 0;
    hwloc_bitmap_free(usable);
    hwloc_topology_destroy(topo);
    return n;
}

/* Objects of `type` in the topology (-1 when they sit at several depths). */
static long long count_type(hwloc_topology_t topo, hwloc_obj_type_t type)
{
    const int depth = hwloc_get_type_depth(topo, type);
    if (depth == HWLOC_TYPE_DEPTH_UNKNOWN)
        return 0;
    if (depth == HWLOC_TYPE_DEPTH_MULTIPLE)
        return -1;
    return (long long)hwloc_get_nbobjs_by_depth(topo, depth);
}

long long rmsfuse_pool_topology(int what)
{
    static const hwloc_obj_type_t caches[5] = {HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L3CACHE,
                                               HWLOC_OBJ_L4CACHE, HWLOC_OBJ_L5CACHE};
    const int level = what - (what >= RMSFUSE_POOL_TOPO_CACHE_COUNT ? RMSFUSE_POOL_TOPO_CACHE_COUNT
                                                                    : RMSFUSE_POOL_TOPO_CACHE_BYTES);
    const int is_cache = what > RMSFUSE_POOL_TOPO_CACHE_BYTES && level >= 1 && level <= 5;
    if (!is_cache && (what < RMSFUSE_POOL_TOPO_PACKAGES || what > RMSFUSE_POOL_TOPO_NUMA_NODES))
        return -1;
    hwloc_topology_t topo;
    if (!load_topology(&topo))
        return -1;
    long long out = 0;
    if (what == RMSFUSE_POOL_TOPO_PACKAGES)
        out = count_type(topo, HWLOC_OBJ_PACKAGE);
    else if (what == RMSFUSE_POOL_TOPO_CORES)
        out = count_type(topo, HWLOC_OBJ_CORE);
    else if (what == RMSFUSE_POOL_TOPO_PUS)
        out = count_type(topo, HWLOC_OBJ_PU);
    else if (what == RMSFUSE_POOL_TOPO_NUMA_NODES)
        out = count_type(topo, HWLOC_OBJ_NUMANODE);
    else if (what >= RMSFUSE_POOL_TOPO_CACHE_COUNT)
        out = count_type(topo, caches[level - 1]);
    else {
        /* Up from the first usable PU to the data/unified cache of that level. */
        hwloc_bitmap_t usable = usable_cpus(topo);
        hwloc_obj_t o = NULL;
        if (usable) {
            const int first = hwloc_bitmap_first(usable);
            o = first >= 0 ? hwloc_get_pu_obj_by_os_index(topo, (unsigned)first) : NULL;
        }
        for (; o; o = o->parent)
            if (o->type == caches[level - 1] && o->attr) {
                out = (long long)o->attr->cache.size;
                break;
            }
        hwloc_bitmap_free(usable);
    }
    hwloc_topology_destroy(topo);
    return out;
}

static void pool_free(rmsfuse_pool *P)
{
    if (P->cpusets) {
        for (int i = 0; i < P->nthreads; i++)
            if (P->cpusets[i])
                hwloc_bitmap_free(P->cpusets[i]);
        free(P->cpusets);
    }
    hwloc_topology_destroy(P->topo);
    pthread_cond_destroy(&P->start_cv);
    pthread_cond_destroy(&P->done_cv);
    pthread_mutex_destroy(&P->mu);
    pthread_mutex_destroy(&P->call_mu);
    free(P->workers);
    free(P);
}

/* Stops and joins the first `started` workers. */
static void stop_workers(rmsfuse_pool *P, int started)
{
    pthread_mutex_lock(&P->mu);
    P->stop = 1;
    pthread_cond_broadcast(&P->start_cv);
    pthread_mutex_unlock(&P->mu);
    for (int i = 0; i < started; i++)
        pthread_join(P->workers[i].thread, NULL);
}

int rmsfuse_pool_create(rmsfuse_pool **pool, int threads)
{
    if (!pool)
        return RMSFUSE_E_NULL_POOL;
    *pool = NULL;
    if (threads < 0 || threads > MAX_THREADS)
        return RMSFUSE_E_SIZE;
    rmsfuse_pool *P = calloc(1, sizeof *P);
    if (!P)
        return RMSFUSE_E_NO_MEMORY;
    if (!load_topology(&P->topo)) {
        free(P);
        return RMSFUSE_E_THREADS;
    }
    pthread_mutex_init(&P->call_mu, NULL);
    pthread_mutex_init(&P->mu, NULL);
    pthread_cond_init(&P->start_cv, NULL);
    pthread_cond_init(&P->done_cv, NULL);

    hwloc_bitmap_t usable = usable_cpus(P->topo);
    const int cores = usable ? count_cores(P->topo, usable) : 0;
    P->nthreads = threads ? threads : (cores ? cores : 1);
    P->workers = calloc((size_t)P->nthreads, sizeof *P->workers);
    P->cpusets = calloc((size_t)P->nthreads, sizeof *P->cpusets);
    if (!usable || !P->workers || !P->cpusets) {
        hwloc_bitmap_free(usable);
        pool_free(P);
        return RMSFUSE_E_NO_MEMORY;
    }
    /* Worker i: the usable CPUs of the i-th usable core. */
    for (int i = 0; i < P->nthreads && cores; i++) {
        hwloc_obj_t obj = usable_core(P->topo, usable, i % cores);
        if (obj && (P->cpusets[i] = hwloc_bitmap_dup(obj->cpuset)) != NULL)
            hwloc_bitmap_and(P->cpusets[i], P->cpusets[i], usable);
    }
    hwloc_bitmap_free(usable);
    for (int i = 0; i < P->nthreads; i++) {
        P->workers[i].pool = P;
        P->workers[i].index = i;
        if (pthread_create(&P->workers[i].thread, NULL, worker_main, &P->workers[i]) != 0) {
            stop_workers(P, i);
            pool_free(P);
            return RMSFUSE_E_THREADS;
        }
    }
    *pool = P;
    return RMSFUSE_OK;
}

void rmsfuse_pool_destroy(rmsfuse_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->call_mu); /* let a running call finish */
    stop_workers(pool, pool->nthreads);
    pthread_mutex_unlock(&pool->call_mu);
    pool_free(pool);
}

int rmsfuse_pool_threads(const rmsfuse_pool *pool)
{
    return pool ? pool->nthreads : 0;
}

int rmsfuse_pool_set_chunk(rmsfuse_pool *pool, size_t elements)
{
    if (!pool)
        return RMSFUSE_E_NULL_POOL;
    pthread_mutex_lock(&pool->call_mu);
    pool->chunk = elements;
    pthread_mutex_unlock(&pool->call_mu);
    return RMSFUSE_OK;
}

/* ---- running plans ------------------------------------------------------- */

/* The plan's elements on the pool: rmsfuse_plan_run, or with opt (the sum
 * of squares given) rmsfuse_plan_run_ex, over pieces.  Holds call_mu. */
static void run_pieces(rmsfuse_pool *pool, const rmsfuse_plan *plan, const rmsfuse_grad_options *opt)
{
    job J = {plan, rmsfuse_plan_elements(plan), 0, 0, opt};
    if (J.total == 0) {
        J.pieces = 0;
    } else if (pool->chunk) {
        const size_t c = pool->chunk < J.total ? pool->chunk : J.total;
        J.chunk = (c + LINE_FLOATS - 1) / LINE_FLOATS * LINE_FLOATS;
        J.pieces = J.total / J.chunk + (J.total % J.chunk != 0);
    } else {
        const size_t most = J.total / MIN_PIECE;
        J.pieces = most < (size_t)pool->nthreads ? most : (size_t)pool->nthreads;
    }
    if (J.pieces <= 1) /* too small to share: the caller does it (no wake-up latency) */
        J.pieces = 1, job_worker(&J, 0, 1);
    else
        run_all(pool, job_worker, &J);
}

int rmsfuse_pool_run_plan(rmsfuse_pool *pool, const rmsfuse_plan *plan)
{
    if (!pool)
        return RMSFUSE_E_NULL_POOL;
    if (!plan)
        return RMSFUSE_E_NULL_PLAN;
    pthread_mutex_lock(&pool->call_mu);
    run_pieces(pool, plan, NULL);
    pthread_mutex_unlock(&pool->call_mu);
    return RMSFUSE_OK;
}

int rmsfuse_pool_run_plan_ex(rmsfuse_pool *pool, const rmsfuse_plan *plan, const rmsfuse_grad_options *opt,
                             rmsfuse_grad_info *info)
{
    if (!pool)
        return RMSFUSE_E_NULL_POOL;
    if (!plan)
        return RMSFUSE_E_NULL_PLAN;
    rmsfuse_grad_options o = opt ? *opt : rmsfuse_grad_options_none();
    int st = rmsfuse_plan_run_ex(plan, 0, 0, &o, NULL); /* checks the options, writes nothing */
    if (st != RMSFUSE_OK && st != RMSFUSE_SKIPPED)
        return st;
    const int norm = ((o.flags & RMSFUSE_SKIP_NONFINITE) || o.max_norm < HUGE_VAL) && !(o.flags & RMSFUSE_SUMSQ_GIVEN);
    pthread_mutex_lock(&pool->call_mu);
    if (norm) {
        const size_t blocks = rmsfuse_plan_blocks(plan);
        double *sums = blocks ? malloc(blocks * sizeof *sums) : NULL;
        if (blocks && !sums) {
            pthread_mutex_unlock(&pool->call_mu);
            return RMSFUSE_E_NO_MEMORY;
        }
        /* As many pieces as the step's (blocks of 4096 elements: one per
         * worker, no piece under MIN_PIECE elements). */
        const size_t most = blocks / (MIN_PIECE / RMSFUSE_NORM_BLOCK);
        norm_job N = {plan, o.scale, blocks, most < (size_t)pool->nthreads ? most : (size_t)pool->nthreads, sums};
        if (N.pieces <= 1)
            N.pieces = blocks != 0, norm_worker(&N, 0, 1);
        else
            run_all(pool, norm_worker, &N);
        double sumsq = 0.0; /* the fixed order: block after block */
        for (size_t b = 0; b < blocks; b++)
            sumsq += sums[b];
        free(sums);
        o.sumsq = sumsq;
        o.flags |= RMSFUSE_SUMSQ_GIVEN;
    }
    st = rmsfuse_plan_run_ex(plan, 0, 0, &o, info); /* the outcome and info, writing nothing */
    if (st == RMSFUSE_OK)
        run_pieces(pool, plan, &o);
    pthread_mutex_unlock(&pool->call_mu);
    return st;
}

int rmsfuse_pool_rmsprop_step_multi(rmsfuse_pool *pool, const rmsfuse_rmsprop_config *cfg,
                                    const rmsfuse_tensor *tensors, size_t count)
{
    if (!pool)
        return RMSFUSE_E_NULL_POOL;
    rmsfuse_plan *plan;
    int st = rmsfuse_rmsprop_plan(cfg, tensors, count, &plan); /* everything is validated here */
    if (st == RMSFUSE_OK)
        st = rmsfuse_pool_run_plan(pool, plan);
    rmsfuse_plan_free(plan);
    return st;
}

int rmsfuse_pool_rmsprop_step(rmsfuse_pool *pool, const rmsfuse_rmsprop_config *cfg, float *param,
                              const float *grad, float *square_avg, float *momentum_buf, float *grad_avg,
                              size_t n)
{
    /* A one-tensor list has exactly the single call's rules (and n == 0 is
     * still a no-op after the configuration check). */
    const rmsfuse_tensor t = {param, grad, square_avg, momentum_buf, grad_avg, n};
    return rmsfuse_pool_rmsprop_step_multi(pool, cfg, &t, 1);
}

/*
 * The thread pool (include/rmsfuse_pool.h): workers bound to cores with
 * hwloc, woken per call through a condition variable, each updating the
 * pieces of the step dealt to it with the core library's public, validated
 * entry points.  A baseline file, as every file outside src/<isa>/.
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/pool/rmsfuse_pool.c is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include "rmsfuse_pool.h"

#include <hwloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

enum {
    MAX_THREADS = 4096,
    MIN_PIECE = 16384,    /* elements: below this per worker, fewer workers are used */
    LINE_FLOATS = 16,     /* a 64-byte cache line */
};

/* One call's work: the tensors laid end to end (prefix[j] = elements before
 * tensor j, prefix[count] = total), cut into `pieces` pieces. */
typedef struct job {
    const rmsfuse_rmsprop_config *cfg;
    const rmsfuse_tensor *t;
    size_t count;
    const size_t *prefix;
    size_t pieces;
    size_t chunk; /* piece k starts at flat index k * chunk; 0: even split into `pieces` */
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

    int *status;    /* per worker, for the current call */
    size_t *prefix; /* scratch for the current call */
    size_t prefix_cap;
};

/* ---- cutting ------------------------------------------------------------ */

/* Flat index where piece k starts. */
static size_t piece_start(const job *J, size_t k)
{
    const size_t total = J->prefix[J->count];
    if (k >= J->pieces)
        return total;
    if (J->chunk)
        return k * J->chunk; /* k < pieces = ceil(total / chunk): no overflow */
    /* total * k / pieces without overflow: pieces <= MAX_THREADS. */
    return total / J->pieces * k + total % J->pieces * k / J->pieces;
}

/* The tensor holding flat index f (the last tensor j with prefix[j] <= f,
 * skipping empty ones), by bisection. */
static size_t tensor_of(const job *J, size_t f)
{
    size_t lo = 0, hi = J->count; /* prefix[lo] <= f < prefix[hi] */
    while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        if (J->prefix[mid] <= f)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Elements to skip from p so that p + skip starts a cache line (0 when p is
 * not even float-aligned: then no cut can be line-aligned). */
static size_t to_line(const float *p)
{
    const uintptr_t mis = (uintptr_t)p & 63u;
    return (mis & 3u) ? 0 : ((64u - mis) & 63u) / 4u;
}

/* Flat index f moved forward to a cache-line boundary of its tensor's param
 * (or to the tensor's end). */
static size_t align_cut(const job *J, size_t f)
{
    const size_t total = J->prefix[J->count];
    if (f == 0 || f >= total)
        return f < total ? f : total;
    const size_t j = tensor_of(J, f);
    const size_t o = f - J->prefix[j];
    if (o == 0)
        return f;
    const size_t n = J->t[j].n;
    const size_t skip = to_line(J->t[j].param + o);
    return J->prefix[j] + (skip < n - o ? o + skip : n);
}

/* Offsets from a base pointer that may be NULL (an unused state array). */
static float *at(float *p, size_t o)
{
    return p ? p + o : NULL;
}

/* Updates flat range [f0, f1) tensor by tensor.  Each piece is a valid
 * step on its own (a sub-range of a validated tensor). */
static int run_range(const job *J, size_t f0, size_t f1)
{
    int st = RMSFUSE_OK;
    for (size_t j = f0 < f1 ? tensor_of(J, f0) : J->count; j < J->count && J->prefix[j] < f1; j++) {
        const rmsfuse_tensor *t = &J->t[j];
        const size_t lo = f0 > J->prefix[j] ? f0 - J->prefix[j] : 0;
        const size_t hi = f1 - J->prefix[j] < t->n ? f1 - J->prefix[j] : t->n;
        if (hi <= lo)
            continue;
        const int s = rmsfuse_rmsprop_step(J->cfg, t->param + lo, t->grad + lo, t->square_avg + lo,
                                           at(t->momentum_buf, lo), at(t->grad_avg, lo), hi - lo);
        if (s != RMSFUSE_OK)
            st = s;
    }
    return st;
}

typedef struct job_run {
    const job *J;
    int *status; /* per worker */
} job_run;

static void job_worker(void *arg, int w, int nw)
{
    job_run *R = arg;
    const job *J = R->J;
    int st = RMSFUSE_OK;
    for (size_t k = (size_t)w; k < J->pieces; k += (size_t)nw) {
        const int s = run_range(J, align_cut(J, piece_start(J, k)), align_cut(J, piece_start(J, k + 1)));
        if (s != RMSFUSE_OK)
            st = s;
    }
    R->status[w] = st;
}

void rmsfuse_pool_split(const float *param, size_t n, int worker, int workers, size_t *begin, size_t *end)
{
    if (workers < 1 || workers > MAX_THREADS || worker < 0 || worker >= workers) {
        *begin = *end = 0;
        return;
    }
    rmsfuse_tensor t = {(float *)param, NULL, NULL, NULL, NULL, n};
    size_t prefix[2] = {0, n};
    job J = {NULL, &t, 1, prefix, (size_t)workers, 0};
    *begin = align_cut(&J, piece_start(&J, (size_t)worker));
    *end = align_cut(&J, piece_start(&J, (size_t)worker + 1));
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
    free(P->status);
    free(P->prefix);
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
    P->status = calloc((size_t)P->nthreads, sizeof *P->status);
    if (!usable || !P->workers || !P->cpusets || !P->status) {
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

/* ---- the step ----------------------------------------------------------- */

int rmsfuse_pool_rmsprop_step_multi(rmsfuse_pool *pool, const rmsfuse_rmsprop_config *cfg,
                                    const rmsfuse_tensor *tensors, size_t count)
{
    if (!pool)
        return RMSFUSE_E_NULL_POOL;
    /* Everything is validated here, before any worker writes. */
    int st = rmsfuse_rmsprop_check_multi(cfg, tensors, count);
    if (st != RMSFUSE_OK || count == 0)
        return st;

    pthread_mutex_lock(&pool->call_mu);
    if (pool->prefix_cap < count + 1) {
        size_t *p = realloc(pool->prefix, (count + 1) * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&pool->call_mu);
            return RMSFUSE_E_NO_MEMORY;
        }
        pool->prefix = p;
        pool->prefix_cap = count + 1;
    }
    size_t total = 0;
    for (size_t j = 0; j < count; j++) {
        pool->prefix[j] = total;
        total += tensors[j].n; /* cannot overflow: the arrays are disjoint in memory */
    }
    pool->prefix[count] = total;

    job J = {cfg, tensors, count, pool->prefix, 0, 0};
    if (total == 0) {
        J.pieces = 0;
    } else if (pool->chunk) {
        const size_t c = pool->chunk < total ? pool->chunk : total;
        J.chunk = (c + LINE_FLOATS - 1) / LINE_FLOATS * LINE_FLOATS;
        J.pieces = total / J.chunk + (total % J.chunk != 0);
    } else {
        const size_t most = total / MIN_PIECE;
        J.pieces = most < (size_t)pool->nthreads ? most : (size_t)pool->nthreads;
    }
    if (J.pieces <= 1) {
        /* Too small to share: the caller does it (no wake-up latency). */
        st = rmsfuse_rmsprop_step_multi(cfg, tensors, count);
    } else {
        job_run R = {&J, pool->status};
        run_all(pool, job_worker, &R);
        for (int w = 0; w < pool->nthreads; w++)
            if (R.status[w] != RMSFUSE_OK)
                st = R.status[w];
    }
    pthread_mutex_unlock(&pool->call_mu);
    return st;
}

int rmsfuse_pool_rmsprop_step(rmsfuse_pool *pool, const rmsfuse_rmsprop_config *cfg, float *param,
                              const float *grad, float *square_avg, float *momentum_buf, float *grad_avg,
                              size_t n)
{
    if (!pool)
        return RMSFUSE_E_NULL_POOL;
    /* A one-tensor list has exactly the single call's rules (and n == 0 is
     * still a no-op after the configuration check). */
    const rmsfuse_tensor t = {param, grad, square_avg, momentum_buf, grad_avg, n};
    return rmsfuse_pool_rmsprop_step_multi(pool, cfg, &t, 1);
}

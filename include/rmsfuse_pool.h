/*
 * rmsfuse_pool: the update rules on many cores (library rmsfuse_pool,
 * CMake target rmsfuse::rmsfuse_pool, pkg-config rmsfuse_pool).
 *
 * An opt-in runtime object on top of the core library: a fixed set of
 * worker threads (pthreads), each bound to one core with hwloc, that split
 * a step over large arrays or tensor lists.  The split falls on cache-line
 * boundaries of each param array, so no two threads write the same cache
 * line of param (nor of a state array with the same alignment modulo 64
 * bytes, as arrays from malloc/posix_memalign/PyTorch have).  Every element
 * is computed by the same kernel as the single-threaded call, so the
 * results are bit-identical to it whatever the thread count or chunking.
 *
 * The core library (rmsfuse.h) stays dependency-free; only this part needs
 * pthreads and hwloc.  One pool may be used from several threads: calls on
 * the same pool run one after another.  Like the core, it never prints and
 * never aborts; a call that fails writes nothing.
 */
#ifndef RMSFUSE_POOL_H
#define RMSFUSE_POOL_H

#include "rmsfuse.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rmsfuse_pool rmsfuse_pool;

/*
 * Creates a pool of `threads` workers (0: one per usable core, as
 * rmsfuse_pool_machine_cores() counts them).  Worker i is bound to the i-th
 * usable core in hwloc's logical order (which groups the cores of a NUMA
 * node together), wrapping around when there are more workers than cores.
 * Usable means within the CPU binding of the calling thread, which taskset,
 * mpirun --bind-to or a cgroup cpuset set for the whole process: pools of
 * MPI ranks bound to different cores do not share cores.  Returns RMSFUSE_OK and *pool, or
 * RMSFUSE_E_NULL_POOL (pool is NULL), RMSFUSE_E_SIZE (threads < 0 or
 * > 4096), RMSFUSE_E_NO_MEMORY or RMSFUSE_E_THREADS, with *pool set to NULL.
 */
RMSFUSE_API int rmsfuse_pool_create(rmsfuse_pool **pool, int threads);

/* Stops and joins the workers and frees the pool; NULL is a no-op. */
RMSFUSE_API void rmsfuse_pool_destroy(rmsfuse_pool *pool);

/* Number of workers (0 for a NULL pool). */
RMSFUSE_API int rmsfuse_pool_threads(const rmsfuse_pool *pool);

/* Number of cores the calling thread may run on (its CPU binding; the
 * whole machine when unbound), as hwloc counts them (0 if it could not
 * tell). */
RMSFUSE_API int rmsfuse_pool_machine_cores(void);

/* What rmsfuse_pool_topology() reports (`what`).  A cache level's size is
 * that of the data or unified cache of level L above the first core the
 * calling thread may run on: RMSFUSE_POOL_TOPO_CACHE_BYTES + L; the number
 * of such caches in the machine: RMSFUSE_POOL_TOPO_CACHE_COUNT + L
 * (L = 1 .. 5). */
enum {
    RMSFUSE_POOL_TOPO_PACKAGES = 0,     /* processor packages (sockets) */
    RMSFUSE_POOL_TOPO_CORES = 1,        /* cores of the machine */
    RMSFUSE_POOL_TOPO_PUS = 2,          /* hardware threads (processing units) */
    RMSFUSE_POOL_TOPO_NUMA_NODES = 3,   /* NUMA nodes */
    RMSFUSE_POOL_TOPO_CACHE_BYTES = 16, /* + level */
    RMSFUSE_POOL_TOPO_CACHE_COUNT = 32  /* + level */
};

/*
 * The machine as hwloc sees it, for diagnostics (`python3 -m rmsfuse
 * info`): `what` is an RMSFUSE_POOL_TOPO_* value above.  Counts are of the
 * whole machine, whatever the calling thread's binding
 * (rmsfuse_pool_machine_cores counts the usable cores).  Returns the count
 * or the size in bytes; 0 when hwloc does not know it (no cache of that
 * level); -1 for an unknown `what`, when hwloc cannot load the topology or
 * when it has such objects at several depths.
 */
RMSFUSE_API long long rmsfuse_pool_topology(int what);

/*
 * Work granularity, in elements: the step is cut into pieces of about this
 * many elements (rounded to whole cache lines of param), dealt round-robin
 * to the workers.  0 (the default) cuts the work into one piece per worker,
 * but no piece smaller than 16384 elements, so small steps run on fewer
 * workers (on the caller alone when there is one piece).  Any value gives
 * the same results.  Returns RMSFUSE_OK or RMSFUSE_E_NULL_POOL.
 */
RMSFUSE_API int rmsfuse_pool_set_chunk(rmsfuse_pool *pool, size_t elements);

/*
 * Runs a prepared step (rmsfuse_<rule>_plan, rmsfuse_common.h) on the
 * pool: its elements, tensors laid end to end, are cut into pieces at
 * rmsfuse_plan_cut() boundaries and dealt to the workers.  This is the pool
 * variant of every rule: the same bits as the rule's step_multi call over
 * the same tensors, for any thread count and chunk size.  The plan stays
 * the caller's (free it with rmsfuse_plan_free).  Returns RMSFUSE_OK,
 * RMSFUSE_E_NULL_POOL or RMSFUSE_E_NULL_PLAN.
 */
RMSFUSE_API int rmsfuse_pool_run_plan(rmsfuse_pool *pool, const rmsfuse_plan *plan);

/*
 * A step with gradient options (rmsfuse_grad_options) over a plan on the
 * pool: the same bits, outcome and info as the rule's step_ex over the
 * plan's tensors, for any thread count and chunk size.  The norm, where
 * needed and not given, is one parallel read-only pass (the plan's blocks
 * dealt to the workers, their sums added in order by the caller), then the
 * step is one parallel pass as rmsfuse_pool_run_plan's.  Returns
 * RMSFUSE_OK, RMSFUSE_SKIPPED (nothing written), RMSFUSE_E_NULL_POOL,
 * RMSFUSE_E_NULL_PLAN, RMSFUSE_E_GRAD_OPTIONS or RMSFUSE_E_NO_MEMORY (for
 * the block sums); info may be NULL.
 */
RMSFUSE_API int rmsfuse_pool_run_plan_ex(rmsfuse_pool *pool, const rmsfuse_plan *plan,
                                         const rmsfuse_grad_options *opt, rmsfuse_grad_info *info);

/* rmsfuse_rmsprop_step on the pool: same arguments, rules and bits. */
RMSFUSE_API int rmsfuse_pool_rmsprop_step(rmsfuse_pool *pool, const rmsfuse_rmsprop_config *cfg, float *param,
                                          const float *grad, float *square_avg, float *momentum_buf,
                                          float *grad_avg, size_t n);

/* rmsfuse_rmsprop_step_multi on the pool: the tensors are laid end to end
 * and the whole is split, so many small tensors and a few large ones both
 * spread over the workers. */
RMSFUSE_API int rmsfuse_pool_rmsprop_step_multi(rmsfuse_pool *pool, const rmsfuse_rmsprop_config *cfg,
                                                const rmsfuse_tensor *tensors, size_t count);

/*
 * Runs fn(arg, worker, workers) once on every worker, concurrently, and
 * returns when all have returned: for first-touch initialisation of arrays
 * (so their pages sit on the NUMA node of the worker that updates them), or
 * to measure other kernels with the same threads.  fn must not call back
 * into the same pool.  Returns RMSFUSE_OK or RMSFUSE_E_NULL_POOL.
 */
RMSFUSE_API int rmsfuse_pool_run(rmsfuse_pool *pool, void (*fn)(void *arg, int worker, int workers), void *arg);

/*
 * The range [*begin, *end) of n elements of `param` that worker `worker` of
 * `workers` updates in a one-piece-per-worker split: cut at cache-line
 * boundaries of param, as the pool cuts a single array.  Use it in an
 * rmsfuse_pool_run callback to first-touch exactly what each worker will
 * update.
 */
RMSFUSE_API void rmsfuse_pool_split(const float *param, size_t n, int worker, int workers, size_t *begin,
                                    size_t *end);

#ifdef __cplusplus
}
#endif

#endif /* RMSFUSE_POOL_H */

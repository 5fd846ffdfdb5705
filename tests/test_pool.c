/*
 * The thread pool: bit-identical to the single-threaded call for every
 * thread count and chunking (with many tiny tensors, a few large ones,
 * unaligned arrays), cuts on cache lines, bad entries change nothing in
 * any tensor, concurrent calls on one pool, the run/split helpers.
 * Registered once per ISA; also built with ThreadSanitizer in CI.
 */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rmsfuse.h"
#include "rmsfuse_pool.h"
#include "test_common.h"
#include "test_tensors.h"

/* RMSFUSE_TEST_QUICK=1 (valgrind, qemu, ThreadSanitizer): smaller arrays,
 * still large enough that the default split uses every worker. */
static int quick_mode(void)
{
    const char *q = getenv("RMSFUSE_TEST_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

/* Pools of 1, 2, 3 and 5 workers (more workers than this machine's cores
 * too), created once for the whole suite. */
enum { N_POOLS = 4 };
static const int pool_threads[N_POOLS] = {1, 2, 3, 5};
static rmsfuse_pool *pools[N_POOLS];

static void pools_setup(void)
{
    for (int i = 0; i < N_POOLS; i++) {
        ck_assert_int_eq(rmsfuse_pool_create(&pools[i], pool_threads[i]), RMSFUSE_OK);
        ck_assert_int_eq(rmsfuse_pool_threads(pools[i]), pool_threads[i]);
    }
}

static void pools_teardown(void)
{
    for (int i = 0; i < N_POOLS; i++) {
        rmsfuse_pool_destroy(pools[i]);
        pools[i] = NULL;
    }
}

/* The chunkings tried: the default, tiny (one cache line), odd, large. */
static const size_t chunks[] = {0, 1, 16, 100, 1000, 70000};
enum { N_CHUNKS = sizeof chunks / sizeof chunks[0] };

/* For every pool and chunking: `steps` pool steps over a copy of the list
 * give the bits of `steps` single-threaded multi steps. */
static void assert_pool_matches_single(list *L, const rmsfuse_rmsprop_config *c, int steps)
{
    float *ref = list_clone_block(L);
    for (int s = 0; s < steps; s++)
        ck_assert_int_eq(rmsfuse_rmsprop_step_multi(c, L->t, L->count), RMSFUSE_OK);
    float *ours = malloc(L->floats * sizeof(float));
    rmsfuse_tensor *t = malloc(L->count * sizeof *t + 1);
    ck_assert(ours && t);
    for (int p = 0; p < N_POOLS; p++)
        for (int k = 0; k < N_CHUNKS; k++) {
            memcpy(ours, ref, L->floats * sizeof(float));
            for (size_t i = 0; i < L->count; i++) {
                const rmsfuse_tensor *o = &L->t[i];
                rmsfuse_tensor x = {list_rebase(L, ours, o->param), list_rebase(L, ours, o->grad),
                                    list_rebase(L, ours, o->square_avg), list_rebase(L, ours, o->momentum_buf),
                                    list_rebase(L, ours, o->grad_avg), o->n};
                t[i] = x;
            }
            ck_assert_int_eq(rmsfuse_pool_set_chunk(pools[p], chunks[k]), RMSFUSE_OK);
            for (int s = 0; s < steps; s++)
                ck_assert_int_eq(rmsfuse_pool_rmsprop_step_multi(pools[p], c, t, L->count), RMSFUSE_OK);
            ck_assert_msg(memcmp(ours, L->block, L->floats * sizeof(float)) == 0,
                          "%d workers, chunk %zu: not the single-threaded bits", pool_threads[p], chunks[k]);
        }
    for (int p = 0; p < N_POOLS; p++)
        rmsfuse_pool_set_chunk(pools[p], 0);
    free(t);
    free(ours);
    free(ref);
}

START_TEST(test_large_tensors_every_split)
{
    /* A few tensors of up to 200k elements (so the default split uses
     * every worker), every variant. */
    const unsigned v = (unsigned)_i * 9u % 64u; /* 8 variants spread over all flags */
    test_rng r = {300u + v};
    rmsfuse_rmsprop_config c = config_of(v);
    list L;
    list_make(&L, 4, quick_mode() ? 60000 : 200000, &r);
    assert_pool_matches_single(&L, &c, 2);
    list_free(&L);
}
END_TEST

START_TEST(test_many_tiny_tensors)
{
    test_rng r = {31};
    rmsfuse_rmsprop_config c = config_of(RMSFUSE_CENTERED | 16u | 32u);
    list L;
    list_make(&L, MAX_T, 40, &r);
    assert_pool_matches_single(&L, &c, 2);
    list_free(&L);
}
END_TEST

START_TEST(test_single_array_unaligned)
{
    /* One array at every float offset within a cache line, through the
     * single-array entry point. */
    const size_t N = quick_mode() ? 50003 : 100003; /* >= 2 pieces of 16384 */
    rmsfuse_rmsprop_config c = config_of(32u);
    test_rng r = {77};
    float *buf = malloc(4 * (N + 32) * sizeof(float)), *ref = malloc(4 * (N + 32) * sizeof(float));
    ck_assert(buf && ref);
    for (int off = 0; off < 16; off += 3) {
        for (size_t i = 0; i < 4 * (size_t)(N + 32); i++)
            ref[i] = buf[i] = rng_uniform(&r, 0.01f, 1.0f);
        float *a[4], *b[4];
        for (int j = 0; j < 4; j++) {
            a[j] = buf + j * (N + 32) + off;
            b[j] = ref + j * (N + 32) + off;
        }
        ck_assert_int_eq(rmsfuse_rmsprop_step(&c, b[0], b[1], b[2], b[3], NULL, N), RMSFUSE_OK);
        ck_assert_int_eq(rmsfuse_pool_rmsprop_step(pools[1 + off % 3], &c, a[0], a[1], a[2], a[3], NULL, N),
                         RMSFUSE_OK);
        ck_assert_msg(memcmp(buf, ref, 4 * (N + 32) * sizeof(float)) == 0, "offset %d differs", off);
    }
    free(buf);
    free(ref);
}
END_TEST

START_TEST(test_split_tiles_on_cache_lines)
{
    float *buf = malloc(300000 * sizeof(float));
    ck_assert(buf);
    const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 65536, 299990};
    for (int off = 0; off < 4; off++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int workers = 1; workers <= 7; workers++) {
                const float *p = buf + off;
                const size_t n = sizes[s];
                size_t expect = 0;
                for (int w = 0; w < workers; w++) {
                    size_t b, e;
                    rmsfuse_pool_split(p, n, w, workers, &b, &e);
                    ck_assert_uint_eq(b, expect); /* contiguous, in order */
                    ck_assert_uint_le(b, e);
                    /* Every inner cut starts a cache line of param. */
                    if (b > 0 && b < n)
                        ck_assert_uint_eq((uintptr_t)(p + b) % 64u, 0);
                    expect = e;
                }
                ck_assert_uint_eq(expect, n); /* covers [0, n) */
            }
    size_t b = 1, e = 1;
    rmsfuse_pool_split(buf, 100, 3, 3, &b, &e); /* worker out of range */
    ck_assert(b == 0 && e == 0);
    free(buf);
}
END_TEST

/* A list with a bad entry: the status of the single-threaded call, and no
 * tensor changed. */
START_TEST(test_bad_entries_change_nothing)
{
    test_rng r = {8};
    rmsfuse_rmsprop_config c = config_of(RMSFUSE_CENTERED | 32u);
    list L;
    list_make(&L, 50, 30000, &r);
    for (size_t i = 0; i < L.count; i++)
        if (L.t[i].n == 0)
            L.t[i].n = 1; /* list_make leaves room for one */
    rmsfuse_pool *pool = pools[2];
    rmsfuse_pool_set_chunk(pool, 64);
    struct {
        int field;
        int status;
    } cases[] = {{0, RMSFUSE_E_NULL_ARRAY}, {3, RMSFUSE_E_NULL_MOMENTUM_BUF}, {4, RMSFUSE_E_NULL_GRAD_AVG},
                 {5, RMSFUSE_E_OVERLAP}, {6, RMSFUSE_E_SIZE}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        rmsfuse_tensor keep = L.t[40];
        switch (cases[k].field) {
        case 0: L.t[40].param = NULL; break;
        case 3: L.t[40].momentum_buf = NULL; break;
        case 4: L.t[40].grad_avg = NULL; break;
        case 5: L.t[40].square_avg = L.t[3].param; L.t[40].n = 1; break; /* across tensors */
        default: L.t[40].n = SIZE_MAX / 2; break;
        }
        list_snapshot(&L);
        ck_assert_int_eq(rmsfuse_pool_rmsprop_step_multi(pool, &c, L.t, L.count), cases[k].status);
        ck_assert_msg(list_unchanged(&L), "case %zu: a rejected call changed a tensor", k);
        L.t[40] = keep;
    }
    rmsfuse_rmsprop_config bad = c;
    bad.eps = -1.0;
    list_snapshot(&L);
    ck_assert_int_eq(rmsfuse_pool_rmsprop_step_multi(pool, &bad, L.t, L.count), RMSFUSE_E_EPS);
    ck_assert_int_eq(rmsfuse_pool_rmsprop_step(pool, &bad, L.t[0].param, L.t[0].grad, L.t[0].square_avg,
                                               L.t[0].momentum_buf, L.t[0].grad_avg, L.t[0].n),
                     RMSFUSE_E_EPS);
    ck_assert(list_unchanged(&L));
    rmsfuse_pool_set_chunk(pool, 0);
    list_free(&L);
}
END_TEST

START_TEST(test_empty_and_null)
{
    rmsfuse_rmsprop_config c = config_of(0);
    ck_assert_int_eq(rmsfuse_pool_rmsprop_step_multi(pools[1], &c, NULL, 0), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_pool_rmsprop_step_multi(pools[1], &c, NULL, 2), RMSFUSE_E_NULL_LIST);
    rmsfuse_tensor zeros[4];
    memset(zeros, 0, sizeof zeros);
    rmsfuse_pool_set_chunk(pools[1], 16);
    ck_assert_int_eq(rmsfuse_pool_rmsprop_step_multi(pools[1], &c, zeros, 4), RMSFUSE_OK);
    rmsfuse_pool_set_chunk(pools[1], 0);
    ck_assert_int_eq(rmsfuse_pool_rmsprop_step(pools[1], &c, NULL, NULL, NULL, NULL, NULL, 0), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_pool_rmsprop_step_multi(NULL, &c, zeros, 4), RMSFUSE_E_NULL_POOL);
    ck_assert_int_eq(rmsfuse_pool_rmsprop_step(NULL, &c, NULL, NULL, NULL, NULL, NULL, 0), RMSFUSE_E_NULL_POOL);
    ck_assert_int_eq(rmsfuse_pool_set_chunk(NULL, 5), RMSFUSE_E_NULL_POOL);
    ck_assert_int_eq(rmsfuse_pool_threads(NULL), 0);
    rmsfuse_pool_destroy(NULL);

    rmsfuse_pool *p = (rmsfuse_pool *)&c;
    ck_assert_int_eq(rmsfuse_pool_create(&p, -1), RMSFUSE_E_SIZE);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(rmsfuse_pool_create(NULL, 1), RMSFUSE_E_NULL_POOL);
    /* 0 workers: one per core. */
    ck_assert_int_eq(rmsfuse_pool_create(&p, 0), RMSFUSE_OK);
    ck_assert_int_ge(rmsfuse_pool_machine_cores(), 1);
    ck_assert_int_eq(rmsfuse_pool_threads(p), rmsfuse_pool_machine_cores());
    rmsfuse_pool_destroy(p);
}
END_TEST

/* rmsfuse_pool_run: every worker exactly once, with the right count. */
typedef struct run_count {
    int calls[8];
    int workers_seen;
} run_count;

static void count_calls(void *arg, int worker, int workers)
{
    run_count *rc = arg;
    rc->calls[worker]++; /* each worker its own slot */
    if (worker == 0)
        rc->workers_seen = workers;
}

START_TEST(test_run_calls_every_worker_once)
{
    for (int p = 0; p < N_POOLS; p++) {
        run_count rc;
        memset(&rc, 0, sizeof rc);
        for (int k = 0; k < 3; k++)
            ck_assert_int_eq(rmsfuse_pool_run(pools[p], count_calls, &rc), RMSFUSE_OK);
        ck_assert_int_eq(rc.workers_seen, pool_threads[p]);
        for (int w = 0; w < pool_threads[p]; w++)
            ck_assert_int_eq(rc.calls[w], 3);
    }
    ck_assert_int_eq(rmsfuse_pool_run(NULL, count_calls, NULL), RMSFUSE_E_NULL_POOL);
    ck_assert_int_eq(rmsfuse_pool_run(pools[0], NULL, NULL), RMSFUSE_E_NULL_POOL);
}
END_TEST

/* Several threads calling one pool at once, each on its own list: every
 * list ends with the single-threaded bits (calls are serialised). */
typedef struct caller {
    list L;
    float *ref;
    rmsfuse_rmsprop_config c;
    int status;
} caller;

static void *caller_main(void *arg)
{
    caller *k = arg;
    for (int s = 0; s < 4 && k->status == RMSFUSE_OK; s++)
        k->status = rmsfuse_pool_rmsprop_step_multi(pools[1], &k->c, k->L.t, k->L.count);
    return NULL;
}

START_TEST(test_concurrent_callers)
{
    enum { CALLERS = 4 };
    caller k[CALLERS];
    pthread_t th[CALLERS];
    for (int i = 0; i < CALLERS; i++) {
        test_rng r = {500u + (unsigned)i};
        list_make(&k[i].L, 6, 50000, &r);
        k[i].c = config_of((unsigned)(i * 17) % 64u);
        k[i].ref = list_clone_block(&k[i].L);
        k[i].status = RMSFUSE_OK;
    }
    for (int i = 0; i < CALLERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, caller_main, &k[i]), 0);
    for (int i = 0; i < CALLERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < CALLERS; i++) {
        ck_assert_int_eq(k[i].status, RMSFUSE_OK);
        /* The reference: the same four steps, single-threaded, on the copy. */
        float *got = list_clone_block(&k[i].L);
        memcpy(k[i].L.block, k[i].ref, k[i].L.floats * sizeof(float));
        for (int s = 0; s < 4; s++)
            ck_assert_int_eq(rmsfuse_rmsprop_step_multi(&k[i].c, k[i].L.t, k[i].L.count), RMSFUSE_OK);
        ck_assert_msg(memcmp(got, k[i].L.block, k[i].L.floats * sizeof(float)) == 0, "caller %d differs", i);
        free(got);
        free(k[i].ref);
        list_free(&k[i].L);
    }
}
END_TEST

/* A pool keeps to the CPUs its creator may use (mpirun --bind-to, taskset):
 * restricted to one CPU, it counts one core and binds every worker there. */
typedef struct affinity_seen {
    cpu_set_t set[8];
    int ok[8];
} affinity_seen;

static void record_affinity(void *arg, int worker, int workers)
{
    affinity_seen *a = arg;
    (void)workers;
    if (worker < 8)
        a->ok[worker] = pthread_getaffinity_np(pthread_self(), sizeof a->set[worker], &a->set[worker]) == 0;
}

START_TEST(test_workers_keep_to_the_process_binding)
{
    cpu_set_t all, one;
    ck_assert_int_eq(sched_getaffinity(0, sizeof all, &all), 0);
    int last = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all))
            last = c;
    if (CPU_COUNT(&all) < 2 || rmsfuse_pool_machine_cores() < 2)
        return; /* nothing to restrict: one CPU */
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);

    ck_assert_int_eq(rmsfuse_pool_machine_cores(), 1);
    rmsfuse_pool *p = NULL;
    ck_assert_int_eq(rmsfuse_pool_create(&p, 0), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_pool_threads(p), 1);
    rmsfuse_pool_destroy(p);
    ck_assert_int_eq(rmsfuse_pool_create(&p, 3), RMSFUSE_OK); /* more workers than usable cores */
    affinity_seen a;
    memset(&a, 0, sizeof a);
    ck_assert_int_eq(rmsfuse_pool_run(p, record_affinity, &a), RMSFUSE_OK);
    rmsfuse_pool_destroy(p);
    ck_assert_int_eq(sched_setaffinity(0, sizeof all, &all), 0); /* CK_FORK=no shares this process */
    for (int w = 0; w < 3; w++) {
        ck_assert_msg(a.ok[w], "worker %d: pthread_getaffinity_np failed", w);
        ck_assert_msg(CPU_COUNT(&a.set[w]) == 1 && CPU_ISSET(last, &a.set[w]),
                      "worker %d may run on %d CPUs, not only CPU %d", w, CPU_COUNT(&a.set[w]), last);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, pools_setup, pools_teardown); /* per test: threads do not survive fork */
    tcase_add_loop_test(tc, test_large_tensors_every_split, 0, 8);
    tcase_add_test(tc, test_many_tiny_tensors);
    tcase_add_test(tc, test_single_array_unaligned);
    tcase_add_test(tc, test_split_tiles_on_cache_lines);
    tcase_add_test(tc, test_bad_entries_change_nothing);
    tcase_add_test(tc, test_empty_and_null);
    tcase_add_test(tc, test_run_calls_every_worker_once);
    tcase_add_test(tc, test_concurrent_callers);
    tcase_add_test(tc, test_workers_keep_to_the_process_binding);
    suite_add_tcase(s, tc);
    return rmsfuse_test_run(s);
}

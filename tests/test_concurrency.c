/*
 * Concurrency: many threads calling the library at once, each on its own
 * (disjoint) arrays, get the bits that the same calls made one after
 * another in one thread give.  Run in CI under ThreadSanitizer too
 * (scripts/test.sh tsan), which must report no race.
 *
 *   disjoint_threads   THREADS threads, each with its own tensors (every
 *                      variant, n across the vector widths, assorted
 *                      alignments), alternate rmsfuse_rmsprop_step,
 *                      rmsfuse_rmsprop_step_multi and the check functions;
 *                      the serial reference repeats the same calls in one
 *                      thread.
 *   isa_switching      the same while another thread keeps switching the
 *                      active ISA (rmsfuse_set_isa) among the supported
 *                      ones: every ISA gives the same bits, so the results
 *                      must not change, and every call must see a whole,
 *                      valid kernel (the dispatcher's atomic publication).
 *   queries            many threads calling the read-only queries
 *                      (rmsfuse_active_isa, rmsfuse_isa_supported,
 *                      rmsfuse_isa_env_status, rmsfuse_strerror,
 *                      rmsfuse_version, presets, check_config) at once.
 *
 * The first-use race (threads making the process's very first calls at
 * once) needs an uninitialised dispatcher: tests/test_isa.c does it in
 * forked children (test_concurrent_first_use).
 *
 * Threads record what they saw; only the main thread asserts (Check's
 * assertions are not thread-safe).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_common.h"
#include "test_tensors.h"

enum { THREADS = 8, CASES = 8, STEPS = 6 };

/* One thread's work: CASES tensors in one block of memory of its own. */
typedef struct work {
    list L;          /* tensors t[0 .. CASES), carved from L.block */
    float *init;     /* L.block before any step */
    rmsfuse_rmsprop_config cfg[CASES];
    int status;      /* first failure seen by the thread, or RMSFUSE_OK */
    int failed_call; /* which call failed */
} work;

static work works[THREADS];
static pthread_barrier_t barrier;

/* Thread t, case c: the variant (all 64 spread over the threads and cases). */
static unsigned variant_of(int t, int c)
{
    return (unsigned)(t * CASES + c) % 64u;
}

static void works_make(void)
{
    for (int t = 0; t < THREADS; t++) {
        work *w = &works[t];
        test_rng r = {0xc0ffeeu + (uint64_t)t};
        /* n up to 700: heads, vector bodies and tails of every ISA. */
        list_make(&w->L, CASES, 700, &r);
        w->init = list_clone_block(&w->L);
        for (int c = 0; c < CASES; c++)
            w->cfg[c] = config_of(variant_of(t, c));
        w->status = RMSFUSE_OK;
        w->failed_call = -1;
    }
}

static void works_free(void)
{
    for (int t = 0; t < THREADS; t++) {
        list_free(&works[t].L);
        free(works[t].init);
    }
}

/* The calls of one thread, in a fixed order: per step, each case once,
 * alternately through step and step_multi (a one-tensor list), with a
 * check (and check_multi) before.  Returns 0, or the index of the call
 * that did not return RMSFUSE_OK (status in w->status). */
static void run_work(work *w)
{
    int call = 0;
    for (int s = 0; s < STEPS; s++)
        for (int c = 0; c < CASES; c++, call++) {
            const rmsfuse_tensor *x = &w->L.t[c];
            const rmsfuse_rmsprop_config *cfg = &w->cfg[c];
            int st;
            if ((s + c) % 2 == 0) {
                st = rmsfuse_rmsprop_check(cfg, x->param, x->grad, x->square_avg, x->momentum_buf, x->grad_avg,
                                           x->n);
                if (st == RMSFUSE_OK)
                    st = rmsfuse_rmsprop_step(cfg, x->param, x->grad, x->square_avg, x->momentum_buf,
                                              x->grad_avg, x->n);
            } else {
                st = rmsfuse_rmsprop_check_multi(cfg, x, 1);
                if (st == RMSFUSE_OK)
                    st = rmsfuse_rmsprop_step_multi(cfg, x, 1);
            }
            if (st != RMSFUSE_OK && w->status == RMSFUSE_OK) {
                w->status = st;
                w->failed_call = call;
            }
        }
}

/* Switcher: cycles through the supported ISAs until told to stop. */
static atomic_int stop_switching, switching;
static atomic_long switches;

static void *worker_main(void *arg)
{
    work *w = arg;
    pthread_barrier_wait(&barrier);
    /* With a switcher: start once it is switching, so that the two overlap
     * however the threads are scheduled. */
    while (atomic_load(&switching) && atomic_load(&switches) < 2)
        sched_yield();
    run_work(w);
    return NULL;
}

static void *switcher_main(void *arg)
{
    (void)arg;
    const char *isas[16];
    int k = 0;
    for (const char *const *p = rmsfuse_isa_names(); *p && k < 16; p++)
        if (rmsfuse_isa_supported(*p))
            isas[k++] = *p;
    pthread_barrier_wait(&barrier);
    for (int i = 0; !atomic_load(&stop_switching); i++) {
        if (rmsfuse_set_isa(isas[i % k]) == RMSFUSE_OK)
            atomic_fetch_add(&switches, 1);
        (void)rmsfuse_active_isa();
    }
    return NULL;
}

/* The serial reference: each thread's calls, one thread after another, on
 * a copy of its initial block.  Returns the blocks (caller frees). */
static float *serial_reference(const work *w)
{
    work copy = *w;
    copy.L.block = list_clone_block(&w->L);
    memcpy(copy.L.block, w->init, w->L.floats * sizeof(float));
    for (int c = 0; c < CASES; c++) {
        const rmsfuse_tensor *o = &w->L.t[c];
        rmsfuse_tensor x = {list_rebase(&w->L, copy.L.block, o->param), list_rebase(&w->L, copy.L.block, o->grad),
                            list_rebase(&w->L, copy.L.block, o->square_avg),
                            list_rebase(&w->L, copy.L.block, o->momentum_buf),
                            list_rebase(&w->L, copy.L.block, o->grad_avg), o->n};
        copy.L.t[c] = x;
    }
    copy.status = RMSFUSE_OK;
    run_work(&copy);
    ck_assert_int_eq(copy.status, RMSFUSE_OK);
    return copy.L.block;
}

/* Runs THREADS workers (plus the ISA switcher if asked) and compares every
 * block with its serial reference, element by element (NaN-ness only for
 * NaNs, as the bit-identity contract says; the inputs are finite, so in
 * practice every bit). */
static void run_and_compare(int with_switcher)
{
    const char *entry = rmsfuse_active_isa();
    works_make();
    atomic_store(&stop_switching, 0);
    atomic_store(&switching, with_switcher);
    atomic_store(&switches, 0);
    const int parties = THREADS + (with_switcher ? 1 : 0);
    ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, (unsigned)parties), 0);
    pthread_t tid[THREADS], sw;
    if (with_switcher)
        ck_assert_int_eq(pthread_create(&sw, NULL, switcher_main, NULL), 0);
    for (int t = 0; t < THREADS; t++)
        ck_assert_int_eq(pthread_create(&tid[t], NULL, worker_main, &works[t]), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(tid[t], NULL);
    if (with_switcher) {
        atomic_store(&stop_switching, 1);
        pthread_join(sw, NULL);
    }
    pthread_barrier_destroy(&barrier);
    ck_assert_int_eq(rmsfuse_set_isa(entry), RMSFUSE_OK);
    if (with_switcher)
        ck_assert_int_ge(atomic_load(&switches), 2);

    for (int t = 0; t < THREADS; t++) {
        const work *w = &works[t];
        ck_assert_msg(w->status == RMSFUSE_OK, "thread %d: call %d returned %d", t, w->failed_call, w->status);
        float *ref = serial_reference(w);
        /* The steps did something: the block changed. */
        ck_assert(memcmp(w->L.block, w->init, w->L.floats * sizeof(float)) != 0);
        for (size_t i = 0; i < w->L.floats; i++)
            ck_assert_msg(same_float(w->L.block[i], ref[i]), "thread %d, float %zu of its block: %a, serial %a",
                          t, i, (double)w->L.block[i], (double)ref[i]);
        free(ref);
    }
    works_free();
}

START_TEST(test_disjoint_threads)
{
    run_and_compare(0);
}
END_TEST

START_TEST(test_isa_switching)
{
    run_and_compare(1);
}
END_TEST

/* ---- read-only queries from many threads ---------------------------------- */
typedef struct query_result {
    const char *active;
    int env_status, supported_mask, bad;
} query_result;

static query_result queries[THREADS];

static void *query_main(void *arg)
{
    query_result *q = arg;
    pthread_barrier_wait(&barrier);
    for (int rep = 0; rep < 200; rep++) {
        q->active = rmsfuse_active_isa();
        q->env_status = rmsfuse_isa_env_status();
        int mask = 0, k = 0;
        for (const char *const *p = rmsfuse_isa_names(); *p; p++, k++)
            mask |= rmsfuse_isa_supported(*p) << k;
        q->supported_mask = mask;
        for (int st = -20; st <= 0; st++)
            if (!rmsfuse_strerror(st) || !rmsfuse_strerror(st)[0])
                q->bad++;
        if (strcmp(rmsfuse_version(), RMSFUSE_VERSION_STRING) != 0)
            q->bad++;
        rmsfuse_rmsprop_config c = rmsfuse_rmsprop_keras(1e-3);
        if (rmsfuse_rmsprop_check_config(&c) != RMSFUSE_OK)
            q->bad++;
    }
    return NULL;
}

START_TEST(test_queries)
{
    ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, THREADS), 0);
    pthread_t tid[THREADS];
    memset(queries, 0, sizeof queries);
    for (int t = 0; t < THREADS; t++)
        ck_assert_int_eq(pthread_create(&tid[t], NULL, query_main, &queries[t]), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&barrier);
    for (int t = 0; t < THREADS; t++) {
        ck_assert_int_eq(queries[t].bad, 0);
        ck_assert_str_eq(queries[t].active, rmsfuse_active_isa());
        ck_assert_int_eq(queries[t].env_status, rmsfuse_isa_env_status());
        ck_assert_int_eq(queries[t].supported_mask, queries[0].supported_mask);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("concurrency");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_disjoint_threads);
    tcase_add_test(tc, test_isa_switching);
    tcase_add_test(tc, test_queries);
    suite_add_tcase(s, tc);
    return rmsfuse_test_run(s);
}

/*
 * Concurrency: many threads calling the library at once, each on its own
 * (disjoint) arrays, get the bits that the same calls made one after
 * another in one thread give.  Run in CI under ThreadSanitizer too
 * (scripts/test.sh tsan), which must report no race.
 *
 *   disjoint_threads   THREADS threads, each with its own tensors (every
 *                      rule, one combination per kernel loop, drawn per
 *                      run (test_rules.h), n across the vector widths,
 *                      assorted alignments), alternate the rule's step,
 *                      step_multi, a plan run in two ranges, and the check
 *                      functions; the serial reference repeats the same
 *                      calls in one thread.
 *   isa_switching      the same while another thread keeps switching the
 *                      active ISA (rmsfuse_set_isa) among the supported
 *                      ones: every ISA gives the same bits, so the results
 *                      must not change, and every call must see a whole,
 *                      valid kernel (the dispatcher's atomic publication).
 *   queries            many threads calling the read-only queries
 *                      (rmsfuse_active_isa, rmsfuse_isa_supported,
 *                      rmsfuse_isa_env_status, rmsfuse_strerror,
 *                      rmsfuse_version, presets, every rule's
 *                      check_config) at once.
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
#include "test_rules.h"
#include "test_tensors.h"

enum { THREADS = 8, CASES = 8, STEPS = 6 };

/* One thread's work: CASES tensors in one block of memory of its own per
 * rule's array count. */
typedef struct work {
    list L[CASES];    /* tensor 0 of L[c] is case c (its own list: the rules' array counts differ) */
    float *init[CASES];
    rule_cfg cfg[CASES];
    int status;      /* first failure seen by the thread, or RMSFUSE_OK */
    int failed_call; /* which call failed */
} work;

static work works[THREADS];
static pthread_barrier_t barrier;

/* The configurations: one combination per kernel loop of every rule
 * (test_rules.h), drawn with this run's seed, dealt over the threads and
 * cases in rule order from a starting point that differs from run to run
 * (THREADS * CASES = 64 different ones of the 186 loops per run, spread
 * over the list, so the exact loops and their RMSFUSE_FLUSH_SUBNORMAL
 * twins alike; the runs of a stage draw different ones). */
static rule_cfg case_cfgs[THREADS * CASES];

static unsigned gcd_(unsigned a, unsigned b)
{
    while (b) {
        const unsigned t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static void make_configs(void)
{
    enum { MAX_LOOPS = 256 };
    rule_cfg all[MAX_LOOPS];
    unsigned total = 0;
    for (int rule = 0; rule < N_RULES; rule++) {
        unsigned ks[MAX_COMBOS];
        test_rng sr = {test_run_seed(0xc0c0u + (uint64_t)rule)};
        const unsigned m = rule_sample(rule, 0, &sr, ks);
        ck_assert_uint_le(total + m, MAX_LOOPS);
        for (unsigned v = 0; v < m; v++)
            all[total++] = rule_config(rule, rule_combo(rule, ks[v]), (int)(v % (unsigned)rule_nhypers(rule)));
    }
    test_rng r = {test_run_seed(0xc0c1u)};
    const unsigned first = (unsigned)(rng_next(&r) % total);
    /* A stride of about a third (the rules interleave) that is coprime with
     * the total, so that the THREADS * CASES picks are all different (a
     * stride of 3 with 186 loops would repeat after 62). */
    unsigned stride = 3;
    while (gcd_(stride, total) != 1)
        stride++;
    ck_assert_uint_ge(total, THREADS * CASES);
    for (unsigned k = 0; k < THREADS * CASES; k++)
        case_cfgs[k] = all[(first + k * stride) % total];
}

static void works_make(void)
{
    make_configs();
    for (int t = 0; t < THREADS; t++) {
        work *w = &works[t];
        test_rng r = {0xc0ffeeu + (uint64_t)t};
        for (int c = 0; c < CASES; c++) {
            w->cfg[c] = case_cfgs[t * CASES + c];
            /* n up to 700: heads, vector bodies and tails of every ISA. */
            list_make(&w->L[c], rule_infos[w->cfg[c].rule].narr, 1, 700, &r);
            w->init[c] = list_clone_block(&w->L[c]);
        }
        w->status = RMSFUSE_OK;
        w->failed_call = -1;
    }
}

static void works_free(void)
{
    for (int t = 0; t < THREADS; t++)
        for (int c = 0; c < CASES; c++) {
            list_free(&works[t].L[c]);
            free(works[t].init[c]);
        }
}

/* The calls of one thread, in a fixed order: per step, each case once,
 * through step, step_multi (a one-tensor list) or a plan run in two
 * ranges, in turn, with a check (and check_multi) before.  The first call
 * that does not return RMSFUSE_OK is recorded in w. */
static void run_work(work *w)
{
    int call = 0;
    for (int s = 0; s < STEPS; s++)
        for (int c = 0; c < CASES; c++, call++) {
            const rule_tensor *x = &w->L[c].t[0];
            const rule_cfg *cfg = &w->cfg[c];
            int st;
            switch ((s + c) % 3) {
            case 0:
                st = rule_check(cfg, x->a, x->n);
                if (st == RMSFUSE_OK)
                    st = rule_step(cfg, x->a, x->n);
                break;
            case 1:
                st = rule_check_multi(cfg, x, 1);
                if (st == RMSFUSE_OK)
                    st = rule_step_multi(cfg, x, 1);
                break;
            default: {
                rmsfuse_plan *plan = NULL;
                st = rule_plan(cfg, x, 1, &plan);
                if (st == RMSFUSE_OK) {
                    const size_t mid = rmsfuse_plan_cut(plan, x->n / 2);
                    st = rmsfuse_plan_run(plan, 0, mid);
                    if (st == RMSFUSE_OK)
                        st = rmsfuse_plan_run(plan, mid, x->n);
                }
                rmsfuse_plan_free(plan);
                break;
            }
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
 * a copy of its initial blocks.  Returns the blocks (caller frees each). */
static void serial_reference(const work *w, float **out)
{
    static work copy; /* large: not on the stack */
    copy = *w;
    for (int c = 0; c < CASES; c++) {
        out[c] = list_clone_block(&w->L[c]);
        memcpy(out[c], w->init[c], w->L[c].floats * sizeof(float));
        copy.L[c].t[0] = list_rebase_tensor(&w->L[c], out[c], &w->L[c].t[0]);
    }
    copy.status = RMSFUSE_OK;
    run_work(&copy);
    ck_assert_int_eq(copy.status, RMSFUSE_OK);
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
        float *ref[CASES];
        serial_reference(w, ref);
        for (int c = 0; c < CASES; c++) {
            const list *L = &w->L[c];
            char what[256];
            rule_describe(&w->cfg[c], what, sizeof what);
            /* The steps did something: the block changed (unless n = 0). */
            ck_assert(L->t[0].n == 0 || memcmp(L->block, w->init[c], L->floats * sizeof(float)) != 0);
            for (size_t i = 0; i < L->floats; i++)
                REQUIRE_MSG(same_float(L->block[i], ref[c][i]), "thread %d, %s, float %zu of its block: %a, serial %a",
                            t, what, i, (double)L->block[i], (double)ref[c][i]);
            free(ref[c]);
        }
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
        rmsfuse_adagrad_config ca = rmsfuse_adagrad_keras(1e-3);
        rmsfuse_sgd_config cs = rmsfuse_sgd_keras(1e-3);
        rmsfuse_adam_config cm = rmsfuse_adamw_pytorch(1e-3);
        if (rmsfuse_adagrad_check_config(&ca) != RMSFUSE_OK || rmsfuse_sgd_check_config(&cs) != RMSFUSE_OK ||
            rmsfuse_adam_check_config(&cm) != RMSFUSE_OK)
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

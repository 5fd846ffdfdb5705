/*
 * The thread pool: plans of every rule (rmsfuse_<rule>_plan, run by
 * rmsfuse_pool_run_plan) and RMSProp's own pool entry points are
 * bit-identical to the single-threaded step_multi for every thread count
 * and chunking (with many tiny tensors, a few large ones, unaligned
 * arrays), cuts on cache lines, bad entries change nothing in any tensor,
 * steps with gradient options (rmsfuse_pool_run_plan_ex: the parallel norm
 * and the step give step_ex's bits and outcome),
 * typed plans (storage types: step_typed's bits, rmsfuse_pool_run_plan and
 * _ex), concurrent calls on one pool, the run/split helpers.  Which combinations
 * of each rule: every one in the native run with detection, one random
 * combination per kernel loop in the others (test_rules.h).  Registered
 * once per ISA; also built with ThreadSanitizer in CI.
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
#include "test_rules.h"
#include "test_tensors.h"

/* RMSFUSE_TEST_QUICK=1 (valgrind, qemu, ThreadSanitizer): smaller arrays,
 * still large enough that the default split uses every worker; fewer
 * pools and chunkings for the every-combination test. */
static int quick_mode(void)
{
    return test_quick_mode();
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

/* Runs `steps` steps of the list (rebased into `block`) on pool p:
 * through a plan and rmsfuse_pool_run_plan (every rule), or RMSProp's
 * rmsfuse_pool_rmsprop_step_multi. */
static void pool_steps(int p, const list *L, float *block, const rule_cfg *c0, int steps, int via_rmsprop_entry)
{
    rule_tensor *t = malloc(L->count * sizeof *t + 1);
    ck_assert_ptr_nonnull(t);
    list_rebase_all(L, block, t);
    rule_cfg c = *c0;
    for (int s = 0; s < steps; s++, rule_advance_step(&c)) {
        if (via_rmsprop_entry) {
            rmsfuse_tensor *x = rule_api_tensors(RULE_RMSPROP, t, L->count);
            ck_assert_int_eq(rmsfuse_pool_rmsprop_step_multi(pools[p], &c.u.rmsprop, x, L->count), RMSFUSE_OK);
            free(x);
        } else {
            rmsfuse_plan *plan = NULL;
            ck_assert_int_eq(rule_plan(&c, t, L->count, &plan), RMSFUSE_OK);
            ck_assert_int_eq(rmsfuse_pool_run_plan(pools[p], plan), RMSFUSE_OK);
            rmsfuse_plan_free(plan);
        }
    }
    free(t);
}

/* For the given pools and chunkings: `steps` pool steps over a copy of the
 * list give the bits of `steps` single-threaded multi steps (which are
 * left in L). */
static void assert_pool_matches_single_on(list *L, const rule_cfg *c0, int steps, const int *which_pools,
                                          int npools, const size_t *which_chunks, int nchunks)
{
    char what[256];
    rule_describe(c0, what, sizeof what);
    float *ref = list_clone_block(L);
    rule_cfg c = *c0;
    for (int s = 0; s < steps; s++, rule_advance_step(&c))
        ck_assert_int_eq(rule_step_multi(&c, L->t, L->count), RMSFUSE_OK);
    float *ours = malloc(L->floats * sizeof(float));
    ck_assert(ours);
    for (int pi = 0; pi < npools; pi++)
        for (int k = 0; k < nchunks; k++) {
            const int p = which_pools[pi];
            /* RMSProp: alternately its own entry point and a plan. */
            const int via = c0->rule == RULE_RMSPROP && (pi + k) % 2 == 1;
            memcpy(ours, ref, L->floats * sizeof(float));
            ck_assert_int_eq(rmsfuse_pool_set_chunk(pools[p], which_chunks[k]), RMSFUSE_OK);
            pool_steps(p, L, ours, c0, steps, via);
            ck_assert_msg(memcmp(ours, L->block, L->floats * sizeof(float)) == 0,
                          "%s: %d workers, chunk %zu, %s: not the single-threaded bits", what, pool_threads[p],
                          which_chunks[k], via ? "rmsfuse_pool_rmsprop_step_multi" : "plan");
        }
    for (int p = 0; p < N_POOLS; p++)
        rmsfuse_pool_set_chunk(pools[p], 0);
    free(ours);
    free(ref);
}

/* Every pool and chunking. */
static void assert_pool_matches_single(list *L, const rule_cfg *c, int steps)
{
    static const int all_pools[N_POOLS] = {0, 1, 2, 3};
    assert_pool_matches_single_on(L, c, steps, all_pools, N_POOLS, chunks, N_CHUNKS);
}

START_TEST(test_large_tensors_every_split)
{
    /* A few tensors of up to 200k elements (so the default split uses
     * every worker): two combinations of each rule, spread over its list
     * (this run's: every combination or one per kernel loop), with the
     * prefetching loop of the kernels. */
    const int rule = _i % N_RULES;
    unsigned ks[MAX_COMBOS];
    test_rng sr = {test_run_seed(0x9001u + (uint64_t)rule)};
    const unsigned m = rule_sample(rule, test_full_run(), &sr, ks);
    const unsigned v = (unsigned)(rng_next(&sr) % m);
    const rule_cfg c = rule_config(rule, rule_combo(rule, ks[v]), (int)(v % (unsigned)rule_nhypers(rule)));
    test_rng r = {300u + (uint64_t)_i};
    list L;
    list_make(&L, rule_infos[rule].narr, 4, quick_mode() ? 60000 : 200000, &r);
    assert_pool_matches_single(&L, &c, 2);
    list_free(&L);
}
END_TEST

/* Every combination of this run (and every hyperparameter set in turn) on
 * a list of a few thousand elements, through a plan on the pool, with
 * chunkings that give every worker pieces: every pool and four chunkings
 * in the run that tests every combination, two of each in the other native
 * runs, one pool and one chunking in quick runs (16 for the loops with
 * RMSFUSE_FLUSH_SUBNORMAL, 1000 for their exact twins: the two chunkings
 * of before, over twice the loops). */
#define COMBO_PARTS 4
START_TEST(test_every_combination)
{
    const int rule = _i / COMBO_PARTS, part = _i % COMBO_PARTS;
    static const int quick_pools[] = {3, 1}; /* quick (valgrind, qemu): the first only */
    static const int full_pools[] = {0, 1, 2, 3};
    static const size_t quick_chunks[] = {16, 1000};
    static const size_t full_chunks[] = {1, 16, 100, 1000};
    const int quick = !test_full_run();
    unsigned ks[MAX_COMBOS];
    test_rng sr = {test_run_seed(0x90c0u + (uint64_t)rule)};
    const unsigned m = rule_sample(rule, test_full_run(), &sr, ks);
    for (unsigned v = (unsigned)part; v < m; v += COMBO_PARTS) {
        const rule_cfg c = rule_config(rule, rule_combo(rule, ks[v]), (int)(v % (unsigned)rule_nhypers(rule)));
        test_rng r = {4000u + 977u * (uint64_t)rule + ks[v]};
        list L;
        list_make(&L, rule_infos[rule].narr, 7, quick_mode() ? 600 : 2000, &r);
        if (quick && test_quick_mode())
            assert_pool_matches_single_on(&L, &c, 2, quick_pools, 1,
                                          quick_chunks + (combo_flush(rule_combo(rule, ks[v])) ? 0 : 1), 1);
        else if (quick)
            assert_pool_matches_single_on(&L, &c, 2, quick_pools, 2, quick_chunks, 2);
        else
            assert_pool_matches_single_on(&L, &c, 2, full_pools, N_POOLS, full_chunks, 4);
        list_free(&L);
    }
}
END_TEST

static int same_double(double a, double b)
{
    return (a != a && b != b) || memcmp(&a, &b, sizeof a) == 0;
}

/* rmsfuse_pool_run_plan_ex: the norm's parallel pass and the step give
 * step_ex's bits, outcome and info for every pool and chunking: clipping
 * by norm and by value with a scale, a non-finite gradient skipped (nothing
 * written) or not, the sum given; then the bad entries. */
START_TEST(test_plan_ex_every_split)
{
    const int rule = _i;
    const rule_cfg c = rule_full_config(rule);
    test_rng r = {77u + (uint64_t)rule};
    static const size_t some_chunks[] = {0, 16, 1000, 70000};
    for (int v = 0; v < 4; v++) {
        list L;
        list_make(&L, rule_infos[rule].narr, 4, quick_mode() ? 40000 : 120000, &r);
        if (v >= 2)
            L.t[L.count - 1].a[SLOT_GRAD][L.t[L.count - 1].n - 1] = v == 2 ? INFINITY : NAN;
        rmsfuse_grad_options o = rmsfuse_grad_options_none();
        o.scale = 0.5;
        o.max_norm = 1.0;
        o.clip_value = v == 1 ? 0.01 : HUGE_VAL;
        o.flags = v == 3 ? 0u : RMSFUSE_SKIP_NONFINITE;
        float *ref = list_clone_block(&L);
        rmsfuse_grad_info want;
        const int st_want = rule_step_ex(&c, L.t, L.count, &o, &want);
        ck_assert_int_eq(st_want, v == 2 ? RMSFUSE_SKIPPED : RMSFUSE_OK);
        float *ours = malloc(L.floats * sizeof(float));
        rule_tensor *t = malloc(L.count * sizeof *t);
        ck_assert(ours && t);
        for (int p = 0; p < N_POOLS; p++)
            for (size_t k = 0; k < sizeof some_chunks / sizeof some_chunks[0]; k++) {
                if (quick_mode() && (p + (int)k) % 2)
                    continue;
                memcpy(ours, ref, L.floats * sizeof(float));
                list_rebase_all(&L, ours, t);
                ck_assert_int_eq(rmsfuse_pool_set_chunk(pools[p], some_chunks[k]), RMSFUSE_OK);
                rmsfuse_plan *plan = NULL;
                ck_assert_int_eq(rule_plan(&c, t, L.count, &plan), RMSFUSE_OK);
                rmsfuse_grad_info got = {-7.0, -7.0, -7};
                rmsfuse_grad_options oo = o;
                if (k == 2) { /* the sum given */
                    oo.sumsq = 0.0;
                    ck_assert_int_eq(rule_grad_sumsq(rule, t, L.count, o.scale, &oo.sumsq), RMSFUSE_OK);
                    oo.flags |= RMSFUSE_SUMSQ_GIVEN;
                }
                ck_assert_int_eq(rmsfuse_pool_run_plan_ex(pools[p], plan, &oo, &got), st_want);
                ck_assert_msg(memcmp(ours, L.block, L.floats * sizeof(float)) == 0,
                              "rule %d, case %d: %d workers, chunk %zu: not step_ex's bits", rule, v,
                              pool_threads[p], some_chunks[k]);
                ck_assert(same_double(got.norm, want.norm) && same_double(got.clip_factor, want.clip_factor) &&
                          got.nonfinite == want.nonfinite);
                if (v == 0) { /* bad entries: nothing written */
                    rmsfuse_grad_options bad = o;
                    bad.scale = 0.0;
                    ck_assert_int_eq(rmsfuse_pool_run_plan_ex(pools[p], plan, &bad, &got), RMSFUSE_E_GRAD_OPTIONS);
                    ck_assert_int_eq(rmsfuse_pool_run_plan_ex(NULL, plan, &o, &got), RMSFUSE_E_NULL_POOL);
                    ck_assert_int_eq(rmsfuse_pool_run_plan_ex(pools[p], NULL, &o, &got), RMSFUSE_E_NULL_PLAN);
                    ck_assert(memcmp(ours, L.block, L.floats * sizeof(float)) == 0);
                }
                rmsfuse_plan_free(plan);
            }
        for (int p = 0; p < N_POOLS; p++)
            rmsfuse_pool_set_chunk(pools[p], 0);
        free(t);
        free(ours);
        free(ref);
        list_free(&L);
    }
}
END_TEST

/* ---- typed plans (storage types: rmsfuse_<rule>_plan_typed) ---- */

/* A list of typed tensors in one arena (test_storage.c tests the values;
 * here only the bits of the pool against the single-threaded typed step):
 * arrays 0..7 bytes apart (any alignment), their values converted from
 * realistic floats, random bytes elsewhere. */
enum { TP_MAXT = 6 };
typedef struct typed_list {
    unsigned char *arena;
    size_t size, count;
    rmsfuse_typed_tensor t[TP_MAXT];
} typed_list;

static size_t tp_bytes(unsigned type)
{
    return type == RMSFUSE_F32 ? 4 : type == RMSFUSE_Q8 || type == RMSFUSE_Q8_LINEAR ? 1 : 2;
}

static int tp_nonneg(int rule, unsigned j)
{
    return (rule == RULE_RMSPROP || rule == RULE_ADAGRAD) ? j == 2 : rule == RULE_ADAM ? j == 3 || j == 4 : 0;
}

static void typed_list_make(typed_list *T, int rule, const rmsfuse_storage *st, const size_t *n, size_t count,
                            test_rng *r)
{
    const unsigned narr = rule_infos[rule].narr;
    const int q8 = st->state == RMSFUSE_Q8 || st->state == RMSFUSE_Q8_LINEAR;
    const size_t extra = st->param == RMSFUSE_SPLIT_BF16 ? 2 : (st->flags & RMSFUSE_MASTER_WEIGHTS) ? 4 : 0;
    size_t off[TP_MAXT][2 * MAX_ARR + 1], at = 0, maxn = 0;
    ck_assert_uint_le(count, TP_MAXT);
    for (size_t i = 0; i < count; i++) { /* slots, then extra, then scales */
        for (unsigned j = 0; j < narr; j++) {
            at += rng_next(r) % 8;
            off[i][j] = at;
            at += n[i] * tp_bytes(j == 0 ? st->param : j == 1 ? st->grad : st->state);
            if (j >= 2 && q8) {
                at = (at + 3) / 4 * 4;
                off[i][MAX_ARR + j] = at;
                at += (n[i] + RMSFUSE_Q8_BLOCK - 1) / RMSFUSE_Q8_BLOCK * 4;
            }
        }
        at += rng_next(r) % 8;
        off[i][2 * MAX_ARR] = at;
        at += n[i] * extra;
        maxn = n[i] > maxn ? n[i] : maxn;
    }
    T->size = at + 1;
    T->count = count;
    T->arena = malloc(T->size);
    float *v = malloc((maxn + 1) * sizeof(float));
    ck_assert(T->arena && v);
    for (size_t k = 0; k < T->size; k++)
        T->arena[k] = (unsigned char)rng_next(r);
    for (size_t i = 0; i < count; i++) {
        rmsfuse_typed_tensor *t = &T->t[i];
        memset(t, 0, sizeof *t);
        t->n = n[i];
        t->stream = i;
        for (unsigned j = 0; j < narr; j++) {
            unsigned char *p = T->arena + off[i][j];
            const unsigned type = j == 0 ? st->param : j == 1 ? st->grad : st->state;
            for (size_t e = 0; e < n[i]; e++)
                v[e] = rule_realistic(rule, j, r, 1.0f);
            float *scale = j >= 2 && q8 ? (float *)(void *)(T->arena + off[i][MAX_ARR + j]) : NULL;
            if (j == 0 && extra) { /* the split pair, or the master (the param is its rounding) */
                unsigned char *x = T->arena + off[i][2 * MAX_ARR];
                if (extra == 4) {
                    memcpy(x, v, n[i] * 4);
                    ck_assert_int_eq(rmsfuse_convert_from_f32(type, 0, v, p, NULL, n[i]), RMSFUSE_OK);
                } else {
                    for (size_t e = 0; e < n[i]; e++) {
                        const uint32_t u = f2u(v[e]);
                        const uint16_t hi = (uint16_t)(u >> 16), lo = (uint16_t)u;
                        memcpy(p + 2 * e, &hi, 2);
                        memcpy(x + 2 * e, &lo, 2);
                    }
                }
                t->param_extra = x;
            } else {
                ck_assert_int_eq(rmsfuse_convert_from_f32(type, j >= 2 && tp_nonneg(rule, j), v, p, scale, n[i]),
                                 RMSFUSE_OK);
            }
            if (j == 0)
                t->param = p;
            else if (j == 1)
                t->grad = p;
            else {
                t->state[j - 2] = p;
                t->scale[j - 2] = scale;
            }
        }
    }
    free(v);
}

/* T's tensors pointing into another copy of its arena. */
static void typed_rebase(const typed_list *T, unsigned char *other, rmsfuse_typed_tensor *out)
{
#define TP_MOVE(p) ((p) ? (void *)(other + ((const unsigned char *)(p) - T->arena)) : NULL)
    for (size_t i = 0; i < T->count; i++) {
        out[i] = T->t[i];
        out[i].param = TP_MOVE(T->t[i].param);
        out[i].param_extra = TP_MOVE(T->t[i].param_extra);
        out[i].grad = TP_MOVE(T->t[i].grad);
        for (unsigned k = 0; k < 4; k++) {
            out[i].state[k] = TP_MOVE(T->t[i].state[k]);
            out[i].scale[k] = (float *)TP_MOVE(T->t[i].scale[k]);
        }
    }
#undef TP_MOVE
}

static int typed_step_of(const rule_cfg *c, const rmsfuse_storage *st, const rmsfuse_typed_tensor *t, size_t count,
                         const rmsfuse_grad_options *o, rmsfuse_grad_info *info)
{
    switch (c->rule) {
    case RULE_RMSPROP: return rmsfuse_rmsprop_step_typed(&c->u.rmsprop, st, t, count, o, info);
    case RULE_ADAGRAD: return rmsfuse_adagrad_step_typed(&c->u.adagrad, st, t, count, o, info);
    case RULE_SGD: return rmsfuse_sgd_step_typed(&c->u.sgd, st, t, count, o, info);
    default: return rmsfuse_adam_step_typed(&c->u.adam, st, t, count, o, info);
    }
}

static int typed_plan_of(const rule_cfg *c, const rmsfuse_storage *st, const rmsfuse_typed_tensor *t, size_t count,
                         rmsfuse_plan **plan)
{
    switch (c->rule) {
    case RULE_RMSPROP: return rmsfuse_rmsprop_plan_typed(&c->u.rmsprop, st, t, count, plan);
    case RULE_ADAGRAD: return rmsfuse_adagrad_plan_typed(&c->u.adagrad, st, t, count, plan);
    case RULE_SGD: return rmsfuse_sgd_plan_typed(&c->u.sgd, st, t, count, plan);
    default: return rmsfuse_adam_plan_typed(&c->u.adam, st, t, count, plan);
    }
}

/* Typed plans on the pool (rmsfuse_pool_run_plan, _ex): step_typed's bits
 * (two steps), outcome and info for 1, 2 and 3 workers and several chunk
 * sizes, with 8-bit state (pieces on its blocks), master weights, split
 * params and stochastic rounding (the same random numbers in any piece);
 * a non-finite gradient skipped writes nothing. */
START_TEST(test_typed_plans)
{
    const int rule = _i;
    const rule_cfg c = rule_full_config(rule);
    test_rng r = {0x7e9u + (uint64_t)rule};
    static const size_t full_n[] = {70000, 33, 5000, 40000, 0, 300};
    static const size_t quick_n[] = {20000, 33, 1000, 17000, 0, 300};
    static const size_t some_chunks[] = {0, 1, 100, 1000, 70000};
    const size_t *n = quick_mode() ? quick_n : full_n;
    const rmsfuse_storage base = rmsfuse_storage_f32();
    rmsfuse_storage sts[3] = {base, base, base};
    sts[0].param = RMSFUSE_BF16, sts[0].grad = RMSFUSE_BF16, sts[0].state = RMSFUSE_Q8;
    sts[0].flags = RMSFUSE_MASTER_WEIGHTS | RMSFUSE_STOCHASTIC_ROUNDING;
    sts[1].param = RMSFUSE_SPLIT_BF16, sts[1].grad = RMSFUSE_F16, sts[1].state = RMSFUSE_Q8_LINEAR;
    sts[2].param = RMSFUSE_F16, sts[2].state = RMSFUSE_BF16, sts[2].flags = RMSFUSE_STOCHASTIC_ROUNDING;
    for (int s = 0; s < 3; s++) {
        sts[s].seed = rng_next(&r);
        sts[s].step = 3;
        typed_list T;
        typed_list_make(&T, rule, &sts[s], n, 6, &r);
        for (int v = 0; v < 3; v++) { /* plain; options; a non-finite gradient, skipped */
            if (quick_mode() && v != s)
                continue;
            unsigned char *orig = malloc(T.size), *ref = malloc(T.size);
            rmsfuse_typed_tensor t[TP_MAXT];
            ck_assert(orig && ref);
            memcpy(orig, T.arena, T.size);
            if (v == 2) { /* -Inf in the gradient of tensor 3 */
                static const unsigned char inf_bf16[2] = {0x80, 0xFF}, inf_f16[2] = {0x00, 0xFC};
                const float inf = -INFINITY;
                unsigned char *g = orig + ((const unsigned char *)T.t[3].grad - T.arena) + 7 * tp_bytes(sts[s].grad);
                memcpy(g, sts[s].grad == RMSFUSE_BF16 ? (const void *)inf_bf16
                          : sts[s].grad == RMSFUSE_F16 ? (const void *)inf_f16
                                                       : (const void *)&inf,
                       tp_bytes(sts[s].grad));
            }
            rmsfuse_grad_options o = rmsfuse_grad_options_none();
            o.scale = 0.5;
            o.clip_value = 0.3;
            o.max_norm = 1.0;
            o.flags = RMSFUSE_SKIP_NONFINITE;
            const rmsfuse_grad_options *opt = v ? &o : NULL;
            /* the single-threaded typed step, twice */
            memcpy(ref, orig, T.size);
            typed_rebase(&T, ref, t);
            rmsfuse_grad_info want = {-7.0, -7.0, -7};
            const int st_want = typed_step_of(&c, &sts[s], t, 6, opt, &want);
            ck_assert_int_eq(st_want, v == 2 ? RMSFUSE_SKIPPED : RMSFUSE_OK);
            ck_assert_int_eq(typed_step_of(&c, &sts[s], t, 6, opt, NULL), st_want);
            if (v == 2)
                ck_assert(memcmp(ref, orig, T.size) == 0);
            for (int p = 0; p < 3; p++) /* 1, 2 and 3 workers */
                for (size_t k = 0; k < sizeof some_chunks / sizeof some_chunks[0]; k++) {
                    if (quick_mode() && (p + (int)k) % 2)
                        continue;
                    memcpy(T.arena, orig, T.size);
                    typed_rebase(&T, T.arena, t);
                    ck_assert_int_eq(rmsfuse_pool_set_chunk(pools[p], some_chunks[k]), RMSFUSE_OK);
                    rmsfuse_plan *plan = NULL;
                    ck_assert_int_eq(typed_plan_of(&c, &sts[s], t, 6, &plan), RMSFUSE_OK);
                    for (int step = 0; step < 2; step++) {
                        rmsfuse_grad_info got = {-5.0, -5.0, -5};
                        if (v)
                            ck_assert_int_eq(rmsfuse_pool_run_plan_ex(pools[p], plan, &o, &got), st_want);
                        else
                            ck_assert_int_eq(rmsfuse_pool_run_plan(pools[p], plan), RMSFUSE_OK);
                        if (v && step == 0)
                            ck_assert(same_double(got.norm, want.norm) &&
                                      same_double(got.clip_factor, want.clip_factor) &&
                                      got.nonfinite == want.nonfinite);
                    }
                    ck_assert_msg(memcmp(T.arena, ref, T.size) == 0,
                                  "rule %d, storage %d, case %d: %d workers, chunk %zu: not step_typed's bits", rule,
                                  s, v, pool_threads[p], some_chunks[k]);
                    rmsfuse_plan_free(plan);
                }
            for (int p = 0; p < N_POOLS; p++)
                rmsfuse_pool_set_chunk(pools[p], 0);
            free(orig);
            free(ref);
        }
        free(T.arena);
    }
}
END_TEST

START_TEST(test_many_tiny_tensors)
{
    /* Quick runs: RMSProp with every pool and chunking, as ever; the other
     * rules with two of each. */
    static const int some_pools[] = {1, 3};
    static const size_t some_chunks[] = {1, 100};
    const int rule = _i;
    test_rng r = {31};
    const rule_cfg c = rule_full_config(rule);
    list L;
    list_make(&L, rule_infos[rule].narr, MAX_T, 40, &r);
    if (quick_mode() && rule != RULE_RMSPROP)
        assert_pool_matches_single_on(&L, &c, 2, some_pools, 2, some_chunks, 2);
    else
        assert_pool_matches_single(&L, &c, 2);
    list_free(&L);
}
END_TEST

START_TEST(test_single_array_unaligned)
{
    /* One tensor at every float offset within a cache line: RMSProp through
     * its single-array entry point, every rule through a one-tensor plan. */
    const int rule = _i;
    const unsigned narr = rule_infos[rule].narr;
    const size_t N = quick_mode() ? 50003 : 100003; /* >= 2 pieces of 16384 */
    rule_cfg c = rule_full_config(rule);
    test_rng r = {77};
    const size_t floats = narr * (N + 32);
    float *buf = malloc(floats * sizeof(float)), *ref = malloc(floats * sizeof(float));
    ck_assert(buf && ref);
    /* Quick runs: every offset for RMSProp, as ever; three for the others. */
    const int step = quick_mode() && rule != RULE_RMSPROP ? 6 : 3;
    for (int off = 0; off < 16; off += step) {
        for (size_t i = 0; i < floats; i++)
            ref[i] = buf[i] = rng_uniform(&r, 0.01f, 1.0f);
        float *a[MAX_ARR] = {NULL}, *b[MAX_ARR] = {NULL};
        for (unsigned j = 0; j < narr; j++) {
            a[j] = buf + j * (N + 32) + (size_t)off;
            b[j] = ref + j * (N + 32) + (size_t)off;
        }
        ck_assert_int_eq(rule_step(&c, b, N), RMSFUSE_OK);
        rmsfuse_pool *pool = pools[1 + off % 3];
        if (rule == RULE_RMSPROP && off % 2 == 0) {
            ck_assert_int_eq(rmsfuse_pool_rmsprop_step(pool, &c.u.rmsprop, a[0], a[1], a[2], a[3], a[4], N),
                             RMSFUSE_OK);
        } else {
            const rule_tensor t = rule_tensor_of(a, N);
            rmsfuse_plan *plan = NULL;
            ck_assert_int_eq(rule_plan(&c, &t, 1, &plan), RMSFUSE_OK);
            ck_assert_uint_eq(rmsfuse_plan_elements(plan), N);
            ck_assert_int_eq(rmsfuse_pool_run_plan(pool, plan), RMSFUSE_OK);
            rmsfuse_plan_free(plan);
        }
        ck_assert_msg(memcmp(buf, ref, floats * sizeof(float)) == 0, "%s: offset %d differs", rule_infos[rule].name,
                      off);
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

/* A list with a bad entry: the status of the single-threaded call, no plan,
 * and no tensor changed. */
START_TEST(test_bad_entries_change_nothing)
{
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    test_rng r = {8};
    const rule_cfg c = rule_full_config(rule);
    list L;
    list_make(&L, ri->narr, 50, quick_mode() ? 3000 : 30000, &r);
    for (size_t i = 0; i < L.count; i++)
        if (L.t[i].n == 0)
            L.t[i].n = 1; /* list_make leaves room for one */
    rmsfuse_pool *pool = pools[2];
    rmsfuse_pool_set_chunk(pool, 64);
    for (unsigned k = 0; k < ri->narr + 2; k++) {
        const rule_tensor keep = L.t[40];
        int status;
        if (k < ri->narr) { /* each array NULL */
            L.t[40].a[k] = NULL;
            status = ri->null_status[k];
        } else if (k == ri->narr) { /* across tensors */
            L.t[40].a[2] = L.t[3].a[SLOT_PARAM];
            L.t[40].n = 1;
            status = RMSFUSE_E_OVERLAP;
        } else {
            L.t[40].n = SIZE_MAX / 2;
            status = RMSFUSE_E_SIZE;
        }
        list_snapshot(&L);
        rmsfuse_plan *plan = (rmsfuse_plan *)&L;
        ck_assert_int_eq(rule_plan(&c, L.t, L.count, &plan), status);
        ck_assert_ptr_null(plan);
        if (rule == RULE_RMSPROP) {
            rmsfuse_tensor *x = rule_api_tensors(RULE_RMSPROP, L.t, L.count);
            ck_assert_int_eq(rmsfuse_pool_rmsprop_step_multi(pool, &c.u.rmsprop, x, L.count), status);
            free(x);
        }
        ck_assert_msg(list_unchanged(&L), "%s, case %u: a rejected call changed a tensor", ri->name, k);
        L.t[40] = keep;
    }
    rule_cfg bad = c;
    *rule_lr(&bad) = -1.0;
    list_snapshot(&L);
    rmsfuse_plan *plan = (rmsfuse_plan *)&L;
    ck_assert_int_eq(rule_plan(&bad, L.t, L.count, &plan), RMSFUSE_E_LR);
    ck_assert_ptr_null(plan);
    if (rule == RULE_RMSPROP) {
        rmsfuse_tensor *x = rule_api_tensors(RULE_RMSPROP, L.t, L.count);
        ck_assert_int_eq(rmsfuse_pool_rmsprop_step_multi(pool, &bad.u.rmsprop, x, L.count), RMSFUSE_E_LR);
        ck_assert_int_eq(rmsfuse_pool_rmsprop_step(pool, &bad.u.rmsprop, x[0].param, x[0].grad, x[0].square_avg,
                                                   x[0].momentum_buf, x[0].grad_avg, x[0].n),
                         RMSFUSE_E_LR);
        free(x);
    }
    /* A valid plan, run with a NULL pool, or a NULL plan: nothing runs. */
    ck_assert_int_eq(rule_plan(&c, L.t, L.count, &plan), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_pool_run_plan(NULL, plan), RMSFUSE_E_NULL_POOL);
    ck_assert_int_eq(rmsfuse_pool_run_plan(pool, NULL), RMSFUSE_E_NULL_PLAN);
    rmsfuse_plan_free(plan);
    ck_assert(list_unchanged(&L));
    rmsfuse_pool_set_chunk(pool, 0);
    list_free(&L);
}
END_TEST

START_TEST(test_empty_and_null)
{
    rmsfuse_rmsprop_config c = rmsfuse_rmsprop_pytorch(0.01);
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
    /* Plans of nothing, of every rule, run on a pool. */
    for (int rule = 0; rule < N_RULES; rule++) {
        const rule_cfg rc = rule_full_config(rule);
        rule_tensor rz[4];
        memset(rz, 0, sizeof rz);
        for (int k = 0; k < 2; k++) {
            rmsfuse_plan *plan = NULL;
            ck_assert_int_eq(rule_plan(&rc, k ? rz : NULL, k ? 4 : 0, &plan), RMSFUSE_OK);
            ck_assert_ptr_nonnull(plan);
            ck_assert_uint_eq(rmsfuse_plan_elements(plan), 0);
            ck_assert_int_eq(rmsfuse_pool_run_plan(pools[3], plan), RMSFUSE_OK);
            rmsfuse_plan_free(plan);
        }
    }

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

/* rmsfuse_pool_topology: the machine's counts as hwloc sees them (cores at
 * least the usable ones, hardware threads at least the cores), cache sizes
 * and counts >= 0, and -1 for every value of `what` it does not know. */
START_TEST(test_topology)
{
    const long long cores = rmsfuse_pool_topology(RMSFUSE_POOL_TOPO_CORES);
    ck_assert_int_ge(cores, rmsfuse_pool_machine_cores());
    ck_assert_int_ge(rmsfuse_pool_topology(RMSFUSE_POOL_TOPO_PUS), cores);
    ck_assert_int_ge(rmsfuse_pool_topology(RMSFUSE_POOL_TOPO_PACKAGES), 1);
    ck_assert_int_ge(rmsfuse_pool_topology(RMSFUSE_POOL_TOPO_NUMA_NODES), 1);
    for (int level = 1; level <= 5; level++) {
        ck_assert_int_ge(rmsfuse_pool_topology(RMSFUSE_POOL_TOPO_CACHE_BYTES + level), 0);
        ck_assert_int_ge(rmsfuse_pool_topology(RMSFUSE_POOL_TOPO_CACHE_COUNT + level), 0);
    }
    static const int unknown[] = {-1, 4, 15, RMSFUSE_POOL_TOPO_CACHE_BYTES, RMSFUSE_POOL_TOPO_CACHE_BYTES + 6,
                                  RMSFUSE_POOL_TOPO_CACHE_COUNT, RMSFUSE_POOL_TOPO_CACHE_COUNT + 6, 1000};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        ck_assert_int_eq(rmsfuse_pool_topology(unknown[i]), -1);
}
END_TEST

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

/* Several threads calling one pool at once, each on its own list (of
 * another rule each): every list ends with the single-threaded bits (calls
 * are serialised).  RMSProp's caller uses rmsfuse_pool_rmsprop_step_multi,
 * the others run one plan four times. */
typedef struct caller {
    list L;
    float *ref;
    rule_cfg c;
    rmsfuse_tensor *rms; /* RMSProp's list */
    rmsfuse_plan *plan;  /* the others' */
    int status;
} caller;

static void *caller_main(void *arg)
{
    caller *k = arg;
    for (int s = 0; s < 4 && k->status == RMSFUSE_OK; s++)
        k->status = k->rms ? rmsfuse_pool_rmsprop_step_multi(pools[1], &k->c.u.rmsprop, k->rms, k->L.count)
                           : rmsfuse_pool_run_plan(pools[1], k->plan);
    return NULL;
}

START_TEST(test_concurrent_callers)
{
    enum { CALLERS = 4 };
    caller k[CALLERS];
    pthread_t th[CALLERS];
    for (int i = 0; i < CALLERS; i++) {
        const int rule = i % N_RULES;
        test_rng r = {500u + (unsigned)i};
        list_make(&k[i].L, rule_infos[rule].narr, 6, 50000, &r);
        k[i].c = rule_full_config(rule);
        k[i].ref = list_clone_block(&k[i].L);
        k[i].status = RMSFUSE_OK;
        k[i].rms = NULL;
        k[i].plan = NULL;
        if (rule == RULE_RMSPROP)
            k[i].rms = rule_api_tensors(RULE_RMSPROP, k[i].L.t, k[i].L.count);
        else
            ck_assert_int_eq(rule_plan(&k[i].c, k[i].L.t, k[i].L.count, &k[i].plan), RMSFUSE_OK);
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
            ck_assert_int_eq(rule_step_multi(&k[i].c, k[i].L.t, k[i].L.count), RMSFUSE_OK);
        ck_assert_msg(memcmp(got, k[i].L.block, k[i].L.floats * sizeof(float)) == 0, "caller %d (%s) differs", i,
                      rule_infos[k[i].c.rule].name);
        free(got);
        free(k[i].ref);
        free(k[i].rms);
        rmsfuse_plan_free(k[i].plan);
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
    /* Where Check forks a process per test, the pools are made in each test
     * (threads do not survive fork); where it runs them in this process
     * (CK_FORK=no: every CI stage), once.  Making them loads hwloc's
     * topology four times: about 0.3 s a test under valgrind. */
    const char *fork_env = getenv("CK_FORK");
    if (fork_env && strcmp(fork_env, "no") == 0)
        tcase_add_unchecked_fixture(tc, pools_setup, pools_teardown);
    else
        tcase_add_checked_fixture(tc, pools_setup, pools_teardown);
    tcase_add_loop_test(tc, test_large_tensors_every_split, 0, 2 * N_RULES);
    tcase_add_loop_test(tc, test_every_combination, 0, N_RULES * COMBO_PARTS);
    tcase_add_loop_test(tc, test_many_tiny_tensors, 0, N_RULES);
    tcase_add_loop_test(tc, test_plan_ex_every_split, 0, N_RULES);
    tcase_add_loop_test(tc, test_typed_plans, 0, N_RULES);
    tcase_add_loop_test(tc, test_single_array_unaligned, 0, N_RULES);
    tcase_add_test(tc, test_split_tiles_on_cache_lines);
    tcase_add_loop_test(tc, test_bad_entries_change_nothing, 0, N_RULES);
    tcase_add_test(tc, test_empty_and_null);
    tcase_add_test(tc, test_topology);
    tcase_add_test(tc, test_run_calls_every_worker_once);
    tcase_add_test(tc, test_concurrent_callers);
    tcase_add_test(tc, test_workers_keep_to_the_process_binding);
    suite_add_tcase(s, tc);
    return rmsfuse_test_run(s);
}

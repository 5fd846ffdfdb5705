/*
 * The multi-tensor step of every rule (through the adapters of
 * test_rules.h): the same bits as one step per tensor, whatever the list
 * (many tiny tensors, empty tensors, more than the 64 the overlap check
 * sorts on the stack); every bad entry rejected with nothing written in
 * any tensor; overlaps across tensors caught, shared gradients allowed.
 * Registered once per ISA like the other suites.
 *
 * Which combinations of each rule: every one in the native run with
 * detection, one random combination per kernel loop in the others
 * (test_rules.h).
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rmsfuse.h"
#include "test_common.h"
#include "test_rules.h"
#include "test_tensors.h"

/* step_multi over the list == step on each tensor in turn, bit for bit
 * (the per-tensor reference runs on a copy of the block), `steps` times. */
static void assert_multi_matches_steps(list *L, const rule_cfg *c0, int steps)
{
    char what[256];
    rule_describe(c0, what, sizeof what);
    float *ref = list_clone_block(L);
    rule_cfg c = *c0;
    for (int s = 0; s < steps; s++, rule_advance_step(&c)) {
        int st = rule_step_multi(&c, L->t, L->count);
        REQUIRE_MSG(st == RMSFUSE_OK, "%s: step_multi gave %d", what, st);
        for (size_t i = 0; i < L->count; i++) {
            const rule_tensor t = list_rebase_tensor(L, ref, &L->t[i]);
            st = rule_step(&c, t.a, t.n);
            REQUIRE_MSG(st == RMSFUSE_OK, "%s: step gave %d", what, st);
        }
    }
    ck_assert_msg(memcmp(ref, L->block, L->floats * sizeof(float)) == 0,
                  "%s: step_multi differs from one step per tensor", what);
    free(ref);
}

/* Combinations per iteration of test_multi_equals_single_steps. */
#define PARTS 8

START_TEST(test_multi_equals_single_steps)
{
    const int rule = _i / PARTS, part = _i % PARTS;
    unsigned ks[MAX_COMBOS];
    test_rng sr = {test_run_seed(0x3017u + (uint64_t)rule)};
    const unsigned m = rule_sample(rule, test_full_run(), &sr, ks);
    for (unsigned v = (unsigned)part; v < m; v += PARTS) {
        const rule_cfg c = rule_config(rule, rule_combo(rule, ks[v]), (int)(v % (unsigned)rule_nhypers(rule)));
        test_rng r = {1000u + 977u * (uint64_t)rule + ks[v]};
        list L;
        /* Tiny tensors (tails, heads, n = 0), then a few larger ones. */
        list_make(&L, rule_infos[rule].narr, 40, 37, &r);
        assert_multi_matches_steps(&L, &c, 3);
        list_free(&L);
        /* (Quick: up to 500, was 1000 before RMSFUSE_FLUSH_SUBNORMAL doubled
         * the kernel loops, so the combinations of a sampled run.) */
        list_make(&L, rule_infos[rule].narr, 5, test_quick_mode() ? 500 : 3000, &r);
        assert_multi_matches_steps(&L, &c, 2);
        list_free(&L);
    }
}
END_TEST

START_TEST(test_many_tiny_tensors)
{
    /* More than 64 tensors: the overlap check sorts on the heap. */
    const int rule = _i;
    test_rng r = {7};
    const rule_cfg c = rule_full_config(rule);
    list L;
    list_make(&L, rule_infos[rule].narr, MAX_T, 9, &r);
    assert_multi_matches_steps(&L, &c, 2);
    list_free(&L);
}
END_TEST

START_TEST(test_empty_lists)
{
    const int rule = _i;
    rule_cfg c = rule_full_config(rule);
    ck_assert_int_eq(rule_step_multi(&c, NULL, 0), RMSFUSE_OK);
    ck_assert_int_eq(rule_check_multi(&c, NULL, 0), RMSFUSE_OK);
    ck_assert_int_eq(rule_step_multi(&c, NULL, 3), RMSFUSE_E_NULL_LIST);
    ck_assert_int_eq(rule_check_multi(&c, NULL, 3), RMSFUSE_E_NULL_LIST);
    /* Tensors of n = 0 may have NULL arrays. */
    rule_tensor zeros[3];
    memset(zeros, 0, sizeof zeros);
    ck_assert_int_eq(rule_step_multi(&c, zeros, 3), RMSFUSE_OK);
    ck_assert_int_eq(rule_check_multi(&c, zeros, 3), RMSFUSE_OK);
    /* The configuration is checked even for an empty list. */
    *rule_lr(&c) = -1.0;
    ck_assert_int_eq(rule_step_multi(&c, NULL, 0), RMSFUSE_E_LR);
    ck_assert_int_eq(rule_step_multi(&c, zeros, 3), RMSFUSE_E_LR);
    c.as_null = 1;
    ck_assert_int_eq(rule_step_multi(&c, zeros, 3), RMSFUSE_E_NULL_CONFIG);
    ck_assert_int_eq(rule_check_multi(&c, NULL, 0), RMSFUSE_E_NULL_CONFIG);
}
END_TEST

/* A list with one bad entry: the expected status, from step_multi,
 * check_multi and plan, and not one float changed anywhere. */
static void expect_rejected(list *L, const rule_cfg *c, int status, const char *what)
{
    const char *rule = rule_infos[c->rule].name;
    list_snapshot(L);
    int st = rule_step_multi(c, L->t, L->count);
    ck_assert_msg(st == status, "%s, %s: step_multi gave %d (%s), expected %d", rule, what, st,
                  rmsfuse_strerror(st), status);
    ck_assert_msg(list_unchanged(L), "%s, %s: a rejected call changed a tensor", rule, what);
    st = rule_check_multi(c, L->t, L->count);
    ck_assert_msg(st == status, "%s, %s: check_multi gave %d", rule, what, st);
    rmsfuse_plan *plan = (rmsfuse_plan *)L; /* must be set to NULL */
    st = rule_plan(c, L->t, L->count, &plan);
    ck_assert_msg(st == status, "%s, %s: plan gave %d", rule, what, st);
    ck_assert_msg(status == RMSFUSE_OK || plan == NULL, "%s, %s: a failed plan call left *plan set", rule, what);
    rmsfuse_plan_free(plan);
    ck_assert_msg(list_unchanged(L), "%s, %s: check_multi or plan changed a tensor", rule, what);
}

START_TEST(test_bad_entries_change_nothing)
{
    /* count 10 uses the stack for sorting, 100 the heap. */
    const int rule = _i / 2;
    const size_t count = _i % 2 ? 100 : 10;
    const rule_info *ri = &rule_infos[rule];
    test_rng r = {99};
    const rule_cfg c = rule_full_config(rule);
    list L;
    list_make(&L, ri->narr, count, 50, &r);
    for (size_t i = 0; i < count; i++)
        if (L.t[i].n == 0)
            L.t[i].n = 1; /* every tensor has elements (list_make left room), so every entry is checked */
    const size_t bad = count - 2; /* late in the list: earlier tensors were valid */
    const rule_tensor keep = L.t[bad];
    char what[96];

    for (unsigned j = 0; j < ri->narr; j++) {
        L.t[bad].a[j] = NULL;
        snprintf(what, sizeof what, "NULL %s", ri->arr_name[j]);
        expect_rejected(&L, &c, ri->null_status[j], what);
        L.t[bad] = keep;
    }
    L.t[bad].n = SIZE_MAX / 2;
    expect_rejected(&L, &c, RMSFUSE_E_SIZE, "huge n");
    L.t[bad] = keep;
    L.t[bad].a[2] = L.t[bad].a[SLOT_PARAM];
    expect_rejected(&L, &c, RMSFUSE_E_OVERLAP, "overlap inside a tensor");
    L.t[bad] = keep;

    /* Across tensors: a written array of one tensor overlapping any array
     * of another, by one element at either end or entirely. */
    for (unsigned j = 0; j < ri->narr; j++) {
        const rule_tensor *o = &L.t[1];
        for (unsigned k = 0; k < ri->narr; k++) {
            if (j == SLOT_GRAD && k == SLOT_GRAD)
                continue; /* two gradients may overlap: tested below */
            snprintf(what, sizeof what, "%s over another tensor's %s", ri->arr_name[j], ri->arr_name[k]);
            L.t[bad].n = 1;
            L.t[bad].a[j] = o->a[k] + (o->n - 1); /* the last element of theirs */
            expect_rejected(&L, &c, RMSFUSE_E_OVERLAP, what);
            L.t[bad].a[j] = o->a[k];
            expect_rejected(&L, &c, RMSFUSE_E_OVERLAP, what);
            L.t[bad] = keep;
        }
    }
    /* The same tensor twice in the list. */
    L.t[bad] = L.t[0];
    expect_rejected(&L, &c, RMSFUSE_E_OVERLAP, "a tensor listed twice");
    L.t[bad] = keep;

    /* Shared gradients are allowed (read only), and the list then still
     * matches one step per tensor. */
    for (size_t i = 1; i < count; i++)
        if (L.t[i].n <= L.t[0].n)
            L.t[i].a[SLOT_GRAD] = L.t[0].a[SLOT_GRAD];
    list_snapshot(&L);
    assert_multi_matches_steps(&L, &c, 1);
    list_free(&L);
}
END_TEST

/* Tensors cut from flat buffers: the one-pass overlap check.  Accepted
 * when disjoint, and every kind of overlap still caught, including those
 * that keep each kind in order. */
START_TEST(test_flat_layout)
{
    const int rule = _i / 2;
    const size_t count = _i % 2 ? 100 : 20;
    const rule_info *ri = &rule_infos[rule];
    test_rng r = {_i % 2 ? 61u : 62u};
    const rule_cfg c = rule_full_config(rule);
    list L;
    list_make_layout(&L, ri->narr, count, 40, &r, FLAT);
    for (size_t i = 0; i < count; i++)
        if (L.t[i].n == 0)
            L.t[i].n = 1;
    assert_multi_matches_steps(&L, &c, 2);

    const rule_tensor keep4 = L.t[4], keep5 = L.t[5];
    /* Within a kind, in order: the params of tensors 4 and 5 share their
     * boundary element. */
    L.t[5].a[SLOT_PARAM] = L.t[4].a[SLOT_PARAM] + L.t[4].n - 1;
    L.t[5].n = 1;
    expect_rejected(&L, &c, RMSFUSE_E_OVERLAP, "consecutive params overlapping");
    L.t[5] = keep5;
    /* Across kinds: the last state array inside the params region. */
    L.t[5].a[ri->narr - 1] = L.t[4].a[SLOT_PARAM];
    L.t[5].n = 1;
    expect_rejected(&L, &c, RMSFUSE_E_OVERLAP, "state in the params region");
    L.t[5] = keep5;
    /* The last param moved forward onto the first grad's first element:
     * params still in order, grads in order, but the two regions meet. */
    rule_tensor *last = &L.t[count - 1];
    const rule_tensor keep_last = *last;
    last->a[SLOT_PARAM] = L.t[0].a[SLOT_GRAD] - (last->n - 1);
    ck_assert((uintptr_t)last->a[SLOT_PARAM] > (uintptr_t)keep_last.a[SLOT_PARAM]);
    expect_rejected(&L, &c, RMSFUSE_E_OVERLAP, "last param reaching into the grads");
    *last = keep_last;
    /* Shared gradients: out of order for the one pass, accepted by the sort. */
    for (size_t i = 1; i < count; i++)
        if (L.t[i].n <= L.t[0].n)
            L.t[i].a[SLOT_GRAD] = L.t[0].a[SLOT_GRAD];
    L.t[4] = keep4;
    assert_multi_matches_steps(&L, &c, 1);
    list_free(&L);
}
END_TEST

START_TEST(test_bad_config_changes_nothing)
{
    const int rule = _i;
    test_rng r = {5};
    list L;
    list_make(&L, rule_infos[rule].narr, 8, 20, &r);
    rule_cfg c = rule_full_config(rule);
    *rule_lr(&c) = -0.5;
    expect_rejected(&L, &c, RMSFUSE_E_LR, "negative lr");
    c = rule_full_config(rule);
    *rule_flags(&c) |= 1u << 20;
    expect_rejected(&L, &c, RMSFUSE_E_FLAGS, "unknown flag");
    c.as_null = 1;
    expect_rejected(&L, &c, RMSFUSE_E_NULL_CONFIG, "NULL config");
    list_free(&L);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("multi");
    TCase *tc = tcase_create("multi");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_multi_equals_single_steps, 0, N_RULES * PARTS);
    tcase_add_loop_test(tc, test_many_tiny_tensors, 0, N_RULES);
    tcase_add_loop_test(tc, test_empty_lists, 0, N_RULES);
    tcase_add_loop_test(tc, test_bad_entries_change_nothing, 0, 2 * N_RULES);
    tcase_add_loop_test(tc, test_flat_layout, 0, 2 * N_RULES);
    tcase_add_loop_test(tc, test_bad_config_changes_nothing, 0, N_RULES);
    suite_add_tcase(s, tc);
    return rmsfuse_test_run(s);
}

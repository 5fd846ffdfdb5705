/*
 * The multi-tensor step: the same bits as one rmsfuse_rmsprop_step per
 * tensor, whatever the list (many tiny tensors, empty tensors, more than the
 * 64 the overlap check sorts on the stack); every bad entry rejected with
 * nothing written in any tensor; overlaps across tensors caught, shared
 * gradients allowed.  Registered once per ISA like the other suites.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rmsfuse.h"
#include "test_common.h"
#include "test_tensors.h"

/* step_multi over the list == step on each tensor in turn, bit for bit
 * (the per-tensor reference runs on a copy of the block). */
static void assert_multi_matches_steps(list *L, const rmsfuse_rmsprop_config *c, int steps)
{
    float *ref = list_clone_block(L);
    for (int s = 0; s < steps; s++) {
        ck_assert_int_eq(rmsfuse_rmsprop_step_multi(c, L->t, L->count), RMSFUSE_OK);
        for (size_t i = 0; i < L->count; i++) {
            const rmsfuse_tensor *t = &L->t[i];
            int st = rmsfuse_rmsprop_step(c, list_rebase(L, ref, t->param), list_rebase(L, ref, t->grad),
                                          list_rebase(L, ref, t->square_avg), list_rebase(L, ref, t->momentum_buf),
                                          list_rebase(L, ref, t->grad_avg), t->n);
            ck_assert_int_eq(st, RMSFUSE_OK);
        }
    }
    ck_assert_msg(memcmp(ref, L->block, L->floats * sizeof(float)) == 0,
                  "step_multi differs from one step per tensor");
    free(ref);
}

START_TEST(test_multi_equals_single_steps)
{
    const unsigned v = (unsigned)_i;
    test_rng r = {1000u + v};
    rmsfuse_rmsprop_config c = config_of(v);
    list L;
    /* Tiny tensors (tails, heads, n = 0), then a few larger ones. */
    list_make(&L, 40, 37, &r);
    assert_multi_matches_steps(&L, &c, 3);
    list_free(&L);
    list_make(&L, 5, 3000, &r);
    assert_multi_matches_steps(&L, &c, 2);
    list_free(&L);
}
END_TEST

START_TEST(test_many_tiny_tensors)
{
    /* More than 64 tensors: the overlap check sorts on the heap. */
    test_rng r = {7};
    rmsfuse_rmsprop_config c = config_of(RMSFUSE_CENTERED | 32u);
    list L;
    list_make(&L, MAX_T, 9, &r);
    assert_multi_matches_steps(&L, &c, 2);
    list_free(&L);
}
END_TEST

START_TEST(test_empty_lists)
{
    rmsfuse_rmsprop_config c = config_of(0);
    ck_assert_int_eq(rmsfuse_rmsprop_step_multi(&c, NULL, 0), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_rmsprop_check_multi(&c, NULL, 0), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_rmsprop_step_multi(&c, NULL, 3), RMSFUSE_E_NULL_LIST);
    ck_assert_int_eq(rmsfuse_rmsprop_check_multi(&c, NULL, 3), RMSFUSE_E_NULL_LIST);
    /* Tensors of n = 0 may have NULL arrays. */
    rmsfuse_tensor zeros[3];
    memset(zeros, 0, sizeof zeros);
    ck_assert_int_eq(rmsfuse_rmsprop_step_multi(&c, zeros, 3), RMSFUSE_OK);
    /* The configuration is checked even for an empty list. */
    c.alpha = 2.0;
    ck_assert_int_eq(rmsfuse_rmsprop_step_multi(&c, NULL, 0), RMSFUSE_E_ALPHA);
    ck_assert_int_eq(rmsfuse_rmsprop_step_multi(NULL, zeros, 3), RMSFUSE_E_NULL_CONFIG);
}
END_TEST

/* A list with one bad entry: the expected status, from step_multi and from
 * check_multi, and not one float changed anywhere. */
static void expect_rejected(list *L, const rmsfuse_rmsprop_config *c, int status, const char *what)
{
    list_snapshot(L);
    int st = rmsfuse_rmsprop_step_multi(c, L->t, L->count);
    ck_assert_msg(st == status, "%s: step_multi gave %d (%s), expected %d", what, st, rmsfuse_strerror(st),
                  status);
    ck_assert_msg(list_unchanged(L), "%s: a rejected call changed a tensor", what);
    st = rmsfuse_rmsprop_check_multi(c, L->t, L->count);
    ck_assert_msg(st == status, "%s: check_multi gave %d", what, st);
    ck_assert_msg(list_unchanged(L), "%s: check_multi changed a tensor", what);
}

/* Array j of a tensor, in the order param, grad, square_avg, momentum_buf,
 * grad_avg, set to x. */
static void set_array(rmsfuse_tensor *t, int j, float *x)
{
    switch (j) {
    case 0: t->param = x; break;
    case 1: t->grad = x; break;
    case 2: t->square_avg = x; break;
    case 3: t->momentum_buf = x; break;
    default: t->grad_avg = x; break;
    }
}

START_TEST(test_bad_entries_change_nothing)
{
    /* count 10 uses the stack for sorting, 100 the heap. */
    const size_t count = _i ? 100 : 10;
    test_rng r = {99};
    rmsfuse_rmsprop_config c = config_of(RMSFUSE_CENTERED | 16u | 32u);
    list L;
    list_make(&L, count, 50, &r);
    for (size_t i = 0; i < count; i++)
        if (L.t[i].n == 0)
            L.t[i].n = 1; /* every tensor has elements (list_make left room), so every entry is checked */
    const size_t bad = count - 2; /* late in the list: earlier tensors were valid */
    rmsfuse_tensor keep = L.t[bad];

    L.t[bad].param = NULL;
    expect_rejected(&L, &c, RMSFUSE_E_NULL_ARRAY, "NULL param");
    L.t[bad] = keep;
    L.t[bad].grad = NULL;
    expect_rejected(&L, &c, RMSFUSE_E_NULL_ARRAY, "NULL grad");
    L.t[bad] = keep;
    L.t[bad].momentum_buf = NULL;
    expect_rejected(&L, &c, RMSFUSE_E_NULL_MOMENTUM_BUF, "NULL momentum_buf");
    L.t[bad] = keep;
    L.t[bad].grad_avg = NULL;
    expect_rejected(&L, &c, RMSFUSE_E_NULL_GRAD_AVG, "NULL grad_avg");
    L.t[bad] = keep;
    L.t[bad].n = SIZE_MAX / 2;
    expect_rejected(&L, &c, RMSFUSE_E_SIZE, "huge n");
    L.t[bad] = keep;
    L.t[bad].square_avg = L.t[bad].param;
    expect_rejected(&L, &c, RMSFUSE_E_OVERLAP, "overlap inside a tensor");
    L.t[bad] = keep;

    /* Across tensors: a written array of one tensor overlapping any array
     * of another, by one element at either end or entirely. */
    for (int j = 0; j < 5; j++) {
        const rmsfuse_tensor *o = &L.t[1];
        float *theirs[5] = {o->param, (float *)o->grad, o->square_avg, o->momentum_buf, o->grad_avg};
        for (int k = 0; k < 5; k++) {
            if (j == 1 && k == 1)
                continue; /* two gradients may overlap: tested below */
            L.t[bad].n = 1;
            set_array(&L.t[bad], j, theirs[k] + (o->n - 1)); /* the last element of theirs */
            expect_rejected(&L, &c, RMSFUSE_E_OVERLAP, "overlap across tensors (end)");
            set_array(&L.t[bad], j, theirs[k]);
            expect_rejected(&L, &c, RMSFUSE_E_OVERLAP, "overlap across tensors (start)");
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
            L.t[i].grad = L.t[0].grad;
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
    const size_t count = _i ? 100 : 20;
    test_rng r = {_i ? 61u : 62u};
    rmsfuse_rmsprop_config c = config_of(RMSFUSE_CENTERED | 32u);
    list L;
    list_make_layout(&L, count, 40, &r, FLAT);
    for (size_t i = 0; i < count; i++)
        if (L.t[i].n == 0)
            L.t[i].n = 1;
    assert_multi_matches_steps(&L, &c, 2);

    rmsfuse_tensor keep4 = L.t[4], keep5 = L.t[5];
    /* Within a kind, in order: the params of tensors 4 and 5 share their
     * boundary element. */
    L.t[5].param = L.t[4].param + L.t[4].n - 1;
    L.t[5].n = 1;
    expect_rejected(&L, &c, RMSFUSE_E_OVERLAP, "consecutive params overlapping");
    L.t[5] = keep5;
    /* Across kinds: a square_avg inside the params region. */
    L.t[5].square_avg = L.t[4].param;
    L.t[5].n = 1;
    expect_rejected(&L, &c, RMSFUSE_E_OVERLAP, "square_avg in the params region");
    L.t[5] = keep5;
    /* The last param moved forward onto the first grad's first element:
     * params still in order, grads in order, but the two regions meet. */
    rmsfuse_tensor *last = &L.t[count - 1];
    rmsfuse_tensor keep_last = *last;
    last->param = (float *)L.t[0].grad - (last->n - 1);
    ck_assert((uintptr_t)last->param > (uintptr_t)keep_last.param);
    expect_rejected(&L, &c, RMSFUSE_E_OVERLAP, "last param reaching into the grads");
    *last = keep_last;
    /* Shared gradients: out of order for the one pass, accepted by the sort. */
    for (size_t i = 1; i < count; i++)
        if (L.t[i].n <= L.t[0].n)
            L.t[i].grad = L.t[0].grad;
    L.t[4] = keep4;
    assert_multi_matches_steps(&L, &c, 1);
    list_free(&L);
}
END_TEST

START_TEST(test_bad_config_changes_nothing)
{
    test_rng r = {5};
    list L;
    list_make(&L, 8, 20, &r);
    rmsfuse_rmsprop_config c = config_of(0);
    c.momentum = 1.0;
    expect_rejected(&L, &c, RMSFUSE_E_MOMENTUM, "momentum 1");
    c = config_of(0);
    c.flags = 1u << 9;
    expect_rejected(&L, &c, RMSFUSE_E_FLAGS, "unknown flag");
    list_free(&L);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("multi");
    TCase *tc = tcase_create("multi");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_multi_equals_single_steps, 0, 64);
    tcase_add_test(tc, test_many_tiny_tensors);
    tcase_add_test(tc, test_empty_lists);
    tcase_add_loop_test(tc, test_bad_entries_change_nothing, 0, 2);
    tcase_add_loop_test(tc, test_flat_layout, 0, 2);
    tcase_add_test(tc, test_bad_config_changes_nothing);
    suite_add_tcase(s, tc);
    return rmsfuse_test_run(s);
}

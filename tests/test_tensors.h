/*
 * Lists of tensors of any rule for the multi-tensor, pool and concurrency
 * tests: carved out of one block of memory, so that a test checks "nothing
 * changed" with one memcmp and builds overlaps at will.  Needs check.h,
 * test_common.h and test_rules.h.
 */
#ifndef RMSFUSE_TEST_TENSORS_H
#define RMSFUSE_TEST_TENSORS_H

#include <stdlib.h>
#include <string.h>

enum { MAX_T = 1000 };
typedef struct list {
    float *block, *copy;
    size_t floats;
    unsigned narr; /* arrays per tensor (the rule's) */
    rule_tensor t[MAX_T];
    size_t count;
} list;

/* Layouts: each tensor's arrays side by side (INTERLEAVED), or each kind
 * of array in its own region, in list order (FLAT: tensors cut from one
 * flat buffer per kind, the layout of ZeRO-style optimizers). */
enum layout { INTERLEAVED, FLAT };

/* count tensors of n[i] elements, each with narr arrays, at random float
 * offsets (so alignments differ), filled with values a real step sees
 * (positive state, signed gradients in slot 1). */
static inline void list_make_sizes(list *L, unsigned narr, const size_t *n, size_t count, test_rng *r,
                                   enum layout layout)
{
    size_t total = 0;
    ck_assert_uint_le(count, MAX_T);
    ck_assert_uint_le(narr, MAX_ARR);
    for (size_t i = 0; i < count; i++)
        total += narr * (n[i] + 4);
    L->floats = total + 1;
    L->block = malloc(L->floats * sizeof(float));
    L->copy = malloc(L->floats * sizeof(float));
    ck_assert(L->block && L->copy);
    for (size_t k = 0; k < L->floats; k++)
        L->block[k] = rng_uniform(r, 0.01f, 1.0f);
    float *at = L->block;
    for (size_t i = 0; i < count; i++)
        for (unsigned j = 0; j < MAX_ARR; j++)
            L->t[i].a[j] = NULL;
    for (unsigned pass = 0; pass < (layout == FLAT ? narr : 1); pass++)
        for (size_t i = 0; i < count; i++)
            for (unsigned j = 0; j < narr; j++) {
                if (layout == FLAT && j != pass)
                    continue;
                at += rng_next(r) % 4; /* 0..3 floats of padding: every alignment */
                L->t[i].a[j] = at;
                at += n[i] ? n[i] : 1; /* room for one element even when n = 0 */
            }
    for (size_t i = 0; i < count; i++) {
        for (size_t k = 0; k < n[i]; k++)
            L->t[i].a[SLOT_GRAD][k] = rng_uniform(r, -1.0f, 1.0f);
        L->t[i].n = n[i];
    }
    L->narr = narr;
    L->count = count;
}

/* count tensors of random sizes in [0, max_n] (as list_make_sizes). */
static inline void list_make_layout(list *L, unsigned narr, size_t count, size_t max_n, test_rng *r,
                                    enum layout layout)
{
    size_t n[MAX_T];
    ck_assert_uint_le(count, MAX_T);
    for (size_t i = 0; i < count; i++)
        n[i] = max_n ? (size_t)(rng_next(r) % (max_n + 1)) : 0;
    list_make_sizes(L, narr, n, count, r, layout);
}

static inline void list_make(list *L, unsigned narr, size_t count, size_t max_n, test_rng *r)
{
    list_make_layout(L, narr, count, max_n, r, INTERLEAVED);
}

static inline void list_snapshot(list *L)
{
    memcpy(L->copy, L->block, L->floats * sizeof(float));
}

static inline int list_unchanged(const list *L)
{
    return memcmp(L->copy, L->block, L->floats * sizeof(float)) == 0;
}

static inline void list_free(list *L)
{
    free(L->block);
    free(L->copy);
}

/* A copy of the list's block. */
static inline float *list_clone_block(const list *L)
{
    float *c = malloc(L->floats * sizeof(float));
    ck_assert(c);
    memcpy(c, L->block, L->floats * sizeof(float));
    return c;
}

/* p, an array of L, moved to the same place in another block. */
static inline float *list_rebase(const list *L, float *other, const float *p)
{
    return p ? other + (p - L->block) : NULL;
}

/* Tensor t of L with its arrays moved to the same places in another block. */
static inline rule_tensor list_rebase_tensor(const list *L, float *other, const rule_tensor *t)
{
    rule_tensor x;
    for (unsigned j = 0; j < MAX_ARR; j++)
        x.a[j] = list_rebase(L, other, t->a[j]);
    x.n = t->n;
    return x;
}

/* The whole list moved to another block (out has room for L->count). */
static inline void list_rebase_all(const list *L, float *other, rule_tensor *out)
{
    for (size_t i = 0; i < L->count; i++)
        out[i] = list_rebase_tensor(L, other, &L->t[i]);
}

#endif /* RMSFUSE_TEST_TENSORS_H */

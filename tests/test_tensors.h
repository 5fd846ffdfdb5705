/*
 * Lists of tensors for the multi-tensor and pool tests: carved out of one
 * block of memory, so that a test checks "nothing changed" with one memcmp
 * and builds overlaps at will.  Needs check.h, test_common.h, rmsfuse.h.
 */
#ifndef RMSFUSE_TEST_TENSORS_H
#define RMSFUSE_TEST_TENSORS_H

#include <stdlib.h>
#include <string.h>

enum { MAX_T = 1000 };
typedef struct list {
    float *block, *copy;
    size_t floats;
    rmsfuse_tensor t[MAX_T];
    size_t count;
} list;

/* Layouts: each tensor's five arrays side by side (INTERLEAVED), or each
 * kind of array in its own region, in list order (FLAT: tensors cut from
 * five flat buffers, the layout of ZeRO-style optimizers). */
enum layout { INTERLEAVED, FLAT };

/* count tensors of random sizes in [0, max_n], each with its five arrays,
 * at random float offsets (so alignments differ), filled with values a real
 * step sees (positive state, signed gradients). */
static inline void list_make_layout(list *L, size_t count, size_t max_n, test_rng *r, enum layout layout)
{
    size_t n[MAX_T], total = 0;
    ck_assert_uint_le(count, MAX_T);
    for (size_t i = 0; i < count; i++) {
        n[i] = max_n ? (size_t)(rng_next(r) % (max_n + 1)) : 0;
        total += 5 * (n[i] + 4);
    }
    L->floats = total + 1;
    L->block = malloc(L->floats * sizeof(float));
    L->copy = malloc(L->floats * sizeof(float));
    ck_assert(L->block && L->copy);
    for (size_t k = 0; k < L->floats; k++)
        L->block[k] = rng_uniform(r, 0.01f, 1.0f);
    float *at = L->block;
    float *a[MAX_T][5];
    for (int pass = 0; pass < (layout == FLAT ? 5 : 1); pass++)
        for (size_t i = 0; i < count; i++)
            for (int j = 0; j < 5; j++) {
                if (layout == FLAT && j != pass)
                    continue;
                at += rng_next(r) % 4; /* 0..3 floats of padding: every alignment */
                a[i][j] = at;
                at += n[i] ? n[i] : 1; /* room for one element even when n = 0 */
            }
    for (size_t i = 0; i < count; i++) {
        for (size_t k = 0; k < n[i]; k++)
            a[i][1][k] = rng_uniform(r, -1.0f, 1.0f);
        rmsfuse_tensor t = {a[i][0], a[i][1], a[i][2], a[i][3], a[i][4], n[i]};
        L->t[i] = t;
    }
    L->count = count;
}

static inline void list_make(list *L, size_t count, size_t max_n, test_rng *r)
{
    list_make_layout(L, count, max_n, r, INTERLEAVED);
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

/* The configuration of variant bits 0..63 (flags, weight decay, momentum). */
static inline rmsfuse_rmsprop_config config_of(unsigned v)
{
    rmsfuse_rmsprop_config c = {0.01, 0.9, 1e-6, (v & 16) ? 0.01 : 0.0, (v & 32) ? 0.9 : 0.0, v & 15u};
    return c;
}

/* A copy of the list's block, and the same tensors pointing into it. */
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

#endif /* RMSFUSE_TEST_TENSORS_H */

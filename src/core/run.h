/*
 * Validation of tensor lists as array descriptors (pointer, element size,
 * written or not) and the run of a kernel over them, for every rule.
 * Inline, so that in each rule's API file (through RMSFUSE_DEFINE_RULE_API)
 * the layout of the rule's tensor struct is a constant and the loops over
 * its arrays unroll: the checks are most of a small step's fixed cost.
 * The rest of the machinery (sorting, plans) is in src/core/run.c.
 */
#ifndef RMSFUSE_CORE_RUN_H
#define RMSFUSE_CORE_RUN_H

#include "internal.h"

/* Every array of the list against every other, by sorting (src/core/run.c);
 * the tensors are already checked one by one. */
int rmsfuse_check_list_sorted(const rmsfuse_prepared *P, const void *tensors, size_t count, size_t nonempty);

/* ---- reading a rule's tensor struct --------------------------------------- */

static RMSFUSE_ALWAYS_INLINE uintptr_t slot_ptr(const rmsfuse_layout *L, const unsigned char *t, unsigned s)
{
    void *p;
    memcpy(&p, t + L->offset[s], sizeof p);
    return (uintptr_t)p;
}

static RMSFUSE_ALWAYS_INLINE size_t tensor_n(const rmsfuse_layout *L, const unsigned char *t)
{
    size_t n;
    memcpy(&n, t + L->n_offset, sizeof n);
    return n;
}

static RMSFUSE_ALWAYS_INLINE const unsigned char *tensor_at(const rmsfuse_layout *L, const void *tensors, size_t i)
{
    return (const unsigned char *)tensors + i * L->size;
}

/* ---- one tensor ------------------------------------------------------------ */

/* The arrays of one tensor that the variant uses, as descriptors: slot,
 * byte range [lo, hi). */
typedef struct tensor_arrays {
    unsigned count;
    unsigned char slot[RMSFUSE_MAX_SLOTS];
    uintptr_t lo[RMSFUSE_MAX_SLOTS], hi[RMSFUSE_MAX_SLOTS];
} tensor_arrays;

/*
 * Tensor t with n > 0 elements: every array the variant uses is not NULL
 * (checked in slot order, each with its rule's status), fits the address
 * space, and is disjoint from every other.  On success *A describes them.
 */
static RMSFUSE_ALWAYS_INLINE int check_tensor(const rmsfuse_prepared *P, const rmsfuse_layout *L,
                                              const unsigned char *t, size_t n, tensor_arrays *A)
{
    const unsigned used = P->used;
    uintptr_t lo[RMSFUSE_MAX_SLOTS] = {0}, hi[RMSFUSE_MAX_SLOTS] = {0};
    int size_bad = 0;
    /* Unrolled over the layout's slots (a constant where this is inlined). */
#pragma GCC unroll 6
    for (unsigned s = 0; s < L->slots; s++) {
        if (!(used & (1u << s)))
            continue;
        lo[s] = slot_ptr(L, t, s);
        if (!lo[s])
            return L->null_status[s];
        size_t bytes;
        size_bad |= __builtin_mul_overflow(n, (size_t)P->elem[s], &bytes) | (lo[s] > UINTPTR_MAX - bytes);
        hi[s] = lo[s] + bytes;
    }
    if (size_bad)
        return RMSFUSE_E_SIZE;
    /* Every pair of used arrays; an unused slot's [0, 0) overlaps nothing. */
    int overlap = 0;
#pragma GCC unroll 6
    for (unsigned s = 1; s < L->slots; s++)
#pragma GCC unroll 6
        for (unsigned r = 0; r < s; r++)
            overlap |= (lo[s] < hi[r]) & (lo[r] < hi[s]);
    unsigned k = 0;
#pragma GCC unroll 6
    for (unsigned s = 0; s < L->slots; s++)
        if (used & (1u << s)) {
            A->slot[k] = (unsigned char)s;
            A->lo[k] = lo[s];
            A->hi[k++] = hi[s];
        }
    A->count = k;
    return overlap ? RMSFUSE_E_OVERLAP : RMSFUSE_OK;
}

/* The kernel's array addresses (unused slots NULL). */
static RMSFUSE_ALWAYS_INLINE void kernel_arrays(const tensor_arrays *A, char **a)
{
    for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++)
        a[s] = NULL;
    for (unsigned j = 0; j < A->count; j++)
        a[A->slot[j]] = (char *)A->lo[j];
}

/*
 * Each tensor on its own, then every written array against every other
 * array of the list.  The common layout is recognised in the same pass:
 * each kind of array (all params, all grads, ...) in list order without
 * overlaps, as when tensors are cut from flat buffers, and the kinds' hulls
 * disjoint; then nothing overlaps.  Otherwise the arrays are sorted.
 */
static RMSFUSE_ALWAYS_INLINE int rmsfuse_check_list_inl(const rmsfuse_prepared *P, const rmsfuse_layout *L,
                                                        const void *tensors, size_t count)
{
    if (count == 0)
        return RMSFUSE_OK;
    if (!tensors)
        return RMSFUSE_E_NULL_LIST;
    /* Per used slot (in the compact order of tensor_arrays, the same for
     * every tensor): where the first array starts, where the latest ends. */
    uintptr_t lo[RMSFUSE_MAX_SLOTS] = {0}, hi[RMSFUSE_MAX_SLOTS] = {0};
    tensor_arrays A = {0};
    int ordered = 1;
    size_t nonempty = 0;
    for (size_t i = 0; i < count; i++) {
        const unsigned char *t = tensor_at(L, tensors, i);
        const size_t n = tensor_n(L, t);
        if (n == 0)
            continue;
        const int st = check_tensor(P, L, t, n, &A);
        if (st != RMSFUSE_OK)
            return st;
        for (unsigned j = 0; j < A.count; j++) {
            if (nonempty == 0)
                lo[j] = A.lo[j];
            else
                ordered &= A.lo[j] >= hi[j];
            hi[j] = A.hi[j];
        }
        nonempty++;
    }
    if (nonempty <= 1)
        return RMSFUSE_OK; /* one tensor with elements: checked above */
    for (unsigned j = 1; j < A.count && ordered; j++)
        for (unsigned m = 0; m < j; m++)
            if (lo[j] < hi[m] && lo[m] < hi[j])
                ordered = 0;
    return ordered ? RMSFUSE_OK : rmsfuse_check_list_sorted(P, tensors, count, nonempty);
}

/* Checks, then runs the active ISA's kernel over every tensor. */
static RMSFUSE_ALWAYS_INLINE int rmsfuse_step_list_inl(const rmsfuse_prepared *P, const rmsfuse_layout *L,
                                                       const void *tensors, size_t count)
{
    tensor_arrays A = {0};
    char *a[RMSFUSE_MAX_SLOTS];
    if (count == 1 && tensors) {
        /* One tensor (every rule's single-array step): checked and run
         * without a second pass over the list. */
        const size_t n = tensor_n(L, tensors);
        if (n == 0)
            return RMSFUSE_OK;
        const int st = check_tensor(P, L, tensors, n, &A);
        if (st != RMSFUSE_OK)
            return st;
        kernel_arrays(&A, a);
        rmsfuse_active_kernel(P->rule)(P->k.bytes, P->variant, a, n);
        return RMSFUSE_OK;
    }
    const int st = rmsfuse_check_list_inl(P, L, tensors, count);
    if (st != RMSFUSE_OK)
        return st;
    rmsfuse_kernel kernel = NULL; /* the dispatcher's first use is the first work */
    for (size_t i = 0; i < count; i++) {
        const unsigned char *t = tensor_at(L, tensors, i);
        const size_t n = tensor_n(L, t);
        if (n == 0)
            continue;
        if (!kernel)
            kernel = rmsfuse_active_kernel(P->rule);
        (void)check_tensor(P, L, t, n, &A); /* passed above: this only reads the addresses again */
        kernel_arrays(&A, a);
        kernel(P->k.bytes, P->variant, a, n);
    }
    return RMSFUSE_OK;
}

#endif /* RMSFUSE_CORE_RUN_H */

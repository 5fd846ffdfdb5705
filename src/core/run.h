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

/* ---- plans (src/core/run.c; gradient options in src/core/grad.c) ---------- */
struct rmsfuse_plan {
    rmsfuse_prepared P;
    rmsfuse_kernel kernel; /* of the ISA active when the plan was made */
    size_t count;          /* tensors with elements */
    size_t *prefix;        /* [count + 1]: elements before tensor j */
    size_t *bprefix;       /* [count + 1]: norm blocks before tensor j */
    char **arrays;         /* [count][RMSFUSE_MAX_SLOTS]: each tensor's arrays */
    /* Typed plans (rmsfuse_<rule>_plan_typed; NULL and 0 otherwise): */
    rmsfuse_typed_job *jobs;             /* [count]: each tensor's arrays and types */
    const rmsfuse_storage_ops *sops;     /* of the ISA of `kernel` */
    int q8;                              /* 8-bit state: ranges start and end at blocks */
};

/* A plan of `nonempty` tensors for P (NULL when out of memory), its tensors
 * then set in order: tensor j's arrays (RMSFUSE_MAX_SLOTS of them) and size. */
rmsfuse_plan *rmsfuse_plan_new(const rmsfuse_prepared *P, size_t nonempty);
void rmsfuse_plan_set(rmsfuse_plan *plan, size_t j, char *const *a, size_t n);

/* Whether [begin, end) (inside the plan) starts and ends at blocks of 8-bit
 * state where the plan has it (src/core/run.c). */
int rmsfuse_plan_range_blocks_ok(const rmsfuse_plan *plan, size_t begin, size_t end);

/* Runs elements [begin, end) (checked) of a plan with the constants at k
 * (the plan's own, or a copy with other gradient options). */
void rmsfuse_plan_run_k(const rmsfuse_plan *plan, const void *k, size_t begin, size_t end);

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

/* The arrays of one tensor, by slot: the byte range [lo, hi) of each array
 * the variant uses ([0, 0), which overlaps nothing, where unused), and the
 * kernel's array addresses (NULL where unused). */
typedef struct tensor_arrays {
    uintptr_t lo[RMSFUSE_MAX_SLOTS], hi[RMSFUSE_MAX_SLOTS];
    char *a[RMSFUSE_MAX_SLOTS];
} tensor_arrays;

/*
 * Tensor t with n > 0 elements: every array the variant uses is not NULL
 * (checked in slot order, each with its rule's status), fits the address
 * space, and is disjoint from every other.  On success *A describes them.
 * The loops unroll where the layout is a constant (every rule's API file).
 */
static RMSFUSE_ALWAYS_INLINE int check_tensor(const rmsfuse_prepared *P, const rmsfuse_layout *L,
                                              const unsigned char *t, size_t n, tensor_arrays *A)
{
    const unsigned used = P->used;
    int wrap = 0;
#pragma GCC unroll 6
    for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++) {
        A->a[s] = NULL;
        A->lo[s] = A->hi[s] = 0;
        if (s >= L->slots || !(used & (1u << s)))
            continue;
        const uintptr_t p = slot_ptr(L, t, s);
        if (!p)
            return L->null_status[s];
        const size_t bytes = n * P->elem[s]; /* wraps only where n > max_n: refused below */
        wrap |= p > UINTPTR_MAX - bytes;
        A->a[s] = (char *)p;
        A->lo[s] = p;
        A->hi[s] = p + bytes;
    }
    if (n > P->max_n || wrap)
        return RMSFUSE_E_SIZE;
    int overlap = 0;
#pragma GCC unroll 6
    for (unsigned s = 1; s < L->slots; s++)
#pragma GCC unroll 6
        for (unsigned r = 0; r < s; r++)
            overlap |= (A->lo[s] < A->hi[r]) & (A->lo[r] < A->hi[s]);
    return overlap ? RMSFUSE_E_OVERLAP : RMSFUSE_OK;
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
    /* Per slot: where the first array starts, where the latest ends
     * ([0, 0) for a slot the variant does not use). */
    uintptr_t lo[RMSFUSE_MAX_SLOTS] = {0}, hi[RMSFUSE_MAX_SLOTS] = {0};
    tensor_arrays A;
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
        for (unsigned j = 0; j < L->slots; j++) {
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
    for (unsigned j = 1; j < L->slots && ordered; j++)
        for (unsigned m = 0; m < j; m++)
            if (lo[j] < hi[m] && lo[m] < hi[j])
                ordered = 0;
    return ordered ? RMSFUSE_OK : rmsfuse_check_list_sorted(P, tensors, count, nonempty);
}

/* Runs the active ISA's kernel over every tensor of a list that
 * rmsfuse_check_list_inl accepted. */
static RMSFUSE_ALWAYS_INLINE void rmsfuse_run_list_inl(const rmsfuse_prepared *P, const rmsfuse_layout *L,
                                                       const void *tensors, size_t count)
{
    tensor_arrays A;
    rmsfuse_kernel kernel = NULL; /* the dispatcher's first use is the first work */
    for (size_t i = 0; i < count; i++) {
        const unsigned char *t = tensor_at(L, tensors, i);
        const size_t n = tensor_n(L, t);
        if (n == 0)
            continue;
        if (!kernel)
            kernel = rmsfuse_active_kernel(P->rule);
        (void)check_tensor(P, L, t, n, &A); /* passed: this only reads the addresses again */
        kernel(P->k.bytes, P->variant, A.a, n);
    }
}

/* Checks, then runs the active ISA's kernel over every tensor. */
static RMSFUSE_ALWAYS_INLINE int rmsfuse_step_list_inl(const rmsfuse_prepared *P, const rmsfuse_layout *L,
                                                       const void *tensors, size_t count)
{
    if (count == 1 && tensors) {
        /* One tensor (every rule's single-array step): checked and run
         * without a second pass over the list. */
        tensor_arrays A;
        const size_t n = tensor_n(L, tensors);
        if (n == 0)
            return RMSFUSE_OK;
        const int st = check_tensor(P, L, tensors, n, &A);
        if (st != RMSFUSE_OK)
            return st;
        rmsfuse_active_kernel(P->rule)(P->k.bytes, P->variant, A.a, n);
        return RMSFUSE_OK;
    }
    const int st = rmsfuse_check_list_inl(P, L, tensors, count);
    if (st != RMSFUSE_OK)
        return st;
    rmsfuse_run_list_inl(P, L, tensors, count);
    return RMSFUSE_OK;
}

#endif /* RMSFUSE_CORE_RUN_H */

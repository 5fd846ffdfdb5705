/*
 * Typed steps (include/rmsfuse_common.h, "storage types"; docs/math.md,
 * "Storage types"): the storage's and the arrays' checks, the global norm
 * over gradients of any type, the step and plans over typed tensors, and the
 * public conversions.  Nothing here knows a rule: each rule's API file
 * (RMSFUSE_DEFINE_RULE_API) hands over its rmsfuse_prepared.  The
 * conversions themselves are per ISA (src/isa/storage.h).  A baseline file.
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/core/typed.c is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include <math.h>
#include <stdlib.h>

#include "internal.h"

rmsfuse_storage rmsfuse_storage_f32(void)
{
    const rmsfuse_storage s = {RMSFUSE_F32, RMSFUSE_F32, RMSFUSE_F32, 0u, 0u, 0u};
    return s;
}

/* The storage is one the library has: each type one its kind of array can
 * have, and flags that fit the param's type. */
static int check_storage(const rmsfuse_storage *st)
{
    if (!st)
        return RMSFUSE_E_STORAGE;
    const unsigned known = RMSFUSE_MASTER_WEIGHTS | RMSFUSE_STOCHASTIC_ROUNDING;
    const int narrow_param = st->param == RMSFUSE_BF16 || st->param == RMSFUSE_F16;
    if (st->param > RMSFUSE_SPLIT_BF16 || st->grad > RMSFUSE_F16 ||
        !(st->state == RMSFUSE_F32 || st->state == RMSFUSE_BF16 || rmsfuse_type_is_q8(st->state)) ||
        (st->flags & ~known) || (st->flags && !narrow_param))
        return RMSFUSE_E_STORAGE;
    return RMSFUSE_OK;
}

static size_t q8_blocks(size_t n)
{
    return n / RMSFUSE_Q8_BLOCK + (n % RMSFUSE_Q8_BLOCK != 0);
}

/* The kernels' job for tensor t (n > 0), and its byte ranges into s (at
 * most 2 * RMSFUSE_MAX_SLOTS + 1 of them; *m counts them).  Checks what
 * check_tensor checks for float32 tensors, with each array's size by its
 * type, and the extra arrays. */
static int tensor_job(const rmsfuse_prepared *P, unsigned nonneg, const rmsfuse_storage *st,
                      const rmsfuse_typed_tensor *t, rmsfuse_typed_job *J, rmsfuse_span *s, size_t *m)
{
    const rmsfuse_layout *L = P->layout;
    const size_t n = t->n;
    memset(J, 0, sizeof *J);
    J->used = P->used;
    J->nonneg = nonneg;
    J->flags = st->flags;
    J->rule = P->rule;
    if (n > SIZE_MAX / 4)
        return RMSFUSE_E_SIZE;
    size_t k = 0;
    int wrap = 0;
    for (unsigned sl = 0; sl < L->slots; sl++) {
        if (!(P->used & (1u << sl)))
            continue;
        const unsigned type = sl == RMSFUSE_SLOT_PARAM ? st->param : sl == RMSFUSE_SLOT_GRAD ? st->grad : st->state;
        void *p = sl == RMSFUSE_SLOT_PARAM ? t->param
                  : sl == RMSFUSE_SLOT_GRAD ? (void *)(uintptr_t)t->grad
                                            : t->state[sl - 2];
        if (!p)
            return L->null_status[sl];
        J->a[sl] = p;
        J->type[sl] = (unsigned char)type;
        const size_t bytes = n * rmsfuse_type_bytes(type);
        wrap |= (uintptr_t)p > UINTPTR_MAX - bytes;
        s[k++] = (rmsfuse_span){(uintptr_t)p, (uintptr_t)p + bytes, sl != RMSFUSE_SLOT_GRAD};
        if (sl >= 2 && rmsfuse_type_is_q8(type)) {
            if (!t->scale[sl - 2])
                return RMSFUSE_E_NULL_ARRAY;
            J->scale[sl] = (char *)t->scale[sl - 2];
            const size_t sb = q8_blocks(n) * sizeof(float);
            wrap |= (uintptr_t)J->scale[sl] > UINTPTR_MAX - sb;
            s[k++] = (rmsfuse_span){(uintptr_t)J->scale[sl], (uintptr_t)J->scale[sl] + sb, 1};
        }
    }
    const size_t extra = st->param == RMSFUSE_SPLIT_BF16 ? 2u : (st->flags & RMSFUSE_MASTER_WEIGHTS) ? 4u : 0u;
    if (extra) {
        if (!t->param_extra)
            return RMSFUSE_E_NULL_ARRAY;
        J->extra = t->param_extra;
        wrap |= (uintptr_t)J->extra > UINTPTR_MAX - n * extra;
        s[k++] = (rmsfuse_span){(uintptr_t)J->extra, (uintptr_t)J->extra + n * extra, 1};
    }
    if (wrap)
        return RMSFUSE_E_SIZE;
    if (st->flags & RMSFUSE_STOCHASTIC_ROUNDING) {
        /* docs/math.md: K = mix64(mix64(mix64(seed) ^ step) ^ stream) */
        const uint64_t z = rmsfuse_sr_mix64(rmsfuse_sr_mix64(rmsfuse_sr_mix64(st->seed) ^ st->step) ^ t->stream);
        J->key = z;
    }
    *m += k;
    return RMSFUSE_OK;
}

#define SPANS_PER_TENSOR (2 * RMSFUSE_MAX_SLOTS + 1)

/*
 * Checks the storage and every tensor, and the arrays of the whole list
 * against each other; on success, if jobs is not NULL, jobs[0, nonempty)
 * gets each tensor with elements.  *nonempty counts them.
 */
static int check_typed_list(const rmsfuse_prepared *P, unsigned nonneg, const rmsfuse_storage *st,
                            const rmsfuse_typed_tensor *tensors, size_t count, rmsfuse_typed_job *jobs,
                            size_t *nonempty)
{
    *nonempty = 0;
    int r = check_storage(st);
    if (r != RMSFUSE_OK)
        return r;
    if (count == 0)
        return RMSFUSE_OK;
    if (!tensors)
        return RMSFUSE_E_NULL_LIST;
    size_t ne = 0;
    for (size_t i = 0; i < count; i++)
        ne += tensors[i].n != 0;
    rmsfuse_span local[16 * SPANS_PER_TENSOR];
    rmsfuse_span *s = local;
    if (ne > 16) {
        s = ne <= SIZE_MAX / sizeof *s / SPANS_PER_TENSOR ? malloc(ne * SPANS_PER_TENSOR * sizeof *s) : NULL;
        if (!s)
            return RMSFUSE_E_NO_MEMORY;
    }
    size_t m = 0, j = 0;
    for (size_t i = 0; i < count && r == RMSFUSE_OK; i++) {
        if (tensors[i].n == 0)
            continue;
        rmsfuse_typed_job J;
        r = tensor_job(P, nonneg, st, &tensors[i], &J, s + m, &m);
        if (r == RMSFUSE_OK && jobs)
            jobs[j] = J;
        j++;
    }
    if (r == RMSFUSE_OK && rmsfuse_spans_overlap_kinds(s, m, j ? m / j : 0))
        r = RMSFUSE_E_OVERLAP;
    if (s != local)
        free(s);
    *nonempty = ne;
    return r;
}

/* The sum of squares of every gradient of the jobs, in the norm's order. */
static double jobs_sumsq(const rmsfuse_storage_ops *ops, const rmsfuse_typed_job *jobs, const size_t *n,
                         size_t count, float s, double acc)
{
    for (size_t j = 0; j < count; j++)
        for (size_t b = 0; b < n[j]; b += RMSFUSE_NORM_BLOCK) {
            const unsigned type = jobs[j].type[RMSFUSE_SLOT_GRAD];
            acc += ops->block_sumsq(type, jobs[j].a[RMSFUSE_SLOT_GRAD] + b * rmsfuse_type_bytes(type),
                                    n[j] - b < RMSFUSE_NORM_BLOCK ? n[j] - b : RMSFUSE_NORM_BLOCK, s);
        }
    return acc;
}

int rmsfuse_typed_step(rmsfuse_prepared *P, unsigned nonneg, const rmsfuse_storage *storage,
                       const rmsfuse_typed_tensor *tensors, size_t count, const rmsfuse_grad_options *opt,
                       rmsfuse_grad_info *info, int check_only)
{
    const rmsfuse_grad_options o = opt ? *opt : rmsfuse_grad_options_none();
    int st = rmsfuse_grad_check_options(&o);
    if (st != RMSFUSE_OK)
        return st;
    size_t ne = 0;
    if (check_only)
        return check_typed_list(P, nonneg, storage, tensors, count, NULL, &ne);
    /* The jobs' room first, so that one pass checks the list and fills them
     * (each pass sorts every array of the list: callgrind counted the two
     * passes' instructions at twice the one's) */
    for (size_t i = 0; tensors && i < count; i++)
        ne += tensors[i].n != 0;
    rmsfuse_typed_job one[4];
    size_t none[4];
    rmsfuse_typed_job *jobs = one;
    size_t *n = none;
    if (ne > 4) {
        jobs = ne <= SIZE_MAX / (sizeof *jobs + sizeof *n) ? malloc(ne * (sizeof *jobs + sizeof *n)) : NULL;
        if (!jobs) { /* the list's own error first, as without the room */
            st = check_typed_list(P, nonneg, storage, tensors, count, NULL, &ne);
            return st != RMSFUSE_OK ? st : RMSFUSE_E_NO_MEMORY;
        }
        n = (size_t *)(jobs + ne);
    }
    st = check_typed_list(P, nonneg, storage, tensors, count, jobs, &ne);
    if (st != RMSFUSE_OK) {
        if (jobs != one)
            free(jobs);
        return st;
    }
    for (size_t i = 0, j = 0; i < count; i++)
        if (tensors[i].n)
            n[j++] = tensors[i].n;

    const rmsfuse_storage_ops *ops = rmsfuse_active_storage_ops();
    double sumsq = o.sumsq;
    if (rmsfuse_grad_must_compute(&o))
        sumsq = jobs_sumsq(ops, jobs, n, ne, (float)o.scale, 0.0);
    rmsfuse_grad_info out;
    st = rmsfuse_grad_settle(&o, sumsq, P->k.bytes, &out);
    if (st == RMSFUSE_OK) {
        const rmsfuse_kernel kernel = rmsfuse_active_kernel(P->rule);
        for (size_t j = 0; j < ne; j++)
            ops->run(kernel, P->k.bytes, P->variant, &jobs[j], 0, n[j]);
    }
    if (jobs != one)
        free(jobs);
    if (info)
        *info = out;
    return st;
}

int rmsfuse_typed_plan(rmsfuse_prepared *P, unsigned nonneg, const rmsfuse_storage *storage,
                       const rmsfuse_typed_tensor *tensors, size_t count, rmsfuse_plan **out)
{
    *out = NULL;
    size_t ne;
    int st = check_typed_list(P, nonneg, storage, tensors, count, NULL, &ne);
    if (st != RMSFUSE_OK)
        return st;
    for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++) {
        const unsigned type = s == RMSFUSE_SLOT_PARAM ? storage->param
                              : s == RMSFUSE_SLOT_GRAD ? storage->grad
                                                        : storage->state;
        P->elem[s] = (unsigned char)rmsfuse_type_bytes(type);
    }
    rmsfuse_plan *plan = ne < SIZE_MAX / sizeof(rmsfuse_typed_job) ? rmsfuse_plan_new(P, ne) : NULL;
    rmsfuse_typed_job *jobs = plan ? malloc((ne ? ne : 1) * sizeof *jobs) : NULL;
    if (!jobs) {
        free(plan);
        return RMSFUSE_E_NO_MEMORY;
    }
    (void)check_typed_list(P, nonneg, storage, tensors, count, jobs, &ne); /* passed: fills the jobs */
    plan->sops = rmsfuse_active_storage_ops();
    plan->jobs = jobs;
    plan->q8 = rmsfuse_type_is_q8(storage->state) && (P->used >> 2) != 0;
    size_t j = 0;
    for (size_t i = 0; i < count; i++)
        if (tensors[i].n) {
            rmsfuse_plan_set(plan, j, jobs[j].a, tensors[i].n);
            j++;
        }
    *out = plan;
    return RMSFUSE_OK;
}

int rmsfuse_grad_sumsq_typed(const rmsfuse_storage *storage, const rmsfuse_typed_tensor *tensors, size_t count,
                             double scale, double *sumsq)
{
    if (!sumsq || !rmsfuse_grad_scale_ok(scale))
        return RMSFUSE_E_GRAD_OPTIONS;
    if (check_storage(storage) != RMSFUSE_OK)
        return RMSFUSE_E_STORAGE;
    if (count == 0)
        return RMSFUSE_OK;
    if (!tensors)
        return RMSFUSE_E_NULL_LIST;
    for (size_t i = 0; i < count; i++)
        if (tensors[i].n > 0 && !tensors[i].grad)
            return RMSFUSE_E_NULL_ARRAY;
    const rmsfuse_storage_ops *ops = rmsfuse_active_storage_ops();
    const size_t bytes = rmsfuse_type_bytes(storage->grad);
    double acc = *sumsq;
    for (size_t i = 0; i < count; i++)
        for (size_t b = 0; b < tensors[i].n; b += RMSFUSE_NORM_BLOCK)
            acc += ops->block_sumsq(storage->grad, (const char *)tensors[i].grad + b * bytes,
                                    tensors[i].n - b < RMSFUSE_NORM_BLOCK ? tensors[i].n - b : RMSFUSE_NORM_BLOCK,
                                    (float)scale);
    *sumsq = acc;
    return RMSFUSE_OK;
}

int rmsfuse_grad_block_sumsq_typed(unsigned type, const void *grad, size_t n, double scale, double *sums)
{
    if (type > RMSFUSE_F16)
        return RMSFUSE_E_STORAGE;
    if (n == 0)
        return rmsfuse_grad_scale_ok(scale) ? RMSFUSE_OK : RMSFUSE_E_GRAD_OPTIONS;
    if (!grad || !sums)
        return RMSFUSE_E_NULL_ARRAY;
    if (!rmsfuse_grad_scale_ok(scale))
        return RMSFUSE_E_GRAD_OPTIONS;
    const rmsfuse_storage_ops *ops = rmsfuse_active_storage_ops();
    for (size_t b = 0; b < n; b += RMSFUSE_NORM_BLOCK)
        *sums++ = ops->block_sumsq(type, (const char *)grad + b * rmsfuse_type_bytes(type),
                                   n - b < RMSFUSE_NORM_BLOCK ? n - b : RMSFUSE_NORM_BLOCK, (float)scale);
    return RMSFUSE_OK;
}

static int convert_check(unsigned type, const void *src, const void *dst, const void *scale, size_t n)
{
    if (type > RMSFUSE_Q8_LINEAR || type == RMSFUSE_SPLIT_BF16)
        return RMSFUSE_E_STORAGE;
    if (n > 0 && (!src || !dst || (rmsfuse_type_is_q8(type) && !scale)))
        return RMSFUSE_E_NULL_ARRAY;
    return RMSFUSE_OK;
}

int rmsfuse_convert_from_f32(unsigned type, int nonneg, const float *src, void *dst, float *scale, size_t n)
{
    const int st = convert_check(type, src, dst, scale, n);
    if (st == RMSFUSE_OK && n > 0)
        rmsfuse_active_storage_ops()->from_f32(type, nonneg != 0, src, dst, (char *)scale, n);
    return st;
}

int rmsfuse_convert_to_f32(unsigned type, int nonneg, const void *src, const float *scale, float *dst, size_t n)
{
    const int st = convert_check(type, src, dst, scale, n);
    if (st == RMSFUSE_OK && n > 0)
        rmsfuse_active_storage_ops()->to_f32(type, nonneg != 0, src, (const char *)scale, dst, n);
    return st;
}

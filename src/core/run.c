/*
 * The machinery every rule shares, beside src/core/run.h: the sorted
 * overlap check of tensor lists, and plans.  Nothing here knows a rule:
 * each rule's API file hands over an rmsfuse_prepared (src/core/internal.h).
 * A baseline file.
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/core/run.c is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include <stdlib.h>
#include <string.h>

#include "lines.h"
#include "run.h"

/* ---- many tensors ---------------------------------------------------------- */

typedef rmsfuse_span span;

static void span_insertion_sort(span *s, size_t m)
{
    for (size_t i = 1; i < m; i++) {
        const span x = s[i];
        size_t j = i;
        for (; j > 0 && s[j - 1].lo > x.lo; j--)
            s[j] = s[j - 1];
        s[j] = x;
    }
}

/* Heap sort by start: in place, where the radix sort's buffer cannot be had. */
static void span_sift(span *s, size_t root, size_t m)
{
    const span x = s[root];
    for (size_t c; (c = 2 * root + 1) < m; root = c) {
        if (c + 1 < m && s[c + 1].lo > s[c].lo)
            c++;
        if (s[c].lo <= x.lo)
            break;
        s[root] = s[c];
    }
    s[root] = x;
}
static void span_heap_sort(span *s, size_t m)
{
    for (size_t i = m / 2; i-- > 0;)
        span_sift(s, i, m);
    for (size_t e = m; e-- > 1;) {
        const span t = s[0];
        s[0] = s[e];
        s[e] = t;
        span_sift(s, 0, e);
    }
}

/* Radix sort by start, a byte at a time from the lowest, each pass stable,
 * through tmp (m ranges); the bytes in which every start is the same are
 * skipped (heap addresses differ in their lowest four or five).  glibc's
 * qsort (a merge sort through a buffer, a call per comparison) took 85% of
 * a typed step's instructions over 200 tensors of 32 elements (callgrind,
 * all-bf16 RMSProp with momentum), a heap sort as many; this a third of
 * them.  The typed step: 334 -> 121 ns per tensor (AMD Zen 3 VM, best of
 * 30, each array its own allocation; with the check once, src/core/typed.c,
 * and the one pass of rmsfuse_spans_overlap_kinds where tensors are cut
 * from flat buffers: 460 -> 84). */
static void span_radix_sort(span *s, span *tmp, size_t m)
{
    uintptr_t diff = 0;
    for (size_t i = 1; i < m; i++)
        diff |= s[i].lo ^ s[0].lo;
    span *src = s, *dst = tmp;
    for (unsigned sh = 0; sh < 8 * sizeof(uintptr_t); sh += 8) {
        if (!((diff >> sh) & 0xFF))
            continue;
        size_t pos[256] = {0};
        for (size_t i = 0; i < m; i++)
            pos[(src[i].lo >> sh) & 0xFF]++;
        for (size_t d = 0, at = 0; d < 256; d++) {
            const size_t c = pos[d];
            pos[d] = at;
            at += c;
        }
        for (size_t i = 0; i < m; i++)
            dst[pos[(src[i].lo >> sh) & 0xFF]++] = src[i];
        span *const t = src;
        src = dst;
        dst = t;
    }
    if (src != s)
        memcpy(s, src, m * sizeof *s);
}

/* Sorted by start, a range overlaps an earlier one iff it starts before the
 * largest end seen so far (of the written ranges, for a read-only one); the
 * order of ranges with the same start does not change the answer.  Up to
 * 32 ranges (a few tensors) an insertion sort alone: a typed step of one
 * 16-element tensor took 244 ns per call with qsort and 157 with it (AMD
 * Zen 3). */
int rmsfuse_spans_overlap(span *s, size_t m)
{
    span *tmp;
    if (m <= 32) {
        span_insertion_sort(s, m);
    } else if ((tmp = m <= SIZE_MAX / sizeof *tmp ? malloc(m * sizeof *tmp) : NULL) != NULL) {
        span_radix_sort(s, tmp, m);
        free(tmp);
    } else {
        span_heap_sort(s, m);
    }
    uintptr_t end_all = 0, end_written = 0;
    for (size_t i = 0; i < m; i++) {
        if (s[i].lo < (s[i].written ? end_all : end_written))
            return 1;
        if (s[i].hi > end_all)
            end_all = s[i].hi;
        if (s[i].written && s[i].hi > end_written)
            end_written = s[i].hi;
    }
    return 0;
}

/* s: k ranges per tensor, every tensor's in the same order of kinds (param,
 * gradient, ...).  Where each kind's ranges are in list order without
 * overlaps and the kinds' hulls are disjoint, nothing overlaps, in one pass
 * (as rmsfuse_check_list_inl's for float32 lists, src/core/run.h: tensors
 * cut from flat buffers, or allocated in order); else the sort. */
int rmsfuse_spans_overlap_kinds(span *s, size_t m, size_t k)
{
    if (k == 0 || m % k != 0 || m / k < 2)
        return rmsfuse_spans_overlap(s, m);
    int ordered = 1;
    for (size_t j = 0; j < k && ordered; j++)
        for (size_t i = j + k; i < m; i += k)
            if (s[i].lo < s[i - k].hi) {
                ordered = 0;
                break;
            }
    for (size_t j = 1; j < k && ordered; j++)
        for (size_t q = 0; q < j; q++)
            if (s[j].lo < s[m - k + q].hi && s[q].lo < s[m - k + j].hi)
                ordered = 0;
    return ordered ? 0 : rmsfuse_spans_overlap(s, m);
}

int rmsfuse_check_list_sorted(const rmsfuse_prepared *P, const void *tensors, size_t count, size_t nonempty)
{
    const rmsfuse_layout *L = P->layout;
    span local[64 * RMSFUSE_MAX_SLOTS];
    span *s = local;
    if (nonempty > sizeof local / sizeof local[0] / L->slots) {
        s = nonempty <= SIZE_MAX / sizeof *s / L->slots ? malloc(nonempty * L->slots * sizeof *s) : NULL;
        if (!s)
            return RMSFUSE_E_NO_MEMORY;
    }
    size_t m = 0;
    for (size_t i = 0; i < count; i++) {
        const unsigned char *t = tensor_at(L, tensors, i);
        const size_t n = tensor_n(L, t);
        if (n == 0)
            continue;
        for (unsigned j = 0; j < L->slots; j++) {
            if (!(P->used & (1u << j)))
                continue;
            s[m].lo = slot_ptr(L, t, j);
            s[m].hi = s[m].lo + n * P->elem[j];
            s[m].written = j != RMSFUSE_SLOT_GRAD;
            m++;
        }
    }
    const int bad = rmsfuse_spans_overlap(s, m);
    if (s != local)
        free(s);
    return bad ? RMSFUSE_E_OVERLAP : RMSFUSE_OK;
}

/* ---- plans ----------------------------------------------------------------- */

rmsfuse_plan *rmsfuse_plan_new(const rmsfuse_prepared *P, size_t nonempty)
{
    if (nonempty >= SIZE_MAX / 2 / (2 * sizeof(size_t) + RMSFUSE_MAX_SLOTS * sizeof(char *)))
        return NULL;
    const size_t per = 2 * (nonempty + 1) * sizeof(size_t) + nonempty * RMSFUSE_MAX_SLOTS * sizeof(char *);
    rmsfuse_plan *plan = malloc(sizeof *plan + per);
    if (!plan)
        return NULL;
    plan->P = *P;
    plan->jobs = NULL;
    plan->sops = NULL;
    plan->q8 = 0;
    plan->kernel = rmsfuse_active_kernel(P->rule);
    plan->count = nonempty;
    plan->arrays = (char **)(plan + 1);
    plan->prefix = (size_t *)(plan->arrays + nonempty * RMSFUSE_MAX_SLOTS);
    plan->bprefix = plan->prefix + nonempty + 1;
    plan->prefix[0] = plan->bprefix[0] = 0;
    return plan;
}

void rmsfuse_plan_set(rmsfuse_plan *plan, size_t j, char *const *a, size_t n)
{
    memcpy(plan->arrays + j * RMSFUSE_MAX_SLOTS, a, RMSFUSE_MAX_SLOTS * sizeof *a);
    plan->prefix[j + 1] = plan->prefix[j] + n; /* cannot overflow: the arrays are disjoint in memory */
    plan->bprefix[j + 1] = plan->bprefix[j] + n / RMSFUSE_NORM_BLOCK + (n % RMSFUSE_NORM_BLOCK != 0);
}

int rmsfuse_plan_list(const rmsfuse_prepared *P, const void *tensors, size_t count, rmsfuse_plan **out)
{
    *out = NULL;
    int st = rmsfuse_check_list_inl(P, P->layout, tensors, count);
    if (st != RMSFUSE_OK)
        return st;
    size_t nonempty = 0;
    for (size_t i = 0; i < count; i++)
        nonempty += tensor_n(P->layout, tensor_at(P->layout, tensors, i)) != 0;
    rmsfuse_plan *plan = rmsfuse_plan_new(P, nonempty);
    if (!plan)
        return RMSFUSE_E_NO_MEMORY;
    size_t j = 0;
    for (size_t i = 0; i < count; i++) {
        const unsigned char *t = tensor_at(P->layout, tensors, i);
        const size_t n = tensor_n(P->layout, t);
        if (n == 0)
            continue;
        tensor_arrays A;
        (void)check_tensor(P, P->layout, t, n, &A); /* passed above: this only reads the addresses */
        rmsfuse_plan_set(plan, j++, A.a, n);
    }
    *out = plan;
    return RMSFUSE_OK;
}

size_t rmsfuse_plan_elements(const rmsfuse_plan *plan)
{
    return plan ? plan->prefix[plan->count] : 0;
}

/* The tensor holding element f < total: the last j with prefix[j] <= f. */
static size_t tensor_of(const rmsfuse_plan *plan, size_t f)
{
    size_t lo = 0, hi = plan->count; /* prefix[lo] <= f < prefix[hi] */
    while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        if (plan->prefix[mid] <= f)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Whether plan element f is a block boundary of its tensor's 8-bit state
 * (a tensor's first element, or the plan's end). */
static int at_block(const rmsfuse_plan *plan, size_t f)
{
    if (f >= plan->prefix[plan->count])
        return 1;
    return (f - plan->prefix[tensor_of(plan, f)]) % RMSFUSE_Q8_BLOCK == 0;
}

int rmsfuse_plan_range_blocks_ok(const rmsfuse_plan *plan, size_t begin, size_t end)
{
    return !plan->q8 || begin == end || (at_block(plan, begin) && at_block(plan, end));
}

void rmsfuse_plan_run_k(const rmsfuse_plan *plan, const void *k, size_t begin, size_t end)
{
    if (begin == end)
        return;
    for (size_t j = tensor_of(plan, begin); j < plan->count && plan->prefix[j] < end; j++) {
        const size_t first = plan->prefix[j], n = plan->prefix[j + 1] - first;
        const size_t lo = begin > first ? begin - first : 0;
        const size_t hi = end - first < n ? end - first : n;
        if (plan->jobs) {
            plan->sops->run(plan->kernel, k, plan->P.variant, &plan->jobs[j], lo, hi);
            continue;
        }
        char *const *base = plan->arrays + j * RMSFUSE_MAX_SLOTS;
        char *a[RMSFUSE_MAX_SLOTS];
        for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++)
            a[s] = base[s] ? base[s] + lo * plan->P.elem[s] : NULL;
        plan->kernel(k, plan->P.variant, a, hi - lo);
    }
}

int rmsfuse_plan_run(const rmsfuse_plan *plan, size_t begin, size_t end)
{
    if (!plan)
        return RMSFUSE_E_NULL_PLAN;
    if (begin > end || end > plan->prefix[plan->count])
        return RMSFUSE_E_RANGE;
    if (!rmsfuse_plan_range_blocks_ok(plan, begin, end))
        return RMSFUSE_E_BLOCK;
    rmsfuse_plan_run_k(plan, plan->P.k.bytes, begin, end);
    return RMSFUSE_OK;
}

size_t rmsfuse_plan_cut(const rmsfuse_plan *plan, size_t f)
{
    const size_t total = rmsfuse_plan_elements(plan);
    if (f == 0 || f >= total)
        return f < total ? f : total;
    const size_t j = tensor_of(plan, f);
    const size_t o = f - plan->prefix[j], n = plan->prefix[j + 1] - plan->prefix[j];
    if (o == 0)
        return f;
    if (plan->jobs) { /* typed: the tensor's blocks of RMSFUSE_Q8_BLOCK elements */
        const size_t up = (o + RMSFUSE_Q8_BLOCK - 1) / RMSFUSE_Q8_BLOCK * RMSFUSE_Q8_BLOCK;
        return plan->prefix[j] + (up < n ? up : n);
    }
    const size_t elem = plan->P.elem[RMSFUSE_SLOT_PARAM];
    const size_t skip = rmsfuse_to_line(plan->arrays[j * RMSFUSE_MAX_SLOTS + RMSFUSE_SLOT_PARAM] + o * elem, elem);
    return plan->prefix[j] + (skip < n - o ? o + skip : n);
}

void rmsfuse_plan_free(rmsfuse_plan *plan)
{
    if (plan)
        free(plan->jobs);
    free(plan);
}

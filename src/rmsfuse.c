/*
 * Public API: argument validation, constant derivation, presets, status
 * strings.  A baseline file (no ISA flags).
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/rmsfuse.c is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "rmsfuse_internal.h"

rmsfuse_rmsprop_config rmsfuse_rmsprop_pytorch(double lr)
{
    rmsfuse_rmsprop_config c = {lr, 0.99, 1e-8, 0.0, 0.0, 0u};
    return c;
}

rmsfuse_rmsprop_config rmsfuse_rmsprop_tensorflow(double lr)
{
    rmsfuse_rmsprop_config c = {lr, 0.9, 1e-10, 0.0, 0.0, RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM};
    return c;
}

rmsfuse_rmsprop_config rmsfuse_rmsprop_keras(double lr)
{
    rmsfuse_rmsprop_config c = {lr, 0.9, 1e-7, 0.0, 0.0, RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM};
    return c;
}

/*
 * Validates cfg and derives the loop constants: each rounded once from
 * double (docs/math.md).  A hyperparameter must be finite and still finite
 * once rounded to float; (float)x is finite only if x is, and x * 0 is zero
 * only for finite x, so one comparison checks all five.
 */
static int derive_consts(const rmsfuse_rmsprop_config *cfg, rmsfuse_consts *k)
{
    if (!cfg)
        return RMSFUSE_E_NULL_CONFIG;
    k->a = (float)cfg->alpha;
    k->c = (float)(1.0 - cfg->alpha);
    k->e = (float)cfg->eps;
    k->m = (float)cfg->momentum;
    k->w = (float)cfg->weight_decay;
    k->l = (float)cfg->lr;
    k->nl = (float)(-cfg->lr);
    if (!(k->a * 0.0f + k->e * 0.0f + k->m * 0.0f + k->w * 0.0f + k->l * 0.0f == 0.0f))
        return RMSFUSE_E_NONFINITE;
    if (cfg->lr < 0.0)
        return RMSFUSE_E_LR;
    if (!(cfg->alpha >= 0.0 && cfg->alpha <= 1.0))
        return RMSFUSE_E_ALPHA;
    if (cfg->eps < 0.0)
        return RMSFUSE_E_EPS;
    if (cfg->weight_decay < 0.0)
        return RMSFUSE_E_WEIGHT_DECAY;
    if (!(cfg->momentum >= 0.0 && cfg->momentum < 1.0))
        return RMSFUSE_E_MOMENTUM;
    if (cfg->flags & ~RMSFUSE_ALL_FLAGS)
        return RMSFUSE_E_FLAGS;
    k->variant = cfg->flags | (cfg->weight_decay != 0.0 ? RMSFUSE_V_WD : 0u) |
                 (cfg->momentum != 0.0 ? RMSFUSE_V_MOM : 0u);
    return RMSFUSE_OK;
}

int rmsfuse_rmsprop_check_config(const rmsfuse_rmsprop_config *cfg)
{
    rmsfuse_consts k;
    return derive_consts(cfg, &k);
}

/* The NULL rules of one tensor with n > 0, in the documented order. */
static RMSFUSE_ALWAYS_INLINE int check_nulls(const unsigned variant, const float *p, const float *g, const float *v, const float *b,
                       const float *ga)
{
    if (!p || !g || !v)
        return RMSFUSE_E_NULL_ARRAY;
    if ((variant & RMSFUSE_V_MOM) && !b)
        return RMSFUSE_E_NULL_MOMENTUM_BUF;
    if ((variant & RMSFUSE_V_CENTERED) && !ga)
        return RMSFUSE_E_NULL_GRAD_AVG;
    return RMSFUSE_OK;
}

/* [x, x + bytes) and [y, y + bytes), neither wrapping, are disjoint iff
 * their distance, either way round, is at least bytes. */
static int disjoint(uintptr_t x, uintptr_t y, size_t bytes)
{
    const uintptr_t d = x - y;
    return (d >= bytes) & ((uintptr_t)0 - d >= bytes);
}

/* n > 0.  Every array one tensor uses: not NULL, not wrapping the address
 * space, pairwise disjoint.  Written out pair by pair, without branches:
 * this runs on every call and is most of its fixed cost. */
static RMSFUSE_ALWAYS_INLINE int check_tensor(const unsigned variant, const float *p, const float *g, const float *v, const float *b,
                        const float *ga, size_t n)
{
    const int st = check_nulls(variant, p, g, v, b, ga);
    if (st != RMSFUSE_OK)
        return st;
    if (n > SIZE_MAX / sizeof(float))
        return RMSFUSE_E_SIZE;
    const size_t bytes = n * sizeof(float);
    const uintptr_t top = UINTPTR_MAX - bytes;
    const int mom = (variant & RMSFUSE_V_MOM) != 0, cen = (variant & RMSFUSE_V_CENTERED) != 0;
    /* An unused state array stands in as param for the wrap check. */
    const uintptr_t P = (uintptr_t)p, G = (uintptr_t)g, V = (uintptr_t)v;
    const uintptr_t B = mom ? (uintptr_t)b : P, A = cen ? (uintptr_t)ga : P;
    if ((P > top) | (G > top) | (V > top) | (B > top) | (A > top))
        return RMSFUSE_E_SIZE;
    int ok = disjoint(P, G, bytes) & disjoint(P, V, bytes) & disjoint(G, V, bytes);
    if (mom)
        ok &= disjoint(B, P, bytes) & disjoint(B, G, bytes) & disjoint(B, V, bytes);
    if (cen) {
        ok &= disjoint(A, P, bytes) & disjoint(A, G, bytes) & disjoint(A, V, bytes);
        if (mom)
            ok &= disjoint(A, B, bytes);
    }
    return ok ? RMSFUSE_OK : RMSFUSE_E_OVERLAP;
}

int rmsfuse_rmsprop_check(const rmsfuse_rmsprop_config *cfg, const float *param, const float *grad,
                          const float *square_avg, const float *momentum_buf, const float *grad_avg, size_t n)
{
    rmsfuse_consts k;
    int st = derive_consts(cfg, &k);
    if (st != RMSFUSE_OK || n == 0)
        return st;
    return check_tensor(k.variant, param, grad, square_avg, momentum_buf, grad_avg, n);
}

int rmsfuse_rmsprop_step(const rmsfuse_rmsprop_config *cfg, float *param, const float *grad, float *square_avg,
                         float *momentum_buf, float *grad_avg, size_t n)
{
    rmsfuse_consts k;
    int st = derive_consts(cfg, &k);
    if (st != RMSFUSE_OK || n == 0)
        return st;
    st = check_tensor(k.variant, param, grad, square_avg, momentum_buf, grad_avg, n);
    if (st != RMSFUSE_OK)
        return st;
    rmsfuse_active_rmsprop_kernel()(&k, param, grad, square_avg, momentum_buf, grad_avg, n);
    return RMSFUSE_OK;
}

/* ---- many tensors ------------------------------------------------------- */

/* The byte range [lo, hi) of one array of a multi-tensor call, and whether
 * the call writes it. */
typedef struct span {
    uintptr_t lo, hi;
    int written;
} span;

static int span_cmp(const void *x, const void *y)
{
    const span *s = x, *t = y;
    return (s->lo > t->lo) - (s->lo < t->lo);
}

/* Sorted by start, a range overlaps an earlier one iff it starts before
 * the largest end seen so far (of the written ranges, for a read-only
 * one).  s[0 .. m) is sorted in place. */
static int sorted_spans_overlap(span *s, size_t m)
{
    qsort(s, m, sizeof *s, span_cmp);
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

/* Every array of the list against every other, by sorting. */
static int check_list_sorted(unsigned VM, const rmsfuse_tensor *t, size_t count, size_t tensors)
{
    const size_t spans = 5 * tensors;
    span local[64 * 5];
    span *s = local;
    if (spans > sizeof local / sizeof local[0]) {
        s = spans <= SIZE_MAX / sizeof *s ? malloc(spans * sizeof *s) : NULL;
        if (!s)
            return RMSFUSE_E_NO_MEMORY;
    }
    size_t m = 0;
    for (size_t i = 0; i < count; i++) {
        if (t[i].n == 0)
            continue;
        const size_t bytes = t[i].n * sizeof(float);
        const float *a[5] = {t[i].param, t[i].grad, t[i].square_avg, t[i].momentum_buf, t[i].grad_avg};
        const int use[5] = {1, 1, 1, (VM & RMSFUSE_V_MOM) != 0, (VM & RMSFUSE_V_CENTERED) != 0};
        for (int j = 0; j < 5; j++) {
            if (!use[j])
                continue;
            s[m].lo = (uintptr_t)a[j];
            s[m].hi = s[m].lo + bytes;
            s[m].written = j != 1; /* a[1] is the gradient */
            m++;
        }
    }
    const int bad = sorted_spans_overlap(s, m);
    if (s != local)
        free(s);
    return bad ? RMSFUSE_E_OVERLAP : RMSFUSE_OK;
}

/*
 * Each tensor on its own, then every written array against every other
 * array of the list.  The common layout is recognised in the same pass:
 * each kind of array (all params, all grads, ...) in list order without
 * overlaps, as when tensors are cut from flat buffers, and the kinds' hulls
 * disjoint; then nothing overlaps.  Otherwise the arrays are sorted.
 * VM (the momentum and centred bits) is a constant at each call site, so
 * the per-tensor work has no branches on it.
 */
static RMSFUSE_ALWAYS_INLINE int check_list_v(const unsigned VM, const rmsfuse_tensor *t, size_t count)
{
    const int mom = (VM & RMSFUSE_V_MOM) != 0, cen = (VM & RMSFUSE_V_CENTERED) != 0;
    /* Per kind (param, grad, square_avg, momentum_buf, grad_avg): where the
     * first array starts, where the latest one ends. */
    uintptr_t loP = 0, loG = 0, loV = 0, loB = 0, loA = 0;
    uintptr_t hiP = 0, hiG = 0, hiV = 0, hiB = 0, hiA = 0;
    int ordered = 1;
    size_t tensors = 0;
    for (size_t i = 0; i < count; i++) {
        const size_t n = t[i].n;
        if (n == 0)
            continue;
        const int st = check_tensor(VM, t[i].param, t[i].grad, t[i].square_avg, t[i].momentum_buf, t[i].grad_avg, n);
        if (st != RMSFUSE_OK)
            return st;
        const uintptr_t P = (uintptr_t)t[i].param, G = (uintptr_t)t[i].grad, V = (uintptr_t)t[i].square_avg;
        const uintptr_t B = mom ? (uintptr_t)t[i].momentum_buf : 0, A = cen ? (uintptr_t)t[i].grad_avg : 0;
        const size_t bytes = n * sizeof(float);
        if (tensors == 0) {
            loP = P, loG = G, loV = V, loB = B, loA = A;
        } else {
            ordered &= (P >= hiP) & (G >= hiG) & (V >= hiV);
            if (mom)
                ordered &= B >= hiB;
            if (cen)
                ordered &= A >= hiA;
        }
        hiP = P + bytes, hiG = G + bytes, hiV = V + bytes, hiB = B + bytes, hiA = A + bytes;
        tensors++;
    }
    if (tensors <= 1)
        return RMSFUSE_OK; /* one tensor with elements: checked above */
    if (ordered) {
        /* The kinds' hulls [lo, hi) must be pairwise disjoint. */
        const uintptr_t lo[5] = {loP, loG, loV, loB, loA}, hi[5] = {hiP, hiG, hiV, hiB, hiA};
        const int use[5] = {1, 1, 1, mom, cen};
        for (int i = 0; i < 5; i++)
            for (int j = i + 1; j < 5; j++)
                if (use[i] && use[j] && lo[i] < hi[j] && lo[j] < hi[i])
                    ordered = 0;
    }
    return ordered ? RMSFUSE_OK : check_list_sorted(VM, t, count, tensors);
}

static int check_list(const rmsfuse_consts *k, const rmsfuse_tensor *t, size_t count)
{
    if (count == 0)
        return RMSFUSE_OK;
    if (!t)
        return RMSFUSE_E_NULL_LIST;
    switch (k->variant & (RMSFUSE_V_MOM | RMSFUSE_V_CENTERED)) {
    case 0: return check_list_v(0, t, count);
    case RMSFUSE_V_MOM: return check_list_v(RMSFUSE_V_MOM, t, count);
    case RMSFUSE_V_CENTERED: return check_list_v(RMSFUSE_V_CENTERED, t, count);
    default: return check_list_v(RMSFUSE_V_MOM | RMSFUSE_V_CENTERED, t, count);
    }
}

int rmsfuse_rmsprop_check_multi(const rmsfuse_rmsprop_config *cfg, const rmsfuse_tensor *tensors, size_t count)
{
    rmsfuse_consts k;
    int st = derive_consts(cfg, &k);
    if (st != RMSFUSE_OK)
        return st;
    return check_list(&k, tensors, count);
}

int rmsfuse_rmsprop_step_multi(const rmsfuse_rmsprop_config *cfg, const rmsfuse_tensor *tensors, size_t count)
{
    rmsfuse_consts k;
    int st = derive_consts(cfg, &k);
    if (st != RMSFUSE_OK)
        return st;
    st = check_list(&k, tensors, count);
    if (st != RMSFUSE_OK)
        return st;
    const rmsfuse_rmsprop_kernel kernel = rmsfuse_active_rmsprop_kernel();
    for (size_t i = 0; i < count; i++)
        if (tensors[i].n)
            kernel(&k, tensors[i].param, tensors[i].grad, tensors[i].square_avg, tensors[i].momentum_buf,
                   tensors[i].grad_avg, tensors[i].n);
    return RMSFUSE_OK;
}

const char *rmsfuse_strerror(int status)
{
    switch (status) {
    case RMSFUSE_OK: return "success";
    case RMSFUSE_E_NULL_CONFIG: return "configuration pointer is NULL";
    case RMSFUSE_E_NULL_ARRAY: return "param, grad or square_avg is NULL with n > 0";
    case RMSFUSE_E_NULL_MOMENTUM_BUF: return "momentum is non-zero but momentum_buf is NULL";
    case RMSFUSE_E_NULL_GRAD_AVG: return "RMSFUSE_CENTERED is set but grad_avg is NULL";
    case RMSFUSE_E_NONFINITE: return "a hyperparameter is NaN, infinite or beyond the float range";
    case RMSFUSE_E_LR: return "lr is negative";
    case RMSFUSE_E_ALPHA: return "alpha is outside [0, 1]";
    case RMSFUSE_E_EPS: return "eps is negative";
    case RMSFUSE_E_WEIGHT_DECAY: return "weight_decay is negative";
    case RMSFUSE_E_MOMENTUM: return "momentum is outside [0, 1)";
    case RMSFUSE_E_FLAGS: return "unknown bits in flags";
    case RMSFUSE_E_OVERLAP: return "two arrays overlap";
    case RMSFUSE_E_SIZE: return "n is too large for the address space";
    case RMSFUSE_E_UNKNOWN_ISA: return "unknown ISA name";
    case RMSFUSE_E_ISA_UNSUPPORTED: return "ISA not built in or not supported by this CPU/OS";
    case RMSFUSE_E_NULL_LIST: return "tensor list is NULL with count > 0";
    case RMSFUSE_E_NO_MEMORY: return "out of memory";
    case RMSFUSE_E_NULL_POOL: return "thread pool pointer is NULL";
    case RMSFUSE_E_THREADS: return "could not create the threads or read the topology";
    default: return "unknown status code";
    }
}

const char *rmsfuse_version(void)
{
    return RMSFUSE_VERSION_STRING;
}

/*
 * The gradient as the step reads it (include/rmsfuse_common.h,
 * rmsfuse_grad_options; docs/math.md, "The gradient as the step reads it"):
 * the options' checks, the global norm in its fixed order, and the step
 * with the scale and clip value in the kernel's constants.  A baseline file.
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/core/grad.c is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include <math.h>

#include "internal.h"

rmsfuse_grad_options rmsfuse_grad_options_none(void)
{
    const rmsfuse_grad_options o = {1.0, HUGE_VAL, HUGE_VAL, 0u, 0.0};
    return o;
}

/* acc plus the sum of (double)(g[i] * s)^2 over the n floats at g, block by block. */
static double grad_sumsq(const char *g, size_t n, float s, double acc)
{
    const rmsfuse_block_sumsq_fn block_sumsq = rmsfuse_active_block_sumsq();
    for (size_t b = 0; b < n; b += RMSFUSE_NORM_BLOCK)
        acc += block_sumsq(g + b * sizeof(float), n - b < RMSFUSE_NORM_BLOCK ? n - b : RMSFUSE_NORM_BLOCK, s);
    return acc;
}

/* scale as the options take it: > 0 and a finite float above 0 once rounded. */
int rmsfuse_grad_scale_ok(double scale)
{
    const float s0 = (float)scale;
    return scale > 0.0 && s0 > 0.0f && s0 < INFINITY;
}

int rmsfuse_grad_check_options(const rmsfuse_grad_options *o)
{
    const unsigned known = RMSFUSE_SKIP_NONFINITE | RMSFUSE_SUMSQ_GIVEN;
    if (!rmsfuse_grad_scale_ok(o->scale) || !(o->clip_value >= 0.0) || !(o->max_norm >= 0.0) || (o->flags & ~known) ||
        ((o->flags & RMSFUSE_SUMSQ_GIVEN) && o->sumsq < 0.0))
        return RMSFUSE_E_GRAD_OPTIONS;
    return RMSFUSE_OK;
}

/* Whether the step needs the norm, and does not have it. */
int rmsfuse_grad_must_compute(const rmsfuse_grad_options *o)
{
    return ((o->flags & RMSFUSE_SKIP_NONFINITE) || o->max_norm < HUGE_VAL) && !(o->flags & RMSFUSE_SUMSQ_GIVEN);
}

/*
 * From the options and the sum of squares (when `known`): what the step
 * found (*out) and the constants the kernel reads the gradients with (*in,
 * whose sign field is left as it was).  RMSFUSE_SKIPPED when the step must
 * write nothing.
 */
int rmsfuse_grad_decide(const rmsfuse_grad_options *o, int known, double sumsq, rmsfuse_grad_info *out,
                        rmsfuse_grad_k *in)
{
    const rmsfuse_grad_info none = {NAN, 1.0, -1};
    *out = none;
    double gs = o->scale;
    if (known) {
        /* Each square is at most FLT_MAX^2 and there are fewer than 2^62
         * of them: the sum is finite exactly when every g * s is. */
        out->nonfinite = !isfinite(sumsq);
        out->norm = sqrt(sumsq);
        if (out->nonfinite && (o->flags & RMSFUSE_SKIP_NONFINITE))
            return RMSFUSE_SKIPPED;
        if (o->max_norm < HUGE_VAL) {
            const double c = o->max_norm / (out->norm + 1e-6);
            if (!(c >= 1.0)) /* NaN too (a NaN norm): as torch's clip_grad_norm_ */
                out->clip_factor = c;
        }
        gs *= out->clip_factor;
    }
    in->gs = (float)gs;
    in->gc = (float)o->clip_value;
    return RMSFUSE_OK;
}

int rmsfuse_grad_settle(const rmsfuse_grad_options *o, double sumsq, unsigned char *k, rmsfuse_grad_info *out)
{
    rmsfuse_grad_k in;
    memcpy(&in, k, sizeof in);
    const int st =
        rmsfuse_grad_decide(o, rmsfuse_grad_must_compute(o) || (o->flags & RMSFUSE_SUMSQ_GIVEN), sumsq, out, &in);
    if (st == RMSFUSE_OK)
        memcpy(k, &in, sizeof in);
    return st;
}

int rmsfuse_grad_block_sumsq(const float *grad, size_t n, double scale, double *sums)
{
    return rmsfuse_grad_block_sumsq_typed(RMSFUSE_F32, grad, n, scale, sums); /* src/core/typed.c */
}

int rmsfuse_grad_sumsq_list(const rmsfuse_layout *L, const void *tensors, size_t count, double scale,
                            double *sumsq)
{
    if (!sumsq || !rmsfuse_grad_scale_ok(scale))
        return RMSFUSE_E_GRAD_OPTIONS;
    if (count == 0)
        return RMSFUSE_OK;
    if (!tensors)
        return RMSFUSE_E_NULL_LIST;
    for (size_t i = 0; i < count; i++) {
        const unsigned char *t = tensor_at(L, tensors, i);
        if (tensor_n(L, t) > 0 && !slot_ptr(L, t, RMSFUSE_SLOT_GRAD))
            return L->null_status[RMSFUSE_SLOT_GRAD];
    }
    double acc = *sumsq;
    for (size_t i = 0; i < count; i++) {
        const unsigned char *t = tensor_at(L, tensors, i);
        const size_t n = tensor_n(L, t);
        if (n > 0)
            acc = grad_sumsq((const char *)slot_ptr(L, t, RMSFUSE_SLOT_GRAD), n, (float)scale, acc);
    }
    *sumsq = acc;
    return RMSFUSE_OK;
}

int rmsfuse_step_ex_list(rmsfuse_prepared *P, const rmsfuse_layout *L, const void *tensors, size_t count,
                         const rmsfuse_grad_options *opt, rmsfuse_grad_info *info)
{
    const rmsfuse_grad_options o = opt ? *opt : rmsfuse_grad_options_none();
    int st = rmsfuse_grad_check_options(&o);
    if (st != RMSFUSE_OK)
        return st;
    st = rmsfuse_check_list_inl(P, L, tensors, count);
    if (st != RMSFUSE_OK)
        return st;

    double sumsq = o.sumsq;
    if (rmsfuse_grad_must_compute(&o)) {
        sumsq = 0.0;
        for (size_t i = 0; i < count; i++) {
            const unsigned char *t = tensor_at(L, tensors, i);
            const size_t n = tensor_n(L, t);
            if (n > 0)
                sumsq = grad_sumsq((const char *)slot_ptr(L, t, RMSFUSE_SLOT_GRAD), n, (float)o.scale, sumsq);
        }
    }
    rmsfuse_grad_info out;
    st = rmsfuse_grad_settle(&o, sumsq, P->k.bytes, &out);
    if (st == RMSFUSE_OK)
        rmsfuse_run_list_inl(P, L, tensors, count); /* checked above */
    if (info)
        *info = out;
    return st;
}

/* ---- plans ------------------------------------------------------------------ */

size_t rmsfuse_plan_blocks(const rmsfuse_plan *plan)
{
    return plan ? plan->bprefix[plan->count] : 0;
}

/* Block sums of the plan's blocks [begin, end) (checked) into sums. */
static void plan_sums(const rmsfuse_plan *plan, float s, size_t begin, size_t end, double *sums)
{
    const rmsfuse_block_sumsq_fn block_sumsq = rmsfuse_active_block_sumsq();
    size_t j = 0;
    while (j + 1 < plan->count && plan->bprefix[j + 1] <= begin)
        j++;
    for (size_t b = begin; b < end; b++) {
        while (plan->bprefix[j + 1] <= b)
            j++;
        const size_t n = plan->prefix[j + 1] - plan->prefix[j];
        const size_t off = (b - plan->bprefix[j]) * RMSFUSE_NORM_BLOCK;
        const char *g = plan->arrays[j * RMSFUSE_MAX_SLOTS + RMSFUSE_SLOT_GRAD] + off * plan->P.elem[RMSFUSE_SLOT_GRAD];
        const size_t m = n - off < RMSFUSE_NORM_BLOCK ? n - off : RMSFUSE_NORM_BLOCK;
        *sums++ = plan->jobs ? plan->sops->block_sumsq(plan->jobs[j].type[RMSFUSE_SLOT_GRAD], g, m, s)
                             : block_sumsq(g, m, s);
    }
}

int rmsfuse_plan_block_sumsq(const rmsfuse_plan *plan, double scale, size_t begin, size_t end, double *sums)
{
    if (!plan)
        return RMSFUSE_E_NULL_PLAN;
    if (begin > end || end > plan->bprefix[plan->count] || (begin < end && !sums))
        return RMSFUSE_E_RANGE;
    if (!rmsfuse_grad_scale_ok(scale))
        return RMSFUSE_E_GRAD_OPTIONS;
    plan_sums(plan, (float)scale, begin, end, sums);
    return RMSFUSE_OK;
}

int rmsfuse_plan_run_ex(const rmsfuse_plan *plan, size_t begin, size_t end, const rmsfuse_grad_options *opt,
                        rmsfuse_grad_info *info)
{
    if (!plan)
        return RMSFUSE_E_NULL_PLAN;
    if (begin > end || end > plan->prefix[plan->count])
        return RMSFUSE_E_RANGE;
    if (!rmsfuse_plan_range_blocks_ok(plan, begin, end))
        return RMSFUSE_E_BLOCK;
    const rmsfuse_grad_options o = opt ? *opt : rmsfuse_grad_options_none();
    int st = rmsfuse_grad_check_options(&o);
    if (st != RMSFUSE_OK)
        return st;
    rmsfuse_grad_info out;
    double sumsq = o.sumsq;
    if (rmsfuse_grad_must_compute(&o)) {
        if (begin == end) { /* nothing to write: the options are checked, the norm is not needed */
            (void)rmsfuse_grad_decide(&o, 0, 0.0, &out, &(rmsfuse_grad_k){0});
            if (info)
                *info = out;
            return RMSFUSE_OK;
        }
        sumsq = 0.0;
        double part[64];
        const size_t blocks = plan->bprefix[plan->count];
        for (size_t b = 0; b < blocks; b += 64) {
            const size_t m = blocks - b < 64 ? blocks - b : 64;
            plan_sums(plan, (float)o.scale, b, b + m, part);
            for (size_t i = 0; i < m; i++)
                sumsq += part[i];
        }
    }
    unsigned char k[sizeof plan->P.k.bytes];
    memcpy(k, plan->P.k.bytes, sizeof k);
    st = rmsfuse_grad_settle(&o, sumsq, k, &out);
    if (st == RMSFUSE_OK)
        rmsfuse_plan_run_k(plan, k, begin, end);
    if (info)
        *info = out;
    return st;
}

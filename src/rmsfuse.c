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

/* Finite, and still finite once rounded to float. */
static int representable(double x)
{
    return isfinite(x) && isfinite((float)x);
}

int rmsfuse_rmsprop_check_config(const rmsfuse_rmsprop_config *cfg)
{
    if (!cfg)
        return RMSFUSE_E_NULL_CONFIG;
    if (!representable(cfg->lr) || !representable(cfg->alpha) || !representable(cfg->eps) ||
        !representable(cfg->weight_decay) || !representable(cfg->momentum) || !representable(-cfg->lr))
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
    return RMSFUSE_OK;
}

/* Byte range [lo, hi) of an array of n floats, or 0 if it wraps. */
typedef struct range {
    uintptr_t lo, hi;
} range;

static int make_range(const void *ptr, size_t bytes, range *r)
{
    r->lo = (uintptr_t)ptr;
    r->hi = r->lo + bytes;
    return r->hi >= r->lo;
}

static int overlaps(range x, range y)
{
    return x.lo < y.hi && y.lo < x.hi;
}

int rmsfuse_rmsprop_step(const rmsfuse_rmsprop_config *cfg, float *param, const float *grad, float *square_avg,
                         float *momentum_buf, float *grad_avg, size_t n)
{
    int st = rmsfuse_rmsprop_check_config(cfg);
    if (st != RMSFUSE_OK)
        return st;
    if (n == 0)
        return RMSFUSE_OK;

    const int use_mom = cfg->momentum != 0.0;
    const int use_ga = (cfg->flags & RMSFUSE_CENTERED) != 0;
    if (!param || !grad || !square_avg)
        return RMSFUSE_E_NULL_ARRAY;
    if (use_mom && !momentum_buf)
        return RMSFUSE_E_NULL_MOMENTUM_BUF;
    if (use_ga && !grad_avg)
        return RMSFUSE_E_NULL_GRAD_AVG;
    if (n > SIZE_MAX / sizeof(float))
        return RMSFUSE_E_SIZE;

    /* Every array the call touches, pairwise disjoint. */
    const void *ptrs[5] = {param, grad, square_avg, use_mom ? momentum_buf : NULL, use_ga ? grad_avg : NULL};
    range r[5];
    int used = 0;
    for (int i = 0; i < 5; i++) {
        if (!ptrs[i])
            continue;
        if (!make_range(ptrs[i], n * sizeof(float), &r[used]))
            return RMSFUSE_E_SIZE;
        used++;
    }
    for (int i = 0; i < used; i++)
        for (int j = i + 1; j < used; j++)
            if (overlaps(r[i], r[j]))
                return RMSFUSE_E_OVERLAP;

    rmsfuse_consts k;
    k.a = (float)cfg->alpha;
    k.c = (float)(1.0 - cfg->alpha);
    k.e = (float)cfg->eps;
    k.m = (float)cfg->momentum;
    k.w = (float)cfg->weight_decay;
    k.l = (float)cfg->lr;
    k.nl = (float)(-cfg->lr);
    k.variant = cfg->flags | (cfg->weight_decay != 0.0 ? RMSFUSE_V_WD : 0u) | (use_mom ? RMSFUSE_V_MOM : 0u);

    rmsfuse_active_rmsprop_kernel()(&k, param, grad, square_avg, momentum_buf, grad_avg, n);
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
    default: return "unknown status code";
    }
}

const char *rmsfuse_version(void)
{
    return RMSFUSE_VERSION_STRING;
}

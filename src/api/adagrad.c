/*
 * AdaGrad's public functions (include/rmsfuse_adagrad.h): presets, the
 * configuration rules and constants of docs/math.md ("AdaGrad"), and the
 * layout of rmsfuse_adagrad_tensor.  A baseline file.
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/api/adagrad.c is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include "../core/internal.h"

rmsfuse_adagrad_config rmsfuse_adagrad_pytorch(double lr)
{
    rmsfuse_adagrad_config c = {lr, 0.0, 0.0, 1e-10, 1, RMSFUSE_FLUSH_SUBNORMAL};
    return c;
}

rmsfuse_adagrad_config rmsfuse_adagrad_keras(double lr)
{
    rmsfuse_adagrad_config c = {lr, 0.0, 0.0, 1e-7, 1, RMSFUSE_EPS_IN_SQRT | RMSFUSE_FLUSH_SUBNORMAL};
    return c;
}

rmsfuse_adagrad_config rmsfuse_adagrad_classic(double lr)
{
    rmsfuse_adagrad_config c = {lr, 0.0, 0.0, 1e-8, 1, RMSFUSE_EPS_IN_SQRT | RMSFUSE_FLUSH_SUBNORMAL};
    return c;
}

static const rmsfuse_layout layout = {
    sizeof(rmsfuse_adagrad_tensor),
    offsetof(rmsfuse_adagrad_tensor, n),
    ADAGRAD_SLOTS,
    {offsetof(rmsfuse_adagrad_tensor, param), offsetof(rmsfuse_adagrad_tensor, grad),
     offsetof(rmsfuse_adagrad_tensor, sum)},
    {RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY},
};

static int prepare(const rmsfuse_adagrad_config *cfg, rmsfuse_prepared *P)
{
    if (!cfg)
        return RMSFUSE_E_NULL_CONFIG;
    if (cfg->step < 1)
        return RMSFUSE_E_STEP;
    const rmsfuse_adagrad_k k = rmsfuse_adagrad_consts(cfg);
    const float all[] = {(float)cfg->lr, (float)cfg->lr_decay, k.e, k.w};
    if (!rmsfuse_all_finite(all, sizeof all / sizeof all[0]))
        return RMSFUSE_E_NONFINITE;
    if (cfg->lr < 0.0)
        return RMSFUSE_E_LR;
    if (cfg->lr_decay < 0.0)
        return RMSFUSE_E_LR_DECAY;
    if (cfg->eps < 0.0)
        return RMSFUSE_E_EPS;
    if (cfg->weight_decay < 0.0)
        return RMSFUSE_E_WEIGHT_DECAY;
    if (cfg->flags & ~RMSFUSE_ADAGRAD_FLAGS)
        return RMSFUSE_E_FLAGS;
    const float derived[] = {k.ncl, k.dk}; /* after the ranges */
    if (!rmsfuse_all_finite(derived, 2))
        return RMSFUSE_E_NONFINITE;

    rmsfuse_prepare_init(P, RMSFUSE_RULE_adagrad, &layout);
    P->variant = rmsfuse_adagrad_variant(cfg);
    P->used = rmsfuse_adagrad_used(P->variant);
    RMSFUSE_SET_CONSTS(P, k);
    return RMSFUSE_OK;
}

RMSFUSE_DEFINE_RULE_API(adagrad, rmsfuse_adagrad_config, rmsfuse_adagrad_tensor, prepare, layout)

int rmsfuse_adagrad_step(const rmsfuse_adagrad_config *cfg, float *param, const float *grad, float *sum, size_t n)
{
    const rmsfuse_adagrad_tensor t = {param, grad, sum, n};
    return rmsfuse_adagrad_step_multi(cfg, &t, 1);
}

int rmsfuse_adagrad_check(const rmsfuse_adagrad_config *cfg, const float *param, const float *grad,
                          const float *sum, size_t n)
{
    const rmsfuse_adagrad_tensor t = {(float *)param, grad, (float *)sum, n};
    return rmsfuse_adagrad_check_multi(cfg, &t, 1);
}

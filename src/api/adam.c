/*
 * Adam's public functions (include/rmsfuse_adam.h): presets, the
 * configuration rules and constants of docs/math.md ("Adam and AdamW"), and
 * the layout of rmsfuse_adam_tensor.  A baseline file.
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/api/adam.c is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include "../core/internal.h"

rmsfuse_adam_config rmsfuse_adam_pytorch(double lr)
{
    rmsfuse_adam_config c = {lr, 0.9, 0.999, 1e-8, 0.0, 1, RMSFUSE_FLUSH_SUBNORMAL};
    return c;
}

rmsfuse_adam_config rmsfuse_adamw_pytorch(double lr)
{
    rmsfuse_adam_config c = {lr, 0.9, 0.999, 1e-8, 0.01, 1, RMSFUSE_DECOUPLED_DECAY | RMSFUSE_FLUSH_SUBNORMAL};
    return c;
}

rmsfuse_adam_config rmsfuse_adam_keras(double lr)
{
    rmsfuse_adam_config c = {lr, 0.9, 0.999, 1e-7, 0.0, 1, RMSFUSE_EPS_HAT | RMSFUSE_FLUSH_SUBNORMAL};
    return c;
}

rmsfuse_adam_config rmsfuse_adamw_keras(double lr)
{
    rmsfuse_adam_config c = {lr,  0.9, 0.999, 1e-7, 0.004,
                             1,   RMSFUSE_EPS_HAT | RMSFUSE_DECOUPLED_DECAY | RMSFUSE_FLUSH_SUBNORMAL};
    return c;
}

rmsfuse_adam_config rmsfuse_adam_tensorflow(double lr)
{
    rmsfuse_adam_config c = {lr, 0.9, 0.999, 1e-8, 0.0, 1, RMSFUSE_EPS_HAT | RMSFUSE_FLUSH_SUBNORMAL};
    return c;
}

static const rmsfuse_layout layout = {
    sizeof(rmsfuse_adam_tensor),
    offsetof(rmsfuse_adam_tensor, n),
    ADAM_SLOTS,
    {offsetof(rmsfuse_adam_tensor, param), offsetof(rmsfuse_adam_tensor, grad), offsetof(rmsfuse_adam_tensor, exp_avg),
     offsetof(rmsfuse_adam_tensor, exp_avg_sq), offsetof(rmsfuse_adam_tensor, max_exp_avg_sq)},
    {RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY},
};

static int prepare(const rmsfuse_adam_config *cfg, rmsfuse_prepared *P)
{
    if (!cfg)
        return RMSFUSE_E_NULL_CONFIG;
    if (cfg->step < 1)
        return RMSFUSE_E_STEP;
    const unsigned f = cfg->flags;
    const rmsfuse_adam_k k = rmsfuse_adam_consts(cfg);
    const float all[] = {(float)cfg->lr, k.b1, k.b2, (float)cfg->eps, k.w};
    if (!rmsfuse_all_finite(all, sizeof all / sizeof all[0]))
        return RMSFUSE_E_NONFINITE;
    if (cfg->lr < 0.0)
        return RMSFUSE_E_LR;
    if (!(cfg->beta1 >= 0.0 && cfg->beta1 < 1.0))
        return RMSFUSE_E_BETA1;
    if (!(cfg->beta2 >= 0.0 && cfg->beta2 < 1.0))
        return RMSFUSE_E_BETA2;
    if (cfg->eps < 0.0)
        return RMSFUSE_E_EPS;
    if (cfg->weight_decay < 0.0)
        return RMSFUSE_E_WEIGHT_DECAY;
    if (f & ~RMSFUSE_ADAM_FLAGS)
        return RMSFUSE_E_FLAGS;
    /* Derived constants, after the ranges.  With valid betas, bc1 and bc2
     * are in (0, 1]; ns can still overflow, and dk. */
    const float derived[] = {k.ns, k.e, k.dk};
    if (!rmsfuse_all_finite(derived, 3))
        return RMSFUSE_E_NONFINITE;

    rmsfuse_prepare_init(P, RMSFUSE_RULE_adam, &layout);
    P->variant = rmsfuse_adam_variant(cfg);
    P->used = rmsfuse_adam_used(P->variant);
    RMSFUSE_SET_CONSTS(P, k);
    return RMSFUSE_OK;
}

RMSFUSE_DEFINE_RULE_API(adam, rmsfuse_adam_config, rmsfuse_adam_tensor, prepare, layout)

int rmsfuse_adam_step(const rmsfuse_adam_config *cfg, float *param, const float *grad, float *exp_avg,
                      float *exp_avg_sq, float *max_exp_avg_sq, size_t n)
{
    const rmsfuse_adam_tensor t = {param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n};
    return rmsfuse_adam_step_multi(cfg, &t, 1);
}

int rmsfuse_adam_check(const rmsfuse_adam_config *cfg, const float *param, const float *grad,
                       const float *exp_avg, const float *exp_avg_sq, const float *max_exp_avg_sq, size_t n)
{
    const rmsfuse_adam_tensor t = {(float *)param, grad, (float *)exp_avg, (float *)exp_avg_sq,
                                   (float *)max_exp_avg_sq, n};
    return rmsfuse_adam_check_multi(cfg, &t, 1);
}

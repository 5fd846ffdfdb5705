/*
 * RMSProp's public functions (include/rmsfuse_rmsprop.h): presets, the
 * configuration rules and constants of docs/math.md ("RMSProp"), and the
 * layout of rmsfuse_tensor.  A baseline file.
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/api/rmsprop.c is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include "../core/internal.h"

rmsfuse_rmsprop_config rmsfuse_rmsprop_pytorch(double lr)
{
    rmsfuse_rmsprop_config c = {lr, 0.99, 1e-8, 0.0, 0.0, RMSFUSE_FLUSH_SUBNORMAL};
    return c;
}

rmsfuse_rmsprop_config rmsfuse_rmsprop_tensorflow(double lr)
{
    rmsfuse_rmsprop_config c = {lr,  0.9, 1e-10, 0.0, 0.0,
                                RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_FLUSH_SUBNORMAL};
    return c;
}

rmsfuse_rmsprop_config rmsfuse_rmsprop_keras(double lr)
{
    rmsfuse_rmsprop_config c = {lr,  0.9, 1e-7, 0.0, 0.0,
                                RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_FLUSH_SUBNORMAL};
    return c;
}

static const rmsfuse_layout layout = {
    sizeof(rmsfuse_tensor),
    offsetof(rmsfuse_tensor, n),
    RMSPROP_SLOTS,
    {offsetof(rmsfuse_tensor, param), offsetof(rmsfuse_tensor, grad), offsetof(rmsfuse_tensor, square_avg),
     offsetof(rmsfuse_tensor, momentum_buf), offsetof(rmsfuse_tensor, grad_avg)},
    {RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_MOMENTUM_BUF,
     RMSFUSE_E_NULL_GRAD_AVG},
};

/* Validates cfg and derives the loop constants (docs/math.md). */
static int prepare(const rmsfuse_rmsprop_config *cfg, rmsfuse_prepared *P)
{
    if (!cfg)
        return RMSFUSE_E_NULL_CONFIG;
    const rmsfuse_rmsprop_k k = rmsfuse_rmsprop_consts(cfg);
    const float all[] = {k.a, k.e, k.m, k.w, k.l};
    if (!rmsfuse_all_finite(all, sizeof all / sizeof all[0]))
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
    if (cfg->flags & ~RMSFUSE_RMSPROP_FLAGS)
        return RMSFUSE_E_FLAGS;
    const int mom = cfg->momentum != 0.0;
    if ((cfg->flags & RMSFUSE_NESTEROV) && !mom)
        return RMSFUSE_E_NESTEROV;
    if (!rmsfuse_all_finite(&k.dk, 1)) /* derived constants: after the ranges */
        return RMSFUSE_E_NONFINITE;

    rmsfuse_prepare_init(P, RMSFUSE_RULE_rmsprop, &layout);
    P->variant = rmsfuse_rmsprop_variant(cfg);
    P->used = rmsfuse_rmsprop_used(P->variant);
    RMSFUSE_SET_CONSTS(P, k);
    return RMSFUSE_OK;
}

RMSFUSE_DEFINE_RULE_API(rmsprop, rmsfuse_rmsprop_config, rmsfuse_tensor, prepare, layout)

int rmsfuse_rmsprop_step(const rmsfuse_rmsprop_config *cfg, float *param, const float *grad, float *square_avg,
                         float *momentum_buf, float *grad_avg, size_t n)
{
    const rmsfuse_tensor t = {param, grad, square_avg, momentum_buf, grad_avg, n};
    return rmsfuse_rmsprop_step_multi(cfg, &t, 1);
}

int rmsfuse_rmsprop_check(const rmsfuse_rmsprop_config *cfg, const float *param, const float *grad,
                          const float *square_avg, const float *momentum_buf, const float *grad_avg, size_t n)
{
    const rmsfuse_tensor t = {(float *)param, grad, (float *)square_avg, (float *)momentum_buf, (float *)grad_avg,
                              n};
    return rmsfuse_rmsprop_check_multi(cfg, &t, 1);
}

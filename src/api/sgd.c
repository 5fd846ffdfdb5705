/*
 * SGD's public functions (include/rmsfuse_sgd.h): presets, the
 * configuration rules and constants of docs/math.md ("SGD"), and the layout
 * of rmsfuse_sgd_tensor.  A baseline file.
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/api/sgd.c is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include "../core/internal.h"

rmsfuse_sgd_config rmsfuse_sgd_pytorch(double lr)
{
    rmsfuse_sgd_config c = {lr, 0.0, 0.0, 0.0, RMSFUSE_FLUSH_SUBNORMAL};
    return c;
}

rmsfuse_sgd_config rmsfuse_sgd_keras(double lr)
{
    rmsfuse_sgd_config c = {lr, 0.0, 0.0, 0.0, RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_FLUSH_SUBNORMAL};
    return c;
}

static const rmsfuse_layout layout = {
    sizeof(rmsfuse_sgd_tensor),
    offsetof(rmsfuse_sgd_tensor, n),
    SGD_SLOTS,
    {offsetof(rmsfuse_sgd_tensor, param), offsetof(rmsfuse_sgd_tensor, grad),
     offsetof(rmsfuse_sgd_tensor, momentum_buf)},
    {RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_MOMENTUM_BUF},
};

static int prepare(const rmsfuse_sgd_config *cfg, rmsfuse_prepared *P)
{
    if (!cfg)
        return RMSFUSE_E_NULL_CONFIG;
    const unsigned f = cfg->flags;
    const rmsfuse_sgd_k k = rmsfuse_sgd_consts(cfg);
    const float all[] = {k.m, (float)cfg->dampening, k.nl, k.w};
    if (!rmsfuse_all_finite(all, sizeof all / sizeof all[0]))
        return RMSFUSE_E_NONFINITE;
    if (cfg->lr < 0.0)
        return RMSFUSE_E_LR;
    if (!(cfg->momentum >= 0.0))
        return RMSFUSE_E_MOMENTUM;
    if (!(cfg->dampening >= 0.0 && cfg->dampening <= 1.0))
        return RMSFUSE_E_DAMPENING;
    if (cfg->weight_decay < 0.0)
        return RMSFUSE_E_WEIGHT_DECAY;
    if ((f & ~RMSFUSE_SGD_FLAGS) || ((f & RMSFUSE_LR_IN_MOMENTUM) && (f & RMSFUSE_INIT_MOMENTUM)))
        return RMSFUSE_E_FLAGS;
    const int mom = cfg->momentum != 0.0;
    if ((f & RMSFUSE_NESTEROV) && (!mom || cfg->dampening != 0.0))
        return RMSFUSE_E_NESTEROV;
    if ((f & RMSFUSE_LR_IN_MOMENTUM) && cfg->dampening != 0.0)
        return RMSFUSE_E_DAMPENING;
    if (!rmsfuse_all_finite(&k.dk, 1)) /* derived constants: after the ranges */
        return RMSFUSE_E_NONFINITE;

    rmsfuse_prepare_init(P, RMSFUSE_RULE_sgd, &layout);
    P->variant = rmsfuse_sgd_variant(cfg);
    P->used = rmsfuse_sgd_used(P->variant);
    RMSFUSE_SET_CONSTS(P, k);
    return RMSFUSE_OK;
}

RMSFUSE_DEFINE_RULE_API(sgd, rmsfuse_sgd_config, rmsfuse_sgd_tensor, prepare, layout)

int rmsfuse_sgd_step(const rmsfuse_sgd_config *cfg, float *param, const float *grad, float *momentum_buf, size_t n)
{
    const rmsfuse_sgd_tensor t = {param, grad, momentum_buf, n};
    return rmsfuse_sgd_step_multi(cfg, &t, 1);
}

int rmsfuse_sgd_check(const rmsfuse_sgd_config *cfg, const float *param, const float *grad,
                      const float *momentum_buf, size_t n)
{
    const rmsfuse_sgd_tensor t = {(float *)param, grad, (float *)momentum_buf, n};
    return rmsfuse_sgd_check_multi(cfg, &t, 1);
}

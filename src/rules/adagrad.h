/*
 * AdaGrad (docs/math.md, "AdaGrad"): constants, variants and element math
 * over the operations of src/isa/ops_<isa>.h (see src/rules/rmsprop.h).
 */
#ifndef RMSFUSE_RULE_ADAGRAD_H
#define RMSFUSE_RULE_ADAGRAD_H

enum { ADAGRAD_PARAM, ADAGRAD_GRAD, ADAGRAD_SUM, ADAGRAD_SLOTS };
/* The state slots that are never negative (the unsigned 8-bit map, docs/math.md "Storage types"). */
#define RMSFUSE_NONNEG_adagrad (1u << ADAGRAD_SUM)

typedef struct rmsfuse_adagrad_k {
    rmsfuse_grad_k in; /* first: how the gradient is read (src/rules/registry.h) */
    float ncl, e, w, dk;
} rmsfuse_adagrad_k;

#define ADAGRAD_V_EPS_IN    1u
#define ADAGRAD_V_WD        2u
#define ADAGRAD_V_DECOUPLED 4u
#define ADAGRAD_V_FLUSH     8u
#define RMSFUSE_FLUSHED_adagrad ADAGRAD_V_FLUSH
#define RMSFUSE_TXSPLIT_adagrad 0u
#define RMSFUSE_TXHOT_adagrad (ADAGRAD_V_WD | ADAGRAD_V_DECOUPLED | ADAGRAD_V_FLUSH)
#define RMSFUSE_PIPED_adagrad 1u
#define RMSFUSE_LATE_adagrad 0u
#define RMSFUSE_NVAR_adagrad 16u

static inline int rmsfuse_adagrad_valid(unsigned V)
{
    return (V & (ADAGRAD_V_WD | ADAGRAD_V_DECOUPLED)) != (ADAGRAD_V_WD | ADAGRAD_V_DECOUPLED);
}

/* The slots a variant reads or writes. */
static inline unsigned rmsfuse_adagrad_used(unsigned V)
{
    (void)V;
    return 1u << ADAGRAD_PARAM | 1u << ADAGRAD_GRAD | 1u << ADAGRAD_SUM;
}

/* The learning rate of this step (docs/math.md), in double. */
static inline double rmsfuse_adagrad_clr(const rmsfuse_adagrad_config *cfg)
{
    return cfg->lr / (1.0 + (double)(cfg->step - 1) * cfg->lr_decay);
}

/* docs/math.md's constant table: each derived in double, rounded once. */
static inline rmsfuse_adagrad_k rmsfuse_adagrad_consts(const rmsfuse_adagrad_config *cfg)
{
    const int decoupled = (cfg->flags & RMSFUSE_DECOUPLED_DECAY) && cfg->weight_decay != 0.0;
    const double clr = rmsfuse_adagrad_clr(cfg);
    rmsfuse_adagrad_k k;
    k.ncl = (float)(-clr);
    k.e = (float)cfg->eps;
    k.w = (float)cfg->weight_decay;
    k.dk = decoupled ? (float)(1.0 - clr * cfg->weight_decay) : 1.0f;
    k.in = rmsfuse_grad_k_of(cfg->flags);
    return k;
}

/* The variant a valid cfg selects. */
static inline unsigned rmsfuse_adagrad_variant(const rmsfuse_adagrad_config *cfg)
{
    const unsigned f = cfg->flags;
    unsigned V = (f & RMSFUSE_EPS_IN_SQRT) ? ADAGRAD_V_EPS_IN : 0u;
    if (cfg->weight_decay != 0.0)
        V |= (f & RMSFUSE_DECOUPLED_DECAY) ? ADAGRAD_V_DECOUPLED : ADAGRAD_V_WD;
    return V | ((f & RMSFUSE_FLUSH_SUBNORMAL) ? ADAGRAD_V_FLUSH : 0u);
}

#endif /* RMSFUSE_RULE_ADAGRAD_H */

#ifdef RMSFUSE_BODY
static RMSFUSE_ALWAYS_INLINE void RMSFUSE_BODY(adagrad)(const rmsfuse_adagrad_k *k, const unsigned V,
                                                         char *const *a, size_t i)
{
    VF g = RMSFUSE_GSIGN(LD(ADAGRAD_GRAD), k->in.sgn);
    VF p = LD(ADAGRAD_PARAM);
    if (V & ADAGRAD_V_WD)
        g = VADD(g, VMUL(VSET1(k->w), p));
    if (V & ADAGRAD_V_DECOUPLED)
        p = VMUL(p, VSET1(k->dk));

    const VF sum = FLUSH_IF(V & ADAGRAD_V_FLUSH, VADD(LD(ADAGRAD_SUM), VMUL(g, g)));
    ST(ADAGRAD_SUM, sum);
    VF d = (V & ADAGRAD_V_EPS_IN) ? VSQRT(VADD(sum, VSET1(k->e))) : VADD(VSQRT(sum), VSET1(k->e));
    RMSFUSE_PIPE(g, p, d);
    ST(ADAGRAD_PARAM, VADD(p, VDIV(VMUL(VSET1(k->ncl), g), d)));
}
#endif /* RMSFUSE_BODY */

/*
 * SGD with momentum (docs/math.md, "SGD"): constants, variants and element
 * math over the operations of src/isa/ops_<isa>.h (see src/rules/rmsprop.h).
 */
#ifndef RMSFUSE_RULE_SGD_H
#define RMSFUSE_RULE_SGD_H

enum { SGD_PARAM, SGD_GRAD, SGD_MOM, SGD_SLOTS };
/* The state slots that are never negative (the unsigned 8-bit map, docs/math.md "Storage types"). */
#define RMSFUSE_NONNEG_sgd 0u

typedef struct rmsfuse_sgd_k {
    rmsfuse_grad_k in; /* first: how the gradient is read (src/rules/registry.h) */
    float m, dd, nl, w, dk;
} rmsfuse_sgd_k;

#define SGD_V_MOM       1u
#define SGD_V_KERAS     2u /* LR_IN_MOMENTUM: Keras' velocity */
#define SGD_V_NESTEROV  4u
#define SGD_V_INIT      8u /* torch's first step: b = g */
#define SGD_V_WD        16u
#define SGD_V_DECOUPLED 32u
#define SGD_V_FLUSH     64u
/* dd != 1 (dampening): the buffer's dd * g; with dd = 1 (no dampening,
 * every preset) dd * g is g and the body leaves the multiply out (AMD Zen 3
 * VM, all-bf16 SGD with momentum in L2: 0.322 -> 0.303 ns per element) */
#define SGD_V_DAMP      128u
#define RMSFUSE_FLUSHED_sgd SGD_V_FLUSH
#define RMSFUSE_TXSPLIT_sgd SGD_V_MOM
#define RMSFUSE_TXHOT_sgd (SGD_V_MOM | SGD_V_WD | SGD_V_DECOUPLED | SGD_V_FLUSH | SGD_V_DAMP)
#define RMSFUSE_PIPED_sgd 0u
#define RMSFUSE_LATE_sgd 0u
#define RMSFUSE_NVAR_sgd 256u

/* 48 of 256: the momentum forms only with momentum, Keras' velocity never
 * initialised from g, one kind of weight decay at most, dampening only
 * where the buffer takes dd * g (torch's momentum after its first step,
 * without Nesterov, which needs dampening 0). */
static inline int rmsfuse_sgd_valid(unsigned V)
{
    const int needs_mom = (V & (SGD_V_KERAS | SGD_V_NESTEROV | SGD_V_INIT | SGD_V_DAMP)) != 0;
    return !(needs_mom && !(V & SGD_V_MOM)) && (V & (SGD_V_KERAS | SGD_V_INIT)) != (SGD_V_KERAS | SGD_V_INIT) &&
           (V & (SGD_V_WD | SGD_V_DECOUPLED)) != (SGD_V_WD | SGD_V_DECOUPLED) &&
           !((V & SGD_V_DAMP) && (V & (SGD_V_KERAS | SGD_V_NESTEROV | SGD_V_INIT)));
}

/* The slots a variant reads or writes. */
static inline unsigned rmsfuse_sgd_used(unsigned V)
{
    return 1u << SGD_PARAM | 1u << SGD_GRAD | ((V & SGD_V_MOM) ? 1u << SGD_MOM : 0u);
}

/* docs/math.md's constant table: each derived in double, rounded once. */
static inline rmsfuse_sgd_k rmsfuse_sgd_consts(const rmsfuse_sgd_config *cfg)
{
    const int decoupled = (cfg->flags & RMSFUSE_DECOUPLED_DECAY) && cfg->weight_decay != 0.0;
    rmsfuse_sgd_k k;
    k.m = (float)cfg->momentum;
    k.dd = (float)(1.0 - cfg->dampening);
    k.nl = (float)(-cfg->lr);
    k.w = (float)cfg->weight_decay;
    k.dk = decoupled ? (float)(1.0 - cfg->lr * cfg->weight_decay) : 1.0f;
    k.in = rmsfuse_grad_k_of(cfg->flags);
    return k;
}

/* The variant a valid cfg selects. */
static inline unsigned rmsfuse_sgd_variant(const rmsfuse_sgd_config *cfg)
{
    const unsigned f = cfg->flags;
    unsigned V = 0;
    if (cfg->momentum != 0.0)
        V |= SGD_V_MOM | ((f & RMSFUSE_LR_IN_MOMENTUM) ? SGD_V_KERAS : 0u) |
             ((f & RMSFUSE_NESTEROV) ? SGD_V_NESTEROV : 0u) | ((f & RMSFUSE_INIT_MOMENTUM) ? SGD_V_INIT : 0u);
    if ((V & SGD_V_MOM) && !(V & (SGD_V_KERAS | SGD_V_NESTEROV | SGD_V_INIT)) &&
        rmsfuse_sgd_consts(cfg).dd != 1.0f)
        V |= SGD_V_DAMP;
    if (cfg->weight_decay != 0.0)
        V |= (f & RMSFUSE_DECOUPLED_DECAY) ? SGD_V_DECOUPLED : SGD_V_WD;
    return V | ((f & RMSFUSE_FLUSH_SUBNORMAL) ? SGD_V_FLUSH : 0u);
}

#endif /* RMSFUSE_RULE_SGD_H */

#ifdef RMSFUSE_BODY
static RMSFUSE_ALWAYS_INLINE void RMSFUSE_BODY(sgd)(const rmsfuse_sgd_k *k, const unsigned V, char *const *a,
                                                     size_t i)
{
    VF g = RMSFUSE_GSIGN(LD(SGD_GRAD), k->in.sgn);
    VF p = LD(SGD_PARAM);
    if (V & SGD_V_WD)
        g = VADD(g, VMUL(VSET1(k->w), p));
    if (V & SGD_V_DECOUPLED)
        p = VMUL(p, VSET1(k->dk));

    if (!(V & SGD_V_MOM)) {
        p = VADD(p, VMUL(VSET1(k->nl), g));
    } else if (!(V & SGD_V_KERAS)) {
        const VF b = FLUSH_IF(V & SGD_V_FLUSH,
                              (V & SGD_V_INIT) ? g
                              : VADD(VMUL(LD(SGD_MOM), VSET1(k->m)), (V & SGD_V_DAMP) ? VMUL(VSET1(k->dd), g) : g));
        ST(SGD_MOM, b);
        p = (V & SGD_V_NESTEROV) ? VADD(p, VMUL(VSET1(k->nl), VADD(g, VMUL(VSET1(k->m), b))))
                                 : VADD(p, VMUL(VSET1(k->nl), b));
    } else {
        const VF b = FLUSH_IF(V & SGD_V_FLUSH, VADD(VMUL(LD(SGD_MOM), VSET1(k->m)), VMUL(VSET1(k->nl), g)));
        ST(SGD_MOM, b);
        p = (V & SGD_V_NESTEROV) ? VADD(p, VADD(VMUL(b, VSET1(k->m)), VMUL(VSET1(k->nl), g))) : VADD(p, b);
    }
    ST(SGD_PARAM, p);
}
#endif /* RMSFUSE_BODY */

/*
 * Adam / AdamW, optionally AMSGrad (docs/math.md, "Adam and AdamW"):
 * constants, variants and element math over the operations of
 * src/isa/ops_<isa>.h (see src/rules/rmsprop.h).  PyTorch's form and the
 * epsilon-hat form differ only in the constants ns and e.
 */
#ifndef RMSFUSE_RULE_ADAM_H
#define RMSFUSE_RULE_ADAM_H

enum { ADAM_PARAM, ADAM_GRAD, ADAM_M, ADAM_V, ADAM_VMAX, ADAM_SLOTS };
/* The state slots that are never negative (the unsigned 8-bit map, docs/math.md "Storage types"). */
#define RMSFUSE_NONNEG_adam ((1u << ADAM_V) | (1u << ADAM_VMAX))

typedef struct rmsfuse_adam_k {
    rmsfuse_grad_k in; /* first: how the gradient is read (src/rules/registry.h) */
    float b1, c1, b2, c2, ns, e, w, dk;
} rmsfuse_adam_k;

#define ADAM_V_AMSGRAD   1u
#define ADAM_V_WD        2u
#define ADAM_V_DECOUPLED 4u
#define ADAM_V_FLUSH     8u
#define RMSFUSE_FLUSHED_adam ADAM_V_FLUSH
#define RMSFUSE_TXSPLIT_adam 0u
#define RMSFUSE_TXHOT_adam (ADAM_V_WD | ADAM_V_DECOUPLED | ADAM_V_FLUSH)
#define RMSFUSE_PIPED_adam 1u
#define RMSFUSE_LATE_adam 0u
#define RMSFUSE_NVAR_adam 16u

static inline int rmsfuse_adam_valid(unsigned V)
{
    return (V & (ADAM_V_WD | ADAM_V_DECOUPLED)) != (ADAM_V_WD | ADAM_V_DECOUPLED);
}

/* The slots a variant reads or writes. */
static inline unsigned rmsfuse_adam_used(unsigned V)
{
    return 1u << ADAM_PARAM | 1u << ADAM_GRAD | 1u << ADAM_M | 1u << ADAM_V |
           ((V & ADAM_V_AMSGRAD) ? 1u << ADAM_VMAX : 0u);
}

/* docs/math.md's constant table: each derived in double, rounded once; the
 * bias corrections from the caller's step, in double. */
static inline rmsfuse_adam_k rmsfuse_adam_consts(const rmsfuse_adam_config *cfg)
{
    const int decoupled = (cfg->flags & RMSFUSE_DECOUPLED_DECAY) && cfg->weight_decay != 0.0;
    const double t = (double)cfg->step;
    const double bc1 = 1.0 - pow(cfg->beta1, t), bc2 = 1.0 - pow(cfg->beta2, t);
    rmsfuse_adam_k k;
    k.b1 = (float)cfg->beta1;
    k.c1 = (float)(1.0 - cfg->beta1);
    k.b2 = (float)cfg->beta2;
    k.c2 = (float)(1.0 - cfg->beta2);
    k.ns = (float)(-cfg->lr * sqrt(bc2) / bc1);
    k.e = (cfg->flags & RMSFUSE_EPS_HAT) ? (float)cfg->eps : (float)(cfg->eps * sqrt(bc2));
    k.w = (float)cfg->weight_decay;
    k.dk = decoupled ? (float)(1.0 - cfg->lr * cfg->weight_decay) : 1.0f;
    k.in = rmsfuse_grad_k_of(cfg->flags);
    return k;
}

/* The variant a valid cfg selects. */
static inline unsigned rmsfuse_adam_variant(const rmsfuse_adam_config *cfg)
{
    const unsigned f = cfg->flags;
    unsigned V = (f & RMSFUSE_AMSGRAD) ? ADAM_V_AMSGRAD : 0u;
    if (cfg->weight_decay != 0.0)
        V |= (f & RMSFUSE_DECOUPLED_DECAY) ? ADAM_V_DECOUPLED : ADAM_V_WD;
    return V | ((f & RMSFUSE_FLUSH_SUBNORMAL) ? ADAM_V_FLUSH : 0u);
}

#endif /* RMSFUSE_RULE_ADAM_H */

#ifdef RMSFUSE_BODY
static RMSFUSE_ALWAYS_INLINE void RMSFUSE_BODY(adam)(const rmsfuse_adam_k *k, const unsigned V, char *const *a,
                                                      size_t i)
{
    VF g = RMSFUSE_GSIGN(LD(ADAM_GRAD), k->in.sgn);
    VF p = LD(ADAM_PARAM);
    if (V & ADAM_V_WD)
        g = VADD(g, VMUL(VSET1(k->w), p));
    if (V & ADAM_V_DECOUPLED)
        p = VMUL(p, VSET1(k->dk));

    VF m = FLUSH_IF(V & ADAM_V_FLUSH, VADD(VMUL(LD(ADAM_M), VSET1(k->b1)), VMUL(VSET1(k->c1), g)));
    ST(ADAM_M, m);
    VF r = FLUSH_IF(V & ADAM_V_FLUSH, VADD(VMUL(LD(ADAM_V), VSET1(k->b2)), VMUL(VMUL(VSET1(k->c2), g), g)));
    ST(ADAM_V, r);
    if (V & ADAM_V_AMSGRAD) {
        r = FLUSH_IF(V & ADAM_V_FLUSH, VMAX_NAN(LD(ADAM_VMAX), r));
        ST(ADAM_VMAX, r);
    }
    VF d = VADD(VSQRT(r), VSET1(k->e));
    RMSFUSE_PIPE(m, p, d);
    ST(ADAM_PARAM, VADD(p, VDIV(VMUL(VSET1(k->ns), m), d)));
}
#endif /* RMSFUSE_BODY */

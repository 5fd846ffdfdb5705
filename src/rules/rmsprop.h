/*
 * RMSProp (docs/math.md, "RMSProp"): the loop constants, the kernel
 * variants, and the element math, written once over the vector operations
 * of src/isa/ops_<isa>.h (VF, VADD, ...; LD/ST load and store a slot at
 * element i).  src/isa/kernels.c instantiates the body at width 1 (the
 * scalar reference, and every ISA's heads and tails) and at the ISA's width.
 */
#ifndef RMSFUSE_RULE_RMSPROP_H
#define RMSFUSE_RULE_RMSPROP_H

enum { RMSPROP_PARAM, RMSPROP_GRAD, RMSPROP_SQ, RMSPROP_MOM, RMSPROP_GA, RMSPROP_SLOTS };
/* The state slots that are never negative (the unsigned 8-bit map, docs/math.md "Storage types"). */
#define RMSFUSE_NONNEG_rmsprop (1u << RMSPROP_SQ)

/* Loop constants, derived once in double and rounded once to float. */
typedef struct rmsfuse_rmsprop_k {
    rmsfuse_grad_k in; /* first: how the gradient is read (src/rules/registry.h) */
    float a, c, e, m, w, dk, l, nl;
} rmsfuse_rmsprop_k;

/* Variant bits: what changes the loop.  MAXIMIZE does not (sgn). */
#define RMSPROP_V_CENTERED  1u
#define RMSPROP_V_EPS_IN    2u
#define RMSPROP_V_LR_IN_MOM 4u
#define RMSPROP_V_MOM       8u
#define RMSPROP_V_NESTEROV  16u
#define RMSPROP_V_WD        32u /* coupled weight decay */
#define RMSPROP_V_DECOUPLED 64u /* decoupled weight decay */
#define RMSPROP_V_FLUSH     128u /* FLUSH_SUBNORMAL: state below FLT_MIN becomes +0 */
#define RMSFUSE_FLUSHED_rmsprop RMSPROP_V_FLUSH
#define RMSFUSE_TXSPLIT_rmsprop RMSPROP_V_MOM
#define RMSFUSE_TXHOT_rmsprop (RMSPROP_V_MOM | RMSPROP_V_WD | RMSPROP_V_DECOUPLED | RMSPROP_V_FLUSH)
#define RMSFUSE_PIPED_rmsprop 1u
#define RMSFUSE_LATE_rmsprop RMSPROP_V_MOM
#define RMSFUSE_NVAR_rmsprop 256u

/* The variants the API can produce (120 of 256): the lr placement and
 * Nesterov only with momentum, one kind of weight decay at most. */
static inline int rmsfuse_rmsprop_valid(unsigned V)
{
    const int needs_mom = (V & (RMSPROP_V_LR_IN_MOM | RMSPROP_V_NESTEROV)) != 0;
    return !(needs_mom && !(V & RMSPROP_V_MOM)) && (V & (RMSPROP_V_WD | RMSPROP_V_DECOUPLED)) != 0x60u;
}

/* The slots a variant reads or writes. */
static inline unsigned rmsfuse_rmsprop_used(unsigned V)
{
    return 1u << RMSPROP_PARAM | 1u << RMSPROP_GRAD | 1u << RMSPROP_SQ |
           ((V & RMSPROP_V_MOM) ? 1u << RMSPROP_MOM : 0u) | ((V & RMSPROP_V_CENTERED) ? 1u << RMSPROP_GA : 0u);
}

/* docs/math.md's constant table: each derived in double, rounded once.
 * (Whether they are all finite is the API's check, src/api/rmsprop.c.) */
static inline rmsfuse_rmsprop_k rmsfuse_rmsprop_consts(const rmsfuse_rmsprop_config *cfg)
{
    const int decoupled = (cfg->flags & RMSFUSE_DECOUPLED_DECAY) && cfg->weight_decay != 0.0;
    rmsfuse_rmsprop_k k;
    k.a = (float)cfg->alpha;
    k.c = (float)(1.0 - cfg->alpha);
    k.e = (float)cfg->eps;
    k.m = (float)cfg->momentum;
    k.w = (float)cfg->weight_decay;
    k.l = (float)cfg->lr;
    k.nl = (float)(-cfg->lr);
    k.dk = decoupled ? (float)(1.0 - cfg->lr * cfg->weight_decay) : 1.0f;
    k.in = rmsfuse_grad_k_of(cfg->flags);
    return k;
}

/* The variant a valid cfg selects. */
static inline unsigned rmsfuse_rmsprop_variant(const rmsfuse_rmsprop_config *cfg)
{
    const unsigned f = cfg->flags;
    unsigned V = ((f & RMSFUSE_CENTERED) ? RMSPROP_V_CENTERED : 0u) | ((f & RMSFUSE_EPS_IN_SQRT) ? RMSPROP_V_EPS_IN : 0u);
    if (cfg->momentum != 0.0)
        V |= RMSPROP_V_MOM | ((f & RMSFUSE_LR_IN_MOMENTUM) ? RMSPROP_V_LR_IN_MOM : 0u) |
             ((f & RMSFUSE_NESTEROV) ? RMSPROP_V_NESTEROV : 0u);
    if (cfg->weight_decay != 0.0)
        V |= (f & RMSFUSE_DECOUPLED_DECAY) ? RMSPROP_V_DECOUPLED : RMSPROP_V_WD;
    return V | ((f & RMSFUSE_FLUSH_SUBNORMAL) ? RMSPROP_V_FLUSH : 0u);
}

#endif /* RMSFUSE_RULE_RMSPROP_H */

#ifdef RMSFUSE_BODY
static RMSFUSE_ALWAYS_INLINE void RMSFUSE_BODY(rmsprop)(const rmsfuse_rmsprop_k *k, const unsigned V,
                                                         char *const *a, size_t i)
{
    VF g = RMSFUSE_GSIGN(LD(RMSPROP_GRAD), k->in.sgn);
    VF p = LD(RMSPROP_PARAM);
    if (V & RMSPROP_V_WD)
        g = VADD(g, VMUL(VSET1(k->w), p));
    if (V & RMSPROP_V_DECOUPLED)
        p = VMUL(p, VSET1(k->dk));

    const VF v = FLUSH_IF(V & RMSPROP_V_FLUSH, VADD(VMUL(LD(RMSPROP_SQ), VSET1(k->a)), VMUL(VMUL(VSET1(k->c), g), g)));
    ST(RMSPROP_SQ, v);

    VF s = v;
    if (V & RMSPROP_V_CENTERED) {
        const VF ga = FLUSH_IF(V & RMSPROP_V_FLUSH, VADD(VMUL(LD(RMSPROP_GA), VSET1(k->a)), VMUL(VSET1(k->c), g)));
        ST(RMSPROP_GA, ga);
        /* flushed too: where v was flushed, ga * ga may not have been, and a
         * negative s would be a NaN through the square root */
        s = FLUSH_IF(V & RMSPROP_V_FLUSH, VSUB(v, VMUL(ga, ga)));
    }

    VF d = (V & RMSPROP_V_EPS_IN) ? VSQRT(VADD(s, VSET1(k->e))) : VADD(VSQRT(s), VSET1(k->e));
    RMSFUSE_PIPE(g, p, d);

    if (!(V & RMSPROP_V_MOM)) {
        p = VADD(p, VDIV(VMUL(VSET1(k->nl), g), d));
    } else if (V & RMSPROP_V_LR_IN_MOM) {
        const VF u = VDIV(VMUL(VSET1(k->l), g), d);
        const VF b = FLUSH_IF(V & RMSPROP_V_FLUSH, VADD(VMUL(LD(RMSPROP_MOM), VSET1(k->m)), u));
        ST(RMSPROP_MOM, b);
        p = (V & RMSPROP_V_NESTEROV) ? VSUB(p, VADD(u, VMUL(VSET1(k->m), b))) : VSUB(p, b);
    } else {
        const VF q = VDIV(g, d);
        const VF b = FLUSH_IF(V & RMSPROP_V_FLUSH, VADD(VMUL(LD(RMSPROP_MOM), VSET1(k->m)), q));
        ST(RMSPROP_MOM, b);
        p = (V & RMSPROP_V_NESTEROV) ? VADD(p, VMUL(VSET1(k->nl), VADD(q, VMUL(VSET1(k->m), b))))
                                     : VADD(p, VMUL(VSET1(k->nl), b));
    }
    ST(RMSPROP_PARAM, p);
}
#endif /* RMSFUSE_BODY */

/*
 * Adam / AdamW, optionally AMSGrad (docs/math.md, "Adam and AdamW"):
 * constants, variants and element math over the operations of
 * src/isa/ops_<isa>.h (see src/rules/rmsprop.h).  PyTorch's form and the
 * epsilon-hat form differ only in the constants ns and e.
 */
#ifndef RMSFUSE_RULE_ADAM_H
#define RMSFUSE_RULE_ADAM_H

enum { ADAM_PARAM, ADAM_GRAD, ADAM_M, ADAM_V, ADAM_VMAX, ADAM_SLOTS };

typedef struct rmsfuse_adam_k {
    float b1, c1, b2, c2, ns, e, w, dk;
    uint32_t sgn;
} rmsfuse_adam_k;

#define ADAM_V_AMSGRAD   1u
#define ADAM_V_WD        2u
#define ADAM_V_DECOUPLED 4u
#define ADAM_V_FLUSH     8u
#define RMSFUSE_NVAR_adam 16u

static inline int rmsfuse_adam_valid(unsigned V)
{
    return (V & (ADAM_V_WD | ADAM_V_DECOUPLED)) != (ADAM_V_WD | ADAM_V_DECOUPLED);
}

static inline unsigned rmsfuse_adam_used(unsigned V)
{
    return 1u << ADAM_PARAM | 1u << ADAM_GRAD | 1u << ADAM_M | 1u << ADAM_V |
           ((V & ADAM_V_AMSGRAD) ? 1u << ADAM_VMAX : 0u);
}

#endif /* RMSFUSE_RULE_ADAM_H */

#ifdef RMSFUSE_BODY
static RMSFUSE_ALWAYS_INLINE void RMSFUSE_BODY(adam)(const rmsfuse_adam_k *k, const unsigned V, char *const *a,
                                                      size_t i)
{
    VF g = VXOR_BITS(LD(ADAM_GRAD), k->sgn);
    VF p = LD(ADAM_PARAM);
    if (V & ADAM_V_WD)
        g = VADD(g, VMUL(VSET1(k->w), p));
    if (V & ADAM_V_DECOUPLED)
        p = VMUL(p, VSET1(k->dk));

    const VF m = FLUSH_IF(V & ADAM_V_FLUSH, VADD(VMUL(LD(ADAM_M), VSET1(k->b1)), VMUL(VSET1(k->c1), g)));
    ST(ADAM_M, m);
    VF r = FLUSH_IF(V & ADAM_V_FLUSH, VADD(VMUL(LD(ADAM_V), VSET1(k->b2)), VMUL(VMUL(VSET1(k->c2), g), g)));
    ST(ADAM_V, r);
    if (V & ADAM_V_AMSGRAD) {
        r = FLUSH_IF(V & ADAM_V_FLUSH, VMAX_NAN(LD(ADAM_VMAX), r));
        ST(ADAM_VMAX, r);
    }
    const VF d = VADD(VSQRT(r), VSET1(k->e));
    ST(ADAM_PARAM, VADD(p, VDIV(VMUL(VSET1(k->ns), m), d)));
}
#endif /* RMSFUSE_BODY */

/*
 * The rule registry: every update rule the library has.  Adding a rule is a
 * rule file here (its constants, variants and element math), its API file
 * (src/api/<rule>.c: public functions, presets, config checks), its public
 * header, and its two lines below.  Validation, plans, dispatch, the pool
 * and CMake take the rest from this list.
 *
 * Included again by src/isa/kernels.c with RMSFUSE_BODY defined, once per
 * vector width, to instantiate each rule's element math.
 */
#include <math.h>
#include <stdint.h>

#include "rmsfuse.h"

#ifndef RMSFUSE_SIGN_MASK
/* The bits XORed into every gradient: its sign for RMSFUSE_MAXIMIZE. */
#define RMSFUSE_SIGN_MASK(flags) (((flags) & RMSFUSE_MAXIMIZE) ? UINT32_C(0x80000000) : 0u)
#endif

#ifndef RMSFUSE_GSIGN
/* A rule body's gradient g with the sign flip sgn (RMSFUSE_SIGN_MASK)
 * applied: one XOR, but in AVX2's fused typed loops of the common variants
 * (src/isa/storage_fused.h, TXN(gsign)), a branch. */
#define RMSFUSE_GSIGN(g, sgn) VXOR_BITS((g), (sgn))
#endif

#ifndef RMSFUSE_PIPE
/* A rule body's stage point (x, y and the denominator d, what the rest of
 * the body reads of what came before, with a and i): nothing, but in the
 * fused typed loops that run the bodies software-pipelined
 * (src/isa/storage_fused.h, TXN(pipe)). */
#define RMSFUSE_PIPE(x, y, d) ((void)0)
#endif

#ifndef RMSFUSE_GRAD_K_DEFINED
#define RMSFUSE_GRAD_K_DEFINED
/* How every rule reads its gradient (docs/math.md, "The gradient as the
 * step reads it"): g = clamp((sgn g) * gs, -gc, gc), sgn the sign flip of
 * RMSFUSE_MAXIMIZE, gs the gradient scale (1 by default), gc the clip value
 * (+Inf by default).  The first member of every rule's constants, so that
 * the core sets gs and gc for any rule (rmsfuse_<rule>_step_ex).  The rule
 * bodies apply sgn; with gs != 1 or a finite gc, src/isa/kernels.c first
 * scales and clamps each block of the gradient into a buffer the body then
 * reads, so that steps without them pay nothing. */
typedef struct rmsfuse_grad_k {
    float gs, gc;
    uint32_t sgn; /* 0x80000000 to negate the gradient (MAXIMIZE), else 0 */
} rmsfuse_grad_k;

static inline rmsfuse_grad_k rmsfuse_grad_k_of(unsigned flags)
{
    const rmsfuse_grad_k in = {1.0f, INFINITY, RMSFUSE_SIGN_MASK(flags)};
    return in;
}

#endif

/* Each rule file also defines RMSFUSE_NONNEG_<rule>, its state slots that
 * are never negative, and RMSFUSE_FLUSHED_<rule>, its variant bit under
 * which every state value its body stores has gone through FLUSH_IF (no
 * subnormal: the fused typed loops store such values to bf16 without their
 * subnormal fix-up, src/isa/storage_fused.h; test_storage's flush variants
 * with subnormal values check it), and RMSFUSE_TXSPLIT_<rule>, a variant bit
 * that changes which state slots the body uses (momentum), or 0: the fused
 * typed loops have one loop for each of its values, and RMSFUSE_TXHOT_<rule>,
 * the variant bits of the common configurations (momentum, either weight
 * decay, the flush): on AVX2 a bf16 gradient beside float32 state, or
 * beside a bf16 param and bf16 state, and 8-bit state beside float32 or
 * bf16 params and gradients, has a loop of its own for each valid variant
 * made of these bits alone, the variant a constant (src/isa/storage_fused.h,
 * TX_VCASE_), and RMSFUSE_PIPED_<rule>, 1 where its body has a stage point
 * (RMSFUSE_PIPE) after its square root, and RMSFUSE_LATE_<rule>, the variant
 * bits under which its body loads or stores a state slot after that point
 * (the momentum of RMSProp), or 0: AVX2's loops beside 8-bit state run the
 * other variants software-pipelined across the blocks, each block encoded
 * before its last pass's second stage (src/isa/storage_fused.h,
 * TX_Q8_MAIN_; test_storage's 8-bit hot variants check it). */
#include "rmsprop.h"
#include "adagrad.h"
#include "sgd.h"
#include "adam.h"

#ifndef RMSFUSE_RULES
#define RMSFUSE_RULES(X) X(rmsprop) X(adagrad) X(sgd) X(adam)
#endif

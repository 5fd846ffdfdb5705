/*
 * RMSFUSE_FLUSH_SUBNORMAL against docs/math.md ("Subnormal-safe state"),
 * every rule, every ISA, through the public API.
 *
 * The expected values come from ref_element below: one element of each
 * rule written out from docs/math.md's constant tables and op order (the
 * constants derived in double and rounded once to float, the flush
 * applied to each state value as it is computed: RMSProp v, ga, b and the
 * centred s = v - ga * ga; AdaGrad sum; SGD b; Adam m, v and vm =
 * flush(max(vm, v))), not from
 * another path of the library.  Every step of every test runs with and
 * without the flag, on every ISA this machine can run (the ISA ctest
 * forces, in its per-ISA runs), with the arrays at assorted offsets (so
 * vector heads and tails differ), and must give the reference's bits
 * (NaN-ness for NaNs) in every array it writes, leave grad and the unused
 * arrays alone, and with the flag store no state value below FLT_MIN in
 * magnitude but +0 (no subnormal, no -0).  On top of that each test
 * asserts what docs/math.md says of its case, and counts that its case
 * happened:
 *
 *   pushed_below     state just above FLT_MIN (and FLT_MIN / decay) that a
 *                    step with a zero gradient multiplies below FLT_MIN
 *                    (AdaGrad: a gradient whose square is subnormal) is
 *                    stored as +0 with the flag and as the exact
 *                    subnormal without; FLT_MIN and above are kept
 *   loaded           subnormal and -0 state read from memory becomes +0
 *                    (decays of 1, zero gradients: without the flag the
 *                    subnormal passes through, -0 stays -0 where the sum
 *                    keeps it)
 *   nan_inf          NaN and +-Inf state: with the flag the same as without
 *   downstream       the flushed value is what the rest of the step uses:
 *                    RMSProp and Adam with eps = 0 divide 0 by 0 (NaN, or
 *                    -Inf), AdaGrad's flushed sum gives -Inf, SGD's and
 *                    Adam's flushed buffer leaves a subnormal param as it
 *                    was; without the flag the param is finite and moves
 *                    (or stays) as computed here by hand
 *   never_flushed    subnormal gradients and params pass through (the
 *                    same bits with and without the flag wherever no state
 *                    value was flushed)
 *   long_zero_run    400 steps of zero gradients from normal state: exactly
 *                    +0 in every decaying state with the flag (after every
 *                    step no subnormal is stored), a non-zero subnormal
 *                    without (0.75 times the smallest subnormals rounds
 *                    back to them)
 *   regions          one tensor through the head, the prefetching vector
 *                    loop (n >= 65536), the plain vector loop and the
 *                    tail: every element of a kind gives the same bits
 *
 * Which configurations: every combination of the rule's flags with the
 * flag set (and weight decay, momentum, dampening on or off) in native
 * runs, one per kernel loop with the flag in RMSFUSE_TEST_QUICK runs
 * (test_rules.h); each also without the flag.
 */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_common.h"
#include "test_rules.h"

#define FLUSH RMSFUSE_FLUSH_SUBNORMAL

/* ===========================================================================
 * docs/math.md, one element
 * ======================================================================== */

/* flush(x): +0 where |x| < FLT_MIN (zero or subnormal, -0 included), x
 * elsewhere (NaN and +-Inf too). */
static float flush(float x)
{
    return fabsf(x) < FLT_MIN ? 0.0f : x;
}

static float neg(float x)
{
    return u2f(f2u(x) ^ 0x80000000u);
}

/* A value that the flag must never leave in the state: a subnormal or -0. */
static int flushable(float x)
{
    return fabsf(x) < FLT_MIN && f2u(x) != 0u;
}

static int is_subnormal(float x)
{
    return fabsf(x) < FLT_MIN && x != 0.0f;
}

/* One step of configuration c on one element: e[slot] in, e[slot] out for
 * the slots the configuration writes (the others are left as they are). */
static void ref_element(const rule_cfg *c, float *e)
{
#define FL_(x) (fl ? flush(x) : (x))
    switch (c->rule) {
    case RULE_RMSPROP: {
        const rmsfuse_rmsprop_config *k = &c->u.rmsprop;
        const unsigned f = k->flags;
        const int fl = (f & FLUSH) != 0;
        const float a = (float)k->alpha, cc = (float)(1.0 - k->alpha), ep = (float)k->eps, m = (float)k->momentum,
                    w = (float)k->weight_decay, dk = (float)(1.0 - k->lr * k->weight_decay), l = (float)k->lr,
                    nl = (float)(-k->lr);
        float g = e[SLOT_GRAD], p = e[SLOT_PARAM];
        if (f & RMSFUSE_MAXIMIZE)
            g = neg(g);
        if (k->weight_decay != 0.0 && !(f & RMSFUSE_DECOUPLED_DECAY))
            g = g + w * p;
        if (k->weight_decay != 0.0 && (f & RMSFUSE_DECOUPLED_DECAY))
            p = p * dk;
        const float v = FL_(e[2] * a + (cc * g) * g);
        e[2] = v;
        float s = v;
        if (f & RMSFUSE_CENTERED) {
            const float ga = FL_(e[4] * a + cc * g);
            e[4] = ga;
            s = FL_(v - ga * ga); /* (not stored) */
        }
        const float d = (f & RMSFUSE_EPS_IN_SQRT) ? sqrtf(s + ep) : sqrtf(s) + ep;
        if (k->momentum == 0.0) {
            p = p + (nl * g) / d;
        } else if (f & RMSFUSE_LR_IN_MOMENTUM) {
            const float u = (l * g) / d;
            const float b = FL_(e[3] * m + u);
            e[3] = b;
            p = (f & RMSFUSE_NESTEROV) ? p - (u + m * b) : p - b;
        } else {
            const float q = g / d;
            const float b = FL_(e[3] * m + q);
            e[3] = b;
            p = (f & RMSFUSE_NESTEROV) ? p + nl * (q + m * b) : p + nl * b;
        }
        e[SLOT_PARAM] = p;
        break;
    }
    case RULE_ADAGRAD: {
        const rmsfuse_adagrad_config *k = &c->u.adagrad;
        const unsigned f = k->flags;
        const int fl = (f & FLUSH) != 0;
        const double clr = k->lr / (1.0 + (double)(k->step - 1) * k->lr_decay);
        const float ncl = (float)(-clr), ep = (float)k->eps, w = (float)k->weight_decay,
                    dk = (float)(1.0 - clr * k->weight_decay);
        float g = e[SLOT_GRAD], p = e[SLOT_PARAM];
        if (f & RMSFUSE_MAXIMIZE)
            g = neg(g);
        if (k->weight_decay != 0.0 && !(f & RMSFUSE_DECOUPLED_DECAY))
            g = g + w * p;
        if (k->weight_decay != 0.0 && (f & RMSFUSE_DECOUPLED_DECAY))
            p = p * dk;
        const float sum = FL_(e[2] + g * g);
        e[2] = sum;
        const float d = (f & RMSFUSE_EPS_IN_SQRT) ? sqrtf(sum + ep) : sqrtf(sum) + ep;
        e[SLOT_PARAM] = p + (ncl * g) / d;
        break;
    }
    case RULE_SGD: {
        const rmsfuse_sgd_config *k = &c->u.sgd;
        const unsigned f = k->flags;
        const int fl = (f & FLUSH) != 0;
        const float m = (float)k->momentum, dd = (float)(1.0 - k->dampening), nl = (float)(-k->lr),
                    w = (float)k->weight_decay, dk = (float)(1.0 - k->lr * k->weight_decay);
        float g = e[SLOT_GRAD], p = e[SLOT_PARAM];
        if (f & RMSFUSE_MAXIMIZE)
            g = neg(g);
        if (k->weight_decay != 0.0 && !(f & RMSFUSE_DECOUPLED_DECAY))
            g = g + w * p;
        if (k->weight_decay != 0.0 && (f & RMSFUSE_DECOUPLED_DECAY))
            p = p * dk;
        if (k->momentum == 0.0) {
            p = p + nl * g;
        } else if (!(f & RMSFUSE_LR_IN_MOMENTUM)) {
            const float b = FL_((f & RMSFUSE_INIT_MOMENTUM) ? g : e[2] * m + dd * g);
            e[2] = b;
            p = (f & RMSFUSE_NESTEROV) ? p + nl * (g + m * b) : p + nl * b;
        } else {
            const float b = FL_(e[2] * m + nl * g);
            e[2] = b;
            p = (f & RMSFUSE_NESTEROV) ? p + (b * m + nl * g) : p + b;
        }
        e[SLOT_PARAM] = p;
        break;
    }
    default: {
        const rmsfuse_adam_config *k = &c->u.adam;
        const unsigned f = k->flags;
        const int fl = (f & FLUSH) != 0;
        const double t = (double)k->step, bc1 = 1.0 - pow(k->beta1, t), bc2 = 1.0 - pow(k->beta2, t);
        const float b1 = (float)k->beta1, c1 = (float)(1.0 - k->beta1), b2 = (float)k->beta2,
                    c2 = (float)(1.0 - k->beta2), ns = (float)(-k->lr * sqrt(bc2) / bc1),
                    ep = (f & RMSFUSE_EPS_HAT) ? (float)k->eps : (float)(k->eps * sqrt(bc2)),
                    w = (float)k->weight_decay, dk = (float)(1.0 - k->lr * k->weight_decay);
        float g = e[SLOT_GRAD], p = e[SLOT_PARAM];
        if (f & RMSFUSE_MAXIMIZE)
            g = neg(g);
        if (k->weight_decay != 0.0 && !(f & RMSFUSE_DECOUPLED_DECAY))
            g = g + w * p;
        if (k->weight_decay != 0.0 && (f & RMSFUSE_DECOUPLED_DECAY))
            p = p * dk;
        const float m = FL_(e[2] * b1 + c1 * g);
        e[2] = m;
        const float v = FL_(e[3] * b2 + (c2 * g) * g);
        e[3] = v;
        float r = v;
        if (f & RMSFUSE_AMSGRAD) {
            float vm = e[4];
            vm = (vm < v) ? v : vm;
            if (isnan(v))
                vm = v;
            vm = FL_(vm);
            e[4] = vm;
            r = vm;
        }
        const float d = sqrtf(r) + ep;
        e[SLOT_PARAM] = p + (ns * m) / d;
        break;
    }
    }
#undef FL_
}

/* ===========================================================================
 * Running a configuration on every ISA
 * ======================================================================== */

static const char *entry_isa;

static void enter(void)
{
    entry_isa = rmsfuse_active_isa();
}

static void leave(void)
{
    ck_assert_int_eq(rmsfuse_set_isa(entry_isa), RMSFUSE_OK);
}

/* Fails after restoring the entry ISA (matters with CK_FORK=no). */
#define CHECK(cond, ...)                          \
    do {                                          \
        if (!(cond)) {                            \
            (void)rmsfuse_set_isa(entry_isa);     \
            ck_abort_msg(__VA_ARGS__);            \
        }                                         \
    } while (0)

/* The ISAs this run tests: the one ctest forces, or every one this machine
 * can run (scalar included) in the run with detection. */
static int isas_to_test(const char **out, int cap)
{
    const char *forced = getenv("RMSFUSE_ISA");
    if (forced && *forced && strcmp(forced, "auto") != 0) {
        out[0] = rmsfuse_active_isa(); /* rmsfuse_test_run checked that it is the forced one */
        return 1;
    }
    int k = 0;
    for (const char *const *p = rmsfuse_isa_names(); *p && k < cap; p++)
        if (rmsfuse_isa_supported(*p))
            out[k++] = *p;
    return k;
}

/* The configuration with the flag set or clear. */
static rule_cfg with_flag(rule_cfg c, int on)
{
    if (on)
        *rule_flags(&c) |= FLUSH;
    else
        *rule_flags(&c) &= ~(unsigned)FLUSH;
    return c;
}

static unsigned flags_of(const rule_cfg *c)
{
    rule_cfg t = *c;
    return *rule_flags(&t);
}

/* The state slots a configuration writes: every array it uses but param
 * and grad (docs/math.md's "flushed" column, for the flag). */
static unsigned state_slots(const rule_cfg *c)
{
    return rule_used(c) & ~(1u << SLOT_PARAM | 1u << SLOT_GRAD);
}

enum { NMAX = 400, PAD = 16 };

/* A case: n elements of input, and what the library gave for them without
 * ([0]) and with ([1]) the flag (every ISA gives the reference's bits, so
 * these are the reference's values). */
typedef struct fcase {
    size_t n;
    float in[MAX_ARR][NMAX];
    float got[2][MAX_ARR][NMAX];
} fcase;

static _Alignas(64) float arena[MAX_ARR][NMAX + PAD];

static void describe_inputs(const rule_cfg *c, const float *const *in, size_t i, char *buf, size_t len)
{
    buf[0] = 0;
    for (unsigned j = 0; j < rule_infos[c->rule].narr; j++)
        snprintf(buf + strlen(buf), len - strlen(buf), " %s %a (%#010x)", rule_infos[c->rule].arr_name[j],
                 (double)in[j][i], (unsigned)f2u(in[j][i]));
}

/* One step of c under the active ISA on the n elements in[] (placed at
 * float offset off of 64-byte-aligned memory), checked element by
 * element against ref_element; the outputs go to out[]. */
static void step_and_check(const rule_cfg *c, const float *const *in, size_t n, size_t off, float *const *out,
                           const char *isa, const char *what)
{
    const rule_info *ri = &rule_infos[c->rule];
    float *a[MAX_ARR] = {NULL};
    for (unsigned j = 0; j < ri->narr; j++) {
        a[j] = arena[j] + off;
        memcpy(a[j], in[j], n * sizeof(float));
    }
    char conf[256], ins[400];
    const int st = rule_step(c, a, n);
    if (st != RMSFUSE_OK) {
        rule_describe(c, conf, sizeof conf);
        CHECK(0, "%s, isa %s, %s: step returned %d", what, isa, conf, st);
    }
    const unsigned used = rule_used(c), state = state_slots(c);
    for (size_t i = 0; i < n; i++) {
        float e[MAX_ARR] = {0};
        for (unsigned j = 0; j < ri->narr; j++)
            e[j] = in[j][i];
        ref_element(c, e);
        for (unsigned j = 0; j < ri->narr; j++) {
            const float got = a[j][i];
            const int written = (used & (1u << j)) && j != SLOT_GRAD;
            if (written ? !same_float(got, e[j]) : f2u(got) != f2u(in[j][i])) {
                rule_describe(c, conf, sizeof conf);
                describe_inputs(c, in, i, ins, sizeof ins);
                CHECK(0, "%s, isa %s, %s, n %zu, offset %zu: %s[%zu] = %a (%#010x), %s %a (%#010x); inputs%s", what,
                      isa, conf, n, off, ri->arr_name[j], i, (double)got, (unsigned)f2u(got),
                      written ? "docs/math.md gives" : "not written, was", (double)(written ? e[j] : in[j][i]),
                      (unsigned)f2u(written ? e[j] : in[j][i]), ins);
            }
            /* With the flag no state value stays below FLT_MIN but +0. */
            if ((flags_of(c) & FLUSH) && (state & (1u << j)) && flushable(got)) {
                rule_describe(c, conf, sizeof conf);
                describe_inputs(c, in, i, ins, sizeof ins);
                CHECK(0, "%s, isa %s, %s: %s[%zu] = %a (%#010x) with RMSFUSE_FLUSH_SUBNORMAL; inputs%s", what, isa,
                      conf, ri->arr_name[j], i, (double)got, (unsigned)f2u(got), ins);
            }
        }
    }
    for (unsigned j = 0; j < ri->narr; j++)
        if (out[j])
            memcpy(out[j], a[j], n * sizeof(float));
}

/* c with and without the flag on every ISA of this run; x->got gets the
 * outputs.  `salt` varies the offsets from case to case. */
static void run_case(const rule_cfg *c, fcase *x, unsigned salt, const char *what)
{
    ck_assert_uint_le(x->n, NMAX);
    const char *isas[16];
    const int nisas = isas_to_test(isas, 16);
    const float *in[MAX_ARR];
    for (int j = 0; j < MAX_ARR; j++)
        in[j] = x->in[j];
    for (int q = 0; q < nisas; q++) {
        CHECK(rmsfuse_set_isa(isas[q]) == RMSFUSE_OK, "rmsfuse_set_isa(\"%s\") failed", isas[q]);
        for (int fl = 0; fl < 2; fl++) {
            const rule_cfg cf = with_flag(*c, fl);
            float *out[MAX_ARR];
            for (int j = 0; j < MAX_ARR; j++)
                out[j] = x->got[fl][j];
            step_and_check(&cf, in, x->n, (salt + 5u * (unsigned)q + 3u * (unsigned)fl) % PAD, out, isas[q], what);
        }
    }
    CHECK(rmsfuse_set_isa(entry_isa) == RMSFUSE_OK, "restoring the ISA failed");
}

/* ===========================================================================
 * Configurations
 * ======================================================================== */

/* The hyperparameters of a test, for any rule: decay is RMSProp's alpha
 * and Adam's beta2; mom RMSProp's and SGD's momentum; beta1 Adam's. */
typedef struct knobs {
    double lr, decay, mom, beta1, eps, wd, damp, lr_decay;
    long long step;
} knobs;

/* Combination cb (its flags, with the flag set, and its toggles) with
 * these hyperparameters. */
static rule_cfg make_config(int rule, combo cb, const knobs *k)
{
    rule_cfg x;
    memset(&x, 0, sizeof x);
    x.rule = rule;
    const double wd = (cb.tog & TOG_WD) ? k->wd : 0.0, mom = (cb.tog & TOG_MOM) ? k->mom : 0.0,
                 damp = (cb.tog & TOG_DAMP) ? k->damp : 0.0;
    const unsigned flags = cb.flags | FLUSH;
    switch (rule) {
    case RULE_RMSPROP: {
        rmsfuse_rmsprop_config c = {k->lr, k->decay, k->eps, wd, mom, flags};
        x.u.rmsprop = c;
        break;
    }
    case RULE_ADAGRAD: {
        rmsfuse_adagrad_config c = {k->lr, k->lr_decay, wd, k->eps, k->step, flags};
        x.u.adagrad = c;
        break;
    }
    case RULE_SGD: {
        rmsfuse_sgd_config c = {k->lr, mom, damp, wd, flags};
        x.u.sgd = c;
        break;
    }
    default: {
        rmsfuse_adam_config c = {k->lr, k->beta1, k->decay, k->eps, wd, k->step, flags};
        x.u.adam = c;
        break;
    }
    }
    ck_assert_int_eq(rule_check_config(&x), RMSFUSE_OK);
    return x;
}

/* The combinations with the flag this run tests: all of them, or in quick
 * runs one per kernel loop with the flag (the second half of the loops). */
static unsigned flag_combos(int rule, uint64_t salt, unsigned *out)
{
    const unsigned nc = rule_ncombos(rule);
    unsigned k = 0;
    if (!test_quick_mode()) {
        for (unsigned i = 0; i < nc; i++)
            if (combo_flush(rule_combo(rule, i)))
                out[k++] = i;
        return k;
    }
    unsigned all[MAX_COMBOS];
    test_rng r = {test_run_seed(salt + (uint64_t)rule)};
    const unsigned m = rule_sample(rule, 0, &r, all);
    for (unsigned i = 0; i < m; i++)
        if (combo_flush(rule_combo(rule, all[i])))
            out[k++] = all[i];
    return k;
}

/* The factor each state slot's old value is multiplied by (docs/math.md),
 * as the loop's float constant; 1 where there is none (AdaGrad's sum). */
static void slot_decays(const rule_cfg *c, float *dec)
{
    for (int j = 0; j < MAX_ARR; j++)
        dec[j] = 1.0f;
    switch (c->rule) {
    case RULE_RMSPROP:
        dec[2] = dec[4] = (float)c->u.rmsprop.alpha;
        dec[3] = (float)c->u.rmsprop.momentum;
        break;
    case RULE_SGD: dec[2] = (float)c->u.sgd.momentum; break;
    case RULE_ADAM:
        dec[2] = (float)c->u.adam.beta1;
        dec[3] = dec[4] = (float)c->u.adam.beta2;
        break;
    default: break;
    }
}

/* The state slots that decay (docs/math.md: each "multiplied by a constant
 * below 1 every step" when the gradient is zero): RMSProp v, b, ga; SGD b;
 * Adam m, v.  (AdaGrad's sum never decays; Adam's vm is a maximum.) */
static unsigned decaying_slots(int rule)
{
    switch (rule) {
    case RULE_RMSPROP: return 1u << 2 | 1u << 3 | 1u << 4;
    case RULE_SGD: return 1u << 2;
    case RULE_ADAM: return 1u << 2 | 1u << 3;
    default: return 0u;
    }
}

static float rand_sign(test_rng *r, float x)
{
    return (rng_next(r) & 1) ? neg(x) : x;
}

/* A non-zero subnormal, spread over the range (a few bits to all 23). */
static float rand_subnormal(test_rng *r)
{
    const unsigned bits = 1 + (unsigned)(rng_next(r) % 23);
    uint32_t u = (uint32_t)(rng_next(r) & ((1u << bits) - 1u));
    return u2f(u ? u : 1u);
}

/* A gradient so small that its square (or c * g * g) is subnormal or 0:
 * 2^-80 .. 2^-64. */
static float tiny_grad(test_rng *r)
{
    return rand_sign(r, ldexpf(rng_uniform(r, 1.0f, 2.0f), -64 - (int)(rng_next(r) % 17)));
}

/* ===========================================================================
 * A step drives state below FLT_MIN
 * ======================================================================== */

/* State near FLT_MIN above it: FLT_MIN, a few ulps above, FLT_MIN / decay
 * give or take 3 ulps (the product lands on either side of FLT_MIN), up
 * to 8 FLT_MIN. */
static float above_min(test_rng *r, float decay)
{
    switch (rng_next(r) % 6) {
    case 0: return FLT_MIN;
    case 1: return u2f(0x00800000u + 1 + (uint32_t)(rng_next(r) % 8));
    case 2: return FLT_MIN * rng_uniform(r, 1.0f, 2.0f);
    case 5: return ldexpf(rng_uniform(r, 1.0f, 2.0f), -126 + 1 + (int)(rng_next(r) % 3));
    default:
        if (decay > 0.0f && decay < 1.0f) {
            const float x = (float)((double)FLT_MIN / decay);
            return u2f(f2u(x) + (uint32_t)(rng_next(r) % 7) - 3u);
        }
        return u2f(0x00800000u + (uint32_t)(rng_next(r) % 64));
    }
}

START_TEST(test_pushed_below)
{
    enter();
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    static fcase x;
    unsigned ks[MAX_COMBOS];
    const unsigned m = flag_combos(rule, 0xf1u, ks);
    unsigned pushed[MAX_ARR] = {0}, kept[MAX_ARR] = {0};
    static const double decays[] = {0.5, 0.9, 0.99, 0.75};
    for (unsigned v = 0; v < m; v++) {
        const knobs kn = {0.01, decays[v % 4], decays[(v + 1) % 4], decays[(v + 2) % 4], 1e-8, 0.01, 0.25,
                          0.5, 1 + (long long)(v % 3)};
        const rule_cfg c = make_config(rule, rule_combo(rule, ks[v]), &kn);
        float dec[MAX_ARR];
        slot_decays(&c, dec);
        test_rng r = {test_run_seed(0x5eedu * (uint64_t)(rule + 1) + v)};
        x.n = 40 + (size_t)(rng_next(&r) % 200);
        for (size_t i = 0; i < x.n; i++) {
            /* params: ordinary, or zero or subnormal (so that coupled
             * weight decay leaves the gradient tiny) */
            x.in[SLOT_PARAM][i] = rng_next(&r) % 4 ? rand_sign(&r, rng_uniform(&r, 0.5f, 2.0f))
                                  : rng_next(&r) % 2 ? rand_sign(&r, rand_subnormal(&r))
                                                     : rand_sign(&r, 0.0f);
            for (unsigned j = 2; j < ri->narr; j++) {
                const float s = above_min(&r, dec[j]);
                x.in[j][i] = ri->kind[j] == AK_SQ ? s : rand_sign(&r, s);
            }
            if (rule == RULE_ADAGRAD) {
                /* sum + g*g: from 0 with a gradient whose square is
                 * subnormal, from -(FLT_MIN..2 FLT_MIN) with one whose
                 * square is FLT_MIN..4 FLT_MIN, or kept with g = 0 */
                const uint64_t d = rng_next(&r) % 5;
                if (d < 3) {
                    x.in[2][i] = 0.0f;
                    x.in[SLOT_GRAD][i] = tiny_grad(&r);
                } else if (d == 3) {
                    x.in[2][i] = -FLT_MIN * rng_uniform(&r, 1.0f, 2.0f);
                    x.in[SLOT_GRAD][i] = rand_sign(&r, ldexpf(rng_uniform(&r, 1.0f, 2.0f), -63));
                } else {
                    x.in[SLOT_GRAD][i] = rand_sign(&r, 0.0f);
                }
            } else {
                x.in[SLOT_GRAD][i] = rng_next(&r) % 8 ? rand_sign(&r, 0.0f) : tiny_grad(&r);
            }
        }
        run_case(&c, &x, v, "pushed below FLT_MIN");
        const unsigned state = state_slots(&c);
        for (size_t i = 0; i < x.n; i++)
            for (unsigned j = 2; j < ri->narr; j++) {
                if (!(state & (1u << j)))
                    continue;
                const float in = x.in[j][i], exact = x.got[0][j][i], fl = x.got[1][j][i];
                /* Driven below FLT_MIN from FLT_MIN or above (or from 0):
                 * the exact subnormal without the flag, +0 with it. */
                if ((fabsf(in) >= FLT_MIN || in == 0.0f) && is_subnormal(exact) && f2u(fl) == 0u)
                    pushed[j]++;
                /* FLT_MIN and just above are kept, with the same bits. */
                if (fabsf(exact) >= FLT_MIN && fabsf(exact) < 1.001f * FLT_MIN) {
                    CHECK(f2u(fl) == f2u(exact), "%s %s[%zu]: %a without the flag, %a with", ri->name,
                          ri->arr_name[j], i, (double)exact, (double)fl);
                    kept[j]++;
                }
            }
    }
    /* Every state slot that can be driven below FLT_MIN was, and kept. */
    const unsigned want = rule == RULE_ADAGRAD ? 1u << 2 : decaying_slots(rule);
    for (unsigned j = 2; j < ri->narr; j++)
        if (want & (1u << j)) {
            CHECK(pushed[j] > 0, "%s: no %s driven below FLT_MIN (+0 with the flag, subnormal without)", ri->name,
                  ri->arr_name[j]);
            CHECK(kept[j] > 0, "%s: no %s just above FLT_MIN", ri->name, ri->arr_name[j]);
        }
    leave();
}
END_TEST

/* ===========================================================================
 * Subnormal and -0 state read from memory
 * ======================================================================== */

START_TEST(test_loaded)
{
    enter();
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    static fcase x;
    unsigned ks[MAX_COMBOS];
    const unsigned m = flag_combos(rule, 0xf2u, ks);
    unsigned zeroed = 0, passed = 0, neg_zero_kept = 0, tested = 0;
    /* Decays of 1 (momentum 1 - 1e-12 is 1.0f; SGD may have 1) and zero
     * gradients: without the flag a loaded value comes out as it went in,
     * plus a zero. */
    const knobs kn = {0.01, 1.0, rule == RULE_SGD ? 1.0 : 1.0 - 1e-12, 1.0 - 1e-12, 1e-8, 0.0, 0.25, 0.0, 1};
    for (unsigned v = 0; v < m; v++) {
        const combo cb = rule_combo(rule, ks[v]);
        if (cb.tog & TOG_WD)
            continue; /* coupled weight decay would make the gradient non-zero */
        knobs k = kn;
        if (rule == RULE_ADAM)
            k.decay = 1.0 - 1e-12;
        const rule_cfg c = make_config(rule, cb, &k);
        test_rng r = {test_run_seed(0x10adu * (uint64_t)(rule + 1) + v)};
        x.n = 40 + (size_t)(rng_next(&r) % 200);
        for (size_t i = 0; i < x.n; i++) {
            x.in[SLOT_PARAM][i] = rand_sign(&r, rng_uniform(&r, 0.5f, 2.0f));
            x.in[SLOT_GRAD][i] = rand_sign(&r, 0.0f);
            for (unsigned j = 2; j < ri->narr; j++) {
                const uint64_t d = rng_next(&r) % 10;
                float s = d < 5 ? rand_subnormal(&r) : d < 7 ? -0.0f : d < 8 ? 0.0f : rng_uniform(&r, 0.5f, 1.0f);
                if (ri->kind[j] != AK_SQ && d < 5)
                    s = rand_sign(&r, s);
                if (rule == RULE_RMSPROP && j == 4 && d >= 8)
                    s = 0.0f; /* ga * ga <= v: s >= 0, d > 0, b = b + 0 / d */
                x.in[j][i] = s;
            }
        }
        run_case(&c, &x, v, "loaded subnormal or -0 state");
        tested++;
        const unsigned state = state_slots(&c);
        const int init = rule == RULE_SGD && (c.u.sgd.flags & RMSFUSE_INIT_MOMENTUM) && c.u.sgd.momentum != 0.0;
        for (size_t i = 0; i < x.n; i++)
            for (unsigned j = 2; j < ri->narr; j++) {
                if (!(state & (1u << j)))
                    continue;
                const float in = x.in[j][i], exact = x.got[0][j][i], fl = x.got[1][j][i];
                /* Adam's vm = max(vm, v): +0 when both are below FLT_MIN. */
                const int is_max = rule == RULE_ADAM && j == 4;
                if (is_max && !(fabsf(x.in[3][i]) < FLT_MIN))
                    continue;
                if (flushable(in) || init) {
                    CHECK(f2u(fl) == 0u, "%s %s[%zu]: loaded %a (%#010x) gave %a (%#010x) with the flag, not +0",
                          ri->name, ri->arr_name[j], i, (double)in, (unsigned)f2u(in), (double)fl,
                          (unsigned)f2u(fl));
                    zeroed += flushable(in);
                }
                /* Without the flag a subnormal passes through (x * 1 + 0). */
                if (is_subnormal(in) && !init && !is_max) {
                    CHECK(f2u(exact) == f2u(in), "%s %s[%zu]: loaded %a gave %a without the flag", ri->name,
                          ri->arr_name[j], i, (double)in, (double)exact);
                    passed++;
                }
                neg_zero_kept += f2u(exact) == 0x80000000u;
            }
    }
    CHECK(tested > 0 && zeroed > 0 && passed > 0, "%s: %u cases, %u zeroed, %u passed through", ri->name, tested,
          zeroed, passed);
    /* -0 survives some sums without the flag (x * 1 + -0), except AdaGrad's
     * (sum + g * g adds +0): the flag must turn those into +0 too. */
    if (rule != RULE_ADAGRAD)
        CHECK(neg_zero_kept > 0, "%s: no -0 state kept without the flag", ri->name);
    leave();
}
END_TEST

/* ===========================================================================
 * NaN and +-Inf state
 * ======================================================================== */

START_TEST(test_nan_inf)
{
    enter();
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    static fcase x;
    unsigned ks[MAX_COMBOS];
    const unsigned m = flag_combos(rule, 0xf3u, ks);
    static const uint32_t specials[] = {0x7fc00000u, 0xffc00001u, 0x7f800001u, 0xff812345u, 0x7f800000u,
                                        0xff800000u};
    unsigned nans = 0, infs = 0;
    for (unsigned v = 0; v < m; v++) {
        const knobs kn = {0.01, 0.9, 0.5, 0.9, 1e-8, 0.01, 0.25, 0.5, 1 + (long long)(v % 3)};
        const rule_cfg c = make_config(rule, rule_combo(rule, ks[v]), &kn);
        const unsigned state = state_slots(&c);
        test_rng r = {test_run_seed(0x1a1au * (uint64_t)(rule + 1) + v)};
        x.n = 40 + (size_t)(rng_next(&r) % 100);
        unsigned special_slot[NMAX];
        for (size_t i = 0; i < x.n; i++) {
            x.in[SLOT_PARAM][i] = rand_sign(&r, rng_uniform(&r, 0.5f, 2.0f));
            x.in[SLOT_GRAD][i] = rng_next(&r) % 2 ? rand_sign(&r, 0.0f) : rng_uniform(&r, -1.0f, 1.0f);
            for (unsigned j = 2; j < ri->narr; j++) {
                /* (RMSProp's ga small: centred s = v - ga * ga > 0) */
                const float s = ri->kind[j] == AK_AVG ? rng_uniform(&r, 0.01f, 0.1f) : rng_uniform(&r, 0.25f, 1.0f);
                x.in[j][i] = ri->kind[j] == AK_SQ ? s : rand_sign(&r, s);
            }
            /* One state slot of the element NaN or +-Inf. */
            const unsigned j = 2 + (unsigned)(rng_next(&r) % (ri->narr - 2));
            x.in[j][i] = u2f(specials[rng_next(&r) % 6]);
            special_slot[i] = j;
        }
        run_case(&c, &x, v, "NaN and Inf state");
        const int init = rule == RULE_SGD && (c.u.sgd.flags & RMSFUSE_INIT_MOMENTUM) && c.u.sgd.momentum != 0.0;
        for (size_t i = 0; i < x.n; i++) {
            /* Nothing here is below FLT_MIN: the flag changes nothing (but
             * SGD's b = g with INIT_MOMENTUM, -0 for a maximized +0). */
            for (unsigned j = 0; j < ri->narr; j++)
                CHECK((init && j == 2) || same_float(x.got[0][j][i], x.got[1][j][i]),
                      "%s %s[%zu]: %a without the flag, %a with", ri->name, ri->arr_name[j], i,
                      (double)x.got[0][j][i], (double)x.got[1][j][i]);
            const unsigned j = special_slot[i];
            const float in = x.in[j][i], fl = x.got[1][j][i];
            if (!(state & (1u << j)) || init)
                continue;
            /* A NaN stays NaN; an infinity times a decay in (0, 1), plus
             * something finite, stays that infinity (Adam's vm: the
             * maximum, so +Inf only). */
            if (isnan(in)) {
                CHECK(isnan(fl), "%s %s[%zu]: loaded NaN gave %a with the flag", ri->name, ri->arr_name[j], i,
                      (double)fl);
                nans++;
            } else if (!(rule == RULE_ADAM && j == 4 && in < 0.0f)) {
                CHECK(f2u(fl) == f2u(in), "%s %s[%zu]: loaded %a gave %a with the flag", ri->name, ri->arr_name[j], i,
                      (double)in, (double)fl);
                infs++;
            }
        }
    }
    CHECK(nans > 0 && infs > 0, "%s: %u NaN and %u infinite state values checked", ri->name, nans, infs);
    leave();
}
END_TEST

/* ===========================================================================
 * The flushed value is what the rest of the step uses
 * ======================================================================== */

enum { DN = 37 }; /* several vectors and a tail on every ISA */

/* Every element the same: param p, grad g, state s[2..]. */
static void fill_same(fcase *x, float p, float g, const float *s, unsigned narr)
{
    x->n = DN;
    for (size_t i = 0; i < DN; i++) {
        x->in[SLOT_PARAM][i] = p;
        x->in[SLOT_GRAD][i] = g;
        for (unsigned j = 2; j < narr; j++)
            x->in[j][i] = s[j];
    }
}

/* RMSProp, eps = 0, zero gradient, v a loaded subnormal: without the flag
 * v' = v * 0.5 = 2^-141 and d = sqrt(v') > 0, so p + (nl * 0) / d = p; with
 * it v' = +0, d = 0 and the update is (-0) / 0: NaN (docs/math.md: "where
 * the gradient and the state are zero, d = 0 ... giving NaN").  With
 * momentum b = b * m + 0 / d, NaN as well. */
static void downstream_rmsprop(fcase *x)
{
    static const combo forms[] = {
        {0u, 0u},
        {RMSFUSE_EPS_IN_SQRT, 0u},
        {RMSFUSE_CENTERED, 0u},
        {RMSFUSE_CENTERED | RMSFUSE_EPS_IN_SQRT, TOG_MOM},
        {0u, TOG_MOM},
        {RMSFUSE_LR_IN_MOMENTUM, TOG_MOM},
        {RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_NESTEROV, TOG_MOM},
        {RMSFUSE_NESTEROV | RMSFUSE_MAXIMIZE, TOG_MOM},
        {RMSFUSE_DECOUPLED_DECAY, TOG_WD},
    };
    const knobs kn = {0.01, 0.5, 0.5, 0.9, 0.0, 0.01, 0.0, 0.0, 1};
    const float s[MAX_ARR] = {0, 0, 0x1p-140f, 0.25f, 0.0f};
    for (size_t q = 0; q < sizeof forms / sizeof forms[0]; q++) {
        const rule_cfg c = make_config(RULE_RMSPROP, forms[q], &kn);
        fill_same(x, 1.5f, 0.0f, s, 5);
        run_case(&c, x, (unsigned)q, "RMSProp, eps 0, flushed v");
        const int dec = (forms[q].tog & TOG_WD) != 0;
        for (size_t i = 0; i < DN; i++) {
            CHECK(f2u(x->got[0][2][i]) == f2u(0x1p-141f) && f2u(x->got[1][2][i]) == 0u,
                  "RMSProp form %zu: square_avg %a without the flag, %a with", q, (double)x->got[0][2][i],
                  (double)x->got[1][2][i]);
            CHECK(isnan(x->got[1][SLOT_PARAM][i]), "RMSProp form %zu: param %a with the flag, not NaN", q,
                  (double)x->got[1][SLOT_PARAM][i]);
            CHECK(isfinite(x->got[0][SLOT_PARAM][i]), "RMSProp form %zu: param %a without the flag", q,
                  (double)x->got[0][SLOT_PARAM][i]);
            if (!(forms[q].tog & TOG_MOM)) /* no momentum: p + (-0) / d, the param as it was (times dk) */
                CHECK(x->got[0][SLOT_PARAM][i] == (dec ? 1.5f * (float)(1.0 - 0.01 * 0.01) : 1.5f),
                      "RMSProp form %zu: param %a without the flag", q, (double)x->got[0][SLOT_PARAM][i]);
        }
    }
}

/* AdaGrad, eps = 0, sum 0, gradient 2^-70: without the flag sum' = 2^-140,
 * d = 2^-70 and p + (ncl * g) / d = 1.5 - 0.5 = 1 exactly; with it sum' =
 * +0, d = 0 and the update is (-2^-71) / 0 = -Inf. */
static void downstream_adagrad(fcase *x)
{
    const knobs kn = {0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1};
    const float s[MAX_ARR] = {0, 0, 0.0f, 0, 0};
    for (unsigned q = 0; q < 2; q++) {
        const combo cb = {q ? RMSFUSE_EPS_IN_SQRT : 0u, 0u};
        const rule_cfg c = make_config(RULE_ADAGRAD, cb, &kn);
        fill_same(x, 1.5f, 0x1p-70f, s, 3);
        run_case(&c, x, q, "AdaGrad, eps 0, flushed sum");
        for (size_t i = 0; i < DN; i++) {
            CHECK(f2u(x->got[0][2][i]) == f2u(0x1p-140f) && f2u(x->got[1][2][i]) == 0u,
                  "AdaGrad: sum %a without the flag, %a with", (double)x->got[0][2][i], (double)x->got[1][2][i]);
            CHECK(x->got[0][SLOT_PARAM][i] == 1.0f && x->got[1][SLOT_PARAM][i] == -INFINITY,
                  "AdaGrad: param %a without the flag (1 expected), %a with (-Inf expected)",
                  (double)x->got[0][SLOT_PARAM][i], (double)x->got[1][SLOT_PARAM][i]);
        }
    }
}

/* SGD, momentum 0.5, lr 1024, zero gradient, buffer 2^-140, param 2^-128
 * (both subnormal): without the flag b' = 2^-141 and the param moves by it
 * exactly (torch: p - 1024 b' = 2^-128 - 2^-131; Nesterov p - 1024 (0 +
 * 0.5 b') = 2^-128 - 2^-132; Keras: p + b' and p + 0.5 b'); with it b' =
 * +0 and the param keeps its bits, a subnormal the flag does not touch. */
static void downstream_sgd(fcase *x)
{
    static const struct {
        combo cb;
        float p1;
    } forms[] = {
        {{0u, TOG_MOM}, 0x1p-128f - 0x1p-131f},
        {{RMSFUSE_NESTEROV, TOG_MOM}, 0x1p-128f - 0x1p-132f},
        {{RMSFUSE_LR_IN_MOMENTUM, TOG_MOM}, 0x1p-128f + 0x1p-141f},
        {{RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_NESTEROV, TOG_MOM}, 0x1p-128f + 0x1p-142f},
    };
    const knobs kn = {1024.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 1};
    const float s[MAX_ARR] = {0, 0, 0x1p-140f, 0, 0};
    for (size_t q = 0; q < sizeof forms / sizeof forms[0]; q++) {
        const rule_cfg c = make_config(RULE_SGD, forms[q].cb, &kn);
        fill_same(x, 0x1p-128f, 0.0f, s, 3);
        run_case(&c, x, (unsigned)q, "SGD, flushed momentum_buf");
        for (size_t i = 0; i < DN; i++) {
            CHECK(f2u(x->got[0][2][i]) == f2u(0x1p-141f) && f2u(x->got[1][2][i]) == 0u,
                  "SGD form %zu: momentum_buf %a without the flag, %a with", q, (double)x->got[0][2][i],
                  (double)x->got[1][2][i]);
            CHECK(f2u(x->got[0][SLOT_PARAM][i]) == f2u(forms[q].p1), "SGD form %zu: param %a without the flag, %a"
                  " expected", q, (double)x->got[0][SLOT_PARAM][i], (double)forms[q].p1);
            CHECK(f2u(x->got[1][SLOT_PARAM][i]) == f2u(0x1p-128f), "SGD form %zu: param %a with the flag, 2^-128"
                  " expected", q, (double)x->got[1][SLOT_PARAM][i]);
        }
    }
}

/* Adam, eps = 0, zero gradient, m = 1, v (and vm) a loaded subnormal:
 * without the flag d = sqrt(v') > 0 and the param is finite; with it v' (or
 * vm') = +0, d = 0 and (ns * m') / 0 = -Inf.  And m flushed: a loaded
 * subnormal m, v = 1, a subnormal param: with the flag (ns * 0) / d = -0
 * and the param keeps its bits; without it the param moves. */
static void downstream_adam(fcase *x)
{
    const knobs kn = {1e-3, 0.5, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 1};
    for (unsigned q = 0; q < 4; q++) {
        const combo cb = {((q & 1) ? RMSFUSE_AMSGRAD : 0u) | ((q & 2) ? RMSFUSE_EPS_HAT : 0u), 0u};
        const rule_cfg c = make_config(RULE_ADAM, cb, &kn);
        const float s[MAX_ARR] = {0, 0, 1.0f, 0x1p-140f, 0x1p-140f};
        fill_same(x, 1.5f, 0.0f, s, 5);
        run_case(&c, x, q, "Adam, eps 0, flushed v");
        for (size_t i = 0; i < DN; i++) {
            CHECK(f2u(x->got[1][3][i]) == 0u && is_subnormal(x->got[0][3][i]),
                  "Adam: exp_avg_sq %a without the flag, %a with", (double)x->got[0][3][i], (double)x->got[1][3][i]);
            CHECK(isfinite(x->got[0][SLOT_PARAM][i]) && x->got[1][SLOT_PARAM][i] == -INFINITY,
                  "Adam flags %#x: param %a without the flag, %a with (-Inf expected)", cb.flags,
                  (double)x->got[0][SLOT_PARAM][i], (double)x->got[1][SLOT_PARAM][i]);
        }
    }
    /* ns = -lr sqrt(bc2) / bc1 = -1024 with beta2 = 0.75 at step 1. */
    const knobs km = {1024.0, 0.75, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 1};
    for (unsigned q = 0; q < 2; q++) {
        const combo cb = {q ? RMSFUSE_AMSGRAD : 0u, 0u};
        const rule_cfg c = make_config(RULE_ADAM, cb, &km);
        const float s[MAX_ARR] = {0, 0, 0x1p-140f, 1.0f, 1.0f};
        fill_same(x, 0x1p-130f, 0.0f, s, 5);
        run_case(&c, x, q, "Adam, flushed exp_avg");
        for (size_t i = 0; i < DN; i++) {
            CHECK(f2u(x->got[0][2][i]) == f2u(0x1p-141f) && f2u(x->got[1][2][i]) == 0u,
                  "Adam: exp_avg %a without the flag, %a with", (double)x->got[0][2][i], (double)x->got[1][2][i]);
            CHECK(f2u(x->got[1][SLOT_PARAM][i]) == f2u(0x1p-130f) && x->got[0][SLOT_PARAM][i] < 0x1p-130f,
                  "Adam: param %a without the flag (below 2^-130 expected), %a with (2^-130 expected)",
                  (double)x->got[0][SLOT_PARAM][i], (double)x->got[1][SLOT_PARAM][i]);
        }
    }
}

START_TEST(test_downstream)
{
    enter();
    static fcase x;
    switch (_i) {
    case RULE_RMSPROP: downstream_rmsprop(&x); break;
    case RULE_ADAGRAD: downstream_adagrad(&x); break;
    case RULE_SGD: downstream_sgd(&x); break;
    default: downstream_adam(&x); break;
    }
    leave();
}
END_TEST

/* ===========================================================================
 * Gradients and params are never flushed
 * ======================================================================== */

START_TEST(test_never_flushed)
{
    enter();
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    static fcase x;
    unsigned ks[MAX_COMBOS];
    const unsigned m = flag_combos(rule, 0xf5u, ks);
    unsigned same = 0, sub_grad_same = 0, sub_param_out = 0;
    for (unsigned v = 0; v < m; v++) {
        /* lr 1 (Adam 1e-39: its update is ns * m / d with m ordinary), so
         * that subnormal params stay subnormal. */
        const knobs kn = {rule == RULE_ADAM ? 1e-39 : 1.0, 0.9, 0.5, 0.9, 1e-8, 0.5, 0.25, 0.5,
                          1 + (long long)(v % 3)};
        const rule_cfg c = make_config(rule, rule_combo(rule, ks[v]), &kn);
        test_rng r = {test_run_seed(0x9a9au * (uint64_t)(rule + 1) + v)};
        x.n = 40 + (size_t)(rng_next(&r) % 200);
        for (size_t i = 0; i < x.n; i++) {
            const uint64_t d = rng_next(&r) % 4;
            x.in[SLOT_GRAD][i] = d < 2 ? rand_sign(&r, rand_subnormal(&r))
                                 : d < 3 ? rng_uniform(&r, -1.0f, 1.0f)
                                         : rand_sign(&r, 0.0f);
            x.in[SLOT_PARAM][i] = rng_next(&r) % 2 ? rand_sign(&r, rand_subnormal(&r))
                                                   : rand_sign(&r, rng_uniform(&r, 0.5f, 2.0f));
            for (unsigned j = 2; j < ri->narr; j++) {
                const float s = rng_uniform(&r, 0.25f, 1.0f);
                x.in[j][i] = ri->kind[j] == AK_SQ ? s : rand_sign(&r, s);
            }
        }
        run_case(&c, &x, v, "subnormal gradients and params");
        for (size_t i = 0; i < x.n; i++) {
            /* Where no state value was flushed, the flag changes nothing:
             * the gradient and the param went in as they were. */
            int state_same = 1;
            for (unsigned j = 2; j < ri->narr; j++)
                state_same &= same_float(x.got[0][j][i], x.got[1][j][i]);
            if (!state_same)
                continue; /* (SGD's INIT_MOMENTUM: b = flush(g)) */
            CHECK(same_float(x.got[0][SLOT_PARAM][i], x.got[1][SLOT_PARAM][i]),
                  "%s param[%zu]: %a without the flag, %a with (grad %a, param %a)", ri->name, i,
                  (double)x.got[0][SLOT_PARAM][i], (double)x.got[1][SLOT_PARAM][i], (double)x.in[SLOT_GRAD][i],
                  (double)x.in[SLOT_PARAM][i]);
            same++;
            sub_grad_same += is_subnormal(x.in[SLOT_GRAD][i]);
            sub_param_out += is_subnormal(x.got[1][SLOT_PARAM][i]);
        }
    }
    CHECK(same > 0 && sub_grad_same > 0 && sub_param_out > 0,
          "%s: %u elements compared, %u with subnormal gradients, %u subnormal params out", ri->name, same,
          sub_grad_same, sub_param_out);
    leave();
}
END_TEST

/* SGD without momentum, lr 1: p - g exactly, for subnormal p and g, the
 * flag or not (the flush loop has no state to flush and must not touch the
 * gradient or the param). */
START_TEST(test_never_flushed_exact)
{
    enter();
    static fcase x;
    const knobs kn = {1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1};
    const rule_cfg c = make_config(RULE_SGD, (combo){0u, 0u}, &kn);
    x.n = DN;
    for (size_t i = 0; i < DN; i++) {
        x.in[SLOT_PARAM][i] = u2f(0x00000300u + (uint32_t)i);
        x.in[SLOT_GRAD][i] = i % 2 ? u2f(0x00000100u) : u2f(0x80000100u);
        x.in[2][i] = 0x1p-140f; /* unused without momentum */
    }
    run_case(&c, &x, 0, "SGD, subnormal param and gradient");
    for (size_t i = 0; i < DN; i++) {
        const float want = x.in[SLOT_PARAM][i] - x.in[SLOT_GRAD][i];
        ck_assert(is_subnormal(want));
        for (int fl = 0; fl < 2; fl++)
            CHECK(f2u(x.got[fl][SLOT_PARAM][i]) == f2u(want), "SGD param[%zu] = %a, p - g = %a (flag %d)", i,
                  (double)x.got[fl][SLOT_PARAM][i], (double)want, fl);
    }
    leave();
}
END_TEST

/* ===========================================================================
 * A long run of zero gradients
 * ======================================================================== */

#define LONG_STEPS 400
enum { LN = 37 };

START_TEST(test_long_zero_run)
{
    enter();
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    static const combo forms_rmsprop[] = {{0u, 0u},
                                          {RMSFUSE_CENTERED, TOG_MOM},
                                          {RMSFUSE_CENTERED | RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM, TOG_MOM},
                                          {RMSFUSE_NESTEROV, TOG_MOM}};
    static const combo forms_adagrad[] = {{0u, 0u}};
    static const combo forms_sgd[] = {{0u, TOG_MOM},
                                      {0u, TOG_MOM | TOG_DAMP},
                                      {RMSFUSE_NESTEROV, TOG_MOM},
                                      {RMSFUSE_LR_IN_MOMENTUM, TOG_MOM},
                                      {RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_NESTEROV, TOG_MOM}};
    static const combo forms_adam[] = {{0u, 0u}, {RMSFUSE_AMSGRAD, 0u}, {RMSFUSE_EPS_HAT, 0u}};
    const combo *forms;
    size_t nforms;
    switch (rule) {
    case RULE_RMSPROP: forms = forms_rmsprop, nforms = sizeof forms_rmsprop / sizeof forms_rmsprop[0]; break;
    case RULE_ADAGRAD: forms = forms_adagrad, nforms = 1; break;
    case RULE_SGD: forms = forms_sgd, nforms = sizeof forms_sgd / sizeof forms_sgd[0]; break;
    default: forms = forms_adam, nforms = sizeof forms_adam / sizeof forms_adam[0]; break;
    }
    /* Decays of 0.75: 0.75 times one or two units of the smallest
     * subnormal rounds back to them, so without the flag the state stops
     * there (about 360 steps from 1). */
    const knobs kn = {0.01, 0.75, 0.75, 0.75, 1e-8, 0.0, 0.25, 0.0, 1};
    static const float starts[] = {1.0f, 0.5f, 1e-10f, 1e-30f, 3e-38f, 0x1p-124f, 0.75f};
    const char *isas[16];
    const int nisas = isas_to_test(isas, 16);
    static float init[MAX_ARR][LN], ref[MAX_ARR][LN], gr[LN];
    float *a[MAX_ARR] = {NULL};
    for (size_t q = 0; q < nforms; q++) {
        for (size_t i = 0; i < LN; i++) {
            init[SLOT_PARAM][i] = 1.0f + 0.01f * (float)i;
            gr[i] = i % 2 ? -0.0f : 0.0f;
            for (unsigned j = 2; j < ri->narr; j++) {
                const float s = starts[(i + j) % (sizeof starts / sizeof starts[0])];
                init[j][i] = ri->kind[j] == AK_SQ || (i / 3) % 2 ? s : -s;
            }
            if (rule == RULE_ADAM) /* vm = max(vm, v) with v decaying from vm: vm stays */
                init[4][i] = init[3][i];
            if (rule == RULE_RMSPROP) /* ga = +-v / 2: ga * ga <= v at every step, s >= 0 */
                init[4][i] = (i / 3) % 2 ? 0.5f * init[2][i] : -0.5f * init[2][i];
        }
        for (int fl = 0; fl < 2; fl++) {
            const rule_cfg c0 = with_flag(make_config(rule, forms[q], &kn), fl);
            char conf[256];
            rule_describe(&c0, conf, sizeof conf);
            const unsigned state = state_slots(&c0);
            /* The reference, LONG_STEPS steps. */
            memcpy(ref, init, sizeof ref);
            rule_cfg c = c0;
            for (int s = 0; s < LONG_STEPS; s++, rule_advance_step(&c))
                for (size_t i = 0; i < LN; i++) {
                    float e[MAX_ARR];
                    for (unsigned j = 0; j < ri->narr; j++)
                        e[j] = j == SLOT_GRAD ? gr[i] : ref[j][i];
                    ref_element(&c, e);
                    for (unsigned j = 0; j < ri->narr; j++)
                        if (j != SLOT_GRAD && (rule_used(&c) & (1u << j)))
                            ref[j][i] = e[j];
                }
            for (int k = 0; k < nisas; k++) {
                CHECK(rmsfuse_set_isa(isas[k]) == RMSFUSE_OK, "rmsfuse_set_isa(\"%s\") failed", isas[k]);
                const size_t off = (q + 7u * (size_t)k + 3u * (size_t)fl) % PAD;
                for (unsigned j = 0; j < ri->narr; j++) {
                    a[j] = arena[j] + off;
                    if (j == SLOT_GRAD)
                        memcpy(a[j], gr, sizeof gr);
                    else
                        memcpy(a[j], init[j], sizeof init[j]);
                }
                c = c0;
                for (int s = 0; s < LONG_STEPS; s++, rule_advance_step(&c)) {
                    CHECK(rule_step(&c, a, LN) == RMSFUSE_OK, "isa %s, %s: step %d failed", isas[k], conf, s);
                    /* After every step: no subnormal and no -0 stored. */
                    for (unsigned j = 2; fl && j < ri->narr; j++)
                        for (size_t i = 0; (state & (1u << j)) && i < LN; i++)
                            CHECK(!flushable(a[j][i]), "isa %s, %s, step %d: %s[%zu] = %a", isas[k], conf, s,
                                  ri->arr_name[j], i, (double)a[j][i]);
                }
                for (unsigned j = 0; j < ri->narr; j++)
                    for (size_t i = 0; j != SLOT_GRAD && i < LN; i++) {
                        const float got = a[j][i];
                        CHECK(same_float(got, ref[j][i]), "isa %s, %s, after %d steps: %s[%zu] = %a, docs/math.md "
                              "gives %a", isas[k], conf, LONG_STEPS, ri->arr_name[j], i, (double)got,
                              (double)ref[j][i]);
                        if (!(state & decaying_slots(rule) & (1u << j)))
                            continue;
                        if (fl)
                            CHECK(f2u(got) == 0u, "isa %s, %s: %s[%zu] = %a after %d zero gradients, +0 expected",
                                  isas[k], conf, ri->arr_name[j], i, (double)got, LONG_STEPS);
                        else
                            CHECK(is_subnormal(got), "isa %s, %s: %s[%zu] = %a after %d zero gradients, a "
                                  "non-zero subnormal expected", isas[k], conf, ri->arr_name[j], i, (double)got,
                                  LONG_STEPS);
                    }
                /* What does not decay: AdaGrad's sum, Adam's maximum. */
                for (unsigned j = 2; j < ri->narr; j++)
                    for (size_t i = 0; (state & ~decaying_slots(rule) & (1u << j)) && i < LN; i++)
                        CHECK(f2u(a[j][i]) == f2u(init[j][i]), "isa %s, %s: %s[%zu] = %a, was %a", isas[k], conf,
                              ri->arr_name[j], i, (double)a[j][i], (double)init[j][i]);
            }
        }
    }
    CHECK(rmsfuse_set_isa(entry_isa) == RMSFUSE_OK, "restoring the ISA failed");
    leave();
}
END_TEST

/* ===========================================================================
 * Head, prefetching vector loop, vector loop and tail flush alike
 * ======================================================================== */

enum { KINDS = 7 }; /* element kinds, repeating (7: prime to every vector width) */

/* Element kind k of rule `rule`: p, g and the state. */
static void kind_inputs(int rule, unsigned k, float *e)
{
    const rule_info *ri = &rule_infos[rule];
    e[SLOT_PARAM] = 1.0f + 0.125f * (float)k;
    e[SLOT_GRAD] = 0.0f;
    for (unsigned j = 2; j < ri->narr; j++) {
        const int sq = ri->kind[j] == AK_SQ;
        float s;
        switch (k) {
        case 0: s = sq ? 0x1p-135f : -0x1p-135f; break;  /* a loaded subnormal */
        case 1: s = sq ? 0x1.4p-126f : -0x1.4p-126f; break; /* 1.25 FLT_MIN, times 0.5 below FLT_MIN */
        case 2: s = -0.0f, e[SLOT_GRAD] = -0.0f; break;     /* -0 */
        case 3: s = u2f(0x7fc00000u); break;                /* NaN */
        case 4: s = sq ? INFINITY : -INFINITY; break;
        case 5: s = 0.5f, e[SLOT_GRAD] = 0.25f; break;      /* ordinary */
        default: s = 0.0f, e[SLOT_GRAD] = 0x1p-70f; break; /* +0 and a gradient whose square is subnormal */
        }
        e[j] = s;
    }
}

START_TEST(test_regions)
{
    enter();
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    /* The fullest form of each rule (every array, momentum), decays 0.5. */
    static const combo full[N_RULES] = {
        {RMSFUSE_CENTERED, TOG_MOM}, {0u, 0u}, {RMSFUSE_NESTEROV, TOG_MOM}, {RMSFUSE_AMSGRAD, 0u}};
    const knobs kn = {0.01, 0.5, 0.5, 0.5, 1e-8, 0.0, 0.0, 0.0, 1};
    /* From 65536 elements the vector loops prefetch (src/isa/kernels.c),
     * until 512 elements before the end of the vector part. */
    const size_t n = 65536 + 600 + 3 * (size_t)rule + 1, off = 3;
    float *buf[MAX_ARR] = {NULL}, *a[MAX_ARR] = {NULL};
    float want[KINDS][MAX_ARR];
    for (unsigned j = 0; j < ri->narr; j++) {
        buf[j] = aligned_alloc(64, ((n + PAD) * sizeof(float) + 63) / 64 * 64);
        ck_assert_ptr_nonnull(buf[j]);
        a[j] = buf[j] + off;
    }
    const char *isas[16];
    const int nisas = isas_to_test(isas, 16);
    unsigned zeroed = 0;
    for (int fl = test_quick_mode() ? 1 : 0; fl < 2; fl++) {
        const rule_cfg c = with_flag(make_config(rule, full[rule], &kn), fl);
        char conf[256];
        rule_describe(&c, conf, sizeof conf);
        for (unsigned k = 0; k < KINDS; k++) {
            kind_inputs(rule, k, want[k]);
            ref_element(&c, want[k]);
        }
        for (int q = 0; q < nisas; q++) {
            CHECK(rmsfuse_set_isa(isas[q]) == RMSFUSE_OK, "rmsfuse_set_isa(\"%s\") failed", isas[q]);
            for (size_t i = 0; i < n; i++) {
                float e[MAX_ARR];
                kind_inputs(rule, (unsigned)(i % KINDS), e);
                for (unsigned j = 0; j < ri->narr; j++)
                    a[j][i] = e[j];
            }
            CHECK(rule_step(&c, a, n) == RMSFUSE_OK, "isa %s, %s: step failed", isas[q], conf);
            for (size_t i = 0; i < n; i++)
                for (unsigned j = 0; j < ri->narr; j++)
                    if (j != SLOT_GRAD)
                        CHECK(same_float(a[j][i], want[i % KINDS][j]),
                              "isa %s, %s, n %zu: %s[%zu] (kind %zu) = %a (%#010x), docs/math.md gives %a (%#010x)",
                              isas[q], conf, n, ri->arr_name[j], i, i % KINDS, (double)a[j][i],
                              (unsigned)f2u(a[j][i]), (double)want[i % KINDS][j],
                              (unsigned)f2u(want[i % KINDS][j]));
        }
        /* The kinds that must flush did, in every element. */
        for (unsigned k = 0; fl && k < 3; k++)
            for (unsigned j = 2; j < ri->narr; j++)
                if (state_slots(&c) & decaying_slots(rule) & (1u << j)) {
                    CHECK(f2u(want[k][j]) == 0u, "%s kind %u: %s = %a with the flag", ri->name, k, ri->arr_name[j],
                          (double)want[k][j]);
                    zeroed++;
                }
    }
    CHECK(rmsfuse_set_isa(entry_isa) == RMSFUSE_OK, "restoring the ISA failed");
    if (rule != RULE_ADAGRAD)
        CHECK(zeroed > 0, "%s: nothing flushed", ri->name);
    else /* AdaGrad's sum: 0 + (2^-70)^2 = 2^-140, flushed (kind 6; want[] is the flag's) */
        CHECK(f2u(want[6][2]) == 0u, "AdaGrad: sum %a with the flag", (double)want[6][2]);
    for (unsigned j = 0; j < ri->narr; j++)
        free(buf[j]);
    leave();
}
END_TEST

/* The reference itself: docs/math.md's flush and a hand-checked step of
 * each rule (guards against a vacuous reference). */
START_TEST(test_reference)
{
    ck_assert_uint_eq(f2u(flush(-0.0f)), 0u);
    ck_assert_uint_eq(f2u(flush(0x1p-149f)), 0u);
    ck_assert_uint_eq(f2u(flush(-0x1.fffffcp-127f)), 0u);
    ck_assert_uint_eq(f2u(flush(FLT_MIN)), f2u(FLT_MIN));
    ck_assert_uint_eq(f2u(flush(-FLT_MIN)), f2u(-FLT_MIN));
    ck_assert(isnan(flush(NAN)));
    ck_assert(flush(-INFINITY) == -INFINITY);
    /* RMSProp, alpha 0.5, eps 1 outside, lr 1: v = 4 * 0.5 + (0.5 * 2) * 2 =
     * 4, d = 2 + 1 = 3, p = 1 + (-1 * 2) / 3. */
    rule_cfg c;
    memset(&c, 0, sizeof c);
    c.rule = RULE_RMSPROP;
    c.u.rmsprop = (rmsfuse_rmsprop_config){1.0, 0.5, 1.0, 0.0, 0.0, FLUSH};
    float e[MAX_ARR] = {1.0f, 2.0f, 4.0f, 0.0f, 0.0f};
    ref_element(&c, e);
    ck_assert(e[2] == 4.0f && e[0] == 1.0f + -2.0f / 3.0f);
    /* ... and v = 2^-130 * 0.5 with a zero gradient: 2^-131 without the
     * flag, +0 with it. */
    float z[MAX_ARR] = {1.0f, 0.0f, 0x1p-130f, 0.0f, 0.0f};
    ref_element(&c, z);
    ck_assert_uint_eq(f2u(z[2]), 0u);
    c.u.rmsprop.flags = 0;
    float y[MAX_ARR] = {1.0f, 0.0f, 0x1p-130f, 0.0f, 0.0f};
    ref_element(&c, y);
    ck_assert_uint_eq(f2u(y[2]), f2u(0x1p-131f));
}
END_TEST

static Suite *flush_suite(void)
{
    Suite *s = suite_create("flush");
    TCase *tc = tcase_create("flush");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_reference);
    tcase_add_loop_test(tc, test_pushed_below, 0, N_RULES);
    tcase_add_loop_test(tc, test_loaded, 0, N_RULES);
    tcase_add_loop_test(tc, test_nan_inf, 0, N_RULES);
    tcase_add_loop_test(tc, test_downstream, 0, N_RULES);
    tcase_add_loop_test(tc, test_never_flushed, 0, N_RULES);
    tcase_add_test(tc, test_never_flushed_exact);
    tcase_add_loop_test(tc, test_long_zero_run, 0, N_RULES);
    tcase_add_loop_test(tc, test_regions, 0, N_RULES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return rmsfuse_test_run(flush_suite());
}

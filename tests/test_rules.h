/*
 * Rule adapters for the tests: every update rule behind one interface, so
 * that a test is written once and runs on every rule, through the public
 * API only.
 *
 *   rule_infos[rule]      name, arrays (names, what they hold, the status
 *                         when one is NULL), accepted flags, and the number
 *                         of kernel loops docs/math.md gives the rule
 *                         (docs/dispatch.md: 186 in all, half of them the
 *                         RMSFUSE_FLUSH_SUBNORMAL variants)
 *   rule_cfg              a configuration of any rule (a union of the four
 *                         config structs); as_null passes a NULL config
 *   rule_tensor           a tensor of any rule: its arrays by slot (param,
 *                         grad, then the rule's state in its header's order)
 *   rule_step, rule_check, rule_step_multi, rule_check_multi,
 *   rule_check_config, rule_plan, rule_step_ex, rule_grad_sumsq
 *                         thin wrappers over rmsfuse_<rule>_*
 *   rule_used             the arrays a configuration reads or writes
 *                         (docs/math.md), as a mask of slots
 *   rule_ncombos, rule_combo, rule_config
 *                         the configurations to test: every subset of the
 *                         rule's flags crossed with zero / non-zero
 *                         weight_decay (and momentum, and for SGD
 *                         dampening), less the combinations docs/math.md
 *                         refuses, each with any of the rule's
 *                         hyperparameter sets (rule_nhypers)
 *   rule_loop             which of the rule's specialised kernel loops a
 *                         combination runs, derived from docs/math.md (what
 *                         changes the operations, not only the constants;
 *                         FLUSH_SUBNORMAL adds operations, so its loops are
 *                         distinct): the coverage key for sampling
 *   combo_flush           whether a combination sets FLUSH_SUBNORMAL (the
 *                         quick runs split some work between a loop and its
 *                         flush twin, which differ only by the flush)
 *   rule_sample           every combination, or one random combination per
 *                         kernel loop (so every loop is still run)
 *
 * Needs test_common.h.
 */
#ifndef RMSFUSE_TEST_RULES_H
#define RMSFUSE_TEST_RULES_H

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "test_common.h"

enum { RULE_RMSPROP, RULE_ADAGRAD, RULE_SGD, RULE_ADAM, N_RULES };
enum { MAX_ARR = 5 };                /* most arrays of a tensor (RMSProp, Adam) */
enum { SLOT_PARAM = 0, SLOT_GRAD = 1 }; /* in every rule */

/* What an array holds, for values a real step sees. */
typedef enum arr_kind {
    AK_PARAM,  /* parameters: [-2, 2) */
    AK_GRAD,   /* gradients: [-1, 1) times a scale */
    AK_SQ,     /* averages or sums of squares: [0, 1) */
    AK_MOM,    /* momentum buffers: [-0.1, 0.1) */
    AK_AVG     /* running means of the gradient: [-0.5, 0.5) */
} arr_kind;

/* The zero / non-zero hyperparameters that change what a step does. */
enum { TOG_WD = 1, TOG_MOM = 2, TOG_DAMP = 4 };

typedef struct rule_info {
    const char *name;
    unsigned narr;
    const char *arr_name[MAX_ARR];
    arr_kind kind[MAX_ARR];
    int null_status[MAX_ARR]; /* the status when a used array is NULL (n > 0) */
    unsigned flags;           /* RMSFUSE_<RULE>_FLAGS */
    unsigned toggles;         /* TOG_* this rule has */
    unsigned nloops;          /* distinct kernel loops (docs/math.md; see rule_loop): twice the
                                 exact IEEE ones, each also with FLUSH_SUBNORMAL */
} rule_info;

static const rule_info rule_infos[N_RULES] = {
    {"rmsprop",
     5,
     {"param", "grad", "square_avg", "momentum_buf", "grad_avg"},
     {AK_PARAM, AK_GRAD, AK_SQ, AK_MOM, AK_AVG},
     {RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_MOMENTUM_BUF,
      RMSFUSE_E_NULL_GRAD_AVG},
     RMSFUSE_RMSPROP_FLAGS,
     TOG_WD | TOG_MOM,
     120},
    {"adagrad",
     3,
     {"param", "grad", "sum", NULL, NULL},
     {AK_PARAM, AK_GRAD, AK_SQ, AK_SQ, AK_SQ},
     {RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, 0, 0},
     RMSFUSE_ADAGRAD_FLAGS,
     TOG_WD,
     12},
    {"sgd",
     3,
     {"param", "grad", "momentum_buf", NULL, NULL},
     {AK_PARAM, AK_GRAD, AK_MOM, AK_SQ, AK_SQ},
     {RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_MOMENTUM_BUF, 0, 0},
     RMSFUSE_SGD_FLAGS,
     TOG_WD | TOG_MOM | TOG_DAMP,
     42},
    {"adam",
     5,
     {"param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
     {AK_PARAM, AK_GRAD, AK_AVG, AK_SQ, AK_SQ},
     {RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY,
      RMSFUSE_E_NULL_ARRAY},
     RMSFUSE_ADAM_FLAGS,
     TOG_WD,
     12},
};

/* ---- configurations -------------------------------------------------------- */

typedef struct rule_cfg {
    int rule;
    int as_null; /* pass a NULL configuration pointer */
    union {
        rmsfuse_rmsprop_config rmsprop;
        rmsfuse_adagrad_config adagrad;
        rmsfuse_sgd_config sgd;
        rmsfuse_adam_config adam;
    } u;
} rule_cfg;

/* Hyperparameter sets.  Each field applies where the rule has it; weight
 * decay, momentum and dampening only when the combination turns them on
 * (they are 0 otherwise), so every set has them non-zero.  wd is the
 * coupled weight decay, wdd the decoupled one (lr * wdd must fit a float:
 * dk = 1 - lr * wdd). */
typedef struct hyper_rmsprop {
    double lr, alpha, eps, wd, wdd, mom;
    const char *what;
} hyper_rmsprop;

static const hyper_rmsprop hypers_rmsprop[] = {
    {0.01, 0.99, 1e-8, 1e-2, 1e-2, 0.9, "torch-like"},
    {1.0, 0.0, 0.0, 0.5, 1.0, 0.5, "alpha 0, eps 0, decoupled dk = 0"},
    {1e-3, 1.0, 1e-7, 1e-4, 1e-4, 0.99, "alpha 1"},
    {3.0e38, 0.9, 1e-30, 1e30, 1e-30, 0.999999, "huge lr and wd"},
    {1e-40, 0.1, 1e-45, 1e-38, 1e-38, 1e-7, "subnormal lr and eps"},
    {0.1, 0.5, 1e-3, 3.0, 3.0, 0.3, "mid"},
    {0.7, 0.123456789, 0.0, 0.25, 2.5, 0.875, "inexact alpha, eps 0, decoupled dk < 0"},
};

typedef struct hyper_adagrad {
    double lr, lr_decay, eps, wd, wdd;
    long long step;
    const char *what;
} hyper_adagrad;

static const hyper_adagrad hypers_adagrad[] = {
    {0.01, 0.0, 1e-10, 1e-2, 1e-2, 1, "torch-like"},
    {1.0, 0.5, 0.0, 0.5, 1.0, 3, "eps 0, lr_decay, step 3, dk = 0.5"},
    {3.0e38, 0.0, 1e-30, 1e30, 1e-30, 1, "huge lr and wd"},
    {1e-40, 1e-3, 1e-45, 1e-38, 1e-38, 1000000, "subnormal lr and eps, step 1e6"},
    {0.1, 1e6, 1e-3, 3.0, 3.0, 2, "heavy lr_decay"},
    {0.7, 0.123456789, 0.0, 0.25, 2.5, 17, "inexact lr_decay, eps 0, step 17, dk < 0"},
};

typedef struct hyper_sgd {
    double lr, mom, damp, wd, wdd;
    const char *what;
} hyper_sgd;

static const hyper_sgd hypers_sgd[] = {
    {0.01, 0.9, 0.1, 1e-4, 1e-4, "torch-like"},
    {1.0, 1.5, 0.5, 0.5, 1.0, "momentum 1.5, dk = 0"},
    {3.0e38, 0.999999, 1.0, 1e30, 1e-30, "huge lr and wd, dampening 1"},
    {1e-40, 1e-7, 1e-7, 1e-38, 1e-38, "subnormal"},
    {0.1, 10.0, 0.25, 3.0, 3.0, "momentum 10"},
    {0.7, 0.875, 0.123456789, 0.25, 2.5, "inexact dampening, dk < 0"},
    {2.0, 1e30, 0.75, 1.0, 0.25, "momentum 1e30"},
};

typedef struct hyper_adam {
    double lr, beta1, beta2, eps, wd, wdd;
    long long step;
    const char *what;
} hyper_adam;

static const hyper_adam hypers_adam[] = {
    {1e-3, 0.9, 0.999, 1e-8, 1e-2, 1e-2, 1, "torch-like"},
    {1.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1, "betas 0, eps 0, dk = 0"},
    {1e-3, 0.99, 0.9999, 1e-7, 1e-4, 1e-4, 1000, "step 1000"},
    {1e38, 0.9, 0.999, 1e-30, 1e30, 1e-30, 1, "huge lr and wd"},
    {1e-40, 0.5, 0.75, 1e-45, 1e-38, 1e-38, 3, "subnormal lr and eps"},
    {0.1, 0.999999, 0.999999, 1e-3, 3.0, 3.0, 2, "betas near 1"},
    {0.7, 0.123456789, 0.987654321, 0.0, 0.25, 2.5, 17, "inexact betas, eps 0, step 17, dk < 0"},
    {1e-3, 0.9, 0.999, 1e-8, 1e-2, 1e-2, 1LL << 62, "step 2^62"},
};

#define RULE_ARRAY_LEN_(a) ((int)(sizeof(a) / sizeof((a)[0])))

static inline int rule_nhypers(int rule)
{
    switch (rule) {
    case RULE_RMSPROP: return RULE_ARRAY_LEN_(hypers_rmsprop);
    case RULE_ADAGRAD: return RULE_ARRAY_LEN_(hypers_adagrad);
    case RULE_SGD: return RULE_ARRAY_LEN_(hypers_sgd);
    default: return RULE_ARRAY_LEN_(hypers_adam);
    }
}

static inline const char *rule_hyper_name(int rule, int hp)
{
    switch (rule) {
    case RULE_RMSPROP: return hypers_rmsprop[hp].what;
    case RULE_ADAGRAD: return hypers_adagrad[hp].what;
    case RULE_SGD: return hypers_sgd[hp].what;
    default: return hypers_adam[hp].what;
    }
}

/* A combination: flags and which of weight decay, momentum, dampening are
 * non-zero. */
typedef struct combo {
    unsigned flags;
    unsigned tog; /* TOG_* */
} combo;

/* Whether docs/math.md accepts the combination (with valid values). */
static inline int rule_combo_valid(int rule, combo c)
{
    const unsigned f = c.flags;
    const int mom = (c.tog & TOG_MOM) != 0, damp = (c.tog & TOG_DAMP) != 0;
    switch (rule) {
    case RULE_RMSPROP: /* NESTEROV needs momentum > 0 */
        return !(f & RMSFUSE_NESTEROV) || mom;
    case RULE_SGD: /* NESTEROV: momentum > 0 and dampening 0; LR_IN_MOMENTUM: dampening 0, no INIT_MOMENTUM */
        if ((f & RMSFUSE_NESTEROV) && (!mom || damp))
            return 0;
        if ((f & RMSFUSE_LR_IN_MOMENTUM) && (damp || (f & RMSFUSE_INIT_MOMENTUM)))
            return 0;
        return 1;
    default:
        return 1;
    }
}

/* Whether a combination sets RMSFUSE_FLUSH_SUBNORMAL. */
static inline int combo_flush(combo c)
{
    return (c.flags & RMSFUSE_FLUSH_SUBNORMAL) != 0;
}

/* The kernel loop a combination runs, 0 .. rule_infos[rule].nloops - 1:
 * what docs/math.md says changes the operations.  MAXIMIZE (a sign),
 * EPS_HAT (a constant) and the flags that change nothing without momentum
 * or weight decay do not change the loop.  FLUSH_SUBNORMAL does (docs/math.md,
 * "Subnormal-safe state": a flush of each state value as it is computed),
 * in every loop: loops 0 .. nloops/2 - 1 are the exact IEEE ones, and the
 * loop with the flag is its exact twin + nloops/2.  (SGD without momentum
 * has no state to flush, but the library still compiles a loop of its own
 * for the flag, docs/dispatch.md's count, so it is one here too.) */
static inline unsigned rule_loop(int rule, combo c)
{
    const unsigned f = c.flags;
    const unsigned wd = (c.tog & TOG_WD) ? ((f & RMSFUSE_DECOUPLED_DECAY) ? 2u : 1u) : 0u;
    const int mom = (c.tog & TOG_MOM) != 0;
    unsigned exact;
    switch (rule) {
    case RULE_RMSPROP: {
        const unsigned m =
            mom ? 1u + ((f & RMSFUSE_LR_IN_MOMENTUM) ? 1u : 0u) + ((f & RMSFUSE_NESTEROV) ? 2u : 0u) : 0u;
        exact = ((f & RMSFUSE_CENTERED) ? 1u : 0u) + ((f & RMSFUSE_EPS_IN_SQRT) ? 2u : 0u) + 4u * m + 20u * wd;
        break;
    }
    case RULE_ADAGRAD:
        exact = ((f & RMSFUSE_EPS_IN_SQRT) ? 1u : 0u) + 2u * wd;
        break;
    case RULE_SGD: {
        unsigned m = 0;
        if (mom && !(f & RMSFUSE_LR_IN_MOMENTUM))
            m = 1u + ((f & RMSFUSE_NESTEROV) ? 1u : 0u) + ((f & RMSFUSE_INIT_MOMENTUM) ? 2u : 0u);
        else if (mom)
            m = 5u + ((f & RMSFUSE_NESTEROV) ? 1u : 0u);
        exact = m + 7u * wd;
        break;
    }
    default:
        exact = ((f & RMSFUSE_AMSGRAD) ? 1u : 0u) + 2u * wd;
        break;
    }
    return exact + (combo_flush(c) ? rule_infos[rule].nloops / 2u : 0u);
}

enum { MAX_COMBOS = 512 };
typedef struct combo_table {
    int ready;
    unsigned count[N_RULES];
    combo c[N_RULES][MAX_COMBOS];
} combo_table;
static combo_table rule_combo_table_;

/* Every subset of the rule's flags crossed with its toggles, in the order
 * of the bits (flags low), less what docs/math.md refuses.  Built on first
 * use (call it once from the main thread before starting threads). */
static inline void rule_combos_init(void)
{
    if (rule_combo_table_.ready)
        return;
    for (int r = 0; r < N_RULES; r++) {
        const rule_info *ri = &rule_infos[r];
        unsigned fbits[32], nf = 0, tbits[3], nt = 0;
        for (unsigned b = 0; b < 32; b++)
            if (ri->flags & (1u << b))
                fbits[nf++] = 1u << b;
        for (unsigned b = 0; b < 3; b++)
            if (ri->toggles & (1u << b))
                tbits[nt++] = 1u << b;
        unsigned k = 0;
        for (unsigned x = 0; x < (1u << (nf + nt)); x++) {
            combo c = {0, 0};
            for (unsigned b = 0; b < nf; b++)
                if (x & (1u << b))
                    c.flags |= fbits[b];
            for (unsigned b = 0; b < nt; b++)
                if (x & (1u << (nf + b)))
                    c.tog |= tbits[b];
            if (rule_combo_valid(r, c)) {
                REQUIRE_MSG(k < MAX_COMBOS, "%s: more than %d combinations", ri->name, (int)MAX_COMBOS);
                rule_combo_table_.c[r][k++] = c;
            }
        }
        rule_combo_table_.count[r] = k;
    }
    rule_combo_table_.ready = 1;
}

static inline unsigned rule_ncombos(int rule)
{
    rule_combos_init();
    return rule_combo_table_.count[rule];
}

static inline combo rule_combo(int rule, unsigned k)
{
    rule_combos_init();
    return rule_combo_table_.c[rule][k];
}

/* The configuration of combination c with hyperparameter set hp. */
static inline rule_cfg rule_config(int rule, combo c, int hp)
{
    rule_cfg x;
    memset(&x, 0, sizeof x);
    x.rule = rule;
    const int wd = (c.tog & TOG_WD) != 0, mom = (c.tog & TOG_MOM) != 0, damp = (c.tog & TOG_DAMP) != 0;
    const int dec = (c.flags & RMSFUSE_DECOUPLED_DECAY) != 0;
    switch (rule) {
    case RULE_RMSPROP: {
        const hyper_rmsprop *h = &hypers_rmsprop[hp];
        rmsfuse_rmsprop_config k = {h->lr, h->alpha, h->eps, wd ? (dec ? h->wdd : h->wd) : 0.0, mom ? h->mom : 0.0,
                                    c.flags};
        x.u.rmsprop = k;
        break;
    }
    case RULE_ADAGRAD: {
        const hyper_adagrad *h = &hypers_adagrad[hp];
        rmsfuse_adagrad_config k = {h->lr, h->lr_decay, wd ? (dec ? h->wdd : h->wd) : 0.0, h->eps, h->step, c.flags};
        x.u.adagrad = k;
        break;
    }
    case RULE_SGD: {
        const hyper_sgd *h = &hypers_sgd[hp];
        rmsfuse_sgd_config k = {h->lr, mom ? h->mom : 0.0, damp ? h->damp : 0.0, wd ? (dec ? h->wdd : h->wd) : 0.0,
                                c.flags};
        x.u.sgd = k;
        break;
    }
    default: {
        const hyper_adam *h = &hypers_adam[hp];
        rmsfuse_adam_config k = {h->lr, h->beta1, h->beta2, h->eps, wd ? (dec ? h->wdd : h->wd) : 0.0, h->step,
                                 c.flags};
        x.u.adam = k;
        break;
    }
    }
    return x;
}

/* Every combination (full), or one random combination per kernel loop, in
 * the order of the loops (the exact IEEE ones, then their flush twins):
 * fills out[] with combination indices, returns how many. */
static inline unsigned rule_sample(int rule, int full, test_rng *r, unsigned *out)
{
    const unsigned nc = rule_ncombos(rule);
    unsigned k = 0;
    if (full) {
        for (unsigned i = 0; i < nc; i++)
            out[k++] = i;
        return k;
    }
    unsigned loop_of[MAX_COMBOS];
    for (unsigned i = 0; i < nc; i++)
        loop_of[i] = rule_loop(rule, rule_combo(rule, i));
    for (unsigned loop = 0; loop < rule_infos[rule].nloops; loop++) {
        unsigned with[MAX_COMBOS], m = 0;
        for (unsigned i = 0; i < nc; i++)
            if (loop_of[i] == loop)
                with[m++] = i;
        REQUIRE_MSG(m > 0, "%s: no combination runs kernel loop %u", rule_infos[rule].name, loop);
        out[k++] = with[rng_next(r) % m];
    }
    return k;
}

/* One line describing a configuration (for failure messages). */
static inline void rule_describe(const rule_cfg *c, char *buf, size_t len)
{
    if (c->as_null) {
        snprintf(buf, len, "%s (NULL config)", rule_infos[c->rule].name);
        return;
    }
    switch (c->rule) {
    case RULE_RMSPROP: {
        const rmsfuse_rmsprop_config *k = &c->u.rmsprop;
        snprintf(buf, len, "rmsprop {lr %a, alpha %a, eps %a, weight_decay %a, momentum %a, flags %#x}", k->lr,
                 k->alpha, k->eps, k->weight_decay, k->momentum, k->flags);
        break;
    }
    case RULE_ADAGRAD: {
        const rmsfuse_adagrad_config *k = &c->u.adagrad;
        snprintf(buf, len, "adagrad {lr %a, lr_decay %a, weight_decay %a, eps %a, step %lld, flags %#x}", k->lr,
                 k->lr_decay, k->weight_decay, k->eps, k->step, k->flags);
        break;
    }
    case RULE_SGD: {
        const rmsfuse_sgd_config *k = &c->u.sgd;
        snprintf(buf, len, "sgd {lr %a, momentum %a, dampening %a, weight_decay %a, flags %#x}", k->lr, k->momentum,
                 k->dampening, k->weight_decay, k->flags);
        break;
    }
    default: {
        const rmsfuse_adam_config *k = &c->u.adam;
        snprintf(buf, len, "adam {lr %a, beta1 %a, beta2 %a, eps %a, weight_decay %a, step %lld, flags %#x}", k->lr,
                 k->beta1, k->beta2, k->eps, k->weight_decay, k->step, k->flags);
        break;
    }
    }
}

/* The flags field of any rule's configuration. */
static inline unsigned *rule_flags(rule_cfg *c)
{
    switch (c->rule) {
    case RULE_RMSPROP: return &c->u.rmsprop.flags;
    case RULE_ADAGRAD: return &c->u.adagrad.flags;
    case RULE_SGD: return &c->u.sgd.flags;
    default: return &c->u.adam.flags;
    }
}

/* The lr field of any rule's configuration. */
static inline double *rule_lr(rule_cfg *c)
{
    switch (c->rule) {
    case RULE_RMSPROP: return &c->u.rmsprop.lr;
    case RULE_ADAGRAD: return &c->u.adagrad.lr;
    case RULE_SGD: return &c->u.sgd.lr;
    default: return &c->u.adam.lr;
    }
}

/* The arrays a configuration reads or writes (docs/math.md), as slot bits. */
static inline unsigned rule_used(const rule_cfg *c)
{
    const unsigned pg = 1u << SLOT_PARAM | 1u << SLOT_GRAD;
    switch (c->rule) {
    case RULE_RMSPROP:
        return pg | 1u << 2 | (c->u.rmsprop.momentum != 0.0 ? 1u << 3 : 0u) |
               ((c->u.rmsprop.flags & RMSFUSE_CENTERED) ? 1u << 4 : 0u);
    case RULE_ADAGRAD:
        return pg | 1u << 2;
    case RULE_SGD:
        return pg | (c->u.sgd.momentum != 0.0 ? 1u << 2 : 0u);
    default:
        return pg | 1u << 2 | 1u << 3 | ((c->u.adam.flags & RMSFUSE_AMSGRAD) ? 1u << 4 : 0u);
    }
}

/* A valid configuration that uses every array of the rule (momentum,
 * CENTERED, AMSGRAD; coupled weight decay), with plain values. */
static inline rule_cfg rule_full_config(int rule)
{
    rule_cfg x;
    memset(&x, 0, sizeof x);
    x.rule = rule;
    switch (rule) {
    case RULE_RMSPROP: {
        rmsfuse_rmsprop_config k = {0.01, 0.9, 1e-6, 0.01, 0.9, RMSFUSE_CENTERED};
        x.u.rmsprop = k;
        break;
    }
    case RULE_ADAGRAD: {
        rmsfuse_adagrad_config k = {0.01, 0.001, 0.01, 1e-6, 2, 0u};
        x.u.adagrad = k;
        break;
    }
    case RULE_SGD: {
        rmsfuse_sgd_config k = {0.01, 0.9, 0.1, 0.01, 0u};
        x.u.sgd = k;
        break;
    }
    default: {
        rmsfuse_adam_config k = {0.001, 0.9, 0.999, 1e-8, 0.01, 2, RMSFUSE_AMSGRAD};
        x.u.adam = k;
        break;
    }
    }
    return x;
}

/* The next step of the same run: AdaGrad's and Adam's step number + 1
 * (the other rules have none). */
static inline void rule_advance_step(rule_cfg *c)
{
    if (c->rule == RULE_ADAGRAD)
        c->u.adagrad.step++;
    else if (c->rule == RULE_ADAM)
        c->u.adam.step++;
}

/* ---- the public API, for any rule -------------------------------------- */

typedef struct rule_tensor {
    float *a[MAX_ARR]; /* by slot; slots beyond the rule's arrays are ignored */
    size_t n;
} rule_tensor;

#define RULE_CFG_(c, r) ((c)->as_null ? NULL : &(c)->u.r)

static inline int rule_step(const rule_cfg *c, float *const *a, size_t n)
{
    switch (c->rule) {
    case RULE_RMSPROP: return rmsfuse_rmsprop_step(RULE_CFG_(c, rmsprop), a[0], a[1], a[2], a[3], a[4], n);
    case RULE_ADAGRAD: return rmsfuse_adagrad_step(RULE_CFG_(c, adagrad), a[0], a[1], a[2], n);
    case RULE_SGD: return rmsfuse_sgd_step(RULE_CFG_(c, sgd), a[0], a[1], a[2], n);
    default: return rmsfuse_adam_step(RULE_CFG_(c, adam), a[0], a[1], a[2], a[3], a[4], n);
    }
}

static inline int rule_check(const rule_cfg *c, float *const *a, size_t n)
{
    switch (c->rule) {
    case RULE_RMSPROP: return rmsfuse_rmsprop_check(RULE_CFG_(c, rmsprop), a[0], a[1], a[2], a[3], a[4], n);
    case RULE_ADAGRAD: return rmsfuse_adagrad_check(RULE_CFG_(c, adagrad), a[0], a[1], a[2], n);
    case RULE_SGD: return rmsfuse_sgd_check(RULE_CFG_(c, sgd), a[0], a[1], a[2], n);
    default: return rmsfuse_adam_check(RULE_CFG_(c, adam), a[0], a[1], a[2], a[3], a[4], n);
    }
}

static inline int rule_check_config(const rule_cfg *c)
{
    switch (c->rule) {
    case RULE_RMSPROP: return rmsfuse_rmsprop_check_config(RULE_CFG_(c, rmsprop));
    case RULE_ADAGRAD: return rmsfuse_adagrad_check_config(RULE_CFG_(c, adagrad));
    case RULE_SGD: return rmsfuse_sgd_check_config(RULE_CFG_(c, sgd));
    default: return rmsfuse_adam_check_config(RULE_CFG_(c, adam));
    }
}

/* The rule's own tensor structs for a list of rule_tensor (NULL for NULL,
 * or when count is 0); free() the result. */
static inline void *rule_api_tensors(int rule, const rule_tensor *t, size_t count)
{
    if (!t || count == 0)
        return NULL;
    size_t size;
    switch (rule) {
    case RULE_RMSPROP: size = sizeof(rmsfuse_tensor); break;
    case RULE_ADAGRAD: size = sizeof(rmsfuse_adagrad_tensor); break;
    case RULE_SGD: size = sizeof(rmsfuse_sgd_tensor); break;
    default: size = sizeof(rmsfuse_adam_tensor); break;
    }
    void *out = malloc(count * size);
    if (!out)
        abort(); /* no Check assertion: this also runs in the tests' threads */
    for (size_t i = 0; i < count; i++) {
        float *const *a = t[i].a;
        const size_t n = t[i].n;
        switch (rule) {
        case RULE_RMSPROP: {
            rmsfuse_tensor x = {a[0], a[1], a[2], a[3], a[4], n};
            ((rmsfuse_tensor *)out)[i] = x;
            break;
        }
        case RULE_ADAGRAD: {
            rmsfuse_adagrad_tensor x = {a[0], a[1], a[2], n};
            ((rmsfuse_adagrad_tensor *)out)[i] = x;
            break;
        }
        case RULE_SGD: {
            rmsfuse_sgd_tensor x = {a[0], a[1], a[2], n};
            ((rmsfuse_sgd_tensor *)out)[i] = x;
            break;
        }
        default: {
            rmsfuse_adam_tensor x = {a[0], a[1], a[2], a[3], a[4], n};
            ((rmsfuse_adam_tensor *)out)[i] = x;
            break;
        }
        }
    }
    return out;
}

/* The list as the library sees it: the rule's own structs, or the pointer
 * itself when there is nothing to convert (NULL, or count 0: the library
 * may not read the list then). */
static inline const void *rule_pass_(const void *api, const rule_tensor *t)
{
    return api ? api : (const void *)t;
}

static inline int rule_step_multi(const rule_cfg *c, const rule_tensor *t, size_t count)
{
    void *api = rule_api_tensors(c->rule, t, count);
    const void *x = rule_pass_(api, t);
    int st;
    switch (c->rule) {
    case RULE_RMSPROP: st = rmsfuse_rmsprop_step_multi(RULE_CFG_(c, rmsprop), x, count); break;
    case RULE_ADAGRAD: st = rmsfuse_adagrad_step_multi(RULE_CFG_(c, adagrad), x, count); break;
    case RULE_SGD: st = rmsfuse_sgd_step_multi(RULE_CFG_(c, sgd), x, count); break;
    default: st = rmsfuse_adam_step_multi(RULE_CFG_(c, adam), x, count); break;
    }
    free(api);
    return st;
}

static inline int rule_check_multi(const rule_cfg *c, const rule_tensor *t, size_t count)
{
    void *api = rule_api_tensors(c->rule, t, count);
    const void *x = rule_pass_(api, t);
    int st;
    switch (c->rule) {
    case RULE_RMSPROP: st = rmsfuse_rmsprop_check_multi(RULE_CFG_(c, rmsprop), x, count); break;
    case RULE_ADAGRAD: st = rmsfuse_adagrad_check_multi(RULE_CFG_(c, adagrad), x, count); break;
    case RULE_SGD: st = rmsfuse_sgd_check_multi(RULE_CFG_(c, sgd), x, count); break;
    default: st = rmsfuse_adam_check_multi(RULE_CFG_(c, adam), x, count); break;
    }
    free(api);
    return st;
}

static inline int rule_step_ex(const rule_cfg *c, const rule_tensor *t, size_t count, const rmsfuse_grad_options *o,
                               rmsfuse_grad_info *info)
{
    void *api = rule_api_tensors(c->rule, t, count);
    const void *x = rule_pass_(api, t);
    int st;
    switch (c->rule) {
    case RULE_RMSPROP: st = rmsfuse_rmsprop_step_ex(RULE_CFG_(c, rmsprop), x, count, o, info); break;
    case RULE_ADAGRAD: st = rmsfuse_adagrad_step_ex(RULE_CFG_(c, adagrad), x, count, o, info); break;
    case RULE_SGD: st = rmsfuse_sgd_step_ex(RULE_CFG_(c, sgd), x, count, o, info); break;
    default: st = rmsfuse_adam_step_ex(RULE_CFG_(c, adam), x, count, o, info); break;
    }
    free(api);
    return st;
}

static inline int rule_grad_sumsq(int rule, const rule_tensor *t, size_t count, double scale, double *sumsq)
{
    void *api = rule_api_tensors(rule, t, count);
    const void *x = rule_pass_(api, t);
    int st;
    switch (rule) {
    case RULE_RMSPROP: st = rmsfuse_rmsprop_grad_sumsq(x, count, scale, sumsq); break;
    case RULE_ADAGRAD: st = rmsfuse_adagrad_grad_sumsq(x, count, scale, sumsq); break;
    case RULE_SGD: st = rmsfuse_sgd_grad_sumsq(x, count, scale, sumsq); break;
    default: st = rmsfuse_adam_grad_sumsq(x, count, scale, sumsq); break;
    }
    free(api);
    return st;
}

/* rmsfuse_<rule>_plan; plan may be NULL (the library's NULL_PLAN case). */
static inline int rule_plan(const rule_cfg *c, const rule_tensor *t, size_t count, rmsfuse_plan **plan)
{
    void *api = rule_api_tensors(c->rule, t, count);
    const void *x = rule_pass_(api, t);
    int st;
    switch (c->rule) {
    case RULE_RMSPROP: st = rmsfuse_rmsprop_plan(RULE_CFG_(c, rmsprop), x, count, plan); break;
    case RULE_ADAGRAD: st = rmsfuse_adagrad_plan(RULE_CFG_(c, adagrad), x, count, plan); break;
    case RULE_SGD: st = rmsfuse_sgd_plan(RULE_CFG_(c, sgd), x, count, plan); break;
    default: st = rmsfuse_adam_plan(RULE_CFG_(c, adam), x, count, plan); break;
    }
    free(api);
    return st;
}

/* One tensor as a one-entry list. */
static inline rule_tensor rule_tensor_of(float *const *a, size_t n)
{
    rule_tensor t;
    for (int j = 0; j < MAX_ARR; j++)
        t.a[j] = a[j];
    t.n = n;
    return t;
}

/* A value array slot j of `rule` holds in a real step. */
static inline float rule_realistic(int rule, unsigned j, test_rng *r, float gscale)
{
    switch (rule_infos[rule].kind[j]) {
    case AK_PARAM: return rng_uniform(r, -2.0f, 2.0f);
    case AK_GRAD: return rng_uniform(r, -1.0f, 1.0f) * gscale;
    case AK_SQ: return rng_uniform(r, 0.0f, 1.0f);
    case AK_MOM: return rng_uniform(r, -0.1f, 0.1f);
    default: return rng_uniform(r, -0.5f, 0.5f);
    }
}

/* ---- which run of a test program this is --------------------------------- */

/* RMSFUSE_TEST_QUICK=1: scaled down for valgrind and qemu. */
static inline int test_quick_mode(void)
{
    const char *q = getenv("RMSFUSE_TEST_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

/* RMSFUSE_TEST_SEED, or a fixed default (so that failures reproduce). */
static inline uint64_t test_base_seed(void)
{
    const char *s = getenv("RMSFUSE_TEST_SEED");
    uint64_t v = (s && *s) ? strtoull(s, NULL, 0) : 0x5eed15a0d1f3ull;
    return v ? v : 1; /* xorshift needs a non-zero state */
}

/* ctest runs each program with detection (run 0) and once per ISA name
 * (RMSFUSE_ISA=<name>: run 1 + its index in rmsfuse_isa_names()); -1 for a
 * name the registry does not have. */
static inline int test_run_index(void)
{
    const char *forced = getenv("RMSFUSE_ISA");
    if (!forced || !*forced || strcmp(forced, "auto") == 0)
        return 0;
    int k = 1;
    for (const char *const *p = rmsfuse_isa_names(); *p; p++, k++)
        if (strcmp(*p, forced) == 0)
            return k;
    return -1;
}

/* A seed that differs from run to run of the same program (and with
 * RMSFUSE_TEST_SEED), for sampling. */
static inline uint64_t test_run_seed(uint64_t salt)
{
    test_rng r = {test_base_seed() ^ (0x9e3779b97f4a7c15ull * (uint64_t)(test_run_index() + 2)) ^ salt};
    for (int k = 0; k < 4; k++)
        rng_next(&r);
    return rng_next(&r) | 1;
}

/* Whether this run tests every combination of every rule: the native run
 * with detection.  The others (each ISA forced, and every run under
 * valgrind or qemu) test one random combination per kernel loop, with a
 * seed of their own. */
static inline int test_full_run(void)
{
    return !test_quick_mode() && test_run_index() == 0;
}

#endif /* RMSFUSE_TEST_RULES_H */

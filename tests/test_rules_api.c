/*
 * Every rule's public API (through the adapters of test_rules.h): every
 * status each rule can return, each from step, check, step_multi,
 * check_multi and plan alike (check_config: the configuration's part),
 * each writing nothing (every byte of every array and the bytes around
 * them compared); the documented presets; plans: their errors, any cut of
 * [0, elements) giving the step_multi bits, rmsfuse_plan_cut's
 * properties, a plan run twice being two steps, a plan keeping the kernel
 * of the ISA it was made under; and what docs/math.md says changes nothing
 * (MAXIMIZE is only the gradient's sign, DECOUPLED_DECAY without weight
 * decay, LR_IN_MOMENTUM and INIT_MOMENTUM without momentum, unused and
 * write-only buffers, AdaGrad's step without lr_decay, FLUSH_SUBNORMAL
 * where no state value falls below FLT_MIN).
 *
 * RMSProp's hand-computed cases are in test_api.c.
 */
#include <float.h>
#include <limits.h>
#include <stdint.h>

#include "test_common.h"
#include "test_rules.h"
#include "test_tensors.h"

/* ------------------------------------------------------------------------
 * Arrays: MAX_ARR arrays of EN floats in one block, GAP floats before,
 * between and after them; a rejected call must leave the whole block as it
 * was.
 * ---------------------------------------------------------------------- */
enum { EN = 64, GAP = 16, BLOCK = GAP + MAX_ARR * (EN + GAP) };

typedef struct arena {
    float buf[BLOCK];
    float copy[BLOCK];
    float *a[MAX_ARR];
} arena;

static arena A;

static void arena_init(arena *x)
{
    static float pristine[BLOCK]; /* the same values every time: made once */
    static int made;
    if (!made) {
        test_rng r = {42};
        for (size_t i = 0; i < BLOCK; i++)
            pristine[i] = rng_uniform(&r, 0.1f, 2.0f);
        made = 1;
    }
    memcpy(x->buf, pristine, sizeof pristine);
    for (int j = 0; j < MAX_ARR; j++)
        x->a[j] = x->buf + GAP + j * (EN + GAP);
    memcpy(x->copy, x->buf, sizeof x->buf);
}

static int arena_unchanged(const arena *x)
{
    return memcmp(x->copy, x->buf, sizeof x->buf) == 0;
}

/* A configuration in words, for a failure message: called only when an
 * assertion fails (REQUIRE_MSG evaluates its arguments then). */
static const char *conf_text(const rule_cfg *c)
{
    static char buf[256];
    rule_describe(c, buf, sizeof buf);
    return buf;
}

/* The statuses about the arrays or the list, not the configuration. */
static int is_array_status(int st)
{
    return st == RMSFUSE_E_NULL_ARRAY || st == RMSFUSE_E_NULL_MOMENTUM_BUF || st == RMSFUSE_E_NULL_GRAD_AVG ||
           st == RMSFUSE_E_OVERLAP || st == RMSFUSE_E_SIZE || st == RMSFUSE_E_NULL_LIST;
}

/*
 * The call (c, a[], n) must give `status` from step, check, step_multi and
 * check_multi of a one-tensor list, and plan (with *plan NULL after an
 * error); check_config gives the configuration's part of it.  Calls that
 * fail, and every check, write nothing: the arena is compared after each.
 * The arena must be initialised and a[] point into it (or anywhere, for
 * calls that must fail before touching memory).
 */
static void expect_status_at(int line, const rule_cfg *c, float *const *a, size_t n, int status, const char *what)
{
#define EXPECT_(call, name)                                                                                       \
    do {                                                                                                          \
        memcpy(A.copy, A.buf, sizeof A.buf);                                                                      \
        const int st_ = (call);                                                                                   \
        REQUIRE_MSG(st_ == status, "line %d, %s, %s: %s gave %d (%s), expected %d (%s)", line, conf_text(c), what, \
                    name, st_, rmsfuse_status_name(st_), status, rmsfuse_status_name(status));                     \
    } while (0)
#define UNCHANGED_(name)                                                                                            \
    REQUIRE_MSG(arena_unchanged(&A), "line %d, %s, %s: %s returned %d but wrote to the arrays", line,             \
                conf_text(c), what, name, status)

    const rule_tensor t = rule_tensor_of(a, n);
    EXPECT_(rule_check(c, a, n), "check");
    UNCHANGED_("check");
    EXPECT_(rule_check_multi(c, &t, 1), "check_multi");
    UNCHANGED_("check_multi");
    rmsfuse_plan *plan = (rmsfuse_plan *)&A; /* must become NULL on error */
    EXPECT_(rule_plan(c, &t, 1, &plan), "plan");
    UNCHANGED_("plan");
    if (status != RMSFUSE_OK)
        REQUIRE_MSG(plan == NULL, "line %d, %s, %s: plan failed but left *plan set", line, conf_text(c), what);
    else
        REQUIRE_MSG(rmsfuse_plan_elements(plan) == n, "line %d, %s, %s: a plan of %zu elements", line,
                    conf_text(c), what, rmsfuse_plan_elements(plan));
    rmsfuse_plan_free(plan);
    const int cfg_status = is_array_status(status) ? RMSFUSE_OK : status;
    REQUIRE_MSG(rule_check_config(c) == cfg_status, "line %d, %s, %s: check_config gave %d, expected %d", line,
                conf_text(c), what, rule_check_config(c), cfg_status);
    if (status == RMSFUSE_OK) /* the steps run: nothing more to compare */
        return;
    EXPECT_(rule_step(c, a, n), "step");
    UNCHANGED_("step");
    EXPECT_(rule_step_multi(c, &t, 1), "step_multi");
    UNCHANGED_("step_multi");
#undef EXPECT_
#undef UNCHANGED_
}
#define expect_status(c, a, n, status, what) expect_status_at(__LINE__, (c), (a), (n), (status), (what))

/* A step that succeeds changes nothing but the arrays the configuration
 * uses (grad excluded), and nothing around them. */
static void expect_ok_writes_only_used(const rule_cfg *c, float *const *a, size_t n, const char *what)
{
    float before[BLOCK];
    memcpy(before, A.buf, sizeof A.buf);
    const int st = rule_step(c, a, n);
    REQUIRE_MSG(st == RMSFUSE_OK, "%s, %s: step gave %d", conf_text(c), what, st);
    unsigned written = rule_used(c) & ~(1u << SLOT_GRAD);
    for (size_t i = 0; i < BLOCK; i++) {
        int inside = 0;
        for (unsigned j = 0; j < rule_infos[c->rule].narr; j++)
            if ((written & (1u << j)) && a[j] && A.buf + i >= a[j] && A.buf + i < a[j] + n)
                inside = 1;
        if (!inside)
            REQUIRE_MSG(f2u(A.buf[i]) == f2u(before[i]), "%s, %s: float %zu of the block, outside the arrays "
                        "the step writes, changed", conf_text(c), what, i);
    }
}

/* ------------------------------------------------------------------------
 * NULL configuration, NULL arrays, unused arrays, n == 0
 * ---------------------------------------------------------------------- */
START_TEST(test_null_config)
{
    const int rule = _i;
    arena_init(&A);
    rule_cfg c = rule_full_config(rule);
    c.as_null = 1;
    expect_status(&c, A.a, EN, RMSFUSE_E_NULL_CONFIG, "NULL config");
    expect_status(&c, A.a, 0, RMSFUSE_E_NULL_CONFIG, "NULL config, n = 0");
    float *none[MAX_ARR] = {NULL};
    expect_status(&c, none, 0, RMSFUSE_E_NULL_CONFIG, "NULL config, NULL arrays, n = 0");
    ck_assert_int_eq(rule_step_multi(&c, NULL, 0), RMSFUSE_E_NULL_CONFIG);
    ck_assert_int_eq(rule_check_multi(&c, NULL, 0), RMSFUSE_E_NULL_CONFIG);
}
END_TEST

/* Every combination: each array the configuration uses, NULL, gives the
 * rule's status for that slot; each unused one may be NULL (and is not
 * written when it is not). */
/* The combinations this run tests: every one in the native run with
 * detection, one per kernel loop (so every pattern of used arrays) in the
 * others (test_rules.h). */
static unsigned run_combos(int rule, uint64_t salt, unsigned *ks)
{
    test_rng sr = {test_run_seed(salt + (uint64_t)rule)};
    return rule_sample(rule, test_full_run(), &sr, ks);
}

START_TEST(test_null_arrays)
{
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    unsigned ks[MAX_COMBOS];
    const unsigned m = run_combos(rule, 0x4e11u, ks);
    for (unsigned v = 0; v < m; v++) {
        const rule_cfg c = rule_config(rule, rule_combo(rule, ks[v]), (int)(v % (unsigned)rule_nhypers(rule)));
        const unsigned used = rule_used(&c);
        for (unsigned j = 0; j < ri->narr; j++) {
            arena_init(&A);
            float *a[MAX_ARR];
            memcpy(a, A.a, sizeof a);
            a[j] = NULL;
            char what[64];
            snprintf(what, sizeof what, "%s NULL", ri->arr_name[j]);
            if (used & (1u << j)) {
                expect_status(&c, a, EN, ri->null_status[j], what);
            } else {
                expect_status(&c, a, EN, RMSFUSE_OK, what);
                expect_ok_writes_only_used(&c, a, EN, what);
            }
        }
        /* Every array NULL with n = 0: a successful no-op. */
        arena_init(&A);
        float *none[MAX_ARR] = {NULL};
        expect_status(&c, none, 0, RMSFUSE_OK, "n = 0, NULL arrays");
        ck_assert_int_eq(rule_step(&c, none, 0), RMSFUSE_OK);
        ck_assert_int_eq(rule_step(&c, A.a, 0), RMSFUSE_OK);
        ck_assert(arena_unchanged(&A));
        /* With every array, the step writes exactly what the configuration uses. */
        expect_ok_writes_only_used(&c, A.a, EN, "all arrays");
    }
}
END_TEST

/* Unused arrays are ignored even when they overlap a used one. */
START_TEST(test_unused_arrays_may_overlap)
{
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    unsigned ks[MAX_COMBOS];
    const unsigned m = run_combos(rule, 0x0e1au, ks);
    for (unsigned v = 0; v < m; v++) {
        const rule_cfg c = rule_config(rule, rule_combo(rule, ks[v]), (int)(v % (unsigned)rule_nhypers(rule)));
        const unsigned used = rule_used(&c);
        for (unsigned j = 0; j < ri->narr; j++) {
            if (used & (1u << j))
                continue;
            arena_init(&A);
            float *a[MAX_ARR];
            memcpy(a, A.a, sizeof a);
            a[j] = A.a[SLOT_PARAM] + 1;
            expect_status(&c, a, EN, RMSFUSE_OK, "unused array over param");
            a[j] = (float *)(uintptr_t)1; /* not even a valid address */
            expect_status(&c, a, EN, RMSFUSE_OK, "unused array at address 1");
        }
    }
}
END_TEST

START_TEST(test_n_zero_checks_config)
{
    const int rule = _i;
    arena_init(&A);
    rule_cfg c = rule_full_config(rule);
    *rule_lr(&c) = NAN;
    float *none[MAX_ARR] = {NULL};
    expect_status(&c, none, 0, RMSFUSE_E_NONFINITE, "NaN lr, n = 0");
    *rule_lr(&c) = -1.0;
    expect_status(&c, A.a, 0, RMSFUSE_E_LR, "negative lr, n = 0");
    c = rule_full_config(rule);
    *rule_flags(&c) |= 1u << 31;
    expect_status(&c, none, 0, RMSFUSE_E_FLAGS, "unknown flag, n = 0");
}
END_TEST

/* ------------------------------------------------------------------------
 * Hyperparameters
 * ---------------------------------------------------------------------- */

/* The double fields of each rule's configuration. */
typedef struct field {
    const char *name;
    size_t offset;
} field;

#define F_(type, f) {#f, offsetof(type, f)}
static const field fields_rmsprop[] = {F_(rmsfuse_rmsprop_config, lr), F_(rmsfuse_rmsprop_config, alpha),
                                       F_(rmsfuse_rmsprop_config, eps), F_(rmsfuse_rmsprop_config, weight_decay),
                                       F_(rmsfuse_rmsprop_config, momentum)};
static const field fields_adagrad[] = {F_(rmsfuse_adagrad_config, lr), F_(rmsfuse_adagrad_config, lr_decay),
                                       F_(rmsfuse_adagrad_config, weight_decay), F_(rmsfuse_adagrad_config, eps)};
static const field fields_sgd[] = {F_(rmsfuse_sgd_config, lr), F_(rmsfuse_sgd_config, momentum),
                                   F_(rmsfuse_sgd_config, dampening), F_(rmsfuse_sgd_config, weight_decay)};
static const field fields_adam[] = {F_(rmsfuse_adam_config, lr), F_(rmsfuse_adam_config, beta1),
                                    F_(rmsfuse_adam_config, beta2), F_(rmsfuse_adam_config, eps),
                                    F_(rmsfuse_adam_config, weight_decay)};
#undef F_

static const field *fields_of(int rule, int *count)
{
    switch (rule) {
    case RULE_RMSPROP: *count = 5; return fields_rmsprop;
    case RULE_ADAGRAD: *count = 4; return fields_adagrad;
    case RULE_SGD: *count = 4; return fields_sgd;
    default: *count = 5; return fields_adam;
    }
}

/* Field `name` of c (which must exist). */
static double *field_ptr(rule_cfg *c, const char *name)
{
    int count;
    const field *f = fields_of(c->rule, &count);
    for (int i = 0; i < count; i++)
        if (strcmp(f[i].name, name) == 0)
            return (double *)(void *)((char *)&c->u + f[i].offset);
    ck_abort_msg("%s has no field %s", rule_infos[c->rule].name, name);
    return NULL;
}

static long long *step_ptr(rule_cfg *c)
{
    return c->rule == RULE_ADAGRAD ? &c->u.adagrad.step : &c->u.adam.step;
}

START_TEST(test_nonfinite_hyperparameters)
{
    const int rule = _i;
    const double bad[] = {NAN, -NAN, INFINITY, -INFINITY, 1e39, -1e39, DBL_MAX, -DBL_MAX, 3.5e38};
    int nf;
    const field *f = fields_of(rule, &nf);
    for (int i = 0; i < nf; i++)
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            arena_init(&A);
            rule_cfg c = rule_full_config(rule);
            *field_ptr(&c, f[i].name) = bad[b];
            char what[64];
            snprintf(what, sizeof what, "%s = %g", f[i].name, bad[b]);
            expect_status(&c, A.a, EN, RMSFUSE_E_NONFINITE, what);
        }
}
END_TEST

/* Constants derived from finite hyperparameters that overflow float. */
START_TEST(test_derived_constants_overflow)
{
    const int rule = _i;
    arena_init(&A);
    /* dk = 1 - lr * weight_decay with decoupled decay: 1 - 1e40. */
    rule_cfg c = rule_full_config(rule);
    *rule_lr(&c) = 1e20;
    *field_ptr(&c, "weight_decay") = 1e20;
    if (rule == RULE_ADAM)
        *field_ptr(&c, "beta1") = 0.0; /* ns = -lr * sqrt(bc2) / bc1 stays finite */
    expect_status(&c, A.a, EN, RMSFUSE_OK, "lr 1e20, coupled weight_decay 1e20");
    *rule_flags(&c) |= RMSFUSE_DECOUPLED_DECAY;
    expect_status(&c, A.a, EN, RMSFUSE_E_NONFINITE, "lr 1e20, decoupled weight_decay 1e20: dk overflows");
    *field_ptr(&c, "weight_decay") = 1e-20;
    expect_status(&c, A.a, EN, RMSFUSE_OK, "lr 1e20, decoupled weight_decay 1e-20");
    /* lr itself just beyond float (finite as a double). */
    c = rule_full_config(rule);
    *rule_lr(&c) = 3.4028236e38;
    expect_status(&c, A.a, EN, RMSFUSE_E_NONFINITE, "lr just beyond FLT_MAX");
    if (rule == RULE_ADAM) {
        /* ns = -lr * sqrt(bc2) / bc1 with bc1 = 1 - beta1 = 1e-12 at step 1. */
        c = rule_full_config(rule);
        c.u.adam.step = 1;
        c.u.adam.beta1 = 1.0 - 1e-12;
        c.u.adam.lr = 1e30;
        expect_status(&c, A.a, EN, RMSFUSE_E_NONFINITE, "Adam: ns overflows (beta1 1 - 1e-12, lr 1e30)");
        c.u.adam.lr = 1e-3;
        expect_status(&c, A.a, EN, RMSFUSE_OK, "Adam: ns finite (beta1 1 - 1e-12, lr 1e-3)");
    }
    if (rule == RULE_ADAGRAD) {
        /* clr = lr / (1 + (step - 1) * lr_decay): tiny for huge steps, still valid. */
        c = rule_full_config(rule);
        c.u.adagrad.step = LLONG_MAX;
        c.u.adagrad.lr_decay = 1e30;
        expect_status(&c, A.a, EN, RMSFUSE_OK, "AdaGrad: huge step and lr_decay");
        /* Decoupled: dk = 1 - clr * weight_decay, with clr, not lr. */
        c = rule_full_config(rule);
        c.u.adagrad.lr = 1e20;
        c.u.adagrad.weight_decay = 1e20;
        c.u.adagrad.flags = RMSFUSE_DECOUPLED_DECAY;
        c.u.adagrad.step = 1;
        c.u.adagrad.lr_decay = 0.0;
        expect_status(&c, A.a, EN, RMSFUSE_E_NONFINITE, "AdaGrad: decoupled dk overflows");
        c.u.adagrad.step = 3;
        c.u.adagrad.lr_decay = 1e30; /* clr = 1e20 / (1 + 2e30) */
        expect_status(&c, A.a, EN, RMSFUSE_OK, "AdaGrad: lr_decay brings clr * weight_decay back into range");
    }
}
END_TEST

/* One range case: set field `name` (or the step, or the flags) of a base
 * configuration. */
typedef struct range_case {
    const char *name; /* a double field, "step", or "flags" */
    double value;
    long long step;
    unsigned flags;
    int status;
} range_case;

static const range_case ranges_rmsprop[] = {
    {"lr", -1e-12, 0, 0, RMSFUSE_E_LR},
    {"lr", -DBL_MIN, 0, 0, RMSFUSE_E_LR},
    {"alpha", -1e-12, 0, 0, RMSFUSE_E_ALPHA},
    {"alpha", 1.0 + 1e-12, 0, 0, RMSFUSE_E_ALPHA},
    {"alpha", 2.0, 0, 0, RMSFUSE_E_ALPHA},
    {"eps", -1e-30, 0, 0, RMSFUSE_E_EPS},
    {"weight_decay", -1e-30, 0, 0, RMSFUSE_E_WEIGHT_DECAY},
    {"momentum", -1e-30, 0, 0, RMSFUSE_E_MOMENTUM},
    {"momentum", 1.0, 0, 0, RMSFUSE_E_MOMENTUM},
    {"momentum", 1.5, 0, 0, RMSFUSE_E_MOMENTUM},
    /* accepted bounds */
    {"lr", 0.0, 0, 0, RMSFUSE_OK},
    {"lr", -0.0, 0, 0, RMSFUSE_OK},
    {"alpha", 0.0, 0, 0, RMSFUSE_OK},
    {"alpha", 1.0, 0, 0, RMSFUSE_OK},
    {"eps", 0.0, 0, 0, RMSFUSE_OK},
    {"weight_decay", 0.0, 0, 0, RMSFUSE_OK},
    {"momentum", 0.0, 0, 0, RMSFUSE_OK},
    {"momentum", 1.0 - 1e-12, 0, 0, RMSFUSE_OK}, /* < 1 as a double, 1.0f as a float */
};

static const range_case ranges_adagrad[] = {
    {"lr", -1e-12, 0, 0, RMSFUSE_E_LR},
    {"lr_decay", -1e-12, 0, 0, RMSFUSE_E_LR_DECAY},
    {"eps", -1e-30, 0, 0, RMSFUSE_E_EPS},
    {"weight_decay", -1e-30, 0, 0, RMSFUSE_E_WEIGHT_DECAY},
    {"step", 0, 0, 0, RMSFUSE_E_STEP},
    {"step", 0, -1, 0, RMSFUSE_E_STEP},
    {"step", 0, LLONG_MIN, 0, RMSFUSE_E_STEP},
    {"lr", 0.0, 0, 0, RMSFUSE_OK},
    {"lr_decay", 0.0, 0, 0, RMSFUSE_OK},
    {"eps", 0.0, 0, 0, RMSFUSE_OK},
    {"weight_decay", 0.0, 0, 0, RMSFUSE_OK},
    {"step", 0, 1, 0, RMSFUSE_OK},
    {"step", 0, LLONG_MAX, 0, RMSFUSE_OK},
};

static const range_case ranges_sgd[] = {
    {"lr", -1e-12, 0, 0, RMSFUSE_E_LR},
    {"momentum", -1e-30, 0, 0, RMSFUSE_E_MOMENTUM},
    {"dampening", -1e-12, 0, 0, RMSFUSE_E_DAMPENING},
    {"dampening", 1.0 + 1e-12, 0, 0, RMSFUSE_E_DAMPENING},
    {"weight_decay", -1e-30, 0, 0, RMSFUSE_E_WEIGHT_DECAY},
    {"lr", 0.0, 0, 0, RMSFUSE_OK},
    {"momentum", 0.0, 0, 0, RMSFUSE_OK},
    {"momentum", 1.0, 0, 0, RMSFUSE_OK}, /* torch allows momentum >= 1, and so does rmsfuse */
    {"momentum", 1.5, 0, 0, RMSFUSE_OK},
    {"momentum", 1e30, 0, 0, RMSFUSE_OK},
    {"dampening", 0.0, 0, 0, RMSFUSE_OK},
    {"dampening", 1.0, 0, 0, RMSFUSE_OK},
    {"weight_decay", 0.0, 0, 0, RMSFUSE_OK},
};

static const range_case ranges_adam[] = {
    {"lr", -1e-12, 0, 0, RMSFUSE_E_LR},
    {"beta1", -1e-12, 0, 0, RMSFUSE_E_BETA1},
    {"beta1", 1.0, 0, 0, RMSFUSE_E_BETA1},
    {"beta1", 1.5, 0, 0, RMSFUSE_E_BETA1},
    {"beta2", -1e-12, 0, 0, RMSFUSE_E_BETA2},
    {"beta2", 1.0, 0, 0, RMSFUSE_E_BETA2},
    {"beta2", 1.5, 0, 0, RMSFUSE_E_BETA2},
    {"eps", -1e-30, 0, 0, RMSFUSE_E_EPS},
    {"weight_decay", -1e-30, 0, 0, RMSFUSE_E_WEIGHT_DECAY},
    {"step", 0, 0, 0, RMSFUSE_E_STEP},
    {"step", 0, -5, 0, RMSFUSE_E_STEP},
    {"step", 0, LLONG_MIN, 0, RMSFUSE_E_STEP},
    {"lr", 0.0, 0, 0, RMSFUSE_OK},
    {"beta1", 0.0, 0, 0, RMSFUSE_OK},
    {"beta1", 1.0 - 1e-12, 0, 0, RMSFUSE_OK}, /* rounds to 1.0f: the rule is on the double */
    {"beta2", 0.0, 0, 0, RMSFUSE_OK},
    {"beta2", 1.0 - 1e-12, 0, 0, RMSFUSE_OK},
    {"eps", 0.0, 0, 0, RMSFUSE_OK},
    {"weight_decay", 0.0, 0, 0, RMSFUSE_OK},
    {"step", 0, 1, 0, RMSFUSE_OK},
    {"step", 0, LLONG_MAX, 0, RMSFUSE_OK},
};

static const range_case *ranges_of(int rule, size_t *count)
{
#define R_(a) (*count = sizeof(a) / sizeof((a)[0]), (a))
    switch (rule) {
    case RULE_RMSPROP: return R_(ranges_rmsprop);
    case RULE_ADAGRAD: return R_(ranges_adagrad);
    case RULE_SGD: return R_(ranges_sgd);
    default: return R_(ranges_adam);
    }
#undef R_
}

START_TEST(test_hyperparameter_ranges)
{
    const int rule = _i;
    size_t count;
    const range_case *rc = ranges_of(rule, &count);
    for (size_t i = 0; i < count; i++) {
        arena_init(&A);
        rule_cfg c = rule_full_config(rule);
        char what[96];
        if (strcmp(rc[i].name, "step") == 0) {
            *step_ptr(&c) = rc[i].step;
            snprintf(what, sizeof what, "step = %lld", rc[i].step);
        } else {
            *field_ptr(&c, rc[i].name) = rc[i].value;
            snprintf(what, sizeof what, "%s = %.17g", rc[i].name, rc[i].value);
        }
        expect_status(&c, A.a, EN, rc[i].status, what);
    }
}
END_TEST

/* Flags: every bit the rule does not know, alone or beside valid ones;
 * the contradictory combinations of docs/math.md. */
START_TEST(test_flags)
{
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    for (unsigned bit = 0; bit < 32; bit++) {
        if (ri->flags & (1u << bit))
            continue;
        arena_init(&A);
        rule_cfg c = rule_full_config(rule);
        *rule_flags(&c) = 1u << bit;
        expect_status(&c, A.a, EN, RMSFUSE_E_FLAGS, "an unknown flag alone");
        *rule_flags(&c) = (ri->flags & ~(unsigned)(RMSFUSE_NESTEROV | RMSFUSE_LR_IN_MOMENTUM)) | 1u << bit;
        expect_status(&c, A.a, EN, RMSFUSE_E_FLAGS, "an unknown flag beside known ones");
    }
    /* Every known flag alone is accepted where its needs are met. */
    for (unsigned bit = 0; bit < 32; bit++) {
        if (!(ri->flags & (1u << bit)))
            continue;
        arena_init(&A);
        rule_cfg c = rule_full_config(rule);
        if (rule == RULE_SGD && (1u << bit & (RMSFUSE_NESTEROV | RMSFUSE_LR_IN_MOMENTUM)))
            c.u.sgd.dampening = 0.0;
        *rule_flags(&c) = 1u << bit;
        expect_status(&c, A.a, EN, RMSFUSE_OK, "a known flag");
    }
    arena_init(&A);
    rule_cfg c = rule_full_config(rule);
    switch (rule) {
    case RULE_RMSPROP:
        /* NESTEROV needs momentum > 0. */
        c.u.rmsprop.flags = RMSFUSE_NESTEROV;
        c.u.rmsprop.momentum = 0.0;
        expect_status(&c, A.a, EN, RMSFUSE_E_NESTEROV, "NESTEROV without momentum");
        c.u.rmsprop.flags = RMSFUSE_NESTEROV | RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_CENTERED;
        expect_status(&c, A.a, EN, RMSFUSE_E_NESTEROV, "NESTEROV | LR_IN_MOMENTUM without momentum");
        c.u.rmsprop.momentum = -0.0;
        expect_status(&c, A.a, EN, RMSFUSE_E_NESTEROV, "NESTEROV with momentum -0");
        c.u.rmsprop.momentum = 1e-300; /* > 0, though 0.0f as a float */
        expect_status(&c, A.a, EN, RMSFUSE_OK, "NESTEROV with momentum 1e-300");
        /* Without momentum LR_IN_MOMENTUM changes nothing and is accepted. */
        c.u.rmsprop.flags = RMSFUSE_LR_IN_MOMENTUM;
        c.u.rmsprop.momentum = 0.0;
        expect_status(&c, A.a, EN, RMSFUSE_OK, "LR_IN_MOMENTUM without momentum");
        break;
    case RULE_SGD:
        /* LR_IN_MOMENTUM and INIT_MOMENTUM exclude each other, with or without momentum. */
        c.u.sgd.dampening = 0.0;
        c.u.sgd.flags = RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_INIT_MOMENTUM;
        expect_status(&c, A.a, EN, RMSFUSE_E_FLAGS, "LR_IN_MOMENTUM | INIT_MOMENTUM");
        c.u.sgd.momentum = 0.0;
        expect_status(&c, A.a, EN, RMSFUSE_E_FLAGS, "LR_IN_MOMENTUM | INIT_MOMENTUM, momentum 0");
        /* NESTEROV needs momentum > 0 and dampening 0. */
        c = rule_full_config(rule);
        c.u.sgd.flags = RMSFUSE_NESTEROV;
        c.u.sgd.dampening = 0.0;
        c.u.sgd.momentum = 0.0;
        expect_status(&c, A.a, EN, RMSFUSE_E_NESTEROV, "NESTEROV without momentum");
        c.u.sgd.momentum = 0.9;
        c.u.sgd.dampening = 0.5;
        expect_status(&c, A.a, EN, RMSFUSE_E_NESTEROV, "NESTEROV with dampening");
        c.u.sgd.dampening = 1e-300;
        expect_status(&c, A.a, EN, RMSFUSE_E_NESTEROV, "NESTEROV with dampening 1e-300");
        c.u.sgd.dampening = 0.0;
        expect_status(&c, A.a, EN, RMSFUSE_OK, "NESTEROV, momentum, dampening 0");
        /* LR_IN_MOMENTUM needs dampening 0, momentum or not. */
        c.u.sgd.flags = RMSFUSE_LR_IN_MOMENTUM;
        c.u.sgd.dampening = 0.25;
        expect_status(&c, A.a, EN, RMSFUSE_E_DAMPENING, "LR_IN_MOMENTUM with dampening");
        c.u.sgd.momentum = 0.0;
        expect_status(&c, A.a, EN, RMSFUSE_E_DAMPENING, "LR_IN_MOMENTUM with dampening, momentum 0");
        /* Without momentum INIT_MOMENTUM changes nothing and is accepted. */
        c.u.sgd.flags = RMSFUSE_INIT_MOMENTUM;
        expect_status(&c, A.a, EN, RMSFUSE_OK, "INIT_MOMENTUM without momentum");
        break;
    default: /* AdaGrad and Adam have no contradictory combinations: all of their flags at once */
        *rule_flags(&c) = ri->flags;
        expect_status(&c, A.a, EN, RMSFUSE_OK, "every flag");
        break;
    }
    /* Foreign flags of the other rules are refused (one namespace of bits). */
    for (int other = 0; other < N_RULES; other++) {
        const unsigned foreign = rule_infos[other].flags & ~ri->flags;
        for (unsigned bit = 0; bit < 32; bit++)
            if (foreign & (1u << bit)) {
                arena_init(&A);
                c = rule_full_config(rule);
                *rule_flags(&c) = 1u << bit;
                expect_status(&c, A.a, EN, RMSFUSE_E_FLAGS, "another rule's flag");
            }
    }
}
END_TEST

/* ------------------------------------------------------------------------
 * Arrays: overlaps, sizes, lists
 * ---------------------------------------------------------------------- */
START_TEST(test_overlap)
{
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    const rule_cfg c = rule_full_config(rule); /* uses every array */
    /* Every ordered pair: fully aliased, or overlapping by one element at
     * either end (arrays of EN/2 elements, so every pointer stays inside
     * the block). */
    const size_t n = EN / 2;
    for (unsigned i = 0; i < ri->narr; i++)
        for (unsigned j = 0; j < ri->narr; j++) {
            if (i == j)
                continue;
            for (int shift = -1; shift <= 1; shift++) {
                arena_init(&A);
                float *a[MAX_ARR];
                for (unsigned k = 0; k < MAX_ARR; k++)
                    a[k] = A.a[k] + EN / 4;
                a[j] = a[i] + shift * (ptrdiff_t)(n - 1);
                char what[96];
                snprintf(what, sizeof what, "%s over %s, shift %d", ri->arr_name[j], ri->arr_name[i], shift);
                expect_status(&c, a, n, RMSFUSE_E_OVERLAP, what);
            }
        }
    /* Adjacent arrays are fine. */
    arena_init(&A);
    float *a[MAX_ARR];
    for (unsigned k = 0; k < MAX_ARR; k++)
        a[k] = A.buf + GAP + k * EN;
    expect_status(&c, a, EN, RMSFUSE_OK, "adjacent arrays");
    expect_ok_writes_only_used(&c, a, EN, "adjacent arrays");
}
END_TEST

START_TEST(test_size)
{
    const int rule = _i;
    arena_init(&A);
    const rule_cfg c = rule_full_config(rule);
    expect_status(&c, A.a, SIZE_MAX, RMSFUSE_E_SIZE, "n = SIZE_MAX");
    expect_status(&c, A.a, SIZE_MAX / sizeof(float) + 1, RMSFUSE_E_SIZE, "n * 4 wraps");
    /* A range that would wrap around the end of the address space, in each slot. */
    for (unsigned j = 0; j < rule_infos[rule].narr; j++) {
        float *a[MAX_ARR];
        memcpy(a, A.a, sizeof a);
        a[j] = (float *)(uintptr_t)(UINTPTR_MAX - 64 * sizeof(float) + 1);
        expect_status(&c, a, 128, RMSFUSE_E_SIZE, "an array wrapping around the address space");
    }
}
END_TEST

START_TEST(test_null_list)
{
    const int rule = _i;
    const rule_cfg c = rule_full_config(rule);
    ck_assert_int_eq(rule_step_multi(&c, NULL, 1), RMSFUSE_E_NULL_LIST);
    ck_assert_int_eq(rule_check_multi(&c, NULL, 1), RMSFUSE_E_NULL_LIST);
    ck_assert_int_eq(rule_step_multi(&c, NULL, SIZE_MAX), RMSFUSE_E_NULL_LIST);
    rmsfuse_plan *plan = (rmsfuse_plan *)&A;
    ck_assert_int_eq(rule_plan(&c, NULL, 3, &plan), RMSFUSE_E_NULL_LIST);
    ck_assert_ptr_null(plan);
    /* count 0: a successful no-op, NULL or not; an empty plan. */
    ck_assert_int_eq(rule_step_multi(&c, NULL, 0), RMSFUSE_OK);
    ck_assert_int_eq(rule_check_multi(&c, NULL, 0), RMSFUSE_OK);
    ck_assert_int_eq(rule_plan(&c, NULL, 0, &plan), RMSFUSE_OK);
    ck_assert_ptr_nonnull(plan);
    ck_assert_uint_eq(rmsfuse_plan_elements(plan), 0);
    ck_assert_int_eq(rmsfuse_plan_run(plan, 0, 0), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_plan_run(plan, 0, 1), RMSFUSE_E_RANGE);
    ck_assert_uint_eq(rmsfuse_plan_cut(plan, 0), 0);
    ck_assert_uint_eq(rmsfuse_plan_cut(plan, 5), 0);
    rmsfuse_plan_free(plan);
    /* The configuration comes first: a bad one with a NULL list. */
    rule_cfg bad = c;
    *rule_lr(&bad) = -1.0;
    ck_assert_int_eq(rule_step_multi(&bad, NULL, 2), RMSFUSE_E_LR);
}
END_TEST

/* ------------------------------------------------------------------------
 * check == step, on random calls near every boundary
 * ---------------------------------------------------------------------- */

/* A value near the interesting points of a hyperparameter. */
static double random_hyper(test_rng *r)
{
    static const double pts[] = {0.0, -0.0, 1e-300, -1e-300, 1e-12, 0.5, 0.9, 1.0 - 1e-12, 1.0, 1.0 + 1e-12,
                                 1.5, 2.0, 1e30, 3.4e38, 3.5e38, 1e300, -1.0, -1e-12, NAN, INFINITY, -INFINITY};
    const uint64_t d = rng_next(r) % 4;
    if (d == 0)
        return pts[rng_next(r) % (sizeof pts / sizeof pts[0])];
    return (double)rng_uniform(r, 0.0f, 1.0f) * (d == 3 ? 2.0 : 1.0);
}

START_TEST(test_check_is_step)
{
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    test_rng r = {test_run_seed(0xc4ecu + (uint64_t)rule)};
    const int trials = test_quick_mode() ? 150 : test_full_run() ? 3000 : 1000;
    int nf;
    const field *f = fields_of(rule, &nf);
    unsigned seen_ok = 0, seen_err = 0;
    for (int t = 0; t < trials; t++) {
        arena_init(&A);
        rule_cfg c = rule_full_config(rule);
        for (int i = 0; i < nf; i++)
            if (rng_next(&r) % 3 == 0)
                *field_ptr(&c, f[i].name) = random_hyper(&r);
            else if (rng_next(&r) % 2 == 0)
                *field_ptr(&c, f[i].name) = 0.0;
        if (rule == RULE_ADAGRAD || rule == RULE_ADAM) {
            static const long long steps[] = {LLONG_MIN, -1, 0, 1, 2, 1000, LLONG_MAX};
            *step_ptr(&c) = steps[rng_next(&r) % 7];
        }
        unsigned flags = (unsigned)(rng_next(&r) & ri->flags);
        if (rng_next(&r) % 16 == 0)
            flags |= 1u << (rng_next(&r) % 32);
        *rule_flags(&c) = flags;
        float *a[MAX_ARR];
        memcpy(a, A.a, sizeof a);
        size_t n = EN / 2;
        switch (rng_next(&r) % 8) {
        case 0: a[rng_next(&r) % ri->narr] = NULL; break;
        case 1: a[rng_next(&r) % ri->narr] = a[rng_next(&r) % ri->narr] + rng_next(&r) % 4; break;
        case 2: n = 0; break;
        case 3: n = SIZE_MAX - rng_next(&r) % 4; break;
        default: break;
        }
        /* The step's own status, then every other entry point must agree. */
        memcpy(A.copy, A.buf, sizeof A.buf);
        float saved[BLOCK];
        memcpy(saved, A.buf, sizeof A.buf);
        const int st = rule_step(&c, a, n);
        if (st == RMSFUSE_OK)
            seen_ok++;
        else
            seen_err++;
        memcpy(A.buf, saved, sizeof A.buf);
        expect_status(&c, a, n, st, "random call");
    }
    ck_assert(seen_ok > 0 && seen_err > 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * What docs/math.md says changes nothing, or only a sign
 * ---------------------------------------------------------------------- */
enum { QN = 67 };

/* One step of c on a copy of in[] (grad negated when neg_grad; the state
 * slot `poison`, when >= 0, filled with NaN first), results in out[]. */
static void step_copy(const rule_cfg *c, float in[MAX_ARR][QN], float out[MAX_ARR][QN], int neg_grad, int poison)
{
    float *a[MAX_ARR] = {NULL};
    for (unsigned j = 0; j < rule_infos[c->rule].narr; j++) {
        for (int i = 0; i < QN; i++)
            out[j][i] = (j == SLOT_GRAD && neg_grad) ? -in[j][i] : (int)j == poison ? NAN : in[j][i];
        a[j] = out[j];
    }
    const int st = rule_step(c, a, QN);
    REQUIRE_MSG(st == RMSFUSE_OK, "%s: step gave %d", conf_text(c), st);
}

/* The same bits in every array but grad. */
static void assert_same_state(int rule, float x[MAX_ARR][QN], float y[MAX_ARR][QN], const char *what)
{
    for (unsigned j = 0; j < rule_infos[rule].narr; j++)
        for (int i = 0; j != SLOT_GRAD && i < QN; i++)
            REQUIRE_MSG(same_float(x[j][i], y[j][i]), "%s: %s: %s[%d] = %a vs %a", rule_infos[rule].name, what,
                        rule_infos[rule].arr_name[j], i, (double)x[j][i], (double)y[j][i]);
}

/* A value RMSFUSE_FLUSH_SUBNORMAL changes: below FLT_MIN in magnitude but
 * +0 (-0 becomes +0). */
static int flush_changes(float x)
{
    return fabsf(x) < FLT_MIN && f2u(x) != 0u;
}

/* Whether every state value a step computed is one the flag leaves alone:
 * the ones it stored (the arrays c uses, param and grad apart), and
 * centred RMSProp's s = v - ga * ga, from the stored v and ga. */
static int no_state_to_flush(const rule_cfg *c, float out[MAX_ARR][QN])
{
    const unsigned state = rule_used(c) & ~(1u << SLOT_PARAM | 1u << SLOT_GRAD);
    for (unsigned j = 0; j < rule_infos[c->rule].narr; j++)
        for (int i = 0; (state & (1u << j)) && i < QN; i++)
            if (flush_changes(out[j][i]))
                return 0;
    if (c->rule == RULE_RMSPROP && (c->u.rmsprop.flags & RMSFUSE_CENTERED))
        for (int i = 0; i < QN; i++)
            if (flush_changes(out[2][i] - out[4][i] * out[4][i]))
                return 0;
    return 1;
}

START_TEST(test_documented_equivalences)
{
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    static float in[MAX_ARR][QN], x[MAX_ARR][QN], y[MAX_ARR][QN];
    unsigned ks[MAX_COMBOS];
    const unsigned m = run_combos(rule, 0xe0u, ks);
    test_rng r = {test_run_seed(0xe1u + (uint64_t)rule)};
    unsigned flush_compared = 0;
    for (unsigned v = 0; v < m; v++) {
        const rule_cfg c = rule_config(rule, rule_combo(rule, ks[v]), (int)(v % (unsigned)rule_nhypers(rule)));
        for (unsigned j = 0; j < ri->narr; j++)
            for (int i = 0; i < QN; i++)
                in[j][i] = rule_realistic(rule, j, &r, 1.0f);
        rule_cfg d = c;
        /* MAXIMIZE is the gradient's sign and nothing else. */
        *rule_flags(&d) ^= RMSFUSE_MAXIMIZE;
        step_copy(&c, in, x, 0, -1);
        step_copy(&d, in, y, 1, -1);
        assert_same_state(rule, x, y, "MAXIMIZE differs from the negated gradient");
        /* FLUSH_SUBNORMAL changes only state values below FLT_MIN (and -0):
         * where the step without it computes none, the step with it gives
         * the same bits everywhere. */
        d = c;
        *rule_flags(&d) ^= RMSFUSE_FLUSH_SUBNORMAL;
        step_copy(&d, in, y, 0, -1);
        if (no_state_to_flush(&c, combo_flush(rule_combo(rule, ks[v])) ? y : x)) {
            assert_same_state(rule, x, y, "FLUSH_SUBNORMAL changes a step that has no state below FLT_MIN");
            flush_compared++;
        }
        /* DECOUPLED_DECAY without weight decay changes nothing. */
        d = c;
        if (*field_ptr(&d, "weight_decay") == 0.0) {
            *rule_flags(&d) ^= RMSFUSE_DECOUPLED_DECAY;
            step_copy(&d, in, y, 0, -1);
            assert_same_state(rule, x, y, "DECOUPLED_DECAY without weight decay changes the step");
        }
        /* RMSProp: LR_IN_MOMENTUM without momentum changes nothing. */
        d = c;
        if (rule == RULE_RMSPROP && c.u.rmsprop.momentum == 0.0) {
            d.u.rmsprop.flags ^= RMSFUSE_LR_IN_MOMENTUM;
            step_copy(&d, in, y, 0, -1);
            assert_same_state(rule, x, y, "LR_IN_MOMENTUM without momentum changes the step");
        }
        if (rule == RULE_SGD) {
            /* INIT_MOMENTUM without momentum changes nothing; with momentum
             * the buffer is only written: its old content does not matter. */
            d = c;
            if (c.u.sgd.momentum == 0.0 && !(c.u.sgd.flags & RMSFUSE_LR_IN_MOMENTUM)) {
                d.u.sgd.flags ^= RMSFUSE_INIT_MOMENTUM;
                step_copy(&d, in, y, 0, -1);
                assert_same_state(rule, x, y, "INIT_MOMENTUM without momentum changes the step");
            }
            if (c.u.sgd.momentum != 0.0 && (c.u.sgd.flags & RMSFUSE_INIT_MOMENTUM)) {
                step_copy(&c, in, y, 0, 2);
                assert_same_state(rule, x, y, "INIT_MOMENTUM reads the old momentum_buf");
            }
        }
        if (rule == RULE_RMSPROP || rule == RULE_SGD) {
            /* Without momentum the buffer is neither read nor written. */
            const unsigned mb = rule == RULE_RMSPROP ? 3 : 2;
            if (*field_ptr(&d, "momentum") == 0.0) {
                step_copy(&c, in, y, 0, (int)mb);
                for (int i = 0; i < QN; i++)
                    REQUIRE_MSG(isnan(y[mb][i]), "%s: momentum_buf[%d] was written with momentum 0", ri->name, i);
                for (int i = 0; i < QN; i++)
                    y[mb][i] = x[mb][i];
                assert_same_state(rule, x, y, "momentum 0 reads the momentum buffer");
            }
        }
        /* AdaGrad: without lr_decay the step number changes nothing. */
        if (rule == RULE_ADAGRAD && c.u.adagrad.lr_decay == 0.0) {
            d = c;
            d.u.adagrad.step = c.u.adagrad.step == 1 ? 1000 : 1;
            step_copy(&d, in, y, 0, -1);
            assert_same_state(rule, x, y, "the step number changes AdaGrad without lr_decay");
        }
    }
    /* Realistic inputs seldom give state below FLT_MIN: most combinations
     * were compared. */
    ck_assert_uint_ge(flush_compared, m / 2);
}
END_TEST

/* ------------------------------------------------------------------------
 * Presets
 * ---------------------------------------------------------------------- */
/* Every preset sets RMSFUSE_FLUSH_SUBNORMAL besides its framework's flags
 * (docs/math.md, "Subnormal-safe state": "Who sets it"). */
#define FL_ RMSFUSE_FLUSH_SUBNORMAL

START_TEST(test_presets)
{
    const double lr = 0.0123;
    const rmsfuse_rmsprop_config rp = rmsfuse_rmsprop_pytorch(lr), rt = rmsfuse_rmsprop_tensorflow(lr),
                                 rk = rmsfuse_rmsprop_keras(lr);
    ck_assert(rp.lr == lr && rp.alpha == 0.99 && rp.eps == 1e-8 && rp.weight_decay == 0 && rp.momentum == 0);
    ck_assert_uint_eq(rp.flags, FL_);
    ck_assert(rt.lr == lr && rt.alpha == 0.9 && rt.eps == 1e-10 && rt.weight_decay == 0 && rt.momentum == 0);
    ck_assert_uint_eq(rt.flags, RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM | FL_);
    ck_assert(rk.lr == lr && rk.alpha == 0.9 && rk.eps == 1e-7 && rk.weight_decay == 0 && rk.momentum == 0);
    ck_assert_uint_eq(rk.flags, RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM | FL_);

    const rmsfuse_adagrad_config ap = rmsfuse_adagrad_pytorch(lr), ak = rmsfuse_adagrad_keras(lr),
                                 ac = rmsfuse_adagrad_classic(lr);
    ck_assert(ap.lr == lr && ap.lr_decay == 0 && ap.weight_decay == 0 && ap.eps == 1e-10 && ap.step == 1);
    ck_assert_uint_eq(ap.flags, FL_);
    ck_assert(ak.lr == lr && ak.lr_decay == 0 && ak.weight_decay == 0 && ak.eps == 1e-7 && ak.step == 1);
    ck_assert_uint_eq(ak.flags, RMSFUSE_EPS_IN_SQRT | FL_);
    ck_assert(ac.lr == lr && ac.lr_decay == 0 && ac.weight_decay == 0 && ac.eps == 1e-8 && ac.step == 1);
    ck_assert_uint_eq(ac.flags, RMSFUSE_EPS_IN_SQRT | FL_);

    const rmsfuse_sgd_config sp = rmsfuse_sgd_pytorch(lr), sk = rmsfuse_sgd_keras(lr);
    ck_assert(sp.lr == lr && sp.momentum == 0 && sp.dampening == 0 && sp.weight_decay == 0);
    ck_assert_uint_eq(sp.flags, FL_);
    ck_assert(sk.lr == lr && sk.momentum == 0 && sk.dampening == 0 && sk.weight_decay == 0);
    ck_assert_uint_eq(sk.flags, RMSFUSE_LR_IN_MOMENTUM | FL_);

    const struct {
        rmsfuse_adam_config c;
        double eps, wd;
        unsigned flags;
    } adams[] = {
        {rmsfuse_adam_pytorch(lr), 1e-8, 0.0, FL_},
        {rmsfuse_adamw_pytorch(lr), 1e-8, 0.01, RMSFUSE_DECOUPLED_DECAY | FL_},
        {rmsfuse_adam_tensorflow(lr), 1e-8, 0.0, RMSFUSE_EPS_HAT | FL_},
        {rmsfuse_adam_keras(lr), 1e-7, 0.0, RMSFUSE_EPS_HAT | FL_},
        {rmsfuse_adamw_keras(lr), 1e-7, 0.004, RMSFUSE_EPS_HAT | RMSFUSE_DECOUPLED_DECAY | FL_},
    };
    for (size_t i = 0; i < sizeof adams / sizeof adams[0]; i++) {
        const rmsfuse_adam_config *c = &adams[i].c;
        ck_assert_msg(c->lr == lr && c->beta1 == 0.9 && c->beta2 == 0.999 && c->eps == adams[i].eps &&
                          c->weight_decay == adams[i].wd && c->step == 1,
                      "Adam preset %zu", i);
        ck_assert_uint_eq(c->flags, adams[i].flags);
        ck_assert_int_eq(rmsfuse_adam_check_config(c), RMSFUSE_OK);
    }
    /* Every preset, of every rule, has the flag. */
    ck_assert((rp.flags & rt.flags & rk.flags & ap.flags & ak.flags & ac.flags & sp.flags & sk.flags & FL_) != 0);
    ck_assert_int_eq(rmsfuse_rmsprop_check_config(&rp), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_rmsprop_check_config(&rt), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_rmsprop_check_config(&rk), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_adagrad_check_config(&ap), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_adagrad_check_config(&ak), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_adagrad_check_config(&ac), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_sgd_check_config(&sp), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_sgd_check_config(&sk), RMSFUSE_OK);
    /* The presets take lr as it is, and refuse a bad one like any config. */
    rmsfuse_adam_config bad = rmsfuse_adamw_keras(-1.0);
    ck_assert_int_eq(rmsfuse_adam_check_config(&bad), RMSFUSE_E_LR);
    rmsfuse_sgd_config bad_s = rmsfuse_sgd_keras(NAN);
    ck_assert_int_eq(rmsfuse_sgd_check_config(&bad_s), RMSFUSE_E_NONFINITE);
}
END_TEST
#undef FL_

/* ------------------------------------------------------------------------
 * Plans
 * ---------------------------------------------------------------------- */
START_TEST(test_plan_errors)
{
    const int rule = _i;
    const rule_cfg c = rule_full_config(rule);
    test_rng r = {11u + (uint64_t)rule};
    list L;
    list_make(&L, rule_infos[rule].narr, 6, 300, &r);
    /* A NULL plan pointer. */
    list_snapshot(&L);
    ck_assert_int_eq(rule_plan(&c, L.t, L.count, NULL), RMSFUSE_E_NULL_PLAN);
    ck_assert(list_unchanged(&L));
    /* rmsfuse_plan_run: NULL, and ranges reversed or beyond the plan; nothing written. */
    ck_assert_int_eq(rmsfuse_plan_run(NULL, 0, 0), RMSFUSE_E_NULL_PLAN);
    ck_assert_int_eq(rmsfuse_plan_run(NULL, 0, 10), RMSFUSE_E_NULL_PLAN);
    ck_assert_uint_eq(rmsfuse_plan_elements(NULL), 0);
    ck_assert_uint_eq(rmsfuse_plan_cut(NULL, 0), 0);
    ck_assert_uint_eq(rmsfuse_plan_cut(NULL, 7), 0);
    rmsfuse_plan_free(NULL);
    rmsfuse_plan *plan = NULL;
    ck_assert_int_eq(rule_plan(&c, L.t, L.count, &plan), RMSFUSE_OK);
    size_t total = 0;
    for (size_t i = 0; i < L.count; i++)
        total += L.t[i].n;
    ck_assert_uint_eq(rmsfuse_plan_elements(plan), total);
    ck_assert_uint_gt(total, 2);
    const size_t bad[][2] = {{1, 0},          {total, total - 1}, {0, total + 1},          {total + 1, total + 1},
                             {total, SIZE_MAX}, {SIZE_MAX, SIZE_MAX}, {SIZE_MAX, 0},       {total / 2, total + 100}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        list_snapshot(&L);
        ck_assert_msg(rmsfuse_plan_run(plan, bad[k][0], bad[k][1]) == RMSFUSE_E_RANGE, "%s: range [%zu, %zu) of %zu",
                      rule_infos[rule].name, bad[k][0], bad[k][1], total);
        ck_assert_msg(list_unchanged(&L), "%s: a refused range wrote", rule_infos[rule].name);
    }
    /* Empty ranges anywhere up to the end: no-ops. */
    list_snapshot(&L);
    for (size_t b = 0; b <= total; b += 1 + total / 7)
        ck_assert_int_eq(rmsfuse_plan_run(plan, b, b), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_plan_run(plan, total, total), RMSFUSE_OK);
    ck_assert(list_unchanged(&L));
    rmsfuse_plan_free(plan);
    list_free(&L);
}
END_TEST

/* Elements [0, total) cut into ranges at random points (anywhere, or where
 * rmsfuse_plan_cut says), run in random order. */
static void run_plan_in_pieces(const rmsfuse_plan *plan, test_rng *r, int at_cuts)
{
    const size_t total = rmsfuse_plan_elements(plan);
    size_t pts[66];
    int m = 0;
    pts[m++] = 0;
    const int pieces = 1 + (int)(rng_next(r) % 12);
    for (int k = 1; k < pieces && total > 0; k++) {
        size_t f = (size_t)(rng_next(r) % (total + 1));
        pts[m++] = at_cuts ? rmsfuse_plan_cut(plan, f) : f;
    }
    pts[m++] = total;
    /* sort, then run the ranges between consecutive points in a random order */
    for (int i = 1; i < m; i++)
        for (int j = i; j > 0 && pts[j - 1] > pts[j]; j--) {
            const size_t x = pts[j];
            pts[j] = pts[j - 1];
            pts[j - 1] = x;
        }
    int order[65];
    for (int i = 0; i + 1 < m; i++)
        order[i] = i;
    for (int i = m - 2; i > 0; i--) {
        const int j = (int)(rng_next(r) % (uint64_t)(i + 1)), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    for (int i = 0; i + 1 < m; i++)
        ck_assert_int_eq(rmsfuse_plan_run(plan, pts[order[i]], pts[order[i] + 1]), RMSFUSE_OK);
}

/* Every combination (of this run: test_rules.h), a list with empty and
 * unaligned tensors: a plan run over any cut gives step_multi's bits, and
 * run twice, two steps' bits. */
START_TEST(test_plan_any_cut_is_step_multi)
{
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    unsigned ks[MAX_COMBOS];
    const unsigned m = run_combos(rule, 0x91a7u, ks);
    const int trials = test_quick_mode() ? 2 : 4;
    for (unsigned v = 0; v < m; v++) {
        const rule_cfg c = rule_config(rule, rule_combo(rule, ks[v]), (int)(v % (unsigned)rule_nhypers(rule)));
        char what[256];
        rule_describe(&c, what, sizeof what);
        test_rng r = {7000u + 131u * (uint64_t)rule + ks[v]};
        list L;
        list_make(&L, ri->narr, 1 + rng_next(&r) % 6, 200, &r);
        /* The references: one and two step_multi calls. */
        float *init = list_clone_block(&L);
        ck_assert_int_eq(rule_step_multi(&c, L.t, L.count), RMSFUSE_OK);
        float *one = list_clone_block(&L);
        ck_assert_int_eq(rule_step_multi(&c, L.t, L.count), RMSFUSE_OK);
        float *two = list_clone_block(&L);
        for (int trial = 0; trial < trials; trial++) {
            memcpy(L.block, init, L.floats * sizeof(float));
            rmsfuse_plan *plan = NULL;
            ck_assert_int_eq(rule_plan(&c, L.t, L.count, &plan), RMSFUSE_OK);
            ck_assert_msg(memcmp(L.block, init, L.floats * sizeof(float)) == 0, "%s: making a plan wrote", what);
            run_plan_in_pieces(plan, &r, trial % 2);
            ck_assert_msg(memcmp(L.block, one, L.floats * sizeof(float)) == 0,
                          "%s: a plan run in pieces (%s) differs from step_multi", what,
                          trial % 2 ? "at rmsfuse_plan_cut" : "anywhere");
            run_plan_in_pieces(plan, &r, trial % 2 == 0);
            ck_assert_msg(memcmp(L.block, two, L.floats * sizeof(float)) == 0,
                          "%s: a plan run twice differs from two step_multi calls", what);
            rmsfuse_plan_free(plan);
        }
        free(init);
        free(one);
        free(two);
        list_free(&L);
    }
}
END_TEST

/* rmsfuse_plan_cut(f): the first index >= f that is the end of the plan,
 * the start of a tensor, or an element whose param address starts a
 * 64-byte line. */
START_TEST(test_plan_cut)
{
    const int rule = _i;
    const rule_info *ri = &rule_infos[rule];
    const rule_cfg c = rule_full_config(rule);
    for (int trial = 0; trial < 8; trial++) {
        test_rng r = {900u + 37u * (uint64_t)rule + (uint64_t)trial};
        list L;
        list_make(&L, ri->narr, 1 + rng_next(&r) % 8, trial % 2 ? 40 : 300, &r);
        rmsfuse_plan *plan = NULL;
        ck_assert_int_eq(rule_plan(&c, L.t, L.count, &plan), RMSFUSE_OK);
        const size_t total = rmsfuse_plan_elements(plan);
        /* Element index -> its param address; tensor starts. */
        uintptr_t *addr = malloc((total + 1) * sizeof *addr);
        unsigned char *start = calloc(total + 1, 1);
        ck_assert(addr && start);
        size_t e = 0;
        for (size_t i = 0; i < L.count; i++) {
            if (L.t[i].n)
                start[e] = 1;
            for (size_t k = 0; k < L.t[i].n; k++)
                addr[e++] = (uintptr_t)(L.t[i].a[SLOT_PARAM] + k);
        }
        ck_assert_uint_eq(e, total);
        start[total] = 1;
        for (size_t f = 0; f <= total + 2; f++) {
            const size_t got = rmsfuse_plan_cut(plan, f);
            size_t expect = f < total ? f : total;
            while (expect < total && !start[expect] && addr[expect] % 64 != 0)
                expect++;
            REQUIRE_MSG(got == expect, "%s: rmsfuse_plan_cut(%zu) = %zu, expected %zu (of %zu)", ri->name, f, got,
                        expect, total);
        }
        free(addr);
        free(start);
        rmsfuse_plan_free(plan);
        list_free(&L);
    }
    /* A param that is not float-aligned: every cut stays within [f, total]. */
    float *buf = malloc(300 * sizeof(float) * MAX_ARR + 64);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < 300 * MAX_ARR + 16; i++)
        buf[i] = 0.5f;
    float *a[MAX_ARR];
    for (unsigned j = 0; j < MAX_ARR; j++)
        a[j] = buf + 300 * j;
    a[SLOT_PARAM] = (float *)(void *)((char *)buf + 1);
    const rule_tensor t = rule_tensor_of(a, 200);
    rmsfuse_plan *plan = NULL;
    ck_assert_int_eq(rule_plan(&c, &t, 1, &plan), RMSFUSE_OK);
    for (size_t f = 0; f <= 202; f++) {
        const size_t got = rmsfuse_plan_cut(plan, f);
        REQUIRE_MSG(got >= (f < 200 ? f : 200) && got <= 200, "rmsfuse_plan_cut(%zu) = %zu", f, got);
    }
    rmsfuse_plan_free(plan);
    free(buf);
}
END_TEST

/* A plan keeps the kernel of the ISA that was active when it was made: it
 * runs with the bits of a step under that ISA, whatever is active when it
 * runs, and running it switches nothing.  (All ISAs give the same bits, so
 * what this can see is that the plan stays valid and correct across
 * rmsfuse_set_isa.) */
START_TEST(test_plan_across_isa_switches)
{
    const int rule = _i;
    const char *entry = rmsfuse_active_isa();
    const char *isas[16];
    int k = 0;
    for (const char *const *p = rmsfuse_isa_names(); *p && k < 16; p++)
        if (rmsfuse_isa_supported(*p))
            isas[k++] = *p;
    ck_assert_int_ge(k, 1);
    const rule_cfg c = rule_full_config(rule);
    test_rng r = {123u + (uint64_t)rule};
    list L;
    list_make(&L, rule_infos[rule].narr, 5, 3000, &r);
    float *init = list_clone_block(&L);
    for (int i = 0; i < k; i++) {
        const char *other = isas[(i + 1) % k];
        memcpy(L.block, init, L.floats * sizeof(float));
        ck_assert_int_eq(rmsfuse_set_isa(isas[i]), RMSFUSE_OK);
        ck_assert_int_eq(rule_step_multi(&c, L.t, L.count), RMSFUSE_OK);
        float *ref = list_clone_block(&L);
        memcpy(L.block, init, L.floats * sizeof(float));
        rmsfuse_plan *plan = NULL;
        ck_assert_int_eq(rule_plan(&c, L.t, L.count, &plan), RMSFUSE_OK);
        ck_assert_int_eq(rmsfuse_set_isa(other), RMSFUSE_OK);
        ck_assert_int_eq(rmsfuse_plan_run(plan, 0, rmsfuse_plan_elements(plan)), RMSFUSE_OK);
        ck_assert_str_eq(rmsfuse_active_isa(), other);
        ck_assert_msg(memcmp(L.block, ref, L.floats * sizeof(float)) == 0,
                      "%s: a plan made under %s and run under %s differs", rule_infos[rule].name, isas[i], other);
        rmsfuse_plan_free(plan);
        free(ref);
    }
    ck_assert_int_eq(rmsfuse_set_isa(entry), RMSFUSE_OK);
    free(init);
    list_free(&L);
}
END_TEST

static Suite *rules_api_suite(void)
{
    Suite *s = suite_create("rules_api");
    TCase *tc = tcase_create("errors");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_null_config, 0, N_RULES);
    tcase_add_loop_test(tc, test_null_arrays, 0, N_RULES);
    tcase_add_loop_test(tc, test_unused_arrays_may_overlap, 0, N_RULES);
    tcase_add_loop_test(tc, test_n_zero_checks_config, 0, N_RULES);
    tcase_add_loop_test(tc, test_nonfinite_hyperparameters, 0, N_RULES);
    tcase_add_loop_test(tc, test_derived_constants_overflow, 0, N_RULES);
    tcase_add_loop_test(tc, test_hyperparameter_ranges, 0, N_RULES);
    tcase_add_loop_test(tc, test_flags, 0, N_RULES);
    tcase_add_loop_test(tc, test_overlap, 0, N_RULES);
    tcase_add_loop_test(tc, test_size, 0, N_RULES);
    tcase_add_loop_test(tc, test_null_list, 0, N_RULES);
    tcase_add_loop_test(tc, test_check_is_step, 0, N_RULES);
    tcase_add_loop_test(tc, test_documented_equivalences, 0, N_RULES);
    tcase_add_test(tc, test_presets);
    suite_add_tcase(s, tc);

    tc = tcase_create("plans");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_plan_errors, 0, N_RULES);
    tcase_add_loop_test(tc, test_plan_any_cut_is_step_multi, 0, N_RULES);
    tcase_add_loop_test(tc, test_plan_cut, 0, N_RULES);
    tcase_add_loop_test(tc, test_plan_across_isa_switches, 0, N_RULES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return rmsfuse_test_run(rules_api_suite());
}

/*
 * RMSProp's public API: hand-computed steps for every variant (every flag,
 * NESTEROV and DECOUPLED_DECAY included, with and without weight decay and
 * momentum), every error rule (and that a rejected call writes nothing),
 * n == 0, special values, presets, version and status strings.  Every
 * rule's error paths, presets and plans: test_rules_api.c.
 */
#include <float.h>
#include <stdint.h>

#include "test_common.h"

/* ------------------------------------------------------------------------
 * Hand-computed cases.
 *
 * Variant bits: 0..3 the flags CENTERED, EPS_IN_SQRT, LR_IN_MOMENTUM,
 * MAXIMIZE; 16 weight decay on; 32 momentum on; 64 NESTEROV; 128
 * DECOUPLED_DECAY (which changes nothing without weight decay); 256
 * FLUSH_SUBNORMAL (which changes nothing here: every state value is
 * normal, so the flush loops must give the same hand-computed results).
 *
 * alpha = 0.75 (a = 0.75, c = 0.25 exactly), lr = 0.5, momentum 0.5 when
 * on, weight_decay 0.5 when on.  The effective gradient is g = +4 (or -4
 * with MAXIMIZE); with coupled weight decay the raw gradient is chosen so
 * that g = grad + 0.5 * p0 is still +-4 (p0 = 2: grad 3, or grad 5
 * maximizing, -5 + 1 = -4).  Decoupled weight decay leaves g alone and
 * scales p0 = 2 by dk = 1 - 0.5 * 0.5 = 0.75 first: p = 1.5.
 *
 *   v'  = 28 * 0.75 + (0.25 * g) * g         = 21 + 4        = 25
 *   ga' = ga0 * 0.75 + 0.25 * g, ga0 = +-4   = +-3 +- 1      = +-4
 *   s   = 25 (plain) or 25 - 16 = 9 (centered)
 *   d   = 8 in every case, by the choice of eps:
 *         eps outside sqrt: sqrt(25) + 3 = 8, sqrt(9) + 5 = 8
 *         eps inside sqrt:  sqrt(25 + 39) = 8, sqrt(9 + 55) = 8
 *   torch style:  no momentum  p' = p + (-0.5 * g) / 8  = p -+ 0.25
 *                 momentum     q = g / 8 = +-0.5, b' = b0 * 0.5 + q
 *                   b0 = +-1:  b' = +-1,  p' = p + -0.5 * b'      = p -+ 0.5
 *                   Nesterov, b0 = +-3: b' = +-2,
 *                              p' = p + -0.5 * (q + 0.5 * b')    = p -+ 0.75
 *   TF style:     u = (0.5 * g) / 8 = +-0.25
 *                 no momentum  p' = p - u                 = p -+ 0.25
 *                 momentum, b0 = +-1: b' = b0 * 0.5 + u = +-0.75,
 *                              p' = p - b'                = p -+ 0.75
 *                   Nesterov, b0 = +-3: b' = +-1.75,
 *                              p' = p - (u + 0.5 * b')    = p -+ 1.125
 * (-+ : minus for g = +4, plus for g = -4.)
 * ---------------------------------------------------------------------- */
#define HAND_NESTEROV 64u
#define HAND_DECOUPLED 128u
#define HAND_FLUSH 256u
#define HAND_VARIANTS 512

typedef struct hand_case {
    rmsfuse_rmsprop_config cfg;
    float p0, grad, v0, b0, ga0;
    float p1, v1, b1, ga1;
} hand_case;

static hand_case hand_case_for(unsigned variant)
{
    const unsigned flags = (variant & 15u) | ((variant & HAND_NESTEROV) ? RMSFUSE_NESTEROV : 0u) |
                           ((variant & HAND_DECOUPLED) ? RMSFUSE_DECOUPLED_DECAY : 0u) |
                           ((variant & HAND_FLUSH) ? RMSFUSE_FLUSH_SUBNORMAL : 0u);
    const int wd = (variant >> 4) & 1, mom = (variant >> 5) & 1;
    const int nesterov = (variant & HAND_NESTEROV) != 0, decoupled = wd && (variant & HAND_DECOUPLED);
    const int centered = (flags & RMSFUSE_CENTERED) != 0;
    const int in_sqrt = (flags & RMSFUSE_EPS_IN_SQRT) != 0;
    const int tf = (flags & RMSFUSE_LR_IN_MOMENTUM) != 0;
    const float sign = (flags & RMSFUSE_MAXIMIZE) ? -1.0f : 1.0f;

    hand_case h;
    h.cfg.lr = 0.5;
    h.cfg.alpha = 0.75;
    h.cfg.eps = in_sqrt ? (centered ? 55.0 : 39.0) : (centered ? 5.0 : 3.0);
    h.cfg.weight_decay = wd ? 0.5 : 0.0;
    h.cfg.momentum = mom ? 0.5 : 0.0;
    h.cfg.flags = flags;

    h.p0 = wd ? 2.0f : 1.0f;
    /* g = (maximize ? -grad : grad) + (coupled wd ? 0.5 * 2 : 0) must be sign * 4. */
    if (wd && !decoupled)
        h.grad = (flags & RMSFUSE_MAXIMIZE) ? 5.0f : 3.0f;
    else
        h.grad = 4.0f;
    h.v0 = 28.0f;
    h.b0 = sign * (nesterov ? 3.0f : 1.0f);
    h.ga0 = sign * 4.0f;

    const float p = decoupled ? h.p0 * 0.75f : h.p0; /* decoupled decay first */
    h.v1 = 25.0f;
    h.ga1 = centered ? sign * 4.0f : h.ga0; /* unchanged when not centered */
    if (!mom) {
        h.b1 = h.b0; /* unused: unchanged */
        h.p1 = p - sign * 0.25f;
    } else if (tf) {
        h.b1 = sign * (nesterov ? 1.75f : 0.75f);
        h.p1 = p - sign * (nesterov ? 1.125f : 0.75f);
    } else {
        h.b1 = sign * (nesterov ? 2.0f : 1.0f);
        h.p1 = p - sign * (nesterov ? 0.75f : 0.5f);
    }
    return h;
}

START_TEST(test_hand_computed)
{
    const unsigned variant = (unsigned)_i;
    hand_case h = hand_case_for(variant);
    /* Check the raw gradient really gives g = sign * 4 after the
     * library's own negation and (coupled) weight decay (documents the
     * choice). */
    float g = (h.cfg.flags & RMSFUSE_MAXIMIZE) ? -h.grad : h.grad;
    if (!(h.cfg.flags & RMSFUSE_DECOUPLED_DECAY))
        g = g + (float)h.cfg.weight_decay * h.p0;
    ck_assert_float_eq(fabsf(g), 4.0f);

    enum { N = 37 }; /* several vectors plus a tail on every ISA */
    float p[N], gr[N], v[N], b[N], ga[N];
    for (int i = 0; i < N; i++) {
        p[i] = h.p0;
        gr[i] = h.grad;
        v[i] = h.v0;
        b[i] = h.b0;
        ga[i] = h.ga0;
    }
    if ((h.cfg.flags & RMSFUSE_NESTEROV) && h.cfg.momentum == 0.0) {
        /* NESTEROV needs momentum: refused, nothing written. */
        ck_assert_int_eq(rmsfuse_rmsprop_step(&h.cfg, p, gr, v, b, ga, N), RMSFUSE_E_NESTEROV);
        for (int i = 0; i < N; i++)
            REQUIRE_MSG(p[i] == h.p0 && v[i] == h.v0 && b[i] == h.b0 && ga[i] == h.ga0,
                        "variant %u elem %d: a refused step wrote", variant, i);
        return;
    }
    ck_assert_int_eq(rmsfuse_rmsprop_step(&h.cfg, p, gr, v, b, ga, N), RMSFUSE_OK);
    for (int i = 0; i < N; i++) {
        REQUIRE_MSG(p[i] == h.p1, "variant %u elem %d: param %a, expected %a", variant, i, p[i], h.p1);
        REQUIRE_MSG(v[i] == h.v1, "variant %u elem %d: square_avg %a, expected %a", variant, i, v[i], h.v1);
        REQUIRE_MSG(b[i] == h.b1, "variant %u elem %d: momentum %a, expected %a", variant, i, b[i], h.b1);
        REQUIRE_MSG(ga[i] == h.ga1, "variant %u elem %d: grad_avg %a, expected %a", variant, i, ga[i], h.ga1);
        REQUIRE_MSG(gr[i] == h.grad, "variant %u elem %d: grad written", variant, i); /* grad is read only */
    }
}
END_TEST

/* Two steps from zero state with PyTorch defaults, computed by hand in
 * float32 op order (alpha 0.99: a = 0.99f, c = (float)0.01). */
START_TEST(test_two_steps_from_zero)
{
    rmsfuse_rmsprop_config cfg = rmsfuse_rmsprop_pytorch(0.01);
    float p = 1.0f, g = 0.5f, v = 0.0f;
    ck_assert_int_eq(rmsfuse_rmsprop_step(&cfg, &p, &g, &v, NULL, NULL, 1), RMSFUSE_OK);
    const float a = 0.99f, c = (float)(1.0 - 0.99), e = 1e-8f, nl = -0.01f;
    float ev = 0.0f * a + (c * 0.5f) * 0.5f;
    float ep = 1.0f + (nl * 0.5f) / (sqrtf(ev) + e);
    ck_assert(same_float(v, ev));
    ck_assert(same_float(p, ep));
    /* sqrt(0.0025) = 0.05, so the first step is ~lr * 0.5 / 0.05 = 0.1. */
    ck_assert_float_eq_tol(p, 0.9f, 1e-6f);
    ck_assert_int_eq(rmsfuse_rmsprop_step(&cfg, &p, &g, &v, NULL, NULL, 1), RMSFUSE_OK);
    float ev2 = ev * a + (c * 0.5f) * 0.5f;
    float ep2 = ep + (nl * 0.5f) / (sqrtf(ev2) + e);
    ck_assert(same_float(v, ev2));
    ck_assert(same_float(p, ep2));
}
END_TEST

/* ------------------------------------------------------------------------
 * Error rules: each rejected call returns its status and writes nothing.
 * ---------------------------------------------------------------------- */
enum { EN = 64 };
typedef struct arrays {
    float buf[6 * EN]; /* one block, so overlap tests can alias inside it */
    float *p, *g, *v, *b, *ga;
    float copy[6 * EN];
} arrays;

static void arrays_init(arrays *A)
{
    test_rng r = {42};
    for (size_t i = 0; i < sizeof A->buf / sizeof A->buf[0]; i++)
        A->buf[i] = rng_uniform(&r, 0.1f, 2.0f);
    A->p = A->buf;
    A->g = A->buf + EN;
    A->v = A->buf + 2 * EN;
    A->b = A->buf + 3 * EN;
    A->ga = A->buf + 4 * EN;
    memcpy(A->copy, A->buf, sizeof A->buf);
}

static void assert_untouched(const arrays *A, const char *what)
{
    ck_assert_msg(memcmp(A->copy, A->buf, sizeof A->buf) == 0, "%s: a rejected call wrote to the arrays", what);
}

static rmsfuse_rmsprop_config full_config(void)
{
    rmsfuse_rmsprop_config c = {0.01, 0.9, 1e-8, 0.1, 0.9, RMSFUSE_CENTERED};
    return c;
}

#define EXPECT_REJECT(status, cfgp, p, g, v, b, ga, n)                                                  \
    do {                                                                                              \
        arrays_init(&A);                                                                              \
        int st_ = rmsfuse_rmsprop_step((cfgp), (p), (g), (v), (b), (ga), (n));                        \
        ck_assert_msg(st_ == (status), "line %d: got %d (%s), expected %d (%s)", __LINE__, st_,      \
                      rmsfuse_strerror(st_), (int)(status), rmsfuse_strerror(status));                \
        assert_untouched(&A, #status);                                                                \
        /* The same rules through the checker and a one-tensor list. */                               \
        st_ = rmsfuse_rmsprop_check((cfgp), (p), (g), (v), (b), (ga), (n));                           \
        ck_assert_msg(st_ == (status), "line %d: check gave %d", __LINE__, st_);                      \
        rmsfuse_tensor t_ = {(p), (g), (v), (b), (ga), (n)};                                          \
        st_ = rmsfuse_rmsprop_step_multi((cfgp), &t_, 1);                                             \
        ck_assert_msg(st_ == (status), "line %d: step_multi gave %d", __LINE__, st_);                 \
        st_ = rmsfuse_rmsprop_check_multi((cfgp), &t_, 1);                                            \
        ck_assert_msg(st_ == (status), "line %d: check_multi gave %d", __LINE__, st_);                \
        assert_untouched(&A, #status);                                                                \
    } while (0)

static arrays A;

START_TEST(test_null_pointers)
{
    rmsfuse_rmsprop_config c = full_config();
    arrays_init(&A);
    EXPECT_REJECT(RMSFUSE_E_NULL_CONFIG, NULL, A.p, A.g, A.v, A.b, A.ga, EN);
    EXPECT_REJECT(RMSFUSE_E_NULL_ARRAY, &c, NULL, A.g, A.v, A.b, A.ga, EN);
    EXPECT_REJECT(RMSFUSE_E_NULL_ARRAY, &c, A.p, NULL, A.v, A.b, A.ga, EN);
    EXPECT_REJECT(RMSFUSE_E_NULL_ARRAY, &c, A.p, A.g, NULL, A.b, A.ga, EN);
    EXPECT_REJECT(RMSFUSE_E_NULL_MOMENTUM_BUF, &c, A.p, A.g, A.v, NULL, A.ga, EN);
    EXPECT_REJECT(RMSFUSE_E_NULL_GRAD_AVG, &c, A.p, A.g, A.v, A.b, NULL, EN);
    c.flags = RMSFUSE_LR_IN_MOMENTUM;
    EXPECT_REJECT(RMSFUSE_E_NULL_MOMENTUM_BUF, &c, A.p, A.g, A.v, NULL, NULL, EN);
}
END_TEST

START_TEST(test_unused_buffers_may_be_null)
{
    rmsfuse_rmsprop_config c = rmsfuse_rmsprop_pytorch(0.01);
    arrays_init(&A);
    ck_assert_int_eq(rmsfuse_rmsprop_step(&c, A.p, A.g, A.v, NULL, NULL, EN), RMSFUSE_OK);
    /* Unused buffers are not read, written, or checked for overlap. */
    ck_assert_int_eq(rmsfuse_rmsprop_step(&c, A.p, A.g, A.v, A.p, A.p, EN), RMSFUSE_OK);
    c = rmsfuse_rmsprop_keras(0.001); /* LR_IN_MOMENTUM but momentum 0: no buffer needed */
    ck_assert_int_eq(rmsfuse_rmsprop_step(&c, A.p, A.g, A.v, NULL, NULL, EN), RMSFUSE_OK);
}
END_TEST

/* Sets field number `f` of a config to x. */
static void set_field(rmsfuse_rmsprop_config *c, int f, double x)
{
    double *fields[5] = {&c->lr, &c->alpha, &c->eps, &c->weight_decay, &c->momentum};
    *fields[f] = x;
}

START_TEST(test_nonfinite_hyperparameters)
{
    const double bad[] = {NAN, -NAN, INFINITY, -INFINITY, 1e39, -1e39, DBL_MAX};
    for (int f = 0; f < 5; f++)
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            rmsfuse_rmsprop_config c = full_config();
            set_field(&c, f, bad[i]);
            EXPECT_REJECT(RMSFUSE_E_NONFINITE, &c, A.p, A.g, A.v, A.b, A.ga, EN);
            ck_assert_int_eq(rmsfuse_rmsprop_check_config(&c), RMSFUSE_E_NONFINITE);
        }
}
END_TEST

START_TEST(test_hyperparameter_ranges)
{
    struct {
        int field;
        double value;
        int status;
    } cases[] = {
        {0, -1e-12, RMSFUSE_E_LR},
        {1, -1e-12, RMSFUSE_E_ALPHA},
        {1, 1.0 + 1e-12, RMSFUSE_E_ALPHA},
        {2, -1e-30, RMSFUSE_E_EPS},
        {3, -1e-30, RMSFUSE_E_WEIGHT_DECAY},
        {4, -1e-30, RMSFUSE_E_MOMENTUM},
        {4, 1.0, RMSFUSE_E_MOMENTUM},
        {4, 1.5, RMSFUSE_E_MOMENTUM},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rmsfuse_rmsprop_config c = full_config();
        set_field(&c, cases[i].field, cases[i].value);
        EXPECT_REJECT(cases[i].status, &c, A.p, A.g, A.v, A.b, A.ga, EN);
        ck_assert_int_eq(rmsfuse_rmsprop_check_config(&c), cases[i].status);
    }
    /* The bounds themselves are accepted. */
    const double ok[][2] = {{0, 0.0}, {1, 0.0}, {1, 1.0}, {2, 0.0}, {3, 0.0}, {4, 0.0}, {4, 0.999999}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        rmsfuse_rmsprop_config c = full_config();
        set_field(&c, (int)ok[i][0], ok[i][1]);
        arrays_init(&A);
        ck_assert_int_eq(rmsfuse_rmsprop_step(&c, A.p, A.g, A.v, A.b, A.ga, EN), RMSFUSE_OK);
    }
}
END_TEST

START_TEST(test_unknown_flags)
{
    for (unsigned bit = 0; bit < 32; bit++) {
        if (RMSFUSE_RMSPROP_FLAGS & (1u << bit))
            continue;
        rmsfuse_rmsprop_config c = full_config();
        c.flags |= 1u << bit;
        EXPECT_REJECT(RMSFUSE_E_FLAGS, &c, A.p, A.g, A.v, A.b, A.ga, EN);
    }
}
END_TEST

START_TEST(test_overlap)
{
    rmsfuse_rmsprop_config c = full_config();
    arrays_init(&A);
    /* Every ordered pair of the five arrays: fully aliased, or overlapping
     * by one element at either end.  Arrays of n = EN/2 laid out EN apart
     * from A.buf + EN/2, so every pointer stays inside A.buf. */
    const size_t n = EN / 2;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            if (i == j)
                continue;
            for (int shift = -1; shift <= 1; shift++) {
                float *ptr[5];
                for (int k = 0; k < 5; k++)
                    ptr[k] = A.buf + EN / 2 + k * EN;
                ptr[j] = ptr[i] + shift * (ptrdiff_t)(n - 1);
                EXPECT_REJECT(RMSFUSE_E_OVERLAP, &c, ptr[0], ptr[1], ptr[2], ptr[3], ptr[4], n);
            }
        }
    /* Adjacent arrays are fine. */
    arrays_init(&A);
    ck_assert_int_eq(rmsfuse_rmsprop_step(&c, A.p, A.g, A.v, A.b, A.ga, EN), RMSFUSE_OK);
}
END_TEST

START_TEST(test_size_overflow)
{
    rmsfuse_rmsprop_config c = full_config();
    EXPECT_REJECT(RMSFUSE_E_SIZE, &c, A.p, A.g, A.v, A.b, A.ga, SIZE_MAX);
    EXPECT_REJECT(RMSFUSE_E_SIZE, &c, A.p, A.g, A.v, A.b, A.ga, SIZE_MAX / sizeof(float) + 1);
    /* A range that would wrap around the end of the address space. */
    float *top = (float *)(uintptr_t)(UINTPTR_MAX - 64 * sizeof(float) + 1);
    EXPECT_REJECT(RMSFUSE_E_SIZE, &c, top, A.g, A.v, A.b, A.ga, 128);
}
END_TEST

START_TEST(test_n_zero)
{
    rmsfuse_rmsprop_config c = full_config();
    ck_assert_int_eq(rmsfuse_rmsprop_step(&c, NULL, NULL, NULL, NULL, NULL, 0), RMSFUSE_OK);
    EXPECT_REJECT(RMSFUSE_OK, &c, A.p, A.g, A.v, A.b, A.ga, 0);
    /* The configuration is still validated. */
    c.lr = NAN;
    ck_assert_int_eq(rmsfuse_rmsprop_step(&c, NULL, NULL, NULL, NULL, NULL, 0), RMSFUSE_E_NONFINITE);
    ck_assert_int_eq(rmsfuse_rmsprop_step(NULL, NULL, NULL, NULL, NULL, NULL, 0), RMSFUSE_E_NULL_CONFIG);
}
END_TEST

/* ------------------------------------------------------------------------
 * Special values: what IEEE gives, through the defined op order.
 * ---------------------------------------------------------------------- */
static void step1(const rmsfuse_rmsprop_config *c, float *p, float g, float *v, float *b, float *ga)
{
    ck_assert_int_eq(rmsfuse_rmsprop_step(c, p, &g, v, b, ga, 1), RMSFUSE_OK);
}

START_TEST(test_special_values)
{
    rmsfuse_rmsprop_config c = rmsfuse_rmsprop_pytorch(0.01);
    float p, v;

    /* NaN gradient poisons param and state. */
    p = 1.0f, v = 0.0f;
    step1(&c, &p, NAN, &v, NULL, NULL);
    ck_assert(isnan(p) && isnan(v));

    /* Infinite gradient: v = inf, d = inf, g/d = inf/inf = NaN. */
    p = 1.0f, v = 0.0f;
    step1(&c, &p, INFINITY, &v, NULL, NULL);
    ck_assert(isinf(v) && v > 0);
    ck_assert(isnan(p));

    /* Zero gradient leaves param unchanged and decays v. */
    p = 3.0f, v = 2.0f;
    step1(&c, &p, 0.0f, &v, NULL, NULL);
    ck_assert_float_eq(p, 3.0f);
    ck_assert(same_float(v, 2.0f * 0.99f));

    /* Signed zeros: -0 + (-lr * +0) / d = -0 + -0 = -0. */
    p = -0.0f, v = 1.0f;
    step1(&c, &p, 0.0f, &v, NULL, NULL);
    ck_assert(f2u(p) == f2u(-0.0f));
    /* +0 + (-lr * -0) / d = +0 + +0 = +0. */
    p = 0.0f, v = 1.0f;
    step1(&c, &p, -0.0f, &v, NULL, NULL);
    ck_assert(f2u(p) == f2u(0.0f));

    /* eps == 0 is allowed: 0/0 is NaN, identically on every path. */
    c.eps = 0.0;
    p = 1.0f, v = 0.0f;
    step1(&c, &p, 0.0f, &v, NULL, NULL);
    ck_assert(isnan(p));
    ck_assert(f2u(v) == 0);

    /* Subnormal gradient: (c*g)*g underflows to 0, d = eps, the step is
     * the subnormal -lr*g/eps computed in float. */
    c = rmsfuse_rmsprop_pytorch(0.5);
    c.eps = 0.5;
    p = 0.0f, v = 0.0f;
    const float tiny = FLT_TRUE_MIN * 4;
    step1(&c, &p, tiny, &v, NULL, NULL);
    ck_assert(f2u(v) == 0);
    ck_assert(same_float(p, 0.0f + (-0.5f * tiny) / 0.5f));
    ck_assert(p < 0 && fpclassify(p) == FP_SUBNORMAL);

    /* Infinite param with weight decay: g = g + w*inf = inf. */
    c = rmsfuse_rmsprop_pytorch(0.01);
    c.weight_decay = 0.1;
    p = INFINITY, v = 0.0f;
    step1(&c, &p, 1.0f, &v, NULL, NULL);
    ck_assert(isnan(p) && isinf(v));
    /* ... and without weight decay an infinite param just stays infinite. */
    c.weight_decay = 0.0;
    p = -INFINITY, v = 0.0f;
    step1(&c, &p, 1.0f, &v, NULL, NULL);
    ck_assert(isinf(p) && p < 0);

    /* Centered with g constant: s = v - ga^2 can round below zero and give
     * NaN through sqrt; what it gives is defined by the op order. */
    c = rmsfuse_rmsprop_pytorch(0.01);
    c.flags = RMSFUSE_CENTERED;
    c.alpha = 0.0; /* v = g*g, ga = g: s = 0 exactly */
    float ga = 0.0f, b;
    p = 1.0f, v = 5.0f;
    (void)b;
    step1(&c, &p, 3.0f, &v, NULL, &ga);
    ck_assert_float_eq(v, 9.0f);
    ck_assert_float_eq(ga, 3.0f);
    ck_assert(same_float(p, 1.0f + (-0.01f * 3.0f) / (0.0f + 1e-8f)));
}
END_TEST

/* Large momentum (rounding to 1.0f in float) is accepted: the range rule is
 * on the double. */
START_TEST(test_constants_rounded_once)
{
    rmsfuse_rmsprop_config c = rmsfuse_rmsprop_pytorch(0.1);
    c.alpha = 0.99; /* c = (float)(1.0 - 0.99), not 1.0f - (float)0.99 */
    float p = 0.0f, g = 1.0f, v = 0.0f;
    step1(&c, &p, g, &v, NULL, NULL);
    const float cc = (float)(1.0 - 0.99);
    ck_assert(same_float(v, (cc * 1.0f) * 1.0f));
    ck_assert(cc != 1.0f - 0.99f); /* the two derivations really differ here */
    ck_assert(f2u(v) == f2u(cc));

    c.momentum = 1.0 - 1e-12; /* < 1 as a double, 1.0f as a float */
    float b = 0.0f;
    p = 0.0f, v = 0.0f;
    ck_assert_int_eq(rmsfuse_rmsprop_step(&c, &p, &g, &v, &b, NULL, 1), RMSFUSE_OK);
}
END_TEST

START_TEST(test_presets)
{
    rmsfuse_rmsprop_config t = rmsfuse_rmsprop_pytorch(0.02);
    ck_assert(t.lr == 0.02 && t.alpha == 0.99 && t.eps == 1e-8 && t.weight_decay == 0 && t.momentum == 0);
    /* Every preset sets RMSFUSE_FLUSH_SUBNORMAL (docs/math.md). */
    ck_assert_uint_eq(t.flags, RMSFUSE_FLUSH_SUBNORMAL);
    rmsfuse_rmsprop_config f = rmsfuse_rmsprop_tensorflow(0.001);
    ck_assert(f.lr == 0.001 && f.alpha == 0.9 && f.eps == 1e-10 && f.weight_decay == 0 && f.momentum == 0);
    ck_assert_uint_eq(f.flags, RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_FLUSH_SUBNORMAL);
    rmsfuse_rmsprop_config k = rmsfuse_rmsprop_keras(0.001);
    ck_assert(k.lr == 0.001 && k.alpha == 0.9 && k.eps == 1e-7 && k.weight_decay == 0 && k.momentum == 0);
    ck_assert_uint_eq(k.flags, RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_FLUSH_SUBNORMAL);
    ck_assert_int_eq(rmsfuse_rmsprop_check_config(&t), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_rmsprop_check_config(&f), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_rmsprop_check_config(&k), RMSFUSE_OK);
}
END_TEST

START_TEST(test_version_and_strings)
{
    ck_assert_str_eq(rmsfuse_version(), RMSFUSE_VERSION_STRING);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", RMSFUSE_VERSION_MAJOR, RMSFUSE_VERSION_MINOR, RMSFUSE_VERSION_PATCH);
    ck_assert_str_eq(buf, RMSFUSE_VERSION_STRING);
    ck_assert_int_eq(RMSFUSE_VERSION_NUMBER,
                     RMSFUSE_VERSION_MAJOR * 10000 + RMSFUSE_VERSION_MINOR * 100 + RMSFUSE_VERSION_PATCH);

    const char *unknown = rmsfuse_strerror(12345);
    ck_assert_ptr_nonnull(unknown);
    ck_assert_ptr_null(rmsfuse_status_name(12345));
    /* The header's table: codes 0, -1, -2, ... without gaps, then the
     * outcomes that are not errors, 1, 2, ... (RMSFUSE_SKIPPED), each with
     * its own text and its own name. */
    static const struct {
        const char *name;
        int value;
        const char *text;
    } table[] = {
#define ROW(name, value, text) {#name, value, text},
        RMSFUSE_STATUS_TABLE(ROW)
#undef ROW
    };
    const int rows = (int)(sizeof table / sizeof table[0]);
    int count = 0; /* the codes 0, -1, ..., -(count - 1) */
    while (count < rows && table[count].value <= 0)
        count++;
    for (int i = count; i < rows; i++)
        ck_assert_int_eq(table[i].value, i - count + 1);
    ck_assert_int_eq(RMSFUSE_SKIPPED, 1);
    ck_assert_str_eq(rmsfuse_status_name(RMSFUSE_SKIPPED), "RMSFUSE_SKIPPED");
    ck_assert_ptr_null(rmsfuse_status_name(rows - count + 1));
    for (int i = 0; i < count; i++) {
        const int s = table[i].value;
        ck_assert_int_eq(s, -i);
        const char *m = rmsfuse_strerror(s);
        ck_assert_ptr_nonnull(m);
        ck_assert_str_eq(m, table[i].text);
        ck_assert_str_eq(rmsfuse_status_name(s), table[i].name);
        ck_assert_msg(strcmp(m, unknown) != 0, "status %d has no description", s);
        for (int t = s + 1; t <= 0; t++)
            ck_assert_msg(strcmp(m, rmsfuse_strerror(t)) != 0, "statuses %d and %d share a text", s, t);
    }
    ck_assert_str_eq(rmsfuse_strerror(-count), unknown);
    ck_assert_ptr_null(rmsfuse_status_name(-count));
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("hand");
    tcase_add_loop_test(tc, test_hand_computed, 0, HAND_VARIANTS);
    tcase_add_test(tc, test_two_steps_from_zero);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_null_pointers);
    tcase_add_test(tc, test_unused_buffers_may_be_null);
    tcase_add_test(tc, test_nonfinite_hyperparameters);
    tcase_add_test(tc, test_hyperparameter_ranges);
    tcase_add_test(tc, test_unknown_flags);
    tcase_add_test(tc, test_overlap);
    tcase_add_test(tc, test_size_overflow);
    tcase_add_test(tc, test_n_zero);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_test(tc, test_special_values);
    tcase_add_test(tc, test_constants_rounded_once);
    tcase_add_test(tc, test_presets);
    tcase_add_test(tc, test_version_and_strings);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return rmsfuse_test_run(api_suite());
}

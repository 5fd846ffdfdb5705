/*
 * Golden-vector test: every rule of the library against vectors generated
 * independently of the C code by tests/golden/gen_golden.py (a NumPy float32
 * emulation of docs/math.md's op order, float64 references from the
 * frameworks' formulas, forward-error bounds; see the script's docstring and
 * the comment at the top of golden/golden_vectors.inc).
 *
 * For every case and step, every output element must be
 *   - bit-identical to the float32 emulation (NaN: NaN-ness only), and
 *   - within the case's error bound of the float64 reference (bound -1: the
 *     analysis gives no bound there, NaN-ness of output and reference agree;
 *     -2: their NaN-ness differs by design, bits only).
 * Each case's elements are tiled TILE times into longer arrays that start at a
 * case-dependent misalignment, so the SIMD bodies, heads and tails of the
 * active ISA all see the vectors; elements are independent, so every copy
 * must give the same bits.  Every case runs through the rule's _step call
 * (every array passed, the unused ones must stay unchanged), and a second
 * time either through _step_multi (the tiled arrays cut into tensors, one of
 * them empty) or through a plan run in ranges, with NULL for the arrays the
 * configuration does not use (with RMSFUSE_TEST_QUICK=1, for every fourth
 * case: valgrind and qemu runs).
 */
#include "test_common.h"

enum { GOLDEN_RMSPROP, GOLDEN_ADAGRAD, GOLDEN_SGD, GOLDEN_ADAM, GOLDEN_N_RULES };

typedef struct golden_case {
    const char *name;
    int rule;             /* GOLDEN_<RULE> */
    const char *ref;      /* the float64 reference formula(s) */
    double hp[5];         /* the rule's config fields in order (see the .inc) */
    long long step;       /* AdaGrad, Adam: the step of the first step, +1 per step */
    unsigned flags;       /* flags of step 0 */
    unsigned flags_later; /* flags of steps 1.. */
    unsigned unused;      /* bit k: output k is an array the configuration does not use */
    unsigned special;     /* 0: bounds finite; 1: eps == 0 edge (-1 allowed); 2: special values (-1, -2) */
    unsigned n;           /* elements */
    unsigned steps;       /* consecutive steps on the same state */
    unsigned in_off;      /* golden_in: param, grad, states, grads of steps 1.. */
    unsigned out_off;     /* golden_out32/ref64/bound: per step the K outputs */
} golden_case;

#include "golden/golden_vectors.inc"

#define N_CASES ((int)(sizeof golden_cases / sizeof golden_cases[0]))
#define TILE 7u
#define MAX_K 4
#define MAX_ARR (MAX_K + 1) /* param, grad, state 1 .. K-1 */

static const char *const rule_names[GOLDEN_N_RULES] = {"rmsprop", "adagrad", "sgd", "adam"};
static const char *const out_names[GOLDEN_N_RULES][MAX_K] = {
    {"param", "square_avg", "momentum_buf", "grad_avg"},
    {"param", "sum", NULL, NULL},
    {"param", "momentum_buf", NULL, NULL},
    {"param", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
};

/* Per rule: outputs per step, the flags it accepts and which hyperparameters
 * (indices into hp[]) select code paths by being zero or not: a case's
 * variant class is its flags and those zero/non-zero bits. */
typedef struct rule_info {
    unsigned k;
    unsigned nflags;
    unsigned flag_bits[7];
    unsigned nnz;
    unsigned nz_idx[3];
    double rep_hp[5]; /* representative non-zero values, for enumerating the classes */
    long long rep_step;
} rule_info;

static const rule_info rules[GOLDEN_N_RULES] = {
    {4, 7,
     {RMSFUSE_CENTERED, RMSFUSE_EPS_IN_SQRT, RMSFUSE_LR_IN_MOMENTUM, RMSFUSE_MAXIMIZE, RMSFUSE_DECOUPLED_DECAY,
      RMSFUSE_NESTEROV, RMSFUSE_FLUSH_SUBNORMAL},
     2, {3, 4}, {0.01, 0.9, 1e-8, 0.01, 0.9}, 0},
    {2, 4, {RMSFUSE_EPS_IN_SQRT, RMSFUSE_MAXIMIZE, RMSFUSE_DECOUPLED_DECAY, RMSFUSE_FLUSH_SUBNORMAL}, 2, {1, 2},
     {0.01, 0.1, 0.01, 1e-10}, 2},
    {2, 6,
     {RMSFUSE_LR_IN_MOMENTUM, RMSFUSE_MAXIMIZE, RMSFUSE_DECOUPLED_DECAY, RMSFUSE_NESTEROV, RMSFUSE_INIT_MOMENTUM,
      RMSFUSE_FLUSH_SUBNORMAL},
     3, {1, 2, 3}, {0.01, 0.9, 0.1, 0.01}, 0},
    {4, 5, {RMSFUSE_MAXIMIZE, RMSFUSE_DECOUPLED_DECAY, RMSFUSE_AMSGRAD, RMSFUSE_EPS_HAT, RMSFUSE_FLUSH_SUBNORMAL}, 1,
     {4}, {1e-3, 0.9, 0.999, 1e-8, 0.01}, 1},
};

static unsigned flags_at(const golden_case *gc, unsigned s)
{
    return s == 0 ? gc->flags : gc->flags_later;
}

/* The configurations of step s (designated initialisers: the field order of
 * hp[] is documented in the .inc, the struct's may change). */
static rmsfuse_rmsprop_config rmsprop_cfg(const golden_case *gc, unsigned s)
{
    const rmsfuse_rmsprop_config c = {.lr = gc->hp[0], .alpha = gc->hp[1], .eps = gc->hp[2],
                                      .weight_decay = gc->hp[3], .momentum = gc->hp[4], .flags = flags_at(gc, s)};
    return c;
}

static rmsfuse_adagrad_config adagrad_cfg(const golden_case *gc, unsigned s)
{
    const rmsfuse_adagrad_config c = {.lr = gc->hp[0], .lr_decay = gc->hp[1], .weight_decay = gc->hp[2],
                                      .eps = gc->hp[3], .step = gc->step + s, .flags = flags_at(gc, s)};
    return c;
}

static rmsfuse_sgd_config sgd_cfg(const golden_case *gc, unsigned s)
{
    const rmsfuse_sgd_config c = {.lr = gc->hp[0], .momentum = gc->hp[1], .dampening = gc->hp[2],
                                  .weight_decay = gc->hp[3], .flags = flags_at(gc, s)};
    return c;
}

static rmsfuse_adam_config adam_cfg(const golden_case *gc, unsigned s)
{
    const rmsfuse_adam_config c = {.lr = gc->hp[0], .beta1 = gc->hp[1], .beta2 = gc->hp[2], .eps = gc->hp[3],
                                   .weight_decay = gc->hp[4], .step = gc->step + s, .flags = flags_at(gc, s)};
    return c;
}

static int check_cfg(const golden_case *gc, unsigned s)
{
    switch (gc->rule) {
    case GOLDEN_RMSPROP: {
        const rmsfuse_rmsprop_config c = rmsprop_cfg(gc, s);
        return rmsfuse_rmsprop_check_config(&c);
    }
    case GOLDEN_ADAGRAD: {
        const rmsfuse_adagrad_config c = adagrad_cfg(gc, s);
        return rmsfuse_adagrad_check_config(&c);
    }
    case GOLDEN_SGD: {
        const rmsfuse_sgd_config c = sgd_cfg(gc, s);
        return rmsfuse_sgd_check_config(&c);
    }
    default: {
        const rmsfuse_adam_config c = adam_cfg(gc, s);
        return rmsfuse_adam_check_config(&c);
    }
    }
}

/* ---- running a step -------------------------------------------------------- */

enum { PATH_STEP, PATH_MULTI, PATH_PLAN };
static const char *const path_names[3] = {"_step", "_step_multi", "plan"};

/* Tensor pieces for the multi/plan paths: [0, c1), an empty tensor, [c1, c2), [c2, total). */
#define PIECES 4

typedef struct pieces {
    size_t begin[PIECES], n[PIECES];
} pieces;

static pieces cut_pieces(size_t total, unsigned salt)
{
    const size_t c1 = total / 3 + salt % 5, c2 = (2 * total) / 3 + salt % 3;
    pieces pc = {{0, 0, c1, c2}, {c1, 0, c2 - c1, total - c2}};
    return pc;
}

/* Pointer to element `at` of array slot `slot`, NULL for an empty piece or a
 * state the configuration does not use (the library must accept NULL there). */
static float *piece_ptr(float *const *a, const golden_case *gc, unsigned slot, const pieces *pc, int j)
{
    if (pc->n[j] == 0)
        return NULL;
    if (slot >= 2 && (gc->unused >> (slot - 1) & 1u))
        return NULL;
    return a[slot] ? a[slot] + pc->begin[j] : NULL;
}

/* Runs a plan in three ranges, last range first: any cut gives the same bits. */
static int run_plan(rmsfuse_plan *plan, int st, size_t total, unsigned salt)
{
    if (st != RMSFUSE_OK)
        return st;
    ck_assert_uint_eq(rmsfuse_plan_elements(plan), total);
    const size_t r1 = total / 4 + salt % 7, r2 = (3 * total) / 5;
    int rc = rmsfuse_plan_run(plan, r2, total);
    if (rc == RMSFUSE_OK)
        rc = rmsfuse_plan_run(plan, 0, r1);
    if (rc == RMSFUSE_OK)
        rc = rmsfuse_plan_run(plan, r1, r2);
    rmsfuse_plan_free(plan);
    return rc;
}

/* One step s of case gc on arrays a[] (param, grad, states) of `total` elements. */
static int golden_step(const golden_case *gc, unsigned s, float *const *a, size_t total, int path, unsigned salt)
{
    const pieces pc = cut_pieces(total, salt);
    rmsfuse_plan *plan = NULL;
#define PP(slot, j) piece_ptr(a, gc, (slot), &pc, (j))
    switch (gc->rule) {
    case GOLDEN_RMSPROP: {
        const rmsfuse_rmsprop_config c = rmsprop_cfg(gc, s);
        if (path == PATH_STEP)
            return rmsfuse_rmsprop_step(&c, a[0], a[1], a[2], a[3], a[4], total);
        rmsfuse_tensor t[PIECES];
        for (int j = 0; j < PIECES; j++)
            t[j] = (rmsfuse_tensor){PP(0, j), PP(1, j), PP(2, j), PP(3, j), PP(4, j), pc.n[j]};
        if (path == PATH_MULTI)
            return rmsfuse_rmsprop_step_multi(&c, t, PIECES);
        const int st = rmsfuse_rmsprop_plan(&c, t, PIECES, &plan);
        return run_plan(plan, st, total, salt);
    }
    case GOLDEN_ADAGRAD: {
        const rmsfuse_adagrad_config c = adagrad_cfg(gc, s);
        if (path == PATH_STEP)
            return rmsfuse_adagrad_step(&c, a[0], a[1], a[2], total);
        rmsfuse_adagrad_tensor t[PIECES];
        for (int j = 0; j < PIECES; j++)
            t[j] = (rmsfuse_adagrad_tensor){PP(0, j), PP(1, j), PP(2, j), pc.n[j]};
        if (path == PATH_MULTI)
            return rmsfuse_adagrad_step_multi(&c, t, PIECES);
        const int st = rmsfuse_adagrad_plan(&c, t, PIECES, &plan);
        return run_plan(plan, st, total, salt);
    }
    case GOLDEN_SGD: {
        const rmsfuse_sgd_config c = sgd_cfg(gc, s);
        if (path == PATH_STEP)
            return rmsfuse_sgd_step(&c, a[0], a[1], a[2], total);
        rmsfuse_sgd_tensor t[PIECES];
        for (int j = 0; j < PIECES; j++)
            t[j] = (rmsfuse_sgd_tensor){PP(0, j), PP(1, j), PP(2, j), pc.n[j]};
        if (path == PATH_MULTI)
            return rmsfuse_sgd_step_multi(&c, t, PIECES);
        const int st = rmsfuse_sgd_plan(&c, t, PIECES, &plan);
        return run_plan(plan, st, total, salt);
    }
    default: {
        const rmsfuse_adam_config c = adam_cfg(gc, s);
        if (path == PATH_STEP)
            return rmsfuse_adam_step(&c, a[0], a[1], a[2], a[3], a[4], total);
        rmsfuse_adam_tensor t[PIECES];
        for (int j = 0; j < PIECES; j++)
            t[j] = (rmsfuse_adam_tensor){PP(0, j), PP(1, j), PP(2, j), PP(3, j), PP(4, j), pc.n[j]};
        if (path == PATH_MULTI)
            return rmsfuse_adam_step_multi(&c, t, PIECES);
        const int st = rmsfuse_adam_plan(&c, t, PIECES, &plan);
        return run_plan(plan, st, total, salt);
    }
    }
#undef PP
}

static void fill(float *dst, const uint32_t *src, unsigned n)
{
    for (unsigned r = 0; r < TILE; r++)
        for (unsigned j = 0; j < n; j++)
            dst[r * n + j] = u2f(src[j]);
}

/* Runs every step of case i through `path` and checks every output. */
static void run_case(int i, int path)
{
    const golden_case *gc = &golden_cases[i];
    const unsigned n = gc->n, K = rules[gc->rule].k, total = n * TILE;
    const size_t mis = (size_t)i % 5u; /* floats of misalignment from malloc's alignment */
    const uint32_t *in = golden_in + gc->in_off;

    float *mem[MAX_ARR] = {NULL}, *a[MAX_ARR] = {NULL};
    for (unsigned k = 0; k < K + 1; k++) {
        mem[k] = malloc((total + 8) * sizeof(float));
        ck_assert_ptr_nonnull(mem[k]);
        a[k] = mem[k] + mis;
        fill(a[k], in + k * n, n); /* param, grad (step 0), states in output order */
    }
    /* output k lives in slot 0 (param) or k + 1 (after grad) */
    float *outs[MAX_K];
    for (unsigned k = 0; k < K; k++)
        outs[k] = a[k == 0 ? 0 : k + 1];

    size_t checked_bits = 0, checked_bounds = 0;
    unsigned used = 0;
    for (unsigned k = 0; k < K; k++)
        used += path == PATH_STEP || !(gc->unused >> k & 1u);
    for (unsigned step = 0; step < gc->steps; step++) {
        if (step > 0)
            fill(a[1], in + (K + step) * n, n);
        const int st = golden_step(gc, step, a, total, path, (unsigned)i);
        ck_assert_msg(st == RMSFUSE_OK, "case %s (#%d) step %u via %s: status %d (%s)", gc->name, i, step,
                      path_names[path], st, rmsfuse_strerror(st));

        const size_t base = gc->out_off + (size_t)step * K * n;
        for (unsigned k = 0; k < K; k++) {
            if (path != PATH_STEP && (gc->unused >> k & 1u))
                continue; /* passed as NULL */
            for (unsigned j = 0; j < n; j++) {
                const uint32_t want = golden_out32[base + k * n + j];
                const double ref = golden_ref64[base + k * n + j];
                const double bound = golden_bound[base + k * n + j];
                for (unsigned r = 0; r < TILE; r++) {
                    /* (tested before calling Check: its messages' arguments are evaluated
                     * on every call, which is most of the time under valgrind) */
                    const float got = outs[k][r * n + j];
                    if (!same_float(got, u2f(want)))
                        ck_abort_msg("case %s (#%d, %s, %s) step %u elem %u (copy %u) %s: got 0x%08x (%.9g), "
                                     "expected 0x%08x (%.9g), %llu ulp apart",
                                     gc->name, i, rmsfuse_active_isa(), path_names[path], step, j, r,
                                     out_names[gc->rule][k], f2u(got), (double)got, want, (double)u2f(want),
                                     (unsigned long long)(isfinite(got) && isfinite(u2f(want))
                                                              ? ulp_distance(got, u2f(want))
                                                              : 0u));
                    checked_bits++;
                    if (r != 0 || path != PATH_STEP || bound == -2.0)
                        continue; /* the same bits: one comparison with float64 suffices */
                    if (bound < 0.0) {
                        if (!isnan(got) != !isnan(ref))
                            ck_abort_msg("case %s step %u elem %u %s: NaN-ness differs: got %.9g, float64 "
                                         "reference (%s) %.17g",
                                         gc->name, step, j, out_names[gc->rule][k], (double)got, gc->ref, ref);
                    } else {
                        if (!(isfinite(got) && isfinite(ref)))
                            ck_abort_msg("case %s step %u elem %u %s: non-finite got %.9g / reference %.17g "
                                         "where a bound %.3g is given",
                                         gc->name, step, j, out_names[gc->rule][k], (double)got, ref, bound);
                        const double err = fabs((double)got - ref);
                        if (!(err <= bound))
                            ck_abort_msg("case %s step %u elem %u %s: got %.9g (0x%08x), float64 reference (%s) "
                                         "%.17g: |diff| %.3g > bound %.3g",
                                         gc->name, step, j, out_names[gc->rule][k], (double)got, f2u(got),
                                         gc->ref, ref, err, bound);
                        checked_bounds++;
                    }
                }
            }
        }
    }
    /* nothing was skipped: every element of every copy compared; every output of an
     * ordinary case compared with float64 too */
    ck_assert_uint_eq(checked_bits, (size_t)gc->steps * used * n * TILE);
    if (path == PATH_STEP && gc->special == 0)
        ck_assert_uint_eq(checked_bounds, (size_t)gc->steps * K * n);
    for (unsigned k = 0; k < K + 1; k++)
        free(mem[k]);
}

/* RMSFUSE_TEST_QUICK=1 (valgrind, qemu): the second pass for every fourth case only. */
static int quick(void)
{
    const char *q = getenv("RMSFUSE_TEST_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

START_TEST(test_golden_case)
{
    run_case(_i, PATH_STEP);
    if (!quick() || _i % 4 < 2)
        run_case(_i, (_i & 1) ? PATH_PLAN : PATH_MULTI);
}
END_TEST

/* ---- the table itself -------------------------------------------------------- */

static unsigned class_of(const golden_case *gc)
{
    const rule_info *ri = &rules[gc->rule];
    unsigned key = 0;
    for (unsigned j = 0; j < ri->nflags; j++)
        key |= (gc->flags & ri->flag_bits[j]) ? 1u << j : 0u;
    for (unsigned j = 0; j < ri->nnz; j++)
        key |= gc->hp[ri->nz_idx[j]] != 0.0 ? 1u << (ri->nflags + j) : 0u;
    return key;
}

/* A case (one step) of class `key` with the rule's representative values. */
static golden_case class_example(int rule, unsigned key)
{
    const rule_info *ri = &rules[rule];
    golden_case gc = {"class", rule, "", {0}, ri->rep_step, 0, 0, 0, 0, 1, 1, 0, 0};
    memcpy(gc.hp, ri->rep_hp, sizeof gc.hp);
    for (unsigned j = 0; j < ri->nflags; j++)
        if (key >> j & 1u)
            gc.flags |= ri->flag_bits[j];
    for (unsigned j = 0; j < ri->nnz; j++)
        if (!(key >> (ri->nflags + j) & 1u))
            gc.hp[ri->nz_idx[j]] = 0.0;
    gc.flags_later = gc.flags;
    return gc;
}

static double eps_of(const golden_case *gc)
{
    return gc->rule == GOLDEN_RMSPROP ? gc->hp[2] : gc->rule == GOLDEN_SGD ? 1.0 : gc->hp[3];
}

START_TEST(test_golden_table)
{
    ck_assert_int_gt(N_CASES, 0);
    ck_assert_int_eq(N_CASES, GOLDEN_N_CASES);
    size_t in_end = 0, out_end = 0;
    for (int i = 0; i < N_CASES; i++) {
        const golden_case *gc = &golden_cases[i];
        ck_assert_msg(gc->rule >= 0 && gc->rule < GOLDEN_N_RULES, "case %s: rule %d", gc->name, gc->rule);
        const unsigned K = rules[gc->rule].k;
        ck_assert_msg(gc->n > 0 && gc->steps > 0 && gc->special <= 2, "case %s: n %u steps %u special %u",
                      gc->name, gc->n, gc->steps, gc->special);
        for (unsigned s = 0; s < gc->steps; s++)
            ck_assert_msg(check_cfg(gc, s) == RMSFUSE_OK, "case %s step %u: invalid configuration (%s)", gc->name,
                          s, rmsfuse_status_name(check_cfg(gc, s)));
        /* contiguous, in order, within the arrays */
        ck_assert_msg(gc->in_off == in_end && gc->out_off == out_end, "case %s: offsets", gc->name);
        in_end += (size_t)gc->n * (K + gc->steps);
        out_end += (size_t)gc->n * K * gc->steps;
        ck_assert_msg((gc->unused & 1u) == 0 && gc->unused >> K == 0, "case %s: unused mask %#x", gc->name,
                      gc->unused);
        /* Bounds are finite and >= 0, or -1 (NaN-ness) in the eps == 0 edge and special-value
         * cases, or -2 (bits only) in special-value cases. */
        ck_assert_msg(gc->special != 1 || eps_of(gc) == 0.0, "case %s: edge case with eps %g", gc->name,
                      eps_of(gc));
        for (size_t j = 0; j < (size_t)gc->n * K * gc->steps; j++) {
            const double bd = golden_bound[gc->out_off + j];
            ck_assert_msg(isfinite(bd) && (bd >= 0.0 || (bd == -1.0 && gc->special >= 1) ||
                                           (bd == -2.0 && gc->special == 2)),
                          "case %s: bound %g (special %u)", gc->name, bd, gc->special);
            /* an unused array comes back unchanged: out == in, bound 0 (-1 for a non-finite
             * input of a special-value case) */
            const unsigned k = (unsigned)(j / gc->n) % K;
            if (gc->unused >> k & 1u) {
                const uint32_t in_bits = golden_in[gc->in_off + (k + 1) * gc->n + j % gc->n];
                ck_assert_msg(golden_out32[gc->out_off + j] == in_bits &&
                                  (bd == 0.0 || (bd == -1.0 && gc->special == 2 && !isfinite(u2f(in_bits)))),
                              "case %s: unused %s changes", gc->name, out_names[gc->rule][k]);
            }
        }
    }
    ck_assert_uint_eq(in_end, sizeof golden_in / sizeof golden_in[0]);
    ck_assert_uint_eq(out_end, sizeof golden_out32 / sizeof golden_out32[0]);
    ck_assert_uint_eq(out_end, sizeof golden_ref64 / sizeof golden_ref64[0]);
    ck_assert_uint_eq(out_end, sizeof golden_bound / sizeof golden_bound[0]);
}
END_TEST

/* Every variant class the library accepts has a case, per rule (with and
 * without RMSFUSE_FLUSH_SUBNORMAL: the flag is one of the class bits);
 * multi-step, step > 1, eps == 0 and special-value cases exist, and
 * multi-step and special-value cases with the flag. */
START_TEST(test_golden_coverage)
{
    for (int rule = 0; rule < GOLDEN_N_RULES; rule++) {
        const rule_info *ri = &rules[rule];
        const unsigned nkeys = 1u << (ri->nflags + ri->nnz);
        unsigned char seen[512] = {0};
        int cases = 0, multi = 0, later_step = 0, eps0 = 0, special = 0, flag_change = 0;
        int flush_multi = 0, flush_special = 0;
        for (int i = 0; i < N_CASES; i++) {
            const golden_case *gc = &golden_cases[i];
            if (gc->rule != rule)
                continue;
            cases++;
            seen[class_of(gc)] = 1;
            multi += gc->steps > 1;
            later_step += gc->step + (long long)gc->steps - 1 > 1;
            eps0 += gc->special == 1;
            special += gc->special == 2;
            flag_change += gc->flags != gc->flags_later;
            flush_multi += gc->steps > 1 && (gc->flags & RMSFUSE_FLUSH_SUBNORMAL);
            flush_special += gc->special == 2 && (gc->flags & RMSFUSE_FLUSH_SUBNORMAL);
        }
        ck_assert_msg(nkeys <= sizeof seen, "%s: %u class keys", rule_names[rule], nkeys);
        int valid = 0;
        for (unsigned key = 0; key < nkeys; key++) {
            const golden_case ex = class_example(rule, key);
            if (check_cfg(&ex, 0) != RMSFUSE_OK)
                continue;
            valid++;
            ck_assert_msg(seen[key], "%s: no golden case for the class flags %#x, zero/non-zero key %#x",
                          rule_names[rule], ex.flags, key >> ri->nflags);
        }
        printf("golden: %-8s %4d cases cover all %3d variant classes the library accepts; %d multi-step\n",
               rule_names[rule], cases, valid, multi);
        ck_assert_int_gt(valid, 0);
        ck_assert_int_gt(multi, 0);
        ck_assert_int_gt(special, 0);
        ck_assert_int_gt(flush_multi, 0);
        ck_assert_int_gt(flush_special, 0);
        if (rule != GOLDEN_SGD)
            ck_assert_int_gt(eps0, 0);
        if (rule == GOLDEN_ADAGRAD || rule == GOLDEN_ADAM)
            ck_assert_int_gt(later_step, 0);
        if (rule == GOLDEN_SGD)
            ck_assert_int_gt(flag_change, 0); /* INIT_MOMENTUM on the first step only */
    }
}
END_TEST

/* The library's presets are among the cases, exactly as the functions return them. */
static int rmsprop_same(const rmsfuse_rmsprop_config *a, const rmsfuse_rmsprop_config *b)
{
    return a->lr == b->lr && a->alpha == b->alpha && a->eps == b->eps && a->weight_decay == b->weight_decay &&
           a->momentum == b->momentum && a->flags == b->flags;
}

static int adagrad_same(const rmsfuse_adagrad_config *a, const rmsfuse_adagrad_config *b)
{
    return a->lr == b->lr && a->lr_decay == b->lr_decay && a->weight_decay == b->weight_decay &&
           a->eps == b->eps && a->step == b->step && a->flags == b->flags;
}

static int sgd_same(const rmsfuse_sgd_config *a, const rmsfuse_sgd_config *b)
{
    return a->lr == b->lr && a->momentum == b->momentum && a->dampening == b->dampening &&
           a->weight_decay == b->weight_decay && a->flags == b->flags;
}

static int adam_same(const rmsfuse_adam_config *a, const rmsfuse_adam_config *b)
{
    return a->lr == b->lr && a->beta1 == b->beta1 && a->beta2 == b->beta2 && a->eps == b->eps &&
           a->weight_decay == b->weight_decay && a->step == b->step && a->flags == b->flags;
}

START_TEST(test_golden_presets)
{
    static const struct {
        const char *name;
        rmsfuse_rmsprop_config (*fn)(double);
    } rp[] = {{"rmsfuse_rmsprop_pytorch", rmsfuse_rmsprop_pytorch},
              {"rmsfuse_rmsprop_tensorflow", rmsfuse_rmsprop_tensorflow},
              {"rmsfuse_rmsprop_keras", rmsfuse_rmsprop_keras}};
    static const struct {
        const char *name;
        rmsfuse_adagrad_config (*fn)(double);
    } ag[] = {{"rmsfuse_adagrad_pytorch", rmsfuse_adagrad_pytorch},
              {"rmsfuse_adagrad_keras", rmsfuse_adagrad_keras},
              {"rmsfuse_adagrad_classic", rmsfuse_adagrad_classic}};
    static const struct {
        const char *name;
        rmsfuse_sgd_config (*fn)(double);
    } sg[] = {{"rmsfuse_sgd_pytorch", rmsfuse_sgd_pytorch}, {"rmsfuse_sgd_keras", rmsfuse_sgd_keras}};
    static const struct {
        const char *name;
        rmsfuse_adam_config (*fn)(double);
    } ad[] = {{"rmsfuse_adam_pytorch", rmsfuse_adam_pytorch},
              {"rmsfuse_adamw_pytorch", rmsfuse_adamw_pytorch},
              {"rmsfuse_adam_tensorflow", rmsfuse_adam_tensorflow},
              {"rmsfuse_adam_keras", rmsfuse_adam_keras},
              {"rmsfuse_adamw_keras", rmsfuse_adamw_keras}};
    int found[16] = {0};
    for (int i = 0; i < N_CASES; i++) {
        const golden_case *gc = &golden_cases[i];
        if (gc->special != 0)
            continue;
        const double lr = gc->hp[0];
        if (gc->rule == GOLDEN_RMSPROP) {
            const rmsfuse_rmsprop_config c = rmsprop_cfg(gc, 0);
            for (int k = 0; k < 3; k++) {
                const rmsfuse_rmsprop_config pr = rp[k].fn(lr);
                found[k] += rmsprop_same(&c, &pr);
            }
        } else if (gc->rule == GOLDEN_ADAGRAD) {
            const rmsfuse_adagrad_config c = adagrad_cfg(gc, 0);
            for (int k = 0; k < 3; k++) {
                const rmsfuse_adagrad_config pr = ag[k].fn(lr);
                found[3 + k] += adagrad_same(&c, &pr);
            }
        } else if (gc->rule == GOLDEN_SGD) {
            const rmsfuse_sgd_config c = sgd_cfg(gc, 0);
            for (int k = 0; k < 2; k++) {
                const rmsfuse_sgd_config pr = sg[k].fn(lr);
                found[6 + k] += sgd_same(&c, &pr);
            }
        } else {
            const rmsfuse_adam_config c = adam_cfg(gc, 0);
            for (int k = 0; k < 5; k++) {
                const rmsfuse_adam_config pr = ad[k].fn(lr);
                found[8 + k] += adam_same(&c, &pr);
            }
        }
    }
    const char *names[13] = {rp[0].name, rp[1].name, rp[2].name, ag[0].name, ag[1].name, ag[2].name, sg[0].name,
                             sg[1].name, ad[0].name, ad[1].name, ad[2].name, ad[3].name, ad[4].name};
    for (int k = 0; k < 13; k++)
        ck_assert_msg(found[k] > 0, "no golden case with the configuration %s(lr) returns", names[k]);
}
END_TEST

static Suite *golden_suite(void)
{
    Suite *s = suite_create("golden");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_golden_table);
    tcase_add_test(tc, test_golden_coverage);
    tcase_add_test(tc, test_golden_presets);
    suite_add_tcase(s, tc);
    tc = tcase_create("cases");
    tcase_add_loop_test(tc, test_golden_case, 0, N_CASES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return rmsfuse_test_run(golden_suite());
}

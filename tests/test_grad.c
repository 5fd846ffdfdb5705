/*
 * rmsfuse_<rule>_step_ex: the gradient as the step reads it (scale, clip by
 * value, clip by global norm, skip on a non-finite gradient), every rule,
 * every ISA (the one ctest forces in its per-ISA runs), against
 * docs/math.md ("The gradient as the step reads it"), through the public
 * API.
 *
 * The expected values: the test computes the global norm itself, in the
 * order docs/math.md gives (ref_sumsq: float products g * s squared in
 * double, 16 lanes per block of 4096 elements from each tensor's first
 * element, lanes added pairwise, blocks and tensors in order), the clip
 * factor and the scale from docs/math.md's formulas, and writes the
 * transformed gradient clamp(g * s, -c, c) into copies of the gradient
 * arrays; a plain step_multi over copies of every array with those
 * gradients is the expected step.  (step_multi itself is tested against
 * the rules' references elsewhere.)  step_ex over the originals must give
 * the same bits in every array (NaN-ness for NaNs), leave the gradients
 * as they were, and report the reference's norm bit for bit.
 *
 *   none            NULL options and rmsfuse_grad_options_none(): step_multi's
 *                   bits, info "not computed" (norm NaN, factor 1, nonfinite -1)
 *   scale_clip      scales (powers of two, others, tiny, huge) and clip values
 *                   (0, small, large, +Inf), every combination sampled
 *   max_norm        lists of tensors of 1 to 9000 elements (tails, blocks of 512
 *                   and 4096): the norm's bits, clipping when the norm exceeds
 *                   max_norm and not otherwise, max_norm 0, with a scale
 *   nonfinite       an Inf or a NaN gradient (or a finite one whose scaled value
 *                   overflows) in the first, a middle or the last tensor, at
 *                   the head, in the vector body or in the tail: with
 *                   RMSFUSE_SKIP_NONFINITE the call returns RMSFUSE_SKIPPED and
 *                   writes nothing; without it the step runs as the formula
 *                   says (a factor of 0 for an infinite norm, NaN for a NaN one)
 *   bad_options     every invalid option: RMSFUSE_E_GRAD_OPTIONS, nothing
 *                   written, info untouched; the config is checked first, the
 *                   options before the arrays, the arrays before the norm
 *   norm_every_isa  the same norm bits with every ISA this CPU runs forced
 *   sumsq_parts     the sum of squares by parts (rmsfuse_<rule>_grad_sumsq over
 *                   parts of a list, rmsfuse_grad_block_sumsq over cut tensors)
 *                   has the reference's bits; step_ex with it given
 *                   (RMSFUSE_SUMSQ_GIVEN) is step_ex computing it
 *   plan_ex         rmsfuse_plan_run_ex over ranges, the sum given from
 *                   rmsfuse_plan_block_sumsq or computed: step_ex's bits
 *   clip_boundary   max_norm = norm + 1e-6 exactly: factor 1; the double below:
 *                   a factor just under 1
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_common.h"
#include "test_rules.h"
#include "test_tensors.h"

/* L's gradients times gscale. */
static void grad_scale(list *L, float gscale)
{
    for (size_t i = 0; i < L->count; i++)
        for (size_t e = 0; e < L->t[i].n; e++)
            L->t[i].a[SLOT_GRAD][e] *= gscale;
}

/* count tensors of n[i] elements of `rule` (test_tensors.h), the gradients
 * times gscale. */
static void grad_list(list *L, int rule, const size_t *n, size_t count, test_rng *r, float gscale)
{
    list_make_sizes(L, rule_infos[rule].narr, n, count, r, INTERLEAVED);
    grad_scale(L, gscale);
}

/* A copy of L's block, its tensors pointing into the copy (no snapshot
 * buffer: these tests compare blocks with list_same). */
static void grad_copy(list *D, const list *L)
{
    *D = *L;
    D->block = list_clone_block(L);
    D->copy = NULL;
    list_rebase_all(L, D->block, D->t);
}

/* A copy of T (its layout and values), the gradients times gscale: the
 * cases of one combination share a list made once (random numbers took a
 * quarter of this program's instructions under valgrind when every case
 * drew its own). */
static void grad_list_like(list *L, const list *T, float gscale)
{
    grad_copy(L, T);
    grad_scale(L, gscale);
}

/* Every float of A's and B's blocks alike, bit for bit (any NaN alike). */
static void list_same(const list *A, const list *B, const char *what)
{
    if (memcmp(A->block, B->block, A->floats * sizeof(float)) == 0)
        return; /* the same bits: the loop below would pass */
    for (size_t e = 0; e < A->floats; e++)
        REQUIRE_MSG(same_float(A->block[e], B->block[e]), "%s: float %zu of the block: %a, expected %a", what, e,
                    (double)A->block[e], (double)B->block[e]);
}

/* docs/math.md's sum of squares, written out here. */
static double ref_block(const float *g, size_t n, float s)
{
    double lane[16] = {0};
    for (size_t i = 0; i < n; i++) {
        const float x = g[i] * s;
        lane[i % 16] += (double)x * (double)x;
    }
    for (int w = 8; w >= 1; w /= 2)
        for (int j = 0; j < w; j++)
            lane[j] += lane[j + w];
    return lane[0];
}

static double ref_sumsq(const list *L, float s)
{
    double acc = 0.0;
    for (size_t i = 0; i < L->count; i++)
        for (size_t b = 0; b < L->t[i].n; b += 4096)
            acc += ref_block(L->t[i].a[SLOT_GRAD] + b, L->t[i].n - b < 4096 ? L->t[i].n - b : 4096, s);
    return acc;
}

/* The expected step_ex: info, and the arrays in *E (a copy of L stepped
 * with the transformed gradients); returns the expected status. */
static int ref_step_ex(const rule_cfg *c, const list *L, const rmsfuse_grad_options *o, list *E,
                       rmsfuse_grad_info *info)
{
    grad_copy(E, L);
    const float s = (float)o->scale;
    rmsfuse_grad_info in = {NAN, 1.0, -1};
    double gs = o->scale;
    if ((o->flags & RMSFUSE_SKIP_NONFINITE) || o->max_norm < HUGE_VAL) {
        const double sumsq = ref_sumsq(L, s);
        in.nonfinite = !isfinite(sumsq);
        in.norm = sqrt(sumsq);
        if (in.nonfinite && (o->flags & RMSFUSE_SKIP_NONFINITE)) {
            *info = in;
            return RMSFUSE_SKIPPED;
        }
        if (o->max_norm < HUGE_VAL) {
            const double f = o->max_norm / (in.norm + 1e-6);
            if (!(f >= 1.0))
                in.clip_factor = f;
        }
        gs *= in.clip_factor;
    }
    const float g1 = (float)gs, cv = (float)o->clip_value;
    for (size_t i = 0; i < L->count; i++)
        for (size_t e = 0; e < L->t[i].n; e++) {
            float x = L->t[i].a[SLOT_GRAD][e] * g1;
            x = x > cv ? cv : x;
            x = x < -cv ? -cv : x;
            E->t[i].a[SLOT_GRAD][e] = x;
        }
    ck_assert_int_eq(rule_step_multi(c, E->t, E->count), RMSFUSE_OK);
    /* step_ex leaves the gradients as they were */
    for (size_t i = 0; i < L->count; i++)
        memcpy(E->t[i].a[SLOT_GRAD], L->t[i].a[SLOT_GRAD], L->t[i].n * sizeof(float));
    *info = in;
    return RMSFUSE_OK;
}

static int same_double(double a, double b)
{
    return (a != a && b != b) || memcmp(&a, &b, sizeof a) == 0;
}

/* step_ex on L (stepped in place) against the reference; returns the status. */
static int check_step_ex(const rule_cfg *c, list *L, const rmsfuse_grad_options *o, const char *what)
{
    list E;
    rmsfuse_grad_info want, got = {-7.0, -7.0, -7};
    const int st_want = ref_step_ex(c, L, o, &E, &want);
    const int st = rule_step_ex(c, L->t, L->count, o, &got);
    char desc[256];
    rule_describe(c, desc, sizeof desc);
    REQUIRE_MSG(st == st_want, "%s: %s: status %d, expected %d", what, desc, st, st_want);
    if (st == RMSFUSE_SKIPPED) { /* nothing written */
        list_free(&E);
        grad_copy(&E, L);
    }
    list_same(L, &E, what);
    REQUIRE_MSG(same_double(got.norm, want.norm), "%s: %s: norm %a, expected %a", what, desc, got.norm, want.norm);
    REQUIRE_MSG(same_double(got.clip_factor, want.clip_factor), "%s: %s: clip factor %a, expected %a", what, desc,
                got.clip_factor, want.clip_factor);
    ck_assert_int_eq(got.nonfinite, want.nonfinite);
    list_free(&E);
    return st;
}

static rmsfuse_grad_options opts(double scale, double clip_value, double max_norm, unsigned flags)
{
    rmsfuse_grad_options o = {scale, clip_value, max_norm, flags, 0.0};
    return o;
}

/* o with the sum of squares given (RMSFUSE_SUMSQ_GIVEN). */
static rmsfuse_grad_options given(rmsfuse_grad_options o, double sumsq)
{
    o.flags |= RMSFUSE_SUMSQ_GIVEN;
    o.sumsq = sumsq;
    return o;
}

static const size_t sizes_a[] = {1, 17, 600, 5000};
static const size_t sizes_b[] = {4096, 33, 9000, 0, 512, 3};

/* The combinations a test runs: every one in full runs, one per kernel loop in quick ones. */
static unsigned combos(int rule, test_rng *r, unsigned *out)
{
    return rule_sample(rule, !test_quick_mode(), r, out);
}

START_TEST(test_none)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0x6e6f6e65u + (uint64_t)rule)};
    unsigned idx[MAX_COMBOS];
    const unsigned k = combos(rule, &r, idx);
    for (unsigned q = 0; q < k; q++) {
        const rule_cfg c = rule_config(rule, rule_combo(rule, idx[q]), 0);
        list L, E;
        grad_list(&L, rule, sizes_a, 4, &r, 0.1f);
        grad_copy(&E, &L);
        ck_assert_int_eq(rule_step_multi(&c, E.t, E.count), RMSFUSE_OK);
        rmsfuse_grad_info info = {-7.0, -7.0, -7};
        ck_assert_int_eq(rule_step_ex(&c, L.t, L.count, NULL, &info), RMSFUSE_OK);
        list_same(&L, &E, "NULL options");
        ck_assert(isnan(info.norm) && info.clip_factor == 1.0 && info.nonfinite == -1);
        const rmsfuse_grad_options none = rmsfuse_grad_options_none();
        ck_assert(none.scale == 1.0 && none.clip_value == HUGE_VAL && none.max_norm == HUGE_VAL && none.flags == 0);
        ck_assert_int_eq(rule_step_multi(&c, E.t, E.count), RMSFUSE_OK);
        ck_assert_int_eq(rule_step_ex(&c, L.t, L.count, &none, NULL), RMSFUSE_OK);
        list_same(&L, &E, "rmsfuse_grad_options_none()");
        list_free(&L);
        list_free(&E);
    }
}
END_TEST

START_TEST(test_scale_clip)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0x7363u + (uint64_t)rule)};
    static const double scales[] = {1.0, 0.5, 1.0 / 65536.0, 0.3, 3.7, 1e-30, 1e30};
    static const double clips[] = {HUGE_VAL, 0.0, 1e-3, 0.05, 10.0, 1e39};
    unsigned idx[MAX_COMBOS];
    const unsigned k = combos(rule, &r, idx);
    int clamped = 0;
    for (unsigned q = 0; q < k; q++) {
        const rule_cfg c = rule_config(rule, rule_combo(rule, idx[q]), (int)(q % (unsigned)rule_nhypers(rule)));
        list T;
        grad_list(&T, rule, sizes_a, 4, &r, 1.0f);
        for (size_t a = 0; a < sizeof scales / sizeof scales[0]; a++) {
            const double cv = clips[(a + q) % (sizeof clips / sizeof clips[0])];
            list L;
            grad_list_like(&L, &T, scales[a] >= 1e29 ? 1e-28f : 1.0f);
            const rmsfuse_grad_options o = opts(scales[a], cv, HUGE_VAL, 0);
            clamped += cv < 1.0;
            check_step_ex(&c, &L, &o, "scale and clip value");
            list_free(&L);
        }
        list_free(&T);
    }
    ck_assert_int_gt(clamped, 0);
}
END_TEST

START_TEST(test_max_norm)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0x6d6eu + (uint64_t)rule)};
    unsigned idx[MAX_COMBOS];
    const unsigned k = combos(rule, &r, idx);
    int clipped = 0, unclipped = 0;
    for (unsigned q = 0; q < k; q++) {
        const rule_cfg c = rule_config(rule, rule_combo(rule, idx[q]), 0);
        list L;
        grad_list(&L, rule, sizes_b, 6, &r, 1.0f);
        /* the norm of these gradients is about sqrt(13644 / 3) ~ 67 */
        static const double max_norms[] = {1.0, 1e6, 0.0, 30.0};
        const double scale = (q % 3 == 0) ? 0.25 : 1.0;
        const rmsfuse_grad_options o = opts(scale, q % 4 == 1 ? 0.1 : HUGE_VAL, max_norms[q % 4],
                                            q % 2 ? RMSFUSE_SKIP_NONFINITE : 0u);
        rmsfuse_grad_info info;
        check_step_ex(&c, &L, &o, "max_norm");
        (void)rule_step_ex(&c, L.t, L.count, &o, &info); /* the clip factor of this call */
        if (info.clip_factor < 1.0)
            clipped++;
        else
            unclipped++;
        ck_assert(info.norm > 0.0 && isfinite(info.norm) && info.nonfinite == 0);
        list_free(&L);
    }
    ck_assert_int_gt(clipped, 0);
    ck_assert_int_gt(unclipped, 0);
}
END_TEST

/* An element of the list: tensor i, element e. */
typedef struct where {
    size_t tensor, elem;
    const char *name;
} where;

START_TEST(test_nonfinite)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0x6e66u + (uint64_t)rule)};
    const where places[] = {{0, 0, "first element"},     {2, 300, "middle tensor, vector body"},
                            {3, 4999, "last element"},   {1, 16, "a tail"},
                            {3, 2048, "a later block"}};
    const float bad[] = {INFINITY, -INFINITY, NAN, 1e38f /* finite, but times the scale 100: Inf */};
    unsigned idx[MAX_COMBOS];
    const unsigned k = combos(rule, &r, idx);
    int skipped = 0;
    for (unsigned q = 0; q < k; q++) {
        const rule_cfg c = rule_config(rule, rule_combo(rule, idx[q]), 0);
        list T;
        grad_list(&T, rule, sizes_a, 4, &r, 0.001f);
        for (size_t p = 0; p < sizeof places / sizeof places[0]; p++) {
            const float v = bad[(p + q) % 4];
            for (int skip = 0; skip <= 1; skip++) {
                list L;
                grad_copy(&L, &T);
                L.t[places[p].tensor].a[SLOT_GRAD][places[p].elem] = v;
                const double scale = v == 1e38f ? 100.0 : 1.0;
                const rmsfuse_grad_options o =
                    opts(scale, HUGE_VAL, skip ? HUGE_VAL : 5.0, skip ? RMSFUSE_SKIP_NONFINITE : 0u);
                const int st = check_step_ex(&c, &L, &o, places[p].name);
                ck_assert_int_eq(st, skip ? RMSFUSE_SKIPPED : RMSFUSE_OK);
                skipped += st == RMSFUSE_SKIPPED;
                list_free(&L);
            }
        }
        list_free(&T);
    }
    ck_assert_int_gt(skipped, 0);
}
END_TEST

START_TEST(test_bad_options)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0x626fu + (uint64_t)rule)};
    const rule_cfg c = rule_full_config(rule);
    const rmsfuse_grad_options bad[] = {
        opts(0.0, HUGE_VAL, HUGE_VAL, 0),      opts(-1.0, HUGE_VAL, HUGE_VAL, 0),
        opts(NAN, HUGE_VAL, HUGE_VAL, 0),      opts(HUGE_VAL, HUGE_VAL, HUGE_VAL, 0),
        opts(1e-50, HUGE_VAL, HUGE_VAL, 0),    opts(1e39, HUGE_VAL, HUGE_VAL, 0),
        opts(1.0, NAN, HUGE_VAL, 0),           opts(1.0, -1.0, HUGE_VAL, 0),
        opts(1.0, -HUGE_VAL, HUGE_VAL, 0),     opts(1.0, HUGE_VAL, NAN, 0),
        opts(1.0, HUGE_VAL, -0.5, 0),          opts(1.0, HUGE_VAL, HUGE_VAL, 4u),
        opts(1.0, HUGE_VAL, HUGE_VAL, 0x80000001u), given(opts(1.0, HUGE_VAL, 1.0, 0), -1.0),
        given(opts(1.0, HUGE_VAL, HUGE_VAL, RMSFUSE_SKIP_NONFINITE), -HUGE_VAL)};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        list L, E;
        grad_list(&L, rule, sizes_a, 4, &r, 0.1f);
        grad_copy(&E, &L);
        rmsfuse_grad_info info = {-7.0, -7.0, -7};
        ck_assert_int_eq(rule_step_ex(&c, L.t, L.count, &bad[b], &info), RMSFUSE_E_GRAD_OPTIONS);
        list_same(&L, &E, "bad options");
        ck_assert(info.norm == -7.0 && info.clip_factor == -7.0 && info.nonfinite == -7);
        /* the configuration is checked first */
        rule_cfg nul = c;
        nul.as_null = 1;
        ck_assert_int_eq(rule_step_ex(&nul, L.t, L.count, &bad[b], &info), RMSFUSE_E_NULL_CONFIG);
        list_free(&L);
        list_free(&E);
    }
    /* The arrays are checked before the norm: overlapping arrays with a
     * NaN gradient and RMSFUSE_SKIP_NONFINITE are refused, not skipped. */
    list L, E;
    grad_list(&L, rule, sizes_a, 4, &r, 0.1f);
    L.t[1].a[SLOT_GRAD][0] = NAN;
    L.t[2].a[SLOT_PARAM] = L.t[1].a[SLOT_PARAM]; /* two tensors write one param array */
    L.t[2].n = L.t[1].n;
    grad_copy(&E, &L);
    const rmsfuse_grad_options skip = opts(1.0, HUGE_VAL, HUGE_VAL, RMSFUSE_SKIP_NONFINITE);
    ck_assert_int_eq(rule_step_ex(&c, L.t, L.count, &skip, NULL), RMSFUSE_E_OVERLAP);
    list_same(&L, &E, "overlap");
    list_free(&L);
    list_free(&E);
}
END_TEST

START_TEST(test_norm_every_isa)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0x6e65u + (uint64_t)rule)};
    const rule_cfg c = rule_config(rule, rule_combo(rule, 0), 0);
    list L;
    grad_list(&L, rule, sizes_b, 6, &r, 1.0f);
    const char *entry = rmsfuse_active_isa();
    const double want = sqrt(ref_sumsq(&L, 0.375f));
    int isas = 0;
    for (const char *const *nm = rmsfuse_isa_names(); *nm; nm++) {
        if (!rmsfuse_isa_supported(*nm))
            continue;
        ck_assert_int_eq(rmsfuse_set_isa(*nm), RMSFUSE_OK);
        list D;
        grad_copy(&D, &L);
        const rmsfuse_grad_options o = opts(0.375, HUGE_VAL, 1.0, 0);
        rmsfuse_grad_info info;
        ck_assert_int_eq(rule_step_ex(&c, D.t, D.count, &o, &info), RMSFUSE_OK);
        REQUIRE_MSG(same_double(info.norm, want), "%s: norm %a, expected %a", *nm, info.norm, want);
        list_free(&D);
        isas++;
    }
    ck_assert_int_eq(rmsfuse_set_isa(entry), RMSFUSE_OK);
    ck_assert_int_gt(isas, 0);
    list_free(&L);
}
END_TEST

/* The sum of squares by parts: rmsfuse_<rule>_grad_sumsq over the whole
 * list, over consecutive parts continuing one sum, and
 * rmsfuse_grad_block_sumsq over tensors cut at block boundaries folded in
 * order: all the reference's bits.  Then step_ex with that sum given
 * (RMSFUSE_SUMSQ_GIVEN) does what step_ex computing it does, bit for bit,
 * skipping included; and bad arguments are refused. */
START_TEST(test_sumsq_parts)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0x7370u + (uint64_t)rule)};
    list L;
    grad_list(&L, rule, sizes_b, 6, &r, 1.0f);
    const double scale = 0.375;
    const double want = ref_sumsq(&L, (float)scale);
    const rule_tensor *t = L.t;
    double whole = 0.0, parts = 0.0;
    ck_assert_int_eq(rule_grad_sumsq(rule, t, L.count, scale, &whole), RMSFUSE_OK);
    REQUIRE_MSG(same_double(whole, want), "whole list: %a, expected %a", whole, want);
    for (size_t cut = 0; cut <= L.count; cut++) {
        parts = 0.0;
        ck_assert_int_eq(rule_grad_sumsq(rule, t, cut, scale, &parts), RMSFUSE_OK);
        ck_assert_int_eq(rule_grad_sumsq(rule, t + cut, L.count - cut, scale, &parts), RMSFUSE_OK);
        REQUIRE_MSG(same_double(parts, want), "cut at %zu: %a, expected %a", cut, parts, want);
    }
    /* block by block, each tensor cut in two at a block boundary */
    double folded = 0.0;
    for (size_t i = 0; i < L.count; i++) {
        const size_t n = t[i].n, nb = (n + RMSFUSE_NORM_BLOCK - 1) / RMSFUSE_NORM_BLOCK;
        const size_t half = nb / 2 * RMSFUSE_NORM_BLOCK;
        double sums[8] = {0};
        ck_assert(nb <= 8);
        ck_assert_int_eq(rmsfuse_grad_block_sumsq(t[i].a[SLOT_GRAD], half, scale, sums), RMSFUSE_OK);
        ck_assert_int_eq(rmsfuse_grad_block_sumsq(t[i].a[SLOT_GRAD] + half, n - half, scale, sums + nb / 2),
                         RMSFUSE_OK);
        for (size_t b = 0; b < nb; b++)
            folded += sums[b];
    }
    REQUIRE_MSG(same_double(folded, want), "block sums: %a, expected %a", folded, want);

    /* bad arguments: refused, *sumsq and sums untouched */
    double keep = 5.0, sums1[1] = {5.0};
    ck_assert_int_eq(rule_grad_sumsq(rule, t, L.count, 0.0, &keep), RMSFUSE_E_GRAD_OPTIONS);
    ck_assert_int_eq(rule_grad_sumsq(rule, t, L.count, NAN, &keep), RMSFUSE_E_GRAD_OPTIONS);
    ck_assert_int_eq(rule_grad_sumsq(rule, t, L.count, 1.0, NULL), RMSFUSE_E_GRAD_OPTIONS);
    ck_assert_int_eq(rule_grad_sumsq(rule, t, 0, 1.0, &keep), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_grad_block_sumsq(t[0].a[SLOT_GRAD], 1, 1e39, sums1), RMSFUSE_E_GRAD_OPTIONS);
    ck_assert_int_eq(rmsfuse_grad_block_sumsq(NULL, 1, 1.0, sums1), RMSFUSE_E_NULL_ARRAY);
    ck_assert_int_eq(rmsfuse_grad_block_sumsq(t[0].a[SLOT_GRAD], 1, 1.0, NULL), RMSFUSE_E_NULL_ARRAY);
    ck_assert_int_eq(rmsfuse_grad_block_sumsq(NULL, 0, 1.0, NULL), RMSFUSE_OK);
    float *g1 = L.t[1].a[SLOT_GRAD];
    L.t[1].a[SLOT_GRAD] = NULL; /* a NULL gradient, after a good tensor */
    ck_assert_int_eq(rule_grad_sumsq(rule, L.t, L.count, 1.0, &keep), RMSFUSE_E_NULL_ARRAY);
    L.t[1].a[SLOT_GRAD] = g1;
    ck_assert(keep == 5.0 && sums1[0] == 5.0);

    /* step_ex with the sum given: the same step as step_ex computing it */
    unsigned idx[MAX_COMBOS];
    const unsigned k = combos(rule, &r, idx);
    for (unsigned q = 0; q < k; q++) {
        const rule_cfg c = rule_config(rule, rule_combo(rule, idx[q]), 0);
        const rmsfuse_grad_options o = opts(scale, q % 2 ? 0.5 : HUGE_VAL, q % 3 ? 1.0 : 1e9,
                                            q % 4 ? RMSFUSE_SKIP_NONFINITE : 0u);
        list A, B;
        grad_copy(&A, &L);
        grad_copy(&B, &L);
        if (q % 5 == 4) /* a non-finite gradient */
            A.t[2].a[SLOT_GRAD][7] = B.t[2].a[SLOT_GRAD][7] = INFINITY;
        double s = 0.0;
        ck_assert_int_eq(rule_grad_sumsq(rule, B.t, B.count, scale, &s), RMSFUSE_OK);
        rmsfuse_grad_info ia, ib;
        const int sa = rule_step_ex(&c, A.t, A.count, &o, &ia);
        const rmsfuse_grad_options og = given(o, s);
        const int sb = rule_step_ex(&c, B.t, B.count, &og, &ib);
        ck_assert_int_eq(sa, sb);
        list_same(&A, &B, "sum given");
        ck_assert(same_double(ia.norm, ib.norm) && same_double(ia.clip_factor, ib.clip_factor) &&
                  ia.nonfinite == ib.nonfinite);
        list_free(&A);
        list_free(&B);
    }
    list_free(&L);
}
END_TEST

/* A plan with gradient options: rmsfuse_plan_run_ex over ranges (the sum
 * given from rmsfuse_plan_block_sumsq, or computed by each range) gives
 * step_ex's bits and outcome; the block sums cover the plan's blocks. */
START_TEST(test_plan_ex)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0x706cu + (uint64_t)rule)};
    unsigned idx[MAX_COMBOS];
    const unsigned k = combos(rule, &r, idx);
    for (unsigned q = 0; q < k; q++) {
        const rule_cfg c = rule_config(rule, rule_combo(rule, idx[q]), 0);
        list L, E;
        grad_list(&L, rule, sizes_b, 6, &r, 1.0f);
        if (q % 4 == 3)
            L.t[5].a[SLOT_GRAD][2] = NAN;
        grad_copy(&E, &L);
        const rmsfuse_grad_options o = opts(0.75, q % 2 ? 0.5 : HUGE_VAL, 30.0, q % 3 ? RMSFUSE_SKIP_NONFINITE : 0u);
        rmsfuse_grad_info want, got;
        const int st_want = rule_step_ex(&c, E.t, E.count, &o, &want);
        rmsfuse_plan *plan;
        ck_assert_int_eq(rule_plan(&c, L.t, L.count, &plan), RMSFUSE_OK);
        size_t blocks_want = 0;
        for (size_t i = 0; i < L.count; i++)
            blocks_want += (L.t[i].n + RMSFUSE_NORM_BLOCK - 1) / RMSFUSE_NORM_BLOCK;
        const size_t nb = rmsfuse_plan_blocks(plan), total = rmsfuse_plan_elements(plan);
        ck_assert_uint_eq(nb, blocks_want);
        double sums[16], sumsq = 0.0;
        ck_assert(nb <= 16);
        ck_assert_int_eq(rmsfuse_plan_block_sumsq(plan, 0.75, 0, nb / 2, sums), RMSFUSE_OK);
        ck_assert_int_eq(rmsfuse_plan_block_sumsq(plan, 0.75, nb / 2, nb, sums + nb / 2), RMSFUSE_OK);
        for (size_t b = 0; b < nb; b++)
            sumsq += sums[b];
        ck_assert(same_double(sumsq, ref_sumsq(&L, 0.75f)));
        const rmsfuse_grad_options og = given(o, sumsq);
        /* three ranges: the sum given (two) and computed by the range (one) */
        const size_t cut1 = total / 3, cut2 = 2 * total / 3 + 5;
        int st = rmsfuse_plan_run_ex(plan, 0, cut1, &og, &got);
        ck_assert_int_eq(st, st_want);
        ck_assert_int_eq(rmsfuse_plan_run_ex(plan, cut1, cut2, &o, NULL), st_want);
        ck_assert_int_eq(rmsfuse_plan_run_ex(plan, cut2, total, &og, NULL), st_want);
        if (st_want == RMSFUSE_SKIPPED) {
            list_free(&E);
            grad_copy(&E, &L); /* E was not written either */
        }
        list_same(&L, &E, "plan ranges");
        ck_assert(same_double(got.norm, want.norm) && same_double(got.clip_factor, want.clip_factor) &&
                  got.nonfinite == want.nonfinite);
        /* bad arguments */
        ck_assert_int_eq(rmsfuse_plan_run_ex(NULL, 0, 0, &o, NULL), RMSFUSE_E_NULL_PLAN);
        ck_assert_int_eq(rmsfuse_plan_run_ex(plan, 2, 1, &o, NULL), RMSFUSE_E_RANGE);
        ck_assert_int_eq(rmsfuse_plan_run_ex(plan, 0, total + 1, &o, NULL), RMSFUSE_E_RANGE);
        const rmsfuse_grad_options bad = opts(-1.0, HUGE_VAL, HUGE_VAL, 0);
        ck_assert_int_eq(rmsfuse_plan_run_ex(plan, 0, total, &bad, NULL), RMSFUSE_E_GRAD_OPTIONS);
        ck_assert_int_eq(rmsfuse_plan_block_sumsq(NULL, 1.0, 0, 0, sums), RMSFUSE_E_NULL_PLAN);
        ck_assert_int_eq(rmsfuse_plan_block_sumsq(plan, 1.0, 0, nb + 1, sums), RMSFUSE_E_RANGE);
        ck_assert_int_eq(rmsfuse_plan_block_sumsq(plan, 1.0, 0, 1, NULL), RMSFUSE_E_RANGE);
        ck_assert_int_eq(rmsfuse_plan_block_sumsq(plan, 0.0, 0, 1, sums), RMSFUSE_E_GRAD_OPTIONS);
        ck_assert_uint_eq(rmsfuse_plan_blocks(NULL), 0);
        list_same(&L, &E, "bad plan arguments");
        rmsfuse_plan_free(plan);
        list_free(&L);
        list_free(&E);
    }
}
END_TEST

/* The clip factor at its boundary: max_norm = norm + 1e-6 exactly gives
 * factor 1 (not clipped: the plain scale), the double below it a factor
 * just under 1 (clipped); both as the reference computes them. */
START_TEST(test_clip_boundary)
{
    const int rule = _i;
    test_rng r = {test_run_seed(0x6362u + (uint64_t)rule)};
    const rule_cfg c = rule_config(rule, rule_combo(rule, 0), 0);
    list L;
    grad_list(&L, rule, sizes_a, 4, &r, 1.0f);
    double sumsq = 0.0;
    ck_assert_int_eq(rule_grad_sumsq(rule, L.t, L.count, 1.0, &sumsq), RMSFUSE_OK);
    const double edge = sqrt(sumsq) + 1e-6;
    const double below = nextafter(edge, 0.0);
    rmsfuse_grad_info info;
    list A;
    grad_copy(&A, &L);
    rmsfuse_grad_options o = opts(1.0, HUGE_VAL, edge, 0);
    check_step_ex(&c, &A, &o, "max_norm = norm + 1e-6");
    ck_assert_int_eq(rule_step_ex(&c, A.t, A.count, &o, &info), RMSFUSE_OK);
    ck_assert(info.clip_factor == 1.0);
    list_free(&A);
    grad_copy(&A, &L);
    o = opts(1.0, HUGE_VAL, below, 0);
    check_step_ex(&c, &A, &o, "max_norm just below");
    ck_assert_int_eq(rule_step_ex(&c, A.t, A.count, &o, &info), RMSFUSE_OK);
    ck_assert(info.clip_factor < 1.0 && info.clip_factor > 0.999999);
    list_free(&A);
    list_free(&L);
}
END_TEST

static Suite *grad_suite(void)
{
    Suite *s = suite_create("grad");
    TCase *tc = tcase_create("step_ex");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_none, 0, N_RULES);
    tcase_add_loop_test(tc, test_scale_clip, 0, N_RULES);
    tcase_add_loop_test(tc, test_max_norm, 0, N_RULES);
    tcase_add_loop_test(tc, test_nonfinite, 0, N_RULES);
    tcase_add_loop_test(tc, test_bad_options, 0, N_RULES);
    tcase_add_loop_test(tc, test_norm_every_isa, 0, N_RULES);
    tcase_add_loop_test(tc, test_sumsq_parts, 0, N_RULES);
    tcase_add_loop_test(tc, test_plan_ex, 0, N_RULES);
    tcase_add_loop_test(tc, test_clip_boundary, 0, N_RULES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return rmsfuse_test_run(grad_suite());
}

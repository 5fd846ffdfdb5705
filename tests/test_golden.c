/*
 * Golden-vector test: the library against vectors generated independently of
 * the C code by tests/golden/gen_golden.py (NumPy float32 emulation of the
 * spec's op order, float64 references from the PyTorch / TensorFlow formulas,
 * forward-error bounds; see the script's docstring and the comment at the top
 * of golden/golden_vectors.inc).
 *
 * For every case and step, every output element must be
 *   - bit-identical to the float32 emulation (NaN: NaN-ness only), and
 *   - within the case's error bound of the float64 reference (bound -1: the
 *     analysis gives no bound there; NaN-ness of output and reference agree).
 * Each case's elements are tiled TILE times into longer arrays that start at a
 * case-dependent misalignment, so the SIMD bodies, heads and tails of the
 * active ISA all see the vectors; elements are independent, so every copy
 * must give the same bits.
 */
#include "test_common.h"

typedef struct golden_case {
    const char *name;
    double lr, alpha, eps, weight_decay, momentum;
    unsigned flags;
    unsigned n;       /* elements */
    unsigned steps;   /* consecutive steps on the same state */
    unsigned in_off;  /* golden_in: param, grad, square_avg, momentum_buf, grad_avg, grads of steps 1.. */
    unsigned out_off; /* golden_out32/ref64/bound: per step param, square_avg, momentum_buf, grad_avg */
} golden_case;

#include "golden/golden_vectors.inc"

#define N_CASES ((int)(sizeof golden_cases / sizeof golden_cases[0]))
#define TILE 7u

enum { IN_PARAM, IN_GRAD, IN_SQUARE_AVG, IN_MOMENTUM_BUF, IN_GRAD_AVG, IN_MORE_GRADS };
static const char *const out_names[4] = {"param", "square_avg", "momentum_buf", "grad_avg"};

static unsigned variant_of(const golden_case *gc)
{
    return gc->flags | (gc->weight_decay != 0.0 ? 16u : 0u) | (gc->momentum != 0.0 ? 32u : 0u);
}

static void fill(float *dst, const uint32_t *src, unsigned n)
{
    for (unsigned r = 0; r < TILE; r++)
        for (unsigned j = 0; j < n; j++)
            dst[r * n + j] = u2f(src[j]);
}

START_TEST(test_golden_case)
{
    const golden_case *gc = &golden_cases[_i];
    const unsigned n = gc->n, total = n * TILE;
    const size_t mis = (size_t)_i % 5u; /* floats of misalignment from malloc's alignment */
    const rmsfuse_rmsprop_config cfg = {gc->lr, gc->alpha, gc->eps, gc->weight_decay, gc->momentum, gc->flags};
    const uint32_t *in = golden_in + gc->in_off;

    float *mem[5], *arr[5];
    for (int k = 0; k < 5; k++) {
        mem[k] = malloc((total + 8) * sizeof(float));
        ck_assert_ptr_nonnull(mem[k]);
        arr[k] = mem[k] + mis;
    }
    float *p = arr[0], *g = arr[1], *v = arr[2], *b = arr[3], *ga = arr[4];
    fill(p, in + IN_PARAM * n, n);
    fill(g, in + IN_GRAD * n, n);
    fill(v, in + IN_SQUARE_AVG * n, n);
    fill(b, in + IN_MOMENTUM_BUF * n, n);
    fill(ga, in + IN_GRAD_AVG * n, n);
    float *outs[4] = {p, v, b, ga};

    for (unsigned step = 0; step < gc->steps; step++) {
        if (step > 0)
            fill(g, in + (IN_MORE_GRADS + step - 1) * n, n);
        int st = rmsfuse_rmsprop_step(&cfg, p, g, v, b, ga, total);
        ck_assert_msg(st == RMSFUSE_OK, "case %s step %u: status %d (%s)", gc->name, step, st,
                      rmsfuse_strerror(st));

        const size_t base = gc->out_off + (size_t)step * 4u * n;
        for (unsigned k = 0; k < 4; k++) {
            for (unsigned j = 0; j < n; j++) {
                const uint32_t want = golden_out32[base + k * n + j];
                const double ref = golden_ref64[base + k * n + j];
                const double bound = golden_bound[base + k * n + j];
                for (unsigned r = 0; r < TILE; r++) {
                    const float got = outs[k][r * n + j];
                    ck_assert_msg(same_float(got, u2f(want)),
                                  "case %s (#%d, %s) step %u elem %u (copy %u) %s: got 0x%08x (%.9g), "
                                  "expected 0x%08x (%.9g), %llu ulp apart",
                                  gc->name, _i, rmsfuse_active_isa(), step, j, r, out_names[k], f2u(got),
                                  (double)got, want, (double)u2f(want),
                                  (unsigned long long)(isfinite(got) && isfinite(u2f(want))
                                                           ? ulp_distance(got, u2f(want))
                                                           : 0u));
                    if (r != 0)
                        continue;
                    if (bound < 0.0) {
                        ck_assert_msg(!isnan(got) == !isnan(ref),
                                      "case %s step %u elem %u %s: NaN-ness differs: got %.9g, float64 "
                                      "reference %.17g",
                                      gc->name, step, j, out_names[k], (double)got, ref);
                    } else {
                        ck_assert_msg(isfinite(got) && isfinite(ref),
                                      "case %s step %u elem %u %s: non-finite got %.9g / reference %.17g "
                                      "where a bound %.3g is given",
                                      gc->name, step, j, out_names[k], (double)got, ref, bound);
                        const double err = fabs((double)got - ref);
                        ck_assert_msg(err <= bound,
                                      "case %s step %u elem %u %s: got %.9g (0x%08x), float64 reference "
                                      "%.17g: |diff| %.3g > bound %.3g",
                                      gc->name, step, j, out_names[k], (double)got, f2u(got), ref, err, bound);
                    }
                }
            }
        }
    }
    for (int k = 0; k < 5; k++)
        free(mem[k]);
}
END_TEST

/* The table itself: not empty, consistent, every variant and every preset present. */
START_TEST(test_golden_coverage)
{
    ck_assert_int_gt(N_CASES, 0);
    ck_assert_int_eq(N_CASES, GOLDEN_N_CASES);

    uint64_t seen = 0;
    size_t in_end = 0, out_end = 0;
    int multi_step = 0;
    for (int i = 0; i < N_CASES; i++) {
        const golden_case *gc = &golden_cases[i];
        ck_assert_msg(gc->n > 0 && gc->steps > 0, "case %s: n %u steps %u", gc->name, gc->n, gc->steps);
        ck_assert_msg(rmsfuse_rmsprop_check_config(&(rmsfuse_rmsprop_config){gc->lr, gc->alpha, gc->eps,
                                                                             gc->weight_decay, gc->momentum,
                                                                             gc->flags}) == RMSFUSE_OK,
                      "case %s: invalid configuration", gc->name);
        /* contiguous, in order, within the arrays */
        ck_assert_msg(gc->in_off == in_end && gc->out_off == out_end, "case %s: offsets", gc->name);
        in_end += (size_t)gc->n * (4u + gc->steps);
        out_end += (size_t)gc->n * 4u * gc->steps;
        seen |= UINT64_C(1) << variant_of(gc);
        multi_step += gc->steps > 1;
    }
    ck_assert_uint_eq(in_end, sizeof golden_in / sizeof golden_in[0]);
    ck_assert_uint_eq(out_end, sizeof golden_out32 / sizeof golden_out32[0]);
    ck_assert_uint_eq(out_end, sizeof golden_ref64 / sizeof golden_ref64[0]);
    ck_assert_uint_eq(out_end, sizeof golden_bound / sizeof golden_bound[0]);
    ck_assert_msg(seen == UINT64_MAX, "not every one of the 64 variants has a case: mask 0x%016llx",
                  (unsigned long long)seen);
    ck_assert_int_gt(multi_step, 0);

    /* The library's presets are among the cases, with their own flags. */
    const rmsfuse_rmsprop_config presets[3] = {rmsfuse_rmsprop_pytorch(0.01), rmsfuse_rmsprop_tensorflow(0.001),
                                               rmsfuse_rmsprop_keras(0.001)};
    for (int k = 0; k < 3; k++) {
        int found = 0;
        for (int i = 0; i < N_CASES; i++) {
            const golden_case *gc = &golden_cases[i];
            found += gc->lr == presets[k].lr && gc->alpha == presets[k].alpha && gc->eps == presets[k].eps &&
                     gc->weight_decay == presets[k].weight_decay && gc->momentum == presets[k].momentum &&
                     gc->flags == presets[k].flags;
        }
        ck_assert_msg(found > 0, "no golden case for preset %d (alpha %g eps %g flags %u)", k, presets[k].alpha,
                      presets[k].eps, presets[k].flags);
    }

    /* Bounds are either -1 (NaN-ness only) or finite and >= 0; a case with a bound
     * of -1 must be a deliberate edge case (eps == 0). */
    for (int i = 0; i < N_CASES; i++) {
        const golden_case *gc = &golden_cases[i];
        for (size_t j = 0; j < (size_t)gc->n * 4u * gc->steps; j++) {
            const double bd = golden_bound[gc->out_off + j];
            ck_assert_msg(bd == -1.0 || (isfinite(bd) && bd >= 0.0), "case %s: bad bound %g", gc->name, bd);
            ck_assert_msg(bd >= 0.0 || gc->eps == 0.0, "case %s: unbounded output with eps %g", gc->name,
                          gc->eps);
        }
    }
}
END_TEST

static Suite *golden_suite(void)
{
    Suite *s = suite_create("golden");
    TCase *tc = tcase_create("coverage");
    tcase_add_test(tc, test_golden_coverage);
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

/*
 * The gradient as the step reads it (include/rmsfuse_common.h,
 * rmsfuse_grad_options; docs/math.md, "The gradient as the step reads it"):
 * the options' checks, the global norm in its fixed order, and the step
 * with the scale and clip value in the kernel's constants.  A baseline file.
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/core/grad.c is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include <math.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "internal.h"

rmsfuse_grad_options rmsfuse_grad_options_none(void)
{
    const rmsfuse_grad_options o = {1.0, HUGE_VAL, HUGE_VAL, 0u};
    return o;
}

/*
 * The sum of (double)(g[i] * s)^2 over elements [0, n) of one block (n at
 * most RMSFUSE_NORM_BLOCK), in the order docs/math.md defines: element i
 * goes to lane i % 16, each lane adds its squares in increasing i, then the
 * lanes are added pairwise (lane j + lane j + 8, then j + 4, j + 2, j + 1).
 * g * s is a float product; its square is exact in double (48 bits).
 */
static double block_sumsq(const char *g, size_t n, float s)
{
    double lane[RMSFUSE_NORM_LANES] = {0.0};
    size_t i = 0;
#if defined(__SSE2__)
    /* x86-64's baseline: the same operations on two lanes per instruction
     * (cvtps2pd converts exactly, mulpd and addpd round as the scalar
     * double operations do), so the same bits, at about 3 x the speed. */
    __m128d acc[RMSFUSE_NORM_LANES / 2];
    for (unsigned j = 0; j < RMSFUSE_NORM_LANES / 2; j++)
        acc[j] = _mm_setzero_pd();
    const __m128 sv = _mm_set1_ps(s);
    for (; i + RMSFUSE_NORM_LANES <= n; i += RMSFUSE_NORM_LANES)
        for (unsigned q = 0; q < RMSFUSE_NORM_LANES / 4; q++) {
            const __m128 x = _mm_mul_ps(_mm_loadu_ps((const float *)(const void *)(g + (i + 4 * q) * sizeof(float))), sv);
            const __m128d lo = _mm_cvtps_pd(x), hi = _mm_cvtps_pd(_mm_movehl_ps(x, x));
            acc[2 * q] = _mm_add_pd(acc[2 * q], _mm_mul_pd(lo, lo));
            acc[2 * q + 1] = _mm_add_pd(acc[2 * q + 1], _mm_mul_pd(hi, hi));
        }
    for (unsigned j = 0; j < RMSFUSE_NORM_LANES / 2; j++)
        _mm_storeu_pd(&lane[2 * j], acc[j]);
#endif
    for (; i + RMSFUSE_NORM_LANES <= n; i += RMSFUSE_NORM_LANES)
        for (unsigned j = 0; j < RMSFUSE_NORM_LANES; j++) {
            float x;
            memcpy(&x, g + (i + j) * sizeof(float), sizeof x);
            x *= s;
            lane[j] += (double)x * (double)x;
        }
    for (unsigned j = 0; i < n; i++, j++) {
        float x;
        memcpy(&x, g + i * sizeof(float), sizeof x);
        x *= s;
        lane[j] += (double)x * (double)x;
    }
    for (unsigned w = RMSFUSE_NORM_LANES / 2; w >= 1; w /= 2)
        for (unsigned j = 0; j < w; j++)
            lane[j] += lane[j + w];
    return lane[0];
}

/* acc plus the sum of (double)(g[i] * s)^2 over the n floats at g, block by block. */
static double grad_sumsq(const char *g, size_t n, float s, double acc)
{
    for (size_t b = 0; b < n; b += RMSFUSE_NORM_BLOCK)
        acc += block_sumsq(g + b * sizeof(float), n - b < RMSFUSE_NORM_BLOCK ? n - b : RMSFUSE_NORM_BLOCK, s);
    return acc;
}

int rmsfuse_step_ex_list(rmsfuse_prepared *P, const rmsfuse_layout *L, const void *tensors, size_t count,
                         const rmsfuse_grad_options *opt, rmsfuse_grad_info *info)
{
    const rmsfuse_grad_options o = opt ? *opt : rmsfuse_grad_options_none();
    const float s0 = (float)o.scale;
    if (!(o.scale > 0.0 && s0 > 0.0f && s0 < INFINITY) || !(o.clip_value >= 0.0) || !(o.max_norm >= 0.0) ||
        (o.flags & ~RMSFUSE_SKIP_NONFINITE))
        return RMSFUSE_E_GRAD_OPTIONS;
    int st = rmsfuse_check_list_inl(P, L, tensors, count);
    if (st != RMSFUSE_OK)
        return st;

    rmsfuse_grad_info out = {NAN, 1.0, -1};
    double gs = o.scale;
    if ((o.flags & RMSFUSE_SKIP_NONFINITE) || o.max_norm < HUGE_VAL) {
        double sumsq = 0.0;
        for (size_t i = 0; i < count; i++) {
            const unsigned char *t = tensor_at(L, tensors, i);
            const size_t n = tensor_n(L, t);
            if (n > 0)
                sumsq = grad_sumsq((const char *)slot_ptr(L, t, RMSFUSE_SLOT_GRAD), n, s0, sumsq);
        }
        /* Each square is at most FLT_MAX^2 and there are fewer than 2^62
         * of them: the sum is finite exactly when every g * s is. */
        out.nonfinite = !isfinite(sumsq);
        out.norm = sqrt(sumsq);
        if (out.nonfinite && (o.flags & RMSFUSE_SKIP_NONFINITE)) {
            if (info)
                *info = out;
            return RMSFUSE_SKIPPED;
        }
        if (o.max_norm < HUGE_VAL) {
            const double c = o.max_norm / (out.norm + 1e-6);
            if (!(c >= 1.0)) /* NaN too (a NaN norm): as torch's clip_grad_norm_ */
                out.clip_factor = c;
        }
        gs *= out.clip_factor;
    }
    rmsfuse_grad_k in;
    memcpy(&in, P->k.bytes, sizeof in);
    in.gs = (float)gs;
    in.gc = (float)o.clip_value;
    memcpy(P->k.bytes, &in, sizeof in);
    rmsfuse_run_list_inl(P, L, tensors, count); /* checked above */
    if (info)
        *info = out;
    return RMSFUSE_OK;
}

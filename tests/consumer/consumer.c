/*
 * Uses only the installed <rmsfuse.h>.  For every variant (4 flags x weight
 * decay x momentum), one step over random data is compared with the same
 * formula evaluated in double precision with the double hyperparameters.
 *
 * Inputs are drawn so that no step cancels (state signs follow the sign of
 * the effective gradient, lr is small against param, s stays >= 0.5), so
 * the float32 result must round to within a few ulps of the double one.
 * Tolerances, from counting roundings (each <= 0.5 ulp, constants rounded
 * from double included):
 *   param         1 ulp  (its own rounding + a step that is tiny against it)
 *   square_avg,   2 ulps (rounded a, c; two products; one sum)
 *   grad_avg
 *   momentum_buf  4 ulps (g/d carries sqrt, +eps and / roundings; then the
 *                         rounded momentum, a product and a sum)
 * Exit 0 on success.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <rmsfuse.h>

#define N 1000

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double uniform(double lo, double hi)
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return lo + (hi - lo) * (double)((rng * 2685821657736338717ull) >> 11) * 0x1.0p-53;
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static int64_t ulps(float got, double want)
{
    float w = (float)want; /* the correctly rounded float32 of the double result */
    if (isnan(got) || isnan(w))
        return INT64_MAX;
    int64_t a = (int32_t)bits(got), b = (int32_t)bits(w);
    a = a < 0 ? INT32_MIN - a : a;
    b = b < 0 ? INT32_MIN - b : b;
    return a > b ? a - b : b - a;
}

int main(void)
{
    static float p[N], g[N], v[N], b[N], ga[N];
    static double P[N], G[N], V[N], B[N], GA[N];
    /* worst error and tolerance, in ulps: param, square_avg, grad_avg, momentum_buf */
    int64_t worst[4] = {0, 0, 0, 0};
    const int64_t tol[4] = {1, 2, 2, 4};
    const char *names[4] = {"param", "square_avg", "grad_avg", "momentum_buf"};
    int failures = 0;

    printf("rmsfuse %s (header %s), ISA %s\n", rmsfuse_version(), RMSFUSE_VERSION_STRING, rmsfuse_active_isa());
    for (unsigned variant = 0; variant < 64; variant++) {
        rmsfuse_rmsprop_config cfg = rmsfuse_rmsprop_pytorch(1e-3);
        cfg.alpha = 0.9;
        cfg.eps = 1e-6;
        cfg.flags = variant & 15u; /* the four flags of 0.1 */
        cfg.weight_decay = (variant & 16) ? 0.01 : 0.0;
        cfg.momentum = (variant & 32) ? 0.9 : 0.0;
        const double sign = (cfg.flags & RMSFUSE_MAXIMIZE) ? -1.0 : 1.0;

        for (int i = 0; i < N; i++) {
            p[i] = (float)uniform(1.0, 2.0);
            g[i] = (float)(sign * uniform(0.5, 1.0));
            v[i] = (float)uniform(1.0, 2.0);
            b[i] = (float)(uniform(0.0, 0.1) * sign * (cfg.flags & RMSFUSE_MAXIMIZE ? -1.0 : 1.0));
            ga[i] = (float)(uniform(0.0, 0.5) * sign * (cfg.flags & RMSFUSE_MAXIMIZE ? -1.0 : 1.0));
            P[i] = p[i], G[i] = g[i], V[i] = v[i], B[i] = b[i], GA[i] = ga[i];
        }
        int st = rmsfuse_rmsprop_step(&cfg, p, g, v, b, ga, N);
        if (st != RMSFUSE_OK) {
            printf("variant %u: %s\n", variant, rmsfuse_strerror(st));
            return 1;
        }

        for (int i = 0; i < N; i++) {
            /* The formula, in double. */
            double gg = (cfg.flags & RMSFUSE_MAXIMIZE) ? -G[i] : G[i];
            gg += cfg.weight_decay * P[i];
            double vv = cfg.alpha * V[i] + (1.0 - cfg.alpha) * gg * gg, s = vv, gga = GA[i];
            if (cfg.flags & RMSFUSE_CENTERED) {
                gga = cfg.alpha * GA[i] + (1.0 - cfg.alpha) * gg;
                s = vv - gga * gga;
            }
            double d = (cfg.flags & RMSFUSE_EPS_IN_SQRT) ? sqrt(s + cfg.eps) : sqrt(s) + cfg.eps;
            double bb = B[i], pp;
            if (cfg.flags & RMSFUSE_LR_IN_MOMENTUM) {
                double u = cfg.lr * gg / d;
                if (cfg.momentum != 0.0) {
                    bb = cfg.momentum * B[i] + u;
                    pp = P[i] - bb;
                } else {
                    pp = P[i] - u;
                }
            } else if (cfg.momentum != 0.0) {
                bb = cfg.momentum * B[i] + gg / d;
                pp = P[i] - cfg.lr * bb;
            } else {
                pp = P[i] - cfg.lr * gg / d;
            }

            const int64_t err[4] = {ulps(p[i], pp), ulps(v[i], vv), ulps(ga[i], gga), ulps(b[i], bb)};
            for (int a = 0; a < 4; a++) {
                if (err[a] > worst[a])
                    worst[a] = err[a];
                if (err[a] > tol[a] && failures++ < 10)
                    printf("variant %u element %d: %s off by %lld ulp\n", variant, i, names[a], (long long)err[a]);
            }
        }
    }
    printf("64 variants x %d elements, max error in ulps (tolerance):", N);
    for (int a = 0; a < 4; a++)
        printf(" %s %lld (%lld)", names[a], (long long)worst[a], (long long)tol[a]);
    printf(": %s\n", failures ? "FAIL" : "ok");
    return failures ? 1 : 0;
}

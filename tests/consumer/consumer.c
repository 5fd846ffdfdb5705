/*
 * Uses only the installed <rmsfuse.h>.  For every rule and every variant
 * (its flags x weight decay x momentum), one step over random data is
 * compared with the framework's formula evaluated in double precision with
 * the double hyperparameters.
 *
 * Inputs are drawn so that no step cancels (state signs follow the sign of
 * the effective gradient, lr is small against param, denominators stay
 * >= 0.5), so the float32 result must round to within a few ulps of the
 * double one.  Tolerances, from counting roundings (each <= 0.5 ulp,
 * constants rounded from double included):
 *   param                 1 ulp  (its own rounding + a step that is tiny against it);
 *                         2 with decoupled decay (p * dk: one more rounding, and
 *                         that of the constant dk)
 *   averages and sums     2 ulps (rounded constants, two products, one sum)
 *   momentum buffers      4 ulps (g/d carries sqrt, +eps and / roundings; then
 *                                 the rounded momentum, a product and a sum)
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

/* Up to 5 arrays per rule: the float32 inputs/outputs and the double copies. */
enum { MAXARR = 5 };
static float f[MAXARR][N];
static double d[MAXARR][N];

typedef struct tally {
    const char *rule;
    const char *names[MAXARR];
    int64_t tol[MAXARR];
    int64_t worst[MAXARR];
    int arrays, variants, failures;
} tally;

/* Compares array a (float32 result) with want[i] (double), allowing `extra`
 * ulps beyond the array's tolerance. */
static void compare(tally *t, int a, unsigned variant, const double *want, int64_t extra)
{
    for (int i = 0; i < N; i++) {
        const int64_t e = ulps(f[a][i], want[i]);
        if (e > t->worst[a])
            t->worst[a] = e;
        if (e > t->tol[a] + extra && t->failures++ < 10)
            printf("%s variant %u element %d: %s off by %lld ulp\n", t->rule, variant, i, t->names[a],
                   (long long)e);
    }
}

static int report(const tally *t)
{
    printf("%s: %d variants x %d elements, max error in ulps (tolerance):", t->rule, t->variants, N);
    for (int a = 0; a < t->arrays; a++)
        printf(" %s %lld (%lld)", t->names[a], (long long)t->worst[a], (long long)t->tol[a]);
    printf(": %s\n", t->failures ? "FAIL" : "ok");
    return t->failures != 0;
}

/* Fills array a with uniform [lo, hi) times sign, and its double copy. */
static void fill(int a, double lo, double hi, double sign)
{
    for (int i = 0; i < N; i++) {
        f[a][i] = (float)(sign * uniform(lo, hi));
        d[a][i] = f[a][i];
    }
}

static int check_status(const char *rule, unsigned variant, int st)
{
    if (st != RMSFUSE_OK)
        printf("%s variant %u: %s\n", rule, variant, rmsfuse_strerror(st));
    return st != RMSFUSE_OK;
}

/* ---- RMSProp: 6 flags x weight decay x momentum (Nesterov only with it) ---- */
static int rmsprop(void)
{
    tally t = {"rmsprop", {"param", "grad", "square_avg", "momentum_buf", "grad_avg"}, {1, 0, 2, 4, 2},
               {0}, 5, 0, 0};
    static double want[MAXARR][N];
    for (unsigned variant = 0; variant < 256; variant++) {
        rmsfuse_rmsprop_config cfg = rmsfuse_rmsprop_pytorch(1e-3);
        cfg.alpha = 0.9;
        cfg.eps = 1e-6;
        cfg.flags = variant & RMSFUSE_RMSPROP_FLAGS;
        cfg.weight_decay = (variant & 64) ? 0.01 : 0.0;
        cfg.momentum = (variant & 128) ? 0.9 : 0.0;
        if ((cfg.flags & RMSFUSE_NESTEROV) && cfg.momentum == 0.0)
            continue; /* refused (RMSFUSE_E_NESTEROV) */
        const double sign = (cfg.flags & RMSFUSE_MAXIMIZE) ? -1.0 : 1.0;
        fill(0, 1.0, 2.0, 1.0);
        fill(1, 0.5, 1.0, sign);
        fill(2, 1.0, 2.0, 1.0);
        fill(3, 0.0, 0.1, 1.0);
        fill(4, 0.0, 0.5, 1.0);
        if (check_status(t.rule, variant, rmsfuse_rmsprop_step(&cfg, f[0], f[1], f[2], f[3], f[4], N)))
            return 1;
        t.variants++;
        const int dec = (cfg.flags & RMSFUSE_DECOUPLED_DECAY) != 0;
        for (int i = 0; i < N; i++) {
            double p = d[0][i], g = (cfg.flags & RMSFUSE_MAXIMIZE) ? -d[1][i] : d[1][i];
            if (dec)
                p *= 1.0 - cfg.lr * cfg.weight_decay;
            else
                g += cfg.weight_decay * p;
            const double v = cfg.alpha * d[2][i] + (1.0 - cfg.alpha) * g * g;
            double s = v, ga = d[4][i];
            if (cfg.flags & RMSFUSE_CENTERED) {
                ga = cfg.alpha * d[4][i] + (1.0 - cfg.alpha) * g;
                s = v - ga * ga;
            }
            const double dd = (cfg.flags & RMSFUSE_EPS_IN_SQRT) ? sqrt(s + cfg.eps) : sqrt(s) + cfg.eps;
            double b = d[3][i];
            if (cfg.momentum == 0.0) {
                p -= cfg.lr * g / dd;
            } else if (cfg.flags & RMSFUSE_LR_IN_MOMENTUM) { /* TF; Nesterov as optax */
                const double u = cfg.lr * g / dd;
                b = cfg.momentum * b + u;
                p -= (cfg.flags & RMSFUSE_NESTEROV) ? u + cfg.momentum * b : b;
            } else {
                b = cfg.momentum * b + g / dd;
                p -= cfg.lr * ((cfg.flags & RMSFUSE_NESTEROV) ? g / dd + cfg.momentum * b : b);
            }
            want[0][i] = p, want[2][i] = v, want[3][i] = b, want[4][i] = ga;
        }
        for (int a = 0; a < 5; a++)
            if (a != 1)
                compare(&t, a, variant, want[a], a == 0 && dec && cfg.weight_decay != 0.0);
    }
    return report(&t);
}

/* ---- AdaGrad (torch, and sqrt(sum + eps) as Keras), lr_decay at step 3 ---- */
static int adagrad(void)
{
    tally t = {"adagrad", {"param", "grad", "sum"}, {1, 0, 2}, {0}, 3, 0, 0};
    static double want[MAXARR][N];
    for (unsigned variant = 0; variant < 32; variant++) {
        rmsfuse_adagrad_config cfg = rmsfuse_adagrad_pytorch(1e-3);
        cfg.eps = 1e-6;
        cfg.flags = variant & RMSFUSE_ADAGRAD_FLAGS;
        cfg.weight_decay = (variant & 1) ? 0.01 : 0.0;
        cfg.lr_decay = (variant & 4) ? 0.1 : 0.0;
        cfg.step = 3;
        const double sign = (cfg.flags & RMSFUSE_MAXIMIZE) ? -1.0 : 1.0;
        fill(0, 1.0, 2.0, 1.0);
        fill(1, 0.5, 1.0, sign);
        fill(2, 0.5, 2.0, 1.0);
        if (check_status(t.rule, variant, rmsfuse_adagrad_step(&cfg, f[0], f[1], f[2], N)))
            return 1;
        t.variants++;
        const double clr = cfg.lr / (1.0 + (double)(cfg.step - 1) * cfg.lr_decay);
        for (int i = 0; i < N; i++) {
            double p = d[0][i], g = (cfg.flags & RMSFUSE_MAXIMIZE) ? -d[1][i] : d[1][i];
            if (cfg.flags & RMSFUSE_DECOUPLED_DECAY)
                p *= 1.0 - clr * cfg.weight_decay;
            else
                g += cfg.weight_decay * p;
            const double sum = d[2][i] + g * g;
            const double dd = (cfg.flags & RMSFUSE_EPS_IN_SQRT) ? sqrt(sum + cfg.eps) : sqrt(sum) + cfg.eps;
            want[0][i] = p - clr * g / dd, want[2][i] = sum;
        }
        const int dec = (cfg.flags & RMSFUSE_DECOUPLED_DECAY) && cfg.weight_decay != 0.0;
        compare(&t, 0, variant, want[0], dec);
        compare(&t, 2, variant, want[2], 0);
    }
    return report(&t);
}

/* ---- SGD: torch (dampening, Nesterov, first step) and Keras (velocity) ---- */
static int sgd(void)
{
    tally t = {"sgd", {"param", "grad", "momentum_buf"}, {1, 0, 4}, {0}, 3, 0, 0};
    static double want[MAXARR][N];
    for (unsigned variant = 0; variant < 256; variant++) {
        rmsfuse_sgd_config cfg = rmsfuse_sgd_pytorch(1e-3);
        cfg.flags = variant & RMSFUSE_SGD_FLAGS;
        cfg.weight_decay = (variant & 1) ? 0.01 : 0.0;
        cfg.momentum = (variant & 2) ? 0.9 : 0.0;
        cfg.dampening = (variant & 128) ? 0.25 : 0.0;
        if (rmsfuse_sgd_check_config(&cfg) != RMSFUSE_OK)
            continue; /* a refused combination (tested elsewhere) */
        const double sign = (cfg.flags & RMSFUSE_MAXIMIZE) ? -1.0 : 1.0;
        const int keras = (cfg.flags & RMSFUSE_LR_IN_MOMENTUM) != 0;
        fill(0, 1.0, 2.0, 1.0);
        fill(1, 0.5, 1.0, sign);
        fill(2, 0.0, 0.5, keras ? -1e-3 : 1.0); /* Keras' velocity has the sign of -lr*g */
        if (check_status(t.rule, variant, rmsfuse_sgd_step(&cfg, f[0], f[1], f[2], N)))
            return 1;
        t.variants++;
        for (int i = 0; i < N; i++) {
            double p = d[0][i], g = (cfg.flags & RMSFUSE_MAXIMIZE) ? -d[1][i] : d[1][i], b = d[2][i];
            if (cfg.flags & RMSFUSE_DECOUPLED_DECAY)
                p *= 1.0 - cfg.lr * cfg.weight_decay;
            else
                g += cfg.weight_decay * p;
            const int nesterov = (cfg.flags & RMSFUSE_NESTEROV) != 0;
            if (cfg.momentum == 0.0) {
                p -= cfg.lr * g;
            } else if (!keras) { /* torch */
                b = (cfg.flags & RMSFUSE_INIT_MOMENTUM) ? g : cfg.momentum * b + (1.0 - cfg.dampening) * g;
                p -= cfg.lr * (nesterov ? g + cfg.momentum * b : b);
            } else { /* Keras */
                b = cfg.momentum * b - cfg.lr * g;
                p += nesterov ? cfg.momentum * b - cfg.lr * g : b;
            }
            want[0][i] = p, want[2][i] = b;
        }
        const int dec = (cfg.flags & RMSFUSE_DECOUPLED_DECAY) && cfg.weight_decay != 0.0;
        compare(&t, 0, variant, want[0], dec);
        if (cfg.momentum != 0.0)
            compare(&t, 2, variant, want[2], 0);
    }
    return report(&t);
}

/* ---- Adam: torch (Adam, AdamW) and epsilon-hat forms, AMSGrad, step 5 ---- */
static int adam(void)
{
    tally t = {"adam", {"param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}, {1, 0, 2, 2, 2},
               {0}, 5, 0, 0};
    static double want[MAXARR][N];
    for (unsigned variant = 0; variant < 1024; variant++) {
        rmsfuse_adam_config cfg = rmsfuse_adam_pytorch(1e-3);
        cfg.flags = variant & RMSFUSE_ADAM_FLAGS;
        cfg.weight_decay = (variant & 1) ? 0.01 : 0.0;
        cfg.eps = 1e-6;
        cfg.step = 5;
        if (variant & ~(RMSFUSE_ADAM_FLAGS | 1u))
            continue;
        const double sign = (cfg.flags & RMSFUSE_MAXIMIZE) ? -1.0 : 1.0;
        fill(0, 1.0, 2.0, 1.0);
        fill(1, 0.5, 1.0, sign);
        fill(2, 0.0, 0.5, 1.0);
        fill(3, 0.5, 1.0, 1.0);
        fill(4, 0.5, 1.0, 1.0);
        if (check_status(t.rule, variant, rmsfuse_adam_step(&cfg, f[0], f[1], f[2], f[3], f[4], N)))
            return 1;
        t.variants++;
        const double bc1 = 1.0 - pow(cfg.beta1, (double)cfg.step), bc2 = 1.0 - pow(cfg.beta2, (double)cfg.step);
        for (int i = 0; i < N; i++) {
            double p = d[0][i], g = (cfg.flags & RMSFUSE_MAXIMIZE) ? -d[1][i] : d[1][i];
            if (cfg.flags & RMSFUSE_DECOUPLED_DECAY)
                p *= 1.0 - cfg.lr * cfg.weight_decay;
            else
                g += cfg.weight_decay * p;
            const double m = cfg.beta1 * d[2][i] + (1.0 - cfg.beta1) * g;
            const double v = cfg.beta2 * d[3][i] + (1.0 - cfg.beta2) * g * g;
            double vm = d[4][i], r = v;
            if (cfg.flags & RMSFUSE_AMSGRAD)
                r = vm = vm > v ? vm : v;
            if (cfg.flags & RMSFUSE_EPS_HAT) /* TensorFlow, Keras */
                p -= cfg.lr * sqrt(bc2) / bc1 * m / (sqrt(r) + cfg.eps);
            else /* torch */
                p -= cfg.lr / bc1 * m / (sqrt(r) / sqrt(bc2) + cfg.eps);
            want[0][i] = p, want[2][i] = m, want[3][i] = v, want[4][i] = vm;
        }
        const int dec = (cfg.flags & RMSFUSE_DECOUPLED_DECAY) && cfg.weight_decay != 0.0;
        for (int a = 0; a < 4; a++)
            if (a != 1)
                compare(&t, a, variant, want[a], a == 0 && dec);
        if (cfg.flags & RMSFUSE_AMSGRAD)
            compare(&t, 4, variant, want[4], 0);
    }
    return report(&t);
}

int main(void)
{
    printf("rmsfuse %s (header %s), ISA %s\n", rmsfuse_version(), RMSFUSE_VERSION_STRING, rmsfuse_active_isa());
    const int failed = rmsprop() + adagrad() + sgd() + adam();
    return failed ? 1 : 0;
}

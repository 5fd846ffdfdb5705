/*
 * Every update rule of rmsfuse on the same small problem: minimise
 * f(x) = sum_i (x_i - t_i)^2 / 2 (gradient x - t) from x = 0, 200 steps
 * each, with the frameworks' presets.  Prints the loss before and after and
 * exits non-zero if a rule fails to reduce it a hundredfold (the test suite
 * runs this program).
 *
 * Build against an installed rmsfuse:
 *   cc -std=c11 family.c $(pkg-config --cflags --libs rmsfuse) -lm
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <rmsfuse.h>

#define N 1000
#define STEPS 200

static float target[N], x[N], g[N], s1[N], s2[N], s3[N];

static double loss_and_grad(void)
{
    double loss = 0.0;
    for (int i = 0; i < N; i++) {
        g[i] = x[i] - target[i];
        loss += 0.5 * (double)g[i] * g[i];
    }
    return loss;
}

static void reset(void)
{
    for (int i = 0; i < N; i++)
        target[i] = (float)sin(0.1 * i);
    memset(x, 0, sizeof x);
    memset(s1, 0, sizeof s1);
    memset(s2, 0, sizeof s2);
    memset(s3, 0, sizeof s3);
}

/* Runs STEPS steps of `step` (one rule's call on x, g and its state) and
 * reports; returns 0 when the loss fell a hundredfold. */
static int run(const char *name, int (*step)(int t))
{
    reset();
    const double before = loss_and_grad();
    for (int t = 1; t <= STEPS; t++) {
        loss_and_grad();
        const int st = step(t);
        if (st != RMSFUSE_OK) {
            printf("%-28s step %d: %s (%s)\n", name, t, rmsfuse_strerror(st), rmsfuse_status_name(st));
            return 1;
        }
    }
    const double after = loss_and_grad();
    printf("%-28s loss %8.4f -> %.3g\n", name, before, after);
    return after < before / 100.0 ? 0 : 1;
}

static int rmsprop_torch(int t)
{
    (void)t;
    rmsfuse_rmsprop_config c = rmsfuse_rmsprop_pytorch(0.01);
    c.momentum = 0.9; /* momentum_buf: s2 */
    return rmsfuse_rmsprop_step(&c, x, g, s1, s2, NULL, N);
}

static int rmsprop_optax_nesterov(int t)
{
    (void)t;
    rmsfuse_rmsprop_config c = rmsfuse_rmsprop_keras(0.01);
    c.momentum = 0.9;
    c.flags |= RMSFUSE_NESTEROV;
    return rmsfuse_rmsprop_step(&c, x, g, s1, s2, NULL, N);
}

static int adagrad_torch(int t)
{
    rmsfuse_adagrad_config c = rmsfuse_adagrad_pytorch(0.5);
    c.lr_decay = 1e-3;
    c.step = t; /* lr_decay needs the step number */
    return rmsfuse_adagrad_step(&c, x, g, s1, N);
}

static int sgd_torch_nesterov(int t)
{
    rmsfuse_sgd_config c = rmsfuse_sgd_pytorch(0.1);
    c.momentum = 0.9;
    c.flags |= RMSFUSE_NESTEROV;
    if (t == 1)
        c.flags |= RMSFUSE_INIT_MOMENTUM; /* torch: the buffer starts as the first gradient */
    return rmsfuse_sgd_step(&c, x, g, s1, N);
}

static int sgd_keras(int t)
{
    (void)t;
    rmsfuse_sgd_config c = rmsfuse_sgd_keras(0.1);
    c.momentum = 0.9;
    return rmsfuse_sgd_step(&c, x, g, s1, N);
}

static int adam_torch(int t)
{
    rmsfuse_adam_config c = rmsfuse_adam_pytorch(0.05);
    c.step = t; /* the bias corrections come from the step number */
    return rmsfuse_adam_step(&c, x, g, s1, s2, NULL, N);
}

static int adamw_amsgrad(int t)
{
    rmsfuse_adam_config c = rmsfuse_adamw_pytorch(0.05);
    c.flags |= RMSFUSE_AMSGRAD; /* max_exp_avg_sq: s3 */
    c.step = t;
    return rmsfuse_adam_step(&c, x, g, s1, s2, s3, N);
}

static int adam_keras(int t)
{
    rmsfuse_adam_config c = rmsfuse_adam_keras(0.05);
    c.step = t;
    return rmsfuse_adam_step(&c, x, g, s1, s2, NULL, N);
}

int main(void)
{
    printf("rmsfuse %s, ISA %s, %d elements, %d steps\n", rmsfuse_version(), rmsfuse_active_isa(), N, STEPS);
    int failed = 0;
    failed += run("RMSProp (torch, momentum)", rmsprop_torch);
    failed += run("RMSProp (optax, Nesterov)", rmsprop_optax_nesterov);
    failed += run("AdaGrad (torch, lr_decay)", adagrad_torch);
    failed += run("SGD (torch, Nesterov)", sgd_torch_nesterov);
    failed += run("SGD (Keras, momentum)", sgd_keras);
    failed += run("Adam (torch)", adam_torch);
    failed += run("AdamW + AMSGrad (torch)", adamw_amsgrad);
    failed += run("Adam (Keras)", adam_keras);

    /* A refused configuration writes nothing and says why. */
    rmsfuse_adam_config bad = rmsfuse_adam_pytorch(0.05);
    bad.beta2 = 1.0;
    const float before = x[0];
    const int st = rmsfuse_adam_step(&bad, x, g, s1, s2, NULL, N);
    printf("beta2 = 1: %s (%s), x[0] unchanged: %s\n", rmsfuse_strerror(st), rmsfuse_status_name(st),
           x[0] == before ? "yes" : "NO");
    failed += st != RMSFUSE_E_BETA2 || x[0] != before;
    return failed ? 1 : 0;
}

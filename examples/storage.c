/*
 * Fewer bytes per element from C: one model trained with Adam in six
 * storages (rmsfuse_adam_step_typed), from the same initial weights on the
 * same batches, printing the held-out loss and the bytes each storage keeps
 * per parameter:
 *
 *   float32          every array float32: the reference
 *   bf16 + master    the model's weights in bf16, a float32 master copy that
 *                    the step updates (RMSFUSE_MASTER_WEIGHTS), bf16 gradients
 *                    and bf16 state
 *   split + 8-bit    split bf16: the model's bf16 (the upper half of each
 *                    float32 weight) and a 16-bit trail that completes it,
 *                    bf16 gradients, 8-bit block-quantised state (RMSFUSE_Q8)
 *   bf16 SR          bf16 weights and nothing else: each step rounds them
 *                    stochastically (RMSFUSE_STOCHASTIC_ROUNDING); bf16 state
 *   bf16 nearest     the same rounded to nearest: an update smaller than half a
 *                    bf16 step is lost
 *   bf16 SR + 8-bit  bf16 SR with 8-bit state: the fewest bytes
 *
 * The model is a linear regression, y = w.x + noise, w of N weights, trained
 * online: each step draws B fresh samples (x uniform in [-1, 1)), computes
 * the gradient of the mean squared error in float32 from the weights the
 * model holds, and hands it to the step in the storage's gradient type.
 * The learning rate falls linearly, so late updates are small beside the
 * weights: what rounding to nearest loses and stochastic rounding keeps.
 * N = 600 is two whole 8-bit blocks of RMSFUSE_Q8_BLOCK = 256 elements and
 * a part of one.  Zeroed codes with zeroed block scales are state zero.
 *
 * Exits non-zero if a step fails, if float32 does not end within twice the
 * noise's floor, if a storage that keeps the float32 weight (master, split)
 * ends above 1.6 x float32's loss or one rounded stochastically above 4 x,
 * or if rounding to nearest does not end ten times worse than stochastic
 * rounding (the test suite runs this program).  Every ISA gives the same
 * bits: RMSFUSE_ISA=scalar prints the same losses.
 *
 * Build against an installed rmsfuse:
 *   cc -std=c11 -ffp-contract=off storage.c $(pkg-config --cflags --libs rmsfuse)
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <rmsfuse.h>

#define N 600                                            /* weights */
#define B 16                                             /* samples per step */
#define STEPS 2000
#define HELD 512                                         /* held-out samples */
#define NOISE 0.05f                                      /* the label noise's standard deviation, about */
#define NB ((N + RMSFUSE_Q8_BLOCK - 1) / RMSFUSE_Q8_BLOCK) /* 8-bit blocks per state array */

/* A small counter-based generator (splitmix64), so that every run sees the same data. */
static uint64_t rng;
static float uniform(void) /* [-1, 1) */
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    z ^= z >> 31;
    return (float)(z >> 40) * 0x1p-23f - 1.0f;
}

static float w_true[N], held_x[HELD][N], held_y[HELD];

/* A sample: its inputs and label. */
static float sample(float *x)
{
    float y = 0.0f;
    for (int i = 0; i < N; i++) {
        x[i] = uniform();
        y += w_true[i] * x[i];
    }
    return y + NOISE * 1.7320508f * uniform(); /* uniform noise of standard deviation NOISE */
}

/* Half the mean squared error of weights w on the held-out samples. */
static double held_loss(const float *w)
{
    double sum = 0.0;
    for (int j = 0; j < HELD; j++) {
        float r = -held_y[j];
        for (int i = 0; i < N; i++)
            r += w[i] * held_x[j][i];
        sum += (double)r * r;
    }
    return 0.5 * sum / HELD;
}

struct choice {
    const char *name;
    rmsfuse_storage storage;
};

/* The arrays of one run, in the widest types any storage needs. */
static float param32[N], extra32[N], grad32[N], state32[2][N], scale[2][NB];
static uint16_t param16[N], extra16[N], grad16[N], state16[2][N];
static uint8_t state8[2][N];

/* Trains from w = 0 with storage c; returns the held-out loss at the end
 * (a negative value if a step failed) and the bytes per parameter that the
 * storage keeps beside the model's weights in *opt_bytes. */
static double train(const struct choice *c, double *opt_bytes)
{
    const rmsfuse_storage *s = &c->storage;
    memset(param32, 0, sizeof param32);
    memset(extra32, 0, sizeof extra32);
    memset(param16, 0, sizeof param16);
    memset(extra16, 0, sizeof extra16);
    memset(state32, 0, sizeof state32);
    memset(state16, 0, sizeof state16);
    memset(state8, 0, sizeof state8);
    memset(scale, 0, sizeof scale);

    rmsfuse_typed_tensor t = {0};
    t.n = N;
    t.param = s->param == RMSFUSE_F32 ? (void *)param32 : (void *)param16;
    t.param_extra = s->param == RMSFUSE_SPLIT_BF16 ? (void *)extra16
                    : (s->flags & RMSFUSE_MASTER_WEIGHTS) ? (void *)extra32 : NULL;
    t.grad = s->grad == RMSFUSE_F32 ? (const void *)grad32 : (const void *)grad16;
    for (int k = 0; k < 2; k++) {
        t.state[k] = s->state == RMSFUSE_F32 ? (void *)state32[k]
                     : s->state == RMSFUSE_BF16 ? (void *)state16[k] : (void *)state8[k];
        t.scale[k] = scale[k]; /* read only with 8-bit state */
    }
    const size_t state_bytes = s->state == RMSFUSE_F32 ? 4 * N : s->state == RMSFUSE_BF16 ? 2 * N : N + 4 * NB;
    const size_t extra_bytes = t.param_extra == extra32 ? 4 * N : t.param_extra == extra16 ? 2 * N : 0;
    *opt_bytes = (double)(2 * state_bytes + extra_bytes) / N;

    rmsfuse_adam_config cfg = rmsfuse_adam_pytorch(0.0);
    static float w[N], x[B][N], y[B];
    rng = 2; /* the same batches in every run */
    for (int step = 1; step <= STEPS; step++) {
        /* the weights the model computes with: a bf16 param (the split's upper half) as a float */
        if (s->param == RMSFUSE_F32)
            memcpy(w, param32, sizeof w);
        else
            rmsfuse_convert_to_f32(RMSFUSE_BF16, 0, param16, NULL, w, N);
        /* the gradient of half the batch's mean squared error, in float32 */
        memset(grad32, 0, sizeof grad32);
        for (int j = 0; j < B; j++) {
            y[j] = sample(x[j]);
            float r = -y[j];
            for (int i = 0; i < N; i++)
                r += w[i] * x[j][i];
            for (int i = 0; i < N; i++)
                grad32[i] += r * x[j][i] * (1.0f / B);
        }
        if (s->grad != RMSFUSE_F32) /* a bf16 model's backward pass hands over bf16 gradients */
            rmsfuse_convert_from_f32(s->grad, 0, grad32, grad16, NULL, N);

        cfg.lr = 0.05 * (1.0 - (step - 1.0) / STEPS) + 1e-4; /* linear decay */
        cfg.step = step;
        rmsfuse_storage st = *s;
        st.step = (unsigned long long)step; /* stochastic rounding: new bits each step */
        const int status = rmsfuse_adam_step_typed(&cfg, &st, &t, 1, NULL, NULL);
        if (status != RMSFUSE_OK) {
            printf("%-16s step %d: %s (%s)\n", c->name, step, rmsfuse_strerror(status), rmsfuse_status_name(status));
            return -1.0;
        }
    }
    if (s->param == RMSFUSE_F32)
        memcpy(w, param32, sizeof w);
    else
        rmsfuse_convert_to_f32(RMSFUSE_BF16, 0, param16, NULL, w, N);
    return held_loss(w);
}

int main(void)
{
    rng = 1;
    for (int i = 0; i < N; i++)
        w_true[i] = 2.0f * uniform(); /* up to 2: bf16 steps of 2^-7 at the top */
    for (int j = 0; j < HELD; j++)
        held_y[j] = sample(held_x[j]);
    static const float zero[N];
    const double start = held_loss(zero), noise_floor = 0.5 * NOISE * NOISE;

    struct choice choices[] = {
        {"float32", rmsfuse_storage_f32()},
        {"bf16 + master", {RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_MASTER_WEIGHTS, 0, 0}},
        {"split + 8-bit", {RMSFUSE_SPLIT_BF16, RMSFUSE_BF16, RMSFUSE_Q8, 0, 0, 0}},
        {"bf16 SR", {RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_STOCHASTIC_ROUNDING, 42, 0}},
        {"bf16 nearest", {RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_BF16, 0, 0, 0}},
        {"bf16 SR + 8-bit", {RMSFUSE_BF16, RMSFUSE_BF16, RMSFUSE_Q8, RMSFUSE_STOCHASTIC_ROUNDING, 42, 0}},
    };
    enum { NC = sizeof choices / sizeof choices[0] };
    double loss[NC];
    printf("rmsfuse %s (%s): Adam on a linear regression, %d weights, %d steps of %d samples\n",
           rmsfuse_version(), rmsfuse_active_isa(), N, STEPS, B);
    printf("held-out loss at w = 0: %.2f; the noise's floor: %.5f\n\n", start, noise_floor);
    /* per parameter: "model bytes" is the weight the model reads (and the
     * gradient it writes has that width too); "optimizer bytes" is what the
     * optimizer keeps besides: both state arrays with their block scales,
     * and the master copy or the split's trail. */
    printf("%-16s %12s %10s %13s %16s\n", "storage", "final loss", "/ float32", "model bytes", "optimizer bytes");
    for (int k = 0; k < NC; k++) {
        double opt_bytes;
        loss[k] = train(&choices[k], &opt_bytes);
        if (loss[k] < 0.0)
            return 1;
        printf("%-16s %12.5f %10.2f %13d %16.2f\n", choices[k].name, loss[k], loss[k] / loss[0],
               choices[k].storage.param == RMSFUSE_F32 ? 4 : 2, opt_bytes);
    }
    int bad = 0;
    if (!(loss[0] < 2.0 * noise_floor)) {
        printf("float32 did not reach twice the noise's floor\n");
        bad = 1;
    }
    /* master, split: the float32 weight is kept, the model reads it rounded
     * or truncated to bf16; SR: the bf16 weight alone, which a step moves
     * by whole bf16 steps at random */
    static const double most[NC] = {0, 1.6, 1.6, 4.0, 0, 4.0};
    for (int k = 1; k < NC; k++)
        if (most[k] > 0.0 && !(loss[k] < most[k] * loss[0])) {
            printf("%s: more than %.1f x float32's loss\n", choices[k].name, most[k]);
            bad = 1;
        }
    if (!(loss[4] > 10.0 * loss[3])) {
        printf("rounding to nearest did not end ten times worse than stochastic rounding\n");
        bad = 1;
    }
    return bad;
}

/*
 * A training step's other passes fused into the update: mixed precision's
 * loss scaling with a skipped step on overflow, and clipping by the global
 * gradient norm, with rmsfuse_adam_step_ex on a list of two tensors.
 *
 * The model is f(w, b) = sum_i (w_i - t_i)^2 / 2 + sum_j (b_j - 4)^2 / 2;
 * its gradients are computed as a mixed-precision step would hand them
 * over: multiplied by a loss scale, which starts too large (so that the
 * scaled gradients overflow and the first steps must be skipped) and is
 * halved after each overflow, as torch's GradScaler does.  Every step
 * clips by the global norm (max_norm 1) and reports the norm.  Exits
 * non-zero if a step with an overflow wrote anything, or if training does
 * not reduce the loss a hundredfold (the test suite runs this program).
 *
 * Build against an installed rmsfuse:
 *   cc -std=c11 train_step.c $(pkg-config --cflags --libs rmsfuse) -lm
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <rmsfuse.h>

#define NW 3000
#define NB 40
#define STEPS 300

static float w[NW], gw[NW], mw[NW], vw[NW], t[NW];
static float b[NB], gb[NB], mb[NB], vb[NB];

/* The loss, and its gradients times `scale` in float, as a float16 or
 * scaled-loss backward pass would produce them (Inf where they overflow). */
static double loss_and_scaled_grads(float scale)
{
    double loss = 0.0;
    for (int i = 0; i < NW; i++) {
        const float d = w[i] - t[i];
        loss += 0.5 * (double)d * d;
        gw[i] = d * scale;
    }
    for (int j = 0; j < NB; j++) {
        const float d = b[j] - 4.0f;
        loss += 0.5 * (double)d * d;
        gb[j] = d * scale;
    }
    return loss;
}

int main(void)
{
    for (int i = 0; i < NW; i++)
        t[i] = (float)sin(0.01 * i);
    rmsfuse_adam_config cfg = rmsfuse_adam_pytorch(0.05);
    const rmsfuse_adam_tensor tensors[2] = {{w, gw, mw, vw, NULL, NW}, {b, gb, mb, vb, NULL, NB}};

    float loss_scale = 3e38f; /* far too large: the first gradients overflow */
    int skipped = 0;
    const double first = loss_and_scaled_grads(1.0f);
    for (int step = 1; step <= STEPS; step++) {
        loss_and_scaled_grads(loss_scale);
        rmsfuse_grad_options opt = rmsfuse_grad_options_none();
        opt.scale = 1.0 / loss_scale; /* unscale as the step reads the gradients */
        opt.max_norm = 1.0;           /* clip by the global norm of both tensors */
        opt.flags = RMSFUSE_SKIP_NONFINITE;
        rmsfuse_grad_info info;
        static float before[2 * NW + 2 * NB];
        memcpy(before, mw, sizeof mw); /* the state, and w and b below, must not change when skipped */
        memcpy(before + NW, w, sizeof w);
        memcpy(before + 2 * NW, b, sizeof b);
        memcpy(before + 2 * NW + NB, vb, sizeof vb);
        const int st = rmsfuse_adam_step_ex(&cfg, tensors, 2, &opt, &info);
        if (st == RMSFUSE_SKIPPED) { /* overflow: nothing written; back off, as GradScaler does */
            if (memcmp(before, mw, sizeof mw) || memcmp(before + NW, w, sizeof w) ||
                memcmp(before + 2 * NW, b, sizeof b) || memcmp(before + 2 * NW + NB, vb, sizeof vb) ||
                info.nonfinite != 1) {
                printf("step %d: skipped, but the parameters changed\n", step);
                return 1;
            }
            printf("step %3d: gradient overflow at loss scale %g: skipped\n", step, loss_scale);
            loss_scale *= 0.5f;
            skipped++;
            continue;
        }
        if (st != RMSFUSE_OK) {
            printf("step %d: %s (%s)\n", step, rmsfuse_strerror(st), rmsfuse_status_name(st));
            return 1;
        }
        if (cfg.step <= 3 || cfg.step % 100 == 0)
            printf("step %3d (Adam step %lld): gradient norm %.4g, clipped by %.3g\n", step, cfg.step, info.norm,
                   info.clip_factor);
        cfg.step++; /* Adam counts the steps it takes, not the skipped ones */
    }
    const double last = loss_and_scaled_grads(1.0f);
    printf("loss %.4f -> %.3g, %d steps skipped\n", first, last, skipped);
    return skipped > 0 && last < first / 100.0 ? 0 : 1;
}

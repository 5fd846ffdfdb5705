/* One RMSProp step with PyTorch's defaults, then a TensorFlow-style
 * centred step with momentum.  Build: cc basic.c $(pkg-config --cflags --libs rmsfuse) */
#include <stdio.h>
#include <stdlib.h>

#include <rmsfuse.h>

int main(void)
{
    enum { N = 4 };
    float param[N] = {1.0f, -2.0f, 0.5f, 3.0f};
    float grad[N] = {0.1f, -0.2f, 0.3f, 0.0f};
    float square_avg[N] = {0}; /* optimizer state starts at zero */

    rmsfuse_rmsprop_config cfg = rmsfuse_rmsprop_pytorch(0.01); /* lr = 0.01 */
    int st = rmsfuse_rmsprop_step(&cfg, param, grad, square_avg, NULL, NULL, N);
    if (st != RMSFUSE_OK) {
        fprintf(stderr, "rmsfuse: %s\n", rmsfuse_strerror(st));
        return EXIT_FAILURE;
    }
    printf("ISA %s, param after one step: %g %g %g %g\n", rmsfuse_active_isa(), param[0], param[1], param[2],
           param[3]);

    /* TensorFlow ApplyCenteredRMSProp with momentum 0.9. */
    float momentum_buf[N] = {0}, grad_avg[N] = {0};
    cfg = rmsfuse_rmsprop_tensorflow(0.001);
    cfg.momentum = 0.9;
    cfg.flags |= RMSFUSE_CENTERED;
    st = rmsfuse_rmsprop_step(&cfg, param, grad, square_avg, momentum_buf, grad_avg, N);
    if (st != RMSFUSE_OK) {
        fprintf(stderr, "rmsfuse: %s\n", rmsfuse_strerror(st));
        return EXIT_FAILURE;
    }

    /* Bad input is refused with a status, and nothing is written. */
    cfg.alpha = 1.5;
    st = rmsfuse_rmsprop_step(&cfg, param, grad, square_avg, momentum_buf, grad_avg, N);
    printf("alpha = 1.5: %s\n", rmsfuse_strerror(st));
    return st == RMSFUSE_E_ALPHA ? EXIT_SUCCESS : EXIT_FAILURE;
}

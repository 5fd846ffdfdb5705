/*
 * Uses the INSTALLED thread pool (rmsfuse_pool.h, rmsfuse::rmsfuse_pool or
 * pkg-config rmsfuse_pool): a two-worker step over 300000 elements gives
 * the bits of the single-threaded step, for RMSProp (rmsfuse_pool_rmsprop_step)
 * and for Adam through a plan (rmsfuse_adam_plan + rmsfuse_pool_run_plan).
 */
#include <rmsfuse_pool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 300000, ARRAYS = 5 };

int main(void)
{
    const size_t half = ARRAYS * (size_t)N;
    float *a = malloc(2 * half * sizeof(float));
    if (!a)
        return 1;
    for (size_t i = 0; i < half; i++)
        a[i] = (float)((i * 2654435761u) % 1000u) / 1000.0f + 0.001f;
    memcpy(a + half, a, half * sizeof(float));
    float *x = a, *y = a + half; /* the pool's arrays, the single-threaded ones */
    rmsfuse_pool *pool;
    int st = rmsfuse_pool_create(&pool, 2);
    if (st != RMSFUSE_OK) {
        printf("rmsfuse_pool_create: %s\n", rmsfuse_strerror(st));
        return 1;
    }

    rmsfuse_rmsprop_config c = rmsfuse_rmsprop_pytorch(1e-3);
    c.momentum = 0.9;
    st = rmsfuse_pool_rmsprop_step(pool, &c, x, x + N, x + 2 * N, x + 3 * N, NULL, N);
    int st1 = rmsfuse_rmsprop_step(&c, y, y + N, y + 2 * N, y + 3 * N, NULL, N);
    const int same = memcmp(x, y, half * sizeof(float)) == 0;
    printf("rmsfuse_pool: %d workers, %d elements, RMSProp status %d/%d, %s\n", rmsfuse_pool_threads(pool), N, st,
           st1, same ? "bit-identical to the single-threaded step" : "DIFFERENT");

    /* AdamW with AMSGrad through a plan on the pool. */
    rmsfuse_adam_config ac = rmsfuse_adamw_pytorch(1e-3);
    ac.flags |= RMSFUSE_AMSGRAD;
    ac.step = 7;
    const rmsfuse_adam_tensor tx = {x, x + N, x + 2 * N, x + 3 * N, x + 4 * N, N};
    const rmsfuse_adam_tensor ty = {y, y + N, y + 2 * N, y + 3 * N, y + 4 * N, N};
    rmsfuse_plan *plan = NULL;
    int sp = rmsfuse_adam_plan(&ac, &tx, 1, &plan);
    if (sp == RMSFUSE_OK)
        sp = rmsfuse_pool_run_plan(pool, plan);
    rmsfuse_plan_free(plan);
    const int sa = rmsfuse_adam_step_multi(&ac, &ty, 1);
    const int same_adam = memcmp(x, y, half * sizeof(float)) == 0;
    printf("rmsfuse_pool: AdamW+AMSGrad plan, status %d/%d, %s\n", sp, sa,
           same_adam ? "bit-identical to the single-threaded step" : "DIFFERENT");
    rmsfuse_pool_destroy(pool);
    free(a);
    return st == RMSFUSE_OK && st1 == RMSFUSE_OK && same && sp == RMSFUSE_OK && sa == RMSFUSE_OK && same_adam ? 0
                                                                                                               : 1;
}

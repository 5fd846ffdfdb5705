/*
 * Uses the INSTALLED thread pool (rmsfuse_pool.h, rmsfuse::rmsfuse_pool or
 * pkg-config rmsfuse_pool): a two-worker step over 300000 elements gives
 * the bits of the single-threaded step.
 */
#include <rmsfuse_pool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 300000 };

int main(void)
{
    float *a = malloc(8 * (size_t)N * sizeof(float));
    if (!a)
        return 1;
    for (size_t i = 0; i < 4 * (size_t)N; i++)
        a[i] = (float)((i * 2654435761u) % 1000u) / 1000.0f + 0.001f;
    memcpy(a + 4 * (size_t)N, a, 4 * (size_t)N * sizeof(float));
    rmsfuse_rmsprop_config c = rmsfuse_rmsprop_pytorch(1e-3);
    c.momentum = 0.9;
    rmsfuse_pool *pool;
    int st = rmsfuse_pool_create(&pool, 2);
    if (st != RMSFUSE_OK) {
        printf("rmsfuse_pool_create: %s\n", rmsfuse_strerror(st));
        return 1;
    }
    float *x = a, *y = a + 4 * (size_t)N;
    st = rmsfuse_pool_rmsprop_step(pool, &c, x, x + N, x + 2 * N, x + 3 * N, NULL, N);
    int st1 = rmsfuse_rmsprop_step(&c, y, y + N, y + 2 * N, y + 3 * N, NULL, N);
    const int same = memcmp(x, y, 4 * (size_t)N * sizeof(float)) == 0;
    printf("rmsfuse_pool: %d workers, %d elements, status %d/%d, %s\n", rmsfuse_pool_threads(pool), N, st, st1,
           same ? "bit-identical to the single-threaded step" : "DIFFERENT");
    rmsfuse_pool_destroy(pool);
    free(a);
    return st == RMSFUSE_OK && st1 == RMSFUSE_OK && same ? 0 : 1;
}

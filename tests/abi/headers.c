/*
 * The public headers compile cleanly as C99, C11, C++11 and C++17 with
 * warnings as errors (ctest header_*, tests/abi/check_header.sh), and
 * declare what the ABI policy (docs/abi.md) promises: every function with
 * its exact signature (assigned to a pointer of the expected type: any
 * change is a compile error), the status codes and flag bits with their
 * values, and, on LP64 targets, the layout of the public structs.
 *
 * Compiled only (-c); check_header.sh then checks that the object refers to
 * the functions by their plain C names (extern "C" under C++).
 */
#include "rmsfuse.h"
#include "rmsfuse_pool.h"
/* Twice, in the other order: the include guards work. */
#include "rmsfuse_pool.h"
#include "rmsfuse.h"

#include <stddef.h>

/* A compile-time check that works in C99 and C++98 alike. */
#define ABI_CHECK(name, cond) typedef char abi_check_##name[(cond) ? 1 : -1]

ABI_CHECK(ok, RMSFUSE_OK == 0);
ABI_CHECK(null_config, RMSFUSE_E_NULL_CONFIG == -1);
ABI_CHECK(null_array, RMSFUSE_E_NULL_ARRAY == -2);
ABI_CHECK(null_momentum_buf, RMSFUSE_E_NULL_MOMENTUM_BUF == -3);
ABI_CHECK(null_grad_avg, RMSFUSE_E_NULL_GRAD_AVG == -4);
ABI_CHECK(nonfinite, RMSFUSE_E_NONFINITE == -5);
ABI_CHECK(lr, RMSFUSE_E_LR == -6);
ABI_CHECK(alpha, RMSFUSE_E_ALPHA == -7);
ABI_CHECK(eps, RMSFUSE_E_EPS == -8);
ABI_CHECK(weight_decay, RMSFUSE_E_WEIGHT_DECAY == -9);
ABI_CHECK(momentum, RMSFUSE_E_MOMENTUM == -10);
ABI_CHECK(flags, RMSFUSE_E_FLAGS == -11);
ABI_CHECK(overlap, RMSFUSE_E_OVERLAP == -12);
ABI_CHECK(size, RMSFUSE_E_SIZE == -13);
ABI_CHECK(unknown_isa, RMSFUSE_E_UNKNOWN_ISA == -14);
ABI_CHECK(isa_unsupported, RMSFUSE_E_ISA_UNSUPPORTED == -15);
ABI_CHECK(null_list, RMSFUSE_E_NULL_LIST == -16);
ABI_CHECK(no_memory, RMSFUSE_E_NO_MEMORY == -17);
ABI_CHECK(null_pool, RMSFUSE_E_NULL_POOL == -18);
ABI_CHECK(threads, RMSFUSE_E_THREADS == -19);

ABI_CHECK(centered, RMSFUSE_CENTERED == 1u);
ABI_CHECK(eps_in_sqrt, RMSFUSE_EPS_IN_SQRT == 2u);
ABI_CHECK(lr_in_momentum, RMSFUSE_LR_IN_MOMENTUM == 4u);
ABI_CHECK(maximize, RMSFUSE_MAXIMIZE == 8u);
ABI_CHECK(all_flags, RMSFUSE_ALL_FLAGS == 15u);
ABI_CHECK(version, RMSFUSE_VERSION_NUMBER == RMSFUSE_VERSION_MAJOR * 10000 + RMSFUSE_VERSION_MINOR * 100 +
                                                 RMSFUSE_VERSION_PATCH);

#if defined(__LP64__) || defined(_LP64)
/* The layouts of 0.1 on LP64 (x86-64, AArch64 Linux). */
ABI_CHECK(config_size, sizeof(rmsfuse_rmsprop_config) == 48);
ABI_CHECK(config_lr, offsetof(rmsfuse_rmsprop_config, lr) == 0);
ABI_CHECK(config_alpha, offsetof(rmsfuse_rmsprop_config, alpha) == 8);
ABI_CHECK(config_eps, offsetof(rmsfuse_rmsprop_config, eps) == 16);
ABI_CHECK(config_weight_decay, offsetof(rmsfuse_rmsprop_config, weight_decay) == 24);
ABI_CHECK(config_momentum, offsetof(rmsfuse_rmsprop_config, momentum) == 32);
ABI_CHECK(config_flags, offsetof(rmsfuse_rmsprop_config, flags) == 40);
ABI_CHECK(tensor_size, sizeof(rmsfuse_tensor) == 48);
ABI_CHECK(tensor_param, offsetof(rmsfuse_tensor, param) == 0);
ABI_CHECK(tensor_grad, offsetof(rmsfuse_tensor, grad) == 8);
ABI_CHECK(tensor_square_avg, offsetof(rmsfuse_tensor, square_avg) == 16);
ABI_CHECK(tensor_momentum_buf, offsetof(rmsfuse_tensor, momentum_buf) == 24);
ABI_CHECK(tensor_grad_avg, offsetof(rmsfuse_tensor, grad_avg) == 32);
ABI_CHECK(tensor_n, offsetof(rmsfuse_tensor, n) == 40);
ABI_CHECK(status_size, sizeof(rmsfuse_status) == sizeof(int));
#endif

/* Every function, by its exact type.  Referenced from a function with
 * external linkage, so that the object file refers to each symbol. */
typedef struct api_table {
    rmsfuse_rmsprop_config (*pytorch)(double);
    rmsfuse_rmsprop_config (*tensorflow)(double);
    rmsfuse_rmsprop_config (*keras)(double);
    int (*step)(const rmsfuse_rmsprop_config *, float *, const float *, float *, float *, float *, size_t);
    int (*check)(const rmsfuse_rmsprop_config *, const float *, const float *, const float *, const float *,
                 const float *, size_t);
    int (*step_multi)(const rmsfuse_rmsprop_config *, const rmsfuse_tensor *, size_t);
    int (*check_multi)(const rmsfuse_rmsprop_config *, const rmsfuse_tensor *, size_t);
    int (*check_config)(const rmsfuse_rmsprop_config *);
    const char *(*strerror_)(int);
    const char *(*version)(void);
    const char *(*active_isa)(void);
    int (*isa_supported)(const char *);
    int (*set_isa)(const char *);
    int (*isa_env_status)(void);
    const char *const *(*isa_names)(void);
    int (*pool_create)(rmsfuse_pool **, int);
    void (*pool_destroy)(rmsfuse_pool *);
    int (*pool_threads)(const rmsfuse_pool *);
    int (*pool_machine_cores)(void);
    int (*pool_set_chunk)(rmsfuse_pool *, size_t);
    int (*pool_step)(rmsfuse_pool *, const rmsfuse_rmsprop_config *, float *, const float *, float *, float *,
                     float *, size_t);
    int (*pool_step_multi)(rmsfuse_pool *, const rmsfuse_rmsprop_config *, const rmsfuse_tensor *, size_t);
    int (*pool_run)(rmsfuse_pool *, void (*)(void *, int, int), void *);
    void (*pool_split)(const float *, size_t, int, int, size_t *, size_t *);
} api_table;

#ifdef __cplusplus
extern "C" {
#endif
api_table rmsfuse_header_test_table(void);
#ifdef __cplusplus
}
#endif

api_table rmsfuse_header_test_table(void)
{
    api_table t = {
        rmsfuse_rmsprop_pytorch,  rmsfuse_rmsprop_tensorflow, rmsfuse_rmsprop_keras,
        rmsfuse_rmsprop_step,     rmsfuse_rmsprop_check,      rmsfuse_rmsprop_step_multi,
        rmsfuse_rmsprop_check_multi, rmsfuse_rmsprop_check_config, rmsfuse_strerror,
        rmsfuse_version,          rmsfuse_active_isa,         rmsfuse_isa_supported,
        rmsfuse_set_isa,          rmsfuse_isa_env_status,     rmsfuse_isa_names,
        rmsfuse_pool_create,      rmsfuse_pool_destroy,       rmsfuse_pool_threads,
        rmsfuse_pool_machine_cores, rmsfuse_pool_set_chunk,   rmsfuse_pool_rmsprop_step,
        rmsfuse_pool_rmsprop_step_multi, rmsfuse_pool_run,    rmsfuse_pool_split,
    };
    /* Designated-initialiser-free use of the structs, valid in C99 and C++. */
    rmsfuse_rmsprop_config c = rmsfuse_rmsprop_pytorch(0.01);
    c.flags |= RMSFUSE_CENTERED | RMSFUSE_MAXIMIZE;
    rmsfuse_tensor x = {NULL, NULL, NULL, NULL, NULL, 0};
    (void)rmsfuse_rmsprop_step_multi(&c, &x, 1);
    rmsfuse_status s = RMSFUSE_OK;
    (void)s;
    return t;
}

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
/* Each rule header alone first (each includes what it needs), then all of
 * them again in another order: the include guards work. */
#include "rmsfuse_adam.h"
#include "rmsfuse_sgd.h"
#include "rmsfuse_adagrad.h"
#include "rmsfuse_rmsprop.h"
#include "rmsfuse_common.h"
#include "rmsfuse.h"
#include "rmsfuse_pool.h"
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
ABI_CHECK(beta1, RMSFUSE_E_BETA1 == -20);
ABI_CHECK(beta2, RMSFUSE_E_BETA2 == -21);
ABI_CHECK(dampening, RMSFUSE_E_DAMPENING == -22);
ABI_CHECK(nesterov_status, RMSFUSE_E_NESTEROV == -23);
ABI_CHECK(lr_decay, RMSFUSE_E_LR_DECAY == -24);
ABI_CHECK(step, RMSFUSE_E_STEP == -25);
ABI_CHECK(null_plan, RMSFUSE_E_NULL_PLAN == -26);
ABI_CHECK(range, RMSFUSE_E_RANGE == -27);
ABI_CHECK(grad_options_status, RMSFUSE_E_GRAD_OPTIONS == -28);
ABI_CHECK(skipped, RMSFUSE_SKIPPED == 1);
ABI_CHECK(skip_nonfinite, RMSFUSE_SKIP_NONFINITE == 1u);
ABI_CHECK(sumsq_given, RMSFUSE_SUMSQ_GIVEN == 2u);
ABI_CHECK(norm_block, RMSFUSE_NORM_BLOCK == 4096u);
ABI_CHECK(grad_options_size, sizeof(rmsfuse_grad_options) == 40);
ABI_CHECK(grad_options_scale, offsetof(rmsfuse_grad_options, scale) == 0);
ABI_CHECK(grad_options_clip_value, offsetof(rmsfuse_grad_options, clip_value) == 8);
ABI_CHECK(grad_options_max_norm, offsetof(rmsfuse_grad_options, max_norm) == 16);
ABI_CHECK(grad_options_flags, offsetof(rmsfuse_grad_options, flags) == 24);
ABI_CHECK(grad_options_sumsq, offsetof(rmsfuse_grad_options, sumsq) == 32);
ABI_CHECK(grad_info_size, sizeof(rmsfuse_grad_info) == 24);
ABI_CHECK(grad_info_norm, offsetof(rmsfuse_grad_info, norm) == 0);
ABI_CHECK(grad_info_clip_factor, offsetof(rmsfuse_grad_info, clip_factor) == 8);
ABI_CHECK(grad_info_nonfinite, offsetof(rmsfuse_grad_info, nonfinite) == 16);

ABI_CHECK(centered, RMSFUSE_CENTERED == 1u);
ABI_CHECK(eps_in_sqrt, RMSFUSE_EPS_IN_SQRT == 2u);
ABI_CHECK(lr_in_momentum, RMSFUSE_LR_IN_MOMENTUM == 4u);
ABI_CHECK(maximize, RMSFUSE_MAXIMIZE == 8u);
ABI_CHECK(decoupled_decay, RMSFUSE_DECOUPLED_DECAY == 16u);
ABI_CHECK(nesterov, RMSFUSE_NESTEROV == 32u);
ABI_CHECK(init_momentum, RMSFUSE_INIT_MOMENTUM == 64u);
ABI_CHECK(amsgrad, RMSFUSE_AMSGRAD == 128u);
ABI_CHECK(eps_hat, RMSFUSE_EPS_HAT == 256u);
ABI_CHECK(flush_subnormal, RMSFUSE_FLUSH_SUBNORMAL == 512u);
ABI_CHECK(rmsprop_flags, RMSFUSE_RMSPROP_FLAGS == (63u | 512u));
ABI_CHECK(all_flags, RMSFUSE_ALL_FLAGS == RMSFUSE_RMSPROP_FLAGS);
ABI_CHECK(adagrad_flags, RMSFUSE_ADAGRAD_FLAGS == (2u | 8u | 16u | 512u));
ABI_CHECK(sgd_flags, RMSFUSE_SGD_FLAGS == (4u | 8u | 16u | 32u | 64u | 512u));
ABI_CHECK(adam_flags, RMSFUSE_ADAM_FLAGS == (8u | 16u | 128u | 256u | 512u));
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
/* The structs of 0.2. */
ABI_CHECK(adagrad_config_size, sizeof(rmsfuse_adagrad_config) == 48);
ABI_CHECK(adagrad_config_step, offsetof(rmsfuse_adagrad_config, step) == 32);
ABI_CHECK(adagrad_config_flags, offsetof(rmsfuse_adagrad_config, flags) == 40);
ABI_CHECK(adagrad_tensor_size, sizeof(rmsfuse_adagrad_tensor) == 32);
ABI_CHECK(adagrad_tensor_n, offsetof(rmsfuse_adagrad_tensor, n) == 24);
ABI_CHECK(sgd_config_size, sizeof(rmsfuse_sgd_config) == 40);
ABI_CHECK(sgd_config_flags, offsetof(rmsfuse_sgd_config, flags) == 32);
ABI_CHECK(sgd_tensor_size, sizeof(rmsfuse_sgd_tensor) == 32);
ABI_CHECK(adam_config_size, sizeof(rmsfuse_adam_config) == 56);
ABI_CHECK(adam_config_step, offsetof(rmsfuse_adam_config, step) == 40);
ABI_CHECK(adam_config_flags, offsetof(rmsfuse_adam_config, flags) == 48);
ABI_CHECK(adam_tensor_size, sizeof(rmsfuse_adam_tensor) == 48);
ABI_CHECK(adam_tensor_n, offsetof(rmsfuse_adam_tensor, n) == 40);
/* The structs of the storage types. */
ABI_CHECK(storage_size, sizeof(rmsfuse_storage) == 32);
ABI_CHECK(storage_seed, offsetof(rmsfuse_storage, seed) == 16);
ABI_CHECK(typed_tensor_size, sizeof(rmsfuse_typed_tensor) == 104);
ABI_CHECK(typed_tensor_state, offsetof(rmsfuse_typed_tensor, state) == 24);
ABI_CHECK(typed_tensor_scale, offsetof(rmsfuse_typed_tensor, scale) == 56);
ABI_CHECK(typed_tensor_n, offsetof(rmsfuse_typed_tensor, n) == 88);
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
    int (*rmsprop_plan)(const rmsfuse_rmsprop_config *, const rmsfuse_tensor *, size_t, rmsfuse_plan **);
    int (*rmsprop_step_ex)(const rmsfuse_rmsprop_config *, const rmsfuse_tensor *, size_t,
                           const rmsfuse_grad_options *, rmsfuse_grad_info *);
    rmsfuse_adagrad_config (*adagrad_pytorch)(double);
    rmsfuse_adagrad_config (*adagrad_keras)(double);
    rmsfuse_adagrad_config (*adagrad_classic)(double);
    int (*adagrad_step)(const rmsfuse_adagrad_config *, float *, const float *, float *, size_t);
    int (*adagrad_check)(const rmsfuse_adagrad_config *, const float *, const float *, const float *, size_t);
    int (*adagrad_step_multi)(const rmsfuse_adagrad_config *, const rmsfuse_adagrad_tensor *, size_t);
    int (*adagrad_check_multi)(const rmsfuse_adagrad_config *, const rmsfuse_adagrad_tensor *, size_t);
    int (*adagrad_check_config)(const rmsfuse_adagrad_config *);
    int (*adagrad_plan)(const rmsfuse_adagrad_config *, const rmsfuse_adagrad_tensor *, size_t, rmsfuse_plan **);
    int (*adagrad_step_ex)(const rmsfuse_adagrad_config *, const rmsfuse_adagrad_tensor *, size_t,
                           const rmsfuse_grad_options *, rmsfuse_grad_info *);
    rmsfuse_sgd_config (*sgd_pytorch)(double);
    rmsfuse_sgd_config (*sgd_keras)(double);
    int (*sgd_step)(const rmsfuse_sgd_config *, float *, const float *, float *, size_t);
    int (*sgd_check)(const rmsfuse_sgd_config *, const float *, const float *, const float *, size_t);
    int (*sgd_step_multi)(const rmsfuse_sgd_config *, const rmsfuse_sgd_tensor *, size_t);
    int (*sgd_check_multi)(const rmsfuse_sgd_config *, const rmsfuse_sgd_tensor *, size_t);
    int (*sgd_check_config)(const rmsfuse_sgd_config *);
    int (*sgd_plan)(const rmsfuse_sgd_config *, const rmsfuse_sgd_tensor *, size_t, rmsfuse_plan **);
    int (*sgd_step_ex)(const rmsfuse_sgd_config *, const rmsfuse_sgd_tensor *, size_t, const rmsfuse_grad_options *,
                       rmsfuse_grad_info *);
    rmsfuse_adam_config (*adam_pytorch)(double);
    rmsfuse_adam_config (*adamw_pytorch)(double);
    rmsfuse_adam_config (*adam_keras)(double);
    rmsfuse_adam_config (*adamw_keras)(double);
    rmsfuse_adam_config (*adam_tensorflow)(double);
    int (*adam_step)(const rmsfuse_adam_config *, float *, const float *, float *, float *, float *, size_t);
    int (*adam_check)(const rmsfuse_adam_config *, const float *, const float *, const float *, const float *,
                      const float *, size_t);
    int (*adam_step_multi)(const rmsfuse_adam_config *, const rmsfuse_adam_tensor *, size_t);
    int (*adam_check_multi)(const rmsfuse_adam_config *, const rmsfuse_adam_tensor *, size_t);
    int (*adam_check_config)(const rmsfuse_adam_config *);
    int (*adam_plan)(const rmsfuse_adam_config *, const rmsfuse_adam_tensor *, size_t, rmsfuse_plan **);
    int (*adam_step_ex)(const rmsfuse_adam_config *, const rmsfuse_adam_tensor *, size_t, const rmsfuse_grad_options *,
                        rmsfuse_grad_info *);
    rmsfuse_grad_options (*grad_options_none)(void);
    size_t (*plan_elements)(const rmsfuse_plan *);
    int (*plan_run)(const rmsfuse_plan *, size_t, size_t);
    size_t (*plan_cut)(const rmsfuse_plan *, size_t);
    void (*plan_free)(rmsfuse_plan *);
    const char *(*status_name)(int);
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
    int (*pool_run_plan)(rmsfuse_pool *, const rmsfuse_plan *);
    int (*grad_block_sumsq)(const float *, size_t, double, double *);
    int (*rmsprop_grad_sumsq)(const rmsfuse_tensor *, size_t, double, double *);
    int (*adagrad_grad_sumsq)(const rmsfuse_adagrad_tensor *, size_t, double, double *);
    int (*sgd_grad_sumsq)(const rmsfuse_sgd_tensor *, size_t, double, double *);
    int (*adam_grad_sumsq)(const rmsfuse_adam_tensor *, size_t, double, double *);
    int (*plan_run_ex)(const rmsfuse_plan *, size_t, size_t, const rmsfuse_grad_options *, rmsfuse_grad_info *);
    size_t (*plan_blocks)(const rmsfuse_plan *);
    int (*plan_block_sumsq)(const rmsfuse_plan *, double, size_t, size_t, double *);
    int (*pool_run_plan_ex)(rmsfuse_pool *, const rmsfuse_plan *, const rmsfuse_grad_options *, rmsfuse_grad_info *);
    long long (*pool_topology)(int);
    int (*rmsprop_step_typed)(const rmsfuse_rmsprop_config *, const rmsfuse_storage *, const rmsfuse_typed_tensor *, size_t,
                          const rmsfuse_grad_options *, rmsfuse_grad_info *);
    int (*rmsprop_check_typed)(const rmsfuse_rmsprop_config *, const rmsfuse_storage *, const rmsfuse_typed_tensor *, size_t);
    int (*rmsprop_plan_typed)(const rmsfuse_rmsprop_config *, const rmsfuse_storage *, const rmsfuse_typed_tensor *, size_t,
                          rmsfuse_plan **);
    int (*adagrad_step_typed)(const rmsfuse_adagrad_config *, const rmsfuse_storage *, const rmsfuse_typed_tensor *, size_t,
                          const rmsfuse_grad_options *, rmsfuse_grad_info *);
    int (*adagrad_check_typed)(const rmsfuse_adagrad_config *, const rmsfuse_storage *, const rmsfuse_typed_tensor *, size_t);
    int (*adagrad_plan_typed)(const rmsfuse_adagrad_config *, const rmsfuse_storage *, const rmsfuse_typed_tensor *, size_t,
                          rmsfuse_plan **);
    int (*sgd_step_typed)(const rmsfuse_sgd_config *, const rmsfuse_storage *, const rmsfuse_typed_tensor *, size_t,
                          const rmsfuse_grad_options *, rmsfuse_grad_info *);
    int (*sgd_check_typed)(const rmsfuse_sgd_config *, const rmsfuse_storage *, const rmsfuse_typed_tensor *, size_t);
    int (*sgd_plan_typed)(const rmsfuse_sgd_config *, const rmsfuse_storage *, const rmsfuse_typed_tensor *, size_t,
                          rmsfuse_plan **);
    int (*adam_step_typed)(const rmsfuse_adam_config *, const rmsfuse_storage *, const rmsfuse_typed_tensor *, size_t,
                          const rmsfuse_grad_options *, rmsfuse_grad_info *);
    int (*adam_check_typed)(const rmsfuse_adam_config *, const rmsfuse_storage *, const rmsfuse_typed_tensor *, size_t);
    int (*adam_plan_typed)(const rmsfuse_adam_config *, const rmsfuse_storage *, const rmsfuse_typed_tensor *, size_t,
                          rmsfuse_plan **);
    rmsfuse_storage (*storage_f32)(void);
    int (*grad_sumsq_typed)(const rmsfuse_storage *, const rmsfuse_typed_tensor *, size_t, double, double *);
    int (*grad_block_sumsq_typed)(unsigned, const void *, size_t, double, double *);
    int (*convert_from_f32)(unsigned, int, const float *, void *, float *, size_t);
    int (*convert_to_f32)(unsigned, int, const void *, const float *, float *, size_t);
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
        rmsfuse_rmsprop_check_multi, rmsfuse_rmsprop_check_config, rmsfuse_rmsprop_plan, rmsfuse_rmsprop_step_ex,
        rmsfuse_adagrad_pytorch, rmsfuse_adagrad_keras, rmsfuse_adagrad_classic, rmsfuse_adagrad_step,
        rmsfuse_adagrad_check, rmsfuse_adagrad_step_multi, rmsfuse_adagrad_check_multi,
        rmsfuse_adagrad_check_config, rmsfuse_adagrad_plan, rmsfuse_adagrad_step_ex, rmsfuse_sgd_pytorch,
        rmsfuse_sgd_keras, rmsfuse_sgd_step, rmsfuse_sgd_check, rmsfuse_sgd_step_multi, rmsfuse_sgd_check_multi,
        rmsfuse_sgd_check_config, rmsfuse_sgd_plan, rmsfuse_sgd_step_ex, rmsfuse_adam_pytorch, rmsfuse_adamw_pytorch,
        rmsfuse_adam_keras, rmsfuse_adamw_keras, rmsfuse_adam_tensorflow, rmsfuse_adam_step,
        rmsfuse_adam_check, rmsfuse_adam_step_multi, rmsfuse_adam_check_multi, rmsfuse_adam_check_config,
        rmsfuse_adam_plan, rmsfuse_adam_step_ex, rmsfuse_grad_options_none, rmsfuse_plan_elements, rmsfuse_plan_run, rmsfuse_plan_cut, rmsfuse_plan_free,
        rmsfuse_status_name, rmsfuse_strerror,
        rmsfuse_version,          rmsfuse_active_isa,         rmsfuse_isa_supported,
        rmsfuse_set_isa,          rmsfuse_isa_env_status,     rmsfuse_isa_names,
        rmsfuse_pool_create,      rmsfuse_pool_destroy,       rmsfuse_pool_threads,
        rmsfuse_pool_machine_cores, rmsfuse_pool_set_chunk,   rmsfuse_pool_rmsprop_step,
        rmsfuse_pool_rmsprop_step_multi, rmsfuse_pool_run,    rmsfuse_pool_split,
        rmsfuse_pool_run_plan,
        rmsfuse_grad_block_sumsq, rmsfuse_rmsprop_grad_sumsq, rmsfuse_adagrad_grad_sumsq, rmsfuse_sgd_grad_sumsq,
        rmsfuse_adam_grad_sumsq, rmsfuse_plan_run_ex, rmsfuse_plan_blocks, rmsfuse_plan_block_sumsq,
        rmsfuse_pool_run_plan_ex, rmsfuse_pool_topology,
        rmsfuse_rmsprop_step_typed, rmsfuse_rmsprop_check_typed, rmsfuse_rmsprop_plan_typed,
        rmsfuse_adagrad_step_typed, rmsfuse_adagrad_check_typed, rmsfuse_adagrad_plan_typed,
        rmsfuse_sgd_step_typed, rmsfuse_sgd_check_typed, rmsfuse_sgd_plan_typed,
        rmsfuse_adam_step_typed, rmsfuse_adam_check_typed, rmsfuse_adam_plan_typed,
        rmsfuse_storage_f32, rmsfuse_grad_sumsq_typed, rmsfuse_grad_block_sumsq_typed, rmsfuse_convert_from_f32,
        rmsfuse_convert_to_f32,
    };
    /* Designated-initialiser-free use of the structs, valid in C99 and C++. */
    rmsfuse_rmsprop_config c = rmsfuse_rmsprop_pytorch(0.01);
    c.flags |= RMSFUSE_CENTERED | RMSFUSE_MAXIMIZE;
    rmsfuse_tensor x = {NULL, NULL, NULL, NULL, NULL, 0};
    (void)rmsfuse_rmsprop_step_multi(&c, &x, 1);
    rmsfuse_adam_tensor y = {NULL, NULL, NULL, NULL, NULL, 0};
    rmsfuse_adam_config a = rmsfuse_adamw_pytorch(1e-3);
    a.step = 10;
    a.flags |= RMSFUSE_AMSGRAD;
    (void)rmsfuse_adam_step_multi(&a, &y, 1);
    rmsfuse_status s = RMSFUSE_OK;
    (void)s;
    return t;
}

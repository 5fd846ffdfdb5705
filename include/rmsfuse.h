/*
 * rmsfuse: fused, SIMD-accelerated RMSProp/momentum optimizer updates.
 *
 * One pass over memory performs weight decay, the square average, the
 * optional centred (gradient) average, momentum and the parameter update.
 * The arithmetic is defined element by element in docs/math.md (and in the
 * scalar reference, src/scalar/); every SIMD path returns the same bits.
 *
 * The header is C99/C11 and C++ compatible and has no dependencies beyond
 * <stddef.h>.  All functions are thread-safe.  The library never prints and
 * never aborts: every failure is reported through a negative status code,
 * and a call that fails writes nothing.
 */
#ifndef RMSFUSE_H
#define RMSFUSE_H

#include <stddef.h>

/* ---- version ----------------------------------------------------------- */
#define RMSFUSE_VERSION_MAJOR 0
#define RMSFUSE_VERSION_MINOR 1
#define RMSFUSE_VERSION_PATCH 0
#define RMSFUSE_VERSION_STRING "0.1.0"
/* Single integer, comparable: MAJOR*10000 + MINOR*100 + PATCH. */
#define RMSFUSE_VERSION_NUMBER \
    (RMSFUSE_VERSION_MAJOR * 10000 + RMSFUSE_VERSION_MINOR * 100 + RMSFUSE_VERSION_PATCH)

/* ---- export macro ------------------------------------------------------ */
#if defined(_WIN32) && !defined(RMSFUSE_STATIC)
#  if defined(RMSFUSE_BUILDING)
#    define RMSFUSE_API __declspec(dllexport)
#  else
#    define RMSFUSE_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define RMSFUSE_API __attribute__((visibility("default")))
#else
#  define RMSFUSE_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ------------------------------------------------------ */
/* 0 is success; every error is negative.  rmsfuse_strerror() describes any. */
typedef enum rmsfuse_status {
    RMSFUSE_OK = 0,
    RMSFUSE_E_NULL_CONFIG = -1,         /* cfg pointer is NULL */
    RMSFUSE_E_NULL_ARRAY = -2,          /* param, grad or square_avg NULL with n > 0 */
    RMSFUSE_E_NULL_MOMENTUM_BUF = -3,   /* momentum != 0 but momentum_buf is NULL (n > 0) */
    RMSFUSE_E_NULL_GRAD_AVG = -4,       /* RMSFUSE_CENTERED but grad_avg is NULL (n > 0) */
    RMSFUSE_E_NONFINITE = -5,           /* a hyperparameter is NaN, infinite, or overflows float */
    RMSFUSE_E_LR = -6,                  /* lr < 0 */
    RMSFUSE_E_ALPHA = -7,               /* alpha outside [0, 1] */
    RMSFUSE_E_EPS = -8,                 /* eps < 0 */
    RMSFUSE_E_WEIGHT_DECAY = -9,        /* weight_decay < 0 */
    RMSFUSE_E_MOMENTUM = -10,           /* momentum outside [0, 1) */
    RMSFUSE_E_FLAGS = -11,              /* unknown bits in flags */
    RMSFUSE_E_OVERLAP = -12,            /* two arrays used by the call overlap */
    RMSFUSE_E_SIZE = -13,               /* n * sizeof(float) overflows, or an array wraps the address space */
    RMSFUSE_E_UNKNOWN_ISA = -14,        /* ISA name not one of the known names */
    RMSFUSE_E_ISA_UNSUPPORTED = -15,    /* ISA not compiled in, or not usable on this CPU/OS */
    RMSFUSE_E_NULL_LIST = -16,          /* tensor list pointer is NULL with count > 0 */
    RMSFUSE_E_NO_MEMORY = -17,          /* an allocation failed (multi-tensor check, thread pool) */
    RMSFUSE_E_NULL_POOL = -18,          /* rmsfuse_pool pointer is NULL (rmsfuse_pool.h) */
    RMSFUSE_E_THREADS = -19             /* threads or the topology could not be set up (rmsfuse_pool.h) */
} rmsfuse_status;

/* ---- configuration ----------------------------------------------------- */
/* Flag bits for rmsfuse_rmsprop_config.flags. */
#define RMSFUSE_CENTERED       (1u << 0) /* subtract the squared running mean of g (needs grad_avg) */
#define RMSFUSE_EPS_IN_SQRT    (1u << 1) /* d = sqrt(s + eps) (TensorFlow/Keras) instead of sqrt(s) + eps */
#define RMSFUSE_LR_IN_MOMENTUM (1u << 2) /* momentum accumulates lr*g/d (TensorFlow/Keras) instead of g/d */
#define RMSFUSE_MAXIMIZE       (1u << 3) /* ascend: use -grad */
#define RMSFUSE_ALL_FLAGS      (RMSFUSE_CENTERED | RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_MAXIMIZE)

/*
 * Hyperparameters, as doubles (as frameworks pass Python floats).  They are
 * rounded once to float inside each call.  Valid ranges: all finite and
 * representable as float; lr >= 0; 0 <= alpha <= 1; eps >= 0;
 * weight_decay >= 0; 0 <= momentum < 1.
 */
typedef struct rmsfuse_rmsprop_config {
    double lr;           /* learning rate */
    double alpha;        /* smoothing constant of the square average (TF/Keras: rho) */
    double eps;          /* added to the denominator, placement set by RMSFUSE_EPS_IN_SQRT */
    double weight_decay; /* L2 penalty coupled into the gradient: g += weight_decay * param */
    double momentum;     /* momentum factor; 0 disables momentum */
    unsigned flags;      /* RMSFUSE_* flag bits */
} rmsfuse_rmsprop_config;

/* torch.optim.RMSprop defaults: alpha 0.99, eps 1e-8, no weight decay, no
 * momentum, eps outside the sqrt, lr outside the momentum buffer. */
RMSFUSE_API rmsfuse_rmsprop_config rmsfuse_rmsprop_pytorch(double lr);
/* TensorFlow ApplyRMSProp / tf.compat.v1.train.RMSPropOptimizer defaults:
 * decay (rho) 0.9, epsilon 1e-10, momentum 0, eps inside the sqrt, lr
 * inside the momentum buffer. */
RMSFUSE_API rmsfuse_rmsprop_config rmsfuse_rmsprop_tensorflow(double lr);
/* Keras RMSprop defaults: rho 0.9, epsilon 1e-7, momentum 0, eps inside the
 * sqrt, lr inside the momentum buffer.  (Keras' own weight_decay is
 * decoupled and is not what the weight_decay field means.) */
RMSFUSE_API rmsfuse_rmsprop_config rmsfuse_rmsprop_keras(double lr);

/* ---- the update -------------------------------------------------------- */
/*
 * One RMSProp step over n elements, in place:
 *   param        n floats, read and written
 *   grad         n floats, read only
 *   square_avg   n floats, read and written (start at zero for a fresh run)
 *   momentum_buf n floats, read and written when cfg->momentum != 0;
 *                otherwise unused and may be NULL
 *   grad_avg     n floats, read and written when RMSFUSE_CENTERED is set;
 *                otherwise unused and may be NULL
 * The arrays used may have any alignment but must not overlap.
 *
 * Returns RMSFUSE_OK, or a negative rmsfuse_status; on error nothing has been
 * written.  The configuration is validated even when n == 0, which is
 * otherwise a successful no-op (NULL arrays are then allowed).
 */
RMSFUSE_API int rmsfuse_rmsprop_step(const rmsfuse_rmsprop_config *cfg, float *param, const float *grad,
                                     float *square_avg, float *momentum_buf, float *grad_avg, size_t n);

/*
 * Validates exactly what rmsfuse_rmsprop_step would validate, and writes
 * nothing: the status that call would return (RMSFUSE_OK if it would run).
 */
RMSFUSE_API int rmsfuse_rmsprop_check(const rmsfuse_rmsprop_config *cfg, const float *param, const float *grad,
                                      const float *square_avg, const float *momentum_buf, const float *grad_avg,
                                      size_t n);

/* ---- many tensors in one call ------------------------------------------ */
/* One tensor of a multi-tensor step: the arrays of rmsfuse_rmsprop_step. */
typedef struct rmsfuse_tensor {
    float *param;
    const float *grad;
    float *square_avg;
    float *momentum_buf; /* used when cfg->momentum != 0, else may be NULL */
    float *grad_avg;     /* used when RMSFUSE_CENTERED, else may be NULL */
    size_t n;            /* elements; 0 skips the tensor (its pointers may be NULL) */
} rmsfuse_tensor;

/*
 * One RMSProp step of every tensor in tensors[0 .. count), with one
 * configuration: the same bits as rmsfuse_rmsprop_step on each tensor, with
 * the configuration checked and the kernel chosen once per call.
 *
 * Everything is validated before anything is written: on error no tensor
 * has changed.  Besides each tensor's own rules, no array written by the
 * call (param, square_avg and the used state) may overlap any other array
 * of any tensor; gradients may be shared, as they are only read.  count == 0
 * is a successful no-op (tensors may then be NULL).  The check across
 * tensors sorts the arrays; beyond 64 tensors it allocates scratch space
 * with malloc, and returns RMSFUSE_E_NO_MEMORY if that fails.
 */
RMSFUSE_API int rmsfuse_rmsprop_step_multi(const rmsfuse_rmsprop_config *cfg, const rmsfuse_tensor *tensors,
                                           size_t count);

/* What rmsfuse_rmsprop_step_multi would return, writing nothing. */
RMSFUSE_API int rmsfuse_rmsprop_check_multi(const rmsfuse_rmsprop_config *cfg, const rmsfuse_tensor *tensors,
                                            size_t count);

/* Validates cfg alone, with the rules rmsfuse_rmsprop_step applies to it. */
RMSFUSE_API int rmsfuse_rmsprop_check_config(const rmsfuse_rmsprop_config *cfg);

/* A static, English description of a status code; never NULL. */
RMSFUSE_API const char *rmsfuse_strerror(int status);

/* The library's version as "MAJOR.MINOR.PATCH" (of the library loaded at
 * run time, which may differ from RMSFUSE_VERSION_STRING of the header). */
RMSFUSE_API const char *rmsfuse_version(void);

/* ---- instruction-set dispatch ------------------------------------------ */
/*
 * The implementation is chosen once, lazily and thread-safely, on first use:
 * the best ISA that is both compiled in and usable on this CPU and OS
 * (x86: CPUID + XGETBV; AArch64: NEON is baseline).  ISA names: "scalar",
 * "sse2", "avx2", "avx512", "neon".  See docs/dispatch.md.
 *
 * The environment variable RMSFUSE_ISA, read at first use, forces a name
 * (or "auto").  An unknown or unusable name is ignored: detection is used
 * instead, and rmsfuse_isa_env_status() reports why.
 */

/* Name of the active implementation. */
RMSFUSE_API const char *rmsfuse_active_isa(void);

/* 1 if `name` is compiled in and runnable here, 0 otherwise ("auto" is 1). */
RMSFUSE_API int rmsfuse_isa_supported(const char *name);

/* Forces an implementation by name, or "auto" to restore detection.
 * Returns RMSFUSE_OK, RMSFUSE_E_UNKNOWN_ISA (NULL or unknown name) or
 * RMSFUSE_E_ISA_UNSUPPORTED; on error the active ISA is unchanged. */
RMSFUSE_API int rmsfuse_set_isa(const char *name);

/* Outcome of RMSFUSE_ISA at first use: RMSFUSE_OK when unset, empty or
 * applied; RMSFUSE_E_UNKNOWN_ISA or RMSFUSE_E_ISA_UNSUPPORTED when it was
 * ignored.  Triggers the first-use selection if it has not happened yet. */
RMSFUSE_API int rmsfuse_isa_env_status(void);

/* Names of every ISA this build knows, best last, NULL-terminated (for
 * iterating in benchmarks and tests; pair with rmsfuse_isa_supported). */
RMSFUSE_API const char *const *rmsfuse_isa_names(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* RMSFUSE_H */

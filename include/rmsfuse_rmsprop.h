/*
 * rmsfuse: the fused RMSProp/momentum update (docs/math.md, "RMSProp").
 *
 * One pass over memory performs weight decay, the square average, the
 * optional centred (gradient) average, momentum (heavy-ball or Nesterov)
 * and the parameter update.  Every SIMD path returns the bits of the scalar
 * reference.
 */
#ifndef RMSFUSE_RMSPROP_H
#define RMSFUSE_RMSPROP_H

#include "rmsfuse_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The flags RMSProp accepts. */
#define RMSFUSE_RMSPROP_FLAGS                                                                             \
    (RMSFUSE_CENTERED | RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_MAXIMIZE | \
     RMSFUSE_DECOUPLED_DECAY | RMSFUSE_NESTEROV | RMSFUSE_FLUSH_SUBNORMAL)
/* Same as RMSFUSE_RMSPROP_FLAGS (the name of 0.1, when RMSProp was the only rule). */
#define RMSFUSE_ALL_FLAGS RMSFUSE_RMSPROP_FLAGS

/*
 * Hyperparameters, as doubles (as frameworks pass Python floats).  They are
 * rounded once to float inside each call.  Valid ranges: all finite and
 * representable as float; lr >= 0; 0 <= alpha <= 1; eps >= 0;
 * weight_decay >= 0; 0 <= momentum < 1.  RMSFUSE_NESTEROV needs
 * momentum > 0.
 */
typedef struct rmsfuse_rmsprop_config {
    double lr;           /* learning rate */
    double alpha;        /* smoothing constant of the square average (TF/Keras: rho) */
    double eps;          /* added to the denominator, placement set by RMSFUSE_EPS_IN_SQRT */
    double weight_decay; /* L2 penalty coupled into the gradient (g += weight_decay * param), or
                            with RMSFUSE_DECOUPLED_DECAY: param *= 1 - lr * weight_decay */
    double momentum;     /* momentum factor; 0 disables momentum */
    unsigned flags;      /* RMSFUSE_RMSPROP_FLAGS bits */
} rmsfuse_rmsprop_config;

/* The presets of every rule set RMSFUSE_FLUSH_SUBNORMAL (docs/math.md:
 * state below FLT_MIN becomes +0; clear the flag for exact IEEE state). */

/* torch.optim.RMSprop defaults: alpha 0.99, eps 1e-8, no weight decay, no
 * momentum, eps outside the sqrt, lr outside the momentum buffer. */
RMSFUSE_API rmsfuse_rmsprop_config rmsfuse_rmsprop_pytorch(double lr);
/* TensorFlow ApplyRMSProp / tf.compat.v1.train.RMSPropOptimizer defaults:
 * decay (rho) 0.9, epsilon 1e-10, momentum 0, eps inside the sqrt, lr
 * inside the momentum buffer.  (TF1's optimizer starts square_avg at 1.0,
 * not 0: fill it with ones for TF1-compatible state.) */
RMSFUSE_API rmsfuse_rmsprop_config rmsfuse_rmsprop_tensorflow(double lr);
/* Keras 3 RMSprop defaults: rho 0.9, epsilon 1e-7, momentum 0, eps inside
 * the sqrt, lr inside the momentum buffer.  Keras' weight_decay is
 * decoupled: set weight_decay and RMSFUSE_DECOUPLED_DECAY. */
RMSFUSE_API rmsfuse_rmsprop_config rmsfuse_rmsprop_keras(double lr);

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

/* One tensor of a multi-tensor step: the arrays of rmsfuse_rmsprop_step. */
typedef struct rmsfuse_tensor {
    float *param;
    const float *grad;
    float *square_avg;
    float *momentum_buf; /* used when cfg->momentum != 0, else may be NULL */
    float *grad_avg;     /* used when RMSFUSE_CENTERED, else may be NULL */
    size_t n;            /* elements; 0 skips the tensor (its pointers may be NULL) */
} rmsfuse_tensor;
typedef rmsfuse_tensor rmsfuse_rmsprop_tensor;

/*
 * One RMSProp step of every tensor in tensors[0 .. count), with one
 * configuration: the same bits as rmsfuse_rmsprop_step on each tensor, with
 * the configuration checked and the kernel chosen once per call.
 *
 * Everything is validated before anything is written: on error no tensor
 * has changed.  Besides each tensor's own rules, no array written by the
 * call (param and the used state) may overlap any other array of any
 * tensor; gradients may be shared, as they are only read.  count == 0 is a
 * successful no-op (tensors may then be NULL).  The check across tensors
 * sorts the arrays when they are not laid out in list order; beyond 64
 * tensors that needs scratch space from malloc, and RMSFUSE_E_NO_MEMORY if
 * that fails.  (The same rules hold for every rule's step_multi.)
 */
RMSFUSE_API int rmsfuse_rmsprop_step_multi(const rmsfuse_rmsprop_config *cfg, const rmsfuse_tensor *tensors,
                                           size_t count);

/* step_multi with the gradients scaled, clipped by value and by global norm,
 * or the step skipped on a non-finite gradient (rmsfuse_grad_options, in
 * rmsfuse_common.h); opt NULL: none.  Returns what step_multi returns, or
 * RMSFUSE_E_GRAD_OPTIONS, or RMSFUSE_SKIPPED (nothing written).  info, if
 * not NULL, gets the norm, the clip factor and whether a gradient was not
 * finite. */
RMSFUSE_API int rmsfuse_rmsprop_step_ex(const rmsfuse_rmsprop_config *cfg, const rmsfuse_tensor *tensors, size_t count,
                                   const rmsfuse_grad_options *opt, rmsfuse_grad_info *info);

/* Adds the sum of squares of every g * scale of the list to *sumsq (see
 * rmsfuse_<rule>_grad_sumsq in rmsfuse_common.h). */
RMSFUSE_API int rmsfuse_rmsprop_grad_sumsq(const rmsfuse_tensor *tensors, size_t count, double scale, double *sumsq);

/* What rmsfuse_rmsprop_step_multi would return, writing nothing. */
RMSFUSE_API int rmsfuse_rmsprop_check_multi(const rmsfuse_rmsprop_config *cfg, const rmsfuse_tensor *tensors,
                                            size_t count);

/* Validates cfg alone, with the rules rmsfuse_rmsprop_step applies to it. */
RMSFUSE_API int rmsfuse_rmsprop_check_config(const rmsfuse_rmsprop_config *cfg);

/* Checks what rmsfuse_rmsprop_step_multi checks and, on success, returns in
 * *plan a prepared step over the tensors (rmsfuse_common.h); *plan is NULL
 * on error (RMSFUSE_E_NULL_PLAN when plan itself is NULL). */
RMSFUSE_API int rmsfuse_rmsprop_plan(const rmsfuse_rmsprop_config *cfg, const rmsfuse_tensor *tensors,
                                     size_t count, rmsfuse_plan **plan);

/* Typed steps: arrays in other storage types than float32 (rmsfuse_storage,
 * rmsfuse_typed_tensor in rmsfuse_common.h; docs/math.md, "Storage types"). */
RMSFUSE_API int rmsfuse_rmsprop_step_typed(const rmsfuse_rmsprop_config *cfg, const rmsfuse_storage *storage,
                                     const rmsfuse_typed_tensor *tensors, size_t count,
                                     const rmsfuse_grad_options *opt, rmsfuse_grad_info *info);
RMSFUSE_API int rmsfuse_rmsprop_check_typed(const rmsfuse_rmsprop_config *cfg, const rmsfuse_storage *storage,
                                      const rmsfuse_typed_tensor *tensors, size_t count);
RMSFUSE_API int rmsfuse_rmsprop_plan_typed(const rmsfuse_rmsprop_config *cfg, const rmsfuse_storage *storage,
                                     const rmsfuse_typed_tensor *tensors, size_t count, rmsfuse_plan **plan);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* RMSFUSE_RMSPROP_H */

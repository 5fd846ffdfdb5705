/*
 * rmsfuse: the fused Adam / AdamW update, optionally AMSGrad, in PyTorch's
 * form or the epsilon-hat form of TensorFlow and Keras (docs/math.md,
 * "Adam"), in one pass over memory.  AdamW is Adam with
 * RMSFUSE_DECOUPLED_DECAY.
 */
#ifndef RMSFUSE_ADAM_H
#define RMSFUSE_ADAM_H

#include "rmsfuse_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The flags Adam accepts. */
#define RMSFUSE_ADAM_FLAGS \
    (RMSFUSE_MAXIMIZE | RMSFUSE_DECOUPLED_DECAY | RMSFUSE_AMSGRAD | RMSFUSE_EPS_HAT | RMSFUSE_FLUSH_SUBNORMAL)

/*
 * Hyperparameters, as doubles; the bias corrections 1 - beta^step are
 * derived in double from the step the caller passes, and every constant is
 * rounded once to float per call.  Valid ranges: all finite; lr >= 0;
 * 0 <= beta1 < 1; 0 <= beta2 < 1; eps >= 0; weight_decay >= 0; step >= 1.
 */
typedef struct rmsfuse_adam_config {
    double lr;           /* learning rate */
    double beta1;        /* decay of the first moment (exp_avg) */
    double beta2;        /* decay of the second moment (exp_avg_sq) */
    double eps;          /* added to the denominator (see RMSFUSE_EPS_HAT) */
    double weight_decay; /* Adam: coupled, g += weight_decay * param; AdamW (RMSFUSE_DECOUPLED_DECAY):
                            param *= 1 - lr * weight_decay */
    long long step;      /* this step's number, from 1 (torch's state['step'] after its increment,
                            Keras' iterations + 1) */
    unsigned flags;      /* RMSFUSE_ADAM_FLAGS bits */
} rmsfuse_adam_config;

/* Every preset also sets RMSFUSE_FLUSH_SUBNORMAL (docs/math.md). */
/* torch.optim.Adam defaults: betas (0.9, 0.999), eps 1e-8, no weight decay, step 1. */
RMSFUSE_API rmsfuse_adam_config rmsfuse_adam_pytorch(double lr);
/* torch.optim.AdamW defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 0.01 decoupled, step 1. */
RMSFUSE_API rmsfuse_adam_config rmsfuse_adamw_pytorch(double lr);
/* Keras Adam defaults: betas (0.9, 0.999), epsilon-hat 1e-7, step 1. */
RMSFUSE_API rmsfuse_adam_config rmsfuse_adam_keras(double lr);
/* Keras AdamW defaults: betas (0.9, 0.999), epsilon-hat 1e-7, weight_decay 0.004 decoupled, step 1. */
RMSFUSE_API rmsfuse_adam_config rmsfuse_adamw_keras(double lr);
/* TensorFlow ApplyAdam / tf.compat.v1.train.AdamOptimizer defaults: betas
 * (0.9, 0.999), epsilon-hat 1e-8, step 1. */
RMSFUSE_API rmsfuse_adam_config rmsfuse_adam_tensorflow(double lr);

/*
 * One Adam step over n elements, in place: param (read, written), grad
 * (read), exp_avg and exp_avg_sq (read, written; start at zero),
 * max_exp_avg_sq (read and written with RMSFUSE_AMSGRAD, else unused and
 * may be NULL).  Same contract as rmsfuse_rmsprop_step.
 */
RMSFUSE_API int rmsfuse_adam_step(const rmsfuse_adam_config *cfg, float *param, const float *grad, float *exp_avg,
                                  float *exp_avg_sq, float *max_exp_avg_sq, size_t n);

/* What rmsfuse_adam_step would return, writing nothing. */
RMSFUSE_API int rmsfuse_adam_check(const rmsfuse_adam_config *cfg, const float *param, const float *grad,
                                   const float *exp_avg, const float *exp_avg_sq, const float *max_exp_avg_sq,
                                   size_t n);

/* One tensor of a multi-tensor Adam step. */
typedef struct rmsfuse_adam_tensor {
    float *param;
    const float *grad;
    float *exp_avg;
    float *exp_avg_sq;
    float *max_exp_avg_sq; /* used with RMSFUSE_AMSGRAD, else may be NULL */
    size_t n;              /* elements; 0 skips the tensor (its pointers may be NULL) */
} rmsfuse_adam_tensor;

/* One step of every tensor, one configuration (rules as rmsfuse_rmsprop_step_multi). */
RMSFUSE_API int rmsfuse_adam_step_multi(const rmsfuse_adam_config *cfg, const rmsfuse_adam_tensor *tensors,
                                        size_t count);

/* step_multi with the gradients scaled, clipped by value and by global norm,
 * or the step skipped on a non-finite gradient (rmsfuse_grad_options, in
 * rmsfuse_common.h); opt NULL: none.  Returns what step_multi returns, or
 * RMSFUSE_E_GRAD_OPTIONS, or RMSFUSE_SKIPPED (nothing written).  info, if
 * not NULL, gets the norm, the clip factor and whether a gradient was not
 * finite. */
RMSFUSE_API int rmsfuse_adam_step_ex(const rmsfuse_adam_config *cfg, const rmsfuse_adam_tensor *tensors, size_t count,
                                   const rmsfuse_grad_options *opt, rmsfuse_grad_info *info);
/* Adds the sum of squares of every g * scale of the list to *sumsq (see
 * rmsfuse_<rule>_grad_sumsq in rmsfuse_common.h). */
RMSFUSE_API int rmsfuse_adam_grad_sumsq(const rmsfuse_adam_tensor *tensors, size_t count, double scale, double *sumsq);

/* What rmsfuse_adam_step_multi would return, writing nothing. */
RMSFUSE_API int rmsfuse_adam_check_multi(const rmsfuse_adam_config *cfg, const rmsfuse_adam_tensor *tensors,
                                         size_t count);
/* Validates cfg alone. */
RMSFUSE_API int rmsfuse_adam_check_config(const rmsfuse_adam_config *cfg);
/* A prepared step over the tensors (rmsfuse_common.h); *plan is NULL on error. */
RMSFUSE_API int rmsfuse_adam_plan(const rmsfuse_adam_config *cfg, const rmsfuse_adam_tensor *tensors, size_t count,
                                  rmsfuse_plan **plan);

/* Typed steps: arrays in other storage types than float32 (rmsfuse_storage,
 * rmsfuse_typed_tensor in rmsfuse_common.h; docs/math.md, "Storage types"). */
RMSFUSE_API int rmsfuse_adam_step_typed(const rmsfuse_adam_config *cfg, const rmsfuse_storage *storage,
                                     const rmsfuse_typed_tensor *tensors, size_t count,
                                     const rmsfuse_grad_options *opt, rmsfuse_grad_info *info);
RMSFUSE_API int rmsfuse_adam_check_typed(const rmsfuse_adam_config *cfg, const rmsfuse_storage *storage,
                                      const rmsfuse_typed_tensor *tensors, size_t count);
RMSFUSE_API int rmsfuse_adam_plan_typed(const rmsfuse_adam_config *cfg, const rmsfuse_storage *storage,
                                     const rmsfuse_typed_tensor *tensors, size_t count, rmsfuse_plan **plan);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* RMSFUSE_ADAM_H */

/*
 * rmsfuse: the fused AdaGrad update (docs/math.md, "AdaGrad"):
 *   sum += g*g;  param -= clr * g / d,  d = sqrt(sum) + eps (PyTorch,
 *   TensorFlow ApplyAdagradV2) or sqrt(sum + eps) (Keras, RMSFUSE_EPS_IN_SQRT),
 * with clr = lr / (1 + (step - 1) * lr_decay), in one pass over memory.
 */
#ifndef RMSFUSE_ADAGRAD_H
#define RMSFUSE_ADAGRAD_H

#include "rmsfuse_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The flags AdaGrad accepts. */
#define RMSFUSE_ADAGRAD_FLAGS \
    (RMSFUSE_EPS_IN_SQRT | RMSFUSE_MAXIMIZE | RMSFUSE_DECOUPLED_DECAY | RMSFUSE_FLUSH_SUBNORMAL)

/*
 * Hyperparameters, as doubles, rounded once to float per call.  Valid
 * ranges: all finite; lr >= 0; lr_decay >= 0; weight_decay >= 0; eps >= 0;
 * step >= 1.
 */
typedef struct rmsfuse_adagrad_config {
    double lr;           /* learning rate */
    double lr_decay;     /* torch's lr_decay: clr = lr / (1 + (step - 1) * lr_decay) */
    double weight_decay; /* coupled (g += weight_decay * param), or decoupled with RMSFUSE_DECOUPLED_DECAY */
    double eps;          /* added to the denominator, placement set by RMSFUSE_EPS_IN_SQRT */
    long long step;      /* this step's number, from 1 (torch's state['step'] after its increment) */
    unsigned flags;      /* RMSFUSE_ADAGRAD_FLAGS bits */
} rmsfuse_adagrad_config;

/* Every preset also sets RMSFUSE_FLUSH_SUBNORMAL (docs/math.md). */
/* torch.optim.Adagrad defaults: lr_decay 0, eps 1e-10 outside the sqrt,
 * step 1.  (torch's initial_accumulator_value is the caller's: fill sum.) */
RMSFUSE_API rmsfuse_adagrad_config rmsfuse_adagrad_pytorch(double lr);
/* Keras Adagrad defaults: eps 1e-7 inside the sqrt, step 1.  Keras starts
 * the accumulator at 0.1 (initial_accumulator_value): fill sum with 0.1. */
RMSFUSE_API rmsfuse_adagrad_config rmsfuse_adagrad_keras(double lr);
/* The classic formula param -= lr * g / sqrt(eps + sum g^2): eps 1e-8
 * inside the sqrt, the sum starting at 0, step 1. */
RMSFUSE_API rmsfuse_adagrad_config rmsfuse_adagrad_classic(double lr);

/*
 * One AdaGrad step over n elements, in place: param (read, written), grad
 * (read), sum (read, written: the accumulated squares).  Same contract as
 * rmsfuse_rmsprop_step: any alignment, no overlaps, nothing written on
 * error, n == 0 a no-op once cfg is valid.
 */
RMSFUSE_API int rmsfuse_adagrad_step(const rmsfuse_adagrad_config *cfg, float *param, const float *grad, float *sum,
                                     size_t n);

/* What rmsfuse_adagrad_step would return, writing nothing. */
RMSFUSE_API int rmsfuse_adagrad_check(const rmsfuse_adagrad_config *cfg, const float *param, const float *grad,
                                      const float *sum, size_t n);

/* One tensor of a multi-tensor AdaGrad step. */
typedef struct rmsfuse_adagrad_tensor {
    float *param;
    const float *grad;
    float *sum;
    size_t n; /* elements; 0 skips the tensor (its pointers may be NULL) */
} rmsfuse_adagrad_tensor;

/* One step of every tensor, one configuration (rules as rmsfuse_rmsprop_step_multi). */
RMSFUSE_API int rmsfuse_adagrad_step_multi(const rmsfuse_adagrad_config *cfg, const rmsfuse_adagrad_tensor *tensors,
                                           size_t count);

/* step_multi with the gradients scaled, clipped by value and by global norm,
 * or the step skipped on a non-finite gradient (rmsfuse_grad_options, in
 * rmsfuse_common.h); opt NULL: none.  Returns what step_multi returns, or
 * RMSFUSE_E_GRAD_OPTIONS, or RMSFUSE_SKIPPED (nothing written).  info, if
 * not NULL, gets the norm, the clip factor and whether a gradient was not
 * finite. */
RMSFUSE_API int rmsfuse_adagrad_step_ex(const rmsfuse_adagrad_config *cfg, const rmsfuse_adagrad_tensor *tensors, size_t count,
                                   const rmsfuse_grad_options *opt, rmsfuse_grad_info *info);
/* Adds the sum of squares of every g * scale of the list to *sumsq (see
 * rmsfuse_<rule>_grad_sumsq in rmsfuse_common.h). */
RMSFUSE_API int rmsfuse_adagrad_grad_sumsq(const rmsfuse_adagrad_tensor *tensors, size_t count, double scale, double *sumsq);

/* What rmsfuse_adagrad_step_multi would return, writing nothing. */
RMSFUSE_API int rmsfuse_adagrad_check_multi(const rmsfuse_adagrad_config *cfg,
                                            const rmsfuse_adagrad_tensor *tensors, size_t count);
/* Validates cfg alone. */
RMSFUSE_API int rmsfuse_adagrad_check_config(const rmsfuse_adagrad_config *cfg);
/* A prepared step over the tensors (rmsfuse_common.h); *plan is NULL on error. */
RMSFUSE_API int rmsfuse_adagrad_plan(const rmsfuse_adagrad_config *cfg, const rmsfuse_adagrad_tensor *tensors,
                                     size_t count, rmsfuse_plan **plan);

/* Typed steps: arrays in other storage types than float32 (rmsfuse_storage,
 * rmsfuse_typed_tensor in rmsfuse_common.h; docs/math.md, "Storage types"). */
RMSFUSE_API int rmsfuse_adagrad_step_typed(const rmsfuse_adagrad_config *cfg, const rmsfuse_storage *storage,
                                     const rmsfuse_typed_tensor *tensors, size_t count,
                                     const rmsfuse_grad_options *opt, rmsfuse_grad_info *info);
RMSFUSE_API int rmsfuse_adagrad_check_typed(const rmsfuse_adagrad_config *cfg, const rmsfuse_storage *storage,
                                      const rmsfuse_typed_tensor *tensors, size_t count);
RMSFUSE_API int rmsfuse_adagrad_plan_typed(const rmsfuse_adagrad_config *cfg, const rmsfuse_storage *storage,
                                     const rmsfuse_typed_tensor *tensors, size_t count, rmsfuse_plan **plan);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* RMSFUSE_ADAGRAD_H */

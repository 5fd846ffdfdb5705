/*
 * rmsfuse: the fused SGD update with optional momentum (heavy-ball or
 * Nesterov), in PyTorch's form or Keras' (docs/math.md, "SGD"):
 *   torch:  b = m*b + (1 - dampening)*g;  p -= lr*b   (Nesterov: p -= lr*(g + m*b))
 *   Keras:  v = m*v - lr*g;  p += v                   (Nesterov: p += m*v - lr*g)
 * Without momentum it is p -= lr*g: a pure streaming kernel.
 */
#ifndef RMSFUSE_SGD_H
#define RMSFUSE_SGD_H

#include "rmsfuse_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The flags SGD accepts. */
#define RMSFUSE_SGD_FLAGS \
    (RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_MAXIMIZE | RMSFUSE_DECOUPLED_DECAY | RMSFUSE_NESTEROV | RMSFUSE_INIT_MOMENTUM | \
     RMSFUSE_FLUSH_SUBNORMAL)

/*
 * Hyperparameters, as doubles, rounded once to float per call.  Valid
 * ranges: all finite; lr >= 0; momentum >= 0; 0 <= dampening <= 1;
 * weight_decay >= 0.  RMSFUSE_NESTEROV needs momentum > 0 and dampening 0
 * (as torch); RMSFUSE_LR_IN_MOMENTUM (Keras' velocity) needs dampening 0;
 * RMSFUSE_INIT_MOMENTUM and RMSFUSE_LR_IN_MOMENTUM exclude each other
 * (Keras starts its velocity at zero).
 */
typedef struct rmsfuse_sgd_config {
    double lr;           /* learning rate */
    double momentum;     /* momentum factor; 0 disables momentum (and momentum_buf) */
    double dampening;    /* torch's dampening: the buffer adds (1 - dampening) * g */
    double weight_decay; /* coupled (g += weight_decay * param), or decoupled with RMSFUSE_DECOUPLED_DECAY */
    unsigned flags;      /* RMSFUSE_SGD_FLAGS bits */
} rmsfuse_sgd_config;

/* Every preset also sets RMSFUSE_FLUSH_SUBNORMAL (docs/math.md). */
/* torch.optim.SGD defaults (momentum 0, dampening 0, no weight decay).
 * With momentum, torch's first step sets the buffer to the gradient: pass
 * RMSFUSE_INIT_MOMENTUM on that step. */
RMSFUSE_API rmsfuse_sgd_config rmsfuse_sgd_pytorch(double lr);
/* Keras SGD defaults: momentum 0; with momentum, Keras' velocity
 * (RMSFUSE_LR_IN_MOMENTUM), which starts at zero. */
RMSFUSE_API rmsfuse_sgd_config rmsfuse_sgd_keras(double lr);

/*
 * One SGD step over n elements, in place: param (read, written), grad
 * (read), momentum_buf (read and written when cfg->momentum != 0, only
 * written with RMSFUSE_INIT_MOMENTUM; otherwise unused and may be NULL).
 * Same contract as rmsfuse_rmsprop_step.
 */
RMSFUSE_API int rmsfuse_sgd_step(const rmsfuse_sgd_config *cfg, float *param, const float *grad,
                                 float *momentum_buf, size_t n);

/* What rmsfuse_sgd_step would return, writing nothing. */
RMSFUSE_API int rmsfuse_sgd_check(const rmsfuse_sgd_config *cfg, const float *param, const float *grad,
                                  const float *momentum_buf, size_t n);

/* One tensor of a multi-tensor SGD step. */
typedef struct rmsfuse_sgd_tensor {
    float *param;
    const float *grad;
    float *momentum_buf; /* used when cfg->momentum != 0, else may be NULL */
    size_t n;            /* elements; 0 skips the tensor (its pointers may be NULL) */
} rmsfuse_sgd_tensor;

/* One step of every tensor, one configuration (rules as rmsfuse_rmsprop_step_multi). */
RMSFUSE_API int rmsfuse_sgd_step_multi(const rmsfuse_sgd_config *cfg, const rmsfuse_sgd_tensor *tensors,
                                       size_t count);

/* step_multi with the gradients scaled, clipped by value and by global norm,
 * or the step skipped on a non-finite gradient (rmsfuse_grad_options, in
 * rmsfuse_common.h); opt NULL: none.  Returns what step_multi returns, or
 * RMSFUSE_E_GRAD_OPTIONS, or RMSFUSE_SKIPPED (nothing written).  info, if
 * not NULL, gets the norm, the clip factor and whether a gradient was not
 * finite. */
RMSFUSE_API int rmsfuse_sgd_step_ex(const rmsfuse_sgd_config *cfg, const rmsfuse_sgd_tensor *tensors, size_t count,
                                   const rmsfuse_grad_options *opt, rmsfuse_grad_info *info);
/* Adds the sum of squares of every g * scale of the list to *sumsq (see
 * rmsfuse_<rule>_grad_sumsq in rmsfuse_common.h). */
RMSFUSE_API int rmsfuse_sgd_grad_sumsq(const rmsfuse_sgd_tensor *tensors, size_t count, double scale, double *sumsq);

/* What rmsfuse_sgd_step_multi would return, writing nothing. */
RMSFUSE_API int rmsfuse_sgd_check_multi(const rmsfuse_sgd_config *cfg, const rmsfuse_sgd_tensor *tensors,
                                        size_t count);
/* Validates cfg alone. */
RMSFUSE_API int rmsfuse_sgd_check_config(const rmsfuse_sgd_config *cfg);
/* A prepared step over the tensors (rmsfuse_common.h); *plan is NULL on error. */
RMSFUSE_API int rmsfuse_sgd_plan(const rmsfuse_sgd_config *cfg, const rmsfuse_sgd_tensor *tensors, size_t count,
                                 rmsfuse_plan **plan);

/* Typed steps: arrays in other storage types than float32 (rmsfuse_storage,
 * rmsfuse_typed_tensor in rmsfuse_common.h; docs/math.md, "Storage types"). */
RMSFUSE_API int rmsfuse_sgd_step_typed(const rmsfuse_sgd_config *cfg, const rmsfuse_storage *storage,
                                     const rmsfuse_typed_tensor *tensors, size_t count,
                                     const rmsfuse_grad_options *opt, rmsfuse_grad_info *info);
RMSFUSE_API int rmsfuse_sgd_check_typed(const rmsfuse_sgd_config *cfg, const rmsfuse_storage *storage,
                                      const rmsfuse_typed_tensor *tensors, size_t count);
RMSFUSE_API int rmsfuse_sgd_plan_typed(const rmsfuse_sgd_config *cfg, const rmsfuse_storage *storage,
                                     const rmsfuse_typed_tensor *tensors, size_t count, rmsfuse_plan **plan);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* RMSFUSE_SGD_H */

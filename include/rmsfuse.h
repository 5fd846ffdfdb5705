/*
 * rmsfuse: fused, SIMD-accelerated optimizer updates: RMSProp, AdaGrad,
 * SGD with momentum, Adam/AdamW.
 *
 * Each rule does its whole update (weight decay, its running averages,
 * momentum, the parameter update) in one pass over memory.  The arithmetic
 * is defined element by element in docs/math.md; every SIMD path (SSE2,
 * AVX2, AVX-512, NEON, SVE) returns the same bits as the scalar reference.
 *
 * This umbrella header declares everything: rmsfuse_common.h (status codes,
 * flags, plans, ISA dispatch) and one header per rule.  C99/C11 and C++
 * compatible.
 */
#ifndef RMSFUSE_H
#define RMSFUSE_H

#include "rmsfuse_common.h"
#include "rmsfuse_rmsprop.h"
#include "rmsfuse_adagrad.h"
#include "rmsfuse_sgd.h"
#include "rmsfuse_adam.h"

#endif /* RMSFUSE_H */

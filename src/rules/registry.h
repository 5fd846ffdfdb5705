/*
 * The rule registry: every update rule the library has.  Adding a rule is a
 * rule file here (its constants, variants and element math), its API file
 * (src/api/<rule>.c: public functions, presets, config checks), its public
 * header, and its two lines below.  Validation, plans, dispatch, the pool
 * and CMake take the rest from this list.
 *
 * Included again by src/isa/kernels.c with RMSFUSE_BODY defined, once per
 * vector width, to instantiate each rule's element math.
 */
#include <math.h>
#include <stdint.h>

#include "rmsfuse.h"

#ifndef RMSFUSE_SIGN_MASK
/* The bits XORed into every gradient: its sign for RMSFUSE_MAXIMIZE. */
#define RMSFUSE_SIGN_MASK(flags) (((flags) & RMSFUSE_MAXIMIZE) ? UINT32_C(0x80000000) : 0u)
#endif

#include "rmsprop.h"
#include "adagrad.h"
#include "sgd.h"
#include "adam.h"

#ifndef RMSFUSE_RULES
#define RMSFUSE_RULES(X) X(rmsprop) X(adagrad) X(sgd) X(adam)
#endif

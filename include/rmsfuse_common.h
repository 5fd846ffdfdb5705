/*
 * rmsfuse: what every update rule shares: version, status codes, flag bits,
 * prepared steps (plans) and instruction-set dispatch.  Included by every
 * rule header (rmsfuse_rmsprop.h, rmsfuse_adagrad.h, rmsfuse_sgd.h,
 * rmsfuse_adam.h) and by the umbrella header rmsfuse.h.
 *
 * The header is C99/C11 and C++ compatible and needs only <stddef.h>.  All
 * functions are thread-safe.  The library never prints and never aborts:
 * every failure is reported through a negative status code, and a call
 * that fails writes nothing.
 */
#ifndef RMSFUSE_COMMON_H
#define RMSFUSE_COMMON_H

#include <stddef.h>

/* ---- version ----------------------------------------------------------- */
#define RMSFUSE_VERSION_MAJOR 0
#define RMSFUSE_VERSION_MINOR 2
#define RMSFUSE_VERSION_PATCH 0
#define RMSFUSE_VERSION_STRING "0.2.0"
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
/*
 * The one table of status codes: X(name, value, description).  0 is
 * success; every error is negative.  One outcome is positive:
 * RMSFUSE_SKIPPED, a step that found a non-finite gradient and, as asked
 * (RMSFUSE_SKIP_NONFINITE), wrote nothing; not an error.
 * rmsfuse_strerror() returns the description, rmsfuse_status_name() the
 * name.
 */
#define RMSFUSE_STATUS_TABLE(X)                                                                                  \
    X(RMSFUSE_OK, 0, "success")                                                                                  \
    X(RMSFUSE_E_NULL_CONFIG, -1, "configuration pointer is NULL")                                                \
    X(RMSFUSE_E_NULL_ARRAY, -2, "param, grad or a state array the configuration uses is NULL with n > 0")       \
    X(RMSFUSE_E_NULL_MOMENTUM_BUF, -3, "momentum is non-zero but momentum_buf is NULL")                          \
    X(RMSFUSE_E_NULL_GRAD_AVG, -4, "RMSFUSE_CENTERED is set but grad_avg is NULL")                               \
    X(RMSFUSE_E_NONFINITE, -5, "a hyperparameter is NaN, infinite or beyond the float range")                    \
    X(RMSFUSE_E_LR, -6, "lr is negative")                                                                        \
    X(RMSFUSE_E_ALPHA, -7, "alpha is outside [0, 1]")                                                            \
    X(RMSFUSE_E_EPS, -8, "eps is negative")                                                                      \
    X(RMSFUSE_E_WEIGHT_DECAY, -9, "weight_decay is negative")                                                    \
    X(RMSFUSE_E_MOMENTUM, -10, "momentum is outside its range")                                                  \
    X(RMSFUSE_E_FLAGS, -11, "unknown or contradictory bits in flags")                                            \
    X(RMSFUSE_E_OVERLAP, -12, "two arrays overlap")                                                              \
    X(RMSFUSE_E_SIZE, -13, "n is too large for the address space")                                               \
    X(RMSFUSE_E_UNKNOWN_ISA, -14, "unknown ISA name")                                                            \
    X(RMSFUSE_E_ISA_UNSUPPORTED, -15, "ISA not built in or not supported by this CPU/OS")                        \
    X(RMSFUSE_E_NULL_LIST, -16, "tensor list is NULL with count > 0")                                            \
    X(RMSFUSE_E_NO_MEMORY, -17, "out of memory")                                                                 \
    X(RMSFUSE_E_NULL_POOL, -18, "thread pool pointer is NULL")                                                   \
    X(RMSFUSE_E_THREADS, -19, "could not create the threads or read the topology")                               \
    X(RMSFUSE_E_BETA1, -20, "beta1 is outside [0, 1)")                                                           \
    X(RMSFUSE_E_BETA2, -21, "beta2 is outside [0, 1)")                                                           \
    X(RMSFUSE_E_DAMPENING, -22, "dampening is outside [0, 1], or non-zero with RMSFUSE_LR_IN_MOMENTUM")          \
    X(RMSFUSE_E_NESTEROV, -23, "RMSFUSE_NESTEROV needs momentum > 0 (and, for SGD, dampening 0)")                \
    X(RMSFUSE_E_LR_DECAY, -24, "lr_decay is negative")                                                           \
    X(RMSFUSE_E_STEP, -25, "step is below 1")                                                                    \
    X(RMSFUSE_E_NULL_PLAN, -26, "plan pointer is NULL")                                                          \
    X(RMSFUSE_E_RANGE, -27, "element range is reversed or beyond the plan")                                     \
    X(RMSFUSE_E_GRAD_OPTIONS, -28, "gradient options: scale not in (0, FLT_MAX], clip_value or max_norm NaN or negative, or unknown flags") \
    X(RMSFUSE_E_STORAGE, -29, "storage types: unknown type, a type this array cannot have, or unknown storage flags") \
    X(RMSFUSE_E_BLOCK, -30, "a plan range with 8-bit state starts or ends inside a block of RMSFUSE_Q8_BLOCK elements") \
    X(RMSFUSE_SKIPPED, 1, "step skipped, nothing written: a scaled gradient is Inf or NaN (RMSFUSE_SKIP_NONFINITE)")

typedef enum rmsfuse_status {
#define RMSFUSE_STATUS_ENUM_(name, value, text) name = value,
    RMSFUSE_STATUS_TABLE(RMSFUSE_STATUS_ENUM_)
#undef RMSFUSE_STATUS_ENUM_
} rmsfuse_status;

/* A static, English description of a status code; never NULL. */
RMSFUSE_API const char *rmsfuse_strerror(int status);

/* The name of a status code ("RMSFUSE_E_LR"), or NULL for an unknown code. */
RMSFUSE_API const char *rmsfuse_status_name(int status);

/* The library's version as "MAJOR.MINOR.PATCH" (of the library loaded at
 * run time, which may differ from RMSFUSE_VERSION_STRING of the header). */
RMSFUSE_API const char *rmsfuse_version(void);

/* ---- flag bits --------------------------------------------------------- */
/*
 * One namespace of flag bits for every rule's config.flags; each rule
 * accepts the bits of its RMSFUSE_<RULE>_FLAGS mask and refuses the others
 * with RMSFUSE_E_FLAGS.  docs/math.md gives each flag's exact operations.
 */
#define RMSFUSE_CENTERED        (1u << 0) /* RMSProp: subtract the squared running mean of g (needs grad_avg) */
#define RMSFUSE_EPS_IN_SQRT     (1u << 1) /* RMSProp, AdaGrad: d = sqrt(s + eps) instead of sqrt(s) + eps */
#define RMSFUSE_LR_IN_MOMENTUM  (1u << 2) /* RMSProp: buffer accumulates lr*g/d (TensorFlow/Keras);
                                             SGD: Keras' velocity v = m*v - lr*g, p += v */
#define RMSFUSE_MAXIMIZE        (1u << 3) /* every rule: ascend (use -grad) */
#define RMSFUSE_DECOUPLED_DECAY (1u << 4) /* every rule: weight_decay is decoupled, p *= 1 - lr*weight_decay
                                             before the update (AdamW, Keras 3), not added to g */
#define RMSFUSE_NESTEROV        (1u << 5) /* RMSProp (optax's form), SGD: Nesterov momentum */
#define RMSFUSE_INIT_MOMENTUM   (1u << 6) /* SGD: momentum_buf is not set yet: this step sets it to the
                                             gradient instead of reading it (torch's first step) */
#define RMSFUSE_AMSGRAD         (1u << 7) /* Adam: use the running maximum of exp_avg_sq (needs max_exp_avg_sq) */
#define RMSFUSE_EPS_HAT         (1u << 8) /* Adam: eps is the paper's epsilon-hat, added to sqrt(v) before
                                             the bias correction (TensorFlow, Keras) */
#define RMSFUSE_FLUSH_SUBNORMAL (1u << 9) /* every rule: a state value below the smallest normal float in
                                             magnitude becomes +0, so zero gradients never leave the
                                             state subnormal (and slow); the presets set it */

/* ---- the gradient as the step reads it --------------------------------- */
/*
 * What a training step does to the gradients besides the update, fused
 * into it (rmsfuse_<rule>_step_ex; docs/math.md, "The gradient as the step
 * reads it"): each gradient element g of every tensor of the call is read
 * as
 *     clamp(g * s, -clip_value, clip_value),   s = scale * clip_factor
 * rounded to float once (s) and in float arithmetic (g * s), where
 * clip_factor = max_norm / (norm + 1e-6) when that is below 1 (else 1),
 * norm = the L2 norm of all the call's g * scale (float products, squared
 * and summed in double in a fixed order: the same bits on every ISA).  The
 * arrays are not modified: the step reads them this way.  When
 * RMSFUSE_SKIP_NONFINITE is set and any g * scale is Inf or NaN, the call
 * writes nothing and returns RMSFUSE_SKIPPED.  The norm is computed (one
 * read-only pass over the gradients before the step) only when max_norm is
 * finite or RMSFUSE_SKIP_NONFINITE is set, and RMSFUSE_SUMSQ_GIVEN is not.
 *
 * A step made of several calls (parameter groups, MPI ranks, threads of
 * your own) shares one norm this way: add up the sum of squares of every
 * call's gradients first (rmsfuse_<rule>_grad_sumsq, or
 * rmsfuse_grad_block_sumsq block by block), then make each call with that
 * sum in `sumsq` and RMSFUSE_SUMSQ_GIVEN: each clips and skips exactly as
 * one call over all the tensors would, with the same bits.
 */
typedef struct rmsfuse_grad_options {
    double scale;      /* finite, > 0: 1 for none, 1/loss_scale to unscale */
    double clip_value; /* >= 0: clip by value; HUGE_VAL (+Inf) for none */
    double max_norm;   /* >= 0: clip by global norm; HUGE_VAL (+Inf) for none */
    unsigned flags;    /* RMSFUSE_SKIP_NONFINITE, RMSFUSE_SUMSQ_GIVEN, or 0 */
    double sumsq;      /* with RMSFUSE_SUMSQ_GIVEN: the sum of the squares of every g * scale
                          (>= 0, +Inf or NaN), whose square root is the norm */
} rmsfuse_grad_options;

/* rmsfuse_grad_options.flags */
#define RMSFUSE_SKIP_NONFINITE 1u /* write nothing, return RMSFUSE_SKIPPED, if a g * scale is Inf or NaN */
#define RMSFUSE_SUMSQ_GIVEN    2u /* the norm is sqrt(sumsq): the call does not compute it */

/* The norm's blocks: each tensor's gradient is cut into blocks of this many
 * elements from its first element (docs/math.md gives the order in a block). */
#define RMSFUSE_NORM_BLOCK 4096u

/* What a step with gradient options found (any of its pointers may be
 * NULL).  Filled on RMSFUSE_OK and RMSFUSE_SKIPPED. */
typedef struct rmsfuse_grad_info {
    double norm;        /* the L2 norm of every g * scale, before clipping; NaN if not computed */
    double clip_factor; /* what max_norm multiplied the gradients by: 1 if it did not clip */
    int nonfinite;      /* 1 if some g * scale is Inf or NaN, 0 if none, -1 if not checked */
} rmsfuse_grad_info;

/* The options that change nothing: scale 1, no clipping, no skipping. */
RMSFUSE_API rmsfuse_grad_options rmsfuse_grad_options_none(void);

/*
 * The sum of the squares of g * scale over each block of grad[0, n) (blocks
 * of RMSFUSE_NORM_BLOCK elements from grad[0], the last one shorter), in
 * the norm's fixed order, into sums[0, ceil(n / RMSFUSE_NORM_BLOCK)).  The
 * sum of squares of a list of tensors is every tensor's block sums, in list
 * order, added one after the other to a double that starts at 0: so a
 * tensor may be cut at block boundaries and its pieces' block sums computed
 * anywhere (other threads, other processes) and gathered in order.  Returns
 * RMSFUSE_OK, RMSFUSE_E_NULL_ARRAY (grad or sums NULL with n > 0) or
 * RMSFUSE_E_GRAD_OPTIONS (scale as in rmsfuse_grad_options); on error
 * nothing is written.
 */
RMSFUSE_API int rmsfuse_grad_block_sumsq(const float *grad, size_t n, double scale, double *sums);

/*
 * Every rule has, over its own tensor list (reading only the gradients):
 *   int rmsfuse_<rule>_grad_sumsq(const <tensor> *tensors, size_t count,
 *                                 double scale, double *sumsq);
 * which adds every block sum of the list's gradients, in order, to *sumsq:
 * start from 0, and calls over consecutive parts of a list give the bits of
 * one call over the whole list (the sum step_ex takes the norm of).
 * Returns RMSFUSE_OK, RMSFUSE_E_NULL_LIST, RMSFUSE_E_NULL_ARRAY (a grad
 * NULL with n > 0) or RMSFUSE_E_GRAD_OPTIONS (scale, or sumsq NULL); on
 * error *sumsq is unchanged.
 */

/* ---- storage types ----------------------------------------------------- */
/*
 * Fewer bytes per element (docs/math.md, "Storage types"): each array of a
 * step may be stored in another type than float32.  All arithmetic stays
 * float32, in the rule's op order: an element is converted to float32 when
 * read and rounded back when written, so a step over float32 arrays and a
 * step over other types whose values are the same floats compute the same
 * update.  Conversions give the same bits on every ISA.
 *
 *   RMSFUSE_F32         float32 (4 bytes)                       any array
 *   RMSFUSE_BF16        bfloat16 (2 bytes, as uint16_t)         param, grad, state
 *   RMSFUSE_F16         IEEE binary16 (2 bytes, as uint16_t)    param, grad
 *   RMSFUSE_SPLIT_BF16  param as the bf16 the model uses (the upper 16 bits
 *                       of the float32 master weight, truncated) and, in
 *                       param_extra, the trail (its lower 16 bits): together
 *                       exactly the float32 weight (Intel's extension's
 *                       split SGD)                              param
 *   RMSFUSE_Q8          8-bit codes, blocks of RMSFUSE_Q8_BLOCK elements with
 *                       one float32 scale each (the block's largest
 *                       magnitude); a float-like code (sign, exponent,
 *                       3 fraction bits) relative to it      state
 *   RMSFUSE_Q8_LINEAR   8-bit codes as RMSFUSE_Q8, linear    state
 *
 * State arrays that are never negative (square averages, second moments,
 * AdaGrad's sum) use the unsigned code map of their 8-bit type, the others
 * the signed one.  Rounding to bf16/f16 is to nearest, ties to even; with
 * RMSFUSE_STOCHASTIC_ROUNDING, a bf16 or f16 param is rounded up or down at
 * random with probabilities by distance, from a counter-based hash of
 * (seed, step, stream, element index): the same bits on every ISA, thread
 * count and cut into ranges.
 */
#define RMSFUSE_F32 0u
#define RMSFUSE_BF16 1u
#define RMSFUSE_F16 2u
#define RMSFUSE_SPLIT_BF16 3u
#define RMSFUSE_Q8 4u
#define RMSFUSE_Q8_LINEAR 5u

/* Elements per block of 8-bit state; each block has a float32 scale. */
#define RMSFUSE_Q8_BLOCK 256u

/* rmsfuse_storage.flags */
#define RMSFUSE_MASTER_WEIGHTS     1u /* param BF16 or F16: param_extra is a float32 master copy
                                         that the step updates; param is written rounded from it */
#define RMSFUSE_STOCHASTIC_ROUNDING 2u /* param BF16 or F16: stochastic rounding when writing it */

/* The storage types of one step: one per kind of array. */
typedef struct rmsfuse_storage {
    unsigned param;          /* RMSFUSE_F32, _BF16, _F16 or _SPLIT_BF16 */
    unsigned grad;           /* RMSFUSE_F32, _BF16 or _F16 */
    unsigned state;          /* every state array: RMSFUSE_F32, _BF16, _Q8 or _Q8_LINEAR */
    unsigned flags;          /* RMSFUSE_MASTER_WEIGHTS, RMSFUSE_STOCHASTIC_ROUNDING */
    unsigned long long seed; /* stochastic rounding: the run's seed */
    unsigned long long step; /* stochastic rounding: the step's counter (new bits each step) */
} rmsfuse_storage;

/* The storage of float32 everywhere (what step_multi uses). */
RMSFUSE_API rmsfuse_storage rmsfuse_storage_f32(void);

/*
 * One tensor of a typed step, for every rule: the arrays of the rule's
 * tensor struct, each in its storage type.  state[j] is the rule's j-th
 * state array, in the order of rmsfuse_<rule>_tensor (RMSProp: square_avg,
 * momentum_buf, grad_avg; AdaGrad: sum; SGD: momentum_buf; Adam: exp_avg,
 * exp_avg_sq, max_exp_avg_sq); those the configuration does not use may be
 * NULL.  With 8-bit state, scale[j] holds state[j]'s ceil(n / 256) block
 * scales.  Unused pointers are ignored.
 */
typedef struct rmsfuse_typed_tensor {
    void *param;              /* n elements of storage.param */
    void *param_extra;        /* SPLIT_BF16: the trail (n uint16_t); MASTER_WEIGHTS: n floats; else unused */
    const void *grad;         /* n elements of storage.grad, read only */
    void *state[4];           /* n elements of storage.state each */
    float *scale[4];          /* Q8, Q8_LINEAR: ceil(n / RMSFUSE_Q8_BLOCK) floats each */
    size_t n;                 /* elements; 0 skips the tensor (its pointers may be NULL) */
    unsigned long long stream;/* stochastic rounding: this tensor's stream (e.g. its index in the model) */
} rmsfuse_typed_tensor;

/*
 * Every rule has, beside its float32 calls:
 *   int rmsfuse_<rule>_step_typed(const <cfg> *cfg, const rmsfuse_storage *storage,
 *                                 const rmsfuse_typed_tensor *tensors, size_t count,
 *                                 const rmsfuse_grad_options *opt, rmsfuse_grad_info *info);
 *   int rmsfuse_<rule>_check_typed(cfg, storage, tensors, count);
 *   int rmsfuse_<rule>_plan_typed(cfg, storage, tensors, count, rmsfuse_plan **plan);
 * step_typed is step_ex (opt and info may be NULL) over arrays of the given
 * types, with the same checks (every array, extra arrays and block scales
 * included, disjoint from every other) plus RMSFUSE_E_STORAGE for a type an
 * array cannot have; check_typed returns what step_typed would return,
 * writing nothing; plan_typed makes a plan that every plan call and the
 * thread pool run.  A range of a plan with 8-bit state must start and end at
 * a block boundary of its tensors (or a tensor's end), else RMSFUSE_E_BLOCK;
 * rmsfuse_plan_cut returns such boundaries.
 *
 * rmsfuse_grad_sumsq_typed is rmsfuse_<rule>_grad_sumsq over typed tensors
 * (the gradients converted to float32, then as for float32 arrays).
 */
RMSFUSE_API int rmsfuse_grad_sumsq_typed(const rmsfuse_storage *storage, const rmsfuse_typed_tensor *tensors,
                                         size_t count, double scale, double *sumsq);

/* rmsfuse_grad_block_sumsq over a gradient of type `type` (F32, BF16, F16). */
RMSFUSE_API int rmsfuse_grad_block_sumsq_typed(unsigned type, const void *grad, size_t n, double scale,
                                               double *sums);

/*
 * Conversions, element by element, with the library's own rounding (the
 * same bits as the steps, on every ISA): n floats from `src` into `dst` of
 * type `type` (BF16 or F16: round to nearest even), or back (to_f32).
 * For 8-bit types, blocks of RMSFUSE_Q8_BLOCK elements from src[0] each get
 * a scale in scale[ceil(n / RMSFUSE_Q8_BLOCK)]; `nonneg` picks the unsigned
 * code map (values must then be >= 0 or NaN).  Returns RMSFUSE_OK,
 * RMSFUSE_E_NULL_ARRAY or RMSFUSE_E_STORAGE.
 */
RMSFUSE_API int rmsfuse_convert_from_f32(unsigned type, int nonneg, const float *src, void *dst, float *scale,
                                         size_t n);
RMSFUSE_API int rmsfuse_convert_to_f32(unsigned type, int nonneg, const void *src, const float *scale, float *dst,
                                       size_t n);

/* ---- prepared steps ---------------------------------------------------- */
/*
 * A plan is a step that has been checked: the rule's constants, the kernel
 * of the active ISA and a copy of the tensor list, everything validated
 * once.  Each rule makes one with rmsfuse_<rule>_plan().  The tensors are
 * laid end to end as elements [0, rmsfuse_plan_elements()), and any
 * sub-range can be run on its own, from any thread: the thread pool
 * (rmsfuse_pool_run_plan) runs plans of every rule this way.  Running every
 * element once is one step, with the same bits as the rule's step_multi
 * call, whatever the cut into ranges.  A plan may be run again for another
 * step with the same hyperparameters.  The arrays must stay valid, and no
 * two threads may run overlapping ranges at once.
 */
typedef struct rmsfuse_plan rmsfuse_plan;

/* Elements the plan updates (the sum of its tensors' n); 0 for NULL. */
RMSFUSE_API size_t rmsfuse_plan_elements(const rmsfuse_plan *plan);

/* Runs elements [begin, end) of the plan.  Returns RMSFUSE_OK,
 * RMSFUSE_E_NULL_PLAN or RMSFUSE_E_RANGE (begin > end, or end beyond
 * rmsfuse_plan_elements()); nothing is written on error. */
RMSFUSE_API int rmsfuse_plan_run(const rmsfuse_plan *plan, size_t begin, size_t end);

/* Where a range may start so that it shares no 64-byte line of param with
 * the range before it: for f inside a tensor, the first element index >= f
 * that starts a cache line of that tensor's param, or the tensor's end.  f
 * itself when f is 0, the first element of a tensor, or inside a tensor
 * whose param is not float-aligned (no element of it starts a line), and
 * rmsfuse_plan_elements() for f beyond.  Ranges cut there never have two
 * threads write the same line of a float-aligned param array, except where
 * two tensors' arrays meet; any cut gives the same results, only false
 * sharing is at stake. */
RMSFUSE_API size_t rmsfuse_plan_cut(const rmsfuse_plan *plan, size_t f);

/*
 * A step with gradient options (rmsfuse_grad_options) over a plan: runs
 * elements [begin, end) as the rule's step_ex over the plan's tensors would
 * (scale, clipping, skipping).  The norm, where needed, is of the whole
 * plan: give it (RMSFUSE_SUMSQ_GIVEN) when several threads run ranges of
 * one step, from the block sums below gathered in order, or each call
 * computes it over the whole plan again (an empty range then only checks
 * the options and returns RMSFUSE_OK).  Returns RMSFUSE_OK,
 * RMSFUSE_SKIPPED, RMSFUSE_E_NULL_PLAN, RMSFUSE_E_RANGE or
 * RMSFUSE_E_GRAD_OPTIONS; info (may be NULL) as for step_ex.
 */
RMSFUSE_API int rmsfuse_plan_run_ex(const rmsfuse_plan *plan, size_t begin, size_t end,
                                    const rmsfuse_grad_options *opt, rmsfuse_grad_info *info);

/* The norm's blocks in a plan: each tensor's, in order (0 for NULL). */
RMSFUSE_API size_t rmsfuse_plan_blocks(const rmsfuse_plan *plan);

/* The block sums (as rmsfuse_grad_block_sumsq) of the plan's blocks
 * [begin, end) into sums[0, end - begin), from any thread.  Added in order
 * from 0 to rmsfuse_plan_blocks(), they are the plan's sum of squares.
 * Returns RMSFUSE_OK, RMSFUSE_E_NULL_PLAN, RMSFUSE_E_RANGE (or sums NULL
 * with begin < end) or RMSFUSE_E_GRAD_OPTIONS (scale). */
RMSFUSE_API int rmsfuse_plan_block_sumsq(const rmsfuse_plan *plan, double scale, size_t begin, size_t end,
                                         double *sums);

/* Frees a plan (NULL is a no-op). */
RMSFUSE_API void rmsfuse_plan_free(rmsfuse_plan *plan);

/* ---- instruction-set dispatch ------------------------------------------ */
/*
 * The implementation is chosen once, lazily and thread-safely, on first use:
 * the best ISA that is both compiled in and usable on this CPU and OS
 * (x86: CPUID + XGETBV; AArch64: NEON is baseline, SVE from the kernel's
 * HWCAP_SVE).  ISA names: "scalar", "sse2", "avx2", "avx512", "neon",
 * "sve".  See docs/dispatch.md.  One choice serves every rule.
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
 * RMSFUSE_E_ISA_UNSUPPORTED; on error the active ISA is unchanged.  Plans
 * made before keep the kernel they were made with. */
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

#endif /* RMSFUSE_COMMON_H */

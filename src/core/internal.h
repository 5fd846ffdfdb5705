/*
 * Internal interface between the rule API files (src/api/), the shared
 * machinery (src/core/: validation, plans, dispatch) and the kernels
 * (src/isa/kernels.c, compiled once per ISA).  Not installed.
 *
 * How a call runs: the rule's API file checks the configuration and derives
 * the loop constants into an rmsfuse_prepared (kernel, variant, constants,
 * the layout of the rule's tensor struct); the core validates the arrays as
 * descriptors (pointer, element size, written or not) and runs the kernel,
 * or keeps everything in a plan that any thread may run over any range.
 */
#ifndef RMSFUSE_CORE_INTERNAL_H
#define RMSFUSE_CORE_INTERNAL_H

#include <float.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rmsfuse.h"

/* Bit-exactness needs IEEE binary32 evaluation of every float expression
 * (no x87 excess precision). */
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#  error "rmsfuse needs FLT_EVAL_METHOD == 0 (on 32-bit x86 build with -msse2 -mfpmath=sse)"
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define RMSFUSE_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#  define RMSFUSE_ALWAYS_INLINE inline
#endif

#define RMSFUSE_CAT_(a, b) a##b
#define RMSFUSE_CAT(a, b) RMSFUSE_CAT_(a, b)

/* ---- rules ---------------------------------------------------------------- */
#include "../rules/registry.h" /* RMSFUSE_RULES(X): every rule, and their shared definitions */

#define RMSFUSE_RULE_ID_(r) RMSFUSE_RULE_##r,
enum { RMSFUSE_RULES(RMSFUSE_RULE_ID_) RMSFUSE_N_RULES };
#undef RMSFUSE_RULE_ID_

/* Most arrays (slots) a rule uses per tensor: param, grad and its state. */
#define RMSFUSE_MAX_SLOTS 6
/* Slots 0 and 1 are param and grad in every rule; grad is the only slot a
 * step does not write. */
#define RMSFUSE_SLOT_PARAM 0
#define RMSFUSE_SLOT_GRAD 1

/*
 * A kernel: the rule's loop for one ISA.  k points to the rule's constants
 * (struct rmsfuse_<rule>_k), `variant` picks the specialisation, a[slot] is
 * the byte address of each array's first element (those the variant does
 * not use may be anything), n > 0; the arrays are validated.
 */
typedef void (*rmsfuse_kernel)(const void *k, unsigned variant, char *const *a, size_t n);

/* Where a rule's tensor struct keeps its arrays: the descriptors validation
 * and plans read, so that no rule needs code of its own there. */
typedef struct rmsfuse_layout {
    size_t size;                               /* sizeof the tensor struct */
    size_t n_offset;                           /* offsetof its size_t n */
    unsigned slots;                            /* arrays per tensor */
    size_t offset[RMSFUSE_MAX_SLOTS];          /* offsetof each array pointer */
    signed char null_status[RMSFUSE_MAX_SLOTS];/* the status when a used array is NULL */
} rmsfuse_layout;

/* A checked configuration: what a rule's API file hands to the core. */
typedef struct rmsfuse_prepared {
    const rmsfuse_layout *layout;
    int rule;                              /* RMSFUSE_RULE_<rule> */
    unsigned variant;                      /* the kernel's specialisation */
    unsigned used;                         /* bit s: the variant reads or writes slot s */
    unsigned char elem[RMSFUSE_MAX_SLOTS]; /* bytes per element of each slot */
    size_t max_n;                          /* most elements whose bytes fit size_t in every slot */
    union {
        unsigned char bytes[64];
        float f;
        uint32_t u;
    } k; /* the rule's constants, struct rmsfuse_<rule>_k */
} rmsfuse_prepared;

/* Copies a rule's constant struct into P->k (checked to fit at compile time). */
#define RMSFUSE_SET_CONSTS(P, kstruct)                                                                 \
    do {                                                                                               \
        _Static_assert(sizeof(kstruct) <= sizeof((P)->k.bytes), "rule constants exceed rmsfuse_prepared"); \
        memcpy((P)->k.bytes, &(kstruct), sizeof(kstruct));                                            \
    } while (0)

/* Starts a prepared step of `rule`: its layout, float arrays everywhere. */
static inline void rmsfuse_prepare_init(rmsfuse_prepared *P, int rule, const rmsfuse_layout *layout)
{
    P->layout = layout;
    P->rule = rule;
    for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++)
        P->elem[s] = (unsigned char)sizeof(float);
    P->max_n = SIZE_MAX / sizeof(float);
}

/* Whether every constant, each rounded once to float, is finite: (float)x
 * is finite only if x is, and x * 0 is zero only for finite x, so one
 * comparison checks them all. */
static inline int rmsfuse_all_finite(const float *x, size_t count)
{
    float z = 0.0f;
    for (size_t i = 0; i < count; i++)
        z += x[i] * 0.0f;
    return z == 0.0f;
}

/* ---- storage types (src/core/typed.c; conversions in src/isa/kernels.c) ---- */
/* One tensor of a typed step, as the kernels read it: every slot's array
 * at the tensor's element 0, its type (RMSFUSE_F32 ...), and the extras. */
typedef struct rmsfuse_typed_job {
    char *a[RMSFUSE_MAX_SLOTS];             /* each slot's array (NULL where unused) */
    char *extra;                            /* param's trail (SPLIT_BF16) or master (MASTER_WEIGHTS) */
    char *scale[RMSFUSE_MAX_SLOTS];         /* 8-bit state: the block scales */
    unsigned char type[RMSFUSE_MAX_SLOTS];  /* storage type of each slot */
    unsigned used;                          /* slots the variant reads or writes */
    unsigned nonneg;                        /* slots with the unsigned 8-bit map */
    unsigned flags;                         /* rmsfuse_storage.flags */
    uint64_t key;                           /* stochastic rounding: K of (seed, step, stream) */
    int rule;                               /* RMSFUSE_RULE_<rule> */
} rmsfuse_typed_job;

/* splitmix64's finaliser (docs/math.md, "Stochastic rounding"). */
static inline uint64_t rmsfuse_sr_mix64(uint64_t z)
{
    z += UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}
/* K2 of element i (docs/math.md): the same for every element of one 2^32 range. */
static inline uint64_t rmsfuse_sr_k2(uint64_t key, uint64_t i)
{
    return rmsfuse_sr_mix64(key ^ (i >> 32));
}

/* Bytes per element of a storage type (8-bit: the codes alone). */
static inline size_t rmsfuse_type_bytes(unsigned type)
{
    return type == RMSFUSE_F32 ? 4u : type == RMSFUSE_Q8 || type == RMSFUSE_Q8_LINEAR ? 1u : 2u;
}
static inline int rmsfuse_type_is_q8(unsigned type)
{
    return type == RMSFUSE_Q8 || type == RMSFUSE_Q8_LINEAR;
}

/* The typed machinery of one ISA (src/isa/kernels.c). */
typedef struct rmsfuse_storage_ops {
    /* Elements [begin, end) of a typed tensor through `kernel` (the rule's
     * float32 kernel of the same ISA), block by block. */
    void (*run)(rmsfuse_kernel kernel, const void *k, unsigned variant, const rmsfuse_typed_job *job, size_t begin,
                size_t end);
    /* The norm's block sum of n <= RMSFUSE_NORM_BLOCK gradients of `type`. */
    double (*block_sumsq)(unsigned type, const char *g, size_t n, float s);
    /* n elements to and from float32 (8-bit: blocks of RMSFUSE_Q8_BLOCK from element 0). */
    void (*from_f32)(unsigned type, int nonneg, const float *src, char *dst, char *scale, size_t n);
    void (*to_f32)(unsigned type, int nonneg, const char *src, const char *scale, float *dst, size_t n);
} rmsfuse_storage_ops;

/* The active ISA's. */
const rmsfuse_storage_ops *rmsfuse_active_storage_ops(void);

/* A step over typed tensors after the configuration's checks (P from the
 * rule's prepare): the storage's and the arrays' checks, then, unless
 * check_only, the step as step_ex.  L gives the rule's null statuses and
 * slot count, nonneg the slots of the unsigned 8-bit map. */
int rmsfuse_typed_step(rmsfuse_prepared *P, unsigned nonneg, const rmsfuse_storage *storage,
                       const rmsfuse_typed_tensor *tensors, size_t count, const rmsfuse_grad_options *opt,
                       rmsfuse_grad_info *info, int check_only);
int rmsfuse_typed_plan(rmsfuse_prepared *P, unsigned nonneg, const rmsfuse_storage *storage,
                       const rmsfuse_typed_tensor *tensors, size_t count, rmsfuse_plan **plan);

/* Byte ranges of arrays, for the overlap check across a list (src/core/run.c). */
typedef struct rmsfuse_span {
    uintptr_t lo, hi;
    int written;
} rmsfuse_span;
/* Sorts s[0, m) and says whether any written range overlaps another range. */
int rmsfuse_spans_overlap(rmsfuse_span *s, size_t m);
int rmsfuse_spans_overlap_kinds(rmsfuse_span *s, size_t m, size_t k);

/* ---- the core (src/core/run.h, run.c) -------------------------------------- */
/* Checks, then makes a plan (*out NULL on error). */
int rmsfuse_plan_list(const rmsfuse_prepared *P, const void *tensors, size_t count, rmsfuse_plan **out);

/* ---- the gradient as the step reads it (src/core/grad.c) -------------------- */
/* The global norm's fixed order (docs/math.md): lanes of a block, blocks
 * of a tensor from its first element, tensors in list order. */
#define RMSFUSE_NORM_LANES 16u /* RMSFUSE_NORM_BLOCK is public (rmsfuse_common.h) */
/* rmsfuse_<rule>_step_ex after the configuration's checks: the options'
 * checks, the list's (once), the norm where needed, then the step with the
 * scale and clip value in P's constants (rmsfuse_grad_k). */
int rmsfuse_step_ex_list(rmsfuse_prepared *P, const rmsfuse_layout *L, const void *tensors, size_t count,
                         const rmsfuse_grad_options *opt, rmsfuse_grad_info *info);
/* The options' pieces (src/core/grad.c), for typed steps (src/core/typed.c). */
int rmsfuse_grad_scale_ok(double scale);
int rmsfuse_grad_check_options(const rmsfuse_grad_options *o);
int rmsfuse_grad_must_compute(const rmsfuse_grad_options *o);
int rmsfuse_grad_decide(const rmsfuse_grad_options *o, int known, double sumsq, rmsfuse_grad_info *out,
                        rmsfuse_grad_k *in);
/* decide() of the options and the sum of squares into the gradient constants
 * at the start of the rule's constants k (src/core/grad.c); *out what it found. */
int rmsfuse_grad_settle(const rmsfuse_grad_options *o, double sumsq, unsigned char *k, rmsfuse_grad_info *out);
/* rmsfuse_<rule>_grad_sumsq over the rule's layout. */
int rmsfuse_grad_sumsq_list(const rmsfuse_layout *L, const void *tensors, size_t count, double scale,
                            double *sumsq);

/*
 * The public functions every rule has that differ only in types, defined
 * once here over the rule's `prepare` (config check and constants) and
 * layout: check_config, step_multi, step_ex, check_multi, grad_sumsq and plan.  A rule's API
 * file writes its presets, prepare, layout, step and check, then this
 * (without a semicolon).
 */
#define RMSFUSE_DEFINE_RULE_API(rule, cfg_type, tensor_type, prepare, layout)                                  \
    int rmsfuse_##rule##_check_config(const cfg_type *cfg)                                                   \
    {                                                                                                        \
        rmsfuse_prepared P;                                                                                  \
        return prepare(cfg, &P);                                                                             \
    }                                                                                                        \
    int rmsfuse_##rule##_check_multi(const cfg_type *cfg, const tensor_type *tensors, size_t count)          \
    {                                                                                                        \
        rmsfuse_prepared P;                                                                                  \
        const int st = prepare(cfg, &P);                                                                     \
        return st != RMSFUSE_OK ? st : rmsfuse_check_list_inl(&P, &layout, tensors, count);                            \
    }                                                                                                        \
    int rmsfuse_##rule##_step_multi(const cfg_type *cfg, const tensor_type *tensors, size_t count)           \
    {                                                                                                        \
        rmsfuse_prepared P;                                                                                  \
        const int st = prepare(cfg, &P);                                                                     \
        return st != RMSFUSE_OK ? st : rmsfuse_step_list_inl(&P, &layout, tensors, count);                            \
    }                                                                                                        \
    int rmsfuse_##rule##_step_ex(const cfg_type *cfg, const tensor_type *tensors, size_t count,              \
                                 const rmsfuse_grad_options *opt, rmsfuse_grad_info *info)                   \
    {                                                                                                        \
        rmsfuse_prepared P;                                                                                  \
        const int st = prepare(cfg, &P);                                                                     \
        return st != RMSFUSE_OK ? st : rmsfuse_step_ex_list(&P, &layout, tensors, count, opt, info);         \
    }                                                                                                        \
    int rmsfuse_##rule##_grad_sumsq(const tensor_type *tensors, size_t count, double scale, double *sumsq)   \
    {                                                                                                        \
        return rmsfuse_grad_sumsq_list(&layout, tensors, count, scale, sumsq);                               \
    }                                                                                                        \
    int rmsfuse_##rule##_step_typed(const cfg_type *cfg, const rmsfuse_storage *storage,                     \
                                    const rmsfuse_typed_tensor *tensors, size_t count,                       \
                                    const rmsfuse_grad_options *opt, rmsfuse_grad_info *info)                \
    {                                                                                                        \
        rmsfuse_prepared P;                                                                                  \
        const int st = prepare(cfg, &P);                                                                     \
        return st != RMSFUSE_OK ? st                                                                         \
                                : rmsfuse_typed_step(&P, RMSFUSE_NONNEG_##rule, storage, tensors, count, opt, info, 0); \
    }                                                                                                        \
    int rmsfuse_##rule##_check_typed(const cfg_type *cfg, const rmsfuse_storage *storage,                    \
                                     const rmsfuse_typed_tensor *tensors, size_t count)                      \
    {                                                                                                        \
        rmsfuse_prepared P;                                                                                  \
        const int st = prepare(cfg, &P);                                                                     \
        return st != RMSFUSE_OK ? st                                                                         \
                                : rmsfuse_typed_step(&P, RMSFUSE_NONNEG_##rule, storage, tensors, count, NULL, NULL, 1); \
    }                                                                                                        \
    int rmsfuse_##rule##_plan_typed(const cfg_type *cfg, const rmsfuse_storage *storage,                     \
                                    const rmsfuse_typed_tensor *tensors, size_t count, rmsfuse_plan **plan)  \
    {                                                                                                        \
        if (!plan)                                                                                           \
            return RMSFUSE_E_NULL_PLAN;                                                                      \
        *plan = NULL;                                                                                        \
        rmsfuse_prepared P;                                                                                  \
        const int st = prepare(cfg, &P);                                                                     \
        return st != RMSFUSE_OK ? st : rmsfuse_typed_plan(&P, RMSFUSE_NONNEG_##rule, storage, tensors, count, plan); \
    }                                                                                                        \
    int rmsfuse_##rule##_plan(const cfg_type *cfg, const tensor_type *tensors, size_t count,                 \
                              rmsfuse_plan **plan)                                                           \
    {                                                                                                        \
        if (!plan)                                                                                           \
            return RMSFUSE_E_NULL_PLAN;                                                                      \
        *plan = NULL;                                                                                        \
        rmsfuse_prepared P;                                                                                  \
        const int st = prepare(cfg, &P);                                                                     \
        return st != RMSFUSE_OK ? st : rmsfuse_plan_list(&P, tensors, count, plan);                          \
    }

/* ---- dispatch (src/core/dispatch.c, src/core/cpu_x86.c, cpu_arm.c) --------- */
/* The kernel of `rule` for the active ISA (chosen on first use). */
rmsfuse_kernel rmsfuse_active_kernel(int rule);

/* The global norm's sum of one block of n <= RMSFUSE_NORM_BLOCK floats at g,
 * times s (src/isa/kernels.c; the same bits on every ISA), and the active
 * ISA's. */
typedef double (*rmsfuse_block_sumsq_fn)(const char *g, size_t n, float s);
rmsfuse_block_sumsq_fn rmsfuse_active_block_sumsq(void);

/* CPU feature detection (src/core/cpu_x86.c; 0 on other architectures). */
int rmsfuse_cpu_has_sse2(void);
int rmsfuse_cpu_has_avx2(void);
int rmsfuse_cpu_has_avx512(void);
/* Whether detection should take AVX-512 over AVX2 on this CPU. */
int rmsfuse_cpu_prefers_avx512(void);
/* Whether the kernels prefetch large arrays in software on this CPU. */
int rmsfuse_cpu_prefers_prefetch(void);
/* Whether the typed steps' fused loops prefetch their 16- and 8-bit arrays. */
int rmsfuse_cpu_prefers_typed_prefetch(void);
/* Whether the AVX-512 storage steps use AVX-512 BF16's vcvtneps2bf16 (the
 * CPU has AVX512_BF16, DQ, BW and VL, and RMSFUSE_CONVERSIONS is not
 * "software"). */
int rmsfuse_cpu_has_bf16_convert(void);
/* Whether the AVX2 and AVX-512 storage conversions of f16 use F16C (the CPU
 * has AVX2 and F16C, and RMSFUSE_CONVERSIONS is not "software"). */
int rmsfuse_cpu_has_f16_convert(void);
/* AArch64 (src/core/cpu_arm.c; 0 elsewhere): SVE usable, and whether
 * detection should take it over NEON. */
int rmsfuse_cpu_has_sve(void);
int rmsfuse_cpu_prefers_sve(void);

#include "run.h" /* the inline checks and runs, which need the above */

#endif /* RMSFUSE_CORE_INTERNAL_H */

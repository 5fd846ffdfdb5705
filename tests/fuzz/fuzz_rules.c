/*
 * Fuzz target for the whole public API of the core library: every rule
 * (RMSProp, AdaGrad, SGD, Adam), one tensor, tensor lists and plans.
 *
 * Built two ways:
 *   - with clang's libFuzzer (-fsanitize=fuzzer,address,undefined; the
 *     `fuzz` stage of scripts/test.sh), which calls LLVMFuzzerTestOneInput
 *     with coverage-guided inputs;
 *   - with any compiler, linked to fuzz_main.c (ctest `fuzz_replay`), which
 *     replays the seed corpus and a fixed set of pseudo-random inputs, so
 *     every build of the suite (sanitizers, valgrind, qemu, AArch64) runs
 *     the same checks.
 *
 * An input is decoded into a rule, a configuration of it, one tensor
 * and/or a list of tensors (up to four read from the input, or 65 to 128
 * generated from a few bytes), how to cut a plan of the list into ranges,
 * optionally gradient options for the list (rmsfuse_grad_options, for
 * step_ex, the sums of squares and plan_run_ex), and the bytes that fill
 * the arrays.  Pointers are NULL, their own exactly-sized heap block (at
 * any byte alignment), a place in a shared
 * arena (so arrays may overlap, within a tensor or across tensors), an
 * alias of an earlier array (shared gradients), or "wild": an address near
 * the top of the address space from which n floats would wrap.  n is
 * small, large (>= 65536, where the kernels prefetch), or huge (>= 2^46:
 * more than any user-space distance, so never accepted).
 *
 * For every input:
 *   - the expected status is computed independently, from the ranges and
 *     rules of docs/math.md and the headers (expect_config, expect_tensor,
 *     expect_list below; derived constants that overflow float are
 *     RMSFUSE_E_NONFINITE).  Where an input breaks several rules the docs
 *     give no precedence, so the oracle yields the set of statuses the
 *     broken rules name, and the call must return one of them; beyond that
 *     a configuration error comes before any array error, as the
 *     configuration is checked even when n == 0.  check_config, check,
 *     check_multi, plan and the steps under every ISA must return the
 *     same status (check_config's, when the configuration is wrong);
 *   - check functions and plan creation write nothing; a rejected call
 *     changes no byte of any buffer;
 *   - an accepted call gives, under every supported ISA, the scalar path's
 *     results (same bits; for NaNs NaN-ness, as tests/test_isa.c), and no
 *     byte outside the arrays it writes changes (grad, unused arrays,
 *     padding);
 *   - the scalar path's results are those of the op order of docs/math.md,
 *     emulated here in float (spec_elem; NaN-ness only for NaNs), the
 *     subnormal-safe state of RMSFUSE_FLUSH_SUBNORMAL included;
 *   - step_multi gives the bytes of one scalar step per tensor;
 *   - a plan of the list, run over the input's cuts in the input's order
 *     (under every ISA, the ISA possibly switched after planning), gives
 *     step_multi's bits, and a second full run the bits of a second
 *     step_multi; bad ranges, a NULL plan and a NULL plan pointer are
 *     refused without writing; rmsfuse_plan_elements and rmsfuse_plan_cut
 *     keep their documented contracts;
 *   - with gradient options (an op bit, so only some inputs pay for it):
 *     rmsfuse_<rule>_step_ex over the list returns, under every ISA, the
 *     status docs/math.md gives in its order (the configuration's, then
 *     RMSFUSE_E_GRAD_OPTIONS from options_valid, then step_multi's, then
 *     RMSFUSE_SKIPPED when SKIP_NONFINITE and the sum of squares is not
 *     finite); on an error it writes nothing and leaves info alone, on
 *     SKIPPED it writes nothing; info (norm, clip_factor, nonfinite) has
 *     the oracle's bits (ex_oracle: the sum of squares in the documented
 *     order, oracle_sumsq, or the one given; the clip factor and gs, gc);
 *     an accepted call writes, under every ISA, the bytes of a scalar
 *     step_multi over the list with each gradient replaced by a copy
 *     holding clamp(g * gs, -gc, gc) (ex_reference), and nothing else;
 *   - rmsfuse_<rule>_grad_sumsq over the list equals the oracle's sum bit
 *     for bit (NaN-ness for NaN), two calls over the input's parts of the
 *     list the whole, with its documented errors (sumsq NULL, bad scale,
 *     NULL list, NULL grad) leaving *sumsq alone; rmsfuse_grad_block_sumsq
 *     per tensor gives the oracle's block sums and writes no further;
 *   - with a plan of an accepted list: rmsfuse_plan_blocks counts the
 *     tensors' blocks, rmsfuse_plan_block_sumsq (in two parts) gives the
 *     oracle's block sums, with its errors; rmsfuse_plan_run_ex over the
 *     input's ranges in the input's order (under every ISA), with the
 *     input's options or with the plan's sum of squares given
 *     (SUMSQ_GIVEN), returns step_ex's status and info on every range (an
 *     empty range that would compute the norm only checks the options) and
 *     leaves step_ex's bytes, or nothing when step_ex writes nothing;
 *   - storage types (the rule byte's bit 2): a typed step of the list's
 *     shapes (rmsfuse_<rule>_step_typed, check_typed, plan_typed), its own
 *     arrays each in a harness buffer at any byte alignment, converted from
 *     the list's floats or raw data bytes (any bf16/f16 half, 8-bit code
 *     and block scale): under every ISA the documented status (the
 *     configuration's first, then RMSFUSE_E_STORAGE for a storage the
 *     library does not have, RMSFUSE_E_NULL_LIST, RMSFUSE_E_NULL_ARRAY for a
 *     NULL extra or block scale), nothing written when refused; an accepted
 *     step writes what docs/math.md's conversions (written out here from
 *     their bit-level definitions: round to nearest even, stochastic
 *     rounding's hash, the 8-bit block codes) around the emulated op order
 *     (spec_elem) give, in every typed array (2-byte values and floats:
 *     NaN-ness for NaNs; codes and scales exactly), and nothing else; a
 *     typed plan run backward over the input's cuts (snapped with
 *     rmsfuse_plan_cut, at 8-bit block boundaries, or as they are: a range
 *     inside a block of 8-bit state is RMSFUSE_E_BLOCK) writes the same;
 *     rmsfuse_grad_sumsq_typed is the decoded gradients' sum of squares;
 *   - no crash and (under ASan/UBSan or valgrind) no invalid access or
 *     undefined behaviour.
 * A failed check prints what differs and aborts (a crash for libFuzzer).
 * RMSFUSE_FUZZ_VERBOSE=1 prints each step call and its status.
 *
 * Input format (bytes; reading past the end gives zeros):
 *   rule      b % 4: 0 RMSProp, 1 AdaGrad, 2 SGD, 3 Adam; bit 2: the list
 *             case also makes a typed step (`typed` below; the seeds
 *             written before storage types have it clear)
 *   op        bits 0-1: 0 one tensor, 1 a list, 2 both, 3 a generated
 *             long list; bits 2-3: how data bytes become floats (raw bits,
 *             special values, small positive values, a mix); bits 4-6: 0
 *             plain, 7 the list pointer is NULL, 1 to 5 the list case
 *             also reads gradient options (`ex` below), 6 both (the seeds
 *             written before the options existed have 0 or 7 there, so
 *             they mean what they meant); bit 7: cfg is NULL
 *   5 x hyper a byte; bit 7 set: the next 8 bytes are the double, else
 *             table entry (b % 64).  In order, per rule:
 *               RMSProp lr, alpha, eps, weight_decay, momentum
 *               AdaGrad lr, lr_decay, weight_decay, eps, (unused)
 *               SGD     lr, momentum, dampening, weight_decay, (unused)
 *               Adam    lr, beta1, beta2, eps, weight_decay
 *   step      a byte; bit 7 set: the next 8 bytes are the long long, else
 *             table entry (b % 32) (AdaGrad and Adam use it)
 *   flags     u16 little endian: bits 0-9 the flag bits 0-9 (bits a rule
 *             does not know are unknown to it; bit 9, FLUSH_SUBNORMAL, every
 *             rule knows); bit 10: also the unknown bit 10 + ((v >> 11) & 15);
 *             bit 15: also bit 31
 *   tensor    n (u16 v; top two bits set: a huge n from a table; v >> 8 ==
 *             0xbf: a large n, 65536 + 67 * (v & 255); else v mod 1025,
 *             or mod 257 in a list), then 5 array specs (the rule's
 *             arrays in header order; specs beyond its count are read and
 *             ignored): a byte s; s % 8: 0-2 own block, 3 NULL, 4-5 arena
 *             (a u16 offset follows), 6 alias of an earlier array, 7 wild;
 *             s >> 3 gives the misalignment / alias / wild parameters
 *   list      a count byte (count = b % 5), then count tensors;
 *   long list (op 3) count (65 + b % 64), layout (bits 0-1: own blocks,
 *             one arena per array kind in list order, the same reversed,
 *             tensor by tensor; bit 2: one gradient for all; bit 3: one
 *             array aliases another; bits 4-7: n up to 1 + 2 * that),
 *             seed, two tensor indices i, j and a byte s for the alias:
 *             array (s & 7) % slots of tensor i is array (s >> 3 & 7) %
 *             slots of tensor j (when j has at least as many elements)
 *   plan      (after either list) a byte: bits 0-2 number of cuts, bits
 *             3-4 the order the ranges run in (forward, backward, odd
 *             then even, from the middle), bit 5 a second step, bit 6
 *             switch the ISA between planning and running, bit 7 snap the
 *             cuts with rmsfuse_plan_cut; then the cuts (u16 each, mod
 *             elements + 1) and a u16 pair, a range that is tried when it
 *             is invalid
 *   ex        (after the plan, with op bits 4-6 in 1 to 6) 8 bytes:
 *             scale: bits 0-4 scale_table (1, powers of two, odd values,
 *               the float range's edges, then the refused ones), bit 5
 *               the plan runs with its sum of squares given;
 *             clip: clip_value clip_table[b & 15], max_norm
 *               clip_table[b >> 4] (0, +Inf, NaN, negative, edges);
 *             flags: bits 0-1 SKIP_NONFINITE, SUMSQ_GIVEN; bit 2 an
 *               unknown flag too (bit 2 + (param >> 4), 31 for 15); bits
 *               3-4 the sum given: 0 grad_sumsq's over the list, 2 the
 *               oracle's over the first (parts % (count + 1)) tensors,
 *               else sumsq_table[param & 15] (negative, -Inf, +Inf, NaN
 *               among them); bit 5 info NULL; bit 6 opt NULL (none);
 *               bit 7 inject a special gradient;
 *             param: see flags;
 *             inject: bits 0-1 Inf, -Inf, NaN, FLT_MAX, bits 2-7 the
 *               tensor (mod count), then a u16 element (mod n), written
 *               into that gradient before anything runs;
 *             parts: where grad_sumsq and plan_block_sumsq are cut
 *   typed     (after the plan and `ex`, with the rule byte's bit 2) 5 bytes:
 *             b0: bits 0-1 param F32, BF16, F16, SPLIT_BF16; bits 2-3
 *               grad F32, BF16, F16, Q8 (refused); bits 4-5 state F32,
 *               BF16, Q8, Q8_LINEAR; bit 6 MASTER_WEIGHTS; bit 7
 *               STOCHASTIC_ROUNDING;
 *             b1: bits 0-2 a storage error: 1 state F16, 2 param Q8,
 *               3 param 9, 4 grad SPLIT_BF16, 5 flag bit 2, 6 storage
 *               NULL; bits 3-4 a NULL array: 1 the extra, 2 the first
 *               block scales, of tensor (b1 >> 5) % count;
 *             b2: bits 0-1 the arrays: 0 the list's floats converted,
 *               1 raw data bytes, 2 every other 8-bit block raw; bit 2
 *               the plan's cuts not snapped;
 *             b3: stochastic rounding's seed (times 0x9E3779B97F4A7C15),
 *             b4: its step; each tensor's stream is its index
 *   data      the second half of the input, cycled (it may overlap the
 *             structure; it stays put when the structure grows)
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rmsfuse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the target did, for fuzz_main.c's report (FS_* indices). */
enum {
    FS_RULE = 0,   /* [4 * rule + k]: k = 0 single accepted, 1 single rejected, 2 list accepted, 3 list rejected */
    FS_PLANS = 16, /* plans made and run (one per ISA) */
    FS_PLAN_RUNS,  /* rmsfuse_plan_run calls */
    FS_ISA_FLOATS, /* floats compared with the scalar path */
    FS_SPEC_FLOATS,/* floats compared with the emulation of docs/math.md */
    FS_CUTS,       /* rmsfuse_plan_cut results checked */
    FS_CUT_UNALIGNED, /* cuts inside a tensor whose param is not float-aligned (f itself) */
    FS_LONG,       /* long lists */
    FS_FLUSHED,    /* state values the emulation's flush changed (|x| < FLT_MIN, not +0) */
    FS_EX_OK,      /* step_ex calls (every ISA) that stepped */
    FS_EX_SKIPPED, /* step_ex calls that returned RMSFUSE_SKIPPED */
    FS_EX_REJECTED,/* step_ex calls that returned an error */
    FS_EX_CLIPPED, /* accepted step_ex inputs whose norm clipped (clip_factor < 1) or scaled (gs != 1) */
    FS_EX_SUMSQ,   /* grad_sumsq, grad_block_sumsq and plan_block_sumsq results checked */
    FS_EX_PLAN_RUNS, /* rmsfuse_plan_run_ex calls */
    FS_TYPED,        /* typed steps (every ISA) that stepped */
    FS_TYPED_REJECTED, /* typed calls refused */
    FS_TYPED_PLANS,  /* typed plans run over cuts */
    FS_TYPED_FLOATS, /* typed elements compared with the oracle (every ISA, steps and plans) */
    FS_TYPED_BLOCKED,/* typed plan ranges refused with RMSFUSE_E_BLOCK */
    FS_COUNT
};
unsigned long long rmsfuse_fuzz_stats[FS_COUNT];

#define FAIL(...)                                    \
    do {                                             \
        fprintf(stderr, "fuzz_rules: " __VA_ARGS__); \
        fputc('\n', stderr);                         \
        abort();                                     \
    } while (0)

/* ---- the rules, as docs/math.md and the headers describe them ---------------- */
enum { RMSPROP, ADAGRAD, SGD, ADAM, N_RULES };
enum { MAXS = 5 };       /* most arrays per tensor */
enum { P = 0, G = 1 };   /* slots 0 and 1: param and grad in every rule */
enum { NORM_BLOCK = 4096 }; /* the norm's blocks (docs/math.md; RMSFUSE_NORM_BLOCK, checked at start) */

static const char *const rule_name[N_RULES] = {"rmsprop", "adagrad", "sgd", "adam"};
static const int rule_slots[N_RULES] = {5, 3, 3, 5};
static const char *const slot_name[N_RULES][MAXS] = {
    {"param", "grad", "square_avg", "momentum_buf", "grad_avg"},
    {"param", "grad", "sum", "-", "-"},
    {"param", "grad", "momentum_buf", "-", "-"},
    {"param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
};
static const char *const hyper_name[N_RULES][5] = {
    {"lr", "alpha", "eps", "weight_decay", "momentum"},
    {"lr", "lr_decay", "weight_decay", "eps", "-"},
    {"lr", "momentum", "dampening", "weight_decay", "-"},
    {"lr", "beta1", "beta2", "eps", "weight_decay"},
};

/* The flags each rule knows (docs/math.md); checked against the headers'
 * RMSFUSE_<RULE>_FLAGS once, at start. */
static const unsigned doc_flags[N_RULES] = {
    RMSFUSE_CENTERED | RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_MAXIMIZE | RMSFUSE_DECOUPLED_DECAY |
        RMSFUSE_NESTEROV | RMSFUSE_FLUSH_SUBNORMAL,
    RMSFUSE_EPS_IN_SQRT | RMSFUSE_MAXIMIZE | RMSFUSE_DECOUPLED_DECAY | RMSFUSE_FLUSH_SUBNORMAL,
    RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_MAXIMIZE | RMSFUSE_DECOUPLED_DECAY | RMSFUSE_NESTEROV | RMSFUSE_INIT_MOMENTUM |
        RMSFUSE_FLUSH_SUBNORMAL,
    RMSFUSE_MAXIMIZE | RMSFUSE_DECOUPLED_DECAY | RMSFUSE_AMSGRAD | RMSFUSE_EPS_HAT | RMSFUSE_FLUSH_SUBNORMAL,
};

/* The status when a used array is NULL (rmsfuse_common.h's table: the
 * momentum buffer and grad_avg have their own codes, every other array
 * RMSFUSE_E_NULL_ARRAY). */
static const int null_status[N_RULES][MAXS] = {
    {RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_MOMENTUM_BUF,
     RMSFUSE_E_NULL_GRAD_AVG},
    {RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, 0, 0},
    {RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_MOMENTUM_BUF, 0, 0},
    {RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY, RMSFUSE_E_NULL_ARRAY},
};

/* A configuration of any rule: h[] in the order of hyper_name. */
typedef struct gcfg {
    double h[5];
    long long step;
    unsigned flags;
} gcfg;

typedef union anycfg {
    rmsfuse_rmsprop_config rmsprop;
    rmsfuse_adagrad_config adagrad;
    rmsfuse_sgd_config sgd;
    rmsfuse_adam_config adam;
} anycfg;

static void make_cfg(int rule, const gcfg *g, anycfg *c)
{
    memset(c, 0, sizeof *c);
    switch (rule) {
    case RMSPROP:
        c->rmsprop.lr = g->h[0];
        c->rmsprop.alpha = g->h[1];
        c->rmsprop.eps = g->h[2];
        c->rmsprop.weight_decay = g->h[3];
        c->rmsprop.momentum = g->h[4];
        c->rmsprop.flags = g->flags;
        break;
    case ADAGRAD:
        c->adagrad.lr = g->h[0];
        c->adagrad.lr_decay = g->h[1];
        c->adagrad.weight_decay = g->h[2];
        c->adagrad.eps = g->h[3];
        c->adagrad.step = g->step;
        c->adagrad.flags = g->flags;
        break;
    case SGD:
        c->sgd.lr = g->h[0];
        c->sgd.momentum = g->h[1];
        c->sgd.dampening = g->h[2];
        c->sgd.weight_decay = g->h[3];
        c->sgd.flags = g->flags;
        break;
    default:
        c->adam.lr = g->h[0];
        c->adam.beta1 = g->h[1];
        c->adam.beta2 = g->h[2];
        c->adam.eps = g->h[3];
        c->adam.weight_decay = g->h[4];
        c->adam.step = g->step;
        c->adam.flags = g->flags;
        break;
    }
}

/* A tensor of any rule: the arrays in header order, and for each the
 * harness buffer holding it (-1: NULL, wild, or an unused slot). */
typedef struct gtensor {
    float *a[MAXS];
    int bi[MAXS];
    size_t n;
} gtensor;

enum { MAX_LIST = 128 };
static rmsfuse_tensor l_rmsprop[MAX_LIST];
static rmsfuse_adagrad_tensor l_adagrad[MAX_LIST];
static rmsfuse_sgd_tensor l_sgd[MAX_LIST];
static rmsfuse_adam_tensor l_adam[MAX_LIST];

/* The tensors as the rule's list type (a static array). */
static const void *make_list(int rule, const gtensor *t, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        float *const *a = t[i].a;
        switch (rule) {
        case RMSPROP:
            l_rmsprop[i].param = a[0];
            l_rmsprop[i].grad = a[1];
            l_rmsprop[i].square_avg = a[2];
            l_rmsprop[i].momentum_buf = a[3];
            l_rmsprop[i].grad_avg = a[4];
            l_rmsprop[i].n = t[i].n;
            break;
        case ADAGRAD:
            l_adagrad[i].param = a[0];
            l_adagrad[i].grad = a[1];
            l_adagrad[i].sum = a[2];
            l_adagrad[i].n = t[i].n;
            break;
        case SGD:
            l_sgd[i].param = a[0];
            l_sgd[i].grad = a[1];
            l_sgd[i].momentum_buf = a[2];
            l_sgd[i].n = t[i].n;
            break;
        default:
            l_adam[i].param = a[0];
            l_adam[i].grad = a[1];
            l_adam[i].exp_avg = a[2];
            l_adam[i].exp_avg_sq = a[3];
            l_adam[i].max_exp_avg_sq = a[4];
            l_adam[i].n = t[i].n;
            break;
        }
    }
    switch (rule) {
    case RMSPROP: return l_rmsprop;
    case ADAGRAD: return l_adagrad;
    case SGD: return l_sgd;
    default: return l_adam;
    }
}

/* ---- the API of each rule, by rule number ------------------------------------ */
static int api_check_config(int rule, const anycfg *c)
{
    switch (rule) {
    case RMSPROP: return rmsfuse_rmsprop_check_config(c ? &c->rmsprop : NULL);
    case ADAGRAD: return rmsfuse_adagrad_check_config(c ? &c->adagrad : NULL);
    case SGD: return rmsfuse_sgd_check_config(c ? &c->sgd : NULL);
    default: return rmsfuse_adam_check_config(c ? &c->adam : NULL);
    }
}

static int api_check(int rule, const anycfg *c, const gtensor *t)
{
    float *const *a = t->a;
    switch (rule) {
    case RMSPROP: return rmsfuse_rmsprop_check(c ? &c->rmsprop : NULL, a[0], a[1], a[2], a[3], a[4], t->n);
    case ADAGRAD: return rmsfuse_adagrad_check(c ? &c->adagrad : NULL, a[0], a[1], a[2], t->n);
    case SGD: return rmsfuse_sgd_check(c ? &c->sgd : NULL, a[0], a[1], a[2], t->n);
    default: return rmsfuse_adam_check(c ? &c->adam : NULL, a[0], a[1], a[2], a[3], a[4], t->n);
    }
}

static int api_step(int rule, const anycfg *c, const gtensor *t)
{
    float *const *a = t->a;
    switch (rule) {
    case RMSPROP: return rmsfuse_rmsprop_step(c ? &c->rmsprop : NULL, a[0], a[1], a[2], a[3], a[4], t->n);
    case ADAGRAD: return rmsfuse_adagrad_step(c ? &c->adagrad : NULL, a[0], a[1], a[2], t->n);
    case SGD: return rmsfuse_sgd_step(c ? &c->sgd : NULL, a[0], a[1], a[2], t->n);
    default: return rmsfuse_adam_step(c ? &c->adam : NULL, a[0], a[1], a[2], a[3], a[4], t->n);
    }
}

static int api_check_multi(int rule, const anycfg *c, const void *list, size_t count)
{
    switch (rule) {
    case RMSPROP: return rmsfuse_rmsprop_check_multi(c ? &c->rmsprop : NULL, list, count);
    case ADAGRAD: return rmsfuse_adagrad_check_multi(c ? &c->adagrad : NULL, list, count);
    case SGD: return rmsfuse_sgd_check_multi(c ? &c->sgd : NULL, list, count);
    default: return rmsfuse_adam_check_multi(c ? &c->adam : NULL, list, count);
    }
}

static int api_step_multi(int rule, const anycfg *c, const void *list, size_t count)
{
    switch (rule) {
    case RMSPROP: return rmsfuse_rmsprop_step_multi(c ? &c->rmsprop : NULL, list, count);
    case ADAGRAD: return rmsfuse_adagrad_step_multi(c ? &c->adagrad : NULL, list, count);
    case SGD: return rmsfuse_sgd_step_multi(c ? &c->sgd : NULL, list, count);
    default: return rmsfuse_adam_step_multi(c ? &c->adam : NULL, list, count);
    }
}

static int api_plan(int rule, const anycfg *c, const void *list, size_t count, rmsfuse_plan **plan)
{
    switch (rule) {
    case RMSPROP: return rmsfuse_rmsprop_plan(c ? &c->rmsprop : NULL, list, count, plan);
    case ADAGRAD: return rmsfuse_adagrad_plan(c ? &c->adagrad : NULL, list, count, plan);
    case SGD: return rmsfuse_sgd_plan(c ? &c->sgd : NULL, list, count, plan);
    default: return rmsfuse_adam_plan(c ? &c->adam : NULL, list, count, plan);
    }
}

static int api_step_ex(int rule, const anycfg *c, const void *list, size_t count, const rmsfuse_grad_options *o,
                       rmsfuse_grad_info *info)
{
    switch (rule) {
    case RMSPROP: return rmsfuse_rmsprop_step_ex(c ? &c->rmsprop : NULL, list, count, o, info);
    case ADAGRAD: return rmsfuse_adagrad_step_ex(c ? &c->adagrad : NULL, list, count, o, info);
    case SGD: return rmsfuse_sgd_step_ex(c ? &c->sgd : NULL, list, count, o, info);
    default: return rmsfuse_adam_step_ex(c ? &c->adam : NULL, list, count, o, info);
    }
}

/* grad_sumsq over tensors [b, b + count) of the list (list NULL: NULL). */
static int api_grad_sumsq(int rule, const void *list, size_t b, size_t count, double scale, double *sumsq)
{
    switch (rule) {
    case RMSPROP:
        return rmsfuse_rmsprop_grad_sumsq(list ? (const rmsfuse_tensor *)list + b : NULL, count, scale, sumsq);
    case ADAGRAD:
        return rmsfuse_adagrad_grad_sumsq(list ? (const rmsfuse_adagrad_tensor *)list + b : NULL, count, scale,
                                          sumsq);
    case SGD: return rmsfuse_sgd_grad_sumsq(list ? (const rmsfuse_sgd_tensor *)list + b : NULL, count, scale, sumsq);
    default:
        return rmsfuse_adam_grad_sumsq(list ? (const rmsfuse_adam_tensor *)list + b : NULL, count, scale, sumsq);
    }
}

/* ---- the expected status: the documented rules, independently ---------------- */
/* A set of statuses: bit k is status -k; the empty set means RMSFUSE_OK. */
typedef uint32_t sset;
#define SBIT(st) ((sset)1 << (unsigned)(-(st)))

static int in_set(int st, sset s)
{
    if (s == 0)
        return st == RMSFUSE_OK;
    return st < 0 && st > -32 && ((s >> (unsigned)(-st)) & 1u);
}

static const char *set_text(sset s)
{
    static char buf[512];
    if (s == 0)
        return "RMSFUSE_OK";
    buf[0] = 0;
    for (int k = 1; k < 32; k++)
        if ((s >> k) & 1u) {
            const char *name = rmsfuse_status_name(-k);
            char one[64];
            snprintf(one, sizeof one, "%s%s", buf[0] ? " or " : "", name ? name : "?");
            strncat(buf, one, sizeof buf - strlen(buf) - 1);
        }
    return buf;
}

/* Finite once rounded to float (nearest, ties to even): NaN is not, and
 * neither is anything from FLT_MAX + half an ulp of it on. */
static int fin(double x)
{
    return fabs(x) < 0x1.ffffffp+127;
}

/* The statuses a configuration earns (cfg non-NULL), from docs/math.md:
 * every hyperparameter and every constant the tables derive from them must
 * be finite in float (RMSFUSE_E_NONFINITE), each hyperparameter in its
 * range, the flags known to the rule, and the rule's flag rules. */
static sset expect_config(int rule, const gcfg *c)
{
    sset s = 0;
    const unsigned f = c->flags;
    const double *h = c->h;
    if (f & ~doc_flags[rule])
        s |= SBIT(RMSFUSE_E_FLAGS);
    const int dec = (f & RMSFUSE_DECOUPLED_DECAY) != 0;
    switch (rule) {
    case RMSPROP: {
        const double lr = h[0], alpha = h[1], eps = h[2], wd = h[3], mom = h[4];
        if (!fin(lr) || !fin(alpha) || !fin(eps) || !fin(wd) || !fin(mom) || !fin(1.0 - alpha) || !fin(-lr) ||
            (dec && wd != 0 && !fin(1.0 - lr * wd)))
            s |= SBIT(RMSFUSE_E_NONFINITE);
        if (!(lr >= 0))
            s |= SBIT(RMSFUSE_E_LR);
        if (!(alpha >= 0 && alpha <= 1))
            s |= SBIT(RMSFUSE_E_ALPHA);
        if (!(eps >= 0))
            s |= SBIT(RMSFUSE_E_EPS);
        if (!(wd >= 0))
            s |= SBIT(RMSFUSE_E_WEIGHT_DECAY);
        if (!(mom >= 0 && mom < 1))
            s |= SBIT(RMSFUSE_E_MOMENTUM);
        if ((f & RMSFUSE_NESTEROV) && !(mom > 0))
            s |= SBIT(RMSFUSE_E_NESTEROV);
        break;
    }
    case ADAGRAD: {
        const double lr = h[0], lr_decay = h[1], wd = h[2], eps = h[3];
        if (!fin(lr) || !fin(lr_decay) || !fin(wd) || !fin(eps))
            s |= SBIT(RMSFUSE_E_NONFINITE);
        if (c->step < 1) {
            s |= SBIT(RMSFUSE_E_STEP); /* clr is defined from step 1 on */
        } else {
            const double clr = lr / (1.0 + (double)(c->step - 1) * lr_decay);
            if (!fin(-clr) || (dec && wd != 0 && !fin(1.0 - clr * wd)))
                s |= SBIT(RMSFUSE_E_NONFINITE);
        }
        if (!(lr >= 0))
            s |= SBIT(RMSFUSE_E_LR);
        if (!(lr_decay >= 0))
            s |= SBIT(RMSFUSE_E_LR_DECAY);
        if (!(wd >= 0))
            s |= SBIT(RMSFUSE_E_WEIGHT_DECAY);
        if (!(eps >= 0))
            s |= SBIT(RMSFUSE_E_EPS);
        break;
    }
    case SGD: {
        const double lr = h[0], mom = h[1], damp = h[2], wd = h[3];
        if (!fin(lr) || !fin(mom) || !fin(damp) || !fin(wd) || !fin(1.0 - damp) || !fin(-lr) ||
            (dec && wd != 0 && !fin(1.0 - lr * wd)))
            s |= SBIT(RMSFUSE_E_NONFINITE);
        if (!(lr >= 0))
            s |= SBIT(RMSFUSE_E_LR);
        if (!(mom >= 0))
            s |= SBIT(RMSFUSE_E_MOMENTUM);
        if (!(damp >= 0 && damp <= 1) || ((f & RMSFUSE_LR_IN_MOMENTUM) && damp != 0))
            s |= SBIT(RMSFUSE_E_DAMPENING);
        if (!(wd >= 0))
            s |= SBIT(RMSFUSE_E_WEIGHT_DECAY);
        if ((f & RMSFUSE_LR_IN_MOMENTUM) && (f & RMSFUSE_INIT_MOMENTUM))
            s |= SBIT(RMSFUSE_E_FLAGS);
        if ((f & RMSFUSE_NESTEROV) && (!(mom > 0) || damp != 0))
            s |= SBIT(RMSFUSE_E_NESTEROV);
        break;
    }
    default: {
        const double lr = h[0], beta1 = h[1], beta2 = h[2], eps = h[3], wd = h[4];
        if (!fin(lr) || !fin(beta1) || !fin(beta2) || !fin(eps) || !fin(wd) || !fin(1.0 - beta1) ||
            !fin(1.0 - beta2) || (dec && wd != 0 && !fin(1.0 - lr * wd)))
            s |= SBIT(RMSFUSE_E_NONFINITE);
        if (c->step < 1) {
            s |= SBIT(RMSFUSE_E_STEP);
        } else {
            const double t = (double)c->step;
            const double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
            const double e = (f & RMSFUSE_EPS_HAT) ? eps : eps * sqrt(bc2);
            if (!fin(-lr * sqrt(bc2) / bc1) || !fin(e))
                s |= SBIT(RMSFUSE_E_NONFINITE);
        }
        if (!(lr >= 0))
            s |= SBIT(RMSFUSE_E_LR);
        if (!(beta1 >= 0 && beta1 < 1))
            s |= SBIT(RMSFUSE_E_BETA1);
        if (!(beta2 >= 0 && beta2 < 1))
            s |= SBIT(RMSFUSE_E_BETA2);
        if (!(eps >= 0))
            s |= SBIT(RMSFUSE_E_EPS);
        if (!(wd >= 0))
            s |= SBIT(RMSFUSE_E_WEIGHT_DECAY);
        break;
    }
    }
    return s;
}

/* Which arrays a (valid) configuration uses; the others are never touched. */
static void used_slots(int rule, const gcfg *c, int use[MAXS])
{
    for (int j = 0; j < MAXS; j++)
        use[j] = j < rule_slots[rule];
    switch (rule) {
    case RMSPROP:
        use[3] = c->h[4] != 0;                          /* momentum_buf when momentum != 0 */
        use[4] = (c->flags & RMSFUSE_CENTERED) != 0;    /* grad_avg with CENTERED */
        break;
    case SGD:
        use[2] = c->h[1] != 0;                          /* momentum_buf when momentum != 0 */
        break;
    case ADAM:
        use[4] = (c->flags & RMSFUSE_AMSGRAD) != 0;     /* max_exp_avg_sq with AMSGRAD */
        break;
    default:
        break;
    }
}

/* [x, x + xb) and [y, y + yb) intersect (neither wraps). */
static int overlap(const float *x, size_t xb, const float *y, size_t yb)
{
    const uintptr_t a = (uintptr_t)x, b = (uintptr_t)y;
    return a < b + yb && b < a + xb;
}

/* Array j of tensor t is used, not NULL, and its n floats fit below 2^64:
 * the arrays the overlap rules compare. */
static int sized(const gtensor *t, int j, const int use[MAXS])
{
    return use[j] && t->a[j] && t->n <= SIZE_MAX / 4 && (uintptr_t)t->a[j] <= UINTPTR_MAX - 4 * t->n;
}

/* The statuses one tensor with n > 0 earns under a valid configuration:
 * a used array NULL, n floats beyond the address space (SIZE), two used
 * arrays that overlap. */
static sset expect_tensor(int rule, const int use[MAXS], const gtensor *t)
{
    sset s = 0;
    const int S = rule_slots[rule];
    for (int j = 0; j < S; j++)
        if (use[j] && !t->a[j])
            s |= SBIT(null_status[rule][j]);
    for (int j = 0; j < S; j++)
        if (use[j] && t->a[j] && (t->n > SIZE_MAX / 4 || (uintptr_t)t->a[j] > UINTPTR_MAX - 4 * t->n))
            s |= SBIT(RMSFUSE_E_SIZE);
    for (int i = 0; i < S; i++)
        for (int j = i + 1; j < S; j++)
            if (sized(t, i, use) && sized(t, j, use) && overlap(t->a[i], 4 * t->n, t->a[j], 4 * t->n))
                s |= SBIT(RMSFUSE_E_OVERLAP);
    return s;
}

/* A list (a single step is a list of one, cfg and list as passed):
 * configuration first; count 0 is a no-op; a NULL list; then every tensor
 * with elements, and every written array against every other array of the
 * list (two gradients may overlap: they are only read). */
static sset expect_list(int rule, const gcfg *c, const gtensor *t, size_t count, int list_null)
{
    if (!c)
        return SBIT(RMSFUSE_E_NULL_CONFIG);
    sset s = expect_config(rule, c);
    if (s || count == 0)
        return s;
    if (list_null)
        return SBIT(RMSFUSE_E_NULL_LIST);
    int use[MAXS];
    used_slots(rule, c, use);
    const int S = rule_slots[rule];
    for (size_t i = 0; i < count; i++)
        if (t[i].n)
            s |= expect_tensor(rule, use, &t[i]);
    for (size_t i = 0; i < count; i++)
        for (size_t k = i + 1; k < count; k++) {
            if (!t[i].n || !t[k].n)
                continue;
            for (int a = 0; a < S; a++)
                for (int b = 0; b < S; b++)
                    if (!(a == G && b == G) && sized(&t[i], a, use) && sized(&t[k], b, use) &&
                        overlap(t[i].a[a], 4 * t[i].n, t[k].a[b], 4 * t[k].n))
                        s |= SBIT(RMSFUSE_E_OVERLAP);
        }
    return s;
}

/* ---- the op order of docs/math.md, emulated ---------------------------------- */
/* The constants of a valid configuration, each derived in double and
 * rounded once to float, and the choices made on the double values. */
typedef struct spec {
    int rule, maxim, wd, dec, mom, centered, eps_in, lr_in, nest, init, ams, flush;
    float a, c, e, m, w, dk, l, nl, ncl, dd, b1, c1, b2, c2, ns;
} spec;

static void spec_init(int rule, const gcfg *c, spec *k)
{
    memset(k, 0, sizeof *k);
    const unsigned f = c->flags;
    const double *h = c->h;
    k->rule = rule;
    k->maxim = (f & RMSFUSE_MAXIMIZE) != 0;
    k->dec = (f & RMSFUSE_DECOUPLED_DECAY) != 0;
    k->eps_in = (f & RMSFUSE_EPS_IN_SQRT) != 0;
    k->lr_in = (f & RMSFUSE_LR_IN_MOMENTUM) != 0;
    k->nest = (f & RMSFUSE_NESTEROV) != 0;
    k->centered = (f & RMSFUSE_CENTERED) != 0;
    k->init = (f & RMSFUSE_INIT_MOMENTUM) != 0;
    k->ams = (f & RMSFUSE_AMSGRAD) != 0;
    k->flush = (f & RMSFUSE_FLUSH_SUBNORMAL) != 0;
    switch (rule) {
    case RMSPROP: {
        const double lr = h[0], alpha = h[1], eps = h[2], wd = h[3], mom = h[4];
        k->wd = wd != 0;
        k->mom = mom != 0;
        k->a = (float)alpha;
        k->c = (float)(1.0 - alpha);
        k->e = (float)eps;
        k->m = (float)mom;
        k->w = (float)wd;
        k->dk = (float)(1.0 - lr * wd);
        k->l = (float)lr;
        k->nl = (float)(-lr);
        break;
    }
    case ADAGRAD: {
        const double lr = h[0], lr_decay = h[1], wd = h[2], eps = h[3];
        const double clr = lr / (1.0 + (double)(c->step - 1) * lr_decay);
        k->wd = wd != 0;
        k->ncl = (float)(-clr);
        k->e = (float)eps;
        k->w = (float)wd;
        k->dk = (float)(1.0 - clr * wd);
        break;
    }
    case SGD: {
        const double lr = h[0], mom = h[1], damp = h[2], wd = h[3];
        k->wd = wd != 0;
        k->mom = mom != 0;
        k->m = (float)mom;
        k->dd = (float)(1.0 - damp);
        k->nl = (float)(-lr);
        k->w = (float)wd;
        k->dk = (float)(1.0 - lr * wd);
        break;
    }
    default: {
        const double lr = h[0], beta1 = h[1], beta2 = h[2], eps = h[3], wd = h[4];
        const double t = (double)c->step;
        const double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
        k->wd = wd != 0;
        k->b1 = (float)beta1;
        k->c1 = (float)(1.0 - beta1);
        k->b2 = (float)beta2;
        k->c2 = (float)(1.0 - beta2);
        k->ns = (float)(-lr * sqrt(bc2) / bc1);
        k->e = (f & RMSFUSE_EPS_HAT) ? (float)eps : (float)(eps * sqrt(bc2));
        k->w = (float)wd;
        k->dk = (float)(1.0 - lr * wd);
        break;
    }
    }
}

/* docs/math.md, Subnormal-safe state: with RMSFUSE_FLUSH_SUBNORMAL a state
 * value is +0 where |x| < FLT_MIN (zero or subnormal, -0 included), x
 * elsewhere (NaN and +-Inf unchanged), as soon as it is computed. */
static float flush(const spec *k, float x)
{
    if (!k->flush || !(fabsf(x) < FLT_MIN))
        return x;
    if (x != 0.0f || signbit(x))
        rmsfuse_fuzz_stats[FS_FLUSHED]++;
    return 0.0f;
}

/* One element: x[] holds the arrays' values (slot order), in and out. */
static void spec_elem(const spec *k, float x[MAXS])
{
    float p = x[P], g = x[G];
    if (k->maxim)
        g = -g;
    if (k->wd && !k->dec)
        g = g + k->w * p;
    if (k->wd && k->dec)
        p = p * k->dk;
    switch (k->rule) {
    case RMSPROP: {
        float v = x[2], b = x[3], ga = x[4], s, d;
        v = flush(k, v * k->a + (k->c * g) * g);
        if (k->centered) {
            ga = flush(k, ga * k->a + k->c * g);
            s = flush(k, v - ga * ga);
        } else {
            s = v;
        }
        d = k->eps_in ? sqrtf(s + k->e) : sqrtf(s) + k->e;
        if (!k->mom) {
            p = p + (k->nl * g) / d;
        } else if (k->lr_in) {
            const float u = (k->l * g) / d;
            b = flush(k, b * k->m + u);
            p = k->nest ? p - (u + k->m * b) : p - b;
        } else {
            const float q = g / d;
            b = flush(k, b * k->m + q);
            p = k->nest ? p + k->nl * (q + k->m * b) : p + k->nl * b;
        }
        x[2] = v;
        x[3] = b;
        x[4] = ga;
        break;
    }
    case ADAGRAD: {
        float sum = x[2];
        sum = flush(k, sum + g * g);
        const float d = k->eps_in ? sqrtf(sum + k->e) : sqrtf(sum) + k->e;
        p = p + (k->ncl * g) / d;
        x[2] = sum;
        break;
    }
    case SGD: {
        float b = x[2];
        if (!k->mom) {
            p = p + k->nl * g;
        } else if (!k->lr_in) {
            b = flush(k, k->init ? g : b * k->m + k->dd * g);
            p = k->nest ? p + k->nl * (g + k->m * b) : p + k->nl * b;
        } else {
            b = flush(k, b * k->m + k->nl * g);
            p = k->nest ? p + (b * k->m + k->nl * g) : p + b;
        }
        x[2] = b;
        break;
    }
    default: {
        float m = x[2], v = x[3], vm = x[4], r;
        m = flush(k, m * k->b1 + k->c1 * g);
        v = flush(k, v * k->b2 + (k->c2 * g) * g);
        if (k->ams) {
            vm = (vm < v) ? v : vm;
            if (isnan(v))
                vm = v;
            vm = flush(k, vm);
            r = vm;
        } else {
            r = v;
        }
        const float d = sqrtf(r) + k->e;
        p = p + (k->ns * m) / d;
        x[2] = m;
        x[3] = v;
        x[4] = vm;
        break;
    }
    }
    x[P] = p;
}

/* ---- reading the input ---------------------------------------------------------- */
typedef struct reader {
    const uint8_t *d;
    size_t n, at;
} reader;

static unsigned u8(reader *r)
{
    return r->at < r->n ? r->d[r->at++] : 0u;
}

static unsigned u16(reader *r)
{
    unsigned lo = u8(r);
    return lo | u8(r) << 8;
}

static uint64_t u64(reader *r)
{
    uint64_t bits = 0;
    for (int k = 0; k < 8; k++)
        bits |= (uint64_t)u8(r) << (8 * k);
    return bits;
}

/* The edges of every range of every rule. */
static const double hyper_table[64] = {
    0.0, 1.0, 0.5, 0.9, 0.99, 0.999, 0.999999, 1e-8,
    1e-7, 1e-10, 1e-3, 0.01, 0.1, -0.0, -1e-300, -1.0,
    3.0e38,
    0x1.fffffep+127,        /* FLT_MAX */
    0x1.ffffffp+127,        /* FLT_MAX + half an ulp: rounds (to even) to +Inf in float */
    0x1.fffffefffffffp+127, /* just below that: rounds to FLT_MAX */
    1e39, 0x1p-149 /* FLT_TRUE_MIN */, 1e-46 /* rounds to 0 in float */, 0x1p-1074, DBL_MAX,
    INFINITY, -INFINITY, NAN,
    0x1.fffffffffffffp-1,   /* 1 - 2^-53, just below 1 */
    0x1.0000000000001p+0,   /* just above 1 */
    2.0, 100.0, 1e30, -NAN,
    0x1.ffffffp-1,          /* 1 - 2^-25: rounds (to even) to 1.0f */
    0x1.fffffep-1,          /* 1 - 2^-24: the float below 1 */
    1.0 - 1e-12,
    0x1p+64,                /* lr * wd = 2^128 (lr = wd = 2^64): dk overflows */
    0x1.fffffep+63,         /* its square just below FLT_MAX */
    1.8446744e19, 1e20, 1e-30, 0x1p-126 /* FLT_MIN */, 1e-38, -0x1.fffffep+127, -1e39, 1e10,
    1e-20,
    1e23,                   /* Adam: lr / bc1 beyond float with beta1 just below 1 */
    3.7e22, 0.3, 0.75, 1.5, 1.0 - 1e-9, 1e-5, 1e-4, 0.2, 4.0, 10.0, 1e6,
    0x1p-24,
    0x1p-150,               /* half of FLT_TRUE_MIN: rounds (to even) to 0 */
    0x1.8p-150,             /* rounds to FLT_TRUE_MIN */
    1e-45,
};

static double read_hyper(reader *r)
{
    const unsigned s = u8(r);
    if (s & 0x80u) {
        const uint64_t bits = u64(r);
        double x;
        memcpy(&x, &bits, sizeof x);
        return x;
    }
    return hyper_table[s % 64u];
}

static const long long step_table[32] = {
    1, 2, 3, 4, 5, 10, 100, 1000,
    0, -1, LLONG_MIN, LLONG_MAX, 1LL << 53, (1LL << 53) + 1, 1000000, 7,
    50, 20, 1LL << 31, (1LL << 32) + 1, 6, 8, 16, 30,
    1000000000, 1000000000000LL, -2, 9, 12, 25, 200, (1LL << 62) + 3,
};

static long long read_step(reader *r)
{
    const unsigned s = u8(r);
    if (s & 0x80u)
        return (long long)u64(r);
    return step_table[s % 32u];
}

/* Huge n: 2^46 floats and more span 2^48 bytes or more, further than any
 * two user-space addresses are apart (x86-64: 47-bit, AArch64: at most
 * 48-bit user space), and the largest wrap from anywhere; a step uses at
 * least two arrays, so a huge n is always rejected (overlap or size). */
static const size_t huge_table[8] = {
    (size_t)1 << 46, (size_t)1 << 47, (size_t)1 << 61, SIZE_MAX / 4,
    SIZE_MAX / 4 + 1, SIZE_MAX / 2, SIZE_MAX - 1, SIZE_MAX,
};

/* Large n: from 65536 elements on the kernels' loops prefetch ahead
 * (src/isa/kernels.c); such arrays are real (1.3 MB for five). */
enum { LARGE_N = 65536 };

static size_t read_n(reader *r, size_t max_n, int *huge)
{
    const unsigned v = u16(r);
    *huge = (v & 0xc000u) == 0xc000u;
    if (*huge)
        return huge_table[v & 7u];
    if ((v >> 8) == 0xbfu)
        return LARGE_N + 67 * (size_t)(v & 255u);
    return v % (max_n + 1);
}

/* ---- buffers ----------------------------------------------------------------------- */
enum {
    MAX_N_SINGLE = 1024,
    MAX_N_LIST = 256,
    MAX_TENSORS = 4,
    HUGE_CAP = 64, /* elements allocated for a huge n */
    ARENA_SINGLE = 3 * 4 * MAX_N_SINGLE,
    ARENA_LIST = 6 * 4 * MAX_N_LIST,
    MAX_BUFS = 2 + MAXS * MAX_LIST + (MAXS + 4) * MAX_LIST, /* the float list's, then a typed step's */
};

/* Every byte an array may touch lives in one of these heap blocks, each
 * allocated with its exact size (so ASan sees any access past it). */
typedef struct bufset {
    unsigned char *p[MAX_BUFS];
    size_t size[MAX_BUFS];
    unsigned char *snap[MAX_BUFS], *ref[MAX_BUFS], *ref2[MAX_BUFS], *written[MAX_BUFS];
    unsigned char *refx[MAX_BUFS]; /* step_ex's expected bytes */
    int count;
    int arena; /* the index of the lazily allocated arena, or -1 */
    /* data */
    int mode;
    const uint8_t *data;
    size_t data_len, data_at;
    uint64_t rng;
} bufset;

static bufset S_; /* one per input, reset each time (too big for the stack) */

static const uint32_t special_bits[32] = {
    0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc12345u, 0x7f800001u, 0xff812345u,
    0x00800000u, 0x80800000u, 0x00000001u, 0x80000001u, 0x7f7fffffu, 0xff7fffffu, 0x007fffffu, 0x80400000u,
    0x3f800000u, 0xbf800000u, 0x40400000u, 0x3f000000u, 0x1e3ce508u, 0x60ad78ecu, 0x00c00000u, 0x006ce3eeu,
    0x477fe000u, 0xc0000000u, 0x3dcccccdu, 0x3a83126fu, 0x447a0000u, 0x5f800000u, 0x1f800000u, 0x40e00000u,
};

static unsigned data_byte(bufset *S)
{
    if (S->data_len)
        return S->data[S->data_at++ % S->data_len];
    S->rng ^= S->rng << 13; /* no data bytes: a fixed xorshift stream */
    S->rng ^= S->rng >> 7;
    S->rng ^= S->rng << 17;
    return (unsigned)(S->rng >> 56);
}

static void fill(bufset *S, unsigned char *p, size_t size)
{
    size_t i = 0;
    if (S->mode != 0)
        for (; i + 4 <= size; i += 4) {
            const unsigned b = data_byte(S);
            float f;
            if (S->mode == 1) {
                const uint32_t u = special_bits[b & 31u];
                memcpy(&f, &u, 4);
            } else if (S->mode == 2) {
                f = (float)(b + 1) / 256.0f;
            } else if (b < 64) {
                const uint32_t u = special_bits[b & 31u];
                memcpy(&f, &u, 4);
            } else {
                f = (float)((int)b - 160) / 32.0f;
            }
            memcpy(p + i, &f, 4);
        }
    for (; i < size; i++)
        p[i] = (unsigned char)data_byte(S);
}

static int new_buf(bufset *S, size_t size)
{
    if (S->count == MAX_BUFS)
        FAIL("harness: out of buffer slots");
    unsigned char *p = malloc(size ? size : 1);
    if (!p)
        FAIL("harness: out of memory");
    fill(S, p, size);
    S->p[S->count] = p;
    S->size[S->count] = size;
    S->snap[S->count] = S->ref[S->count] = S->ref2[S->count] = S->written[S->count] = S->refx[S->count] = NULL;
    return S->count++;
}

static void free_bufs(bufset *S)
{
    for (int i = 0; i < S->count; i++) {
        free(S->p[i]);
        free(S->snap[i]);
        free(S->ref[i]);
        free(S->ref2[i]);
        free(S->written[i]);
        free(S->refx[i]);
    }
    S->count = 0;
    S->arena = -1;
}

static unsigned char *dup_or_reuse(unsigned char *old, const unsigned char *p, size_t size)
{
    unsigned char *q = old ? old : malloc(size ? size : 1);
    if (!q)
        FAIL("harness: out of memory");
    memcpy(q, p, size);
    return q;
}

static void snapshot(bufset *S)
{
    for (int i = 0; i < S->count; i++)
        S->snap[i] = dup_or_reuse(S->snap[i], S->p[i], S->size[i]);
}

static void restore(bufset *S)
{
    for (int i = 0; i < S->count; i++)
        memcpy(S->p[i], S->snap[i], S->size[i]);
}

static void keep(bufset *S, unsigned char **dst)
{
    for (int i = 0; i < S->count; i++)
        dst[i] = dup_or_reuse(dst[i], S->p[i], S->size[i]);
}

/* After something that must write nothing: every byte as in the snapshot. */
static void expect_unchanged(const bufset *S, const char *what, const char *isa)
{
    for (int i = 0; i < S->count; i++)
        if (memcmp(S->p[i], S->snap[i], S->size[i]) != 0) {
            size_t k = 0;
            while (S->p[i][k] == S->snap[i][k])
                k++;
            FAIL("%s (under %s) must write nothing but changed byte %zu of buffer %d", what, isa, k, i);
        }
}

static float float_at(const unsigned char *base, size_t off)
{
    float x;
    memcpy(&x, base + off, 4);
    return x;
}

/* ---- tensors ---------------------------------------------------------------------- */
typedef struct slot_list {
    float *ptr[MAX_TENSORS * MAXS]; /* every array decoded so far (aliases) */
    int bi[MAX_TENSORS * MAXS];
    size_t avail[MAX_TENSORS * MAXS]; /* bytes of memory from ptr on (wild: to 2^64) */
    int count;
} slot_list;

/* Whether array k of the list may be reused (aliased) by an array of n
 * floats, cap of them backed: NULL always; a wild pointer if n floats from
 * it still wrap (or n == 0: never touched); otherwise if the memory behind
 * it holds cap floats. */
static int can_alias(const slot_list *L, int k, size_t n, size_t cap)
{
    const uintptr_t a = (uintptr_t)L->ptr[k];
    if (!a || n == 0)
        return 1;
    if (L->bi[k] < 0) /* wild */
        return n > SIZE_MAX / 4 || L->avail[k] <= 4 * n;
    return L->avail[k] >= 4 * cap;
}

/* An array of cap floats in a block of its own, (x & 3) + 4 * (x >> 2)
 * bytes past the start of the block (any byte alignment). */
static float *own_block(bufset *S, size_t cap, unsigned x, int *bi)
{
    const size_t mis = (x & 3u) + 4u * (x >> 2);
    *bi = new_buf(S, mis + 4 * cap);
    return (float *)(void *)(S->p[*bi] + mis);
}

/* Reads one array spec; `live`: the rule has this slot (otherwise the
 * bytes are read and the slot stays NULL). */
static void read_array(reader *r, bufset *S, slot_list *L, gtensor *t, int j, int huge, size_t arena_size,
                       int live)
{
    const size_t n = t->n, cap = huge ? HUGE_CAP : n; /* elements actually backed by memory */
    const unsigned s = u8(r), x = s >> 3, kind = s % 8u;
    const unsigned off16 = (kind == 4 || kind == 5) ? u16(r) : 0u;
    t->a[j] = NULL;
    t->bi[j] = -1;
    if (!live)
        return;
    size_t avail = 4 * cap;
    switch (kind) {
    case 3:
        break;
    case 4:
    case 5: {
        if (4 * cap > arena_size) { /* a large n: its own block */
            t->a[j] = own_block(S, cap, x, &t->bi[j]);
            break;
        }
        if (S->arena < 0)
            S->arena = new_buf(S, arena_size);
        const size_t off = off16 % (S->size[S->arena] - 4 * cap + 1);
        t->a[j] = (float *)(void *)(S->p[S->arena] + off);
        t->bi[j] = S->arena;
        avail = S->size[S->arena] - off;
        break;
    }
    case 6: { /* alias (an own block when that one cannot be reused) */
        const int k = L->count > 0 ? (int)(x % (unsigned)L->count) : -1;
        if (k >= 0 && can_alias(L, k, n, cap)) {
            t->a[j] = L->ptr[k];
            t->bi[j] = L->bi[k];
            avail = L->avail[k];
        } else {
            t->a[j] = own_block(S, cap, x, &t->bi[j]);
        }
        break;
    }
    case 7: {
        /* 4k bytes below 2^64, k in [1, n] (any k when n == 0, which
         * touches nothing): n floats from there reach or pass 2^64. */
        const size_t lim = n == 0 ? 32 : n < 32 ? n : 32;
        const uintptr_t k = 1 + x % lim;
        t->a[j] = (float *)((uintptr_t)0 - 4 * k);
        avail = 4 * k;
        break;
    }
    default:
        t->a[j] = own_block(S, cap, x, &t->bi[j]);
        break;
    }
    L->ptr[L->count] = t->a[j];
    L->bi[L->count] = t->bi[j];
    L->avail[L->count] = avail;
    L->count++;
}

static void read_tensor(reader *r, bufset *S, slot_list *L, int rule, size_t max_n, size_t arena_size, gtensor *t,
                        int *huge)
{
    t->n = read_n(r, max_n, huge);
    for (int j = 0; j < MAXS; j++)
        read_array(r, S, L, t, j, *huge, arena_size, j < rule_slots[rule]);
}

static uint32_t mix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return h;
}

/* A long list (65 to 128 tensors: beyond the 64 the library's overlap
 * check sorts on the stack) from a few bytes; returns the count. */
static size_t read_long_list(reader *r, bufset *S, int rule, gtensor *t)
{
    const size_t count = 65 + u8(r) % 64u;
    const unsigned lay = u8(r), seed = u8(r), inj_i = u8(r), inj_j = u8(r), inj_s = u8(r);
    const unsigned place = lay & 3u;
    const int shared = (lay >> 2) & 1u, inject = (lay >> 3) & 1u;
    const size_t nmax = 1 + 2 * (lay >> 4);
    const int slots = rule_slots[rule];
    size_t total = 0, prefix[MAX_LIST];
    for (size_t i = 0; i < count; i++) {
        const uint32_t h = mix32(seed * 0x9e3779b9u + (uint32_t)i);
        t[i].n = h % (nmax + 1);
        prefix[i] = total;
        total += t[i].n;
        for (int j = 0; j < MAXS; j++) {
            t[i].a[j] = NULL;
            t[i].bi[j] = -1;
        }
    }
    int gbi = -1;
    float *gshared = shared ? own_block(S, nmax, seed & 31u, &gbi) : NULL;
    int abi = -1;
    const size_t mis = seed % 4u;
    if (place != 0)
        abi = new_buf(S, mis + 4 * total * (size_t)slots);
    for (size_t i = 0; i < count; i++) {
        const uint32_t h = mix32((uint32_t)i * 0x85ebca6bu + seed);
        const int empty_null = t[i].n == 0 && (h & 1u);
        for (int j = 0; j < slots; j++) {
            if (empty_null)
                continue;
            size_t off;
            switch (place) {
            case 0:
                t[i].a[j] = own_block(S, t[i].n, (h >> (5 * j)) & 31u, &t[i].bi[j]);
                continue;
            case 1: /* one region per array kind, tensors in list order */
                off = mis + 4 * (total * (size_t)j + prefix[i]);
                break;
            case 2: /* the same, tensors in reverse order */
                off = mis + 4 * (total * (size_t)j + (total - prefix[i] - t[i].n));
                break;
            default: /* tensor by tensor, its arrays side by side */
                off = mis + 4 * (prefix[i] * (size_t)slots + t[i].n * (size_t)j);
                break;
            }
            t[i].a[j] = (float *)(void *)(S->p[abi] + off);
            t[i].bi[j] = abi;
        }
        if (shared && !empty_null) {
            t[i].a[G] = gshared;
            t[i].bi[G] = gbi;
        }
    }
    if (inject) { /* array a of tensor i on array b of tensor j (its memory holds n_i floats) */
        const size_t i = inj_i % count, j = inj_j % count;
        const int a = (int)((inj_s & 7u) % (unsigned)slots), b = (int)(((inj_s >> 3) & 7u) % (unsigned)slots);
        if (t[j].n >= t[i].n && t[j].a[b]) {
            t[i].a[a] = t[j].a[b];
            t[i].bi[a] = t[j].bi[b];
        }
    }
    return count;
}

/* ---- running calls under every ISA ------------------------------------------------- */
static const char *isas[8];
static int n_isas;
static int verbose;

static void init_once(void)
{
    if (n_isas)
        return;
    /* scalar first: it computes the reference. */
    for (const char *const *p = rmsfuse_isa_names(); *p && n_isas < 8; p++)
        if (rmsfuse_isa_supported(*p))
            isas[n_isas++] = *p;
    if (n_isas == 0 || strcmp(isas[0], "scalar") != 0)
        FAIL("scalar is not the first supported ISA");
    if (NORM_BLOCK != RMSFUSE_NORM_BLOCK)
        FAIL("the norm's blocks have %u elements, not docs/math.md's %u", (unsigned)RMSFUSE_NORM_BLOCK,
             (unsigned)NORM_BLOCK);
    const unsigned header_flags[N_RULES] = {RMSFUSE_RMSPROP_FLAGS, RMSFUSE_ADAGRAD_FLAGS, RMSFUSE_SGD_FLAGS,
                                            RMSFUSE_ADAM_FLAGS};
    for (int r = 0; r < N_RULES; r++)
        if (header_flags[r] != doc_flags[r])
            FAIL("the %s flags of the header (%#x) are not those of docs/math.md (%#x)", rule_name[r],
                 header_flags[r], doc_flags[r]);
    const char *s = getenv("RMSFUSE_FUZZ_VERBOSE");
    verbose = s && *s && strcmp(s, "0") != 0;
}

static void set_isa(const char *name)
{
    if (rmsfuse_set_isa(name) != RMSFUSE_OK)
        FAIL("rmsfuse_set_isa(\"%s\") failed", name);
}

static int same_float(float a, float b)
{
    uint32_t x, y;
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    return x == y;
}

typedef struct call {
    const char *what;
    int rule;
    const anycfg *cfg;
    const gcfg *g;     /* the configuration as read (NULL with cfg) */
    const gtensor *t;  /* the tensors */
    size_t count;
    const void *list;  /* t as the rule's list type, or NULL (multi) */
    int multi;         /* step_multi(cfg, list, count), else step(cfg, t[0]) */
} call;

static int do_step(const call *c)
{
    return c->multi ? api_step_multi(c->rule, c->cfg, c->list, c->count) : api_step(c->rule, c->cfg, c->t);
}

static size_t call_tensors(const call *c)
{
    return c->multi ? c->count : 1;
}

static size_t array_off(const bufset *S, const gtensor *t, int j)
{
    return (size_t)((const unsigned char *)t->a[j] - S->p[t->bi[j]]);
}

/* Marks the bytes of the arrays an accepted call writes. */
static void mark_written(bufset *S, const call *c)
{
    int use[MAXS];
    used_slots(c->rule, c->g, use);
    for (int i = 0; i < S->count; i++) {
        free(S->written[i]);
        S->written[i] = calloc(S->size[i] ? S->size[i] : 1, 1);
        if (!S->written[i])
            FAIL("harness: out of memory");
    }
    for (size_t k = 0; k < call_tensors(c); k++) {
        const gtensor *t = &c->t[k];
        for (int j = 0; j < MAXS && t->n; j++) {
            if (!use[j] || j == G)
                continue;
            if (t->bi[j] < 0 || array_off(S, t, j) + 4 * t->n > S->size[t->bi[j]]) /* never when accepted */
                FAIL("harness: %s %s of tensor %zu is not in a buffer", c->what, slot_name[c->rule][j], k);
            memset(S->written[t->bi[j]] + array_off(S, t, j), 1, 4 * t->n);
        }
    }
}

/* After an accepted call: the bytes not written equal the snapshot, the
 * written floats those of `want` (NaN-ness only for NaNs). */
static void compare_written(const bufset *S, const call *c, unsigned char *const *want, const char *what,
                            const char *isa)
{
    for (int i = 0; i < S->count; i++) {
        /* Each run of bytes not written (w[k] == 0), found with memchr. */
        const unsigned char *now = S->p[i], *before = S->snap[i], *w = S->written[i];
        const size_t size = S->size[i];
        for (size_t k = 0; k < size;) {
            const unsigned char *wr = memchr(w + k, 1, size - k);
            const size_t end = wr ? (size_t)(wr - w) : size;
            if (memcmp(now + k, before + k, end - k) != 0) {
                while (now[k] == before[k])
                    k++;
                FAIL("%s %s under %s: byte %zu of buffer %d, which the call must not write, changed",
                     rule_name[c->rule], what, isa, k, i);
            }
            if (end == size)
                break;
            const unsigned char *un = memchr(w + end, 0, size - end);
            k = un ? (size_t)(un - w) : size;
        }
    }
    int use[MAXS];
    used_slots(c->rule, c->g, use);
    for (size_t k = 0; k < call_tensors(c); k++) {
        const gtensor *t = &c->t[k];
        for (int j = 0; j < MAXS && t->n; j++) {
            if (!use[j] || j == G)
                continue;
            const int b = t->bi[j];
            const size_t o = array_off(S, t, j);
            for (size_t e = 0; e < t->n; e++) {
                const float x = float_at(S->p[b], o + 4 * e), y = float_at(want[b], o + 4 * e);
                rmsfuse_fuzz_stats[FS_ISA_FLOATS]++;
                if (!same_float(x, y))
                    FAIL("%s %s under %s: tensor %zu %s[%zu] = %a, scalar %a", rule_name[c->rule], what, isa, k,
                         slot_name[c->rule][j], e, (double)x, (double)y);
            }
        }
    }
}

/* The scalar results (S->ref) against the emulated op order of
 * docs/math.md, from the inputs (S->snap). */
static void compare_spec(const bufset *S, const call *c)
{
    spec k;
    spec_init(c->rule, c->g, &k);
    int use[MAXS];
    used_slots(c->rule, c->g, use);
    for (size_t ti = 0; ti < call_tensors(c); ti++) {
        const gtensor *t = &c->t[ti];
        size_t off[MAXS] = {0};
        for (int j = 0; j < MAXS; j++)
            if (use[j] && t->n)
                off[j] = array_off(S, t, j);
        for (size_t e = 0; e < t->n; e++) {
            float x[MAXS] = {0}, in[MAXS] = {0};
            for (int j = 0; j < MAXS; j++)
                if (use[j])
                    in[j] = x[j] = float_at(S->snap[t->bi[j]], off[j] + 4 * e);
            spec_elem(&k, x);
            for (int j = 0; j < MAXS; j++) {
                if (!use[j] || j == G)
                    continue;
                const float got = float_at(S->ref[t->bi[j]], off[j] + 4 * e);
                rmsfuse_fuzz_stats[FS_SPEC_FLOATS]++;
                if (!same_float(got, x[j]))
                    FAIL("%s %s (scalar): tensor %zu %s[%zu] = %a, docs/math.md gives %a (inputs param %a grad %a "
                         "state %a %a %a; flags %#x)",
                         rule_name[c->rule], c->what, ti, slot_name[c->rule][j], e, (double)got, (double)x[j],
                         (double)in[0], (double)in[1], (double)in[2], (double)in[3], (double)in[4], c->g->flags);
            }
        }
    }
}

/* Runs the step under every supported ISA from the same inputs (the
 * snapshot); `status` is what every one must return.  Leaves S->ref (and
 * with `twice`, S->ref2: a second scalar step_multi) on success. */
static void run_steps(bufset *S, const call *c, int status, int twice)
{
    rmsfuse_fuzz_stats[FS_RULE + 4 * c->rule + 2 * c->multi + (status != RMSFUSE_OK)]++;
    if (verbose) {
        size_t total = 0;
        for (size_t k = 0; k < call_tensors(c); k++)
            total += c->t[k].n;
        fprintf(stderr, "fuzz_rules: %s %s, %zu tensor(s), %zu elements: %s\n", rule_name[c->rule], c->what,
                call_tensors(c), total, status ? rmsfuse_status_name(status) : "RMSFUSE_OK");
    }
    if (status == RMSFUSE_OK)
        mark_written(S, c);
    for (int k = 0; k < n_isas; k++) {
        restore(S);
        set_isa(isas[k]);
        const int st = do_step(c);
        if (st != status)
            FAIL("%s %s under %s returned %d (%s), expected %d (%s)", rule_name[c->rule], c->what, isas[k], st,
                 rmsfuse_strerror(st), status, rmsfuse_strerror(status));
        if (st != RMSFUSE_OK) {
            expect_unchanged(S, c->what, isas[k]);
            continue;
        }
        if (k == 0) { /* scalar: the reference, against the docs */
            keep(S, S->ref);
            compare_spec(S, c);
        }
        compare_written(S, c, S->ref, c->what, isas[k]);
    }
    if (status != RMSFUSE_OK || !c->multi)
        return;
    /* The list step == one (scalar) step per tensor, to the byte. */
    restore(S);
    set_isa("scalar");
    for (size_t k = 0; k < c->count; k++) {
        const int st = api_step(c->rule, c->cfg, &c->t[k]);
        if (st != RMSFUSE_OK)
            FAIL("tensor %zu of an accepted %s list: the step returned %d", k, rule_name[c->rule], st);
    }
    for (int i = 0; i < S->count; i++)
        if (memcmp(S->p[i], S->ref[i], S->size[i]) != 0)
            FAIL("%s step_multi differs from one step per tensor (buffer %d)", rule_name[c->rule], i);
    if (twice) { /* the reference of a plan run twice: step_multi twice */
        const int st = api_step_multi(c->rule, c->cfg, c->list, c->count);
        if (st != RMSFUSE_OK)
            FAIL("%s step_multi returned %d on its own results", rule_name[c->rule], st);
        keep(S, S->ref2);
    }
}

/* ---- the gradient as the step reads it: step_ex and the sums of squares ---------- */
/* docs/math.md, "The gradient as the step reads it", and rmsfuse_common.h,
 * written out here: the options' checks, the sum of squares in its fixed
 * order, the skip, the clip factor and the kernel's constants gs and gc. */

/* Scales: 1, powers of two, odd values, the edges of the float range; the
 * last twelve are refused (not > 0, or not a finite float above 0 once
 * rounded). */
static const double scale_table[32] = {
    1.0, 0.5, 2.0, 0x1p-10, 0x1p+10, 1.0 / 3.0, 0.1, 3.0,
    0x1p-16, 65536.0, 0x1p-126 /* FLT_MIN */, 0x1p-149 /* FLT_TRUE_MIN */, 7.0, 1e20, 1e-20, 0.75,
    0x1.fffffep+127,        /* FLT_MAX */
    0x1.fffffefffffffp+127, /* rounds to FLT_MAX */
    0x1.8p-150,             /* rounds to FLT_TRUE_MIN */
    1e30,
    0x1p-150,               /* rounds (to even) to 0: refused */
    1e-46, 1e-300, 0.0, -0.0, -1.0,
    0x1.ffffffp+127,        /* rounds to +Inf: refused */
    1e39, DBL_MAX, INFINITY, NAN, -INFINITY,
};

/* clip_value and max_norm: +Inf is "none"; NaN, -1 and -Inf are refused. */
static const double clip_table[16] = {
    INFINITY, 0.0, 1.0, 0.5, 1e-3, 10.0, 1e30, 0x1p-149,
    1e-50 /* 0 in float */, 1e39 /* +Inf in float */, DBL_MAX, 0x1.fffffep+127, -0.0, NAN, -1.0, -INFINITY,
};

/* A given sum of squares: >= 0, +Inf and NaN are taken, the negative ones refused. */
static const double sumsq_table[16] = {
    0.0, 1.0, 0.25, 4.0, 1e-300, 1e300, DBL_MAX, INFINITY,
    NAN, -0.0, 0x1p-1074, 1e6, -1.0, -INFINITY, -1e-300, -NAN,
};

/* The gradient options of a list (see the input format). */
typedef struct ex_spec {
    rmsfuse_grad_options o; /* as decoded; o.sumsq from the table */
    int opt_null, info_null, inject, plan_given;
    unsigned src, inj, inj_at, parts;
} ex_spec;

static void read_ex_spec(reader *r, ex_spec *x)
{
    const unsigned b0 = u8(r), b1 = u8(r), b2 = u8(r), b3 = u8(r);
    x->inj = u8(r);
    x->inj_at = u16(r);
    x->parts = u8(r);
    x->o.scale = scale_table[b0 & 31u];
    x->plan_given = (b0 >> 5) & 1u;
    x->o.clip_value = clip_table[b1 & 15u];
    x->o.max_norm = clip_table[b1 >> 4];
    x->o.flags = b2 & 3u;
    if (b2 & 4u) /* an unknown flag: bit 2 to 16, or 31 */
        x->o.flags |= 1u << ((b3 >> 4) == 15u ? 31u : 2u + (b3 >> 4));
    x->src = (b2 >> 3) & 3u;
    x->info_null = (b2 >> 5) & 1u;
    x->opt_null = (b2 >> 6) & 1u;
    x->inject = (b2 >> 7) & 1u;
    x->o.sumsq = sumsq_table[b3 & 15u];
}

/* What step_ex returns, and with what. */
typedef struct ex_want {
    int status;             /* OK, SKIPPED, or the error */
    rmsfuse_grad_info info; /* on OK and SKIPPED */
    float gs, gc;           /* on OK: each gradient is read as clamp(g * gs, -gc, gc) */
} ex_want;

static const rmsfuse_grad_options no_options = {1.0, INFINITY, INFINITY, 0u, 0.0};

static int scale_valid(double s)
{
    return s > 0 && fin(s) && (float)s > 0.0f;
}

static int options_valid(const rmsfuse_grad_options *o)
{
    if (!o)
        return 1;
    return scale_valid(o->scale) && o->clip_value >= 0 && o->max_norm >= 0 &&
           !(o->flags & ~(RMSFUSE_SKIP_NONFINITE | RMSFUSE_SUMSQ_GIVEN)) &&
           !((o->flags & RMSFUSE_SUMSQ_GIVEN) && o->sumsq < 0);
}

/* The call computes the norm itself (max_norm finite or SKIP_NONFINITE, the sum not given). */
static int computes_norm(const rmsfuse_grad_options *o)
{
    return o && ((o->flags & RMSFUSE_SKIP_NONFINITE) || o->max_norm < INFINITY) && !(o->flags & RMSFUSE_SUMSQ_GIVEN);
}

/* One block's sum of squares: lane i % 16, lanes added pairwise. */
static double oracle_block(const unsigned char *g, size_t n, float s)
{
    double lane[16] = {0.0};
    for (size_t i = 0; i < n; i++) {
        float x;
        memcpy(&x, g + 4 * i, 4);
        x = x * s;
        lane[i % 16] += (double)x * (double)x;
    }
    for (size_t w = 8; w >= 1; w /= 2)
        for (size_t j = 0; j < w; j++)
            lane[j] += lane[j + w];
    return lane[0];
}

static size_t blocks_of(size_t n)
{
    return n / NORM_BLOCK + (n % NORM_BLOCK != 0);
}

static size_t block_len(size_t n, size_t k)
{
    return n - k * NORM_BLOCK < NORM_BLOCK ? n - k * NORM_BLOCK : NORM_BLOCK;
}

/* The sum of squares of the gradients of tensors [b, e), from 0: blocks in
 * order, tensor after tensor. */
static double oracle_sumsq(const gtensor *t, size_t b, size_t e, float s)
{
    double acc = 0.0;
    for (size_t i = b; i < e; i++)
        for (size_t k = 0; k < blocks_of(t[i].n); k++)
            acc += oracle_block((const unsigned char *)t[i].a[G] + 4 * k * NORM_BLOCK, block_len(t[i].n, k), s);
    return acc;
}

/* The gradient of t can be read: n == 0, or its n floats in a harness buffer. */
static int grad_readable(const bufset *S, const gtensor *t)
{
    if (t->n == 0)
        return 1;
    if (!t->a[G] || t->bi[G] < 0)
        return 0;
    const size_t off = array_off(S, t, G), size = S->size[t->bi[G]];
    return off <= size && t->n <= (size - off) / 4;
}

static int range_readable(const bufset *S, const gtensor *t, size_t b, size_t e)
{
    for (size_t i = b; i < e; i++)
        if (!grad_readable(S, &t[i]))
            return 0;
    return 1;
}

static int same_double(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

/* step_ex once the configuration and the list are accepted: the options,
 * then the norm where needed (of the list's gradients, readable), the
 * skip, the clip factor and the constants. */
static void ex_oracle(const rmsfuse_grad_options *opt, const gtensor *t, size_t count, ex_want *w)
{
    const rmsfuse_grad_options o = opt ? *opt : no_options;
    const rmsfuse_grad_info none = {NAN, 1.0, -1};
    w->info = none;
    w->gs = w->gc = 0.0f;
    if (!options_valid(&o)) {
        w->status = RMSFUSE_E_GRAD_OPTIONS;
        return;
    }
    const int given = (o.flags & RMSFUSE_SUMSQ_GIVEN) != 0, skip = (o.flags & RMSFUSE_SKIP_NONFINITE) != 0;
    const int clip = o.max_norm < INFINITY;
    double gs = o.scale;
    if (given || skip || clip) {
        const double sumsq = given ? o.sumsq : oracle_sumsq(t, 0, count, (float)o.scale);
        w->info.nonfinite = !isfinite(sumsq);
        w->info.norm = sqrt(sumsq);
        if (w->info.nonfinite && skip) {
            w->status = RMSFUSE_SKIPPED;
            return;
        }
        if (clip) {
            const double f = o.max_norm / (w->info.norm + 1e-6);
            if (!(f >= 1.0))
                w->info.clip_factor = f;
        }
        gs = o.scale * w->info.clip_factor;
    }
    w->gs = (float)gs;
    w->gc = (float)o.clip_value;
    w->status = RMSFUSE_OK;
}

/* An Inf, -Inf, NaN or FLT_MAX at a gradient element (before the snapshot). */
static void inject_special(bufset *S, const gtensor *t, size_t count, const ex_spec *x)
{
    if (!x->inject || count == 0)
        return;
    const gtensor *u = &t[(x->inj >> 2) % count];
    if (!u->n || !grad_readable(S, u))
        return;
    static const float vals[4] = {INFINITY, -INFINITY, NAN, FLT_MAX};
    memcpy(S->p[u->bi[G]] + array_off(S, u, G) + 4 * (x->inj_at % u->n), &vals[x->inj & 3u], 4);
}

/* grad_sumsq's status over tensors [b, e) (sumsq NULL: nul). */
static int expect_sumsq(const call *c, size_t b, size_t e, int scale_ok, int nul)
{
    if (nul || !scale_ok)
        return RMSFUSE_E_GRAD_OPTIONS;
    if (b == e)
        return RMSFUSE_OK;
    if (!c->list)
        return RMSFUSE_E_NULL_LIST;
    for (size_t i = b; i < e; i++)
        if (c->t[i].n && !c->t[i].a[G])
            return null_status[c->rule][G];
    return RMSFUSE_OK;
}

static void sumsq_status(const char *fn, int rule, int st, int want)
{
    rmsfuse_fuzz_stats[FS_EX_SUMSQ]++;
    if (st != want)
        FAIL("%s %s returned %d (%s), expected %d (%s)", rule_name[rule], fn, st, rmsfuse_strerror(st), want,
             rmsfuse_strerror(want));
}

/* grad_sumsq over the list, by parts and with sumsq NULL, and
 * rmsfuse_grad_block_sumsq per tensor, against the oracle; reads only.
 * Returns 1 with the whole list's sum in *got when it was computed. */
static int sumsq_checks(bufset *S, const call *c, const ex_spec *x, double *got)
{
    const int rule = c->rule;
    const double scale = x->o.scale;
    const int sok = scale_valid(scale);
    const size_t count = c->count;
    const gtensor *t = c->t;
    const int readable = range_readable(S, t, 0, count);
    int have = 0;
    restore(S);
    int want = expect_sumsq(c, 0, count, sok, 0);
    if (want != RMSFUSE_OK || readable) {
        double acc = 0.0;
        const int st = api_grad_sumsq(rule, c->list, 0, count, scale, &acc);
        sumsq_status("grad_sumsq", rule, st, want);
        if (st == RMSFUSE_OK) {
            const double o = oracle_sumsq(t, 0, count, (float)scale);
            if (!same_double(acc, o))
                FAIL("%s grad_sumsq = %a, docs/math.md's order gives %a (scale %a, %zu tensors)", rule_name[rule],
                     acc, o, scale, count);
            *got = acc;
            have = 1;
        } else if (!same_double(acc, 0.0)) {
            FAIL("%s grad_sumsq failed (%d) but changed *sumsq", rule_name[rule], st);
        }
    }
    sumsq_status("grad_sumsq(sumsq NULL)", rule, api_grad_sumsq(rule, c->list, 0, count, scale, NULL),
                 RMSFUSE_E_GRAD_OPTIONS);
    if (have && c->list) { /* by parts: the bits of the whole */
        const size_t k = x->parts % (count + 1);
        double acc = 0.0;
        sumsq_status("grad_sumsq (first part)", rule, api_grad_sumsq(rule, c->list, 0, k, scale, &acc),
                     RMSFUSE_OK);
        sumsq_status("grad_sumsq (second part)", rule, api_grad_sumsq(rule, c->list, k, count - k, scale, &acc),
                     RMSFUSE_OK);
        if (!same_double(acc, *got))
            FAIL("%s grad_sumsq by parts (cut at %zu of %zu) = %a, the whole %a", rule_name[rule], k, count, acc,
                 *got);
    }
    /* Block sums, tensor by tensor (and once with sums NULL). */
    int sums_null_done = 0;
    for (size_t i = 0; i < count; i++) {
        const gtensor *u = &t[i];
        want = u->n && !u->a[G] ? RMSFUSE_E_NULL_ARRAY : sok ? RMSFUSE_OK : RMSFUSE_E_GRAD_OPTIONS;
        if (want == RMSFUSE_OK && !grad_readable(S, u))
            continue;
        const size_t nb = want == RMSFUSE_OK ? blocks_of(u->n) : 0; /* (an error writes nothing: sums[0] stays) */
        if (nb > 64) /* never: n <= 65536 + 67 * 255 */
            FAIL("harness: %zu blocks", nb);
        double sums[65];
        for (size_t k = 0; k <= nb; k++)
            sums[k] = -7.0;
        const int st = rmsfuse_grad_block_sumsq(u->a[G], u->n, scale, sums);
        sumsq_status("rmsfuse_grad_block_sumsq", rule, st, want);
        for (size_t k = 0; k <= nb; k++) {
            const double o = st == RMSFUSE_OK && k < nb
                                 ? oracle_block((const unsigned char *)u->a[G] + 4 * k * NORM_BLOCK, block_len(u->n, k),
                                                (float)scale)
                                 : -7.0;
            if (!same_double(sums[k], o))
                FAIL("%s rmsfuse_grad_block_sumsq (status %d) tensor %zu block %zu of %zu = %a, expected %a",
                     rule_name[rule], st, i, k, nb, sums[k], o);
        }
        if (u->n && u->a[G] && !sums_null_done) {
            sumsq_status("rmsfuse_grad_block_sumsq(sums NULL)", rule,
                         rmsfuse_grad_block_sumsq(u->a[G], u->n, scale, NULL), RMSFUSE_E_NULL_ARRAY);
            sums_null_done = 1;
        }
    }
    expect_unchanged(S, "the sums of squares", "the active ISA");
    return have;
}

/* Marks what step_ex returned and checks info (sentinel: untouched). */
static void check_info(const call *c, const char *what, const char *isa, int st, const rmsfuse_grad_info *got,
                       const ex_want *w)
{
    rmsfuse_fuzz_stats[st == RMSFUSE_OK ? FS_EX_OK : st == RMSFUSE_SKIPPED ? FS_EX_SKIPPED : FS_EX_REJECTED]++;
    if (!got)
        return;
    if (st != RMSFUSE_OK && st != RMSFUSE_SKIPPED) {
        if (!same_double(got->norm, -7.0) || !same_double(got->clip_factor, -7.0) || got->nonfinite != -7)
            FAIL("%s %s under %s failed (%d) but wrote info", rule_name[c->rule], what, isa, st);
        return;
    }
    if (!same_double(got->norm, w->info.norm) || !same_double(got->clip_factor, w->info.clip_factor) ||
        got->nonfinite != w->info.nonfinite)
        FAIL("%s %s under %s (%d): info norm %a clip_factor %a nonfinite %d, expected %a %a %d", rule_name[c->rule],
             what, isa, st, got->norm, got->clip_factor, got->nonfinite, w->info.norm, w->info.clip_factor,
             w->info.nonfinite);
}

/* step_ex's expected bytes (S->refx): a scalar step_multi over the list
 * with each gradient replaced by a fresh array holding clamp(g * gs). */
static void ex_reference(bufset *S, const call *c, const ex_want *w)
{
    static gtensor tt[MAX_LIST];
    static float *fresh[MAX_LIST];
    restore(S);
    set_isa("scalar");
    for (size_t i = 0; i < c->count; i++) {
        tt[i] = c->t[i];
        fresh[i] = NULL;
        if (!tt[i].n)
            continue;
        fresh[i] = malloc(4 * tt[i].n);
        if (!fresh[i])
            FAIL("harness: out of memory");
        for (size_t e = 0; e < tt[i].n; e++) {
            float x;
            memcpy(&x, (const unsigned char *)c->t[i].a[G] + 4 * e, 4);
            x = x * w->gs;
            x = x > w->gc ? w->gc : x;
            x = x < -w->gc ? -w->gc : x;
            fresh[i][e] = x;
        }
        tt[i].a[G] = fresh[i];
        tt[i].bi[G] = -1;
    }
    const int st = api_step_multi(c->rule, c->cfg, make_list(c->rule, tt, c->count), c->count);
    if (st != RMSFUSE_OK)
        FAIL("%s step_multi over the transformed gradients returned %d", rule_name[c->rule], st);
    keep(S, S->refx);
    (void)make_list(c->rule, c->t, c->count); /* c->list again */
    for (size_t i = 0; i < c->count; i++)
        free(fresh[i]);
}

/* step_ex(cfg, list, count, opt, info) under every ISA: the status
 * (configuration, then options, then arrays, then the norm), nothing
 * written and info untouched on error, nothing written on SKIPPED, and
 * otherwise the bytes of step_multi over the transformed gradients.
 * list_status: step_multi's.  Leaves the expectation in *w. */
static void ex_case(bufset *S, const call *c, int cfg_status, int list_status, ex_spec *x, ex_want *w)
{
    double whole = 0.0;
    const int have = sumsq_checks(S, c, x, &whole);
    /* The sum given: grad_sumsq's, a table entry, or the oracle's over the first tensors only. */
    if (x->src == 0)
        x->o.sumsq = have ? whole : 0.0;
    else if (x->src == 2) {
        const size_t k = x->parts % (c->count + 1);
        x->o.sumsq = scale_valid(x->o.scale) && range_readable(S, c->t, 0, k) && expect_sumsq(c, 0, k, 1, 0) == 0
                         ? oracle_sumsq(c->t, 0, k, (float)x->o.scale)
                         : 0.0;
    }
    const rmsfuse_grad_options *opt = x->opt_null ? NULL : &x->o;
    const rmsfuse_grad_info sentinel = {-7.0, -7.0, -7};
    if (cfg_status != RMSFUSE_OK) {
        w->status = cfg_status;
    } else if (!options_valid(opt)) {
        w->status = RMSFUSE_E_GRAD_OPTIONS;
    } else if (list_status != RMSFUSE_OK) {
        w->status = list_status;
    } else {
        ex_oracle(opt, c->t, c->count, w);
        if (w->status == RMSFUSE_OK) {
            ex_reference(S, c, w);
            if (w->gs != 1.0f || w->info.clip_factor < 1.0)
                rmsfuse_fuzz_stats[FS_EX_CLIPPED]++;
        }
    }
    if (verbose)
        fprintf(stderr,
                "fuzz_rules: %s step_ex, options %s(scale %a, clip_value %a, max_norm %a, flags %#x, sumsq %a): %s\n",
                rule_name[c->rule], opt ? "" : "NULL ", x->o.scale, x->o.clip_value, x->o.max_norm, x->o.flags,
                x->o.sumsq, w->status ? rmsfuse_status_name(w->status) : "RMSFUSE_OK");
    for (int k = 0; k < n_isas; k++) {
        restore(S);
        set_isa(isas[k]);
        rmsfuse_grad_info info = sentinel;
        const int st = api_step_ex(c->rule, c->cfg, c->list, c->count, opt, x->info_null ? NULL : &info);
        if (st != w->status)
            FAIL("%s step_ex under %s returned %d (%s), expected %d (%s); scale %a clip_value %a max_norm %a "
                 "flags %#x sumsq %a%s",
                 rule_name[c->rule], isas[k], st, rmsfuse_strerror(st), w->status, rmsfuse_strerror(w->status),
                 x->o.scale, x->o.clip_value, x->o.max_norm, x->o.flags, x->o.sumsq, opt ? "" : " (options NULL)");
        check_info(c, "step_ex", isas[k], st, x->info_null ? NULL : &info, w);
        if (st == RMSFUSE_OK)
            compare_written(S, c, S->refx, "step_ex", isas[k]);
        else
            expect_unchanged(S, "a step_ex that did not step", isas[k]);
    }
}

/* ---- plans --------------------------------------------------------------------- */
typedef struct plan_spec {
    unsigned ncut, order;
    int twice, switch_isa, snap;
    unsigned raw[7];
    unsigned bad_b, bad_e;
} plan_spec;

static void read_plan_spec(reader *r, plan_spec *ps)
{
    const unsigned b = u8(r);
    ps->ncut = b & 7u;
    ps->order = (b >> 3) & 3u;
    ps->twice = (b >> 5) & 1u;
    ps->switch_isa = (b >> 6) & 1u;
    ps->snap = (b >> 7) & 1u;
    for (unsigned k = 0; k < ps->ncut; k++)
        ps->raw[k] = u16(r);
    ps->bad_b = u16(r);
    ps->bad_e = u16(r);
}

/* rmsfuse_plan_cut(plan, f) against its contract (rmsfuse_common.h): f
 * itself at 0, at a tensor's first element and inside a tensor whose param
 * is not float-aligned, else the first element from f on whose param
 * address starts a 64-byte line, or the tensor's end; from the end on, the
 * end. */
static size_t check_cut(const rmsfuse_plan *plan, const call *c, size_t total, size_t f)
{
    const size_t got = rmsfuse_plan_cut(plan, f);
    rmsfuse_fuzz_stats[FS_CUTS]++;
    size_t want = f >= total ? total : f;
    if (f > 0 && f < total) {
        size_t first = 0, k = 0;
        while (!c->t[k].n || f >= first + c->t[k].n) {
            first += c->t[k].n;
            k++;
        }
        const gtensor *t = &c->t[k];
        const uintptr_t base = (uintptr_t)t->a[P];
        size_t o = f - first;
        if (o != 0 && base % 4 != 0) {
            rmsfuse_fuzz_stats[FS_CUT_UNALIGNED]++; /* no element starts a line: f itself */
        } else if (o != 0) {
            while (o < t->n && (base + 4 * o) % 64 != 0)
                o++;
            want = first + o;
        }
    }
    if (got != want)
        FAIL("%s rmsfuse_plan_cut(plan, %zu) = %zu, expected %zu (%zu elements)", rule_name[c->rule], f, got, want,
             total);
    return got;
}

/* The plan's documented errors and edges: nothing written. */
static void plan_edges(bufset *S, const call *c, const rmsfuse_plan *plan, size_t total, const plan_spec *ps)
{
    struct {
        size_t b, e;
        int st;
    } runs[] = {
        {1, 0, RMSFUSE_E_RANGE},
        {0, total + 1, RMSFUSE_E_RANGE},
        {total + 1, total + 1, RMSFUSE_E_RANGE},
        {SIZE_MAX, SIZE_MAX, RMSFUSE_E_RANGE},
        {0, SIZE_MAX, RMSFUSE_E_RANGE},
        {SIZE_MAX, 0, RMSFUSE_E_RANGE},
        {total, total, RMSFUSE_OK},
        {0, 0, RMSFUSE_OK},
        {total / 2, total / 2, RMSFUSE_OK},
        {ps->bad_b % (total + 3), ps->bad_e % (total + 3), 0},
    };
    const size_t nruns = sizeof runs / sizeof runs[0];
    for (size_t k = 0; k < nruns; k++) {
        if (k == nruns - 1) { /* the input's range, when it is not a real one */
            if (runs[k].b > runs[k].e || runs[k].e > total)
                runs[k].st = RMSFUSE_E_RANGE;
            else if (runs[k].b < runs[k].e)
                continue;
        }
        const int st = rmsfuse_plan_run(plan, runs[k].b, runs[k].e);
        rmsfuse_fuzz_stats[FS_PLAN_RUNS]++;
        if (st != runs[k].st)
            FAIL("%s rmsfuse_plan_run(plan, %zu, %zu) returned %d, expected %d (%zu elements)", rule_name[c->rule],
                 runs[k].b, runs[k].e, st, runs[k].st, total);
    }
    if (rmsfuse_plan_run(NULL, 0, 0) != RMSFUSE_E_NULL_PLAN || rmsfuse_plan_run(NULL, 0, 1) != RMSFUSE_E_NULL_PLAN)
        FAIL("rmsfuse_plan_run(NULL, ...) is not RMSFUSE_E_NULL_PLAN");
    if (rmsfuse_plan_elements(NULL) != 0)
        FAIL("rmsfuse_plan_elements(NULL) is not 0");
    if (rmsfuse_plan_cut(NULL, 0) != 0 || rmsfuse_plan_cut(NULL, 7) != 0 || rmsfuse_plan_cut(NULL, SIZE_MAX) != 0)
        FAIL("rmsfuse_plan_cut(NULL, f) is not 0 (rmsfuse_plan_elements(NULL))");
    rmsfuse_plan_free(NULL);
    expect_unchanged(S, "rmsfuse_plan_run on an empty or bad range", "any ISA");
    (void)check_cut(plan, c, total, 0);
    (void)check_cut(plan, c, total, total);
    (void)check_cut(plan, c, total, total + 1);
    (void)check_cut(plan, c, total, SIZE_MAX);
    for (unsigned k = 0; k < ps->ncut; k++)
        (void)check_cut(plan, c, total, total ? ps->raw[k] % total : 0);
}

/* rmsfuse_plan_blocks and rmsfuse_plan_block_sumsq against the oracle (in
 * two parts, cut by the input), and their errors; returns 1 with the
 * plan's sum of squares (the block sums added in order from 0) in *sum. */
static int plan_sums_checks(bufset *S, const call *c, const rmsfuse_plan *plan, const ex_spec *x, double *sum)
{
    const int rule = c->rule;
    const double scale = x->o.scale;
    const int sok = scale_valid(scale);
    size_t nb = 0;
    for (size_t i = 0; i < c->count; i++)
        nb += blocks_of(c->t[i].n);
    if (rmsfuse_plan_blocks(plan) != nb || rmsfuse_plan_blocks(NULL) != 0)
        FAIL("%s rmsfuse_plan_blocks = %zu, the tensors have %zu blocks (NULL: %zu)", rule_name[rule],
             rmsfuse_plan_blocks(plan), nb, rmsfuse_plan_blocks(NULL));
    double *sums = malloc((nb + 1) * sizeof *sums);
    if (!sums)
        FAIL("harness: out of memory");
    for (size_t k = 0; k <= nb; k++)
        sums[k] = -7.0;
    const size_t m = x->parts % (nb + 1);
    const int want = sok ? RMSFUSE_OK : RMSFUSE_E_GRAD_OPTIONS;
    sumsq_status("rmsfuse_plan_block_sumsq (first part)", rule, rmsfuse_plan_block_sumsq(plan, scale, 0, m, sums),
                 want);
    sumsq_status("rmsfuse_plan_block_sumsq (second part)", rule,
                 rmsfuse_plan_block_sumsq(plan, scale, m, nb, sums + m), want);
    double acc = 0.0;
    size_t b = 0;
    for (size_t i = 0; i < c->count; i++)
        for (size_t k = 0; k < blocks_of(c->t[i].n); k++, b++) {
            const double o = sok ? oracle_block((const unsigned char *)c->t[i].a[G] + 4 * k * NORM_BLOCK,
                                                block_len(c->t[i].n, k), (float)scale)
                                 : -7.0;
            if (!same_double(sums[b], o))
                FAIL("%s rmsfuse_plan_block_sumsq: block %zu (tensor %zu, its block %zu) = %a, expected %a",
                     rule_name[rule], b, i, k, sums[b], o);
            acc += sums[b];
        }
    if (!same_double(sums[nb], -7.0))
        FAIL("%s rmsfuse_plan_block_sumsq wrote past its blocks", rule_name[rule]);
    /* The errors (one at a time), and empty ranges. */
    sumsq_status("rmsfuse_plan_block_sumsq(NULL plan)", rule, rmsfuse_plan_block_sumsq(NULL, 1.0, 0, 0, sums),
                 RMSFUSE_E_NULL_PLAN);
    sumsq_status("rmsfuse_plan_block_sumsq(begin > end)", rule, rmsfuse_plan_block_sumsq(plan, 1.0, 1, 0, sums),
                 RMSFUSE_E_RANGE);
    sumsq_status("rmsfuse_plan_block_sumsq(end > blocks)", rule,
                 rmsfuse_plan_block_sumsq(plan, 1.0, 0, nb + 1, sums), RMSFUSE_E_RANGE);
    sumsq_status("rmsfuse_plan_block_sumsq(empty, sums NULL)", rule,
                 rmsfuse_plan_block_sumsq(plan, 1.0, nb, nb, NULL), RMSFUSE_OK);
    if (nb)
        sumsq_status("rmsfuse_plan_block_sumsq(sums NULL)", rule, rmsfuse_plan_block_sumsq(plan, 1.0, 0, 1, NULL),
                     RMSFUSE_E_RANGE);
    sumsq_status("rmsfuse_plan_block_sumsq(scale NaN)", rule, rmsfuse_plan_block_sumsq(plan, NAN, 0, 0, sums),
                 RMSFUSE_E_GRAD_OPTIONS);
    free(sums);
    expect_unchanged(S, "rmsfuse_plan_block_sumsq", "the active ISA");
    *sum = acc;
    return sok;
}

/* rmsfuse_plan_run_ex over the ranges in the input's order (the plan made
 * under isa): with the input's options, or (plan_given) with the plan's sum
 * of squares given; step_ex's status and info on every range (an empty
 * range that would compute the norm only checks the options), and in the
 * end step_ex's bytes, or nothing written. */
static void plan_ex_runs(bufset *S, const call *c, const rmsfuse_plan *plan, const size_t *cut, const size_t *order,
                         size_t nr, const ex_spec *x, const ex_want *w, int have_sum, double plan_sum,
                         const char *isa, int edges)
{
    const rmsfuse_grad_options *opt = x->opt_null ? NULL : &x->o;
    rmsfuse_grad_options po;
    ex_want pw = *w;
    if (x->plan_given && opt && have_sum && options_valid(opt) && !(opt->flags & RMSFUSE_SUMSQ_GIVEN)) {
        po = *opt;
        po.flags |= RMSFUSE_SUMSQ_GIVEN;
        po.sumsq = plan_sum;
        opt = &po;
        ex_oracle(opt, c->t, c->count, &pw);
        if (pw.status != w->status || (pw.status == RMSFUSE_OK && (!same_float(pw.gs, w->gs) || !same_float(pw.gc, w->gc))))
            FAIL("harness: the plan's sum of squares %a changes step_ex (%d, gs %a; step_ex %d, gs %a)", plan_sum,
                 pw.status, (double)pw.gs, w->status, (double)w->gs);
    }
    const rmsfuse_grad_info sentinel = {-7.0, -7.0, -7};
    restore(S);
    if (edges) {
        rmsfuse_grad_info info = sentinel;
        int st = rmsfuse_plan_run_ex(plan, 1, 0, opt, &info);
        rmsfuse_fuzz_stats[FS_EX_PLAN_RUNS]++;
        if (st != RMSFUSE_E_RANGE)
            FAIL("%s rmsfuse_plan_run_ex(plan, 1, 0) returned %d, expected RMSFUSE_E_RANGE", rule_name[c->rule], st);
        check_info(c, "plan_run_ex on a bad range", isa, st, &info, &pw);
        st = rmsfuse_plan_run_ex(NULL, 0, 0, opt, &info);
        if (st != RMSFUSE_E_NULL_PLAN)
            FAIL("rmsfuse_plan_run_ex(NULL, ...) returned %d, expected RMSFUSE_E_NULL_PLAN", st);
        check_info(c, "plan_run_ex(NULL)", isa, st, &info, &pw);
        expect_unchanged(S, "rmsfuse_plan_run_ex on a bad range", isa);
    }
    for (size_t i = 0; i < nr; i++) {
        const size_t b = cut[order[i]], e = cut[order[i] + 1];
        const int quiet = b == e && pw.status != RMSFUSE_E_GRAD_OPTIONS && computes_norm(opt);
        const int want = quiet ? RMSFUSE_OK : pw.status;
        rmsfuse_grad_info info = sentinel;
        const int st = rmsfuse_plan_run_ex(plan, b, e, opt, x->info_null ? NULL : &info);
        rmsfuse_fuzz_stats[FS_EX_PLAN_RUNS]++;
        if (st != want)
            FAIL("%s rmsfuse_plan_run_ex(plan, %zu, %zu) under %s returned %d (%s), expected %d (%s)",
                 rule_name[c->rule], b, e, isa, st, rmsfuse_strerror(st), want, rmsfuse_strerror(want));
        if (!quiet)
            check_info(c, "plan_run_ex", isa, st, x->info_null ? NULL : &info, &pw);
    }
    if (pw.status == RMSFUSE_OK)
        compare_written(S, c, S->refx, "plan_run_ex over cuts", isa);
    else
        expect_unchanged(S, "a plan_run_ex that did not step", isa);
}

static int by_size(const void *x, const void *y)
{
    const size_t a = *(const size_t *)x, b = *(const size_t *)y;
    return (a > b) - (a < b);
}

/* A plan of the list (status: what step_multi returned): refused the same
 * way, or run over the input's cuts under every ISA. */
static void plan_case(bufset *S, const call *c, int status, const plan_spec *ps, const ex_spec *x, const ex_want *w)
{
    int have_sum = 0;
    double plan_sum = 0.0;
    static char sentinel;
    /* No place for the plan: refused, nothing written. */
    restore(S);
    int st = api_plan(c->rule, c->cfg, c->list, c->count, NULL);
    if (st != RMSFUSE_E_NULL_PLAN)
        FAIL("%s plan(..., NULL) returned %d, expected RMSFUSE_E_NULL_PLAN", rule_name[c->rule], st);
    expect_unchanged(S, "plan(..., NULL)", "the active ISA");
    if (status != RMSFUSE_OK) {
        rmsfuse_plan *plan = (rmsfuse_plan *)(void *)&sentinel;
        st = api_plan(c->rule, c->cfg, c->list, c->count, &plan);
        if (st != status)
            FAIL("%s plan returned %d (%s), step_multi %d (%s)", rule_name[c->rule], st, rmsfuse_strerror(st),
                 status, rmsfuse_strerror(status));
        if (plan != NULL)
            FAIL("%s plan failed (%d) but did not set *plan to NULL", rule_name[c->rule], st);
        expect_unchanged(S, "a refused plan", "the active ISA");
        return;
    }
    size_t total = 0;
    for (size_t k = 0; k < c->count; k++)
        total += c->t[k].n;
    for (int k = 0; k < n_isas; k++) {
        restore(S);
        set_isa(isas[k]);
        rmsfuse_plan *plan = (rmsfuse_plan *)(void *)&sentinel;
        st = api_plan(c->rule, c->cfg, c->list, c->count, &plan);
        if (st != RMSFUSE_OK || plan == NULL || plan == (rmsfuse_plan *)(void *)&sentinel)
            FAIL("%s plan under %s returned %d where step_multi succeeded", rule_name[c->rule], isas[k], st);
        rmsfuse_fuzz_stats[FS_PLANS]++;
        expect_unchanged(S, "making a plan", isas[k]);
        if (rmsfuse_plan_elements(plan) != total)
            FAIL("%s rmsfuse_plan_elements = %zu, the tensors have %zu", rule_name[c->rule],
                 rmsfuse_plan_elements(plan), total);
        if (k == 0)
            plan_edges(S, c, plan, total, ps);
        if (k == 0 && x)
            have_sum = plan_sums_checks(S, c, plan, x, &plan_sum);
        /* The ranges: the input's cuts (snapped through rmsfuse_plan_cut
         * when asked), run in the input's order. */
        size_t cut[9], m = 0;
        cut[m++] = 0;
        for (unsigned i = 0; i < ps->ncut; i++) {
            const size_t f = total ? ps->raw[i] % (total + 1) : 0;
            cut[m++] = ps->snap ? check_cut(plan, c, total, f) : f;
        }
        cut[m++] = total;
        qsort(cut, m, sizeof cut[0], by_size);
        const size_t nr = m - 1;
        size_t order[8], o = 0;
        if (ps->order == 2) { /* odd ranges, then even ones */
            for (size_t i = 1; i < nr; i += 2)
                order[o++] = i;
            for (size_t i = 0; i < nr; i += 2)
                order[o++] = i;
        }
        for (size_t i = 0; i < nr && ps->order != 2; i++)
            order[i] = ps->order == 0 ? i : ps->order == 1 ? nr - 1 - i : (i + nr / 2) % nr; /* forward, backward, from the middle */
        if (ps->switch_isa) /* the plan keeps its kernel */
            set_isa(isas[(k + 1) % n_isas]);
        for (size_t i = 0; i < nr; i++) {
            const size_t b = cut[order[i]], e = cut[order[i] + 1];
            st = rmsfuse_plan_run(plan, b, e);
            rmsfuse_fuzz_stats[FS_PLAN_RUNS]++;
            if (st != RMSFUSE_OK)
                FAIL("%s rmsfuse_plan_run(plan, %zu, %zu) returned %d (%zu elements)", rule_name[c->rule], b, e, st,
                     total);
        }
        compare_written(S, c, S->ref, "plan run over cuts", isas[k]);
        if (k == 0)
            for (int i = 0; i < S->count; i++)
                if (memcmp(S->p[i], S->ref[i], S->size[i]) != 0)
                    FAIL("%s scalar plan run differs from scalar step_multi (buffer %d)", rule_name[c->rule], i);
        if (ps->twice) { /* a plan is reusable: a second step */
            st = rmsfuse_plan_run(plan, 0, total);
            rmsfuse_fuzz_stats[FS_PLAN_RUNS]++;
            if (st != RMSFUSE_OK)
                FAIL("%s second rmsfuse_plan_run returned %d", rule_name[c->rule], st);
            compare_written(S, c, S->ref2, "plan run a second time", isas[k]);
        }
        if (x)
            plan_ex_runs(S, c, plan, cut, order, nr, x, w, have_sum, plan_sum, isas[k], k == 0);
        rmsfuse_plan_free(plan);
    }
}

/* ---- storage types: typed steps (docs/math.md, "Storage types") ----------------- */
/* The conversions, written out from docs/math.md's bit-level definitions. */
static uint32_t f_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float bits_f(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static uint64_t sr_mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* r(i) of docs/math.md, "Stochastic rounding". */
static uint32_t sr_r(uint64_t seed, uint64_t step, uint64_t stream, uint64_t i)
{
    const uint64_t K = sr_mix64(sr_mix64(sr_mix64(seed) ^ step) ^ stream), K2 = sr_mix64(K ^ (i >> 32));
    return mix32((uint32_t)(i + K2));
}

static uint16_t to_bf16(float x, int sr, uint32_t r)
{
    const uint32_t u = f_bits(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((u >> 16) | 0x0040u);
    return (uint16_t)((u + (sr ? r >> 16 : 0x7FFFu + ((u >> 16) & 1u))) >> 16);
}

/* round_shift: m / 2^sh, to nearest even (or with random bits r), sh >= 1. */
static uint32_t shift_round(uint32_t m, uint32_t sh, int sr, uint32_t r)
{
    const uint32_t t = sh < 31u ? sh : 31u, m2 = m >> (sh - t < 31u ? sh - t : 31u);
    const uint32_t b = sr ? r & ((1u << t) - 1u) : (1u << (t - 1u)) - 1u + ((m2 >> t) & 1u);
    return (m2 + b) >> t;
}

static uint16_t to_f16(float x, int sr, uint32_t r)
{
    const uint32_t u = f_bits(x), S = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu, e = a >> 23;
    if (a > 0x7F800000u)
        return (uint16_t)(S | 0x7E00u | ((a >> 13) & 0x3FFu));
    if (a >= 0x47800000u)
        return (uint16_t)(S | 0x7C00u);
    if (e >= 113u)
        return (uint16_t)(S | ((a - 0x38000000u + (sr ? r & 0x1FFFu : 0xFFFu + ((a >> 13) & 1u))) >> 13));
    const uint32_t m = (a & 0x7FFFFFu) | (e ? 0x800000u : 0u);
    return (uint16_t)(S | shift_round(m, 126u - (e > 1u ? e : 1u), sr, r));
}

static float from_f16(uint16_t h)
{
    const uint32_t S = (uint32_t)(h & 0x8000u) << 16, E = (h >> 10) & 31u, M = h & 0x3FFu;
    if (E == 31u)
        return bits_f(S | 0x7F800000u | M << 13);
    if (E > 0u)
        return bits_f(S | (E + 112u) << 23 | M << 13);
    return bits_f(S | f_bits((float)M * 0x1p-24f));
}

/* The 8-bit code of x in a block with multiplier q (docs/math.md, steps 2, 3). */
static unsigned q8_code_of(int type, int nonneg, float x, float q)
{
    uint32_t a = f_bits(x * q) & 0x7FFFFFFFu;
    if (a > 0x7F800000u)
        return nonneg ? 0xFFu : type == RMSFUSE_Q8 ? 0x7Fu : 0x80u;
    if (a > 0x3F800000u)
        a = 0x3F800000u; /* |y| <= 1 */
    const unsigned sign = !nonneg && (f_bits(x) >> 31) ? 0x80u : 0u;
    if (type == RMSFUSE_Q8) {
        const uint32_t B = nonneg ? 31u : 15u, e = a >> 23;
        uint32_t c;
        if (a >= (128u - B) << 23) {
            c = ((a + 0x7FFFFu + ((a >> 20) & 1u)) >> 20) - ((127u - B) << 3);
        } else {
            const uint32_t m = (a & 0x7FFFFFu) | (e ? 0x800000u : 0u);
            c = shift_round(m, 148u - B - (e > 1u ? e : 1u), 0, 0);
        }
        return sign | c;
    }
    const unsigned c = (unsigned)nearbyintf(bits_f(a) * (nonneg ? 254.0f : 127.0f));
    return sign ? (256u - c) & 0xFFu : c;
}

static float q8_value_of(int type, int nonneg, unsigned c, float scale)
{
    if (type == RMSFUSE_Q8) {
        const uint32_t B = nonneg ? 31u : 15u, mag = nonneg ? c : c & 0x7Fu, E = mag >> 3, M = mag & 7u;
        if (mag == (nonneg ? 0xFFu : 0x7Fu))
            return NAN;
        float v = E ? bits_f((E + 127u - B) << 23 | M << 20) : (float)M * bits_f((125u - B) << 23);
        if (!nonneg && (c & 0x80u))
            v = -v;
        return v * scale;
    }
    if (nonneg)
        return c == 255u ? NAN : (float)c * (scale * (1.0f / 254.0f));
    return c == 0x80u ? NAN : (float)(int)(c >= 128u ? (int)c - 256 : (int)c) * (scale * (1.0f / 127.0f));
}

/* The typed case's spec (see the input format). */
typedef struct typed_spec {
    unsigned ptype, gtype, stype, flags, bad, null_kind, null_at, raw, unsnapped;
    uint64_t seed, step;
} typed_spec;

static const unsigned state_types[4] = {RMSFUSE_F32, RMSFUSE_BF16, RMSFUSE_Q8, RMSFUSE_Q8_LINEAR};

static void read_typed_spec(reader *r, typed_spec *ts)
{
    const unsigned b0 = u8(r), b1 = u8(r), b2 = u8(r), b3 = u8(r), b4 = u8(r);
    ts->ptype = b0 & 3u;
    ts->gtype = (b0 >> 2) & 3u; /* 3: RMSFUSE_Q8 (refused) */
    if (ts->gtype == 3u)
        ts->gtype = RMSFUSE_Q8;
    ts->stype = state_types[(b0 >> 4) & 3u];
    ts->flags = ((b0 >> 6) & 1u ? RMSFUSE_MASTER_WEIGHTS : 0u) | ((b0 >> 7) & 1u ? RMSFUSE_STOCHASTIC_ROUNDING : 0u);
    ts->bad = b1 & 7u;
    ts->null_kind = (b1 >> 3) & 3u;
    ts->null_at = b1 >> 5;
    ts->raw = b2 & 3u;
    ts->unsnapped = (b2 >> 2) & 1u;
    ts->seed = b3 * 0x9E3779B97F4A7C15ull;
    ts->step = b4;
}

/* A storage the library has (rmsfuse_common.h). */
static int storage_ok(const rmsfuse_storage *st)
{
    const int narrow = st->param == RMSFUSE_BF16 || st->param == RMSFUSE_F16;
    return st->param <= RMSFUSE_SPLIT_BF16 && st->grad <= RMSFUSE_F16 &&
           (st->state == RMSFUSE_F32 || st->state == RMSFUSE_BF16 || st->state == RMSFUSE_Q8 ||
            st->state == RMSFUSE_Q8_LINEAR) &&
           !(st->flags & ~(unsigned)(RMSFUSE_MASTER_WEIGHTS | RMSFUSE_STOCHASTIC_ROUNDING)) && (!st->flags || narrow);
}

static size_t tbytes(unsigned type)
{
    return type == RMSFUSE_F32 ? 4 : type == RMSFUSE_Q8 || type == RMSFUSE_Q8_LINEAR ? 1 : 2;
}

static int tq8(unsigned type)
{
    return type == RMSFUSE_Q8 || type == RMSFUSE_Q8_LINEAR;
}

/* The unsigned 8-bit map: square averages, second moments, AdaGrad's sum. */
static int state_nonneg(int rule, int j)
{
    return (rule == RMSPROP || rule == ADAGRAD) ? j == 2 : rule == ADAM ? j == 3 || j == 4 : 0;
}

/* Where a typed tensor's arrays are: a harness buffer each (-1: none), the
 * array `mis` bytes into it. */
typedef struct ttensor {
    int bi[MAXS], ebi, sbi[MAXS];
    size_t mis[MAXS], emis;
} ttensor;

static rmsfuse_typed_tensor tt_list[MAX_LIST];
static ttensor tt_at[MAX_LIST];

static int api_typed(int rule, const anycfg *c, const rmsfuse_storage *st, const rmsfuse_typed_tensor *t, size_t count,
                     int op, rmsfuse_plan **plan)
{
    switch (rule) {
    case RMSPROP:
        return op == 0 ? rmsfuse_rmsprop_step_typed(c ? &c->rmsprop : NULL, st, t, count, NULL, NULL)
               : op == 1 ? rmsfuse_rmsprop_check_typed(c ? &c->rmsprop : NULL, st, t, count)
                         : rmsfuse_rmsprop_plan_typed(c ? &c->rmsprop : NULL, st, t, count, plan);
    case ADAGRAD:
        return op == 0 ? rmsfuse_adagrad_step_typed(c ? &c->adagrad : NULL, st, t, count, NULL, NULL)
               : op == 1 ? rmsfuse_adagrad_check_typed(c ? &c->adagrad : NULL, st, t, count)
                         : rmsfuse_adagrad_plan_typed(c ? &c->adagrad : NULL, st, t, count, plan);
    case SGD:
        return op == 0 ? rmsfuse_sgd_step_typed(c ? &c->sgd : NULL, st, t, count, NULL, NULL)
               : op == 1 ? rmsfuse_sgd_check_typed(c ? &c->sgd : NULL, st, t, count)
                         : rmsfuse_sgd_plan_typed(c ? &c->sgd : NULL, st, t, count, plan);
    default:
        return op == 0 ? rmsfuse_adam_step_typed(c ? &c->adam : NULL, st, t, count, NULL, NULL)
               : op == 1 ? rmsfuse_adam_check_typed(c ? &c->adam : NULL, st, t, count)
                         : rmsfuse_adam_plan_typed(c ? &c->adam : NULL, st, t, count, plan);
    }
}

static unsigned char *tt_ptr(const bufset *S, int bi, size_t mis)
{
    return bi < 0 ? NULL : S->p[bi] + mis;
}

/* A buffer for a typed array of `bytes` (its data bytes as the list's), at a
 * misalignment of 0..3 bytes (scales: 0). */
static int tt_buf(bufset *S, size_t bytes, size_t mis)
{
    return new_buf(S, mis + bytes);
}

/* The expected element values of the typed step, from the inputs (S->snap):
 * each array decoded, docs/math.md's op order (spec_elem), each written
 * array encoded; into exp[] (copies of the buffers). */
static void typed_oracle(const bufset *S, const call *c, const rmsfuse_storage *st, unsigned char **exp)
{
    spec k;
    spec_init(c->rule, c->g, &k);
    int use[MAXS];
    used_slots(c->rule, c->g, use);
    const int master = (st->flags & RMSFUSE_MASTER_WEIGHTS) != 0, sr = (st->flags & RMSFUSE_STOCHASTIC_ROUNDING) != 0;
    for (int i = 0; i < S->count; i++)
        exp[i] = dup_or_reuse(exp[i], S->snap[i], S->size[i]);
    for (size_t ti = 0; ti < c->count; ti++) {
        const size_t n = c->t[ti].n;
        const ttensor *A = &tt_at[ti];
        if (!n)
            continue;
        float *x = malloc(n * MAXS * sizeof(float));
        if (!x)
            FAIL("harness: out of memory");
        for (int j = 0; j < MAXS; j++) {
            if (!use[j])
                continue;
            const unsigned type = j == P ? st->param : j == G ? st->grad : st->state;
            const unsigned char *p = S->snap[A->bi[j]] + A->mis[j];
            for (size_t e = 0; e < n; e++) {
                float v;
                if (j == P && master) {
                    memcpy(&v, S->snap[A->ebi] + A->emis + 4 * e, 4);
                } else if (type == RMSFUSE_SPLIT_BF16) {
                    uint16_t hi, lo;
                    memcpy(&hi, p + 2 * e, 2);
                    memcpy(&lo, S->snap[A->ebi] + A->emis + 2 * e, 2);
                    v = bits_f((uint32_t)hi << 16 | lo);
                } else if (type == RMSFUSE_BF16 || type == RMSFUSE_F16) {
                    uint16_t h;
                    memcpy(&h, p + 2 * e, 2);
                    v = type == RMSFUSE_BF16 ? bits_f((uint32_t)h << 16) : from_f16(h);
                } else if (tq8(type)) {
                    float sc;
                    memcpy(&sc, S->snap[A->sbi[j]] + 4 * (e / RMSFUSE_Q8_BLOCK), 4);
                    v = q8_value_of((int)type, state_nonneg(c->rule, j), p[e], sc);
                } else {
                    memcpy(&v, p + 4 * e, 4);
                }
                x[j * n + e] = v;
            }
        }
        for (size_t e = 0; e < n; e++) {
            float y[MAXS] = {0};
            for (int j = 0; j < MAXS; j++)
                if (use[j])
                    y[j] = x[j * n + e];
            spec_elem(&k, y);
            for (int j = 0; j < MAXS; j++)
                if (use[j] && j != G)
                    x[j * n + e] = y[j];
        }
        for (int j = 0; j < MAXS; j++) {
            if (!use[j] || j == G)
                continue;
            const unsigned type = j == P ? st->param : st->state;
            unsigned char *p = exp[A->bi[j]] + A->mis[j];
            const float *v = x + j * n;
            if (j == P && master)
                memcpy(exp[A->ebi] + A->emis, v, 4 * n);
            for (size_t b = 0; b < n; b += RMSFUSE_Q8_BLOCK) { /* 8-bit: block by block */
                const size_t m = n - b < RMSFUSE_Q8_BLOCK ? n - b : RMSFUSE_Q8_BLOCK;
                float q = 0.0f;
                if (tq8(type)) {
                    float amax = 0.0f;
                    for (size_t e = b; e < b + m; e++)
                        if (fabsf(v[e]) > amax) /* NaN: false */
                            amax = fabsf(v[e]);
                    const float scale = amax >= FLT_MIN ? amax : 0.0f;
                    q = amax >= FLT_MIN ? 1.0f / amax : 0.0f;
                    memcpy(exp[A->sbi[j]] + 4 * (b / RMSFUSE_Q8_BLOCK), &scale, 4);
                }
                for (size_t e = b; e < b + m; e++) {
                    const uint32_t r = sr && j == P ? sr_r(st->seed, st->step, ti, e) : 0u;
                    uint16_t h;
                    switch (type) {
                    case RMSFUSE_F32:
                        memcpy(p + 4 * e, &v[e], 4);
                        break;
                    case RMSFUSE_BF16:
                        h = to_bf16(v[e], sr && j == P, r);
                        memcpy(p + 2 * e, &h, 2);
                        break;
                    case RMSFUSE_F16:
                        h = to_f16(v[e], sr && j == P, r);
                        memcpy(p + 2 * e, &h, 2);
                        break;
                    case RMSFUSE_SPLIT_BF16:
                        h = (uint16_t)(f_bits(v[e]) >> 16);
                        memcpy(p + 2 * e, &h, 2);
                        h = (uint16_t)f_bits(v[e]);
                        memcpy(exp[A->ebi] + A->emis + 2 * e, &h, 2);
                        break;
                    default:
                        p[e] = (unsigned char)q8_code_of((int)type, state_nonneg(c->rule, j), v[e], q);
                        break;
                    }
                }
            }
        }
        free(x);
    }
}

/* After an accepted typed call: every buffer as `want`, the typed arrays
 * element by element (2-byte values and floats: NaN-ness for NaNs; 8-bit
 * codes and scales exactly), every other byte exactly. */
static void typed_compare(const bufset *S, const call *c, const rmsfuse_storage *st, unsigned char *const *want,
                          int first, const char *what, const char *isa)
{
    int use[MAXS];
    used_slots(c->rule, c->g, use);
    for (size_t ti = 0; ti < c->count; ti++)
        for (int j = 0; j < MAXS; j++)
            if (use[j] && j != G)
                rmsfuse_fuzz_stats[FS_TYPED_FLOATS] += c->t[ti].n;
    for (int i = 0; i < S->count; i++) {
        if (i < first) { /* the float list's buffers: untouched */
            if (memcmp(S->p[i], want[i], S->size[i]) != 0)
                FAIL("%s typed %s under %s changed buffer %d of the float list", rule_name[c->rule], what, isa, i);
            continue;
        }
        if (memcmp(S->p[i], want[i], S->size[i]) == 0)
            continue;
        /* which typed array: compare its elements (the bytes before it exactly) */
        int found = 0;
        for (size_t ti = 0; ti < c->count && !found; ti++) {
            const ttensor *A = &tt_at[ti];
            const size_t n = c->t[ti].n;
            for (int j = 0; j < MAXS && !found; j++) {
                if (!use[j] || j == G || !n)
                    continue;
                const unsigned type = j == P ? st->param : st->state;
                const int master = j == P && (st->flags & RMSFUSE_MASTER_WEIGHTS);
                const int pair = type == RMSFUSE_SPLIT_BF16;
                int which = A->bi[j] == i ? 0 : (master || pair) && A->ebi == i ? 1 : -1;
                if (which < 0)
                    continue;
                found = 1;
                const size_t mis = which ? A->emis : A->mis[j];
                if (memcmp(S->p[i], want[i], mis) != 0)
                    FAIL("%s typed %s under %s: a byte before a typed array changed", rule_name[c->rule], what, isa);
                for (size_t e = 0; e < n; e++) {
                    float x, y;
                    const unsigned char *gp = S->p[i] + mis, *wp = want[i] + mis;
                    if (which && master) {
                        memcpy(&x, gp + 4 * e, 4), memcpy(&y, wp + 4 * e, 4);
                    } else if (pair) { /* the pair as one float */
                        uint16_t h1, l1, h2, l2;
                        memcpy(&h1, S->p[A->bi[j]] + A->mis[j] + 2 * e, 2);
                        memcpy(&h2, want[A->bi[j]] + A->mis[j] + 2 * e, 2);
                        memcpy(&l1, S->p[A->ebi] + A->emis + 2 * e, 2);
                        memcpy(&l2, want[A->ebi] + A->emis + 2 * e, 2);
                        x = bits_f((uint32_t)h1 << 16 | l1), y = bits_f((uint32_t)h2 << 16 | l2);
                    } else if (type == RMSFUSE_BF16 || type == RMSFUSE_F16) {
                        uint16_t h1, h2;
                        memcpy(&h1, gp + 2 * e, 2), memcpy(&h2, wp + 2 * e, 2);
                        x = type == RMSFUSE_BF16 ? bits_f((uint32_t)h1 << 16) : from_f16(h1);
                        y = type == RMSFUSE_BF16 ? bits_f((uint32_t)h2 << 16) : from_f16(h2);
                    } else if (tq8(type)) {
                        if (gp[e] != wp[e])
                            FAIL("%s typed %s under %s: tensor %zu %s[%zu] code %#x, expected %#x (%s)",
                                 rule_name[c->rule], what, isa, ti, slot_name[c->rule][j], e, gp[e], wp[e],
                                 type == RMSFUSE_Q8 ? "q8" : "q8 linear");
                        continue;
                    } else {
                        memcpy(&x, gp + 4 * e, 4), memcpy(&y, wp + 4 * e, 4);
                    }
                    if (!same_float(x, y))
                        FAIL("%s typed %s under %s: tensor %zu %s%s[%zu] = %a, expected %a (param type %u, state %u, "
                             "flags %#x)",
                             rule_name[c->rule], what, isa, ti, slot_name[c->rule][j], which ? " (extra)" : "", e,
                             (double)x, (double)y, st->param, st->state, st->flags);
                }
            }
        }
        if (!found) /* a grad, an unused array, or block scales: exactly */
            for (size_t k = 0; k < S->size[i]; k++)
                if (S->p[i][k] != want[i][k])
                    FAIL("%s typed %s under %s: byte %zu of buffer %d (a gradient, block scales or unused) is %#x, "
                         "expected %#x",
                         rule_name[c->rule], what, isa, k, i, S->p[i][k], want[i][k]);
    }
}

/* Whether plan element f is a block boundary of its tensor (docs: ranges
 * of a plan with 8-bit state start and end there). */
static int typed_at_block(const call *c, size_t f)
{
    size_t first = 0;
    for (size_t k = 0; k < c->count; k++) {
        if (f < first + c->t[k].n)
            return (f - first) % RMSFUSE_Q8_BLOCK == 0;
        first += c->t[k].n;
    }
    return 1;
}

/*
 * A typed step of the list's shapes (after the float list's checks; only
 * when the float list was accepted, or refused for its configuration): its
 * own arrays, each in a harness buffer, from the list's float values
 * converted (or raw data bytes: codes, halves, scales), the storage and an
 * injected error from the spec.  Under every ISA: check_typed, step_typed
 * and plan_typed return the documented status, write nothing when they
 * refuse, and an accepted step writes the oracle's values (typed_oracle)
 * and nothing else; a plan over the input's cuts (snapped with
 * rmsfuse_plan_cut, or not: then a range inside a block of 8-bit state is
 * RMSFUSE_E_BLOCK) writes them too; rmsfuse_grad_sumsq_typed is the sum of
 * squares of the decoded gradients in the norm's order.
 */
static void typed_case(bufset *S, const call *c, int cfg_status, int list_status, const plan_spec *ps,
                       const typed_spec *ts, int list_null)
{
    rmsfuse_storage st = rmsfuse_storage_f32();
    st.param = ts->ptype;
    st.grad = ts->gtype;
    st.state = ts->stype;
    st.flags = ts->flags;
    st.seed = ts->seed;
    st.step = ts->step;
    switch (ts->bad) { /* one storage error, or none */
    case 1: st.state = RMSFUSE_F16; break;
    case 2: st.param = RMSFUSE_Q8; break;
    case 3: st.param = 9u; break;
    case 4: st.grad = RMSFUSE_SPLIT_BF16; break;
    case 5: st.flags |= 4u; break;
    default: break;
    }
    const rmsfuse_storage *stp = ts->bad == 6 ? NULL : &st;
    const int valid = stp && storage_ok(stp);
    if (cfg_status != RMSFUSE_OK) { /* the configuration first, whatever the arrays */
        memset(tt_list, 0, c->count * sizeof tt_list[0]);
        for (size_t k = 0; k < c->count; k++)
            tt_list[k].n = c->t[k].n;
        for (int op = 0; op < 3; op++) {
            rmsfuse_plan *plan = (rmsfuse_plan *)(void *)&tt_at;
            const int got = api_typed(c->rule, c->cfg, stp, list_null ? NULL : tt_list, c->count, op, &plan);
            if (got != cfg_status || (op == 2 && plan != NULL))
                FAIL("%s typed call %d with a bad configuration returned %d, check_config %d", rule_name[c->rule], op,
                     got, cfg_status);
        }
        rmsfuse_fuzz_stats[FS_TYPED_REJECTED]++;
        return;
    }
    if (list_status != RMSFUSE_OK && !(list_null && list_status == RMSFUSE_E_NULL_LIST))
        return; /* the float list's arrays are not all readable */
    int use[MAXS];
    used_slots(c->rule, c->g, use);
    const int master = (st.flags & RMSFUSE_MASTER_WEIGHTS) != 0, split = st.param == RMSFUSE_SPLIT_BF16;
    const int valid_types = st.param <= RMSFUSE_SPLIT_BF16 && st.grad <= RMSFUSE_F16 && !tq8(st.grad);
    restore(S);
    const int first = S->count; /* the typed buffers come after the float list's */
    int null_done = 0;
    for (size_t ti = 0; ti < c->count; ti++) {
        const gtensor *t = &c->t[ti];
        ttensor *A = &tt_at[ti];
        rmsfuse_typed_tensor *x = &tt_list[ti];
        memset(x, 0, sizeof *x);
        x->n = t->n;
        x->stream = ti;
        A->ebi = -1;
        A->emis = 0;
        for (int j = 0; j < MAXS; j++)
            A->bi[j] = A->sbi[j] = -1, A->mis[j] = 0;
        if (!t->n || !valid_types || list_null)
            continue;
        const size_t n = t->n;
        for (int j = 0; j < MAXS; j++) {
            if (!use[j])
                continue;
            const unsigned type = j == P ? st.param : j == G ? st.grad : st.state;
            const size_t mis = (ti + (size_t)j) % 4;
            A->mis[j] = mis;
            A->bi[j] = tt_buf(S, n * tbytes(type == RMSFUSE_SPLIT_BF16 ? RMSFUSE_BF16 : type), mis);
            unsigned char *p = S->p[A->bi[j]] + mis;
            const float *f = t->a[j];
            if (j == P && (master || split)) {
                A->emis = (ti + 1) % 4;
                A->ebi = tt_buf(S, n * (master ? 4 : 2), A->emis);
                x->param_extra = S->p[A->ebi] + A->emis;
            }
            if (j >= 2 && tq8(type)) {
                A->sbi[j] = tt_buf(S, 4 * ((n + RMSFUSE_Q8_BLOCK - 1) / RMSFUSE_Q8_BLOCK), 0);
                x->scale[j - 2] = (float *)(void *)S->p[A->sbi[j]];
            }
            if (ts->raw == 1)
                continue; /* the data bytes as they are */
            /* the list's float values, converted (the list was accepted: readable) */
            for (size_t b = 0; b < n; b += RMSFUSE_Q8_BLOCK) {
                const size_t m = n - b < RMSFUSE_Q8_BLOCK ? n - b : RMSFUSE_Q8_BLOCK;
                if (tq8(type) && ts->raw == 2 && (b / RMSFUSE_Q8_BLOCK) % 2)
                    continue; /* every other block: raw codes and scale */
                float q = 0.0f;
                if (tq8(type)) {
                    float amax = 0.0f;
                    for (size_t e = b; e < b + m; e++)
                        if (fabsf(float_at((const unsigned char *)f, 4 * e)) > amax)
                            amax = fabsf(float_at((const unsigned char *)f, 4 * e));
                    const float scale = amax >= FLT_MIN ? amax : 0.0f;
                    q = amax >= FLT_MIN ? 1.0f / amax : 0.0f;
                    memcpy(S->p[A->sbi[j]] + 4 * (b / RMSFUSE_Q8_BLOCK), &scale, 4);
                }
                for (size_t e = b; e < b + m; e++) {
                    const float v = float_at((const unsigned char *)f, 4 * e);
                    uint16_t h;
                    if (j == P && master) {
                        memcpy(S->p[A->ebi] + A->emis + 4 * e, &v, 4);
                    } else if (type == RMSFUSE_F32) {
                        memcpy(p + 4 * e, &v, 4);
                    } else if (type == RMSFUSE_SPLIT_BF16) {
                        h = (uint16_t)(f_bits(v) >> 16);
                        memcpy(p + 2 * e, &h, 2);
                        h = (uint16_t)f_bits(v);
                        memcpy(S->p[A->ebi] + A->emis + 2 * e, &h, 2);
                    } else if (type == RMSFUSE_BF16 || type == RMSFUSE_F16) {
                        h = type == RMSFUSE_BF16 ? to_bf16(v, 0, 0) : to_f16(v, 0, 0);
                        memcpy(p + 2 * e, &h, 2);
                    } else {
                        p[e] = (unsigned char)q8_code_of((int)type, state_nonneg(c->rule, j), v, q);
                    }
                }
            }
        }
        x->param = tt_ptr(S, A->bi[P], A->mis[P]);
        x->grad = tt_ptr(S, A->bi[G], A->mis[G]);
        for (int j = 2; j < MAXS; j++)
            x->state[j - 2] = tt_ptr(S, A->bi[j], A->mis[j]);
        /* the injected NULL: tensor null_at's extra, or its first 8-bit scale */
        if (!null_done && ts->null_kind && ti == ts->null_at % c->count) {
            if (ts->null_kind == 1 && x->param_extra) {
                x->param_extra = NULL;
                null_done = 1;
            }
            for (int j = 2; j < MAXS && ts->null_kind == 2 && !null_done; j++)
                if (x->scale[j - 2]) {
                    x->scale[j - 2] = NULL;
                    null_done = 1;
                }
        }
    }
    snapshot(S); /* the float buffers as restored, and the typed ones */
    /* the documented status */
    int want = RMSFUSE_OK;
    if (!valid)
        want = RMSFUSE_E_STORAGE;
    else if (c->count && list_null)
        want = RMSFUSE_E_NULL_LIST;
    else if (null_done)
        want = RMSFUSE_E_NULL_ARRAY;
    const rmsfuse_typed_tensor *tl = list_null ? NULL : tt_list;
    static unsigned char *exp[MAX_BUFS];
    for (int i = 0; i < S->count; i++)
        exp[i] = NULL;
    if (want == RMSFUSE_OK)
        typed_oracle(S, c, &st, exp);
    if (verbose)
        fprintf(stderr, "fuzz_rules: %s typed step, storage %s{param %u, grad %u, state %u, flags %#x}: %s\n",
                rule_name[c->rule], stp ? "" : "NULL ", st.param, st.grad, st.state, st.flags,
                want ? rmsfuse_status_name(want) : "RMSFUSE_OK");
    size_t total = 0;
    for (size_t k = 0; k < c->count; k++)
        total += c->t[k].n;
    const int q8 = tq8(st.state) && (use[2] || use[3] || use[4]);
    for (int k = 0; k < n_isas; k++) {
        restore(S);
        set_isa(isas[k]);
        int got = api_typed(c->rule, c->cfg, stp, tl, c->count, 1, NULL);
        if (got != want)
            FAIL("%s check_typed under %s returned %d (%s), expected %d (%s)", rule_name[c->rule], isas[k], got,
                 rmsfuse_strerror(got), want, rmsfuse_strerror(want));
        expect_unchanged(S, "check_typed", isas[k]);
        got = api_typed(c->rule, c->cfg, stp, tl, c->count, 0, NULL);
        if (got != want)
            FAIL("%s step_typed under %s returned %d (%s), expected %d (%s)", rule_name[c->rule], isas[k], got,
                 rmsfuse_strerror(got), want, rmsfuse_strerror(want));
        rmsfuse_fuzz_stats[want == RMSFUSE_OK ? FS_TYPED : FS_TYPED_REJECTED]++;
        if (want != RMSFUSE_OK) {
            expect_unchanged(S, "a refused step_typed", isas[k]);
            rmsfuse_plan *plan = (rmsfuse_plan *)(void *)&exp;
            got = api_typed(c->rule, c->cfg, stp, tl, c->count, 2, &plan);
            if (got != want || plan != NULL)
                FAIL("%s plan_typed returned %d (plan %p), expected %d and NULL", rule_name[c->rule], got,
                     (void *)plan, want);
            expect_unchanged(S, "a refused plan_typed", isas[k]);
            continue;
        }
        typed_compare(S, c, &st, exp, first, "step", isas[k]);
        if (k == 0 && c->count) { /* the sum of squares of the decoded gradients */
            double got_sum = 0.0, want_sum = 0.0;
            if (rmsfuse_grad_sumsq_typed(&st, tl, c->count, 0.75, &got_sum) != RMSFUSE_OK)
                FAIL("%s rmsfuse_grad_sumsq_typed refused an accepted list", rule_name[c->rule]);
            float *g = NULL;
            for (size_t ti = 0; ti < c->count; ti++) {
                const size_t n = c->t[ti].n;
                if (!n)
                    continue;
                g = realloc(g, 4 * n);
                if (!g)
                    FAIL("harness: out of memory");
                for (size_t e = 0; e < n; e++) {
                    const unsigned char *gp = S->snap[tt_at[ti].bi[G]] + tt_at[ti].mis[G];
                    uint16_t h;
                    if (st.grad == RMSFUSE_F32)
                        memcpy(&g[e], gp + 4 * e, 4);
                    else
                        memcpy(&h, gp + 2 * e, 2), g[e] = st.grad == RMSFUSE_BF16 ? bits_f((uint32_t)h << 16) : from_f16(h);
                }
                for (size_t b = 0; b < blocks_of(n); b++)
                    want_sum += oracle_block((const unsigned char *)g + 4 * b * NORM_BLOCK, block_len(n, b), 0.75f);
            }
            free(g);
            if (!same_double(got_sum, want_sum))
                FAIL("%s rmsfuse_grad_sumsq_typed = %a, the decoded gradients' %a", rule_name[c->rule], got_sum,
                     want_sum);
        }
        /* a plan over the input's cuts */
        restore(S);
        rmsfuse_plan *plan = NULL;
        got = api_typed(c->rule, c->cfg, stp, tl, c->count, 2, &plan);
        if (got != RMSFUSE_OK || !plan || rmsfuse_plan_elements(plan) != total)
            FAIL("%s plan_typed under %s returned %d", rule_name[c->rule], isas[k], got);
        expect_unchanged(S, "plan_typed", isas[k]);
        size_t cut[9], m = 0;
        cut[m++] = 0;
        for (unsigned i = 0; i < ps->ncut; i++) {
            const size_t f = total ? ps->raw[i] % (total + 1) : 0;
            const size_t snapped = rmsfuse_plan_cut(plan, f);
            if (snapped < f || snapped > total || (q8 && !typed_at_block(c, snapped)))
                FAIL("%s typed rmsfuse_plan_cut(%zu) = %zu: not a block boundary", rule_name[c->rule], f, snapped);
            cut[m++] = ts->unsnapped ? f : snapped;
        }
        cut[m++] = total;
        qsort(cut, m, sizeof cut[0], by_size);
        int refused = 0;
        for (size_t i = 0; i + 1 < m; i++) {
            const size_t b = cut[m - 2 - i], e = cut[m - 1 - i]; /* backward */
            const int bad = q8 && b < e && (!typed_at_block(c, b) || !typed_at_block(c, e));
            got = rmsfuse_plan_run(plan, b, e);
            if (got != (bad ? RMSFUSE_E_BLOCK : RMSFUSE_OK))
                FAIL("%s typed rmsfuse_plan_run(%zu, %zu) under %s returned %d, expected %d", rule_name[c->rule], b, e,
                     isas[k], got, bad ? RMSFUSE_E_BLOCK : RMSFUSE_OK);
            refused |= bad;
            rmsfuse_fuzz_stats[FS_TYPED_BLOCKED] += (unsigned)bad;
        }
        rmsfuse_fuzz_stats[FS_TYPED_PLANS]++;
        if (!refused)
            typed_compare(S, c, &st, exp, first, "plan over cuts", isas[k]);
        rmsfuse_plan_free(plan);
    }
    for (int i = 0; i < S->count; i++)
        free(exp[i]);
}

/* ---- the target ------------------------------------------------------------------ */
static const char *const what_single = "step";
static const char *const what_multi = "step_multi";

static const char *cfg_text(int rule, const gcfg *g)
{
    static char buf[512];
    if (!g)
        return "cfg NULL";
    int at = 0;
    for (int k = 0; k < 5 && at < 400; k++)
        if (hyper_name[rule][k][0] != '-')
            at += snprintf(buf + at, sizeof buf - (size_t)at, "%s %a, ", hyper_name[rule][k], g->h[k]);
    snprintf(buf + at, sizeof buf - (size_t)at, "step %lld, flags %#x", g->step, g->flags);
    return buf;
}

/* The status a check function returns: in the expected set, and
 * check_config's when cfg is wrong. */
static void check_status(const char *fn, int rule, const gcfg *g, int st, sset expect, int cfg_status)
{
    if (!in_set(st, expect))
        FAIL("%s %s returned %d (%s), expected %s; %s", rule_name[rule], fn, st, rmsfuse_strerror(st),
             set_text(expect), cfg_text(rule, g));
    if (cfg_status != RMSFUSE_OK && st != cfg_status)
        FAIL("%s %s returned %d, check_config %d", rule_name[rule], fn, st, cfg_status);
    if (st != RMSFUSE_OK && !rmsfuse_status_name(st))
        FAIL("rmsfuse_status_name(%d) is NULL", st);
}

static void single_case(reader *r, bufset *S, int rule, const anycfg *cfg, const gcfg *g, int cfg_status)
{
    slot_list L;
    L.count = 0;
    gtensor t;
    int huge;
    read_tensor(r, S, &L, rule, MAX_N_SINGLE, ARENA_SINGLE, &t, &huge);
    const sset expect = expect_list(rule, g, &t, 1, 0);
    if (expect == 0 && huge) /* never: see huge_table */
        FAIL("harness: a huge n (%zu) would be accepted", t.n);
    snapshot(S);
    const int chk = api_check(rule, cfg, &t);
    check_status("check", rule, g, chk, expect, cfg_status);
    expect_unchanged(S, "check", "the active ISA");
    const call c = {what_single, rule, cfg, g, &t, 1, NULL, 0};
    run_steps(S, &c, chk, 0);
}

static void list_case(reader *r, bufset *S, int rule, const anycfg *cfg, const gcfg *g, int cfg_status, int longl,
                      int null_list, int ex, int typed)
{
    static gtensor t[MAX_LIST];
    size_t count = 0;
    int any_huge = 0;
    if (longl) {
        count = read_long_list(r, S, rule, t);
        rmsfuse_fuzz_stats[FS_LONG]++;
    } else {
        slot_list L;
        L.count = 0;
        count = u8(r) % (MAX_TENSORS + 1);
        for (size_t k = 0; k < count; k++) {
            int huge;
            read_tensor(r, S, &L, rule, MAX_N_LIST, ARENA_LIST, &t[k], &huge);
            any_huge |= huge && t[k].n;
        }
    }
    plan_spec ps;
    read_plan_spec(r, &ps);
    ex_spec x;
    if (ex) {
        read_ex_spec(r, &x);
        inject_special(S, t, count, &x);
    }
    typed_spec ts;
    if (typed)
        read_typed_spec(r, &ts);
    const void *list = null_list ? NULL : make_list(rule, t, count);
    const sset expect = expect_list(rule, g, t, count, list == NULL);
    if (expect == 0 && any_huge && list)
        FAIL("harness: a list with a huge n would be accepted");
    snapshot(S);
    const int chk = api_check_multi(rule, cfg, list, count);
    check_status("check_multi", rule, g, chk, expect, cfg_status);
    expect_unchanged(S, "check_multi", "the active ISA");
    const call c = {what_multi, rule, cfg, g, t, count, list, 1};
    run_steps(S, &c, chk, ps.twice);
    ex_want w;
    if (ex)
        ex_case(S, &c, cfg_status, chk, &x, &w);
    plan_case(S, &c, chk, &ps, ex ? &x : NULL, ex ? &w : NULL);
    if (typed)
        typed_case(S, &c, cfg_status, chk, &ps, &ts, list == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    const char *entry = rmsfuse_active_isa();
    reader r = {data, size, 0};
    const unsigned rule_byte = u8(&r);
    const int rule = (int)(rule_byte % N_RULES);
    const int typed = (rule_byte >> 2) & 1u; /* the list case also makes a typed step */
    const unsigned op = u8(&r);
    gcfg g;
    for (int k = 0; k < 5; k++)
        g.h[k] = read_hyper(&r);
    g.step = read_step(&r);
    const unsigned fb = u16(&r);
    g.flags = fb & 0x3ffu;
    if (fb & 0x400u)
        g.flags |= 1u << (10 + ((fb >> 11) & 15u));
    if (fb & 0x8000u)
        g.flags |= 1u << 31;
    anycfg ac;
    make_cfg(rule, &g, &ac);
    const int null_cfg = (op & 0x80u) != 0;
    const anycfg *cfg = null_cfg ? NULL : &ac;
    const gcfg *gc = null_cfg ? NULL : &g;

    const sset cfg_expect = gc ? expect_config(rule, gc) : SBIT(RMSFUSE_E_NULL_CONFIG);
    const int cfg_status = api_check_config(rule, cfg);
    check_status("check_config", rule, gc, cfg_status, cfg_expect, RMSFUSE_OK);
    if (!rmsfuse_strerror(cfg_status) || !rmsfuse_strerror(cfg_status)[0])
        FAIL("rmsfuse_strerror(%d) is empty", cfg_status);

    /* Buffers are filled as they are made, from the data bytes. */
    bufset *S = &S_;
    S->count = 0;
    S->arena = -1;
    S->mode = (int)((op >> 2) & 3u);
    S->rng = 0x9e3779b97f4a7c15ull ^ size;
    /* Data start: a fixed place, so that the structure can grow without
     * shifting the data the fuzzer found: the last half of the input. */
    S->data = data + size / 2;
    S->data_len = size - size / 2;
    S->data_at = 0;

    const unsigned what = op & 3u;
    if (what == 0 || what == 2) {
        single_case(&r, S, rule, cfg, gc, cfg_status);
        free_bufs(S);
    }
    if (what != 0) {
        const unsigned v = (op >> 4) & 7u; /* 7: NULL list; 1 to 6: gradient options (6: with a NULL list) */
        list_case(&r, S, rule, cfg, gc, cfg_status, what == 3, v >= 6u, v != 0u && v != 7u, typed);
        free_bufs(S);
    }
    set_isa(entry);
    return 0;
}

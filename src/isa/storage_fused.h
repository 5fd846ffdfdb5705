/*
 * Fused typed steps for one fixed-width ISA (docs/math.md, "Storage
 * types"): the rule's own element math (src/rules/<rule>.h) instantiated a
 * third time, with loads and stores that convert in registers.  Included by
 * src/isa/storage.h for AVX2 (a few classes: TX_FEW_CLASSES), AVX-512 and
 * NEON.
 *
 * The common storage choices:
 *   param  float32 | bf16 | bf16 with a float32 master | split bf16
 *   grad   float32 | bf16
 *   state  float32 | bf16 | 8-bit (RMSFUSE_Q8; on AVX2 and AVX-512
 *          RMSFUSE_Q8_LINEAR too)
 * bf16 rounded to nearest even, or stochastically; with TX_HW, where the
 * CPU has F16C, also f16 for bf16 in the param (with or without a master)
 * and the gradient.  The param's kind and the state's type make the
 * "class", a constant of each loop (12 loops per rule); the gradient's
 * type, the param's 16-bit type, the rounding and the rule's variant are
 * run-time choices, branches on loop invariants, but where a loop of its
 * own measured faster (TX_LOOPS_TYPES_ with AVX-512 BF16, TX_VCASE_ on
 * AVX2 and, beside 8-bit and bf16 state, on AVX-512).
 * The rest (the linear 8-bit map on NEON; f16 elsewhere) and any
 * block's last VW - 1 elements take the block path of storage.h, which
 * gives the same bits:
 * the same operations on the same values, the conversions being the same
 * functions (storage_conv.h).
 *
 * 8-bit state is decoded in registers (on AVX2 and AVX-512 a block at a
 * time into a float32 buffer of the block, 1 KiB in L1, before its loop:
 * tx_q8_pre; on NEON in the loop);
 * its new values go to that buffer, and their largest magnitude is kept
 * in a register as they are stored; the buffer is encoded once the block
 * is done.
 *
 * The first part (classes, layout) is read once; the second is an
 * instantiation, which storage.h includes once for AVX2 and NEON (TX_SUFFIX
 * _sw, integer conversions), for AVX-512 under the target of AVX-512
 * BF16 (_hw: vcvtneps2bf16 for the bf16 stores rounded to nearest even),
 * the latter run where the CPU has it (rmsfuse_cpu_has_bf16_convert,
 * docs/dispatch.md), and for AVX2 again under the target of F16C (_f16c,
 * TX_F16C: f16 params and gradients beside bf16 state alone), run where
 * the CPU has F16C (rmsfuse_cpu_has_f16_convert).  With AVX-512 BF16 the
 * bf16 stores are checked for subnormal inputs: the param's at once, the
 * state's once per vector of elements,
 * after the body (TXN(st_fix)), except the state of the variants that
 * flush it (none is subnormal; on Zen 5, AdamW all-bf16 in L2: 0.39 -> 0.30
 * ns per element), and bf16 loads are one word permute.
 */

#ifndef RMSFUSE_ISA_STORAGE_FUSED_H
#define RMSFUSE_ISA_STORAGE_FUSED_H

/* The class: the param's kind (bits 0-1) and the state's type (bits 2-3). */
enum { TXP_F32, TXP_BF16, TXP_MASTER, TXP_SPLIT, TXP_N };
enum { TXG_F32, TXG_BF16 };
enum { TXS_F32, TXS_BF16, TXS_Q8, TXS_N };
#define TX_CLASS(p, s) ((p) | (s) << 2)
#define TX_NCLASS 12

/*
 * The body's V: the variant (bits 0-7, run time), the class (bits 8-11, a
 * constant), a bf16 gradient (bit 12), an f16 gradient (bit 13),
 * stochastic rounding (bit 14) and an f16 param (bit 15: f16 where the
 * class says bf16), all at run time, the rule's non-negative slots
 * (bits 16-21, a constant) and whether the variant stores flushed state
 * (bit 22, run time: RMSFUSE_FLUSHED_<rule>, src/rules/registry.h),
 * that the gradient is read as it is (bit 23: no scale or clip value, set
 * by the loops whose variant is a constant, TX_VCASE_) and, in the loops of
 * pairs (below), that the body runs over the odd elements (bit 24), and
 * in the software-pipelined loops (below) the pipelining (bit 25) and the
 * drain after the loop (bit 26).  The rules read only their variant's
 * bits.
 */
#define TX_P(V)          (((V) >> 8) & 3u)
#define TX_S(V)          (((V) >> 10) & 3u)
enum { /* the run-time bits' positions */
    TXV_G = 12, TXV_GF16 = 13, TXV_SR = 14, TXV_PF16 = 15, TXV_SFL = 22, TXV_GPLAIN = 23, TXV_ODD = 24,
    TXV_PIPE = 25, TXV_DRAIN = 26
};
#define TX_G(V)          (((V) >> TXV_G) & 1u)
#define TX_GF16(V)       (((V) >> TXV_GF16) & 1u)
#define TX_SR(V)         (((V) >> TXV_SR) & 1u)
#define TX_PF16(V)       (((V) >> TXV_PF16) & 1u)
#define TX_NONNEG(V, s)  (((V) >> 16 >> (s)) & 1u)
#define TX_SFLUSHED(V)   (((V) >> TXV_SFL) & 1u)
/*
 * Pairs (TX_FEW_CLASSES: AVX2's all-bf16 loops of constant variants, a
 * bf16 param, gradient and state, the gradient read as it is): every array
 * is 16-bit, so the loop takes 2 * VW elements at a time, one load of VW
 * 32-bit words per array, and runs the body twice: over the words' low
 * halves (the elements of even index) and, with bit TXV_ODD, over their
 * high halves (odd index).  A bf16 in a word's high half is already
 * float32 bits once the low half is cleared, so a load is one shift or one
 * and, not a widening and a shift; and the two halves' new values make one
 * store of VW words, not two narrowings (x86: little endian, element 2j in
 * word j's low half).  Element-wise math on the elements in another order:
 * the same bits; stochastic rounding takes each element's own random
 * number.  AMD Zen 3 VM, ns per element, one vector at a time -> pairs:
 * TX_FEW_BF16_ below.
 */
#define TX_PAIRS(V)                                                                                        \
    (TX_FEW_CLASSES && TX_P(V) == TXP_BF16 && TX_S(V) == TXS_BF16 && TX_G(V) && !TX_PF16(V) && !TX_GF16(V) && \
     (((V) >> TXV_GPLAIN) & 1u))
#define TX_ODD(V)        (((V) >> TXV_ODD) & 1u)
/*
 * Halves (TX_HW: AVX-512's loops of constant variants with a bf16 array
 * rounded to nearest even, the param or 16-bit state): the loop takes
 * 2 * VW elements at a time and runs the body over the first VW and, with
 * bit TXV_ODD, over the next VW (loads as ever; 8-bit state: each block's
 * loop so, a block of another length through the block path).
 * The first keeps each such array's new values (ctx.hv); the second
 * rounds both vectors with one vcvtne2ps2bf16 and stores the 2 * VW bf16
 * at once, checking both for subnormal inputs with one branch (the param
 * always, state that is not flushed).  Per 32 elements: one conversion and
 * one branch per array fewer (one fewer of each in every 16 elements of
 * all-bf16 steps).  The same bits: the same conversion of each value.
 * AMD Zen 5 VM, in L2, 4 alternations, ns per element, one vector at a
 * time -> halves: all-bf16 RMSProp 0.181 -> 0.152, AdamW 0.227 -> 0.190,
 * SGD with momentum 0.126 -> 0.085, AdaGrad 0.173 -> 0.146; master
 * weights 0.162 -> 0.149, 0.195 -> 0.172, 0.095 -> 0.078, 0.156 ->
 * 0.148; f16 params with bf16 state 0.171 -> 0.157, 0.211 -> 0.197,
 * 0.096 -> 0.092, 0.165 -> 0.151; stochastic rounding (the state alone)
 * 0.305 -> 0.283, 0.372 -> 0.345, 0.275 -> 0.246, 0.314 -> 0.286.
 * A param rounded stochastically beside them: both halves' words put
 * together by one two-table word permute (TXN(st_half_sr): 0.95-0.98 x
 * the time of those steps).  A bf16 param or master weights beside 8-bit
 * state (2026-12-05, 4 alternations, in L2): 0.89-0.94 x the time; the
 * param rounded stochastically there, once it had constant loops
 * (TX_HW_Q8_; 3 alternations, in L2 and at DRAM size): 0.93-0.98 x.
 * (Without the param's subnormal check, wrong bits, measured 0.77-0.95 x
 * the time before: the check, not the branch, is what costs; keeping the
 * values of 16 vectors and checking once per 256 elements was no faster,
 * 0.99-1.08 x.)  RMSProp with momentum, pipelined before (below):
 * 0.88-0.96 x the time so, in L2 and at DRAM size, so halves take
 * precedence over pipelining on AVX-512.
 */
#define TX_HALVES_CLASS(V)                                                                                 \
    (TX_HW && (((V) >> TXV_GPLAIN) & 1u) &&                                                                \
     (TX_S(V) == TXS_BF16 || ((TX_P(V) == TXP_BF16 || TX_P(V) == TXP_MASTER) && !TX_PF16(V))))
#define TX_HALVES(V)     (TX_HALVES_CLASS(V) && !TX_PIPED(V))
/*
 * Software pipelining (bit TXV_PIPE: AVX2's and AVX-512's loops of
 * constant variants, for a rule whose body has a stage point, RMSFUSE_PIPE
 * after its square root; RMSFUSE_PIPED_<rule>): each pass runs the body's
 * first stage (loads, state, square root) over the elements at i and its
 * second (division, momentum, param) over those of the pass before, whose
 * stage-point values (x, y, d, each half of pairs its own) and i the
 * context kept.  The division's inputs are then ready when it issues, so
 * the operations that wait for it no longer fill the scheduler while the
 * next elements' square roots could start: the loop is not held up by the
 * latency of the chain from the loads through the square root and the
 * division to the stores.
 * Each element still takes the body's operations in the body's order: the
 * same bits.  The first pass has no pass before (i kept as SIZE_MAX: the
 * body returns at its stage point); after the loop, tx_drain_<rule> runs
 * the first stage once more over a scratch vector and the second over the
 * last elements (bit TXV_DRAIN: the stage point gives the arrays back).
 * AMD Zen 3 VM, in L2, ns per element, 3 alternations, before -> after:
 * all-bf16 RMSProp 0.518 -> 0.498, with momentum 0.741 -> 0.667, AdamW
 * 0.714 -> 0.660; rounded stochastically 0.822 -> 0.729, 1.109 -> 0.916,
 * 1.031 -> 0.954; f16 params with bf16 state 0.499 -> 0.461, 0.871 ->
 * 0.749, 0.769 -> 0.667; the split param 0.480 -> 0.442, 0.639 -> 0.566,
 * 0.615 -> 0.548; a bf16 gradient 0.342 -> 0.340, 0.426 -> 0.400, 0.409 ->
 * 0.388.  Only the loops of constant variants, and the drain out of line:
 * the AVX2 storage object's compile went from 17 to 30 s with both in
 * every loop and inlined, 22 s so, 33 s with the gate's second loop
 * (TX_PIPE_MIN_N).
 * AVX-512 pipelines only the variants whose second stage loads and stores
 * state of its own (RMSFUSE_LATE_<rule>: RMSProp with momentum), beside
 * 16-bit or float32 state (ops_avx512.h's VPIPE 2).  AMD Zen 5 VM, in L2,
 * 5 alternations, ns per element, RMSProp with momentum not pipelined ->
 * pipelined: all-bf16 0.290 -> 0.262, f16 params with bf16 state 0.264 ->
 * 0.249, rounded stochastically 0.433 -> 0.408, split 0.310 -> 0.283; the
 * other rules and plain RMSProp pipelined too measured 0.98-1.06 x the
 * time (plain RMSProp rounded stochastically 1.08 x), so they are not.
 * Since halves (above), only where there are none: float32 state beside
 * a float32 or split param, or one rounded stochastically or to f16.
 * A piped pass stores at two i (each stage at its own), so its bf16 state
 * stores are checked for subnormal inputs at once, not left pending
 * (TXN(pend)).
 */
#define TX_PIPED(V)      (((V) >> TXV_PIPE) & 1u)
/* Whether this instantiation's loops pipeline (AVX2's and AVX-512's), and
 * which variants: every one where a pass's second stage loads or stores no
 * 8-bit state slot (VPIPE 1, AVX2), or only those whose second stage has
 * state traffic of its own, without 8-bit state or halves (VPIPE 2,
 * AVX-512). */
#define TX_PIPE_OK       (TX_FEW_CLASSES || TX_HW)
#if defined(VPIPE) && VPIPE == 2
#define TX_PIPE_LATE_ONLY 1
#else
#define TX_PIPE_LATE_ONLY 0
#endif
#ifndef TX_PIPE_MIN_N
/* Elements: a range of fewer takes the loop without pipelining, whose
 * drain costs more than it gains (Zen 3 VM, all-bf16 RMSProp with
 * momentum through the typed API, 200 tensors of n elements, best of 30,
 * ns per tensor without -> with: n 32 335 -> 365, 128 416 -> 445, 256
 * 526 -> 542, 512 722 -> 726, 1024 1116 -> 1082, 2048 1979 -> 1783). */
#define TX_PIPE_MIN_N 512
#endif
#define TX_DRAIN(V)      (((V) >> TXV_DRAIN) & 1u)

/* a[] of the typed body: each slot's array at the element TX_I0,
 * then these. */
enum {
    TX_EXTRA = RMSFUSE_MAX_SLOTS + 1,        /* master (float32) or trail (bf16), at the block */
    TX_KEY,                                   /* stochastic rounding: K2 of the range's elements, */
    TX_KEY_HI,                                /* its low and high 32 bits (a pointer may have 32) */
    TX_I0,                                    /* the element of the tensor the arrays start at */
    TX_BUF,                                   /* 8-bit slots: the block's new float32 values */
    TX_SCALE = TX_BUF + RMSFUSE_MAX_SLOTS,    /* 8-bit slots: the block's scale, its bits */
    TX_COUNT = TX_SCALE + RMSFUSE_MAX_SLOTS
};

static RMSFUSE_ALWAYS_INLINE VF tx_vf(f_t_cw x)
{
    VF v;
    memcpy(&v, &x, sizeof v);
    return v;
}
static RMSFUSE_ALWAYS_INLINE f_t_cw tx_cw(VF v)
{
    f_t_cw x;
    memcpy(&x, &v, sizeof x);
    return x;
}
static RMSFUSE_ALWAYS_INLINE float tx_float(const char *bits)
{
    const uint32_t u = (uint32_t)(uintptr_t)bits;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#if RMSFUSE_KPART_STORAGE_OPS
/* The class of a job's storage, or -1 where the block path runs it; f16:
 * f16 params and gradients are the fused loops' (TX_HW on a CPU with F16C);
 * q8lin: the linear 8-bit map is theirs (TX_Q8_PRE: it is decoded and
 * encoded out of the loop). */
static int tx_class_of(const rmsfuse_typed_job *J, int f16, int q8lin)
{
    const unsigned master = (J->flags & RMSFUSE_MASTER_WEIGHTS) != 0;
    unsigned p, st = TXS_F32;
    switch (J->type[RMSFUSE_SLOT_PARAM]) {
    case RMSFUSE_F32:
        p = TXP_F32;
        break;
    case RMSFUSE_F16: /* where f16, the bf16 kinds (TX_PF16) */
        if (!f16)
            return -1;
        /* fall through */
    case RMSFUSE_BF16:
        p = master ? TXP_MASTER : TXP_BF16;
        break;
    case RMSFUSE_SPLIT_BF16:
        p = TXP_SPLIT;
        break;
    default:
        return -1;
    }
    if ((J->used & (1u << RMSFUSE_SLOT_GRAD)) && J->type[RMSFUSE_SLOT_GRAD] != RMSFUSE_F32 &&
        J->type[RMSFUSE_SLOT_GRAD] != RMSFUSE_BF16 && !(f16 && J->type[RMSFUSE_SLOT_GRAD] == RMSFUSE_F16))
        return -1;
    for (unsigned sl = 2; sl < RMSFUSE_MAX_SLOTS; sl++)
        if (J->used & (1u << sl)) {
            if (J->type[sl] == RMSFUSE_Q8 || (q8lin && J->type[sl] == RMSFUSE_Q8_LINEAR))
                st = TXS_Q8;
            else if (J->type[sl] == RMSFUSE_BF16)
                st = TXS_BF16;
            else if (J->type[sl] != RMSFUSE_F32)
                return -1;
        }
    return (int)TX_CLASS(p, st);
}
#endif

/* Large ranges prefetch their 16- and 8-bit arrays this many blocks ahead,
 * on CPUs where that measured faster (rmsfuse_cpu_prefers_typed_prefetch,
 * src/core/cpu_x86.c): on the Zen 4 VM, at DRAM size, all-bf16 RMSProp with
 * momentum measured 0.74-0.78 ns per element with it and 0.84-0.90
 * without; prefetching the float32 arrays too made a bf16 gradient beside
 * float32 state 0.67 -> 0.80-0.92 ns slower (the float32 kernels leave
 * them to the hardware prefetchers on AMD as well: src/isa/kernels.c).  On
 * Zen 5, 1, 4 and 8 blocks ahead measured no better than 2, and none
 * better still. */
#define TX_PF_BLOCKS 2

typedef void (*tx_fn)(rmsfuse_kernel kernel, const void *kp, unsigned variant, const rmsfuse_typed_job *J,
                      size_t begin, size_t end);

/* The classes, X(r, p, s) each (param p, state s). */
#define TX_S_(X, r, p) X(r, p, 0) X(r, p, 1) X(r, p, 2)
#define TX_ALL_(X, r) TX_S_(X, r, 0) TX_S_(X, r, 1) TX_S_(X, r, 2) TX_S_(X, r, 3)
_Static_assert(TXP_N == 4 && TXS_N == 3 && TX_NCLASS == 12, "TX_ALL_ lists every class");

/* The rules whose fused loops this object defines, X(rule) each: one in
 * part 3 of src/isa/kernels.c (RMSFUSE_TX_RULE), none in part 2 (whose
 * tables name the others' functions), every rule in one object (part 0). */
#if RMSFUSE_KPART == 3
#define TX_RULES_HERE_(X) TX_RULE_ONE_(X, RMSFUSE_TX_RULE)
#define TX_RULE_ONE_(X, r) X(r)
#elif RMSFUSE_KPART == 2
#define TX_RULES_HERE_(X)
#else
#define TX_RULES_HERE_(X) RMSFUSE_RULES(X)
#endif

/* Whether the elements [begin, end) (end > begin) are in one 2^32 range
 * of elements, whose stochastic rounding has one K2 (docs/math.md): the
 * condition of the loops of stochastic rounding. */
static RMSFUSE_ALWAYS_INLINE int tx_one_k2(size_t begin, size_t end)
{
    return (uint64_t)begin >> 32 == ((uint64_t)end - 1u) >> 32;
}

/*
 * 8-bit state on AVX2 (TX_Q8_PRE, below): the m codes of a block at c
 * decoded into the block's float32 buffer before the loop, which then
 * reads the state there, as float32 state, and writes its new values
 * back in place (TXN(store)).  Decoded in the loop, each vector's chain
 * from the codes' load through the rule to the stores was too long for
 * AMD Zen 3's scheduler to keep enough vectors in flight: about 10 cycles
 * per 8 elements for SGD's 27 instructions, where its pipes would take 6
 * (llvm-mca -mcpu=znver3 agrees).  AMD Zen 3 VM, ns per element, decoded
 * in the loop -> before it (with q8_value's subtraction), 5 alternations:
 * in L2, RMSProp 0.825 -> 0.703, bf16 1.034 -> 0.907; SGD with momentum
 * 0.684 -> 0.617, bf16 0.928 -> 0.780; AdaGrad 0.760 -> 0.699, bf16
 * 1.055 -> 0.870; at DRAM size RMSProp 0.884 -> 0.844, SGD 0.800 ->
 * 0.759, bf16 0.919 -> 0.817.  Beside the rules with two 8-bit slots
 * this made the fused loops faster than the block path (TX_FEW_Q8_).
 * AVX-512 (TX_HW) likewise since 2026-12-04: on the AMD Zen 5 VM, best of
 * 4 alternations, ns per element in L2, decoded in the loop -> before it
 * (with tx_q8_f16x16): RMSProp with momentum 0.632 -> 0.574, bf16 0.726 ->
 * 0.654, SGD with momentum 0.370 -> 0.327, AdamW 0.562 -> 0.495, bf16
 * 0.665 -> 0.555; the same decoding in the loop was no faster than the
 * integer one (0.93-1.12 x the time).
 */
#define TX_Q8_PRE_(t, nn)                                                                                  \
    for (size_t i = 0; i < m; i += VW)                                                                    \
        st_f32_cw((char *)(buf + i), q8_decode_cw((t), (nn), ld_u8_cw(c + i), scale));
/* The linear map's (RMSFUSE_Q8_LINEAR): out of line, the float-like map's
 * loops alone in the fused loops' code. */
static __attribute__((noinline, unused)) void tx_q8_pre_linear(const unsigned nonneg, const char *c, float scale,
                                                               float *buf, size_t m)
{
    if (nonneg)
        TX_Q8_PRE_(RMSFUSE_Q8_LINEAR, 1)
    else
        TX_Q8_PRE_(RMSFUSE_Q8_LINEAR, 0)
}
#if defined(__AVX2__) && defined(__x86_64__) && VW == 8
/*
 * The float-like map (RMSFUSE_Q8) by F16C, where the CPU has it
 * (rmsfuse_cpu_has_f16_convert).  vcvtph2ps converts f16 subnormals
 * exactly with MXCSR's DAZ set or not (Intel's manual: DAZ is ignored; on
 * AMD Zen 3 every f16 subnormal gave its value with DAZ and FTZ set).
 *
 * Signed: the code, sign s, E (4 bits) and M (3 bits), is the f16 s | E <<
 * 10 | M << 7, whose value is the map's (docs/math.md: bias 15, E = 0 an
 * f16 subnormal, M x 2^-17), exactly: a word's shift by 7 and the sign's
 * bit put back replace the integer decoding's exponent and subnormal
 * arithmetic, 8.5 instructions per 8 codes in the loop instead of 19
 * (callgrind; AdamW's step, float32 params, 14.72 -> 13.46 per element).
 * The NaN codes (0x7F, 0xFF: magnitude 0x3F80 as f16) become s | 0x7E00,
 * the f16 of the integer decoding's NaN, 0x7FC00000 with the code's sign.
 *
 * Unsigned, for a block whose scale is at least 2^-110: the code (E 5
 * bits, bias 31) is the f16 c << 7 times 2^-16, but for E = 31 (codes
 * 248-254; 255 is the NaN), an f16 infinity or NaN.  Those become E = 30
 * with the f16's sign set, which picks the factor -2^-15 for them (x 2 to
 * undo the exponent's step, - to undo the sign) instead of 2^-16, each
 * times the scale: exact products of powers of two for such a scale, so
 * v x factor is the reference's value x scale.  The NaN code becomes
 * 0x7E00.  9.5 instructions per 8 codes in the loop instead of 14
 * (callgrind; RMSProp's step, float32 params, 8.48 -> 7.84 per element).
 */
/* The f16 of 16 codes, widened to words (sign-extended if signed). */
static RMSFUSE_ALWAYS_INLINE __m256i tx_q8_h(const int nonneg, const __m128i codes)
{
    if (!nonneg) {
        const __m256i w = _mm256_cvtepi8_epi16(codes);
        const __m256i t = _mm256_and_si256(_mm256_slli_epi16(w, 7), _mm256_set1_epi16((short)0xBFFF));
        const __m256i isnan =
            _mm256_cmpeq_epi16(_mm256_or_si256(w, _mm256_set1_epi16((short)0xFF80)), _mm256_set1_epi16(-1));
        return _mm256_blendv_epi8(t, _mm256_add_epi16(t, _mm256_set1_epi16(0x3E80)), isnan);
    }
    const __m256i t = _mm256_slli_epi16(_mm256_cvtepu8_epi16(codes), 7);
    const __m256i fix = _mm256_blendv_epi8(_mm256_set1_epi16((short)0x8400), _mm256_set1_epi16(0x0180),
                                           _mm256_cmpeq_epi16(t, _mm256_set1_epi16(0x7F80)));
    return _mm256_xor_si256(t, _mm256_and_si256(_mm256_cmpgt_epi16(t, _mm256_set1_epi16(0x7BFF)), fix));
}
/* 8 such f16, converted, times the scale (f0; unsigned: f1 where the
 * f16's sign is set). */
static RMSFUSE_ALWAYS_INLINE __attribute__((target("f16c"))) __m256 tx_q8_v(const int nonneg, const __m128i h,
                                                                           const __m256 f0, const __m256 f1)
{
    const __m256 v = _mm256_cvtph_ps(h);
    return _mm256_mul_ps(v, nonneg ? _mm256_blendv_ps(f0, f1, v) : f0);
}
/* m codes (m a multiple of 8) at c into buf; unsigned: scale >= 2^-110. */
static RMSFUSE_ALWAYS_INLINE __attribute__((target("f16c"))) void tx_q8_f16_t(const int nonneg, const char *c,
                                                                             float scale, float *buf, size_t m)
{
    const __m256 f0 = _mm256_set1_ps(nonneg ? scale * 0x1p-16f : scale), f1 = _mm256_set1_ps(scale * -0x1p-15f);
    size_t i = 0;
    for (; i + 16 <= m; i += 16) {
        const __m256i h = tx_q8_h(nonneg, _mm_loadu_si128((const __m128i *)(const void *)(c + i)));
        _mm256_store_ps(buf + i, tx_q8_v(nonneg, _mm256_castsi256_si128(h), f0, f1));
        _mm256_store_ps(buf + i + 8, tx_q8_v(nonneg, _mm256_extracti128_si256(h, 1), f0, f1));
    }
    if (i < m) /* 8 */
        _mm256_store_ps(buf + i, tx_q8_v(nonneg,
                                         _mm256_castsi256_si128(tx_q8_h(
                                             nonneg, _mm_loadl_epi64((const __m128i *)(const void *)(c + i)))),
                                         f0, f1));
}
#define TX_Q8_F16_TARGET __attribute__((target("f16c")))
#endif
#if defined(__AVX512F__) && defined(__x86_64__) && VW == 16 && defined(RMSFUSE_TX_HW_BUILT)
/* AVX-512 (the fused loops' object, compiled for AVX512BW and VL beside
 * AVX512_BF16: storage.h): 16 codes of the float-like map (RMSFUSE_Q8) by
 * vcvtph2ps, which is AVX512F's, as tx_q8_f16_t (above) on AVX2 with the
 * lanes' conditions in mask registers.  Signed: the f16 s | E << 10 | M <<
 * 7, the NaN codes s | 0x7E00, times f0 (the scale).  Unsigned, for a
 * block whose scale is at least 2^-110: the f16 c << 7, the E = 31 codes
 * made E = 30 (bit 10 cleared) and times f1 (scale x 2^-15), the others
 * times f0 (scale x 2^-16), the NaN code 0x7E00.  vcvtph2ps gives f16
 * subnormals their values with MXCSR's DAZ set (the AMD Zen 5 VM: every one
 * exact with DAZ and FTZ set). */
static RMSFUSE_ALWAYS_INLINE __m512 tx_q8_f16x16(const int nonneg, const __m128i codes, const __m512 f0, const __m512 f1)
{
    if (!nonneg) {
        const __m256i w = _mm256_cvtepi8_epi16(codes);
        const __m256i t = _mm256_and_si256(_mm256_slli_epi16(w, 7), _mm256_set1_epi16((short)0xBFFF));
        const __mmask16 nan =
            _mm256_cmpeq_epi16_mask(_mm256_or_si256(w, _mm256_set1_epi16((short)0xFF80)), _mm256_set1_epi16(-1));
        return _mm512_mul_ps(_mm512_cvtph_ps(_mm256_mask_add_epi16(t, nan, t, _mm256_set1_epi16(0x3E80))), f0);
    }
    const __m256i t = _mm256_slli_epi16(_mm256_cvtepu8_epi16(codes), 7);
    const __mmask16 e31 = _mm256_cmpgt_epi16_mask(t, _mm256_set1_epi16(0x7BFF));
    const __mmask16 nan = _mm256_cmpeq_epi16_mask(t, _mm256_set1_epi16(0x7F80));
    const __m256i h = _mm256_mask_blend_epi16(nan, _mm256_mask_sub_epi16(t, e31, t, _mm256_set1_epi16(0x0400)),
                                              _mm256_set1_epi16(0x7E00));
    return _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_mask_blend_ps(e31, f0, f1));
}
/* m codes (m a multiple of 16) at c into buf; unsigned: scale >= 2^-110. */
static RMSFUSE_ALWAYS_INLINE void tx_q8_f16_t(const int nonneg, const char *c, float scale, float *buf, size_t m)
{
    const __m512 f0 = _mm512_set1_ps(nonneg ? scale * 0x1p-16f : scale), f1 = _mm512_set1_ps(scale * 0x1p-15f);
    for (size_t i = 0; i < m; i += 16)
        _mm512_store_ps(buf + i, tx_q8_f16x16(nonneg, _mm_loadu_si128((const __m128i *)(const void *)(c + i)), f0, f1));
}
#define TX_Q8_F16_TARGET /* vcvtph2ps on zmm: AVX512F */
#endif
#ifdef TX_Q8_F16_TARGET
/* The float-like map's m codes (m a multiple of VW) at c into buf by
 * vcvtph2ps (AVX2 with F16C, or AVX-512); unsigned: scale >= 2^-110. */
static __attribute__((noinline, unused)) TX_Q8_F16_TARGET void tx_q8_f16(const unsigned nonneg, const char *c,
                                                                         float scale, float *buf, size_t m)
{
    if (nonneg)
        tx_q8_f16_t(1, c, scale, buf, m);
    else
        tx_q8_f16_t(0, c, scale, buf, m);
}
#endif
/* The m codes at c into buf; f16c: the CPU has F16C (tx_q8_f16). */
static RMSFUSE_ALWAYS_INLINE void tx_q8_pre(const unsigned type, const unsigned nonneg, const int f16c, const char *c,
                                            float scale, float *buf, size_t m)
{
    (void)f16c;
    if (type == RMSFUSE_Q8_LINEAR)
        tx_q8_pre_linear(nonneg, c, scale, buf, m);
#ifdef TX_Q8_F16_TARGET
    else if (f16c && (!nonneg || scale >= 0x1p-110f))
        tx_q8_f16(nonneg, c, scale, buf, m);
#endif
    else if (nonneg)
        TX_Q8_PRE_(RMSFUSE_Q8, 1)
    else
        TX_Q8_PRE_(RMSFUSE_Q8, 0)
}
#undef TX_Q8_PRE_
#endif /* RMSFUSE_ISA_STORAGE_FUSED_H */

/* whether 8-bit state is decoded block by block before the loop
 * (tx_q8_pre): AVX2 and AVX-512, not NEON */
#define TX_Q8_PRE (TX_FEW_CLASSES || TX_HW)

/* ==== one instantiation: TX_SUFFIX names it, TX_HW 1 for the bf16 stores
 * of AVX-512 BF16 ========================================================= */
#define TXN(name) RMSFUSE_CAT(RMSFUSE_CAT(tx_, name), TX_SUFFIX)

/* TX_Q8_PRE for the caller of this instantiation's table (storage.h):
 * tx_class_of's q8lin, the loops decode and encode either 8-bit map. */
enum { TXN(q8_pre) = TX_Q8_PRE };

/* VW values to bf16 at p, rounded to nearest even. */
static RMSFUSE_ALWAYS_INLINE void TXN(st_bf16)(char *p, VF x)
{
#if TX_HW
    /* vcvtneps2bf16 reads a subnormal input as zero.  Lanes whose exponent
     * field is 0 (zeros, subnormals) get it set to 1: x + 2^-126 with x's
     * sign, exact, normal, and rounded on the same grid (2^-133) as x; the
     * result is then 0x80 above x's own (docs/math.md: NaNs (u >> 16) |
     * 0x40, the rest to nearest even, as the instruction does). */
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(x);
    const __mmask16 d = _mm512_fpclass_ps_mask(x, 0x20); /* the subnormal lanes */
    if (__builtin_expect(d == 0, 1)) {
        _mm256_storeu_si256((__m256i *)(void *)p, h);
        return;
    }
    const __m512i u = _mm512_castps_si512(x);
    const __m512 y = _mm512_castsi512_ps(_mm512_mask_or_epi32(u, d, u, _mm512_set1_epi32(0x00800000)));
    const __m256i hy = (__m256i)_mm512_cvtneps_pbh(y);
    _mm256_storeu_si256((__m256i *)(void *)p, _mm256_mask_sub_epi16(hy, d, hy, _mm256_set1_epi16(0x80)));
#else
    /* AVX2: NaNs by a branch (st_bf16_rne; beside f16 params, TX_F16C, AMD
     * Zen 3, in L2, ns per element, a blend on every store -> the branch:
     * RMSProp 0.548 -> 0.499, with momentum 0.924 -> 0.873, SGD with
     * momentum 0.349 -> 0.319, AdamW 0.850 -> 0.769) */
    st_bf16_rne_cw(p, bits_cw(tx_cw(x)));
#endif
}

#if TX_HW
/* The words whose high halves are x's bf16 rounded stochastically: x's
 * bits + rh, a NaN's quieted (a masked or). */
static RMSFUSE_ALWAYS_INLINE __m512i TXN(sr_words)(VF x, u_t_cw rh)
{
    const __m512i u = _mm512_castps_si512(x);
    return _mm512_mask_or_epi32(_mm512_add_epi32(u, v512_cw(rh)), _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), u,
                                _mm512_set1_epi32(0x00400000));
}
#endif
/* VW values to bf16 at p, rounded stochastically with rh = r >> 16
 * (bf16_hi_cw with sr).  With TX_HW: the sum's or the quieted NaN's high
 * halves taken by one word permute, not three shifts and a narrowing. */
static RMSFUSE_ALWAYS_INLINE void TXN(st_bf16_sr)(char *p, VF x, u_t_cw rh)
{
#if TX_HW
    const __m512i hi = _mm512_set_epi16(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1, 31, 29, 27, 25, 23,
                                        21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const __m512i w = TXN(sr_words)(x, rh);
    _mm256_storeu_si256((__m256i *)(void *)p, _mm512_castsi512_si256(_mm512_permutexvar_epi16(hi, w)));
#else
    st_hi16_cw(p, bf16_hi_cw(bits_cw(tx_cw(x)), 1, rh));
#endif
}

/* VW values to bf16 at p, rounded to nearest even, where none of them is
 * subnormal: vcvtneps2bf16 alone with TX_HW. */
static RMSFUSE_ALWAYS_INLINE void TXN(st_bf16_normal)(char *p, VF x)
{
#if TX_HW
    _mm256_storeu_si256((__m256i *)(void *)p, (__m256i)_mm512_cvtneps_pbh(x));
#else
    TXN(st_bf16)(p, x);
#endif
}

#if TX_HW
/* The bf16 state stores of one vector of elements (the param's is checked
 * at its store): vcvtneps2bf16 stores each at once, and its subnormal
 * inputs (read as zero) are fixed after the body, where `d` tells whether
 * there are any (one branch per vector of elements, not one per store). */
struct TXN(pend) {
    VF x[RMSFUSE_MAX_SLOTS]; /* the values slot s stored */
    unsigned sl;             /* the slots stored */
    __mmask16 d;             /* subnormal lanes of any of them */
};
#endif
/* The body's a[] (its first member: the body gets &ctx.a[0]) and, with
 * TX_HW, the pending stores: one local aggregate that the compiler keeps in
 * registers once the body is inlined. */
struct TXN(ctx) {
    char *a[TX_COUNT];
#if TX_HW
    struct TXN(pend) p;
#endif
    union { /* one frame: pairs have no 8-bit state, and halves beside it keep the param's (slot 0) alone */
        u_t_cw mx[RMSFUSE_MAX_SLOTS]; /* 8-bit slots: the block's largest magnitudes' bits so far, per lane */
        u_t_cw ev[RMSFUSE_MAX_SLOTS]; /* pairs: the even elements' new bf16 (high halves), until the odd ones' */
        VF hv[RMSFUSE_MAX_SLOTS];     /* halves: the first half's new values, until the second's */
    };
#if TX_PIPE_OK
    VF px[2], py[2], pd[2];      /* piped: the pass before's stage-point values (pairs: even, odd) */
    size_t pi;                   /* piped: its i, or SIZE_MAX before the first pass */
    char *ra[RMSFUSE_MAX_SLOTS]; /* piped, draining: the arrays of the second stage */
#endif
};

/* Pairs (TX_PAIRS): the even elements of the 2 * VW bf16 at p, or with
 * TX_ODD the odd ones, as float32. */
static RMSFUSE_ALWAYS_INLINE VF TXN(ld_pair)(const unsigned V, const char *p)
{
    u_t_cw u;
    memcpy(&u, p, sizeof u);
    return tx_vf(flt_cw(TX_ODD(V) ? u & 0xFFFF0000u : u << 16));
}

/* Pairs: VW new values of slot s, rounded to nearest even or, with sr,
 * stochastically (bf16_hi_cw's rh: the elements' r >> 16): the even
 * elements' kept, the odd ones' stored with them at element i. */
static RMSFUSE_ALWAYS_INLINE void TXN(st_pair)(const unsigned V, const unsigned s, char *const *a, size_t i, VF x,
                                             const int sr, const u_t_cw rh)
{
#if TX_FEW_CLASSES
    u_t_cw *const ev = ((struct TXN(ctx) *)(void *)a)->ev;
    const u_t_cw u = bits_cw(tx_cw(x));
    u_t_cw h, e;
    if (!sr) {
        /* rounded to nearest even: both halves at the odd one's store, the
         * NaN case by one comparison of both and a branch, not a blend each
         * (same bits: bf16_hi_cw; AMD Zen 3 VM, in L2, ns per element:
         * all-bf16 RMSProp 0.80 -> 0.59, with momentum 1.16 -> 0.91, SGD
         * with momentum 0.50 -> 0.38, AdamW 1.06 -> 0.88) */
        if (!TX_ODD(V)) {
            ev[s] = u;
            return;
        }
        const u_t_cw ue = ev[s];
        if (__builtin_expect(any_nan_cw(ue, u), 0)) {
            e = bf16_hi_cw(ue, 0, rh) >> 16;
            h = bf16_hi_cw(u, 0, rh);
        } else {
            e = bf16_hi_rne_cw(ue) >> 16;
            h = bf16_hi_rne_cw(u);
        }
    } else {
        /* rounded stochastically: each half's NaNs by a comparison and a
         * branch, not a blend (the same bits: bf16_hi_cw; AMD Zen 3 VM, in
         * L2, ns per element: all-bf16 RMSProp 0.840 -> 0.818, with
         * momentum 1.165 -> 1.109, SGD with momentum 0.673 -> 0.613, AdamW
         * 1.090 -> 1.027) */
        if (__builtin_expect(any_nan_cw(u, u), 0))
            h = bf16_hi_cw(u, sr, rh);
        else
            h = u + rh;
        if (!TX_ODD(V)) {
            ev[s] = h;
            return;
        }
        e = ev[s] >> 16;
    }
    __m256i E, O; /* the even words' low halves, the odd ones' high halves */
    memcpy(&E, &e, sizeof E);
    memcpy(&O, &h, sizeof O);
    _mm256_storeu_si256((__m256i *)(void *)(a[s] + i * 2), _mm256_blend_epi16(E, O, 0xAA));
#else
    (void)V, (void)s, (void)a, (void)i, (void)x, (void)sr, (void)rh;
#endif
}

/* VW values of state slot s to bf16 at element i, rounded to nearest even
 * (pending until TXN(st_fix) with TX_HW). */
static RMSFUSE_ALWAYS_INLINE void TXN(st_bf16_at)(const unsigned s, char *const *a, size_t i, VF x)
{
#if TX_HW
    struct TXN(pend) *const P = &((struct TXN(ctx) *)(void *)a)->p;
    _mm256_storeu_si256((__m256i *)(void *)(a[s] + i * 2), (__m256i)_mm512_cvtneps_pbh(x));
    P->x[s] = x;
    P->sl |= 1u << s;
    P->d |= _mm512_fpclass_ps_mask(x, 0x20);
#else
    TXN(st_bf16)(a[s] + i * 2, x);
#endif
}

/* After the body at element i: the bf16 state stores again, exactly, where
 * any input was subnormal (rare; the state of the flush variants, which has
 * none, is stored by st_bf16_normal and never pending). */
static RMSFUSE_ALWAYS_INLINE void TXN(st_fix)(char *const *a, size_t i)
{
#if TX_HW
    struct TXN(pend) *const P = &((struct TXN(ctx) *)(void *)a)->p;
    if (__builtin_expect(P->d != 0, 0))
#pragma GCC unroll 8
        for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++)
            if (P->sl & (1u << s))
                TXN(st_bf16)(a[s] + i * 2, P->x[s]);
    P->sl = 0;
    P->d = 0;
#else
    (void)a;
    (void)i;
#endif
}

/* Halves (TX_HALVES): VW new values of slot s at element i, rounded to
 * nearest even; the first half's kept, the second's stored with them (at
 * i - VW), both checked for subnormal inputs unless `normal` (flushed
 * state: none). */
static RMSFUSE_ALWAYS_INLINE void TXN(st_half)(const unsigned V, const unsigned s, char *const *a, size_t i, VF x,
                                             const int normal)
{
#if TX_HW
    struct TXN(ctx) *const X = (struct TXN(ctx) *)(void *)a;
    if (!TX_ODD(V)) {
        X->hv[s] = x;
        return;
    }
    const VF e = X->hv[s];
    if (!normal && __builtin_expect((_mm512_fpclass_ps_mask(e, 0x20) | _mm512_fpclass_ps_mask(x, 0x20)) != 0, 0)) {
        TXN(st_bf16)(a[s] + (i - VW) * 2, e);
        TXN(st_bf16)(a[s] + i * 2, x);
        return;
    }
    _mm512_storeu_si512((void *)(a[s] + (i - VW) * 2), (__m512i)_mm512_cvtne2ps_pbh(x, e));
#else
    (void)V, (void)s, (void)a, (void)i, (void)x, (void)normal;
#endif
}

/* Halves: VW new param values at element i rounded stochastically (rh as
 * st_bf16_sr's): the first half's words kept, the second's high halves
 * stored with them (at i - VW) by one two-table word permute. */
static RMSFUSE_ALWAYS_INLINE void TXN(st_half_sr)(const unsigned V, const unsigned s, char *const *a, size_t i, VF x,
                                                u_t_cw rh)
{
#if TX_HW
    struct TXN(ctx) *const X = (struct TXN(ctx) *)(void *)a;
    const __m512i w = TXN(sr_words)(x, rh);
    if (!TX_ODD(V)) {
        X->hv[s] = _mm512_castsi512_ps(w);
        return;
    }
    const __m512i hi = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29, 27, 25,
                                        23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    _mm512_storeu_si512((void *)(a[s] + (i - VW) * 2),
                        _mm512_permutex2var_epi16(_mm512_castps_si512(X->hv[s]), hi, w));
#else
    (void)V, (void)s, (void)a, (void)i, (void)x, (void)rh;
#endif
}

/* VW bf16 values at p as float32 (the bits << 16). */
static RMSFUSE_ALWAYS_INLINE VF TXN(ld_bf16)(const char *p)
{
#if TX_HW
    /* one word permute into the lanes' high halves, the low halves zeroed,
     * instead of vpmovzxwd and a shift (Zen 4, a loop of loads in L1: 0.9
     * instead of 1.5 cycles per 16 elements) */
    const __m512i idx = _mm512_set_epi16(15, 0, 14, 0, 13, 0, 12, 0, 11, 0, 10, 0, 9, 0, 8, 0, 7, 0, 6, 0, 5, 0, 4,
                                         0, 3, 0, 2, 0, 1, 0, 0, 0);
    const __m512i w = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)p));
    return _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(0xAAAAAAAAu, idx, w));
#else
    return tx_vf(flt_cw(ld_hi16_cw(p)));
#endif
}

/* VW split bf16 values: the high halves at hi, the trails at lo. */
static RMSFUSE_ALWAYS_INLINE VF TXN(ld_split)(const char *hi, const char *lo)
{
#if TX_HW
    /* one two-source word permute: word 2j from lo, 2j + 1 from hi */
    const __m512i idx = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6,
                                         37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i l = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)lo));
    const __m512i h = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)hi));
    return _mm512_castsi512_ps(_mm512_permutex2var_epi16(l, idx, h));
#elif TX_FEW_CLASSES /* AVX2 (storage.h): the words interleaved, not two widenings, a shift and an or */
    const __m128i l = _mm_loadu_si128((const __m128i *)(const void *)lo);
    const __m128i h = _mm_loadu_si128((const __m128i *)(const void *)hi);
    return _mm256_castsi256_ps(_mm256_set_m128i(_mm_unpackhi_epi16(l, h), _mm_unpacklo_epi16(l, h)));
#else
    return tx_vf(flt_cw((ld_u16_cw(hi) << 16) | ld_u16_cw(lo)));
#endif
}

/* VW values as split bf16: the high halves to hi, the trails to lo. */
static RMSFUSE_ALWAYS_INLINE void TXN(st_split)(char *hi, char *lo, VF x)
{
#if TX_FEW_CLASSES
    /* AVX2: each 128-bit lane's low words, then its high words (one byte
     * shuffle), the lanes' halves paired (one qword permute), then two
     * 16-byte stores; not a shift, an and and two narrowings */
    const __m256i w = _mm256_shuffle_epi8(_mm256_castps_si256(x),
                                          _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0,
                                                           1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15));
    const __m256i q = _mm256_permute4x64_epi64(w, 0xD8);
    _mm_storeu_si128((__m128i *)(void *)lo, _mm256_castsi256_si128(q));
    _mm_storeu_si128((__m128i *)(void *)hi, _mm256_extracti128_si256(q, 1));
#else
    const u_t_cw u = bits_cw(tx_cw(x));
    st_u16_cw(hi, u >> 16);
    st_u16_cw(lo, u & 0xFFFFu);
#endif
}

/* VW f16 values at p as float32, and VW values to f16 at p rounded to
 * nearest even: with TX_HW AVX-512F's vcvtph2ps and vcvtps2ph (with
 * TX_F16C, AVX2's F16C: the same instructions at 8 lanes), which give
 * the integer rule's bits except that vcvtph2ps quiets a signalling NaN:
 * still a NaN, and a step promises NaN results their NaN-ness only
 * (docs/math.md).  (The conversion calls, exact for NaN payloads too,
 * take f16_to_f32_hw in storage.h, which falls back on NaNs.) */
static RMSFUSE_ALWAYS_INLINE VF TXN(ld_f16)(const char *p)
{
#if TX_HW
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
#elif TX_F16C
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
#else
    return tx_vf(flt_cw(f16_to_cw(ld_u16_cw(p))));
#endif
}
static RMSFUSE_ALWAYS_INLINE void TXN(st_f16)(char *p, VF x)
{
#if TX_HW
    _mm256_storeu_si256((__m256i *)(void *)p, _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif TX_F16C
    _mm_storeu_si128((__m128i *)(void *)p, _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#else
    st_u16_cw(p, f16_of_cw(bits_cw(tx_cw(x)), 0, splat_cw(0u)));
#endif
}

/* VW values of slot s at element i of the block. */
static RMSFUSE_ALWAYS_INLINE VF TXN(load)(const unsigned V, const unsigned s, char *const *a, size_t i,
                                        const rmsfuse_grad_k *in)
{
    if (TX_PAIRS(V)) /* every slot bf16, the gradient read as it is */
        return TXN(ld_pair)(V, a[s] + i * 2);
    if (s == RMSFUSE_SLOT_PARAM) {
        switch (TX_P(V)) {
        case TXP_BF16:
            return TX_PF16(V) ? TXN(ld_f16)(a[s] + i * 2) : TXN(ld_bf16)(a[s] + i * 2);
        case TXP_MASTER:
            return VLOAD(a[TX_EXTRA] + i * 4);
        case TXP_SPLIT:
            return TXN(ld_split)(a[s] + i * 2, a[TX_EXTRA] + i * 2);
        default:
            return VLOAD(a[s] + i * 4);
        }
    }
    if (s == RMSFUSE_SLOT_GRAD) {
        const VF g = TX_G(V) == TXG_BF16 ? TXN(ld_bf16)(a[s] + i * 2)
                     : TX_GF16(V)        ? TXN(ld_f16)(a[s] + i * 2)
                                         : VLOAD(a[s] + i * 4);
        if (((V >> TXV_GPLAIN) & 1u) || (in->gs == 1.0f && in->gc == INFINITY))
            return g;
        return GRAD_IN(g, in->gs, in->gc); /* src/isa/kernels.c */
    }
    switch (TX_S(V)) {
    case TXS_BF16:
        return TXN(ld_bf16)(a[s] + i * 2);
    case TXS_Q8:
        if (TX_Q8_PRE)
            return VLOAD(a[TX_BUF + s] + i * 4);
        return tx_vf(q8_decode_cw(RMSFUSE_Q8, (int)TX_NONNEG(V, s), ld_u8_cw(a[s] + i), tx_float(a[TX_SCALE + s])));
    default:
        return VLOAD(a[s] + i * 4);
    }
}

/* Stores VW new values of slot s (not the gradient) at element i of the block. */
static RMSFUSE_ALWAYS_INLINE void TXN(store)(const unsigned V, const unsigned s, char *const *a, size_t i, VF x)
{
    if (s == RMSFUSE_SLOT_PARAM) {
        const unsigned P = TX_P(V);
        const int sr = (int)TX_SR(V);
        const uint64_t i0 = (uint64_t)(uintptr_t)a[TX_I0] + i;
        const uint64_t k2 = (uint64_t)(uintptr_t)a[TX_KEY] | (uint64_t)(uintptr_t)a[TX_KEY_HI] << 32;
        if (TX_PAIRS(V)) { /* elements i0 + 2l, or i0 + 2l + 1 */
            TXN(st_pair)(V, s, a, i, x, sr, sr ? sr_random_hi_cw(k2, i0 + TX_ODD(V), 2u) : splat_cw(0u));
            return;
        }
        switch (P) {
        case TXP_BF16:
        case TXP_MASTER:
            if (P == TXP_MASTER)
                VSTORE(a[TX_EXTRA] + i * 4, x);
            if (TX_PF16(V)) {
                if (sr)
                    st_u16_cw(a[s] + i * 2, f16_of_cw(bits_cw(tx_cw(x)), 1, sr_random_cw(k2, i0)));
                else
                    TXN(st_f16)(a[s] + i * 2, x);
            } else if (sr) {
                if (TX_HALVES(V))
                    TXN(st_half_sr)(V, s, a, i, x, sr_random_hi_cw(k2, i0, 1u));
                else
                    TXN(st_bf16_sr)(a[s] + i * 2, x, sr_random_hi_cw(k2, i0, 1u));
            } else if (TX_HALVES(V)) {
                TXN(st_half)(V, s, a, i, x, 0);
            } else {
                /* checked at once: one branch per vector of elements
                 * either way, without the pending stores' bookkeeping
                 * (Zen 5, AdamW all-bf16 in L2: 0.235 -> 0.231 ns per
                 * element) */
                TXN(st_bf16)(a[s] + i * 2, x);
            }
            return;
        case TXP_SPLIT:
            TXN(st_split)(a[s] + i * 2, a[TX_EXTRA] + i * 2, x);
            return;
        default:
            VSTORE(a[s] + i * 4, x);
            return;
        }
    }
    switch (TX_S(V)) {
    case TXS_BF16:
        if (TX_PAIRS(V))
            TXN(st_pair)(V, s, a, i, x, 0, splat_cw(0u));
        else if (TX_HALVES(V))
            TXN(st_half)(V, s, a, i, x, (int)TX_SFLUSHED(V));
        else if (TX_SFLUSHED(V)) /* no subnormal in x */
            TXN(st_bf16_normal)(a[s] + i * 2, x);
        else if (TX_PIPED(V)) /* a pass stores at two i: checked at once */
            TXN(st_bf16)(a[s] + i * 2, x);
        else
            TXN(st_bf16_at)(s, a, i, x);
        return;
    case TXS_Q8: {
        /* the block's largest magnitude as its values are stored: no pass
         * over the buffer before it is encoded (on Zen 5, AdamW with 8-bit
         * state in L2: 0.66 -> 0.61 ns per element) */
        u_t_cw *const mx = ((struct TXN(ctx) *)(void *)a)->mx;
        VSTORE(a[TX_BUF + s] + i * 4, x);
        mx[s] = smax_cw(mx[s], bits_cw(tx_cw(x)) & 0x7FFFFFFFu);
        return;
    }
    default:
        VSTORE(a[s] + i * 4, x);
        return;
    }
}

#if TX_PIPE_OK
#if !defined(VPIPE)
#error "AVX2's and AVX-512's typed loops are software-pipelined: the ISA's ops must define VPIPE (src/isa/kernels.c)"
#endif
/* The body's stage point (TX_PIPED): keeps this pass's x, y, d and i for
 * the next and gives the body the pass before's; 0 where there is none
 * (the first pass).  Draining, the second stage takes the arrays. */
static RMSFUSE_ALWAYS_INLINE int TXN(pipe)(const unsigned V, char *const *a, size_t *pi, VF *x, VF *y, VF *d)
{
    struct TXN(ctx) *const X = (struct TXN(ctx) *)(void *)a;
    const unsigned h = TX_ODD(V); /* pairs: each half its own; the odd one keeps i */
    return rmsfuse_pipe_swap(&X->px[h], &X->py[h], &X->pd[h], &X->pi, h || !TX_PAIRS(V), x, y, d, pi,
                             (int)TX_DRAIN(V), X->a, X->ra);
}
#endif

#undef LD
#undef ST
#if TX_PIPE_OK
#undef RMSFUSE_PIPE
#define RMSFUSE_PIPE(x, y, d)                                                                              \
    do {                                                                                                   \
        if (TX_PIPED(V) && !TXN(pipe)(V, a, &i, &(x), &(y), &(d)))                                         \
            return;                                                                                        \
    } while (0)
#endif
#define LD(s)    TXN(load)(V, (s), a, i, &k->in)
#define ST(s, x) TXN(store)(V, (s), a, i, (x))
/* The sign flip in the loops of a gradient read as it is (TXV_GPLAIN,
 * TX_HOT_T_): a branch on the loop's invariant sgn, not an XOR with 0 on
 * every vector (AMD Zen 3 VM, in L2: the comment at TX_HOT_T_). */
static RMSFUSE_ALWAYS_INLINE VF TXN(gsign)(VF g, const uint32_t sgn)
{
    return __builtin_expect(sgn != 0u, 0) ? VXOR_BITS(g, sgn) : g;
}
#undef RMSFUSE_GSIGN
#define RMSFUSE_GSIGN(g, sgn) ((((V) >> TXV_GPLAIN) & 1u) ? TXN(gsign)((g), (sgn)) : VXOR_BITS((g), (sgn)))
#define RMSFUSE_BODY(r) RMSFUSE_CAT(rmsfuse_##r##_body_tx, TX_SUFFIX)
#include "../rules/registry.h"
#undef RMSFUSE_BODY
#undef RMSFUSE_GSIGN
#undef LD
#undef ST
#undef RMSFUSE_PIPE
#define RMSFUSE_PIPE(x, y, d) ((void)0)

/* Prefetches the 16- and 8-bit arrays' elements [j, j + QB) (a hint: it never
 * faults); q8u: the 8-bit slots (TX_Q8_MAIN_), else 0 (each slot's type read). */
static RMSFUSE_ALWAYS_INLINE void TXN(prefetch)(const unsigned C, const rmsfuse_typed_job *J, size_t j,
                                                 const unsigned q8u)
{
    for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++)
        if (s >= 2 && q8u ? (q8u >> s) & 1u : J->a[s] && rmsfuse_type_bytes(J->type[s]) < 4) {
            const size_t eb = s >= 2 && q8u ? 1u : rmsfuse_type_bytes(J->type[s]);
            const uintptr_t q = (uintptr_t)J->a[s] + j * eb;
            for (size_t o = 0; o < eb * QB; o += 64) {
                if (s == RMSFUSE_SLOT_GRAD)
                    __builtin_prefetch((const void *)(q + o), 0);
                else
                    __builtin_prefetch((const void *)(q + o), 1);
            }
        }
    if (J->extra && (C & 3u) == TXP_SPLIT) {
        const size_t eb = 2u;
        const uintptr_t q = (uintptr_t)J->extra + j * eb;
        for (size_t o = 0; o < eb * QB; o += 64)
            __builtin_prefetch((const void *)(q + o), 1);
    }
}

/* a[] of the body for the elements from j on: each array at element j. */
static RMSFUSE_ALWAYS_INLINE void TXN(at)(const unsigned C, const rmsfuse_typed_job *J, size_t j, char **a)
{
    for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++)
        a[s] = J->a[s] ? J->a[s] + j * rmsfuse_type_bytes(J->type[s]) : NULL;
    const unsigned P = C & 3u;
    a[TX_EXTRA] = P == TXP_SPLIT ? J->extra + j * 2 : P == TXP_MASTER ? J->extra + j * 4 : NULL;
    a[TX_I0] = (char *)(uintptr_t)j;
}

/* The body's a[] and the pending stores, before the loops over elements
 * from `begin` on; buf: the 8-bit slots' block buffers (QB floats per
 * slot), or NULL. */
static RMSFUSE_ALWAYS_INLINE void TXN(init)(struct TXN(ctx) *ctx, float (*buf)[QB], const rmsfuse_typed_job *J,
                                        size_t begin)
{
    char **const a = ctx->a;
    for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++) {
        a[TX_BUF + s] = buf && s >= 2 ? (char *)buf[s] : NULL;
        a[TX_SCALE + s] = NULL;
    }
    a[RMSFUSE_MAX_SLOTS] = NULL;
#if TX_PIPE_OK
    ctx->pi = SIZE_MAX;
#endif
    /* stochastic rounding: the range is in one 2^32 range (TX_FN_) */
    const uint64_t k2 = (J->flags & RMSFUSE_STOCHASTIC_ROUNDING) ? rmsfuse_sr_k2(J->key, begin) : 0u;
    a[TX_KEY] = (char *)(uintptr_t)(uint32_t)k2;
    a[TX_KEY_HI] = (char *)(uintptr_t)(uint32_t)(k2 >> 32);
#if TX_HW
    memset(&ctx->p, 0, sizeof ctx->p);
#endif
}

#if TX_PIPE_OK
/* The software-pipelined loops' last pass (TX_PIPED): the first stage over
 * a scratch vector (pairs: each half; 8-bit state: in place of the
 * block's buffers too), the second over the loop's last elements.  Out of
 * line, its V at run time: the body once per rule, not once per loop. */
#define RMSFUSE_TX_DRAIN_(r)                                                                                       \
    static __attribute__((noinline)) void RMSFUSE_CAT(tx_drain_##r, TX_SUFFIX)(                                     \
        const unsigned VP, const rmsfuse_##r##_k *kc, const struct TXN(ctx) *ctx)                                  \
    {                                                                                                              \
        struct TXN(ctx) z = *ctx;                                                                                  \
        u_t_cw zs[2] = {splat_cw(0u), splat_cw(0u)};                                                               \
        rmsfuse_pipe_scratch(z.a, z.ra, (char *)zs);                                                               \
        for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++)                                                           \
            z.a[TX_BUF + s] = (char *)zs;                                                                          \
        RMSFUSE_CAT(rmsfuse_##r##_body_tx, TX_SUFFIX)(kc, VP | 1u << TXV_DRAIN, z.a, 0);                           \
        if (TX_PAIRS(VP)) {                                                                                        \
            rmsfuse_pipe_scratch(z.a, z.ra, (char *)zs); /* the body gave them back */                             \
            RMSFUSE_CAT(rmsfuse_##r##_body_tx, TX_SUFFIX)(kc, VP | 1u << TXV_DRAIN | 1u << TXV_ODD, z.a, 0);       \
        }                                                                                                          \
    }
TX_RULES_HERE_(RMSFUSE_TX_DRAIN_)
#undef RMSFUSE_TX_DRAIN_
#endif

/* The loop over whole vectors (pairs, halves) of elements [begin, begin +
 * mv), st at a time, the body at VV (a pipelined VV never has halves: its
 * class has none, TX_HALVES_CLASS in the gate, so st fits either). */
#define TX_MAIN_(r, VV)                                                                                            \
    for (size_t i = 0; i < mv; i += st) {                                                                          \
        if (pf && i % QB == 0)                                                                                     \
            TXN(prefetch)(C, J, begin + i + TX_PF_BLOCKS * QB, 0u);                                                \
        RMSFUSE_CAT(rmsfuse_##r##_body_tx, TX_SUFFIX)(&kc, (VV), a, i);                                            \
        if (TX_PAIRS(V))                                                                                           \
            RMSFUSE_CAT(rmsfuse_##r##_body_tx, TX_SUFFIX)(&kc, (VV) | 1u << TXV_ODD, a, i);                        \
        else if (TX_HALVES(VV))                                                                                    \
            RMSFUSE_CAT(rmsfuse_##r##_body_tx, TX_SUFFIX)(&kc, (VV) | 1u << TXV_ODD, a, i + VW);                   \
        TXN(st_fix)(a, i);                                                                                         \
    }
/* The blocks of elements [begin, end) with 8-bit state, the body at VV,
 * a[] at begin (the body's i counts from there; each block's buffer at
 * its first element, so a[TX_BUF + s] + 4 i is buf[k][s] + 4 (i - (i0 -
 * begin))): each block's codes decoded (TX_Q8_PRE), its new values stored,
 * its scale and multiplier found after its loop (the division), and it is
 * encoded after the next block's loop, from the other of two buffers: the
 * division's latency then hides behind a block's work, not in front of the
 * encoding (Zen 5, AVX-512, alternated, in L2 and at DRAM size: 0.84-0.98
 * x the time of every 8-bit step, about what a build that did not wait
 * for the division at all gained, timed with wrong codes).
 * Software-pipelined (TX_PIPED) where a pass's second stage loads or
 * stores no state slot (not in RMSFUSE_LATE_<rule>): a block is complete
 * at its loop's end, and its last pass's second stage comes in the next
 * block's first pass, one drain after the last block.  (RMSProp with
 * momentum, drained at each block's end before its encoding, measured no
 * faster on the AMD Zen 3 VM: 0.94-1.14 x the time,
 * docs/performance-storage-log.md.)  The body's i counts from begin so
 * that a pending second stage finds the arrays of its own block. */
#define TX_Q8_MAIN_(r, VV)                                                                                         \
    do {                                                                                                           \
        size_t pi0 = 0, pm = 0; /* the block whose encoding waits: pm elements from pi0, in buf[k ^ 1] */          \
        const size_t qst = TX_HALVES(VV) ? 2 * VW : VW; /* a block's loop's step */                                \
        float ps[RMSFUSE_MAX_SLOTS] = {0}, pq[RMSFUSE_MAX_SLOTS] = {0};                                            \
        int pfin[RMSFUSE_MAX_SLOTS] = {0};                                                                         \
        unsigned k = 0;                                                                                            \
        for (size_t i0 = begin; i0 < end;) {                                                                       \
            const size_t next = (i0 / QB + 1) * QB, m = (next < end ? next : end) - i0, o = i0 - begin;            \
            if (m % qst) {                                                                                         \
                typed_block(kernel, kp, variant, J, i0, m);                                                        \
                i0 += m;                                                                                           \
                continue;                                                                                          \
            }                                                                                                      \
            if (pf)                                                                                                \
                TXN(prefetch)(C, J, i0 + TX_PF_BLOCKS * QB, q8u);                                                  \
            for (unsigned s = 2; s < RMSFUSE_MAX_SLOTS; s++) {                                                     \
                uint32_t sc = 0;                                                                                   \
                if (q8u & (1u << s))                                                                               \
                    memcpy(&sc, J->scale[s] + i0 / QB * 4, sizeof sc);                                             \
                a[TX_SCALE + s] = (char *)(uintptr_t)sc;                                                           \
                a[TX_BUF + s] = (char *)((uintptr_t)buf[k][s] - o * 4);                                            \
                ctx.mx[s] = splat_cw(0u);                                                                          \
            }                                                                                                      \
            if (TX_Q8_PRE)                                                                                         \
                for (unsigned s = 2; s < RMSFUSE_MAX_SLOTS; s++)                                                   \
                    if (q8u & (1u << s))                                                                           \
                        tx_q8_pre(J->type[s], (nonneg >> s) & 1u, q8f16c, J->a[s] + i0, tx_float(a[TX_SCALE + s]), \
                                  buf[k][s], m);                                                                   \
            for (size_t i = o; i < o + m; i += qst) {                                                              \
                RMSFUSE_CAT(rmsfuse_##r##_body_tx, TX_SUFFIX)(&kc, (VV), a, i);                                    \
                if (TX_HALVES(VV))                                                                                 \
                    RMSFUSE_CAT(rmsfuse_##r##_body_tx, TX_SUFFIX)(&kc, (VV) | 1u << TXV_ODD, a, i + VW);           \
                TXN(st_fix)(a, i);                                                                                 \
            }                                                                                                      \
            TX_Q8_ENCODE_PENDING_;                                                                                 \
            for (unsigned s = 2; s < RMSFUSE_MAX_SLOTS; s++)                                                       \
                if (q8u & (1u << s))                                                                               \
                    q8_scale_of(q8_amax_of(hmax_cw(ctx.mx[s]), buf[k][s], m, &pfin[s]), &ps[s], &pq[s]);           \
            pi0 = i0;                                                                                              \
            pm = m;                                                                                                \
            k ^= 1u;                                                                                               \
            i0 += m;                                                                                               \
        }                                                                                                          \
        TX_Q8_ENCODE_PENDING_;                                                                                     \
    } while (0)
#define TX_Q8_ENCODE_PENDING_                                                                                      \
    for (unsigned s = 2; s < RMSFUSE_MAX_SLOTS; s++)                                                               \
        if (pm && (q8u & (1u << s)))                                                                               \
            q8_encode_block(J->type[s], (nonneg >> s) & 1u, buf[k ^ 1u][s], J->a[s] + pi0,                        \
                            J->scale[s] + pi0 / QB * 4, pm, ps[s], pq[s], pfin[s])
#if TX_PIPE_OK
#define TX_DRAIN_CALL_(r, VP) RMSFUSE_CAT(tx_drain_##r, TX_SUFFIX)((VP), &kc, &ctx)
#else
#define TX_DRAIN_CALL_(r, VP) ((void)0)
#endif
/*
 * Elements [begin, end) of a typed tensor of class C, rule r, with the
 * rule's constants in kc.  Without 8-bit state: one loop over the whole
 * range (the body's i from 0), prefetching TX_PF_BLOCKS blocks ahead once
 * per block on large ranges; the last (end - begin) % VW elements through
 * the block path.  With 8-bit state: block by block from the tensor's
 * element 0 (TX_Q8_MAIN_), each block's new values encoded after it; a
 * block whose length is not a multiple of VW (the tensor's last) through
 * the block path.  Either software-pipelined on AVX2 (TX_PIPED) where the
 * rule has a stage point, over TX_PIPE_MIN_N elements or more.
 */
#define RMSFUSE_TX_LOOPS_(r)                                                                                       \
    static RMSFUSE_ALWAYS_INLINE void RMSFUSE_CAT(tx_loops_##r, TX_SUFFIX)(                                        \
        const unsigned C, const unsigned V, rmsfuse_kernel kernel, const void *kp, unsigned variant,               \
        const rmsfuse_typed_job *J, size_t begin, size_t end)                                                      \
    {                                                                                                              \
        const unsigned nonneg = RMSFUSE_NONNEG_##r;                                                                \
        const int q8 = ((C >> 2) & 3u) == TXS_Q8;                                                                  \
        const int pf = end - begin >= RMSFUSE_PREFETCH_MIN_N && rmsfuse_cpu_prefers_typed_prefetch();              \
        const int q8f16c = TX_Q8_PRE && q8 && rmsfuse_cpu_has_f16_convert();                                     \
        /* the 8-bit slots: J->used's state slots, a constant in the loops of                                    \
         * constant variants (TX_VCASE_), whose blocks' code then has none of                                    \
         * the other slots' tests */                                                                             \
        const unsigned q8u = rmsfuse_##r##_used(V & 0xFFu) & ~3u;                                                  \
        float buf[q8 ? 2 : 1][q8 ? RMSFUSE_MAX_SLOTS : 1][QB] __attribute__((aligned(64)));                        \
        struct TXN(ctx) ctx;                                                                                       \
        char **const a = ctx.a;                                                                                    \
        TXN(init)(&ctx, q8 ? buf[0] : NULL, J, begin);                                                             \
        const rmsfuse_##r##_k kc = *(const rmsfuse_##r##_k *)kp; /* in registers */                                \
        const int late = ((V) & RMSFUSE_LATE_##r) != 0u;                                                           \
        const unsigned VP = V | ((TX_PIPE_OK && RMSFUSE_PIPED_##r && (((V) >> TXV_GPLAIN) & 1u) &&                 \
                                  (TX_PIPE_LATE_ONLY ? !q8 && late && !TX_HALVES_CLASS(V) : !q8 || !late))         \
                                     ? 1u << TXV_PIPE : 0u);                                                       \
        TXN(at)(C, J, begin, a);                                                                                   \
        if (!q8) {                                                                                                 \
            const size_t st = (TX_PAIRS(V) || TX_HALVES(V)) ? 2 * VW : VW, mv = (end - begin) / st * st;          \
            if (TX_PIPED(VP) && mv >= TX_PIPE_MIN_N) {                                                             \
                TX_MAIN_(r, VP);                                                                                   \
                TX_DRAIN_CALL_(r, VP); /* the last pass's second stage */                                          \
            } else {                                                                                               \
                TX_MAIN_(r, V);                                                                                    \
            }                                                                                                      \
            typed_blocks(kernel, kp, variant, J, begin + mv, end); /* the tail, within each block */               \
            return;                                                                                                \
        }                                                                                                          \
        if (TX_PIPED(VP) && end - begin >= TX_PIPE_MIN_N) { /* 8-bit state: the blocks */                          \
            TX_Q8_MAIN_(r, VP);                                                                                    \
            TX_DRAIN_CALL_(r, VP); /* the last pass's second stage */                                              \
        } else {                                                                                                   \
            TX_Q8_MAIN_(r, V);                                                                                     \
        }                                                                                                          \
    }
TX_RULES_HERE_(RMSFUSE_TX_LOOPS_)

/* The body's V for class C: the variant, the class, the gradient's type, the
 * param's 16-bit type, the non-negative slots, stochastic rounding (bf16 and
 * f16 params) and whether the variant stores flushed state. */
static RMSFUSE_ALWAYS_INLINE unsigned TXN(v_of)(const unsigned C, const unsigned nonneg, const unsigned flushed,
                                                unsigned variant, const rmsfuse_typed_job *J)
{
    const unsigned P = C & 3u;
    const unsigned sr = (P == TXP_BF16 || P == TXP_MASTER) && (J->flags & RMSFUSE_STOCHASTIC_ROUNDING) != 0;
    const unsigned gbf16 = J->type[RMSFUSE_SLOT_GRAD] == RMSFUSE_BF16;
    const unsigned gf16 = J->type[RMSFUSE_SLOT_GRAD] == RMSFUSE_F16;
    const unsigned pf16 = J->type[RMSFUSE_SLOT_PARAM] == RMSFUSE_F16;
    const unsigned sfl = (variant & flushed) != 0;
    return (variant & 0xFFu) | C << 8 | gbf16 << TXV_G | gf16 << TXV_GF16 | sr << TXV_SR | pf16 << TXV_PF16 | nonneg << 16 |
           sfl << TXV_SFL;
}

/* One function per rule and class (not the all-float32 class, which the
 * plain kernel runs), and their table.  The loops know V at compile time
 * but for the variant, the gradient's type, the param's 16-bit type and the
 * gradient's scaling (branches on loop invariants; the types are constants
 * for a 16-bit param beside bf16 state, TX_LOOPS_TYPES_); stochastic rounding and,
 * beside bf16 state, the flush variants get loops of their own (Zen 5,
 * AdamW all-bf16 in L2: 0.31 ns per element with both chosen at run time
 * in one loop, 0.24 with loops of their own).  Each rule has its own loop
 * function (tx_loops_<rule>): a switch over the rules in an inlined
 * function would copy every rule's body into each of these before the
 * switch is folded.  The flush variant is one bit of the variant (asserted),
 * so that the flush loops know the whole bit. */
/* The loops of rule r at V, and, where the rule names a variant bit that
 * changes its slots (RMSFUSE_TXSPLIT_<rule>), one loop for each value of it
 * (not beside 8-bit state, whose block coding takes most of its time). */
#define TX_LOOPS_AT_(r, W) RMSFUSE_CAT(tx_loops_##r, TX_SUFFIX)(C, (W), kernel, kp, variant, J, begin, end)
#define TX_LOOPS_SPLIT_(r, W)                                                                              \
    do {                                                                                                   \
        if (((C >> 2) & 3u) == TXS_Q8)                                                                     \
            TX_LOOPS_AT_(r, (W));                                                                          \
        else if (variant & RMSFUSE_TXSPLIT_##r)                                                            \
            TX_LOOPS_AT_(r, (W) | RMSFUSE_TXSPLIT_##r);                                                    \
        else                                                                                               \
            TX_LOOPS_AT_(r, (W) & ~RMSFUSE_TXSPLIT_##r);                                                   \
    } while (0)
/* With TX_HW, a bf16 or f16 param beside bf16 state (all-bf16; f16 with
 * bf16 state) without stochastic rounding: one loop for a bf16 param and
 * gradient and one for an f16 param and gradient, the types constants
 * (V's bits TXV_G, TXV_GF16 and TXV_PF16); other pairs take the loop that
 * reads them at run time.  With the types read in the loop GCC put the bf16 loads and
 * stores out of line, 10 or 11 taken branches per vector in RMSProp's
 * loop (Zen 5, in L2, ns per element: all-bf16 RMSProp 0.25 -> 0.19, with
 * momentum 0.34 -> 0.29, AdamW unchanged).  Only this class: the same for
 * every 16-bit param class took the AVX-512 object's compile time from
 * 38 to 58 s, for little more.  The functions start on a 64-byte line: with
 * the default 16, code that did not change ran up to 13% faster or slower
 * in L2 when other functions moved it (RMSProp with momentum and a bf16
 * gradient: 0.20 or 0.23 ns per element, the same instructions). */
#define TX_LOOPS_TYPES_(r, p, W)                                                                           \
    do {                                                                                                   \
        if (TX_HW && (p) == TXP_BF16 && TX_PF16(W) && TX_GF16(W))                                          \
            TX_LOOPS_SPLIT_(r, ((W) | 1u << TXV_PF16 | 1u << TXV_GF16) & ~(1u << TXV_G));                  \
        else if (TX_HW && (p) == TXP_BF16 && !TX_PF16(W) && TX_G(W))                                       \
            TX_LOOPS_SPLIT_(r, ((W) | 1u << TXV_G) & ~(1u << TXV_GF16 | 1u << TXV_PF16));                  \
        else                                                                                               \
            TX_LOOPS_SPLIT_(r, (W));                                                                       \
    } while (0)
/* AVX2 (TX_FEW_CLASSES), a bf16 gradient beside float32 state (a float32 or
 * split param): the loop of variant v with every bit of V a constant, for
 * the variants of RMSFUSE_TXHOT_<rule> (src/rules/registry.h) on a gradient
 * read as it is; each case returns.  With the variant read in the loop,
 * each vector of elements took 8 to 10 branches on its bits, and AMD Zen 3
 * ran it far slower than the float32 step (in L2, ns per element, variant
 * at run time -> a constant: RMSProp 0.58 -> 0.37, with momentum 0.73 ->
 * 0.52, SGD with momentum 0.40 -> 0.20 (float32: 0.35, 0.45, 0.17), the
 * split param 0.52 -> 0.35 in SGD).  The other variants keep the loop that
 * reads them (every valid variant a constant took the AVX2 object's compile
 * time from 28 to 171 s; these, to 37 s). */
#if TX_F16C
#define TX_HOT_TYPES (1u << TXV_GF16 | 1u << TXV_PF16) /* an f16 param and gradient */
#else
#define TX_HOT_TYPES (1u << TXV_G) /* a bf16 gradient */
#endif
/* The variants that get constant loops: RMSFUSE_TXHOT_<rule>; with
 * -DRMSFUSE_TX_HOT_FEW (the sanitizer presets, CMakePresets.json), only
 * those of its bits that change the loops' structure (the split bit, the
 * late stage's, the state's flushing): 12 of the 42 valid variants.  The
 * others' constant loops are the same source with other bits of the
 * body's arithmetic (weight decay, dampening); under ASan and UBSan they
 * made most of the sanitize preset's build (Zen 5 VM, -j2: 328-376 s with
 * every variant, 201 s with these; docs/reliability.md).  Not in a
 * library that ships: only the presets' RMSFUSE_ISA_EXTRA_FLAGS set it. */
#ifdef RMSFUSE_TX_HOT_FEW
#define TX_HOTSET_(r) (RMSFUSE_TXHOT_##r & (RMSFUSE_TXSPLIT_##r | RMSFUSE_LATE_##r | RMSFUSE_FLUSHED_##r))
#else
#define TX_HOTSET_(r) RMSFUSE_TXHOT_##r
#endif
#define TX_VCASE_(r, v)                                                                                    \
    case (v):                                                                                              \
        if ((v) < RMSFUSE_NVAR_##r && rmsfuse_##r##_valid(v) && ((v) & ~TX_HOTSET_(r)) == 0u) {            \
            TX_LOOPS_AT_(r, ((VH | TH | 1u << TXV_GPLAIN) &                                                \
                             ~(0xFFu | ((1u << TXV_G | 1u << TXV_GF16 | 1u << TXV_PF16) & ~TH) |           \
                               1u << TXV_SFL)) |                                                           \
                                (v) | (((v) & RMSFUSE_FLUSHED_##r) ? 1u << TXV_SFL : 0u));                 \
            return;                                                                                        \
        }                                                                                                  \
        break;
/* On a gradient read as it is, in a variant of RMSFUSE_TXHOT_<rule>: that
 * variant's constant loop, which returns; else nothing.  W: the body's V
 * but for the bits TX_VCASE_ sets, stochastic rounding a constant in it; T:
 * the types' bits of the loops (TX_HOT_TYPES: a bf16 gradient, or with F16C
 * an f16 param and gradient; 0: float32).  The cases' conditions fold to
 * constants, so the loops of the variants they leave out are never built.
 * In these loops the gradient's sign flip (RMSFUSE_GSIGN) is a branch on
 * the invariant sgn, not an XOR with 0 on every vector (AMD Zen 3 VM, in
 * L2, 7 alternations, ns per element, XOR -> branch: all-bf16 RMSProp 0.477
 * -> 0.454, split RMSProp 0.457 -> 0.423, master weights AdamW 0.584 ->
 * 0.548; with SGD_V_DAMP too, SGD with momentum all-bf16 0.320 -> 0.286,
 * master weights 0.315 -> 0.285); a branch, not the blocks: these loops'
 * all-bf16 AdamW with RMSFUSE_MAXIMIZE took 0.7-1.0 ns per element either
 * way, 1.4-2.1 in the blocks. */
#define TX_HOT_(r, W) TX_HOT_T_(r, (W), TX_HOT_TYPES)
/* Float32 state (or none) on a bf16 gradient beside a float32, bf16 (not
 * f16: TX_HOT_TYPES has no f16 param), master-weight or split param: the
 * constant loops too, on AVX2 (its few classes) and AVX-512.  On AVX-512
 * these classes had only the loop that reads the variant: AMD Zen 5 VM, in
 * L2, 3 alternations, ns per element, that loop -> the constant ones (and
 * RMSProp with momentum pipelined): SGD with momentum, float32 params
 * 0.151 -> 0.061, master weights 0.198 -> 0.095, split 0.148 -> 0.087;
 * RMSProp 0.174 -> 0.138, 0.203 -> 0.165, 0.202 -> 0.163; with momentum
 * 0.211 -> 0.164, 0.279 -> 0.219, 0.306 -> 0.215; AdamW 0.164 -> 0.143,
 * 0.212 -> 0.192, 0.208 -> 0.189; AdaGrad 0.137 -> 0.135, 0.181 -> 0.152,
 * 0.163 -> 0.152.  The library grew from 2.80 to 3.67 MB, and the AVX-512
 * objects' compile from 58 to 128 s of CPU time (gcc 12). */
#define TX_HOT_F32S (TX_FEW_CLASSES || TX_HW)
#define TX_HOT_T_(r, W, T)                                                                                 \
    do {                                                                                                   \
        const unsigned VH = (W), TH = (T);                                                                 \
        const rmsfuse_grad_k in = ((const rmsfuse_##r##_k *)kp)->in;                                       \
        if ((variant & ~TX_HOTSET_(r)) == 0u && in.gs == 1.0f && in.gc == INFINITY)                        \
            switch (variant) {                                                                             \
                RMSFUSE_FOR_EACH_VARIANT(TX_VCASE_, r)                                                     \
            default:                                                                                       \
                break;                                                                                     \
            }                                                                                              \
    } while (0)
/* AVX2 (TX_FEW_CLASSES), a bf16 param beside bf16 state (all-bf16, no
 * master): on a bf16 gradient read as it is, the constant loop of a
 * variant of RMSFUSE_TXHOT_<rule> (TX_VCASE_), in pairs (TX_PAIRS), one
 * with stochastic rounding and one without, the former where the range is
 * in one 2^32 range of elements (one K2, docs/math.md: every tensor of
 * fewer elements); everything else the block path, as before this class
 * had loops (with the variant and the types read in the loop it measured
 * slower than the blocks: the comment in storage.h).  AMD Zen 3 VM, ns per
 * element, blocks -> constant loops, in L2: RMSProp 1.08 -> 0.88, with
 * momentum 1.45 -> 1.43, SGD with momentum 0.81 -> 0.59, AdamW 1.35 ->
 * 1.26; at DRAM size 1.15 -> 0.94, 1.55 -> 1.57, 0.91 -> 0.72, 1.48 ->
 * 1.43 (the step is compute-bound there too on AVX2).  Then, in a slower
 * spell of the VM, one vector at a time -> pairs, in L2: 1.05 -> 0.76,
 * 1.58 -> 1.13, 0.76 -> 0.49, 1.25 -> 1.07; stochastic rounding, blocks ->
 * pairs: 2.48 -> 1.18, 3.20 -> 1.56, 1.79 -> 0.79, 2.81 -> 1.28.  Storing
 * each bf16 param after the next vector's body gained 0.07 more in three
 * of the four but made the other classes' loops 3-8% slower (a larger
 * frame): not kept.  The AVX2 storage object's compile at -O3: 16 -> 22 s
 * (constant loops) -> 31 s (pairs, with stochastic rounding), beside the
 * float32 one's 32 s. */
#if TX_F16C
/* AVX2 with F16C (TX_F16C, storage.h): an f16 param and gradient beside
 * bf16 state, rounded to nearest even, the gradient read as it is: the
 * constant loop of a variant of RMSFUSE_TXHOT_<rule> (TX_VCASE_), one
 * vector at a time, f16 by vcvtph2ps and vcvtps2ph; everything else the
 * block path. */
#define TX_FEW_BF16_(r, q)                                                                                 \
        if ((q) == TXS_BF16) {                                                                             \
            if (TX_PF16(V) && TX_GF16(V) && !TX_SR(V))                                                     \
                TX_HOT_(r, V & ~(1u << TXV_SR));                                                           \
            typed_blocks(kernel, kp, variant, J, begin, end);                                              \
            return;                                                                                        \
        }
#elif TX_FEW_CLASSES
#define TX_FEW_BF16_(r, q)                                                                                 \
        if ((q) == TXS_BF16) {                                                                             \
            if (TX_G(V) && !TX_SR(V))                                                                      \
                TX_HOT_(r, V & ~(1u << TXV_SR));                                                           \
            else if (TX_G(V) && tx_one_k2(begin, end))                                                     \
                TX_HOT_(r, V | 1u << TXV_SR);                                                              \
            typed_blocks(kernel, kp, variant, J, begin, end);                                              \
            return;                                                                                        \
        }
#else
#define TX_FEW_BF16_(r, q)
#endif
/* AVX2 (TX_FEW_CLASSES), a bf16 param with float32 master weights beside
 * float32 state: on a bf16 gradient read as it is, rounded to nearest
 * even, the constant loop of a variant of RMSFUSE_TXHOT_<rule>
 * (TX_VCASE_, software-pipelined: TX_PIPED); everything else the block
 * path.  AMD Zen 3 VM, ns per element, 3 alternations, block path ->
 * fused, in L2: RMSProp 0.621 -> 0.496, with momentum 0.684 -> 0.639, SGD
 * with momentum 0.397 -> 0.305, AdamW 0.651 -> 0.576; at DRAM size 0.696
 * -> 0.587, 0.772 -> 0.714, 0.537 -> 0.509, 0.761 -> 0.687.  Without the
 * software pipelining, RMSProp with momentum was slower fused (0.684 ->
 * 0.757 in L2), so the class kept the block path until then. */
#define TX_FEW_MASTER_(r, p)                                                                               \
        if (TX_FEW_CLASSES && (p) == TXP_MASTER) {                                                         \
            if (TX_G(V) && !TX_SR(V) && !TX_PF16(V))                                                       \
                TX_HOT_(r, V & ~(1u << TXV_SR));                                                           \
            typed_blocks(kernel, kp, variant, J, begin, end);                                              \
            return;                                                                                        \
        }
/* AVX2 (TX_FEW_CLASSES), 8-bit state beside a float32 param and gradient
 * or a bf16 param and gradient, rounded to nearest even: the constant
 * loop of a variant of RMSFUSE_TXHOT_<rule> (TX_VCASE_) on a gradient read
 * as it is, its block's codes decoded before the loop (tx_q8_pre) and
 * encoded after it, out of line (q8_encode_block); everything else the
 * block path.  AMD Zen 3 VM, ns per element, 4 alternations, block path ->
 * fused, in L2 / at DRAM size: RMSProp float32 0.911 -> 0.803 / 0.942 ->
 * 0.843, bf16 1.152 -> 1.034 / 1.147 -> 1.036; SGD with momentum float32
 * 0.768 -> 0.702 / 0.838 -> 0.773, bf16 0.990 -> 0.897 / 0.999 -> 0.914;
 * AdaGrad float32 0.925 -> 0.701 / 1.008 -> 0.897
 * (docs/performance-storage-log.md).  With two 8-bit slots (momentum,
 * Adam's moments) the fused loops were no faster than the blocks while
 * they decoded in the loop (AdamW, bf16: 1.75 -> 1.84 in L2; nor
 * software-pipelined, TX_PIPED with a drain per block: RMSProp with
 * momentum 1.74 -> 1.88); with tx_q8_pre, 5 alternations, in L2 / at DRAM
 * size: RMSProp with momentum float32 1.543 -> 1.343 / 1.575 -> 1.385,
 * bf16 1.817 -> 1.723 / 1.866 -> 1.699; AdamW float32 1.442 -> 1.331 /
 * 1.524 -> 1.409, bf16 1.705 -> 1.577 / 1.768 -> 1.592.  With the
 * variant read in the loop they were slower (SGD 0.74 -> 1.16).  Software-
 * pipelined across the blocks (TX_Q8_MAIN_) where the rule has a stage
 * point and the variant no state after it (not RMSProp's momentum), 6
 * alternations, in L2 / at DRAM size: RMSProp bf16 0.956 -> 0.876 / 0.913
 * -> 0.877, AdaGrad bf16 0.862 -> 0.841 / 0.891 -> 0.808, AdamW float32
 * 1.228 -> 1.179 / 1.271 -> 1.213, bf16 1.507 -> 1.366 / 1.675 -> 1.461.
 * The linear map too (RMSFUSE_Q8_LINEAR, tx_class_of's q8lin): the loops
 * read and write float32 buffers whatever the map, which only the block's
 * decoding and encoding know (its codes by vcvtps2dq, q8_encode_x4); bf16
 * params, 5 alternations, block path -> fused, in L2 / at DRAM size:
 * RMSProp 1.117 -> 0.898 / 1.175 -> 0.894, with momentum 1.712 -> 1.499 /
 * 1.743 -> 1.396, AdaGrad 1.139 -> 0.781 / 1.121 -> 0.801, SGD with
 * momentum 0.985 -> 0.632 / 1.034 -> 0.634, AdamW 1.565 -> 1.254 / 1.638
 * -> 1.224.  The map is read per block (J->type), a branch beside the
 * block's decoding and encoding: the float-like map's hot loops keep their
 * instructions (AdamW: 84 per 8 elements), 25 more per block.  Loops of
 * their own for the linear map (the map a constant of V) saved 6 of those
 * 25 and took the AVX2 RMSProp object's compile from 36 to 72 s: not
 * kept.  A bf16 param rounded stochastically beside them (the fewest
 * bytes), where the range is in one 2^32 range of elements (one K2, as
 * TX_FEW_BF16_): the same constant loops, one vector at a time (no pairs
 * beside 8-bit state); before 2026-12-05 the block path.  AMD Zen 5 VM,
 * AVX2 forced, at DRAM size, 3 alternations, ns per element, block path
 * -> fused: RMSProp 0.936 -> 0.676, with momentum 1.405 -> 1.085, SGD with
 * momentum 0.865 -> 0.543, AdamW 1.366 -> 0.969, AdaGrad 0.950 -> 0.653
 * (rounded to nearest even: 0.593, 1.021, 0.453, 0.886, 0.574); the AVX2
 * rule objects' compile 57 -> 84 s of CPU time (gcc 12). */
#define TX_FEW_Q8_(r, p, q)                                                                                \
        if (TX_FEW_CLASSES && (q) == TXS_Q8) {                                                             \
            if (!TX_SR(V) && !TX_PF16(V) && !TX_GF16(V) && TX_G(V) == ((p) == TXP_BF16))                   \
                TX_HOT_T_(r, V & ~(1u << TXV_SR), (p) == TXP_BF16 ? 1u << TXV_G : 0u);                     \
            else if ((p) == TXP_BF16 && TX_SR(V) && !TX_PF16(V) && TX_G(V) && tx_one_k2(begin, end))      \
                TX_HOT_T_(r, V, 1u << TXV_G);                                                              \
            typed_blocks(kernel, kp, variant, J, begin, end);                                              \
            return;                                                                                        \
        }
/* AVX-512 (TX_HW), 8-bit state beside a float32 param and gradient or a
 * bf16 param and gradient, rounded to nearest even: the constant loop of a
 * variant of RMSFUSE_TXHOT_<rule> (TX_VCASE_) on a gradient read as it is,
 * as on AVX2 (TX_FEW_Q8_); everything else the loops that read the
 * variant.  With the variant read in the loop, its branches made the loop
 * of SGD with momentum, without the block's decoding and encoding, 3 x
 * the float32 step's time (Zen 5 VM, in L2: 0.22 against 0.07 ns per
 * element); now 0.08.  Best of 4 alternations, ns per element in L2,
 * decoded before the loop -> constant loops: RMSProp 0.363 -> 0.280, bf16
 * 0.429 -> 0.339; with momentum 0.581 -> 0.503; SGD with momentum 0.330 ->
 * 0.237, bf16 0.385 -> 0.278; AdamW 0.501 -> 0.486, bf16 0.562 -> 0.536.
 * The library's build after a change to this file: 42 -> 57 s at -j2.
 * And a bf16 param rounded stochastically beside them, as on AVX2 (then
 * in halves too: TX_HALVES_CLASS), where before 2026-12-05 the loop that
 * reads the variant ran: Zen 5 VM, 3 alternations, ns per element in L2 (at
 * DRAM size 0.83-0.95 x the time too): RMSProp 0.424 -> 0.363, with
 * momentum 0.636 -> 0.567, SGD with momentum 0.352 -> 0.293, AdamW 0.562
 * -> 0.525, AdaGrad 0.374 -> 0.356; the library's compile 181 -> 193 s of
 * CPU time. */
#define TX_HW_Q8_(r, p, q)                                                                                 \
        if (TX_HW && (q) == TXS_Q8 && ((p) == TXP_F32 || (p) == TXP_BF16) && !TX_SR(V) && !TX_PF16(V) &&   \
            !TX_GF16(V) && TX_G(V) == ((p) == TXP_BF16))                                                   \
            TX_HOT_T_(r, V & ~(1u << TXV_SR), (p) == TXP_BF16 ? 1u << TXV_G : 0u);                         \
        else if (TX_HW && (q) == TXS_Q8 && (p) == TXP_BF16 && TX_SR(V) && !TX_PF16(V) && TX_G(V) &&        \
                 tx_one_k2(begin, end))                                                                    \
            TX_HOT_T_(r, V, 1u << TXV_G);
/* AVX-512 (TX_HW), a bf16 param and gradient or an f16 param and gradient
 * beside bf16 state, rounded to nearest even: likewise the constant loop
 * of a variant of RMSFUSE_TXHOT_<rule> on a gradient read as it is, the
 * types constants as in TX_LOOPS_TYPES_.  Zen 5 VM, best of 4
 * alternations, ns per element, variant read in the loop -> constant, in
 * L2: all-bf16 RMSProp 0.184 -> 0.175, with momentum 0.284 -> 0.276, SGD
 * with momentum 0.148 -> 0.120, AdamW 0.232 -> 0.224; f16 params 0.172
 * -> 0.164, 0.279 -> 0.255, 0.150 -> 0.097, 0.222 -> 0.206; at DRAM size
 * 0.90-0.98 x the time.  The library's build: 57 -> 66 s at -j2.  And
 * all-bf16 rounded stochastically where the range is in one 2^32 range
 * of elements (one K2, as TX_FEW_BF16_ on AVX2), best of 4 alternations,
 * in L2: RMSProp 0.350 -> 0.296, with momentum 0.479 -> 0.416, SGD with
 * momentum 0.317 -> 0.271, AdamW 0.410 -> 0.373; at DRAM size 0.84-0.90
 * x the time; the build 65 -> 79 s. */
#define TX_HW_BF16_(r, p, q)                                                                               \
        if (TX_HW && (q) == TXS_BF16 && (p) == TXP_BF16 && !TX_SR(V)) {                                    \
            if (TX_PF16(V) && TX_GF16(V))                                                                  \
                TX_HOT_T_(r, V & ~(1u << TXV_SR), 1u << TXV_PF16 | 1u << TXV_GF16);                        \
            else if (!TX_PF16(V) && TX_G(V))                                                               \
                TX_HOT_T_(r, V & ~(1u << TXV_SR), 1u << TXV_G);                                            \
        } else if (TX_HW && (q) == TXS_BF16 && (p) == TXP_BF16 && !TX_PF16(V) && TX_G(V) &&                \
                   tx_one_k2(begin, end))                                                                  \
            TX_HOT_T_(r, V | 1u << TXV_SR, 1u << TXV_G);
/* AVX-512 (TX_HW), a bf16 param rounded stochastically beside float32
 * state (or none), the param's float32 value not kept (no master weights):
 * the constant loop of a variant of RMSFUSE_TXHOT_<rule> on a bf16
 * gradient read as it is, where the range is in one 2^32 range of elements
 * (one K2), in halves (TX_HALVES_CLASS), as beside bf16 and 8-bit state;
 * before 2026-12-05 the loop that reads the variant.  AMD Zen 5 VM, 3
 * alternations, ns per element in L2 (at DRAM size 0.82-0.95 x the time,
 * AdamW 1.04 x in a memory spell that moved its roofline as much):
 * RMSProp 0.269 -> 0.196, with momentum 0.358 -> 0.263, SGD with momentum
 * 0.212 -> 0.155, AdamW 0.302 -> 0.235, AdaGrad 0.257 -> 0.192; the AVX-512
 * rule objects' compile 158 -> 170 s of CPU time (gcc 12). */
#define TX_HW_SR32_(r, p, q)                                                                               \
        if (TX_HW && (q) == TXS_F32 && (p) == TXP_BF16 && TX_SR(V) && !TX_PF16(V) && TX_G(V) &&            \
            tx_one_k2(begin, end))                                                                         \
            TX_HOT_T_(r, V, 1u << TXV_G);
/* Rule r's loops of class (p, q): a function of its own, shared between
 * the objects of one ISA (hidden: not exported), named after the ISA. */
#define TX_FNAME_(r, p, q) RMSFUSE_CAT(RMSFUSE_CAT(RMSFUSE_CAT(rmsfuse_tx_, RMSFUSE_ISA), _##r##_##p##_##q), TX_SUFFIX)
#define TX_DECL_(r, p, q)                                                                                  \
    __attribute__((visibility("hidden"))) void TX_FNAME_(r, p, q)(                                         \
        rmsfuse_kernel kernel, const void *kp, unsigned variant, const rmsfuse_typed_job *J, size_t begin, \
        size_t end);
#define TX_FN_(r, p, q)                                                                                    \
    __attribute__((noinline, aligned(64))) void TX_FNAME_(r, p, q)(                                        \
        rmsfuse_kernel kernel, const void *kp, unsigned variant, const rmsfuse_typed_job *J, size_t begin, \
        size_t end)                                                                                        \
    {                                                                                                      \
        const unsigned C = TX_CLASS(p, q), F = RMSFUSE_FLUSHED_##r;                                        \
        _Static_assert((RMSFUSE_FLUSHED_##r & (RMSFUSE_FLUSHED_##r - 1u)) == 0, "one flush bit");          \
        const unsigned V = TXN(v_of)(C, RMSFUSE_NONNEG_##r, F, variant, J);                                \
        TX_FEW_BF16_(r, q)                                                                                 \
        TX_FEW_MASTER_(r, p)                                                                               \
        TX_FEW_Q8_(r, p, q)                                                                                \
        TX_HW_Q8_(r, p, q)                                                                                 \
        TX_HW_BF16_(r, p, q)                                                                               \
        TX_HW_SR32_(r, p, q)                                                                               \
        if (TX_SR(V)) { /* in pieces within one 2^32 range: one K2 each (docs/math.md) */                  \
            for (size_t b = begin, e; b < end; b = e) {                                                    \
                const uint64_t next = (((uint64_t)b >> 32) + 1u) << 32;                                    \
                e = (uint64_t)end < next ? end : (size_t)next;                                             \
                RMSFUSE_CAT(tx_loops_##r, TX_SUFFIX)(C, V | 1u << TXV_SR, kernel, kp, variant, J, b, e);   \
            }                                                                                              \
        } else if ((q) == TXS_BF16 && TX_SFLUSHED(V))                                                      \
            TX_LOOPS_TYPES_(r, p, (V | F | 1u << TXV_SFL) & ~(1u << TXV_SR));                              \
        else if ((q) == TXS_BF16)                                                                          \
            TX_LOOPS_TYPES_(r, p, V & ~(F | 1u << TXV_SFL | 1u << TXV_SR));                                \
        else if (TX_HOT_F32S && TX_G(V) && !TX_PF16(V)) {                                                  \
            TX_HOT_(r, V & ~(1u << TXV_SR));                                                               \
            TX_LOOPS_SPLIT_(r, (V | 1u << TXV_G) & ~(1u << TXV_SR | 1u << TXV_GF16 | 1u << TXV_PF16));     \
        }                                                                                                  \
        else                                                                                               \
            TX_LOOPS_SPLIT_(r, V & ~(1u << TXV_SR));                                                       \
    }
#define TX_ENTRY_(r, p, q) [RMSFUSE_RULE_##r][TX_CLASS(p, q)] = TX_FNAME_(r, p, q),
/* The classes of this instantiation (the others take the block path):
 * with TX_FEW_CLASSES, float32 state beside a float32, master-weight
 * (TX_FEW_MASTER_) or split param, and all-bf16 (TX_FEW_BF16_). */
#if TX_F16C
#define TX_LIST_(X, r) X(r, 1, 1)
#elif TX_FEW_CLASSES
#define TX_LIST_(X, r) X(r, 0, 0) X(r, 2, 0) X(r, 3, 0) X(r, 1, 1) X(r, 0, 2) X(r, 1, 2)
#else
#define TX_LIST_(X, r) TX_ALL_(X, r)
#endif
#define TX_RULE_DECLS_(r) TX_LIST_(TX_DECL_, r)
RMSFUSE_RULES(TX_RULE_DECLS_)
#define TX_RULE_FNS_(r) TX_LIST_(TX_FN_, r)
TX_RULES_HERE_(TX_RULE_FNS_)

#if RMSFUSE_KPART_STORAGE_OPS
#define TX_RULE_ENTRIES_(r) TX_LIST_(TX_ENTRY_, r)
static const tx_fn TXN(table)[RMSFUSE_N_RULES][TX_NCLASS] = {RMSFUSE_RULES(TX_RULE_ENTRIES_)};
#undef TX_RULE_ENTRIES_
#endif


#undef RMSFUSE_TX_LOOPS_
#undef TX_Q8_PRE
#undef TX_DRAIN_CALL_
#undef TX_MAIN_
#undef TX_Q8_MAIN_
#undef TX_FN_
#undef TX_HOT_
#undef TX_FEW_BF16_
#undef TX_FEW_MASTER_
#undef TX_FEW_Q8_
#undef TX_HW_Q8_
#undef TX_HW_BF16_
#undef TX_HOT_T_
#undef TX_VCASE_
#undef TX_HOT_TYPES
#undef TX_HOT_F32S
#undef TX_LOOPS_AT_
#undef TX_LOOPS_SPLIT_
#undef TX_LOOPS_TYPES_
#undef TX_ENTRY_
#undef TX_RULE_FNS_
#undef TX_RULE_DECLS_
#undef TX_DECL_
#undef TX_FNAME_
#undef TX_LIST_
#undef TXN

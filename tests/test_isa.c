/*
 * ISA tests: every SIMD path against the scalar reference, bit for bit, and
 * the dispatch API (rmsfuse_set_isa & co., RMSFUSE_ISA at first use,
 * concurrent first use).
 *
 * Differential: for every rule (RMSProp, AdaGrad, SGD, Adam; the adapters of
 * test_rules.h), every ISA this machine can run, every configuration
 * combination (every subset of the rule's flags x zero / non-zero weight
 * decay, momentum and dampening, as the rule has them, less those
 * docs/math.md refuses; so every specialised kernel loop), n = 0..300 and a
 * few random large n (the prefetching loop from 65536 elements included),
 * random start offsets of every array (0..15 floats each, independently,
 * and cases where param and the others sit at byte addresses that are not
 * float-aligned), inputs that are realistic, arbitrary bit patterns, a
 * lattice of special values that puts each special at every lane position,
 * state near the flush threshold of RMSFUSE_FLUSH_SUBNORMAL (subnormals of
 * both signs, -0, values just above FLT_MIN that the step's decay pushes
 * below it, with zero, tiny and subnormal gradients; the lattice and the
 * mixtures have such values too), and mixtures (negative or NaN state
 * included), with each rule's
 * hyperparameter sets (eps = 0, extreme lr and weight decay, decoupled
 * decay factors of 0 and below 0, alpha 0 and 1, betas 0 and near 1, step
 * > 1, SGD momentum > 1, ...).  The scalar path (rmsfuse_set_isa("scalar"))
 * computes the reference; every output must have the same bits (NaN-ness
 * only, for NaNs), grad and unused buffers must be untouched, and the bytes
 * around each array must be unchanged.  The multistep test carries the
 * state of every combination over three steps from zero (and from near
 * FLT_MIN, with zero gradients, for some elements).  The flush's semantics
 * against docs/math.md: test_flush.c.
 *
 * Which combinations a run tests: every one in the native run with
 * detection (ctest's "test_isa"); one random combination per kernel loop in
 * each run with an ISA forced and in every RMSFUSE_TEST_QUICK run, drawn
 * with a seed of the run's own (test_rules.h), so every kernel loop of
 * every rule runs on every runnable ISA in every run.
 *
 * The differential test selects each ISA itself (from rmsfuse_isa_names(),
 * the library's registry), so its outcome does not depend on the ISA ctest
 * forces; every test leaves the active ISA as it found it.
 *
 * Environment variables (besides RMSFUSE_ISA, see test_common.h):
 *   RMSFUSE_TEST_QUICK=1    scale the differential test down (one
 *                           combination per kernel loop, every other n up
 *                           to 64, the twin loop with or without
 *                           RMSFUSE_FLUSH_SUBNORMAL taking the others,
 *                           then about one n in 9 up to 300, one or two
 *                           special-lattice runs, one large n <= 2048),
 *                           for slow runs under valgrind or qemu.
 *   RMSFUSE_TEST_SEED=<n>   another random seed (the default is fixed, so a
 *                           failure reproduces; failures print the seed
 *                           and RMSFUSE_ISA, which picks the sample).
 *
 * RMSFUSE_ISA at first use, and many threads making their first call at
 * once, need a process whose dispatcher is still uninitialised.  main()
 * therefore forks those probes before its own first library call; each
 * child sets up its environment, exercises the library and reports through
 * a pipe, and the Check tests judge the reports.  (fork rather than exec of
 * /proc/self/exe: a forked child stays under valgrind or qemu-user like its
 * parent, and needs no binfmt support for cross-built binaries.)  A probe
 * child that does not report within 120 s is killed and counts as a
 * failure.  If even a child that does nothing cannot report (fork() broken
 * by the emulator: Debian's qemu-aarch64 7.2 hangs every forked child of a
 * dynamically linked guest), those checks are not run and a NOTE says so;
 * such an emulator also needs CK_FORK=no.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <float.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#  include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#  include <sys/prctl.h>
#endif

#include "test_common.h"
#include "test_rules.h"

/* The names the public API documents (rmsfuse_common.h, docs/dispatch.md),
 * in its order (best last): a deliberate oracle, written out here so that
 * test_isa_names can check the registry against the documentation.  Every
 * other loop over ISAs takes the names from rmsfuse_isa_names(). */
static const char *const known_names[] = {"scalar", "sse2", "avx2", "avx512", "neon", "sve"};
#define N_KNOWN (sizeof known_names / sizeof known_names[0])

/* Names that must be refused as unknown (case, spacing, near misses). */
static const char *const bad_names[] = {"",     "bogus", "AVX2",  "Scalar", "SCALAR", "scalar ", " scalar",
                                        "AUTO", "auto ", "sse",   "avx",    "avx512f", "avx-512", "neon64",
                                        "sse4", "x86",   "native"};
#define N_BAD (sizeof bad_names / sizeof bad_names[0])

static int is_known_name(const char *name)
{
    for (size_t i = 0; i < N_KNOWN; i++)
        if (strcmp(known_names[i], name) == 0)
            return 1;
    return 0;
}

/* Whether the CPU's vendor string is "AuthenticAMD", read here with CPUID
 * independently of the library. */
static int cpu_is_amd(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx))
        return 0;
    char v[13];
    memcpy(v, &ebx, 4), memcpy(v + 4, &edx, 4), memcpy(v + 8, &ecx, 4);
    v[12] = '\0';
    return strcmp(v, "AuthenticAMD") == 0;
#else
    return 0;
#endif
}

/* Whether the thread's SVE vectors are wider than NEON's 128 bits, read
 * here with prctl(PR_SVE_GET_VL) independently of the library (which reads
 * it the same way: there is one kernel interface for it). */
static int sve_wider_than_neon(void)
{
#if defined(__aarch64__) && defined(__linux__)
    const int vl = prctl(51 /* PR_SVE_GET_VL */, 0, 0, 0, 0);
    return vl > 0 && (vl & 0xffff) > 16;
#else
    return 0;
#endif
}

/* What detection must pick: the best supported ISA, except that AVX-512 is
 * taken over AVX2 only on AMD CPUs (docs/dispatch.md: on Intel, 512-bit
 * sqrt and division give no more elements per cycle than 256-bit ones),
 * and SVE over NEON only with vectors wider than 128 bits. */
static const char *best_supported(void)
{
    const char *best = NULL;
    for (const char *const *p = rmsfuse_isa_names(); *p; p++)
        if (rmsfuse_isa_supported(*p) && (strcmp(*p, "avx512") != 0 || cpu_is_amd()) &&
            (strcmp(*p, "sve") != 0 || sve_wider_than_neon()))
            best = *p;
    return best;
}

/* Every runnable ISA other than scalar. */
static int runnable_simd(const char **out, int cap)
{
    int k = 0;
    for (const char *const *p = rmsfuse_isa_names(); *p && k < cap; p++)
        if (strcmp(*p, "scalar") != 0 && rmsfuse_isa_supported(*p))
            out[k++] = *p;
    return k;
}

/* ---- leaving the active ISA as we found it -------------------------------- */
static const char *entry_isa;

static void enter(void)
{
    entry_isa = rmsfuse_active_isa();
    ck_assert_ptr_nonnull(entry_isa);
}

static void leave(void)
{
    ck_assert_int_eq(rmsfuse_set_isa(entry_isa), RMSFUSE_OK);
    ck_assert_str_eq(rmsfuse_active_isa(), entry_isa);
}

/* Fails the test after restoring the entry ISA (matters with CK_FORK=no). */
#define FAIL(...)                              \
    do {                                       \
        (void)rmsfuse_set_isa(entry_isa);      \
        ck_abort_msg(__VA_ARGS__);             \
    } while (0)

/* ===========================================================================
 * Differential tests
 * ======================================================================== */
/* RMSProp's arrays, for the probes below. */
enum { P, G, V, B, GA, NARR };
static const char *const arr_name[NARR] = {"param", "grad", "square_avg", "momentum_buf", "grad_avg"};

/* 19 special values (a prime count: see fill_special).  For
 * RMSFUSE_FLUSH_SUBNORMAL (docs/math.md): subnormals of both signs, -0, and
 * state just above FLT_MIN that a step with any decay below 1 (or below
 * 0.8) pushes under it. */
#define N_SPECIAL 19u
static float special_value(unsigned k)
{
    static const uint32_t bits[N_SPECIAL] = {
        0x00000000u, /* +0 */
        0x80000000u, /* -0 */
        0x7f800000u, /* +Inf */
        0xff800000u, /* -Inf */
        0x7fc00000u, /* quiet NaN */
        0xff800001u, /* signalling NaN, sign set */
        0x00800000u, /* FLT_MIN */
        0x80800000u, /* -FLT_MIN */
        0x00000001u, /* FLT_TRUE_MIN */
        0x80000001u, /* -FLT_TRUE_MIN */
        0x7f7fffffu, /* FLT_MAX */
        0xff7fffffu, /* -FLT_MAX */
        0x007fffffu, /* largest subnormal */
        0x80400000u, /* a negative subnormal */
        0x3f800000u, /* 1 */
        0xbf800000u, /* -1 */
        0x40400000u, /* 3 */
        0x00800001u, /* FLT_MIN + 1 ulp */
        0x00a00000u, /* 1.25 FLT_MIN */
    };
    return u2f(bits[k % N_SPECIAL]);
}

/* A value near the flush threshold FLT_MIN (docs/math.md, "Subnormal-safe
 * state"): a subnormal or zero, FLT_MIN to FLT_MIN + 63 ulps (below FLT_MIN
 * after any decay <= 0.99999), or in [FLT_MIN, 256 FLT_MIN) (below it after
 * a decay of 1/256 .. 0.99); negative with probability `neg` / 4. */
static float near_min_value(test_rng *r, unsigned neg)
{
    uint32_t u;
    switch (rng_next(r) % 4) {
    case 0: u = (uint32_t)(rng_next(r) % 0x00800000u); break;
    case 1: u = 0x00800000u + (uint32_t)(rng_next(r) % 64); break;
    default: u = (uint32_t)(1 + rng_next(r) % 8) << 23 | (uint32_t)(rng_next(r) & 0x7fffffu); break;
    }
    if (rng_next(r) % 4 < neg)
        u |= 0x80000000u;
    return u2f(u);
}

/* A gradient for near_min inputs: often zero (the state only decays), or so
 * small that g * g or c * g is subnormal, or subnormal itself (never
 * flushed), or an ordinary one. */
static float near_min_grad(test_rng *r, float gscale)
{
    const uint64_t d = rng_next(r) % 8;
    if (d < 3)
        return (d == 0) ? -0.0f : 0.0f;
    if (d < 5) /* 2^-80 .. 2^-57: squares from 2^-160 (0) to 2^-114 */
        return ldexpf(rng_uniform(r, -1.0f, 1.0f), -57 - (int)(rng_next(r) % 24));
    if (d == 5)
        return near_min_value(r, 2);
    return rng_uniform(r, -1.0f, 1.0f) * gscale;
}

typedef enum input_kind { IN_REAL, IN_BITS, IN_SPECIAL, IN_MIXED, IN_NEAR_MIN, N_KINDS } input_kind;
static const char *const kind_name[N_KINDS] = {"realistic", "any bits", "special lattice", "mixed/garbage state",
                                               "state near FLT_MIN"};

/* Cases are run in batches, so that the ISA is switched once per batch and
 * ISA rather than once per case (each rmsfuse_set_isa() of a SIMD name
 * queries the CPU, which is slow in a VM).  The batch keeps each case's
 * inputs and scalar results (aligned); the ISA run copies a case's arrays
 * into one raw byte buffer per array, at the case's offset, with canary
 * bytes around it. */
#define SLACK 128 /* bytes: up to 63 of offset before, the rest after */
#define CANARY 0xa5
#define MAX_CASES 1024
static unsigned char canary[SLACK];

typedef struct dcase {
    int rule;
    unsigned combo_index; /* in the rule's list (test_rules.h) */
    int hp;               /* hyperparameter set */
    input_kind kind;
    size_t n;
    size_t off[MAX_ARR]; /* byte offsets into raw[] */
    uint64_t seed;       /* of the input data */
    size_t at;           /* where in the batch arrays */
} dcase;

typedef struct batch {
    size_t cap, used;   /* elements in in[]/ref[] */
    size_t max_n;       /* largest single case */
    int count;
    dcase c[MAX_CASES];
    float *in[MAX_ARR], *ref[MAX_ARR], *out;
    unsigned char *raw[MAX_ARR];
    const char *const *isas;
    int nisas;
} batch;

static void *xalloc(size_t bytes)
{
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    ck_assert_ptr_nonnull(p);
    return p;
}

static batch *batch_new(size_t cap, size_t max_n, const char *const *isas, int nisas)
{
    memset(canary, CANARY, sizeof canary);
    batch *b = xalloc(sizeof *b);
    b->cap = cap;
    b->used = 0;
    b->max_n = max_n;
    b->count = 0;
    b->isas = isas;
    b->nisas = nisas;
    for (int j = 0; j < MAX_ARR; j++) {
        b->in[j] = xalloc(cap * sizeof(float));
        b->ref[j] = xalloc(cap * sizeof(float));
        b->raw[j] = xalloc(max_n * sizeof(float) + SLACK);
    }
    b->out = xalloc(max_n * sizeof(float));
    return b;
}

static void batch_free(batch *b)
{
    for (int j = 0; j < MAX_ARR; j++) {
        free(b->in[j]);
        free(b->ref[j]);
        free(b->raw[j]);
    }
    free(b->out);
    free(b);
}

static rule_cfg case_config(const dcase *c)
{
    return rule_config(c->rule, rule_combo(c->rule, c->combo_index), c->hp);
}

static void fill_inputs(batch *b, const dcase *c)
{
    test_rng r = {c->seed};
    const float gscales[] = {1.0f, 1e-3f, 1e3f, 1e-20f, 1e20f};
    const float gscale = gscales[rng_next(&r) % 5];
    const size_t n = c->n;
    const unsigned narr = rule_infos[c->rule].narr;
    float *in[MAX_ARR];
    for (unsigned j = 0; j < narr; j++)
        in[j] = b->in[j] + c->at;

    if (c->kind == IN_SPECIAL) {
        /* Array j, element i: special[(i*a + (i/19)*b + t) mod 19].  With
         * 19 prime, any two arrays with independent (a, b) see every pair
         * of specials within 361 elements, and since 19 is odd every
         * special meets every lane position (i mod 16). */
        for (unsigned j = 0; j < narr; j++) {
            unsigned a = 1 + (unsigned)(rng_next(&r) % (N_SPECIAL - 1)), bb = (unsigned)(rng_next(&r) % N_SPECIAL);
            unsigned t = (unsigned)(rng_next(&r) % N_SPECIAL);
            for (size_t i = 0; i < n; i++)
                in[j][i] = special_value((unsigned)((i * a + (i / N_SPECIAL) * bb + t) % N_SPECIAL));
        }
        return;
    }
    if (c->kind == IN_NEAR_MIN) {
        /* State near FLT_MIN (sums of squares positive), gradients mostly
         * zero or tiny, params mostly ordinary, some subnormal. */
        for (unsigned j = 0; j < narr; j++)
            for (size_t i = 0; i < n; i++) {
                float x;
                if (j == SLOT_GRAD)
                    x = near_min_grad(&r, gscale);
                else if (j == SLOT_PARAM)
                    x = rng_next(&r) % 4 ? rule_realistic(c->rule, j, &r, gscale) : near_min_value(&r, 2);
                else if (rng_next(&r) % 8 == 0)
                    x = rule_realistic(c->rule, j, &r, gscale);
                else
                    x = near_min_value(&r, rule_infos[c->rule].kind[j] == AK_SQ ? 0 : 2);
                in[j][i] = x;
            }
        return;
    }
    for (unsigned j = 0; j < narr; j++)
        for (size_t i = 0; i < n; i++) {
            float x;
            if (c->kind == IN_REAL) {
                x = rule_realistic(c->rule, j, &r, gscale);
            } else if (c->kind == IN_BITS) {
                x = rng_any_float(&r);
            } else { /* mixed: realistic, specials, any bits, near FLT_MIN; state may be negative */
                uint64_t d = rng_next(&r) % 9;
                if (d < 2)
                    x = special_value((unsigned)(rng_next(&r) % N_SPECIAL));
                else if (d == 2)
                    x = rng_any_float(&r);
                else if (d == 3)
                    x = j == SLOT_GRAD ? near_min_grad(&r, gscale) : near_min_value(&r, 2);
                else if (j >= 2)
                    x = rng_uniform(&r, -1.0f, 1.0f); /* garbage state: sums of squares < 0 too */
                else
                    x = rule_realistic(c->rule, j, &r, gscale);
            }
            in[j][i] = x;
        }
}

static void describe(char *buf, size_t len, const dcase *c, const char *isa)
{
    const rule_cfg cfg = case_config(c);
    char conf[256], offs[96] = "";
    rule_describe(&cfg, conf, sizeof conf);
    for (unsigned j = 0; j < rule_infos[c->rule].narr; j++)
        snprintf(offs + strlen(offs), sizeof offs - strlen(offs), " %zu", c->off[j]);
    const char *forced = getenv("RMSFUSE_ISA");
    snprintf(buf, len,
             "isa %s, %s (combination %u, kernel loop %u, hyper %d: %s), input %s, n %zu, seed %#llx, "
             "byte offsets%s (RMSFUSE_TEST_SEED=%#llx RMSFUSE_ISA=%s)",
             isa, conf, c->combo_index, rule_loop(c->rule, rule_combo(c->rule, c->combo_index)), c->hp,
             rule_hyper_name(c->rule, c->hp), kind_name[c->kind], c->n, (unsigned long long)c->seed, offs,
             (unsigned long long)test_base_seed(), forced ? forced : "");
}

/* Runs one case under the active ISA, from raw buffers, and compares. */
static void check_case(batch *b, const dcase *c, const char *isa)
{
    const rule_cfg cfg = case_config(c);
    const rule_info *ri = &rule_infos[c->rule];
    const size_t n = c->n, bytes = n * sizeof(float);
    const unsigned used = rule_used(&cfg);
    char what[768];
    float *ptr[MAX_ARR] = {NULL}, *in[MAX_ARR], *ref[MAX_ARR];

    for (unsigned j = 0; j < ri->narr; j++) {
        in[j] = b->in[j] + c->at;
        ref[j] = b->ref[j] + c->at;
        memset(b->raw[j], CANARY, bytes + SLACK);
        ptr[j] = (float *)(void *)(b->raw[j] + c->off[j]);
        memcpy(ptr[j], in[j], bytes);
    }
    int st = rule_step(&cfg, ptr, n);
    if (st != RMSFUSE_OK) {
        describe(what, sizeof what, c, isa);
        FAIL("%s: step returned %d", what, st);
    }
    for (unsigned j = 0; j < ri->narr; j++) {
        float *out = b->out;
        memcpy(out, ptr[j], bytes);
        if ((used & (1u << j)) && j != SLOT_GRAD) {
            /* memcmp first: the usual case is the same bits, NaN payloads included. */
            const size_t upto = memcmp(out, ref[j], bytes) != 0 ? n : 0;
            for (size_t i = 0; i < upto; i++)
                if (!same_float(out[i], ref[j][i])) {
                    char inputs[160] = "";
                    for (unsigned k = 0; k < ri->narr; k++)
                        snprintf(inputs + strlen(inputs), sizeof inputs - strlen(inputs), " %s %#010x",
                                 ri->arr_name[k], (unsigned)f2u(in[k][i]));
                    describe(what, sizeof what, c, isa);
                    FAIL("%s: %s[%zu] = %#010x (%a), scalar %#010x (%a); inputs%s", what, ri->arr_name[j], i,
                         (unsigned)f2u(out[i]), (double)out[i], (unsigned)f2u(ref[j][i]), (double)ref[j][i],
                         inputs);
                }
        } else if (memcmp(out, in[j], bytes) != 0) {
            describe(what, sizeof what, c, isa);
            FAIL("%s: %s, which the step does not write, was modified", what, ri->arr_name[j]);
        }
        if (memcmp(b->raw[j], canary, c->off[j]) != 0) {
            describe(what, sizeof what, c, isa);
            FAIL("%s: bytes before %s were overwritten", what, ri->arr_name[j]);
        }
        if (memcmp(b->raw[j] + c->off[j] + bytes, canary, SLACK - c->off[j]) != 0) {
            describe(what, sizeof what, c, isa);
            FAIL("%s: bytes after %s were overwritten", what, ri->arr_name[j]);
        }
    }
}

/* Scalar references for every case in the batch, then each ISA on every
 * case. */
static void batch_flush(batch *b)
{
    char what[768];
    if (b->count == 0)
        return;
    if (rmsfuse_set_isa("scalar") != RMSFUSE_OK)
        FAIL("rmsfuse_set_isa(\"scalar\") failed");
    for (int k = 0; k < b->count; k++) {
        const dcase *c = &b->c[k];
        const rule_cfg cfg = case_config(c);
        fill_inputs(b, c);
        float *ref[MAX_ARR] = {NULL};
        for (unsigned j = 0; j < rule_infos[c->rule].narr; j++) {
            ref[j] = b->ref[j] + c->at;
            memcpy(ref[j], b->in[j] + c->at, c->n * sizeof(float));
        }
        int st = rule_step(&cfg, ref, c->n);
        if (st != RMSFUSE_OK) {
            describe(what, sizeof what, c, "scalar");
            FAIL("%s: step returned %d", what, st);
        }
    }
    for (int i = 0; i < b->nisas; i++) {
        if (rmsfuse_set_isa(b->isas[i]) != RMSFUSE_OK)
            FAIL("rmsfuse_set_isa(\"%s\") failed", b->isas[i]);
        for (int k = 0; k < b->count; k++)
            check_case(b, &b->c[k], b->isas[i]);
    }
    b->count = 0;
    b->used = 0;
}

static void batch_add(batch *b, const dcase *c)
{
    ck_assert(c->n <= b->max_n && c->n <= b->cap);
    if (b->count == MAX_CASES || b->used + c->n > b->cap)
        batch_flush(b);
    b->c[b->count] = *c;
    b->c[b->count].at = b->used;
    b->used += c->n;
    b->count++;
}

/* Random offsets: 0..15 floats each; misaligned cases put param at an odd
 * byte address and the others at arbitrary bytes. */
static void random_offsets(test_rng *r, dcase *c, int misaligned)
{
    for (int j = 0; j < MAX_ARR; j++) {
        c->off[j] = 4 * (size_t)(rng_next(r) % 16);
        if (misaligned)
            c->off[j] += (j == SLOT_PARAM) ? 1 + 2 * (size_t)(rng_next(r) % 2) : (size_t)(rng_next(r) % 4);
    }
}

/* The combinations this run tests (test_rules.h): every one in the native
 * detection run, one random one per kernel loop in the others, so every
 * kernel loop of every rule runs on every ISA in every run. */
static unsigned run_combos(int rule, unsigned *out)
{
    test_rng r = {test_run_seed(0xd1ffu + (uint64_t)rule)};
    return rule_sample(rule, test_full_run(), &r, out);
}

/* The seed of a combination's data: the same in every run with every
 * combination (test_full_run), else mixed with the run's seed. */
static uint64_t combo_seed(int rule, unsigned k, uint64_t salt)
{
    const uint64_t run = test_full_run() ? 0 : test_run_seed(salt);
    test_rng r = {test_base_seed() ^ (0x9e3779b97f4a7c15ull * (1000u * (unsigned)rule + k + 1)) ^ run ^ salt};
    for (int i = 0; i < 4; i++)
        rng_next(&r);
    return rng_next(&r) | 1;
}

/* One combination of a rule: every n = 0..300, the special lattice with
 * every hyperparameter set, and large n; `v` (the combination's place in
 * this run's list) rotates the input kinds and sizes over the list.
 *
 * Quick runs test one combination per kernel loop, twice as many since
 * RMSFUSE_FLUSH_SUBNORMAL doubled the loops; each does about half the work
 * of before, so that the run costs what it did.  A loop and its flush twin
 * differ only by the flush (the same heads, bodies and tails), so the
 * small n are split between them: the twins of a pair together run every
 * n up to 64. */
static void differential_combo(int rule, unsigned k, unsigned v, const char *const *isas, int nisas)
{
    const int quick = test_quick_mode();
    const size_t twin = (size_t)combo_flush(rule_combo(rule, k));
    const size_t max_large = quick ? 2048 : 100000;
    test_rng r = {combo_seed(rule, k, 0)};

    batch *b = batch_new(quick ? 16384 : 131072, max_large, isas, nisas);
    dcase c;
    memset(&c, 0, sizeof c);
    c.rule = rule;
    c.combo_index = k;
    unsigned ncase = 0;
    const int nh = rule_nhypers(rule);

    /* n = 0..300, one case each; the input kind rotates (realistic every
     * other case), shifted by v so that over the combinations every n
     * meets every kind.  Every fifth case is misaligned.  Quick: every
     * other n up to 64 (the odd ones with the flag, the even ones without),
     * then random steps of 2..16. */
    static const input_kind rotation[] = {IN_REAL, IN_BITS, IN_REAL, IN_SPECIAL,
                                          IN_REAL, IN_MIXED, IN_REAL, IN_NEAR_MIN};
    enum { NROT = sizeof rotation / sizeof rotation[0] };
    for (size_t n = quick ? twin : 0; n <= 300;
         n += !quick ? 1 : n < 64 ? 2 : 2 + (size_t)(rng_next(&r) % 15)) {
        c.n = n;
        c.kind = rotation[(n + v) % NROT];
        c.hp = (int)(rng_next(&r) % (uint64_t)nh);
        c.seed = rng_next(&r) | 1;
        random_offsets(&r, &c, ncase++ % 5 == 4);
        batch_add(b, &c);
    }
    /* Every hyperparameter set on the full special lattice (361 elements
     * cover every pair of specials between two arrays); quick: one or two
     * (hp = v mod 6, and + 6), so every set over the run's list. */
    for (int hp = 0; hp < nh; hp++) {
        if (quick && (unsigned)hp % 6 != v % 6)
            continue;
        c.n = N_SPECIAL * N_SPECIAL + (size_t)(rng_next(&r) % 16);
        c.kind = IN_SPECIAL;
        c.hp = hp;
        c.seed = rng_next(&r) | 1;
        random_offsets(&r, &c, hp % 2);
        batch_add(b, &c);
    }
    /* Large n: one in 66000..100000 (odd v: 1000..30000) and one in
     * 1000..10000 (quick: one in 1000..2048), realistic, mixed, near
     * FLT_MIN or any bits by v / 2 (so the prefetching range gets each).
     * From 65536 elements on the vector loops prefetch (src/isa/kernels.c),
     * so half the combinations run that loop. */
    static const input_kind large_kinds[] = {IN_REAL, IN_MIXED, IN_NEAR_MIN, IN_BITS};
    for (int q = 0; q < (quick ? 1 : 2); q++) {
        const size_t hi = quick ? max_large : q == 1 ? 10000 : v % 2 ? 30000 : 100000;
        const size_t lo = !quick && q == 0 && v % 2 == 0 ? 66000 : 1000;
        c.n = lo + (size_t)(rng_next(&r) % (hi - lo + 1));
        c.kind = large_kinds[(v / 2 + (unsigned)q) % 4];
        c.hp = (int)(rng_next(&r) % (uint64_t)nh);
        c.seed = rng_next(&r) | 1;
        random_offsets(&r, &c, q == 1);
        batch_add(b, &c);
    }
    batch_flush(b);
    batch_free(b);
}

/* Each rule's combinations are split over DIFF_PARTS iterations of the
 * loop test (smaller Check tests, each in its own fork by default). */
#define DIFF_PARTS 8

START_TEST(test_differential)
{
    enter();
    const int rule = _i / DIFF_PARTS, part = _i % DIFF_PARTS;
    const char *isas[16];
    const int nisas = runnable_simd(isas, 16);
    unsigned ks[MAX_COMBOS];
    const unsigned m = run_combos(rule, ks);
    if (nisas > 0) /* else a scalar-only build or CPU: nothing to compare */
        for (unsigned v = (unsigned)part; v < m; v += DIFF_PARTS)
            differential_combo(rule, ks[v], v, isas, nisas);
    leave();
}
END_TEST

/* Every kernel loop docs/math.md gives each rule is among the combinations
 * (the generator's own check: a sampled run tests one combination per
 * loop, so a loop missing here would never run). */
START_TEST(test_combinations_cover_every_loop)
{
    /* docs/dispatch.md: 93 exact loops, and each again with
     * RMSFUSE_FLUSH_SUBNORMAL, 186 in all. */
    unsigned total = 0;
    for (int rule = 0; rule < N_RULES; rule++)
        total += rule_infos[rule].nloops;
    ck_assert_uint_eq(total, 186);
    for (int rule = 0; rule < N_RULES; rule++) {
        const rule_info *ri = &rule_infos[rule];
        unsigned seen[256] = {0};
        ck_assert_uint_le(ri->nloops, 256);
        ck_assert_uint_eq(ri->nloops % 2, 0);
        ck_assert(ri->flags & RMSFUSE_FLUSH_SUBNORMAL);
        for (unsigned k = 0; k < rule_ncombos(rule); k++) {
            const combo cb = rule_combo(rule, k);
            const unsigned loop = rule_loop(rule, cb);
            ck_assert_msg(loop < ri->nloops, "%s: loop %u of %u", ri->name, loop, ri->nloops);
            seen[loop]++;
            /* The flag makes a loop of its own (the exact loop's twin),
             * whatever else the combination sets. */
            combo twin = cb;
            twin.flags ^= RMSFUSE_FLUSH_SUBNORMAL;
            ck_assert(rule_combo_valid(rule, twin));
            const unsigned tl = rule_loop(rule, twin);
            ck_assert_msg(combo_flush(cb) ? loop >= ri->nloops / 2 && tl == loop - ri->nloops / 2
                                          : loop < ri->nloops / 2 && tl == loop + ri->nloops / 2,
                          "%s: flags %#x: loop %u, with the flag toggled %u", ri->name, cb.flags, loop, tl);
            /* Every combination is valid with every hyperparameter set. */
            for (int hp = 0; hp < rule_nhypers(rule); hp++) {
                const rule_cfg cfg = rule_config(rule, cb, hp);
                char what[256];
                rule_describe(&cfg, what, sizeof what);
                ck_assert_msg(rule_check_config(&cfg) == RMSFUSE_OK, "%s: check_config gave %d", what,
                              rule_check_config(&cfg));
            }
        }
        for (unsigned loop = 0; loop < ri->nloops; loop++)
            ck_assert_msg(seen[loop] > 0, "%s: no combination runs kernel loop %u", ri->name, loop);
        /* And every flag the rule accepts is set in some combination and clear in another. */
        for (unsigned bit = 0; bit < 32; bit++) {
            if (!(ri->flags & (1u << bit)))
                continue;
            unsigned on = 0;
            for (unsigned k = 0; k < rule_ncombos(rule); k++)
                on += (rule_combo(rule, k).flags >> bit) & 1u;
            ck_assert(on > 0 && on < rule_ncombos(rule));
        }
    }
    /* RMSProp: every combination of version 0.1 (its four flags x weight
     * decay x momentum) is still among them. */
    for (unsigned v = 0; v < 64; v++) {
        int found = 0;
        for (unsigned k = 0; k < rule_ncombos(RULE_RMSPROP); k++) {
            const combo cb = rule_combo(RULE_RMSPROP, k);
            found |= cb.flags == (v & 15u) && cb.tog == (((v & 16u) ? TOG_WD : 0u) | ((v & 32u) ? TOG_MOM : 0u));
        }
        ck_assert_msg(found, "RMSProp variant %u of 0.1 is not tested", v);
    }
}
END_TEST

/* Several steps in a row from a fresh (zero) state, each ISA carrying its
 * own state from call to call: the state stays bit-identical to the scalar
 * run's.  AdaGrad's and Adam's step number goes up by one per step.  Every
 * third element starts from state near FLT_MIN instead, and every fourth
 * has a zero gradient at every step, so some state decays through the
 * subnormal range step after step (flushed, and the +0 loaded again, with
 * RMSFUSE_FLUSH_SUBNORMAL). */
#define MULTI_STEPS 3

static void multistep_combo(int rule, unsigned k, unsigned v, const char *const *isas, int nisas)
{
    const rule_info *ri = &rule_infos[rule];
    const size_t n = (test_quick_mode() ? 500 : 1000) + v;
    const rule_cfg cfg0 = rule_config(rule, rule_combo(rule, k), (int)(v % (unsigned)rule_nhypers(rule)));
    test_rng r = {combo_seed(rule, k, 0x3u)};
    /* grad's slot points at each step's gradient in turn (gr[]). */
    float *init[MAX_ARR] = {NULL}, *ref[MAX_ARR] = {NULL}, *got[MAX_ARR] = {NULL}, *gr[MULTI_STEPS];
    char what[256];
    rule_describe(&cfg0, what, sizeof what);
    for (unsigned j = 0; j < ri->narr; j++) {
        init[j] = xalloc(n * sizeof(float));
        ref[j] = j == SLOT_GRAD ? NULL : xalloc(n * sizeof(float));
        got[j] = xalloc((n + 16) * sizeof(float));
        for (size_t i = 0; i < n; i++)
            init[j][i] = j == SLOT_PARAM ? rng_uniform(&r, -1.0f, 1.0f)
                         : i % 3 == 2    ? near_min_value(&r, ri->kind[j] == AK_SQ ? 0 : 2)
                                         : 0.0f;
        if (ref[j])
            memcpy(ref[j], init[j], n * sizeof(float));
    }
    for (int s = 0; s < MULTI_STEPS; s++) {
        gr[s] = xalloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            gr[s][i] = i % 4 == 1 ? 0.0f : rng_uniform(&r, -1.0f, 1.0f);
    }
    ck_assert_int_eq(rmsfuse_set_isa("scalar"), RMSFUSE_OK);
    rule_cfg cfg = cfg0;
    for (int s = 0; s < MULTI_STEPS; s++, rule_advance_step(&cfg)) {
        ref[SLOT_GRAD] = gr[s];
        if (rule_step(&cfg, ref, n) != RMSFUSE_OK)
            FAIL("scalar, %s: step %d failed", what, s);
    }
    for (int q = 0; q < nisas; q++) {
        float *a[MAX_ARR] = {NULL};
        for (unsigned j = 0; j < ri->narr; j++) {
            if (j == SLOT_GRAD)
                continue;
            a[j] = got[j] + (size_t)((q + 3 * (int)j + (int)v) % 16); /* assorted heads */
            memcpy(a[j], init[j], n * sizeof(float));
        }
        if (rmsfuse_set_isa(isas[q]) != RMSFUSE_OK)
            FAIL("rmsfuse_set_isa(\"%s\") failed", isas[q]);
        cfg = cfg0;
        for (int s = 0; s < MULTI_STEPS; s++, rule_advance_step(&cfg)) {
            a[SLOT_GRAD] = gr[s];
            if (rule_step(&cfg, a, n) != RMSFUSE_OK)
                FAIL("isa %s, %s: step %d failed", isas[q], what, s);
        }
        for (unsigned j = 0; j < ri->narr; j++)
            for (size_t i = 0; j != SLOT_GRAD && i < n; i++)
                if (!same_float(a[j][i], ref[j][i]))
                    FAIL("isa %s, %s, after %d steps: %s[%zu] = %a, scalar %a", isas[q], what, MULTI_STEPS,
                         ri->arr_name[j], i, (double)a[j][i], (double)ref[j][i]);
    }
    for (unsigned j = 0; j < ri->narr; j++) {
        free(init[j]);
        if (j != SLOT_GRAD)
            free(ref[j]);
        free(got[j]);
    }
    for (int s = 0; s < MULTI_STEPS; s++)
        free(gr[s]);
}

START_TEST(test_differential_multistep)
{
    enter();
    const int rule = _i;
    const char *isas[16];
    const int nisas = runnable_simd(isas, 16);
    unsigned ks[MAX_COMBOS];
    const unsigned m = run_combos(rule, ks);
    for (unsigned v = 0; v < m; v++)
        multistep_combo(rule, ks[v], v, isas, nisas);
    leave();
}
END_TEST

/* The differential harness itself can tell a difference: a deliberately
 * perturbed reference (one ulp in one element) must be caught.  Guards
 * against a comparison that is vacuous (e.g. comparing an array with
 * itself). */
START_TEST(test_harness_detects_difference)
{
    float a = 1.0f, b = nextafterf(1.0f, 2.0f);
    ck_assert(!same_float(a, b));
    ck_assert(!same_float(0.0f, -0.0f));
    ck_assert(same_float(u2f(0x7fc00000u), u2f(0xffc00001u)));
    ck_assert(!same_float(u2f(0x7fc00000u), INFINITY));
    ck_assert(!same_float(1.0f, u2f(0x7fc00000u)));
}
END_TEST

/* ===========================================================================
 * Dispatch API
 * ======================================================================== */
START_TEST(test_isa_names)
{
    const char *const *names = rmsfuse_isa_names();
    ck_assert_ptr_nonnull(names);
    ck_assert_ptr_eq(names, rmsfuse_isa_names());
    size_t count = 0;
    for (const char *const *p = names; *p; p++, count++) {
        ck_assert_msg(count < 64, "rmsfuse_isa_names() is not NULL-terminated");
        ck_assert_msg(is_known_name(*p), "unknown name \"%s\" in rmsfuse_isa_names()", *p);
        for (const char *const *q = names; q < p; q++)
            ck_assert_msg(strcmp(*p, *q) != 0, "\"%s\" listed twice", *p);
    }
    /* Every documented name, in the documented order. */
    ck_assert_uint_eq(count, N_KNOWN);
    for (size_t i = 0; i < N_KNOWN; i++)
        ck_assert_str_eq(names[i], known_names[i]);
}
END_TEST

START_TEST(test_active_is_supported)
{
    enter();
    const char *a = rmsfuse_active_isa();
    ck_assert_ptr_nonnull(a);
    ck_assert_msg(is_known_name(a), "active ISA \"%s\" is not a documented name", a);
    ck_assert_int_eq(rmsfuse_isa_supported(a), 1);
    ck_assert_int_eq(rmsfuse_isa_supported("scalar"), 1);
    ck_assert_int_eq(rmsfuse_isa_supported("auto"), 1);
    ck_assert_int_eq(rmsfuse_isa_supported(NULL), 0);
    for (size_t i = 0; i < N_BAD; i++)
        ck_assert_msg(rmsfuse_isa_supported(bad_names[i]) == 0, "\"%s\" reported supported", bad_names[i]);
#if defined(__x86_64__) || defined(__i386__)
    ck_assert_int_eq(rmsfuse_isa_supported("neon"), 0);
    ck_assert_int_eq(rmsfuse_isa_supported("sve"), 0);
#elif defined(__aarch64__)
    ck_assert_int_eq(rmsfuse_isa_supported("sse2"), 0);
    ck_assert_int_eq(rmsfuse_isa_supported("avx2"), 0);
    ck_assert_int_eq(rmsfuse_isa_supported("avx512"), 0);
#endif
    /* Pure queries: the answer is stable and nothing is switched. */
    for (size_t i = 0; i < N_KNOWN; i++) {
        int s = rmsfuse_isa_supported(known_names[i]);
        ck_assert(s == 0 || s == 1);
        ck_assert_int_eq(rmsfuse_isa_supported(known_names[i]), s);
    }
    ck_assert_str_eq(rmsfuse_active_isa(), a);
    /* The active ISA with nothing forced is the detected one. */
    const char *forced = getenv("RMSFUSE_ISA");
    if (!forced || !*forced || strcmp(forced, "auto") == 0)
        ck_assert_str_eq(a, best_supported());
    leave();
}
END_TEST

START_TEST(test_set_each_isa)
{
    enter();
    int n_supported = 0;
    for (const char *const *p = rmsfuse_isa_names(); *p; p++) {
        const char *before = rmsfuse_active_isa();
        if (rmsfuse_isa_supported(*p)) {
            n_supported++;
            ck_assert_int_eq(rmsfuse_set_isa(*p), RMSFUSE_OK);
            ck_assert_str_eq(rmsfuse_active_isa(), *p);
            /* The forced ISA computes, every rule: the same inputs in every
             * element give the same outputs in every element (heads,
             * vector bodies, tails), and param moves against the gradient. */
            const rmsfuse_rmsprop_config cfg = rmsfuse_rmsprop_pytorch(0.5);
            float prm[37], g[37], v[37];
            for (int i = 0; i < 37; i++)
                prm[i] = 1.0f, g[i] = 2.0f, v[i] = 0.0f;
            ck_assert_int_eq(rmsfuse_rmsprop_step(&cfg, prm, g, v, NULL, NULL, 37), RMSFUSE_OK);
            for (int i = 1; i < 37; i++)
                ck_assert(f2u(prm[i]) == f2u(prm[0]) && f2u(v[i]) == f2u(v[0]));
            ck_assert(prm[0] < 1.0f);
            for (int rule = 0; rule < N_RULES; rule++) {
                const rule_cfg rc = rule_full_config(rule);
                float arr[MAX_ARR][37];
                float *a[MAX_ARR] = {NULL};
                for (unsigned j = 0; j < rule_infos[rule].narr; j++) {
                    a[j] = arr[j];
                    for (int i = 0; i < 37; i++)
                        arr[j][i] = j == SLOT_PARAM ? 1.0f : j == SLOT_GRAD ? 2.0f : 0.25f;
                }
                ck_assert_int_eq(rule_step(&rc, a, 37), RMSFUSE_OK);
                for (unsigned j = 0; j < rule_infos[rule].narr; j++)
                    for (int i = 1; i < 37; i++)
                        ck_assert_msg(f2u(arr[j][i]) == f2u(arr[j][0]), "isa %s, %s: %s[%d] differs from [0]", *p,
                                      rule_infos[rule].name, rule_infos[rule].arr_name[j], i);
                ck_assert_msg(arr[SLOT_PARAM][0] < 1.0f, "isa %s, %s: param did not descend", *p,
                              rule_infos[rule].name);
            }
        } else {
            ck_assert_int_eq(rmsfuse_set_isa(*p), RMSFUSE_E_ISA_UNSUPPORTED);
            ck_assert_str_eq(rmsfuse_active_isa(), before);
        }
    }
    ck_assert_int_ge(n_supported, 1);
    leave();
}
END_TEST

START_TEST(test_set_refused_leaves_active)
{
    enter();
    int n_unsupported = 0;
    for (const char *const *s = rmsfuse_isa_names(); *s; s++) {
        if (!rmsfuse_isa_supported(*s))
            continue;
        ck_assert_int_eq(rmsfuse_set_isa(*s), RMSFUSE_OK);
        ck_assert_int_eq(rmsfuse_set_isa(NULL), RMSFUSE_E_UNKNOWN_ISA);
        ck_assert_str_eq(rmsfuse_active_isa(), *s);
        for (size_t i = 0; i < N_BAD; i++) {
            ck_assert_msg(rmsfuse_set_isa(bad_names[i]) == RMSFUSE_E_UNKNOWN_ISA,
                          "rmsfuse_set_isa(\"%s\") did not return RMSFUSE_E_UNKNOWN_ISA", bad_names[i]);
            ck_assert_str_eq(rmsfuse_active_isa(), *s);
        }
        for (const char *const *u = rmsfuse_isa_names(); *u; u++)
            if (!rmsfuse_isa_supported(*u)) {
                n_unsupported++;
                ck_assert_int_eq(rmsfuse_set_isa(*u), RMSFUSE_E_ISA_UNSUPPORTED);
                ck_assert_str_eq(rmsfuse_active_isa(), *s);
            }
    }
#if defined(__x86_64__) || defined(__i386__)
    ck_assert_int_eq(rmsfuse_set_isa("neon"), RMSFUSE_E_ISA_UNSUPPORTED);
    ck_assert_int_eq(rmsfuse_set_isa("sve"), RMSFUSE_E_ISA_UNSUPPORTED);
    ck_assert_int_gt(n_unsupported, 0);
#elif defined(__aarch64__)
    ck_assert_int_eq(rmsfuse_set_isa("avx2"), RMSFUSE_E_ISA_UNSUPPORTED);
    ck_assert_int_gt(n_unsupported, 0);
#endif
    leave();
}
END_TEST

START_TEST(test_set_auto_restores_detection)
{
    enter();
    const char *best = best_supported();
    ck_assert_ptr_nonnull(best);
    for (const char *const *s = rmsfuse_isa_names(); *s; s++) {
        if (!rmsfuse_isa_supported(*s))
            continue;
        ck_assert_int_eq(rmsfuse_set_isa(*s), RMSFUSE_OK);
        ck_assert_int_eq(rmsfuse_set_isa("auto"), RMSFUSE_OK);
        ck_assert_str_eq(rmsfuse_active_isa(), best);
        ck_assert_int_eq(rmsfuse_set_isa("auto"), RMSFUSE_OK); /* idempotent */
        ck_assert_str_eq(rmsfuse_active_isa(), best);
    }
    leave();
}
END_TEST

/* rmsfuse_isa_env_status() reports the environment at first use and is not
 * changed by later rmsfuse_set_isa() calls. */
START_TEST(test_env_status_in_this_process)
{
    enter();
    const char *forced = getenv("RMSFUSE_ISA");
    int expect = RMSFUSE_OK;
    if (forced && *forced && strcmp(forced, "auto") != 0)
        expect = !is_known_name(forced) ? RMSFUSE_E_UNKNOWN_ISA
                 : rmsfuse_isa_supported(forced) ? RMSFUSE_OK
                                                 : RMSFUSE_E_ISA_UNSUPPORTED;
    ck_assert_int_eq(rmsfuse_isa_env_status(), expect);
    ck_assert_int_eq(rmsfuse_set_isa("scalar"), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_set_isa("bogus"), RMSFUSE_E_UNKNOWN_ISA);
    ck_assert_int_eq(rmsfuse_isa_env_status(), expect);
    ck_assert_int_eq(rmsfuse_set_isa("auto"), RMSFUSE_OK);
    ck_assert_int_eq(rmsfuse_isa_env_status(), expect);
    leave();
}
END_TEST

/* ===========================================================================
 * Fresh-process probes (forked from main before any library call)
 * ======================================================================== */
typedef enum first_call {
    FIRST_ACTIVE,     /* rmsfuse_active_isa() */
    FIRST_ENV_STATUS, /* rmsfuse_isa_env_status() */
    FIRST_STEP,       /* rmsfuse_rmsprop_step() */
    FIRST_SUPPORTED,  /* rmsfuse_isa_supported("avx2"), then rmsfuse_active_isa() */
    FIRST_SET_SCALAR, /* rmsfuse_set_isa("scalar"): an explicit choice wins over the environment */
    FIRST_SET_AUTO    /* rmsfuse_set_isa("auto"): detection, whatever the environment says */
} first_call;
static const char *const first_name[] = {"active_isa", "isa_env_status", "rmsprop_step",
                                         "isa_supported", "set_isa(scalar)", "set_isa(auto)"};

typedef struct env_probe {
    const char *env; /* NULL: RMSFUSE_ISA unset */
    first_call first;
} env_probe;

static const env_probe env_probes[] = {
    {NULL, FIRST_ACTIVE},          {"", FIRST_ACTIVE},           {"auto", FIRST_ACTIVE},
    {"scalar", FIRST_ACTIVE},      {"sse2", FIRST_ACTIVE},       {"avx2", FIRST_ACTIVE},
    {"avx512", FIRST_ACTIVE},      {"neon", FIRST_ACTIVE},       {"bogus", FIRST_ACTIVE},
    {"AVX2", FIRST_ACTIVE},        {"scalar ", FIRST_ACTIVE},    {"AUTO", FIRST_ACTIVE},
    {"scalar", FIRST_ENV_STATUS},  {"bogus", FIRST_ENV_STATUS},  {"neon", FIRST_ENV_STATUS},
    {"avx512", FIRST_ENV_STATUS},  {"scalar", FIRST_STEP},       {"bogus", FIRST_STEP},
    {"neon", FIRST_STEP},          {NULL, FIRST_STEP},           {"scalar", FIRST_SUPPORTED},
    {"bogus", FIRST_SET_SCALAR},   {"neon", FIRST_SET_SCALAR},   {NULL, FIRST_SET_SCALAR},
    {"scalar", FIRST_SET_AUTO},    {"avx2", FIRST_SET_AUTO},
};
#define N_ENV_PROBES ((int)(sizeof env_probes / sizeof env_probes[0]))

typedef struct probe_report {
    int done;          /* the child got to the end */
    int first_rc;      /* return value of the first call, when it has one */
    char active[32];   /* active ISA after the first call */
    int status;        /* rmsfuse_isa_env_status() */
    int supported;     /* rmsfuse_isa_supported(env), -1 when unset */
    int auto_rc;       /* rmsfuse_set_isa("auto") */
    char detected[32]; /* active ISA after that */
    int status_after;  /* rmsfuse_isa_env_status() after that */
    int ok;            /* concurrency probe: the child's own checks passed */
    char err[256];     /* concurrency probe: what failed */
} probe_report;

/* Concurrency probes: RMSFUSE_ISA for the child, several times unset. */
static const char *const conc_envs[] = {NULL, NULL, NULL, "scalar", "bogus", "neon"};
#define N_CONC ((int)(sizeof conc_envs / sizeof conc_envs[0]))

static probe_report env_reports[N_ENV_PROBES];
static probe_report conc_reports[N_CONC];
static char probe_setup_error[256];

static void set_probe_env(const char *env)
{
    if (env)
        setenv("RMSFUSE_ISA", env, 1);
    else
        unsetenv("RMSFUSE_ISA");
}

static void copy_name(char *dst, const char *src)
{
    snprintf(dst, 32, "%s", src ? src : "(null)");
}

static void env_probe_child(const env_probe *pr, probe_report *r)
{
    set_probe_env(pr->env);
    r->first_rc = 0;
    switch (pr->first) {
    case FIRST_ACTIVE:
        break;
    case FIRST_ENV_STATUS:
        r->first_rc = rmsfuse_isa_env_status();
        break;
    case FIRST_STEP: {
        rmsfuse_rmsprop_config cfg = rmsfuse_rmsprop_pytorch(0.1);
        float p[37] = {0}, g[37] = {0}, v[37] = {0};
        r->first_rc = rmsfuse_rmsprop_step(&cfg, p, g, v, NULL, NULL, 37);
        break;
    }
    case FIRST_SUPPORTED:
        r->first_rc = rmsfuse_isa_supported("avx2");
        break;
    case FIRST_SET_SCALAR:
        r->first_rc = rmsfuse_set_isa("scalar");
        break;
    case FIRST_SET_AUTO:
        r->first_rc = rmsfuse_set_isa("auto");
        break;
    }
    copy_name(r->active, rmsfuse_active_isa());
    r->status = rmsfuse_isa_env_status();
    r->supported = pr->env ? rmsfuse_isa_supported(pr->env) : -1;
    r->auto_rc = rmsfuse_set_isa("auto");
    copy_name(r->detected, rmsfuse_active_isa());
    r->status_after = rmsfuse_isa_env_status();
    r->ok = 1;
}

/* ---- concurrency: threads making their first call at once ---------------- */
#define CONC_THREADS 8
#define CONC_N 999
#define CONC_STEPS 3

typedef struct conc_thread {
    pthread_barrier_t *barrier;
    int index;
    float *arr[NARR]; /* own arrays (param, grad, v, b, ga) */
    const char *name;
    int status, rc;
} conc_thread;

static rmsfuse_rmsprop_config conc_config(void)
{
    rmsfuse_rmsprop_config c = {0.01, 0.9, 1e-6, 0.01, 0.5,
                                RMSFUSE_CENTERED | RMSFUSE_MAXIMIZE | RMSFUSE_EPS_IN_SQRT};
    return c;
}

static void *conc_thread_main(void *arg)
{
    conc_thread *t = arg;
    const rmsfuse_rmsprop_config cfg = conc_config();
    pthread_barrier_wait(t->barrier);
    t->rc = RMSFUSE_OK;
    switch (t->index % 3) { /* different first calls, at once */
    case 0:
        t->rc = rmsfuse_rmsprop_step(&cfg, t->arr[P], t->arr[G], t->arr[V], t->arr[B], t->arr[GA], CONC_N);
        t->name = rmsfuse_active_isa();
        break;
    case 1:
        t->name = rmsfuse_active_isa();
        t->rc = rmsfuse_rmsprop_step(&cfg, t->arr[P], t->arr[G], t->arr[V], t->arr[B], t->arr[GA], CONC_N);
        break;
    default:
        (void)rmsfuse_isa_env_status();
        t->name = rmsfuse_active_isa();
        t->rc = rmsfuse_rmsprop_step(&cfg, t->arr[P], t->arr[G], t->arr[V], t->arr[B], t->arr[GA], CONC_N);
        break;
    }
    t->status = rmsfuse_isa_env_status();
    for (int s = 1; s < CONC_STEPS && t->rc == RMSFUSE_OK; s++)
        t->rc = rmsfuse_rmsprop_step(&cfg, t->arr[P], t->arr[G], t->arr[V], t->arr[B], t->arr[GA], CONC_N);
    return NULL;
}

static void conc_probe_child(const char *env, probe_report *r)
{
#define CONC_ERR(...)                                      \
    do {                                                   \
        snprintf(r->err, sizeof r->err, __VA_ARGS__);      \
        return;                                            \
    } while (0)
    set_probe_env(env);
    static conc_thread th[CONC_THREADS];
    static float buf[CONC_THREADS][NARR][CONC_N + 16];
    static float in[NARR][CONC_N], ref[NARR][CONC_N];
    test_rng rng = {test_base_seed() * 3 + 7};
    for (int j = 0; j < NARR; j++)
        for (int i = 0; i < CONC_N; i++)
            in[j][i] = j == V ? rng_uniform(&rng, 0.0f, 1.0f) : rng_uniform(&rng, -1.0f, 1.0f);
    pthread_barrier_t barrier;
    if (pthread_barrier_init(&barrier, NULL, CONC_THREADS) != 0)
        CONC_ERR("pthread_barrier_init failed");
    pthread_t tid[CONC_THREADS];
    for (int t = 0; t < CONC_THREADS; t++) {
        th[t].barrier = &barrier;
        th[t].index = t;
        for (int j = 0; j < NARR; j++) {
            th[t].arr[j] = buf[t][j] + (t + j) % 16; /* different vector heads */
            memcpy(th[t].arr[j], in[j], sizeof in[j]);
        }
        if (pthread_create(&tid[t], NULL, conc_thread_main, &th[t]) != 0)
            CONC_ERR("pthread_create failed");
    }
    for (int t = 0; t < CONC_THREADS; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&barrier);

    for (int t = 0; t < CONC_THREADS; t++) {
        if (th[t].rc != RMSFUSE_OK)
            CONC_ERR("thread %d: step returned %d", t, th[t].rc);
        if (!th[t].name || strcmp(th[t].name, th[0].name) != 0)
            CONC_ERR("thread %d saw ISA %s, thread 0 saw %s", t, th[t].name ? th[t].name : "(null)", th[0].name);
        if (th[t].status != th[0].status)
            CONC_ERR("thread %d saw env status %d, thread 0 saw %d", t, th[t].status, th[0].status);
    }
    copy_name(r->active, th[0].name);
    r->status = th[0].status;
    if (strcmp(rmsfuse_active_isa(), th[0].name) != 0)
        CONC_ERR("active ISA is %s after the threads, they saw %s", rmsfuse_active_isa(), th[0].name);

    /* The scalar reference, in this (now initialised) process. */
    if (rmsfuse_set_isa("scalar") != RMSFUSE_OK)
        CONC_ERR("rmsfuse_set_isa(\"scalar\") failed");
    memcpy(ref, in, sizeof ref);
    const rmsfuse_rmsprop_config cfg = conc_config();
    for (int s = 0; s < CONC_STEPS; s++)
        if (rmsfuse_rmsprop_step(&cfg, ref[P], ref[G], ref[V], ref[B], ref[GA], CONC_N) != RMSFUSE_OK)
            CONC_ERR("scalar step failed");
    for (int t = 0; t < CONC_THREADS; t++)
        for (int j = 0; j < NARR; j++)
            for (int i = 0; i < CONC_N; i++)
                if (!same_float(th[t].arr[j][i], ref[j][i]))
                    CONC_ERR("thread %d (%s): %s[%d] = %a, scalar %a", t, th[t].name, arr_name[j], i,
                             (double)th[t].arr[j][i], (double)ref[j][i]);
    r->ok = 1;
#undef CONC_ERR
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t k = write(fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

/* Reads up to len bytes, giving up timeout_ms after the start. */
static size_t read_all(int fd, void *buf, size_t len, int timeout_ms, int *timed_out)
{
    char *p = buf;
    size_t got = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    *timed_out = 0;
    while (got < len) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000L + (t.tv_nsec - t0.tv_nsec) / 1000000L);
        if (left <= 0) {
            *timed_out = 1;
            break;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            *timed_out = pr == 0;
            break;
        }
        ssize_t k = read(fd, p + got, len - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return got;
}

typedef enum probe_kind { PROBE_CANARY, PROBE_ENV, PROBE_CONC } probe_kind;

/* Seconds a probe child may take (generous: valgrind, qemu). */
#define PROBE_TIMEOUT_MS 120000
#define CANARY_TIMEOUT_MS 10000

/* Forks a child that runs one probe (an env_probe *, or a const char *const *
 * for a concurrency probe; the canary does nothing but report) and fills
 * *out.  A child that does not report in time is killed. */
static void run_probe(probe_kind kind, const void *spec, probe_report *out)
{
    memset(out, 0, sizeof *out);
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(probe_setup_error, sizeof probe_setup_error, "pipe: %s", strerror(errno));
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(probe_setup_error, sizeof probe_setup_error, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        probe_report r;
        memset(&r, 0, sizeof r);
        if (kind == PROBE_CONC)
            conc_probe_child(*(const char *const *)spec, &r);
        else if (kind == PROBE_ENV)
            env_probe_child(spec, &r);
        r.done = 1;
        _exit(write_all(fds[1], &r, sizeof r) == 0 ? 0 : 3);
    }
    close(fds[1]);
    probe_report r;
    int timed_out;
    const int timeout_ms = kind == PROBE_CANARY ? CANARY_TIMEOUT_MS : PROBE_TIMEOUT_MS;
    size_t got = read_all(fds[0], &r, sizeof r, timeout_ms, &timed_out);
    close(fds[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
        ;
    if (!timed_out && got == sizeof r && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
        *out = r;
    } else if (timed_out) {
        out->done = 0;
        snprintf(out->err, sizeof out->err, "probe child hung: no report within %d s", timeout_ms / 1000);
    } else {
        out->done = 0;
        snprintf(out->err, sizeof out->err, "probe child died (%s %d) after %zu report bytes",
                 WIFSIGNALED(wstatus) ? "signal" : "exit status",
                 WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : WEXITSTATUS(wstatus), got);
    }
}

/* Set when a child that does nothing at all cannot report either: fork()
 * itself is broken here (seen with Debian's qemu-aarch64 7.2 running a
 * dynamically linked guest: every forked child hangs).  The fresh-process
 * checks are then not run, and say so; that is not the library's fault. */
static char fork_broken[320];

/* Called by main() before anything else touches the library.  When ctest
 * forces an ISA this machine cannot run, rmsfuse_test_run() skips the whole
 * program: one probe child finds that out first, so that the skipped run
 * does not pay for the others (slow under valgrind). */
static void run_fresh_process_probes(void)
{
    probe_report r;
    run_probe(PROBE_CANARY, NULL, &r);
    if (probe_setup_error[0])
        return;
    if (!r.done) {
        snprintf(fork_broken, sizeof fork_broken, "a forked child that only reports back did not: %s", r.err);
        printf("NOTE: fork() does not work here (%s): the RMSFUSE_ISA-at-first-use and concurrent-first-use "
               "checks are NOT run\n",
               fork_broken);
        return;
    }
    const char *forced = getenv("RMSFUSE_ISA");
    if (forced && *forced && strcmp(forced, "auto") != 0) {
        env_probe pr = {forced, FIRST_ACTIVE};
        run_probe(PROBE_ENV, &pr, &r);
        if (r.done && r.supported == 0)
            return; /* will be skipped */
    }
    for (int i = 0; i < N_ENV_PROBES; i++)
        run_probe(PROBE_ENV, &env_probes[i], &env_reports[i]);
    for (int i = 0; i < N_CONC; i++)
        run_probe(PROBE_CONC, &conc_envs[i], &conc_reports[i]);
}

/* Appends a problem to a report buffer. */
static void note(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(char *buf, size_t len, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 2 >= len)
        return;
    if (used)
        buf[used++] = '\n', buf[used] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

/* Judges one fresh-process report; appends problems to err. */
static void judge_env_probe(const env_probe *pr, const probe_report *r, char *err, size_t len)
{
    const char *best = best_supported();
    char ctx[128];
    snprintf(ctx, sizeof ctx, "RMSFUSE_ISA=%s%s%s, first call %s", pr->env ? "\"" : "",
             pr->env ? pr->env : "(unset)", pr->env ? "\"" : "", first_name[pr->first]);
    if (!r->done) {
        note(err, len, "%s: %s", ctx, r->err);
        return;
    }

    /* Expected outcome of the variable. */
    int expect_status = RMSFUSE_OK, expect_supported = -1;
    const char *expect_active = best;
    if (!pr->env || !*pr->env || strcmp(pr->env, "auto") == 0) {
        expect_supported = !pr->env ? -1 : *pr->env ? 1 : 0; /* "auto" is supported, "" is no name */
    } else if (!is_known_name(pr->env)) {
        expect_status = RMSFUSE_E_UNKNOWN_ISA;
        expect_supported = 0;
    } else if (rmsfuse_isa_supported(pr->env)) {
        expect_active = pr->env;
        expect_supported = 1;
    } else {
        expect_status = RMSFUSE_E_ISA_UNSUPPORTED;
        expect_supported = 0;
    }
#if defined(__x86_64__) || defined(__i386__)
    if (pr->env && strcmp(pr->env, "neon") == 0 && expect_status != RMSFUSE_E_ISA_UNSUPPORTED)
        note(err, len, "%s: neon is supported on x86?", ctx);
#endif
    /* An explicit rmsfuse_set_isa() as the first call wins. */
    if (pr->first == FIRST_SET_SCALAR)
        expect_active = "scalar";
    else if (pr->first == FIRST_SET_AUTO)
        expect_active = best;

    if (strcmp(r->active, expect_active) != 0)
        note(err, len, "%s: active ISA %s, expected %s", ctx, r->active, expect_active);
    if (r->status != expect_status)
        note(err, len, "%s: rmsfuse_isa_env_status() = %d, expected %d", ctx, r->status, expect_status);
    if (r->supported != expect_supported)
        note(err, len, "%s: rmsfuse_isa_supported(env) = %d in the child, expected %d", ctx, r->supported,
             expect_supported);
    if (r->status_after != expect_status)
        note(err, len, "%s: rmsfuse_set_isa(\"auto\") changed the env status to %d", ctx, r->status_after);
    if (r->auto_rc != RMSFUSE_OK || strcmp(r->detected, best) != 0)
        note(err, len, "%s: rmsfuse_set_isa(\"auto\") = %d gave %s, expected %s", ctx, r->auto_rc, r->detected,
             best);
    int expect_rc = RMSFUSE_OK;
    if (pr->first == FIRST_ENV_STATUS)
        expect_rc = expect_status;
    else if (pr->first == FIRST_SUPPORTED)
        expect_rc = rmsfuse_isa_supported("avx2");
    if (r->first_rc != expect_rc)
        note(err, len, "%s: the first call returned %d, expected %d", ctx, r->first_rc, expect_rc);
}

/* RMSFUSE_ISA at first use, each setting in a fresh process. */
START_TEST(test_env_at_first_use)
{
    enter();
    ck_assert_msg(probe_setup_error[0] == 0, "%s", probe_setup_error);
    if (fork_broken[0]) { /* reported by main(); nothing to judge */
        leave();
        return;
    }
    char err[4096] = "";
    for (int i = 0; i < N_ENV_PROBES; i++)
        judge_env_probe(&env_probes[i], &env_reports[i], err, sizeof err);
    if (err[0])
        FAIL("%s", err);
    leave();
}
END_TEST

/* Many threads making their first call at once, in fresh processes. */
START_TEST(test_concurrent_first_use)
{
    enter();
    ck_assert_msg(probe_setup_error[0] == 0, "%s", probe_setup_error);
    if (fork_broken[0]) { /* reported by main(); nothing to judge */
        leave();
        return;
    }
    const char *best = best_supported();
    char err[4096] = "";
    for (int i = 0; i < N_CONC; i++) {
        const char *env = conc_envs[i];
        const probe_report *r = &conc_reports[i];
        char ctx[96];
        snprintf(ctx, sizeof ctx, "RMSFUSE_ISA=%s, %d threads", env ? env : "(unset)", CONC_THREADS);
        if (!r->done || !r->ok) {
            note(err, sizeof err, "%s: %s", ctx, r->err);
            continue;
        }
        const char *expect_active = best;
        int expect_status = RMSFUSE_OK;
        if (env && !is_known_name(env))
            expect_status = RMSFUSE_E_UNKNOWN_ISA;
        else if (env && !rmsfuse_isa_supported(env))
            expect_status = RMSFUSE_E_ISA_UNSUPPORTED;
        else if (env)
            expect_active = env;
        if (strcmp(r->active, expect_active) != 0)
            note(err, sizeof err, "%s: active ISA %s, expected %s", ctx, r->active, expect_active);
        if (r->status != expect_status)
            note(err, sizeof err, "%s: env status %d, expected %d", ctx, r->status, expect_status);
    }
    if (err[0])
        FAIL("%s", err);
    leave();
}
END_TEST

static Suite *isa_suite(void)
{
    Suite *s = suite_create("isa");
    TCase *tc = tcase_create("differential");
    tcase_add_test(tc, test_harness_detects_difference);
    tcase_add_test(tc, test_combinations_cover_every_loop);
    /* Per rule, DIFF_PARTS iterations, each with every DIFF_PARTS-th
     * combination of this run's list. */
    tcase_add_loop_test(tc, test_differential, 0, N_RULES * DIFF_PARTS);
    tcase_add_loop_test(tc, test_differential_multistep, 0, N_RULES);
    suite_add_tcase(s, tc);

    tc = tcase_create("dispatch");
    tcase_add_test(tc, test_isa_names);
    tcase_add_test(tc, test_active_is_supported);
    tcase_add_test(tc, test_set_each_isa);
    tcase_add_test(tc, test_set_refused_leaves_active);
    tcase_add_test(tc, test_set_auto_restores_detection);
    tcase_add_test(tc, test_env_status_in_this_process);
    suite_add_tcase(s, tc);

    tc = tcase_create("first_use");
    tcase_add_test(tc, test_env_at_first_use);
    tcase_add_test(tc, test_concurrent_first_use);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Must come first: the probes need a dispatcher nobody has used yet. */
    run_fresh_process_probes();
    return rmsfuse_test_run(isa_suite());
}

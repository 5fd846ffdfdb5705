/*
 * Guard-page tests: no ISA path reads or writes outside [0, n).
 *
 * Each array gets its own mapping of three pages, the first and last
 * PROT_NONE.  An array is placed so that its last element ends exactly at
 * the end of the middle page (an access past the end faults), or so that
 * its first element starts exactly at the start of the middle page (an
 * access before the start faults); param, and all five arrays together, are
 * also placed at byte addresses that are not float-aligned, ending 1..3
 * bytes before the guard or starting 1..3 bytes after it.  Each of the five
 * arrays is guarded in turn, with the others in ordinary memory at assorted
 * alignments, and then all five at once.
 *
 * For every ISA this machine can run (scalar included), n = 0..130, a few
 * representative variants (plain, centered+momentum+weight decay, the
 * TensorFlow-style flags with and without momentum and centred, all flags)
 * at every n and all 64 variants at a subset of n, the results must match
 * the scalar path's on ordinary memory bit for bit.  A stray access is a
 * SIGSEGV, which Check's fork mode reports as an error (and which ends the
 * program with CK_FORK=no).
 *
 * RMSFUSE_TEST_QUICK=1 (for valgrind or qemu runs) shrinks the subset of n
 * that runs all 64 variants, and runs about half of the representative
 * variants at each n (alternating, plain always).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test_common.h"

enum { P, G, V, B, GA, NARR };
static const char *const arr_name[NARR] = {"param", "grad", "square_avg", "momentum_buf", "grad_avg"};

#define MAX_N 130
#define ALL_ARRAYS ((1u << NARR) - 1)

/* Representative variants, run at every n: flags | 16 (weight decay) | 32
 * (momentum). */
static const unsigned rep_variants[] = {
    0u,                                                         /* plain */
    RMSFUSE_CENTERED | 16u | 32u,                               /* centered + momentum + weight decay */
    RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM,               /* TensorFlow / Keras */
    RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM | 32u,         /* TensorFlow with momentum */
    RMSFUSE_CENTERED | RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM, /* ApplyCenteredRMSProp */
    RMSFUSE_ALL_FLAGS | 16u | 32u,                              /* everything */
};
#define N_REP (sizeof rep_variants / sizeof rep_variants[0])

/* n that run all 64 variants: around every vector width and twice it. */
static const size_t all_n_full[] = {0,  1,  2,  3,  4,  5,  7,  8,  9,  12, 15,  16,  17,  23, 31,
                                    32, 33, 47, 48, 49, 63, 64, 65, 96, 127, 128, 129, 130};
static const size_t all_n_quick[] = {1, 3, 15, 17, 33, 64, 129, 130};

typedef enum where { AT_END, AT_START, AT_END_ODD, AT_START_ODD } where;
static const char *const where_name[] = {"ends at the guard after", "starts at the guard before",
                                         "ends 1..3 bytes before the guard after (misaligned)",
                                         "starts 1..3 bytes after the guard before (misaligned)"};

typedef struct placement {
    unsigned mask; /* arrays in guarded memory */
    where at;
} placement;

static const placement placements[] = {
    {1u << P, AT_END},       {1u << G, AT_END},       {1u << V, AT_END},      {1u << B, AT_END},
    {1u << GA, AT_END},      {ALL_ARRAYS, AT_END},    {1u << P, AT_START},    {1u << G, AT_START},
    {1u << V, AT_START},     {1u << B, AT_START},     {1u << GA, AT_START},   {ALL_ARRAYS, AT_START},
    {1u << P, AT_END_ODD},   {1u << P, AT_START_ODD}, {ALL_ARRAYS, AT_END_ODD}, {ALL_ARRAYS, AT_START_ODD},
};
#define N_PLACEMENTS (sizeof placements / sizeof placements[0])

static int quick_mode(void)
{
    const char *q = getenv("RMSFUSE_TEST_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

static rmsfuse_rmsprop_config config_for(unsigned variant)
{
    rmsfuse_rmsprop_config c;
    c.lr = 0.01;
    c.alpha = 0.9;
    c.eps = 1e-6;
    c.weight_decay = (variant & 16u) ? 0.01 : 0.0;
    c.momentum = (variant & 32u) ? 0.9 : 0.0;
    c.flags = variant & 15u;
    return c;
}

/* Three pages: PROT_NONE, read-write, PROT_NONE. */
typedef struct region {
    unsigned char *map, *lo, *hi; /* the mapping; the read-write page [lo, hi) */
    size_t page;
} region;

static void region_map(region *r, size_t page)
{
    r->page = page;
    void *m = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_msg(m != MAP_FAILED, "mmap failed");
    r->map = m;
    ck_assert_int_eq(mprotect(r->map, page, PROT_NONE), 0);
    ck_assert_int_eq(mprotect(r->map + 2 * page, page, PROT_NONE), 0);
    r->lo = r->map + page;
    r->hi = r->map + 2 * page;
}

static void region_unmap(region *r)
{
    ck_assert_int_eq(munmap(r->map, 3 * r->page), 0);
}

static float *place(const region *r, where at, size_t n, size_t shift)
{
    const size_t bytes = n * sizeof(float);
    switch (at) {
    case AT_END: return (float *)(void *)(r->hi - bytes);
    case AT_START: return (float *)(void *)r->lo;
    case AT_END_ODD: return (float *)(void *)(r->hi - bytes - shift);
    default: return (float *)(void *)(r->lo + shift);
    }
}

static const char *entry_isa;

/* The case in progress, for the SIGSEGV report (plain ints: read in a
 * signal handler). */
static volatile sig_atomic_t cur_isa = -1, cur_variant = -1, cur_n = -1, cur_placement = -1;

static void put_str(const char *s)
{
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    (void)r;
}

static void put_int(long v)
{
    char buf[24], *e = buf + sizeof buf, *q = e;
    int neg = v < 0;
    unsigned long u = neg ? 0ul - (unsigned long)v : (unsigned long)v;
    do
        *--q = (char)('0' + u % 10);
    while (u /= 10);
    if (neg)
        *--q = '-';
    ssize_t r = write(STDERR_FILENO, q, (size_t)(e - q));
    (void)r;
}

/* Says which case faulted, then lets the fault recur with the default
 * action (SA_RESETHAND), so that Check sees the signal. */
static void on_segv(int sig)
{
    (void)sig;
    put_str("test_guard: SIGSEGV in isa ");
    put_str(cur_isa >= 0 ? rmsfuse_isa_names()[cur_isa] : "?");
    put_str(" variant ");
    put_int(cur_variant);
    put_str(" n ");
    put_int(cur_n);
    put_str(" placement ");
    put_int(cur_placement);
    if (cur_placement >= 0) {
        unsigned m = placements[cur_placement].mask;
        put_str(" (");
        put_str(m == ALL_ARRAYS ? "every array" : arr_name[__builtin_ctz(m)]);
        put_str(" ");
        put_str(where_name[placements[cur_placement].at]);
        put_str(")");
    }
    put_str("\n");
}

static void install_segv_reporter(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGSEGV, &sa, NULL), 0);
    ck_assert_int_eq(sigaction(SIGBUS, &sa, NULL), 0);
}

#define FAIL(...)                         \
    do {                                  \
        (void)rmsfuse_set_isa(entry_isa); \
        ck_abort_msg(__VA_ARGS__);        \
    } while (0)

static size_t count_names(void)
{
    size_t k = 0;
    for (const char *const *p = rmsfuse_isa_names(); *p; p++)
        k++;
    return k;
}

START_TEST(test_guard_pages)
{
    const char *isa = rmsfuse_isa_names()[_i];
    if (!rmsfuse_isa_supported(isa))
        return; /* not runnable here: nothing to test */
    entry_isa = rmsfuse_active_isa();
    install_segv_reporter();
    cur_isa = (sig_atomic_t)_i;

    const long pg = sysconf(_SC_PAGESIZE);
    ck_assert(pg > 0 && (size_t)pg >= MAX_N * sizeof(float) + 4);
    const size_t page = (size_t)pg;
    const int quick = quick_mode();
    const size_t *all_n = quick ? all_n_quick : all_n_full;
    const size_t n_all_n = quick ? sizeof all_n_quick / sizeof all_n_quick[0]
                                 : sizeof all_n_full / sizeof all_n_full[0];

    region reg[NARR];
    float *plain[NARR], *in[NARR], *out;
    float(*ref)[NARR][MAX_N] = malloc(sizeof(float[64][NARR][MAX_N]));
    ck_assert_ptr_nonnull(ref);
    for (int j = 0; j < NARR; j++) {
        region_map(&reg[j], page);
        /* C11 aligned_alloc: the size must be a multiple of the alignment
         * (ASan enforces it). */
        plain[j] = aligned_alloc(64, ((MAX_N + 64) * sizeof(float) + 63) / 64 * 64);
        in[j] = malloc(MAX_N * sizeof(float));
        ck_assert(plain[j] && in[j]);
    }
    out = malloc(MAX_N * sizeof(float));
    ck_assert_ptr_nonnull(out);

    test_rng r = {0x6a09e667f3bcc909ull};
    for (size_t n = 0; n <= MAX_N; n++) {
        const size_t bytes = n * sizeof(float);
        for (size_t i = 0; i < n; i++) {
            in[P][i] = rng_uniform(&r, -2.0f, 2.0f);
            in[G][i] = rng_uniform(&r, -1.0f, 1.0f);
            in[V][i] = rng_uniform(&r, 0.0f, 1.0f);
            in[B][i] = rng_uniform(&r, -0.1f, 0.1f);
            in[GA][i] = rng_uniform(&r, -0.5f, 0.5f);
        }
        int all = 0;
        for (size_t k = 0; k < n_all_n; k++)
            all |= all_n[k] == n;
        unsigned variants[64];
        size_t nv = 0;
        if (all)
            for (unsigned v = 0; v < 64; v++)
                variants[nv++] = v;
        else
            for (size_t k = 0; k < N_REP; k++)
                if (!quick || k % 2 == n % 2 || k == 0)
                    variants[nv++] = rep_variants[k];

        /* Scalar references on ordinary memory. */
        if (rmsfuse_set_isa("scalar") != RMSFUSE_OK)
            FAIL("rmsfuse_set_isa(\"scalar\") failed");
        for (size_t k = 0; k < nv; k++) {
            const unsigned v = variants[k];
            const rmsfuse_rmsprop_config cfg = config_for(v);
            for (int j = 0; j < NARR; j++)
                memcpy(ref[v][j], in[j], bytes);
            if (rmsfuse_rmsprop_step(&cfg, ref[v][P], ref[v][G], ref[v][V], ref[v][B], ref[v][GA], n) !=
                RMSFUSE_OK)
                FAIL("scalar step failed (variant %u, n %zu)", v, n);
        }

        if (rmsfuse_set_isa(isa) != RMSFUSE_OK)
            FAIL("rmsfuse_set_isa(\"%s\") failed", isa);
        for (size_t k = 0; k < nv; k++) {
            const unsigned v = variants[k];
            const rmsfuse_rmsprop_config cfg = config_for(v);
            const int used[NARR] = {1, 0, 1, (v & 32u) != 0, (v & RMSFUSE_CENTERED) != 0};
            for (size_t pl = 0; pl < N_PLACEMENTS; pl++) {
                const placement *pl_ = &placements[pl];
                const size_t shift = 1 + (n + k) % 3;
                float *ptr[NARR];
                for (int j = 0; j < NARR; j++) {
                    if (pl_->mask & (1u << j))
                        ptr[j] = place(&reg[j], pl_->at, n, shift);
                    else
                        ptr[j] = plain[j] + (v + 3 * (unsigned)j + n + pl) % 16; /* assorted alignments */
                    memcpy(ptr[j], in[j], bytes);
                }
                cur_variant = (sig_atomic_t)v;
                cur_n = (sig_atomic_t)n;
                cur_placement = (sig_atomic_t)pl;
                int st = rmsfuse_rmsprop_step(&cfg, ptr[P], ptr[G], ptr[V], ptr[B], ptr[GA], n);
                if (st != RMSFUSE_OK)
                    FAIL("isa %s variant %u n %zu placement %zu: step returned %d", isa, v, n, pl, st);
                for (int j = 0; j < NARR; j++) {
                    memcpy(out, ptr[j], bytes);
                    if (!used[j]) {
                        if (memcmp(out, in[j], bytes) != 0)
                            FAIL("isa %s variant %u n %zu: %s, which the variant does not write, was modified",
                                 isa, v, n, arr_name[j]);
                        continue;
                    }
                    if (memcmp(out, ref[v][j], bytes) == 0) /* the usual case: the same bits */
                        continue;
                    for (size_t i = 0; i < n; i++)
                        if (!same_float(out[i], ref[v][j][i]))
                            FAIL("isa %s variant %u n %zu, %s %s: %s[%zu] = %a, scalar %a", isa, v, n,
                                 pl_->mask == ALL_ARRAYS ? "every array" : arr_name[__builtin_ctz(pl_->mask)],
                                 where_name[pl_->at], arr_name[j], i, (double)out[i], (double)ref[v][j][i]);
                }
            }
        }
    }

    for (int j = 0; j < NARR; j++) {
        region_unmap(&reg[j]);
        free(plain[j]);
        free(in[j]);
    }
    free(out);
    free(ref);
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    ck_assert_int_eq(rmsfuse_set_isa(entry_isa), RMSFUSE_OK);
    ck_assert_str_eq(rmsfuse_active_isa(), entry_isa);
}
END_TEST

/* The guard itself works: touching the page after (or before) the data
 * page kills the process with SIGSEGV. */
START_TEST(test_guard_is_armed_after)
{
    region r;
    region_map(&r, (size_t)sysconf(_SC_PAGESIZE));
    volatile float *p = place(&r, AT_END, 1, 0);
    p[0] = 1.0f;          /* the last float of the page: fine */
    p[1] = 2.0f;          /* the first of the guard page: SIGSEGV */
    region_unmap(&r);
}
END_TEST

START_TEST(test_guard_is_armed_before)
{
    region r;
    region_map(&r, (size_t)sysconf(_SC_PAGESIZE));
    volatile float *p = place(&r, AT_START, 1, 0);
    p[0] = 1.0f;
    (void)p[-1]; /* SIGSEGV */
    region_unmap(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("guard");
    TCase *tc = tcase_create("guard");
    /* One iteration per ISA name; those this machine cannot run pass trivially. */
    tcase_add_loop_test(tc, test_guard_pages, 0, (int)count_names());
    suite_add_tcase(s, tc);
    /* Only meaningful in fork mode, where a signal is an outcome, not the end. */
    const char *fork_mode = getenv("CK_FORK");
    if (!fork_mode || strcmp(fork_mode, "no") != 0) {
        tc = tcase_create("armed");
        tcase_add_test_raise_signal(tc, test_guard_is_armed_after, SIGSEGV);
        tcase_add_test_raise_signal(tc, test_guard_is_armed_before, SIGSEGV);
        suite_add_tcase(s, tc);
    }
    return rmsfuse_test_run(s);
}

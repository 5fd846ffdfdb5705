/*
 * Guard-page tests: no ISA path of any rule reads or writes outside [0, n).
 *
 * Each array gets its own mapping of three pages, the first and last
 * PROT_NONE.  An array is placed so that its last element ends exactly at
 * the end of the middle page (an access past the end faults), or so that
 * its first element starts exactly at the start of the middle page (an
 * access before the start faults); param, and all the arrays together, are
 * also placed at byte addresses that are not float-aligned, ending 1..3
 * bytes before the guard or starting 1..3 bytes after it.  Each of the
 * rule's arrays is guarded in turn, with the others in ordinary memory at
 * assorted alignments, and then all of them at once.
 *
 * Typed arrays (storage types) too: test_guard_typed below.
 *
 * For every ISA name of rmsfuse_isa_names() this machine can run (scalar
 * included), every rule (test_rules.h), n = 0..130: at a subset of n
 * (around every vector width and twice it) every combination this run
 * tests, at the other n a rotating share of them and a few representative
 * combinations (RMSProp's of 0.1 among them); the results must match
 * the scalar path's on ordinary memory bit for bit.  Which combinations: all
 * of them in the native run with detection, one random combination per
 * kernel loop in the others (test_rules.h), so every kernel loop runs in
 * every run.  A stray access is a SIGSEGV, which Check's fork mode reports
 * as an error (and which ends the program with CK_FORK=no).
 *
 * Every third case runs rmsfuse_<rule>_step_ex instead of the plain step,
 * with a scale, a clip value and a finite max_norm and
 * RMSFUSE_SKIP_NONFINITE (the norm's pass over the gradient, then the
 * kernel over a transformed copy of it), against the scalar path's step_ex.
 *
 * RMSFUSE_TEST_QUICK=1 (for valgrind or qemu runs) shrinks the subset of n
 * that runs every combination, the rotating share at the other n, and
 * runs about half of the representative combinations at each of them.
 * Since RMSFUSE_FLUSH_SUBNORMAL doubled the kernel loops (and so the
 * combinations a sampled run tests), a quick run splits that subset of n
 * between each loop and its flush twin (the same accesses, plus the
 * flush's arithmetic), and halves the rotating share, so that it costs
 * what it did.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test_common.h"
#include "test_rules.h"

#define MAX_N 130

/* RMSProp's representative variants of 0.1, run at every n. */
static const combo rep_rmsprop[] = {
    {0u, 0u},                                                               /* plain */
    {RMSFUSE_CENTERED, TOG_WD | TOG_MOM},                                   /* centered + momentum + weight decay */
    {RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM, 0u},                      /* TensorFlow / Keras */
    {RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM, TOG_MOM},                 /* TensorFlow with momentum */
    {RMSFUSE_CENTERED | RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM, 0u},   /* ApplyCenteredRMSProp */
    {RMSFUSE_CENTERED | RMSFUSE_EPS_IN_SQRT | RMSFUSE_LR_IN_MOMENTUM | RMSFUSE_MAXIMIZE, TOG_WD | TOG_MOM},
    {RMSFUSE_RMSPROP_FLAGS, TOG_WD | TOG_MOM},                              /* everything */
};
#define N_REP_RMSPROP (sizeof rep_rmsprop / sizeof rep_rmsprop[0])

/* n that run every combination: around every vector width and twice it. */
static const size_t all_n_full[] = {0,  1,  2,  3,  4,  5,  7,  8,  9,  12, 15,  16,  17,  23, 31,
                                    32, 33, 47, 48, 49, 63, 64, 65, 96, 127, 128, 129, 130};
static const size_t all_n_quick[] = {1, 3, 15, 17, 33, 64, 129, 130};

typedef enum where { AT_END, AT_START, AT_END_ODD, AT_START_ODD } where;
static const char *const where_name[] = {"ends at the guard after", "starts at the guard before",
                                         "ends 1..3 bytes before the guard after (misaligned)",
                                         "starts 1..3 bytes after the guard before (misaligned)"};

typedef struct placement {
    int array; /* the array in guarded memory, or -1 for all of them */
    where at;
} placement;

/* Each array at either end, all arrays at either end, and param and all
 * of them misaligned: 2 * narr + 6 placements. */
static unsigned placements_of(int rule, placement *out)
{
    unsigned k = 0;
    for (int at = AT_END; at <= AT_START; at++) {
        for (unsigned j = 0; j < rule_infos[rule].narr; j++) {
            placement p = {(int)j, (where)at};
            out[k++] = p;
        }
        placement all = {-1, (where)at};
        out[k++] = all;
    }
    for (int at = AT_END_ODD; at <= AT_START_ODD; at++) {
        placement p = {SLOT_PARAM, (where)at}, all = {-1, (where)at};
        out[k++] = p;
        out[k++] = all;
    }
    return k;
}
#define MAX_PLACEMENTS (2 * MAX_ARR + 6)

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
static volatile sig_atomic_t cur_isa = -1, cur_rule = -1, cur_combo = -1, cur_n = -1, cur_array = -2,
                             cur_where = -1;

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
    put_str(" rule ");
    put_str(cur_rule >= 0 ? rule_infos[cur_rule].name : "?");
    put_str(" combination ");
    put_int(cur_combo);
    put_str(" n ");
    put_int(cur_n);
    if (cur_rule >= 0 && cur_where >= 0 && cur_array >= -1) {
        put_str(" (");
        put_str(cur_array < 0 ? "every array" : rule_infos[cur_rule].arr_name[cur_array]);
        put_str(" ");
        put_str(where_name[cur_where]);
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

/* Case k's step: the plain step, or (every third case) step_ex with every
 * gradient option on. */
static int guard_step(const rule_cfg *cfg, float *const *a, size_t n, unsigned k)
{
    if (k % 3 != 1)
        return rule_step(cfg, a, n);
    const rule_tensor t = rule_tensor_of(a, n);
    const rmsfuse_grad_options o = {0.5, 0.25, 1e30, RMSFUSE_SKIP_NONFINITE, 0.0};
    return rule_step_ex(cfg, &t, 1, &o, NULL);
}

static size_t count_names(void)
{
    size_t k = 0;
    for (const char *const *p = rmsfuse_isa_names(); *p; p++)
        k++;
    return k;
}

/* At an n outside the every-combination subset, the combinations whose
 * place v in this run's list has v % ROTATE == n % ROTATE. */
#define ROTATE_FULL 16u
#define ROTATE_QUICK 64u

START_TEST(test_guard_pages)
{
    const int isa_index = _i / N_RULES, rule = _i % N_RULES;
    const char *isa = rmsfuse_isa_names()[isa_index];
    if (!rmsfuse_isa_supported(isa))
        return; /* not runnable here: nothing to test */
    const rule_info *ri = &rule_infos[rule];
    entry_isa = rmsfuse_active_isa();
    install_segv_reporter();
    cur_isa = (sig_atomic_t)isa_index;
    cur_rule = (sig_atomic_t)rule;

    const long pg = sysconf(_SC_PAGESIZE);
    ck_assert(pg > 0 && (size_t)pg >= MAX_N * sizeof(float) + 4);
    const size_t page = (size_t)pg;
    const int quick = test_quick_mode();
    const size_t *all_n = quick ? all_n_quick : all_n_full;
    const size_t n_all_n = quick ? sizeof all_n_quick / sizeof all_n_quick[0]
                                 : sizeof all_n_full / sizeof all_n_full[0];
    const unsigned rotate = quick ? ROTATE_QUICK : ROTATE_FULL;

    /* This run's combinations (the same list for every ISA of the run). */
    unsigned ks[MAX_COMBOS];
    test_rng sr = {test_run_seed(0x9a4du + (uint64_t)rule)};
    const unsigned nks = rule_sample(rule, test_full_run(), &sr, ks);
    placement pls[MAX_PLACEMENTS];
    const unsigned npl = placements_of(rule, pls);
    const int nh = rule_nhypers(rule);
    /* Representative combinations, run at every n: the first and last of
     * the run's list (the full list starts with no flags and ends with
     * every flag and every hyperparameter on), and for RMSProp the
     * representative variants of 0.1 (flags, weight decay, momentum). */
    unsigned rep[2 + N_REP_RMSPROP], nrep = 0;
    rep[nrep++] = ks[0];
    rep[nrep++] = ks[nks - 1];
    if (rule == RULE_RMSPROP)
        for (unsigned q = 0; q < N_REP_RMSPROP; q++)
            for (unsigned k = 0; k < rule_ncombos(rule); k++) {
                const combo cb = rule_combo(rule, k);
                if (cb.flags == rep_rmsprop[q].flags && cb.tog == rep_rmsprop[q].tog)
                    rep[nrep++] = k;
            }
    ck_assert_uint_eq(nrep, 2 + (rule == RULE_RMSPROP ? N_REP_RMSPROP : 0));
    typedef struct gcase {
        unsigned combo;
        int hp;
    } gcase;
    gcase *cs = malloc((MAX_COMBOS + 2 + N_REP_RMSPROP) * sizeof *cs);
    ck_assert_ptr_nonnull(cs);

    region reg[MAX_ARR];
    float *plain[MAX_ARR], *in[MAX_ARR], *out;
    float(*ref)[MAX_ARR][MAX_N] = malloc((MAX_COMBOS + 2 + N_REP_RMSPROP) * sizeof *ref);
    ck_assert_ptr_nonnull(ref);
    for (unsigned j = 0; j < ri->narr; j++) {
        region_map(&reg[j], page);
        /* C11 aligned_alloc: the size must be a multiple of the alignment
         * (ASan enforces it). */
        plain[j] = aligned_alloc(64, ((MAX_N + 64) * sizeof(float) + 63) / 64 * 64);
        in[j] = malloc(MAX_N * sizeof(float));
        ck_assert(plain[j] && in[j]);
    }
    out = malloc(MAX_N * sizeof(float));
    ck_assert_ptr_nonnull(out);

    test_rng r = {0x6a09e667f3bcc909ull ^ (uint64_t)rule};
    for (size_t n = 0; n <= MAX_N; n++) {
        const size_t bytes = n * sizeof(float);
        for (unsigned j = 0; j < ri->narr; j++)
            for (size_t i = 0; i < n; i++)
                in[j][i] = rule_realistic(rule, j, &r, 1.0f);
        int all = 0;
        size_t all_k = 0;
        for (size_t k = 0; k < n_all_n; k++)
            if (all_n[k] == n)
                all = 1, all_k = k;
        /* This n's cases: every combination of the run (subset of n;
         * quick: those with the flag at every other n of it, those without
         * at the others) or the rotating share, and the representative ones
         * at every n. */
        unsigned nc = 0;
        for (unsigned v = 0; v < nks; v++)
            if (all ? !quick || (size_t)combo_flush(rule_combo(rule, ks[v])) == all_k % 2
                    : v % rotate == n % rotate) {
                cs[nc].combo = ks[v];
                cs[nc++].hp = (int)(v % (unsigned)nh);
            }
        for (unsigned q = 0; q < nrep && !all; q++) {
            if (quick && q > 0 && q % 2 != n % 2)
                continue; /* quick: the first and half of the others at each n */
            cs[nc].combo = rep[q];
            cs[nc++].hp = (int)((n + q) % (unsigned)nh);
        }

        /* Scalar references on ordinary memory. */
        if (rmsfuse_set_isa("scalar") != RMSFUSE_OK)
            FAIL("rmsfuse_set_isa(\"scalar\") failed");
        for (unsigned k = 0; k < nc; k++) {
            const rule_cfg cfg = rule_config(rule, rule_combo(rule, cs[k].combo), cs[k].hp);
            float *a[MAX_ARR] = {NULL};
            for (unsigned j = 0; j < ri->narr; j++) {
                memcpy(ref[k][j], in[j], bytes);
                a[j] = ref[k][j];
            }
            if (guard_step(&cfg, a, n, k) != RMSFUSE_OK)
                FAIL("scalar step failed (%s combination %u, n %zu)", ri->name, cs[k].combo, n);
        }

        if (rmsfuse_set_isa(isa) != RMSFUSE_OK)
            FAIL("rmsfuse_set_isa(\"%s\") failed", isa);
        for (unsigned k = 0; k < nc; k++) {
            const rule_cfg cfg = rule_config(rule, rule_combo(rule, cs[k].combo), cs[k].hp);
            const unsigned used = rule_used(&cfg);
            char what[256];
            for (unsigned pl = 0; pl < npl; pl++) {
                const placement *pl_ = &pls[pl];
                const size_t shift = 1 + (n + k) % 3;
                float *ptr[MAX_ARR] = {NULL};
                for (unsigned j = 0; j < ri->narr; j++) {
                    if (pl_->array < 0 || pl_->array == (int)j)
                        ptr[j] = place(&reg[j], pl_->at, n, shift);
                    else
                        ptr[j] = plain[j] + (k + 3 * j + n + pl) % 16; /* assorted alignments */
                    memcpy(ptr[j], in[j], bytes);
                }
                cur_combo = (sig_atomic_t)cs[k].combo;
                cur_n = (sig_atomic_t)n;
                cur_array = (sig_atomic_t)pl_->array;
                cur_where = (sig_atomic_t)pl_->at;
                int st = guard_step(&cfg, ptr, n, k);
                if (st != RMSFUSE_OK) {
                    rule_describe(&cfg, what, sizeof what);
                    FAIL("isa %s, %s, n %zu, placement %u: step returned %d", isa, what, n, pl, st);
                }
                for (unsigned j = 0; j < ri->narr; j++) {
                    memcpy(out, ptr[j], bytes);
                    if (!(used & (1u << j)) || j == SLOT_GRAD) {
                        if (memcmp(out, in[j], bytes) != 0) {
                            rule_describe(&cfg, what, sizeof what);
                            FAIL("isa %s, %s, n %zu: %s, which the step does not write, was modified", isa, what,
                                 n, ri->arr_name[j]);
                        }
                        continue;
                    }
                    if (memcmp(out, ref[k][j], bytes) == 0) /* the usual case: the same bits */
                        continue;
                    for (size_t i = 0; i < n; i++)
                        if (!same_float(out[i], ref[k][j][i])) {
                            rule_describe(&cfg, what, sizeof what);
                            FAIL("isa %s, %s, n %zu, %s %s: %s[%zu] = %a, scalar %a", isa, what, n,
                                 pl_->array < 0 ? "every array" : ri->arr_name[pl_->array], where_name[pl_->at],
                                 ri->arr_name[j], i, (double)out[i], (double)ref[k][j][i]);
                        }
                }
            }
        }
    }

    for (unsigned j = 0; j < ri->narr; j++) {
        region_unmap(&reg[j]);
        free(plain[j]);
        free(in[j]);
    }
    free(out);
    free(ref);
    free(cs);
    cur_rule = cur_where = -1;
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    ck_assert_int_eq(rmsfuse_set_isa(entry_isa), RMSFUSE_OK);
    ck_assert_str_eq(rmsfuse_active_isa(), entry_isa);
}
END_TEST

/* ---- typed arrays (storage types) ------------------------------------------ */
/*
 * rmsfuse_<rule>_step_typed over arrays of every storage type (bf16, f16,
 * split pairs, master copies, 8-bit codes and their block scales), each
 * array in turn ending or starting at a guard page, then all of them, also
 * 1..3 bytes off (the block scales stay float-aligned): the bits of the
 * scalar ISA's typed step on ordinary memory.  Every other case with the
 * gradient options (the norm's pass converts the gradients block by block).
 */
static const size_t typed_n_full[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 63, 65, 255, 256, 257, 300, 511, 513};
static const size_t typed_n_quick[] = {1, 3, 17, 256, 257, 513};

enum { TG_PARAM = 0, TG_GRAD = 1, TG_EXTRA = 5, TG_SCALE = 6, TG_KINDS = 9 };

static size_t tg_type_bytes(unsigned type)
{
    return type == RMSFUSE_F32 ? 4 : type == RMSFUSE_Q8 || type == RMSFUSE_Q8_LINEAR ? 1 : 2;
}

static int tg_nonneg(int rule, int j)
{
    return (rule == RULE_RMSPROP || rule == RULE_ADAGRAD) ? j == 2 : rule == RULE_ADAM ? j == 3 || j == 4 : 0;
}

static void tg_set(rmsfuse_typed_tensor *t, int kind, void *p)
{
    if (kind == TG_PARAM)
        t->param = p;
    else if (kind == TG_GRAD)
        t->grad = p;
    else if (kind < TG_EXTRA)
        t->state[kind - 2] = p;
    else if (kind == TG_EXTRA)
        t->param_extra = p;
    else
        t->scale[kind - TG_SCALE] = p;
}

/* The step of a typed tensor: the plain one, or (odd k) with every gradient option. */
static int tg_step(const rule_cfg *c, const rmsfuse_storage *st, const rmsfuse_typed_tensor *t, unsigned k)
{
    static const rmsfuse_grad_options o = {0.5, 0.25, 1e30, RMSFUSE_SKIP_NONFINITE, 0.0};
    const rmsfuse_grad_options *opt = k % 2 ? &o : NULL;
    switch (c->rule) {
    case RULE_RMSPROP: return rmsfuse_rmsprop_step_typed(&c->u.rmsprop, st, t, 1, opt, NULL);
    case RULE_ADAGRAD: return rmsfuse_adagrad_step_typed(&c->u.adagrad, st, t, 1, opt, NULL);
    case RULE_SGD: return rmsfuse_sgd_step_typed(&c->u.sgd, st, t, 1, opt, NULL);
    default: return rmsfuse_adam_step_typed(&c->u.adam, st, t, 1, opt, NULL);
    }
}

static void *place_bytes(const region *r, where at, size_t bytes, size_t shift)
{
    switch (at) {
    case AT_END: return r->hi - bytes;
    case AT_START: return r->lo;
    case AT_END_ODD: return r->hi - bytes - shift;
    default: return r->lo + shift;
    }
}

START_TEST(test_guard_typed)
{
    const int isa_index = _i / N_RULES, rule = _i % N_RULES;
    const char *isa = rmsfuse_isa_names()[isa_index];
    if (!rmsfuse_isa_supported(isa))
        return;
    entry_isa = rmsfuse_active_isa();
    install_segv_reporter();
    cur_isa = (sig_atomic_t)isa_index;
    cur_rule = (sig_atomic_t)rule;
    cur_where = -1; /* the report names no array */
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    ck_assert(page >= 513 * 4 + 4);
    const int quick = test_quick_mode();
    const size_t *ns = quick ? typed_n_quick : typed_n_full;
    const size_t nn = quick ? sizeof typed_n_quick / sizeof typed_n_quick[0]
                            : sizeof typed_n_full / sizeof typed_n_full[0];
    /* the full configuration (every array) and the plain one */
    const rule_cfg cfgs[2] = {rule_full_config(rule), rule_config(rule, rule_combo(rule, 0), 0)};
    rmsfuse_storage sts[4];
    for (int q = 0; q < 4; q++)
        sts[q] = rmsfuse_storage_f32();
    sts[0].param = RMSFUSE_BF16, sts[0].grad = RMSFUSE_BF16, sts[0].state = RMSFUSE_Q8;
    sts[0].flags = RMSFUSE_MASTER_WEIGHTS | RMSFUSE_STOCHASTIC_ROUNDING;
    sts[1].param = RMSFUSE_SPLIT_BF16, sts[1].grad = RMSFUSE_F16, sts[1].state = RMSFUSE_Q8_LINEAR;
    sts[2].param = RMSFUSE_F16, sts[2].state = RMSFUSE_BF16, sts[2].flags = RMSFUSE_STOCHASTIC_ROUNDING;
    sts[3].param = RMSFUSE_F16, sts[3].grad = RMSFUSE_BF16, sts[3].flags = RMSFUSE_MASTER_WEIGHTS;
    region reg[TG_KINDS];
    unsigned char *in[TG_KINDS], *plain[TG_KINDS], *ref[TG_KINDS];
    for (int a = 0; a < TG_KINDS; a++) {
        region_map(&reg[a], page);
        in[a] = malloc(page);
        plain[a] = malloc(page + 16);
        ref[a] = malloc(page);
        ck_assert(in[a] && plain[a] && ref[a]);
    }
    float *v = malloc(page);
    ck_assert_ptr_nonnull(v);
    test_rng r = {0x7e9a4dull ^ (uint64_t)rule};
    unsigned k = 0;
    for (int ci = 0; ci < 2; ci++)
        for (int si = 0; si < 4; si++)
            for (size_t ni = 0; ni < nn; ni++, k++) {
                const rule_cfg *cfg = &cfgs[ci];
                rmsfuse_storage st = sts[si];
                st.seed = 77;
                const size_t n = ns[ni];
                const unsigned used = rule_used(cfg);
                const int q8 = st.state == RMSFUSE_Q8 || st.state == RMSFUSE_Q8_LINEAR;
                const int master = (st.flags & RMSFUSE_MASTER_WEIGHTS) != 0;
                const int split = st.param == RMSFUSE_SPLIT_BF16;
                /* the arrays this case uses, their sizes and inputs */
                size_t bytes[TG_KINDS] = {0};
                int live[TG_KINDS] = {0};
                for (int j = 0; j < (int)rule_infos[rule].narr; j++) {
                    if (!(used & (1u << j)))
                        continue;
                    const unsigned type = j == 0 ? st.param : j == 1 ? st.grad : st.state;
                    live[j] = 1;
                    bytes[j] = n * tg_type_bytes(type);
                    for (size_t e = 0; e < n; e++)
                        v[e] = rule_realistic(rule, (unsigned)j, &r, 1.0f);
                    if (j >= 2 && q8) {
                        live[TG_SCALE + j - 2] = 1;
                        bytes[TG_SCALE + j - 2] = (n + RMSFUSE_Q8_BLOCK - 1) / RMSFUSE_Q8_BLOCK * 4;
                    }
                    if (j == 0 && (master || split)) {
                        live[TG_EXTRA] = 1;
                        bytes[TG_EXTRA] = n * (split ? 2 : 4);
                        for (size_t e = 0; e < n; e++) {
                            const uint32_t u = f2u(v[e]);
                            if (split) {
                                const uint16_t hi = (uint16_t)(u >> 16), lo = (uint16_t)u;
                                memcpy(in[0] + 2 * e, &hi, 2);
                                memcpy(in[TG_EXTRA] + 2 * e, &lo, 2);
                            } else {
                                memcpy(in[TG_EXTRA] + 4 * e, &u, 4);
                                in[0][2 * e] = (unsigned char)rng_next(&r), in[0][2 * e + 1] = 0x3f;
                            }
                        }
                        continue;
                    }
                    if (rmsfuse_convert_from_f32(type, j >= 2 && tg_nonneg(rule, j), v, in[j],
                                                 j >= 2 && q8 ? (float *)(void *)in[TG_SCALE + j - 2] : NULL,
                                                 n) != RMSFUSE_OK)
                        FAIL("convert_from_f32 failed");
                }
                /* the scalar step on ordinary memory */
                if (rmsfuse_set_isa("scalar") != RMSFUSE_OK)
                    FAIL("rmsfuse_set_isa(\"scalar\") failed");
                rmsfuse_typed_tensor t;
                memset(&t, 0, sizeof t);
                t.n = n;
                t.stream = k;
                for (int a = 0; a < TG_KINDS; a++)
                    if (live[a]) {
                        unsigned char *p = plain[a] + (a >= TG_SCALE ? 4 * (k % 4) : (k + (unsigned)a) % 16);
                        memcpy(p, in[a], bytes[a]);
                        tg_set(&t, a, p);
                    }
                if (tg_step(cfg, &st, &t, k) != RMSFUSE_OK)
                    FAIL("scalar typed step failed (%s, storage %d, n %zu)", rule_infos[rule].name, si, n);
                for (int a = 0; a < TG_KINDS; a++)
                    if (live[a])
                        memcpy(ref[a], a == TG_GRAD ? (const unsigned char *)t.grad
                                       : a == TG_PARAM ? (unsigned char *)t.param
                                       : a == TG_EXTRA ? (unsigned char *)t.param_extra
                                       : a < TG_EXTRA ? (unsigned char *)t.state[a - 2]
                                                      : (unsigned char *)t.scale[a - TG_SCALE],
                               bytes[a]);
                if (rmsfuse_set_isa(isa) != RMSFUSE_OK)
                    FAIL("rmsfuse_set_isa(\"%s\") failed", isa);
                /* each array at a guard, then all of them; at either end, and 1..3 bytes off */
                for (int pl = 0; pl < 4 * (TG_KINDS + 1); pl++) {
                    const int which = pl % (TG_KINDS + 1) - 1; /* -1: all */
                    const where at = (where)(pl / (TG_KINDS + 1));
                    if (which >= 0 && !live[which])
                        continue;
                    if (at >= AT_END_ODD && which >= TG_SCALE)
                        continue; /* float* scales stay aligned */
                    unsigned char *ptr[TG_KINDS] = {NULL};
                    memset(&t, 0, sizeof t);
                    t.n = n;
                    t.stream = k;
                    for (int a = 0; a < TG_KINDS; a++) {
                        if (!live[a])
                            continue;
                        const size_t shift = a >= TG_SCALE ? 0 : 1 + (n + (size_t)a) % 3;
                        ptr[a] = which < 0 || which == a ? place_bytes(&reg[a], at, bytes[a], shift)
                                                         : plain[a] + (a >= TG_SCALE ? 4 * ((size_t)pl % 4) : (size_t)pl % 16);
                        memcpy(ptr[a], in[a], bytes[a]);
                        tg_set(&t, a, ptr[a]);
                    }
                    cur_combo = (sig_atomic_t)(si + 4 * ci);
                    cur_n = (sig_atomic_t)n;
                    if (tg_step(cfg, &st, &t, k) != RMSFUSE_OK)
                        FAIL("isa %s, %s, storage %d, n %zu: the typed step failed", isa, rule_infos[rule].name, si, n);
                    for (int a = 0; a < TG_KINDS; a++)
                        if (live[a] && memcmp(ptr[a], ref[a], bytes[a]) != 0)
                            FAIL("isa %s, %s (config %d), storage %d, n %zu, array %d %s (%s): not the scalar bits", isa,
                                 rule_infos[rule].name, ci, si, n, a, which < 0 ? "with every array" : "at the guard",
                                 where_name[at]);
                }
            }
    for (int a = 0; a < TG_KINDS; a++) {
        region_unmap(&reg[a]);
        free(in[a]);
        free(plain[a]);
        free(ref[a]);
    }
    free(v);
    cur_rule = -1;
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    ck_assert_int_eq(rmsfuse_set_isa(entry_isa), RMSFUSE_OK);
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
    /* One iteration per ISA name and rule; ISAs this machine cannot run
     * pass trivially. */
    tcase_add_loop_test(tc, test_guard_pages, 0, (int)count_names() * N_RULES);
    tcase_add_loop_test(tc, test_guard_typed, 0, (int)count_names() * N_RULES);
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

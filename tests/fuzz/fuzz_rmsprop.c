/*
 * Fuzz target for the whole public API of the core library.
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
 * An input is decoded into a configuration, one tensor (n and the five
 * array pointers) and/or a list of up to four tensors, and the bytes that
 * fill the arrays.  Pointers are NULL, their own exactly-sized heap block
 * (at any byte alignment), a place in a shared arena (so arrays may
 * overlap, within a tensor or across tensors), an alias of an earlier
 * array (shared gradients), or "wild": an address near the top of the
 * address space from which n floats would wrap.  n is small, or huge
 * (>= 2^45: more than any user-space distance, so never accepted).
 *
 * For every input:
 *   - the expected status is computed independently (expect_single,
 *     expect_multi: the documented rules, written plainly) and
 *     rmsfuse_rmsprop_check_config / _check / _check_multi, and the steps
 *     under every ISA, must return it;
 *   - a rejected call changes no byte of any buffer;
 *   - an accepted call gives, under every supported ISA, the scalar path's
 *     results (same bits; for NaNs NaN-ness, as tests/test_isa.c), and no
 *     byte outside the arrays it writes changes (grad, unused arrays,
 *     padding);
 *   - step_multi gives the bytes of one scalar step per tensor;
 *   - no crash and (under ASan/UBSan or valgrind) no invalid access or
 *     undefined behaviour.
 * A failed check prints what differs and aborts (a crash for libFuzzer).
 *
 * Input format (bytes; reading past the end gives zeros):
 *   op        bits 0-1: 0 one tensor, 1 a list, 2-3 both;
 *             bits 2-3: how data bytes become floats (raw bits, special
 *             values, small positive values, a mix); bits 4-6 all set:
 *             the list pointer is NULL; bit 7: cfg is NULL
 *   5 x hyper lr, alpha, eps, weight_decay, momentum: a byte; bit 7 set:
 *             the next 8 bytes are the double, else table entry (b & 31)
 *   flags     bits 0-3 the flags; bit 4: also an unknown bit 6 + (b >> 5);
 *             b >= 0xf0: also bit 31
 *   tensor    n (u16 little endian; top two bits set: a huge n from a
 *             table, else n mod 1025, or mod 257 in a list), then 5 array
 *             specs (param, grad, square_avg, momentum_buf, grad_avg): a
 *             byte s; s % 8: 0-2 own block, 3 NULL, 4-5 arena (a u16
 *             offset follows), 6 alias of an earlier array, 7 wild;
 *             s >> 3 gives the misalignment / alias / wild parameters
 *   list      a count byte (count = b % 5), then count tensors
 *   data      the second half of the input, cycled (it may overlap the
 *             structure; it stays put when the structure grows)
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rmsfuse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Calls run so far: [0] single accepted, [1] single rejected, [2] list
 * accepted, [3] list rejected; [4] floats compared (fuzz_main.c reports). */
unsigned long long rmsfuse_fuzz_stats[5];

#define FAIL(...)                                      \
    do {                                               \
        fprintf(stderr, "fuzz_rmsprop: " __VA_ARGS__); \
        fputc('\n', stderr);                           \
        abort();                                       \
    } while (0)

enum { P, G, V, B, GA, NARR };
static const char *const arr_name[NARR] = {"param", "grad", "square_avg", "momentum_buf", "grad_avg"};

enum {
    MAX_N_SINGLE = 1024,
    MAX_N_LIST = 256,
    MAX_TENSORS = 4,
    HUGE_CAP = 64, /* elements allocated for a huge n */
    ARENA_SINGLE = 3 * 4 * MAX_N_SINGLE,
    ARENA_LIST = 6 * 4 * MAX_N_LIST,
    MAX_BUFS = 1 + NARR * MAX_TENSORS,
};

/* ---- reading the input ------------------------------------------------- */
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

static const double hyper_table[32] = {
    0.0, 1.0, 0.5, 0.9, 0.99, 0.999999, 1e-8, 1e-7,
    1e-10, 1e-3, 0.01, 0.1, -0.0, -1e-300, -1.0, 3.0e38,
    0x1.fffffep+127,      /* FLT_MAX */
    0x1.ffffffp+127,      /* FLT_MAX + half an ulp: rounds (to even) to +Inf in float */
    0x1.fffffefffffffp+127, /* just below that: rounds to FLT_MAX */
    1e39, 0x1p-149 /* FLT_TRUE_MIN */, 1e-46 /* rounds to 0 in float */, 0x1p-1074, DBL_MAX,
    INFINITY, -INFINITY, NAN, 0x1.fffffffffffffp-1 /* just below 1 */,
    0x1.0000000000001p+0 /* just above 1 */, 2.0, 100.0, 1e30,
};

static double read_hyper(reader *r)
{
    const unsigned s = u8(r);
    if (s & 0x80u) {
        uint64_t bits = 0;
        for (int k = 0; k < 8; k++)
            bits |= (uint64_t)u8(r) << (8 * k);
        double x;
        memcpy(&x, &bits, sizeof x);
        return x;
    }
    return hyper_table[s & 31u];
}

/* Huge n: 2^46 floats and more span 2^48 bytes or more, further than any
 * two user-space addresses are apart (x86-64: 47-bit, AArch64: at most
 * 48-bit user space), and the largest wrap from anywhere; a step uses at
 * least three arrays, so a huge n is always rejected (overlap or size). */
static const size_t huge_table[8] = {
    (size_t)1 << 46, (size_t)1 << 47, (size_t)1 << 61, SIZE_MAX / 4,
    SIZE_MAX / 4 + 1, SIZE_MAX / 2, SIZE_MAX - 1, SIZE_MAX,
};

static size_t read_n(reader *r, size_t max_n, int *huge)
{
    const unsigned v = u16(r);
    *huge = (v & 0xc000u) == 0xc000u;
    return *huge ? huge_table[v & 7u] : v % (max_n + 1);
}

/* ---- buffers ------------------------------------------------------------- */
/* Every byte an array may touch lives in one of these heap blocks, each
 * allocated with its exact size (so ASan sees any access past it). */
typedef struct bufset {
    unsigned char *p[MAX_BUFS];
    size_t size[MAX_BUFS];
    unsigned char *snap[MAX_BUFS], *ref[MAX_BUFS], *written[MAX_BUFS];
    int count;
    unsigned char *arena; /* lazily allocated, one of p[] */
    size_t arena_size;
    /* data */
    int mode;
    const uint8_t *data;
    size_t data_len, data_at;
    uint64_t rng;
} bufset;

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
                uint32_t u = special_bits[b & 31u];
                memcpy(&f, &u, 4);
            } else if (S->mode == 2) {
                f = (float)(b + 1) / 256.0f;
            } else if (b < 64) {
                uint32_t u = special_bits[b & 31u];
                memcpy(&f, &u, 4);
            } else {
                f = (float)((int)b - 160) / 32.0f;
            }
            memcpy(p + i, &f, 4);
        }
    for (; i < size; i++)
        p[i] = (unsigned char)data_byte(S);
}

static unsigned char *new_buf(bufset *S, size_t size)
{
    if (S->count == MAX_BUFS)
        FAIL("harness: out of buffer slots");
    unsigned char *p = malloc(size ? size : 1);
    if (!p)
        FAIL("harness: out of memory");
    fill(S, p, size);
    S->p[S->count] = p;
    S->size[S->count] = size;
    S->snap[S->count] = S->ref[S->count] = S->written[S->count] = NULL;
    S->count++;
    return p;
}

static void free_bufs(bufset *S)
{
    for (int i = 0; i < S->count; i++) {
        free(S->p[i]);
        free(S->snap[i]);
        free(S->ref[i]);
        free(S->written[i]);
    }
    S->count = 0;
    S->arena = NULL;
}

/* The buffer holding [a, a + bytes), or -1. */
static int buf_of(const bufset *S, uintptr_t a, size_t bytes)
{
    for (int i = 0; i < S->count; i++) {
        const uintptr_t lo = (uintptr_t)S->p[i];
        if (a >= lo && a - lo <= S->size[i] && bytes <= S->size[i] - (a - lo))
            return i;
    }
    return -1;
}

/* ---- tensors ------------------------------------------------------------- */
typedef struct slot_list {
    float *ptr[MAX_TENSORS * NARR]; /* every array decoded so far (aliases) */
    size_t avail[MAX_TENSORS * NARR]; /* bytes of memory from ptr on (wild: to 2^64) */
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
    if (a > UINTPTR_MAX - 4096) /* wild */
        return n > SIZE_MAX / 4 || L->avail[k] <= 4 * n;
    return L->avail[k] >= 4 * cap;
}

/* An array of cap floats in a block of its own, (x & 3) + 4 * (x >> 2)
 * bytes past the start of the block (any byte alignment). */
static float *own_block(bufset *S, size_t cap, unsigned x)
{
    const size_t mis = (x & 3u) + 4u * (x >> 2);
    return (float *)(void *)(new_buf(S, mis + 4 * cap) + mis);
}

static float *read_array(reader *r, bufset *S, slot_list *L, size_t n, int huge, size_t arena_size)
{
    const size_t cap = huge ? HUGE_CAP : n; /* elements actually backed by memory */
    const unsigned s = u8(r), x = s >> 3;
    float *a;
    size_t avail = 4 * cap;
    switch (s % 8u) {
    case 3:
        a = NULL;
        break;
    case 4:
    case 5: {
        if (!S->arena) {
            S->arena = new_buf(S, arena_size);
            S->arena_size = arena_size;
        }
        const size_t off = u16(r) % (S->arena_size - 4 * cap + 1);
        a = (float *)(void *)(S->arena + off);
        avail = S->arena_size - off;
        break;
    }
    case 6: /* alias (an own block when that one cannot be reused) */
        if (L->count > 0 && can_alias(L, (int)(x % (unsigned)L->count), n, cap)) {
            a = L->ptr[x % (unsigned)L->count];
            avail = L->avail[x % (unsigned)L->count];
            break;
        }
        a = own_block(S, cap, x);
        break;
    default:
        a = own_block(S, cap, x);
        break;
    case 7: {
        /* 4k bytes below 2^64, k in [1, n] (any k when n == 0, which
         * touches nothing): n floats from there reach or pass 2^64. */
        const size_t lim = n == 0 ? 32 : n < 32 ? n : 32;
        const uintptr_t k = 1 + x % lim;
        a = (float *)((uintptr_t)0 - 4 * k);
        avail = 4 * k;
        break;
    }
    }
    L->ptr[L->count] = a;
    L->avail[L->count] = avail;
    L->count++;
    return a;
}

static void read_tensor(reader *r, bufset *S, slot_list *L, size_t max_n, size_t arena_size, rmsfuse_tensor *t,
                        int *huge)
{
    t->n = read_n(r, max_n, huge);
    float *a[NARR];
    for (int j = 0; j < NARR; j++)
        a[j] = read_array(r, S, L, t->n, *huge, arena_size);
    t->param = a[P];
    t->grad = a[G];
    t->square_avg = a[V];
    t->momentum_buf = a[B];
    t->grad_avg = a[GA];
}

/* ---- the expected status: the documented rules, independently ------------ */
static int finite_in_float(double x)
{
    /* Finite once rounded to float (nearest, ties to even): below
     * FLT_MAX + half an ulp of it. */
    return fabs(x) < 0x1.ffffffp+127;
}

static int expect_config(const rmsfuse_rmsprop_config *c)
{
    if (!c)
        return RMSFUSE_E_NULL_CONFIG;
    if (!finite_in_float(c->lr) || !finite_in_float(c->alpha) || !finite_in_float(c->eps) ||
        !finite_in_float(c->weight_decay) || !finite_in_float(c->momentum))
        return RMSFUSE_E_NONFINITE;
    if (c->lr < 0)
        return RMSFUSE_E_LR;
    if (c->alpha < 0 || c->alpha > 1)
        return RMSFUSE_E_ALPHA;
    if (c->eps < 0)
        return RMSFUSE_E_EPS;
    if (c->weight_decay < 0)
        return RMSFUSE_E_WEIGHT_DECAY;
    if (c->momentum < 0 || c->momentum >= 1)
        return RMSFUSE_E_MOMENTUM;
    if (c->flags & ~(unsigned)RMSFUSE_ALL_FLAGS)
        return RMSFUSE_E_FLAGS;
    return RMSFUSE_OK;
}

/* Which arrays a configuration uses. */
static void used_arrays(const rmsfuse_rmsprop_config *c, int use[NARR])
{
    use[P] = use[G] = use[V] = 1;
    use[B] = c->momentum != 0;
    use[GA] = (c->flags & RMSFUSE_CENTERED) != 0;
}

static const float *arr(const rmsfuse_tensor *t, int j)
{
    switch (j) {
    case P: return t->param;
    case G: return t->grad;
    case V: return t->square_avg;
    case B: return t->momentum_buf;
    default: return t->grad_avg;
    }
}

/* [x, x + bytes) and [y, y + bytes) intersect (neither wraps). */
static int overlap(const float *x, size_t xb, const float *y, size_t yb)
{
    const uintptr_t a = (uintptr_t)x, b = (uintptr_t)y;
    return a < b + yb && b < a + xb;
}

/* One tensor with n > 0 under a valid configuration. */
static int expect_tensor(const rmsfuse_rmsprop_config *c, const rmsfuse_tensor *t)
{
    int use[NARR];
    used_arrays(c, use);
    if (!t->param || !t->grad || !t->square_avg)
        return RMSFUSE_E_NULL_ARRAY;
    if (use[B] && !t->momentum_buf)
        return RMSFUSE_E_NULL_MOMENTUM_BUF;
    if (use[GA] && !t->grad_avg)
        return RMSFUSE_E_NULL_GRAD_AVG;
    if (t->n > SIZE_MAX / sizeof(float))
        return RMSFUSE_E_SIZE;
    const size_t bytes = t->n * sizeof(float);
    /* An array wraps when its end, address + bytes, is past the last
     * address (2^64 itself included). */
    for (int j = 0; j < NARR; j++)
        if (use[j] && (uintptr_t)arr(t, j) > UINTPTR_MAX - bytes)
            return RMSFUSE_E_SIZE;
    for (int i = 0; i < NARR; i++)
        for (int j = i + 1; j < NARR; j++)
            if (use[i] && use[j] && overlap(arr(t, i), bytes, arr(t, j), bytes))
                return RMSFUSE_E_OVERLAP;
    return RMSFUSE_OK;
}

static int expect_single(const rmsfuse_rmsprop_config *c, const rmsfuse_tensor *t)
{
    const int st = expect_config(c);
    if (st != RMSFUSE_OK || t->n == 0)
        return st;
    return expect_tensor(c, t);
}

static int expect_multi(const rmsfuse_rmsprop_config *c, const rmsfuse_tensor *t, size_t count)
{
    int st = expect_config(c);
    if (st != RMSFUSE_OK || count == 0)
        return st;
    if (!t)
        return RMSFUSE_E_NULL_LIST;
    for (size_t i = 0; i < count; i++)
        if (t[i].n && (st = expect_tensor(c, &t[i])) != RMSFUSE_OK)
            return st;
    /* Across tensors: a written array may overlap no other array; two
     * gradients may. */
    int use[NARR];
    used_arrays(c, use);
    for (size_t i = 0; i < count; i++)
        for (size_t k = i + 1; k < count; k++)
            for (int a = 0; a < NARR; a++)
                for (int b = 0; b < NARR; b++)
                    if (t[i].n && t[k].n && use[a] && use[b] && !(a == G && b == G) &&
                        overlap(arr(&t[i], a), 4 * t[i].n, arr(&t[k], b), 4 * t[k].n))
                        return RMSFUSE_E_OVERLAP;
    return RMSFUSE_OK;
}

/* ---- running a call under every ISA ---------------------------------------- */
static const char *isas[8];
static int n_isas;

static void init_isas(void)
{
    if (n_isas)
        return;
    /* scalar first: it computes the reference. */
    for (const char *const *p = rmsfuse_isa_names(); *p && n_isas < 8; p++)
        if (rmsfuse_isa_supported(*p))
            isas[n_isas++] = *p;
    if (n_isas == 0 || strcmp(isas[0], "scalar") != 0)
        FAIL("scalar is not the first supported ISA");
}

typedef struct call {
    const char *what;
    const rmsfuse_rmsprop_config *cfg;
    const rmsfuse_tensor *t;
    size_t count;
    int multi; /* step_multi(cfg, t, count), else step(cfg, t[0]) */
} call;

static int do_step(const call *c)
{
    if (c->multi)
        return rmsfuse_rmsprop_step_multi(c->cfg, c->t, c->count);
    const rmsfuse_tensor *t = c->t;
    return rmsfuse_rmsprop_step(c->cfg, t->param, t->grad, t->square_avg, t->momentum_buf, t->grad_avg, t->n);
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

static void *dup(const void *p, size_t size)
{
    void *q = malloc(size ? size : 1);
    if (!q)
        FAIL("harness: out of memory");
    memcpy(q, p, size);
    return q;
}

/* Marks the bytes of the arrays an accepted call writes. */
static void mark_written(bufset *S, const call *c)
{
    int use[NARR];
    used_arrays(c->cfg, use);
    for (int i = 0; i < S->count; i++) {
        free(S->written[i]);
        S->written[i] = calloc(S->size[i] ? S->size[i] : 1, 1);
        if (!S->written[i])
            FAIL("harness: out of memory");
    }
    for (size_t k = 0; k < (c->multi ? c->count : 1); k++) {
        const rmsfuse_tensor *t = &c->t[k];
        for (int j = 0; j < NARR && t->n; j++) {
            if (!use[j] || j == G)
                continue;
            const size_t bytes = 4 * t->n;
            const int b = buf_of(S, (uintptr_t)arr(t, j), bytes);
            if (b < 0) /* never: an accepted call's arrays are all in buffers */
                FAIL("harness: %s %s of tensor %zu is not in a buffer", c->what, arr_name[j], k);
            memset(S->written[b] + ((const unsigned char *)arr(t, j) - S->p[b]), 1, bytes);
        }
    }
}

/* After an accepted call under `isa`: the bytes not written equal the
 * snapshot, the written floats match the scalar reference. */
static void compare_to_ref(const bufset *S, const call *c, const char *isa)
{
    for (int i = 0; i < S->count; i++) {
        const unsigned char *now = S->p[i], *before = S->snap[i], *w = S->written[i];
        for (size_t k = 0; k < S->size[i]; k++)
            if (!w[k] && now[k] != before[k])
                FAIL("%s under %s: byte %zu of buffer %d, which the call must not write, changed", c->what, isa,
                     k, i);
    }
    int use[NARR];
    used_arrays(c->cfg, use);
    for (size_t k = 0; k < (c->multi ? c->count : 1); k++) {
        const rmsfuse_tensor *t = &c->t[k];
        for (int j = 0; j < NARR && t->n; j++) {
            if (!use[j] || j == G)
                continue;
            const int b = buf_of(S, (uintptr_t)arr(t, j), 4 * t->n);
            const size_t o = (size_t)((const unsigned char *)arr(t, j) - S->p[b]);
            for (size_t e = 0; e < t->n; e++) {
                float x, y;
                memcpy(&x, S->p[b] + o + 4 * e, 4);
                memcpy(&y, S->ref[b] + o + 4 * e, 4);
                rmsfuse_fuzz_stats[4]++;
                if (!same_float(x, y))
                    FAIL("%s under %s: tensor %zu %s[%zu] = %a, scalar %a", c->what, isa, k, arr_name[j], e,
                         (double)x, (double)y);
            }
        }
    }
}

static void restore(bufset *S)
{
    for (int i = 0; i < S->count; i++)
        memcpy(S->p[i], S->snap[i], S->size[i]);
}

/* Runs the call under every supported ISA from the same inputs. */
static void run_call(bufset *S, const call *c, int expect)
{
    rmsfuse_fuzz_stats[2 * c->multi + (expect != RMSFUSE_OK)]++;
    for (int i = 0; i < S->count; i++) {
        free(S->snap[i]);
        S->snap[i] = dup(S->p[i], S->size[i]);
    }
    if (expect == RMSFUSE_OK)
        mark_written(S, c);
    for (int k = 0; k < n_isas; k++) {
        restore(S);
        if (rmsfuse_set_isa(isas[k]) != RMSFUSE_OK)
            FAIL("rmsfuse_set_isa(\"%s\") failed", isas[k]);
        const int st = do_step(c);
        if (st != expect)
            FAIL("%s under %s returned %d (%s), expected %d (%s)", c->what, isas[k], st, rmsfuse_strerror(st),
                 expect, rmsfuse_strerror(expect));
        if (st != RMSFUSE_OK) {
            for (int i = 0; i < S->count; i++)
                if (memcmp(S->p[i], S->snap[i], S->size[i]) != 0)
                    FAIL("%s under %s was rejected (%d) but changed buffer %d", c->what, isas[k], st, i);
            continue;
        }
        if (k == 0) { /* scalar: the reference */
            for (int i = 0; i < S->count; i++) {
                free(S->ref[i]);
                S->ref[i] = dup(S->p[i], S->size[i]);
            }
        }
        compare_to_ref(S, c, isas[k]);
    }
    if (expect == RMSFUSE_OK && c->multi) {
        /* The list step == one (scalar) step per tensor, to the byte. */
        restore(S);
        if (rmsfuse_set_isa("scalar") != RMSFUSE_OK)
            FAIL("rmsfuse_set_isa(\"scalar\") failed");
        for (size_t k = 0; k < c->count; k++) {
            const rmsfuse_tensor *t = &c->t[k];
            const int st = rmsfuse_rmsprop_step(c->cfg, t->param, t->grad, t->square_avg, t->momentum_buf,
                                                t->grad_avg, t->n);
            if (st != RMSFUSE_OK)
                FAIL("tensor %zu of an accepted list: rmsfuse_rmsprop_step returned %d", k, st);
        }
        for (int i = 0; i < S->count; i++)
            if (memcmp(S->p[i], S->ref[i], S->size[i]) != 0)
                FAIL("step_multi differs from one step per tensor (buffer %d)", i);
    }
}

/* ---- the target ------------------------------------------------------------ */
static void single_case(reader *r, const rmsfuse_rmsprop_config *cfg, bufset *S)
{
    slot_list L = {{0}, {0}, 0};
    rmsfuse_tensor t;
    int huge;
    read_tensor(r, S, &L, MAX_N_SINGLE, ARENA_SINGLE, &t, &huge);
    const int expect = expect_single(cfg, &t);
    if (expect == RMSFUSE_OK && huge) /* never: see huge_table */
        FAIL("harness: a huge n (%zu) would be accepted", t.n);
    const int chk = rmsfuse_rmsprop_check(cfg, t.param, t.grad, t.square_avg, t.momentum_buf, t.grad_avg, t.n);
    if (chk != expect)
        FAIL("rmsfuse_rmsprop_check returned %d (%s), expected %d (%s); n %zu", chk, rmsfuse_strerror(chk), expect,
             rmsfuse_strerror(expect), t.n);
    const call c = {"rmsfuse_rmsprop_step", cfg, &t, 1, 0};
    run_call(S, &c, expect);
}

static void list_case(reader *r, const rmsfuse_rmsprop_config *cfg, bufset *S, int null_list)
{
    slot_list L = {{0}, {0}, 0};
    rmsfuse_tensor t[MAX_TENSORS];
    const size_t count = u8(r) % (MAX_TENSORS + 1);
    int any_huge = 0;
    for (size_t k = 0; k < count; k++) {
        int huge;
        read_tensor(r, S, &L, MAX_N_LIST, ARENA_LIST, &t[k], &huge);
        any_huge |= huge && t[k].n;
    }
    const rmsfuse_tensor *list = null_list ? NULL : t;
    const int expect = expect_multi(cfg, list, count);
    if (expect == RMSFUSE_OK && any_huge && list)
        FAIL("harness: a list with a huge n would be accepted");
    const int chk = rmsfuse_rmsprop_check_multi(cfg, list, count);
    if (chk != expect)
        FAIL("rmsfuse_rmsprop_check_multi returned %d (%s), expected %d (%s); %zu tensors", chk,
             rmsfuse_strerror(chk), expect, rmsfuse_strerror(expect), count);
    const call c = {"rmsfuse_rmsprop_step_multi", cfg, list, count, 1};
    run_call(S, &c, expect);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_isas();
    const char *entry = rmsfuse_active_isa();
    reader r = {data, size, 0};
    const unsigned op = u8(&r);
    rmsfuse_rmsprop_config cfg;
    cfg.lr = read_hyper(&r);
    cfg.alpha = read_hyper(&r);
    cfg.eps = read_hyper(&r);
    cfg.weight_decay = read_hyper(&r);
    cfg.momentum = read_hyper(&r);
    const unsigned f = u8(&r);
    cfg.flags = f & 15u;
    if (f & 0x10u)
        cfg.flags |= 1u << (6 + (f >> 5));
    if (f >= 0xf0u)
        cfg.flags |= 1u << 31;
    const rmsfuse_rmsprop_config *pc = (op & 0x80u) ? NULL : &cfg;

    const int cfg_status = rmsfuse_rmsprop_check_config(pc);
    if (cfg_status != expect_config(pc))
        FAIL("rmsfuse_rmsprop_check_config returned %d, expected %d", cfg_status, expect_config(pc));
    if (!rmsfuse_strerror(cfg_status) || !rmsfuse_strerror(cfg_status)[0])
        FAIL("rmsfuse_strerror(%d) is empty", cfg_status);

    /* Buffers are filled as they are made, from the data bytes. */
    bufset S;
    memset(&S, 0, sizeof S);
    S.mode = (int)((op >> 2) & 3u);
    S.rng = 0x9e3779b97f4a7c15ull ^ size;
    /* Data start: a fixed place, so that the structure can grow without
     * shifting the data the fuzzer found: the last half of the input. */
    S.data = data + size / 2;
    S.data_len = size - size / 2;

    const unsigned what = op & 3u;
    if (what != 1u) {
        single_case(&r, pc, &S);
        free_bufs(&S);
    }
    if (what != 0u) {
        list_case(&r, pc, &S, ((op >> 4) & 7u) == 7u);
        free_bufs(&S);
    }
    if (rmsfuse_set_isa(entry) != RMSFUSE_OK)
        FAIL("could not restore the ISA %s", entry);
    return 0;
}

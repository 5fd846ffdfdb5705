/*
 * The overlap check's sorts (src/core/run.c) against a pairwise check:
 * random lists of byte ranges, spread over the whole address space (every
 * byte of a start may differ, as between the heap, mmap'ed memory and the
 * stack) or close together, in random order or by kinds (k ranges per
 * tensor), with and without one overlap; each with malloc failing too
 * (the heap sort the check falls back to; linked with --wrap=malloc).
 * Linked with the static library: the check is internal.  Eight seeds, two
 * with RMSFUSE_TEST_QUICK (the pairwise check of 1200 ranges took two
 * minutes of valgrind's stage in CI).
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "../src/core/internal.h"
#include "test_rules.h" /* test_quick_mode */

void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
static int fail_malloc; /* the library's malloc returns NULL */
void *__wrap_malloc(size_t n)
{
    return fail_malloc ? NULL : __real_malloc(n);
}

/* Whether any written range overlaps another range (the pairwise rule). */
static int brute(const rmsfuse_span *s, size_t m)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = i + 1; j < m; j++)
            if ((s[i].written || s[j].written) && s[i].lo < s[j].hi && s[j].lo < s[i].hi)
                return 1;
    return 0;
}

static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* m ranges, k per tensor in the order of kinds: kind j's ranges in their
 * own region, in increasing order; gaps of 0 to 3 bytes; shift spreads the
 * regions (0: 1 MiB apart, else apart in the high bytes). */
static void make(rmsfuse_span *s, size_t m, size_t k, int spread, uint64_t *x)
{
    const size_t nt = m / k;
    for (size_t j = 0; j < k; j++) {
        uintptr_t at = spread ? (uintptr_t)((next(x) & 0x7FFFu) + 1) << 32 | (uintptr_t)(j << 24)
                              : (uintptr_t)0x10000000u + (uintptr_t)j * 0x100000u;
        for (size_t t = 0; t < nt; t++) {
            const uintptr_t len = 1 + next(x) % 64;
            s[t * k + j] = (rmsfuse_span){at, at + len, j != 1};
            at += len + next(x) % 4;
        }
    }
}

static void shuffle(rmsfuse_span *s, size_t m, uint64_t *x)
{
    for (size_t i = m; i > 1; i--) {
        const size_t j = next(x) % i;
        const rmsfuse_span t = s[i - 1];
        s[i - 1] = s[j];
        s[j] = t;
    }
}

START_TEST(test_against_pairwise)
{
    uint64_t x = 0x9E3779B97F4A7C15u ^ (uint64_t)_i;
    static rmsfuse_span s[1200], c[1200];
    const size_t ms[] = {2, 3, 31, 32, 33, 64, 300, 1200};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t k = 1; k <= 6; k++)
            for (int spread = 0; spread < 2; spread++)
                for (int form = 0; form < 4; form++) {
                    const size_t m = ms[a] / k * k;
                    if (m < 2)
                        continue;
                    make(s, m, k, spread, &x);
                    if (form & 1) { /* one range moved onto another */
                        const size_t p = next(&x) % m, q = next(&x) % m;
                        if (p != q)
                            s[p].lo = s[q].lo + (s[q].hi - s[q].lo) / 2, s[p].hi = s[p].lo + 8;
                    }
                    if (form & 2)
                        shuffle(s, m, &x);
                    const int want = brute(s, m);
                    for (fail_malloc = 0; fail_malloc < 2; fail_malloc++) {
                        for (size_t i = 0; i < m; i++)
                            c[i] = s[i];
                        const int got = rmsfuse_spans_overlap(c, m);
                        const int fm = fail_malloc;
                        fail_malloc = 0;
                        ck_assert_msg(got == want, "m %zu k %zu spread %d form %d malloc %s", m, k, spread, form,
                                      fm ? "failing" : "working");
                        for (size_t i = 1; i < m; i++)
                            ck_assert_msg(c[i - 1].lo <= c[i].lo, "sorted: m %zu at %zu", m, i);
                        fail_malloc = fm;
                        for (size_t i = 0; i < m; i++)
                            c[i] = s[i];
                        const int gotk = rmsfuse_spans_overlap_kinds(c, m, k);
                        fail_malloc = 0;
                        ck_assert_msg(gotk == want, "kinds: m %zu k %zu spread %d form %d", m, k, spread, form);
                        fail_malloc = fm;
                    }
                    fail_malloc = 0;
                }
}
END_TEST

int main(void)
{
    Suite *su = suite_create("spans");
    TCase *tc = tcase_create("spans");
    tcase_add_loop_test(tc, test_against_pairwise, 0, test_quick_mode() ? 2 : 8);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

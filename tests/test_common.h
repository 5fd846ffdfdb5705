/*
 * Helpers shared by the Check test programs.
 *
 * Every test program's main() calls rmsfuse_test_run(suite): when the
 * environment forces an ISA (RMSFUSE_ISA=<name>, as ctest does for its
 * per-ISA runs), it first checks that the ISA is active (failing if the
 * library silently ignored it) or returns 77, ctest's "skipped", when this
 * CPU cannot run it.  With RMSFUSE_TEST_SKIP_DETECTED=1 (scripts/test.sh's
 * slow stages: emulators and sanitizers) a run forcing the very ISA that
 * detection picks skips too: the unforced run of the same program executes
 * the same kernels.
 */
#ifndef RMSFUSE_TEST_COMMON_H
#define RMSFUSE_TEST_COMMON_H

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rmsfuse.h"

#define RMSFUSE_TEST_SKIP 77

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ck_assert_msg for loops over elements.  Check records the place of every
 * assertion that holds (its pack, write and flush, in every mode), which
 * dominates a loop over thousands of elements under valgrind or qemu; this
 * calls Check only when the condition fails. */
#define REQUIRE_MSG(cond, ...)         \
    do {                               \
        if (!(cond))                   \
            ck_abort_msg(__VA_ARGS__); \
    } while (0)

/* Same bits, or both NaN (the contract: NaN-ness matches, payload may not). */
static inline int same_float(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return f2u(a) == f2u(b);
}

/* Distance in units in the last place between two finite floats of any sign. */
static inline uint64_t ulp_distance(float a, float b)
{
    int64_t ia = (int32_t)f2u(a), ib = (int32_t)f2u(b);
    if (ia < 0)
        ia = INT32_MIN - ia;
    if (ib < 0)
        ib = INT32_MIN - ib;
    return (uint64_t)(ia > ib ? ia - ib : ib - ia);
}

/* xorshift64*: deterministic, seedable test data. */
typedef struct test_rng {
    uint64_t s;
} test_rng;

static inline uint64_t rng_next(test_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ull;
}

/* Uniform in [lo, hi). */
static inline float rng_uniform(test_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_next(r) >> 40) * 0x1.0p-24);
}

/* Any bit pattern at all: NaNs, infinities, subnormals, zeros included. */
static inline float rng_any_float(test_rng *r)
{
    return u2f((uint32_t)(rng_next(r) >> 32));
}

/* Runs a suite, honouring a forced ISA (see the file comment). */
static inline int rmsfuse_test_run(Suite *s)
{
    const char *forced = getenv("RMSFUSE_ISA");
    if (forced && *forced && strcmp(forced, "auto") != 0) {
        if (!rmsfuse_isa_supported(forced)) {
            printf("ISA %s is not supported on this machine: skipped\n", forced);
            srunner_free(srunner_create(s)); /* frees the suite */
            return RMSFUSE_TEST_SKIP;
        }
        if (strcmp(rmsfuse_active_isa(), forced) != 0 || rmsfuse_isa_env_status() != RMSFUSE_OK) {
            printf("RMSFUSE_ISA=%s was not applied: active ISA is %s\n", forced, rmsfuse_active_isa());
            srunner_free(srunner_create(s)); /* frees the suite */
            return EXIT_FAILURE;
        }
        const char *skip = getenv("RMSFUSE_TEST_SKIP_DETECTED");
        if (skip && strcmp(skip, "1") == 0) {
            /* What detection picks: "auto" selects it, then the forced ISA is restored. */
            if (rmsfuse_set_isa("auto") != RMSFUSE_OK) {
                srunner_free(srunner_create(s));
                return EXIT_FAILURE;
            }
            const int same = strcmp(rmsfuse_active_isa(), forced) == 0;
            if (rmsfuse_set_isa(forced) != RMSFUSE_OK || strcmp(rmsfuse_active_isa(), forced) != 0) {
                printf("RMSFUSE_ISA=%s could not be restored after detection\n", forced);
                srunner_free(srunner_create(s));
                return EXIT_FAILURE;
            }
            if (same) {
                printf("ISA %s is what detection picks: the unforced run covers it (RMSFUSE_TEST_SKIP_DETECTED): skipped\n",
                       forced);
                srunner_free(srunner_create(s));
                return RMSFUSE_TEST_SKIP;
            }
        }
    }
    const char *expect = getenv("RMSFUSE_EXPECT_ISA");
    if (expect && *expect && (!forced || !*forced || strcmp(forced, "auto") == 0) &&
        strcmp(rmsfuse_active_isa(), expect) != 0) {
        printf("detection chose %s, expected %s\n", rmsfuse_active_isa(), expect);
        srunner_free(srunner_create(s));
        return EXIT_FAILURE;
    }
    printf("active ISA: %s\n", rmsfuse_active_isa());
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif /* RMSFUSE_TEST_COMMON_H */

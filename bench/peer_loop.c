/*
 * The peers: each flag set's step as a plain C loop over the elements, the
 * loop a user writes for one configuration, compiled by the compiler alone.
 * Built twice (bench/CMakeLists.txt), PEER_SFX naming the build:
 *   o2      -O2 for baseline x86-64 (what a distribution package gets)
 *   native  -O3 -march=native (the compiler's best loop)
 * both with -ffp-contract=off (no FMA: the library's bits) and
 * -fno-math-errno (else GCC cannot vectorise sqrtf at all).
 *
 * The loop body is not a second copy of the rule: it is the library's own
 * element math at width 1 (src/rules/<rule>.h over src/isa/ops_scalar.h:
 * plain float expressions in docs/math.md's op order, with sqrtf), the same
 * source the library's scalar path is made from.  What differs is who makes
 * the loop fast: the library compiles it over its hand-written vector
 * operations (src/isa/ops_<isa>.h) with vectorisation off, this file leaves
 * it to the compiler with vectorisation allowed.  The body addresses the
 * arrays as bytes; `#pragma GCC ivdep` (clang: `loop vectorize(assume_
 * safety)`) tells the vectorizer they do not overlap, which is what
 * `restrict` on a hand-written loop's pointers would tell it (and what the
 * library checks before it runs).
 *
 * The loop constants come from the configuration per call, with the rule
 * file's own rmsfuse_<rule>_consts (docs/math.md's constant table, derived
 * in double and rounded once), as the library's API derives them: each
 * call starts from the public config, as the library's does.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "flagsets.h"
#include "kernels.h"
#include "rmsfuse.h"

#define RMSFUSE_ALWAYS_INLINE inline __attribute__((always_inline))

/* The rules' constants and variant codes. */
#include "../src/rules/registry.h"

/* Their element math at width 1 (as src/isa/kernels.c instantiates it). */
#include "../src/isa/ops_scalar.h"
#define LD(s)           VLOAD(a[s] + i * sizeof(float))
#define ST(s, x)        VSTORE(a[s] + i * sizeof(float), (x))
#define FLUSH_IF(cond, x) ((cond) ? VFLUSH(x) : (x)) /* as src/isa/kernels.c */
#define RMSFUSE_BODY(r) peer_##r##_body
#include "../src/rules/registry.h"
#undef RMSFUSE_BODY
#include "../src/isa/ops_end.h"

/* "These arrays do not overlap": what restrict on a hand-written loop's
 * pointers tells the vectorizer. */
#if defined(__clang__)
#define PEER_NO_OVERLAP _Pragma("clang loop vectorize(assume_safety)")
#else
#define PEER_NO_OVERLAP _Pragma("GCC ivdep")
#endif

#define CAT_(a, b) a##_##b
#define CAT(a, b)  CAT_(a, b)
#define PEER(name) CAT(name, PEER_SFX)

_Static_assert(RMSPROP_SLOTS <= BENCH_SLOTS && ADAGRAD_SLOTS <= BENCH_SLOTS && SGD_SLOTS <= BENCH_SLOTS &&
                   ADAM_SLOTS <= BENCH_SLOTS,
               "BENCH_SLOTS holds every rule's arrays");

/* ---- one loop per flag set --------------------------------------------------- */
/* The constants and array addresses are local copies (no store through the
 * arrays can change them), the variant a constant: the body folds to the
 * flag set's operations, and the loop is the element loop alone. */
#define PEER_LOOP_(rule, name, config, variant)                                               \
    static void PEER(peer_##rule##_##name)(const void *cfg, float *const *arrays, size_t n)   \
    {                                                                                         \
        const rmsfuse_##rule##_k k = rmsfuse_##rule##_consts((const rmsfuse_##rule##_config *)cfg);     \
        char *a[BENCH_SLOTS];                                                                 \
        for (int s = 0; s < BENCH_SLOTS; s++)                                                 \
            a[s] = (char *)arrays[s];                                                         \
        PEER_NO_OVERLAP for (size_t i = 0; i < n; i++)                                        \
            peer_##rule##_body(&k, (variant), a, i);                                          \
    }
BENCH_FLAGSETS(PEER_LOOP_)

/* In the order of BENCH_FLAGSETS. */
#define PEER_ENTRY_(rule, name, config, variant) PEER(peer_##rule##_##name),
const peer_fn PEER(peer_fns)[] = {BENCH_FLAGSETS(PEER_ENTRY_)};

/* The arrays flag set i uses, as the library's rule file states them
 * (src/rules/<rule>.h, rmsfuse_<rule>_used): the benchmark checks its
 * traffic model against them. */
#define PEER_USED_(rule, name, config, variant) rmsfuse_##rule##_used(variant),
unsigned PEER(peer_used)(size_t i)
{
    const unsigned used[] = {BENCH_FLAGSETS(PEER_USED_)};
    return i < sizeof used / sizeof used[0] ? used[i] : 0u;
}

/*
 * Kernels the library is compared against, each in its own file so it can
 * be compiled with its own flags (bench/CMakeLists.txt):
 *
 *   peer_loop.c  the RMSProp step as a plain C loop, in the op order of the
 *                spec (PyTorch placement: eps outside the sqrt, lr outside
 *                the momentum buffer), built twice:
 *                  *_o2      -O2, baseline x86-64 (as a distribution builds)
 *                  *_native  -O3 -march=native
 *                both with -ffp-contract=off -fno-math-errno, so they return
 *                the library's bits.
 *   roofline.c   the same arrays with the same reads and in-place writes,
 *                arithmetic trivial (adds), -O3 -march=native: the memory
 *                limit for this traffic.
 *   floor.c      independent sqrt + div on registers at SSE/AVX2/AVX-512
 *                (or NEON) width: the divider's throughput limit per element.
 */
#ifndef RMSFUSE_BENCH_KERNELS_H
#define RMSFUSE_BENCH_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* The flag sets benchmarked. */
enum { FS_PLAIN, FS_MOMENTUM, FS_CENTERED, FS_CENTERED_MOMENTUM, FS_COUNT };

/* Loop constants, rounded from double once as the library does. */
typedef struct peer_consts {
    float a, c, e, m, nl;
} peer_consts;

/* p, g, v always; b when momentum; ga when centered (may be NULL otherwise). */
typedef void (*bench_kernel)(const peer_consts *k, float *p, const float *g, float *v, float *b, float *ga,
                             size_t n);

#define PEER_DECLARE(sfx)                                                                          \
    void peer_plain_##sfx(const peer_consts *, float *, const float *, float *, float *, float *, size_t);     \
    void peer_momentum_##sfx(const peer_consts *, float *, const float *, float *, float *, float *, size_t);  \
    void peer_centered_##sfx(const peer_consts *, float *, const float *, float *, float *, float *, size_t);  \
    void peer_centered_momentum_##sfx(const peer_consts *, float *, const float *, float *, float *, float *, \
                                      size_t);
PEER_DECLARE(o2)
PEER_DECLARE(native)

void roofline_plain(const peer_consts *, float *, const float *, float *, float *, float *, size_t);
void roofline_momentum(const peer_consts *, float *, const float *, float *, float *, float *, size_t);
void roofline_centered(const peer_consts *, float *, const float *, float *, float *, float *, size_t);
void roofline_centered_momentum(const peer_consts *, float *, const float *, float *, float *, float *, size_t);

/* floor.c: `reps` rounds of FLOOR_LANES independent vector sqrts and
 * FLOOR_LANES independent vector divs on registers (no chains, no memory),
 * alternating (grouped == 0) or all sqrts then all divs (grouped != 0);
 * returns a value to keep the work alive.  A round is one sqrt + one div
 * for FLOOR_LANES * width elements. */
#define FLOOR_LANES 8
float floor_sqrtdiv_sse2(int64_t reps, int grouped);
float floor_sqrtdiv_avx2(int64_t reps, int grouped);
float floor_sqrtdiv_avx512(int64_t reps, int grouped);
float floor_sqrtdiv_neon(int64_t reps, int grouped);
/* Scalar sqrt and div (sqrtss/divss, fsqrt/fdiv): one element per lane. */
float floor_sqrtdiv_scalar(int64_t reps, int grouped);

#endif /* RMSFUSE_BENCH_KERNELS_H */

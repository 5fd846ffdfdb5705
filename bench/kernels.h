/*
 * Kernels the library is compared against, each in its own file so it can
 * be compiled with its own flags (bench/CMakeLists.txt):
 *
 *   peer_loop.c  each flag set's step as a plain C loop (the library's
 *                width-1 element math, vectorised by the compiler, if at
 *                all), built twice:
 *                  *_o2      -O2, baseline x86-64 (as a distribution builds)
 *                  *_native  -O3 -march=native
 *                both with -ffp-contract=off -fno-math-errno, so they return
 *                the library's bits.
 *   roofline.c   the same traffic as a flag set, arithmetic trivial: the
 *                gradient read, every other array read and written in
 *                place; -O3 -march=native: the memory limit for this traffic.
 *                Also of mixed element widths: a typed step's traffic
 *                (storage types).
 *   floor.c      independent sqrt + div on registers at each ISA's width:
 *                the divider's throughput limit per element.
 */
#ifndef RMSFUSE_BENCH_KERNELS_H
#define RMSFUSE_BENCH_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- peers (peer_loop.c) ---------------------------------------------------- */
/* One step of a flag set: cfg is the rule's rmsfuse_<rule>_config, arrays[s]
 * the array of slot s (the order of the rule's step arguments; NULL where
 * the flag set uses none). */
typedef void (*peer_fn)(const void *cfg, float *const *arrays, size_t n);

/* Indexed in the order of BENCH_FLAGSETS (flagsets.h). */
extern const peer_fn peer_fns_o2[], peer_fns_native[];
/* Bit s: flag set i uses slot s, as the library's rule file states it. */
unsigned peer_used_o2(size_t i);
unsigned peer_used_native(size_t i);

/* ---- rooflines (roofline.c) ------------------------------------------------- */
/* x[i] = g[i] - x[i] for each of the k arrays x[0..k): one read-only stream
 * and k read-and-written ones, 4 + 8k bytes per element. */
typedef void (*roofline_fn)(const float *g, float *const *x, size_t n);
#define ROOFLINE_MAX_INPLACE 4
/* The kernel for k in-place arrays (1 .. ROOFLINE_MAX_INPLACE), else NULL. */
roofline_fn roofline_kernel(int k);

/* Mixed widths (the storage types): each stream n / per elements of `width`
 * bytes (1, 2 or 4) at p, per 1 or a divisor of 1024 (256: the 8-bit
 * state's block scales, one per block, the last block's too). */
enum { ROOF_READ, ROOF_RW, ROOF_WRITE };
typedef struct roofline_stream {
    void *p;
    int width;    /* bytes per element: 1, 2 or 4 */
    int mode;     /* ROOF_READ: read only; ROOF_RW: read and written in place; ROOF_WRITE: written only */
    unsigned per; /* elements of the step per element of this stream */
} roofline_stream;
#define ROOFLINE_MAX_STREAMS 12
/* Reads, and reads and writes (x += c), and writes every stream once over
 * n elements of the step, all streams in one loop (fused loops for the
 * benchmark's lists, roofline.c); returns a value of the reads. */
uint32_t roofline_mixed(const roofline_stream *s, int count, size_t n, uint32_t c);
/* The same, with float arithmetic on registers interleaved, `work` eighths
 * of a unit per 64 elements (roofline.c's rf_work): the roofline of a step
 * whose own arithmetic takes as long as that work. */
uint32_t roofline_mixed_work(const roofline_stream *s, int count, size_t n, uint32_t c, unsigned work);
/* The STREAM bytes per element of the step: width per read or write, per `per`. */
double roofline_stream_bytes(const roofline_stream *s, int count);
/* A split bf16 param's halves (hi, lo) joined into n float32 bits, and
 * parted again: the unfused storage benchmark's casts. */
void split_join(const uint16_t *hi, const uint16_t *lo, uint32_t *dst, size_t n);
void split_part(const uint32_t *src, uint16_t *hi, uint16_t *lo, size_t n);

/* ---- the sqrt + div floor (floor.c) --------------------------------------- */
/* `reps` rounds of FLOOR_LANES independent vector sqrts and FLOOR_LANES
 * independent vector divs on registers (no chains, no memory), alternating
 * (grouped == 0) or all sqrts then all divs (grouped == 1); returns a value
 * to keep the work alive.  A round is one sqrt + one div for
 * FLOOR_LANES * width elements.  grouped == 2 and 3: the same elements'
 * denominators from IEEE multiplies and adds only (Newton's steps; eps
 * inside and outside the sqrt), the bound of a divider-free fast mode. */
#define FLOOR_LANES 8
typedef float (*floor_fn)(int64_t reps, int grouped);

/* The floor kernel at the width of the library ISA called `isa` (a name of
 * rmsfuse_isa_names()) and its width in floats (for SVE, the CPU's), or
 * NULL when this file has none for it on this architecture.  Call it only
 * when rmsfuse_isa_supported(isa). */
floor_fn floor_kernel(const char *isa, int *width);

#endif /* RMSFUSE_BENCH_KERNELS_H */

/*
 * A thin C API over Google Benchmark (bench/shim.cc), so the benchmarks
 * themselves are plain C.
 *
 *   static void bm(rmsfuse_bench_state *st, void *arg) {
 *       ... set up, untimed ...
 *       while (rmsfuse_bench_keep_running(st))
 *           work(arg);
 *       rmsfuse_bench_set_bytes_processed(st, rmsfuse_bench_iterations(st) * bytes);
 *   }
 *   rmsfuse_bench_register("name", bm, arg);
 *   return rmsfuse_bench_main(argc, argv);
 */
#ifndef RMSFUSE_BENCH_SHIM_H
#define RMSFUSE_BENCH_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rmsfuse_bench_state rmsfuse_bench_state; /* a benchmark::State */
typedef void (*rmsfuse_bench_fn)(rmsfuse_bench_state *st, void *arg);

/* Registers fn(st, arg) under `name` (copied); rates are per wall-clock
 * second, and with repetitions a "max" aggregate (the best repetition's
 * rates) joins mean/median/stddev/cv.  `arg` must outlive the run. */
void rmsfuse_bench_register(const char *name, rmsfuse_bench_fn fn, void *arg);

/* The timed loop: while (rmsfuse_bench_keep_running(st)) { ... } */
int rmsfuse_bench_keep_running(rmsfuse_bench_state *st);
/* Iterations run so far (the total, once the loop has ended). */
int64_t rmsfuse_bench_iterations(const rmsfuse_bench_state *st);

/* Rates over the timed loop: bytes_per_second / items_per_second. */
void rmsfuse_bench_set_bytes_processed(rmsfuse_bench_state *st, int64_t bytes);
void rmsfuse_bench_set_items_processed(rmsfuse_bench_state *st, int64_t items);

/* A user counter; is_rate != 0 divides it by the measured time. */
void rmsfuse_bench_set_counter(rmsfuse_bench_state *st, const char *name, double value, int is_rate);
void rmsfuse_bench_set_label(rmsfuse_bench_state *st, const char *label);

/* Marks the benchmark skipped with a reason; call before the timed loop
 * and return without entering it. */
void rmsfuse_bench_skip(rmsfuse_bench_state *st, const char *reason);

/* A key/value pair for the "context" of the JSON output (call before main). */
void rmsfuse_bench_add_context(const char *key, const char *value);

/* Stops and restarts the timer inside the timed loop: what runs between is
 * not the benchmark's time. */
void rmsfuse_bench_pause(rmsfuse_bench_state *st);
void rmsfuse_bench_resume(rmsfuse_bench_state *st);

/* A compiler barrier: memory may have been read and written. */
void rmsfuse_bench_clobber_memory(void);

/* Progress lines on stderr (runs done of the total, time elapsed and
 * left), at most one every `seconds`; 0 turns them off.  Default 15. */
void rmsfuse_bench_set_progress(double seconds);

/* Parses the --benchmark_* flags, runs the selected benchmarks, returns the
 * exit status (1 on unrecognised arguments). */
int rmsfuse_bench_main(int argc, char **argv);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* RMSFUSE_BENCH_SHIM_H */

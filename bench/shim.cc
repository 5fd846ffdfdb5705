// The C API of shim.h over Google Benchmark (1.7 or later).
#include "shim.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <string>
#include <vector>

// rmsfuse_bench_state stays an incomplete type: a rmsfuse_bench_state* is a
// benchmark::State* in disguise.
static benchmark::State &S(rmsfuse_bench_state *st) { return *reinterpret_cast<benchmark::State *>(st); }
static const benchmark::State &S(const rmsfuse_bench_state *st)
{
    return *reinterpret_cast<const benchmark::State *>(st);
}

extern "C" {

void rmsfuse_bench_register(const char *name, rmsfuse_bench_fn fn, void *arg)
{
    benchmark::RegisterBenchmark(name, [fn, arg](benchmark::State &s) {
        fn(reinterpret_cast<rmsfuse_bench_state *>(&s), arg);
    })
        ->UseRealTime()  // rates from wall time: what a user waits for
        // "max" of every quantity over the repetitions; for the rates
        // (bytes/items per second) that is the best repetition, and "min"
        // the worst (the report's test for "slower beyond noise").
        ->ComputeStatistics("max", [](const std::vector<double> &v) { return *std::max_element(v.begin(), v.end()); })
        ->ComputeStatistics("min", [](const std::vector<double> &v) { return *std::min_element(v.begin(), v.end()); });
}

int rmsfuse_bench_keep_running(rmsfuse_bench_state *st) { return S(st).KeepRunning() ? 1 : 0; }

int64_t rmsfuse_bench_iterations(const rmsfuse_bench_state *st) { return S(st).iterations(); }

void rmsfuse_bench_set_bytes_processed(rmsfuse_bench_state *st, int64_t bytes) { S(st).SetBytesProcessed(bytes); }

void rmsfuse_bench_set_items_processed(rmsfuse_bench_state *st, int64_t items) { S(st).SetItemsProcessed(items); }

void rmsfuse_bench_set_counter(rmsfuse_bench_state *st, const char *name, double value, int is_rate)
{
    S(st).counters[name] = benchmark::Counter(value, is_rate ? benchmark::Counter::kIsRate
                                                             : benchmark::Counter::kDefaults);
}

void rmsfuse_bench_set_label(rmsfuse_bench_state *st, const char *label) { S(st).SetLabel(label); }

void rmsfuse_bench_skip(rmsfuse_bench_state *st, const char *reason) { S(st).SkipWithError(reason); }

void rmsfuse_bench_add_context(const char *key, const char *value) { benchmark::AddCustomContext(key, value); }

void rmsfuse_bench_clobber_memory(void) { benchmark::ClobberMemory(); }

int rmsfuse_bench_main(int argc, char **argv)
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

}  // extern "C"

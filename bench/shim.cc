// The C API of shim.h over Google Benchmark (1.7 or later).
#include "shim.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <string>
#include <vector>

// rmsfuse_bench_state stays an incomplete type: a rmsfuse_bench_state* is a
// benchmark::State* in disguise.
static benchmark::State &S(rmsfuse_bench_state *st) { return *reinterpret_cast<benchmark::State *>(st); }
static const benchmark::State &S(const rmsfuse_bench_state *st)
{
    return *reinterpret_cast<const benchmark::State *>(st);
}

// ---- progress ----------------------------------------------------------------
// With repetitions randomly interleaved, Google Benchmark prints a
// benchmark's line only once all its repetitions are done, which for most
// benchmarks is near the end of the run.  So the shim counts the runs
// itself: a call of a benchmark function is a finished repetition unless it
// is one of the short trials that size the iteration count of a
// benchmark's first repetition (those are shorter than --benchmark_min_time;
// once one call of a benchmark has been long enough, every later call is a
// repetition).  Skipped benchmarks count one run per call.
using Clock = std::chrono::steady_clock;

namespace {
struct Progress {
    double every = 15.0;  // seconds between lines; 0: off
    double min_time = 0.5;
    long long total = 0;  // runs expected: selected benchmarks x repetitions (0: unknown)
    long long done = 0;
    Clock::time_point start, last;
    // the current call's timed loop
    bool loop_started = false;
    Clock::time_point t0, t1;
};
Progress progress;
std::vector<std::string> names;
std::vector<char> sized;  // per benchmark: a call was long enough already

std::string fmt_duration(double s)
{
    char buf[32];
    long t = static_cast<long>(s + 0.5);
    if (t >= 3600)
        std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

void report_progress(bool force)
{
    if (progress.every <= 0)
        return;
    const auto now = Clock::now();
    if (!force && std::chrono::duration<double>(now - progress.last).count() < progress.every)
        return;
    progress.last = now;
    const double el = std::chrono::duration<double>(now - progress.start).count();
    if (progress.total > 0) {
        const long long done = std::min(progress.done, progress.total);
        const double left = done > 0 ? el * static_cast<double>(progress.total - done) / static_cast<double>(done) : 0;
        std::fprintf(stderr, "rmsfuse_bench: %lld/%lld runs (%.0f%%), %s elapsed%s%s\n", done, progress.total,
                     100.0 * static_cast<double>(done) / static_cast<double>(progress.total), fmt_duration(el).c_str(),
                     done > 0 && done < progress.total ? ", about " : "",
                     done > 0 && done < progress.total ? (fmt_duration(left) + " left").c_str() : "");
    } else {
        std::fprintf(stderr, "rmsfuse_bench: %lld runs, %s elapsed\n", progress.done, fmt_duration(el).c_str());
    }
    std::fflush(stderr);
}

// The value of --name=value in argv (before Google Benchmark consumes it).
const char *flag_value(int argc, char **argv, const char *name)
{
    const size_t len = std::strlen(name);
    const char *v = nullptr;
    for (int i = 1; i < argc; i++)
        if (!std::strncmp(argv[i], name, len) && argv[i][len] == '=')
            v = argv[i] + len + 1;
    return v;
}

// How many registered benchmarks the filter selects, as Google Benchmark
// matches it (extended regex searched in the name, which ends in
// "/real_time"; a leading '-' negates it); -1 if the filter does not parse.
long long count_selected(std::string spec)
{
    if (spec.empty() || spec == "all")
        spec = ".";
    bool negative = false;
    if (spec[0] == '-') {
        negative = true;
        spec.erase(0, 1);
    }
    try {
        const std::regex re(spec, std::regex::extended);
        long long k = 0;
        for (const auto &n : names)
            k += std::regex_search(n + "/real_time", re) != negative;
        return k;
    } catch (const std::regex_error &) {
        return -1;
    }
}
}  // namespace

extern "C" {

void rmsfuse_bench_register(const char *name, rmsfuse_bench_fn fn, void *arg)
{
    const size_t index = names.size();
    names.emplace_back(name);
    sized.push_back(0);
    benchmark::RegisterBenchmark(name, [fn, arg, index](benchmark::State &s) {
        progress.loop_started = false;
        fn(reinterpret_cast<rmsfuse_bench_state *>(&s), arg);
        bool rep;
        if (s.error_occurred() || !progress.loop_started)
            rep = true;
        else if (sized[index])
            rep = true;
        else
            rep = sized[index] = std::chrono::duration<double>(progress.t1 - progress.t0).count() >= progress.min_time;
        if (rep) {
            progress.done++;
            report_progress(false);
        }
    })
        ->UseRealTime()  // rates from wall time: what a user waits for
        // "max" of every quantity over the repetitions; for the rates
        // (bytes/items per second) that is the best repetition, and "min"
        // the worst (the report's test for "slower beyond noise").
        ->ComputeStatistics("max", [](const std::vector<double> &v) { return *std::max_element(v.begin(), v.end()); })
        ->ComputeStatistics("min", [](const std::vector<double> &v) { return *std::min_element(v.begin(), v.end()); });
}

int rmsfuse_bench_keep_running(rmsfuse_bench_state *st)
{
    if (!progress.loop_started) {
        progress.loop_started = true;
        progress.t0 = Clock::now();
    }
    if (S(st).KeepRunning())
        return 1;
    progress.t1 = Clock::now();
    return 0;
}

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

void rmsfuse_bench_pause(rmsfuse_bench_state *st) { S(st).PauseTiming(); }

void rmsfuse_bench_resume(rmsfuse_bench_state *st) { S(st).ResumeTiming(); }

void rmsfuse_bench_clobber_memory(void) { benchmark::ClobberMemory(); }

void rmsfuse_bench_set_progress(double seconds) { progress.every = seconds; }

int rmsfuse_bench_main(int argc, char **argv)
{
    // What the run will do, read before Initialize removes the flags.
    const char *reps = flag_value(argc, argv, "--benchmark_repetitions");
    const char *min_time = flag_value(argc, argv, "--benchmark_min_time");
    const char *list = flag_value(argc, argv, "--benchmark_list_tests");
    const long long repetitions = reps ? std::max(1LL, std::atoll(reps)) : 1;
    if (list && (!std::strcmp(list, "true") || !std::strcmp(list, "1")))
        progress.every = 0;  // nothing runs
    if (min_time)
        progress.min_time = std::strtod(min_time, nullptr);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    const long long selected = count_selected(benchmark::GetBenchmarkFilter());
    progress.total = selected >= 0 ? selected * repetitions : 0;
    progress.start = progress.last = Clock::now();
    if (progress.every > 0 && progress.total > 0)
        std::fprintf(stderr, "rmsfuse_bench: %lld benchmarks x %lld repetitions = %lld runs; progress every %.0f s\n",
                     selected, repetitions, progress.total, progress.every);
    benchmark::RunSpecifiedBenchmarks();
    report_progress(true);
    benchmark::Shutdown();
    return 0;
}

}  // extern "C"

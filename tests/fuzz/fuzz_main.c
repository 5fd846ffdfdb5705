/*
 * A main() for the fuzz target without libFuzzer (ctest `fuzz_replay`):
 * runs LLVMFuzzerTestOneInput on every file named (directories: every
 * regular file in them), then on deterministic pseudo-random inputs:
 * mutations of those files (bytes replaced, inserted, removed; pieces of
 * two files spliced) and plain random bytes.
 *
 *   fuzz_replay [--random N] [--seed S] FILE_OR_DIR...
 *
 * N defaults to 20000 (2000 with RMSFUSE_TEST_QUICK=1, for valgrind and
 * qemu).  The target aborts on a failed check: the input being run is then
 * written to fuzz_replay-crash.bin in the current directory, to reproduce
 * with `fuzz_replay fuzz_replay-crash.bin` (or the libFuzzer binary).
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* fuzz_rules.c's counters (its FS_* indices). */
extern unsigned long long rmsfuse_fuzz_stats[];
enum {
    FS_PLANS = 16, FS_PLAN_RUNS, FS_ISA_FLOATS, FS_SPEC_FLOATS, FS_CUTS, FS_CUT_UNALIGNED, FS_LONG, FS_FLUSHED,
    FS_EX_OK, FS_EX_SKIPPED, FS_EX_REJECTED, FS_EX_CLIPPED, FS_EX_SUMSQ, FS_EX_PLAN_RUNS, FS_TYPED,
    FS_TYPED_REJECTED, FS_TYPED_PLANS, FS_TYPED_FLOATS, FS_TYPED_BLOCKED
};

enum { MAX_FILES = 1 << 16, MAX_LEN = 4096 }; /* files: enough to replay a grown libFuzzer corpus */

typedef struct input {
    uint8_t *d;
    size_t n;
    char *name;
} input;

static input files[MAX_FILES];
static int n_files;

static void load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_replay: cannot open %s\n", path);
        exit(2);
    }
    uint8_t *d = malloc(MAX_LEN);
    size_t n = d ? fread(d, 1, MAX_LEN, f) : 0;
    fclose(f);
    if (!d || n_files == MAX_FILES) {
        fprintf(stderr, "fuzz_replay: too many inputs\n");
        exit(2);
    }
    files[n_files].d = d;
    files[n_files].n = n;
    files[n_files].name = strdup(path);
    n_files++;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const input *)a)->name, ((const input *)b)->name);
}

static void add_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz_replay: no such file or directory: %s\n", path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        load(path);
        return;
    }
    DIR *dir = opendir(path);
    if (!dir) {
        fprintf(stderr, "fuzz_replay: cannot read %s\n", path);
        exit(2);
    }
    const int first = n_files;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
            load(full);
    }
    closedir(dir);
    qsort(files + first, (size_t)(n_files - first), sizeof files[0], by_name); /* a fixed order */
}

static uint64_t rng_state;

static uint64_t next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Input i of the random phase, into buf; returns its length. */
static size_t make_input(uint8_t *buf)
{
    size_t n;
    if (n_files > 0 && next() % 8 != 0) {
        const input *a = &files[next() % (uint64_t)n_files];
        n = a->n;
        memcpy(buf, a->d, n);
        const int edits = 1 + (int)(next() % 8);
        for (int e = 0; e < edits; e++) {
            const unsigned kind = (unsigned)(next() % 6);
            const size_t at = n ? (size_t)(next() % n) : 0;
            if (kind <= 2 && n) { /* replace a byte: random, a flipped bit, an interesting one */
                static const uint8_t interesting[] = {0, 1, 2, 3, 4, 5, 6, 7, 0x7f, 0x80, 0xc0, 0xf0, 0xff};
                buf[at] = kind == 0 ? (uint8_t)next()
                          : kind == 1 ? (uint8_t)(buf[at] ^ (1u << (next() % 8)))
                                      : interesting[next() % sizeof interesting];
            } else if (kind == 3 && n < MAX_LEN) { /* insert */
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = (uint8_t)next();
                n++;
            } else if (kind == 4 && n) { /* remove */
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
            } else if (kind == 5) { /* splice: the tail of another input */
                const input *b = &files[next() % (uint64_t)n_files];
                const size_t from = b->n ? (size_t)(next() % b->n) : 0;
                const size_t len = b->n - from < MAX_LEN - at ? b->n - from : MAX_LEN - at;
                memcpy(buf + at, b->d + from, len);
                n = at + len;
            }
        }
    } else {
        n = (size_t)(next() % 300);
        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)next();
    }
    return n;
}

/* The input being run, saved by the SIGABRT handler. */
static const uint8_t *current;
static size_t current_len;

static void say(const char *m)
{
    (void)!write(2, m, strlen(m));
}

static void on_abort(int sig)
{
    const int fd = open("fuzz_replay-crash.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        say(write(fd, current, current_len) == (ssize_t)current_len
                ? "fuzz_replay: the input is saved in fuzz_replay-crash.bin\n"
                : "fuzz_replay: could not save the input\n");
        close(fd);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void run(const uint8_t *d, size_t n)
{
    current = d;
    current_len = n;
    LLVMFuzzerTestOneInput(d, n);
}

int main(int argc, char **argv)
{
    signal(SIGABRT, on_abort);
    const char *q = getenv("RMSFUSE_TEST_QUICK");
    long random = (q && *q && strcmp(q, "0") != 0) ? 2000 : 20000;
    uint64_t seed = 0x5eedf022ull;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--random") == 0 && i + 1 < argc)
            random = strtol(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
        else
            add_path(argv[i]);
    }
    for (int i = 0; i < n_files; i++) {
        run(files[i].d, files[i].n);
    }
    rng_state = seed ? seed : 1;
    static uint8_t buf[MAX_LEN];
    for (long i = 0; i < random; i++) {
        const size_t n = make_input(buf);
        run(buf, n);
    }
    printf("fuzz_replay: %d files and %ld generated inputs passed (seed %#llx)\n", n_files, random,
           (unsigned long long)seed);
    const unsigned long long *st = rmsfuse_fuzz_stats;
    static const char *const rules[4] = {"rmsprop", "adagrad", "sgd", "adam"};
    for (int r = 0; r < 4; r++) {
        const unsigned long long *c = st + 4 * r;
        printf("fuzz_replay: %-7s steps accepted %llu (lists %llu), rejected %llu (lists %llu)\n", rules[r],
               c[0] + c[2], c[2], c[1] + c[3], c[3]);
    }
    printf("fuzz_replay: %llu long lists; %llu plans run over cuts, %llu rmsfuse_plan_run calls, %llu cuts checked "
           "(%llu inside a param that is not float-aligned)\n",
           st[FS_LONG], st[FS_PLANS], st[FS_PLAN_RUNS], st[FS_CUTS], st[FS_CUT_UNALIGNED]);
    printf("fuzz_replay: %llu floats compared with the scalar path, %llu scalar floats with docs/math.md's op "
           "order (%llu state values flushed by RMSFUSE_FLUSH_SUBNORMAL)\n",
           st[FS_ISA_FLOATS], st[FS_SPEC_FLOATS], st[FS_FLUSHED]);
    printf("fuzz_replay: step_ex calls: %llu stepped (%llu inputs scaled or clipped), %llu skipped, %llu rejected; "
           "%llu rmsfuse_plan_run_ex calls, %llu sums of squares checked\n",
           st[FS_EX_OK], st[FS_EX_CLIPPED], st[FS_EX_SKIPPED], st[FS_EX_REJECTED], st[FS_EX_PLAN_RUNS],
           st[FS_EX_SUMSQ]);
    printf("fuzz_replay: typed steps: %llu stepped, %llu refused; %llu typed plans run over cuts (%llu ranges "
           "inside an 8-bit block refused), %llu typed elements compared with the oracle\n",
           st[FS_TYPED], st[FS_TYPED_REJECTED], st[FS_TYPED_PLANS], st[FS_TYPED_BLOCKED], st[FS_TYPED_FLOATS]);
    for (int i = 0; i < n_files; i++) {
        free(files[i].d);
        free(files[i].name);
    }
    return 0;
}

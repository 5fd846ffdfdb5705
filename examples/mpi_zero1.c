/*
 * mpi_zero1.c: RMSProp with the optimizer state sharded across MPI ranks
 * (ZeRO stage 1), checked bit for bit against the single-process result.
 *
 * ZeRO-1.  In plain data parallelism every rank holds the whole model,
 * computes the gradient of its own batch, sums the gradients of all ranks
 * (an all-reduce) and runs the same optimizer step over every parameter: the
 * optimizer state (square_avg, plus momentum_buf and grad_avg when used, up to
 * 3 floats per parameter) is stored p times.  ZeRO stage 1 stores it once:
 * the flat parameter space is cut into p shards, and rank r keeps the state
 * of shard r only.  One step is then
 *
 *   1. every rank computes the full gradient of its batch     (local)
 *   2. reduce-scatter: rank r gets the average over all ranks
 *      of the gradient of its own shard                       (MPI_Alltoallv, then a loop)
 *   3. rank r updates the parameters of its shard             (rmsfuse_rmsprop_step_multi)
 *   4. all-gather: every rank gets every updated shard        (MPI_Allgatherv)
 *
 * An all-reduce is a reduce-scatter followed by an all-gather, so steps 2
 * and 4 move the same data as plain data parallelism, while the state per
 * rank shrinks from 3N to 3N/p floats and the update work from N to N/p.
 *
 * How it maps to rmsfuse.  The parameters live in one flat buffer, tensor
 * after tensor.  Shard boundaries fall where they fall, often inside a
 * tensor, so a rank's shard is a list of pieces of tensors.  Each piece is
 * one rmsfuse_tensor pointing into the flat parameter buffer, the rank's
 * averaged gradient shard and its state shard, and one
 * rmsfuse_rmsprop_step_multi per parameter group (weights with weight decay;
 * biases and norms without) updates them all.  rmsfuse computes every element
 * the same way wherever an array starts or ends, so a piece gets exactly the
 * bits that a step over the whole tensor gives it.  Shard boundaries are
 * multiples of 16 floats of the 64-byte aligned flat buffer: no two ranks own
 * parts of the same cache line.
 *
 * Bit for bit.  What could differ is the gradient sum: floating-point
 * addition is commutative but not associative, (g0 + g1) + g2 is not always
 * g0 + (g1 + g2), and MPI_Reduce_scatter / MPI_Allreduce may associate the
 * ranks in any order (trees, rings, pipelined segments, depending on the
 * MPI, the message size and the number of ranks).  So each rank receives the
 * raw slices of its shard from every rank (MPI_Alltoallv, the same volume as
 * a ring reduce-scatter) and adds them itself, in rank order 0, 1, ..., p-1:
 * the additions of a serial loop over the ranks, for any p and any MPI.
 *
 * The check.  Every rank also runs the single-process reference: whole
 * arrays per tensor, the gradients of all p ranks summed in rank order, one
 * rmsfuse_rmsprop_step per tensor.  After the steps each rank compares all
 * of its parameters and its state shard with the reference, bit for bit,
 * for all 16 flag combinations without and with momentum.  Any difference
 * makes the program exit 1.
 *
 * Build (CMake builds it when it finds MPI; see docs/distributed.md):
 *   mpicc -std=c11 -O2 -ffp-contract=off mpi_zero1.c $(pkg-config --cflags --libs rmsfuse) -o mpi_zero1
 *   mpirun -np 2 ./mpi_zero1
 * Options:
 *   --steps N      optimizer steps per configuration (default 5)
 *   --chunk K      exchange gradients in rounds of K floats per shard
 *                  (default 1048576: 4 MiB from each rank per round)
 *   --threads T    update each rank's shard with an rmsfuse_pool of T workers
 *                  (builds with -DMPI_ZERO1_POOL and rmsfuse_pool only)
 *   --mixed-isa    rank r forces the r-th instruction set this CPU runs
 *                  (cycling): ranks on different ISAs still agree bit for bit
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>
#include <rmsfuse.h>
#ifdef MPI_ZERO1_POOL
#include <rmsfuse_pool.h>
#endif

/* ---- the model: a list of tensors, laid end to end in one flat buffer -- */

typedef struct tensor_def {
    const char *name;
    size_t n;
    int group; /* 0: weights (with weight decay), 1: biases and norms (without) */
} tensor_def;

static const tensor_def model[] = {
    {"embed.weight", 3000, 0}, {"fc1.weight", 64 * 96, 0}, {"fc1.bias", 96, 1}, {"norm.weight", 96, 1},
    {"norm.bias", 96, 1},      {"fc2.weight", 96 * 33, 0}, {"fc2.bias", 33, 1}, {"head.weight", 33 * 10, 0},
    {"head.bias", 10, 1},      {"temperature", 1, 1},
};
enum { NT = sizeof model / sizeof model[0], GROUPS = 2 };

/* ---- synthetic data, the same on every machine -------------------------- */

static uint64_t mix(uint64_t x) /* splitmix64's finaliser */
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* A float in [-1, 1) from its coordinates: a 24-bit integer times 2^-23 (exact). */
static float noise(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    const uint64_t h = mix(a ^ mix(b ^ mix(c ^ mix(d))));
    return (float)((int64_t)(h >> 40) - (1 << 23)) * 0x1p-23f;
}

/* Initial parameters: the same on every rank (as after a broadcast from rank 0). */
static float param_init(int t, size_t j)
{
    return 0.5f * noise(1, 0, (uint64_t)t, j);
}

/* The gradient of rank r's batch at step s: a quadratic loss that pulls each
 * parameter towards a target of that rank's data, plus noise.  It depends on
 * the parameter, as a real gradient does: a rank holding a stale or wrong
 * parameter would compute a different gradient. */
static float grad_of(int r, int s, int t, size_t j, float param)
{
    const float target = noise(2, (uint64_t)r, (uint64_t)t, j);
    const float jitter = noise(3 + (uint64_t)s, (uint64_t)r, (uint64_t)t, j);
    return (param - target) + 0.25f * jitter;
}

static void die(const char *what, int status)
{
    fprintf(stderr, "mpi_zero1: %s: %s\n", what, rmsfuse_strerror(status));
    MPI_Abort(MPI_COMM_WORLD, 2);
}

static void *alloc_floats(size_t n) /* 64-byte aligned, zeroed */
{
    const size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) {
        fprintf(stderr, "mpi_zero1: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    memset(p, 0, bytes);
    return p;
}

/* ---- ZeRO-1: one rank's view ------------------------------------------- */

typedef struct zero1 {
    int rank, ranks;
    size_t total;        /* parameters in the model */
    size_t off[NT];      /* where each tensor starts in the flat buffers */
    int *counts;         /* shard of rank q: [displs[q], displs[q] + counts[q]) */
    int *displs;
    size_t lo, hi;       /* this rank's shard */
    size_t chunk;        /* the gradient exchange moves at most this many floats */
    size_t rounds;       /* of each shard per round, in this many rounds */
    int *send_counts, *send_displs, *recv_counts, *recv_displs; /* one round's */
    float *param;        /* total: all parameters, on every rank */
    float *grad;         /* total: the gradient of this rank's batch */
    float *recv;         /* ranks * chunk: one round's slices of this shard, from every rank */
    float *grad_shard;   /* shard: the averaged gradient of this shard */
    float *square_avg;   /* shard: the optimizer state, of this shard only */
    float *momentum_buf; /* shard */
    float *grad_avg;     /* shard */
    rmsfuse_tensor pieces[GROUPS][NT]; /* the pieces of tensors in this shard, by group */
    size_t npieces[GROUPS];
} zero1;

/* Rank q's shard of `total` floats: whole 64-byte lines (16 floats), spread
 * as evenly as whole lines allow; the last shard ends at `total`. */
static void shard_bounds(size_t total, int ranks, int q, size_t *lo, size_t *hi)
{
    const size_t lines = (total + 15) / 16;
    *lo = lines * (size_t)q / (size_t)ranks * 16;
    *hi = lines * (size_t)(q + 1) / (size_t)ranks * 16;
    if (*lo > total)
        *lo = total;
    if (*hi > total)
        *hi = total;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* The part [a, b) of tensor t that lies in [lo, hi); 0 if none. */
static int intersect(const zero1 *z, int t, size_t lo, size_t hi, size_t *a, size_t *b)
{
    *a = z->off[t] > lo ? z->off[t] : lo;
    *b = z->off[t] + model[t].n < hi ? z->off[t] + model[t].n : hi;
    return *a < *b;
}

static void zero1_init(zero1 *z, int rank, int ranks, size_t chunk)
{
    memset(z, 0, sizeof *z);
    z->rank = rank;
    z->ranks = ranks;
    for (int t = 0; t < NT; t++) {
        z->off[t] = z->total;
        z->total += model[t].n;
    }
    z->counts = malloc((size_t)ranks * sizeof(int));
    z->displs = malloc((size_t)ranks * sizeof(int));
    z->send_counts = malloc((size_t)ranks * sizeof(int));
    z->send_displs = malloc((size_t)ranks * sizeof(int));
    z->recv_counts = malloc((size_t)ranks * sizeof(int));
    z->recv_displs = malloc((size_t)ranks * sizeof(int));
    if (!z->counts || !z->displs || !z->send_counts || !z->send_displs || !z->recv_counts || !z->recv_displs)
        die("shard table", RMSFUSE_E_NO_MEMORY);
    size_t largest = 0;
    for (int q = 0; q < ranks; q++) { /* MPI counts are int: fine below 2^31 floats */
        size_t lo, hi;
        shard_bounds(z->total, ranks, q, &lo, &hi);
        z->displs[q] = (int)lo;
        z->counts[q] = (int)(hi - lo);
        largest = hi - lo > largest ? hi - lo : largest;
    }
    shard_bounds(z->total, ranks, rank, &z->lo, &z->hi);
    const size_t m = z->hi - z->lo;
    z->chunk = chunk;
    z->rounds = (largest + chunk - 1) / chunk; /* the same on every rank */
    z->param = alloc_floats(z->total);
    z->grad = alloc_floats(z->total);
    z->recv = alloc_floats((size_t)ranks * min_size(chunk, m));
    z->grad_shard = alloc_floats(m);
    z->square_avg = alloc_floats(m);
    z->momentum_buf = alloc_floats(m);
    z->grad_avg = alloc_floats(m);

    /* The pieces: each points at the same place of the parameter buffer and
     * of the shard buffers (which start at this shard's first element). */
    for (int t = 0; t < NT; t++) {
        size_t a, b;
        if (!intersect(z, t, z->lo, z->hi, &a, &b))
            continue;
        const size_t s = a - z->lo;
        const int g = model[t].group;
        z->pieces[g][z->npieces[g]++] = (rmsfuse_tensor){
            z->param + a, z->grad_shard + s, z->square_avg + s, z->momentum_buf + s, z->grad_avg + s, b - a};
    }
}

static void zero1_free(zero1 *z)
{
    free(z->counts);
    free(z->displs);
    free(z->send_counts);
    free(z->send_displs);
    free(z->recv_counts);
    free(z->recv_displs);
    free(z->param);
    free(z->grad);
    free(z->recv);
    free(z->grad_shard);
    free(z->square_avg);
    free(z->momentum_buf);
    free(z->grad_avg);
}

/* Fresh parameters and zero state, for a new run. */
static void zero1_reset(zero1 *z)
{
    for (int t = 0; t < NT; t++)
        for (size_t j = 0; j < model[t].n; j++)
            z->param[z->off[t] + j] = param_init(t, j);
    const size_t m = z->hi - z->lo;
    memset(z->square_avg, 0, m * sizeof(float));
    memset(z->momentum_buf, 0, m * sizeof(float));
    memset(z->grad_avg, 0, m * sizeof(float));
}

/* One optimizer step, `pool` optional (NULL: the calling thread). */
static void zero1_step(zero1 *z, const rmsfuse_rmsprop_config cfg[GROUPS], int step, void *pool)
{
    /* 1. The gradient of this rank's batch, for every parameter. */
    for (int t = 0; t < NT; t++)
        for (size_t j = 0; j < model[t].n; j++)
            z->grad[z->off[t] + j] = grad_of(z->rank, step, t, j, z->param[z->off[t] + j]);

    /* 2. Reduce-scatter, in a fixed order.  In round k, this rank sends
     *    every rank r the k-th chunk of shard r of its gradient, and receives
     *    the k-th chunk of its own shard from every rank q, at recv + q * len.
     *    The sum runs over q = 0, 1, ..., p-1.  (Rounds bound the receive
     *    buffer to ranks * chunk floats instead of a whole gradient.) */
    const float ranks = (float)z->ranks;
    for (size_t k = 0; k < z->rounds; k++) {
        for (int q = 0; q < z->ranks; q++) {
            const size_t end = (size_t)z->displs[q] + (size_t)z->counts[q];
            const size_t a = min_size((size_t)z->displs[q] + k * z->chunk, end);
            z->send_displs[q] = (int)a;
            z->send_counts[q] = (int)(min_size(a + z->chunk, end) - a);
        }
        const size_t a = min_size(z->lo + k * z->chunk, z->hi), len = min_size(a + z->chunk, z->hi) - a;
        for (int q = 0; q < z->ranks; q++) {
            z->recv_counts[q] = (int)len;
            z->recv_displs[q] = (int)((size_t)q * len);
        }
        MPI_Alltoallv(z->grad, z->send_counts, z->send_displs, MPI_FLOAT, z->recv, z->recv_counts,
                      z->recv_displs, MPI_FLOAT, MPI_COMM_WORLD);
        float *sum = z->grad_shard + (a - z->lo);
        memcpy(sum, z->recv, len * sizeof(float));
        for (int q = 1; q < z->ranks; q++) {
            const float *slice = z->recv + (size_t)q * len;
            for (size_t i = 0; i < len; i++)
                sum[i] += slice[i];
        }
        for (size_t i = 0; i < len; i++)
            sum[i] /= ranks;
    }

    /* 3. The fused update of this rank's shard, one call per parameter group. */
    for (int g = 0; g < GROUPS; g++) {
#ifdef MPI_ZERO1_POOL
        const int st = pool ? rmsfuse_pool_rmsprop_step_multi(pool, &cfg[g], z->pieces[g], z->npieces[g])
                            : rmsfuse_rmsprop_step_multi(&cfg[g], z->pieces[g], z->npieces[g]);
#else
        (void)pool;
        const int st = rmsfuse_rmsprop_step_multi(&cfg[g], z->pieces[g], z->npieces[g]);
#endif
        if (st != RMSFUSE_OK)
            die("rmsfuse_rmsprop_step_multi", st);
    }

    /* 4. All-gather: every rank's updated shard, into every rank's parameters. */
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, z->param, z->counts, z->displs, MPI_FLOAT, MPI_COMM_WORLD);
}

/* ---- the reference: one process, whole tensors, no sharding ------------- */

typedef struct reference {
    float *param[NT], *square_avg[NT], *momentum_buf[NT], *grad_avg[NT];
    float *grad; /* scratch, as long as the longest tensor */
} reference;

static void reference_init(reference *R)
{
    size_t longest = 0;
    for (int t = 0; t < NT; t++) {
        R->param[t] = alloc_floats(model[t].n);
        R->square_avg[t] = alloc_floats(model[t].n);
        R->momentum_buf[t] = alloc_floats(model[t].n);
        R->grad_avg[t] = alloc_floats(model[t].n);
        longest = model[t].n > longest ? model[t].n : longest;
    }
    R->grad = alloc_floats(longest);
}

static void reference_free(reference *R)
{
    for (int t = 0; t < NT; t++) {
        free(R->param[t]);
        free(R->square_avg[t]);
        free(R->momentum_buf[t]);
        free(R->grad_avg[t]);
    }
    free(R->grad);
}

static void reference_reset(reference *R)
{
    for (int t = 0; t < NT; t++) {
        for (size_t j = 0; j < model[t].n; j++)
            R->param[t][j] = param_init(t, j);
        memset(R->square_avg[t], 0, model[t].n * sizeof(float));
        memset(R->momentum_buf[t], 0, model[t].n * sizeof(float));
        memset(R->grad_avg[t], 0, model[t].n * sizeof(float));
    }
}

/* One step as a single process would run it on the batches of all ranks. */
static void reference_step(reference *R, int ranks, const rmsfuse_rmsprop_config cfg[GROUPS], int step)
{
    for (int t = 0; t < NT; t++) {
        const size_t n = model[t].n;
        float *g = R->grad, *p = R->param[t];
        for (size_t j = 0; j < n; j++)
            g[j] = grad_of(0, step, t, j, p[j]);
        for (int r = 1; r < ranks; r++)
            for (size_t j = 0; j < n; j++)
                g[j] += grad_of(r, step, t, j, p[j]);
        for (size_t j = 0; j < n; j++)
            g[j] /= (float)ranks;
        const int st = rmsfuse_rmsprop_step(&cfg[model[t].group], p, g, R->square_avg[t], R->momentum_buf[t],
                                             R->grad_avg[t], n);
        if (st != RMSFUSE_OK)
            die("rmsfuse_rmsprop_step", st);
    }
}

/* ---- the comparison ----------------------------------------------------- */

typedef struct mismatch {
    long long count;
    const char *what; /* the first one */
    int tensor;
    size_t index;
} mismatch;

static void compare(mismatch *mm, const char *what, int t, size_t j, const float *got, const float *want)
{
    if (memcmp(got, want, sizeof(float)) == 0) /* bits, so -0 != +0 and NaN == same NaN */
        return;
    if (mm->count++ == 0) {
        mm->what = what;
        mm->tensor = t;
        mm->index = j;
    }
}

/* Every parameter on this rank, and the state of its shard, against the reference. */
static void zero1_compare(const zero1 *z, const reference *R, const rmsfuse_rmsprop_config *cfg, mismatch *mm)
{
    for (int t = 0; t < NT; t++)
        for (size_t j = 0; j < model[t].n; j++)
            compare(mm, "param", t, j, &z->param[z->off[t] + j], &R->param[t][j]);
    for (int t = 0; t < NT; t++) {
        size_t a, b;
        if (!intersect(z, t, z->lo, z->hi, &a, &b))
            continue;
        for (size_t i = a; i < b; i++) {
            const size_t j = i - z->off[t], s = i - z->lo;
            compare(mm, "square_avg", t, j, &z->square_avg[s], &R->square_avg[t][j]);
            if (cfg->momentum != 0)
                compare(mm, "momentum_buf", t, j, &z->momentum_buf[s], &R->momentum_buf[t][j]);
            if (cfg->flags & RMSFUSE_CENTERED)
                compare(mm, "grad_avg", t, j, &z->grad_avg[s], &R->grad_avg[t][j]);
        }
    }
}

/* Parameters the steps changed: a check that compares nothing that moved would prove nothing. */
static size_t moved(const reference *R)
{
    size_t k = 0;
    for (int t = 0; t < NT; t++)
        for (size_t j = 0; j < model[t].n; j++) {
            const float p0 = param_init(t, j);
            k += memcmp(&R->param[t][j], &p0, sizeof(float)) != 0;
        }
    return k;
}

/* Averaged gradient elements of step 0 that change when the ranks are summed
 * in the opposite order: why the order has to be fixed. */
static size_t order_sensitivity(int ranks)
{
    size_t k = 0;
    for (int t = 0; t < NT; t++)
        for (size_t j = 0; j < model[t].n; j++) {
            const float p = param_init(t, j);
            float up = grad_of(0, 0, t, j, p), down = grad_of(ranks - 1, 0, t, j, p);
            for (int r = 1; r < ranks; r++) {
                up += grad_of(r, 0, t, j, p);
                down += grad_of(ranks - 1 - r, 0, t, j, p);
            }
            up /= (float)ranks;
            down /= (float)ranks;
            k += memcmp(&up, &down, sizeof(float)) != 0;
        }
    return k;
}

static void describe(const rmsfuse_rmsprop_config *cfg, char *buf, size_t size)
{
    static const struct {
        unsigned flag;
        const char *name;
    } names[] = {{RMSFUSE_CENTERED, "centered"},
                 {RMSFUSE_EPS_IN_SQRT, "eps_in_sqrt"},
                 {RMSFUSE_LR_IN_MOMENTUM, "lr_in_momentum"},
                 {RMSFUSE_MAXIMIZE, "maximize"}};
    snprintf(buf, size, "momentum %-3g flags ", cfg->momentum);
    if (!cfg->flags)
        snprintf(buf + strlen(buf), size - strlen(buf), "none");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (cfg->flags & names[i].flag) {
            const size_t len = strlen(buf);
            snprintf(buf + len, size - len, "%s%s", len && buf[len - 1] != ' ' ? "+" : "", names[i].name);
        }
}

/* --mixed-isa: the r-th supported ISA, cycling; NULL if the name is refused. */
static const char *pick_isa(int rank)
{
    const char *const *names = rmsfuse_isa_names();
    int supported = 0;
    for (int i = 0; names[i]; i++)
        supported += rmsfuse_isa_supported(names[i]);
    for (int i = 0, k = 0; names[i]; i++)
        if (rmsfuse_isa_supported(names[i]) && k++ == rank % supported)
            return rmsfuse_set_isa(names[i]) == RMSFUSE_OK ? names[i] : NULL;
    return NULL;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);

    int steps = 5, threads = 0, mixed_isa = 0;
    long chunk = 1L << 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
            chunk = atol(argv[++i]);
        else if (!strcmp(argv[i], "--mixed-isa"))
            mixed_isa = 1;
        else {
            if (rank == 0)
                fprintf(stderr, "usage: mpirun -np P %s [--steps N] [--chunk K] [--threads T] [--mixed-isa]\n", argv[0]);
            MPI_Finalize();
            return 2;
        }
    }
    if (steps < 1 || chunk < 1 || threads < 0) {
        if (rank == 0)
            fprintf(stderr, "mpi_zero1: --steps and --chunk must be >= 1, --threads >= 0\n");
        MPI_Finalize();
        return 2;
    }

    void *pool = NULL;
    if (threads > 0) {
#ifdef MPI_ZERO1_POOL
        rmsfuse_pool *P;
        const int st = rmsfuse_pool_create(&P, threads);
        if (st != RMSFUSE_OK)
            die("rmsfuse_pool_create", st);
        /* By default the pool does not split less than 16384 elements per
         * worker, and this toy model's shards are smaller: pieces of 1024
         * elements make the workers share even these.  Real models keep the
         * default (0). */
        rmsfuse_pool_set_chunk(P, 1024);
        pool = P;
#else
        if (rank == 0)
            fprintf(stderr, "mpi_zero1: --threads needs a build with rmsfuse_pool (MPI_ZERO1_POOL)\n");
        MPI_Finalize();
        return 2;
#endif
    }
    const char *isa = mixed_isa ? pick_isa(rank) : rmsfuse_active_isa();
    if (!isa)
        die("rmsfuse_set_isa", RMSFUSE_E_ISA_UNSUPPORTED);

    zero1 z;
    zero1_init(&z, rank, ranks, (size_t)chunk);
    reference R;
    reference_init(&R);

    if (rank == 0) {
        printf("mpi_zero1: %d ranks, %d tensors, %zu parameters, shards of", ranks, NT, z.total);
        for (int q = 0; q < ranks; q++)
            printf(" %d", z.counts[q]);
        printf(" (64-byte lines)\n");
        int largest = 0;
        for (int q = 0; q < ranks; q++)
            largest = z.counts[q] > largest ? z.counts[q] : largest;
        printf("optimizer state per rank: at most 3 x %d floats (one process: 3 x %zu)\n", largest, z.total);
        printf("gradient exchange: %zu round(s) per step, receive buffer %zu floats per rank\n", z.rounds,
               (size_t)ranks * min_size(z.chunk, (size_t)largest));
        printf("rank 0: ISA %s%s; the update on ", isa, mixed_isa ? " (--mixed-isa: rank r takes the r-th)" : "");
        if (threads)
            printf("an rmsfuse_pool of %d workers per rank\n", threads);
        else
            printf("the calling thread\n");
        printf("summing the ranks in reverse order would change %zu of %zu averaged gradients of step 0\n",
               order_sensitivity(ranks), z.total);
    }

    /* Every flag combination, without and with momentum. */
    int configs = 0, failed = 0;
    for (int with_momentum = 0; with_momentum < 2; with_momentum++)
        for (unsigned flags = 0; flags <= 15u; flags++) { /* the four flags of 0.1 */
            rmsfuse_rmsprop_config cfg[GROUPS];
            cfg[0] = rmsfuse_rmsprop_pytorch(0.01);
            cfg[0].alpha = 0.9;
            cfg[0].flags = flags;
            cfg[0].momentum = with_momentum ? 0.9 : 0.0;
            cfg[1] = cfg[0];
            cfg[0].weight_decay = 0.01; /* weights decay, biases and norms do not */

            zero1_reset(&z);
            reference_reset(&R);
            for (int s = 0; s < steps; s++) {
                zero1_step(&z, cfg, s, pool);
                reference_step(&R, ranks, cfg, s);
            }

            mismatch mm = {0, NULL, 0, 0};
            zero1_compare(&z, &R, &cfg[0], &mm);
            if (mm.count)
                fprintf(stderr, "rank %d: %lld values differ, the first: %s of %s[%zu]\n", rank, mm.count,
                        mm.what, model[mm.tensor].name, mm.index);
            long long differ, moved_params = (long long)moved(&R);
            MPI_Allreduce(&mm.count, &differ, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
            const int ok = differ == 0 && moved_params > 0;
            if (rank == 0) {
                char name[96];
                describe(&cfg[0], name, sizeof name);
                printf("%-4s %-64s %d steps, %lld of %zu params moved, %lld values differ\n", ok ? "ok" : "FAIL",
                       name, steps, moved_params, z.total, differ);
            }
            configs++;
            failed += !ok;
        }

    if (rank == 0)
        printf("%d of %d configurations: parameters and sharded state bit-identical to one process on all %d ranks\n",
               configs - failed, configs, ranks);
    zero1_free(&z);
    reference_free(&R);
#ifdef MPI_ZERO1_POOL
    rmsfuse_pool_destroy(pool);
#endif
    MPI_Finalize();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * mpi_zero1.c: RMSProp with the optimizer state sharded across MPI ranks
 * (ZeRO stage 1), in float32, bf16 or 8-bit (--state), with loss-scale
 * unscaling, clipping by the global norm and found-inf skipping, checked bit
 * for bit against the single-process result.
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
 *   3. the global norm: every rank gets the norm's block sums
 *      of every shard and adds them in order                  (rmsfuse_grad_block_sumsq, MPI_Allgatherv)
 *   4. rank r updates the parameters of its shard, or every
 *      rank skips the step (an Inf or NaN gradient)           (rmsfuse_rmsprop_step_ex)
 *   5. all-gather: every rank gets every updated shard        (MPI_Allgatherv)
 *
 * An all-reduce is a reduce-scatter followed by an all-gather, so steps 2
 * and 5 move the same data as plain data parallelism, while the state per
 * rank shrinks from 3N to 3N/p floats and the update work from N to N/p.
 *
 * How it maps to rmsfuse.  The parameters live in one flat buffer, tensor
 * after tensor, each tensor starting on a 64-byte line (a multiple of 16
 * floats; the gaps are padding that belongs to no tensor).  Shard boundaries
 * often fall inside a tensor, so a rank's shard is a list of pieces of
 * tensors.  Each piece is one rmsfuse_tensor pointing into the flat
 * parameter buffer, the rank's averaged gradient shard and its state shard,
 * and one rmsfuse_rmsprop_step_ex per parameter group (weights with weight
 * decay; biases and norms without) updates them all.  rmsfuse computes every
 * element the same way wherever an array starts or ends, so a piece gets
 * exactly the bits that a step over the whole tensor gives it.
 *
 * Where the shards are cut.  The gradient options (rmsfuse_grad_options,
 * docs/math.md) read every gradient as clamp(g * s, -clip_value, clip_value)
 * with s = scale * clip_factor, and clip_factor comes from the norm of ALL
 * the model's gradients, not of one shard.  That norm's sum of squares is
 * defined block by block: each tensor is cut into blocks of
 * RMSFUSE_NORM_BLOCK (4096) elements from its first element, and the block
 * sums are added in model order.  So shard boundaries are put only where a
 * block starts: at a tensor's start, or inside a tensor at a multiple of
 * 4096 elements from its start.  As tensors start on 16-float lines, these
 * points are also multiples of 16 floats of the 64-byte aligned flat buffer:
 * no two ranks own parts of the same cache line.  Each shard boundary is
 * the block start nearest to an even split (shards are less even than with
 * any 16-float boundary: a real model's tensors are far longer than 4096).
 * Every block then lies in one shard, and the blocks of the shards, in rank
 * order, are the model's blocks in order: rank r computes the block sums of
 * its pieces (rmsfuse_grad_block_sumsq on its averaged gradient shard), the
 * ranks all-gather these arrays (MPI_Allgatherv, in rank order), and every
 * rank adds them one after the other from 0.0: the very double that a
 * single process computes over the whole model.  Each group's
 * rmsfuse_rmsprop_step_ex gets that sum (RMSFUSE_SUMSQ_GIVEN, the same sum
 * for every group: the norm is of the whole model) and
 * RMSFUSE_SKIP_NONFINITE, so a non-finite gradient anywhere makes every
 * call of every rank return RMSFUSE_SKIPPED and write nothing; the
 * all-gather is then skipped too, on every rank alike.
 *
 * Narrow state (--state bf16, --state q8).  The optimizer state
 * (square_avg, momentum_buf, grad_avg) may be stored in another type than
 * float32 (include/rmsfuse_common.h, "storage types"; docs/math.md,
 * "Storage types"), in each rank's shard and in the reference alike; param
 * and grad stay float32.  Each piece is then an rmsfuse_typed_tensor
 * pointing at the same parameters and gradient shard and at the shard's
 * typed state, and the update is rmsfuse_rmsprop_step_typed (or
 * rmsfuse_rmsprop_plan_typed on the pool) with an rmsfuse_storage whose
 * state type is set; the norm's block sums come from
 * rmsfuse_grad_block_sumsq_typed (the reference: rmsfuse_grad_sumsq_typed),
 * the same bits for a float32 gradient.  bf16 state (2 bytes) is rounded
 * element by element, so any cut works.  8-bit state (q8: 1 byte, plus one
 * float32 scale per RMSFUSE_Q8_BLOCK = 256 elements, computed from the
 * block's largest magnitude) is quantised in blocks of 256 elements counted
 * from the first element of each array the library is given: a piece's
 * blocks are its tensor's blocks only if the piece starts at a multiple of
 * 256 elements of its tensor.  A piece that started inside a block would be
 * quantised in other blocks and silently get other codes and scales than
 * the whole tensor (the library refuses such a cut, RMSFUSE_E_BLOCK, only
 * inside one plan; two tensors are two arrays to it).  The shard cuts above
 * already satisfy this: every cut is at a tensor's start or at a multiple
 * of 4096 = 16 x 256 elements of the tensor, so each piece starts at an
 * 8-bit block of its tensor, its blocks are whole blocks of the tensor and
 * only the tensor's last block may be short (the static assertion
 * NORM_BLOCK % Q8_BLOCK == 0 and a check per piece keep it so).  A piece's
 * block scales lie in the rank's scale arrays, piece after piece
 * (ceil(n / 256) each); the reference keeps ceil(n / 256) per tensor.
 * The pool splits a typed plan at 8-bit blocks by itself (rmsfuse_plan_cut).
 * The check compares the bf16 bits or the 8-bit codes AND every block scale
 * of each used state array.  One difference: once the parameters diverge
 * (8-bit state with RMSFUSE_CENTERED, after a dozen steps; q8_linear
 * sooner), the norm is a NaN whose sign is not defined by IEEE 754, and two
 * NaN norms count as equal (same_norm below).
 *
 * Why not an MPI_Allreduce of each rank's partial sum of squares (one
 * double)?  MPI may add the ranks' doubles in any order and grouping, so
 * the norm could differ in its last bits from one process's, and with it
 * the clip factor and every clipped gradient.  The block sums cost little:
 * one double per 4096 gradient elements, ceil(N/4096) doubles in all per
 * step (docs/distributed.md, "The global norm and found-inf across ranks").
 *
 * Bit for bit.  What else could differ is the gradient sum: floating-point
 * addition is commutative but not associative, (g0 + g1) + g2 is not always
 * g0 + (g1 + g2), and MPI_Reduce_scatter / MPI_Allreduce may associate the
 * ranks in any order (trees, rings, pipelined segments, depending on the
 * MPI, the message size and the number of ranks).  So each rank receives the
 * raw slices of its shard from every rank (MPI_Alltoallv, the same volume as
 * a ring reduce-scatter) and adds them itself, in rank order 0, 1, ..., p-1:
 * the additions of a serial loop over the ranks, for any p and any MPI.
 *
 * The data.  Each rank's gradient is multiplied by a loss scale of 1024
 * (as mixed-precision training does) and the steps unscale it (scale
 * 1/1024).  Odd steps have twice the gradient (a batch of larger loss);
 * max_norm is 1.5 times the norm of the first step, so odd steps are
 * clipped and even ones are not; clip_value 1 clamps some elements too.  At
 * step 3 the last rank's local gradient has one Inf (even configurations)
 * or NaN (odd ones), in a different tensor for each configuration: the
 * averaged gradient of one shard is not finite and every rank must skip
 * that step.
 *
 * The check.  Every rank also runs the single-process reference: whole
 * arrays per tensor, the gradients of all p ranks summed in rank order, the
 * sum of squares from rmsfuse_rmsprop_grad_sumsq over all tensors in model
 * order, one rmsfuse_rmsprop_step_ex per group with it.  At every step each
 * rank compares its norm with the reference's, and after the steps all of
 * its parameters and its state shard, bit for bit, for all 16 flag
 * combinations without and with momentum; the ranks must also have skipped
 * exactly the steps the reference skipped, and clipped at least one step
 * and left another unclipped.  Any difference makes the program exit 1.
 *
 * Build (CMake builds it when it finds MPI; see docs/distributed.md):
 *   mpicc -std=c11 -O2 -ffp-contract=off mpi_zero1.c $(pkg-config --cflags --libs rmsfuse) -lm -o mpi_zero1
 *   mpirun -np 2 ./mpi_zero1
 * Options:
 *   --steps N      optimizer steps per configuration (default 5, at least 4:
 *                  step 3 is the one with the Inf/NaN)
 *   --chunk K      exchange gradients in rounds of K floats per shard
 *                  (default 1048576: 4 MiB from each rank per round)
 *   --threads T    update each rank's shard with an rmsfuse_pool of T workers
 *                  (builds with -DMPI_ZERO1_POOL and rmsfuse_pool only)
 *   --mixed-isa    rank r forces the r-th instruction set this CPU runs
 *                  (cycling): ranks on different ISAs still agree bit for bit
 *   --state TYPE   the optimizer state's storage type: f32 (default, the
 *                  float32 calls step_ex / rmsfuse_rmsprop_plan), bf16, q8
 *                  (8-bit codes with a float32 scale per 256 elements) or
 *                  q8_linear; the typed calls step_typed / plan_typed, and
 *                  the ranks' codes and scales must equal the reference's
 */
#include <math.h>
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

/* Two tensors longer than a norm block (4096), so shards can be cut inside them. */
static const tensor_def model[] = {
    {"embed.weight", 1000 * 13, 0}, {"fc1.weight", 64 * 96, 0}, {"fc1.bias", 96, 1}, {"norm.weight", 96, 1},
    {"norm.bias", 96, 1},           {"fc2.weight", 96 * 33, 0}, {"fc2.bias", 33, 1}, {"head.weight", 33 * 10, 0},
    {"head.bias", 10, 1},           {"temperature", 1, 1},
};
enum { NT = sizeof model / sizeof model[0], GROUPS = 2 };

/* ---- the gradient options of every step --------------------------------- */

#define LOSS_SCALE 1024.0f /* the gradients are of the loss times this */
enum { INJECT_STEP = 3 };  /* the step whose gradient has an Inf or NaN on one rank */

/* Where the non-finite gradient goes: rank `rank`'s gradient of element j of
 * tensor t at step `step` is `value`. */
typedef struct injection {
    int rank, step, t;
    size_t j;
    float value;
} injection;

/* What the steps of one run found, for the report and the check. */
typedef struct step_log {
    int skipped, clipped, applied; /* applied: steps that wrote (clipped or not) */
    double last_norm;              /* the norm of the last step */
} step_log;

static void log_step(step_log *log, int status, const rmsfuse_grad_info *info)
{
    log->last_norm = info->norm;
    if (status == RMSFUSE_SKIPPED) {
        log->skipped++;
        return;
    }
    log->applied++;
    log->clipped += info->clip_factor < 1.0;
}

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
 * parameter towards a target of that rank's data, plus noise, times the
 * loss scale (and twice that on odd steps: a batch of larger loss).  It
 * depends on the parameter, as a real gradient does: a rank holding a stale
 * or wrong parameter would compute a different gradient.  (The factors are
 * powers of two: exact.) */
static float grad_of(int r, int s, int t, size_t j, float param)
{
    const float target = noise(2, (uint64_t)r, (uint64_t)t, j);
    const float jitter = noise(3 + (uint64_t)s, (uint64_t)r, (uint64_t)t, j);
    const float loss = s % 2 ? 2.0f * LOSS_SCALE : LOSS_SCALE;
    return ((param - target) + 0.25f * jitter) * loss;
}

/* grad_of with the injected Inf/NaN (inj may be NULL). */
static float batch_grad(const injection *inj, int r, int s, int t, size_t j, float param)
{
    if (inj && r == inj->rank && s == inj->step && t == inj->t && j == inj->j)
        return inj->value;
    return grad_of(r, s, t, j, param);
}

static void die(const char *what, int status)
{
    fprintf(stderr, "mpi_zero1: %s: %s\n", what, rmsfuse_strerror(status));
    MPI_Abort(MPI_COMM_WORLD, 2);
}

static void *alloc_bytes(size_t bytes) /* 64-byte aligned, zeroed */
{
    bytes = ((bytes + 63) / 64) * 64;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) {
        fprintf(stderr, "mpi_zero1: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    memset(p, 0, bytes ? bytes : 64);
    return p;
}

static void *alloc_floats(size_t n)
{
    return alloc_bytes(n * sizeof(float));
}

static size_t blocks_of(size_t n) /* the norm's blocks of n elements */
{
    return (n + RMSFUSE_NORM_BLOCK - 1) / RMSFUSE_NORM_BLOCK;
}

/* ---- the optimizer state's storage type (--state) ------------------------ */

/* Shards are cut only at norm blocks (below), and every norm block starts an
 * 8-bit block too: a shard cut never falls inside a block of 8-bit state. */
_Static_assert(RMSFUSE_NORM_BLOCK % RMSFUSE_Q8_BLOCK == 0, "a norm block is whole 8-bit blocks");

enum { STATES = 3 }; /* square_avg, momentum_buf, grad_avg: rmsfuse_typed_tensor.state[0..2] */
static const char *const state_names[STATES] = {"square_avg", "momentum_buf", "grad_avg"};

static int is_q8(unsigned type)
{
    return type == RMSFUSE_Q8 || type == RMSFUSE_Q8_LINEAR;
}

static size_t type_bytes(unsigned type) /* of one element (8-bit types: without the block scales) */
{
    return type == RMSFUSE_F32 ? 4 : type == RMSFUSE_BF16 ? 2 : 1;
}

static const char *type_name(unsigned type)
{
    return type == RMSFUSE_F32 ? "f32" : type == RMSFUSE_BF16 ? "bf16" : type == RMSFUSE_Q8 ? "q8" : "q8_linear";
}

static size_t q8_blocks_of(size_t n) /* the 8-bit blocks (and scales) of n elements of state */
{
    return (n + RMSFUSE_Q8_BLOCK - 1) / RMSFUSE_Q8_BLOCK;
}

/* ---- ZeRO-1: one rank's view ------------------------------------------- */

typedef struct zero1 {
    int rank, ranks;
    size_t total;        /* floats in the flat buffers: the tensors and the padding between them */
    size_t params;       /* parameters in the model */
    size_t off[NT];      /* where each tensor starts in the flat buffers: multiples of 16 */
    int *counts;         /* shard of rank q: [displs[q], displs[q] + counts[q]) */
    int *displs;
    size_t lo, hi;       /* this rank's shard */
    size_t chunk;        /* the gradient exchange moves at most this many floats */
    size_t rounds;       /* of each shard per round, in this many rounds */
    int *send_counts, *send_displs, *recv_counts, *recv_displs; /* one round's */
    int *block_counts;   /* the norm's blocks in rank q's shard: [block_displs[q], + block_counts[q]) */
    int *block_displs;
    size_t blocks;       /* the norm's blocks in the model */
    double *sums;        /* blocks: every block sum of the step, in model order */
    float *param;        /* total: all parameters, on every rank */
    float *grad;         /* total: the gradient of this rank's batch */
    float *recv;         /* ranks * chunk: one round's slices of this shard, from every rank */
    float *grad_shard;   /* shard: the averaged gradient of this shard */
    float *square_avg;   /* shard: the optimizer state, of this shard only */
    float *momentum_buf; /* shard */
    float *grad_avg;     /* shard */
    rmsfuse_tensor pieces[GROUPS][NT]; /* the pieces of tensors in this shard, by group */
    size_t npieces[GROUPS];
    rmsfuse_tensor flat[NT]; /* the same pieces in model (flat buffer) order */
    size_t nflat;
    /* --state bf16 / q8: the state in storage.state instead of the three
     * float arrays above (which are then not allocated); param and grad stay
     * float32.  The pieces are typed tensors over the same param and
     * gradient shard, with the shard's state (and block scales) instead. */
    rmsfuse_storage storage;
    int typed;                   /* storage.state != RMSFUSE_F32 */
    void *state[STATES];         /* shard elements of storage.state each */
    float *scale[STATES];        /* 8-bit state: every piece's block scales, piece after piece */
    size_t qblocks;              /* 8-bit state: the blocks (scales per array) of this shard's pieces */
    rmsfuse_typed_tensor tpieces[GROUPS][NT];
    rmsfuse_typed_tensor tflat[NT];
} zero1;

static size_t dist(size_t a, size_t b)
{
    return a > b ? a - b : b - a;
}

/* Where a shard may start: the first element of a norm block (a tensor's
 * start, or 4096 k elements after it), or the end of the buffer.  The one
 * nearest to `target` (the first of two as near). */
static size_t block_start_near(const zero1 *z, size_t target)
{
    size_t best = z->total;
    for (int t = 0; t < NT; t++)
        for (size_t k = 0; k < model[t].n; k += RMSFUSE_NORM_BLOCK)
            if (dist(z->off[t] + k, target) < dist(best, target))
                best = z->off[t] + k;
    return best;
}

/* Rank q's shard: from the block start nearest to q/p of the buffer to the
 * one nearest to (q+1)/p (the nearest point of a fixed set to an increasing
 * target never goes back: the shards tile the buffer in rank order; one may
 * be empty when there are more ranks than blocks).  Block starts are
 * multiples of 16 floats, as every tensor starts on a 64-byte line. */
static void shard_bounds(const zero1 *z, int q, size_t *lo, size_t *hi)
{
    const size_t ranks = (size_t)z->ranks;
    *lo = q == 0 ? 0 : block_start_near(z, z->total * (size_t)q / ranks);
    *hi = (size_t)q + 1 == ranks ? z->total : block_start_near(z, z->total * ((size_t)q + 1) / ranks);
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

/* The 8-bit blocks of the pieces of shard [lo, hi): each piece starts at a
 * block of its tensor (a cut is at a norm block) and has its own scales. */
static size_t q8_blocks_in(const zero1 *z, size_t lo, size_t hi)
{
    size_t k = 0;
    for (int t = 0; t < NT; t++) {
        size_t a, b;
        if (intersect(z, t, lo, hi, &a, &b))
            k += q8_blocks_of(b - a);
    }
    return k;
}

static void zero1_init(zero1 *z, int rank, int ranks, size_t chunk, unsigned state_type)
{
    memset(z, 0, sizeof *z);
    z->rank = rank;
    z->ranks = ranks;
    z->storage = rmsfuse_storage_f32();
    z->storage.state = state_type;
    z->typed = state_type != RMSFUSE_F32;
    for (int t = 0; t < NT; t++) {
        z->off[t] = (z->total + 15) / 16 * 16; /* a 64-byte line */
        z->total = z->off[t] + model[t].n;
        z->params += model[t].n;
        z->blocks += blocks_of(model[t].n);
    }
    const size_t r = (size_t)ranks;
    z->counts = malloc(r * sizeof(int));
    z->displs = malloc(r * sizeof(int));
    z->send_counts = malloc(r * sizeof(int));
    z->send_displs = malloc(r * sizeof(int));
    z->recv_counts = malloc(r * sizeof(int));
    z->recv_displs = malloc(r * sizeof(int));
    z->block_counts = malloc(r * sizeof(int));
    z->block_displs = malloc(r * sizeof(int));
    if (!z->counts || !z->displs || !z->send_counts || !z->send_displs || !z->recv_counts || !z->recv_displs ||
        !z->block_counts || !z->block_displs)
        die("shard table", RMSFUSE_E_NO_MEMORY);
    size_t largest = 0, blocks = 0;
    for (int q = 0; q < ranks; q++) { /* MPI counts are int: fine below 2^31 floats */
        size_t lo, hi;
        shard_bounds(z, q, &lo, &hi);
        z->displs[q] = (int)lo;
        z->counts[q] = (int)(hi - lo);
        largest = hi - lo > largest ? hi - lo : largest;
        /* Rank q's blocks: those of its pieces, each cut at a block start. */
        z->block_displs[q] = (int)blocks;
        for (int t = 0; t < NT; t++) {
            size_t a, b;
            if (intersect(z, t, lo, hi, &a, &b))
                blocks += blocks_of(b - a);
        }
        z->block_counts[q] = (int)(blocks - (size_t)z->block_displs[q]);
    }
    if (blocks != z->blocks) /* a shard boundary inside a block: cannot happen */
        die("shard boundaries", RMSFUSE_E_RANGE);
    shard_bounds(z, rank, &z->lo, &z->hi);
    const size_t m = z->hi - z->lo;
    z->chunk = chunk;
    z->rounds = (largest + chunk - 1) / chunk; /* the same on every rank */
    z->param = alloc_floats(z->total);
    z->grad = alloc_floats(z->total); /* the padding stays 0 */
    z->recv = alloc_floats(r * min_size(chunk, m));
    z->grad_shard = alloc_floats(m);
    if (z->typed) {
        z->qblocks = is_q8(state_type) ? q8_blocks_in(z, z->lo, z->hi) : 0;
        for (int k = 0; k < STATES; k++) {
            z->state[k] = alloc_bytes(m * type_bytes(state_type));
            z->scale[k] = is_q8(state_type) ? alloc_floats(z->qblocks) : NULL;
        }
    } else {
        z->square_avg = alloc_floats(m);
        z->momentum_buf = alloc_floats(m);
        z->grad_avg = alloc_floats(m);
    }
    z->sums = alloc_bytes(z->blocks * sizeof(double));

    /* The pieces: each points at the same place of the parameter buffer and
     * of the shard buffers (which start at this shard's first element). */
    size_t q = 0; /* typed: where the piece's block scales start in z->scale[k] */
    for (int t = 0; t < NT; t++) {
        size_t a, b;
        if (!intersect(z, t, z->lo, z->hi, &a, &b))
            continue;
        const size_t s = a - z->lo;
        const int g = model[t].group;
        if (z->typed) {
            /* An 8-bit piece's blocks are its tensor's only if it starts at
             * one of them (the last block of the tensor may be short). */
            if (is_q8(state_type) && (a - z->off[t]) % RMSFUSE_Q8_BLOCK != 0)
                die("a shard cut inside a block of 8-bit state", RMSFUSE_E_BLOCK);
            rmsfuse_typed_tensor piece = {.param = z->param + a, .grad = z->grad_shard + s, .n = b - a};
            for (int k = 0; k < STATES; k++) {
                piece.state[k] = (unsigned char *)z->state[k] + s * type_bytes(state_type);
                piece.scale[k] = is_q8(state_type) ? z->scale[k] + q : NULL;
            }
            q += is_q8(state_type) ? q8_blocks_of(b - a) : 0;
            z->tpieces[g][z->npieces[g]++] = piece;
            z->tflat[z->nflat++] = piece;
            continue;
        }
        const rmsfuse_tensor piece = {
            z->param + a, z->grad_shard + s, z->square_avg + s, z->momentum_buf + s, z->grad_avg + s, b - a};
        z->pieces[g][z->npieces[g]++] = piece;
        z->flat[z->nflat++] = piece;
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
    free(z->block_counts);
    free(z->block_displs);
    free(z->sums);
    free(z->param);
    free(z->grad);
    free(z->recv);
    free(z->grad_shard);
    free(z->square_avg);
    free(z->momentum_buf);
    free(z->grad_avg);
    for (int k = 0; k < STATES; k++) {
        free(z->state[k]);
        free(z->scale[k]);
    }
}

/* Fresh parameters and zero state, for a new run.  Zero bytes are the zero
 * state in every type: bf16 +0, and 8-bit code 0 with block scale 0. */
static void zero1_reset(zero1 *z)
{
    for (int t = 0; t < NT; t++)
        for (size_t j = 0; j < model[t].n; j++)
            z->param[z->off[t] + j] = param_init(t, j);
    const size_t m = z->hi - z->lo;
    if (z->typed) {
        for (int k = 0; k < STATES; k++) {
            memset(z->state[k], 0, m * type_bytes(z->storage.state));
            if (z->scale[k])
                memset(z->scale[k], 0, z->qblocks * sizeof(float));
        }
        return;
    }
    memset(z->square_avg, 0, m * sizeof(float));
    memset(z->momentum_buf, 0, m * sizeof(float));
    memset(z->grad_avg, 0, m * sizeof(float));
}

/* The global sum of squares of the averaged gradient times opt->scale, the
 * same double on every rank and the same as one process's: this rank's
 * block sums, every rank's gathered in rank order (= the model's block
 * order), added one after the other from 0.0. */
static double zero1_sumsq(zero1 *z, double scale)
{
    double *mine = z->sums + z->block_displs[z->rank];
    for (size_t i = 0; i < z->nflat; i++) { /* pieces in model order, each cut at block starts */
        /* Typed pieces: the sums of a gradient of type storage.grad (here
         * float32 still: the same bits as rmsfuse_grad_block_sumsq). */
        const size_t n = z->typed ? z->tflat[i].n : z->flat[i].n;
        const int st = z->typed ? rmsfuse_grad_block_sumsq_typed(z->storage.grad, z->tflat[i].grad, n, scale, mine)
                                : rmsfuse_grad_block_sumsq(z->flat[i].grad, n, scale, mine);
        if (st != RMSFUSE_OK)
            die("rmsfuse_grad_block_sumsq", st);
        mine += blocks_of(n);
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, z->sums, z->block_counts, z->block_displs, MPI_DOUBLE,
                   MPI_COMM_WORLD);
    double acc = 0.0;
    for (size_t b = 0; b < z->blocks; b++)
        acc += z->sums[b];
    return acc;
}

/* One optimizer step, `pool` optional (NULL: the calling thread).  Returns
 * RMSFUSE_OK or RMSFUSE_SKIPPED (on every rank alike); *info: what group
 * 0's call found (group 1's must agree: one norm for the whole model). */
static int zero1_step(zero1 *z, const rmsfuse_rmsprop_config cfg[GROUPS], rmsfuse_grad_options opt, int step,
                      const injection *inj, void *pool, rmsfuse_grad_info *info)
{
    /* 1. The gradient of this rank's batch, for every parameter. */
    for (int t = 0; t < NT; t++)
        for (size_t j = 0; j < model[t].n; j++)
            z->grad[z->off[t] + j] = batch_grad(inj, z->rank, step, t, j, z->param[z->off[t] + j]);

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

    /* 3. The global norm, from the block sums of every shard. */
    opt.sumsq = zero1_sumsq(z, opt.scale);
    opt.flags |= RMSFUSE_SUMSQ_GIVEN | RMSFUSE_SKIP_NONFINITE;

    /* 4. The fused update of this rank's shard, one call per parameter
     *    group, each with the norm of the whole model.  A non-finite sum
     *    makes every call of every rank return RMSFUSE_SKIPPED (even a call
     *    with no pieces: the sum is given). */
    int status = RMSFUSE_OK;
    for (int g = 0; g < GROUPS; g++) {
        rmsfuse_grad_info gi;
        int st;
#ifdef MPI_ZERO1_POOL
        if (pool) {
            /* A typed plan with 8-bit state runs only ranges that start and
             * end at blocks: the pool cuts its pieces there itself. */
            rmsfuse_plan *plan;
            st = z->typed ? rmsfuse_rmsprop_plan_typed(&cfg[g], &z->storage, z->tpieces[g], z->npieces[g], &plan)
                          : rmsfuse_rmsprop_plan(&cfg[g], z->pieces[g], z->npieces[g], &plan);
            if (st == RMSFUSE_OK)
                st = rmsfuse_pool_run_plan_ex(pool, plan, &opt, &gi);
            rmsfuse_plan_free(plan);
        } else
#else
        (void)pool;
#endif
            if (z->typed)
                st = rmsfuse_rmsprop_step_typed(&cfg[g], &z->storage, z->tpieces[g], z->npieces[g], &opt, &gi);
            else
                st = rmsfuse_rmsprop_step_ex(&cfg[g], z->pieces[g], z->npieces[g], &opt, &gi);
        if (st != RMSFUSE_OK && st != RMSFUSE_SKIPPED)
            die(z->typed ? "rmsfuse_rmsprop_step_typed" : "rmsfuse_rmsprop_step_ex", st);
        if (g == 0) {
            status = st;
            *info = gi;
        } else if (st != status || memcmp(&gi.norm, &info->norm, sizeof(double)) != 0 ||
                   memcmp(&gi.clip_factor, &info->clip_factor, sizeof(double)) != 0) {
            die("parameter groups disagree on the global norm", RMSFUSE_E_GRAD_OPTIONS);
        }
    }
    if (status == RMSFUSE_SKIPPED)
        return status; /* nothing was written anywhere: nothing to gather */

    /* 5. All-gather: every rank's updated shard, into every rank's parameters. */
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, z->param, z->counts, z->displs, MPI_FLOAT, MPI_COMM_WORLD);
    return status;
}

/* ---- the reference: one process, whole tensors, no sharding ------------- */

typedef struct reference {
    float *param[NT], *square_avg[NT], *momentum_buf[NT], *grad_avg[NT]; /* state: float32 only */
    float *grad[NT]; /* the averaged gradient of the step */
    rmsfuse_storage storage; /* as the ranks' */
    int typed;
    void *state[STATES][NT];  /* typed: each tensor's state in storage.state */
    float *scale[STATES][NT]; /* 8-bit state: each tensor's block scales */
} reference;

static void reference_init(reference *R, unsigned state_type)
{
    memset(R, 0, sizeof *R);
    R->storage = rmsfuse_storage_f32();
    R->storage.state = state_type;
    R->typed = state_type != RMSFUSE_F32;
    for (int t = 0; t < NT; t++) {
        R->param[t] = alloc_floats(model[t].n);
        if (R->typed) {
            for (int k = 0; k < STATES; k++) {
                R->state[k][t] = alloc_bytes(model[t].n * type_bytes(state_type));
                R->scale[k][t] = is_q8(state_type) ? alloc_floats(q8_blocks_of(model[t].n)) : NULL;
            }
        } else {
            R->square_avg[t] = alloc_floats(model[t].n);
            R->momentum_buf[t] = alloc_floats(model[t].n);
            R->grad_avg[t] = alloc_floats(model[t].n);
        }
        R->grad[t] = alloc_floats(model[t].n);
    }
}

static void reference_free(reference *R)
{
    for (int t = 0; t < NT; t++) {
        free(R->param[t]);
        free(R->square_avg[t]);
        free(R->momentum_buf[t]);
        free(R->grad_avg[t]);
        free(R->grad[t]);
        for (int k = 0; k < STATES; k++) {
            free(R->state[k][t]);
            free(R->scale[k][t]);
        }
    }
}

static void reference_reset(reference *R)
{
    for (int t = 0; t < NT; t++) {
        for (size_t j = 0; j < model[t].n; j++)
            R->param[t][j] = param_init(t, j);
        if (R->typed) {
            for (int k = 0; k < STATES; k++) {
                memset(R->state[k][t], 0, model[t].n * type_bytes(R->storage.state));
                if (R->scale[k][t])
                    memset(R->scale[k][t], 0, q8_blocks_of(model[t].n) * sizeof(float));
            }
            continue;
        }
        memset(R->square_avg[t], 0, model[t].n * sizeof(float));
        memset(R->momentum_buf[t], 0, model[t].n * sizeof(float));
        memset(R->grad_avg[t], 0, model[t].n * sizeof(float));
    }
}

/* The gradient of the batches of all ranks, summed in rank order, averaged. */
static void reference_grads(reference *R, int ranks, int step, const injection *inj)
{
    for (int t = 0; t < NT; t++) {
        const size_t n = model[t].n;
        float *g = R->grad[t], *p = R->param[t];
        for (size_t j = 0; j < n; j++)
            g[j] = batch_grad(inj, 0, step, t, j, p[j]);
        for (int r = 1; r < ranks; r++)
            for (size_t j = 0; j < n; j++)
                g[j] += batch_grad(inj, r, step, t, j, p[j]);
        for (size_t j = 0; j < n; j++)
            g[j] /= (float)ranks;
    }
}

/* The model's tensors, all (group < 0) or one group's, in model order. */
static size_t reference_list(reference *R, int group, rmsfuse_tensor *list)
{
    size_t k = 0;
    for (int t = 0; t < NT; t++)
        if (group < 0 || model[t].group == group)
            list[k++] = (rmsfuse_tensor){R->param[t],        R->grad[t],     R->square_avg[t],
                                         R->momentum_buf[t], R->grad_avg[t], model[t].n};
    return k;
}

/* reference_list for typed state: whole tensors, their state and scales. */
static size_t reference_typed_list(reference *R, int group, rmsfuse_typed_tensor *list)
{
    size_t k = 0;
    for (int t = 0; t < NT; t++)
        if (group < 0 || model[t].group == group) {
            rmsfuse_typed_tensor x = {.param = R->param[t], .grad = R->grad[t], .n = model[t].n};
            for (int s = 0; s < STATES; s++) {
                x.state[s] = R->state[s][t];
                x.scale[s] = R->scale[s][t];
            }
            list[k++] = x;
        }
    return k;
}

/* The sum of squares of the whole model's gradient times scale, as rmsfuse
 * computes it over one list of every tensor in model order. */
static double reference_sumsq(reference *R, double scale)
{
    double sumsq = 0.0;
    int st;
    if (R->typed) {
        rmsfuse_typed_tensor all[NT];
        const size_t count = reference_typed_list(R, -1, all);
        st = rmsfuse_grad_sumsq_typed(&R->storage, all, count, scale, &sumsq);
    } else {
        rmsfuse_tensor all[NT];
        const size_t count = reference_list(R, -1, all);
        st = rmsfuse_rmsprop_grad_sumsq(all, count, scale, &sumsq);
    }
    if (st != RMSFUSE_OK)
        die(R->typed ? "rmsfuse_grad_sumsq_typed" : "rmsfuse_rmsprop_grad_sumsq", st);
    return sumsq;
}

/* One step as a single process would run it on the batches of all ranks:
 * one step_ex per group, each with the norm of all the model's tensors. */
static int reference_step(reference *R, int ranks, const rmsfuse_rmsprop_config cfg[GROUPS],
                          rmsfuse_grad_options opt, int step, const injection *inj, rmsfuse_grad_info *info)
{
    reference_grads(R, ranks, step, inj);
    opt.sumsq = reference_sumsq(R, opt.scale);
    opt.flags |= RMSFUSE_SUMSQ_GIVEN | RMSFUSE_SKIP_NONFINITE;
    int status = RMSFUSE_OK;
    for (int g = 0; g < GROUPS; g++) {
        rmsfuse_grad_info gi;
        int st;
        if (R->typed) {
            rmsfuse_typed_tensor list[NT];
            const size_t count = reference_typed_list(R, g, list);
            st = rmsfuse_rmsprop_step_typed(&cfg[g], &R->storage, list, count, &opt, &gi);
        } else {
            rmsfuse_tensor list[NT];
            const size_t count = reference_list(R, g, list);
            st = rmsfuse_rmsprop_step_ex(&cfg[g], list, count, &opt, &gi);
        }
        if (st != RMSFUSE_OK && st != RMSFUSE_SKIPPED)
            die(R->typed ? "rmsfuse_rmsprop_step_typed" : "rmsfuse_rmsprop_step_ex", st);
        if (g == 0) {
            status = st;
            *info = gi;
        } else if (st != status) {
            die("parameter groups disagree on skipping", RMSFUSE_E_GRAD_OPTIONS);
        }
    }
    return status;
}
/* ---- the comparison ----------------------------------------------------- */

typedef struct mismatch {
    long long count;
    const char *what; /* the first one */
    int tensor;
    size_t index;
} mismatch;

static void compare_bits(mismatch *mm, const char *what, int t, size_t j, const void *got, const void *want,
                         size_t bytes)
{
    if (memcmp(got, want, bytes) == 0) /* bits, so -0 != +0 and NaN == same NaN */
        return;
    if (mm->count++ == 0) {
        mm->what = what;
        mm->tensor = t;
        mm->index = j;
    }
}

static void compare(mismatch *mm, const char *what, int t, size_t j, const float *got, const float *want)
{
    compare_bits(mm, what, t, j, got, want, sizeof(float));
}

/* Typed state: the elements (bf16 bits or 8-bit codes) of the used state
 * arrays of this rank's pieces and, for 8-bit state, every block scale. */
static void zero1_compare_typed(const zero1 *z, const reference *R, const rmsfuse_rmsprop_config *cfg, mismatch *mm)
{
    static const char *const scale_names[STATES] = {"square_avg scale", "momentum_buf scale", "grad_avg scale"};
    const int used[STATES] = {1, cfg->momentum != 0, (cfg->flags & RMSFUSE_CENTERED) != 0};
    const size_t bytes = type_bytes(z->storage.state);
    size_t q = 0; /* the piece's first block scale in z->scale[k], as zero1_init laid them out */
    for (int t = 0; t < NT; t++) {
        size_t a, b;
        if (!intersect(z, t, z->lo, z->hi, &a, &b))
            continue;
        const size_t first = a - z->off[t], s = a - z->lo, n = b - a; /* the piece: elements [first, +n) of t */
        for (int k = 0; k < STATES; k++) {
            if (!used[k])
                continue;
            const unsigned char *got = (const unsigned char *)z->state[k] + s * bytes;
            const unsigned char *want = (const unsigned char *)R->state[k][t] + first * bytes;
            for (size_t j = 0; j < n; j++)
                compare_bits(mm, state_names[k], t, first + j, got + j * bytes, want + j * bytes, bytes);
            if (z->scale[k]) /* the piece's block i is its tensor's block first / 256 + i */
                for (size_t i = 0; i < q8_blocks_of(n); i++)
                    compare(mm, scale_names[k], t, first + i * RMSFUSE_Q8_BLOCK, &z->scale[k][q + i],
                            &R->scale[k][t][first / RMSFUSE_Q8_BLOCK + i]);
        }
        q += z->qblocks ? q8_blocks_of(n) : 0;
    }
}

/* Every parameter on this rank, and the state of its shard, against the reference. */
static void zero1_compare(const zero1 *z, const reference *R, const rmsfuse_rmsprop_config *cfg, mismatch *mm)
{
    for (int t = 0; t < NT; t++)
        for (size_t j = 0; j < model[t].n; j++)
            compare(mm, "param", t, j, &z->param[z->off[t] + j], &R->param[t][j]);
    if (z->typed) {
        zero1_compare_typed(z, R, cfg, mm);
        return;
    }
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

/* The norms of the sharded and the single-process step: the same bits.
 * Typed state only: any NaN equals any NaN.  The sum of squares is a NaN
 * when the parameters have diverged (8-bit state with RMSFUSE_CENTERED:
 * square_avg - grad_avg^2 of two independently quantised arrays turns
 * negative after a dozen steps of this example); several NaN block sums
 * then meet in the sum, and which one's sign and payload a NaN + NaN keeps
 * is IEEE 754's choice to leave open (x86 keeps the first operand's, and
 * the compiler picks the operand order of acc + sum).  The outcome
 * (skipped) and every parameter and state bit are still compared exactly.
 * The float32 run never has more than one NaN in a sum: bits there. */
static int same_norm(int typed, double a, double b)
{
    return memcmp(&a, &b, sizeof(double)) == 0 || (typed && isnan(a) && isnan(b));
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

    int steps = 5, threads = 0, mixed_isa = 0, bad_state = 0;
    long chunk = 1L << 20;
    unsigned state_type = RMSFUSE_F32;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--state") && i + 1 < argc) {
            const char *name = argv[++i];
            if (!strcmp(name, "f32"))
                state_type = RMSFUSE_F32;
            else if (!strcmp(name, "bf16"))
                state_type = RMSFUSE_BF16;
            else if (!strcmp(name, "q8"))
                state_type = RMSFUSE_Q8;
            else if (!strcmp(name, "q8_linear"))
                state_type = RMSFUSE_Q8_LINEAR;
            else
                bad_state = 1;
        } else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
            chunk = atol(argv[++i]);
        else if (!strcmp(argv[i], "--mixed-isa"))
            mixed_isa = 1;
        else {
            if (rank == 0)
                fprintf(stderr,
                        "usage: mpirun -np P %s [--steps N] [--chunk K] [--threads T] [--mixed-isa] "
                        "[--state f32|bf16|q8|q8_linear]\n",
                        argv[0]);
            MPI_Finalize();
            return 2;
        }
    }
    if (steps <= INJECT_STEP || chunk < 1 || threads < 0 || bad_state) {
        if (rank == 0)
            fprintf(stderr,
                    "mpi_zero1: --steps must be >= %d (step %d has the Inf/NaN), --chunk >= 1, --threads >= 0, "
                    "--state f32, bf16, q8 or q8_linear\n",
                    INJECT_STEP + 1, INJECT_STEP);
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
    zero1_init(&z, rank, ranks, (size_t)chunk, state_type);
    reference R;
    reference_init(&R, state_type);

    /* The gradient options: unscale, clip each element to [-1, 1], clip by
     * the global norm at 1.5 times the norm of the first step (which every
     * configuration starts with): the odd steps, of twice the gradient, are
     * clipped, the even ones are not.  Found-inf skipping is added by the
     * steps, with the norm (RMSFUSE_SKIP_NONFINITE | RMSFUSE_SUMSQ_GIVEN). */
    rmsfuse_grad_options opt = rmsfuse_grad_options_none();
    opt.scale = 1.0 / LOSS_SCALE;
    opt.clip_value = 1.0;
    reference_reset(&R);
    reference_grads(&R, ranks, 0, NULL);
    const double norm0 = sqrt(reference_sumsq(&R, opt.scale));
    opt.max_norm = 1.5 * norm0;

    if (rank == 0) {
        printf("mpi_zero1: %d ranks, %d tensors, %zu parameters (%zu floats with the padding), shards of", ranks,
               NT, z.params, z.total);
        for (int q = 0; q < ranks; q++)
            printf(" %d", z.counts[q]);
        printf(z.typed && is_q8(state_type) ? " (cut at norm blocks, so at 8-bit state blocks too)\n"
                                            : " (cut at norm blocks)\n");
        int largest = 0;
        for (int q = 0; q < ranks; q++)
            largest = z.counts[q] > largest ? z.counts[q] : largest;
        if (!z.typed) {
            printf("optimizer state per rank: at most 3 x %d floats (one process: 3 x %zu)\n", largest, z.params);
        } else {
            /* The bytes of one state array: elements, and 8-bit blocks' scales. */
            size_t most = 0, blocks = 0;
            for (int q = 0; q < ranks; q++) {
                const size_t lo = (size_t)z.displs[q], hi = lo + (size_t)z.counts[q];
                const size_t qb = is_q8(state_type) ? q8_blocks_in(&z, lo, hi) : 0;
                const size_t bytes = (hi - lo) * type_bytes(state_type) + qb * sizeof(float);
                most = bytes > most ? bytes : most;
            }
            for (int t = 0; t < NT && is_q8(state_type); t++)
                blocks += q8_blocks_of(model[t].n);
            printf("optimizer state per rank: %s, at most 3 x %zu bytes%s (one process: 3 x %zu; float32: 3 x %zu)\n",
                   type_name(state_type), most, is_q8(state_type) ? " with the block scales" : "",
                   z.params * type_bytes(state_type) + blocks * sizeof(float), z.params * sizeof(float));
        }
        printf("gradient exchange: %zu round(s) per step, receive buffer %zu floats per rank\n", z.rounds,
               (size_t)ranks * min_size(z.chunk, (size_t)largest));
        printf("global norm: %zu block sums gathered per step (per rank:", z.blocks);
        for (int q = 0; q < ranks; q++)
            printf(" %d", z.block_counts[q]);
        printf("); scale 1/%g, clip_value %g, max_norm %.6g (1.5 x the first step's norm), Inf/NaN at step %d\n",
               (double)LOSS_SCALE, opt.clip_value, opt.max_norm, INJECT_STEP);
        printf("rank 0: ISA %s%s; the update on ", isa, mixed_isa ? " (--mixed-isa: rank r takes the r-th)" : "");
        if (threads)
            printf("an rmsfuse_pool of %d workers per rank\n", threads);
        else
            printf("the calling thread\n");
        printf("summing the ranks in reverse order would change %zu of %zu averaged gradients of step 0\n",
               order_sensitivity(ranks), z.params);
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

            /* The last rank's Inf or NaN, in the middle of a tensor that
             * changes with the configuration (and so does the shard). */
            const int it = configs % NT;
            const injection inj = {ranks - 1, INJECT_STEP, it, model[it].n / 2, configs % 2 ? NAN : INFINITY};

            zero1_reset(&z);
            reference_reset(&R);
            step_log zlog = {0, 0, 0, 0.0}, rlog = zlog;
            long long step_differ = 0; /* steps whose norm or outcome differ from the reference's */
            for (int s = 0; s < steps; s++) {
                rmsfuse_grad_info zi, ri;
                const int zst = zero1_step(&z, cfg, opt, s, &inj, pool, &zi);
                const int rst = reference_step(&R, ranks, cfg, opt, s, &inj, &ri);
                log_step(&zlog, zst, &zi);
                log_step(&rlog, rst, &ri);
                if (zst != rst || !same_norm(z.typed, zi.norm, ri.norm) ||
                    memcmp(&zi.clip_factor, &ri.clip_factor, sizeof(double)) != 0) {
                    if (step_differ++ == 0)
                        fprintf(stderr, "rank %d: step %d: %s, norm %.17g, clip %.17g; one process: %s, %.17g, %.17g\n",
                                rank, s, rmsfuse_status_name(zst), zi.norm, zi.clip_factor, rmsfuse_status_name(rst),
                                ri.norm, ri.clip_factor);
                }
            }

            mismatch mm = {0, NULL, 0, 0};
            zero1_compare(&z, &R, &cfg[0], &mm);
            if (mm.count)
                fprintf(stderr, "rank %d: %lld values differ, the first: %s of %s[%zu]\n", rank, mm.count,
                        mm.what, model[mm.tensor].name, mm.index);
            long long local[2] = {mm.count, step_differ}, differ[2];
            long long moved_params = (long long)moved(&R);
            MPI_Allreduce(local, differ, 2, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
            /* A check that compares nothing that moved, never skipped or
             * never clipped (or always did) would prove nothing. */
            const int exercised = rlog.skipped >= 1 && rlog.clipped >= 1 && rlog.applied > rlog.clipped;
            const int ok = differ[0] == 0 && differ[1] == 0 && moved_params > 0 && exercised;
            if (rank == 0) {
                char name[96];
                describe(&cfg[0], name, sizeof name);
                printf("%-4s %-64s %d steps: %d skipped, %d clipped, last norm %.9g; %lld of %zu params moved, "
                       "%lld values and %lld steps differ\n",
                       ok ? "ok" : "FAIL", name, steps, zlog.skipped, zlog.clipped, zlog.last_norm, moved_params,
                       z.params, differ[0], differ[1]);
                if (!exercised)
                    printf("     the run did not skip, clip and leave unclipped at least one step each\n");
            }
            configs++;
            failed += !ok;
        }

    if (rank == 0)
        printf("%d of %d configurations: norms, skipped steps, parameters and sharded state%s bit-identical to one "
               "process on all %d ranks\n",
               configs - failed, configs,
               !z.typed                ? ""
               : is_q8(state_type)     ? (state_type == RMSFUSE_Q8 ? " (q8: codes and block scales)"
                                                                   : " (q8_linear: codes and block scales)")
                                       : " (bf16)",
               ranks);
    zero1_free(&z);
    reference_free(&R);
#ifdef MPI_ZERO1_POOL
    rmsfuse_pool_destroy(pool);
#endif
    MPI_Finalize();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

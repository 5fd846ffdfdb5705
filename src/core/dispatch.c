/*
 * Runtime ISA dispatch: a registry of implementations, selected once,
 * lazily and thread-safely, on first use.  A baseline file: it runs on every
 * CPU, so it must not be compiled with any ISA extension flag.
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/dispatch.c is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/*
 * The ISA registry: every instruction set the library knows, best last
 * (detection picks the last entry both usable and preferred):
 *   X(name, usable, preferred)
 * usable: the CPU and OS can run it; preferred: detection may pick it
 * (forcing one needs only usable).  Adding an ISA is its ops header
 * (src/isa/ops_<name>.h), a line here and a CMake probe
 * (cmake/RmsfuseIsa.cmake); src/isa/kernels.c, compiled per ISA, gives it
 * every rule's kernels.
 */
#define RMSFUSE_ISAS(X)                                                 \
    X(scalar, always, always)                                           \
    X(sse2, rmsfuse_cpu_has_sse2, always)                               \
    X(avx2, rmsfuse_cpu_has_avx2, always)                               \
    X(avx512, rmsfuse_cpu_has_avx512, rmsfuse_cpu_prefers_avx512)       \
    X(neon, always, always)                                             \
    X(sve, rmsfuse_cpu_has_sve, rmsfuse_cpu_prefers_sve)

static int always(void)
{
    return 1;
}

/* Each ISA's kernels, one per rule (src/isa/kernels.c); NULL where it is not built. */
#define RMSFUSE_DECLARE_KERNELS_(isa, usable, preferred)                                               \
    const rmsfuse_kernel *rmsfuse_kernels_##isa(void);                                                 \
    rmsfuse_block_sumsq_fn rmsfuse_block_sumsq_##isa(void);                                            \
    const rmsfuse_storage_ops *rmsfuse_storage_ops_##isa(void);
RMSFUSE_ISAS(RMSFUSE_DECLARE_KERNELS_)

typedef struct rmsfuse_impl {
    const char *name;
    int (*usable)(void);
    int (*preferred)(void);
    const rmsfuse_kernel *(*kernels)(void);
    rmsfuse_block_sumsq_fn (*block_sumsq)(void);
    const rmsfuse_storage_ops *(*storage_ops)(void);
} rmsfuse_impl;

#define RMSFUSE_IMPL_(isa, usable, preferred)                                                          \
    {#isa, usable, preferred, rmsfuse_kernels_##isa, rmsfuse_block_sumsq_##isa, rmsfuse_storage_ops_##isa},
static const rmsfuse_impl impls[] = {RMSFUSE_ISAS(RMSFUSE_IMPL_)};
#define N_IMPLS (sizeof impls / sizeof impls[0])

/* Every name the library knows, whether built in or not. */
#define RMSFUSE_NAME_(isa, usable, preferred) #isa,
static const char *const all_names[] = {RMSFUSE_ISAS(RMSFUSE_NAME_) NULL};

static int runnable(const rmsfuse_impl *impl)
{
    return impl->kernels() != NULL && impl->usable();
}

static _Atomic(const rmsfuse_impl *) active;
static atomic_int env_status;

static const rmsfuse_impl *detect(void)
{
    for (size_t i = N_IMPLS; i-- > 0;)
        if (runnable(&impls[i]) && impls[i].preferred())
            return &impls[i];
    return &impls[0];
}

/* Resolves a name: RMSFUSE_OK with *out set (NULL for "auto"), or an error. */
static int lookup(const char *name, const rmsfuse_impl **out)
{
    *out = NULL;
    if (!name)
        return RMSFUSE_E_UNKNOWN_ISA;
    if (strcmp(name, "auto") == 0)
        return RMSFUSE_OK;
    for (size_t i = 0; i < N_IMPLS; i++)
        if (strcmp(impls[i].name, name) == 0) {
            if (!runnable(&impls[i]))
                return RMSFUSE_E_ISA_UNSUPPORTED;
            *out = &impls[i];
            return RMSFUSE_OK;
        }
    return RMSFUSE_E_UNKNOWN_ISA;
}

/* First-use selection.  Racing threads compute the same answer from the
 * same environment; the first compare-exchange wins, and an explicit
 * rmsfuse_set_isa() that got in first is never overwritten. */
static const rmsfuse_impl *get_active(void)
{
    const rmsfuse_impl *cur = atomic_load_explicit(&active, memory_order_acquire);
    if (cur)
        return cur;

    const rmsfuse_impl *chosen = NULL;
    const char *env = getenv("RMSFUSE_ISA");
    int st = RMSFUSE_OK;
    if (env && *env)
        st = lookup(env, &chosen);
    if (!chosen)
        chosen = detect();

    /* Racing first users all store the same status, before publishing. */
    atomic_store_explicit(&env_status, st, memory_order_release);
    const rmsfuse_impl *expected = NULL;
    if (atomic_compare_exchange_strong_explicit(&active, &expected, chosen, memory_order_acq_rel,
                                                memory_order_acquire))
        return chosen;
    return expected;
}

rmsfuse_kernel rmsfuse_active_kernel(int rule)
{
    return get_active()->kernels()[rule];
}

rmsfuse_block_sumsq_fn rmsfuse_active_block_sumsq(void)
{
    return get_active()->block_sumsq();
}

const rmsfuse_storage_ops *rmsfuse_active_storage_ops(void)
{
    return get_active()->storage_ops();
}

const char *rmsfuse_active_isa(void)
{
    return get_active()->name;
}

int rmsfuse_isa_supported(const char *name)
{
    const rmsfuse_impl *impl;
    return lookup(name, &impl) == RMSFUSE_OK;
}

int rmsfuse_set_isa(const char *name)
{
    const rmsfuse_impl *impl;
    int st = lookup(name, &impl);
    if (st != RMSFUSE_OK)
        return st;
    (void)get_active(); /* the environment is read at first use, whatever that use is */
    atomic_store_explicit(&active, impl ? impl : detect(), memory_order_release);
    return RMSFUSE_OK;
}

int rmsfuse_isa_env_status(void)
{
    (void)get_active();
    return atomic_load_explicit(&env_status, memory_order_acquire);
}

const char *const *rmsfuse_isa_names(void)
{
    return all_names;
}

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

#include "rmsfuse_internal.h"

typedef struct rmsfuse_impl {
    const char *name;
    int (*usable)(void);    /* CPU and OS can run it */
    int (*preferred)(void); /* detection may pick it (forcing needs only usable) */
    rmsfuse_rmsprop_kernel rmsprop;
} rmsfuse_impl;

static int always(void)
{
    return 1;
}

/* Best last: detection picks the last entry both usable and preferred. */
static const rmsfuse_impl impls[] = {
    {"scalar", always, always, rmsfuse_rmsprop_scalar},
#ifdef RMSFUSE_HAVE_SSE2
    {"sse2", rmsfuse_cpu_has_sse2, always, rmsfuse_rmsprop_sse2},
#endif
#ifdef RMSFUSE_HAVE_AVX2
    {"avx2", rmsfuse_cpu_has_avx2, always, rmsfuse_rmsprop_avx2},
#endif
#ifdef RMSFUSE_HAVE_AVX512
    {"avx512", rmsfuse_cpu_has_avx512, rmsfuse_cpu_prefers_avx512, rmsfuse_rmsprop_avx512},
#endif
#ifdef RMSFUSE_HAVE_NEON
    {"neon", always, always, rmsfuse_rmsprop_neon},
#endif
};
#define N_IMPLS (sizeof impls / sizeof impls[0])

/* Every name the library knows, whether built in or not. */
static const char *const all_names[] = {"scalar", "sse2", "avx2", "avx512", "neon", NULL};

static _Atomic(const rmsfuse_impl *) active;
static atomic_int env_status;

static const rmsfuse_impl *detect(void)
{
    for (size_t i = N_IMPLS; i-- > 0;)
        if (impls[i].usable() && impls[i].preferred())
            return &impls[i];
    return &impls[0];
}

static int is_known(const char *name)
{
    for (const char *const *p = all_names; *p; p++)
        if (strcmp(*p, name) == 0)
            return 1;
    return 0;
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
            if (!impls[i].usable())
                return RMSFUSE_E_ISA_UNSUPPORTED;
            *out = &impls[i];
            return RMSFUSE_OK;
        }
    return is_known(name) ? RMSFUSE_E_ISA_UNSUPPORTED : RMSFUSE_E_UNKNOWN_ISA;
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

rmsfuse_rmsprop_kernel rmsfuse_active_rmsprop_kernel(void)
{
    return get_active()->rmsprop;
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

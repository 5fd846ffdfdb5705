/*
 * AArch64 CPU feature detection: the kernel's hardware capabilities
 * (getauxval(AT_HWCAP)), which Linux sets only for what both the CPU and
 * the kernel support (SVE needs the kernel to save the SVE registers).  A
 * baseline file: it must not be compiled with SVE enabled.
 */
#if defined(__ARM_FEATURE_SVE)
#  error "src/core/cpu_arm.c is a baseline file: do not compile it with +sve/-march flags"
#endif

#include "internal.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#include <sys/prctl.h>

#ifndef HWCAP_SVE
#define HWCAP_SVE (1UL << 22)
#endif
#ifndef PR_SVE_GET_VL
#define PR_SVE_GET_VL 51
#endif
#ifndef PR_SVE_VL_LEN_MASK
#define PR_SVE_VL_LEN_MASK 0xffff
#endif

int rmsfuse_cpu_has_sve(void)
{
    return (getauxval(AT_HWCAP) & HWCAP_SVE) != 0;
}

/* The thread's SVE vector length in bytes (0 without SVE). */
static unsigned sve_bytes(void)
{
    if (!rmsfuse_cpu_has_sve())
        return 0;
    const int vl = prctl(PR_SVE_GET_VL, 0, 0, 0, 0);
    return vl < 0 ? 0u : (unsigned)vl & PR_SVE_VL_LEN_MASK;
}

/* Detection takes SVE over NEON only where its vectors are wider than
 * NEON's 128 bits: then each instruction does 2x to 16x NEON's work.  At
 * 128 bits (Neoverse V2: Graviton 4, Grace) both do the same work per
 * instruction and NEON's loop has no predicate to compute, so NEON stays
 * the choice there (forcing "sve" runs it anyway).  Not measured on SVE
 * hardware: this project's machines are x86 (docs/dispatch.md). */
int rmsfuse_cpu_prefers_sve(void)
{
    return sve_bytes() > 16;
}

#else

int rmsfuse_cpu_has_sve(void)
{
    return 0;
}

int rmsfuse_cpu_prefers_sve(void)
{
    return 0;
}

#endif

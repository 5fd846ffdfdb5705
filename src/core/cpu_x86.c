/*
 * x86 CPU feature detection: CPUID for what the CPU implements, XGETBV for
 * what the OS saves and restores (without OS support for the YMM/ZMM state,
 * AVX instructions fault even on a CPU that has them).  A baseline file.
 */
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#  error "src/core/cpu_x86.c is a baseline file: do not compile it with -mavx*/-march flags"
#endif

#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define XCR0_SSE       (1u << 1)
#define XCR0_AVX       (1u << 2)
#define XCR0_OPMASK    (1u << 5)
#define XCR0_ZMM_HI256 (1u << 6)
#define XCR0_HI16_ZMM  (1u << 7)

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    /* The encoding, so that no -mxsave flag is needed to assemble it. */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

typedef struct cpu_bits {
    unsigned ecx1, edx1, ebx7, eax7_1;
    uint64_t xcr0;
    int amd;         /* vendor string "AuthenticAMD" */
    unsigned family; /* CPUID.1.EAX's family, with the extended family added where the base is 15 */
} cpu_bits;

static cpu_bits read_cpu(void)
{
    cpu_bits c = {0, 0, 0, 0, 0, 0, 0};
    unsigned eax, ebx, ecx, edx;
    if (__get_cpuid(0, &eax, &ebx, &ecx, &edx))
        c.amd = ebx == 0x68747541u && edx == 0x69746e65u && ecx == 0x444d4163u; /* "Auth" "enti" "cAMD" */
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return c;
    c.ecx1 = ecx;
    c.edx1 = edx;
    c.family = (eax >> 8) & 0xFu;
    if (c.family == 0xFu)
        c.family += (eax >> 20) & 0xFFu;
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, eax, ebx, ecx, edx);
        c.ebx7 = ebx;
        if (eax >= 1) { /* subleaf 1 */
            __cpuid_count(7, 1, eax, ebx, ecx, edx);
            c.eax7_1 = eax;
        }
    }
    if (c.ecx1 & bit_OSXSAVE)
        c.xcr0 = xgetbv0();
    return c;
}

static int os_saves_ymm(const cpu_bits *c)
{
    const uint64_t need = XCR0_SSE | XCR0_AVX;
    return (c->ecx1 & bit_OSXSAVE) && (c->xcr0 & need) == need;
}

enum {
    HAS_SSE2 = 1,
    HAS_AVX2 = 2,
    HAS_AVX512 = 4,
    HAS_KNOWN = 8,
    PREFER_AVX512 = 16,
    PREFER_PREFETCH = 32,
    HAS_BF16_CONVERT = 64,
    HAS_F16_CONVERT = 128,
    PREFER_TYPED_PREFETCH = 256
};

/* CPUID.(7, 0).EBX: AVX512DQ, AVX512BW, AVX512VL; CPUID.(7, 1).EAX: AVX512_BF16. */
#define CPUID7_AVX512DQ   (1u << 17)
#define CPUID7_AVX512BW   (1u << 30)
#define CPUID7_AVX512VL   (1u << 31)
#define CPUID7_1_AVX512BF16 (1u << 5)

static unsigned detect(void)
{
    cpu_bits c = read_cpu();
    const uint64_t zmm = XCR0_OPMASK | XCR0_ZMM_HI256 | XCR0_HI16_ZMM;
    unsigned has = HAS_KNOWN;
    if (c.edx1 & bit_SSE2)
        has |= HAS_SSE2;
    if ((c.ecx1 & bit_AVX) && (c.ebx7 & bit_AVX2) && os_saves_ymm(&c))
        has |= HAS_AVX2;
    if ((c.ecx1 & bit_AVX) && (c.ebx7 & bit_AVX512F) && os_saves_ymm(&c) && (c.xcr0 & zmm) == zmm)
        has |= HAS_AVX512;
    /* Detection takes AVX-512 over AVX2 only where it is faster for this
     * kernel, which in cache is bound by sqrt and division.  AMD: on Zen 5
     * (512-bit units) AVX-512 measured twice the AVX2 rate in L1; Zen 4
     * splits 512-bit operations into two 256-bit halves (not measured
     * here).  Intel: from Skylake-SP to Sapphire Rapids a 512-bit sqrt or
     * division takes twice as long as a 256-bit one, so AVX-512 gains
     * nothing per element and 512-bit code may run at a lower clock; AVX2
     * measured 4-14% faster in L1 and L2 (docs/dispatch.md).  Both paths
     * give the same bits: this is only about speed. */
    if ((has & HAS_AVX512) && c.amd)
        has |= PREFER_AVX512;
    /* The AVX-512 storage steps round float32 to bf16 with vcvtneps2bf16
     * (src/isa/storage_fused.h) where the CPU has it, unless the
     * environment asks for the integer conversions (the same bits). */
    const unsigned bf16_bits = CPUID7_AVX512DQ | CPUID7_AVX512BW | CPUID7_AVX512VL;
    const char *conv = getenv("RMSFUSE_CONVERSIONS");
    const int software = conv && strcmp(conv, "software") == 0;
    if ((has & HAS_AVX512) && (c.ebx7 & bf16_bits) == bf16_bits && (c.eax7_1 & CPUID7_1_AVX512BF16) && !software)
        has |= HAS_BF16_CONVERT;
    /* f16 conversions by F16C (vcvtps2ph, vcvtph2ps; src/isa/storage.h) on
     * CPUs with AVX (ymm state saved) and F16C, unless the environment asks
     * for the integer ones (the same bits). */
    if ((has & HAS_AVX2) && (c.ecx1 & bit_F16C) && !software)
        has |= HAS_F16_CONVERT;
    /* Software prefetching of large arrays (src/isa/kernels.c): on Intel
     * (Sapphire Rapids class) it took the steps from 0.94-0.97 to 1.01-1.03 x
     * the same-traffic roofline at DRAM size; on AMD Zen 4 it made them
     * 10-20% slower (Adam 37 against 46 GB/s, the hardware prefetchers alone
     * matching the -O3 loop), docs/performance.md.  Bits are unaffected. */
    if (!c.amd)
        has |= PREFER_PREFETCH;
    /* The typed steps' fused loops prefetch their 16- and 8-bit arrays
     * (src/isa/storage_fused.h).  On the Zen 4 VM that took all-bf16 RMSProp
     * with momentum at DRAM size from 0.84-0.90 to 0.74-0.78 ns per element;
     * on AMD Zen 5 (family 26) the hardware prefetchers alone are faster
     * for every storage but one (AdamW, 16.8 M elements, best of four
     * alternations, ns per element with / without: all-bf16 0.306 / 0.254,
     * f16 0.269 / 0.237, bf16 + stochastic rounding 0.541 / 0.446, split
     * 0.457 / 0.409, 8-bit state 0.649 / 0.618, bf16 + 8-bit 0.760 / 0.727;
     * f16 with master weights 0.490 / 0.515), and so on AMD Zen 3 (family
     * 25 without AVX-512, whose AVX2 loops alone take the typed steps:
     * ns per element with / without at DRAM size, best of 16
     * alternations: all-bf16 RMSProp 0.582 / 0.547, with momentum 0.890 /
     * 0.804, AdamW 0.860 / 0.781, split AdamW 0.795 / 0.737).  So of AMD's
     * CPUs only family 25 with AVX-512 (Zen 4) prefetches; earlier AMD
     * CPUs, not measured, are left to their hardware prefetchers as Zen 3
     * is.  docs/performance-storage-log.md.  Bits are unaffected. */
    if (!c.amd || (c.family == 0x19u && (has & HAS_AVX512)))
        has |= PREFER_TYPED_PREFETCH;
    return has;
}

/* CPUID is slow under a hypervisor (it traps), so it runs once.  Racing
 * first callers compute the same value; relaxed order is enough for a
 * value that is the same whoever stores it. */
static _Atomic unsigned cpu_cache;

static unsigned cpu_has(void)
{
    unsigned has = atomic_load_explicit(&cpu_cache, memory_order_relaxed);
    if (!has) {
        has = detect();
        atomic_store_explicit(&cpu_cache, has, memory_order_relaxed);
    }
    return has;
}

int rmsfuse_cpu_has_sse2(void) { return (cpu_has() & HAS_SSE2) != 0; }
int rmsfuse_cpu_has_avx2(void) { return (cpu_has() & HAS_AVX2) != 0; }
int rmsfuse_cpu_has_avx512(void) { return (cpu_has() & HAS_AVX512) != 0; }
int rmsfuse_cpu_prefers_avx512(void) { return (cpu_has() & PREFER_AVX512) != 0; }
int rmsfuse_cpu_prefers_prefetch(void) { return (cpu_has() & PREFER_PREFETCH) != 0; }
int rmsfuse_cpu_prefers_typed_prefetch(void) { return (cpu_has() & PREFER_TYPED_PREFETCH) != 0; }
int rmsfuse_cpu_has_bf16_convert(void) { return (cpu_has() & HAS_BF16_CONVERT) != 0; }
int rmsfuse_cpu_has_f16_convert(void) { return (cpu_has() & HAS_F16_CONVERT) != 0; }

#else /* not x86 */

int rmsfuse_cpu_has_sse2(void) { return 0; }
int rmsfuse_cpu_has_avx2(void) { return 0; }
int rmsfuse_cpu_has_avx512(void) { return 0; }
int rmsfuse_cpu_prefers_avx512(void) { return 0; }
int rmsfuse_cpu_prefers_prefetch(void) { return 1; } /* not measured off x86: as before */
int rmsfuse_cpu_prefers_typed_prefetch(void) { return 1; }
int rmsfuse_cpu_has_bf16_convert(void) { return 0; }
int rmsfuse_cpu_has_f16_convert(void) { return 0; }

#endif

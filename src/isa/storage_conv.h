/*
 * The conversions of the storage types (docs/math.md, "Storage types") on
 * CW lanes, written once with the compiler's vector extension: 32-bit
 * integer lanes whose every operation is exact, so every width and every
 * ISA gives the same bits.  src/isa/kernels.c includes this file twice:
 * with CW = 1 (the scalar reference, every ISA's tails) and with CW = the
 * ISA's width, whose flags turn the operations into its own instructions;
 * CV(name) gives each inclusion its own names.  No include guard.
 *
 * The hardware conversions used are elsewhere, with what makes them agree:
 * AVX-512 BF16's vcvtneps2bf16 in storage_fused.h, F16C's in storage.h;
 * NEON's conversions are not used.
 */

typedef uint32_t CV(u_t) __attribute__((vector_size(CW * 4)));
typedef int32_t CV(i_t) __attribute__((vector_size(CW * 4)));
typedef float CV(f_t) __attribute__((vector_size(CW * 4)));
typedef uint16_t CV(h_t) __attribute__((vector_size(CW * 2)));
typedef uint8_t CV(b_t) __attribute__((vector_size(CW)));

/* where m is all ones: x, else y (m from a vector comparison, its lanes
 * all ones or all zeros); AVX2's blend where this width is its vector */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(sel)(CV(i_t) m, CV(u_t) x, CV(u_t) y)
{
#if CW == 8 && defined(__AVX2__)
    __m256i M, X, Y;
    memcpy(&M, &m, sizeof M);
    memcpy(&X, &x, sizeof X);
    memcpy(&Y, &y, sizeof Y);
    const __m256i R = _mm256_blendv_epi8(Y, X, M);
    CV(u_t) r;
    memcpy(&r, &R, sizeof r);
    return r;
#else
    return ((CV(u_t))m & x) | (~(CV(u_t))m & y);
#endif
}

/*
 * Comparisons and a select in one: where a OP b, x, else y.  Operands are
 * below 2^31 (compared as signed integers: one instruction on every ISA);
 * on AVX-512 the comparison gives a mask register and the select is a
 * masked blend, not a vector of all ones.
 */
#if CW == 16 && defined(__AVX512F__)
static RMSFUSE_ALWAYS_INLINE __m512i CV(v512)(CV(u_t) u)
{
    __m512i v;
    memcpy(&v, &u, sizeof v);
    return v;
}
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(u512)(__m512i v)
{
    CV(u_t) u;
    memcpy(&u, &v, sizeof u);
    return u;
}
#define RMSFUSE_SEL_CMP_(name, pred, op)                                                            \
    static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(name)(CV(u_t) a, CV(u_t) b, CV(u_t) x, CV(u_t) y)      \
    {                                                                                               \
        return CV(u512)(_mm512_mask_blend_epi32(_mm512_cmp_epi32_mask(CV(v512)(a), CV(v512)(b), pred), \
                                                CV(v512)(y), CV(v512)(x)));                         \
    }
#else
#define RMSFUSE_SEL_CMP_(name, pred, op)                                                            \
    static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(name)(CV(u_t) a, CV(u_t) b, CV(u_t) x, CV(u_t) y)      \
    {                                                                                               \
        return CV(sel)((CV(i_t))a op (CV(i_t))b, x, y);                                             \
    }
#endif
RMSFUSE_SEL_CMP_(sel_gt, _MM_CMPINT_NLE, >)
RMSFUSE_SEL_CMP_(sel_ge, _MM_CMPINT_NLT, >=)
RMSFUSE_SEL_CMP_(sel_lt, _MM_CMPINT_LT, <)
RMSFUSE_SEL_CMP_(sel_eq, _MM_CMPINT_EQ, ==)
#undef RMSFUSE_SEL_CMP_

static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(umin)(CV(u_t) a, CV(u_t) b)
{
    return CV(sel)(a < b, a, b);
}
/* the larger of a and b, both below 2^31 (one instruction on AVX2, AVX-512, NEON) */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(smax)(CV(u_t) a, CV(u_t) b)
{
#if CW == 16 && defined(__AVX512F__)
    return CV(u512)(_mm512_max_epi32(CV(v512)(a), CV(v512)(b)));
#elif CW == 8 && defined(__AVX2__)
    __m256i A, B;
    memcpy(&A, &a, sizeof A);
    memcpy(&B, &b, sizeof B);
    const __m256i R = _mm256_max_epi32(A, B);
    CV(u_t) r;
    memcpy(&r, &R, sizeof r);
    return r;
#elif CW == 4 && defined(__ARM_NEON)
    uint32x4_t A, B;
    memcpy(&A, &a, sizeof A);
    memcpy(&B, &b, sizeof B);
    const uint32x4_t R = vmaxq_u32(A, B);
    CV(u_t) r;
    memcpy(&r, &R, sizeof r);
    return r;
#else
    return CV(sel)((CV(i_t))a > (CV(i_t))b, a, b);
#endif
}
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(splat)(uint32_t x)
{
    return (CV(u_t)){0} + x;
}
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(bits)(CV(f_t) x)
{
    CV(u_t) u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static RMSFUSE_ALWAYS_INLINE CV(f_t) CV(flt)(CV(u_t) u)
{
    CV(f_t) x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* ---- CW elements in and out ------------------------------------------------- */
static RMSFUSE_ALWAYS_INLINE CV(f_t) CV(ld_f32)(const char *p)
{
    CV(f_t) x;
    memcpy(&x, p, sizeof x);
    return x;
}
static RMSFUSE_ALWAYS_INLINE void CV(st_f32)(char *p, CV(f_t) x)
{
    memcpy(p, &x, sizeof x);
}
/* 16-bit elements to and from 32-bit lanes, with the ISA's widening and
 * narrowing instructions where this width is its vector (GCC 12 narrows
 * the generic way in five instructions on AVX-512; SSE2 has no unsigned
 * 32-to-16 pack: the lanes are offset by 0x8000 around a signed one). */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(ld_u16)(const char *p)
{
    CV(u_t) u;
#if CW == 16 && defined(__AVX512F__)
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p));
    memcpy(&u, &v, sizeof u);
#elif CW == 8 && defined(__AVX2__)
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
    memcpy(&u, &v, sizeof u);
#else
    CV(h_t) h;
    memcpy(&h, p, sizeof h);
    u = __builtin_convertvector(h, CV(u_t));
#endif
    return u;
}
/* u: lanes of at most 0xFFFF. */
static RMSFUSE_ALWAYS_INLINE void CV(st_u16)(char *p, CV(u_t) u)
{
#if CW == 16 && defined(__AVX512F__)
    __m512i v;
    memcpy(&v, &u, sizeof v);
    _mm256_storeu_si256((__m256i *)(void *)p, _mm512_cvtepi32_epi16(v));
#elif CW == 8 && defined(__AVX2__)
    __m256i v;
    memcpy(&v, &u, sizeof v);
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storeu_si128((__m128i *)(void *)p, w);
#elif CW == 4 && defined(__SSE2__) && !defined(__AVX2__)
    __m128i v;
    memcpy(&v, &u, sizeof v);
    const __m128i k = _mm_set1_epi32(0x8000);
    const __m128i w = _mm_xor_si128(_mm_packs_epi32(_mm_sub_epi32(v, k), _mm_sub_epi32(v, k)), _mm_set1_epi16(-0x8000));
    _mm_storel_epi64((__m128i *)(void *)p, w);
#elif CW == 4 && defined(__ARM_NEON)
    uint32x4_t v;
    memcpy(&v, &u, sizeof v);
    vst1_u16((uint16_t *)(void *)p, vmovn_u32(v));
#else
    const CV(h_t) h = __builtin_convertvector(u, CV(h_t));
    memcpy(p, &h, sizeof h);
#endif
}
/* 16-bit elements to and from the 32-bit lanes' high halves (bf16 and
 * float32 bits).  AVX2: a load broadcast to both 128-bit lanes and one
 * byte shuffle, not a widening and a shift; a store of one byte shuffle
 * and one qword permute, not a shift, an extract and a narrowing. */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(ld_hi16)(const char *p)
{
#if CW == 8 && defined(__AVX2__)
    CV(u_t) u;
    const __m256i v = _mm256_shuffle_epi8(
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)p)),
        _mm256_setr_epi8(-1, -1, 0, 1, -1, -1, 2, 3, -1, -1, 4, 5, -1, -1, 6, 7, -1, -1, 8, 9, -1, -1, 10, 11, -1, -1,
                         12, 13, -1, -1, 14, 15));
    memcpy(&u, &v, sizeof u);
    return u;
#else
    return CV(ld_u16)(p) << 16;
#endif
}
static RMSFUSE_ALWAYS_INLINE void CV(st_hi16)(char *p, CV(u_t) u)
{
#if CW == 8 && defined(__AVX2__)
    __m256i v;
    memcpy(&v, &u, sizeof v);
    const __m256i w = _mm256_shuffle_epi8(v, _mm256_setr_epi8(2, 3, 6, 7, 10, 11, 14, 15, -1, -1, -1, -1, -1, -1, -1,
                                                              -1, 2, 3, 6, 7, 10, 11, 14, 15, -1, -1, -1, -1, -1,
                                                              -1, -1, -1));
    _mm_storeu_si128((__m128i *)(void *)p, _mm256_castsi256_si128(_mm256_permute4x64_epi64(w, 0x08)));
#else
    CV(st_u16)(p, u >> 16);
#endif
}
/* Bytes to and from 32-bit lanes: GCC 12 turns __builtin_convertvector
 * between 8-bit and 32-bit lanes into one instruction per lane, so the ISA's
 * own widening and narrowing instructions are used where this width is the
 * ISA's vector (the values are bytes either way: the same bits). */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(ld_u8)(const char *p)
{
    CV(u_t) u;
#if CW == 16 && defined(__AVX512F__)
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
    memcpy(&u, &v, sizeof u);
#elif CW == 8 && defined(__AVX2__)
    long long w;
    memcpy(&w, p, sizeof w);
    const __m256i v = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(w));
    memcpy(&u, &v, sizeof u);
#elif CW == 4 && defined(__SSE2__) && !defined(__AVX2__)
    int w;
    memcpy(&w, p, sizeof w);
    const __m128i z = _mm_setzero_si128();
    const __m128i v = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(w), z), z);
    memcpy(&u, &v, sizeof u);
#elif CW == 4 && defined(__ARM_NEON)
    uint8x8_t b = vdup_n_u8(0);
    uint32_t w;
    memcpy(&w, p, sizeof w);
    b = vreinterpret_u8_u32(vset_lane_u32(w, vreinterpret_u32_u8(b), 0));
    const uint32x4_t v = vmovl_u16(vget_low_u16(vmovl_u8(b)));
    memcpy(&u, &v, sizeof u);
#else
    CV(b_t) b;
    memcpy(&b, p, sizeof b);
    u = __builtin_convertvector(b, CV(u_t));
#endif
    return u;
}
/* u: lanes of at most 255. */
static RMSFUSE_ALWAYS_INLINE void CV(st_u8)(char *p, CV(u_t) u)
{
#if CW == 16 && defined(__AVX512F__)
    __m512i v;
    memcpy(&v, &u, sizeof v);
    _mm_storeu_si128((__m128i *)(void *)p, _mm512_cvtepi32_epi8(v));
#elif CW == 8 && defined(__AVX2__)
    __m256i v;
    memcpy(&v, &u, sizeof v);
    const __m128i w = _mm_packus_epi16(_mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)),
                                       _mm_setzero_si128());
    const long long x = _mm_cvtsi128_si64(w);
    memcpy(p, &x, 8);
#elif CW == 4 && defined(__SSE2__) && !defined(__AVX2__)
    __m128i v;
    memcpy(&v, &u, sizeof v);
    const __m128i w = _mm_packus_epi16(_mm_packs_epi32(v, v), v);
    const int x = _mm_cvtsi128_si32(w);
    memcpy(p, &x, 4);
#elif CW == 4 && defined(__ARM_NEON)
    uint32x4_t v;
    memcpy(&v, &u, sizeof v);
    const uint8x8_t b = vmovn_u16(vcombine_u16(vmovn_u32(v), vdup_n_u16(0)));
    const uint32_t x = vget_lane_u32(vreinterpret_u32_u8(b), 0);
    memcpy(p, &x, 4);
#else
    const CV(b_t) b = __builtin_convertvector(u, CV(b_t));
    memcpy(p, &b, sizeof b);
#endif
}

/* ---- stochastic rounding's random numbers r(i), ..., r(i + CW - 1) ----------- */
/* mix32 (docs/math.md) but for its last step, x ^ (x >> 16), which leaves
 * the high half as it is: the high half of mix32(x) is mix32_pre(x) >> 16. */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(mix32_pre)(CV(u_t) x)
{
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    return x * 0x846CA68Bu;
}
/* r(i), r(i + st), ..., r(i + (CW - 1) st) before mix32's last step, for
 * elements of one 2^32 range, whose K2 is k2 (rmsfuse_sr_k2); st 1, or 2
 * in the fused loops of pairs (storage_fused.h, TX_PAIRS).  One round of
 * mix32 per element, of i + K2 (docs/math.md): with the two rounds of
 * (i xor K2) defined before, the steps rounding stochastically took
 * 1.2-1.4 x the time on AMD Zen 5 in L2 (docs/performance-storage-log.md). */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(sr_pre)(uint64_t k2, uint64_t i, unsigned st)
{
    CV(u_t) idx;
    for (unsigned l = 0; l < CW; l++) /* a constant */
        idx[l] = l * st;
    return CV(mix32_pre)(idx + (uint32_t)(i + k2)); /* one broadcast and one add */
}
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(sr_random)(uint64_t k2, uint64_t i)
{
    const CV(u_t) y = CV(sr_pre)(k2, i, 1u);
    return y ^ (y >> 16);
}
/* r(i) >> 16, r(i + st) >> 16, ...: all that bf16's stochastic rounding
 * uses, one shift and one xor fewer than sr_random (>> 16) */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(sr_random_hi)(uint64_t k2, uint64_t i, unsigned st)
{
    return CV(sr_pre)(k2, i, st) >> 16;
}

/* ---- bf16 ------------------------------------------------------------------- */
/* Where u is a NaN's bits: x, else y (the quiet comparison x != x). */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(sel_nan)(CV(u_t) u, CV(u_t) x, CV(u_t) y)
{
#if CW == 16 && defined(__AVX512F__)
    const __m512 f = _mm512_castsi512_ps(CV(v512)(u));
    return CV(u512)(_mm512_mask_blend_epi32(_mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q), CV(v512)(y), CV(v512)(x)));
#else
    const CV(f_t) f = CV(flt)(u);
    return CV(sel)((CV(i_t))(f != f), x, y);
#endif
}
/* The bf16 of float bits u that is not a NaN, rounded to nearest even, in
 * the lanes' high halves (the low halves are not zero). */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(bf16_hi_rne)(CV(u_t) u)
{
    return u + (0x7FFFu + ((u >> 16) & 1u));
}
/* bf16 bits of float bits u, rounded to nearest even or, with sr,
 * stochastically with rh = r >> 16 (sr_random_hi), in the lanes' high
 * halves (the low halves are not zero). */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(bf16_hi)(CV(u_t) u, int sr, CV(u_t) rh)
{
    return CV(sel_nan)(u, u | 0x00400000u, sr ? u + rh : CV(bf16_hi_rne)(u));
}

#if CW == 8 && defined(__AVX2__)
/* Whether a lane of the floats of bits x or of bits y is a NaN (AVX2: one
 * comparison and a movemask, for a branch where a blend would be). */
static RMSFUSE_ALWAYS_INLINE int CV(any_nan)(CV(u_t) x, CV(u_t) y)
{
    __m256 f, g;
    memcpy(&f, &x, sizeof f);
    memcpy(&g, &y, sizeof g);
    return _mm256_movemask_ps(_mm256_cmp_ps(f, g, _CMP_UNORD_Q)) != 0;
}
#endif

/* CW float bits u to bf16 at p, rounded to nearest even.  AVX2: a vector
 * with a NaN is found by one comparison and a branch, not a comparison and
 * a blend on every store (the same bits: bf16_hi). */
static RMSFUSE_ALWAYS_INLINE void CV(st_bf16_rne)(char *p, CV(u_t) u)
{
#if CW == 8 && defined(__AVX2__)
    if (__builtin_expect(!CV(any_nan)(u, u), 1)) {
        CV(st_hi16)(p, CV(bf16_hi_rne)(u));
        return;
    }
#endif
    CV(st_hi16)(p, CV(bf16_hi)(u, 0, CV(splat)(0u)));
}

/* ---- m / 2^sh rounded to nearest even (or stochastically with r), sh >= 1 ---- */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(round_shift)(CV(u_t) m, CV(u_t) sh, int sr, CV(u_t) r)
{
    CV(u_t) t = CV(umin)(sh, CV(splat)(31u));
    t = CV(sel)(t < 1u, CV(splat)(1u), t);
    const CV(u_t) m2 = m >> CV(umin)(sh - t, CV(splat)(31u));
    const CV(u_t) one = CV(splat)(1u);
    const CV(u_t) b = sr ? r & ((one << t) - 1u) : (one << (t - 1u)) - 1u + ((m2 >> t) & 1u);
    return (m2 + b) >> t;
}

/* ---- f16 -------------------------------------------------------------------- */
/* rne(|x| / 2^-k) for |x| < 2^(23-k), |x| at bits a: |x| below 2^-126
 * (zero, subnormal) is taken as 0, which rounds to 0 all the same, so that
 * no subnormal float enters an operation; then the product is exact and
 * adding 2^23 rounds it to an integer, to nearest even: the same value as
 * the integer rounding of docs/math.md (round_shift with sr = 0). */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(rne_small)(CV(u_t) a, float two_k)
{
    const CV(u_t) n = CV(sel_lt)(a, CV(splat)(0x00800000u), CV(splat)(0u), a);
    return CV(bits)(CV(flt)(n) * two_k + 0x1p23f) - 0x4B000000u;
}

static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(f16_of)(CV(u_t) u, int sr, CV(u_t) r)
{
    const CV(u_t) S = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu, e = a >> 23;
    const CV(u_t) bn = sr ? r & 0x1FFFu : 0xFFFu + ((a >> 13) & 1u);
    const CV(u_t) hn = (a - 0x38000000u + bn) >> 13;
    CV(u_t) hs;
    if (sr) {
        const CV(u_t) e1 = e + ((CV(u_t))(e == 0u) & 1u);
        const CV(u_t) m = (a & 0x7FFFFFu) | ((CV(u_t))(e != 0u) & 0x800000u);
        hs = CV(round_shift)(m, 126u - e1, 1, r);
    } else {
        hs = CV(rne_small)(CV(sel_ge)(e, CV(splat)(113u), CV(splat)(0u), a), 0x1p24f);
    }
    CV(u_t) h = CV(sel_ge)(e, CV(splat)(113u), hn, hs);
    h = CV(sel_ge)(a, CV(splat)(0x47800000u), CV(splat)(0x7C00u), h);
    h = CV(sel_gt)(a, CV(splat)(0x7F800000u), 0x7E00u | ((a >> 13) & 0x3FFu), h);
    return S | h;
}
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(f16_to)(CV(u_t) h)
{
    const CV(u_t) S = (h & 0x8000u) << 16, E = (h >> 10) & 31u, M = h & 0x3FFu;
    const CV(u_t) sub = CV(bits)(__builtin_convertvector((CV(i_t))M, CV(f_t)) * 0x1p-24f);
    CV(u_t) u = CV(sel_eq)(E, CV(splat)(0u), sub, ((E + 112u) << 23) | (M << 13));
    u = CV(sel_eq)(E, CV(splat)(31u), 0x7F800000u | (M << 13), u);
    return S | u;
}

/* ---- the 8-bit maps ---------------------------------------------------------- */
/* The float-like code of |y| (bits a, |y| <= 1 + 2^-22): exponent bias B,
 * 3 fraction bits, rounded to nearest even (docs/math.md).  One float
 * addition rounds |y| onto the code's grid: g = 2^(max(e, e1) + 20) for
 * |y|'s exponent e and e1 that of the code's exponent 1 (2^(1-B)) is at
 * least 2^20 times |y|, so |y| + g has the grid's step (2^(e-3), or
 * 2^(-B-2) below 2^(1-B)) as its ulp and rounds to nearest even on it;
 * its bits minus g's count the steps n, and the steps below 2^e are
 * 8 (max(e, e1) - e1) = (t - t1) >> 20.  The bits of max(e, e1) << 23 are those of
 * max(a, e1 << 23) with the fraction cleared.  A subnormal |y| (code 0)
 * adds to g as 0 does, with the CPU's DAZ set or not: |y| + g rounds to g.
 * The same codes as the integer rounding of docs/math.md for every such
 * |y| (compared over all 2^30 of them once; tests/python/test_storage_numpy.py
 * checks every rounding pattern). */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(q8_code_finite)(CV(u_t) a, unsigned B)
{
    const uint32_t t1 = (128u - B) << 23;
    const CV(u_t) t = CV(smax)(a, CV(splat)(t1)) & 0x7F800000u;
    /* g's and t1's low 8 bits are 0, and only the code's low 8 bits
     * matter: g carries K = -(t1 >> 20) mod 256 in its fraction instead,
     * so |y| + g = g + (K + n) ulp for the n steps rounded to nearest, ties
     * to even (K is even: n + K is even where n is), and the code is the
     * low 8 bits of its bits + (t >> 20) (all 2^30 |y| compared with the
     * form above once, DAZ and FTZ set or not).  CV(st_u8) truncates to
     * them except where it packs with saturation (AVX2, SSE2). */
    const CV(u_t) g = t + ((20u << 23) | ((0u - (t1 >> 20)) & 0xFFu));
    const CV(u_t) c = CV(bits)(CV(flt)(a) + CV(flt)(g)) + (t >> 20);
#if (CW == 8 && defined(__AVX2__)) || (CW == 4 && defined(__SSE2__) && !defined(__AVX2__))
    return c & 0xFFu;
#else
    return c;
#endif
}
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(q8_code)(CV(u_t) a, unsigned B, unsigned nan)
{
    return CV(sel_gt)(a, CV(splat)(0x7F800000u), CV(splat)(nan), CV(q8_code_finite)(a, B));
}
/* The value of magnitude code c (below the NaN code): 2^(E-B) (1 + M/8)
 * for E = c >> 3 >= 1, whose bits are (c << 20) + (127 - B) << 23; M 2^(-B-2)
 * for E = 0 (M = c < 8: on AVX-512 a permute of a table of the 8, on AVX2
 * a subtraction; exact every way). */
static RMSFUSE_ALWAYS_INLINE CV(f_t) CV(q8_value)(CV(u_t) c, unsigned B)
{
    const float step = B == 15u ? 0x1p-17f : 0x1p-33f; /* 2^(-B-2) */
    const CV(u_t) n = (c << 20) + ((127u - B) << 23);
#if CW == 16 && defined(__AVX512F__)
    const __m512 tab = _mm512_set_ps(7 * step, 6 * step, 5 * step, 4 * step, 3 * step, 2 * step, step, 0.0f,
                                     7 * step, 6 * step, 5 * step, 4 * step, 3 * step, 2 * step, step, 0.0f);
    const __m512i v = CV(v512)(c);
    return _mm512_mask_permutexvar_ps(_mm512_castsi512_ps(CV(v512)(n)),
                                      _mm512_cmp_epi32_mask(v, _mm512_set1_epi32(8), _MM_CMPINT_LT), v, tab);
#elif CW == 8 && defined(__AVX2__)
    /* E = 0: the value of the code with E = 1, (8 + M) 2^(-B-2), less
     * 2^(1-B) (exact: Sterbenz), not a permute of the table, which AMD Zen 3
     * runs as three operations at one per two cycles (llvm-mca and a loop of
     * them).  AMD Zen 3 VM, ns per element, in L2, 5 alternations, permute
     * -> subtraction: SGD with momentum and 8-bit state 0.710 -> 0.641,
     * RMSProp 0.798 -> 0.720, AdamW 1.349 -> 1.335.  Every operand and
     * result is normal or 0, so the CPU's DAZ and FTZ flags do not change
     * it. */
    const CV(f_t) sub = CV(flt)(n + (8u << 20)) - 8.0f * step;
    return CV(flt)(CV(sel_lt)(c, CV(splat)(8u), CV(bits)(sub), n));
#else
    const CV(u_t) sub = CV(bits)(__builtin_convertvector((CV(i_t))c, CV(f_t)) * step);
    return CV(flt)(CV(sel_lt)(c, CV(splat)(8u), sub, n));
#endif
}

/* The codes of CW values x of a block whose encoding multiplier is q.
 * finite: the block has no infinity or NaN, so |y| is at most 1 + 2^-22
 * (x * q, q = 1 / amax rounded), which codes as 1 does: the clamp and the
 * NaN cases drop out (the same codes). */
static RMSFUSE_ALWAYS_INLINE CV(u_t) CV(q8_encode)(unsigned type, int nonneg, int finite, CV(f_t) x, float q)
{
    const CV(u_t) u = CV(bits)(x * q);
    CV(u_t) a = u & 0x7FFFFFFFu;
    const CV(u_t) inf = CV(splat)(0x7F800000u);
    if (!finite)
        a = CV(sel_gt)(a, inf, a, CV(sel_gt)(a, CV(splat)(0x3F800000u), CV(splat)(0x3F800000u), a)); /* |y| <= 1 */
    /* the sign of x (a NaN's sign is not kept: the NaN code has none) */
    const CV(u_t) xs = (CV(bits)(x) >> 24) & 0x80u;
    const CV(u_t) sign = nonneg ? CV(splat)(0u) : finite ? xs : CV(sel_gt)(a, inf, CV(splat)(0u), xs);
    if (finite && type == RMSFUSE_Q8)
        return sign | CV(q8_code_finite)(a, nonneg ? 31u : 15u);
    if (type == RMSFUSE_Q8)
        return sign | CV(q8_code)(a, nonneg ? 31u : 15u, nonneg ? 0xFFu : 0x7Fu);
    const CV(f_t) v = CV(flt)(a) * (nonneg ? 254.0f : 127.0f);
    const CV(u_t) c = CV(bits)(v + 0x1p23f) - 0x4B000000u; /* rne(v) for 0 <= v <= 254 */
    if (nonneg)
        return CV(sel_gt)(a, inf, CV(splat)(255u), c);
    return CV(sel_gt)(a, inf, CV(splat)(0x80u), CV(sel_eq)(sign, CV(splat)(0u), c, (0u - c) & 0xFFu));
}
/* The codes of the 4 CW values at src (of a block whose encoding
 * multiplier is q) into dst: q8_encode four times.  AVX2, a finite block:
 * the 32 codes narrowed by two instructions for each 16; the values are
 * read as lanes of 4 from src and src + 16 so that the narrowed bytes come
 * out in order without a permute across the 128-bit lanes (which AMD Zen 3
 * runs as three operations at one per two cycles).  The float-like map:
 * the signs, each lane's from its product (x q has the sign of x, q >= 0),
 * by the same narrowing of the products (saturating: a negative product or
 * -0 gives a negative byte), not each vector's own narrowing and sign.  The
 * linear map: rne(|x q| 127) (254 unsigned) by vcvtps2dq, which rounds a
 * non-negative value to an integer as adding 2^23 does (in every rounding
 * mode, the CPU's DAZ flag read the same way by both), given the product's
 * sign (vpsignd: its two's complement; 0 stays 0) and narrowed with
 * signed saturation (unsigned: without sign, unsigned saturation), which
 * codes of at most 127 (254) pass unchanged: the same bytes. */
static RMSFUSE_ALWAYS_INLINE void CV(q8_encode_x4)(unsigned type, int nonneg, int finite, const float *src, float q,
                                                   char *dst)
{
#if CW == 8 && defined(__AVX2__)
    if (finite) {
        const int lin = type == RMSFUSE_Q8_LINEAR;
        __m256i c[2], y[2];
        for (int h = 0; h < 2; h++) { /* two at a time: fewer live registers */
            __m256i ch[2], yh[2];
            for (int k = 0; k < 2; k++) {
                const float *const p = src + 8 * h + 4 * k;
                const __m256 x = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)), _mm_loadu_ps(p + 16), 1);
                CV(f_t) xv;
                memcpy(&xv, &x, sizeof xv);
                const CV(u_t) u = CV(bits)(xv * q);
                if (lin) {
                    const CV(f_t) v = CV(flt)(u & 0x7FFFFFFFu) * (nonneg ? 254.0f : 127.0f);
                    __m256 vm;
                    memcpy(&vm, &v, sizeof vm);
                    ch[k] = _mm256_cvtps_epi32(vm);
                    if (!nonneg) {
                        __m256i um;
                        memcpy(&um, &u, sizeof um);
                        ch[k] = _mm256_sign_epi32(ch[k], um);
                    }
                } else {
                    const CV(u_t) code = CV(q8_code_finite)(u & 0x7FFFFFFFu, nonneg ? 31u : 15u);
                    memcpy(&ch[k], &code, sizeof ch[k]);
                    memcpy(&yh[k], &u, sizeof yh[k]);
                }
            }
            if (lin && nonneg) {
                c[h] = _mm256_packus_epi32(ch[0], ch[1]);
            } else {
                c[h] = _mm256_packs_epi32(ch[0], ch[1]);
                if (!lin)
                    y[h] = _mm256_packs_epi32(yh[0], yh[1]);
            }
        }
        __m256i w;
        if (lin)
            w = nonneg ? _mm256_packus_epi16(c[0], c[1]) : _mm256_packs_epi16(c[0], c[1]);
        else {
            w = _mm256_packus_epi16(c[0], c[1]);
            if (!nonneg)
                w = _mm256_or_si256(w, _mm256_and_si256(_mm256_packs_epi16(y[0], y[1]), _mm256_set1_epi8((char)0x80)));
        }
        _mm256_storeu_si256((__m256i *)(void *)dst, w);
        return;
    }
#endif
    for (int k = 0; k < 4; k++)
        CV(st_u8)(dst + k * CW, CV(q8_encode)(type, nonneg, finite, CV(ld_f32)((const char *)(src + k * CW)), q));
}
/* CW values of the codes c of a block with this scale. */
static RMSFUSE_ALWAYS_INLINE CV(f_t) CV(q8_decode)(unsigned type, int nonneg, CV(u_t) c, float scale)
{
    if (type == RMSFUSE_Q8) {
        const CV(u_t) mag = nonneg ? c : c & 0x7Fu;
        const CV(u_t) sign = nonneg ? CV(splat)(0u) : (c & 0x80u) << 24;
        const CV(u_t) v = CV(sel_eq)(mag, CV(splat)(nonneg ? 0xFFu : 0x7Fu), CV(splat)(0x7FC00000u),
                                     CV(bits)(CV(q8_value)(mag, nonneg ? 31u : 15u)));
        return CV(flt)(v | sign) * scale;
    }
    const float f = scale * (nonneg ? 1.0f / 254.0f : 1.0f / 127.0f);
    if (nonneg) {
        const CV(f_t) x = __builtin_convertvector((CV(i_t))c, CV(f_t)) * f;
        return CV(flt)(CV(sel_eq)(c, CV(splat)(255u), CV(splat)(0x7FC00000u), CV(bits)(x)));
    }
    const CV(i_t) sc = ((CV(i_t))(c << 24)) >> 24; /* as int8 */
    const CV(f_t) x = __builtin_convertvector(sc, CV(f_t)) * f;
    return CV(flt)(CV(sel_eq)(c, CV(splat)(0x80u), CV(splat)(0x7FC00000u), CV(bits)(x)));
}

/* ---- whole elements ---------------------------------------------------------- */
/* CW float32 values of the CW elements of `type` at p (8-bit: codes of a
 * block with `scale`; not SPLIT_BF16). */
static RMSFUSE_ALWAYS_INLINE CV(f_t) CV(load)(unsigned type, int nonneg, const char *p, float scale)
{
    switch (type) {
    case RMSFUSE_BF16:
        return CV(flt)(CV(ld_hi16)(p));
    case RMSFUSE_F16:
        return CV(flt)(CV(f16_to)(CV(ld_u16)(p)));
    case RMSFUSE_Q8:
    case RMSFUSE_Q8_LINEAR:
        return CV(q8_decode)(type, nonneg, CV(ld_u8)(p), scale);
    default:
        return CV(ld_f32)(p);
    }
}
/* Stores CW float32 values x as `type` (F32, BF16 or F16) at p, rounded to
 * nearest even or, when sr, stochastically with element i0 first (the CW
 * elements in one 2^32 range: the block path's vectors lie in one block). */
static RMSFUSE_ALWAYS_INLINE void CV(store)(unsigned type, char *p, CV(f_t) x, int sr, uint64_t key, uint64_t i0)
{
    const uint64_t k2 = sr ? rmsfuse_sr_k2(key, i0) : 0u;
    switch (type) {
    case RMSFUSE_BF16:
        if (sr)
            CV(st_hi16)(p, CV(bf16_hi)(CV(bits)(x), 1, CV(sr_random_hi)(k2, i0, 1u)));
        else
            CV(st_bf16_rne)(p, CV(bits)(x));
        break;
    case RMSFUSE_F16:
        CV(st_u16)(p, sr ? CV(f16_of)(CV(bits)(x), 1, CV(sr_random)(k2, i0))
                         : CV(f16_of)(CV(bits)(x), 0, CV(splat)(0u)));
        break;
    default:
        CV(st_f32)(p, x);
        break;
    }
}

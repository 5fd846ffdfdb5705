/*
 * Storage types for one ISA (docs/math.md, "Storage types"): the
 * conversions between float32 and bf16, f16 and the 8-bit block codes, and
 * the typed run, which takes a tensor block by block through the rule's
 * float32 kernel.  Included once by src/isa/kernels.c, which compiles it
 * per ISA.
 *
 * Every conversion is written once, on 16 lanes of 32-bit integers with the
 * compiler's vector extension: the ISA's flags turn the operations into its
 * own instructions (one AVX-512 register, two AVX2, four SSE2 or NEON), and
 * each lane's integer operations are exact, so the bits are the same on
 * every ISA.  Hardware conversions are not used: AVX-512 BF16's
 * vcvtneps2bf16 reads subnormal inputs as zero, which this rule does not.
 *
 * A typed step goes through its tensor in blocks of RMSFUSE_Q8_BLOCK (256)
 * elements from the tensor's element 0: each array that is not float32 is
 * converted into a float32 buffer on the stack (1 KiB, in L1), the rule's
 * float32 kernel of the same ISA runs over the block (float32 arrays in
 * place, the others in their buffers), and what the kernel wrote is
 * converted back.  One pass over memory; the float32 values exist only for
 * the block.
 */
#ifndef RMSFUSE_ISA_STORAGE_H
#define RMSFUSE_ISA_STORAGE_H

/* The helpers below are inlined: the vector ABI of a call never arises. */
#pragma GCC diagnostic ignored "-Wpsabi"

#define SL 16 /* lanes */
typedef uint32_t su_t __attribute__((vector_size(SL * 4)));
typedef int32_t si_t __attribute__((vector_size(SL * 4)));
typedef float sf_t __attribute__((vector_size(SL * 4)));
typedef uint16_t sh_t __attribute__((vector_size(SL * 2)));
typedef uint8_t sb_t __attribute__((vector_size(SL)));
typedef int8_t sc_t __attribute__((vector_size(SL)));

#define QB RMSFUSE_Q8_BLOCK

/* where m is all ones: x, else y (m from a vector comparison) */
static RMSFUSE_ALWAYS_INLINE su_t sel(si_t m, su_t x, su_t y)
{
    return ((su_t)m & x) | (~(su_t)m & y);
}
static RMSFUSE_ALWAYS_INLINE su_t vmin_u(su_t a, su_t b)
{
    return sel(a < b, a, b);
}
static RMSFUSE_ALWAYS_INLINE su_t bits_of(sf_t x)
{
    su_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static RMSFUSE_ALWAYS_INLINE sf_t float_of(su_t u)
{
    sf_t x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* ---- lanes in and out: cnt <= SL elements at p (zeros beyond cnt) ---------- */
/* A whole vector is one fixed-size copy (one load or store); a shorter
 * tail goes through a copy of its own length. */
#define RMSFUSE_LANES_IN_(v, p, cnt, size)       \
    do {                                          \
        if ((cnt) == SL)                          \
            memcpy(&(v), (p), SL * (size));       \
        else                                      \
            memcpy(&(v), (p), (cnt) * (size));    \
    } while (0)
static RMSFUSE_ALWAYS_INLINE sf_t ld_f32(const char *p, size_t cnt)
{
    sf_t x = {0};
    RMSFUSE_LANES_IN_(x, p, cnt, 4);
    return x;
}
static RMSFUSE_ALWAYS_INLINE void st_f32(char *p, sf_t x, size_t cnt)
{
    if (cnt == SL)
        memcpy(p, &x, SL * 4);
    else
        memcpy(p, &x, cnt * 4);
}
static RMSFUSE_ALWAYS_INLINE su_t ld_u16(const char *p, size_t cnt)
{
    sh_t h = {0};
    RMSFUSE_LANES_IN_(h, p, cnt, 2);
    return __builtin_convertvector(h, su_t);
}
static RMSFUSE_ALWAYS_INLINE void st_u16(char *p, su_t u, size_t cnt)
{
    const sh_t h = __builtin_convertvector(u, sh_t);
    if (cnt == SL)
        memcpy(p, &h, SL * 2);
    else
        memcpy(p, &h, cnt * 2);
}
static RMSFUSE_ALWAYS_INLINE su_t ld_u8(const char *p, size_t cnt)
{
    sb_t b = {0};
    RMSFUSE_LANES_IN_(b, p, cnt, 1);
    return __builtin_convertvector(b, su_t);
}
static RMSFUSE_ALWAYS_INLINE void st_u8(char *p, su_t u, size_t cnt)
{
    const sb_t b = __builtin_convertvector(u, sb_t);
    if (cnt == SL)
        memcpy(p, &b, SL);
    else
        memcpy(p, &b, cnt);
}

/* ---- stochastic rounding's random numbers (docs/math.md) ------------------- */
static inline uint64_t sr_mix64(uint64_t z)
{
    z += UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}
static RMSFUSE_ALWAYS_INLINE su_t sr_mix32(su_t x)
{
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16);
}
/* r(i) for the SL elements from index i (i, ..., i + SL - 1 in one 2^32 range). */
static RMSFUSE_ALWAYS_INLINE su_t sr_random(uint64_t key, uint64_t i)
{
    const uint64_t k2 = sr_mix64(key ^ (i >> 32));
    su_t idx;
    for (unsigned l = 0; l < SL; l++)
        idx[l] = (uint32_t)i + l;
    return sr_mix32(sr_mix32(idx ^ (uint32_t)k2) ^ (uint32_t)(k2 >> 32));
}

/* ---- bf16 ------------------------------------------------------------------- */
static RMSFUSE_ALWAYS_INLINE su_t bf16_of(su_t u, int sr, su_t r)
{
    const su_t b = sr ? r >> 16 : 0x7FFFu + ((u >> 16) & 1u);
    return sel((u & 0x7FFFFFFFu) > 0x7F800000u, (u >> 16) | 0x40u, (u + b) >> 16);
}

/* ---- round to nearest even (or stochastically) of m / 2^sh, sh >= 1 -------- */
static RMSFUSE_ALWAYS_INLINE su_t round_shift(su_t m, su_t sh, int sr, su_t r)
{
    su_t t = vmin_u(sh, (su_t){0} + 31u);
    t = sel(t < 1u, (su_t){0} + 1u, t);
    const su_t m2 = m >> vmin_u(sh - t, (su_t){0} + 31u);
    const su_t one = (su_t){0} + 1u;
    const su_t b = sr ? r & ((one << t) - 1u) : (one << (t - 1u)) - 1u + ((m2 >> t) & 1u);
    return (m2 + b) >> t;
}

/* ---- f16 -------------------------------------------------------------------- */
static RMSFUSE_ALWAYS_INLINE su_t f16_of(su_t u, int sr, su_t r)
{
    const su_t S = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu, e = a >> 23;
    const su_t bn = sr ? r & 0x1FFFu : 0xFFFu + ((a >> 13) & 1u);
    const su_t hn = (a - 0x38000000u + bn) >> 13;
    const su_t e1 = e + ((su_t)(e == 0u) & 1u);
    const su_t m = (a & 0x7FFFFFu) | ((su_t)(e != 0u) & 0x800000u);
    const su_t hs = round_shift(m, 126u - e1, sr, r);
    su_t h = sel(e >= 113u, hn, hs);
    h = sel(a >= 0x47800000u, (su_t){0} + 0x7C00u, h);
    h = sel(a > 0x7F800000u, 0x7E00u | ((a >> 13) & 0x3FFu), h);
    return S | h;
}
static RMSFUSE_ALWAYS_INLINE su_t f16_to(su_t h)
{
    const su_t S = (h & 0x8000u) << 16, E = (h >> 10) & 31u, M = h & 0x3FFu;
    const su_t sub = bits_of(__builtin_convertvector((si_t)M, sf_t) * 0x1p-24f);
    su_t u = sel(E == 0u, sub, ((E + 112u) << 23) | (M << 13));
    u = sel(E == 31u, 0x7F800000u | (M << 13), u);
    return S | u;
}

/* ---- the 8-bit maps ---------------------------------------------------------- */
/* The float-like code of |y| (|y| <= 1 or NaN), exponent bias B, 3 fraction
 * bits; NaN gives `nan`. */
static RMSFUSE_ALWAYS_INLINE su_t q8_code(su_t a, unsigned B, unsigned nan)
{
    const su_t e = a >> 23;
    const su_t cn = ((a + 0x7FFFFu + ((a >> 20) & 1u)) >> 20) - ((127u - B) << 3);
    const su_t e1 = e + ((su_t)(e == 0u) & 1u);
    const su_t m = (a & 0x7FFFFFu) | ((su_t)(e != 0u) & 0x800000u);
    const su_t cs = round_shift(m, (148u - B) - e1, 0, (su_t){0});
    const su_t c = sel(e >= 128u - B, cn, cs);
    return sel(a > 0x7F800000u, (su_t){0} + nan, c);
}
static RMSFUSE_ALWAYS_INLINE sf_t q8_value(su_t c, unsigned B)
{
    const su_t E = c >> 3, M = c & 7u;
    const su_t sub = bits_of(__builtin_convertvector((si_t)M, sf_t) * float_of((su_t){0} + ((125u - B) << 23)));
    return float_of(sel(E == 0u, sub, ((E + 127u - B) << 23) | (M << 20)));
}

/* One block's scale and the multiplier of its encoding (docs/math.md). */
static void q8_scale(const float *x, size_t m, float *scale, float *q)
{
    sf_t acc = {0};
    size_t i = 0;
    for (; i + SL <= m; i += SL) {
        const sf_t v = float_of(bits_of(ld_f32((const char *)(x + i), SL)) & 0x7FFFFFFFu);
        acc = float_of(sel(v > acc, bits_of(v), bits_of(acc)));
    }
    if (i < m) {
        const sf_t v = float_of(bits_of(ld_f32((const char *)(x + i), m - i)) & 0x7FFFFFFFu);
        acc = float_of(sel(v > acc, bits_of(v), bits_of(acc)));
    }
    float amax = 0.0f;
    for (unsigned l = 0; l < SL; l++)
        amax = acc[l] > amax ? acc[l] : amax;
    *scale = amax >= FLT_MIN ? amax : 0.0f;
    *q = amax >= FLT_MIN ? 1.0f / amax : 0.0f;
}

/* Codes of SL values x of a block with multiplier q. */
static RMSFUSE_ALWAYS_INLINE su_t q8_encode(unsigned type, int nonneg, sf_t x, float q)
{
    const sf_t y = x * q;
    const su_t u = bits_of(y);
    su_t a = u & 0x7FFFFFFFu;
    a = sel((a > 0x3F800000u) & (a <= 0x7F800000u), (su_t){0} + 0x3F800000u, a); /* |y| <= 1 */
    const su_t sign = nonneg ? (su_t){0} : (u >> 24) & 0x80u;
    if (type == RMSFUSE_Q8)
        return sign | q8_code(a, nonneg ? 31u : 15u, nonneg ? 0xFFu : 0x7Fu);
    const sf_t v = float_of(a) * (nonneg ? 254.0f : 127.0f);
    const su_t c = bits_of(v + 0x1p23f) - bits_of((sf_t){0} + 0x1p23f); /* rne(v), 0 <= v <= 254 */
    if (nonneg)
        return sel(a > 0x7F800000u, (su_t){0} + 255u, c);
    return sel(a > 0x7F800000u, (su_t){0} + 0x80u, sel(sign != 0u, (0u - c) & 0xFFu, c));
}
static RMSFUSE_ALWAYS_INLINE sf_t q8_decode(unsigned type, int nonneg, su_t c, float scale)
{
    if (type == RMSFUSE_Q8) {
        const unsigned B = nonneg ? 31u : 15u;
        const su_t mag = nonneg ? c : c & 0x7Fu;
        const su_t sign = nonneg ? (su_t){0} : (c & 0x80u) << 24;
        const su_t v = sel(mag == (nonneg ? 0xFFu : 0x7Fu), (su_t){0} + 0x7FC00000u, bits_of(q8_value(mag, B)));
        return float_of(v | sign) * scale;
    }
    const float f = scale * (nonneg ? 1.0f / 254.0f : 1.0f / 127.0f);
    if (nonneg) {
        const sf_t x = __builtin_convertvector((si_t)c, sf_t) * f;
        return float_of(sel(c == 255u, (su_t){0} + 0x7FC00000u, bits_of(x)));
    }
    const si_t sc = ((si_t)(c << 24)) >> 24; /* int8 */
    const sf_t x = __builtin_convertvector(sc, sf_t) * f;
    return float_of(sel(c == 0x80u, (su_t){0} + 0x7FC00000u, bits_of(x)));
}

/* ---- blocks of at most QB elements ------------------------------------------ */
/* n elements at src of `type` into float32 dst (8-bit: one block, its scale). */
static void dec_block(unsigned type, int nonneg, const char *src, float scale, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i += SL) {
        const size_t c = n - i < SL ? n - i : SL;
        sf_t x;
        switch (type) {
        case RMSFUSE_BF16:
            x = float_of(ld_u16(src + 2 * i, c) << 16);
            break;
        case RMSFUSE_F16:
            x = float_of(f16_to(ld_u16(src + 2 * i, c)));
            break;
        case RMSFUSE_Q8:
        case RMSFUSE_Q8_LINEAR:
            x = q8_decode(type, nonneg, ld_u8(src + i, c), scale);
            break;
        default:
            x = ld_f32(src + 4 * i, c);
            break;
        }
        st_f32((char *)(dst + i), x, c);
    }
}

/* n float32 at src into dst of `type` (8-bit: one block, its scale into
 * *scale); stochastic rounding (bf16, f16) when sr, element 0 being index i0. */
static void enc_block(unsigned type, int nonneg, const float *src, char *dst, char *scale, size_t n, int sr,
                      uint64_t key, uint64_t i0)
{
    float s = 0.0f, q = 0.0f;
    if (rmsfuse_type_is_q8(type)) {
        q8_scale(src, n, &s, &q);
        memcpy(scale, &s, sizeof s);
    }
    for (size_t i = 0; i < n; i += SL) {
        const size_t c = n - i < SL ? n - i : SL;
        const sf_t x = ld_f32((const char *)(src + i), c);
        const su_t r = sr ? sr_random(key, i0 + i) : (su_t){0};
        switch (type) {
        case RMSFUSE_BF16:
            st_u16(dst + 2 * i, sr ? bf16_of(bits_of(x), 1, r) : bf16_of(bits_of(x), 0, r), c);
            break;
        case RMSFUSE_F16:
            st_u16(dst + 2 * i, sr ? f16_of(bits_of(x), 1, r) : f16_of(bits_of(x), 0, r), c);
            break;
        case RMSFUSE_Q8:
        case RMSFUSE_Q8_LINEAR:
            st_u8(dst + i, q8_encode(type, nonneg, x, q), c);
            break;
        default:
            st_f32(dst + 4 * i, x, c);
            break;
        }
    }
}

/* ---- the storage operations of this ISA --------------------------------------- */

static void typed_from_f32(unsigned type, int nonneg, const float *src, char *dst, char *scale, size_t n)
{
    const size_t bytes = rmsfuse_type_bytes(type);
    for (size_t b = 0; b < n; b += QB) {
        const size_t m = n - b < QB ? n - b : QB;
        enc_block(type, nonneg, src + b, dst + b * bytes, scale ? scale + b / QB * 4 : NULL, m, 0, 0, 0);
    }
}

static void typed_to_f32(unsigned type, int nonneg, const char *src, const char *scale, float *dst, size_t n)
{
    const size_t bytes = rmsfuse_type_bytes(type);
    for (size_t b = 0; b < n; b += QB) {
        const size_t m = n - b < QB ? n - b : QB;
        float s = 0.0f;
        if (rmsfuse_type_is_q8(type))
            memcpy(&s, scale + b / QB * 4, sizeof s);
        dec_block(type, nonneg, src + b * bytes, s, dst + b, m);
    }
}

static double block_sumsq(const char *g, size_t n, float s);

static double typed_block_sumsq(unsigned type, const char *g, size_t n, float s)
{
    if (type == RMSFUSE_F32)
        return block_sumsq(g, n, s);
    float buf[RMSFUSE_NORM_BLOCK] __attribute__((aligned(64)));
    typed_to_f32(type, 0, g, NULL, buf, n);
    return block_sumsq((const char *)buf, n, s);
}

/* Elements [i0, i0 + m) (one block: i0 % QB == 0, or the range's first
 * piece) of a typed tensor. */
static void typed_block(rmsfuse_kernel kernel, const void *k, unsigned variant, const rmsfuse_typed_job *J,
                        size_t i0, size_t m)
{
    float buf[RMSFUSE_MAX_SLOTS][QB] __attribute__((aligned(64)));
    char *b[RMSFUSE_MAX_SLOTS];
    const int master = (J->flags & RMSFUSE_MASTER_WEIGHTS) != 0;
    const int sr = (J->flags & RMSFUSE_STOCHASTIC_ROUNDING) != 0;
    for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++) {
        b[s] = NULL;
        if (!(J->used & (1u << s)))
            continue;
        const unsigned t = J->type[s];
        char *p = J->a[s] + i0 * rmsfuse_type_bytes(t);
        if (s == RMSFUSE_SLOT_PARAM && master) {
            b[s] = J->extra + i0 * 4;
        } else if (t == RMSFUSE_F32) {
            b[s] = p;
        } else if (s == RMSFUSE_SLOT_PARAM && t == RMSFUSE_SPLIT_BF16) {
            for (size_t i = 0; i < m; i += SL) {
                const size_t c = m - i < SL ? m - i : SL;
                const su_t u = (ld_u16(p + 2 * i, c) << 16) | ld_u16(J->extra + (i0 + i) * 2, c);
                st_f32((char *)(buf[s] + i), float_of(u), c);
            }
            b[s] = (char *)buf[s];
        } else {
            float sc = 0.0f;
            if (rmsfuse_type_is_q8(t))
                memcpy(&sc, J->scale[s] + i0 / QB * 4, sizeof sc);
            dec_block(t, (J->nonneg >> s) & 1u, p, sc, buf[s], m);
            b[s] = (char *)buf[s];
        }
    }
    kernel(k, variant, b, m);
    for (unsigned s = 0; s < RMSFUSE_MAX_SLOTS; s++) {
        if (!(J->used & (1u << s)) || s == RMSFUSE_SLOT_GRAD)
            continue;
        const unsigned t = J->type[s];
        char *p = J->a[s] + i0 * rmsfuse_type_bytes(t);
        if (s == RMSFUSE_SLOT_PARAM && t == RMSFUSE_SPLIT_BF16) {
            for (size_t i = 0; i < m; i += SL) {
                const size_t c = m - i < SL ? m - i : SL;
                const su_t u = bits_of(ld_f32((const char *)(buf[s] + i), c));
                st_u16(p + 2 * i, u >> 16, c);
                st_u16(J->extra + (i0 + i) * 2, u & 0xFFFFu, c);
            }
        } else if (s == RMSFUSE_SLOT_PARAM && t != RMSFUSE_F32) {
            enc_block(t, 0, (const float *)b[s], p, NULL, m, sr, J->key, i0);
        } else if (t != RMSFUSE_F32) {
            enc_block(t, (J->nonneg >> s) & 1u, buf[s], p, rmsfuse_type_is_q8(t) ? J->scale[s] + i0 / QB * 4 : NULL,
                      m, 0, 0, 0);
        }
    }
}

static void typed_run(rmsfuse_kernel kernel, const void *k, unsigned variant, const rmsfuse_typed_job *J,
                      size_t begin, size_t end)
{
    size_t i = begin;
    while (i < end) {
        const size_t next = (i / QB + 1) * QB; /* blocks from the tensor's element 0 */
        const size_t m = (next < end ? next : end) - i;
        typed_block(kernel, k, variant, J, i, m);
        i += m;
    }
}

static const rmsfuse_storage_ops storage_ops = {typed_run, typed_block_sumsq, typed_from_f32, typed_to_f32};

#undef SL
#undef QB
#endif /* RMSFUSE_ISA_STORAGE_H */

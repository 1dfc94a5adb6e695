/* layerdiff/dtype.h — the element types probes and checkpoints carry (f32, bf16, f16) and exact
 * conversions between them. Widening to f32 is exact for every bit pattern; narrowing rounds to
 * nearest-even, keeps NaN a NaN (quiet) and overflows to infinity, as hardware does. */
#ifndef LAYERDIFF_DTYPE_H
#define LAYERDIFF_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ld_dtype { LD_F32 = 0, LD_BF16 = 1, LD_F16 = 2 } ld_dtype;

/* "f32", "bf16", "f16". */
const char *ld_dtype_name(ld_dtype t);
/* Accepts "f32", "bf16", "f16" (and the safetensors spellings "F32", "BF16", "F16"). */
bool ld_dtype_parse(const char *s, ld_dtype *out);
/* Bytes per element: 4, 2, 2. */
size_t ld_dtype_size(ld_dtype t);

static inline uint32_t ld_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float ld_f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* bf16 is the top half of an f32: widening is a shift. */
static inline float ld_bf16_to_f32(uint16_t h) { return ld_f32_from_bits((uint32_t)h << 16); }

/* Round to nearest even; NaN stays NaN (quiet bit set), +-Inf stays +-Inf. */
static inline uint16_t ld_f32_to_bf16(float f)
{
    uint32_t u = ld_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep sign and top payload, force quiet */
        return (uint16_t)((u >> 16) | 0x0040u);
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb;
    return (uint16_t)(u >> 16);
}

/* IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Exact for all 65,536 patterns. */
static inline float ld_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1fu) { /* Inf or NaN */
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) { /* normal */
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) { /* signed zero */
        bits = sign;
    } else { /* subnormal: value = man * 2^-24; normalize into an f32 normal */
        uint32_t e = 113u; /* exponent field for 2^-14 */
        while ((man & 0x400u) == 0) {
            man <<= 1;
            e--;
        }
        man &= 0x3ffu;
        bits = sign | (e << 23) | (man << 13);
    }
    return ld_f32_from_bits(bits);
}

/* Round to nearest even, with subnormals and overflow to infinity; NaN stays a quiet NaN. */
static inline uint16_t ld_f32_to_f16(float f)
{
    uint32_t u = ld_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) /* NaN */
        return (uint16_t)(sign | 0x7e00u | ((absu >> 13) & 0x3ffu));
    if (absu >= 0x47800000u) /* >= 65536: Inf (also rounds 65520..65535.99 below) */
        return (uint16_t)(sign | 0x7c00u);
    if (absu >= 0x38800000u) { /* normal f16 range: >= 2^-14 */
        uint32_t mant = absu & 0x7fffffu;
        uint32_t exp = (absu >> 23) - 112u;
        uint32_t h = (exp << 10) | (mant >> 13);
        uint32_t rest = mant & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
            h++; /* carries into the exponent correctly, up to Inf */
        return (uint16_t)(sign | h);
    }
    if (absu < 0x33000000u) /* < 2^-25: rounds to zero (exactly 2^-25 is a tie to even 0) */
        return sign;
    /* subnormal f16: value = m * 2^-24 with m in [1, 1023] */
    uint32_t exp = absu >> 23;              /* 102..112 */
    uint32_t mant = (absu & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - exp;            /* 14..24 */
    uint32_t h = mant >> shift;
    uint32_t rest = mant & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

/* Widen element i of a buffer of type t to f32. */
static inline float ld_load_f32(const void *base, ld_dtype t, size_t i)
{
    switch (t) {
    case LD_BF16: {
        uint16_t h;
        memcpy(&h, (const unsigned char *)base + 2 * i, 2);
        return ld_bf16_to_f32(h);
    }
    case LD_F16: {
        uint16_t h;
        memcpy(&h, (const unsigned char *)base + 2 * i, 2);
        return ld_f16_to_f32(h);
    }
    default: {
        float f;
        memcpy(&f, (const unsigned char *)base + 4 * i, 4);
        return f;
    }
    }
}

/* Round an f32 value to the precision of t and back (identity for f32). */
static inline float ld_round_to(float f, ld_dtype t)
{
    if (t == LD_BF16)
        return ld_bf16_to_f32(ld_f32_to_bf16(f));
    if (t == LD_F16)
        return ld_f16_to_f32(ld_f32_to_f16(f));
    return f;
}

#ifdef __cplusplus
}
#endif
#endif

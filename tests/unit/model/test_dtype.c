/* test_dtype.c — the conversions of layerdiff/dtype.h against independent computations:
 * bf16 and f16 widening over all 65,536 bit patterns (value from the fields with ldexp), and
 * narrowing from f32 (round to nearest even, subnormals, overflow to infinity, NaN kept) over a
 * dense sweep of f32 bit patterns plus hand-picked edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "model_test_util.h"

/* Value of a binary format with ebits exponent bits and mbits mantissa bits, from its fields. */
static double decode(uint32_t bits, int ebits, int mbits)
{
    uint32_t sign = bits >> (ebits + mbits);
    uint32_t e = (bits >> mbits) & ((1u << ebits) - 1);
    uint32_t m = bits & ((1u << mbits) - 1);
    int bias = (1 << (ebits - 1)) - 1;
    double v;
    if (e == (1u << ebits) - 1)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, 1 - bias - mbits);
    else
        v = ldexp((double)(m | (1u << mbits)), (int)e - bias - mbits);
    return sign ? -v : v;
}

static void test_bf16_widening_all(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        double want = decode(h, 8, 7);
        float got = ld_bf16_to_f32((uint16_t)h);
        if (isnan(want)) {
            assert_true(isnan(got));
            assert_int_equal(ld_f32_bits(got), h << 16); /* payload and sign kept */
        } else {
            if ((double)got != want)
                fail_msg("bf16 0x%04x: got %.9g, want %.9g", h, (double)got, want);
            assert_int_equal(signbit(got) != 0, (h >> 15) != 0);
        }
        /* narrowing back is the identity on every non-NaN pattern */
        if (!isnan(want)) assert_int_equal(ld_f32_to_bf16(got), h);
    }
}

static void test_f16_widening_all(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        double want = decode(h, 5, 10);
        float got = ld_f16_to_f32((uint16_t)h);
        if (isnan(want)) {
            assert_true(isnan(got));
            assert_int_equal(signbit(got) != 0, (h >> 15) != 0);
            /* payload kept in the top mantissa bits */
            assert_int_equal((ld_f32_bits(got) >> 13) & 0x3ff, h & 0x3ff);
        } else {
            if ((double)got != want)
                fail_msg("f16 0x%04x: got %.9g, want %.9g", h, (double)got, want);
            assert_int_equal(signbit(got) != 0, (h >> 15) != 0);
            assert_int_equal(ld_f32_to_f16(got), h);
        }
    }
}

/* Nearest representable value of the format, ties to the even mantissa, overflow to infinity;
 * computed in double from the format's parameters. Returns the bit pattern. */
static uint32_t round_ref(float f, int ebits, int mbits)
{
    uint32_t sign = signbit(f) ? 1u << (ebits + mbits) : 0;
    double x = fabs((double)f);
    int bias = (1 << (ebits - 1)) - 1;
    uint32_t inf = ((1u << ebits) - 1) << mbits;
    if (isinf(x)) return sign | inf;
    int emin = 1 - bias;
    int e;
    frexp(x, &e); /* x = m * 2^e, m in [0.5, 1) */
    e -= 1;       /* x in [2^e, 2^(e+1)) */
    if (x == 0 || e < emin) e = emin;
    double quantum = ldexp(1.0, e - mbits);
    double q = x / quantum; /* exact: a power-of-two scaling */
    double r = floor(q);
    double frac = q - r;
    if (frac > 0.5 || (frac == 0.5 && fmod(r, 2.0) == 1.0)) r += 1;
    /* r * quantum is the rounded magnitude; rebuild the fields */
    double v = r * quantum;
    if (v >= ldexp(1.0, bias + 1)) return sign | inf;
    if (v == 0) return sign;
    int ve;
    frexp(v, &ve);
    ve -= 1;
    if (ve < emin) /* subnormal */
        return sign | (uint32_t)(v / ldexp(1.0, emin - mbits));
    uint32_t mant = (uint32_t)(v / ldexp(1.0, ve - mbits)) - (1u << mbits);
    return sign | (uint32_t)(ve + bias) << mbits | mant;
}

static void check_narrowing(uint32_t u)
{
    float f = ld_f32_from_bits(u);
    uint16_t b = ld_f32_to_bf16(f), h = ld_f32_to_f16(f);
    if (isnan(f)) {
        assert_true(isnan(ld_bf16_to_f32(b)));
        assert_true(isnan(ld_f16_to_f32(h)));
        assert_int_equal(b >> 15, u >> 31);
        assert_int_equal(h >> 15, u >> 31);
        return;
    }
    uint32_t wb = round_ref(f, 8, 7), wh = round_ref(f, 5, 10);
    if (b != wb) fail_msg("f32 0x%08x -> bf16: got 0x%04x, want 0x%04x", u, b, wb);
    if (h != wh) fail_msg("f32 0x%08x -> f16: got 0x%04x, want 0x%04x", u, h, wh);
}

static void test_narrowing_sweep(void **state)
{
    (void)state;
    /* every 1021st f32 pattern (all exponents, varied low bits) ... */
    for (uint64_t u = 0; u <= 0xffffffffu; u += 1021)
        check_narrowing((uint32_t)u);
    /* ... and every pattern of the f16 subnormal-to-normal range and around f16's overflow */
    for (uint32_t u = 0x33000000u - 64; u <= 0x38800000u + 0x2000u; u++)
        check_narrowing(u);
    for (uint32_t u = 0x477fe000u - 0x4000u; u <= 0x47800000u + 16; u++)
        check_narrowing(u);
}

static void test_narrowing_cases(void **state)
{
    (void)state;
    /* bf16 ties to even */
    assert_int_equal(ld_f32_to_bf16(ld_f32_from_bits(0x3f808000u)),
                     0x3f80); /* 1 + 2^-8: even down */
    assert_int_equal(ld_f32_to_bf16(ld_f32_from_bits(0x3f818000u)), 0x3f82); /* odd: up */
    assert_int_equal(ld_f32_to_bf16(ld_f32_from_bits(0x3f808001u)), 0x3f81); /* above the tie */
    assert_int_equal(ld_f32_to_bf16(ld_f32_from_bits(0x3f807fffu)), 0x3f80); /* below the tie */
    /* bf16 subnormals */
    assert_int_equal(ld_f32_to_bf16(ld_f32_from_bits(0x00008000u)), 0x0000);
    assert_int_equal(ld_f32_to_bf16(ld_f32_from_bits(0x00018000u)), 0x0002);
    assert_int_equal(ld_f32_to_bf16(ld_f32_from_bits(0x80010000u)), 0x8001);
    /* bf16 overflow: FLT_MAX rounds up to infinity; just below stays finite */
    assert_int_equal(ld_f32_to_bf16(ld_f32_from_bits(0x7f7fffffu)), 0x7f80);
    assert_int_equal(ld_f32_to_bf16(ld_f32_from_bits(0x7f7f7fffu)), 0x7f7f);
    assert_int_equal(ld_f32_to_bf16(-INFINITY), 0xff80);
    /* bf16 NaN stays NaN, even a signaling NaN whose payload sits in the dropped bits */
    assert_int_equal(ld_f32_to_bf16(ld_f32_from_bits(0x7fc00000u)), 0x7fc0);
    uint16_t s = ld_f32_to_bf16(ld_f32_from_bits(0x7f800001u));
    assert_true((s & 0x7f80) == 0x7f80 && (s & 0x7f) != 0);
    s = ld_f32_to_bf16(ld_f32_from_bits(0xffffffffu));
    assert_true((s & 0x7f80) == 0x7f80 && (s & 0x7f) != 0 && (s >> 15));

    /* f16 ties to even, subnormals, overflow */
    assert_int_equal(ld_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(ld_f32_to_f16(ld_f32_from_bits(0x3f801000u)), 0x3c00); /* 1 + 2^-11: even */
    assert_int_equal(ld_f32_to_f16(ld_f32_from_bits(0x3f803000u)), 0x3c02); /* 1 + 3*2^-11: up */
    assert_int_equal(ld_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(ld_f32_to_f16(65519.99f), 0x7bff);
    assert_int_equal(ld_f32_to_f16(65520.0f), 0x7c00); /* the tie above the largest: even is Inf */
    assert_int_equal(ld_f32_to_f16(-1e10f), 0xfc00);
    assert_int_equal(ld_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);    /* smallest subnormal */
    assert_int_equal(ld_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);    /* tie: even is 0 */
    assert_int_equal(ld_f32_to_f16(ldexpf(1.5f, -25)), 0x0001);    /* above the tie */
    assert_int_equal(ld_f32_to_f16(ldexpf(3.0f, -25)), 0x0002);    /* 1.5 quanta: tie to even 2 */
    assert_int_equal(ld_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400); /* rounds into the normals */
    assert_int_equal(ld_f32_to_f16(-ldexpf(1.0f, -14)), 0x8400);   /* smallest normal */
    assert_int_equal(ld_f32_to_f16(-0.0f), 0x8000);
    uint16_t n = ld_f32_to_f16(ld_f32_from_bits(0x7f800001u)); /* payload only in dropped bits */
    assert_true((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0);
    n = ld_f32_to_f16(ld_f32_from_bits(0xffc00000u));
    assert_int_equal(n, 0xfe00);

    /* ld_round_to and ld_load_f32 */
    assert_true(ld_round_to(1.00390625f, LD_BF16) == 1.0f);
    assert_true(ld_round_to(1.00390625f, LD_F32) == 1.00390625f);
    assert_true(ld_round_to(1.00390625f, LD_F16) == 1.00390625f);
    unsigned char buf[8] = {0x80, 0x3f, 0x00, 0x3c, 0, 0, 0, 0};
    assert_true(ld_load_f32(buf, LD_BF16, 0) == 1.0f);
    assert_true(ld_load_f32(buf, LD_F16, 1) == 1.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_widening_all),
        cmocka_unit_test(test_f16_widening_all),
        cmocka_unit_test(test_narrowing_sweep),
        cmocka_unit_test(test_narrowing_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_probes_numfmt.c — the probe records' number spelling (common/fmt_double.h): the integer
 * fast path against the snprintf/strtod loop that defines the format, on a few million doubles
 * per run (random bit patterns, floats widened to double, the neighbours of powers of two and
 * ten, of the 15/16/17-digit boundaries and of decimal ties, integers, subnormals, the extremes),
 * plus spellings written out by hand; and the writer's integers. Each family also bounds how
 * often the fast path gives up, so a fast path that always falls back fails here too. */
#include <fenv.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "fmt_double.h"
#include "json_out.h"

/* Under ASan+UBSan the fast path runs several times slower: a quarter of the values, still
 * hundreds of thousands per family. */
#if defined(__SANITIZE_ADDRESS__)
#define SCALE 4
#else
#define SCALE 1
#endif

typedef struct tally {
    const char *family;
    unsigned long n, fallback;
} tally;

static uint64_t rng_state = 0x243f6a8885a308d3u;
static uint64_t rnd(void) /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

static double from_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* Checks one finite value: the fast path, when it answers, and the combined function give the
 * slow path's bytes. */
static void check(tally *t, double v)
{
    if (!isfinite(v))
        return;
    char slow[LD_FMT_DOUBLE_MAX], fast[LD_FMT_DOUBLE_MAX], both[LD_FMT_DOUBLE_MAX];
    size_t ns = ld_fmt_double_exact_slow(v, slow, (locale_t)0);
    size_t nf = ld_fmt_double_exact_fast(v, fast);
    t->n++;
    if (nf == 0) {
        t->fallback++;
    } else if (nf != ns || memcmp(fast, slow, ns + 1) != 0) {
        fail_msg("%s: %a: fast path \"%s\", snprintf/strtod \"%s\"", t->family, v, fast, slow);
    }
    if (t->n % 8 != 0 && nf != 0)
        return; /* the combined function: on every fallback and every 8th value */
    size_t nb = ld_fmt_double_exact(v, both, (locale_t)0);
    if (nb != ns || memcmp(both, slow, ns + 1) != 0)
        fail_msg("%s: %a: ld_fmt_double_exact \"%s\", snprintf/strtod \"%s\"", t->family, v,
                 both, slow);
}

/* v and its neighbours 1..3 steps away on either side, and the same for -v. */
static void check_around(tally *t, double v)
{
    for (int sign = 0; sign < 2; sign++) {
        double c = sign ? -v : v, up = c, down = c;
        check(t, c);
        for (int i = 0; i < 3; i++) {
            up = nextafter(up, INFINITY);
            down = nextafter(down, -INFINITY);
            check(t, up);
            check(t, down);
        }
    }
}

/* Prints the family's fallback rate and fails when it is above max_percent. */
static void report(const tally *t, double max_percent)
{
    double pct = t->n ? 100.0 * (double)t->fallback / (double)t->n : 100.0;
    printf("%-34s %9lu values, %7lu to the slow path (%.4f%%)\n", t->family, t->n, t->fallback,
           pct);
    assert_true(t->n > 0);
    if (pct > max_percent)
        fail_msg("%s: the fast path gave up on %.4f%% of the values (more than %.2f%%)", t->family,
                 pct, max_percent);
}

static void test_hand_written(void **state)
{
    (void)state;
    /* The expected spellings were printed by glibc's printf with the loop of fmt_double.h's
     * definition ("%.15g", "%.16g", "%.17g" until strtod reads v back), and pasted here. */
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {1.0 / 3.0, "0.3333333333333333"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1e16, "1e+16"},
        {1e15, "1e+15"},
        {123456789012345678.0, "1.2345678901234568e+17"},
        {1e-5, "1e-05"},
        {1e-4, "0.0001"},
        {0.0001234, "0.0001234"},
        {0.000099999999999999991, "9.999999999999999e-05"},
        {999999999999999.9, "999999999999999.9"},
        {5e-324, "4.94065645841247e-324"},
        {1e-320, "9.99988867182683e-321"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {DBL_MIN, "2.2250738585072014e-308"},
        {0x0.fffffffffffffp-1022, "2.225073858507201e-308"}, /* the largest subnormal */
        {-0.0, "-0"},
        {0.0, "0"},
        {100.0, "100"},
        {123456.789, "123456.789"},
        {9007199254740993.0, "9007199254740992"},
        {12345678901234567890.0, "1.2345678901234567e+19"},
        {1e100, "1e+100"},
        {-1.7e-300, "-1.7e-300"},
        {(double)0.1f, "0.10000000149011612"},
        {-(double)3.4028235e38f, "-3.4028234663852886e+38"},
        /* floats whose exact value ends in a 5 just past the digits printed: printf rounds the
         * tie to even (...062 and ...312, not ...063 and ...313) */
        {(double)584.53863525390625f, "584.5386352539062"},
        {(double)-107.692657470703125f, "-107.69265747070312"},
        {(double)-3226.019287109375f, "-3226.019287109375"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[LD_FMT_DOUBLE_MAX];
        size_t n = ld_fmt_double_exact(cases[i].v, got, (locale_t)0);
        if (n != strlen(cases[i].text) || strcmp(got, cases[i].text) != 0)
            fail_msg("%a: \"%s\", expected \"%s\"", cases[i].v, got, cases[i].text);
        ld_fmt_double_exact_slow(cases[i].v, got, (locale_t)0);
        assert_string_equal(got, cases[i].text);
        if (ld_fmt_double_exact_fast(cases[i].v, got) != 0)
            assert_string_equal(got, cases[i].text);
    }
    /* The JSON writer uses it, and spells the non-finite values as strings. */
    ld_buf b = {0};
    ld_json_put_double(&b, 0.1 + 0.2, LD_JSON_NUM_EXACT, (locale_t)0);
    ld_buf_putc(&b, ',');
    ld_json_put_double(&b, -INFINITY, LD_JSON_NUM_EXACT, (locale_t)0);
    ld_buf_putc(&b, ',');
    ld_json_put_double(&b, NAN, LD_JSON_NUM_EXACT, (locale_t)0);
    assert_string_equal(ld_buf_cstr(&b), "0.30000000000000004,\"-Infinity\",\"NaN\"");
    ld_buf_free(&b);
}

static void test_random_bits(void **state)
{
    (void)state;
    tally t = {"uniformly random bit patterns", 0, 0};
    for (long i = 0; i < 800000 / SCALE; i++)
        check(&t, from_bits(rnd()));
    report(&t, 0.1);
}

static void test_widened_floats(void **state)
{
    (void)state;
    tally t = {"random floats widened to double", 0, 0};
    for (long i = 0; i < 600000 / SCALE; i++) {
        uint32_t b = (uint32_t)(rnd() >> 32);
        float f;
        memcpy(&f, &b, sizeof f);
        check(&t, (double)f);
    }
    report(&t, 1.0);
    /* what activations look like: normal-ish, magnitudes 1e-4 .. 1e3 */
    tally a = {"floats of activation magnitudes", 0, 0};
    for (long i = 0; i < 300000 / SCALE; i++) {
        double u = (double)(rnd() >> 11) * 0x1p-53;
        float f = (float)((u - 0.5) * pow(10.0, (double)(rnd() % 8) - 4.0));
        check(&a, (double)f);
    }
    report(&a, 0.1);
}

static void test_powers_and_boundaries(void **state)
{
    (void)state;
    tally p2 = {"powers of two and neighbours", 0, 0};
    for (int e = -1074; e <= 1023; e++)
        check_around(&p2, ldexp(1.0, e));
    report(&p2, 1.0);
    /* 10^n (as strtod reads "1eN"), and the values where rounding to 15, 16 or 17 digits carries
     * into one more digit: 9.99999999999999e N, 9.999999999999999e N, 9.9999999999999999e N */
    tally p10 = {"powers of ten, digit-count carries", 0, 0};
    static const char *const forms[] = {"1", "9.99999999999999", "9.999999999999999",
                                        "9.9999999999999999", "9.999999999999995",
                                        "9.9999999999999995", "9.99999999999995"};
    for (int e = -324; e <= 308; e++) {
        for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
            char s[40];
            snprintf(s, sizeof s, "%se%d", forms[f], e);
            check_around(&p10, strtod(s, NULL));
        }
    }
    report(&p10, 1.0);
    /* the 10^15..10^17 boundaries of the digit counts themselves, where %g switches layout */
    tally lay = {"layout switches (e-05, e+15..17)", 0, 0};
    for (int e = -6; e <= 18; e++) {
        for (int d = 1; d <= 9; d++) {
            char s[40];
            snprintf(s, sizeof s, "%de%d", d, e);
            check_around(&lay, strtod(s, NULL));
        }
    }
    report(&lay, 1.0);
}

/* Decimal strings with 16, 17 or 18 random significant digits ending in 5, read as doubles:
 * the values nearest the rounding ties of %.15g, %.16g and %.17g. */
static void test_decimal_ties(void **state)
{
    (void)state;
    tally t = {"near decimal ties (x.5 at digit p+1)", 0, 0};
    for (long i = 0; i < 40000 / SCALE; i++) {
        char s[48];
        int nd = 16 + (int)(rnd() % 3);
        int pos = 0;
        s[pos++] = (char)('1' + rnd() % 9);
        s[pos++] = '.';
        for (int k = 1; k < nd - 1; k++)
            s[pos++] = (char)('0' + rnd() % 10);
        s[pos++] = '5';
        snprintf(s + pos, sizeof s - (size_t)pos, "e%d", (int)(rnd() % 617) - 308);
        check_around(&t, strtod(s, NULL));
    }
    report(&t, 1.0);
}

static void test_integers_subnormals_extremes(void **state)
{
    (void)state;
    tally in = {"integers", 0, 0};
    for (long i = -100000 / SCALE; i <= 100000 / SCALE; i++)
        check(&in, (double)i);
    for (long i = 0; i < 200000 / SCALE; i++) {
        check(&in, (double)(rnd() >> (rnd() % 64)));
        check(&in, (double)(int32_t)rnd());
    }
    check_around(&in, 9007199254740992.0); /* 2^53 */
    report(&in, 0.5);
    tally sub = {"subnormals", 0, 0};
    for (long i = 0; i < 200000 / SCALE; i++)
        check(&sub, from_bits(rnd() >> 12 >> (rnd() % 52))); /* exponent field 0 */
    for (uint64_t m = 1; m < 1000; m++) {
        check(&sub, from_bits(m));
        check(&sub, from_bits((UINT64_C(1) << 52) - m));
    }
    report(&sub, 1.0);
    tally ext = {"extremes and zeros", 0, 0};
    check_around(&ext, DBL_MAX);
    check_around(&ext, DBL_MIN);
    check_around(&ext, DBL_TRUE_MIN);
    check_around(&ext, (double)FLT_MAX);
    check_around(&ext, (double)FLT_MIN);
    check(&ext, 0.0);
    check(&ext, -0.0);
    report(&ext, 10.0);
}

/* The fast path never reads the locale, the slow path reads the one it is given: both spell a
 * number the same in a "C" locale object, whatever the thread's locale. */
static void test_locale_object(void **state)
{
    (void)state;
    locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    assert_non_null(c);
    tally t = {"through a C locale object", 0, 0};
    for (long i = 0; i < 20000; i++) {
        double v = from_bits(rnd());
        if (!isfinite(v))
            continue;
        char a[LD_FMT_DOUBLE_MAX], b[LD_FMT_DOUBLE_MAX];
        ld_fmt_double_exact(v, a, c);
        ld_fmt_double_exact_slow(v, b, (locale_t)0);
        assert_string_equal(a, b);
        t.n++;
    }
    freelocale(c);
    report(&t, 100.0);
}

/* The probe writer's integers (common/buf.h): as %llu and %lld print them. */
static void test_integers_text(void **state)
{
    (void)state;
    char got[LD_FMT_INT_MAX + 1], want[32];
    static const int64_t fixed[] = {0, 1, -1, 9, 10, -10, 99, 100, INT32_MAX, INT32_MIN,
                                    INT64_MAX, INT64_MIN};
    for (long i = 0; i < 200000; i++) {
        int64_t v = i < (long)(sizeof fixed / sizeof fixed[0]) ? fixed[i]
                                                               : (int64_t)(rnd() >> (rnd() % 64));
        if ((i & 1) && v != INT64_MIN) /* −INT64_MIN is not an int64_t */
            v = -v;
        got[ld_fmt_i64(got, v)] = '\0';
        snprintf(want, sizeof want, "%lld", (long long)v);
        assert_string_equal(got, want);
        uint64_t u = i ? rnd() >> (rnd() % 64) : UINT64_MAX;
        got[ld_fmt_u64(got, u)] = '\0';
        snprintf(want, sizeof want, "%llu", (unsigned long long)u);
        assert_string_equal(got, want);
    }
    ld_buf b = {0};
    ld_buf_put_i64(&b, INT64_MIN);
    ld_buf_putc(&b, ',');
    ld_buf_put_u64(&b, UINT64_MAX);
    ld_buf_put_lit(&b, ",end");
    assert_string_equal(ld_buf_cstr(&b), "-9223372036854775808,18446744073709551615,end");
    ld_buf_free(&b);
}

/* printf and strtod follow the rounding mode; under another mode than to-nearest the fast path
 * steps aside and the bytes are still the definition's. */
static void test_rounding_mode(void **state)
{
    (void)state;
    assert_int_equal(fesetround(FE_UPWARD), 0);
    int differs = 0;
    for (long i = 0; i < 2000; i++) {
        double v = i ? (double)(float)((double)(rnd() >> 11) * 0x1p-53 - 0.5) : 0.1 + 0.2;
        char a[LD_FMT_DOUBLE_MAX], b[LD_FMT_DOUBLE_MAX], c[LD_FMT_DOUBLE_MAX];
        size_t nf = ld_fmt_double_exact_fast(v, a);
        ld_fmt_double_exact(v, b, (locale_t)0);
        ld_fmt_double_exact_slow(v, c, (locale_t)0);
        fesetround(FE_TONEAREST);
        char nearest[LD_FMT_DOUBLE_MAX];
        ld_fmt_double_exact(v, nearest, (locale_t)0);
        differs += strcmp(nearest, c) != 0;
        fesetround(FE_UPWARD);
        if (nf != 0 || strcmp(b, c) != 0) {
            fesetround(FE_TONEAREST);
            fail_msg("%a rounding upward: fast path %zu, \"%s\", snprintf/strtod \"%s\"", v, nf,
                     b, c);
        }
    }
    fesetround(FE_TONEAREST);
    assert_true(differs > 0); /* the mode does change the bytes: the check above means something */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_written),
        cmocka_unit_test(test_random_bits),
        cmocka_unit_test(test_widened_floats),
        cmocka_unit_test(test_powers_and_boundaries),
        cmocka_unit_test(test_decimal_ties),
        cmocka_unit_test(test_integers_subnormals_extremes),
        cmocka_unit_test(test_locale_object),
        cmocka_unit_test(test_rounding_mode),
        cmocka_unit_test(test_integers_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_probes_codec.c — the payload codecs: base64 against RFC 4648 vectors and a bit-by-bit
 * encoder, strict base64 refusals, byte shuffle layout, block-parallel zlib (valid for stock
 * zlib, identical bytes for any thread count) and its refusals, crc32. */
#include <omp.h>
#include <zlib.h>

#include "codec.h"
#include "probe_test_util.h"

static void test_b64_rfc4648(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                        "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        size_t n = strlen(plain[i]);
        char out[16] = {0};
        assert_int_equal(ld_b64_encoded_len(n), strlen(coded[i]));
        ld_b64_encode((const unsigned char *)plain[i], n, out);
        assert_memory_equal(out, coded[i], strlen(coded[i]));
        unsigned char back[16];
        size_t len, bad;
        const char *why;
        assert_true(ld_b64_decode(coded[i], strlen(coded[i]), back, &len, &bad, &why));
        assert_int_equal(len, n);
        assert_memory_equal(back, plain[i], n);
    }
}

/* The slow, obvious encoder: six bits at a time. */
static void b64_reference(const unsigned char *in, size_t n, char *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t bits = n * 8, k = 0;
    for (size_t b = 0; b < bits; b += 6) {
        unsigned v = 0;
        for (size_t j = 0; j < 6; j++) {
            size_t bit = b + j;
            unsigned x = bit < bits ? (in[bit / 8] >> (7 - bit % 8)) & 1u : 0u;
            v = v << 1 | x;
        }
        out[k++] = al[v];
    }
    while (k % 4)
        out[k++] = '=';
}

static void test_b64_against_reference(void **state)
{
    (void)state;
    unsigned char in[200];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 151 + 7);
    for (size_t n = 0; n <= sizeof in; n++) {
        char a[300], b[300];
        ld_b64_encode(in, n, a);
        b64_reference(in, n, b);
        assert_memory_equal(a, b, ld_b64_encoded_len(n));
    }
}

static void test_b64_large_threads(void **state)
{
    (void)state;
    size_t n = (9u << 20) + 2; /* several work items and a 2-byte tail */
    unsigned char *in = malloc(n), *back = malloc(n);
    char *a = malloc(ld_b64_encoded_len(n)), *b = malloc(ld_b64_encoded_len(n));
    assert_true(in && back && a && b);
    uint32_t x = 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        in[i] = (unsigned char)(x >> 24);
    }
    omp_set_num_threads(1);
    ld_b64_encode(in, n, a);
    omp_set_num_threads(4);
    ld_b64_encode(in, n, b);
    assert_memory_equal(a, b, ld_b64_encoded_len(n));
    /* the fused crc, serial and parallel, small and large */
    uint32_t want = (uint32_t)crc32(0L, in, (uInt)n);
    assert_int_equal(ld_b64_encode_crc(in, n, b), want);
    assert_memory_equal(a, b, ld_b64_encoded_len(n));
    omp_set_num_threads(1);
    assert_int_equal(ld_b64_encode_crc(in, n, b), want);
    for (size_t small = 0; small < 8; small++)
        assert_int_equal(ld_b64_encode_crc(in, small, b), (uint32_t)crc32(0L, in, (uInt)small));
    size_t len, bad;
    const char *why;
    assert_true(ld_b64_decode(a, ld_b64_encoded_len(n), back, &len, &bad, &why));
    assert_int_equal(len, n);
    assert_memory_equal(back, in, n);
    a[5u << 20] = '*'; /* a bad character deep inside: found exactly */
    assert_false(ld_b64_decode(a, ld_b64_encoded_len(n), back, &len, &bad, &why));
    assert_int_equal(bad, 5u << 20);
    free(in);
    free(back);
    free(a);
    free(b);
}

static void test_b64_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t at;
        const char *why;
    } cases[] = {
        {"Zm9", 3, "multiple of 4"},
        {"Zm=v", 2, "padding before the end"},
        {"Zm9v!A==", 4, "outside the alphabet"},
        {"Zh==", 1, "nonzero bits"},
        {"Zm9=", 2, "nonzero bits"},
        {"====", 0, "padding before the end"},
        {"Zm9v\nZm9v", 9, "multiple of 4"},
        {"Zm9 ", 3, "outside the alphabet"},
        {"Zm9v-_==", 4, "outside the alphabet"}, /* the URL-safe alphabet is not accepted */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char out[16];
        size_t len, bad = 999;
        const char *why = "";
        assert_false(ld_b64_decode(cases[i].in, strlen(cases[i].in), out, &len, &bad, &why));
        if (bad != cases[i].at || !strstr(why, cases[i].why))
            fail_msg("'%s': at %zu '%s', expected %zu '%s'", cases[i].in, bad, why, cases[i].at,
                     cases[i].why);
    }
}

static void test_shuffle_layout(void **state)
{
    (void)state;
    const unsigned char in[8] = {1, 2, 3, 4, 5, 6, 7, 8}; /* two 4-byte elements */
    const unsigned char want[8] = {1, 5, 2, 6, 3, 7, 4, 8};
    unsigned char out[8], back[8];
    ld_shuffle(in, 2, 4, out);
    assert_memory_equal(out, want, 8);
    ld_unshuffle(out, 2, 4, back);
    assert_memory_equal(back, in, 8);
    const unsigned char want2[8] = {1, 3, 5, 7, 2, 4, 6, 8}; /* four 2-byte elements */
    ld_shuffle(in, 4, 2, out);
    assert_memory_equal(out, want2, 8);
}

/* Activation-like bytes: f32 normal-ish values with a run of zeros (some blocks compress, some
 * are noise, so both the stored and the compressed block paths run). */
static unsigned char *activations(size_t n_floats)
{
    float *f = malloc(n_floats * sizeof *f);
    assert_non_null(f);
    uint32_t x = 12345;
    for (size_t i = 0; i < n_floats; i++) {
        x = x * 1664525u + 1013904223u;
        f[i] = i > n_floats / 2 && i < n_floats / 2 + 300000 ? 0.0f
                                                             : (float)((int)(x >> 8) - (1 << 23)) * 1e-7f;
    }
    return (unsigned char *)f;
}

static void test_zlib_roundtrip_and_threads(void **state)
{
    (void)state;
    size_t nf = (5u << 20) / 4 + 3, n = nf * 4;
    unsigned char *in = activations(nf), *back = malloc(n);
    assert_non_null(back);
    ld_error err;
    for (int level = 1; level <= 2; level++) {
        for (size_t elem = 1; elem <= 4; elem *= 2) {
            unsigned char *z1, *z4;
            size_t n1, n4;
            omp_set_num_threads(1);
            TU_OK(ld_zlib_encode(in, n, elem, level, &z1, &n1, &err), &err);
            omp_set_num_threads(4);
            TU_OK(ld_zlib_encode(in, n, elem, level, &z4, &n4, &err), &err);
            assert_int_equal(n1, n4);
            assert_memory_equal(z1, z4, n1);
            assert_true(n1 < n); /* the zero run at least compresses */
            /* stock zlib reads it */
            uLongf got = (uLongf)n;
            assert_int_equal(uncompress(back, &got, z1, (uLong)n1), Z_OK);
            assert_int_equal(got, n);
            if (elem == 1) {
                assert_memory_equal(back, in, n);
            } else {
                unsigned char *un = malloc(n);
                assert_non_null(un);
                ld_unshuffle(back, n / elem, elem, un);
                assert_memory_equal(un, in, n);
                free(un);
            }
            /* and so does ours, into exactly n bytes */
            TU_OK(ld_zlib_decode(z1, n1, back, n, &err), &err);
            free(z1);
            free(z4);
        }
    }
    /* empty input: a valid empty stream */
    unsigned char *z;
    size_t zn;
    TU_OK(ld_zlib_encode(in, 0, 1, 1, &z, &zn, &err), &err);
    TU_OK(ld_zlib_decode(z, zn, back, 0, &err), &err);
    free(z);
    TU_FAILS(ld_zlib_encode(in, 8, 1, 0, &z, &zn, &err), &err, LD_E_USAGE, "outside 1..9");
    free(in);
    free(back);
}

static void test_zlib_refusals(void **state)
{
    (void)state;
    unsigned char in[4096], out[8192];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i % 13);
    unsigned char *z;
    size_t zn;
    ld_error err;
    TU_OK(ld_zlib_encode(in, sizeof in, 1, 1, &z, &zn, &err), &err);
    TU_FAILS(ld_zlib_decode(z, zn, out, sizeof in - 1, &err), &err, LD_E_INPUT, "inflates past");
    TU_FAILS(ld_zlib_decode(z, zn, out, sizeof in + 1, &err), &err, LD_E_INPUT,
             "inflates to 4096 bytes, expected 4097");
    TU_FAILS(ld_zlib_decode(z, zn - 3, out, sizeof in, &err), &err, LD_E_INPUT, "cut short");
    unsigned char *longer = malloc(zn + 2);
    memcpy(longer, z, zn);
    longer[zn] = longer[zn + 1] = 0;
    TU_FAILS(ld_zlib_decode(longer, zn + 2, out, sizeof in, &err), &err, LD_E_INPUT,
             "2 bytes after the end");
    z[zn - 1] ^= 0x40; /* adler32 no longer matches */
    TU_FAILS(ld_zlib_decode(z, zn, out, sizeof in, &err), &err, LD_E_INPUT, "corrupt zlib data");
    const unsigned char junk[6] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc};
    TU_FAILS(ld_zlib_decode(junk, sizeof junk, out, 16, &err), &err, LD_E_INPUT, "corrupt zlib");
    TU_FAILS(ld_zlib_decode(junk, 0, out, 16, &err), &err, LD_E_INPUT, "cut short");
    free(longer);
    free(z);
    assert_true(ld_zlib_size_plausible(10, 10 * 1032));
    assert_false(ld_zlib_size_plausible(10, 10 * 1032 + 65));
}

static void test_crc32(void **state)
{
    (void)state;
    assert_int_equal(ld_crc32("123456789", 9), 0xcbf43926u);
    assert_int_equal(ld_crc32("", 0), 0u);
    size_t n = (6u << 20) + 5;
    unsigned char *b = activations(n / 4 + 1);
    omp_set_num_threads(3);
    uint32_t par = ld_crc32(b, n);
    assert_int_equal(par, (uint32_t)crc32(0L, b, (uInt)n));
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_rfc4648),
        cmocka_unit_test(test_b64_against_reference),
        cmocka_unit_test(test_b64_large_threads),
        cmocka_unit_test(test_b64_refusals),
        cmocka_unit_test(test_shuffle_layout),
        cmocka_unit_test(test_zlib_roundtrip_and_threads),
        cmocka_unit_test(test_zlib_refusals),
        cmocka_unit_test(test_crc32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_safetensors.c — the safetensors validator against a corpus of malformed files built here
 * (one per rule: length, JSON, UTF-8, dtypes, shapes, offsets, tiling, duplicates, metadata,
 * truncation), the zero-copy reader on good files, and the writer's layout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "model_test_util.h"
#include "safetensors.h"

/* A file image: 8-byte little-endian header length, the header, then data_len bytes of data. */
static unsigned char *image_len(const char *header, size_t hlen, uint64_t stated, size_t data_len,
                                size_t *len)
{
    *len = 8 + hlen + data_len;
    unsigned char *p = malloc(*len ? *len : 1);
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(stated >> (8 * i));
    memcpy(p + 8, header, hlen);
    for (size_t i = 0; i < data_len; i++)
        p[8 + hlen + i] = (unsigned char)(i * 7 + 1);
    return p;
}

static unsigned char *image(const char *header, size_t data_len, size_t *len)
{
    return image_len(header, strlen(header), strlen(header), data_len, len);
}

static void test_good_file(void **state)
{
    (void)state;
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[24,30]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                    "\"z\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[30,30]},"
                    "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[30,34]}}   ";
    size_t len;
    unsigned char *img = image(h, 34, &len);
    ld_st_file *f = NULL;
    ld_error err = {0};
    assert_int_equal(ld_st_parse(&f, img, len, "good.safetensors", &err), LD_OK);
    assert_int_equal(ld_st_count(f), 4);
    /* name order */
    assert_string_equal(ld_st_at(f, 0)->name, "a");
    assert_string_equal(ld_st_at(f, 1)->name, "b");
    assert_string_equal(ld_st_at(f, 2)->name, "s");
    assert_string_equal(ld_st_at(f, 3)->name, "z");
    assert_null(ld_st_at(f, 4));
    const ld_tensor *a = ld_st_find(f, "a");
    assert_non_null(a);
    assert_int_equal(a->dtype, LD_F32);
    assert_int_equal(a->ndim, 2);
    assert_int_equal(a->shape[0], 2);
    assert_int_equal(a->shape[1], 3);
    assert_int_equal(a->numel, 6);
    assert_int_equal(a->nbytes, 24);
    assert_ptr_equal(a->data, img + 8 + strlen(h)); /* zero-copy */
    const ld_tensor *b = ld_st_find(f, "b");
    assert_ptr_equal(b->data, img + 8 + strlen(h) + 24);
    assert_int_equal(b->dtype, LD_BF16);
    const ld_tensor *s = ld_st_find(f, "s");
    assert_int_equal(s->ndim, 0);
    assert_int_equal(s->numel, 1);
    const ld_tensor *z = ld_st_find(f, "z");
    assert_int_equal(z->numel, 0);
    assert_int_equal(z->nbytes, 0);
    assert_null(ld_st_find(f, "c"));
    assert_string_equal(ld_st_path(f), "good.safetensors");
    assert_int_equal(ld_st_size(f), len);
    ld_st_close(f);
    free(img);

    /* no tensors at all is a valid (empty) file */
    img = image("{}", 0, &len);
    assert_int_equal(ld_st_parse(&f, img, len, "empty.safetensors", &err), LD_OK);
    assert_int_equal(ld_st_count(f), 0);
    ld_st_close(f);
    free(img);
    ld_st_close(NULL);
}

typedef struct bad_case {
    const char *header; /* NULL: see the special cases below */
    size_t data_len;
    ld_status code;
    const char *message;
} bad_case;

#define T(name, dtype, shape, offsets)                                                             \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offsets "}"

static const bad_case bad_cases[] = {
    {"[" T("a", "F32", "[1]", "[0,4]") "]", 4, LD_E_INPUT,
     "the header does not start with a JSON object"},
    {" {" T("a", "F32", "[1]", "[0,4]") "}", 4, LD_E_INPUT,
     "the header does not start with a JSON object"},
    {"{" T("a", "F32", "[1]", "[0,4]"), 4, LD_E_INPUT,
     "header: line 1, column 54: expected ',' or '}', found end of input"},
    {"{" T("a", "F32", "[1]", "[0,4]") "}x", 4, LD_E_INPUT,
     "unexpected 'x' after the end of the JSON value (only space padding may follow)"},
    {"{" T("a", "F32", "[1]", "[0,4]") "}\n", 4, LD_E_INPUT,
     "unexpected byte 0x0a after the end of the JSON value"},
    {"{" T("a\xc3\x28", "F32", "[1]", "[0,4]") "}", 4, LD_E_INPUT,
     "invalid UTF-8 (byte 0xc3) inside a string"},
    {"{" T("a\xed\xa0\x80", "F32", "[1]", "[0,4]") "}", 4, LD_E_INPUT,
     "invalid UTF-8 (byte 0xed) inside a string"}, /* a UTF-8-encoded surrogate */
    {"{" T("a\\u0000b", "F32", "[1]", "[0,4]") "}", 4, LD_E_INPUT, "(a NUL character)"},
    {"{" T("a", "F64", "[1]", "[0,8]") "}", 8, LD_E_UNSUPPORTED,
     "tensor 'a': dtype F64 is not supported (layerdiff reads BF16, F16 and F32)"},
    {"{" T("a", "I8", "[4]", "[0,4]") "}", 4, LD_E_UNSUPPORTED,
     "tensor 'a': dtype I8 is not supported"},
    {"{" T("a", "F8_E4M3", "[4]", "[0,4]") "}", 4, LD_E_UNSUPPORTED,
     "tensor 'a': dtype F8_E4M3 is not supported"},
    {"{" T("a", "bf16", "[2]", "[0,4]") "}", 4, LD_E_UNSUPPORTED,
     "tensor 'a': dtype bf16 is not supported"},
    {"{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, LD_E_INPUT,
     "tensor 'a': dtype must be a string"},
    {"{" T("a", "F32", "[4294967296,4294967296,4294967296]", "[0,4]") "}", 4, LD_E_INPUT,
     "tensor 'a': shape [4294967296, 4294967296, 4294967296] has more elements than can be "
     "addressed"},
    {"{" T("a", "F32", "[9223372036854775807,2]", "[0,4]") "}", 4, LD_E_INPUT,
     "has more elements than can be addressed"},
    /* issue 15, item 10: a zero does not excuse the other dims, in either order */
    {"{" T("a", "F32", "[0,4611686018427387904,4611686018427387904]", "[0,0]") "}", 0, LD_E_INPUT,
     "tensor 'a': shape [0, 4611686018427387904, 4611686018427387904] has more elements than can "
     "be addressed"},
    {"{" T("a", "F32", "[4611686018427387904,4611686018427387904,0]", "[0,0]") "}", 0, LD_E_INPUT,
     "tensor 'a': shape [4611686018427387904, 4611686018427387904, 0] has more elements than can "
     "be addressed"},
    {"{" T("a", "F32", "[9223372036854775808]", "[0,4]") "}", 4, LD_E_INPUT,
     "tensor 'a': shape entry 9223372036854775808 is not an integer in [0, 2^63)"},
    {"{" T("a", "F32", "[-1]", "[0,4]") "}", 4, LD_E_INPUT,
     "tensor 'a': shape entry -1 is not an integer in [0, 2^63)"},
    {"{" T("a", "F32", "[1.0]", "[0,4]") "}", 4, LD_E_INPUT,
     "tensor 'a': shape entry 1.0 is not an integer in [0, 2^63)"},
    {"{" T("a", "F32", "[\"1\"]", "[0,4]") "}", 4, LD_E_INPUT,
     "tensor 'a': shape entries must be non-negative integers"},
    {"{" T("a", "F32", "[1,1,1,1,1]", "[0,4]") "}", 4, LD_E_UNSUPPORTED,
     "tensor 'a': more than 4 dimensions"},
    {"{" T("a", "F32", "1", "[0,4]") "}", 4, LD_E_INPUT,
     "tensor 'a': shape must be a list of integers"},
    {"{" T("a", "F32", "[2,3]", "[0,20]") "}", 20, LD_E_INPUT,
     "tensor 'a': data_offsets [0, 20] span 20 bytes but shape [2, 3] of F32 needs 24"},
    {"{" T("a", "BF16", "[2,3]", "[0,24]") "}", 24, LD_E_INPUT,
     "data_offsets [0, 24] span 24 bytes but shape [2, 3] of BF16 needs 12"},
    {"{" T("a", "F32", "[1]", "[8,4]") "}", 8, LD_E_INPUT,
     "tensor 'a': data_offsets [8, 4] run backwards"},
    {"{" T("a", "F32", "[1]", "[4,8]") "}", 4, LD_E_INPUT,
     "tensor 'a': data_offsets end 8 is past the end of the data (4 bytes after the header)"},
    {"{" T("a", "F32", "[1]", "[0,18446744073709551615]") "}", 4, LD_E_INPUT,
     "data_offsets entry 18446744073709551615 is not an integer in [0, 2^63)"},
    {"{" T("a", "F32", "[1]", "[0,99999999999999999999]") "}", 4, LD_E_INPUT,
     "data_offsets entry 99999999999999999999 is not an integer"},
    {"{" T("a", "F32", "[1]", "[0,4,8]") "}", 8, LD_E_INPUT,
     "data_offsets must hold exactly 2 numbers"},
    {"{" T("a", "F32", "[1]", "[4]") "}", 4, LD_E_INPUT,
     "data_offsets must hold exactly 2 numbers, found 1"},
    {"{" T("a", "F32", "[1]", "[0,4]") "," T("b", "F32", "[1]", "[8,12]") "}", 12, LD_E_INPUT,
     "a gap of 4 bytes in the data before tensor 'b' (bytes 4..8 belong to no tensor)"},
    {"{" T("a", "F32", "[1]", "[4,8]") "}", 8, LD_E_INPUT,
     "a gap of 4 bytes in the data before tensor 'a' (bytes 0..4 belong to no tensor)"},
    {"{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[1]", "[4,8]") "}", 8, LD_E_INPUT,
     "tensors 'a' and 'b' overlap (bytes 4..8 of the data)"},
    {"{" T("a", "F32", "[1]", "[0,4]") "," T("b", "F32", "[1]", "[0,4]") "}", 4, LD_E_INPUT,
     "tensors 'a' and 'b' overlap"},
    {"{" T("a", "F32", "[1]", "[0,4]") "}", 6, LD_E_INPUT,
     "the tensors end at data byte 4 but the file holds 6 bytes of data (2 trailing bytes belong "
     "to "
     "no tensor)"},
    {"{}", 1, LD_E_INPUT, "the tensors end at data byte 0 but the file holds 1 bytes of data"},
    {"{" T("a", "F32", "[1]", "[0,4]") "," T("a", "F32", "[1]", "[4,8]") "}", 8, LD_E_INPUT,
     "tensor 'a' appears twice in the header"},
    {"{\"__metadata__\":[],\"a\":{}}", 0, LD_E_INPUT,
     "__metadata__ must be an object of strings, found an array"},
    {"{\"__metadata__\":{\"format\":1}}", 0, LD_E_INPUT,
     "__metadata__ value of \"format\" must be a string, found a number"},
    {"{\"__metadata__\":{\"format\":\"pt\",\"format\":\"np\"}}", 0, LD_E_INPUT,
     "duplicate key \"format\" in __metadata__"},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, LD_E_INPUT, "duplicate key \"__metadata__\""},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, LD_E_INPUT,
     "tensor 'a': \"dtype\" is missing"},
    {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, LD_E_INPUT,
     "tensor 'a': \"shape\" is missing"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, LD_E_INPUT,
     "tensor 'a': \"data_offsets\" is missing"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"dtype\":\"F32\"}}", 4,
     LD_E_INPUT, "tensor 'a': duplicate key \"dtype\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"offsets\":[0,4]}}", 4,
     LD_E_INPUT, "tensor 'a': unexpected key \"offsets\""},
    {"{\"a\":[1]}", 0, LD_E_INPUT, "tensor 'a' must be an object, found an array"},
    {"{\"a\x01\":[1]}", 0, LD_E_INPUT, "control character 0x01 inside a string"},
    {"{\"a\\u0001b\":[1]}", 0, LD_E_INPUT,
     "tensor 'a?b' must be an object"}, /* printable in messages */
};

static void test_malformed_corpus(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        size_t len;
        unsigned char *img = image(bad_cases[i].header, bad_cases[i].data_len, &len);
        ld_st_file *f = NULL;
        ld_error err = {0};
        ld_status st = ld_st_parse(&f, img, len, "bad.safetensors", &err);
        print_message("case %zu: %s\n", i, err.msg);
        assert_int_equal(st, bad_cases[i].code);
        assert_null(f);
        assert_contains(err.msg, "bad.safetensors: ");
        assert_contains(err.msg, bad_cases[i].message);
        free(img);
    }
}

static void expect_bad(const unsigned char *img, size_t len, const char *message)
{
    ld_st_file *f = NULL;
    ld_error err = {0};
    assert_int_equal(ld_st_parse(&f, img, len, "bad.safetensors", &err), LD_E_INPUT);
    print_message("%s\n", err.msg);
    assert_null(f);
    assert_contains(err.msg, message);
}

static void test_header_length(void **state)
{
    (void)state;
    const char *h = "{" T("a", "F32", "[1]", "[0,4]") "}";
    size_t hlen = strlen(h), len;
    unsigned char *img;
    /* shorter than the 8-byte length */
    img = image_len(h, hlen, hlen, 0, &len);
    expect_bad(img, 5, "bad.safetensors: 5 bytes, too short for a safetensors file");
    expect_bad(img, 0, "bad.safetensors: 0 bytes, too short");
    free(img);
    /* more than 100 MB, and far past the end */
    img = image_len(h, hlen, 100000001, 4, &len);
    expect_bad(img, len, "header length 100000001 is more than the 100000000 bytes allowed");
    free(img);
    img = image_len(h, hlen, UINT64_MAX, 4, &len);
    expect_bad(img, len, "header length 18446744073709551615 is more than the 100000000");
    free(img);
    /* within the limit but past the end of the file */
    img = image_len(h, hlen, hlen + 5, 4, &len);
    expect_bad(img, len, "header length 59 runs past the end of the file (66 bytes): truncated?");
    free(img);
    /* stated shorter than the JSON: the object is cut */
    img = image_len(h, hlen, hlen - 1, 4, &len);
    expect_bad(img, len, "expected ',' or '}', found end of input");
    free(img);
    img = image_len(h, hlen, 1, 4, &len);
    expect_bad(img, len, "the header does not start with a JSON object");
    free(img);
}

/* Writes a small file with ld_st_write, then truncates copies of it at every interesting length. */
static ld_status fill_pattern(void *ctx, size_t index, void *buf, size_t nbytes, ld_error *err)
{
    (void)ctx;
    (void)err;
    unsigned char *p = buf;
    for (size_t i = 0; i < nbytes; i++)
        p[i] = (unsigned char)(index * 31 + i);
    return LD_OK;
}

static void test_writer_and_truncation(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    assert_non_null(dir);
    char *path = path_in(dir, "w.safetensors");
    ld_st_entry e[3] = {
        {.name = "x.weight", .dtype = LD_BF16, .ndim = 2, .shape = {3, 5}},
        {.name = "a\"quoted\\name", .dtype = LD_F32, .ndim = 1, .shape = {7}},
        {.name = "scalar", .dtype = LD_F16, .ndim = 0},
    };
    ld_error err = {0};
    assert_int_equal(ld_st_write(path, e, 3, fill_pattern, NULL, &err), LD_OK);
    size_t len;
    unsigned char *img = slurp(path, &len);
    assert_non_null(img);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | img[i];
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(len, 8 + hlen + 30 + 28 + 2);
    const char *want =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"x.weight\":{\"dtype\":\"BF16\",\"shape\":[3,5],\"data_offsets\":[0,30]},"
        "\"a\\\"quoted\\\\name\":{\"dtype\":\"F32\",\"shape\":[7],\"data_offsets\":[30,58]},"
        "\"scalar\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[58,60]}}";
    assert_memory_equal(img + 8, want, strlen(want));
    for (size_t i = strlen(want); i < hlen; i++)
        assert_int_equal(img[8 + i], ' ');

    ld_st_file *f = NULL;
    assert_int_equal(ld_st_open(&f, path, &err), LD_OK);
    assert_int_equal(ld_st_count(f), 3);
    const ld_tensor *q = ld_st_find(f, "a\"quoted\\name");
    assert_non_null(q);
    assert_int_equal(q->nbytes, 28);
    for (size_t i = 0; i < 28; i++)
        assert_int_equal(((const unsigned char *)q->data)[i], (unsigned char)(1 * 31 + i));
    ld_st_close(f);

    /* truncated copies: every cut is refused, and none crashes */
    char *cut = path_in(dir, "cut.safetensors");
    for (size_t keep = 0; keep < len; keep++) {
        assert_int_equal(spit(cut, img, keep), 0);
        f = NULL;
        ld_status st = ld_st_open(&f, cut, &err);
        assert_int_equal(st, LD_E_INPUT);
        assert_null(f);
        assert_contains(err.msg, cut);
        if (keep == len - 1 || keep == 8 + hlen)
            print_message("truncated to %zu of %zu bytes: %s\n", keep, len, err.msg);
    }
    spit(cut, img, len - 1);
    ld_st_open(&f, cut, &err);
    assert_contains(err.msg, "tensor 'scalar': data_offsets end 60 is past the end of the data "
                             "(59 bytes after the header)");
    spit(cut, img, 100);
    ld_st_open(&f, cut, &err);
    assert_contains(err.msg, "runs past the end of the file (100 bytes): truncated?");

    /* not a regular file, missing file */
    assert_int_equal(ld_st_open(&f, dir, &err), LD_E_INPUT);
    assert_contains(err.msg, "not a regular file");
    char *missing = path_in(dir, "missing.safetensors");
    assert_int_equal(ld_st_open(&f, missing, &err), LD_E_INPUT);
    assert_contains(err.msg, "missing.safetensors: cannot open: No such file or directory");
    free(missing);
    free(cut);
    free(img);
    free(path);
    rm_tree(dir);
}

static void test_deep_and_wide_metadata(void **state)
{
    (void)state;
    /* Hostile nesting in a place the reader skips over is bounded, not recursed into forever. */
    size_t n = 200, len;
    char *h = malloc(2 * n + 64);
    size_t k = (size_t)sprintf(h, "{\"__metadata__\":{\"x\":");
    for (size_t i = 0; i < n; i++)
        h[k++] = '[';
    for (size_t i = 0; i < n; i++)
        h[k++] = ']';
    strcpy(h + k, "}}");
    unsigned char *img = image(h, 0, &len);
    expect_bad(img, len, "__metadata__ value of \"x\" must be a string, found an array");
    free(img);
    free(h);
}

/* Deterministic mutations of a valid file image (bytes of the length and the header replaced
 * with random or JSON-significant bytes): every result is a clean OK or a clean error. Under the
 * sanitizer build this is a small fuzz pass. */
static void test_mutations(void **state)
{
    (void)state;
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[24,30]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}  ";
    size_t len;
    unsigned char *orig = image(h, 30, &len);
    unsigned char *img = malloc(len);
    const char special[] = "{}[]\",:0123456789-.eE \\u\x00\xff\x80";
    uint64_t x = 12345;
    size_t ok = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(img, orig, len);
        int edits = 1 + iter % 4;
        for (int e = 0; e < edits; e++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t pos = (size_t)(x >> 33) % (8 + strlen(h));
            unsigned char v = (x >> 20) & 1
                                  ? (unsigned char)special[(x >> 8) % (sizeof special - 1)]
                                  : (unsigned char)(x >> 12);
            img[pos] = v;
        }
        size_t cut = iter % 7 == 0 ? (size_t)(x >> 40) % (len + 1) : len;
        ld_st_file *f = NULL;
        ld_error err = {0};
        ld_status st = ld_st_parse(&f, img, cut, "m.safetensors", &err);
        if (st == LD_OK) {
            ok++;
            for (size_t i = 0; i < ld_st_count(f);
                 i++) { /* every byte of every tensor is in bounds */
                const ld_tensor *t = ld_st_at(f, i);
                assert_true((const unsigned char *)t->data >= img &&
                            (const unsigned char *)t->data + t->nbytes <= img + cut);
            }
            ld_st_close(f);
        } else {
            assert_null(f);
            assert_true(err.msg[0] != '\0');
        }
    }
    print_message("%zu of 20000 mutated images still valid\n", ok);
    free(img);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_malformed_corpus),
        cmocka_unit_test(test_header_length),
        cmocka_unit_test(test_writer_and_truncation),
        cmocka_unit_test(test_deep_and_wide_metadata),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

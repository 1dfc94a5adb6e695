/* test_tokenizer.c — the tokenizer on a tokenizer.json written here by hand: ids worked out by hand
 * (merge rank order, digits split, added tokens first, NFC, the byte-level alphabet), decoding,
 * text escaping, and hostile files each refused with its named error. The identity with Hugging
 * Face tokenizers on a corpus is test_tok_hf.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <utf8proc.h>

#include "buf.h"
#include "json_out.h"
#include "layerdiff/tokenizer.h"

static const char *QWEN2 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                           "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* GPT-2's byte-level alphabet written out by hand: the printable ranges keep their code point,
 * the 68 other bytes take 256, 257, ... in byte order. */
static unsigned byte_char(unsigned b)
{
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae)) return b;
    unsigned n = 0;
    for (unsigned c = 0; c < b; c++)
        n += !((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae));
    return 256 + n;
}

static void put_cp(ld_buf *b, unsigned cp)
{
    if (cp < 0x80) ld_buf_printf(b, "%c", cp);
    else ld_buf_printf(b, "%c%c", 0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
}

/* The test tokenizer: bytes are ids 0..255 (byte b has id b), then he, ll, hell, hello, Ġw, or,
 * Ġwor, el (merge ranks 0..7, ids 256..263); <|im_start|> is the special added token 300. The
 * parts replace pieces of it for the hostile cases. */
static char *make_json(const char *model_type, const char *extra_merge, bool drop_byte_a)
{
    ld_buf b = {0};
    ld_buf_printf(&b, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
                      "\"added_tokens\":[{\"id\":300,\"content\":\"<|im_start|>\","
                      "\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
                      "\"normalized\":false,\"special\":true}],"
                      "\"normalizer\":{\"type\":\"NFC\"},"
                      "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
                      "{\"type\":\"Split\",\"pattern\":{\"Regex\":");
    ld_json_put_string(&b, QWEN2, strlen(QWEN2), false);
    ld_buf_printf(&b, "},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
                      "\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]},"
                      "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},"
                      "\"model\":{\"type\":\"%s\",\"dropout\":null,\"vocab\":{", model_type);
    for (unsigned i = 0; i < 256; i++) {
        if (drop_byte_a && i == 'a') continue;
        ld_buf_puts(&b, "\"");
        if (i == '"' || i == '\\') ld_buf_puts(&b, "\\");
        put_cp(&b, byte_char(i));
        ld_buf_printf(&b, "\":%u,", i);
    }
    ld_buf_puts(&b, "\"he\":256,\"ll\":257,\"hell\":258,\"hello\":259,\"\xc4\xa0w\":260,"
                    "\"or\":261,\"\xc4\xa0wor\":262,\"el\":263},\"merges\":[[\"h\",\"e\"],"
                    "[\"l\",\"l\"],\"he ll\",[\"hell\",\"o\"],[\"\xc4\xa0\",\"w\"],[\"o\",\"r\"],"
                    "[\"\xc4\xa0w\",\"or\"],[\"e\",\"l\"]");
    if (extra_merge) ld_buf_printf(&b, ",%s", extra_merge);
    ld_buf_puts(&b, "]}}");
    return ld_buf_take(&b);
}

static ld_tokenizer *load(const char *model_type, const char *extra, bool drop, ld_status want,
                          const char *msg)
{
    char *json = make_json(model_type, extra, drop);
    ld_tokenizer *t = NULL;
    ld_error err;
    ld_status st = ld_tokenizer_load_text(json, strlen(json), "hand.json", &t, &err);
    free(json);
    if (st != want) fail_msg("status %d, want %d: %s", st, want, st ? err.msg : "");
    if (msg && !strstr(err.msg, msg)) fail_msg("message \"%s\" lacks \"%s\"", err.msg, msg);
    return t;
}

static void expect_ids(const ld_tokenizer *t, const char *text, const int32_t *want, size_t n)
{
    if (n == 1 && want[0] == -1) n = 0;
    int32_t *ids;
    size_t got;
    ld_error err;
    assert_int_equal(ld_tokenizer_encode(t, text, strlen(text), &ids, &got, &err), LD_OK);
    if (got != n) fail_msg("\"%s\": %zu ids, want %zu", text, got, n);
    for (size_t i = 0; i < n; i++)
        if (ids[i] != want[i]) fail_msg("\"%s\": id %zu is %d, want %d", text, i, ids[i], want[i]);
    free(ids);
}

#define IDS(t, text, ...)                                                                          \
    do {                                                                                           \
        const int32_t w_[] = {__VA_ARGS__};                                                        \
        expect_ids(t, text, w_, sizeof w_ / sizeof w_[0]);                                         \
    } while (0)

static void test_encode_by_hand(void **state)
{
    (void)state;
    ld_tokenizer *t = load("BPE", NULL, false, LD_OK, NULL);
    assert_int_equal(ld_tokenizer_id_end(t), 301);
    IDS(t, "hello", 259);
    IDS(t, "hell", 258);
    IDS(t, "hel", 256, 'l');          /* h+e (rank 0) before e+l (rank 7) */
    IDS(t, "elh", 263, 'h');          /* e+l when h+e is not there */
    IDS(t, "hello world", 259, 262, 'l', 'd'); /* " world": Ġ+w, o+r, then Ġw+or */
    IDS(t, "2026", '2', '0', '2', '6');        /* \p{N}: one digit each */
    IDS(t, "<|im_start|>hello", 300, 259);
    IDS(t, "x<|im_start|><|im_start|>", 'x', 300, 300);
    IDS(t, "e\xcc\x81", 0xc3, 0xa9);  /* NFC: e + U+0301 is U+00E9, bytes c3 a9 */
    IDS(t, "a\n\n b", 'a', '\n', '\n', ' ', 'b');   /* "a", "\n\n", " b": no merges */
    IDS(t, "I'M 's", 'I', '\'', 'M', ' ', '\'', 's'); /* (?i:'m) splits "'M" off */
    IDS(t, "", -1);
    ld_tokenizer_free(t);
}

static void test_bad_text_and_decode(void **state)
{
    (void)state;
    ld_tokenizer *t = load("BPE", NULL, false, LD_OK, NULL);
    int32_t *ids;
    size_t n;
    ld_error err;
    assert_int_equal(ld_tokenizer_encode(t, "ok\xff", 3, &ids, &n, &err), LD_E_INPUT);
    assert_non_null(strstr(err.msg, "invalid UTF-8 at byte offset 2 (0xff)"));
    assert_int_equal(ld_tokenizer_encode(t, "\xed\xa0\x80", 3, &ids, &n, &err), LD_E_INPUT);
    const int32_t hw[] = {300, 259, 262, 'l', 'd', 0xc3, 0xa9};
    char *out;
    size_t len;
    assert_int_equal(ld_tokenizer_decode(t, hw, 7, &out, &len, &err), LD_OK);
    assert_int_equal(len, 25);
    assert_memory_equal(out, "<|im_start|>hello world\xc3\xa9", 25);
    free(out);
    const int32_t half[] = {0xc3};
    assert_int_equal(ld_tokenizer_decode(t, half, 1, &out, &len, &err), LD_OK);
    assert_int_equal(len, 1);
    assert_int_equal((unsigned char)out[0], 0xc3);
    free(out);
    const int32_t bad[] = {299};
    assert_int_equal(ld_tokenizer_decode(t, bad, 1, &out, &len, &err), LD_E_INPUT);
    assert_non_null(strstr(err.msg, "token id 299"));
    assert_true(ld_tokenizer_is_special(t, 300));
    assert_false(ld_tokenizer_is_special(t, 259));
    ld_tokenizer_free(t);
}

static void test_escape(void **state)
{
    (void)state;
    char out[64];
    const char in[] = "a\nb\\\x01\xff\xe2\x80\xae\xc3\xa9\t\xe2\x80\x8d";
    size_t n = ld_token_text_escape(in, sizeof in - 1, out, sizeof out);
    assert_string_equal(out, "a\\nb\\\\\\u{0001}\\xff\\u{202E}\xc3\xa9\\t\\u{200D}");
    assert_int_equal(n, strlen(out));
    /* cut: at a character boundary, with "..." */
    n = ld_token_text_escape("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, out, 8);
    assert_string_equal(out, "\xc3\xa9\xc3\xa9...");
    n = ld_token_text_escape("abc", 3, out, 4);
    assert_string_equal(out, "abc");
}

static void test_hostile(void **state)
{
    (void)state;
    assert_null(load("WordPiece", NULL, false, LD_E_UNSUPPORTED, "model type WordPiece"));
    assert_null(load("BPE", "[\"h\",\"zz\"]", false, LD_E_INPUT,
                     "merge 8 (\"h\" \"zz\") references the unknown token \"zz\""));
    assert_null(load("BPE", "[\"h\",\"e\"]", false, LD_E_INPUT, "is listed twice"));
    assert_null(load("BPE", "[\"l\",\"o\"]", false, LD_E_INPUT, "makes a token the vocabulary"));
    assert_null(load("BPE", "\"h\"", false, LD_E_INPUT, "not two tokens separated"));
    assert_null(load("BPE", NULL, true, LD_E_UNSUPPORTED, "not byte-level BPE"));
    ld_tokenizer *t;
    ld_error err;
    const char *bad[][2] = {
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},\"normalizer\":"
         "{\"type\":\"NFKC\"}}", "normalizer type NFKC is not supported"},
        {"{\"model\":{\"type\":\"Unigram\"}}", "model type Unigram"},
        {"{\"pre_tokenizer\":{\"type\":\"Whitespace\"}}", "pre_tokenizer type Whitespace"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false}}",
         "its own regex"},
        {"{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},"
         "\"behavior\":\"Isolated\"}}", "Split regex does not compile"},
        {"{\"model\":{\"type\":\"BPE\",\"dropout\":0.1}}", "dropout"},
        {"{\"version\":\"1\",\"version\":\"2\"}", "duplicate key \"version\""},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":4194304}}}", "not an integer in [0,"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", "no ByteLevel"},
        {"{\"model\":", "hostile.json: line 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ld_status st = ld_tokenizer_load_text(bad[i][0], strlen(bad[i][0]), "hostile.json", &t,
                                              &err);
        if (st == LD_OK || !strstr(err.msg, bad[i][1]) || !strstr(err.msg, "hostile.json"))
            fail_msg("case %zu: status %d, \"%s\" lacks \"%s\"", i, st, err.msg, bad[i][1]);
        assert_null(t);
    }
    /* An oversize file is refused before it is read (a sparse file). */
    char path[] = "/tmp/ld_tok_big_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)LD_TOK_MAX_FILE + 1), 0);
    close(fd);
    assert_int_not_equal(ld_tokenizer_load(path, &t, &err), LD_OK);
    assert_non_null(strstr(err.msg, path));
    unlink(path);
}

/* Hostile bytes: every prefix of a valid file, and files with bytes flipped, load or fail with a
 * message; never crash or leak (ASan). */
static void test_truncated_and_flipped(void **state)
{
    (void)state;
    char *json = make_json("BPE", NULL, false);
    size_t len = strlen(json);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t cut = 0; cut < len; cut += 1 + cut / 64) {
        ld_tokenizer *t;
        ld_error err;
        if (ld_tokenizer_load_text(json, cut, "cut.json", &t, &err) == LD_OK) ld_tokenizer_free(t);
        else assert_non_null(strstr(err.msg, "cut.json"));
    }
    for (int round = 0; round < 400; round++) {
        char *m = strdup(json);
        for (int k = 0; k < 3; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            m[x % len] = (char)(x >> 40);
        }
        ld_tokenizer *t;
        ld_error err;
        if (ld_tokenizer_load_text(m, len, "flip.json", &t, &err) == LD_OK) {
            int32_t *ids;
            size_t n;
            if (ld_tokenizer_encode(t, "hello <|im_start|> world 42", 27, &ids, &n, &err) == LD_OK)
                free(ids);
            ld_tokenizer_free(t);
        }
        free(m);
    }
    free(json);
}

/* decode(encode(text)) is want: the text as the NFC normalizer left it. */
static void expect_normal(const ld_tokenizer *t, const char *text, const char *want)
{
    int32_t *ids;
    size_t nids, dlen;
    char *dec;
    ld_error err;
    assert_int_equal(ld_tokenizer_encode(t, text, strlen(text), &ids, &nids, &err), LD_OK);
    assert_int_equal(ld_tokenizer_decode(t, ids, nids, &dec, &dlen, &err), LD_OK);
    if (dlen != strlen(want) || memcmp(dec, want, dlen) != 0)
        fail_msg("\"%s\" normalized to \"%.*s\", want \"%s\"", text, (int)dlen, dec, want);
    free(ids);
    free(dec);
}

/* NFC as HF tokenizers computes it (Unicode 9.0's tables): a mark assigned later is a starter
 * that composes with nothing, so it is neither reordered nor passed over. Worked out by hand from
 * the combining classes: U+0300 and U+0301 230, U+0323 220, U+1DFA 218 (Unicode 14). */
static void test_nfc_as_hf(void **state)
{
    (void)state;
    ld_tokenizer *t = load("BPE", NULL, false, LD_OK, NULL);
    expect_normal(t, "a\xcc\x81", "\xc3\xa1");                 /* a U+0301: U+00E1 */
    expect_normal(t, "\xcc\x81\xcc\xa3", "\xcc\xa3\xcc\x81");     /* 230, 220: reordered */
    /* a U+1DFA U+0301: U+1DFA stands between (utf8proc: U+00E1 U+1DFA) */
    expect_normal(t, "a\xe1\xb7\xba\xcc\x81", "a\xe1\xb7\xba\xcc\x81");
    /* U+0300 U+1DFA: kept in order (utf8proc: U+1DFA U+0300) */
    expect_normal(t, "\xcc\x80\xe1\xb7\xba", "\xcc\x80\xe1\xb7\xba");
    /* a U+0323 U+1DFA U+0301 U+0323: a U+0323 is U+1EA1; after U+1DFA the marks are reordered */
    expect_normal(t, "a\xcc\xa3\xe1\xb7\xba\xcc\x81\xcc\xa3",
                  "\xe1\xba\xa1\xe1\xb7\xba\xcc\xa3\xcc\x81");
    /* Code points Unicode 14 had not assigned: U+31350 (CJK Extension H, Unicode 15) and U+0378
     * (unassigned still); not the noncharacters, nor CJK, nor ASCII */
    assert_int_equal(ld_tokenizer_unclassed("a \xf0\xb1\x8d\x90", 6), 0x31350);
    assert_int_equal(ld_tokenizer_unclassed("\xcd\xb8", 2), 0x378);
    assert_int_equal(ld_tokenizer_unclassed("\xe4\xb8\xad\xef\xb7\x90\xef\xbf\xbf abc", 13),
                     -1);
    /* U+11935 U+11930 stay apart (utf8proc composes them to U+11938, Unicode 13) */
    expect_normal(t, "\xf0\x91\xa4\xb5\xf0\x91\xa4\xb0", "\xf0\x91\xa4\xb5\xf0\x91\xa4\xb0");
    ld_tokenizer_free(t);
}

/* decode(encode(text)) is the NFC form of text, for random text over letters, digits, white
 * space, CJK, combining marks, emoji with ZWJ and variation selectors, apostrophes and pieces of
 * the special token. */
static void test_roundtrip_random(void **state)
{
    (void)state;
    static const char *const atoms[] = {"a", "Z", "he", "llo", " ", "  ", "\n", "\r\n", "\t", "7",
                                        "'s", "'LL", "\xe4\xbb\x8a", "\xe5\xa4\xa9", "e\xcc\x81",
                                        "\xcc\x81", "\xf0\x9f\x91\xa8", "\xe2\x80\x8d",
                                        "\xef\xb8\x8f", "<|im_", "start|>", "<|im_start|>", "!",
                                        "\xc2\xa0", "\xe3\x80\x80", "\x01", "\\"};
    ld_tokenizer *t = load("BPE", NULL, false, LD_OK, NULL);
    uint64_t x = 42;
    char text[512];
    for (int round = 0; round < 3000; round++) {
        size_t n = 0;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int parts = (int)(x % 24);
        for (int k = 0; k < parts; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const char *a = atoms[x % (sizeof atoms / sizeof atoms[0])];
            memcpy(text + n, a, strlen(a));
            n += strlen(a);
        }
        int32_t *ids;
        size_t nids;
        char *dec;
        size_t dlen;
        ld_error err;
        assert_int_equal(ld_tokenizer_encode(t, text, n, &ids, &nids, &err), LD_OK);
        assert_int_equal(ld_tokenizer_decode(t, ids, nids, &dec, &dlen, &err), LD_OK);
        utf8proc_uint8_t *nfc = NULL;
        utf8proc_ssize_t m = n ? utf8proc_map((const utf8proc_uint8_t *)text,
                                              (utf8proc_ssize_t)n, &nfc,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE)
                               : 0;
        assert_true(m >= 0);
        if ((size_t)m != dlen || (m && memcmp(nfc, dec, dlen) != 0))
            fail_msg("round %d: decode(encode(%.*s)) differs from its NFC form", round, (int)n,
                     text);
        free(nfc);
        free(ids);
        free(dec);
    }
    ld_tokenizer_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_by_hand),
        cmocka_unit_test(test_nfc_as_hf),
        cmocka_unit_test(test_bad_text_and_decode),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_truncated_and_flipped),
        cmocka_unit_test(test_roundtrip_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

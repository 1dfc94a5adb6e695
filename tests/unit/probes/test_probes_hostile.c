/* test_probes_hostile.c — the hostile-input corpus: every refusal the reader promises, each with
 * its status and the words its message must hold ("PATH:LINE: what"), plus the inputs it accepts
 * on purpose (CRLF, a byte order mark, a 100 MB line). Every case is read twice over: whole, and
 * with payloads streamed in pieces (stream_data), which must give the same status and message. Streams are built here from one valid
 * header, probe and end line by substitution, so each case shows exactly what is wrong. The table
 * doubles as documentation: docs/probes.md lists the same cases. */
#include <zlib.h>

#include "codec.h"
#include "probe_test_util.h"

static const char header[] =
    "{\"record\":\"header\",\"format\":\"layerdiff-probes\",\"version\":1,\"implementation\":\"t\","
    "\"backend\":{\"device\":\"cpu\"},\"model\":{\"fingerprint\":\"f\"},\"input\":{\"tokens\":[1,2],"
    "\"decode_steps\":0},\"faults\":[],\"created\":\"2026-01-31T12:00:00Z\",\"tool\":{\"name\":"
    "\"layerdiff\",\"version\":\"0.1.0\",\"git\":\"abc\"}}";

/* f32 [4] = {1,2,3,4}; B64 and CRC are filled in at run time. */
static const char probe[] =
    "{\"record\":\"probe\",\"index\":0,\"step\":0,\"layer\":0,\"tag\":\"q_norm\",\"pos0\":0,"
    "\"dtype\":\"f32\",\"shape\":[4],\"stats\":{\"min\":1,\"max\":4,\"mean\":2.5,\"std\":1.118,"
    "\"l2\":5.477,\"absmax\":4,\"nan\":0,\"inf\":0},\"head\":[1,2,3,4],\"data\":{\"encoding\":"
    "\"base64\",\"dtype\":\"f32\",\"crc32\":CRC,\"b64\":\"B64\"}}";

static const char end[] = "{\"record\":\"end\",\"status\":\"ok\",\"probes\":1,\"tokens\":[],"
                          "\"decoded\":[],\"last_key\":\"S0.L0.q_norm\"}";

/* Replaces the first occurrence of from in s by to (malloc'd result). */
static char *subst(const char *s, const char *from, const char *to)
{
    const char *at = from && *from ? strstr(s, from) : NULL;
    if (from && *from && !at)
        fail_msg("template lacks '%s'", from);
    size_t n = strlen(s), fl = at ? strlen(from) : 0, tl = at ? strlen(to) : 0;
    char *out = malloc(n - fl + tl + 1);
    assert_non_null(out);
    if (!at) {
        memcpy(out, s, n + 1);
        return out;
    }
    size_t pre = (size_t)(at - s);
    memcpy(out, s, pre);
    memcpy(out + pre, to, tl);
    memcpy(out + pre + tl, at + fl, n - pre - fl + 1);
    return out;
}

static char *b64_of(const void *data, size_t n)
{
    char *s = malloc(ld_b64_encoded_len(n) + 1);
    assert_non_null(s);
    ld_b64_encode(data, n, s);
    s[ld_b64_encoded_len(n)] = '\0';
    return s;
}

/* The valid probe line with its payload filled in (and optionally another payload). */
static char *probe_with(const void *payload, size_t n, const char *encoding, uint32_t crc)
{
    char crc_text[16];
    snprintf(crc_text, sizeof crc_text, "%u", (unsigned)crc);
    char *b64 = b64_of(payload, n);
    char *a = subst(probe, "CRC", crc_text);
    char *b = subst(a, "B64", b64);
    char *c = subst(b, "\"encoding\":\"base64\"", encoding);
    free(a);
    free(b);
    free(b64);
    return c;
}

static const float four[4] = {1, 2, 3, 4};

static char *valid_probe(void) { return probe_with(four, 16, "\"encoding\":\"base64\"", (uint32_t)crc32(0L, (const Bytef *)four, 16)); }

typedef struct outcome {
    ld_status st;
    char msg[LD_ERROR_MSG_MAX];
    uint64_t probes;
} outcome;

/* Reads text whole, and again with stream_data in pieces of several sizes, which must say the
 * same (probe_test_util.h); returns what the whole read said. */
static outcome read_stream(const char *text, size_t len, const ld_reader_options *opt)
{
    tu_outcome t = tu_same_both_ways("hostile case", text, len, opt);
    outcome o = {t.st, "", t.probes};
    snprintf(o.msg, sizeof o.msg, "%s", t.msg);
    return o;
}

static void expect(const char *what, const char *text, size_t len, ld_status st, const char *needle)
{
    outcome o = read_stream(text, len, NULL);
    if (o.st != st || (needle && !strstr(o.msg, needle)))
        fail_msg("%s: got %s '%s', expected %s with '%s'", what, ld_status_name(o.st), o.msg,
                 ld_status_name(st), needle ? needle : "");
}

/* header + line + end, each '\n'-terminated. */
static void expect_lines(const char *what, const char *h, const char *p, const char *e,
                         ld_status st, const char *needle)
{
    size_t n = strlen(h) + (p ? strlen(p) : 0) + (e ? strlen(e) : 0) + 4;
    char *t = malloc(n);
    snprintf(t, n, "%s\n%s%s%s%s", h, p ? p : "", p ? "\n" : "", e ? e : "", e ? "\n" : "");
    expect(what, t, strlen(t), st, needle);
    free(t);
}

/* Substitution cases on the probe line. */
static const struct {
    const char *from, *to, *needle;
} probe_cases[] = {
    {"\"index\":0,", "\"index\":0,\"index\":0,", "mem:2: not valid JSON at column 29: duplicate member name \"index\""},
    {"\"nan\":0,", "\"nan\":0,\"nan\":0,", "duplicate member name \"nan\""},
    {"\"index\":0", "\"index\":1.5", "field \"index\" is 1.5, expected an integer"},
    {"\"index\":0", "\"index\":5", "index is 5 but 0 probes came before it"},
    {"\"index\":0", "\"index\":\"0\"", "field \"index\" is a string, expected a number"},
    {"\"step\":0", "\"step\":01", "number with a leading zero"},
    {"\"step\":0", "\"step\":-1", "field \"step\" is -1, expected an integer in [0, 2147483647]"},
    {"\"step\":0", "\"step\":4294967296", "expected an integer in [0, 2147483647]"},
    {"\"step\":0", "\"step\":1e2", "field \"step\" is 1e2, expected an integer"},
    {"\"step\":0", "\"step\":99999999999999999999999999999999999999999999999999999999999999999", "number literal longer than 64 characters"},
    {"\"layer\":0,", "", "q_norm is a per-layer tag but the record has no layer"},
    {"\"tag\":\"q_norm\"", "\"tag\":\"logits\"", "logits is a model-level tag but the record has a layer"},
    {"\"tag\":\"q_norm\"", "\"tag\":\"q norm\"", "field \"tag\" is \"q norm\", not a tag name"},
    {"\"tag\":\"q_norm\"", "\"tag\":\"q_norm\\u0000x\"", "field \"tag\" is not a tag name"},
    {"\"tag\":\"q_norm\"", "\"tag\":\"\"", "not a tag name"},
    {"\"tag\":\"q_norm\"", "\"tag\":7", "field \"tag\" is a number, expected a string"},
    {"\"tag\":\"q_norm\",", "", "missing field \"tag\""},
    {"\"pos0\":0,", "\"pos0\":0,\"foo\":1,", "unknown field \"foo\" in a probe record"},
    {"\"pos0\":0,", "\"pos0\":-3,", "field \"pos0\" is -3"},
    {"\"dtype\":\"f32\",\"shape\"", "\"dtype\":\"f64\",\"shape\"", "dtype is \"f64\", expected \"f32\", \"bf16\" or \"f16\""},
    {"\"dtype\":\"f32\",\"shape\"", "\"dtype\":\"F32\",\"shape\"", "dtype is \"F32\""},
    {"\"shape\":[4]", "\"shape\":[4294967296,4294967296,4294967296]", "shape has more than 2^40 elements (its size overflows)"},
    /* issue 15, item 10: a zero does not excuse the other dims, in either order */
    {"\"shape\":[4]", "\"shape\":[0,1073741824,1073741824]", "shape has more than 2^40 elements"},
    {"\"shape\":[4]", "\"shape\":[1073741824,1073741824,0]", "shape has more than 2^40 elements"},
    {"\"shape\":[4]", "\"shape\":[1,1,1,1,4]", "shape has 5 dimensions, expected 1 to 4"},
    {"\"shape\":[4]", "\"shape\":[]", "shape has 0 dimensions"},
    {"\"shape\":[4]", "\"shape\":[-4]", "shape[0] is not an integer in [0, 2^53]"},
    {"\"shape\":[4]", "\"shape\":[4.0]", "shape[0] is not an integer"},
    {"\"shape\":[4]", "\"shape\":[2,2],\"shape\":[4]", "duplicate member name \"shape\""},
    {"\"stats\":{\"min\":1,", "\"stats\":{", "missing field \"stats.min\""},
    {"\"min\":1", "\"min\":NaN", "unexpected character (expected a value)"},
    {"\"min\":1", "\"min\":\"nan\"", "stats.min is a string, expected a number or \"NaN\""},
    {"\"min\":1", "\"min\":true", "stats.min is a boolean"},
    {"\"min\":1", "\"min\":1e999", "stats.min = 1e999 is out of the range of a double"},
    {"\"min\":1", "\"min\":1,\"median\":2", "unknown field \"median\" in stats"},
    {"\"nan\":0", "\"nan\":5", "stats count 5 NaN and 0 Inf among 4 elements"},
    {"\"inf\":0", "\"inf\":-1", "field \"inf\" is -1"},
    {"\"head\":[1,2,3,4]", "\"head\":[1,2,3]", "head has 3 values, expected 4"},
    {"\"head\":[1,2,3,4]", "\"head\":[1,2,3,{}]", "head[3] is an object"},
    {"\"head\":[1,2,3,4]", "\"head\":[1,2,3,4,]", "unexpected character (expected a value)"},
    {"\"head\":[1,2,3,4]", "\"head\":[3,2,3,4]", "head[0] = 3 disagrees with element 0 of the payload (1)"},
    /* statistics that contradict themselves, the head or the payload (issue 15, item 1) */
    {"\"l2\":5.477", "\"l2\":\"NaN\"", "stats.l2 is nan but 4 elements are finite"},
    {"\"l2\":5.477", "\"l2\":\"Infinity\"", "stats.l2 is inf but 4 elements are finite"},
    {"\"l2\":5.477", "\"l2\":547.7", "stats.l2 547.70000000000005 disagrees with mean 2.5"},
    {"\"min\":1,\"max\":4", "\"min\":5,\"max\":4", "stats.min 5 is above stats.max 4"},
    {"\"std\":1.118", "\"std\":-1.118", "stats.std is negative (-1.1180000000000001)"},
    {"\"absmax\":4", "\"absmax\":7", "stats.absmax 7 is not the larger of |min| 1 and |max| 4"},
    {"\"nan\":0", "\"nan\":2", "the head holds 0 NaN, 0 Inf and 4 finite values but the stats "
     "count nan 2, inf 0 of 4 elements"},
    {"\"min\":1,", "\"min\":0,", "stats.min 0 and stats.max 4 but the payload's are 1 and 4"},
    {"\"encoding\":\"base64\"", "\"encoding\":\"lz4+base64\"", "data.encoding is \"lz4+base64\""},
    {"\"crc32\":", "\"crc32\":1,\"x\":", "unknown field \"x\" in data"},
    {"\"b64\":\"AACAPw", "\"b64\":\"AA*APw", "bad base64 in data.b64 at character 2: character outside the alphabet"},
    {"\"b64\":\"AACAPw", "\"b64\":\"AACAP", "bad base64 in data.b64: length 23 is not a multiple of 4"},
    {"\"b64\":\"AACAPwAAAEAAAEBAAACAQA==\"", "\"b64\":\"AACAPwAAAEA=\"", "payload decodes to 8 bytes, expected 16 (4 elements of f32)"},
    {"\"data\":{\"encoding\"", "\"data\":{\"dtype\":\"f32\",\"encoding\"", "duplicate member name \"dtype\""},
    {"\"record\":\"probe\"", "\"record\":\"probe\",\"record\":\"probe\"", "duplicate member name \"record\""},
    {"\"tag\":\"q_norm\"", "\"tag\":\"q_n\xc3\x28rm\"", "invalid UTF-8 in a string"},
    {"\"tag\":\"q_norm\"", "\"tag\":\"q_n\x01rm\"", "raw control character in a string"},
    /* the line ends at the payload's closing quote (order 0): no suffix at all */
    {"}}", "", "object not closed"},
    {"\"tag\":\"q_norm\"", "\"tag\":\"q_\\udc00\"", "lone low surrogate"},
    {"\"tag\":\"q_norm\"", "\"tag\":\"q_\\q\"", "invalid escape sequence"},
    {"{\"record\"", "[{\"record\"", "array not closed"},
    {"\"step\":0", "\"step\" 0", "expected ':' after a member name"},
};

/* Each case on the template (crc32 before b64, as earlier writers put it) and on the writer's own
 * order (crc32 last), where what follows the payload streams in after it. */
static void test_probe_line_cases(void **state)
{
    (void)state;
    for (int order = 0; order < 2; order++) {
        char *p = valid_probe();
        if (order == 1) {
            char *crc = strstr(p, ",\"crc32\":"), *b64 = strstr(p, "\"b64\":");
            char crc_text[32];
            size_t cl = (size_t)(strchr(crc + 1, ',') - crc);
            snprintf(crc_text, sizeof crc_text, "%.*s", (int)cl, crc);
            char *tail = strstr(b64, "\"}}");
            char *q = malloc(strlen(p) + 1);
            snprintf(q, strlen(p) + 1, "%.*s%.*s%s}}", (int)(crc - p), p,
                     (int)(tail + 1 - (crc + cl)), crc + cl, crc_text);
            assert_non_null(strstr(q, "\",\"crc32\":"));
            free(p);
            p = q;
        }
        expect_lines("valid", header, p, end, LD_OK, NULL);
        for (size_t i = 0; i < sizeof probe_cases / sizeof probe_cases[0]; i++) {
            char *bad = subst(p, probe_cases[i].from, probe_cases[i].to);
            char what[64];
            snprintf(what, sizeof what, "probe case %zu (order %d)", i, order);
            expect_lines(what, header, bad, end, LD_E_INPUT, probe_cases[i].needle);
            free(bad);
        }
        free(p);
    }
}

static void test_payload_cases(void **state)
{
    (void)state;
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)four, 16);
    /* crc mismatch */
    char *p = probe_with(four, 16, "\"encoding\":\"base64\"", crc ^ 1u);
    char needle[128];
    snprintf(needle, sizeof needle, "data.crc32 is %u but the decoded payload's crc32 is %u",
             (unsigned)(crc ^ 1u), (unsigned)crc);
    expect_lines("crc", header, p, end, LD_E_INPUT, needle);
    free(p);
    /* zlib: valid, then corrupt, longer than expected, shorter, trailing bytes */
    unsigned char z[64], big[64];
    uLongf zn = sizeof z;
    assert_int_equal(compress2(z, &zn, (const Bytef *)four, 16, 6), Z_OK);
    p = probe_with(z, zn, "\"encoding\":\"zlib+base64\"", crc);
    expect_lines("zlib ok", header, p, end, LD_OK, NULL);
    free(p);
    unsigned char zc[64];
    memcpy(zc, z, zn);
    zc[zn - 2] ^= 0x55;
    p = probe_with(zc, zn, "\"encoding\":\"zlib+base64\"", crc);
    expect_lines("zlib corrupt", header, p, end, LD_E_INPUT, "data.b64: corrupt zlib data");
    free(p);
    float five[5] = {1, 2, 3, 4, 5};
    uLongf bn = sizeof big;
    assert_int_equal(compress2(big, &bn, (const Bytef *)five, 20, 6), Z_OK);
    p = probe_with(big, bn, "\"encoding\":\"zlib+base64\"", crc);
    expect_lines("zlib past", header, p, end, LD_E_INPUT, "inflates past the expected 16 bytes");
    free(p);
    bn = sizeof big;
    assert_int_equal(compress2(big, &bn, (const Bytef *)four, 12, 6), Z_OK);
    p = probe_with(big, bn, "\"encoding\":\"zlib+base64\"", crc);
    expect_lines("zlib short", header, p, end, LD_E_INPUT, "inflates to 12 bytes, expected 16");
    free(p);
    memcpy(big, z, zn);
    big[zn] = 0;
    p = probe_with(big, zn + 1, "\"encoding\":\"zlib+base64\"", crc);
    expect_lines("zlib trailing", header, p, end, LD_E_INPUT, "1 bytes after the end of the zlib");
    free(p);
    p = probe_with(z, zn - 4, "\"encoding\":\"zlib+base64\"", crc);
    expect_lines("zlib cut", header, p, end, LD_E_INPUT, "zlib stream cut short");
    free(p);
    /* data of the wrong type, on a probe without a payload */
    char *nodata = subst(probe, ",\"data\":{\"encoding\":\"base64\",\"dtype\":\"f32\",\"crc32\":CRC,"
                                "\"b64\":\"B64\"}", ",\"data\":[]");
    expect_lines("data array", header, nodata, end, LD_E_INPUT,
                 "field \"data\" is an array, expected an object");
    free(nodata);
    /* a bomb: 4 GB claimed from a few bytes is refused before any allocation */
    char line[2048];
    snprintf(line, sizeof line,
             "{\"record\":\"probe\",\"index\":0,\"step\":0,\"tag\":\"logits\",\"pos0\":0,"
             "\"dtype\":\"f32\",\"shape\":[1000000000],\"stats\":{\"min\":0,\"max\":0,\"mean\":0,"
             "\"std\":0,\"l2\":0,\"absmax\":0,\"nan\":0,\"inf\":0},\"head\":[0,0,0,0,0,0,0,0,0,0,"
             "0,0,0,0,0,0],\"data\":{\"encoding\":\"zlib+base64\",\"dtype\":\"f32\",\"crc32\":0,"
             "\"b64\":\"eJwDAAAAAAE=\"}}");
    const char *end0 = "{\"record\":\"end\",\"status\":\"ok\",\"probes\":1,\"tokens\":[],"
                       "\"decoded\":[],\"last_key\":\"S0.logits\"}";
    expect_lines("bomb", header, line, end0, LD_E_INPUT,
                 "8 bytes of zlib data cannot inflate to the expected 4000000000 bytes");
    /* shuffle+zlib whose inflated bytes are fine but in the wrong plane order: crc catches it */
    unsigned char raw[16];
    memcpy(raw, four, 16);
    unsigned char *zz;
    size_t zzn;
    ld_error err;
    TU_OK(ld_zlib_encode(raw, 16, 1, 1, &zz, &zzn, &err), &err); /* not shuffled */
    p = probe_with(zz, zzn, "\"encoding\":\"shuffle+zlib+base64\"", crc);
    expect_lines("unshuffled", header, p, end, LD_E_INPUT, "but the decoded payload's crc32 is");
    free(p);
    free(zz);
}

static void test_header_cases(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to;
        ld_status st;
        const char *needle;
    } cases[] = {
        {"\"format\":\"layerdiff-probes\"", "\"format\":\"other\"", LD_E_INPUT, "mem:1: header: format is \"other\", not \"layerdiff-probes\": not a layerdiff probe stream"},
        {"\"version\":1", "\"version\":2", LD_E_UNSUPPORTED, "format version 2 is not supported (this reader knows version 1)"},
        {"\"version\":1", "\"version\":\"1\"", LD_E_INPUT, "field \"version\" is a string"},
        {"\"input\":{\"tokens\":[1,2],\"decode_steps\":0},", "", LD_E_INPUT, "missing field \"input\""},
        {"[1,2]", "[-1,2]", LD_E_INPUT, "tokens[0] is not an integer in [0, 2147483647]"},
        {"[1,2]", "[1,2147483648]", LD_E_INPUT, "tokens[1] is not an integer"},
        {"\"decode_steps\":0", "\"decode_steps\":0,\"x\":0", LD_E_INPUT, "unknown field \"x\" in header.input"},
        {"2026-01-31T12:00:00Z", "yesterday", LD_E_INPUT, "field \"created\" is not an ISO-8601 UTC time"},
        {"\"implementation\":\"t\"", "\"implementation\":\"\"", LD_E_INPUT, "field \"implementation\" is empty"},
        {"\"faults\":[]", "\"faults\":[3]", LD_E_INPUT, "faults[0] is not a string"},
        /* the strings copied before the bad entry are freed (a leak under the asan pass) */
        {"\"faults\":[]", "\"faults\":[\"a@0\",\"b@1\",3]", LD_E_INPUT, "faults[2] is not a string"},
        {"\"faults\":[]", "\"faults\":{}", LD_E_INPUT, "field \"faults\" is an object, expected an array"},
        {"{\"device\":\"cpu\"}", "{\"device\":\"cpu\",\"device\":\"gpu\"}", LD_E_INPUT, "duplicate member name \"device\""},
        {"{\"fingerprint\":\"f\"}", "{\"fingerprint\":7}", LD_E_INPUT, "model.fingerprint is a number, expected a string"},
        {"\"git\":\"abc\"", "\"git\":\"abc\",\"os\":\"linux\"", LD_E_INPUT, "unknown field \"os\" in header.tool"},
        {"\"record\":\"header\",", "\"record\":\"header\",\"extra\":true,", LD_E_INPUT, "unknown field \"extra\" in the header"},
        /* the writer's filter (--tags, --layers, --steps): the probes must keep to it */
        {"\"faults\":[]", "\"faults\":[],\"filter\":{\"tags\":\"k_*,q_*\",\"layers\":\"0\",\"steps\":\"0-\"}", LD_OK, NULL},
        {"\"faults\":[]", "\"faults\":[],\"filter\":{\"tags\":\"logits\"}", LD_E_INPUT, "mem:2: probe S0.L0.q_norm: the key is outside the header's filter (tags \"logits\", layers \"\", steps \"\")"},
        {"\"faults\":[]", "\"faults\":[],\"filter\":{\"layers\":\"1-\"}", LD_E_INPUT, "the key is outside the header's filter (tags \"\", layers \"1-\", steps \"\")"},
        {"\"faults\":[]", "\"faults\":[],\"filter\":{\"steps\":\"x\"}", LD_E_INPUT, "mem:1: header.filter: steps: bad range 'x'"},
        {"\"faults\":[]", "\"faults\":[],\"filter\":{\"tags\":3}", LD_E_INPUT, "field \"tags\" is a number"},
        {"\"faults\":[]", "\"faults\":[],\"filter\":{\"tags\":\"\"}", LD_E_INPUT, "tags is empty or holds a NUL"},
        {"\"faults\":[]", "\"faults\":[],\"filter\":[]", LD_E_INPUT, "filter is an array, expected an object"},
        {"\"faults\":[]", "\"faults\":[],\"filter\":{\"tag\":\"q\"}", LD_E_INPUT, "unknown field \"tag\" in header.filter"},
    };
    char *p = valid_probe();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *h = subst(header, cases[i].from, cases[i].to);
        char what[64];
        snprintf(what, sizeof what, "header case %zu", i);
        expect_lines(what, h, p, end, cases[i].st, cases[i].needle);
        free(h);
    }
    free(p);
}

static void test_end_and_order_cases(void **state)
{
    (void)state;
    char *p = valid_probe();
    static const struct {
        const char *from, *to, *needle;
    } cases[] = {
        {"\"probes\":1", "\"probes\":2", "mem:3: end record: it counts 2 probes but the stream holds 1"},
        {"\"last_key\":\"S0.L0.q_norm\"", "\"last_key\":\"S0.L1.q_norm\"", "last_key is \"S0.L1.q_norm\" but the last probe read is \"S0.L0.q_norm\""},
        {"\"status\":\"ok\"", "\"status\":\"error\"", "status is \"error\" but there is no message"},
        {"\"status\":\"ok\"", "\"status\":\"fine\"", "status is \"fine\", expected \"ok\" or \"error\""},
        {"\"tokens\":[]", "\"tokens\":[1.5]", "tokens[0] is not an integer"},
        {"\"decoded\":[],", "", "missing field \"decoded\""},
        {"\"last_key\"", "\"why\":1,\"last_key\"", "unknown field \"why\" in the end record"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *e = subst(end, cases[i].from, cases[i].to);
        char what[64];
        snprintf(what, sizeof what, "end case %zu", i);
        expect_lines(what, header, p, e, LD_E_INPUT, cases[i].needle);
        free(e);
    }
    char *ok_err = subst(end, "\"status\":\"ok\"", "\"status\":\"error\",\"message\":\"boom\"");
    expect_lines("error end", header, p, ok_err, LD_OK, NULL);
    free(ok_err);

    /* order and kinds of records */
    char buf[8192];
    snprintf(buf, sizeof buf, "%s\n", p);
    expect("probe first", buf, strlen(buf), LD_E_INPUT, "mem:1: the first record is a probe, not the header");
    snprintf(buf, sizeof buf, "%s\n%s\n", end, header);
    expect("end first", buf, strlen(buf), LD_E_INPUT, "mem:1: the first record is the end record");
    snprintf(buf, sizeof buf, "{\"a\":1}\n");
    expect("no record field", buf, strlen(buf), LD_E_INPUT, "mem:1: no \"record\" field (header, probe or end)");
    snprintf(buf, sizeof buf, "%s\n%s\n", header, header);
    expect("two headers", buf, strlen(buf), LD_E_INPUT, "mem:2: a second header record");
    snprintf(buf, sizeof buf, "%s\n{\"record\":\"trace\"}\n", header);
    expect("unknown kind", buf, strlen(buf), LD_E_INPUT, "mem:2: unknown record kind \"trace\"");
    snprintf(buf, sizeof buf, "%s\n{\"record\":5}\n", header);
    expect("record number", buf, strlen(buf), LD_E_INPUT, "mem:2: field \"record\" is a number");
    snprintf(buf, sizeof buf, "%s\nhello\n", header);
    expect("not json", buf, strlen(buf), LD_E_INPUT, "mem:2: not valid JSON at column 1: unexpected character");
    snprintf(buf, sizeof buf, "%s\n[1,2]\n", header);
    expect("array record", buf, strlen(buf), LD_E_INPUT, "mem:2: a record must be a JSON object, not an array");
    snprintf(buf, sizeof buf, "%s\n\n%s\n", header, end);
    expect("blank line", buf, strlen(buf), LD_E_INPUT, "mem:2: not valid JSON at column 1: no JSON value (blank line)");
    snprintf(buf, sizeof buf, "%s\n%s\n%s\n%s\n", header, p, end, end);
    expect("after end", buf, strlen(buf), LD_E_INPUT, "mem:4: data after the end record (line 3)");
    snprintf(buf, sizeof buf, "%s\n%s\n%s\n ", header, p, end);
    expect("space after end", buf, strlen(buf), LD_E_INPUT, "data after the end record");
    snprintf(buf, sizeof buf, "%s\n%s\n", header, p);
    expect("no end", buf, strlen(buf), LD_E_TRUNCATED, "mem: stream truncated after line 2: no end record; last complete probe: S0.L0.q_norm");
    snprintf(buf, sizeof buf, "%s\n%s", header, p);
    expect("no newline", buf, strlen(buf), LD_E_TRUNCATED, "mem:2: stream truncated: the last line is cut short (no newline); last complete probe: none");
    snprintf(buf, sizeof buf, "%s\r%s\r%s\r", header, p, end);
    expect("CR only", buf, strlen(buf), LD_E_TRUNCATED, "cut short (no newline)");
    expect("empty", "", 0, LD_E_TRUNCATED, "mem: stream truncated: the file is empty (no header record)");
    expect("BOM only", "\xef\xbb\xbf", 3, LD_E_TRUNCATED, "mem:1: stream truncated: the last line is cut short");
    snprintf(buf, sizeof buf, "\xef\xbb\xbf%s\r\n%s\r\n%s\r\n", header, p, end);
    expect("BOM and CRLF", buf, strlen(buf), LD_OK, NULL);
    snprintf(buf, sizeof buf, "%s\n\xef\xbb\xbf%s\n%s\n", header, p, end);
    expect("BOM not first", buf, strlen(buf), LD_E_INPUT, "mem:2: not valid JSON at column 1: unexpected non-ASCII byte");
    char nul[] = "{\"record\":\"header\"}\n";
    nul[2] = '\0';
    expect("NUL byte", nul, sizeof nul - 1, LD_E_INPUT, "mem: a NUL byte at byte 2 of the text");
    free(p);
}

/* A line of depth levels of '[' inside the header's model object. */
static void test_deep_nesting(void **state)
{
    (void)state;
    size_t depth = 100000;
    char *model = malloc(depth * 2 + 32);
    size_t k = 0;
    k += (size_t)sprintf(model, "{\"a\":");
    memset(model + k, '[', depth);
    k += depth;
    memset(model + k, ']', depth);
    k += depth;
    model[k++] = '}';
    model[k] = '\0';
    char *h = subst(header, "{\"fingerprint\":\"f\"}", model);
    expect_lines("deep", h, NULL, end, LD_E_INPUT, "mem:1: not valid JSON at column 183: nesting deeper than 64 levels");
    free(h);
    free(model);
    /* 60 levels are fine in the free-form model object */
    char ok[256] = "{\"a\":";
    for (int i = 0; i < 60; i++)
        strcat(ok, "[");
    for (int i = 0; i < 60; i++)
        strcat(ok, "]");
    strcat(ok, "}");
    h = subst(header, "{\"fingerprint\":\"f\"}", ok);
    char e[256];
    snprintf(e, sizeof e, "{\"record\":\"end\",\"status\":\"ok\",\"probes\":0,\"tokens\":[],\"decoded\":[],\"last_key\":\"\"}");
    expect_lines("60 deep", h, NULL, e, LD_OK, NULL);
    free(h);
}

/* Values counts and big objects: a 2,000,001-element array, 100,000 distinct member names
 * (accepted, and a duplicate among them found), a 100 MB line accepted by default and refused
 * early under a small max_line. */
static void test_sizes(void **state)
{
    (void)state;
    size_t n = 2000001;
    char *arr = malloc(n * 2 + 16);
    size_t k = (size_t)sprintf(arr, "{\"a\":[");
    for (size_t i = 0; i < n; i++) {
        arr[k++] = '0';
        arr[k++] = ',';
    }
    arr[k - 1] = ']';
    arr[k++] = '}';
    arr[k] = '\0';
    char *h = subst(header, "{\"fingerprint\":\"f\"}", arr);
    expect_lines("too many values", h, NULL, end, LD_E_INPUT, "more than 2000000 values in one record");
    free(h);
    free(arr);

    size_t m = 100000;
    char *obj = malloc(m * 16 + 64);
    k = (size_t)sprintf(obj, "{");
    for (size_t i = 0; i < m; i++)
        k += (size_t)sprintf(obj + k, "%s\"k%zu\":0", i ? "," : "", i);
    strcpy(obj + k, "}");
    h = subst(header, "{\"fingerprint\":\"f\"}", obj);
    const char *e0 = "{\"record\":\"end\",\"status\":\"ok\",\"probes\":0,\"tokens\":[],\"decoded\":[],\"last_key\":\"\"}";
    expect_lines("100k names", h, NULL, e0, LD_OK, NULL);
    free(h);
    strcpy(obj + k, ",\"k777\":1}");
    h = subst(header, "{\"fingerprint\":\"f\"}", obj);
    expect_lines("100k names, one twice", h, NULL, e0, LD_E_INPUT, "duplicate member name \"k777\"");
    free(h);
    free(obj);

    /* 100 MB of JSON whitespace inside a valid probe record */
    size_t pad = 100u << 20;
    char *p = valid_probe();
    size_t plen = strlen(p), hlen = strlen(header), elen = strlen(end);
    char *big = malloc(hlen + plen + elen + pad + 8);
    k = 0;
    memcpy(big + k, header, hlen);
    k += hlen;
    big[k++] = '\n';
    memcpy(big + k, p, 1); /* '{' */
    k += 1;
    memset(big + k, ' ', pad);
    k += pad;
    memcpy(big + k, p + 1, plen - 1);
    k += plen - 1;
    big[k++] = '\n';
    memcpy(big + k, end, elen);
    k += elen;
    big[k++] = '\n';
    expect("100 MB line", big, k, LD_OK, NULL);
    ld_reader_options opt;
    ld_reader_options_init(&opt);
    opt.max_line = 1u << 20;
    outcome o = read_stream(big, k, &opt);
    assert_int_equal(o.st, LD_E_INPUT);
    assert_non_null(strstr(o.msg, "mem:2: line longer than the 1048576-byte limit"));
    opt.max_line = 100; /* short lines too, when the whole file sits in the read buffer */
    o = read_stream(big, hlen + 1, &opt);
    assert_int_equal(o.st, LD_E_INPUT);
    assert_non_null(strstr(o.msg, "mem:1: line longer than the 100-byte limit"));
    /* A NUL byte (/dev/zero, a binary file) is refused where it is read, with the same message
     * read whole or streamed, not once a line of them has filled the buffer (or at its end). */
    memset(big + hlen + 1, 0, 1);
    o = read_stream(big, k, NULL);
    assert_int_equal(o.st, LD_E_INPUT);
    char want[96];
    snprintf(want, sizeof want, "mem: a NUL byte at byte %zu of the text", hlen + 1);
    assert_non_null(strstr(o.msg, want));
    memset(big + k / 2, 0, 1);
    memset(big + hlen + 1, '{', 1);
    o = read_stream(big, k, NULL);
    assert_int_equal(o.st, LD_E_INPUT);
    snprintf(want, sizeof want, "mem: a NUL byte at byte %zu of the text", k / 2);
    assert_non_null(strstr(o.msg, want));
    memset(big, 0, k);
    o = read_stream(big, k, NULL);
    assert_int_equal(o.st, LD_E_INPUT);
    assert_non_null(strstr(o.msg, "mem: a NUL byte at byte 0 of the text"));
    /* Leading whitespace across read chunks is counted, not kept: columns, the length limit and
     * what follows the end record read as when it was kept. */
    size_t ws = (size_t)3 << 20;
    k = (size_t)sprintf(big, "%s\n", header);
    memset(big + k, ' ', ws);
    k += ws;
    k += (size_t)sprintf(big + k, "{\"record\":x}\n");
    o = read_stream(big, k, NULL);
    snprintf(want, sizeof want, "mem:2: not valid JSON at column %zu: unexpected character", ws + 11);
    assert_non_null(strstr(o.msg, want));
    opt.max_line = ws;
    o = read_stream(big, k, &opt);
    assert_non_null(strstr(o.msg, "mem:2: line longer than the 3145728-byte limit"));
    k = (size_t)sprintf(big, "%s\n%s\n%s\n", header, p, end);
    memset(big + k, ' ', ws);
    expect("spaces after the end record", big, k + ws, LD_E_INPUT, "data after the end record");
    free(big);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_line_cases),   cmocka_unit_test(test_payload_cases),
        cmocka_unit_test(test_header_cases),       cmocka_unit_test(test_end_and_order_cases),
        cmocka_unit_test(test_deep_nesting),       cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

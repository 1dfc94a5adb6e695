/* test_probes_stream.c — payloads read piece by piece (stream_data, ld_reader_read_data) give what
 * a whole read gives: the same bytes for every encoding, dtype and piece size (1 byte to more than
 * the payload), and for every damaged input the same status and message (a stream cut at every
 * offset of a payload, crc and head mismatches, random damage to every part of a record). Also:
 * which records stream, payloads left unread, misuse. Test code only. */
#include <math.h>
#include <zlib.h>

#include "codec.h"
#include "probe_test_util.h"

/* A stream of tensors of awkward sizes in one encoding: empty, 1 element, a few, and ones larger
 * than the reader's 64 KiB staging buffer, in each dtype, with NaN and Inf among the values. */
static char *write_varied(ld_encoding enc, size_t *len)
{
    char path[512];
    tu_path(path, sizeof path, "varied.jsonl");
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = LD_PAYLOAD_FULL;
    cfg.encoding = enc;
    ld_sink *s;
    ld_error err;
    ld_run_info run = tu_run();
    TU_OK(ld_sink_open(&s, path, &cfg, &run, &err), &err);
    static const int64_t sizes[] = {0, 1, 2, 3, 5, 17, 1000, 49153, 100003};
    size_t most = 100003;
    float *x = malloc(most * sizeof *x);
    uint16_t *h = malloc(most * sizeof *h);
    assert_non_null(x);
    assert_non_null(h);
    uint32_t seed = 12345;
    for (size_t i = 0; i < most; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 8.0f;
    }
    x[7] = NAN;
    x[11] = INFINITY;
    int step = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        static const ld_dtype dts[] = {LD_F32, LD_BF16, LD_F16};
        for (size_t d = 0; d < 3; d++) {
            const void *data = x;
            if (dts[d] != LD_F32) {
                for (int64_t i = 0; i < sizes[k]; i++)
                    h[i] = dts[d] == LD_BF16 ? ld_f32_to_bf16(x[i]) : ld_f32_to_f16(x[i]);
                data = h;
            }
            int64_t shape[1] = {sizes[k]};
            TU_OK(ld_sink_emit(s, step, (int)(k * 3 + d), "q_norm", 0, dts[d], shape, 1, data,
                               &err),
                  &err);
        }
    }
    int64_t lshape[2] = {3, 257};
    TU_OK(ld_sink_emit(s, 0, LD_NO_LAYER, "logits", 0, LD_F32, lshape, 2, x, &err), &err);
    TU_OK(ld_sink_close(s, NULL, &err), &err);
    free(x);
    free(h);
    return tu_slurp(path, len);
}

static void test_every_encoding_and_piece_size(void **state)
{
    (void)state;
    for (int e = 0; e < 3; e++) {
        size_t len;
        char *text = write_varied((ld_encoding)e, &len);
        tu_outcome w = tu_same_both_ways(ld_encoding_name((ld_encoding)e), text, len, NULL);
        assert_int_equal(w.st, LD_OK);
        assert_int_equal(w.probes, 28);
        /* every probe streamed, in pieces of every size up to 8 bytes */
        for (size_t chunk = 1; chunk <= 8; chunk += e == 0 ? 1 : 3) {
            tu_outcome s = tu_read_mode(text, len, NULL, chunk);
            assert_int_equal(s.st, LD_OK);
            assert_int_equal(s.streamed, 28);
            assert_true(s.data == w.data);
        }
        tu_outcome big = tu_read_mode(text, len, NULL, (size_t)1 << 24);
        assert_true(big.data == w.data);
        /* decode_data off: records stream, nothing to hand out */
        ld_reader_options nd;
        ld_reader_options_init(&nd);
        nd.decode_data = false;
        tu_outcome n = tu_same_both_ways("no decode", text, len, &nd);
        assert_int_equal(n.st, LD_OK);
        assert_int_equal(n.probes, 28);
        free(text);
    }
}

/* A stream cut at every offset of its probe lines reads the same in pieces as whole: truncated,
 * naming the last complete probe (never the one being streamed), under ASan without a read past
 * the cut. */
static void test_cut_at_every_offset(void **state)
{
    (void)state;
    tu_light = true;
    for (int e = 0; e < 3; e++) {
        char path[512];
        tu_path(path, sizeof path, "sample.jsonl");
        size_t len;
        char *text = tu_full_sample(path, (ld_encoding)e, &len);
        size_t ends[16];
        assert_int_equal(tu_line_ends(text, len, ends, 16), 8);
        for (size_t cut = ends[0]; cut < len; cut++) {
            char *copy = malloc(cut);
            memcpy(copy, text, cut);
            char what[64];
            snprintf(what, sizeof what, "%s cut at %zu", ld_encoding_name((ld_encoding)e), cut);
            tu_outcome w = tu_same_both_ways(what, copy, cut, NULL);
            if (w.st != LD_E_TRUNCATED)
                fail_msg("%s: %s", what, ld_status_name(w.st));
            free(copy);
        }
        free(text);
    }
    tu_light = false;
}

/* From files, plain and gzip-compressed, cut across the last probe line (every 5th offset: the
 * in-memory test above takes every one; this is about the file and gzip sources, and the gzip
 * ones that end early: "the gzip data ends early" is said both ways). */
static void test_cut_files(void **state)
{
    (void)state;
    tu_light = true;
    for (int e = 0; e < 3; e++) {
        char path[512], cut_path[512], gz_path[512];
        tu_path(path, sizeof path, "whole.jsonl");
        tu_path(cut_path, sizeof cut_path, "cut.jsonl");
        tu_path(gz_path, sizeof gz_path, "cut.jsonl.gz");
        size_t len;
        char *text = tu_full_sample(path, (ld_encoding)e, &len);
        size_t ends[16];
        tu_line_ends(text, len, ends, 16);
        for (size_t cut = ends[5]; cut <= len; cut = cut + 5 > len && cut < len ? len : cut + 5) {
            tu_spit(cut_path, text, cut);
            gzFile g = gzopen(gz_path, "wb");
            assert_non_null(g);
            if (cut)
                assert_int_equal(gzwrite(g, text, (unsigned)cut), (int)cut);
            assert_int_equal(gzclose(g), Z_OK);
            char what[64];
            snprintf(what, sizeof what, "%s file cut at %zu", ld_encoding_name((ld_encoding)e), cut);
            tu_outcome w = tu_same_both_ways_src(what, cut_path, NULL, 0, NULL);
            assert_int_equal(w.st, cut == len ? LD_OK : LD_E_TRUNCATED);
            w = tu_same_both_ways_src(what, gz_path, NULL, 0, NULL);
            assert_int_equal(w.st, cut == len ? LD_OK : LD_E_TRUNCATED);
            /* the gzip stream itself cut short */
            size_t gzlen;
            char *gz = tu_slurp(gz_path, &gzlen);
            tu_spit(gz_path, gz, gzlen * 3 / 4);
            free(gz);
            w = tu_same_both_ways_src(what, gz_path, NULL, 0, NULL);
            assert_int_equal(w.st, LD_E_TRUNCATED);
        }
        free(text);
    }
    tu_light = false;
}

/* The sample's q_proj line (f32 [3,2,4] = -2, -1.75, ...) with its payload replaced. */
static char *sample_with(ld_encoding enc, const char *from, const char *to, size_t *len)
{
    char path[512];
    tu_path(path, sizeof path, "one.jsonl");
    char *text = tu_full_sample(path, enc, len);
    if (!from)
        return text;
    char *at = strstr(text, from);
    assert_non_null(at);
    size_t fl = strlen(from), tl = strlen(to);
    char *out = malloc(*len - fl + tl + 1);
    size_t pre = (size_t)(at - text);
    memcpy(out, text, pre);
    memcpy(out + pre, to, tl);
    memcpy(out + pre + tl, at + fl, *len - pre - fl + 1);
    *len = *len - fl + tl;
    free(text);
    return out;
}

static ld_reader *open_streaming(const char *text, size_t len)
{
    ld_reader_options o;
    ld_reader_options_init(&o);
    o.stream_data = true;
    ld_reader *r;
    ld_error err;
    TU_OK(ld_reader_open_mem(&r, "mem", text, len, &o, &err), &err);
    return r;
}

/* crc32 and head mismatches: the bytes come out, and the call that reaches the end refuses them
 * with the whole read's message and the record's line; a payload left unread is refused by
 * ld_reader_next. */
static void test_crc_and_head_mismatch(void **state)
{
    (void)state;
    size_t len;
    char *good = sample_with(LD_ENC_BASE64, NULL, NULL, &len);
    /* embed is line 2; its crc32 text follows its b64 */
    char *crc = strstr(good, "\"crc32\":");
    assert_non_null(crc);
    unsigned long v = strtoul(crc + 8, NULL, 10);
    char from[32], to[32];
    snprintf(from, sizeof from, "\"crc32\":%lu", v);
    snprintf(to, sizeof to, "\"crc32\":%lu", v ^ 1);
    char *bad = sample_with(LD_ENC_BASE64, from, to, &len);
    tu_outcome w = tu_same_both_ways("crc", bad, len, NULL);
    assert_int_equal(w.st, LD_E_INPUT);
    char needle[160];
    snprintf(needle, sizeof needle, "mem:2: probe S0.embed: data.crc32 is %lu but the decoded "
             "payload's crc32 is %lu", v ^ 1, v);
    if (!strstr(w.msg, needle))
        fail_msg("'%s' lacks '%s'", w.msg, needle);
    ld_reader *r = open_streaming(bad, len);
    const ld_probe *p;
    ld_error err;
    TU_OK(ld_reader_next(r, &p, &err), &err);
    assert_true(p->streaming);
    assert_null(p->data);
    assert_int_equal(p->data_bytes, 96);
    float got[24];
    size_t n;
    TU_OK(ld_reader_read_data(r, got, 40, &n, &err), &err); /* not the end yet: no verdict */
    assert_int_equal(n, 40);
    assert_true(got[0] == -2.0f && got[9] == 0.25f);
    TU_FAILS(ld_reader_read_data(r, got, 96, &n, &err), &err, LD_E_INPUT, needle);
    assert_int_equal(n, 0);
    TU_FAILS(ld_reader_next(r, &p, &err), &err, LD_E_INPUT, needle); /* sticky */
    assert_string_equal(ld_reader_last_key(r), "");
    ld_reader_close(r);
    /* left unread: ld_reader_next reads it and refuses */
    r = open_streaming(bad, len);
    TU_OK(ld_reader_next(r, &p, &err), &err);
    TU_FAILS(ld_reader_next(r, &p, &err), &err, LD_E_INPUT, needle);
    ld_reader_close(r);
    free(bad);
    /* the head: q_proj's first value is -2 */
    bad = sample_with(LD_ENC_ZLIB_BASE64, "\"head\":[-2,", "\"head\":[-1,", &len);
    w = tu_same_both_ways("head", bad, len, NULL);
    assert_int_equal(w.st, LD_E_INPUT);
    assert_non_null(strstr(w.msg, "mem:2: probe S0.embed: head[0] = -1 disagrees with "
                                  "element 0 of the payload (-2)"));
    free(bad);
    free(good);
}

/* Which records stream: ours; a record whose fields come in another order, whose b64 is not
 * data's last member but for crc32, or a custom tag without a layer, is read whole (and its
 * payload is still handed out by ld_reader_read_data). */
static void test_what_streams(void **state)
{
    (void)state;
    static const char header[] =
        "{\"record\":\"header\",\"format\":\"layerdiff-probes\",\"version\":1,\"implementation\":"
        "\"t\",\"backend\":{},\"model\":{},\"input\":{\"tokens\":[1],\"decode_steps\":0},"
        "\"faults\":[],\"created\":\"2026-01-31T12:00:00Z\",\"tool\":{\"name\":\"l\",\"version\":"
        "\"0\",\"git\":\"x\"}}\n";
    /* f32 [2] = {1, 2}: AACAPwAAAEA=, crc32 of those 8 bytes */
    const float two[2] = {1, 2};
    unsigned long crc = crc32(0L, (const Bytef *)two, 8);
    static const struct {
        const char *probe;
        bool streams; /* and reads fine, else it is refused (both ways alike) */
        bool ok;
    } cases[] = {
        {"{\"record\":\"probe\",\"index\":0,\"step\":0,\"layer\":0,\"tag\":\"q_norm\",\"pos0\":0,"
         "\"dtype\":\"f32\",\"shape\":[2],\"stats\":{\"min\":1,\"max\":2,\"mean\":1.5,\"std\":0.5,"
         "\"l2\":2.236,\"absmax\":2,\"nan\":0,\"inf\":0},\"head\":[1,2],\"data\":{\"encoding\":"
         "\"base64\",\"dtype\":\"f32\",\"b64\":\"AACAPwAAAEA=\",\"crc32\":CRC}}", true, true},
        /* crc32 before b64 (an older writer) */
        {"{\"record\":\"probe\",\"index\":0,\"step\":0,\"layer\":0,\"tag\":\"q_norm\",\"pos0\":0,"
         "\"dtype\":\"f32\",\"shape\":[2],\"stats\":{\"min\":1,\"max\":2,\"mean\":1.5,\"std\":0.5,"
         "\"l2\":2.236,\"absmax\":2,\"nan\":0,\"inf\":0},\"head\":[1,2],\"data\":{\"encoding\":"
         "\"base64\",\"dtype\":\"f32\",\"crc32\":CRC,\"b64\":\"AACAPwAAAEA=\"}}", true, true},
        /* data before head */
        {"{\"record\":\"probe\",\"index\":0,\"step\":0,\"layer\":0,\"tag\":\"q_norm\",\"pos0\":0,"
         "\"dtype\":\"f32\",\"shape\":[2],\"stats\":{\"min\":1,\"max\":2,\"mean\":1.5,\"std\":0.5,"
         "\"l2\":2.236,\"absmax\":2,\"nan\":0,\"inf\":0},\"data\":{\"encoding\":\"base64\","
         "\"dtype\":\"f32\",\"b64\":\"AACAPwAAAEA=\",\"crc32\":CRC},\"head\":[1,2]}", false, true},
        /* b64 first in data */
        {"{\"record\":\"probe\",\"index\":0,\"step\":0,\"layer\":0,\"tag\":\"q_norm\",\"pos0\":0,"
         "\"dtype\":\"f32\",\"shape\":[2],\"stats\":{\"min\":1,\"max\":2,\"mean\":1.5,\"std\":0.5,"
         "\"l2\":2.236,\"absmax\":2,\"nan\":0,\"inf\":0},\"head\":[1,2],\"data\":{\"b64\":"
         "\"AACAPwAAAEA=\",\"encoding\":\"base64\",\"dtype\":\"f32\",\"crc32\":CRC}}", false, true},
        /* whitespace around the colon */
        {"{\"record\":\"probe\",\"index\":0,\"step\":0,\"layer\":0,\"tag\":\"q_norm\",\"pos0\":0,"
         "\"dtype\":\"f32\",\"shape\":[2],\"stats\":{\"min\":1,\"max\":2,\"mean\":1.5,\"std\":0.5,"
         "\"l2\":2.236,\"absmax\":2,\"nan\":0,\"inf\":0},\"head\":[1,2],\"data\":{\"encoding\":"
         "\"base64\",\"dtype\":\"f32\",\"b64\" : \"AACAPwAAAEA=\",\"crc32\":CRC}}", false, true},
        /* a custom tag without a layer: a "layer" after data would change its key */
        {"{\"record\":\"probe\",\"index\":0,\"step\":0,\"tag\":\"my.tensor\",\"pos0\":0,"
         "\"dtype\":\"f32\",\"shape\":[2],\"stats\":{\"min\":1,\"max\":2,\"mean\":1.5,\"std\":0.5,"
         "\"l2\":2.236,\"absmax\":2,\"nan\":0,\"inf\":0},\"head\":[1,2],\"data\":{\"encoding\":"
         "\"base64\",\"dtype\":\"f32\",\"b64\":\"AACAPwAAAEA=\",\"crc32\":CRC}}", false, true},
        /* ... which is how it could come, read whole: fine */
        {"{\"record\":\"probe\",\"index\":0,\"step\":0,\"tag\":\"my.tensor\",\"pos0\":0,"
         "\"dtype\":\"f32\",\"shape\":[2],\"stats\":{\"min\":1,\"max\":2,\"mean\":1.5,\"std\":0.5,"
         "\"l2\":2.236,\"absmax\":2,\"nan\":0,\"inf\":0},\"head\":[1,2],\"data\":{\"encoding\":"
         "\"base64\",\"dtype\":\"f32\",\"b64\":\"AACAPwAAAEA=\",\"crc32\":CRC},\"layer\":4}", false, true},
        /* the marker inside a member name is no payload (and that member is unknown) */
        {"{\"record\":\"probe\",\"index\":0,\"step\":0,\"layer\":0,\"tag\":\"q_norm\",\"pos0\":0,"
         "\"dtype\":\"f32\",\"shape\":[2],\"stats\":{\"min\":1,\"max\":2,\"mean\":1.5,\"std\":0.5,"
         "\"l2\":2.236,\"absmax\":2,\"nan\":0,\"inf\":0},\"head\":[1,2],\"data\":{\"encoding\":"
         "\"base64\",\"dtype\":\"f32\",\"\\\"b64\":\"x\",\"b64\":\"AACAPwAAAEA=\",\"crc32\":CRC}}",
         false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char probe[2048], text[4096], key[64];
        const char *at = strstr(cases[i].probe, "CRC");
        snprintf(probe, sizeof probe, "%.*s%lu%s", (int)(at - cases[i].probe), cases[i].probe, crc,
                 at + 3);
        snprintf(key, sizeof key, "%s", strstr(probe, "my.tensor") ? (strstr(probe, "\"layer\":4")
                                                                          ? "S0.L4.my.tensor"
                                                                          : "S0.my.tensor")
                                                                   : "S0.L0.q_norm");
        snprintf(text, sizeof text, "%s%s\n{\"record\":\"end\",\"status\":\"ok\",\"probes\":1,"
                 "\"tokens\":[],\"decoded\":[],\"last_key\":\"%s\"}\n", header, probe, key);
        char what[32];
        snprintf(what, sizeof what, "case %zu", i);
        tu_outcome w = tu_same_both_ways(what, text, strlen(text), NULL);
        if (!cases[i].ok) {
            assert_int_equal(w.st, LD_E_INPUT);
            assert_non_null(strstr(w.msg, "unknown field \"\"b64\" in data"));
            continue;
        }
        if (w.st != LD_OK)
            fail_msg("%s: %s", what, w.msg);
        tu_outcome s = tu_read_mode(text, strlen(text), NULL, 5);
        if (s.streamed != (cases[i].streams ? 1u : 0u))
            fail_msg("%s: streamed %llu", what, (unsigned long long)s.streamed);
        /* a whole record's payload comes out of ld_reader_read_data too */
        ld_reader *r = open_streaming(text, strlen(text));
        const ld_probe *p;
        ld_error err;
        TU_OK(ld_reader_next(r, &p, &err), &err);
        assert_int_equal(p->streaming, cases[i].streams);
        float got[3] = {0, 0, 0};
        size_t n;
        TU_OK(ld_reader_read_data(r, got, sizeof got, &n, &err), &err);
        assert_int_equal(n, 8);
        assert_true(got[0] == 1 && got[1] == 2);
        TU_OK(ld_reader_read_data(r, got, sizeof got, &n, &err), &err);
        assert_int_equal(n, 0);
        assert_int_equal(p->crc32, crc);
        TU_OK(ld_reader_next(r, &p, &err), &err);
        assert_null(p);
        ld_reader_close(r);
    }
}

static void test_misuse(void **state)
{
    (void)state;
    size_t len;
    char *text = sample_with(LD_ENC_BASE64, NULL, NULL, &len);
    ld_reader *r = open_streaming(text, len);
    ld_error err;
    char buf[8];
    size_t n;
    TU_FAILS(ld_reader_read_data(r, buf, 8, &n, &err), &err, LD_E_USAGE, "no current probe");
    TU_FAILS(ld_reader_read_data(NULL, buf, 8, &n, &err), &err, LD_E_USAGE, "NULL reader");
    TU_FAILS(ld_reader_read_data(r, NULL, 8, &n, &err), &err, LD_E_USAGE, "NULL reader or buffer");
    TU_FAILS(ld_reader_skip_data(NULL, &err), &err, LD_E_USAGE, "NULL reader");
    TU_OK(ld_reader_skip_data(r, &err), &err); /* nothing to skip */
    const ld_probe *p;
    TU_OK(ld_reader_next(r, &p, &err), &err);
    TU_OK(ld_reader_read_data(r, buf, 0, &n, &err), &err); /* zero bytes: nothing, no verdict */
    assert_int_equal(n, 0);
    TU_OK(ld_reader_skip_data(r, &err), &err);
    TU_OK(ld_reader_read_data(r, buf, 8, &n, &err), &err); /* skipped: nothing left */
    assert_int_equal(n, 0);
    assert_string_equal(ld_reader_last_key(r), "S0.embed");
    ld_reader_close(r);
    ld_reader_options o;
    ld_reader_options_init(&o);
    o.stream_data = true;
    o.decode_data = false;
    TU_OK(ld_reader_open_mem(&r, "mem", text, len, &o, &err), &err);
    TU_OK(ld_reader_next(r, &p, &err), &err);
    assert_false(p->streaming);
    assert_true(p->has_data);
    assert_int_equal(p->crc32 != 0, 1);
    TU_FAILS(ld_reader_read_data(r, buf, 8, &n, &err), &err, LD_E_USAGE, "without decode_data");
    ld_reader_close(r);
    free(text);
}

/* Random damage (bytes changed, dropped, duplicated; JSON and base64 specials and escapes put in,
 * anywhere and most often inside payloads) to the stream text: the streamed read says exactly
 * what the whole read says, every time. */
static void damage_rounds(const char *name, const char *text, size_t len, int rounds, uint64_t rng)
{
    static const char specials[] = "\"\\=/+A\n\r\x01\x7f\xc3\xa9\xe2\x82\xac\xf0{}[],:u0d8Dc";
    static const char *const tokens[] = {"\\/", "\\u0041", "\\u003d", "\\ud83d\\ude00", "\\ud83d",
                                         "\\udc00", "\\u00e9", "\\n", "\\\"", "==", "===", "\\u12",
                                         "\\x", "\",\"crc32\":1", "\"}}", "\xed\xa0\x80", "\\u0"};
    size_t ends[64];
    size_t lines = tu_line_ends(text, len, ends, 64);
    for (int k = 0; k < rounds; k++) {
        char *t = malloc(len + 256);
        memcpy(t, text, len);
        size_t n = len;
        int edits = 1 + (int)(rng % 3);
        for (int j = 0; j < edits; j++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t x = rng >> 11;
            /* mostly within a probe line's payload: after its "b64" */
            size_t lo = ends[0], at;
            if (x % 4 && lines > 2) {
                size_t line = 1 + (size_t)(x >> 8) % (lines - 2);
                const char *b = strstr(t + ends[line - 1], "\"b64\":\"");
                lo = b && (size_t)(b - t) < ends[line] ? (size_t)(b - t) + 7 : ends[line - 1];
                size_t span = ends[line] > lo ? ends[line] - lo : 1;
                /* near the payload's start or end half of the time */
                size_t off = (size_t)(x >> 20) % span;
                if ((x >> 5) % 2)
                    off = (x >> 6) % 2 ? off % 8 : span - 1 - off % 8;
                at = lo + off;
            } else {
                at = lo + (size_t)(x >> 20) % (n - lo);
            }
            if (at >= n)
                at = n - 1;
            switch ((x >> 3) % 4) {
            case 0: t[at] = x % 5 == 0 ? (char)(x >> 40) : specials[(x >> 44) % (sizeof specials - 1)]; break;
            case 1: memmove(t + at, t + at + 1, n - at - 1); n--; break;
            case 2:
                memmove(t + at + 1, t + at, n - at);
                t[at] = specials[(x >> 44) % (sizeof specials - 1)];
                n++;
                break;
            default: {
                const char *tok = tokens[(x >> 44) % (sizeof tokens / sizeof tokens[0])];
                size_t tl = strlen(tok);
                if (n + tl > len + 200)
                    break;
                memmove(t + at + tl, t + at, n - at);
                memcpy(t + at, tok, tl);
                n += tl;
            }
            }
        }
        char *exact = malloc(n ? n : 1); /* exact size: ASan sees any read past the end */
        memcpy(exact, t, n);
        char what[96];
        snprintf(what, sizeof what, "%s damage round %d", name, k);
        tu_same_both_ways(what, exact, n, NULL);
        free(exact);
        free(t);
    }
}

static int damage_round_count(int fallback)
{
    const char *e = getenv("LD_STREAM_DAMAGE_ROUNDS");
    return e && atoi(e) > 0 ? atoi(e) : fallback;
}

static void test_random_damage(void **state)
{
    (void)state;
    tu_light = true;
    for (int e = 0; e < 3; e++) {
        size_t len;
        char *text = sample_with((ld_encoding)e, NULL, NULL, &len);
        damage_rounds(ld_encoding_name((ld_encoding)e), text, len, damage_round_count(1000),
                      0x9e3779b97f4a7c15ULL + (uint64_t)e);
        free(text);
    }
    tu_light = false;
}

/* The same on payloads longer than the reader's staging buffer (where the decoding goes straight
 * into the caller's buffer, and pieces meet buffer boundaries). */
static void test_random_damage_large(void **state)
{
    (void)state;
    tu_light = true;
    for (int e = 0; e < 3; e++) {
        size_t len;
        char *text = write_varied((ld_encoding)e, &len);
        damage_rounds(ld_encoding_name((ld_encoding)e), text, len, damage_round_count(1000) / 50,
                      0x2545f4914f6cdd1dULL + (uint64_t)e);
        free(text);
    }
    tu_light = false;
}

/* Every string of four tokens (alphabet characters, padding, a character outside the alphabet,
 * escapes that stand for alphabet characters or padding, UTF-8) as the payload of a 2-byte record
 * ("xxx=" is valid) and after "AAAA" as that of a 4-byte one ("AAAAxx==" is valid): the streamed
 * read says what the whole read says: the same length, size, padding and character verdicts. */
static void test_short_payloads_exhaustive(void **state)
{
    (void)state;
    static const char *const tok[] = {"A", "Q", "g", "=", "*", "\\u003d", "\\/", "\\u0041",
                                      "\xc3\xa9"};
    enum { NT = sizeof tok / sizeof tok[0] };
    static const char header[] =
        "{\"record\":\"header\",\"format\":\"layerdiff-probes\",\"version\":1,\"implementation\":"
        "\"t\",\"backend\":{},\"model\":{},\"input\":{\"tokens\":[1],\"decode_steps\":0},"
        "\"faults\":[],\"created\":\"2026-01-31T12:00:00Z\",\"tool\":{\"name\":\"l\",\"version\":"
        "\"0\",\"git\":\"x\"}}\n";
    static const struct {
        const char *dtype, *prefix, *head;
    } recs[] = {{"bf16", "", "0"}, {"f32", "AAAA", "0"}};
    int valid = 0;
    tu_light = true;
    for (size_t k = 0; k < 2; k++) {
        for (int code = 0; code < NT * NT * NT * NT; code++) {
            char b64[64];
            snprintf(b64, sizeof b64, "%s%s%s%s%s", recs[k].prefix, tok[code % NT],
                     tok[code / NT % NT], tok[code / (NT * NT) % NT], tok[code / (NT * NT * NT)]);
            char text[2048];
            snprintf(text, sizeof text,
                     "%s{\"record\":\"probe\",\"index\":0,\"step\":0,\"layer\":0,\"tag\":\"q_norm\","
                     "\"pos0\":0,\"dtype\":\"%s\",\"shape\":[1],\"stats\":{\"min\":0,\"max\":0,"
                     "\"mean\":0,\"std\":0,\"l2\":0,\"absmax\":0,\"nan\":0,\"inf\":0},\"head\":[%s],"
                     "\"data\":{\"encoding\":\"base64\",\"dtype\":\"%s\",\"b64\":\"%s\",\"crc32\":"
                     "0}}\n{\"record\":\"end\",\"status\":\"ok\",\"probes\":1,\"tokens\":[],"
                     "\"decoded\":[],\"last_key\":\"S0.L0.q_norm\"}\n",
                     header, recs[k].dtype, recs[k].head, recs[k].dtype, b64);
            tu_outcome w = tu_same_both_ways(b64, text, strlen(text), NULL);
            valid += strstr(w.msg, "data.crc32 is 0") != NULL; /* decoded fine, crc aside */
        }
    }
    tu_light = false;
    assert_true(valid > 100); /* the enumeration reaches the valid strings too */
}

/* test_probes_stream [NAME... | --except NAME...]: every case, the cases named, or every case but
 * those named (ctest runs the costliest cases as tests of their own, in parallel, and the rest
 * with --except: a case added later runs there). An unknown name is an error (exit 2). */
int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_encoding_and_piece_size),
        cmocka_unit_test(test_cut_at_every_offset),
        cmocka_unit_test(test_cut_files),
        cmocka_unit_test(test_crc_and_head_mismatch),
        cmocka_unit_test(test_what_streams),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_random_damage),
        cmocka_unit_test(test_random_damage_large),
        cmocka_unit_test(test_short_payloads_exhaustive),
    };
    enum { N = sizeof tests / sizeof tests[0] };
    bool except = argc > 1 && strcmp(argv[1], "--except") == 0;
    bool named[N] = {false};
    for (int a = except ? 2 : 1; a < argc; a++) {
        size_t i = 0;
        while (i < N && strcmp(tests[i].name, argv[a]) != 0)
            i++;
        if (i == N) {
            fprintf(stderr, "test_probes_stream: no case '%s'\n", argv[a]);
            return 2;
        }
        named[i] = true;
    }
    struct CMUnitTest chosen[N];
    size_t n = 0;
    for (size_t i = 0; i < N; i++)
        if (argc == 1 || named[i] != except)
            chosen[n++] = tests[i];
    if (getenv("LD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("LD_TEST_FILTER"));
    return _cmocka_run_group_tests("test_probes_stream", chosen, n, NULL, tu_teardown);
}

/* test_probes_feed.c — ld_feed (reference tensors by key, probes.h): conversion to the caller's
 * dtype (round to nearest even), keys asked in and out of order, every refusal with its message
 * (missing key, no payload, another size, a stream cut short), the key filters, and the "fed"
 * marks the writer puts in a stream and the reader reads back (absent in older streams). */
#include "probe_test_util.h"

#define N 40 /* elements of each probe: more than the head, an odd tail */

/* A stream of 3 probes: S0.embed, S0.L0.q_proj, S1.L0.q_proj, f32 values chosen to need rounding
 * in bf16 (and one tie), full payload; the second one marked fed. */
static void write_stream(const char *path, ld_encoding enc, ld_payload payload, float *vals)
{
    for (int i = 0; i < N; i++)
        vals[i] = 1.0f + (float)i * 0x1p-10f + 0x1p-20f; /* between bf16 neighbours */
    vals[1] = 1.0f + 0x1p-8f;                            /* a tie: rounds to even, 1.0 */
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = payload;
    cfg.encoding = enc;
    ld_run_info run = tu_run();
    run.feed_json = "{\"path\":\"ref.jsonl\",\"tags\":\"*\"}";
    ld_sink *s;
    ld_error err;
    TU_OK(ld_sink_open(&s, path, &cfg, &run, &err), &err);
    int64_t sh[2] = {1, N};
    TU_OK(ld_sink_emit(s, 0, LD_NO_LAYER, "embed", 0, LD_F32, sh, 2, vals, &err), &err);
    ld_sink_mark_fed(s);
    TU_OK(ld_sink_emit(s, 0, 0, "q_proj", 0, LD_F32, sh, 2, vals, &err), &err);
    TU_OK(ld_sink_emit(s, 1, 0, "q_proj", 1, LD_F32, sh, 2, vals, &err), &err);
    ld_run_end end = {.ok = true};
    TU_OK(ld_sink_close(s, &end, &err), &err);
}

static void test_feed_get_converts(void **state)
{
    (void)state;
    char path[300];
    float vals[N], got[N];
    uint16_t h[N];
    ld_encoding encs[] = {LD_ENC_BASE64, LD_ENC_ZLIB_BASE64, LD_ENC_SHUFFLE_ZLIB_BASE64};
    for (size_t e = 0; e < 3; e++) {
        write_stream(tu_path(path, sizeof path, "f.jsonl"), encs[e], LD_PAYLOAD_FULL, vals);
        ld_feed *f;
        ld_error err;
        TU_OK(ld_feed_open(&f, path, &err), &err);
        assert_int_equal(ld_feed_header(f)->n_tokens, tu_run().n_tokens);
        TU_OK(ld_feed_get(f, 0, LD_NO_LAYER, "embed", LD_F32, got, N, &err), &err);
        assert_memory_equal(got, vals, sizeof got);
        TU_OK(ld_feed_get(f, 0, 0, "q_proj", LD_BF16, h, N, &err), &err);
        for (int i = 0; i < N; i++)
            assert_int_equal(h[i], ld_f32_to_bf16(vals[i]));
        assert_int_equal(h[1], 0x3f80); /* the tie went to even */
        TU_OK(ld_feed_get(f, 1, 0, "q_proj", LD_F16, h, N, &err), &err);
        for (int i = 0; i < N; i++)
            assert_int_equal(h[i], ld_f32_to_f16(vals[i]));
        /* an earlier key: the stream is read again from its start */
        TU_OK(ld_feed_get(f, 0, LD_NO_LAYER, "embed", LD_F32, got, N, &err), &err);
        assert_memory_equal(got, vals, sizeof got);
        ld_feed_close(f);
    }
}

static void test_feed_refusals(void **state)
{
    (void)state;
    char path[300], stats[300], cut[300];
    float vals[N], got[2 * N];
    ld_feed *f;
    ld_error err;
    write_stream(tu_path(path, sizeof path, "r.jsonl"), LD_ENC_BASE64, LD_PAYLOAD_FULL, vals);
    TU_OK(ld_feed_open(&f, path, &err), &err);
    TU_FAILS(ld_feed_get(f, 0, 1, "q_proj", LD_F32, got, N, &err), &err, LD_E_INPUT,
             "the feed has no probe S0.L1.q_proj");
    TU_FAILS(ld_feed_get(f, 0, 0, "k_proj", LD_F32, got, N, &err), &err, LD_E_INPUT,
             "the feed has no probe S0.L0.k_proj");
    TU_FAILS(ld_feed_get(f, 0, 0, "q_proj", LD_F32, got, 2 * N, &err), &err, LD_E_INPUT,
             "probe S0.L0.q_proj has 40 elements, the tensor it replaces 80");
    /* the feed still serves the keys it has */
    TU_OK(ld_feed_get(f, 1, 0, "q_proj", LD_F32, got, N, &err), &err);
    TU_FAILS(ld_feed_select(f, "q proj", NULL, NULL, &err), &err, LD_E_USAGE, "bad tag pattern");
    ld_feed_close(f);

    write_stream(tu_path(stats, sizeof stats, "s.jsonl"), LD_ENC_BASE64, LD_PAYLOAD_STATS, vals);
    TU_OK(ld_feed_open(&f, stats, &err), &err);
    TU_FAILS(ld_feed_get(f, 0, LD_NO_LAYER, "embed", LD_F32, got, N, &err), &err, LD_E_INPUT,
             "probe S0.embed holds no payload (write the feed with --payload full)");
    ld_feed_close(f);

    /* cut inside the third record: the first two are served, the third is truncation */
    size_t len;
    char *text = tu_slurp(path, &len);
    size_t ends[8];
    assert_int_equal(tu_line_ends(text, len, ends, 8), 5);
    tu_spit(tu_path(cut, sizeof cut, "c.jsonl"), text, ends[2] + 100);
    free(text);
    TU_OK(ld_feed_open(&f, cut, &err), &err);
    TU_OK(ld_feed_get(f, 0, 0, "q_proj", LD_F32, got, N, &err), &err);
    TU_FAILS(ld_feed_get(f, 1, 0, "q_proj", LD_F32, got, N, &err), &err, LD_E_TRUNCATED,
             "last complete probe: S0.L0.q_proj");
    ld_feed_close(f);
    TU_FAILS(ld_feed_open(&f, "/nonexistent/feed.jsonl", &err), &err, LD_E_INPUT, "cannot open");
}

static void test_feed_select(void **state)
{
    (void)state;
    char path[300];
    float vals[N];
    ld_feed *f;
    ld_error err;
    write_stream(tu_path(path, sizeof path, "w.jsonl"), LD_ENC_BASE64, LD_PAYLOAD_FULL, vals);
    TU_OK(ld_feed_open(&f, path, &err), &err);
    assert_true(ld_feed_wants(f, 3, 7, "anything"));
    TU_OK(ld_feed_select(f, "q_*,logits", "1-2", "0", &err), &err);
    assert_true(ld_feed_wants(f, 0, 1, "q_norm"));
    assert_true(ld_feed_wants(f, 0, LD_NO_LAYER, "logits")); /* model-level: any layer filter */
    assert_false(ld_feed_wants(f, 0, 0, "q_norm"));
    assert_false(ld_feed_wants(f, 1, 1, "q_norm"));
    assert_false(ld_feed_wants(f, 0, 1, "k_norm"));
    assert_false(ld_feed_wants(NULL, 0, 1, "q_norm"));
    TU_FAILS(ld_feed_select(f, NULL, "x", NULL, &err), &err, LD_E_USAGE, "layers");
    ld_feed_close(f);
}

static void test_fed_marks_read_back(void **state)
{
    (void)state;
    char path[300];
    float vals[N];
    write_stream(tu_path(path, sizeof path, "m.jsonl"), LD_ENC_BASE64, LD_PAYLOAD_FULL, vals);
    for (int streamed = 0; streamed < 2; streamed++) {
        ld_reader_options opt;
        ld_reader_options_init(&opt);
        opt.stream_data = streamed;
        ld_reader *r;
        ld_error err;
        TU_OK(ld_reader_open(&r, path, &opt, &err), &err);
        assert_string_equal(ld_reader_header(r)->feed_json,
                            "{\"path\":\"ref.jsonl\",\"tags\":\"*\"}");
        const ld_probe *p;
        bool want[3] = {false, true, false};
        for (int i = 0; i < 3; i++) {
            TU_OK(ld_reader_next(r, &p, &err), &err);
            assert_non_null(p);
            assert_int_equal(p->fed, want[i]);
        }
        TU_OK(ld_reader_next(r, &p, &err), &err);
        assert_null(p);
        ld_reader_close(r);
    }
    /* an older stream: no "feed", no "fed" */
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    assert_int_equal(tu_write_sample(path, &cfg), 6);
    ld_reader *r;
    ld_error err;
    TU_OK(ld_reader_open(&r, path, NULL, &err), &err);
    assert_string_equal(ld_reader_header(r)->feed_json, "");
    const ld_probe *p;
    TU_OK(ld_reader_next(r, &p, &err), &err);
    assert_false(p->fed);
    ld_reader_close(r);
    /* a "fed" that is not a boolean is refused, read whole or streamed */
    write_stream(path, LD_ENC_BASE64, LD_PAYLOAD_FULL, vals);
    size_t len;
    char *text = tu_slurp(path, &len);
    char *at = strstr(text, "\"fed\":true");
    assert_non_null(at);
    memcpy(at, "\"fed\":1   ", 10);
    for (int streamed = 0; streamed < 2; streamed++) {
        ld_reader_options opt;
        ld_reader_options_init(&opt);
        opt.stream_data = streamed;
        TU_OK(ld_reader_open_mem(&r, "fed.jsonl", text, len, &opt, &err), &err);
        TU_OK(ld_reader_next(r, &p, &err), &err);
        TU_FAILS(ld_reader_next(r, &p, &err), &err, LD_E_INPUT,
                 "fed.jsonl:3: probe S0.L0.q_proj: field \"fed\" is a number, expected true or "
                 "false");
        ld_reader_close(r);
    }
    free(text);
    static const char bad[] =
        "{\"record\":\"header\",\"format\":\"layerdiff-probes\",\"version\":1,\"implementation\":"
        "\"x\",\"backend\":{},\"model\":{},\"input\":{\"tokens\":[1],\"decode_steps\":0},"
        "\"faults\":[],\"feed\":[],\"created\":\"2026-01-01T00:00:00Z\",\"tool\":{\"name\":\"a\","
        "\"version\":\"b\",\"git\":\"c\"}}\n";
    TU_FAILS(ld_reader_open_mem(&r, "bad.jsonl", bad, sizeof bad - 1, NULL, &err), &err,
             LD_E_INPUT, "field \"feed\" is an array, expected an object");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feed_get_converts),
        cmocka_unit_test(test_feed_refusals),
        cmocka_unit_test(test_feed_select),
        cmocka_unit_test(test_fed_marks_read_back),
    };
    return cmocka_run_group_tests(tests, NULL, tu_teardown);
}

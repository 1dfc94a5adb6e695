/* test_probes_roundtrip.c — what the writer writes, the reader reads back exactly: every dtype
 * with every encoding (payload bytes bit for bit, NaN payloads and signed zeros included), stats
 * and head with NaN/Inf, precomputed stats, header and end fields, gzip input, CRLF line ends, a
 * byte order mark, custom tags, empty tensors, and reading without decoding payloads. */
#include <locale.h>
#include <math.h>
#include <omp.h>
#include <zlib.h>

#include "probe_test_util.h"

/* 105 elements of every kind of value a tensor can hold, in dtype t. */
static void *hard_values(ld_dtype t, size_t n)
{
    unsigned char *p = malloc(n * ld_dtype_size(t));
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        float v = (float)sin((double)i * 0.7) * (float)(1 + i % 5);
        if (i == 1)
            v = NAN;
        if (i == 2)
            v = INFINITY;
        if (i == 3)
            v = -INFINITY;
        if (i == 4)
            v = -0.0f;
        if (i == 6)
            v = 1e-41f; /* an f32 subnormal */
        if (t == LD_F32) {
            uint32_t u = i == 7 ? 0x7fc12345u : ld_f32_bits(v); /* a NaN with a payload */
            memcpy(p + 4 * i, &u, 4);
        } else {
            uint16_t h = t == LD_BF16 ? ld_f32_to_bf16(v) : ld_f32_to_f16(v);
            if (i == 7)
                h = t == LD_BF16 ? 0xffc1 : 0xfe01; /* negative NaN with a payload */
            memcpy(p + 2 * i, &h, 2);
        }
    }
    return p;
}

static bool same(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

static void test_every_dtype_and_encoding(void **state)
{
    (void)state;
    static const ld_dtype dts[] = {LD_F32, LD_BF16, LD_F16};
    for (int di = 0; di < 3; di++) {
        for (int e = 0; e < 3; e++) {
            ld_dtype dt = dts[di];
            const size_t n = 105;
            void *x = hard_values(dt, n);
            char path[512];
            tu_path(path, sizeof path, "rt.jsonl");
            ld_sink_config cfg;
            ld_sink_config_init(&cfg);
            cfg.payload = LD_PAYLOAD_FULL;
            cfg.encoding = (ld_encoding)e;
            ld_error err;
            ld_sink *s;
            ld_run_info run = tu_run();
            TU_OK(ld_sink_open(&s, path, &cfg, &run, &err), &err);
            int64_t shape[3] = {5, 7, 3};
            TU_OK(ld_sink_emit(s, 0, 2, "q_rope", 11, dt, shape, 3, x, &err), &err);
            TU_OK(ld_sink_close(s, NULL, &err), &err);

            ld_reader *r;
            TU_OK(ld_reader_open(&r, path, NULL, &err), &err);
            const ld_probe *p;
            TU_OK(ld_reader_next(r, &p, &err), &err);
            assert_non_null(p);
            assert_int_equal(p->step, 0);
            assert_int_equal(p->layer, 2);
            assert_string_equal(p->tag, "q_rope");
            assert_int_equal(p->tag_id, LD_TAG_Q_ROPE);
            assert_int_equal(p->pos0, 11);
            assert_int_equal(p->dtype, dt);
            assert_int_equal(p->ndim, 3);
            assert_int_equal(p->shape[0], 5);
            assert_int_equal(p->shape[2], 3);
            assert_int_equal(p->numel, n);
            assert_true(p->has_data);
            assert_int_equal(p->encoding, e);
            assert_int_equal(p->data_dtype, dt);
            assert_int_equal(p->data_bytes, n * ld_dtype_size(dt));
            assert_memory_equal(p->data, x, p->data_bytes); /* bit-exact, NaN payloads too */
            assert_int_equal(p->crc32, (uint32_t)crc32(0L, x, (uInt)p->data_bytes));
            ld_stats want;
            ld_stats_compute(x, dt, n, &want);
            assert_true(same(p->stats.min, want.min) && same(p->stats.max, want.max) &&
                        same(p->stats.mean, want.mean) && same(p->stats.std, want.std) &&
                        same(p->stats.l2, want.l2) && same(p->stats.absmax, want.absmax));
            assert_int_equal(p->stats.nan, 2);
            assert_int_equal(p->stats.inf, 2);
            assert_int_equal(p->n_head, LD_HEAD_COUNT);
            for (int i = 0; i < LD_HEAD_COUNT; i++) {
                double v = (double)ld_load_f32(x, dt, (size_t)i);
                if (!same(p->head[i], v) || (!isnan(v) && signbit(p->head[i]) != signbit(v)))
                    fail_msg("%s/%s head[%d] = %.17g, want %.17g", ld_dtype_name(dt),
                             ld_encoding_name((ld_encoding)e), i, p->head[i], v);
            }
            assert_true(signbit(p->head[4])); /* -0 stays negative */
            float *f = malloc(n * sizeof *f);
            TU_OK(ld_probe_to_f32(p, f, &err), &err);
            for (size_t i = 0; i < n; i++)
                assert_true(same((double)f[i], (double)ld_load_f32(x, dt, i)));
            free(f);
            TU_OK(ld_reader_next(r, &p, &err), &err);
            assert_null(p);
            assert_true(ld_reader_end(r)->ok);
            ld_reader_close(r);
            free(x);
        }
    }
}

static void test_nonfinite_text(void **state)
{
    (void)state;
    char path[512];
    tu_path(path, sizeof path, "nf.jsonl");
    ld_error err;
    ld_sink *s;
    ld_run_info run = tu_run();
    TU_OK(ld_sink_open(&s, path, NULL, &run, &err), &err);
    const float x[3] = {NAN, INFINITY, -INFINITY};
    int64_t shape[1] = {3};
    TU_OK(ld_sink_emit(s, 0, LD_NO_LAYER, "logits", 0, LD_F32, shape, 1, x, &err), &err);
    TU_OK(ld_sink_close(s, NULL, &err), &err);
    size_t len;
    char *text = tu_slurp(path, &len);
    assert_non_null(strstr(text, "\"stats\":{\"min\":\"NaN\",\"max\":\"NaN\",\"mean\":\"NaN\","
                                 "\"std\":\"NaN\",\"l2\":\"NaN\",\"absmax\":\"NaN\",\"nan\":1,"
                                 "\"inf\":2},\"head\":[\"NaN\",\"Infinity\",\"-Infinity\"]}"));
    assert_null(strstr(text, "\"data\"")); /* stats payload by default */
    assert_null(strstr(text, "\"layer\""));
    free(text);
}

static void test_precomputed_exact(void **state)
{
    (void)state;
    char path[512];
    tu_path(path, sizeof path, "pre2.jsonl");
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = LD_PAYLOAD_FULL;
    ld_error err;
    ld_sink *s;
    ld_run_info run = tu_run();
    TU_OK(ld_sink_open(&s, path, &cfg, &run, &err), &err);
    /* one finite element, -1/3 (not a float: a device may hand any double), NaN and -Inf */
    ld_stats st = {-1.0 / 3.0, -1.0 / 3.0, -1.0 / 3.0, -0.0, 1.0 / 3.0, 1.0 / 3.0, 1, 1};
    double head[3] = {-1.0 / 3.0, NAN, -INFINITY};
    int64_t shape[1] = {3};
    TU_OK(ld_sink_emit_precomputed(s, 0, 0, "up_proj", 0, LD_F32, shape, 1, &st, head, NULL, &err),
          &err);
    /* with data: the head must agree with it, and the data is written */
    ld_stats bad = st;
    bad.nan = 3;
    bad.inf = 1; /* 4 non-finite values among 3 elements */
    TU_FAILS(ld_sink_emit_precomputed(s, 0, 0, "up_proj", 0, LD_F32, shape, 1, &bad, head, NULL,
                                      &err),
             &err, LD_E_USAGE, "3 NaN and 1 Inf in 3 elements");
    const float x[3] = {-1.0f, NAN, -INFINITY};
    double h2[3] = {-1.0, NAN, -INFINITY};
    /* statistics a reader would refuse are refused here (issue 15, item 1) */
    bad = st;
    bad.l2 = NAN;
    TU_FAILS(ld_sink_emit_precomputed(s, 1, 0, "up_proj", 3, LD_F32, shape, 1, &bad, h2, x, &err),
             &err, LD_E_USAGE, "up_proj: stats.l2 is nan but 1 elements are finite");
    TU_FAILS(ld_sink_emit_precomputed(s, 1, 0, "up_proj", 3, LD_F32, shape, 1, &st, h2, x, &err),
             &err, LD_E_USAGE, "head[0] = -1 lies outside stats min -0.33333333333333331");
    TU_FAILS(ld_sink_emit_precomputed(s, 1, 0, "up_proj", 3, LD_F32, shape, 1, &st, head, x, &err),
             &err, LD_E_USAGE, "stats.min -0.33333333333333331 and stats.max -0.33333333333333331 "
             "but the payload's are -1 and -1");
    ld_stats sx;
    ld_stats_compute(x, LD_F32, 3, &sx);
    TU_OK(ld_sink_emit_precomputed(s, 1, 0, "up_proj", 3, LD_F32, shape, 1, &sx, h2, x, &err),
          &err);
    TU_OK(ld_sink_close(s, NULL, &err), &err);
    ld_reader *r;
    const ld_probe *p;
    TU_OK(ld_reader_open(&r, path, NULL, &err), &err);
    TU_OK(ld_reader_next(r, &p, &err), &err);
    assert_memory_equal(&p->stats, &st, sizeof st); /* every double bit for bit, -0 included */
    assert_true(p->head[0] == -1.0 / 3.0 && isnan(p->head[1]) && p->head[2] == -INFINITY);
    assert_false(p->has_data);
    TU_OK(ld_reader_next(r, &p, &err), &err);
    assert_true(p->has_data);
    assert_memory_equal(p->data, x, sizeof x);
    TU_OK(ld_reader_next(r, &p, &err), &err);
    assert_null(p);
    ld_reader_close(r);
}

static void test_header_and_end(void **state)
{
    (void)state;
    char path[512];
    tu_path(path, sizeof path, "he.jsonl");
    const char *faults[2] = {"rope_theta=5000", "nan=q_norm@3"};
    ld_run_info run = tu_run();
    run.implementation = "my \"engine\"";
    run.backend_json = " { \"device\" : \"H100\", \"dtypes\" : [ \"bf16\" , 1.5e3 ] } ";
    run.faults = faults;
    run.n_faults = 2;
    ld_error err;
    ld_sink *s;
    TU_OK(ld_sink_open(&s, path, NULL, &run, &err), &err);
    assert_string_equal(ld_sink_last_key(s), "");
    float x[2] = {1, 2};
    int64_t shape[1] = {2};
    TU_OK(ld_sink_emit(s, 0, 5, "k_norm", 0, LD_F32, shape, 1, x, &err), &err);
    assert_string_equal(ld_sink_last_key(s), "S0.L5.k_norm");
    assert_int_equal(ld_sink_probe_count(s), 1);
    int32_t am[2] = {42, -1}; /* -1: a step without a finite logit */
    ld_run_end end = {.ok = false, .message = "CUDA error: illegal address", .tokens = am,
                      .n_tokens = 2};
    TU_OK(ld_sink_close(s, &end, &err), &err);

    ld_reader *r;
    TU_OK(ld_reader_open(&r, path, NULL, &err), &err);
    const ld_header_info *h = ld_reader_header(r);
    assert_int_equal(h->version, 1);
    assert_string_equal(h->implementation, "my \"engine\"");
    assert_string_equal(h->backend_json, "{\"device\":\"H100\",\"dtypes\":[\"bf16\",1.5e3]}");
    assert_string_equal(h->model_json, "{\"architecture\":\"Qwen3ForCausalLM\",\"fingerprint\":\"fp1\"}");
    assert_string_equal(h->fingerprint, "fp1");
    assert_string_equal(h->input_json, "{\"tokens\":[9707,11,1879],\"decode_steps\":1}");
    assert_int_equal(h->n_tokens, 3);
    assert_int_equal(h->tokens[2], 1879);
    assert_int_equal(h->decode_steps, 1);
    assert_int_equal(h->n_faults, 2);
    assert_string_equal(h->faults[1], "nan=q_norm@3");
    assert_int_equal(strlen(h->created), 20);
    assert_int_equal(h->created[10], 'T');
    assert_non_null(strstr(h->tool, "\"name\":\"layerdiff\""));
    uint64_t n;
    TU_OK(tu_read_all(r, &n, &err), &err);
    assert_int_equal(n, 1);
    const ld_end_info *e = ld_reader_end(r);
    assert_non_null(e);
    assert_false(e->ok);
    assert_string_equal(e->message, "CUDA error: illegal address");
    assert_string_equal(e->last_key, "S0.L5.k_norm");
    assert_int_equal(e->probes, 1);
    assert_int_equal(e->n_tokens, 2);
    assert_int_equal(e->tokens[0], 42);
    assert_int_equal(e->tokens[1], -1);
    assert_int_equal(e->n_decoded, 0);
    /* after the end, next keeps answering "no more" */
    const ld_probe *p;
    TU_OK(ld_reader_next(r, &p, &err), &err);
    assert_null(p);
    assert_true(ld_reader_bytes(r) > 0);
    ld_reader_close(r);
}

static void test_gzip_crlf_bom(void **state)
{
    (void)state;
    char path[512], gz[512], crlf[512];
    tu_path(path, sizeof path, "plain.jsonl");
    tu_path(gz, sizeof gz, "plain.jsonl.gz");
    tu_path(crlf, sizeof crlf, "crlf.jsonl");
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = LD_PAYLOAD_FULL;
    int want = tu_write_sample(path, &cfg);
    size_t len;
    char *text = tu_slurp(path, &len);
    gzFile g = gzopen(gz, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, text, (unsigned)len), (int)len);
    assert_int_equal(gzclose(g), Z_OK);
    /* the same lines with CRLF ends and a UTF-8 byte order mark in front */
    char *t2 = malloc(2 * len + 4);
    size_t k = 0;
    memcpy(t2, "\xef\xbb\xbf", 3);
    k = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n')
            t2[k++] = '\r';
        t2[k++] = text[i];
    }
    tu_spit(crlf, t2, k);
    const char *paths[3] = {path, gz, crlf};
    for (int i = 0; i < 3; i++) {
        ld_reader *r;
        ld_error err;
        uint64_t n;
        TU_OK(ld_reader_open(&r, paths[i], NULL, &err), &err);
        TU_OK(tu_read_all(r, &n, &err), &err);
        assert_int_equal(n, (uint64_t)want);
        assert_string_equal(ld_reader_end(r)->last_key, "S1.L0.attn_norm");
        ld_reader_close(r);
    }
    size_t glen;
    char *gtext = tu_slurp(gz, &glen);
    /* corrupt gzip data is malformed input */
    char bad_gz[512];
    tu_path(bad_gz, sizeof bad_gz, "bad.jsonl.gz");
    char *gbad = malloc(glen);
    memcpy(gbad, gtext, glen);
    for (size_t i = glen / 3; i < glen / 3 + 16; i++)
        gbad[i] = (char)(gbad[i] ^ 0x5a);
    tu_spit(bad_gz, gbad, glen);
    free(gbad);
    {
        ld_reader *rb;
        ld_error eb;
        uint64_t nb;
        ld_status sb = ld_reader_open(&rb, bad_gz, NULL, &eb);
        if (sb == LD_OK) {
            sb = tu_read_all(rb, &nb, &eb);
            ld_reader_close(rb);
        }
        assert_int_equal(sb, LD_E_INPUT);
        assert_non_null(strstr(eb.msg, "corrupt gzip data after"));
    }
    /* a gzip file cut in half is a truncated stream */
    tu_spit(gz, gtext, glen / 2);
    ld_reader *r;
    ld_error err;
    uint64_t n;
    ld_status st = ld_reader_open(&r, gz, NULL, &err);
    if (st == LD_OK) {
        st = tu_read_all(r, &n, &err);
        ld_reader_close(r);
    }
    assert_int_equal(st, LD_E_TRUNCATED);
    assert_non_null(strstr(err.msg, "gzip data ends early"));
    free(gtext);
    free(t2);
    free(text);
}

static void test_decode_data_off(void **state)
{
    (void)state;
    char path[512];
    tu_path(path, sizeof path, "nodec.jsonl");
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = LD_PAYLOAD_FULL;
    cfg.encoding = LD_ENC_SHUFFLE_ZLIB_BASE64;
    tu_write_sample(path, &cfg);
    ld_reader_options opt;
    ld_reader_options_init(&opt);
    assert_int_equal(opt.max_line, (size_t)1 << 30);
    assert_true(opt.decode_data);
    opt.decode_data = false;
    ld_reader *r;
    ld_error err;
    const ld_probe *p;
    TU_OK(ld_reader_open(&r, path, &opt, &err), &err);
    TU_OK(ld_reader_next(r, &p, &err), &err);
    assert_true(p->has_data);
    assert_null(p->data);
    assert_int_equal(p->encoding, LD_ENC_SHUFFLE_ZLIB_BASE64);
    float f[24];
    TU_FAILS(ld_probe_to_f32(p, f, &err), &err, LD_E_INPUT, "without decode_data");
    ld_reader_close(r);
}

static void test_custom_and_empty(void **state)
{
    (void)state;
    char path[512];
    tu_path(path, sizeof path, "custom.jsonl");
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = LD_PAYLOAD_FULL;
    cfg.encoding = LD_ENC_ZLIB_BASE64;
    ld_error err;
    ld_sink *s;
    ld_run_info run = tu_run();
    TU_OK(ld_sink_open(&s, path, &cfg, &run, &err), &err);
    float x[4] = {1, 2, 3, 4};
    int64_t shape[2] = {2, 2}, empty[2] = {0, 8};
    TU_OK(ld_sink_emit(s, 0, 3, "blk.attn/q:0", 0, LD_F32, shape, 2, x, &err), &err);
    TU_OK(ld_sink_emit(s, 0, LD_NO_LAYER, "my_tap", 0, LD_F32, shape, 2, x, &err), &err);
    TU_OK(ld_sink_emit(s, 0, LD_NO_LAYER, "logits", 0, LD_F32, empty, 2, NULL, &err), &err);
    TU_OK(ld_sink_close(s, NULL, &err), &err);
    ld_reader *r;
    const ld_probe *p;
    TU_OK(ld_reader_open(&r, path, NULL, &err), &err);
    TU_OK(ld_reader_next(r, &p, &err), &err);
    assert_string_equal(p->tag, "blk.attn/q:0");
    assert_int_equal(p->tag_id, LD_TAG_UNKNOWN);
    assert_int_equal(p->layer, 3);
    TU_OK(ld_reader_next(r, &p, &err), &err);
    assert_int_equal(p->layer, LD_NO_LAYER);
    TU_OK(ld_reader_next(r, &p, &err), &err);
    assert_int_equal(p->numel, 0);
    assert_int_equal(p->n_head, 0);
    assert_true(p->has_data);
    assert_int_equal(p->data_bytes, 0);
    assert_true(isnan(p->stats.mean));
    assert_int_equal(p->index, 2);
    ld_reader_close(r);
}

static void test_other_locale(void **state)
{
    (void)state;
    /* A process in a locale whose decimal point is a comma must still write and read '.'. */
    const char *got = setlocale(LC_NUMERIC, "de_DE.UTF-8");
    if (!got) { /* not installed: build it from the glibc sources, when those are here */
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 '%s/de_DE.UTF-8' >/dev/null 2>&1",
                 tu_tmpdir());
        if (system(cmd) == 0) {
            setenv("LOCPATH", tu_tmpdir(), 1);
            got = setlocale(LC_NUMERIC, "de_DE.UTF-8");
        }
    }
    if (!got || strcmp(localeconv()->decimal_point, ",") != 0)
        skip(); /* no locale with a decimal comma available */
    char probe[32];
    snprintf(probe, sizeof probe, "%.2f", 0.5);
    assert_string_equal(probe, "0,50"); /* the trap is armed: printf now writes commas */
    char path[512];
    tu_path(path, sizeof path, "locale.jsonl");
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    tu_write_sample(path, &cfg);
    size_t len;
    char *text = tu_slurp(path, &len);
    assert_non_null(strstr(text, "\"min\":-2,\"max\":3.75,\"mean\":0.875"));
    free(text);
    ld_reader *r;
    ld_error err;
    uint64_t n;
    TU_OK(ld_reader_open(&r, path, NULL, &err), &err);
    TU_OK(tu_read_all(r, &n, &err), &err);
    ld_reader_close(r);
    setlocale(LC_NUMERIC, "C");
}

/* Everything after the header line (which holds the creation time), malloc'd. */
static char *write_body(const float *x, size_t n, ld_encoding e, int threads, size_t *len)
{
    omp_set_num_threads(threads);
    char path[512];
    tu_path(path, sizeof path, "threads.jsonl");
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = LD_PAYLOAD_FULL;
    cfg.encoding = e;
    ld_error err;
    ld_sink *s;
    ld_run_info run = tu_run();
    TU_OK(ld_sink_open(&s, path, &cfg, &run, &err), &err);
    int64_t shape[2] = {(int64_t)(n / 1024), 1024};
    TU_OK(ld_sink_emit(s, 0, LD_NO_LAYER, "logits", 0, LD_F32, shape, 2, x, &err), &err);
    TU_OK(ld_sink_close(s, NULL, &err), &err);
    size_t l;
    char *t = tu_slurp(path, &l);
    char *body = strchr(t, '\n');
    assert_non_null(body);
    *len = l - (size_t)(body - t);
    char *out = malloc(*len);
    memcpy(out, body, *len);
    free(t);
    return out;
}

/* The bytes of a stream do not depend on the number of threads: a 12 MB tensor (parallel stats,
 * crc, zlib blocks and base64) written with 1 and with 3 threads gives identical probe lines. */
static void test_thread_count_invariance(void **state)
{
    (void)state;
    size_t n = 3u << 20;
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    uint32_t u = 7;
    for (size_t i = 0; i < n; i++) {
        u = u * 1664525u + 1013904223u;
        x[i] = (float)((int32_t)u >> 8) * 1e-6f;
    }
    for (int e = 0; e < 3; e++) {
        size_t l1, l3;
        char *one = write_body(x, n, (ld_encoding)e, 1, &l1);
        char *three = write_body(x, n, (ld_encoding)e, 3, &l3);
        assert_true(l1 > n); /* the payload is there */
        assert_int_equal(l1, l3);
        assert_memory_equal(one, three, l1);
        free(one);
        free(three);
    }
    free(x);
}

/* A stream written by hand and by Python's zlib (tests/data/probes/v1_golden.jsonl): format
 * version 1 as it was frozen, read by today's reader, values checked one by one. */
static void test_golden_v1(void **state)
{
    (void)state;
    const char *dir = getenv("LD_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/probes/v1_golden.jsonl", dir ? dir : "tests/data");
    ld_reader *r;
    ld_error err;
    const ld_probe *p;
    TU_OK(ld_reader_open(&r, path, NULL, &err), &err);
    assert_string_equal(ld_reader_header(r)->implementation, "golden");
    assert_string_equal(ld_reader_header(r)->fingerprint, "golden-1");
    TU_OK(ld_reader_next(r, &p, &err), &err); /* S0.embed, stats only */
    assert_true(p->stats.min == -1.0 && p->stats.max == 3.0 && p->stats.mean == 1.0);
    assert_true(p->stats.std == 1.5811388300841898 && p->head[3] == 3.0 && !p->has_data);
    TU_OK(ld_reader_next(r, &p, &err), &err); /* S0.L0.q_norm f32 base64 {1, -2.5} */
    const float q[2] = {1.0f, -2.5f};
    assert_int_equal(p->data_bytes, 8);
    assert_memory_equal(p->data, q, 8);
    TU_OK(ld_reader_next(r, &p, &err), &err); /* S0.L0.k_norm bf16 zlib {0.5, NaN, -Inf} */
    const uint16_t k[3] = {0x3f00, 0x7fc0, 0xff80};
    assert_memory_equal(p->data, k, 6);
    assert_true(isnan(p->head[1]) && p->head[2] == -INFINITY);
    assert_int_equal(p->stats.nan, 1);
    TU_OK(ld_reader_next(r, &p, &err), &err); /* S0.logits f16 shuffle+zlib {1, 2, 65504, -0} */
    const uint16_t l[4] = {0x3c00, 0x4000, 0x7bff, 0x8000};
    assert_int_equal(p->layer, LD_NO_LAYER);
    assert_int_equal(p->encoding, LD_ENC_SHUFFLE_ZLIB_BASE64);
    assert_memory_equal(p->data, l, 8);
    assert_true(p->head[2] == 65504.0 && signbit(p->head[3]));
    TU_OK(ld_reader_next(r, &p, &err), &err);
    assert_null(p);
    assert_int_equal(ld_reader_end(r)->tokens[0], 7);
    ld_reader_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_dtype_and_encoding),
        cmocka_unit_test(test_nonfinite_text),
        cmocka_unit_test(test_precomputed_exact),
        cmocka_unit_test(test_header_and_end),
        cmocka_unit_test(test_gzip_crlf_bom),
        cmocka_unit_test(test_decode_data_off),
        cmocka_unit_test(test_custom_and_empty),
        cmocka_unit_test(test_thread_count_invariance),
        cmocka_unit_test(test_golden_v1),
        cmocka_unit_test(test_other_locale),
    };
    return cmocka_run_group_tests(tests, NULL, tu_teardown);
}

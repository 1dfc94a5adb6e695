/* test_probes_env.c — sink configuration from LAYERDIFF_PROBE* environment variables and the key
 * filters (tag globs, layer and step ranges) that ld_sink_wants() answers before any work. */
#include "probe_test_util.h"

static void clear_env(void)
{
    static const char *const vars[] = {"LAYERDIFF_PROBES",        "LAYERDIFF_PROBE_TAGS",
                                       "LAYERDIFF_PROBE_LAYERS",  "LAYERDIFF_PROBE_STEPS",
                                       "LAYERDIFF_PROBE_PAYLOAD", "LAYERDIFF_PROBE_ENCODING"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static void test_config_from_env(void **state)
{
    (void)state;
    clear_env();
    ld_sink_config cfg;
    ld_error err;
    ld_sink_config_init(&cfg);
    TU_OK(ld_sink_config_from_env(&cfg, &err), &err); /* nothing set: defaults stay */
    assert_int_equal(cfg.payload, LD_PAYLOAD_STATS);
    assert_null(cfg.tags);
    setenv("LAYERDIFF_PROBE_TAGS", "q_*,logits", 1);
    setenv("LAYERDIFF_PROBE_LAYERS", "0-1,5", 1);
    setenv("LAYERDIFF_PROBE_STEPS", "0", 1);
    setenv("LAYERDIFF_PROBE_PAYLOAD", "full", 1);
    setenv("LAYERDIFF_PROBE_ENCODING", "zlib+base64", 1);
    TU_OK(ld_sink_config_from_env(&cfg, &err), &err);
    assert_string_equal(cfg.tags, "q_*,logits");
    assert_string_equal(cfg.layers, "0-1,5");
    assert_string_equal(cfg.steps, "0");
    assert_int_equal(cfg.payload, LD_PAYLOAD_FULL);
    assert_int_equal(cfg.encoding, LD_ENC_ZLIB_BASE64);
    clear_env();
}

static void test_config_env_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *var, *value, *needle;
    } cases[] = {
        {"LAYERDIFF_PROBE_PAYLOAD", "half", "LAYERDIFF_PROBE_PAYLOAD: 'half' is not 'stats' or 'full'"},
        {"LAYERDIFF_PROBE_ENCODING", "lz4", "LAYERDIFF_PROBE_ENCODING: 'lz4' is not base64"},
        {"LAYERDIFF_PROBE_LAYERS", "3-1", "LAYERDIFF_PROBE_LAYERS: bad range '3-1'"},
        {"LAYERDIFF_PROBE_LAYERS", "x", "LAYERDIFF_PROBE_LAYERS: bad range 'x'"},
        {"LAYERDIFF_PROBE_STEPS", "1,,2", "LAYERDIFF_PROBE_STEPS: bad range list"},
        {"LAYERDIFF_PROBE_TAGS", "q norm", "LAYERDIFF_PROBE_TAGS: bad tag pattern 'q norm'"},
        {"LAYERDIFF_PROBE_TAGS", "q_*,", "LAYERDIFF_PROBE_TAGS: bad tag pattern ''"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        clear_env();
        setenv(cases[i].var, cases[i].value, 1);
        ld_sink_config cfg;
        ld_error err;
        ld_sink_config_init(&cfg);
        TU_FAILS(ld_sink_config_from_env(&cfg, &err), &err, LD_E_USAGE, cases[i].needle);
    }
    clear_env();
}

static void test_open_env(void **state)
{
    (void)state;
    clear_env();
    ld_sink *s = (ld_sink *)1;
    ld_error err;
    ld_run_info run = tu_run();
    TU_OK(ld_sink_open_env(&s, &run, &err), &err);
    assert_null(s); /* probing off */
    setenv("LAYERDIFF_PROBES", "", 1);
    TU_OK(ld_sink_open_env(&s, &run, &err), &err);
    assert_null(s);
    char path[512];
    setenv("LAYERDIFF_PROBES", tu_path(path, sizeof path, "env.jsonl"), 1);
    setenv("LAYERDIFF_PROBE_TAGS", "*norm", 1);
    setenv("LAYERDIFF_PROBE_PAYLOAD", "full", 1);
    TU_OK(ld_sink_open_env(&s, &run, &err), &err);
    assert_non_null(s);
    assert_true(ld_sink_wants_data(s));
    assert_true(ld_sink_wants(s, 0, 0, "q_norm"));
    assert_false(ld_sink_wants(s, 0, 0, "q_proj"));
    float x[2] = {1, 2};
    int64_t shape[1] = {2};
    TU_OK(ld_sink_emit(s, 0, 0, "q_proj", 0, LD_F32, shape, 1, x, &err), &err); /* dropped */
    TU_OK(ld_sink_emit(s, 0, 0, "q_norm", 0, LD_F32, shape, 1, x, &err), &err);
    assert_int_equal(ld_sink_probe_count(s), 1);
    TU_OK(ld_sink_close(s, NULL, &err), &err);
    ld_reader *r;
    const ld_probe *p;
    TU_OK(ld_reader_open(&r, path, NULL, &err), &err);
    TU_OK(ld_reader_next(r, &p, &err), &err);
    assert_string_equal(p->tag, "q_norm");
    assert_true(p->has_data);
    ld_reader_close(r);
    setenv("LAYERDIFF_PROBE_PAYLOAD", "bogus", 1);
    TU_FAILS(ld_sink_open_env(&s, &run, &err), &err, LD_E_USAGE, "LAYERDIFF_PROBE_PAYLOAD");
    assert_null(s);
    setenv("LAYERDIFF_PROBE_PAYLOAD", "stats", 1);
    setenv("LAYERDIFF_PROBES", "/nonexistent-dir/x.jsonl", 1);
    TU_FAILS(ld_sink_open_env(&s, &run, &err), &err, LD_E_IO,
             "LAYERDIFF_PROBES: /nonexistent-dir/x.jsonl: cannot create");
    clear_env();
}

static void test_filters(void **state)
{
    (void)state;
    char path[512];
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.tags = "q_*,logits,?_rope";
    cfg.layers = "0-1,5";
    cfg.steps = "0,2-";
    ld_error err;
    ld_sink *s;
    ld_run_info run = tu_run();
    TU_OK(ld_sink_open(&s, tu_path(path, sizeof path, "filt.jsonl"), &cfg, &run, &err), &err);
    assert_false(ld_sink_wants_data(s));
    static const struct {
        int step, layer;
        const char *tag;
        bool want;
    } cases[] = {
        {0, 0, "q_norm", true},   {0, 1, "q_proj", true},     {0, 5, "q_rope", true},
        {0, 2, "q_norm", false},  {0, 6, "q_norm", false},    {0, 0, "k_norm", false},
        {0, 0, "k_rope", true},   {0, 0, "kk_rope", false},   {0, LD_NO_LAYER, "logits", true},
        {0, LD_NO_LAYER, "embed", false}, {1, 0, "q_norm", false}, {2, 0, "q_norm", true},
        {900, 1, "q_proj", true}, {1, LD_NO_LAYER, "logits", false},
        {0, LD_NO_LAYER, "q_custom", true}, /* model-level keys pass the layer filter */
    };
    float x[2] = {1, 2};
    int64_t shape[1] = {2};
    uint64_t written = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool w = ld_sink_wants(s, cases[i].step, cases[i].layer, cases[i].tag);
        if (w != cases[i].want)
            fail_msg("wants(S%d L%d %s) = %d", cases[i].step, cases[i].layer, cases[i].tag, w);
        TU_OK(ld_sink_emit(s, cases[i].step, cases[i].layer, cases[i].tag, 0, LD_F32, shape, 1, x,
                           &err),
              &err);
        written += cases[i].want;
        assert_int_equal(ld_sink_probe_count(s), written);
    }
    TU_OK(ld_sink_close(s, NULL, &err), &err);
    /* what was written reads back with consecutive indices */
    ld_reader *r;
    uint64_t n;
    TU_OK(ld_reader_open(&r, path, NULL, &err), &err);
    TU_OK(tu_read_all(r, &n, &err), &err);
    assert_int_equal(n, written);
    ld_reader_close(r);
    /* no sink, no wants */
    assert_false(ld_sink_wants(NULL, 0, 0, "q_norm"));
    assert_false(ld_sink_wants_data(NULL));
    assert_string_equal(ld_sink_last_key(NULL), "");
    assert_int_equal(ld_sink_probe_count(NULL), 0);
    TU_FAILS(ld_sink_emit(NULL, 0, 0, "q_norm", 0, LD_F32, shape, 1, x, &err), &err, LD_E_USAGE,
             "NULL sink");
    /* bad filters are refused at open */
    cfg.layers = "1-x";
    TU_FAILS(ld_sink_open(&s, path, &cfg, &run, &err), &err, LD_E_USAGE, "layers: bad range");
    cfg.layers = NULL;
    cfg.tags = "a b";
    TU_FAILS(ld_sink_open(&s, path, &cfg, &run, &err), &err, LD_E_USAGE, "tags: bad tag pattern");
    cfg.tags = NULL;
    cfg.steps = "-3";
    TU_FAILS(ld_sink_open(&s, path, &cfg, &run, &err), &err, LD_E_USAGE, "steps: bad range");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_from_env),
        cmocka_unit_test(test_config_env_refusals),
        cmocka_unit_test(test_open_env),
        cmocka_unit_test(test_filters),
    };
    return cmocka_run_group_tests(tests, NULL, tu_teardown);
}

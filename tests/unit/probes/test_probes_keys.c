/* test_probes_keys.c — probe keys (parse, format, execution order) and the small name tables
 * of the probe library: encodings, dtypes, version string. */
#include <limits.h>

#include "probe_test_util.h"

static void test_key_parse_forms(void **state)
{
    (void)state;
    ld_key k;
    ld_error err;
    TU_OK(ld_key_parse("S2.L3.q_norm", &k, &err), &err);
    assert_int_equal(k.step, 2);
    assert_int_equal(k.layer, 3);
    assert_string_equal(k.tag, "q_norm");
    TU_OK(ld_key_parse("L3.q_norm", &k, &err), &err);
    assert_int_equal(k.step, 0);
    assert_int_equal(k.layer, 3);
    TU_OK(ld_key_parse("S1.logits", &k, &err), &err);
    assert_int_equal(k.step, 1);
    assert_int_equal(k.layer, LD_NO_LAYER);
    assert_string_equal(k.tag, "logits");
    TU_OK(ld_key_parse("logits", &k, &err), &err);
    assert_int_equal(k.step, 0);
    assert_int_equal(k.layer, LD_NO_LAYER);
    /* custom tags: with or without a layer, dots and slashes allowed */
    TU_OK(ld_key_parse("S0.L27.my/tap:0", &k, &err), &err);
    assert_int_equal(k.layer, 27);
    assert_string_equal(k.tag, "my/tap:0");
    TU_OK(ld_key_parse("blk.3.attn", &k, &err), &err);
    assert_int_equal(k.layer, LD_NO_LAYER);
    assert_string_equal(k.tag, "blk.3.attn");
}

static void test_key_parse_refusals(void **state)
{
    (void)state;
    ld_key k;
    ld_error err;
    TU_FAILS(ld_key_parse("", &k, &err), &err, LD_E_USAGE, "empty probe key");
    TU_FAILS(ld_key_parse("q_norm", &k, &err), &err, LD_E_USAGE, "per-layer tag");
    TU_FAILS(ld_key_parse("L2.logits", &k, &err), &err, LD_E_USAGE, "model-level tag");
    TU_FAILS(ld_key_parse("S1.L3.q norm", &k, &err), &err, LD_E_USAGE, "not a tag name");
    TU_FAILS(ld_key_parse("S1.", &k, &err), &err, LD_E_USAGE, "not a tag name");
    TU_FAILS(ld_key_parse("S99999999999.logits", &k, &err), &err, LD_E_USAGE, "out of range");
    TU_FAILS(ld_key_parse("L2147483648.q_norm", &k, &err), &err, LD_E_USAGE, "out of range");
}

static void test_key_format(void **state)
{
    (void)state;
    char buf[64];
    ld_key a = {2, 3, "q_norm"}, b = {0, LD_NO_LAYER, "logits"};
    assert_string_equal(ld_key_format(&a, buf, sizeof buf), "S2.L3.q_norm");
    assert_string_equal(ld_key_format(&b, buf, sizeof buf), "S0.logits");
    char small[6];
    assert_string_equal(ld_key_format(&a, small, sizeof small), "S2.L3"); /* truncated, terminated */
    assert_string_equal(ld_key_format(&a, small, 1), "");
    ld_key c = {INT_MAX, 1234567890, "x"}, d = {-7, -2, "y"}; /* (a reader's keys are checked) */
    assert_string_equal(ld_key_format(&c, buf, sizeof buf), "S2147483647.L1234567890.x");
    assert_string_equal(ld_key_format(&d, buf, sizeof buf), "S-7.L-2.y");
    ld_key back;
    ld_error err;
    TU_OK(ld_key_parse(ld_key_format(&a, buf, sizeof buf), &back, &err), &err);
    assert_int_equal(back.step, 2);
    assert_int_equal(back.layer, 3);
    assert_string_equal(back.tag, "q_norm");
}

static ld_key K(int step, int layer, const char *tag)
{
    ld_key k = {step, layer, ""};
    snprintf(k.tag, sizeof k.tag, "%s", tag);
    return k;
}

static void test_key_exec_order(void **state)
{
    (void)state;
    /* one step in execution order, then the next step */
    ld_key seq[] = {K(0, LD_NO_LAYER, "embed"), K(0, 0, "attn_norm"), K(0, 0, "q_proj"),
                    K(0, 0, "layer_out"),       K(0, 0, "zz_custom"), K(0, 1, "attn_norm"),
                    K(0, 10, "attn_norm"),      K(0, LD_NO_LAYER, "final_norm"),
                    K(0, LD_NO_LAYER, "logits"), K(0, LD_NO_LAYER, "aa_custom"),
                    K(1, LD_NO_LAYER, "embed")};
    size_t n = sizeof seq / sizeof seq[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            int c = ld_key_cmp_exec(&seq[i], &seq[j]);
            int want = i < j ? -1 : i > j ? 1 : 0;
            if (c != want)
                fail_msg("cmp(%s L%d, %s L%d) = %d, want %d", seq[i].tag, seq[i].layer, seq[j].tag,
                         seq[j].layer, c, want);
        }
}

static void test_names(void **state)
{
    (void)state;
    ld_encoding e;
    assert_string_equal(ld_encoding_name(LD_ENC_BASE64), "base64");
    assert_string_equal(ld_encoding_name(LD_ENC_ZLIB_BASE64), "zlib+base64");
    assert_string_equal(ld_encoding_name(LD_ENC_SHUFFLE_ZLIB_BASE64), "shuffle+zlib+base64");
    assert_true(ld_encoding_parse("shuffle+zlib+base64", &e));
    assert_int_equal(e, LD_ENC_SHUFFLE_ZLIB_BASE64);
    assert_false(ld_encoding_parse("zlib", &e));
    assert_false(ld_encoding_parse(NULL, &e));
    assert_non_null(strstr(ld_probes_version(), "(git "));
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    assert_int_equal(cfg.payload, LD_PAYLOAD_STATS);
    assert_int_equal(cfg.encoding, LD_ENC_BASE64);
    assert_int_equal(cfg.zlib_level, 1);
    assert_null(cfg.tags);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_parse_forms), cmocka_unit_test(test_key_parse_refusals),
        cmocka_unit_test(test_key_format),      cmocka_unit_test(test_key_exec_order),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

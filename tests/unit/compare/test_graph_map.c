/* test_graph_map.c — the op graph of docs/tags.md (inputs of every tag; shapes and
 * families of the tag table, layerdiff/tags.h), the --map format (renames with captured layer/step
 * numbers, drops, offsets, bad maps named by file and field), --fail-on parsing, and the exit-code
 * precedence of a result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compare.h"

static ld_key key(int step, int layer, const char *tag)
{
    ld_key k = {step, layer, ""};
    snprintf(k.tag, sizeof k.tag, "%s", tag);
    return k;
}

/* Asserts that the inputs of k are exactly want[] ("S0.L3.q_proj" spelling), in order. */
static void expect_inputs(ld_key k, int n_layers, const char *const *want, size_t n_want)
{
    ld_key in[16];
    size_t n = ld_tag_input_keys(&k, n_layers, in, 16);
    if (n != n_want)
        fail_msg("%s: %zu inputs, expected %zu", k.tag, n, n_want);
    for (size_t i = 0; i < n; i++) {
        char buf[160];
        ld_key_format(&in[i], buf, sizeof buf);
        if (strcmp(buf, want[i]))
            fail_msg("%s: input %zu is %s, expected %s", k.tag, i, buf, want[i]);
    }
}
#define EXPECT(k, nl, ...)                                                                         \
    do {                                                                                           \
        static const char *const w_[] = {__VA_ARGS__};                                             \
        expect_inputs(k, nl, w_, sizeof w_ / sizeof w_[0]);                                        \
    } while (0)

static void test_opgraph(void **state)
{
    (void)state;
    EXPECT(key(0, 0, "attn_norm"), 4, "S0.embed");
    EXPECT(key(0, 3, "attn_norm"), 4, "S0.L2.layer_out");
    EXPECT(key(1, 3, "q_proj"), 4, "S1.L3.attn_norm");
    EXPECT(key(0, 3, "v_proj"), 4, "S0.L3.attn_norm");
    EXPECT(key(0, 3, "q_norm"), 4, "S0.L3.q_proj");
    EXPECT(key(0, 3, "k_norm"), 4, "S0.L3.k_proj");
    EXPECT(key(0, 3, "q_rope"), 4, "S0.L3.q_norm");
    EXPECT(key(0, 3, "k_rope"), 4, "S0.L3.k_norm");
    EXPECT(key(0, 1, "attn_out"), 4, "S0.L1.q_rope", "S0.L1.k_rope", "S0.L1.v_proj");
    EXPECT(key(2, 1, "attn_out"), 4, "S2.L1.q_rope", "S0.L1.k_rope", "S0.L1.v_proj",
           "S1.L1.k_rope", "S1.L1.v_proj", "S2.L1.k_rope", "S2.L1.v_proj");
    EXPECT(key(0, 1, "o_proj"), 4, "S0.L1.attn_out");
    EXPECT(key(0, 1, "attn_residual"), 4, "S0.L0.layer_out", "S0.L1.o_proj");
    EXPECT(key(0, 0, "attn_residual"), 4, "S0.embed", "S0.L0.o_proj");
    EXPECT(key(0, 1, "mlp_norm"), 4, "S0.L1.attn_residual");
    EXPECT(key(0, 1, "gate_proj"), 4, "S0.L1.mlp_norm");
    EXPECT(key(0, 1, "up_proj"), 4, "S0.L1.mlp_norm");
    EXPECT(key(0, 1, "mlp_act"), 4, "S0.L1.gate_proj", "S0.L1.up_proj");
    EXPECT(key(0, 1, "down_proj"), 4, "S0.L1.mlp_act");
    EXPECT(key(0, 1, "layer_out"), 4, "S0.L1.attn_residual", "S0.L1.down_proj");
    EXPECT(key(3, LD_NO_LAYER, "final_norm"), 4, "S3.L3.layer_out");
    EXPECT(key(3, LD_NO_LAYER, "logits"), 4, "S3.final_norm");
    ld_key in[4];
    ld_key k = key(0, LD_NO_LAYER, "embed");
    assert_int_equal(ld_tag_input_keys(&k, 4, in, 4), 0);
    k = key(0, 2, "my_custom_tag");
    assert_int_equal(ld_tag_input_keys(&k, 4, in, 4), 0);
    k = key(0, LD_NO_LAYER, "q_norm"); /* a per-layer tag without a layer: no inputs */
    assert_int_equal(ld_tag_input_keys(&k, 4, in, 4), 0);
    /* more inputs than room: the count is still right, only max are written */
    k = key(5, 0, "attn_out");
    assert_int_equal(ld_tag_input_keys(&k, 4, in, 2), 13);
    assert_string_equal(ld_tag_op_name(LD_TAG_Q_NORM), "q/k norm");
    assert_string_equal(ld_tag_op_name(LD_TAG_UNKNOWN), "op");
}

/* The rest of the tag table: shapes in model dimensions and the families the HTML charts. */
static void test_tag_table(void **state)
{
    (void)state;
    const ld_tag_sizes z = {.H = 64, .Hq = 4, .Hkv = 2, .D = 16, .I = 128, .V = 256};
    int64_t shape[3];
    assert_int_equal(ld_tag_dims(LD_TAG_K_ROPE, &z, 5, shape), 3);
    assert_true(shape[0] == 5 && shape[1] == 2 && shape[2] == 16);
    assert_int_equal(ld_tag_dims(LD_TAG_LOGITS, &z, 1, shape), 2);
    assert_true(shape[0] == 1 && shape[1] == 256);
    assert_int_equal(ld_tag_width(LD_TAG_Q_PROJ, &z), 64);
    assert_int_equal(ld_tag_width(LD_TAG_MLP_ACT, &z), 128);
    assert_int_equal(ld_tag_width(LD_TAG_UNKNOWN, &z), 64);
    assert_int_equal(ld_tag_family(LD_TAG_O_PROJ), LD_FAMILY_ATTN_PROJ);
    assert_int_equal(ld_tag_family(LD_TAG_LAYER_OUT), LD_FAMILY_RESIDUAL);
    assert_string_equal(ld_family_title(LD_FAMILY_QK_NORM_ROPE), "q/k norm and RoPE");
    assert_null(ld_family_title(LD_FAMILY_COUNT));
    /* every input an op lists is an earlier tag of the table: the graph is acyclic */
    for (int t = 0; t < LD_TAG_COUNT; t++)
        for (const ld_tag_input *in = ld_tag_inputs((ld_tag)t); in->kind != LD_INPUT_END; in++)
            assert_true(in->kind == LD_INPUT_STREAM || (int)in->tag < t);
}

static const char *map_text =
    "{\"version\": 1, \"description\": \"a foreign dump\", \"rules\": [\n"
    "  {\"from\": \"embeddings\", \"tag\": \"embed\", \"layer\": null},\n"
    "  {\"from\": \"layer_{layer}_attn_q_proj_raw\", \"tag\": \"q_proj\", \"reshape\": true},\n"
    "  {\"from\": \"blk.{layer}.ffn_*\", \"tag\": \"mlp_act\", \"layer_offset\": -1},\n"
    "  {\"from\": \"s{step}.l{layer}.kq\", \"tag\": \"k_rope\"},\n"
    "  {\"from\": \"debug_*\", \"drop\": true},\n"
    "  {\"from\": \"lm_head\", \"tag\": \"logits\", \"comment\": \"first match wins\"},\n"
    "  {\"from\": \"lm_head\", \"tag\": \"never\"}\n"
    "]}";

static void test_keymap(void **state)
{
    (void)state;
    ld_keymap *m = NULL;
    ld_error err;
    assert_int_equal(ld_keymap_parse(map_text, strlen(map_text), "map.json", &m, &err), LD_OK);
    ld_key out;
    bool reshape = false;
    assert_int_equal(ld_keymap_apply(m, 0, LD_NO_LAYER, "layer_3_attn_q_proj_raw", &out, &reshape),
                     LD_MAP_RENAME);
    assert_true(out.step == 0 && out.layer == 3 && !strcmp(out.tag, "q_proj") && reshape);
    assert_int_equal(ld_keymap_apply(m, 1, LD_NO_LAYER, "layer_27_attn_q_proj_raw", &out, &reshape),
                     LD_MAP_RENAME);
    assert_true(out.step == 1 && out.layer == 27);
    /* digits that do not end where the pattern says do not match */
    assert_int_equal(ld_keymap_apply(m, 0, LD_NO_LAYER, "layer_3x_attn_q_proj_raw", &out, NULL),
                     LD_MAP_KEEP);
    assert_int_equal(ld_keymap_apply(m, 0, LD_NO_LAYER, "layer__attn_q_proj_raw", &out, NULL),
                     LD_MAP_KEEP);
    assert_int_equal(ld_keymap_apply(m, 0, 7, "embeddings", &out, &reshape), LD_MAP_RENAME);
    assert_true(out.layer == LD_NO_LAYER && !strcmp(out.tag, "embed") && !reshape);
    assert_int_equal(ld_keymap_apply(m, 0, LD_NO_LAYER, "blk.1.ffn_act", &out, NULL), LD_MAP_RENAME);
    assert_true(out.layer == 0 && !strcmp(out.tag, "mlp_act")); /* 1-based layers, offset -1 */
    assert_int_equal(ld_keymap_apply(m, 0, LD_NO_LAYER, "s2.l5.kq", &out, NULL), LD_MAP_RENAME);
    assert_true(out.step == 2 && out.layer == 5 && !strcmp(out.tag, "k_rope"));
    assert_int_equal(ld_keymap_apply(m, 0, 0, "debug_sums", &out, NULL), LD_MAP_DROP);
    assert_int_equal(ld_keymap_apply(m, 2, LD_NO_LAYER, "lm_head", &out, NULL), LD_MAP_RENAME);
    assert_true(!strcmp(out.tag, "logits") && out.step == 2);
    /* our own tags pass through untouched */
    assert_int_equal(ld_keymap_apply(m, 1, 4, "q_norm", &out, NULL), LD_MAP_KEEP);
    assert_true(out.step == 1 && out.layer == 4 && !strcmp(out.tag, "q_norm"));
    assert_int_equal(ld_keymap_apply(NULL, 1, 4, "anything", &out, NULL), LD_MAP_KEEP);
    ld_keymap_destroy(m);
    ld_keymap_destroy(NULL);
}

static void expect_bad_map(const char *text, const char *want)
{
    ld_keymap *m = NULL;
    ld_error err;
    ld_error_clear(&err);
    ld_status st = ld_keymap_parse(text, strlen(text), "m.json", &m, &err);
    if (st != LD_E_INPUT || !strstr(err.msg, "m.json") || !strstr(err.msg, want))
        fail_msg("for %s: status %d, message '%s' (wanted '%s')", text, st, err.msg, want);
    assert_null(m);
}

static void test_bad_maps(void **state)
{
    (void)state;
    expect_bad_map("{\"version\": 1, \"rules\": []}", "rules: missing, empty");
    expect_bad_map("{\"rules\": [{\"from\": \"a\", \"tag\": \"b\"}]}", "version");
    expect_bad_map("{\"version\": 1, \"rules\": [{\"from\": \"a_{lay}\", \"tag\": \"b\"}]}",
                   "rules[0].from: '{' starts neither");
    expect_bad_map("{\"version\": 1, \"rules\": [{\"from\": \"{layer}_{layer}\", \"tag\": \"b\"}]}",
                   "rules[0].from");
    expect_bad_map("{\"version\": 1, \"rules\": [{\"from\": \"*a*b*\", \"tag\": \"b\"}]}",
                   "rules[0].from");
    expect_bad_map("{\"version\": 1, \"rules\": [{\"from\": \"a}\", \"tag\": \"b\"}]}",
                   "stray '}'");
    expect_bad_map("{\"version\": 1, \"rules\": [{\"from\": \"a\"}]}", "rules[0].tag: missing");
    expect_bad_map("{\"version\": 1, \"rules\": [{\"from\": \"a\", \"tag\": \"has space\"}]}",
                   "rules[0].tag");
    expect_bad_map("{\"version\": 1, \"rules\": [{\"from\": \"a\", \"tag\": \"b\"}, "
                   "{\"from\": \"c\", \"tag\": \"d\", \"layer\": 1.5}]}",
                   "rules[1].layer");
    expect_bad_map("{\"version\": 1, \"rules\": [{\"from\": \"a\", \"tag\": \"b\", \"to\": 1}]}",
                   "rules[0].to: unknown field");
    expect_bad_map("{\"version\": 1, \"rules\": [{\"from\": \"\", \"tag\": \"b\"}]}",
                   "rules[0].from");
    expect_bad_map("{\"version\": 1, \"rules\": [{\"from\": \"a\", \"drop\": \"yes\"}]}",
                   "rules[0].drop");
}

static void test_fail_on(void **state)
{
    (void)state;
    unsigned b = 0;
    ld_error err;
    assert_int_equal(ld_fail_on_parse("divergence,argmax", &b, &err), LD_OK);
    assert_int_equal(b, LD_FAIL_ON_DIVERGENCE | LD_FAIL_ON_ARGMAX);
    assert_int_equal(ld_fail_on_parse("none", &b, &err), LD_OK);
    assert_int_equal(b, 0);
    assert_int_equal(ld_fail_on_parse("all", &b, &err), LD_OK);
    assert_int_equal(b, LD_FAIL_ON_ALL);
    assert_int_equal(ld_fail_on_parse("divergence,bogus", &b, &err), LD_E_USAGE);
    assert_non_null(strstr(err.msg, "'bogus'"));
    assert_int_equal(ld_fail_on_parse("", &b, &err), LD_E_USAGE);
    assert_int_equal(ld_fail_on_parse("divergence,", &b, &err), LD_E_USAGE);
    char buf[128];
    ld_fail_on_format(LD_FAIL_ON_DEFAULT, buf, sizeof buf);
    assert_string_equal(buf, "divergence,incomplete");
    ld_fail_on_format(0, buf, sizeof buf);
    assert_string_equal(buf, "none");
}

static void test_exit_codes(void **state)
{
    (void)state;
    ld_compare_result r;
    memset(&r, 0, sizeof r);
    r.argmax_step = -1;
    unsigned all = LD_FAIL_ON_ALL, def = LD_FAIL_ON_DEFAULT;
    assert_int_equal(ld_compare_exit_code(&r, all), 0);
    r.incomplete = true;
    assert_int_equal(ld_compare_exit_code(&r, def), 3);
    assert_int_equal(ld_compare_exit_code(&r, LD_FAIL_ON_DIVERGENCE), 0); /* not asked for */
    r.divergence = true;
    assert_int_equal(ld_compare_exit_code(&r, def), 1); /* a divergence outranks incompleteness */
    assert_int_equal(ld_compare_exit_code(&r, LD_FAIL_ON_INCOMPLETE), 3);
    r.fingerprint_differs = true;
    assert_int_equal(ld_compare_exit_code(&r, def), 1); /* fingerprints fail only when asked */
    assert_int_equal(ld_compare_exit_code(&r, all), 2); /* and then outrank everything */
    memset(&r, 0, sizeof r);
    r.argmax_step = 2;
    assert_int_equal(ld_compare_exit_code(&r, def), 0);
    assert_int_equal(ld_compare_exit_code(&r, LD_FAIL_ON_ARGMAX), 1);
    r.argmax_step = -1;
    r.n_stats_only = 4;
    assert_int_equal(ld_compare_exit_code(&r, def), 0);
    assert_int_equal(ld_compare_exit_code(&r, LD_FAIL_ON_NODATA), 3);
    r.n_stats_only = 0;
    r.faults_differ = true;
    assert_int_equal(ld_compare_exit_code(&r, LD_FAIL_ON_FAULTS), 2);
    memset(&r, 0, sizeof r);
    r.argmax_step = -1;
    r.empty = true; /* never a pass, whatever fail-on says */
    assert_int_equal(ld_compare_exit_code(&r, 0), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opgraph),  cmocka_unit_test(test_tag_table),
        cmocka_unit_test(test_keymap),   cmocka_unit_test(test_bad_maps),
        cmocka_unit_test(test_fail_on),
        cmocka_unit_test(test_exit_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_gate_lib.c — the regression gate and the bit-exactness walk through the library, on
 * constructed streams (tests/e2e/compare/streams.c) whose errors are known by construction: every
 * key of a candidate written with relative noise a has the same noise direction as with noise b, so
 * the ratio of their rel_l2 is b/a. Noise levels stay under the f32 tolerance (rel_l2 1e-4), so
 * the gate alone decides. Also malformed and mismatched baselines. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "compare.h"
#include "gate.h"
#include "streams.h"

/* 3 steps x (embed + 3 layers x 17 tags + final_norm + logits) */
#define ROWS (3 * (1 + TS_LAYERS * 17 + 2))

static char dir[256];

static const char *path_of(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static void write_stream(const char *name, ts_scenario sc)
{
    char msg[1024];
    if (!sc.implementation) sc.implementation = "candidate";
    if (ts_write(path_of(name), &sc, msg, sizeof msg)) fail_msg("%s", msg);
}

static void write_text(const char *name, const char *text)
{
    FILE *f = fopen(path_of(name), "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static ld_compare_result *compare(const char *ref, const char *cand)
{
    ld_compare_result *r = NULL;
    ld_error err;
    ld_error_clear(&err);
    if (ld_compare_run(path_of(ref), path_of(cand), NULL, &r, &err) != LD_OK)
        fail_msg("%s vs %s: %s", ref, cand, err.msg);
    return r;
}

/* The JSON report of ref vs cand, written as baseline file name. */
static void make_baseline(const char *ref, const char *cand, const char *name)
{
    ld_compare_result *r = compare(ref, cand);
    ld_error err;
    if (ld_report_to_file(path_of(name), ld_report_json, r, NULL, &err) != LD_OK)
        fail_msg("%s", err.msg);
    ld_compare_result_destroy(r);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ld_gate_lib_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    write_stream("ref.jsonl", (ts_scenario){.implementation = "reference", .dtype = LD_F32});
    write_stream("n1.jsonl", (ts_scenario){.dtype = LD_F32, .noise = 1e-5});
    write_stream("n29.jsonl", (ts_scenario){.dtype = LD_F32, .noise = 2.9e-5});
    write_stream("n31.jsonl", (ts_scenario){.dtype = LD_F32, .noise = 3.1e-5});
    /* one key 6x worse / 10x better than the others, which keep noise 1e-5 */
    write_stream("worse.jsonl", (ts_scenario){.dtype = LD_F32,
                                              .noise = 1e-5,
                                              .perturb_key = "S0.L1.q_norm",
                                              .big = 6e-5,
                                              .downstream = 1e-5});
    write_stream("better.jsonl", (ts_scenario){.dtype = LD_F32,
                                               .noise = 1e-5,
                                               .perturb_key = "S1.L2.o_proj",
                                               .big = 1e-6,
                                               .downstream = 1e-5});
    write_stream("nan.jsonl",
                 (ts_scenario){.dtype = LD_F32, .noise = 1e-5, .nan_key = "S0.L2.mlp_act"});
    write_stream("missing.jsonl",
                 (ts_scenario){.dtype = LD_F32, .noise = 1e-5, .skip_key = "S0.L1.mlp_act"});
    write_stream("truncated.jsonl",
                 (ts_scenario){.dtype = LD_F32, .truncate_after = "S0.L1.up_proj"});
    write_stream("stats.jsonl", (ts_scenario){.dtype = LD_F32, .stats_only = true});
    write_stream("stats2.jsonl", (ts_scenario){.dtype = LD_F32, .stats_only = true});
    write_stream("same.jsonl", (ts_scenario){.dtype = LD_F32});
    write_stream("perturbed.jsonl", (ts_scenario){.dtype = LD_F32,
                                                  .perturb_key = "S0.L1.q_norm",
                                                  .big = 0.4,
                                                  .downstream = 0.05});
    write_stream("bf16.jsonl", (ts_scenario){.dtype = LD_BF16});
    write_stream("header_only.jsonl", (ts_scenario){.dtype = LD_F32, .header_only = true});
    /* other models and inputs, each with its own reference and candidate */
    write_stream("ref_tok.jsonl",
                 (ts_scenario){.implementation = "reference", .dtype = LD_F32, .token_shift = 1});
    write_stream("cand_tok.jsonl", (ts_scenario){.dtype = LD_F32, .noise = 1e-3, .token_shift = 1});
    write_stream("ref_h.jsonl",
                 (ts_scenario){.implementation = "reference", .dtype = LD_F32, .hidden_size = 65});
    write_stream("cand_h.jsonl", (ts_scenario){.dtype = LD_F32, .noise = 1e-3, .hidden_size = 65});
    write_stream("ref_fp.jsonl", (ts_scenario){.implementation = "reference",
                                               .dtype = LD_F32,
                                               .fingerprint = "fp-fedcba9876543210"});
    write_stream(
        "cand_fp.jsonl",
        (ts_scenario){.dtype = LD_F32, .noise = 1e-3, .fingerprint = "fp-fedcba9876543210"});
    write_stream(
        "ref_skip.jsonl",
        (ts_scenario){.implementation = "reference", .dtype = LD_F32, .skip_key = "S2.L0.k_norm"});
    write_stream("cand_skip.jsonl",
                 (ts_scenario){.dtype = LD_F32, .noise = 1e-3, .skip_key = "S2.L0.k_norm"});
    make_baseline("ref.jsonl", "n1.jsonl", "base.json");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static ld_baseline *load(const char *name)
{
    ld_baseline *b = NULL;
    ld_error err;
    if (ld_baseline_load(path_of(name), &b, &err) != LD_OK) fail_msg("%s: %s", name, err.msg);
    return b;
}

/* cand (against ref.jsonl) judged against base.json with factor 3, slack 1e-6. */
static ld_compare_result *gate(const char *ref, const char *cand, double factor, double slack)
{
    ld_compare_result *r = compare(ref, cand);
    ld_baseline *b = load("base.json");
    ld_error err;
    if (ld_baseline_apply(r, b, factor, slack, &err) != LD_OK) fail_msg("%s: %s", cand, err.msg);
    ld_baseline_destroy(b);
    assert_non_null(r->baseline);
    return r;
}

static const char *key_of(const ld_compare_result *r, ptrdiff_t row)
{
    static char buf[200];
    return row < 0 ? "(none)" : ld_key_format(&r->rows[row].key, buf, sizeof buf);
}

static const ld_gate_entry *entry(const ld_compare_result *r, const char *key)
{
    ld_key k;
    ld_error err;
    assert_int_equal(ld_key_parse(key, &k, &err), LD_OK);
    ptrdiff_t i = ld_compare_find(r, &k);
    assert_true(i >= 0);
    return &r->baseline->entries[i];
}

static void test_same_noise_passes(void **state)
{
    (void)state;
    ld_compare_result *r = gate("ref.jsonl", "n1.jsonl", 3, 1e-6);
    const ld_baseline_check *c = r->baseline;
    assert_int_equal(c->n_judged, ROWS);
    assert_int_equal(c->n_regressed, 0);
    assert_int_equal(c->n_improved, 0);
    assert_int_equal(c->first_regressed, -1);
    for (size_t i = 0; i < c->n_entries; i++) /* the report keeps 9 digits */
        assert_true(fabs(c->entries[i].ratio - 1.0) < 1e-7);
    assert_false(r->regression);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT | LD_FAIL_ON_REGRESSION), 0);
    ld_compare_result_destroy(r);
}

/* 2.9x everywhere stays within a factor of 3; 3.1x everywhere regresses, first at S0.embed. No
 * slack here: against errors of 1e-5 the default 1e-6 would move the boundary to 3.1x. */
static void test_factor_boundary(void **state)
{
    (void)state;
    ld_compare_result *r = gate("ref.jsonl", "n29.jsonl", 3, 0);
    assert_int_equal(r->baseline->n_regressed, 0);
    for (size_t i = 0; i < r->baseline->n_entries; i++)
        assert_true(fabs(r->baseline->entries[i].ratio - 2.9) < 1e-2);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT | LD_FAIL_ON_REGRESSION), 0);
    ld_compare_result_destroy(r);

    r = gate("ref.jsonl", "n31.jsonl", 3, 0);
    assert_int_equal(r->baseline->n_regressed, ROWS);
    assert_false(r->divergence); /* every probe is within the f32 tolerance */
    assert_string_equal(key_of(r, r->baseline->first_regressed), "S0.embed");
    assert_true(r->regression);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT | LD_FAIL_ON_REGRESSION), 1);
    /* regression is a condition of its own: left out of --fail-on, it does not fail */
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 0);
    ld_compare_result_destroy(r);

    /* a factor of 3.2 lets 3.1x pass; an absolute slack of 1e-5 too (3 x 1e-5 + 1e-5 > 3.1e-5) */
    r = gate("ref.jsonl", "n31.jsonl", 3.2, 0);
    assert_int_equal(r->baseline->n_regressed, 0);
    ld_compare_result_destroy(r);
    r = gate("ref.jsonl", "n31.jsonl", 3, 1e-5);
    assert_int_equal(r->baseline->n_regressed, 0);
    ld_compare_result_destroy(r);
}

static void test_one_key_worse(void **state)
{
    (void)state;
    ld_compare_result *r = gate("ref.jsonl", "worse.jsonl", 3, 1e-6);
    const ld_baseline_check *c = r->baseline;
    assert_int_equal(c->n_regressed, 1);
    assert_string_equal(key_of(r, c->first_regressed), "S0.L1.q_norm");
    const ld_gate_entry *e = entry(r, "S0.L1.q_norm");
    assert_int_equal(e->verdict, LD_GATE_REGRESSED);
    assert_false(e->by_nonfinite);
    assert_true(fabs(e->ratio - 6.0) < 0.05);
    /* |noise| / |values| of 320 normal draws: within a few percent of the noise level */
    assert_true(fabs(e->old_rel_l2 / 1e-5 - 1) < 0.2 && fabs(e->new_rel_l2 / 6e-5 - 1) < 0.2);
    /* sorted by growth: the regression comes first */
    assert_int_equal(c->by_growth[0], (size_t)c->first_regressed);
    ld_compare_result_destroy(r);
}

static void test_one_key_better(void **state)
{
    (void)state;
    ld_compare_result *r = gate("ref.jsonl", "better.jsonl", 3, 1e-6);
    const ld_baseline_check *c = r->baseline;
    assert_int_equal(c->n_regressed, 0);
    assert_int_equal(c->n_improved, 1);
    const ld_gate_entry *e = entry(r, "S1.L2.o_proj");
    assert_int_equal(e->verdict, LD_GATE_IMPROVED);
    assert_true(fabs(e->ratio - 0.1) < 0.01);
    /* the most improved key sorts last */
    assert_int_equal(c->by_growth[c->n_judged - 1], e->row);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT | LD_FAIL_ON_REGRESSION), 0);
    ld_compare_result_destroy(r);
}

static void test_nan_regresses(void **state)
{
    (void)state;
    ld_compare_result *r = gate("ref.jsonl", "nan.jsonl", 3, 1e-6);
    const ld_baseline_check *c = r->baseline;
    assert_int_equal(c->n_regressed, 1);
    assert_string_equal(key_of(r, c->first_regressed), "S0.L2.mlp_act");
    const ld_gate_entry *e = entry(r, "S0.L2.mlp_act");
    assert_true(e->by_nonfinite);
    assert_int_equal(e->old_nonfinite, 0);
    assert_int_equal(e->new_nonfinite, 1);
    /* its rel_l2 over the finite elements hardly moved: the NaN alone makes it regress */
    assert_true(e->ratio < 1.1);
    assert_int_equal(c->by_growth[0], e->row);
    ld_compare_result_destroy(r);
}

/* A key missing in the candidate is not judged (the comparison is incomplete instead). */
static void test_missing_key_unjudged(void **state)
{
    (void)state;
    ld_compare_result *r = gate("ref.jsonl", "missing.jsonl", 3, 1e-6);
    assert_int_equal(r->baseline->n_judged, ROWS - 1);
    assert_int_equal(entry(r, "S0.L1.mlp_act")->verdict, LD_GATE_UNJUDGED);
    assert_int_equal(r->baseline->n_regressed, 0);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT | LD_FAIL_ON_REGRESSION), 3);
    ld_compare_result_destroy(r);
}

/* An empty candidate: nothing compared, exit 3 already; the gate stays out of it. */
static void test_empty_candidate(void **state)
{
    (void)state;
    ld_compare_result *r = compare("ref.jsonl", "header_only.jsonl");
    ld_baseline *b = load("base.json");
    ld_error err;
    assert_int_equal(ld_baseline_apply(r, b, 3, 1e-6, &err), LD_OK);
    assert_null(r->baseline);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT | LD_FAIL_ON_REGRESSION), 3);
    ld_baseline_destroy(b);
    ld_compare_result_destroy(r);
}

static void expect_refused(const char *ref, const char *cand, const char *needle)
{
    ld_compare_result *r = compare(ref, cand);
    ld_baseline *b = load("base.json");
    ld_error err;
    ld_error_clear(&err);
    assert_int_equal(ld_baseline_apply(r, b, 3, 1e-6, &err), LD_E_INPUT);
    if (!strstr(err.msg, needle)) fail_msg("'%s' lacks '%s'", err.msg, needle);
    assert_null(r->baseline);
    assert_int_equal(ld_status_exit_code(LD_E_INPUT), 2);
    ld_baseline_destroy(b);
    ld_compare_result_destroy(r);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_refused("ref_tok.jsonl", "cand_tok.jsonl", "another input: prompt token at index 2 is");
    expect_refused("ref_h.jsonl", "cand_h.jsonl",
                   "another model: model.hidden_size is 64 there "
                   "and 65 here");
    expect_refused("ref_fp.jsonl", "cand_fp.jsonl", "another model: model.fingerprint");
    expect_refused("ref_skip.jsonl", "cand_skip.jsonl",
                   "covers other probes than this comparison (another tag set, layer range or step "
                   "count): 1 key only in the baseline (tags k_norm; first S2.L0.k_norm), 0 only "
                   "here");
}

static void expect_bad_file(const char *text, const char *needle)
{
    write_text("bad.json", text);
    ld_baseline *b = NULL;
    ld_error err;
    ld_error_clear(&err);
    ld_status st = ld_baseline_load(path_of("bad.json"), &b, &err);
    assert_int_equal(st, LD_E_INPUT);
    assert_null(b);
    if (!strstr(err.msg, needle) || !strstr(err.msg, "bad.json"))
        fail_msg("'%s' lacks '%s' or the file name", err.msg, needle);
}

static void test_malformed_baselines(void **state)
{
    (void)state;
    static const char head[] =
        "{\"format\":\"layerdiff-report\",\"version\":1,\"reference\":{\"model\":{\"a\":1},"
        "\"tokens\":[1,2],\"decode_steps\":0,\"decoded\":null},\"candidate\":{\"path\":\"c\","
        "\"implementation\":\"x\",\"faults\":[]},";
    char buf[1024];
    expect_bad_file("", "");
    expect_bad_file("{not json", "line 1");
    expect_bad_file("[1,2]", "JSON object");
    expect_bad_file("{\"format\":\"layerdiff-floor\",\"version\":1}", "format");
    expect_bad_file("{\"format\":\"layerdiff-report\",\"version\":2}", "version");
    expect_bad_file("{\"format\":\"layerdiff-report\",\"version\":1,\"reference\":{},"
                    "\"candidate\":{}}",
                    "reference.model");
    snprintf(buf, sizeof buf, "%s\"probes\":[]}", head);
    expect_bad_file(buf, "probes: must be a non-empty array");
    snprintf(buf, sizeof buf, "%s\"probes\":[{\"key\":\"S0.L1.\"}]}", head);
    expect_bad_file(buf, "probes[0]: key must be");
    snprintf(buf, sizeof buf,
             "%s\"probes\":[{\"key\":\"S0.embed\",\"metrics\":{\"rel_l2\":\"big\","
             "\"nonfinite_new\":0,\"nonfinite_lost\":0}}]}",
             head);
    expect_bad_file(buf, "probes[0]: metrics need rel_l2");
    snprintf(buf, sizeof buf,
             "%s\"probes\":[{\"key\":\"S0.embed\",\"metrics\":{\"rel_l2\":-1,"
             "\"nonfinite_new\":0,\"nonfinite_lost\":0}}]}",
             head);
    expect_bad_file(buf, "probes[0]: metrics need rel_l2");
    snprintf(buf, sizeof buf,
             "%s\"probes\":[{\"key\":\"S0.embed\",\"metrics\":{\"rel_l2\":0.1,"
             "\"nonfinite_new\":-2,\"nonfinite_lost\":0}}]}",
             head);
    expect_bad_file(buf, "probes[0]: metrics need");
    snprintf(buf, sizeof buf, "%s\"probes\":[{\"key\":\"S0.embed\",\"metrics\":[]}]}", head);
    expect_bad_file(buf, "metrics must be an object or null");
    expect_bad_file("{\"format\":\"layerdiff-report\",\"version\":1,\"reference\":{\"model\":{},"
                    "\"tokens\":[1,2.5],\"decode_steps\":0},\"candidate\":{},\"probes\":[{\"key\":"
                    "\"S0.embed\",\"metrics\":null}]}",
                    "reference.tokens");
    /* a minimal well-formed one loads: "NaN" / "Infinity" are numbers, null metrics unjudged */
    snprintf(buf, sizeof buf,
             "%s\"probes\":[{\"key\":\"S0.embed\",\"metrics\":{\"rel_l2\":"
             "\"Infinity\",\"nonfinite_new\":0,\"nonfinite_lost\":3}},{\"key\":\"L0.q_proj\","
             "\"metrics\":null}]}",
             head);
    write_text("good.json", buf);
    ld_baseline *b = load("good.json");
    assert_string_equal(ld_baseline_path(b), path_of("good.json"));
    ld_baseline_destroy(b);
    ld_baseline_destroy(NULL);
    ld_baseline_check_destroy(NULL);
}

/* Reports carry the gate: JSON "baseline" member, text and Markdown sections. */
static void test_reports(void **state)
{
    (void)state;
    ld_compare_result *r = gate("ref.jsonl", "worse.jsonl", 3, 1e-6);
    r->fail_on |= LD_FAIL_ON_REGRESSION;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ld_error err;
    assert_int_equal(ld_report_text(f, r, NULL, &err), LD_OK);
    assert_int_equal(ld_report_json(f, r, NULL, &err), LD_OK);
    assert_int_equal(ld_report_markdown(f, r, NULL, &err), LD_OK);
    assert_int_equal(ld_report_html(f, r, NULL, &err), LD_OK);
    fclose(f);
    assert_non_null(strstr(buf, "First regression in execution order: S0.L1.q_norm (layer 1, "
                                "q_norm, step 0)"));
    assert_non_null(strstr(buf, "verdict: REGRESSION — exit 1"));
    assert_non_null(strstr(buf, "\"verdict\":\"regression\""));
    assert_non_null(strstr(buf, "\"first_regressed\":{\"key\":\"S0.L1.q_norm\""));
    assert_non_null(strstr(buf, "#### Regression gate: ❌ 1 probe regressed, first `S0.L1.q_norm`"));
    assert_non_null(strstr(buf, "<h2>Regression gate</h2>"));
    free(buf);
    ld_compare_result_destroy(r);
}

/* ---- --exact ---- */

static ld_exact_result *exact(const char *a, const char *b)
{
    ld_exact_result *r = NULL;
    ld_error err;
    if (ld_exact_run(path_of(a), path_of(b), 0, &r, &err) != LD_OK)
        fail_msg("%s vs %s: %s", a, b, err.msg);
    return r;
}

static const char *change_key(const ld_exact_result *r)
{
    static char buf[200];
    return r->n_listed ? ld_key_format(&r->changes[0].key, buf, sizeof buf) : "(none)";
}

static void test_exact(void **state)
{
    (void)state;
    ld_exact_result *r = exact("ref.jsonl", "same.jsonl");
    assert_int_equal(ld_exact_exit_code(r), 0);
    assert_int_equal(r->keys, ROWS);
    assert_int_equal(r->by_bytes, ROWS);
    assert_int_equal(r->n_changed, 0);
    ld_exact_result_destroy(r);

    /* perturbed from S0.L1.q_norm on: the keys before it are bit-identical */
    r = exact("ref.jsonl", "perturbed.jsonl");
    assert_int_equal(ld_exact_exit_code(r), 1);
    assert_string_equal(change_key(r), "S0.L1.q_norm");
    assert_string_equal(r->changes[0].what, "payload bytes differ");
    assert_true(r->changes[0].have_elements);
    assert_int_equal(r->changes[0].numel, 5 * TS_HQ * TS_D);
    /* every element moved (relative noise 0.4) */
    assert_int_equal(r->changes[0].n_diff, r->changes[0].numel);
    assert_int_equal(r->changes[0].first_elem, 0);
    assert_int_equal(r->n_changed, ROWS - (1 + 17 + 4)); /* embed, layer 0, layer 1 up to k_proj */
    ld_exact_result_destroy(r);

    /* another dtype: the very first key changed */
    r = exact("ref.jsonl", "bf16.jsonl");
    assert_int_equal(ld_exact_exit_code(r), 1);
    assert_string_equal(change_key(r), "S0.embed");
    assert_string_equal(r->changes[0].what, "dtype f32 -> bf16");
    ld_exact_result_destroy(r);

    /* a key left out: the key sequences differ there */
    r = exact("ref.jsonl", "missing.jsonl");
    assert_int_equal(ld_exact_exit_code(r), 1);
    assert_true(r->structural);
    assert_string_equal(change_key(r), "S0.embed"); /* noise 1e-3 changed it already */
    ld_exact_result_destroy(r);
    r = exact("ref_skip.jsonl", "ref.jsonl");
    assert_true(r->structural);
    assert_string_equal(change_key(r), "S2.L0.q_rope");
    assert_non_null(strstr(r->changes[0].what, "the new stream has S2.L0.k_norm"));
    ld_exact_result_destroy(r);

    /* a stream cut short with no change before the cut: incomplete */
    r = exact("ref.jsonl", "truncated.jsonl");
    assert_int_equal(ld_exact_exit_code(r), 3);
    assert_true(r->truncated_new && !r->n_changed);
    ld_exact_result_destroy(r);
    r = exact("header_only.jsonl", "header_only.jsonl");
    assert_int_equal(ld_exact_exit_code(r), 3);
    assert_true(r->empty);
    ld_exact_result_destroy(r);

    /* no payloads: equal stats and head values, said so */
    r = exact("stats.jsonl", "stats2.jsonl");
    assert_int_equal(ld_exact_exit_code(r), 0);
    assert_int_equal(r->by_stats, ROWS);
    assert_int_equal(r->n_notes, 1);
    assert_non_null(strstr(r->notes[0], "does not prove bit-exact"));
    ld_exact_result_destroy(r);
    r = exact("stats.jsonl", "n1.jsonl");
    assert_int_equal(ld_exact_exit_code(r), 1);
    assert_string_equal(change_key(r), "S0.embed");
    assert_non_null(strstr(r->changes[0].what, "stats."));
    ld_exact_result_destroy(r);

    /* different inputs or models are refused */
    ld_error err;
    ld_exact_result *none = NULL;
    assert_int_equal(ld_exact_run(path_of("ref.jsonl"), path_of("ref_tok.jsonl"), 0, &none, &err),
                     LD_E_INPUT);
    assert_non_null(strstr(err.msg, "different inputs"));
    assert_int_equal(ld_exact_run(path_of("ref.jsonl"), path_of("ref_h.jsonl"), 0, &none, &err),
                     LD_E_INPUT);
    assert_non_null(strstr(err.msg, "hidden_size is 64 in old and 65 in new"));
    assert_null(none);
    /* other weights are stated, not refused */
    r = exact("ref.jsonl", "ref_fp.jsonl");
    assert_int_equal(ld_exact_exit_code(r), 0);
    assert_non_null(strstr(r->notes[0], "weight fingerprints differ"));
    ld_exact_result_destroy(r);
    ld_exact_result_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_noise_passes),
        cmocka_unit_test(test_factor_boundary),
        cmocka_unit_test(test_one_key_worse),
        cmocka_unit_test(test_one_key_better),
        cmocka_unit_test(test_nan_regresses),
        cmocka_unit_test(test_missing_key_unjudged),
        cmocka_unit_test(test_empty_candidate),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_malformed_baselines),
        cmocka_unit_test(test_reports),
        cmocka_unit_test(test_exact),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

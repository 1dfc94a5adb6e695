/* test_compare_streams.c — the comparator on constructed streams (streams.c): identical, one
 * perturbed tag, honest and broken bf16, missing key, shape mismatch, truncated candidate,
 * different prompt / decoded tokens / config, argmax, NaN, different weights and faults, stats-only
 * payloads, empty and header-only streams, and a foreign stream through a map. Then every report
 * writer on a real result. Last, payloads streamed in lockstep (the default) against whole records
 * (whole_records): the same result, bit for bit, over every scenario, each encoding, streams out
 * of each other's order, and streams cut inside a payload. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "compare.h"
#include "streams.h"

/* 3 steps x (embed + 3 layers x 17 tags + final_norm + logits) */
#define ROWS (3 * (1 + TS_LAYERS * 17 + 2))

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ld_compare_streams_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char msg[1024];
    if (ts_write_all(dir, msg, sizeof msg)) {
        fprintf(stderr, "%s\n", msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *path_of(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

/* Compares ref.jsonl (or ref) with cand under opt (NULL: defaults); fails the test on an error. */
static ld_compare_result *run_opt(const char *ref, const char *cand, const ld_compare_options *opt)
{
    ld_compare_result *r = NULL;
    ld_error err;
    ld_error_clear(&err);
    ld_status st = ld_compare_run(path_of(ref), path_of(cand), opt, &r, &err);
    if (st != LD_OK)
        fail_msg("%s vs %s: %s", ref, cand, err.msg);
    return r;
}

static ld_compare_result *run(const char *cand) { return run_opt("ref.jsonl", cand, NULL); }

static const char *key_of(const ld_compare_result *r, ptrdiff_t i)
{
    static char buf[200];
    if (i < 0)
        return "(none)";
    return ld_key_format(&r->rows[i].key, buf, sizeof buf);
}

static bool has_note(const ld_compare_result *r, const char *code)
{
    for (size_t i = 0; i < r->n_notes; i++)
        if (!strcmp(r->notes[i].code, code))
            return true;
    return false;
}

static ptrdiff_t find(const ld_compare_result *r, const char *text)
{
    ld_key k;
    ld_error err;
    assert_int_equal(ld_key_parse(text, &k, &err), LD_OK);
    return ld_compare_find(r, &k);
}

static void test_identical(void **state)
{
    (void)state;
    ld_compare_result *r = run("same.jsonl");
    assert_int_equal(r->n_rows, ROWS);
    assert_int_equal(r->n_compared, ROWS);
    assert_int_equal(r->n_pass, ROWS);
    assert_int_equal(r->first_div, -1);
    assert_false(r->incomplete || r->divergence || r->empty || r->fingerprint_differs);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 0);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_ALL), 0);
    for (size_t i = 0; i < r->n_rows; i++) {
        assert_true(r->rows[i].m.rel_l2 == 0);
        assert_int_equal(r->rows[i].m.source, LD_SRC_FULL);
    }
    /* rows come in execution order */
    assert_string_equal(key_of(r, 0), "S0.embed");
    assert_string_equal(key_of(r, 1), "S0.L0.attn_norm");
    assert_string_equal(key_of(r, ROWS - 1), "S2.logits");
    /* argmax and logits agreement: 3 steps, 5 + 1 + 1 logits rows */
    assert_int_equal(r->argmax_step, -1);
    assert_int_equal(r->n_steps, 3);
    assert_int_equal(r->steps[0].logits_rows, 5);
    assert_int_equal(r->steps[0].top1_agree, 5);
    assert_true(r->steps[0].topk_overlap == 1.0);
    assert_int_equal(r->steps[1].ref_token, 102);
    ld_compare_result_destroy(r);
    /* the reference against itself, too */
    r = run_opt("ref.jsonl", "ref.jsonl", NULL);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 0);
    ld_compare_result_destroy(r);
}

static void test_perturbed(void **state)
{
    (void)state;
    ld_compare_result *r = run("perturbed.jsonl");
    assert_string_equal(key_of(r, r->first_div), "S0.L1.q_norm");
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 1);
    const ld_row *fd = &r->rows[r->first_div];
    assert_true(fd->m.rel_l2 > 0.3 && fd->m.rel_l2 < 0.5); /* relative noise 0.4 */
    assert_true(fd->fail_mask & LD_FAIL_REL_L2);
    /* its input, q_proj, is exact: infinite amplification, the op made the error */
    assert_string_equal(key_of(r, fd->worst_input), "S0.L1.q_proj");
    assert_true(fd->inputs_rel_l2 == 0 && isinf(fd->amplification));
    /* the key before it passes, the grid is the [T=5, Hq=4] one */
    assert_true(r->rows[r->first_div - 1].pass);
    assert_int_equal(r->first_grid.tokens, 5);
    assert_int_equal(r->first_grid.heads, 4);
    char *s = ld_compare_summary(r);
    assert_non_null(s);
    if (!strstr(s, "First divergence: layer 1, q_norm, step 0 (S0.L1.q_norm)") ||
        !strstr(s, "its input q_proj agrees to 0") || !strstr(s, "the q/k norm made this error") ||
        !strstr(s, "Worst element: token "))
        fail_msg("summary: %s", s);
    free(s);
    ld_compare_result_destroy(r);
}

static void test_bf16(void **state)
{
    (void)state;
    /* Honest bf16 (the reference rounded): within the bf16 defaults. */
    ld_compare_result *r = run("bf16.jsonl");
    assert_int_equal(r->first_div, -1);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 0);
    ptrdiff_t i = find(r, "S0.L0.q_norm");
    assert_true(i >= 0);
    assert_true(r->rows[i].tol.rel_l2 == 4e-2); /* bf16 defaults chosen by the candidate dtype */
    assert_true(r->rows[i].m.rel_l2 > 1e-4 && r->rows[i].m.rel_l2 < 5e-3);
    assert_int_equal(r->rows[i].m.ulp_max, 0); /* exactly the reference rounded to bf16 */
    ld_compare_result_destroy(r);
    /* Broken at S1.L2.attn_out (a decode step): found there, and made there. */
    r = run("bf16_bad.jsonl");
    assert_string_equal(key_of(r, r->first_div), "S1.L2.attn_out");
    const ld_row *fd = &r->rows[r->first_div];
    assert_true(fd->amplification > 10);
    assert_int_equal(r->first_grid.tokens, 1);
    assert_int_equal(r->first_grid.heads, TS_HQ);
    ld_compare_result_destroy(r);
    /* Growth of a few times over passing inputs, at an op that reads the KV cache: the summary
     * says what is known and points at replay, and never blames the tolerance (issue 16). */
    r = run("bf16_mild.jsonl");
    assert_string_equal(key_of(r, r->first_div), "S1.L2.attn_out");
    fd = &r->rows[r->first_div];
    assert_true(fd->amplification > 1 && fd->amplification < 10);
    char *s = ld_compare_summary(r);
    assert_non_null(s);
    if (strstr(s, "too tight") || strstr(s, "mostly inherited") ||
        !strstr(s, "growth alone cannot tell whether the attention") ||
        !strstr(s, "earlier step's cached keys and values") || !strstr(s, "--model DIR"))
        fail_msg("summary: %s", s);
    free(s);
    ld_compare_result_destroy(r);
}

static void test_missing_key(void **state)
{
    (void)state;
    ld_compare_result *r = run("missing.jsonl");
    assert_int_equal(r->n_missing_in_cand, 1);
    ptrdiff_t i = find(r, "S0.L1.mlp_act");
    assert_int_equal(r->rows[i].state, LD_ROW_MISSING_IN_CAND);
    assert_true(r->incomplete);
    assert_int_equal(r->first_div, -1);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 3);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DIVERGENCE), 0);
    ld_compare_result_destroy(r);
    /* allowed by a key glob or a tag glob */
    const char *globs[][1] = {{"S0.L1.mlp_act"}, {"mlp_act"}, {"S*.L1.*"}};
    for (size_t g = 0; g < 3; g++) {
        ld_compare_options o;
        ld_compare_options_init(&o);
        o.allow_missing = globs[g];
        o.n_allow_missing = 1;
        r = run_opt("ref.jsonl", "missing.jsonl", &o);
        assert_false(r->incomplete);
        assert_int_equal(r->n_allowed, 1);
        assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 0);
        ld_compare_result_destroy(r);
    }
    /* a glob that covers something else does not help */
    const char *other[] = {"S0.L2.mlp_act"};
    ld_compare_options o;
    ld_compare_options_init(&o);
    o.allow_missing = other;
    o.n_allow_missing = 1;
    r = run_opt("ref.jsonl", "missing.jsonl", &o);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 3);
    ld_compare_result_destroy(r);
    /* reversed: the key is missing in the reference */
    r = run_opt("missing.jsonl", "ref.jsonl", NULL);
    assert_int_equal(r->n_missing_in_ref, 1);
    assert_int_equal(r->rows[r->n_rows - 1].state, LD_ROW_MISSING_IN_REF); /* listed last */
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 3);
    ld_compare_result_destroy(r);
}

static void test_shape_mismatch(void **state)
{
    (void)state;
    ld_compare_result *r = run("shape.jsonl");
    ptrdiff_t i = find(r, "S0.L0.k_rope");
    assert_int_equal(r->rows[i].state, LD_ROW_SHAPE_MISMATCH);
    assert_int_equal(r->rows[i].ndim, 3);
    assert_int_equal(r->rows[i].cand_ndim, 2);
    assert_int_equal(r->n_shape_mismatch, 1);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 3);
    ld_compare_result_destroy(r);
}

static void test_truncated(void **state)
{
    (void)state;
    ld_compare_result *r = run("truncated.jsonl");
    assert_true(r->cand.truncated);
    assert_false(r->cand.has_end);
    assert_string_equal(r->cand.last_key, "S0.L1.up_proj");
    assert_true(has_note(r, "truncated"));
    ptrdiff_t i = find(r, "S0.L1.up_proj");
    assert_int_equal(r->rows[i].state, LD_ROW_COMPARED);
    i = find(r, "S0.L1.mlp_act");
    assert_int_equal(r->rows[i].state, LD_ROW_MISSING_IN_CAND);
    assert_int_equal(r->n_compared, 1 + 17 + 14); /* embed, layer 0, layer 1 up to up_proj */
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 3);
    ld_compare_result_destroy(r);
    /* '*' allows every missing key and the missing end record */
    const char *all[] = {"*"};
    ld_compare_options o;
    ld_compare_options_init(&o);
    o.allow_missing = all;
    o.n_allow_missing = 1;
    r = run_opt("ref.jsonl", "truncated.jsonl", &o);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 0);
    ld_compare_result_destroy(r);
    /* every missing key allowed but not the end: still incomplete */
    const char *keys[] = {"S*"};
    o.allow_missing = keys;
    r = run_opt("ref.jsonl", "truncated.jsonl", &o);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 3);
    ld_compare_result_destroy(r);
}

static void expect_input_error(const char *cand, const char *want)
{
    ld_compare_result *r = NULL;
    ld_error err;
    ld_status st = ld_compare_run(path_of("ref.jsonl"), path_of(cand), NULL, &r, &err);
    if (st != LD_E_INPUT || !strstr(err.msg, want))
        fail_msg("%s: status %d, '%s' (wanted '%s')", cand, st, err.msg, want);
    assert_null(r);
    assert_int_equal(ld_status_exit_code(st), 2);
    /* allowed: compared, and stated */
    ld_compare_options o;
    ld_compare_options_init(&o);
    o.allow_input_mismatch = true;
    r = run_opt("ref.jsonl", cand, &o);
    assert_true(r->input_mismatch);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 0);
    ld_compare_result_destroy(r);
}

static void test_input_mismatch(void **state)
{
    (void)state;
    expect_input_error("tokens.jsonl", "prompt token at index 2 is 15");
    expect_input_error("decoded.jsonl", "decode step 2 was fed token 102");
    expect_input_error("config.jsonl", "hidden_size is 64");
}

static void test_argmax(void **state)
{
    (void)state;
    ld_compare_result *r = run("argmax.jsonl");
    assert_int_equal(r->argmax_step, 1);
    assert_int_equal(r->steps[1].cand_token, 103);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 0);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT | LD_FAIL_ON_ARGMAX), 1);
    ld_compare_result_destroy(r);
}

static void test_nan(void **state)
{
    (void)state;
    ld_compare_result *r = run("nan.jsonl");
    assert_string_equal(key_of(r, r->first_div), "S0.L2.mlp_act");
    const ld_row *fd = &r->rows[r->first_div];
    assert_int_equal(fd->fail_mask & LD_FAIL_NONFINITE, LD_FAIL_NONFINITE);
    assert_int_equal(fd->m.nonfinite_new, 1);
    assert_int_equal(fd->m.worst_index, 7);
    char *s = ld_compare_summary(r);
    if (!strstr(s, "1 NaN/Inf value where the reference is finite"))
        fail_msg("summary: %s", s);
    free(s);
    ld_compare_result_destroy(r);
}

static void test_fingerprint_faults(void **state)
{
    (void)state;
    ld_compare_result *r = run("fault.jsonl");
    assert_true(r->fingerprint_differs && r->faults_differ);
    assert_true(has_note(r, "fingerprint") && has_note(r, "faults"));
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 0);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_FINGERPRINT), 2);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_FAULTS), 2);
    assert_string_equal(r->cand.faults[0], "qk_norm_block=16@1");
    ld_compare_result_destroy(r);
}

static void test_stats_only(void **state)
{
    (void)state;
    ld_compare_result *r = run("stats.jsonl");
    assert_int_equal(r->n_stats_only, ROWS);
    assert_true(has_note(r, "stats_only"));
    assert_int_equal(r->rows[5].m.source, LD_SRC_STATS);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 0);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_NODATA), 3);
    ld_compare_result_destroy(r);
}

static void test_empty(void **state)
{
    (void)state;
    const char *names[] = {"header_only.jsonl", "empty.jsonl"};
    for (int i = 0; i < 2; i++) {
        ld_compare_result *r = run(names[i]);
        assert_true(r->empty);
        assert_int_equal(r->n_compared, 0);
        assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 3);
        assert_int_equal(ld_compare_exit_code(r, 0), 3); /* never a pass */
        ld_compare_result_destroy(r);
        r = run_opt(names[i], "ref.jsonl", NULL); /* on the reference side too */
        assert_int_equal(ld_compare_exit_code(r, 0), 3);
        ld_compare_result_destroy(r);
    }
}

static void test_foreign_map(void **state)
{
    (void)state;
    char map_path[512];
    snprintf(map_path, sizeof map_path, "%s/foreign_map.json", LD_COMPARE_TEST_DIR);
    ld_keymap *map = NULL;
    ld_error err;
    if (ld_keymap_load(map_path, &map, &err) != LD_OK)
        fail_msg("%s", err.msg);
    ld_compare_options o;
    ld_compare_options_init(&o);
    o.map = map;
    ld_compare_result *r = run_opt("ref.jsonl", "foreign.jsonl", &o);
    assert_int_equal(r->n_compared, ROWS);
    assert_int_equal(r->n_pass, ROWS);
    assert_int_equal(r->cand.dropped, 3 * TS_LAYERS); /* the debug checksums */
    ptrdiff_t i = find(r, "S1.L2.q_proj");
    assert_true(r->rows[i].reshaped);
    assert_int_equal(r->rows[i].cand_ndim, 2);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 0);
    ld_compare_result_destroy(r);
    r = run_opt("ref.jsonl", "foreign_bad.jsonl", &o);
    assert_string_equal(key_of(r, r->first_div), "S0.L2.q_proj");
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 1);
    ld_compare_result_destroy(r);
    ld_keymap_destroy(map);
    /* without the map nothing lines up */
    r = run("foreign.jsonl");
    assert_int_equal(r->n_compared, 0);
    assert_int_equal(r->n_missing_in_cand, ROWS);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 3);
    ld_compare_result_destroy(r);
}

/* ---- payloads streamed in lockstep give what whole records give ---------------------------- */

/* Rewrites src into dst in another encoding (same records, same stats and head). */
/* Rewrites src into dst in encoding enc, keeping only the tags and steps given (NULL: all), which
 * the header's filter then names. */
static void rewrite(const char *src, const char *dst, ld_encoding enc, const char *tags,
                    const char *steps)
{
    ld_reader *r;
    ld_error err;
    if (ld_reader_open(&r, path_of(src), NULL, &err) != LD_OK)
        fail_msg("%s", err.msg);
    const ld_header_info *h = ld_reader_header(r);
    ld_run_info run = {h->implementation, h->backend_json, h->model_json, h->tokens, h->n_tokens,
                       h->decode_steps, h->faults, h->n_faults, NULL, h->prompt_text,
                       h->prompt_text_len};
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = LD_PAYLOAD_FULL;
    cfg.encoding = enc;
    cfg.tags = tags;
    cfg.steps = steps;
    ld_sink *sk;
    if (ld_sink_open(&sk, path_of(dst), &cfg, &run, &err) != LD_OK)
        fail_msg("%s", err.msg);
    const ld_probe *p;
    ld_status st;
    while ((st = ld_reader_next(r, &p, &err)) == LD_OK && p)
        if (ld_sink_emit_precomputed(sk, p->step, p->layer, p->tag, p->pos0, p->dtype, p->shape,
                                     p->ndim, &p->stats, p->head, p->data, &err) != LD_OK)
            fail_msg("%s", err.msg);
    if (st != LD_OK)
        fail_msg("%s", err.msg);
    const ld_end_info *e = ld_reader_end(r);
    ld_run_end end = {e->ok, e->ok ? NULL : e->message, e->tokens, e->n_tokens, e->decoded,
                      e->n_decoded};
    if (ld_sink_close(sk, &end, &err) != LD_OK)
        fail_msg("%s", err.msg);
    ld_reader_close(r);
}

static void reencode(const char *src, const char *dst, ld_encoding enc)
{
    rewrite(src, dst, enc, NULL, NULL);
}

/* Writes src's lines to dst with the probe records of every step in reverse order (indices
 * renumbered), so that two streams meet each other's keys out of order. */
static void reverse_steps(const char *src, const char *dst)
{
    FILE *f = fopen(path_of(src), "rb");
    assert_non_null(f);
    char **lines = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) > 0) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            lines = realloc(lines, cap * sizeof *lines);
            assert_non_null(lines);
        }
        lines[n++] = strdup(line);
    }
    free(line);
    fclose(f);
    /* probes are lines 1 .. n-2; a step's run ends where "step": changes */
    for (size_t i = 1; i + 1 < n;) {
        const char *sv = strstr(lines[i], "\"step\":");
        size_t j = i + 1;
        while (j + 1 < n && !strncmp(strstr(lines[j], "\"step\":"), sv, 9))
            j++;
        for (size_t a = i, b = j - 1; a < b; a++, b--) {
            char *t = lines[a];
            lines[a] = lines[b];
            lines[b] = t;
        }
        i = j;
    }
    /* the end record names the new last probe */
    ld_key last = {0, LD_NO_LAYER, ""};
    const char *lp = lines[n - 2];
    last.step = atoi(strstr(lp, "\"step\":") + 7);
    if (strstr(lp, "\"layer\":"))
        last.layer = atoi(strstr(lp, "\"layer\":") + 8);
    const char *tg = strstr(lp, "\"tag\":\"") + 7;
    snprintf(last.tag, sizeof last.tag, "%.*s", (int)(strchr(tg, '"') - tg), tg);
    char key[200];
    ld_key_format(&last, key, sizeof key);
    char *lk = strstr(lines[n - 1], "\"last_key\":\"");
    assert_non_null(lk);
    char *lk_end = strchr(lk + 12, '"');
    char *end_line = malloc(strlen(lines[n - 1]) + 200);
    sprintf(end_line, "%.*s%s%s", (int)(lk + 12 - lines[n - 1]), lines[n - 1], key, lk_end);
    free(lines[n - 1]);
    lines[n - 1] = end_line;
    FILE *o = fopen(path_of(dst), "wb");
    assert_non_null(o);
    for (size_t i = 0; i < n; i++) {
        char *ix = strstr(lines[i], "\"index\":");
        if (i > 0 && i + 1 < n && ix) {
            char *digits_end = ix + 8;
            while (*digits_end >= '0' && *digits_end <= '9')
                digits_end++;
            fprintf(o, "%.*s%zu%s", (int)(ix + 8 - lines[i]), lines[i], i - 1, digits_end);
        } else {
            fputs(lines[i], o);
        }
        free(lines[i]);
    }
    fclose(o);
    free(lines);
}

/* Copies src to dst cut just after the first occurrence of needle after byte `from` (+ skip). */
static void cut_copy(const char *src, const char *dst, const char *needle, size_t skip)
{
    FILE *f = fopen(path_of(src), "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *t = malloc((size_t)n + 1);
    assert_int_equal(fread(t, 1, (size_t)n, f), (size_t)n);
    t[n] = '\0';
    fclose(f);
    char *at = strstr(t, needle);
    assert_non_null(at);
    size_t cut = (size_t)(at - t) + skip;
    FILE *o = fopen(path_of(dst), "wb");
    assert_int_equal(fwrite(t, 1, cut, o), cut);
    fclose(o);
    free(t);
}

static void same_info(const char *what, const ld_stream_info *a, const ld_stream_info *b)
{
    if (a->probes != b->probes || a->with_data != b->with_data || a->dropped != b->dropped ||
        a->bytes != b->bytes || a->truncated != b->truncated || a->has_end != b->has_end ||
        a->dtype_mask != b->dtype_mask || strcmp(a->last_key, b->last_key))
        fail_msg("%s: stream info differs: probes %llu/%llu, data %llu/%llu, bytes %llu/%llu, "
                 "last %s/%s", what, (unsigned long long)a->probes, (unsigned long long)b->probes,
                 (unsigned long long)a->with_data, (unsigned long long)b->with_data,
                 (unsigned long long)a->bytes, (unsigned long long)b->bytes, a->last_key,
                 b->last_key);
}

/* Every row, metric, note, step and grid of the two results agree, bit for bit. */
static void same_result(const char *what, const ld_compare_result *a, const ld_compare_result *b)
{
    same_info(what, &a->ref, &b->ref);
    same_info(what, &a->cand, &b->cand);
    if (a->n_rows != b->n_rows || a->n_notes != b->n_notes || a->n_steps != b->n_steps ||
        a->first_div != b->first_div || a->argmax_step != b->argmax_step ||
        a->n_compared != b->n_compared || a->n_fail != b->n_fail || a->incomplete != b->incomplete)
        fail_msg("%s: %zu/%zu rows, %zu/%zu notes, %zu/%zu steps, first %td/%td", what, a->n_rows,
                 b->n_rows, a->n_notes, b->n_notes, a->n_steps, b->n_steps, a->first_div,
                 b->first_div);
    for (size_t i = 0; i < a->n_rows; i++) {
        const ld_row *x = &a->rows[i], *y = &b->rows[i];
        char k[200];
        ld_key_format(&x->key, k, sizeof k);
        if (memcmp(&x->key, &y->key, sizeof x->key) || x->state != y->state ||
            x->ref_index != y->ref_index || x->cand_index != y->cand_index ||
            x->ref_line != y->ref_line || x->cand_line != y->cand_line ||
            x->fail_mask != y->fail_mask || x->ref_crc32 != y->ref_crc32 ||
            x->cand_crc32 != y->cand_crc32 || x->reshaped != y->reshaped ||
            x->ref_has_data != y->ref_has_data || x->cand_has_data != y->cand_has_data ||
            memcmp(&x->m, &y->m, sizeof x->m) || memcmp(&x->tol, &y->tol, sizeof x->tol) ||
            memcmp(&x->amplification, &y->amplification, sizeof x->amplification))
            fail_msg("%s: row %zu (%s) differs: state %d/%d, rel_l2 %.17g/%.17g, crc %u/%u", what,
                     i, k, x->state, y->state, x->m.rel_l2, y->m.rel_l2, x->cand_crc32,
                     y->cand_crc32);
    }
    for (size_t i = 0; i < a->n_notes; i++)
        if (strcmp(a->notes[i].text, b->notes[i].text))
            fail_msg("%s: note '%s' / '%s'", what, a->notes[i].text, b->notes[i].text);
    if (a->n_steps && memcmp(a->steps, b->steps, a->n_steps * sizeof *a->steps))
        fail_msg("%s: steps differ", what);
    const ld_err_grid *ga = &a->first_grid, *gb = &b->first_grid;
    size_t cells = ga->tokens * ga->heads;
    if (ga->tokens != gb->tokens || ga->heads != gb->heads ||
        (cells && (memcmp(ga->diff2, gb->diff2, cells * sizeof *ga->diff2) ||
                   memcmp(ga->ref2, gb->ref2, cells * sizeof *ga->ref2))))
        fail_msg("%s: grids differ", what);
}

static void both_ways(const char *ref, const char *cand, const ld_keymap *map)
{
    ld_compare_options o;
    ld_compare_options_init(&o);
    o.map = map;
    o.whole_records = true;
    ld_compare_result *w = run_opt(ref, cand, &o);
    o.whole_records = false;
    ld_compare_result *s = run_opt(ref, cand, &o);
    char what[128];
    snprintf(what, sizeof what, "%s vs %s", ref, cand);
    same_result(what, w, s);
    ld_compare_result_destroy(w);
    ld_compare_result_destroy(s);
}

static void test_streamed_equals_whole(void **state)
{
    (void)state;
    static const char *const cands[] = {
        "same.jsonl", "perturbed.jsonl", "bf16.jsonl", "bf16_bad.jsonl", "missing.jsonl",
        "shape.jsonl", "truncated.jsonl", "argmax.jsonl", "nan.jsonl", "fault.jsonl",
        "stats.jsonl", "header_only.jsonl", "empty.jsonl", "tokens.jsonl"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        if (!strcmp(cands[i], "tokens.jsonl"))
            continue; /* an input error either way (test_input_mismatch) */
        both_ways("ref.jsonl", cands[i], NULL);
        both_ways(cands[i], "ref.jsonl", NULL);
    }
    /* other encodings on either side, and streams out of each other's order */
    reencode("perturbed.jsonl", "perturbed.zlib.jsonl", LD_ENC_ZLIB_BASE64);
    reencode("bf16_bad.jsonl", "bf16_bad.shuffle.jsonl", LD_ENC_SHUFFLE_ZLIB_BASE64);
    reencode("nan.jsonl", "nan.zlib.jsonl", LD_ENC_ZLIB_BASE64);
    reverse_steps("perturbed.jsonl", "perturbed.reversed.jsonl");
    reverse_steps("bf16_bad.shuffle.jsonl", "bf16_bad.shuffle.reversed.jsonl");
    static const char *const more[] = {"perturbed.zlib.jsonl", "bf16_bad.shuffle.jsonl",
                                       "nan.zlib.jsonl", "perturbed.reversed.jsonl",
                                       "bf16_bad.shuffle.reversed.jsonl"};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        both_ways("ref.jsonl", more[i], NULL);
        both_ways(more[i], "ref.jsonl", NULL);
        both_ways(more[i], "perturbed.reversed.jsonl", NULL);
    }
    /* cut inside a payload (step 0's logits), just after one, and inside a record's tail */
    cut_copy("perturbed.jsonl", "cut_payload.jsonl", "\"tag\":\"logits\"", 900);
    cut_copy("perturbed.zlib.jsonl", "cut_payload.zlib.jsonl", "\"tag\":\"logits\"", 900);
    cut_copy("bf16_bad.shuffle.jsonl", "cut_payload.shuffle.jsonl", "\"tag\":\"logits\"", 900);
    cut_copy("perturbed.jsonl", "cut_tail.jsonl", "\"crc32\":", 3);
    cut_copy("perturbed.reversed.jsonl", "cut_reversed.jsonl", "\"tag\":\"q_norm\"", 2000);
    static const char *const cuts[] = {"cut_payload.jsonl", "cut_payload.zlib.jsonl",
                                       "cut_payload.shuffle.jsonl", "cut_tail.jsonl",
                                       "cut_reversed.jsonl"};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        both_ways("ref.jsonl", cuts[i], NULL);
        both_ways(cuts[i], "ref.jsonl", NULL);
        both_ways(cuts[i], cuts[(i + 1) % 5], NULL);
        both_ways("perturbed.reversed.jsonl", cuts[i], NULL);
    }
    /* a foreign stream through a map: dropped records and reshaped keys */
    char map_path[512];
    snprintf(map_path, sizeof map_path, "%s/foreign_map.json", LD_COMPARE_TEST_DIR);
    ld_keymap *map = NULL;
    ld_error err;
    if (ld_keymap_load(map_path, &map, &err) != LD_OK)
        fail_msg("%s", err.msg);
    both_ways("ref.jsonl", "foreign_bad.jsonl", map);
    both_ways("foreign.jsonl", "perturbed.reversed.jsonl", map);
    ld_keymap_destroy(map);
    /* the candidate truncated in a payload: the record is not compared, the ones before are */
    ld_compare_result *r = run("cut_payload.jsonl");
    assert_true(r->cand.truncated);
    assert_string_equal(r->cand.last_key, "S0.final_norm");
    assert_int_equal(r->rows[find(r, "S0.logits")].state, LD_ROW_MISSING_IN_CAND);
    assert_int_equal(r->rows[find(r, "S0.final_norm")].state, LD_ROW_COMPARED);
    ld_compare_result_destroy(r);
}

/* Renders a report into memory. */
static char *render(ld_report_fn fn, const ld_compare_result *r, bool brief)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    ld_report_options ro = {brief, false};
    ld_error err;
    assert_int_equal(fn(f, r, &ro, &err), LD_OK);
    fclose(f);
    return buf;
}

static void test_reports(void **state)
{
    (void)state;
    ld_compare_result *r = run("perturbed.jsonl");
    /* text: table, first divergence marked, summary, verdict with the exit code */
    char *t = render(ld_report_text, r, false);
    if (!strstr(t, "S0.L1.q_norm") || !strstr(t, "<- first divergence") ||
        !strstr(t, "verdict: DIVERGENCE — exit 1") || !strstr(t, "made this error") ||
        strstr(t, "\033["))
        fail_msg("text report:\n%s", t);
    free(t);
    char *b = render(ld_report_text, r, true);
    assert_non_null(strstr(b, "rows not shown"));
    assert_non_null(strstr(b, "S0.L1.q_proj")); /* the first divergence's input is context */
    free(b);
    /* JSON: parses, and names the first divergence */
    char *j = render(ld_report_json, r, false);
    cJSON *doc = cJSON_Parse(j);
    assert_non_null(doc);
    cJSON *fd = cJSON_GetObjectItem(doc, "first_divergence");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(fd, "key")), "S0.L1.q_norm");
    assert_int_equal(cJSON_GetObjectItem(doc, "exit_code")->valueint, 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "probes")), ROWS);
    cJSON *grid = cJSON_GetObjectItem(fd, "grid");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(grid, "per_head")), TS_HQ);
    /* amplification is infinite: written as the string "Infinity" */
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(fd, "amplification")), "Infinity");
    cJSON_Delete(doc);
    free(j);
    /* Markdown, HTML, JUnit */
    char *md = render(ld_report_markdown, r, false);
    assert_non_null(strstr(md, "divergence at `S0.L1.q_norm` (exit 1)"));
    assert_non_null(strstr(md, "| key |"));
    free(md);
    char *h = render(ld_report_html, r, false);
    assert_non_null(strstr(h, "<svg"));
    assert_non_null(strstr(h, "Where the first divergence sits"));
    assert_null(strstr(h, "<script"));
    assert_null(strstr(h, "src=")); /* nothing fetched */
    for (const char *l = strstr(h, "href="); l; l = strstr(l + 1, "href=")) /* in-page links only */
        assert_true(!strncmp(l, "href=\"#", 7));
    free(h);
    char *x = render(ld_report_junit, r, false);
    char want[128];
    snprintf(want, sizeof want, "tests=\"%d\" failures=\"%zu\" errors=\"0\"", ROWS + 3, r->n_fail);
    assert_non_null(strstr(x, want));
    assert_non_null(strstr(x, "classname=\"layerdiff.S0.L1\" name=\"q_norm\""));
    free(x);
    ld_compare_result_destroy(r);
    /* an incomplete comparison in JUnit: an error per missing key */
    r = run("missing.jsonl");
    x = render(ld_report_junit, r, false);
    assert_non_null(strstr(x, "errors=\"1\""));
    assert_non_null(strstr(x, "<error message=\"missing in cand\""));
    free(x);
    ld_compare_result_destroy(r);
}

/* A reference whose records were moved out of execution order (issue 15, item 5): the first
 * divergence is still the earliest in execution order, the rows are listed in it, and a note says
 * why. Reversed, step 0's later (inherited) failures would otherwise come first. */
static void test_reference_out_of_order(void **state)
{
    (void)state;
    reverse_steps("ref.jsonl", "ref.reversed.jsonl");
    ld_compare_result *in = run("perturbed.jsonl");
    ld_compare_result *r = run_opt("ref.reversed.jsonl", "perturbed.jsonl", NULL);
    assert_string_equal(key_of(r, r->first_div), "S0.L1.q_norm");
    assert_true(has_note(r, "ref_order"));
    assert_false(has_note(in, "ref_order"));
    assert_int_equal(r->n_rows, in->n_rows);
    for (size_t i = 0; i < r->n_rows; i++)
        assert_true(ld_key_cmp_exec(&r->rows[i].key, &in->rows[i].key) == 0);
    assert_int_equal(r->first_grid.tokens, in->first_grid.tokens);
    assert_int_equal(ld_compare_exit_code(r, LD_FAIL_ON_DEFAULT), 1);
    ld_compare_result_destroy(in);
    ld_compare_result_destroy(r);
}

/* Records the other stream can never bring (its header's filter: a run with --tags or --steps)
 * do not wait for it (issue 15, item 6): under a parking bound far below one record, a logits-only
 * or a steps-1- stream compares in either role, its absent keys reported as missing. */
static void test_filtered_no_wait(void **state)
{
    (void)state;
    rewrite("ref.jsonl", "logits_only.jsonl", LD_ENC_BASE64, "logits", NULL);
    rewrite("ref.jsonl", "steps_1.jsonl", LD_ENC_BASE64, NULL, "1-");
    ld_compare_options o;
    ld_compare_options_init(&o);
    o.max_parked = 64;
    static const char *const narrow[] = {"logits_only.jsonl", "steps_1.jsonl"};
    for (size_t i = 0; i < 2; i++) {
        ld_compare_result *r = run_opt("ref.jsonl", narrow[i], &o);
        assert_true(r->n_compared > 0 && r->n_missing_in_cand > 0);
        assert_int_equal(r->n_fail, 0);
        assert_int_equal(r->n_compared + r->n_missing_in_cand, ROWS);
        ld_compare_result_destroy(r);
        r = run_opt(narrow[i], "ref.jsonl", &o);
        assert_true(r->n_compared > 0 && r->n_missing_in_ref > 0);
        ld_compare_result_destroy(r);
    }
    /* a stream out of order still needs its records to wait: past the bound, a named error */
    reverse_steps("ref.jsonl", "ref.reversed.jsonl");
    ld_compare_result *r = NULL;
    ld_error err;
    assert_int_equal(ld_compare_run(path_of("ref.jsonl"), path_of("ref.reversed.jsonl"), &o, &r,
                                    &err), LD_E_INPUT);
    assert_non_null(strstr(err.msg, "cannot wait for its partner"));
    assert_null(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical),       cmocka_unit_test(test_perturbed),
        cmocka_unit_test(test_bf16),            cmocka_unit_test(test_missing_key),
        cmocka_unit_test(test_shape_mismatch),  cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_input_mismatch),  cmocka_unit_test(test_argmax),
        cmocka_unit_test(test_nan),             cmocka_unit_test(test_fingerprint_faults),
        cmocka_unit_test(test_stats_only),      cmocka_unit_test(test_empty),
        cmocka_unit_test(test_foreign_map),     cmocka_unit_test(test_reports),
        cmocka_unit_test(test_streamed_equals_whole),
        cmocka_unit_test(test_reference_out_of_order),
        cmocka_unit_test(test_filtered_no_wait),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

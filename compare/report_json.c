/* report_json.c — the full comparison result as one JSON document (schemas/report.schema.json):
 * streams, checks, notes, the first divergence with its inputs and error grid, argmax and logits
 * agreement, and one entry per probe key with every metric and the tolerance applied. Written as a
 * stream (no tree in memory). Non-finite numbers are the strings "NaN", "Infinity", "-Infinity".
 * Also the gate's "baseline" member and the --exact document (schemas/exact.schema.json). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "ld_version.h"
#include "util.h"

#define S(f, s) ld_cmp_put_json_string(f, s)
#define D(f, v) ld_cmp_put_json_double(f, v)

static const char *state_name(ld_row_state s)
{
    switch (s) {
    case LD_ROW_COMPARED: return "compared";
    case LD_ROW_MISSING_IN_CAND: return "missing_in_candidate";
    case LD_ROW_MISSING_IN_REF: return "missing_in_reference";
    case LD_ROW_SHAPE_MISMATCH: return "shape_mismatch";
    }
    return "?";
}

/* Embeds a stream header's object (parsed when the header was read), else null. */
static void raw_json(FILE *f, const cJSON *v)
{
    char *s = v ? cJSON_PrintUnformatted(v) : NULL;
    fputs(s ? s : "null", f);
    if (s)
        cJSON_free(s);
}

static void i32_array(FILE *f, const int32_t *v, size_t n, bool present)
{
    if (!present) {
        fputs("null", f);
        return;
    }
    fputc('[', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%d", i ? "," : "", (int)v[i]);
    fputc(']', f);
}

static void shape_array(FILE *f, const int64_t *s, int ndim)
{
    fputc('[', f);
    for (int i = 0; i < ndim; i++)
        fprintf(f, "%s%lld", i ? "," : "", (long long)s[i]);
    fputc(']', f);
}

static void stream(FILE *f, const ld_stream_info *s)
{
    fputs("{\"path\":", f);
    S(f, s->path);
    fprintf(f, ",\"header\":%s", s->opened ? "true" : "false");
    fputs(",\"implementation\":", f);
    S(f, s->opened ? s->implementation : NULL);
    fputs(",\"backend\":", f);
    raw_json(f, s->backend);
    fputs(",\"model\":", f);
    raw_json(f, s->model);
    fputs(",\"fingerprint\":", f);
    S(f, s->fingerprint && s->fingerprint[0] ? s->fingerprint : NULL);
    fputs(",\"faults\":[", f);
    for (size_t i = 0; i < s->n_faults; i++) {
        fputs(i ? "," : "", f);
        S(f, s->faults[i]);
    }
    fputs("],\"tokens\":", f);
    i32_array(f, s->tokens, s->n_tokens, s->opened);
    fprintf(f, ",\"decode_steps\":%d,\"probes\":%llu,\"with_payload\":%llu,\"dropped_by_map\":%llu,"
               "\"bytes\":%llu",
            s->decode_steps, (unsigned long long)s->probes, (unsigned long long)s->with_data,
            (unsigned long long)s->dropped, (unsigned long long)s->bytes);
    fputs(",\"dtypes\":[", f);
    bool first = true;
    for (int t = 0; t < 3; t++) {
        if (s->dtype_mask & (1 << t)) {
            fputs(first ? "" : ",", f);
            S(f, ld_dtype_name((ld_dtype)t));
            first = false;
        }
    }
    fprintf(f, "],\"end\":%s,\"end_ok\":%s,\"truncated\":%s,\"end_message\":",
            s->has_end ? "true" : "false", s->has_end && s->end_ok ? "true" : "false",
            s->truncated ? "true" : "false");
    S(f, s->has_end && s->end_message && s->end_message[0] ? s->end_message : NULL);
    fputs(",\"last_key\":", f);
    S(f, s->last_key && s->last_key[0] ? s->last_key : NULL);
    fputs(",\"argmax_tokens\":", f);
    i32_array(f, s->end_tokens, s->n_end_tokens, s->end_tokens != NULL);
    fputs(",\"decoded\":", f);
    i32_array(f, s->decoded, s->n_decoded, s->decoded != NULL);
    fputc('}', f);
}

static void metrics(FILE *f, const ld_metrics *m)
{
    fprintf(f, "{\"source\":\"%s\",\"numel\":%llu,\"n\":%llu", m->source == LD_SRC_FULL ? "full" : "stats",
            (unsigned long long)m->numel, (unsigned long long)m->n);
    fprintf(f, ",\"nan\":{\"reference\":%llu,\"candidate\":%llu},\"inf\":{\"reference\":%llu,"
               "\"candidate\":%llu},\"nonfinite_new\":%llu,\"nonfinite_lost\":%llu",
            (unsigned long long)m->nan_ref, (unsigned long long)m->nan_cand,
            (unsigned long long)m->inf_ref, (unsigned long long)m->inf_cand,
            (unsigned long long)m->nonfinite_new, (unsigned long long)m->nonfinite_lost);
    static const char *const names[] = {"max_abs", "mean_abs", "rmse", "rel_l2", "max_rel",
                                        "cosine", "snr_db", "ref_l2", "cand_l2", "frac_outside",
                                        "ulp_mean"};
    const double vals[] = {m->max_abs, m->mean_abs, m->rmse, m->rel_l2, m->max_rel, m->cosine,
                           m->snr_db, m->ref_l2, m->cand_l2, m->frac_outside, m->ulp_mean};
    for (size_t i = 0; i < LD_ARRAY_LEN(vals); i++) {
        fprintf(f, ",\"%s\":", names[i]);
        D(f, vals[i]);
    }
    fprintf(f, ",\"n_outside\":%llu,\"ulp_max\":%llu,\"ulp_p99\":%llu",
            (unsigned long long)m->n_outside, (unsigned long long)m->ulp_max,
            (unsigned long long)m->ulp_p99);
    if (m->source == LD_SRC_STATS) {
        fputs(",\"l2_lower_bound\":", f);
        D(f, m->l2_lower_bound);
    }
    fputc('}', f);
}

static void tolerance(FILE *f, const ld_tolerance *t)
{
    static const char *const names[] = {"rel_l2", "cosine", "atol", "rtol", "outside", "max_abs",
                                        "ulp"};
    const double vals[] = {t->rel_l2, t->cosine, t->atol, t->rtol, t->outside, t->max_abs, t->ulp};
    fputc('{', f);
    for (size_t i = 0; i < LD_ARRAY_LEN(vals); i++) {
        fprintf(f, "%s\"%s\":", i ? "," : "", names[i]);
        if (isinf(vals[i]) && vals[i] > 0)
            fputs("null", f); /* off */
        else
            D(f, vals[i]);
    }
    fputc('}', f);
}

static void worst(FILE *f, const ld_compare_result *r, const ld_row *row)
{
    if (!row->m.has_worst) {
        fputs("null", f);
        return;
    }
    int64_t idx[LD_MAX_NDIM] = {0};
    ld_unravel(row->m.worst_index, row->shape, row->ndim, idx);
    char words[420];
    fprintf(f, "{\"flat_index\":%llu,\"index\":", (unsigned long long)row->m.worst_index);
    shape_array(f, idx, row->ndim);
    if (row->ndim >= 2 && row->m.source == LD_SRC_FULL) {
        fprintf(f, ",\"token\":%lld,\"position\":%lld", (long long)idx[0],
                (long long)(row->pos0 + idx[0]));
        if (row->ndim == 3)
            fprintf(f, ",\"head\":%lld,\"dim\":%lld", (long long)idx[1], (long long)idx[2]);
    }
    fputs(",\"reference\":", f);
    D(f, row->m.worst_ref);
    fputs(",\"candidate\":", f);
    D(f, row->m.worst_cand);
    fputs(",\"text\":", f);
    S(f, ld_cmp_worst_words(r, row, words, sizeof words));
    fputc('}', f);
}

static void probe(FILE *f, const ld_compare_result *r, const ld_row *row)
{
    char buf[128];
    fputc('{', f);
    ld_cmp_put_json_key(f, &row->key);
    fprintf(f, ",\"state\":\"%s\",\"status\":", state_name(row->state));
    S(f, row->state == LD_ROW_COMPARED ? (row->pass ? "pass" : "fail")
                                       : (row->allowed ? "allowed" : "incomplete"));
    fputs(",\"reasons\":[", f);
    bool first = true;
    for (unsigned b = 0; b < LD_FAIL_REASON_COUNT; b++) {
        if (row->fail_mask & (1u << b)) {
            fputs(first ? "" : ",", f);
            S(f, ld_fail_reason_name(1u << b));
            first = false;
        }
    }
    fputs("]", f);
    fputs(",\"index\":{\"reference\":", f);
    if (row->ref_index != UINT64_MAX)
        fprintf(f, "%llu", (unsigned long long)row->ref_index);
    else
        fputs("null", f);
    fputs(",\"candidate\":", f);
    if (row->cand_index != UINT64_MAX)
        fprintf(f, "%llu", (unsigned long long)row->cand_index);
    else
        fputs("null", f);
    fprintf(f, "},\"line\":{\"reference\":%llu,\"candidate\":%llu}", (unsigned long long)row->ref_line,
            (unsigned long long)row->cand_line);
    fprintf(f, ",\"pos0\":%lld,\"shape\":", (long long)row->pos0);
    shape_array(f, row->shape, row->ndim);
    fputs(",\"candidate_shape\":", f);
    if (row->cand_index != UINT64_MAX)
        shape_array(f, row->cand_shape, row->cand_ndim);
    else
        fputs("null", f);
    fprintf(f, ",\"reshaped\":%s", row->reshaped ? "true" : "false");
    fputs(",\"dtype\":{\"reference\":", f);
    S(f, row->ref_index != UINT64_MAX ? ld_dtype_name(row->ref_dtype) : NULL);
    fputs(",\"candidate\":", f);
    S(f, row->cand_index != UINT64_MAX ? ld_dtype_name(row->cand_dtype) : NULL);
    fprintf(f, "},\"payload\":{\"reference\":%s,\"candidate\":%s},\"fed\":%s",
            row->ref_has_data ? "true" : "false", row->cand_has_data ? "true" : "false",
            row->cand_fed ? "true" : "false");
    fputs(",\"crc32\":{\"reference\":", f);
    if (row->ref_has_data)
        fprintf(f, "\"%08x\"", (unsigned)row->ref_crc32);
    else
        fputs("null", f);
    fputs(",\"candidate\":", f);
    if (row->cand_has_data)
        fprintf(f, "\"%08x\"", (unsigned)row->cand_crc32);
    else
        fputs("null", f);
    fputs("}", f);
    if (row->state == LD_ROW_COMPARED) {
        fputs(",\"metrics\":", f);
        metrics(f, &row->m);
        fputs(",\"tolerance\":", f);
        tolerance(f, &row->tol);
        fputs(",\"worst\":", f);
        worst(f, r, row);
    } else {
        fputs(",\"metrics\":null,\"tolerance\":null,\"worst\":null", f);
    }
    fputs(",\"inputs_rel_l2\":", f);
    if (row->worst_input >= 0)
        D(f, row->inputs_rel_l2);
    else
        fputs("null", f);
    fputs(",\"worst_input\":", f);
    S(f, row->worst_input >= 0 ? ld_cmp_key_text(&r->rows[row->worst_input].key, buf, sizeof buf)
                               : NULL);
    fputs(",\"amplification\":", f);
    if (row->worst_input >= 0 && !isnan(row->amplification))
        D(f, row->amplification);
    else
        fputs("null", f);
    fputs(",\"local\":", f);
    if (row->replayed) {
        fputs("{\"rel_l2\":", f);
        D(f, row->local_rel_l2);
        fputs(",\"inherited_rel_l2\":", f);
        if (isnan(row->inherited_rel_l2))
            fputs("null", f);
        else
            D(f, row->inherited_rel_l2);
        fprintf(f, ",\"ulp_max\":%llu,\"budget\":", (unsigned long long)row->local_ulp_max);
        D(f, row->local_budget);
        fprintf(f, ",\"over\":%s}", row->local_over ? "true" : "false");
    } else if (r->replay_ran) {
        fputs("{\"not_replayed\":", f);
        S(f, row->replay_why[0] ? row->replay_why : "not compared");
        fputc('}', f);
    } else {
        fputs("null", f);
    }
    fputs(",\"floor\":", f);
    if (!isnan(row->floor_ratio)) {
        fputs("{\"rel_l2\":", f);
        D(f, row->floor_rel_l2);
        fputs(",\"ratio\":", f);
        D(f, row->floor_ratio);
        fputc('}', f);
    } else {
        fputs("null", f);
    }
    fputc('}', f);
}

static void grid(FILE *f, const ld_err_grid *g)
{
    if (!g->tokens || !g->heads) {
        fputs("null", f);
        return;
    }
    fprintf(f, "{\"tokens\":%zu,\"heads\":%zu,\"per_token\":[", g->tokens, g->heads);
    for (size_t t = 0; t < g->tokens; t++) {
        fputs(t ? "," : "", f);
        D(f, ld_err_grid_token(g, t));
    }
    fputs("],\"per_head\":[", f);
    for (size_t h = 0; h < g->heads; h++) {
        fputs(h ? "," : "", f);
        D(f, ld_err_grid_head(g, h));
    }
    fputs("],\"cells\":[", f);
    for (size_t t = 0; t < g->tokens; t++) {
        fputs(t ? ",[" : "[", f);
        for (size_t h = 0; h < g->heads; h++) {
            fputs(h ? "," : "", f);
            D(f, ld_err_grid_cell(g, t, h));
        }
        fputc(']', f);
    }
    fputs("]}", f);
}

static void first_divergence(FILE *f, const ld_compare_result *r)
{
    if (r->first_div < 0) {
        fputs("null", f);
        return;
    }
    const ld_row *row = &r->rows[r->first_div];
    fputc('{', f);
    ld_cmp_put_json_key(f, &row->key);
    fprintf(f, ",\"row\":%td,\"op\":", r->first_div);
    S(f, ld_tag_op_name(row->tag_id));
    fputs(",\"rel_l2\":", f);
    D(f, row->m.rel_l2);
    fputs(",\"cosine\":", f);
    D(f, row->m.cosine);
    fputs(",\"amplification\":", f);
    if (row->worst_input >= 0 && !isnan(row->amplification))
        D(f, row->amplification);
    else
        fputs("null", f);
    fputs(",\"inputs\":[", f);
    ld_key in[64];
    size_t n = LD_MIN(ld_tag_input_keys(&row->key, r->n_layers, in, LD_ARRAY_LEN(in)),
                      LD_ARRAY_LEN(in));
    for (size_t i = 0; i < n; i++) {
        ptrdiff_t k = ld_compare_find(r, &in[i]);
        fputs(i ? ",{" : "{", f);
        ld_cmp_put_json_key(f, &in[i]);
        if (k >= 0 && r->rows[k].state == LD_ROW_COMPARED) {
            fputs(",\"rel_l2\":", f);
            D(f, r->rows[k].m.rel_l2);
            fputs(",\"cosine\":", f);
            D(f, r->rows[k].m.cosine);
            fprintf(f, ",\"pass\":%s", r->rows[k].pass ? "true" : "false");
        } else {
            fputs(",\"rel_l2\":null,\"cosine\":null,\"pass\":null", f);
        }
        fputc('}', f);
    }
    fputs("],\"worst\":", f);
    worst(f, r, row);
    fputs(",\"grid\":", f);
    grid(f, &r->first_grid);
    fputc('}', f);
}

/* ,"NAME":"text" of token id as people read it (ld_tokenizer_label without its quotes), when the
 * comparison has a tokenizer (compare --tokenizer); null for an id the tokenizer lacks. */
static void token_text(FILE *f, const ld_compare_result *r, const char *name, bool have,
                       int32_t id)
{
    if (!r->tokenizer)
        return;
    fprintf(f, ",\"%s\":", name);
    char label[160];
    ld_tokenizer_label(r->tokenizer, id, label, sizeof label);
    size_t n = strlen(label);
    if (!have || n < 2 || label[0] != '"' || label[n - 1] != '"') {
        fputs("null", f);
        return;
    }
    label[n - 1] = '\0';
    S(f, label + 1);
}

static void argmax(FILE *f, const ld_compare_result *r)
{
    fputs("{\"first_diff_step\":", f);
    if (r->argmax_step >= 0)
        fprintf(f, "%d", r->argmax_step);
    else
        fputs("null", f);
    fprintf(f, ",\"topk\":%d,\"steps\":[", r->topk);
    for (size_t i = 0; i < r->n_steps; i++) {
        const ld_step_tokens *t = &r->steps[i];
        fprintf(f, "%s{\"step\":%d,\"reference\":", i ? "," : "", t->step);
        if (t->have_ref)
            fprintf(f, "%d", (int)t->ref_token);
        else
            fputs("null", f);
        fputs(",\"candidate\":", f);
        if (t->have_cand)
            fprintf(f, "%d", (int)t->cand_token);
        else
            fputs("null", f);
        token_text(f, r, "reference_text", t->have_ref, t->ref_token);
        token_text(f, r, "candidate_text", t->have_cand, t->cand_token);
        fprintf(f, ",\"logits_rows\":%llu,\"top1_agree\":%llu,\"topk_overlap\":",
                (unsigned long long)t->logits_rows, (unsigned long long)t->top1_agree);
        if (t->logits_rows)
            D(f, t->topk_overlap);
        else
            fputs("null", f);
        fputs(",\"first_top1_diff_row\":", f);
        if (t->first_top1_diff_row >= 0)
            fprintf(f, "%lld", (long long)t->first_top1_diff_row);
        else
            fputs("null", f);
        fputc('}', f);
    }
    fputs("]}", f);
}

static const char *verdict_name(const ld_compare_result *r, int code)
{
    switch (code) {
    case 0: return "pass";
    case 1: return r->divergence ? "divergence" : (r->regression ? "regression" : "argmax");
    case 2: return r->fingerprint_differs ? "fingerprint" : "faults";
    default: return r->empty ? "empty" : "incomplete";
    }
}

ld_status ld_report_json(FILE *f, const ld_compare_result *r, const ld_report_options *opt,
                         ld_error *err)
{
    (void)opt;
    int code = ld_compare_exit_code(r, r->fail_on);
    fprintf(f, "{\"format\":\"layerdiff-report\",\"version\":1,\"tool\":{\"name\":\"layerdiff\","
               "\"version\":\"%s\",\"git\":\"%s\"},\n",
            LD_VERSION_STRING, LD_GIT_REVISION);
    fputs("\"reference\":", f);
    stream(f, &r->ref);
    fputs(",\n\"candidate\":", f);
    stream(f, &r->cand);
    fputs(",\n\"policy\":{\"source\":", f);
    S(f, r->policy_label);
    if (r->n_floor_judged)
        fprintf(f, ",\"floor\":{\"k\":%.17g,\"ulp_cap\":%llu,\"probes\":%zu}", r->floor_k,
                (unsigned long long)r->floor_ulp_cap, r->n_floor_judged);
    fputs("},\"fail_on\":[", f);
    static const char *const fo[] = {"divergence", "incomplete", "argmax", "fingerprint", "faults",
                                     "nodata", "regression"};
    bool first = true;
    for (unsigned b = 0; b < LD_ARRAY_LEN(fo); b++) {
        if (r->fail_on & (1u << b)) {
            fputs(first ? "" : ",", f);
            S(f, fo[b]);
            first = false;
        }
    }
    fprintf(f, "],\"exit_code\":%d,\"verdict\":\"%s\",\n", code, verdict_name(r, code));
    char kbuf[LD_TAG_NAME_MAX + 48];
    char *text = ld_compare_summary(r);
    if (!text)
        return ld_error_set(err, LD_E_NOMEM, "out of memory writing the summary");
    fputs("\"summary\":{\"text\":", f);
    S(f, text);
    free(text);
    fprintf(f, ",\"compared\":%zu,\"passed\":%zu,\"failed\":%zu,\"missing_in_candidate\":%zu,"
               "\"missing_in_reference\":%zu,\"shape_mismatch\":%zu,\"allowed\":%zu,"
               "\"stats_only\":%zu,\"divergence\":%s,\"incomplete\":%s,\"empty\":%s,"
               "\"fingerprint_differs\":%s,\"faults_differ\":%s,\"input_mismatch\":%s,"
               "\"n_layers\":%d},\n",
            r->n_compared, r->n_pass, r->n_fail, r->n_missing_in_cand, r->n_missing_in_ref,
            r->n_shape_mismatch, r->n_allowed, r->n_stats_only, r->divergence ? "true" : "false",
            r->incomplete ? "true" : "false", r->empty ? "true" : "false",
            r->fingerprint_differs ? "true" : "false", r->faults_differ ? "true" : "false",
            r->input_mismatch ? "true" : "false", r->n_layers);
    fputs("\"notes\":[", f);
    static const char *const levels[] = {"info", "warning", "error"};
    for (size_t i = 0; i < r->n_notes; i++) {
        fprintf(f, "%s{\"level\":\"%s\",\"code\":", i ? "," : "", levels[r->notes[i].level]);
        S(f, r->notes[i].code);
        fputs(",\"text\":", f);
        S(f, r->notes[i].text);
        fputc('}', f);
    }
    fputs("],\n\"first_divergence\":", f);
    first_divergence(f, r);
    fputs(",\n\"argmax\":", f);
    argmax(f, r);
    if (r->replay_ran) { /* op-local attribution: the culprits in reference order */
        fprintf(f, ",\n\"replay\":{\"replayed\":%zu,\"culprit\":", r->n_replayed);
        S(f, r->culprit >= 0 ? ld_cmp_key_text(&r->rows[r->culprit].key, kbuf, sizeof kbuf) : NULL);
        fputs(",\"culprits\":[", f);
        bool firstc = true;
        for (size_t i = 0; i < r->n_rows; i++)
            if (r->rows[i].replayed && r->rows[i].local_over) {
                fputs(firstc ? "" : ",", f);
                S(f, ld_cmp_key_text(&r->rows[i].key, kbuf, sizeof kbuf));
                firstc = false;
            }
        fputs("]}", f);
    }
    fputs(",\n\"probes\":[", f);
    for (size_t i = 0; i < r->n_rows; i++) {
        fputs(i ? ",\n" : "\n", f);
        probe(f, r, &r->rows[i]);
    }
    fputs("\n]", f);
    if (r->baseline) {
        fputs(",\n\"baseline\":", f);
        ld_baseline_report_json(f, r);
    }
    fputs("}\n", f);
    return ld_cmp_stream_status(f, "JSON", err);
}

/* ---- the regression gate (compare --baseline) ------------------------------------------------ */

static void json_entry(FILE *f, const ld_compare_result *r, const ld_gate_entry *e)
{
    fputc('{', f);
    ld_cmp_put_json_key(f, &r->rows[e->row].key);
    fprintf(f, ",\"status\":\"%s\",\"reason\":", ld_gate_verdict_name(e));
    if (e->verdict == LD_GATE_REGRESSED || e->verdict == LD_GATE_IMPROVED)
        S(f, e->by_nonfinite || e->new_nonfinite != e->old_nonfinite ? "nonfinite" : "rel_l2");
    else
        fputs("null", f);
    const double v[] = {e->old_rel_l2, e->new_rel_l2, e->ratio};
    static const char *const names[] = {"old_rel_l2", "new_rel_l2", "ratio"};
    for (size_t i = 0; i < 3; i++) {
        fprintf(f, ",\"%s\":", names[i]);
        if (isnan(v[i]) && e->verdict == LD_GATE_UNJUDGED)
            fputs("null", f);
        else
            D(f, v[i]);
    }
    fputs(",\"floor_rel_l2\":", f);
    if (isnan(e->floor_rel_l2))
        fputs("null", f);
    else
        D(f, e->floor_rel_l2);
    fprintf(f,
            ",\"under_floor\":%s,\"old_nonfinite\":%llu,\"new_nonfinite\":%llu,"
            "\"stats_only\":%s}",
            e->under_floor ? "true" : "false", (unsigned long long)e->old_nonfinite,
            (unsigned long long)e->new_nonfinite, e->stats_only ? "true" : "false");
}

void ld_baseline_report_json(FILE *f, const ld_compare_result *r)
{
    const ld_baseline_check *c = r->baseline;
    if (!c) return;
    fputs("{\"path\":", f);
    S(f, c->path);
    fputs(",\"candidate\":{\"path\":", f);
    S(f, c->cand_path);
    fputs(",\"implementation\":", f);
    S(f, c->cand_impl);
    fputs(",\"faults\":", f);
    S(f, c->cand_faults);
    fputs(",\"tool\":", f);
    S(f, c->tool);
    fputs("},\"factor\":", f);
    D(f, c->factor);
    fputs(",\"slack\":", f);
    D(f, c->slack);
    fprintf(f,
            ",\"judged\":%zu,\"regressed\":%zu,\"improved\":%zu,\"unjudged\":%zu,"
            "\"stats_only\":%zu,\"floor\":%s,\"under_floor\":%zu,\"first_regressed\":",
            c->n_judged, c->n_regressed, c->n_improved, c->n_entries - c->n_judged, c->n_stats_only,
            c->floor_used ? "true" : "false", c->n_under_floor);
    if (c->first_regressed >= 0)
        json_entry(f, r, &c->entries[c->first_regressed]);
    else
        fputs("null", f);
    /* Judged probes by growth, then the unjudged ones in execution order. */
    fputs(",\"probes\":[", f);
    size_t n = 0;
    for (size_t i = 0; i < c->n_judged; i++, n++) {
        fputs(n ? ",\n" : "\n", f);
        json_entry(f, r, &c->entries[c->by_growth[i]]);
    }
    for (size_t i = 0; i < c->n_entries; i++) {
        if (c->entries[i].verdict != LD_GATE_UNJUDGED) continue;
        fputs(n++ ? ",\n" : "\n", f);
        json_entry(f, r, &c->entries[i]);
    }
    fputs("]}", f);
}

/* ---- compare --exact ------------------------------------------------------------------------- */

static void json_change(FILE *f, const ld_exact_change *c)
{
    fputc('{', f);
    ld_cmp_put_json_key(f, &c->key);
    fprintf(f, ",\"index\":%llu,\"line\":{\"old\":%llu,\"new\":%llu},\"what\":",
            (unsigned long long)c->index, (unsigned long long)c->old_line,
            (unsigned long long)c->new_line);
    S(f, c->what);
    fputs(",\"crc32\":", f);
    if (c->have_crc)
        fprintf(f, "{\"old\":\"%08x\",\"new\":\"%08x\"}", (unsigned)c->old_crc32,
                (unsigned)c->new_crc32);
    else
        fputs("null", f);
    fputs(",\"elements\":", f);
    if (c->have_elements) {
        int64_t idx[LD_MAX_NDIM] = {0};
        ld_unravel(c->first_elem, c->shape, c->ndim, idx);
        fprintf(f, "{\"changed\":%llu,\"numel\":%llu,\"first_flat_index\":%llu,\"first_index\":[",
                (unsigned long long)c->n_diff, (unsigned long long)c->numel,
                (unsigned long long)c->first_elem);
        for (int i = 0; i < c->ndim; i++)
            fprintf(f, "%s%lld", i ? "," : "", (long long)idx[i]);
        fputs("],\"old\":", f);
        ld_cmp_put_json_double(f, c->old_value);
        fputs(",\"new\":", f);
        ld_cmp_put_json_double(f, c->new_value);
        fputc('}', f);
    } else {
        fputs("null", f);
    }
    fputc('}', f);
}

ld_status ld_exact_report_json(FILE *f, const ld_exact_result *r, bool color, ld_error *err)
{
    (void)color;
    fprintf(f,
            "{\"format\":\"layerdiff-exact\",\"version\":1,\"tool\":{\"name\":\"layerdiff\","
            "\"version\":\"%s\",\"git\":\"%s\"},\n",
            LD_VERSION_STRING, LD_GIT_REVISION);
    const char *paths[] = {r->old_path, r->new_path}, *impls[] = {r->old_impl, r->new_impl},
               *backs[] = {r->old_backend, r->new_backend};
    for (int s = 0; s < 2; s++) {
        fprintf(f, "\"%s\":{\"path\":", s ? "new" : "old");
        S(f, paths[s]);
        fputs(",\"implementation\":", f);
        S(f, impls[s]);
        fputs(",\"backend\":", f);
        fputs(backs[s] ? backs[s] : "null", f);
        fprintf(f, ",\"truncated\":%s},\n",
                (s ? r->truncated_new : r->truncated_old) ? "true" : "false");
    }
    fprintf(f,
            "\"exit_code\":%d,\"verdict\":\"%s\",\"keys\":%llu,\"by_bytes\":%llu,"
            "\"by_stats\":%llu,\"changed\":%llu,\"structural\":%s,\"empty\":%s,\n\"notes\":[",
            ld_exact_exit_code(r), ld_exact_verdict_name(r), (unsigned long long)r->keys,
            (unsigned long long)r->by_bytes, (unsigned long long)r->by_stats,
            (unsigned long long)r->n_changed, r->structural ? "true" : "false",
            r->empty ? "true" : "false");
    for (size_t i = 0; i < r->n_notes; i++) {
        fputs(i ? "," : "", f);
        S(f, r->notes[i]);
    }
    fputs("],\n\"first_change\":", f);
    if (r->n_listed)
        json_change(f, &r->changes[0]);
    else
        fputs("null", f);
    fputs(",\n\"changes\":[", f);
    for (size_t i = 0; i < r->n_listed; i++) {
        fputs(i ? ",\n" : "\n", f);
        json_change(f, &r->changes[i]);
    }
    fputs("]}\n", f);
    return ld_cmp_stream_status(f, "JSON", err);
}

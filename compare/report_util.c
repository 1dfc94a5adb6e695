/* report_util.c — what the comparison report writers share: worst elements and failures in words,
 * row status, the rows a brief report keeps, and writing a report (comparison or --exact) to a file
 * atomically. Escaping and number formatting are emit.c; not any one report's layout. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json_lex.h"
#include "report.h"
#include "util.h"

char *ld_cmp_token_words(const ld_compare_result *r, int32_t id, char *buf, size_t size)
{
    if (id < 0) { /* the stream's end record: no token, every logit of the step NaN or inf */
        snprintf(buf, size, "no token (no finite logit)");
        return buf;
    }
    char label[96] = "";
    if (r->tokenizer)
        ld_tokenizer_label(r->tokenizer, id, label, sizeof label);
    snprintf(buf, size, "%d%s%s", (int)id, label[0] ? " " : "", label);
    return buf;
}

/* ", \"text\"" of the token the reference fed at pos (prompt, then decoded tokens); "" when
 * there is no tokenizer or no such position. */
static void position_text(const ld_compare_result *r, int64_t pos, char *buf, size_t size)
{
    buf[0] = '\0';
    const ld_stream_info *s = &r->ref;
    if (!r->tokenizer || pos < 0 || size < 8) return;
    int32_t id;
    if ((uint64_t)pos < s->n_tokens) id = s->tokens[pos];
    else if ((uint64_t)pos - s->n_tokens < s->n_decoded) id = s->decoded[pos - s->n_tokens];
    else return;
    buf[0] = ',';
    buf[1] = ' ';
    ld_tokenizer_label(r->tokenizer, id, buf + 2, size - 2);
}

char *ld_cmp_worst_words(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    buf[0] = '\0';
    if (!row->m.has_worst)
        return buf;
    int64_t idx[LD_MAX_NDIM] = {0};
    ld_unravel(row->m.worst_index, row->shape, row->ndim, idx);
    char where[256], text[96];
    if (row->ndim == 2 || row->ndim == 3)
        position_text(r, row->pos0 + idx[0], text, sizeof text);
    if (row->m.source == LD_SRC_STATS) {
        snprintf(where, sizeof where, "element %llu of the first %d",
                 (unsigned long long)row->m.worst_index, LD_HEAD_COUNT);
    } else if (row->ndim == 3) {
        snprintf(where, sizeof where, "token %lld (position %lld%s), head %lld, dim %lld",
                 (long long)idx[0], (long long)(row->pos0 + idx[0]), text, (long long)idx[1],
                 (long long)idx[2]);
    } else if (row->ndim == 2) {
        const char *col = "element";
        if (row->tag_id != LD_TAG_UNKNOWN) {
            switch (ld_tag_shape(row->tag_id)) {
            case LD_SHAPE_T_V: col = "vocab id"; break;
            case LD_SHAPE_T_I: col = "channel"; break;
            default: col = "element"; break;
            }
        }
        snprintf(where, sizeof where, "token %lld (position %lld%s), %s %lld", (long long)idx[0],
                 (long long)(row->pos0 + idx[0]), text, col, (long long)idx[1]);
    } else {
        char sh[96];
        ld_cmp_fmt_shape(idx, row->ndim, sh, sizeof sh);
        snprintf(where, sizeof where, "index %s", sh);
    }
    snprintf(buf, size, "%s: reference %.7g, candidate %.7g", where, row->m.worst_ref,
             row->m.worst_cand);
    return buf;
}

void ld_cmp_put_safe(FILE *f, const char *s, size_t n, bool markdown)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
                 (unsigned char)s[i + 1] <= 0x9f) /* a C1 control (CSI is U+009B) in UTF-8 */
            fprintf(f, "\\u%04x", (unsigned char)s[++i]);
        else if (c >= 0x80) {
            /* A whole UTF-8 sequence as it is; a byte that starts none (a path's) as U+FFFD. */
            size_t len = ld_json_utf8_len((const unsigned char *)s + i, n - i);
            if (len == 0)
                fputs("\xef\xbf\xbd", f);
            else
                fwrite(s + i, 1, len, f);
            i += len ? len - 1 : 0;
        } else if (markdown && (c == '&' || c == '<' || c == '>'))
            fputs(c == '&' ? "&amp;" : c == '<' ? "&lt;" : "&gt;", f);
        else if (markdown && (c == '|' || c == '`'))
            fprintf(f, "\\%c", c);
        else
            fputc(c, f);
    }
}

char *ld_cmp_model_words(const ld_compare_result *r, char *buf, size_t size)
{
    const cJSON *m = r->ref.model;
    const char *arch = m ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "architecture"))
                         : NULL;
    size_t used = 0;
    int n = snprintf(buf, size, "%s", arch ? arch : "model not stated");
    used = n > 0 ? LD_MIN((size_t)n, size - 1) : 0;
    static const struct {
        const char *field, *label;
    } dims[] = {{"num_hidden_layers", "layers"}, {"hidden_size", "H"},
                {"num_attention_heads", "Hq"},   {"num_key_value_heads", "Hkv"},
                {"head_dim", "D"},               {"intermediate_size", "I"},
                {"vocab_size", "V"}};
    for (size_t i = 0; m && i < LD_ARRAY_LEN(dims); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, dims[i].field);
        if (!cJSON_IsNumber(v))
            continue;
        n = snprintf(buf + used, size - used, " %s=%.0f", dims[i].label, v->valuedouble);
        used = n > 0 ? LD_MIN(used + (size_t)n, size - 1) : used;
    }
    if (r->ref.fingerprint && r->ref.fingerprint[0])
        snprintf(buf + used, size - used, ", weights %s%s", r->ref.fingerprint,
                 r->fingerprint_differs ? " (the candidate's differ)" : "");
    return buf;
}

const char *ld_cmp_row_status(const ld_row *row)
{
    switch (row->state) {
    case LD_ROW_COMPARED: return row->pass ? "ok" : "FAIL";
    case LD_ROW_MISSING_IN_CAND: return row->allowed ? "missing in cand (allowed)" : "missing in cand";
    case LD_ROW_MISSING_IN_REF: return row->allowed ? "missing in ref (allowed)" : "missing in ref";
    case LD_ROW_SHAPE_MISMATCH: return row->allowed ? "shape differs (allowed)" : "shape differs";
    }
    return "?";
}

char *ld_cmp_reasons(unsigned mask, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned b = 0; b < LD_FAIL_REASON_COUNT; b++) {
        if (!(mask & (1u << b)))
            continue;
        int n = snprintf(buf + used, size - used, "%s%s", used ? "," : "",
                         ld_fail_reason_name(1u << b));
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
    return buf;
}

char *ld_cmp_fail_words(const ld_row *row, char *buf, size_t size)
{
    const ld_metrics *m = &row->m;
    const ld_tolerance *t = &row->tol;
    size_t used = 0;
    char a[16], b[16];
    buf[0] = '\0';
#define ADD(...)                                                                                   \
    do {                                                                                           \
        int n_ = snprintf(buf + used, size - used, "%s", used ? ", " : "");                        \
        if (n_ > 0 && (size_t)n_ < size - used)                                                    \
            used += (size_t)n_;                                                                    \
        n_ = snprintf(buf + used, size - used, __VA_ARGS__);                                       \
        if (n_ > 0 && (size_t)n_ < size - used)                                                    \
            used += (size_t)n_;                                                                    \
    } while (0)
    if (row->fail_mask & LD_FAIL_NONFINITE) {
        if (m->nonfinite_new)
            ADD("%llu NaN/Inf where the reference is finite", (unsigned long long)m->nonfinite_new);
        if (m->nonfinite_lost)
            ADD("%llu reference NaN/Inf not reproduced", (unsigned long long)m->nonfinite_lost);
    }
    if (row->fail_mask & LD_FAIL_REL_L2)
        ADD("rel_l2 %s > %s", ld_cmp_fmt(m->rel_l2, a, sizeof a), ld_cmp_fmt(t->rel_l2, b, sizeof b));
    if (row->fail_mask & LD_FAIL_COSINE)
        ADD("1-cos %s > %s", ld_cmp_fmt(1.0 - m->cosine, a, sizeof a),
            ld_cmp_fmt(1.0 - t->cosine, b, sizeof b));
    if (row->fail_mask & LD_FAIL_OUTSIDE)
        ADD("%s of elements outside atol+rtol*|r| > %s", ld_cmp_fmt(m->frac_outside, a, sizeof a),
            ld_cmp_fmt(t->outside, b, sizeof b));
    if (row->fail_mask & LD_FAIL_MAX_ABS)
        ADD("max_abs %s > %s", ld_cmp_fmt(m->max_abs, a, sizeof a), ld_cmp_fmt(t->max_abs, b, sizeof b));
    if (row->fail_mask & LD_FAIL_ULP)
        ADD("ulp %llu > %s", (unsigned long long)m->ulp_max, ld_cmp_fmt(t->ulp, b, sizeof b));
    if (row->fail_mask & LD_FAIL_FLOOR) {
        char c[16];
        ADD("rel_l2 %s is %sx its noise floor %s", ld_cmp_fmt(m->rel_l2, a, sizeof a),
            ld_cmp_fmt(row->floor_ratio, c, sizeof c), ld_cmp_fmt(row->floor_rel_l2, b, sizeof b));
    }
#undef ADD
    return buf;
}

void ld_cmp_brief_rows(const ld_compare_result *r, bool *keep)
{
    memset(keep, 0, r->n_rows * sizeof *keep);
    if (r->first_div >= 0) {
        const ld_row *fd = &r->rows[r->first_div];
        keep[r->first_div] = true;
        if (r->first_div > 0)
            keep[r->first_div - 1] = true;
        ld_key in[32];
        size_t n = ld_tag_input_keys(&fd->key, r->n_layers, in, LD_ARRAY_LEN(in));
        for (size_t i = 0; i < LD_MIN(n, LD_ARRAY_LEN(in)); i++) {
            ptrdiff_t k = ld_compare_find(r, &in[i]);
            if (k >= 0)
                keep[k] = true;
        }
        if (fd->worst_input >= 0)
            keep[fd->worst_input] = true;
    }
    size_t fails = 0, others = 0;
    for (size_t i = 0; i < r->n_rows; i++) {
        const ld_row *row = &r->rows[i];
        if (row->state == LD_ROW_COMPARED && !row->pass && fails < 10) {
            keep[i] = true;
            fails++;
        } else if (row->state != LD_ROW_COMPARED && others < 20) {
            keep[i] = true;
            others++;
        }
    }
}

/* Renders a report in memory with render(f, job), then replaces path with it: a failed or
 * interrupted write never leaves half a report. */
static ld_status render_to_file(const char *path,
                                ld_status (*render)(FILE *f, const void *job, ld_error *err),
                                const void *job, ld_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return ld_error_set(err, LD_E_NOMEM, "%s: cannot open a memory stream", path);
    ld_status st = render(f, job, err);
    if (fclose(f) != 0 && st == LD_OK)
        st = ld_error_set(err, LD_E_NOMEM, "%s: out of memory rendering the report", path);
    if (st == LD_OK)
        st = ld_write_file(path, buf, len, err);
    else
        ld_error_prefix(err, "%s", path);
    free(buf);
    return st;
}

typedef struct compare_job {
    ld_report_fn fn;
    const ld_compare_result *r;
    const ld_report_options *opt;
} compare_job;

static ld_status render_compare(FILE *f, const void *job, ld_error *err)
{
    const compare_job *j = job;
    return j->fn(f, j->r, j->opt, err);
}

ld_status ld_report_to_file(const char *path, ld_report_fn fn, const ld_compare_result *r,
                            const ld_report_options *opt, ld_error *err)
{
    compare_job job = {fn, r, opt};
    return render_to_file(path, render_compare, &job, err);
}

typedef struct exact_job {
    ld_exact_report_fn fn;
    const ld_exact_result *r;
} exact_job;

static ld_status render_exact(FILE *f, const void *job, ld_error *err)
{
    const exact_job *j = job;
    return j->fn(f, j->r, false, err);
}

ld_status ld_exact_report_to_file(const char *path, ld_exact_report_fn fn, const ld_exact_result *r,
                                  ld_error *err)
{
    exact_job job = {fn, r};
    return render_to_file(path, render_exact, &job, err);
}

/* baseline.c — the regression gate: loads a baseline (the JSON report of an earlier, accepted
 * candidate against the same reference), refuses one from another model, input or probe set, and
 * judges every probe's error now against its error then. The gate's section of each report is
 * written beside that report's format (report_<format>.c, words in report_gate.c). Not the
 * comparison (compare.c) nor bit-exactness (exact.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compare_internal.h"
#include "gate.h"
#include "util.h"

/* ---- the baseline file --------------------------------------------------------------------- */

typedef struct bl_probe {
    ld_key key;
    bool compared; /* the baseline measured this key */
    bool stats_only;
    double rel_l2;
    uint64_t nonfinite; /* nonfinite_new + nonfinite_lost */
} bl_probe;

struct ld_baseline {
    char *path;
    cJSON *ref_model; /* reference.model, detached from the document */
    int32_t *tokens;  /* reference.tokens */
    size_t n_tokens;
    int decode_steps;
    int32_t *decoded; /* reference.decoded (NULL: absent) */
    size_t n_decoded;
    char *cand_path, *cand_impl, *cand_faults, *tool;
    bl_probe *probes;
    size_t n;
};

static ld_status bad(ld_error *err, const char *label, const char *where, const char *what)
{
    return ld_error_set(err, LD_E_INPUT, "%s: %s: %s", label, where, what);
}

/* A report number: a JSON number or "NaN", "Infinity", "-Infinity". */
static bool get_num(const cJSON *o, const char *name, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return true;
    }
    if (!cJSON_IsString(v)) return false;
    if (!strcmp(v->valuestring, "NaN"))
        *out = NAN;
    else if (!strcmp(v->valuestring, "Infinity"))
        *out = INFINITY;
    else if (!strcmp(v->valuestring, "-Infinity"))
        *out = -INFINITY;
    else
        return false;
    return true;
}

static bool get_count(const cJSON *o, const char *name, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 9e15 ||
        v->valuedouble != floor(v->valuedouble))
        return false;
    *out = (uint64_t)v->valuedouble;
    return true;
}

/* An array of token ids, or null (*out stays NULL). */
static ld_status get_ids(const cJSON *v, const char *label, const char *where, int32_t **out,
                         size_t *n, ld_error *err)
{
    *out = NULL;
    *n = 0;
    if (cJSON_IsNull(v)) return LD_OK;
    int count = cJSON_GetArraySize(v);
    if (!cJSON_IsArray(v) || count > (1 << 24))
        return bad(err, label, where, "must be an array of token ids");
    if (!(*out = malloc(((size_t)count + 1) * sizeof **out)))
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
    for (const cJSON *t = v->child; t; t = t->next) {
        if (!cJSON_IsNumber(t) || t->valuedouble < INT32_MIN || t->valuedouble > INT32_MAX ||
            t->valuedouble != floor(t->valuedouble))
            return bad(err, label, where, "holds something other than a token id");
        (*out)[(*n)++] = (int32_t)t->valuedouble;
    }
    return LD_OK;
}

static char *dup_string(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return strdup(cJSON_IsString(v) ? v->valuestring : "");
}

static ld_status parse_probe(const cJSON *p, const char *label, size_t i, bl_probe *out,
                             ld_error *err)
{
    char where[64];
    snprintf(where, sizeof where, "probes[%zu]", i);
    if (!cJSON_IsObject(p)) return bad(err, label, where, "must be an object");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(p, "key");
    ld_error kerr;
    if (!cJSON_IsString(k) || ld_key_parse(k->valuestring, &out->key, &kerr) != LD_OK)
        return bad(err, label, where, "key must be a probe key like \"S0.L3.q_norm\"");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(p, "metrics");
    if (!m || cJSON_IsNull(m)) return LD_OK; /* not compared in the baseline */
    if (!cJSON_IsObject(m)) return bad(err, label, where, "metrics must be an object or null");
    uint64_t nf_new, nf_lost;
    if (!get_num(m, "rel_l2", &out->rel_l2) || out->rel_l2 < 0 ||
        !get_count(m, "nonfinite_new", &nf_new) || !get_count(m, "nonfinite_lost", &nf_lost))
        return bad(err, label, where,
                   "metrics need rel_l2 (a number >= 0, \"NaN\" or "
                   "\"Infinity\") and the counts nonfinite_new, nonfinite_lost");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(m, "source");
    out->stats_only = cJSON_IsString(src) && !strcmp(src->valuestring, "stats");
    out->nonfinite = nf_new + nf_lost;
    out->compared = true;
    return LD_OK;
}

static ld_status parse_baseline(const cJSON *root, ld_baseline *b, ld_error *err)
{
    const char *label = b->path;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsObject(root) || !cJSON_IsString(v) || strcmp(v->valuestring, "layerdiff-report"))
        return bad(err, label, "format",
                   "must be \"layerdiff-report\" (a baseline is the report "
                   "'layerdiff compare REF CAND --json B.json' writes)");
    v = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!cJSON_IsNumber(v) || v->valuedouble != 1) return bad(err, label, "version", "must be 1");
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(root, "reference");
    const cJSON *cand = cJSON_GetObjectItemCaseSensitive(root, "candidate");
    if (!cJSON_IsObject(ref) || !cJSON_IsObject(cand))
        return bad(err, label, "reference, candidate", "must be objects");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(ref, "model");
    if (!cJSON_IsObject(model))
        return bad(err, label, "reference.model",
                   "must be an object (the baseline's reference "
                   "stream had no header?)");
    if (!(b->ref_model = cJSON_Duplicate(model, true)))
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
    ld_status st;
    if ((st = get_ids(cJSON_GetObjectItemCaseSensitive(ref, "tokens"), label, "reference.tokens",
                      &b->tokens, &b->n_tokens, err)) != LD_OK ||
        (st = get_ids(cJSON_GetObjectItemCaseSensitive(ref, "decoded"), label, "reference.decoded",
                      &b->decoded, &b->n_decoded, err)) != LD_OK)
        return st;
    uint64_t steps;
    if (!get_count(ref, "decode_steps", &steps) || steps > (1 << 24))
        return bad(err, label, "reference.decode_steps", "must be a count");
    b->decode_steps = (int)steps;
    b->cand_path = dup_string(cand, "path");
    b->cand_impl = dup_string(cand, "implementation");
    const cJSON *tool = cJSON_GetObjectItemCaseSensitive(root, "tool");
    char tool_text[160] = "";
    if (cJSON_IsObject(tool)) {
        const cJSON *tv = cJSON_GetObjectItemCaseSensitive(tool, "version");
        const cJSON *tg = cJSON_GetObjectItemCaseSensitive(tool, "git");
        snprintf(tool_text, sizeof tool_text, "layerdiff %.40s (git %.40s)",
                 cJSON_IsString(tv) ? tv->valuestring : "?",
                 cJSON_IsString(tg) ? tg->valuestring : "?");
    }
    b->tool = strdup(tool_text);
    /* The candidate's faults, space-separated ("" for an honest run). */
    const cJSON *faults = cJSON_GetObjectItemCaseSensitive(cand, "faults");
    size_t flen = 1;
    for (const cJSON *x = cJSON_IsArray(faults) ? faults->child : NULL; x; x = x->next)
        flen += cJSON_IsString(x) ? strlen(x->valuestring) + 1 : 0;
    if ((b->cand_faults = malloc(flen))) b->cand_faults[0] = '\0';
    for (const cJSON *x = cJSON_IsArray(faults) ? faults->child : NULL; x && b->cand_faults;
         x = x->next) {
        if (!cJSON_IsString(x)) continue;
        if (b->cand_faults[0]) strcat(b->cand_faults, " ");
        strcat(b->cand_faults, x->valuestring);
    }
    if (!b->cand_path || !b->cand_impl || !b->tool || !b->cand_faults)
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
    const cJSON *probes = cJSON_GetObjectItemCaseSensitive(root, "probes");
    int n = cJSON_GetArraySize(probes);
    if (!cJSON_IsArray(probes) || n < 1)
        return bad(err, label, "probes",
                   "must be a non-empty array (the baseline compared nothing)");
    if (!(b->probes = calloc((size_t)n, sizeof *b->probes)))
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory for %d probes", label, n);
    for (const cJSON *p = probes->child; p; p = p->next) {
        if ((st = parse_probe(p, label, b->n, &b->probes[b->n], err)) != LD_OK) return st;
        b->n++;
    }
    return LD_OK;
}

ld_status ld_baseline_load(const char *path, ld_baseline **out, ld_error *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    ld_status st = ld_read_file(path, LD_BASELINE_MAX_BYTES, &text, &len, err);
    if (st != LD_OK) return st;
    cJSON *root = NULL;
    st = ld_cmp_json_parse(text, len, path, &root, err);
    free(text);
    if (st != LD_OK) return st;
    ld_baseline *b = calloc(1, sizeof *b);
    if (!b || !(b->path = strdup(path))) {
        free(b);
        cJSON_Delete(root);
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", path);
    }
    st = parse_baseline(root, b, err);
    cJSON_Delete(root);
    if (st != LD_OK) {
        ld_baseline_destroy(b);
        return st;
    }
    *out = b;
    return LD_OK;
}

void ld_baseline_destroy(ld_baseline *b)
{
    if (!b) return;
    free(b->path);
    cJSON_Delete(b->ref_model);
    free(b->tokens);
    free(b->decoded);
    free(b->cand_path);
    free(b->cand_impl);
    free(b->cand_faults);
    free(b->tool);
    free(b->probes);
    free(b);
}

const char *ld_baseline_path(const ld_baseline *b)
{
    return b->path;
}

/* ---- is the baseline about the same thing? -------------------------------------------------- */

bool ld_gate_json_difference(const struct cJSON *a, const struct cJSON *b, const char *const *skip,
                             const char *in_a, const char *in_b, char *buf, size_t size)
{
    for (int pass = 0; pass < 2; pass++) {
        const cJSON *x0 = pass ? b : a, *other = pass ? a : b;
        for (const cJSON *x = x0->child; x; x = x->next) {
            bool skipped = false;
            for (size_t i = 0; skip && skip[i] && !skipped; i++)
                skipped = x->string && !strcmp(x->string, skip[i]);
            const cJSON *y = x->string ? cJSON_GetObjectItemCaseSensitive(other, x->string) : NULL;
            if (skipped || (y && cJSON_Compare(x, y, true))) continue;
            char *tx = cJSON_PrintUnformatted(x), *ty = y ? cJSON_PrintUnformatted(y) : NULL;
            const char *vx = tx ? tx : "?", *vy = y ? (ty ? ty : "?") : "absent";
            snprintf(buf, size, "%s is %.60s %s and %.60s %s", x->string ? x->string : "?",
                     pass ? vy : vx, in_a, pass ? vx : vy, in_b);
            cJSON_free(tx);
            cJSON_free(ty);
            return true;
        }
    }
    return false;
}

static bool same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static ld_status check_same_run(const ld_compare_result *r, const ld_baseline *b, ld_error *err)
{
    const ld_stream_info *ref = &r->ref;
    if (!ref->opened)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: cannot check the baseline: the reference stream "
                            "%s has no header",
                            b->path, ref->path);
    const cJSON *here = ref->model;
    char why[256];
    bool differs = !here || ld_gate_json_difference(b->ref_model, here, NULL, "there", "here", why,
                                                    sizeof why);
    if (differs)
        return ld_error_set(err, LD_E_INPUT,
                            "baseline %s was made on another model: model.%s "
                            "(refresh it with --update-baseline once the new model is accepted)",
                            b->path, here ? why : "model unreadable");
    if (!same_ids(b->tokens, b->n_tokens, ref->tokens, ref->n_tokens)) {
        size_t i = 0;
        while (i < b->n_tokens && i < ref->n_tokens && b->tokens[i] == ref->tokens[i])
            i++;
        if (i < b->n_tokens && i < ref->n_tokens)
            return ld_error_set(err, LD_E_INPUT,
                                "baseline %s was made on another input: prompt "
                                "token at index %zu is %d there and %d in %s",
                                b->path, i, (int)b->tokens[i], (int)ref->tokens[i], ref->path);
        return ld_error_set(err, LD_E_INPUT,
                            "baseline %s was made on another input: its prompt "
                            "has %zu tokens, the one of %s %zu",
                            b->path, b->n_tokens, ref->path, ref->n_tokens);
    }
    if (b->decode_steps != ref->decode_steps)
        return ld_error_set(err, LD_E_INPUT,
                            "baseline %s was made on another input: %d decode "
                            "steps there, %d in %s",
                            b->path, b->decode_steps, ref->decode_steps, ref->path);
    if (b->decoded && ref->decoded &&
        !same_ids(b->decoded, b->n_decoded, ref->decoded, ref->n_decoded))
        return ld_error_set(err, LD_E_INPUT,
                            "baseline %s was made on another input: its "
                            "reference fed other tokens to the decode steps than %s",
                            b->path, ref->path);
    return LD_OK;
}

/* Appends a tag to a comma list of distinct tags (at most ~8). */
static void add_tag(char *list, size_t size, const char *tag)
{
    size_t len = strlen(tag), used = strlen(list);
    for (const char *p = list; (p = strstr(p, tag)); p += len)
        if ((p == list || p[-1] == ' ') && (p[len] == ',' || p[len] == '\0')) return;
    if (used + len + 8 < size)
        snprintf(list + used, size - used, "%s%s", used ? ", " : "", tag);
    else if (used + 5 < size && !strstr(list, "..."))
        snprintf(list + used, size - used, ", ...");
}

/* Matches the baseline's keys with the rows; *row_of[i] is the row of baseline probe i. */
static ld_status match_keys(const ld_compare_result *r, const ld_baseline *b, ptrdiff_t *row_of,
                            ld_error *err)
{
    bool *seen = calloc(r->n_rows ? r->n_rows : 1, sizeof *seen);
    if (!seen) return ld_error_set(err, LD_E_NOMEM, "out of memory");
    size_t only_there = 0, only_here = 0;
    char tags_there[256] = "", tags_here[256] = "", first_there[160] = "", first_here[160] = "";
    ld_status st = LD_OK;
    for (size_t i = 0; i < b->n; i++) {
        ptrdiff_t k = ld_compare_find(r, &b->probes[i].key);
        row_of[i] = k;
        if (k < 0) {
            if (!only_there++) ld_cmp_key_text(&b->probes[i].key, first_there, sizeof first_there);
            add_tag(tags_there, sizeof tags_there, b->probes[i].key.tag);
            continue;
        }
        if (seen[k]) {
            char kt[160];
            st = ld_error_set(err, LD_E_INPUT, "%s: probes[%zu]: key %s appears twice", b->path, i,
                              ld_cmp_key_text(&b->probes[i].key, kt, sizeof kt));
            goto done;
        }
        seen[k] = true;
    }
    for (size_t i = 0; i < r->n_rows; i++) {
        if (seen[i]) continue;
        if (!only_here++) ld_cmp_key_text(&r->rows[i].key, first_here, sizeof first_here);
        add_tag(tags_here, sizeof tags_here, r->rows[i].key.tag);
    }
    if (only_there || only_here)
        st = ld_error_set(
            err, LD_E_INPUT,
            "baseline %s covers other probes than this comparison (another tag set, "
            "layer range or step count): %zu key%s only in the baseline%s%s%s%s%s, %zu "
            "only here%s%s%s%s%s",
            b->path, only_there, only_there == 1 ? "" : "s", only_there ? " (tags " : "",
            tags_there, only_there ? "; first " : "", first_there, only_there ? ")" : "", only_here,
            only_here ? " (tags " : "", tags_here, only_here ? "; first " : "", first_here,
            only_here ? ")" : "");
done:
    free(seen);
    return st;
}

/* ---- judging -------------------------------------------------------------------------------- */

static double growth(double now, double then)
{
    if (isnan(now) || isnan(then)) return NAN;
    if (then == 0) return now == 0 ? 1.0 : INFINITY;
    return now / then;
}

static void judge(ld_gate_entry *e, double factor, double slack)
{
    e->ratio = growth(e->new_rel_l2, e->old_rel_l2);
    if (e->new_nonfinite > e->old_nonfinite) {
        e->verdict = LD_GATE_REGRESSED;
        e->by_nonfinite = true;
    } else if (isnan(e->new_rel_l2) && !isnan(e->old_rel_l2)) {
        e->verdict = LD_GATE_REGRESSED;
    } else if (e->new_rel_l2 > factor * e->old_rel_l2 + slack) {
        /* At or under the floor, to the 9 digits a floor file keeps. */
        e->under_floor = !isnan(e->floor_rel_l2) && e->new_rel_l2 <= e->floor_rel_l2 * (1 + 1e-7);
        e->verdict = e->under_floor ? LD_GATE_WITHIN : LD_GATE_REGRESSED;
    } else if (e->new_nonfinite < e->old_nonfinite ||
               e->old_rel_l2 > factor * e->new_rel_l2 + slack) {
        e->verdict = LD_GATE_IMPROVED;
    } else {
        e->verdict = LD_GATE_WITHIN;
    }
}

typedef struct sort_item {
    int rank; /* 0: regressed by NaN/Inf, 1: a ratio, 2: NaN ratio */
    double ratio;
    size_t idx;
} sort_item;

static int by_growth_cmp(const void *pa, const void *pb)
{
    const sort_item *a = pa, *b = pb;
    if (a->rank != b->rank) return a->rank < b->rank ? -1 : 1;
    if (a->rank == 1 && a->ratio != b->ratio) return a->ratio > b->ratio ? -1 : 1;
    return a->idx < b->idx ? -1 : (a->idx > b->idx ? 1 : 0);
}

void ld_baseline_check_destroy(ld_baseline_check *c)
{
    if (!c) return;
    free(c->path);
    free(c->cand_path);
    free(c->cand_impl);
    free(c->cand_faults);
    free(c->tool);
    free(c->entries);
    free(c->by_growth);
    free(c);
}

ld_status ld_baseline_apply(ld_compare_result *r, const ld_baseline *b, double factor, double slack,
                            ld_error *err)
{
    if (!(factor >= 1) || !(slack >= 0) || isinf(factor) || isinf(slack))
        return ld_error_set(err, LD_E_USAGE, "regression factor must be >= 1 and slack >= 0");
    /* Nothing was compared (an empty stream, a reference without header): the result is already
     * "empty" (exit 3); there is nothing to hold against the baseline. */
    if (r->empty) return LD_OK;
    ld_status st = check_same_run(r, b, err);
    if (st != LD_OK) return st;
    ptrdiff_t *row_of = malloc((b->n ? b->n : 1) * sizeof *row_of);
    if (!row_of) return ld_error_set(err, LD_E_NOMEM, "out of memory");
    if ((st = match_keys(r, b, row_of, err)) != LD_OK) {
        free(row_of);
        return st;
    }
    ld_baseline_check *c = calloc(1, sizeof *c);
    sort_item *items = NULL;
    if (!c) goto nomem;
    c->factor = factor;
    c->slack = slack;
    c->first_regressed = -1;
    c->n_entries = r->n_rows;
    c->path = strdup(b->path);
    c->cand_path = strdup(b->cand_path);
    c->cand_impl = strdup(b->cand_impl);
    c->cand_faults = strdup(b->cand_faults);
    c->tool = strdup(b->tool);
    c->entries = calloc(r->n_rows ? r->n_rows : 1, sizeof *c->entries);
    c->by_growth = calloc(r->n_rows ? r->n_rows : 1, sizeof *c->by_growth);
    items = calloc(r->n_rows ? r->n_rows : 1, sizeof *items);
    if (!c->path || !c->cand_path || !c->cand_impl || !c->cand_faults || !c->tool || !c->entries ||
        !c->by_growth || !items)
        goto nomem;
    for (size_t i = 0; i < r->n_rows; i++) {
        ld_gate_entry *e = &c->entries[i];
        e->row = i;
        e->verdict = LD_GATE_UNJUDGED;
        e->old_rel_l2 = e->new_rel_l2 = e->ratio = e->floor_rel_l2 = NAN;
        const ld_row *row = &r->rows[i];
        if (row->state == LD_ROW_COMPARED) {
            e->new_rel_l2 = row->m.rel_l2;
            e->floor_rel_l2 = row->floor_rel_l2;
            e->new_nonfinite = row->m.nonfinite_new + row->m.nonfinite_lost;
            e->stats_only = row->m.source == LD_SRC_STATS;
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        const bl_probe *p = &b->probes[i];
        ld_gate_entry *e = &c->entries[row_of[i]];
        if (!p->compared) continue;
        e->old_rel_l2 = p->rel_l2;
        e->old_nonfinite = p->nonfinite;
        e->stats_only = e->stats_only || p->stats_only;
        if (r->rows[row_of[i]].state == LD_ROW_COMPARED) judge(e, factor, slack);
    }
    for (size_t i = 0; i < r->n_rows; i++) {
        const ld_gate_entry *e = &c->entries[i];
        if (e->verdict == LD_GATE_UNJUDGED) continue;
        items[c->n_judged++] = (sort_item){
            e->verdict == LD_GATE_REGRESSED && e->by_nonfinite ? 0 : (isnan(e->ratio) ? 2 : 1),
            e->ratio, i};
        c->n_stats_only += e->stats_only;
        c->n_under_floor += e->under_floor;
        c->floor_used = c->floor_used || !isnan(e->floor_rel_l2);
        if (e->verdict == LD_GATE_IMPROVED) c->n_improved++;
        if (e->verdict == LD_GATE_REGRESSED && c->n_regressed++ == 0)
            c->first_regressed = (ptrdiff_t)i; /* rows are in execution order */
    }
    if (c->n_judged > 1)
        qsort(items, c->n_judged, sizeof *items, by_growth_cmp);
    for (size_t i = 0; i < c->n_judged; i++)
        c->by_growth[i] = items[i].idx;
    free(items);
    free(row_of);
    ld_baseline_check_destroy(r->baseline);
    r->baseline = c;
    r->regression = c->n_regressed > 0;
    return LD_OK;
nomem:
    free(items);
    free(row_of);
    ld_baseline_check_destroy(c);
    return ld_error_set(err, LD_E_NOMEM, "out of memory judging against %s", b->path);
}

/* Here, not beside the rest of the result's ownership (compare_result.c): a result may carry the
 * baseline check above, and the core never calls up to the gate. */
void ld_compare_result_destroy(ld_compare_result *r)
{
    if (!r)
        return;
    ld_baseline_check_destroy(r->baseline);
    ld_cmp_result_free(r);
}

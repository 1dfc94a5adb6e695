/* baseline.c — the regression gate: loads a baseline (the JSON report of an earlier, accepted
 * candidate against the same reference), refuses one from another model, input or probe set, and
 * judges every probe's error now against its error then; writes the gate's section of each report.
 * Not the comparison (compare.c) nor bit-exactness (exact.c). */
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
    cJSON *here = cJSON_Parse(ref->model_json);
    char why[256];
    bool differs = !here || ld_gate_json_difference(b->ref_model, here, NULL, "there", "here", why,
                                                    sizeof why);
    cJSON_Delete(here);
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
                                "token %zu is %d there and %d in %s",
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

/* ---- reports -------------------------------------------------------------------------------- */

/* How many of the largest growths that did not regress the tables show, for the margin. */
#define CONTEXT_ROWS 5
/* Most regressed / improved rows a table lists (the JSON report lists all); brief text: fewer. */
#define MAX_LISTED       25
#define MAX_LISTED_BRIEF 10

static const char *verdict_name(const ld_gate_entry *e)
{
    switch (e->verdict) {
    case LD_GATE_WITHIN:
        return "within";
    case LD_GATE_REGRESSED:
        return "regressed";
    case LD_GATE_IMPROVED:
        return "improved";
    case LD_GATE_UNJUDGED:
        break;
    }
    return "unjudged";
}

static char *ratio_text(double v, char *buf, size_t size)
{
    if (isfinite(v) && v >= 10)
        snprintf(buf, size, "%.0fx", v);
    else if (isfinite(v))
        snprintf(buf, size, "%.2fx", v);
    else
        ld_cmp_fmt(v, buf, size);
    return buf;
}

char *ld_baseline_ratio_text(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    const ld_baseline_check *c = r->baseline;
    size_t i = (size_t)(row - r->rows);
    if (!c || i >= c->n_entries || c->entries[i].verdict == LD_GATE_UNJUDGED) {
        snprintf(buf, size, "-");
        return buf;
    }
    return ratio_text(c->entries[i].ratio, buf, size);
}

/* The change of one entry in words: "REGRESSED", "REGRESSED (new NaN/Inf)", "improved", "within".
 */
static const char *change_text(const ld_gate_entry *e)
{
    switch (e->verdict) {
    case LD_GATE_REGRESSED:
        return e->by_nonfinite ? "REGRESSED (new NaN/Inf)" : "REGRESSED";
    case LD_GATE_IMPROVED:
        return "improved";
    case LD_GATE_WITHIN:
        return e->under_floor ? "within (under the floor)" : "within";
    case LD_GATE_UNJUDGED:
        break;
    }
    return "";
}

/* The rows a gate table lists, in growth order: every regression (up to MAX_LISTED, and the
 * first one in execution order always), then the CONTEXT_ROWS largest growths that stayed within
 * the factor. Returns how many went to out; *more counts the regressions left out. */
static size_t growth_rows(const ld_baseline_check *c, bool brief, size_t *out, size_t *more)
{
    size_t n = 0, context = 0, max = brief ? MAX_LISTED_BRIEF : MAX_LISTED;
    *more = 0;
    for (size_t i = 0; i < c->n_judged; i++) {
        const ld_gate_entry *e = &c->entries[c->by_growth[i]];
        if (e->verdict == LD_GATE_REGRESSED) {
            if (n < max || (ptrdiff_t)c->by_growth[i] == c->first_regressed)
                out[n++] = c->by_growth[i];
            else
                (*more)++;
        } else if (e->verdict != LD_GATE_IMPROVED && (!brief || !c->n_regressed) &&
                   context < CONTEXT_ROWS) {
            out[n++] = c->by_growth[i];
            context++;
        }
    }
    return n;
}

/* The improved entries, most improved first (growth order reversed). */
static size_t improved_rows(const ld_baseline_check *c, size_t *out, size_t *more)
{
    size_t n = 0;
    *more = 0;
    for (size_t i = c->n_judged; i-- > 0;) {
        if (c->entries[c->by_growth[i]].verdict != LD_GATE_IMPROVED) continue;
        if (n < MAX_LISTED)
            out[n++] = c->by_growth[i];
        else
            (*more)++;
    }
    return n;
}

/* "3 of 284 probes regressed, 1 improved, 280 within the factor" */
static void counts_text(const ld_baseline_check *c, char *buf, size_t size)
{
    snprintf(buf, size, "%zu of %zu probes regressed, %zu improved, %zu within the factor",
             c->n_regressed, c->n_judged, c->n_improved,
             c->n_judged - c->n_regressed - c->n_improved);
    if (c->n_under_floor) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used,
                 " (%zu of them grew over the factor but stay under the "
                 "noise floor)",
                 c->n_under_floor);
    }
    if (c->n_entries > c->n_judged) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, " (%zu not judged: missing here or in the baseline)",
                 c->n_entries - c->n_judged);
    }
}

/* "a probe regresses when its rel_l2 > 3 x the baseline's + 1e-06 or ..." */
static void rule_text(const ld_baseline_check *c, char *buf, size_t size)
{
    char s[16];
    snprintf(buf, size,
             "a probe regresses when its rel_l2 > %g x the baseline's + %s%s or its "
             "NaN/Inf disagreements grow",
             c->factor, ld_cmp_fmt(c->slack, s, sizeof s),
             c->floor_used ? " and over its noise floor" : "");
}

static void first_text(const ld_compare_result *r, char *buf, size_t size)
{
    const ld_baseline_check *c = r->baseline;
    if (c->first_regressed < 0) {
        snprintf(buf, size, "No probe regressed");
        return;
    }
    const ld_gate_entry *e = &c->entries[c->first_regressed];
    char kt[160], kw[200], a[16], b[16], q[24];
    const ld_key *k = &r->rows[e->row].key;
    if (e->by_nonfinite)
        snprintf(buf, size,
                 "First regression in execution order: %s (%s): %llu NaN/Inf "
                 "disagreements, %llu in the baseline",
                 ld_cmp_key_text(k, kt, sizeof kt), ld_cmp_key_words(k, kw, sizeof kw),
                 (unsigned long long)e->new_nonfinite, (unsigned long long)e->old_nonfinite);
    else
        snprintf(buf, size, "First regression in execution order: %s (%s): rel_l2 %s -> %s, %s",
                 ld_cmp_key_text(k, kt, sizeof kt), ld_cmp_key_words(k, kw, sizeof kw),
                 ld_cmp_fmt(e->old_rel_l2, a, sizeof a), ld_cmp_fmt(e->new_rel_l2, b, sizeof b),
                 ratio_text(e->ratio, q, sizeof q));
}

static void baseline_words(const ld_baseline_check *c, char *buf, size_t size)
{
    snprintf(buf, size, "candidate %s (%s, %s), written by %s", c->cand_path,
             c->cand_impl[0] ? c->cand_impl : "?", c->cand_faults[0] ? c->cand_faults : "no faults",
             c->tool);
}

static void text_row(FILE *f, const ld_compare_result *r, const ld_gate_entry *e, bool first,
                     bool color)
{
    char kt[160], a[16], b[16], q[24];
    const char *paint = "";
    if (color)
        paint = e->verdict == LD_GATE_REGRESSED
                    ? "\033[31m"
                    : (e->verdict == LD_GATE_IMPROVED ? "\033[32m" : "");
    fprintf(f, "%s%-28s%s %11s %11s %9s  %s%s%s%s\n", paint,
            ld_cmp_key_text(&r->rows[e->row].key, kt, sizeof kt), paint[0] ? "\033[0m" : "",
            ld_cmp_fmt(e->old_rel_l2, a, sizeof a), ld_cmp_fmt(e->new_rel_l2, b, sizeof b),
            ratio_text(e->ratio, q, sizeof q), paint, change_text(e), paint[0] ? "\033[0m" : "",
            first ? "  <- first regression" : "");
}

void ld_baseline_report_text(FILE *f, const ld_compare_result *r, bool color, bool brief)
{
    const ld_baseline_check *c = r->baseline;
    if (!c) return;
    char buf[1024];
    fprintf(f, "\n%sRegression gate against baseline %s%s\n", color ? "\033[1m" : "", c->path,
            color ? "\033[0m" : "");
    baseline_words(c, buf, sizeof buf);
    fprintf(f, "  baseline: %s\n", buf);
    rule_text(c, buf, sizeof buf);
    fprintf(f, "  rule: %s\n", buf);
    counts_text(c, buf, sizeof buf);
    fprintf(f, "  %s.\n", buf);
    if (c->n_stats_only)
        fprintf(f,
                "  %zu of them were measured by stats only on one side or in the baseline: "
                "their errors are estimates.\n",
                c->n_stats_only);
    first_text(r, buf, sizeof buf);
    fprintf(f, "  %s%s%s.\n", color && c->first_regressed >= 0 ? "\033[1;31m" : "", buf,
            color && c->first_regressed >= 0 ? "\033[0m" : "");
    size_t *list = malloc((c->n_judged ? c->n_judged : 1) * sizeof *list);
    if (!list) return;
    size_t more, n = growth_rows(c, brief, list, &more);
    if (n) {
        fprintf(f, "\n%-28s %11s %11s %9s  %s\n", "key (by growth)", "old rel_l2", "new rel_l2",
                "new/old", "change");
        for (size_t i = 0; i < n; i++)
            text_row(f, r, &c->entries[list[i]], (ptrdiff_t)list[i] == c->first_regressed, color);
        if (more)
            fprintf(f, "  ... %zu more regressions (the JSON report lists every probe)\n", more);
        size_t rest = c->n_judged - c->n_regressed - c->n_improved;
        if ((!brief || !c->n_regressed) && rest > CONTEXT_ROWS)
            fprintf(f, "  ... %zu more within the factor, smaller growth\n", rest - CONTEXT_ROWS);
    }
    n = improved_rows(c, list, &more);
    if (n) {
        fprintf(f, "\n%-28s %11s %11s %9s  %s\n", "improved (most first)", "old rel_l2",
                "new rel_l2", "new/old", "change");
        for (size_t i = 0; i < n; i++)
            text_row(f, r, &c->entries[list[i]], false, color);
        if (more) fprintf(f, "  ... %zu more improved\n", more);
    } else {
        fprintf(f, "  No probe improved beyond the factor.\n");
    }
    free(list);
}

#define S(f, s) ld_cmp_put_json_string(f, s)
#define D(f, v) ld_cmp_put_json_double(f, v)

static void json_entry(FILE *f, const ld_compare_result *r, const ld_gate_entry *e)
{
    fputc('{', f);
    ld_cmp_put_json_key(f, &r->rows[e->row].key);
    fprintf(f, ",\"status\":\"%s\",\"reason\":", verdict_name(e));
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

static void md_rows(FILE *f, const ld_compare_result *r, const size_t *list, size_t n)
{
    fputs("\n| key | old rel_l2 | new rel_l2 | new/old | change |\n| --- | ---: | ---: | ---: | "
          "--- |\n",
          f);
    for (size_t i = 0; i < n; i++) {
        const ld_gate_entry *e = &r->baseline->entries[list[i]];
        char kt[160], a[16], b[16], q[24];
        bool first = (ptrdiff_t)list[i] == r->baseline->first_regressed;
        fprintf(f, "| %s`%s`%s | %s | %s | %s | %s |\n", first ? "**" : "",
                ld_cmp_key_text(&r->rows[e->row].key, kt, sizeof kt), first ? "**" : "",
                ld_cmp_fmt(e->old_rel_l2, a, sizeof a), ld_cmp_fmt(e->new_rel_l2, b, sizeof b),
                ratio_text(e->ratio, q, sizeof q), change_text(e));
    }
}

void ld_baseline_report_markdown(FILE *f, const ld_compare_result *r)
{
    const ld_baseline_check *c = r->baseline;
    if (!c) return;
    char buf[1024];
    if (c->first_regressed >= 0) {
        char kt[160];
        fprintf(f, "\n#### Regression gate: ❌ %zu probe%s regressed, first `%s`\n\n",
                c->n_regressed, c->n_regressed == 1 ? "" : "s",
                ld_cmp_key_text(&r->rows[c->entries[c->first_regressed].row].key, kt, sizeof kt));
    } else {
        fprintf(f, "\n#### Regression gate: ✅ no probe regressed\n\n");
    }
    baseline_words(c, buf, sizeof buf);
    fprintf(f, "Baseline `%s`: %s.\n", c->path, buf);
    char first[512], rule[256];
    counts_text(c, buf, sizeof buf);
    first_text(r, first, sizeof first);
    rule_text(c, rule, sizeof rule);
    fprintf(f, "%s (%s). %s.\n", buf, rule, first);
    size_t *list = malloc((c->n_judged ? c->n_judged : 1) * sizeof *list);
    if (!list) return;
    size_t more, n = growth_rows(c, true, list, &more);
    if (n) md_rows(f, r, list, n);
    if (more) fprintf(f, "\n%zu more regressions: see the JSON report.\n", more);
    n = improved_rows(c, list, &more);
    if (n) {
        fputs("\nImproved beyond the factor:\n", f);
        md_rows(f, r, list, n);
    }
    free(list);
}

#define X(f, s) ld_cmp_put_xml(f, s)

static void html_rows(FILE *f, const ld_compare_result *r, const size_t *list, size_t n)
{
    fputs("<table>\n<tr><th class=\"l\">key</th><th>old rel_l2</th><th>new rel_l2</th>"
          "<th>new/old</th><th class=\"l\">change</th></tr>\n",
          f);
    for (size_t i = 0; i < n; i++) {
        const ld_gate_entry *e = &r->baseline->entries[list[i]];
        char kt[160], a[16], b[16], q[24];
        bool first = (ptrdiff_t)list[i] == r->baseline->first_regressed;
        fprintf(f, "<tr class=\"%s\"><td class=\"l\">",
                first ? "fail first" : (e->verdict == LD_GATE_REGRESSED ? "fail" : "ok"));
        X(f, ld_cmp_key_text(&r->rows[e->row].key, kt, sizeof kt));
        fprintf(f, "</td><td>%s</td><td>%s</td><td>%s</td><td class=\"l s\">",
                ld_cmp_fmt(e->old_rel_l2, a, sizeof a), ld_cmp_fmt(e->new_rel_l2, b, sizeof b),
                ratio_text(e->ratio, q, sizeof q));
        X(f, change_text(e));
        fputs(first ? " ← first regression</td></tr>\n" : "</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

void ld_baseline_report_html(FILE *f, const ld_compare_result *r)
{
    const ld_baseline_check *c = r->baseline;
    if (!c) return;
    char buf[1024];
    fputs("<h2>Regression gate</h2>\n", f);
    first_text(r, buf, sizeof buf);
    fprintf(f, "<div class=\"banner %s\">", c->n_regressed ? "fail" : "pass");
    X(f, buf);
    fputs("</div>\n<p>Baseline <code>", f);
    X(f, c->path);
    fputs("</code>: ", f);
    baseline_words(c, buf, sizeof buf);
    X(f, buf);
    fputs(". ", f);
    counts_text(c, buf, sizeof buf);
    X(f, buf);
    fputs("; ", f);
    rule_text(c, buf, sizeof buf);
    X(f, buf);
    fputs(".</p>\n", f);
    size_t *list = malloc((c->n_judged ? c->n_judged : 1) * sizeof *list);
    if (!list) return;
    size_t more, n = growth_rows(c, false, list, &more);
    if (n) {
        fputs("<p>Largest growth first: every regression, then the probes closest to the "
              "factor.</p>\n",
              f);
        html_rows(f, r, list, n);
    }
    if (more) fprintf(f, "<p>%zu more regressions: see the JSON report.</p>\n", more);
    n = improved_rows(c, list, &more);
    if (n) {
        fputs("<p>Improved beyond the factor:</p>\n", f);
        html_rows(f, r, list, n);
    }
    free(list);
}

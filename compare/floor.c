/* floor.c — the noise-floor file: building it from variant comparisons, writing, loading with
 * strict checks, lookup by key, and the verdict against it (floor.h). */
#include "floor.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare_internal.h"
#include "ld_version.h"
#include "util.h"

struct ld_floor {
    char *label;            /* the file it came from, or "(new)" */
    ld_dtype dtype;
    char *fingerprint;
    char *model_json;
    int32_t *tokens;
    size_t n_tokens;
    int decode_steps;
    char **variants;
    size_t n_variants;
    ld_floor_entry *entries;
    size_t n, cap;
    size_t *slots;          /* open-addressing index into entries (SIZE_MAX = empty) */
    size_t n_slots;
};

static uint64_t key_hash(const ld_key *k)
{
    uint64_t h = ld_fnv1a(LD_FNV_INIT, k->tag, strlen(k->tag));
    h = ld_fnv1a(h, &k->step, sizeof k->step);
    return ld_fnv1a(h, &k->layer, sizeof k->layer);
}

static bool key_eq(const ld_key *a, const ld_key *b)
{
    return a->step == b->step && a->layer == b->layer && !strcmp(a->tag, b->tag);
}

static bool rehash(ld_floor *f, size_t n_slots)
{
    size_t *slots = malloc(n_slots * sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < n_slots; i++)
        slots[i] = SIZE_MAX;
    for (size_t e = 0; e < f->n; e++) {
        size_t i = (size_t)(key_hash(&f->entries[e].key) & (n_slots - 1));
        while (slots[i] != SIZE_MAX)
            i = (i + 1) & (n_slots - 1);
        slots[i] = e;
    }
    free(f->slots);
    f->slots = slots;
    f->n_slots = n_slots;
    return true;
}

const ld_floor_entry *ld_floor_find(const ld_floor *f, const ld_key *key)
{
    if (!f || !f->n_slots)
        return NULL;
    size_t i = (size_t)(key_hash(key) & (f->n_slots - 1));
    while (f->slots[i] != SIZE_MAX) {
        const ld_floor_entry *e = &f->entries[f->slots[i]];
        if (key_eq(&e->key, key))
            return e;
        i = (i + 1) & (f->n_slots - 1);
    }
    return NULL;
}

/* The entry for key, created (zeroed) when new; NULL when out of memory. */
static ld_floor_entry *entry_for(ld_floor *f, const ld_key *key)
{
    ld_floor_entry *e = (ld_floor_entry *)ld_floor_find(f, key);
    if (e)
        return e;
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 256;
        ld_floor_entry *n = realloc(f->entries, cap * sizeof *n);
        if (!n)
            return NULL;
        f->entries = n;
        f->cap = cap;
    }
    e = &f->entries[f->n++];
    memset(e, 0, sizeof *e);
    e->key = *key;
    if (2 * f->n > f->n_slots && !rehash(f, f->n_slots ? 2 * f->n_slots : 512)) {
        f->n--;
        return NULL;
    }
    if (f->n_slots && ld_floor_find(f, key) == NULL) { /* not yet indexed: insert */
        size_t i = (size_t)(key_hash(key) & (f->n_slots - 1));
        while (f->slots[i] != SIZE_MAX)
            i = (i + 1) & (f->n_slots - 1);
        f->slots[i] = f->n - 1;
    }
    return e;
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

ld_floor *ld_floor_create(ld_dtype dtype, const char *fingerprint, const char *model_json,
                          const int32_t *tokens, size_t n_tokens, int decode_steps)
{
    ld_floor *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->label = strdup("(new floor)");
    f->dtype = dtype;
    f->fingerprint = dup_or_empty(fingerprint);
    f->model_json = dup_or_empty(model_json && *model_json ? model_json : "{}");
    f->tokens = malloc((n_tokens ? n_tokens : 1) * sizeof *f->tokens);
    if (!f->label || !f->fingerprint || !f->model_json || !f->tokens) {
        ld_floor_destroy(f);
        return NULL;
    }
    if (n_tokens)
        memcpy(f->tokens, tokens, n_tokens * sizeof *tokens);
    f->n_tokens = n_tokens;
    f->decode_steps = decode_steps;
    return f;
}

void ld_floor_destroy(ld_floor *f)
{
    if (!f)
        return;
    free(f->label);
    free(f->fingerprint);
    free(f->model_json);
    free(f->tokens);
    for (size_t i = 0; i < f->n_variants; i++)
        free(f->variants[i]);
    free(f->variants);
    free(f->entries);
    free(f->slots);
    free(f);
}

ld_dtype ld_floor_dtype(const ld_floor *f) { return f->dtype; }
const char *ld_floor_label(const ld_floor *f) { return f->label; }
size_t ld_floor_count(const ld_floor *f) { return f->n; }

ld_status ld_floor_add_variant(ld_floor *f, const char *variant, bool nearest_even,
                               const ld_compare_result *r, ld_error *err)
{
    char **v = realloc(f->variants, (f->n_variants + 1) * sizeof *v);
    if (!v)
        return ld_error_set(err, LD_E_NOMEM, "floor: out of memory");
    f->variants = v;
    if (!(f->variants[f->n_variants] = strdup(variant)))
        return ld_error_set(err, LD_E_NOMEM, "floor: out of memory");
    f->n_variants++;
    for (size_t i = 0; i < r->n_rows; i++) {
        const ld_row *row = &r->rows[i];
        if (row->state != LD_ROW_COMPARED)
            continue;
        if (row->m.source != LD_SRC_FULL)
            return ld_error_set(err, LD_E_INPUT,
                                "floor: %s was compared without payloads; calibration needs full "
                                "payloads on both sides", row->key.tag);
        if (row->m.nonfinite_new || row->m.nonfinite_lost)
            return ld_error_set(err, LD_E_INPUT,
                                "floor: variant '%s' produced non-finite values at %s: an honest "
                                "%s kernel set overflows on this input", variant, row->key.tag,
                                ld_dtype_name(f->dtype));
        bool fresh = ld_floor_find(f, &row->key) == NULL;
        ld_floor_entry *e = entry_for(f, &row->key);
        if (!e)
            return ld_error_set(err, LD_E_NOMEM, "floor: out of memory");
        if (fresh)
            e->local_rel_l2 = NAN;
        if (row->replayed && isfinite(row->local_rel_l2))
            e->local_rel_l2 = isnan(e->local_rel_l2) ? row->local_rel_l2
                                                     : LD_MAX(e->local_rel_l2, row->local_rel_l2);
        double rel = isfinite(row->m.rel_l2) ? row->m.rel_l2 : 0.0;
        e->rel_l2 = LD_MAX(e->rel_l2, rel);
        e->max_abs = LD_MAX(e->max_abs, row->m.max_abs);
        e->ulp_max = LD_MAX(e->ulp_max, row->m.ulp_max);
        if (nearest_even)
            e->rel_l2_nearest = rel;
    }
    return LD_OK;
}

ld_status ld_floor_write(const ld_floor *f, const char *path, ld_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", path);
    char now[32];
    ld_utc_now(now, sizeof now);
    fprintf(m, "{\n  \"format\": \"%s\",\n  \"version\": %d,\n  \"dtype\": \"%s\",\n",
            LD_FLOOR_FORMAT, LD_FLOOR_VERSION, ld_dtype_name(f->dtype));
    fprintf(m, "  \"created\": \"%s\",\n  \"tool\": {\"name\": \"layerdiff\", \"version\": \"%s\", "
               "\"git\": \"%s\"},\n",
            now, LD_VERSION_STRING, LD_GIT_REVISION);
    fprintf(m, "  \"fingerprint\": ");
    ld_cmp_put_json_string(m, f->fingerprint);
    fprintf(m, ",\n  \"model\": %s,\n  \"input\": {\"tokens\": [", f->model_json);
    for (size_t i = 0; i < f->n_tokens; i++)
        fprintf(m, "%s%d", i ? "," : "", (int)f->tokens[i]);
    fprintf(m, "], \"decode_steps\": %d},\n  \"variants\": [", f->decode_steps);
    for (size_t i = 0; i < f->n_variants; i++) {
        fprintf(m, "%s", i ? ", " : "");
        ld_cmp_put_json_string(m, f->variants[i]);
    }
    fprintf(m, "],\n  \"probes\": [\n");
    for (size_t i = 0; i < f->n; i++) {
        const ld_floor_entry *e = &f->entries[i];
        char key[LD_TAG_NAME_MAX + 32];
        ld_key_format(&e->key, key, sizeof key);
        char local[32] = "null";
        if (!isnan(e->local_rel_l2))
            snprintf(local, sizeof local, "%.9g", e->local_rel_l2);
        fprintf(m, "    {\"key\": \"%s\", \"rel_l2\": %.9g, \"rel_l2_nearest\": %.9g, "
                   "\"max_abs\": %.9g, \"ulp_max\": %llu, \"local_rel_l2\": %s}%s\n",
                key, e->rel_l2, e->rel_l2_nearest, e->max_abs, (unsigned long long)e->ulp_max,
                local, i + 1 < f->n ? "," : "");
    }
    fprintf(m, "  ]\n}\n");
    if (fclose(m) != 0) {
        free(buf);
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", path);
    }
    ld_status st = ld_write_file(path, buf, len, err);
    free(buf);
    return st;
}

/* ---- loading -------------------------------------------------------------------------------- */

static ld_status bad(ld_error *err, const char *label, const char *where, const char *what)
{
    return ld_error_set(err, LD_E_INPUT, "%s: %s: %s", label, where, what);
}

static bool get_nonneg(const cJSON *o, const char *name, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
        return false;
    *out = v->valuedouble;
    return true;
}

static ld_status parse_floor(const cJSON *root, ld_floor *f, const char *label, ld_error *err)
{
    static const char *const top[] = {"format", "version", "dtype", "created", "tool", "fingerprint",
                                      "model", "input", "variants", "probes", NULL};
    ld_status st = ld_cmp_json_check_keys(root, top, label, "", err);
    if (st != LD_OK)
        return st;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, LD_FLOOR_FORMAT))
        return bad(err, label, "format", "must be \"" LD_FLOOR_FORMAT "\" (not a noise-floor file?)");
    v = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!cJSON_IsNumber(v) || v->valuedouble != LD_FLOOR_VERSION)
        return bad(err, label, "version", "must be 1");
    v = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    if (!cJSON_IsString(v) || !ld_dtype_parse(v->valuestring, &f->dtype) || f->dtype == LD_F32)
        return bad(err, label, "dtype", "must be \"bf16\" or \"f16\"");
    v = cJSON_GetObjectItemCaseSensitive(root, "fingerprint");
    if (!cJSON_IsString(v))
        return bad(err, label, "fingerprint", "must be a string");
    free(f->fingerprint);
    if (!(f->fingerprint = strdup(v->valuestring)))
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
    v = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(v))
        return bad(err, label, "model", "must be an object");
    free(f->model_json);
    if (!(f->model_json = cJSON_PrintUnformatted(v)))
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
    static const char *const in_keys[] = {"tokens", "decode_steps", NULL};
    if (!cJSON_IsObject(input))
        return bad(err, label, "input", "must be an object");
    if ((st = ld_cmp_json_check_keys(input, in_keys, label, "input", err)) != LD_OK)
        return st;
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(input, "tokens");
    int nt = cJSON_GetArraySize(toks);
    if (!cJSON_IsArray(toks) || nt < 1 || nt > (1 << 24))
        return bad(err, label, "input.tokens", "must be a non-empty array of token ids");
    free(f->tokens);
    if (!(f->tokens = malloc((size_t)nt * sizeof *f->tokens)))
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
    f->n_tokens = 0;
    for (const cJSON *t = toks->child; t; t = t->next) {
        if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble > INT32_MAX ||
            t->valuedouble != (double)(int32_t)t->valuedouble)
            return bad(err, label, "input.tokens", "holds something other than a token id");
        f->tokens[f->n_tokens++] = (int32_t)t->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(input, "decode_steps");
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (1 << 24) ||
        v->valuedouble != (double)(int)v->valuedouble)
        return bad(err, label, "input.decode_steps", "must be a non-negative integer");
    f->decode_steps = (int)v->valuedouble;

    const cJSON *probes = cJSON_GetObjectItemCaseSensitive(root, "probes");
    if (!cJSON_IsArray(probes))
        return bad(err, label, "probes", "must be an array");
    size_t i = 0;
    for (const cJSON *p = probes->child; p; p = p->next, i++) {
        char where[64];
        snprintf(where, sizeof where, "probes[%zu]", i);
        static const char *const keys[] = {"key",     "rel_l2",       "rel_l2_nearest", "max_abs",
                                           "ulp_max", "local_rel_l2", NULL};
        if (!cJSON_IsObject(p))
            return bad(err, label, where, "must be an object");
        if ((st = ld_cmp_json_check_keys(p, keys, label, where, err)) != LD_OK)
            return st;
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(p, "key");
        ld_key key;
        ld_error kerr;
        if (!cJSON_IsString(k) || ld_key_parse(k->valuestring, &key, &kerr) != LD_OK)
            return bad(err, label, where, "key must be a probe key like \"S0.L3.q_norm\"");
        if (ld_floor_find(f, &key))
            return bad(err, label, where, "the key appears twice");
        ld_floor_entry e = {.key = key};
        double ulp;
        if (!get_nonneg(p, "rel_l2", &e.rel_l2) || !get_nonneg(p, "rel_l2_nearest", &e.rel_l2_nearest) ||
            !get_nonneg(p, "max_abs", &e.max_abs) || !get_nonneg(p, "ulp_max", &ulp) ||
            ulp > 1e15 || ulp != floor(ulp))
            return bad(err, label, where,
                       "rel_l2, rel_l2_nearest, max_abs must be finite numbers >= 0 and ulp_max an "
                       "integer >= 0");
        e.ulp_max = (uint64_t)ulp;
        e.local_rel_l2 = NAN;
        const cJSON *lo = cJSON_GetObjectItemCaseSensitive(p, "local_rel_l2");
        if (lo && !cJSON_IsNull(lo) && !get_nonneg(p, "local_rel_l2", &e.local_rel_l2))
            return bad(err, label, where, "local_rel_l2 must be null or a finite number >= 0");
        ld_floor_entry *slot = entry_for(f, &key);
        if (!slot)
            return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
        *slot = e;
    }
    if (f->n == 0)
        return bad(err, label, "probes", "is empty: nothing was calibrated");
    return LD_OK;
}

ld_status ld_floor_load(const char *path, ld_floor **out, ld_error *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    ld_status st = ld_read_file(path, (size_t)256 << 20, &text, &len, err);
    if (st != LD_OK)
        return st;
    cJSON *root = NULL;
    st = ld_cmp_json_parse(text, len, path, &root, err);
    free(text);
    if (st != LD_OK)
        return st;
    ld_floor *f = ld_floor_create(LD_BF16, "", "{}", NULL, 0, 0);
    if (!f) {
        cJSON_Delete(root);
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", path);
    }
    free(f->label);
    f->label = strdup(path);
    st = f->label ? parse_floor(root, f, path, err) : ld_error_set(err, LD_E_NOMEM, "out of memory");
    cJSON_Delete(root);
    if (st != LD_OK) {
        ld_floor_destroy(f);
        return st;
    }
    *out = f;
    return LD_OK;
}

ld_status ld_floor_check_stream(const ld_floor *f, const ld_stream_info *ref, ld_error *err)
{
    if (f->fingerprint[0] && ref->fingerprint && ref->fingerprint[0] &&
        strcmp(f->fingerprint, ref->fingerprint))
        return ld_error_set(err, LD_E_INPUT,
                            "%s: calibrated on weights %s, but the reference stream ran weights %s",
                            f->label, f->fingerprint, ref->fingerprint);
    if (f->n_tokens != ref->n_tokens ||
        memcmp(f->tokens, ref->tokens, f->n_tokens * sizeof *f->tokens) != 0)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: calibrated on another prompt (%zu tokens) than the reference "
                            "stream's (%zu tokens); a floor holds for one input only",
                            f->label, f->n_tokens, ref->n_tokens);
    if (f->decode_steps < ref->decode_steps)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: calibrated over %d decode steps, the reference stream has %d",
                            f->label, f->decode_steps, ref->decode_steps);
    return LD_OK;
}

double ld_floor_ratio(const ld_floor_entry *e, const ld_metrics *m)
{
    if (m->rel_l2 == 0)
        return 0;
    if (e->rel_l2 == 0)
        return INFINITY;
    return m->rel_l2 / e->rel_l2;
}

bool ld_floor_pass(const ld_floor_entry *e, const ld_metrics *m, double k, uint64_t ulp_cap)
{
    double ratio = ld_floor_ratio(e, m);
    if (ratio <= k)
        return true;
    /* A few ULPs of the candidate's own dtype are never a divergence, even where the emulated
     * variants happened to agree exactly (a floor of 0). */
    return m->ulp_max <= ulp_cap;
}

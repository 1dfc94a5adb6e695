/* policy.c — tolerance policies: the built-in defaults per candidate dtype (one table, below) and
 * overrides per tag glob, layer and step read from a JSON file (schemas/policy.schema.json).
 * Not the metrics (metrics.c) nor the verdict logic (ld_judge). */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "compare_internal.h"
#include "util.h"

/* The built-in tolerances, first match wins. Reasoning in docs/compare.md ("Default tolerances");
 * the thresholds judge the whole tensor (rel_l2, cosine), the element check (atol, rtol) only
 * feeds the "outside" fraction, which fails nothing by default (outside = 1). Calibrated against
 * the fault zoo later; change them here and only here. */
#define OFF INFINITY
static const struct {
    ld_dtype dtype;
    const char *tags;
    ld_tolerance tol;
} default_rules[] = {
    /* dtype    tags       rel_l2   cosine        atol   rtol    outside max_abs ulp */
    {LD_F32, "*",         {1e-4,   1.0 - 1e-8,   1e-5,  1e-4,   1.0,    OFF,    OFF}},
    /* Calibrated (docs/compare.md): an honest emulated bf16 qwen3-0.6b reaches rel_l2 0.0226 by
     * layer 25 and 0.0153 on logits; f16 0.0028 and 0.0019. The smallest non-NaN fault of the
     * zoo is 0.079 (bf16) and 0.078 (f16) at its first divergence. */
    {LD_BF16, "logits",   {6e-2,   0.998,        1e-2,  3e-2,   1.0,    OFF,    OFF}},
    {LD_BF16, "*",        {4e-2,   0.999,        1e-3,  1.6e-2, 1.0,    OFF,    OFF}},
    {LD_F16, "logits",    {8e-3,   1.0 - 3e-5,   1e-3,  4e-3,   1.0,    OFF,    OFF}},
    {LD_F16, "*",         {6e-3,   1.0 - 1.6e-5, 1e-4,  2e-3,   1.0,    OFF,    OFF}},
};

/* Most rules and tag globs a policy file may hold. */
#define MAX_RULES 1024
#define MAX_GLOBS 64

enum {
    SET_REL_L2 = 1 << 0,
    SET_COSINE = 1 << 1,
    SET_ATOL = 1 << 2,
    SET_RTOL = 1 << 3,
    SET_OUTSIDE = 1 << 4,
    SET_MAX_ABS = 1 << 5,
    SET_ULP = 1 << 6
};

typedef struct rule {
    char **tags;
    size_t n_tags;
    unsigned dtypes;    /* bit (1 << ld_dtype); 0 = any */
    bool has_layers;    /* a layer range excludes model-level tags */
    ld_ranges layers, steps;
    unsigned set;       /* SET_* fields given */
    ld_tolerance tol;
} rule;

struct ld_policy {
    char *label;
    rule *rules;
    size_t n_rules;
};

void ld_tolerance_default(ld_dtype cand, const char *tag, ld_tolerance *out)
{
    for (size_t i = 0; i < LD_ARRAY_LEN(default_rules); i++) {
        if (default_rules[i].dtype == cand && ld_glob_match(default_rules[i].tags, tag)) {
            *out = default_rules[i].tol;
            return;
        }
    }
    *out = default_rules[0].tol; /* unreachable: every dtype has a "*" row */
}

const char *ld_policy_label(const ld_policy *p) { return p ? p->label : "built-in defaults"; }

void ld_policy_destroy(ld_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_rules; i++) {
        for (size_t j = 0; j < p->rules[i].n_tags; j++)
            free(p->rules[i].tags[j]);
        free(p->rules[i].tags);
    }
    free(p->rules);
    free(p->label);
    free(p);
}

static bool rule_matches(const rule *r, const ld_key *key, ld_dtype cand)
{
    if (r->dtypes && !(r->dtypes & (1u << cand)))
        return false;
    if (r->has_layers && (key->layer == LD_NO_LAYER || !ld_ranges_contains(&r->layers, key->layer)))
        return false;
    if (!ld_ranges_contains(&r->steps, key->step))
        return false;
    for (size_t i = 0; i < r->n_tags; i++)
        if (ld_glob_match(r->tags[i], key->tag))
            return true;
    return false;
}

void ld_policy_resolve(const ld_policy *p, const ld_key *key, ld_dtype cand, ld_tolerance *out)
{
    ld_tolerance_default(cand, key->tag, out);
    if (!p)
        return;
    for (size_t i = 0; i < p->n_rules; i++) {
        const rule *r = &p->rules[i];
        if (!rule_matches(r, key, cand))
            continue;
        if (r->set & SET_REL_L2)
            out->rel_l2 = r->tol.rel_l2;
        if (r->set & SET_COSINE)
            out->cosine = r->tol.cosine;
        if (r->set & SET_ATOL)
            out->atol = r->tol.atol;
        if (r->set & SET_RTOL)
            out->rtol = r->tol.rtol;
        if (r->set & SET_OUTSIDE)
            out->outside = r->tol.outside;
        if (r->set & SET_MAX_ABS)
            out->max_abs = r->tol.max_abs;
        if (r->set & SET_ULP)
            out->ulp = r->tol.ulp;
    }
}

/* A number field in [lo, hi]; null allowed (meaning "off": +inf) when nullable. */
static ld_status get_number(const cJSON *v, const char *label, const char *where, const char *name,
                            double lo, double hi, bool nullable, double *out, ld_error *err)
{
    if (nullable && cJSON_IsNull(v)) {
        *out = INFINITY;
        return LD_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return ld_error_set(err, LD_E_INPUT, "%s: %s.%s: must be a number in [%g, %g]%s", label,
                            where, name, lo, hi, nullable ? " or null (off)" : "");
    *out = v->valuedouble;
    return LD_OK;
}

/* "tags": a glob or a list of globs. */
static ld_status get_tags(const cJSON *v, const char *label, const char *where, rule *r,
                          ld_error *err)
{
    size_t n = cJSON_IsString(v) ? 1 : (cJSON_IsArray(v) ? (size_t)cJSON_GetArraySize(v) : 0);
    if (n == 0 || n > MAX_GLOBS)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: %s.tags: must be a tag glob or a list of 1 to %d globs", label,
                            where, MAX_GLOBS);
    r->tags = calloc(n, sizeof *r->tags);
    if (!r->tags)
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
    const cJSON *item = cJSON_IsString(v) ? v : v->child;
    for (size_t i = 0; i < n; i++, item = item->next) {
        if (!cJSON_IsString(item) || !item->valuestring[0] ||
            strlen(item->valuestring) > LD_TAG_NAME_MAX)
            return ld_error_set(err, LD_E_INPUT, "%s: %s.tags: item %zu must be a non-empty glob "
                                "of at most %d characters", label, where, i, LD_TAG_NAME_MAX);
        r->tags[i] = strdup(item->valuestring);
        if (!r->tags[i])
            return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
        r->n_tags = i + 1;
    }
    return LD_OK;
}

/* "dtype": "bf16" or a list of them. */
static ld_status get_dtypes(const cJSON *v, const char *label, const char *where, rule *r,
                            ld_error *err)
{
    const cJSON *item = cJSON_IsString(v) ? v : (cJSON_IsArray(v) ? v->child : NULL);
    if (!item)
        return ld_error_set(err, LD_E_INPUT, "%s: %s.dtype: must be \"f32\", \"bf16\", \"f16\" "
                            "or a list of them", label, where);
    for (; item; item = cJSON_IsString(v) ? NULL : item->next) {
        ld_dtype t;
        if (!cJSON_IsString(item) ||
            !(strcmp(item->valuestring, "f32") == 0 || strcmp(item->valuestring, "bf16") == 0 ||
              strcmp(item->valuestring, "f16") == 0) ||
            !ld_dtype_parse(item->valuestring, &t))
            return ld_error_set(err, LD_E_INPUT, "%s: %s.dtype: must be \"f32\", \"bf16\" or "
                                "\"f16\"", label, where);
        r->dtypes |= 1u << t;
    }
    return LD_OK;
}

static ld_status get_ranges(const cJSON *v, const char *label, const char *where, const char *name,
                            ld_ranges *out, ld_error *err)
{
    char buf[32];
    const char *s = NULL;
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 1e9 &&
        v->valuedouble == (double)(int)v->valuedouble) {
        snprintf(buf, sizeof buf, "%d", (int)v->valuedouble);
        s = buf;
    } else if (cJSON_IsString(v) && v->valuestring[0]) {
        s = v->valuestring;
    }
    ld_error sub;
    if (!s || ld_ranges_parse(s, out, &sub) != LD_OK)
        return ld_error_set(err, LD_E_INPUT, "%s: %s.%s: must be a number or a range list like "
                            "\"0-3,7\" or \"10-\"", label, where, name);
    return LD_OK;
}

static ld_status parse_rule(const cJSON *o, const char *label, size_t index, rule *r,
                            ld_error *err)
{
    static const char *const allowed[] = {"tags", "dtype", "layers", "steps", "rel_l2", "cosine",
                                          "atol", "rtol", "outside", "max_abs", "ulp", "comment",
                                          NULL};
    char where[48];
    snprintf(where, sizeof where, "rules[%zu]", index);
    if (!cJSON_IsObject(o))
        return ld_error_set(err, LD_E_INPUT, "%s: %s: must be an object", label, where);
    ld_status st = ld_cmp_json_check_keys(o, allowed, label, where, err);
    if (st != LD_OK)
        return st;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "tags");
    if (!v)
        return ld_error_set(err, LD_E_INPUT, "%s: %s.tags: missing (use \"*\" for every tag)",
                            label, where);
    if ((st = get_tags(v, label, where, r, err)) != LD_OK)
        return st;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "dtype")) &&
        (st = get_dtypes(v, label, where, r, err)) != LD_OK)
        return st;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "layers"))) {
        if ((st = get_ranges(v, label, where, "layers", &r->layers, err)) != LD_OK)
            return st;
        r->has_layers = true;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "steps")) &&
        (st = get_ranges(v, label, where, "steps", &r->steps, err)) != LD_OK)
        return st;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "comment")) && !cJSON_IsString(v))
        return ld_error_set(err, LD_E_INPUT, "%s: %s.comment: must be a string", label, where);
    static const struct {
        const char *name;
        unsigned bit;
        double lo, hi;
        bool nullable;
        size_t offset;
    } fields[] = {
        {"rel_l2", SET_REL_L2, 0, 1e300, false, offsetof(ld_tolerance, rel_l2)},
        {"cosine", SET_COSINE, -1, 1, false, offsetof(ld_tolerance, cosine)},
        {"atol", SET_ATOL, 0, 1e300, false, offsetof(ld_tolerance, atol)},
        {"rtol", SET_RTOL, 0, 1e300, false, offsetof(ld_tolerance, rtol)},
        {"outside", SET_OUTSIDE, 0, 1, false, offsetof(ld_tolerance, outside)},
        {"max_abs", SET_MAX_ABS, 0, 1e300, true, offsetof(ld_tolerance, max_abs)},
        {"ulp", SET_ULP, 0, 1e300, true, offsetof(ld_tolerance, ulp)},
    };
    for (size_t i = 0; i < LD_ARRAY_LEN(fields); i++) {
        v = cJSON_GetObjectItemCaseSensitive(o, fields[i].name);
        if (!v)
            continue;
        double x = 0;
        st = get_number(v, label, where, fields[i].name, fields[i].lo, fields[i].hi,
                        fields[i].nullable, &x, err);
        if (st != LD_OK)
            return st;
        memcpy((char *)&r->tol + fields[i].offset, &x, sizeof x);
        r->set |= fields[i].bit;
    }
    if (!r->set)
        return ld_error_set(err, LD_E_INPUT, "%s: %s: sets no tolerance (rel_l2, cosine, atol, "
                            "rtol, outside, max_abs or ulp)", label, where);
    return LD_OK;
}

ld_status ld_policy_parse(const char *text, size_t len, const char *label, ld_policy **out,
                          ld_error *err)
{
    *out = NULL;
    cJSON *root = NULL;
    ld_status st = ld_cmp_json_parse(text, len, label, &root, err);
    if (st != LD_OK)
        return st;
    static const char *const allowed[] = {"$schema", "version", "description", "rules", NULL};
    ld_policy *p = calloc(1, sizeof *p);
    if (!p) {
        cJSON_Delete(root);
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
    }
    p->label = strdup(label);
    if (!p->label) {
        st = ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
        goto done;
    }
    if ((st = ld_cmp_json_check_keys(root, allowed, label, "", err)) != LD_OK)
        goto done;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!cJSON_IsNumber(v) || v->valuedouble != 1) {
        st = ld_error_set(err, LD_E_INPUT, "%s: version: must be 1", label);
        goto done;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "description")) && !cJSON_IsString(v)) {
        st = ld_error_set(err, LD_E_INPUT, "%s: description: must be a string", label);
        goto done;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "$schema")) && !cJSON_IsString(v)) {
        st = ld_error_set(err, LD_E_INPUT, "%s: $schema: must be a string", label);
        goto done;
    }
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(root, "rules");
    if (!cJSON_IsArray(rules)) {
        st = ld_error_set(err, LD_E_INPUT, "%s: rules: missing or not a list", label);
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(rules);
    if (n > MAX_RULES) {
        st = ld_error_set(err, LD_E_INPUT, "%s: rules: %zu rules, at most %d allowed", label, n,
                          MAX_RULES);
        goto done;
    }
    p->rules = calloc(n ? n : 1, sizeof *p->rules);
    if (!p->rules) {
        st = ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
        goto done;
    }
    size_t i = 0;
    for (const cJSON *o = rules->child; o; o = o->next, i++) {
        p->n_rules = i + 1;
        if ((st = parse_rule(o, label, i, &p->rules[i], err)) != LD_OK)
            goto done;
    }
done:
    cJSON_Delete(root);
    if (st != LD_OK) {
        ld_policy_destroy(p);
        return st;
    }
    *out = p;
    return LD_OK;
}

ld_status ld_policy_load(const char *path, ld_policy **out, ld_error *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    ld_status st = ld_read_file(path, LD_CMP_CONFIG_MAX_BYTES, &text, &len, err);
    if (st != LD_OK)
        return st;
    st = ld_policy_parse(text, len, path, out, err);
    free(text);
    return st;
}

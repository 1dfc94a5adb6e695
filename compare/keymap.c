/* keymap.c — --map: renames the tags of a foreign probe stream to ours, with the layer (and step)
 * number captured from the foreign name when it carries one ("layer_3_attn_q_proj_raw" -> layer 3,
 * q_proj). Format in docs/compare.md and schemas/map.schema.json. Not the alignment itself. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare_internal.h"
#include "util.h"

#define MAX_RULES 4096
#define MAX_PATTERN 256
#define MAX_STARS 2          /* '*' per pattern: keeps matching cheap on hostile names */
#define MAX_NUMBER 1000000   /* largest layer or step a placeholder captures */

typedef struct map_rule {
    char *from;
    char tag[LD_TAG_NAME_MAX + 1];
    bool drop;
    bool reshape;
    bool has_layer;   /* "layer" given: a fixed layer (LD_NO_LAYER for null) */
    int layer;
    int layer_offset;
} map_rule;

struct ld_keymap {
    map_rule *rules;
    size_t n_rules;
};

void ld_keymap_destroy(ld_keymap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_rules; i++)
        free(m->rules[i].from);
    free(m->rules);
    free(m);
}

/* Captures of one match attempt. */
typedef struct caps {
    int layer, step; /* -1: not captured */
} caps;

/* Matches the whole of s against p: literal characters, '?' one character, '*' any run, and the
 * placeholders "{layer}" / "{step}" one to seven digits each. Backtracks; MAX_STARS bounds it. */
static bool match(const char *p, const char *s, caps *c)
{
    for (;;) {
        if (*p == '\0')
            return *s == '\0';
        if (*p == '*') {
            for (const char *t = s;; t++) {
                if (match(p + 1, t, c))
                    return true;
                if (*t == '\0')
                    return false;
            }
        }
        if (*p == '{') {
            bool is_layer = strncmp(p, "{layer}", 7) == 0;
            const char *rest = p + (is_layer ? 7 : 6);
            size_t digits = 0;
            while (digits < 7 && s[digits] >= '0' && s[digits] <= '9')
                digits++;
            for (size_t k = digits; k >= 1; k--) { /* longest first, then shorter */
                int v = 0;
                for (size_t i = 0; i < k; i++)
                    v = v * 10 + (s[i] - '0');
                caps saved = *c;
                if (is_layer)
                    c->layer = v;
                else
                    c->step = v;
                if (v <= MAX_NUMBER && match(rest, s + k, c))
                    return true;
                *c = saved;
            }
            return false;
        }
        if (*s == '\0' || (*p != '?' && *p != *s))
            return false;
        p++;
        s++;
    }
}

ld_map_action ld_keymap_apply(const ld_keymap *m, int step, int layer, const char *tag,
                              ld_key *out, bool *reshape)
{
    out->step = step;
    out->layer = layer;
    snprintf(out->tag, sizeof out->tag, "%s", tag);
    if (reshape)
        *reshape = false;
    if (!m)
        return LD_MAP_KEEP;
    for (size_t i = 0; i < m->n_rules; i++) {
        const map_rule *r = &m->rules[i];
        caps c = {-1, -1};
        if (!match(r->from, tag, &c))
            continue;
        if (r->drop)
            return LD_MAP_DROP;
        snprintf(out->tag, sizeof out->tag, "%s", r->tag);
        if (c.layer >= 0)
            out->layer = c.layer + r->layer_offset;
        else if (r->has_layer)
            out->layer = r->layer;
        if (out->layer < LD_NO_LAYER)
            out->layer = LD_NO_LAYER; /* an offset below zero: no such layer */
        if (c.step >= 0)
            out->step = c.step;
        if (reshape)
            *reshape = r->reshape;
        return LD_MAP_RENAME;
    }
    return LD_MAP_KEEP;
}

/* Checks a pattern: length, placeholders spelled right and used once each, few stars. */
static ld_status check_pattern(const char *from, const char *label, const char *where,
                               ld_error *err)
{
    size_t len = strlen(from);
    if (len == 0 || len > MAX_PATTERN)
        return ld_error_set(err, LD_E_INPUT, "%s: %s.from: must hold 1 to %d characters", label,
                            where, MAX_PATTERN);
    int stars = 0, layers = 0, steps = 0;
    for (const char *p = from; *p; p++) {
        if (*p == '*') {
            stars++;
        } else if (*p == '{') {
            if (!strncmp(p, "{layer}", 7)) {
                layers++;
                p += 6;
            } else if (!strncmp(p, "{step}", 6)) {
                steps++;
                p += 5;
            } else {
                return ld_error_set(err, LD_E_INPUT, "%s: %s.from: '{' starts neither {layer} "
                                    "nor {step}", label, where);
            }
        } else if (*p == '}') {
            return ld_error_set(err, LD_E_INPUT, "%s: %s.from: stray '}'", label, where);
        }
    }
    if (stars > MAX_STARS || layers > 1 || steps > 1)
        return ld_error_set(err, LD_E_INPUT, "%s: %s.from: at most %d '*', one {layer} and one "
                            "{step} per pattern", label, where, MAX_STARS);
    return LD_OK;
}

static ld_status parse_rule(const cJSON *o, const char *label, size_t index, map_rule *r,
                            ld_error *err)
{
    static const char *const allowed[] = {"from", "tag", "layer", "layer_offset", "reshape",
                                          "drop", "comment", NULL};
    char where[48];
    snprintf(where, sizeof where, "rules[%zu]", index);
    if (!cJSON_IsObject(o))
        return ld_error_set(err, LD_E_INPUT, "%s: %s: must be an object", label, where);
    ld_status st = ld_cmp_json_check_keys(o, allowed, label, where, err);
    if (st != LD_OK)
        return st;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "from");
    if (!cJSON_IsString(v))
        return ld_error_set(err, LD_E_INPUT, "%s: %s.from: missing or not a string", label, where);
    if ((st = check_pattern(v->valuestring, label, where, err)) != LD_OK)
        return st;
    r->from = strdup(v->valuestring);
    if (!r->from)
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "drop"))) {
        if (!cJSON_IsBool(v))
            return ld_error_set(err, LD_E_INPUT, "%s: %s.drop: must be true or false", label,
                                where);
        r->drop = cJSON_IsTrue(v);
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "tag");
    if (v) {
        if (!cJSON_IsString(v) || !ld_tag_name_valid(v->valuestring))
            return ld_error_set(err, LD_E_INPUT, "%s: %s.tag: must be a tag name (1 to %d of "
                                "A-Z a-z 0-9 _ . : / + -)", label, where, LD_TAG_NAME_MAX);
        snprintf(r->tag, sizeof r->tag, "%s", v->valuestring);
    } else if (!r->drop) {
        return ld_error_set(err, LD_E_INPUT, "%s: %s.tag: missing (or set \"drop\": true)", label,
                            where);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "layer"))) {
        if (cJSON_IsNull(v)) {
            r->layer = LD_NO_LAYER;
        } else if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= MAX_NUMBER &&
                   v->valuedouble == (double)(int)v->valuedouble) {
            r->layer = (int)v->valuedouble;
        } else {
            return ld_error_set(err, LD_E_INPUT, "%s: %s.layer: must be an integer in [0, %d] or "
                                "null (model-level)", label, where, MAX_NUMBER);
        }
        r->has_layer = true;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "layer_offset"))) {
        if (!cJSON_IsNumber(v) || v->valuedouble < -MAX_NUMBER || v->valuedouble > MAX_NUMBER ||
            v->valuedouble != (double)(int)v->valuedouble)
            return ld_error_set(err, LD_E_INPUT, "%s: %s.layer_offset: must be an integer in "
                                "[-%d, %d]", label, where, MAX_NUMBER, MAX_NUMBER);
        r->layer_offset = (int)v->valuedouble;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "reshape"))) {
        if (!cJSON_IsBool(v))
            return ld_error_set(err, LD_E_INPUT, "%s: %s.reshape: must be true or false", label,
                                where);
        r->reshape = cJSON_IsTrue(v);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "comment")) && !cJSON_IsString(v))
        return ld_error_set(err, LD_E_INPUT, "%s: %s.comment: must be a string", label, where);
    return LD_OK;
}

ld_status ld_keymap_parse(const char *text, size_t len, const char *label, ld_keymap **out,
                          ld_error *err)
{
    *out = NULL;
    cJSON *root = NULL;
    ld_status st = ld_cmp_json_parse(text, len, label, &root, err);
    if (st != LD_OK)
        return st;
    static const char *const allowed[] = {"$schema", "version", "description", "rules", NULL};
    ld_keymap *m = calloc(1, sizeof *m);
    if (!m) {
        cJSON_Delete(root);
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
    }
    const cJSON *v, *rules;
    size_t n, i = 0;
    if ((st = ld_cmp_json_check_keys(root, allowed, label, "", err)) != LD_OK)
        goto done;
    v = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!cJSON_IsNumber(v) || v->valuedouble != 1) {
        st = ld_error_set(err, LD_E_INPUT, "%s: version: must be 1", label);
        goto done;
    }
    if (((v = cJSON_GetObjectItemCaseSensitive(root, "description")) && !cJSON_IsString(v)) ||
        ((v = cJSON_GetObjectItemCaseSensitive(root, "$schema")) && !cJSON_IsString(v))) {
        st = ld_error_set(err, LD_E_INPUT, "%s: %s: must be a string", label, v->string);
        goto done;
    }
    rules = cJSON_GetObjectItemCaseSensitive(root, "rules");
    if (!cJSON_IsArray(rules) || !rules->child) {
        st = ld_error_set(err, LD_E_INPUT, "%s: rules: missing, empty or not a list", label);
        goto done;
    }
    n = (size_t)cJSON_GetArraySize(rules);
    if (n > MAX_RULES) {
        st = ld_error_set(err, LD_E_INPUT, "%s: rules: %zu rules, at most %d allowed", label, n,
                          MAX_RULES);
        goto done;
    }
    m->rules = calloc(n, sizeof *m->rules);
    if (!m->rules) {
        st = ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
        goto done;
    }
    for (const cJSON *o = rules->child; o; o = o->next, i++) {
        m->n_rules = i + 1;
        if ((st = parse_rule(o, label, i, &m->rules[i], err)) != LD_OK)
            goto done;
    }
done:
    cJSON_Delete(root);
    if (st != LD_OK) {
        ld_keymap_destroy(m);
        return st;
    }
    *out = m;
    return LD_OK;
}

ld_status ld_keymap_load(const char *path, ld_keymap **out, ld_error *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    ld_status st = ld_read_file(path, LD_CMP_CONFIG_MAX_BYTES, &text, &len, err);
    if (st != LD_OK)
        return st;
    st = ld_keymap_parse(text, len, path, out, err);
    free(text);
    return st;
}

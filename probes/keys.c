/* keys.c — probe keys: "S2.L3.q_norm" text form, parsing and execution order (layerdiff/probes.h).
 * Not the filter logic of the writer (writer.c). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layerdiff/probes.h"
#include "record.h"
#include "util.h"

const char *const ld_filter_fields[3] = {"tags", "layers", "steps"};

bool ld_rec_tags_match(const char *list, const char *tag)
{
    if (!list || !*list)
        return true;
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char glob[2 * LD_TAG_NAME_MAX + 2];
        /* a glob longer than this buffer matches no tag name but through '*': copied whole */
        char *g = n < sizeof glob ? glob : malloc(n + 1);
        if (g) {
            memcpy(g, p, n);
            g[n] = '\0';
            bool hit = ld_glob_match(g, tag);
            if (g != glob)
                free(g);
            if (hit)
                return true;
        }
        if (!comma)
            return false;
        p = comma + 1;
    }
}

/* Reads "<letter><digits>." at *p and advances past the dot: 1. Not of that form: 0, nothing
 * consumed. Of that form but the number out of range: -1. */
static int prefix_number(const char **p, char letter, int *out)
{
    const char *s = *p;
    if (s[0] != letter || s[1] < '0' || s[1] > '9')
        return 0;
    const char *dot = s + 1;
    while (*dot >= '0' && *dot <= '9')
        dot++;
    if (*dot != '.')
        return 0;
    char digits[16];
    size_t n = (size_t)(dot - (s + 1));
    if (n >= sizeof digits)
        return -1;
    memcpy(digits, s + 1, n);
    digits[n] = '\0';
    if (!ld_parse_int(digits, 0, INT_MAX, out))
        return -1;
    *p = dot + 1;
    return 1;
}

ld_status ld_key_parse(const char *text, ld_key *out, ld_error *err)
{
    if (!text || !*text)
        return ld_error_set(err, LD_E_USAGE, "empty probe key (expected e.g. S0.L3.q_norm)");
    const char *p = text;
    int step = 0, layer = LD_NO_LAYER;
    if (prefix_number(&p, 'S', &step) < 0 || prefix_number(&p, 'L', &layer) < 0)
        return ld_error_set(err, LD_E_USAGE, "bad probe key '%s': step or layer out of range",
                            text);
    if (!ld_tag_name_valid(p))
        return ld_error_set(err, LD_E_USAGE,
                            "bad probe key '%s': '%s' is not a tag name (1 to %d characters of "
                            "A-Z a-z 0-9 _ . : / + -); keys read like S0.L3.q_norm, L3.q_norm "
                            "or logits",
                            text, p, LD_TAG_NAME_MAX);
    ld_tag t = ld_tag_from_name(p);
    if (t != LD_TAG_UNKNOWN && ld_tag_per_layer(t) && layer == LD_NO_LAYER)
        return ld_error_set(err, LD_E_USAGE, "bad probe key '%s': %s is a per-layer tag; name the "
                            "layer, e.g. L0.%s", text, p, p);
    if (t != LD_TAG_UNKNOWN && !ld_tag_per_layer(t) && layer != LD_NO_LAYER)
        return ld_error_set(err, LD_E_USAGE,
                            "bad probe key '%s': %s is a model-level tag and has no layer", text, p);
    out->step = step;
    out->layer = layer;
    snprintf(out->tag, sizeof out->tag, "%s", p);
    return LD_OK;
}

char *ld_key_format(const ld_key *key, char *buf, size_t size)
{
    if (!buf || size == 0)
        return buf;
    if (key->layer == LD_NO_LAYER)
        snprintf(buf, size, "S%d.%s", key->step, key->tag);
    else
        snprintf(buf, size, "S%d.L%d.%s", key->step, key->layer, key->tag);
    return buf;
}

/* Position within a step: embed, then each layer's tags in table order (custom tags of a layer
 * after the table's), then final_norm and logits, then custom model-level tags. */
static void exec_rank(const ld_key *k, int *group, int *layer, int *tag)
{
    ld_tag t = ld_tag_from_name(k->tag);
    *layer = k->layer;
    *tag = t == LD_TAG_UNKNOWN ? LD_TAG_COUNT : (int)t;
    if (k->layer != LD_NO_LAYER)
        *group = 1;
    else if (t == LD_TAG_EMBED)
        *group = 0;
    else
        *group = t == LD_TAG_UNKNOWN ? 3 : 2;
}

int ld_key_cmp_exec(const ld_key *a, const ld_key *b)
{
    if (a->step != b->step)
        return a->step < b->step ? -1 : 1;
    int ga, la, ta, gb, lb, tb;
    exec_rank(a, &ga, &la, &ta);
    exec_rank(b, &gb, &lb, &tb);
    if (ga != gb)
        return ga < gb ? -1 : 1;
    if (la != lb)
        return la < lb ? -1 : 1;
    if (ta != tb)
        return ta < tb ? -1 : 1;
    int c = strcmp(a->tag, b->tag);
    return c < 0 ? -1 : c > 0;
}

/* faults.c — parsing and lookup of fault specs (faults.h). */
#include "faults.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const struct {
    const char *name;
    ld_fault_value vk;
    const char *tag;
    int step;
    const char *what;
} fault_info[] = {
#define LD_FAULT_INFO_(e, name, vk, tag, step, what) {name, vk, tag, step, what},
    LD_FAULT_TABLE(LD_FAULT_INFO_)
#undef LD_FAULT_INFO_
};

const char *ld_fault_name(ld_fault_kind k) { return fault_info[k].name; }
const char *ld_fault_description(ld_fault_kind k) { return fault_info[k].what; }
ld_fault_value ld_fault_value_kind(ld_fault_kind k) { return fault_info[k].vk; }

const char *ld_fault_expected_tag(const ld_fault *f)
{
    return f->kind == LD_FAULT_NAN ? ld_tag_name(f->tag) : fault_info[f->kind].tag;
}

int ld_fault_expected_step(const ld_fault *f) { return fault_info[f->kind].step; }

const char *ld_fault_list_text(void)
{
    static char text[4096];
    if (text[0])
        return text;
    size_t used = 0;
    for (int k = 0; k < LD_FAULT_COUNT; k++) {
        char name[48];
        const char *suffix = fault_info[k].vk == LD_FV_INT    ? "=N"
                             : fault_info[k].vk == LD_FV_REAL ? "=VALUE"
                             : fault_info[k].vk == LD_FV_TAG  ? "=TAG"
                                                              : "";
        snprintf(name, sizeof name, "%s%s", fault_info[k].name, suffix);
        int n = snprintf(text + used, sizeof text - used, "  %-24s %s\n", name, fault_info[k].what);
        if (n < 0 || (size_t)n >= sizeof text - used)
            break;
        used += (size_t)n;
    }
    return text;
}

static ld_status unknown_fault(const char *spec, const char *name, ld_error *err)
{
    char names[1024];
    size_t used = 0;
    names[0] = '\0';
    for (int k = 0; k < LD_FAULT_COUNT; k++) {
        int n = snprintf(names + used, sizeof names - used, "%s%s", k ? ", " : "",
                         fault_info[k].name);
        if (n < 0 || (size_t)n >= sizeof names - used)
            break;
        used += (size_t)n;
    }
    return ld_error_set(err, LD_E_USAGE, "unknown fault '%s' in '%s'; valid faults: %s", name, spec,
                        names);
}

ld_status ld_fault_parse(const char *spec, ld_fault *out, ld_error *err)
{
    memset(out, 0, sizeof *out);
    out->layer = LD_ALL_LAYERS;
    out->tag = LD_TAG_UNKNOWN;
    char buf[128];
    if (strlen(spec) >= sizeof buf)
        return ld_error_set(err, LD_E_USAGE, "fault spec '%.40s...' is too long", spec);
    strcpy(buf, spec);

    /* NAME, then '@LAYER' and '=VALUE' in either order. */
    char *at = strchr(buf, '@');
    char *eq = strchr(buf, '=');
    char *value = NULL, *layer = NULL;
    if (at)
        *at = '\0', layer = at + 1;
    if (eq)
        *eq = '\0', value = eq + 1;
    /* Whichever came second was cut off the first one's text already; the first cut ends NAME. */
    const char *name = buf;

    int kind = -1;
    for (int k = 0; k < LD_FAULT_COUNT; k++)
        if (!strcmp(name, fault_info[k].name))
            kind = k;
    if (kind < 0)
        return unknown_fault(spec, name, err);
    out->kind = (ld_fault_kind)kind;

    if (layer && !ld_parse_int(layer, 0, INT_MAX, &out->layer))
        return ld_error_set(err, LD_E_USAGE, "fault '%s': layer '%s' is not a non-negative integer",
                            spec, layer);

    switch (fault_info[kind].vk) {
    case LD_FV_NONE:
        if (value)
            return ld_error_set(err, LD_E_USAGE, "fault '%s': %s takes no value", spec, name);
        break;
    case LD_FV_INT:
        if (!value || !ld_parse_int(value, 1, 1 << 20, &out->ivalue))
            return ld_error_set(err, LD_E_USAGE, "fault '%s': %s needs a positive integer value (%s=N)",
                                spec, name, name);
        break;
    case LD_FV_REAL:
        if (!value || !ld_parse_double(value, &out->value) || !(out->value > 0))
            return ld_error_set(err, LD_E_USAGE,
                                "fault '%s': %s needs a positive finite value (%s=VALUE)", spec,
                                name, name);
        break;
    case LD_FV_TAG:
        if (!value || (out->tag = ld_tag_from_name(value)) == LD_TAG_UNKNOWN)
            return ld_error_set(err, LD_E_USAGE,
                                "fault '%s': %s needs a probe tag (%s=TAG, e.g. nan=q_norm)", spec,
                                name, name);
        if (!ld_tag_per_layer(out->tag) && layer)
            return ld_error_set(err, LD_E_USAGE, "fault '%s': %s is a model-level tag, it has no layer",
                                spec, value);
        break;
    }

    /* Canonical text: NAME[@LAYER][=VALUE]. */
    char lay[24] = "", val[48] = "";
    if (out->layer != LD_ALL_LAYERS)
        snprintf(lay, sizeof lay, "@%d", out->layer);
    if (fault_info[kind].vk == LD_FV_INT)
        snprintf(val, sizeof val, "=%d", out->ivalue);
    else if (fault_info[kind].vk == LD_FV_REAL) {
        /* The shortest text that reads back as the same double: 1e-05, not 1.0000000000000001e-05. */
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(val, sizeof val, "=%.*g", prec, out->value);
            if (strtod(val + 1, NULL) == out->value)
                break;
        }
    }
    else if (fault_info[kind].vk == LD_FV_TAG)
        snprintf(val, sizeof val, "=%s", ld_tag_name(out->tag));
    snprintf(out->text, sizeof out->text, "%s%s%s", name, lay, val);
    return LD_OK;
}

ld_status ld_fault_set_add(ld_fault_set *set, const char *spec, ld_error *err)
{
    if (set->n >= LD_MAX_FAULTS)
        return ld_error_set(err, LD_E_USAGE, "more than %d faults", LD_MAX_FAULTS);
    ld_fault f;
    ld_status st = ld_fault_parse(spec, &f, err);
    if (st != LD_OK)
        return st;
    for (int i = 0; i < set->n; i++) {
        const ld_fault *g = &set->items[i];
        bool same_target = f.kind == LD_FAULT_NAN ? g->kind == f.kind && g->tag == f.tag : g->kind == f.kind;
        if (same_target && (g->layer == f.layer || g->layer == LD_ALL_LAYERS || f.layer == LD_ALL_LAYERS))
            return ld_error_set(err, LD_E_USAGE, "fault '%s' overlaps '%s' given before", f.text,
                                g->text);
    }
    set->items[set->n++] = f;
    return LD_OK;
}

ld_status ld_fault_set_validate(const ld_fault_set *set, const ld_config *cfg, ld_error *err)
{
    for (int i = 0; i < set->n; i++) {
        const ld_fault *f = &set->items[i];
        if (f->layer != LD_ALL_LAYERS && f->layer >= cfg->num_layers)
            return ld_error_set(err, LD_E_USAGE, "fault '%s': layer %d out of range, the model has "
                                "layers 0-%d", f->text, f->layer, cfg->num_layers - 1);
        if (f->kind == LD_FAULT_QK_NORM_BLOCK && f->ivalue > cfg->head_dim)
            return ld_error_set(err, LD_E_USAGE, "fault '%s': block %d is larger than head_dim %d",
                                f->text, f->ivalue, cfg->head_dim);
        if (f->kind == LD_FAULT_O_PROJ_WEIGHT_SHIFT && cfg->num_layers < 2)
            return ld_error_set(err, LD_E_USAGE, "fault '%s' needs a model of at least 2 layers",
                                f->text);
    }
    return LD_OK;
}

const ld_fault *ld_fault_at(const ld_fault_set *set, ld_fault_kind kind, int layer)
{
    if (!set)
        return NULL;
    for (int i = 0; i < set->n; i++) {
        const ld_fault *f = &set->items[i];
        if (f->kind == kind && (f->layer == LD_ALL_LAYERS || f->layer == layer))
            return f;
    }
    return NULL;
}

const ld_fault *ld_fault_nan_at(const ld_fault_set *set, ld_tag tag, int layer)
{
    if (!set)
        return NULL;
    for (int i = 0; i < set->n; i++) {
        const ld_fault *f = &set->items[i];
        if (f->kind == LD_FAULT_NAN && f->tag == tag &&
            (f->layer == LD_ALL_LAYERS || f->layer == layer))
            return f;
    }
    return NULL;
}

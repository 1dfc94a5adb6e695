/* tags.c — the tag table of layerdiff/tags.h as data, and what derives from it: shapes in model
 * dimensions and the keys an op reads. Not here: the records (reader.c, writer.c). */
#include <stdio.h>
#include <string.h>

#include "layerdiff/probes.h"

#define LD_TAG_INPUT_LIST_(...) __VA_ARGS__

static const struct {
    const char *name;
    bool per_layer;
    ld_shape_kind shape;
    ld_family family;
    const char *op;
    ld_tag_input inputs[LD_TAG_MAX_INPUTS + 1]; /* ended by LD_INPUT_END */
} tag_info[] = {
#define LD_TAG_INFO_(e, name, per_layer, shape, family, op, inputs)                                \
    {name, per_layer, shape, LD_FAMILY_##family, op, {LD_TAG_INPUT_LIST_ inputs}},
    LD_TAG_TABLE(LD_TAG_INFO_)
#undef LD_TAG_INFO_
};

static const char *const family_title[] = {
#define LD_FAMILY_TITLE_(e, title) title,
    LD_FAMILY_TABLE(LD_FAMILY_TITLE_)
#undef LD_FAMILY_TITLE_
};

static bool in_table(ld_tag t) { return (int)t >= 0 && t < LD_TAG_COUNT; }

const char *ld_tag_name(ld_tag t)
{
    if (!in_table(t))
        return NULL;
    return tag_info[t].name;
}

ld_tag ld_tag_from_name(const char *name)
{
    for (int i = 0; i < LD_TAG_COUNT; i++)
        if (!strcmp(tag_info[i].name, name))
            return (ld_tag)i;
    return LD_TAG_UNKNOWN;
}

bool ld_tag_per_layer(ld_tag t) { return in_table(t) && tag_info[t].per_layer; }

ld_shape_kind ld_tag_shape(ld_tag t) { return in_table(t) ? tag_info[t].shape : LD_SHAPE_T_H; }

bool ld_tag_name_valid(const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == ':' || c == '/' || c == '+' || c == '-';
        if (!ok || n >= LD_TAG_NAME_MAX)
            return false;
    }
    return n > 0;
}

size_t ld_tag_width(ld_tag t, const ld_tag_sizes *z)
{
    switch (ld_tag_shape(t)) {
    case LD_SHAPE_T_HQ_D: return z->Hq * z->D;
    case LD_SHAPE_T_HKV_D: return z->Hkv * z->D;
    case LD_SHAPE_T_I: return z->I;
    case LD_SHAPE_T_V: return z->V;
    case LD_SHAPE_T_H: break;
    }
    return z->H;
}

int ld_tag_dims(ld_tag t, const ld_tag_sizes *z, size_t T, int64_t shape[3])
{
    shape[0] = (int64_t)T;
    shape[2] = 0;
    switch (ld_tag_shape(t)) {
    case LD_SHAPE_T_HQ_D: shape[1] = (int64_t)z->Hq, shape[2] = (int64_t)z->D; return 3;
    case LD_SHAPE_T_HKV_D: shape[1] = (int64_t)z->Hkv, shape[2] = (int64_t)z->D; return 3;
    default: shape[1] = (int64_t)ld_tag_width(t, z); return 2;
    }
}

const char *ld_tag_op_name(ld_tag t) { return in_table(t) ? tag_info[t].op : "op"; }

ld_family ld_tag_family(ld_tag t) { return in_table(t) ? tag_info[t].family : LD_FAMILY_ENDS; }

const char *ld_family_title(ld_family f)
{
    return (int)f >= 0 && f < LD_FAMILY_COUNT ? family_title[f] : NULL;
}

const ld_tag_input *ld_tag_inputs(ld_tag t)
{
    static const ld_tag_input none[1] = {{LD_INPUT_END, LD_TAG_UNKNOWN}};
    return in_table(t) ? tag_info[t].inputs : none;
}

ld_tag ld_tag_input_at(const ld_tag_input *in, int layer, int n_layers, int *in_layer)
{
    if (in->kind == LD_INPUT_STREAM) {
        int l = layer >= 0 ? layer : n_layers; /* a model-level op reads the stream after all */
        *in_layer = l > 0 ? l - 1 : LD_NO_LAYER;
        return l > 0 ? LD_TAG_LAYER_OUT : LD_TAG_EMBED;
    }
    *in_layer = ld_tag_per_layer(in->tag) ? layer : LD_NO_LAYER;
    return in->tag;
}

static void put(ld_key *out, size_t max, size_t *n, int step, int layer, ld_tag tag)
{
    if (*n < max) {
        out[*n].step = step;
        out[*n].layer = layer;
        snprintf(out[*n].tag, sizeof out[*n].tag, "%s", ld_tag_name(tag));
    }
    (*n)++;
}

size_t ld_tag_input_keys(const ld_key *key, int n_layers, ld_key *out, size_t max)
{
    ld_tag t = ld_tag_from_name(key->tag);
    int s = key->step, l = key->layer;
    size_t n = 0;
    if (t == LD_TAG_UNKNOWN || s < 0 || (ld_tag_per_layer(t) && l < 0))
        return 0;
    if (!ld_tag_per_layer(t))
        l = LD_NO_LAYER;
    const ld_tag_input *in = tag_info[t].inputs;
    for (size_t i = 0; in[i].kind != LD_INPUT_END; i++) {
        if (in[i].kind != LD_INPUT_KV) {
            int il;
            ld_tag it = ld_tag_input_at(&in[i], l, n_layers, &il);
            put(out, max, &n, s, il, it);
            continue;
        }
        /* The run of KV inputs, step by step: the cache every step so far wrote. */
        size_t j = i;
        while (in[j + 1].kind == LD_INPUT_KV)
            j++;
        for (int p = 0; p <= s; p++)
            for (size_t k = i; k <= j; k++)
                put(out, max, &n, p, l, in[k].tag);
        i = j;
    }
    return n;
}

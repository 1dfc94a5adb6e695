/* tags.c — the tag table of layerdiff/tags.h as data. */
#include <string.h>

#include "layerdiff/tags.h"

static const struct {
    const char *name;
    bool per_layer;
    ld_shape_kind shape;
} tag_info[] = {
#define LD_TAG_INFO_(e, name, per_layer, shape) {name, per_layer, shape},
    LD_TAG_TABLE(LD_TAG_INFO_)
#undef LD_TAG_INFO_
};

const char *ld_tag_name(ld_tag t)
{
    if ((int)t < 0 || t >= LD_TAG_COUNT)
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

bool ld_tag_per_layer(ld_tag t) { return (int)t >= 0 && t < LD_TAG_COUNT && tag_info[t].per_layer; }

ld_shape_kind ld_tag_shape(ld_tag t)
{
    return ((int)t >= 0 && t < LD_TAG_COUNT) ? tag_info[t].shape : LD_SHAPE_T_H;
}

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

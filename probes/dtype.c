/* dtype.c — names and sizes of the element types (layerdiff/dtype.h). */
#include <string.h>

#include "layerdiff/dtype.h"

const char *ld_dtype_name(ld_dtype t)
{
    switch (t) {
    case LD_F32: return "f32";
    case LD_BF16: return "bf16";
    case LD_F16: return "f16";
    }
    return "?";
}

bool ld_dtype_parse(const char *s, ld_dtype *out)
{
    if (!s)
        return false;
    if (!strcmp(s, "f32") || !strcmp(s, "F32")) {
        *out = LD_F32;
    } else if (!strcmp(s, "bf16") || !strcmp(s, "BF16")) {
        *out = LD_BF16;
    } else if (!strcmp(s, "f16") || !strcmp(s, "F16")) {
        *out = LD_F16;
    } else {
        return false;
    }
    return true;
}

size_t ld_dtype_size(ld_dtype t) { return t == LD_F32 ? 4 : 2; }

/* jsonfile.c — strict reading of the comparator's small JSON inputs (policy and map files) with
 * cJSON: one object, no duplicate or unknown members, messages with line and column. Not a
 * general JSON layer; probe records are read by the probe library. */
#include <stdlib.h>
#include <string.h>

#include "compare_internal.h"

ld_status ld_cmp_json_parse(const char *text, size_t len, const char *label, cJSON **out,
                            ld_error *err)
{
    *out = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        if (!at || at < text || at > text + len)
            at = text;
        size_t line = 1, col = 1;
        for (const char *p = text; p < at; p++) {
            if (*p == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        return ld_error_set(err, LD_E_INPUT, "%s: line %zu, column %zu: not valid JSON", label,
                            line, col);
    }
    /* Only whitespace may follow the value. */
    for (const char *p = end; p && p < text + len; p++) {
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            cJSON_Delete(root);
            return ld_error_set(err, LD_E_INPUT, "%s: text after the JSON value", label);
        }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ld_error_set(err, LD_E_INPUT, "%s: must hold a JSON object", label);
    }
    *out = root;
    return LD_OK;
}

ld_status ld_cmp_json_check_keys(const cJSON *obj, const char *const *allowed, const char *label,
                                 const char *where, ld_error *err)
{
    const char *sep = where[0] ? "." : "";
    for (const cJSON *c = obj->child; c; c = c->next) {
        const char *name = c->string ? c->string : "";
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++)
            if (!strcmp(allowed[i], name))
                ok = true;
        if (!ok)
            return ld_error_set(err, LD_E_INPUT, "%s: %s%s%s: unknown field", label, where, sep,
                                name);
        for (const cJSON *d = c->next; d; d = d->next)
            if (d->string && !strcmp(d->string, name))
                return ld_error_set(err, LD_E_INPUT, "%s: %s%s%s: given twice", label, where, sep,
                                    name);
    }
    return LD_OK;
}

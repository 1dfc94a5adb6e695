/* reader_fields.c — typed access to the fields of a parsed record, each failure a "PATH:LINE:
 * context: what" message (vctx). Which fields a record has is the record parsers' business
 * (reader_header.c, reader_probe.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "reader_internal.h"
#include "util.h"

const ld_json_node *ld_rd_field(vctx *v, const ld_json_node *obj, const char *name, int type,
                                bool required, ld_status *st)
{
    const ld_json_node *n = ld_json_get(&v->r->doc, obj, name);
    if (!n) {
        if (required) *st = ld_rd_bad(v, "missing field \"%s\"", name);
        return NULL;
    }
    if (n->type != type) {
        *st = ld_rd_bad(v, "field \"%s\" is %s, expected %s", name, ld_json_type_name(n->type),
                        ld_json_type_name(type));
        return NULL;
    }
    return n;
}

/* Refuses members not in the allowed list (NULL-terminated). */
ld_status ld_rd_only_fields(vctx *v, const ld_json_node *obj, const char *where,
                            const char *const *allowed)
{
    for (const ld_json_node *c = ld_json_first(&v->r->doc, obj); c; c = ld_json_next(&v->r->doc, c)) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strlen(*a) == c->key_len && !memcmp(*a, c->key, c->key_len);
        if (!known)
            return ld_rd_bad(v, "unknown field \"%.*s\" in %s", (int)LD_MIN(c->key_len, (size_t)64),
                             c->key, where);
    }
    return LD_OK;
}

bool ld_rd_get_int(vctx *v, const ld_json_node *obj, const char *name, int64_t min, int64_t max,
                   bool required, bool *present, int64_t *out, ld_status *st)
{
    const ld_json_node *n = ld_rd_field(v, obj, name, LD_JSON_NUMBER, required, st);
    if (present)
        *present = n != NULL;
    if (!n)
        return !required && *st == LD_OK;
    if (!ld_json_int(n, min, max, out)) {
        *st = ld_rd_bad(v, "field \"%s\" is %.*s, expected an integer in [%lld, %lld]", name,
                        (int)n->len, n->str, (long long)min, (long long)max);
        return false;
    }
    return true;
}

/* A string field copied into out[size] (NUL-terminated); refuses embedded NUL and overlong. */
bool ld_rd_get_text(vctx *v, const ld_json_node *obj, const char *name, char *out, size_t size,
                    ld_status *st)
{
    const ld_json_node *n = ld_rd_field(v, obj, name, LD_JSON_STRING, true, st);
    if (!n)
        return false;
    if (n->len >= size || memchr(n->str, '\0', n->len)) {
        *st = ld_rd_bad(v, "field \"%s\" is %s", name,
                        n->len >= size ? "too long" : "a string holding a NUL character");
        return false;
    }
    memcpy(out, n->str, n->len);
    out[n->len] = '\0';
    return true;
}

bool ld_rd_text_is(const ld_json_node *n, const char *s)
{
    return n && n->type == LD_JSON_STRING && n->len == strlen(s) && !memcmp(n->str, s, n->len);
}

/* A statistic or head value: a finite number, or "NaN", "Infinity", "-Infinity". */
bool ld_rd_get_value(vctx *v, const ld_json_node *n, const char *what, double *out, ld_status *st)
{
    if (n->type == LD_JSON_NUMBER) {
        if (ld_json_number(n, v->r->c_locale, out))
            return true;
        *st = ld_rd_bad(v, "%s = %.*s is out of the range of a double", what, (int)n->len, n->str);
        return false;
    }
    if (ld_rd_text_is(n, "NaN")) {
        *out = NAN;
    } else if (ld_rd_text_is(n, "Infinity")) {
        *out = INFINITY;
    } else if (ld_rd_text_is(n, "-Infinity")) {
        *out = -INFINITY;
    } else {
        *st = ld_rd_bad(v, "%s is %s, expected a number or \"NaN\", \"Infinity\", \"-Infinity\"",
                        what, ld_json_type_name(n->type));
        return false;
    }
    return true;
}

char *ld_rd_dup_compact(ld_reader *r, const ld_json_node *n)
{
    ld_buf b = {0};
    ld_json_write(&r->doc, n, &b);
    if (ld_buf_failed(&b)) {
        ld_buf_free(&b);
        return NULL;
    }
    ld_buf_cstr(&b);
    return b.p;
}

/* Integer array (tokens) with each element in [min, INT32_MAX]; *out malloc'd (NULL when empty).
 * min is 0, or -1 for the end record's argmax tokens (-1: the step had no finite logit). */
bool ld_rd_get_tokens(vctx *v, const ld_json_node *obj, const char *name, int64_t min,
                      int32_t **out, size_t *n_out, ld_status *st)
{
    const ld_json_node *a = ld_rd_field(v, obj, name, LD_JSON_ARRAY, true, st);
    if (!a)
        return false;
    int32_t *t = a->count ? malloc(a->count * sizeof *t) : NULL;
    if (a->count && !t) {
        *st = ld_rd_stick(v->r, v->err, LD_E_NOMEM, "%s: cannot allocate %u tokens", v->r->path,
                          a->count);
        return false;
    }
    size_t i = 0;
    for (const ld_json_node *c = ld_json_first(&v->r->doc, a); c; c = ld_json_next(&v->r->doc, c)) {
        int64_t x;
        if (c->type != LD_JSON_NUMBER || !ld_json_int(c, min, INT32_MAX, &x)) {
            free(t);
            *st =
                ld_rd_bad(v, "%s[%zu] is not an integer in [%d, %d]", name, i, (int)min, INT32_MAX);
            return false;
        }
        t[i++] = (int32_t)x;
    }
    *out = t;
    *n_out = i;
    return true;
}

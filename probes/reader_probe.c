/* reader_probe.c — one probe record read whole: its fields checked, its payload decoded (base64,
 * zlib, shuffle) and checked against crc32, head and stats. Payloads read piece by piece are
 * reader_stream.c, which shares the checks here. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "reader_internal.h"
#include "record.h"
#include "util.h"

/* Grows the buffer whose pointer is at slot (any byte pointer) to need bytes. */
bool ld_rd_grow(void *slot, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    void *p;
    memcpy(&p, slot, sizeof p);
    void *q = realloc(p, need ? need : 1);
    if (!q)
        return false;
    memcpy(slot, &q, sizeof q);
    *cap = need;
    return true;
}

static bool same_value(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* Messages from here on name the probe: "probe S0.L3.q_norm". */
void ld_rd_name_probe(vctx *v, const ld_probe *p)
{
    ld_key key = {p->step, p->layer, ""};
    memcpy(key.tag, p->tag, sizeof key.tag);
    char key_text[LD_TAG_NAME_MAX + 32];
    ld_key_format(&key, key_text, sizeof key_text);
    snprintf(v->key_context, sizeof v->key_context, "probe %s", key_text);
    v->context = v->key_context;
}

/* The checks of a data.b64 string by its length alone, in the order a whole read makes them: a
 * length that is not a multiple of 4, then a decoded size that cannot be the payload's. */
ld_status ld_rd_check_b64_sizes(vctx *v, const ld_probe *p, size_t len, size_t decoded,
                                size_t expected)
{
    if (len % 4 != 0)
        return ld_rd_bad(v, "bad base64 in data.b64: length %zu is not a multiple of 4", len);
    if (p->encoding == LD_ENC_BASE64 && decoded != expected)
        return ld_rd_bad(v, "payload decodes to %zu bytes, expected %zu (%llu elements of %s)",
                         decoded, expected, (unsigned long long)p->numel,
                         ld_dtype_name(p->data_dtype));
    if (p->encoding != LD_ENC_BASE64 && !ld_zlib_size_plausible(decoded, expected))
        return ld_rd_bad(v,
                         "%zu bytes of zlib data cannot inflate to the expected %zu bytes (%llu "
                         "elements of %s)",
                         decoded, expected, (unsigned long long)p->numel,
                         ld_dtype_name(p->data_dtype));
    return LD_OK;
}

/* The last checks of a decoded payload: its crc32, then the head values against its first
 * elements (first holds at least n_head of them). */
ld_status ld_rd_check_crc_head(vctx *v, const ld_probe *p, uint32_t crc, const void *first)
{
    if (crc != p->crc32)
        return ld_rd_bad(v, "data.crc32 is %u but the decoded payload's crc32 is %u",
                         (unsigned)p->crc32, (unsigned)crc);
    for (int i = 0; i < p->n_head; i++) {
        double x = (double)ld_load_f32(first, p->data_dtype, (size_t)i);
        if (!same_value(x, p->head[i]))
            return ld_rd_bad(v, "head[%d] = %.17g disagrees with element %d of the payload (%.17g)",
                             i, p->head[i], i, x);
    }
    return LD_OK;
}

/* Decodes and checks data.b64 into probe->data. */
static ld_status decode_payload(vctx *v, ld_probe *p, const ld_json_node *b64)
{
    ld_reader *r = v->r;
    size_t expected;
    if (!ld_mul_size((size_t)p->numel, ld_dtype_size(p->data_dtype), &expected))
        return ld_rd_bad(v, "payload size overflows");
    size_t len = b64->len;
    size_t pad = 0;
    if (len >= 1 && b64->str[len - 1] == '=')
        pad = len >= 2 && b64->str[len - 2] == '=' ? 2 : 1;
    size_t decoded = len % 4 == 0 ? len / 4 * 3 - pad : 0;
    ld_status st = ld_rd_check_b64_sizes(v, p, len, decoded, expected);
    if (st != LD_OK)
        return st;
    if (!ld_rd_grow(&r->raw, &r->raw_cap, decoded))
        return ld_rd_stick(r, v->err, LD_E_NOMEM,
                           "%s:%llu: cannot allocate %zu bytes for a payload", r->path,
                           (unsigned long long)r->line, decoded);
    size_t got, at;
    const char *why;
    if (!ld_b64_decode(b64->str, len, r->raw, &got, &at, &why))
        return ld_rd_bad(v, "bad base64 in data.b64 at character %zu: %s", at, why);
    const unsigned char *out = r->raw;
    if (p->encoding != LD_ENC_BASE64) {
        if (!ld_rd_grow(&r->inflated, &r->inflated_cap, expected))
            return ld_rd_stick(r, v->err, LD_E_NOMEM,
                               "%s:%llu: cannot allocate %zu bytes for a payload", r->path,
                               (unsigned long long)r->line, expected);
        ld_error zerr;
        if (ld_zlib_decode(r->raw, got, r->inflated, expected, &zerr) != LD_OK)
            return ld_rd_bad(v, "data.b64: %s", zerr.msg);
        out = r->inflated;
        if (p->encoding == LD_ENC_SHUFFLE_ZLIB_BASE64) {
            if (!ld_rd_grow(&r->unshuffled, &r->unshuffled_cap, expected))
                return ld_rd_stick(r, v->err, LD_E_NOMEM, "%s:%llu: cannot allocate %zu bytes",
                                   r->path, (unsigned long long)r->line, expected);
            ld_unshuffle(r->inflated, (size_t)p->numel, ld_dtype_size(p->data_dtype),
                         r->unshuffled);
            out = r->unshuffled;
        }
    }
    if ((st = ld_rd_check_crc_head(v, p, ld_crc32(out, expected), out)) != LD_OK)
        return st;
    /* A payload kept in another dtype than the probe's was rounded: its min and max may differ.
     * reader_stream.c makes the same check piece by piece. */
    if (p->data_dtype == p->dtype) {
        ld_tally t = {0};
        char reason[320];
        ld_tally_add(&t, out, p->data_dtype, (size_t)p->numel);
        if (!ld_stats_agree(&p->stats, &t, reason, sizeof reason))
            return ld_rd_bad(v, "%s", reason);
    }
    p->data = out;
    p->data_bytes = expected;
    return LD_OK;
}

static bool dtype_from_node(const ld_json_node *n, ld_dtype *out)
{
    static const ld_dtype all[] = {LD_F32, LD_BF16, LD_F16};
    for (size_t i = 0; i < LD_ARRAY_LEN(all); i++)
        if (ld_rd_text_is(n, ld_dtype_name(all[i]))) {
            *out = all[i];
            return true;
        }
    return false;
}

ld_status ld_rd_parse_probe(ld_reader *r, const ld_json_node *root, ld_probe *p, probe_mode mode,
                            ld_error *err)
{
    vctx v = {r, err, "probe", ""};
    ld_status st = LD_OK;
    memset(p, 0, sizeof *p);
    p->line = r->line;
    static const char *const allowed[] = {"record", "index", "step", "layer", "tag", "pos0",
                                          "dtype", "shape", "stats", "head", "fed", "data",
                                          NULL};
    /* The key first, so that later messages can name the probe. */
    int64_t step, layer = LD_NO_LAYER;
    bool has_layer;
    const ld_json_node *tag = ld_rd_field(&v, root, "tag", LD_JSON_STRING, true, &st);
    if (!tag)
        return st;
    if (tag->len > LD_TAG_NAME_MAX || memchr(tag->str, '\0', tag->len))
        return ld_rd_bad(&v,
                         "field \"tag\" is not a tag name (1 to %d characters of A-Z a-z 0-9 _ . : "
                         "/ + -)",
                         LD_TAG_NAME_MAX);
    memcpy(p->tag, tag->str, tag->len);
    p->tag[tag->len] = '\0';
    if (!ld_tag_name_valid(p->tag))
        return ld_rd_bad(&v,
                         "field \"tag\" is \"%s\", not a tag name (1 to %d characters of A-Z a-z "
                         "0-9 _ . : / + -)",
                         p->tag, LD_TAG_NAME_MAX);
    if (!ld_rd_get_int(&v, root, "step", 0, INT_MAX, true, NULL, &step, &st) ||
        !ld_rd_get_int(&v, root, "layer", 0, INT_MAX, false, &has_layer, &layer, &st))
        return st;
    p->step = (int)step;
    p->layer = has_layer ? (int)layer : LD_NO_LAYER;
    p->tag_id = ld_tag_from_name(p->tag);
    ld_rd_name_probe(&v, p);
    if (!ld_reader_wants(r, p->step, p->layer, p->tag))
        return ld_rd_bad(&v, "the key is outside the header's filter (tags \"%s\", layers "
                         "\"%s\", steps \"%s\")", r->filter[0], r->filter[1], r->filter[2]);
    if (p->tag_id != LD_TAG_UNKNOWN && ld_tag_per_layer(p->tag_id) != has_layer)
        return ld_rd_bad(&v,
                         has_layer ? "%s is a model-level tag but the record has a layer"
                                   : "%s is a per-layer tag but the record has no layer",
                         p->tag);
    uint64_t first;
    int seen = r->opt.unique_keys && mode != PROBE_STREAMED
                   ? ld_keyset_add(&r->keys, p->step, p->layer, p->tag, p->line, &first)
                   : 0;
    if (seen < 0)
        return ld_rd_stick(r, err, LD_E_NOMEM, "%s:%llu: cannot allocate the set of keys", r->path,
                           (unsigned long long)r->line);
    if (seen > 0)
        return ld_rd_bad(&v, "appears twice (first on line %llu)", (unsigned long long)first);
    if (ld_rd_only_fields(&v, root, "a probe record", allowed) != LD_OK)
        return r->sticky;
    int64_t index, pos0;
    if (!ld_rd_get_int(&v, root, "index", 0, JSON_SAFE_INT, true, NULL, &index, &st) ||
        !ld_rd_get_int(&v, root, "pos0", 0, JSON_SAFE_INT, true, NULL, &pos0, &st))
        return st;
    if ((uint64_t)index != r->n_probes)
        return ld_rd_bad(&v,
                         "index is %lld but %llu probes came before it (a record is missing or out "
                         "of order)",
                         (long long)index, (unsigned long long)r->n_probes);
    p->index = (uint64_t)index;
    p->pos0 = pos0;
    const ld_json_node *dt = ld_rd_field(&v, root, "dtype", LD_JSON_STRING, true, &st);
    if (!dt)
        return st;
    if (!dtype_from_node(dt, &p->dtype))
        return ld_rd_bad(&v, "dtype is \"%.*s\", expected \"f32\", \"bf16\" or \"f16\"",
                         (int)LD_MIN(dt->len, (size_t)32), dt->str);
    const ld_json_node *shape = ld_rd_field(&v, root, "shape", LD_JSON_ARRAY, true, &st);
    if (!shape)
        return st;
    if (shape->count < 1 || shape->count > LD_MAX_NDIM)
        return ld_rd_bad(&v, "shape has %u dimensions, expected 1 to %d", shape->count,
                         LD_MAX_NDIM);
    for (const ld_json_node *c = ld_json_first(&r->doc, shape); c; c = ld_json_next(&r->doc, c)) {
        int64_t d;
        if (c->type != LD_JSON_NUMBER || !ld_json_int(c, 0, JSON_SAFE_INT, &d))
            return ld_rd_bad(&v, "shape[%d] is not an integer in [0, 2^53]", p->ndim);
        p->shape[p->ndim++] = d;
    }
    if (!ld_shape_numel(p->shape, p->ndim, LD_RECORD_MAX_NUMEL, &p->numel))
        return ld_rd_bad(&v, "shape has more than 2^40 elements (its size overflows)");
    /* stats */
    const ld_json_node *stats = ld_rd_field(&v, root, "stats", LD_JSON_OBJECT, true, &st);
    if (!stats)
        return st;
    static const char *const stat_names[] = {"min", "max", "mean", "std", "l2", "absmax",
                                             "nan", "inf", NULL};
    if (ld_rd_only_fields(&v, stats, "stats", stat_names) != LD_OK)
        return r->sticky;
    double *sv[6] = {&p->stats.min, &p->stats.max, &p->stats.mean, &p->stats.std, &p->stats.l2,
                     &p->stats.absmax};
    for (int i = 0; i < 6; i++) {
        const ld_json_node *n = ld_json_get(&r->doc, stats, stat_names[i]);
        char what[32];
        snprintf(what, sizeof what, "stats.%s", stat_names[i]);
        if (!n)
            return ld_rd_bad(&v, "missing field \"%s\"", what);
        if (!ld_rd_get_value(&v, n, what, sv[i], &st))
            return st;
    }
    int64_t cnt;
    if (!ld_rd_get_int(&v, stats, "nan", 0, JSON_SAFE_INT, true, NULL, &cnt, &st))
        return st;
    p->stats.nan = (uint64_t)cnt;
    if (!ld_rd_get_int(&v, stats, "inf", 0, JSON_SAFE_INT, true, NULL, &cnt, &st))
        return st;
    p->stats.inf = (uint64_t)cnt;
    if (p->stats.nan > p->numel || p->stats.inf > p->numel - p->stats.nan)
        return ld_rd_bad(&v, "stats count %llu NaN and %llu Inf among %llu elements",
                         (unsigned long long)p->stats.nan, (unsigned long long)p->stats.inf,
                         (unsigned long long)p->numel);
    /* head */
    const ld_json_node *head = ld_rd_field(&v, root, "head", LD_JSON_ARRAY, true, &st);
    if (!head)
        return st;
    uint64_t want_head = LD_MIN(p->numel, (uint64_t)LD_HEAD_COUNT);
    if (head->count != want_head)
        return ld_rd_bad(&v, "head has %u values, expected %llu (the first min(16, numel))",
                         head->count, (unsigned long long)want_head);
    for (const ld_json_node *c = ld_json_first(&r->doc, head); c; c = ld_json_next(&r->doc, c)) {
        char what[16];
        snprintf(what, sizeof what, "head[%d]", p->n_head);
        if (!ld_rd_get_value(&v, c, what, &p->head[p->n_head], &st))
            return st;
        p->n_head++;
    }
    char why[320];
    if (!ld_stats_check(&p->stats, p->numel, p->head, p->n_head, why, sizeof why))
        return ld_rd_bad(&v, "%s", why);
    const ld_json_node *fed = ld_json_get(&r->doc, root, "fed"); /* teacher forcing only */
    if (fed && fed->type != LD_JSON_TRUE && fed->type != LD_JSON_FALSE)
        return ld_rd_bad(&v, "field \"fed\" is %s, expected true or false",
                         ld_json_type_name(fed->type));
    p->fed = fed && fed->type == LD_JSON_TRUE;
    /* data */
    const ld_json_node *data = ld_json_get(&r->doc, root, "data");
    if (!data)
        return LD_OK;
    if (data->type != LD_JSON_OBJECT)
        return ld_rd_bad(&v, "field \"data\" is %s, expected an object",
                         ld_json_type_name(data->type));
    static const char *const data_fields[] = {"encoding", "dtype", "crc32", "b64", NULL};
    if (ld_rd_only_fields(&v, data, "data", data_fields) != LD_OK)
        return r->sticky;
    const ld_json_node *enc = ld_rd_field(&v, data, "encoding", LD_JSON_STRING, true, &st);
    const ld_json_node *ddt =
        enc ? ld_rd_field(&v, data, "dtype", LD_JSON_STRING, true, &st) : NULL;
    const ld_json_node *b64 = ddt ? ld_rd_field(&v, data, "b64", LD_JSON_STRING, true, &st) : NULL;
    int64_t crc = 0;
    if (!b64 ||
        !ld_rd_get_int(&v, data, "crc32", 0, UINT32_MAX, mode != PROBE_PREFIX, NULL, &crc, &st))
        return st;
    char enc_name[32] = "";
    if (enc->len < sizeof enc_name && !memchr(enc->str, '\0', enc->len))
        memcpy(enc_name, enc->str, enc->len);
    if (!ld_encoding_parse(enc_name, &p->encoding))
        return ld_rd_bad(&v,
                         "data.encoding is \"%.*s\", expected \"base64\", \"zlib+base64\" or "
                         "\"shuffle+zlib+base64\"",
                         (int)LD_MIN(enc->len, (size_t)32), enc->str);
    if (!dtype_from_node(ddt, &p->data_dtype))
        return ld_rd_bad(&v, "data.dtype is \"%.*s\", expected \"f32\", \"bf16\" or \"f16\"",
                         (int)LD_MIN(ddt->len, (size_t)32), ddt->str);
    p->crc32 = (uint32_t)crc;
    p->has_data = true;
    if (!r->opt.decode_data || mode != PROBE_WHOLE)
        return LD_OK;
    return decode_payload(&v, p, b64);
}

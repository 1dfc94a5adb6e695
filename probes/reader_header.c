/* reader_header.c — the records around the probes: the header (first line) and the end record
 * (last line), parsed and checked into ld_header_info and ld_end_info. Probe records are
 * reader_probe.c. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reader_internal.h"
#include "record.h"
#include "util.h"

/* ---- header ------------------------------------------------------------------------------------ */

static bool created_valid(const char *s)
{
    /* YYYY-MM-DDTHH:MM:SS, optional fraction, Z */
    static const char pat[] = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    for (; pat[i]; i++) {
        if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
            return false;
    }
    if (s[i] == '.') {
        i++;
        if (s[i] < '0' || s[i] > '9')
            return false;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return s[i] == 'Z' && s[i + 1] == '\0';
}

/* The optional "filter": strings, the ranges parsed (a probe outside them is refused). */
static ld_status parse_filter(ld_reader *r, vctx *v, const ld_json_node *root)
{
    const ld_json_node *f = ld_json_get(&r->doc, root, "filter");
    if (f && f->type != LD_JSON_OBJECT)
        return ld_rd_bad(v, "filter is %s, expected an object", ld_json_type_name(f->type));
    static const char *const fields[] = {"tags", "layers", "steps", NULL};
    if (f && ld_rd_only_fields(v, f, "header.filter", fields) != LD_OK)
        return r->sticky;
    v->context = "header.filter";
    for (size_t i = 0; i < LD_ARRAY_LEN(r->filter); i++) {
        ld_status st = LD_OK;
        const ld_json_node *s = f ? ld_rd_field(v, f, fields[i], LD_JSON_STRING, false, &st)
                                  : NULL;
        if (st != LD_OK)
            return st;
        if (s && (memchr(s->str, '\0', s->len) || !s->len))
            return ld_rd_bad(v, "%s is empty or holds a NUL", fields[i]);
        if (!(r->filter[i] = s ? strndup(s->str, s->len) : strdup("")))
            return ld_rd_stick(r, v->err, LD_E_NOMEM, "%s: out of memory reading the header",
                               r->path);
    }
    /* The sink's own key filter, so that the reader judges a key exactly as the writer did. */
    ld_error e;
    if (ld_keyfilter_init(&r->filter_keys, r->filter[0], r->filter[1], r->filter[2], &e) != LD_OK)
        return ld_rd_bad(v, "%s", e.msg);
    r->header.filter_tags = r->filter[0];
    r->header.filter_layers = r->filter[1];
    r->header.filter_steps = r->filter[2];
    return LD_OK;
}

ld_status ld_rd_parse_header(ld_reader *r, const ld_json_node *root, ld_error *err)
{
    vctx v = {r, err, "header", ""};
    ld_status st = LD_OK;
    static const char *const allowed[] = {"record", "format", "version", "implementation",
                                          "backend", "model", "input", "faults", "created",
                                          "tool", "filter", "feed", NULL};
    const ld_json_node *fmt = ld_rd_field(&v, root, "format", LD_JSON_STRING, true, &st);
    if (!fmt)
        return st;
    if (!ld_rd_text_is(fmt, LD_PROBE_FORMAT))
        return ld_rd_bad(&v,
                         "format is \"%.*s\", not \"" LD_PROBE_FORMAT "\": not a layerdiff probe "
                         "stream",
                         (int)LD_MIN(fmt->len, (size_t)64), fmt->str);
    int64_t version;
    if (!ld_rd_get_int(&v, root, "version", 0, INT_MAX, true, NULL, &version, &st))
        return st;
    if (version != LD_PROBE_VERSION)
        return ld_rd_stick(r, err, LD_E_UNSUPPORTED, "%s:%llu: header: format version %lld is "
                           "not supported (this reader knows version %d)", r->path,
                           (unsigned long long)r->line, (long long)version, LD_PROBE_VERSION);
    if (ld_rd_only_fields(&v, root, "the header", allowed) != LD_OK)
        return r->sticky;
    ld_header_info *h = &r->header;
    h->version = (int)version;
    if (!ld_rd_get_text(&v, root, "implementation", h->implementation, sizeof h->implementation,
                        &st))
        return st;
    if (!h->implementation[0])
        return ld_rd_bad(&v, "field \"implementation\" is empty");
    const ld_json_node *backend = ld_rd_field(&v, root, "backend", LD_JSON_OBJECT, true, &st);
    const ld_json_node *model =
        backend ? ld_rd_field(&v, root, "model", LD_JSON_OBJECT, true, &st) : NULL;
    const ld_json_node *input =
        model ? ld_rd_field(&v, root, "input", LD_JSON_OBJECT, true, &st) : NULL;
    const ld_json_node *faults =
        input ? ld_rd_field(&v, root, "faults", LD_JSON_ARRAY, true, &st) : NULL;
    const ld_json_node *tool =
        faults ? ld_rd_field(&v, root, "tool", LD_JSON_OBJECT, true, &st) : NULL;
    if (!tool)
        return st;
    static const char *const input_fields[] = {"tokens", "text", "decode_steps", NULL};
    if (ld_rd_only_fields(&v, input, "header.input", input_fields) != LD_OK)
        return r->sticky;
    v.context = "header.input";
    int64_t steps;
    if (!ld_rd_get_tokens(&v, input, "tokens", 0, &r->tokens, &h->n_tokens, &st) ||
        !ld_rd_get_int(&v, input, "decode_steps", 0, INT_MAX, true, NULL, &steps, &st))
        return st;
    h->tokens = r->tokens;
    h->decode_steps = (int)steps;
    const ld_json_node *text = ld_rd_field(&v, input, "text", LD_JSON_STRING, false, &st);
    if (st != LD_OK)
        return st;
    if (text) {
        if (!(r->prompt_text = malloc(text->len + 1)))
            return ld_rd_stick(r, err, LD_E_NOMEM, "out of memory");
        memcpy(r->prompt_text, text->str, text->len);
        r->prompt_text[text->len] = 0;
        h->prompt_text = r->prompt_text;
        h->prompt_text_len = text->len;
    }
    v.context = "header.tool";
    static const char *const tool_fields[] = {"name", "version", "git", NULL};
    if (ld_rd_only_fields(&v, tool, "header.tool", tool_fields) != LD_OK)
        return r->sticky;
    for (const char *const *f = tool_fields; *f; f++)
        if (!ld_rd_field(&v, tool, *f, LD_JSON_STRING, true, &st))
            return st;
    v.context = "header";
    const ld_json_node *fp = ld_json_get(&r->doc, model, "fingerprint");
    if (fp && fp->type != LD_JSON_STRING)
        return ld_rd_bad(&v, "model.fingerprint is %s, expected a string",
                         ld_json_type_name(fp->type));
    const ld_json_node *feed = ld_json_get(&r->doc, root, "feed"); /* teacher forcing only */
    if (feed && feed->type != LD_JSON_OBJECT)
        return ld_rd_bad(&v, "field \"feed\" is %s, expected an object",
                         ld_json_type_name(feed->type));
    const ld_json_node *created = ld_rd_field(&v, root, "created", LD_JSON_STRING, true, &st);
    if (!created)
        return st;
    r->created = strndup(created->str, created->len);
    if (r->created && (strlen(r->created) != created->len || !created_valid(r->created)))
        return ld_rd_bad(&v,
                         "field \"created\" is not an ISO-8601 UTC time like 2026-01-31T12:00:00Z");
    r->faults = faults->count ? calloc(faults->count, sizeof *r->faults) : NULL;
    r->n_faults_cap = r->faults ? faults->count : 0; /* freed by count: a bad entry ends the loop */
    size_t nf = 0;
    bool oom = faults->count && !r->faults;
    for (const ld_json_node *c = ld_json_first(&r->doc, faults); c; c = ld_json_next(&r->doc, c)) {
        if (c->type != LD_JSON_STRING || memchr(c->str, '\0', c->len))
            return ld_rd_bad(&v, "faults[%zu] is not a string", nf);
        if (r->faults && !(r->faults[nf] = strndup(c->str, c->len)))
            oom = true;
        nf++;
    }
    h->n_faults = r->faults ? nf : 0;
    h->faults = (const char *const *)r->faults;
    r->backend_json = ld_rd_dup_compact(r, backend);
    r->model_json = ld_rd_dup_compact(r, model);
    r->input_json = ld_rd_dup_compact(r, input);
    r->tool_json = ld_rd_dup_compact(r, tool);
    r->fingerprint = fp ? strndup(fp->str, fp->len) : strdup("");
    r->feed_json = feed ? ld_rd_dup_compact(r, feed) : strdup("");
    if (!r->backend_json || !r->model_json || !r->input_json || !r->tool_json || !r->feed_json ||
        !r->fingerprint || !r->created || oom)
        return ld_rd_stick(r, err, LD_E_NOMEM, "%s: out of memory reading the header", r->path);
    h->backend_json = r->backend_json;
    h->model_json = r->model_json;
    h->input_json = r->input_json;
    h->tool = r->tool_json;
    h->feed_json = r->feed_json;
    h->fingerprint = r->fingerprint;
    h->created = r->created;
    return parse_filter(r, &v, root);
}

bool ld_reader_wants(const ld_reader *r, int step, int layer, const char *tag)
{
    return r && ld_keyfilter_match(&r->filter_keys, step, layer, tag);
}


/* ---- end --------------------------------------------------------------------------------------- */

ld_status ld_rd_parse_end(ld_reader *r, const ld_json_node *root, ld_error *err)
{
    vctx v = {r, err, "end record", ""};
    ld_status st = LD_OK;
    static const char *const allowed[] = {"record", "status", "probes", "tokens", "decoded",
                                          "last_key", "message", NULL};
    if (ld_rd_only_fields(&v, root, "the end record", allowed) != LD_OK)
        return r->sticky;
    const ld_json_node *status = ld_rd_field(&v, root, "status", LD_JSON_STRING, true, &st);
    if (!status)
        return st;
    bool ok = ld_rd_text_is(status, "ok");
    if (!ok && !ld_rd_text_is(status, "error"))
        return ld_rd_bad(&v, "status is \"%.*s\", expected \"ok\" or \"error\"",
                         (int)LD_MIN(status->len, (size_t)32), status->str);
    int64_t probes;
    if (!ld_rd_get_int(&v, root, "probes", 0, JSON_SAFE_INT, true, NULL, &probes, &st))
        return st;
    if ((uint64_t)probes != r->n_probes)
        return ld_rd_bad(&v, "it counts %lld probes but the stream holds %llu", (long long)probes,
                         (unsigned long long)r->n_probes);
    if (!ld_rd_get_tokens(&v, root, "tokens", -1, &r->end_tokens, &r->end_info.n_tokens, &st) ||
        !ld_rd_get_tokens(&v, root, "decoded", 0, &r->end_decoded, &r->end_info.n_decoded, &st))
        return st;
    const ld_json_node *lk = ld_rd_field(&v, root, "last_key", LD_JSON_STRING, true, &st);
    if (!lk)
        return st;
    if (lk->len != strlen(r->last_key) || memcmp(lk->str, r->last_key, lk->len))
        return ld_rd_bad(&v, "last_key is \"%.*s\" but the last probe read is \"%s\"",
                         (int)LD_MIN(lk->len, (size_t)200), lk->str, r->last_key);
    const ld_json_node *msg = ld_rd_field(&v, root, "message", LD_JSON_STRING, false, &st);
    if (st != LD_OK)
        return st;
    if (!ok && !msg)
        return ld_rd_bad(&v, "status is \"error\" but there is no message");
    r->end_last_key = strndup(lk->str, lk->len);
    r->end_message = msg ? strndup(msg->str, msg->len) : strdup("");
    if (!r->end_last_key || !r->end_message)
        return ld_rd_stick(r, err, LD_E_NOMEM, "%s: out of memory reading the end record", r->path);
    r->end_info = (ld_end_info){ok,
                                ok ? "" : r->end_message,
                                (uint64_t)probes,
                                r->end_tokens,
                                r->end_info.n_tokens,
                                r->end_decoded,
                                r->end_info.n_decoded,
                                r->end_last_key};
    return LD_OK;
}

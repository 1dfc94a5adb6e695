/* reader.c — the streaming probe reader's public face (probes.h): opening a file or a memory
 * buffer, ld_reader_next's walk over the records, closing. Input, fields, the record parsers and
 * streamed payloads live in the reader_*.c files beside it (reader_internal.h). It does not
 * compare or interpret values (that is compare/). */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "reader_internal.h"
#include "util.h"

#define DEFAULT_MAX_LINE ((size_t)1 << 30)

/* ---- records ----------------------------------------------------------------------------------- */

typedef enum rec_kind { REC_HEADER, REC_PROBE, REC_END } rec_kind;

/* Reads and parses the next line; *kind tells which record it is. */
static ld_status next_record(ld_reader *r, rec_kind *kind, const ld_json_node **root, ld_error *err)
{
    char *line;
    size_t len;
    line_kind lk = ld_rd_read_line(r, &line, &len, err);
    if (lk == LINE_ERROR)
        return r->sticky;
    const char *cut = r->gz_cut ? " (the gzip data ends early)" : "";
    if (lk == LINE_EOF) {
        if (r->bytes == 0)
            return ld_rd_stick(r, err, LD_E_TRUNCATED,
                               "%s: stream truncated: the file is empty (no "
                               "header record)%s",
                               r->path, cut);
        return ld_rd_stick(r, err, LD_E_TRUNCATED,
                           "%s: stream truncated after line %llu: no end "
                           "record; last complete probe: %s%s",
                           r->path, (unsigned long long)r->line, ld_rd_last_key_text(r), cut);
    }
    if (lk == LINE_PARTIAL)
        return ld_rd_stick(r, err, LD_E_TRUNCATED,
                           "%s:%llu: stream truncated: the last line is cut "
                           "short (no newline); last complete probe: %s%s",
                           r->path, (unsigned long long)r->line, ld_rd_last_key_text(r), cut);
    if (r->line == 1 && !r->line_ws && len >= 3 && !memcmp(line, "\xef\xbb\xbf", 3)) { /* a BOM */
        line += 3;
        len -= 3;
    }
    ld_json_error je;
    if (!ld_json_parse(&r->doc, line, len, &je))
        return ld_rd_stick(r, err, LD_E_INPUT, "%s:%llu: not valid JSON at column %zu: %s", r->path,
                           (unsigned long long)r->line, r->line_ws + je.offset + 1, je.msg);
    *root = &r->doc.nodes[0];
    if ((*root)->type != LD_JSON_OBJECT)
        return ld_rd_stick(r, err, LD_E_INPUT, "%s:%llu: a record must be a JSON object, not %s",
                           r->path, (unsigned long long)r->line, ld_json_type_name((*root)->type));
    const ld_json_node *rec = ld_json_get(&r->doc, *root, "record");
    if (!rec)
        return ld_rd_stick(r, err, LD_E_INPUT,
                           "%s:%llu: no \"record\" field (header, probe or end)", r->path,
                           (unsigned long long)r->line);
    if (ld_rd_text_is(rec, "header"))
        *kind = REC_HEADER;
    else if (ld_rd_text_is(rec, "probe"))
        *kind = REC_PROBE;
    else if (ld_rd_text_is(rec, "end"))
        *kind = REC_END;
    else if (rec->type == LD_JSON_STRING)
        return ld_rd_stick(r, err, LD_E_INPUT,
                           "%s:%llu: unknown record kind \"%.*s\" (expected header, "
                           "probe or end)",
                           r->path, (unsigned long long)r->line, (int)LD_MIN(rec->len, (size_t)64),
                           rec->str);
    else
        return ld_rd_stick(r, err, LD_E_INPUT, "%s:%llu: field \"record\" is %s, expected a string",
                           r->path, (unsigned long long)r->line, ld_json_type_name(rec->type));
    return LD_OK;
}

void ld_reader_options_init(ld_reader_options *opt)
{
    opt->max_line = DEFAULT_MAX_LINE;
    opt->decode_data = true;
    opt->stream_data = false;
    opt->unique_keys = false;
}

static ld_status reader_start(ld_reader *r, ld_reader **out, ld_error *err)
{
    r->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (!r->c_locale) {
        ld_reader_close(r);
        return ld_error_set(err, LD_E_NOMEM, "cannot create the C locale");
    }
    rec_kind kind;
    const ld_json_node *root;
    ld_status st = next_record(r, &kind, &root, err);
    if (st == LD_OK && kind != REC_HEADER)
        st = ld_rd_stick(r, err, LD_E_INPUT,
                         "%s:%llu: the first record is %s, not the header (a probe "
                         "stream starts with its header record)",
                         r->path, (unsigned long long)r->line,
                         kind == REC_PROBE ? "a probe" : "the end record");
    if (st == LD_OK) st = ld_rd_parse_header(r, root, err);
    if (st != LD_OK) {
        ld_reader_close(r);
        return st;
    }
    *out = r;
    return LD_OK;
}

static ld_reader *reader_new(const char *path, const ld_reader_options *opt)
{
    ld_reader *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->path = strdup(path ? path : "(memory)");
    if (!r->path) {
        free(r);
        return NULL;
    }
    ld_reader_options_init(&r->opt);
    if (opt)
        r->opt = *opt;
    if (r->opt.max_line == 0)
        r->opt.max_line = DEFAULT_MAX_LINE;
    return r;
}

ld_status ld_reader_open(ld_reader **out, const char *path, const ld_reader_options *opt,
                         ld_error *err)
{
    *out = NULL;
    if (!path || !*path)
        return ld_error_set(err, LD_E_USAGE, "no probe file given");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ld_error_set(err, errno == ENOENT ? LD_E_INPUT : LD_E_IO, "%s: cannot open: %s",
                            path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || S_ISDIR(sb.st_mode)) {
        close(fd);
        return ld_error_set(err, LD_E_INPUT, "%s: is a directory, not a probe file", path);
    }
    ld_reader *r = reader_new(path, opt);
    gzFile gz = r ? gzdopen(fd, "rb") : NULL;
    if (!gz) {
        close(fd);
        if (r)
            ld_reader_close(r);
        return ld_error_set(err, LD_E_NOMEM, "%s: cannot allocate a reader", path);
    }
    gzbuffer(gz, 256u << 10);
    r->gz = gz;
    return reader_start(r, out, err);
}

ld_status ld_reader_open_mem(ld_reader **out, const char *name, const void *data, size_t len,
                             const ld_reader_options *opt, ld_error *err)
{
    *out = NULL;
    if (!data && len)
        return ld_error_set(err, LD_E_USAGE, "NULL buffer with %zu bytes", len);
    ld_reader *r = reader_new(name, opt);
    if (!r)
        return ld_error_set(err, LD_E_NOMEM, "cannot allocate a reader");
    r->mem = data;
    r->mem_len = len;
    return reader_start(r, out, err);
}

const ld_header_info *ld_reader_header(const ld_reader *r) { return r ? &r->header : NULL; }

ld_status ld_reader_next(ld_reader *r, const ld_probe **probe, ld_error *err)
{
    *probe = NULL;
    if (!r)
        return ld_error_set(err, LD_E_USAGE, "NULL reader");
    if (r->sticky != LD_OK) {
        if (err)
            *err = r->sticky_err;
        return r->sticky;
    }
    if (r->ended)
        return LD_OK;
    r->current = false;
    ld_status st;
    if (r->ps.active) { /* the last probe's payload, read and checked if it was not */
        if ((st = ld_reader_skip_data(r, err)) != LD_OK)
            return st;
        r->ps.active = false;
    }
    r->whole_pos = 0;
    if (r->opt.stream_data) {
        bool streamed;
        if ((st = ld_rd_stream_start(r, &streamed, err)) != LD_OK)
            return st;
        if (streamed) {
            if (!r->opt.decode_data) { /* nothing to hand out: the line is read and checked now */
                if ((st = ld_rd_finish_line(r, err)) != LD_OK)
                    return st;
                ld_rd_stream_done(r);
            }
            r->current = true;
            *probe = &r->probe;
            return LD_OK;
        }
    }
    rec_kind kind;
    const ld_json_node *root;
    if ((st = next_record(r, &kind, &root, err)) != LD_OK)
        return st;
    if (kind == REC_HEADER)
        return ld_rd_stick(r, err, LD_E_INPUT,
                           "%s:%llu: a second header record (the header comes "
                           "first, once)",
                           r->path, (unsigned long long)r->line);
    if (kind == REC_END) {
        if ((st = ld_rd_parse_end(r, root, err)) != LD_OK)
            return st;
        char *line;
        size_t len;
        uint64_t end_line = r->line;
        line_kind lk = ld_rd_read_line(r, &line, &len, err);
        if (lk == LINE_ERROR)
            return r->sticky;
        if (lk != LINE_EOF)
            return ld_rd_stick(r, err, LD_E_INPUT, "%s:%llu: data after the end record (line %llu)",
                               r->path, (unsigned long long)r->line, (unsigned long long)end_line);
        r->ended = true;
        return LD_OK;
    }
    if ((st = ld_rd_parse_probe(r, root, &r->probe, PROBE_WHOLE, err)) != LD_OK)
        return st;
    r->n_probes++;
    ld_rd_set_last_key(r);
    r->current = true;
    *probe = &r->probe;
    return LD_OK;
}

const ld_end_info *ld_reader_end(const ld_reader *r) { return r && r->ended ? &r->end_info : NULL; }

const char *ld_reader_last_key(const ld_reader *r) { return r ? r->last_key : ""; }

const char *ld_reader_path(const ld_reader *r) { return r ? r->path : ""; }

uint64_t ld_reader_bytes(const ld_reader *r) { return r ? r->bytes : 0; }

void ld_reader_close(ld_reader *r)
{
    if (!r)
        return;
    if (r->gz)
        gzclose(r->gz);
    if (r->c_locale)
        freelocale(r->c_locale);
    free(r->path);
    free(r->buf);
    ld_json_doc_free(&r->doc);
    free(r->backend_json);
    free(r->model_json);
    free(r->input_json);
    free(r->prompt_text);
    free(r->tool_json);
    free(r->feed_json);
    free(r->fingerprint);
    free(r->created);
    for (size_t i = 0; i < LD_ARRAY_LEN(r->filter); i++)
        free(r->filter[i]);
    ld_keyfilter_free(&r->filter_keys);
    free(r->tokens);
    for (size_t i = 0; i < r->n_faults_cap; i++)
        free(r->faults[i]);
    free(r->faults);
    free(r->end_message);
    free(r->end_last_key);
    free(r->end_tokens);
    free(r->end_decoded);
    ld_keyset_free(&r->keys);
    free(r->raw);
    free(r->inflated);
    free(r->unshuffled);
    free(r->ps.pfx);
    free(r->ps.sfx);
    free(r->ps.syn);
    free(r->ps.stage);
    free(r->ps.discard);
    ld_zstream_end(&r->ps.z);
    free(r);
}

ld_status ld_probe_to_f32(const ld_probe *p, float *out, ld_error *err)
{
    if (!p || !out)
        return ld_error_set(err, LD_E_USAGE, "NULL probe or output");
    if (!p->has_data || !p->data) {
        char key[LD_TAG_NAME_MAX + 32];
        ld_key k = {p->step, p->layer, ""};
        memcpy(k.tag, p->tag, sizeof k.tag);
        return ld_error_set(err, LD_E_INPUT, "probe %s (line %llu) carries no data%s",
                            ld_key_format(&k, key, sizeof key), (unsigned long long)p->line,
                            p->has_data ? " (the reader was opened without decode_data)" : "");
    }
    if (p->data_dtype == LD_F32) {
        memcpy(out, p->data, (size_t)p->numel * 4);
        return LD_OK;
    }
    for (size_t i = 0; i < (size_t)p->numel; i++)
        out[i] = ld_load_f32(p->data, p->data_dtype, i);
    return LD_OK;
}

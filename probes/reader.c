/* reader.c — the streaming probe reader (probes.h): one JSON line at a time from a plain or gzip
 * file (or a memory buffer), every field validated, payloads decoded and checked. Memory is
 * bounded by the largest record, never the file; with stream_data, payloads are decoded from the
 * input piece by piece as the caller reads them (with the same checks and messages), so a record
 * of any size costs about 1 MiB. A stream cut short reads as LD_E_TRUNCATED
 * naming the last complete probe; anything malformed is LD_E_INPUT "PATH:LINE: what". It does not
 * compare or interpret values (that is compare/). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "buf.h"
#include "codec.h"
#include "json.h"
#include "layerdiff/probes.h"
#include "record.h"
#include "util.h"

#define READ_CHUNK ((size_t)1 << 20)
#define DEFAULT_MAX_LINE ((size_t)1 << 30)
/* stream_data: how far into a line data.b64 may start and still stream, and the staging buffer
 * of decoded base64 (what the reader holds of a streaming payload, besides its read buffer). */
#define PREFIX_MAX ((size_t)64 << 10)
#define STAGE ((size_t)64 << 10)
#define JSON_SAFE_INT ((int64_t)1 << 53) /* integers every JSON reader holds exactly */

typedef enum line_kind { LINE_OK, LINE_EOF, LINE_PARTIAL, LINE_ERROR } line_kind;

struct ld_reader {
    char *path;
    gzFile gz;                 /* NULL for a memory source */
    const unsigned char *mem;  /* [mem_len], not owned */
    size_t mem_len, mem_pos;
    bool gz_cut;               /* the gzip stream ended before its trailer */
    ld_reader_options opt;
    locale_t c_locale;

    char *buf;                 /* [cap]: unread input is buf[start..end) */
    size_t cap, start, end, scanned;
    bool eof;
    uint64_t line;             /* number of the last line returned */
    uint64_t bytes;

    bool ended;
    ld_status sticky;          /* after an error every call returns it again */
    ld_error sticky_err;

    ld_json_doc doc;
    ld_header_info header;
    char *backend_json, *model_json, *input_json, *tool_json, *fingerprint, *created;
    int32_t *tokens;
    char **faults;

    ld_end_info end_info;
    char *end_message, *end_last_key;
    int32_t *end_tokens, *end_decoded;

    ld_probe probe;
    uint64_t n_probes;
    char last_key[LD_TAG_NAME_MAX + 32];
    unsigned char *raw, *inflated, *unshuffled; /* payload work buffers, reused */
    size_t raw_cap, inflated_cap, unshuffled_cap;
    bool current;              /* probe holds the record ld_reader_next returned last */
    size_t whole_pos;          /* ld_reader_read_data's position in a payload decoded whole */

    /* stream_data: the current probe's line, read piece by piece around its payload. */
    struct pstream {
        bool active;           /* the current probe streams (its line is being read) */
        bool finished;         /* its line was read to the end and every check passed */
        char *pfx;             /* [pfx_len] the line up to and including b64's opening quote */
        size_t pfx_len, pfx_cap;
        char *sfx;             /* [sfx_len] the line after b64's closing quote, without '\n' */
        size_t sfx_len, sfx_cap;
        char *syn;             /* [syn_cap] the record without its payload characters, to parse */
        size_t syn_cap;
        uint64_t line_len;     /* bytes of the line consumed so far */
        ld_b64_scan scan;
        unsigned char *stage;  /* [STAGE] decoded base64 not used yet: [stage_pos, stage_len) */
        size_t stage_pos, stage_len;
        size_t expected;       /* payload bytes: numel * size(data_dtype) */
        size_t handed;         /* payload bytes handed out (or skipped) so far */
        uint32_t crc;          /* crc32 of those */
        unsigned char head[LD_HEAD_COUNT * 4]; /* the first elements, for the head check */
        ld_zstream z;          /* zlib encodings */
        bool planes_ready;     /* shuffle: the byte planes are all in r->inflated, checked */
        bool line_checked;     /* the line's end was reached and its checks passed */
        unsigned char *discard; /* [STAGE] where skipped payload bytes go */
    } ps;
};

/* ---- errors ------------------------------------------------------------------------------------ */

static ld_status stick(ld_reader *r, ld_error *err, ld_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static ld_status stick(ld_reader *r, ld_error *err, ld_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ld_error_setv(&r->sticky_err, code, fmt, ap);
    va_end(ap);
    r->sticky = code;
    if (err)
        *err = r->sticky_err;
    return code;
}

/* Validation failures of the current line: "PATH:LINE: <context>: <what>". */
typedef struct vctx {
    ld_reader *r;
    ld_error *err;
    const char *context; /* "header", "end record", or "probe S0.L3.q_norm" */
    char key_context[LD_TAG_NAME_MAX + 48];
} vctx;

static ld_status bad(vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static ld_status bad(vctx *v, const char *fmt, ...)
{
    char what[LD_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return stick(v->r, v->err, LD_E_INPUT, "%s:%llu: %s: %s", v->r->path,
                 (unsigned long long)v->r->line, v->context, what);
}

static const char *last_key_text(const ld_reader *r)
{
    return r->last_key[0] ? r->last_key : "none (no probe read)";
}

/* ---- input ------------------------------------------------------------------------------------- */

/* Appends up to want bytes of input at buf+end; 0 at the end of input; -1 after an error (set). */
static long long source_read(ld_reader *r, size_t want, ld_error *err)
{
    if (!r->gz) {
        size_t n = LD_MIN(want, r->mem_len - r->mem_pos);
        memcpy(r->buf + r->end, r->mem + r->mem_pos, n);
        r->mem_pos += n;
        return (long long)n;
    }
    int n = gzread(r->gz, r->buf + r->end, (unsigned)LD_MIN(want, (size_t)1 << 30));
    if (n > 0)
        return n;
    int code = Z_OK;
    const char *msg = gzerror(r->gz, &code);
    if (code == Z_OK)
        return 0;
    if (code == Z_BUF_ERROR) { /* gzip data ends early: what came through is all there is */
        r->gz_cut = true;
        return 0;
    }
    if (code == Z_ERRNO)
        stick(r, err, LD_E_IO, "%s: read failed after %llu bytes: %s", r->path,
              (unsigned long long)r->bytes, strerror(errno));
    else
        stick(r, err, LD_E_INPUT, "%s: corrupt gzip data after %llu bytes: %s", r->path,
              (unsigned long long)r->bytes, msg);
    return -1;
}

/* Bytes read at a time: READ_CHUNK, or less for a small memory source (whose whole text a
 * smaller buffer holds). */
static size_t quantum(const ld_reader *r)
{
    if (r->gz)
        return READ_CHUNK;
    return LD_MAX((size_t)4096, LD_MIN(READ_CHUNK, r->mem_len + 1));
}

/* Returns the next line without its '\n' in [*line, *len) (valid until the next call). */
static line_kind read_line(ld_reader *r, char **line, size_t *len, ld_error *err)
{
    for (;;) {
        char *nl = r->end > r->scanned ? memchr(r->buf + r->scanned, '\n', r->end - r->scanned)
                                        : NULL;
        if (nl) {
            *line = r->buf + r->start;
            *len = (size_t)(nl - *line);
            if (*len > r->opt.max_line) {
                stick(r, err, LD_E_INPUT, "%s:%llu: line longer than the %zu-byte limit", r->path,
                      (unsigned long long)r->line + 1, r->opt.max_line);
                return LINE_ERROR;
            }
            r->bytes += *len + 1;
            r->start = r->scanned = (size_t)(nl - r->buf) + 1;
            r->line++;
            return LINE_OK;
        }
        r->scanned = r->end;
        size_t pending = r->end - r->start;
        if (pending > r->opt.max_line) {
            stick(r, err, LD_E_INPUT, "%s:%llu: line longer than the %zu-byte limit", r->path,
                  (unsigned long long)r->line + 1, r->opt.max_line);
            return LINE_ERROR;
        }
        if (r->eof) {
            if (pending == 0)
                return LINE_EOF;
            *line = r->buf + r->start;
            *len = pending;
            r->bytes += pending;
            r->start = r->scanned = r->end;
            r->line++;
            return LINE_PARTIAL;
        }
        if (r->start > 0) { /* keep only the unread part */
            memmove(r->buf, r->buf + r->start, pending);
            r->end = r->scanned = pending;
            r->start = 0;
        }
        size_t q = quantum(r);
        if (r->cap - r->end < q / 2) {
            size_t cap = r->cap ? r->cap * 2 : q;
            size_t limit;
            if (!ld_add_size(r->opt.max_line, q + 1, &limit))
                limit = SIZE_MAX;
            cap = LD_MIN(cap, LD_MAX(limit, r->end + q));
            if (cap > r->cap) {
                char *b = realloc(r->buf, cap);
                if (!b) {
                    stick(r, err, LD_E_NOMEM, "%s:%llu: cannot allocate %zu bytes for a line",
                          r->path, (unsigned long long)r->line + 1, cap);
                    return LINE_ERROR;
                }
                r->buf = b;
                r->cap = cap;
            }
        }
        long long got = source_read(r, LD_MIN(r->cap - r->end, q * 4), err);
        if (got < 0)
            return LINE_ERROR;
        if (got == 0)
            r->eof = true;
        r->end += (size_t)got;
    }
}

/* ---- field access ------------------------------------------------------------------------------ */

static const ld_json_node *field(vctx *v, const ld_json_node *obj, const char *name, int type,
                                 bool required, ld_status *st)
{
    const ld_json_node *n = ld_json_get(&v->r->doc, obj, name);
    if (!n) {
        if (required)
            *st = bad(v, "missing field \"%s\"", name);
        return NULL;
    }
    if (n->type != type) {
        *st = bad(v, "field \"%s\" is %s, expected %s", name, ld_json_type_name(n->type),
                  ld_json_type_name(type));
        return NULL;
    }
    return n;
}

/* Refuses members not in the allowed list (NULL-terminated). */
static ld_status only_fields(vctx *v, const ld_json_node *obj, const char *where,
                             const char *const *allowed)
{
    for (const ld_json_node *c = ld_json_first(&v->r->doc, obj); c; c = ld_json_next(&v->r->doc, c)) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strlen(*a) == c->key_len && !memcmp(*a, c->key, c->key_len);
        if (!known)
            return bad(v, "unknown field \"%.*s\" in %s", (int)LD_MIN(c->key_len, (size_t)64), c->key,
                       where);
    }
    return LD_OK;
}

static bool get_int(vctx *v, const ld_json_node *obj, const char *name, int64_t min, int64_t max,
                    bool required, bool *present, int64_t *out, ld_status *st)
{
    const ld_json_node *n = field(v, obj, name, LD_JSON_NUMBER, required, st);
    if (present)
        *present = n != NULL;
    if (!n)
        return !required && *st == LD_OK;
    if (!ld_json_int(n, min, max, out)) {
        *st = bad(v, "field \"%s\" is %.*s, expected an integer in [%lld, %lld]", name,
                  (int)n->len, n->str, (long long)min, (long long)max);
        return false;
    }
    return true;
}

/* A string field copied into out[size] (NUL-terminated); refuses embedded NUL and overlong. */
static bool get_text(vctx *v, const ld_json_node *obj, const char *name, char *out, size_t size,
                     ld_status *st)
{
    const ld_json_node *n = field(v, obj, name, LD_JSON_STRING, true, st);
    if (!n)
        return false;
    if (n->len >= size || memchr(n->str, '\0', n->len)) {
        *st = bad(v, "field \"%s\" is %s", name,
                  n->len >= size ? "too long" : "a string holding a NUL character");
        return false;
    }
    memcpy(out, n->str, n->len);
    out[n->len] = '\0';
    return true;
}

static bool text_is(const ld_json_node *n, const char *s)
{
    return n && n->type == LD_JSON_STRING && n->len == strlen(s) && !memcmp(n->str, s, n->len);
}

/* A statistic or head value: a finite number, or "NaN", "Infinity", "-Infinity". */
static bool get_value(vctx *v, const ld_json_node *n, const char *what, double *out, ld_status *st)
{
    if (n->type == LD_JSON_NUMBER) {
        if (ld_json_number(n, v->r->c_locale, out))
            return true;
        *st = bad(v, "%s = %.*s is out of the range of a double", what, (int)n->len, n->str);
        return false;
    }
    if (text_is(n, "NaN")) {
        *out = NAN;
    } else if (text_is(n, "Infinity")) {
        *out = INFINITY;
    } else if (text_is(n, "-Infinity")) {
        *out = -INFINITY;
    } else {
        *st = bad(v, "%s is %s, expected a number or \"NaN\", \"Infinity\", \"-Infinity\"", what,
                  ld_json_type_name(n->type));
        return false;
    }
    return true;
}

static char *dup_compact(ld_reader *r, const ld_json_node *n)
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
static bool get_tokens(vctx *v, const ld_json_node *obj, const char *name, int64_t min,
                       int32_t **out, size_t *n_out, ld_status *st)
{
    const ld_json_node *a = field(v, obj, name, LD_JSON_ARRAY, true, st);
    if (!a)
        return false;
    int32_t *t = a->count ? malloc(a->count * sizeof *t) : NULL;
    if (a->count && !t) {
        *st = stick(v->r, v->err, LD_E_NOMEM, "%s: cannot allocate %u tokens", v->r->path,
                    a->count);
        return false;
    }
    size_t i = 0;
    for (const ld_json_node *c = ld_json_first(&v->r->doc, a); c; c = ld_json_next(&v->r->doc, c)) {
        int64_t x;
        if (c->type != LD_JSON_NUMBER || !ld_json_int(c, min, INT32_MAX, &x)) {
            free(t);
            *st = bad(v, "%s[%zu] is not an integer in [%d, %d]", name, i, (int)min, INT32_MAX);
            return false;
        }
        t[i++] = (int32_t)x;
    }
    *out = t;
    *n_out = i;
    return true;
}

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

static ld_status parse_header(ld_reader *r, const ld_json_node *root, ld_error *err)
{
    vctx v = {r, err, "header", ""};
    ld_status st = LD_OK;
    static const char *const allowed[] = {"record", "format", "version", "implementation",
                                          "backend", "model", "input", "faults", "created",
                                          "tool", NULL};
    const ld_json_node *fmt = field(&v, root, "format", LD_JSON_STRING, true, &st);
    if (!fmt)
        return st;
    if (!text_is(fmt, LD_PROBE_FORMAT))
        return bad(&v, "format is \"%.*s\", not \"" LD_PROBE_FORMAT "\": not a layerdiff probe "
                   "stream", (int)LD_MIN(fmt->len, (size_t)64), fmt->str);
    int64_t version;
    if (!get_int(&v, root, "version", 0, INT_MAX, true, NULL, &version, &st))
        return st;
    if (version != LD_PROBE_VERSION)
        return stick(r, err, LD_E_UNSUPPORTED,
                     "%s:%llu: header: format version %lld is not supported (this reader knows "
                     "version %d)", r->path, (unsigned long long)r->line, (long long)version,
                     LD_PROBE_VERSION);
    if (only_fields(&v, root, "the header", allowed) != LD_OK)
        return r->sticky;
    ld_header_info *h = &r->header;
    h->version = (int)version;
    if (!get_text(&v, root, "implementation", h->implementation, sizeof h->implementation, &st))
        return st;
    if (!h->implementation[0])
        return bad(&v, "field \"implementation\" is empty");
    const ld_json_node *backend = field(&v, root, "backend", LD_JSON_OBJECT, true, &st);
    const ld_json_node *model = backend ? field(&v, root, "model", LD_JSON_OBJECT, true, &st) : NULL;
    const ld_json_node *input = model ? field(&v, root, "input", LD_JSON_OBJECT, true, &st) : NULL;
    const ld_json_node *faults = input ? field(&v, root, "faults", LD_JSON_ARRAY, true, &st) : NULL;
    const ld_json_node *tool = faults ? field(&v, root, "tool", LD_JSON_OBJECT, true, &st) : NULL;
    if (!tool)
        return st;
    static const char *const input_fields[] = {"tokens", "decode_steps", NULL};
    if (only_fields(&v, input, "header.input", input_fields) != LD_OK)
        return r->sticky;
    v.context = "header.input";
    int64_t steps;
    if (!get_tokens(&v, input, "tokens", 0, &r->tokens, &h->n_tokens, &st) ||
        !get_int(&v, input, "decode_steps", 0, INT_MAX, true, NULL, &steps, &st))
        return st;
    h->tokens = r->tokens;
    h->decode_steps = (int)steps;
    v.context = "header.tool";
    static const char *const tool_fields[] = {"name", "version", "git", NULL};
    if (only_fields(&v, tool, "header.tool", tool_fields) != LD_OK)
        return r->sticky;
    for (const char *const *f = tool_fields; *f; f++)
        if (!field(&v, tool, *f, LD_JSON_STRING, true, &st))
            return st;
    v.context = "header";
    const ld_json_node *fp = ld_json_get(&r->doc, model, "fingerprint");
    if (fp && fp->type != LD_JSON_STRING)
        return bad(&v, "model.fingerprint is %s, expected a string", ld_json_type_name(fp->type));
    const ld_json_node *created = field(&v, root, "created", LD_JSON_STRING, true, &st);
    if (!created)
        return st;
    r->created = strndup(created->str, created->len);
    if (r->created && (strlen(r->created) != created->len || !created_valid(r->created)))
        return bad(&v, "field \"created\" is not an ISO-8601 UTC time like 2026-01-31T12:00:00Z");
    r->faults = faults->count ? calloc(faults->count, sizeof *r->faults) : NULL;
    size_t nf = 0;
    bool oom = faults->count && !r->faults;
    for (const ld_json_node *c = ld_json_first(&r->doc, faults); c; c = ld_json_next(&r->doc, c)) {
        if (c->type != LD_JSON_STRING || memchr(c->str, '\0', c->len))
            return bad(&v, "faults[%zu] is not a string", nf);
        if (r->faults && !(r->faults[nf] = strndup(c->str, c->len)))
            oom = true;
        nf++;
    }
    h->n_faults = r->faults ? nf : 0;
    h->faults = (const char *const *)r->faults;
    r->backend_json = dup_compact(r, backend);
    r->model_json = dup_compact(r, model);
    r->input_json = dup_compact(r, input);
    r->tool_json = dup_compact(r, tool);
    r->fingerprint = fp ? strndup(fp->str, fp->len) : strdup("");
    if (!r->backend_json || !r->model_json || !r->input_json || !r->tool_json ||
        !r->fingerprint || !r->created || oom)
        return stick(r, err, LD_E_NOMEM, "%s: out of memory reading the header", r->path);
    h->backend_json = r->backend_json;
    h->model_json = r->model_json;
    h->input_json = r->input_json;
    h->tool = r->tool_json;
    h->fingerprint = r->fingerprint;
    h->created = r->created;
    return LD_OK;
}

/* ---- probes ------------------------------------------------------------------------------------ */

/* Grows the buffer whose pointer is at slot (any byte pointer) to need bytes. */
static bool grow(void *slot, size_t *cap, size_t need)
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
static void name_probe(vctx *v, const ld_probe *p)
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
static ld_status check_b64_sizes(vctx *v, const ld_probe *p, size_t len, size_t decoded,
                                 size_t expected)
{
    if (len % 4 != 0)
        return bad(v, "bad base64 in data.b64: length %zu is not a multiple of 4", len);
    if (p->encoding == LD_ENC_BASE64 && decoded != expected)
        return bad(v, "payload decodes to %zu bytes, expected %zu (%llu elements of %s)", decoded,
                   expected, (unsigned long long)p->numel, ld_dtype_name(p->data_dtype));
    if (p->encoding != LD_ENC_BASE64 && !ld_zlib_size_plausible(decoded, expected))
        return bad(v, "%zu bytes of zlib data cannot inflate to the expected %zu bytes (%llu "
                   "elements of %s)", decoded, expected, (unsigned long long)p->numel,
                   ld_dtype_name(p->data_dtype));
    return LD_OK;
}

/* The last checks of a decoded payload: its crc32, then the head values against its first
 * elements (first holds at least n_head of them). */
static ld_status check_crc_head(vctx *v, const ld_probe *p, uint32_t crc, const void *first)
{
    if (crc != p->crc32)
        return bad(v, "data.crc32 is %u but the decoded payload's crc32 is %u", (unsigned)p->crc32,
                   (unsigned)crc);
    for (int i = 0; i < p->n_head; i++) {
        double x = (double)ld_load_f32(first, p->data_dtype, (size_t)i);
        if (!same_value(x, p->head[i]))
            return bad(v, "head[%d] = %.17g disagrees with element %d of the payload (%.17g)", i,
                       p->head[i], i, x);
    }
    return LD_OK;
}

/* Decodes and checks data.b64 into probe->data. */
static ld_status decode_payload(vctx *v, ld_probe *p, const ld_json_node *b64)
{
    ld_reader *r = v->r;
    size_t expected;
    if (!ld_mul_size((size_t)p->numel, ld_dtype_size(p->data_dtype), &expected))
        return bad(v, "payload size overflows");
    size_t len = b64->len;
    size_t pad = 0;
    if (len >= 1 && b64->str[len - 1] == '=')
        pad = len >= 2 && b64->str[len - 2] == '=' ? 2 : 1;
    size_t decoded = len % 4 == 0 ? len / 4 * 3 - pad : 0;
    ld_status st = check_b64_sizes(v, p, len, decoded, expected);
    if (st != LD_OK)
        return st;
    if (!grow(&r->raw, &r->raw_cap, decoded))
        return stick(r, v->err, LD_E_NOMEM, "%s:%llu: cannot allocate %zu bytes for a payload",
                     r->path, (unsigned long long)r->line, decoded);
    size_t got, at;
    const char *why;
    if (!ld_b64_decode(b64->str, len, r->raw, &got, &at, &why))
        return bad(v, "bad base64 in data.b64 at character %zu: %s", at, why);
    const unsigned char *out = r->raw;
    if (p->encoding != LD_ENC_BASE64) {
        if (!grow(&r->inflated, &r->inflated_cap, expected))
            return stick(r, v->err, LD_E_NOMEM, "%s:%llu: cannot allocate %zu bytes for a payload",
                         r->path, (unsigned long long)r->line, expected);
        ld_error zerr;
        if (ld_zlib_decode(r->raw, got, r->inflated, expected, &zerr) != LD_OK)
            return bad(v, "data.b64: %s", zerr.msg);
        out = r->inflated;
        if (p->encoding == LD_ENC_SHUFFLE_ZLIB_BASE64) {
            if (!grow(&r->unshuffled, &r->unshuffled_cap, expected))
                return stick(r, v->err, LD_E_NOMEM, "%s:%llu: cannot allocate %zu bytes",
                             r->path, (unsigned long long)r->line, expected);
            ld_unshuffle(r->inflated, (size_t)p->numel, ld_dtype_size(p->data_dtype),
                         r->unshuffled);
            out = r->unshuffled;
        }
    }
    if ((st = check_crc_head(v, p, ld_crc32(out, expected), out)) != LD_OK)
        return st;
    p->data = out;
    p->data_bytes = expected;
    return LD_OK;
}

static bool dtype_from_node(const ld_json_node *n, ld_dtype *out)
{
    static const ld_dtype all[] = {LD_F32, LD_BF16, LD_F16};
    for (size_t i = 0; i < LD_ARRAY_LEN(all); i++)
        if (text_is(n, ld_dtype_name(all[i]))) {
            *out = all[i];
            return true;
        }
    return false;
}

/* How much of a probe record parse_probe sees and checks. */
typedef enum probe_mode {
    PROBE_WHOLE,    /* the whole line: payload decoded (decode_data) into the reader's buffers */
    PROBE_PREFIX,   /* the line up to data.b64's opening quote, closed by '"}}': b64 is empty and
                       crc32 may come later; nothing decoded */
    PROBE_STREAMED  /* the whole line without the payload's characters: fields only; the payload
                       was checked as it streamed */
} probe_mode;

static ld_status parse_probe(ld_reader *r, const ld_json_node *root, ld_probe *p, probe_mode mode,
                             ld_error *err)
{
    vctx v = {r, err, "probe", ""};
    ld_status st = LD_OK;
    memset(p, 0, sizeof *p);
    p->line = r->line;
    static const char *const allowed[] = {"record", "index", "step", "layer", "tag", "pos0",
                                          "dtype", "shape", "stats", "head", "data", NULL};
    /* The key first, so that later messages can name the probe. */
    int64_t step, layer = LD_NO_LAYER;
    bool has_layer;
    const ld_json_node *tag = field(&v, root, "tag", LD_JSON_STRING, true, &st);
    if (!tag)
        return st;
    if (tag->len > LD_TAG_NAME_MAX || memchr(tag->str, '\0', tag->len))
        return bad(&v, "field \"tag\" is not a tag name (1 to %d characters of A-Z a-z 0-9 _ . : "
                   "/ + -)", LD_TAG_NAME_MAX);
    memcpy(p->tag, tag->str, tag->len);
    p->tag[tag->len] = '\0';
    if (!ld_tag_name_valid(p->tag))
        return bad(&v, "field \"tag\" is \"%s\", not a tag name (1 to %d characters of A-Z a-z "
                   "0-9 _ . : / + -)", p->tag, LD_TAG_NAME_MAX);
    if (!get_int(&v, root, "step", 0, INT_MAX, true, NULL, &step, &st) ||
        !get_int(&v, root, "layer", 0, INT_MAX, false, &has_layer, &layer, &st))
        return st;
    p->step = (int)step;
    p->layer = has_layer ? (int)layer : LD_NO_LAYER;
    p->tag_id = ld_tag_from_name(p->tag);
    name_probe(&v, p);
    if (p->tag_id != LD_TAG_UNKNOWN && ld_tag_per_layer(p->tag_id) != has_layer)
        return bad(&v, has_layer ? "%s is a model-level tag but the record has a layer"
                                 : "%s is a per-layer tag but the record has no layer", p->tag);
    if (only_fields(&v, root, "a probe record", allowed) != LD_OK)
        return r->sticky;
    int64_t index, pos0;
    if (!get_int(&v, root, "index", 0, JSON_SAFE_INT, true, NULL, &index, &st) ||
        !get_int(&v, root, "pos0", 0, JSON_SAFE_INT, true, NULL, &pos0, &st))
        return st;
    if ((uint64_t)index != r->n_probes)
        return bad(&v, "index is %lld but %llu probes came before it (a record is missing or out "
                   "of order)", (long long)index, (unsigned long long)r->n_probes);
    p->index = (uint64_t)index;
    p->pos0 = pos0;
    const ld_json_node *dt = field(&v, root, "dtype", LD_JSON_STRING, true, &st);
    if (!dt)
        return st;
    if (!dtype_from_node(dt, &p->dtype))
        return bad(&v, "dtype is \"%.*s\", expected \"f32\", \"bf16\" or \"f16\"",
                   (int)LD_MIN(dt->len, (size_t)32), dt->str);
    const ld_json_node *shape = field(&v, root, "shape", LD_JSON_ARRAY, true, &st);
    if (!shape)
        return st;
    if (shape->count < 1 || shape->count > LD_MAX_NDIM)
        return bad(&v, "shape has %u dimensions, expected 1 to %d", shape->count, LD_MAX_NDIM);
    for (const ld_json_node *c = ld_json_first(&r->doc, shape); c; c = ld_json_next(&r->doc, c)) {
        int64_t d;
        if (c->type != LD_JSON_NUMBER || !ld_json_int(c, 0, JSON_SAFE_INT, &d))
            return bad(&v, "shape[%d] is not an integer in [0, 2^53]", p->ndim);
        p->shape[p->ndim++] = d;
    }
    if (!ld_shape_numel(p->shape, p->ndim, LD_RECORD_MAX_NUMEL, &p->numel))
        return bad(&v, "shape has more than 2^40 elements (its size overflows)");
    /* stats */
    const ld_json_node *stats = field(&v, root, "stats", LD_JSON_OBJECT, true, &st);
    if (!stats)
        return st;
    static const char *const stat_names[] = {"min", "max", "mean", "std", "l2", "absmax",
                                             "nan", "inf", NULL};
    if (only_fields(&v, stats, "stats", stat_names) != LD_OK)
        return r->sticky;
    double *sv[6] = {&p->stats.min, &p->stats.max, &p->stats.mean, &p->stats.std, &p->stats.l2,
                     &p->stats.absmax};
    for (int i = 0; i < 6; i++) {
        const ld_json_node *n = ld_json_get(&r->doc, stats, stat_names[i]);
        char what[32];
        snprintf(what, sizeof what, "stats.%s", stat_names[i]);
        if (!n)
            return bad(&v, "missing field \"%s\"", what);
        if (!get_value(&v, n, what, sv[i], &st))
            return st;
    }
    int64_t cnt;
    if (!get_int(&v, stats, "nan", 0, JSON_SAFE_INT, true, NULL, &cnt, &st))
        return st;
    p->stats.nan = (uint64_t)cnt;
    if (!get_int(&v, stats, "inf", 0, JSON_SAFE_INT, true, NULL, &cnt, &st))
        return st;
    p->stats.inf = (uint64_t)cnt;
    if (p->stats.nan > p->numel || p->stats.inf > p->numel - p->stats.nan)
        return bad(&v, "stats count %llu NaN and %llu Inf among %llu elements",
                   (unsigned long long)p->stats.nan, (unsigned long long)p->stats.inf,
                   (unsigned long long)p->numel);
    /* head */
    const ld_json_node *head = field(&v, root, "head", LD_JSON_ARRAY, true, &st);
    if (!head)
        return st;
    uint64_t want_head = LD_MIN(p->numel, (uint64_t)LD_HEAD_COUNT);
    if (head->count != want_head)
        return bad(&v, "head has %u values, expected %llu (the first min(16, numel))",
                   head->count, (unsigned long long)want_head);
    for (const ld_json_node *c = ld_json_first(&r->doc, head); c; c = ld_json_next(&r->doc, c)) {
        char what[16];
        snprintf(what, sizeof what, "head[%d]", p->n_head);
        if (!get_value(&v, c, what, &p->head[p->n_head], &st))
            return st;
        p->n_head++;
    }
    /* data */
    const ld_json_node *data = ld_json_get(&r->doc, root, "data");
    if (!data)
        return LD_OK;
    if (data->type != LD_JSON_OBJECT)
        return bad(&v, "field \"data\" is %s, expected an object", ld_json_type_name(data->type));
    static const char *const data_fields[] = {"encoding", "dtype", "crc32", "b64", NULL};
    if (only_fields(&v, data, "data", data_fields) != LD_OK)
        return r->sticky;
    const ld_json_node *enc = field(&v, data, "encoding", LD_JSON_STRING, true, &st);
    const ld_json_node *ddt = enc ? field(&v, data, "dtype", LD_JSON_STRING, true, &st) : NULL;
    const ld_json_node *b64 = ddt ? field(&v, data, "b64", LD_JSON_STRING, true, &st) : NULL;
    int64_t crc = 0;
    if (!b64 || !get_int(&v, data, "crc32", 0, UINT32_MAX, mode != PROBE_PREFIX, NULL, &crc, &st))
        return st;
    char enc_name[32] = "";
    if (enc->len < sizeof enc_name && !memchr(enc->str, '\0', enc->len))
        memcpy(enc_name, enc->str, enc->len);
    if (!ld_encoding_parse(enc_name, &p->encoding))
        return bad(&v, "data.encoding is \"%.*s\", expected \"base64\", \"zlib+base64\" or "
                   "\"shuffle+zlib+base64\"", (int)LD_MIN(enc->len, (size_t)32), enc->str);
    if (!dtype_from_node(ddt, &p->data_dtype))
        return bad(&v, "data.dtype is \"%.*s\", expected \"f32\", \"bf16\" or \"f16\"",
                   (int)LD_MIN(ddt->len, (size_t)32), ddt->str);
    p->crc32 = (uint32_t)crc;
    p->has_data = true;
    if (!r->opt.decode_data || mode != PROBE_WHOLE)
        return LD_OK;
    return decode_payload(&v, p, b64);
}

/* ---- streamed payloads (stream_data) ------------------------------------------------------------
 *
 * A probe record as the writer writes it ends with "data":{...,"b64":"<payload>","crc32":N}}. The
 * line up to b64's opening quote (the prefix, a few hundred bytes) is parsed on its own, closed by
 * '"}}', and checked as a whole record would be; the payload's characters are then decoded as
 * they come (ld_b64_scan, ld_zstream) and handed out; the rest of the line (the suffix) is parsed
 * with the prefix at the end, the record without its payload, so every field check runs as on a
 * whole line. Whatever goes wrong is reported with the status and message a whole read gives:
 * checks that a whole read makes before others are looked at first (the line's length and end,
 * JSON, fields, base64, zlib, crc32, head), so nothing found early in the payload is reported
 * before the line has been read to its end. Records that do not fit this shape are read whole. */

static const char b64_marker[] = "\"b64\":\"";

/* Makes the unread input hold at least want bytes, unless it ends first. */
static ld_status fill(ld_reader *r, size_t want, ld_error *err)
{
    while (r->end - r->start < want && !r->eof) {
        size_t pending = r->end - r->start;
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, pending);
            r->end = pending;
            r->start = 0;
        }
        r->scanned = r->start;
        size_t q = quantum(r), need = want + q / 2;
        if (r->cap < need) {
            char *b = realloc(r->buf, LD_MAX(need, q));
            if (!b)
                return stick(r, err, LD_E_NOMEM, "%s:%llu: cannot allocate a read buffer", r->path,
                             (unsigned long long)r->line);
            r->buf = b;
            r->cap = LD_MAX(need, q);
        }
        long long got = source_read(r, LD_MIN(r->cap - r->end, q), err);
        if (got < 0)
            return r->sticky;
        if (got == 0)
            r->eof = true;
        r->end += (size_t)got;
    }
    return LD_OK;
}

static ld_status line_too_long(ld_reader *r, ld_error *err)
{
    return stick(r, err, LD_E_INPUT, "%s:%llu: line longer than the %zu-byte limit", r->path,
                 (unsigned long long)r->line, r->opt.max_line);
}

/* Consumes n bytes of the streaming line. */
static ld_status consume(ld_reader *r, size_t n, ld_error *err)
{
    r->start += n;
    r->scanned = r->start;
    r->bytes += n;
    r->ps.line_len += n;
    return r->ps.line_len > r->opt.max_line ? line_too_long(r, err) : LD_OK;
}

/* The input ended inside the streaming line: what read_line says of a last line without '\n'. */
static ld_status cut_inside(ld_reader *r, ld_error *err)
{
    size_t pending = r->end - r->start;
    if (r->ps.line_len + pending > r->opt.max_line)
        return line_too_long(r, err);
    r->bytes += pending;
    r->start = r->scanned = r->end;
    return stick(r, err, LD_E_TRUNCATED, "%s:%llu: stream truncated: the last line is cut short (no "
                 "newline); last complete probe: %s%s", r->path, (unsigned long long)r->line,
                 last_key_text(r), r->gz_cut ? " (the gzip data ends early)" : "");
}

/* Reads the line on to its '\n' (consumed), copying what comes before it to the suffix when
 * keep. */
static ld_status line_rest(ld_reader *r, bool keep, ld_error *err)
{
    struct pstream *ps = &r->ps;
    for (;;) {
        size_t avail = r->end - r->start;
        const char *from = r->buf + r->start;
        const char *nl = memchr(from, '\n', avail);
        size_t n = nl ? (size_t)(nl - from) : avail;
        if (keep && n) {
            if (!grow(&ps->sfx, &ps->sfx_cap, ps->sfx_len + n))
                return stick(r, err, LD_E_NOMEM, "%s:%llu: cannot allocate %zu bytes for a line",
                             r->path, (unsigned long long)r->line, ps->sfx_len + n);
            memcpy(ps->sfx + ps->sfx_len, from, n);
            ps->sfx_len += n;
        }
        ld_status st = consume(r, n, err);
        if (st != LD_OK)
            return st;
        if (nl) {
            r->start++;
            r->scanned = r->start;
            r->bytes++;
            return LD_OK;
        }
        if (r->eof)
            return cut_inside(r, err);
        if ((st = fill(r, 1, err)) != LD_OK)
            return st;
    }
}

static bool scan_over(const struct pstream *ps) { return ps->scan.closed || ps->scan.json_bad; }

/* Runs the string scanner on the input until it decodes something into out[0..room) (room >= 3
 * while decoding), or the string closes, or a JSON error stops it. */
static ld_status scan_more(ld_reader *r, unsigned char *out, size_t room, size_t *produced,
                           ld_error *err)
{
    struct pstream *ps = &r->ps;
    *produced = 0;
    while (!scan_over(ps)) {
        size_t avail = r->end - r->start, made;
        size_t used = ld_b64_scan_feed(&ps->scan, r->buf + r->start, avail, out, room, &made);
        ld_status st = consume(r, used, err);
        if (st != LD_OK)
            return st;
        *produced = made;
        if (made || scan_over(ps))
            return LD_OK;
        /* it stopped for want of input: all of it was used, or an escape runs past it */
        if (r->eof)
            return cut_inside(r, err);
        if ((st = fill(r, r->end - r->start + 16, err)) != LD_OK)
            return st;
    }
    return LD_OK;
}

/* zlib: inflates the staged compressed bytes into out[0..room), staging more of the string as
 * needed. *made 0: nothing more can come (the string is over and the stream settled: ended,
 * failed or cut short), or out is full. */
static ld_status zpump(ld_reader *r, unsigned char *out, size_t room, size_t *made, ld_error *err)
{
    struct pstream *ps = &r->ps;
    *made = 0;
    for (;;) {
        bool input_over = scan_over(ps);
        if (ps->z.failed) {
            ps->stage_pos = ps->stage_len;
        } else {
            size_t got, left = ps->stage_len - ps->stage_pos;
            ps->stage_pos += ld_zstream_feed(&ps->z, ps->stage + ps->stage_pos, left, out, room,
                                             input_over, &got);
            if (got) {
                *made = got;
                return LD_OK;
            }
        }
        if (ps->stage_pos < ps->stage_len || input_over)
            return LD_OK;
        ps->stage_pos = ps->stage_len = 0;
        ld_status st = scan_more(r, ps->stage, STAGE, &ps->stage_len, err);
        if (st != LD_OK)
            return st;
    }
}

/* base64: decoded bytes into out[0..room). *made 0: the string is over. */
static ld_status b64_produce(ld_reader *r, unsigned char *out, size_t room, size_t *made,
                             ld_error *err)
{
    struct pstream *ps = &r->ps;
    for (;;) {
        if (ps->stage_pos < ps->stage_len) {
            size_t n = LD_MIN(room, ps->stage_len - ps->stage_pos);
            memcpy(out, ps->stage + ps->stage_pos, n);
            ps->stage_pos += n;
            *made = n;
            return LD_OK;
        }
        *made = 0;
        if (scan_over(ps))
            return LD_OK;
        ps->stage_pos = ps->stage_len = 0;
        ld_status st;
        if (room >= STAGE) { /* large reads decode straight into the caller's buffer */
            if ((st = scan_more(r, out, room, made, err)) != LD_OK || *made)
                return st;
            continue;
        }
        if ((st = scan_more(r, ps->stage, STAGE, &ps->stage_len, err)) != LD_OK)
            return st;
    }
}

/* shuffle: bytes [from, from + n) of the element-order payload, gathered from the byte planes. */
static void gather(const unsigned char *planes, size_t numel, size_t esize, size_t from, size_t n,
                   unsigned char *out)
{
    size_t j = 0;
    for (; j < n && (from + j) % esize; j++) /* the end of a partial first element */
        out[j] = planes[(from + j) % esize * numel + (from + j) / esize];
    size_t e0 = (from + j) / esize, whole = (n - j) / esize;
    for (size_t p = 0; p < esize; p++) {
        const unsigned char *plane = planes + p * numel + e0;
        unsigned char *o = out + j + p;
        for (size_t i = 0; i < whole; i++)
            o[i * esize] = plane[i];
    }
    for (j += whole * esize; j < n; j++) /* the start of a partial last element */
        out[j] = planes[(from + j) % esize * numel + (from + j) / esize];
}

static bool same_record(const ld_probe *a, const ld_probe *b)
{
    return a->index == b->index && a->step == b->step && a->layer == b->layer &&
           !strcmp(a->tag, b->tag) && a->pos0 == b->pos0 && a->dtype == b->dtype &&
           a->ndim == b->ndim && !memcmp(a->shape, b->shape, sizeof a->shape) &&
           a->numel == b->numel && !memcmp(&a->stats, &b->stats, sizeof a->stats) &&
           a->n_head == b->n_head && !memcmp(a->head, b->head, sizeof a->head) &&
           a->has_data == b->has_data && a->encoding == b->encoding &&
           a->data_dtype == b->data_dtype;
}

/* The record's line is read past its payload's characters (or a JSON error in them): reads it to
 * its end and makes every check a whole read makes before crc32 and the head, in its order. */
static ld_status finish_line(ld_reader *r, ld_error *err)
{
    struct pstream *ps = &r->ps;
    ld_probe *p = &r->probe;
    ld_status st;
    size_t made;
    /* the rest of the payload's characters: decoded and dropped (a base64 payload too long, zlib
     * output past the expected size), or only scanned */
    do {
        if (!r->opt.decode_data)
            st = scan_more(r, NULL, 0, &made, err);
        else if (p->encoding == LD_ENC_BASE64)
            st = scan_more(r, ps->discard, STAGE, &made, err);
        else
            st = zpump(r, ps->discard, STAGE, &made, err);
        if (st != LD_OK)
            return st;
        if (!made && !scan_over(ps)) /* zpump stopped with input left: cannot happen */
            return stick(r, err, LD_E_INTERNAL, "%s:%llu: inflating stalled", r->path,
                         (unsigned long long)r->line);
    } while (!scan_over(ps) || made);
    uint64_t closing = ps->scan.line_off - 1; /* line offset of the closing quote */
    if (ps->scan.json_bad) {
        if ((st = line_rest(r, false, err)) != LD_OK)
            return st;
        return stick(r, err, LD_E_INPUT, "%s:%llu: not valid JSON at column %llu: %s", r->path,
                     (unsigned long long)r->line, (unsigned long long)ps->scan.json_at + 1,
                     ps->scan.json_msg);
    }
    ps->sfx_len = 0;
    if ((st = line_rest(r, true, err)) != LD_OK)
        return st;
    /* The record without its payload's characters: prefix, '"', suffix. */
    size_t syn_len = ps->pfx_len + 1 + ps->sfx_len;
    if (!grow(&ps->syn, &ps->syn_cap, syn_len))
        return stick(r, err, LD_E_NOMEM, "%s:%llu: cannot allocate %zu bytes for a line", r->path,
                     (unsigned long long)r->line, syn_len);
    memcpy(ps->syn, ps->pfx, ps->pfx_len);
    ps->syn[ps->pfx_len] = '"';
    memcpy(ps->syn + ps->pfx_len + 1, ps->sfx, ps->sfx_len);
    ld_json_error je;
    if (!ld_json_parse(&r->doc, ps->syn, syn_len, &je)) {
        /* offsets past the payload move by its characters' length in the line */
        uint64_t at = je.offset < ps->pfx_len ? je.offset : je.offset + (closing - ps->pfx_len);
        return stick(r, err, LD_E_INPUT, "%s:%llu: not valid JSON at column %llu: %s", r->path,
                     (unsigned long long)r->line, (unsigned long long)at + 1, je.msg);
    }
    ld_probe full;
    if ((st = parse_probe(r, &r->doc.nodes[0], &full, PROBE_STREAMED, err)) != LD_OK)
        return st;
    if (!same_record(&full, p))
        return stick(r, err, LD_E_INTERNAL, "%s:%llu: the record read whole differs from its "
                     "prefix", r->path, (unsigned long long)r->line);
    p->crc32 = full.crc32;
    ps->line_checked = true;
    if (!r->opt.decode_data)
        return LD_OK;
    /* the payload as a whole, as decode_payload checks it */
    vctx v = {r, err, "probe", ""};
    name_probe(&v, p);
    if ((st = check_b64_sizes(&v, p, (size_t)ps->scan.len,
                              (size_t)ld_b64_scan_decoded_len(&ps->scan), ps->expected)) != LD_OK)
        return st;
    if (ps->scan.b64_bad)
        return bad(&v, "bad base64 in data.b64 at character %llu: %s",
                   (unsigned long long)ps->scan.bad_at, ps->scan.bad_why);
    ld_error zerr;
    if (p->encoding != LD_ENC_BASE64 && ld_zstream_verdict(&ps->z, &zerr) != LD_OK)
        return bad(&v, "data.b64: %s", zerr.msg);
    return LD_OK;
}

static void set_last_key(ld_reader *r)
{
    ld_key key = {r->probe.step, r->probe.layer, ""};
    memcpy(key.tag, r->probe.tag, sizeof key.tag);
    ld_key_format(&key, r->last_key, sizeof r->last_key);
}

/* The record is complete and valid: it counts. */
static void stream_done(ld_reader *r)
{
    r->ps.finished = true;
    ld_zstream_end(&r->ps.z);
    r->n_probes++;
    set_last_key(r);
}

/* shuffle: inflates every byte plane into r->inflated and reads the line to its end. */
static ld_status load_planes(ld_reader *r, ld_error *err)
{
    struct pstream *ps = &r->ps;
    for (;;) {
        size_t cap = LD_MIN(r->inflated_cap, ps->expected), done = ps->z.out_done;
        if (done == cap && cap < ps->expected) { /* grown as the data comes: a hostile size
                                                    claim costs nothing until it inflates */
            size_t want = LD_MIN(ps->expected, LD_MAX(cap * 2, READ_CHUNK));
            if (!grow(&r->inflated, &r->inflated_cap, want))
                return stick(r, err, LD_E_NOMEM, "%s:%llu: cannot allocate %zu bytes for a "
                             "payload", r->path, (unsigned long long)r->line, want);
            cap = want;
        }
        size_t made;
        ld_status st = zpump(r, r->inflated ? r->inflated + done : NULL, cap - done, &made, err);
        if (st != LD_OK)
            return st;
        if (!made && (scan_over(ps) || ps->z.failed))
            break;
    }
    ps->planes_ready = true;
    return finish_line(r, err);
}

/* Hands out the next payload bytes of a streaming probe; checks the record when they are all
 * out. */
static ld_status stream_read(ld_reader *r, unsigned char *out, size_t max, size_t *got,
                             ld_error *err)
{
    struct pstream *ps = &r->ps;
    ld_probe *p = &r->probe;
    ld_status st;
    *got = 0;
    if (p->encoding == LD_ENC_SHUFFLE_ZLIB_BASE64 && !ps->planes_ready &&
        (st = load_planes(r, err)) != LD_OK)
        return st;
    size_t want = LD_MIN(max, ps->expected - ps->handed), n = 0;
    size_t esize = ld_dtype_size(p->data_dtype);
    size_t head_bytes = (size_t)p->n_head * esize;
    while (n < want) {
        size_t made = 0;
        if (p->encoding == LD_ENC_BASE64) {
            st = b64_produce(r, out + n, want - n, &made, err);
        } else if (p->encoding == LD_ENC_ZLIB_BASE64) {
            st = zpump(r, out + n, want - n, &made, err);
        } else {
            made = want - n;
            gather(r->inflated, (size_t)p->numel, esize, ps->handed, made, out + n);
            st = LD_OK;
        }
        if (st != LD_OK)
            return st;
        if (!made)
            break;
        if (ps->handed < head_bytes) {
            size_t k = LD_MIN(made, head_bytes - ps->handed);
            memcpy(ps->head + ps->handed, out + n, k);
        }
        for (size_t off = 0; off < made; off += (size_t)1 << 30)
            ps->crc = (uint32_t)crc32(ps->crc, out + n + off, (uInt)LD_MIN(made - off, (size_t)1 << 30));
        ps->handed += made;
        n += made;
    }
    if (ps->handed == ps->expected || n < want) {
        if (!ps->line_checked && (st = finish_line(r, err)) != LD_OK)
            return st;
        if (ps->handed != ps->expected) /* every way a payload can fall short is refused above */
            return stick(r, err, LD_E_INTERNAL, "%s:%llu: payload ended after %zu of %zu bytes",
                         r->path, (unsigned long long)r->line, ps->handed, ps->expected);
        vctx v = {r, err, "probe", ""};
        name_probe(&v, p);
        if ((st = check_crc_head(&v, p, ps->crc, ps->head)) != LD_OK)
            return st;
        stream_done(r);
    }
    *got = n;
    return LD_OK;
}

static const ld_json_node *last_member(const ld_json_doc *d, const ld_json_node *obj)
{
    const ld_json_node *last = NULL;
    for (const ld_json_node *c = ld_json_first(d, obj); c; c = ld_json_next(d, c))
        last = c;
    return last;
}

static bool key_is(const ld_json_node *n, const char *name)
{
    return n && n->key && n->key_len == strlen(name) && !memcmp(n->key, name, n->key_len);
}

/* At the start of a line: streams the record when it is a probe laid out as the writer writes
 * it (*streamed), else leaves the line to the whole path untouched. */
static ld_status stream_start(ld_reader *r, bool *streamed, ld_error *err)
{
    struct pstream *ps = &r->ps;
    ld_status st;
    *streamed = false;
    size_t look;
    const char *nl;
    for (;;) { /* the line's first PREFIX_MAX bytes, or all of it */
        size_t avail = r->end - r->start;
        look = LD_MIN(avail, PREFIX_MAX);
        nl = memchr(r->buf + r->start, '\n', look);
        if (nl || look == PREFIX_MAX || r->eof)
            break;
        if ((st = fill(r, avail + 1, err)) != LD_OK)
            return st;
    }
    const char *line = r->buf + r->start;
    if (nl)
        look = (size_t)(nl - line);
    const char *m = memmem(line, look, b64_marker, sizeof b64_marker - 1);
    if (!m)
        return LD_OK;
    size_t plen = (size_t)(m - line) + sizeof b64_marker - 1;
    if (plen > r->opt.max_line)
        return LD_OK;
    if (!grow(&ps->pfx, &ps->pfx_cap, plen) ||
        !grow(&ps->syn, &ps->syn_cap, plen + 3) ||
        (!ps->stage && !(ps->stage = malloc(STAGE))) ||
        (!ps->discard && !(ps->discard = malloc(STAGE))))
        return stick(r, err, LD_E_NOMEM, "%s: cannot allocate stream buffers", r->path);
    memcpy(ps->pfx, line, plen);
    ps->pfx_len = plen;
    memcpy(ps->syn, line, plen);
    memcpy(ps->syn + plen, "\"}}", 3);
    /* The prefix closed after an empty b64 must parse as a probe record whose last member is data,
     * whose last member is that b64: then the marker is where the payload starts. */
    ld_json_error je;
    if (!ld_json_parse(&r->doc, ps->syn, plen + 3, &je))
        return LD_OK;
    const ld_json_node *root = &r->doc.nodes[0];
    if (root->type != LD_JSON_OBJECT || !text_is(ld_json_get(&r->doc, root, "record"), "probe"))
        return LD_OK;
    const ld_json_node *data = last_member(&r->doc, root);
    if (!key_is(data, "data") || data->type != LD_JSON_OBJECT)
        return LD_OK;
    const ld_json_node *b64 = last_member(&r->doc, data);
    if (!key_is(b64, "b64") || b64->type != LD_JSON_STRING || b64->len != 0 ||
        b64->str != ps->syn + plen)
        return LD_OK;
    /* Every field a whole read checks before the payload, checked now; anything wrong is left to
     * the whole read, which says it in its own order. */
    ld_probe pr;
    ld_error trial;
    if (parse_probe(r, root, &pr, PROBE_PREFIX, &trial) != LD_OK) {
        r->sticky = LD_OK;
        return LD_OK;
    }
    /* A custom tag's key could still gain a layer after data; table tags cannot change. */
    if (pr.tag_id == LD_TAG_UNKNOWN && pr.layer == LD_NO_LAYER)
        return LD_OK;
    size_t expected;
    if (!ld_mul_size((size_t)pr.numel, ld_dtype_size(pr.data_dtype), &expected))
        return LD_OK;
    /* The record streams. */
    ld_zstream_end(&ps->z);
    ps->active = true;
    ps->finished = ps->planes_ready = ps->line_checked = false;
    ps->sfx_len = 0;
    ps->line_len = 0;
    ps->stage_pos = ps->stage_len = 0;
    ps->expected = expected;
    ps->handed = 0;
    ps->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    r->line++;
    ld_b64_scan_init(&ps->scan, plen - 1, r->opt.decode_data);
    if ((st = consume(r, plen, err)) != LD_OK)
        return st;
    if (r->opt.decode_data && pr.encoding != LD_ENC_BASE64 &&
        ld_zstream_init(&ps->z, expected, err) != LD_OK)
        return stick(r, err, LD_E_NOMEM, "%s:%llu: zlib cannot start inflating", r->path,
                     (unsigned long long)r->line);
    pr.line = r->line;
    pr.data = NULL;
    pr.data_bytes = r->opt.decode_data ? expected : 0;
    pr.streaming = r->opt.decode_data;
    r->probe = pr;
    *streamed = true;
    return LD_OK;
}

ld_status ld_reader_read_data(ld_reader *r, void *buf, size_t max_bytes, size_t *got,
                              ld_error *err)
{
    if (got)
        *got = 0;
    if (!r || !got || (!buf && max_bytes))
        return ld_error_set(err, LD_E_USAGE, "NULL reader or buffer");
    if (r->sticky != LD_OK) {
        if (err)
            *err = r->sticky_err;
        return r->sticky;
    }
    if (!r->current || !r->probe.has_data)
        return ld_error_set(err, LD_E_USAGE, "%s: no current probe with a payload to read",
                            r->path);
    if (!r->opt.decode_data)
        return ld_error_set(err, LD_E_USAGE, "%s: the reader was opened without decode_data",
                            r->path);
    if (!r->ps.active) { /* decoded whole */
        size_t n = LD_MIN(max_bytes, r->probe.data_bytes - r->whole_pos);
        if (n)
            memcpy(buf, (const unsigned char *)r->probe.data + r->whole_pos, n);
        r->whole_pos += n;
        *got = n;
        return LD_OK;
    }
    if (r->ps.finished)
        return LD_OK;
    return stream_read(r, buf, max_bytes, got, err);
}

ld_status ld_reader_skip_data(ld_reader *r, ld_error *err)
{
    if (!r)
        return ld_error_set(err, LD_E_USAGE, "NULL reader");
    if (r->sticky != LD_OK) {
        if (err)
            *err = r->sticky_err;
        return r->sticky;
    }
    while (r->ps.active && !r->ps.finished) {
        size_t got;
        ld_status st = stream_read(r, r->ps.discard, STAGE, &got, err);
        if (st != LD_OK)
            return st;
    }
    return LD_OK;
}

/* ---- end --------------------------------------------------------------------------------------- */

static ld_status parse_end(ld_reader *r, const ld_json_node *root, ld_error *err)
{
    vctx v = {r, err, "end record", ""};
    ld_status st = LD_OK;
    static const char *const allowed[] = {"record", "status", "probes", "tokens", "decoded",
                                          "last_key", "message", NULL};
    if (only_fields(&v, root, "the end record", allowed) != LD_OK)
        return r->sticky;
    const ld_json_node *status = field(&v, root, "status", LD_JSON_STRING, true, &st);
    if (!status)
        return st;
    bool ok = text_is(status, "ok");
    if (!ok && !text_is(status, "error"))
        return bad(&v, "status is \"%.*s\", expected \"ok\" or \"error\"",
                   (int)LD_MIN(status->len, (size_t)32), status->str);
    int64_t probes;
    if (!get_int(&v, root, "probes", 0, JSON_SAFE_INT, true, NULL, &probes, &st))
        return st;
    if ((uint64_t)probes != r->n_probes)
        return bad(&v, "it counts %lld probes but the stream holds %llu", (long long)probes,
                   (unsigned long long)r->n_probes);
    if (!get_tokens(&v, root, "tokens", -1, &r->end_tokens, &r->end_info.n_tokens, &st) ||
        !get_tokens(&v, root, "decoded", 0, &r->end_decoded, &r->end_info.n_decoded, &st))
        return st;
    const ld_json_node *lk = field(&v, root, "last_key", LD_JSON_STRING, true, &st);
    if (!lk)
        return st;
    if (lk->len != strlen(r->last_key) || memcmp(lk->str, r->last_key, lk->len))
        return bad(&v, "last_key is \"%.*s\" but the last probe read is \"%s\"",
                   (int)LD_MIN(lk->len, (size_t)200), lk->str, r->last_key);
    const ld_json_node *msg = field(&v, root, "message", LD_JSON_STRING, false, &st);
    if (st != LD_OK)
        return st;
    if (!ok && !msg)
        return bad(&v, "status is \"error\" but there is no message");
    r->end_last_key = strndup(lk->str, lk->len);
    r->end_message = msg ? strndup(msg->str, msg->len) : strdup("");
    if (!r->end_last_key || !r->end_message)
        return stick(r, err, LD_E_NOMEM, "%s: out of memory reading the end record", r->path);
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

/* ---- records ----------------------------------------------------------------------------------- */

typedef enum rec_kind { REC_HEADER, REC_PROBE, REC_END } rec_kind;

/* Reads and parses the next line; *kind tells which record it is. */
static ld_status next_record(ld_reader *r, rec_kind *kind, const ld_json_node **root, ld_error *err)
{
    char *line;
    size_t len;
    line_kind lk = read_line(r, &line, &len, err);
    if (lk == LINE_ERROR)
        return r->sticky;
    const char *cut = r->gz_cut ? " (the gzip data ends early)" : "";
    if (lk == LINE_EOF) {
        if (r->bytes == 0)
            return stick(r, err, LD_E_TRUNCATED, "%s: stream truncated: the file is empty (no "
                         "header record)%s", r->path, cut);
        return stick(r, err, LD_E_TRUNCATED, "%s: stream truncated after line %llu: no end "
                     "record; last complete probe: %s%s", r->path, (unsigned long long)r->line,
                     last_key_text(r), cut);
    }
    if (lk == LINE_PARTIAL)
        return stick(r, err, LD_E_TRUNCATED, "%s:%llu: stream truncated: the last line is cut "
                     "short (no newline); last complete probe: %s%s", r->path,
                     (unsigned long long)r->line, last_key_text(r), cut);
    if (r->line == 1 && len >= 3 && !memcmp(line, "\xef\xbb\xbf", 3)) { /* UTF-8 byte order mark */
        line += 3;
        len -= 3;
    }
    ld_json_error je;
    if (!ld_json_parse(&r->doc, line, len, &je))
        return stick(r, err, LD_E_INPUT, "%s:%llu: not valid JSON at column %zu: %s", r->path,
                     (unsigned long long)r->line, je.offset + 1, je.msg);
    *root = &r->doc.nodes[0];
    if ((*root)->type != LD_JSON_OBJECT)
        return stick(r, err, LD_E_INPUT, "%s:%llu: a record must be a JSON object, not %s",
                     r->path, (unsigned long long)r->line, ld_json_type_name((*root)->type));
    const ld_json_node *rec = ld_json_get(&r->doc, *root, "record");
    if (!rec)
        return stick(r, err, LD_E_INPUT, "%s:%llu: no \"record\" field (header, probe or end)",
                     r->path, (unsigned long long)r->line);
    if (text_is(rec, "header"))
        *kind = REC_HEADER;
    else if (text_is(rec, "probe"))
        *kind = REC_PROBE;
    else if (text_is(rec, "end"))
        *kind = REC_END;
    else if (rec->type == LD_JSON_STRING)
        return stick(r, err, LD_E_INPUT, "%s:%llu: unknown record kind \"%.*s\" (expected header, "
                     "probe or end)", r->path, (unsigned long long)r->line,
                     (int)LD_MIN(rec->len, (size_t)64), rec->str);
    else
        return stick(r, err, LD_E_INPUT, "%s:%llu: field \"record\" is %s, expected a string",
                     r->path, (unsigned long long)r->line, ld_json_type_name(rec->type));
    return LD_OK;
}

void ld_reader_options_init(ld_reader_options *opt)
{
    opt->max_line = DEFAULT_MAX_LINE;
    opt->decode_data = true;
    opt->stream_data = false;
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
        st = stick(r, err, LD_E_INPUT, "%s:%llu: the first record is %s, not the header (a probe "
                   "stream starts with its header record)", r->path, (unsigned long long)r->line,
                   kind == REC_PROBE ? "a probe" : "the end record");
    if (st == LD_OK)
        st = parse_header(r, root, err);
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
        if ((st = stream_start(r, &streamed, err)) != LD_OK)
            return st;
        if (streamed) {
            if (!r->opt.decode_data) { /* nothing to hand out: the line is read and checked now */
                if ((st = finish_line(r, err)) != LD_OK)
                    return st;
                stream_done(r);
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
        return stick(r, err, LD_E_INPUT, "%s:%llu: a second header record (the header comes "
                     "first, once)", r->path, (unsigned long long)r->line);
    if (kind == REC_END) {
        if ((st = parse_end(r, root, err)) != LD_OK)
            return st;
        char *line;
        size_t len;
        uint64_t end_line = r->line;
        line_kind lk = read_line(r, &line, &len, err);
        if (lk == LINE_ERROR)
            return r->sticky;
        if (lk != LINE_EOF)
            return stick(r, err, LD_E_INPUT, "%s:%llu: data after the end record (line %llu)",
                         r->path, (unsigned long long)r->line, (unsigned long long)end_line);
        r->ended = true;
        return LD_OK;
    }
    if ((st = parse_probe(r, root, &r->probe, PROBE_WHOLE, err)) != LD_OK)
        return st;
    r->n_probes++;
    set_last_key(r);
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
    free(r->tool_json);
    free(r->fingerprint);
    free(r->created);
    free(r->tokens);
    for (size_t i = 0; r->faults && i < r->header.n_faults; i++)
        free(r->faults[i]);
    free(r->faults);
    free(r->end_message);
    free(r->end_last_key);
    free(r->end_tokens);
    free(r->end_decoded);
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

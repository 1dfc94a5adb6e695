/* writer.c — the probe sink: header, probe and end records written as JSON lines (probes.h).
 * Each record is built whole in memory and leaves in one write() loop on an unbuffered file
 * descriptor, so a process killed at any moment leaves only complete lines behind it (and at most
 * one partial last line, which readers report as truncation). No stdio, no printing, no exit. */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "codec.h"
#include "json.h"
#include "json_out.h"
#include "keyfilter.h"
#include "layerdiff/probes.h"
#include "ld_version.h"
#include "record.h"
#include "util.h"

/* The error end record's prefix: fixed fields, a 20-digit count and the last key escaped (at most
 * 6 bytes a character). */
#define EMERGENCY_PREFIX_MAX (160 + 6 * (LD_TAG_NAME_MAX + 32))
/* The emergency message's share of the line, escaped. */
#define EMERGENCY_MESSAGE_MAX 2048

struct ld_sink {
    int fd;
    bool own_fd;
    char name[256];         /* the path, or "fd N", for messages */
    ld_payload payload;
    ld_encoding encoding;
    int zlib_level;
    char *filter[3];        /* the tags, layers and steps asked for (NULL: all), for the header */
    ld_keyfilter keys;      /* the keys written */
    bool fed_next;          /* ld_sink_mark_fed: the next emit call's record is "fed" */
    bool fed;               /* the record being emitted carries "fed":true */
    locale_t c_locale;      /* numbers are written with a '.' whatever the process locale */
    bool failed;            /* an earlier write failed: the file may end in a partial line */
    ld_error failure;
    uint64_t count;
    char last_key[LD_TAG_NAME_MAX + 32];
    ld_buf rec;             /* the record being built, reused */
    /* The error end record up to its message, kept current after every record, for
     * ld_sink_emergency_end (which may not allocate or format): two slots, so that a handler
     * never reads the one being rewritten. */
    char emergency[2][EMERGENCY_PREFIX_MAX];
    size_t emergency_len[2];
    volatile sig_atomic_t emergency_slot;
};

/* ---- names and configuration ------------------------------------------------------------------ */

static const char *const encoding_names[] = {"base64", "zlib+base64", "shuffle+zlib+base64"};

const char *ld_encoding_name(ld_encoding e)
{
    return (int)e >= 0 && (size_t)e < LD_ARRAY_LEN(encoding_names) ? encoding_names[e] : "?";
}

bool ld_encoding_parse(const char *s, ld_encoding *out)
{
    for (size_t i = 0; s && i < LD_ARRAY_LEN(encoding_names); i++)
        if (!strcmp(s, encoding_names[i])) {
            *out = (ld_encoding)i;
            return true;
        }
    return false;
}

const char *ld_probes_version(void) { return LD_VERSION_STRING " (git " LD_GIT_REVISION ")"; }

void ld_sink_config_init(ld_sink_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->payload = LD_PAYLOAD_STATS;
    cfg->encoding = LD_ENC_BASE64;
    cfg->zlib_level = 1;
}

ld_status ld_sink_config_from_env(ld_sink_config *cfg, ld_error *err)
{
    const char *v;
    ld_ranges r;
    if ((v = getenv("LAYERDIFF_PROBE_TAGS")) && *v) {
        if (ld_keyfilter_check_tags(v, "LAYERDIFF_PROBE_TAGS", err) != LD_OK)
            return LD_E_USAGE;
        cfg->tags = v;
    }
    if ((v = getenv("LAYERDIFF_PROBE_LAYERS")) && *v) {
        if (ld_ranges_parse(v, &r, err) != LD_OK)
            return ld_error_prefix(err, "LAYERDIFF_PROBE_LAYERS");
        cfg->layers = v;
    }
    if ((v = getenv("LAYERDIFF_PROBE_STEPS")) && *v) {
        if (ld_ranges_parse(v, &r, err) != LD_OK)
            return ld_error_prefix(err, "LAYERDIFF_PROBE_STEPS");
        cfg->steps = v;
    }
    if ((v = getenv("LAYERDIFF_PROBE_PAYLOAD")) && *v) {
        if (!strcmp(v, "stats"))
            cfg->payload = LD_PAYLOAD_STATS;
        else if (!strcmp(v, "full"))
            cfg->payload = LD_PAYLOAD_FULL;
        else
            return ld_error_set(err, LD_E_USAGE,
                                "LAYERDIFF_PROBE_PAYLOAD: '%s' is not 'stats' or 'full'", v);
    }
    if ((v = getenv("LAYERDIFF_PROBE_ENCODING")) && *v) {
        if (!ld_encoding_parse(v, &cfg->encoding))
            return ld_error_set(err, LD_E_USAGE,
                                "LAYERDIFF_PROBE_ENCODING: '%s' is not base64, zlib+base64 or "
                                "shuffle+zlib+base64",
                                v);
    }
    return LD_OK;
}

/* ---- writing ---------------------------------------------------------------------------------- */

/* Writes the whole record, retrying short writes; the first failure makes the sink refuse more. */
static ld_status write_record(ld_sink *s, const char *what, ld_error *err)
{
    if (ld_buf_failed(&s->rec)) {
        s->rec.len = 0;
        s->rec.oom = false;
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory building the %s record", s->name,
                            what);
    }
    const char *p = s->rec.p;
    size_t len = s->rec.len, done = 0;
    while (done < len) {
        ssize_t w = write(s->fd, p + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            s->failed = true;
            ld_error_set(&s->failure, LD_E_IO, "%s: write failed after %zu of %zu bytes of the %s "
                         "record: %s", s->name, done, len, what, strerror(e));
            if (err)
                *err = s->failure;
            return LD_E_IO;
        }
        done += (size_t)w;
    }
    if (s->rec.cap > ((size_t)64 << 20)) /* give a huge record's memory back */
        ld_buf_free(&s->rec);
    s->rec.len = 0;
    return LD_OK;
}

/* Rebuilds the spare emergency slot for the records written so far and makes it current. Uses
 * s->rec, which write_record has just emptied. */
static void update_emergency(ld_sink *s)
{
    ld_buf *b = &s->rec;
    b->len = 0;
    ld_buf_put_lit(b, "{\"record\":\"end\",\"status\":\"error\",\"probes\":");
    ld_buf_put_u64(b, s->count);
    ld_buf_put_lit(b, ",\"tokens\":[],\"decoded\":[],\"last_key\":");
    ld_json_put_string(b, s->last_key, strlen(s->last_key), true);
    ld_buf_puts(b, ",\"message\":");
    int spare = !s->emergency_slot;
    if (!ld_buf_failed(b) && b->len <= sizeof s->emergency[spare]) {
        memcpy(s->emergency[spare], b->p, b->len);
        s->emergency_len[spare] = b->len;
        s->emergency_slot = spare;
    }
    b->len = 0;
    b->oom = false;
}

void ld_sink_emergency_end(ld_sink *s, const char *message)
{
    if (!s || s->failed || s->fd < 0)
        return;
    int slot = s->emergency_slot;
    char line[EMERGENCY_PREFIX_MAX + EMERGENCY_MESSAGE_MAX + 8];
    size_t n = s->emergency_len[slot];
    if (n == 0)
        return; /* not started */
    memcpy(line, s->emergency[slot], n);
    line[n++] = '"';
    /* JSON by hand (ld_json_put_string allocates): control characters and bytes >= 0x80, which
     * might not be UTF-8, become '?', so the line stays valid for the strict reader. */
    for (const char *p = message ? message : ""; *p && n < EMERGENCY_PREFIX_MAX +
                                                          EMERGENCY_MESSAGE_MAX - 2; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\')
            line[n++] = '\\';
        line[n++] = c < 0x20 || c >= 0x80 ? '?' : (char)c;
    }
    memcpy(line + n, "\"}\n", 3);
    n += 3;
    for (size_t done = 0; done < n;) {
        ssize_t w = write(s->fd, line + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        done += (size_t)w;
    }
}

static ld_status append_object_json(ld_sink *s, const char *json, const char *what, ld_error *err)
{
    if (!json) {
        ld_buf_puts(&s->rec, "{}");
        return LD_OK;
    }
    size_t n = strlen(json);
    char *copy = malloc(n + 1); /* the parser unescapes in place */
    if (!copy)
        return ld_error_set(err, LD_E_NOMEM, "cannot copy %s", what);
    memcpy(copy, json, n + 1);
    ld_json_doc doc = {0};
    ld_json_error je;
    ld_status st = LD_OK;
    if (!ld_json_parse(&doc, copy, n, &je))
        st = ld_error_set(err, LD_E_USAGE, "%s is not valid JSON: %s at column %zu", what, je.msg,
                          je.offset + 1);
    else if (doc.nodes[0].type != LD_JSON_OBJECT)
        st = ld_error_set(err, LD_E_USAGE, "%s must be a JSON object, not %s", what,
                          ld_json_type_name(doc.nodes[0].type));
    else
        ld_json_write(&doc, &doc.nodes[0], &s->rec);
    ld_json_doc_free(&doc);
    free(copy);
    return st;
}

static void append_i32_array(ld_buf *b, const int32_t *v, size_t n)
{
    ld_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++)
        ld_buf_printf(b, i ? ",%d" : "%d", (int)v[i]);
    ld_buf_putc(b, ']');
}

static ld_status write_header(ld_sink *s, const ld_run_info *run, ld_error *err)
{
    static const ld_run_info none = {0};
    if (!run)
        run = &none;
    const char *impl = run->implementation ? run->implementation : "unknown";
    if (!*impl || strlen(impl) > LD_RECORD_IMPL_MAX)
        return ld_error_set(err, LD_E_USAGE, "run.implementation must be 1 to %d bytes",
                            LD_RECORD_IMPL_MAX);
    if ((run->n_tokens && !run->tokens) || (run->n_faults && !run->faults))
        return ld_error_set(err, LD_E_USAGE, "run.tokens or run.faults is NULL with a count");
    for (size_t i = 0; i < run->n_tokens; i++)
        if (run->tokens[i] < 0)
            return ld_error_set(err, LD_E_USAGE, "run.tokens[%zu] = %d is negative", i,
                                (int)run->tokens[i]);
    if (run->decode_steps < 0)
        return ld_error_set(err, LD_E_USAGE, "run.decode_steps = %d is negative",
                            run->decode_steps);
    ld_buf *b = &s->rec;
    b->len = 0;
    ld_buf_puts(b, "{\"record\":\"header\",\"format\":\"" LD_PROBE_FORMAT "\",\"version\":");
    ld_buf_printf(b, "%d,\"implementation\":", LD_PROBE_VERSION);
    ld_json_put_string(b, impl, strlen(impl), true);
    ld_buf_puts(b, ",\"backend\":");
    if (append_object_json(s, run->backend_json, "run.backend_json", err) != LD_OK)
        return err ? err->code : LD_E_USAGE;
    ld_buf_puts(b, ",\"model\":");
    if (append_object_json(s, run->model_json, "run.model_json", err) != LD_OK)
        return err ? err->code : LD_E_USAGE;
    ld_buf_puts(b, ",\"input\":{\"tokens\":");
    append_i32_array(b, run->tokens, run->n_tokens);
    if (run->prompt_text) {
        ld_buf_puts(b, ",\"text\":");
        ld_json_put_string(b, run->prompt_text, run->prompt_text_len, true);
    }
    ld_buf_printf(b, ",\"decode_steps\":%d},\"faults\":[", run->decode_steps);
    for (size_t i = 0; i < run->n_faults; i++) {
        const char *f = run->faults[i] ? run->faults[i] : "";
        if (i)
            ld_buf_putc(b, ',');
        ld_json_put_string(b, f, strlen(f), true);
    }
    ld_buf_putc(b, ']');
    /* The filter tells a comparator which keys this stream can never hold, so that the other
     * stream's records of those keys need not wait for them. */
    bool any = false;
    for (size_t i = 0; i < LD_ARRAY_LEN(s->filter); i++) {
        if (!s->filter[i])
            continue;
        ld_buf_printf(b, "%s\"%s\":", any ? "," : ",\"filter\":{", ld_filter_fields[i]);
        ld_json_put_string(b, s->filter[i], strlen(s->filter[i]), true);
        any = true;
    }
    if (any)
        ld_buf_putc(b, '}');
    if (run->feed_json) {
        ld_buf_puts(b, ",\"feed\":");
        if (append_object_json(s, run->feed_json, "run.feed_json", err) != LD_OK)
            return err ? err->code : LD_E_USAGE;
    }
    char now[32];
    ld_utc_now(now, sizeof now);
    ld_buf_printf(b, ",\"created\":\"%s\",\"tool\":{\"name\":\"layerdiff\",\"version\":", now);
    ld_json_put_string(b, LD_VERSION_STRING, strlen(LD_VERSION_STRING), true);
    ld_buf_puts(b, ",\"git\":");
    ld_json_put_string(b, LD_GIT_REVISION, strlen(LD_GIT_REVISION), true);
    ld_buf_puts(b, "}}\n");
    return write_record(s, "header", err);
}

static void sink_free(ld_sink *s)
{
    if (!s)
        return;
    if (s->own_fd && s->fd >= 0)
        close(s->fd);
    for (size_t i = 0; i < LD_ARRAY_LEN(s->filter); i++)
        free(s->filter[i]);
    ld_keyfilter_free(&s->keys);
    if (s->c_locale)
        freelocale(s->c_locale);
    ld_buf_free(&s->rec);
    free(s);
}

static ld_status sink_create(ld_sink **out, const ld_sink_config *cfg_in, ld_error *err)
{
    ld_sink_config defaults;
    ld_sink_config_init(&defaults);
    const ld_sink_config *cfg = cfg_in ? cfg_in : &defaults;
    if (cfg->payload != LD_PAYLOAD_STATS && cfg->payload != LD_PAYLOAD_FULL)
        return ld_error_set(err, LD_E_USAGE, "payload %d is not stats or full", (int)cfg->payload);
    if ((int)cfg->encoding < 0 || (size_t)cfg->encoding >= LD_ARRAY_LEN(encoding_names))
        return ld_error_set(err, LD_E_USAGE, "encoding %d is unknown", (int)cfg->encoding);
    if (cfg->zlib_level < 1 || cfg->zlib_level > 9)
        return ld_error_set(err, LD_E_USAGE, "zlib level %d is outside 1..9", cfg->zlib_level);
    ld_sink *s = calloc(1, sizeof *s);
    if (!s)
        return ld_error_set(err, LD_E_NOMEM, "cannot allocate a probe sink");
    s->fd = -1;
    s->payload = cfg->payload;
    s->encoding = cfg->encoding;
    s->zlib_level = cfg->zlib_level;
    ld_status kst = ld_keyfilter_init(&s->keys, cfg->tags, cfg->layers, cfg->steps, err);
    if (kst != LD_OK) {
        free(s);
        return kst;
    }
    const char *asked[] = {cfg->tags, cfg->layers, cfg->steps};
    for (size_t i = 0; i < LD_ARRAY_LEN(asked); i++) {
        if (asked[i] && *asked[i] && !(s->filter[i] = strdup(asked[i]))) {
            sink_free(s);
            return ld_error_set(err, LD_E_NOMEM, "cannot copy the probe filter");
        }
    }
    s->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (!s->c_locale) {
        sink_free(s);
        return ld_error_set(err, LD_E_NOMEM, "cannot create the C locale");
    }
    *out = s;
    return LD_OK;
}

static ld_status sink_start(ld_sink **out, ld_sink *s, const ld_run_info *run, ld_error *err)
{
    ld_status st = write_header(s, run, err);
    if (st != LD_OK) {
        sink_free(s);
        return st;
    }
    update_emergency(s);
    *out = s;
    return LD_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

ld_status ld_sink_open(ld_sink **out, const char *path, const ld_sink_config *cfg,
                       const ld_run_info *run, ld_error *err)
{
    *out = NULL;
    if (!path || !*path)
        return ld_error_set(err, LD_E_USAGE, "no probe output path given");
    if (ends_with(path, ".gz"))
        return ld_error_set(err, LD_E_USAGE,
                            "%s: the probe writer does not compress (a gzip stream cut by a crash "
                            "loses its last records); write without .gz and gzip the finished "
                            "file, readers take both",
                            path);
    ld_sink *s;
    ld_status st = sink_create(&s, cfg, err);
    if (st != LD_OK)
        return st;
    snprintf(s->name, sizeof s->name, "%s", path);
    s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        int e = errno;
        sink_free(s);
        return ld_error_set(err, LD_E_IO, "%s: cannot create: %s", path, strerror(e));
    }
    s->own_fd = true;
    return sink_start(out, s, run, err);
}

ld_status ld_sink_open_fd(ld_sink **out, int fd, const ld_sink_config *cfg,
                          const ld_run_info *run, ld_error *err)
{
    *out = NULL;
    if (fd < 0)
        return ld_error_set(err, LD_E_USAGE, "bad file descriptor %d", fd);
    ld_sink *s;
    ld_status st = sink_create(&s, cfg, err);
    if (st != LD_OK)
        return st;
    snprintf(s->name, sizeof s->name, "fd %d", fd);
    s->fd = fd;
    return sink_start(out, s, run, err);
}

ld_status ld_sink_open_env(ld_sink **out, const ld_run_info *run, ld_error *err)
{
    *out = NULL;
    const char *path = getenv("LAYERDIFF_PROBES");
    if (!path || !*path)
        return LD_OK;
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    ld_status st = ld_sink_config_from_env(&cfg, err);
    if (st != LD_OK)
        return st;
    st = ld_sink_open(out, path, &cfg, run, err);
    if (st != LD_OK)
        return ld_error_prefix(err, "LAYERDIFF_PROBES");
    return LD_OK;
}

bool ld_sink_wants(const ld_sink *s, int step, int layer, const char *tag)
{
    if (!s || s->failed || !tag)
        return false;
    return ld_keyfilter_match(&s->keys, step, layer, tag);
}

void ld_sink_mark_fed(ld_sink *s)
{
    if (s)
        s->fed_next = true;
}

bool ld_sink_wants_data(const ld_sink *s) { return s && s->payload == LD_PAYLOAD_FULL; }

const char *ld_sink_last_key(const ld_sink *s) { return s ? s->last_key : ""; }

uint64_t ld_sink_probe_count(const ld_sink *s) { return s ? s->count : 0; }

/* ---- probes ----------------------------------------------------------------------------------- */

static ld_status check_key(const ld_sink *s, int step, int layer, const char *tag, ld_error *err)
{
    if (!s)
        return ld_error_set(err, LD_E_USAGE, "probe emitted on a NULL sink");
    if (!tag || !ld_tag_name_valid(tag))
        return ld_error_set(err, LD_E_USAGE,
                            "%s: bad tag name '%.64s' (1 to %d characters of A-Z a-z 0-9 _ . : / + -)",
                            s->name, tag ? tag : "(null)", LD_TAG_NAME_MAX);
    if (step < 0)
        return ld_error_set(err, LD_E_USAGE, "%s: %s: step %d is negative", s->name, tag, step);
    if (layer < 0 && layer != LD_NO_LAYER)
        return ld_error_set(err, LD_E_USAGE, "%s: %s: layer %d is negative", s->name, tag, layer);
    ld_tag t = ld_tag_from_name(tag);
    if (t != LD_TAG_UNKNOWN && ld_tag_per_layer(t) != (layer != LD_NO_LAYER))
        return ld_error_set(err, LD_E_USAGE, "%s: %s is a %s tag but was emitted %s a layer",
                            s->name, tag, ld_tag_per_layer(t) ? "per-layer" : "model-level",
                            layer == LD_NO_LAYER ? "without" : "with");
    if (s->failed) {
        if (err)
            *err = s->failure;
        return LD_E_IO;
    }
    return LD_OK;
}

static ld_status check_shape(const ld_sink *s, const char *tag, const int64_t *shape, int ndim,
                             uint64_t *numel, ld_error *err)
{
    if (ndim < 1 || ndim > LD_MAX_NDIM || !shape)
        return ld_error_set(err, LD_E_USAGE, "%s: %s: ndim %d is outside 1..%d", s->name, tag, ndim,
                            LD_MAX_NDIM);
    if (!ld_shape_numel(shape, ndim, LD_RECORD_MAX_NUMEL, numel))
        return ld_error_set(err, LD_E_USAGE,
                            "%s: %s: shape has a negative dimension or more than 2^40 elements",
                            s->name, tag);
    return LD_OK;
}

/* Appends the payload object, the encoded bytes straight into the record buffer. The crc32 of
 * the raw bytes comes last: for plain base64 it is computed in the same pass as the encoding. */
static ld_status append_data(ld_sink *s, ld_dtype dtype, const void *data, size_t nbytes,
                             ld_error *err)
{
    ld_buf *b = &s->rec;
    const unsigned char *bytes = data;
    unsigned char *packed = NULL;
    size_t packed_len = nbytes;
    uint32_t crc = 0;
    if (s->encoding != LD_ENC_BASE64) {
        crc = ld_crc32(data, nbytes);
        size_t elem = s->encoding == LD_ENC_SHUFFLE_ZLIB_BASE64 ? ld_dtype_size(dtype) : 1;
        ld_status st = ld_zlib_encode(data, nbytes, elem, s->zlib_level, &packed, &packed_len, err);
        if (st != LD_OK)
            return ld_error_prefix(err, "%s", s->name);
        bytes = packed;
    }
    ld_buf_printf(b, ",\"data\":{\"encoding\":\"%s\",\"dtype\":\"%s\",\"b64\":\"",
                  ld_encoding_name(s->encoding), ld_dtype_name(dtype));
    size_t b64_len = ld_b64_encoded_len(packed_len);
    if (ld_buf_reserve(b, b64_len + 8)) {
        if (s->encoding == LD_ENC_BASE64)
            crc = ld_b64_encode_crc(bytes, packed_len, b->p + b->len);
        else
            ld_b64_encode(bytes, packed_len, b->p + b->len);
        b->len += b64_len;
    }
    ld_buf_printf(b, "\",\"crc32\":%u}", (unsigned)crc);
    free(packed);
    return LD_OK;
}

static ld_status emit(ld_sink *s, int step, int layer, const char *tag, int64_t pos0,
                      ld_dtype dtype, const int64_t *shape, int ndim, uint64_t numel,
                      const ld_stats *st, const double *head, const void *data, bool with_data,
                      ld_error *err)
{
    ld_buf *b = &s->rec;
    b->len = 0;
    /* No printf on this path (the CUDA path writes thousands of records per second): the
     * integers through ld_buf_put_*, the names (checked tag, fixed tables) copied as they are. */
    ld_buf_put_lit(b, "{\"record\":\"probe\",\"index\":");
    ld_buf_put_u64(b, s->count);
    ld_buf_put_lit(b, ",\"step\":");
    ld_buf_put_i64(b, step);
    if (layer != LD_NO_LAYER) {
        ld_buf_put_lit(b, ",\"layer\":");
        ld_buf_put_i64(b, layer);
    }
    ld_buf_put_lit(b, ",\"tag\":\"");
    ld_buf_puts(b, tag);
    ld_buf_put_lit(b, "\",\"pos0\":");
    ld_buf_put_i64(b, pos0);
    ld_buf_put_lit(b, ",\"dtype\":\"");
    ld_buf_puts(b, ld_dtype_name(dtype));
    ld_buf_put_lit(b, "\",\"shape\":[");
    for (int i = 0; i < ndim; i++) {
        if (i)
            ld_buf_putc(b, ',');
        ld_buf_put_i64(b, shape[i]);
    }
    const double sv[6] = {st->min, st->max, st->mean, st->std, st->l2, st->absmax};
    static const char *const sn[6] = {"],\"stats\":{\"min\":", ",\"max\":", ",\"mean\":",
                                      ",\"std\":", ",\"l2\":", ",\"absmax\":"};
    for (int i = 0; i < 6; i++) {
        ld_buf_puts(b, sn[i]);
        ld_json_put_double(b, sv[i], LD_JSON_NUM_EXACT, s->c_locale);
    }
    ld_buf_put_lit(b, ",\"nan\":");
    ld_buf_put_u64(b, st->nan);
    ld_buf_put_lit(b, ",\"inf\":");
    ld_buf_put_u64(b, st->inf);
    ld_buf_put_lit(b, "},\"head\":[");
    size_t n_head = (size_t)LD_MIN(numel, (uint64_t)LD_HEAD_COUNT);
    for (size_t i = 0; i < n_head; i++) {
        if (i)
            ld_buf_putc(b, ',');
        ld_json_put_double(b, head[i], LD_JSON_NUM_EXACT, s->c_locale);
    }
    ld_buf_putc(b, ']');
    if (s->fed) /* before "data": a streaming reader sees it in the record's prefix */
        ld_buf_puts(b, ",\"fed\":true");
    if (with_data && s->payload == LD_PAYLOAD_FULL) {
        ld_status rc = append_data(s, dtype, data, (size_t)numel * ld_dtype_size(dtype), err);
        if (rc != LD_OK) {
            b->len = 0;
            return rc;
        }
    }
    ld_buf_put_lit(b, "}\n");
    /* "probe S0.L3.q_norm": what write_record names on failure; the key after the prefix */
    char what[sizeof s->last_key + 6] = "probe ";
    ld_key key = {step, layer, ""};
    size_t tag_len = strlen(tag); /* check_key: 1..LD_TAG_NAME_MAX characters */
    memcpy(key.tag, tag, tag_len + 1);
    ld_key_format(&key, what + 6, sizeof what - 6);
    ld_status rc = write_record(s, what, err);
    if (rc != LD_OK)
        return rc;
    s->count++;
    memcpy(s->last_key, what + 6, sizeof s->last_key); /* NUL-terminated within that */
    update_emergency(s);
    return LD_OK;
}

/* The checks both emit calls make, in order: the key (even when not wanted), then, when the sink
 * wants it (*skip false), shape, pos0 and dtype. */
static ld_status check_emit(ld_sink *s, int step, int layer, const char *tag, int64_t pos0,
                            ld_dtype dtype, const int64_t *shape, int ndim, uint64_t *numel,
                            bool *skip, ld_error *err)
{
    *skip = true;
    if (s) { /* the mark belongs to this call, whatever becomes of it */
        s->fed = s->fed_next;
        s->fed_next = false;
    }
    ld_status rc = check_key(s, step, layer, tag, err);
    if (rc != LD_OK || !ld_sink_wants(s, step, layer, tag))
        return rc;
    if ((rc = check_shape(s, tag, shape, ndim, numel, err)) != LD_OK)
        return rc;
    if (pos0 < 0)
        return ld_error_set(err, LD_E_USAGE, "%s: %s: pos0 %lld is negative", s->name, tag,
                            (long long)pos0);
    if ((unsigned)dtype > LD_F16)
        return ld_error_set(err, LD_E_USAGE, "%s: %s: unknown dtype %d", s->name, tag, (int)dtype);
    *skip = false;
    return LD_OK;
}

ld_status ld_sink_emit(ld_sink *s, int step, int layer, const char *tag, int64_t pos0,
                       ld_dtype dtype, const int64_t *shape, int ndim, const void *data,
                       ld_error *err)
{
    uint64_t numel;
    bool skip;
    ld_status rc = check_emit(s, step, layer, tag, pos0, dtype, shape, ndim, &numel, &skip, err);
    if (rc != LD_OK || skip)
        return rc;
    if (numel > 0 && !data)
        return ld_error_set(err, LD_E_USAGE, "%s: %s: data is NULL", s->name, tag);
    ld_stats st;
    ld_stats_compute(data, dtype, (size_t)numel, &st);
    double head[LD_HEAD_COUNT];
    for (size_t i = 0; i < LD_HEAD_COUNT && i < numel; i++)
        head[i] = (double)ld_load_f32(data, dtype, i);
    return emit(s, step, layer, tag, pos0, dtype, shape, ndim, numel, &st, head, data, true, err);
}

ld_status ld_sink_emit_precomputed(ld_sink *s, int step, int layer, const char *tag, int64_t pos0,
                                   ld_dtype dtype, const int64_t *shape, int ndim,
                                   const ld_stats *stats, const double *head, const void *data,
                                   ld_error *err)
{
    uint64_t numel;
    bool skip;
    ld_status rc = check_emit(s, step, layer, tag, pos0, dtype, shape, ndim, &numel, &skip, err);
    if (rc != LD_OK || skip)
        return rc;
    if (!stats || (numel > 0 && !head))
        return ld_error_set(err, LD_E_USAGE, "%s: %s: stats or head is NULL", s->name, tag);
    if (stats->nan > numel || stats->inf > numel - stats->nan)
        return ld_error_set(err, LD_E_USAGE,
                            "%s: %s: stats count %llu NaN and %llu Inf in %llu elements", s->name,
                            tag, (unsigned long long)stats->nan, (unsigned long long)stats->inf,
                            (unsigned long long)numel);
    /* A device's statistics are checked as a reader will check them: a record the writer lets
     * through must never be refused, nor judged, on contradictory numbers. */
    char why[320];
    bool ok = ld_stats_check(stats, numel, head, (int)LD_MIN(numel, (uint64_t)LD_HEAD_COUNT), why,
                             sizeof why);
    if (ok && data) {
        ld_tally t = {0};
        ld_tally_add(&t, data, dtype, (size_t)numel);
        ok = ld_stats_agree(stats, &t, why, sizeof why);
    }
    if (!ok)
        return ld_error_set(err, LD_E_USAGE, "%s: %s: %s", s->name, tag, why);
    return emit(s, step, layer, tag, pos0, dtype, shape, ndim, numel, stats, head, data,
                data != NULL, err);
}

/* ---- the end ---------------------------------------------------------------------------------- */

ld_status ld_sink_close(ld_sink *s, const ld_run_end *end, ld_error *err)
{
    if (!s)
        return LD_OK;
    if (s->failed) {
        if (err)
            *err = s->failure;
        sink_free(s);
        return LD_E_IO;
    }
    static const ld_run_end ok_end = {.ok = true};
    if (!end)
        end = &ok_end;
    /* A bad end description still ends the stream, as an error that says what was wrong. */
    ld_run_end fixed = *end;
    char why[160] = "";
    /* -1 in tokens says a step had no argmax (no finite logit); anything lower is a bug. */
    for (size_t i = 0; end->tokens && i < end->n_tokens && !why[0]; i++)
        if (end->tokens[i] < -1)
            snprintf(why, sizeof why, "end.tokens[%zu] = %d is negative", i, (int)end->tokens[i]);
    for (size_t i = 0; end->decoded && i < end->n_decoded && !why[0]; i++)
        if (end->decoded[i] < 0)
            snprintf(why, sizeof why, "end.decoded[%zu] = %d is negative", i, (int)end->decoded[i]);
    if (why[0]) {
        fixed = (ld_run_end){.ok = false, .message = why};
        end = &fixed;
    }
    ld_buf *b = &s->rec;
    b->len = 0;
    ld_buf_printf(b, "{\"record\":\"end\",\"status\":\"%s\",\"probes\":%llu,\"tokens\":",
                  end->ok ? "ok" : "error", (unsigned long long)s->count);
    append_i32_array(b, end->tokens, end->tokens ? end->n_tokens : 0);
    ld_buf_puts(b, ",\"decoded\":");
    append_i32_array(b, end->decoded, end->decoded ? end->n_decoded : 0);
    ld_buf_puts(b, ",\"last_key\":");
    ld_json_put_string(b, s->last_key, strlen(s->last_key), true);
    if (!end->ok) {
        const char *m = end->message && *end->message
                            ? end->message
                            : "the producer reported an error without a message";
        ld_buf_puts(b, ",\"message\":");
        ld_json_put_string(b, m, strlen(m), true);
    }
    ld_buf_puts(b, "}\n");
    ld_status rc = write_record(s, "end", err);
    if (rc == LD_OK && why[0])
        rc = ld_error_set(err, LD_E_USAGE, "%s: %s (written as an error end record)", s->name, why);
    if (rc == LD_OK && s->own_fd) {
        int fd = s->fd;
        s->fd = -1;
        if (close(fd) != 0)
            rc = ld_error_set(err, LD_E_IO, "%s: close failed: %s", s->name, strerror(errno));
    }
    sink_free(s);
    return rc;
}

/* reader_stream.c — stream_data: a probe's payload decoded from the input piece by piece as the
 * caller reads it (ld_reader_read_data, ld_reader_skip_data), with the checks and messages of a
 * whole read. Lines and records read whole are reader_input.c and reader.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "reader_internal.h"
#include "util.h"

/* How far into a line data.b64 may start and still stream. */
#define PREFIX_MAX ((size_t)64 << 10)

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
        size_t q = ld_rd_quantum(r), need = want + q / 2;
        if (r->cap < need) {
            char *b = realloc(r->buf, LD_MAX(need, q));
            if (!b)
                return ld_rd_stick(r, err, LD_E_NOMEM, "%s:%llu: cannot allocate a read buffer",
                                   r->path, (unsigned long long)r->line);
            r->buf = b;
            r->cap = LD_MAX(need, q);
        }
        long long got = ld_rd_source_read(r, LD_MIN(r->cap - r->end, q), err);
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
    return ld_rd_stick(r, err, LD_E_INPUT, "%s:%llu: line longer than the %zu-byte limit", r->path,
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
    return ld_rd_stick(r, err, LD_E_TRUNCATED,
                       "%s:%llu: stream truncated: the last line is cut short (no "
                       "newline); last complete probe: %s%s",
                       r->path, (unsigned long long)r->line, ld_rd_last_key_text(r),
                       r->gz_cut ? " (the gzip data ends early)" : "");
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
            if (!ld_rd_grow(&ps->sfx, &ps->sfx_cap, ps->sfx_len + n))
                return ld_rd_stick(r, err, LD_E_NOMEM,
                                   "%s:%llu: cannot allocate %zu bytes for a line", r->path,
                                   (unsigned long long)r->line, ps->sfx_len + n);
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
ld_status ld_rd_finish_line(ld_reader *r, ld_error *err)
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
            return ld_rd_stick(r, err, LD_E_INTERNAL, "%s:%llu: inflating stalled", r->path,
                               (unsigned long long)r->line);
    } while (!scan_over(ps) || made);
    uint64_t closing = ps->scan.line_off - 1; /* line offset of the closing quote */
    if (ps->scan.json_bad) {
        if ((st = line_rest(r, false, err)) != LD_OK)
            return st;
        return ld_rd_stick(r, err, LD_E_INPUT, "%s:%llu: not valid JSON at column %llu: %s",
                           r->path, (unsigned long long)r->line,
                           (unsigned long long)ps->scan.json_at + 1, ps->scan.json_msg);
    }
    ps->sfx_len = 0;
    if ((st = line_rest(r, true, err)) != LD_OK)
        return st;
    /* The record without its payload's characters: prefix, '"', suffix. */
    size_t syn_len = ps->pfx_len + 1 + ps->sfx_len;
    if (!ld_rd_grow(&ps->syn, &ps->syn_cap, syn_len))
        return ld_rd_stick(r, err, LD_E_NOMEM, "%s:%llu: cannot allocate %zu bytes for a line",
                           r->path, (unsigned long long)r->line, syn_len);
    memcpy(ps->syn, ps->pfx, ps->pfx_len);
    ps->syn[ps->pfx_len] = '"';
    if (ps->sfx_len) /* a line that ends at the payload's closing quote has none (sfx NULL) */
        memcpy(ps->syn + ps->pfx_len + 1, ps->sfx, ps->sfx_len);
    ld_json_error je;
    if (!ld_json_parse(&r->doc, ps->syn, syn_len, &je)) {
        /* offsets past the payload move by its characters' length in the line */
        uint64_t at = je.offset < ps->pfx_len ? je.offset : je.offset + (closing - ps->pfx_len);
        return ld_rd_stick(r, err, LD_E_INPUT, "%s:%llu: not valid JSON at column %llu: %s",
                           r->path, (unsigned long long)r->line, (unsigned long long)at + 1,
                           je.msg);
    }
    ld_probe full;
    if ((st = ld_rd_parse_probe(r, &r->doc.nodes[0], &full, PROBE_STREAMED, err)) != LD_OK)
        return st;
    if (!same_record(&full, p))
        return ld_rd_stick(r, err, LD_E_INTERNAL,
                           "%s:%llu: the record read whole differs from its "
                           "prefix",
                           r->path, (unsigned long long)r->line);
    p->crc32 = full.crc32;
    ps->line_checked = true;
    if (!r->opt.decode_data)
        return LD_OK;
    /* the payload as a whole, as decode_payload checks it */
    vctx v = {r, err, "probe", ""};
    ld_rd_name_probe(&v, p);
    if ((st = ld_rd_check_b64_sizes(&v, p, (size_t)ps->scan.len,
                                    (size_t)ld_b64_scan_decoded_len(&ps->scan), ps->expected)) !=
        LD_OK)
        return st;
    if (ps->scan.b64_bad)
        return ld_rd_bad(&v, "bad base64 in data.b64 at character %llu: %s",
                         (unsigned long long)ps->scan.bad_at, ps->scan.bad_why);
    ld_error zerr;
    if (p->encoding != LD_ENC_BASE64 && ld_zstream_verdict(&ps->z, &zerr) != LD_OK)
        return ld_rd_bad(&v, "data.b64: %s", zerr.msg);
    return LD_OK;
}

void ld_rd_set_last_key(ld_reader *r)
{
    ld_key key = {r->probe.step, r->probe.layer, ""};
    memcpy(key.tag, r->probe.tag, sizeof key.tag);
    ld_key_format(&key, r->last_key, sizeof r->last_key);
}

/* The record is complete and valid: it counts. */
void ld_rd_stream_done(ld_reader *r)
{
    r->ps.finished = true;
    ld_zstream_end(&r->ps.z);
    r->n_probes++;
    ld_rd_set_last_key(r);
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
            if (!ld_rd_grow(&r->inflated, &r->inflated_cap, want))
                return ld_rd_stick(r, err, LD_E_NOMEM,
                                   "%s:%llu: cannot allocate %zu bytes for a "
                                   "payload",
                                   r->path, (unsigned long long)r->line, want);
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
    return ld_rd_finish_line(r, err);
}

/* Adds n payload bytes to the tally; an element split between two pieces waits in carry. */
static void tally_bytes(struct pstream *ps, ld_dtype dtype, const unsigned char *b, size_t n)
{
    size_t es = ld_dtype_size(dtype);
    if (ps->carry_len) {
        size_t k = LD_MIN(es - ps->carry_len, n);
        memcpy(ps->carry + ps->carry_len, b, k);
        ps->carry_len += k;
        b += k;
        n -= k;
        if (ps->carry_len < es)
            return;
        ld_tally_add(&ps->tally, ps->carry, dtype, 1);
        ps->carry_len = 0;
    }
    ld_tally_add(&ps->tally, b, dtype, n / es);
    memcpy(ps->carry, b + n / es * es, n % es);
    ps->carry_len = n % es;
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
        if (p->data_dtype == p->dtype)
            tally_bytes(ps, p->data_dtype, out + n, made);
        ps->handed += made;
        n += made;
    }
    if (ps->handed == ps->expected || n < want) {
        if (!ps->line_checked && (st = ld_rd_finish_line(r, err)) != LD_OK)
            return st;
        if (ps->handed != ps->expected) /* every way a payload can fall short is refused above */
            return ld_rd_stick(r, err, LD_E_INTERNAL,
                               "%s:%llu: payload ended after %zu of %zu bytes", r->path,
                               (unsigned long long)r->line, ps->handed, ps->expected);
        vctx v = {r, err, "probe", ""};
        ld_rd_name_probe(&v, p);
        if ((st = ld_rd_check_crc_head(&v, p, ps->crc, ps->head)) != LD_OK)
            return st;
        char why[320];
        if (p->data_dtype == p->dtype && !ld_stats_agree(&p->stats, &ps->tally, why, sizeof why))
            return ld_rd_bad(&v, "%s", why);
        ld_rd_stream_done(r);
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
ld_status ld_rd_stream_start(ld_reader *r, bool *streamed, ld_error *err)
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
    if (!ld_rd_grow(&ps->pfx, &ps->pfx_cap, plen) ||
        !ld_rd_grow(&ps->syn, &ps->syn_cap, plen + 3) ||
        (!ps->stage && !(ps->stage = malloc(STAGE))) ||
        (!ps->discard && !(ps->discard = malloc(STAGE))))
        return ld_rd_stick(r, err, LD_E_NOMEM, "%s: cannot allocate stream buffers", r->path);
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
    if (root->type != LD_JSON_OBJECT ||
        !ld_rd_text_is(ld_json_get(&r->doc, root, "record"), "probe"))
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
    if (ld_rd_parse_probe(r, root, &pr, PROBE_PREFIX, &trial) != LD_OK) {
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
    ps->tally = (ld_tally){0};
    ps->carry_len = 0;
    r->line++;
    ld_b64_scan_init(&ps->scan, plen - 1, r->opt.decode_data);
    if ((st = consume(r, plen, err)) != LD_OK)
        return st;
    if (r->opt.decode_data && pr.encoding != LD_ENC_BASE64 &&
        ld_zstream_init(&ps->z, expected, err) != LD_OK)
        return ld_rd_stick(r, err, LD_E_NOMEM, "%s:%llu: zlib cannot start inflating", r->path,
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

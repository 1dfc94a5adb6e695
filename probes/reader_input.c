/* reader_input.c — the probe reader's input side: lines from a plain or gzip file or a memory
 * buffer, and the sticky error every later call returns. No JSON, no record fields here (those are
 * reader_fields.c and the record parsers). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "reader_internal.h"
#include "util.h"

ld_status ld_rd_stick(ld_reader *r, ld_error *err, ld_status code, const char *fmt, ...)
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

ld_status ld_rd_bad(vctx *v, const char *fmt, ...)
{
    char what[LD_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ld_rd_stick(v->r, v->err, LD_E_INPUT, "%s:%llu: %s: %s", v->r->path,
                       (unsigned long long)v->r->line, v->context, what);
}

const char *ld_rd_last_key_text(const ld_reader *r)
{
    return r->last_key[0] ? r->last_key : "none (no probe read)";
}

/* A NUL byte is never part of a JSON line: the input is refused as soon as one is read, not
 * after a line of them has filled the buffer up to max_line (/dev/zero, a binary file). */
static long long refuse_nul(ld_reader *r, size_t n, ld_error *err)
{
    const char *nul = memchr(r->buf + r->end, '\0', n);
    if (!nul)
        return (long long)n;
    ld_rd_stick(r, err, LD_E_INPUT, "%s: a NUL byte at byte %llu of the text: not a JSON-lines "
                "probe stream", r->path,
                (unsigned long long)(r->bytes + (size_t)(nul - (r->buf + r->start))));
    return -1;
}

/* Appends up to want bytes of input at buf+end; 0 at the end of input; -1 after an error (set). */
long long ld_rd_source_read(ld_reader *r, size_t want, ld_error *err)
{
    if (!r->gz) {
        size_t n = LD_MIN(want, r->mem_len - r->mem_pos);
        memcpy(r->buf + r->end, r->mem + r->mem_pos, n);
        r->mem_pos += n;
        return refuse_nul(r, n, err);
    }
    int n = gzread(r->gz, r->buf + r->end, (unsigned)LD_MIN(want, (size_t)1 << 30));
    if (n > 0)
        return refuse_nul(r, (size_t)n, err);
    int code = Z_OK;
    const char *msg = gzerror(r->gz, &code);
    if (code == Z_OK)
        return 0;
    if (code == Z_BUF_ERROR) { /* gzip data ends early: what came through is all there is */
        r->gz_cut = true;
        return 0;
    }
    if (code == Z_ERRNO)
        ld_rd_stick(r, err, LD_E_IO, "%s: read failed after %llu bytes: %s", r->path,
                    (unsigned long long)r->bytes, strerror(errno));
    else
        ld_rd_stick(r, err, LD_E_INPUT, "%s: corrupt gzip data after %llu bytes: %s", r->path,
                    (unsigned long long)r->bytes, msg);
    return -1;
}

/* Bytes read at a time: READ_CHUNK, or less for a small memory source (whose whole text a
 * smaller buffer holds). */
size_t ld_rd_quantum(const ld_reader *r)
{
    if (r->gz)
        return READ_CHUNK;
    return LD_MAX((size_t)4096, LD_MIN(READ_CHUNK, r->mem_len + 1));
}

/* Whether a line of n bytes kept, after its dropped leading whitespace, is over max_line. */
static bool too_long(const ld_reader *r, size_t n)
{
    return n > r->opt.max_line || r->line_ws > r->opt.max_line - n;
}

/* Returns the next line without its '\n' in [*line, *len) (valid until the next call). */
line_kind ld_rd_read_line(ld_reader *r, char **line, size_t *len, ld_error *err)
{
    r->line_ws = 0;
    for (;;) {
        char *nl = r->end > r->scanned ? memchr(r->buf + r->scanned, '\n', r->end - r->scanned)
                                        : NULL;
        if (nl) {
            *line = r->buf + r->start;
            *len = (size_t)(nl - *line);
            if (too_long(r, *len)) {
                ld_rd_stick(r, err, LD_E_INPUT, "%s:%llu: line longer than the %zu-byte limit",
                            r->path, (unsigned long long)r->line + 1, r->opt.max_line);
                return LINE_ERROR;
            }
            r->bytes += *len + 1;
            r->start = r->scanned = (size_t)(nl - r->buf) + 1;
            r->line++;
            return LINE_OK;
        }
        r->scanned = r->end;
        /* The line's leading JSON whitespace is counted, not kept: a line of nothing else (a
         * gzip bomb of spaces) costs no memory; lengths and byte counts include it. */
        size_t ws = 0;
        for (char ch; r->start + ws < r->end &&
                      ((ch = r->buf[r->start + ws]) == ' ' || ch == '\t' || ch == '\r');)
            ws++;
        r->start += ws;
        r->bytes += ws;
        r->line_ws += ws;
        size_t pending = r->end - r->start;
        if (too_long(r, pending)) {
            ld_rd_stick(r, err, LD_E_INPUT, "%s:%llu: line longer than the %zu-byte limit", r->path,
                        (unsigned long long)r->line + 1, r->opt.max_line);
            return LINE_ERROR;
        }
        if (r->eof) {
            if (pending == 0 && r->line_ws == 0)
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
        size_t q = ld_rd_quantum(r);
        if (r->cap - r->end < q / 2) {
            size_t cap = r->cap ? r->cap * 2 : q;
            size_t limit;
            if (!ld_add_size(r->opt.max_line, q + 1, &limit))
                limit = SIZE_MAX;
            cap = LD_MIN(cap, LD_MAX(limit, r->end + q));
            if (cap > r->cap) {
                char *b = realloc(r->buf, cap);
                if (!b) {
                    ld_rd_stick(r, err, LD_E_NOMEM, "%s:%llu: cannot allocate %zu bytes for a line",
                                r->path, (unsigned long long)r->line + 1, cap);
                    return LINE_ERROR;
                }
                r->buf = b;
                r->cap = cap;
            }
        }
        long long got = ld_rd_source_read(r, LD_MIN(r->cap - r->end, q * 4), err);
        if (got < 0)
            return LINE_ERROR;
        if (got == 0)
            r->eof = true;
        r->end += (size_t)got;
    }
}

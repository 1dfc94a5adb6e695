/* emit.c — the small writers every layer of compare/ shares: JSON and HTML/XML escaping, short
 * numbers and shapes, keys in text and words, a stream's write status. Nothing about rows or
 * results (report_util.c), no layout of any report. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "compare_internal.h"
#include "json_lex.h"
#include "json_out.h"

/* Writes what b holds to f and frees it: the escaper and formatter are common/json_out.h's, which
 * append to a buffer. */
static void put_buf(FILE *f, ld_buf *b)
{
    if (b->len)
        fwrite(b->p, 1, b->len, f);
    ld_buf_free(b);
}

void ld_cmp_put_json_string(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    ld_buf b = {0};
    /* Paths come from the command line and may be any bytes; a report is UTF-8 JSON. */
    ld_json_put_string(&b, s, strlen(s), true);
    put_buf(f, &b);
}

void ld_cmp_put_json_double(FILE *f, double v)
{
    ld_buf b = {0};
    ld_json_put_double(&b, v, LD_JSON_NUM_BRIEF, (locale_t)0);
    put_buf(f, &b);
}

void ld_cmp_put_xml(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p >= 0x80) {
            /* The reports declare UTF-8; a byte that is not (a path's) would make the XML
             * ill-formed, so it becomes U+FFFD. */
            size_t n = ld_json_utf8_len(p, strnlen((const char *)p, 4));
            if (n == 0) {
                fputs("\xef\xbf\xbd", f);
            } else {
                fwrite(p, 1, n, f);
                p += n - 1;
            }
            continue;
        }
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            /* XML 1.0 forbids most control characters even escaped. */
            if (*p < 0x20 && *p != '\n' && *p != '\t' && *p != '\r')
                fputc('?', f);
            else
                fputc(*p, f);
        }
    }
}

char *ld_cmp_fmt(double v, char *buf, size_t size)
{
    if (isnan(v))
        snprintf(buf, size, "-");
    else if (isinf(v))
        snprintf(buf, size, v > 0 ? "inf" : "-inf");
    else if (v == 0)
        snprintf(buf, size, "0");
    else
        snprintf(buf, size, "%.3g", v);
    return buf;
}

char *ld_cmp_fmt_shape(const int64_t *shape, int ndim, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    int n = snprintf(buf, size, "[");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < ndim && used < size; i++) {
        n = snprintf(buf + used, size - used, "%s%lld", i ? "," : "", (long long)shape[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

char *ld_cmp_key_text(const ld_key *k, char *buf, size_t size)
{
    return ld_key_format(k, buf, size);
}

void ld_cmp_put_json_key(FILE *f, const ld_key *k)
{
    char kt[LD_TAG_NAME_MAX + 48];
    fputs("\"key\":", f);
    ld_cmp_put_json_string(f, ld_cmp_key_text(k, kt, sizeof kt));
    fprintf(f, ",\"step\":%d,\"layer\":", k->step);
    if (k->layer >= 0)
        fprintf(f, "%d", k->layer);
    else
        fputs("null", f);
    fputs(",\"tag\":", f);
    ld_cmp_put_json_string(f, k->tag);
}

char *ld_cmp_key_words(const ld_key *k, char *buf, size_t size)
{
    if (k->layer >= 0)
        snprintf(buf, size, "layer %d, %s, step %d", k->layer, k->tag, k->step);
    else
        snprintf(buf, size, "%s, step %d", k->tag, k->step);
    return buf;
}

ld_status ld_cmp_stream_status(FILE *f, const char *what, ld_error *err)
{
    if (fflush(f) != 0 || ferror(f))
        return ld_error_set(err, LD_E_IO, "cannot write the %s report", what);
    return LD_OK;
}

/* buf.c — the growable byte buffer of buf.h. */
#include "buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

void ld_buf_free(ld_buf *b)
{
    if (!b)
        return;
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

bool ld_buf_reserve(ld_buf *b, size_t extra)
{
    if (b->oom)
        return false;
    size_t need; /* one spare byte for the NUL of ld_buf_cstr */
    if (!ld_add_size(b->len, extra, &need) || !ld_add_size(need, 1, &need)) {
        b->oom = true;
        return false;
    }
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void ld_buf_append(ld_buf *b, const void *data, size_t n)
{
    if (n == 0 || !ld_buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

void ld_buf_puts(ld_buf *b, const char *s) { ld_buf_append(b, s, strlen(s)); }

void ld_buf_printf(ld_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        ld_buf_append(b, small, (size_t)n);
        return;
    }
    if (!ld_buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

size_t ld_fmt_u64(char *out, uint64_t v)
{
    char tmp[LD_FMT_INT_MAX];
    size_t n = 0;
    do {
        tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(out, tmp + sizeof tmp - n, n);
    return n;
}

size_t ld_fmt_i64(char *out, int64_t v)
{
    if (v >= 0)
        return ld_fmt_u64(out, (uint64_t)v);
    out[0] = '-';
    return 1 + ld_fmt_u64(out + 1, -(uint64_t)v); /* INT64_MIN too: the negation is unsigned */
}

void ld_buf_put_u64(ld_buf *b, uint64_t v)
{
    char tmp[LD_FMT_INT_MAX];
    ld_buf_append(b, tmp, ld_fmt_u64(tmp, v));
}

void ld_buf_put_i64(ld_buf *b, int64_t v)
{
    char tmp[LD_FMT_INT_MAX];
    ld_buf_append(b, tmp, ld_fmt_i64(tmp, v));
}

const char *ld_buf_cstr(ld_buf *b)
{
    if (!b->p || !ld_buf_reserve(b, 0))
        return "";
    b->p[b->len] = '\0';
    return b->p;
}

char *ld_buf_take(ld_buf *b)
{
    ld_buf_cstr(b);
    char *p = b->oom ? NULL : b->p;
    if (!p && !b->oom)
        p = calloc(1, 1); /* nothing was appended: an empty string, still the caller's to free */
    if (b->oom)
        free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = false;
    return p;
}

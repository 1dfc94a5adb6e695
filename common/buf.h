/* buf.h — the growable byte buffer every writer builds text in (probe records, checkpoint JSON,
 * messages). Not a string library: it only appends, remembers the first allocation failure, and
 * leaves the caller to check ld_buf_failed() once at the end instead of after every append. */
#ifndef LD_BUF_H
#define LD_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct ld_buf {
    char *p;     /* [cap] bytes, the first len in use; NUL-terminated after ld_buf_cstr() */
    size_t len;
    size_t cap;
    bool oom;    /* an append could not grow the buffer; later appends do nothing */
} ld_buf;

void ld_buf_free(ld_buf *b);
/* Makes room for extra more bytes; false (and oom set) when that cannot be allocated. */
bool ld_buf_reserve(ld_buf *b, size_t extra);
void ld_buf_append(ld_buf *b, const void *data, size_t n);
void ld_buf_puts(ld_buf *b, const char *s);
void ld_buf_printf(ld_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A string literal, its length known at compile time. */
#define ld_buf_put_lit(b, lit) ld_buf_append((b), "" lit, sizeof(lit) - 1)
/* Integers in decimal as printf's %llu and %lld write them, without printf (the probe writer's
 * hot path). ld_fmt_u64/ld_fmt_i64 write into out[LD_FMT_INT_MAX] (no NUL) and return the
 * length. */
#define LD_FMT_INT_MAX 20
size_t ld_fmt_u64(char *out, uint64_t v);
size_t ld_fmt_i64(char *out, int64_t v);
void ld_buf_put_u64(ld_buf *b, uint64_t v);
void ld_buf_put_i64(ld_buf *b, int64_t v);
/* NUL-terminates (without counting the NUL in len) and returns p; "" when empty or failed. */
const char *ld_buf_cstr(ld_buf *b);
/* Hands the NUL-terminated text over (the caller frees it; "" when empty) and resets b; NULL after
 * an allocation failure. */
char *ld_buf_take(ld_buf *b);

static inline void ld_buf_putc(ld_buf *b, char c)
{
    if (b->len + 1 < b->cap || ld_buf_reserve(b, 1))
        b->p[b->len++] = c;
}

static inline bool ld_buf_failed(const ld_buf *b) { return b->oom; }

#endif

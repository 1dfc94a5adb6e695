/* json_lex.c — the strict JSON lexer of json_lex.h: strings (escapes, UTF-8), numbers, whitespace,
 * positions, duplicate names. Tokens only: the parsers (probes/json.c, model/json_pull.c) own the
 * structure and the messages. */
#include "json_lex.h"

#include <stdlib.h>
#include <string.h>

size_t ld_json_skip_ws(const char *text, size_t len, size_t pos)
{
    while (pos < len) {
        char c = text[pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        pos++;
    }
    return pos;
}

void ld_json_line_col(const char *text, size_t len, size_t pos, size_t *line, size_t *col)
{
    size_t l = 1, c = 1;
    for (size_t i = 0; i < pos && i < len; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

size_t ld_json_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return avail >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (avail < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
            return 0; /* overlong, or a UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (avail < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
            return 0; /* overlong, or above U+10FFFF */
        return 4;
    }
    return 0;
}

int ld_json_hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int h = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Eight bytes at once: nonzero when one of them is a quote, a backslash, a control character or
 * not ASCII, i.e. when the string scanner must look at them one by one. */
static inline uint64_t special8(const char *s)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t x;
    memcpy(&x, s, 8);
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
    uint64_t ctl = (x - ones * 0x20) & ~x;
    return (((q - ones) & ~q) | ((b - ones) & ~b) | ctl | x) & highs;
}

static ld_json_lex_err lex_fail(ld_json_tok *tok, ld_json_lex_err e, size_t at)
{
    tok->at = at;
    return e;
}

size_t ld_json_utf8_encode(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

ld_json_lex_err ld_json_lex_string(const char *text, size_t len, size_t pos, char *out,
                                   bool allow_nul, ld_json_tok *tok)
{
    const char *t = text;
    size_t r = pos + 1, w = 0, end = len;
    /* In place, nothing has to move until an escape has shrunk the text (w lags behind r): until
     * then the fast path only reads, which keeps a 100 MB payload at memory speed. */
    const bool in_place = out == text + pos + 1;
    for (;;) {
        /* The fast path: a base64 payload or a plain name, eight bytes at a time. */
        if (in_place && w + pos + 1 == r) {
            while (r + 8 <= end && !special8(t + r))
                r += 8;
            w = r - (pos + 1);
        } else {
            while (r + 8 <= end && !special8(t + r)) {
                memmove(out + w, t + r, 8);
                r += 8;
                w += 8;
            }
        }
        if (r >= end)
            return lex_fail(tok, LD_JSON_LEX_UNCLOSED, pos);
        unsigned char c = (unsigned char)t[r];
        if (c == '"') {
            tok->len = w;
            tok->end = r + 1;
            return LD_JSON_LEX_OK;
        }
        if (c < 0x20)
            return lex_fail(tok, LD_JSON_LEX_CONTROL, r);
        if (c >= 0x80) {
            size_t n = ld_json_utf8_len((const unsigned char *)t + r, end - r);
            if (n == 0)
                return lex_fail(tok, LD_JSON_LEX_UTF8, r);
            if (out + w != t + r)
                memmove(out + w, t + r, n);
            r += n;
            w += n;
            continue;
        }
        if (c != '\\') {
            out[w++] = t[r++];
            continue;
        }
        if (r + 1 >= end)
            return lex_fail(tok, LD_JSON_LEX_UNCLOSED, r);
        char esc = t[r + 1];
        const char *simple = strchr("\"\\/bfnrt", esc);
        if (esc && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            out[w++] = map[simple - "\"\\/bfnrt"];
            r += 2;
            continue;
        }
        if (esc != 'u')
            return lex_fail(tok, LD_JSON_LEX_ESCAPE, r);
        if (r + 6 > end)
            return lex_fail(tok, LD_JSON_LEX_U_TRUNCATED, r);
        int u = ld_json_hex4(t + r + 2);
        if (u < 0)
            return lex_fail(tok, LD_JSON_LEX_U_HEX, r);
        size_t used = 6;
        uint32_t cp = (uint32_t)u;
        tok->cp = cp;
        if (u >= 0xdc00 && u <= 0xdfff)
            return lex_fail(tok, LD_JSON_LEX_LOW_FIRST, r);
        if (u >= 0xd800 && u <= 0xdbff) {
            int lo = (r + 12 <= end && t[r + 6] == '\\' && t[r + 7] == 'u')
                         ? ld_json_hex4(t + r + 8)
                         : -1;
            if (lo < 0xdc00 || lo > 0xdfff)
                return lex_fail(tok, LD_JSON_LEX_HIGH_ALONE, r);
            cp = 0x10000u + (((uint32_t)u - 0xd800u) << 10) + ((uint32_t)lo - 0xdc00u);
            used = 12;
        }
        if (cp == 0 && !allow_nul)
            return lex_fail(tok, LD_JSON_LEX_NUL, r);
        w += ld_json_utf8_encode(cp, out + w);
        r += used;
    }
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

ld_json_lex_err ld_json_lex_number(const char *text, size_t len, size_t pos, ld_json_tok *tok)
{
    const char *t = text;
    size_t i = pos;
    tok->is_int = true;
    if (i < len && t[i] == '-')
        i++;
    if (i >= len || !is_digit(t[i]))
        return lex_fail(tok, LD_JSON_LEX_NUM_DIGIT, i);
    if (t[i] == '0') {
        i++;
        if (i < len && is_digit(t[i])) {
            tok->end = i;
            return lex_fail(tok, LD_JSON_LEX_NUM_ZERO, i);
        }
    } else {
        while (i < len && is_digit(t[i]))
            i++;
    }
    if (i < len && t[i] == '.') {
        tok->is_int = false;
        i++;
        if (i >= len || !is_digit(t[i]))
            return lex_fail(tok, LD_JSON_LEX_NUM_FRAC, i);
        while (i < len && is_digit(t[i]))
            i++;
    }
    if (i < len && (t[i] == 'e' || t[i] == 'E')) {
        tok->is_int = false;
        i++;
        if (i < len && (t[i] == '+' || t[i] == '-'))
            i++;
        if (i >= len || !is_digit(t[i]))
            return lex_fail(tok, LD_JSON_LEX_NUM_EXP, i);
        while (i < len && is_digit(t[i]))
            i++;
    }
    tok->end = i;
    return LD_JSON_LEX_OK;
}

static int name_cmp_bytewise(const void *a, const void *b)
{
    const ld_json_name *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    if (c != 0 || x->len == y->len)
        return c;
    return x->len < y->len ? -1 : 1;
}

static int name_cmp_shortest_first(const void *a, const void *b)
{
    const ld_json_name *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->s, y->s, x->len);
}

const ld_json_name *ld_json_names_duplicate(ld_json_name *names, size_t n,
                                            ld_json_name_order order)
{
    int (*cmp)(const void *, const void *) =
        order == LD_JSON_NAMES_BYTEWISE ? name_cmp_bytewise : name_cmp_shortest_first;
    if (n < 2)
        return NULL;
    qsort(names, n, sizeof *names, cmp);
    for (size_t i = 1; i < n; i++)
        if (!cmp(&names[i - 1], &names[i]))
            return &names[i];
    return NULL;
}

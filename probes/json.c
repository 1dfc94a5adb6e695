/* json.c — strict JSON parsing into a flat node array, and compact JSON writing (json.h).
 * Built for probe records: one line at a time, strings unescaped in place so that a 100 MB base64
 * payload is never copied, bounded depth and node count. Not a general-purpose JSON library. */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct parser {
    ld_json_doc *d;
    char *text; /* [len] bytes, modified in place */
    size_t len;
    size_t pos;
    ld_json_error *e;
} parser;

static bool fail(parser *p, size_t at, const char *what)
{
    p->e->offset = at;
    snprintf(p->e->msg, sizeof p->e->msg, "%s", what);
    return false;
}

const char *ld_json_type_name(int type)
{
    switch (type) {
    case LD_JSON_NULL: return "null";
    case LD_JSON_FALSE:
    case LD_JSON_TRUE: return "a boolean";
    case LD_JSON_NUMBER: return "a number";
    case LD_JSON_STRING: return "a string";
    case LD_JSON_ARRAY: return "an array";
    case LD_JSON_OBJECT: return "an object";
    }
    return "?";
}

void ld_json_doc_free(ld_json_doc *d)
{
    if (!d)
        return;
    free(d->nodes);
    free(d->scratch);
    memset(d, 0, sizeof *d);
}

static uint32_t new_node(parser *p, uint8_t type)
{
    ld_json_doc *d = p->d;
    if (d->n >= LD_JSON_MAX_NODES) {
        char msg[96];
        snprintf(msg, sizeof msg, "more than %u values in one record", LD_JSON_MAX_NODES);
        fail(p, p->pos, msg);
        return LD_JSON_NONE;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        ld_json_node *nodes = realloc(d->nodes, cap * sizeof *nodes);
        if (!nodes) {
            fail(p, p->pos, "out of memory for JSON values");
            return LD_JSON_NONE;
        }
        d->nodes = nodes;
        d->cap = cap;
    }
    ld_json_node *n = &d->nodes[d->n];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->first = n->next = LD_JSON_NONE;
    return (uint32_t)d->n++;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
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

/* Parses the string literal at p->pos (a '"'), unescaping in place; [*out, *out_len) is the
 * value. Writing never overtakes reading: every escape is longer than what it stands for. */
static bool parse_string(parser *p, const char **out, size_t *out_len)
{
    char *t = p->text;
    size_t r = p->pos + 1, w = r, end = p->len;
    for (;;) {
        while (r + 8 <= end && !special8(t + r)) {
            if (w != r)
                memmove(t + w, t + r, 8);
            r += 8;
            w += 8;
        }
        if (r >= end)
            return fail(p, p->pos, "string not closed");
        unsigned char c = (unsigned char)t[r];
        if (c == '"') {
            *out = t + p->pos + 1;
            *out_len = w - (p->pos + 1);
            p->pos = r + 1;
            return true;
        }
        if (c < 0x20)
            return fail(p, r, "raw control character in a string (must be escaped)");
        if (c >= 0x80) {
            size_t n = ld_json_utf8_len((const unsigned char *)t + r, end - r);
            if (n == 0)
                return fail(p, r, "invalid UTF-8 in a string");
            if (w != r)
                memmove(t + w, t + r, n);
            r += n;
            w += n;
            continue;
        }
        if (c != '\\') {
            t[w++] = t[r++];
            continue;
        }
        if (r + 1 >= end)
            return fail(p, r, "string not closed");
        char esc = t[r + 1];
        const char *simple = strchr("\"\\/bfnrt", esc);
        if (esc && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            t[w++] = map[simple - "\"\\/bfnrt"];
            r += 2;
            continue;
        }
        if (esc != 'u')
            return fail(p, r, "invalid escape sequence in a string");
        if (r + 6 > end)
            return fail(p, r, "truncated \\u escape");
        int u = ld_json_hex4(t + r + 2);
        if (u < 0)
            return fail(p, r, "invalid \\u escape (needs four hex digits)");
        size_t used = 6;
        uint32_t cp = (uint32_t)u;
        if (u >= 0xdc00 && u <= 0xdfff)
            return fail(p, r, "lone low surrogate in a \\u escape");
        if (u >= 0xd800 && u <= 0xdbff) {
            int lo = (r + 12 <= end && t[r + 6] == '\\' && t[r + 7] == 'u')
                         ? ld_json_hex4(t + r + 8)
                         : -1;
            if (lo < 0xdc00 || lo > 0xdfff)
                return fail(p, r, "high surrogate not followed by a low surrogate");
            cp = 0x10000u + (((uint32_t)u - 0xd800u) << 10) + ((uint32_t)lo - 0xdc00u);
            used = 12;
        }
        if (cp < 0x80) {
            t[w++] = (char)cp;
        } else if (cp < 0x800) {
            t[w++] = (char)(0xc0 | (cp >> 6));
            t[w++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            t[w++] = (char)(0xe0 | (cp >> 12));
            t[w++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            t[w++] = (char)(0x80 | (cp & 0x3f));
        } else {
            t[w++] = (char)(0xf0 | (cp >> 18));
            t[w++] = (char)(0x80 | ((cp >> 12) & 0x3f));
            t[w++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            t[w++] = (char)(0x80 | (cp & 0x3f));
        }
        r += used;
    }
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool parse_number(parser *p, ld_json_node *n)
{
    const char *t = p->text;
    size_t i = p->pos, end = p->len, start = i;
    if (i < end && t[i] == '-')
        i++;
    if (i >= end || !is_digit(t[i]))
        return fail(p, start, "invalid number");
    if (t[i] == '0') {
        i++;
        if (i < end && is_digit(t[i]))
            return fail(p, start, "number with a leading zero");
    } else {
        while (i < end && is_digit(t[i]))
            i++;
    }
    if (i < end && t[i] == '.') {
        i++;
        if (i >= end || !is_digit(t[i]))
            return fail(p, start, "invalid number (no digit after '.')");
        while (i < end && is_digit(t[i]))
            i++;
    }
    if (i < end && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < end && (t[i] == '+' || t[i] == '-'))
            i++;
        if (i >= end || !is_digit(t[i]))
            return fail(p, start, "invalid number (no digit in the exponent)");
        while (i < end && is_digit(t[i]))
            i++;
    }
    if (i - start > LD_JSON_MAX_NUMBER_LEN)
        return fail(p, start, "number literal longer than 64 characters");
    n->str = t + start;
    n->len = i - start;
    p->pos = i;
    return true;
}

typedef struct name_ref {
    const char *s;
    size_t len;
} name_ref;

static int name_cmp(const void *a, const void *b)
{
    const name_ref *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->s, y->s, x->len);
}

static bool duplicate(parser *p, const char *a, const char *b, size_t len)
{
    const char *later = a > b ? a : b; /* point at the second occurrence, at its quote */
    char msg[160];
    snprintf(msg, sizeof msg, "duplicate member name \"%.*s\" in an object",
             (int)LD_MIN(len, (size_t)64), later);
    return fail(p, (size_t)(later - p->text) - 1, msg);
}

/* Refuses an object with two members of the same name. Small objects (every record) compare
 * pairwise; large free-form ones sort, so a hostile object costs n log n, not n^2. */
static bool check_duplicates(parser *p, uint32_t obj, size_t at)
{
    ld_json_doc *d = p->d;
    uint32_t count = d->nodes[obj].count;
    if (count <= 16) {
        for (uint32_t i = d->nodes[obj].first; i != LD_JSON_NONE; i = d->nodes[i].next)
            for (uint32_t j = d->nodes[i].next; j != LD_JSON_NONE; j = d->nodes[j].next)
                if (d->nodes[i].key_len == d->nodes[j].key_len &&
                    !memcmp(d->nodes[i].key, d->nodes[j].key, d->nodes[i].key_len))
                    return duplicate(p, d->nodes[i].key, d->nodes[j].key, d->nodes[i].key_len);
        return true;
    }
    size_t need = (size_t)count * sizeof(name_ref);
    if (need > d->scratch_cap) {
        void *s = realloc(d->scratch, need);
        if (!s)
            return fail(p, at, "out of memory checking member names");
        d->scratch = s;
        d->scratch_cap = need;
    }
    name_ref *names = d->scratch;
    size_t k = 0;
    for (uint32_t i = d->nodes[obj].first; i != LD_JSON_NONE; i = d->nodes[i].next)
        names[k++] = (name_ref){d->nodes[i].key, d->nodes[i].key_len};
    qsort(names, k, sizeof *names, name_cmp);
    for (size_t i = 1; i < k; i++)
        if (!name_cmp(&names[i - 1], &names[i]))
            return duplicate(p, names[i - 1].s, names[i].s, names[i].len);
    return true;
}

static uint32_t parse_value(parser *p, int depth);

/* Parses the elements of an array or the members of an object after its opening bracket. */
static bool parse_children(parser *p, uint32_t self, bool object, int depth)
{
    char close = object ? '}' : ']';
    size_t open_at = p->pos - 1;
    skip_ws(p);
    if (p->pos < p->len && p->text[p->pos] == close) {
        p->pos++;
        return true;
    }
    uint32_t last = LD_JSON_NONE, count = 0;
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0;
        if (object) {
            if (p->pos >= p->len || p->text[p->pos] != '"')
                return fail(p, p->pos, "expected a member name in quotes");
            if (!parse_string(p, &key, &key_len))
                return false;
            skip_ws(p);
            if (p->pos >= p->len || p->text[p->pos] != ':')
                return fail(p, p->pos, "expected ':' after a member name");
            p->pos++;
            skip_ws(p);
        }
        uint32_t child = parse_value(p, depth + 1);
        if (child == LD_JSON_NONE)
            return false;
        p->d->nodes[child].key = key;
        p->d->nodes[child].key_len = key_len;
        if (last == LD_JSON_NONE)
            p->d->nodes[self].first = child;
        else
            p->d->nodes[last].next = child;
        last = child;
        count++;
        skip_ws(p);
        if (p->pos >= p->len)
            return fail(p, p->pos, object ? "object not closed" : "array not closed");
        char c = p->text[p->pos++];
        if (c == ',') {
            skip_ws(p);
            continue;
        }
        if (c == close)
            break;
        return fail(p, p->pos - 1, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    p->d->nodes[self].count = count;
    return object ? check_duplicates(p, self, open_at) : true;
}

static uint32_t parse_value(parser *p, int depth)
{
    if (depth > LD_JSON_MAX_DEPTH) {
        char msg[64];
        snprintf(msg, sizeof msg, "nesting deeper than %d levels", LD_JSON_MAX_DEPTH);
        fail(p, p->pos, msg);
        return LD_JSON_NONE;
    }
    if (p->pos >= p->len) {
        fail(p, p->pos, "expected a value");
        return LD_JSON_NONE;
    }
    char c = p->text[p->pos];
    uint32_t id;
    switch (c) {
    case '{':
    case '[':
        id = new_node(p, c == '{' ? LD_JSON_OBJECT : LD_JSON_ARRAY);
        if (id == LD_JSON_NONE)
            return id;
        p->pos++;
        return parse_children(p, id, c == '{', depth) ? id : LD_JSON_NONE;
    case '"': {
        id = new_node(p, LD_JSON_STRING);
        const char *s;
        size_t n;
        if (id == LD_JSON_NONE || !parse_string(p, &s, &n))
            return LD_JSON_NONE;
        p->d->nodes[id].str = s;
        p->d->nodes[id].len = n;
        return id;
    }
    case 't':
    case 'f':
    case 'n': {
        const char *word = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t wl = strlen(word);
        if (p->len - p->pos < wl || memcmp(p->text + p->pos, word, wl) != 0) {
            fail(p, p->pos, "invalid literal (expected true, false or null)");
            return LD_JSON_NONE;
        }
        id = new_node(p, c == 't' ? LD_JSON_TRUE : c == 'f' ? LD_JSON_FALSE : LD_JSON_NULL);
        p->pos += wl;
        return id;
    }
    default:
        if (c == '-' || is_digit(c)) {
            id = new_node(p, LD_JSON_NUMBER);
            if (id == LD_JSON_NONE || !parse_number(p, &p->d->nodes[id]))
                return LD_JSON_NONE;
            return id;
        }
        fail(p, p->pos, (unsigned char)c >= 0x80 ? "unexpected non-ASCII byte (expected a value)"
                                                 : "unexpected character (expected a value)");
        return LD_JSON_NONE;
    }
}

bool ld_json_parse(ld_json_doc *d, char *text, size_t len, ld_json_error *e)
{
    parser p = {d, text, len, 0, e};
    d->n = 0;
    e->offset = 0;
    e->msg[0] = '\0';
    skip_ws(&p);
    if (p.pos >= len)
        return fail(&p, p.pos, "no JSON value (blank line)");
    if (parse_value(&p, 1) == LD_JSON_NONE)
        return false;
    skip_ws(&p);
    if (p.pos != len)
        return fail(&p, p.pos, "unexpected text after the JSON value");
    return true;
}

const ld_json_node *ld_json_get(const ld_json_doc *d, const ld_json_node *obj, const char *name)
{
    if (!obj || obj->type != LD_JSON_OBJECT)
        return NULL;
    size_t nl = strlen(name);
    for (uint32_t i = obj->first; i != LD_JSON_NONE; i = d->nodes[i].next)
        if (d->nodes[i].key_len == nl && !memcmp(d->nodes[i].key, name, nl))
            return &d->nodes[i];
    return NULL;
}

const ld_json_node *ld_json_first(const ld_json_doc *d, const ld_json_node *parent)
{
    return parent->first == LD_JSON_NONE ? NULL : &d->nodes[parent->first];
}

const ld_json_node *ld_json_next(const ld_json_doc *d, const ld_json_node *node)
{
    return node->next == LD_JSON_NONE ? NULL : &d->nodes[node->next];
}

bool ld_json_number(const ld_json_node *n, locale_t c_locale, double *out)
{
    char tmp[LD_JSON_MAX_NUMBER_LEN + 1];
    if (n->type != LD_JSON_NUMBER || n->len > LD_JSON_MAX_NUMBER_LEN)
        return false;
    memcpy(tmp, n->str, n->len);
    tmp[n->len] = '\0';
    double v = strtod_l(tmp, NULL, c_locale);
    if (!isfinite(v))
        return false;
    *out = v;
    return true;
}

bool ld_json_int(const ld_json_node *n, int64_t min, int64_t max, int64_t *out)
{
    char tmp[LD_JSON_MAX_NUMBER_LEN + 1];
    if (n->type != LD_JSON_NUMBER || n->len > LD_JSON_MAX_NUMBER_LEN)
        return false;
    for (size_t i = 0; i < n->len; i++)
        if (!is_digit(n->str[i]) && !(i == 0 && n->str[i] == '-'))
            return false; /* a fraction or an exponent: not an integer literal */
    memcpy(tmp, n->str, n->len);
    tmp[n->len] = '\0';
    return ld_parse_i64(tmp, min, max, out);
}

bool ld_json_uint(const ld_json_node *n, uint64_t max, uint64_t *out)
{
    int64_t v;
    if (!ld_json_int(n, 0, max > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)max, &v))
        return false;
    *out = (uint64_t)v;
    return true;
}

void ld_json_append_string(ld_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    ld_buf_putc(out, '"');
    size_t i = 0, run = 0; /* run: start of bytes copied verbatim */
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        size_t ul = c >= 0x80 ? ld_json_utf8_len((const unsigned char *)s + i, n - i) : 0;
        if (ul > 0) {
            i += ul;
            continue;
        }
        ld_buf_append(out, s + run, i - run);
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            ld_buf_append(out, e, 2);
        } else if (c == '\n') {
            ld_buf_append(out, "\\n", 2);
        } else if (c == '\t') {
            ld_buf_append(out, "\\t", 2);
        } else if (c == '\r') {
            ld_buf_append(out, "\\r", 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            ld_buf_append(out, e, 6);
        } else {
            ld_buf_append(out, "\\ufffd", 6); /* not UTF-8: keep the output valid */
        }
        i++;
        run = i;
    }
    ld_buf_append(out, s + run, n - run);
    ld_buf_putc(out, '"');
}

void ld_json_append_double(ld_buf *out, double v, locale_t c_locale)
{
    if (isnan(v)) {
        ld_buf_puts(out, "\"NaN\"");
        return;
    }
    if (isinf(v)) {
        ld_buf_puts(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    char tmp[40];
    locale_t old = uselocale(c_locale);
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (prec == 17 || strtod_l(tmp, NULL, c_locale) == v)
            break;
    }
    uselocale(old);
    ld_buf_puts(out, tmp);
}

static void write_node(const ld_json_doc *d, const ld_json_node *n, ld_buf *out)
{
    switch (n->type) {
    case LD_JSON_NULL: ld_buf_puts(out, "null"); return;
    case LD_JSON_FALSE: ld_buf_puts(out, "false"); return;
    case LD_JSON_TRUE: ld_buf_puts(out, "true"); return;
    case LD_JSON_NUMBER: ld_buf_append(out, n->str, n->len); return;
    case LD_JSON_STRING: ld_json_append_string(out, n->str, n->len); return;
    default: break;
    }
    bool object = n->type == LD_JSON_OBJECT;
    ld_buf_putc(out, object ? '{' : '[');
    for (const ld_json_node *c = ld_json_first(d, n); c; c = ld_json_next(d, c)) {
        if (c != ld_json_first(d, n))
            ld_buf_putc(out, ',');
        if (object) {
            ld_json_append_string(out, c->key, c->key_len);
            ld_buf_putc(out, ':');
        }
        write_node(d, c, out);
    }
    ld_buf_putc(out, object ? '}' : ']');
}

void ld_json_write(const ld_json_doc *d, const ld_json_node *node, ld_buf *out)
{
    write_node(d, node, out);
}

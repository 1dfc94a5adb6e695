/* json.c — strict JSON parsing into a flat node array, and compact JSON writing (json.h), on the
 * shared lexer (common/json_lex.h). Built for probe records: one line at a time, strings unescaped
 * in place so that a 100 MB base64 payload is never copied, bounded depth and node count. */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_lex.h"
#include "json_out.h"
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

static void skip_ws(parser *p) { p->pos = ld_json_skip_ws(p->text, p->len, p->pos); }

/* The lexer's verdict on a string or number, in the words of the probe reader's messages. */
static const char *lex_message(ld_json_lex_err e)
{
    switch (e) {
    case LD_JSON_LEX_UNCLOSED: return "string not closed";
    case LD_JSON_LEX_CONTROL: return "raw control character in a string (must be escaped)";
    case LD_JSON_LEX_UTF8: return "invalid UTF-8 in a string";
    case LD_JSON_LEX_ESCAPE: return "invalid escape sequence in a string";
    case LD_JSON_LEX_U_TRUNCATED: return "truncated \\u escape";
    case LD_JSON_LEX_U_HEX: return "invalid \\u escape (needs four hex digits)";
    case LD_JSON_LEX_LOW_FIRST: return "lone low surrogate in a \\u escape";
    case LD_JSON_LEX_HIGH_ALONE: return "high surrogate not followed by a low surrogate";
    case LD_JSON_LEX_NUM_DIGIT: return "invalid number";
    case LD_JSON_LEX_NUM_ZERO: return "number with a leading zero";
    case LD_JSON_LEX_NUM_FRAC: return "invalid number (no digit after '.')";
    case LD_JSON_LEX_NUM_EXP: return "invalid number (no digit in the exponent)";
    case LD_JSON_LEX_NUL: /* records accept \u0000 */
    case LD_JSON_LEX_OK: break;
    }
    return "?";
}

/* Parses the string literal at p->pos (a '"'), unescaping in place (a 100 MB payload is never
 * copied); [*out, *out_len) is the value. */
static bool parse_string(parser *p, const char **out, size_t *out_len)
{
    ld_json_tok tok;
    char *value = p->text + p->pos + 1;
    ld_json_lex_err e = ld_json_lex_string(p->text, p->len, p->pos, value, true, &tok);
    if (e != LD_JSON_LEX_OK)
        return fail(p, tok.at, lex_message(e));
    *out = value;
    *out_len = tok.len;
    p->pos = tok.end;
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Number errors point at the literal's first character, whatever breaks the grammar. */
static bool parse_number(parser *p, ld_json_node *n)
{
    ld_json_tok tok;
    size_t start = p->pos;
    ld_json_lex_err e = ld_json_lex_number(p->text, p->len, start, &tok);
    if (e != LD_JSON_LEX_OK)
        return fail(p, start, lex_message(e));
    if (tok.end - start > LD_JSON_MAX_NUMBER_LEN)
        return fail(p, start, "number literal longer than 64 characters");
    n->str = p->text + start;
    n->len = tok.end - start;
    p->pos = tok.end;
    return true;
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
    size_t need = (size_t)count * sizeof(ld_json_name);
    if (need > d->scratch_cap) {
        void *s = realloc(d->scratch, need);
        if (!s)
            return fail(p, at, "out of memory checking member names");
        d->scratch = s;
        d->scratch_cap = need;
    }
    ld_json_name *names = d->scratch;
    size_t k = 0;
    for (uint32_t i = d->nodes[obj].first; i != LD_JSON_NONE; i = d->nodes[i].next)
        names[k++] = (ld_json_name){d->nodes[i].key, d->nodes[i].key_len};
    const ld_json_name *dup = ld_json_names_duplicate(names, k, LD_JSON_NAMES_SHORTEST_FIRST);
    return dup ? duplicate(p, dup[-1].s, dup->s, dup->len) : true;
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

static void write_node(const ld_json_doc *d, const ld_json_node *n, ld_buf *out)
{
    switch (n->type) {
    case LD_JSON_NULL: ld_buf_puts(out, "null"); return;
    case LD_JSON_FALSE: ld_buf_puts(out, "false"); return;
    case LD_JSON_TRUE: ld_buf_puts(out, "true"); return;
    case LD_JSON_NUMBER: ld_buf_append(out, n->str, n->len); return;
    case LD_JSON_STRING: ld_json_put_string(out, n->str, n->len, true); return;
    default: break;
    }
    bool object = n->type == LD_JSON_OBJECT;
    ld_buf_putc(out, object ? '{' : '[');
    for (const ld_json_node *c = ld_json_first(d, n); c; c = ld_json_next(d, c)) {
        if (c != ld_json_first(d, n))
            ld_buf_putc(out, ',');
        if (object) {
            ld_json_put_string(out, c->key, c->key_len, true);
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

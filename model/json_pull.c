/* json_pull.c — the strict JSON pull parser of json_pull.h (RFC 8259: no comments, no trailing
 * commas, no leading zeros, UTF-8 checked, duplicate keys found on request): structure and messages
 * on the shared lexer's tokens. Not a tree builder: callers walk the document and keep only what
 * they need. */
#include "json_pull.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_lex.h"
#include "util.h"

void ld_jp_init(ld_jp *j, const char *text, size_t len, const char *label, ld_error *err)
{
    j->text = text;
    j->len = len;
    j->pos = 0;
    j->label = label;
    j->err = err;
    j->depth = 0;
}

ld_status ld_jp_fail(ld_jp *j, ld_status code, const char *fmt, ...)
{
    size_t line, col;
    ld_json_line_col(j->text, j->len, j->pos, &line, &col);
    char msg[LD_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ld_error_set(j->err, code, "%s: line %zu, column %zu: %s", j->label, line, col, msg);
}

static void skip_ws(ld_jp *j)
{
    j->pos = ld_json_skip_ws(j->text, j->len, j->pos);
}

/* The byte at the cursor for a message: printable as is, else as a hex escape. */
static const char *describe_here(const ld_jp *j, char *buf, size_t size)
{
    if (j->pos >= j->len) {
        snprintf(buf, size, "end of input");
        return buf;
    }
    unsigned char c = (unsigned char)j->text[j->pos];
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, size, "'%c'", c);
    else
        snprintf(buf, size, "byte 0x%02x", c);
    return buf;
}

ld_jp_kind ld_jp_peek(ld_jp *j)
{
    skip_ws(j);
    if (j->pos >= j->len) return LD_JP_BAD;
    char c = j->text[j->pos];
    switch (c) {
    case '{':
        return LD_JP_OBJECT;
    case '[':
        return LD_JP_ARRAY;
    case '"':
        return LD_JP_STRING;
    case 't':
        return LD_JP_TRUE;
    case 'f':
        return LD_JP_FALSE;
    case 'n':
        return LD_JP_NULL;
    default:
        return (c == '-' || (c >= '0' && c <= '9')) ? LD_JP_NUMBER : LD_JP_BAD;
    }
}

const char *ld_jp_kind_name(ld_jp_kind k)
{
    switch (k) {
    case LD_JP_OBJECT:
        return "an object";
    case LD_JP_ARRAY:
        return "an array";
    case LD_JP_STRING:
        return "a string";
    case LD_JP_NUMBER:
        return "a number";
    case LD_JP_TRUE:
    case LD_JP_FALSE:
        return "a boolean";
    case LD_JP_NULL:
        return "null";
    case LD_JP_BAD:
        break;
    }
    return "no JSON value";
}

static ld_status expect_kind(ld_jp *j, ld_jp_kind want)
{
    ld_jp_kind k = ld_jp_peek(j);
    if (k == want) return LD_OK;
    char here[32];
    if (k == LD_JP_BAD)
        return ld_jp_fail(j, LD_E_INPUT, "expected %s, found %s", ld_jp_kind_name(want),
                          describe_here(j, here, sizeof here));
    return ld_jp_fail(j, LD_E_INPUT, "expected %s, found %s", ld_jp_kind_name(want),
                      ld_jp_kind_name(k));
}

static ld_status open_container(ld_jp *j, ld_jp_kind kind)
{
    ld_status st = expect_kind(j, kind);
    if (st != LD_OK) return st;
    if (j->depth >= LD_JSON_MAX_DEPTH)
        return ld_jp_fail(j, LD_E_INPUT, "nested more than %d levels deep", LD_JSON_MAX_DEPTH);
    j->depth++;
    j->pos++;
    return LD_OK;
}

ld_status ld_jp_object_begin(ld_jp *j)
{
    return open_container(j, LD_JP_OBJECT);
}
ld_status ld_jp_array_begin(ld_jp *j)
{
    return open_container(j, LD_JP_ARRAY);
}

/* Shared by objects and arrays: consumes ',' between members or the closing bracket. */
static ld_status container_next(ld_jp *j, char close, size_t *count, bool *more)
{
    char here[32];
    skip_ws(j);
    if (j->pos < j->len && j->text[j->pos] == close) {
        j->pos++;
        j->depth--;
        *more = false;
        return LD_OK;
    }
    if (*count > 0) {
        if (j->pos >= j->len || j->text[j->pos] != ',')
            return ld_jp_fail(j, LD_E_INPUT, "expected ',' or '%c', found %s", close,
                              describe_here(j, here, sizeof here));
        j->pos++;
    }
    *more = true;
    (*count)++;
    return LD_OK;
}

ld_status ld_jp_object_next(ld_jp *j, size_t *count, bool *more, char **key)
{
    *key = NULL;
    ld_status st = container_next(j, '}', count, more);
    if (st != LD_OK || !*more) return st;
    skip_ws(j);
    if (j->pos >= j->len || j->text[j->pos] != '"') {
        char here[32];
        return ld_jp_fail(j, LD_E_INPUT, "expected a key (a string), found %s",
                          describe_here(j, here, sizeof here));
    }
    st = ld_jp_string(j, key, NULL);
    if (st != LD_OK) return st;
    skip_ws(j);
    if (j->pos >= j->len || j->text[j->pos] != ':') {
        char here[32];
        free(*key);
        *key = NULL;
        return ld_jp_fail(j, LD_E_INPUT, "expected ':' after a key, found %s",
                          describe_here(j, here, sizeof here));
    }
    j->pos++;
    return LD_OK;
}

ld_status ld_jp_array_next(ld_jp *j, size_t *count, bool *more)
{
    return container_next(j, ']', count, more);
}

ld_status ld_jp_string(ld_jp *j, char **out, size_t *out_len)
{
    *out = NULL;
    ld_status st = expect_kind(j, LD_JP_STRING);
    if (st != LD_OK) return st;
    size_t start = j->pos + 1;
    /* Find the closing quote first, so that an unclosed string is reported as such whatever it
     * holds; the decoded text is never longer than the raw text. */
    size_t end = start;
    while (end < j->len && j->text[end] != '"')
        end += j->text[end] == '\\' ? 2 : 1;
    if (end >= j->len)
        return ld_jp_fail(j, LD_E_INPUT, "string is not closed before the end of the input");
    char *buf = malloc(end - start + 1);
    if (!buf)
        return ld_jp_fail(j, LD_E_NOMEM, "cannot allocate a string of %zu bytes", end - start);
    ld_json_tok tok;
    ld_json_lex_err e = ld_json_lex_string(j->text, j->len, j->pos, buf, false, &tok);
    if (e != LD_JSON_LEX_OK) {
        free(buf);
        unsigned char c = (unsigned char)j->text[tok.at];
        j->pos = tok.at;
        switch (e) {
        case LD_JSON_LEX_CONTROL:
            return ld_jp_fail(j, LD_E_INPUT, "control character 0x%02x inside a string", c);
        case LD_JSON_LEX_UTF8:
            return ld_jp_fail(j, LD_E_INPUT, "invalid UTF-8 (byte 0x%02x) inside a string", c);
        case LD_JSON_LEX_LOW_FIRST:
        case LD_JSON_LEX_HIGH_ALONE:
            return ld_jp_fail(j, LD_E_INPUT, "unpaired UTF-16 surrogate \\u%04x", tok.cp);
        case LD_JSON_LEX_NUL:
            return ld_jp_fail(j, LD_E_INPUT, "a string contains \\u0000 (a NUL character)");
        default: /* a bad escape; the closing quote was found above */
            return ld_jp_fail(j, LD_E_INPUT, "invalid escape sequence in a string");
        }
    }
    buf[tok.len] = '\0';
    j->pos = tok.end;
    *out = buf;
    if (out_len) *out_len = tok.len;
    return LD_OK;
}

ld_status ld_jp_number(ld_jp *j, ld_jp_num *out)
{
    ld_status st = expect_kind(j, LD_JP_NUMBER);
    if (st != LD_OK) return st;
    ld_json_tok tok;
    switch (ld_json_lex_number(j->text, j->len, j->pos, &tok)) {
    case LD_JSON_LEX_NUM_DIGIT:
        j->pos = tok.at;
        return ld_jp_fail(j, LD_E_INPUT, "malformed number: a digit must follow '-'");
    case LD_JSON_LEX_NUM_FRAC:
        j->pos = tok.at;
        return ld_jp_fail(j, LD_E_INPUT, "malformed number: a digit must follow '.'");
    case LD_JSON_LEX_NUM_EXP:
        j->pos = tok.at;
        return ld_jp_fail(j, LD_E_INPUT, "malformed number: the exponent has no digits");
    default:
        /* LD_JSON_LEX_NUM_ZERO included: the number is the zero, and the caller refuses the
         * digit after it as what follows the value ("expected ',' or '}', found '1'"). */
        break;
    }
    out->tok = j->text + j->pos;
    out->len = tok.end - j->pos;
    out->is_int = tok.is_int;
    j->pos = tok.end;
    return LD_OK;
}

static ld_status literal(ld_jp *j, const char *word)
{
    size_t n = strlen(word);
    if (j->len - j->pos < n || memcmp(j->text + j->pos, word, n) != 0)
        return ld_jp_fail(j, LD_E_INPUT, "malformed literal (expected '%s')", word);
    j->pos += n;
    return LD_OK;
}

ld_status ld_jp_bool(ld_jp *j, bool *out)
{
    ld_jp_kind k = ld_jp_peek(j);
    if (k != LD_JP_TRUE && k != LD_JP_FALSE) return expect_kind(j, LD_JP_TRUE);
    *out = k == LD_JP_TRUE;
    return literal(j, *out ? "true" : "false");
}

ld_status ld_jp_null(ld_jp *j)
{
    ld_status st = expect_kind(j, LD_JP_NULL);
    return st != LD_OK ? st : literal(j, "null");
}

ld_status ld_jp_skip(ld_jp *j)
{
    ld_jp_kind k = ld_jp_peek(j);
    ld_status st;
    size_t count = 0;
    bool more = true;
    switch (k) {
    case LD_JP_OBJECT: {
        /* Keys are kept until the object closes, to refuse duplicates at any depth. */
        ld_jp_keys keys = {0};
        st = ld_jp_object_begin(j);
        while (st == LD_OK) {
            char *key;
            st = ld_jp_object_next(j, &count, &more, &key);
            if (st != LD_OK || !more) break;
            if ((st = ld_jp_keys_add(j, &keys, key)) == LD_OK)
                st = ld_jp_skip(j);
        }
        if (st == LD_OK) {
            const char *dup = ld_jp_keys_duplicate(&keys);
            if (dup) st = ld_jp_fail(j, LD_E_INPUT, "duplicate key \"%.200s\" in an object", dup);
        }
        ld_jp_keys_free(&keys);
        return st;
    }
    case LD_JP_ARRAY:
        st = ld_jp_array_begin(j);
        while (st == LD_OK) {
            st = ld_jp_array_next(j, &count, &more);
            if (st != LD_OK || !more) break;
            st = ld_jp_skip(j);
        }
        return st;
    case LD_JP_STRING: {
        char *s;
        st = ld_jp_string(j, &s, NULL);
        free(s);
        return st;
    }
    case LD_JP_NUMBER: {
        ld_jp_num n;
        return ld_jp_number(j, &n);
    }
    case LD_JP_TRUE:
    case LD_JP_FALSE: {
        bool b;
        return ld_jp_bool(j, &b);
    }
    case LD_JP_NULL:
        return ld_jp_null(j);
    case LD_JP_BAD:
        break;
    }
    char here[32];
    return ld_jp_fail(j, LD_E_INPUT, "expected a JSON value, found %s",
                      describe_here(j, here, sizeof here));
}

ld_status ld_jp_end(ld_jp *j, bool spaces_only)
{
    if (spaces_only) {
        while (j->pos < j->len && j->text[j->pos] == ' ')
            j->pos++;
    } else {
        skip_ws(j);
    }
    if (j->pos < j->len) {
        char here[32];
        return ld_jp_fail(j, LD_E_INPUT, "unexpected %s after the end of the JSON value%s",
                          describe_here(j, here, sizeof here),
                          spaces_only ? " (only space padding may follow)" : "");
    }
    return LD_OK;
}

bool ld_jp_num_u64(const ld_jp_num *n, uint64_t *out)
{
    if (!n->is_int || n->len == 0 || n->tok[0] == '-') return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n->len; i++) {
        uint64_t d = (uint64_t)(n->tok[i] - '0');
        if (!ld_mul_u64(v, 10, &v) || !ld_add_u64(v, d, &v)) return false;
    }
    *out = v;
    return true;
}

bool ld_jp_num_i64(const ld_jp_num *n, int64_t *out)
{
    char buf[32];
    if (!n->is_int || n->len >= sizeof buf) return false;
    memcpy(buf, n->tok, n->len);
    buf[n->len] = '\0';
    return ld_parse_i64(buf, INT64_MIN, INT64_MAX, out);
}

bool ld_jp_num_double(const ld_jp_num *n, double *out)
{
    char buf[512];
    if (n->len >= sizeof buf) return false;
    memcpy(buf, n->tok, n->len);
    buf[n->len] = '\0';
    return ld_parse_double(buf, out);
}

ld_status ld_jp_keys_add(ld_jp *j, ld_jp_keys *ks, char *key)
{
    if (ks->n == ks->cap) {
        size_t ncap = ks->cap ? ks->cap * 2 : 8;
        ld_json_name *nv = realloc(ks->v, ncap * sizeof *nv);
        if (!nv) {
            free(key);
            return ld_jp_fail(j, LD_E_NOMEM, "cannot allocate %zu keys", ncap);
        }
        ks->v = nv;
        ks->cap = ncap;
    }
    ks->v[ks->n++] = (ld_json_name){key, strlen(key)};
    return LD_OK;
}

const char *ld_jp_keys_duplicate(ld_jp_keys *ks)
{
    const ld_json_name *dup = ld_json_names_duplicate(ks->v, ks->n, LD_JSON_NAMES_BYTEWISE);
    return dup ? dup->s : NULL;
}

void ld_jp_keys_free(ld_jp_keys *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        free((char *)ks->v[i].s); /* ld_jp_keys_add took ownership */
    free(ks->v);
    *ks = (ld_jp_keys){0};
}

const char *ld_jp_printable(const char *s, char *buf, size_t size)
{
    if (size == 0) return "";
    size_t n = 0, len = strlen(s);
    bool cut = len >= size;
    size_t keep = cut ? (size > 4 ? size - 4 : 0) : len;
    while (cut && keep > 0 && ((unsigned char)s[keep] & 0xc0) == 0x80)
        keep--; /* do not split a UTF-8 sequence */
    for (; n < keep; n++) {
        unsigned char c = (unsigned char)s[n];
        buf[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (cut && size > 4) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

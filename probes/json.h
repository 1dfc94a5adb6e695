/* json.h — the strict JSON used by probe records (internal to the probe library): a parser of one
 * record into a flat node array and a compact writer, on the shared lexer (common/json_lex.h) and
 * escaper (common/json_out.h). Strict means RFC 8259 exactly (no NaN literals, no leading zeros,
 * no trailing commas, valid UTF-8, no raw control characters) plus what records need: duplicate
 * member names are refused, nesting and node counts are bounded. Not a general JSON library. */
#ifndef LD_PROBES_JSON_H
#define LD_PROBES_JSON_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "json_lex.h" /* LD_JSON_MAX_DEPTH */

typedef enum ld_json_type {
    LD_JSON_NULL,
    LD_JSON_FALSE,
    LD_JSON_TRUE,
    LD_JSON_NUMBER,
    LD_JSON_STRING,
    LD_JSON_ARRAY,
    LD_JSON_OBJECT
} ld_json_type;

#define LD_JSON_NONE UINT32_MAX
#define LD_JSON_MAX_NODES 2000000u   /* values per record (a 2M-token prompt list at most) */
#define LD_JSON_MAX_NUMBER_LEN 64    /* characters of one number literal */

/* One value. Strings point into the parsed text, unescaped in place (so they may hold NUL bytes:
 * use len); numbers keep their literal text, so integers can be read exactly. */
typedef struct ld_json_node {
    const char *key;  /* member name when the parent is an object, else NULL */
    const char *str;  /* string value, or number literal */
    size_t key_len;
    size_t len;
    uint32_t first;   /* first child of an array or object, LD_JSON_NONE when empty */
    uint32_t next;    /* next sibling, LD_JSON_NONE for the last */
    uint32_t count;   /* children of an array or object */
    uint8_t type;     /* ld_json_type */
} ld_json_node;

typedef struct ld_json_doc {
    ld_json_node *nodes; /* [n] in document order; nodes[0] is the root */
    size_t n;
    size_t cap;
    void *scratch;       /* duplicate-name check of large objects */
    size_t scratch_cap;
} ld_json_doc;

typedef struct ld_json_error {
    size_t offset;  /* byte offset in the text (0-based) */
    char msg[160];
} ld_json_error;

void ld_json_doc_free(ld_json_doc *d);
/* Parses text[0..len) as exactly one JSON value surrounded by optional whitespace. The text is
 * modified (strings are unescaped in place) and must outlive the nodes. */
bool ld_json_parse(ld_json_doc *d, char *text, size_t len, ld_json_error *e);

/* The member called name of object node obj, or NULL. */
const ld_json_node *ld_json_get(const ld_json_doc *d, const ld_json_node *obj, const char *name);
/* Child i of an array, by walking; use ld_json_first/ld_json_next to iterate. */
const ld_json_node *ld_json_first(const ld_json_doc *d, const ld_json_node *parent);
const ld_json_node *ld_json_next(const ld_json_doc *d, const ld_json_node *node);
const char *ld_json_type_name(int type);

/* Number literal to double, locale-independent; false when out of range (overflow). */
bool ld_json_number(const ld_json_node *n, locale_t c_locale, double *out);
/* Number literal that is an integer (no fraction or exponent) within [min, max]. */
bool ld_json_int(const ld_json_node *n, int64_t min, int64_t max, int64_t *out);

/* Appends node as compact JSON (no whitespace), strings re-escaped, numbers as written. */
void ld_json_write(const ld_json_doc *d, const ld_json_node *node, ld_buf *out);

#endif

/* json_pull.h — a strict pull parser for the JSON that checkpoints carry (config.json, safetensors
 * headers, model.safetensors.index.json), on the shared lexer (common/json_lex.h). Internal to
 * model/ and the tokenizer above it (tokenizer.json); not a general JSON library, and no writer
 * (common/buf.h, common/json_out.h).
 *
 * Why not cJSON here: checkpoint files are hostile input, and cJSON accepts duplicate keys, does
 * not check UTF-8, keeps numbers only as doubles (so 64.0 passes as an integer and offsets above
 * 2^53 lose bits) and builds a whole tree (memory proportional to a 100 MB header). This parser
 * follows RFC 8259 exactly, keeps every number's text, and lets the caller walk the document
 * without building a tree: memory grows only with what the caller keeps. */
#ifndef LD_JP_H
#define LD_JP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json_lex.h"
#include "layerdiff/error.h"

typedef enum ld_jp_kind {
    LD_JP_BAD = 0, /* end of input or a byte no value can start with */
    LD_JP_OBJECT,
    LD_JP_ARRAY,
    LD_JP_STRING,
    LD_JP_NUMBER,
    LD_JP_TRUE,
    LD_JP_FALSE,
    LD_JP_NULL
} ld_jp_kind;

/* A cursor over text[0..len). Messages read "<label>: line L, column C: ...". */
typedef struct ld_jp {
    const char *text;
    size_t len;
    size_t pos;
    const char *label;
    ld_error *err;
    int depth;
} ld_jp;

/* A number token as it appears in the text (not NUL-terminated). */
typedef struct ld_jp_num {
    const char *tok;
    size_t len;
    bool is_int; /* no fraction, no exponent */
} ld_jp_num;

void ld_jp_init(ld_jp *j, const char *text, size_t len, const char *label, ld_error *err);
/* Kind of the next value (skips whitespace, consumes nothing). */
ld_jp_kind ld_jp_peek(ld_jp *j);
/* "object", "array", ... for messages. */
const char *ld_jp_kind_name(ld_jp_kind k);

/* Objects: begin consumes '{'; next reads the separator and the next key into a malloc'd,
 * NUL-terminated string (*key, which the caller frees) and consumes the ':'; *more is false once
 * the closing '}' has been consumed. *count is the caller's member counter, starting at 0. */
ld_status ld_jp_object_begin(ld_jp *j);
ld_status ld_jp_object_next(ld_jp *j, size_t *count, bool *more, char **key);
/* Arrays: same protocol without keys. */
ld_status ld_jp_array_begin(ld_jp *j);
ld_status ld_jp_array_next(ld_jp *j, size_t *count, bool *more);

/* Scalars. A string is decoded (escapes, UTF-8 checked; "\u0000" refused) into malloc'd memory. */
ld_status ld_jp_string(ld_jp *j, char **out, size_t *out_len);
ld_status ld_jp_number(ld_jp *j, ld_jp_num *out);
ld_status ld_jp_bool(ld_jp *j, bool *out);
ld_status ld_jp_null(ld_jp *j);
/* Reads and checks any value, including duplicate keys in nested objects, and discards it. */
ld_status ld_jp_skip(ld_jp *j);
/* After the top-level value: only whitespace may follow (spaces_only: only 0x20). */
ld_status ld_jp_end(ld_jp *j, bool spaces_only);

/* Fails at the current position: "<label>: line L, column C: <message>". */
ld_status ld_jp_fail(ld_jp *j, ld_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Number conversions; false when the token is not an integer or out of range. */
bool ld_jp_num_u64(const ld_jp_num *n, uint64_t *out);
bool ld_jp_num_i64(const ld_jp_num *n, int64_t *out);
/* Any number token to a finite double; false when it overflows or is absurdly long. */
bool ld_jp_num_double(const ld_jp_num *n, double *out);

/* The keys of one object, kept until it closes to refuse duplicates: zero-initialize, add every
 * key ld_jp_object_next returns, ask for a duplicate at the end, free. */
typedef struct ld_jp_keys {
    ld_json_name *v; /* each s a NUL-terminated key the set owns */
    size_t n, cap;
} ld_jp_keys;
/* Takes ownership of key (it stays valid until ld_jp_keys_free); out of memory frees it and fails
 * the parse. */
ld_status ld_jp_keys_add(ld_jp *j, ld_jp_keys *ks, char *key);
/* The first key added twice, or NULL (reorders the keys). */
const char *ld_jp_keys_duplicate(ld_jp_keys *ks);
void ld_jp_keys_free(ld_jp_keys *ks);

/* s made safe to quote in a message: control bytes become '?', cut to fit size (with "..."). */
const char *ld_jp_printable(const char *s, char *buf, size_t size);

#endif

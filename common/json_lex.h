/* json_lex.h — the strict JSON lexer both parsers stand on: the probe record parser (probes/json.c,
 * a flat node array per record line) and the checkpoint's pull parser (model/json_pull.c). Strict
 * means RFC 8259 exactly: valid UTF-8, no raw control characters, no leading zeros. It reads one
 * token at a time and says what is wrong and where as a code and a byte offset; the wording of
 * messages, the nesting and what is kept belong to the parsers above. */
#ifndef LD_JSON_LEX_H
#define LD_JSON_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting either parser accepts (a bound on recursion and on hostile input): records need
 * 4 levels, free-form header objects and checkpoint files get the rest. */
#define LD_JSON_MAX_DEPTH 64

/* What is wrong with a token. */
typedef enum ld_json_lex_err {
    LD_JSON_LEX_OK = 0,
    LD_JSON_LEX_UNCLOSED,    /* the text ends inside the string */
    LD_JSON_LEX_CONTROL,     /* a raw control character (below 0x20) in a string */
    LD_JSON_LEX_UTF8,        /* a byte that starts no valid UTF-8 sequence */
    LD_JSON_LEX_ESCAPE,      /* a backslash before a character that is no escape */
    LD_JSON_LEX_U_TRUNCATED, /* a \u escape that runs past the end of the text */
    LD_JSON_LEX_U_HEX,       /* a \u escape without four hex digits */
    LD_JSON_LEX_LOW_FIRST,   /* a low surrogate \udc00..\udfff with no high one before it */
    LD_JSON_LEX_HIGH_ALONE,  /* a high surrogate not followed by an escaped low one */
    LD_JSON_LEX_NUL,         /* \u0000, when the caller refuses it */
    LD_JSON_LEX_NUM_DIGIT,   /* no digit where the number starts (after an optional '-') */
    LD_JSON_LEX_NUM_ZERO,    /* a digit after a leading zero */
    LD_JSON_LEX_NUM_FRAC,    /* no digit after '.' */
    LD_JSON_LEX_NUM_EXP      /* no digit in the exponent */
} ld_json_lex_err;

/* Where a token ends. On success: end is the offset just past it, len the decoded length of a
 * string, is_int whether a number has neither fraction nor exponent. On failure: at is the offset
 * to blame (the opening quote for UNCLOSED, or the backslash when the text ends inside an escape;
 * the backslash of a bad escape; the byte that breaks the number grammar), cp the value of the \u
 * escape for the surrogate errors. */
typedef struct ld_json_tok {
    size_t end;
    size_t len;
    size_t at;
    uint32_t cp;
    bool is_int;
} ld_json_tok;

/* Decodes the string literal whose opening quote is text[pos], up to its closing quote, into out
 * (escapes resolved, UTF-8 checked). out may be text + pos + 1, decoding in place: writing never
 * overtakes reading, every escape being longer than what it stands for; otherwise out needs room
 * for as many bytes as the literal has. allow_nul: whether \u0000 is accepted. */
ld_json_lex_err ld_json_lex_string(const char *text, size_t len, size_t pos, char *out,
                                   bool allow_nul, ld_json_tok *tok);
/* Scans the number that starts at text[pos] ('-' or a digit) along RFC 8259's grammar. On
 * LD_JSON_LEX_NUM_ZERO, end is the offset just past the zero (the number a lenient caller would
 * take). */
ld_json_lex_err ld_json_lex_number(const char *text, size_t len, size_t pos, ld_json_tok *tok);
/* The offset of the first byte at or after pos that is not JSON whitespace (len at the end). */
size_t ld_json_skip_ws(const char *text, size_t len, size_t pos);
/* The 1-based line and column of offset pos, for messages. */
void ld_json_line_col(const char *text, size_t len, size_t pos, size_t *line, size_t *col);

/* Length of the valid UTF-8 sequence at s (at most avail bytes), 0 when invalid: no overlong
 * forms, no surrogates, nothing above U+10FFFF. */
size_t ld_json_utf8_len(const unsigned char *s, size_t avail);
/* Writes code point cp (at most U+10FFFF, no surrogate) as UTF-8 to o; returns its 1 to 4 bytes. */
size_t ld_json_utf8_encode(uint32_t cp, char *o);
/* The value of four hex digits at s, -1 when one is not a hex digit. */
int ld_json_hex4(const char *s);

/* A member name for the duplicate check: not NUL-terminated (len says where it ends). */
typedef struct ld_json_name {
    const char *s;
    size_t len;
} ld_json_name;
/* Which of several duplicated names is reported: the first in this order. The two parsers have
 * always differed here, and their messages are kept as they were. */
typedef enum ld_json_name_order {
    LD_JSON_NAMES_BYTEWISE,      /* as strcmp orders them (the checkpoint reader) */
    LD_JSON_NAMES_SHORTEST_FIRST /* by length, then bytewise (the probe record parser) */
} ld_json_name_order;
/* Sorts names[0..n) in the given order and returns the first name that occurs twice, or NULL; the
 * returned d and d[-1] are the pair. n log n, so that a hostile object with many members costs
 * little. */
const ld_json_name *ld_json_names_duplicate(ld_json_name *names, size_t n,
                                            ld_json_name_order order);

#endif

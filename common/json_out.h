/* json_out.h — writing JSON text: the one string escaper and the one number formatter that every
 * writer uses (probe records, checkpoint files, comparison reports), appending to an ld_buf. No
 * layout (callers write their own brackets and commas) and no parsing (json_lex.h). */
#ifndef LD_JSON_OUT_H
#define LD_JSON_OUT_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Appends s[0..n) as a JSON string literal with quotes: '"' and '\\' escaped, \n \r \t by name,
 * other control characters as \u00xx. fix_utf8: bytes that are not valid UTF-8 become \ufffd, so
 * the output is always valid JSON (probe records); otherwise every byte >= 0x80 is copied as is
 * (the checkpoint and report writers, whose bytes have always been written that way). */
void ld_json_put_string(ld_buf *out, const char *s, size_t n, bool fix_utf8);

/* How ld_json_put_double spells a number. They differ because their readers differ: */
typedef enum ld_json_num_style {
    LD_JSON_NUM_EXACT,  /* probe records: shortest of %.15g, %.16g, %.17g that reads back as v
                         * (fmt_double.h) */
    LD_JSON_NUM_PYTHON, /* config.json: as Python's repr() (1e-06, 1000000.0, 0.02) */
    LD_JSON_NUM_BRIEF   /* reports: %.9g, and 0 for either zero */
} ld_json_num_style;

/* Appends v in the given style; NaN and infinities become the strings "NaN", "Infinity" and
 * "-Infinity". c_locale, when not (locale_t)0, is the locale printed and read back in (one whose
 * decimal point is '.'); (locale_t)0 uses the thread's current locale. */
void ld_json_put_double(ld_buf *out, double v, ld_json_num_style style, locale_t c_locale);

#endif

/* compare_internal.h — the helpers every layer of compare/ may use (see compare.h for the layers):
 * strict reading of small JSON files (jsonfile.c), escaping and number formatting (emit.c), and
 * two entry points below the public API (metrics.c, compare_result.c). Not public API: nothing
 * outside compare/ includes this; the reports' own helpers are report.h. */
#ifndef LD_COMPARE_INTERNAL_H
#define LD_COMPARE_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "compare.h"

/* Largest policy or map file accepted. */
#define LD_CMP_CONFIG_MAX_BYTES ((size_t)1 << 20)

/* Parses text (len bytes) as one JSON object; messages read "<label>: line L, column C: ...". */
ld_status ld_cmp_json_parse(const char *text, size_t len, const char *label, cJSON **out,
                            ld_error *err);
/* Fails when obj has a member whose name is not in allowed (NULL-terminated) or a name twice.
 * where names the object in messages ("rules[2]"; "" for the top level). */
ld_status ld_cmp_json_check_keys(const cJSON *obj, const char *const *allowed, const char *label,
                                 const char *where, ld_error *err);

/* Frees a result and all it owns but a baseline check (compare_result.c): the core's own error
 * paths, before any is attached; ld_compare_result_destroy (baseline.c) frees both. */
void ld_cmp_result_free(ld_compare_result *r);

/* Widens n elements of base (dtype t) from element off into dst (metrics.c). */
void ld_cmp_widen(const void *base, ld_dtype t, uint64_t off, size_t n, float *dst);

/* ---- small writers (emit.c) ---- */

/* Writes s with JSON string escapes, quotes included; NULL writes null. Bytes that are not
 * UTF-8 (a path from the command line) become \ufffd: a report is always valid JSON. */
void ld_cmp_put_json_string(FILE *f, const char *s);
/* A JSON number, or the strings "NaN", "Infinity", "-Infinity" as probe records write them. */
void ld_cmp_put_json_double(FILE *f, double v);
/* Escapes &, <, >, " and ' for HTML and XML text and attributes; bytes that are not UTF-8
 * become U+FFFD, control characters other than \t \n \r become '?'. */
void ld_cmp_put_xml(FILE *f, const char *s);
/* A short human number: "0", "2.1e-07", "0.412", "inf", "nan". buf >= 16 bytes; returns buf. */
char *ld_cmp_fmt(double v, char *buf, size_t size);
/* "[5,64]" into buf; returns buf. */
char *ld_cmp_fmt_shape(const int64_t *shape, int ndim, char *buf, size_t size);
/* The key as a report shows it: "S0.L3.q_norm". */
char *ld_cmp_key_text(const ld_key *k, char *buf, size_t size);
/* The key's JSON members, without braces: "key":"S0.L3.q_norm","step":0,"layer":3,"tag":"q_norm"
 * (layer null for model-level tags). */
void ld_cmp_put_json_key(FILE *f, const ld_key *k);
/* The key in words: "layer 3, q_norm, step 0" / "logits, step 1". */
char *ld_cmp_key_words(const ld_key *k, char *buf, size_t size);
/* Checks the stream after writing; LD_E_IO naming what was written when it failed. */
ld_status ld_cmp_stream_status(FILE *f, const char *what, ld_error *err);

#endif

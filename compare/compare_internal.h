/* compare_internal.h — helpers shared by the comparator's source files: strict reading of small
 * JSON files (policy, map), text escaping and number formatting for the report writers, and the
 * table columns. Not public API: nothing outside compare/ includes this. */
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

/* ---- report helpers (report_util.c) ---- */

/* Writes s with JSON string escapes, quotes included; NULL writes null. */
void ld_cmp_put_json_string(FILE *f, const char *s);
/* A JSON number, or the strings "NaN", "Infinity", "-Infinity" as probe records write them. */
void ld_cmp_put_json_double(FILE *f, double v);
/* Escapes &, <, >, " and ' for HTML and XML text and attributes. */
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
/* The worst element in tag terms: "token 3 (position 7), head 5, dim 17". */
char *ld_cmp_worst_words(const ld_row *row, char *buf, size_t size);
/* The reference's model in words: "Qwen3ForCausalLM layers=28 H=1024 ..., weights FP". */
char *ld_cmp_model_words(const ld_compare_result *r, char *buf, size_t size);
/* "ok", "FAIL", "missing in candidate", ... */
const char *ld_cmp_row_status(const ld_row *row);
/* The fail reasons of a row, comma-separated ("rel_l2,cosine"); "" when none. */
char *ld_cmp_reasons(unsigned mask, char *buf, size_t size);
/* Why a row failed in words: "rel_l2 0.41 > 0.02, cosine 0.91 < 0.999". */
char *ld_cmp_fail_words(const ld_row *row, char *buf, size_t size);
/* The rows a brief table shows: failing ones, the first divergence's inputs and its neighbours,
 * and every missing / mismatched key. keep[] has n_rows entries. */
void ld_cmp_brief_rows(const ld_compare_result *r, bool *keep);
/* Checks the stream after writing; LD_E_IO naming what was written when it failed. */
ld_status ld_cmp_stream_status(FILE *f, const char *what, ld_error *err);

/* ---- table columns shared by the text, Markdown and HTML tables (columns.c) ---- */

/* One column: a header and how a row fills it. Later columns (noise-floor ratio, local and
 * inherited error, baseline ratio) are added here once and appear in every table. */
typedef struct ld_cmp_column {
    const char *header;
    int width;            /* text table width; negative: left-aligned */
    bool brief;           /* shown in the brief text table too */
    char *(*fill)(const ld_compare_result *r, const ld_row *row, char *buf, size_t size);
    bool (*shown)(const ld_compare_result *r); /* NULL: always; else only when it says so */
} ld_cmp_column;
/* The columns, in order; *n receives their count. */
const ld_cmp_column *ld_cmp_columns(size_t *n);
/* Whether a table of r shows column col (optional columns appear only when they carry data). */
bool ld_cmp_column_shown(const ld_cmp_column *col, const ld_compare_result *r);

#endif

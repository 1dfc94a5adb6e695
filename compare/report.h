/* report.h — what the report writers share (private to compare/, top layer): rows and failures in
 * words, the brief rows, the table columns, and the gate reports' words. Only report_*.c,
 * columns.c and summary.c include it; nothing below the reports calls into it. */
#ifndef LD_COMPARE_REPORT_H
#define LD_COMPARE_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "compare_internal.h"
#include "gate.h"

/* ---- rows in words (report_util.c) ---- */

/* The worst element in tag terms: "token 3 (position 7), head 5, dim 17"; with r's tokenizer, the
 * text of the token at that position too: "token 3 (position 7, \" world\"), ...". */
char *ld_cmp_worst_words(const ld_compare_result *r, const ld_row *row, char *buf, size_t size);
/* A token in words: "42", or with r's tokenizer "42 \" cat\"" (its text escaped). */
char *ld_cmp_token_words(const ld_compare_result *r, int32_t id, char *buf, size_t size);
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

/* Writes n bytes of stream-provided text (implementations, faults, notes, messages) so that they
 * cannot act on the reader's terminal or document: control characters (C0, DEL, and U+0080 to
 * U+009F) as \xNN / \uNNNN, so no escape sequence or newline of a stream gets through; bytes
 * that are not UTF-8 (a path's) as U+FFFD. markdown: also & < > as entities (no raw HTML), | and
 * ` backslashed (no cell or code span ended). */
void ld_cmp_put_safe(FILE *f, const char *s, size_t n, bool markdown);

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

/* ---- the gate reports' words, shared by every format (report_gate.c) ---- */

/* One table cell: the row's new / old error ratio ("-" when unjudged). */
char *ld_baseline_ratio_text(const ld_compare_result *r, const ld_row *row, char *buf, size_t size);
/* How many of the largest growths that did not regress the tables show, for the margin. */
#define LD_GATE_CONTEXT_ROWS 5

/* "within", "regressed", "improved", "unjudged" (the JSON report's status). */
const char *ld_gate_verdict_name(const ld_gate_entry *e);
/* A growth ratio: "12x", "1.50x", or ld_cmp_fmt's text when not finite. */
char *ld_gate_ratio_text(double v, char *buf, size_t size);
/* The change of one entry in words: "REGRESSED", "REGRESSED (new NaN/Inf)", "improved", "within". */
const char *ld_gate_change_text(const ld_gate_entry *e);
/* The rows a gate table lists, in growth order, into out; *more counts regressions left out. */
size_t ld_gate_growth_rows(const ld_baseline_check *c, bool brief, size_t *out, size_t *more);
/* The improved entries, most improved first; *more counts those left out. */
size_t ld_gate_improved_rows(const ld_baseline_check *c, size_t *out, size_t *more);
/* "3 of 284 probes regressed, 1 improved, 280 within the factor" */
void ld_gate_counts_text(const ld_baseline_check *c, char *buf, size_t size);
/* "a probe regresses when its rel_l2 > 3 x the baseline's + 1e-06 or ..." */
void ld_gate_rule_text(const ld_baseline_check *c, char *buf, size_t size);
/* "First regression in execution order: ..." or "No probe regressed". */
void ld_gate_first_text(const ld_compare_result *r, char *buf, size_t size);
/* The baseline's candidate in words: "candidate PATH (impl, faults), written by TOOL". */
void ld_gate_baseline_words(const ld_baseline_check *c, char *buf, size_t size);

/* "identical", "changed", "empty" or "incomplete". */
const char *ld_exact_verdict_name(const ld_exact_result *r);
/* "1234 of 7168 elements differ, first at [0,2,5]: 0.12345679 -> 0.12345680" ("" without them). */
char *ld_exact_elements_text(const ld_exact_change *c, char *buf, size_t size);

#endif

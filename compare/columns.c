/* columns.c — the per-probe columns of the text, Markdown and HTML tables, defined once. A new
 * metric column (noise-floor ratio, local/inherited error, baseline ratio) is one entry here. The
 * JSON report carries every field regardless. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

static bool compared(const ld_row *row) { return row->state == LD_ROW_COMPARED; }

static char *col_key(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    (void)r;
    return ld_cmp_key_text(&row->key, buf, size);
}

static char *col_shape(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    (void)r;
    ld_cmp_fmt_shape(row->shape, row->ndim, buf, size);
    if (row->state == LD_ROW_SHAPE_MISMATCH) {
        char c[64];
        size_t used = 0;
        while (used < size && buf[used])
            used++;
        snprintf(buf + used, size - used, "/%s", ld_cmp_fmt_shape(row->cand_shape, row->cand_ndim,
                                                                  c, sizeof c));
    }
    return buf;
}

static char *col_dtype(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    (void)r;
    if (row->state == LD_ROW_MISSING_IN_CAND)
        snprintf(buf, size, "%s", ld_dtype_name(row->ref_dtype));
    else
        snprintf(buf, size, "%s%s", ld_dtype_name(row->cand_dtype),
                 row->m.source == LD_SRC_STATS ? "*" : "");
    return buf;
}

static char *col_num(double v, bool ok, char *buf, size_t size)
{
    if (!ok) {
        snprintf(buf, size, "-");
        return buf;
    }
    return ld_cmp_fmt(v, buf, size);
}

static char *col_rel(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    (void)r;
    return col_num(row->m.rel_l2, compared(row), buf, size);
}

/* 1 - cosine: readable where the cosine itself would print as 1. */
static char *col_cos(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    (void)r;
    return col_num(1.0 - row->m.cosine, compared(row), buf, size);
}

static char *col_max_abs(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    (void)r;
    return col_num(row->m.max_abs, compared(row), buf, size);
}

static char *col_max_rel(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    (void)r;
    return col_num(row->m.max_rel, compared(row), buf, size);
}

static char *col_snr(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    (void)r;
    if (compared(row) && isfinite(row->m.snr_db)) {
        snprintf(buf, size, "%.1f", row->m.snr_db);
        return buf;
    }
    if (compared(row) && row->m.snr_db > 0) { /* +inf: no error at all, said in words */
        snprintf(buf, size, "exact");
        return buf;
    }
    return col_num(row->m.snr_db, compared(row), buf, size);
}

/* The 99th percentile, not the maximum: the maximum is tens of thousands of ULPs on nearly every
 * honest bf16 probe, from elements whose reference is near zero, and so says nothing. */
static char *col_ulp(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    (void)r;
    if (!compared(row))
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%llu", (unsigned long long)row->m.ulp_p99);
    return buf;
}

/* Output error over the inputs' worst; "in=0" where the inputs are exact (the ratio would be
 * infinite: the op made all of it). */
static char *col_amp(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    (void)r;
    if (compared(row) && isinf(row->amplification)) {
        snprintf(buf, size, "in=0");
        return buf;
    }
    return col_num(row->amplification, compared(row), buf, size);
}

static char *col_status(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    (void)r;
    char reasons[96];
    if (compared(row) && !row->pass)
        snprintf(buf, size, "FAIL %s", ld_cmp_reasons(row->fail_mask, reasons, sizeof reasons));
    else
        snprintf(buf, size, "%s", ld_cmp_row_status(row));
    return buf;
}

/* The error over the calibrated noise floor ("4.7" = 4.7 times the floor). */
static char *col_floor(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    (void)r;
    return col_num(row->floor_ratio, compared(row) && !isnan(row->floor_ratio), buf, size);
}

static bool with_floor(const ld_compare_result *r) { return r->n_floor_judged > 0; }

/* Op-local attribution: the error this op made on the candidate's own inputs ("!" marks one over
 * budget), and the error those inputs brought in. */
static char *col_local(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    (void)r;
    if (!row->replayed)
        return col_num(0, false, buf, size);
    ld_cmp_fmt(row->local_rel_l2, buf, size);
    if (row->local_over) {
        size_t n = strlen(buf);
        if (n + 1 < size)
            buf[n] = '!', buf[n + 1] = '\0';
    }
    return buf;
}

static char *col_inherited(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    (void)r;
    return col_num(row->inherited_rel_l2, row->replayed && !isnan(row->inherited_rel_l2), buf, size);
}

static bool with_replay(const ld_compare_result *r) { return r->replay_ran; }

/* Regression gate (--baseline): this probe's error over its error in the baseline. */
static char *col_baseline(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    return ld_baseline_ratio_text(r, row, buf, size);
}

static bool with_baseline(const ld_compare_result *r) { return r->baseline != NULL; }

static const ld_cmp_column columns[] = {
    {"key", -24, true, col_key, NULL},
    {"shape", -14, false, col_shape, NULL},
    {"dtype", -5, false, col_dtype, NULL},
    {"rel_l2", 9, true, col_rel, NULL},
    {"1-cos", 9, true, col_cos, NULL},
    {"max_abs", 9, true, col_max_abs, NULL},
    {"max_rel", 9, false, col_max_rel, NULL},
    {"snr_dB", 7, false, col_snr, NULL},
    {"ulp_p99", 8, false, col_ulp, NULL},
    {"amp", 8, true, col_amp, NULL},
    {"floor_x", 8, true, col_floor, with_floor},
    {"local", 9, true, col_local, with_replay},
    {"inherited", 9, true, col_inherited, with_replay},
    {"vs_base", 8, true, col_baseline, with_baseline},
    {"status", -1, true, col_status, NULL},
};

bool ld_cmp_column_shown(const ld_cmp_column *col, const ld_compare_result *r)
{
    return !col->shown || col->shown(r);
}

const ld_cmp_column *ld_cmp_columns(size_t *n)
{
    *n = sizeof columns / sizeof columns[0];
    return columns;
}

/* report_html.c — one self-contained HTML file (inline CSS and SVG, no script, no network): the
 * verdict, streams and notes, the summary paragraph with links to rows, charts of relative error
 * per layer for each tag family at each step that fails (points link to their rows), a heat map of
 * the first divergence's error per token and head, and the table with a failing-only toggle (CSS).
 * scripts/render_html.sh renders it headless to check it by eye. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "util.h"

#define X(f, s) ld_cmp_put_xml(f, s)

/* A tag family of the table (layerdiff/tags.h), one chart each with a line per tag in execution
 * order; colours repeat per chart. */
typedef struct family {
    const char *title;
    const char *tags[4];
} family;

/* The per-layer tags of f (at most 4); model-level tags are never charted. */
static family family_of(ld_family f)
{
    family fm = {ld_family_title(f), {NULL, NULL, NULL, NULL}};
    size_t n = 0;
    for (int t = 0; t < LD_TAG_COUNT && n < 4; t++)
        if (ld_tag_family((ld_tag)t) == f && ld_tag_per_layer((ld_tag)t))
            fm.tags[n++] = ld_tag_name((ld_tag)t);
    return fm;
}
static const char *const line_colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"};

/* Chart geometry (SVG user units). */
#define CW 380.0
#define CH 210.0
#define ML 52.0
#define MR 10.0
#define MT 40.0
#define MB 30.0
#define ZERO_DECADE (-12.0) /* where exact agreement (rel_l2 = 0) is drawn */

static const char *style =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;"
    "max-width:1400px}h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 8px}"
    ".banner{padding:10px 14px;border-radius:6px;font-weight:600;margin:8px 0 14px}"
    ".pass{background:#e3f4e6;color:#185c2a}.fail{background:#fbe4e4;color:#8a1c1c}"
    ".warn{background:#fff4d6;color:#6b4e00}table{border-collapse:collapse}"
    "td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}"
    "th{background:#f6f6f6;position:sticky;top:0}td.l,th.l{text-align:left}"
    "tr.ok td.s{color:#185c2a}tr.fail td{background:#fff1f1}tr.fail td.s{color:#b00;font-weight:600}"
    "tr.first td{background:#ffd6d6;font-weight:600}tr.missing td{background:#fff8e0}"
    "tr.allowed td{color:#888}.meta td{text-align:left;border:none;padding:1px 10px 1px 0;white-space:normal}"
    ".notes li{margin:3px 0}.n-error{color:#8a1c1c}.n-warning{color:#6b4e00}.n-info{color:#555}"
    ".charts{display:flex;flex-wrap:wrap;gap:14px}.charts svg{border:1px solid #ddd;"
    "border-radius:4px;background:#fff}.summary{font-size:15px;max-width:1100px}"
    "code{background:#f3f3f3;padding:0 3px;border-radius:3px}"
    /* the failing-only toggle: a checkbox before the table hides passing rows, no script; a row
     * a link points at (:target) shows anyway */
    "#failonly:checked~table tr.ok,#failonly:checked~table tr.allowed{display:none}"
    "#failonly:checked~table tr.ok:target{display:table-row}tr:target td{outline:2px solid #1f77b4}"
    "a.row{color:inherit}";

/* Steps charted: the prefill and every step with a failing row, at most this many. */
#define MAX_CHART_STEPS 8

/* One chart point: the worst rel_l2 of (step, layer, tag), NAN when not compared; whether it
 * fails; its limit (k x the floor, NAN under the policy); replay's local error (NAN when not
 * replayed); the row a click on the point opens. */
typedef struct point {
    double err, limit, local;
    bool fail;
    ptrdiff_t row;
} point;

static double layer_error(const ld_compare_result *r, int step, const char *tag, int layer,
                          point *pt, double *tol)
{
    double worst = NAN;
    pt->limit = NAN;
    pt->local = NAN;
    pt->row = -1;
    pt->fail = false;
    for (size_t i = 0; i < r->n_rows; i++) {
        const ld_row *row = &r->rows[i];
        if (row->state != LD_ROW_COMPARED || row->key.layer != layer || row->key.step != step ||
            strcmp(row->key.tag, tag))
            continue;
        if (isnan(worst) || row->m.rel_l2 > worst || isnan(row->m.rel_l2)) {
            worst = row->m.rel_l2;
            pt->row = (ptrdiff_t)i;
        }
        pt->fail |= !row->pass;
        *tol = row->tol.rel_l2;
        if (!isnan(row->floor_rel_l2)) /* judged by the noise floor: its limit, k x floor */
            pt->limit = r->floor_k * row->floor_rel_l2;
        if (row->replayed && !isnan(row->local_rel_l2))
            pt->local = row->local_rel_l2;
    }
    pt->err = worst;
    return worst;
}

static double decade(double v)
{
    if (v == 0)
        return ZERO_DECADE;
    if (isinf(v) || isnan(v))
        return 1.0;
    double d = log10(v);
    return d < ZERO_DECADE ? ZERO_DECADE : (d > 1.0 ? 1.0 : d);
}

/* A line through one double field (offsetof) of a tag's points, one per layer, skipping NaN. */
static void polyline(FILE *f, const point *pt, size_t field, int nl, const char *color,
                     const char *attrs, double lo, double hi)
{
    double pw = CW - ML - MR, ph = CH - MT - MB;
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" %s points=\"", color, attrs);
    for (int l = 0; l < nl; l++) {
        double v;
        memcpy(&v, (const char *)&pt[l] + field, sizeof v);
        if (isnan(v))
            continue;
        double x = ML + (nl > 1 ? pw * l / (nl - 1) : pw / 2);
        fprintf(f, "%.1f,%.1f ", x, MT + ph * (hi - decade(v)) / (hi - lo));
    }
    fputs("\"/>", f);
}

/* Points per [family tag][layer], computed once: rows are scanned per (tag, layer). */
static void chart(FILE *f, const ld_compare_result *r, int step, const family *fam,
                  const point *pts, const double *tols, int nl, double lo, double hi)
{
    double pw = CW - ML - MR, ph = CH - MT - MB;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" role=\"img\">",
            CW, CH, CW, CH);
    fprintf(f, "<text x=\"%.0f\" y=\"16\" font-size=\"13\" font-weight=\"600\">", ML);
    X(f, fam->title);
    fputs("</text>", f);
    /* y grid: one line per decade */
    for (int d = (int)lo; d <= (int)hi; d++) {
        double y = MT + ph * (hi - d) / (hi - lo);
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", ML,
                ML + pw, y, y);
        if ((d - (int)lo) % 2 == 0 || hi - lo <= 6)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\" "
                       "fill=\"#666\">%s1e%d</text>",
                    ML - 4, y + 3, d == (int)ZERO_DECADE ? "&lt;" : "", d);
    }
    /* x axis: layers */
    int every = nl > 16 ? 4 : (nl > 8 ? 2 : 1);
    for (int l = 0; l < nl; l += every) {
        double x = ML + (nl > 1 ? pw * l / (nl - 1) : pw / 2);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\" "
                   "fill=\"#666\">%d</text>",
                x, CH - MB + 14, l);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\" "
               "fill=\"#666\">layer</text>",
            ML + pw / 2, CH - 4);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#ccc\"/>",
            ML, MT, pw, ph);
    /* first divergence layer, at its step */
    if (r->first_div >= 0 && r->rows[r->first_div].key.layer >= 0 && nl > 0 &&
        r->rows[r->first_div].key.step == step) {
        int l = r->rows[r->first_div].key.layer;
        double x = ML + (nl > 1 ? pw * l / (nl - 1) : pw / 2);
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" "
                   "stroke-dasharray=\"2,3\"/>",
                x, x, MT, MT + ph);
    }
    double legend_x = ML + 4;
    for (int t = 0; t < 4 && fam->tags[t]; t++) {
        const char *color = line_colors[t];
        const point *pt = pts + (size_t)t * (size_t)nl;
        /* the tag's limit, dashed: k x the noise floor per layer when a floor judged it, else
         * the policy's flat rel_l2 tolerance */
        bool floor_line = false, local_line = false;
        for (int l = 0; l < nl; l++) {
            floor_line |= !isnan(pt[l].limit);
            local_line |= !isnan(pt[l].local);
        }
        if (floor_line)
            polyline(f, pt, offsetof(point, limit), nl, color,
                     "stroke-width=\"1\" stroke-dasharray=\"6,4\" opacity=\"0.6\"", lo, hi);
        if (local_line) /* --model: the op's own error by replay, dotted */
            polyline(f, pt, offsetof(point, local), nl, color,
                     "stroke-width=\"1.2\" stroke-dasharray=\"1,2\"", lo, hi);
        double tol = tols[t];
        if (!floor_line && isfinite(tol) && tol > 0) {
            double y = MT + ph * (hi - decade(tol)) / (hi - lo);
            fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                       "stroke-width=\"1\" stroke-dasharray=\"6,4\" opacity=\"0.6\"/>",
                    ML, ML + pw, y, y, color);
        }
        polyline(f, pt, offsetof(point, err), nl, color, "stroke-width=\"1.6\"", lo, hi);
        for (int l = 0; l < nl; l++) {
            if (isnan(pt[l].err))
                continue;
            double x = ML + (nl > 1 ? pw * l / (nl - 1) : pw / 2);
            double y = MT + ph * (hi - decade(pt[l].err)) / (hi - lo);
            bool bad = pt[l].fail;
            /* each point links to its row of the table */
            fprintf(f, "<a href=\"#r%td\"><circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" "
                       "fill=\"%s\"><title>",
                    pt[l].row, x, y, bad ? "3.2" : "2", bad ? "#d62728" : color);
            char a[16], b[16];
            fprintf(f, "S%d.L%d.%s: rel_l2 %s%s", step, l, fam->tags[t],
                    ld_cmp_fmt(pt[l].err, a, sizeof a), bad ? " (fails)" : "");
            if (!isnan(pt[l].local))
                fprintf(f, ", local %s", ld_cmp_fmt(pt[l].local, b, sizeof b));
            fputs("</title></circle></a>", f);
        }
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"3\" fill=\"%s\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">%s</text>",
                legend_x, MT - 12, color, legend_x + 13, MT - 8, fam->tags[t]);
        legend_x += 16 + 6.2 * (double)strlen(fam->tags[t]);
    }
    fputs("</svg>\n", f);
}

/* The steps to chart: the prefill, then each step with a failing row, in order; returns how many
 * steps fail beyond the ones kept. */
static size_t chart_steps(const ld_compare_result *r, int *steps, size_t *n)
{
    *n = 0;
    steps[(*n)++] = 0;
    size_t left_out = 0;
    int last = 0;
    for (size_t i = 0; i < r->n_rows; i++) {
        const ld_row *row = &r->rows[i];
        if (row->state != LD_ROW_COMPARED || row->pass || row->key.layer < 0)
            continue;
        int s = row->key.step;
        bool seen = false;
        for (size_t k = 0; k < *n; k++)
            seen |= steps[k] == s;
        if (seen || s == last)
            continue;
        last = s;
        if (*n < MAX_CHART_STEPS)
            steps[(*n)++] = s;
        else
            left_out++;
    }
    return left_out;
}

static ld_status charts(FILE *f, const ld_compare_result *r, ld_error *err)
{
    int nl = r->n_layers;
    if (nl <= 0)
        return LD_OK;
    if (nl > 1024)
        nl = 1024;
    size_t cells = 4 * (size_t)nl;
    point *pts = malloc(cells * sizeof *pts);
    if (!pts)
        return ld_error_set(err, LD_E_NOMEM, "out of memory drawing charts");
    /* One vertical scale for every chart, so that they compare at a glance. */
    double lo = 0, hi = 0;
    bool any = false;
    for (size_t i = 0; i < r->n_rows; i++) {
        const ld_row *row = &r->rows[i];
        if (row->state != LD_ROW_COMPARED || row->key.layer < 0)
            continue;
        double d = decade(row->m.rel_l2);
        double t = decade(isnan(row->floor_rel_l2) ? row->tol.rel_l2 : r->floor_k * row->floor_rel_l2);
        if (!any) {
            lo = hi = d;
            any = true;
        }
        lo = LD_MIN(lo, LD_MIN(d, t));
        hi = LD_MAX(hi, LD_MAX(d, t));
    }
    lo = floor(lo);
    hi = ceil(hi);
    if (hi - lo < 2)
        lo = hi - 2;
    int steps[MAX_CHART_STEPS];
    size_t n_steps, left_out = chart_steps(r, steps, &n_steps);
    fprintf(f, "<h2>Relative error per layer</h2>\n<p>rel_l2 = ‖c−r‖/‖r‖ of every layer, one "
               "chart per tag family, for the prefill (step 0) and every step where a probe "
               "fails, on one log scale; dashed lines are each tag's limit (the policy's "
               "tolerance, or %s), red dots fail%s%s, exact agreement sits on the bottom line. "
               "A dot links to its row of the table.",
            r->n_floor_judged ? "per layer, k times the calibrated noise floor"
                              : "a floor when given",
            r->first_div >= 0 ? ", the red dotted vertical line marks the first divergence's "
                                "layer at its step" : "",
            r->replay_ran ? ", a fine dotted line is each op's own (local) error by replay" : "");
    if (left_out)
        fprintf(f, " %zu more failing steps are not charted (the table lists them).", left_out);
    fputs("</p>\n", f);
    for (size_t si = 0; si < n_steps; si++) {
        fprintf(f, "<h3>Step %d%s</h3>\n<div class=\"charts\">\n", steps[si],
                steps[si] == 0 ? " (prefill)" : "");
        for (int fi = 0; fi < LD_FAMILY_COUNT; fi++) {
            family fam = family_of((ld_family)fi);
            double tols[4] = {NAN, NAN, NAN, NAN};
            bool present = false;
            for (int t = 0; t < 4; t++) {
                for (int l = 0; l < nl; l++) {
                    point *pt = &pts[(size_t)t * (size_t)nl + (size_t)l];
                    *pt = (point){NAN, NAN, NAN, false, -1};
                    if (fam.tags[t])
                        present |= !isnan(layer_error(r, steps[si], fam.tags[t], l, pt, &tols[t]));
                }
            }
            if (present)
                chart(f, r, steps[si], &fam, pts, tols, nl, lo, hi);
        }
        fputs("</div>\n", f);
    }
    free(pts);
    return LD_OK;
}

/* Colour of an error on a log scale from lo (green) to hi (red) decades. */
static void heat_color(double v, double lo, double hi, char *buf, size_t size)
{
    if (isnan(v)) {
        snprintf(buf, size, "#ccc");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, "#400");
        return;
    }
    double d = v == 0 ? lo : log10(v);
    double t = (d - lo) / (hi - lo);
    t = t < 0 ? 0 : (t > 1 ? 1 : t);
    snprintf(buf, size, "hsl(%.0f,75%%,%.0f%%)", 120.0 * (1.0 - t), 88.0 - 40.0 * t);
}

static void heat(FILE *f, const ld_compare_result *r)
{
    const ld_err_grid *g = &r->first_grid;
    if (r->first_div < 0 || !g->tokens || !g->heads)
        return;
    const ld_row *row = &r->rows[r->first_div];
    size_t T = g->tokens, H = g->heads;
    bool cells = T * H <= 65536;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t t = 0; t < T; t++) {
        for (size_t h = 0; h < H; h++) {
            double v = ld_err_grid_cell(g, t, h);
            if (v > 0 && isfinite(v)) {
                lo = LD_MIN(lo, log10(v));
                hi = LD_MAX(hi, log10(v));
            }
        }
    }
    if (!isfinite(lo)) {
        lo = -8;
        hi = 0;
    }
    lo = floor(lo) + 0.0; /* + 0.0: no "-0" in labels */
    hi = ceil(hi) + 0.0;
    if (hi - lo < 1)
        hi = lo + 1;
    char kt[LD_TAG_NAME_MAX + 48];
    fputs("<h2>Where the first divergence sits</h2>\n<p>Relative error of <code>", f);
    X(f, ld_cmp_key_text(&row->key, kt, sizeof kt));
    fprintf(f, "</code> per %s (rows: tokens, by position; %s). Colour: log10 of the relative "
               "error from 1e%.0f (green) to 1e%.0f (red); dark red is NaN/Inf.</p>\n",
            H > 1 ? "token and head" : "token", H > 1 ? "columns: heads; right: per token, "
            "bottom: per head" : "right: per token", lo, hi);
    double cw = H > 1 ? LD_MAX(6.0, LD_MIN(40.0, 640.0 / (double)H)) : 0;
    double chh = LD_MAX(3.0, LD_MIN(28.0, 420.0 / (double)T));
    double left = 70, top = 22, strip = 26, gap = 8;
    /* One token (a decode step): the grid is one row, and the per-head and per-token strips would
     * repeat it; draw the row alone. */
    bool strips = T > 1;
    double gw = cells && H > 1 ? cw * (double)H : 0;
    double width = left + gw + gap + strip + 110;
    double height = LD_MAX(top + chh * (double)T + gap + strip + 40, top + 130);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\">",
            width, height, width, height);
    char col[40], a[16];
    if (cells && H > 1) {
        for (size_t t = 0; t < T; t++) {
            for (size_t h = 0; h < H; h++) {
                double v = ld_err_grid_cell(g, t, h);
                heat_color(v, lo, hi, col, sizeof col);
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                           "fill=\"%s\"><title>token %zu (pos %lld), head %zu: %s</title></rect>",
                        left + cw * (double)h, top + chh * (double)t, cw, chh, col, t,
                        (long long)(row->pos0 + (int64_t)t), h, ld_cmp_fmt(v, a, sizeof a));
            }
        }
        for (size_t h = 0; h < H && strips; h++) {
            double v = ld_err_grid_head(g, h);
            heat_color(v, lo, hi, col, sizeof col);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                       "<title>head %zu: %s</title></rect>",
                    left + cw * (double)h, top + chh * (double)T + gap, cw, strip, col, h,
                    ld_cmp_fmt(v, a, sizeof a));
            if (H <= 64 || h % 8 == 0)
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"middle\" "
                           "fill=\"#555\">%zu</text>",
                        left + cw * ((double)h + 0.5), top + chh * (double)T + gap + strip + 11, h);
        }
        if (strips)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\" "
                       "fill=\"#555\">per head</text>",
                    left - 4, top + chh * (double)T + gap + strip / 2 + 3);
    }
    double sx = left + gw + (gw > 0 ? gap : 0);
    bool token_strip = strips || gw == 0;
    for (size_t t = 0; t < T; t++) {
        double v = ld_err_grid_token(g, t);
        heat_color(v, lo, hi, col, sizeof col);
        if (token_strip)
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                   "<title>token %zu (pos %lld): %s</title></rect>",
                sx, top + chh * (double)t, strip, chh, col, t, (long long)(row->pos0 + (int64_t)t),
                ld_cmp_fmt(v, a, sizeof a));
        if (T <= 32 || t % 8 == 0)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"end\" "
                       "fill=\"#555\">pos %lld</text>",
                    left - 4, top + chh * ((double)t + 0.5) + 3, (long long)(row->pos0 + (int64_t)t));
    }
    if (token_strip)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#555\">per token</text>",
                sx, top - 8);
    if (gw > 0)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#555\">token x head"
                   "</text>",
                left, top - 8);
    /* legend */
    double lx = sx + strip + 44;
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#555\">rel. error</text>", lx,
            top - 8);
    for (int i = 0; i <= 10; i++) {
        double d = lo + (hi - lo) * i / 10.0;
        heat_color(pow(10.0, d), lo, hi, col, sizeof col);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"10\" fill=\"%s\"/>", lx,
                top + 10.0 * (10 - i), col);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\">1e%.0f</text>", lx + 15, top + 8, hi);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\">1e%.0f</text>", lx + 15, top + 108, lo);
    fputs("</svg>\n", f);
}

static void meta_row(FILE *f, const char *label, const ld_stream_info *s)
{
    fputs("<tr><td><b>", f);
    X(f, label);
    fputs("</b></td><td style=\"white-space:nowrap\"><code>", f);
    X(f, s->path);
    fputs("</code></td><td>", f);
    if (s->opened) {
        X(f, s->implementation);
        fprintf(f, ", %llu probes (%llu with payload)", (unsigned long long)s->probes,
                (unsigned long long)s->with_data);
        if (s->n_faults) {
            fputs(", faults:", f);
            for (size_t i = 0; i < s->n_faults; i++) {
                fputs(" <code>", f);
                X(f, s->faults[i]);
                fputs("</code>", f);
            }
        }
    } else {
        fputs("no header", f);
    }
    fputs("</td></tr>\n", f);
}

static void rows_table(FILE *f, const ld_compare_result *r)
{
    size_t ncol;
    const ld_cmp_column *cols = ld_cmp_columns(&ncol);
    size_t failing = 0;
    for (size_t i = 0; i < r->n_rows; i++)
        failing += r->rows[i].state != LD_ROW_COMPARED ? !r->rows[i].allowed : !r->rows[i].pass;
    /* Failing-only by default when something fails: 2,400 rows at 28 layers are a wall. */
    fprintf(f, "<h2 id=\"probes\">Probes</h2>\n<input type=\"checkbox\" id=\"failonly\"%s>"
               "<label for=\"failonly\"> show only the %zu failing or missing of %zu probes"
               "</label>\n<table>\n<tr>",
            failing ? " checked" : "", failing, r->n_rows);
    for (size_t c = 0; c < ncol; c++) {
        if (!ld_cmp_column_shown(&cols[c], r))
            continue;
        fprintf(f, "<th%s>", cols[c].width < 0 ? " class=\"l\"" : "");
        X(f, cols[c].header);
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (size_t i = 0; i < r->n_rows; i++) {
        const ld_row *row = &r->rows[i];
        const char *cls = row->state == LD_ROW_COMPARED ? (row->pass ? "ok" : "fail")
                                                        : (row->allowed ? "allowed" : "missing");
        if ((ptrdiff_t)i == r->first_div)
            cls = "fail first";
        fprintf(f, "<tr class=\"%s\" id=\"r%zu\">", cls, i);
        for (size_t c = 0; c < ncol; c++) {
            if (!ld_cmp_column_shown(&cols[c], r))
                continue;
            char buf[256];
            cols[c].fill(r, row, buf, sizeof buf);
            bool status = c + 1 == ncol;
            fprintf(f, "<td class=\"%s%s\">", cols[c].width < 0 ? "l" : "", status ? " s" : "");
            X(f, buf);
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

ld_status ld_report_html(FILE *f, const ld_compare_result *r, const ld_report_options *opt,
                         ld_error *err)
{
    (void)opt;
    int code = ld_compare_exit_code(r, r->fail_on);
    char kt[LD_TAG_NAME_MAX + 48];
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<title>layerdiff report</title>\n<style>",
          f);
    fputs(style, f);
    fputs("</style></head><body>\n<h1>layerdiff compare</h1>\n", f);
    const char *cls = code == 0 ? (r->divergence || r->incomplete ? "warn" : "pass") : "fail";
    fprintf(f, "<div class=\"banner %s\">", cls);
    if (r->first_div >= 0) {
        fputs("Divergence at ", f);
        X(f, ld_cmp_key_text(&r->rows[r->first_div].key, kt, sizeof kt));
    } else if (r->empty) {
        fputs("Nothing compared", f);
    } else if (code == 1 && r->regression) {
        fputs("Error grew over the baseline", f);
    } else if (r->incomplete) {
        fputs("Incomplete comparison", f);
    } else {
        fputs("No divergence", f);
    }
    fprintf(f, " — exit %d; %zu compared, %zu ok, %zu failing, %zu missing or mismatched</div>\n",
            code, r->n_compared, r->n_pass, r->n_fail,
            r->n_missing_in_cand + r->n_missing_in_ref + r->n_shape_mismatch);
    fputs("<table class=\"meta\">\n", f);
    meta_row(f, "reference", &r->ref);
    meta_row(f, "candidate", &r->cand);
    fputs("<tr><td><b>policy</b></td><td colspan=\"2\">", f);
    X(f, r->policy_label);
    char model[512];
    fputs("</td></tr>\n<tr><td><b>model</b></td><td colspan=\"2\">", f);
    X(f, ld_cmp_model_words(r, model, sizeof model));
    fputs("</td></tr>\n</table>\n", f);
    if (r->n_notes) {
        static const char *const lv[] = {"info", "warning", "error"};
        fputs("<ul class=\"notes\">\n", f);
        for (size_t i = 0; i < r->n_notes; i++) {
            fprintf(f, "<li class=\"n-%s\"><b>%s:</b> ", lv[r->notes[i].level],
                    lv[r->notes[i].level]);
            X(f, r->notes[i].text);
            fputs("</li>\n", f);
        }
        fputs("</ul>\n", f);
    }
    char *text = ld_compare_summary(r);
    if (!text)
        return ld_error_set(err, LD_E_NOMEM, "out of memory writing the summary");
    fputs("<h2>Summary</h2>\n<p class=\"summary\">", f);
    X(f, text);
    fputs("</p>\n", f);
    free(text);
    if (r->first_div >= 0) {
        fprintf(f, "<p>Go to: <a href=\"#r%td\">the first divergence's row (", r->first_div);
        X(f, ld_cmp_key_text(&r->rows[r->first_div].key, kt, sizeof kt));
        fputs(")</a>", f);
        if (r->culprit >= 0) {
            fprintf(f, " · <a href=\"#r%td\">replay's culprit (", r->culprit);
            X(f, ld_cmp_key_text(&r->rows[r->culprit].key, kt, sizeof kt));
            fputs(")</a>", f);
        }
        fputs(" · <a href=\"#probes\">the failing probes</a></p>\n", f);
    }
    ld_baseline_report_html(f, r);
    ld_status st = charts(f, r, err);
    if (st != LD_OK)
        return st;
    heat(f, r);
    rows_table(f, r);
    fputs("<p style=\"color:#888\">Columns: rel_l2 = ‖c−r‖/‖r‖; 1-cos = 1 − cosine similarity; "
          "max_rel floors |r| at 1e-3 of its row's RMS; ulp_p99: 99th percentile of the ULP "
          "distance in the candidate's dtype; amp = rel_l2 over the largest rel_l2 of the op's "
          "inputs (in=0: exact inputs); a * after the dtype marks a "
          "comparison by stats only.</p>\n</body></html>\n",
          f);
    return ld_cmp_stream_status(f, "HTML", err);
}

/* ---- the regression gate (compare --baseline) ------------------------------------------------ */

static void html_rows(FILE *f, const ld_compare_result *r, const size_t *list, size_t n)
{
    fputs("<table>\n<tr><th class=\"l\">key</th><th>old rel_l2</th><th>new rel_l2</th>"
          "<th>new/old</th><th class=\"l\">change</th></tr>\n",
          f);
    for (size_t i = 0; i < n; i++) {
        const ld_gate_entry *e = &r->baseline->entries[list[i]];
        char kt[160], a[16], b[16], q[24];
        bool first = (ptrdiff_t)list[i] == r->baseline->first_regressed;
        fprintf(f, "<tr class=\"%s\"><td class=\"l\">",
                first ? "fail first" : (e->verdict == LD_GATE_REGRESSED ? "fail" : "ok"));
        X(f, ld_cmp_key_text(&r->rows[e->row].key, kt, sizeof kt));
        fprintf(f, "</td><td>%s</td><td>%s</td><td>%s</td><td class=\"l s\">",
                ld_cmp_fmt(e->old_rel_l2, a, sizeof a), ld_cmp_fmt(e->new_rel_l2, b, sizeof b),
                ld_gate_ratio_text(e->ratio, q, sizeof q));
        X(f, ld_gate_change_text(e));
        fputs(first ? " ← first regression</td></tr>\n" : "</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

void ld_baseline_report_html(FILE *f, const ld_compare_result *r)
{
    const ld_baseline_check *c = r->baseline;
    if (!c) return;
    char buf[1024];
    fputs("<h2>Regression gate</h2>\n", f);
    ld_gate_first_text(r, buf, sizeof buf);
    fprintf(f, "<div class=\"banner %s\">", c->n_regressed ? "fail" : "pass");
    X(f, buf);
    fputs("</div>\n<p>Baseline <code>", f);
    X(f, c->path);
    fputs("</code>: ", f);
    ld_gate_baseline_words(c, buf, sizeof buf);
    X(f, buf);
    fputs(". ", f);
    ld_gate_counts_text(c, buf, sizeof buf);
    X(f, buf);
    fputs("; ", f);
    ld_gate_rule_text(c, buf, sizeof buf);
    X(f, buf);
    fputs(".</p>\n", f);
    size_t *list = malloc((c->n_judged ? c->n_judged : 1) * sizeof *list);
    if (!list) return;
    size_t more, n = ld_gate_growth_rows(c, false, list, &more);
    if (n) {
        fputs("<p>Largest growth first: every regression, then the probes closest to the "
              "factor.</p>\n",
              f);
        html_rows(f, r, list, n);
    }
    if (more) fprintf(f, "<p>%zu more regressions: see the JSON report.</p>\n", more);
    n = ld_gate_improved_rows(c, list, &more);
    if (n) {
        fputs("<p>Improved beyond the factor:</p>\n", f);
        html_rows(f, r, list, n);
    }
    free(list);
}

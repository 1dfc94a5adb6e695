/* report_text.c — the terminal report: who was compared, the verdict and the summary first, the
 * notes that matter, a table (the failing probes and the first divergence's context, or with
 * --full every probe), the verdict again last; the regression gate's section, and the compare
 * --exact report. Colour only when asked (the CLI asks when stdout is a tty). */
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "util.h"

#define WRAP 100

typedef struct tty {
    FILE *f;
    bool color;
} tty;

static const char *paint(const tty *t, const char *code) { return t->color ? code : ""; }
#define RED "\033[31m"
#define GREEN "\033[32m"
#define YELLOW "\033[33m"
#define BOLD "\033[1m"
#define DIM "\033[2m"
#define RESET "\033[0m"

/* Writes text word-wrapped at WRAP columns, every line after the first indented. */
static void wrapped(FILE *f, const char *text, const char *indent)
{
    size_t col = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *w = p;
        while (*p && *p != ' ')
            p++;
        size_t len = (size_t)(p - w);
        if (!len)
            break;
        if (col && col + 1 + len > WRAP) {
            fprintf(f, "\n%s", indent);
            col = strlen(indent);
        } else if (col) {
            fputc(' ', f);
            col++;
        }
        ld_cmp_put_safe(f, w, len, false); /* notes and summaries quote stream text */
        col += len;
    }
    fputc('\n', f);
}

static const char *dtype_text(int mask)
{
    switch (mask) {
    case 0: return "no probes";
    case 1 << LD_F32: return "f32";
    case 1 << LD_BF16: return "bf16";
    case 1 << LD_F16: return "f16";
    default: return "mixed dtypes";
    }
}

static void stream_line(const tty *t, const char *label, const ld_stream_info *s)
{
    const char *path = s->path ? s->path : "?"; /* a file name may hold control bytes */
    fprintf(t->f, "  %-10s ", label);
    ld_cmp_put_safe(t->f, path, strlen(path), false);
    if (!s->opened) {
        fprintf(t->f, "  %s(no header)%s\n", paint(t, RED), paint(t, RESET));
        return;
    }
    fputs("  (", t->f);
    ld_cmp_put_safe(t->f, s->implementation, strlen(s->implementation), false);
    fprintf(t->f, ", %s, %llu probes, %llu with payload", dtype_text(s->dtype_mask),
            (unsigned long long)s->probes, (unsigned long long)s->with_data);
    if (s->n_faults) {
        fprintf(t->f, ", faults:");
        for (size_t i = 0; i < s->n_faults; i++) {
            fputc(' ', t->f);
            ld_cmp_put_safe(t->f, s->faults[i], strlen(s->faults[i]), false);
        }
    }
    fprintf(t->f, ")\n");
}

static void model_line(FILE *f, const ld_compare_result *r)
{
    char buf[512];
    if (r->ref.opened) {
        const char *words = ld_cmp_model_words(r, buf, sizeof buf);
        fprintf(f, "  %-10s ", "model");
        ld_cmp_put_safe(f, words, strlen(words), false);
        fputc('\n', f);
    }
}

static void cell(const tty *t, const ld_cmp_column *c, const char *text, const char *color)
{
    int w = c->width < 0 ? -c->width : c->width;
    fputs(paint(t, color), t->f);
    if (c->width == -1)
        fputs(text, t->f);
    else if (c->width < 0)
        fprintf(t->f, "%-*s", w, text);
    else
        fprintf(t->f, "%*s", w, text);
    fputs(color[0] ? paint(t, RESET) : "", t->f);
}

static void table(const tty *t, const ld_compare_result *r, bool brief)
{
    size_t ncol;
    const ld_cmp_column *cols = ld_cmp_columns(&ncol);
    bool *keep = NULL;
    if (brief) {
        keep = calloc(r->n_rows ? r->n_rows : 1, sizeof *keep);
        if (keep) {
            ld_cmp_brief_rows(r, keep);
            size_t shown = 0;
            for (size_t i = 0; i < r->n_rows; i++)
                shown += keep[i];
            if (!shown) { /* nothing fails, nothing is missing: no table */
                fprintf(t->f, "(all %zu probes pass; --full lists them)\n", r->n_rows);
                free(keep);
                return;
            }
        }
    }
    for (size_t c = 0; c < ncol; c++) {
        if ((brief && !cols[c].brief) || !ld_cmp_column_shown(&cols[c], r))
            continue;
        cell(t, &cols[c], cols[c].header, BOLD);
        fputc(' ', t->f);
    }
    fputc('\n', t->f);
    size_t hidden = 0;
    for (size_t i = 0; i < r->n_rows; i++) {
        const ld_row *row = &r->rows[i];
        if (keep && !keep[i]) {
            hidden++;
            continue;
        }
        if (hidden) {
            fprintf(t->f, "%s  ... %zu row%s not shown%s\n", paint(t, DIM), hidden,
                    hidden == 1 ? "" : "s", paint(t, RESET));
            hidden = 0;
        }
        const char *color = "";
        if (row->state == LD_ROW_COMPARED)
            color = row->pass ? GREEN : RED;
        else
            color = row->allowed ? DIM : YELLOW;
        if ((ptrdiff_t)i == r->first_div)
            color = t->color ? RED BOLD : "";
        for (size_t c = 0; c < ncol; c++) {
            if ((brief && !cols[c].brief) || !ld_cmp_column_shown(&cols[c], r))
                continue;
            char buf[256];
            cols[c].fill(r, row, buf, sizeof buf);
            bool colored = !strcmp(cols[c].header, "status") || !strcmp(cols[c].header, "key");
            cell(t, &cols[c], buf, colored ? color : "");
            if (c + 1 < ncol)
                fputc(' ', t->f);
        }
        if ((ptrdiff_t)i == r->first_div)
            fprintf(t->f, "  %s<- first divergence%s", paint(t, BOLD), paint(t, RESET));
        fputc('\n', t->f);
    }
    if (hidden)
        fprintf(t->f, "%s  ... %zu row%s not shown%s\n", paint(t, DIM), hidden,
                    hidden == 1 ? "" : "s", paint(t, RESET));
    if (keep)
        fprintf(t->f, "(failing probes, the first divergence's inputs and the missing keys, up to "
                      "a few dozen rows; --full lists all %zu)\n", r->n_rows);
    free(keep);
}

static const char *verdict_text(const ld_compare_result *r, int code)
{
    switch (code) {
    case 0:
        if (r->divergence || r->incomplete || r->argmax_step >= 0)
            return "PASS (what differs is outside --fail-on)";
        return "PASS";
    case 1: return r->divergence ? "DIVERGENCE" : (r->regression ? "REGRESSION" : "ARGMAX DIFFERS");
    case 2: return r->fingerprint_differs ? "DIFFERENT WEIGHTS" : "DIFFERENT FAULTS";
    default: return r->empty ? "NOTHING COMPARED" : "INCOMPLETE";
    }
}

static void verdict_line(const tty *t, const ld_compare_result *r, int code)
{
    char fo[128];
    ld_fail_on_format(r->fail_on, fo, sizeof fo);
    const char *color = code == 0 ? GREEN : RED;
    fprintf(t->f, "\n%s%sverdict: %s%s — exit %d (fail-on: %s); %zu compared, %zu ok, %zu failing, "
                  "%zu missing or mismatched\n",
            paint(t, BOLD), paint(t, color), verdict_text(r, code), paint(t, RESET), code, fo,
            r->n_compared, r->n_pass, r->n_fail,
            r->n_missing_in_cand + r->n_missing_in_ref + r->n_shape_mismatch);
}

ld_status ld_report_text(FILE *f, const ld_compare_result *r, const ld_report_options *opt,
                         ld_error *err)
{
    tty t = {f, opt && opt->color};
    bool brief = opt && opt->brief;
    fprintf(f, "%slayerdiff compare%s\n", paint(&t, BOLD), paint(&t, RESET));
    stream_line(&t, "reference", &r->ref);
    stream_line(&t, "candidate", &r->cand);
    fprintf(f, "  %-10s %s%s\n", "policy", r->policy_label,
            strcmp(r->policy_label, "built-in defaults") ? " (over the built-in defaults)"
                                                        : " (by candidate dtype)");
    model_line(f, r);
    /* The verdict and the summary come first: a 28-layer table must not bury them. */
    int code = ld_compare_exit_code(r, r->fail_on);
    verdict_line(&t, r, code);
    char *summary = ld_compare_summary(r);
    if (!summary)
        return ld_error_set(err, LD_E_NOMEM, "out of memory writing the summary");
    fputc('\n', f);
    wrapped(f, summary, "");
    free(summary);
    if (r->n_notes)
        fputc('\n', f);
    for (size_t i = 0; i < r->n_notes; i++) {
        const ld_note *n = &r->notes[i];
        const char *color = n->level == LD_NOTE_ERROR ? RED : (n->level == LD_NOTE_WARN ? YELLOW : "");
        fprintf(f, "%s%s ", paint(&t, color), n->level == LD_NOTE_INFO ? " " : "!");
        wrapped(f, n->text, "  ");
        fputs(color[0] ? paint(&t, RESET) : "", f);
    }
    fputc('\n', f);
    if (r->n_rows && !r->empty) /* an empty stream's "every key missing" is no table */
        table(&t, r, brief);
    ld_baseline_report_text(f, r, t.color, brief);
    /* ... and the verdict again last, where a CI log's tail shows it. */
    verdict_line(&t, r, code);
    return ld_cmp_stream_status(f, "text", err);
}

/* ---- the regression gate (compare --baseline) ------------------------------------------------ */

static void text_row(FILE *f, const ld_compare_result *r, const ld_gate_entry *e, bool first,
                     bool color)
{
    char kt[160], a[16], b[16], q[24];
    const char *paint = "";
    if (color)
        paint = e->verdict == LD_GATE_REGRESSED
                    ? "\033[31m"
                    : (e->verdict == LD_GATE_IMPROVED ? "\033[32m" : "");
    fprintf(f, "%s%-28s%s %11s %11s %9s  %s%s%s%s\n", paint,
            ld_cmp_key_text(&r->rows[e->row].key, kt, sizeof kt), paint[0] ? "\033[0m" : "",
            ld_cmp_fmt(e->old_rel_l2, a, sizeof a), ld_cmp_fmt(e->new_rel_l2, b, sizeof b),
            ld_gate_ratio_text(e->ratio, q, sizeof q), paint, ld_gate_change_text(e),
            paint[0] ? "\033[0m" : "", first ? "  <- first regression" : "");
}

void ld_baseline_report_text(FILE *f, const ld_compare_result *r, bool color, bool brief)
{
    const ld_baseline_check *c = r->baseline;
    if (!c) return;
    char buf[1024];
    fprintf(f, "\n%sRegression gate against baseline ", color ? "\033[1m" : "");
    ld_cmp_put_safe(f, c->path, strlen(c->path), false);
    fprintf(f, "%s\n", color ? "\033[0m" : "");
    ld_gate_baseline_words(c, buf, sizeof buf); /* the baseline's candidate and faults */
    fputs("  baseline: ", f);
    ld_cmp_put_safe(f, buf, strlen(buf), false);
    fputc('\n', f);
    ld_gate_rule_text(c, buf, sizeof buf);
    fprintf(f, "  rule: %s\n", buf);
    ld_gate_counts_text(c, buf, sizeof buf);
    fprintf(f, "  %s.\n", buf);
    if (c->n_stats_only)
        fprintf(f,
                "  %zu of them were measured by stats only on one side or in the baseline: "
                "their errors are estimates.\n",
                c->n_stats_only);
    ld_gate_first_text(r, buf, sizeof buf);
    fprintf(f, "  %s%s%s.\n", color && c->first_regressed >= 0 ? "\033[1;31m" : "", buf,
            color && c->first_regressed >= 0 ? "\033[0m" : "");
    size_t *list = malloc((c->n_judged ? c->n_judged : 1) * sizeof *list);
    if (!list) return;
    size_t more, n = ld_gate_growth_rows(c, brief, list, &more);
    if (n) {
        fprintf(f, "\n%-28s %11s %11s %9s  %s\n", "key (by growth)", "old rel_l2", "new rel_l2",
                "new/old", "change");
        for (size_t i = 0; i < n; i++)
            text_row(f, r, &c->entries[list[i]], (ptrdiff_t)list[i] == c->first_regressed, color);
        if (more)
            fprintf(f, "  ... %zu more regressions (the JSON report lists every probe)\n", more);
        size_t rest = c->n_judged - c->n_regressed - c->n_improved;
        if ((!brief || !c->n_regressed) && rest > LD_GATE_CONTEXT_ROWS)
            fprintf(f, "  ... %zu more within the factor, smaller growth\n",
                    rest - LD_GATE_CONTEXT_ROWS);
    }
    n = ld_gate_improved_rows(c, list, &more);
    if (n) {
        fprintf(f, "\n%-28s %11s %11s %9s  %s\n", "improved (most first)", "old rel_l2",
                "new rel_l2", "new/old", "change");
        for (size_t i = 0; i < n; i++)
            text_row(f, r, &c->entries[list[i]], false, color);
        if (more) fprintf(f, "  ... %zu more improved\n", more);
    } else {
        fprintf(f, "  No probe improved beyond the factor.\n");
    }
    free(list);
}

/* ---- compare --exact ------------------------------------------------------------------------- */

static void change_line(FILE *f, const ld_exact_change *c)
{
    char kt[LD_TAG_NAME_MAX + 48], el[256];
    fprintf(f, "  %-24s %s\n", ld_cmp_key_text(&c->key, kt, sizeof kt),
            c->have_elements ? ld_exact_elements_text(c, el, sizeof el) : c->what);
}

ld_status ld_exact_report_text(FILE *f, const ld_exact_result *r, bool color, ld_error *err)
{
    const char *bold = color ? "\033[1m" : "", *red = color ? "\033[31m" : "",
               *green = color ? "\033[32m" : "", *reset = color ? "\033[0m" : "";
    fprintf(f, "%slayerdiff compare --exact%s\n", bold, reset);
    const char *impl[2] = {r->old_impl ? r->old_impl : "no header",
                           r->new_impl ? r->new_impl : "no header"};
    for (int i = 0; i < 2; i++) {
        const char *path = i ? r->new_path : r->old_path;
        fprintf(f, "  %s  ", i ? "new" : "old");
        ld_cmp_put_safe(f, path, strlen(path), false);
        fputs("  (", f);
        ld_cmp_put_safe(f, impl[i], strlen(impl[i]), false);
        fputs(")\n", f);
    }
    for (size_t i = 0; i < r->n_notes; i++) {
        fputs("! ", f);
        ld_cmp_put_safe(f, r->notes[i], strlen(r->notes[i]), false);
        fputc('\n', f);
    }
    fputc('\n', f);
    int code = ld_exact_exit_code(r);
    char kt[LD_TAG_NAME_MAX + 48], kw[LD_TAG_NAME_MAX + 64], el[256];
    if (r->n_listed) {
        const ld_exact_change *c = &r->changes[0];
        fprintf(f, "%sFirst change: %s%s (%s; probe %llu, lines %llu / %llu):\n  %s%s%s.\n", red,
                ld_cmp_key_text(&c->key, kt, sizeof kt), reset,
                ld_cmp_key_words(&c->key, kw, sizeof kw), (unsigned long long)c->index,
                (unsigned long long)c->old_line, (unsigned long long)c->new_line, c->what,
                c->have_elements ? "; " : "", ld_exact_elements_text(c, el, sizeof el));
        if (r->structural)
            fprintf(f,
                    "The key sequences differ there, so the walk stopped: %llu keys before it "
                    "were compared.\n",
                    (unsigned long long)r->keys);
        fprintf(f, "\n%llu of %llu keys changed%s:\n", (unsigned long long)r->n_changed,
                (unsigned long long)r->keys,
                r->n_listed < r->n_changed ? " (first ones listed)" : "");
        size_t show = LD_MIN(r->n_listed, (size_t)20);
        for (size_t i = 0; i < show; i++)
            change_line(f, &r->changes[i]);
        if (r->n_changed > show)
            fprintf(f, "  ... %llu more (the JSON report lists up to %d)\n",
                    (unsigned long long)(r->n_changed - show), LD_EXACT_MAX_LISTED);
    } else if (code == 0) {
        fprintf(f,
                "%sAll %llu probes are bit-identical%s (%llu by payload bytes, %llu by stats "
                "and head values only).\n",
                green, (unsigned long long)r->keys, reset, (unsigned long long)r->by_bytes,
                (unsigned long long)r->by_stats);
    } else {
        fprintf(f,
                "No change in the %llu probes both streams hold, but the comparison is "
                "incomplete.\n",
                (unsigned long long)r->keys);
    }
    fprintf(f, "\n%s%sverdict: %s%s — exit %d\n", bold, code ? red : green,
            code == 0 ? "IDENTICAL" : (code == 1 ? "CHANGED" : "INCOMPLETE"), reset, code);
    return ld_cmp_stream_status(f, "text", err);
}

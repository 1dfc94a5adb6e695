/* report_md.c — a short Markdown summary for a pull-request comment or a CI job summary: the
 * verdict, the summary paragraph, the notes, and a small table of the probes that matter (the
 * brief rows); the regression gate's section, and the compare --exact summary. The full table
 * lives in the HTML and JSON reports. */
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "util.h"

/* Markdown text and table cells: '|' would end the cell, a newline the row or paragraph, '<'
 * start raw HTML. */
static void md_cell(FILE *f, const char *s) { ld_cmp_put_safe(f, s, strlen(s), true); }

/* A path from the command line as a code span: fenced by one backtick more than its longest run
 * of them (padded by spaces then), its control characters and non-UTF-8 bytes made visible. */
static void md_path(FILE *f, const char *s)
{
    size_t run = 0, longest = 0;
    for (const char *p = s; *p; p++) {
        run = *p == '`' ? run + 1 : 0;
        longest = run > longest ? run : longest;
    }
    for (size_t i = 0; i <= longest; i++)
        fputc('`', f);
    fputs(longest ? " " : "", f);
    ld_cmp_put_safe(f, s, strlen(s), false);
    fputs(longest ? " " : "", f);
    for (size_t i = 0; i <= longest; i++)
        fputc('`', f);
}

ld_status ld_report_markdown(FILE *f, const ld_compare_result *r, const ld_report_options *opt,
                             ld_error *err)
{
    (void)opt;
    int code = ld_compare_exit_code(r, r->fail_on);
    char kt[LD_TAG_NAME_MAX + 48];
    if (r->first_div >= 0)
        fprintf(f, "### layerdiff: %s divergence at `%s` (exit %d)\n\n", code ? "❌" : "⚠️",
                ld_cmp_key_text(&r->rows[r->first_div].key, kt, sizeof kt), code);
    else if (code)
        fprintf(f, "### layerdiff: ❌ %s (exit %d)\n\n",
                r->empty ? "nothing compared"
                         : (code == 1 && r->regression
                                ? "error grew over the baseline"
                                : (r->incomplete ? "incomplete comparison" : "outputs differ")),
                code);
    else
        fprintf(f, "### layerdiff: ✅ no divergence (exit 0)\n\n");
    md_path(f, r->ref.path);
    fputs(" (", f);
    md_cell(f, r->ref.opened ? r->ref.implementation : "no header");
    fputs(") vs ", f);
    md_path(f, r->cand.path);
    fputs(" (", f);
    md_cell(f, r->cand.opened ? r->cand.implementation : "no header");
    fputs("), policy: ", f);
    md_cell(f, r->policy_label);
    fputs("\n\n", f);
    char *text = ld_compare_summary(r);
    if (!text)
        return ld_error_set(err, LD_E_NOMEM, "out of memory writing the summary");
    md_cell(f, text);
    fputs("\n\n", f);
    free(text);
    for (size_t i = 0; i < r->n_notes; i++)
        if (r->notes[i].level != LD_NOTE_INFO) {
            fprintf(f, "> **%s** ", r->notes[i].level == LD_NOTE_ERROR ? "Error:" : "Note:");
            md_cell(f, r->notes[i].text);
            fputs("\n>\n", f);
        }
    bool *keep = calloc(r->n_rows ? r->n_rows : 1, sizeof *keep);
    if (!keep)
        return ld_error_set(err, LD_E_NOMEM, "out of memory");
    ld_cmp_brief_rows(r, keep);
    size_t shown = 0;
    for (size_t i = 0; i < r->n_rows; i++)
        shown += keep[i];
    if (shown) {
        size_t ncol;
        const ld_cmp_column *cols = ld_cmp_columns(&ncol);
        fputs("\n|", f);
        for (size_t c = 0; c < ncol; c++)
            if (cols[c].brief && ld_cmp_column_shown(&cols[c], r))
                fprintf(f, " %s |", cols[c].header);
        fputs("\n|", f);
        for (size_t c = 0; c < ncol; c++)
            if (cols[c].brief && ld_cmp_column_shown(&cols[c], r))
                fputs(c == 0 || c + 1 == ncol ? " --- |" : " ---: |", f);
        fputc('\n', f);
        for (size_t i = 0; i < r->n_rows; i++) {
            if (!keep[i])
                continue;
            fputc('|', f);
            for (size_t c = 0; c < ncol; c++) {
                if (!cols[c].brief || !ld_cmp_column_shown(&cols[c], r))
                    continue;
                char buf[256];
                cols[c].fill(r, &r->rows[i], buf, sizeof buf);
                fputs((ptrdiff_t)i == r->first_div && c == 0 ? " **" : " ", f);
                md_cell(f, buf);
                fputs((ptrdiff_t)i == r->first_div && c == 0 ? "** |" : " |", f);
            }
            fputc('\n', f);
        }
        if (shown < r->n_rows)
            fprintf(f, "\n%zu of %zu probes shown; the HTML and JSON reports hold all of them.\n",
                    shown, r->n_rows);
    }
    free(keep);
    ld_baseline_report_markdown(f, r);
    fprintf(f, "\n%zu compared, %zu ok, %zu failing, %zu missing or mismatched.\n", r->n_compared,
            r->n_pass, r->n_fail, r->n_missing_in_cand + r->n_missing_in_ref + r->n_shape_mismatch);
    return ld_cmp_stream_status(f, "Markdown", err);
}

/* ---- the regression gate (compare --baseline) ------------------------------------------------ */

static void md_rows(FILE *f, const ld_compare_result *r, const size_t *list, size_t n)
{
    fputs("\n| key | old rel_l2 | new rel_l2 | new/old | change |\n| --- | ---: | ---: | ---: | "
          "--- |\n",
          f);
    for (size_t i = 0; i < n; i++) {
        const ld_gate_entry *e = &r->baseline->entries[list[i]];
        char kt[160], a[16], b[16], q[24];
        bool first = (ptrdiff_t)list[i] == r->baseline->first_regressed;
        fprintf(f, "| %s`%s`%s | %s | %s | %s | %s |\n", first ? "**" : "",
                ld_cmp_key_text(&r->rows[e->row].key, kt, sizeof kt), first ? "**" : "",
                ld_cmp_fmt(e->old_rel_l2, a, sizeof a), ld_cmp_fmt(e->new_rel_l2, b, sizeof b),
                ld_gate_ratio_text(e->ratio, q, sizeof q), ld_gate_change_text(e));
    }
}

void ld_baseline_report_markdown(FILE *f, const ld_compare_result *r)
{
    const ld_baseline_check *c = r->baseline;
    if (!c) return;
    char buf[1024];
    if (c->first_regressed >= 0) {
        char kt[160];
        fprintf(f, "\n#### Regression gate: ❌ %zu probe%s regressed, first `%s`\n\n",
                c->n_regressed, c->n_regressed == 1 ? "" : "s",
                ld_cmp_key_text(&r->rows[c->entries[c->first_regressed].row].key, kt, sizeof kt));
    } else {
        fprintf(f, "\n#### Regression gate: ✅ no probe regressed\n\n");
    }
    ld_gate_baseline_words(c, buf, sizeof buf);
    fputs("Baseline ", f);
    md_path(f, c->path);
    fputs(": ", f);
    md_cell(f, buf); /* the baseline's candidate and faults */
    fputs(".\n", f);
    char first[512], rule[256];
    ld_gate_counts_text(c, buf, sizeof buf);
    ld_gate_first_text(r, first, sizeof first);
    ld_gate_rule_text(c, rule, sizeof rule);
    fprintf(f, "%s (%s). %s.\n", buf, rule, first);
    size_t *list = malloc((c->n_judged ? c->n_judged : 1) * sizeof *list);
    if (!list) return;
    size_t more, n = ld_gate_growth_rows(c, true, list, &more);
    if (n) md_rows(f, r, list, n);
    if (more) fprintf(f, "\n%zu more regressions: see the JSON report.\n", more);
    n = ld_gate_improved_rows(c, list, &more);
    if (n) {
        fputs("\nImproved beyond the factor:\n", f);
        md_rows(f, r, list, n);
    }
    free(list);
}

/* ---- compare --exact ------------------------------------------------------------------------- */

ld_status ld_exact_report_markdown(FILE *f, const ld_exact_result *r, bool color, ld_error *err)
{
    (void)color;
    int code = ld_exact_exit_code(r);
    char kt[LD_TAG_NAME_MAX + 48], el[256];
    if (code == 0)
        fprintf(f, "### layerdiff --exact: ✅ bit-identical (%llu probes, exit 0)\n\n",
                (unsigned long long)r->keys);
    else if (r->n_listed)
        fprintf(f, "### layerdiff --exact: ❌ changed at `%s` (exit %d)\n\n",
                ld_cmp_key_text(&r->changes[0].key, kt, sizeof kt), code);
    else
        fprintf(f, "### layerdiff --exact: ❌ incomplete (exit %d)\n\n", code);
    md_path(f, r->old_path);
    fputs(" (old) vs ", f);
    md_path(f, r->new_path);
    fprintf(f,
            " (new): %llu keys compared, %llu by payload bytes, %llu by stats only; %llu "
            "changed.\n\n",
            (unsigned long long)r->keys, (unsigned long long)r->by_bytes,
            (unsigned long long)r->by_stats, (unsigned long long)r->n_changed);
    for (size_t i = 0; i < r->n_notes; i++) {
        fputs("> **Note:** ", f);
        md_cell(f, r->notes[i]);
        fputs("\n>\n", f);
    }
    if (r->n_listed) {
        fputs("\n| key | what changed |\n| --- | --- |\n", f);
        size_t show = LD_MIN(r->n_listed, (size_t)20);
        for (size_t i = 0; i < show; i++) {
            const ld_exact_change *c = &r->changes[i];
            fprintf(f, "| `%s` | %s |\n", ld_cmp_key_text(&c->key, kt, sizeof kt),
                    c->have_elements ? ld_exact_elements_text(c, el, sizeof el) : c->what);
        }
        if (r->n_changed > show)
            fprintf(f, "\n%llu more changed keys: see the JSON report.\n",
                    (unsigned long long)(r->n_changed - show));
    }
    return ld_cmp_stream_status(f, "Markdown", err);
}

/* report_md.c — a short Markdown summary for a pull-request comment or a CI job summary: the
 * verdict, the summary paragraph, the notes, and a small table of the probes that matter (the
 * brief rows). The full table lives in the HTML and JSON reports. */
#include <stdlib.h>
#include <string.h>

#include "compare_internal.h"
#include "gate.h"
#include "util.h"

/* Markdown table cells: '|' would end the cell, newlines the row. */
static void md_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '\n')
            fputc(' ', f);
        else
            fputc(*s, f);
    }
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
    fprintf(f, "`%s` (%s) vs `%s` (%s), policy: %s\n\n", r->ref.path,
            r->ref.opened ? r->ref.implementation : "no header", r->cand.path,
            r->cand.opened ? r->cand.implementation : "no header", r->policy_label);
    char *text = ld_compare_summary(r);
    if (!text)
        return ld_error_set(err, LD_E_NOMEM, "out of memory writing the summary");
    fprintf(f, "%s\n\n", text);
    free(text);
    for (size_t i = 0; i < r->n_notes; i++)
        if (r->notes[i].level != LD_NOTE_INFO)
            fprintf(f, "> **%s** %s\n>\n", r->notes[i].level == LD_NOTE_ERROR ? "Error:" : "Note:",
                    r->notes[i].text);
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

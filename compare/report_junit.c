/* report_junit.c — JUnit XML for CI systems: one test case per probe key (classname
 * "layerdiff.S0.L3", name "q_norm"), plus cases for each stream's completeness and the argmax.
 * A case fails only for conditions in --fail-on, so the XML and the exit code agree; what is not
 * judged is still stated in the case's system-out. */
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "util.h"

#define X(f, s) ld_cmp_put_xml(f, s)

typedef enum kind { PASS, FAILURE, ERROR, SKIPPED } kind;

static void testcase(FILE *f, const char *cls, const char *name, kind k, const char *type,
                     const char *msg, const char *out)
{
    fputs("    <testcase classname=\"", f);
    X(f, cls);
    fputs("\" name=\"", f);
    X(f, name);
    fputs("\" time=\"0\"", f);
    if (k == PASS && !(out && out[0])) {
        fputs("/>\n", f);
        return;
    }
    fputs(">\n", f);
    if (k != PASS) {
        const char *el = k == FAILURE ? "failure" : (k == ERROR ? "error" : "skipped");
        fprintf(f, "      <%s message=\"", el);
        X(f, msg);
        fputc('"', f);
        if (type) {
            fputs(" type=\"", f);
            X(f, type);
            fputc('"', f);
        }
        fputs("/>\n", f);
    }
    if (out && out[0]) {
        fputs("      <system-out>", f);
        X(f, out);
        fputs("</system-out>\n", f);
    }
    fputs("    </testcase>\n", f);
}

/* Classifies a row the way the exit code would. */
static kind row_kind(const ld_compare_result *r, const ld_row *row)
{
    if (row->state == LD_ROW_COMPARED)
        return row->pass || !(r->fail_on & LD_FAIL_ON_DIVERGENCE) ? PASS : FAILURE;
    if (row->allowed || !(r->fail_on & LD_FAIL_ON_INCOMPLETE))
        return SKIPPED;
    return ERROR;
}

ld_status ld_report_junit(FILE *f, const ld_compare_result *r, const ld_report_options *opt,
                          ld_error *err)
{
    (void)opt;
    size_t tests = r->n_rows + 3, failures = 0, errors = 0, skipped = 0;
    for (size_t i = 0; i < r->n_rows; i++) {
        kind k = row_kind(r, &r->rows[i]);
        failures += k == FAILURE;
        errors += k == ERROR;
        skipped += k == SKIPPED;
    }
    bool incomplete_fails = (r->fail_on & LD_FAIL_ON_INCOMPLETE) || r->empty;
    kind stream_kind[2];
    for (int s = 0; s < 2; s++) {
        const ld_stream_info *in = s ? &r->cand : &r->ref;
        bool bad = in->truncated || (in->has_end && !in->end_ok) || in->probes == 0;
        stream_kind[s] = !bad ? PASS : (incomplete_fails ? ERROR : SKIPPED);
        errors += stream_kind[s] == ERROR;
        skipped += stream_kind[s] == SKIPPED;
    }
    kind argmax_kind = r->argmax_step < 0 ? PASS
                                          : ((r->fail_on & LD_FAIL_ON_ARGMAX) ? FAILURE : PASS);
    failures += argmax_kind == FAILURE;

    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
    fprintf(f, "<testsuites name=\"layerdiff\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" "
               "skipped=\"%zu\">\n",
            tests, failures, errors, skipped);
    fprintf(f, "  <testsuite name=\"layerdiff.compare\" tests=\"%zu\" failures=\"%zu\" "
               "errors=\"%zu\" skipped=\"%zu\" time=\"0\">\n",
            tests, failures, errors, skipped);
    fputs("    <properties>\n      <property name=\"reference\" value=\"", f);
    X(f, r->ref.path);
    fputs("\"/>\n      <property name=\"candidate\" value=\"", f);
    X(f, r->cand.path);
    fputs("\"/>\n      <property name=\"policy\" value=\"", f);
    X(f, r->policy_label);
    fputs("\"/>\n", f);
    for (size_t i = 0; i < r->n_notes; i++) {
        fprintf(f, "      <property name=\"note.%zu.", i);
        X(f, r->notes[i].code);
        fputs("\" value=\"", f);
        X(f, r->notes[i].text);
        fputs("\"/>\n", f);
    }
    fputs("    </properties>\n", f);

    for (int s = 0; s < 2; s++) {
        const ld_stream_info *in = s ? &r->cand : &r->ref;
        char msg[512];
        if (in->probes == 0)
            snprintf(msg, sizeof msg, "%s holds no probe record", in->path);
        else if (in->truncated)
            snprintf(msg, sizeof msg, "%s was cut short after %s", in->path,
                     in->last_key && in->last_key[0] ? in->last_key : "its header");
        else if (in->has_end && !in->end_ok)
            snprintf(msg, sizeof msg, "the run ended with an error: %s", in->end_message);
        else
            msg[0] = '\0';
        testcase(f, "layerdiff.stream", s ? "candidate" : "reference", stream_kind[s],
                 "incomplete", msg, stream_kind[s] == PASS ? NULL : msg);
    }
    for (size_t i = 0; i < r->n_rows; i++) {
        const ld_row *row = &r->rows[i];
        char cls[96], msg[512], out[1024], w[400], a[16], b[16];
        if (row->key.layer >= 0)
            snprintf(cls, sizeof cls, "layerdiff.S%d.L%d", row->key.step, row->key.layer);
        else
            snprintf(cls, sizeof cls, "layerdiff.S%d", row->key.step);
        kind k = row_kind(r, row);
        out[0] = '\0';
        if (row->state == LD_ROW_COMPARED) {
            ld_cmp_fail_words(row, msg, sizeof msg);
            snprintf(out, sizeof out, "rel_l2 %s, cosine %.9f, max_abs %s%s%s%s",
                     ld_cmp_fmt(row->m.rel_l2, a, sizeof a), row->m.cosine,
                     ld_cmp_fmt(row->m.max_abs, b, sizeof b),
                     row->m.source == LD_SRC_STATS ? " (stats only)" : "",
                     row->pass ? "" : "; worst element ",
                     row->pass ? "" : ld_cmp_worst_words(r, row, w, sizeof w));
            if ((ptrdiff_t)i == r->first_div) {
                size_t used = strlen(msg);
                snprintf(msg + used, sizeof msg - used, " (first divergence)");
            }
        } else {
            snprintf(msg, sizeof msg, "%s", ld_cmp_row_status(row));
        }
        testcase(f, cls, row->key.tag, k, row->state == LD_ROW_COMPARED ? "divergence" : "incomplete",
                 msg, out);
    }
    char msg[512] = "", ta[128], tb[128];
    if (r->argmax_step >= 0)
        snprintf(msg, sizeof msg, "argmax differs first at step %d: reference %s, candidate %s",
                 r->argmax_step, ld_cmp_token_words(r, r->steps[r->argmax_step].ref_token, ta,
                                                    sizeof ta),
                 ld_cmp_token_words(r, r->steps[r->argmax_step].cand_token, tb, sizeof tb));
    testcase(f, "layerdiff.tokens", "argmax", argmax_kind, "argmax", msg, msg);
    fputs("  </testsuite>\n</testsuites>\n", f);
    return ld_cmp_stream_status(f, "JUnit", err);
}

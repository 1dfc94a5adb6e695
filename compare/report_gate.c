/* report_gate.c — the words the gate reports share across formats: a baseline check's verdicts,
 * ratios, counts, rule and first regression, the rows its tables list, and an exact result's
 * verdict and changed elements. Each format's layout is its report_<format>.c; the judging is
 * baseline.c and exact.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report.h"
#include "util.h"

/* Most regressed / improved rows a table lists (the JSON report lists all); brief text: fewer. */
#define MAX_LISTED       25
#define MAX_LISTED_BRIEF 10

/* ---- the regression gate ------------------------------------------------------------------- */

const char *ld_gate_verdict_name(const ld_gate_entry *e)
{
    switch (e->verdict) {
    case LD_GATE_WITHIN:
        return "within";
    case LD_GATE_REGRESSED:
        return "regressed";
    case LD_GATE_IMPROVED:
        return "improved";
    case LD_GATE_UNJUDGED:
        break;
    }
    return "unjudged";
}

char *ld_gate_ratio_text(double v, char *buf, size_t size)
{
    if (isfinite(v) && v >= 10)
        snprintf(buf, size, "%.0fx", v);
    else if (isfinite(v))
        snprintf(buf, size, "%.2fx", v);
    else
        ld_cmp_fmt(v, buf, size);
    return buf;
}

char *ld_baseline_ratio_text(const ld_compare_result *r, const ld_row *row, char *buf, size_t size)
{
    const ld_baseline_check *c = r->baseline;
    size_t i = (size_t)(row - r->rows);
    if (!c || i >= c->n_entries || c->entries[i].verdict == LD_GATE_UNJUDGED) {
        snprintf(buf, size, "-");
        return buf;
    }
    return ld_gate_ratio_text(c->entries[i].ratio, buf, size);
}

/* The change of one entry in words: "REGRESSED", "REGRESSED (new NaN/Inf)", "improved", "within".
 */
const char *ld_gate_change_text(const ld_gate_entry *e)
{
    switch (e->verdict) {
    case LD_GATE_REGRESSED:
        return e->by_nonfinite ? "REGRESSED (new NaN/Inf)" : "REGRESSED";
    case LD_GATE_IMPROVED:
        return "improved";
    case LD_GATE_WITHIN:
        return e->under_floor ? "within (under the floor)" : "within";
    case LD_GATE_UNJUDGED:
        break;
    }
    return "";
}

/* The rows a gate table lists, in growth order: every regression (up to MAX_LISTED, and the
 * first one in execution order always), then the LD_GATE_CONTEXT_ROWS largest growths that stayed within
 * the factor. Returns how many went to out; *more counts the regressions left out. */
size_t ld_gate_growth_rows(const ld_baseline_check *c, bool brief, size_t *out, size_t *more)
{
    size_t n = 0, context = 0, max = brief ? MAX_LISTED_BRIEF : MAX_LISTED;
    *more = 0;
    for (size_t i = 0; i < c->n_judged; i++) {
        const ld_gate_entry *e = &c->entries[c->by_growth[i]];
        if (e->verdict == LD_GATE_REGRESSED) {
            if (n < max || (ptrdiff_t)c->by_growth[i] == c->first_regressed)
                out[n++] = c->by_growth[i];
            else
                (*more)++;
        } else if (e->verdict != LD_GATE_IMPROVED && (!brief || !c->n_regressed) &&
                   context < LD_GATE_CONTEXT_ROWS) {
            out[n++] = c->by_growth[i];
            context++;
        }
    }
    return n;
}

/* The improved entries, most improved first (growth order reversed). */
size_t ld_gate_improved_rows(const ld_baseline_check *c, size_t *out, size_t *more)
{
    size_t n = 0;
    *more = 0;
    for (size_t i = c->n_judged; i-- > 0;) {
        if (c->entries[c->by_growth[i]].verdict != LD_GATE_IMPROVED) continue;
        if (n < MAX_LISTED)
            out[n++] = c->by_growth[i];
        else
            (*more)++;
    }
    return n;
}

/* "3 of 284 probes regressed, 1 improved, 280 within the factor" */
void ld_gate_counts_text(const ld_baseline_check *c, char *buf, size_t size)
{
    snprintf(buf, size, "%zu of %zu probes regressed, %zu improved, %zu within the factor",
             c->n_regressed, c->n_judged, c->n_improved,
             c->n_judged - c->n_regressed - c->n_improved);
    if (c->n_under_floor) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used,
                 " (%zu of them grew over the factor but stay under the "
                 "noise floor)",
                 c->n_under_floor);
    }
    if (c->n_entries > c->n_judged) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, " (%zu not judged: missing here or in the baseline)",
                 c->n_entries - c->n_judged);
    }
}

/* "a probe regresses when its rel_l2 > 3 x the baseline's + 1e-06 or ..." */
void ld_gate_rule_text(const ld_baseline_check *c, char *buf, size_t size)
{
    char s[16];
    snprintf(buf, size,
             "a probe regresses when its rel_l2 > %g x the baseline's + %s%s or its "
             "NaN/Inf disagreements grow",
             c->factor, ld_cmp_fmt(c->slack, s, sizeof s),
             c->floor_used ? " and over its noise floor" : "");
}

void ld_gate_first_text(const ld_compare_result *r, char *buf, size_t size)
{
    const ld_baseline_check *c = r->baseline;
    if (c->first_regressed < 0) {
        snprintf(buf, size, "No probe regressed");
        return;
    }
    const ld_gate_entry *e = &c->entries[c->first_regressed];
    char kt[160], kw[200], a[16], b[16], q[24];
    const ld_key *k = &r->rows[e->row].key;
    if (e->by_nonfinite)
        snprintf(buf, size,
                 "First regression in execution order: %s (%s): %llu NaN/Inf "
                 "disagreements, %llu in the baseline",
                 ld_cmp_key_text(k, kt, sizeof kt), ld_cmp_key_words(k, kw, sizeof kw),
                 (unsigned long long)e->new_nonfinite, (unsigned long long)e->old_nonfinite);
    else
        snprintf(buf, size, "First regression in execution order: %s (%s): rel_l2 %s -> %s, %s",
                 ld_cmp_key_text(k, kt, sizeof kt), ld_cmp_key_words(k, kw, sizeof kw),
                 ld_cmp_fmt(e->old_rel_l2, a, sizeof a), ld_cmp_fmt(e->new_rel_l2, b, sizeof b),
                 ld_gate_ratio_text(e->ratio, q, sizeof q));
}

void ld_gate_baseline_words(const ld_baseline_check *c, char *buf, size_t size)
{
    snprintf(buf, size, "candidate %s (%s, %s), written by %s", c->cand_path,
             c->cand_impl[0] ? c->cand_impl : "?", c->cand_faults[0] ? c->cand_faults : "no faults",
             c->tool);
}

/* ---- compare --exact ----------------------------------------------------------------------- */

const char *ld_exact_verdict_name(const ld_exact_result *r)
{
    switch (ld_exact_exit_code(r)) {
    case 0:
        return "identical";
    case 1:
        return "changed";
    default:
        return r->empty ? "empty" : "incomplete";
    }
}

/* "1234 of 7168 elements differ, first at [0,2,5]: 0.12345679 -> 0.12345680" */
char *ld_exact_elements_text(const ld_exact_change *c, char *buf, size_t size)
{
    buf[0] = '\0';
    if (!c->have_elements) return buf;
    int64_t idx[LD_MAX_NDIM] = {0};
    ld_unravel(c->first_elem, c->shape, c->ndim, idx);
    char where[96];
    ld_cmp_fmt_shape(idx, c->ndim, where, sizeof where);
    snprintf(buf, size, "%llu of %llu elements differ, first at %s: %.9g -> %.9g",
             (unsigned long long)c->n_diff, (unsigned long long)c->numel, where, c->old_value,
             c->new_value);
    return buf;
}

/* summary.c — the summary paragraph every report shows: the first divergence in words with its
 * inputs' errors and the amplification (did this op make the error or inherit it?), the worst
 * element, completeness, argmax and logits agreement. Plain text; writers escape it. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "util.h"

/* An op whose output error is at least this many times its inputs' made the error itself. */
#define MADE_HERE_FACTOR 10.0

typedef struct sbuf {
    FILE *f;
    char *p;
    size_t len;
} sbuf;

static void say(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(sbuf *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(s->f, fmt, ap);
    va_end(ap);
}

/* Whether the op reads other steps' tensors (attention's KV cache): then its inputs' errors are
 * spread over positions its output weighs unevenly, and growth says even less. */
static bool reads_earlier_steps(ld_tag t)
{
    for (const ld_tag_input *in = ld_tag_inputs(t); in->kind != LD_INPUT_END; in++)
        if (in->kind == LD_INPUT_KV)
            return true;
    return false;
}

/* "its input q_proj agrees to 2.1e-07" / "its inputs q_rope, k_rope, v_proj (steps 0-1) agree to
 * at most 3e-07 (worst: S1.L0.k_rope)" / "its inputs were not probed". */
static void describe_inputs(sbuf *s, const ld_compare_result *r, const ld_row *row)
{
    ld_key in[64];
    size_t n = ld_tag_input_keys(&row->key, r->n_layers, in, LD_ARRAY_LEN(in));
    n = LD_MIN(n, LD_ARRAY_LEN(in));
    size_t compared = 0, failing = 0;
    char names[256] = "";
    for (size_t i = 0; i < n; i++) {
        ptrdiff_t k = ld_compare_find(r, &in[i]);
        if (k < 0 || r->rows[k].state != LD_ROW_COMPARED)
            continue;
        compared++;
        failing += !r->rows[k].pass;
        bool listed = false; /* attn_out's inputs repeat per step: name each tag once */
        for (size_t j = 0; j < i; j++)
            listed |= !strcmp(in[j].tag, in[i].tag) && ld_compare_find(r, &in[j]) >= 0;
        if (!listed) {
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", in[i].tag);
        }
    }
    char a[16], b[16], kb[LD_TAG_NAME_MAX + 48];
    if (n == 0) {
        say(s, " (it reads no probed tensor)");
        return;
    }
    if (compared == 0) {
        say(s, "; its inputs were not probed, so whether the %s made this error or inherited it "
               "cannot be told", ld_tag_op_name(row->tag_id));
        return;
    }
    const ld_row *w = &r->rows[row->worst_input];
    if (compared == 1)
        say(s, " while its input %s %s %s", names, w->pass ? "agrees to" : "already has an error of",
            ld_cmp_fmt(w->m.rel_l2, a, sizeof a));
    else
        say(s, " while its inputs %s %s %s (worst: %s)", names,
            failing ? "have errors up to" : "agree to at most", ld_cmp_fmt(w->m.rel_l2, a, sizeof a),
            ld_cmp_key_text(&w->key, kb, sizeof kb));
    const char *op = ld_tag_op_name(row->tag_id);
    if (row->m.nonfinite_new && w->m.nonfinite_new == 0)
        say(s, " — the %s produced the NaN/Inf", op);
    else if (row->replayed) /* measured beats inferred: replay reran this very op */
        say(s, " — op-local replay, rerunning the op on the candidate's own inputs, measures its "
               "own error at %s against a budget of %s: %s",
            ld_cmp_fmt(row->local_rel_l2, a, sizeof a),
            ld_cmp_fmt(row->local_budget, b, sizeof b),
            row->local_over ? "the op made this error" : "within budget, so it was inherited");
    else if (isinf(row->amplification) || row->amplification >= MADE_HERE_FACTOR)
        say(s, " — the %s made this error (amplification %s)", op,
            isinf(row->amplification) ? "infinite: its inputs are exact"
                                      : ld_cmp_fmt(row->amplification, a, sizeof a));
    else if (failing)
        say(s, " — the error was inherited (amplification %s)",
            ld_cmp_fmt(row->amplification, a, sizeof a));
    else /* small growth over passing inputs: either a small local error or a magnified one */
        say(s, " — the error grew %sx over its inputs, which pass their own tolerances; growth "
               "alone cannot tell whether the %s made it or magnified theirs%s. Rerun compare with "
               "--model DIR (the checkpoint) to measure the op's own error",
            ld_cmp_fmt(row->amplification, a, sizeof a), op,
            reads_earlier_steps(row->tag_id) ? ", all the more as it reads every earlier step's "
                                              "cached keys and values, which this table does not "
                                              "weigh by how much they contribute"
                                            : "");
}

static void describe_divergence(sbuf *s, const ld_compare_result *r)
{
    const ld_row *row = &r->rows[r->first_div];
    char kw[LD_TAG_NAME_MAX + 64], kt[LD_TAG_NAME_MAX + 48], a[16], w[400];
    say(s, "First divergence: %s (%s): ", ld_cmp_key_words(&row->key, kw, sizeof kw),
        ld_cmp_key_text(&row->key, kt, sizeof kt));
    if (row->m.nonfinite_new)
        say(s, "%llu NaN/Inf value%s where the reference is finite",
            (unsigned long long)row->m.nonfinite_new, row->m.nonfinite_new == 1 ? "" : "s");
    else if (row->m.nonfinite_lost && !(row->fail_mask & ~LD_FAIL_NONFINITE))
        say(s, "%llu reference NaN/Inf value%s the candidate does not reproduce",
            (unsigned long long)row->m.nonfinite_lost, row->m.nonfinite_lost == 1 ? "" : "s");
    else
        say(s, "relative error %s, cosine %.6f", ld_cmp_fmt(row->m.rel_l2, a, sizeof a),
            row->m.cosine);
    if (row->tag_id != LD_TAG_UNKNOWN)
        describe_inputs(s, r, row);
    say(s, ". Failed: %s", ld_cmp_fail_words(row, w, sizeof w));
    if (row->m.source == LD_SRC_STATS)
        say(s, " (estimated from stats and the first %d values: no payload)", LD_HEAD_COUNT);
    if (row->m.has_worst)
        say(s, ". Worst element: %s", ld_cmp_worst_words(r, row, w, sizeof w));
    size_t later = 0, later_fail = 0;
    for (size_t i = (size_t)r->first_div + 1; i < r->n_rows; i++) {
        if (r->rows[i].state != LD_ROW_COMPARED)
            continue;
        later++;
        later_fail += !r->rows[i].pass;
    }
    if (later)
        say(s, ". After it, %zu of %zu later probes fail too", later_fail, later);
    say(s, ".");
}

static void describe_agreement(sbuf *s, const ld_compare_result *r)
{
    double worst = -1;
    ptrdiff_t wi = -1;
    for (size_t i = 0; i < r->n_rows; i++) {
        const ld_row *row = &r->rows[i];
        if (row->state == LD_ROW_COMPARED && (wi < 0 || row->m.rel_l2 > worst)) {
            worst = row->m.rel_l2;
            wi = (ptrdiff_t)i;
        }
    }
    if (r->n_compared == 0) {
        say(s, "Nothing was compared.");
        return;
    }
    char a[16], kt[LD_TAG_NAME_MAX + 48];
    say(s, "No divergence: all %zu compared probes are within tolerance", r->n_compared);
    if (wi >= 0)
        say(s, " (largest relative error %s, at %s)", ld_cmp_fmt(worst, a, sizeof a),
            ld_cmp_key_text(&r->rows[wi].key, kt, sizeof kt));
    say(s, ".");
}

static void describe_completeness(sbuf *s, const ld_compare_result *r)
{
    char kt[LD_TAG_NAME_MAX + 48];
    size_t missing = r->n_missing_in_cand + r->n_missing_in_ref + r->n_shape_mismatch;
    if (r->empty) { /* every key is missing and the stream is short: one cause, said once */
        for (int k = 0; k < 2; k++) {
            const ld_stream_info *in = k ? &r->cand : &r->ref;
            if (in->probes == 0)
                say(s, " The %s stream %s holds no probe%s.", k ? "candidate" : "reference",
                    in->path ? in->path : "?", in->opened ? "" : " and no header");
        }
        say(s, " An empty comparison is never a pass.");
        return;
    }
    if (missing) {
        const ld_row *first = NULL;
        for (size_t i = 0; i < r->n_rows && !first; i++)
            if (r->rows[i].state != LD_ROW_COMPARED && !r->rows[i].allowed)
                first = &r->rows[i];
        say(s, " %s: %zu keys missing in the candidate, %zu missing in the reference, %zu with "
               "different shapes", first ? "Incomplete" : "Keys differ (allowed)",
            r->n_missing_in_cand, r->n_missing_in_ref, r->n_shape_mismatch);
        if (first)
            say(s, " (first: %s, %s)", ld_cmp_key_text(&first->key, kt, sizeof kt),
                ld_cmp_row_status(first));
        if (r->n_allowed)
            say(s, "; %zu allowed by --allow-missing", r->n_allowed);
        say(s, ".");
    }
    for (int k = 0; k < 2; k++) {
        const ld_stream_info *in = k ? &r->cand : &r->ref;
        const char *who = k ? "candidate" : "reference";
        if (in->truncated)
            say(s, " The %s stream was cut short after %s.", who,
                in->last_key && in->last_key[0] ? in->last_key : "its header");
        else if (in->has_end && !in->end_ok)
            say(s, " The %s run ended with an error: %s.", who, in->end_message);
    }
    if (!missing && !r->incomplete)
        say(s, " Every key is present in both streams.");
}

static void describe_tokens(sbuf *s, const ld_compare_result *r)
{
    size_t both = 0;
    uint64_t rows = 0, top1 = 0;
    double overlap = 0;
    for (size_t i = 0; i < r->n_steps; i++) {
        const ld_step_tokens *t = &r->steps[i];
        both += t->have_ref && t->have_cand;
        rows += t->logits_rows;
        top1 += t->top1_agree;
        overlap += t->topk_overlap * (double)t->logits_rows;
    }
    if (r->argmax_step >= 0) {
        const ld_step_tokens *t = &r->steps[r->argmax_step];
        char a[128], b[128];
        say(s, " Argmax tokens first differ at step %d: reference %s, candidate %s.",
            r->argmax_step, ld_cmp_token_words(r, t->ref_token, a, sizeof a),
            ld_cmp_token_words(r, t->cand_token, b, sizeof b));
    } else if (both) {
        if (both == 1)
            say(s, " Argmax tokens agree at the one step.");
        else
            say(s, " Argmax tokens agree at all %zu steps.", both);
    } else {
        say(s, " No argmax tokens to compare.");
    }
    if (rows)
        say(s, " Logits: argmax agrees on %llu of %llu rows, top-%d overlap %.1f%%.",
            (unsigned long long)top1, (unsigned long long)rows, r->topk,
            100.0 * overlap / (double)rows);
}

/* Op-local attribution: the culprit by local error, and the others over budget. */
static void describe_replay(sbuf *s, const ld_compare_result *r)
{
    if (!r->replay_ran)
        return;
    char kw[LD_TAG_NAME_MAX + 64], kt[LD_TAG_NAME_MAX + 48], a[16], b[16], c[16];
    if (r->culprit < 0) {
        say(s, " Op-local replay: %zu probes rerun on the candidate's own inputs; every op's own "
               "error is within its budget.",
            r->n_replayed);
        return;
    }
    const ld_row *row = &r->rows[r->culprit];
    say(s, " Op-local replay (%zu probes rerun on the candidate's own inputs): the culprit is %s "
           "(%s), whose %s has a local error of %s against a budget of %s, while its inputs bring "
           "only %s.",
        r->n_replayed, ld_cmp_key_words(&row->key, kw, sizeof kw),
        ld_cmp_key_text(&row->key, kt, sizeof kt), ld_tag_op_name(row->tag_id),
        ld_cmp_fmt(row->local_rel_l2, a, sizeof a), ld_cmp_fmt(row->local_budget, b, sizeof b),
        ld_cmp_fmt(row->inherited_rel_l2, c, sizeof c));
    if (r->n_culprits > 1) {
        say(s, " Also over budget (%zu more):", r->n_culprits - 1);
        size_t listed = 0;
        for (size_t i = (size_t)r->culprit + 1; i < r->n_rows && listed < 8; i++) {
            const ld_row *o = &r->rows[i];
            if (!o->replayed || !o->local_over)
                continue;
            say(s, "%s %s (%s)", listed ? "," : "", ld_cmp_key_text(&o->key, kt, sizeof kt),
                ld_cmp_fmt(o->local_rel_l2, a, sizeof a));
            listed++;
        }
        if (r->n_culprits - 1 > listed)
            say(s, ", ...");
        say(s, ".");
    }
}

char *ld_compare_summary(const ld_compare_result *r)
{
    sbuf s = {0};
    s.f = open_memstream(&s.p, &s.len);
    if (!s.f)
        return NULL;
    if (r->first_div >= 0)
        describe_divergence(&s, r);
    else
        describe_agreement(&s, r);
    describe_replay(&s, r);
    describe_completeness(&s, r);
    describe_tokens(&s, r);
    if (fclose(s.f) != 0) {
        free(s.p);
        return NULL;
    }
    return s.p;
}

/* compare.c — ld_compare_run: opens both streams, checks their headers, pairs their records
 * (compare_read.c, compare_rows.c, compare_headers.c), then settles the result: missing keys,
 * truncation, the first divergence and its culprit, argmax and logits agreement. When both streams
 * come in the same order nothing waits: the two payloads of a pair are read in lockstep, a piece
 * of whole rows at a time, so memory stays at two readers' buffers and two pieces whatever the
 * records' sizes. Not the reports (report_*.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compare_core.h"
#include "floor.h"
#include "util.h"

/* ---- after the streams ----------------------------------------------------------------------- */

static int row_order(const void *pa, const void *pb)
{
    const ld_row *a = pa, *b = pb;
    if (a->ref_index != b->ref_index)
        return a->ref_index < b->ref_index ? -1 : 1;
    if (a->cand_index != b->cand_index)
        return a->cand_index < b->cand_index ? -1 : 1;
    return 0;
}

static int exec_row_order(const void *pa, const void *pb)
{
    const ld_row *a = pa, *b = pb;
    int o = ld_key_cmp_exec(&a->key, &b->key);
    return o ? o : row_order(pa, pb);
}

/* A reference out of execution order (its records moved after writing: none of our writers does
 * that) would make its first failing record the first divergence, not the earliest one: its
 * known-tag rows are put in execution order in the places such rows hold, so that rows of
 * unknown tags keep theirs, and the report says so. */
static ld_status exec_reorder(ctx *c)
{
    ld_compare_result *r = c->res;
    size_t n = 0, k = 0;
    for (size_t i = 0; i < r->n_rows; i++)
        n += r->rows[i].tag_id != LD_TAG_UNKNOWN && r->rows[i].ref_index != UINT64_MAX;
    size_t *at = calloc(LD_MAX(n, (size_t)1), sizeof *at);
    ld_row *moved = calloc(LD_MAX(n, (size_t)1), sizeof *moved);
    if (!at || !moved) {
        free(at);
        free(moved);
        return ld_error_set(c->err, LD_E_NOMEM, "out of memory for %zu rows", n);
    }
    for (size_t i = 0; i < r->n_rows; i++) {
        if (r->rows[i].tag_id != LD_TAG_UNKNOWN && r->rows[i].ref_index != UINT64_MAX) {
            at[k] = i;
            moved[k++] = r->rows[i];
        }
    }
    if (n > 1)
        qsort(moved, n, sizeof *moved, exec_row_order);
    for (k = 0; k < n; k++)
        r->rows[at[k]] = moved[k];
    free(at);
    free(moved);
    char kb[LD_TAG_NAME_MAX + 48], ka[LD_TAG_NAME_MAX + 48];
    return ld_cmp_note(c, LD_NOTE_WARN, "ref_order", "the reference stream %s is not in execution "
                       "order (%s at line %llu comes after %s): its rows are listed, and the first "
                       "divergence picked, in execution order", r->ref.path,
                       ld_cmp_key_text(&c->ref.back_key, kb, sizeof kb),
                       (unsigned long long)c->ref.back_line,
                       ld_cmp_key_text(&c->ref.back_after, ka, sizeof ka));
}

static bool allowed_missing(const ld_compare_options *o, const ld_key *k, bool end_record)
{
    char text[LD_TAG_NAME_MAX + 48];
    if (!end_record)
        ld_cmp_key_text(k, text, sizeof text);
    for (size_t i = 0; i < o->n_allow_missing; i++) {
        const char *g = o->allow_missing[i];
        if (end_record) {
            if (ld_glob_match(g, "end"))
                return true;
        } else if (strchr(g, '.') ? ld_glob_match(g, text) : ld_glob_match(g, k->tag)) {
            return true;
        }
    }
    return false;
}

/* Inputs' errors and amplification of every compared row. */
static ld_status op_context(ctx *c)
{
    ld_compare_result *r = c->res;
    size_t cap = 0;
    ld_key *in = NULL;
    for (size_t i = 0; i < r->n_rows; i++) {
        ld_row *row = &r->rows[i];
        if (row->state != LD_ROW_COMPARED)
            continue;
        size_t n = ld_tag_input_keys(&row->key, r->n_layers, in, cap);
        if (n > cap) {
            ld_key *ni = realloc(in, n * sizeof *ni);
            if (!ni) {
                free(in);
                return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
            }
            in = ni;
            cap = n;
            n = ld_tag_input_keys(&row->key, r->n_layers, in, cap);
        }
        double worst = -1;
        for (size_t j = 0; j < n; j++) {
            ptrdiff_t k = ld_compare_find(r, &in[j]);
            if (k < 0 || r->rows[k].state != LD_ROW_COMPARED)
                continue;
            double e = r->rows[k].m.rel_l2;
            if (row->worst_input < 0 || e > worst || (isnan(e) && !isnan(worst))) {
                worst = e;
                row->worst_input = k;
            }
        }
        if (row->worst_input < 0)
            continue;
        row->inputs_rel_l2 = worst;
        double e = row->m.rel_l2;
        if (worst == 0)
            row->amplification = e == 0 ? NAN : INFINITY;
        else
            row->amplification = e / worst;
    }
    free(in);
    return LD_OK;
}

static ld_status finish_result(ctx *c)
{
    ld_compare_result *r = c->res;
    ld_status st;
    /* Reference order first, then candidate-only keys in candidate order. */
    if (r->n_rows > 1) /* an empty result has no array to sort (qsort wants one) */
        qsort(r->rows, r->n_rows, sizeof *r->rows, row_order);
    if (c->ref.out_of_order && (st = exec_reorder(c)) != LD_OK)
        return st;
    ld_cmp_index_free(&c->idx);
    index_t *ix = calloc(1, sizeof *ix);
    if (!ix)
        return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
    r->index_ = ix;
    int max_layer = -1;
    for (size_t i = 0; i < r->n_rows; i++) {
        if (!ld_cmp_index_put(ix, r->rows, i))
            return ld_error_set(c->err, LD_E_NOMEM, "out of memory for the key index");
        ld_row *row = &r->rows[i];
        if (row->key.layer > max_layer)
            max_layer = row->key.layer;
        /* A row that never met its partner (rows start out as COMPARED with no metrics). */
        if (row->m.source == LD_SRC_NONE && row->state == LD_ROW_COMPARED)
            row->state = row->ref_index == UINT64_MAX ? LD_ROW_MISSING_IN_REF
                                                      : LD_ROW_MISSING_IN_CAND;
        switch (row->state) {
        case LD_ROW_COMPARED:
            r->n_compared++;
            if (row->pass)
                r->n_pass++;
            else
                r->n_fail++;
            if (row->m.source == LD_SRC_STATS)
                r->n_stats_only++;
            if (!row->pass && r->first_div < 0)
                r->first_div = (ptrdiff_t)i;
            break;
        case LD_ROW_MISSING_IN_CAND: r->n_missing_in_cand++; break;
        case LD_ROW_MISSING_IN_REF: r->n_missing_in_ref++; break;
        case LD_ROW_SHAPE_MISMATCH: r->n_shape_mismatch++; break;
        }
        if (row->state != LD_ROW_COMPARED) {
            row->allowed = allowed_missing(c->opt, &row->key, false);
            if (row->allowed)
                r->n_allowed++;
            else
                r->incomplete = true;
        }
    }
    if (r->n_layers <= 0)
        r->n_layers = max_layer + 1;
    /* The grid kept while comparing belongs to the earliest failure as then known; a reordered
     * mix of known and unknown tags can pick another row: then the heat strip is left out. */
    if (r->first_div < 0 || !ld_cmp_key_eq(&r->rows[r->first_div].key, &c->first_fail_key))
        ld_err_grid_free(&r->first_grid);
    r->divergence = r->n_fail > 0;
    /* Truncation and failed runs: the pseudo-key "end". */
    for (int s = 0; s < 2; s++) {
        ld_stream_info *in = s ? &r->cand : &r->ref;
        if ((in->truncated || (in->has_end && !in->end_ok)) && !allowed_missing(c->opt, NULL, true))
            r->incomplete = true;
    }
    if (r->ref.probes == 0 || r->cand.probes == 0) {
        r->empty = true;
        r->incomplete = true;
        bool both = r->ref.probes == 0 && r->cand.probes == 0;
        const char *who = both ? "both streams" : r->ref.probes == 0 ? "the reference stream"
                                                                      : "the candidate stream";
        if ((st = ld_cmp_note(c, LD_NOTE_ERROR, "empty",
                              "%s %s no probe record: nothing was "
                              "compared, which is never a pass",
                              who, both ? "hold" : "holds")) != LD_OK)
            return st;
    }
    if ((st = op_context(c)) != LD_OK)
        return st;
    /* Argmax per step: the end records, else the last logits rows (set while comparing). */
    for (int s = 0; s < 2; s++) {
        const ld_stream_info *in = s ? &r->cand : &r->ref;
        for (size_t i = 0; i < in->n_end_tokens; i++) {
            ld_step_tokens *t = ld_cmp_step_slot(c, (int)i);
            if (!t)
                break;
            if (s) {
                t->cand_token = in->end_tokens[i];
                t->have_cand = true;
            } else {
                t->ref_token = in->end_tokens[i];
                t->have_ref = true;
            }
        }
    }
    r->argmax_step = -1;
    for (size_t i = 0; i < r->n_steps; i++) {
        const ld_step_tokens *t = &r->steps[i];
        if (t->have_ref && t->have_cand && t->ref_token != t->cand_token) {
            r->argmax_step = (int)i;
            break;
        }
    }
    /* Decoded tokens: the inputs of the decode steps. */
    const ld_stream_info *a = &r->ref, *b = &r->cand;
    if (a->decoded && b->decoded) {
        size_t n = LD_MIN(a->n_decoded, b->n_decoded);
        for (size_t i = 0; i < n; i++) {
            if (a->decoded[i] == b->decoded[i])
                continue;
            /* Different weights decode different tokens: name the cause, not the symptom. */
            if (!c->opt->allow_input_mismatch && r->fingerprint_differs)
                return ld_error_set(c->err, LD_E_INPUT,
                                    "different weights: the weight fingerprints differ (%s in %s, "
                                    "%s in %s), so the runs decoded different tokens from decode "
                                    "step %zu on; compare two runs of the same checkpoint "
                                    "(--allow-input-mismatch compares anyway)",
                                    a->fingerprint, a->path, b->fingerprint, b->path, i + 1);
            if (!c->opt->allow_input_mismatch)
                return ld_error_set(c->err, LD_E_INPUT,
                                    "different inputs: decode step %zu was fed token %d in %s and "
                                    "%d in %s (run the candidate with --follow, or "
                                    "--allow-input-mismatch compares anyway)",
                                    i + 1, (int)a->decoded[i], a->path, (int)b->decoded[i],
                                    b->path);
            r->input_mismatch = true;
            if ((st = ld_cmp_note(c, LD_NOTE_WARN, "decoded_mismatch", "decode step %zu was "
                                  "fed different tokens (allowed): %d in the reference, %d in "
                                  "the candidate; later steps compare different computations",
                                  i + 1, (int)a->decoded[i], (int)b->decoded[i])) != LD_OK)
                return st;
            break;
        }
    }
    for (size_t i = 0; i < c->opt->n_floors; i++) {
        const ld_floor *fl = c->opt->floors[i];
        if ((st = ld_cmp_note(c, LD_NOTE_INFO, "noise_floor", "%s candidates judged against the "
                              "noise floor %s: fail when the relative error exceeds %g x the "
                              "floor and some element is more than %llu ULP off; %zu probes "
                              "judged this way", ld_dtype_name(ld_floor_dtype(fl)),
                              ld_floor_label(fl), c->opt->floor_k,
                              (unsigned long long)c->opt->floor_ulp_cap,
                              r->n_floor_judged)) != LD_OK)
            return st;
    }
    if (c->floor_missing &&
        (st = ld_cmp_note(c, LD_NOTE_WARN, "floor_missing", "%zu probes of a calibrated dtype "
                          "have no noise-floor entry (the floor was measured over fewer steps "
                          "or other tags) and were judged by the policy",
                          c->floor_missing)) != LD_OK)
        return st;
    if (r->n_stats_only &&
        (st = ld_cmp_note(c, LD_NOTE_WARN, "stats_only", "%zu of %zu probes were compared by "
                          "their stats and first %d values only (no payload on one side): "
                          "their metrics are estimates; write both runs with --payload full "
                          "for exact ones", r->n_stats_only, r->n_compared,
                          LD_HEAD_COUNT)) != LD_OK)
        return st;
    if (a->dropped + b->dropped &&
        (st = ld_cmp_note(c, LD_NOTE_INFO, "map_dropped",
                          "the map dropped %llu reference and %llu "
                          "candidate records",
                          (unsigned long long)a->dropped, (unsigned long long)b->dropped)) != LD_OK)
        return st;
    return LD_OK;
}

ld_status ld_compare_run(const char *ref_path, const char *cand_path,
                         const ld_compare_options *opt, ld_compare_result **out, ld_error *err)
{
    *out = NULL;
    ld_compare_options defaults;
    if (!opt) {
        ld_compare_options_init(&defaults);
        opt = &defaults;
    }
    ctx c;
    memset(&c, 0, sizeof c);
    c.opt = opt;
    c.err = err;
    c.first_fail_ref = UINT64_MAX;
    c.res = calloc(1, sizeof *c.res);
    if (!c.res)
        return ld_error_set(err, LD_E_NOMEM, "out of memory");
    ld_compare_result *r = c.res;
    r->first_div = -1;
    r->culprit = -1;
    r->argmax_step = -1;
    r->fail_on = opt->fail_on;
    r->topk = opt->topk < 1 ? 1 : LD_MIN(opt->topk, 64);
    c.ref.name = "reference";
    c.cand.name = "candidate";
    c.ref.info = &r->ref;
    c.cand.info = &r->cand;
    ld_status st;
    if (!(r->policy_label = strdup(ld_policy_label(opt->policy)))) {
        st = ld_error_set(err, LD_E_NOMEM, "out of memory");
        goto done;
    }
    if ((st = ld_cmp_open_side(&c, &c.ref, ref_path)) != LD_OK ||
        (st = ld_cmp_open_side(&c, &c.cand, cand_path)) != LD_OK)
        goto done;
    if (r->ref.opened && r->cand.opened && (st = ld_cmp_check_headers(&c)) != LD_OK)
        goto done;
    if (r->ref.opened && (st = ld_cmp_blind_spots(&c)) != LD_OK)
        goto done;
    r->floor_k = opt->floor_k;
    r->floor_ulp_cap = opt->floor_ulp_cap;
    for (size_t i = 0; i < opt->n_floors && r->ref.opened; i++)
        if ((st = ld_floor_check_stream(opt->floors[i], &r->ref, err)) != LD_OK)
            goto done;
    if ((st = ld_cmp_stream_pairs(&c)) != LD_OK)
        goto done;
    st = finish_result(&c);
done:
    for (size_t i = 0; i < r->n_rows && c.aux; i++)
        ld_cmp_unpark(&c, c.aux[i].pending);
    free(c.aux);
    ld_cmp_index_free(&c.idx);
    ld_err_grid_free(&c.scratch);
    free(c.row_r);
    free(c.row_c);
    free(c.ref.chunk);
    free(c.cand.chunk);
    ld_reader_close(c.ref.rd);
    ld_reader_close(c.cand.rd);
    if (st != LD_OK) {
        ld_cmp_result_free(r); /* no baseline check attached yet */
        return st;
    }
    *out = r;
    return LD_OK;
}

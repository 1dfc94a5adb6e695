/* compare_rows.c — pairing the two streams' records by key into rows: metrics measured piece by
 * piece in lockstep (or from parked copies), verdicts, logits agreement per step. Reading a side
 * is compare_read.c; what is judged after the streams end is compare.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compare_core.h"
#include "floor.h"
#include "util.h"

/* Bytes of each payload measured at a time (whole rows: more when one row is larger). Two
 * readers' pieces of this size, not whole records, are what comparing costs in memory. */
#define PIECE_BYTES ((size_t)1 << 20)

static ld_status new_row(ctx *c, const ld_key *key, size_t *out)
{
    ld_compare_result *r = c->res;
    if (r->n_rows == c->cap_rows) {
        size_t ncap = c->cap_rows ? c->cap_rows * 2 : 256;
        ld_row *nr = realloc(r->rows, ncap * sizeof *nr);
        if (nr)
            r->rows = nr;
        aux *na = realloc(c->aux, ncap * sizeof *na);
        if (na)
            c->aux = na;
        if (!nr || !na)
            return ld_error_set(c->err, LD_E_NOMEM, "out of memory for %zu rows", ncap);
        c->cap_rows = ncap;
    }
    size_t i = r->n_rows;
    ld_row *row = &r->rows[i];
    memset(row, 0, sizeof *row);
    memset(&c->aux[i], 0, sizeof c->aux[i]);
    row->key = *key;
    row->ref_index = row->cand_index = UINT64_MAX;
    row->worst_input = -1;
    row->inputs_rel_l2 = NAN;
    row->amplification = NAN;
    row->floor_rel_l2 = NAN;
    row->floor_ratio = NAN;
    row->replay_why = "";
    row->local_rel_l2 = NAN;
    row->inherited_rel_l2 = NAN;
    row->local_budget = NAN;
    row->m.source = LD_SRC_NONE;
    r->n_rows++;
    if (!ld_cmp_index_put(&c->idx, r->rows, i))
        return ld_error_set(c->err, LD_E_NOMEM, "out of memory for the key index");
    *out = i;
    return LD_OK;
}

static void fill_side(ld_row *row, const view *v, bool is_ref)
{
    row->tag_id = v->tag_id;
    if (is_ref) {
        row->ref_index = v->index;
        row->ref_line = v->line;
        row->ref_dtype = v->dtype;
        row->ref_has_data = v->has_data;
        row->ref_crc32 = v->crc32;
        row->ref_stats = v->stats;
        row->pos0 = v->pos0;
        row->ndim = v->ndim;
        memcpy(row->shape, v->shape, sizeof row->shape);
    } else {
        row->cand_index = v->index;
        row->cand_line = v->line;
        row->cand_dtype = v->dtype;
        row->cand_has_data = v->has_data;
        row->cand_fed = v->fed;
        row->cand_crc32 = v->crc32;
        row->cand_stats = v->stats;
        row->cand_ndim = v->ndim;
        memcpy(row->cand_shape, v->shape, sizeof row->cand_shape);
        if (row->ref_index == UINT64_MAX) { /* until (unless) the reference's record arrives */
            row->pos0 = v->pos0;
            row->ndim = v->ndim;
            memcpy(row->shape, v->shape, sizeof row->shape);
        }
    }
}

static bool same_shape(const view *a, const view *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

ld_step_tokens *ld_cmp_step_slot(ctx *c, int step)
{
    ld_compare_result *r = c->res;
    if (step < 0 || step > 1000000)
        return NULL;
    if ((size_t)step >= r->n_steps) {
        size_t n = (size_t)step + 1;
        ld_step_tokens *ns = realloc(r->steps, n * sizeof *ns);
        if (!ns)
            return NULL;
        for (size_t i = r->n_steps; i < n; i++) {
            memset(&ns[i], 0, sizeof ns[i]);
            ns[i].step = (int)i;
            ns[i].first_top1_diff_row = -1;
        }
        r->steps = ns;
        r->n_steps = n;
    }
    return &r->steps[step];
}

/* Indices of the k largest finite values of row[0..n), best first, into top[0..k). */
static int topk_of(const float *row, size_t n, int k, uint32_t *top)
{
    int have = 0;
    for (size_t i = 0; i < n; i++) {
        float v = row[i];
        if (!isfinite(v))
            continue;
        if (have == k && v <= row[top[k - 1]])
            continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && row[top[j - 1]] < v) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = (uint32_t)i;
    }
    return have;
}

/* What measuring a pair found, before it goes into its row. */
typedef struct pair_eval {
    ld_tolerance tol;
    ld_metrics m;
    bool shape_mismatch, reshaped, have_grid;
    /* logits: top-k agreement over the rows */
    bool logits;
    uint64_t rows, top1_agree;
    double overlap_sum;
    int64_t first_diff_row;
    bool last_row_tokens;          /* the last row had finite values on both sides */
    int32_t ref_token, cand_token; /* its argmax */
} pair_eval;

/* Top-k agreement of one row of a [T,V] logits pair (widened rows in c->row_r, c->row_c). */
static void logits_row(ctx *c, pair_eval *pe, size_t V, uint64_t t, uint64_t T)
{
    int k = c->opt->topk < 1 ? 1 : LD_MIN(c->opt->topk, 64);
    uint32_t tr[64], tc[64];
    int nr = topk_of(c->row_r, V, k, tr), nc = topk_of(c->row_c, V, k, tc);
    int common = 0;
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nc; j++)
            common += tr[i] == tc[j];
    pe->overlap_sum += (double)common / k;
    bool agree = nr > 0 && nc > 0 && tr[0] == tc[0];
    pe->top1_agree += agree;
    if (!agree && pe->first_diff_row < 0)
        pe->first_diff_row = (int64_t)t;
    if (t + 1 == T && nr > 0 && nc > 0) {
        pe->last_row_tokens = true;
        pe->ref_token = (int32_t)tr[0];
        pe->cand_token = (int32_t)tc[0];
    }
}

/* The step's logits agreement from a measured pair. */
static void logits_commit(ctx *c, int step, const pair_eval *pe)
{
    ld_step_tokens *st = ld_cmp_step_slot(c, step);
    if (!st)
        return;
    st->top1_agree += pe->top1_agree;
    if (st->first_top1_diff_row < 0)
        st->first_top1_diff_row = pe->first_diff_row;
    if (pe->last_row_tokens) {
        /* The step's token comes from its last row; the end record, when present, wins. */
        if (!st->have_ref) {
            st->ref_token = pe->ref_token;
            st->have_ref = true;
        }
        if (!st->have_cand) {
            st->cand_token = pe->cand_token;
            st->have_cand = true;
        }
    }
    st->logits_rows = pe->rows;
    st->topk_overlap = pe->rows ? pe->overlap_sum / (double)pe->rows : 0;
}

/* The next n bytes of a live side's payload, into its piece buffer (grown as needed): *p points
 * at them, or *gone is set when the stream ended inside the record. */
static ld_status read_piece(ctx *c, side *s, size_t n, const unsigned char **p, side **gone)
{
    if (n > s->chunk_cap) {
        unsigned char *b = realloc(s->chunk, n);
        if (!b)
            return ld_error_set(c->err, LD_E_NOMEM, "cannot allocate %zu bytes for a payload piece",
                                n);
        s->chunk = b;
        s->chunk_cap = n;
    }
    bool lost = false;
    ld_status st = ld_cmp_read_live(c, s, s->chunk, n, &lost);
    if (st == LD_OK && lost)
        *gone = s;
    else if (st == LD_OK)
        *p = s->chunk;
    return st;
}

/* Measures both payloads of a pair, whole rows at a time: a payload in memory is read where it
 * lies, a live one from its reader into its side's piece buffer, so both streams advance in
 * lockstep and neither record is ever whole in memory. *gone: a live side's stream ended inside
 * its record (nothing measured; that side is done). */
static ld_status measure_payloads(ctx *c, const view *rv, side *rs, const view *cv, side *cs,
                                  pair_eval *pe, side **gone)
{
    ld_cmp_tensor rt = {rv->data, rv->data_dtype, rv->ndim, {0}, rv->numel};
    ld_cmp_tensor ct = {cv->data, cv->data_dtype, rv->ndim, {0}, cv->numel};
    memcpy(rt.shape, rv->shape, sizeof rt.shape);
    memcpy(ct.shape, rv->shape, sizeof ct.shape); /* a reshaped record reads in ref's shape */
    ld_metrics_acc *m;
    ld_error e;
    ld_status st = ld_metrics_begin(&m, &rt, &ct, cv->dtype, &pe->tol, &c->scratch, &e);
    if (st != LD_OK)
        return ld_error_set(c->err, st, "%s vs %s: line %llu / %llu: %s", c->res->ref.path,
                            c->res->cand.path, (unsigned long long)rv->line,
                            (unsigned long long)cv->line, e.msg);
    size_t rsz = ld_dtype_size(rv->data_dtype), csz = ld_dtype_size(cv->data_dtype);
    uint64_t row = ld_metrics_row_len(m), rows = row ? rv->numel / row : 0;
    uint64_t per = row ? LD_MAX((uint64_t)1, PIECE_BYTES / (row * LD_MAX(rsz, csz))) : 0;
    /* logits rows for top-k: [T, V] */
    pe->logits = rv->tag_id == LD_TAG_LOGITS && rv->ndim == 2 && rv->shape[1] > 0 &&
                 rv->shape[1] <= UINT32_MAX;
    size_t V = pe->logits ? (size_t)rv->shape[1] : 0;
    pe->first_diff_row = -1;
    if (pe->logits && V > c->row_cap) {
        float *a = realloc(c->row_r, V * sizeof *a);
        if (a)
            c->row_r = a;
        float *b = realloc(c->row_c, V * sizeof *b);
        if (b)
            c->row_c = b;
        if (!a || !b) {
            ld_metrics_abort(m);
            return ld_error_set(c->err, LD_E_NOMEM, "out of memory for a logits row");
        }
        c->row_cap = V;
    }
    for (uint64_t done = 0; done < rows && st == LD_OK; done += per) {
        uint64_t k = LD_MIN(per, rows - done), n = k * row;
        const unsigned char *rp = rv->data ? (const unsigned char *)rv->data + done * row * rsz
                                           : NULL;
        const unsigned char *cp = cv->data ? (const unsigned char *)cv->data + done * row * csz
                                           : NULL;
        if (rs && ((st = read_piece(c, rs, (size_t)n * rsz, &rp, gone)) != LD_OK || *gone))
            break;
        if (cs && ((st = read_piece(c, cs, (size_t)n * csz, &cp, gone)) != LD_OK || *gone))
            break;
        if ((st = ld_metrics_feed(m, rp, cp, n, &e)) != LD_OK) {
            st = ld_error_set(c->err, st, "%s vs %s: line %llu / %llu: %s", c->res->ref.path,
                              c->res->cand.path, (unsigned long long)rv->line,
                              (unsigned long long)cv->line, e.msg);
            break;
        }
        for (uint64_t t = 0; pe->logits && t < k; t++) {
            ld_cmp_widen(rp, rv->data_dtype, t * V, V, c->row_r);
            ld_cmp_widen(cp, cv->data_dtype, t * V, V, c->row_c);
            logits_row(c, pe, V, done + t, rows);
        }
    }
    if (st != LD_OK || *gone) {
        ld_metrics_abort(m);
        return st;
    }
    pe->rows = pe->logits ? rows : 0;
    if ((st = ld_metrics_end(m, &pe->m, &e)) != LD_OK)
        return ld_error_set(c->err, st, "%s vs %s: %s", c->res->ref.path, c->res->cand.path,
                            e.msg);
    pe->have_grid = c->scratch.tokens > 0;
    return LD_OK;
}

/* Reads and measures a matched pair. rs, cs: the sides whose current records rv, cv are (NULL for
 * a parked copy). Every current record involved is settled (read to its end, checked, counted)
 * when it returns LD_OK without *gone. */
static ld_status measure_pair(ctx *c, const view *rv, side *rs, const view *cv, side *cs,
                              pair_eval *pe, side **gone)
{
    memset(pe, 0, sizeof *pe);
    *gone = NULL;
    ld_status st;
    bool shapes_ok = same_shape(rv, cv);
    if (!shapes_ok && (rv->reshape || cv->reshape) && rv->numel == cv->numel) {
        pe->reshaped = true;
        shapes_ok = true;
    }
    pe->shape_mismatch = !shapes_ok;
    if (shapes_ok)
        ld_policy_resolve(c->opt->policy, &rv->key, cv->dtype, &pe->tol);
    if (shapes_ok && rv->has_data && cv->has_data &&
        (st = measure_payloads(c, rv, rs && rs->cur.live ? rs : NULL, cv,
                               cs && cs->cur.live ? cs : NULL, pe, gone)) != LD_OK)
        return st;
    if (*gone)
        return LD_OK;
    /* What was not read (a shape mismatch, a stats-only partner) is read and checked now: a
     * record counts only once it is known to be complete. */
    side *sides[2] = {rs, cs};
    for (int i = 0; i < 2; i++) {
        bool lost = false;
        if (sides[i] && (st = ld_cmp_settle(c, sides[i], &lost)) != LD_OK)
            return st;
        if (lost) {
            *gone = sides[i];
            return LD_OK;
        }
    }
    if (shapes_ok && !(rv->has_data && cv->has_data))
        ld_metrics_from_stats(&rv->stats, rv->head, rv->n_head, &cv->stats, cv->head, cv->n_head,
                              rv->numel, cv->dtype, &pe->tol, &pe->m);
    return LD_OK;
}

/* The noise-floor entry for key when a floor of the candidate's dtype was given, else NULL. */
static const ld_floor_entry *floor_entry(const ctx *c, ld_dtype cand, const ld_key *key,
                                         bool *have_dtype)
{
    for (size_t i = 0; i < c->opt->n_floors; i++)
        if (ld_floor_dtype(c->opt->floors[i]) == cand) {
            *have_dtype = true;
            return ld_floor_find(c->opt->floors[i], key);
        }
    return NULL;
}

/* Whether a failing row comes before the earliest failing row so far: in execution order when
 * both tags are known (a reference out of that order is shown in it: compare.c), else in the
 * reference's order. */
static bool earliest_fail(const ctx *c, const ld_row *row)
{
    if (c->first_fail_ref == UINT64_MAX)
        return true;
    if (row->tag_id != LD_TAG_UNKNOWN && ld_tag_from_name(c->first_fail_key.tag) != LD_TAG_UNKNOWN)
        return ld_key_cmp_exec(&row->key, &c->first_fail_key) < 0;
    return row->ref_index < c->first_fail_ref;
}

/* Puts a measured pair into its row and judges it. */
static void commit_pair(ctx *c, size_t ri, const view *rv, const view *cv, pair_eval *pe)
{
    ld_row *row = &c->res->rows[ri];
    fill_side(row, rv, true);
    fill_side(row, cv, false);
    c->aux[ri].ref_seen = c->aux[ri].cand_seen = true;
    if (pe->shape_mismatch) {
        row->state = LD_ROW_SHAPE_MISMATCH;
        return;
    }
    row->reshaped = pe->reshaped;
    row->state = LD_ROW_COMPARED;
    row->tol = pe->tol;
    row->m = pe->m;
    if (pe->logits)
        logits_commit(c, rv->key.step, pe);
    row->fail_mask = ld_judge(&row->m, &row->tol);
    /* A calibrated noise floor for the candidate's dtype replaces the policy's thresholds; NaN/Inf
     * disagreement fails either way. */
    bool floor_dtype = false;
    const ld_floor_entry *fe = floor_entry(c, cv->dtype, &row->key, &floor_dtype);
    c->floor_missing += floor_dtype && !fe;
    if (fe && row->m.source == LD_SRC_FULL) {
        row->floor_rel_l2 = fe->rel_l2;
        row->floor_ratio = ld_floor_ratio(fe, &row->m);
        row->fail_mask &= LD_FAIL_NONFINITE;
        if (!ld_floor_pass(fe, &row->m, c->opt->floor_k, c->opt->floor_ulp_cap))
            row->fail_mask |= LD_FAIL_FLOOR;
        c->res->n_floor_judged++;
    }
    row->pass = row->fail_mask == 0;
    if (!row->pass && earliest_fail(c, row)) {
        c->first_fail_ref = row->ref_index;
        c->first_fail_key = row->key;
        /* Keep this pair's grid for the heat strip: swap buffers rather than copy. */
        ld_err_grid keep = c->res->first_grid;
        if (pe->have_grid) {
            c->res->first_grid = c->scratch;
            c->scratch = keep;
        } else {
            c->res->first_grid.tokens = c->res->first_grid.heads = 0;
        }
    }
}

/* A record of one side arrives: pair it with its waiting partner, or make it wait. */
static ld_status take(ctx *c, side *s, bool is_ref)
{
    const view *v = &s->cur;
    side *other = is_ref ? &c->cand : &c->ref;
    ptrdiff_t found = ld_cmp_index_find(&c->idx, c->res->rows, &v->key);
    ld_status st;
    bool lost = false;
    if (found >= 0 && (is_ref ? c->aux[found].ref_seen : c->aux[found].cand_seen)) {
        /* a second record of a key: an input error, once the record proves complete */
        if ((st = ld_cmp_settle(c, s, &lost)) != LD_OK || lost)
            return st;
        char kb[LD_TAG_NAME_MAX + 48];
        return ld_error_set(c->err, LD_E_INPUT, "%s: line %llu: key %s appears twice",
                            s->info->path, (unsigned long long)v->line,
                            ld_cmp_key_text(&v->key, kb, sizeof kb));
    }
    if (found >= 0 && c->aux[found].pending) { /* the partner waited for us */
        view *p = c->aux[found].pending;
        pair_eval pe;
        side *gone;
        st = is_ref ? measure_pair(c, v, s, p, NULL, &pe, &gone)
                    : measure_pair(c, p, NULL, v, s, &pe, &gone);
        if (st != LD_OK || gone) /* gone: this record never arrived; the partner waits on */
            return st;
        c->aux[found].pending = NULL;
        if (is_ref)
            commit_pair(c, (size_t)found, v, p, &pe);
        else
            commit_pair(c, (size_t)found, p, v, &pe);
        ld_cmp_unpark(c, p);
        return LD_OK;
    }
    /* Wait for the partner only while the other stream can still bring it: it has not ended,
     * and its header's filter admits the key (a run with --tags or --steps holds no other keys;
     * a map renames keys, so the filter's names are not ours then). */
    view *parked = NULL;
    bool never = other->done || (!c->opt->map && !ld_reader_wants(other->rd, v->key.step,
                                                                   v->key.layer, v->key.tag));
    st = never ? ld_cmp_settle(c, s, &lost) : ld_cmp_park(c, s, &parked, &lost);
    if (st != LD_OK || lost)
        return st;
    size_t ri;
    if (found < 0) {
        if ((st = new_row(c, &v->key, &ri)) != LD_OK) {
            ld_cmp_unpark(c, parked);
            return st;
        }
    } else {
        ri = (size_t)found;
    }
    fill_side(&c->res->rows[ri], parked ? parked : v, is_ref);
    if (is_ref)
        c->aux[ri].ref_seen = true;
    else
        c->aux[ri].cand_seen = true;
    c->aux[ri].pending = parked;
    return LD_OK;
}

/* Execution order of two keys when both are in our tag table; 0 when it cannot tell. */
static int exec_order(const view *a, const view *b)
{
    if (a->tag_id == LD_TAG_UNKNOWN || b->tag_id == LD_TAG_UNKNOWN)
        return 0;
    return ld_key_cmp_exec(&a->key, &b->key);
}

ld_status ld_cmp_stream_pairs(ctx *c)
{
    ld_status st;
    if ((st = ld_cmp_advance(c, &c->ref)) != LD_OK || (st = ld_cmp_advance(c, &c->cand)) != LD_OK)
        return st;
    while (c->ref.have || c->cand.have) {
        if (c->ref.have && c->cand.have && ld_cmp_key_eq(&c->ref.cur.key, &c->cand.cur.key)) {
            ptrdiff_t found = ld_cmp_index_find(&c->idx, c->res->rows, &c->ref.cur.key);
            if (found >= 0) { /* a duplicate: let take() report it */
                if ((st = take(c, &c->ref, true)) != LD_OK)
                    return st;
                if ((st = take(c, &c->cand, false)) != LD_OK)
                    return st;
            } else { /* the common case: both streams at the same key, read in lockstep */
                pair_eval pe;
                side *gone;
                size_t ri;
                if ((st = measure_pair(c, &c->ref.cur, &c->ref, &c->cand.cur, &c->cand, &pe,
                                       &gone)) != LD_OK)
                    return st;
                if (gone) /* that stream ended inside the record: the other's record is alone */
                    continue;
                if ((st = new_row(c, &c->ref.cur.key, &ri)) != LD_OK)
                    return st;
                commit_pair(c, ri, &c->ref.cur, &c->cand.cur, &pe);
            }
            if ((st = ld_cmp_advance(c, &c->ref)) != LD_OK ||
                (st = ld_cmp_advance(c, &c->cand)) != LD_OK)
                return st;
            continue;
        }
        int order = (c->ref.have && c->cand.have) ? exec_order(&c->ref.cur, &c->cand.cur) : 0;
        bool adv_ref = c->ref.have && (!c->cand.have || order <= 0);
        bool adv_cand = c->cand.have && (!c->ref.have || order >= 0);
        if (adv_ref) {
            if ((st = take(c, &c->ref, true)) != LD_OK ||
                (st = ld_cmp_advance(c, &c->ref)) != LD_OK)
                return st;
        }
        if (adv_cand) {
            if ((st = take(c, &c->cand, false)) != LD_OK ||
                (st = ld_cmp_advance(c, &c->cand)) != LD_OK)
                return st;
        }
    }
    /* Whoever still waits has no partner. */
    for (size_t i = 0; i < c->res->n_rows; i++) {
        ld_cmp_unpark(c, c->aux[i].pending);
        c->aux[i].pending = NULL;
    }
    return LD_OK;
}

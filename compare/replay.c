/* replay.c — op-local error attribution (replay.h): a second pass over the candidate stream (and
 * the reference stream in step with it) that keeps the candidate tensors later ops read, reruns
 * each op of reference/ops.h on them, and measures the candidate's output against that. */
#include "replay.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "util.h"

/* A tensor kept because a later op reads it, widened to f32. */
typedef struct held {
    ld_key key;
    ld_tag tag;
    int64_t pos0;
    size_t T;        /* rows */
    size_t numel;
    float *data;
} held;

typedef struct rp {
    ld_compare_result *r;
    const ld_model *m;
    const ld_config *c;
    const ld_replay_options *opt;
    ld_error *err;
    held *cand, *ref;          /* kept candidate inputs; reference outputs not yet consumed */
    size_t n_cand, cap_cand, n_ref, cap_ref;
    size_t cap_pos;            /* KV positions: prompt + decode steps */
    float *kv[2];              /* [layers][Hkv][cap_pos][D]: the candidate's k_rope and v_proj */
    uint8_t *fill[2];          /* [layers][cap_pos]: which positions the candidate wrote */
    float *y;                  /* scratch: the replayed output */
    size_t scratch;
} rp;

void ld_replay_options_init(ld_replay_options *o)
{
    memset(o, 0, sizeof *o);
    o->k = LD_FLOOR_K_DEFAULT;
    o->ulp_cap = LD_FLOOR_ULP_CAP_DEFAULT;
}

static bool same_key(const ld_key *a, const ld_key *b)
{
    return a->step == b->step && a->layer == b->layer && !strcmp(a->tag, b->tag);
}

static void held_free(held *h, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free(h[i].data);
    *n = 0;
}

static held *held_find(held *h, size_t n, int step, int layer, ld_tag tag)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].key.step == step && h[i].key.layer == layer && h[i].tag == tag)
            return &h[i];
    return NULL;
}

/* Keeps a copy of a probe's data (f32) in list; LD_E_NOMEM on failure. */
static ld_status held_put(rp *R, held **list, size_t *n, size_t *cap, const ld_probe *p)
{
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 64;
        held *nl = realloc(*list, nc * sizeof *nl);
        if (!nl)
            return ld_error_set(R->err, LD_E_NOMEM, "replay: out of memory");
        *list = nl;
        *cap = nc;
    }
    held *h = &(*list)[*n];
    memset(h, 0, sizeof *h);
    h->key.step = p->step;
    h->key.layer = p->layer;
    snprintf(h->key.tag, sizeof h->key.tag, "%s", p->tag);
    h->tag = p->tag_id;
    h->pos0 = p->pos0;
    h->T = p->ndim ? (size_t)p->shape[0] : 1;
    h->numel = (size_t)p->numel;
    h->data = malloc((h->numel ? h->numel : 1) * sizeof *h->data);
    if (!h->data)
        return ld_error_set(R->err, LD_E_NOMEM, "replay: cannot hold %zu values", h->numel);
    ld_error e;
    if (ld_probe_to_f32(p, h->data, &e) != LD_OK) {
        free(h->data);
        return ld_error_set(R->err, e.code, "replay: %s", e.msg);
    }
    (*n)++;
    return LD_OK;
}

/* Drops what no later op of a record at (step, layer) can read: earlier steps, and layers before
 * the previous one (the previous layer's layer_out is this layer's input). */
static void evict(held *h, size_t *n, int step, int layer)
{
    size_t w = 0;
    for (size_t i = 0; i < *n; i++) {
        bool old = h[i].key.step < step ||
                   (h[i].key.step == step && layer >= 0 && h[i].key.layer < layer - 1);
        if (old)
            free(h[i].data);
        else
            h[w++] = h[i];
    }
    *n = w;
}

static ld_status ensure_scratch(rp *R, size_t n)
{
    if (n <= R->scratch)
        return LD_OK;
    float *y = realloc(R->y, n * sizeof *y);
    if (!y)
        return ld_error_set(R->err, LD_E_NOMEM, "replay: out of memory");
    R->y = y;
    R->scratch = n;
    return LD_OK;
}

/* y = op(candidate inputs) for the probe p; *why stays NULL when replayed. Which tensors the op
 * reads is the op graph's (layerdiff/tags.h); what stays here per tag is the op itself. */
static ld_status replay_op(rp *R, const ld_probe *p, float *y, const char **why)
{
    const ld_config *c = R->c;
    const ld_numerics *nx = &ld_numerics_reference;
    size_t T = p->ndim ? (size_t)p->shape[0] : 1;
    size_t H = (size_t)c->hidden_size, D = (size_t)c->head_dim;
    size_t Hq = (size_t)c->num_heads, Hkv = (size_t)c->num_kv_heads, I = (size_t)c->intermediate_size;
    int s = p->step, l = ld_tag_per_layer(p->tag_id) ? p->layer : LD_NO_LAYER;
    const ld_layer_weights *W = l >= 0 && l < c->num_layers ? &R->m->layers[l] : NULL;
    ld_error *err = R->err;
    *why = NULL;
    if (ld_tag_per_layer(p->tag_id) && !W) {
        *why = "its layer is not in the model";
        return LD_OK;
    }
    /* The candidate's inputs of this step, in the table's order; attention's KV inputs are read
     * from the history kv_record keeps instead. */
    const float *in[LD_TAG_MAX_INPUTS] = {NULL};
    size_t n_in = 0;
    for (const ld_tag_input *x = ld_tag_inputs(p->tag_id); x->kind != LD_INPUT_END; x++) {
        if (x->kind == LD_INPUT_KV)
            continue;
        int il;
        ld_tag it = ld_tag_input_at(x, l, c->num_layers, &il);
        const held *h = held_find(R->cand, R->n_cand, s, il, it);
        if (!h || h->T != T) {
            *why = "its inputs are not in the candidate stream with payloads";
            return LD_OK;
        }
        in[n_in++] = h->data;
    }
    const float *a = in[0], *b = in[1];
    switch (p->tag_id) {
    case LD_TAG_EMBED: {
        const ld_stream_info *sin = &R->r->cand;
        int32_t *ids = malloc(T * sizeof *ids);
        if (!ids)
            return ld_error_set(err, LD_E_NOMEM, "replay: out of memory");
        bool ok = true;
        for (size_t t = 0; t < T; t++) {
            int64_t pos = p->pos0 + (int64_t)t;
            int32_t id = -1;
            if (s == 0 && (size_t)pos < sin->n_tokens)
                id = sin->tokens[pos];
            else if (s > 0 && (size_t)(s - 1) < sin->n_decoded)
                id = sin->decoded[s - 1];
            ok &= id >= 0 && id < c->vocab_size;
            ids[t] = id;
        }
        if (ok)
            ld_ref_embed(&R->m->embed, ids, T, y, nx);
        else
            *why = "its token ids are not known from the stream";
        free(ids);
        return LD_OK;
    }
    case LD_TAG_ATTN_NORM:
        ld_ref_rmsnorm(a, &W->attn_norm, T, H, c->rms_norm_eps, false, y, nx);
        return LD_OK;
    case LD_TAG_Q_PROJ: return ld_ref_matmul(a, &W->wq, T, y, nx, err);
    case LD_TAG_K_PROJ: return ld_ref_matmul(a, &W->wk, T, y, nx, err);
    case LD_TAG_V_PROJ: return ld_ref_matmul(a, &W->wv, T, y, nx, err);
    case LD_TAG_Q_NORM:
        ld_ref_head_rmsnorm(a, &W->q_norm, T * Hq, D, c->rms_norm_eps, 0, false, y, nx);
        return LD_OK;
    case LD_TAG_K_NORM:
        ld_ref_head_rmsnorm(a, &W->k_norm, T * Hkv, D, c->rms_norm_eps, 0, false, y, nx);
        return LD_OK;
    case LD_TAG_Q_ROPE: return ld_ref_rope(a, T, Hq, D, p->pos0, c->rope_theta, false, y, nx, err);
    case LD_TAG_K_ROPE: return ld_ref_rope(a, T, Hkv, D, p->pos0, c->rope_theta, false, y, nx, err);
    case LD_TAG_ATTN_OUT: {
        size_t n_kv = (size_t)p->pos0 + T;
        if (p->pos0 < 0 || n_kv > R->cap_pos) {
            *why = "its positions lie outside the stream's prompt and decode steps";
            return LD_OK;
        }
        for (size_t pos = 0; pos < n_kv; pos++)
            if (!R->fill[0][(size_t)l * R->cap_pos + pos] ||
                !R->fill[1][(size_t)l * R->cap_pos + pos]) {
                *why = "k_rope or v_proj of an earlier position is not in the candidate stream";
                return LD_OK;
            }
        ld_attn_params ap = {.scale = 1.0 / sqrt((double)D), .causal = true, .gqa = LD_GQA_DIV};
        size_t off = (size_t)l * Hkv * R->cap_pos * D;
        return ld_ref_attention(a, R->kv[0] + off, R->kv[1] + off, R->cap_pos, T, Hq, Hkv, D,
                                p->pos0, n_kv, &ap, y, nx, err);
    }
    case LD_TAG_O_PROJ: return ld_ref_matmul(a, &W->wo, T, y, nx, err);
    case LD_TAG_ATTN_RESIDUAL:
    case LD_TAG_LAYER_OUT: ld_ref_add(a, b, T * H, false, y, nx); return LD_OK;
    case LD_TAG_MLP_NORM:
        ld_ref_rmsnorm(a, &W->mlp_norm, T, H, c->rms_norm_eps, false, y, nx);
        return LD_OK;
    case LD_TAG_GATE_PROJ: return ld_ref_matmul(a, &W->wg, T, y, nx, err);
    case LD_TAG_UP_PROJ: return ld_ref_matmul(a, &W->wu, T, y, nx, err);
    case LD_TAG_MLP_ACT: ld_ref_silu_mul(a, b, T * I, false, y, nx); return LD_OK;
    case LD_TAG_DOWN_PROJ: return ld_ref_matmul(a, &W->wd, T, y, nx, err);
    case LD_TAG_FINAL_NORM:
        ld_ref_rmsnorm(a, &R->m->final_norm, T, H, c->rms_norm_eps, false, y, nx);
        return LD_OK;
    case LD_TAG_LOGITS: return ld_ref_matmul(a, &R->m->lm_head, T, y, nx, err);
    default:
        *why = "it is not a tag of the model";
        return LD_OK;
    }
}

/* Which half of attention's KV history t fills: attn_out's LD_INPUT_KV inputs in the table's
 * order, keys then values as ld_ref_attention takes them; -1 for the other tags. */
static int kv_half(ld_tag t)
{
    int half = 0;
    for (const ld_tag_input *x = ld_tag_inputs(LD_TAG_ATTN_OUT); x->kind != LD_INPUT_END; x++)
        if (x->kind == LD_INPUT_KV && half < 2) {
            if (x->tag == t)
                return half;
            half++;
        }
    return -1;
}

/* Copies the candidate's k_rope / v_proj rows (half 0 / 1) into the KV history of their layer. */
static void kv_record(rp *R, const held *h, int half)
{
    const ld_config *c = R->c;
    size_t Hkv = (size_t)c->num_kv_heads, D = (size_t)c->head_dim;
    if (h->key.layer < 0 || h->key.layer >= c->num_layers || h->numel != h->T * Hkv * D)
        return;
    float *dst = R->kv[half] + (size_t)h->key.layer * Hkv * R->cap_pos * D;
    uint8_t *fill = R->fill[half] + (size_t)h->key.layer * R->cap_pos;
    for (size_t t = 0; t < h->T; t++) {
        int64_t pos = h->pos0 + (int64_t)t;
        if (pos < 0 || (size_t)pos >= R->cap_pos)
            continue;
        for (size_t j = 0; j < Hkv; j++)
            memcpy(dst + (j * R->cap_pos + (size_t)pos) * D, h->data + (t * Hkv + j) * D,
                   D * sizeof(float));
        fill[pos] = 1;
    }
}

/* The budget of a row: k x the calibrated local floor of its key, else the dtype's default. */
static double budget_of(const rp *R, const ld_row *row)
{
    for (size_t i = 0; i < R->opt->n_floors; i++) {
        if (ld_floor_dtype(R->opt->floors[i]) != row->cand_dtype)
            continue;
        const ld_floor_entry *e = ld_floor_find(R->opt->floors[i], &row->key);
        if (e && !isnan(e->local_rel_l2))
            return R->opt->k * e->local_rel_l2;
    }
    switch (row->cand_dtype) {
    case LD_BF16: return LD_LOCAL_BUDGET_BF16;
    case LD_F16: return LD_LOCAL_BUDGET_F16;
    default: return LD_LOCAL_BUDGET_F32;
    }
}

/* ||a - b|| / ||b|| over n values, in double (NaN when anything is non-finite). */
static double rel_l2(const float *a, const float *b, size_t n)
{
    double d2 = 0, b2 = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        d2 += d * d;
        b2 += (double)b[i] * (double)b[i];
    }
    if (b2 == 0)
        return d2 == 0 ? 0 : INFINITY;
    return sqrt(d2 / b2);
}

/* The reference's output for key, read in step with the candidate (NULL when absent). */
static ld_status ref_output(rp *R, ld_reader *rd, bool *ref_done, const ld_key *key, const held **out)
{
    *out = NULL;
    for (;;) {
        for (size_t i = 0; i < R->n_ref; i++)
            if (same_key(&R->ref[i].key, key)) {
                *out = &R->ref[i];
                return LD_OK;
            }
        if (*ref_done)
            return LD_OK;
        const ld_probe *p;
        ld_error e;
        ld_status st = ld_reader_next(rd, &p, &e);
        if (st == LD_E_TRUNCATED || (st == LD_OK && !p)) {
            *ref_done = true;
            continue;
        }
        if (st != LD_OK)
            return ld_error_set(R->err, st, "replay: %s", e.msg);
        if (!p->has_data)
            continue;
        /* Keep the window small: reference outputs of finished steps are of no further use. */
        size_t w = 0;
        for (size_t i = 0; i < R->n_ref; i++) {
            if (R->ref[i].key.step < key->step)
                free(R->ref[i].data);
            else
                R->ref[w++] = R->ref[i];
        }
        R->n_ref = w;
        if ((st = held_put(R, &R->ref, &R->n_ref, &R->cap_ref, p)) != LD_OK)
            return st;
    }
}

static ld_status one_probe(rp *R, const ld_probe *p, ld_reader *ref_rd, bool *ref_done)
{
    ld_key key = {.step = p->step, .layer = p->layer};
    snprintf(key.tag, sizeof key.tag, "%s", p->tag);
    ptrdiff_t ri = ld_compare_find(R->r, &key);
    ld_row *row = ri >= 0 ? &R->r->rows[ri] : NULL;
    if (ld_tag_per_layer(p->tag_id))
        evict(R->cand, &R->n_cand, p->step, p->layer);
    ld_status st;
    if (!p->has_data) {
        if (row)
            row->replay_why = "the candidate record carries no payload";
        return LD_OK;
    }
    if ((st = ensure_scratch(R, (size_t)p->numel)) != LD_OK)
        return st;
    const char *why = NULL;
    if ((st = replay_op(R, p, R->y, &why)) != LD_OK)
        return st;
    if (row && row->state == LD_ROW_COMPARED && !why) {
        ld_cmp_tensor yt = {R->y, LD_F32, p->ndim, {0}, p->numel};
        memcpy(yt.shape, p->shape, sizeof yt.shape);
        ld_cmp_tensor ct = {p->data, p->data_dtype, p->ndim, {0}, p->numel};
        memcpy(ct.shape, p->shape, sizeof ct.shape);
        ld_metrics lm;
        ld_error e;
        if ((st = ld_metrics_compute(&yt, &ct, p->dtype, &row->tol, &lm, NULL, &e)) != LD_OK)
            return ld_error_set(R->err, st, "replay: %s", e.msg);
        row->replayed = true;
        row->replay_why = "";
        row->local_rel_l2 = lm.rel_l2;
        row->local_ulp_max = lm.ulp_max;
        row->local_budget = budget_of(R, row);
        row->local_over = lm.nonfinite_new > 0 ||
                          (!(lm.rel_l2 <= row->local_budget) && lm.ulp_max > R->opt->ulp_cap);
        const held *rh;
        if ((st = ref_output(R, ref_rd, ref_done, &key, &rh)) != LD_OK)
            return st;
        if (rh && rh->numel == (size_t)p->numel)
            row->inherited_rel_l2 = rel_l2(R->y, rh->data, rh->numel);
        R->r->n_replayed++;
    } else if (row && why) {
        row->replay_why = why;
    }
    /* Keep the candidate's tensor for the ops that read it. */
    if (p->tag_id != LD_TAG_LOGITS && p->tag_id != LD_TAG_UNKNOWN) {
        if ((st = held_put(R, &R->cand, &R->n_cand, &R->cap_cand, p)) != LD_OK)
            return st;
        int half = kv_half(p->tag_id);
        if (half >= 0)
            kv_record(R, &R->cand[R->n_cand - 1], half);
    }
    return LD_OK;
}

ld_status ld_replay_run(ld_compare_result *r, const char *ref_path, const char *cand_path,
                        const ld_model *m, const ld_replay_options *opt, ld_error *err)
{
    ld_replay_options defaults;
    if (!opt) {
        ld_replay_options_init(&defaults);
        opt = &defaults;
    }
    if (r->ref.fingerprint && r->ref.fingerprint[0] && strcmp(r->ref.fingerprint, m->fingerprint))
        return ld_error_set(err, LD_E_INPUT,
                            "--model: the checkpoint's weights (fingerprint %s) are not the ones "
                            "the reference stream ran (%s)",
                            m->fingerprint, r->ref.fingerprint);
    rp R = {.r = r, .m = m, .c = &m->cfg, .opt = opt, .err = err};
    const ld_config *c = R.c;
    R.cap_pos = r->cand.n_tokens + (size_t)(r->cand.decode_steps > 0 ? r->cand.decode_steps : 0);
    size_t kv;
    ld_status st = LD_OK;
    if (!ld_mul_size((size_t)c->num_layers * (size_t)c->num_kv_heads * (size_t)c->head_dim,
                     R.cap_pos ? R.cap_pos : 1, &kv))
        return ld_error_set(err, LD_E_INPUT, "replay: KV history size overflows");
    for (int i = 0; i < 2; i++) {
        R.kv[i] = calloc(kv, sizeof(float));
        R.fill[i] = calloc((size_t)c->num_layers * (R.cap_pos ? R.cap_pos : 1), 1);
    }
    ld_reader *crd = NULL, *rrd = NULL;
    if (!R.kv[0] || !R.kv[1] || !R.fill[0] || !R.fill[1]) {
        st = ld_error_set(err, LD_E_NOMEM, "replay: cannot allocate the KV history");
        goto done;
    }
    if ((st = ld_reader_open(&crd, cand_path, NULL, err)) != LD_OK ||
        (st = ld_reader_open(&rrd, ref_path, NULL, err)) != LD_OK)
        goto done;
    bool ref_done = false;
    for (;;) {
        const ld_probe *p;
        ld_error e;
        st = ld_reader_next(crd, &p, &e);
        if (st == LD_E_TRUNCATED || (st == LD_OK && !p)) {
            st = LD_OK;
            break;
        }
        if (st != LD_OK) {
            ld_error_set(err, st, "replay: %s", e.msg);
            goto done;
        }
        if ((st = one_probe(&R, p, rrd, &ref_done)) != LD_OK)
            goto done;
    }
    r->replay_ran = true;
    r->culprit = -1;
    r->n_culprits = 0;
    for (size_t i = 0; i < r->n_rows; i++)
        if (r->rows[i].replayed && r->rows[i].local_over) {
            if (r->culprit < 0)
                r->culprit = (ptrdiff_t)i;
            r->n_culprits++;
        }
done:
    ld_reader_close(crd);
    ld_reader_close(rrd);
    held_free(R.cand, &R.n_cand);
    held_free(R.ref, &R.n_ref);
    free(R.cand);
    free(R.ref);
    for (int i = 0; i < 2; i++) {
        free(R.kv[i]);
        free(R.fill[i]);
    }
    free(R.y);
    return st;
}

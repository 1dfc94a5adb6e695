/* forward.c — the reference Qwen3 forward pass (forward.h): buffers, KV cache, the layer loop with a
 * probe after every op, and greedy decoding. Reads like the model of docs/tags.md; fault variants are
 * selected here and executed inside the ops. */
#include "forward.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "util.h"

typedef struct run {
    const ld_model *m;
    const ld_config *c;
    ld_tag_sizes sizes; /* of c, for the probes' shapes */
    const ld_forward_options *opt;
    ld_numerics nx;
    size_t cap;       /* KV slots: prompt + decode steps */
    size_t tmax;      /* most tokens in one step (the prompt) */
    /* KV cache, [layers][Hkv][cap][D]: slot s holds position s. */
    float *k_cache, *v_cache;
    /* Activations of one step, row-major with T = tokens of the step. */
    float *h;        /* [T,H] residual stream */
    float *x;        /* [T,H] normed input of attention / MLP */
    float *q, *qn, *qr, *att; /* [T,Hq,D] */
    float *k, *kn, *kr, *v;   /* [T,Hkv,D] */
    float *o, *down; /* [T,H] */
    float *g, *u, *act; /* [T,I] */
    float *logits;   /* [T,V] */
    uint16_t *emit16; /* [T,max width] probes of emulated 16-bit runs */
    ld_error *err;
} run;

/* Teacher forcing: data's numel f32 values become the feed's tensor of this key, rounded to the
 * run's storage dtype (through emit16 when that is 16-bit, so the rounding is the feed's). */
static ld_status feed_in(run *R, int step, int layer, const char *name, float *data, size_t numel)
{
    ld_dtype dt = R->opt->emulate;
    void *dst = dt == LD_F32 ? (void *)data : (void *)R->emit16;
    ld_status st = ld_feed_get(R->opt->feed, step, layer, name, dt, dst, numel, R->err);
    if (st != LD_OK || dt == LD_F32)
        return st;
    for (size_t i = 0; i < numel; i++)
        data[i] = ld_load_f32(R->emit16, dt, i);
    return LD_OK;
}

/* The probe point after an op: the nan fault writes its NaN here (so it flows downstream), then
 * the tensor is emitted if the sink wants this key, then replaced by the feed's if the feed wants
 * it (the record holds the candidate's own tensor, flagged "fed"). data holds T rows of the tag's
 * width. */
static ld_status probe(run *R, int step, int layer, ld_tag tag, int64_t pos0, float *data, size_t T)
{
    size_t numel = T * ld_tag_width(tag, &R->sizes);
    if (ld_fault_nan_at(R->opt->faults, tag, layer))
        data[numel / 2] = NAN;
    const char *name = ld_tag_name(tag);
    bool fed = ld_feed_wants(R->opt->feed, step, layer, name);
    if (R->opt->sink && ld_sink_wants(R->opt->sink, step, layer, name)) {
        int64_t shape[3];
        int ndim = ld_tag_dims(tag, &R->sizes, T, shape);
        const void *payload = data;
        ld_dtype dt = R->opt->emulate;
        if (dt == LD_BF16 || dt == LD_F16) { /* values are already rounded: this is exact */
            for (size_t i = 0; i < numel; i++)
                R->emit16[i] = dt == LD_BF16 ? ld_f32_to_bf16(data[i]) : ld_f32_to_f16(data[i]);
            payload = R->emit16;
        }
        if (fed)
            ld_sink_mark_fed(R->opt->sink);
        ld_status st = ld_sink_emit(R->opt->sink, step, layer, name, pos0, dt, shape, ndim,
                                    payload, R->err);
        if (st != LD_OK)
            return st;
    }
    return fed ? feed_in(R, step, layer, name, data, numel) : LD_OK;
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        ld_status st_ = (expr);                                                                    \
        if (st_ != LD_OK)                                                                          \
            return st_;                                                                            \
    } while (0)

/* Writes T rows of k_rope and v into the cache of layer l at slots pos0.. (one slot early for
 * decode steps under the kv_append_off_by_one bug). */
static void kv_append(run *R, int layer, const float *kr, const float *v, size_t T, int64_t pos0,
                      bool off_by_one)
{
    const ld_config *c = R->c;
    size_t Hkv = (size_t)c->num_kv_heads, D = (size_t)c->head_dim;
    float *kc = R->k_cache + (size_t)layer * Hkv * R->cap * D;
    float *vc = R->v_cache + (size_t)layer * Hkv * R->cap * D;
    for (size_t t = 0; t < T; t++) {
        int64_t slot = pos0 + (int64_t)t - (off_by_one ? 1 : 0);
        if (slot < 0)
            continue;
        for (size_t h = 0; h < Hkv; h++) {
            memcpy(kc + (h * R->cap + (size_t)slot) * D, kr + (t * Hkv + h) * D, D * sizeof(float));
            memcpy(vc + (h * R->cap + (size_t)slot) * D, v + (t * Hkv + h) * D, D * sizeof(float));
        }
    }
}

static ld_status layer_forward(run *R, int step, int l, size_t T, int64_t pos0)
{
    const ld_config *c = R->c;
    const ld_fault_set *F = R->opt->faults;
    const ld_numerics *nx = &R->nx;
    const ld_layer_weights *W = &R->m->layers[l];
    size_t H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size, D = (size_t)c->head_dim;
    size_t Hq = (size_t)c->num_heads, Hkv = (size_t)c->num_kv_heads;
    const ld_fault *f;
    double eps = (f = ld_fault_at(F, LD_FAULT_RMSNORM_EPS, l)) ? f->value : c->rms_norm_eps;
    bool mul_var = ld_fault_at(F, LD_FAULT_RMSNORM_MUL_VAR, l) != NULL;

    /* Attention block. */
    ld_ref_rmsnorm(R->h, &W->attn_norm, T, H, eps, mul_var, R->x, nx);
    TRY(probe(R, step, l, LD_TAG_ATTN_NORM, pos0, R->x, T));

    if (ld_fault_at(F, LD_FAULT_Q_PROJ_ZERO, l)) /* the fused stage never writes q */
        memset(R->q, 0, T * Hq * D * sizeof(float));
    else
        TRY(ld_ref_matmul(R->x, &W->wq, T, R->q, nx, R->err));
    TRY(probe(R, step, l, LD_TAG_Q_PROJ, pos0, R->q, T));
    TRY(ld_ref_matmul(R->x, &W->wk, T, R->k, nx, R->err));
    TRY(probe(R, step, l, LD_TAG_K_PROJ, pos0, R->k, T));
    TRY(ld_ref_matmul(R->x, &W->wv, T, R->v, nx, R->err));
    TRY(probe(R, step, l, LD_TAG_V_PROJ, pos0, R->v, T));

    int block = (f = ld_fault_at(F, LD_FAULT_QK_NORM_BLOCK, l)) ? f->ivalue : 0;
    bool skip = ld_fault_at(F, LD_FAULT_QK_NORM_SKIP, l) != NULL;
    ld_ref_head_rmsnorm(R->q, &W->q_norm, T * Hq, D, eps, block, skip, R->qn, nx);
    TRY(probe(R, step, l, LD_TAG_Q_NORM, pos0, R->qn, T));
    ld_ref_head_rmsnorm(R->k, &W->k_norm, T * Hkv, D, eps, block, skip, R->kn, nx);
    TRY(probe(R, step, l, LD_TAG_K_NORM, pos0, R->kn, T));

    double theta = (f = ld_fault_at(F, LD_FAULT_ROPE_THETA, l)) ? f->value : c->rope_theta;
    bool interleaved = ld_fault_at(F, LD_FAULT_ROPE_INTERLEAVED, l) != NULL;
    TRY(ld_ref_rope(R->qn, T, Hq, D, pos0, theta, interleaved, R->qr, nx, R->err));
    TRY(probe(R, step, l, LD_TAG_Q_ROPE, pos0, R->qr, T));
    TRY(ld_ref_rope(R->kn, T, Hkv, D, pos0, theta, interleaved, R->kr, nx, R->err));
    TRY(probe(R, step, l, LD_TAG_K_ROPE, pos0, R->kr, T));

    kv_append(R, l, R->kr, R->v, T, pos0,
              step > 0 && ld_fault_at(F, LD_FAULT_KV_APPEND_OFF_BY_ONE, l) != NULL);
    ld_attn_params ap = {
        .scale = (f = ld_fault_at(F, LD_FAULT_ATTN_SCALE, l)) ? f->value : 1.0 / sqrt((double)D),
        .causal = ld_fault_at(F, LD_FAULT_NO_CAUSAL_MASK, l) == NULL,
        .gqa = ld_fault_at(F, LD_FAULT_GQA_MODULO, l) ? LD_GQA_MOD : LD_GQA_DIV,
        .softmax_bf16 = ld_fault_at(F, LD_FAULT_SOFTMAX_BF16, l) != NULL,
    };
    size_t kv_off = (size_t)l * Hkv * R->cap * D;
    TRY(ld_ref_attention(R->qr, R->k_cache + kv_off, R->v_cache + kv_off, R->cap, T, Hq, Hkv, D,
                         pos0, (size_t)pos0 + T, &ap, R->att, nx, R->err));
    TRY(probe(R, step, l, LD_TAG_ATTN_OUT, pos0, R->att, T));

    /* o_proj_weight_shift: the loader bound layer l+1's o_proj (wrapping at the last layer). */
    const ld_tensor *wo = &W->wo;
    if (ld_fault_at(F, LD_FAULT_O_PROJ_WEIGHT_SHIFT, l))
        wo = &R->m->layers[(l + 1) % c->num_layers].wo;
    TRY(ld_ref_matmul(R->att, wo, T, R->o, nx, R->err));
    TRY(probe(R, step, l, LD_TAG_O_PROJ, pos0, R->o, T));
    ld_ref_add(R->h, R->o, T * H, ld_fault_at(F, LD_FAULT_SKIP_ATTN_RESIDUAL, l) != NULL, R->h, nx);
    TRY(probe(R, step, l, LD_TAG_ATTN_RESIDUAL, pos0, R->h, T));

    /* MLP block. */
    ld_ref_rmsnorm(R->h, &W->mlp_norm, T, H, eps, mul_var, R->x, nx);
    TRY(probe(R, step, l, LD_TAG_MLP_NORM, pos0, R->x, T));
    bool swap = ld_fault_at(F, LD_FAULT_SWAP_GATE_UP, l) != NULL;
    TRY(ld_ref_matmul(R->x, swap ? &W->wu : &W->wg, T, R->g, nx, R->err));
    TRY(probe(R, step, l, LD_TAG_GATE_PROJ, pos0, R->g, T));
    TRY(ld_ref_matmul(R->x, swap ? &W->wg : &W->wu, T, R->u, nx, R->err));
    TRY(probe(R, step, l, LD_TAG_UP_PROJ, pos0, R->u, T));
    ld_ref_silu_mul(R->g, R->u, T * I, ld_fault_at(F, LD_FAULT_SILU_AS_GELU, l) != NULL, R->act, nx);
    TRY(probe(R, step, l, LD_TAG_MLP_ACT, pos0, R->act, T));
    TRY(ld_ref_matmul(R->act, &W->wd, T, R->down, nx, R->err));
    TRY(probe(R, step, l, LD_TAG_DOWN_PROJ, pos0, R->down, T));
    ld_ref_add(R->h, R->down, T * H, false, R->h, nx);
    TRY(probe(R, step, l, LD_TAG_LAYER_OUT, pos0, R->h, T));
    return LD_OK;
}

/* One step: T tokens at positions pos0.. through the whole model; returns the last row's argmax. */
static ld_status step_forward(run *R, int step, const int32_t *ids, size_t T, int64_t pos0,
                              int32_t *next)
{
    const ld_config *c = R->c;
    const ld_fault_set *F = R->opt->faults;
    size_t H = (size_t)c->hidden_size, V = (size_t)c->vocab_size;
    int n_steps = 1 + (int)(R->cap - R->tmax);

    ld_ref_embed(&R->m->embed, ids, T, R->h, &R->nx);
    TRY(probe(R, step, LD_NO_LAYER, LD_TAG_EMBED, pos0, R->h, T));
    for (int l = 0; l < c->num_layers; l++) {
        if (R->opt->progress)
            R->opt->progress(R->opt->progress_ctx, step, n_steps, l, c->num_layers);
        TRY(layer_forward(R, step, l, T, pos0));
    }
    /* A layer-less rmsnorm fault hits every RMSNorm kernel, the final norm included. */
    const ld_fault *f;
    double eps = (f = ld_fault_at(F, LD_FAULT_RMSNORM_EPS, LD_ALL_LAYERS)) ? f->value : c->rms_norm_eps;
    bool mul_var = ld_fault_at(F, LD_FAULT_RMSNORM_MUL_VAR, LD_ALL_LAYERS) != NULL;
    ld_ref_rmsnorm(R->h, &R->m->final_norm, T, H, eps, mul_var, R->x, &R->nx);
    TRY(probe(R, step, LD_NO_LAYER, LD_TAG_FINAL_NORM, pos0, R->x, T));
    /* Only the last row picks the next token. The other T-1 rows (a quarter of a qwen3-0.6b
     * prefill) are computed only when they are probed or fed or a nan fault lands in them, and
     * under stochastic rounding, whose draws depend on an element's index in the whole tensor. Rows
     * are independent, so the last row is the same bits either way (tests/e2e/reference). */
    bool all_rows = R->nx.sr_seed || ld_fault_nan_at(F, LD_TAG_LOGITS, LD_NO_LAYER) ||
                    ld_feed_wants(R->opt->feed, step, LD_NO_LAYER, ld_tag_name(LD_TAG_LOGITS)) ||
                    (R->opt->sink && ld_sink_wants(R->opt->sink, step, LD_NO_LAYER,
                                                   ld_tag_name(LD_TAG_LOGITS)));
    size_t r0 = all_rows ? 0 : T - 1;
    TRY(ld_ref_matmul(R->x + r0 * H, &R->m->lm_head, T - r0, R->logits + r0 * V, &R->nx, R->err));
    if (all_rows)
        TRY(probe(R, step, LD_NO_LAYER, LD_TAG_LOGITS, pos0, R->logits, T));
    /* -1 when no logit is finite (a NaN run): the step still counts, its probes are written, but
     * only a run that follows another stream's tokens can go on decoding. */
    *next = ld_ref_argmax(R->logits + (T - 1) * V, V);
    return LD_OK;
}

static void run_free(run *R)
{
    float **bufs[] = {&R->k_cache, &R->v_cache, &R->h,   &R->x,    &R->q,  &R->qn,
                      &R->qr,      &R->att,     &R->k,   &R->kn,   &R->kr, &R->v,
                      &R->o,       &R->down,    &R->g,   &R->u,    &R->act, &R->logits};
    for (size_t i = 0; i < LD_ARRAY_LEN(bufs); i++) {
        free(*bufs[i]);
        *bufs[i] = NULL;
    }
    free(R->emit16);
    R->emit16 = NULL;
}

/* calloc of a*b*sizeof(float) with overflow checks; NULL on failure. */
static float *alloc_f32(size_t a, size_t b)
{
    size_t n;
    if (!ld_mul_size(a, b, &n) || n == 0)
        return NULL;
    return calloc(n, sizeof(float));
}

static ld_status run_alloc(run *R, ld_error *err)
{
    const ld_config *c = R->c;
    size_t T = R->tmax, H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    size_t qw = (size_t)c->num_heads * (size_t)c->head_dim;
    size_t kw = (size_t)c->num_kv_heads * (size_t)c->head_dim;
    size_t V = (size_t)c->vocab_size, L = (size_t)c->num_layers;
    size_t kv_per_layer;
    if (!ld_mul_size(kw, R->cap, &kv_per_layer))
        return ld_error_set(err, LD_E_USAGE, "KV cache size overflows");
    R->k_cache = alloc_f32(L, kv_per_layer);
    R->v_cache = alloc_f32(L, kv_per_layer);
    R->h = alloc_f32(T, H), R->x = alloc_f32(T, H), R->o = alloc_f32(T, H), R->down = alloc_f32(T, H);
    R->q = alloc_f32(T, qw), R->qn = alloc_f32(T, qw), R->qr = alloc_f32(T, qw), R->att = alloc_f32(T, qw);
    R->k = alloc_f32(T, kw), R->kn = alloc_f32(T, kw), R->kr = alloc_f32(T, kw), R->v = alloc_f32(T, kw);
    R->g = alloc_f32(T, I), R->u = alloc_f32(T, I), R->act = alloc_f32(T, I);
    R->logits = alloc_f32(T, V);
    bool ok = R->k_cache && R->v_cache && R->h && R->x && R->o && R->down && R->q && R->qn &&
              R->qr && R->att && R->k && R->kn && R->kr && R->v && R->g && R->u && R->act &&
              R->logits;
    if (ok && R->opt->emulate != LD_F32 && (R->opt->sink || R->opt->feed)) {
        size_t widest = LD_MAX(LD_MAX(H, I), LD_MAX(LD_MAX(qw, kw), V)), n;
        if (ld_mul_size(T, widest, &n))
            R->emit16 = malloc(n * sizeof(uint16_t));
        ok = R->emit16 != NULL;
    }
    if (!ok) {
        run_free(R);
        return ld_error_set(err, LD_E_NOMEM,
                            "cannot allocate activations for %zu tokens and a KV cache of %zu slots",
                            T, R->cap);
    }
    return LD_OK;
}

ld_status ld_ref_generate(const ld_model *m, const int32_t *prompt, size_t n_prompt,
                          int decode_steps, const ld_forward_options *opt,
                          int32_t *tokens_out,
                          int32_t *decoded_out, ld_error *err)
{
    const ld_config *c = &m->cfg;
    ld_status vst = ld_generate_check_inputs(c, prompt, n_prompt, decode_steps, opt->follow,
                                             opt->n_follow, err);
    if (vst != LD_OK)
        return vst;
    if (opt->faults) {
        ld_status st = ld_fault_set_validate(opt->faults, c, err);
        if (st != LD_OK)
            return st;
    }

    run R = {.m = m, .c = c, .sizes = ld_config_tag_sizes(c), .opt = opt, .err = err};
    R.nx = opt->emulate == LD_F32 ? ld_numerics_reference
                                  : (ld_numerics){.acc_f32 = true, .round_to = opt->emulate,
                                                  .sr_seed = opt->sr_seed};
    R.cap = n_prompt + (size_t)decode_steps;
    R.tmax = n_prompt;
    ld_status st = run_alloc(&R, err);
    if (st != LD_OK)
        return st;

    int32_t next = -1;
    st = step_forward(&R, 0, prompt, n_prompt, 0, &next);
    if (st == LD_OK)
        tokens_out[0] = next;
    for (int s = 1; st == LD_OK && s <= decode_steps; s++) {
        if (!opt->follow && tokens_out[s - 1] < 0) {
            st = ld_error_set(err, LD_E_INPUT,
                              "step %d: no logit is finite, so there is no next token to decode "
                              "(run with --follow REF.jsonl to feed another stream's tokens)",
                              s - 1);
            break;
        }
        int32_t fed = opt->follow ? opt->follow[s - 1] : tokens_out[s - 1];
        decoded_out[s - 1] = fed;
        st = step_forward(&R, s, &fed, 1, (int64_t)(n_prompt + (size_t)s - 1), &next);
        if (st == LD_OK)
            tokens_out[s] = next;
    }
    run_free(&R);
    return st;
}

char *ld_ref_backend_json(const ld_forward_options *opt)
{
    char *s = malloc(256);
    if (!s)
        return NULL;
    const char *path = ld_ref_kernel_path(); /* which kernels; every path gives the same bits */
    if (opt->emulate == LD_F32)
        snprintf(s, 256,
                 "{\"name\":\"reference\",\"device\":\"cpu\",\"compute_dtype\":\"f32\","
                 "\"accumulation\":\"f64\",\"weights\":\"stored dtype, widened exactly\","
                 "\"kernel\":\"%s\",\"threads\":%d}",
                 path ? path : "none", omp_get_max_threads());
    else
        snprintf(s, 256,
                 "{\"name\":\"reference\",\"device\":\"cpu\",\"compute_dtype\":\"%s\","
                 "\"accumulation\":\"f32\",\"emulate\":\"%s\",\"weights\":\"rounded to %s\","
                 "\"rounding\":\"%s\",\"sr_seed\":%u,\"threads\":%d}",
                 ld_dtype_name(opt->emulate), ld_dtype_name(opt->emulate),
                 ld_dtype_name(opt->emulate), opt->sr_seed ? "stochastic" : "nearest-even",
                 (unsigned)opt->sr_seed, omp_get_max_threads());
    return s;
}

/* forward.c — the CUDA Qwen3 forward pass (cuda_backend.h): the session (device, stream, cuBLAS,
 * weights), the activations, the layer loop with a probe after every op — read it beside
 * reference/forward.c, its twin — and greedy decoding, whose steps are captured once in a CUDA
 * graph and replayed when probes are off. Not here: the kernels (one .cu per op family). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>

#include "argmax.cuh"
#include "attention.cuh"
#include "cuda_backend.h"
#include "cuda_check.h"
#include "embed.cuh"
#include "gemv.cuh"
#include "matmul.h"
#include "poke.cuh"
#include "qk_norm_rope.cuh"
#include "rmsnorm.cuh"
#include "silu_mul.cuh"
#include "util.h"
#include "weights.h"

#define BLAS_WORKSPACE ((size_t)32 << 20) /* bytes; fixed so graph capture never allocates */
#define ACT_ALIGN 256

struct ld_cuda_session {
    const ld_model *m;
    ld_fault_set faults; /* a copy: the loader faults are baked into W */
    cudaStream_t stream; /* every kernel, GEMM and copy of the session runs on it, in order */
    cublasHandle_t blas;
    void *blas_ws;       /* [BLAS_WORKSPACE] bytes */
    ld_cuda_weights W;
};

/* What an RMSNorm call needs: weight, epsilon and the mul_var fault of its layer; the final norm
 * (layer == L) sees only faults given without @LAYER, as in the reference. */
typedef struct norm_site {
    const ld_bf16 *w;
    double eps;
    bool mul_var;
} norm_site;

/* A residual add fused with the norm that reads the sum (add_norm): h += delta, x = norm(h),
 * and the keys of the two results. */
typedef struct add_norm_site {
    const ld_bf16 *delta; /* [T,H] added to h; NULL: h as it is (the first norm, after embed) */
    bool skip_h;          /* fault skip_attn_residual: h = delta */
    int res_layer;        /* the sum's key (attn_residual or layer_out), when delta is set */
    ld_tag res_tag;
    norm_site n;
    int norm_layer;       /* the norm's key (attn_norm, mlp_norm or final_norm) */
    ld_tag norm_tag;
} add_norm_site;

/* One generate call: the model's dimensions, the activations of a step and the KV cache (one
 * device allocation, carved below), the host side of the token loop, and the prober. */
typedef struct run {
    ld_cuda_session *S;
    const ld_config *c;
    const ld_fault_set *F;
    const ld_cuda_run_options *opt;
    ld_sink *sink;
    ld_cuda_probe *probe;
    cudaStream_t stream;
    size_t H, Hq, Hkv, D, I, V, L;
    ld_tag_sizes sizes; /* the same, for the probes' shapes */
    size_t Wqkv;    /* (Hq + 2·Hkv)·D: the row width of qkv */
    size_t cap;     /* KV slots: prompt + decode steps */
    size_t tmax;    /* most tokens in one step (the prompt) */
    int n_steps;    /* 1 + decode steps */
    int64_t pos0;   /* the current step's first position, host copy (for probe records) */

    void *block;    /* the device allocation all pointers below point into */
    ld_bf16 *h;     /* [T,H] residual stream: h_buf[0], or h_buf[1] after an odd number of fused
                       add+norms wrote the other (decode, see add_norm) */
    ld_bf16 *h_buf[2]; /* [T,H] and [H] */
    ld_bf16 *x;     /* [T,H] normed input of attention, MLP and lm_head */
    ld_bf16 *qkv;   /* [T,(Hq+2Hkv)·D] q_proj | k_proj | v_proj, one GEMM */
    ld_bf16 *q;     /* [T,Hq,D] q_rope */
    ld_bf16 *qn;    /* [T,Hq,D] q_norm, written only when probed */
    ld_bf16 *kn;    /* [T,Hkv,D] k_norm, written only when probed */
    ld_bf16 *kr;    /* [T,Hkv,D] k_rope, written only when probed (the cache holds it anyway) */
    ld_bf16 *att;   /* [T,Hq,D] attn_out */
    ld_bf16 *o;     /* [T,H] o_proj */
    ld_bf16 *gu;    /* [T,2I] gate_proj | up_proj, one GEMM */
    ld_bf16 *act;   /* [T,I] mlp_act */
    ld_bf16 *down;  /* [T,H] down_proj */
    ld_bf16 *logits;/* [T,V] */
    ld_bf16 *k_cache, *v_cache; /* [L][Hkv][cap][D]: slot s holds position s */
    ld_cuda_attn_split split;   /* decode attention partials: ml [Hq,n_split,2], acc [..,D] */
    int32_t *ids;   /* [tmax] token ids of the step */
    int32_t *pos0_dev; /* [1] the step's first position, read by RoPE, the append and attention */
    int32_t *next;  /* [1] argmax of the step's last logits row */
    ld_cuda_argmax_part *argmax_parts; /* [ld_cuda_argmax_parts(V)] the argmax's first pass */

    int32_t *host;  /* pinned, one allocation: */
    int32_t *h_feed;/* [tmax + steps] the prompt, then the followed tokens */
    int32_t *h_pos; /* [1 + steps] first position of each step */
    int32_t *h_next;/* [1 + steps] argmax of each step */
    int n_known;    /* after a step without a finite logit: the steps whose argmax is known */
    ld_bf16 *feed_host; /* [tmax * widest tag] a fed tensor on its way up (teacher forcing) */

    bool pend_on;   /* an add+norm waits for that GEMV: pend */
    add_norm_site pend;
    cudaGraphExec_t graph; /* the captured decode step, or NULL */
    bool profiling; /* inside the profiler's range (opt->profile): to be ended on an error */
    bool trap;      /* LAYERDIFF_CUDA_TRAP_AFTER: fault the device after this key (tests) */
    ld_key trap_key;
    ld_error *err;
} run;

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        ld_status st_ = (expr);                                                                    \
        if (st_ != LD_OK)                                                                          \
            return st_;                                                                            \
    } while (0)

/* ---- probes ---------------------------------------------------------------------------------- */

static bool wants(const run *R, int step, int layer, ld_tag tag)
{
    return R->sink && ld_sink_wants(R->sink, step, layer, ld_tag_name(tag));
}

/* The flat index the nan=TAG fault poisons in TAG's [T, width] tensor (its middle element, as in
 * the reference), or -1. */
static int64_t nan_index(const run *R, int layer, ld_tag tag, size_t T)
{
    return ld_fault_nan_at(R->F, tag, layer) ? (int64_t)(T * ld_tag_width(tag, &R->sizes) / 2) : -1;
}

static bool fed(const run *R, int step, int layer, ld_tag tag)
{
    return ld_feed_wants(R->opt->feed, step, layer, ld_tag_name(tag));
}

/* Emits T rows of tag (bf16, rows ld elements apart on the device) if the sink wants the key. A
 * key to be fed is written at once, alone in the ring, so that its record and only it carries
 * the "fed" mark. */
static ld_status emit(run *R, int step, int layer, ld_tag tag, const ld_bf16 *data, size_t T,
                      size_t ld)
{
    if (!R->sink)
        return LD_OK;
    ld_cuda_tensor t = {.data = data, .dtype = LD_BF16, .row_stride = ld};
    t.ndim = ld_tag_dims(tag, &R->sizes, T, t.shape);
    const char *name = ld_tag_name(tag);
    bool mark = fed(R, step, layer, tag) && wants(R, step, layer, tag);
    if (mark) { /* the ring empty, the next record written is this one (emit may write it) */
        TRY(ld_cuda_probe_flush(R->probe, R->err));
        ld_sink_mark_fed(R->sink);
    }
    TRY(ld_cuda_probe_emit(R->probe, step, layer, name, R->pos0, &t, R->err));
    if (mark)
        TRY(ld_cuda_probe_flush(R->probe, R->err));
    if (R->trap && R->trap_key.step == step && R->trap_key.layer == layer &&
        !strcmp(R->trap_key.tag, name) && wants(R, step, layer, tag)) {
        /* The device faults (a sticky error) right behind this probe's work, while its record
         * and those before it may still be in flight: the error path must write them. */
        TRY(ld_cuda_trap(R->stream, R->err));
    }
    return LD_OK;
}

/* Teacher forcing: T rows of tag (rows ld elements apart on the device) become the feed's, in
 * bf16, uploaded on the stream after the probe's copy. Synchronizes: feed_host serves the next
 * key. */
static ld_status feed_in(run *R, int step, int layer, ld_tag tag, ld_bf16 *data, size_t T,
                         size_t ld)
{
    if (!fed(R, step, layer, tag))
        return LD_OK;
    size_t w = ld_tag_width(tag, &R->sizes);
    TRY(ld_feed_get(R->opt->feed, step, layer, ld_tag_name(tag), LD_BF16, R->feed_host, T * w,
                    R->err));
    LD_CUDA_CHECK(R->err, cudaMemcpy2DAsync(data, ld * sizeof(ld_bf16), R->feed_host,
                                            w * sizeof(ld_bf16), w * sizeof(ld_bf16), T,
                                            cudaMemcpyHostToDevice, R->stream));
    LD_CUDA_CHECK(R->err, cudaStreamSynchronize(R->stream));
    return LD_OK;
}

/* The probe point after an op: the nan fault writes its NaN here (so it flows downstream), then
 * the tensor is emitted if wanted and replaced by the feed's if fed. Fused kernels take their NaN
 * index as a parameter instead and their intermediates go through emit() alone. */
static ld_status probe(run *R, int step, int layer, ld_tag tag, ld_bf16 *data, size_t T, size_t ld)
{
    TRY(ld_cuda_poke_nan(data, ld_tag_width(tag, &R->sizes), ld, nan_index(R, layer, tag, T),
                         R->stream, R->err));
    TRY(emit(R, step, layer, tag, data, T, ld));
    return feed_in(R, step, layer, tag, data, T, ld);
}

/* ---- the model ------------------------------------------------------------------------------- */

static norm_site norm_at(const run *R, int layer, const ld_bf16 *w)
{
    int fl = layer < (int)R->L ? layer : LD_ALL_LAYERS;
    const ld_fault *f = ld_fault_at(R->F, LD_FAULT_RMSNORM_EPS, fl);
    return (norm_site){w, f ? f->value : R->c->rms_norm_eps,
                       ld_fault_at(R->F, LD_FAULT_RMSNORM_MUL_VAR, fl) != NULL};
}

/* The add+norm that reads the residual stream after layer l: into attn_norm of layer l+1, or
 * into final_norm. */
static add_norm_site next_norm(const run *R, int l)
{
    add_norm_site a = {.delta = R->down, .res_layer = l, .res_tag = LD_TAG_LAYER_OUT};
    if (l + 1 < (int)R->L) {
        a.n = norm_at(R, l + 1, R->S->W.layers[l + 1].attn_norm);
        a.norm_layer = l + 1, a.norm_tag = LD_TAG_ATTN_NORM;
    } else {
        a.n = norm_at(R, (int)R->L, R->S->W.final_norm);
        a.norm_layer = LD_NO_LAYER, a.norm_tag = LD_TAG_FINAL_NORM;
    }
    return a;
}

static int64_t nan_residual(const run *R, const add_norm_site *a, size_t T)
{
    return a->delta ? nan_index(R, a->res_layer, a->res_tag, T) : -1;
}

/* The records of an add+norm, once both results are in h and x: the sum (emitted; when fed, h
 * becomes the feed's and x is normed again from it), then the norm's probe point. */
static ld_status add_norm_records(run *R, int step, size_t T, const add_norm_site *a)
{
    if (a->delta) {
        TRY(emit(R, step, a->res_layer, a->res_tag, R->h, T, R->H));
        if (fed(R, step, a->res_layer, a->res_tag)) {
            TRY(feed_in(R, step, a->res_layer, a->res_tag, R->h, T, R->H));
            TRY(ld_cuda_add_rmsnorm(R->h, NULL, false, -1, a->n.w, T, R->H, a->n.eps,
                                    a->n.mul_var, R->x, R->stream, R->err));
        }
    }
    return probe(R, step, a->norm_layer, a->norm_tag, R->x, T, R->H);
}

/* The residual add fused with the norm that reads it. When a decode GEMV of one token reads x
 * next (to_gemv) and nothing between here and it changes h or x at a probe point (a feed of
 * either, a nan fault at the norm), it is left pending and that GEMV does it (norm_matmul,
 * ld_cuda_norm_gemv: the same bits, one launch and one round trip through memory less); its
 * records then follow the GEMV, in the same order as here. */
static ld_status add_norm(run *R, int step, size_t T, add_norm_site a, bool to_gemv)
{
    bool fuse = !R->opt->no_fuse_norm && to_gemv && T == 1 && R->H <= LD_GEMV_NORM_MAX_K &&
                nan_index(R, a.norm_layer, a.norm_tag, T) < 0 &&
                !fed(R, step, a.norm_layer, a.norm_tag) &&
                !(a.delta && fed(R, step, a.res_layer, a.res_tag));
    if (fuse) {
        R->pend = a;
        R->pend_on = true;
        return LD_OK;
    }
    TRY(ld_cuda_add_rmsnorm(R->h, a.delta, a.skip_h, nan_residual(R, &a, T), a.n.w, T, R->H,
                            a.n.eps, a.n.mul_var, R->x, R->stream, R->err));
    return add_norm_records(R, step, T, &a);
}

/* y = x·Wᵀ (N rows of W; glu: the gate/up GEMV with its activation into act, N = I). With an
 * add+norm pending, one launch does both (T = 1); the new residual goes to the other h buffer. */
static ld_status norm_matmul(run *R, int step, size_t T, const ld_bf16 *w, size_t N, ld_bf16 *y,
                             size_t ldy, bool glu, bool gelu, ld_bf16 *act)
{
    size_t H = R->H;
    if (!R->pend_on) {
        if (glu)
            return ld_cuda_gemv_glu(R->x, H, w, N, H, T, y, ldy, gelu, act, N, R->stream, R->err);
        return ld_cuda_matmul(R->S->blas, R->x, H, w, N, H, T, y, ldy, R->err);
    }
    add_norm_site a = R->pend;
    R->pend_on = false;
    int64_t nan_at = nan_residual(R, &a, T);
    bool update = a.delta || nan_at >= 0;
    ld_bf16 *other = R->h == R->h_buf[0] ? R->h_buf[1] : R->h_buf[0];
    ld_cuda_gemv_norm nm = {.h = R->h, .delta = a.delta, .skip_h = a.skip_h, .nan_at = nan_at,
                            .w = a.n.w, .eps = a.n.eps, .mul_var = a.n.mul_var,
                            .h_out = update ? other : NULL, .x_out = R->x};
    if (glu)
        TRY(ld_cuda_norm_gemv_glu(&nm, w, N, H, y, gelu, act, R->stream, R->err));
    else
        TRY(ld_cuda_norm_gemv(&nm, w, N, H, y, R->stream, R->err));
    if (update)
        R->h = other;
    return add_norm_records(R, step, T, &a);
}

/* Whether layer l's q/k/v GEMV may do its attn_norm's add+norm (not the lm_head's GEMV after the
 * last layer: its 19k blocks would each norm the row; not under q_proj_zero, a GEMM over part of
 * the weight). */
static bool to_qkv_gemv(const run *R, int l)
{
    return l < (int)R->L && !ld_fault_at(R->F, LD_FAULT_Q_PROJ_ZERO, l);
}

/* One layer. On entry x holds this layer's attn_norm, or its add+norm is pending; on exit h
 * holds layer_out and x the next norm's output, or that add+norm is pending. */
static ld_status layer_forward(run *R, int step, int l, size_t T)
{
    const ld_fault_set *F = R->F;
    const ld_cuda_layer *W = &R->S->W.layers[l];
    size_t H = R->H, I = R->I, D = R->D, Hq = R->Hq, Hkv = R->Hkv, Wqkv = R->Wqkv;
    cublasHandle_t blas = R->S->blas;
    const ld_fault *f;
    norm_site attn_n = norm_at(R, l, W->attn_norm), mlp_n = norm_at(R, l, W->mlp_norm);

    /* Attention block: attn_norm's add+norm (pending, or done with its records) came before. q,
     * k and v in one GEMM over the stacked weight. q_proj_zero: a fused stage that never writes
     * q — the GEMM covers only the k and v columns, and q keeps the zeros written here (never
     * with a pending norm: see to_qkv_gemv). */
    if (ld_fault_at(F, LD_FAULT_Q_PROJ_ZERO, l)) {
        LD_CUDA_CHECK(R->err, cudaMemset2DAsync(R->qkv, Wqkv * sizeof(ld_bf16), 0,
                                                Hq * D * sizeof(ld_bf16), T, R->stream));
        TRY(ld_cuda_matmul(blas, R->x, H, W->wqkv + Hq * D * H, 2 * Hkv * D, H, T, R->qkv + Hq * D,
                           Wqkv, R->err));
    } else {
        TRY(norm_matmul(R, step, T, W->wqkv, Wqkv, R->qkv, Wqkv, false, false, NULL));
    }
    TRY(probe(R, step, l, LD_TAG_Q_PROJ, R->qkv, T, Wqkv));
    TRY(probe(R, step, l, LD_TAG_K_PROJ, R->qkv + Hq * D, T, Wqkv));
    TRY(probe(R, step, l, LD_TAG_V_PROJ, R->qkv + (Hq + Hkv) * D, T, Wqkv));

    /* q/k norm, RoPE and the cache append in one kernel; the intermediates are written to their
     * probe buffers only when wanted. */
    ld_cuda_qk_params qp = {
        .eps = attn_n.eps,
        .block = (f = ld_fault_at(F, LD_FAULT_QK_NORM_BLOCK, l)) ? f->ivalue : 0,
        .skip = ld_fault_at(F, LD_FAULT_QK_NORM_SKIP, l) != NULL,
        .theta = (f = ld_fault_at(F, LD_FAULT_ROPE_THETA, l)) ? f->value : R->c->rope_theta,
        .interleaved = ld_fault_at(F, LD_FAULT_ROPE_INTERLEAVED, l) != NULL,
        .kv_off_by_one = step > 0 && ld_fault_at(F, LD_FAULT_KV_APPEND_OFF_BY_ONE, l) != NULL,
        .nan_q_norm = nan_index(R, l, LD_TAG_Q_NORM, T),
        .nan_k_norm = nan_index(R, l, LD_TAG_K_NORM, T),
        .nan_q_rope = nan_index(R, l, LD_TAG_Q_ROPE, T),
        .nan_k_rope = nan_index(R, l, LD_TAG_K_ROPE, T),
    };
    size_t kv_off = (size_t)l * Hkv * R->cap * D;
    ld_bf16 *qn = wants(R, step, l, LD_TAG_Q_NORM) ? R->qn : NULL;
    ld_bf16 *kn = wants(R, step, l, LD_TAG_K_NORM) ? R->kn : NULL;
    ld_bf16 *kr = wants(R, step, l, LD_TAG_K_ROPE) ? R->kr : NULL;
    if (fed(R, step, l, LD_TAG_Q_NORM) || fed(R, step, l, LD_TAG_K_NORM))
        return ld_error_set(R->err, LD_E_USAGE,
                            "--feed: the cuda backend cannot replace q_norm or k_norm (one kernel "
                            "computes them with RoPE and the cache append); leave them out with "
                            "--feed-tags, or feed q_rope and k_rope");
    TRY(ld_cuda_qk_norm_rope(R->qkv, T, Hq, Hkv, D, W->q_norm, W->k_norm, R->pos0_dev, &qp, R->q,
                             R->k_cache + kv_off, R->v_cache + kv_off, R->cap, qn, kn, kr,
                             R->stream, R->err));
    if (qn)
        TRY(emit(R, step, l, LD_TAG_Q_NORM, qn, T, Hq * D));
    if (kn)
        TRY(emit(R, step, l, LD_TAG_K_NORM, kn, T, Hkv * D));
    TRY(emit(R, step, l, LD_TAG_Q_ROPE, R->q, T, Hq * D));
    TRY(feed_in(R, step, l, LD_TAG_Q_ROPE, R->q, T, Hq * D));
    if (kr)
        TRY(emit(R, step, l, LD_TAG_K_ROPE, kr, T, Hkv * D));
    /* A fed k_rope goes where attention reads it: the cache slots the append wrote, head by head
     * ([Hkv][cap][D] there, [T][Hkv][D] in the feed). */
    for (size_t h = 0; h < Hkv && fed(R, step, l, LD_TAG_K_ROPE); h++) {
        size_t slot = (size_t)R->pos0 - (qp.kv_off_by_one ? 1 : 0);
        if (h == 0)
            TRY(ld_feed_get(R->opt->feed, step, l, ld_tag_name(LD_TAG_K_ROPE), LD_BF16,
                            R->feed_host, T * Hkv * D, R->err));
        LD_CUDA_CHECK(R->err,
                      cudaMemcpy2DAsync(R->k_cache + kv_off + (h * R->cap + slot) * D,
                                        D * sizeof(ld_bf16), R->feed_host + h * D,
                                        Hkv * D * sizeof(ld_bf16), D * sizeof(ld_bf16), T,
                                        cudaMemcpyHostToDevice, R->stream));
        if (h + 1 == Hkv)
            LD_CUDA_CHECK(R->err, cudaStreamSynchronize(R->stream));
    }

    ld_cuda_attn_params ap = {
        .scale = (f = ld_fault_at(F, LD_FAULT_ATTN_SCALE, l)) ? f->value : 1.0 / sqrt((double)D),
        .causal = ld_fault_at(F, LD_FAULT_NO_CAUSAL_MASK, l) == NULL,
        .gqa_modulo = ld_fault_at(F, LD_FAULT_GQA_MODULO, l) != NULL,
        .softmax_bf16 = ld_fault_at(F, LD_FAULT_SOFTMAX_BF16, l) != NULL,
        .kernel = R->opt->no_tiled_attn ? LD_ATTN_KERNEL_PER_QUERY : LD_ATTN_KERNEL_AUTO,
    };
    /* Prefill: every query walks its keys, 16 queries of a head per block where the shape
     * allows. Decode (T = 1): the keys are split. */
    TRY(ld_cuda_attention(R->q, R->k_cache + kv_off, R->v_cache + kv_off, R->cap, T, Hq, Hkv, D,
                          R->pos0_dev, &ap, T == 1 ? &R->split : NULL, R->att, R->stream, R->err));
    TRY(probe(R, step, l, LD_TAG_ATTN_OUT, R->att, T, Hq * D));

    /* o_proj (the o_proj_weight_shift fault is in the uploaded weights), then the residual add
     * fused with the MLP's norm. */
    TRY(ld_cuda_matmul(blas, R->att, Hq * D, W->wo, H, Hq * D, T, R->o, H, R->err));
    TRY(probe(R, step, l, LD_TAG_O_PROJ, R->o, T, H));
    add_norm_site mlp_in = {.delta = R->o,
                            .skip_h = ld_fault_at(F, LD_FAULT_SKIP_ATTN_RESIDUAL, l) != NULL,
                            .res_layer = l, .res_tag = LD_TAG_ATTN_RESIDUAL, .n = mlp_n,
                            .norm_layer = l, .norm_tag = LD_TAG_MLP_NORM};
    TRY(add_norm(R, step, T, mlp_in, true));

    /* MLP block: gate and up in one GEMM (swap_gate_up is in the uploaded weights). */
    /* A few tokens: one GEMV computes the activation too, unless something changes gate or up at
     * their probe point before the activation may read them (a nan fault, a feed). */
    bool gelu = ld_fault_at(F, LD_FAULT_SILU_AS_GELU, l) != NULL;
    bool fuse_act = T <= LD_GEMV_MAX_T && nan_index(R, l, LD_TAG_GATE_PROJ, T) < 0 &&
                    nan_index(R, l, LD_TAG_UP_PROJ, T) < 0 && !fed(R, step, l, LD_TAG_GATE_PROJ) &&
                    !fed(R, step, l, LD_TAG_UP_PROJ);
    if (fuse_act)
        TRY(norm_matmul(R, step, T, W->wgu, I, R->gu, 2 * I, true, gelu, R->act));
    else
        TRY(norm_matmul(R, step, T, W->wgu, 2 * I, R->gu, 2 * I, false, false, NULL));
    TRY(probe(R, step, l, LD_TAG_GATE_PROJ, R->gu, T, 2 * I));
    TRY(probe(R, step, l, LD_TAG_UP_PROJ, R->gu + I, T, 2 * I));
    if (!fuse_act)
        TRY(ld_cuda_silu_mul(R->gu, R->gu + I, T, I, 2 * I, gelu, R->act, R->stream, R->err));
    TRY(probe(R, step, l, LD_TAG_MLP_ACT, R->act, T, I));
    TRY(ld_cuda_matmul(blas, R->act, I, W->wd, H, I, T, R->down, H, R->err));
    TRY(probe(R, step, l, LD_TAG_DOWN_PROJ, R->down, T, H));

    /* The residual add fused with the norm that reads it next (next layer's attn_norm, or the
     * final norm), probed there. */
    return add_norm(R, step, T, next_norm(R, l), to_qkv_gemv(R, l + 1));
}

/* One step: T tokens (ids and pos0 already on the device) through the whole model; the last row's
 * argmax lands in next (on the device). */
static ld_status step_forward(run *R, int step, size_t T, bool per_layer_progress)
{
    const ld_cuda_weights *W = &R->S->W;
    size_t H = R->H, V = R->V;

    R->h = R->h_buf[0]; /* every step the same buffers: a captured step replays any other */
    R->pend_on = false; /* nothing pending from a step that failed (first_graph_launch retries) */
    TRY(ld_cuda_embed(W->embed, V, H, R->ids, T, R->h, R->stream, R->err));
    TRY(probe(R, step, LD_NO_LAYER, LD_TAG_EMBED, R->h, T, H));
    add_norm_site first = {.n = norm_at(R, 0, W->layers[0].attn_norm), .norm_layer = 0,
                           .norm_tag = LD_TAG_ATTN_NORM};
    TRY(add_norm(R, step, T, first, to_qkv_gemv(R, 0)));
    for (int l = 0; l < (int)R->L; l++) {
        if (R->opt->progress && per_layer_progress)
            R->opt->progress(R->opt->progress_ctx, step, R->n_steps, l, (int)R->L);
        TRY(layer_forward(R, step, l, T));
    }
    /* final_norm was probed by the last layer's add+norm (never pending: see to_qkv_gemv). */
    /* Only the last row feeds the argmax: the other rows are computed only for a probe. */
    size_t rows = wants(R, step, LD_NO_LAYER, LD_TAG_LOGITS) ||
                          fed(R, step, LD_NO_LAYER, LD_TAG_LOGITS) ||
                          ld_fault_nan_at(R->F, LD_TAG_LOGITS, LD_NO_LAYER)
                      ? T
                      : 1;
    /* The last row, the one the argmax reads, always comes from the GEMV, so that the next token
     * does not depend on whether the other rows were wanted (cuBLAS for rows > LD_GEMV_MAX_T). */
    if (rows > 1)
        TRY(ld_cuda_matmul(R->S->blas, R->x + (T - rows) * H, H, W->lm_head, V, H, rows - 1,
                           R->logits, V, R->err));
    TRY(ld_cuda_gemv(R->x + (T - 1) * H, H, W->lm_head, V, H, 1, R->logits + (rows - 1) * V, V,
                     R->stream, R->err));
    TRY(probe(R, step, LD_NO_LAYER, LD_TAG_LOGITS, R->logits, rows, V));
    return ld_cuda_argmax(R->logits + (rows - 1) * V, V, R->argmax_parts, R->next, R->stream,
                          R->err);
}

/* ---- activations ----------------------------------------------------------------------------- */

/* Lays out the activations in one allocation: with base NULL only measures (*bytes). Every size is
 * a product of config-bounded numbers (config.h) and cannot overflow 64 bits; the byte total is
 * still checked. */
typedef struct carver {
    unsigned char *base;
    size_t off;
    bool ok;
} carver;

static void *carve(carver *cv, size_t n, size_t esize)
{
    size_t start = (cv->off + ACT_ALIGN - 1) / ACT_ALIGN * ACT_ALIGN, bytes;
    if (!ld_mul_size(n, esize, &bytes) || !ld_add_size(start, bytes, &cv->off)) {
        cv->ok = false;
        return NULL;
    }
    return cv->base ? cv->base + start : NULL;
}

static void layout(run *R, carver *cv)
{
    size_t T = R->tmax, H = R->H, qw = R->Hq * R->D, kw = R->Hkv * R->D, I = R->I;
    size_t kv = R->L * kw * R->cap, ns = R->split.n_split;
    R->h = R->h_buf[0] = carve(cv, T * H, 2);
    R->h_buf[1] = carve(cv, H, 2);
    R->x = carve(cv, T * H, 2);
    R->qkv = carve(cv, T * R->Wqkv, 2);
    R->q = carve(cv, T * qw, 2);
    R->qn = carve(cv, T * qw, 2);
    R->kn = carve(cv, T * kw, 2);
    R->kr = carve(cv, T * kw, 2);
    R->att = carve(cv, T * qw, 2);
    R->o = carve(cv, T * H, 2);
    R->gu = carve(cv, T * 2 * I, 2);
    R->act = carve(cv, T * I, 2);
    R->down = carve(cv, T * H, 2);
    R->logits = carve(cv, T * R->V, 2);
    R->k_cache = carve(cv, kv, 2);
    R->v_cache = carve(cv, kv, 2);
    R->split.ml = carve(cv, R->Hq * ns * 2, sizeof(float));
    R->split.acc = carve(cv, R->Hq * ns * R->D, sizeof(float));
    R->ids = carve(cv, T, sizeof(int32_t));
    R->pos0_dev = carve(cv, 1, sizeof(int32_t));
    R->next = carve(cv, 1, sizeof(int32_t));
    R->argmax_parts = carve(cv, ld_cuda_argmax_parts(R->V), sizeof(ld_cuda_argmax_part));
}

static ld_status run_alloc(run *R, int decode_steps)
{
    size_t steps = (size_t)decode_steps;
    ld_cuda_attn_split_size(R->cap, &R->split.n_split, &R->split.split_keys);
    carver cv = {.ok = true};
    layout(R, &cv);
    if (!cv.ok)
        return ld_error_set(R->err, LD_E_UNSUPPORTED, "activations for %zu tokens do not fit",
                            R->tmax);
    size_t bytes = cv.off;
    cudaError_t e = cudaMalloc(&R->block, bytes);
    if (e != cudaSuccess) {
        R->block = NULL;
        (void)cudaGetLastError();
        return ld_error_set(R->err, LD_E_NOMEM,
                            "cannot allocate %.2f GiB of device memory for the activations of %zu "
                            "tokens and a KV cache of %zu slots: %s",
                            (double)bytes / (1024.0 * 1024.0 * 1024.0), R->tmax, R->cap,
                            cudaGetErrorString(e));
    }
    cv = (carver){.base = R->block, .ok = true};
    layout(R, &cv);
    size_t n_host = (R->tmax + steps) + 2 * (1 + steps);
    LD_CUDA_CHECK(R->err, cudaMallocHost((void **)&R->host, n_host * sizeof(int32_t)));
    R->h_feed = R->host;
    R->h_pos = R->h_feed + R->tmax + steps;
    R->h_next = R->h_pos + 1 + steps;
    if (R->opt->feed) {
        size_t widest = LD_MAX(LD_MAX(R->H, 2 * R->I), LD_MAX(R->Wqkv, R->V));
        R->feed_host = malloc(R->tmax * widest * sizeof(ld_bf16));
        if (!R->feed_host)
            return ld_error_set(R->err, LD_E_NOMEM, "cannot allocate the feed's host buffer");
    }
    TRY(ld_cuda_probe_create(&R->probe, R->sink, R->stream, R->err));
    /* Zeroed like the reference's calloc: kv_append_off_by_one reads a slot nobody wrote. */
    size_t kv_bytes = R->L * R->Hkv * R->cap * R->D * sizeof(ld_bf16);
    LD_CUDA_CHECK(R->err, cudaMemsetAsync(R->k_cache, 0, kv_bytes, R->stream));
    LD_CUDA_CHECK(R->err, cudaMemsetAsync(R->v_cache, 0, kv_bytes, R->stream));
    return LD_OK;
}

static void run_free(run *R)
{
    if (R->graph)
        cudaGraphExecDestroy(R->graph);
    ld_cuda_probe_destroy(R->probe);
    cudaFreeHost(R->host);
    free(R->feed_host);
    cudaFree(R->block);
    (void)cudaGetLastError(); /* after a sticky error these fail too; nothing more to do */
    R->graph = NULL, R->probe = NULL, R->host = NULL, R->block = NULL, R->feed_host = NULL;
}

/* ---- the token loop -------------------------------------------------------------------------- */

/* As the reference: a step whose logits hold no finite value has argmax -1; its probes are
 * written, but without --follow there is no token to feed the next step. */
static ld_status no_next_token(run *R, int step)
{
    R->n_known = step + 1; /* the end record lists them, -1 last, as the reference's does */
    return ld_error_set(R->err, LD_E_INPUT,
                        "step %d: no logit is finite, so there is no next token to decode (run "
                        "with --follow REF.jsonl to feed another stream's tokens)",
                        step);
}

/* Records the decode step's work once, as a graph, and launches it. The stream leaves capture
 * mode whatever happens, or it would refuse all later work; a graph that fails to instantiate or
 * to launch is not kept. */
static ld_status capture_and_launch(run *R, int step)
{
    cudaGraph_t graph = NULL;
    LD_CUDA_CHECK(R->err, cudaStreamBeginCapture(R->stream, cudaStreamCaptureModeThreadLocal));
    ld_status st = step_forward(R, step, 1, false);
    cudaError_t e = cudaStreamEndCapture(R->stream, &graph);
    if (st == LD_OK && e != cudaSuccess)
        st = ld_cuda_fail(R->err, e, "cudaStreamEndCapture(R->stream, &graph)", __FILE__, __LINE__);
    if (st == LD_OK && (e = cudaGraphInstantiate(&R->graph, graph, 0)) != cudaSuccess) {
        R->graph = NULL;
        st = ld_cuda_fail(R->err, e, "cudaGraphInstantiate(&R->graph, graph, 0)", __FILE__,
                          __LINE__);
    }
    if (graph)
        cudaGraphDestroy(graph);
    if (st == LD_OK && (e = cudaGraphLaunch(R->graph, R->stream)) != cudaSuccess) {
        cudaGraphExecDestroy(R->graph);
        R->graph = NULL;
        st = ld_cuda_fail(R->err, e, "cudaGraphLaunch(R->graph, R->stream)", __FILE__, __LINE__);
    }
    return st;
}

/* As capture_and_launch. A driver that takes programmatic launches on a stream may still refuse
 * them while capturing, in the graph, or at the graph's launch: then the step is captured again
 * with plain launches (the same bits, cuda_common.cuh) and launched, which the rest of the run
 * keeps, and ld_cuda_timing.pdl says so. Nothing of the refused graph ran (a launch refused is
 * refused before any of its work is queued), so its error is no device fault; a sticky one fails
 * the retry too, and the first error is the one reported. */
static ld_status first_graph_launch(run *R, int step)
{
    ld_status st = capture_and_launch(R, step);
    if (st == LD_OK || !ld_cuda_pdl())
        return st;
    ld_error first = {st, ""};
    if (R->err)
        first = *R->err;
    (void)cudaGetLastError(); /* the failed call's error, not to be found by a later check */
    ld_cuda_set_pdl(false);
    if ((st = capture_and_launch(R, step)) != LD_OK) {
        if (R->err)
            *R->err = first;
        return first.code;
    }
    if (R->err)
        ld_error_clear(R->err); /* the first graph's error is no longer the run's */
    if (R->opt->notice) {
        char text[sizeof first.msg + 200];
        snprintf(text, sizeof text,
                 "the decode steps' CUDA graph was captured without programmatic launches, which "
                 "the device refused in it (%s): the same results, a little slower",
                 first.msg[0] ? first.msg : "no message");
        R->opt->notice(R->opt->notice_ctx, text);
    }
    return LD_OK;
}

/* Step s: its position and input token go to the device first (the token from the host when
 * following, else the previous step's argmax, device to device), then the work, then the argmax
 * comes back into pinned memory. */
static ld_status decode_step(run *R, int s, bool use_graph, size_t n_prompt)
{
    R->pos0 = R->h_pos[s];
    LD_CUDA_CHECK(R->err, cudaMemcpyAsync(R->pos0_dev, &R->h_pos[s], sizeof(int32_t),
                                          cudaMemcpyHostToDevice, R->stream));
    if (R->opt->follow)
        LD_CUDA_CHECK(R->err, cudaMemcpyAsync(R->ids, &R->h_feed[n_prompt + (size_t)s - 1],
                                              sizeof(int32_t), cudaMemcpyHostToDevice, R->stream));
    else
        LD_CUDA_CHECK(R->err, cudaMemcpyAsync(R->ids, R->next, sizeof(int32_t),
                                              cudaMemcpyDeviceToDevice, R->stream));
    if (use_graph) {
        if (R->opt->progress)
            R->opt->progress(R->opt->progress_ctx, s, R->n_steps, 0, (int)R->L);
        if (R->graph)
            LD_CUDA_CHECK(R->err, cudaGraphLaunch(R->graph, R->stream));
        else
            TRY(first_graph_launch(R, s));
    } else {
        TRY(step_forward(R, s, 1, true));
    }
    LD_CUDA_CHECK(R->err, cudaMemcpyAsync(&R->h_next[s], R->next, sizeof(int32_t),
                                          cudaMemcpyDeviceToHost, R->stream));
    if (!use_graph) { /* the stream path waits for each step, as the reference would */
        /* Writing each record as it lands, while the device still works on the step. */
        TRY(ld_cuda_probe_flush(R->probe, R->err));
        LD_CUDA_CHECK(R->err, cudaStreamSynchronize(R->stream));
    }
    return LD_OK;
}

/* The profiler's range around the phase opt->profile names: begun before the phase's first
 * launch, ended once its last has completed (a profiler counts the launches made in between). */
static ld_status profile_range(run *R, ld_cuda_profile_phase phase, bool begin)
{
    if (R->opt->profile != phase)
        return LD_OK;
    R->profiling = begin;
    LD_CUDA_CHECK(R->err, begin ? cudaProfilerStart() : cudaProfilerStop());
    return LD_OK;
}

static ld_status run_steps(run *R, const int32_t *prompt, size_t n_prompt, int decode_steps,
                           ld_cuda_timing *timing)
{
    size_t steps = (size_t)decode_steps;
    memcpy(R->h_feed, prompt, n_prompt * sizeof *prompt);
    if (R->opt->follow)
        memcpy(R->h_feed + n_prompt, R->opt->follow, steps * sizeof *prompt);
    R->h_pos[0] = 0;
    for (size_t s = 1; s <= steps; s++)
        R->h_pos[s] = (int32_t)(n_prompt + s - 1);

    TRY(profile_range(R, LD_CUDA_PROFILE_PREFILL, true));
    double t0 = ld_seconds();
    R->pos0 = 0;
    LD_CUDA_CHECK(R->err, cudaMemcpyAsync(R->ids, R->h_feed, n_prompt * sizeof(int32_t),
                                          cudaMemcpyHostToDevice, R->stream));
    LD_CUDA_CHECK(R->err, cudaMemcpyAsync(R->pos0_dev, &R->h_pos[0], sizeof(int32_t),
                                          cudaMemcpyHostToDevice, R->stream));
    ld_status st = step_forward(R, 0, n_prompt, true);
    if (st != LD_OK)
        return ld_error_prefix(R->err, "step 0 (prefill)");
    LD_CUDA_CHECK(R->err, cudaMemcpyAsync(&R->h_next[0], R->next, sizeof(int32_t),
                                          cudaMemcpyDeviceToHost, R->stream));
    TRY(ld_cuda_probe_flush(R->probe, R->err)); /* records written as they land */
    LD_CUDA_CHECK(R->err, cudaStreamSynchronize(R->stream));
    double t1 = ld_seconds();
    TRY(profile_range(R, LD_CUDA_PROFILE_PREFILL, false));
    TRY(profile_range(R, LD_CUDA_PROFILE_DECODE, true));

    /* Probes off: nothing in a decode step depends on the host, so it is captured once and
     * replayed; the host synchronizes only at the end (an argmax of -1 then feeds a NaN
     * embedding row to the next step, whose result is thrown away with the error below). */
    bool use_graph = !R->opt->no_graph && !R->sink && !R->opt->feed && !R->trap && steps > 0;
    bool follow = R->opt->follow != NULL;
    for (int s = 1; s <= decode_steps; s++) {
        if (!use_graph && !follow && R->h_next[s - 1] < 0)
            return no_next_token(R, s - 1);
        if ((st = decode_step(R, s, use_graph, n_prompt)) != LD_OK)
            return ld_error_prefix(R->err, "step %d", s);
    }
    LD_CUDA_CHECK(R->err, cudaStreamSynchronize(R->stream));
    TRY(profile_range(R, LD_CUDA_PROFILE_DECODE, false));
    for (int s = 1; use_graph && !follow && s <= decode_steps; s++)
        if (R->h_next[s - 1] < 0)
            return no_next_token(R, s - 1);
    TRY(ld_cuda_probe_flush(R->probe, R->err));
    if (timing) {
        timing->prefill_s = t1 - t0;
        timing->decode_s = ld_seconds() - t1;
        timing->graph = use_graph;
        timing->pdl = ld_cuda_pdl();
    }
    return LD_OK;
}

ld_status ld_cuda_session_generate(ld_cuda_session *S, const int32_t *prompt, size_t n_prompt,
                                   int decode_steps, const ld_cuda_run_options *opt,
                                   int32_t *tokens_out, int32_t *decoded_out,
                                   ld_cuda_timing *timing, ld_error *err)
{
    static const ld_cuda_run_options defaults = {0};
    if (!opt)
        opt = &defaults;
    const ld_config *c = &S->m->cfg;
    TRY(ld_generate_check_inputs(c, prompt, n_prompt, decode_steps, opt->follow, opt->n_follow, err));

    run R = {.S = S, .c = c, .F = &S->faults, .opt = opt, .sink = opt->sink, .stream = S->stream,
             .err = err};
    R.H = (size_t)c->hidden_size, R.Hq = (size_t)c->num_heads, R.Hkv = (size_t)c->num_kv_heads;
    R.D = (size_t)c->head_dim, R.I = (size_t)c->intermediate_size, R.V = (size_t)c->vocab_size;
    R.L = (size_t)c->num_layers, R.Wqkv = (R.Hq + 2 * R.Hkv) * R.D;
    R.sizes = ld_config_tag_sizes(c);
    R.cap = n_prompt + (size_t)decode_steps;
    R.tmax = n_prompt;
    R.n_steps = 1 + decode_steps;
    const char *trap = getenv("LAYERDIFF_CUDA_TRAP_AFTER");
    if (trap && *trap) {
        if (ld_key_parse(trap, &R.trap_key, err) != LD_OK)
            return ld_error_prefix(err, "LAYERDIFF_CUDA_TRAP_AFTER");
        R.trap = true;
    }

    /* Programmatic launches (cuda_common.cuh: the same bits) for this thread's kernels during the
     * run, where the device allows them; the caller's setting comes back after it. */
    bool pdl_before = ld_cuda_pdl();
    ld_cuda_set_pdl(!opt->no_pdl);
    ld_status st = run_alloc(&R, decode_steps);
    if (st == LD_OK)
        st = run_steps(&R, prompt, n_prompt, decode_steps, timing);
    if (st != LD_OK) { /* the records of the work done: all of it, or after a device error
                          every one whose data landed (the first error is the one reported) */
        ld_error later;
        (void)ld_cuda_probe_flush(R.probe, &later);
        if (R.profiling)
            (void)cudaProfilerStop(); /* the range ends with the run, whatever ended it */
    }
    int known = st == LD_OK ? decode_steps + 1 : R.n_known;
    for (int s = 0; s < known; s++)
        tokens_out[s] = R.h_next[s];
    for (int s = 1; s < known; s++)
        decoded_out[s - 1] = opt->follow ? opt->follow[s - 1] : R.h_next[s - 1];
    run_free(&R);
    ld_cuda_set_pdl(pdl_before);
    return st;
}

/* ---- sessions -------------------------------------------------------------------------------- */

static ld_status session_init(ld_cuda_session *s, ld_error *err)
{
    const ld_config *c = &s->m->cfg;
    if (c->head_dim % 2 != 0 || c->head_dim > 1024 || c->num_heads % c->num_kv_heads != 0)
        return ld_error_set(err, LD_E_UNSUPPORTED,
                            "the CUDA path needs an even head_dim <= 1024 and num_attention_heads "
                            "a multiple of num_key_value_heads (head_dim %d, heads %d / %d)",
                            c->head_dim, c->num_heads, c->num_kv_heads);
    LD_CUDA_CHECK(err, cudaSetDevice(0));
    LD_CUDA_CHECK(err, cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    LD_CUBLAS_CHECK(err, cublasCreate(&s->blas));
    LD_CUDA_CHECK(err, cudaMalloc(&s->blas_ws, BLAS_WORKSPACE));
    TRY(ld_cuda_matmul_setup(s->blas, s->stream, s->blas_ws, BLAS_WORKSPACE, err));
    return ld_cuda_weights_upload(&s->W, s->m, &s->faults, err);
}

ld_status ld_cuda_session_create(ld_cuda_session **out, const ld_model *m,
                                 const ld_fault_set *faults, ld_error *err)
{
    *out = NULL;
    TRY(ld_cuda_device_check(NULL, 0, err));
    if (faults)
        TRY(ld_fault_set_validate(faults, &m->cfg, err));
    ld_cuda_session *s = calloc(1, sizeof *s);
    if (!s)
        return ld_error_set(err, LD_E_NOMEM, "cannot allocate a CUDA session");
    s->m = m;
    if (faults)
        s->faults = *faults;
    ld_status st = session_init(s, err);
    if (st != LD_OK) {
        ld_cuda_session_destroy(s);
        return st;
    }
    *out = s;
    return LD_OK;
}

void ld_cuda_session_destroy(ld_cuda_session *s)
{
    if (!s)
        return;
    ld_cuda_weights_free(&s->W);
    if (s->blas)
        cublasDestroy(s->blas);
    cudaFree(s->blas_ws);
    if (s->stream)
        cudaStreamDestroy(s->stream);
    (void)cudaGetLastError();
    free(s);
}

ld_status ld_cuda_generate(const ld_model *m, const int32_t *prompt, size_t n_prompt,
                           int decode_steps, const ld_forward_options *opt,
                           int32_t *tokens_out,
                           int32_t *decoded_out, ld_error *err)
{
    if (opt->emulate != LD_F32)
        return ld_error_set(err, LD_E_USAGE,
                            "the CUDA path computes in bf16 itself: emulation is for the "
                            "reference");
    TRY(ld_generate_check_inputs(&m->cfg, prompt, n_prompt, decode_steps, opt->follow,
                                 opt->n_follow, err));
    const char *graph = getenv("LAYERDIFF_CUDA_GRAPH");
    const char *fuse = getenv("LAYERDIFF_CUDA_FUSE_NORM");
    const char *tiled = getenv("LAYERDIFF_CUDA_TILED_ATTN");
    const char *pdl = getenv("LAYERDIFF_CUDA_PDL");
    const char *prof = getenv("LAYERDIFF_CUDA_PROFILE");
    ld_cuda_profile_phase profile = LD_CUDA_PROFILE_NONE;
    if (prof && !strcmp(prof, "prefill"))
        profile = LD_CUDA_PROFILE_PREFILL;
    else if (prof && !strcmp(prof, "decode"))
        profile = LD_CUDA_PROFILE_DECODE;
    else if (prof && *prof)
        return ld_error_set(err, LD_E_USAGE,
                            "LAYERDIFF_CUDA_PROFILE is '%.40s': it must be prefill or decode (the "
                            "phase the profiler's range holds), or unset",
                            prof);
    ld_cuda_run_options ro = {.sink = opt->sink, .feed = opt->feed, .follow = opt->follow,
                              .n_follow = opt->n_follow,
                              .no_graph = graph && !strcmp(graph, "0"),
                              .no_fuse_norm = fuse && !strcmp(fuse, "0"),
                              .no_tiled_attn = tiled && !strcmp(tiled, "0"),
                              .no_pdl = pdl && !strcmp(pdl, "0"), .profile = profile,
                              .progress = opt->progress, .progress_ctx = opt->progress_ctx,
                              .notice = opt->notice, .notice_ctx = opt->notice_ctx};
    ld_cuda_session *s;
    TRY(ld_cuda_session_create(&s, m, opt->faults, err));
    ld_status st = ld_cuda_session_generate(s, prompt, n_prompt, decode_steps, &ro, tokens_out,
                                            decoded_out, NULL, err);
    ld_cuda_session_destroy(s);
    return st;
}

/* weights.c — device weights (weights.h): one walk over the model that first only sizes the
 * allocation, then, once it exists, converts and copies each tensor into its slot. */
#include "weights.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SLOT_ALIGN 256             /* bytes; cuBLAS and vector loads like aligned rows */
#define STAGE_ELEMS ((size_t)1 << 23) /* bf16 values converted per host-to-device copy (16 MiB) */

typedef struct uploader {
    unsigned char *dev; /* NULL while sizing */
    size_t off;         /* bytes used so far */
    uint16_t *stage;    /* [STAGE_ELEMS] pinned host staging buffer (copy pass only) */
    ld_error *err;
} uploader;

/* Converts t (any stored dtype) to bf16 and copies it to dst. */
static ld_status upload_tensor(uploader *u, ld_bf16 *dst, const ld_tensor *t)
{
    for (size_t i0 = 0; i0 < t->numel; i0 += STAGE_ELEMS) {
        size_t n = LD_MIN(STAGE_ELEMS, t->numel - i0);
        if (t->dtype == LD_BF16) {
            memcpy(u->stage, (const unsigned char *)t->data + 2 * i0, 2 * n);
        } else {
            for (size_t i = 0; i < n; i++)
                u->stage[i] = ld_f32_to_bf16(ld_load_f32(t->data, t->dtype, i0 + i));
        }
        LD_CUDA_CHECK(u->err, cudaMemcpy(dst + i0, u->stage, 2 * n, cudaMemcpyHostToDevice));
    }
    return LD_OK;
}

/* Reserves one slot holding the n tensors back to back (row-stacked) and, in the copy pass, fills
 * it. *out gets the slot's device address (meaningless while sizing). */
static ld_status place(uploader *u, const ld_bf16 **out, const ld_tensor *const *ts, size_t n)
{
    size_t start = (u->off + SLOT_ALIGN - 1) / SLOT_ALIGN * SLOT_ALIGN, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        size_t b;
        if (!ld_mul_size(ts[i]->numel, 2, &b) || !ld_add_size(bytes, b, &bytes))
            return ld_error_set(u->err, LD_E_UNSUPPORTED, "weights: %s is too large", ts[i]->name);
    }
    if (!ld_add_size(start, bytes, &u->off))
        return ld_error_set(u->err, LD_E_UNSUPPORTED, "weights: the model is too large");
    *out = u->dev ? (const ld_bf16 *)(u->dev + start) : NULL;
    if (!u->dev)
        return LD_OK;
    ld_bf16 *dst = (ld_bf16 *)(u->dev + start);
    for (size_t i = 0; i < n; i++) {
        ld_status st = upload_tensor(u, dst, ts[i]);
        if (st != LD_OK)
            return ld_error_prefix(u->err, "uploading %s", ts[i]->name);
        dst += ts[i]->numel;
    }
    return LD_OK;
}

#define PLACE(out, ...)                                                                            \
    do {                                                                                           \
        const ld_tensor *const ts_[] = {__VA_ARGS__};                                              \
        ld_status st_ = place(u, (out), ts_, LD_ARRAY_LEN(ts_));                                   \
        if (st_ != LD_OK)                                                                          \
            return st_;                                                                            \
    } while (0)

static bool is_tied(const ld_model *m)
{
    return m->cfg.tie_word_embeddings || m->lm_head.data == m->embed.data;
}

static ld_status walk(uploader *u, const ld_model *m, const ld_fault_set *F, ld_cuda_weights *w)
{
    int L = m->cfg.num_layers;
    PLACE(&w->embed, &m->embed);
    for (int l = 0; l < L; l++) {
        const ld_layer_weights *lw = &m->layers[l];
        ld_cuda_layer *d = &w->layers[l];
        /* swap_gate_up: the loader bound gate and up the wrong way round. o_proj_weight_shift: it
         * bound layer l+1's o_proj (the last layer wraps to layer 0). */
        bool swap = ld_fault_at(F, LD_FAULT_SWAP_GATE_UP, l) != NULL;
        const ld_tensor *wo = ld_fault_at(F, LD_FAULT_O_PROJ_WEIGHT_SHIFT, l)
                                  ? &m->layers[(l + 1) % L].wo
                                  : &lw->wo;
        PLACE(&d->attn_norm, &lw->attn_norm);
        PLACE(&d->wqkv, &lw->wq, &lw->wk, &lw->wv);
        PLACE(&d->q_norm, &lw->q_norm);
        PLACE(&d->k_norm, &lw->k_norm);
        PLACE(&d->wo, wo);
        PLACE(&d->mlp_norm, &lw->mlp_norm);
        PLACE(&d->wgu, swap ? &lw->wu : &lw->wg, swap ? &lw->wg : &lw->wu);
        PLACE(&d->wd, &lw->wd);
    }
    PLACE(&w->final_norm, &m->final_norm);
    if (is_tied(m))
        w->lm_head = w->embed;
    else
        PLACE(&w->lm_head, &m->lm_head);
    return LD_OK;
}

ld_status ld_cuda_weights_upload(ld_cuda_weights *w, const ld_model *m, const ld_fault_set *faults,
                                 ld_error *err)
{
    memset(w, 0, sizeof *w);
    w->layers = calloc((size_t)m->cfg.num_layers, sizeof *w->layers);
    if (!w->layers)
        return ld_error_set(err, LD_E_NOMEM, "cannot allocate %d layer descriptors",
                            m->cfg.num_layers);
    w->n_layers = m->cfg.num_layers;
    uploader u = {.err = err};
    ld_status st = walk(&u, m, faults, w); /* sizing pass */
    if (st != LD_OK)
        return st;
    w->bytes = u.off;
    cudaError_t e = cudaMalloc(&w->block, w->bytes);
    if (e != cudaSuccess) {
        w->block = NULL;
        (void)cudaGetLastError(); /* not sticky: keep it out of later checks */
        return ld_error_set(err, LD_E_NOMEM, "cannot allocate %.2f GiB of device memory for the "
                            "weights: %s", (double)w->bytes / (1024.0 * 1024.0 * 1024.0),
                            cudaGetErrorString(e));
    }
    LD_CUDA_CHECK(err, cudaMallocHost((void **)&u.stage, STAGE_ELEMS * sizeof *u.stage));
    u.dev = w->block;
    u.off = 0;
    st = walk(&u, m, faults, w); /* copy pass */
    cudaFreeHost(u.stage);
    return st;
}

void ld_cuda_weights_free(ld_cuda_weights *w)
{
    if (!w)
        return;
    cudaFree(w->block);
    free(w->layers);
    memset(w, 0, sizeof *w);
}

ld_dtype ld_cuda_weights_rounded_from(const ld_model *m)
{
    const ld_tensor *top[] = {&m->embed, &m->final_norm, &m->lm_head};
    for (size_t i = 0; i < LD_ARRAY_LEN(top); i++)
        if (top[i]->dtype != LD_BF16)
            return top[i]->dtype;
    for (int l = 0; l < m->cfg.num_layers; l++) {
        const ld_layer_weights *lw = &m->layers[l];
        const ld_tensor *ts[] = {&lw->attn_norm, &lw->wq,       &lw->wk, &lw->wv,
                                 &lw->q_norm,    &lw->k_norm,   &lw->wo, &lw->mlp_norm,
                                 &lw->wg,        &lw->wu,       &lw->wd};
        for (size_t i = 0; i < LD_ARRAY_LEN(ts); i++)
            if (ts[i]->dtype != LD_BF16)
                return ts[i]->dtype;
    }
    return LD_BF16;
}

/* weights.h — the model's weights on the device: uploaded once as bf16 into one allocation, carved
 * into named pointers, with q/k/v and gate/up stacked so that each pair or triple is one GEMM.
 * The two loader faults (swap_gate_up, o_proj_weight_shift) are real here: they change which
 * checkpoint tensor lands in which slot. Not the activations (forward.c). */
#ifndef LD_CUDA_WEIGHTS_H
#define LD_CUDA_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>

#include "cuda_check.h"
#include "faults.h"
#include "model.h"

typedef struct ld_cuda_layer {
    const ld_bf16 *attn_norm; /* [H]            input_layernorm */
    const ld_bf16 *wqkv;      /* [(Hq+2Hkv)·D, H] q_proj rows, then k_proj, then v_proj */
    const ld_bf16 *q_norm;    /* [D] */
    const ld_bf16 *k_norm;    /* [D] */
    const ld_bf16 *wo;        /* [H, Hq·D]       o_proj */
    const ld_bf16 *mlp_norm;  /* [H]            post_attention_layernorm */
    const ld_bf16 *wgu;       /* [2I, H]        gate_proj rows, then up_proj rows */
    const ld_bf16 *wd;        /* [H, I]         down_proj */
} ld_cuda_layer;

typedef struct ld_cuda_weights {
    void *block;              /* the one device allocation; every pointer below is inside it */
    size_t bytes;
    const ld_bf16 *embed;     /* [V, H] */
    const ld_bf16 *final_norm;/* [H] */
    const ld_bf16 *lm_head;   /* [V, H]; the same pointer as embed when tied */
    ld_cuda_layer *layers;    /* [num_layers], host memory */
    int n_layers;
} ld_cuda_weights;

/* Converts every weight to bf16 (exactly for bf16 checkpoints; f32 and f16 values are rounded to
 * nearest even) and uploads it. faults may be NULL. LD_E_DEVICE / LD_E_NOMEM on failure; *w is
 * then safe to pass to ld_cuda_weights_free. */
ld_status ld_cuda_weights_upload(ld_cuda_weights *w, const ld_model *m, const ld_fault_set *faults,
                                 ld_error *err);
void ld_cuda_weights_free(ld_cuda_weights *w);

/* The storage dtype of the checkpoint's weights when it is not bf16 (the one the upload rounds
 * from), or LD_BF16 when every weight is stored in bf16 and nothing is rounded. */
ld_dtype ld_cuda_weights_rounded_from(const ld_model *m);

#endif

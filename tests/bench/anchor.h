/* anchor.h — the llama2.c-style fp32 decode step bench_reference races (anchor_llama2c.c): its
 * weights (fp32 copies of a checkpoint's) and activations. */
#ifndef LD_BENCH_ANCHOR_H
#define LD_BENCH_ANCHOR_H

#include <stddef.h>

typedef struct anchor_layer {
    float *attn_norm, *wq, *wk, *wv, *wo, *mlp_norm, *wg, *wu, *wd;
} anchor_layer;

typedef struct anchor_model {
    size_t L, H, Q, KV, I, V; /* layers, hidden, Hq·D, Hkv·D, intermediate, vocabulary */
    anchor_layer *layers;
    float *final_norm, *lm_head;
} anchor_model;

typedef struct anchor_state {
    float *x, *xb, *xb2, *q, *k, *v, *hb, *hb2, *logits;
} anchor_state;

/* One decode step on s->x, one copy per ISA level (x86-64: v4, v3 and the baseline; elsewhere
 * the baseline only). */
void anchor_step_v4(const anchor_model *m, anchor_state *s);
void anchor_step_v3(const anchor_model *m, anchor_state *s);
void anchor_step_base(const anchor_model *m, anchor_state *s);

#endif

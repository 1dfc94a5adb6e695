/* anchor_llama2c.c — the anchor bench_reference measures the reference's decode against: one
 * decode step written the way llama2.c's run.c writes it, in fp32 on fp32 weights (its matmul: a
 * plain float loop per row, rows split over OpenMP threads, compiled -Ofast so the compiler may
 * vectorize and reorder the sum), on the shapes of a Qwen3 checkpoint. RMSNorm, SiLU and the
 * residual adds are here; attention over the KV cache is left out (at 33 positions it is under
 * 1 % of a step's work), which favours the anchor. CMake compiles this file once per x86 ISA
 * level (ANCHOR_FN names each copy), so each kernel path races an anchor built for the same ISA. */
#include <math.h>
#include <stddef.h>

#include "anchor.h"

/* xout[d] = W[d,n] · x[n], llama2.c's matmul. */
static void matmul(float *xout, const float *x, const float *w, size_t n, size_t d)
{
#pragma omp parallel for
    for (size_t i = 0; i < d; i++) {
        float val = 0.0f;
        for (size_t j = 0; j < n; j++)
            val += w[i * n + j] * x[j];
        xout[i] = val;
    }
}

static void rmsnorm(float *o, const float *x, const float *w, size_t n)
{
    float ss = 0.0f;
    for (size_t j = 0; j < n; j++)
        ss += x[j] * x[j];
    ss = 1.0f / sqrtf(ss / (float)n + 1e-6f);
    for (size_t j = 0; j < n; j++)
        o[j] = w[j] * (ss * x[j]);
}

void ANCHOR_FN(const anchor_model *m, anchor_state *s)
{
    size_t H = m->H, Q = m->Q, KV = m->KV, I = m->I;
    for (size_t l = 0; l < m->L; l++) {
        const anchor_layer *w = &m->layers[l];
        rmsnorm(s->xb, s->x, w->attn_norm, H);
        matmul(s->q, s->xb, w->wq, H, Q);
        matmul(s->k, s->xb, w->wk, H, KV);
        matmul(s->v, s->xb, w->wv, H, KV);
        matmul(s->xb2, s->q, w->wo, Q, H); /* attention left out: o_proj reads q */
        for (size_t i = 0; i < H; i++)
            s->x[i] += s->xb2[i];
        rmsnorm(s->xb, s->x, w->mlp_norm, H);
        matmul(s->hb, s->xb, w->wg, H, I);
        matmul(s->hb2, s->xb, w->wu, H, I);
        for (size_t i = 0; i < I; i++) {
            float g = s->hb[i];
            s->hb[i] = g / (1.0f + expf(-g)) * s->hb2[i];
        }
        matmul(s->xb, s->hb, w->wd, I, H);
        for (size_t i = 0; i < H; i++)
            s->x[i] += s->xb[i];
    }
    rmsnorm(s->xb, s->x, m->final_norm, H);
    matmul(s->logits, s->xb, m->lm_head, H, m->V);
}

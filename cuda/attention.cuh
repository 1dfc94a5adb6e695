/* attention.cuh — causal grouped-query attention over the KV cache, on the device, for prefill
 * (one pass per query, 16 queries of a head per block) and decode (split over the cached keys,
 * then a reduction); twin of ld_ref_attention (reference/ops.h). */
#ifndef LD_CUDA_ATTENTION_CUH
#define LD_CUDA_ATTENTION_CUH

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda_check.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which kernel computes a call without a split (prefill). Both compute the same bits; only the
 * speed differs. AUTO: the tiled kernel where the shape allows it (head size 32, 64 or 128, caches
 * 16-byte aligned, the device's shared memory large enough) and the prompt fills a tile (16
 * queries), else one block per query. TILED fails (LD_E_UNSUPPORTED) where the shape does not
 * allow it. A split (decode) always runs one block per (query, split). */
typedef enum ld_cuda_attn_kernel {
    LD_ATTN_KERNEL_AUTO = 0,
    LD_ATTN_KERNEL_PER_QUERY, /* one block per query walks all of its keys */
    LD_ATTN_KERNEL_TILED      /* one block per 16 queries of a head, keys read once per tile */
} ld_cuda_attn_kernel;

/* Attention variants, the twin of ld_attn_params (all false for the correct kernel), and the
 * kernel choice (not a variant: it changes no bit). */
typedef struct ld_cuda_attn_params {
    double scale;      /* 1/sqrt(D), or the fault attn_scale value (used as f32) */
    bool causal;       /* false: fault no_causal_mask */
    bool gqa_modulo;   /* fault gqa_modulo: query head j reads kv head j mod Hkv, not j/(Hq/Hkv) */
    bool softmax_bf16; /* fault softmax_bf16: exponentials and their running sum kept in bf16 */
    ld_cuda_attn_kernel kernel;
} ld_cuda_attn_params;

/* Keys per split of the decode path and per pass over shared memory. */
#define LD_ATTN_CHUNK 128

/* Scratch of the split path: for each (token, query head, split) the running max and sum
 * (ml [T·Hq·n_split, 2]) and the unnormalized output (acc [T·Hq·n_split, D]), f32. Split s covers
 * key slots [s·split_keys, (s+1)·split_keys); split_keys is a multiple of LD_ATTN_CHUNK. */
typedef struct ld_cuda_attn_split {
    size_t n_split, split_keys;
    float *ml, *acc;
} ld_cuda_attn_split;

/* The split geometry for a cache of cap slots: at most 1024 splits of a multiple of
 * LD_ATTN_CHUNK keys. */
void ld_cuda_attn_split_size(size_t cap, size_t *n_split, size_t *split_keys);

/* q [T, Hq, D] at positions *pos0 .. *pos0+T−1 (pos0 in device memory); k_cache, v_cache
 * [Hkv, cap, D] hold slots 0 .. *pos0+T−1 (slot s = position s). A query at position p reads
 * slots 0..p (all n_kv = *pos0+T slots without the causal mask). out [T, Hq, D] gets
 * softmax(q·kᵀ·scale)·v in bf16, accumulated in fp32. split NULL: every query walks all its keys
 * (ap->kernel picks how); otherwise the keys are split and the partial results combined by a
 * second kernel (not launched when the geometry has one split: it would change no bit). */
ld_status ld_cuda_attention(const ld_bf16 *q, const ld_bf16 *k_cache, const ld_bf16 *v_cache,
                            size_t cap, size_t T, size_t Hq, size_t Hkv, size_t D,
                            const int32_t *pos0, const ld_cuda_attn_params *ap,
                            const ld_cuda_attn_split *split, ld_bf16 *out, cudaStream_t stream,
                            ld_error *err);

#ifdef __cplusplus
}
#endif
#endif

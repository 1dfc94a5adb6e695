/* qk_norm_rope.cuh — per-head q/k RMSNorm fused with RoPE and the KV-cache append, on the device;
 * twin of ld_ref_head_rmsnorm, then ld_ref_rope, then the reference's kv_append (reference/). */
#ifndef LD_CUDA_QK_NORM_ROPE_CUH
#define LD_CUDA_QK_NORM_ROPE_CUH

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda_check.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The settings of one call; all zero / false (but eps, theta) for the correct kernel. */
typedef struct ld_cuda_qk_params {
    double eps;         /* RMSNorm epsilon (fault rmsnorm_eps: another value) */
    int block;          /* > 0: fault qk_norm_block, RMS over block-element chunks of a head */
    bool skip;          /* fault qk_norm_skip: the norm is left out */
    double theta;       /* RoPE base (fault rope_theta: another value) */
    bool interleaved;   /* fault rope_interleaved: pairs (2i, 2i+1) instead of (i, i+D/2) */
    bool kv_off_by_one; /* fault kv_append_off_by_one: K/V written one slot early (the caller sets
                           it for decode steps only, as the bug does) */
    /* Fault nan=TAG: the flat row-major index, in the tag's logical tensor, of the element made
     * NaN inside the kernel (so that it flows on into RoPE and the cache); -1: none. */
    int64_t nan_q_norm, nan_k_norm, nan_q_rope, nan_k_rope;
} ld_cuda_qk_params;

/* qkv [T, (Hq+2Hkv)·D] holds the raw projections of T tokens at positions *pos0 .. *pos0+T−1
 * (pos0 in device memory, so that one captured graph serves every decode step): q heads, then k
 * heads, then v heads. For every (token, q or k head): RMSNorm over D with q_norm_w / k_norm_w
 * [D], then RoPE (rotate_half) at the token's position. Writes
 *   q_rope  [T, Hq, D];
 *   k_cache, v_cache [Hkv, cap, D] (this layer's): slot pos gets the token's k (after RoPE) and v;
 *   q_norm_out [T,Hq,D], k_norm_out [T,Hkv,D], k_rope_out [T,Hkv,D]: the intermediates, only
 *   where the pointer is not NULL (a probe wants them).
 * D must be even; the caller guarantees pos0 + T <= cap. */
ld_status ld_cuda_qk_norm_rope(const ld_bf16 *qkv, size_t T, size_t Hq, size_t Hkv, size_t D,
                               const ld_bf16 *q_norm_w, const ld_bf16 *k_norm_w,
                               const int32_t *pos0, const ld_cuda_qk_params *p, ld_bf16 *q_rope,
                               ld_bf16 *k_cache, ld_bf16 *v_cache, size_t cap, ld_bf16 *q_norm_out,
                               ld_bf16 *k_norm_out, ld_bf16 *k_rope_out, cudaStream_t stream,
                               ld_error *err);

#ifdef __cplusplus
}
#endif
#endif

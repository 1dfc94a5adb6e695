/* gemv.cuh — y = x·Wᵀ for a few rows of x (decode: one token), a kernel of ours that streams the
 * bf16 weights once; twin of ld_ref_matmul (reference/ops.h) with bf16 inputs, fp32 accumulation
 * and one rounding to bf16, as the cuBLAS GEMM it stands in for (matmul.h chooses between them). */
#ifndef LD_CUDA_GEMV_CUH
#define LD_CUDA_GEMV_CUH

#include <stddef.h>

#include "cuda_check.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most rows of x one launch takes: each weight row is read once for all of them. */
#define LD_GEMV_MAX_T 4

/* y[T,N] = x[T,K] · W[N,K]ᵀ, all row-major bf16, x rows ldx elements apart, y rows ldy apart, W
 * packed; 1 <= T <= LD_GEMV_MAX_T (T = 0 or N = 0: nothing). Each output is an fp32 sum in a
 * fixed order that depends only on K (not on T, N, the alignment or the launch), rounded once
 * to bf16 (nearest even): row t of y is the same bits whatever T is. 16-byte loads when W and x
 * are 16-byte aligned and K and ldx are multiples of 8, element loads (same order) otherwise. */
ld_status ld_cuda_gemv(const ld_bf16 *x, size_t ldx, const ld_bf16 *w, size_t N, size_t K,
                       size_t T, ld_bf16 *y, size_t ldy, cudaStream_t stream, ld_error *err);

/* The MLP's gate/up GEMV with its activation, one launch: W [2I, K] stacks gate over up, gu
 * [T, 2I] (rows ldgu apart) receives gate | up exactly as ld_cuda_gemv(x, ldx, W, 2I, K, T, gu,
 * ldgu) writes them, and act [T, I] (rows ldact apart) exactly what ld_cuda_silu_mul(gu, gu + I,
 * T, I, ldgu, gelu, act) computes from them. Saves silu_mul's launch and its re-read of gu; the
 * caller probes gate, up and act afterwards, so it must not use this where a probe point between
 * them changes gu (a nan fault or a feed of gate_proj or up_proj). */
ld_status ld_cuda_gemv_glu(const ld_bf16 *x, size_t ldx, const ld_bf16 *w, size_t I, size_t K,
                           size_t T, ld_bf16 *gu, size_t ldgu, bool gelu, ld_bf16 *act,
                           size_t ldact, cudaStream_t stream, ld_error *err);

#ifdef __cplusplus
}
#endif
#endif

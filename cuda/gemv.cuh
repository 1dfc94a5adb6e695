/* gemv.cuh — y = x·Wᵀ for a few rows of x (decode: one token), a kernel of ours that streams the
 * bf16 weights once; twin of ld_ref_matmul (reference/ops.h) with bf16 inputs, fp32 accumulation
 * and one rounding to bf16, as the cuBLAS GEMM it stands in for (matmul.h chooses between them). */
#ifndef LD_CUDA_GEMV_CUH
#define LD_CUDA_GEMV_CUH

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* A decode step's residual add + RMSNorm done by the GEMV that reads its output (one token):
 * h_out = h + delta (rounded to bf16; delta alone under skip_h; h unchanged when delta is NULL;
 * a NaN at index nan_at, −1 for none), x = RMSNorm(h_out) · w — exactly the bits
 * ld_cuda_add_rmsnorm (rmsnorm.cuh) writes for one row — and the GEMV then reads x. Saves the
 * norm's launch and its round trip through memory; every block of the GEMV norms the row itself
 * (K <= LD_GEMV_NORM_MAX_K values from L2). h_out (required when delta or nan_at is set) must not
 * overlap h: blocks read h while one writes h_out. x_out, when not NULL, receives x (for its
 * probe). */
#define LD_GEMV_NORM_MAX_K 4096

typedef struct ld_cuda_gemv_norm {
    const ld_bf16 *h;     /* [K] the residual stream */
    const ld_bf16 *delta; /* [K] added to it, or NULL */
    bool skip_h;          /* fault skip_attn_residual: h_out = delta */
    int64_t nan_at;       /* fault nan at the residual: its index in [0, K), or -1 */
    const ld_bf16 *w;     /* [K] the norm's weight */
    double eps;
    bool mul_var;         /* fault rmsnorm_mul_var */
    ld_bf16 *h_out;       /* [K] the new residual stream, or NULL (only without delta and NaN) */
    ld_bf16 *x_out;       /* [K] the normed row, or NULL */
} ld_cuda_gemv_norm;

/* y[N] = x · W[N,K]ᵀ with x the normed row of nm, summed as ld_cuda_gemv sums it (T = 1). */
ld_status ld_cuda_norm_gemv(const ld_cuda_gemv_norm *nm, const ld_bf16 *w, size_t N, size_t K,
                            ld_bf16 *y, cudaStream_t stream, ld_error *err);

/* ld_cuda_gemv_glu (T = 1, gu [2I], act [I]) of the normed row of nm. */
ld_status ld_cuda_norm_gemv_glu(const ld_cuda_gemv_norm *nm, const ld_bf16 *w, size_t I,
                                size_t K, ld_bf16 *gu, bool gelu, ld_bf16 *act,
                                cudaStream_t stream, ld_error *err);

#ifdef __cplusplus
}
#endif
#endif

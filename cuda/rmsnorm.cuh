/* rmsnorm.cuh — the residual add fused with the RMSNorm that reads its result, on the device;
 * twin of ld_ref_add followed by ld_ref_rmsnorm (reference/ops.h). */
#ifndef LD_CUDA_RMSNORM_CUH
#define LD_CUDA_RMSNORM_CUH

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda_check.h"

#ifdef __cplusplus
extern "C" {
#endif

/* For each row r of the residual stream h[rows, n] (bf16, updated in place):
 *   delta != NULL: h[r,:] = bf16(h[r,:] + delta[r,:]); skip_h (fault skip_attn_residual) writes
 *                  bf16(delta[r,:]) alone;
 *   nan_at >= 0:   element nan_at of h (flat, row-major) becomes NaN (fault nan=attn_residual or
 *                  nan=layer_out: the NaN flows into the norm, as in the reference);
 *   out[r,:] = bf16(h[r,:] · s · w[:]) with s = 1/sqrt(mean(h[r,:]²) + eps) in fp32; mul_var
 *              (fault rmsnorm_mul_var) multiplies by mean(h[r,:]²) + eps instead.
 * delta == NULL and nan_at < 0: h is only read (the norm alone). */
ld_status ld_cuda_add_rmsnorm(ld_bf16 *h, const ld_bf16 *delta, bool skip_h, int64_t nan_at,
                              const ld_bf16 *w, size_t rows, size_t n, double eps, bool mul_var,
                              ld_bf16 *out, cudaStream_t stream, ld_error *err);

#ifdef __cplusplus
}
#endif
#endif

/* matmul.h — y = x·Wᵀ on the device (bf16 in and out, fp32 accumulation, TF32 and reduced-precision
 * reductions off); twin of ld_ref_matmul (reference/ops.h). Through cuBLAS, which chooses the
 * algorithm deterministically for a given shape and device, or, for a few rows of x (decode), our
 * GEMV (gemv.cuh). */
#ifndef LD_CUDA_MATMUL_H
#define LD_CUDA_MATMUL_H

#include <stddef.h>

#include <cublas_v2.h>

#include "cuda_check.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Binds handle to stream with the numerics of every matmul here: default math (no TF32 — which
 * only concerns f32 inputs anyway), reductions in the f32 accumulator type even though the output
 * is bf16, host pointer mode, and a fixed workspace (workspace_bytes of device memory), so that
 * cuBLAS never allocates while a CUDA graph is being captured. */
ld_status ld_cuda_matmul_setup(cublasHandle_t handle, cudaStream_t stream, void *workspace,
                               size_t workspace_bytes, ld_error *err);

/* y[T,N] = x[T,K] · W[N,K]ᵀ, all row-major bf16: x rows are ldx elements apart, y rows ldy apart
 * (views into fused buffers), W is packed. Each output accumulates in fp32 and is rounded once.
 * On the handle's stream: cuBLAS for T > LD_GEMV_MAX_T, our GEMV (gemv.cuh) for fewer rows. */
ld_status ld_cuda_matmul(cublasHandle_t handle, const ld_bf16 *x, size_t ldx, const ld_bf16 *w,
                         size_t N, size_t K, size_t T, ld_bf16 *y, size_t ldy, ld_error *err);

#ifdef __cplusplus
}
#endif
#endif

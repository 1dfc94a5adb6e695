/* matmul.c — the cuBLAS matmul (matmul.h).
 *
 * Row-major over column-major, derived once. cuBLAS reads a buffer as column-major: a row-major
 * matrix M[r, c] whose rows are ld elements apart IS, to cuBLAS, the column-major matrix Mᵀ[c, r]
 * with leading dimension ld. So
 *     x, row-major [T, K] (ldx)  is column-major xᵀ [K, T], lda ldx;
 *     W, row-major [N, K] (K)    is column-major Wᵀ [K, N], ld K;
 *     y, row-major [T, N] (ldy)  is column-major yᵀ [N, T], ld ldy.
 * We want y = x·Wᵀ, i.e. yᵀ = W·xᵀ: an [N, T] = [N, K]·[K, T] product. cuBLAS computes
 * C = op(A)·op(B) with C = yᵀ (m = N, n = T, ldc = ldy); op(A) must be W [N, K], and the buffer of
 * W holds Wᵀ, so A = W's buffer with op_T (lda = K); op(B) must be xᵀ [K, T], which x's buffer
 * already is, so B = x's buffer with op_N (ldb = ldx); k = K.
 *     cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, 1, W, K, x, ldx, 0, y, ldy)
 * Types: A, B, C CUDA_R_16BF; compute CUBLAS_COMPUTE_32F (fp32 accumulation, no TF32 — the
 * _FAST_TF32 / _FAST_16BF variants are what would allow lower precision); alpha and beta f32.
 *
 * T <= LD_GEMV_MAX_T (a decode step, a short prompt) goes to our GEMV instead (gemv.cu): the same
 * numerics (bf16 in, fp32 sums, one rounding to bf16), a fixed summation order, and each weight
 * read once at near the memory bandwidth, where a GEMM tiled for large T is not. */
#include "matmul.h"

#include <limits.h>

#include "gemv.cuh"

ld_status ld_cublas_fail(ld_error *err, cublasStatus_t s, const char *stmt, const char *file,
                         int line)
{
    const char *base = file;
    for (const char *p = file; *p; p++)
        if (*p == '/')
            base = p + 1;
    return ld_error_set(err, LD_E_DEVICE, "%s:%d: %s: %s (%s)", base, line, stmt,
                        cublasGetStatusName(s), cublasGetStatusString(s));
}

ld_status ld_cuda_matmul_setup(cublasHandle_t handle, cudaStream_t stream, void *workspace,
                               size_t workspace_bytes, ld_error *err)
{
    LD_CUBLAS_CHECK(err, cublasSetStream(handle, stream));
    const cublasMath_t mode =
        (cublasMath_t)(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
    LD_CUBLAS_CHECK(err, cublasSetMathMode(handle, mode));
    LD_CUBLAS_CHECK(err, cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_HOST));
    LD_CUBLAS_CHECK(err, cublasSetWorkspace(handle, workspace, workspace_bytes));
    return LD_OK;
}

ld_status ld_cuda_matmul(cublasHandle_t handle, const ld_bf16 *x, size_t ldx, const ld_bf16 *w,
                         size_t N, size_t K, size_t T, ld_bf16 *y, size_t ldy, ld_error *err)
{
    if (N > INT_MAX || K > INT_MAX || T > INT_MAX || ldx > INT_MAX || ldy > INT_MAX)
        return ld_error_set(err, LD_E_UNSUPPORTED,
                            "matmul [%zu x %zu] x [%zu x %zu]^T: a dimension exceeds cuBLAS's int",
                            T, K, N, K);
    if (ldx < K || ldy < N)
        return ld_error_set(err, LD_E_INTERNAL, "matmul: row strides %zu, %zu below K %zu, N %zu",
                            ldx, ldy, K, N);
    if (N == 0 || T == 0)
        return LD_OK;
    if (T <= LD_GEMV_MAX_T) {
        cudaStream_t stream;
        LD_CUBLAS_CHECK(err, cublasGetStream(handle, &stream));
        return ld_cuda_gemv(x, ldx, w, N, K, T, y, ldy, stream, err);
    }
    const float alpha = 1.0f, beta = 0.0f;
    LD_CUBLAS_CHECK(err, cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)T, (int)K,
                                      &alpha, w, CUDA_R_16BF, (int)K, x, CUDA_R_16BF, (int)ldx,
                                      &beta, y, CUDA_R_16BF, (int)ldy, CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT));
    return LD_OK;
}

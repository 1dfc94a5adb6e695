/* rmsnorm.cu — residual add + RMSNorm (rmsnorm.cuh). Parallelization: one block of LD_ROW_THREADS
 * threads per row, ld_add_rmsnorm_row (cuda_common.cuh: each thread owns elements tid,
 * tid + blockDim, ..., holds them in registers, its loads all issued before any store, and the
 * block sum of squares has a fixed order); rows wider than LD_NORM_REGS elements per thread take
 * the same steps with h and w read twice. */
#include "cuda_common.cuh"
#include "rmsnorm.cuh"

__global__ static void add_rmsnorm_kernel(ld_bf16 *h, const ld_bf16 *delta, bool skip_h,
                                          int64_t nan_at, const ld_bf16 *w, size_t n, float eps,
                                          bool mul_var, ld_bf16 *out)
{
    __shared__ float red[32];
    ld_grid_wait();
    size_t r = blockIdx.x;
    ld_bf16 *hr = h + r * n;
    const ld_bf16 *dr = delta ? delta + r * n : NULL;
    bool update = delta != NULL || nan_at >= 0;
    if (n <= (size_t)LD_NORM_REGS * blockDim.x) {
        int64_t nan_row = nan_at >= (int64_t)(r * n) && nan_at < (int64_t)((r + 1) * n)
                              ? nan_at - (int64_t)(r * n)
                              : -1;
        ld_add_rmsnorm_row(hr, dr, skip_h, nan_row, w, n, eps, mul_var, update ? hr : NULL,
                           out + r * n, NULL, red);
        return;
    }
    /* Wider rows: the same operations in the same order, h and w read twice. */
    float ss = 0.0f;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        float v = ld_residual_value(hr[i], dr, dr ? dr[i] : (ld_bf16)0, skip_h, nan_at, r * n + i);
        if (update)
            hr[i] = ld_f2bf(v);
        ss += __fmul_rn(v, v);
    }
    float scale = ld_rms_scale(ld_block_sum(ss, red), n, eps, mul_var);
    /* Each thread reads back only the elements it wrote itself: no barrier needed. */
    for (size_t i = threadIdx.x; i < n; i += blockDim.x)
        out[r * n + i] = ld_norm_value(ld_bf2f(hr[i]), scale, w[i]);
}

extern "C" ld_status ld_cuda_add_rmsnorm(ld_bf16 *h, const ld_bf16 *delta, bool skip_h,
                                         int64_t nan_at, const ld_bf16 *w, size_t rows, size_t n,
                                         double eps, bool mul_var, ld_bf16 *out,
                                         cudaStream_t stream, ld_error *err)
{
    if (rows == 0 || n == 0)
        return LD_OK;
    LD_CUDA_CHECK(err, ld_launch(add_rmsnorm_kernel, (unsigned)rows, LD_ROW_THREADS, 0, stream, h,
                                 delta, skip_h, nan_at, w, n, (float)eps, mul_var, out));
    return LD_OK;
}

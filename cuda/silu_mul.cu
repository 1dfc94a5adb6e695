/* silu_mul.cu — silu(g)·u (silu_mul.cuh). Parallelization: element-wise, one thread per output
 * element in a grid-stride loop; no reduction, so the only difference from the twin is expf / erff
 * on the device (within 2 ulp of f32) before the bf16 rounding. */
#include "cuda_common.cuh"
#include "silu_mul.cuh"

__global__ static void silu_mul_kernel(const ld_bf16 *g, const ld_bf16 *u, size_t rows,
                                       size_t cols, size_t ld_in, bool gelu, ld_bf16 *out)
{
    ld_grid_wait();
    size_t n = rows * cols, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += stride) {
        size_t r = e / cols, i = e % cols;
        out[e] = ld_f2bf(ld_act_mul(ld_bf2f(g[r * ld_in + i]), ld_bf2f(u[r * ld_in + i]), gelu));
    }
}

extern "C" ld_status ld_cuda_silu_mul(const ld_bf16 *g, const ld_bf16 *u, size_t rows, size_t cols,
                                      size_t ld_in, bool gelu, ld_bf16 *out, cudaStream_t stream,
                                      ld_error *err)
{
    size_t n = rows * cols;
    if (n == 0)
        return LD_OK;
    size_t blocks = (n + LD_ROW_THREADS - 1) / LD_ROW_THREADS;
    if (blocks > 65536)
        blocks = 65536; /* the grid-stride loop covers the rest */
    LD_CUDA_CHECK(err, ld_launch(silu_mul_kernel, (unsigned)blocks, LD_ROW_THREADS, 0, stream, g, u,
                                 rows, cols, ld_in, gelu, out));
    return LD_OK;
}

/* argmax.cu — argmax of one row (argmax.cuh). Parallelization: one block of ARGMAX_THREADS
 * threads; thread t scans elements t, t + blockDim, ... in increasing order keeping the first
 * largest finite value, then a shared-memory tree merges (value, index) pairs, preferring the
 * larger value and, on equal values, the lower index. Exact: the twin gives the same index. */
#include "argmax.cuh"
#include "cuda_common.cuh"

#define ARGMAX_THREADS 1024

__global__ static void argmax_kernel(const ld_bf16 *x, size_t n, int32_t *out)
{
    __shared__ float best_v[ARGMAX_THREADS];
    __shared__ long long best_i[ARGMAX_THREADS];
    float bv = 0.0f;
    long long bi = -1;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        float v = ld_bf2f(x[i]);
        if (isfinite(v) && (bi < 0 || v > bv)) {
            bv = v;
            bi = (long long)i;
        }
    }
    best_v[threadIdx.x] = bv;
    best_i[threadIdx.x] = bi;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            float ov = best_v[threadIdx.x + half];
            long long oi = best_i[threadIdx.x + half];
            long long mi = best_i[threadIdx.x];
            float mv = best_v[threadIdx.x];
            if (oi >= 0 && (mi < 0 || ov > mv || (ov == mv && oi < mi))) {
                best_v[threadIdx.x] = ov;
                best_i[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0)
        *out = (int32_t)best_i[0];
}

extern "C" ld_status ld_cuda_argmax(const ld_bf16 *x, size_t n, int32_t *out, cudaStream_t stream,
                                    ld_error *err)
{
    if (n > INT32_MAX)
        return ld_error_set(err, LD_E_INTERNAL, "argmax: %zu values do not fit an int32 index", n);
    argmax_kernel<<<1, ARGMAX_THREADS, 0, stream>>>(x, n, out);
    LD_CUDA_CHECK_LAUNCH(err);
    return LD_OK;
}

/* argmax.cu — argmax of one row (argmax.cuh), in two launches so that a vocabulary-sized row is
 * read by many blocks at once instead of one.
 *
 * Parallelization: pass 1 (argmax_partial_kernel) cuts the row into ld_cuda_argmax_parts(n)
 * contiguous slices of ceil(n / parts) values, one block of ARGMAX_THREADS threads each; thread t
 * scans its slice's elements t, t + blockDim, ... in increasing order keeping the first largest
 * finite value, a shared-memory tree merges the block's (value, index) pairs, and thread 0 writes
 * the block's pair to parts[b] (index −1: nothing finite there). Pass 2 (argmax_merge_kernel),
 * one block, merges the pairs by the same rule. The rule — the larger value wins, on equal values
 * the lower index, a pair with index −1 loses — picks the maximum of a total order on the pairs,
 * so the merge tree cannot change the answer: it is exactly the twin's (the first largest finite
 * value; −0 equals +0), whatever the slice sizes, and no atomics are involved. */
#include "argmax.cuh"
#include "cuda_common.cuh"

#define ARGMAX_THREADS 256
#define ARGMAX_MERGE_THREADS 1024 /* = ARGMAX_MAX_PARTS: one pair per thread in pass 2 */
#define ARGMAX_SLICE 2048         /* values per block of pass 1, until ARGMAX_MAX_PARTS */
static_assert(ARGMAX_MERGE_THREADS == LD_CUDA_ARGMAX_MAX_PARTS, "one pair per merge thread");

/* Whether pair (ov, oi) beats (mv, mi). */
__device__ __forceinline__ bool argmax_better(float ov, int32_t oi, float mv, int32_t mi)
{
    return oi >= 0 && (mi < 0 || ov > mv || (ov == mv && oi < mi));
}

/* Merges the block's pairs in shared memory (blockDim.x a power of two); thread 0 gets the
 * winner. */
__device__ __forceinline__ void argmax_block_merge(float *bv, int32_t *bi)
{
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half && argmax_better(bv[threadIdx.x + half], bi[threadIdx.x + half],
                                                bv[threadIdx.x], bi[threadIdx.x])) {
            bv[threadIdx.x] = bv[threadIdx.x + half];
            bi[threadIdx.x] = bi[threadIdx.x + half];
        }
        __syncthreads();
    }
}

__global__ static void argmax_partial_kernel(const ld_bf16 *x, size_t n, size_t slice,
                                             ld_cuda_argmax_part *parts)
{
    __shared__ float best_v[ARGMAX_THREADS];
    __shared__ int32_t best_i[ARGMAX_THREADS];
    ld_grid_wait();
    size_t begin = (size_t)blockIdx.x * slice, end = begin + slice < n ? begin + slice : n;
    float bv = 0.0f;
    int32_t bi = -1;
    for (size_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
        float v = ld_bf2f(x[i]);
        if (isfinite(v) && (bi < 0 || v > bv)) {
            bv = v;
            bi = (int32_t)i;
        }
    }
    best_v[threadIdx.x] = bv;
    best_i[threadIdx.x] = bi;
    argmax_block_merge(best_v, best_i);
    if (threadIdx.x == 0) {
        parts[blockIdx.x].value = best_v[0];
        parts[blockIdx.x].index = best_i[0];
    }
}

/* One block of 1024 threads: the bounds hold the compiler to 64 registers a thread, which a
 * block that size can have (without them, a later edit could make the launch fail). */
__global__ static void __launch_bounds__(ARGMAX_MERGE_THREADS)
    argmax_merge_kernel(const ld_cuda_argmax_part *parts, size_t n_parts, int32_t *out)
{
    __shared__ float best_v[ARGMAX_MERGE_THREADS];
    __shared__ int32_t best_i[ARGMAX_MERGE_THREADS];
    ld_grid_wait();
    bool have = threadIdx.x < n_parts;
    best_v[threadIdx.x] = have ? parts[threadIdx.x].value : 0.0f;
    best_i[threadIdx.x] = have ? parts[threadIdx.x].index : -1;
    argmax_block_merge(best_v, best_i);
    if (threadIdx.x == 0)
        *out = best_i[0];
}

extern "C" size_t ld_cuda_argmax_parts(size_t n)
{
    size_t parts = (n + ARGMAX_SLICE - 1) / ARGMAX_SLICE;
    return parts < 1 ? 1 : parts > LD_CUDA_ARGMAX_MAX_PARTS ? LD_CUDA_ARGMAX_MAX_PARTS : parts;
}

extern "C" ld_status ld_cuda_argmax(const ld_bf16 *x, size_t n, ld_cuda_argmax_part *parts,
                                    int32_t *out, cudaStream_t stream, ld_error *err)
{
    if (n > INT32_MAX)
        return ld_error_set(err, LD_E_INTERNAL, "argmax: %zu values do not fit an int32 index", n);
    size_t n_parts = ld_cuda_argmax_parts(n), slice = (n + n_parts - 1) / n_parts;
    LD_CUDA_CHECK(err, ld_launch(argmax_partial_kernel, (unsigned)n_parts, ARGMAX_THREADS, 0,
                                 stream, x, n, slice, parts));
    LD_CUDA_CHECK(err, ld_launch(argmax_merge_kernel, 1, ARGMAX_MERGE_THREADS, 0, stream, parts,
                                 n_parts, out));
    return LD_OK;
}

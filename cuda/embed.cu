/* embed.cu — the embedding gather (embed.cuh). Parallelization: one block per token; the block's
 * threads stride over the H elements of the row, so consecutive threads copy consecutive bf16
 * values (coalesced). A pure copy: the result is bit-identical to the reference twin. */
#include "cuda_common.cuh"
#include "embed.cuh"

__global__ static void embed_kernel(const ld_bf16 *table, size_t V, size_t H, const int32_t *ids,
                                    ld_bf16 *out)
{
    ld_grid_wait();
    size_t t = blockIdx.x;
    int32_t id = ids[t];
    bool valid = id >= 0 && (size_t)id < V;
    const ld_bf16 *row = table + (valid ? (size_t)id : 0) * H;
    for (size_t i = threadIdx.x; i < H; i += blockDim.x)
        out[t * H + i] = valid ? row[i] : LD_BF16_NAN;
}

extern "C" ld_status ld_cuda_embed(const ld_bf16 *table, size_t V, size_t H, const int32_t *ids,
                                   size_t T, ld_bf16 *out, cudaStream_t stream, ld_error *err)
{
    if (T == 0)
        return LD_OK;
    LD_CUDA_CHECK(err, ld_launch(embed_kernel, (unsigned)T, LD_ROW_THREADS, 0, stream, table, V, H,
                                 ids, out));
    return LD_OK;
}

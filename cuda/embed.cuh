/* embed.cuh — the embedding gather on the device; twin of ld_ref_embed (reference/ops.h). */
#ifndef LD_CUDA_EMBED_CUH
#define LD_CUDA_EMBED_CUH

#include <stddef.h>
#include <stdint.h>

#include "cuda_check.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[T,H] = table[ids[t], :] with table [V,H] and ids [T] in device memory. An id outside [0, V)
 * (only a device-side argmax that found no finite logit can produce one) yields a row of NaN
 * instead of a read out of bounds. */
ld_status ld_cuda_embed(const ld_bf16 *table, size_t V, size_t H, const int32_t *ids, size_t T,
                        ld_bf16 *out, cudaStream_t stream, ld_error *err);

#ifdef __cplusplus
}
#endif
#endif

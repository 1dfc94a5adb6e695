/* argmax.cuh — greedy decoding's argmax over one logits row, on the device; twin of
 * ld_ref_argmax (reference/ops.h). */
#ifndef LD_CUDA_ARGMAX_CUH
#define LD_CUDA_ARGMAX_CUH

#include <stddef.h>
#include <stdint.h>

#include "cuda_check.h"

#ifdef __cplusplus
extern "C" {
#endif

/* *out (device) = index of the largest finite value of x[n] (lowest index on ties), or −1 when no
 * value is finite. The result stays on the device so that the next decode step can read it
 * without a round trip through the host. */
ld_status ld_cuda_argmax(const ld_bf16 *x, size_t n, int32_t *out, cudaStream_t stream,
                         ld_error *err);

#ifdef __cplusplus
}
#endif
#endif

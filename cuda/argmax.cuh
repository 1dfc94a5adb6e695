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

/* The best (value, index) of one slice of the row; index −1 when nothing there is finite. */
typedef struct ld_cuda_argmax_part {
    float value;
    int32_t index;
} ld_cuda_argmax_part;

#define LD_CUDA_ARGMAX_MAX_PARTS 1024

/* How many slices (blocks of the first pass, parts[] entries) a row of n values is cut into:
 * between 1 and LD_CUDA_ARGMAX_MAX_PARTS, a function of n alone. */
size_t ld_cuda_argmax_parts(size_t n);

/* *out (device) = index of the largest finite value of x[n] (lowest index on ties), or −1 when no
 * value is finite. parts (device, ld_cuda_argmax_parts(n) entries) is scratch. The result stays
 * on the device so that the next decode step can read it without a round trip through the host. */
ld_status ld_cuda_argmax(const ld_bf16 *x, size_t n, ld_cuda_argmax_part *parts, int32_t *out,
                         cudaStream_t stream, ld_error *err);

#ifdef __cplusplus
}
#endif
#endif

/* silu_mul.cuh — the MLP activation silu(g)·u on the device; twin of ld_ref_silu_mul
 * (reference/ops.h). */
#ifndef LD_CUDA_SILU_MUL_CUH
#define LD_CUDA_SILU_MUL_CUH

#include <stdbool.h>
#include <stddef.h>

#include "cuda_check.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[r, i] = bf16(silu(g[r, i]) · u[r, i]) for rows × cols elements, silu(x) = x / (1 + e^−x) in
 * fp32; gelu (fault silu_as_gelu) uses x·Φ(x) (erf form). g and u are read with row stride ld_in
 * (so both can live in one fused [rows, 2·cols] gate|up buffer); out is packed [rows, cols]. */
ld_status ld_cuda_silu_mul(const ld_bf16 *g, const ld_bf16 *u, size_t rows, size_t cols,
                           size_t ld_in, bool gelu, ld_bf16 *out, cudaStream_t stream,
                           ld_error *err);

#ifdef __cplusplus
}
#endif
#endif

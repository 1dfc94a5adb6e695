/* poke.cuh — deliberate corruption on the device: the nan=TAG fault's single NaN, the illegal
 * memory access used to test how a sticky device error is reported, and a copy that lands late,
 * to test that every kernel waits for the one before it. Not part of any correct forward pass. */
#ifndef LD_CUDA_POKE_CUH
#define LD_CUDA_POKE_CUH

#include <stddef.h>
#include <stdint.h>

#include "cuda_check.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element flat (row-major, of a logical [rows, width] tensor whose rows are ld elements apart)
 * becomes NaN. Twin of the reference's `data[numel / 2] = NAN` at a probe point. */
ld_status ld_cuda_poke_nan(ld_bf16 *base, size_t width, size_t ld, int64_t flat,
                           cudaStream_t stream, ld_error *err);

/* Enqueues a kernel that writes to an invalid address: the context gets a sticky
 * cudaErrorIllegalAddress. For tests of the error path only. */
ld_status ld_cuda_trap(cudaStream_t stream, ld_error *err);

/* Enqueues one block that lets the next kernel on the stream start at once — a kernel launched
 * programmatically behind it (ld_cuda_set_pdl) may begin right away — and writes the n bytes at
 * src to dst only delay_us microseconds later. A kernel that read dst before its ld_grid_wait
 * would see the old bytes. For tests only. */
ld_status ld_cuda_late_copy(void *dst, const void *src, size_t n, unsigned delay_us,
                            cudaStream_t stream, ld_error *err);

#ifdef __cplusplus
}
#endif
#endif

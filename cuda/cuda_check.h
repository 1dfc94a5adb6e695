/* cuda_check.h — what every file of the CUDA path shares: the bf16 storage type seen from C, the
 * two check macros (CUDA runtime: LD_CUDA_CHECK from layerdiff/probes_cuda.h; cuBLAS: here). Both
 * report file, line and the statement, and return LD_E_DEVICE from the enclosing function, which
 * returns ld_status. Includable from C and CUDA C++. Not the kernels' device helpers
 * (cuda_common.cuh). */
#ifndef LD_CUDA_CHECK_H
#define LD_CUDA_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "layerdiff/error.h"
#include "layerdiff/probes_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A bf16 value in device memory: the top 16 bits of an IEEE f32 (round to nearest even when
 * narrowing, ld_f32_to_bf16). Kernels and cuBLAS (CUDA_R_16BF) read the same bits. */
typedef uint16_t ld_bf16;

/* "FILE:LINE: STATEMENT: CUBLAS_STATUS_X (description)", LD_E_DEVICE. */
ld_status ld_cublas_fail(ld_error *err, cublasStatus_t s, const char *stmt, const char *file,
                         int line);

#define LD_CUBLAS_CHECK(err, stmt)                                                                 \
    do {                                                                                           \
        cublasStatus_t ld_cublas_s_ = (stmt);                                                      \
        if (ld_cublas_s_ != CUBLAS_STATUS_SUCCESS)                                                 \
            return ld_cublas_fail((err), ld_cublas_s_, #stmt, __FILE__, __LINE__);                 \
    } while (0)

/* Programmatic dependent launch (sm_90 and later; cuda_common.cuh's ld_launch and ld_grid_wait):
 * whether the kernels this thread launches through ld_launch may start while the kernel before them
 * on the stream is still running. ld_cuda_set_pdl(true) turns it on where the device and the
 * compiled kernels support it (compute capability 9.0 and kernels compiled for it, not JIT'd from
 * older PTX), and returns whether it is on; false turns it off. Off until a thread turns it on.
 * Per thread: a session's run sets it for the thread that runs it. */
bool ld_cuda_set_pdl(bool on);
bool ld_cuda_pdl(void);

/* Checks the launch of the kernel just enqueued (bad configuration, missing image). Errors of the
 * kernel's execution surface later, at the next synchronizing call. */
#define LD_CUDA_CHECK_LAUNCH(err) LD_CUDA_CHECK(err, cudaGetLastError())

#ifdef __cplusplus
}
#endif
#endif

/* cuda_check.h — what every file of the CUDA path shares: the bf16 storage type seen from C, the
 * two check macros (CUDA runtime: LD_CUDA_CHECK from layerdiff/probes_cuda.h; cuBLAS: here). Both
 * report file, line and the statement, and return LD_E_DEVICE from the enclosing function, which
 * returns ld_status. Includable from C and CUDA C++. Not the kernels' device helpers
 * (cuda_common.cuh). */
#ifndef LD_CUDA_CHECK_H
#define LD_CUDA_CHECK_H

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

/* Checks the launch of the kernel just enqueued (bad configuration, missing image). Errors of the
 * kernel's execution surface later, at the next synchronizing call. */
#define LD_CUDA_CHECK_LAUNCH(err) LD_CUDA_CHECK(err, cudaGetLastError())

#ifdef __cplusplus
}
#endif
#endif

/* cuda_profiler_api.h — EMULATION ONLY (tests/unit/cuda/emu): the profiler's range, which the
 * emulation counts the launches of (emu_runtime.cpp, LD_EMU_COUNT=1). */
#ifndef EMU_CUDA_PROFILER_API_H
#define EMU_CUDA_PROFILER_API_H
#include "cuda_runtime_api.h"
#ifdef __cplusplus
extern "C" {
#endif
cudaError_t cudaProfilerStart(void);
cudaError_t cudaProfilerStop(void);
#ifdef __cplusplus
}
#endif
#endif

/* poke.cu — deliberate corruption (poke.cuh). One thread each: these write one value. */
#include "cuda_common.cuh"
#include "poke.cuh"

__global__ static void poke_nan_kernel(ld_bf16 *at) { *at = LD_BF16_NAN; }

/* bad comes from the host, so the compiler cannot see the write is invalid. */
__global__ static void trap_kernel(volatile int *bad) { *bad = 1; }

extern "C" ld_status ld_cuda_poke_nan(ld_bf16 *base, size_t width, size_t ld, int64_t flat,
                                      cudaStream_t stream, ld_error *err)
{
    if (flat < 0 || width == 0)
        return LD_OK;
    size_t f = (size_t)flat;
    poke_nan_kernel<<<1, 1, 0, stream>>>(base + (f / width) * ld + f % width);
    LD_CUDA_CHECK_LAUNCH(err);
    return LD_OK;
}

extern "C" ld_status ld_cuda_trap(cudaStream_t stream, ld_error *err)
{
    trap_kernel<<<1, 1, 0, stream>>>((volatile int *)(uintptr_t)0x10);
    LD_CUDA_CHECK_LAUNCH(err);
    return LD_OK;
}

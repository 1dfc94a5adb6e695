/* poke.cu — deliberate corruption and lateness (poke.cuh). poke_nan and trap: one thread each,
 * writing one value. late_copy: one block, which lets the next kernel start at once and copies
 * only after a delay. */
#include "cuda_common.cuh"
#include "poke.cuh"

__global__ static void poke_nan_kernel(ld_bf16 *at) { *at = LD_BF16_NAN; }

/* bad comes from the host, so the compiler cannot see the write is invalid. */
__global__ static void trap_kernel(volatile int *bad) { *bad = 1; }

/* Lets the next kernel's blocks start (griddepcontrol.launch_dependents, with no wait before it:
 * it reads nothing another kernel writes before the delay), spins for delay_ns of the device's
 * global timer, then copies n bytes. */
__global__ static void late_copy_kernel(unsigned char *dst, const unsigned char *src, size_t n,
                                        unsigned long long delay_ns)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
#if defined(__CUDA_ARCH__)
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    while (t - t0 < delay_ns);
#else
    (void)delay_ns;
#endif
#if defined(LD_EMU_LATE_COPY)
    if (threadIdx.x == 0) /* the CPU emulation: lands at the next kernel's wait, or its end */
        LD_EMU_LATE_COPY(dst, src, n);
#else
    for (size_t i = threadIdx.x; i < n; i += blockDim.x)
        dst[i] = src[i];
#endif
}

extern "C" ld_status ld_cuda_late_copy(void *dst, const void *src, size_t n, unsigned delay_us,
                                       cudaStream_t stream, ld_error *err)
{
    late_copy_kernel<<<1, 256, 0, stream>>>((unsigned char *)dst, (const unsigned char *)src, n,
                                            1000ull * delay_us);
    LD_CUDA_CHECK_LAUNCH(err);
    return LD_OK;
}

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

/* emu_device.h — EMULATION ONLY: CUDA device-side constructs on the CPU, force-included into every
 * .cu file (after transform.py). Not CUDA: only what the kernels of cuda/ and probes/cuda/ use.
 * Each CUDA thread of a block is an OS thread; blocks of a grid run one after another; __shared__
 * becomes static (one block at a time); __syncthreads is a std::barrier; warp shuffles go through
 * a per-warp buffer and barrier (__syncwarp is that barrier); atomics and fences are the host's. */
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include "cuda_runtime_api.h"
using std::isfinite;
using std::isinf;
using std::isnan;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __restrict__ __restrict
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
void __syncthreads();
void emu_shfl(const void *in, void *out, size_t n, int xor_mask);
template <class T> T __shfl_xor_sync(unsigned, T v, int o)
{
    T r;
    emu_shfl(&v, &r, sizeof(T), o);
    return r;
}
void __syncwarp(unsigned mask = 0xffffffffu);
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
/* Kernel attributes: the emulation has no shared memory limit to raise. */
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
template <class F> cudaError_t cudaFuncSetAttribute(F, enum cudaFuncAttribute, int)
{
    return cudaSuccess;
}
/* The emulation is an sm_90 device, and its kernels count as compiled for it. */
struct cudaFuncAttributes {
    int ptxVersion, binaryVersion;
};
template <class F> cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *a, F)
{
    a->ptxVersion = a->binaryVersion = 90;
    return cudaSuccess;
}
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
/* Atomics and fences: the threads of a block are OS threads, so these are the host's own. Loads
 * past L1 (__ldcg) are plain loads: the emulation has no caches. */
inline unsigned atomicAdd(unsigned *a, unsigned v)
{
    return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
template <class T> T __ldcg(const T *p) { return *(const volatile T *)p; }
void *emu_dyn_smem();
/* Programmatic launches: poke.cu's late copy lands only when a thread of a later kernel reaches
 * ld_grid_wait, or when that kernel ends (emu_runtime.cpp), so a kernel that reads its input
 * before waiting sees the old bytes, as it could on a GPU. */
void emu_grid_wait();
void emu_late_copy(void *dst, const void *src, size_t n);
#define LD_EMU_GRID_WAIT emu_grid_wait
#define LD_EMU_LATE_COPY emu_late_copy
void emu_set_sticky();
void emu_enqueue(cudaStream_t s, std::function<void()> f);
void emu_run_grid(dim3 grid, dim3 block, size_t smem, std::function<void()> body);
template <class K> auto emu_launch(K k, dim3 grid, dim3 block, size_t smem = 0, cudaStream_t s = 0)
{
    return [=](auto... args) {
        emu_enqueue(s, [=]() { emu_run_grid(grid, block, smem, [=]() { k(args...); }); });
    };
}
/* A programmatic launch is a plain one here: kernels run one after another, so a kernel's
 * griddepcontrol.wait (not compiled: no __CUDA_ARCH__) would have nothing to wait for. */
struct cudaLaunchConfig_t {
    dim3 gridDim, blockDim;
    size_t dynamicSmemBytes;
    cudaStream_t stream;
    cudaLaunchAttribute *attrs;
    unsigned numAttrs;
};
extern "C" cudaError_t emu_launch_refused(const cudaLaunchConfig_t *c);
template <class... P, class... A>
cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t *c, void (*k)(P...), A... args)
{
    if (cudaError_t e = emu_launch_refused(c))
        return e;
    emu_launch(k, c->gridDim, c->blockDim, c->dynamicSmemBytes, c->stream)(P(args)...);
    return cudaPeekAtLastError();
}

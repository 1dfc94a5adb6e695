/* cuda_common.cuh — device helpers the kernels share: bf16 <-> f32 (bit-identical to the host's
 * ld_bf16_to_f32 / ld_f32_to_bf16), block-wide reductions in fp32, and the launch sizes. CUDA C++
 * only (included by .cu files); the C side sees only cuda_check.h and the kernels' .cuh headers. */
#ifndef LD_CUDA_COMMON_CUH
#define LD_CUDA_COMMON_CUH

#include <stdint.h>

#include "cuda_check.h"

/* Widening is exact: bf16 is the top half of an f32. */
__device__ __forceinline__ float ld_bf2f(ld_bf16 b) { return __uint_as_float((uint32_t)b << 16); }

/* Round to nearest even; NaN stays NaN (quiet, sign and top payload kept); overflow goes to Inf.
 * The same bits as the host's ld_f32_to_bf16, so a kernel and its reference twin round alike. */
__device__ __forceinline__ ld_bf16 ld_f2bf(float f)
{
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (ld_bf16)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ld_bf16)(u >> 16);
}

/* f rounded to bf16 precision, kept as f32 (the value a bf16 store followed by a load gives). */
__device__ __forceinline__ float ld_round_bf16(float f) { return ld_bf2f(ld_f2bf(f)); }

#define LD_BF16_NAN ((ld_bf16)0x7fc0u)

/* The MLP activation of one element, in fp32: silu(g)·u, silu(x) = x·sigmoid(x); the silu_as_gelu
 * bug computes gelu(g)·u, gelu(x) = x·Φ(x) (erf form). One definition for every kernel that
 * computes it (silu_mul.cu, the fused gate/up GEMV of gemv.cu), so that they give the same bits. */
__device__ __forceinline__ float ld_act_mul(float g, float u, bool gelu)
{
    float a = gelu ? __fmul_rn(__fmul_rn(0.5f, g),
                               __fadd_rn(1.0f, erff(__fmul_rn(g, 0.70710678118654752f))))
                   : g / __fadd_rn(1.0f, expf(-g));
    return __fmul_rn(a, u);
}

/* Threads per block of the row-wise kernels: a multiple of 32 (the reductions below need whole
 * warps) and enough to cover a 1024-wide row with 4 elements per thread. */
#define LD_ROW_THREADS 256

/* Sum of v over the block, in fp32: a butterfly within each warp, then every thread adds the
 * warp sums in warp order. The order is fixed, so the result is reproducible; every thread gets
 * it. red must hold 32 floats; blockDim.x must be a multiple of 32. */
__device__ __forceinline__ float ld_block_sum(float v, float *red)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = (int)threadIdx.x / 32, nwarps = (int)blockDim.x / 32;
    __syncthreads(); /* red may still be read by a previous call */
    if ((threadIdx.x & 31) == 0)
        red[warp] = v;
    __syncthreads();
    float r = red[0];
    for (int w = 1; w < nwarps; w++)
        r += red[w];
    return r;
}

/* Maximum of v over the block (fmaxf: a NaN loses against any number), same pattern. */
__device__ __forceinline__ float ld_block_max(float v, float *red)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int warp = (int)threadIdx.x / 32, nwarps = (int)blockDim.x / 32;
    __syncthreads();
    if ((threadIdx.x & 31) == 0)
        red[warp] = v;
    __syncthreads();
    float r = red[0];
    for (int w = 1; w < nwarps; w++)
        r = fmaxf(r, red[w]);
    return r;
}

#endif

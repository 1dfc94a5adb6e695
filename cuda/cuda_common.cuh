/* cuda_common.cuh — device helpers the kernels share: bf16 <-> f32 (bit-identical to the host's
 * ld_bf16_to_f32 / ld_f32_to_bf16), block-wide reductions in fp32, the launch sizes, and how a
 * kernel is launched (ld_launch, ld_grid_wait: programmatic dependent launch). CUDA C++ only
 * (included by .cu files); the C side sees only cuda_check.h and the kernels' .cuh headers. */
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

/* Element x (0..7) of 8 bf16 loaded as one 16-byte chunk, widened (exact): element 2h is the low
 * half of word h, as a vector load puts it on a little-endian device. */
__device__ __forceinline__ float ld_chunk_bf2f(uint4 w, int x)
{
    uint32_t u = x / 2 == 0 ? w.x : x / 2 == 1 ? w.y : x / 2 == 2 ? w.z : w.w;
    return __uint_as_float(x & 1 ? u & 0xffff0000u : u << 16);
}

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

/* ---- residual add + RMSNorm of one row, by a whole block ---- */

/* Elements per thread ld_add_rmsnorm_row keeps in registers: rows of up to LD_NORM_REGS ·
 * LD_ROW_THREADS = 4096 (every Qwen3 up to 8B). */
#define LD_NORM_REGS 16

/* One row of the residual add fused with the RMSNorm that reads it, computed by the whole block
 * (blockDim.x threads, a multiple of 32, n <= LD_NORM_REGS · blockDim.x): v = h + delta rounded
 * to bf16 (delta alone when skip_h; h itself when delta is NULL; a NaN at index nan_at of the row,
 * −1 for none), then out = v · scale · w in fp32, rounded to bf16, scale = 1/sqrt(mean(v²) + eps)
 * (mean(v²) + eps under the mul_var fault). Thread t owns elements t, t + blockDim, ...; it loads
 * all of them (h, delta and w: one round trip to memory) before any store, sums their squares in
 * that order, and the block sum is ld_block_sum's fixed order. So every block that calls it on the
 * same row computes the same bits: rmsnorm.cu's kernel and the fused decode GEMVs of gemv.cu
 * (which norm their input themselves) agree exactly. Stores: v to h_out (may be h itself, or
 * NULL), the normed row to out and to out2 (either may be NULL; out may be shared memory).
 * Products use __fmul_rn so that nothing is contracted into an FMA: the rounding is the reference
 * twin's, only the order of the sum of squares differs. red: 32 floats of shared memory. */
/* Element i of the new residual: h + delta rounded to bf16 (delta alone when skip_h, h itself when
 * there is no delta), or a NaN where the nan fault puts one (nan_at == i). */
__device__ __forceinline__ float ld_residual_value(ld_bf16 h, const ld_bf16 *delta, ld_bf16 d,
                                                   bool skip_h, int64_t nan_at, size_t i)
{
    float x = ld_bf2f(h);
    if (delta) {
        float df = ld_bf2f(d);
        x = ld_round_bf16(skip_h ? df : __fadd_rn(x, df));
    }
    if (nan_at >= 0 && (uint64_t)nan_at == i)
        x = __int_as_float(0x7fc00000);
    return x;
}

/* The norm's factor from the block's sum of squares of n values: 1/sqrt(mean + eps), or mean + eps
 * under the mul_var fault. */
__device__ __forceinline__ float ld_rms_scale(float ss, size_t n, float eps, bool mul_var)
{
    float ms = ss / (float)n;
    return mul_var ? ms + eps : 1.0f / sqrtf(ms + eps);
}

/* One normed element, rounded to bf16: v · scale · w, no FMA. */
__device__ __forceinline__ ld_bf16 ld_norm_value(float v, float scale, ld_bf16 w)
{
    return ld_f2bf(__fmul_rn(__fmul_rn(v, scale), ld_bf2f(w)));
}

__device__ __forceinline__ void ld_add_rmsnorm_row(const ld_bf16 *h, const ld_bf16 *delta,
                                                   bool skip_h, int64_t nan_at, const ld_bf16 *w,
                                                   size_t n, float eps, bool mul_var,
                                                   ld_bf16 *h_out, ld_bf16 *out, ld_bf16 *out2,
                                                   float *red)
{
    ld_bf16 hb[LD_NORM_REGS], db[LD_NORM_REGS], wb[LD_NORM_REGS];
#pragma unroll
    for (int j = 0; j < LD_NORM_REGS; j++) {
        size_t i = threadIdx.x + (size_t)j * blockDim.x;
        bool in = i < n;
        hb[j] = in ? h[i] : (ld_bf16)0;
        db[j] = in && delta ? delta[i] : (ld_bf16)0;
        wb[j] = in ? w[i] : (ld_bf16)0;
    }
    float v[LD_NORM_REGS], ss = 0.0f;
#pragma unroll
    for (int j = 0; j < LD_NORM_REGS; j++) {
        size_t i = threadIdx.x + (size_t)j * blockDim.x;
        v[j] = 0.0f;
        if (i < n) {
            float x = ld_residual_value(hb[j], delta, db[j], skip_h, nan_at, i);
            v[j] = x;
            if (h_out)
                h_out[i] = ld_f2bf(x);
            ss += __fmul_rn(x, x);
        }
    }
    float scale = ld_rms_scale(ld_block_sum(ss, red), n, eps, mul_var);
#pragma unroll
    for (int j = 0; j < LD_NORM_REGS; j++) {
        size_t i = threadIdx.x + (size_t)j * blockDim.x;
        if (i < n) {
            ld_bf16 o = ld_norm_value(v[j], scale, wb[j]);
            if (out)
                out[i] = o;
            if (out2)
                out2[i] = o;
        }
    }
}

/* ---- launching: programmatic dependent launch ---- */

/* Every kernel of cuda/ (but poke.cu's) is launched through ld_launch, and calls ld_grid_wait in
 * every block before it reads or writes anything another kernel writes or reads, and before any
 * return. Launched with programmatic stream serialization (ld_cuda_pdl(): sm_90, not switched
 * off), a kernel's blocks may start while the kernel before it on the stream still runs; they do
 * only what depends on no other kernel (the GEMVs prefetch their weights into L2), and wait here
 * until that kernel has completed and its writes are visible. As every kernel waits so, the one
 * before completed only after the one before it, and so on: what a plain launch guarantees, and
 * the same bits. After its wait a kernel lets the next one's blocks start (launch_dependents):
 * they take SM slots this kernel no longer needs, since all of its blocks have started. Without a
 * programmatic launch both instructions return at once; below sm_90 they are not emitted (the host
 * then never asks for a programmatic launch: ld_cuda_set_pdl checks the kernels' PTX version). */
__device__ __forceinline__ void ld_grid_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#elif defined(LD_EMU_GRID_WAIT)
    LD_EMU_GRID_WAIT(); /* the CPU emulation (tests/unit/cuda/emu): a late copy lands here */
#endif
}

/* Asks the L2 cache for the bytes [p, p + n) of global memory (a hint: nothing is loaded into
 * registers, nothing can fault), lane l of a warp taking the 128-byte lines l, l + 32, ... For
 * data no kernel writes (the weights), so that a kernel can fetch it before ld_grid_wait. */
__device__ __forceinline__ void ld_prefetch_l2(const void *p, size_t n, unsigned lane)
{
#if defined(__CUDA_ARCH__)
    const char *c = static_cast<const char *>(p);
    for (size_t off = 128 * (size_t)lane; off < n; off += 32 * 128)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(c + off));
#else
    (void)p, (void)n, (void)lane;
#endif
}

/* k<<<grid, block, smem, stream>>>(args...), with programmatic stream serialization when
 * ld_cuda_pdl() says so. Returns the launch's error (bad configuration, missing image). */
template <class... P, class... A>
static inline cudaError_t ld_launch(void (*k)(P...), dim3 grid, dim3 block, size_t smem,
                                    cudaStream_t stream, A... args)
{
    cudaLaunchAttribute at[1] = {};
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = ld_cuda_pdl() ? 1 : 0;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, k, args...);
}

#endif

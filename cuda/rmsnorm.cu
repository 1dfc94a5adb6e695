/* rmsnorm.cu — residual add + RMSNorm (rmsnorm.cuh). Parallelization: one block of LD_ROW_THREADS
 * threads per row; each thread handles elements i = tid, tid + blockDim, ... (coalesced), updates
 * h, and sums the squares of its elements in fp32; the block sum is a fixed-order reduction
 * (ld_block_sum), then every thread scales its elements. A row of up to NORM_REGS elements per
 * thread is held in registers, all its loads issued before any store: one memory round trip
 * instead of one per element (a decode step is a chain of such small kernels). Products are
 * written with __fmul_rn so that nvcc cannot contract them into FMAs: the rounding is then the
 * reference twin's (x · scale · w in fp32, then bf16), and only the order of the sum of squares
 * differs. */
#include "cuda_common.cuh"
#include "rmsnorm.cuh"

/* Elements per thread the kernel keeps in registers (rows up to NORM_REGS · LD_ROW_THREADS = 4096
 * wide: every Qwen3 up to 8B); wider rows read h and w twice. */
#define NORM_REGS 16

/* The new residual value of element i (h + delta rounded to bf16, delta alone under the skip
 * fault, a NaN where the fault pokes one). */
__device__ __forceinline__ float residual(float hv, float d, bool has_delta, bool skip_h,
                                          int64_t nan_at, size_t idx)
{
    float v = hv;
    if (has_delta)
        v = ld_round_bf16(skip_h ? d : __fadd_rn(v, d));
    if (nan_at >= 0 && (uint64_t)nan_at == idx)
        v = __int_as_float(0x7fc00000);
    return v;
}

__global__ static void add_rmsnorm_kernel(ld_bf16 *h, const ld_bf16 *delta, bool skip_h,
                                          int64_t nan_at, const ld_bf16 *w, size_t n, float eps,
                                          bool mul_var, ld_bf16 *out)
{
    __shared__ float red[32];
    size_t r = blockIdx.x;
    ld_bf16 *hr = h + r * n;
    bool update = delta != NULL || nan_at >= 0;
    float ss = 0.0f;
    if (n <= (size_t)NORM_REGS * blockDim.x) {
        /* Every load of the row first (h, delta and w together: one round trip to memory), then
         * the stores; the same operations in the same order as the loop below. */
        ld_bf16 hb[NORM_REGS], db[NORM_REGS], wb[NORM_REGS];
#pragma unroll
        for (int j = 0; j < NORM_REGS; j++) {
            size_t i = threadIdx.x + (size_t)j * blockDim.x;
            bool in = i < n;
            hb[j] = in ? hr[i] : (ld_bf16)0;
            db[j] = in && delta ? delta[r * n + i] : (ld_bf16)0;
            wb[j] = in ? w[i] : (ld_bf16)0;
        }
        float v[NORM_REGS];
#pragma unroll
        for (int j = 0; j < NORM_REGS; j++) {
            size_t i = threadIdx.x + (size_t)j * blockDim.x;
            v[j] = 0.0f;
            if (i < n) {
                v[j] = residual(ld_bf2f(hb[j]), delta ? ld_bf2f(db[j]) : 0.0f, delta != NULL,
                                skip_h, nan_at, r * n + i);
                if (update)
                    hr[i] = ld_f2bf(v[j]);
                ss += __fmul_rn(v[j], v[j]);
            }
        }
        ss = ld_block_sum(ss, red);
        float ms = ss / (float)n;
        float scale = mul_var ? ms + eps : 1.0f / sqrtf(ms + eps);
#pragma unroll
        for (int j = 0; j < NORM_REGS; j++) {
            size_t i = threadIdx.x + (size_t)j * blockDim.x;
            if (i < n)
                out[r * n + i] = ld_f2bf(__fmul_rn(__fmul_rn(v[j], scale), ld_bf2f(wb[j])));
        }
        return;
    }
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        float v = residual(ld_bf2f(hr[i]), delta ? ld_bf2f(delta[r * n + i]) : 0.0f, delta != NULL,
                           skip_h, nan_at, r * n + i);
        if (update)
            hr[i] = ld_f2bf(v);
        ss += __fmul_rn(v, v);
    }
    ss = ld_block_sum(ss, red);
    float ms = ss / (float)n;
    float scale = mul_var ? ms + eps : 1.0f / sqrtf(ms + eps);
    /* Each thread reads back only the elements it wrote itself: no barrier needed. */
    for (size_t i = threadIdx.x; i < n; i += blockDim.x)
        out[r * n + i] = ld_f2bf(__fmul_rn(__fmul_rn(ld_bf2f(hr[i]), scale), ld_bf2f(w[i])));
}

extern "C" ld_status ld_cuda_add_rmsnorm(ld_bf16 *h, const ld_bf16 *delta, bool skip_h,
                                         int64_t nan_at, const ld_bf16 *w, size_t rows, size_t n,
                                         double eps, bool mul_var, ld_bf16 *out,
                                         cudaStream_t stream, ld_error *err)
{
    if (rows == 0 || n == 0)
        return LD_OK;
    add_rmsnorm_kernel<<<(unsigned)rows, LD_ROW_THREADS, 0, stream>>>(
        h, delta, skip_h, nan_at, w, n, (float)eps, mul_var, out);
    LD_CUDA_CHECK_LAUNCH(err);
    return LD_OK;
}

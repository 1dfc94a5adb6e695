/* qk_norm_rope.cu — q/k RMSNorm + RoPE + KV append (qk_norm_rope.cuh). Parallelization: one block
 * per (token, head), grid (T, Hq + Hkv): blockIdx.y < Hq is a q head, the rest k heads. First every
 * global load is issued at once: the head's D values and the norm weight go to shared memory as
 * f32, and a k head copies its v row into the cache slot; the RoPE cosines and sines, which
 * depend only on the position, are computed meanwhile. The sum of squares is a block reduction in
 * fp32; each thread normalizes elements i = tid, tid + blockDim, ...; after a barrier each thread
 * rotates the pairs it owns (RoPE mixes elements i and i + D/2, which other threads normalized);
 * after another barrier the results are stored (q_rope, or the cache slot for k).
 * Rounding follows the twin: norm output rounded to bf16, then RoPE in fp32 from the rounded
 * values, rounded again; products use __fmul_rn so nothing is contracted into FMAs, and cos/sin
 * are taken in double of the f32 angle, as the reference does. Layout: q_rope is [T, Hq, D]; the
 * cache is [Hkv, cap, D] so that attention reads one head's keys contiguously. */
#include "cuda_common.cuh"
#include "qk_norm_rope.cuh"

#define QK_THREADS 128

__global__ static void qk_norm_rope_kernel(const ld_bf16 *qkv, size_t T, size_t Hq, size_t Hkv,
                                           size_t D, const ld_bf16 *q_norm_w,
                                           const ld_bf16 *k_norm_w, const int32_t *pos0p,
                                           ld_cuda_qk_params p, ld_bf16 *q_rope, ld_bf16 *k_cache,
                                           ld_bf16 *v_cache, size_t cap, ld_bf16 *q_norm_out,
                                           ld_bf16 *k_norm_out, ld_bf16 *k_rope_out)
{
    extern __shared__ float sm[];
    float *xs = sm;          /* [D] the raw head, later the rotated head */
    float *ns = sm + D;      /* [D] the normalized head (bf16 values) */
    float *scl = sm + 2 * D; /* [D] per-chunk scales of the qk_norm_block fault */
    float *ws = sm + 3 * D;  /* [D] the norm weight */
    float *cs = sm + 4 * D;  /* [D/2] cos of pair i's angle, then [D/2] its sin */
    __shared__ float red[32];
    const float nanf_ = __int_as_float(0x7fc00000);
    ld_grid_wait();

    size_t t = blockIdx.x, hh = blockIdx.y;
    bool is_q = hh < Hq;
    size_t head = is_q ? hh : hh - Hq, heads = is_q ? Hq : Hkv;
    size_t width = (Hq + 2 * Hkv) * D;
    const ld_bf16 *x = qkv + t * width + hh * D; /* q heads, then k heads: head hh at hh·D */
    const ld_bf16 *w = is_q ? q_norm_w : k_norm_w;
    int64_t pos = (int64_t)*pos0p + (int64_t)t;
    size_t base = (t * heads + head) * D; /* this head's first element in [T, heads, D] */
    float eps = (float)p.eps;
    int64_t slot = pos - (p.kv_off_by_one ? 1 : 0); /* a k head's cache slot (none below 0) */
    size_t c0 = slot >= 0 ? (head * cap + (size_t)slot) * D : 0;
    const ld_bf16 *v = qkv + t * width + (Hq + Hkv + head) * D;
    bool v_copy = !is_q && slot >= 0;

    for (size_t i = threadIdx.x; i < D; i += blockDim.x) {
        xs[i] = ld_bf2f(x[i]);
        ws[i] = ld_bf2f(w[i]);
        if (v_copy)
            v_cache[c0 + i] = v[i];
    }
    /* RoPE's angles: pairs (i, i + D/2), or (2i, 2i+1) under the rope_interleaved fault, share
     * angle i. */
    size_t half = D / 2;
    for (size_t i = threadIdx.x; i < half; i += blockDim.x) {
        float inv_freq = 1.0f / powf((float)p.theta, (float)(2 * i) / (float)D);
        float angle = __fmul_rn((float)pos, inv_freq);
        double sd, cd;
        sincos((double)angle, &sd, &cd);
        cs[i] = (float)cd;
        cs[half + i] = (float)sd;
    }
    __syncthreads();

    /* 1. RMSNorm over the head (or over block-element chunks of it, or not at all). */
    if (p.skip) {
        for (size_t i = threadIdx.x; i < D; i += blockDim.x)
            ns[i] = xs[i];
    } else if (p.block <= 0) {
        float ss = 0.0f;
        for (size_t i = threadIdx.x; i < D; i += blockDim.x)
            ss += __fmul_rn(xs[i], xs[i]);
        ss = ld_block_sum(ss, red);
        float scale = 1.0f / sqrtf(ss / (float)D + eps);
        for (size_t i = threadIdx.x; i < D; i += blockDim.x)
            ns[i] = ld_round_bf16(__fmul_rn(__fmul_rn(xs[i], scale), ws[i]));
    } else {
        /* The bug: a kernel that reduces only within one block-wide tile. One thread per chunk
         * sums it in order, as the twin does. */
        size_t B = (size_t)p.block, nchunks = (D + B - 1) / B;
        for (size_t c = threadIdx.x; c < nchunks; c += blockDim.x) {
            size_t b0 = c * B, len = D - b0 < B ? D - b0 : B;
            float ss = 0.0f;
            for (size_t i = b0; i < b0 + len; i++)
                ss = __fadd_rn(ss, __fmul_rn(xs[i], xs[i]));
            scl[c] = 1.0f / sqrtf(ss / (float)len + eps);
        }
        __syncthreads();
        for (size_t i = threadIdx.x; i < D; i += blockDim.x)
            ns[i] = ld_round_bf16(__fmul_rn(__fmul_rn(xs[i], scl[i / B]), ws[i]));
    }
    __syncthreads();
    int64_t nan_norm = is_q ? p.nan_q_norm : p.nan_k_norm;
    if (threadIdx.x == 0 && nan_norm >= (int64_t)base && nan_norm < (int64_t)(base + D))
        ns[nan_norm - (int64_t)base] = nanf_;
    __syncthreads();
    ld_bf16 *norm_out = is_q ? q_norm_out : k_norm_out;
    if (norm_out)
        for (size_t i = threadIdx.x; i < D; i += blockDim.x)
            norm_out[base + i] = ld_f2bf(ns[i]);

    /* 2. RoPE: element pairs (i, i + D/2), or (2i, 2i+1) under the rope_interleaved fault. */
    for (size_t i = threadIdx.x; i < half; i += blockDim.x) {
        size_t a = p.interleaved ? 2 * i : i;
        size_t b = p.interleaved ? 2 * i + 1 : i + half;
        float c = cs[i], s = cs[half + i];
        xs[a] = ld_round_bf16(__fsub_rn(__fmul_rn(ns[a], c), __fmul_rn(ns[b], s)));
        xs[b] = ld_round_bf16(__fadd_rn(__fmul_rn(ns[b], c), __fmul_rn(ns[a], s)));
    }
    __syncthreads();
    int64_t nan_rope = is_q ? p.nan_q_rope : p.nan_k_rope;
    if (threadIdx.x == 0 && nan_rope >= (int64_t)base && nan_rope < (int64_t)(base + D))
        xs[nan_rope - (int64_t)base] = nanf_;
    __syncthreads();

    /* 3. Stores: q to q_rope; k to the cache slot of the position (its v is there already). */
    if (is_q) {
        for (size_t i = threadIdx.x; i < D; i += blockDim.x)
            q_rope[base + i] = ld_f2bf(xs[i]);
        return;
    }
    if (k_rope_out)
        for (size_t i = threadIdx.x; i < D; i += blockDim.x)
            k_rope_out[base + i] = ld_f2bf(xs[i]);
    if (slot < 0)
        return;
    for (size_t i = threadIdx.x; i < D; i += blockDim.x)
        k_cache[c0 + i] = ld_f2bf(xs[i]);
}

extern "C" ld_status ld_cuda_qk_norm_rope(const ld_bf16 *qkv, size_t T, size_t Hq, size_t Hkv,
                                          size_t D, const ld_bf16 *q_norm_w,
                                          const ld_bf16 *k_norm_w, const int32_t *pos0,
                                          const ld_cuda_qk_params *p, ld_bf16 *q_rope,
                                          ld_bf16 *k_cache, ld_bf16 *v_cache, size_t cap,
                                          ld_bf16 *q_norm_out, ld_bf16 *k_norm_out,
                                          ld_bf16 *k_rope_out, cudaStream_t stream, ld_error *err)
{
    if (D == 0 || D % 2 != 0 || D > 1024)
        return ld_error_set(err, LD_E_UNSUPPORTED,
                            "q/k norm + RoPE: head_dim %zu (must be even, <= 1024)", D);
    if (T == 0)
        return LD_OK;
    if (Hq + Hkv > 65535)
        return ld_error_set(err, LD_E_UNSUPPORTED, "q/k norm + RoPE: %zu heads (at most 65535)",
                            Hq + Hkv);
    dim3 grid((unsigned)T, (unsigned)(Hq + Hkv));
    size_t smem = 5 * D * sizeof(float); /* xs, ns, scl, ws; cos and sin of D/2 pairs */
    LD_CUDA_CHECK(err, ld_launch(qk_norm_rope_kernel, grid, QK_THREADS, smem, stream, qkv, T, Hq,
                                 Hkv, D, q_norm_w, k_norm_w, pos0, *p, q_rope, k_cache, v_cache,
                                 cap, q_norm_out, k_norm_out, k_rope_out));
    return LD_OK;
}

/* attention.cu — grouped-query attention (attention.cuh).
 *
 * Parallelization. attention_kernel: one block of ATTN_THREADS threads per (query, split), grid
 * (T·Hq, n_split); without a split there is one "split" covering every key. The block walks its
 * keys in passes of LD_ATTN_CHUNK: (1) scores — each warp takes keys w, w+nwarps, ..., four at a
 * time (their loads in flight together); its lanes stride over D (coalesced loads of the key row)
 * and a butterfly sums each dot product; (2) the
 * pass maximum (block reduction) updates the running maximum m, and the previous sum l and output
 * acc are rescaled by exp(m_old − m_new) (online softmax); (3) the exponentials, their block sum;
 * (4) acc[i] += Σ_k p[k]·v[k,i], each thread owning dimensions i = tid, tid + blockDim, ... (so
 * consecutive threads read consecutive values of a value row, 16 keys' loads in flight). Without
 * a split (or with one split only) the block writes out = acc / l; with several it writes
 * (m, l, acc) and attention_combine_kernel — one block per query — merges the splits in order:
 * out = Σ_s acc_s·e^(m_s−M) / Σ_s l_s·e^(m_s−M).
 * Everything is in fp32 with fixed reduction orders. attention_kernel rounds explicitly: each
 * product of a score's dot product, of the running sum's rescale and of the value sum is an FMA,
 * the accumulator's rescale a rounded product; nothing is left to the compiler's contraction, so
 * the CPU emulation of the runtime computes the device's bits. The result is reproducible run to run, and
 * the split geometry depends only on the cache size, so a captured graph computes exactly what
 * the stream path does. Empty splits (keys beyond the causal limit) write m = −inf, l = 0.
 * A NaN anywhere in a query's scores makes its whole output row NaN, as in the reference. */
#include "attention.cuh"
#include "cuda_common.cuh"

#define ATTN_THREADS 128
#define ATTN_MAX_SPLITS 1024
#define ATTN_KEYS_PER_WARP 4 /* keys a warp scores together */

__global__ static void attention_kernel(const ld_bf16 *q, const ld_bf16 *k_cache,
                                        const ld_bf16 *v_cache, size_t cap, size_t T, size_t Hq,
                                        size_t Hkv, size_t D, const int32_t *pos0p,
                                        ld_cuda_attn_params ap, size_t split_keys, bool split,
                                        float *part_ml, float *part_acc, ld_bf16 *out)
{
    extern __shared__ float sm[];
    float *qs = sm;          /* [D] the query, f32 */
    float *acc = sm + D;     /* [D] unnormalized output; element i: thread i % blockDim only */
    float *p = sm + 2 * D;   /* [LD_ATTN_CHUNK] scores, then exponentials, of one pass */
    __shared__ float red[32];
    __shared__ float l_bf16; /* running sum of the softmax_bf16 fault */

    size_t t = blockIdx.x / Hq, j = blockIdx.x % Hq;
    int64_t pos0 = *pos0p, pos = pos0 + (int64_t)t, n_kv = pos0 + (int64_t)T;
    int64_t limit = ap.causal ? (pos + 1 < n_kv ? pos + 1 : n_kv) : n_kv;
    int64_t begin = (int64_t)(blockIdx.y * split_keys);
    int64_t end = begin + (int64_t)split_keys < limit ? begin + (int64_t)split_keys : limit;
    size_t kvh = ap.gqa_modulo ? j % Hkv : j / (Hq / Hkv);
    const ld_bf16 *kh = k_cache + kvh * cap * D, *vh = v_cache + kvh * cap * D;
    float scale = (float)ap.scale;
    int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32, nwarps = (int)blockDim.x / 32;

    for (size_t i = threadIdx.x; i < D; i += blockDim.x) {
        qs[i] = ld_bf2f(q[(t * Hq + j) * D + i]);
        acc[i] = 0.0f;
    }
    __syncthreads();

    float m = -INFINITY, l = 0.0f;
    for (int64_t c0 = begin; c0 < end; c0 += LD_ATTN_CHUNK) {
        int n = (int)(end - c0 < LD_ATTN_CHUNK ? end - c0 : LD_ATTN_CHUNK);
        /* A warp scores ATTN_KEYS_PER_WARP of its keys at once (k, k + nwarps, ...), so that
         * their loads are in flight together; each key's sum is the one a warp scoring one key
         * at a time computes (lane-strided terms in increasing i, then the butterfly). A key past
         * the pass reads the warp's first key again (a valid row) and is not stored. */
        for (int k0 = warp; k0 < n; k0 += ATTN_KEYS_PER_WARP * nwarps) {
            const ld_bf16 *kr[ATTN_KEYS_PER_WARP];
            float d[ATTN_KEYS_PER_WARP];
#pragma unroll
            for (int u = 0; u < ATTN_KEYS_PER_WARP; u++) {
                int k = k0 + u * nwarps;
                kr[u] = kh + (size_t)(c0 + (k < n ? k : k0)) * D;
                d[u] = 0.0f;
            }
            /* D in slices of 128: a lane's 4 elements of each of the keys loaded (all in
             * flight; an index past D reads element D − 1 and is not used), then summed in
             * increasing i. */
            for (size_t i0 = 0; i0 < D; i0 += 128) {
                float kv[4][ATTN_KEYS_PER_WARP];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    size_t i = i0 + (size_t)lane + 32 * (size_t)e;
#pragma unroll
                    for (int u = 0; u < ATTN_KEYS_PER_WARP; u++)
                        kv[e][u] = ld_bf2f(kr[u][i < D ? i : D - 1]);
                }
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    size_t i = i0 + (size_t)lane + 32 * (size_t)e;
                    if (i < D) {
                        float qi = qs[i];
#pragma unroll
                        for (int u = 0; u < ATTN_KEYS_PER_WARP; u++)
                            d[u] = __fmaf_rn(qi, kv[e][u], d[u]);
                    }
                }
            }
#pragma unroll
            for (int u = 0; u < ATTN_KEYS_PER_WARP; u++) {
                for (int o = 16; o > 0; o >>= 1)
                    d[u] += __shfl_xor_sync(0xffffffffu, d[u], o);
                int k = k0 + u * nwarps;
                if (lane == 0 && k < n)
                    p[k] = d[u] * scale;
            }
        }
        __syncthreads();
        float cm = -INFINITY;
        for (int k = (int)threadIdx.x; k < n; k += (int)blockDim.x)
            cm = fmaxf(cm, p[k]);
        float m_new = fmaxf(m, ld_block_max(cm, red));
        float alpha = m == -INFINITY ? 0.0f : expf(m - m_new);
        float s = 0.0f;
        for (int k = (int)threadIdx.x; k < n; k += (int)blockDim.x) {
            float e = expf(p[k] - m_new);
            p[k] = ap.softmax_bf16 ? ld_round_bf16(e) : e;
            s += p[k];
        }
        if (!ap.softmax_bf16) {
            /* ld_block_sum's barriers also publish p[] to the whole block for step (4). */
            l = __fmaf_rn(l, alpha, ld_block_sum(s, red));
        } else {
            /* The bug keeps the running sum in bf16: one thread adds in key order, as the twin. */
            __syncthreads();
            if (threadIdx.x == 0) {
                float acc_l = ld_round_bf16(l * alpha);
                for (int k = 0; k < n; k++)
                    acc_l = ld_round_bf16(acc_l + p[k]);
                l_bf16 = acc_l;
            }
            __syncthreads();
            l = l_bf16;
        }
        for (size_t i = threadIdx.x; i < D; i += blockDim.x) {
            const ld_bf16 *vi = vh + (size_t)c0 * D + i;
            float a = __fmul_rn(acc[i], alpha);
            /* One chain of FMAs in key order, over groups of 16 keys whose loads are issued
             * before the first FMA of the group (a key past the pass reads the last one again,
             * unused). */
            for (int k0 = 0; k0 < n; k0 += 16) {
                float vv[16];
#pragma unroll
                for (int u = 0; u < 16; u++)
                    vv[u] = ld_bf2f(vi[(size_t)(k0 + u < n ? k0 + u : n - 1) * D]);
#pragma unroll
                for (int u = 0; u < 16; u++)
                    if (k0 + u < n)
                        a = __fmaf_rn(p[k0 + u], vv[u], a);
            }
            acc[i] = a;
        }
        m = m_new;
        __syncthreads(); /* p is overwritten by the next pass */
    }

    if (!split) {
        for (size_t i = threadIdx.x; i < D; i += blockDim.x)
            out[(t * Hq + j) * D + i] = ld_f2bf(acc[i] / l);
        return;
    }
    size_t r = (size_t)blockIdx.x * gridDim.y + blockIdx.y;
    for (size_t i = threadIdx.x; i < D; i += blockDim.x)
        part_acc[r * D + i] = acc[i];
    if (threadIdx.x == 0) {
        part_ml[2 * r] = m;
        part_ml[2 * r + 1] = l;
    }
}

/* One block per query: merges its n_split partial results in split order. An empty split (no key
 * below the causal limit: m = −inf, l = 0) contributes nothing; any other split contributes even
 * when its weight underflows, so that a NaN in it still reaches the output. */
__global__ static void attention_combine_kernel(const float *part_ml, const float *part_acc,
                                                size_t n_split, size_t D, bool softmax_bf16,
                                                ld_bf16 *out)
{
    /* [n_split] e^(m_s − M), or −1 for an empty split. A static array of the largest split count:
     * sized by n_split as dynamic shared memory, it was read three floats at a time past its end
     * when n_split was small (compute-sanitizer memcheck on sm_90). */
    __shared__ float wgt[ATTN_MAX_SPLITS];
    __shared__ float red[32];
    __shared__ float total;
    size_t r0 = (size_t)blockIdx.x * n_split;
    float M = -INFINITY;
    for (size_t s = threadIdx.x; s < n_split; s += blockDim.x)
        M = fmaxf(M, part_ml[2 * (r0 + s)]);
    M = ld_block_max(M, red);
    for (size_t s = threadIdx.x; s < n_split; s += blockDim.x) {
        float ms = part_ml[2 * (r0 + s)], ls = part_ml[2 * (r0 + s) + 1];
        wgt[s] = ms == -INFINITY ? (ls == 0.0f ? -1.0f : 0.0f) : expf(ms - M);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float L = 0.0f;
        for (size_t s = 0; s < n_split; s++) {
            if (wgt[s] < 0.0f)
                continue;
            float add = part_ml[2 * (r0 + s) + 1] * wgt[s];
            L = softmax_bf16 ? ld_round_bf16(L + add) : L + add;
        }
        total = L;
    }
    __syncthreads();
    for (size_t i = threadIdx.x; i < D; i += blockDim.x) {
        float a = 0.0f;
        for (size_t s = 0; s < n_split; s++)
            if (wgt[s] >= 0.0f)
                a += wgt[s] * part_acc[(r0 + s) * D + i];
        out[(size_t)blockIdx.x * D + i] = ld_f2bf(a / total);
    }
}

extern "C" void ld_cuda_attn_split_size(size_t cap, size_t *n_split, size_t *split_keys)
{
    size_t keys = LD_ATTN_CHUNK;
    while ((cap + keys - 1) / keys > ATTN_MAX_SPLITS)
        keys += LD_ATTN_CHUNK;
    *split_keys = keys;
    *n_split = cap ? (cap + keys - 1) / keys : 1;
}

extern "C" ld_status ld_cuda_attention(const ld_bf16 *q, const ld_bf16 *k_cache,
                                       const ld_bf16 *v_cache, size_t cap, size_t T, size_t Hq,
                                       size_t Hkv, size_t D, const int32_t *pos0,
                                       const ld_cuda_attn_params *ap,
                                       const ld_cuda_attn_split *split, ld_bf16 *out,
                                       cudaStream_t stream, ld_error *err)
{
    if (Hkv == 0 || Hq % Hkv != 0 || D == 0 || D > 1024)
        return ld_error_set(err, LD_E_INTERNAL, "attention: bad shape (Hq %zu, Hkv %zu, D %zu)",
                            Hq, Hkv, D);
    if (T == 0)
        return LD_OK;
    if (T * Hq > 0x7fffffff)
        return ld_error_set(err, LD_E_UNSUPPORTED, "attention: %zu queries x %zu heads is too many",
                            T, Hq);
    size_t n_split = split ? split->n_split : 1;
    size_t split_keys = split ? split->split_keys : cap;
    /* One split is one pass over every key: the combine would compute acc·1 / (l·1), the same
     * bits as writing acc / l at once, so it is not launched. */
    bool combine = split && n_split > 1;
    if (n_split == 0 || n_split > ATTN_MAX_SPLITS || split_keys == 0 ||
        (split && (split_keys % LD_ATTN_CHUNK != 0 || n_split * split_keys < cap)))
        return ld_error_set(err, LD_E_INTERNAL,
                            "attention: bad split (%zu of %zu keys for %zu slots)",
                            n_split, split_keys, cap);
    dim3 grid((unsigned)(T * Hq), (unsigned)n_split);
    size_t smem = (2 * D + LD_ATTN_CHUNK) * sizeof(float);
    attention_kernel<<<grid, ATTN_THREADS, smem, stream>>>(
        q, k_cache, v_cache, cap, T, Hq, Hkv, D, pos0, *ap, split_keys, combine,
        combine ? split->ml : NULL, combine ? split->acc : NULL, out);
    LD_CUDA_CHECK_LAUNCH(err);
    if (!combine)
        return LD_OK;
    attention_combine_kernel<<<(unsigned)(T * Hq), ATTN_THREADS, 0, stream>>>(
        split->ml, split->acc, n_split, D, ap->softmax_bf16, out);
    LD_CUDA_CHECK_LAUNCH(err);
    return LD_OK;
}

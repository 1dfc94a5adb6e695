/* attention.cu — grouped-query attention (attention.cuh).
 *
 * Two kernels compute the same bits: attention_tile_kernel (prefill, 16 queries of a head per
 * block, described before it) and attention_kernel (decode, and prefill where the tiled kernel
 * cannot run).
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
 * the accumulator's rescale a rounded product; the combine rounds each product and sum on its
 * own. Nothing is left to the compiler's contraction, so the CPU emulation of the runtime computes
 * the device's bits (but for expf's). The result is reproducible run to run, and the split
 * geometry depends only on the cache size, so a captured graph computes exactly what the stream
 * path does. Empty splits (keys beyond the causal limit) write m = −inf, l = 0.
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
    ld_grid_wait();

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
                    p[k] = __fmul_rn(d[u], scale);
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
                float acc_l = ld_round_bf16(__fmul_rn(l, alpha));
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

/* ---- prefill: a tile of queries per block ----
 *
 * attention_tile_kernel computes what attention_kernel computes without a split, bit for bit, for
 * TILE_Q queries of one head at once: every pass's keys and values are read from global memory
 * once per tile instead of once per query, into shared memory as f32, and each thread scores 2
 * queries x 4 keys from registers. The bits are attention_kernel's because every sum is formed in
 * its order:
 * - a score's dot product: attention_kernel's lane L sums the terms L, L+32, L+64, ... with FMAs
 *   from 0 (a "leaf"), then the warp's xor butterfly (16, 8, 4, 2, 1) adds the 32 leaves; here one
 *   thread evaluates the same tree (tile_tree). Rows are stored leaf by leaf (element 32c + L at
 *   L·DC + c, DC = D/32), so a leaf is DC consecutive floats;
 * - a pass's sum of exponentials: attention_kernel's thread k holds key k, each of its 4 warps
 *   sums 32 keys in a butterfly, and the warp sums are added in warp order; here lane l holds keys
 *   l + 32u, and u plays the warp;
 * - the maximum is exact in any order; the value sum is one FMA chain per element in key order,
 *   after the same rescale.
 * Warp w owns queries 2w and 2w + 1 of the tile for the whole pass (scores, softmax, values), so
 * only the staging of keys and values needs the block. */
#define TILE_Q 16        /* queries per block: two per warp */
#define TILE_THREADS 256 /* 8 warps */
#define TILE_KEYS 4      /* keys a lane scores per pass: LD_ATTN_CHUNK / 32 */

/* DC consecutive floats of shared memory (16-byte loads where DC allows). */
template <int DC> __device__ __forceinline__ void tile_load(const float *p, float (&v)[DC])
{
    if constexpr (DC % 4 == 0) {
#pragma unroll
        for (int c = 0; c < DC; c += 4) {
            float4 f = *reinterpret_cast<const float4 *>(p + c);
            v[c] = f.x, v[c + 1] = f.y, v[c + 2] = f.z, v[c + 3] = f.w;
        }
    } else if constexpr (DC == 2) {
        float2 f = *reinterpret_cast<const float2 *>(p);
        v[0] = f.x, v[1] = f.y;
    } else {
#pragma unroll
        for (int c = 0; c < DC; c++)
            v[c] = p[c];
    }
}

/* DC consecutive floats into shared memory (16-byte stores where DC allows). */
template <int DC> __device__ __forceinline__ void tile_store(float *p, const float (&v)[DC])
{
    if constexpr (DC % 4 == 0) {
#pragma unroll
        for (int c = 0; c < DC; c += 4)
            *reinterpret_cast<float4 *>(p + c) = make_float4(v[c], v[c + 1], v[c + 2], v[c + 3]);
    } else if constexpr (DC == 2) {
        *reinterpret_cast<float2 *>(p) = make_float2(v[0], v[1]);
    } else {
#pragma unroll
        for (int c = 0; c < DC; c++)
            p[c] = v[c];
    }
}

/* Leaf L of the scores of NQ queries x NK keys (leaf-major rows q[a], k[b]): an FMA chain from
 * 0. */
template <int DC, int NQ, int NK>
__device__ __forceinline__ void tile_leaf(const float *const *q, const float *const *k, int L,
                                          float (&P)[NQ][NK])
{
    float qv[NQ][DC], kv[NK][DC];
#pragma unroll
    for (int a = 0; a < NQ; a++)
        tile_load<DC>(q[a] + L * DC, qv[a]);
#pragma unroll
    for (int b = 0; b < NK; b++)
        tile_load<DC>(k[b] + L * DC, kv[b]);
#pragma unroll
    for (int a = 0; a < NQ; a++)
#pragma unroll
        for (int b = 0; b < NK; b++) {
            float d = 0.0f;
#pragma unroll
            for (int c = 0; c < DC; c++)
                d = __fmaf_rn(qv[a][c], kv[b][c], d);
            P[a][b] = d;
        }
}

template <int NQ, int NK> __device__ __forceinline__ void tile_add(float (&x)[NQ][NK],
                                                                  const float (&y)[NQ][NK])
{
#pragma unroll
    for (int a = 0; a < NQ; a++)
#pragma unroll
        for (int b = 0; b < NK; b++)
            x[a][b] += y[a][b];
}

/* The value attention_kernel's warp butterfly holds at lane x after its steps 16, 8, ..., STEP
 * (x < STEP; STEP = 32: before any step, leaf x): the value after the steps down to 2·STEP at
 * lane x plus the one at lane x + STEP. Evaluated depth first (one array per level alive). The
 * score is tile_tree<1>(x = 0). */
template <int STEP, int DC, int NQ, int NK>
__device__ __forceinline__ void tile_tree(const float *const *q, const float *const *k, int x,
                                          float (&R)[NQ][NK])
{
    if constexpr (STEP == 32) {
        tile_leaf<DC>(q, k, x, R);
    } else {
        float B[NQ][NK];
        tile_tree<2 * STEP, DC>(q, k, x, R);
        tile_tree<2 * STEP, DC>(q, k, x + STEP, B);
        tile_add(R, B);
    }
}

/* Shared memory of the tile kernel for head size D = 32·DC, in bytes. */
static size_t tile_smem(int DC)
{
    size_t D = 32 * (size_t)DC;
    return (TILE_Q * D + LD_ATTN_CHUNK * 33 * (size_t)DC + LD_ATTN_CHUNK * D +
            TILE_Q * LD_ATTN_CHUNK) * sizeof(float);
}

/* grid (Hq, tiles): blockIdx.x the query head, blockIdx.y the tile, the longest tiles first (they
 * have the most keys under the causal mask). */
template <int DC>
__global__ static void __launch_bounds__(TILE_THREADS)
    attention_tile_kernel(const ld_bf16 *q, const ld_bf16 *k_cache, const ld_bf16 *v_cache,
                          size_t cap, size_t T, size_t Hq, size_t Hkv, const int32_t *pos0p,
                          ld_cuda_attn_params ap, ld_bf16 *out)
{
    constexpr int D = 32 * DC;
    constexpr int KS = 33 * DC; /* a key row's stride: an odd number of leaves, so that lanes
                                 * reading the same leaf of different rows hit different banks */
    extern __shared__ __align__(16) float sm[]; /* tile_load/store: float4, float2 */
    float *qs = sm;                      /* [TILE_Q][D] the tile's queries, leaf-major */
    float *ks = qs + TILE_Q * D;         /* [LD_ATTN_CHUNK][KS] a pass's keys, leaf-major */
    float *vs = ks + LD_ATTN_CHUNK * KS; /* [LD_ATTN_CHUNK][D] its values */
    float *ps = vs + LD_ATTN_CHUNK * D;  /* [TILE_Q][LD_ATTN_CHUNK] its exponentials */
    ld_grid_wait();

    size_t j = blockIdx.x;
    size_t t0 = (size_t)(gridDim.y - 1 - blockIdx.y) * TILE_Q;
    size_t n_q = T - t0 < TILE_Q ? T - t0 : TILE_Q;
    int64_t pos0 = *pos0p, n_kv = pos0 + (int64_t)T;
    size_t kvh = ap.gqa_modulo ? j % Hkv : j / (Hq / Hkv);
    const ld_bf16 *kh = k_cache + kvh * cap * D, *vh = v_cache + kvh * cap * D;
    float scale = (float)ap.scale;
    int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;

    /* The warp's two queries and their key limits (none for a query past T). Query t at position
     * pos0 + t reads keys 0 .. pos0 + t (all n_kv without the causal mask). */
    int64_t lim[2];
#pragma unroll
    for (int a = 0; a < 2; a++) {
        size_t t = t0 + 2 * (size_t)warp + (size_t)a;
        lim[a] = t >= T ? 0 : ap.causal ? pos0 + (int64_t)t + 1 : n_kv;
    }
    int64_t end = ap.causal ? pos0 + (int64_t)(t0 + n_q) : n_kv; /* keys the tile reads */

    for (size_t e = threadIdx.x; e < TILE_Q * (size_t)D; e += blockDim.x) {
        size_t a = e / D, i = e % D;
        float v = a < n_q ? ld_bf2f(q[((t0 + a) * Hq + j) * D + i]) : 0.0f;
        qs[a * D + (i % 32) * DC + i / 32] = v;
    }

    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, acc[2][DC];
#pragma unroll
    for (int a = 0; a < 2; a++)
#pragma unroll
        for (int c = 0; c < DC; c++)
            acc[a][c] = 0.0f;
    float *pw = ps + 2 * (size_t)warp * LD_ATTN_CHUNK; /* the warp's two rows of exponentials */

    for (int64_t c0 = 0; c0 < end; c0 += LD_ATTN_CHUNK) {
        int nb = (int)(end - c0 < LD_ATTN_CHUNK ? end - c0 : LD_ATTN_CHUNK);
        __syncthreads(); /* the previous pass is done with ks and vs */
        /* Stage the pass's keys and values with 16-byte loads (rows are 64-byte aligned: D is a
         * multiple of 32 and the launcher checks the bases). Keys: thread (row b, leaves 8g ..
         * 8g + 7) loads the DC chunks of 8 elements at 8g + 32c and stores its 8 leaves, 8·DC
         * consecutive floats; consecutive lanes take consecutive rows, which the odd stride KS
         * puts in different banks. Values: 8 elements per thread, two 16-byte stores. */
        for (int e = (int)threadIdx.x; e < nb * 4; e += (int)blockDim.x) {
            int b = e % nb, g = e / nb;
            const ld_bf16 *src = kh + ((size_t)c0 + (size_t)b) * D + 8 * g;
            uint4 w[DC];
#pragma unroll
            for (int c = 0; c < DC; c++)
                w[c] = *reinterpret_cast<const uint4 *>(src + 32 * c);
            float *dst = ks + (size_t)b * KS + 8 * g * DC;
#pragma unroll
            for (int x = 0; x < 8; x++) {
                float v[DC];
#pragma unroll
                for (int c = 0; c < DC; c++)
                    v[c] = ld_chunk_bf2f(w[c], x);
                tile_store<DC>(dst + x * DC, v);
            }
        }
        for (int e = (int)threadIdx.x; e < nb * (D / 8); e += (int)blockDim.x) {
            int b = e / (D / 8), i = (e % (D / 8)) * 8;
            uint4 w = *reinterpret_cast<const uint4 *>(vh + ((size_t)c0 + (size_t)b) * D + i);
            float v[8];
#pragma unroll
            for (int x = 0; x < 8; x++)
                v[x] = ld_chunk_bf2f(w, x);
            tile_store<8>(vs + (size_t)b * D + i, v);
        }
        __syncthreads();
        int n[2];
#pragma unroll
        for (int a = 0; a < 2; a++) {
            int64_t r = lim[a] - c0;
            n[a] = r <= 0 ? 0 : r < LD_ATTN_CHUNK ? (int)r : LD_ATTN_CHUNK;
        }
        if (n[0] == 0 && n[1] == 0)
            continue; /* both queries' keys end before this pass */

        /* Scores: lane l takes keys l + 32u (a key past the pass reads the last one, unused). */
        const float *const qr[2] = {qs + 2 * (size_t)warp * D, qs + (2 * (size_t)warp + 1) * D};
        const float *kr[TILE_KEYS];
#pragma unroll
        for (int u = 0; u < TILE_KEYS; u++) {
            int b = lane + 32 * u;
            kr[u] = ks + (size_t)(b < nb ? b : nb - 1) * KS;
        }
        float sc[2][TILE_KEYS];
        tile_tree<1, DC>(qr, kr, 0, sc);

        /* Online softmax, query by query, as attention_kernel's block does it. */
        float alpha[2] = {1.0f, 1.0f};
#pragma unroll
        for (int a = 0; a < 2; a++) {
            if (n[a] == 0)
                continue;
            float p[TILE_KEYS], mx = -INFINITY;
#pragma unroll
            for (int u = 0; u < TILE_KEYS; u++) {
                p[u] = __fmul_rn(sc[a][u], scale); /* rounded, as the stored score */
                if (lane + 32 * u < n[a])
                    mx = fmaxf(mx, p[u]);
            }
            for (int o = 16; o > 0; o >>= 1)
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            float m_new = fmaxf(m[a], mx);
            alpha[a] = m[a] == -INFINITY ? 0.0f : expf(m[a] - m_new);
            float sum = 0.0f;
#pragma unroll
            for (int u = 0; u < TILE_KEYS; u++) {
                int b = lane + 32 * u;
                float s = 0.0f;
                if (b < n[a]) {
                    float e = expf(p[u] - m_new);
                    e = ap.softmax_bf16 ? ld_round_bf16(e) : e;
                    pw[a * LD_ATTN_CHUNK + b] = e;
                    s += e;
                }
                for (int o = 16; o > 0; o >>= 1)
                    s += __shfl_xor_sync(0xffffffffu, s, o);
                sum = u == 0 ? s : sum + s;
            }
            if (!ap.softmax_bf16) {
                l[a] = __fmaf_rn(l[a], alpha[a], sum);
            } else {
                /* The bug's bf16 running sum, in key order (every lane alike). */
                __syncwarp();
                float acc_l = ld_round_bf16(__fmul_rn(l[a], alpha[a]));
                for (int k = 0; k < n[a]; k++)
                    acc_l = ld_round_bf16(acc_l + pw[a * LD_ATTN_CHUNK + k]);
                l[a] = acc_l;
            }
            m[a] = m_new;
        }
        __syncwarp(); /* the warp's exponentials, for all of its lanes */

        /* Values: lane l owns elements l·DC .. l·DC + DC − 1 of both queries' outputs. */
#pragma unroll
        for (int a = 0; a < 2; a++)
            if (n[a] > 0)
#pragma unroll
                for (int c = 0; c < DC; c++)
                    acc[a][c] = __fmul_rn(acc[a][c], alpha[a]);
        int n_max = n[0] > n[1] ? n[0] : n[1];
        const float *vl = vs + (size_t)lane * DC;
        for (int k = 0; k < n_max; k++) {
            float v[DC];
            tile_load<DC>(vl + (size_t)k * D, v);
#pragma unroll
            for (int a = 0; a < 2; a++)
                if (k < n[a]) {
                    float pk = pw[a * LD_ATTN_CHUNK + k];
#pragma unroll
                    for (int c = 0; c < DC; c++)
                        acc[a][c] = __fmaf_rn(pk, v[c], acc[a][c]);
                }
        }
    }

#pragma unroll
    for (int a = 0; a < 2; a++) {
        size_t t = t0 + 2 * (size_t)warp + (size_t)a;
        if (t < T)
#pragma unroll
            for (int c = 0; c < DC; c++)
                out[(t * Hq + j) * D + (size_t)lane * DC + c] = ld_f2bf(acc[a][c] / l[a]);
    }
}

/* One block per query: merges its n_split partial results in split order. An empty split (no key
 * below the causal limit: m = −inf, l = 0) contributes nothing; any other split contributes even
 * when its weight underflows, so that a NaN in it still reaches the output. Each product and sum
 * is rounded on its own (__fmul_rn, __fadd_rn), never contracted into an FMA. */
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
    ld_grid_wait();
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
            float add = __fmul_rn(part_ml[2 * (r0 + s) + 1], wgt[s]);
            L = softmax_bf16 ? ld_round_bf16(__fadd_rn(L, add)) : __fadd_rn(L, add);
        }
        total = L;
    }
    __syncthreads();
    for (size_t i = threadIdx.x; i < D; i += blockDim.x) {
        float a = 0.0f;
        for (size_t s = 0; s < n_split; s++)
            if (wgt[s] >= 0.0f)
                a = __fadd_rn(a, __fmul_rn(wgt[s], part_acc[(r0 + s) * D + i]));
        out[(size_t)blockIdx.x * D + i] = ld_f2bf(a / total);
    }
}

template <int DC>
static ld_status launch_tile_dc(const ld_bf16 *q, const ld_bf16 *k_cache, const ld_bf16 *v_cache,
                                size_t cap, size_t T, size_t Hq, size_t Hkv, const int32_t *pos0,
                                const ld_cuda_attn_params *ap, ld_bf16 *out, cudaStream_t stream,
                                ld_error *err)
{
    auto kern = attention_tile_kernel<DC>;
    size_t smem = tile_smem(DC);
    /* More than the default 48 KiB of shared memory (146 KiB at D = 128) must be asked for; a
     * device that has less refuses, and its error is cleared (not sticky) for the fallback. */
    if (cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) !=
        cudaSuccess) {
        (void)cudaGetLastError();
        return ld_error_set(err, LD_E_UNSUPPORTED,
                            "attention: the tiled kernel needs %zu bytes of shared memory", smem);
    }
    dim3 grid((unsigned)Hq, (unsigned)((T + TILE_Q - 1) / TILE_Q));
    LD_CUDA_CHECK(err, ld_launch(kern, grid, TILE_THREADS, smem, stream, q, k_cache, v_cache, cap,
                                 T, Hq, Hkv, pos0, *ap, out));
    return LD_OK;
}

/* The tiled prefill kernel, or LD_E_UNSUPPORTED (err set) where the shape does not allow it. */
static ld_status launch_tile(const ld_bf16 *q, const ld_bf16 *k_cache, const ld_bf16 *v_cache,
                             size_t cap, size_t T, size_t Hq, size_t Hkv, size_t D,
                             const int32_t *pos0, const ld_cuda_attn_params *ap, ld_bf16 *out,
                             cudaStream_t stream, ld_error *err)
{
    if ((uintptr_t)k_cache % 16 != 0 || (uintptr_t)v_cache % 16 != 0 ||
        (T + TILE_Q - 1) / TILE_Q > 65535 || Hq > 0x7fffffff)
        return ld_error_set(err, LD_E_UNSUPPORTED,
                            "attention: the tiled kernel needs 16-byte aligned caches and at most "
                            "65535 tiles of %d queries",
                            TILE_Q);
    switch (D) {
    case 32:
        return launch_tile_dc<1>(q, k_cache, v_cache, cap, T, Hq, Hkv, pos0, ap, out, stream, err);
    case 64:
        return launch_tile_dc<2>(q, k_cache, v_cache, cap, T, Hq, Hkv, pos0, ap, out, stream, err);
    case 128:
        return launch_tile_dc<4>(q, k_cache, v_cache, cap, T, Hq, Hkv, pos0, ap, out, stream, err);
    default:
        return ld_error_set(err, LD_E_UNSUPPORTED,
                            "attention: the tiled kernel takes head sizes 32, 64 and 128, not %zu",
                            D);
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
    if (!split && ap->kernel != LD_ATTN_KERNEL_PER_QUERY) {
        bool want = ap->kernel == LD_ATTN_KERNEL_TILED || T >= TILE_Q;
        ld_status st = want ? launch_tile(q, k_cache, v_cache, cap, T, Hq, Hkv, D, pos0, ap, out,
                                          stream, err)
                            : LD_E_UNSUPPORTED;
        if (st != LD_E_UNSUPPORTED || ap->kernel == LD_ATTN_KERNEL_TILED)
            return st;
        ld_error_clear(err); /* AUTO: one block per query instead */
    } else if (split && ap->kernel == LD_ATTN_KERNEL_TILED) {
        return ld_error_set(err, LD_E_INTERNAL, "attention: the tiled kernel takes no split");
    }
    dim3 grid((unsigned)(T * Hq), (unsigned)n_split);
    size_t smem = (2 * D + LD_ATTN_CHUNK) * sizeof(float);
    float *ml = combine ? split->ml : NULL, *acc = combine ? split->acc : NULL;
    LD_CUDA_CHECK(err, ld_launch(attention_kernel, grid, ATTN_THREADS, smem, stream, q, k_cache,
                                 v_cache, cap, T, Hq, Hkv, D, pos0, *ap, split_keys, combine, ml,
                                 acc, out));
    if (!combine)
        return LD_OK;
    LD_CUDA_CHECK(err, ld_launch(attention_combine_kernel, (unsigned)(T * Hq), ATTN_THREADS, 0,
                                 stream, split->ml, split->acc, n_split, D, ap->softmax_bf16, out));
    return LD_OK;
}

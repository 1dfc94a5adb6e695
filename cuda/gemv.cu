/* gemv.cu — y = x·Wᵀ for T <= LD_GEMV_MAX_T rows of x (gemv.cuh): the decode step's matmuls,
 * which read every weight once per token and are bound by memory bandwidth, not arithmetic.
 *
 * Parallelization: one warp per output row n (GEMV_WARPS rows per block of GEMV_THREADS threads,
 * so N / GEMV_WARPS blocks: 512 for q/k/v of qwen3-0.6b, 18,992 for its lm_head). Row n of W is
 * cut into chunks of 8 bf16 (16 bytes); lane l takes chunks l, l + 32, l + 64, ... — a warp reads
 * 512 contiguous bytes per step, coalesced — and issues GEMV_UNROLL chunk loads before it uses
 * any, so that enough bytes are in flight to cover the memory latency. Each weight chunk is
 * multiplied with the same chunk of every row of x (T accumulators), so W is read once for all T.
 *
 * Summation order, fixed by K alone: lane l accumulates, in fp32 with one FMA per term, its chunks
 * in increasing order and the elements of a chunk in increasing order (the last chunk may be
 * short, K % 8 elements; nothing is padded); then the 32 lane sums are added by a butterfly over
 * __shfl_xor_sync (offsets 16, 8, 4, 2, 1), which leaves the same bits in every lane; lane 0
 * rounds once to bf16. No atomics, no split over blocks: the result does not depend on timing,
 * on T (each accumulator sees only its own row), on the grid, or on whether the loads are 16-byte
 * vectors (W and x 16-byte aligned, K and ldx multiples of 8) or single elements (otherwise).
 *
 * The MLP's gate/up GEMV (decode_gemv_glu_kernel) gives each warp a pair of rows, gate row n and
 * up row I + n, summed one after the other exactly as above; lane 0 then has both values and
 * writes the activation too, so silu_mul's launch goes away and every probed tensor (gate_proj,
 * up_proj, mlp_act) keeps its bits.
 *
 * Launched programmatically (prefetch true: ld_cuda_pdl(), cuda_common.cuh), a warp first asks L2
 * for its weight rows, which no kernel writes, and only then waits for the kernel before it: the
 * weights of a GEMV stream in while the small kernels before it (attention, q/k norm) still run.
 * Nothing a sum reads changes, so neither do the bits. */
#include <limits.h>

#include "cuda_common.cuh"
#include "gemv.cuh"

#define GEMV_WARPS 8                     /* output rows per block */
#define GEMV_THREADS (GEMV_WARPS * 32)
#define GEMV_UNROLL 8                    /* chunk loads per lane in flight */

/* The cnt <= 8 bf16 at p as one 16-byte chunk: a vector load, or element loads (the unread part
 * zero, and never used: see dot8). Element 2j is the low half of word j, as a vector load puts
 * it on a little-endian device. */
template <bool VEC> __device__ __forceinline__ uint4 load8(const ld_bf16 *p, unsigned cnt)
{
    if (VEC)
        return *reinterpret_cast<const uint4 *>(p);
    uint32_t u[4] = {0u, 0u, 0u, 0u};
    for (unsigned e = 0; e < cnt; e++)
        u[e / 2] |= (uint32_t)p[e] << (16 * (e & 1));
    return make_uint4(u[0], u[1], u[2], u[3]);
}

/* Elements in chunk c of a K-long row: 8, or K % 8 for a short last chunk. */
__device__ __forceinline__ unsigned chunk_len(size_t K, size_t c)
{
    return K - 8 * c < 8 ? (unsigned)(K - 8 * c) : 8u;
}


/* acc + Σ a[e]·b[e] over the first cnt elements, one FMA each, in increasing e. */
__device__ __forceinline__ float dot8(uint4 a, uint4 b, unsigned cnt, float acc)
{
#pragma unroll
    for (int e = 0; e < 8; e++)
        if ((unsigned)e < cnt)
            acc = __fmaf_rn(ld_chunk_bf2f(a, e), ld_chunk_bf2f(b, e), acc);
    return acc;
}

/* acc[t] = Σ_k x[t, k]·wr[k] for t < T, in the order of the file header, reduced over the warp:
 * every lane gets the sums. */
template <int T, bool VEC>
__device__ __forceinline__ void warp_dot(const ld_bf16 *__restrict__ x, size_t ldx,
                                         const ld_bf16 *__restrict__ wr, size_t K, unsigned lane,
                                         float *acc)
{
    size_t chunks = (K + 7) / 8;
#pragma unroll
    for (int t = 0; t < T; t++)
        acc[t] = 0.0f;
    for (size_t c0 = lane; c0 < chunks; c0 += 32 * GEMV_UNROLL) {
        uint4 wc[GEMV_UNROLL];
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            size_t c = c0 + 32 * (size_t)u;
            wc[u] = make_uint4(0u, 0u, 0u, 0u);
            if (c < chunks)
                wc[u] = load8<VEC>(wr + 8 * c, VEC ? 8u : chunk_len(K, c));
        }
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            size_t c = c0 + 32 * (size_t)u;
            if (c >= chunks)
                break;
            unsigned cnt = VEC ? 8u : chunk_len(K, c);
#pragma unroll
            for (int t = 0; t < T; t++)
                acc[t] = dot8(load8<VEC>(x + t * ldx + 8 * c, cnt), wc[u], cnt, acc[t]);
        }
    }
#pragma unroll
    for (int t = 0; t < T; t++)
        for (int o = 16; o > 0; o >>= 1)
            acc[t] += __shfl_xor_sync(0xffffffffu, acc[t], o);
}

/* y[t, n] for t < T: the warp's row n of W against x, rounded once by lane 0. */
template <int T, bool VEC>
__device__ __forceinline__ void gemv_row(const ld_bf16 *__restrict__ x, size_t ldx,
                                         const ld_bf16 *__restrict__ w, size_t n, size_t K,
                                         unsigned lane, ld_bf16 *__restrict__ y, size_t ldy)
{
    float acc[T];
    warp_dot<T, VEC>(x, ldx, w + n * K, K, lane, acc);
    if (lane == 0) {
#pragma unroll
        for (int t = 0; t < T; t++)
            y[t * ldy + n] = ld_f2bf(acc[t]);
    }
}

/* Gate row n (W row n) and up row I + n, each summed exactly as gemv_row sums it and rounded to
 * bf16 into gu, then act[t, n] = ld_act_mul of the two rounded values — the bits silu_mul.cu
 * computes from gu. */
template <int T, bool VEC>
__device__ __forceinline__ void glu_row(const ld_bf16 *__restrict__ x, size_t ldx,
                                        const ld_bf16 *__restrict__ w, size_t n, size_t I,
                                        size_t K, unsigned lane, ld_bf16 *__restrict__ gu,
                                        size_t ldgu, bool gelu, ld_bf16 *__restrict__ act,
                                        size_t ldact)
{
    float g[T], u[T];
    warp_dot<T, VEC>(x, ldx, w + n * K, K, lane, g);
    warp_dot<T, VEC>(x, ldx, w + (I + n) * K, K, lane, u);
    if (lane == 0) {
#pragma unroll
        for (int t = 0; t < T; t++) {
            ld_bf16 gb = ld_f2bf(g[t]), ub = ld_f2bf(u[t]);
            gu[t * ldgu + n] = gb;
            gu[t * ldgu + I + n] = ub;
            act[t * ldact + n] = ld_f2bf(ld_act_mul(ld_bf2f(gb), ld_bf2f(ub), gelu));
        }
    }
}

/* y[t, n] for the warp's row n < N. */
template <int T, bool VEC>
__global__ static void __launch_bounds__(GEMV_THREADS)
    decode_gemv_kernel(const ld_bf16 *__restrict__ x, size_t ldx, const ld_bf16 *__restrict__ w,
                       size_t N, size_t K, ld_bf16 *__restrict__ y, size_t ldy, bool prefetch)
{
    size_t n = (size_t)blockIdx.x * GEMV_WARPS + threadIdx.x / 32;
    if (prefetch && n < N)
        ld_prefetch_l2(w + n * K, K * sizeof(ld_bf16), threadIdx.x % 32);
    ld_grid_wait();
    if (n < N) /* the whole warp: no shuffle waits for a lane that left */
        gemv_row<T, VEC>(x, ldx, w, n, K, threadIdx.x % 32, y, ldy);
}

/* The gate/up GEMV with the activation: the warp's pair of rows n < I. */
template <int T, bool VEC>
__global__ static void __launch_bounds__(GEMV_THREADS)
    decode_gemv_glu_kernel(const ld_bf16 *__restrict__ x, size_t ldx,
                           const ld_bf16 *__restrict__ w, size_t I, size_t K,
                           ld_bf16 *__restrict__ gu, size_t ldgu, bool gelu,
                           ld_bf16 *__restrict__ act, size_t ldact, bool prefetch)
{
    size_t n = (size_t)blockIdx.x * GEMV_WARPS + threadIdx.x / 32;
    if (prefetch && n < I) {
        ld_prefetch_l2(w + n * K, K * sizeof(ld_bf16), threadIdx.x % 32);
        ld_prefetch_l2(w + (I + n) * K, K * sizeof(ld_bf16), threadIdx.x % 32);
    }
    ld_grid_wait();
    if (n < I)
        glu_row<T, VEC>(x, ldx, w, n, I, K, threadIdx.x % 32, gu, ldgu, gelu, act, ldact);
}

/* ld_cuda_gemv_norm as the kernels take it (eps in f32, as rmsnorm.cu uses it). */
struct norm_args {
    const ld_bf16 *h, *delta;
    bool skip_h, mul_var;
    int64_t nan_at;
    const ld_bf16 *w;
    float eps;
    ld_bf16 *h_out, *x_out;
};

static_assert(LD_NORM_REGS * GEMV_THREADS >= LD_GEMV_NORM_MAX_K,
              "ld_add_rmsnorm_row must cover the widest normed row in one block");

/* One token's GEMV (GLU false: rows n < N of W; true: the gate/up pairs n < N, N = I) whose input
 * row is the residual add + RMSNorm of nm, computed by every block into shared memory with
 * ld_add_rmsnorm_row — the bits add_rmsnorm_kernel writes — before its warps take their rows.
 * Block 0 alone stores the new residual (h_out) and the normed row (x_out); every block reads h,
 * never h_out, so no block sees another's store. */
template <bool VEC, bool GLU>
__global__ static void __launch_bounds__(GEMV_THREADS)
    decode_norm_gemv_kernel(norm_args nm, const ld_bf16 *__restrict__ w, size_t N, size_t K,
                            ld_bf16 *__restrict__ y, bool gelu, ld_bf16 *__restrict__ act,
                            bool prefetch)
{
    __shared__ uint4 xs16[LD_GEMV_NORM_MAX_K / 8]; /* the normed row; uint4: 16-byte aligned */
    ld_bf16 *xs = reinterpret_cast<ld_bf16 *>(xs16);
    __shared__ float red[32];
    size_t n = (size_t)blockIdx.x * GEMV_WARPS + threadIdx.x / 32;
    if (prefetch && n < N) {
        ld_prefetch_l2(w + n * K, K * sizeof(ld_bf16), threadIdx.x % 32);
        if (GLU)
            ld_prefetch_l2(w + (N + n) * K, K * sizeof(ld_bf16), threadIdx.x % 32);
    }
    ld_grid_wait();
    bool first = blockIdx.x == 0;
    ld_add_rmsnorm_row(nm.h, nm.delta, nm.skip_h, nm.nan_at, nm.w, K, nm.eps, nm.mul_var,
                       first ? nm.h_out : NULL, xs, first ? nm.x_out : NULL, red);
    __syncthreads(); /* xs complete before any warp reads it */
    if (n >= N)
        return;
    if (GLU)
        glu_row<1, VEC>(xs, K, w, n, N, K, threadIdx.x % 32, y, 2 * N, gelu, act, N);
    else
        gemv_row<1, VEC>(xs, K, w, n, K, threadIdx.x % 32, y, N);
}

typedef void (*gemv_fn)(const ld_bf16 *, size_t, const ld_bf16 *, size_t, size_t, ld_bf16 *,
                        size_t, bool);
typedef void (*gemv_glu_fn)(const ld_bf16 *, size_t, const ld_bf16 *, size_t, size_t, ld_bf16 *,
                            size_t, bool, ld_bf16 *, size_t, bool);

template <bool VEC> static gemv_fn pick(size_t T)
{
    switch (T) {
    case 1: return decode_gemv_kernel<1, VEC>;
    case 2: return decode_gemv_kernel<2, VEC>;
    case 3: return decode_gemv_kernel<3, VEC>;
    default: return decode_gemv_kernel<4, VEC>;
    }
}

template <bool VEC> static gemv_glu_fn pick_glu(size_t T)
{
    switch (T) {
    case 1: return decode_gemv_glu_kernel<1, VEC>;
    case 2: return decode_gemv_glu_kernel<2, VEC>;
    case 3: return decode_gemv_glu_kernel<3, VEC>;
    default: return decode_gemv_glu_kernel<4, VEC>;
    }
}

/* The checks both entry points share; *blocks for rows output rows, *vec for the load width. */
static ld_status gemv_check(const ld_bf16 *x, size_t ldx, const ld_bf16 *w, size_t rows,
                            size_t K, size_t T, size_t ldy, size_t N, size_t *blocks, bool *vec,
                            ld_error *err)
{
    if (T > LD_GEMV_MAX_T)
        return ld_error_set(err, LD_E_INTERNAL, "gemv: %zu rows, at most %d", T, LD_GEMV_MAX_T);
    if (ldx < K || ldy < N)
        return ld_error_set(err, LD_E_INTERNAL, "gemv: row strides %zu, %zu below K %zu, N %zu",
                            ldx, ldy, K, N);
    *blocks = (rows + GEMV_WARPS - 1) / GEMV_WARPS;
    if (*blocks > INT_MAX)
        return ld_error_set(err, LD_E_UNSUPPORTED, "gemv: %zu output rows exceed one grid", rows);
    *vec = K % 8 == 0 && ldx % 8 == 0 && ((uintptr_t)x | (uintptr_t)w) % 16 == 0;
    return LD_OK;
}

extern "C" ld_status ld_cuda_gemv(const ld_bf16 *x, size_t ldx, const ld_bf16 *w, size_t N,
                                  size_t K, size_t T, ld_bf16 *y, size_t ldy, cudaStream_t stream,
                                  ld_error *err)
{
    size_t blocks = 0;
    bool vec = false;
    ld_status st = gemv_check(x, ldx, w, N, K, T, ldy, N, &blocks, &vec, err);
    if (st != LD_OK || N == 0 || T == 0)
        return st;
    gemv_fn k = vec ? pick<true>(T) : pick<false>(T);
    LD_CUDA_CHECK(err, ld_launch(k, (unsigned)blocks, GEMV_THREADS, 0, stream, x, ldx, w, N, K, y,
                                 ldy, ld_cuda_pdl()));
    return LD_OK;
}

extern "C" ld_status ld_cuda_gemv_glu(const ld_bf16 *x, size_t ldx, const ld_bf16 *w, size_t I,
                                      size_t K, size_t T, ld_bf16 *gu, size_t ldgu, bool gelu,
                                      ld_bf16 *act, size_t ldact, cudaStream_t stream,
                                      ld_error *err)
{
    size_t blocks = 0;
    bool vec = false;
    ld_status st = gemv_check(x, ldx, w, I, K, T, ldgu, 2 * I, &blocks, &vec, err);
    if (st == LD_OK && ldact < I)
        st = ld_error_set(err, LD_E_INTERNAL, "gemv_glu: act row stride %zu below %zu", ldact, I);
    if (st != LD_OK || I == 0 || T == 0)
        return st;
    gemv_glu_fn k = vec ? pick_glu<true>(T) : pick_glu<false>(T);
    LD_CUDA_CHECK(err, ld_launch(k, (unsigned)blocks, GEMV_THREADS, 0, stream, x, ldx, w, I, K, gu,
                                 ldgu, gelu, act, ldact, ld_cuda_pdl()));
    return LD_OK;
}

/* The checks of the normed GEMVs; *nd the kernels' arguments. */
static ld_status norm_check(const ld_cuda_gemv_norm *nm, const ld_bf16 *w, size_t rows, size_t K,
                            size_t *blocks, bool *vec, norm_args *nd, ld_error *err)
{
    if (K == 0 || K > LD_GEMV_NORM_MAX_K)
        return ld_error_set(err, LD_E_INTERNAL, "normed gemv: row of %zu, at most %d", K,
                            LD_GEMV_NORM_MAX_K);
    if (!nm->h || !nm->w || ((nm->delta || nm->nan_at >= 0) && !nm->h_out) ||
        nm->nan_at >= (int64_t)K)
        return ld_error_set(err, LD_E_INTERNAL, "normed gemv: bad residual arguments");
    /* Every block reads h while block 0 writes h_out: they must not overlap. */
    if (nm->h_out && nm->h_out < nm->h + K && nm->h < nm->h_out + K)
        return ld_error_set(err, LD_E_INTERNAL, "normed gemv: h_out overlaps h");
    ld_status st = gemv_check(nm->h, K, w, rows, K, 1, K, 0, blocks, vec, err);
    if (st != LD_OK)
        return st;
    *vec = K % 8 == 0 && (uintptr_t)w % 16 == 0; /* x is the block's aligned shared copy */
    *nd = norm_args{nm->h,      nm->delta, nm->skip_h,       nm->mul_var, nm->nan_at,
                    nm->w,      (float)nm->eps, nm->h_out, nm->x_out};
    return LD_OK;
}

/* Both normed GEMVs: GLU false, rows n < N of W into y; true, the gate/up pairs n < N (N = I)
 * into y = gu, with the activation into act. */
static ld_status norm_gemv(const ld_cuda_gemv_norm *nm, const ld_bf16 *w, size_t N, size_t K,
                           ld_bf16 *y, bool glu, bool gelu, ld_bf16 *act, cudaStream_t stream,
                           ld_error *err)
{
    size_t blocks = 0;
    bool vec = false;
    norm_args nd = {};
    ld_status st = norm_check(nm, w, N, K, &blocks, &vec, &nd, err);
    if (st != LD_OK)
        return st;
    blocks = blocks ? blocks : 1; /* N = 0: the residual and the normed row are still written */
    auto k = glu ? (vec ? decode_norm_gemv_kernel<true, true> : decode_norm_gemv_kernel<false, true>)
                 : (vec ? decode_norm_gemv_kernel<true, false>
                        : decode_norm_gemv_kernel<false, false>);
    LD_CUDA_CHECK(err, ld_launch(k, (unsigned)blocks, GEMV_THREADS, 0, stream, nd, w, N, K, y, gelu,
                                 act, ld_cuda_pdl()));
    return LD_OK;
}

extern "C" ld_status ld_cuda_norm_gemv(const ld_cuda_gemv_norm *nm, const ld_bf16 *w, size_t N,
                                       size_t K, ld_bf16 *y, cudaStream_t stream, ld_error *err)
{
    return norm_gemv(nm, w, N, K, y, false, false, nullptr, stream, err);
}

extern "C" ld_status ld_cuda_norm_gemv_glu(const ld_cuda_gemv_norm *nm, const ld_bf16 *w,
                                           size_t I, size_t K, ld_bf16 *gu, bool gelu,
                                           ld_bf16 *act, cudaStream_t stream, ld_error *err)
{
    return norm_gemv(nm, w, I, K, gu, true, gelu, act, stream, err);
}

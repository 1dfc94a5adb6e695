/* matmul.c — the reference matmul y[T,N] = x[T,K]·W[N,K]ᵀ against a weight in its stored dtype.
 * Not a BLAS: one blocking scheme, chosen so that every output's summation order is a function of K
 * alone. Each y[t,n] accumulates in 8 double lanes (lane = k mod 8, k ascending within a lane),
 * then sums the lanes in a fixed tree; so rows are identical whatever T, the block a row falls in,
 * the thread count or the CPU's vector width. Weights are widened exactly (bf16/f16 → f32 → f64,
 * and the product of two f32 values is exact in f64, so fused multiply-add changes nothing here).
 * The emulated low-precision path (acc_f32) does the same with 16 fp32 lanes. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "matmul_kernels.h"
#include "ops.h"
#include "util.h"

typedef float v16f __attribute__((vector_size(64)));

/* Widens W[n0+r, k0..k0+kl) into dst[r*KC + ...] for r < MR (zeros past row N), rounded to
 * round_to: the weights an emulated low-precision kernel would hold. */
static void widen_f32(const ld_tensor *w, size_t n0, size_t N, size_t K, size_t k0, size_t kl,
                      ld_dtype round_to, float *dst)
{
    for (size_t r = 0; r < MR; r++) {
        float *d = dst + r * KC;
        if (n0 + r >= N) {
            memset(d, 0, kl * sizeof *d);
            continue;
        }
        size_t base = (n0 + r) * K + k0;
        for (size_t k = 0; k < kl; k++)
            d[k] = ld_round_to(ld_load_f32(w->data, w->dtype, base + k), round_to);
    }
}

/* always_inline: the target_clones kernels below call it, and a 64-byte vector returned from a
 * function compiled for another ISA travels by another calling convention (the psabi warning this
 * file silences); inlined, no call and no convention remain, at any optimization level. */
static inline __attribute__((always_inline)) v16f load_v16f(const float *p)
{
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The fp32-accumulating twin for emulated low-precision kernels: 16 float lanes (lane = k mod 16),
 * products rounded to f32 before the add (no contraction), fixed lane tree at the end. */
#if defined(__x86_64__)
#define LD_F32_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LD_F32_CLONES
#endif
LD_F32_CLONES static void
kernel_f32(const float *wb, const float *x, size_t K, size_t kl, size_t nt, v16f *acc)
{
    size_t k16 = kl & ~(size_t)15;
    for (size_t t = 0; t < nt; t++) {
        v16f a0[MR];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
            a0[r] = acc[t * MR + (size_t)r];
        const float *x0 = x + t * K;
        for (size_t k = 0; k < k16; k += 16) {
            v16f xv0 = load_v16f(x0 + k);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) {
                v16f p = *(const v16f *)(wb + (size_t)r * KC + k) * xv0;
                a0[r] += p;
            }
        }
        for (size_t k = k16; k < kl; k++)
            for (int r = 0; r < MR; r++) {
                float p = wb[(size_t)r * KC + k] * x0[k];
                a0[r][k - k16] += p;
            }
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
            acc[t * MR + (size_t)r] = a0[r];
    }
}

static inline float lanes_sum_f32(v16f v)
{
    float a = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
    float b = ((v[8] + v[9]) + (v[10] + v[11])) + ((v[12] + v[13]) + (v[14] + v[15]));
    return a + b;
}

/* One MR-row block of y for tokens [t0, t0+tn): widen the weights chunk by chunk, accumulate. */
static void block_f64(const double *x, const ld_tensor *w, size_t n0, size_t t0, size_t tn,
                      float *y, double *wb, v8d *acc)
{
    size_t N = (size_t)w->shape[0], K = (size_t)w->shape[1];
    memset(acc, 0, tn * MR * sizeof *acc);
    for (size_t k0 = 0; k0 < K; k0 += KC) {
        size_t kl = LD_MIN((size_t)KC, K - k0);
        ld_ref_widen_f64(w, n0, N, K, k0, kl, wb);
        ld_ref_kernel_f64(wb, x + t0 * K + k0, K, kl, tn, acc);
    }
    for (size_t t = 0; t < tn; t++)
        for (size_t r = 0; r < MR && n0 + r < N; r++)
            y[(t0 + t) * N + n0 + r] = (float)ld_ref_lanes_sum_f64(acc[t * MR + r]);
}

static void block_f32(const float *x, const ld_tensor *w, size_t n0, size_t t0, size_t tn,
                      float *y, float *wb, v16f *acc, const ld_numerics *nx)
{
    size_t N = (size_t)w->shape[0], K = (size_t)w->shape[1];
    memset(acc, 0, tn * MR * sizeof *acc);
    for (size_t k0 = 0; k0 < K; k0 += KC) {
        size_t kl = LD_MIN((size_t)KC, K - k0);
        widen_f32(w, n0, N, K, k0, kl, nx->round_to, wb);
        kernel_f32(wb, x + t0 * K + k0, K, kl, tn, acc);
    }
    for (size_t t = 0; t < tn; t++)
        for (size_t r = 0; r < MR && n0 + r < N; r++)
            y[(t0 + t) * N + n0 + r] = ld_nx_store(nx, lanes_sum_f32(acc[t * MR + r]), (t0 + t) * N + n0 + r);
}

/* Few tokens (decode): widen x once to double, then stream the weights through the direct kernel,
 * which widens them in registers. Same lanes and order as the blocked path. */
static ld_status matmul_direct(const float *x, const ld_tensor *w, size_t T, float *y, ld_error *err)
{
    size_t N = (size_t)w->shape[0], K = (size_t)w->shape[1];
    double *xd = malloc(T * K * sizeof *xd);
    if (!xd)
        return ld_error_set(err, LD_E_NOMEM, "matmul %s: cannot allocate %zu doubles", w->name, T * K);
    for (size_t i = 0; i < T * K; i++)
        xd[i] = (double)x[i];
    /* Row groups of 64 keep each thread's share contiguous; the split never changes a result. */
    size_t groups = (N + 63) / 64;
#pragma omp parallel for schedule(static) if (T * N * K >= LD_REF_PARALLEL_MIN_WORK)
    for (size_t gi = 0; gi < groups; gi++)
        ld_ref_kernel_f64_direct(w, gi * 64, LD_MIN(N, gi * 64 + 64), xd, T, y);
    free(xd);
    return LD_OK;
}

ld_status ld_ref_matmul(const float *x, const ld_tensor *w, size_t T, float *y,
                        const ld_numerics *nx, ld_error *err)
{
    if (w->ndim != 2)
        return ld_error_set(err, LD_E_INTERNAL, "matmul: %s is not a matrix", w->name);
    ld_status st = ld_ref_kernel_ready(err);
    if (st != LD_OK)
        return st;
    if (!nx->acc_f32 && T <= TD && (w->dtype == LD_BF16 || w->dtype == LD_F32))
        return matmul_direct(x, w, T, y, err);
    size_t N = (size_t)w->shape[0], K = (size_t)w->shape[1];
    size_t nblocks = (N + MR - 1) / MR;
    size_t tchunks = (T + TC - 1) / TC;
    /* The double path widens x once (split across the threads); each token chunk of it (TC×K
     * doubles) then stays in L2 while every row block of W passes over it. */
    double *xd = NULL;
    if (!nx->acc_f32) {
        xd = malloc(T * K * sizeof *xd);
        if (!xd)
            return ld_error_set(err, LD_E_NOMEM, "matmul %s: cannot allocate %zu doubles", w->name,
                                T * K);
    }
    int failed = 0;
#pragma omp parallel if (T * N * K >= LD_REF_PARALLEL_MIN_WORK)
    {
        if (xd) {
#pragma omp for schedule(static)
            for (size_t i = 0; i < T * K; i++)
                xd[i] = (double)x[i];
        }
        /* Per-thread scratch: one widened weight block and the accumulators of one token chunk. */
        void *wb = aligned_alloc(64, (size_t)MR * KC * sizeof(double));
        void *acc = aligned_alloc(64, (size_t)TC * MR * sizeof(v8d));
        if (!wb || !acc) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static) collapse(2)
        for (size_t c = 0; c < tchunks; c++) {
            for (size_t b = 0; b < nblocks; b++) {
                if (!wb || !acc)
                    continue;
                size_t t0 = c * TC, tn = LD_MIN((size_t)TC, T - t0);
                if (nx->acc_f32)
                    block_f32(x, w, b * MR, t0, tn, y, wb, acc, nx);
                else
                    block_f64(xd, w, b * MR, t0, tn, y, wb, acc);
            }
        }
        free(wb);
        free(acc);
    }
    free(xd);
    if (failed)
        return ld_error_set(err, LD_E_NOMEM, "matmul %s: cannot allocate scratch", w->name);
    return LD_OK;
}

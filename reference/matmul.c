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

#include "ops.h"
#include "util.h"

typedef double v8d __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));

enum {
    MR = 8,   /* weight rows per block: the rows of W a thread widens once and reuses over tokens */
    KC = 512, /* k per chunk: MR×KC widened weights stay in L1/L2 (multiple of 16) */
    TC = 64   /* tokens per chunk: TC×KC activations stay in L2 */
};

/* Widens W[n0+r, k0..k0+kl) into dst[r*KC + ...] for r < MR (zeros past row N), rounding to
 * round_to when emulating a low-precision kernel. F is double or float. */
#define LD_DEFINE_WIDEN(NAME, F)                                                                   \
    static void NAME(const ld_tensor *w, size_t n0, size_t N, size_t K, size_t k0, size_t kl,      \
                     ld_dtype round_to, F *dst)                                                    \
    {                                                                                              \
        for (size_t r = 0; r < MR; r++) {                                                          \
            F *d = dst + r * KC;                                                                   \
            if (n0 + r >= N) {                                                                     \
                memset(d, 0, kl * sizeof *d);                                                      \
                continue;                                                                          \
            }                                                                                      \
            size_t base = (n0 + r) * K + k0;                                                       \
            if (w->dtype == LD_BF16) {                                                             \
                const uint16_t *s = (const uint16_t *)w->data + base;                              \
                for (size_t k = 0; k < kl; k++)                                                    \
                    d[k] = (F)ld_bf16_to_f32(s[k]);                                                \
            } else if (w->dtype == LD_F16) {                                                       \
                const uint16_t *s = (const uint16_t *)w->data + base;                              \
                for (size_t k = 0; k < kl; k++)                                                    \
                    d[k] = (F)ld_f16_to_f32(s[k]);                                                 \
            } else {                                                                               \
                const float *s = (const float *)w->data + base;                                    \
                for (size_t k = 0; k < kl; k++)                                                    \
                    d[k] = (F)s[k];                                                                \
            }                                                                                      \
            if (round_to != LD_F32)                                                                \
                for (size_t k = 0; k < kl; k++)                                                    \
                    d[k] = (F)ld_round_to((float)d[k], round_to);                                  \
        }                                                                                          \
    }
LD_DEFINE_WIDEN(widen_f64, double)
LD_DEFINE_WIDEN(widen_f32, float)

static inline v8f load_v8f(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline v16f load_v16f(const float *p)
{
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* acc[t][r] += wb[r][0..kl) · x[t][0..kl) in 8 double lanes, for nt tokens (x rows K apart).
 * kl is a multiple of 8 except in the last chunk of a row, whose tail goes to lanes 0..kl%8−1:
 * exactly where a zero-padded vector would have put it. */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) static void
kernel_f64(const double *wb, const float *x, size_t K, size_t kl, size_t nt, v8d *acc)
{
    size_t k8 = kl & ~(size_t)7;
    size_t t = 0;
    for (; t + 2 <= nt; t += 2) {
        v8d a0[MR], a1[MR];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            a0[r] = acc[t * MR + (size_t)r];
            a1[r] = acc[(t + 1) * MR + (size_t)r];
        }
        const float *x0 = x + t * K, *x1 = x0 + K;
        for (size_t k = 0; k < k8; k += 8) {
            v8d xv0 = __builtin_convertvector(load_v8f(x0 + k), v8d);
            v8d xv1 = __builtin_convertvector(load_v8f(x1 + k), v8d);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) {
                v8d wv = *(const v8d *)(wb + (size_t)r * KC + k);
                a0[r] += wv * xv0;
                a1[r] += wv * xv1;
            }
        }
        for (size_t k = k8; k < kl; k++)
            for (int r = 0; r < MR; r++) {
                a0[r][k - k8] += wb[(size_t)r * KC + k] * (double)x0[k];
                a1[r][k - k8] += wb[(size_t)r * KC + k] * (double)x1[k];
            }
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            acc[t * MR + (size_t)r] = a0[r];
            acc[(t + 1) * MR + (size_t)r] = a1[r];
        }
    }
    for (; t < nt; t++) {
        v8d a0[MR];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
            a0[r] = acc[t * MR + (size_t)r];
        const float *x0 = x + t * K;
        for (size_t k = 0; k < k8; k += 8) {
            v8d xv0 = __builtin_convertvector(load_v8f(x0 + k), v8d);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++)
                a0[r] += *(const v8d *)(wb + (size_t)r * KC + k) * xv0;
        }
        for (size_t k = k8; k < kl; k++)
            for (int r = 0; r < MR; r++)
                a0[r][k - k8] += wb[(size_t)r * KC + k] * (double)x0[k];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
            acc[t * MR + (size_t)r] = a0[r];
    }
}

/* The fp32-accumulating twin for emulated low-precision kernels: 16 float lanes (lane = k mod 16),
 * products rounded to f32 before the add (no contraction), fixed lane tree at the end. */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) static void
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

static inline double lanes_sum_f64(v8d v)
{
    return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

static inline float lanes_sum_f32(v16f v)
{
    float a = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
    float b = ((v[8] + v[9]) + (v[10] + v[11])) + ((v[12] + v[13]) + (v[14] + v[15]));
    return a + b;
}

/* One MR-row block of y for tokens [t0, t0+tn): widen the weights chunk by chunk, accumulate. */
static void block_f64(const float *x, const ld_tensor *w, size_t n0, size_t t0, size_t tn,
                      float *y, double *wb, v8d *acc)
{
    size_t N = (size_t)w->shape[0], K = (size_t)w->shape[1];
    memset(acc, 0, tn * MR * sizeof *acc);
    for (size_t k0 = 0; k0 < K; k0 += KC) {
        size_t kl = LD_MIN((size_t)KC, K - k0);
        widen_f64(w, n0, N, K, k0, kl, LD_F32, wb);
        kernel_f64(wb, x + t0 * K + k0, K, kl, tn, acc);
    }
    for (size_t t = 0; t < tn; t++)
        for (size_t r = 0; r < MR && n0 + r < N; r++)
            y[(t0 + t) * N + n0 + r] = (float)lanes_sum_f64(acc[t * MR + r]);
}

static void block_f32(const float *x, const ld_tensor *w, size_t n0, size_t t0, size_t tn,
                      float *y, float *wb, v16f *acc, ld_dtype round_to)
{
    size_t N = (size_t)w->shape[0], K = (size_t)w->shape[1];
    memset(acc, 0, tn * MR * sizeof *acc);
    for (size_t k0 = 0; k0 < K; k0 += KC) {
        size_t kl = LD_MIN((size_t)KC, K - k0);
        widen_f32(w, n0, N, K, k0, kl, round_to, wb);
        kernel_f32(wb, x + t0 * K + k0, K, kl, tn, acc);
    }
    for (size_t t = 0; t < tn; t++)
        for (size_t r = 0; r < MR && n0 + r < N; r++)
            y[(t0 + t) * N + n0 + r] = ld_round_to(lanes_sum_f32(acc[t * MR + r]), round_to);
}

ld_status ld_ref_matmul(const float *x, const ld_tensor *w, size_t T, float *y,
                        const ld_numerics *nx, ld_error *err)
{
    if (w->ndim != 2)
        return ld_error_set(err, LD_E_INTERNAL, "matmul: %s is not a matrix", w->name);
    size_t N = (size_t)w->shape[0];
    size_t nblocks = (N + MR - 1) / MR;
    size_t tchunks = (T + TC - 1) / TC;
    int failed = 0;
#pragma omp parallel
    {
        /* Per-thread scratch: one widened weight block and the accumulators of one token chunk. */
        void *wb = aligned_alloc(64, (size_t)MR * KC * sizeof(double));
        void *acc = aligned_alloc(64, (size_t)TC * MR * sizeof(v8d));
        if (!wb || !acc) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static) collapse(2)
        for (size_t b = 0; b < nblocks; b++) {
            for (size_t c = 0; c < tchunks; c++) {
                if (!wb || !acc)
                    continue;
                size_t t0 = c * TC, tn = LD_MIN((size_t)TC, T - t0);
                if (nx->acc_f32)
                    block_f32(x, w, b * MR, t0, tn, y, wb, acc, nx->round_to);
                else
                    block_f64(x, w, b * MR, t0, tn, y, wb, acc);
            }
        }
        free(wb);
        free(acc);
    }
    if (failed)
        return ld_error_set(err, LD_E_NOMEM, "matmul %s: cannot allocate scratch", w->name);
    return LD_OK;
}

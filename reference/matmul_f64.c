/* matmul_f64.c — the double-accumulating kernels of the reference matmul: an AVX-512 version with
 * intrinsics (chosen at run time when the CPU has it) and a portable version in GCC vector types.
 * Both put k into lane k mod 8 in ascending k and end with the same lane tree, so they give the same
 * bits. This file alone is compiled with -ffp-contract=fast, and that cannot change a single bit:
 * every product here is of two values widened from f32 (or bf16/f16), whose 24-bit significands
 * multiply into at most 48 bits, so w·x is exact in double, and round(acc + w·x) is the same
 * number whether the multiply is fused or not. Blocking and threading: matmul.c. */
#include <immintrin.h>
#include <string.h>

#include "matmul_kernels.h"

typedef unsigned short v8hu __attribute__((vector_size(16)));
typedef unsigned int v8su __attribute__((vector_size(32)));

/* ---- portable version ------------------------------------------------------------------------ */

static inline __attribute__((always_inline)) v8f load_v8f(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) v8d load_v8d(const double *p)
{
    v8d v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* 8 bf16 values → 8 doubles, exactly (bf16 is the top half of an f32). */
static inline __attribute__((always_inline)) v8d load_bf16x8(const uint16_t *p)
{
    v8hu h;
    memcpy(&h, p, sizeof h);
    v8su u = __builtin_convertvector(h, v8su) << 16;
    v8f f;
    memcpy(&f, &u, sizeof f);
    return __builtin_convertvector(f, v8d);
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) static void
kernel_generic(const double *wb, const double *x, size_t K, size_t kl, size_t nt, v8d *acc)
{
    size_t k8 = kl & ~(size_t)7;
    for (size_t t = 0; t < nt; t++) {
        v8d a0[MR];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
            a0[r] = acc[t * MR + (size_t)r];
        const double *x0 = x + t * K;
        for (size_t k = 0; k < k8; k += 8) {
            v8d xv0 = load_v8d(x0 + k);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++)
                a0[r] += *(const v8d *)(wb + (size_t)r * KC + k) * xv0;
        }
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
            acc[t * MR + (size_t)r] = a0[r];
    }
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) static void
direct_generic(const ld_tensor *w, size_t n0, size_t n1, const double *xd, double *acc)
{
    size_t K = (size_t)w->shape[1], k8 = K & ~(size_t)7;
    bool bf16 = w->dtype == LD_BF16;
    for (size_t n = n0; n < n1; n++) {
        v8d a = {0};
        const uint16_t *wh = (const uint16_t *)w->data + n * K;
        const float *wf = (const float *)w->data + n * K;
        for (size_t k = 0; k < k8; k += 8)
            a += (bf16 ? load_bf16x8(wh + k) : __builtin_convertvector(load_v8f(wf + k), v8d)) *
                 load_v8d(xd + k);
        memcpy(acc + (n - n0) * 8, &a, sizeof a);
    }
}

/* ---- AVX-512 version --------------------------------------------------------------------------- */

#define LD_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

LD_AVX512 static inline __m512d bf16x8_pd(const uint16_t *p)
{
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m256i u = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
    return _mm512_cvtps_pd(_mm256_castsi256_ps(u));
}

LD_AVX512 static void kernel_avx512(const double *wb, const double *x, size_t K, size_t kl,
                                    size_t nt, v8d *acc)
{
    size_t k8 = kl & ~(size_t)7;
    double *ad = (double *)acc;
    size_t t = 0;
    for (; t + 3 <= nt; t += 3) { /* three tokens × MR rows: 24 accumulators, 8 weights, 3 x */
        __m512d a0[MR], a1[MR], a2[MR];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            a0[r] = _mm512_load_pd(ad + (t * MR + (size_t)r) * 8);
            a1[r] = _mm512_load_pd(ad + ((t + 1) * MR + (size_t)r) * 8);
            a2[r] = _mm512_load_pd(ad + ((t + 2) * MR + (size_t)r) * 8);
        }
        const double *x0 = x + t * K, *x1 = x0 + K, *x2 = x1 + K;
        for (size_t k = 0; k < k8; k += 8) {
            __m512d xv0 = _mm512_loadu_pd(x0 + k);
            __m512d xv1 = _mm512_loadu_pd(x1 + k);
            __m512d xv2 = _mm512_loadu_pd(x2 + k);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) {
                __m512d wv = _mm512_load_pd(wb + (size_t)r * KC + k);
                a0[r] = _mm512_fmadd_pd(wv, xv0, a0[r]);
                a1[r] = _mm512_fmadd_pd(wv, xv1, a1[r]);
                a2[r] = _mm512_fmadd_pd(wv, xv2, a2[r]);
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            _mm512_store_pd(ad + (t * MR + (size_t)r) * 8, a0[r]);
            _mm512_store_pd(ad + ((t + 1) * MR + (size_t)r) * 8, a1[r]);
            _mm512_store_pd(ad + ((t + 2) * MR + (size_t)r) * 8, a2[r]);
        }
    }
    for (; t < nt; t++) {
        __m512d a0[MR];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
            a0[r] = _mm512_load_pd(ad + (t * MR + (size_t)r) * 8);
        const double *x0 = x + t * K;
        for (size_t k = 0; k < k8; k += 8) {
            __m512d xv0 = _mm512_loadu_pd(x0 + k);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++)
                a0[r] = _mm512_fmadd_pd(_mm512_load_pd(wb + (size_t)r * KC + k), xv0, a0[r]);
        }
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
            _mm512_store_pd(ad + (t * MR + (size_t)r) * 8, a0[r]);
    }
}

/* Four rows at a time against one token: the decode shape, bound by how fast weights stream in. */
LD_AVX512 static void direct_avx512(const ld_tensor *w, size_t n0, size_t n1, const double *xd,
                                    double *acc)
{
    size_t K = (size_t)w->shape[1], k8 = K & ~(size_t)7;
    bool bf16 = w->dtype == LD_BF16;
    const uint16_t *wh = w->data;
    const float *wf = w->data;
    size_t n = n0;
    for (; n + 4 <= n1; n += 4) {
        __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
        if (bf16) {
            const uint16_t *r0 = wh + n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
            for (size_t k = 0; k < k8; k += 8) {
                __m512d xv = _mm512_loadu_pd(xd + k);
                a0 = _mm512_fmadd_pd(bf16x8_pd(r0 + k), xv, a0);
                a1 = _mm512_fmadd_pd(bf16x8_pd(r1 + k), xv, a1);
                a2 = _mm512_fmadd_pd(bf16x8_pd(r2 + k), xv, a2);
                a3 = _mm512_fmadd_pd(bf16x8_pd(r3 + k), xv, a3);
            }
        } else {
            const float *r0 = wf + n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
            for (size_t k = 0; k < k8; k += 8) {
                __m512d xv = _mm512_loadu_pd(xd + k);
                a0 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(r0 + k)), xv, a0);
                a1 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(r1 + k)), xv, a1);
                a2 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(r2 + k)), xv, a2);
                a3 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(r3 + k)), xv, a3);
            }
        }
        double *o = acc + (n - n0) * 8;
        _mm512_storeu_pd(o, a0);
        _mm512_storeu_pd(o + 8, a1);
        _mm512_storeu_pd(o + 16, a2);
        _mm512_storeu_pd(o + 24, a3);
    }
    if (n < n1)
        direct_generic(w, n, n1, xd, acc + (n - n0) * 8);
}

/* ---- dispatch ------------------------------------------------------------------------------------ */

static bool have_avx512(void)
{
    static int cached = -1;
    if (cached < 0)
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl");
    return cached == 1;
}

void ld_ref_kernel_f64(const double *wb, const double *x, size_t K, size_t kl, size_t nt, v8d *acc)
{
    if (have_avx512())
        kernel_avx512(wb, x, K, kl, nt, acc);
    else
        kernel_generic(wb, x, K, kl, nt, acc);
    /* The tail (kl % 8, the last chunk of a row only) goes to lanes 0..kl%8−1, exactly where a
     * zero-padded vector would have put it. */
    size_t k8 = kl & ~(size_t)7;
    for (size_t t = 0; t < nt; t++)
        for (size_t k = k8; k < kl; k++)
            for (size_t r = 0; r < MR; r++)
                acc[t * MR + r][k - k8] += wb[r * KC + k] * x[t * K + k];
}

void ld_ref_kernel_f64_direct(const ld_tensor *w, size_t n0, size_t n1, const double *xd,
                              size_t T, float *y)
{
    size_t N = (size_t)w->shape[0], K = (size_t)w->shape[1], k8 = K & ~(size_t)7;
    double acc[64 * 8]; /* lanes of up to 64 rows: callers pass row groups of at most 64 */
    for (size_t t = 0; t < T; t++) {
        const double *x = xd + t * K;
        for (size_t g = n0; g < n1; g += 64) {
            size_t ge = g + 64 < n1 ? g + 64 : n1;
            if (have_avx512())
                direct_avx512(w, g, ge, x, acc);
            else
                direct_generic(w, g, ge, x, acc);
            for (size_t n = g; n < ge; n++) {
                double *a = acc + (n - g) * 8;
                for (size_t k = k8; k < K; k++)
                    a[k - k8] += (double)ld_load_f32(w->data, w->dtype, n * K + k) * x[k];
                v8d v;
                memcpy(&v, a, sizeof v);
                y[t * N + n] = (float)ld_ref_lanes_sum_f64(v);
            }
        }
    }
}

LD_AVX512 static void widen_bf16_avx512(const uint16_t *src, size_t n, double *dst)
{
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        _mm512_storeu_pd(dst + k, bf16x8_pd(src + k));
    for (; k < n; k++)
        dst[k] = (double)ld_bf16_to_f32(src[k]);
}

void ld_ref_widen_f64(const ld_tensor *w, size_t n0, size_t N, size_t K, size_t k0, size_t kl,
                      double *dst)
{
    for (size_t r = 0; r < MR; r++) {
        double *d = dst + r * KC;
        if (n0 + r >= N) {
            memset(d, 0, kl * sizeof *d);
            continue;
        }
        size_t base = (n0 + r) * K + k0;
        if (w->dtype == LD_BF16) {
            const uint16_t *s = (const uint16_t *)w->data + base;
            if (have_avx512()) {
                widen_bf16_avx512(s, kl, d);
            } else {
                for (size_t k = 0; k < kl; k++)
                    d[k] = (double)ld_bf16_to_f32(s[k]);
            }
        } else if (w->dtype == LD_F16) {
            const uint16_t *s = (const uint16_t *)w->data + base;
            for (size_t k = 0; k < kl; k++)
                d[k] = (double)ld_f16_to_f32(s[k]);
        } else {
            const float *s = (const float *)w->data + base;
            for (size_t k = 0; k < kl; k++)
                d[k] = (double)s[k];
        }
    }
}

/* matmul_f64_x86.c — the x86 kernel paths of the reference matmul (the table entries avx512 and
 * avx2 of matmul_f64.c), in intrinsics compiled for their instruction set by attribute. Same
 * lanes and order as the portable kernels, so the same bits (the proof, and why contraction
 * changes nothing: matmul_f64.c). An empty file elsewhere. */
#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "matmul_kernels.h"

/* ---- AVX-512 --------------------------------------------------------------------------------- */

#define LD_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

static bool avx512_usable(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

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

/* 16 bf16 values (k..k+15) → two lane sets of doubles, k..k+7 and k+8..k+15. One zero-masked word
 * permutation puts each bf16 above 16 zero bits, which is the f32 it is the top half of (one uop
 * for 16 values, where zero-extending and shifting takes two for 8), then f32 → f64 exactly. */
static const uint16_t bf16_to_f32_idx[32] = {0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7,
                                             0, 8, 0, 9, 0, 10, 0, 11, 0, 12, 0, 13, 0, 14, 0, 15};

LD_AVX512 static inline __attribute__((always_inline)) void bf16x16_pd2(const uint16_t *p,
                                                                       __m512i idx, __m512d *lo,
                                                                       __m512d *hi)
{
    __m512i v = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)p));
    __m512d f = _mm512_castsi512_pd(_mm512_maskz_permutexvar_epi16(0xAAAAAAAAu, idx, v));
    *lo = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_castpd512_pd256(f)));
    *hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(f, 1)));
}

/* The direct kernels stream four rows at a time (rows n..n+3 at column k, p = row n's element k).
 * The hardware prefetcher follows each row but stalls at the jump to the next four; so they fetch
 * the next four rows' line at the same column themselves, one line per row per 64 bytes: decode
 * of qwen3-0.6b on one thread 5.8 -> 9.4 tokens/s (AVX2 path, this project's machine). Into L2
 * (T1), not L1: a 1 GiB bf16 weight streamed 5-10 % faster so (AVX-512, 1 and 2 threads). */
#define LD_PREFETCH_NEXT_ROWS(p, K)                                                                \
    do {                                                                                           \
        for (size_t i_ = 4; i_ < 8; i_++)                                                          \
            _mm_prefetch((const char *)((p) + i_ * (K)), _MM_HINT_T1);                           \
    } while (0)

/* Four rows at a time against one token: the decode shape, bound by how fast weights stream in. */
LD_AVX512 static void direct_avx512(const ld_tensor *w, size_t n0, size_t n1, const double *xd,
                                    double *acc)
{
    size_t N = (size_t)w->shape[0], K = (size_t)w->shape[1], k8 = K & ~(size_t)7;
    bool bf16 = w->dtype == LD_BF16;
    const uint16_t *wh = w->data;
    const float *wf = w->data;
    __m512i idx = _mm512_loadu_si512(bf16_to_f32_idx);
    size_t n = n0;
    for (; n + 4 <= n1; n += 4) {
        __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
        if (bf16) {
            const uint16_t *r0 = wh + n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
            const uint16_t *rows[4] = {r0, r1, r2, r3};
            __m512d a[4] = {a0, a1, a2, a3};
            size_t k = 0;
            for (; k + 32 <= k8; k += 32) { /* one cache line of each row */
                if (n + 8 <= N)
                    LD_PREFETCH_NEXT_ROWS(r0 + k, K);
#pragma GCC unroll 2
                for (size_t k2 = k; k2 < k + 32; k2 += 16) {
                    __m512d xl = _mm512_loadu_pd(xd + k2), xh = _mm512_loadu_pd(xd + k2 + 8);
#pragma GCC unroll 4
                    for (int i = 0; i < 4; i++) {
                        __m512d wl, whi;
                        bf16x16_pd2(rows[i] + k2, idx, &wl, &whi);
                        a[i] = _mm512_fmadd_pd(wl, xl, a[i]);
                        a[i] = _mm512_fmadd_pd(whi, xh, a[i]);
                    }
                }
            }
            a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
            for (; k < k8; k += 8) {
                __m512d xv = _mm512_loadu_pd(xd + k);
                a0 = _mm512_fmadd_pd(bf16x8_pd(r0 + k), xv, a0);
                a1 = _mm512_fmadd_pd(bf16x8_pd(r1 + k), xv, a1);
                a2 = _mm512_fmadd_pd(bf16x8_pd(r2 + k), xv, a2);
                a3 = _mm512_fmadd_pd(bf16x8_pd(r3 + k), xv, a3);
            }
        } else {
            const float *r0 = wf + n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
            for (size_t k = 0; k < k8; k += 8) {
                if ((k & 15) == 0 && n + 8 <= N)
                    LD_PREFETCH_NEXT_ROWS(r0 + k, K);
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
        ld_ref_direct_generic(w, n, n1, xd, acc + (n - n0) * 8);
}

LD_AVX512 static void widen_avx512(const void *src, ld_dtype dt, size_t n, double *dst)
{
    size_t k = 0;
    if (dt == LD_BF16) {
        for (; k + 8 <= n; k += 8)
            _mm512_storeu_pd(dst + k, bf16x8_pd((const uint16_t *)src + k));
    } else if (dt == LD_F16) {
        for (; k + 8 <= n; k += 8) {
            __m128i h = _mm_loadu_si128((const __m128i *)(const void *)((const uint16_t *)src + k));
            _mm512_storeu_pd(dst + k, _mm512_cvtps_pd(_mm256_cvtph_ps(h)));
        }
    } else {
        for (; k + 8 <= n; k += 8)
            _mm512_storeu_pd(dst + k, _mm512_cvtps_pd(_mm256_loadu_ps((const float *)src + k)));
    }
    size_t esize = dt == LD_F32 ? 4 : 2;
    ld_ref_widen_generic((const char *)src + k * esize, dt, n - k, dst + k);
}

const ld_ref_kernels ld_ref_kernels_avx512 = {"avx512", avx512_usable, kernel_avx512,
                                              direct_avx512, widen_avx512};

/* ---- AVX2 + FMA ------------------------------------------------------------------------------ */

/* Sixteen ymm registers, and a lane set of 8 doubles is two of them: lanes 0–3 and 4–7. The two
 * halves are independent sums, so the kernel makes one pass per half; a tile of RT rows × TT
 * tokens of one half holds RT·TT accumulators, the TT activations and one weight: 4×3 → 12 + 3 +
 * 1 = 16 registers, no spill, 7 loads for 12 FMAs. */
#define LD_AVX2 __attribute__((target("avx2,fma,f16c")))

static bool avx2_usable(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

/* Loads each value once into a register: left alone, GCC folds the activation loads into the
 * FMAs as memory operands, loading each one RT times, and the kernel waits on loads. */
#define LD_IN_REGISTER(v) __asm__("" : "+x"(v))

/* Lanes 4h..4h+3 of acc[(t+j)*MR + r0+i] += wb rows r0+i · x rows t+j, for i < RT, j < TT. */
LD_AVX2 static inline __attribute__((always_inline)) void
tile_avx2(const double *wb, const double *x, size_t K, size_t k8, size_t t, size_t r0, size_t h,
          int RT, int TT, v8d *acc)
{
    double *ad = (double *)acc + h * 4;
    const double *xh = x + h * 4, *wh = wb + h * 4;
    __m256d a[4][3]; /* [row][token] */
#pragma GCC unroll 4
    for (int i = 0; i < RT; i++)
#pragma GCC unroll 3
        for (int j = 0; j < TT; j++)
            a[i][j] = _mm256_load_pd(ad + ((t + (size_t)j) * MR + r0 + (size_t)i) * 8);
    for (size_t k = 0; k < k8; k += 8) {
        __m256d xv[3];
#pragma GCC unroll 3
        for (int j = 0; j < TT; j++) {
            xv[j] = _mm256_loadu_pd(xh + (t + (size_t)j) * K + k);
            LD_IN_REGISTER(xv[j]);
        }
#pragma GCC unroll 4
        for (int i = 0; i < RT; i++) {
            __m256d wv = _mm256_load_pd(wh + (r0 + (size_t)i) * KC + k);
            LD_IN_REGISTER(wv);
#pragma GCC unroll 3
            for (int j = 0; j < TT; j++)
                a[i][j] = _mm256_fmadd_pd(wv, xv[j], a[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < RT; i++)
#pragma GCC unroll 3
        for (int j = 0; j < TT; j++)
            _mm256_store_pd(ad + ((t + (size_t)j) * MR + r0 + (size_t)i) * 8, a[i][j]);
}

/* Token groups outer (their activations stay in L1 while the MR rows pass), row quads inner. */
LD_AVX2 static void kernel_avx2(const double *wb, const double *x, size_t K, size_t kl, size_t nt,
                                v8d *acc)
{
    size_t k8 = kl & ~(size_t)7;
    for (size_t h = 0; h < 2; h++) {
        size_t t = 0;
        for (; t + 3 <= nt; t += 3)
            for (size_t r = 0; r < MR; r += 4)
                tile_avx2(wb, x, K, k8, t, r, h, 4, 3, acc);
        for (; t + 2 <= nt; t += 2)
            for (size_t r = 0; r < MR; r += 4)
                tile_avx2(wb, x, K, k8, t, r, h, 4, 2, acc);
        for (; t < nt; t++)
            for (size_t r = 0; r < MR; r += 4)
                tile_avx2(wb, x, K, k8, t, r, h, 4, 1, acc);
    }
}

/* 8 bf16 values → lanes 0–3 and 4–7 as doubles: a bf16 is the top half of an f32, so
 * interleaving zeros below it gives the f32 exactly, which widens exactly. */
LD_AVX2 static inline __attribute__((always_inline)) void bf16x8_pd2(const uint16_t *p,
                                                                     __m256d *lo, __m256d *hi)
{
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)p), z = _mm_setzero_si128();
    *lo = _mm256_cvtps_pd(_mm_castsi128_ps(_mm_unpacklo_epi16(z, h)));
    *hi = _mm256_cvtps_pd(_mm_castsi128_ps(_mm_unpackhi_epi16(z, h)));
}

/* Four rows against one token: 8 accumulators, the token's two halves, the widened weights. */
LD_AVX2 static void direct_avx2(const ld_tensor *w, size_t n0, size_t n1, const double *xd,
                                double *acc)
{
    size_t N = (size_t)w->shape[0], K = (size_t)w->shape[1], k8 = K & ~(size_t)7;
    bool bf16 = w->dtype == LD_BF16;
    const uint16_t *wh = w->data;
    const float *wf = w->data;
    size_t n = n0;
    for (; n + 4 <= n1; n += 4) {
        __m256d a[4][2];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            a[i][0] = a[i][1] = _mm256_setzero_pd();
        if (bf16) {
            const uint16_t *r0 = wh + n * K;
            for (size_t k = 0; k < k8; k += 8) {
                if ((k & 31) == 0 && n + 8 <= N)
                    LD_PREFETCH_NEXT_ROWS(r0 + k, K);
                __m256d xl = _mm256_loadu_pd(xd + k), xh = _mm256_loadu_pd(xd + k + 4);
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    __m256d wl, whi;
                    bf16x8_pd2(r0 + (size_t)i * K + k, &wl, &whi);
                    a[i][0] = _mm256_fmadd_pd(wl, xl, a[i][0]);
                    a[i][1] = _mm256_fmadd_pd(whi, xh, a[i][1]);
                }
            }
        } else {
            const float *r0 = wf + n * K;
            for (size_t k = 0; k < k8; k += 8) {
                if ((k & 15) == 0 && n + 8 <= N)
                    LD_PREFETCH_NEXT_ROWS(r0 + k, K);
                __m256d xl = _mm256_loadu_pd(xd + k), xh = _mm256_loadu_pd(xd + k + 4);
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    const float *p = r0 + (size_t)i * K + k;
                    a[i][0] = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(p)), xl, a[i][0]);
                    a[i][1] = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(p + 4)), xh, a[i][1]);
                }
            }
        }
        double *o = acc + (n - n0) * 8;
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            _mm256_storeu_pd(o + i * 8, a[i][0]);
            _mm256_storeu_pd(o + i * 8 + 4, a[i][1]);
        }
    }
    if (n < n1)
        ld_ref_direct_generic(w, n, n1, xd, acc + (n - n0) * 8);
}

LD_AVX2 static void widen_avx2(const void *src, ld_dtype dt, size_t n, double *dst)
{
    size_t k = 0;
    if (dt == LD_BF16) {
        for (; k + 8 <= n; k += 8) {
            __m256d lo, hi;
            bf16x8_pd2((const uint16_t *)src + k, &lo, &hi);
            _mm256_storeu_pd(dst + k, lo);
            _mm256_storeu_pd(dst + k + 4, hi);
        }
    } else if (dt == LD_F16) {
        for (; k + 8 <= n; k += 8) {
            __m128i h = _mm_loadu_si128((const __m128i *)(const void *)((const uint16_t *)src + k));
            __m256 f = _mm256_cvtph_ps(h);
            _mm256_storeu_pd(dst + k, _mm256_cvtps_pd(_mm256_castps256_ps128(f)));
            _mm256_storeu_pd(dst + k + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)));
        }
    } else {
        for (; k + 8 <= n; k += 8) {
            const float *s = (const float *)src + k;
            _mm256_storeu_pd(dst + k, _mm256_cvtps_pd(_mm_loadu_ps(s)));
            _mm256_storeu_pd(dst + k + 4, _mm256_cvtps_pd(_mm_loadu_ps(s + 4)));
        }
    }
    size_t esize = dt == LD_F32 ? 4 : 2;
    ld_ref_widen_generic((const char *)src + k * esize, dt, n - k, dst + k);
}

const ld_ref_kernels ld_ref_kernels_avx2 = {"avx2", avx2_usable, kernel_avx2, direct_avx2,
                                            widen_avx2};

#else
typedef int ld_ref_matmul_f64_x86_unused; /* ISO C wants a declaration in every file */
#endif

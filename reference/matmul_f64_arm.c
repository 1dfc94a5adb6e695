/* matmul_f64_arm.c — the aarch64 kernel path of the reference matmul (the table entry neon of
 * matmul_f64.c), in NEON intrinsics (Advanced SIMD is part of every aarch64 CPU). Same lanes and
 * order as the portable kernels, so the same bits (the proof, and why fused multiply-add changes
 * nothing: matmul_f64.c). A lane set of 8 doubles is four 128-bit registers (lanes 0–1, 2–3, 4–5,
 * 6–7). An empty file elsewhere. */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

#include "matmul_kernels.h"

static bool neon_usable(void) { return true; }

/* acc[(t+j)*MR + r0+i] += the lanes of wb rows r0+i · x rows t+j, for i < RT, j < TT. Thirty-two
 * registers: 2×3 tiles hold 24 accumulators, plus 3 activations and one weight per quarter. */
static inline __attribute__((always_inline)) void tile_neon(const double *wb, const double *x,
                                                            size_t K, size_t k8, size_t t,
                                                            size_t r0, int RT, int TT, v8d *acc)
{
    double *ad = (double *)acc;
    float64x2_t a[2][3][4]; /* [row][token][quarter] */
#pragma GCC unroll 2
    for (int i = 0; i < RT; i++)
#pragma GCC unroll 3
        for (int j = 0; j < TT; j++)
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++)
                a[i][j][q] = vld1q_f64(ad + ((t + (size_t)j) * MR + r0 + (size_t)i) * 8 +
                                       (size_t)q * 2);
    for (size_t k = 0; k < k8; k += 8) {
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            float64x2_t xv[3];
#pragma GCC unroll 3
            for (int j = 0; j < TT; j++)
                xv[j] = vld1q_f64(x + (t + (size_t)j) * K + k + (size_t)q * 2);
#pragma GCC unroll 2
            for (int i = 0; i < RT; i++) {
                float64x2_t wv = vld1q_f64(wb + (r0 + (size_t)i) * KC + k + (size_t)q * 2);
#pragma GCC unroll 3
                for (int j = 0; j < TT; j++)
                    a[i][j][q] = vfmaq_f64(a[i][j][q], wv, xv[j]);
            }
        }
    }
#pragma GCC unroll 2
    for (int i = 0; i < RT; i++)
#pragma GCC unroll 3
        for (int j = 0; j < TT; j++)
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++)
                vst1q_f64(ad + ((t + (size_t)j) * MR + r0 + (size_t)i) * 8 + (size_t)q * 2,
                          a[i][j][q]);
}

static void kernel_neon(const double *wb, const double *x, size_t K, size_t kl, size_t nt,
                        v8d *acc)
{
    size_t k8 = kl & ~(size_t)7;
    size_t t = 0;
    for (; t + 3 <= nt; t += 3)
        for (size_t r = 0; r < MR; r += 2)
            tile_neon(wb, x, K, k8, t, r, 2, 3, acc);
    for (; t + 2 <= nt; t += 2)
        for (size_t r = 0; r < MR; r += 2)
            tile_neon(wb, x, K, k8, t, r, 2, 2, acc);
    for (; t < nt; t++)
        for (size_t r = 0; r < MR; r += 2)
            tile_neon(wb, x, K, k8, t, r, 2, 1, acc);
}

/* 8 bf16 values → four pairs of doubles: a bf16 shifted left by 16 is its f32 exactly, and f32 →
 * f64 is exact. */
static inline __attribute__((always_inline)) void bf16x8_pd4(const uint16_t *p, float64x2_t *o)
{
    uint16x8_t h = vld1q_u16(p);
    float32x4_t lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
    float32x4_t hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
    o[0] = vcvt_f64_f32(vget_low_f32(lo));
    o[1] = vcvt_high_f64_f32(lo);
    o[2] = vcvt_f64_f32(vget_low_f32(hi));
    o[3] = vcvt_high_f64_f32(hi);
}

static inline __attribute__((always_inline)) void f32x8_pd4(const float *p, float64x2_t *o)
{
    float32x4_t lo = vld1q_f32(p), hi = vld1q_f32(p + 4);
    o[0] = vcvt_f64_f32(vget_low_f32(lo));
    o[1] = vcvt_high_f64_f32(lo);
    o[2] = vcvt_f64_f32(vget_low_f32(hi));
    o[3] = vcvt_high_f64_f32(hi);
}

/* Four rows against one token: 16 accumulators, the token's four quarters, the widened weights. */
static void direct_neon(const ld_tensor *w, size_t n0, size_t n1, const double *xd, double *acc)
{
    size_t K = (size_t)w->shape[1], k8 = K & ~(size_t)7;
    bool bf16 = w->dtype == LD_BF16;
    const uint16_t *wh = w->data;
    const float *wf = w->data;
    size_t n = n0;
    for (; n + 4 <= n1; n += 4) {
        float64x2_t a[4][4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++)
                a[i][q] = vdupq_n_f64(0.0);
        for (size_t k = 0; k < k8; k += 8) {
            float64x2_t xv[4];
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++)
                xv[q] = vld1q_f64(xd + k + (size_t)q * 2);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                float64x2_t wv[4];
                if (bf16)
                    bf16x8_pd4(wh + (n + (size_t)i) * K + k, wv);
                else
                    f32x8_pd4(wf + (n + (size_t)i) * K + k, wv);
#pragma GCC unroll 4
                for (int q = 0; q < 4; q++)
                    a[i][q] = vfmaq_f64(a[i][q], wv[q], xv[q]);
            }
        }
        double *o = acc + (n - n0) * 8;
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++)
                vst1q_f64(o + i * 8 + q * 2, a[i][q]);
    }
    if (n < n1)
        ld_ref_direct_generic(w, n, n1, xd, acc + (n - n0) * 8);
}

/* bf16 and f32 in NEON; f16 (subnormals, infinities and NaN spelled out) by the portable code. */
static void widen_neon(const void *src, ld_dtype dt, size_t n, double *dst)
{
    size_t k = 0;
    float64x2_t v[4];
    if (dt == LD_BF16) {
        for (; k + 8 <= n; k += 8) {
            bf16x8_pd4((const uint16_t *)src + k, v);
            for (int q = 0; q < 4; q++)
                vst1q_f64(dst + k + (size_t)q * 2, v[q]);
        }
    } else if (dt == LD_F32) {
        for (; k + 8 <= n; k += 8) {
            f32x8_pd4((const float *)src + k, v);
            for (int q = 0; q < 4; q++)
                vst1q_f64(dst + k + (size_t)q * 2, v[q]);
        }
    }
    size_t esize = dt == LD_F32 ? 4 : 2;
    ld_ref_widen_generic((const char *)src + k * esize, dt, n - k, dst + k);
}

const ld_ref_kernels ld_ref_kernels_neon = {"neon", neon_usable, kernel_neon, direct_neon,
                                            widen_neon};

#else
typedef int ld_ref_matmul_f64_arm_unused; /* ISO C wants a declaration in every file */
#endif

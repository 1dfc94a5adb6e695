/* ops.c — the reference ops other than the matmul (ops.h): embedding, RMSNorm, per-head RMSNorm,
 * RoPE, attention, SiLU·mul, residual add, argmax. Plain loops in a fixed order; reductions in
 * double (or fp32 for emulated low-precision kernels). Readability first: these are the ground
 * truth. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ops.h"
#include "util.h"

const ld_numerics ld_numerics_reference = {false, LD_F32, 0};

/* A 32-bit mix of (seed, value bits, index): the random draw of one stochastic rounding. */
static inline uint32_t sr_draw(uint32_t seed, uint32_t bits, size_t idx)
{
    uint64_t z = ((uint64_t)seed << 32 ^ bits) + 0x9e3779b97f4a7c15ULL * ((uint64_t)idx + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (uint32_t)(z ^ (z >> 31));
}

/* Rounds v to one of its two neighbours in dtype t, the farther one with probability equal to the
 * distance to the nearer one over the gap: unbiased in expectation. */
static float stochastic_round(float v, ld_dtype t, uint32_t draw)
{
    uint32_t u = ld_f32_bits(v);
    if ((u & 0x7f800000u) == 0x7f800000u) /* Inf and NaN stay */
        return ld_round_to(v, t);
    if (t == LD_BF16) { /* magnitude plus 16 random low bits, truncated: rounds up w.p. low/2^16 */
        uint32_t mag = (u & 0x7fffffffu) + (draw & 0xffffu);
        return ld_f32_from_bits((u & 0x80000000u) | (mag & 0xffff0000u));
    }
    float near = ld_round_to(v, t);
    if (near == v)
        return v;
    uint16_t h = ld_f32_to_f16(v);
    /* The other neighbour is one step of the f16 grid away, towards v. */
    uint16_t other = (fabsf(near) > fabsf(v)) ? (uint16_t)(h - 1) : (uint16_t)(h + 1);
    float o = ld_f16_to_f32(other);
    float lo = fabsf(near) < fabsf(o) ? near : o, hi = fabsf(near) < fabsf(o) ? o : near;
    double p = (fabs((double)v) - fabs((double)lo)) / (fabs((double)hi) - fabs((double)lo));
    return (double)draw / 4294967296.0 < p ? hi : lo;
}

float ld_nx_store(const ld_numerics *nx, float v, size_t idx)
{
    if (nx->round_to == LD_F32)
        return v;
    if (!nx->sr_seed)
        return ld_round_to(v, nx->round_to);
    return stochastic_round(v, nx->round_to, sr_draw(nx->sr_seed, ld_f32_bits(v), idx));
}

void ld_ref_round(float *x, size_t n, const ld_numerics *nx)
{
    if (nx->round_to == LD_F32)
        return;
    for (size_t i = 0; i < n; i++)
        x[i] = ld_nx_store(nx, x[i], i);
}

/* A weight element widened exactly, then rounded when emulating. */
static inline float weight_at(const ld_tensor *w, size_t i, const ld_numerics *nx)
{
    return ld_round_to(ld_load_f32(w->data, w->dtype, i), nx->round_to);
}

void ld_ref_embed(const ld_tensor *table, const int32_t *ids, size_t T, float *out,
                  const ld_numerics *nx)
{
    size_t H = (size_t)table->shape[1];
    for (size_t t = 0; t < T; t++) {
        size_t row = (size_t)ids[t] * H;
        for (size_t i = 0; i < H; i++)
            out[t * H + i] = weight_at(table, row + i, nx);
    }
}

/* Normalizes x[0..n) by the RMS of x[0..m) (m = n except for blocked q/k norm), times w[w0..). */
static void rms_scale(const float *x, size_t n, const ld_tensor *w, size_t w0, double eps,
                      bool mul_var, float *out, const ld_numerics *nx)
{
    if (nx->acc_f32) {
        float ss = 0.0f;
        for (size_t i = 0; i < n; i++)
            ss += x[i] * x[i];
        float ms = ss / (float)n;
        float scale = mul_var ? ms + (float)eps : 1.0f / sqrtf(ms + (float)eps);
        for (size_t i = 0; i < n; i++)
            out[i] = ld_nx_store(nx, x[i] * scale * weight_at(w, w0 + i, nx), w0 + i);
        return;
    }
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (double)x[i] * (double)x[i];
    double ms = ss / (double)n;
    /* The correct kernel multiplies by 1/sqrt(ms + eps); the rmsnorm_mul_var bug by ms + eps. */
    double scale = mul_var ? ms + eps : 1.0 / sqrt(ms + eps);
    for (size_t i = 0; i < n; i++)
        out[i] = (float)((double)x[i] * scale * (double)weight_at(w, w0 + i, nx));
}

/* Element-wise and per-row ops split rows or elements across threads when there are enough of
 * them; each row's sum stays on one thread, so no result depends on the thread count. */
#define LD_ROWS_PARALLEL(n) ((n) >= LD_REF_PARALLEL_MIN_WORK / 16)

void ld_ref_rmsnorm(const float *x, const ld_tensor *w, size_t rows, size_t n, double eps,
                    bool mul_var, float *out, const ld_numerics *nx)
{
#pragma omp parallel for schedule(static) if (LD_ROWS_PARALLEL(rows * n))
    for (size_t r = 0; r < rows; r++)
        rms_scale(x + r * n, n, w, 0, eps, mul_var, out + r * n, nx);
}

void ld_ref_head_rmsnorm(const float *x, const ld_tensor *w, size_t rows, size_t D, double eps,
                         int block, bool skip, float *out, const ld_numerics *nx)
{
    if (skip) { /* qk_norm_skip: the normalization stage is simply not run */
        memmove(out, x, rows * D * sizeof *out);
        return;
    }
#pragma omp parallel for schedule(static) if (LD_ROWS_PARALLEL(rows * D))
    for (size_t r = 0; r < rows; r++) {
        if (block <= 0) {
            rms_scale(x + r * D, D, w, 0, eps, false, out + r * D, nx);
            continue;
        }
        /* qk_norm_block: each block of the head is normalized by its own RMS, the way a kernel
         * that reduces only within one 16-wide tile (and never across tiles) would. */
        for (size_t b0 = 0; b0 < D; b0 += (size_t)block) {
            size_t len = LD_MIN((size_t)block, D - b0);
            rms_scale(x + r * D + b0, len, w, b0, eps, false, out + r * D + b0, nx);
        }
    }
}

ld_status ld_ref_rope(const float *x, size_t T, size_t heads, size_t D, int64_t pos0, double theta,
                      bool interleaved, float *out, const ld_numerics *nx, ld_error *err)
{
    if (D > LD_CFG_MAX_HEAD_DIM || D % 2)
        return ld_error_set(err, LD_E_INTERNAL, "rope: head_dim %zu is odd or above %d", D,
                            LD_CFG_MAX_HEAD_DIM);
    size_t half = D / 2;
    /* Rows (tokens) split across threads; each computes the cos/sin of its own position. */
#pragma omp parallel for schedule(static) if (LD_ROWS_PARALLEL(T * heads * D * 4))
    for (size_t t = 0; t < T; t++) {
        double cs[LD_CFG_MAX_HEAD_DIM]; /* cos[0..half), sin[half..D) of this position */
        double pos = (double)(pos0 + (int64_t)t);
        for (size_t i = 0; i < half; i++) {
            double angle;
            if (nx->acc_f32) { /* an fp32 kernel computes the angle in fp32, as HF does */
                float inv_freq = 1.0f / powf((float)theta, (float)(2 * i) / (float)D);
                angle = (double)((float)pos * inv_freq);
            } else {
                angle = pos * pow(theta, -2.0 * (double)i / (double)D);
            }
            cs[i] = cos(angle);
            cs[half + i] = sin(angle);
        }
        for (size_t h = 0; h < heads; h++) {
            const float *xr = x + (t * heads + h) * D;
            float *o = out + (t * heads + h) * D;
            for (size_t i = 0; i < half; i++) {
                double c = cs[i], s = cs[half + i];
                /* rotate_half pairs (i, i+D/2); the rope_interleaved bug pairs (2i, 2i+1). */
                size_t a = interleaved ? 2 * i : i;
                size_t b = interleaved ? 2 * i + 1 : i + half;
                double xa = xr[a], xb = xr[b];
                if (nx->acc_f32) {
                    float cf = (float)c, sf = (float)s;
                    o[a] = ld_nx_store(nx, xr[a] * cf - xr[b] * sf, a);
                    o[b] = ld_nx_store(nx, xr[b] * cf + xr[a] * sf, b);
                } else {
                    o[a] = (float)(xa * c - xb * s);
                    o[b] = (float)(xb * c + xa * s);
                }
            }
        }
    }
    return LD_OK;
}

/* q·k in double: four interleaved partial sums (d mod 4) joined in a fixed order, so the chain of
 * dependent adds is a quarter as long; the order depends on D alone. */
typedef double v4d __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

static inline __attribute__((always_inline)) v4d load_v4f_pd(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, v4d);
}

static inline __attribute__((always_inline)) double hsum_v4d(v4d s)
{
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* Four lanes (lane = d mod 4, the tail in lane 0), summed (0 + 1) + (2 + 3). */
static inline __attribute__((always_inline)) double dot_f64(const float *a, const float *b,
                                                            size_t n)
{
    v4d s = {0, 0, 0, 0};
    size_t d = 0;
    for (; d + 4 <= n; d += 4)
        s += load_v4f_pd(a + d) * load_v4f_pd(b + d);
    for (; d < n; d++)
        s[0] += (double)a[d] * (double)b[d];
    return hsum_v4d(s);
}

/* One query row against keys 0..limit−1 of one kv head: softmax(q·k·scale)·v into out[D].
 * work holds limit doubles (scores, then probabilities) and D doubles (the output sum).
 * On x86-64 a second copy for AVX2 (chosen by the CPU): the same operations in the same order,
 * wider registers; contraction is off in this file (ISO C), so no multiply-add is fused and both
 * copies give the same bits. */
#if defined(__x86_64__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
static void attend_one(const float *q, const float *kh, const float *vh, size_t D, size_t limit,
                       const ld_attn_params *ap, double *work, float *out, const ld_numerics *nx)
{
    double *p = work, *acc = work + limit;
    if (nx->acc_f32) {
        float m = -INFINITY;
        for (size_t s = 0; s < limit; s++) {
            float dot = 0.0f;
            for (size_t d = 0; d < D; d++)
                dot += q[d] * kh[s * D + d];
            float sc = dot * (float)ap->scale;
            p[s] = sc;
            m = sc > m ? sc : m;
        }
        float sum = 0.0f;
        for (size_t s = 0; s < limit; s++) {
            float e = expf((float)p[s] - m);
            if (ap->softmax_bf16) /* softmax_bf16: exponentials and running sum stored in bf16 */
                e = ld_round_to(e, LD_BF16);
            p[s] = e;
            sum = ap->softmax_bf16 ? ld_round_to(sum + e, LD_BF16) : sum + e;
        }
        for (size_t d = 0; d < D; d++)
            acc[d] = 0.0;
        for (size_t s = 0; s < limit; s++) {
            float w = (float)p[s] / sum;
            for (size_t d = 0; d < D; d++)
                acc[d] = (double)((float)acc[d] + w * vh[s * D + d]);
        }
        for (size_t d = 0; d < D; d++)
            out[d] = ld_nx_store(nx, (float)acc[d], d);
        return;
    }
    /* Scores four keys at a time: four independent chains, each in dot_f64's order. */
    size_t s = 0;
    for (; s + 4 <= limit; s += 4) {
        const float *k0 = kh + s * D, *k1 = k0 + D, *k2 = k1 + D, *k3 = k2 + D;
        v4d s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s3 = s0;
        size_t d = 0;
        for (; d + 4 <= D; d += 4) {
            v4d qd = load_v4f_pd(q + d);
            s0 += qd * load_v4f_pd(k0 + d);
            s1 += qd * load_v4f_pd(k1 + d);
            s2 += qd * load_v4f_pd(k2 + d);
            s3 += qd * load_v4f_pd(k3 + d);
        }
        for (; d < D; d++) {
            double qd = (double)q[d];
            s0[0] += qd * (double)k0[d];
            s1[0] += qd * (double)k1[d];
            s2[0] += qd * (double)k2[d];
            s3[0] += qd * (double)k3[d];
        }
        p[s] = hsum_v4d(s0) * ap->scale;
        p[s + 1] = hsum_v4d(s1) * ap->scale;
        p[s + 2] = hsum_v4d(s2) * ap->scale;
        p[s + 3] = hsum_v4d(s3) * ap->scale;
    }
    for (; s < limit; s++)
        p[s] = dot_f64(q, kh + s * D, D) * ap->scale;
    double m = -INFINITY;
    for (s = 0; s < limit; s++) /* in key order: the max of +0 and −0 depends on it */
        m = p[s] > m ? p[s] : m;
    double sum = 0.0;
    for (s = 0; s < limit; s++) {
        double e = exp(p[s] - m);
        if (ap->softmax_bf16)
            e = (double)ld_round_to((float)e, LD_BF16);
        p[s] = e;
        sum = ap->softmax_bf16 ? (double)ld_round_to((float)(sum + e), LD_BF16) : sum + e;
    }
    for (s = 0; s < limit; s++)
        p[s] /= sum;
    /* acc[d] = Σ_s p[s]·v[s][d] in key order, per element; sixteen elements stay in registers
     * while the keys pass. */
    size_t d = 0;
    for (; d + 16 <= D; d += 16) {
        v4d a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;
        for (s = 0; s < limit; s++) {
            v4d w4 = {p[s], p[s], p[s], p[s]};
            const float *v = vh + s * D + d;
            a0 += w4 * load_v4f_pd(v);
            a1 += w4 * load_v4f_pd(v + 4);
            a2 += w4 * load_v4f_pd(v + 8);
            a3 += w4 * load_v4f_pd(v + 12);
        }
        memcpy(acc + d, &a0, sizeof a0);
        memcpy(acc + d + 4, &a1, sizeof a1);
        memcpy(acc + d + 8, &a2, sizeof a2);
        memcpy(acc + d + 12, &a3, sizeof a3);
    }
    for (; d < D; d++) {
        acc[d] = 0.0;
        for (s = 0; s < limit; s++)
            acc[d] += p[s] * (double)vh[s * D + d];
    }
    for (d = 0; d < D; d++)
        out[d] = (float)acc[d];
}

ld_status ld_ref_attention(const float *q, const float *k_cache, const float *v_cache, size_t cap,
                           size_t T, size_t Hq, size_t Hkv, size_t D, int64_t pos0, size_t n_kv,
                           const ld_attn_params *ap, float *out, const ld_numerics *nx,
                           ld_error *err)
{
    if (Hkv == 0 || Hq % Hkv != 0 || n_kv > cap)
        return ld_error_set(err, LD_E_INTERNAL, "attention: bad shape (Hq %zu, Hkv %zu, %zu of %zu slots)",
                            Hq, Hkv, n_kv, cap);
    size_t group = Hq / Hkv;
    int nthreads = omp_get_max_threads();
    size_t per = n_kv + D;
    double *work = malloc((size_t)nthreads * per * sizeof *work);
    if (!work)
        return ld_error_set(err, LD_E_NOMEM, "attention: cannot allocate scratch for %zu keys", n_kv);
    /* Round robin (chunks of one): under the causal mask a query's cost grows with its position,
     * so contiguous halves would give the last thread three quarters of a prefill's work. */
#pragma omp parallel for schedule(static, 1) num_threads(nthreads) \
    if (T * Hq * n_kv * D >= LD_REF_PARALLEL_MIN_WORK)
    for (size_t idx = 0; idx < T * Hq; idx++) {
        size_t t = idx / Hq, j = idx % Hq;
        int64_t pos = pos0 + (int64_t)t;
        /* Causal: a query at position pos reads slots 0..pos. The no_causal_mask bug reads them all. */
        size_t limit = ap->causal ? LD_MIN(n_kv, (size_t)pos + 1) : n_kv;
        size_t kvh = ap->gqa == LD_GQA_MOD ? j % Hkv : j / group;
        attend_one(q + (t * Hq + j) * D, k_cache + kvh * cap * D, v_cache + kvh * cap * D, D, limit,
                   ap, work + (size_t)omp_get_thread_num() * per, out + (t * Hq + j) * D, nx);
    }
    free(work);
    return LD_OK;
}

void ld_ref_silu_mul(const float *g, const float *u, size_t n, bool gelu, float *out,
                     const ld_numerics *nx)
{
#pragma omp parallel for schedule(static) if (LD_ROWS_PARALLEL(n))
    for (size_t i = 0; i < n; i++) {
        if (nx->acc_f32) {
            float x = g[i];
            float a = gelu ? 0.5f * x * (1.0f + erff(x * 0.70710678118654752f))
                           : x / (1.0f + expf(-x));
            out[i] = ld_nx_store(nx, a * u[i], i);
        } else {
            double x = g[i];
            /* silu(x) = x·sigmoid(x); the silu_as_gelu bug computes gelu(x) = x·Φ(x). */
            double a = gelu ? 0.5 * x * (1.0 + erf(x * 0.70710678118654752440)) : x / (1.0 + exp(-x));
            out[i] = (float)(a * (double)u[i]);
        }
    }
}

void ld_ref_add(const float *a, const float *b, size_t n, bool skip_a, float *out,
                const ld_numerics *nx)
{
    for (size_t i = 0; i < n; i++)
        out[i] = ld_nx_store(nx, skip_a ? b[i] : a[i] + b[i], i);
}

int32_t ld_ref_argmax(const float *x, size_t n)
{
    int32_t best = -1;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]) && (best < 0 || x[i] > x[best]))
            best = (int32_t)i;
    return best;
}

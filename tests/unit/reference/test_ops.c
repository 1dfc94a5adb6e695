/* test_ops.c — the reference ops against values computed by hand (and, for the matmul, against a
 * plain double loop written independently here). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ops.h"

static ld_tensor f32_tensor(const float *data, int64_t rows, int64_t cols)
{
    ld_tensor t = {.name = "w", .dtype = LD_F32, .ndim = cols ? 2 : 1, .data = data};
    t.shape[0] = rows;
    t.shape[1] = cols;
    t.numel = (size_t)(rows * (cols ? cols : 1));
    t.nbytes = t.numel * 4;
    return t;
}

static ld_tensor vec_tensor(const float *data, int64_t n)
{
    ld_tensor t = f32_tensor(data, n, 0);
    t.ndim = 1;
    return t;
}

#define ASSERT_NEAR(a, b, tol)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            fail_msg("%s = %.9g, expected %.9g (tol %g)", #a, a_, b_, (double)(tol));             \
    } while (0)

static const ld_numerics *REF = &ld_numerics_reference;

static void test_rmsnorm_known(void **state)
{
    (void)state;
    float x[4] = {1, 2, 3, 4}, ones[4] = {1, 1, 1, 1}, w[4] = {0.5f, 1, 2, 1}, out[4];
    ld_tensor wt = vec_tensor(ones, 4);
    /* mean(x^2) = 30/4 = 7.5, 1/sqrt(7.5) = 0.36514837167 */
    ld_ref_rmsnorm(x, &wt, 1, 4, 0.0, false, out, REF);
    ASSERT_NEAR(out[0], 0.36514837167, 1e-7);
    ASSERT_NEAR(out[1], 0.73029674334, 1e-7);
    ASSERT_NEAR(out[2], 1.09544511501, 1e-7);
    ASSERT_NEAR(out[3], 1.46059348668, 1e-7);
    ld_tensor ww = vec_tensor(w, 4);
    ld_ref_rmsnorm(x, &ww, 1, 4, 0.0, false, out, REF);
    ASSERT_NEAR(out[0], 0.5 * 0.36514837167, 1e-7);
    ASSERT_NEAR(out[2], 2 * 1.09544511501, 1e-7);
    /* eps = 0.5: 1/sqrt(8) = 0.35355339059 */
    ld_ref_rmsnorm(x, &wt, 1, 4, 0.5, false, out, REF);
    ASSERT_NEAR(out[3], 4 * 0.35355339059, 1e-7);
    /* two rows are independent */
    float x2[8] = {1, 2, 3, 4, 2, 2, 2, 2}, out2[8];
    ld_ref_rmsnorm(x2, &wt, 2, 4, 0.0, false, out2, REF);
    ASSERT_NEAR(out2[4], 1.0, 1e-7);
    ASSERT_NEAR(out2[1], 0.73029674334, 1e-7);
    /* zeros stay zeros with eps > 0 */
    float z[4] = {0}, oz[4];
    ld_ref_rmsnorm(z, &wt, 1, 4, 1e-6, false, oz, REF);
    for (int i = 0; i < 4; i++)
        ASSERT_NEAR(oz[i], 0.0, 0.0);
    /* the rmsnorm_mul_var bug multiplies by mean(x^2)+eps = 7.5 */
    ld_ref_rmsnorm(x, &wt, 1, 4, 0.0, true, out, REF);
    ASSERT_NEAR(out[0], 7.5, 1e-6);
    ASSERT_NEAR(out[3], 30.0, 1e-5);
}

static void test_head_rmsnorm_blocks(void **state)
{
    (void)state;
    float x[4] = {1, 1, 3, 3}, ones[4] = {1, 1, 1, 1}, out[4];
    ld_tensor wt = vec_tensor(ones, 4);
    /* whole head: mean = (1+1+9+9)/4 = 5 */
    ld_ref_head_rmsnorm(x, &wt, 1, 4, 0.0, 0, false, out, REF);
    ASSERT_NEAR(out[0], 1 / sqrt(5.0), 1e-7);
    ASSERT_NEAR(out[3], 3 / sqrt(5.0), 1e-7);
    /* 2-element blocks: each block has RMS equal to its values */
    ld_ref_head_rmsnorm(x, &wt, 1, 4, 0.0, 2, false, out, REF);
    for (int i = 0; i < 4; i++)
        ASSERT_NEAR(out[i], 1.0, 1e-7);
    /* skip copies */
    ld_ref_head_rmsnorm(x, &wt, 1, 4, 0.0, 0, true, out, REF);
    ASSERT_NEAR(out[2], 3.0, 0.0);
    /* per-head weights index the head dimension: rows share w */
    float w[4] = {1, 2, 3, 4}, x2[8] = {2, 2, 2, 2, 1, 1, 1, 1}, o2[8];
    ld_tensor ww = vec_tensor(w, 4);
    ld_ref_head_rmsnorm(x2, &ww, 2, 4, 0.0, 0, false, o2, REF);
    ASSERT_NEAR(o2[3], 4.0, 1e-7);
    ASSERT_NEAR(o2[5], 2.0, 1e-7);
}

static void test_rope(void **state)
{
    (void)state;
    float x[8] = {0.3f, -1.2f, 2.5f, 0.7f, 1, 2, 3, 4}, out[8];
    /* position 0 is the identity */
    assert_int_equal(ld_ref_rope(x, 1, 2, 4, 0, 10000.0, false, out, REF, NULL), LD_OK);
    for (int i = 0; i < 8; i++)
        ASSERT_NEAR(out[i], x[i], 0.0);
    /* D = 4, theta = 10000, pos 1: inv_freq = [1, 0.01], pairs (0,2) and (1,3) */
    float e[4] = {1, 0, 0, 0}, o[4];
    assert_int_equal(ld_ref_rope(e, 1, 1, 4, 1, 10000.0, false, o, REF, NULL), LD_OK);
    ASSERT_NEAR(o[0], 0.54030230587, 1e-7);
    ASSERT_NEAR(o[1], 0.0, 0.0);
    ASSERT_NEAR(o[2], 0.84147098481, 1e-7);
    ASSERT_NEAR(o[3], 0.0, 0.0);
    float e2[4] = {0, 1, 0, 0};
    assert_int_equal(ld_ref_rope(e2, 1, 1, 4, 1, 10000.0, false, o, REF, NULL), LD_OK);
    ASSERT_NEAR(o[1], cos(0.01), 1e-7);
    ASSERT_NEAR(o[3], sin(0.01), 1e-7);
    /* pos0 shifts rows: row t is at position pos0 + t = 3 + 1 = 4: angle 4 on pair (0,2) */
    float two[8] = {0, 0, 0, 0, 1, 0, 0, 0};
    float o8[8];
    assert_int_equal(ld_ref_rope(two, 2, 1, 4, 3, 10000.0, false, o8, REF, NULL), LD_OK);
    ASSERT_NEAR(o8[4], cos(4.0), 1e-7);
    ASSERT_NEAR(o8[6], sin(4.0), 1e-7);
    /* the interleaved bug pairs (0,1): x = e0 at pos 1 lands on [cos 1, sin 1, 0, 0] */
    assert_int_equal(ld_ref_rope(e, 1, 1, 4, 1, 10000.0, true, o, REF, NULL), LD_OK);
    ASSERT_NEAR(o[0], 0.54030230587, 1e-7);
    ASSERT_NEAR(o[1], 0.84147098481, 1e-7);
    ASSERT_NEAR(o[2], 0.0, 0.0);
}

/* Fills a [Hkv, cap, D] cache so that kv head h, slot s holds the constant 10*h + s + 1. */
static void fill_cache(float *c, size_t Hkv, size_t cap, size_t D)
{
    for (size_t h = 0; h < Hkv; h++)
        for (size_t s = 0; s < cap; s++)
            for (size_t d = 0; d < D; d++)
                c[(h * cap + s) * D + d] = (float)(10 * h + s + 1);
}

static void test_attention_one_key(void **state)
{
    (void)state;
    enum { D = 4 };
    float q[D] = {0.5f, -1, 2, 0.25f}, k[D] = {1, 2, 3, 4}, v[D] = {7, -3, 0.5f, 11}, out[D];
    ld_attn_params ap = {.scale = 0.5, .causal = true, .gqa = LD_GQA_DIV};
    assert_int_equal(ld_ref_attention(q, k, v, 1, 1, 1, 1, D, 0, 1, &ap, out, REF, NULL), LD_OK);
    for (int d = 0; d < D; d++)
        ASSERT_NEAR(out[d], v[d], 0.0); /* softmax of one score is exactly 1 */
}

static void test_attention_two_keys_weights(void **state)
{
    (void)state;
    /* q·k0 = 0, q·k1 = 2, scale 0.5: p = softmax(0, 1) = [1/(1+e), e/(1+e)] */
    float q[2] = {1, 1}, k[4] = {0, 0, 1, 1}, v[4] = {1, 0, 0, 1}, out[2];
    ld_attn_params ap = {.scale = 0.5, .causal = true, .gqa = LD_GQA_DIV};
    assert_int_equal(ld_ref_attention(q, k, v, 2, 1, 1, 1, 2, 1, 2, &ap, out, REF, NULL), LD_OK);
    ASSERT_NEAR(out[0], 1.0 / (1.0 + M_E), 1e-7);
    ASSERT_NEAR(out[1], M_E / (1.0 + M_E), 1e-7);
}

static void check_gqa(size_t Hq, size_t Hkv, ld_gqa_map map)
{
    enum { D = 2, CAP = 1 };
    float q[16 * D] = {0}, kc[8 * CAP * D], vc[8 * CAP * D], out[16 * D];
    fill_cache(kc, Hkv, CAP, D);
    fill_cache(vc, Hkv, CAP, D);
    ld_attn_params ap = {.scale = 1.0, .causal = true, .gqa = map};
    assert_int_equal(ld_ref_attention(q, kc, vc, CAP, 1, Hq, Hkv, D, 0, 1, &ap, out, REF, NULL), LD_OK);
    for (size_t j = 0; j < Hq; j++) {
        size_t kv = map == LD_GQA_DIV ? j / (Hq / Hkv) : j % Hkv;
        ASSERT_NEAR(out[j * D], 10.0 * (double)kv + 1, 0.0);
    }
}

static void test_attention_gqa_mapping(void **state)
{
    (void)state;
    check_gqa(4, 2, LD_GQA_DIV); /* heads 0,1 -> kv 0; 2,3 -> kv 1 */
    check_gqa(8, 2, LD_GQA_DIV); /* group of 4 */
    check_gqa(4, 4, LD_GQA_DIV);
    check_gqa(8, 2, LD_GQA_MOD); /* the gqa_modulo bug: 0,2,4,6 -> kv 0 */
    /* explicit: with Hq/Hkv = 4 query head 5 reads kv head 1, under the bug kv head 1 too, head 2
     * reads kv 0 (bug: kv 0) and head 3 reads kv 0 (bug: kv 1) */
    enum { D = 2 };
    float q[8 * D] = {0}, kc[2 * D], vc[2 * D], out[8 * D];
    fill_cache(kc, 2, 1, D);
    fill_cache(vc, 2, 1, D);
    ld_attn_params ap = {.scale = 1.0, .causal = true, .gqa = LD_GQA_DIV};
    assert_int_equal(ld_ref_attention(q, kc, vc, 1, 1, 8, 2, D, 0, 1, &ap, out, REF, NULL), LD_OK);
    ASSERT_NEAR(out[3 * D], 1.0, 0.0);
    ASSERT_NEAR(out[5 * D], 11.0, 0.0);
    ap.gqa = LD_GQA_MOD;
    assert_int_equal(ld_ref_attention(q, kc, vc, 1, 1, 8, 2, D, 0, 1, &ap, out, REF, NULL), LD_OK);
    ASSERT_NEAR(out[3 * D], 11.0, 0.0);
}

static void test_attention_causal(void **state)
{
    (void)state;
    /* Three tokens, q = 0 so every visible key weighs the same. v slot s = s + 1. */
    enum { D = 2, CAP = 3 };
    float q[3 * D] = {0}, kc[CAP * D], vc[CAP * D], out[3 * D];
    fill_cache(kc, 1, CAP, D);
    fill_cache(vc, 1, CAP, D);
    ld_attn_params ap = {.scale = 1.0, .causal = true, .gqa = LD_GQA_DIV};
    assert_int_equal(ld_ref_attention(q, kc, vc, CAP, 3, 1, 1, D, 0, 3, &ap, out, REF, NULL), LD_OK);
    ASSERT_NEAR(out[0], 1.0, 0.0);       /* token 0 sees slot 0 only */
    ASSERT_NEAR(out[2], 1.5, 1e-7);      /* token 1: mean of 1, 2 */
    ASSERT_NEAR(out[4], 2.0, 1e-7);      /* token 2: mean of 1, 2, 3 */
    ap.causal = false;                    /* the no_causal_mask bug: everyone sees all three */
    assert_int_equal(ld_ref_attention(q, kc, vc, CAP, 3, 1, 1, D, 0, 3, &ap, out, REF, NULL), LD_OK);
    ASSERT_NEAR(out[0], 2.0, 1e-7);
    /* a decode query at position 2 over 3 filled slots sees all three */
    ap.causal = true;
    assert_int_equal(ld_ref_attention(q, kc, vc, CAP, 1, 1, 1, D, 2, 3, &ap, out, REF, NULL), LD_OK);
    ASSERT_NEAR(out[0], 2.0, 1e-7);
}

/* Scores in the documented lane order (lane = d mod 4, the tail in lane 0, (0 + 1) + (2 + 3)):
 * key s has q·k = 1e16 − 1e16 + s by lanes, where a running sum in d order loses the s (the ulp
 * of 1e16 is 2) and every score would be 0. Five keys: four scored together and one alone. D = 21
 * also puts d = 20 in the tail and splits the weighted sum into 16 + 5 elements. */
static void test_attention_lane_order(void **state)
{
    (void)state;
    enum { D = 21, KEYS = 5 };
    float q[D] = {0}, kc[KEYS * D] = {0}, vc[KEYS * D] = {0}, out[D];
    q[0] = q[4] = q[1] = q[20] = 1;
    for (int s = 0; s < KEYS; s++) {
        kc[s * D + 0] = 1e16f;
        kc[s * D + 4] = -1e16f;
        kc[s * D + 1] = (float)s;
        kc[s * D + 20] = 0.5f; /* lane 0, after the 1e16 pair cancelled */
        for (int d = 0; d < D; d++)
            vc[s * D + d] = d % KEYS == s ? 1.0f : 0.0f;
    }
    ld_attn_params ap = {.scale = 1.0, .causal = true, .gqa = LD_GQA_DIV};
    assert_int_equal(ld_ref_attention(q, kc, vc, KEYS, 1, 1, 1, D, KEYS - 1, KEYS, &ap, out, REF,
                                      NULL), LD_OK);
    double z = 0; /* softmax of s + 0.5 over s = 0..4 */
    for (int s = 0; s < KEYS; s++)
        z += exp((double)s - 4.0);
    for (int d = 0; d < D; d++)
        ASSERT_NEAR(out[d], exp((double)(d % KEYS) - 4.0) / z, 1e-7);
}

static void test_silu_mul(void **state)
{
    (void)state;
    float g[4] = {0, 1, -1, 2}, u[4] = {5, 1, 2, -1}, out[4];
    ld_ref_silu_mul(g, u, 4, false, out, REF);
    ASSERT_NEAR(out[0], 0.0, 0.0);
    ASSERT_NEAR(out[1], 0.73105857863, 1e-7);          /* 1/(1+e^-1) */
    ASSERT_NEAR(out[2], 2 * -0.26894142137, 1e-7);     /* -1/(1+e) times 2 */
    ASSERT_NEAR(out[3], -1.76159415596, 1e-7);         /* 2/(1+e^-2) times -1 */
    ld_ref_silu_mul(g, u, 4, true, out, REF);          /* gelu: x·Φ(x) */
    ASSERT_NEAR(out[1], 0.84134474607, 1e-7);
    ASSERT_NEAR(out[3], -1.95449973610, 1e-7);
}

static void test_add_and_argmax(void **state)
{
    (void)state;
    float a[3] = {1, 2, 3}, b[3] = {0.5f, -2, 4}, o[3];
    ld_ref_add(a, b, 3, false, o, REF);
    ASSERT_NEAR(o[0], 1.5, 0.0);
    ASSERT_NEAR(o[2], 7.0, 0.0);
    ld_ref_add(a, b, 3, true, o, REF);
    ASSERT_NEAR(o[1], -2.0, 0.0);
    float x[5] = {1, NAN, 3, 3, -INFINITY};
    assert_int_equal(ld_ref_argmax(x, 5), 2); /* NaN skipped, first of the tie */
    float y[2] = {NAN, NAN};
    assert_int_equal(ld_ref_argmax(y, 2), -1);
}

static void test_embed(void **state)
{
    (void)state;
    uint16_t table[6] = {0x3f80, 0x4000, 0xbf00, 0x3e20, 0x0000, 0x8000}; /* bf16: 1 2 -0.5 0.15625 0 -0 */
    ld_tensor t = {.name = "emb", .dtype = LD_BF16, .ndim = 2, .shape = {3, 2}, .numel = 6,
                   .data = table, .nbytes = 12};
    int32_t ids[3] = {1, 0, 1};
    float out[6];
    ld_ref_embed(&t, ids, 3, out, REF);
    ASSERT_NEAR(out[0], -0.5, 0.0);
    ASSERT_NEAR(out[1], 0.15625, 0.0);
    ASSERT_NEAR(out[2], 1.0, 0.0);
    ASSERT_NEAR(out[3], 2.0, 0.0);
}

static void test_matmul_bf16_by_hand(void **state)
{
    (void)state;
    /* W (bf16) = [[1, 2, -0.5], [0.15625, 0, -2]], x = [[1, 2, 3], [-1, 0.5, 4]] */
    uint16_t w[6] = {0x3f80, 0x4000, 0xbf00, 0x3e20, 0x0000, 0xc000};
    ld_tensor t = {.name = "w", .dtype = LD_BF16, .ndim = 2, .shape = {2, 3}, .numel = 6,
                   .data = w, .nbytes = 12};
    float x[6] = {1, 2, 3, -1, 0.5f, 4}, y[4];
    assert_int_equal(ld_ref_matmul(x, &t, 2, y, REF, NULL), LD_OK);
    ASSERT_NEAR(y[0], 1 + 4 - 1.5, 0.0);      /* 3.5 */
    ASSERT_NEAR(y[1], 0.15625 - 6, 0.0);      /* -5.84375 */
    ASSERT_NEAR(y[2], -1 + 1 - 2, 0.0);       /* -2 */
    ASSERT_NEAR(y[3], -0.15625 - 8, 0.0);     /* -8.15625 */
}

/* A plain, independent double loop to hold the blocked kernel against, on awkward sizes. */
static void naive_matmul(const float *x, const float *w, size_t T, size_t N, size_t K, double *y)
{
    for (size_t t = 0; t < T; t++)
        for (size_t n = 0; n < N; n++) {
            double s = 0;
            for (size_t k = 0; k < K; k++)
                s += (double)x[t * K + k] * (double)w[n * K + k];
            y[t * N + n] = s;
        }
}

static float rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void test_matmul_awkward_shapes(void **state)
{
    (void)state;
    const size_t shapes[][3] = {{1, 1, 1},    {3, 9, 7},   {70, 13, 1030},
                                {2, 17, 513}, {65, 8, 16}, {131, 6, 24}}; /* 131 > TC */
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        size_t T = shapes[c][0], N = shapes[c][1], K = shapes[c][2];
        float *x = malloc(T * K * 4), *w = malloc(N * K * 4), *y = malloc(T * N * 4),
              *y1 = malloc(N * 4);
        double *yr = malloc(T * N * 8);
        uint64_t s = 42 + c;
        for (size_t i = 0; i < T * K; i++)
            x[i] = rnd(&s);
        for (size_t i = 0; i < N * K; i++)
            w[i] = rnd(&s);
        ld_tensor t = f32_tensor(w, (int64_t)N, (int64_t)K);
        assert_int_equal(ld_ref_matmul(x, &t, T, y, REF, NULL), LD_OK);
        naive_matmul(x, w, T, N, K, yr);
        for (size_t i = 0; i < T * N; i++)
            ASSERT_NEAR(y[i], yr[i], 1e-6 * (1 + fabs(yr[i])));
        /* every row equals the same row computed alone (T = 1), bit for bit */
        for (size_t r = 0; r < T; r++) {
            assert_int_equal(ld_ref_matmul(x + r * K, &t, 1, y1, REF, NULL), LD_OK);
            assert_memory_equal(y1, y + r * N, N * 4);
        }
        free(x), free(w), free(y), free(y1), free(yr);
    }
}

static void test_emulated_rounding(void **state)
{
    (void)state;
    /* An emulated bf16 kernel rounds f32 weights and its outputs to bf16. */
    float w[2] = {1.00390625f, 1.0f}; /* 1 + 2^-8 rounds to 1 in bf16 (tie to even) */
    ld_tensor t = f32_tensor(w, 1, 2);
    float x[2] = {1, 1}, y;
    ld_numerics bf = {.acc_f32 = true, .round_to = LD_BF16};
    assert_int_equal(ld_ref_matmul(x, &t, 1, &y, &bf, NULL), LD_OK);
    ASSERT_NEAR(y, 2.0, 0.0);
    assert_int_equal(ld_ref_matmul(x, &t, 1, &y, REF, NULL), LD_OK);
    ASSERT_NEAR(y, 2.00390625, 0.0);
    float v[3] = {1.00390625f, 3.14159265f, -1e-3f};
    ld_ref_round(v, 3, &bf);
    ASSERT_NEAR(v[0], 1.0, 0.0);
    ASSERT_NEAR(v[1], 3.140625, 0.0);
}

static void test_stochastic_rounding(void **state)
{
    (void)state;
    /* Unbiased and always one of the two neighbours, for bf16 and f16. */
    const ld_dtype types[2] = {LD_BF16, LD_F16};
    const float values[4] = {1.001f, -3.14159f, 0.3333333f, 1e-6f};
    for (int t = 0; t < 2; t++) {
        for (int v = 0; v < 4; v++) {
            ld_numerics nx = {.acc_f32 = true, .round_to = types[t], .sr_seed = 7};
            float x = values[v];
            float near = ld_round_to(x, types[t]);
            double sum = 0;
            int n = 20000, ups = 0;
            float a = near, b = near;
            for (int i = 0; i < n; i++) {
                float r = ld_nx_store(&nx, x, (size_t)i);
                if (r != a && r != b) {
                    if (a == b)
                        b = r;
                    else
                        fail_msg("value %g rounded to a third value %g", (double)x, (double)r);
                }
                ups += r != near;
                sum += r;
            }
            assert_true(a != b);              /* both neighbours occur */
            assert_true(ld_round_to(b, types[t]) == b);
            ASSERT_NEAR(sum / n, x, 0.02 * fabs((double)b - (double)a) + 1e-12);
            (void)ups;
        }
    }
    /* seed 0 is round to nearest even; exact values stay exact */
    ld_numerics rne = {.acc_f32 = true, .round_to = LD_BF16, .sr_seed = 0};
    ASSERT_NEAR(ld_nx_store(&rne, 1.00390625f, 3), 1.0, 0.0);
    ld_numerics sr = {.acc_f32 = true, .round_to = LD_BF16, .sr_seed = 9};
    ASSERT_NEAR(ld_nx_store(&sr, 1.5f, 3), 1.5, 0.0);
    assert_true(isnan(ld_nx_store(&sr, NAN, 1)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm_known),
        cmocka_unit_test(test_head_rmsnorm_blocks),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention_one_key),
        cmocka_unit_test(test_attention_two_keys_weights),
        cmocka_unit_test(test_attention_gqa_mapping),
        cmocka_unit_test(test_attention_causal),
        cmocka_unit_test(test_attention_lane_order),
        cmocka_unit_test(test_silu_mul),
        cmocka_unit_test(test_add_and_argmax),
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_matmul_bf16_by_hand),
        cmocka_unit_test(test_matmul_awkward_shapes),
        cmocka_unit_test(test_emulated_rounding),
        cmocka_unit_test(test_stochastic_rounding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

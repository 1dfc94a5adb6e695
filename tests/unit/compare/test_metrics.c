/* test_metrics.c — every per-probe metric on small vectors whose answers were worked out by hand
 * (values in the comments): identical, one element off, zeros, tiny values against the floor,
 * NaN/Inf on either side, ULP distances in f32/bf16/f16, the worst element's multi-index, the
 * error grid, and the stats-only fallback. The piecewise form (begin/feed/end) is held bit for bit
 * to the whole-tensor one on random and awkward shapes and dtypes, NaN/Inf included. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compare.h"

#define ASSERT_NEAR(a, b, tol)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            fail_msg("%s = %.17g, expected %.17g (tol %g)", #a, a_, b_, (double)(tol));           \
    } while (0)

static ld_cmp_tensor vec(const void *data, ld_dtype t, int64_t n)
{
    ld_cmp_tensor v = {data, t, 1, {n}, (uint64_t)n};
    return v;
}

static ld_tolerance tol_of(double atol, double rtol)
{
    ld_tolerance t = {1, -1, atol, rtol, 1, INFINITY, INFINITY};
    return t;
}

static void measure(const ld_cmp_tensor *r, const ld_cmp_tensor *c, ld_dtype prec, double atol,
                    double rtol, ld_metrics *m)
{
    ld_tolerance t = tol_of(atol, rtol);
    ld_error err;
    assert_int_equal(ld_metrics_compute(r, c, prec, &t, m, NULL, &err), LD_OK);
}

static void test_identical(void **state)
{
    (void)state;
    float x[4] = {1, -2, 3, 0.5f};
    ld_cmp_tensor r = vec(x, LD_F32, 4), c = vec(x, LD_F32, 4);
    ld_metrics m;
    measure(&r, &c, LD_F32, 0, 0, &m);
    assert_int_equal(m.source, LD_SRC_FULL);
    assert_int_equal(m.n, 4);
    assert_true(m.max_abs == 0 && m.mean_abs == 0 && m.rmse == 0 && m.rel_l2 == 0);
    assert_true(m.max_rel == 0);
    assert_true(m.cosine == 1.0); /* exactly, not 1 - 1 ulp */
    assert_true(isinf(m.snr_db) && m.snr_db > 0);
    assert_int_equal(m.ulp_max, 0);
    assert_true(m.ulp_mean == 0);
    assert_int_equal(m.n_outside, 0);
    assert_int_equal(m.nonfinite_new + m.nonfinite_lost, 0);
    /* ||r|| = sqrt(1 + 4 + 9 + 0.25) = sqrt(14.25) */
    ASSERT_NEAR(m.ref_l2, 3.774917217635375, 1e-15);
    ld_tolerance strict = {0, 1, 0, 0, 0, 0, 0};
    assert_int_equal(ld_judge(&m, &strict), 0); /* identical passes even a zero tolerance */
}

static void test_one_element_off(void **state)
{
    (void)state;
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 5};
    ld_cmp_tensor r = vec(a, LD_F32, 4), c = vec(b, LD_F32, 4);
    ld_metrics m;
    measure(&r, &c, LD_F32, 0.1, 0.1, &m);
    assert_true(m.max_abs == 1);
    assert_true(m.mean_abs == 0.25);
    assert_true(m.rmse == 0.5);                          /* sqrt(1/4) */
    ASSERT_NEAR(m.rel_l2, 0.18257418583505536, 1e-15);   /* 1/sqrt(30) */
    ASSERT_NEAR(m.cosine, 0.9939990885479664, 1e-15);    /* 34/sqrt(30*39) */
    ASSERT_NEAR(m.snr_db, 14.771212547196624, 1e-12);    /* 10 log10(30/1) */
    ASSERT_NEAR(m.max_rel, 0.25, 1e-15);                 /* 1/4 (floor 1e-3*sqrt(7.5) smaller) */
    /* |d| = 1 > 0.1 + 0.1*4: one element outside */
    assert_int_equal(m.n_outside, 1);
    assert_true(m.frac_outside == 0.25);
    /* 4.0f = 0x40800000, 5.0f = 0x40a00000: 0x200000 ULPs apart */
    assert_int_equal(m.ulp_max, 2097152);
    assert_true(m.ulp_mean == 524288.0);
    /* p99 of {0,0,0,2^21}: the largest value (its power-of-two bucket, capped at the max) */
    assert_int_equal(m.ulp_p99, 2097152);
    assert_true(m.has_worst);
    assert_int_equal(m.worst_index, 3);
    assert_true(m.worst_ref == 4 && m.worst_cand == 5);
}

static void test_zeros(void **state)
{
    (void)state;
    float z[3] = {0, 0, 0}, one[3] = {1, 0, 0};
    ld_metrics m;
    ld_cmp_tensor r = vec(z, LD_F32, 3), c = vec(z, LD_F32, 3);
    measure(&r, &c, LD_F32, 0, 0, &m);
    assert_true(m.rel_l2 == 0 && m.cosine == 1 && m.max_rel == 0 && m.max_abs == 0);
    assert_true(isinf(m.snr_db) && m.snr_db > 0);
    /* ||r|| = 0 but c != r: infinite relative error, cosine 0, SNR -inf */
    c = vec(one, LD_F32, 3);
    measure(&r, &c, LD_F32, 0, 0, &m);
    assert_true(isinf(m.rel_l2) && m.rel_l2 > 0);
    assert_true(m.cosine == 0);
    assert_true(isinf(m.snr_db) && m.snr_db < 0);
    assert_true(isinf(m.max_rel));
    assert_true(m.max_abs == 1);
    ld_tolerance t = {1e30, -1, 0, 0, 1, INFINITY, INFINITY};
    assert_true(ld_judge(&m, &t) & LD_FAIL_REL_L2); /* inf > any finite threshold */
    /* candidate zero, reference not: cosine 0, rel_l2 exactly 1 */
    r = vec(one, LD_F32, 3);
    c = vec(z, LD_F32, 3);
    measure(&r, &c, LD_F32, 0, 0, &m);
    assert_true(m.rel_l2 == 1 && m.cosine == 0);
}

static void test_tiny_values_floor(void **state)
{
    (void)state;
    /* r = {1024, 2^-20}, c = {1024, 2^-19}: the small element is off by 100 %, but it sits far
     * below the row's RMS (sqrt((1024^2 + 2^-40)/2) = 724.077...), so its error is measured
     * against the floor 1e-3 * 724.077 instead: 2^-20 / 0.724077 = 1.31709e-6. */
    float a[2] = {1024.0f, 0x1p-20f}, b[2] = {1024.0f, 0x1p-19f};
    ld_cmp_tensor r = vec(a, LD_F32, 2), c = vec(b, LD_F32, 2);
    ld_metrics m;
    measure(&r, &c, LD_F32, 0, 0, &m);
    ASSERT_NEAR(m.max_rel, 1.3170890159654383e-06, 1e-18);
    /* Per row: in a [2,2] tensor the second row is small everywhere, so its own RMS sets its
     * floor and a 100 % error there is reported as 1 (a tensor-wide floor would say 0.345). */
    float c2[4] = {4, 4, 0x1p-10f, 0x1p-9f}, r2[4] = {4, 4, 0x1p-10f, 0x1p-10f};
    ld_cmp_tensor rt = {r2, LD_F32, 2, {2, 2}, 4}, ct = {c2, LD_F32, 2, {2, 2}, 4};
    measure(&rt, &ct, LD_F32, 0, 0, &m);
    ASSERT_NEAR(m.max_rel, 1.0, 1e-15);
}

static void test_nonfinite(void **state)
{
    (void)state;
    float a[5] = {1, 2, NAN, INFINITY, 5}, b[5] = {1, NAN, NAN, INFINITY, 6};
    ld_cmp_tensor r = vec(a, LD_F32, 5), c = vec(b, LD_F32, 5);
    ld_metrics m;
    measure(&r, &c, LD_F32, 0, 0, &m);
    assert_int_equal(m.nan_ref, 1);
    assert_int_equal(m.inf_ref, 1);
    assert_int_equal(m.nan_cand, 2);
    assert_int_equal(m.inf_cand, 1);
    assert_int_equal(m.nonfinite_new, 1);  /* element 1: 2 -> NaN */
    assert_int_equal(m.nonfinite_lost, 0); /* NaN/NaN and Inf/Inf agree */
    assert_int_equal(m.n, 2);              /* elements 0 and 4 */
    assert_true(m.max_abs == 1);
    assert_true(m.has_worst);
    assert_int_equal(m.worst_index, 1); /* the non-finite disagreement beats the largest error */
    assert_true(m.worst_ref == 2 && isnan(m.worst_cand));
    /* Never a pass, whatever the tolerance says. */
    ld_tolerance loose = {INFINITY, -INFINITY, INFINITY, INFINITY, 1, INFINITY, INFINITY};
    assert_int_equal(ld_judge(&m, &loose), LD_FAIL_NONFINITE);
    /* The reverse: reference non-finite, candidate finite or the other infinity. */
    float a2[3] = {NAN, INFINITY, -INFINITY}, b2[3] = {3, INFINITY, INFINITY};
    r = vec(a2, LD_F32, 3);
    c = vec(b2, LD_F32, 3);
    measure(&r, &c, LD_F32, 0, 0, &m);
    assert_int_equal(m.nonfinite_lost, 2);
    assert_int_equal(m.nonfinite_new, 0);
    assert_int_equal(m.worst_index, 0);
    assert_true(ld_judge(&m, &loose) & LD_FAIL_NONFINITE);
}

static void test_ulp(void **state)
{
    (void)state;
    assert_int_equal(ld_ulp_distance(0.0f, -0.0f, LD_F32), 0);
    assert_int_equal(ld_ulp_distance(1.0f, nextafterf(1.0f, 2.0f), LD_F32), 1);
    /* the two smallest subnormals of opposite sign are two steps apart (through zero) */
    assert_int_equal(ld_ulp_distance(0x1p-149f, -0x1p-149f, LD_F32), 2);
    assert_int_equal(ld_ulp_distance(1.0f, NAN, LD_F32), UINT64_MAX);
    /* bf16 keeps 7 mantissa bits: 1 + 2^-12 rounds to 1.0, one bf16 step above 1 is 1 + 2^-7 */
    assert_int_equal(ld_ulp_distance(1.0f + 0x1p-12f, 1.0f + 0x1p-7f, LD_BF16), 1);
    assert_int_equal(ld_ulp_distance(1.0f + 0x1p-12f, 1.0f, LD_BF16), 0);
    /* f16 keeps 10: 1 + 2^-10 is one step */
    assert_int_equal(ld_ulp_distance(1.0f, 1.0f + 0x1p-10f, LD_F16), 1);
    assert_int_equal(ld_ulp_distance(-1.0f, 1.0f, LD_F16), 2 * 0x3c00);

    /* Through the metrics: an f32 reference against a bf16 candidate whose values are the
     * reference rounded to bf16 (0 ULP) except one step off in the last element. */
    float ref[3] = {1.0f + 0x1p-12f, -3.0f, 0.5f};
    uint16_t cand[3] = {0x3f80 /* 1.0 */, 0xc040 /* -3.0 */, 0x3f01 /* 0.5 + 2^-8 */};
    ld_cmp_tensor r = vec(ref, LD_F32, 3), c = vec(cand, LD_BF16, 3);
    ld_metrics m;
    measure(&r, &c, LD_BF16, 0, 0, &m);
    assert_int_equal(m.ulp_max, 1);
    ASSERT_NEAR(m.ulp_mean, 1.0 / 3.0, 1e-15);
    ASSERT_NEAR(m.max_abs, 0x1p-8, 0);
    assert_int_equal(m.worst_index, 2);
}

static void test_worst_index_and_grid(void **state)
{
    (void)state;
    /* [T=2, Hq=3, D=4], all ones, one element off at token 1, head 2, dim 3 (flat 23). */
    float a[24], b[24];
    for (int i = 0; i < 24; i++)
        a[i] = b[i] = 1.0f;
    b[23] = 3.0f;
    ld_cmp_tensor r = {a, LD_F32, 3, {2, 3, 4}, 24}, c = {b, LD_F32, 3, {2, 3, 4}, 24};
    ld_tolerance t = tol_of(0, 0);
    ld_err_grid g = {0};
    ld_metrics m;
    ld_error err;
    assert_int_equal(ld_metrics_compute(&r, &c, LD_F32, &t, &m, &g, &err), LD_OK);
    assert_int_equal(m.worst_index, 23);
    int64_t idx[3];
    ld_unravel(m.worst_index, r.shape, 3, idx);
    assert_true(idx[0] == 1 && idx[1] == 2 && idx[2] == 3);
    assert_int_equal(g.tokens, 2);
    assert_int_equal(g.heads, 3);
    /* cell (1,2): ||d|| = 2, ||r|| = 2 -> 1; token 1: 2 / sqrt(12); head 2: 2 / sqrt(8) */
    ASSERT_NEAR(ld_err_grid_cell(&g, 1, 2), 1.0, 1e-15);
    assert_true(ld_err_grid_cell(&g, 0, 2) == 0 && ld_err_grid_cell(&g, 1, 1) == 0);
    ASSERT_NEAR(ld_err_grid_token(&g, 1), 2.0 / sqrt(12.0), 1e-15);
    assert_true(ld_err_grid_token(&g, 0) == 0);
    ASSERT_NEAR(ld_err_grid_head(&g, 2), 2.0 / sqrt(8.0), 1e-15);
    assert_true(ld_err_grid_head(&g, 0) == 0);
    ld_err_grid_free(&g);
    ld_err_grid_free(NULL);
}

static void test_long_rows(void **state)
{
    (void)state;
    /* A [1, 10000] row is longer than one widening chunk: the two passes must still see every
     * element. Reference 1.0 everywhere, candidate off by 0.5 at the very last element. */
    static float a[10000], b[10000];
    for (int i = 0; i < 10000; i++)
        a[i] = b[i] = 1.0f;
    b[9999] = 1.5f;
    ld_cmp_tensor r = {a, LD_F32, 2, {1, 10000}, 10000}, c = {b, LD_F32, 2, {1, 10000}, 10000};
    ld_metrics m;
    measure(&r, &c, LD_F32, 0, 0, &m);
    assert_int_equal(m.worst_index, 9999);
    ASSERT_NEAR(m.max_rel, 0.5, 1e-15);
    ASSERT_NEAR(m.rel_l2, 0.5 / 100.0, 1e-15); /* 0.5 / sqrt(10000) */
}

static void test_mismatched_sizes(void **state)
{
    (void)state;
    float a[3] = {0}, b[4] = {0};
    ld_cmp_tensor r = vec(a, LD_F32, 3), c = vec(b, LD_F32, 4);
    ld_metrics m;
    ld_error err;
    assert_int_equal(ld_metrics_compute(&r, &c, LD_F32, NULL, &m, NULL, &err), LD_E_INPUT);
    assert_non_null(strstr(err.msg, "3 elements"));
    ld_cmp_tensor bad = {a, LD_F32, 2, {2, 2}, 3};
    assert_int_equal(ld_metrics_compute(&bad, &bad, LD_F32, NULL, &m, NULL, &err), LD_E_INPUT);
}

static void test_stats_fallback(void **state)
{
    (void)state;
    /* 100 elements; the first values agree, the norms differ: ||r|| = 10, ||c|| = 11 gives the
     * lower bound |11 - 10| / 10 = 0.1; means 0 vs 0.05 and stds 1 vs 1 give
     * sqrt(100) * 0.05 / 10 = 0.05, smaller: the bound stays 0.1. */
    ld_stats rs = {-2, 2, 0, 1, 10, 2, 0, 0}, cs = {-2, 2, 0.05, 1, 11, 2, 2, 0};
    double head[4] = {0.5, -1, 2, 0.25};
    ld_tolerance t = tol_of(0, 0);
    ld_metrics m;
    ld_metrics_from_stats(&rs, head, 4, &cs, head, 4, 100, LD_F32, &t, &m);
    assert_int_equal(m.source, LD_SRC_STATS);
    assert_int_equal(m.numel, 100);
    assert_int_equal(m.n, 4);
    ASSERT_NEAR(m.l2_lower_bound, 0.1, 1e-15);
    ASSERT_NEAR(m.rel_l2, 0.1, 1e-15);
    assert_true(m.cosine == 1); /* the first values agree */
    assert_int_equal(m.nan_cand, 2);
    assert_int_equal(m.nonfinite_new, 2); /* 2 NaN in the candidate, none in the reference */
    ld_tolerance loose = {1, -1, 0, 0, 1, INFINITY, INFINITY};
    assert_int_equal(ld_judge(&m, &loose), LD_FAIL_NONFINITE);
    /* Means dominating: stds 1 vs 1, means 0 vs 0.3 -> sqrt(100)*0.3/10 = 0.3. */
    ld_stats cs2 = {-2, 2, 0.3, 1, 10, 2, 0, 0};
    ld_metrics_from_stats(&rs, head, 4, &cs2, head, 4, 100, LD_F32, &t, &m);
    ASSERT_NEAR(m.rel_l2, 0.3, 1e-12);
    assert_int_equal(m.nonfinite_new, 0);
    /* Heads that differ: the head error wins when larger. */
    double h2[4] = {0.5, -1, 2, 1.25};
    ld_metrics_from_stats(&rs, head, 4, &rs, h2, 4, 100, LD_F32, &t, &m);
    /* ||d|| = 1 over the head, ||r_head|| = sqrt(0.25+1+4+0.0625) = 2.3048861143232218 */
    ASSERT_NEAR(m.rel_l2, 1.0 / 2.3048861143232218, 1e-15);
}

/* Issue 15, item 1: stats that bound nothing must fail, never pass (a NaN l2 with no NaN counted
 * passed before); min, max and mean bound max_abs. */
static void test_stats_fallback_unjudgeable(void **state)
{
    (void)state;
    ld_stats rs = {-2, 2, 0, 1, 10, 2, 0, 0};
    double head[4] = {0.5, -1, 2, 0.25};
    ld_tolerance t = tol_of(0, 0);
    ld_tolerance loose = {1, -1, 0, 0, 1, INFINITY, INFINITY};
    ld_metrics m;
    double bad[3] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        ld_stats cs = rs;
        cs.l2 = bad[i];
        ld_metrics_from_stats(&rs, head, 4, &cs, head, 4, 100, LD_F32, &t, &m);
        assert_true(isnan(m.rel_l2) && isnan(m.max_abs));
        assert_true(ld_judge(&m, &loose) & LD_FAIL_REL_L2);
        cs = rs;
        cs.mean = bad[i];
        ld_metrics_from_stats(&rs, head, 4, &cs, head, 4, 100, LD_F32, &t, &m);
        assert_true(ld_judge(&m, &loose) & LD_FAIL_REL_L2);
    }
    /* max 2 vs 5: max |c-r| >= 3 whatever the head says */
    ld_stats cs = {-2, 5, 0, 1, 10, 5, 0, 0};
    ld_metrics_from_stats(&rs, head, 4, &cs, head, 4, 100, LD_F32, &t, &m);
    assert_true(m.max_abs == 3);
    ld_tolerance abs1 = {1, -1, 0, 0, 1, 1, INFINITY};
    assert_int_equal(ld_judge(&m, &abs1), LD_FAIL_MAX_ABS);
    /* all elements NaN on both sides, counts equal: nothing to bound, nothing fails */
    ld_stats an = {NAN, NAN, NAN, NAN, NAN, NAN, 100, 0};
    double hn[4] = {NAN, NAN, NAN, NAN};
    ld_metrics_from_stats(&an, hn, 4, &an, hn, 4, 100, LD_F32, &t, &m);
    assert_int_equal(ld_judge(&m, &loose), 0);
}

static void test_judge(void **state)
{
    (void)state;
    ld_metrics m;
    memset(&m, 0, sizeof m);
    m.source = LD_SRC_FULL;
    m.rel_l2 = 0.02;
    m.cosine = 0.999;
    m.frac_outside = 0.5;
    m.max_abs = 3;
    m.ulp_max = 7;
    ld_tolerance t = {0.02, 0.999, 0, 0, 1, INFINITY, INFINITY};
    assert_int_equal(ld_judge(&m, &t), 0); /* thresholds are inclusive */
    m.rel_l2 = 0.0200001;
    assert_int_equal(ld_judge(&m, &t), LD_FAIL_REL_L2);
    m.rel_l2 = 0.01;
    m.cosine = 0.9989;
    assert_int_equal(ld_judge(&m, &t), LD_FAIL_COSINE);
    m.cosine = NAN; /* a NaN metric fails */
    assert_int_equal(ld_judge(&m, &t), LD_FAIL_COSINE);
    m.cosine = 1;
    t.outside = 0.25;
    t.max_abs = 2;
    t.ulp = 6;
    assert_int_equal(ld_judge(&m, &t), LD_FAIL_OUTSIDE | LD_FAIL_MAX_ABS | LD_FAIL_ULP);
    m.source = LD_SRC_NONE; /* nothing measured: only non-finite counts could fail */
    assert_int_equal(ld_judge(&m, &t), 0);
    assert_string_equal(ld_fail_reason_name(LD_FAIL_COSINE), "cosine");
    assert_null(ld_fail_reason_name(3));
}

/* ---- the piecewise form ----------------------------------------------------------------------- */

static uint64_t split_rng = 0x243f6a8885a308d3ULL;
static uint32_t split_next(void)
{
    split_rng ^= split_rng << 13;
    split_rng ^= split_rng >> 7;
    split_rng ^= split_rng << 17;
    return (uint32_t)(split_rng >> 32);
}

/* A value of a mixed population: normals of varied scale, exact zeros, tiny values, and now and
 * then NaN, +-Inf (rate per 1024). */
static float awkward_value(unsigned nonfinite_rate)
{
    uint32_t k = split_next() % 1024;
    if (k < nonfinite_rate)
        return k % 3 == 0 ? NAN : (k % 3 == 1 ? INFINITY : -INFINITY);
    if (k < nonfinite_rate + 20)
        return 0.0f;
    if (k < nonfinite_rate + 40)
        return (float)(split_next() % 1000) * 1e-30f;
    double u = ((double)split_next() + 0.5) / 4294967296.0 - 0.5;
    return (float)(u * (k % 7 == 0 ? 1000.0 : 2.0));
}

/* Stores x in dtype t at element i of buf. */
static void store(void *buf, ld_dtype t, size_t i, float x)
{
    if (t == LD_F32) {
        memcpy((char *)buf + 4 * i, &x, 4);
    } else {
        uint16_t h = t == LD_BF16 ? ld_f32_to_bf16(x) : ld_f32_to_f16(x);
        memcpy((char *)buf + 2 * i, &h, 2);
    }
}

static size_t esize(ld_dtype t) { return t == LD_F32 ? 4 : 2; }

/* Measures ref/cand whole with ld_metrics_compute and again fed in random whole-row pieces;
 * every metric, and the grid, must agree bit for bit. */
static void check_split(const int64_t *shape, int ndim, ld_dtype rt, ld_dtype ct, ld_dtype prec,
                        unsigned nonfinite_rate, int splits)
{
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= (uint64_t)shape[i];
    void *rb = malloc(numel * 4 + 4), *cb = malloc(numel * 4 + 4);
    assert_non_null(rb);
    assert_non_null(cb);
    for (size_t i = 0; i < numel; i++) {
        float r = awkward_value(nonfinite_rate);
        /* candidates near the reference, sometimes far, sometimes non-finite on their own */
        float c = split_next() % 16 == 0 ? awkward_value(nonfinite_rate)
                                         : r * (1.0f + ((float)(split_next() % 2001) - 1000.f) * 1e-6f);
        store(rb, rt, i, r);
        store(cb, ct, i, c);
    }
    ld_cmp_tensor r = {rb, rt, ndim, {0}, numel}, c = {cb, ct, ndim, {0}, numel};
    memcpy(r.shape, shape, (size_t)ndim * sizeof *shape);
    memcpy(c.shape, shape, (size_t)ndim * sizeof *shape);
    ld_tolerance t = tol_of(1e-3, 1e-2);
    ld_err_grid gw = {0};
    ld_metrics whole;
    ld_error err;
    assert_int_equal(ld_metrics_compute(&r, &c, prec, &t, &whole, &gw, &err), LD_OK);
    for (int k = 0; k < splits; k++) {
        ld_metrics_acc *m;
        ld_err_grid gp = {0};
        assert_int_equal(ld_metrics_begin(&m, &r, &c, prec, &t, &gp, &err), LD_OK);
        uint64_t row = ld_metrics_row_len(m), rows = row ? numel / row : 0, done = 0;
        while (done < rows) {
            uint64_t take = k == 0 ? 1 : 1 + split_next() % (rows - done);
            assert_int_equal(ld_metrics_feed(m, (char *)rb + done * row * esize(rt),
                                             (char *)cb + done * row * esize(ct), take * row, &err),
                             LD_OK);
            done += take;
        }
        ld_metrics piece;
        assert_int_equal(ld_metrics_end(m, &piece, &err), LD_OK);
        if (memcmp(&whole, &piece, sizeof whole) != 0)
            fail_msg("split %d of a %d-dim tensor (%llu elements): rel_l2 %.17g vs %.17g, max_rel "
                     "%.17g vs %.17g, ulp_p99 %llu vs %llu, worst %llu vs %llu", k, ndim,
                     (unsigned long long)numel, whole.rel_l2, piece.rel_l2, whole.max_rel,
                     piece.max_rel, (unsigned long long)whole.ulp_p99,
                     (unsigned long long)piece.ulp_p99, (unsigned long long)whole.worst_index,
                     (unsigned long long)piece.worst_index);
        assert_int_equal(gp.tokens, gw.tokens);
        assert_int_equal(gp.heads, gw.heads);
        size_t cells = gw.tokens * gw.heads;
        if (cells) {
            assert_memory_equal(gp.diff2, gw.diff2, cells * sizeof *gw.diff2);
            assert_memory_equal(gp.ref2, gw.ref2, cells * sizeof *gw.ref2);
            assert_memory_equal(gp.nonfinite, gw.nonfinite, cells * sizeof *gw.nonfinite);
        }
        ld_err_grid_free(&gp);
    }
    ld_err_grid_free(&gw);
    free(rb);
    free(cb);
}

static void test_piecewise_bit_for_bit(void **state)
{
    (void)state;
    static const struct {
        int ndim;
        int64_t shape[4];
    } shapes[] = {
        {1, {1}},          {1, {7}},           {1, {70001}},      {2, {3, 5}},
        {2, {64, 1024}},   {2, {5, 8193}},     {2, {3, 151936}},  {3, {4, 16, 128}},
        {3, {2, 3, 4100}}, {4, {2, 1, 3, 9}},  {2, {0, 5}},       {2, {3, 0}},
        {3, {300, 2, 1}},  {2, {1, 4096}},     {2, {17, 4097}},
    };
    static const ld_dtype pairs[][3] = {{LD_F32, LD_F32, LD_F32},    {LD_F32, LD_BF16, LD_BF16},
                                        {LD_F32, LD_F16, LD_F16},    {LD_BF16, LD_F32, LD_F32},
                                        {LD_BF16, LD_BF16, LD_BF16}, {LD_F16, LD_BF16, LD_BF16}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (size_t d = 0; d < sizeof pairs / sizeof pairs[0]; d++)
            for (unsigned rate = 0; rate <= 8; rate += 8)
                check_split(shapes[i].shape, shapes[i].ndim, pairs[d][0], pairs[d][1], pairs[d][2],
                            rate, 3);
}

static void test_piecewise_misuse(void **state)
{
    (void)state;
    float a[12] = {0}, b[12] = {0};
    ld_cmp_tensor r = {a, LD_F32, 2, {3, 4}, 12}, c = {b, LD_F32, 2, {3, 4}, 12};
    ld_metrics_acc *m;
    ld_metrics out;
    ld_error err;
    assert_int_equal(ld_metrics_begin(&m, &r, &c, LD_F32, NULL, NULL, &err), LD_OK);
    assert_int_equal(ld_metrics_row_len(m), 4);
    /* half a row, then more than is left */
    assert_int_equal(ld_metrics_feed(m, a, b, 2, &err), LD_E_USAGE);
    assert_non_null(strstr(err.msg, "whole rows of 4"));
    assert_int_equal(ld_metrics_feed(m, a, b, 8, &err), LD_OK);
    assert_int_equal(ld_metrics_feed(m, a, b, 8, &err), LD_E_USAGE);
    /* ended before the last row */
    assert_int_equal(ld_metrics_end(m, &out, &err), LD_E_USAGE);
    assert_non_null(strstr(err.msg, "8 of 12 elements"));
    ld_metrics_abort(NULL);
    /* shapes only: data is not needed until fed */
    r.data = c.data = NULL;
    assert_int_equal(ld_metrics_begin(&m, &r, &c, LD_F32, NULL, NULL, &err), LD_OK);
    ld_metrics_abort(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical),       cmocka_unit_test(test_one_element_off),
        cmocka_unit_test(test_zeros),           cmocka_unit_test(test_tiny_values_floor),
        cmocka_unit_test(test_nonfinite),       cmocka_unit_test(test_ulp),
        cmocka_unit_test(test_worst_index_and_grid), cmocka_unit_test(test_long_rows),
        cmocka_unit_test(test_mismatched_sizes), cmocka_unit_test(test_stats_fallback),
        cmocka_unit_test(test_stats_fallback_unjudgeable),
        cmocka_unit_test(test_judge),           cmocka_unit_test(test_piecewise_bit_for_bit),
        cmocka_unit_test(test_piecewise_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_probes_stats.c — ld_stats_compute against values worked out by hand: plain, NaN and Inf
 * excluded and counted, empty and all-NaN tensors, bf16 and f16 inputs, a large mean, and the
 * same bits whatever the number of threads. */
#include <math.h>
#include <omp.h>

#include "probe_test_util.h"

#define NEAR(a, b) assert_true(fabs((a) - (b)) <= 1e-12 * (fabs(b) + 1.0))

static void test_plain_f32(void **state)
{
    (void)state;
    const float x[4] = {1, 2, 3, 4};
    ld_stats s;
    ld_stats_compute(x, LD_F32, 4, &s);
    assert_true(s.min == 1.0 && s.max == 4.0 && s.mean == 2.5 && s.absmax == 4.0);
    NEAR(s.std, 1.118033988749895); /* sqrt(1.25): population std */
    NEAR(s.l2, 5.477225575051661);  /* sqrt(30) */
    assert_int_equal(s.nan, 0);
    assert_int_equal(s.inf, 0);
}

static void test_nonfinite_excluded(void **state)
{
    (void)state;
    const float x[5] = {NAN, 1, -INFINITY, 3, INFINITY};
    ld_stats s;
    ld_stats_compute(x, LD_F32, 5, &s);
    assert_true(s.min == 1.0 && s.max == 3.0 && s.mean == 2.0 && s.std == 1.0 && s.absmax == 3.0);
    NEAR(s.l2, 3.1622776601683795); /* sqrt(1 + 9) */
    assert_int_equal(s.nan, 1);
    assert_int_equal(s.inf, 2);
    const float neg[3] = {-5, -0.5f, NAN};
    ld_stats_compute(neg, LD_F32, 3, &s);
    assert_true(s.min == -5.0 && s.max == -0.5 && s.absmax == 5.0 && s.mean == -2.75);
}

static void test_empty_and_all_nan(void **state)
{
    (void)state;
    ld_stats s;
    ld_stats_compute(NULL, LD_F32, 0, &s);
    assert_true(isnan(s.min) && isnan(s.max) && isnan(s.mean) && isnan(s.std) && isnan(s.l2) &&
                isnan(s.absmax));
    assert_int_equal(s.nan + s.inf, 0);
    const float x[3] = {NAN, INFINITY, NAN};
    ld_stats_compute(x, LD_F32, 3, &s);
    assert_true(isnan(s.min) && isnan(s.mean) && isnan(s.absmax));
    assert_int_equal(s.nan, 2);
    assert_int_equal(s.inf, 1);
}

static void test_half_types(void **state)
{
    (void)state;
    const uint16_t bf[2] = {0x3fc0, 0xc000}; /* 1.5, -2 */
    ld_stats s;
    ld_stats_compute(bf, LD_BF16, 2, &s);
    assert_true(s.min == -2.0 && s.max == 1.5 && s.mean == -0.25 && s.std == 1.75 && s.l2 == 2.5);
    /* f16: 1.0, +inf, NaN, the smallest subnormal 2^-24 */
    const uint16_t h[4] = {0x3c00, 0x7c00, 0x7e00, 0x0001};
    ld_stats_compute(h, LD_F16, 4, &s);
    assert_true(s.max == 1.0 && s.min == 0x1p-24);
    assert_true(s.mean == (1.0 + 0x1p-24) / 2);
    assert_int_equal(s.nan, 1);
    assert_int_equal(s.inf, 1);
}

/* 1.4M elements cycling -3..3: mean 0, variance (9+4+1+0+1+4+9)/7 = 4, across the parallel path;
 * a NaN in the middle of one chunk. */
static void test_large_and_thread_count(void **state)
{
    (void)state;
    size_t n = 7 * 200000 + 1;
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n - 1; i++)
        x[i] = (float)((int)(i % 7) - 3);
    x[n - 1] = NAN;
    ld_stats a, b;
    omp_set_num_threads(1);
    ld_stats_compute(x, LD_F32, n, &a);
    omp_set_num_threads(3);
    ld_stats_compute(x, LD_F32, n, &b);
    assert_true(a.mean == 0.0 && a.std == 2.0 && a.min == -3.0 && a.max == 3.0);
    NEAR(a.l2, sqrt(28.0 * 200000));
    assert_int_equal(a.nan, 1);
    assert_memory_equal(&a, &b, sizeof a);
    /* a mean far from zero keeps its spread: 1e6 +- 1 */
    for (size_t i = 0; i < n; i++)
        x[i] = i % 2 ? 1000001.0f : 999999.0f;
    ld_stats_compute(x, LD_F32, n - 1, &a);
    assert_true(a.mean == 1000000.0 && a.std == 1.0);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_f32),         cmocka_unit_test(test_nonfinite_excluded),
        cmocka_unit_test(test_empty_and_all_nan), cmocka_unit_test(test_half_types),
        cmocka_unit_test(test_large_and_thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

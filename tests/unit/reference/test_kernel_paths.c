/* test_kernel_paths.c — the matmul's kernel paths (LD_REF_KERNEL): choosing one, refusing a name
 * this build lacks or a path this CPU cannot run, the lane order by hand on every path, every
 * path giving the generic path's bits on awkward shapes and dtypes, and the exact widening of
 * every 16-bit pattern. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "matmul_kernels.h"
#include "ops.h"

static const ld_numerics *REF = &ld_numerics_reference;

static ld_tensor matrix(const void *data, ld_dtype dt, size_t rows, size_t cols)
{
    size_t es = dt == LD_F32 ? 4 : 2;
    ld_tensor t = {.name = "w", .dtype = dt, .ndim = 2, .data = data};
    t.shape[0] = (int64_t)rows;
    t.shape[1] = (int64_t)cols;
    t.numel = rows * cols;
    t.nbytes = t.numel * es;
    return t;
}

static void use(const char *path)
{
    ld_error err = {0};
    if (ld_ref_kernel_select(path, &err) != LD_OK)
        fail_msg("selecting %s: %s", path, err.msg);
    if (strcmp(path, "auto"))
        assert_string_equal(ld_ref_kernel_path(), path);
}

static void test_select(void **state)
{
    (void)state;
    ld_error err = {0};
    assert_int_equal(ld_ref_kernel_select("bogus", &err), LD_E_USAGE);
    assert_non_null(strstr(err.msg, "LD_REF_KERNEL=bogus: no such kernel path"));
    assert_non_null(strstr(err.msg, "generic"));
    /* the portable path exists everywhere, and is last */
    size_t n = ld_ref_kernel_count();
    assert_true(n >= 1);
    assert_string_equal(ld_ref_kernel_name(n - 1, NULL), "generic");
    assert_null(ld_ref_kernel_name(n, NULL));
    const char *best = NULL;
    for (size_t i = 0; i < n; i++) {
        bool usable;
        const char *name = ld_ref_kernel_name(i, &usable);
        memset(&err, 0, sizeof err);
        if (usable) {
            best = best ? best : name;
            use(name);
        } else {
            assert_int_equal(ld_ref_kernel_select(name, &err), LD_E_UNSUPPORTED);
            assert_non_null(strstr(err.msg, "this CPU cannot run"));
        }
    }
    use("auto");
    assert_string_equal(ld_ref_kernel_path(), best);
    /* NULL reads LD_REF_KERNEL; unset or empty means auto */
    setenv("LD_REF_KERNEL", "generic", 1);
    assert_int_equal(ld_ref_kernel_select(NULL, NULL), LD_OK);
    assert_string_equal(ld_ref_kernel_path(), "generic");
    setenv("LD_REF_KERNEL", "", 1);
    assert_int_equal(ld_ref_kernel_select(NULL, NULL), LD_OK);
    assert_string_equal(ld_ref_kernel_path(), best);
    setenv("LD_REF_KERNEL", "nope", 1);
    assert_int_equal(ld_ref_kernel_select(NULL, &err), LD_E_USAGE);
    assert_string_equal(ld_ref_kernel_path(), best); /* a failed choice keeps the last one */
    unsetenv("LD_REF_KERNEL");
}

/* The lane order by hand. x[k] = 2^60 at k = 0, −2^60 at k = 1, 1 at k = 8 and k = 2·KC (both
 * lane 0, the second in the last, ragged chunk), 0 elsewhere; W = 1. Lane 0 holds 2^60 + 1 + 1,
 * which rounds to 2^60 at each add; lane 1 holds −2^60; the tree gives exactly 0, where a sum in
 * k order would give 2. On every path, for bf16, f16 and f32 weights, the direct (T = 1) and the
 * blocked (T = 5) kernels. */
static void test_lanes_by_hand(void **state)
{
    (void)state;
    enum { K = 2 * KC + 6, T = 5 };
    float *x = calloc((size_t)T * K, sizeof *x);
    uint16_t w16[2][K];
    float w32[2][K];
    for (size_t t = 0; t < T; t++) {
        float *r = x + t * K;
        r[0] = 0x1p60f;
        r[1] = -0x1p60f;
        r[8] = 1;
        r[2 * KC] = 1;
        r[K - 1] = (float)t; /* lane 5: row t's result is t */
    }
    for (size_t n = 0; n < 2; n++)
        for (size_t k = 0; k < K; k++)
            w32[n][k] = 1;
    for (size_t i = 0; i < ld_ref_kernel_count(); i++) {
        bool usable;
        const char *name = ld_ref_kernel_name(i, &usable);
        if (!usable)
            continue;
        use(name);
        for (int d = 0; d < 3; d++) {
            ld_dtype dt = d == 0 ? LD_BF16 : d == 1 ? LD_F16 : LD_F32;
            for (size_t n = 0; n < 2; n++)
                for (size_t k = 0; k < K; k++)
                    w16[n][k] = dt == LD_BF16 ? 0x3f80 : 0x3c00; /* 1.0 */
            ld_tensor t = matrix(dt == LD_F32 ? (void *)w32 : (void *)w16, dt, 2, K);
            for (size_t nt = 1; nt <= T; nt += T - 1) {
                float y[2 * T];
                assert_int_equal(ld_ref_matmul(x, &t, nt, y, REF, NULL), LD_OK);
                for (size_t r = 0; r < nt * 2; r++)
                    if (y[r] != (float)(r / 2))
                        fail_msg("%s, %s, T=%zu: y[%zu] = %g, by hand %zu", name, ld_dtype_name(dt),
                                 nt, r, (double)y[r], r / 2);
            }
        }
    }
    free(x);
    use("auto");
}

/* The order within a lane by hand. Lane 0 gets x = 2^60, 1, −2^60 at k = 0, 16, 24, lane 1 the
 * same at k = 1017, 1025 (the lane set after the last 32-wide step) and 1033 (the scalar leftover);
 * W = 1. In ascending k each 1 vanishes into 2^60 and the lane ends at 0; a kernel that adds a
 * later k of a lane first (k = 24 before 16: the halves of a 16-wide step swapped) leaves a 1.
 * Five rows (a quad of the direct kernels and one left over), on every path, bf16, f16 and f32,
 * the direct (T = 1) and blocked (T = 5) kernels; row t's result is t (lane 5 of the leftover). */
static void test_order_within_lane_by_hand(void **state)
{
    (void)state;
    enum { K = 2 * KC + 14, T = 5, N = 5 };
    static const size_t at[] = {0, 16, 24, 1017, 1025, 1033};
    static const float v[] = {0x1p60f, 1, -0x1p60f, 0x1p60f, 1, -0x1p60f};
    float *x = calloc((size_t)T * K, sizeof *x);
    uint16_t *w16 = malloc((size_t)N * K * sizeof *w16);
    float *w32 = malloc((size_t)N * K * sizeof *w32);
    assert_true(x && w16 && w32 && (K & ~7) == 1032);
    for (size_t t = 0; t < T; t++) {
        for (size_t i = 0; i < 6; i++)
            x[t * K + at[i]] = v[i];
        x[t * K + K - 1] = (float)t;
    }
    for (size_t i = 0; i < (size_t)N * K; i++)
        w32[i] = 1;
    for (size_t i = 0; i < ld_ref_kernel_count(); i++) {
        bool usable;
        const char *name = ld_ref_kernel_name(i, &usable);
        if (!usable)
            continue;
        use(name);
        for (int d = 0; d < 3; d++) {
            ld_dtype dt = d == 0 ? LD_BF16 : d == 1 ? LD_F16 : LD_F32;
            for (size_t j = 0; j < (size_t)N * K; j++)
                w16[j] = dt == LD_BF16 ? 0x3f80 : 0x3c00; /* 1.0 */
            ld_tensor t = matrix(dt == LD_F32 ? (void *)w32 : (void *)w16, dt, N, K);
            for (size_t nt = 1; nt <= T; nt += T - 1) {
                float y[N * T];
                assert_int_equal(ld_ref_matmul(x, &t, nt, y, REF, NULL), LD_OK);
                for (size_t r = 0; r < nt * N; r++)
                    if (y[r] != (float)(r / N))
                        fail_msg("%s, %s, T=%zu: y[%zu] = %g, by hand %zu", name, ld_dtype_name(dt),
                                 nt, r, (double)y[r], r / N);
            }
        }
    }
    free(x);
    free(w16);
    free(w32);
    use("auto");
}

static uint64_t next(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 16;
}

/* A finite value of every magnitude an activation might have, sign included. */
static float rnd_act(uint64_t *s)
{
    uint64_t r = next(s);
    float m = (float)(r & 0xffffff) / (float)0x1000000;
    return ldexpf(r >> 40 & 1 ? -m : m, (int)(r >> 24 & 31) - 16);
}

/* A random finite bit pattern of dt (subnormals included), below 2^13 so that no output
 * overflows to infinity (where differing sums would look alike). */
static uint32_t rnd_weight(uint64_t *s, ld_dtype dt)
{
    for (;;) {
        uint32_t b = (uint32_t)next(s);
        if (dt == LD_F16 && ((b & 0xffff) >> 10 & 31) != 31)
            return b & 0xffff;
        if (dt == LD_BF16 && ((b & 0xffff) >> 7 & 255) < 140)
            return b & 0xffff;
        if (dt == LD_F32 && (b >> 23 & 255) < 140)
            return b;
    }
}

/* Every path gives the generic path's bits: K below 8, a multiple of 8, KC, KC + 1, past two
 * chunks, 32-wide steps plus lane sets left over (the AVX-512 bf16 direct kernel); N below and
 * past a row block, past a direct row group, not a multiple of 4; T = 1 .. TD (direct kernels),
 * past TD, past TC, not a multiple of 3. */
static void test_paths_identical(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {
        {1, 1, 1},    {1, 5, 7},    {1, 130, 1030}, {2, 9, 513},  {3, 67, 512}, {4, 3, 9},
        {4, 130, 100}, {5, 9, 8},   {7, 67, 1030},  {67, 13, 513}, {70, 9, 1030}, {6, 8, 16},
        {2, 1, 1030}, {3, 5, 8},    {65, 11, 40},   {131, 4, 24}, {1, 9, 1000}, {2, 7, 56}};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        size_t T = shapes[c][0], N = shapes[c][1], K = shapes[c][2];
        float *x = malloc(T * K * sizeof *x), *want = malloc(T * N * 4), *got = malloc(T * N * 4);
        void *w = malloc(N * K * 4);
        assert_true(x && want && got && w);
        uint64_t s = 7 + c;
        for (size_t i = 0; i < T * K; i++)
            x[i] = rnd_act(&s);
        for (int d = 0; d < 3; d++) {
            ld_dtype dt = d == 0 ? LD_BF16 : d == 1 ? LD_F16 : LD_F32;
            for (size_t i = 0; i < N * K; i++) {
                uint32_t b = rnd_weight(&s, dt);
                if (dt == LD_F32)
                    memcpy((char *)w + i * 4, &b, 4);
                else
                    ((uint16_t *)w)[i] = (uint16_t)b;
            }
            ld_tensor t = matrix(w, dt, N, K);
            use("generic");
            assert_int_equal(ld_ref_matmul(x, &t, T, want, REF, NULL), LD_OK);
            for (size_t i = 0; i < ld_ref_kernel_count(); i++) {
                bool usable;
                const char *name = ld_ref_kernel_name(i, &usable);
                if (!usable)
                    continue;
                use(name);
                assert_int_equal(ld_ref_matmul(x, &t, T, got, REF, NULL), LD_OK);
                for (size_t j = 0; j < T * N; j++)
                    if (memcmp(&got[j], &want[j], 4))
                        fail_msg("%s vs generic, %s, T=%zu N=%zu K=%zu: y[%zu] = %a, generic %a",
                                 name, ld_dtype_name(dt), T, N, K, j, (double)got[j],
                                 (double)want[j]);
            }
        }
        free(x), free(want), free(got), free(w);
    }
    use("auto");
}

/* Every bf16 and f16 bit pattern (NaNs, infinities and subnormals included) and a spread of f32
 * ones widen to the double the scalar conversion gives, bit for bit, on every path; rows past N
 * are zeros. */
static void test_widen_every_pattern(void **state)
{
    (void)state;
    enum { K = 65536 + 3 };
    uint16_t *w16 = malloc(2 * K * sizeof *w16);
    uint32_t *w32 = malloc(2 * K * sizeof *w32);
    double *dst = aligned_alloc(64, (size_t)MR * KC * sizeof *dst);
    assert_true(w16 && w32 && dst);
    uint64_t s = 99;
    for (size_t i = 0; i < 2 * (size_t)K; i++) {
        w16[i] = (uint16_t)(i * 40503u); /* an odd multiplier: row 0 holds all 65536 patterns */
        w32[i] = i < 512 ? (uint32_t)i << 23 | (uint32_t)(i & 7) : (uint32_t)next(&s);
    }
    for (size_t p = 0; p < ld_ref_kernel_count(); p++) {
        bool usable;
        const char *name = ld_ref_kernel_name(p, &usable);
        if (!usable)
            continue;
        use(name);
        for (int d = 0; d < 3; d++) {
            ld_dtype dt = d == 0 ? LD_BF16 : d == 1 ? LD_F16 : LD_F32;
            ld_tensor t = matrix(dt == LD_F32 ? (void *)w32 : (void *)w16, dt, 2, K);
            for (size_t k0 = 0; k0 < K; k0 += KC) {
                size_t kl = K - k0 < KC ? K - k0 : KC;
                memset(dst, 0x55, (size_t)MR * KC * sizeof *dst);
                ld_ref_widen_f64(&t, 0, 2, K, k0, kl, dst);
                for (size_t r = 0; r < MR; r++)
                    for (size_t k = 0; k < kl; k++) {
                        double want = r >= 2 ? 0.0
                                             : (double)ld_load_f32(t.data, dt, r * K + k0 + k);
                        if (memcmp(&dst[r * KC + k], &want, sizeof want))
                            fail_msg("%s, %s: row %zu, k %zu widened to %a, want %a", name,
                                     ld_dtype_name(dt), r, k0 + k, dst[r * KC + k], want);
                    }
            }
        }
    }
    free(w16), free(w32), free(dst);
    use("auto");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_lanes_by_hand),
        cmocka_unit_test(test_order_within_lane_by_hand),
        cmocka_unit_test(test_paths_identical),
        cmocka_unit_test(test_widen_every_pattern),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

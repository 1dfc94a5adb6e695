/* test_cuda_kernels.c — every kernel of the CUDA path against its reference twin (reference/ops.h)
 * on the same inputs: random and awkward shapes (non-multiples of 32/128, T = 1 and T > 1,
 * Hq/Hkv = 1, 2, 4), every fault variant, NaN/Inf agreement checked first, guard regions around
 * every output. The twin runs with the numerics of a correct bf16 kernel (fp32 accumulation,
 * values rounded to bf16), so tolerances are about one bf16 step. Needs a GPU: exits 77 without. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <cmocka.h>

#include "cuda_test_util.h"

#include "argmax.cuh"
#include "attention.cuh"
#include "embed.cuh"
#include "gemv.cuh"
#include "matmul.h"
#include "ops.h"
#include "poke.cuh"
#include "qk_norm_rope.cuh"
#include "rmsnorm.cuh"
#include "silu_mul.cuh"

/* The twin's numerics: a correct bf16 kernel. */
static const ld_numerics BF = {.acc_f32 = true, .round_to = LD_BF16};

static int32_t *upload_pos0(gbuf *g, int32_t pos0) { return gbuf_upload(g, &pos0, sizeof pos0); }

/* ---- embedding ------------------------------------------------------------------------------- */

static void test_embed(void **state)
{
    (void)state;
    static const struct { size_t V, H, T; } cases[] = {{1, 1, 1}, {37, 33, 5}, {512, 64, 7},
                                                       {1000, 1000, 3}, {5, 1025, 2}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t V = cases[c].V, H = cases[c].H, T = cases[c].T;
        uint16_t *table = rand_bf16(V * H, 1.0f);
        int32_t *ids = malloc(T * sizeof *ids);
        for (size_t t = 0; t < T; t++)
            ids[t] = t == 0 ? (int32_t)(V - 1) : (int32_t)(rng_next() % V);
        float *ref = malloc(T * H * sizeof *ref);
        ld_tensor tt = bf16_tensor(table, (int64_t)V, (int64_t)H);
        ld_ref_embed(&tt, ids, T, ref, &BF);

        gbuf gt, gi, go;
        ld_bf16 *d_table = gbuf_upload(&gt, table, V * H * 2);
        int32_t *d_ids = gbuf_upload(&gi, ids, T * sizeof *ids);
        ld_bf16 *d_out = gbuf_alloc(&go, T * H * 2, 0xFF);
        LDOK(ld_cuda_embed(d_table, V, H, d_ids, T, d_out, 0, &E));
        SYNC();
        uint16_t *got = malloc(T * H * 2);
        gbuf_download(&go, got);
        gbuf_check(&go, "embed out");
        check_close_bf16("embed", ref, got, T * H, 0.0, 0.0);

        /* An id outside the vocabulary yields a NaN row, never a read out of bounds. */
        int32_t bad[2] = {-1, (int32_t)V};
        CU(cudaMemcpy(d_ids, bad, sizeof bad, cudaMemcpyHostToDevice));
        if (T >= 2) {
            LDOK(ld_cuda_embed(d_table, V, H, d_ids, 2, d_out, 0, &E));
            SYNC();
            gbuf_download(&go, got);
            for (size_t i = 0; i < 2 * H; i++)
                if (!isnan(ld_bf16_to_f32(got[i])))
                    fail_msg("embed: invalid id row element %zu is not NaN", i);
        }
        printf("embed V=%zu H=%zu T=%zu ok\n", V, H, T);
        gbuf_free(&gt), gbuf_free(&gi), gbuf_free(&go);
        free(table), free(ids), free(ref), free(got);
    }
}

/* ---- matmul (cuBLAS) ------------------------------------------------------------------------- */

static void test_matmul(void **state)
{
    (void)state;
    /* T, N, K, and extra row stride for x and y (views into fused buffers). */
    static const struct { size_t T, N, K, xpad, ypad; } cases[] = {
        {1, 1, 1, 0, 0},     {1, 33, 100, 0, 0},  {3, 64, 64, 0, 0},    {17, 129, 255, 0, 0},
        {5, 691, 256, 0, 0}, {2, 1000, 64, 0, 0}, {1, 3072, 1024, 0, 0}, {4, 96, 64, 32, 160},
        {1, 64, 64, 64, 128}, {33, 257, 31, 1, 3}};
    cublasHandle_t h;
    assert_int_equal(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    void *ws;
    CU(cudaMalloc(&ws, (size_t)32 << 20));
    LDOK(ld_cuda_matmul_setup(h, 0, ws, (size_t)32 << 20, &E));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t T = cases[c].T, N = cases[c].N, K = cases[c].K;
        size_t ldx = K + cases[c].xpad, ldy = N + cases[c].ypad;
        uint16_t *x = rand_bf16(T * ldx, 1.0f), *w = rand_bf16(N * K, 1.0f);
        float *xf = malloc(T * K * sizeof *xf), *ref = malloc(T * N * sizeof *ref);
        for (size_t t = 0; t < T; t++)
            for (size_t k = 0; k < K; k++)
                xf[t * K + k] = ld_bf16_to_f32(x[t * ldx + k]);
        ld_tensor wt = bf16_tensor(w, (int64_t)N, (int64_t)K);
        LDOK(ld_ref_matmul(xf, &wt, T, ref, &BF, &E));

        gbuf gx, gw, gy;
        ld_bf16 *dx = gbuf_upload(&gx, x, T * ldx * 2), *dw = gbuf_upload(&gw, w, N * K * 2);
        ld_bf16 *dy = gbuf_alloc(&gy, T * ldy * 2, 0x7F); /* 0x7F7F: a finite sentinel */
        LDOK(ld_cuda_matmul(h, dx, ldx, dw, N, K, T, dy, ldy, &E));
        SYNC();
        uint16_t *y = malloc(T * ldy * 2), *yp = malloc(T * N * 2);
        gbuf_download(&gy, y);
        gbuf_check(&gy, "matmul y");
        for (size_t t = 0; t < T; t++) {
            memcpy(yp + t * N, y + t * ldy, N * 2);
            for (size_t n = N; n < ldy; n++) /* the columns outside the view stay untouched */
                if (y[t * ldy + n] != 0x7F7F)
                    fail_msg("matmul T=%zu N=%zu: wrote outside its view at row %zu col %zu", T, N,
                             t, n);
        }
        /* fp32 sums in another order differ by ~K·2^-24·Σ|x·w| before rounding: K·1e-6. */
        check_close_bf16("matmul", ref, yp, T * N, (double)K * 1e-6, BF16_RTOL);
        printf("matmul T=%zu N=%zu K=%zu ldx=%zu ldy=%zu ok\n", T, N, K, ldx, ldy);
        gbuf_free(&gx), gbuf_free(&gw), gbuf_free(&gy);
        free(x), free(w), free(xf), free(ref), free(y), free(yp);
    }
    cublasDestroy(h);
    cudaFree(ws);
}

/* ---- GEMV (decode matmuls) ------------------------------------------------------------------- */

/* ld_cuda_gemv over x (T rows ldx apart, xoff elements past a 16-byte boundary)
 * and W (woff elements past one, followed by 8 NaN: a read past the end poisons a result); returns
 * y packed [T,N] (malloc'd), after checking the guard regions and that the ldy - N columns outside
 * the view kept their finite sentinel. */
static uint16_t *run_gemv(const uint16_t *x, size_t ldx, size_t xoff, const uint16_t *w,
                          size_t woff, size_t N, size_t K, size_t T, size_t ldy)
{
    gbuf gx, gw, gy;
    ld_bf16 *dx = gbuf_alloc(&gx, (xoff + T * ldx) * 2, 0xFF);
    ld_bf16 *dw = gbuf_alloc(&gw, (woff + N * K + 8) * 2, 0xFF);
    CU(cudaMemcpy(dx + xoff, x, T * ldx * 2, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(dw + woff, w, N * K * 2, cudaMemcpyHostToDevice));
    ld_bf16 *dy = gbuf_alloc(&gy, T * ldy * 2, 0x7F); /* 0x7F7F: a finite sentinel */
    LDOK(ld_cuda_gemv(dx + xoff, ldx, dw + woff, N, K, T, dy, ldy, 0, &E));
    SYNC();
    uint16_t *y = malloc(T * ldy * 2), *yp = malloc(T * N * 2);
    gbuf_download(&gy, y);
    gbuf_check(&gy, "gemv y");
    for (size_t t = 0; t < T; t++) {
        memcpy(yp + t * N, y + t * ldy, N * 2);
        for (size_t n = N; n < ldy; n++)
            if (y[t * ldy + n] != 0x7F7F)
                fail_msg("gemv T=%zu N=%zu: wrote outside its view at row %zu col %zu", T, N, t, n);
    }
    gbuf_free(&gx), gbuf_free(&gw), gbuf_free(&gy);
    free(y);
    return yp;
}

/* The twin's y[T,N] (f32, rounded to bf16) from x [T, ldx] and W [N, K]. */
static float *gemv_twin(const uint16_t *x, size_t ldx, const uint16_t *w, size_t N, size_t K,
                        size_t T)
{
    float *xf = malloc(T * K * sizeof *xf), *ref = malloc(T * N * sizeof *ref);
    for (size_t t = 0; t < T; t++)
        for (size_t k = 0; k < K; k++)
            xf[t * K + k] = ld_bf16_to_f32(x[t * ldx + k]);
    ld_tensor wt = bf16_tensor(w, (int64_t)N, (int64_t)K);
    LDOK(ld_ref_matmul(xf, &wt, T, ref, &BF, &E));
    free(xf);
    return ref;
}

static void test_gemv(void **state)
{
    (void)state;
    /* T, N, K, x and y row padding. K: one element, a short chunk, fewer chunks than lanes, more
     * (33), more than one round of loads per lane (257 chunks), not a multiple of 8; N: not a
     * multiple of the 8 rows of a block. */
    static const struct { size_t T, N, K, xpad, ypad; } cases[] = {
        {1, 1, 1, 0, 0},      {1, 7, 13, 3, 2},    {1, 9, 8, 8, 0},     {2, 33, 100, 4, 1},
        {3, 17, 264, 8, 0},   {4, 65, 2056, 8, 5}, {1, 1027, 1024, 0, 0}, {4, 9, 4095, 1, 0},
        {2, 8, 1032, 0, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t T = cases[c].T, N = cases[c].N, K = cases[c].K;
        size_t ldx = K + cases[c].xpad, ldy = N + cases[c].ypad;
        uint16_t *x = rand_bf16(T * ldx, 1.0f), *w = rand_bf16(N * K, 1.0f);
        for (size_t t = 0; t < T; t++) /* the padding NaN: a read past K poisons the row */
            for (size_t k = K; k < ldx; k++)
                x[t * ldx + k] = ld_f32_to_bf16(NAN);
        float *ref = gemv_twin(x, ldx, w, N, K, T);

        /* Against the twin. Both sum in fp32, in different orders: each result is within
         * K·2^-24·Σ|x·w| of the exact sum (the classic bound for n-term recursive summation,
         * n <= K), so the two within twice that; one rounding to bf16 each adds at most half a
         * step (2^-8 relative) on either side. */
        uint16_t *got = run_gemv(x, ldx, 0, w, 0, N, K, T, ldy);
        check_close_bf16("gemv (non-finite)", ref, got, T * N, INFINITY, 0.0);
        for (size_t t = 0; t < T; t++)
            for (size_t n = 0; n < N; n++) {
                double sabs = 0.0;
                for (size_t k = 0; k < K; k++)
                    sabs += fabs((double)ld_bf16_to_f32(x[t * ldx + k]) *
                                 (double)ld_bf16_to_f32(w[n * K + k]));
                double r = ref[t * N + n], g = ld_bf16_to_f32(got[t * N + n]);
                double tol = 1.01 * (2.0 * (double)K * 0x1.0p-24 * sabs + 0x1.0p-7 * fabs(r));
                if (!(fabs(g - r) <= tol))
                    fail_msg("gemv T=%zu N=%zu K=%zu: y[%zu,%zu] = %.9g, twin %.9g (tol %.3g)",
                             T, N, K, t, n, g, r, tol);
            }

        /* The order is K's alone: element loads (W one element off a 16-byte boundary, or x)
         * give the vector path's bits, and so does each row of x on its own (T = 1). */
        uint16_t *wmis = run_gemv(x, ldx, 0, w, 1, N, K, T, ldy);
        uint16_t *xmis = run_gemv(x, ldx, 3, w, 0, N, K, T, ldy);
        if (memcmp(wmis, got, T * N * 2) || memcmp(xmis, got, T * N * 2))
            fail_msg("gemv T=%zu N=%zu K=%zu: element loads change the bits", T, N, K);
        for (size_t t = 0; t < T && T > 1; t++) {
            uint16_t *one = run_gemv(x + t * ldx, ldx, 0, w, 0, N, K, 1, ldy);
            if (memcmp(one, got + t * N, N * 2))
                fail_msg("gemv N=%zu K=%zu: row %zu alone differs from it among %zu", N, K, t, T);
            free(one);
        }
        printf("gemv T=%zu N=%zu K=%zu ldx=%zu ldy=%zu ok\n", T, N, K, ldx, ldy);
        free(x), free(w), free(ref), free(got), free(wmis), free(xmis);
    }
}

/* Exact sums: integers in [-3, 3] with K <= 2000 sum to at most 18000 < 2^24, exactly, in any
 * order, so the GEMV must give the twin's bits; and non-finite inputs propagate as in the twin. */
static void test_gemv_exact(void **state)
{
    (void)state;
    static const struct { size_t T, N, K; } cases[] = {{4, 37, 1000}, {1, 11, 999}, {3, 5, 2000}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t T = cases[c].T, N = cases[c].N, K = cases[c].K;
        uint16_t *x = malloc(T * K * 2), *w = malloc(N * K * 2);
        for (size_t i = 0; i < T * K; i++)
            x[i] = ld_f32_to_bf16((float)((int)(rng_next() % 7) - 3));
        for (size_t i = 0; i < N * K; i++)
            w[i] = ld_f32_to_bf16((float)((int)(rng_next() % 7) - 3));
        for (int special = 0; special < 2; special++) {
            if (special) { /* an Inf and a NaN in x: Inf, -Inf or NaN as the twin says */
                x[5] = ld_f32_to_bf16(INFINITY);
                x[T * K - 1] = ld_f32_to_bf16(NAN);
            }
            float *ref = gemv_twin(x, K, w, N, K, T);
            uint16_t *got = run_gemv(x, K, 0, w, 0, N, K, T, N);
            check_close_bf16("gemv exact", ref, got, T * N, 0.0, 0.0);
            for (size_t i = 0; i < T * N; i++)
                if (isfinite(ref[i]) && ld_f32_to_bf16(ref[i]) != got[i])
                    fail_msg("gemv exact: element %zu: bits %04x, twin %04x", i, got[i],
                             ld_f32_to_bf16(ref[i]));
            free(ref), free(got);
        }
        printf("gemv exact T=%zu N=%zu K=%zu ok\n", T, N, K);
        free(x), free(w);
    }
}

/* The fused gate/up GEMV with the activation: gate | up bit for bit ld_cuda_gemv's, act bit for bit
 * ld_cuda_silu_mul's over them (both held against their twins above and below), silu and gelu,
 * aligned (16-byte loads) and not. */
static void test_gemv_glu(void **state)
{
    (void)state;
    static const struct { size_t T, I, K, woff; } cases[] = {
        {1, 1, 8, 0}, {1, 19, 64, 0}, {4, 12, 136, 0}, {2, 9, 37, 0}, {3, 10, 64, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t T = cases[c].T, I = cases[c].I, K = cases[c].K, woff = cases[c].woff;
        size_t ldgu = 2 * I + 3, ldact = I + 1; /* views: the padding must stay untouched */
        uint16_t *x = rand_bf16(T * K, 2.0f), *w = rand_bf16(2 * I * K, 1.0f);
        for (int gelu = 0; gelu < 2; gelu++) {
            gbuf gx, gw, ggu, gact, gref, gract;
            ld_bf16 *dx = gbuf_upload(&gx, x, T * K * 2);
            ld_bf16 *dw = gbuf_alloc(&gw, (woff + 2 * I * K) * 2, 0);
            CU(cudaMemcpy(dw + woff, w, 2 * I * K * 2, cudaMemcpyHostToDevice));
            ld_bf16 *dgu = gbuf_alloc(&ggu, T * ldgu * 2, 0x7F);
            ld_bf16 *dact = gbuf_alloc(&gact, T * ldact * 2, 0x7F);
            ld_bf16 *rgu = gbuf_alloc(&gref, T * ldgu * 2, 0x7F);
            ld_bf16 *ract = gbuf_alloc(&gract, T * I * 2, 0x7F);
            LDOK(ld_cuda_gemv_glu(dx, K, dw + woff, I, K, T, dgu, ldgu, gelu, dact, ldact, 0, &E));
            LDOK(ld_cuda_gemv(dx, K, dw + woff, 2 * I, K, T, rgu, ldgu, 0, &E));
            LDOK(ld_cuda_silu_mul(rgu, rgu + I, T, I, ldgu, gelu, ract, 0, &E)); /* packed */
            SYNC();
            uint16_t *a = malloc(T * ldgu * 2), *b = malloc(T * ldgu * 2);
            gbuf_download(&ggu, a);
            gbuf_download(&gref, b);
            if (memcmp(a, b, T * ldgu * 2))
                fail_msg("gemv_glu T=%zu I=%zu K=%zu: gate|up differ from the GEMV's", T, I, K);
            gbuf_download(&gact, a);
            gbuf_download(&gract, b);
            for (size_t t = 0; t < T; t++) {
                if (memcmp(a + t * ldact, b + t * I, I * 2))
                    fail_msg("gemv_glu T=%zu I=%zu K=%zu gelu=%d: act row %zu differs from "
                             "silu_mul's", T, I, K, gelu, t);
                if (a[t * ldact + I] != 0x7F7F)
                    fail_msg("gemv_glu: wrote outside act's view in row %zu", t);
            }
            gbuf_check(&ggu, "gemv_glu gu");
            gbuf_check(&gact, "gemv_glu act");
            gbuf_free(&gx), gbuf_free(&gw), gbuf_free(&ggu), gbuf_free(&gact);
            gbuf_free(&gref), gbuf_free(&gract);
            free(a), free(b);
        }
        printf("gemv_glu T=%zu I=%zu K=%zu woff=%zu (silu and gelu) ok\n", T, I, K, woff);
        free(x), free(w);
    }
}

/* ---- residual add + RMSNorm ------------------------------------------------------------------ */

/* The decode GEMVs that norm their own input (ld_cuda_norm_gemv, ld_cuda_norm_gemv_glu) must give
 * exactly the bits of the two launches they replace: ld_cuda_add_rmsnorm, then ld_cuda_gemv (or
 * ld_cuda_gemv_glu) of its output. h is read, never written; h_out and x_out get what the norm
 * kernel writes into h and x. Every residual variant, widths up to the limit, element loads. */
static void test_norm_gemv(void **state)
{
    (void)state;
    static const struct { size_t K, N, woff; } cases[] = {
        {1, 3, 0}, {31, 5, 0}, {64, 9, 0}, {1000, 17, 0}, {1024, 33, 0}, {4096, 9, 0},
        {64, 10, 1}, {136, 0, 0}};
    /* delta, skip, nan (index K/2 of the residual), mul_var, eps */
    static const struct { bool delta, skip, nan, mul_var; double eps; } vars[] = {
        {false, false, false, false, 1e-6}, {true, false, false, false, 1e-6},
        {true, true, false, false, 1e-6},   {true, false, true, false, 1e-6},
        {false, false, true, false, 1e-6},  {true, false, false, true, 1e-6},
        {true, false, false, false, 0.5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t K = cases[c].K, N = cases[c].N, woff = cases[c].woff;
        uint16_t *h = rand_bf16(K, 4.0f), *d = rand_bf16(K, 1.0f), *nw = rand_bf16(K, 1.5f);
        uint16_t *w = rand_bf16(2 * N * K + 1, 1.0f);
        for (size_t v = 0; v < sizeof vars / sizeof vars[0]; v++) {
            int64_t nan_at = vars[v].nan ? (int64_t)(K / 2) : -1;
            bool update = vars[v].delta || nan_at >= 0;
            for (int glu = 0; glu < 2; glu++) {
                size_t rows = glu ? 2 * N : N, yn = rows ? rows : 1;
                gbuf gh, gd, gnw, gw, ghr, gxr, gyr, gar, gho, gxo, gy, ga;
                ld_bf16 *dh = gbuf_upload(&gh, h, K * 2), *dd = gbuf_upload(&gd, d, K * 2);
                ld_bf16 *dnw = gbuf_upload(&gnw, nw, K * 2);
                ld_bf16 *dw = gbuf_alloc(&gw, (woff + 2 * N * K + 1) * 2, 0);
                CU(cudaMemcpy(dw + woff, w, (2 * N * K + 1) * 2, cudaMemcpyHostToDevice));
                /* the two launches it replaces */
                ld_bf16 *hr = gbuf_upload(&ghr, h, K * 2), *xr = gbuf_alloc(&gxr, K * 2, 0x7F);
                ld_bf16 *yr = gbuf_alloc(&gyr, yn * 2, 0x7F), *ar = gbuf_alloc(&gar, yn * 2, 0x7F);
                LDOK(ld_cuda_add_rmsnorm(hr, vars[v].delta ? dd : NULL, vars[v].skip, nan_at, dnw,
                                         1, K, vars[v].eps, vars[v].mul_var, xr, 0, &E));
                if (glu)
                    LDOK(ld_cuda_gemv_glu(xr, K, dw + woff, N, K, 1, yr, 2 * N, false, ar, N, 0,
                                          &E));
                else
                    LDOK(ld_cuda_gemv(xr, K, dw + woff, N, K, 1, yr, N, 0, &E));
                /* the fused one */
                ld_bf16 *ho = gbuf_alloc(&gho, K * 2, 0x7F), *xo = gbuf_alloc(&gxo, K * 2, 0x7F);
                ld_bf16 *y = gbuf_alloc(&gy, yn * 2, 0x7F), *a = gbuf_alloc(&ga, yn * 2, 0x7F);
                ld_cuda_gemv_norm nm = {.h = dh, .delta = vars[v].delta ? dd : NULL,
                                        .skip_h = vars[v].skip, .nan_at = nan_at, .w = dnw,
                                        .eps = vars[v].eps, .mul_var = vars[v].mul_var,
                                        .h_out = update ? ho : NULL, .x_out = xo};
                if (glu)
                    LDOK(ld_cuda_norm_gemv_glu(&nm, dw + woff, N, K, y, false, a, 0, &E));
                else
                    LDOK(ld_cuda_norm_gemv(&nm, dw + woff, N, K, y, 0, &E));
                SYNC();
                uint16_t *p = malloc(yn * 2 > K * 2 ? yn * 2 : K * 2);
                uint16_t *q = malloc(yn * 2 > K * 2 ? yn * 2 : K * 2);
                const char *what = glu ? "norm_gemv_glu" : "norm_gemv";
                gbuf_download(&gh, p);
                if (memcmp(p, h, K * 2))
                    fail_msg("%s K=%zu variant %zu: h was written", what, K, v);
                gbuf_download(&gho, p);
                gbuf_download(&ghr, q);
                for (size_t i = 0; i < K; i++)
                    if (p[i] != (update ? q[i] : 0x7F7F))
                        fail_msg("%s K=%zu variant %zu: h_out[%zu] %04x, add_rmsnorm's h %04x",
                                 what, K, v, i, p[i], update ? q[i] : 0x7F7F);
                gbuf_download(&gxo, p);
                gbuf_download(&gxr, q);
                if (memcmp(p, q, K * 2))
                    fail_msg("%s K=%zu variant %zu: x_out differs from add_rmsnorm's x", what, K,
                             v);
                gbuf_download(&gy, p);
                gbuf_download(&gyr, q);
                if (memcmp(p, q, yn * 2))
                    fail_msg("%s K=%zu N=%zu variant %zu: y differs from the two launches'", what,
                             K, N, v);
                gbuf_download(&ga, p);
                gbuf_download(&gar, q);
                if (memcmp(p, q, yn * 2))
                    fail_msg("%s K=%zu N=%zu variant %zu: act differs", what, K, N, v);
                gbuf_check(&gho, "norm_gemv h_out");
                gbuf_check(&gxo, "norm_gemv x_out");
                gbuf_check(&gy, "norm_gemv y");
                gbuf_check(&ga, "norm_gemv act");
                gbuf_free(&gh), gbuf_free(&gd), gbuf_free(&gnw), gbuf_free(&gw), gbuf_free(&ghr);
                gbuf_free(&gxr), gbuf_free(&gyr), gbuf_free(&gar), gbuf_free(&gho);
                gbuf_free(&gxo), gbuf_free(&gy), gbuf_free(&ga);
                free(p), free(q);
            }
        }
        printf("norm_gemv K=%zu N=%zu woff=%zu: %zu variants x (gemv, glu) bit-identical\n", K, N,
               woff, sizeof vars / sizeof vars[0]);
        free(h), free(d), free(nw), free(w);
    }
    /* Refused: a row wider than one block norms, h_out overlapping h, a delta with no h_out. */
    gbuf gh, gw, gy;
    ld_bf16 *dh = gbuf_alloc(&gh, 8194 * 2, 0), *dw = gbuf_alloc(&gw, 8194 * 2, 0);
    ld_bf16 *y = gbuf_alloc(&gy, 16, 0);
    ld_cuda_gemv_norm wide = {.h = dh, .nan_at = -1, .w = dw};
    ld_error e2;
    assert_int_not_equal(ld_cuda_norm_gemv(&wide, dw, 1, LD_GEMV_NORM_MAX_K + 1, y, 0, &e2), LD_OK);
    ld_cuda_gemv_norm overlap = {.h = dh, .delta = dh, .nan_at = -1, .w = dw, .h_out = dh + 8};
    assert_int_not_equal(ld_cuda_norm_gemv(&overlap, dw, 1, 64, y, 0, &e2), LD_OK);
    ld_cuda_gemv_norm lost = {.h = dh, .delta = dh, .nan_at = -1, .w = dw};
    assert_int_not_equal(ld_cuda_norm_gemv(&lost, dw, 1, 64, y, 0, &e2), LD_OK);
    SYNC();
    gbuf_free(&gh), gbuf_free(&gw), gbuf_free(&gy);
}

static void test_add_rmsnorm(void **state)
{
    (void)state;
    static const struct { size_t rows, n; } shapes[] = {{1, 1},    {1, 31}, {3, 33},  {2, 64},
                                                        {5, 1000}, {1, 1024}, {2, 4097}};
    /* delta, skip, mul_var, eps, nan (poke the residual), special (NaN / Inf in the input) */
    static const struct { bool delta, skip, mul_var; double eps; bool nan; int special; } vars[] = {
        {false, false, false, 1e-6, false, 0}, {true, false, false, 1e-6, false, 0},
        {true, true, false, 1e-6, false, 0},   {true, false, true, 1e-6, false, 0},
        {true, false, false, 0.5, false, 0},   {true, false, false, 1e-6, true, 0},
        {false, false, false, 1e-6, false, 1}, {true, false, false, 1e-6, false, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (size_t v = 0; v < sizeof vars / sizeof vars[0]; v++) {
            size_t rows = shapes[s].rows, n = shapes[s].n, numel = rows * n;
            uint16_t *h = rand_bf16(numel, 2.0f), *d = rand_bf16(numel, 1.0f);
            uint16_t *w = rand_bf16(n, 1.0f);
            if (vars[v].special == 1)
                h[numel / 2] = ld_f32_to_bf16(NAN); /* that row becomes NaN */
            if (vars[v].special == 2)
                d[numel - 1] = ld_f32_to_bf16(INFINITY); /* last row: Inf in h, NaN in the norm */
            int64_t nan_at = vars[v].nan ? (int64_t)(numel / 2) : -1;

            float *href = widen(h, numel), *dref = widen(d, numel);
            float *ref = malloc(numel * sizeof *ref);
            if (vars[v].delta)
                ld_ref_add(href, dref, numel, vars[v].skip, href, &BF);
            if (nan_at >= 0)
                href[nan_at] = NAN;
            ld_tensor wt = bf16_tensor(w, (int64_t)n, 0);
            ld_ref_rmsnorm(href, &wt, rows, n, vars[v].eps, vars[v].mul_var, ref, &BF);

            gbuf gh, gd, gw, go;
            ld_bf16 *dh = gbuf_upload(&gh, h, numel * 2), *dd = gbuf_upload(&gd, d, numel * 2);
            ld_bf16 *dw = gbuf_upload(&gw, w, n * 2), *dout = gbuf_alloc(&go, numel * 2, 0xFF);
            LDOK(ld_cuda_add_rmsnorm(dh, vars[v].delta ? dd : NULL, vars[v].skip, nan_at, dw, rows,
                                     n, vars[v].eps, vars[v].mul_var, dout, 0, &E));
            SYNC();
            uint16_t *gh_host = malloc(numel * 2), *out = malloc(numel * 2);
            gbuf_download(&gh, gh_host);
            gbuf_download(&go, out);
            gbuf_check(&gh, "add_rmsnorm h");
            gbuf_check(&go, "add_rmsnorm out");
            char what[96];
            snprintf(what, sizeof what, "add_rmsnorm rows=%zu n=%zu variant %zu: h", rows, n, v);
            check_close_bf16(what, href, gh_host, numel, 0.0, 0.0); /* the add is exact */
            snprintf(what, sizeof what, "add_rmsnorm rows=%zu n=%zu variant %zu: out", rows, n, v);
            check_close_bf16(what, ref, out, numel, 1e-6, BF16_RTOL);
            gbuf_free(&gh), gbuf_free(&gd), gbuf_free(&gw), gbuf_free(&go);
            free(h), free(d), free(w), free(href), free(dref), free(ref), free(gh_host), free(out);
        }
        printf("add_rmsnorm rows=%zu n=%zu: %zu variants ok\n", shapes[s].rows, shapes[s].n,
               sizeof vars / sizeof vars[0]);
    }
}

/* ---- q/k norm + RoPE + KV append ------------------------------------------------------------- */

typedef struct qk_case {
    size_t T, Hq, Hkv, D;
    int32_t pos0;
    size_t cap;
} qk_case;

/* The reference path for one of q or k: head norm, nan poke, RoPE, nan poke. */
static void ref_norm_rope(const float *x, const uint16_t *w, size_t T, size_t heads, size_t D,
                          int32_t pos0, const ld_cuda_qk_params *p, int64_t nan_norm,
                          int64_t nan_rope, float *norm, float *rope)
{
    ld_tensor wt = bf16_tensor(w, (int64_t)D, 0);
    ld_ref_head_rmsnorm(x, &wt, T * heads, D, p->eps, p->block, p->skip, norm, &BF);
    if (nan_norm >= 0)
        norm[nan_norm] = NAN;
    LDOK(ld_ref_rope(norm, T, heads, D, pos0, p->theta, p->interleaved, rope, &BF, &E));
    if (nan_rope >= 0)
        rope[nan_rope] = NAN;
}

static void run_qk_case(const qk_case *qc, const ld_cuda_qk_params *p, bool want_intermediates,
                        const char *label)
{
    size_t T = qc->T, Hq = qc->Hq, Hkv = qc->Hkv, D = qc->D, cap = qc->cap;
    size_t W = (Hq + 2 * Hkv) * D, qn_ = T * Hq * D, kn_ = T * Hkv * D, cache_n = Hkv * cap * D;
    uint16_t *qkv = rand_bf16(T * W, 3.0f), *qw = rand_bf16(D, 1.5f), *kw = rand_bf16(D, 1.5f);
    uint16_t *kc0 = rand_bf16(cache_n, 1.0f), *vc0 = rand_bf16(cache_n, 1.0f);

    /* Reference: split qkv into its parts, norm and rotate them, append to a copy of the cache. */
    float *q = malloc(qn_ * 4), *k = malloc(kn_ * 4), *qn = malloc(qn_ * 4), *kn = malloc(kn_ * 4);
    float *qr = malloc(qn_ * 4), *kr = malloc(kn_ * 4);
    float *kc_ref = widen(kc0, cache_n), *vc_ref = widen(vc0, cache_n);
    for (size_t t = 0; t < T; t++) {
        for (size_t i = 0; i < Hq * D; i++)
            q[t * Hq * D + i] = ld_bf16_to_f32(qkv[t * W + i]);
        for (size_t i = 0; i < Hkv * D; i++)
            k[t * Hkv * D + i] = ld_bf16_to_f32(qkv[t * W + Hq * D + i]);
    }
    ref_norm_rope(q, qw, T, Hq, D, qc->pos0, p, p->nan_q_norm, p->nan_q_rope, qn, qr);
    ref_norm_rope(k, kw, T, Hkv, D, qc->pos0, p, p->nan_k_norm, p->nan_k_rope, kn, kr);
    for (size_t t = 0; t < T; t++) {
        int64_t slot = (int64_t)qc->pos0 + (int64_t)t - (p->kv_off_by_one ? 1 : 0);
        if (slot < 0)
            continue;
        for (size_t h = 0; h < Hkv; h++)
            for (size_t i = 0; i < D; i++) {
                size_t c = (h * cap + (size_t)slot) * D + i;
                kc_ref[c] = kr[(t * Hkv + h) * D + i];
                vc_ref[c] = ld_bf16_to_f32(qkv[t * W + (Hq + Hkv + h) * D + i]);
            }
    }

    gbuf g_qkv, g_qw, g_kw, g_pos, g_q, g_kc, g_vc, g_qn, g_kn, g_kr;
    ld_bf16 *d_qkv = gbuf_upload(&g_qkv, qkv, T * W * 2);
    ld_bf16 *d_qw = gbuf_upload(&g_qw, qw, D * 2), *d_kw = gbuf_upload(&g_kw, kw, D * 2);
    int32_t *d_pos = upload_pos0(&g_pos, qc->pos0);
    ld_bf16 *d_q = gbuf_alloc(&g_q, qn_ * 2, 0xFF);
    ld_bf16 *d_kc = gbuf_upload(&g_kc, kc0, cache_n * 2);
    ld_bf16 *d_vc = gbuf_upload(&g_vc, vc0, cache_n * 2);
    ld_bf16 *d_qn = gbuf_alloc(&g_qn, qn_ * 2, 0xFF), *d_kn = gbuf_alloc(&g_kn, kn_ * 2, 0xFF);
    ld_bf16 *d_kr = gbuf_alloc(&g_kr, kn_ * 2, 0xFF);
    LDOK(ld_cuda_qk_norm_rope(d_qkv, T, Hq, Hkv, D, d_qw, d_kw, d_pos, p, d_q, d_kc, d_vc, cap,
                              want_intermediates ? d_qn : NULL, want_intermediates ? d_kn : NULL,
                              want_intermediates ? d_kr : NULL, 0, &E));
    SYNC();
    uint16_t *got_q = malloc(qn_ * 2), *got_kc = malloc(cache_n * 2), *got_vc = malloc(cache_n * 2);
    uint16_t *got_qn = malloc(qn_ * 2), *got_kn = malloc(kn_ * 2), *got_kr = malloc(kn_ * 2);
    gbuf_download(&g_q, got_q);
    gbuf_download(&g_kc, got_kc);
    gbuf_download(&g_vc, got_vc);
    gbuf_download(&g_qn, got_qn);
    gbuf_download(&g_kn, got_kn);
    gbuf_download(&g_kr, got_kr);
    gbuf *outs[] = {&g_q, &g_kc, &g_vc, &g_qn, &g_kn, &g_kr};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++)
        gbuf_check(outs[i], label);

    char what[160];
    /* RoPE mixes two rounded values: when the norm's sum of squares (summed in another order)
     * tips one of them to the neighbouring bf16 value, the output moves by up to one bf16 step of
     * the larger, at most 2^-7 of the largest normalized value; two of them: 2^-6. */
    double maxnorm = 0.0;
    for (size_t i = 0; i < qn_; i++)
        maxnorm = isfinite(qn[i]) ? fmax(maxnorm, fabs((double)qn[i])) : maxnorm;
    for (size_t i = 0; i < kn_; i++)
        maxnorm = isfinite(kn[i]) ? fmax(maxnorm, fabs((double)kn[i])) : maxnorm;
    const double rope_atol = 0x1.0p-6 * maxnorm;
    snprintf(what, sizeof what, "%s: q_rope", label);
    check_close_bf16(what, qr, got_q, qn_, rope_atol, BF16_RTOL);
    snprintf(what, sizeof what, "%s: k cache", label);
    check_close_bf16(what, kc_ref, got_kc, cache_n, rope_atol, BF16_RTOL);
    snprintf(what, sizeof what, "%s: v cache", label);
    check_close_bf16(what, vc_ref, got_vc, cache_n, 0.0, 0.0);
    if (want_intermediates) {
        snprintf(what, sizeof what, "%s: q_norm", label);
        check_close_bf16(what, qn, got_qn, qn_, 1e-6, BF16_RTOL);
        snprintf(what, sizeof what, "%s: k_norm", label);
        check_close_bf16(what, kn, got_kn, kn_, 1e-6, BF16_RTOL);
        snprintf(what, sizeof what, "%s: k_rope", label);
        check_close_bf16(what, kr, got_kr, kn_, rope_atol, BF16_RTOL);
    } else { /* NULL intermediates: nothing written (still all 0xFFFF) */
        for (size_t i = 0; i < qn_; i++)
            if (got_qn[i] != 0xFFFF)
                fail_msg("%s: q_norm written although not wanted", label);
    }
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++)
        gbuf_free(outs[i]);
    gbuf_free(&g_qkv), gbuf_free(&g_qw), gbuf_free(&g_kw), gbuf_free(&g_pos);
    free(qkv), free(qw), free(kw), free(kc0), free(vc0), free(q), free(k), free(qn), free(kn);
    free(qr), free(kr), free(kc_ref), free(vc_ref), free(got_q), free(got_kc), free(got_vc);
    free(got_qn), free(got_kn), free(got_kr);
}

static void test_qk_norm_rope(void **state)
{
    (void)state;
    static const qk_case cases[] = {{1, 1, 1, 2, 0, 1},    {1, 2, 1, 34, 5, 8},
                                    {3, 4, 2, 64, 0, 3},    {7, 4, 4, 128, 0, 9},
                                    {2, 8, 2, 128, 100, 110}, {5, 2, 1, 66, 37, 50},
                                    {1, 16, 8, 128, 4000, 4001}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const qk_case *qc = &cases[c];
        size_t qn_ = qc->T * qc->Hq * qc->D, kn_ = qc->T * qc->Hkv * qc->D;
        ld_cuda_qk_params base = {.eps = 1e-6, .theta = 1e6, .nan_q_norm = -1, .nan_k_norm = -1,
                                  .nan_q_rope = -1, .nan_k_rope = -1};
        ld_cuda_qk_params vars[10];
        const char *names[10];
        size_t nv = 0;
        vars[nv] = base, names[nv++] = "correct";
        vars[nv] = base, vars[nv].block = 16, names[nv++] = "qk_norm_block=16";
        vars[nv] = base, vars[nv].block = 5, names[nv++] = "qk_norm_block=5";
        vars[nv] = base, vars[nv].skip = true, names[nv++] = "qk_norm_skip";
        vars[nv] = base, vars[nv].interleaved = true, names[nv++] = "rope_interleaved";
        vars[nv] = base, vars[nv].theta = 10000.0, names[nv++] = "rope_theta=10000";
        vars[nv] = base, vars[nv].kv_off_by_one = true, names[nv++] = "kv_append_off_by_one";
        vars[nv] = base, vars[nv].eps = 0.25, names[nv++] = "rmsnorm_eps=0.25";
        vars[nv] = base, vars[nv].nan_q_norm = (int64_t)(qn_ / 2),
        vars[nv].nan_k_rope = (int64_t)(kn_ / 2), names[nv++] = "nan=q_norm,k_rope";
        vars[nv] = base, vars[nv].nan_k_norm = (int64_t)(kn_ / 2),
        vars[nv].nan_q_rope = (int64_t)(qn_ - 1), names[nv++] = "nan=k_norm,q_rope";
        for (size_t v = 0; v < nv; v++) {
            char label[160];
            snprintf(label, sizeof label, "qk_norm_rope T=%zu Hq=%zu Hkv=%zu D=%zu pos0=%d %s",
                     qc->T, qc->Hq, qc->Hkv, qc->D, (int)qc->pos0, names[v]);
            run_qk_case(qc, &vars[v], true, label);
            if (v == 0)
                run_qk_case(qc, &vars[v], false, label);
        }
        printf("qk_norm_rope T=%zu Hq=%zu Hkv=%zu D=%zu pos0=%d: %zu variants ok\n", qc->T, qc->Hq,
               qc->Hkv, qc->D, (int)qc->pos0, nv);
    }
}

/* ---- attention ------------------------------------------------------------------------------- */

typedef struct attn_case {
    size_t T, Hq, Hkv, D;
    int32_t pos0;
    size_t cap;
    bool nan_q;       /* element 1 of the middle query's head 0 is NaN */
    size_t cache_off; /* the caches start this many elements into their buffers */
} attn_case;

/* Runs the CUDA attention (split or not) and the twin on the same cache; returns the CUDA output
 * (malloc'd, bf16) so callers can also compare variants with each other. */
static uint16_t *run_attn_case(const attn_case *ac, const ld_cuda_attn_params *ap, bool split,
                               double atol, double rtol, const char *label)
{
    size_t T = ac->T, Hq = ac->Hq, Hkv = ac->Hkv, D = ac->D, cap = ac->cap;
    size_t n_kv = (size_t)ac->pos0 + T, qn_ = T * Hq * D, cache_n = Hkv * cap * D;
    uint16_t *q = rand_bf16(qn_, 2.0f), *kc = rand_bf16(cache_n, 2.0f);
    uint16_t *vc = rand_bf16(cache_n, 1.0f);
    if (ac->nan_q)
        q[(T / 2 * Hq) * D + 1 % D] = ld_f32_to_bf16(NAN);
    /* Slots at or beyond n_kv must never be read: NaN there would show in the output. */
    for (size_t h = 0; h < Hkv; h++)
        for (size_t s = n_kv; s < cap; s++)
            for (size_t i = 0; i < D; i++)
                kc[(h * cap + s) * D + i] = vc[(h * cap + s) * D + i] = ld_f32_to_bf16(NAN);
    float *qf = widen(q, qn_), *kf = widen(kc, cache_n), *vf = widen(vc, cache_n);
    float *ref = malloc(qn_ * sizeof *ref);
    ld_attn_params rp = {.scale = ap->scale, .causal = ap->causal,
                         .gqa = ap->gqa_modulo ? LD_GQA_MOD : LD_GQA_DIV,
                         .softmax_bf16 = ap->softmax_bf16};
    LDOK(ld_ref_attention(qf, kf, vf, cap, T, Hq, Hkv, D, ac->pos0, n_kv, &rp, ref, &BF, &E));

    gbuf g_q, g_k, g_v, g_pos, g_out, g_ml, g_acc;
    size_t off = ac->cache_off;
    ld_bf16 *d_q = gbuf_upload(&g_q, q, qn_ * 2);
    ld_bf16 *d_k = (ld_bf16 *)gbuf_alloc(&g_k, (off + cache_n) * 2, 0) + off;
    ld_bf16 *d_v = (ld_bf16 *)gbuf_alloc(&g_v, (off + cache_n) * 2, 0) + off;
    CU(cudaMemcpy(d_k, kc, cache_n * 2, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(d_v, vc, cache_n * 2, cudaMemcpyHostToDevice));
    int32_t *d_pos = upload_pos0(&g_pos, ac->pos0);
    ld_bf16 *d_out = gbuf_alloc(&g_out, qn_ * 2, 0xFF);
    ld_cuda_attn_split sp = {0};
    ld_cuda_attn_split_size(cap, &sp.n_split, &sp.split_keys);
    sp.ml = gbuf_alloc(&g_ml, T * Hq * sp.n_split * 2 * sizeof(float), 0xFF);
    sp.acc = gbuf_alloc(&g_acc, T * Hq * sp.n_split * D * sizeof(float), 0xFF);
    LDOK(ld_cuda_attention(d_q, d_k, d_v, cap, T, Hq, Hkv, D, d_pos, ap, split ? &sp : NULL, d_out,
                           0, &E));
    SYNC();
    uint16_t *got = malloc(qn_ * 2);
    gbuf_download(&g_out, got);
    gbuf_check(&g_out, label);
    gbuf_check(&g_ml, label);
    gbuf_check(&g_acc, label);
    check_close_bf16(label, ref, got, qn_, atol, rtol);
    gbuf_free(&g_q), gbuf_free(&g_k), gbuf_free(&g_v), gbuf_free(&g_pos), gbuf_free(&g_out);
    gbuf_free(&g_ml), gbuf_free(&g_acc);
    free(q), free(kc), free(vc), free(qf), free(kf), free(vf), free(ref);
    return got;
}

/* The correct kernel and its fault variants (vars[0] correct) for head size D; returns how many. */
#define ATTN_VARIANTS 5
static size_t attn_variants(size_t D, ld_cuda_attn_params *vars, const char **names)
{
    ld_cuda_attn_params base = {.scale = 1.0 / sqrt((double)D), .causal = true};
    size_t nv = 0;
    vars[nv] = base, names[nv++] = "correct";
    vars[nv] = base, vars[nv].causal = false, names[nv++] = "no_causal_mask";
    vars[nv] = base, vars[nv].gqa_modulo = true, names[nv++] = "gqa_modulo";
    vars[nv] = base, vars[nv].scale = 0.3, names[nv++] = "attn_scale=0.3";
    vars[nv] = base, vars[nv].softmax_bf16 = true, names[nv++] = "softmax_bf16";
    return nv;
}

static void test_attention(void **state)
{
    (void)state;
    static const attn_case cases[] = {
        {1, 1, 1, 2, 0, 1, false, 0},       {1, 2, 1, 34, 0, 5, false, 0},
        {1, 4, 2, 64, 200, 300, false, 0},  {5, 4, 4, 128, 0, 5, false, 0},
        {9, 8, 2, 64, 3, 12, false, 0},     {1, 16, 8, 128, 1000, 1030, false, 0},
        {130, 2, 1, 32, 0, 130, false, 0},  {3, 4, 1, 100, 260, 263, false, 0},
        {1, 2, 2, 66, 127, 129, false, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const attn_case *ac = &cases[c];
        ld_cuda_attn_params vars[ATTN_VARIANTS];
        const char *names[ATTN_VARIANTS];
        size_t nv = attn_variants(ac->D, vars, names);
        for (size_t v = 0; v < nv; v++) {
            for (int split = 0; split < 2; split++) {
                char label[160];
                snprintf(label, sizeof label, "attention T=%zu Hq=%zu Hkv=%zu D=%zu pos0=%d %s %s",
                         ac->T, ac->Hq, ac->Hkv, ac->D, (int)ac->pos0, names[v],
                         split ? "split" : "one pass");
                /* Outputs are averages of v values (|v| < 1): fp32 order differences stay far
                 * below 1e-4; the bf16 rounding of the result is the rtol. The softmax_bf16 fault
                 * rounds its running sum where the passes and splits fall, and a bf16 sum of many
                 * terms depends on that order by whole bf16 steps of the sum (4 at 1000 keys):
                 * the twins agree only with at most LD_ATTN_CHUNK keys (one pass, one split);
                 * beyond, only non-finite agreement and the guards are checked. */
                bool any_order = vars[v].softmax_bf16 && ac->pos0 + (int32_t)ac->T > LD_ATTN_CHUNK;
                double atol = any_order ? INFINITY : 1e-4;
                double rtol = any_order ? INFINITY : BF16_RTOL;
                free(run_attn_case(ac, &vars[v], split, atol, rtol, label));
            }
        }
        printf("attention T=%zu Hq=%zu Hkv=%zu D=%zu pos0=%d: %zu variants x 2 paths ok\n",
               ac->T, ac->Hq, ac->Hkv, ac->D, (int)ac->pos0, nv);
    }
}

/* The tiled prefill kernel computes the bits of the one-block-per-query kernel (outputs are bf16,
 * so a different fp32 order shows in a few elements per ten thousand: the cases hold some 400,000
 * of them; swapping two partial sums of the score tree fails here): tiles cut short
 * by T, several passes of LD_ATTN_CHUNK keys (the queries of one tile ending in different passes),
 * a prompt after cached positions (pos0 > 0), every fault variant, a NaN query, and the twin's
 * tolerance on each. Where it cannot run (misaligned caches, other head sizes), TILED is refused
 * and AUTO falls back to one block per query. */
static void test_attention_tiled(void **state)
{
    (void)state;
    static const attn_case cases[] = {
        {16, 2, 1, 32, 0, 16, false, 0},    {17, 4, 2, 64, 0, 20, false, 0},
        {40, 2, 1, 128, 0, 40, false, 0},   {33, 2, 2, 128, 100, 140, true, 0},
        {150, 2, 1, 64, 0, 150, false, 0},  {1, 2, 1, 128, 0, 1, false, 0},
        {20, 4, 1, 32, 300, 330, true, 0},  {5, 1, 1, 128, 127, 132, false, 0},
        {64, 4, 2, 128, 0, 64, false, 0},   {24, 2, 1, 128, 0, 24, false, 1},
        {24, 2, 1, 96, 0, 24, false, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const attn_case *ac = &cases[c];
        bool can_tile = ac->cache_off % 8 == 0 && (ac->D == 32 || ac->D == 64 || ac->D == 128);
        ld_cuda_attn_params vars[ATTN_VARIANTS];
        const char *names[ATTN_VARIANTS];
        size_t nv = attn_variants(ac->D, vars, names);
        for (size_t v = 0; v < nv; v++) {
            char label[160];
            snprintf(label, sizeof label, "attention T=%zu Hq=%zu Hkv=%zu D=%zu pos0=%d%s%s %s",
                     ac->T, ac->Hq, ac->Hkv, ac->D, (int)ac->pos0, ac->nan_q ? " nan_q" : "",
                     ac->cache_off ? " misaligned" : "", names[v]);
            bool any_order = vars[v].softmax_bf16 && ac->pos0 + (int32_t)ac->T > LD_ATTN_CHUNK;
            double atol = any_order ? INFINITY : 1e-4, rtol = any_order ? INFINITY : BF16_RTOL;
            uint64_t seed = rng_state;
            ld_cuda_attn_params one = vars[v], tiled = vars[v];
            one.kernel = LD_ATTN_KERNEL_PER_QUERY;
            tiled.kernel = can_tile ? LD_ATTN_KERNEL_TILED : LD_ATTN_KERNEL_AUTO;
            uint16_t *a = run_attn_case(ac, &one, false, atol, rtol, label);
            rng_state = seed; /* the same inputs */
            uint16_t *b = run_attn_case(ac, &tiled, false, atol, rtol, label);
            size_t n = ac->T * ac->Hq * ac->D;
            for (size_t i = 0; i < n; i++)
                if (a[i] != b[i])
                    fail_msg("%s: tiled 0x%04x, one block per query 0x%04x at element %zu", label,
                             b[i], a[i], i);
            free(a), free(b);
        }
        if (!can_tile) {
            /* TILED itself is refused, before any launch. */
            ld_cuda_attn_params tiled = vars[0];
            tiled.kernel = LD_ATTN_KERNEL_TILED;
            gbuf g_c, g_o, g_p;
            size_t cn = ac->Hkv * ac->cap * ac->D + ac->cache_off;
            ld_bf16 *d_c = (ld_bf16 *)gbuf_alloc(&g_c, cn * 2, 0) + ac->cache_off;
            ld_bf16 *d_o = gbuf_alloc(&g_o, ac->T * ac->Hq * ac->D * 2, 0xFF);
            int32_t *d_p = upload_pos0(&g_p, ac->pos0);
            ld_error e = {0};
            ld_status st = ld_cuda_attention(d_c, d_c, d_c, ac->cap, ac->T, ac->Hq, ac->Hkv, ac->D,
                                             d_p, &tiled, NULL, d_o, 0, &e);
            if (st != LD_E_UNSUPPORTED)
                fail_msg("TILED on D=%zu, cache offset %zu: status %d (%s), want unsupported",
                         ac->D, ac->cache_off, (int)st, e.msg);
            printf("refused: %s\n", e.msg);
            SYNC();
            gbuf_free(&g_c), gbuf_free(&g_o), gbuf_free(&g_p);
        }
        printf("attention T=%zu Hq=%zu Hkv=%zu D=%zu pos0=%d: tiled %s one block per query in %zu "
               "variants\n",
               ac->T, ac->Hq, ac->Hkv, ac->D, (int)ac->pos0,
               can_tile ? "==" : "(refused; AUTO falls back) ==", nv);
    }
}

/* The softmax_bf16 fault must really change the result where a bf16 running sum loses bits:
 * many keys of similar score. */
static void test_attention_softmax_bf16_differs(void **state)
{
    (void)state;
    attn_case ac = {1, 1, 1, 64, 399, 400, false, 0};
    ld_cuda_attn_params good = {.scale = 0.001, .causal = true};
    ld_cuda_attn_params bad = good;
    bad.softmax_bf16 = true;
    uint64_t seed = rng_state;
    uint16_t *a = run_attn_case(&ac, &good, false, 1e-4, BF16_RTOL, "attention (correct)");
    rng_state = seed; /* the same inputs */
    uint16_t *b = run_attn_case(&ac, &bad, false, 0x1.0p-4, 0x1.0p-4, "attention (softmax_bf16)");
    /* 400 exponentials near 0.99: from 256 on, bf16 steps are 2 apart and adding one rounds back
     * down, so the sum stalls near 256 instead of ~395 and every weight is a third too large. */
    double d2 = 0.0, r2 = 0.0;
    for (size_t i = 0; i < ac.D; i++) {
        double ra = (double)ld_bf16_to_f32(a[i]), rb = (double)ld_bf16_to_f32(b[i]);
        d2 += (ra - rb) * (ra - rb);
        r2 += ra * ra;
    }
    double rel = sqrt(d2 / r2);
    if (!(rel > 0.1))
        fail_msg("softmax_bf16 changes the output by a relative %g only", rel);
    printf("softmax_bf16 moves the output by a relative %g\n", rel);
    free(a), free(b);
}

/* ---- SiLU·mul -------------------------------------------------------------------------------- */

static void test_silu_mul(void **state)
{
    (void)state;
    static const struct { size_t rows, cols; } cases[] = {{1, 1}, {3, 691}, {2, 1000}, {1, 3072},
                                                          {17, 33}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int gelu = 0; gelu < 2; gelu++) {
            size_t rows = cases[c].rows, cols = cases[c].cols, ld = 2 * cols, n = rows * cols;
            uint16_t *gu = rand_bf16(rows * ld, 6.0f);
            /* Special values in the gate half: silu(-inf) is NaN (-inf / inf), silu(+inf) = +inf,
             * large magnitudes saturate. */
            static const float specials[] = {NAN, INFINITY, -INFINITY, 100.0f, -100.0f, 0.0f};
            for (size_t i = 0; i < sizeof specials / sizeof specials[0] && i < cols; i++)
                gu[(rows - 1) * ld + i] = ld_f32_to_bf16(specials[i]);
            float *g = malloc(n * 4), *u = malloc(n * 4), *ref = malloc(n * 4);
            for (size_t r = 0; r < rows; r++)
                for (size_t i = 0; i < cols; i++) {
                    g[r * cols + i] = ld_bf16_to_f32(gu[r * ld + i]);
                    u[r * cols + i] = ld_bf16_to_f32(gu[r * ld + cols + i]);
                }
            ld_ref_silu_mul(g, u, n, gelu != 0, ref, &BF);
            gbuf g_in, g_out;
            ld_bf16 *d_gu = gbuf_upload(&g_in, gu, rows * ld * 2);
            ld_bf16 *d_out = gbuf_alloc(&g_out, n * 2, 0xFF);
            LDOK(ld_cuda_silu_mul(d_gu, d_gu + cols, rows, cols, ld, gelu != 0, d_out, 0, &E));
            SYNC();
            uint16_t *got = malloc(n * 2);
            gbuf_download(&g_out, got);
            gbuf_check(&g_out, "silu_mul out");
            char what[96];
            snprintf(what, sizeof what, "%s rows=%zu cols=%zu", gelu ? "gelu_mul" : "silu_mul",
                     rows, cols);
            check_close_bf16(what, ref, got, n, 1e-6, BF16_RTOL);
            gbuf_free(&g_in), gbuf_free(&g_out);
            free(gu), free(g), free(u), free(ref), free(got);
        }
        printf("silu_mul rows=%zu cols=%zu (silu and gelu) ok\n", cases[c].rows, cases[c].cols);
    }
}

/* ---- argmax ---------------------------------------------------------------------------------- */

static void check_argmax(const uint16_t *x, size_t n, const char *what)
{
    float *xf = widen(x, n);
    int32_t expect = ld_ref_argmax(xf, n), got = -7;
    gbuf gx, go;
    ld_bf16 *dx = gbuf_upload(&gx, x, n * 2);
    int32_t *dout = gbuf_alloc(&go, sizeof(int32_t), 0x55);
    gbuf gp; /* the first pass's pairs, NaN until written */
    ld_cuda_argmax_part *dparts =
        gbuf_alloc(&gp, ld_cuda_argmax_parts(n) * sizeof(ld_cuda_argmax_part), 0xFF);
    LDOK(ld_cuda_argmax(dx, n, dparts, dout, 0, &E));
    SYNC();
    gbuf_download(&go, &got);
    gbuf_check(&go, what);
    gbuf_check(&gp, "argmax parts");
    if (got != expect)
        fail_msg("argmax %s (n=%zu): got %d, expected %d", what, n, (int)got, (int)expect);
    gbuf_free(&gx), gbuf_free(&go), gbuf_free(&gp);
    free(xf);
}

static void test_argmax(void **state)
{
    (void)state;
    /* One slice (up to 2048 values), several, a short last slice, the most slices (1024) with
     * longer ones beyond 1024·2048 values. */
    static const size_t sizes[] = {1, 5, 1000, 1025, 2048, 2049, 10243, 151936, 2097152 + 4099};
    /* The pass count follows n alone, within its bounds. */
    assert_int_equal(ld_cuda_argmax_parts(0), 1);
    assert_int_equal(ld_cuda_argmax_parts(2048), 1);
    assert_int_equal(ld_cuda_argmax_parts(2049), 2);
    assert_int_equal(ld_cuda_argmax_parts(151936), 75);
    assert_int_equal(ld_cuda_argmax_parts((size_t)1 << 30), LD_CUDA_ARGMAX_MAX_PARTS);
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        size_t n = sizes[c];
        uint16_t *x = rand_bf16(n, 10.0f);
        check_argmax(x, n, "random");
        if (n > 3 * 2048) {
            /* Equal maxima in three slices: the lowest index wins over any merge order; then a
             * first slice with nothing finite. */
            x[n - 1] = x[2049] = x[n / 2] = ld_f32_to_bf16(60.0f);
            check_argmax(x, n, "tie across slices");
            size_t parts = ld_cuda_argmax_parts(n), slice = (n + parts - 1) / parts;
            for (size_t i = 0; i < slice; i++)
                x[i] = ld_f32_to_bf16(i % 2 ? NAN : INFINITY);
            check_argmax(x, n, "a slice without a finite value");
        }
        if (n >= 5) {
            /* Ties: the same maximum at two places, the lower index wins. */
            x[n / 2] = x[n - 1] = ld_f32_to_bf16(50.0f);
            check_argmax(x, n, "tie");
            /* Non-finite values never win. */
            x[1] = ld_f32_to_bf16(INFINITY);
            x[2] = ld_f32_to_bf16(NAN);
            x[n - 2] = ld_f32_to_bf16(INFINITY);
            check_argmax(x, n, "with inf and nan");
            /* -0 and +0 as the maximum: equal values, lower index. */
            for (size_t i = 0; i < n; i++)
                x[i] = ld_f32_to_bf16(-1.0f);
            x[3] = 0x8000; /* -0 */
            x[n - 1] = 0x0000;
            check_argmax(x, n, "signed zeros");
        }
        /* No finite value at all: -1. */
        for (size_t i = 0; i < n; i++)
            x[i] = ld_f32_to_bf16(i % 2 ? NAN : -INFINITY);
        check_argmax(x, n, "none finite");
        printf("argmax n=%zu ok\n", n);
        free(x);
    }
}

/* ---- nan poke -------------------------------------------------------------------------------- */

static void test_poke_nan(void **state)
{
    (void)state;
    size_t rows = 3, width = 10, ld = 25, n = rows * ld;
    uint16_t *x = rand_bf16(n, 1.0f), *got = malloc(n * 2);
    gbuf g;
    ld_bf16 *d = gbuf_upload(&g, x, n * 2);
    int64_t flat = (int64_t)(rows * width / 2); /* element 15 of the [3,10] view: row 1, col 5 */
    LDOK(ld_cuda_poke_nan(d, width, ld, flat, 0, &E));
    LDOK(ld_cuda_poke_nan(d, width, ld, -1, 0, &E)); /* -1: nothing */
    SYNC();
    gbuf_download(&g, got);
    gbuf_check(&g, "poke");
    for (size_t i = 0; i < n; i++) {
        bool should = i == 1 * ld + 5;
        if (should != isnan(ld_bf16_to_f32(got[i])) || (!should && got[i] != x[i]))
            fail_msg("poke_nan: element %zu is %g", i, (double)ld_bf16_to_f32(got[i]));
    }
    gbuf_free(&g);
    free(x), free(got);
}

/* ---- programmatic dependent launch ----------------------------------------------------------- */

/* The buffers of a small decode step (and of a prefill tile) for test_pdl_waits, filled with
 * random values once. */
enum { P_H = 256, P_N = 96, P_I = 80, P_HQ = 4, P_HKV = 2, P_D = 64, P_CAP = 300, P_TQ = 40,
       P_V = 50, P_LOGITS = 5000 };

typedef struct pdl_ctx {
    ld_bf16 *table, *h, *delta, *normw, *hout, *x, *w, *y, *gu, *act, *logits;
    ld_bf16 *qkv, *qnw, *knw, *q, *kc, *vc, *attn, *qt, *attnt;
    int32_t *ids, *pos, *pos_t, *amax;
    ld_cuda_attn_split sp;
    ld_cuda_argmax_part *parts;
    void *bufs[32];
    size_t n_bufs;
} pdl_ctx;

static void *pdl_alloc(pdl_ctx *c, size_t bytes)
{
    void *d;
    CU(cudaMalloc(&d, bytes));
    assert_true(c->n_bufs < sizeof c->bufs / sizeof c->bufs[0]);
    c->bufs[c->n_bufs++] = d;
    return d;
}

static ld_bf16 *pdl_rand(pdl_ctx *c, size_t n)
{
    uint16_t *hst = rand_bf16(n, 1.0f);
    ld_bf16 *d = pdl_alloc(c, n * 2);
    CU(cudaMemcpy(d, hst, n * 2, cudaMemcpyHostToDevice));
    free(hst);
    return d;
}

static int32_t *pdl_ints(pdl_ctx *c, const int32_t *v, size_t n)
{
    int32_t *d = pdl_alloc(c, n * sizeof *v);
    CU(cudaMemcpy(d, v, n * sizeof *v, cudaMemcpyHostToDevice));
    return d;
}

static ld_cuda_gemv_norm pdl_norm(const pdl_ctx *c)
{
    return (ld_cuda_gemv_norm){.h = c->h, .delta = c->delta, .nan_at = -1, .w = c->normw,
                               .eps = 1e-6, .h_out = c->hout};
}

static ld_status pdl_embed(pdl_ctx *c, cudaStream_t s)
{
    return ld_cuda_embed(c->table, P_V, P_H, c->ids, 3, c->x, s, &E);
}
static ld_status pdl_add_rmsnorm(pdl_ctx *c, cudaStream_t s)
{
    return ld_cuda_add_rmsnorm(c->h, c->delta, false, -1, c->normw, 1, P_H, 1e-6, false, c->x, s,
                               &E);
}
static ld_status pdl_norm_gemv(pdl_ctx *c, cudaStream_t s)
{
    ld_cuda_gemv_norm nm = pdl_norm(c);
    return ld_cuda_norm_gemv(&nm, c->w, P_N, P_H, c->y, s, &E);
}
static ld_status pdl_norm_gemv_glu(pdl_ctx *c, cudaStream_t s)
{
    ld_cuda_gemv_norm nm = pdl_norm(c);
    return ld_cuda_norm_gemv_glu(&nm, c->w, P_I, P_H, c->gu, false, c->act, s, &E);
}
static ld_status pdl_gemv(pdl_ctx *c, cudaStream_t s)
{
    return ld_cuda_gemv(c->x, P_H, c->w, P_N, P_H, 1, c->y, P_N, s, &E);
}
static ld_status pdl_gemv_glu(pdl_ctx *c, cudaStream_t s)
{
    return ld_cuda_gemv_glu(c->x, P_H, c->w, P_I, P_H, 1, c->gu, 2 * P_I, false, c->act, P_I, s,
                            &E);
}
static ld_status pdl_qk_norm_rope(pdl_ctx *c, cudaStream_t s)
{
    ld_cuda_qk_params p = {.eps = 1e-6, .theta = 1e6, .nan_q_norm = -1, .nan_k_norm = -1,
                           .nan_q_rope = -1, .nan_k_rope = -1};
    return ld_cuda_qk_norm_rope(c->qkv, 1, P_HQ, P_HKV, P_D, c->qnw, c->knw, c->pos, &p, c->q,
                                c->kc, c->vc, P_CAP, NULL, NULL, NULL, s, &E);
}
static ld_status pdl_attention(pdl_ctx *c, cudaStream_t s)
{
    ld_cuda_attn_params ap = {.scale = 0.125, .causal = true};
    return ld_cuda_attention(c->q, c->kc, c->vc, P_CAP, 1, P_HQ, P_HKV, P_D, c->pos, &ap, &c->sp,
                             c->attn, s, &E);
}
static ld_status pdl_attention_tiled(pdl_ctx *c, cudaStream_t s)
{
    ld_cuda_attn_params ap = {.scale = 0.125, .causal = true, .kernel = LD_ATTN_KERNEL_TILED};
    return ld_cuda_attention(c->qt, c->kc, c->vc, P_CAP, P_TQ, P_HQ, P_HKV, P_D, c->pos_t, &ap,
                             NULL, c->attnt, s, &E);
}
static ld_status pdl_silu_mul(pdl_ctx *c, cudaStream_t s)
{
    return ld_cuda_silu_mul(c->gu, c->gu + P_I, 1, P_I, 2 * P_I, false, c->act, s, &E);
}
static ld_status pdl_argmax(pdl_ctx *c, cudaStream_t s)
{
    return ld_cuda_argmax(c->logits, P_LOGITS, c->parts, c->amax, s, &E);
}

/* One launcher of a kernel (or of its two kernels): the input made late and the output checked. */
typedef struct pdl_case {
    const char *name;
    ld_status (*call)(pdl_ctx *, cudaStream_t);
    size_t in_off, in_bytes;   /* offsetof the input pointer in pdl_ctx, its size */
    size_t out_off, out_bytes; /* the same for the output */
} pdl_case;

#define PDL_PTR(c, off) (*(void **)((char *)(c) + (off)))

/* Every kernel the forward pass launches programmatically must wait (ld_grid_wait) before it
 * reads what the kernel before it wrote. Each launcher here runs behind ld_cuda_late_copy, which
 * lets the next kernel start at once and writes that kernel's input only 300 us later: with
 * programmatic launches on (sm_90), a kernel that read its input before waiting would compute
 * from the stale bytes (all 0xFF: NaN, or index -1) and its output would differ from the one
 * computed from the real input with plain launches. The input is checked to matter: the stale
 * bytes alone give another output. */
static void test_pdl_waits(void **state)
{
    (void)state;
    pdl_ctx c = {0};
    c.table = pdl_rand(&c, (size_t)P_V * P_H);
    c.h = pdl_rand(&c, P_H), c.delta = pdl_rand(&c, P_H), c.normw = pdl_rand(&c, P_H);
    c.hout = pdl_rand(&c, P_H), c.x = pdl_rand(&c, 3 * P_H);
    c.w = pdl_rand(&c, (size_t)2 * P_I * P_H > (size_t)P_N * P_H ? (size_t)2 * P_I * P_H
                                                                  : (size_t)P_N * P_H);
    c.y = pdl_rand(&c, P_N), c.gu = pdl_rand(&c, 2 * P_I), c.act = pdl_rand(&c, P_I);
    c.logits = pdl_rand(&c, P_LOGITS);
    c.qkv = pdl_rand(&c, (P_HQ + 2 * P_HKV) * P_D);
    c.qnw = pdl_rand(&c, P_D), c.knw = pdl_rand(&c, P_D);
    c.q = pdl_rand(&c, P_HQ * P_D), c.attn = pdl_rand(&c, P_HQ * P_D);
    c.kc = pdl_rand(&c, (size_t)P_HKV * P_CAP * P_D);
    c.vc = pdl_rand(&c, (size_t)P_HKV * P_CAP * P_D);
    c.qt = pdl_rand(&c, (size_t)P_TQ * P_HQ * P_D);
    c.attnt = pdl_rand(&c, (size_t)P_TQ * P_HQ * P_D);
    int32_t ids[3] = {7, 0, P_V - 1}, pos = 200, pos_t = 100, zero = 0;
    c.ids = pdl_ints(&c, ids, 3), c.pos = pdl_ints(&c, &pos, 1), c.pos_t = pdl_ints(&c, &pos_t, 1);
    c.amax = pdl_ints(&c, &zero, 1);
    ld_cuda_attn_split_size(P_CAP, &c.sp.n_split, &c.sp.split_keys);
    assert_true(c.sp.n_split > 1); /* the combine kernel runs too */
    c.sp.ml = pdl_alloc(&c, P_HQ * c.sp.n_split * 2 * sizeof(float));
    c.sp.acc = pdl_alloc(&c, P_HQ * c.sp.n_split * P_D * sizeof(float));
    c.parts = pdl_alloc(&c, ld_cuda_argmax_parts(P_LOGITS) * sizeof(ld_cuda_argmax_part));
    assert_true(ld_cuda_argmax_parts(P_LOGITS) > 1);

#define PDL_CASE(name, fn, in, in_n, out, out_n)                                                  \
    {name, fn, offsetof(pdl_ctx, in), in_n, offsetof(pdl_ctx, out), out_n}
    static const pdl_case cases[] = {
        PDL_CASE("embed", pdl_embed, ids, 3 * 4, x, 3 * P_H * 2),
        PDL_CASE("add_rmsnorm", pdl_add_rmsnorm, h, P_H * 2, x, P_H * 2),
        PDL_CASE("norm_gemv", pdl_norm_gemv, h, P_H * 2, y, P_N * 2),
        PDL_CASE("norm_gemv_glu", pdl_norm_gemv_glu, delta, P_H * 2, act, P_I * 2),
        PDL_CASE("gemv", pdl_gemv, x, P_H * 2, y, P_N * 2),
        PDL_CASE("gemv_glu", pdl_gemv_glu, x, P_H * 2, act, P_I * 2),
        PDL_CASE("qk_norm_rope", pdl_qk_norm_rope, qkv, (P_HQ + 2 * P_HKV) * P_D * 2, q,
                 P_HQ * P_D * 2),
        PDL_CASE("attention (split + combine)", pdl_attention, q, P_HQ * P_D * 2, attn,
                 P_HQ * P_D * 2),
        PDL_CASE("attention (tiled)", pdl_attention_tiled, qt, P_TQ * P_HQ * P_D * 2, attnt,
                 P_TQ * P_HQ * P_D * 2),
        PDL_CASE("silu_mul", pdl_silu_mul, gu, 2 * P_I * 2, act, P_I * 2),
        PDL_CASE("argmax", pdl_argmax, logits, P_LOGITS * 2, amax, 4),
    };
#undef PDL_CASE
    cudaStream_t s;
    CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    void *src = pdl_alloc(&c, (size_t)P_TQ * P_HQ * P_D * 2 + P_LOGITS * 2);
    size_t most = (size_t)P_TQ * P_HQ * P_D * 2; /* the largest output */
    unsigned char *want = malloc(most), *got = malloc(most);
    bool on = false;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const pdl_case *pc = &cases[k];
        void *in = PDL_PTR(&c, pc->in_off), *out = PDL_PTR(&c, pc->out_off);
        CU(cudaMemcpy(src, in, pc->in_bytes, cudaMemcpyDeviceToDevice));
        /* s does not wait for the legacy stream, and a copy from device to device, like one from
         * pageable memory (the uploads above), may still be under way when cudaMemcpy returns. */
        CU(cudaDeviceSynchronize());
        /* The output from the real input, plain launches. */
        ld_cuda_set_pdl(false);
        LDOK(pc->call(&c, s));
        CU(cudaStreamSynchronize(s));
        CU(cudaMemcpy(want, out, pc->out_bytes, cudaMemcpyDeviceToHost));
        /* The input matters: from the stale bytes alone, another output. */
        CU(cudaMemset(in, 0xFF, pc->in_bytes));
        CU(cudaDeviceSynchronize());
        LDOK(pc->call(&c, s));
        CU(cudaStreamSynchronize(s));
        CU(cudaMemcpy(got, out, pc->out_bytes, cudaMemcpyDeviceToHost));
        if (!memcmp(want, got, pc->out_bytes))
            fail_msg("pdl %s: the output does not depend on the input the test delays", pc->name);
        /* The real input landing late, behind a programmatic launch. */
        CU(cudaMemset(out, 0xFF, pc->out_bytes));
        CU(cudaDeviceSynchronize());
        on = ld_cuda_set_pdl(true);
        LDOK(ld_cuda_late_copy(in, src, pc->in_bytes, 300, s, &E));
        LDOK(pc->call(&c, s));
        ld_cuda_set_pdl(false);
        CU(cudaStreamSynchronize(s));
        CU(cudaMemcpy(got, out, pc->out_bytes, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < pc->out_bytes; i++)
            if (want[i] != got[i])
                fail_msg("pdl %s: output byte %zu is 0x%02x, 0x%02x with the input in time: the "
                         "kernel read its input before the kernel writing it had finished",
                         pc->name, i, got[i], want[i]);
    }
    printf("pdl: %zu launchers wait for their input (programmatic launch %s)\n",
           sizeof cases / sizeof cases[0],
           on ? "on" : "NOT available here: plain launches, so this checked only the outputs");
    CU(cudaStreamDestroy(s));
    for (size_t i = 0; i < c.n_bufs; i++)
        cudaFree(c.bufs[i]);
    free(want), free(got);
}

int main(void)
{
    skip_without_gpu("test_cuda_kernels");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_gemv),
        cmocka_unit_test(test_gemv_exact),
        cmocka_unit_test(test_gemv_glu),
        cmocka_unit_test(test_add_rmsnorm),
        cmocka_unit_test(test_norm_gemv),
        cmocka_unit_test(test_qk_norm_rope),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_tiled),
        cmocka_unit_test(test_attention_softmax_bf16_differs),
        cmocka_unit_test(test_silu_mul),
        cmocka_unit_test(test_argmax),
        cmocka_unit_test(test_poke_nan),
        cmocka_unit_test(test_pdl_waits),
    };
    if (getenv("LD_TEST_FILTER")) /* e.g. LD_TEST_FILTER='test_attention*' under the emulation */
        cmocka_set_test_filter(getenv("LD_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}

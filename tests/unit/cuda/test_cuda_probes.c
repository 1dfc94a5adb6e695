/* test_cuda_probes.c — the device-side probe helper (layerdiff/probes_cuda.h) against the host
 * library: statistics reduced on the device against ld_stats_compute (f32, bf16, f16; NaN and Inf;
 * strided views), and the asynchronous prober against what a reader finds in the file (keys in
 * emission order, only wanted keys, payloads packed in the logical shape, many probes and large
 * payloads that force the queue to wait and the pinned arena to grow). Needs a GPU: exits 77. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <unistd.h>

#include <cmocka.h>

#include "cuda_test_util.h"

#include "layerdiff/probes.h"
#include "layerdiff/probes_cuda.h"

/* Host data of a given dtype: n values, a few of them NaN / Inf when special. */
static void *make_data(ld_dtype dt, size_t n, bool special)
{
    size_t es = ld_dtype_size(dt);
    unsigned char *b = malloc((n ? n : 1) * es);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        float v = 3.0f * rng_uniform() + 0.5f;
        if (special && i % 97 == 5)
            v = NAN;
        if (special && i % 89 == 7)
            v = (i % 2) ? INFINITY : -INFINITY;
        if (dt == LD_F32) {
            memcpy(b + 4 * i, &v, 4);
        } else {
            uint16_t h = dt == LD_BF16 ? ld_f32_to_bf16(v) : ld_f32_to_f16(v);
            memcpy(b + 2 * i, &h, 2);
        }
    }
    return b;
}

static void expect_stats(const char *what, const ld_stats *ref, const ld_stats *got)
{
    if (got->nan != ref->nan || got->inf != ref->inf)
        fail_msg("%s: nan/inf %llu/%llu, expected %llu/%llu", what, (unsigned long long)got->nan,
                 (unsigned long long)got->inf, (unsigned long long)ref->nan,
                 (unsigned long long)ref->inf);
    const double r[6] = {ref->min, ref->max, ref->mean, ref->std, ref->l2, ref->absmax};
    const double g[6] = {got->min, got->max, got->mean, got->std, got->l2, got->absmax};
    static const char *names[6] = {"min", "max", "mean", "std", "l2", "absmax"};
    for (int i = 0; i < 6; i++) {
        if (isnan(r[i]) || isnan(g[i])) {
            if (isnan(r[i]) != isnan(g[i]))
                fail_msg("%s: %s is %g, expected %g", what, names[i], g[i], r[i]);
            continue;
        }
        /* min/max/absmax are elements: exact. Sums in double in another order: ~1e-12. */
        double tol = i < 2 || i == 5 ? 0.0 : 1e-11 * (fabs(r[i]) + fabs(ref->absmax));
        if (!(fabs(g[i] - r[i]) <= tol))
            fail_msg("%s: %s is %.17g, expected %.17g", what, names[i], g[i], r[i]);
    }
}

static void test_tensor_stats(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 15, 16, 17, 1000, 65537, ((size_t)1 << 20) + 3};
    static const ld_dtype dts[] = {LD_F32, LD_BF16, LD_F16};
    for (size_t d = 0; d < 3; d++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            for (int special = 0; special < 2; special++) {
                ld_dtype dt = dts[d];
                size_t n = sizes[s], es = ld_dtype_size(dt);
                void *h = make_data(dt, n, special != 0);
                ld_stats ref, got;
                ld_stats_compute(h, dt, n, &ref);
                gbuf g;
                void *dptr = gbuf_upload(&g, h, n * es);
                ld_cuda_tensor t = {.data = dptr, .dtype = dt, .ndim = 1};
                t.shape[0] = (int64_t)n;
                double head[LD_HEAD_COUNT];
                LDOK(ld_cuda_tensor_stats(&t, 0, &got, head, &E));
                char what[96];
                snprintf(what, sizeof what, "stats %s n=%zu%s", ld_dtype_name(dt), n,
                         special ? " with NaN/Inf" : "");
                expect_stats(what, &ref, &got);
                for (size_t i = 0; i < LD_HEAD_COUNT && i < n; i++) {
                    double hv = (double)ld_load_f32(h, dt, i);
                    if (!(hv == head[i] || (isnan(hv) && isnan(head[i]))))
                        fail_msg("%s: head[%zu] = %g, expected %g", what, i, head[i], hv);
                }
                gbuf_free(&g);
                free(h);
            }
        }
        printf("device stats match ld_stats_compute for %s\n", ld_dtype_name(dts[d]));
    }
    /* Nothing finite: min..absmax NaN, counts right. */
    float allnan[5] = {NAN, NAN, INFINITY, NAN, -INFINITY};
    gbuf g;
    ld_cuda_tensor t = {.data = gbuf_upload(&g, allnan, sizeof allnan), .dtype = LD_F32, .ndim = 1};
    t.shape[0] = 5;
    ld_stats ref, got;
    double head[LD_HEAD_COUNT];
    ld_stats_compute(allnan, LD_F32, 5, &ref);
    LDOK(ld_cuda_tensor_stats(&t, 0, &got, head, &E));
    expect_stats("stats of no finite value", &ref, &got);
    gbuf_free(&g);
}

/* A strided view [rows, Hq, D] inside wider rows: the statistics and head are those of the
 * packed logical tensor. */
static void test_strided_view_stats(void **state)
{
    (void)state;
    size_t rows = 7, heads = 3, D = 10, ld = 55, n = rows * ld, cols = heads * D;
    uint16_t *wide = rand_bf16(n, 2.0f), *packed = malloc(rows * cols * 2);
    for (size_t r = 0; r < rows; r++)
        memcpy(packed + r * cols, wide + r * ld + 5, cols * 2);
    ld_stats ref, got;
    ld_stats_compute(packed, LD_BF16, rows * cols, &ref);
    gbuf g;
    ld_bf16 *d = gbuf_upload(&g, wide, n * 2);
    ld_cuda_tensor t = {.data = d + 5, .dtype = LD_BF16, .ndim = 3, .row_stride = ld};
    t.shape[0] = (int64_t)rows, t.shape[1] = (int64_t)heads, t.shape[2] = (int64_t)D;
    double head[LD_HEAD_COUNT];
    LDOK(ld_cuda_tensor_stats(&t, 0, &got, head, &E));
    expect_stats("strided view", &ref, &got);
    for (size_t i = 0; i < LD_HEAD_COUNT; i++)
        if (head[i] != (double)ld_bf16_to_f32(packed[i]))
            fail_msg("strided view: head[%zu] = %g, expected %g", i, head[i],
                     (double)ld_bf16_to_f32(packed[i]));
    /* A row stride below the row length is refused. */
    t.row_stride = cols - 1;
    assert_int_equal(ld_cuda_tensor_stats(&t, 0, &got, head, &E), LD_E_USAGE);
    gbuf_free(&g);
    free(wide), free(packed);
}

/* ---- the prober and the sink ----------------------------------------------------------------- */

typedef struct emitted {
    char tag[32];
    int step, layer;
    ld_dtype dtype;
    size_t rows, cols;  /* logical [rows, cols] */
    void *packed;       /* host copy of the logical data */
    ld_stats stats;
    bool wanted;
} emitted;

static ld_sink *open_sink(const char *path, ld_payload payload, const char *tags)
{
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = payload;
    cfg.tags = tags;
    ld_run_info info = {.implementation = "test_cuda_probes"};
    ld_sink *s = NULL;
    LDOK(ld_sink_open(&s, path, &cfg, &info, &E));
    return s;
}

/* Emits n tensors (some strided, one large), then checks the file record by record. */
static void prober_round_trip(ld_payload payload, size_t n, size_t big_elems)
{
    char path[] = "/tmp/ld_cuda_probe_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    ld_sink *sink = open_sink(path, payload, "t*,big");
    cudaStream_t stream;
    CU(cudaStreamCreate(&stream));
    ld_cuda_probe *p;
    LDOK(ld_cuda_probe_create(&p, sink, stream, &E));

    emitted *em = calloc(n + 1, sizeof *em);
    gbuf *bufs = calloc(n + 1, sizeof *bufs);
    for (size_t i = 0; i <= n; i++) {
        emitted *e = &em[i];
        bool big = i == n;
        e->dtype = big ? LD_F32 : (i % 3 == 0 ? LD_F32 : (i % 3 == 1 ? LD_BF16 : LD_F16));
        e->rows = big ? 1 : 1 + i % 5;
        e->cols = big ? big_elems : 1 + (i * 7) % 40;
        size_t ld = e->cols + (i % 4 == 0 ? 3 : 0), es = ld_dtype_size(e->dtype);
        snprintf(e->tag, sizeof e->tag, "%s%zu", big ? "big" : (i % 5 == 4 ? "u" : "t"), i);
        if (big)
            snprintf(e->tag, sizeof e->tag, "big");
        e->wanted = e->tag[0] != 'u';
        e->step = (int)(i / 50);
        e->layer = (int)(i % 50);
        unsigned char *wide = make_data(e->dtype, e->rows * ld, i % 7 == 3);
        e->packed = malloc(e->rows * e->cols * es);
        for (size_t r = 0; r < e->rows; r++)
            memcpy((unsigned char *)e->packed + r * e->cols * es, wide + r * ld * es, e->cols * es);
        ld_stats_compute(e->packed, e->dtype, e->rows * e->cols, &e->stats);
        void *d = gbuf_upload(&bufs[i], wide, e->rows * ld * es);
        ld_cuda_tensor t = {.data = d, .dtype = e->dtype, .ndim = 2, .row_stride = ld};
        t.shape[0] = (int64_t)e->rows, t.shape[1] = (int64_t)e->cols;
        LDOK(ld_cuda_probe_emit(p, e->step, e->layer, e->tag, (int64_t)i, &t, &E));
        /* The engine may overwrite its buffer right away (same stream): the probe must have
         * captured the values enqueued before. */
        CU(cudaMemsetAsync(d, 0xFF, e->rows * ld * es, stream));
        free(wide);
    }
    LDOK(ld_cuda_probe_flush(p, &E));
    assert_int_equal(ld_cuda_probe_pending(p), 0);
    ld_cuda_probe_destroy(p);
    LDOK(ld_sink_close(sink, NULL, &E));

    ld_reader *r;
    LDOK(ld_reader_open(&r, path, NULL, &E));
    size_t next = 0, seen = 0;
    for (;;) {
        const ld_probe *pr;
        LDOK(ld_reader_next(r, &pr, &E));
        if (!pr)
            break;
        while (next <= n && !em[next].wanted)
            next++;
        if (next > n)
            fail_msg("record %s beyond the wanted ones", pr->tag);
        const emitted *e = &em[next];
        if (strcmp(pr->tag, e->tag) || pr->step != e->step || pr->layer != e->layer ||
            pr->pos0 != (int64_t)next)
            fail_msg("record %zu is %s (step %d layer %d), expected %s (step %d layer %d)", seen,
                     pr->tag, pr->step, pr->layer, e->tag, e->step, e->layer);
        if (pr->dtype != e->dtype || pr->ndim != 2 || pr->shape[0] != (int64_t)e->rows ||
            pr->shape[1] != (int64_t)e->cols)
            fail_msg("%s: dtype or shape differs", e->tag);
        expect_stats(e->tag, &e->stats, &pr->stats);
        if (payload == LD_PAYLOAD_FULL) {
            if (!pr->has_data || pr->data_bytes != e->rows * e->cols * ld_dtype_size(e->dtype) ||
                memcmp(pr->data, e->packed, pr->data_bytes))
                fail_msg("%s: payload differs from the packed logical tensor", e->tag);
        } else if (pr->has_data) {
            fail_msg("%s: a stats-only sink wrote data", e->tag);
        }
        next++, seen++;
    }
    size_t wanted = 0;
    for (size_t i = 0; i <= n; i++)
        wanted += em[i].wanted;
    assert_int_equal(seen, wanted);
    ld_reader_close(r);
    printf("prober: %zu of %zu probes written in order (%s payload, largest %zu elements)\n", seen,
           n + 1, payload == LD_PAYLOAD_FULL ? "full" : "stats", big_elems);
    for (size_t i = 0; i <= n; i++) {
        gbuf_free(&bufs[i]);
        free(em[i].packed);
    }
    free(em), free(bufs);
    CU(cudaStreamDestroy(stream));
    unlink(path);
}

static void test_prober_full(void **state)
{
    (void)state;
    /* 600 probes: more than the ring's 256 slots. The last is 5M floats (20 MB): more than the
     * arena's first 16 MiB. */
    prober_round_trip(LD_PAYLOAD_FULL, 600, (size_t)5 << 20);
}

static void test_prober_stats(void **state)
{
    (void)state;
    prober_round_trip(LD_PAYLOAD_STATS, 300, 1000);
}

/* Probes off: a NULL sink (or a NULL prober) makes emit a no-op that touches nothing. */
static void test_prober_off(void **state)
{
    (void)state;
    ld_cuda_probe *p;
    LDOK(ld_cuda_probe_create(&p, NULL, 0, &E));
    ld_cuda_tensor t = {.data = NULL, .dtype = LD_BF16, .ndim = 1};
    t.shape[0] = 4;
    /* A NULL data pointer would be refused if anything looked at the tensor. */
    LDOK(ld_cuda_probe_emit(p, 0, 0, "q_norm", 0, &t, &E));
    LDOK(ld_cuda_probe_emit(NULL, 0, 0, "q_norm", 0, &t, &E));
    assert_int_equal(ld_cuda_probe_pending(p), 0);
    LDOK(ld_cuda_probe_flush(p, &E));
    ld_cuda_probe_destroy(p);
    ld_cuda_probe_destroy(NULL);
}

int main(void)
{
    skip_without_gpu("test_cuda_probes");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_stats),
        cmocka_unit_test(test_strided_view_stats),
        cmocka_unit_test(test_prober_full),
        cmocka_unit_test(test_prober_stats),
        cmocka_unit_test(test_prober_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

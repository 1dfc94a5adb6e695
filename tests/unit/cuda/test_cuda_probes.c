/* test_cuda_probes.c — the device-side probe helper (layerdiff/probes_cuda.h) against the host
 * library: statistics reduced on the device against hand-computed values and ld_stats_compute
 * (f32, bf16, f16; NaN and Inf; one block, many blocks, more parts than one merge chunk; strided
 * views), bit for bit the same run to run and slot to slot of the ring, and the asynchronous
 * prober against what a reader finds in the file (keys in emission order, only wanted keys,
 * payloads packed in the logical shape, more probes than the ring's slots and large payloads that
 * force the queue to wait and the pinned arena to grow), and after a sticky device error (last:
 * the context is dead afterwards). Needs a GPU: exits 77. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <unistd.h>

#include <cmocka.h>

#include "cuda_test_util.h"

#include "layerdiff/probes.h"
#include "layerdiff/probes_cuda.h"
#include "poke.cuh"

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
    /* One block up to 1024 elements; 1025 is two (a merge of parts); 262145 is 257 blocks (more
     * parts than one merge chunk of 256); 2^20+3 is the grid's cap of 1024 blocks. */
    static const size_t sizes[] = {1,    15,   16,    17,     1000,   1023,
                                   1024, 1025, 65537, 262145, ((size_t)1 << 20) + 3};
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

/* Hand-computed: the finite values {1, 2, 3, 4, -2}: mean 8/5, squared deviations 0.36, 0.16,
 * 1.96, 5.76, 12.96 (sum 21.2, population variance 4.24), sum of squares 34; one NaN, one Inf. */
static void test_stats_by_hand(void **state)
{
    (void)state;
    float v[7] = {1.0f, 2.0f, NAN, 3.0f, INFINITY, 4.0f, -2.0f};
    gbuf g;
    ld_cuda_tensor t = {.data = gbuf_upload(&g, v, sizeof v), .dtype = LD_F32, .ndim = 1};
    t.shape[0] = 7;
    ld_stats got;
    double head[LD_HEAD_COUNT];
    LDOK(ld_cuda_tensor_stats(&t, 0, &got, head, &E));
    assert_int_equal(got.nan, 1);
    assert_int_equal(got.inf, 1);
    assert_true(got.min == -2.0 && got.max == 4.0 && got.absmax == 4.0);
    const double want[3] = {1.6, sqrt(4.24), sqrt(34.0)}, have[3] = {got.mean, got.std, got.l2};
    for (int i = 0; i < 3; i++)
        if (!(fabs(have[i] - want[i]) <= 1e-15 * want[i]))
            fail_msg("by hand: statistic %d is %.17g, expected %.17g", i, have[i], want[i]);
    for (int i = 0; i < 7; i++)
        if (!(head[i] == (double)v[i] || (isnan(head[i]) && isnan(v[i]))))
            fail_msg("by hand: head[%d] = %g, expected %g", i, head[i], (double)v[i]);
    gbuf_free(&g);
}

/* Many blocks and not one finite value: every part is empty, the merge must stay empty. */
static void test_stats_all_nan_blocks(void **state)
{
    (void)state;
    size_t n = 3 * 4096 + 5;
    uint16_t *h = malloc(n * 2);
    assert_non_null(h);
    for (size_t i = 0; i < n; i++)
        h[i] = i % 11 == 3 ? ld_f32_to_bf16(-INFINITY) : ld_f32_to_bf16(NAN);
    ld_stats ref, got;
    ld_stats_compute(h, LD_BF16, n, &ref);
    gbuf g;
    ld_cuda_tensor t = {.data = gbuf_upload(&g, h, n * 2), .dtype = LD_BF16, .ndim = 1};
    t.shape[0] = (int64_t)n;
    LDOK(ld_cuda_tensor_stats(&t, 0, &got, NULL, &E));
    expect_stats("all NaN/Inf, 13 blocks", &ref, &got);
    assert_true(isnan(got.mean) && isnan(got.min));
    gbuf_free(&g);
    free(h);
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

/* The same tensor gives the same bits: twice through ld_cuda_tensor_stats, and through the
 * prober in the ring's first slot and again after the ring has wrapped around (1100 probes:
 * more than its slots), with a different probe before each. */
static void test_stats_reproducible(void **state)
{
    (void)state;
    size_t n = 262145; /* 257 blocks: two merge chunks */
    void *h = make_data(LD_BF16, n, true);
    gbuf g, small;
    ld_cuda_tensor t = {.data = gbuf_upload(&g, h, n * 2), .dtype = LD_BF16, .ndim = 1};
    t.shape[0] = (int64_t)n;
    ld_stats a, b, ref;
    LDOK(ld_cuda_tensor_stats(&t, 0, &a, NULL, &E));
    LDOK(ld_cuda_tensor_stats(&t, 0, &b, NULL, &E));
    ld_stats_compute(h, LD_BF16, n, &ref);
    expect_stats("reproducible", &ref, &a);
    if (memcmp(&a, &b, sizeof a))
        fail_msg("two reductions of the same tensor differ in their bits");

    char path[] = "/tmp/ld_cuda_probe_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    ld_sink *sink = open_sink(path, LD_PAYLOAD_STATS, "*");
    ld_cuda_probe *p;
    LDOK(ld_cuda_probe_create(&p, sink, 0, &E));
    void *hs = make_data(LD_F32, 37, false);
    ld_cuda_tensor ts = {.data = gbuf_upload(&small, hs, 37 * 4), .dtype = LD_F32, .ndim = 1};
    ts.shape[0] = 37;
    const size_t total = 1100, again = 1090;
    for (size_t i = 0; i < total; i++) {
        bool big = i == 1 || i == again;
        LDOK(ld_cuda_probe_emit(p, (int)(i / 100), (int)(i % 100), big ? "big" : "small",
                                (int64_t)i, big ? &t : &ts, &E));
    }
    LDOK(ld_cuda_probe_flush(p, &E));
    ld_cuda_probe_destroy(p);
    LDOK(ld_sink_close(sink, NULL, &E));
    ld_reader *r;
    LDOK(ld_reader_open(&r, path, NULL, &E));
    size_t seen = 0, bigs = 0;
    for (const ld_probe *pr;; seen++) {
        LDOK(ld_reader_next(r, &pr, &E));
        if (!pr)
            break;
        if (pr->pos0 != (int64_t)seen)
            fail_msg("record %zu has pos0 %lld", seen, (long long)pr->pos0);
        if (strcmp(pr->tag, "big"))
            continue;
        bigs++;
        /* Through the text of the file: the writer prints doubles with 17 digits. */
        if (memcmp(&pr->stats, &a, sizeof a))
            fail_msg("the prober's statistics (record %zu) differ from the direct reduction's "
                     "in their bits (mean %.17g vs %.17g)",
                     seen, pr->stats.mean, a.mean);
    }
    assert_int_equal(seen, total);
    assert_int_equal(bigs, 2);
    ld_reader_close(r);
    unlink(path);
    gbuf_free(&g), gbuf_free(&small);
    free(h), free(hs);
}

static void test_prober_full(void **state)
{
    (void)state;
    /* 1400 probes, 1121 of them wanted: more than the ring's 1024 slots. The last is 5M floats
     * (20 MB): more than the arena's first 16 MiB. */
    prober_round_trip(LD_PAYLOAD_FULL, 1400, (size_t)5 << 20);
}

static void test_prober_stats(void **state)
{
    (void)state;
    /* A ring of 3 slots: emits wait for the oldest slot again and again. */
    setenv("LAYERDIFF_CUDA_PROBE_SLOTS", "3", 1);
    prober_round_trip(LD_PAYLOAD_STATS, 1100, 5000);
    unsetenv("LAYERDIFF_CUDA_PROBE_SLOTS");
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
    /* The ring's size (a testing aid) is checked. */
    static const char *bad[] = {"0", "-3", "65537", "12x", "x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("LAYERDIFF_CUDA_PROBE_SLOTS", bad[i], 1);
        assert_int_equal(ld_cuda_probe_create(&p, NULL, 0, &E), LD_E_USAGE);
        assert_null(p);
        assert_non_null(strstr(E.msg, "LAYERDIFF_CUDA_PROBE_SLOTS"));
    }
    unsetenv("LAYERDIFF_CUDA_PROBE_SLOTS");
}

/* A sticky device error: the probes enqueued before it are written, in order and intact, even
 * those whose records were still pending when the error surfaced; nothing after it is; the error
 * is reported. Runs last: the context is unusable afterwards. */
static void test_prober_sticky_error(void **state)
{
    (void)state;
    if (getenv("LD_UNDER_SANITIZER")) { /* set by tests/e2e/cuda/sanitize.sh */
        printf("skipped under compute-sanitizer %s: the deliberate illegal write would be "
               "reported as an error (test_cuda_probes runs it without the sanitizer)\n",
               getenv("LD_UNDER_SANITIZER"));
        skip();
    }
    char path[] = "/tmp/ld_cuda_probe_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    ld_sink *sink = open_sink(path, LD_PAYLOAD_FULL, "*");
    cudaStream_t stream;
    CU(cudaStreamCreate(&stream));
    ld_cuda_probe *p;
    LDOK(ld_cuda_probe_create(&p, sink, stream, &E));
    enum { N = 20, LEN = 300 };
    uint16_t *h[N];
    gbuf g[N];
    for (int i = 0; i < N; i++) {
        h[i] = rand_bf16(LEN, 4.0f);
        ld_cuda_tensor t = {.data = gbuf_upload(&g[i], h[i], LEN * 2), .dtype = LD_BF16, .ndim = 1};
        t.shape[0] = LEN;
        LDOK(ld_cuda_probe_emit(p, 0, i, "before", 0, &t, &E));
    }
    LDOK(ld_cuda_trap(stream, &E));
    ld_cuda_tensor t = {.data = g[0].base + GUARD_BYTES, .dtype = LD_BF16, .ndim = 1};
    t.shape[0] = LEN;
    ld_status st = ld_cuda_probe_emit(p, 1, 0, "after", 0, &t, &E); /* may see the error or not */
    assert_true(st == LD_OK || st == LD_E_DEVICE);
    if (st == LD_OK)
        st = ld_cuda_probe_flush(p, &E);
    assert_int_equal(st, LD_E_DEVICE);
    printf("sticky error reported: %s\n", E.msg);
    assert_string_equal(ld_sink_last_key(sink), "S0.L19.before");
    ld_cuda_probe_destroy(p);
    ld_run_end end = {.ok = false, .message = "sticky"};
    LDOK(ld_sink_close(sink, &end, &E));

    ld_reader *r;
    LDOK(ld_reader_open(&r, path, NULL, &E));
    int seen = 0;
    for (const ld_probe *pr;; seen++) {
        LDOK(ld_reader_next(r, &pr, &E));
        if (!pr)
            break;
        if (seen >= N || strcmp(pr->tag, "before") || pr->layer != seen)
            fail_msg("record %d is %s of layer %d", seen, pr->tag, pr->layer);
        if (!pr->has_data || pr->data_bytes != LEN * 2 || memcmp(pr->data, h[seen], LEN * 2))
            fail_msg("record %d: payload differs", seen);
    }
    assert_int_equal(seen, N);
    ld_reader_close(r);
    unlink(path);
    for (int i = 0; i < N; i++) {
        gbuf_free(&g[i]);
        free(h[i]);
    }
    (void)cudaStreamDestroy(stream);
}

int main(void)
{
    skip_without_gpu("test_cuda_probes");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_by_hand),
        cmocka_unit_test(test_tensor_stats),
        cmocka_unit_test(test_stats_all_nan_blocks),
        cmocka_unit_test(test_strided_view_stats),
        cmocka_unit_test(test_stats_reproducible),
        cmocka_unit_test(test_prober_full),
        cmocka_unit_test(test_prober_stats),
        cmocka_unit_test(test_prober_off),
        cmocka_unit_test(test_prober_sticky_error), /* last: the context is dead afterwards */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* probe_test_util.h — helpers shared by the probe library tests: temporary files, whole-file
 * reading, and a small reference stream. Header-only (static functions), test code only. */
#ifndef LD_PROBE_TEST_UTIL_H
#define LD_PROBE_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "layerdiff/probes.h"

/* A fresh temporary directory for this test process; removed by tu_cleanup(). */
static char tu_dir[256];

static inline const char *tu_tmpdir(void)
{
    if (!tu_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tu_dir, sizeof tu_dir, "%s/ld_probes_test_XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tu_dir)) {
            fprintf(stderr, "cannot create a temporary directory\n");
            abort();
        }
    }
    return tu_dir;
}

static inline const char *tu_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tu_tmpdir(), name);
    return buf;
}

static inline void tu_cleanup(void)
{
    if (!tu_dir[0])
        return;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tu_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tu_dir);
    tu_dir[0] = '\0';
}

/* Line ends of a JSONL text: ends[i] is the offset just past the '\n' of line i. Returns how
 * many (at most max). */
static inline size_t tu_line_ends(const char *text, size_t len, size_t *ends, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n < max; i++)
        if (text[i] == '\n')
            ends[n++] = i + 1;
    return n;
}

/* A cmocka group teardown that removes the temporary directory. */
static inline int tu_teardown(void **state)
{
    (void)state;
    tu_cleanup();
    return 0;
}

/* Whole file into a malloc'd buffer (NUL-terminated); *len its size. */
static inline char *tu_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    p[n] = '\0';
    *len = (size_t)n;
    return p;
}

static inline void tu_spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Asserts that status is LD_OK, showing the message otherwise. */
#define TU_OK(call, err)                                                                           \
    do {                                                                                           \
        ld_status tu_st_ = (call);                                                                 \
        if (tu_st_ != LD_OK)                                                                       \
            fail_msg("%s failed: %s (%s)", #call, (err)->msg, ld_status_name(tu_st_));             \
    } while (0)

/* Asserts code and that the message contains needle. */
#define TU_FAILS(call, err, code, needle)                                                          \
    do {                                                                                           \
        ld_status tu_st_ = (call);                                                                 \
        if (tu_st_ != (code))                                                                      \
            fail_msg("%s gave %s, expected %s; message: %s", #call, ld_status_name(tu_st_),       \
                     ld_status_name(code), (err)->msg);                                            \
        if (!strstr((err)->msg, (needle)))                                                         \
            fail_msg("%s: message '%s' lacks '%s'", #call, (err)->msg, (needle));                  \
    } while (0)

static const int32_t tu_tokens[3] = {9707, 11, 1879};

static inline ld_run_info tu_run(void)
{
    ld_run_info run = {.implementation = "test",
                       .backend_json = "{\"device\":\"cpu\",\"accumulation\":\"f64\"}",
                       .model_json = "{\"architecture\":\"Qwen3ForCausalLM\",\"fingerprint\":\"fp1\"}",
                       .tokens = tu_tokens,
                       .n_tokens = 3,
                       .decode_steps = 1};
    return run;
}

/* Writes a small complete stream at path: embed, L0.attn_norm, L0.q_proj, final_norm, logits at
 * step 0, then L0.attn_norm at step 1 (payload and encoding from cfg). Returns the probe count. */
static inline int tu_write_sample(const char *path, const ld_sink_config *cfg)
{
    ld_error err;
    ld_sink *s;
    ld_run_info run = tu_run();
    TU_OK(ld_sink_open(&s, path, cfg, &run, &err), &err);
    float x[3 * 8];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i * 0.25f - 2.0f;
    int64_t th[2] = {3, 8}, tq[3] = {3, 2, 4}, t1[2] = {1, 8};
    TU_OK(ld_sink_emit(s, 0, LD_NO_LAYER, "embed", 0, LD_F32, th, 2, x, &err), &err);
    TU_OK(ld_sink_emit(s, 0, 0, "attn_norm", 0, LD_F32, th, 2, x, &err), &err);
    TU_OK(ld_sink_emit(s, 0, 0, "q_proj", 0, LD_F32, tq, 3, x, &err), &err);
    TU_OK(ld_sink_emit(s, 0, LD_NO_LAYER, "final_norm", 0, LD_F32, th, 2, x, &err), &err);
    TU_OK(ld_sink_emit(s, 0, LD_NO_LAYER, "logits", 0, LD_F32, th, 2, x, &err), &err);
    TU_OK(ld_sink_emit(s, 1, 0, "attn_norm", 3, LD_F32, t1, 2, x + 8, &err), &err);
    int32_t am[2] = {5, 7}, dec[1] = {5};
    ld_run_end end = {.ok = true, .tokens = am, .n_tokens = 2, .decoded = dec, .n_decoded = 1};
    TU_OK(ld_sink_close(s, &end, &err), &err);
    return 6;
}

/* The sample stream with full payloads in encoding enc, written to path and read back whole. */
static inline char *tu_full_sample(const char *path, ld_encoding enc, size_t *len)
{
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = LD_PAYLOAD_FULL;
    cfg.encoding = enc;
    tu_write_sample(path, &cfg);
    return tu_slurp(path, len);
}

/* Reads a whole stream; returns the final status, *n the probes read. */
static inline ld_status tu_read_all(ld_reader *r, uint64_t *n, ld_error *err)
{
    const ld_probe *p;
    *n = 0;
    for (;;) {
        ld_status st = ld_reader_next(r, &p, err);
        if (st != LD_OK)
            return st;
        if (!p)
            return LD_OK;
        (*n)++;
    }
}

/* ---- whole and streamed reads, side by side ------------------------------------------------- */

/* What reading a stream gave: the final status and message, the probes read completely (fields,
 * and payloads when they were read), and the last key. Two reads of the same text must give the
 * same outcome whether payloads come whole or in pieces. */
typedef struct tu_outcome {
    ld_status st;
    char msg[LD_ERROR_MSG_MAX];
    uint64_t probes;        /* probes read completely */
    uint64_t streamed;      /* of which streamed */
    uint64_t fields;        /* digest of their fields (crc32 excepted) */
    uint64_t data;          /* digest of their payload bytes and crc32 (not in skip mode) */
    char last_key[160];
} tu_outcome;

static inline uint64_t tu_fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static inline uint64_t tu_probe_fields(uint64_t h, const ld_probe *p)
{
    h = tu_fnv(h, &p->index, sizeof p->index);
    h = tu_fnv(h, &p->step, sizeof p->step);
    h = tu_fnv(h, &p->layer, sizeof p->layer);
    h = tu_fnv(h, p->tag, strlen(p->tag));
    h = tu_fnv(h, &p->pos0, sizeof p->pos0);
    h = tu_fnv(h, &p->dtype, sizeof p->dtype);
    h = tu_fnv(h, p->shape, (size_t)p->ndim * sizeof p->shape[0]);
    h = tu_fnv(h, &p->numel, sizeof p->numel);
    h = tu_fnv(h, &p->stats, sizeof p->stats);
    h = tu_fnv(h, p->head, (size_t)p->n_head * sizeof p->head[0]);
    h = tu_fnv(h, &p->has_data, sizeof p->has_data);
    h = tu_fnv(h, &p->line, sizeof p->line);
    if (p->has_data) {
        h = tu_fnv(h, &p->encoding, sizeof p->encoding);
        h = tu_fnv(h, &p->data_dtype, sizeof p->data_dtype);
    }
    return h;
}

/* Read modes of tu_read_mode. */
#define TU_WHOLE 0                /* payloads decoded whole, as without stream_data */
#define TU_SKIP ((size_t)-1)      /* stream_data, payloads skipped with ld_reader_skip_data */
#define TU_LEAVE ((size_t)-2)     /* stream_data, payloads left to ld_reader_next to check (the
                                     probes counted are not comparable then) */

/* Reads path (a file, plain or gzip), else text (plain JSON lines), with opt's max_line and
 * decode_data: whole (TU_WHOLE), or with stream_data reading every payload through
 * ld_reader_read_data in pieces of chunk bytes, or skipping payloads (TU_SKIP, TU_LEAVE). */
static inline tu_outcome tu_read_source(const char *path, const char *text, size_t len,
                                        const ld_reader_options *opt, size_t chunk)
{
    tu_outcome o;
    memset(&o, 0, sizeof o);
    ld_reader_options ro;
    ld_reader_options_init(&ro);
    if (opt)
        ro = *opt;
    ro.stream_data = chunk != TU_WHOLE;
    ld_reader *r = NULL;
    ld_error err = {LD_OK, ""};
    o.fields = o.data = 0xcbf29ce484222325ULL;
    o.st = path ? ld_reader_open(&r, path, &ro, &err)
                : ld_reader_open_mem(&r, "mem", text, len, &ro, &err);
    bool reading = chunk != TU_SKIP && chunk != TU_LEAVE;
    size_t cap = reading ? chunk : 0;
    unsigned char *buf = NULL;
    while (o.st == LD_OK) {
        const ld_probe *p;
        o.st = ld_reader_next(r, &p, &err);
        if (o.st != LD_OK || !p)
            break;
        o.streamed += p->streaming;
        uint64_t fields = tu_probe_fields(o.fields, p);
        if (chunk == TU_SKIP && (o.st = ld_reader_skip_data(r, &err)) != LD_OK)
            break;
        if (p->has_data && ro.decode_data && reading) {
            size_t step = chunk == TU_WHOLE ? (p->data_bytes ? p->data_bytes : 1) : chunk;
            if (step > cap || !buf) {
                free(buf);
                buf = malloc(step);
                cap = step;
                assert_non_null(buf);
            }
            size_t total = 0, got;
            uint64_t data = o.data; /* counts only once the whole payload passed */
            do {
                o.st = ld_reader_read_data(r, buf, step, &got, &err);
                if (o.st != LD_OK)
                    break;
                data = tu_fnv(data, buf, got);
                total += got;
            } while (got);
            if (o.st != LD_OK)
                break;
            assert_int_equal(total, p->data_bytes);
            o.data = tu_fnv(data, &p->crc32, sizeof p->crc32);
        }
        o.probes++;
        o.fields = fields;
    }
    snprintf(o.msg, sizeof o.msg, "%s", o.st == LD_OK ? "" : err.msg);
    if (r)
        snprintf(o.last_key, sizeof o.last_key, "%s", ld_reader_last_key(r));
    ld_reader_close(r);
    free(buf);
    return o;
}

static inline tu_outcome tu_read_mode(const char *text, size_t len, const ld_reader_options *opt,
                                      size_t chunk)
{
    return tu_read_source(NULL, text, len, opt, chunk);
}

/* Whether tu_same_both_ways reads each case in fewer ways (for tests of many cases). */
static bool tu_light;

/* Fails unless the streamed reads of text (several piece sizes, and skipping) give what the whole
 * read gives; returns the whole read's outcome. */
static inline tu_outcome tu_same_both_ways_src(const char *what, const char *path,
                                               const char *text, size_t len,
                                               const ld_reader_options *opt)
{
    /* byte by byte costs a call per byte: kept to small streams, and to a few sizes when
     * tu_light (many cases) */
    static const size_t small[] = {1, 3, 4096, (size_t)1 << 20, TU_SKIP, TU_LEAVE};
    static const size_t light[] = {1, 4096, TU_SKIP};
    static const size_t large[] = {7, 4096, 65537, (size_t)1 << 20, TU_SKIP, TU_LEAVE};
    const size_t *chunks = tu_light ? light : len + (path ? 65536 : 0) < 65536 ? small : large;
    size_t nchunks = tu_light ? 3 : 6;
    tu_outcome w = tu_read_source(path, text, len, opt, TU_WHOLE);
    for (size_t i = 0; i < nchunks; i++) {
        tu_outcome s = tu_read_source(path, text, len, opt, chunks[i]);
        bool reading = chunks[i] != TU_SKIP && chunks[i] != TU_LEAVE;
        bool same_data = !reading || s.data == w.data;
        bool same_probes = chunks[i] == TU_LEAVE || (s.probes == w.probes && s.fields == w.fields);
        if (s.st != w.st || strcmp(s.msg, w.msg) != 0 || !same_probes || !same_data ||
            strcmp(s.last_key, w.last_key) != 0)
            fail_msg("%s: read in pieces of %zu: %s '%s' (%llu probes, last %s%s%s), read whole: "
                     "%s '%s' (%llu probes, last %s)", what, chunks[i], ld_status_name(s.st),
                     s.msg, (unsigned long long)s.probes, s.last_key,
                     s.fields != w.fields ? ", fields differ" : "",
                     same_data ? "" : ", data differ", ld_status_name(w.st), w.msg,
                     (unsigned long long)w.probes, w.last_key);
    }
    return w;
}

static inline tu_outcome tu_same_both_ways(const char *what, const char *text, size_t len,
                                           const ld_reader_options *opt)
{
    return tu_same_both_ways_src(what, NULL, text, len, opt);
}

#endif

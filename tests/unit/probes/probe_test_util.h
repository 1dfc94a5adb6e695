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

#endif

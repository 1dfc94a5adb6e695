/* ld_probe_sample.c — a helper program for the script tests (schema, inspect, extract), not a test
 * itself. 'ld_probe_sample --tags' prints the C tag table ("name per_layer", in order);
 * 'ld_probe_sample DIR' writes streams covering every record kind, dtype, encoding and corner the
 * writer has: stats-only, full payloads, NaN/Inf, custom tags, precomputed stats, an empty tensor,
 * a narrowed run (the header's filter), an error end record and a cut-short stream.
 * 'ld_probe_sample --restat IN OUT' writes every probe of IN that carries data again through
 * ld_sink_emit (stats recomputed), full base64 payloads: the Python writer's statistics are held
 * to the C ones this way. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layerdiff/probes.h"

static int fail(const ld_error *err)
{
    fprintf(stderr, "ld_probe_sample: %s\n", err->msg);
    return 1;
}

#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((call) != LD_OK)                                                                       \
            return fail(&err);                                                                     \
    } while (0)

/* x[i] = (i - 7) / 4 in dtype t, with a NaN, +Inf and -Inf when nonfinite is set. */
static void fill(void *p, ld_dtype t, size_t n, int nonfinite)
{
    for (size_t i = 0; i < n; i++) {
        float v = ((float)i - 7.0f) / 4.0f;
        if (nonfinite && i == 2)
            v = NAN;
        if (nonfinite && i == 3)
            v = INFINITY;
        if (nonfinite && i == 5)
            v = -INFINITY;
        if (t == LD_F32) {
            memcpy((char *)p + 4 * i, &v, 4);
        } else {
            uint16_t h = t == LD_BF16 ? ld_f32_to_bf16(v) : ld_f32_to_f16(v);
            memcpy((char *)p + 2 * i, &h, 2);
        }
    }
}

static int write_stream(const char *path, ld_payload payload, ld_encoding enc, int variant)
{
    ld_error err;
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = payload;
    cfg.encoding = enc;
    if (variant == 3) { /* a narrowed run: the header's "filter" */
        cfg.tags = "attn_norm,q_*";
        cfg.layers = "0-1";
        cfg.steps = "0";
    }
    static const int32_t toks[4] = {9707, 11, 1879, 0};
    static const char *const faults[1] = {"rope_theta=5000"};
    ld_run_info run = {.implementation = "sample",
                       .backend_json = "{\"device\":\"cpu\",\"compute\":\"f32\",\"accumulation\":\"f64\"}",
                       .model_json = "{\"architecture\":\"Qwen3ForCausalLM\",\"hidden_size\":8,"
                                     "\"fingerprint\":\"0123abcd\"}",
                       .tokens = toks,
                       .n_tokens = 4,
                       .decode_steps = 1,
                       .faults = variant == 1 ? faults : NULL,
                       .n_faults = variant == 1 ? 1 : 0};
    ld_sink *s;
    TRY(ld_sink_open(&s, path, &cfg, &run, &err));
    unsigned char buf[4 * 2 * 4 * 8];
    static const ld_dtype dts[3] = {LD_F32, LD_BF16, LD_F16};
    int64_t th[2] = {4, 8}, tq[3] = {4, 2, 4}, tv[2] = {4, 16}, t1[2] = {1, 8}, empty[2] = {0, 8};
    fill(buf, LD_F32, 32, 0);
    TRY(ld_sink_emit(s, 0, LD_NO_LAYER, "embed", 0, LD_F32, th, 2, buf, &err));
    for (int d = 0; d < 3; d++) { /* every dtype, with NaN and Inf */
        fill(buf, dts[d], 32, 1);
        TRY(ld_sink_emit(s, 0, d, "attn_norm", 0, dts[d], th, 2, buf, &err));
        fill(buf, dts[d], 32, 0);
        TRY(ld_sink_emit(s, 0, d, "q_proj", 0, dts[d], tq, 3, buf, &err));
    }
    fill(buf, LD_BF16, 64, 0);
    TRY(ld_sink_emit(s, 0, LD_NO_LAYER, "logits", 0, LD_BF16, tv, 2, buf, &err));
    fill(buf, LD_F32, 32, 0);
    TRY(ld_sink_emit(s, 0, 1, "my.custom/tap:0", 0, LD_F32, th, 2, buf, &err));
    TRY(ld_sink_emit(s, 0, LD_NO_LAYER, "model_tap", 0, LD_F32, th, 2, buf, &err));
    TRY(ld_sink_emit(s, 0, LD_NO_LAYER, "final_norm", 0, LD_F32, empty, 2, buf, &err));
    const float h8[8] = {-1.5f, NAN, 2.0f, 0, 0, 0, 0.5f, 1};
    ld_stats st; /* the device's statistics of its 8 elements: the head is all of them */
    ld_stats_compute(h8, LD_F32, 8, &st);
    double head[8];
    for (int i = 0; i < 8; i++)
        head[i] = (double)h8[i];
    TRY(ld_sink_emit_precomputed(s, 1, 0, "attn_norm", 4, LD_BF16, t1, 2, &st, head, NULL, &err));
    if (variant == 2) /* cut short: the process dies without closing, as a crash would (and
                       * _exit skips the leak checker, which would rightly flag the open sink) */
        _exit(0);
    int32_t am[2] = {13, 42}, dec[1] = {13};
    ld_run_end end = {.ok = variant != 1, .message = "injected fault tripped an assertion",
                      .tokens = am, .n_tokens = 2, .decoded = dec, .n_decoded = 1};
    TRY(ld_sink_close(s, &end, &err));
    return 0;
}

/* Reads IN and emits each probe with data again; the header is a fixed one. */
static int restat(const char *in, const char *out)
{
    ld_error err;
    ld_reader *r;
    ld_sink *s;
    const ld_probe *p;
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = LD_PAYLOAD_FULL;
    ld_run_info run = {.implementation = "restat"};
    TRY(ld_reader_open(&r, in, NULL, &err));
    if (ld_sink_open(&s, out, &cfg, &run, &err) != LD_OK) {
        ld_reader_close(r);
        return fail(&err);
    }
    ld_status st;
    while ((st = ld_reader_next(r, &p, &err)) == LD_OK && p)
        if (p->has_data && (st = ld_sink_emit(s, p->step, p->layer, p->tag, p->pos0, p->data_dtype,
                                              p->shape, p->ndim, p->data, &err)) != LD_OK)
            break;
    ld_reader_close(r);
    if (st != LD_OK) {
        ld_sink_close(s, NULL, NULL);
        return fail(&err);
    }
    TRY(ld_sink_close(s, NULL, &err));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--restat"))
        return restat(argv[2], argv[3]);
    if (argc == 2 && !strcmp(argv[1], "--tags")) {
        for (int t = 0; t < LD_TAG_COUNT; t++)
            printf("%s %d\n", ld_tag_name((ld_tag)t), ld_tag_per_layer((ld_tag)t) ? 1 : 0);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: ld_probe_sample --tags | DIR | --restat IN OUT\n");
        return 2;
    }
    char path[4096];
    static const char *const encs[3] = {"base64", "zlib", "shuffle"};
    snprintf(path, sizeof path, "%s/stats.jsonl", argv[1]);
    if (write_stream(path, LD_PAYLOAD_STATS, LD_ENC_BASE64, 0))
        return 1;
    for (int e = 0; e < 3; e++) {
        snprintf(path, sizeof path, "%s/full_%s.jsonl", argv[1], encs[e]);
        if (write_stream(path, LD_PAYLOAD_FULL, (ld_encoding)e, 0))
            return 1;
    }
    snprintf(path, sizeof path, "%s/filtered.jsonl", argv[1]);
    if (write_stream(path, LD_PAYLOAD_FULL, LD_ENC_BASE64, 3))
        return 1;
    snprintf(path, sizeof path, "%s/error_end.jsonl", argv[1]);
    if (write_stream(path, LD_PAYLOAD_FULL, LD_ENC_SHUFFLE_ZLIB_BASE64, 1))
        return 1;
    snprintf(path, sizeof path, "%s/cut.jsonl", argv[1]); /* last: it ends the process */
    return write_stream(path, LD_PAYLOAD_FULL, LD_ENC_BASE64, 2);
}

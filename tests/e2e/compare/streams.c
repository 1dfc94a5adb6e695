/* streams.c — writes the constructed probe streams of the comparator's stream-level tests (see
 * streams.h). Values are pseudo-random normals seeded by the key, so every stream agrees with the
 * reference except where its scenario says otherwise. Test code only. */
#include "streams.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* xorshift64* and Box-Muller: enough for test data, identical on every platform. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static double rng_normal(uint64_t *s)
{
    double u1 = ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static uint64_t seed_of(const char *text, uint64_t salt)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ salt;
    for (const char *p = text; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 0x100000001b3ULL;
    }
    return h ? h : 1;
}

static const char *foreign_name(ld_tag t)
{
    switch (t) {
    case LD_TAG_EMBED: return "embeddings";
    case LD_TAG_ATTN_NORM: return "input_layernorm";
    case LD_TAG_Q_PROJ: return "attn_q_proj_raw";
    case LD_TAG_K_PROJ: return "attn_k_proj_raw";
    case LD_TAG_V_PROJ: return "attn_v_proj";
    case LD_TAG_Q_NORM: return "attn_q_normed";
    case LD_TAG_K_NORM: return "attn_k_normed";
    case LD_TAG_Q_ROPE: return "attn_q_rotated";
    case LD_TAG_K_ROPE: return "attn_k_rotated";
    case LD_TAG_ATTN_OUT: return "attn_context";
    case LD_TAG_O_PROJ: return "attn_output";
    case LD_TAG_ATTN_RESIDUAL: return "resid_mid";
    case LD_TAG_MLP_NORM: return "post_attention_layernorm";
    case LD_TAG_GATE_PROJ: return "mlp_gate";
    case LD_TAG_UP_PROJ: return "mlp_up";
    case LD_TAG_MLP_ACT: return "mlp_act";
    case LD_TAG_DOWN_PROJ: return "mlp_down";
    case LD_TAG_LAYER_OUT: return "resid_post";
    case LD_TAG_FINAL_NORM: return "norm_out";
    case LD_TAG_LOGITS: return "lm_logits";
    default: return "unknown";
    }
}

typedef struct writer {
    const ts_scenario *sc;
    ld_sink *sink;
    const char *path;
    ld_key perturb;
    bool has_perturb;
    long cut_at;      /* file size after the truncate_after record, -1 until written */
    float *val;       /* scratch, largest tensor */
    uint16_t *half;
    char *msg;
    size_t size;
} writer;

static int emit(writer *w, int step, int layer, ld_tag tag, int T, int64_t pos0)
{
    const ts_scenario *sc = w->sc;
    ld_key k = {step, layer, ""};
    snprintf(k.tag, sizeof k.tag, "%s", ld_tag_name(tag));
    char text[160];
    ld_key_format(&k, text, sizeof text);
    if (sc->skip_key && !strcmp(sc->skip_key, text))
        return 0;
    static const ld_tag_sizes sizes = {TS_H, TS_HQ, TS_HKV, TS_D, TS_I, TS_V};
    int64_t shape[3];
    int ndim = ld_tag_dims(tag, &sizes, (size_t)T, shape);
    size_t n = (size_t)T;
    for (int i = 1; i < ndim; i++)
        n *= (size_t)shape[i];
    /* The reference's values, then the candidate's differences. */
    double scale = tag == LD_TAG_LOGITS ? 4.0 : 1.0;
    uint64_t s = seed_of(text, 1);
    for (size_t i = 0; i < n; i++)
        w->val[i] = (float)(scale * rng_normal(&s));
    double rel = sc->noise;
    if (w->has_perturb) {
        int c = ld_key_cmp_exec(&k, &w->perturb);
        if (c == 0)
            rel = sc->big;
        else if (c > 0)
            rel = sc->downstream;
    }
    if (rel > 0) {
        uint64_t s2 = seed_of(text, 2);
        for (size_t i = 0; i < n; i++)
            w->val[i] += (float)(rel * scale * rng_normal(&s2));
    }
    if (sc->nan_key && !strcmp(sc->nan_key, text))
        w->val[7] = NAN;
    const void *data = w->val;
    if (sc->dtype != LD_F32) {
        for (size_t i = 0; i < n; i++)
            w->half[i] = sc->dtype == LD_BF16 ? ld_f32_to_bf16(w->val[i]) : ld_f32_to_f16(w->val[i]);
        data = w->half;
    }
    char name[160];
    int emit_layer = layer;
    const char *tag_name = ld_tag_name(tag);
    if (sc->foreign) {
        if (layer >= 0)
            snprintf(name, sizeof name, "layer_%d_%s", layer, foreign_name(tag));
        else
            snprintf(name, sizeof name, "%s", foreign_name(tag));
        tag_name = name;
        emit_layer = LD_NO_LAYER;
        if (tag == LD_TAG_Q_PROJ) { /* a flat layout of the same elements */
            shape[1] = TS_HQ * TS_D;
            ndim = 2;
        }
    }
    if (sc->reshape_key && !strcmp(sc->reshape_key, text)) {
        shape[0] = (int64_t)(n / (size_t)shape[ndim - 1]);
        shape[1] = shape[ndim - 1];
        ndim = 2;
    }
    ld_error err;
    if (ld_sink_emit(w->sink, step, emit_layer, tag_name, pos0, sc->dtype, shape, ndim, data,
                     &err) != LD_OK) {
        snprintf(w->msg, w->size, "%s: %s", w->path, err.msg);
        return -1;
    }
    if (sc->foreign && tag == LD_TAG_LAYER_OUT) { /* a record no map rule renames: dropped */
        float sum[1] = {0};
        int64_t one[1] = {1};
        snprintf(name, sizeof name, "debug_checksum_%d", layer);
        if (ld_sink_emit(w->sink, step, LD_NO_LAYER, name, pos0, LD_F32, one, 1, sum, &err) !=
            LD_OK) {
            snprintf(w->msg, w->size, "%s: %s", w->path, err.msg);
            return -1;
        }
    }
    if (sc->truncate_after && !strcmp(sc->truncate_after, text)) {
        struct stat st;
        if (stat(w->path, &st) == 0)
            w->cut_at = (long)st.st_size;
    }
    return 0;
}

int ts_write(const char *path, const ts_scenario *sc, char *msg, size_t size)
{
    writer w = {sc, NULL, path, {0, 0, ""}, false, -1, NULL, NULL, msg, size};
    ld_error err;
    if (sc->perturb_key) {
        if (ld_key_parse(sc->perturb_key, &w.perturb, &err) != LD_OK) {
            snprintf(msg, size, "bad perturb key: %s", err.msg);
            return -1;
        }
        w.has_perturb = true;
    }
    size_t most = (size_t)TS_PROMPT * TS_V;
    w.val = malloc(most * sizeof *w.val);
    w.half = malloc(most * sizeof *w.half);
    if (!w.val || !w.half) {
        free(w.val);
        free(w.half);
        snprintf(msg, size, "out of memory");
        return -1;
    }
    char model[1024];
    snprintf(model, sizeof model,
             "{\"architecture\":\"Qwen3ForCausalLM\",\"hidden_size\":%d,\"num_hidden_layers\":%d,"
             "\"num_attention_heads\":%d,\"num_key_value_heads\":%d,\"head_dim\":%d,"
             "\"intermediate_size\":%d,\"vocab_size\":%d,\"max_position_embeddings\":512,"
             "\"rms_norm_eps\":1e-06,\"rope_theta\":1000000.0,\"tie_word_embeddings\":true,"
             "\"checkpoint_dtype\":\"bf16\",\"fingerprint\":\"%s\"}",
             sc->hidden_size ? sc->hidden_size : TS_H, TS_LAYERS, TS_HQ, TS_HKV, TS_D, TS_I, TS_V,
             sc->fingerprint ? sc->fingerprint : "fp-0123456789abcdef");
    char backend[256];
    snprintf(backend, sizeof backend,
             "{\"name\":\"%s\",\"compute_dtype\":\"%s\",\"accumulation\":\"f64\",\"threads\":1}",
             sc->implementation ? sc->implementation : "reference", ld_dtype_name(sc->dtype));
    int32_t prompt[TS_PROMPT] = {3, 14, 15, 92, 65};
    prompt[2] += sc->token_shift;
    const char *faults[1] = {sc->fault};
    ld_run_info run = {sc->implementation ? sc->implementation : "reference", backend, model,
                       prompt, TS_PROMPT, TS_DECODE, faults, sc->fault ? 1 : 0, NULL, NULL, 0};
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = sc->stats_only ? LD_PAYLOAD_STATS : LD_PAYLOAD_FULL;
    int rc = -1;
    if (ld_sink_open(&w.sink, path, &cfg, &run, &err) != LD_OK) {
        snprintf(msg, size, "%s", err.msg);
        goto out;
    }
    for (int step = 0; step <= TS_DECODE && !sc->header_only; step++) {
        int T = step == 0 ? TS_PROMPT : 1;
        int64_t pos0 = step == 0 ? 0 : TS_PROMPT + step - 1;
        if (emit(&w, step, LD_NO_LAYER, LD_TAG_EMBED, T, pos0))
            goto out;
        for (int l = 0; l < TS_LAYERS; l++)
            for (int t = LD_TAG_ATTN_NORM; t <= LD_TAG_LAYER_OUT; t++)
                if (emit(&w, step, l, (ld_tag)t, T, pos0))
                    goto out;
        if (emit(&w, step, LD_NO_LAYER, LD_TAG_FINAL_NORM, T, pos0) ||
            emit(&w, step, LD_NO_LAYER, LD_TAG_LOGITS, T, pos0))
            goto out;
    }
    int32_t argmax[TS_DECODE + 1] = {101, 102, 103};
    argmax[1] += sc->argmax_shift;
    int32_t decoded[TS_DECODE] = {101, 102};
    decoded[1] += sc->decoded_shift;
    ld_run_end end = {true, NULL, argmax, TS_DECODE + 1, decoded, TS_DECODE};
    ld_sink *s = w.sink;
    w.sink = NULL;
    if (ld_sink_close(s, &end, &err) != LD_OK) {
        snprintf(msg, size, "%s", err.msg);
        goto out;
    }
    /* A crash: everything after the record, and the start of the next line, is lost. */
    if (sc->truncate_after && (w.cut_at < 0 || truncate(path, w.cut_at + 17) != 0)) {
        snprintf(msg, size, "%s: cannot cut after %s", path, sc->truncate_after);
        goto out;
    }
    rc = 0;
out:
    if (w.sink)
        ld_sink_close(w.sink, NULL, &err);
    free(w.val);
    free(w.half);
    return rc;
}

int ts_write_all(const char *dir, char *msg, size_t size)
{
    static const struct {
        const char *file;
        ts_scenario sc;
    } all[] = {
        {"ref.jsonl", {.dtype = LD_F32}},
        {"same.jsonl", {.implementation = "candidate", .dtype = LD_F32}},
        {"perturbed.jsonl", {.implementation = "candidate", .dtype = LD_F32,
                             .perturb_key = "S0.L1.q_norm", .big = 0.4, .downstream = 0.05}},
        {"bf16.jsonl", {.implementation = "candidate", .dtype = LD_BF16}},
        {"bf16_bad.jsonl", {.implementation = "candidate", .dtype = LD_BF16,
                            .perturb_key = "S1.L2.attn_out", .big = 0.3, .downstream = 0.1}},
        /* a KV-cache-like fault: the error grows only a few times over inputs that pass */
        {"bf16_mild.jsonl", {.implementation = "candidate", .dtype = LD_BF16, .noise = 0.01,
                             .perturb_key = "S1.L2.attn_out", .big = 0.05, .downstream = 0.05}},
        {"missing.jsonl", {.implementation = "candidate", .dtype = LD_F32,
                           .skip_key = "S0.L1.mlp_act"}},
        {"shape.jsonl", {.implementation = "candidate", .dtype = LD_F32,
                         .reshape_key = "S0.L0.k_rope"}},
        {"truncated.jsonl", {.implementation = "candidate", .dtype = LD_F32,
                             .truncate_after = "S0.L1.up_proj"}},
        {"tokens.jsonl", {.implementation = "candidate", .dtype = LD_F32, .token_shift = 1}},
        {"decoded.jsonl", {.implementation = "candidate", .dtype = LD_F32, .decoded_shift = 5}},
        {"argmax.jsonl", {.implementation = "candidate", .dtype = LD_F32, .argmax_shift = 1}},
        {"config.jsonl", {.implementation = "candidate", .dtype = LD_F32, .hidden_size = 65}},
        {"nan.jsonl", {.implementation = "candidate", .dtype = LD_F32, .nan_key = "S0.L2.mlp_act"}},
        {"fault.jsonl", {.implementation = "candidate", .dtype = LD_F32,
                         .fingerprint = "fp-fedcba9876543210", .fault = "qk_norm_block=16@1"}},
        /* another checkpoint (seed): other weights, so other decoded tokens */
        {"seed.jsonl", {.implementation = "candidate", .dtype = LD_F32, .decoded_shift = 5,
                        .fingerprint = "fp-fedcba9876543210"}},
        {"stats.jsonl", {.implementation = "candidate", .dtype = LD_F32, .stats_only = true}},
        {"header_only.jsonl", {.implementation = "candidate", .dtype = LD_F32, .header_only = true}},
        {"foreign.jsonl", {.implementation = "foreign", .dtype = LD_F32, .foreign = true}},
        {"foreign_bad.jsonl", {.implementation = "foreign", .dtype = LD_F32, .foreign = true,
                               .perturb_key = "S0.L2.q_proj", .big = 0.5, .downstream = 0.05}},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, all[i].file);
        if (ts_write(path, &all[i].sc, msg, size))
            return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/empty.jsonl", dir);
    FILE *f = fopen(path, "w");
    if (!f || fclose(f) != 0) {
        snprintf(msg, size, "%s: cannot create", path);
        return -1;
    }
    return 0;
}

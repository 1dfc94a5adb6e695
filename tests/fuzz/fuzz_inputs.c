/* fuzz_inputs.c — libFuzzer target for the files a user hands layerdiff besides probe streams and
 * tokenizer.json: a checkpoint (config.json, a safetensors file, both bound into a model), the
 * --inject fault specs, and compare's --policy, --map, --baseline and --floor files. The first input
 * byte picks what the rest is (mod 8):
 *   0  config.json text. When it parses, the config written back as Hugging Face writes it
 *      (ld_config_to_hf_json) must parse to the same config.
 *   1  a safetensors file image (ld_st_parse). When it parses, every tensor must lie inside the
 *      image, hold numel × element size bytes with numel the product of its shape, and be found by
 *      its name.
 *   2  fault specs, one per line (ld_fault_set_add), checked against the tiny preset's config. Each
 *      accepted fault's canonical text must parse back to the same fault.
 *   3  a --policy file. When it parses, every resolved tolerance must be a number (never NaN: a
 *      NaN threshold passes every comparison) and within the documented ranges.
 *   4  a --map file, applied to a few tags.
 *   5  a checkpoint directory: 4 bytes (little-endian) giving the length of config.json, its
 *      text, then model.safetensors; written into a temporary directory and opened with
 *      ld_model_open (shapes bound against the config, fingerprint computed).
 *   6  a --baseline file (ld_baseline_load), written to a temporary file.
 *   7  a --floor file (ld_floor_load), written to a temporary file.
 * Anything that breaks an invariant traps; crashes, leaks and undefined behaviour are caught by
 * ASan/UBSan. Not a test by itself: tests/fuzz/fuzz_smoke.sh inputs runs it for a few seconds
 * under ctest, with seeds made by the same script. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compare.h"
#include "config.h"
#include "faults.h"
#include "floor.h"
#include "gate.h"
#include "model.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_inputs: invariant broken: %s (line %d)\n", #c, __LINE__);       \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

static const char TINY_CONFIG[] =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"model_type\": \"qwen3\", \"hidden_size\": 64,"
    " \"num_hidden_layers\": 4, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
    " \"head_dim\": 32, \"intermediate_size\": 176, \"vocab_size\": 512,"
    " \"max_position_embeddings\": 1024, \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0,"
    " \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\"}";

/* A temporary directory for the modes that need files, made once, removed at exit. */
static char tmpdir[64];

static void remove_tmpdir(void)
{
    static const char *const names[] = {"config.json", "model.safetensors", "in.json"};
    char p[128];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
}

static const char *work_dir(void)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/ld_fuzz_inputs_XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("fuzz_inputs: mkdtemp");
            abort();
        }
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

static const char *put_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", work_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror("fuzz_inputs: writing a temporary file");
        abort();
    }
    return path;
}

static bool same_config(const ld_config *a, const ld_config *b)
{
    return !strcmp(a->architecture, b->architecture) && a->hidden_size == b->hidden_size &&
           a->num_layers == b->num_layers && a->num_heads == b->num_heads &&
           a->num_kv_heads == b->num_kv_heads && a->head_dim == b->head_dim &&
           a->intermediate_size == b->intermediate_size && a->vocab_size == b->vocab_size &&
           a->max_position_embeddings == b->max_position_embeddings &&
           a->rms_norm_eps == b->rms_norm_eps && a->rope_theta == b->rope_theta &&
           a->tie_word_embeddings == b->tie_word_embeddings && a->torch_dtype == b->torch_dtype;
}

static void fuzz_config(const uint8_t *data, size_t size)
{
    ld_config c, again;
    ld_error err;
    if (ld_config_parse((const char *)data, size, "config.json", &c, &err) != LD_OK)
        return;
    CHECK(ld_config_validate(&c, "config.json", &err) == LD_OK);
    char *text = ld_config_to_hf_json(&c);
    CHECK(text);
    CHECK(ld_config_parse(text, strlen(text), "written", &again, &err) == LD_OK);
    CHECK(same_config(&c, &again));
    free(text);
}

static void fuzz_safetensors(const uint8_t *data, size_t size)
{
    ld_st_file *f = NULL;
    ld_error err;
    if (ld_st_parse(&f, data, size, "model.safetensors", &err) != LD_OK)
        return;
    const uint8_t *end = data + size;
    for (size_t i = 0; i < ld_st_count(f); i++) {
        const ld_tensor *t = ld_st_at(f, i);
        CHECK(t && t->name && t->ndim >= 0 && t->ndim <= LD_MAX_NDIM);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            CHECK(t->shape[d] >= 0);
            CHECK(!__builtin_mul_overflow(numel, (size_t)t->shape[d], &numel));
        }
        CHECK(numel == t->numel);
        size_t nbytes;
        CHECK(!__builtin_mul_overflow(numel, ld_dtype_size(t->dtype), &nbytes));
        CHECK(nbytes == t->nbytes);
        const uint8_t *p = t->data;
        CHECK(p >= data && p <= end && t->nbytes <= (size_t)(end - p));
        CHECK(ld_st_find(f, t->name) == t);
    }
    ld_st_close(f);
}

/* One spec per line; an empty line ends the list. */
static void fuzz_faults(const uint8_t *data, size_t size)
{
    static ld_config tiny;
    static bool have_tiny;
    ld_error err;
    if (!have_tiny) {
        CHECK(ld_config_parse(TINY_CONFIG, sizeof TINY_CONFIG - 1, "tiny", &tiny, &err) == LD_OK);
        have_tiny = true;
    }
    char *text = malloc(size + 1);
    CHECK(text);
    memcpy(text, data, size);
    text[size] = 0;
    ld_fault_set set = {0};
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        if (ld_fault_set_add(&set, line, &err) != LD_OK)
            break;
    }
    for (int i = 0; i < set.n; i++) {
        const ld_fault *a = &set.items[i];
        ld_fault b;
        CHECK(ld_fault_parse(a->text, &b, &err) == LD_OK);
        CHECK(a->kind == b.kind && a->layer == b.layer && a->ivalue == b.ivalue &&
              a->tag == b.tag && !strcmp(a->text, b.text));
        CHECK(a->value == b.value || (isnan(a->value) && isnan(b.value)));
    }
    (void)ld_fault_set_validate(&set, &tiny, &err);
    free(text);
}

static const char *const TAGS[] = {"embed", "q_proj", "q_norm", "k_rope", "attn_out", "logits",
                                   "model.layers.3.self_attn.q_norm", "x", ""};

static void fuzz_policy(const uint8_t *data, size_t size)
{
    ld_policy *p = NULL;
    ld_error err;
    if (ld_policy_parse((const char *)data, size, "policy.json", &p, &err) != LD_OK)
        return;
    static const ld_dtype dtypes[] = {LD_F32, LD_BF16, LD_F16};
    for (size_t t = 0; t < sizeof TAGS / sizeof TAGS[0]; t++)
        for (size_t d = 0; d < 3; d++)
            for (int layer = -1; layer < 3; layer++) {
                ld_key key = {.step = layer + 1, .layer = layer};
                snprintf(key.tag, sizeof key.tag, "%s", TAGS[t]);
                ld_tolerance tol;
                ld_policy_resolve(p, &key, dtypes[d], &tol);
                CHECK(tol.rel_l2 >= 0 && tol.atol >= 0 && tol.rtol >= 0);
                CHECK(tol.cosine >= -1 && tol.cosine <= 1);
                CHECK(tol.outside >= 0 && tol.outside <= 1);
                CHECK(tol.max_abs >= 0 && tol.ulp >= 0); /* +inf: off; NaN fails every test */
            }
    ld_policy_destroy(p);
}

static void fuzz_keymap(const uint8_t *data, size_t size)
{
    ld_keymap *m = NULL;
    ld_error err;
    if (ld_keymap_parse((const char *)data, size, "map.json", &m, &err) != LD_OK)
        return;
    for (size_t t = 0; t < sizeof TAGS / sizeof TAGS[0]; t++)
        for (int layer = -1; layer < 3; layer++) {
            ld_key out;
            bool reshape = false;
            ld_map_action a = ld_keymap_apply(m, 0, layer, TAGS[t], &out, &reshape);
            CHECK(a == LD_MAP_KEEP || a == LD_MAP_RENAME || a == LD_MAP_DROP);
            if (a != LD_MAP_DROP)
                CHECK(memchr(out.tag, 0, sizeof out.tag) != NULL);
        }
    ld_keymap_destroy(m);
}

static void fuzz_model(const uint8_t *data, size_t size)
{
    if (size < 4)
        return;
    size_t clen = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 |
                  (size_t)data[3] << 24;
    data += 4, size -= 4;
    if (clen > size)
        clen = size;
    put_file("config.json", data, clen);
    put_file("model.safetensors", data + clen, size - clen);
    ld_model *m = NULL;
    ld_error err;
    if (ld_model_open(&m, work_dir(), &err) != LD_OK)
        return;
    CHECK(m->layers && m->n_files == 1 && strlen(m->fingerprint) == 16);
    size_t H = (size_t)m->cfg.hidden_size, V = (size_t)m->cfg.vocab_size;
    CHECK(m->embed.ndim == 2 && (size_t)m->embed.shape[0] == V && (size_t)m->embed.shape[1] == H);
    CHECK(m->lm_head.ndim == 2 && (size_t)m->lm_head.shape[0] == V);
    CHECK(m->final_norm.ndim == 1 && (size_t)m->final_norm.shape[0] == H);
    for (int l = 0; l < m->cfg.num_layers; l++) {
        const ld_layer_weights *w = &m->layers[l];
        size_t D = (size_t)m->cfg.head_dim, Hq = (size_t)m->cfg.num_heads;
        CHECK((size_t)w->wq.shape[0] == Hq * D && (size_t)w->wq.shape[1] == H);
        CHECK((size_t)w->wd.shape[0] == H && (size_t)w->wd.shape[1] ==
              (size_t)m->cfg.intermediate_size);
    }
    ld_model_close(m);
}

static void fuzz_baseline(const uint8_t *data, size_t size)
{
    ld_baseline *b = NULL;
    ld_error err;
    if (ld_baseline_load(put_file("in.json", data, size), &b, &err) == LD_OK)
        ld_baseline_destroy(b);
}

static void fuzz_floor(const uint8_t *data, size_t size)
{
    ld_floor *f = NULL;
    ld_error err;
    if (ld_floor_load(put_file("in.json", data, size), &f, &err) == LD_OK)
        ld_floor_destroy(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    static void (*const modes[8])(const uint8_t *, size_t) = {
        fuzz_config, fuzz_safetensors, fuzz_faults,   fuzz_policy,
        fuzz_keymap, fuzz_model,       fuzz_baseline, fuzz_floor};
    modes[data[0] % 8](data + 1, size - 1);
    return 0;
}

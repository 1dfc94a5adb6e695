/* test_bind.c — binding tensors to the config: missing, unexpected and mis-shaped tensors listed
 * by name, the tied/untied lm_head rules, zero-copy binding, mixed dtypes, the probe-header JSON
 * and the fingerprint. Fixtures: a generated tiny checkpoint rewritten with ld_st_write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "gen.h"
#include "model.h"
#include "model_test_util.h"

static char *make_tiny(int tied)
{
    char *dir = make_temp_dir();
    assert_non_null(dir);
    ld_gen_options opt = {.preset = "tiny", .dtype = LD_BF16, .tied = tied, .shards = 1};
    ld_error err = {0};
    assert_int_equal(ld_gen_model(dir, &opt, &err), LD_OK);
    return dir;
}

/* An edit of model.safetensors: tensors dropped, renamed, reshaped, retyped or added. */
typedef struct edit {
    const char *drop[16];
    const char *rename_from, *rename_to;
    const char *reshape; /* this tensor gets shape {d0, d1} (same element count) */
    int64_t d0, d1;
    const char *retype; /* this tensor is stored as F32 */
    const char *add;    /* one more 1-D BF16 tensor of 4 elements */
} edit;

typedef struct copy_ctx {
    const ld_tensor **src; /* NULL for the added tensor */
    ld_dtype *dt;
} copy_ctx;

static ld_status copy_fill(void *vctx, size_t index, void *buf, size_t nbytes, ld_error *err)
{
    (void)err;
    copy_ctx *c = vctx;
    const ld_tensor *t = c->src[index];
    if (!t) {
        memset(buf, 0x3f, nbytes);
    } else if (c->dt[index] == t->dtype) {
        memcpy(buf, t->data, nbytes);
    } else { /* widen to f32 */
        for (size_t i = 0; i < t->numel; i++) {
            float f = ld_load_f32(t->data, t->dtype, i);
            memcpy((char *)buf + 4 * i, &f, 4);
        }
    }
    return LD_OK;
}

static void apply_edit(const char *dir, const edit *e)
{
    char *path = path_in(dir, "model.safetensors");
    char *moved = path_in(dir, "orig.bin");
    assert_int_equal(rename(path, moved), 0);
    ld_st_file *f = NULL;
    ld_error err = {0};
    assert_int_equal(ld_st_open(&f, moved, &err), LD_OK);
    size_t n = ld_st_count(f);
    ld_st_entry *entries = calloc(n + 1, sizeof *entries);
    const ld_tensor **src = calloc(n + 1, sizeof *src);
    ld_dtype *dt = calloc(n + 1, sizeof *dt);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const ld_tensor *t = ld_st_at(f, i);
        bool dropped = false;
        for (size_t d = 0; d < 16 && e->drop[d]; d++)
            dropped |= !strcmp(t->name, e->drop[d]);
        if (dropped) continue;
        entries[k].name = t->name;
        entries[k].dtype = t->dtype;
        entries[k].ndim = t->ndim;
        memcpy(entries[k].shape, t->shape, sizeof t->shape);
        if (e->rename_from && !strcmp(t->name, e->rename_from)) entries[k].name = e->rename_to;
        if (e->reshape && !strcmp(t->name, e->reshape)) {
            entries[k].ndim = 2;
            entries[k].shape[0] = e->d0;
            entries[k].shape[1] = e->d1;
        }
        if (e->retype && !strcmp(t->name, e->retype)) entries[k].dtype = LD_F32;
        src[k] = t;
        dt[k] = entries[k].dtype;
        k++;
    }
    if (e->add) {
        entries[k] = (ld_st_entry){.name = e->add, .dtype = LD_BF16, .ndim = 1, .shape = {4}};
        src[k] = NULL;
        dt[k] = LD_BF16;
        k++;
    }
    copy_ctx ctx = {src, dt};
    assert_int_equal(ld_st_write(path, entries, k, copy_fill, &ctx, &err), LD_OK);
    ld_st_close(f);
    unlink(moved);
    free(entries);
    free(src);
    free(dt);
    free(moved);
    free(path);
}

static ld_status open_dir(const char *dir, ld_model **m, ld_error *err)
{
    *m = NULL;
    ld_status st = ld_model_open(m, dir, err);
    if (st != LD_OK) print_message("%s\n", err->msg);
    return st;
}

static void test_binds_zero_copy(void **state)
{
    (void)state;
    char *dir = make_tiny(-1);
    ld_model *m;
    ld_error err = {0};
    assert_int_equal(open_dir(dir, &m, &err), LD_OK);
    const ld_st_file *f = m->files[0];
    const ld_tensor *wq = ld_st_find(f, "model.layers.3.self_attn.q_proj.weight");
    assert_ptr_equal(m->layers[3].wq.data, wq->data);
    assert_int_equal(m->layers[3].wq.shape[0], 4 * 32); /* Hq*D = 128 != H = 64 */
    assert_int_equal(m->layers[3].wq.shape[1], 64);
    assert_int_equal(m->layers[3].wo.shape[0], 64);
    assert_int_equal(m->layers[3].wo.shape[1], 128);
    assert_int_equal(m->layers[0].wk.shape[0], 2 * 32);
    assert_int_equal(m->layers[0].wd.shape[1], 176);
    assert_int_equal(m->layers[0].q_norm.shape[0], 32);
    assert_int_equal(m->embed.shape[0], 512);
    assert_ptr_equal(m->lm_head.data, m->embed.data); /* tied */
    assert_false(m->lm_head_ignored);
    assert_string_equal(m->layers[2].mlp_norm.name,
                        "model.layers.2.post_attention_layernorm.weight");
    assert_int_equal(m->n_files, 1);
    assert_int_equal(m->checkpoint_bytes, ld_st_size(f));
    ld_model_close(m);
    ld_model_close(NULL);
    rm_tree(dir);
}

static void test_missing_and_unexpected(void **state)
{
    (void)state;
    char *dir = make_tiny(-1);
    edit e = {.drop = {"model.layers.2.self_attn.q_proj.weight",
                       "model.layers.0.self_attn.k_norm.weight"},
              .add = "model.layers.4.mlp.gate_proj.weight"};
    apply_edit(dir, &e);
    ld_model *m;
    ld_error err = {0};
    assert_int_equal(open_dir(dir, &m, &err), LD_E_INPUT);
    assert_null(m);
    assert_contains(err.msg, ": the tensors do not match config.json (H 64, 4 layers, Hq 4, Hkv 2, "
                             "D 32, I 176, V 512, tied): ");
    assert_contains(err.msg, "missing (2): model.layers.0.self_attn.k_norm.weight, "
                             "model.layers.2.self_attn.q_proj.weight; "
                             "unexpected (1): model.layers.4.mlp.gate_proj.weight");
    rm_tree(dir);

    /* many missing: the first 8 by name, then a count */
    dir = make_tiny(-1);
    edit many = {
        .drop = {"model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight",
                 "model.layers.2.mlp.up_proj.weight", "model.layers.3.mlp.up_proj.weight",
                 "model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight",
                 "model.layers.2.mlp.down_proj.weight", "model.layers.3.mlp.down_proj.weight",
                 "model.layers.0.mlp.gate_proj.weight", "model.layers.1.mlp.gate_proj.weight",
                 "model.norm.weight"}};
    apply_edit(dir, &many);
    assert_int_equal(open_dir(dir, &m, &err), LD_E_INPUT);
    assert_contains(err.msg,
                    "missing (11): model.norm.weight, model.layers.0.mlp.gate_proj.weight,");
    assert_contains(err.msg, " (and 3 more)");
    rm_tree(dir);

    /* a renamed tensor: one missing, one unexpected */
    dir = make_tiny(-1);
    edit ren = {.rename_from = "model.layers.1.self_attn.o_proj.weight",
                .rename_to = "model.layers.1.attn.o_proj.weight"};
    apply_edit(dir, &ren);
    assert_int_equal(open_dir(dir, &m, &err), LD_E_INPUT);
    assert_contains(err.msg, "missing (1): model.layers.1.self_attn.o_proj.weight; unexpected (1): "
                             "model.layers.1.attn.o_proj.weight");
    rm_tree(dir);
}

static void test_wrong_shapes(void **state)
{
    (void)state;
    char *dir = make_tiny(-1);
    /* q_proj stored transposed ([in, out]): the classic layout mistake */
    edit e = {.reshape = "model.layers.1.self_attn.q_proj.weight", .d0 = 64, .d1 = 128};
    apply_edit(dir, &e);
    ld_model *m;
    ld_error err = {0};
    assert_int_equal(open_dir(dir, &m, &err), LD_E_INPUT);
    assert_contains(err.msg,
                    "wrong shape (1): model.layers.1.self_attn.q_proj.weight is [64, 128], "
                    "config.json needs [128, 64]");
    rm_tree(dir);

    /* a norm weight with an extra dimension */
    dir = make_tiny(-1);
    edit e2 = {.reshape = "model.layers.0.self_attn.q_norm.weight", .d0 = 1, .d1 = 32};
    apply_edit(dir, &e2);
    assert_int_equal(open_dir(dir, &m, &err), LD_E_INPUT);
    assert_contains(err.msg,
                    "model.layers.0.self_attn.q_norm.weight is [1, 32], config.json needs [32]");
    rm_tree(dir);

    /* the config disagrees with the weights: head_dim 16 */
    dir = make_tiny(-1);
    char *cfg = path_in(dir, "config.json");
    size_t len;
    char *text = (char *)slurp(cfg, &len);
    char *hd = strstr(text, "\"head_dim\": 32");
    memcpy(hd, "\"head_dim\": 16", 14);
    spit(cfg, text, len);
    assert_int_equal(open_dir(dir, &m, &err), LD_E_INPUT);
    assert_contains(err.msg, "D 16");
    assert_contains(err.msg,
                    "wrong shape (24): model.layers.0.self_attn.q_proj.weight is [128, 64], "
                    "config.json needs [64, 64]");
    free(text);
    free(cfg);
    rm_tree(dir);
}

static void test_lm_head_rules(void **state)
{
    (void)state;
    ld_model *m;
    ld_error err = {0};
    /* untied without lm_head: missing */
    char *dir = make_tiny(0);
    edit e = {.drop = {"lm_head.weight"}};
    apply_edit(dir, &e);
    assert_int_equal(open_dir(dir, &m, &err), LD_E_INPUT);
    assert_contains(err.msg, "untied): missing (1): lm_head.weight");
    rm_tree(dir);

    /* untied: lm_head is its own tensor */
    dir = make_tiny(0);
    assert_int_equal(open_dir(dir, &m, &err), LD_OK);
    assert_ptr_not_equal(m->lm_head.data, m->embed.data);
    assert_string_equal(m->lm_head.name, "lm_head.weight");
    ld_model_close(m);

    /* tied, yet lm_head.weight stored (the published Qwen3-0.6B does this): transformers ignores
     * it and so do we; the embedding is the output matrix */
    char *cfg = path_in(dir, "config.json");
    size_t len;
    char *text = (char *)slurp(cfg, &len);
    char *tie = strstr(text, "\"tie_word_embeddings\": false");
    memcpy(tie, "\"tie_word_embeddings\": true ", 28);
    spit(cfg, text, len);
    assert_int_equal(open_dir(dir, &m, &err), LD_OK);
    assert_true(m->lm_head_ignored);
    assert_ptr_equal(m->lm_head.data, m->embed.data);
    ld_model_close(m);
    free(text);
    free(cfg);
    rm_tree(dir);
}

static void test_header_json_and_dtype(void **state)
{
    (void)state;
    char *dir = make_tiny(-1);
    ld_model *m;
    ld_error err = {0};
    assert_int_equal(open_dir(dir, &m, &err), LD_OK);
    char *json = ld_model_header_json(m);
    char want[1024];
    snprintf(want, sizeof want,
             "{\"architecture\":\"Qwen3ForCausalLM\",\"hidden_size\":64,\"num_hidden_layers\":4,"
             "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":32,"
             "\"intermediate_size\":176,\"vocab_size\":512,\"max_position_embeddings\":1024,"
             "\"rms_norm_eps\":1e-06,\"rope_theta\":1000000.0,\"tie_word_embeddings\":true,"
             "\"checkpoint_dtype\":\"bf16\",\"fingerprint\":\"%s\"}",
             m->fingerprint);
    assert_string_equal(json, want);
    assert_int_equal(strlen(m->fingerprint), 16);
    char fp[17];
    memcpy(fp, m->fingerprint, sizeof fp);
    free(json);
    ld_model_close(m);

    /* one norm weight widened to F32: still loads (stored dtype kept), checkpoint dtype "mixed",
     * and the fingerprint changes */
    edit e = {.retype = "model.layers.1.input_layernorm.weight"};
    apply_edit(dir, &e);
    assert_int_equal(open_dir(dir, &m, &err), LD_OK);
    assert_int_equal(m->layers[1].attn_norm.dtype, LD_F32);
    assert_int_equal(m->layers[0].attn_norm.dtype, LD_BF16);
    json = ld_model_header_json(m);
    assert_contains(json, "\"checkpoint_dtype\":\"mixed\"");
    assert_string_not_equal(m->fingerprint, fp);
    free(json);
    ld_model_close(m);
    rm_tree(dir);
}

static void test_fingerprint_sensitivity(void **state)
{
    (void)state;
    char *dir = make_tiny(-1);
    ld_model *m;
    ld_error err = {0};
    assert_int_equal(open_dir(dir, &m, &err), LD_OK);
    char base[17];
    memcpy(base, m->fingerprint, sizeof base);
    ld_model_close(m);

    /* flip the first byte of the embedding (it is sampled) */
    char *path = path_in(dir, "model.safetensors");
    size_t len;
    unsigned char *img = slurp(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | img[i];
    img[8 + hlen] ^= 1; /* model.embed_tokens.weight is first in the data */
    spit(path, img, len);
    assert_int_equal(open_dir(dir, &m, &err), LD_OK);
    assert_string_not_equal(m->fingerprint, base);
    ld_model_close(m);
    img[8 + hlen] ^= 1;
    spit(path, img, len);
    assert_int_equal(open_dir(dir, &m, &err), LD_OK);
    assert_string_equal(m->fingerprint, base);
    ld_model_close(m);

    /* config.json bytes count, even a trailing space */
    char *cfg = path_in(dir, "config.json");
    size_t clen;
    unsigned char *ctext = slurp(cfg, &clen);
    ctext = realloc(ctext, clen + 2);
    ctext[clen] = ' ';
    spit(cfg, ctext, clen + 1);
    assert_int_equal(open_dir(dir, &m, &err), LD_OK);
    assert_string_not_equal(m->fingerprint, base);
    ld_model_close(m);
    free(ctext);
    free(cfg);
    free(img);
    free(path);
    rm_tree(dir);
}

static void test_directory_errors(void **state)
{
    (void)state;
    ld_model *m;
    ld_error err = {0};
    assert_int_equal(open_dir("/nonexistent-ld-dir", &m, &err), LD_E_INPUT);
    assert_contains(err.msg, "/nonexistent-ld-dir: does not exist");
    char *dir = make_temp_dir();
    assert_int_equal(open_dir(dir, &m, &err), LD_E_INPUT);
    assert_contains(err.msg, ": no config.json: not a Hugging Face checkpoint");
    assert_contains(err.msg, "layerdiff gen-model");
    ld_config c;
    ld_preset_config("tiny", &c, &err);
    char *json = ld_config_to_hf_json(&c);
    /* a hub cache root stands for the snapshot refs/main names; a ref that is not one plain name,
     * or names no snapshot, is refused */
    char hub[4096], sub[4096];
    snprintf(hub, sizeof hub, "%s/models--Org--Name", dir);
    assert_int_equal(mkdir(hub, 0755), 0);
    snprintf(sub, sizeof sub, "%s/refs", hub);
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(sub, sizeof sub, "%s/snapshots", hub);
    assert_int_equal(mkdir(sub, 0755), 0);
    spit_in(hub, "refs/main", "0123abcd\n");
    assert_int_equal(open_dir(hub, &m, &err), LD_E_INPUT);
    assert_contains(err.msg, "refs/main: names a snapshot that is not there");
    snprintf(sub, sizeof sub, "%s/snapshots/0123abcd", hub);
    assert_int_equal(mkdir(sub, 0755), 0);
    spit_in(sub, "config.json", json);
    assert_int_equal(open_dir(hub, &m, &err), LD_E_INPUT);
    assert_contains(err.msg, "snapshots/0123abcd: neither model.safetensors");
    spit_in(hub, "refs/main", "../../etc\n");
    assert_int_equal(open_dir(hub, &m, &err), LD_E_INPUT);
    assert_contains(err.msg, "refs/main: does not hold a revision name");
    snprintf(sub, sizeof sub, "%s/refs/main", hub);
    assert_int_equal(open_dir(sub, &m, &err), LD_E_INPUT);
    assert_contains(err.msg, "refs/main: not a directory");
    spit_in(dir, "config.json", json);
    free(json);
    assert_int_equal(open_dir(dir, &m, &err), LD_E_INPUT);
    assert_contains(err.msg,
                    ": neither model.safetensors nor model.safetensors.index.json is there");
    /* an unsupported config is refused before any weight is looked at */
    spit_in(dir, "config.json", "{\"architectures\": [\"Qwen3MoeForCausalLM\"]}");
    assert_int_equal(open_dir(dir, &m, &err), LD_E_UNSUPPORTED);
    assert_contains(err.msg, "/config.json: Qwen3MoeForCausalLM: mixture-of-experts");
    rm_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binds_zero_copy),
        cmocka_unit_test(test_missing_and_unexpected),
        cmocka_unit_test(test_wrong_shapes),
        cmocka_unit_test(test_lm_head_rules),
        cmocka_unit_test(test_header_json_and_dtype),
        cmocka_unit_test(test_fingerprint_sensitivity),
        cmocka_unit_test(test_directory_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

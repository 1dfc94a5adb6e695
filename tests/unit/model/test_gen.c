/* test_gen.c — generate -> load round trips for the tiny and small presets in every dtype, tied
 * and untied, single-file and sharded: shapes and dtypes, exact values re-derived from the weight
 * stream's definition, value statistics, byte-identical repeats, sharding invariance, the file
 * layout transformers writes, and the refusal to overwrite a checkpoint without force. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>

#include "gen.h"
#include "model.h"
#include "model_test_util.h"

static char *generate(const char *preset, ld_dtype dt, int tied, int shards, uint64_t seed)
{
    char *dir = make_temp_dir();
    assert_non_null(dir);
    ld_gen_options opt = {
        .preset = preset, .seed = seed, .dtype = dt, .tied = tied, .shards = shards};
    ld_error err = {0};
    ld_status st = ld_gen_model(dir, &opt, &err);
    if (st != LD_OK) fail_msg("gen %s: %s", preset, err.msg);
    return dir;
}

/* A few elements of t compared bit for bit with the definition: first, second, last, middle. */
static void check_values(const ld_tensor *t, uint64_t seed)
{
    size_t idx[] = {0, 1, 2, 3, t->numel / 2, t->numel / 2 + 1, t->numel - 2, t->numel - 1};
    for (size_t k = 0; k < sizeof idx / sizeof idx[0]; k++) {
        uint32_t want = ref_weight_bits(seed, t->name, idx[k], t->dtype);
        uint32_t got = stored_bits(t->data, t->dtype, idx[k]);
        if (want != got)
            fail_msg("%s[%zu] (%s): stored 0x%x, the definition gives 0x%x", t->name, idx[k],
                     ld_dtype_name(t->dtype), got, want);
    }
}

static void check_model(const ld_model *m, const char *preset, ld_dtype dt, bool tied,
                        uint64_t seed)
{
    ld_config want;
    ld_error err = {0};
    assert_int_equal(ld_preset_config(preset, &want, &err), LD_OK);
    want.tie_word_embeddings = tied;
    want.torch_dtype = dt;
    assert_memory_equal(&m->cfg, &want, sizeof want);
    const ld_tensor *all[] = {&m->embed, &m->final_norm, &m->lm_head};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(all[i]->dtype, dt);
        check_values(all[i], seed);
    }
    assert_true((m->lm_head.data == m->embed.data) == tied);
    for (int l = 0; l < m->cfg.num_layers; l++) {
        const ld_layer_weights *L = &m->layers[l];
        const ld_tensor *ws[] = {&L->attn_norm, &L->wq,     &L->wk, &L->wv,
                                 &L->q_norm,    &L->k_norm, &L->wo, &L->mlp_norm,
                                 &L->wg,        &L->wu,     &L->wd};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
            assert_int_equal(ws[i]->dtype, dt);
            if (l == 0 || l == m->cfg.num_layers - 1) check_values(ws[i], seed);
        }
    }
    char *json = ld_model_header_json(m);
    char want_dtype[64];
    snprintf(want_dtype, sizeof want_dtype, "\"checkpoint_dtype\":\"%s\"", ld_dtype_name(dt));
    assert_contains(json, want_dtype);
    free(json);
}

static void test_round_trip_matrix(void **state)
{
    (void)state;
    const char *presets[] = {"tiny", "small"};
    const ld_dtype dts[] = {LD_BF16, LD_F16, LD_F32};
    for (size_t p = 0; p < 2; p++) {
        for (size_t d = 0; d < 3; d++) {
            for (int tied = 0; tied <= 1; tied++) {
                char fp_single[17] = "";
                for (int shards = 1; shards <= 3; shards += 2) {
                    uint64_t seed = 7;
                    char *dir = generate(presets[p], dts[d], tied, shards, seed);
                    ld_model *m = NULL;
                    ld_error err = {0};
                    if (ld_model_open(&m, dir, &err) != LD_OK)
                        fail_msg("open %s: %s", dir, err.msg);
                    print_message("%s %s %s shards=%d: %zu files, %llu bytes, fingerprint %s\n",
                                  presets[p], ld_dtype_name(dts[d]), tied ? "tied" : "untied",
                                  shards, m->n_files, (unsigned long long)m->checkpoint_bytes,
                                  m->fingerprint);
                    assert_int_equal(m->n_files, (size_t)shards);
                    check_model(m, presets[p], dts[d], tied, seed);
                    /* sharding changes neither values nor fingerprint */
                    if (shards == 1)
                        memcpy(fp_single, m->fingerprint, 17);
                    else
                        assert_string_equal(m->fingerprint, fp_single);
                    ld_model_close(m);
                    rm_tree(dir);
                }
            }
        }
    }
}

/* Names of the regular files in dir, sorted, as one ';'-joined string. */
static char *listing(const char *dir)
{
    DIR *d = opendir(dir);
    char *names[64];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 64)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
    char *out = calloc(1, 4096);
    for (size_t i = 0; i < n; i++) {
        strcat(out, names[i]);
        strcat(out, ";");
        free(names[i]);
    }
    return out;
}

static void test_byte_identical(void **state)
{
    (void)state;
    char *a = generate("small", LD_BF16, 0, 3, 42);
    char *b = generate("small", LD_BF16, 0, 3, 42);
    char *la = listing(a), *lb = listing(b);
    assert_string_equal(la, "config.json;model-00001-of-00003.safetensors;"
                            "model-00002-of-00003.safetensors;model-00003-of-00003.safetensors;"
                            "model.safetensors.index.json;tokenizer.json;");
    assert_string_equal(la, lb);
    const char *files[] = {"config.json", "model-00001-of-00003.safetensors",
                           "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
                           "model.safetensors.index.json", "tokenizer.json"};
    for (size_t i = 0; i < 6; i++) {
        char *pa = path_in(a, files[i]), *pb = path_in(b, files[i]);
        size_t na, nb;
        unsigned char *da = slurp(pa, &na), *db = slurp(pb, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(da, db, na);
        free(da);
        free(db);
        free(pa);
        free(pb);
    }
    /* another seed changes the weights */
    char *c = generate("small", LD_BF16, 0, 3, 43);
    ld_model *ma, *mc;
    ld_error err = {0};
    assert_int_equal(ld_model_open(&ma, a, &err), LD_OK);
    assert_int_equal(ld_model_open(&mc, c, &err), LD_OK);
    assert_string_not_equal(ma->fingerprint, mc->fingerprint);
    assert_memory_not_equal(ma->embed.data, mc->embed.data, 64);
    ld_model_close(ma);
    ld_model_close(mc);
    free(la);
    free(lb);
    rm_tree(a);
    rm_tree(b);
    rm_tree(c);
}

static void test_statistics(void **state)
{
    (void)state;
    char *dir = generate("small", LD_F32, 1, 1, 0);
    ld_model *m;
    ld_error err = {0};
    assert_int_equal(ld_model_open(&m, dir, &err), LD_OK);
    /* projections and embeddings ~ N(0, 0.02^2): 256,000 embedding values */
    double s = 0, s2 = 0;
    size_t n = m->embed.numel;
    for (size_t i = 0; i < n; i++) {
        double v = ld_load_f32(m->embed.data, LD_F32, i);
        s += v;
        s2 += v * v;
    }
    double mean = s / (double)n, sd = sqrt(s2 / (double)n - mean * mean);
    print_message("embed: mean %.3g, std %.5f\n", mean, sd);
    assert_true(fabs(mean) < 0.0005);
    assert_true(fabs(sd - 0.02) < 0.0005);
    /* norm weights in [0.8, 1.2), not all equal */
    float lo = 2, hi = 0;
    for (int l = 0; l < m->cfg.num_layers; l++) {
        const ld_tensor *t = &m->layers[l].attn_norm;
        for (size_t i = 0; i < t->numel; i++) {
            float v = ld_load_f32(t->data, LD_F32, i);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    print_message("input_layernorm weights in [%.4f, %.4f]\n", (double)lo, (double)hi);
    assert_true(lo >= 0.8f && hi < 1.2f && hi - lo > 0.3f);
    ld_model_close(m);
    rm_tree(dir);
}

static void test_file_layout(void **state)
{
    (void)state;
    char *dir = generate("tiny", LD_BF16, -1, 1, 0);
    char *path = path_in(dir, "model.safetensors");
    size_t len;
    unsigned char *img = slurp(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | img[i];
    assert_int_equal(hlen % 8, 0);
    /* __metadata__ first, then the tensors sorted by name, offsets from the start of the data */
    const char *start =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"model.embed_tokens.weight\":{\"dtype\":\"BF16\",\"shape\":[512,64],"
        "\"data_offsets\":[0,65536]},"
        "\"model.layers.0.input_layernorm.weight\":{\"dtype\":\"BF16\",\"shape\":[64],"
        "\"data_offsets\":[65536,65664]},"
        "\"model.layers.0.mlp.down_proj.weight\":{\"dtype\":\"BF16\",\"shape\":[64,176],"
        "\"data_offsets\":[65664,88192]},";
    assert_memory_equal(img + 8, start, strlen(start));
    const char *end = "\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[64],"
                      "\"data_offsets\":[534016,534144]}}";
    char *hdr = strndup((const char *)img + 8, hlen);
    assert_contains(hdr, end);
    assert_null(strstr(hdr, "lm_head"));
    assert_int_equal(len, 8 + hlen + 534144);
    /* 534144 bytes = 2 * (512*64 + 4 * (64 + 128*64*2 + 64*64*2 + 32*2 + 176*64*3 + 64) + 64) */
    assert_int_equal(
        534144,
        2 * (512 * 64 + 4 * (64 + 2 * 128 * 64 + 2 * 64 * 64 + 2 * 32 + 3 * 176 * 64 + 64) + 64));
    free(hdr);
    free(img);
    free(path);
    rm_tree(dir);

    /* the index of a sharded checkpoint, as transformers writes it */
    dir = generate("tiny", LD_F16, 0, 2, 0);
    path = path_in(dir, "model.safetensors.index.json");
    char *index = (char *)slurp(path, &len);
    assert_true(
        strncmp(
            index,
            "{\n  \"metadata\": {\n    \"total_size\": 599680\n  },\n"
            "  \"weight_map\": {\n"
            "    \"lm_head.weight\": \"model-00002-of-00002.safetensors\",\n"
            "    \"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\",\n",
            strlen("{\n  \"metadata\": {\n    \"total_size\": 599680\n  },\n"
                   "  \"weight_map\": {\n"
                   "    \"lm_head.weight\": \"model-00002-of-00002.safetensors\",\n"
                   "    \"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\",\n")) ==
        0);
    assert_contains(index,
                    "    \"model.norm.weight\": \"model-00002-of-00002.safetensors\"\n  }\n}\n");
    free(index);
    free(path);
    rm_tree(dir);
}

static void test_refuses_existing_checkpoint(void **state)
{
    (void)state;
    char *dir = generate("tiny", LD_BF16, -1, 3, 0);
    ld_gen_options opt = {.preset = "tiny", .dtype = LD_BF16, .tied = -1, .shards = 1};
    ld_error err = {0};
    assert_int_equal(ld_gen_model(dir, &opt, &err), LD_E_USAGE);
    print_message("%s\n", err.msg);
    assert_contains(err.msg, " already holds a checkpoint (");
    assert_contains(err.msg, "); use --force to replace it");
    /* a lone shard left from an interrupted run counts too */
    char *cfg = path_in(dir, "config.json");
    char *idx = path_in(dir, "model.safetensors.index.json");
    unlink(cfg);
    unlink(idx);
    assert_int_equal(ld_gen_model(dir, &opt, &err), LD_E_USAGE);
    /* with force, the old shards go and only the new file remains */
    spit_in(dir, "notes.txt", "mine");
    opt.force = 1;
    assert_int_equal(ld_gen_model(dir, &opt, &err), LD_OK);
    char *l = listing(dir);
    assert_string_equal(l, "config.json;model.safetensors;notes.txt;tokenizer.json;");
    ld_model *m;
    assert_int_equal(ld_model_open(&m, dir, &err), LD_OK);
    ld_model_close(m);
    free(l);
    free(cfg);
    free(idx);
    rm_tree(dir);
}

static void test_bad_options(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    ld_error err = {0};
    ld_gen_options opt = {.preset = "medium", .dtype = LD_BF16, .tied = -1, .shards = 1};
    assert_int_equal(ld_gen_model(dir, &opt, &err), LD_E_USAGE);
    assert_string_equal(err.msg, "unknown preset 'medium' (presets: tiny, small, qwen3-0.6b)");
    opt.preset = "tiny";
    opt.shards = 0;
    assert_int_equal(ld_gen_model(dir, &opt, &err), LD_E_USAGE);
    assert_string_equal(err.msg, "--shards 0: must be 1 to 46 for preset tiny");
    opt.shards = 47;
    assert_int_equal(ld_gen_model(dir, &opt, &err), LD_E_USAGE);
    opt.shards = 46; /* one tensor per file is allowed */
    assert_int_equal(ld_gen_model(dir, &opt, &err), LD_OK);
    ld_model *m;
    assert_int_equal(ld_model_open(&m, dir, &err), LD_OK);
    assert_int_equal(m->n_files, 46);
    ld_model_close(m);
    char *sub = path_in(dir, "no/such/parent");
    opt.shards = 1;
    assert_int_equal(ld_gen_model(sub, &opt, &err), LD_E_IO);
    assert_contains(err.msg, "cannot create directory");
    free(sub);
    rm_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_matrix),
        cmocka_unit_test(test_byte_identical),
        cmocka_unit_test(test_statistics),
        cmocka_unit_test(test_file_layout),
        cmocka_unit_test(test_refuses_existing_checkpoint),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

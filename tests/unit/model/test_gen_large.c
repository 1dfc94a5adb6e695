/* test_gen_large.c — the qwen3-0.6b preset end to end (slow: writes ~2.7 GB into a temporary
 * directory, deleted afterwards): bf16 tied in 4 shards and f16 untied in one file, opened and
 * checked against the real model's shapes and the weight stream's definition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gen.h"
#include "model.h"
#include "model_test_util.h"
#include "util.h"

static void check_exact(const ld_tensor *t, uint64_t seed)
{
    size_t idx[] = {0, 1, 12345, t->numel / 3, t->numel - 2, t->numel - 1};
    for (size_t k = 0; k < sizeof idx / sizeof idx[0]; k++) {
        if (idx[k] >= t->numel) continue;
        uint32_t want = ref_weight_bits(seed, t->name, idx[k], t->dtype);
        uint32_t got = stored_bits(t->data, t->dtype, idx[k]);
        if (want != got)
            fail_msg("%s[%zu]: stored 0x%x, the definition gives 0x%x", t->name, idx[k], got, want);
    }
}

static void round_trip(ld_dtype dt, int tied, int shards, uint64_t seed, uint64_t want_bytes)
{
    char *dir = make_temp_dir();
    assert_non_null(dir);
    ld_gen_options opt = {
        .preset = "qwen3-0.6b", .seed = seed, .dtype = dt, .tied = tied, .shards = shards};
    ld_error err = {0};
    double t0 = ld_seconds();
    if (ld_gen_model(dir, &opt, &err) != LD_OK) fail_msg("gen: %s", err.msg);
    double t1 = ld_seconds();
    ld_model *m = NULL;
    if (ld_model_open(&m, dir, &err) != LD_OK) fail_msg("open: %s", err.msg);
    print_message("qwen3-0.6b %s %s, %d shard(s): %llu bytes in %zu files, generated in %.1f s, "
                  "fingerprint %s\n",
                  ld_dtype_name(dt), tied ? "tied" : "untied", shards,
                  (unsigned long long)m->checkpoint_bytes, m->n_files, t1 - t0, m->fingerprint);
    assert_int_equal(m->n_files, (size_t)shards);
    uint64_t data_bytes = 0;
    for (size_t f = 0; f < m->n_files; f++)
        for (size_t i = 0; i < ld_st_count(m->files[f]); i++)
            data_bytes += ld_st_at(m->files[f], i)->nbytes;
    assert_int_equal(data_bytes, want_bytes);
    const ld_config *c = &m->cfg;
    assert_int_equal(c->hidden_size, 1024);
    assert_int_equal(c->num_layers, 28);
    assert_int_equal(c->num_heads, 16);
    assert_int_equal(c->num_kv_heads, 8);
    assert_int_equal(c->head_dim, 128);
    assert_int_equal(c->intermediate_size, 3072);
    assert_int_equal(c->vocab_size, 151936);
    assert_int_equal(c->tie_word_embeddings, tied);
    assert_int_equal(m->embed.shape[0], 151936);
    assert_int_equal(m->embed.shape[1], 1024);
    assert_int_equal(m->layers[27].wq.shape[0], 2048); /* Hq*D = 2048 != H = 1024 */
    assert_int_equal(m->layers[27].wo.shape[1], 2048);
    assert_int_equal(m->layers[27].wk.shape[0], 1024);
    assert_int_equal(m->layers[27].wd.shape[1], 3072);
    check_exact(&m->embed, seed);
    check_exact(&m->lm_head, seed);
    check_exact(&m->final_norm, seed);
    check_exact(&m->layers[0].wq, seed);
    check_exact(&m->layers[13].wg, seed);
    check_exact(&m->layers[27].wd, seed);
    check_exact(&m->layers[27].k_norm, seed);
    ld_model_close(m);
    rm_tree(dir);
}

static void test_qwen3_06b_bf16_tied_sharded(void **state)
{
    (void)state;
    /* 596,049,920 parameters (Qwen3-0.6B without a separate lm_head), 2 bytes each */
    round_trip(LD_BF16, 1, 4, 0, 2ull * 596049920);
}

static void test_qwen3_06b_f16_untied_single(void **state)
{
    (void)state;
    /* plus lm_head, 151936 x 1024 */
    round_trip(LD_F16, 0, 1, 3, 2ull * (596049920 + 155582464));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qwen3_06b_bf16_tied_sharded),
        cmocka_unit_test(test_qwen3_06b_f16_untied_single),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

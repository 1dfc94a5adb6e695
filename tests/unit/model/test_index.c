/* test_index.c — sharded checkpoints: model.safetensors.index.json path rules ('/', '..',
 * absolute paths, symbolic links out of the directory), missing shards, and tensors that are not
 * where the index says. Fixtures are generated tiny checkpoints in temporary directories. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gen.h"
#include "model.h"
#include "model_test_util.h"

#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"

/* A tiny checkpoint in two shards. */
static char *make_sharded(void)
{
    char *dir = make_temp_dir();
    assert_non_null(dir);
    ld_gen_options opt = {.preset = "tiny", .dtype = LD_BF16, .tied = -1, .shards = 2};
    ld_error err = {0};
    assert_int_equal(ld_gen_model(dir, &opt, &err), LD_OK);
    return dir;
}

/* The generated index with the shard of one tensor replaced (or, with shard NULL, the entry
 * dropped; with extra non-NULL, one more entry appended). */
static void rewrite_index(const char *dir, const char *tensor, const char *shard, const char *extra)
{
    char *path = path_in(dir, "model.safetensors.index.json");
    size_t len;
    char *text = (char *)slurp(path, &len);
    assert_non_null(text);
    if (!text) return;
    size_t cap = len + 4096, n = 0;
    char *out = malloc(cap);
    char needle[256];
    snprintf(needle, sizeof needle, "    \"%s\": ", tensor ? tensor : "");
    const char *line = text;
    while (*line) {
        const char *eol = strchr(line, '\n');
        size_t ll = eol ? (size_t)(eol - line) + 1 : strlen(line);
        if (tensor && !strncmp(line, needle, strlen(needle))) {
            bool comma = line[ll - 2] == ',';
            if (shard)
                n += (size_t)snprintf(out + n, cap - n, "%s\"%s\"%s\n", needle, shard,
                                      comma ? "," : "");
            /* a dropped last entry leaves a trailing comma on the previous line: avoided by never
             * dropping the last one in these tests */
        } else if (extra && !strncmp(line, "  }\n", 4) && n > 0) {
            out[n - 1] = ',';
            n += (size_t)snprintf(out + n, cap - n, "\n    %s\n", extra);
            memcpy(out + n, line, ll);
            n += ll;
        } else {
            memcpy(out + n, line, ll);
            n += ll;
        }
        line += ll;
    }
    out[n] = 0;
    assert_int_equal(spit(path, out, n), 0);
    free(out);
    free(text);
    free(path);
}

static void expect_open_fails(const char *dir, ld_status code, const char *message)
{
    ld_model *m = NULL;
    ld_error err = {0};
    ld_status st = ld_model_open(&m, dir, &err);
    print_message("%s\n", err.msg);
    assert_int_equal(st, code);
    assert_null(m);
    assert_contains(err.msg, message);
}

static void test_sharded_opens(void **state)
{
    (void)state;
    char *dir = make_sharded();
    ld_model *m = NULL;
    ld_error err = {0};
    assert_int_equal(ld_model_open(&m, dir, &err), LD_OK);
    assert_int_equal(m->n_files, 2);
    assert_int_equal(m->cfg.num_layers, 4);
    ld_model_close(m);
    /* a symbolic link that stays inside the directory is fine */
    char *target = path_in(dir, SHARD2);
    char *renamed = path_in(dir, "real-shard-2.safetensors");
    assert_int_equal(rename(target, renamed), 0);
    assert_int_equal(symlink("real-shard-2.safetensors", target), 0);
    assert_int_equal(ld_model_open(&m, dir, &err), LD_OK);
    ld_model_close(m);
    free(target);
    free(renamed);
    rm_tree(dir);
}

static void test_bad_shard_names(void **state)
{
    (void)state;
    static const struct {
        const char *shard, *message;
    } cases[] = {
        {"../" SHARD2, "shard \"../" SHARD2 "\" (for tensor 'model.norm.weight') leaves the "
                       "directory ('..')"},
        {"..", "leaves the directory ('..')"},
        {"sub/../" SHARD2, "leaves the directory ('..')"},
        {"/etc/passwd",
         "shard \"/etc/passwd\" (for tensor 'model.norm.weight') is an absolute path"},
        {"sub/" SHARD2, "contains '/' (shards must sit in the checkpoint directory itself)"},
        {"", "is empty"},
        {".", "names the directory itself"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = make_sharded();
        rewrite_index(dir, "model.norm.weight", cases[i].shard, NULL);
        expect_open_fails(dir, LD_E_INPUT, "/model.safetensors.index.json: shard ");
        expect_open_fails(dir, LD_E_INPUT, cases[i].message);
        rm_tree(dir);
    }
}

/* Every occurrence of from in the index replaced by to. */
static void rename_in_index(const char *dir, const char *from, const char *to)
{
    char *ipath = path_in(dir, "model.safetensors.index.json");
    size_t len;
    char *text = (char *)slurp(ipath, &len);
    assert_non_null(text);
    if (!text) return;
    size_t cap = len * 2 + 64, n = 0;
    char *out = malloc(cap);
    for (const char *p = text; *p;) {
        if (!strncmp(p, from, strlen(from))) {
            n += (size_t)snprintf(out + n, cap - n, "%s", to);
            p += strlen(from);
        } else {
            out[n++] = *p++;
        }
    }
    assert_int_equal(spit(ipath, out, n), 0);
    free(out);
    free(text);
    free(ipath);
}

static void test_symlink_out_of_dir(void **state)
{
    (void)state;
    char *dir = make_sharded();
    char *outside = make_sharded(); /* an identical, valid shard in another directory */
    char *target = path_in(outside, SHARD2);
    char *link = path_in(dir, "escape.safetensors");
    assert_int_equal(symlink(target, link), 0);
    rename_in_index(dir, SHARD2, "escape.safetensors");
    expect_open_fails(dir, LD_E_INPUT, "shard escape.safetensors resolves to ");
    expect_open_fails(dir, LD_E_INPUT, "(symbolic links out of the directory are refused)");
    /* a relative link through '..' is the same escape */
    assert_int_equal(unlink(link), 0);
    char rel[4200];
    snprintf(rel, sizeof rel, "../%s/%s", strrchr(outside, '/') + 1, SHARD2);
    assert_int_equal(symlink(rel, link), 0);
    expect_open_fails(dir, LD_E_INPUT, "outside the checkpoint directory");
    free(link);
    free(target);
    rm_tree(outside);
    rm_tree(dir);
}

static void test_missing_shards(void **state)
{
    (void)state;
    char *dir = make_sharded();
    char *p2 = path_in(dir, SHARD2);
    assert_int_equal(unlink(p2), 0);
    expect_open_fails(dir, LD_E_INPUT, "missing shard files (1): " SHARD2 ", listed in ");
    char *p1 = path_in(dir, SHARD1);
    assert_int_equal(unlink(p1), 0);
    expect_open_fails(dir, LD_E_INPUT, "missing shard files (2): " SHARD1 ", " SHARD2);
    /* a dangling link counts as missing */
    assert_int_equal(symlink("nowhere.safetensors", p1), 0);
    expect_open_fails(dir, LD_E_INPUT, SHARD1 " (a dangling link), " SHARD2);
    free(p1);
    free(p2);
    rm_tree(dir);
}

static void test_tensors_not_where_listed(void **state)
{
    (void)state;
    char *dir = make_sharded();
    /* model.norm.weight is in shard 2; say shard 1 */
    rewrite_index(dir, "model.norm.weight", SHARD1, NULL);
    expect_open_fails(dir, LD_E_INPUT, "the shards do not match the index: ");
    expect_open_fails(dir, LD_E_INPUT,
                      "listed but not in their shard (1): 'model.norm.weight' (in " SHARD1 ")");
    expect_open_fails(dir, LD_E_INPUT,
                      "in another shard than listed (1): 'model.norm.weight' is in " SHARD2
                      " but the index says " SHARD1);
    rm_tree(dir);

    dir = make_sharded();
    rewrite_index(dir, "model.layers.0.self_attn.q_proj.weight", NULL, NULL);
    expect_open_fails(
        dir, LD_E_INPUT,
        "in a shard but not listed (1): 'model.layers.0.self_attn.q_proj.weight' (in " SHARD1 ")");
    rm_tree(dir);

    dir = make_sharded();
    rewrite_index(dir, NULL, NULL, "\"model.extra.weight\": \"" SHARD1 "\"");
    expect_open_fails(dir, LD_E_INPUT, "listed but not in their shard (1): 'model.extra.weight'");
    rm_tree(dir);
}

static void test_index_json_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *message;
    } cases[] = {
        {"{\"metadata\": {}}", "weight_map is missing"},
        {"{\"weight_map\": {}}", "weight_map is empty"},
        {"{\"weight_map\": []}", "weight_map must be an object, found an array"},
        {"{\"metadata\": 5, \"weight_map\": {\"a\": \"b\"}}",
         "metadata must be an object, found a number"},
        {"{\"weight_map\": {\"a\": 1}}",
         "weight_map entry 'a' must be a file name, found a number"},
        {"{\"weight_map\": {\"a\": \"x.safetensors\", \"a\": \"x.safetensors\"}}",
         "weight_map lists 'a' twice"},
        {"{\"weight_map\": {\"a\": \"x\"}, \"weight_map\": {\"a\": \"x\"}}",
         "duplicate key \"weight_map\""},
        {"{\"weight_map\": {\"a\": \"x\"}", "expected ',' or '}', found end of input"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = make_sharded();
        assert_int_equal(spit_in(dir, "model.safetensors.index.json", cases[i].text), 0);
        expect_open_fails(dir, LD_E_INPUT, "model.safetensors.index.json");
        expect_open_fails(dir, LD_E_INPUT, cases[i].message);
        rm_tree(dir);
    }
}

static void test_single_and_index_both(void **state)
{
    (void)state;
    char *dir = make_sharded();
    char *p1 = path_in(dir, SHARD1);
    char *single = path_in(dir, "model.safetensors");
    assert_int_equal(link(p1, single), 0);
    expect_open_fails(dir, LD_E_INPUT,
                      "holds both model.safetensors and model.safetensors.index.json; remove the "
                      "stale one");
    free(p1);
    free(single);
    rm_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sharded_opens),
        cmocka_unit_test(test_bad_shard_names),
        cmocka_unit_test(test_symlink_out_of_dir),
        cmocka_unit_test(test_missing_shards),
        cmocka_unit_test(test_tensors_not_where_listed),
        cmocka_unit_test(test_index_json_errors),
        cmocka_unit_test(test_single_and_index_both),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

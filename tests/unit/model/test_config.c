/* test_config.c — config.json parsing: real Qwen3 configs in both rope_theta spellings, defaults
 * (head_dim, tie_word_embeddings, torch_dtype), every refusal with the message it gives, the
 * presets and the config.json the generator writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"
#include "gen.h"
#include "model_test_util.h"

#define LABEL "ckpt/config.json"

/* Qwen3-0.6B's config.json as published (transformers 4.51). */
static const char *const qwen3_06b[][2] = {
    {"architectures", "[\"Qwen3ForCausalLM\"]"},
    {"attention_bias", "false"},
    {"attention_dropout", "0.0"},
    {"bos_token_id", "151643"},
    {"eos_token_id", "151645"},
    {"head_dim", "128"},
    {"hidden_act", "\"silu\""},
    {"hidden_size", "1024"},
    {"initializer_range", "0.02"},
    {"intermediate_size", "3072"},
    {"max_position_embeddings", "40960"},
    {"max_window_layers", "28"},
    {"model_type", "\"qwen3\""},
    {"num_attention_heads", "16"},
    {"num_hidden_layers", "28"},
    {"num_key_value_heads", "8"},
    {"rms_norm_eps", "1e-06"},
    {"rope_scaling", "null"},
    {"rope_theta", "1000000"},
    {"sliding_window", "null"},
    {"tie_word_embeddings", "true"},
    {"torch_dtype", "\"bfloat16\""},
    {"transformers_version", "\"4.51.0\""},
    {"use_cache", "true"},
    {"use_sliding_window", "false"},
    {"vocab_size", "151936"},
};
#define N_BASE (sizeof qwen3_06b / sizeof qwen3_06b[0])

/* The base config with key set to raw (NULL raw: key removed; a key not in the base is added at
 * the end). A second override may be given (key2/raw2) or left NULL. */
static char *config_with(const char *key, const char *raw, const char *key2, const char *raw2)
{
    size_t cap = 8192, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n, "{\n");
    bool used1 = false, used2 = false, first = true;
    for (size_t i = 0; i < N_BASE; i++) {
        const char *k = qwen3_06b[i][0], *v = qwen3_06b[i][1];
        if (key && !strcmp(k, key)) {
            used1 = true;
            v = raw;
        } else if (key2 && !strcmp(k, key2)) {
            used2 = true;
            v = raw2;
        }
        if (!v) continue;
        n += (size_t)snprintf(s + n, cap - n, "%s  \"%s\": %s", first ? "" : ",\n", k, v);
        first = false;
    }
    if (key && !used1 && raw) n += (size_t)snprintf(s + n, cap - n, ",\n  \"%s\": %s", key, raw);
    if (key2 && !used2 && raw2)
        n += (size_t)snprintf(s + n, cap - n, ",\n  \"%s\": %s", key2, raw2);
    snprintf(s + n, cap - n, "\n}\n");
    return s;
}

static ld_status parse(const char *text, ld_config *c, ld_error *err)
{
    return ld_config_parse(text, strlen(text), LABEL, c, err);
}

static void test_real_qwen3_06b(void **state)
{
    (void)state;
    char *text = config_with(NULL, NULL, NULL, NULL);
    ld_config c;
    ld_error err = {0};
    assert_int_equal(parse(text, &c, &err), LD_OK);
    assert_string_equal(c.architecture, "Qwen3ForCausalLM");
    assert_int_equal(c.hidden_size, 1024);
    assert_int_equal(c.num_layers, 28);
    assert_int_equal(c.num_heads, 16);
    assert_int_equal(c.num_kv_heads, 8);
    assert_int_equal(c.head_dim, 128);
    assert_true(c.head_dim_explicit);
    assert_int_equal(c.intermediate_size, 3072);
    assert_int_equal(c.vocab_size, 151936);
    assert_int_equal(c.max_position_embeddings, 40960);
    assert_true(c.rms_norm_eps == 1e-6);
    assert_true(c.rope_theta == 1e6);
    assert_true(c.tie_word_embeddings);
    assert_int_equal(c.torch_dtype, LD_BF16);
    free(text);
}

static void test_qwen3_8b_untied(void **state)
{
    (void)state;
    const char *text =
        "{\"architectures\":[\"Qwen3ForCausalLM\"],\"hidden_size\":4096,\"num_hidden_layers\":36,"
        "\"num_attention_heads\":32,\"num_key_value_heads\":8,\"head_dim\":128,"
        "\"intermediate_size\":12288,\"vocab_size\":151936,\"max_position_embeddings\":40960,"
        "\"rms_norm_eps\":1e-06,\"rope_theta\":1000000,\"tie_word_embeddings\":false}";
    ld_config c;
    ld_error err = {0};
    assert_int_equal(parse(text, &c, &err), LD_OK);
    assert_int_equal(c.hidden_size, 4096);
    assert_int_equal(c.num_layers, 36);
    assert_int_equal(c.intermediate_size, 12288);
    assert_false(c.tie_word_embeddings);
    assert_int_equal(c.torch_dtype, LD_F32); /* absent: transformers' default */
}

static void test_rope_parameters_spelling(void **state)
{
    (void)state;
    ld_config c;
    ld_error err = {0};
    /* transformers 5: rope_theta only inside rope_parameters, dtype instead of torch_dtype. */
    char *text = config_with("rope_theta", NULL, "rope_parameters",
                             "{\"rope_theta\": 5000000.0, \"rope_type\": \"default\"}");
    assert_int_equal(parse(text, &c, &err), LD_OK);
    assert_true(c.rope_theta == 5e6);
    free(text);
    /* Both spellings, equal values: fine. */
    text = config_with("rope_parameters", "{\"rope_theta\": 1e6, \"rope_type\": \"default\"}",
                       "dtype", "\"bfloat16\"");
    assert_int_equal(parse(text, &c, &err), LD_OK);
    assert_true(c.rope_theta == 1e6);
    free(text);
}

static void test_defaults(void **state)
{
    (void)state;
    ld_config c;
    ld_error err = {0};
    /* head_dim absent (or null): hidden_size / num_attention_heads. */
    char *text = config_with("head_dim", NULL, NULL, NULL);
    assert_int_equal(parse(text, &c, &err), LD_OK);
    assert_int_equal(c.head_dim, 1024 / 16);
    assert_false(c.head_dim_explicit);
    free(text);
    text = config_with("head_dim", "null", NULL, NULL);
    assert_int_equal(parse(text, &c, &err), LD_OK);
    assert_int_equal(c.head_dim, 64);
    free(text);
    /* tie_word_embeddings absent: false, as in transformers. */
    text = config_with("tie_word_embeddings", NULL, NULL, NULL);
    assert_int_equal(parse(text, &c, &err), LD_OK);
    assert_false(c.tie_word_embeddings);
    free(text);
    text = config_with("torch_dtype", "\"float16\"", NULL, NULL);
    assert_int_equal(parse(text, &c, &err), LD_OK);
    assert_int_equal(c.torch_dtype, LD_F16);
    free(text);
    /* issue 15, item 11: a subnormal rope_theta is a finite number like 1e-300 (it was "not a
     * finite number": strtod flags the underflow) */
    static const char *const tiny[] = {"1e-300", "1e-308", "4.9e-324"};
    for (size_t i = 0; i < sizeof tiny / sizeof *tiny; i++) {
        text = config_with("rope_theta", tiny[i], NULL, NULL);
        assert_int_equal(parse(text, &c, &err), LD_OK);
        assert_true(c.rope_theta > 0 && c.rope_theta <= 1e-300);
        free(text);
    }
}

typedef struct bad_case {
    const char *key, *raw, *key2, *raw2;
    ld_status code;
    const char *message; /* the whole message after "ckpt/config.json: " must contain this */
} bad_case;

static const bad_case bad_cases[] = {
    {"architectures", "[\"LlamaForCausalLM\"]", NULL, NULL, LD_E_UNSUPPORTED,
     "architecture LlamaForCausalLM is not supported; layerdiff computes Qwen3ForCausalLM only"},
    {"architectures", "[\"Qwen3MoeForCausalLM\"]", "model_type", "\"qwen3_moe\"", LD_E_UNSUPPORTED,
     "Qwen3MoeForCausalLM: mixture-of-experts (MoE) models are not supported"},
    {"num_experts", "128", NULL, NULL, LD_E_UNSUPPORTED,
     "num_experts = 128: mixture-of-experts (MoE) models are not supported"},
    {"num_experts", "0", "architectures", "[\"Qwen3ForCausalLM\", \"Other\"]", LD_E_INPUT,
     "architectures must list exactly one architecture, found 2"},
    {"architectures", NULL, NULL, NULL, LD_E_INPUT, "architectures is missing"},
    {"model_type", "\"llama\"", NULL, NULL, LD_E_UNSUPPORTED,
     "model_type is \"llama\": only \"qwen3\" is supported"},
    {"use_sliding_window", "true", NULL, NULL, LD_E_UNSUPPORTED,
     "use_sliding_window is true: sliding-window attention is not supported"},
    {"attention_bias", "true", NULL, NULL, LD_E_UNSUPPORTED,
     "attention_bias is true: attention with bias terms is not supported"},
    {"rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", NULL, NULL, LD_E_UNSUPPORTED,
     "rope_scaling is set (not null): RoPE scaling is not supported"},
    {"rope_parameters", "{\"rope_type\": \"yarn\", \"rope_theta\": 1000000}", NULL, NULL,
     LD_E_UNSUPPORTED, "rope_parameters.rope_type is \"yarn\": only \"default\" RoPE"},
    {"rope_parameters", "{\"rope_type\": \"default\", \"factor\": 2.0}", NULL, NULL,
     LD_E_UNSUPPORTED, "rope_parameters.factor is set"},
    {"hidden_act", "\"gelu\"", NULL, NULL, LD_E_UNSUPPORTED, "hidden_act is \"gelu\": only silu"},
    {"layer_types", "[\"full_attention\", \"sliding_attention\"]", NULL, NULL, LD_E_UNSUPPORTED,
     "layer_types[1] is \"sliding_attention\": only full attention is supported"},
    {"hidden_size", NULL, NULL, NULL, LD_E_INPUT, "hidden_size is missing"},
    {"num_key_value_heads", NULL, NULL, NULL, LD_E_INPUT, "num_key_value_heads is missing"},
    {"max_position_embeddings", NULL, NULL, NULL, LD_E_INPUT, "max_position_embeddings is missing"},
    {"vocab_size", NULL, NULL, NULL, LD_E_INPUT, "vocab_size is missing"},
    {"rms_norm_eps", NULL, NULL, NULL, LD_E_INPUT, "rms_norm_eps is missing"},
    {"rope_theta", NULL, NULL, NULL, LD_E_INPUT,
     "rope_theta is missing (neither top-level nor in rope_parameters)"},
    {"hidden_size", "0", NULL, NULL, LD_E_INPUT, "hidden_size must be a positive integer, found 0"},
    {"num_hidden_layers", "-4", NULL, NULL, LD_E_INPUT,
     "num_hidden_layers must be a positive integer, found -4"},
    {"hidden_size", "1024.5", NULL, NULL, LD_E_INPUT,
     "hidden_size must be an integer, found 1024.5"},
    {"hidden_size", "1024.0", NULL, NULL, LD_E_INPUT,
     "hidden_size must be an integer, found 1024.0"},
    {"intermediate_size", "3.072e3", NULL, NULL, LD_E_INPUT,
     "intermediate_size must be an integer, found 3.072e3"},
    {"hidden_size", "\"1024\"", NULL, NULL, LD_E_INPUT,
     "hidden_size must be a positive integer, found a string"},
    {"vocab_size", "99999999999999999999999", NULL, NULL, LD_E_INPUT,
     "vocab_size must be a positive integer, found 99999999999999999999999"},
    {"hidden_size", "1000000", NULL, NULL, LD_E_INPUT,
     "hidden_size is 1000000, more than the 65536 layerdiff accepts"},
    {"num_hidden_layers", "100000", NULL, NULL, LD_E_INPUT,
     "num_hidden_layers is 100000, more than the 1024 layerdiff accepts"},
    {"num_key_value_heads", "3", NULL, NULL, LD_E_INPUT,
     "num_attention_heads 16 is not a multiple of num_key_value_heads 3"},
    {"head_dim", "127", NULL, NULL, LD_E_INPUT, "head_dim 127 is odd"},
    {"head_dim", NULL, "num_attention_heads", "24", LD_E_INPUT,
     "head_dim is missing and hidden_size 1024 is not a multiple of num_attention_heads 24"},
    {"rms_norm_eps", "0", NULL, NULL, LD_E_INPUT, "rms_norm_eps 0 is outside (0, 1)"},
    {"rms_norm_eps", "1e400", NULL, NULL, LD_E_INPUT, "rms_norm_eps is 1e400, not a finite number"},
    {"rope_theta", "-1", NULL, NULL, LD_E_INPUT, "rope_theta -1 is not a positive number"},
    /* issue 15, item 11: numbers in messages as written, not -9.9999999999999995e-07; one that
     * underflows to 0 is named 0 */
    {"rms_norm_eps", "-1e-6", NULL, NULL, LD_E_INPUT, "rms_norm_eps -1e-06 is outside (0, 1)"},
    {"rope_theta", "1e-400", NULL, NULL, LD_E_INPUT, "rope_theta 0 is not a positive number"},
    {"rope_parameters", "{\"rope_theta\": 10000.0, \"rope_type\": \"default\"}", NULL, NULL,
     LD_E_INPUT, "rope_theta is 1000000 but rope_parameters.rope_theta is 10000"},
    {"tie_word_embeddings", "\"yes\"", NULL, NULL, LD_E_INPUT,
     "tie_word_embeddings must be true or false, found a string"},
    {"torch_dtype", "\"float64\"", NULL, NULL, LD_E_INPUT,
     "torch_dtype \"float64\" is not supported (bfloat16, float16 or float32)"},
    {"dtype", "\"float16\"", NULL, NULL, LD_E_INPUT,
     "torch_dtype is bfloat16 but dtype is float16"},
    {"quantization_config", "{\"bits\": 4, \"bits\": 8}", NULL, NULL, LD_E_INPUT,
     "duplicate key \"bits\" in an object"},
    {"rope_parameters", "{\"rope_theta\": 1e6, \"rope_theta\": 1e6}", NULL, NULL, LD_E_INPUT,
     "duplicate key \"rope_theta\" in rope_parameters"},
};

static void test_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *b = &bad_cases[i];
        char *text = config_with(b->key, b->raw, b->key2, b->raw2);
        ld_config c;
        ld_error err = {0};
        ld_status st = parse(text, &c, &err);
        print_message("case %zu: %s\n", i, err.msg);
        assert_int_equal(st, b->code);
        assert_contains(err.msg, LABEL ": ");
        assert_contains(err.msg, b->message);
        free(text);
    }
}

typedef struct raw_case {
    const char *text;
    const char *message;
} raw_case;

static const raw_case raw_cases[] = {
    {"[]", "line 1, column 1: expected an object, found an array"},
    {"", "line 1, column 1: expected an object, found end of input"},
    {"{\"hidden_size\": 64,}", "line 1, column 20: expected a key (a string), found '}'"},
    {"{\"hidden_size\": 064}", "expected ',' or '}', found '6'"},
    {"{\"hidden_size\": 64}\n{}",
     "line 2, column 1: unexpected '{' after the end of the JSON value"},
    {"{\"hidden_size\": 64, \"hidden_size\": 64}", "duplicate key \"hidden_size\""},
    {"{\"a\xff\": 1}", "invalid UTF-8 (byte 0xff) inside a string"},
    {"{\"a\": \"\\ud800\"}", "unpaired UTF-16 surrogate \\ud800"},
    {"{\"a\": \"\\u0000\"}", "\\u0000 (a NUL character)"},
    {"{\"a\": \"x\ty\"}", "control character 0x09 inside a string"},
    {"{\"a\": NaN}", "expected a JSON value, found 'N'"},
    {"{\"a\": tru}", "malformed literal (expected 'true')"},
    {"{\"a\": "
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]"
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
     "nested more than 64 levels deep"},
    {"{\"a\": \"unterminated}", "string is not closed before the end of the input"},
};

static void test_syntax_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof raw_cases / sizeof raw_cases[0]; i++) {
        ld_config c;
        ld_error err = {0};
        ld_status st = parse(raw_cases[i].text, &c, &err);
        print_message("raw case %zu: %s\n", i, err.msg);
        assert_int_equal(st, LD_E_INPUT);
        assert_contains(err.msg, LABEL ": ");
        assert_contains(err.msg, raw_cases[i].message);
    }
}

static void test_load_names_the_file(void **state)
{
    (void)state;
    ld_config c;
    ld_error err = {0};
    assert_int_equal(ld_config_load("/nonexistent/dir/config.json", &c, &err), LD_E_INPUT);
    assert_contains(err.msg, "/nonexistent/dir/config.json: cannot open");
}

static void test_presets(void **state)
{
    (void)state;
    ld_config c;
    ld_error err = {0};
    assert_int_equal(ld_preset_config("tiny", &c, &err), LD_OK);
    assert_int_equal(c.hidden_size, 64);
    assert_int_equal(c.num_layers, 4);
    assert_int_equal(c.num_heads, 4);
    assert_int_equal(c.num_kv_heads, 2);
    assert_int_equal(c.head_dim, 32);
    assert_int_equal(c.intermediate_size, 176);
    assert_int_equal(c.vocab_size, 512);
    assert_int_equal(c.max_position_embeddings, 1024);
    assert_true(c.rms_norm_eps == 1e-6 && c.rope_theta == 1e6 && c.tie_word_embeddings);
    assert_int_equal(ld_config_validate(&c, "tiny", &err), LD_OK);

    assert_int_equal(ld_preset_config("small", &c, &err), LD_OK);
    assert_int_equal(c.hidden_size, 256);
    assert_int_equal(c.num_layers, 4);
    assert_int_equal(c.num_heads, 8);
    assert_int_equal(c.num_kv_heads, 2);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.intermediate_size, 691);
    assert_int_equal(c.vocab_size, 1000);
    assert_int_equal(c.max_position_embeddings, 2048);
    assert_true(c.rms_norm_eps == 1e-6 && c.rope_theta == 1e6 && c.tie_word_embeddings);

    assert_int_equal(ld_preset_config("qwen3-0.6b", &c, &err), LD_OK);
    assert_int_equal(c.hidden_size, 1024);
    assert_int_equal(c.num_layers, 28);
    assert_int_equal(c.num_heads, 16);
    assert_int_equal(c.num_kv_heads, 8);
    assert_int_equal(c.head_dim, 128);
    assert_int_equal(c.intermediate_size, 3072);
    assert_int_equal(c.vocab_size, 151936);
    assert_int_equal(c.max_position_embeddings, 40960);
    assert_true(c.rms_norm_eps == 1e-6 && c.rope_theta == 1e6 && c.tie_word_embeddings);

    assert_int_equal(ld_preset_config("huge", &c, &err), LD_E_USAGE);
    assert_string_equal(err.msg, "unknown preset 'huge' (presets: tiny, small, qwen3-0.6b)");

    /* validate catches what a hand-filled config gets wrong */
    ld_preset_config("tiny", &c, &err);
    c.num_kv_heads = 3;
    assert_int_equal(ld_config_validate(&c, "tiny", &err), LD_E_INPUT);
    assert_contains(err.msg, "num_attention_heads 4 is not a multiple of num_key_value_heads 3");
}

static void test_hf_json(void **state)
{
    (void)state;
    ld_config c, back;
    ld_error err = {0};
    ld_preset_config("tiny", &c, &err);
    char *json = ld_config_to_hf_json(&c);
    assert_non_null(json);
    /* Exactly what transformers writes for this config (json.dumps indent=2, sorted keys). */
    assert_string_equal(json, "{\n"
                              "  \"architectures\": [\n"
                              "    \"Qwen3ForCausalLM\"\n"
                              "  ],\n"
                              "  \"attention_bias\": false,\n"
                              "  \"attention_dropout\": 0.0,\n"
                              "  \"head_dim\": 32,\n"
                              "  \"hidden_act\": \"silu\",\n"
                              "  \"hidden_size\": 64,\n"
                              "  \"initializer_range\": 0.02,\n"
                              "  \"intermediate_size\": 176,\n"
                              "  \"max_position_embeddings\": 1024,\n"
                              "  \"max_window_layers\": 4,\n"
                              "  \"model_type\": \"qwen3\",\n"
                              "  \"num_attention_heads\": 4,\n"
                              "  \"num_hidden_layers\": 4,\n"
                              "  \"num_key_value_heads\": 2,\n"
                              "  \"rms_norm_eps\": 1e-06,\n"
                              "  \"rope_scaling\": null,\n"
                              "  \"rope_theta\": 1000000.0,\n"
                              "  \"sliding_window\": null,\n"
                              "  \"tie_word_embeddings\": true,\n"
                              "  \"torch_dtype\": \"bfloat16\",\n"
                              "  \"transformers_version\": \"4.51.0\",\n"
                              "  \"use_cache\": true,\n"
                              "  \"use_sliding_window\": false,\n"
                              "  \"vocab_size\": 512\n"
                              "}\n");
    assert_int_equal(ld_config_parse(json, strlen(json), "gen", &back, &err), LD_OK);
    assert_memory_equal(&c, &back, sizeof c);
    free(json);

    /* The real model's token ids appear only where the vocabulary holds them. */
    ld_preset_config("qwen3-0.6b", &c, &err);
    c.tie_word_embeddings = false;
    c.torch_dtype = LD_F32;
    json = ld_config_to_hf_json(&c);
    assert_contains(json, "\"bos_token_id\": 151643,\n  \"eos_token_id\": 151645,\n");
    assert_contains(json, "\"tie_word_embeddings\": false,\n  \"torch_dtype\": \"float32\",");
    assert_int_equal(ld_config_parse(json, strlen(json), "gen", &back, &err), LD_OK);
    assert_memory_equal(&c, &back, sizeof c);
    free(json);
}

/* Deterministic mutations of a real config.json: each gives a clean result, never a crash (a
 * small fuzz pass under the sanitizer build). */
static void test_mutations(void **state)
{
    (void)state;
    char *base = config_with(NULL, NULL, NULL, NULL);
    size_t len = strlen(base);
    char *text = malloc(len + 1);
    const char special[] = "{}[]\",:0123456789-.eE tfn\\u";
    uint64_t x = 99;
    size_t ok = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(text, base, len + 1);
        for (int e = 0; e < 1 + iter % 3; e++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t pos = (size_t)(x >> 33) % len;
            text[pos] = (x >> 20) & 1 ? special[(x >> 8) % (sizeof special - 1)] : (char)(x >> 12);
        }
        size_t cut = iter % 5 == 0 ? (size_t)(x >> 40) % (len + 1) : len;
        ld_config c;
        ld_error err = {0};
        if (ld_config_parse(text, cut, LABEL, &c, &err) == LD_OK)
            ok++;
        else
            assert_true(strncmp(err.msg, LABEL ": ", strlen(LABEL) + 2) == 0);
    }
    print_message("%zu of 20000 mutated configs still valid\n", ok);
    free(text);
    free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_qwen3_06b),
        cmocka_unit_test(test_qwen3_8b_untied),
        cmocka_unit_test(test_rope_parameters_spelling),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_load_names_the_file),
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_hf_json),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* config.h — the Qwen3 model configuration read from a checkpoint's config.json (docs/model.md,
 * docs/tags.md). Parsing refuses what the code does not compute (other architectures, MoE, sliding
 * window, attention bias, rope scaling) and anything missing, inconsistent or absurdly large. */
#ifndef LD_CONFIG_H
#define LD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "layerdiff/dtype.h"
#include "layerdiff/error.h"
#include "layerdiff/tags.h"

/* Upper bounds on what a config may state; a real Qwen3 is far inside every one. */
#define LD_CFG_MAX_HIDDEN 65536
#define LD_CFG_MAX_LAYERS 1024
#define LD_CFG_MAX_HEADS 1024
#define LD_CFG_MAX_HEAD_DIM 1024
#define LD_CFG_MAX_INTERMEDIATE 1048576
#define LD_CFG_MAX_VOCAB 16777216
#define LD_CFG_MAX_POSITIONS 16777216

typedef struct ld_config {
    char architecture[64];   /* "Qwen3ForCausalLM" */
    int hidden_size;         /* H */
    int num_layers;          /* num_hidden_layers */
    int num_heads;           /* Hq = num_attention_heads */
    int num_kv_heads;        /* Hkv = num_key_value_heads */
    int head_dim;            /* D, explicit in config.json; hidden/heads only when absent */
    bool head_dim_explicit;
    int intermediate_size;   /* I */
    int vocab_size;          /* V */
    int max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;       /* top-level or rope_parameters.rope_theta */
    bool tie_word_embeddings;
    ld_dtype torch_dtype;    /* stated storage dtype (informative; tensors carry their own) */
} ld_config;

/* Parses config.json text; label (a path) prefixes messages. */
ld_status ld_config_parse(const char *json, size_t len, const char *label, ld_config *out,
                          ld_error *err);
ld_status ld_config_load(const char *path, ld_config *out, ld_error *err);
/* Checks a filled config (also used for presets): ranges and consistency. */
ld_status ld_config_validate(const ld_config *c, const char *label, ld_error *err);
/* The dimensions the probe shapes of layerdiff/tags.h are made of. */
ld_tag_sizes ld_config_tag_sizes(const ld_config *c);
/* config.json text as Hugging Face writes it for Qwen3 (malloc'd, pretty-printed). */
char *ld_config_to_hf_json(const ld_config *c);

#endif

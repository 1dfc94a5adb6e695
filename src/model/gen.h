/* gen.h — the checkpoint generator: writes config.json and safetensors files Hugging Face
 * transformers could load, with random but sensible, deterministic weights. */
#ifndef LD_GEN_H
#define LD_GEN_H

#include <stdint.h>

#include "config.h"

typedef struct ld_gen_options {
    const char *preset; /* "tiny", "small", "qwen3-0.6b" */
    uint64_t seed;
    ld_dtype dtype;     /* storage dtype of every tensor */
    int tied;           /* 1 tied, 0 untied, -1 the preset's default */
    int shards;         /* 1 = model.safetensors; >1 = index + N shards */
    void (*progress)(void *ctx, size_t done, size_t total); /* may be NULL */
    void *progress_ctx;
} ld_gen_options;

/* The preset's config; LD_E_USAGE naming the valid presets when unknown. */
ld_status ld_preset_config(const char *preset, ld_config *out, ld_error *err);
/* A comma-separated list of preset names, for messages and --help. */
const char *ld_preset_names(void);
/* Writes the checkpoint into dir (created if missing). Same options: byte-identical files. */
ld_status ld_gen_model(const char *dir, const ld_gen_options *opt, ld_error *err);

#endif

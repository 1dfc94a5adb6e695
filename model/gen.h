/* gen.h — the checkpoint generator: writes config.json and safetensors files Hugging Face
 * transformers could load, with random but sensible, deterministic weights. */
#ifndef LD_GEN_H
#define LD_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct ld_gen_options {
    const char *preset; /* "tiny", "small", "qwen3-0.6b" */
    uint64_t seed;
    ld_dtype dtype;     /* storage dtype of every tensor */
    int tied;           /* 1 tied, 0 untied, -1 the preset's default */
    int shards;         /* 1 = model.safetensors; >1 = index + N shards */
    void (*progress)(void *ctx, size_t done, size_t total); /* bytes of tensor data; may be NULL */
    void *progress_ctx;
    int force;          /* 1: replace a checkpoint already in dir (once the new one is complete) */
} ld_gen_options;

/* The preset's config; LD_E_USAGE naming the valid presets when unknown. */
ld_status ld_preset_config(const char *preset, ld_config *out, ld_error *err);
/* A comma-separated list of preset names, for messages and --help. */
const char *ld_preset_names(void);
/* gen-model's tokenizer.json for a vocabulary of vocab_size ids (at least 259): byte-level BPE
 * with Qwen2's NFC normalizer, split regex and three special tokens (<|endoftext|>, <|im_start|>,
 * <|im_end|>), merges learned from a fixed English and code text (the most frequent pair first)
 * until the vocabulary is full or every training word is one token. *json is malloc'd (the
 * caller frees), *len bytes. */
ld_status ld_gen_tokenizer_json(int vocab_size, char **json, size_t *len, ld_error *err);
/* Writes the checkpoint into dir (created if missing), with gen-model's tokenizer.json (above).
 * Same options: byte-identical files.
 * A dir that already holds config.json, tokenizer.json, model.safetensors,
 * model.safetensors.index.json or model-*-of-*.safetensors is refused (LD_E_USAGE) unless
 * opt->force, which replaces them: the new checkpoint is written into a staging directory inside
 * dir (.gen-model-XXXXXX) and swapped in by renames only once complete (a failed swap is undone),
 * so old and new shards never mix and a run that fails or is killed leaves the old checkpoint
 * whole (a killed run leaves its staging directory behind).
 *
 * Values depend only on (seed, tensor name, element index), never on dtype or sharding:
 *   key      = mix64(seed + G) ^ fnv1a64(name)        G = 0x9e3779b97f4a7c15, mix64 = splitmix64's
 *   x(n)     = mix64(key + (n + 1) * G)               output function (so x is the splitmix64
 *   u(n)     = (x(n) >> 11) * 2^-53                   stream seeded with key)
 *   norm weights (names ending in "norm.weight"):  w[i] = 0.8 + 0.4 * u(i)   (uniform [0.8, 1.2))
 *   every other weight, elements 2k and 2k+1 (Box-Muller, in double):
 *            r = sqrt(-2 ln(u(2k) + 2^-53)),  a = 2 pi u(2k+1)
 *            w[2k] = 0.02 r cos a,  w[2k+1] = 0.02 r sin a               (N(0, 0.02^2))
 * and each value is rounded to float, then to the storage dtype (ld_f32_to_bf16 / ld_f32_to_f16).
 * Files match what transformers' save_pretrained writes: tensors sorted by name inside a file,
 * header {"__metadata__":{"format":"pt"}, ...} padded with spaces to a multiple of 8; shards are
 * contiguous runs of the model's parameter order of about equal size. */
ld_status ld_gen_model(const char *dir, const ld_gen_options *opt, ld_error *err);

#endif

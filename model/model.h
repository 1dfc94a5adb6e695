/* model.h — a Qwen3 checkpoint opened for inference: config plus every weight bound by name and
 * checked by shape, zero-copy in its stored dtype (single file or sharded with an index). */
#ifndef LD_MODEL_H
#define LD_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "safetensors.h"

typedef struct ld_layer_weights {
    ld_tensor attn_norm; /* [H]        model.layers.N.input_layernorm.weight */
    ld_tensor wq;        /* [Hq*D, H]  self_attn.q_proj.weight */
    ld_tensor wk;        /* [Hkv*D, H] self_attn.k_proj.weight */
    ld_tensor wv;        /* [Hkv*D, H] self_attn.v_proj.weight */
    ld_tensor q_norm;    /* [D]        self_attn.q_norm.weight */
    ld_tensor k_norm;    /* [D]        self_attn.k_norm.weight */
    ld_tensor wo;        /* [H, Hq*D]  self_attn.o_proj.weight */
    ld_tensor mlp_norm;  /* [H]        post_attention_layernorm.weight */
    ld_tensor wg;        /* [I, H]     mlp.gate_proj.weight */
    ld_tensor wu;        /* [I, H]     mlp.up_proj.weight */
    ld_tensor wd;        /* [H, I]     mlp.down_proj.weight */
} ld_layer_weights;

typedef struct ld_model {
    ld_config cfg;
    ld_tensor embed;          /* [V, H] model.embed_tokens.weight */
    ld_tensor final_norm;     /* [H]    model.norm.weight */
    ld_tensor lm_head;        /* [V, H] lm_head.weight, or embed when tied */
    ld_layer_weights *layers; /* [num_layers] */
    char fingerprint[17];     /* hex of a 64-bit hash of config.json and sampled weight bytes */
    uint64_t checkpoint_bytes;/* sum of the safetensors file sizes */
    size_t n_files;
    ld_st_file **files;       /* the mapped shards */
    char *dir;
    bool lm_head_ignored;     /* tied, yet lm_head.weight is stored: ignored, as transformers does */
} ld_model;

/* Opens DIR/config.json and DIR/model.safetensors or DIR/model.safetensors.index.json. Missing or
 * unexpected tensors are listed by name in the error. The fingerprint hashes config.json's bytes
 * and, for every tensor in name order, its name, dtype, shape and a sample of its bytes (all of a
 * tensor up to 640 bytes; else the first and last 256 bytes and 16 evenly spaced 8-byte words, read
 * with pread so that sampling neither maps nor reads ahead the rest of the file): it
 * tells checkpoints apart without reading 1.2 GB, but two checkpoints differing only in unsampled
 * bytes share it. It does not depend on how the checkpoint is sharded. */
ld_status ld_model_open(ld_model **out, const char *dir, ld_error *err);
void ld_model_close(ld_model *m);

/* LD_E_USAGE when writing output would overwrite one of the checkpoint's files: config.json, the
 * index, a shard, tokenizer.json (see ld_refuse_overwrite). A NULL m has no files. */
ld_status ld_model_refuse_overwrite(const ld_model *m, const char *output, ld_error *err);

/* LD_OK while no shard was truncated or rewritten in place since the model was opened; else
 * ld_st_check_unchanged's error naming the first that was. */
ld_status ld_model_check_unchanged(const ld_model *m, ld_error *err);
/* The path of the shard whose mapping holds addr, or NULL. Async-signal-safe (reads fields only):
 * a SIGBUS handler's way to name the file that was truncated under the run. */
const char *ld_model_file_at(const ld_model *m, const void *addr);

/* The "model" object of a probe header, as compact JSON (malloc'd): architecture, every config
 * field the math uses, fingerprint, checkpoint dtype. */
char *ld_model_header_json(const ld_model *m);

#endif

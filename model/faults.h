/* faults.h — the fault zoo (docs/faults.md): parsing of --inject FAULT[@LAYER][=VALUE] specs
 * and the queries both backends make ("is this fault active at this layer, with what value?").
 * The faults themselves are alternative code paths inside the ops of each backend, not here. */
#ifndef LD_FAULTS_H
#define LD_FAULTS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "layerdiff/error.h"
#include "layerdiff/tags.h"

typedef enum ld_fault_value { LD_FV_NONE, LD_FV_INT, LD_FV_REAL, LD_FV_TAG } ld_fault_value;

/* X(ENUM, "name", value kind, "first divergence tag", step of first divergence, "what the buggy
 * kernel does"). For nan=TAG the first divergence is TAG itself. */
#define LD_FAULT_TABLE(X)                                                                          \
    X(RMSNORM_MUL_VAR, "rmsnorm_mul_var", LD_FV_NONE, "attn_norm", 0,                              \
      "RMSNorm multiplies by mean(x^2)+eps instead of its inverse square root")                    \
    X(QK_NORM_BLOCK, "qk_norm_block", LD_FV_INT, "q_norm", 0,                                      \
      "q/k RMS taken over VALUE-element blocks instead of the whole head")                         \
    X(QK_NORM_SKIP, "qk_norm_skip", LD_FV_NONE, "q_norm", 0, "q/k norm left out")                  \
    X(Q_PROJ_ZERO, "q_proj_zero", LD_FV_NONE, "q_proj", 0,                                         \
      "a fused stage never writes q (stays zero)")                                                 \
    X(ROPE_INTERLEAVED, "rope_interleaved", LD_FV_NONE, "q_rope", 0,                               \
      "RoPE rotates pairs (2i, 2i+1) instead of (i, i+D/2); needs a prompt of >= 2 tokens")        \
    X(ROPE_THETA, "rope_theta", LD_FV_REAL, "q_rope", 0, "RoPE base VALUE instead of the config's") \
    X(GQA_MODULO, "gqa_modulo", LD_FV_NONE, "attn_out", 0,                                         \
      "query head j reads kv head j mod Hkv instead of j / (Hq/Hkv)")                              \
    X(NO_CAUSAL_MASK, "no_causal_mask", LD_FV_NONE, "attn_out", 0,                                 \
      "prefill attends to future tokens")                                                          \
    X(ATTN_SCALE, "attn_scale", LD_FV_REAL, "attn_out", 0,                                         \
      "softmax scale VALUE instead of 1/sqrt(D)")                                                  \
    X(KV_APPEND_OFF_BY_ONE, "kv_append_off_by_one", LD_FV_NONE, "attn_out", 1,                     \
      "decode writes K/V one slot early")                                                          \
    X(SKIP_ATTN_RESIDUAL, "skip_attn_residual", LD_FV_NONE, "attn_residual", 0,                    \
      "the attention residual add is left out")                                                    \
    X(SWAP_GATE_UP, "swap_gate_up", LD_FV_NONE, "gate_proj", 0, "gate and up weights swapped")     \
    X(SILU_AS_GELU, "silu_as_gelu", LD_FV_NONE, "mlp_act", 0, "GELU instead of SiLU")              \
    X(O_PROJ_WEIGHT_SHIFT, "o_proj_weight_shift", LD_FV_NONE, "o_proj", 0,                         \
      "loads layer N+1's o_proj (a loader index bug; the last layer wraps to layer 0)")            \
    X(NAN, "nan", LD_FV_TAG, "", 0, "one NaN written into TAG (the middle element)")               \
    X(RMSNORM_EPS, "rmsnorm_eps", LD_FV_REAL, "attn_norm", 0,                                      \
      "RMSNorm (hidden and q/k) uses epsilon VALUE instead of the config's")                      \
    X(SOFTMAX_BF16, "softmax_bf16", LD_FV_NONE, "attn_out", 0,                                     \
      "softmax exponentials and their sum accumulated in bf16")

typedef enum ld_fault_kind {
#define LD_FAULT_ENUM_(e, name, vk, tag, step, what) LD_FAULT_##e,
    LD_FAULT_TABLE(LD_FAULT_ENUM_)
#undef LD_FAULT_ENUM_
        LD_FAULT_COUNT
} ld_fault_kind;

#define LD_MAX_FAULTS 16
#define LD_ALL_LAYERS (-1)

typedef struct ld_fault {
    ld_fault_kind kind;
    int layer;     /* LD_ALL_LAYERS when no @LAYER was given */
    int ivalue;    /* LD_FV_INT */
    double value;  /* LD_FV_REAL */
    ld_tag tag;    /* LD_FV_TAG */
    char text[64]; /* canonical spec: "qk_norm_block@2=16" */
} ld_fault;

typedef struct ld_fault_set {
    int n;
    ld_fault items[LD_MAX_FAULTS];
} ld_fault_set;

/* Parses "NAME[@LAYER][=VALUE]" (the value may also come first: "NAME=VALUE@LAYER"). Unknown names
 * and bad values fail with LD_E_USAGE and a message listing the valid faults. */
ld_status ld_fault_parse(const char *spec, ld_fault *out, ld_error *err);
ld_status ld_fault_set_add(ld_fault_set *set, const char *spec, ld_error *err);
/* Checks layers and values against the model (layer < num_layers, block <= head_dim, ...). */
ld_status ld_fault_set_validate(const ld_fault_set *set, const ld_config *cfg, ld_error *err);

/* The fault of this kind active at this layer (a layer-less query, LD_ALL_LAYERS, matches only
 * faults given without @LAYER), or NULL. */
const ld_fault *ld_fault_at(const ld_fault_set *set, ld_fault_kind kind, int layer);
/* The nan fault for (tag, layer), or NULL. Model-level tags are queried with LD_NO_LAYER. */
const ld_fault *ld_fault_nan_at(const ld_fault_set *set, ld_tag tag, int layer);

const char *ld_fault_name(ld_fault_kind k);
const char *ld_fault_description(ld_fault_kind k);
ld_fault_value ld_fault_value_kind(ld_fault_kind k);
/* Tag and step where the fault first shows (for nan, the fault's own tag). */
const char *ld_fault_expected_tag(const ld_fault *f);
int ld_fault_expected_step(const ld_fault *f);
/* One line per fault: "name[=VALUE]  description", for --list-faults. Returns a static string. */
const char *ld_fault_list_text(void);

#endif

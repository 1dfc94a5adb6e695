/* layerdiff/tags.h — the probe tags (docs/tags.md) in execution order: the op graph,
 * stated once (each tag's shape, family, op and the probes that op reads); the rest derives from
 * it. The schema (schemas/probe.schema.json) carries the same tag list and a test holds the two
 * together. Not here: the math of the ops (reference/ops.h). */
#ifndef LAYERDIFF_TAGS_H
#define LAYERDIFF_TAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Logical shapes, in model dimensions: T tokens of the step, H hidden, Hq/Hkv heads, D head_dim,
 * I intermediate, V vocab. */
typedef enum ld_shape_kind {
    LD_SHAPE_T_H,    /* [T,H]      */
    LD_SHAPE_T_HQ_D, /* [T,Hq,D]   */
    LD_SHAPE_T_HKV_D,/* [T,Hkv,D]  */
    LD_SHAPE_T_I,    /* [T,I]      */
    LD_SHAPE_T_V     /* [T,V]      */
} ld_shape_kind;

/* Tag families, in the order a report shows them (one chart each in the HTML report).
 * X(ENUM, "title"). */
#define LD_FAMILY_TABLE(X)                                                                         \
    X(ENDS, "embedding and head") /* the model-level tags, outside every layer */                  \
    X(NORMS, "norms")                                                                              \
    X(ATTN_PROJ, "attention projections")                                                          \
    X(QK_NORM_ROPE, "q/k norm and RoPE")                                                           \
    X(ATTENTION, "attention")                                                                      \
    X(MLP, "MLP")                                                                                  \
    X(RESIDUAL, "residual stream")

typedef enum ld_family {
#define LD_FAMILY_ENUM_(e, title) LD_FAMILY_##e,
    LD_FAMILY_TABLE(LD_FAMILY_ENUM_)
#undef LD_FAMILY_ENUM_
        LD_FAMILY_COUNT
} ld_family;

/* The inputs column of LD_TAG_TABLE: a parenthesised list of these. */
#define LD_IN(TAG) {LD_INPUT_SAME, LD_TAG_##TAG}
#define LD_IN_KV(TAG) {LD_INPUT_KV, LD_TAG_##TAG}
#define LD_IN_STREAM {LD_INPUT_STREAM, LD_TAG_UNKNOWN}
/* embed's: the token ids of the prompt and of the decoded tokens, no probe */
#define LD_IN_TOKENS {LD_INPUT_END, LD_TAG_UNKNOWN}

/* The op graph (docs/tags.md), one row per tag:
 * X(ENUM, "name", per_layer, shape, FAMILY, "op producing it", (inputs the op reads)).
 * Order is execution order: embed, the per-layer tags, then final_norm and logits. Adding an op
 * means a row here, its step in both forward passes (reference/, cuda/) and its kernels. */
#define LD_TAG_TABLE(X)                                                                            \
    X(EMBED, "embed", false, LD_SHAPE_T_H, ENDS, "embedding lookup", (LD_IN_TOKENS))               \
    X(ATTN_NORM, "attn_norm", true, LD_SHAPE_T_H, NORMS, "input RMSNorm", (LD_IN_STREAM))          \
    X(Q_PROJ, "q_proj", true, LD_SHAPE_T_HQ_D, ATTN_PROJ, "q projection", (LD_IN(ATTN_NORM)))      \
    X(K_PROJ, "k_proj", true, LD_SHAPE_T_HKV_D, ATTN_PROJ, "k projection", (LD_IN(ATTN_NORM)))     \
    X(V_PROJ, "v_proj", true, LD_SHAPE_T_HKV_D, ATTN_PROJ, "v projection", (LD_IN(ATTN_NORM)))     \
    X(Q_NORM, "q_norm", true, LD_SHAPE_T_HQ_D, QK_NORM_ROPE, "q/k norm", (LD_IN(Q_PROJ)))          \
    X(K_NORM, "k_norm", true, LD_SHAPE_T_HKV_D, QK_NORM_ROPE, "q/k norm", (LD_IN(K_PROJ)))         \
    X(Q_ROPE, "q_rope", true, LD_SHAPE_T_HQ_D, QK_NORM_ROPE, "RoPE", (LD_IN(Q_NORM)))              \
    X(K_ROPE, "k_rope", true, LD_SHAPE_T_HKV_D, QK_NORM_ROPE, "RoPE", (LD_IN(K_NORM)))             \
    X(ATTN_OUT, "attn_out", true, LD_SHAPE_T_HQ_D, ATTENTION,                                      \
      "attention (softmax(QK^T/sqrt(D))V)",                                                        \
      (LD_IN(Q_ROPE), LD_IN_KV(K_ROPE), LD_IN_KV(V_PROJ)))                                         \
    X(O_PROJ, "o_proj", true, LD_SHAPE_T_H, ATTN_PROJ, "output projection", (LD_IN(ATTN_OUT)))     \
    X(ATTN_RESIDUAL, "attn_residual", true, LD_SHAPE_T_H, RESIDUAL, "attention residual add",      \
      (LD_IN_STREAM, LD_IN(O_PROJ)))                                                               \
    X(MLP_NORM, "mlp_norm", true, LD_SHAPE_T_H, NORMS, "post-attention RMSNorm",                   \
      (LD_IN(ATTN_RESIDUAL)))                                                                      \
    X(GATE_PROJ, "gate_proj", true, LD_SHAPE_T_I, MLP, "gate projection", (LD_IN(MLP_NORM)))       \
    X(UP_PROJ, "up_proj", true, LD_SHAPE_T_I, MLP, "up projection", (LD_IN(MLP_NORM)))             \
    X(MLP_ACT, "mlp_act", true, LD_SHAPE_T_I, MLP, "SiLU(gate)*up",                                \
      (LD_IN(GATE_PROJ), LD_IN(UP_PROJ)))                                                          \
    X(DOWN_PROJ, "down_proj", true, LD_SHAPE_T_H, MLP, "down projection", (LD_IN(MLP_ACT)))        \
    X(LAYER_OUT, "layer_out", true, LD_SHAPE_T_H, RESIDUAL, "MLP residual add",                    \
      (LD_IN(ATTN_RESIDUAL), LD_IN(DOWN_PROJ)))                                                    \
    X(FINAL_NORM, "final_norm", false, LD_SHAPE_T_H, ENDS, "final RMSNorm", (LD_IN_STREAM))        \
    X(LOGITS, "logits", false, LD_SHAPE_T_V, ENDS, "lm_head projection", (LD_IN(FINAL_NORM)))

/* Most inputs one op lists in the table (attention's: q_rope, k_rope, v_proj). */
#define LD_TAG_MAX_INPUTS 3

typedef enum ld_tag {
#define LD_TAG_ENUM_(e, name, per_layer, shape, family, op, inputs) LD_TAG_##e,
    LD_TAG_TABLE(LD_TAG_ENUM_)
#undef LD_TAG_ENUM_
        LD_TAG_COUNT,
    LD_TAG_UNKNOWN = -1 /* a tag outside the table (custom or foreign); still comparable by name */
} ld_tag;

/* Where an op's input lies, relative to the op's own step s and layer l. */
typedef enum ld_input_kind {
    LD_INPUT_END = 0, /* ends an op's list */
    LD_INPUT_SAME,    /* the tag at s and l (LD_NO_LAYER when the tag is model-level) */
    LD_INPUT_STREAM,  /* the residual stream entering the op: layer_out of layer l-1, embed at
                         layer 0; for a model-level op (final_norm) the last layer's layer_out,
                         embed in a model without layers */
    LD_INPUT_KV       /* the tag at l in every step 0..s: attention's cache. An op's KV inputs are
                         listed step by step: all of step 0, then step 1, ... */
} ld_input_kind;

typedef struct ld_tag_input {
    ld_input_kind kind;
    ld_tag tag; /* unused by LD_INPUT_STREAM and LD_INPUT_END */
} ld_tag_input;

/* Longest tag name a record may carry (custom and foreign tags included). */
#define LD_TAG_NAME_MAX 128
/* The layer field of a model-level probe. */
#define LD_NO_LAYER (-1)

const char *ld_tag_name(ld_tag t);               /* NULL for LD_TAG_UNKNOWN */
ld_tag ld_tag_from_name(const char *name);        /* LD_TAG_UNKNOWN when not in the table */
bool ld_tag_per_layer(ld_tag t);
ld_shape_kind ld_tag_shape(ld_tag t);
/* true when name is a valid tag name for a record: 1..128 chars of [A-Za-z0-9_.:/+-]. */
bool ld_tag_name_valid(const char *name);

/* The model's dimensions a shape kind is made of. */
typedef struct ld_tag_sizes {
    size_t H, Hq, Hkv, D, I, V;
} ld_tag_sizes;
/* Elements in one row (token) of t: H, Hq*D, Hkv*D, I or V; H for LD_TAG_UNKNOWN. */
size_t ld_tag_width(ld_tag t, const ld_tag_sizes *z);
/* The shape of T rows of t: [T,Hq,D] and [T,Hkv,D] (returns 3) or [T,width] (returns 2). */
int ld_tag_dims(ld_tag t, const ld_tag_sizes *z, size_t T, int64_t shape[3]);

/* The op that produces a tag, in words: "q/k norm", "RoPE", ... ("op" for LD_TAG_UNKNOWN). */
const char *ld_tag_op_name(ld_tag t);
ld_family ld_tag_family(ld_tag t);         /* LD_FAMILY_ENDS for LD_TAG_UNKNOWN */
const char *ld_family_title(ld_family f);  /* NULL outside the family table */
/* The inputs column of t's row, ended by LD_INPUT_END (empty for embed and LD_TAG_UNKNOWN). */
const ld_tag_input *ld_tag_inputs(ld_tag t);
/* Where a non-KV input of the op at layer (LD_NO_LAYER for model-level ops) lies: its tag, and its
 * layer in *in_layer (its step is the op's). n_layers (num_hidden_layers) places final_norm's
 * stream. */
ld_tag ld_tag_input_at(const ld_tag_input *in, int layer, int n_layers, int *in_layer);
/* Writes to out[0..max) the keys the op producing key reads, in the table's order, and returns how
 * many there are (may be more than max). attn_out reads q_rope of its step and k_rope, v_proj of
 * this and every earlier step; a layer's input is the previous layer_out, or embed for layer 0.
 * n_layers (num_hidden_layers) gives final_norm's input. Unknown tags, embed, and per-layer tags
 * without a layer: 0. */
struct ld_key; /* layerdiff/probes.h */
size_t ld_tag_input_keys(const struct ld_key *key, int n_layers, struct ld_key *out, size_t max);

#ifdef __cplusplus
}
#endif
#endif

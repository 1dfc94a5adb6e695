/* layerdiff/tags.h — the probe tags of DESIGN.md section 3, in execution order, with their logical
 * shapes and whether they belong to a layer. This table is the C side of the tag list; the schema
 * (schemas/probe.schema.json) carries the same list and a test holds the two together. */
#ifndef LAYERDIFF_TAGS_H
#define LAYERDIFF_TAGS_H

#include <stdbool.h>

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

/* X(ENUM, "name", per_layer, shape). Order is execution order: embed, the per-layer tags, then
 * final_norm and logits. */
#define LD_TAG_TABLE(X)                                                                            \
    X(EMBED, "embed", false, LD_SHAPE_T_H)                                                         \
    X(ATTN_NORM, "attn_norm", true, LD_SHAPE_T_H)                                                  \
    X(Q_PROJ, "q_proj", true, LD_SHAPE_T_HQ_D)                                                     \
    X(K_PROJ, "k_proj", true, LD_SHAPE_T_HKV_D)                                                    \
    X(V_PROJ, "v_proj", true, LD_SHAPE_T_HKV_D)                                                    \
    X(Q_NORM, "q_norm", true, LD_SHAPE_T_HQ_D)                                                     \
    X(K_NORM, "k_norm", true, LD_SHAPE_T_HKV_D)                                                    \
    X(Q_ROPE, "q_rope", true, LD_SHAPE_T_HQ_D)                                                     \
    X(K_ROPE, "k_rope", true, LD_SHAPE_T_HKV_D)                                                    \
    X(ATTN_OUT, "attn_out", true, LD_SHAPE_T_HQ_D)                                                 \
    X(O_PROJ, "o_proj", true, LD_SHAPE_T_H)                                                        \
    X(ATTN_RESIDUAL, "attn_residual", true, LD_SHAPE_T_H)                                          \
    X(MLP_NORM, "mlp_norm", true, LD_SHAPE_T_H)                                                    \
    X(GATE_PROJ, "gate_proj", true, LD_SHAPE_T_I)                                                  \
    X(UP_PROJ, "up_proj", true, LD_SHAPE_T_I)                                                      \
    X(MLP_ACT, "mlp_act", true, LD_SHAPE_T_I)                                                      \
    X(DOWN_PROJ, "down_proj", true, LD_SHAPE_T_H)                                                  \
    X(LAYER_OUT, "layer_out", true, LD_SHAPE_T_H)                                                  \
    X(FINAL_NORM, "final_norm", false, LD_SHAPE_T_H)                                               \
    X(LOGITS, "logits", false, LD_SHAPE_T_V)

typedef enum ld_tag {
#define LD_TAG_ENUM_(e, name, per_layer, shape) LD_TAG_##e,
    LD_TAG_TABLE(LD_TAG_ENUM_)
#undef LD_TAG_ENUM_
        LD_TAG_COUNT,
    LD_TAG_UNKNOWN = -1 /* a tag outside the table (custom or foreign); still comparable by name */
} ld_tag;

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

#ifdef __cplusplus
}
#endif
#endif

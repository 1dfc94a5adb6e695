/* opgraph.c — the op graph of DESIGN.md section 3: which probes the op producing a tag reads, so a
 * report can tell an op's own error from the error it inherited. Knows tag names only, not the
 * math (that lives in reference/). */
#include <stdio.h>
#include <string.h>

#include "compare.h"

static void put(ld_key *out, size_t max, size_t *n, int step, int layer, ld_tag tag)
{
    if (*n < max) {
        out[*n].step = step;
        out[*n].layer = layer;
        snprintf(out[*n].tag, sizeof out[*n].tag, "%s", ld_tag_name(tag));
    }
    (*n)++;
}

/* The input of a layer: the previous layer's output, or the embedding for layer 0. */
static void put_layer_input(ld_key *out, size_t max, size_t *n, int step, int layer)
{
    if (layer == 0)
        put(out, max, n, step, LD_NO_LAYER, LD_TAG_EMBED);
    else
        put(out, max, n, step, layer - 1, LD_TAG_LAYER_OUT);
}

size_t ld_opgraph_inputs(const ld_key *key, int n_layers, ld_key *out, size_t max)
{
    ld_tag t = ld_tag_from_name(key->tag);
    int s = key->step, l = key->layer;
    size_t n = 0;
    if (t == LD_TAG_UNKNOWN || s < 0)
        return 0;
    if (ld_tag_per_layer(t) && l < 0)
        return 0;
    switch (t) {
    case LD_TAG_EMBED: break; /* reads the prompt tokens and the embedding table */
    case LD_TAG_ATTN_NORM: put_layer_input(out, max, &n, s, l); break;
    case LD_TAG_Q_PROJ:
    case LD_TAG_K_PROJ:
    case LD_TAG_V_PROJ: put(out, max, &n, s, l, LD_TAG_ATTN_NORM); break;
    case LD_TAG_Q_NORM: put(out, max, &n, s, l, LD_TAG_Q_PROJ); break;
    case LD_TAG_K_NORM: put(out, max, &n, s, l, LD_TAG_K_PROJ); break;
    case LD_TAG_Q_ROPE: put(out, max, &n, s, l, LD_TAG_Q_NORM); break;
    case LD_TAG_K_ROPE: put(out, max, &n, s, l, LD_TAG_K_NORM); break;
    case LD_TAG_ATTN_OUT:
        /* The query of this step against the keys and values cached by every step so far. */
        put(out, max, &n, s, l, LD_TAG_Q_ROPE);
        for (int p = 0; p <= s; p++) {
            put(out, max, &n, p, l, LD_TAG_K_ROPE);
            put(out, max, &n, p, l, LD_TAG_V_PROJ);
        }
        break;
    case LD_TAG_O_PROJ: put(out, max, &n, s, l, LD_TAG_ATTN_OUT); break;
    case LD_TAG_ATTN_RESIDUAL:
        put_layer_input(out, max, &n, s, l);
        put(out, max, &n, s, l, LD_TAG_O_PROJ);
        break;
    case LD_TAG_MLP_NORM: put(out, max, &n, s, l, LD_TAG_ATTN_RESIDUAL); break;
    case LD_TAG_GATE_PROJ:
    case LD_TAG_UP_PROJ: put(out, max, &n, s, l, LD_TAG_MLP_NORM); break;
    case LD_TAG_MLP_ACT:
        put(out, max, &n, s, l, LD_TAG_GATE_PROJ);
        put(out, max, &n, s, l, LD_TAG_UP_PROJ);
        break;
    case LD_TAG_DOWN_PROJ: put(out, max, &n, s, l, LD_TAG_MLP_ACT); break;
    case LD_TAG_LAYER_OUT:
        put(out, max, &n, s, l, LD_TAG_ATTN_RESIDUAL);
        put(out, max, &n, s, l, LD_TAG_DOWN_PROJ);
        break;
    case LD_TAG_FINAL_NORM:
        if (n_layers > 0)
            put(out, max, &n, s, n_layers - 1, LD_TAG_LAYER_OUT);
        else
            put(out, max, &n, s, LD_NO_LAYER, LD_TAG_EMBED); /* a model without layers */
        break;
    case LD_TAG_LOGITS: put(out, max, &n, s, LD_NO_LAYER, LD_TAG_FINAL_NORM); break;
    default: break;
    }
    return n;
}

const char *ld_opgraph_op_name(ld_tag t)
{
    switch (t) {
    case LD_TAG_EMBED: return "embedding lookup";
    case LD_TAG_ATTN_NORM: return "input RMSNorm";
    case LD_TAG_Q_PROJ: return "q projection";
    case LD_TAG_K_PROJ: return "k projection";
    case LD_TAG_V_PROJ: return "v projection";
    case LD_TAG_Q_NORM:
    case LD_TAG_K_NORM: return "q/k norm";
    case LD_TAG_Q_ROPE:
    case LD_TAG_K_ROPE: return "RoPE";
    case LD_TAG_ATTN_OUT: return "attention (softmax(QK^T/sqrt(D))V)";
    case LD_TAG_O_PROJ: return "output projection";
    case LD_TAG_ATTN_RESIDUAL: return "attention residual add";
    case LD_TAG_MLP_NORM: return "post-attention RMSNorm";
    case LD_TAG_GATE_PROJ: return "gate projection";
    case LD_TAG_UP_PROJ: return "up projection";
    case LD_TAG_MLP_ACT: return "SiLU(gate)*up";
    case LD_TAG_DOWN_PROJ: return "down projection";
    case LD_TAG_LAYER_OUT: return "MLP residual add";
    case LD_TAG_FINAL_NORM: return "final RMSNorm";
    case LD_TAG_LOGITS: return "lm_head projection";
    default: return "op";
    }
}

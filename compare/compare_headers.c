/* compare_headers.c — are the two streams about the same thing? Their header records checked
 * against each other (model, input, backend), and the reference's blind spots noted. Not the
 * records (compare_rows.c). */
#include <stdio.h>
#include <string.h>

#include "compare_core.h"
#include "util.h"

/* The model fields whose difference makes two runs incomparable (fingerprint and checkpoint
 * dtype differ legitimately and are reported instead). */
static const char *const config_fields[] = {
    "architecture",       "hidden_size",         "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim",           "intermediate_size", "vocab_size",
    "max_position_embeddings", "rms_norm_eps",   "rope_theta",        "tie_word_embeddings",
};

static void json_value_text(const cJSON *v, char *buf, size_t size)
{
    char *s = v ? cJSON_PrintUnformatted(v) : NULL;
    snprintf(buf, size, "%s", s ? s : "absent");
    if (s)
        cJSON_free(s);
}

/* Faults an input cannot show (docs/faults.md, "Blind spots"): said in every report, so that a
 * clean comparison of such an input is not read as proof that those ops are right. */
ld_status ld_cmp_blind_spots(ctx *c)
{
    const ld_stream_info *a = &c->res->ref;
    ld_status st;
    if (a->n_tokens == 1 &&
        (st = ld_cmp_note(c, LD_NOTE_INFO, "blind_rope", "the prompt has one token: RoPE at "
                          "position 0 is the identity and the causal mask has nothing to hide "
                          "at step 0, so RoPE and mask faults can only show in decode steps "
                          "(use a prompt of 2 tokens or more)")) != LD_OK)
        return st;
    if (a->decode_steps == 0 &&
        (st = ld_cmp_note(c, LD_NOTE_INFO, "blind_kv_cache",
                          "no decode steps: KV-cache append and decode "
                          "attention faults cannot show (use --decode 1 or more)")) != LD_OK)
        return st;
    const cJSON *m = a->model;
    const cJSON *hq = m ? cJSON_GetObjectItemCaseSensitive(m, "num_attention_heads") : NULL;
    const cJSON *hkv = m ? cJSON_GetObjectItemCaseSensitive(m, "num_key_value_heads") : NULL;
    st = LD_OK;
    if (cJSON_IsNumber(hq) && cJSON_IsNumber(hkv) &&
        (hkv->valuedouble == 1 || hq->valuedouble == hkv->valuedouble))
        st = ld_cmp_note(c, LD_NOTE_INFO, "blind_gqa",
                         "Hq = %g, Hkv = %g: every query head maps to its kv "
                         "head the same way under any mapping, so a GQA mapping fault cannot show",
                         hq->valuedouble, hkv->valuedouble);
    return st;
}

ld_status ld_cmp_check_headers(ctx *c)
{
    ld_compare_result *r = c->res;
    ld_stream_info *a = &r->ref, *b = &r->cand;
    bool allow = c->opt->allow_input_mismatch;
    ld_status st;
    /* Prompt tokens. */
    size_t n = LD_MIN(a->n_tokens, b->n_tokens);
    size_t diff = n;
    for (size_t i = 0; i < n; i++) {
        if (a->tokens[i] != b->tokens[i]) {
            diff = i;
            break;
        }
    }
    if (diff < n || a->n_tokens != b->n_tokens) {
        char what[256];
        if (diff < n)
            snprintf(what, sizeof what, "prompt token at index %zu is %d in %s and %d in %s", diff,
                     (int)a->tokens[diff], a->path, (int)b->tokens[diff], b->path);
        else
            snprintf(what, sizeof what, "the prompt has %zu tokens in %s and %zu in %s",
                     a->n_tokens, a->path, b->n_tokens, b->path);
        if (!allow)
            return ld_error_set(c->err, LD_E_INPUT, "different inputs: %s (--allow-input-mismatch "
                                "compares anyway)", what);
        r->input_mismatch = true;
        if ((st = ld_cmp_note(c, LD_NOTE_WARN, "input_mismatch", "inputs differ (allowed): %s",
                              what)) != LD_OK)
            return st;
    }
    /* Model configuration, field by field. */
    const cJSON *ma = a->model, *mb = b->model;
    st = LD_OK;
    char unchecked[512] = "";
    for (size_t i = 0; i < LD_ARRAY_LEN(config_fields) && st == LD_OK; i++) {
        const cJSON *fa = ma ? cJSON_GetObjectItemCaseSensitive(ma, config_fields[i]) : NULL;
        const cJSON *fb = mb ? cJSON_GetObjectItemCaseSensitive(mb, config_fields[i]) : NULL;
        if (!fa || !fb) {
            if (fa || fb) {
                size_t used = strlen(unchecked);
                snprintf(unchecked + used, sizeof unchecked - used, "%s%s", used ? ", " : "",
                         config_fields[i]);
            }
            continue;
        }
        if (cJSON_Compare(fa, fb, true))
            continue;
        char va[64], vb[64];
        json_value_text(fa, va, sizeof va);
        json_value_text(fb, vb, sizeof vb);
        if (!allow) {
            st = ld_error_set(c->err, LD_E_INPUT, "different models: %s is %s in %s and %s in %s "
                              "(--allow-input-mismatch compares anyway)", config_fields[i], va,
                              a->path, vb, b->path);
        } else {
            r->input_mismatch = true;
            st = ld_cmp_note(c, LD_NOTE_WARN, "config_mismatch",
                             "model configs differ (allowed): %s is "
                             "%s in the reference and %s in the candidate",
                             config_fields[i], va, vb);
        }
    }
    if (ma) {
        const cJSON *nl = cJSON_GetObjectItemCaseSensitive(ma, "num_hidden_layers");
        if (cJSON_IsNumber(nl) && nl->valuedouble >= 0 && nl->valuedouble <= 1e6)
            r->n_layers = (int)nl->valuedouble;
    }
    if (st != LD_OK)
        return st;
    if (unchecked[0] && (st = ld_cmp_note(c, LD_NOTE_INFO, "config_unchecked",
                                          "model config fields stated by one side "
                                          "only, not checked: %s",
                                          unchecked)) != LD_OK)
        return st;
    /* Weights and faults: legitimate differences, stated prominently. */
    if (a->fingerprint[0] && b->fingerprint[0] && strcmp(a->fingerprint, b->fingerprint)) {
        r->fingerprint_differs = true;
        if ((st = ld_cmp_note(c, LD_NOTE_WARN, "fingerprint", "weight fingerprints differ: %s "
                              "(reference) vs %s (candidate): the runs did not read the same "
                              "weights", a->fingerprint, b->fingerprint)) != LD_OK)
            return st;
    } else if (!a->fingerprint[0] || !b->fingerprint[0]) {
        if ((st = ld_cmp_note(c, LD_NOTE_INFO, "fingerprint",
                              "weight fingerprint not stated by the %s: "
                              "cannot tell whether both runs read the same weights",
                              !a->fingerprint[0]
                                  ? (b->fingerprint[0] ? "reference" : "either stream")
                                  : "candidate")) != LD_OK)
            return st;
    }
    bool faults_same = a->n_faults == b->n_faults;
    for (size_t i = 0; faults_same && i < a->n_faults; i++)
        faults_same = !strcmp(a->faults[i], b->faults[i]);
    if (!faults_same) {
        r->faults_differ = true;
        char fa[512] = "", fb[512] = "";
        for (size_t i = 0; i < a->n_faults; i++)
            snprintf(fa + strlen(fa), sizeof fa - strlen(fa), "%s%s", i ? " " : "", a->faults[i]);
        for (size_t i = 0; i < b->n_faults; i++)
            snprintf(fb + strlen(fb), sizeof fb - strlen(fb), "%s%s", i ? " " : "", b->faults[i]);
        if ((st = ld_cmp_note(c, LD_NOTE_WARN, "faults",
                              "injected faults differ: reference [%s], "
                              "candidate [%s]",
                              fa, fb)) != LD_OK)
            return st;
    }
    if (b->feed_json[0] &&
        (st = ld_cmp_note(c, LD_NOTE_INFO, "fed",
                          "the candidate was teacher-forced (feed %.300s): each probe marked fed "
                          "is its own tensor, which it then replaced by the feed's, so the ops "
                          "after it read the reference's tensor",
                          b->feed_json)) != LD_OK)
        return st;
    if (a->decode_steps != b->decode_steps &&
        (st = ld_cmp_note(c, LD_NOTE_WARN, "decode_steps",
                          "decode steps differ: %d in the reference, "
                          "%d in the candidate",
                          a->decode_steps, b->decode_steps)) != LD_OK)
        return st;
    return LD_OK;
}

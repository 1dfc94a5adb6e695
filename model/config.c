/* config.c — reads a Qwen3 config.json into ld_config and refuses what layerdiff does not compute
 * (config.h), and writes config.json the way Hugging Face transformers does for Qwen3.
 * Not a general Hugging Face config reader: keys the model math does not use are checked for JSON
 * validity only. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_out.h"
#include "json_pull.h"
#include "util.h"

#define LD_CONFIG_MAX_BYTES (4u << 20) /* a real config.json is under 2 KB */

/* The integer fields, with where they live in ld_config and their upper bounds. */
typedef struct int_field {
    const char *key;
    size_t offset;
    int max;
    bool required;
} int_field;

static const int_field int_fields[] = {
    {"hidden_size", offsetof(ld_config, hidden_size), LD_CFG_MAX_HIDDEN, true},
    {"num_hidden_layers", offsetof(ld_config, num_layers), LD_CFG_MAX_LAYERS, true},
    {"num_attention_heads", offsetof(ld_config, num_heads), LD_CFG_MAX_HEADS, true},
    {"num_key_value_heads", offsetof(ld_config, num_kv_heads), LD_CFG_MAX_HEADS, true},
    {"head_dim", offsetof(ld_config, head_dim), LD_CFG_MAX_HEAD_DIM, false},
    {"intermediate_size", offsetof(ld_config, intermediate_size), LD_CFG_MAX_INTERMEDIATE, true},
    {"vocab_size", offsetof(ld_config, vocab_size), LD_CFG_MAX_VOCAB, true},
    {"max_position_embeddings", offsetof(ld_config, max_position_embeddings), LD_CFG_MAX_POSITIONS,
     true},
};

static int *int_slot(ld_config *c, const int_field *f)
{
    return (int *)((char *)c + f->offset);
}
static int int_value(const ld_config *c, const int_field *f)
{
    return *(const int *)((const char *)c + f->offset);
}

/* What the parse saw, before the checks that need the whole document. */
typedef struct seen {
    bool ints[LD_ARRAY_LEN(int_fields)];
    bool architectures, eps, theta_top, theta_nested, moe;
    char moe_arch[64];
    double theta_top_value, theta_nested_value;
    ld_error first;        /* the first bad value, reported after the document-level refusals */
    char unsupported[512]; /* the first unsupported feature */
    bool dtype_key, torch_dtype_key;
    ld_dtype dtype_value, torch_dtype_value;
} seen;

static void note_bad(seen *s, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_bad(seen *s, const char *label, const char *fmt, ...)
{
    if (s->first.code != LD_OK) return;
    char msg[LD_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ld_error_set(&s->first, LD_E_INPUT, "%s: %s", label, msg);
}

static void note_unsupported(seen *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_unsupported(seen *s, const char *fmt, ...)
{
    if (s->unsupported[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->unsupported, sizeof s->unsupported, fmt, ap);
    va_end(ap);
}

/* Copies a number token for a message, shortened when absurdly long. */
static const char *num_text(const ld_jp_num *n, char *buf, size_t size)
{
    snprintf(buf, size, "%.*s%s", (int)LD_MIN(n->len, 40), n->tok, n->len > 40 ? "..." : "");
    return buf;
}

/* Reads a value that must be a positive integer no larger than max; a wrong kind or range is
 * noted (parsing goes on), a JSON syntax error stops the parse. */
static ld_status read_int(ld_jp *j, seen *s, const char *label, const char *key, int max, int *out,
                          bool *present)
{
    ld_jp_kind k = ld_jp_peek(j);
    if (k != LD_JP_NUMBER) {
        note_bad(s, label, "%s must be a positive integer, found %s", key, ld_jp_kind_name(k));
        return ld_jp_skip(j);
    }
    ld_jp_num n;
    ld_status st = ld_jp_number(j, &n);
    if (st != LD_OK) return st;
    char text[48];
    int64_t v;
    if (!n.is_int) {
        note_bad(s, label, "%s must be an integer, found %s", key, num_text(&n, text, sizeof text));
    } else if (!ld_jp_num_i64(&n, &v) || v < 1) {
        note_bad(s, label, "%s must be a positive integer, found %s", key,
                 num_text(&n, text, sizeof text));
    } else if (v > max) {
        note_bad(s, label, "%s is %s, more than the %d layerdiff accepts", key,
                 num_text(&n, text, sizeof text), max);
    } else {
        *out = (int)v;
        *present = true;
    }
    return LD_OK;
}

/* v as the shortest text that reads back as v (as probe records spell numbers): -1e-06, not
 * -9.9999999999999995e-07. */
static const char *shortest(double v, char *out, size_t size)
{
    ld_buf b = {0};
    ld_json_put_double(&b, v, LD_JSON_NUM_EXACT, (locale_t)0);
    snprintf(out, size, "%s", b.oom ? "?" : ld_buf_cstr(&b));
    ld_buf_free(&b);
    return out;
}

static ld_status read_double(ld_jp *j, seen *s, const char *label, const char *key, double *out,
                             bool *present)
{
    ld_jp_kind k = ld_jp_peek(j);
    if (k != LD_JP_NUMBER) {
        note_bad(s, label, "%s must be a number, found %s", key, ld_jp_kind_name(k));
        return ld_jp_skip(j);
    }
    ld_jp_num n;
    ld_status st = ld_jp_number(j, &n);
    if (st != LD_OK) return st;
    char text[48];
    if (!ld_jp_num_double(&n, out))
        note_bad(s, label, "%s is %s, not a finite number", key, num_text(&n, text, sizeof text));
    else
        *present = true;
    return LD_OK;
}

/* A boolean value; a wrong kind is noted. */
static ld_status read_bool(ld_jp *j, seen *s, const char *label, const char *key, bool *out)
{
    ld_jp_kind k = ld_jp_peek(j);
    if (k != LD_JP_TRUE && k != LD_JP_FALSE) {
        note_bad(s, label, "%s must be true or false, found %s", key, ld_jp_kind_name(k));
        return ld_jp_skip(j);
    }
    return ld_jp_bool(j, out);
}

/* A string value into buf (size bytes); wrong kinds are noted. *ok tells whether it was read. */
static ld_status read_string(ld_jp *j, seen *s, const char *label, const char *key, char *buf,
                             size_t size, bool *ok)
{
    *ok = false;
    ld_jp_kind k = ld_jp_peek(j);
    if (k != LD_JP_STRING) {
        note_bad(s, label, "%s must be a string, found %s", key, ld_jp_kind_name(k));
        return ld_jp_skip(j);
    }
    char *v;
    size_t len;
    ld_status st = ld_jp_string(j, &v, &len);
    if (st != LD_OK) return st;
    if (len >= size)
        note_bad(s, label, "%s is too long (%zu bytes)", key, len);
    else {
        memcpy(buf, v, len + 1);
        *ok = true;
    }
    free(v);
    return LD_OK;
}

static bool dtype_from_torch(const char *name, ld_dtype *out)
{
    if (!strcmp(name, "bfloat16")) {
        *out = LD_BF16;
    } else if (!strcmp(name, "float16") || !strcmp(name, "half")) {
        *out = LD_F16;
    } else if (!strcmp(name, "float32") || !strcmp(name, "float")) {
        *out = LD_F32;
    } else {
        return false;
    }
    return true;
}

static const char *torch_name(ld_dtype t)
{
    return t == LD_BF16 ? "bfloat16" : t == LD_F16 ? "float16" : "float32";
}

static ld_status read_dtype(ld_jp *j, seen *s, const char *label, const char *key, bool *present,
                            ld_dtype *out)
{
    char name[32];
    bool ok;
    ld_status st = read_string(j, s, label, key, name, sizeof name, &ok);
    if (st != LD_OK || !ok) return st;
    if (!dtype_from_torch(name, out))
        note_bad(s, label, "%s \"%s\" is not supported (bfloat16, float16 or float32)", key, name);
    else
        *present = true;
    return LD_OK;
}

static ld_status read_architectures(ld_jp *j, seen *s, const char *label, ld_config *c)
{
    if (ld_jp_peek(j) != LD_JP_ARRAY) {
        note_bad(s, label, "architectures must be a list of strings, found %s",
                 ld_jp_kind_name(ld_jp_peek(j)));
        return ld_jp_skip(j);
    }
    ld_status st = ld_jp_array_begin(j);
    size_t count = 0;
    bool more = true;
    while (st == LD_OK) {
        st = ld_jp_array_next(j, &count, &more);
        if (st != LD_OK || !more) break;
        char name[64];
        bool ok;
        st = read_string(j, s, label, "architectures[]", name, sizeof name, &ok);
        if (st != LD_OK || !ok) continue;
        if (count == 1) snprintf(c->architecture, sizeof c->architecture, "%s", name);
        if (strstr(name, "Moe") || strstr(name, "MoE")) {
            s->moe = true;
            snprintf(s->moe_arch, sizeof s->moe_arch, "%s", name);
        }
    }
    if (st != LD_OK) return st;
    if (count != 1)
        note_bad(s, label, "architectures must list exactly one architecture, found %zu", count);
    else if (c->architecture[0])
        s->architectures = true;
    return LD_OK;
}

static ld_status read_rope_parameters(ld_jp *j, seen *s, const char *label)
{
    ld_jp_kind k = ld_jp_peek(j);
    if (k == LD_JP_NULL) return ld_jp_null(j);
    if (k != LD_JP_OBJECT) {
        note_bad(s, label, "rope_parameters must be an object, found %s", ld_jp_kind_name(k));
        return ld_jp_skip(j);
    }
    ld_status st = ld_jp_object_begin(j);
    size_t count = 0;
    bool more = true;
    ld_jp_keys keys = {0};
    while (st == LD_OK) {
        char *key;
        st = ld_jp_object_next(j, &count, &more, &key);
        if (st != LD_OK || !more || (st = ld_jp_keys_add(j, &keys, key)) != LD_OK) break;
        if (!strcmp(key, "rope_theta")) {
            st = read_double(j, s, label, "rope_parameters.rope_theta", &s->theta_nested_value,
                             &s->theta_nested);
        } else if (!strcmp(key, "rope_type") || !strcmp(key, "type")) {
            char type[64];
            bool ok;
            st = read_string(j, s, label, "rope_parameters.rope_type", type, sizeof type, &ok);
            if (st == LD_OK && ok && strcmp(type, "default") != 0)
                note_unsupported(s,
                                 "rope_parameters.rope_type is \"%s\": only \"default\" RoPE "
                                 "(no scaling) is supported",
                                 type);
        } else {
            /* factor, original_max_position_embeddings, partial_rotary_factor, ...: each one
             * changes the rotation, which the reference does not compute. */
            note_unsupported(s,
                             "rope_parameters.%.100s is set: only plain RoPE (rope_theta, "
                             "rope_type \"default\") is supported",
                             key);
            st = ld_jp_skip(j);
        }
    }
    if (st == LD_OK) {
        const char *dup = ld_jp_keys_duplicate(&keys);
        if (dup)
            st = ld_error_set(j->err, LD_E_INPUT, "%s: duplicate key \"%.200s\" in rope_parameters",
                              label, dup);
    }
    ld_jp_keys_free(&keys);
    return st;
}

static ld_status read_layer_types(ld_jp *j, seen *s, const char *label)
{
    if (ld_jp_peek(j) != LD_JP_ARRAY) {
        note_bad(s, label, "layer_types must be a list, found %s", ld_jp_kind_name(ld_jp_peek(j)));
        return ld_jp_skip(j);
    }
    ld_status st = ld_jp_array_begin(j);
    size_t count = 0;
    bool more = true;
    while (st == LD_OK) {
        st = ld_jp_array_next(j, &count, &more);
        if (st != LD_OK || !more) break;
        char type[64];
        bool ok;
        st = read_string(j, s, label, "layer_types[]", type, sizeof type, &ok);
        if (st == LD_OK && ok && strcmp(type, "full_attention") != 0)
            note_unsupported(s, "layer_types[%zu] is \"%s\": only full attention is supported",
                             count - 1, type);
    }
    return st;
}

/* One member of the top-level object. */
static ld_status read_member(ld_jp *j, seen *s, const char *label, const char *key, ld_config *c)
{
    for (size_t i = 0; i < LD_ARRAY_LEN(int_fields); i++) {
        if (strcmp(key, int_fields[i].key) != 0) continue;
        if (!strcmp(key, "head_dim") && ld_jp_peek(j) == LD_JP_NULL)
            return ld_jp_null(j); /* null: as if absent */
        return read_int(j, s, label, key, int_fields[i].max, int_slot(c, &int_fields[i]),
                        &s->ints[i]);
    }
    bool flag = false;
    ld_status st;
    if (!strcmp(key, "architectures")) return read_architectures(j, s, label, c);
    if (!strcmp(key, "rms_norm_eps"))
        return read_double(j, s, label, key, &c->rms_norm_eps, &s->eps);
    if (!strcmp(key, "rope_theta"))
        return read_double(j, s, label, key, &s->theta_top_value, &s->theta_top);
    if (!strcmp(key, "rope_parameters")) return read_rope_parameters(j, s, label);
    if (!strcmp(key, "layer_types")) return read_layer_types(j, s, label);
    if (!strcmp(key, "torch_dtype"))
        return read_dtype(j, s, label, key, &s->torch_dtype_key, &s->torch_dtype_value);
    if (!strcmp(key, "dtype")) /* the transformers 5 spelling */
        return read_dtype(j, s, label, key, &s->dtype_key, &s->dtype_value);
    if (!strcmp(key, "tie_word_embeddings"))
        return read_bool(j, s, label, key, &c->tie_word_embeddings);
    if (!strcmp(key, "rope_scaling")) {
        if (ld_jp_peek(j) == LD_JP_NULL) return ld_jp_null(j);
        note_unsupported(s, "rope_scaling is set (not null): RoPE scaling is not supported");
        return ld_jp_skip(j);
    }
    if (!strcmp(key, "use_sliding_window") || !strcmp(key, "attention_bias") ||
        !strcmp(key, "mlp_bias")) {
        st = read_bool(j, s, label, key, &flag);
        if (st == LD_OK && flag)
            note_unsupported(s, "%s is true: %s is not supported", key,
                             !strcmp(key, "use_sliding_window") ? "sliding-window attention"
                             : !strcmp(key, "attention_bias")   ? "attention with bias terms"
                                                                : "an MLP with bias terms");
        return st;
    }
    if (!strcmp(key, "num_experts") || !strcmp(key, "num_local_experts")) {
        ld_jp_kind k = ld_jp_peek(j);
        if (k == LD_JP_NULL) return ld_jp_null(j);
        ld_jp_num n;
        if (k != LD_JP_NUMBER) return ld_jp_skip(j);
        st = ld_jp_number(j, &n);
        double v;
        if (st == LD_OK && ld_jp_num_double(&n, &v) && v > 0) {
            s->moe = true;
            char text[48];
            if (!s->moe_arch[0])
                snprintf(s->moe_arch, sizeof s->moe_arch, "%s = %s", key,
                         num_text(&n, text, sizeof text));
        }
        return st;
    }
    if (!strcmp(key, "hidden_act")) {
        char act[64];
        bool ok;
        st = read_string(j, s, label, key, act, sizeof act, &ok);
        if (st == LD_OK && ok && strcmp(act, "silu") != 0)
            note_unsupported(s, "hidden_act is \"%s\": only silu is supported", act);
        return st;
    }
    if (!strcmp(key, "model_type")) {
        char type[64];
        bool ok;
        st = read_string(j, s, label, key, type, sizeof type, &ok);
        if (st == LD_OK && ok && strcmp(type, "qwen3") != 0) {
            if (strstr(type, "moe")) {
                s->moe = true;
                if (!s->moe_arch[0]) /* the architecture's name, when given, says more */
                    snprintf(s->moe_arch, sizeof s->moe_arch, "model_type \"%s\"", type);
            } else {
                note_unsupported(s, "model_type is \"%s\": only \"qwen3\" is supported", type);
            }
        }
        return st;
    }
    return ld_jp_skip(j);
}

ld_status ld_config_parse(const char *json, size_t len, const char *label, ld_config *out,
                          ld_error *err)
{
    memset(out, 0, sizeof *out);
    out->torch_dtype = LD_F32; /* what transformers assumes when config.json names none */
    seen s;
    memset(&s, 0, sizeof s);
    ld_jp j;
    ld_jp_init(&j, json, len, label, err);

    ld_jp_keys keys = {0};
    size_t count = 0;
    bool more = true;
    ld_status st = ld_jp_object_begin(&j);
    while (st == LD_OK) {
        char *key;
        st = ld_jp_object_next(&j, &count, &more, &key);
        if (st != LD_OK || !more || (st = ld_jp_keys_add(&j, &keys, key)) != LD_OK) break;
        st = read_member(&j, &s, label, key, out);
    }
    if (st == LD_OK) st = ld_jp_end(&j, false);
    if (st == LD_OK) {
        const char *dup = ld_jp_keys_duplicate(&keys);
        if (dup) st = ld_error_set(err, LD_E_INPUT, "%s: duplicate key \"%.200s\"", label, dup);
    }
    ld_jp_keys_free(&keys);
    if (st != LD_OK) return st;

    /* Refusals in order of helpfulness: what the model is, what it uses, then bad values. */
    if (s.moe)
        return ld_error_set(err, LD_E_UNSUPPORTED,
                            "%s: %s: mixture-of-experts (MoE) models are not supported; layerdiff "
                            "computes the dense Qwen3ForCausalLM only",
                            label, s.moe_arch);
    if (s.architectures && strcmp(out->architecture, "Qwen3ForCausalLM") != 0)
        return ld_error_set(err, LD_E_UNSUPPORTED,
                            "%s: architecture %s is not supported; layerdiff computes "
                            "Qwen3ForCausalLM only",
                            label, out->architecture);
    if (s.unsupported[0])
        return ld_error_set(err, LD_E_UNSUPPORTED, "%s: %s", label, s.unsupported);
    if (s.first.code != LD_OK) return ld_error_set(err, s.first.code, "%s", s.first.msg);
    if (!s.architectures)
        return ld_error_set(err, LD_E_INPUT, "%s: architectures is missing", label);
    for (size_t i = 0; i < LD_ARRAY_LEN(int_fields); i++)
        if (int_fields[i].required && !s.ints[i])
            return ld_error_set(err, LD_E_INPUT, "%s: %s is missing", label, int_fields[i].key);
    if (!s.eps) return ld_error_set(err, LD_E_INPUT, "%s: rms_norm_eps is missing", label);
    char top[40], nested[40];
    if (s.theta_top && s.theta_nested && s.theta_top_value != s.theta_nested_value)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: rope_theta is %s but rope_parameters.rope_theta is %s", label,
                            shortest(s.theta_top_value, top, sizeof top),
                            shortest(s.theta_nested_value, nested, sizeof nested));
    if (!s.theta_top && !s.theta_nested)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: rope_theta is missing (neither top-level nor in rope_parameters)",
                            label);
    out->rope_theta = s.theta_top ? s.theta_top_value : s.theta_nested_value;
    if (s.dtype_key && s.torch_dtype_key && s.dtype_value != s.torch_dtype_value)
        return ld_error_set(err, LD_E_INPUT, "%s: torch_dtype is %s but dtype is %s", label,
                            torch_name(s.torch_dtype_value), torch_name(s.dtype_value));
    if (s.torch_dtype_key)
        out->torch_dtype = s.torch_dtype_value;
    else if (s.dtype_key)
        out->torch_dtype = s.dtype_value;

    for (size_t i = 0; i < LD_ARRAY_LEN(int_fields); i++)
        if (!strcmp(int_fields[i].key, "head_dim")) out->head_dim_explicit = s.ints[i];
    if (!out->head_dim_explicit) {
        if (out->hidden_size % out->num_heads != 0)
            return ld_error_set(err, LD_E_INPUT,
                                "%s: head_dim is missing and hidden_size %d is not a multiple of "
                                "num_attention_heads %d",
                                label, out->hidden_size, out->num_heads);
        out->head_dim = out->hidden_size / out->num_heads;
    }
    return ld_config_validate(out, label, err);
}

ld_status ld_config_load(const char *path, ld_config *out, ld_error *err)
{
    char *text;
    size_t len;
    ld_status st = ld_read_file(path, LD_CONFIG_MAX_BYTES, &text, &len, err);
    if (st != LD_OK) return st;
    st = ld_config_parse(text, len, path, out, err);
    free(text);
    return st;
}

ld_tag_sizes ld_config_tag_sizes(const ld_config *c)
{
    return (ld_tag_sizes){.H = (size_t)c->hidden_size,
                          .Hq = (size_t)c->num_heads,
                          .Hkv = (size_t)c->num_kv_heads,
                          .D = (size_t)c->head_dim,
                          .I = (size_t)c->intermediate_size,
                          .V = (size_t)c->vocab_size};
}

ld_status ld_config_validate(const ld_config *c, const char *label, ld_error *err)
{
    if (strcmp(c->architecture, "Qwen3ForCausalLM") != 0)
        return ld_error_set(err, LD_E_UNSUPPORTED,
                            "%s: architecture '%.64s' is not supported; layerdiff computes "
                            "Qwen3ForCausalLM only",
                            label, c->architecture);
    for (size_t i = 0; i < LD_ARRAY_LEN(int_fields); i++) {
        int v = int_value(c, &int_fields[i]);
        if (v < 1 || v > int_fields[i].max)
            return ld_error_set(err, LD_E_INPUT, "%s: %s is %d, outside [1, %d]", label,
                                int_fields[i].key, v, int_fields[i].max);
    }
    if (c->num_heads % c->num_kv_heads != 0)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: num_attention_heads %d is not a multiple of num_key_value_heads "
                            "%d (grouped-query attention needs whole groups)",
                            label, c->num_heads, c->num_kv_heads);
    if (c->head_dim % 2 != 0)
        return ld_error_set(err, LD_E_INPUT, "%s: head_dim %d is odd (RoPE rotates halves)", label,
                            c->head_dim);
    char num[40];
    if (!(c->rms_norm_eps > 0 && c->rms_norm_eps < 1))
        return ld_error_set(err, LD_E_INPUT, "%s: rms_norm_eps %s is outside (0, 1)", label,
                            shortest(c->rms_norm_eps, num, sizeof num));
    if (!(c->rope_theta > 0 && isfinite(c->rope_theta)))
        return ld_error_set(err, LD_E_INPUT, "%s: rope_theta %s is not a positive number", label,
                            shortest(c->rope_theta, num, sizeof num));
    if (c->torch_dtype != LD_F32 && c->torch_dtype != LD_BF16 && c->torch_dtype != LD_F16)
        return ld_error_set(err, LD_E_INPUT, "%s: torch_dtype %d is not a known dtype", label,
                            (int)c->torch_dtype);
    return LD_OK;
}

char *ld_config_to_hf_json(const ld_config *c)
{
    /* transformers writes json.dumps(config, indent=2, sort_keys=True) + "\n"; the keys below are
     * those of a Qwen3 config.json written by transformers 4.51, in sorted order. */
    ld_buf b = {0};
    ld_buf_printf(&b, "{\n  \"architectures\": [\n    ");
    ld_json_put_string(&b, c->architecture, strlen(c->architecture), false);
    ld_buf_printf(&b, "\n  ],\n");
    ld_buf_printf(&b, "  \"attention_bias\": false,\n");
    ld_buf_printf(&b, "  \"attention_dropout\": 0.0,\n");
    /* The real Qwen3 token ids, only where the vocabulary has them. */
    if (c->vocab_size > 151645) ld_buf_printf(&b, "  \"bos_token_id\": 151643,\n");
    if (c->vocab_size > 151645) ld_buf_printf(&b, "  \"eos_token_id\": 151645,\n");
    ld_buf_printf(&b, "  \"head_dim\": %d,\n", c->head_dim);
    ld_buf_printf(&b, "  \"hidden_act\": \"silu\",\n");
    ld_buf_printf(&b, "  \"hidden_size\": %d,\n", c->hidden_size);
    ld_buf_printf(&b, "  \"initializer_range\": 0.02,\n");
    ld_buf_printf(&b, "  \"intermediate_size\": %d,\n", c->intermediate_size);
    ld_buf_printf(&b, "  \"max_position_embeddings\": %d,\n", c->max_position_embeddings);
    ld_buf_printf(&b, "  \"max_window_layers\": %d,\n", c->num_layers);
    ld_buf_printf(&b, "  \"model_type\": \"qwen3\",\n");
    ld_buf_printf(&b, "  \"num_attention_heads\": %d,\n", c->num_heads);
    ld_buf_printf(&b, "  \"num_hidden_layers\": %d,\n", c->num_layers);
    ld_buf_printf(&b, "  \"num_key_value_heads\": %d,\n", c->num_kv_heads);
    ld_buf_printf(&b, "  \"rms_norm_eps\": ");
    ld_json_put_double(&b, c->rms_norm_eps, LD_JSON_NUM_PYTHON, (locale_t)0);
    ld_buf_printf(&b, ",\n  \"rope_scaling\": null,\n  \"rope_theta\": ");
    ld_json_put_double(&b, c->rope_theta, LD_JSON_NUM_PYTHON, (locale_t)0);
    ld_buf_printf(&b, ",\n  \"sliding_window\": null,\n");
    ld_buf_printf(&b, "  \"tie_word_embeddings\": %s,\n",
                  c->tie_word_embeddings ? "true" : "false");
    ld_buf_printf(&b, "  \"torch_dtype\": \"%s\",\n", torch_name(c->torch_dtype));
    ld_buf_printf(&b, "  \"transformers_version\": \"4.51.0\",\n");
    ld_buf_printf(&b, "  \"use_cache\": true,\n");
    ld_buf_printf(&b, "  \"use_sliding_window\": false,\n");
    ld_buf_printf(&b, "  \"vocab_size\": %d\n}\n", c->vocab_size);
    return ld_buf_take(&b);
}

/* keys.c — probe keys: "S2.L3.q_norm" text form, parsing and execution order
 * (layerdiff/probes.h), the names of the header filter's fields, and the reader's set of keys
 * seen (unique_keys). Not the key filters themselves (keyfilter.c). */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "layerdiff/probes.h"
#include "reader_internal.h"
#include "record.h"
#include "util.h"

const char *const ld_filter_fields[3] = {"tags", "layers", "steps"};

/* Reads "<letter><digits>." at *p and advances past the dot: 1. Not of that form: 0, nothing
 * consumed. Of that form but the number out of range: -1. */
static int prefix_number(const char **p, char letter, int *out)
{
    const char *s = *p;
    if (s[0] != letter || s[1] < '0' || s[1] > '9')
        return 0;
    const char *dot = s + 1;
    while (*dot >= '0' && *dot <= '9')
        dot++;
    if (*dot != '.')
        return 0;
    char digits[16];
    size_t n = (size_t)(dot - (s + 1));
    if (n >= sizeof digits)
        return -1;
    memcpy(digits, s + 1, n);
    digits[n] = '\0';
    if (!ld_parse_int(digits, 0, INT_MAX, out))
        return -1;
    *p = dot + 1;
    return 1;
}

ld_status ld_key_parse(const char *text, ld_key *out, ld_error *err)
{
    if (!text || !*text)
        return ld_error_set(err, LD_E_USAGE, "empty probe key (expected e.g. S0.L3.q_norm)");
    const char *p = text;
    int step = 0, layer = LD_NO_LAYER;
    if (prefix_number(&p, 'S', &step) < 0 || prefix_number(&p, 'L', &layer) < 0)
        return ld_error_set(err, LD_E_USAGE, "bad probe key '%s': step or layer out of range",
                            text);
    if (!ld_tag_name_valid(p))
        return ld_error_set(err, LD_E_USAGE,
                            "bad probe key '%s': '%s' is not a tag name (1 to %d characters of "
                            "A-Z a-z 0-9 _ . : / + -); keys read like S0.L3.q_norm, L3.q_norm "
                            "or logits",
                            text, p, LD_TAG_NAME_MAX);
    ld_tag t = ld_tag_from_name(p);
    if (t != LD_TAG_UNKNOWN && ld_tag_per_layer(t) && layer == LD_NO_LAYER)
        return ld_error_set(err, LD_E_USAGE, "bad probe key '%s': %s is a per-layer tag; name the "
                            "layer, e.g. L0.%s", text, p, p);
    if (t != LD_TAG_UNKNOWN && !ld_tag_per_layer(t) && layer != LD_NO_LAYER)
        return ld_error_set(err, LD_E_USAGE,
                            "bad probe key '%s': %s is a model-level tag and has no layer", text, p);
    out->step = step;
    out->layer = layer;
    snprintf(out->tag, sizeof out->tag, "%s", p);
    return LD_OK;
}

char *ld_key_format(const ld_key *key, char *buf, size_t size)
{
    if (!buf || size == 0)
        return buf;
    /* As snprintf "S%d.L%d.%s" (or "S%d.%s") would, cut to size - 1; without printf, because the
     * probe writer formats a key per record. */
    char text[2 * LD_FMT_INT_MAX + sizeof key->tag + 4];
    size_t n = 0;
    text[n++] = 'S';
    n += ld_fmt_i64(text + n, key->step);
    text[n++] = '.';
    if (key->layer != LD_NO_LAYER) {
        text[n++] = 'L';
        n += ld_fmt_i64(text + n, key->layer);
        text[n++] = '.';
    }
    size_t tag_len = strnlen(key->tag, sizeof key->tag);
    memcpy(text + n, key->tag, tag_len);
    n += tag_len;
    n = LD_MIN(n, size - 1);
    memcpy(buf, text, n);
    buf[n] = '\0';
    return buf;
}

/* Position within a step: embed, then each layer's tags in table order (custom tags of a layer
 * after the table's), then final_norm and logits, then custom model-level tags. */
static void exec_rank(const ld_key *k, int *group, int *layer, int *tag)
{
    ld_tag t = ld_tag_from_name(k->tag);
    *layer = k->layer;
    *tag = t == LD_TAG_UNKNOWN ? LD_TAG_COUNT : (int)t;
    if (k->layer != LD_NO_LAYER)
        *group = 1;
    else if (t == LD_TAG_EMBED)
        *group = 0;
    else
        *group = t == LD_TAG_UNKNOWN ? 3 : 2;
}

int ld_key_cmp_exec(const ld_key *a, const ld_key *b)
{
    if (a->step != b->step)
        return a->step < b->step ? -1 : 1;
    int ga, la, ta, gb, lb, tb;
    exec_rank(a, &ga, &la, &ta);
    exec_rank(b, &gb, &lb, &tb);
    if (ga != gb)
        return ga < gb ? -1 : 1;
    if (la != lb)
        return la < lb ? -1 : 1;
    if (ta != tb)
        return ta < tb ? -1 : 1;
    int c = strcmp(a->tag, b->tag);
    return c < 0 ? -1 : c > 0;
}

/* ---- the reader's set of keys ---------------------------------------------------------------- */

struct ld_keyset_slot {
    uint64_t hash, line;   /* hash 0: an empty slot */
    size_t tag_off;        /* the tag in the arena */
    int32_t step, layer;
};

static uint64_t key_hash(int step, int layer, const char *tag)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then the numbers mixed in (splitmix64) */
    for (const unsigned char *c = (const unsigned char *)tag; *c; c++)
        h = (h ^ *c) * 1099511628211ull;
    h ^= ((uint64_t)(uint32_t)step << 32) | (uint32_t)layer;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h ? h : 1;
}

static struct ld_keyset_slot *find_slot(struct ld_keyset_slot *slots, size_t cap, uint64_t h,
                                        int step, int layer, const char *tag, const char *arena)
{
    for (size_t i = (size_t)h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        struct ld_keyset_slot *e = &slots[i];
        if (e->hash == 0 || (e->hash == h && e->step == step && e->layer == layer &&
                             !strcmp(arena + e->tag_off, tag)))
            return e;
    }
}

static bool keyset_grow(ld_keyset *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    if (cap < s->cap || cap > SIZE_MAX / sizeof *s->slots)
        return false;
    struct ld_keyset_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < s->cap; i++) {
        const struct ld_keyset_slot *e = &s->slots[i];
        if (e->hash)
            *find_slot(slots, cap, e->hash, e->step, e->layer, s->arena + e->tag_off, s->arena) =
                *e;
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return true;
}

int ld_keyset_add(ld_keyset *s, int step, int layer, const char *tag, uint64_t line,
                  uint64_t *first_line)
{
    if (s->count + 1 > s->cap / 2 && !keyset_grow(s))
        return -1;
    uint64_t h = key_hash(step, layer, tag);
    struct ld_keyset_slot *e = find_slot(s->slots, s->cap, h, step, layer, tag, s->arena);
    if (e->hash) {
        *first_line = e->line;
        return 1;
    }
    size_t len = strlen(tag) + 1, need;
    if (!ld_add_size(s->arena_len, len, &need))
        return -1;
    if (need > s->arena_cap) {
        size_t cap = need > s->arena_cap * 2 ? need + 4096 : s->arena_cap * 2;
        char *a = realloc(s->arena, cap);
        if (!a)
            return -1;
        s->arena = a;
        s->arena_cap = cap;
    }
    memcpy(s->arena + s->arena_len, tag, len);
    *e = (struct ld_keyset_slot){h, line, s->arena_len, step, layer};
    s->arena_len = need;
    s->count++;
    return 0;
}

void ld_keyset_free(ld_keyset *s)
{
    free(s->slots);
    free(s->arena);
    *s = (ld_keyset){0};
}

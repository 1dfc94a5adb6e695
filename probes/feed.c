/* feed.c — reference tensors served by key (probes.h, ld_feed_*): a streaming reader walked
 * forward in execution order, the wanted payload converted into the caller's dtype piece by piece.
 * Holds the reader's ~1 MiB and one staging buffer, never a whole stream. Not the replacing itself:
 * that is the engine's (reference/forward.c, cuda/forward.c). */
#include <stdlib.h>
#include <string.h>

#include "keyfilter.h"
#include "layerdiff/probes.h"
#include "util.h"

#define FEED_CHUNK ((size_t)64 << 10) /* bytes read at a time: a multiple of every element size */

struct ld_feed {
    char *path;
    ld_reader *r;
    const ld_probe *cur; /* the probe the reader stands on, its payload unread; NULL: none yet */
    ld_key cur_key;
    ld_keyfilter keys; /* the keys to replace (ld_feed_select) */
    unsigned char *chunk; /* [FEED_CHUNK] */
};

static ld_status feed_reopen(ld_feed *f, ld_error *err)
{
    ld_reader_options opt;
    ld_reader_options_init(&opt);
    opt.stream_data = true;
    ld_reader_close(f->r);
    f->r = NULL;
    f->cur = NULL;
    return ld_reader_open(&f->r, f->path, &opt, err);
}

ld_status ld_feed_open(ld_feed **out, const char *path, ld_error *err)
{
    *out = NULL;
    ld_feed *f = calloc(1, sizeof *f);
    if (!f || !path || !(f->path = strdup(path)) || !(f->chunk = malloc(FEED_CHUNK))) {
        ld_feed_close(f);
        return path ? ld_error_set(err, LD_E_NOMEM, "cannot allocate a feed")
                    : ld_error_set(err, LD_E_USAGE, "no feed file given");
    }
    ld_status st = feed_reopen(f, err);
    if (st != LD_OK) {
        ld_feed_close(f);
        return st;
    }
    *out = f;
    return LD_OK;
}

const ld_header_info *ld_feed_header(const ld_feed *f) { return ld_reader_header(f->r); }

ld_status ld_feed_select(ld_feed *f, const char *tags, const char *layers, const char *steps,
                         ld_error *err)
{
    ld_keyfilter k;
    ld_status st = ld_keyfilter_init(&k, tags, layers, steps, err);
    if (st != LD_OK)
        return st;
    ld_keyfilter_free(&f->keys);
    f->keys = k;
    return LD_OK;
}

bool ld_feed_wants(const ld_feed *f, int step, int layer, const char *tag)
{
    return f && ld_keyfilter_match(&f->keys, step, layer, tag);
}

void ld_feed_close(ld_feed *f)
{
    if (!f)
        return;
    ld_keyfilter_free(&f->keys);
    ld_reader_close(f->r);
    free(f->chunk);
    free(f->path);
    free(f);
}

/* Moves the reader to the probe of key *want: *found false when the stream passes that key or
 * ends without it. One rewind at most, when the reader already stands beyond the key. */
static ld_status feed_seek(ld_feed *f, const ld_key *want, bool *found, ld_error *err)
{
    *found = false;
    bool rewound = false;
    for (;;) {
        if (!f->cur) {
            ld_status st = ld_reader_next(f->r, &f->cur, err);
            if (st != LD_OK)
                return st;
            if (f->cur) {
                f->cur_key.step = f->cur->step;
                f->cur_key.layer = f->cur->layer;
                memcpy(f->cur_key.tag, f->cur->tag, sizeof f->cur_key.tag);
            }
        }
        int c = f->cur ? ld_key_cmp_exec(&f->cur_key, want) : 1; /* the end: past every key */
        if (c == 0) {
            *found = true;
            return LD_OK;
        }
        if (c < 0) {
            f->cur = NULL; /* ld_reader_next checks the payload it skips */
            continue;
        }
        if (rewound)
            return LD_OK;
        ld_status st = feed_reopen(f, err);
        if (st != LD_OK)
            return st;
        rewound = true;
    }
}

static void store(void *dst, ld_dtype t, size_t i, float v)
{
    if (t == LD_F32) {
        memcpy((unsigned char *)dst + 4 * i, &v, 4);
        return;
    }
    uint16_t h = t == LD_BF16 ? ld_f32_to_bf16(v) : ld_f32_to_f16(v);
    memcpy((unsigned char *)dst + 2 * i, &h, 2);
}

ld_status ld_feed_get(ld_feed *f, int step, int layer, const char *tag, ld_dtype dtype,
                      void *dst, size_t numel, ld_error *err)
{
    if (!f || !tag || (numel && !dst) || (unsigned)dtype > LD_F16)
        return ld_error_set(err, LD_E_USAGE, "ld_feed_get: NULL feed, tag or dst, or bad dtype");
    ld_key want = {step, layer, ""};
    if (strlen(tag) >= sizeof want.tag)
        return ld_error_set(err, LD_E_USAGE, "ld_feed_get: tag '%.64s...' is too long", tag);
    strcpy(want.tag, tag);
    char key[LD_TAG_NAME_MAX + 32];
    ld_key_format(&want, key, sizeof key);
    bool found;
    ld_status st = feed_seek(f, &want, &found, err);
    if (st != LD_OK)
        return st;
    if (!found)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: the feed has no probe %s (write the reference with its tags, "
                            "layers and steps, or narrow --feed-tags/--feed-layers/--feed-steps)",
                            f->path, key);
    const ld_probe *p = f->cur;
    if (!p->has_data)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: probe %s holds no payload (write the feed with --payload full)",
                            f->path, key);
    if (p->numel != (uint64_t)numel)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: probe %s has %llu elements, the tensor it replaces %zu (a feed "
                            "of another model or prompt?)",
                            f->path, key, (unsigned long long)p->numel, numel);
    size_t esz = ld_dtype_size(p->data_dtype), done = 0, got;
    do {
        if ((st = ld_reader_read_data(f->r, f->chunk, FEED_CHUNK, &got, err)) != LD_OK)
            return st;
        for (size_t i = 0; i < got / esz; i++)
            store(dst, dtype, done + i, ld_load_f32(f->chunk, p->data_dtype, i));
        done += got / esz;
    } while (got);
    f->cur = NULL; /* served: the next key lies further on */
    return LD_OK;
}

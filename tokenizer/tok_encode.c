/* tok_encode.c — text to ids (added tokens, NFC, the split regexes, byte-level BPE by merge rank,
 * in Hugging Face tokenizers' order) and ids back to bytes and to text for people. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "buf.h"
#include "json_lex.h"
#include "tok_internal.h"
#include "util.h"

/* ---- the output and the per-call word cache ---- */

typedef struct ids_out {
    int32_t *v;
    size_t n, cap;
    bool oom;
} ids_out;

static void ids_push(ids_out *o, int32_t id)
{
    if (o->n == o->cap) {
        size_t c = o->cap ? o->cap * 2 : 256;
        int32_t *nv = realloc(o->v, c * sizeof *nv);
        if (!nv) {
            o->oom = true;
            return;
        }
        o->v = nv;
        o->cap = c;
    }
    o->v[o->n++] = id;
}

/* Pieces seen before in this call and their ids: text repeats words, and merging is the cost. */
#define CACHE_SLOTS    (1u << 15)
#define CACHE_MAX_WORD 64 /* bytes: longer pieces are merged every time */

typedef struct cache_entry {
    uint64_t hash;
    char *key; /* key bytes, then the ids (int32_t, aligned) */
    uint32_t klen, n;
} cache_entry;

typedef struct word_cache {
    cache_entry *slot; /* [CACHE_SLOTS], key NULL when empty */
    size_t used;
} word_cache;

static cache_entry *cache_find(word_cache *c, const char *s, size_t n, uint64_t h)
{
    if (!c->slot) return NULL;
    for (size_t i = h & (CACHE_SLOTS - 1);; i = (i + 1) & (CACHE_SLOTS - 1)) {
        cache_entry *e = &c->slot[i];
        if (!e->key || (e->hash == h && e->klen == n && memcmp(e->key, s, n) == 0)) return e;
    }
}

static const int32_t *cache_ids(const cache_entry *e)
{
    return (const int32_t *)(e->key + ((e->klen + 3u) & ~3u));
}

static void cache_put(word_cache *c, cache_entry *e, const char *s, size_t n, uint64_t h,
                      const int32_t *ids, size_t nids)
{
    if (c->used >= CACHE_SLOTS / 2) return; /* full enough: the probe chains stay short */
    size_t off = (n + 3u) & ~(size_t)3u;
    char *mem = malloc(off + nids * sizeof *ids);
    if (!mem) return; /* a cache miss later, not an error */
    memcpy(mem, s, n);
    memcpy(mem + off, ids, nids * sizeof *ids);
    *e = (cache_entry){h, mem, (uint32_t)n, (uint32_t)nids};
    c->used++;
}

static void cache_free(word_cache *c)
{
    if (!c->slot) return;
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        free(c->slot[i].key);
    free(c->slot);
}

/* ---- BPE on one piece: merge the lowest-ranked adjacent pair first (leftmost on ties) ---- */

typedef struct sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    bool gone;          /* merged into its left neighbour */
} sym;

typedef struct cand {
    int32_t rank, pos, id; /* merge (rank) of sym pos with its next into id */
} cand;

static bool cand_less(cand a, cand b)
{
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

typedef struct work {
    sym *s;
    cand *heap;
    size_t cap_s, cap_h, n_h;
} work;

static bool heap_push(work *w, cand c)
{
    if (w->n_h == w->cap_h) {
        size_t nc = w->cap_h ? w->cap_h * 2 : 64;
        cand *nh = realloc(w->heap, nc * sizeof *nh);
        if (!nh) return false;
        w->heap = nh;
        w->cap_h = nc;
    }
    size_t i = w->n_h++;
    while (i > 0 && cand_less(c, w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = c;
    return true;
}

static cand heap_pop(work *w)
{
    cand top = w->heap[0], last = w->heap[--w->n_h];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        cand best = last;
        if (l < w->n_h && cand_less(w->heap[l], best)) m = l, best = w->heap[l];
        if (l + 1 < w->n_h && cand_less(w->heap[l + 1], best)) m = l + 1;
        if (m == i) break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (w->n_h) w->heap[i] = last;
    return top;
}

static bool push_pair(const ld_tokenizer *t, work *w, int32_t pos)
{
    if (pos < 0) return true;
    int32_t nx = w->s[pos].next;
    if (nx < 0) return true;
    const tok_merge *m = tok_merge_find(t, w->s[pos].id, w->s[nx].id);
    return !m || heap_push(w, (cand){m->rank, pos, m->id});
}

/* The ids of piece s[0..n) (n >= 1) appended to out. */
static ld_status bpe(const ld_tokenizer *t, work *w, const unsigned char *s, size_t n,
                     ids_out *out)
{
    if (t->ignore_merges && n <= LD_TOK_MAX_TOKEN) { /* a whole-token piece is taken as it is */
        char mapped[2 * LD_TOK_MAX_TOKEN];                /* each byte maps to 1 or 2 bytes */
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            m += ld_json_utf8_encode(ld_byte_level_cp(s[i]), mapped + m);
        int32_t id = tok_vocab_find(t, mapped, m);
        if (id >= 0) {
            ids_push(out, id);
            return LD_OK;
        }
    }
    if (n > w->cap_s) {
        sym *ns = realloc(w->s, n * sizeof *ns);
        if (!ns) return LD_E_NOMEM;
        w->s = ns;
        w->cap_s = n;
    }
    for (size_t i = 0; i < n; i++)
        w->s[i] = (sym){t->byte_id[s[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, false};
    w->n_h = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (!push_pair(t, w, (int32_t)i)) return LD_E_NOMEM;
    while (w->n_h) {
        cand c = heap_pop(w);
        sym *a = &w->s[c.pos];
        if (a->gone || a->next < 0) continue;
        sym *b = &w->s[a->next];
        const tok_merge *m = tok_merge_find(t, a->id, b->id);
        if (!m || m->id != c.id) continue; /* stale: a neighbour changed since it was queued */
        a->id = c.id;
        b->gone = true;
        a->next = b->next;
        if (b->next >= 0) w->s[b->next].prev = c.pos;
        if (!push_pair(t, w, a->prev) || !push_pair(t, w, c.pos)) return LD_E_NOMEM;
    }
    for (int32_t i = 0; i >= 0; i = w->s[i].next)
        ids_push(out, w->s[i].id);
    return LD_OK;
}

static ld_status bpe_cached(const ld_tokenizer *t, work *w, word_cache *c, const char *s,
                            size_t n, ids_out *out)
{
    if (n == 0) return LD_OK;
    if (n > CACHE_MAX_WORD) return bpe(t, w, (const unsigned char *)s, n, out);
    uint64_t h = tok_hash(s, n);
    if (!c->slot) c->slot = calloc(CACHE_SLOTS, sizeof *c->slot);
    cache_entry *e = cache_find(c, s, n, h);
    if (e && e->key) {
        const int32_t *ids = cache_ids(e);
        for (uint32_t i = 0; i < e->n; i++)
            ids_push(out, ids[i]);
        return LD_OK;
    }
    size_t first = out->n;
    ld_status st = bpe(t, w, (const unsigned char *)s, n, out);
    if (st == LD_OK && e && !out->oom) cache_put(c, e, s, n, h, out->v + first, out->n - first);
    return st;
}

/* ---- pre-tokenization: each split regex in turn, matches and the gaps between them kept ---- */

typedef struct encoder {
    const ld_tokenizer *t;
    work w;
    word_cache cache;
    OnigRegion *region;
    ids_out out;
} encoder;

static ld_status split_level(encoder *e, size_t level, const char *s, size_t n)
{
    if (n == 0) return LD_OK;
    if (level == e->t->n_split) return bpe_cached(e->t, &e->w, &e->cache, s, n, &e->out);
    const OnigUChar *b = (const OnigUChar *)s, *end = b + n;
    size_t at = 0, gap = 0;
    ld_status st = LD_OK;
    while (at < n && st == LD_OK) {
        int r = onig_search(e->t->split[level], b, end, b + at, end, e->region, ONIG_OPTION_NONE);
        if (r == ONIG_MISMATCH) break;
        if (r < 0) return LD_E_INTERNAL;
        size_t mb = (size_t)e->region->beg[0], me = (size_t)e->region->end[0];
        if (me == mb) { /* an empty match splits nothing: step over one character */
            size_t cl = ld_json_utf8_len(b + mb, n - mb);
            at = mb + (cl ? cl : 1);
            continue;
        }
        if (mb > gap) st = split_level(e, level + 1, s + gap, mb - gap);
        if (st == LD_OK) st = split_level(e, level + 1, s + mb, me - mb);
        at = gap = me;
    }
    if (st == LD_OK && gap < n) st = split_level(e, level + 1, s + gap, n - gap);
    return st;
}

/* ---- added tokens, then normalization ---- */

static bool is_ws(uint32_t cp)
{ /* Unicode White_Space, as Rust's char::is_whitespace (which HF's lstrip/rstrip use) */
    if ((cp >= 9 && cp <= 13) || cp == 0x85) return true;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

/* The leftmost, then longest, added token of the given normalization class in s[from..n): its
 * start and end, widened over white space by lstrip/rstrip (never before from). */
static const tok_added *find_added(const ld_tokenizer *t, bool normalized, const char *s, size_t n,
                                   size_t from, size_t *mb, size_t *me)
{
    const bool *first = t->added_first[normalized];
    for (size_t at = from; at < n; at++) {
        if (!first[(unsigned char)s[at]]) continue;
        const tok_added *best = NULL;
        for (size_t i = 0; i < t->n_added; i++) {
            const tok_added *a = &t->added[i];
            if (a->normalized != normalized || a->len > n - at || (best && a->len <= best->len))
                continue;
            if (memcmp(s + at, a->content, a->len) == 0) best = a;
        }
        if (!best) continue;
        size_t b = at, e = at + best->len;
        if (best->lstrip)
            while (b > from) {
                size_t k = b - 1; /* back to the start of the previous character */
                while (k > from && ((unsigned char)s[k] & 0xc0) == 0x80)
                    k--;
                utf8proc_int32_t cp;
                if (utf8proc_iterate((const utf8proc_uint8_t *)s + k, (utf8proc_ssize_t)(b - k),
                                     &cp) <= 0 || !is_ws((uint32_t)cp))
                    break;
                b = k;
            }
        if (best->rstrip)
            while (e < n) {
                utf8proc_int32_t cp;
                utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + e,
                                                      (utf8proc_ssize_t)(n - e), &cp);
                if (l <= 0 || !is_ws((uint32_t)cp)) break;
                e += (size_t)l;
            }
        *mb = b;
        *me = e;
        return best;
    }
    return NULL;
}

/* Text between added tokens: the normalized added tokens are looked for in its normal form. */
static ld_status normalized_part(encoder *e, const char *s, size_t n)
{
    if (n == 0) return LD_OK;
    char *nfc = NULL;
    if (e->t->nfc) {
        ld_status st = tok_nfc(s, n, &nfc, &n);
        if (st != LD_OK) return st;
        s = nfc;
    }
    ld_status st = LD_OK;
    size_t at = 0, mb, me;
    const tok_added *a;
    while (st == LD_OK && (a = find_added(e->t, true, s, n, at, &mb, &me))) {
        st = split_level(e, 0, s + at, mb - at);
        ids_push(&e->out, a->id);
        at = me;
    }
    if (st == LD_OK) st = split_level(e, 0, s + at, n - at);
    free(nfc);
    return st;
}

ld_status ld_tokenizer_encode(const ld_tokenizer *t, const char *text, size_t len, int32_t **ids,
                              size_t *n, ld_error *err)
{
    *ids = NULL;
    *n = 0;
    if (len > LD_TOK_MAX_TEXT)
        return ld_error_set(err, LD_E_INPUT, "text of %zu bytes, more than the %u one encode "
                            "takes", len, LD_TOK_MAX_TEXT);
    for (size_t i = 0; i < len;) {
        size_t l = ld_json_utf8_len((const unsigned char *)text + i, len - i);
        if (!l)
            return ld_error_set(err, LD_E_INPUT, "invalid UTF-8 at byte offset %zu (0x%02x)", i,
                                (unsigned char)text[i]);
        i += l;
    }
    encoder e = {.t = t, .region = onig_region_new()};
    if (!e.region) return ld_error_set(err, LD_E_NOMEM, "out of memory");
    ld_status st = LD_OK;
    size_t at = 0, mb, me;
    const tok_added *a;
    while (st == LD_OK && (a = find_added(t, false, text, len, at, &mb, &me))) {
        st = normalized_part(&e, text + at, mb - at);
        ids_push(&e.out, a->id);
        at = me;
    }
    if (st == LD_OK) st = normalized_part(&e, text + at, len - at);
    if (st == LD_OK && e.out.oom) st = LD_E_NOMEM;
    onig_region_free(e.region, 1);
    free(e.w.s);
    free(e.w.heap);
    cache_free(&e.cache);
    if (st != LD_OK) {
        free(e.out.v);
        return ld_error_set(err, st, st == LD_E_NOMEM ? "out of memory while encoding"
                                                      : "the split regex failed while encoding");
    }
    *ids = e.out.v;
    *n = e.out.n;
    return LD_OK;
}

/* ---- decoding ---- */

ld_status ld_tokenizer_decode(const ld_tokenizer *t, const int32_t *ids, size_t n, char **out,
                              size_t *len, ld_error *err)
{
    ld_buf b = {0};
    *out = NULL;
    *len = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->id_end || !t->text[ids[i]]) {
            ld_buf_free(&b);
            return ld_error_set(err, LD_E_INPUT, "token id %d is not in the tokenizer (ids 0 to "
                                "%d)", (int)ids[i], (int)t->id_end - 1);
        }
        const char *s = t->text[ids[i]];
        size_t m = t->text_len[ids[i]], start = b.len;
        bool mapped = true; /* HF: a token of byte-level characters only becomes their bytes */
        for (size_t k = 0; k < m && mapped;) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + k,
                                                  (utf8proc_ssize_t)(m - k), &cp);
            int byte = l > 0 ? ld_byte_level_byte((uint32_t)cp) : -1;
            if (byte < 0) mapped = false;
            else ld_buf_putc(&b, (char)byte);
            k += l > 0 ? (size_t)l : m;
        }
        if (!mapped) { /* otherwise its text as it is */
            b.len = start;
            ld_buf_append(&b, s, m);
        }
    }
    if (ld_buf_failed(&b)) return ld_error_set(err, LD_E_NOMEM, "out of memory while decoding");
    *len = b.len;
    *out = ld_buf_take(&b);
    if (!*out) return ld_error_set(err, LD_E_NOMEM, "out of memory while decoding");
    return LD_OK;
}

static bool shows(utf8proc_int32_t cp)
{
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
        return false;
    default:
        return true;
    }
}

void ld_tokenizer_label(const ld_tokenizer *t, int32_t id, char *out, size_t size)
{
    char *bytes = NULL;
    size_t len = 0;
    if (size < 4) {
        if (size) out[0] = 0;
        return;
    }
    if (ld_tokenizer_decode(t, &id, 1, &bytes, &len, NULL) != LD_OK) {
        snprintf(out, size, "?");
        return;
    }
    out[0] = '"';
    size_t o = 1 + ld_token_text_escape(bytes, len, out + 1, size - 2);
    out[o] = '"';
    out[o + 1] = 0;
    free(bytes);
}

size_t ld_token_text_escape(const char *s, size_t n, char *out, size_t size)
{
    if (size == 0) return 0;
    size_t o = 0, ends[4] = {0}; /* where the last pieces ended, to back off for "..." */
    unsigned pieces = 0;
    for (size_t i = 0; i < n;) {
        char piece[16];
        size_t pl;
        utf8proc_int32_t cp = -1;
        size_t l = ld_json_utf8_len((const unsigned char *)s + i, n - i);
        if (l) utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)l, &cp);
        if (!l) {
            pl = (size_t)snprintf(piece, sizeof piece, "\\x%02x", (unsigned char)s[i]);
            l = 1;
        } else if (cp == '\\') {
            pl = (size_t)snprintf(piece, sizeof piece, "\\\\");
        } else if (cp == '\n' || cp == '\r' || cp == '\t') {
            pl = (size_t)snprintf(piece, sizeof piece, "\\%c", cp == '\n' ? 'n'
                                                              : cp == '\r' ? 'r' : 't');
        } else if (!shows(cp)) {
            pl = (size_t)snprintf(piece, sizeof piece, "\\u{%04X}", (unsigned)cp);
        } else {
            memcpy(piece, s + i, l);
            pl = l;
        }
        if (o + pl + 1 > size) { /* cut: drop whole pieces until "..." fits */
            while (o + 4 > size && pieces > 0)
                o = --pieces ? ends[(pieces - 1) % 4] : 0;
            if (o + 4 <= size) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        memcpy(out + o, piece, pl);
        o += pl;
        ends[pieces++ % 4] = o;
        i += l;
    }
    out[o] = 0;
    return o;
}

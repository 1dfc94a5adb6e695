/* tok_load.c — reads a tokenizer.json (hostile input: every size bounded, every reference checked)
 * into the tables tok_encode.c reads. The JSON is walked with the checkpoint pull parser
 * (model/json_pull.h); nothing of the document is kept but the tables. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "json_pull.h"
#include "tok_internal.h"
#include "util.h"

/* ---- hash tables ---- */

uint64_t tok_hash(const char *s, size_t n)
{
    return ld_fnv1a(LD_FNV_INIT, s, n);
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

int32_t tok_vocab_find(const ld_tokenizer *t, const char *s, size_t n)
{
    for (size_t i = tok_hash(s, n) & t->vocab.mask;; i = (i + 1) & t->vocab.mask) {
        int32_t id = t->vocab.slot[i];
        if (id < 0) return -1;
        if (t->text_len[id] == n && memcmp(t->text[id], s, n) == 0) return id;
    }
}

static uint64_t pair_hash(uint64_t p)
{
    p ^= p >> 33;
    p *= 0xff51afd7ed558ccdULL;
    p ^= p >> 33;
    return p;
}

const tok_merge *tok_merge_find(const ld_tokenizer *t, int32_t left, int32_t right)
{
    uint64_t p = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t i = pair_hash(p) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const tok_merge *m = &t->merges[i];
        if (m->pair == p) return m;
        if (m->pair == UINT64_MAX) return NULL;
    }
}

/* ---- what the parse collects before the tables are built ---- */

typedef struct vocab_entry {
    char *s;
    size_t len;
    int32_t id;
} vocab_entry;

typedef struct merge_entry {
    char *a, *b;
    size_t alen, blen;
} merge_entry;

typedef struct parsed {
    vocab_entry *vocab;
    size_t n_vocab, cap_vocab;
    merge_entry *merges;
    size_t n_merges, cap_merges;
    tok_added *added;
    size_t cap_added;
    bool have_model, have_vocab, have_merges, have_byte_level;
} parsed;

static void parsed_free(parsed *p)
{
    for (size_t i = 0; i < p->n_vocab; i++)
        free(p->vocab[i].s);
    free(p->vocab);
    for (size_t i = 0; i < p->n_merges; i++) {
        free(p->merges[i].a);
        free(p->merges[i].b);
    }
    free(p->merges);
}

static bool grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return true;
    size_t c = *cap ? *cap * 2 : 64, bytes;
    while (c < need)
        c *= 2;
    if (!ld_mul_size(c, elem, &bytes)) return false;
    void *nv = realloc(*v, bytes);
    if (!nv) return false;
    *v = nv;
    *cap = c;
    return true;
}

static ld_status nomem(ld_jp *j)
{
    return ld_jp_fail(j, LD_E_NOMEM, "out of memory");
}

/* Reads a string value that must equal one of the accepted ones (NULL-terminated list). */
static ld_status read_type(ld_jp *j, const char *what, char *out, size_t size)
{
    char *s;
    size_t n;
    ld_status st = ld_jp_string(j, &s, &n);
    if (st != LD_OK) return st;
    char safe[64];
    if (n >= size) {
        st = ld_jp_fail(j, LD_E_UNSUPPORTED, "%s type \"%s\" is not supported", what,
                        ld_jp_printable(s, safe, sizeof safe));
        free(s);
        return st;
    }
    memcpy(out, s, n + 1);
    free(s);
    return LD_OK;
}

/* A bool member, also accepting null as false when null_ok. */
static ld_status read_flag(ld_jp *j, bool *out)
{
    if (ld_jp_peek(j) == LD_JP_NULL) {
        *out = false;
        return ld_jp_null(j);
    }
    return ld_jp_bool(j, out);
}

/* A member that must be null or the empty string (BPE's subword prefix and suffix). */
static ld_status read_empty(ld_jp *j, const char *key)
{
    if (ld_jp_peek(j) == LD_JP_NULL) return ld_jp_null(j);
    char *s;
    size_t n;
    ld_status st = ld_jp_string(j, &s, &n);
    free(s);
    if (st == LD_OK && n)
        st = ld_jp_fail(j, LD_E_UNSUPPORTED, "BPE %s is not supported (only null or \"\")", key);
    return st;
}

/* ---- "model" ---- */

static ld_status parse_vocab(ld_jp *j, parsed *p)
{
    size_t count = 0;
    bool more = true;
    ld_status st = ld_jp_object_begin(j);
    while (st == LD_OK) {
        char *key;
        if ((st = ld_jp_object_next(j, &count, &more, &key)) != LD_OK || !more) break;
        size_t klen = strlen(key);
        ld_jp_num num;
        uint64_t id;
        if (count > LD_TOK_MAX_IDS)
            st = ld_jp_fail(j, LD_E_INPUT, "the vocabulary has more than %u tokens",
                            LD_TOK_MAX_IDS);
        else if (klen == 0 || klen > LD_TOK_MAX_TOKEN)
            st = ld_jp_fail(j, LD_E_INPUT, "vocabulary token of %zu bytes (1 to %d allowed)",
                            klen, LD_TOK_MAX_TOKEN);
        else if ((st = ld_jp_number(j, &num)) != LD_OK)
            ;
        else if (!ld_jp_num_u64(&num, &id) || id >= LD_TOK_MAX_IDS)
            st = ld_jp_fail(j, LD_E_INPUT, "vocabulary id %.*s is not an integer in [0, %u)",
                            (int)LD_MIN(num.len, 40), num.tok, LD_TOK_MAX_IDS);
        else if (!grow((void **)&p->vocab, &p->cap_vocab, p->n_vocab + 1, sizeof *p->vocab))
            st = nomem(j);
        if (st != LD_OK) {
            free(key);
            break;
        }
        p->vocab[p->n_vocab++] = (vocab_entry){key, klen, (int32_t)id};
    }
    return st;
}

static ld_status merge_part(ld_jp *j, char **s, size_t *n)
{
    ld_status st = ld_jp_string(j, s, n);
    if (st == LD_OK && (*n == 0 || *n > LD_TOK_MAX_TOKEN))
        st = ld_jp_fail(j, LD_E_INPUT, "merge part of %zu bytes (1 to %d allowed)", *n,
                        LD_TOK_MAX_TOKEN);
    return st;
}

static ld_status parse_merges(ld_jp *j, parsed *p)
{
    size_t count = 0;
    bool more = true;
    ld_status st = ld_jp_array_begin(j);
    while (st == LD_OK) {
        if ((st = ld_jp_array_next(j, &count, &more)) != LD_OK || !more) break;
        if (count > LD_TOK_MAX_IDS)
            return ld_jp_fail(j, LD_E_INPUT, "more than %u merges", LD_TOK_MAX_IDS);
        if (!grow((void **)&p->merges, &p->cap_merges, p->n_merges + 1, sizeof *p->merges))
            return nomem(j);
        merge_entry m = {0};
        if (ld_jp_peek(j) == LD_JP_ARRAY) { /* ["a", "b"] (tokenizers >= 0.20) */
            size_t c2 = 0;
            bool more2 = true;
            char *extra = NULL;
            size_t en;
            st = ld_jp_array_begin(j);
            if (st == LD_OK) st = ld_jp_array_next(j, &c2, &more2);
            if (st == LD_OK && more2) st = merge_part(j, &m.a, &m.alen);
            if (st == LD_OK && more2) st = ld_jp_array_next(j, &c2, &more2);
            if (st == LD_OK && more2) st = merge_part(j, &m.b, &m.blen);
            if (st == LD_OK && more2) st = ld_jp_array_next(j, &c2, &more2);
            if (st == LD_OK && (more2 || c2 != 2)) {
                if (more2) (void)ld_jp_string(j, &extra, &en);
                st = ld_jp_fail(j, LD_E_INPUT, "merge %zu is not a pair of tokens", count - 1);
            }
            free(extra);
        } else { /* "a b" */
            char *s;
            size_t n;
            if ((st = ld_jp_string(j, &s, &n)) != LD_OK) break;
            char *sp = memchr(s, ' ', n);
            if (!sp || sp == s || sp + 1 == s + n || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1))
                || n > 2 * LD_TOK_MAX_TOKEN + 1) {
                free(s);
                return ld_jp_fail(j, LD_E_INPUT,
                                  "merge %zu is not two tokens separated by one space", count - 1);
            }
            m.alen = (size_t)(sp - s);
            m.blen = n - m.alen - 1;
            m.a = malloc(m.alen + 1);
            m.b = malloc(m.blen + 1);
            if (m.a && m.b) {
                memcpy(m.a, s, m.alen);
                m.a[m.alen] = 0;
                memcpy(m.b, sp + 1, m.blen + 1);
            }
            free(s);
            if (!m.a || !m.b) st = nomem(j);
        }
        if (st != LD_OK) {
            free(m.a);
            free(m.b);
            break;
        }
        p->merges[p->n_merges++] = m;
    }
    return st;
}

static ld_status parse_model(ld_jp *j, parsed *p, ld_tokenizer *t)
{
    ld_jp_keys keys = {0};
    size_t count = 0;
    bool more = true, have_type = false;
    ld_status st = ld_jp_object_begin(j);
    while (st == LD_OK) {
        char *key;
        if ((st = ld_jp_object_next(j, &count, &more, &key)) != LD_OK || !more) break;
        if ((st = ld_jp_keys_add(j, &keys, key)) != LD_OK) break;
        if (strcmp(key, "type") == 0) {
            char type[16];
            if ((st = read_type(j, "model", type, sizeof type)) == LD_OK && strcmp(type, "BPE"))
                st = ld_jp_fail(j, LD_E_UNSUPPORTED,
                                "model type %s is not supported (only byte-level BPE)", type);
            have_type = true;
        } else if (strcmp(key, "vocab") == 0) {
            st = parse_vocab(j, p);
            p->have_vocab = true;
        } else if (strcmp(key, "merges") == 0) {
            st = parse_merges(j, p);
            p->have_merges = true;
        } else if (strcmp(key, "dropout") == 0) {
            if (ld_jp_peek(j) != LD_JP_NULL)
                st = ld_jp_fail(j, LD_E_UNSUPPORTED, "BPE dropout is not supported (only null)");
            else
                st = ld_jp_null(j);
        } else if (strcmp(key, "continuing_subword_prefix") == 0 ||
                   strcmp(key, "end_of_word_suffix") == 0) {
            st = read_empty(j, key);
        } else if (strcmp(key, "byte_fallback") == 0) {
            bool b;
            if ((st = read_flag(j, &b)) == LD_OK && b)
                st = ld_jp_fail(j, LD_E_UNSUPPORTED, "BPE byte_fallback is not supported");
        } else if (strcmp(key, "ignore_merges") == 0) {
            st = read_flag(j, &t->ignore_merges);
        } else { /* unk_token, fuse_unk: never used, every byte having its token */
            st = ld_jp_skip(j);
        }
    }
    if (st == LD_OK) {
        const char *dup = ld_jp_keys_duplicate(&keys);
        if (dup) st = ld_jp_fail(j, LD_E_INPUT, "duplicate key \"%.100s\" in \"model\"", dup);
    }
    ld_jp_keys_free(&keys);
    if (st == LD_OK && !have_type)
        st = ld_jp_fail(j, LD_E_UNSUPPORTED, "\"model\" has no \"type\" (only BPE is supported)");
    if (st == LD_OK && (!p->have_vocab || !p->have_merges))
        st = ld_jp_fail(j, LD_E_INPUT, "\"model\" lacks \"%s\"",
                        p->have_vocab ? "merges" : "vocab");
    p->have_model = true;
    return st;
}

/* ---- "added_tokens" ---- */

static ld_status parse_added(ld_jp *j, parsed *p, ld_tokenizer *t)
{
    size_t count = 0;
    bool more = true;
    ld_status st = ld_jp_array_begin(j);
    while (st == LD_OK) {
        if ((st = ld_jp_array_next(j, &count, &more)) != LD_OK || !more) break;
        if (count > LD_TOK_MAX_ADDED)
            return ld_jp_fail(j, LD_E_INPUT, "more than %d added tokens", LD_TOK_MAX_ADDED);
        if (!grow((void **)&t->added, &p->cap_added, t->n_added + 1, sizeof *t->added))
            return nomem(j);
        tok_added a = {.id = -1, .normalized = true};
        bool single_word = false;
        ld_jp_keys keys = {0};
        size_t c2 = 0;
        bool more2 = true;
        st = ld_jp_object_begin(j);
        while (st == LD_OK) {
            char *key;
            if ((st = ld_jp_object_next(j, &c2, &more2, &key)) != LD_OK || !more2) break;
            if ((st = ld_jp_keys_add(j, &keys, key)) != LD_OK) break;
            if (strcmp(key, "id") == 0) {
                ld_jp_num num;
                uint64_t id;
                if ((st = ld_jp_number(j, &num)) == LD_OK &&
                    (!ld_jp_num_u64(&num, &id) || id >= LD_TOK_MAX_IDS))
                    st = ld_jp_fail(j, LD_E_INPUT, "added token id is not an integer in [0, %u)",
                                    LD_TOK_MAX_IDS);
                if (st == LD_OK) a.id = (int32_t)id;
            } else if (strcmp(key, "content") == 0) {
                free(a.content);
                a.content = NULL;
                st = ld_jp_string(j, &a.content, &a.len);
                if (st == LD_OK && (a.len == 0 || a.len > LD_TOK_MAX_TOKEN))
                    st = ld_jp_fail(j, LD_E_INPUT, "added token of %zu bytes (1 to %d allowed)",
                                    a.len, LD_TOK_MAX_TOKEN);
            } else if (strcmp(key, "single_word") == 0) {
                st = read_flag(j, &single_word);
            } else if (strcmp(key, "lstrip") == 0) {
                st = read_flag(j, &a.lstrip);
            } else if (strcmp(key, "rstrip") == 0) {
                st = read_flag(j, &a.rstrip);
            } else if (strcmp(key, "normalized") == 0) {
                st = read_flag(j, &a.normalized);
            } else if (strcmp(key, "special") == 0) {
                st = read_flag(j, &a.special);
            } else {
                st = ld_jp_skip(j);
            }
        }
        if (st == LD_OK) {
            const char *dup = ld_jp_keys_duplicate(&keys);
            if (dup) st = ld_jp_fail(j, LD_E_INPUT, "duplicate key \"%.100s\" in an added token",
                                     dup);
        }
        ld_jp_keys_free(&keys);
        if (st == LD_OK && (a.id < 0 || !a.content))
            st = ld_jp_fail(j, LD_E_INPUT, "added token %zu lacks \"%s\"", count - 1,
                            a.content ? "id" : "content");
        if (st == LD_OK && single_word)
            st = ld_jp_fail(j, LD_E_UNSUPPORTED,
                            "added token %zu: \"single_word\": true is not supported", count - 1);
        if (st != LD_OK) {
            free(a.content);
            break;
        }
        t->added[t->n_added++] = a;
    }
    return st;
}

/* ---- normalizer, pre-tokenizer, post-processor, decoder ---- */

/* Reads {"type": T, ...} where only the type matters; the other members are checked and skipped. */
static ld_status parse_typed(ld_jp *j, const char *what, char *type, size_t size)
{
    ld_jp_keys keys = {0};
    size_t count = 0;
    bool more = true;
    type[0] = 0;
    ld_status st = ld_jp_object_begin(j);
    while (st == LD_OK) {
        char *key;
        if ((st = ld_jp_object_next(j, &count, &more, &key)) != LD_OK || !more) break;
        if ((st = ld_jp_keys_add(j, &keys, key)) != LD_OK) break;
        st = strcmp(key, "type") == 0 ? read_type(j, what, type, size) : ld_jp_skip(j);
    }
    if (st == LD_OK && ld_jp_keys_duplicate(&keys))
        st = ld_jp_fail(j, LD_E_INPUT, "duplicate key in \"%s\"", what);
    ld_jp_keys_free(&keys);
    return st;
}

static ld_status parse_normalizer(ld_jp *j, ld_tokenizer *t)
{
    if (ld_jp_peek(j) == LD_JP_NULL) return ld_jp_null(j);
    char type[32];
    ld_status st = parse_typed(j, "normalizer", type, sizeof type);
    if (st != LD_OK) return st;
    if (strcmp(type, "NFC") != 0)
        return ld_jp_fail(j, LD_E_UNSUPPORTED,
                          "normalizer type %s is not supported (only NFC or none)",
                          type[0] ? type : "(missing)");
    t->nfc = true;
    return LD_OK;
}

static void onig_init_once(void)
{
    OnigEncoding enc[1] = {ONIG_ENCODING_UTF8};
    onig_initialize(enc, 1);
}

void tok_onig_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, onig_init_once);
}

static ld_status compile_split(ld_jp *j, ld_tokenizer *t, const char *pat, size_t n)
{
    tok_onig_init();
    if (t->n_split == LD_TOK_MAX_SPLITS)
        return ld_jp_fail(j, LD_E_INPUT, "more than %d Split steps", LD_TOK_MAX_SPLITS);
    OnigErrorInfo einfo;
    const OnigUChar *p = (const OnigUChar *)pat;
    int r = onig_new(&t->split[t->n_split], p, p + n, ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
                     ONIG_SYNTAX_DEFAULT, &einfo);
    if (r != ONIG_NORMAL) {
        OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, r, &einfo);
        return ld_jp_fail(j, LD_E_INPUT, "Split regex does not compile: %s", (char *)msg);
    }
    t->n_split++;
    return LD_OK;
}

/* One pre-tokenizer step: Split (regex, Isolated, not inverted) or ByteLevel (no prefix space,
 * no regex of its own), which must come last. */
static ld_status parse_pretok_step(ld_jp *j, parsed *p, ld_tokenizer *t)
{
    ld_jp_keys keys = {0};
    size_t count = 0;
    bool more = true;
    char type[32] = "", behavior[32] = "";
    char *pattern = NULL;
    size_t pattern_len = 0;
    bool invert = false, prefix = false, use_regex = true, have_regex = false;
    if (p->have_byte_level)
        return ld_jp_fail(j, LD_E_UNSUPPORTED, "a pre-tokenizer step after ByteLevel is not "
                                               "supported");
    ld_status st = ld_jp_object_begin(j);
    while (st == LD_OK) {
        char *key;
        if ((st = ld_jp_object_next(j, &count, &more, &key)) != LD_OK || !more) break;
        if ((st = ld_jp_keys_add(j, &keys, key)) != LD_OK) break;
        if (strcmp(key, "type") == 0) {
            st = read_type(j, "pre_tokenizer", type, sizeof type);
        } else if (strcmp(key, "behavior") == 0) {
            st = read_type(j, "Split behavior", behavior, sizeof behavior);
        } else if (strcmp(key, "invert") == 0) {
            st = read_flag(j, &invert);
        } else if (strcmp(key, "add_prefix_space") == 0) {
            st = read_flag(j, &prefix);
        } else if (strcmp(key, "use_regex") == 0) {
            st = read_flag(j, &use_regex);
        } else if (strcmp(key, "pattern") == 0) {
            size_t c2 = 0;
            bool more2 = true;
            char *k2;
            st = ld_jp_object_begin(j);
            while (st == LD_OK) {
                if ((st = ld_jp_object_next(j, &c2, &more2, &k2)) != LD_OK || !more2) break;
                bool is_regex = strcmp(k2, "Regex") == 0;
                free(k2);
                if (!is_regex || have_regex) {
                    st = ld_jp_fail(j, LD_E_UNSUPPORTED,
                                    "Split pattern must be one {\"Regex\": ...}");
                    break;
                }
                have_regex = true;
                st = ld_jp_string(j, &pattern, &pattern_len);
                if (st == LD_OK && pattern_len > LD_TOK_MAX_PATTERN)
                    st = ld_jp_fail(j, LD_E_INPUT, "Split regex of %zu bytes (at most %d)",
                                    pattern_len, LD_TOK_MAX_PATTERN);
            }
        } else {
            st = ld_jp_skip(j);
        }
    }
    if (st == LD_OK && ld_jp_keys_duplicate(&keys))
        st = ld_jp_fail(j, LD_E_INPUT, "duplicate key in a pre-tokenizer");
    ld_jp_keys_free(&keys);
    if (st != LD_OK) {
        free(pattern);
        return st;
    }
    if (strcmp(type, "Split") == 0) {
        if (!have_regex)
            st = ld_jp_fail(j, LD_E_UNSUPPORTED, "Split without a {\"Regex\": ...} pattern");
        else if (strcmp(behavior, "Isolated") != 0 || invert)
            st = ld_jp_fail(j, LD_E_UNSUPPORTED, "Split behavior %s%s is not supported (only "
                            "Isolated, not inverted)", behavior[0] ? behavior : "(missing)",
                            invert ? " inverted" : "");
        else
            st = compile_split(j, t, pattern, pattern_len);
    } else if (strcmp(type, "ByteLevel") == 0) {
        if (prefix || use_regex)
            st = ld_jp_fail(j, LD_E_UNSUPPORTED, "ByteLevel pre-tokenizer with %s is not "
                            "supported", prefix ? "add_prefix_space" : "its own regex (use_regex)");
        p->have_byte_level = true;
    } else {
        st = ld_jp_fail(j, LD_E_UNSUPPORTED, "pre_tokenizer type %s is not supported (only "
                        "Split and ByteLevel)", type[0] ? type : "(missing)");
    }
    free(pattern);
    return st;
}

static ld_status parse_pretok(ld_jp *j, parsed *p, ld_tokenizer *t)
{
    if (ld_jp_peek(j) == LD_JP_NULL) return ld_jp_null(j); /* refused later: not byte-level */
    /* A Sequence holds the steps in "pretokenizers"; a lone step is an object too. Look at
     * "type" without consuming: parse as a Sequence when the key "pretokenizers" shows up. */
    ld_jp save = *j;
    char type[32];
    ld_error scratch;
    save.err = &scratch;
    if (parse_typed(&save, "pre_tokenizer", type, sizeof type) == LD_OK &&
        strcmp(type, "Sequence") != 0)
        return parse_pretok_step(j, p, t);
    ld_jp_keys keys = {0};
    size_t count = 0;
    bool more = true;
    ld_status st = ld_jp_object_begin(j);
    while (st == LD_OK) {
        char *key;
        if ((st = ld_jp_object_next(j, &count, &more, &key)) != LD_OK || !more) break;
        if ((st = ld_jp_keys_add(j, &keys, key)) != LD_OK) break;
        if (strcmp(key, "pretokenizers") == 0) {
            size_t c2 = 0;
            bool more2 = true;
            st = ld_jp_array_begin(j);
            while (st == LD_OK) {
                if ((st = ld_jp_array_next(j, &c2, &more2)) != LD_OK || !more2) break;
                st = parse_pretok_step(j, p, t);
            }
        } else {
            st = ld_jp_skip(j);
        }
    }
    if (st == LD_OK && ld_jp_keys_duplicate(&keys))
        st = ld_jp_fail(j, LD_E_INPUT, "duplicate key in \"pre_tokenizer\"");
    ld_jp_keys_free(&keys);
    return st;
}

/* post_processor and decoder: null or ByteLevel (nothing added around the ids). */
static ld_status parse_byte_level_or_null(ld_jp *j, const char *what)
{
    if (ld_jp_peek(j) == LD_JP_NULL) return ld_jp_null(j);
    char type[32];
    ld_status st = parse_typed(j, what, type, sizeof type);
    if (st == LD_OK && strcmp(type, "ByteLevel") != 0)
        st = ld_jp_fail(j, LD_E_UNSUPPORTED, "%s type %s is not supported (only ByteLevel or "
                        "none)", what, type[0] ? type : "(missing)");
    return st;
}

static ld_status parse_top(ld_jp *j, parsed *p, ld_tokenizer *t)
{
    ld_jp_keys keys = {0};
    size_t count = 0;
    bool more = true;
    ld_status st = ld_jp_object_begin(j);
    while (st == LD_OK) {
        char *key;
        if ((st = ld_jp_object_next(j, &count, &more, &key)) != LD_OK || !more) break;
        if ((st = ld_jp_keys_add(j, &keys, key)) != LD_OK) break;
        if (strcmp(key, "model") == 0)
            st = parse_model(j, p, t);
        else if (strcmp(key, "added_tokens") == 0)
            st = parse_added(j, p, t);
        else if (strcmp(key, "normalizer") == 0)
            st = parse_normalizer(j, t);
        else if (strcmp(key, "pre_tokenizer") == 0)
            st = parse_pretok(j, p, t);
        else if (strcmp(key, "post_processor") == 0)
            st = parse_byte_level_or_null(j, "post_processor");
        else if (strcmp(key, "decoder") == 0)
            st = parse_byte_level_or_null(j, "decoder");
        else if (strcmp(key, "truncation") == 0 && ld_jp_peek(j) != LD_JP_NULL)
            st = ld_jp_fail(j, LD_E_UNSUPPORTED, "truncation is not supported (only null)");
        else
            st = ld_jp_skip(j); /* version, padding, truncation: null */
    }
    if (st == LD_OK) {
        const char *dup = ld_jp_keys_duplicate(&keys);
        if (dup) st = ld_jp_fail(j, LD_E_INPUT, "duplicate key \"%.100s\"", dup);
    }
    ld_jp_keys_free(&keys);
    if (st == LD_OK) st = ld_jp_end(j, false);
    if (st == LD_OK && !p->have_model)
        st = ld_error_set(j->err, LD_E_UNSUPPORTED, "%s: no \"model\" (only byte-level BPE is "
                          "supported)", j->label);
    if (st == LD_OK && !p->have_byte_level)
        st = ld_error_set(j->err, LD_E_UNSUPPORTED, "%s: the pre-tokenizer has no ByteLevel step "
                          "(only byte-level BPE is supported)", j->label);
    return st;
}

/* ---- building the tables ---- */

static ld_status build(parsed *p, ld_tokenizer *t, const char *label, ld_error *err)
{
    int32_t end = 0;
    for (size_t i = 0; i < p->n_vocab; i++)
        end = LD_MAX(end, p->vocab[i].id + 1);
    for (size_t i = 0; i < t->n_added; i++)
        end = LD_MAX(end, t->added[i].id + 1);
    t->id_end = end;
    t->text = calloc((size_t)end + 1, sizeof *t->text);
    t->text_len = calloc((size_t)end + 1, sizeof *t->text_len);
    t->special = calloc((size_t)end + 1, sizeof *t->special);
    t->vocab.mask = pow2_at_least(2 * p->n_vocab) - 1;
    t->vocab.slot = malloc((t->vocab.mask + 1) * sizeof *t->vocab.slot);
    if (!t->text || !t->text_len || !t->special || !t->vocab.slot)
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
    memset(t->vocab.slot, 0xff, (t->vocab.mask + 1) * sizeof *t->vocab.slot);
    char safe[64];
    for (size_t i = 0; i < p->n_vocab; i++) {
        vocab_entry *v = &p->vocab[i];
        if (t->text[v->id])
            return ld_error_set(err, LD_E_INPUT, "%s: vocabulary id %d is given to two tokens",
                                label, v->id);
        size_t k = tok_hash(v->s, v->len) & t->vocab.mask;
        for (; t->vocab.slot[k] >= 0; k = (k + 1) & t->vocab.mask) {
            int32_t o = t->vocab.slot[k];
            if (t->text_len[o] == v->len && memcmp(t->text[o], v->s, v->len) == 0)
                return ld_error_set(err, LD_E_INPUT, "%s: vocabulary token \"%s\" listed twice",
                                    label, ld_jp_printable(v->s, safe, sizeof safe));
        }
        t->vocab.slot[k] = v->id;
        t->text[v->id] = v->s; /* ownership moves to the tokenizer */
        t->text_len[v->id] = (uint32_t)v->len;
        v->s = NULL;
    }
    for (unsigned b = 0; b < 256; b++) {
        char u[4];
        size_t n = ld_json_utf8_encode(ld_byte_level_cp(b), u);
        if ((t->byte_id[b] = tok_vocab_find(t, u, n)) < 0)
            return ld_error_set(err, LD_E_UNSUPPORTED,
                                "%s: not byte-level BPE: the vocabulary lacks the token \"%.*s\" "
                                "for byte 0x%02x", label, (int)n, u, b);
    }
    t->merge_mask = pow2_at_least(2 * p->n_merges) - 1;
    t->merges = malloc((t->merge_mask + 1) * sizeof *t->merges);
    if (!t->merges) return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
    for (size_t i = 0; i <= t->merge_mask; i++)
        t->merges[i].pair = UINT64_MAX;
    char cat[2 * LD_TOK_MAX_TOKEN];
    for (size_t r = 0; r < p->n_merges; r++) {
        merge_entry *m = &p->merges[r];
        int32_t a = tok_vocab_find(t, m->a, m->alen), b = tok_vocab_find(t, m->b, m->blen);
        char sa[48], sb[48];
        if (a < 0 || b < 0)
            return ld_error_set(err, LD_E_INPUT, "%s: merge %zu (\"%s\" \"%s\") references the "
                                "unknown token \"%s\"", label, r,
                                ld_jp_printable(m->a, sa, sizeof sa),
                                ld_jp_printable(m->b, sb, sizeof sb),
                                a < 0 ? sa : sb);
        memcpy(cat, m->a, m->alen);
        memcpy(cat + m->alen, m->b, m->blen);
        int32_t id = tok_vocab_find(t, cat, m->alen + m->blen);
        if (id < 0)
            return ld_error_set(err, LD_E_INPUT, "%s: merge %zu (\"%s\" \"%s\") makes a token the "
                                "vocabulary lacks", label, r, ld_jp_printable(m->a, sa, sizeof sa),
                                ld_jp_printable(m->b, sb, sizeof sb));
        uint64_t pair = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        size_t k = pair_hash(pair) & t->merge_mask;
        for (; t->merges[k].pair != UINT64_MAX; k = (k + 1) & t->merge_mask)
            if (t->merges[k].pair == pair)
                return ld_error_set(err, LD_E_INPUT, "%s: merge %zu (\"%s\" \"%s\") is listed "
                                    "twice", label, r, ld_jp_printable(m->a, sa, sizeof sa),
                                    ld_jp_printable(m->b, sb, sizeof sb));
        t->merges[k] = (tok_merge){pair, (int32_t)r, id};
    }
    for (size_t i = 0; i < t->n_added; i++) {
        tok_added *a = &t->added[i];
        if (t->text[a->id] && (t->text_len[a->id] != a->len ||
                               memcmp(t->text[a->id], a->content, a->len) != 0))
            return ld_error_set(err, LD_E_INPUT, "%s: added token \"%s\" has id %d, which another "
                                "token has", label, ld_jp_printable(a->content, safe, sizeof safe),
                                a->id);
        t->special[a->id] = a->special;
        if (a->normalized && t->nfc) { /* matched against normalized text: normalize it too */
            char *nfc = NULL;
            size_t n;
            ld_status st = tok_nfc(a->content, a->len, &nfc, &n);
            if (st == LD_E_NOMEM) return ld_error_set(err, st, "%s: out of memory", label);
            if (st != LD_OK)
                return ld_error_set(err, st, "%s: added token %d is not valid UTF-8", label,
                                    a->id);
            free(a->content);
            a->content = nfc;
            a->len = n;
        }
        if (!t->text[a->id]) { /* decoded as HF does: the content as matched (normalized) */
            t->text[a->id] = malloc(a->len + 1);
            if (!t->text[a->id]) return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
            memcpy(t->text[a->id], a->content, a->len + 1);
            t->text_len[a->id] = (uint32_t)a->len;
        }
        t->added_first[a->normalized][(unsigned char)a->content[0]] = true;
    }
    return LD_OK;
}

ld_status ld_tokenizer_load_text(const char *text, size_t len, const char *label,
                                 ld_tokenizer **out, ld_error *err)
{
    *out = NULL;
    if (len > LD_TOK_MAX_FILE)
        return ld_error_set(err, LD_E_INPUT, "%s: %zu bytes, more than the %u a tokenizer.json "
                            "may have", label, len, LD_TOK_MAX_FILE);
    ld_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
    parsed p = {0};
    ld_jp j;
    ld_jp_init(&j, text, len, label, err);
    ld_status st = parse_top(&j, &p, t);
    if (st == LD_OK) st = build(&p, t, label, err);
    parsed_free(&p);
    if (st != LD_OK) {
        ld_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LD_OK;
}

ld_status ld_tokenizer_load(const char *path, ld_tokenizer **out, ld_error *err)
{
    char *buf;
    size_t len;
    *out = NULL;
    ld_status st = ld_read_file(path, LD_TOK_MAX_FILE, &buf, &len, err);
    if (st != LD_OK) return st;
    st = ld_tokenizer_load_text(buf, len, path, out, err);
    free(buf);
    return st;
}

void ld_tokenizer_free(ld_tokenizer *t)
{
    if (!t) return;
    if (t->text)
        for (int32_t i = 0; i < t->id_end; i++)
            free(t->text[i]);
    free(t->text);
    free(t->text_len);
    free(t->special);
    free(t->vocab.slot);
    free(t->merges);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    for (size_t i = 0; i < t->n_split; i++)
        onig_free(t->split[i]);
    free(t);
}

int32_t ld_tokenizer_id_end(const ld_tokenizer *t)
{
    return t->id_end;
}

bool ld_tokenizer_is_special(const ld_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->id_end && t->special[id];
}

/* tok_internal.h — the loaded tokenizer's tables, shared by tok_load.c (which builds them) and
 * tok_encode.c (which reads them). Not public. */
#ifndef LD_TOK_INTERNAL_H
#define LD_TOK_INTERNAL_H

#include <oniguruma.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerdiff/tokenizer.h"

/* Token text -> id: open addressing, keys point into the tokenizer's token strings. */
typedef struct tok_strmap {
    int32_t *slot; /* id, or -1 when empty */
    size_t mask;   /* capacity - 1 (a power of two) */
} tok_strmap;

/* (left id, right id) -> merge rank and merged id: open addressing on the packed pair. */
typedef struct tok_merge {
    uint64_t pair; /* left << 32 | right; UINT64_MAX when the slot is empty */
    int32_t rank;
    int32_t id;
} tok_merge;

typedef struct tok_added {
    char *content; /* as matched: NFC-normalized when normalized and the normalizer is NFC */
    size_t len;
    int32_t id;
    bool special, lstrip, rstrip, normalized;
} tok_added;

struct ld_tokenizer {
    char **text;        /* [id_end]: each id's token text as in the file (NULL for a hole) */
    uint32_t *text_len; /* [id_end] */
    int32_t id_end;
    tok_strmap vocab;   /* the BPE model's vocabulary (added tokens are not in it) */
    int32_t byte_id[256];      /* the id of each byte's byte-level character */
    tok_merge *merges;         /* [merge_mask + 1] */
    size_t merge_mask;
    tok_added *added;
    size_t n_added;
    bool added_first[2][256];  /* [normalized][byte]: some added token starts with that byte */
    bool *special;             /* [id_end] */
    bool nfc;
    bool ignore_merges;
    OnigRegex split[LD_TOK_MAX_SPLITS];
    size_t n_split;
};

uint64_t tok_hash(const char *s, size_t n);
/* The id of s[0..n) in the vocabulary, -1 when absent. */
int32_t tok_vocab_find(const ld_tokenizer *t, const char *s, size_t n);
/* The merge of (left, right), NULL when none. */
const tok_merge *tok_merge_find(const ld_tokenizer *t, int32_t left, int32_t right);
/* NFC of the valid UTF-8 s[0..n) as HF tokenizers computes it (tok_unicode.c): *out is the caller's
 * to free, NUL-terminated. LD_E_NOMEM when memory runs out. */
ld_status tok_nfc(const char *s, size_t n, char **out, size_t *out_len);
/* Oniguruma's UTF-8 encoding initialized, once per process (any thread). */
void tok_onig_init(void);

#endif

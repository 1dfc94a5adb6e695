/* gen_tokenizer.c — gen-model's tokenizer.json: byte-level BPE with Qwen2's normalizer, split regex
 * and special tokens, its merges learned (deterministically) from a short fixed text, all ids below
 * the preset's vocab_size, so text prompts work on a synthetic checkpoint. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "gen.h"
#include "json_lex.h"
#include "json_out.h"
#include "util.h"

/* Qwen2's split pattern, as its tokenizer.json writes it. */
static const char QWEN2_SPLIT[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const char *const SPECIALS[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

/* What the merges are learned from: English about the tool, a chat turn and some code. */
static const char TRAIN[] =
    "The quick brown fox jumps over the lazy dog. The model finds where an optimized "
    "implementation of the transformer first goes wrong: the layer, the operation, the head and "
    "the token. Hello world! Hello there, how are you today? I am fine, thank you for asking. "
    "We compare the reference with the candidate at every layer of the network, and the report "
    "names the first divergence with its relative error and cosine similarity. "
    "What is the capital of France? The capital of France is Paris. "
    "Write a story about a robot that learns to paint the sunset over the sea. "
    "system user assistant You are a helpful assistant. Please answer the question. "
    "def forward(self, hidden_states): return self.norm(hidden_states + self.attention(x)) "
    "for (int i = 0; i < n; i++) { sum += weight[i] * input[i]; } return sum; ";

typedef struct sym_word {
    int32_t *s; /* token ids */
    size_t n;
} sym_word;

typedef struct pair_count {
    int32_t a, b;
    size_t count;
} pair_count;

static int cmp_pair(const void *x, const void *y)
{
    const pair_count *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return p->b < q->b ? -1 : p->b > q->b;
}

ld_status ld_gen_tokenizer_json(int vocab_size, char **out, size_t *out_len, ld_error *err)
{
    *out = NULL;
    size_t n_special = LD_ARRAY_LEN(SPECIALS);
    if (vocab_size < 256 + (int)n_special)
        return ld_error_set(err, LD_E_USAGE, "vocab_size %d is below the %zu a byte-level "
                            "tokenizer needs", vocab_size, 256 + n_special);
    size_t max_merges = (size_t)vocab_size - 256 - n_special;
    /* The tokens: 256 bytes, then one per merge (bytes, not yet mapped). */
    size_t cap_tok = 256 + LD_MIN(max_merges, sizeof TRAIN);
    char **tok = calloc(cap_tok, sizeof *tok);
    size_t *tok_len = calloc(cap_tok, sizeof *tok_len);
    int32_t (*merge)[2] = calloc(cap_tok, sizeof *merge);
    sym_word *words = calloc(sizeof TRAIN, sizeof *words);
    int32_t *syms = malloc(sizeof TRAIN * sizeof *syms);
    pair_count *pairs = malloc(sizeof TRAIN * sizeof *pairs);
    ld_status st = LD_OK;
    if (!tok || !tok_len || !merge || !words || !syms || !pairs) {
        st = ld_error_set(err, LD_E_NOMEM, "out of memory");
        goto done;
    }
    size_t n_tok = 0;
    for (; n_tok < 256; n_tok++) {
        /* ids in the byte-level alphabet's order, as GPT-2 and Qwen number them: the bytes
         * that print first, then the others */
        tok[n_tok] = malloc(1);
        if (!tok[n_tok]) {
            st = ld_error_set(err, LD_E_NOMEM, "out of memory");
            goto done;
        }
        tok_len[n_tok] = 1;
    }
    {
        size_t k = 0;
        for (unsigned pass = 0; pass < 2; pass++)
            for (unsigned b = 0; b < 256; b++)
                if ((ld_byte_level_cp(b) == b) == (pass == 0)) tok[k++][0] = (char)b;
    }
    int32_t byte_id[256];
    for (int32_t i = 0; i < 256; i++)
        byte_id[(unsigned char)tok[i][0]] = i;
    /* Words: a space or newline starts one, as the split regex mostly does. */
    size_t n_words = 0, n_syms = 0, len = sizeof TRAIN - 1;
    for (size_t i = 0; i < len;) {
        size_t j = i + 1;
        while (j < len && TRAIN[j] != ' ' && TRAIN[j] != '\n')
            j++;
        words[n_words] = (sym_word){syms + n_syms, j - i};
        for (size_t k = i; k < j; k++)
            syms[n_syms++] = byte_id[(unsigned char)TRAIN[k]];
        n_words++;
        i = j;
    }
    size_t n_merges = 0;
    while (n_merges < max_merges) {
        size_t np = 0;
        for (size_t w = 0; w < n_words; w++)
            for (size_t k = 0; k + 1 < words[w].n; k++)
                pairs[np++] = (pair_count){words[w].s[k], words[w].s[k + 1], 1};
        if (np == 0) break;
        qsort(pairs, np, sizeof *pairs, cmp_pair);
        pair_count best = {0, 0, 0};
        for (size_t i = 0, j; i < np; i = j) { /* most frequent; the first in id order on ties */
            for (j = i; j < np && pairs[j].a == pairs[i].a && pairs[j].b == pairs[i].b; j++)
                ;
            if (j - i > best.count) best = (pair_count){pairs[i].a, pairs[i].b, j - i};
        }
        int32_t id = (int32_t)n_tok;
        tok_len[id] = tok_len[best.a] + tok_len[best.b];
        tok[id] = malloc(tok_len[id]);
        if (!tok[id]) {
            st = ld_error_set(err, LD_E_NOMEM, "out of memory");
            goto done;
        }
        memcpy(tok[id], tok[best.a], tok_len[best.a]);
        memcpy(tok[id] + tok_len[best.a], tok[best.b], tok_len[best.b]);
        merge[n_merges][0] = best.a;
        merge[n_merges][1] = best.b;
        n_tok++;
        n_merges++;
        for (size_t w = 0; w < n_words; w++) { /* merge it everywhere, left to right */
            size_t o = 0;
            for (size_t k = 0; k < words[w].n; k++) {
                if (k + 1 < words[w].n && words[w].s[k] == best.a && words[w].s[k + 1] == best.b) {
                    words[w].s[o++] = id;
                    k++;
                } else {
                    words[w].s[o++] = words[w].s[k];
                }
            }
            words[w].n = o;
        }
    }
    /* The file, in the shape tokenizers writes (byte-level characters for the bytes). */
    ld_buf b = {0}, name = {0};
    ld_buf_puts(&b, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
                    "  \"added_tokens\": [\n");
    for (size_t i = 0; i < n_special; i++) {
        ld_buf_printf(&b, "    {\"id\": %zu, \"content\": ", n_tok + i);
        ld_json_put_string(&b, SPECIALS[i], strlen(SPECIALS[i]), false);
        ld_buf_printf(&b, ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, "
                          "\"normalized\": false, \"special\": true}%s\n",
                      i + 1 < n_special ? "," : "");
    }
    ld_buf_puts(&b, "  ],\n  \"normalizer\": {\"type\": \"NFC\"},\n  \"pre_tokenizer\": {\"type\": "
                    "\"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                    "{\"Regex\": ");
    ld_json_put_string(&b, QWEN2_SPLIT, sizeof QWEN2_SPLIT - 1, false);
    ld_buf_puts(&b, "}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
                    "\"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false}"
                    "]},\n  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": "
                    "false, \"trim_offsets\": false, \"use_regex\": false},\n  \"decoder\": "
                    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": "
                    "false, \"use_regex\": false},\n  \"model\": {\"type\": \"BPE\", \"dropout\": "
                    "null, \"unk_token\": null, \"continuing_subword_prefix\": \"\", "
                    "\"end_of_word_suffix\": \"\", \"fuse_unk\": false, \"byte_fallback\": false, "
                    "\"ignore_merges\": false,\n    \"vocab\": {\n");
    for (size_t i = 0; i < n_tok; i++) {
        name.len = 0;
        for (size_t k = 0; k < tok_len[i]; k++) {
            char u[4];
            ld_buf_append(&name, u,
                          ld_json_utf8_encode(ld_byte_level_cp((unsigned char)tok[i][k]), u));
        }
        ld_buf_puts(&b, "      ");
        ld_json_put_string(&b, name.p, name.len, false);
        ld_buf_printf(&b, ": %zu%s\n", i, i + 1 < n_tok ? "," : "");
    }
    ld_buf_puts(&b, "    },\n    \"merges\": [\n");
    for (size_t m = 0; m < n_merges; m++) {
        ld_buf_puts(&b, "      [");
        for (int side = 0; side < 2; side++) {
            int32_t id = merge[m][side];
            name.len = 0;
            for (size_t k = 0; k < tok_len[id]; k++) {
                char u[4];
                ld_buf_append(&name, u,
                              ld_json_utf8_encode(ld_byte_level_cp((unsigned char)tok[id][k]), u));
            }
            ld_json_put_string(&b, name.p, name.len, false);
            if (!side) ld_buf_puts(&b, ", ");
        }
        ld_buf_printf(&b, "]%s\n", m + 1 < n_merges ? "," : "");
    }
    ld_buf_puts(&b, "    ]\n  }\n}\n");
    bool failed = ld_buf_failed(&b) || ld_buf_failed(&name);
    ld_buf_free(&name);
    if (failed) {
        ld_buf_free(&b);
        st = ld_error_set(err, LD_E_NOMEM, "out of memory");
        goto done;
    }
    *out_len = b.len;
    *out = ld_buf_take(&b);
    if (!*out) st = ld_error_set(err, LD_E_NOMEM, "out of memory");
done:
    if (tok)
        for (size_t i = 0; i < cap_tok; i++)
            free(tok[i]);
    free(tok);
    free(tok_len);
    free(merge);
    free(words);
    free(syms);
    free(pairs);
    return st;
}

/* layerdiff/tokenizer.h — a checkpoint's own tokenizer (tokenizer.json, byte-level BPE as Qwen2 and
 * Qwen3 ship it), encoding text to ids exactly as Hugging Face tokenizers does, and decoding ids
 * to bytes and to text safe to show a person. docs/tokenizer.md says what is supported.
 *
 * Encoding, in HF's order: added tokens (special or not) are split out first, on the raw text for
 * those with "normalized": false; the rest is NFC-normalized (when the file's normalizer says so)
 * and split on the normalized added tokens; each remaining piece is split by the pre-tokenizer's
 * regexes (Oniguruma, HF's own engine, with the pattern read from the file), mapped byte by byte
 * to the GPT-2 byte-level alphabet and merged by BPE merge rank.
 *
 * Encoding does not change a loaded tokenizer: each call keeps its working state (word cache, merge
 * heap) to itself. Like every layerdiff library, nothing here prints or exits. */
#ifndef LAYERDIFF_TOKENIZER_H
#define LAYERDIFF_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerdiff/error.h"

/* Bounds on what a tokenizer.json may hold (hostile input): Qwen's file is 11 MB with 151,643
 * tokens, 151,387 merges and 26 added tokens. */
#define LD_TOK_MAX_FILE    (64u << 20) /* bytes of tokenizer.json */
#define LD_TOK_MAX_IDS     (1u << 22)  /* ids below this; vocabulary and merges at most this many */
#define LD_TOK_MAX_TOKEN   1024        /* bytes of one token's text */
#define LD_TOK_MAX_ADDED   65536       /* added tokens */
#define LD_TOK_MAX_SPLITS  8           /* Split steps in the pre-tokenizer */
#define LD_TOK_MAX_PATTERN 4096        /* bytes of one split regex */
#define LD_TOK_MAX_TEXT    (64u << 20) /* bytes of text one encode call takes */

typedef struct ld_tokenizer ld_tokenizer;

/* Loads path (a tokenizer.json). Refuses, with the file's name and what is wrong: a file over
 * LD_TOK_MAX_FILE, invalid JSON, a model other than BPE ("model type WordPiece is not supported"),
 * a normalizer other than NFC or none, a pre-tokenizer other than Split(regex, Isolated) steps and
 * a ByteLevel without its own regex, BPE options that change the algorithm (dropout, unk handling
 * with a missing byte, subword prefixes, byte fallback), a merge that names a token the vocabulary
 * lacks, duplicate tokens or ids, and anything over the bounds above. */
ld_status ld_tokenizer_load(const char *path, ld_tokenizer **out, ld_error *err);
/* The same from text already in memory; label names it in messages. */
ld_status ld_tokenizer_load_text(const char *text, size_t len, const char *label,
                                 ld_tokenizer **out, ld_error *err);
void ld_tokenizer_free(ld_tokenizer *t);

/* One more than the largest id (vocabulary and added tokens). */
int32_t ld_tokenizer_id_end(const ld_tokenizer *t);

/* text[0..len) to ids (*ids malloc'd, *n of them; the caller frees). LD_E_INPUT naming the byte
 * offset for invalid UTF-8; LD_E_INPUT for text over LD_TOK_MAX_TEXT. */
ld_status ld_tokenizer_encode(const ld_tokenizer *t, const char *text, size_t len, int32_t **ids,
                              size_t *n, ld_error *err);

/* The bytes ids stand for, concatenated (HF's ByteLevel decoder, special tokens included): *out
 * malloc'd and NUL-terminated, *len bytes without the NUL. Not necessarily valid UTF-8 (a token
 * may end inside a character). LD_E_INPUT for an id the tokenizer does not have. */
ld_status ld_tokenizer_decode(const ld_tokenizer *t, const int32_t *ids, size_t n, char **out,
                              size_t *len, ld_error *err);

/* The first code point of the UTF-8 text[0..len) that Unicode 14 had not assigned (but for the
 * noncharacters), -1 when there is none. This library's regex engine (Debian 12's Oniguruma)
 * classes code points by Unicode 14, HF tokenizers' by Unicode 16: one assigned since may be a
 * letter or a digit there, so that HF splits the text elsewhere and gives other ids. */
int32_t ld_tokenizer_unclassed(const char *text, size_t len);

/* Whether id is an added token marked special (<|im_start|>, ...). */
bool ld_tokenizer_is_special(const ld_tokenizer *t, int32_t id);

/* Text for people: s[0..n) as printable UTF-8 on one line. Backslash becomes "\\", newline,
 * carriage return and tab "\n", "\r", "\t", other control and format characters, line and
 * paragraph separators, surrogates, private-use and unassigned code points "\u{XXXX}" (so that no
 * bidi override or escape sequence reaches a terminal), and each byte of invalid UTF-8 "\xNN".
 * Writes at most size-1 bytes and a NUL to out (cut at a character boundary, "..." at the end when
 * cut); returns the length written. Markdown and HTML writers escape the result further. */
size_t ld_token_text_escape(const char *s, size_t n, char *out, size_t size);

/* One token for people: its decoded text escaped as above, in double quotes ("Hello", " world",
 * "\n"); "?" when the tokenizer has no such id. Writes at most size bytes with the NUL. */
void ld_tokenizer_label(const ld_tokenizer *t, int32_t id, char *out, size_t size);

#endif

/* prompt.h — text prompts and token text through the checkpoint's own tokenizer.json: the
 * tokenizer of a checkpoint directory, a prompt's ids, and ids named by their text for people.
 * The tokenizer itself is tokenizer/ (layerdiff/tokenizer.h). */
#ifndef LD_PIPELINE_PROMPT_H
#define LD_PIPELINE_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerdiff/error.h"
#include "layerdiff/tokenizer.h"

/* DIR/tokenizer.json loaded into *out; when the directory has none, *out is NULL and the call
 * succeeds (need: then LD_E_USAGE saying that option needs one, e.g. "--prompt"). */
ld_status ld_prompt_tokenizer(const char *dir, const char *need, ld_tokenizer **out,
                              ld_error *err);

/* text[0..len) to the prompt's ids (at least one; LD_E_USAGE naming option when the text gives
 * none, LD_E_INPUT for invalid UTF-8 naming the byte offset). */
ld_status ld_prompt_encode(const ld_tokenizer *t, const char *option, const char *text,
                           size_t len, int32_t **ids, size_t *n, ld_error *err);

/* The prompt of a command, given by exactly one of ids (comma-separated token ids, option
 * --tokens), text (--prompt) or file (--prompt-file, UTF-8 text of at most LD_TOK_MAX_TEXT bytes):
 * *ids (malloc'd, at least one) and *n. For text or file, *text (malloc'd, *text_len bytes) holds
 * the text and *tok the checkpoint's tokenizer that encoded it; for ids both stay NULL. Errors name
 * the option (LD_E_USAGE when none or several are given). */
ld_status ld_prompt_read(const char *model_dir, const char *ids_arg, const char *text_arg,
                         const char *file, int32_t **ids, size_t *n, char **text, size_t *text_len,
                         ld_tokenizer **tok, ld_error *err);

#endif

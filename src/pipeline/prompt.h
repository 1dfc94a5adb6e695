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

#endif

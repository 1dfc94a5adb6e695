/* generate.c — the input checks every backend makes before a forward pass (generate.h). */
#include "generate.h"

ld_status ld_generate_check_inputs(const ld_config *c, const int32_t *prompt, size_t n_prompt,
                                   int decode_steps, const int32_t *follow, size_t n_follow,
                                   ld_error *err)
{
    if (n_prompt == 0)
        return ld_error_set(err, LD_E_USAGE, "the prompt is empty: give at least one token id");
    if (decode_steps < 0)
        return ld_error_set(err, LD_E_USAGE, "decode steps must be >= 0, not %d", decode_steps);
    size_t steps = (size_t)decode_steps;
    if (n_prompt > (size_t)c->max_position_embeddings ||
        steps > (size_t)c->max_position_embeddings - n_prompt)
        return ld_error_set(err, LD_E_USAGE,
                            "prompt of %zu tokens plus %d decode steps is longer than the model's "
                            "max_position_embeddings (%d)",
                            n_prompt, decode_steps, c->max_position_embeddings);
    if (follow && n_follow < steps)
        return ld_error_set(err, LD_E_USAGE,
                            "the followed stream decodes %zu tokens, fewer than the %d steps asked",
                            n_follow, decode_steps);
    size_t n_ids = n_prompt + (follow ? steps : 0);
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = i < n_prompt ? prompt[i] : follow[i - n_prompt];
        if (id < 0 || id >= c->vocab_size)
            return ld_error_set(err, LD_E_USAGE,
                                "%s token at index %zu is %d, outside the vocabulary [0, %d)",
                                i < n_prompt ? "prompt" : "followed",
                                i < n_prompt ? i : i - n_prompt, (int)id, c->vocab_size);
    }
    return LD_OK;
}

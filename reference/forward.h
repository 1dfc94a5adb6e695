/* forward.h — the reference model loop: prefill (step 0) then greedy decode steps, emitting every
 * probe tag of docs/tags.md in execution order. Numerics: ops.h. Not here: the ops, the
 * command line, opening the probe sink (the caller owns it and writes header and end records). */
#ifndef LD_REF_FORWARD_H
#define LD_REF_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "generate.h"
#include "layerdiff/probes.h"
#include "model.h"

/* Runs the prompt through the model and decodes decode_steps more tokens. tokens_out[0..N] gets the
 * argmax of every step (step 0 = prefill; -1 when no logit is finite, after which only a run that
 * follows another stream can go on); decoded_out[0..N−1] the token fed to steps 1..N.
 * Refuses (LD_E_USAGE) empty prompts, token ids outside the vocabulary, and runs longer than
 * max_position_embeddings. A failing probe write stops the run with that error. */
ld_status ld_ref_generate(const ld_model *m, const int32_t *prompt, size_t n_prompt,
                          int decode_steps, const ld_forward_options *opt, int32_t *tokens_out,
                          int32_t *decoded_out, ld_error *err);

/* The "backend" object of a probe header for this configuration (malloc'd compact JSON). */
char *ld_ref_backend_json(const ld_forward_options *opt);

#endif

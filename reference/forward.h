/* forward.h — the reference model loop: prefill (step 0) then greedy decode steps, emitting every
 * probe tag of DESIGN.md section 3 in execution order. Numerics: ops.h. Not here: the ops, the
 * command line, opening the probe sink (the caller owns it and writes header and end records). */
#ifndef LD_REF_FORWARD_H
#define LD_REF_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "faults.h"
#include "layerdiff/probes.h"
#include "model.h"

typedef struct ld_ref_options {
    ld_sink *sink;              /* NULL: probes off */
    const ld_fault_set *faults; /* NULL: an honest run */
    ld_dtype emulate;           /* LD_F32: the reference; LD_BF16 / LD_F16: emulated kernels */
    uint32_t sr_seed;           /* emulated kernels: 0 round to nearest even, else stochastic
                                   rounding with this seed (a calibration variant) */
    const int32_t *follow;      /* if set, the tokens fed to decode steps 1..N (instead of argmax) */
    size_t n_follow;
    /* Called before each layer of each step; may be NULL. */
    void (*progress)(void *ctx, int step, int n_steps, int layer, int n_layers);
    void *progress_ctx;
} ld_ref_options;

/* Runs the prompt through the model and decodes decode_steps more tokens. tokens_out[0..N] gets the
 * argmax of every step (step 0 = prefill; -1 when no logit is finite, after which only a run that
 * follows another stream can go on); decoded_out[0..N−1] the token fed to steps 1..N.
 * Refuses (LD_E_USAGE) empty prompts, token ids outside the vocabulary, and runs longer than
 * max_position_embeddings. A failing probe write stops the run with that error. */
ld_status ld_ref_generate(const ld_model *m, const int32_t *prompt, size_t n_prompt,
                          int decode_steps, const ld_ref_options *opt, int32_t *tokens_out,
                          int32_t *decoded_out, ld_error *err);

/* The checks every backend makes before a run: a non-empty prompt, decode steps >= 0, prompt +
 * decode within max_position_embeddings, enough followed tokens, every id inside the vocabulary.
 * LD_E_USAGE with a message naming the offending value. */
ld_status ld_generate_check_inputs(const ld_config *c, const int32_t *prompt, size_t n_prompt,
                                   int decode_steps, const int32_t *follow, size_t n_follow,
                                   ld_error *err);

/* The "backend" object of a probe header for this configuration (malloc'd compact JSON). */
char *ld_ref_backend_json(const ld_ref_options *opt);

#endif

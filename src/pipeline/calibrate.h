/* calibrate.h — measuring the noise floor of an honest low-precision implementation on one model
 * and input (the algorithm of 'layerdiff calibrate'), as a library call with a progress callback.
 * Not here: the floor file's format and verdicts (compare/floor.h), the CLI (src/cli/). */
#ifndef LD_PIPELINE_CALIBRATE_H
#define LD_PIPELINE_CALIBRATE_H

#include <stddef.h>
#include <stdint.h>

#include "layerdiff/error.h"
#include "model.h"

typedef struct ld_calibrate_options {
    const ld_model *model;
    const int32_t *prompt;
    size_t n_prompt;
    int decode_steps;
    ld_dtype dtype;            /* LD_BF16 or LD_F16: the candidates' precision */
    int variants;              /* emulated variants, >= 1: nearest even, then stochastic seeds */
    const char *output_path;   /* the floor file (schemas/floor.schema.json) */
    /* Called before each run: variant 0 is the fp32 reference (name NULL), then 1..variants. */
    void (*progress)(void *ctx, int variant, int n_variants, const char *name);
    void *progress_ctx;
} ld_calibrate_options;

/* Runs the fp32 reference, then each emulated variant following the reference's decoded tokens;
 * compares and replays each against the reference and keeps, per probe key, the largest error and
 * the largest op-local error. Writes the floor to output_path; *n_keys gets its key count. The
 * streams go to a temporary directory under /tmp, removed before returning. */
ld_status ld_calibrate(const ld_calibrate_options *o, size_t *n_keys, ld_error *err);

#endif

/* generate.h — what every backend's forward pass is given (ld_forward_options) and the input
 * checks each makes before a run. The passes themselves: reference/forward.h (ld_ref_generate) and
 * cuda/cuda_backend.h (ld_cuda_generate); choosing between them: src/pipeline/run.h. */
#ifndef LD_GENERATE_H
#define LD_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "faults.h"
#include "layerdiff/error.h"
#include "layerdiff/probes.h"

typedef struct ld_forward_options {
    ld_sink *sink;              /* NULL: probes off */
    ld_feed *feed;              /* teacher forcing: after the probe of a key it wants
                                   (ld_feed_wants), the tensor is replaced by the feed's, rounded
                                   to the run's storage dtype; NULL: none */
    const ld_fault_set *faults; /* NULL: an honest run */
    ld_dtype emulate;           /* LD_F32: the reference; LD_BF16 / LD_F16: emulated kernels
                                   (the reference's loop only; the CUDA path needs LD_F32) */
    uint32_t sr_seed;           /* emulated kernels: 0 round to nearest even, else stochastic
                                   rounding with this seed (a calibration variant) */
    const int32_t *follow; /* if set, the tokens fed to decode steps 1..N (instead of argmax) */
    size_t n_follow;
    /* Called before each layer of each step; may be NULL. */
    void (*progress)(void *ctx, int step, int n_steps, int layer, int n_layers);
    void *progress_ctx;
    /* Called with a sentence about how the run went that is not an error (a speed-up the device
       refused, the results unchanged); may be NULL. */
    void (*notice)(void *ctx, const char *text);
    void *notice_ctx;
} ld_forward_options;

/* The checks every backend makes before a run: a non-empty prompt, decode steps >= 0, prompt +
 * decode within max_position_embeddings, enough followed tokens, every id inside the vocabulary.
 * LD_E_USAGE with a message naming the offending value. */
ld_status ld_generate_check_inputs(const ld_config *c, const int32_t *prompt, size_t n_prompt,
                                   int decode_steps, const int32_t *follow, size_t n_follow,
                                   ld_error *err);

#endif

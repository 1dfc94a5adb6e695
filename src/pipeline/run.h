/* run.h — one run of the model into a probe stream: the backend table (reference; CUDA when built
 * with it) and one call that opens the sink, writes the header, generates and closes with the end
 * record. Not here: the forward passes (reference/, cuda/), options and messages (src/cli/). */
#ifndef LD_PIPELINE_RUN_H
#define LD_PIPELINE_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "faults.h"
#include "layerdiff/error.h"
#include "layerdiff/probes.h"
#include "model.h"

/* ---- backends -------------------------------------------------------------------------------- */

typedef struct ld_backend ld_backend;

/* The backend called name ("ref", "cuda"), or NULL when there is none of that name. A build
 * without CUDA still knows "cuda", so that ld_backend_check can say why it cannot run. */
const ld_backend *ld_backend_find(const char *name);
/* LD_OK when b can run here; else why not: LD_E_USAGE in a build without CUDA, the device check's
 * error (LD_E_NODEVICE) on a machine without a GPU. Reads no file, so callers check first. */
ld_status ld_backend_check(const ld_backend *b, ld_error *err);

/* ---- one run --------------------------------------------------------------------------------- */

typedef void (*ld_run_progress_fn)(void *ctx, int step, int n_steps, int layer, int n_layers);

typedef struct ld_run_options {
    const ld_backend *backend;     /* NULL: the reference */
    const ld_model *model;         /* the opened checkpoint; outlives the call */
    const int32_t *prompt;         /* token ids, at least one */
    size_t n_prompt;
    const char *prompt_text;       /* the text prompt was encoded from (the header's input.text);
                                      NULL: the ids were given as ids */
    size_t prompt_text_len;
    int decode_steps;              /* greedy steps after the prefill */
    const int32_t *follow;         /* the tokens fed to decode steps 1..N instead of the argmax */
    size_t n_follow;
    const ld_fault_set *faults;    /* NULL: an honest run; their texts go into the header */
    ld_dtype emulate;              /* reference only: LD_F32, or an emulated LD_BF16 / LD_F16 */
    uint32_t sr_seed;              /* with emulate: 0 round to nearest even, else stochastic */
    const char *implementation;    /* the header's name; NULL: "reference", "reference-emulated"
                                      or "cuda", from the backend and emulate */
    /* Where probes go: probes_path with sink_config (NULL: defaults); without a path,
     * LAYERDIFF_PROBES when probes_from_env (with sink_config; NULL: the LAYERDIFF_PROBE_*
     * variables), else nowhere (probes off). */
    const char *probes_path;
    const ld_sink_config *sink_config;
    bool probes_from_env;
    const char *const *inputs;     /* files the stream must not overwrite besides the checkpoint's
                                      (the followed stream); n_inputs of them */
    size_t n_inputs;
    /* When set, holds the open sink while the backend generates, NULL before and after: what a
     * fatal-signal handler of the caller's ends with ld_sink_emergency_end (a SIGBUS from a
     * checkpoint truncated under the run; the library itself installs no handler). */
    ld_sink *volatile *live_sink;
    /* Teacher forcing: the reference stream (payload full) whose tensors replace ours after each
     * wanted key is probed, and the filters choosing the keys (NULL: all). Its model fingerprint
     * and prompt must be ours (LD_E_INPUT otherwise); NULL feed_path: no feeding. */
    const char *feed_path;
    const char *feed_tags, *feed_layers, *feed_steps;
    ld_run_progress_fn progress;   /* before each layer of each step; may be NULL */
    void *progress_ctx;
    void (*notice)(void *ctx, const char *text); /* a remark on the run that is no error (the
                                      backend's, ld_forward_options); may be NULL */
    void *notice_ctx;
} ld_run_options;

/* Zeroes o: the reference, fp32, no probes, no faults. */
void ld_run_options_init(ld_run_options *o);

/* What a successful run made: the end record's tokens, and how many probes it holds. */
typedef struct ld_run_result {
    const char *implementation;  /* the header's name (static or the options' string) */
    int32_t *tokens;             /* the argmax of steps 0..N (N + 1 ids; -1: no finite logit) */
    int32_t *decoded;            /* the tokens fed to steps 1..N (N ids) */
    size_t n_decoded;            /* N, the decode steps */
    uint64_t n_probes;
} ld_run_result;

/* Opens the sink (header: backend, model, prompt, faults), generates on the backend and closes the
 * stream with its end record. On a failure once the sink is open, the stream still ends, with an
 * error end record carrying err's message and naming the last key written. A run whose checkpoint
 * shard was truncated or rewritten in place meanwhile fails so (ld_model_check_unchanged,
 * LD_E_INPUT), whatever it computed. *out is filled only on success; free it with
 * ld_run_result_free. */
ld_status ld_run(const ld_run_options *o, ld_run_result *out, ld_error *err);
void ld_run_result_free(ld_run_result *r);

/* The decoded tokens of a reference stream, for a run that follows it (malloc'd into *out, *n_out
 * of them). Its prompt must be ours (LD_E_USAGE otherwise, the message naming option and path). A
 * stream from an older producer without "decoded" gives its argmax tokens, which fed its steps. */
ld_status ld_run_read_follow(const char *option, const char *path, const int32_t *prompt,
                             size_t n_prompt, int32_t **out, size_t *n_out, ld_error *err);

#endif

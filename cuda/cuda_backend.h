/* cuda_backend.h — the C interface of the optimized CUDA path (cuda/): a bf16 Qwen3 forward
 * pass on one GPU (cuBLAS matmuls, our own kernels for everything else), probed on the device and
 * emitting the same tags, in the same order, as the reference (reference/forward.h, its twin).
 * Numerics: weights and activations bf16 — the residual stream included — with every dot product,
 * norm and softmax accumulated in fp32; cuBLAS with CUBLAS_COMPUTE_32F, no TF32. Callable from C;
 * the kernels are CUDA C++ behind it. Not here: the kernels' launchers (one .cuh per kernel). */
#ifndef LD_CUDA_BACKEND_H
#define LD_CUDA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerdiff/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "generate.h"
#include "layerdiff/probes.h"
#include "model.h"

/* ---- the device ------------------------------------------------------------------------------ */

/* LD_OK with a one-line description of device 0, or LD_E_NODEVICE saying why there is none. */
ld_status ld_cuda_device_check(char *desc, size_t desc_size, ld_error *err);

/* Device 0 and the software stack, for headers and benchmarks. */
typedef struct ld_cuda_device_info {
    char name[256];
    int sm_major, sm_minor;
    double mem_gib;
    int driver, runtime;            /* CUDA versions as 1000·major + 10·minor */
    int cublas_major, cublas_minor, cublas_patch;
} ld_cuda_device_info;

ld_status ld_cuda_device_info_get(ld_cuda_device_info *out, ld_error *err);

/* The "backend" object of a probe header for a CUDA run of m (malloc'd compact JSON): device,
 * versions, compute and accumulation dtypes, the residual stream's dtype, whether the checkpoint's
 * weights were rounded to bf16 (f32 or f16 checkpoints), TF32 off. NULL with err set on failure. */
char *ld_cuda_backend_json(const ld_model *m, ld_error *err);

/* ---- running the model ----------------------------------------------------------------------- */

/* One-shot, the twin of ld_ref_generate: prefill, then decode_steps greedy steps; tokens_out[0..N]
 * gets each step's argmax (-1 when no logit is finite: the step's probes are written, and only a
 * run that follows another stream goes on), decoded_out[0..N−1] the token fed to steps 1..N.
 * opt->emulate must be LD_F32 (the CUDA path has its own, real, bf16 numerics). Decode steps run
 * as one CUDA graph when opt->sink is NULL, unless the environment says LAYERDIFF_CUDA_GRAPH=0.
 * Errors: LD_E_USAGE for bad inputs (as the reference), LD_E_NODEVICE, LD_E_DEVICE naming file,
 * line and call (after a sticky device error as well: the caller closes its sink with an error end
 * record, which names the last probe written). */
ld_status ld_cuda_generate(const ld_model *m, const int32_t *prompt, size_t n_prompt,
                           int decode_steps, const ld_forward_options *opt, int32_t *tokens_out,
                           int32_t *decoded_out, ld_error *err);

/* A session keeps the device, the cuBLAS handle and the uploaded weights across runs (benchmarks,
 * tests). The loader faults (swap_gate_up, o_proj_weight_shift) change the uploaded weights, so the
 * fault set belongs to the session; faults may be NULL. m must outlive the session. */
typedef struct ld_cuda_session ld_cuda_session;

ld_status ld_cuda_session_create(ld_cuda_session **out, const ld_model *m,
                                 const ld_fault_set *faults, ld_error *err);
void ld_cuda_session_destroy(ld_cuda_session *s);

/* The phase of a run that the profiler's range holds (ld_cuda_run_options.profile). */
typedef enum ld_cuda_profile_phase {
    LD_CUDA_PROFILE_NONE = 0, /* no range: the profiler's own setting holds throughout */
    LD_CUDA_PROFILE_PREFILL,  /* step 0 */
    LD_CUDA_PROFILE_DECODE    /* steps 1..N */
} ld_cuda_profile_phase;

typedef struct ld_cuda_run_options {
    ld_sink *sink;          /* NULL: probes off (nothing copied back, no synchronization) */
    ld_feed *feed;          /* teacher forcing: wanted keys are replaced by the feed's tensor
                               after their probe (not q_norm/k_norm: fused with RoPE); NULL none */
    const int32_t *follow;  /* if set, the tokens fed to decode steps 1..N instead of the argmax */
    size_t n_follow;
    bool no_graph;          /* true: decode steps on the stream even when probes are off */
    bool no_fuse_norm;      /* true: every residual add + RMSNorm in its own kernel, also in
                               one-token steps (where the GEMV after it does it by default) */
    bool no_tiled_attn;     /* true: prefill attention one block per query, not 16 queries of a
                               head per block (the same bits, slower) */
    bool no_pdl;            /* true: every kernel waits for the one before it to finish before
                               it starts (no programmatic dependent launch; the same bits) */
    /* cudaProfilerStart just before the phase's first launch, cudaProfilerStop after its last
       (the device then idle), so that a profiler started with profiling off (`ncu
       --profile-from-start off`) sees that phase's kernels and no other; NONE: neither call */
    ld_cuda_profile_phase profile;
    /* Called before each layer of each step (once per step for graph replays); may be NULL. */
    void (*progress)(void *ctx, int step, int n_steps, int layer, int n_layers);
    void *progress_ctx;
    /* Called once if the decode steps' graph had to be captured without programmatic launches
       (ld_cuda_timing.pdl); may be NULL. */
    void (*notice)(void *ctx, const char *text);
    void *notice_ctx;
} ld_cuda_run_options;

/* Wall-clock seconds of the two phases, each ending with the device idle. */
typedef struct ld_cuda_timing {
    double prefill_s;
    double decode_s;
    bool graph;             /* the decode steps were replayed from a CUDA graph */
    bool pdl;               /* the last kernels were launched programmatically (false: a device
                               below sm_90, no_pdl, or a driver that refused them in the graph,
                               which was then captured without them) */
} ld_cuda_timing;

/* As ld_cuda_generate, on a session; opt and timing may be NULL. */
ld_status ld_cuda_session_generate(ld_cuda_session *s, const int32_t *prompt, size_t n_prompt,
                                   int decode_steps, const ld_cuda_run_options *opt,
                                   int32_t *tokens_out, int32_t *decoded_out,
                                   ld_cuda_timing *timing, ld_error *err);

#ifdef __cplusplus
}
#endif
#endif

/* ops.h — the fp32 CPU reference ops, one readable function per op of the Qwen3 forward pass
 * (docs/tags.md). Activations are fp32 row-major; weights are read in their stored dtype
 * and widened exactly. Reductions (dot products, norms, softmax) accumulate in double unless the
 * numerics say fp32 (emulated low-precision kernels). Every op is deterministic and its result does
 * not depend on the thread count. The same functions serve the forward pass and the comparator's
 * op replay. Fault variants (docs/faults.md) are explicit parameters, written the way the
 * buggy kernel would be written. Not here: the model loop (forward.h). */
#ifndef LD_REF_OPS_H
#define LD_REF_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

/* How an op computes: the reference (double accumulation, weights exact) or an emulated correct
 * low-precision kernel (fp32 accumulation, weights rounded to round_to). */
typedef struct ld_numerics {
    bool acc_f32;      /* accumulate in fp32 instead of double */
    ld_dtype round_to; /* weights and stored activations rounded to this dtype (LD_F32: none) */
    uint32_t sr_seed;  /* 0: stored activations round to nearest even; otherwise they round
                          stochastically (unbiased, deterministic for this seed): the rounding
                          variants layerdiff calibrate samples the noise floor with */
} ld_numerics;

extern const ld_numerics ld_numerics_reference; /* {false, LD_F32, 0} */

/* A stored activation as the emulated kernel would store it: v rounded to nx->round_to (nearest
 * even, or stochastically with nx->sr_seed; idx decorrelates the random draws of one tensor). */
float ld_nx_store(const ld_numerics *nx, float v, size_t idx);

/* Ops smaller than this many multiply-adds run on one thread: waking a team costs more than the
 * work (and far more when another process holds the other cores). Results never depend on it. */
#define LD_REF_PARALLEL_MIN_WORK ((size_t)1 << 18)

/* Rounds n values in place to nx->round_to (no-op for LD_F32). */
void ld_ref_round(float *x, size_t n, const ld_numerics *nx);

/* out[T,H] = table[ids[t], :], widened (and rounded per nx). ids are checked by the caller. */
void ld_ref_embed(const ld_tensor *table, const int32_t *ids, size_t T, float *out,
                  const ld_numerics *nx);

/* y[T,N] = x[T,K] · W[N,K]ᵀ with W in its stored dtype. Each y[t,n] is one dot product whose
 * summation order depends only on K (never on T, threads or the CPU's vector width), so prefill and
 * decode give identical rows. LD_E_NOMEM when scratch cannot be allocated. */
ld_status ld_ref_matmul(const float *x, const ld_tensor *w, size_t T, float *y,
                        const ld_numerics *nx, ld_error *err);

/* The matmul's kernel path: the double-accumulating kernels for one instruction set (every path
 * gives the same bits). name: "auto" (the fastest this CPU runs), a path's name ("avx512", "avx2",
 * "generic" on x86-64), or NULL for the environment variable LD_REF_KERNEL (unset or empty: auto).
 * LD_E_USAGE for a name this build does not know, LD_E_UNSUPPORTED for a path this CPU cannot
 * run; the choice stays until the next call. */
ld_status ld_ref_kernel_select(const char *name, ld_error *err);

/* Selects from LD_REF_KERNEL unless a path is chosen already; ld_ref_matmul calls it first. */
ld_status ld_ref_kernel_ready(ld_error *err);

/* The chosen path's name (choosing from LD_REF_KERNEL first if none is); NULL when that fails. */
const char *ld_ref_kernel_path(void);

/* The paths of this build, best first: the i-th one's name and whether this CPU can run it
 * (NULL past the last). */
size_t ld_ref_kernel_count(void);
const char *ld_ref_kernel_name(size_t i, bool *usable);

/* RMSNorm of each row: out[r,:] = x[r,:] / sqrt(mean(x[r,:]²) + eps) * w[:].
 * mul_var (fault rmsnorm_mul_var): multiplies by mean(x²)+eps instead. */
void ld_ref_rmsnorm(const float *x, const ld_tensor *w, size_t rows, size_t n, double eps,
                    bool mul_var, float *out, const ld_numerics *nx);

/* Per-head RMSNorm over the last axis: x[T*heads, D] with w[D]. block > 0 (fault qk_norm_block)
 * takes the RMS over block-element chunks of each head instead of the whole head; skip (fault
 * qk_norm_skip) copies x unchanged. */
void ld_ref_head_rmsnorm(const float *x, const ld_tensor *w, size_t rows, size_t D, double eps,
                         int block, bool skip, float *out, const ld_numerics *nx);

/* RoPE, rotate_half convention: for row r of x[T, heads, D] at position pos0 + t,
 * out[i] = x[i]·cos − x[i+D/2]·sin, out[i+D/2] = x[i+D/2]·cos + x[i]·sin, angle = pos·theta^(−2i/D).
 * interleaved (fault rope_interleaved) rotates pairs (2i, 2i+1) instead. */
ld_status ld_ref_rope(const float *x, size_t T, size_t heads, size_t D, int64_t pos0, double theta,
                      bool interleaved, float *out, const ld_numerics *nx, ld_error *err);

/* How a query head finds its kv head. */
typedef enum ld_gqa_map {
    LD_GQA_DIV = 0, /* kv = j / (Hq/Hkv): Qwen3 */
    LD_GQA_MOD = 1  /* kv = j mod Hkv: fault gqa_modulo */
} ld_gqa_map;

/* Attention variants, all false/defaults for the correct op. */
typedef struct ld_attn_params {
    double scale;       /* 1/sqrt(D), or the fault attn_scale value */
    bool causal;        /* false: fault no_causal_mask */
    ld_gqa_map gqa;
    bool softmax_bf16;  /* fault softmax_bf16: exponentials and their sum kept in bf16 */
} ld_attn_params;

/* Causal grouped-query attention of T new queries over a KV cache.
 * q[T, Hq, D]; k_cache, v_cache [Hkv, cap, D] (slot s holds position s); the queries sit at
 * positions pos0..pos0+T−1 and may read slots 0..n_kv−1 with slot <= own position when causal.
 * out[T, Hq, D]. */
ld_status ld_ref_attention(const float *q, const float *k_cache, const float *v_cache, size_t cap,
                           size_t T, size_t Hq, size_t Hkv, size_t D, int64_t pos0, size_t n_kv,
                           const ld_attn_params *ap, float *out, const ld_numerics *nx,
                           ld_error *err);

/* out[i] = silu(g[i]) · u[i], silu(x) = x / (1 + e^−x). gelu (fault silu_as_gelu) uses
 * x·Φ(x) (erf form) instead of silu. */
void ld_ref_silu_mul(const float *g, const float *u, size_t n, bool gelu, float *out,
                     const ld_numerics *nx);

/* out[i] = a[i] + b[i]; skip_a (fault skip_attn_residual) writes b alone. out may alias a. */
void ld_ref_add(const float *a, const float *b, size_t n, bool skip_a, float *out,
                const ld_numerics *nx);

/* Index of the largest finite value of row x[n] (lowest index on ties); -1 if none is finite. */
int32_t ld_ref_argmax(const float *x, size_t n);

#endif

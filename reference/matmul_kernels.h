/* matmul_kernels.h — the inner kernels of the reference matmul (matmul.c drives them). Private to
 * reference/. The double-accumulating kernels live in matmul_f64.c (portable kernels and the
 * run-time choice of a kernel path) and matmul_f64_x86.c (AVX-512 and AVX2 intrinsics), the files
 * compiled with floating-point contraction allowed (see the proof in matmul_f64.c). */
#ifndef LD_REF_MATMUL_KERNELS_H
#define LD_REF_MATMUL_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

typedef double v8d __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));

enum {
    MR = 8,   /* weight rows per block: the rows of W a thread widens once and reuses over tokens */
    KC = 512, /* k per chunk: MR×KC widened weights stay in L1/L2 (multiple of 16) */
    TC = 128, /* tokens per chunk: TC×KC activations stay in L2 */
    TD = 4,   /* at most this many tokens take the direct path (weights widened in registers) */
    DG = 64   /* rows per call of a direct kernel (callers pass row groups of at most DG) */
};

/* The fixed lane tree every output ends with. */
static inline double ld_ref_lanes_sum_f64(v8d v)
{
    return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

/* One kernel path: the double-accumulating kernels for one instruction set. Every path puts k into
 * lane k mod 8 in ascending k, so all give the same bits. */
typedef struct ld_ref_kernels {
    const char *name;   /* as LD_REF_KERNEL spells it */
    bool (*usable)(void); /* whether this CPU can run it */
    /* acc[t*MR + r] += wb[r*KC + k] · x[t*K + k] for k < kl & ~7 (whole lane sets only; the
     * caller adds the tail), t < nt, r < MR; wb 64-byte aligned, acc too. */
    void (*kernel)(const double *wb, const double *x, size_t K, size_t kl, size_t nt, v8d *acc);
    /* acc[(n−n0)*8 + lane] = the lanes of W[n, 0..K&~7) · xd[0..K&~7) for n0 <= n < n1 (n1 − n0
     * <= DG), weights bf16 or f32 widened in registers; one token. */
    void (*direct)(const ld_tensor *w, size_t n0, size_t n1, const double *xd, double *acc);
    /* dst[0..n) = src[0..n) widened exactly, src of dtype dt (bf16, f16 or f32). */
    void (*widen)(const void *src, ld_dtype dt, size_t n, double *dst);
} ld_ref_kernels;

/* The portable kernels (GCC vector types; matmul_f64.c): other paths call them for leftovers. */
void ld_ref_direct_generic(const ld_tensor *w, size_t n0, size_t n1, const double *xd,
                           double *acc);
void ld_ref_widen_generic(const void *src, ld_dtype dt, size_t n, double *dst);

#if defined(__x86_64__)
extern const ld_ref_kernels ld_ref_kernels_avx512, ld_ref_kernels_avx2; /* matmul_f64_x86.c */
#endif
#if defined(__aarch64__)
extern const ld_ref_kernels ld_ref_kernels_neon; /* matmul_f64_arm.c */
#endif

/* acc[t*MR + r] += wb[r*KC + 0..kl) · x[t*K + 0..kl) for t < nt, in 8 double lanes (x already
 * widened to double), on the chosen path. */
void ld_ref_kernel_f64(const double *wb, const double *x, size_t K, size_t kl, size_t nt, v8d *acc);

/* dst[r*KC + 0..kl) = W[n0+r, k0..k0+kl) widened exactly, for r < MR (zeros past row N). */
void ld_ref_widen_f64(const ld_tensor *w, size_t n0, size_t N, size_t K, size_t k0, size_t kl,
                      double *dst);

/* Direct path for few tokens (T <= TD) and bf16 or f32 weights: rows [n0, n1) of y[T,N] from
 * xd[T,K] (x already widened to double), widening each weight vector in registers. Gives the same
 * bits as the blocked path: same lanes, same order. */
void ld_ref_kernel_f64_direct(const ld_tensor *w, size_t n0, size_t n1, const double *xd,
                              size_t T, float *y);

/* The chosen path (ld_ref_kernel_select in ops.h has succeeded before any of the above runs). */
const ld_ref_kernels *ld_ref_kernels_active(void);

#endif

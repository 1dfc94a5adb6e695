/* matmul_kernels.h — the inner kernels of the reference matmul (matmul.c drives them). Private to
 * reference/. The double-accumulating kernels live in matmul_f64.c, the one file compiled with
 * floating-point contraction allowed (see the proof there). */
#ifndef LD_REF_MATMUL_KERNELS_H
#define LD_REF_MATMUL_KERNELS_H

#include <stddef.h>

#include "safetensors.h"

typedef double v8d __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));

enum {
    MR = 8,   /* weight rows per block: the rows of W a thread widens once and reuses over tokens */
    KC = 512, /* k per chunk: MR×KC widened weights stay in L1/L2 (multiple of 16) */
    TC = 64,  /* tokens per chunk: TC×KC activations stay in L2 */
    TD = 4    /* at most this many tokens take the direct path (weights widened in registers) */
};

/* The fixed lane tree every output ends with. */
static inline double ld_ref_lanes_sum_f64(v8d v)
{
    return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

/* acc[t*MR + r] += wb[r*KC + 0..kl) · x[t*K + 0..kl) for t < nt, in 8 double lanes (x already
 * widened to double). */
void ld_ref_kernel_f64(const double *wb, const double *x, size_t K, size_t kl, size_t nt, v8d *acc);

/* dst[r*KC + 0..kl) = W[n0+r, k0..k0+kl) widened exactly, for r < MR (zeros past row N). */
void ld_ref_widen_f64(const ld_tensor *w, size_t n0, size_t N, size_t K, size_t k0, size_t kl,
                      double *dst);

/* Direct path for few tokens (T <= TD) and bf16 or f32 weights: rows [n0, n1) of y[T,N] from
 * xd[T,K] (x already widened to double), widening each weight vector in registers. Gives the same
 * bits as the blocked path: same lanes, same order. */
void ld_ref_kernel_f64_direct(const ld_tensor *w, size_t n0, size_t n1, const double *xd,
                              size_t T, float *y);

#endif

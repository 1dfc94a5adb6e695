/* matmul_f64.c — the double-accumulating kernels of the reference matmul: the portable version in
 * GCC vector types, and the run-time choice of a kernel path (a table: the intrinsic kernels of
 * matmul_f64_x86.c where the CPU has them, the portable ones everywhere). Every path puts k into
 * lane k mod 8 in ascending k and ends with the same lane tree, so they give the same bits.
 * This file and the intrinsic kernels are compiled with -ffp-contract=fast, and that cannot
 * change a single bit: every product here is of two values widened from f32 (or bf16/f16), whose
 * 24-bit significands multiply into at most 48 bits, so w·x is exact in double, and
 * round(acc + w·x) is the same number whether the multiply is fused or not. Blocking and
 * threading: matmul.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matmul_kernels.h"
#include "ops.h"

typedef unsigned short v8hu __attribute__((vector_size(16)));
typedef unsigned int v8su __attribute__((vector_size(32)));

/* ---- portable version ------------------------------------------------------------------------ */

static inline __attribute__((always_inline)) v8f load_v8f(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) v8d load_v8d(const double *p)
{
    v8d v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* 8 bf16 values → 8 doubles, exactly (bf16 is the top half of an f32). */
static inline __attribute__((always_inline)) v8d load_bf16x8(const uint16_t *p)
{
    v8hu h;
    memcpy(&h, p, sizeof h);
    v8su u = __builtin_convertvector(h, v8su) << 16;
    v8f f;
    memcpy(&f, &u, sizeof f);
    return __builtin_convertvector(f, v8d);
}

static void kernel_generic(const double *wb, const double *x, size_t K, size_t kl, size_t nt,
                           v8d *acc)
{
    size_t k8 = kl & ~(size_t)7;
    for (size_t t = 0; t < nt; t++) {
        v8d a0[MR];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
            a0[r] = acc[t * MR + (size_t)r];
        const double *x0 = x + t * K;
        for (size_t k = 0; k < k8; k += 8) {
            v8d xv0 = load_v8d(x0 + k);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++)
                a0[r] += *(const v8d *)(wb + (size_t)r * KC + k) * xv0;
        }
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
            acc[t * MR + (size_t)r] = a0[r];
    }
}

void ld_ref_direct_generic(const ld_tensor *w, size_t n0, size_t n1, const double *xd,
                           double *acc)
{
    size_t K = (size_t)w->shape[1], k8 = K & ~(size_t)7;
    bool bf16 = w->dtype == LD_BF16;
    for (size_t n = n0; n < n1; n++) {
        v8d a = {0};
        const uint16_t *wh = (const uint16_t *)w->data + n * K;
        const float *wf = (const float *)w->data + n * K;
        for (size_t k = 0; k < k8; k += 8)
            a += (bf16 ? load_bf16x8(wh + k) : __builtin_convertvector(load_v8f(wf + k), v8d)) *
                 load_v8d(xd + k);
        memcpy(acc + (n - n0) * 8, &a, sizeof a);
    }
}

void ld_ref_widen_generic(const void *src, ld_dtype dt, size_t n, double *dst)
{
    if (dt == LD_F32) {
        const float *s = src;
        for (size_t k = 0; k < n; k++)
            dst[k] = (double)s[k];
        return;
    }
    const uint16_t *s = src;
    for (size_t k = 0; k < n; k++)
        dst[k] = (double)(dt == LD_BF16 ? ld_bf16_to_f32(s[k]) : ld_f16_to_f32(s[k]));
}

static bool always(void) { return true; }

static const ld_ref_kernels kernels_generic = {"generic", always, kernel_generic,
                                               ld_ref_direct_generic, ld_ref_widen_generic};

/* ---- the choice of a path -------------------------------------------------------------------- */

/* Best first: "auto" takes the first one the CPU can run. */
static const ld_ref_kernels *const paths[] = {
#if defined(__x86_64__)
    &ld_ref_kernels_avx512,
    &ld_ref_kernels_avx2,
#endif
#if defined(__aarch64__)
    &ld_ref_kernels_neon,
#endif
    &kernels_generic,
};
enum { NPATHS = sizeof paths / sizeof paths[0] };

/* The chosen path, read and written with __atomic: matmuls may run on several threads. */
static const ld_ref_kernels *active;

size_t ld_ref_kernel_count(void) { return NPATHS; }

const char *ld_ref_kernel_name(size_t i, bool *usable)
{
    if (i >= NPATHS)
        return NULL;
    if (usable)
        *usable = paths[i]->usable();
    return paths[i]->name;
}

ld_status ld_ref_kernel_select(const char *name, ld_error *err)
{
    if (!name)
        name = getenv("LD_REF_KERNEL");
    const ld_ref_kernels *pick = NULL;
    if (!name || !*name || !strcmp(name, "auto")) {
        for (size_t i = 0; i < NPATHS && !pick; i++)
            if (paths[i]->usable())
                pick = paths[i];
    } else {
        for (size_t i = 0; i < NPATHS && !pick; i++)
            if (!strcmp(name, paths[i]->name))
                pick = paths[i];
        if (!pick) {
            char list[128] = "auto";
            for (size_t i = 0; i < NPATHS; i++) {
                size_t len = strlen(list);
                snprintf(list + len, sizeof list - len, ", %s", paths[i]->name);
            }
            return ld_error_set(err, LD_E_USAGE,
                                "LD_REF_KERNEL=%.64s: no such kernel path (this build has %s)",
                                name, list);
        }
        if (!pick->usable())
            return ld_error_set(err, LD_E_UNSUPPORTED,
                                "LD_REF_KERNEL=%s: this CPU cannot run the %s kernels", name,
                                name);
    }
    __atomic_store_n(&active, pick, __ATOMIC_RELEASE);
    return LD_OK;
}

const char *ld_ref_kernel_path(void)
{
    const ld_ref_kernels *k = __atomic_load_n(&active, __ATOMIC_ACQUIRE);
    if (!k && ld_ref_kernel_select(NULL, NULL) == LD_OK)
        k = __atomic_load_n(&active, __ATOMIC_ACQUIRE);
    return k ? k->name : NULL;
}

ld_status ld_ref_kernel_ready(ld_error *err)
{
    if (__atomic_load_n(&active, __ATOMIC_ACQUIRE))
        return LD_OK;
    return ld_ref_kernel_select(NULL, err);
}

static const ld_ref_kernels *kernels(void)
{
    const ld_ref_kernels *k = __atomic_load_n(&active, __ATOMIC_ACQUIRE);
    return k ? k : &kernels_generic; /* ld_ref_matmul calls ld_ref_kernel_ready first */
}

/* ---- the entry points matmul.c calls --------------------------------------------------------- */

void ld_ref_kernel_f64(const double *wb, const double *x, size_t K, size_t kl, size_t nt, v8d *acc)
{
    kernels()->kernel(wb, x, K, kl, nt, acc);
    /* The tail (kl % 8, the last chunk of a row only) goes to lanes 0..kl%8−1, exactly where a
     * zero-padded vector would have put it. */
    size_t k8 = kl & ~(size_t)7;
    for (size_t t = 0; t < nt; t++)
        for (size_t k = k8; k < kl; k++)
            for (size_t r = 0; r < MR; r++)
                acc[t * MR + r][k - k8] += wb[r * KC + k] * x[t * K + k];
}

void ld_ref_kernel_f64_direct(const ld_tensor *w, size_t n0, size_t n1, const double *xd,
                              size_t T, float *y)
{
    size_t N = (size_t)w->shape[0], K = (size_t)w->shape[1], k8 = K & ~(size_t)7;
    const ld_ref_kernels *kn = kernels();
    double acc[DG * 8]; /* lanes of up to DG rows */
    for (size_t t = 0; t < T; t++) {
        const double *x = xd + t * K;
        for (size_t g = n0; g < n1; g += DG) {
            size_t ge = g + DG < n1 ? g + DG : n1;
            kn->direct(w, g, ge, x, acc);
            for (size_t n = g; n < ge; n++) {
                double *a = acc + (n - g) * 8;
                for (size_t k = k8; k < K; k++)
                    a[k - k8] += (double)ld_load_f32(w->data, w->dtype, n * K + k) * x[k];
                v8d v;
                memcpy(&v, a, sizeof v);
                y[t * N + n] = (float)ld_ref_lanes_sum_f64(v);
            }
        }
    }
}

void ld_ref_widen_f64(const ld_tensor *w, size_t n0, size_t N, size_t K, size_t k0, size_t kl,
                      double *dst)
{
    const ld_ref_kernels *kn = kernels();
    size_t esize = w->dtype == LD_F32 ? 4 : 2;
    for (size_t r = 0; r < MR; r++) {
        double *d = dst + r * KC;
        if (n0 + r >= N)
            memset(d, 0, kl * sizeof *d);
        else
            kn->widen((const char *)w->data + ((n0 + r) * K + k0) * esize, w->dtype, kl, d);
    }
}

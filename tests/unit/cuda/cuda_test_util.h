/* cuda_test_util.h — what the GPU unit tests share: skipping without a device (exit 77), checked
 * CUDA calls that fail the test, device buffers with guard regions (writes outside an output are
 * caught), a seeded random source, and the element-wise comparison (NaN/Inf agreement first, then
 * |got − ref| <= atol + rtol·|ref|). Include after <cmocka.h>. Test code only. */
#ifndef LD_CUDA_TEST_UTIL_H
#define LD_CUDA_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "layerdiff/dtype.h"

static ld_error E; /* filled by the layerdiff call that failed */

#define CU(stmt)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (stmt);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            fail_msg("%s:%d: %s: %s", __FILE__, __LINE__, #stmt, cudaGetErrorString(e_));          \
    } while (0)

#define LDOK(stmt)                                                                                 \
    do {                                                                                           \
        if ((stmt) != LD_OK)                                                                       \
            fail_msg("%s:%d: %s: %s", __FILE__, __LINE__, #stmt, E.msg);                           \
    } while (0)

/* Runs the enqueued work and fails on any device error (a kernel that faulted included). */
#define SYNC() CU(cudaDeviceSynchronize())

/* Exits 77 (ctest: skipped) when there is no usable device. */
static inline void skip_without_gpu(const char *name)
{
    char desc[256];
    ld_error err;
    if (ld_cuda_device_check(desc, sizeof desc, &err) != LD_OK) {
        printf("%s: skipped: %s\n", name, err.msg);
        exit(77);
    }
    printf("%s: on %s\n", name, desc);
}

/* ---- random inputs --------------------------------------------------------------------------- */

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static inline uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static inline float rng_uniform(void)
{
    return (float)((double)(rng_next() >> 11) * 0x1.0p-52 - 1.0);
}

/* n bf16 values, uniform in [-scale, scale) (malloc'd). */
static inline uint16_t *rand_bf16(size_t n, float scale)
{
    uint16_t *b = malloc((n ? n : 1) * sizeof *b);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        b[i] = ld_f32_to_bf16(scale * rng_uniform());
    return b;
}

/* bf16 values widened to f32 (malloc'd). */
static inline float *widen(const uint16_t *b, size_t n)
{
    float *f = malloc((n ? n : 1) * sizeof *f);
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        f[i] = ld_bf16_to_f32(b[i]);
    return f;
}

/* A bf16 weight tensor over host data, for the reference twins. */
static inline ld_tensor bf16_tensor(const uint16_t *data, int64_t rows, int64_t cols)
{
    ld_tensor t = {.name = "w", .dtype = LD_BF16, .ndim = cols ? 2 : 1, .data = data};
    t.shape[0] = rows;
    t.shape[1] = cols;
    t.numel = (size_t)rows * (size_t)(cols ? cols : 1);
    t.nbytes = t.numel * 2;
    return t;
}

/* ---- guarded device buffers ------------------------------------------------------------------ */

#define GUARD_BYTES 4096
#define GUARD_BYTE 0xA5

typedef struct gbuf {
    unsigned char *base; /* GUARD_BYTES, the buffer, GUARD_BYTES */
    size_t bytes;
} gbuf;

/* A device buffer of bytes, every byte set to fill (0xFF makes bf16 outputs NaN until written, so
 * an element a kernel forgets shows up as a NaN disagreement), between two guard regions. */
static inline void *gbuf_alloc(gbuf *g, size_t bytes, int fill)
{
    CU(cudaMalloc((void **)&g->base, bytes + 2 * GUARD_BYTES));
    CU(cudaMemset(g->base, GUARD_BYTE, GUARD_BYTES));
    CU(cudaMemset(g->base + GUARD_BYTES + bytes, GUARD_BYTE, GUARD_BYTES));
    CU(cudaMemset(g->base + GUARD_BYTES, fill, bytes));
    g->bytes = bytes;
    return g->base + GUARD_BYTES;
}

static inline void *gbuf_upload(gbuf *g, const void *host, size_t bytes)
{
    void *d = gbuf_alloc(g, bytes, 0);
    CU(cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice));
    return d;
}

static inline void gbuf_download(const gbuf *g, void *host)
{
    CU(cudaMemcpy(host, g->base + GUARD_BYTES, g->bytes, cudaMemcpyDeviceToHost));
}

/* Fails when anything wrote into the guard regions of g. */
static inline void gbuf_check(const gbuf *g, const char *what)
{
    unsigned char guard[GUARD_BYTES];
    for (int side = 0; side < 2; side++) {
        CU(cudaMemcpy(guard, g->base + (side ? GUARD_BYTES + g->bytes : 0), GUARD_BYTES,
                      cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < GUARD_BYTES; i++)
            if (guard[i] != GUARD_BYTE)
                fail_msg("%s: write out of bounds, %zu bytes %s the buffer", what,
                         side ? i + 1 : GUARD_BYTES - i, side ? "after" : "before");
    }
}

static inline void gbuf_free(gbuf *g)
{
    cudaFree(g->base);
    g->base = NULL;
}

/* ---- comparison ------------------------------------------------------------------------------ */

/* Non-finite values must agree in kind (NaN with NaN, +Inf with +Inf, -Inf with -Inf); finite
 * values must satisfy |got − ref| <= atol + rtol·|ref|. Fails naming the first bad element. */
static inline void check_close(const char *what, const float *ref, const float *got, size_t n,
                        double atol, double rtol)
{
    for (size_t i = 0; i < n; i++) {
        bool rn = isnan(ref[i]), gn = isnan(got[i]);
        bool ri = isinf(ref[i]), gi = isinf(got[i]);
        if (rn != gn || ri != gi || (ri && (ref[i] > 0) != (got[i] > 0)))
            fail_msg("%s: element %zu: got %g, expected %g (non-finite disagreement)", what, i,
                     (double)got[i], (double)ref[i]);
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ref[i]))
            continue;
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= atol + rtol * fabs((double)ref[i])))
            fail_msg("%s: element %zu: got %.9g, expected %.9g (|diff| %.3g > %.3g + %.3g*|ref|)",
                     what, i, (double)got[i], (double)ref[i], d, atol, rtol);
    }
}

/* As check_close with got in bf16. */
static inline void check_close_bf16(const char *what, const float *ref, const uint16_t *got,
                                    size_t n, double atol, double rtol)
{
    float *g = widen(got, n);
    check_close(what, ref, g, n, atol, rtol);
    free(g);
}

/* One bf16 ulp is at most 2^-7 of the value: a twin that rounds an fp32 result differing in the
 * last bits (another summation order) lands at most one bf16 step away. */
#define BF16_RTOL 0x1.0p-7

#endif

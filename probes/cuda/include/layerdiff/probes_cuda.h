/* layerdiff/probes_cuda.h — probing tensors that live on a CUDA device, from an engine's host code:
 * statistics reduced on the device by one kernel per probe, which writes them (136 bytes) straight
 * into mapped pinned host memory; payloads copied back asynchronously into pinned memory and only
 * for keys the sink wants with data; records written in emission order, with no per-probe
 * synchronization. Not a kernel library: your kernels stay yours; call this between them.
 *
 *     ld_cuda_probe *p;
 *     ld_cuda_probe_create(&p, sink, stream, &err);           // sink may be NULL: probes off
 *     ...your kernel writes q [T, Hq, D] on `stream`...
 *     ld_cuda_tensor t = {q, LD_BF16, 3, {T, Hq, D}, 0};
 *     ld_cuda_probe_emit(p, step, layer, "q_norm", pos0, &t, &err);   // cheap when not wanted
 *     ...
 *     ld_cuda_probe_flush(p, &err);                            // before ld_sink_close
 *     ld_cuda_probe_destroy(p);
 *
 * Everything is ordered on the one stream given at creation: the payload copy and the statistics
 * kernel are enqueued behind the kernel that produced the tensor, so the engine may overwrite the
 * buffer with its next kernel on that stream right away. Records are written once their results
 * have landed (the kernel stamps each one last): some during later emits (without blocking), the
 * rest at flush. After a device error, every record whose results landed is written before the
 * error is returned. With a NULL sink, or a key the sink does not want, nothing is launched,
 * copied or synchronized. Not for a stream being captured into a graph.
 *
 * Statistics (ld_stats of probes.h): each thread accumulates its elements in double, shifted by
 * its first finite value (sums of d and d² with d = x − shift), and partial results are merged
 * with Chan's pairwise formulas in a fixed order, so the result does not depend on timing and
 * matches ld_stats_compute to about 1e-12 relative. Nothing here prints or exits; every fallible
 * call returns an ld_status and fills an ld_error naming the CUDA call, file and line. */
#ifndef LAYERDIFF_PROBES_CUDA_H
#define LAYERDIFF_PROBES_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "layerdiff/probes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- checking CUDA calls ------------------------------------------------------------------- */

/* Fills err with "FILE:LINE: STATEMENT: cudaErrorName (description)" and returns LD_E_DEVICE
 * (LD_E_NODEVICE for cudaErrorNoDevice / cudaErrorInsufficientDriver). */
ld_status ld_cuda_fail(ld_error *err, cudaError_t e, const char *stmt, const char *file, int line);

/* Evaluates a CUDA runtime call once; on failure fills err and returns from the enclosing
 * function (which must return ld_status). After a kernel launch, check cudaGetLastError(). */
#define LD_CUDA_CHECK(err, stmt)                                                                   \
    do {                                                                                           \
        cudaError_t ld_cuda_e_ = (stmt);                                                           \
        if (ld_cuda_e_ != cudaSuccess)                                                             \
            return ld_cuda_fail((err), ld_cuda_e_, #stmt, __FILE__, __LINE__);                     \
    } while (0)

/* ---- device tensors -------------------------------------------------------------------------- */

/* A tensor in device memory, seen in its logical row-major shape. Rows (the first axis) may be
 * strided: row r starts row_stride elements after row r−1 (0: packed, i.e. the product of the
 * other axes). This covers the common fused layouts, e.g. q inside a [T, (Hq+2Hkv)·D] qkv buffer:
 * {qkv, LD_BF16, 3, {T, Hq, D}, (Hq+2Hkv)·D}. */
typedef struct ld_cuda_tensor {
    const void *data;
    ld_dtype dtype;
    int ndim;
    int64_t shape[LD_MAX_NDIM];
    size_t row_stride;
} ld_cuda_tensor;

/* Statistics and head of a device tensor, synchronously (enqueued on stream, then waited for).
 * head gets min(LD_HEAD_COUNT, numel) values (may be NULL). For tests and one-off checks; engines
 * should use the asynchronous ld_cuda_probe below. */
ld_status ld_cuda_tensor_stats(const ld_cuda_tensor *t, cudaStream_t stream, ld_stats *stats,
                               double *head, ld_error *err);

/* ---- the asynchronous prober ---------------------------------------------------------------- */

typedef struct ld_cuda_probe ld_cuda_probe;

/* Creates a prober writing to sink (not owned; NULL: every emit is a no-op) for tensors produced
 * on stream. Device and pinned buffers are allocated lazily, on the first wanted probe. */
ld_status ld_cuda_probe_create(ld_cuda_probe **out, ld_sink *sink, cudaStream_t stream,
                               ld_error *err);

/* If the sink wants (step, layer, tag): enqueues, when the sink wants data, the copy of the
 * payload into pinned memory, then the statistics kernel; then writes every earlier record whose
 * results have landed. The record is written with dtype t->dtype and the logical shape, payload
 * packed row-major. Blocks only when the pinned buffers are full (1024 pending probes, or their
 * payloads fill the arena). On a device error, writes what landed and returns the error. */
ld_status ld_cuda_probe_emit(ld_cuda_probe *p, int step, int layer, const char *tag, int64_t pos0,
                             const ld_cuda_tensor *t, ld_error *err);

/* Waits for every pending probe and writes its record, in emission order. On a device error
 * (a sticky one included), writes the records whose results landed and returns the error. */
ld_status ld_cuda_probe_flush(ld_cuda_probe *p, ld_error *err);

/* Frees everything; pending records are dropped (flush first to keep them). NULL is accepted.
 * Safe after a sticky device error (errors while freeing are ignored). */
void ld_cuda_probe_destroy(ld_cuda_probe *p);

/* Probes enqueued whose records are not written yet (0 for a NULL prober). */
uint64_t ld_cuda_probe_pending(const ld_cuda_probe *p);

#ifdef __cplusplus
}
#endif
#endif

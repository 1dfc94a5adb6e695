/* probes_cuda.cu — device-side probing (layerdiff/probes_cuda.h): the statistics reduction, the
 * asynchronous copies into pinned memory, and the queue that writes records in emission order.
 * Not the sink itself (probes/writer.c) nor any model math. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math_constants.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "layerdiff/probes_cuda.h"

/* ---- errors ---------------------------------------------------------------------------------- */

extern "C" ld_status ld_cuda_fail(ld_error *err, cudaError_t e, const char *stmt, const char *file,
                                  int line)
{
    ld_status code = (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) ? LD_E_NODEVICE
                                                                                   : LD_E_DEVICE;
    const char *base = strrchr(file, '/');
    return ld_error_set(err, code, "%s:%d: %s: %s (%s)", base ? base + 1 : file, line, stmt,
                        cudaGetErrorName(e), cudaGetErrorString(e));
}

/* ---- the statistics reduction -------------------------------------------------------------------
 * What a thread, a block or the whole tensor contributes: count, mean and sum of squared
 * deviations (m2) of the finite elements, their sum of squares (for l2), min, max, and the counts
 * of NaN and Inf. Parallelization: a fixed grid of at most STATS_BLOCKS blocks of STATS_THREADS
 * threads strides over the elements; each thread accumulates in double, shifted by its own first
 * finite value; each block merges its threads in a shared-memory tree (Chan's pairwise update),
 * and one thread of a second kernel merges the block results in order. The grid depends only on
 * the element count, so the result is reproducible bit for bit. */

#define STATS_THREADS 256
#define STATS_BLOCKS 1024

struct stats_part {
    double n, mean, m2, sq;
    float mn, mx;
    unsigned long long nan, inf;
};

/* What comes back to the host for one probe (pinned memory). */
struct stats_out {
    double min, max, mean, std, l2, absmax;
    unsigned long long nan, inf;
    float head[LD_HEAD_COUNT];
};

__device__ static stats_part part_merge(stats_part a, const stats_part &b)
{
    a.nan += b.nan;
    a.inf += b.inf;
    a.sq += b.sq;
    if (b.n == 0.0)
        return a;
    if (a.n == 0.0) {
        a.n = b.n, a.mean = b.mean, a.m2 = b.m2, a.mn = b.mn, a.mx = b.mx;
        return a;
    }
    double n = a.n + b.n, d = b.mean - a.mean;
    a.mean += d * (b.n / n);
    a.m2 += b.m2 + d * d * (a.n * (b.n / n));
    a.n = n;
    a.mn = fminf(a.mn, b.mn);
    a.mx = fmaxf(a.mx, b.mx);
    return a;
}

__device__ static float load_elem(const void *base, int dtype, size_t i)
{
    if (dtype == LD_BF16)
        return __uint_as_float((unsigned)((const unsigned short *)base)[i] << 16);
    if (dtype == LD_F16)
        return __half2float(__ushort_as_half(((const unsigned short *)base)[i]));
    return ((const float *)base)[i];
}

/* Element i (row-major logical order) of a [rows, cols] view whose rows are ld elements apart. */
__device__ static float view_elem(const void *base, int dtype, size_t cols, size_t ld, size_t i)
{
    return load_elem(base, dtype, ld == cols ? i : (i / cols) * ld + i % cols);
}

__global__ static void stats_partial_kernel(const void *base, int dtype, size_t numel, size_t cols,
                                            size_t ld, stats_part *parts)
{
    __shared__ stats_part sm[STATS_THREADS];
    double shift = 0.0, s = 0.0, q = 0.0, sq = 0.0, cnt = 0.0;
    float mn = INFINITY, mx = -INFINITY;
    unsigned long long nan = 0, inf = 0;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < numel; i += stride) {
        float v = view_elem(base, dtype, cols, ld, i);
        if (isnan(v)) {
            nan++;
        } else if (isinf(v)) {
            inf++;
        } else {
            double dv = (double)v;
            if (cnt == 0.0)
                shift = dv;
            double d = dv - shift;
            s += d;
            q += d * d;
            sq += dv * dv;
            mn = fminf(mn, v);
            mx = fmaxf(mx, v);
            cnt += 1.0;
        }
    }
    stats_part p;
    p.n = cnt;
    p.mean = cnt > 0.0 ? shift + s / cnt : 0.0;
    p.m2 = cnt > 0.0 ? fmax(q - s * (s / cnt), 0.0) : 0.0;
    p.sq = sq, p.mn = mn, p.mx = mx, p.nan = nan, p.inf = inf;
    sm[threadIdx.x] = p;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half)
            sm[threadIdx.x] = part_merge(sm[threadIdx.x], sm[threadIdx.x + half]);
        __syncthreads();
    }
    if (threadIdx.x == 0)
        parts[blockIdx.x] = sm[0];
}

/* One thread: merges the block results in order, finishes the statistics, reads the head. */
__global__ static void stats_final_kernel(const stats_part *parts, unsigned nparts,
                                          const void *base, int dtype, size_t numel, size_t cols,
                                          size_t ld, stats_out *out)
{
    stats_part acc = parts[0];
    for (unsigned b = 1; b < nparts; b++)
        acc = part_merge(acc, parts[b]);
    stats_out r;
    r.nan = acc.nan;
    r.inf = acc.inf;
    if (acc.n == 0.0) {
        r.min = r.max = r.mean = r.std = r.l2 = r.absmax = CUDART_NAN;
    } else {
        r.min = (double)acc.mn;
        r.max = (double)acc.mx;
        r.mean = acc.mean;
        r.std = sqrt(acc.m2 / acc.n);
        r.l2 = sqrt(acc.sq);
        r.absmax = fmax(fabs(r.min), fabs(r.max));
    }
    for (size_t i = 0; i < LD_HEAD_COUNT; i++)
        r.head[i] = i < numel ? view_elem(base, dtype, cols, ld, i) : 0.0f;
    *out = r;
}

/* Checks a view and returns its element count, columns (elements per row) and row stride. */
static ld_status view_dims(const ld_cuda_tensor *t, size_t *numel, size_t *cols, size_t *ld,
                           ld_error *err)
{
    if (!t || !t->data)
        return ld_error_set(err, LD_E_USAGE, "probe of a NULL device tensor");
    if (t->ndim < 1 || t->ndim > LD_MAX_NDIM)
        return ld_error_set(err, LD_E_USAGE, "device tensor: ndim %d is outside 1..%d", t->ndim,
                            LD_MAX_NDIM);
    if ((unsigned)t->dtype > LD_F16)
        return ld_error_set(err, LD_E_USAGE, "device tensor: unknown dtype %d", (int)t->dtype);
    size_t n = 1, c = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] <= 0)
            return ld_error_set(err, LD_E_USAGE, "device tensor: dimension %d is %lld", i,
                                (long long)t->shape[i]);
        if (__builtin_mul_overflow(n, (size_t)t->shape[i], &n))
            return ld_error_set(err, LD_E_USAGE, "device tensor: element count overflows");
        if (i > 0)
            c *= (size_t)t->shape[i];
    }
    size_t stride = t->row_stride ? t->row_stride : c;
    if (stride < c)
        return ld_error_set(err, LD_E_USAGE,
                            "device tensor: row stride %zu is smaller than a row (%zu elements)",
                            stride, c);
    *numel = n, *cols = c, *ld = stride;
    return LD_OK;
}

static unsigned stats_blocks(size_t numel)
{
    size_t per_block = (size_t)STATS_THREADS * 4; /* at least 4 elements per thread */
    size_t b = (numel + per_block - 1) / per_block;
    return (unsigned)(b < 1 ? 1 : (b > STATS_BLOCKS ? STATS_BLOCKS : b));
}

/* Enqueues the two statistics kernels; parts holds STATS_BLOCKS entries. */
static ld_status launch_stats(const ld_cuda_tensor *t, size_t numel, size_t cols, size_t ld,
                              stats_part *parts, stats_out *out, cudaStream_t stream, ld_error *err)
{
    unsigned nb = stats_blocks(numel);
    stats_partial_kernel<<<nb, STATS_THREADS, 0, stream>>>(t->data, (int)t->dtype, numel, cols, ld,
                                                           parts);
    LD_CUDA_CHECK(err, cudaGetLastError());
    stats_final_kernel<<<1, 1, 0, stream>>>(parts, nb, t->data, (int)t->dtype, numel, cols, ld,
                                            out);
    LD_CUDA_CHECK(err, cudaGetLastError());
    return LD_OK;
}

static void stats_to_host(const stats_out *o, size_t numel, ld_stats *stats, double *head)
{
    stats->min = o->min, stats->max = o->max, stats->mean = o->mean, stats->std = o->std;
    stats->l2 = o->l2, stats->absmax = o->absmax;
    stats->nan = o->nan, stats->inf = o->inf;
    if (head)
        for (size_t i = 0; i < LD_HEAD_COUNT && i < numel; i++)
            head[i] = (double)o->head[i];
}

static ld_status tensor_stats_with(const ld_cuda_tensor *t, cudaStream_t stream, ld_stats *stats,
                                   double *head, stats_part *parts, stats_out *d_out,
                                   ld_error *err)
{
    size_t numel, cols, ld;
    ld_status st = view_dims(t, &numel, &cols, &ld, err);
    if (st != LD_OK)
        return st;
    if ((st = launch_stats(t, numel, cols, ld, parts, d_out, stream, err)) != LD_OK)
        return st;
    stats_out h;
    LD_CUDA_CHECK(err, cudaMemcpyAsync(&h, d_out, sizeof h, cudaMemcpyDeviceToHost, stream));
    LD_CUDA_CHECK(err, cudaStreamSynchronize(stream));
    stats_to_host(&h, numel, stats, head);
    return LD_OK;
}

extern "C" ld_status ld_cuda_tensor_stats(const ld_cuda_tensor *t, cudaStream_t stream,
                                          ld_stats *stats, double *head, ld_error *err)
{
    stats_part *parts = NULL;
    stats_out *d_out = NULL;
    cudaError_t e = cudaMalloc((void **)&parts, STATS_BLOCKS * sizeof *parts);
    if (e == cudaSuccess)
        e = cudaMalloc((void **)&d_out, sizeof *d_out);
    ld_status st = e == cudaSuccess
                       ? tensor_stats_with(t, stream, stats, head, parts, d_out, err)
                       : ld_cuda_fail(err, e, "cudaMalloc(statistics scratch)", __FILE__, __LINE__);
    cudaFree(parts);
    cudaFree(d_out);
    return st;
}

/* ---- the queue ----------------------------------------------------------------------------------
 * A ring of SLOTS pending probes. Each holds its key, its statistics slot (device d_out[i], pinned
 * h_out[i]), its payload in the pinned arena, and an event recorded after its copies. Records are
 * written from the oldest slot whose event has completed. The arena is a bump allocator, reset
 * whenever the ring is empty; when a payload does not fit, the ring is flushed first, and the arena
 * grows when one payload alone is larger than it. */

#define SLOTS 256
#define ARENA_ALIGN 256
#define ARENA_MIN ((size_t)16 << 20)

struct pending {
    int step, layer;
    char tag[LD_TAG_NAME_MAX + 1];
    int64_t pos0;
    ld_dtype dtype;
    int ndim;
    int64_t shape[LD_MAX_NDIM];
    size_t numel;
    void *payload; /* in the arena, or NULL (stats only) */
};

struct ld_cuda_probe {
    ld_sink *sink;
    cudaStream_t stream;
    bool ready;              /* device and pinned buffers allocated */
    stats_part *d_parts;     /* [STATS_BLOCKS] scratch, reused probe after probe (stream order) */
    stats_out *d_out;        /* [SLOTS] */
    stats_out *h_out;        /* [SLOTS] pinned */
    cudaEvent_t events[SLOTS];
    int n_events;
    pending slots[SLOTS];
    size_t head, count;      /* oldest pending slot, number pending */
    unsigned char *arena;    /* pinned payloads */
    size_t arena_cap, arena_used;
};

extern "C" ld_status ld_cuda_probe_create(ld_cuda_probe **out, ld_sink *sink, cudaStream_t stream,
                                          ld_error *err)
{
    *out = (ld_cuda_probe *)calloc(1, sizeof **out);
    if (!*out)
        return ld_error_set(err, LD_E_NOMEM, "cannot allocate a CUDA prober");
    (*out)->sink = sink;
    (*out)->stream = stream;
    return LD_OK;
}

static ld_status probe_ready(ld_cuda_probe *p, ld_error *err)
{
    if (p->ready)
        return LD_OK;
    LD_CUDA_CHECK(err, cudaMalloc((void **)&p->d_parts, STATS_BLOCKS * sizeof *p->d_parts));
    LD_CUDA_CHECK(err, cudaMalloc((void **)&p->d_out, SLOTS * sizeof *p->d_out));
    LD_CUDA_CHECK(err, cudaMallocHost((void **)&p->h_out, SLOTS * sizeof *p->h_out));
    for (; p->n_events < SLOTS; p->n_events++)
        LD_CUDA_CHECK(err, cudaEventCreateWithFlags(&p->events[p->n_events],
                                                    cudaEventDisableTiming));
    p->ready = true;
    return LD_OK;
}

/* Writes the record of the oldest pending probe, once its event has completed. With wait false
 * and the event not reached yet: LD_OK and *written false. */
static ld_status write_oldest(ld_cuda_probe *p, bool wait, bool *written, ld_error *err)
{
    *written = false;
    cudaEvent_t ev = p->events[p->head];
    if (wait) {
        LD_CUDA_CHECK(err, cudaEventSynchronize(ev));
    } else {
        cudaError_t e = cudaEventQuery(ev);
        if (e == cudaErrorNotReady) {
            (void)cudaGetLastError(); /* not an error: keep it out of the next launch check */
            return LD_OK;
        }
        if (e != cudaSuccess)
            return ld_cuda_fail(err, e, "cudaEventQuery(probe copied)", __FILE__, __LINE__);
    }
    const pending *q = &p->slots[p->head];
    ld_stats stats;
    double head[LD_HEAD_COUNT];
    stats_to_host(&p->h_out[p->head], q->numel, &stats, head);
    ld_status st = ld_sink_emit_precomputed(p->sink, q->step, q->layer, q->tag, q->pos0, q->dtype,
                                            q->shape, q->ndim, &stats, head, q->payload, err);
    p->head = (p->head + 1) % SLOTS;
    p->count--;
    if (p->count == 0)
        p->arena_used = 0;
    *written = true;
    return st;
}

static ld_status drain(ld_cuda_probe *p, bool wait, ld_error *err)
{
    while (p->count > 0) {
        bool written;
        ld_status st = write_oldest(p, wait, &written, err);
        if (st != LD_OK)
            return st;
        if (!written)
            break;
    }
    return LD_OK;
}

extern "C" ld_status ld_cuda_probe_flush(ld_cuda_probe *p, ld_error *err)
{
    return p ? drain(p, true, err) : LD_OK;
}

/* Room for nbytes of payload: flushes the ring when the arena is too full, grows it when needed. */
static ld_status arena_reserve(ld_cuda_probe *p, size_t nbytes, void **at, ld_error *err)
{
    size_t need = (nbytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (p->arena_used + need > p->arena_cap) {
        ld_status st = drain(p, true, err); /* empties the ring: arena_used = 0 */
        if (st != LD_OK)
            return st;
    }
    if (need > p->arena_cap) {
        size_t cap = p->arena_cap * 2 > need ? p->arena_cap * 2 : need;
        cap = cap > ARENA_MIN ? cap : ARENA_MIN;
        if (p->arena)
            LD_CUDA_CHECK(err, cudaFreeHost(p->arena));
        p->arena = NULL;
        p->arena_cap = 0;
        LD_CUDA_CHECK(err, cudaMallocHost((void **)&p->arena, cap));
        p->arena_cap = cap;
    }
    *at = p->arena + p->arena_used;
    p->arena_used += need;
    return LD_OK;
}

extern "C" ld_status ld_cuda_probe_emit(ld_cuda_probe *p, int step, int layer, const char *tag,
                                        int64_t pos0, const ld_cuda_tensor *t, ld_error *err)
{
    if (!p || !p->sink || !ld_sink_wants(p->sink, step, layer, tag))
        return LD_OK;
    size_t numel, cols, ld;
    ld_status st = view_dims(t, &numel, &cols, &ld, err);
    if (st != LD_OK)
        return ld_error_prefix(err, "%s", tag);
    if (strlen(tag) > LD_TAG_NAME_MAX)
        return ld_error_set(err, LD_E_USAGE, "tag '%.40s...' is too long", tag);
    if ((st = probe_ready(p, err)) != LD_OK)
        return st;
    if (p->count == SLOTS) { /* the ring is full: wait for the oldest */
        bool written;
        if ((st = write_oldest(p, true, &written, err)) != LD_OK)
            return st;
    }

    size_t esize = ld_dtype_size(t->dtype);
    void *payload = NULL;
    if (ld_sink_wants_data(p->sink)) {
        size_t nbytes;
        if (__builtin_mul_overflow(numel, esize, &nbytes))
            return ld_error_set(err, LD_E_USAGE, "%s: payload size overflows", tag);
        if ((st = arena_reserve(p, nbytes, &payload, err)) != LD_OK)
            return st;
    }
    size_t i = (p->head + p->count) % SLOTS;
    if ((st = launch_stats(t, numel, cols, ld, p->d_parts, &p->d_out[i], p->stream, err)) != LD_OK)
        return st;
    LD_CUDA_CHECK(err, cudaMemcpyAsync(&p->h_out[i], &p->d_out[i], sizeof p->h_out[i],
                                       cudaMemcpyDeviceToHost, p->stream));
    if (payload)
        LD_CUDA_CHECK(err, cudaMemcpy2DAsync(payload, cols * esize, t->data, ld * esize,
                                             cols * esize, numel / cols, cudaMemcpyDeviceToHost,
                                             p->stream));
    LD_CUDA_CHECK(err, cudaEventRecord(p->events[i], p->stream));

    pending *q = &p->slots[i];
    q->step = step, q->layer = layer, q->pos0 = pos0, q->dtype = t->dtype, q->ndim = t->ndim;
    strcpy(q->tag, tag);
    memcpy(q->shape, t->shape, sizeof q->shape);
    q->numel = numel;
    q->payload = payload;
    p->count++;
    return drain(p, false, err);
}

extern "C" uint64_t ld_cuda_probe_pending(const ld_cuda_probe *p) { return p ? p->count : 0; }

extern "C" void ld_cuda_probe_destroy(ld_cuda_probe *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_events; i++)
        cudaEventDestroy(p->events[i]);
    cudaFree(p->d_parts);
    cudaFree(p->d_out);
    cudaFreeHost(p->h_out);
    cudaFreeHost(p->arena);
    (void)cudaGetLastError(); /* after a sticky error these fail; nothing more to do about it */
    free(p);
}

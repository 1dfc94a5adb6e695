/* probes_cuda.cu — device-side probing (layerdiff/probes_cuda.h): the statistics reduction (one
 * kernel per probe, writing its result into mapped pinned host memory, stamp last), the
 * asynchronous payload copies into pinned memory, and the queue that writes records in emission
 * order as their stamps land. Not the sink itself (probes/writer.c) nor any model math. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math_constants.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <sched.h>

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
 * finite value; each block merges its threads in a shared-memory tree (Chan's pairwise update);
 * the block results are then merged in block order, 0, 1, 2, ..., by one thread. The grid depends
 * only on the element count and the merge order is fixed (not the order in which blocks finish),
 * so the result is reproducible bit for bit.
 *
 * One kernel per probe. Every block writes its part to a scratch array and takes a ticket from a
 * device counter; the block that draws the last ticket (it knows every other part is written:
 * each block fences before taking its ticket) merges the parts, resets the counter for the next
 * probe and writes the result. A grid of one block (every tensor of up to 1024 elements: the
 * hidden-sized probes of a decode step) skips the scratch and the counter; the other decode
 * probes have a few blocks (q 2, gate/up 3 for Qwen3-0.6B), the logits 149. The in-order merge
 * is kept from the two-kernel version on purpose: a parallel tree over the parts would move the
 * last bits of mean, std and l2 (Chan's update is not associative in floating point), and the
 * files a user compares across versions would change; the parts are staged through shared memory
 * by the whole block, so the one merging thread does not wait on global loads, and only large
 * tensors have many parts (≤ 1024 merges, e.g. the logits of a prefill). One scratch and one
 * counter serve every probe of a prober: its kernels run in stream order, one after another, so
 * they cannot overlap.
 *
 * The result (statistics and head) goes to `out`; then, after a system-wide fence, the probe's
 * sequence number goes to out->stamp. When out is in mapped pinned host memory, the host
 * reads the record there as soon as the stamp has landed, with no copy and no event. */

#define STATS_THREADS 256
#define STATS_BLOCKS 1024

struct stats_part {
    double n, mean, m2, sq;
    float mn, mx;
    unsigned long long nan, inf;
};

/* What comes back to the host for one probe, and the stamp written after it. */
struct stats_out {
    double min, max, mean, std, l2, absmax;
    unsigned long long nan, inf;
    float head[LD_HEAD_COUNT];
    unsigned long long stamp; /* the probe's sequence number, written last */
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

/* A part written by another block of this grid: loaded past the (non-coherent) L1 cache. */
__device__ static stats_part part_load(const stats_part *p)
{
    stats_part r;
    r.n = __ldcg(&p->n), r.mean = __ldcg(&p->mean), r.m2 = __ldcg(&p->m2), r.sq = __ldcg(&p->sq);
    r.mn = __ldcg(&p->mn), r.mx = __ldcg(&p->mx);
    r.nan = __ldcg(&p->nan), r.inf = __ldcg(&p->inf);
    return r;
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

/* This thread's part of the view: elements threadIdx + blockDim·(blockIdx + gridDim·k). */
__device__ static stats_part thread_part(const void *base, int dtype, size_t numel, size_t cols,
                                         size_t ld)
{
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
    return p;
}

/* parts: gridDim.x entries (unused with one block); ticket: 0 on entry, 0 again on exit. */
__global__ static void stats_kernel(const void *base, int dtype, size_t numel, size_t cols,
                                    size_t ld, stats_part *parts, unsigned *ticket,
                                    stats_out *out, unsigned long long seq)
{
    __shared__ stats_part sm[STATS_THREADS];
    __shared__ float head[LD_HEAD_COUNT];
    __shared__ bool last;
    sm[threadIdx.x] = thread_part(base, dtype, numel, cols, ld);
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half)
            sm[threadIdx.x] = part_merge(sm[threadIdx.x], sm[threadIdx.x + half]);
        __syncthreads();
    }
    stats_part acc = sm[0]; /* the block's part; with one block, the whole tensor's */
    if (gridDim.x > 1) {
        if (threadIdx.x == 0) {
            parts[blockIdx.x] = acc;
            __threadfence(); /* the part is visible before the ticket is taken (release) */
            last = atomicAdd(ticket, 1u) == gridDim.x - 1;
            __threadfence(); /* and the others' parts, read after the barrier, after it (acquire) */
        }
        __syncthreads();
        if (!last)
            return;
        /* The last block: every part is written. Merge them in block order, STATS_THREADS at a
         * time: the block loads a chunk into shared memory, thread 0 folds it in. */
        for (unsigned c = 0; c < gridDim.x; c += blockDim.x) {
            __syncthreads(); /* thread 0 has finished with the previous chunk */
            if (c + threadIdx.x < gridDim.x)
                sm[threadIdx.x] = part_load(&parts[c + threadIdx.x]);
            __syncthreads();
            for (unsigned b = 0; threadIdx.x == 0 && b < blockDim.x && c + b < gridDim.x; b++)
                acc = c + b == 0 ? sm[0] : part_merge(acc, sm[b]);
        }
        if (threadIdx.x == 0)
            *ticket = 0; /* for the next probe: kernels of a stream run one after another */
    }
    if (threadIdx.x < LD_HEAD_COUNT)
        head[threadIdx.x] = threadIdx.x < numel ? view_elem(base, dtype, cols, ld, threadIdx.x)
                                                : 0.0f;
    __syncthreads();
    if (threadIdx.x != 0)
        return;
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
    for (int i = 0; i < LD_HEAD_COUNT; i++)
        r.head[i] = head[i];
    r.stamp = 0;
    *out = r;
    __threadfence_system(); /* the record is visible to the host before its stamp */
    *(volatile unsigned long long *)&out->stamp = seq;
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

/* The device scratch of the reduction: parts for STATS_BLOCKS blocks and the ticket counter. */
struct stats_scratch {
    stats_part parts[STATS_BLOCKS];
    unsigned ticket;
};

/* Enqueues the statistics kernel: the result, then seq as its stamp, go to out (device memory or
 * the device pointer of mapped host memory). scratch->ticket must be 0 (the kernel leaves it 0). */
static ld_status launch_stats(const ld_cuda_tensor *t, size_t numel, size_t cols, size_t ld,
                              stats_scratch *scratch, stats_out *out, unsigned long long seq,
                              cudaStream_t stream, ld_error *err)
{
    unsigned nb = stats_blocks(numel);
    stats_kernel<<<nb, STATS_THREADS, 0, stream>>>(t->data, (int)t->dtype, numel, cols, ld,
                                                   scratch->parts, &scratch->ticket, out, seq);
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

static ld_status scratch_alloc(stats_scratch **s, cudaStream_t stream, ld_error *err)
{
    LD_CUDA_CHECK(err, cudaMalloc((void **)s, sizeof **s));
    LD_CUDA_CHECK(err, cudaMemsetAsync(&(*s)->ticket, 0, sizeof (*s)->ticket, stream));
    return LD_OK;
}

static ld_status tensor_stats_with(const ld_cuda_tensor *t, cudaStream_t stream, ld_stats *stats,
                                   double *head, stats_scratch **scratch, stats_out **d_out,
                                   ld_error *err)
{
    size_t numel, cols, ld;
    ld_status st = view_dims(t, &numel, &cols, &ld, err);
    if (st != LD_OK)
        return st;
    if ((st = scratch_alloc(scratch, stream, err)) != LD_OK)
        return st;
    LD_CUDA_CHECK(err, cudaMalloc((void **)d_out, sizeof **d_out));
    if ((st = launch_stats(t, numel, cols, ld, *scratch, *d_out, 1, stream, err)) != LD_OK)
        return st;
    stats_out h;
    LD_CUDA_CHECK(err, cudaMemcpyAsync(&h, *d_out, sizeof h, cudaMemcpyDeviceToHost, stream));
    LD_CUDA_CHECK(err, cudaStreamSynchronize(stream));
    if (h.stamp != 1)
        return ld_error_set(err, LD_E_DEVICE, "the statistics kernel did not write its result");
    stats_to_host(&h, numel, stats, head);
    return LD_OK;
}

extern "C" ld_status ld_cuda_tensor_stats(const ld_cuda_tensor *t, cudaStream_t stream,
                                          ld_stats *stats, double *head, ld_error *err)
{
    stats_scratch *scratch = NULL;
    stats_out *d_out = NULL;
    ld_status st = tensor_stats_with(t, stream, stats, head, &scratch, &d_out, err);
    cudaFree(scratch);
    cudaFree(d_out);
    return st;
}

/* ---- the queue ----------------------------------------------------------------------------------
 * A ring of n_slots pending probes (SLOTS; LAYERDIFF_CUDA_PROBE_SLOTS=N sets another number, a
 * testing aid: a small ring makes the waits for a full ring happen). Each holds its key, its
 * sequence number, and its payload in the pinned arena. Its statistics land in the same slot of a
 * ring of stats_out in mapped pinned host memory, written by the statistics kernel itself, stamp
 * last; the payload copy is enqueued before that kernel, so by stream order a landed stamp means
 * the payload has landed too. The host writes records from the oldest slot while their stamps
 * have landed: without waiting during emits, waiting at flush or when the ring or the arena is
 * full. No event, no per-probe copy of the statistics, no per-probe synchronization.
 * Crash safety: after any device error, every record whose stamp landed is written, in order,
 * before the error is returned (and nothing after the first slot whose stamp is missing).
 * The arena is a bump allocator, reset whenever the ring is empty; when a payload does not fit,
 * the ring is flushed first, and the arena grows when one payload alone is larger than it. */

#define SLOTS 1024
#define SLOTS_MAX 65536
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
    unsigned long long seq; /* the stamp its statistics carry when they have landed */
    void *payload;          /* in the arena, or NULL (stats only) */
};

struct ld_cuda_probe {
    ld_sink *sink;
    cudaStream_t stream;
    bool ready;              /* device and pinned buffers allocated */
    stats_scratch *scratch;  /* device; one for all probes (stream order) */
    stats_out *h_out;        /* [n_slots] mapped pinned host memory, as the host sees it */
    stats_out *d_out;        /* the same, as the device sees it */
    pending *slots;          /* [n_slots] */
    size_t n_slots;
    size_t head, count;      /* oldest pending slot, number pending */
    unsigned long long seq;  /* the last sequence number given */
    unsigned char *arena;    /* pinned payloads */
    size_t arena_cap, arena_used;
};

extern "C" ld_status ld_cuda_probe_create(ld_cuda_probe **out, ld_sink *sink, cudaStream_t stream,
                                          ld_error *err)
{
    *out = NULL;
    size_t n_slots = SLOTS;
    const char *env = getenv("LAYERDIFF_CUDA_PROBE_SLOTS");
    if (env && *env) {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);
        if (*end || env[0] == '-' || v < 1 || v > SLOTS_MAX)
            return ld_error_set(err, LD_E_USAGE,
                                "LAYERDIFF_CUDA_PROBE_SLOTS: '%.40s' is not a number in 1..%d", env,
                                SLOTS_MAX);
        n_slots = (size_t)v;
    }
    ld_cuda_probe *p = (ld_cuda_probe *)calloc(1, sizeof *p);
    pending *slots = (pending *)calloc(n_slots, sizeof *slots);
    if (!p || !slots) {
        free(p);
        free(slots);
        return ld_error_set(err, LD_E_NOMEM, "cannot allocate a CUDA prober");
    }
    p->sink = sink;
    p->stream = stream;
    p->slots = slots;
    p->n_slots = n_slots;
    *out = p;
    return LD_OK;
}

static ld_status probe_ready(ld_cuda_probe *p, ld_error *err)
{
    if (p->ready)
        return LD_OK;
    if (!p->scratch) {
        ld_status st = scratch_alloc(&p->scratch, p->stream, err);
        if (st != LD_OK)
            return st;
    }
    if (!p->h_out) {
        LD_CUDA_CHECK(err, cudaHostAlloc((void **)&p->h_out, p->n_slots * sizeof *p->h_out,
                                         cudaHostAllocMapped));
        memset((void *)p->h_out, 0, p->n_slots * sizeof *p->h_out); /* no stamp has landed */
    }
    LD_CUDA_CHECK(err, cudaHostGetDevicePointer((void **)&p->d_out, p->h_out, 0));
    p->ready = true;
    return LD_OK;
}

/* Whether the statistics (and so the payload) of pending slot i are on the host. */
static bool landed(const ld_cuda_probe *p, size_t i)
{
    return __atomic_load_n(&p->h_out[i].stamp, __ATOMIC_ACQUIRE) == p->slots[i].seq;
}

/* Writes the record of the oldest pending probe (its stamp has landed). */
static ld_status write_oldest(ld_cuda_probe *p, ld_error *err)
{
    const pending *q = &p->slots[p->head];
    ld_stats stats;
    double head[LD_HEAD_COUNT];
    stats_to_host(&p->h_out[p->head], q->numel, &stats, head);
    ld_status st = ld_sink_emit_precomputed(p->sink, q->step, q->layer, q->tag, q->pos0, q->dtype,
                                            q->shape, q->ndim, &stats, head, q->payload, err);
    p->head = (p->head + 1) % p->n_slots;
    p->count--;
    if (p->count == 0)
        p->arena_used = 0;
    return st;
}

/* Writes the records of the oldest pending probes while their stamps have landed. */
static ld_status write_landed(ld_cuda_probe *p, ld_error *err)
{
    while (p->count > 0 && landed(p, p->head)) {
        ld_status st = write_oldest(p, err);
        if (st != LD_OK)
            return st;
    }
    return LD_OK;
}

/* After the device error st (its ld_error filled): writes what landed, keeps that error. */
static ld_status salvage(ld_cuda_probe *p, ld_status st)
{
    ld_error later;
    (void)write_landed(p, &later);
    return st;
}

/* Waits until the oldest `n` pending probes have landed and writes them (all: n = count). While
 * waiting, the stream is polled, so that a device error ends the wait (after salvage). */
static ld_status write_waiting(ld_cuda_probe *p, size_t n, ld_error *err)
{
    while (n > 0) {
        if (landed(p, p->head)) {
            ld_status st = write_oldest(p, err);
            if (st != LD_OK)
                return st;
            n--;
            continue;
        }
        cudaError_t e = cudaStreamQuery(p->stream);
        if (e == cudaErrorNotReady) {
            (void)cudaGetLastError(); /* not an error: keep it out of the next launch check */
            sched_yield();
            continue;
        }
        if (e != cudaSuccess)
            return salvage(p, ld_cuda_fail(err, e, "cudaStreamQuery(probe stream)", __FILE__,
                                           __LINE__));
        if (!landed(p, p->head)) /* the stream is idle: the stamp should be there */
            return salvage(p, ld_error_set(err, LD_E_DEVICE,
                                           "%s: the statistics of this probe never arrived "
                                           "although its stream is idle",
                                           p->slots[p->head].tag));
    }
    return LD_OK;
}

extern "C" ld_status ld_cuda_probe_flush(ld_cuda_probe *p, ld_error *err)
{
    return p ? write_waiting(p, p->count, err) : LD_OK;
}

/* Room for nbytes of payload: flushes the ring when the arena is too full, grows it when needed. */
static ld_status arena_reserve(ld_cuda_probe *p, size_t nbytes, void **at, ld_error *err)
{
    size_t need = (nbytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (p->arena_used + need > p->arena_cap) {
        ld_status st = write_waiting(p, p->count, err); /* empties the ring: arena_used = 0 */
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

/* Enqueues the probe of a wanted key (the view checked: numel, cols, ld). */
static ld_status enqueue(ld_cuda_probe *p, int step, int layer, const char *tag, int64_t pos0,
                         const ld_cuda_tensor *t, size_t numel, size_t cols, size_t ld,
                         ld_error *err)
{
    ld_status st;
    if ((st = probe_ready(p, err)) != LD_OK)
        return st;
    if (p->count == p->n_slots && (st = write_waiting(p, 1, err)) != LD_OK) /* full: the oldest */
        return st;
    size_t esize = ld_dtype_size(t->dtype);
    void *payload = NULL;
    if (ld_sink_wants_data(p->sink)) {
        size_t nbytes;
        if (__builtin_mul_overflow(numel, esize, &nbytes))
            return ld_error_set(err, LD_E_USAGE, "%s: payload size overflows", tag);
        if ((st = arena_reserve(p, nbytes, &payload, err)) != LD_OK)
            return st;
        /* Before the statistics kernel: its stamp then says the payload has landed. */
        LD_CUDA_CHECK(err, cudaMemcpy2DAsync(payload, cols * esize, t->data, ld * esize,
                                             cols * esize, numel / cols, cudaMemcpyDeviceToHost,
                                             p->stream));
    }
    size_t i = (p->head + p->count) % p->n_slots;
    pending *q = &p->slots[i];
    q->seq = ++p->seq;
    if ((st = launch_stats(t, numel, cols, ld, p->scratch, &p->d_out[i], q->seq, p->stream,
                           err)) != LD_OK)
        return st;
    q->step = step, q->layer = layer, q->pos0 = pos0, q->dtype = t->dtype, q->ndim = t->ndim;
    strcpy(q->tag, tag);
    memcpy(q->shape, t->shape, sizeof q->shape);
    q->numel = numel;
    q->payload = payload;
    p->count++;
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
    st = enqueue(p, step, layer, tag, pos0, t, numel, cols, ld, err);
    if (st == LD_E_DEVICE || st == LD_E_NODEVICE)
        return salvage(p, st);
    if (st != LD_OK)
        return st;
    return write_landed(p, err);
}

extern "C" uint64_t ld_cuda_probe_pending(const ld_cuda_probe *p) { return p ? p->count : 0; }

extern "C" void ld_cuda_probe_destroy(ld_cuda_probe *p)
{
    if (!p)
        return;
    cudaFree(p->scratch);
    cudaFreeHost(p->h_out);
    cudaFreeHost(p->arena);
    (void)cudaGetLastError(); /* after a sticky error these fail; nothing more to do about it */
    free(p->slots);
    free(p);
}

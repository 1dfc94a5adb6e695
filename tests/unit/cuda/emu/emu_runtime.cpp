/* emu_runtime.cpp — EMULATION ONLY: the fake CUDA runtime and cuBLAS behind include/, and the
 * device helpers of emu_device.h. Everything runs on the CPU, in the host's thread, but late: work
 * enqueued on a stream waits in a queue (see "the device's progress"); "device memory" is host
 * memory, and mapped host memory is its own device pointer; cublasGemmEx is the column-major
 * definition, looped. Not a simulator of GPU timing, memory model or numerics beyond fp32: a way
 * to run the CUDA path's logic without a GPU. */
#include <barrier>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cublas_v2.h"
#include "cuda_fp16.h"
#include "emu_device.h"
#include "layerdiff/dtype.h"

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

/* ---- threads, barriers, shuffles ---- */
static thread_local std::barrier<> *t_block_bar;
static thread_local std::barrier<> *t_warp_bar;
static thread_local unsigned char (*t_warp_buf)[16];
static thread_local unsigned t_lane;
/* A grid's dynamic shared memory: a fresh allocation of exactly the launch's size, so that under
 * run.sh's LD_EMU_SAN=address a read one byte past it is reported, as memcheck does on a GPU. */
static std::unique_ptr<unsigned char[]> g_smem;

void *emu_dyn_smem() { return g_smem.get(); }
void __syncthreads() { t_block_bar->arrive_and_wait(); }
void __syncwarp(unsigned) { t_warp_bar->arrive_and_wait(); }
void emu_shfl(const void *in, void *out, size_t n, int o)
{
    memcpy(t_warp_buf[t_lane], in, n);
    t_warp_bar->arrive_and_wait();
    memcpy(out, t_warp_buf[t_lane ^ (unsigned)o], n);
    t_warp_bar->arrive_and_wait();
}

/* ---- late copies (poke.cu's ld_cuda_late_copy, emu_device.h) ----
 * Grids are numbered as they start. A late copy made by grid g lands when a thread of a later grid
 * reaches ld_grid_wait, or when the grid after g ends, or at a synchronization: so the kernel
 * behind it reads the old bytes until it waits, as a programmatic launch can on a GPU. */
static std::mutex g_late_mu;
struct late_copy {
    unsigned long grid;
    unsigned char *dst;
    std::vector<unsigned char> bytes;
};
static std::vector<late_copy> g_late;
static unsigned long g_grid_seq; /* the grid running now; set before its threads start */
void emu_late_copy(void *dst, const void *src, size_t n)
{
    std::lock_guard<std::mutex> lk(g_late_mu);
    const unsigned char *s = (const unsigned char *)src;
    g_late.push_back({g_grid_seq, (unsigned char *)dst, std::vector<unsigned char>(s, s + n)});
}
/* Lands the late copies made by grids before grid `before`. */
static void land_late(unsigned long before)
{
    std::lock_guard<std::mutex> lk(g_late_mu);
    for (size_t i = 0; i < g_late.size();)
        if (g_late[i].grid < before) {
            memcpy(g_late[i].dst, g_late[i].bytes.data(), g_late[i].bytes.size());
            g_late.erase(g_late.begin() + (std::ptrdiff_t)i);
        } else {
            i++;
        }
}
void emu_grid_wait() { land_late(g_grid_seq); }

/* The emulation's switches: NAME=1 turns one on. */
static bool switch_on(const char *name)
{
    const char *v = getenv(name);
    return v && !strcmp(v, "1");
}

/* ---- counting: LD_EMU_COUNT=1 prints, at exit, how many kernels and cuBLAS GEMMs ran (what a
 * profiler such as ncu counts as launches, but for the kernels cuBLAS runs inside a GEMM), and,
 * once cudaProfilerStart was called, how many of them were launched inside the profiler's range
 * (what `ncu --profile-from-start off` profiles: the range as it was when the host enqueued the
 * work, for a graph when it launched it) ---- */
static unsigned long g_n_gemm;
static bool g_range_used, g_range_on;  /* the host's view: cudaProfilerStart/Stop */
static bool g_in_range;                /* the work running now was enqueued inside the range */
static unsigned long g_range_grids, g_range_gemms;
static struct launch_count {
    ~launch_count()
    {
        if (!switch_on("LD_EMU_COUNT"))
            return;
        fprintf(stderr, "emu: %lu kernels and %lu cuBLAS GEMMs ran\n", g_grid_seq, g_n_gemm);
        if (g_range_used)
            fprintf(stderr, "emu: %lu kernels and %lu cuBLAS GEMMs in the profiler's range\n",
                    g_range_grids, g_range_gemms);
    }
} g_launch_count;

void emu_run_grid(dim3 grid, dim3 block, size_t smem, std::function<void()> body)
{
    unsigned long me = ++g_grid_seq;
    g_range_grids += g_in_range;
    unsigned nt = block.x * block.y * block.z;
    gridDim = grid;
    blockDim = block;
    g_smem.reset(new unsigned char[smem]);
    memset(g_smem.get(), 0xCD, smem); /* garbage, as uninitialized shared memory */
    std::barrier<> bar(nt);
    unsigned nw = (nt + 31) / 32;
    std::vector<std::unique_ptr<std::barrier<>>> wbar;
    for (unsigned w = 0; w < nw; w++)
        wbar.emplace_back(new std::barrier<>((std::ptrdiff_t)std::min(32u, nt - 32 * w)));
    std::vector<unsigned char> wbuf(nw * 32 * 16);
    std::vector<std::thread> th;
    for (unsigned t = 0; t < nt; t++) {
        th.emplace_back([&, t]() {
            threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            t_block_bar = &bar;
            t_warp_bar = wbar[t / 32].get();
            t_warp_buf = (unsigned char(*)[16])(wbuf.data() + (t / 32) * 32 * 16);
            t_lane = t % 32;
            for (unsigned z = 0; z < grid.z; z++)
                for (unsigned y = 0; y < grid.y; y++)
                    for (unsigned x = 0; x < grid.x; x++) {
                        blockIdx = dim3(x, y, z);
                        body();
                        bar.arrive_and_wait();
                    }
        });
    }
    for (auto &x : th) x.join();
    land_late(me); /* a late copy made by the grid before this one, if nothing waited for it */
}

/* ---- streams, capture ---- */
struct CUstream_st {
    bool capturing = false, invalidated = false;
    bool graph_pdl = false; /* the capture holds a programmatic launch */
    std::vector<std::function<void()>> graph;
};
struct CUgraph_st { std::vector<std::function<void()>> ops; bool pdl; };
struct CUgraphExec_st { std::vector<std::function<void()>> ops; bool pdl; };
struct CUevent_st { int dummy; };
static CUstream_st g_default;
static bool g_sticky = false;
void emu_set_sticky() { g_sticky = true; }
#define STICKY if (g_sticky) return cudaErrorIllegalAddress
static CUstream_st *S(cudaStream_t s) { return s ? s : &g_default; }

/* ---- the device's progress ----
 * Work enqueued on a stream that is not capturing waits in one queue (all streams in the order of
 * their enqueues: one legal order of the real device's). After each enqueue a random number of the
 * oldest operations run (the device is behind the host by a random amount), a query that finds
 * work left runs a random number more, and every call that waits for the device (a synchronize,
 * a query that reports completion, synchronous copies, sets and frees) runs them all. So host code
 * that reads results without waiting (mapped memory, pinned buffers) finds them sometimes there,
 * sometimes not yet, as on a GPU. Once an operation sets the sticky error, the rest are dropped.
 * With LD_EMU_LAZY=1 nothing runs at an enqueue. */
static std::deque<std::function<void()>> g_queue;
static void run_some(size_t n)
{
    for (; n > 0 && !g_queue.empty(); n--) {
        std::function<void()> f = std::move(g_queue.front());
        g_queue.pop_front();
        if (!g_sticky) f();
    }
}
static void run_all() { run_some(SIZE_MAX); }
static size_t some() { return (size_t)rand() % (g_queue.size() + 1); }
/* LD_EMU_LAZY=1: nothing runs at an enqueue, only at queries and waits (a device far behind the
 * host, as a GPU is in a probed run). */
static bool lazy()
{
    static const bool on = switch_on("LD_EMU_LAZY");
    return on;
}
void emu_enqueue(cudaStream_t s, std::function<void()> f)
{
    if (g_sticky) return;
    if (S(s)->capturing) { S(s)->graph.push_back(f); return; }
    if (g_range_on)
        f = [g = std::move(f)]() { g_in_range = true; g(); g_in_range = false; };
    g_queue.push_back(std::move(f));
    run_some(lazy() ? 0 : some());
}

extern "C" {
cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int)
{
    snprintf(p->name, sizeof p->name, "CPU emulator");
    p->major = 9, p->minor = 0, p->totalGlobalMem = (size_t)16 << 30;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int *v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaRuntimeGetVersion(int *v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaGetLastError(void) { STICKY; return cudaSuccess; }
cudaError_t cudaGetDevice(int *dev) { *dev = 0; return cudaSuccess; }
cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr a, int)
{
    *v = a == cudaDevAttrComputeCapabilityMajor ? 9 : 0;
    return cudaSuccess;
}
cudaError_t cudaPeekAtLastError(void) { STICKY; return cudaSuccess; }
const char *cudaGetErrorString(cudaError_t) { return "emulated error"; }
const char *cudaGetErrorName(cudaError_t) { return "cudaErrorEmulated"; }
/* 256-byte aligned as cudaMalloc's, and exactly n bytes long (no slack after), so that under
 * LD_EMU_SAN=address an access past the end is reported, as memcheck does on a GPU. */
cudaError_t cudaMalloc(void **p, size_t n)
{
    if (posix_memalign(p, 256, n ? n : 1)) return *p = nullptr, cudaErrorMemoryAllocation;
    memset(*p, 0xFF, n);
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) { run_all(); free(p); return cudaSuccess; }
cudaError_t cudaMallocHost(void **p, size_t n) { return cudaMalloc(p, n); }
cudaError_t cudaFreeHost(void *p) { run_all(); free(p); return cudaSuccess; }
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned) { return cudaMalloc(p, n); }
cudaError_t cudaHostGetDevicePointer(void **d, void *h, unsigned) { *d = h; return cudaSuccess; }
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, enum cudaMemcpyKind)
{
    run_all(); STICKY; memmove(d, s, n); return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, enum cudaMemcpyKind, cudaStream_t st)
{
    STICKY;
    emu_enqueue(st, [=]() { memmove(d, s, n); });
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h,
                              enum cudaMemcpyKind, cudaStream_t st)
{
    if (w > dp || w > sp) return cudaErrorInvalidValue;
    emu_enqueue(st, [=]() {
        for (size_t r = 0; r < h; r++) memcpy((char *)d + r * dp, (const char *)s + r * sp, w);
    });
    return cudaSuccess;
}
cudaError_t cudaMemset(void *d, int v, size_t n)
{
    run_all(); STICKY; memset(d, v, n); return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st)
{
    emu_enqueue(st, [=]() { memset(d, v, n); });
    return cudaSuccess;
}
cudaError_t cudaMemset2DAsync(void *d, size_t pitch, int v, size_t w, size_t h, cudaStream_t st)
{
    if (w > pitch) return cudaErrorInvalidValue;
    emu_enqueue(st, [=]() { for (size_t r = 0; r < h; r++) memset((char *)d + r * pitch, v, w); });
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void)
{
    run_all(); land_late(ULONG_MAX); STICKY; return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { *s = new CUstream_st; return cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s) { run_all(); delete s; return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    if (S(s)->capturing) return cudaErrorStreamCaptureUnsupported;
    run_all(); land_late(ULONG_MAX); STICKY; return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t s)
{
    if (S(s)->capturing) return cudaErrorStreamCaptureUnsupported;
    run_some(some()); STICKY; return g_queue.empty() ? cudaSuccess : cudaErrorNotReady;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { *e = new CUevent_st; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
/* Events are not tracked: a query says "not yet" now and then, and "done" after running all. */
cudaError_t cudaEventQuery(cudaEvent_t)
{
    STICKY;
    if (rand() % 3 == 0) return cudaErrorNotReady;
    run_all(); STICKY; return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { run_all(); STICKY; return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode)
{
    if (!s) return cudaErrorStreamCaptureUnsupported;
    S(s)->capturing = true; S(s)->invalidated = S(s)->graph_pdl = false; S(s)->graph.clear();
    return cudaSuccess;
}
/* LD_EMU_NO_PDL_GRAPH: a driver that takes programmatic launches on a stream but not in graphs.
 * =capture refuses them while capturing: such a launch fails and invalidates the capture, as any
 * failed launch does. =launch captures and instantiates such a graph, and refuses to launch it
 * (cudaErrorNotSupported, not sticky; nothing of the graph runs). */
enum refusal { REFUSE_NONE, REFUSE_CAPTURE, REFUSE_LAUNCH };
static refusal pdl_graph_refusal()
{
    static const refusal r = [] {
        const char *v = getenv("LD_EMU_NO_PDL_GRAPH");
        if (!v || !*v) return REFUSE_NONE;
        if (!strcmp(v, "capture")) return REFUSE_CAPTURE;
        if (!strcmp(v, "launch")) return REFUSE_LAUNCH;
        fprintf(stderr, "emu: LD_EMU_NO_PDL_GRAPH is '%s': it must be capture or launch\n", v);
        exit(2);
    }();
    return r;
}
cudaError_t emu_launch_refused(const cudaLaunchConfig_t *c)
{
    CUstream_st *st = S(c->stream);
    if (st->invalidated) return cudaErrorStreamCaptureInvalidated;
    bool pdl = false;
    for (unsigned i = 0; i < c->numAttrs; i++)
        pdl |= c->attrs[i].id == cudaLaunchAttributeProgrammaticStreamSerialization &&
               c->attrs[i].val.programmaticStreamSerializationAllowed;
    if (pdl && st->capturing && pdl_graph_refusal() == REFUSE_CAPTURE) {
        st->invalidated = true;
        return cudaErrorStreamCaptureUnsupported;
    }
    st->graph_pdl |= pdl && st->capturing;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g)
{
    if (S(s)->invalidated) {
        *g = nullptr; S(s)->capturing = S(s)->invalidated = false; S(s)->graph.clear();
        return cudaErrorStreamCaptureInvalidated;
    }
    *g = new CUgraph_st{S(s)->graph, S(s)->graph_pdl};
    S(s)->capturing = false; S(s)->graph.clear();
    fprintf(stderr, "emu: captured a graph of %zu operations\n", (*g)->ops.size());
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long)
{
    *e = new CUgraphExec_st{g->ops, g->pdl};
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s)
{
    STICKY;
    if (e->pdl && pdl_graph_refusal() == REFUSE_LAUNCH) return cudaErrorNotSupported;
    emu_enqueue(s, [=]() { for (auto &f : e->ops) f(); });
    return cudaSuccess;
}
cudaError_t cudaProfilerStart(void)
{
    STICKY; g_range_used = g_range_on = true; return cudaSuccess;
}
cudaError_t cudaProfilerStop(void) { STICKY; g_range_on = false; return cudaSuccess; }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return cudaSuccess; }
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }

/* ---- cuBLAS ---- */
struct cublasContext { cudaStream_t stream = nullptr; void *ws = nullptr; };
cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = new cublasContext; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) { h->stream = s; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasGetStream(cublasHandle_t h, cudaStream_t *s) { *s = h->stream; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t m) { return m == (CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE; }
cublasStatus_t cublasSetPointerMode(cublasHandle_t, cublasPointerMode_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *w, size_t) { h->ws = w; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasGetProperty(libraryPropertyType t, int *v) { *v = t == MAJOR_VERSION ? 13 : 0; return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusName(cublasStatus_t) { return "CUBLAS_STATUS_EMULATED"; }
const char *cublasGetStatusString(cublasStatus_t) { return "emulated"; }

static float bf(const void *p, size_t i) { return ld_load_f32(p, LD_BF16, i); }

/* Column-major: C(i,j) at C[i + j*ldc]; op(A) is m x k, op(B) k x n. */
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType at,
                            int lda, const void *B, cudaDataType bt, int ldb, const void *beta,
                            void *C, cudaDataType ct, int ldc, cublasComputeType_t comp,
                            cublasGemmAlgo_t)
{
    if (at != CUDA_R_16BF || bt != CUDA_R_16BF || ct != CUDA_R_16BF || comp != CUBLAS_COMPUTE_32F)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (lda < (ta == CUBLAS_OP_N ? m : k) || ldb < (tb == CUBLAS_OP_N ? k : n) || ldc < m)
        return CUBLAS_STATUS_INVALID_VALUE;
    float a = *(const float *)alpha, b = *(const float *)beta;
    emu_enqueue(h->stream, [=]() {
        g_n_gemm++;
        g_range_gemms += g_in_range;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float s = 0;
                for (int l = 0; l < k; l++) {
                    float av = ta == CUBLAS_OP_N ? bf(A, i + (size_t)l * lda) : bf(A, l + (size_t)i * lda);
                    float bv = tb == CUBLAS_OP_N ? bf(B, l + (size_t)j * ldb) : bf(B, j + (size_t)l * ldb);
                    s += av * bv;
                }
                size_t ci = i + (size_t)j * ldc;
                float old = b != 0 ? bf(C, ci) : 0.0f;
                uint16_t r = ld_f32_to_bf16(a * s + b * old);
                memcpy((char *)C + 2 * ci, &r, 2);
            }
    });
    return CUBLAS_STATUS_SUCCESS;
}
}

float __half2float(__half h) { return ld_f16_to_f32(h.x); }

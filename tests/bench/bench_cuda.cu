/* bench_cuda.cu — speed of the CUDA path on the qwen3-0.6b preset (bf16 checkpoint, batch 1):
 * decode ms/token on the stream and replayed from a CUDA graph (also with every residual add +
 * RMSNorm in its own kernel, the ratio measured in the same run), prefill of 512 tokens in tokens/s
 * (also with attention one block per query instead of tiled, the ratio from the same run), decode
 * with every kernel waiting for the one before it to finish (no programmatic dependent launch),
 * and the probe overhead (stats only, full payload) against the same run without probes. Prints
 * device, driver, CUDA runtime and cuBLAS versions. Host code only (compiled by nvcc because it is
 * built beside the CUDA library); not a test: it prints figures and never fails on them. Exits 77
 * without a GPU. The checkpoint is generated once into $LD_BENCH_CACHE (default /tmp).
 *
 *   bench_cuda [--decode N] [--prefill T] [--repeat N] [--preset NAME]
 * (--preset tiny or small: a quick smoke run of the same code; the figures mean nothing there.
 * LAYERDIFF_CUDA_PDL=0: every run without programmatic launches, as the header line then says.)
 */
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/stat.h>

#include "cuda_backend.h"
#include "gemv.cuh"
extern "C" {
#include "gen.h"
#include "util.h"
#include "bench_cpu.h"
}

static void die(const char *what, const ld_error *err)
{
    fprintf(stderr, "bench_cuda: %s: %s\n", what, err->msg);
    exit(1);
}

/* The checkpoint of a preset, generated on first use. */
static std::string checkpoint(const char *preset)
{
    const char *cache = getenv("LD_BENCH_CACHE");
    std::string dir =
        std::string(cache && *cache ? cache : "/tmp") + "/" + preset + "-bf16-seed1";
    struct stat st;
    if (stat((dir + "/config.json").c_str(), &st) == 0)
        return dir;
    fprintf(stderr, "bench_cuda: generating %s (once)\n", dir.c_str());
    ld_gen_options opt;
    memset(&opt, 0, sizeof opt);
    opt.preset = preset;
    opt.seed = 1;
    opt.dtype = LD_BF16;
    opt.tied = -1;
    opt.shards = 1;
    ld_error err;
    if (ld_gen_model(dir.c_str(), &opt, &err) != LD_OK)
        die("gen-model", &err);
    return dir;
}

struct run_result {
    double prefill_s, decode_s;
    bool graph;
    bool pdl; /* the decode steps' kernels were launched programmatically (ld_cuda_timing) */
};

/* The paths switched off for a comparison in the same run (ld_cuda_run_options). */
struct paths_off {
    bool fuse_norm;  /* LAYERDIFF_CUDA_FUSE_NORM=0 */
    bool tiled_attn; /* LAYERDIFF_CUDA_TILED_ATTN=0 */
    bool pdl;        /* LAYERDIFF_CUDA_PDL=0 */
};

/* LAYERDIFF_CUDA_PDL=0 in the environment: every run without programmatic launches. */
static bool g_no_pdl = false;

/* One generate call on the session; sink may be NULL. */
static run_result run_once(ld_cuda_session *s, size_t n_prompt, int decode, bool no_graph,
                           ld_sink *sink, int vocab, paths_off off = {})
{
    int32_t *prompt = (int32_t *)malloc(n_prompt * sizeof *prompt);
    int32_t *tokens = (int32_t *)malloc(((size_t)decode + 1) * sizeof *tokens);
    int32_t *decoded = (int32_t *)malloc(((size_t)decode + 1) * sizeof *decoded);
    for (size_t i = 0; i < n_prompt; i++)
        prompt[i] = (int32_t)((i * 7919 + 13) % (size_t)vocab);
    ld_cuda_run_options ro;
    memset(&ro, 0, sizeof ro);
    ro.sink = sink;
    ro.no_graph = no_graph;
    ro.no_fuse_norm = off.fuse_norm;
    ro.no_tiled_attn = off.tiled_attn;
    ro.no_pdl = off.pdl || g_no_pdl;
    ld_cuda_timing t;
    ld_error err;
    if (ld_cuda_session_generate(s, prompt, n_prompt, decode, &ro, tokens, decoded, &t, &err) !=
        LD_OK)
        die("generate", &err);
    free(prompt);
    free(tokens);
    free(decoded);
    run_result r = {t.prefill_s, t.decode_s, t.graph, t.pdl};
    return r;
}

/* The fastest of repeat runs (after one warm-up). */
static run_result best_of(int repeat, ld_cuda_session *s, size_t n_prompt, int decode,
                          bool no_graph, int vocab, paths_off off = {})
{
    run_once(s, n_prompt, decode, no_graph, NULL, vocab, off);
    run_result best = {INFINITY, INFINITY, false, false};
    for (int i = 0; i < repeat; i++) {
        run_result r = run_once(s, n_prompt, decode, no_graph, NULL, vocab, off);
        best.prefill_s = fmin(best.prefill_s, r.prefill_s);
        best.decode_s = fmin(best.decode_s, r.decode_s);
        best.graph = r.graph;
        best.pdl = r.pdl;
    }
    return best;
}

/* Seconds of a whole probed run (prefill + decode) writing to path; *n gets the records written. */
static double probed_run(ld_cuda_session *s, size_t n_prompt, int decode, ld_payload payload,
                         const char *path, int vocab, uint64_t *n)
{
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = payload;
    ld_run_info info;
    memset(&info, 0, sizeof info);
    info.implementation = "bench_cuda";
    ld_sink *sink;
    ld_error err;
    if (ld_sink_open(&sink, path, &cfg, &info, &err) != LD_OK)
        die("sink", &err);
    double t0 = ld_seconds();
    run_once(s, n_prompt, decode, true, sink, vocab);
    double t = ld_seconds() - t0;
    *n = ld_sink_probe_count(sink);
    if (ld_sink_close(sink, NULL, &err) != LD_OK)
        die("sink close", &err);
    return t;
}

int main(int argc, char **argv)
{
    /* A line at a time, also into a file: when a limit ends the run (scripts/gpu_check.sh), the
     * figures measured before it are kept. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    int decode = 128, prefill = 512, repeat = 3;
    const char *preset = "qwen3-0.6b";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--decode"))
            decode = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prefill"))
            prefill = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat"))
            repeat = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--preset"))
            preset = argv[i + 1];
    }
    if (decode < 1 || prefill < 1 || repeat < 1) {
        fprintf(stderr,
                "usage: bench_cuda [--decode N] [--prefill T] [--repeat N] [--preset NAME]\n");
        return 2;
    }
    ld_cuda_device_info di;
    ld_error err;
    if (ld_cuda_device_info_get(&di, &err) != LD_OK) {
        printf("bench_cuda: skipped: %s\n", err.msg);
        return 77;
    }
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("CPU: %s\n", cpu);
    printf("device: %s (sm_%d%d, %.1f GiB), driver %d.%d, CUDA runtime %d.%d, cuBLAS %d.%d.%d\n",
           di.name, di.sm_major, di.sm_minor, di.mem_gib, di.driver / 1000,
           (di.driver % 1000) / 10, di.runtime / 1000, (di.runtime % 1000) / 10, di.cublas_major,
           di.cublas_minor, di.cublas_patch);

    std::string dir = checkpoint(preset);
    ld_model *m;
    if (ld_model_open(&m, dir.c_str(), &err) != LD_OK)
        die("open", &err);
    ld_cuda_session *s;
    double t0 = ld_seconds();
    if (ld_cuda_session_create(&s, m, NULL, &err) != LD_OK)
        die("session", &err);
    int V = m->cfg.vocab_size;
    printf("model: %s preset, bf16, batch 1; weights uploaded in %.2f s\n", preset,
           ld_seconds() - t0);
    printf("kernels: matmuls of up to %d rows (decode) decode_gemv_kernel, gate/up with the "
           "activation decode_gemv_glu_kernel, one token's q/k/v and gate/up with their residual "
           "add + RMSNorm decode_norm_gemv_kernel; more rows (prefill) cublasGemmEx; prefill "
           "attention attention_tile_kernel (16 queries of a head per block)\n",
           LD_GEMV_MAX_T);

    /* Whether the kernels can be launched programmatically here (sm_90 device and kernels). */
    const char *pdl_env = getenv("LAYERDIFF_CUDA_PDL");
    g_no_pdl = pdl_env && !strcmp(pdl_env, "0");
    bool pdl = ld_cuda_set_pdl(true);
    ld_cuda_set_pdl(false);
    printf("programmatic dependent launch: %s\n",
           g_no_pdl ? "off (LAYERDIFF_CUDA_PDL=0): every figure is without it"
           : pdl    ? "on (a kernel's blocks start while the one before finishes)"
                    : "not available (device or kernels below sm_90): every figure is without it");
    pdl = pdl && !g_no_pdl;

    /* Decode: a 16-token prompt, then the steps; the prefill is not counted. */
    run_result stream = best_of(repeat, s, 16, decode, true, V);
    printf("decode, stream:     %.3f ms/token (%d steps, best of %d)\n",
           1e3 * stream.decode_s / decode, decode, repeat);
    run_result graph = best_of(repeat, s, 16, decode, false, V);
    printf("decode, CUDA graph: %.3f ms/token%s\n", 1e3 * graph.decode_s / decode,
           !graph.graph ? " (graph NOT used)"
           : pdl && !graph.pdl
               ? " (captured WITHOUT programmatic launches: the driver refused them in the graph)"
               : "");
    /* The same, every residual add + norm in its own kernel (LAYERDIFF_CUDA_FUSE_NORM=0). */
    run_result unfused = best_of(repeat, s, 16, decode, false, V, paths_off{true, false, false});
    printf("decode, CUDA graph, norms not fused: %.3f ms/token (fused / not fused %.3f)\n",
           1e3 * unfused.decode_s / decode, graph.decode_s / unfused.decode_s);
    /* The same, each kernel starting only after the one before it ended (LAYERDIFF_CUDA_PDL=0). */
    if (pdl) {
        paths_off nopdl = {false, false, true};
        run_result sn = best_of(repeat, s, 16, decode, true, V, nopdl);
        run_result gn = best_of(repeat, s, 16, decode, false, V, nopdl);
        printf("decode without programmatic launch: stream %.3f ms/token (with / without %.3f), "
               "CUDA graph %.3f ms/token (with / without %.3f)\n",
               1e3 * sn.decode_s / decode, stream.decode_s / sn.decode_s,
               1e3 * gn.decode_s / decode, graph.decode_s / gn.decode_s);
    }

    run_result pf = best_of(repeat, s, (size_t)prefill, 0, true, V);
    printf("prefill %d tokens:  %.2f ms, %.0f tokens/s\n", prefill, 1e3 * pf.prefill_s,
           prefill / pf.prefill_s);
    /* The same, attention one block per query (LAYERDIFF_CUDA_TILED_ATTN=0). */
    run_result pq = best_of(repeat, s, (size_t)prefill, 0, true, V, paths_off{false, true, false});
    printf("prefill %d tokens, attention one block per query: %.2f ms (tiled / per query "
           "%.3f)\n",
           prefill, 1e3 * pq.prefill_s, pf.prefill_s / pq.prefill_s);

    /* Probe overhead on a 64-token prompt and 32 decode steps, against the same run on the
     * stream without probes. Every tag of every layer and step is probed. */
    const char *cache = getenv("LD_BENCH_CACHE");
    std::string path = std::string(cache && *cache ? cache : "/tmp") + "/bench_cuda_probes.jsonl";
    run_result base = best_of(repeat, s, 64, 32, true, V);
    double base_s = base.prefill_s + base.decode_s;
    double stats_s = INFINITY, full_s = INFINITY;
    uint64_t n_probes = 0;
    for (int i = 0; i < repeat; i++) {
        stats_s = fmin(stats_s, probed_run(s, 64, 32, LD_PAYLOAD_STATS, path.c_str(), V,
                                           &n_probes));
        full_s = fmin(full_s, probed_run(s, 64, 32, LD_PAYLOAD_FULL, path.c_str(), V,
                                         &n_probes));
    }
    struct stat st;
    double mb = stat(path.c_str(), &st) == 0 ? (double)st.st_size / 1e6 : 0.0;
    printf("probes (64-token prompt + 32 steps, every tag): none %.1f ms, stats %.1f ms (%.2fx), "
           "full %.1f ms (%.2fx, %.0f MB written)\n",
           1e3 * base_s, 1e3 * stats_s, stats_s / base_s, 1e3 * full_s, full_s / base_s, mb);
    if (n_probes > 0) /* what each probe adds to the run, on average */
        printf("probes: %llu records per run; added per probe: stats %.2f us, full %.2f us\n",
               (unsigned long long)n_probes, 1e6 * (stats_s - base_s) / (double)n_probes,
               1e6 * (full_s - base_s) / (double)n_probes);
    remove(path.c_str());
    ld_cuda_session_destroy(s);
    ld_model_close(m);
    return 0;
}

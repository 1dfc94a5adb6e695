/* bench_reference.c — speed and memory of the fp32 CPU reference on the qwen3-0.6b preset (bf16):
 * decode tokens/s, 128-token prefill time, the matmul's GFLOP/s beside OpenBLAS sgemm on the same
 * shapes in the same run, peak RSS against checkpoint + KV cache, and the cost of probes (stats-only
 * and full payloads) against a probe-free run. Prints figures; never fails on them.
 * bench_reference --time prefill|decode|anchor DIR makes one measurement for bench_vs_torch.py
 * (the kernel paths against PyTorch and the llama2.c-style anchor, in interleaved rounds);
 * bench_reference --paths lists the kernel paths and whether this CPU runs them. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef LD_HAVE_OPENBLAS
#include <cblas.h>
/* OpenBLAS's config header includes <complex.h>, whose macro I (the imaginary unit) would rename
 * every struct field called I (the intermediate size) below; nothing here uses complex numbers. */
#undef I
#endif

#include "anchor.h"
#include "bench_common.h"
#include "model.h"
#include "ops.h"
#include "run.h"

typedef struct timing {
    double t_step1; /* when decode step 1 began */
} timing;

static void on_progress(void *ctx, int step, int n_steps, int layer, int n_layers)
{
    (void)n_steps, (void)n_layers;
    timing *t = ctx;
    if (step == 1 && layer == 0 && t->t_step1 == 0)
        t->t_step1 = ld_seconds();
}

/* One run (ld_run, as 'layerdiff run' makes it): probes off when path is NULL, else written to
 * path with sc. Returns wall seconds, *decode_s the part spent in decode steps. */
static double run_once(const ld_model *m, size_t n_prompt, int decode, const char *path,
                       const ld_sink_config *sc, double *decode_s)
{
    int32_t *prompt = malloc(n_prompt * sizeof *prompt);
    for (size_t i = 0; i < n_prompt; i++)
        prompt[i] = (int32_t)((i * 7919 + 13) % (size_t)m->cfg.vocab_size);
    timing tm = {0};
    ld_run_options ro = {.model = m, .prompt = prompt, .n_prompt = n_prompt, .decode_steps = decode,
                         .implementation = "bench", .probes_path = path, .sink_config = sc,
                         .progress = on_progress, .progress_ctx = &tm};
    ld_run_result r;
    ld_error err = {0};
    double t0 = ld_seconds();
    ld_status st = ld_run(&ro, &r, &err);
    double t1 = ld_seconds();
    free(prompt);
    if (st != LD_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    ld_run_result_free(&r);
    if (decode_s)
        *decode_s = decode ? t1 - tm.t_step1 : 0;
    return t1 - t0;
}

static double best_of(int reps, const ld_model *m, size_t n_prompt, int decode,
                      double *decode_best)
{
    double best = INFINITY, dbest = INFINITY;
    for (int r = 0; r < reps; r++) {
        double d;
        double t = run_once(m, n_prompt, decode, NULL, NULL, &d);
        best = t < best ? t : best;
        dbest = d < dbest ? d : dbest;
    }
    if (decode_best)
        *decode_best = dbest;
    return best;
}

/* One prefill + decode run for the probe-overhead table: with a sink of this payload and tag
 * list, or probe-free when with_sink is false. Wall and CPU seconds out, and the MB written. */
typedef struct overhead_cfg {
    const char *name;
    bool with_sink;
    ld_payload payload;
    const char *tags;
    const char *goal;
    double wall, cpu, mb; /* best over the rounds */
} overhead_cfg;

static void overhead_run(const ld_model *m, overhead_cfg *o, size_t n_prompt, int decode)
{
    char path[] = "/tmp/layerdiff-bench-probes-XXXXXX";
    ld_sink_config sc;
    ld_sink_config_init(&sc);
    sc.payload = o->payload;
    sc.tags = o->tags;
    if (o->with_sink) {
        int fd = mkstemp(path);
        if (fd < 0)
            exit(1);
        close(fd);
    }
    double t0 = ld_seconds(), c0 = bench_cpu_seconds();
    run_once(m, n_prompt, decode, o->with_sink ? path : NULL, &sc, NULL);
    o->wall = LD_MIN(o->wall, ld_seconds() - t0);
    o->cpu = LD_MIN(o->cpu, bench_cpu_seconds() - c0);
    if (o->with_sink) {
        struct stat st;
        o->mb = stat(path, &st) == 0 ? (double)st.st_size / 1e6 : 0;
        unlink(path);
    }
}

static void matmul_vs_blas(const ld_model *m, size_t T)
{
    const ld_layer_weights *L = &m->layers[0];
    const struct {
        const char *name;
        const ld_tensor *w;
    } shapes[] = {{"q_proj", &L->wq}, {"k_proj", &L->wk}, {"o_proj", &L->wo},
                  {"gate_proj", &L->wg}, {"down_proj", &L->wd}, {"lm_head", &m->lm_head}};
    printf("\nmatmul, T=%zu tokens, %d threads (reference: double accumulation; sgemm: f32)\n", T,
           omp_get_max_threads());
    printf("  %-10s %14s %12s %12s %8s\n", "shape", "N x K", "ref GFLOP/s", "sgemm GFLOP/s", "ratio");
    double tot_ref = 0, tot_blas = 0, flops_all = 0;
    for (size_t i = 0; i < LD_ARRAY_LEN(shapes); i++) {
        const ld_tensor *w = shapes[i].w;
        size_t N = (size_t)w->shape[0], K = (size_t)w->shape[1];
        float *x = malloc(T * K * sizeof *x), *y = malloc(T * N * sizeof *y);
        for (size_t j = 0; j < T * K; j++)
            x[j] = (float)sin((double)j);
        double flops = 2.0 * (double)T * (double)N * (double)K;
        int reps = flops > 1e11 ? 1 : 3;
        double best = INFINITY;
        for (int r = 0; r < reps; r++) {
            double t0 = ld_seconds();
            ld_ref_matmul(x, w, T, y, &ld_numerics_reference, NULL);
            double t = ld_seconds() - t0;
            best = t < best ? t : best;
        }
        double ref = flops / best / 1e9;
        double blas = NAN;
#ifdef LD_HAVE_OPENBLAS
        float *wf = malloc(N * K * sizeof *wf);
        for (size_t j = 0; j < N * K; j++)
            wf[j] = ld_load_f32(w->data, w->dtype, j);
        double bbest = INFINITY;
        for (int r = 0; r < reps; r++) {
            double t0 = ld_seconds();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)N, (int)K, 1.0f, x,
                        (int)K, wf, (int)K, 0.0f, y, (int)N);
            double t = ld_seconds() - t0;
            bbest = t < bbest ? t : bbest;
        }
        blas = flops / bbest / 1e9;
        tot_blas += bbest;
        free(wf);
#endif
        tot_ref += best;
        flops_all += flops;
        printf("  %-10s %7zu x %-6zu %12.1f %12.1f %8.2f\n", shapes[i].name, N, K, ref, blas,
               ref / blas);
        free(x);
        free(y);
    }
    printf("  %-10s %14s %12.1f %12.1f %8.2f\n", "all", "", flops_all / tot_ref / 1e9,
           flops_all / tot_blas / 1e9, (flops_all / tot_ref) / (flops_all / tot_blas));
}

/* The child of the RSS measurement: open, prefill 128, decode 16, report peak RSS. */
static int rss_child(const char *dir)
{
    ld_model *m = NULL;
    ld_error err = {0};
    if (ld_model_open(&m, dir, &err) != LD_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    run_once(m, 128, 16, NULL, NULL, NULL);
    const ld_config *c = &m->cfg;
    size_t kv = 2 * (size_t)c->num_layers * (size_t)c->num_kv_heads * (size_t)c->head_dim *
                (128 + 16) * sizeof(float);
    double rss = bench_peak_rss_mib() * 1024 * 1024;
    double base = (double)m->checkpoint_bytes + (double)kv;
    printf("\npeak RSS, prefill 128 + 16 decode: %.1f MB = %.2f x (checkpoint + KV cache = %.1f MB)"
           " (goal <= 1.3)\n",
           rss / 1e6, rss / base, base / 1e6);
    ld_model_close(m);
    return 0;
}

/* calloc or exit: the anchor's buffers. */
static void *anchor_alloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) {
        fprintf(stderr, "bench: out of memory for the anchor's fp32 weights\n");
        exit(1);
    }
    return p;
}

/* An fp32 copy of a weight, for the anchor. */
static float *f32_copy(const ld_tensor *t)
{
    size_t n = t->numel;
    float *f = anchor_alloc(n, sizeof *f);
    for (size_t i = 0; i < n; i++)
        f[i] = ld_load_f32(t->data, t->dtype, i);
    return f;
}

/* Tokens/s of the llama2.c-style anchor over `steps` decode steps, built for the ISA level of the
 * reference's kernel path (x86-64: avx512 → v4, avx2 → v3, other → baseline). */
static double anchor_tokens_per_s(const ld_model *m, const char *path, int steps,
                                  const char **level)
{
    void (*step)(const anchor_model *, anchor_state *) = anchor_step_base;
    *level = "baseline";
#if defined(__x86_64__)
    if (!strcmp(path, "avx512"))
        step = anchor_step_v4, *level = "x86-64-v4";
    else if (!strcmp(path, "avx2"))
        step = anchor_step_v3, *level = "x86-64-v3";
#else
    (void)path;
#endif
    const ld_config *c = &m->cfg;
    anchor_model am = {.L = (size_t)c->num_layers, .H = (size_t)c->hidden_size,
                       .Q = (size_t)c->num_heads * (size_t)c->head_dim,
                       .KV = (size_t)c->num_kv_heads * (size_t)c->head_dim,
                       .I = (size_t)c->intermediate_size, .V = (size_t)c->vocab_size};
    am.layers = anchor_alloc(am.L, sizeof *am.layers);
    for (size_t l = 0; l < am.L; l++) {
        const ld_layer_weights *w = &m->layers[l];
        am.layers[l] = (anchor_layer){
            f32_copy(&w->attn_norm), f32_copy(&w->wq), f32_copy(&w->wk),
            f32_copy(&w->wv),        f32_copy(&w->wo), f32_copy(&w->mlp_norm),
            f32_copy(&w->wg),        f32_copy(&w->wu), f32_copy(&w->wd)};
    }
    am.final_norm = f32_copy(&m->final_norm);
    am.lm_head = f32_copy(&m->lm_head);
    size_t widest = am.H > am.Q ? am.H : am.Q;
    widest = widest > am.I ? widest : am.I;
    anchor_state st;
    float **bufs[] = {&st.x, &st.xb, &st.xb2, &st.q, &st.k, &st.v, &st.hb, &st.hb2};
    for (size_t i = 0; i < LD_ARRAY_LEN(bufs); i++)
        *bufs[i] = anchor_alloc(widest, sizeof(float));
    st.logits = anchor_alloc(am.V, sizeof(float));
    for (size_t i = 0; i < am.H; i++)
        st.x[i] = (float)sin((double)i) * 0.1f;
    step(&am, &st); /* warm: the fp32 copies are in memory, the threads started */
    double t0 = ld_seconds();
    for (int i = 0; i < steps; i++) {
        step(&am, &st);
        for (size_t j = 0; j < am.H; j++) /* the next token's input, as a decode loop would */
            st.x[j] = st.logits[j % am.V] * 1e-3f + (float)j * 1e-6f;
    }
    double dt = ld_seconds() - t0;
    for (size_t l = 0; l < am.L; l++) {
        anchor_layer *a = &am.layers[l];
        float *all[] = {a->attn_norm, a->wq, a->wk, a->wv, a->wo, a->mlp_norm, a->wg, a->wu, a->wd};
        for (size_t i = 0; i < LD_ARRAY_LEN(all); i++)
            free(all[i]);
    }
    free(am.layers);
    free(am.final_norm);
    free(am.lm_head);
    for (size_t i = 0; i < LD_ARRAY_LEN(bufs); i++)
        free(*bufs[i]);
    free(st.logits);
    return steps / dt;
}

/* bench_reference --time prefill|decode|anchor DIR: one figure on one line, on the kernel path
 * LD_REF_KERNEL chooses. prefill: seconds for 128 tokens; decode: tokens/s over 32 steps after a
 * 1-token prompt; anchor: tokens/s of the llama2.c-style loop over 16 steps. */
static int time_child(const char *what, const char *dir)
{
    ld_error err = {0};
    if (ld_ref_kernel_ready(&err) != LD_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 2;
    }
    const char *path = ld_ref_kernel_path();
    ld_model *m = NULL;
    if (ld_model_open(&m, dir, &err) != LD_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    if (!strcmp(what, "prefill")) {
        run_once(m, 1, 1, NULL, NULL, NULL); /* warm: every weight page mapped */
        printf("prefill_s %.4f path %s\n", run_once(m, 128, 0, NULL, NULL, NULL), path);
    } else if (!strcmp(what, "decode")) {
        double dec;
        run_once(m, 1, 1, NULL, NULL, NULL);
        run_once(m, 1, 32, NULL, NULL, &dec);
        printf("decode_tok_s %.4f path %s\n", 32 / dec, path);
    } else if (!strcmp(what, "anchor")) {
        const char *level;
        double tps = anchor_tokens_per_s(m, path, 16, &level);
        printf("anchor_tok_s %.4f level %s\n", tps, level);
    } else {
        fprintf(stderr, "bench: --time %s: use prefill, decode or anchor\n", what);
        rc = 2;
    }
    ld_model_close(m);
    return rc;
}

int main(int argc, char **argv)
{
    char dir[4096];
    if (argc > 2 && !strcmp(argv[1], "--rss-child"))
        return rss_child(argv[2]);
    if (argc > 1 && !strcmp(argv[1], "--paths")) { /* the kernel paths: name and usable or not */
        bool usable;
        for (size_t i = 0; i < ld_ref_kernel_count(); i++) {
            const char *name = ld_ref_kernel_name(i, &usable);
            printf("%s %s\n", name, usable ? "usable" : "unusable");
        }
        return 0;
    }
    if (argc > 3 && !strcmp(argv[1], "--time"))
        return time_child(argv[2], argv[3]);
    if (argc > 1)
        snprintf(dir, sizeof dir, "%s", argv[1]);
    else if (bench_model_dir("qwen3-0.6b", dir, sizeof dir) != 0)
        return 1;
    ld_model *m = NULL;
    ld_error err = {0};
    double t0 = ld_seconds();
    if (ld_model_open(&m, dir, &err) != LD_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("bench_reference: %s (%.1f MB checkpoint), opened in %.2f s, %d threads\n", dir,
           (double)m->checkpoint_bytes / 1e6, ld_seconds() - t0, omp_get_max_threads());
    printf("CPU: %s; kernel path: %s (LD_REF_KERNEL forces one)\n", cpu,
           ld_ref_kernel_path() ? ld_ref_kernel_path() : "none: LD_REF_KERNEL is invalid");

    /* Warm the page cache and the mapping once. */
    run_once(m, 4, 1, NULL, NULL, NULL);

    double dec;
    best_of(2, m, 1, 16, &dec);
    printf("\ndecode, probes off: %.2f tokens/s (%.1f ms/token; goal >= 8, stretch >= 12)\n",
           16.0 / dec, dec / 16.0 * 1e3);
    double pre = best_of(2, m, 128, 0, NULL);
    double flops = 0;
    const ld_config *c = &m->cfg;
    double per_tok = (double)c->num_layers *
                         ((double)c->hidden_size * c->head_dim * (2.0 * c->num_heads + 2.0 * c->num_kv_heads) +
                          3.0 * c->hidden_size * c->intermediate_size) +
                     (double)c->hidden_size * c->vocab_size;
    /* Without probes the prefill computes the logits of its last row only. */
    flops = 2.0 * (per_tok * 128 - 127.0 * (double)c->hidden_size * (double)c->vocab_size);
    printf("prefill of 128 tokens, probes off: %.2f s (goal <= 3 s), %.1f GFLOP/s overall\n", pre,
           flops / pre / 1e9);

    matmul_vs_blas(m, 128);

    /* Peak RSS of the forward alone, in a fresh process (this one also held the sgemm copies, and
     * an OpenMP process must not fork without exec). */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "/proc/%d/exe --rss-child '%s'", (int)getpid(), dir);
    fflush(stdout);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: the RSS child failed\n");

    /* Probe overhead, on the same run (prefill 128 + 8 decode). The configurations run in
     * interleaved rounds and each keeps its fastest round, so a slow spell on a shared machine
     * falls on all of them alike instead of on whichever ran during it. CPU time is printed too:
     * it leaves out time the host steals; with more than one thread it also counts OpenMP's
     * waiting, so read it with OMP_NUM_THREADS=1. */
    static const char no_logits[] = "embed,attn_norm,q_proj,k_proj,v_proj,q_norm,k_norm,q_rope,"
                                    "k_rope,attn_out,o_proj,attn_residual,mlp_norm,gate_proj,"
                                    "up_proj,mlp_act,down_proj,layer_out,final_norm";
    overhead_cfg cfgs[] = {
        {"probe-free", false, LD_PAYLOAD_STATS, NULL, "", INFINITY, INFINITY, 0},
        {"stats only", true, LD_PAYLOAD_STATS, NULL, "(goal <= 1.1)", INFINITY, INFINITY, 0},
        {"stats, without logits", true, LD_PAYLOAD_STATS, no_logits, "", INFINITY, INFINITY, 0},
        {"full payload", true, LD_PAYLOAD_FULL, NULL, "(goal <= 1.5)", INFINITY, INFINITY, 0},
        {"full, without logits", true, LD_PAYLOAD_FULL, no_logits, "", INFINITY, INFINITY, 0},
    };
    enum { ROUNDS = 4 };
    for (int r = 0; r < ROUNDS; r++)
        for (size_t i = 0; i < LD_ARRAY_LEN(cfgs); i++)
            overhead_run(m, &cfgs[i], 128, 8);
    printf("\nprobe overhead, prefill 128 + 8 decode, best of %d interleaved rounds:\n", ROUNDS);
    printf("  %-22s %8s %7s %8s %7s %10s\n", "", "wall s", "ratio", "CPU s", "ratio", "MB written");
    for (size_t i = 0; i < LD_ARRAY_LEN(cfgs); i++)
        printf("  %-22s %8.2f %7.3f %8.2f %7.3f %10.1f  %s\n", cfgs[i].name, cfgs[i].wall,
               cfgs[i].wall / cfgs[0].wall, cfgs[i].cpu, cfgs[i].cpu / cfgs[0].cpu, cfgs[i].mb,
               cfgs[i].goal);
    printf("  (the probe-free run computes only the last row of the prefill's logits; a run that\n"
           "   probes logits computes all 128 rows: %.1f GFLOP more, part of its overhead)\n",
           2.0 * 127 * (double)c->hidden_size * (double)c->vocab_size / 1e9);
    ld_model_close(m);
    return 0;
}

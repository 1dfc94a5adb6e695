/* bench_probes.c — throughput of the probe writer and reader on the activations of one Qwen3-0.6B
 * prefill (28 layers, H 1024, Hq 16, Hkv 8, D 128, I 3072, V 151936; 128 tokens by default):
 * stats-only and each full-payload encoding, f32 and bf16 data, MB/s of raw activation bytes,
 * file size and compression ratio; then the host cost of one stats-only record with its stats
 * and head given (ld_sink_emit_precomputed, as the CUDA path writes), in CPU microseconds per
 * record. Not a test: it prints figures and never fails on them.
 *
 *   bench_probes [--tokens T] [--dir DIR] [--dtype f32|bf16|all] [--repeat N] [--records N]
 *   OMP_NUM_THREADS=1 bench_probes    # the single-thread figures
 *   bench_probes --records-only        # only the per-record figure
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "fmt_double.h"
#include "layerdiff/probes.h"

#ifdef _OPENMP
#include <omp.h>
#endif

enum { H = 1024, HQ = 16, HKV = 8, D = 128, I = 3072, V = 151936, LAYERS = 28 };

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }
/* CPU seconds of the whole process: on a shared machine, less noisy than wall time when the
 * bench runs on one thread (OMP_NUM_THREADS=1). */
static double cpu(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

/* xorshift64* and Box-Muller: reproducible normal activations. */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static double uniform01(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (double)((rng * 0x2545f4914f6cdd1dULL) >> 11) * 0x1.0p-53;
}
static float normal(double sigma)
{
    double u = uniform01(), w = uniform01();
    if (u < 1e-300)
        u = 1e-300;
    return (float)(sigma * sqrt(-2.0 * log(u)) * cos(6.283185307179586 * w));
}

/* One buffer per shape, filled once; every probe of that shape reuses it. */
typedef struct pool {
    void *t_h, *t_hq, *t_hkv, *t_i, *t_v; /* [T,H] [T,Hq*D] [T,Hkv*D] [T,I] [T,V] */
} pool;

static void *fill(size_t n, ld_dtype dt, double sigma)
{
    void *p = malloc(n * ld_dtype_size(dt));
    if (!p) {
        fprintf(stderr, "bench_probes: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        float v = normal(sigma);
        if (dt == LD_F32) {
            ((float *)p)[i] = v;
        } else {
            uint16_t h = dt == LD_BF16 ? ld_f32_to_bf16(v) : ld_f32_to_f16(v);
            memcpy((char *)p + 2 * i, &h, 2);
        }
    }
    return p;
}

typedef struct tagdef {
    const char *tag;
    int kind; /* 0 [T,H], 1 [T,Hq,D], 2 [T,Hkv,D], 3 [T,I] */
} tagdef;

static const tagdef layer_tags[] = {
    {"attn_norm", 0}, {"q_proj", 1},   {"k_proj", 2},        {"v_proj", 2},   {"q_norm", 1},
    {"k_norm", 2},    {"q_rope", 1},   {"k_rope", 2},        {"attn_out", 1}, {"o_proj", 0},
    {"attn_residual", 0}, {"mlp_norm", 0}, {"gate_proj", 3}, {"up_proj", 3},  {"mlp_act", 3},
    {"down_proj", 0}, {"layer_out", 0}};

static void check(ld_status st, const ld_error *err)
{
    if (st != LD_OK) {
        fprintf(stderr, "bench_probes: %s\n", err->msg);
        exit(1);
    }
}

/* Emits one prefill; returns raw activation bytes. */
static double write_prefill(const char *path, const ld_sink_config *cfg, const pool *pl, ld_dtype dt,
                            int T, double *seconds, double *cpu_seconds)
{
    ld_error err;
    ld_sink *s;
    int32_t toks[1] = {1};
    ld_run_info run = {.implementation = "bench", .tokens = toks, .n_tokens = 1};
    size_t es = ld_dtype_size(dt);
    double raw = 0;
    double t0 = now(), c0 = cpu();
    check(ld_sink_open(&s, path, cfg, &run, &err), &err);
    int64_t sh_h[2] = {T, H}, sh_q[3] = {T, HQ, D}, sh_kv[3] = {T, HKV, D}, sh_i[2] = {T, I},
            sh_v[2] = {T, V};
    check(ld_sink_emit(s, 0, LD_NO_LAYER, "embed", 0, dt, sh_h, 2, pl->t_h, &err), &err);
    raw += (double)T * H * (double)es;
    for (int l = 0; l < LAYERS; l++) {
        for (size_t k = 0; k < sizeof layer_tags / sizeof layer_tags[0]; k++) {
            const tagdef *td = &layer_tags[k];
            const int64_t *sh = td->kind == 0 ? sh_h : td->kind == 1 ? sh_q : td->kind == 2 ? sh_kv : sh_i;
            int nd = td->kind == 1 || td->kind == 2 ? 3 : 2;
            const void *data = td->kind == 0 ? pl->t_h : td->kind == 1 ? pl->t_hq : td->kind == 2 ? pl->t_hkv : pl->t_i;
            check(ld_sink_emit(s, 0, l, td->tag, 0, dt, sh, nd, data, &err), &err);
            double n = 1;
            for (int d = 0; d < nd; d++)
                n *= (double)sh[d];
            raw += n * (double)es;
        }
    }
    check(ld_sink_emit(s, 0, LD_NO_LAYER, "final_norm", 0, dt, sh_h, 2, pl->t_h, &err), &err);
    check(ld_sink_emit(s, 0, LD_NO_LAYER, "logits", 0, dt, sh_v, 2, pl->t_v, &err), &err);
    raw += (double)T * H * (double)es + (double)T * V * (double)es;
    check(ld_sink_close(s, NULL, &err), &err);
    *seconds = now() - t0;
    *cpu_seconds = cpu() - c0;
    return raw;
}

static double read_all(const char *path, uint64_t *probes, double *cpu_seconds)
{
    ld_error err;
    ld_reader *r;
    double t0 = now(), c0 = cpu();
    check(ld_reader_open(&r, path, NULL, &err), &err);
    const ld_probe *p;
    uint64_t n = 0;
    for (;;) {
        check(ld_reader_next(r, &p, &err), &err);
        if (!p)
            break;
        n++;
    }
    ld_reader_close(r);
    *probes = n;
    *cpu_seconds = cpu() - c0;
    return now() - t0;
}

/* Stats-only records with precomputed stats and head: n records of [1, H] f32 activations (the
 * statistics of 64 distinct rows, the head their first values), keys cycling through one
 * prefill's. Returns CPU seconds (the writing thread's, system time of write() included). */
static double write_records(const char *path, int n)
{
    enum { SETS = 64 };
    static ld_stats st[SETS];
    static double head[SETS][LD_HEAD_COUNT];
    static bool ready;
    if (!ready) {
        float *row = fill(H, LD_F32, 1.0);
        for (int k = 0; k < SETS; k++) {
            for (int i = 0; i < H; i++)
                row[i] = normal(0.1 + k * 0.05);
            ld_stats_compute(row, LD_F32, H, &st[k]);
            for (int i = 0; i < LD_HEAD_COUNT; i++)
                head[k][i] = (double)row[i];
        }
        free(row);
        ready = true;
    }
    ld_error err;
    ld_sink *s;
    int32_t toks[1] = {1};
    ld_run_info run = {.implementation = "bench", .tokens = toks, .n_tokens = 1};
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    int64_t sh[2] = {1, H};
    check(ld_sink_open(&s, path, &cfg, &run, &err), &err);
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    const int per_step = LAYERS * (int)(sizeof layer_tags / sizeof layer_tags[0]);
    for (int i = 0; i < n; i++) {
        int j = i % per_step;
        check(ld_sink_emit_precomputed(s, i / per_step, j / 17, layer_tags[j % 17].tag, 0, LD_F32,
                                       sh, 2, &st[i % SETS], head[i % SETS], NULL, &err),
              &err);
    }
    double c = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    check(ld_sink_close(s, NULL, &err), &err);
    return c;
}

static double file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size : 0;
}

int main(int argc, char **argv)
{
    int T = 128, repeat = 1, records = 18000;
    bool records_only = false;
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    const char *which = "all";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
            T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
            which = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--records") && i + 1 < argc)
            records = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--records-only"))
            records_only = true;
        else {
            fprintf(stderr, "usage: bench_probes [--tokens T] [--dir DIR] [--dtype f32|bf16|all] "
                            "[--repeat N] [--records N] [--records-only]\n");
            return 2;
        }
    }
    if (T < 1 || repeat < 1 || records < 1) {
        fprintf(stderr, "bench_probes: --tokens, --repeat and --records must be positive\n");
        return 2;
    }
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    char path[4096], cpu_name[256];
    snprintf(path, sizeof path, "%s/bench_probes_%d.jsonl", dir, (int)getpid());
    bench_cpu_model(cpu_name, sizeof cpu_name);
    /* The host cost of a stats-only record: best of 3 rounds, CPU time of the writing thread. */
    double rec_best = 1e30;
    for (int k = 0; k < 3; k++) {
        double c = write_records(path, records);
        rec_best = c < rec_best ? c : rec_best;
    }
    printf("CPU: %s; number writer: %s\n", cpu_name, LD_FMT_DOUBLE_PATH);
    printf("stats-only records, stats and head given (ld_sink_emit_precomputed): %d records, "
           "%.3f us CPU per record (best of 3; write() included)\n\n",
           records, rec_best / records * 1e6);
    unlink(path);
    if (records_only)
        return 0;
    printf("probe writer/reader on one Qwen3-0.6B prefill: %d tokens, %d layers, %d probes; "
           "%d OpenMP threads; file %s\n",
           T, LAYERS, LAYERS * 17 + 3, threads, path);
    printf("MB = 1e6 bytes of raw activations (numel x dtype size); best of %d; wall and CPU\n"
           "seconds (CPU: all threads of the process); zratio = payload bytes before base64 / raw\n\n",
           repeat);
    printf("%-5s %-20s %8s %8s %9s %8s %8s %9s %9s %8s %7s\n", "dtype", "payload", "write s",
           "cpu s", "write MB/s", "read s", "cpu s", "read MB/s", "file MB", "file/raw", "zratio");
    static const ld_dtype dts[] = {LD_F32, LD_BF16};
    for (size_t di = 0; di < 2; di++) {
        ld_dtype dt = dts[di];
        if (strcmp(which, "all") && strcmp(which, ld_dtype_name(dt)))
            continue;
        pool pl = {fill((size_t)T * H, dt, 1.0), fill((size_t)T * HQ * D, dt, 2.0),
                   fill((size_t)T * HKV * D, dt, 2.0), fill((size_t)T * I, dt, 0.5),
                   fill((size_t)T * V, dt, 3.0)};
        double stats_file = 0;
        for (int mode = -1; mode < 3; mode++) {
            ld_sink_config cfg;
            ld_sink_config_init(&cfg);
            if (mode >= 0) {
                cfg.payload = LD_PAYLOAD_FULL;
                cfg.encoding = (ld_encoding)mode;
            }
            double wbest = 1e30, rbest = 1e30, wcpu = 1e30, rcpu = 1e30, raw = 0;
            uint64_t probes = 0;
            for (int k = 0; k < repeat; k++) {
                double w, wc, rc;
                raw = write_prefill(path, &cfg, &pl, dt, T, &w, &wc);
                double rd = read_all(path, &probes, &rc);
                wbest = w < wbest ? w : wbest;
                rbest = rd < rbest ? rd : rbest;
                wcpu = wc < wcpu ? wc : wcpu;
                rcpu = rc < rcpu ? rc : rcpu;
            }
            double fs = file_size(path);
            if (mode < 0)
                stats_file = fs;
            /* payload bytes before base64, relative to raw */
            double zratio = mode < 0 ? 0 : (fs - stats_file) * 0.75 / raw;
            printf("%-5s %-20s %8.3f %8.3f %9.0f %8.3f %8.3f %9.0f %9.1f %8.3f %7.3f\n",
                   ld_dtype_name(dt), mode < 0 ? "stats" : ld_encoding_name((ld_encoding)mode),
                   wbest, wcpu, raw / wbest / 1e6, rbest, rcpu, raw / rbest / 1e6, fs / 1e6,
                   fs / raw, zratio);
            if (probes != (uint64_t)(LAYERS * 17 + 3)) {
                fprintf(stderr, "bench_probes: read %llu probes\n", (unsigned long long)probes);
                return 1;
            }
        }
        free(pl.t_h);
        free(pl.t_hq);
        free(pl.t_hkv);
        free(pl.t_i);
        free(pl.t_v);
    }
    unlink(path);
    /* The one-pass statistics alone, on the logits-sized buffer. */
    size_t n = (size_t)T * V;
    float *x = fill(n, LD_F32, 3.0);
    ld_stats st;
    double t0 = now();
    ld_stats_compute(x, LD_F32, n, &st);
    double ts = now() - t0;
    printf("\nld_stats_compute on [%d,%d] f32: %.3f s, %.0f MB/s\n", T, V, ts,
           (double)n * 4 / ts / 1e6);
    free(x);
    return 0;
}

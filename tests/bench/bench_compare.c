/* bench_compare.c — throughput (MB/s of JSONL input) and peak RSS of 'layerdiff compare' on two
 * full-payload dumps with Qwen3-0.6B shapes (28 layers, H 1024, Hq 16, Hkv 8, D 128, I 3072,
 * V 151936; a 64-token prefill and 4 decode steps): the reference f32 random normals, the candidate
 * the same plus small noise, rounded to bf16. Both are generated with the probe writer into a
 * temporary directory, once per payload encoding (base64, the writer's default, and
 * shuffle+zlib+base64 unless --encodings says otherwise). Each measurement runs in a fresh child
 * process (its own peak RSS), split into reading only, reading with payload decoding, and the full
 * comparison, so the figures say where the time goes. Not a test: it prints figures and never
 * fails on them.
 *
 *   bench_compare [--tokens T] [--decode N] [--threads N] [--encodings E,..] [--dir DIR] [--keep]
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "compare.h"
#include "layerdiff/probes.h"
#include "bench_cpu.h"

enum { H = 1024, HQ = 16, HKV = 8, D = 128, I = 3072, V = 151936, LAYERS = 28 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static double uniform01(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return ((double)((rng * 0x2545f4914f6cdd1dULL) >> 11) + 0.5) * 0x1.0p-53;
}

/* Two normals per draw (Box-Muller). */
static void normals(float *out, size_t n, double sigma)
{
    for (size_t i = 0; i < n; i += 2) {
        double r = sigma * sqrt(-2.0 * log(uniform01())), a = 6.283185307179586 * uniform01();
        out[i] = (float)(r * cos(a));
        if (i + 1 < n)
            out[i + 1] = (float)(r * sin(a));
    }
}

static void die(const char *what, const ld_error *err)
{
    fprintf(stderr, "bench_compare: %s: %s\n", what, err ? err->msg : strerror(errno));
    exit(1);
}

/* Writes ref (f32) and cand (ref + 1e-3 relative noise, bf16) with every probe of the run. */
static void generate(const char *ref_path, const char *cand_path, int tokens, int decode,
                     ld_encoding enc)
{
    static const struct {
        const char *tag;
        int kind; /* 0 [T,H], 1 [T,Hq,D], 2 [T,Hkv,D], 3 [T,I] */
    } tags[] = {{"attn_norm", 0}, {"q_proj", 1}, {"k_proj", 2},    {"v_proj", 2},
                {"q_norm", 1},    {"k_norm", 2}, {"q_rope", 1},    {"k_rope", 2},
                {"attn_out", 1},  {"o_proj", 0}, {"attn_residual", 0}, {"mlp_norm", 0},
                {"gate_proj", 3}, {"up_proj", 3}, {"mlp_act", 3},  {"down_proj", 0},
                {"layer_out", 0}};
    char model[512];
    snprintf(model, sizeof model,
             "{\"architecture\":\"Qwen3ForCausalLM\",\"hidden_size\":%d,\"num_hidden_layers\":%d,"
             "\"num_attention_heads\":%d,\"num_key_value_heads\":%d,\"head_dim\":%d,"
             "\"intermediate_size\":%d,\"vocab_size\":%d,\"fingerprint\":\"bench\"}",
             H, LAYERS, HQ, HKV, D, I, V);
    int32_t *prompt = malloc((size_t)tokens * sizeof *prompt);
    for (int i = 0; i < tokens; i++)
        prompt[i] = 1000 + i;
    ld_run_info ref_run = {"reference", "{\"name\":\"reference\"}", model, prompt,
                           (size_t)tokens, decode, NULL, 0, NULL, NULL, 0};
    ld_run_info cand_run = ref_run;
    cand_run.implementation = "bench-bf16";
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = LD_PAYLOAD_FULL;
    cfg.encoding = enc;
    ld_sink *rs = NULL, *cs = NULL;
    ld_error err;
    if (ld_sink_open(&rs, ref_path, &cfg, &ref_run, &err) != LD_OK)
        die(ref_path, &err);
    if (ld_sink_open(&cs, cand_path, &cfg, &cand_run, &err) != LD_OK)
        die(cand_path, &err);
    size_t most = (size_t)tokens * V;
    float *r = malloc(most * sizeof *r), *noise = malloc(most * sizeof *noise);
    uint16_t *c = malloc(most * sizeof *c);
    if (!r || !noise || !c || !prompt)
        die("out of memory", NULL);
    for (int step = 0; step <= decode; step++) {
        int T = step == 0 ? tokens : 1;
        int64_t pos0 = step == 0 ? 0 : tokens + step - 1;
        for (int l = -1; l <= LAYERS; l++) {
            size_t ntag = l < 0 ? 1 : (l == LAYERS ? 2 : sizeof tags / sizeof tags[0]);
            for (size_t t = 0; t < ntag; t++) {
                const char *tag = l < 0 ? "embed" : (l == LAYERS ? (t ? "logits" : "final_norm")
                                                                 : tags[t].tag);
                int kind = l < 0 || l == LAYERS ? (t ? 4 : 0) : tags[t].kind;
                int64_t shape[3] = {T, 0, 0};
                int ndim = 2;
                switch (kind) {
                case 1: shape[1] = HQ; shape[2] = D; ndim = 3; break;
                case 2: shape[1] = HKV; shape[2] = D; ndim = 3; break;
                case 3: shape[1] = I; break;
                case 4: shape[1] = V; break;
                default: shape[1] = H; break;
                }
                size_t n = (size_t)T * (size_t)shape[1] * (ndim == 3 ? (size_t)shape[2] : 1);
                normals(r, n, kind == 4 ? 4.0 : 1.0);
                normals(noise, n, 1e-3);
                for (size_t i = 0; i < n; i++)
                    c[i] = ld_f32_to_bf16(r[i] + noise[i] * fabsf(r[i]));
                int layer = l < 0 || l == LAYERS ? LD_NO_LAYER : l;
                if (ld_sink_emit(rs, step, layer, tag, pos0, LD_F32, shape, ndim, r, &err) != LD_OK)
                    die(ref_path, &err);
                if (ld_sink_emit(cs, step, layer, tag, pos0, LD_BF16, shape, ndim, c, &err) != LD_OK)
                    die(cand_path, &err);
            }
        }
    }
    if (ld_sink_close(rs, NULL, &err) != LD_OK)
        die(ref_path, &err);
    if (ld_sink_close(cs, NULL, &err) != LD_OK)
        die(cand_path, &err);
    free(r);
    free(noise);
    free(c);
    free(prompt);
}

/* ---- child modes: one measurement per process ---------------------------------------------- */

static int child_read(const char *a, const char *b, bool decode)
{
    ld_reader_options ro;
    ld_reader_options_init(&ro);
    ro.decode_data = decode;
    const char *paths[2] = {a, b};
    uint64_t probes = 0;
    double t0 = now();
    for (int i = 0; i < 2; i++) {
        ld_reader *r = NULL;
        ld_error err;
        if (ld_reader_open(&r, paths[i], &ro, &err) != LD_OK)
            die(paths[i], &err);
        const ld_probe *p;
        do {
            if (ld_reader_next(r, &p, &err) != LD_OK)
                die(paths[i], &err);
            probes += p != NULL;
        } while (p);
        ld_reader_close(r);
    }
    printf("%.3f %llu\n", now() - t0, (unsigned long long)probes);
    return 0;
}

/* Reads both streams with stream_data, every payload through ld_reader_read_data in 1 MiB
 * pieces (what the comparator does). */
static int child_stream(const char *a, const char *b)
{
    ld_reader_options ro;
    ld_reader_options_init(&ro);
    ro.stream_data = true;
    const char *paths[2] = {a, b};
    uint64_t probes = 0;
    size_t cap = (size_t)1 << 20;
    unsigned char *buf = malloc(cap);
    if (!buf)
        die("out of memory", NULL);
    double t0 = now();
    for (int i = 0; i < 2; i++) {
        ld_reader *r = NULL;
        ld_error err;
        if (ld_reader_open(&r, paths[i], &ro, &err) != LD_OK)
            die(paths[i], &err);
        const ld_probe *p;
        do {
            if (ld_reader_next(r, &p, &err) != LD_OK)
                die(paths[i], &err);
            probes += p != NULL;
            size_t got = 1;
            while (p && p->has_data && got)
                if (ld_reader_read_data(r, buf, cap, &got, &err) != LD_OK)
                    die(paths[i], &err);
        } while (p);
        ld_reader_close(r);
    }
    printf("%.3f %llu\n", now() - t0, (unsigned long long)probes);
    free(buf);
    return 0;
}

static int child_compare(const char *a, const char *b)
{
    ld_compare_options o;
    ld_compare_options_init(&o);
    ld_compare_result *res = NULL;
    ld_error err;
    double t0 = now();
    if (ld_compare_run(a, b, &o, &res, &err) != LD_OK)
        die("compare", &err);
    double t = now() - t0;
    printf("%.3f %zu %zu %zu\n", t, res->n_compared, res->n_pass, res->n_fail);
    ld_compare_result_destroy(res);
    return 0;
}

typedef struct run_result {
    double wall, user, sys, rss_mib;
    char line[256];
} run_result;

/* Runs this binary again in a child mode and collects its output line and resource use. */
static run_result spawn(const char *self, const char *mode, const char *a, const char *b,
                        int threads)
{
    run_result rr = {0};
    int fds[2];
    if (pipe(fds) != 0)
        die("pipe", NULL);
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0)
        die("fork", NULL);
    if (pid == 0) {
        char th[16];
        snprintf(th, sizeof th, "%d", threads);
        setenv("OMP_NUM_THREADS", th, 1);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(self, self, "--child", mode, a, b, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    ssize_t got = read(fds[0], rr.line, sizeof rr.line - 1);
    rr.line[got > 0 ? got : 0] = '\0';
    close(fds[0]);
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("child failed", NULL);
    rr.wall = now() - t0;
    rr.user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6;
    rr.sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    rr.rss_mib = (double)ru.ru_maxrss / 1024.0;
    return rr;
}

static double file_mb(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (double)st.st_size / 1e6 : 0;
}

/* Generates one pair of streams in enc and measures every mode on it. */
static void bench_encoding(const char *self, const char *dir, ld_encoding enc, int tokens,
                           int decode, int threads, bool keep)
{
    char ref[4096], cand[4096];
    const char *name = ld_encoding_name(enc);
    snprintf(ref, sizeof ref, "%s/ref.%s.jsonl", dir, name);
    snprintf(cand, sizeof cand, "%s/cand.%s.jsonl", dir, name);
    double t0 = now();
    generate(ref, cand, tokens, decode, enc);
    double gen_s = now() - t0;
    double mb_ref = file_mb(ref), mb_cand = file_mb(cand), mb = mb_ref + mb_cand;
    printf("\n  %s inputs: reference %.1f MB (f32), candidate %.1f MB (bf16), %.1f MB together%s; "
           "generated in %.1f s\n",
           name, mb_ref, mb_cand, mb, enc == LD_ENC_BASE64 ? "" : " (zlib level 1)", gen_s);
    printf("  %-26s %7s %7s %7s %7s %9s %11s %9s\n", "mode", "threads", "wall s", "MB/s", "cpu s",
           "MB/cpu-s", "peak RSS", "RSS/input");
    const struct {
        const char *mode, *label;
        int threads;
    } runs[] = {
        {"parse", "read, no payload decode", 1},
        {"decode", "read + decode payloads", 1},
        {"stream", "read + stream payloads", 1},
        {"compare", "compare (full)", 1},
        {"compare", "compare (full)", threads},
    };
    size_t nruns = sizeof runs / sizeof runs[0] - (threads > 1 ? 0 : 1);
    for (size_t i = 0; i < nruns; i++) {
        run_result rr = spawn(self, runs[i].mode, ref, cand, runs[i].threads);
        double inner = atof(rr.line); /* the child's own timing, without process start */
        /* MB per CPU second: the one-core rate, which a busy machine disturbs less than wall time */
        double cpu = rr.user + rr.sys;
        printf("  %-26s %7d %7.2f %7.0f %7.2f %9.0f %7.1f MiB %8.2f%%\n", runs[i].label,
               runs[i].threads, inner, mb / inner, cpu, mb / cpu, rr.rss_mib,
               100.0 * rr.rss_mib * 1.048576 / mb);
        if (!strcmp(runs[i].mode, "compare") && runs[i].threads == 1) {
            unsigned long long n = 0, pass = 0, fail = 0;
            double t;
            if (sscanf(rr.line, "%lf %llu %llu %llu", &t, &n, &pass, &fail) == 4)
                printf("  %-26s compared %llu probes: %llu pass, %llu fail (bf16 defaults)\n", "",
                       n, pass, fail);
        }
    }
    if (!keep) {
        unlink(ref);
        unlink(cand);
    } else {
        printf("  kept %s and %s\n", ref, cand);
    }
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--child")) {
        if (!strcmp(argv[2], "parse"))
            return child_read(argv[3], argv[4], false);
        if (!strcmp(argv[2], "decode"))
            return child_read(argv[3], argv[4], true);
        if (!strcmp(argv[2], "stream"))
            return child_stream(argv[3], argv[4]);
        return child_compare(argv[3], argv[4]);
    }
    int tokens = 64, decode = 4, threads = 1;
    const char *dir = NULL, *encodings = "base64,shuffle+zlib+base64";
    bool keep = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
            tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc)
            decode = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--encodings") && i + 1 < argc)
            encodings = argv[++i];
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--keep"))
            keep = true;
        else {
            fprintf(stderr, "usage: %s [--tokens T] [--decode N] [--threads N] [--encodings E,..] "
                    "[--dir DIR] [--keep]\n", argv[0]);
            return 2;
        }
    }
    if (tokens < 1 || decode < 0 || threads < 1) {
        fprintf(stderr, "bench_compare: bad --tokens, --decode or --threads\n");
        return 2;
    }
    ld_encoding encs[8];
    size_t n_enc = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", encodings);
    for (char *save = NULL, *e = strtok_r(list, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        if (n_enc == 8 || !ld_encoding_parse(e, &encs[n_enc])) {
            fprintf(stderr, "bench_compare: unknown encoding '%s' (base64, zlib+base64, "
                    "shuffle+zlib+base64)\n", e);
            return 2;
        }
        n_enc++;
    }
    char tmpl[] = "/tmp/ld_bench_compare_XXXXXX";
    bool made_dir = !dir;
    if (!dir && !(dir = mkdtemp(tmpl)))
        die("mkdtemp", NULL);
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0)
        die("/proc/self/exe", NULL);
    self[sl] = '\0';
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("CPU: %s\n", cpu);
    printf("bench_compare: Qwen3-0.6B shapes, %d-token prefill + %d decode steps, %d probes per "
           "stream\n",
           tokens, decode, (decode + 1) * (LAYERS * 17 + 3));
    for (size_t i = 0; i < n_enc; i++)
        bench_encoding(self, dir, encs[i], tokens, decode, threads, keep);
    if (made_dir && !keep)
        rmdir(dir);
    return 0;
}

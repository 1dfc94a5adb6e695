/* bench_replay.c — the cost of op-local attribution (compare --model) on the qwen3-0.6b preset:
 * a reference and an emulated-bf16 candidate (prefill 64 + 4 decode steps, full payloads) are
 * written once; then the comparison alone and the comparison plus the replay are timed, and the
 * replay is set beside the reference forward pass it re-executes. Prints figures only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_common.h"
#include "compare.h"
#include "model.h"
#include "replay.h"
#include "run.h"

static int write_run(const ld_model *m, const int32_t *prompt, size_t n, int decode,
                     ld_dtype emulate, const int32_t *follow, const char *path, int32_t *decoded,
                     double *secs)
{
    ld_sink_config sc;
    ld_sink_config_init(&sc);
    sc.payload = LD_PAYLOAD_FULL;
    ld_run_options ro = {.model = m, .prompt = prompt, .n_prompt = n, .decode_steps = decode,
                         .follow = follow, .n_follow = follow ? (size_t)decode : 0,
                         .emulate = emulate, .implementation = "bench", .probes_path = path,
                         .sink_config = &sc};
    ld_run_result r;
    ld_error err = {0};
    double t0 = ld_seconds();
    if (ld_run(&ro, &r, &err) != LD_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    *secs = ld_seconds() - t0;
    if (decoded)
        memcpy(decoded, r.decoded, (size_t)decode * sizeof *decoded);
    ld_run_result_free(&r);
    return 0;
}

int main(int argc, char **argv)
{
    char dir[4096];
    if (argc > 1)
        snprintf(dir, sizeof dir, "%s", argv[1]);
    else if (bench_model_dir("qwen3-0.6b", dir, sizeof dir) != 0)
        return 1;
    ld_model *m = NULL;
    ld_error err = {0};
    if (ld_model_open(&m, dir, &err) != LD_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    enum { T = 64, DECODE = 4 };
    int32_t prompt[T], decoded[DECODE];
    for (int i = 0; i < T; i++)
        prompt[i] = (int32_t)((i * 7919 + 13) % m->cfg.vocab_size);
    char ref[] = "/tmp/layerdiff-bench-replay-ref-XXXXXX", cand[] = "/tmp/layerdiff-bench-replay-cand-XXXXXX";
    int fd1 = mkstemp(ref), fd2 = mkstemp(cand);
    if (fd1 < 0 || fd2 < 0)
        return 1;
    close(fd1);
    close(fd2);
    double t_ref, t_cand;
    if (write_run(m, prompt, T, DECODE, LD_F32, NULL, ref, decoded, &t_ref) ||
        write_run(m, prompt, T, DECODE, LD_BF16, decoded, cand, NULL, &t_cand))
        return 1;
    struct stat s1, s2;
    stat(ref, &s1);
    stat(cand, &s2);
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("CPU: %s\n", cpu);
    printf("bench_replay: %s, prefill %d + %d decode steps, full payloads: reference %.1f MB "
           "(written in %.2f s), emulated-bf16 candidate %.1f MB\n",
           dir, T, DECODE, (double)s1.st_size / 1e6, t_ref, (double)s2.st_size / 1e6);
    double best_cmp = 1e30, best_rep = 1e30;
    for (int rep = 0; rep < 2; rep++) {
        ld_compare_result *r = NULL;
        double t0 = ld_seconds();
        if (ld_compare_run(ref, cand, NULL, &r, &err) != LD_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        double t1 = ld_seconds();
        if (ld_replay_run(r, ref, cand, m, NULL, &err) != LD_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        double t2 = ld_seconds();
        if (rep == 1)
            printf("  replayed %zu of %zu probes, culprit %s\n", r->n_replayed, r->n_rows,
                   r->culprit >= 0 ? r->rows[r->culprit].key.tag : "none");
        best_cmp = t1 - t0 < best_cmp ? t1 - t0 : best_cmp;
        best_rep = t2 - t1 < best_rep ? t2 - t1 : best_rep;
        ld_compare_result_destroy(r);
    }
    printf("  compare alone           %.2f s\n", best_cmp);
    printf("  replay (second pass)    %.2f s  = %.2f x the comparison, %.2f x the reference run "
           "it re-executes\n",
           best_rep, best_rep / best_cmp, best_rep / t_ref);
    printf("  compare --model total   %.2f s\n", best_cmp + best_rep);
    unlink(ref);
    unlink(cand);
    ld_model_close(m);
    return 0;
}

/* bench_model_load.c — time and peak memory to open and validate the qwen3-0.6b preset checkpoint
 * (config.json, safetensors header, every tensor bound by name and shape, fingerprint), cold (the
 * file's pages evicted first) and warm, then one pass over every weight byte through the mapping.
 * Usage: bench_model_load [DIR]; without DIR the bf16 preset is generated into the bench cache
 * (in a child process, so this process's peak RSS is the loader's alone). Prints figures only. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "model.h"

/* "RssAnon: 1234 kB" and friends from /proc/self/status, in MB (-1 when unavailable). */
static double status_mb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') v = atof(line + n + 1) * 1024 / 1e6;
    fclose(f);
    return v;
}

/* Asks the kernel to drop the cached pages of the checkpoint's files (best effort; only pages no
 * process maps can go, so call it with the model closed). */
static void evict_dir(const char *dir)
{
    char path[4200];
    const char *names[] = {"config.json", "model.safetensors"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            fdatasync(fd);
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
    }
}

static double open_once(const char *dir, ld_model **out)
{
    ld_error err = {0};
    double t0 = ld_seconds();
    if (ld_model_open(out, dir, &err) != LD_OK) {
        fprintf(stderr, "bench_model_load: %s\n", err.msg);
        exit(1);
    }
    return ld_seconds() - t0;
}

int main(int argc, char **argv)
{
    char dir[4096];
    if (argc > 1) {
        snprintf(dir, sizeof dir, "%s", argv[1]);
    } else {
        pid_t pid = fork();
        if (pid == 0) _exit(bench_model_dir("qwen3-0.6b", dir, sizeof dir) == 0 ? 0 : 1);
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
            return 1;
        if (bench_model_dir("qwen3-0.6b", dir, sizeof dir) != 0) return 1;
    }
    double rss0 = bench_peak_rss_mib();

    ld_model *m = NULL;
    double first = open_once(dir, &m);
    ld_model_close(m);
    evict_dir(dir);
    double cold = open_once(dir, &m);
    double anon_open = status_mb("RssAnon"), file_open = status_mb("RssFile");
    ld_model_close(m);
    double warm[7];
    for (int i = 0; i < 7; i++) {
        warm[i] = open_once(dir, &m);
        ld_model_close(m);
    }
    for (int i = 0; i < 7; i++) /* sort for the median */
        for (int j = i + 1; j < 7; j++)
            if (warm[j] < warm[i]) {
                double t = warm[i];
                warm[i] = warm[j];
                warm[j] = t;
            }
    double rss_open = bench_peak_rss_mib();

    open_once(dir, &m);
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("CPU: %s\n", cpu);
    printf("checkpoint: %s (%zu file(s), %.1f MB, fingerprint %s)\n", dir, m->n_files,
           (double)m->checkpoint_bytes / 1e6, m->fingerprint);
    printf("open + validate, first run:       %8.2f ms\n", first * 1e3);
    printf("open + validate, cold page cache: %8.2f ms\n", cold * 1e3);
    printf("open + validate, warm (7 runs):   %8.2f ms median, %.2f ms best\n", warm[3] * 1e3,
           warm[0] * 1e3);
    printf("peak RSS: %.1f MB before opening, %.1f MB after 9 opens; while open: %.1f MB "
           "anonymous (allocated), %.1f MB file-backed (mapped header pages: the weights are neither "
           "copied nor read)\n",
           rss0 * 1.048576, rss_open * 1.048576, anon_open, file_open);

    /* One pass over every weight page through the mapping, right after the eviction above (so
     * mostly from disk): what the first forward pass pays on top of the open. */
    double t0 = ld_seconds();
    uint64_t sum = 0, bytes = 0;
    for (size_t f = 0; f < m->n_files; f++) {
        for (size_t i = 0; i < ld_st_count(m->files[f]); i++) {
            const ld_tensor *t = ld_st_at(m->files[f], i);
            const unsigned char *p = t->data;
            for (size_t k = 0; k < t->nbytes; k += 64)
                sum += p[k];
            bytes += t->nbytes;
        }
    }
    double dt = ld_seconds() - t0;
    printf("first pass over every weight page: %.2f s for %.1f MB (%.2f GB/s; checksum %llu)\n", dt,
           (double)bytes / 1e6, (double)bytes / 1e9 / dt, (unsigned long long)sum);
    printf("peak RSS after touching the weights: %.1f MB (file-backed pages count as resident)\n",
           bench_peak_rss_mib() * 1.048576);
    ld_model_close(m);
    return 0;
}

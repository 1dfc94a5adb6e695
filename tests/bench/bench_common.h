/* bench_common.h — helpers the benchmarks share: timing, peak RSS, and a cached qwen3-0.6b preset
 * checkpoint (generated once into the bench cache directory). Benchmarks print figures; they never
 * pass or fail on speed. */
#ifndef LD_BENCH_COMMON_H
#define LD_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "bench_cpu.h"
#include "gen.h"
#include "util.h"

/* Peak resident set of this process so far, in MiB. */
static inline double bench_peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* CPU time (user + system, all threads) this process has used, in seconds. On a shared VM it
 * leaves out the time the host takes the CPU away, which wall time does not. */
static inline double bench_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* The directory benchmarks keep generated checkpoints in: $LD_BENCH_CACHE or /tmp/layerdiff-bench. */
static inline const char *bench_cache_dir(void)
{
    const char *d = getenv("LD_BENCH_CACHE");
    return d && *d ? d : "/tmp/layerdiff-bench";
}

/* Path of the preset checkpoint (dtype bf16, seed 0), generating it when missing. */
static inline int bench_model_dir(const char *preset, char *out, size_t size)
{
    const char *cache = bench_cache_dir();
    ld_error err = {0};
    if (ld_mkdir(cache, &err) != LD_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    snprintf(out, size, "%s/%s-bf16", cache, preset);
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s/config.json", out);
    struct stat st;
    if (stat(cfg, &st) == 0)
        return 0;
    fprintf(stderr, "bench: generating the %s preset into %s ...\n", preset, out);
    ld_gen_options opt = {.preset = preset, .seed = 0, .dtype = LD_BF16, .tied = -1, .shards = 1};
    if (ld_gen_model(out, &opt, &err) != LD_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    return 0;
}

#endif

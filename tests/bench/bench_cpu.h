/* bench_cpu.h — the CPU's name for the first line of every benchmark (C and CUDA C++ alike): a
 * figure without the machine it was measured on is not a figure. */
#ifndef LD_BENCH_CPU_H
#define LD_BENCH_CPU_H

#include <stdio.h>
#include <string.h>

/* The CPU's name from /proc/cpuinfo: "model name" (x86) or "Model" (aarch64); "unknown" where it
 * has neither. */
static inline void bench_cpu_model(char *out, size_t size)
{
    snprintf(out, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (colon && (!strncmp(line, "model name", 10) || !strncmp(line, "Model\t", 6))) {
            colon += 1 + strspn(colon + 1, " \t");
            colon[strcspn(colon, "\n")] = 0;
            snprintf(out, size, "%s", colon);
            break;
        }
    }
    fclose(f);
}

#endif

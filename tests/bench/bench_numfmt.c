/* bench_numfmt.c — the probe records' number writer alone (common/fmt_double.h): CPU nanoseconds
 * per number for ld_fmt_double_exact (the fast path, and the slow path where it gives up) and for
 * the snprintf/strtod definition, on three families of doubles, with the fast path's fallback
 * rate. Not a test: it prints figures and never fails on them.
 *
 *   bench_numfmt [--count N]    # N numbers per family (default 1000000), one thread
 */
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "fmt_double.h"

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void) /* xorshift64* */
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1du;
}

static double uniform01(void) { return (double)(rnd() >> 11) * 0x1p-53; }

/* Fills v[n] with one family: 0 floats widened (a head), 1 full doubles (stats), 2 bit patterns. */
static void fill(double *v, size_t n, int family)
{
    for (size_t i = 0; i < n; i++) {
        double u = uniform01() - 0.5, scale = pow(10.0, (double)(rnd() % 6) - 3.0);
        if (family == 0) {
            v[i] = (double)(float)(u * scale);
        } else if (family == 1) {
            v[i] = u * scale;
        } else {
            uint64_t b = rnd();
            memcpy(&v[i], &b, sizeof b);
            if (!isfinite(v[i]))
                v[i] = u;
        }
    }
}

/* Best of 3 rounds: CPU ns per number of writing v[0..n) with the slow path (slow) or not. */
static double time_ns(const double *v, size_t n, int slow, size_t *bytes)
{
    double best = 1e30;
    char out[LD_FMT_DOUBLE_MAX];
    for (int round = 0; round < 3; round++) {
        size_t total = 0;
        double c0 = thread_cpu();
        for (size_t i = 0; i < n; i++)
            total += slow ? ld_fmt_double_exact_slow(v[i], out, (locale_t)0)
                          : ld_fmt_double_exact(v[i], out, (locale_t)0);
        double c = thread_cpu() - c0;
        best = c < best ? c : best;
        *bytes = total;
    }
    return best / (double)n * 1e9;
}

int main(int argc, char **argv)
{
    size_t n = 1000000;
    if (argc == 3 && !strcmp(argv[1], "--count") && atol(argv[2]) > 0) {
        n = (size_t)atol(argv[2]);
    } else if (argc != 1) {
        fprintf(stderr, "usage: bench_numfmt [--count N]\n");
        return 2;
    }
    double *v = malloc(n * sizeof *v);
    if (!v) {
        fprintf(stderr, "bench_numfmt: out of memory\n");
        return 1;
    }
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("number writer (LD_JSON_NUM_EXACT) on %zu numbers per family, one thread, best of 3\n"
           "CPU: %s; path: %s\n\n",
           n, cpu, LD_FMT_DOUBLE_PATH);
    printf("%-34s %10s %14s %8s %10s\n", "family", "ns/number", "snprintf/strtod", "ratio",
           "fallback");
    static const char *const names[3] = {"floats widened (head values)", "doubles (stats)",
                                         "random bit patterns"};
    for (int family = 0; family < 3; family++) {
        fill(v, n, family);
        size_t fallback = 0, b1, b2;
        char out[LD_FMT_DOUBLE_MAX];
        for (size_t i = 0; i < n; i++)
            fallback += ld_fmt_double_exact_fast(v[i], out) == 0;
        double fast = time_ns(v, n, 0, &b1), slow = time_ns(v, n, 1, &b2);
        if (b1 != b2) {
            fprintf(stderr, "bench_numfmt: the two paths wrote %zu and %zu bytes\n", b1, b2);
            return 1;
        }
        printf("%-34s %10.1f %14.1f %7.1fx %9.4f%%\n", names[family], fast, slow, slow / fast,
               100.0 * (double)fallback / (double)n);
    }
    free(v);
    return 0;
}

/* model_test_util.h — small helpers shared by the checkpoint tests: temporary directories, whole
 * files, and the generator's weight stream re-derived from its definition in gen.h (written here
 * independently of model/gen.c, so a test can catch the generator drifting from its spec). */
#ifndef LD_MODEL_TEST_UTIL_H
#define LD_MODEL_TEST_UTIL_H

#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layerdiff/dtype.h"
#include "layerdiff/error.h"

/* A fresh directory under $TMPDIR (or /tmp); the caller removes it with rm_tree. */
static inline char *make_temp_dir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/ld-model-test-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static inline int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void rm_tree(char *dir)
{
    if (dir) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static inline char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Whole file into malloc'd memory (NUL-terminated); NULL when it cannot be read. */
static inline unsigned char *slurp(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = 0;
        *len = (size_t)n;
    }
    return p;
}

static inline int spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

static inline int spit_in(const char *dir, const char *name, const char *text)
{
    char *p = path_in(dir, name);
    int r = spit(p, text, strlen(text));
    free(p);
    return r;
}

/* ---- the generator's weight stream, from the definition in gen.h ---- */

static inline uint64_t ref_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t ref_fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static inline double ref_u(uint64_t key, uint64_t n)
{
    const uint64_t G = 0x9e3779b97f4a7c15ULL;
    return (double)(ref_mix64(key + (n + 1) * G) >> 11) / 9007199254740992.0; /* 2^53 */
}

/* Element i of tensor name, before rounding to float. */
static inline double ref_weight(uint64_t seed, const char *name, uint64_t i)
{
    const uint64_t G = 0x9e3779b97f4a7c15ULL;
    uint64_t key = ref_mix64(seed + G) ^ ref_fnv1a(name);
    size_t len = strlen(name);
    if (len >= 11 && strcmp(name + len - 11, "norm.weight") == 0) return 0.8 + 0.4 * ref_u(key, i);
    uint64_t k = i / 2;
    double r = sqrt(-2.0 * log(ref_u(key, 2 * k) + 1.0 / 9007199254740992.0));
    double a = 2.0 * M_PI * ref_u(key, 2 * k + 1);
    return 0.02 * r * (i % 2 == 0 ? cos(a) : sin(a));
}

/* The stored bits of that element in dtype t (little-endian value, 16 or 32 bits). */
static inline uint32_t ref_weight_bits(uint64_t seed, const char *name, uint64_t i, ld_dtype t)
{
    float f = (float)ref_weight(seed, name, i);
    if (t == LD_BF16) return ld_f32_to_bf16(f);
    if (t == LD_F16) return ld_f32_to_f16(f);
    return ld_f32_bits(f);
}

/* Element i of a stored tensor as raw bits. */
static inline uint32_t stored_bits(const void *data, ld_dtype t, size_t i)
{
    const unsigned char *p = data;
    if (t == LD_F32)
        return (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    return (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8;
}

/* cmocka-friendly substring check that prints both strings on failure. */
#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (!strstr(h_, n_)) {                                                                     \
            print_error("expected to find\n  \"%s\"\nin\n  \"%s\"\n", n_, h_);                     \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#endif

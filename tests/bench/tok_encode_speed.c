/* tok_encode_speed TOKENIZER.json TEXT [REPS [docs]] — the C tokenizer's encode throughput on one
 * thread: loads the tokenizer (timed once), encodes the whole of TEXT REPS times (default 5) and
 * prints
 * the best and median MB/s, the id count and an FNV-1a hash of the ids (so that a driver can check
 * that another encoder did the same work), the CPU model and the code path. With "docs", TEXT is a
 * series of documents (each a decimal byte count, a newline and the bytes), encoded one call each
 * (MB/s counts their bytes only; the hash runs over all their ids in order). Driven by
 * bench_tokenizer.py (make bench), which runs Hugging Face tokenizers on the same text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layerdiff/tokenizer.h"
#include "util.h"

#include "bench_cpu.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int reps = 5;
    if (argc < 3 || argc > 5 || (argc >= 4 && !ld_parse_int(argv[3], 1, 1000, &reps)) ||
        (argc == 5 && strcmp(argv[4], "docs") != 0)) {
        fprintf(stderr, "usage: tok_encode_speed TOKENIZER.json TEXT [REPS [docs]]\n");
        return 2;
    }
    bool docs = argc == 5;
    ld_error err;
    ld_tokenizer *t;
    char *text;
    size_t len;
    double t0 = ld_seconds();
    if (ld_tokenizer_load(argv[1], &t, &err) != LD_OK) {
        fprintf(stderr, "tok_encode_speed: %s\n", err.msg);
        return 2;
    }
    double load_s = ld_seconds() - t0;
    if (ld_read_file(argv[2], LD_TOK_MAX_TEXT, &text, &len, &err) != LD_OK) {
        fprintf(stderr, "tok_encode_speed: %s\n", err.msg);
        return 2;
    }
    /* The documents: [start, end) byte ranges of text. */
    size_t n_docs = 0, *start = malloc((len + 1) * sizeof *start), *end = malloc((len + 1) *
                                                                                 sizeof *end);
    if (!start || !end) return 2;
    if (!docs) {
        start[0] = 0;
        end[n_docs++] = len;
    }
    for (size_t at = 0; docs && at < len;) {
        char *nl = memchr(text + at, '\n', len - at);
        int64_t dl;
        if (!nl) return 2;
        *nl = 0;
        if (!ld_parse_i64(text + at, 0, (int64_t)(len - (size_t)(nl + 1 - text)), &dl)) {
            fprintf(stderr, "tok_encode_speed: %s: bad document header at byte %zu\n", argv[2], at);
            return 2;
        }
        start[n_docs] = (size_t)(nl + 1 - text);
        end[n_docs] = start[n_docs] + (size_t)dl;
        at = end[n_docs++];
    }
    size_t bytes = 0;
    for (size_t d = 0; d < n_docs; d++)
        bytes += end[d] - start[d];
    double *mbs = calloc((size_t)reps, sizeof *mbs);
    size_t n = 0;
    uint64_t hash = LD_FNV_INIT;
    for (int r = 0; r < reps; r++) {
        n = 0;
        t0 = ld_seconds();
        for (size_t d = 0; d < n_docs; d++) {
            int32_t *ids;
            size_t nd;
            if (ld_tokenizer_encode(t, text + start[d], end[d] - start[d], &ids, &nd, &err) !=
                LD_OK) {
                fprintf(stderr, "tok_encode_speed: %s: %s\n", argv[2], err.msg);
                return 2;
            }
            if (r == 0) hash = ld_fnv1a(hash, ids, nd * sizeof *ids);
            n += nd;
            free(ids);
        }
        mbs[r] = (double)bytes / 1e6 / (ld_seconds() - t0);
    }
    qsort(mbs, (size_t)reps, sizeof *mbs, cmp_double);
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("cpu: %s\n", cpu);
    printf("path: C, one thread: Oniguruma split regex, utf8proc NFC, heap BPE by merge rank, "
           "per-call word cache\n");
    printf("load_s %.3f\nbytes %zu\nids %zu\nids_fnv %016llx\nbest_mb_s %.3f\nmedian_mb_s %.3f\n",
           load_s, bytes, n, (unsigned long long)hash, mbs[reps - 1], mbs[reps / 2]);
    free(mbs);
    free(start);
    free(end);
    free(text);
    ld_tokenizer_free(t);
    return 0;
}

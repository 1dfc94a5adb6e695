/* fuzz_probe_reader.c — libFuzzer target for the probe record parser: the input is a whole
 * stream (header, probes, end) read through ld_reader_open_mem with payload decoding on, every
 * returned payload widened to f32, and the same bytes tried as a probe key. The stream is also
 * read with payloads streamed in small pieces (the comparator's path), and the two readings must
 * agree on every status, probe and payload byte; a difference traps. Not a test by itself:
 * tests/fuzz/fuzz_smoke.sh runs it for a few seconds under ctest.
 *
 * Build and run by hand (from the source root, after any cmake configure into build/):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Wno-unknown-pragmas \
 *         -Iprobes/include -Iprobes -Icommon -Icommon/include -Ibuild/generated \
 *         tests/fuzz/fuzz_probe_reader.c probes/[a-z]*.c common/*.c -lz -lm \
 *         -o fuzz_probe_reader
 *   mkdir -p corpus && build/tests/unit/probes/ld_probe_sample corpus
 *   ./fuzz_probe_reader corpus -max_len=65536 -max_total_time=600
 * or configure with CC=clang cmake -DLD_FUZZ=ON, which builds the target fuzz_probe_reader. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layerdiff/probes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads the whole stream, whole or with payloads streamed in pieces of `piece` bytes; returns a
 * hash of every key and payload byte, the final status and the probe count. */
static uint64_t read_all(const uint8_t *data, size_t size, bool stream, size_t piece,
                         ld_status *final, uint64_t *count)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    *count = 0;
    ld_reader_options opt;
    ld_reader_options_init(&opt);
    opt.max_line = 1u << 20;
    opt.stream_data = stream;
    ld_reader *r;
    ld_error err;
    *final = ld_reader_open_mem(&r, "fuzz", data, size, &opt, &err);
    if (*final != LD_OK)
        return h;
    const ld_probe *p;
    unsigned char buf[4096];
    for (;;) {
        *final = ld_reader_next(r, &p, &err);
        if (*final != LD_OK || !p)
            break;
        for (const char *c = p->tag; *c; c++)
            h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
        h = (h ^ (uint64_t)p->step ^ ((uint64_t)(uint32_t)p->layer << 20)) * 0x100000001b3ULL;
        if (p->has_data) {
            if (stream) {
                size_t got = 0;
                ld_status st;
                while ((st = ld_reader_read_data(r, buf, piece, &got, &err)) == LD_OK && got)
                    for (size_t i = 0; i < got; i++)
                        h = (h ^ buf[i]) * 0x100000001b3ULL;
                if (st != LD_OK) {
                    *final = st;
                    break;
                }
            } else {
                const unsigned char *b = p->data;
                for (size_t i = 0; i < p->data_bytes; i++)
                    h = (h ^ b[i]) * 0x100000001b3ULL;
            }
        }
        (*count)++;
    }
    ld_reader_close(r);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Differential: whole records against streamed payloads. A record counts only once its payload
     * is proven, so both ways must agree on status, count and bytes. */
    ld_status st_whole, st_stream;
    uint64_t n_whole, n_stream;
    size_t piece = size ? 1 + data[size - 1] % 97 : 1;
    uint64_t h_whole = read_all(data, size, false, 0, &st_whole, &n_whole);
    uint64_t h_stream = read_all(data, size, true, piece, &st_stream, &n_stream);
    if (st_whole != st_stream || n_whole != n_stream || (st_whole == LD_OK && h_whole != h_stream))
        __builtin_trap();

    ld_reader_options opt;
    ld_reader_options_init(&opt);
    opt.max_line = 1u << 20; /* zlib may inflate 1032x: keep the worst case far from OOM */
    ld_reader *r;
    ld_error err;
    if (ld_reader_open_mem(&r, "fuzz", data, size, &opt, &err) == LD_OK) {
        const ld_header_info *h = ld_reader_header(r);
        volatile size_t sink = strlen(h->backend_json) + strlen(h->model_json) + h->n_tokens;
        const ld_probe *p;
        while (ld_reader_next(r, &p, &err) == LD_OK && p) {
            if (p->data && p->numel <= (1u << 24)) {
                float *f = malloc((size_t)p->numel * sizeof *f + 1);
                if (f && ld_probe_to_f32(p, f, &err) == LD_OK && p->numel)
                    sink += (size_t)(f[p->numel - 1] == f[0]);
                free(f);
            }
        }
        const ld_end_info *e = ld_reader_end(r);
        if (e)
            sink += strlen(e->message) + strlen(e->last_key) + e->n_tokens;
        (void)sink;
        ld_reader_close(r);
    }
    char text[256];
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    ld_key key;
    if (ld_key_parse(text, &key, &err) == LD_OK) {
        char back[LD_TAG_NAME_MAX + 32];
        ld_key_format(&key, back, sizeof back);
    }
    return 0;
}

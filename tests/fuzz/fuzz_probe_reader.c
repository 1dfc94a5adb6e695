/* fuzz_probe_reader.c — libFuzzer target for the probe record parser: the input is a whole
 * stream (header, probes, end) read through ld_reader_open_mem with payload decoding on, every
 * returned payload widened to f32, and the same bytes tried as a probe key. Not a test by itself:
 * tests/fuzz/fuzz_smoke.sh runs it for a few seconds under ctest.
 *
 * Build and run by hand (from the source root, after any cmake configure into build/):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Wno-unknown-pragmas \
 *         -Iprobes/include -Iprobes -Isrc/common -Ibuild/generated \
 *         tests/fuzz/fuzz_probe_reader.c probes/*.c src/common/util.c -lz -lm -o fuzz_probe_reader
 *   mkdir -p corpus && build/tests/unit/probes/ld_probe_sample corpus
 *   ./fuzz_probe_reader corpus -max_len=65536 -max_total_time=600
 * or configure with CC=clang cmake -DLD_FUZZ=ON, which builds the target fuzz_probe_reader. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layerdiff/probes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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

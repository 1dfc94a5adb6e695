/* streams.h — constructed probe streams for the comparator's stream-level tests: a small Qwen3
 * shape (H 64, Hq 4, Hkv 2, D 16, I 128, V 256, 3 layers, a 5-token prompt and 2 decode steps),
 * every tag with a full payload, written with the probe library's writer. A scenario says how the
 * candidate differs from the reference. Test code only. */
#ifndef LD_COMPARE_TEST_STREAMS_H
#define LD_COMPARE_TEST_STREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerdiff/probes.h"

enum { TS_H = 64, TS_HQ = 4, TS_HKV = 2, TS_D = 16, TS_I = 128, TS_V = 256, TS_LAYERS = 3,
       TS_PROMPT = 5, TS_DECODE = 2 };

typedef struct ts_scenario {
    const char *implementation;  /* header "implementation"; NULL: "reference" */
    ld_dtype dtype;              /* element type written (values rounded to it) */
    const char *perturb_key;     /* "S0.L1.q_norm": this key gets relative error `big`, every
                                    later key (execution order) relative error `downstream` */
    double big, downstream;
    double noise;                /* relative noise on every key */
    const char *skip_key;        /* key left out */
    const char *reshape_key;     /* key written with a different shape ([T*rows, cols]) */
    const char *nan_key;         /* one element of this key becomes NaN */
    const char *truncate_after;  /* the file is cut inside the record after this key */
    bool header_only;            /* header and end record, no probe */
    bool stats_only;             /* stats payload: no data */
    bool foreign;                /* foreign tag names, no layer field, q_proj flat [T, Hq*D],
                                    an extra "debug_checksum" record per layer */
    int token_shift;             /* added to prompt token 2 */
    int decoded_shift;           /* added to the token fed to decode step 2 */
    int argmax_shift;            /* added to the argmax token of step 1 */
    const char *fingerprint;     /* NULL: "fp-0123456789abcdef" */
    const char *fault;           /* one injected fault, or NULL */
    int hidden_size;             /* header model config override (0: TS_H) */
} ts_scenario;

/* Writes the stream of sc to path; returns 0, or -1 with a message in msg. */
int ts_write(const char *path, const ts_scenario *sc, char *msg, size_t size);

/* Writes every named scenario of the test suite into dir (ref.jsonl, same.jsonl, ...);
 * returns 0 or -1 with a message. */
int ts_write_all(const char *dir, char *msg, size_t size);

#endif

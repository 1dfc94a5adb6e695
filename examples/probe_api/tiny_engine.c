/* tiny_engine.c — the probe API in 30 lines: a toy "engine" (one RMSNorm) instrumented the way a
 * real one would be. Run it with LAYERDIFF_PROBES=out.jsonl; without it, probing is off. */
#include <math.h>
#include <stdio.h>

#include "layerdiff/probes.h"

int main(void)
{
    enum { T = 2, H = 8 };
    float x[T][H], y[T][H];
    for (int t = 0; t < T; t++)
        for (int i = 0; i < H; i++)
            x[t][i] = (float)(t + 1) * 0.1f * (float)(i - 3);

    int32_t prompt[T] = {42, 7};
    ld_run_info run = {.implementation = "tiny-engine", .tokens = prompt, .n_tokens = T};
    ld_error err;
    ld_sink *sink = NULL; /* stays NULL (probing off) when LAYERDIFF_PROBES is unset */
    if (ld_sink_open_env(&sink, &run, &err) != LD_OK) {
        fprintf(stderr, "tiny_engine: %s\n", err.msg);
        return 2;
    }
    for (int t = 0; t < T; t++) { /* the "kernel": y = x / rms(x) */
        double ss = 0;
        for (int i = 0; i < H; i++)
            ss += (double)x[t][i] * x[t][i];
        for (int i = 0; i < H; i++)
            y[t][i] = (float)(x[t][i] / sqrt(ss / H + 1e-6));
    }
    int64_t shape[2] = {T, H};
    if (ld_sink_wants(sink, 0, 0, "attn_norm") && /* ask before copying anything */
        ld_sink_emit(sink, 0, 0, "attn_norm", 0, LD_F32, shape, 2, y, &err) != LD_OK)
        fprintf(stderr, "tiny_engine: %s\n", err.msg);
    int32_t argmax[1] = {3};
    ld_run_end end = {.ok = true, .tokens = argmax, .n_tokens = 1};
    if (ld_sink_close(sink, &end, &err) != LD_OK) {
        fprintf(stderr, "tiny_engine: %s\n", err.msg);
        return 2;
    }
    return 0;
}

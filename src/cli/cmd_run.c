/* cmd_run.c — 'layerdiff run': loads a checkpoint, runs the forward pass on the chosen backend
 * (CPU reference, optionally emulating a low-precision kernel set or with injected faults; or the
 * CUDA path) and writes the probe stream. Prints the generated token ids on stdout. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "faults.h"
#include "forward.h"
#include "layerdiff/probes.h"
#include "model.h"
#include "util.h"
#ifdef LD_HAVE_CUDA
#include "cuda_backend.h"
#endif

static const char *const CMD = "run";

/* The chosen backend's header object and forward pass. In a build without CUDA, --backend cuda
 * never gets this far: it exits with a message first. */
static char *backend_json_for(bool cuda, const ld_model *m, const ld_forward_options *ro,
                              ld_error *err)
{
#ifdef LD_HAVE_CUDA
    if (cuda)
        return ld_cuda_backend_json(m, err);
#endif
    (void)cuda, (void)m, (void)err;
    return ld_ref_backend_json(ro);
}

static ld_status generate(bool cuda, const ld_model *m, const int32_t *prompt, size_t n_prompt,
                          int decode, const ld_forward_options *ro, int32_t *tokens_out,
                          int32_t *decoded_out, ld_error *err)
{
#ifdef LD_HAVE_CUDA
    if (cuda)
        return ld_cuda_generate(m, prompt, n_prompt, decode, ro, tokens_out, decoded_out, err);
#endif
    (void)cuda;
    return ld_ref_generate(m, prompt, n_prompt, decode, ro, tokens_out, decoded_out, err);
}

static void usage(void)
{
    printf(
        "usage: layerdiff run --model DIR --tokens 1,2,3 [options]\n"
        "\n"
        "Runs the Qwen3 forward pass over the prompt (step 0) and DECODE greedy decode steps,\n"
        "writing a probe after every op (DESIGN.md section 3) and printing the generated ids.\n"
        "\n"
        "  --model DIR          checkpoint directory (config.json + safetensors)\n"
        "  --tokens IDS         prompt token ids, comma-separated (at least one)\n"
        "  --decode N           greedy decode steps after the prefill (default 0; with --follow,\n"
        "                       the followed stream's count)\n"
        "  --backend ref|cuda   ref: the fp32 CPU reference (default); cuda: the optimized path\n"
        "                       (bf16 on one GPU; decode steps run as a CUDA graph when no probe\n"
        "                       is written, unless LAYERDIFF_CUDA_GRAPH=0)\n"
        "  --probes OUT.jsonl   where to write probes (default: $LAYERDIFF_PROBES; none: no probes)\n"
        "  --payload stats|full stats only (default) or stats plus the tensor data\n"
        "  --encoding ENC       payload encoding: base64, zlib+base64, shuffle+zlib+base64\n"
        "  --tags GLOBS         only these tags, e.g. 'q_*,logits' (default all)\n"
        "  --layers RANGES      only these layers, e.g. '0-3,10' (model-level tags always)\n"
        "  --steps RANGES       only these steps, e.g. '0' or '1-3'\n"
        "  --follow REF.jsonl   feed the decode steps the tokens REF decoded, not our own argmax,\n"
        "                       so both runs see identical inputs even where an argmax flips\n"
        "  --emulate bf16|f16   ref backend: emulate a correct low-precision kernel set (weights and\n"
        "                       every stored activation rounded to that dtype, fp32 accumulation)\n"
        "  --sr-seed N          with --emulate: round stored activations stochastically (seed N > 0)\n"
        "                       instead of to nearest even; the variants 'calibrate' samples\n"
        "  --inject SPEC        inject a fault, FAULT[@LAYER][=VALUE]; repeatable; without @LAYER\n"
        "                       the fault hits every layer (see --list-faults)\n"
        "  --list-faults        print the fault zoo and exit\n"
        "  --threads N          OpenMP threads for the ref backend (default: all cores)\n"
        "  --quiet              no progress line on stderr\n"
        "  -h, --help           this text\n"
        "\n"
        "Environment: LAYERDIFF_PROBES, LAYERDIFF_PROBE_TAGS, LAYERDIFF_PROBE_LAYERS,\n"
        "LAYERDIFF_PROBE_STEPS, LAYERDIFF_PROBE_PAYLOAD, LAYERDIFF_PROBE_ENCODING set the same as\n"
        "the options above; options win.\n"
        "\n"
        "exit codes: 0 ok, 2 bad usage or input (the message names the file or option)\n");
}

typedef struct progress_state {
    bool on;
    double start;
} progress_state;

static void progress(void *ctx, int step, int n_steps, int layer, int n_layers)
{
    progress_state *p = ctx;
    if (!p->on)
        return;
    fprintf(stderr, "\rrun: step %d/%d  layer %2d/%d  %.1fs ", step, n_steps - 1, layer + 1,
            n_layers, ld_seconds() - p->start);
    fflush(stderr);
}

/* The decoded tokens of a reference stream, for --follow: its prompt must be ours. */
static ld_status read_follow(const char *path, const int32_t *prompt, size_t n_prompt,
                             int32_t **out, size_t *n_out, ld_error *err)
{
    ld_reader_options ro;
    ld_reader_options_init(&ro);
    ro.decode_data = false; /* only the tokens matter */
    ld_reader *r = NULL;
    ld_status st = ld_reader_open(&r, path, &ro, err);
    if (st != LD_OK)
        return st;
    const ld_header_info *h = ld_reader_header(r);
    if (h->n_tokens != n_prompt || memcmp(h->tokens, prompt, n_prompt * sizeof *prompt) != 0) {
        ld_reader_close(r);
        return ld_error_set(err, LD_E_USAGE,
                            "--follow %s: that stream's prompt differs from --tokens; following it "
                            "would compare different inputs",
                            path);
    }
    const ld_probe *p;
    do {
        st = ld_reader_next(r, &p, err);
    } while (st == LD_OK && p);
    if (st != LD_OK) {
        ld_reader_close(r);
        return st;
    }
    const ld_end_info *e = ld_reader_end(r);
    const int32_t *src = e->decoded;
    size_t n = e->n_decoded;
    if (!src || n == 0) { /* an older producer without "decoded": its argmax tokens fed the steps */
        src = e->tokens;
        n = e->n_tokens ? e->n_tokens - 1 : 0;
    }
    *out = malloc((n ? n : 1) * sizeof **out);
    if (!*out) {
        ld_reader_close(r);
        return ld_error_set(err, LD_E_NOMEM, "out of memory");
    }
    if (n)
        memcpy(*out, src, n * sizeof **out);
    *n_out = n;
    ld_reader_close(r);
    return LD_OK;
}

int ld_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},   {"tokens", required_argument, NULL, 't'},
        {"decode", required_argument, NULL, 'n'},  {"backend", required_argument, NULL, 'b'},
        {"probes", required_argument, NULL, 'p'},  {"payload", required_argument, NULL, 'P'},
        {"encoding", required_argument, NULL, 'E'}, {"tags", required_argument, NULL, 'T'},
        {"layers", required_argument, NULL, 'L'},  {"steps", required_argument, NULL, 'S'},
        {"follow", required_argument, NULL, 'f'},  {"emulate", required_argument, NULL, 'e'},
        {"inject", required_argument, NULL, 'i'},  {"list-faults", no_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 'j'}, {"quiet", no_argument, NULL, 'q'},
        {"sr-seed", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    const char *model_dir = NULL, *tokens_arg = NULL, *probes_path = NULL, *follow_path = NULL;
    const char *backend = "ref";
    int decode = -1, threads = 0, sr_seed = 0;
    bool quiet = false;
    ld_dtype emulate = LD_F32;
    ld_fault_set faults = {0};
    ld_error err = {0};
    ld_sink_config sc;
    ld_sink_config_init(&sc);
    if (ld_sink_config_from_env(&sc, &err) != LD_OK)
        return ld_cli_fail(CMD, &err);

    optind = 1;
    int c;
    while ((c = ld_cli_getopt(argc, argv, "h", opts, CMD)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 't': tokens_arg = optarg; break;
        case 'n':
            if (!ld_parse_int(optarg, 0, 1 << 24, &decode))
                return ld_cli_usage_error(CMD, "--decode '%s' is not a non-negative integer", optarg);
            break;
        case 'b':
            if (strcmp(optarg, "ref") && strcmp(optarg, "cuda"))
                return ld_cli_usage_error(CMD, "--backend '%s': use ref or cuda", optarg);
            backend = optarg;
            break;
        case 'p': probes_path = optarg; break;
        case 'P':
            if (!strcmp(optarg, "stats"))
                sc.payload = LD_PAYLOAD_STATS;
            else if (!strcmp(optarg, "full"))
                sc.payload = LD_PAYLOAD_FULL;
            else
                return ld_cli_usage_error(CMD, "--payload '%s': use stats or full", optarg);
            break;
        case 'E':
            if (!ld_encoding_parse(optarg, &sc.encoding))
                return ld_cli_usage_error(
                    CMD, "--encoding '%s': use base64, zlib+base64 or shuffle+zlib+base64", optarg);
            break;
        case 'T': sc.tags = optarg; break;
        case 'L': sc.layers = optarg; break;
        case 'S': sc.steps = optarg; break;
        case 'f': follow_path = optarg; break;
        case 'e':
            if (!strcmp(optarg, "bf16"))
                emulate = LD_BF16;
            else if (!strcmp(optarg, "f16"))
                emulate = LD_F16;
            else
                return ld_cli_usage_error(CMD, "--emulate '%s': use bf16 or f16", optarg);
            break;
        case 'i':
            if (ld_fault_set_add(&faults, optarg, &err) != LD_OK)
                return ld_cli_fail(CMD, &err);
            break;
        case 'l':
            printf("faults (--inject FAULT[@LAYER][=VALUE]; without @LAYER every layer):\n%s",
                   ld_fault_list_text());
            return LD_EXIT_OK;
        case 'j':
            if (!ld_parse_int(optarg, 1, 1024, &threads))
                return ld_cli_usage_error(CMD, "--threads '%s' is not an integer in [1, 1024]", optarg);
            break;
        case 'q': quiet = true; break;
        case 's':
            if (!ld_parse_int(optarg, 1, INT32_MAX, &sr_seed))
                return ld_cli_usage_error(CMD, "--sr-seed '%s' is not a positive integer", optarg);
            break;
        case 'h': usage(); return LD_EXIT_OK;
        default: return LD_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return ld_cli_usage_error(CMD, "unexpected argument '%s' (see 'layerdiff run --help')",
                                  argv[optind]);
    if (!model_dir)
        return ld_cli_usage_error(CMD, "missing --model DIR (see 'layerdiff run --help')");
    if (!tokens_arg)
        return ld_cli_usage_error(CMD, "missing --tokens IDS (see 'layerdiff run --help')");
    if (sr_seed && emulate == LD_F32)
        return ld_cli_usage_error(CMD, "--sr-seed needs --emulate bf16|f16");
    if (emulate != LD_F32 && strcmp(backend, "ref"))
        return ld_cli_usage_error(CMD, "--emulate applies to --backend ref only");
    if (threads)
        omp_set_num_threads(threads);

    /* --backend cuda: the device is checked before any file is read, so that a machine without
     * one, or a build without CUDA, says so at once (exit 2). */
    bool cuda = !strcmp(backend, "cuda");
    if (cuda) {
#ifdef LD_HAVE_CUDA
        if (ld_cuda_device_check(NULL, 0, &err) != LD_OK) {
            ld_error_prefix(&err, "--backend cuda");
            return ld_cli_fail(CMD, &err);
        }
#else
        return ld_cli_usage_error(CMD, "--backend cuda: this layerdiff was built without CUDA "
                                       "(nvcc was not found at configure time)");
#endif
    }

    int32_t *prompt = NULL, *follow = NULL;
    size_t n_prompt = 0, n_follow = 0;
    if (ld_parse_i32_list(tokens_arg, 0, INT32_MAX, &prompt, &n_prompt, &err) != LD_OK) {
        ld_error_prefix(&err, "--tokens");
        return ld_cli_fail(CMD, &err);
    }
    int rc = LD_EXIT_USAGE;
    ld_model *m = NULL;
    ld_sink *sink = NULL;
    char *backend_json = NULL, *model_json = NULL;
    int32_t *tokens_out = NULL, *decoded_out = NULL;

    if (follow_path) {
        if (read_follow(follow_path, prompt, n_prompt, &follow, &n_follow, &err) != LD_OK)
            goto fail;
        if (decode < 0)
            decode = (int)n_follow;
    }
    if (decode < 0)
        decode = 0;
    if (ld_model_open(&m, model_dir, &err) != LD_OK)
        goto fail;

    ld_forward_options ro = {.faults = &faults, .emulate = emulate, .sr_seed = (uint32_t)sr_seed,
                         .follow = follow, .n_follow = n_follow};
    progress_state ps = {.on = !quiet && ld_cli_stderr_is_tty(), .start = ld_seconds()};
    ro.progress = progress;
    ro.progress_ctx = &ps;

    const char *fault_texts[LD_MAX_FAULTS];
    for (int i = 0; i < faults.n; i++)
        fault_texts[i] = faults.items[i].text;
    backend_json = backend_json_for(cuda, m, &ro, &err);
    model_json = ld_model_header_json(m);
    if (!backend_json || !model_json) {
        if (err.code == LD_OK)
            ld_error_set(&err, LD_E_NOMEM, "out of memory");
        goto fail;
    }
    const char *impl = cuda ? "cuda" : emulate == LD_F32 ? "reference" : "reference-emulated";
    ld_run_info info = {.implementation = impl,
                        .backend_json = backend_json, .model_json = model_json,
                        .tokens = prompt, .n_tokens = n_prompt, .decode_steps = decode,
                        .faults = fault_texts, .n_faults = (size_t)faults.n};
    ld_status st = probes_path ? ld_sink_open(&sink, probes_path, &sc, &info, &err)
                               : ld_sink_open_env(&sink, &info, &err);
    if (st != LD_OK)
        goto fail;
    ro.sink = sink;

    tokens_out = calloc((size_t)decode + 1, sizeof *tokens_out);
    decoded_out = calloc((size_t)decode + 1, sizeof *decoded_out);
    if (!tokens_out || !decoded_out) {
        ld_error_set(&err, LD_E_NOMEM, "out of memory");
        goto fail;
    }
    st = generate(cuda, m, prompt, n_prompt, decode, &ro, tokens_out, decoded_out, &err);
    if (ps.on)
        fprintf(stderr, "\r%60s\r", "");
    if (st != LD_OK) {
        /* Close the stream with an error end record naming the last completed key. */
        ld_run_end failed_end = {.ok = false, .message = err.msg};
        ld_error cerr;
        ld_sink_close(sink, &failed_end, &cerr);
        sink = NULL;
        goto fail;
    }
    ld_run_end end = {.ok = true, .tokens = tokens_out, .n_tokens = (size_t)decode + 1,
                      .decoded = decoded_out, .n_decoded = (size_t)decode};
    uint64_t n_probes = ld_sink_probe_count(sink);
    st = ld_sink_close(sink, &end, &err);
    sink = NULL;
    if (st != LD_OK)
        goto fail;
    for (int i = 0; i <= decode; i++)
        printf("%s%d", i ? "," : "", (int)tokens_out[i]);
    printf("\n");
    if (!quiet)
        fprintf(stderr, "run: %s, %zu prompt tokens + %d decode steps, %.2f s, %llu probes%s%s\n",
                info.implementation, n_prompt, decode, ld_seconds() - ps.start,
                (unsigned long long)n_probes, probes_path ? " -> " : "",
                probes_path ? probes_path : "");
    rc = LD_EXIT_OK;
    goto done;
fail:
    rc = ld_cli_fail(CMD, &err);
done:
    if (sink) {
        ld_run_end abort_end = {.ok = false, .message = err.msg};
        ld_sink_close(sink, &abort_end, NULL);
    }
    free(tokens_out);
    free(decoded_out);
    free(backend_json);
    free(model_json);
    ld_model_close(m);
    free(prompt);
    free(follow);
    return rc;
}

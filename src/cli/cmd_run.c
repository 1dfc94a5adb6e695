/* cmd_run.c — 'layerdiff run': loads a checkpoint, runs the forward pass on the chosen backend
 * (CPU reference, optionally emulating a low-precision kernel set or with injected faults; or the
 * CUDA path) and writes the probe stream. The prompt is ids or text (encoded with the checkpoint's
 * tokenizer.json). Prints the generated token ids on stdout, and with their text on stderr. */
#include <limits.h>
#include <omp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "faults.h"
#include "layerdiff/probes.h"
#include "model.h"
#include "ops.h"
#include "prompt.h"
#include "run.h"
#include "util.h"

static const char *const CMD = "run";

static void usage(void)
{
    printf(
        "usage: layerdiff run --model DIR (--tokens 1,2,3 | --prompt TEXT | --prompt-file F)\n"
        "                     [options]\n"
        "\n"
        "Runs the Qwen3 forward pass over the prompt (step 0) and DECODE greedy decode steps,\n"
        "writing a probe after every op (tags and op graph: docs/tags.md) and printing the\n"
        "generated ids (stderr: each with its text, when the checkpoint has a tokenizer.json).\n"
        "\n"
        "  --model DIR          checkpoint directory (config.json + safetensors)\n"
        "  --tokens IDS         prompt token ids, comma-separated (at least one)\n"
        "  --prompt TEXT        the prompt as text, encoded with the checkpoint's tokenizer.json\n"
        "                       as Hugging Face tokenizers would (special tokens such as\n"
        "                       <|im_start|> included); the header records text and ids\n"
        "  --prompt-file F      the same, the text read from file F, or from standard input\n"
        "                       for - (UTF-8, at most 64 MiB)\n"
        "  --decode N           greedy decode steps after the prefill (default 0; with --follow,\n"
        "                       the followed stream's count)\n"
        "  --backend ref|cuda   ref: the fp32 CPU reference (default); cuda: the optimized path\n"
        "                       (bf16 on one GPU; decode steps run as a CUDA graph when no probe\n"
        "                       is written, unless LAYERDIFF_CUDA_GRAPH=0)\n"
        "  --probes OUT.jsonl   where to write probes (default: $LAYERDIFF_PROBES); 'none': no\n"
        "                       probes even when LAYERDIFF_PROBES is set (./none for a file)\n"
        "  --payload stats|full stats only (default) or stats plus the tensor data\n"
        "  --encoding ENC       payload encoding: base64, zlib+base64, shuffle+zlib+base64\n"
        "  --tags GLOBS         only these tags, e.g. 'q_*,logits' (default all)\n"
        "  --layers RANGES      only these layers, e.g. '0-3,10' (model-level tags always)\n"
        "  --steps RANGES       only these steps, e.g. '0' or '1-3'\n"
        "  --follow REF.jsonl   feed the decode steps the tokens REF decoded, not our own argmax,\n"
        "                       so both runs see identical inputs even where an argmax flips\n"
        "  --feed REF.jsonl     teacher forcing: after each op's probe, replace its tensor by\n"
        "                       REF's (a full-payload stream of this model and prompt), rounded\n"
        "                       to our storage dtype; records of replaced tensors say \"fed\";\n"
        "                       implies --follow REF.jsonl unless --follow is given (cuda: not\n"
        "                       q_norm, k_norm)\n"
        "  --feed-tags GLOBS    only replace these tags (default all)\n"
        "  --feed-layers RANGES only replace in these layers (model-level tags always)\n"
        "  --feed-steps RANGES  only replace in these steps\n"
        "  --emulate bf16|f16   ref backend: emulate a correct low-precision kernel set (weights and\n"
        "                       every stored activation rounded to that dtype, fp32 accumulation)\n"
        "  --sr-seed N          with --emulate: round stored activations stochastically (seed N > 0)\n"
        "                       instead of to nearest even; the variants 'calibrate' samples\n"
        "  --inject SPEC        inject a fault, FAULT[@LAYER][=VALUE]; repeatable; without @LAYER\n"
        "                       the fault hits every layer (see --list-faults)\n"
        "  --list-faults        print the fault zoo and exit\n"
        "  --list-kernels       print the ref backend's matmul kernel paths, whether this CPU\n"
        "                       runs each, and the one chosen (LD_REF_KERNEL), then exit\n"
        "  --threads N          OpenMP threads for the ref backend (default: all cores)\n"
        "  --quiet              nothing on stderr but errors (no progress line, notes, token\n"
        "                       texts or summary line)\n"
        "  -h, --help           this text\n"
        "\n"
        "Environment: LAYERDIFF_PROBES, LAYERDIFF_PROBE_TAGS, LAYERDIFF_PROBE_LAYERS,\n"
        "LAYERDIFF_PROBE_STEPS, LAYERDIFF_PROBE_PAYLOAD, LAYERDIFF_PROBE_ENCODING set the same as\n"
        "the options above; options win. LD_REF_KERNEL=auto|avx512|avx2|generic on x86-64,\n"
        "auto|neon|generic on aarch64, forces the ref backend's matmul kernels (default auto:\n"
        "the fastest this CPU runs; every path gives the same bits; a path the CPU cannot run\n"
        "is an error). The CUDA backend's own switches (LAYERDIFF_CUDA_GRAPH, _FUSE_NORM,\n"
        "_TILED_ATTN, _PDL, _PROFILE, _TRAP_AFTER, _PROBE_SLOTS) are listed in docs/cuda.md.\n"
        "\n"
        "exit codes: 0 ok, 2 bad usage or input (the message names the file or option; a\n"
        "checkpoint truncated or rewritten during the run, the probe stream then ending with\n"
        "an error end record; a feed of another model or prompt, or without a fed key; a step\n"
        "with no finite logit to pick the next token from, without --follow), 3 a feed cut\n"
        "short\n");
}

typedef struct progress_state {
    bool on;
    bool quiet; /* --quiet: no notes either */
    bool drawn; /* a progress line is on the terminal, to be cleared */
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
    p->drawn = true;
}

/* A remark of the backend's on the run (not an error), on its own line. */
static void notice(void *ctx, const char *text)
{
    progress_state *p = ctx;
    if (p->quiet)
        return;
    if (p->drawn)
        fprintf(stderr, "\r%60s\r", "");
    p->drawn = false;
    fprintf(stderr, "run: note: %s\n", text);
}

/* ---- a checkpoint truncated under the run --------------------------------------------------- */

/* What the SIGBUS handler needs: the model whose mappings may lose pages, and the open sink. */
static const ld_model *volatile bus_model;
static ld_sink *volatile bus_sink;

/* Appends the string s to buf (size bytes, n used), leaving room for a NUL; async-signal-safe. */
static size_t append_text(char *buf, size_t size, size_t n, const char *s)
{
    while (*s && n + 1 < size)
        buf[n++] = *s++;
    buf[n] = '\0';
    return n;
}

/* SIGBUS: a page of the mapped checkpoint is gone, the file was truncated under the run (cp over
 * it does that). Only async-signal-safe work: name the file, end the probe stream with an error
 * end record naming the last key, say so on stderr, exit 2. A SIGBUS outside the checkpoint's
 * mappings is not ours: the default action, once the faulting access reruns. Several threads
 * can fault at once (the ops run in parallel): the first ends the stream and the process, the
 * others wait for that (two end records would make the stream unreadable). */
static void on_sigbus(int sig, siginfo_t *si, void *context)
{
    static atomic_flag taken = ATOMIC_FLAG_INIT; /* lock-free: safe in a handler */
    (void)context;
    const char *path = ld_model_file_at(bus_model, si->si_addr);
    if (!path) {
        signal(sig, SIG_DFL);
        return;
    }
    if (atomic_flag_test_and_set(&taken))
        for (;;)
            pause();
    static const char prefix[] = "layerdiff run: ";
    char line[PATH_MAX + 512];
    size_t n = append_text(line, sizeof line, 0, prefix);
    n = append_text(line, sizeof line, n, path);
    n = append_text(line, sizeof line, n, " changed during the run (truncated?): reading its "
                                          "mapped weights failed (SIGBUS); a checkpoint must not "
                                          "be rewritten while a run reads it");
    ld_sink *sink = bus_sink;
    ld_sink_emergency_end(sink, line + sizeof prefix - 1);
    if (sink) {
        const char *key = ld_sink_last_key(sink);
        n = append_text(line, sizeof line, n, " (the probe stream ends with an error end record ");
        n = append_text(line, sizeof line, n, *key ? "after " : "before the first probe");
        n = append_text(line, sizeof line, n, key);
        n = append_text(line, sizeof line, n, ")");
    }
    n = append_text(line, sizeof line, n, "\n");
    ssize_t written = write(STDERR_FILENO, line, n); /* nothing is left to do if it fails */
    (void)written;
    _exit(LD_EXIT_USAGE);
}

/* The options once parsed. */
typedef struct run_args {
    const char *model_dir, *tokens_arg, *probes_path, *follow_path, *backend;
    const char *prompt_arg, *prompt_file;
    const char *feed_path, *feed_tags, *feed_layers, *feed_steps;
    int decode, sr_seed, threads;
    bool quiet;
    ld_dtype emulate;
    ld_fault_set faults;
    ld_sink_config sc;
} run_args;

/* --list-kernels: one line per kernel path, best first; exit 2 when LD_REF_KERNEL is invalid. */
static int list_kernels(void)
{
    ld_error err = {0};
    ld_status st = ld_ref_kernel_ready(&err);
    const char *chosen = st == LD_OK ? ld_ref_kernel_path() : NULL;
    for (size_t i = 0; i < ld_ref_kernel_count(); i++) {
        bool usable;
        const char *name = ld_ref_kernel_name(i, &usable);
        printf("%-8s %s%s\n", name, usable ? "runs on this CPU" : "this CPU cannot run it",
               chosen && !strcmp(chosen, name) ? " (chosen)" : "");
    }
    return st == LD_OK ? LD_EXIT_OK : ld_cli_fail(CMD, &err);
}

/* One option into a; returns -1 to go on, else the exit code (help, usage error). */
static int parse_option(run_args *a, int c)
{
    ld_error err = {0};
    switch (c) {
    case 'm': a->model_dir = optarg; break;
    case 't': a->tokens_arg = optarg; break;
    case 'x': a->prompt_arg = optarg; break;
    case 'X': a->prompt_file = optarg; break;
    case 'n':
        if (!ld_parse_int(optarg, 0, 1 << 24, &a->decode))
            return ld_cli_usage_error(CMD, "--decode '%s' is not a non-negative integer", optarg);
        break;
    case 'b':
        if (!ld_backend_find(optarg))
            return ld_cli_usage_error(CMD, "--backend '%s': use ref or cuda", optarg);
        a->backend = optarg;
        break;
    case 'p': a->probes_path = optarg; break;
    case 'P':
        if (!strcmp(optarg, "stats"))
            a->sc.payload = LD_PAYLOAD_STATS;
        else if (!strcmp(optarg, "full"))
            a->sc.payload = LD_PAYLOAD_FULL;
        else
            return ld_cli_usage_error(CMD, "--payload '%s': use stats or full", optarg);
        break;
    case 'E':
        if (!ld_encoding_parse(optarg, &a->sc.encoding))
            return ld_cli_usage_error(
                CMD, "--encoding '%s': use base64, zlib+base64 or shuffle+zlib+base64", optarg);
        break;
    case 'T': a->sc.tags = optarg; break;
    case 'L': a->sc.layers = optarg; break;
    case 'S': a->sc.steps = optarg; break;
    case 'f': a->follow_path = optarg; break;
    case 'F': a->feed_path = optarg; break;
    case 'G': a->feed_tags = optarg; break;
    case 'Y': a->feed_layers = optarg; break;
    case 'Z': a->feed_steps = optarg; break;
    case 'e':
        if (!strcmp(optarg, "bf16"))
            a->emulate = LD_BF16;
        else if (!strcmp(optarg, "f16"))
            a->emulate = LD_F16;
        else
            return ld_cli_usage_error(CMD, "--emulate '%s': use bf16 or f16", optarg);
        break;
    case 'i':
        if (ld_fault_set_add(&a->faults, optarg, &err) != LD_OK)
            return ld_cli_fail(CMD, &err);
        break;
    case 'l':
        printf("faults (--inject FAULT[@LAYER][=VALUE]; without @LAYER every layer):\n%s",
               ld_fault_list_text());
        return LD_EXIT_OK;
    case 'K': return list_kernels();
    case 'j':
        if (!ld_parse_int(optarg, 1, 1024, &a->threads))
            return ld_cli_usage_error(CMD, "--threads '%s' is not an integer in [1, 1024]", optarg);
        break;
    case 'q': a->quiet = true; break;
    case 's':
        if (!ld_parse_int(optarg, 1, INT32_MAX, &a->sr_seed))
            return ld_cli_usage_error(CMD, "--sr-seed '%s' is not a positive integer", optarg);
        break;
    case 'h': usage(); return LD_EXIT_OK;
    default: return LD_EXIT_USAGE;
    }
    return -1;
}

/* Parses argv into a; returns -1 to go on, else the exit code (help, usage error). */
static int parse_args(int argc, char **argv, run_args *a)
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
        {"sr-seed", required_argument, NULL, 's'}, {"feed", required_argument, NULL, 'F'},
        {"feed-tags", required_argument, NULL, 'G'}, {"feed-layers", required_argument, NULL, 'Y'},
        {"feed-steps", required_argument, NULL, 'Z'}, {"list-kernels", no_argument, NULL, 'K'},
        {"prompt", required_argument, NULL, 'x'},  {"prompt-file", required_argument, NULL, 'X'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    *a = (run_args){.backend = "ref", .decode = -1, .emulate = LD_F32};
    ld_error err = {0};
    ld_sink_config_init(&a->sc);
    if (ld_sink_config_from_env(&a->sc, &err) != LD_OK)
        return ld_cli_fail(CMD, &err);
    optind = 1;
    int c, rc;
    while ((c = ld_cli_getopt(argc, argv, "h", opts, CMD)) != -1)
        if ((rc = parse_option(a, c)) >= 0)
            return rc;
    if (optind < argc)
        return ld_cli_usage_error(CMD, "unexpected argument '%s' (see 'layerdiff run --help')",
                                  argv[optind]);
    if (!a->model_dir)
        return ld_cli_usage_error(CMD, "missing --model DIR (see 'layerdiff run --help')");
    int n_inputs = (a->tokens_arg != NULL) + (a->prompt_arg != NULL) + (a->prompt_file != NULL);
    if (n_inputs == 0)
        return ld_cli_usage_error(CMD, "missing the prompt: --tokens IDS, --prompt TEXT or "
                                       "--prompt-file F (see 'layerdiff run --help')");
    if (n_inputs > 1)
        return ld_cli_usage_error(CMD, "--tokens, --prompt and --prompt-file exclude each other");
    if (a->sr_seed && a->emulate == LD_F32)
        return ld_cli_usage_error(CMD, "--sr-seed needs --emulate bf16|f16");
    if (a->emulate != LD_F32 && strcmp(a->backend, "ref"))
        return ld_cli_usage_error(CMD, "--emulate applies to --backend ref only");
    if ((a->feed_tags || a->feed_layers || a->feed_steps) && !a->feed_path)
        return ld_cli_usage_error(CMD, "--feed-tags, --feed-layers and --feed-steps need --feed");
    if (a->threads)
        omp_set_num_threads(a->threads);
    return -1;
}

/* " 13 \" the\", 42 \" cat\"" and a newline on stderr: ids with their text; -1, the token of a
 * step whose logits hold no finite value, as "-1 (no finite logit)". */
static void print_token_texts(const ld_tokenizer *tok, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char label[160] = "(no finite logit)";
        if (ids[i] >= 0)
            ld_tokenizer_label(tok, ids[i], label, sizeof label);
        fprintf(stderr, "%s %d %s", i ? "," : "", (int)ids[i], label);
    }
    fprintf(stderr, "\n");
}

int ld_cmd_run(int argc, char **argv)
{
    run_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    const ld_backend *backend = ld_cli_backend(CMD, a.backend, &rc);
    if (!backend)
        return rc;
    ld_error err = {0};
    int32_t *prompt = NULL, *follow = NULL;
    size_t n_prompt = 0, n_follow = 0, text_len = 0;
    char *text = NULL;
    ld_tokenizer *tok = NULL;
    ld_model *m = NULL;
    ld_run_result res = {0};
    if (ld_prompt_read(a.model_dir, a.tokens_arg, a.prompt_arg, a.prompt_file, &prompt,
                       &n_prompt, &text, &text_len, &tok, &err) != LD_OK)
        goto fail;
    if (!a.quiet)
        ld_cli_prompt_note(CMD, text, text_len);
    /* The fed tensors were computed on REF's decoded tokens: a fed run follows them too. */
    const char *follow_opt = a.follow_path ? "--follow" : "--feed";
    const char *follow_path = a.follow_path ? a.follow_path : a.feed_path;
    if (follow_path) {
        if (ld_run_read_follow(follow_opt, follow_path, prompt, n_prompt, &follow, &n_follow,
                               &err) != LD_OK)
            goto fail;
        if (a.decode < 0)
            a.decode = (int)n_follow;
    }
    if (a.decode < 0)
        a.decode = 0;
    if (ld_model_open(&m, a.model_dir, &err) != LD_OK)
        goto fail;
    /* Only to show the tokens' text: a checkpoint without a usable one runs all the same (looked
     * for once the checkpoint opened, so that a bad --model gets one message, not two). */
    if (!tok && !a.quiet && ld_prompt_tokenizer(a.model_dir, NULL, &tok, &err) != LD_OK)
        fprintf(stderr, "run: note: token text not shown: %s\n", err.msg);
    /* Handled only while the run reads the mappings: the handler reads the model. */
    bus_model = m;
    struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO}, old_sa;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &old_sa);

    progress_state ps = {.on = !a.quiet && ld_cli_stderr_is_tty(), .quiet = a.quiet,
                         .start = ld_seconds()};
    /* The files the run reads besides the checkpoint (whose files the pipeline checks), which its
     * output must not overwrite: the streams, and the prompt's file (not standard input). */
    const char *inputs[3];
    size_t n_inputs = 0;
    if (a.prompt_file && strcmp(a.prompt_file, "-"))
        inputs[n_inputs++] = a.prompt_file;
    if (a.follow_path)
        inputs[n_inputs++] = a.follow_path;
    if (a.feed_path)
        inputs[n_inputs++] = a.feed_path;
    /* --probes none: no probes, whatever LAYERDIFF_PROBES says (a file named none: ./none). */
    bool no_probes = a.probes_path && !strcmp(a.probes_path, "none");
    if (no_probes)
        a.probes_path = NULL;
    ld_run_options ro = {.backend = backend, .model = m, .prompt = prompt, .n_prompt = n_prompt,
                         .prompt_text = text, .prompt_text_len = text_len,
                         .decode_steps = a.decode, .follow = follow, .n_follow = n_follow,
                         .faults = &a.faults, .emulate = a.emulate, .sr_seed = (uint32_t)a.sr_seed,
                         .probes_path = a.probes_path, .sink_config = &a.sc,
                         .probes_from_env = !no_probes, .inputs = inputs, .n_inputs = n_inputs,
                         .live_sink = &bus_sink, .feed_path = a.feed_path,
                         .feed_tags = a.feed_tags, .feed_layers = a.feed_layers,
                         .feed_steps = a.feed_steps, .progress = progress, .progress_ctx = &ps,
                         .notice = notice, .notice_ctx = &ps};
    ld_status st = ld_run(&ro, &res, &err);
    sigaction(SIGBUS, &old_sa, NULL);
    bus_model = NULL;
    if (ps.drawn)
        fprintf(stderr, "\r%60s\r", "");
    if (st != LD_OK)
        goto fail;
    for (int i = 0; i <= a.decode; i++)
        printf("%s%d", i ? "," : "", (int)res.tokens[i]);
    printf("\n");
    if (!a.quiet && tok) {
        fprintf(stderr, "run: prompt:");
        print_token_texts(tok, prompt, n_prompt);
        fprintf(stderr, "run: tokens:");
        print_token_texts(tok, res.tokens, (size_t)a.decode + 1);
    }
    /* Which matmul kernels the fp32 reference ran (every path gives the same bits). */
    bool ref = !strcmp(res.implementation, "reference") && ld_ref_kernel_path();
    if (!a.quiet)
        fprintf(stderr,
                "run: %s%s%s%s, %zu prompt token%s + %d decode step%s, %.2f s, "
                "%llu probe%s%s%s\n",
                res.implementation, ref ? " (" : "", ref ? ld_ref_kernel_path() : "",
                ref ? " kernels)" : "", n_prompt, n_prompt == 1 ? "" : "s", a.decode,
                a.decode == 1 ? "" : "s", ld_seconds() - ps.start,
                (unsigned long long)res.n_probes, res.n_probes == 1 ? "" : "s",
                a.probes_path ? " -> " : "",
                a.probes_path ? a.probes_path : "");
    rc = LD_EXIT_OK;
    goto done;
fail:
    rc = ld_cli_fail(CMD, &err);
done:
    ld_run_result_free(&res);
    ld_model_close(m);
    free(prompt);
    free(follow);
    free(text);
    ld_tokenizer_free(tok);
    return rc;
}

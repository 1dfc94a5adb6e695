/* cmd_gen_model.c — 'layerdiff gen-model DIR': writes a random Qwen3 checkpoint from a preset and
 * checks it by opening it again. Options and messages only; the work is in model/gen.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gen.h"
#include "model.h"
#include "util.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: layerdiff gen-model DIR [--preset NAME] [--seed N] [--dtype bf16|f16|f32]\n"
            "                           [--tied|--untied] [--shards N] [--force]\n"
            "\n"
            "Writes a Qwen3 checkpoint with random weights into DIR (created if missing):\n"
            "config.json and model.safetensors, or N shards model-0000K-of-0000N.safetensors\n"
            "with model.safetensors.index.json, laid out as Hugging Face transformers writes\n"
            "them; and tokenizer.json, a byte-level BPE sized to the vocabulary, so that\n"
            "'layerdiff run --prompt TEXT' works on it. The same arguments always produce\n"
            "byte-identical files.\n"
            "\n"
            "options:\n"
            "  --preset NAME   model shape (default tiny):\n"
            "                    tiny        H 64, 4 layers, 4 heads / 2 kv heads, head_dim 32,\n"
            "                                I 176, V 512 (about 0.5 MB in bf16)\n"
            "                    small       H 256, 4 layers, 8 / 2 heads, head_dim 64, I 691,\n"
            "                                V 1000 (about 7 MB)\n"
            "                    qwen3-0.6b  the exact shapes of Qwen3-0.6B: H 1024, 28 layers,\n"
            "                                16 / 8 heads, head_dim 128, I 3072, V 151936\n"
            "                                (about 1.2 GB in bf16)\n"
            "  --seed N        seed of the weights, 0 to 2^63-1 (default 0)\n"
            "  --dtype T       storage dtype of every tensor: bf16 (default), f16 or f32\n"
            "  --tied          lm_head shares the embedding (the presets' default)\n"
            "  --untied        store a separate lm_head.weight\n"
            "  --shards N      split the weights into N files with an index (default 1)\n"
            "  --force         replace a checkpoint already in DIR (its config.json,\n"
            "                  tokenizer.json, model*.safetensors and index) once the new one is\n"
            "                  completely written beside it (room for both is needed): a failed\n"
            "                  run leaves the old one whole; without --force such a DIR is refused\n"
            "  -h, --help      this text\n"
            "\n"
            "Weights: projections and embeddings N(0, 0.02^2), norm weights uniform in\n"
            "[0.8, 1.2); each value depends only on the seed, the tensor name and its index,\n"
            "so the dtype is the only thing that changes them and sharding never does.\n"
            "On success prints the directory, its size and its fingerprint.\n");
}

typedef struct progress_state {
    double last;
    bool tty;     /* one line redrawn in place; else (a log) a line at the start and per quarter */
    bool started; /* a log line was written */
    int quarter;  /* quarters done when it was */
} progress_state;

/* Without progress a large checkpoint is ~40 s of silence; small ones finish before it matters. */
#define LOG_PROGRESS_MIN_BYTES (100u * 1000u * 1000u)

static void show_progress(void *ctx, size_t done, size_t total)
{
    progress_state *p = ctx;
    if (!p->tty) {
        if (total < LOG_PROGRESS_MIN_BYTES) return;
        int q = (int)(4.0 * (double)done / (double)total);
        if (p->started && q <= p->quarter) return;
        p->started = true;
        p->quarter = q;
        fprintf(stderr, "gen-model: %.0f / %.0f MB written\n", (double)done / 1e6,
                (double)total / 1e6);
        return;
    }
    double now = ld_seconds();
    if (done < total && now - p->last < 0.2) return;
    p->last = now;
    fprintf(stderr, "\rgen-model: %.0f / %.0f MB", (double)done / 1e6, (double)total / 1e6);
    if (done >= total) fputc('\n', stderr);
    fflush(stderr);
}

int ld_cmd_gen_model(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"preset", required_argument, NULL, 'p'},
        {"seed", required_argument, NULL, 's'},
        {"dtype", required_argument, NULL, 'd'},
        {"tied", no_argument, NULL, 't'},
        {"untied", no_argument, NULL, 'u'},
        {"shards", required_argument, NULL, 'n'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ld_gen_options opt = {.preset = "tiny", .seed = 0, .dtype = LD_BF16, .tied = -1, .shards = 1};
    bool tied_set = false;
    optind = 1;
    int c;
    /* The leading ':' makes getopt report a missing value as ':', which ld_cli_getopt words as
     * "needs a value" (without it a long option's missing value reads as an unknown option). */
    while ((c = ld_cli_getopt(argc, argv, ":h", longopts, "gen-model")) != -1) {
        int64_t v;
        switch (c) {
        case 'p':
            opt.preset = optarg;
            break;
        case 's':
            if (!ld_parse_i64(optarg, 0, INT64_MAX, &v))
                return ld_cli_usage_error("gen-model", "--seed '%s': not an integer in [0, 2^63-1]",
                                          optarg);
            opt.seed = (uint64_t)v;
            break;
        case 'd':
            if (strcmp(optarg, "bf16") && strcmp(optarg, "f16") && strcmp(optarg, "f32"))
                return ld_cli_usage_error("gen-model", "--dtype '%s': use bf16, f16 or f32",
                                          optarg);
            ld_dtype_parse(optarg, &opt.dtype);
            break;
        case 't':
        case 'u':
            if (tied_set && opt.tied != (c == 't'))
                return ld_cli_usage_error("gen-model", "--tied and --untied exclude each other");
            tied_set = true;
            opt.tied = c == 't';
            break;
        case 'n':
            if (!ld_parse_int(optarg, 1, 99999, &opt.shards))
                return ld_cli_usage_error("gen-model",
                                          "--shards '%s': not an integer in [1, 99999]", optarg);
            break;
        case 'f':
            opt.force = 1;
            break;
        case 'h':
            usage(stdout);
            return LD_EXIT_OK;
        default:
            return LD_EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return ld_cli_usage_error("gen-model", "missing DIR (see 'layerdiff gen-model --help')");
    if (optind + 1 < argc)
        return ld_cli_usage_error("gen-model", "unexpected argument '%s' (one DIR only)",
                                  argv[optind + 1]);
    const char *dir = argv[optind];
    if (!*dir)
        return ld_cli_usage_error("gen-model", "an empty DIR: give the directory to write");
    ld_config cfg;
    ld_error err = {0};
    if (ld_preset_config(opt.preset, &cfg, &err) != LD_OK) return ld_cli_fail("gen-model", &err);

    progress_state prog = {.tty = ld_cli_stderr_is_tty()};
    opt.progress = show_progress;
    opt.progress_ctx = &prog;
    if (ld_gen_model(dir, &opt, &err) != LD_OK) return ld_cli_fail("gen-model", &err);

    /* Open what was written: the generator's output goes through the same checks as any input. */
    ld_model *m = NULL;
    if (ld_model_open(&m, dir, &err) != LD_OK) return ld_cli_fail("gen-model", &err);
    printf("%s: preset %s, %s, %s, seed %" PRIu64 ", %zu file%s, %.1f MB, fingerprint %s\n", dir,
           opt.preset, ld_dtype_name(opt.dtype), m->cfg.tie_word_embeddings ? "tied" : "untied",
           opt.seed, m->n_files, m->n_files == 1 ? "" : "s", (double)m->checkpoint_bytes / 1e6,
           m->fingerprint);
    ld_model_close(m);
    return LD_EXIT_OK;
}

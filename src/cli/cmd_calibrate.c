/* cmd_calibrate.c — 'layerdiff calibrate': measures the noise floor of an honest low-precision
 * implementation on one model and input. Option parsing and progress messages only; the algorithm
 * (the fp32 reference against emulated variants, the largest error per key) is in src/pipeline/. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibrate.h"
#include "cli.h"
#include "model.h"
#include "prompt.h"
#include "util.h"

static const char *const CMD = "calibrate";

static void usage(void)
{
    printf("usage: layerdiff calibrate --model DIR (--tokens IDS | --prompt TEXT | --prompt-file F)\n"
           "                           --dtype bf16|f16 -o FLOOR.json\n"
           "                           [--decode N] [--variants N] [--threads N] [--quiet]\n"
           "\n"
           "Measures, for every probe key of this model and input, the error an honest %s\n"
           "implementation makes: the fp32 reference against emulated kernel sets of that dtype\n"
           "(weights and stored activations rounded, fp32 accumulation), one rounding to nearest\n"
           "even and N-1 stochastic-rounding variants. The largest error per key is the floor;\n"
           "'layerdiff compare --floor FLOOR.json' then judges a candidate by its error over it.\n"
           "Each variant's ops are also replayed on its own inputs: the largest op-local error per\n"
           "key is the budget 'compare --model' holds a candidate's local errors to (k x it).\n"
           "A floor holds for the model and input it was measured on.\n"
           "\n"
           "  --model DIR      checkpoint directory\n"
           "  --tokens IDS     prompt token ids, comma-separated\n"
           "  --prompt TEXT    the prompt as text, encoded with the checkpoint's tokenizer.json\n"
           "  --prompt-file F  the same, the text read from file F, or standard input for -\n"
           "                   (UTF-8, at most 64 MiB)\n"
           "  --decode N       decode steps (default 0)\n"
           "  --dtype T        bf16 or f16: the precision of the candidates to judge\n"
           "  -o, --output F   the floor file to write (schemas/floor.schema.json)\n"
           "  --variants N     emulated variants, 2..16 (default 4: nearest even + 3 stochastic)\n"
           "  --threads N      OpenMP threads (default: all cores)\n"
           "  --quiet          no progress on stderr\n"
           "  -h, --help       this text\n"
           "\n"
           "exit codes: 0 ok, 2 bad usage or input\n",
           "bf16 or f16");
}

/* The progress lines on stderr, one per run. */
static void progress(void *ctx, int variant, int n_variants, const char *name)
{
    (void)ctx;
    if (variant == 0)
        fprintf(stderr, "calibrate: the fp32 reference ...\n");
    else
        fprintf(stderr, "calibrate: variant %d/%d: %s ...\n", variant, n_variants, name);
}

int ld_cmd_calibrate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},   {"tokens", required_argument, NULL, 't'},
        {"decode", required_argument, NULL, 'n'},  {"dtype", required_argument, NULL, 'd'},
        {"output", required_argument, NULL, 'o'},  {"variants", required_argument, NULL, 'v'},
        {"threads", required_argument, NULL, 'j'}, {"quiet", no_argument, NULL, 'q'},
        {"prompt", required_argument, NULL, 'x'},  {"prompt-file", required_argument, NULL, 'X'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    const char *model_dir = NULL, *tokens_arg = NULL, *out_path = NULL;
    const char *prompt_arg = NULL, *prompt_file = NULL;
    int decode = 0, variants = 4, threads = 0;
    bool quiet = false, have_dtype = false;
    ld_dtype dtype = LD_BF16;
    optind = 1;
    int c;
    while ((c = ld_cli_getopt(argc, argv, "ho:", opts, CMD)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 't': tokens_arg = optarg; break;
        case 'x': prompt_arg = optarg; break;
        case 'X': prompt_file = optarg; break;
        case 'n':
            if (!ld_parse_int(optarg, 0, 1 << 24, &decode))
                return ld_cli_usage_error(CMD, "--decode '%s' is not a non-negative integer", optarg);
            break;
        case 'd':
            if (!ld_dtype_parse(optarg, &dtype) || dtype == LD_F32)
                return ld_cli_usage_error(CMD, "--dtype '%s': use bf16 or f16", optarg);
            have_dtype = true;
            break;
        case 'o': out_path = optarg; break;
        case 'v':
            if (!ld_parse_int(optarg, 2, 16, &variants))
                return ld_cli_usage_error(CMD, "--variants '%s' is not an integer in [2, 16]", optarg);
            break;
        case 'j':
            if (!ld_parse_int(optarg, 1, 1024, &threads))
                return ld_cli_usage_error(CMD, "--threads '%s' is not an integer in [1, 1024]", optarg);
            break;
        case 'q': quiet = true; break;
        case 'h': usage(); return LD_EXIT_OK;
        default: return LD_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return ld_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!model_dir || !(tokens_arg || prompt_arg || prompt_file) || !out_path || !have_dtype)
        return ld_cli_usage_error(CMD, "needs --model, the prompt (--tokens, --prompt or "
                                       "--prompt-file), --dtype and -o (see 'layerdiff "
                                       "calibrate --help')");
    if (threads)
        omp_set_num_threads(threads);

    ld_error err = {0};
    int32_t *prompt = NULL;
    size_t n_prompt = 0, n_keys = 0, text_len = 0;
    char *text = NULL;
    ld_tokenizer *tok = NULL;
    ld_model *m = NULL;
    int rc = LD_EXIT_USAGE;
    double t0 = ld_seconds();

    /* The prompt's file is an input too (the checkpoint's files are checked by ld_calibrate). */
    if (prompt_file && strcmp(prompt_file, "-") &&
        ld_refuse_overwrite(out_path, &prompt_file, 1, &err) != LD_OK) {
        ld_error_prefix(&err, "-o");
        goto fail;
    }
    if (ld_prompt_read(model_dir, tokens_arg, prompt_arg, prompt_file, &prompt, &n_prompt, &text,
                       &text_len, &tok, &err) != LD_OK)
        goto fail;
    if (!quiet)
        ld_cli_prompt_note("calibrate", text, text_len);
    if (ld_model_open(&m, model_dir, &err) != LD_OK)
        goto fail;
    ld_calibrate_options co = {.model = m, .prompt = prompt, .n_prompt = n_prompt,
                               .decode_steps = decode, .dtype = dtype, .variants = variants,
                               .output_path = out_path, .progress = quiet ? NULL : progress};
    if (ld_calibrate(&co, &n_keys, &err) != LD_OK)
        goto fail;
    if (!quiet)
        fprintf(stderr, "calibrate: %zu keys, %d variants, %.1f s -> %s\n", n_keys, variants,
                ld_seconds() - t0, out_path);
    rc = LD_EXIT_OK;
    goto done;
fail:
    rc = ld_cli_fail(CMD, &err);
done:
    ld_model_close(m);
    free(prompt);
    free(text);
    ld_tokenizer_free(tok);
    return rc;
}

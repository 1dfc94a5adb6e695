/* cmd_calibrate.c — 'layerdiff calibrate': measures the noise floor of an honest low-precision
 * implementation on one model and input. Runs the fp32 reference, then several emulated kernel sets
 * of the chosen dtype (round to nearest even, and stochastic-rounding variants), compares each with
 * the reference and keeps, per probe key, the largest error: the floor compare --floor judges by. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "compare.h"
#include "floor.h"
#include "forward.h"
#include "replay.h"
#include "model.h"
#include "util.h"

static const char *const CMD = "calibrate";

static void usage(void)
{
    printf("usage: layerdiff calibrate --model DIR --tokens IDS --dtype bf16|f16 -o FLOOR.json\n"
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

/* One run of the model into a full-payload probe file. */
static ld_status run_to_file(const ld_model *m, const int32_t *prompt, size_t n_prompt, int decode,
                             ld_dtype emulate, uint32_t seed, const int32_t *follow,
                             const char *path, int32_t *decoded, ld_error *err)
{
    ld_sink_config sc;
    ld_sink_config_init(&sc);
    sc.payload = LD_PAYLOAD_FULL;
    ld_forward_options ro = {.emulate = emulate, .sr_seed = seed, .follow = follow,
                         .n_follow = follow ? (size_t)decode : 0};
    char *backend = ld_ref_backend_json(&ro), *model = ld_model_header_json(m);
    int32_t *tokens = calloc((size_t)decode + 1, sizeof *tokens);
    int32_t *fed = calloc((size_t)decode + 1, sizeof *fed);
    ld_sink *sink = NULL;
    ld_status st = LD_OK;
    if (!backend || !model || !tokens || !fed) {
        st = ld_error_set(err, LD_E_NOMEM, "out of memory");
        goto out;
    }
    ld_run_info info = {.implementation = emulate == LD_F32 ? "reference" : "reference-emulated",
                        .backend_json = backend, .model_json = model, .tokens = prompt,
                        .n_tokens = n_prompt, .decode_steps = decode};
    if ((st = ld_sink_open(&sink, path, &sc, &info, err)) != LD_OK)
        goto out;
    ro.sink = sink;
    st = ld_ref_generate(m, prompt, n_prompt, decode, &ro, tokens, fed, err);
    ld_run_end end = {.ok = st == LD_OK, .message = st == LD_OK ? NULL : err->msg,
                      .tokens = tokens, .n_tokens = st == LD_OK ? (size_t)decode + 1 : 0,
                      .decoded = fed, .n_decoded = st == LD_OK ? (size_t)decode : 0};
    ld_error cerr;
    ld_status cst = ld_sink_close(sink, &end, &cerr);
    if (st == LD_OK && cst != LD_OK) {
        *err = cerr;
        st = cst;
    }
    if (st == LD_OK && decoded)
        memcpy(decoded, fed, (size_t)decode * sizeof *fed);
out:
    free(backend);
    free(model);
    free(tokens);
    free(fed);
    return st;
}

int ld_cmd_calibrate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},   {"tokens", required_argument, NULL, 't'},
        {"decode", required_argument, NULL, 'n'},  {"dtype", required_argument, NULL, 'd'},
        {"output", required_argument, NULL, 'o'},  {"variants", required_argument, NULL, 'v'},
        {"threads", required_argument, NULL, 'j'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    const char *model_dir = NULL, *tokens_arg = NULL, *out_path = NULL;
    int decode = 0, variants = 4, threads = 0;
    bool quiet = false, have_dtype = false;
    ld_dtype dtype = LD_BF16;
    optind = 1;
    int c;
    while ((c = ld_cli_getopt(argc, argv, "ho:", opts, CMD)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 't': tokens_arg = optarg; break;
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
    if (!model_dir || !tokens_arg || !out_path || !have_dtype)
        return ld_cli_usage_error(CMD, "needs --model, --tokens, --dtype and -o (see 'layerdiff "
                                       "calibrate --help')");
    if (threads)
        omp_set_num_threads(threads);

    ld_error err = {0};
    int32_t *prompt = NULL, *decoded = NULL;
    size_t n_prompt = 0;
    ld_model *m = NULL;
    ld_floor *floor = NULL;
    ld_compare_result *res = NULL;
    ld_reader *rd = NULL;
    char dir[] = "/tmp/layerdiff-calibrate-XXXXXX";
    bool have_dir = false;
    char ref_path[64], var_path[64];
    int rc = LD_EXIT_USAGE;
    double t0 = ld_seconds();

    if (ld_parse_i32_list(tokens_arg, 0, INT32_MAX, &prompt, &n_prompt, &err) != LD_OK) {
        ld_error_prefix(&err, "--tokens");
        goto fail;
    }
    if (ld_model_open(&m, model_dir, &err) != LD_OK)
        goto fail;
    if (!mkdtemp(dir)) {
        ld_error_set(&err, LD_E_IO, "cannot create a temporary directory under /tmp");
        goto fail;
    }
    have_dir = true;
    snprintf(ref_path, sizeof ref_path, "%s/ref.jsonl", dir);
    snprintf(var_path, sizeof var_path, "%s/variant.jsonl", dir);
    decoded = calloc((size_t)decode + 1, sizeof *decoded);
    if (!decoded) {
        ld_error_set(&err, LD_E_NOMEM, "out of memory");
        goto fail;
    }
    if (!quiet)
        fprintf(stderr, "calibrate: the fp32 reference ...\n");
    if (run_to_file(m, prompt, n_prompt, decode, LD_F32, 0, NULL, ref_path, decoded, &err) != LD_OK)
        goto fail;
    /* The floor records the reference stream's identity, as compare will check it. */
    if (ld_reader_open(&rd, ref_path, NULL, &err) != LD_OK)
        goto fail;
    const ld_header_info *h = ld_reader_header(rd);
    floor = ld_floor_create(dtype, h->fingerprint, h->model_json, prompt, n_prompt, decode);
    ld_reader_close(rd);
    rd = NULL;
    if (!floor) {
        ld_error_set(&err, LD_E_NOMEM, "out of memory");
        goto fail;
    }
    ld_compare_options co;
    ld_compare_options_init(&co);
    for (int v = 0; v < variants; v++) {
        char name[64];
        if (v == 0)
            snprintf(name, sizeof name, "%s, round to nearest even", ld_dtype_name(dtype));
        else
            snprintf(name, sizeof name, "%s, stochastic rounding seed %d", ld_dtype_name(dtype), v);
        if (!quiet)
            fprintf(stderr, "calibrate: variant %d/%d: %s ...\n", v + 1, variants, name);
        if (run_to_file(m, prompt, n_prompt, decode, dtype, (uint32_t)v, decoded, var_path, NULL,
                        &err) != LD_OK)
            goto fail;
        if (ld_compare_run(ref_path, var_path, &co, &res, &err) != LD_OK)
            goto fail;
        /* The op-local errors of an honest variant: the budgets compare --model applies. */
        if (ld_replay_run(res, ref_path, var_path, m, NULL, &err) != LD_OK)
            goto fail;
        if (ld_floor_add_variant(floor, name, v == 0, res, &err) != LD_OK)
            goto fail;
        ld_compare_result_destroy(res);
        res = NULL;
    }
    if (ld_floor_write(floor, out_path, &err) != LD_OK)
        goto fail;
    if (!quiet)
        fprintf(stderr, "calibrate: %zu keys, %d variants, %.1f s -> %s\n", ld_floor_count(floor),
                variants, ld_seconds() - t0, out_path);
    rc = LD_EXIT_OK;
    goto done;
fail:
    rc = ld_cli_fail(CMD, &err);
done:
    if (have_dir) {
        unlink(ref_path);
        unlink(var_path);
        rmdir(dir);
    }
    ld_compare_result_destroy(res);
    ld_reader_close(rd);
    ld_floor_destroy(floor);
    ld_model_close(m);
    free(prompt);
    free(decoded);
    return rc;
}

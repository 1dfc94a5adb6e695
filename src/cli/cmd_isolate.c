/* cmd_isolate.c — 'layerdiff isolate REF --model DIR': reruns a candidate (the ref backend,
 * emulated and with injected faults as `run` takes them) fed the reference's tensors, and prints
 * whether the first divergence is its op's own error or inherited (isolate.h), with the one-line
 * conclusion. Options, messages and exit codes only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "faults.h"
#include "isolate.h"
#include "model.h"
#include "util.h"

static const char *const CMD = "isolate";

static void usage(void)
{
    printf(
        "usage: layerdiff isolate REF.jsonl --model DIR [options]\n"
        "\n"
        "Teacher forcing: runs the candidate three times on REF's prompt and tokens, and compares\n"
        "each with REF (a full-payload stream of DIR): unfed, to find the first divergence (and\n"
        "replay's local error of its op); with every tensor fed from REF, so each op sees REF's\n"
        "exact inputs (is the op wrong itself?); and with the divergent tensor fed (does the rest\n"
        "of the run recover?). Prints the findings and a one-sentence conclusion.\n"
        "\n"
        "  --model DIR          the checkpoint REF was run on\n"
        "  --key KEY            isolate this key (S0.L2.mlp_act) instead of the first divergence\n"
        "  --backend ref|cuda   the candidate's backend (default ref; cuda cannot be fed\n"
        "                       q_norm/k_norm, which the all-fed run needs: exit 2)\n"
        "  --emulate bf16|f16   the candidate emulates a low-precision kernel set\n"
        "  --inject SPEC        inject a fault into the candidate, as for 'run'; repeatable\n"
        "  --work DIR           keep the three candidate streams (plain.jsonl, exact.jsonl,\n"
        "                       fed.jsonl) in DIR, an existing directory (default: a\n"
        "                       temporary directory, removed)\n"
        "  -h, --help           this text\n"
        "\n"
        "exit codes: 0 no divergence, or no op wrong on exact inputs (accumulated rounding);\n"
        "1 an op is wrong on exact inputs; 2 bad usage or input (REF of another model, without\n"
        "payloads); 3 a stream cut short\n");
}

typedef struct iso_args {
    const char *ref, *model_dir, *key, *work, *backend;
    ld_dtype emulate;
    ld_fault_set faults;
} iso_args;

static int parse_args(int argc, char **argv, iso_args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},   {"key", required_argument, NULL, 'k'},
        {"backend", required_argument, NULL, 'b'}, {"emulate", required_argument, NULL, 'e'},
        {"inject", required_argument, NULL, 'i'},  {"work", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    *a = (iso_args){.backend = "ref", .emulate = LD_F32};
    ld_error err = {0};
    optind = 1;
    int c;
    while ((c = ld_cli_getopt(argc, argv, "h", opts, CMD)) != -1) {
        switch (c) {
        case 'm': a->model_dir = optarg; break;
        case 'k': a->key = optarg; break;
        case 'w': a->work = optarg; break;
        case 'b':
            if (!ld_backend_find(optarg))
                return ld_cli_usage_error(CMD, "--backend '%s': use ref or cuda", optarg);
            a->backend = optarg;
            break;
        case 'e':
            if (!ld_dtype_parse(optarg, &a->emulate) || a->emulate == LD_F32)
                return ld_cli_usage_error(CMD, "--emulate '%s': use bf16 or f16", optarg);
            break;
        case 'i':
            if (ld_fault_set_add(&a->faults, optarg, &err) != LD_OK)
                return ld_cli_fail(CMD, &err);
            break;
        case 'h': usage(); return LD_EXIT_OK;
        default: return LD_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc)
        return ld_cli_usage_error(CMD, "expected one REF.jsonl (see 'layerdiff isolate --help')");
    a->ref = argv[optind];
    if (!a->model_dir)
        return ld_cli_usage_error(CMD, "missing --model DIR (see 'layerdiff isolate --help')");
    return -1;
}

/* REF's prompt (malloc'd). */
static ld_status ref_prompt(const char *path, int32_t **prompt, size_t *n, ld_error *err)
{
    ld_reader_options ro;
    ld_reader_options_init(&ro);
    ro.decode_data = false;
    ld_reader *r;
    ld_status st = ld_reader_open(&r, path, &ro, err);
    if (st != LD_OK)
        return st;
    const ld_header_info *h = ld_reader_header(r);
    *n = h->n_tokens;
    *prompt = malloc((h->n_tokens ? h->n_tokens : 1) * sizeof **prompt);
    if (*prompt)
        memcpy(*prompt, h->tokens, h->n_tokens * sizeof **prompt);
    ld_reader_close(r);
    return *prompt ? LD_OK : ld_error_set(err, LD_E_NOMEM, "out of memory");
}

static void print_result(const ld_isolate_result *r)
{
    char key[LD_TAG_NAME_MAX + 32], first[LD_TAG_NAME_MAX + 32];
    if (!r->diverged) {
        printf("conclusion: %s\n", r->conclusion);
        return;
    }
    ld_key_format(&r->key, key, sizeof key);
    ld_key_format(&r->exact_first, first, sizeof first);
    printf("isolate: %s (%s)\n", key, r->op[0] ? r->op : "custom op");
    printf("  unfed:            rel_l2 %.3g; %zu of %zu later probes fail\n", r->plain_rel_l2,
           r->later_fail_plain, r->n_later);
    if (isnan(r->replay_local))
        printf("  replay:           not replayed\n");
    else
        printf("  replay:           local error %.3g on its own inputs (budget %.3g): %s\n",
               r->replay_local, r->replay_budget, r->replay_over ? "over budget" : "within");
    printf("  exact inputs:     rel_l2 %.3g (tolerance %.3g): %s; %zu keys fail with all fed%s%s\n",
           r->exact_rel_l2, r->exact_tol, r->exact_fails ? "fails" : "passes", r->n_exact_fail,
           r->n_exact_fail ? ", the first " : "", r->n_exact_fail ? first : "");
    printf("  output fed:       %zu of %zu later probes fail\n", r->later_fail_fed, r->n_later);
    printf("conclusion: %s\n", r->conclusion);
}

int ld_cmd_isolate(int argc, char **argv)
{
    iso_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    const ld_backend *backend = ld_cli_backend(CMD, a.backend, &rc);
    if (!backend)
        return rc;
    ld_error err = {0};
    int32_t *prompt = NULL, *follow = NULL;
    size_t n_prompt = 0, n_follow = 0;
    ld_model *m = NULL;
    char tmp[4096] = "";
    bool own_work = !a.work;
    ld_isolate_result res;
    if (ref_prompt(a.ref, &prompt, &n_prompt, &err) != LD_OK ||
        ld_run_read_follow("isolate", a.ref, prompt, n_prompt, &follow, &n_follow, &err) !=
            LD_OK ||
        ld_model_open(&m, a.model_dir, &err) != LD_OK)
        goto fail;
    if (own_work) {
        const char *base = getenv("TMPDIR");
        snprintf(tmp, sizeof tmp, "%s/layerdiff-isolate-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmp)) {
            ld_error_set(&err, LD_E_IO, "%s: cannot create a work directory", tmp);
            goto fail;
        }
        a.work = tmp;
    }
    ld_isolate_job j = {.ref_path = a.ref, .model_dir = a.model_dir, .key = a.key,
                        .work_dir = a.work};
    ld_run_options_init(&j.cand);
    j.cand.backend = backend;
    j.cand.model = m;
    j.cand.prompt = prompt;
    j.cand.n_prompt = n_prompt;
    j.cand.decode_steps = (int)n_follow;
    j.cand.follow = follow;
    j.cand.n_follow = n_follow;
    j.cand.faults = &a.faults;
    j.cand.emulate = a.emulate;
    ld_compare_options_init(&j.compare);
    ld_status st = ld_isolate(&j, &res, &err);
    if (own_work) {
        const char *names[] = {"plain.jsonl", "exact.jsonl", "fed.jsonl"};
        char p[4200];
        for (size_t i = 0; i < LD_ARRAY_LEN(names); i++) {
            snprintf(p, sizeof p, "%s/%s", tmp, names[i]);
            unlink(p);
        }
        rmdir(tmp);
    }
    if (st != LD_OK)
        goto fail;
    print_result(&res);
    rc = res.diverged && res.n_exact_fail ? LD_EXIT_DIVERGED : LD_EXIT_OK;
    goto done;
fail:
    rc = ld_cli_fail(CMD, &err);
done:
    ld_model_close(m);
    free(prompt);
    free(follow);
    return rc;
}

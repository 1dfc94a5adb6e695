/* cmd_compare.c — 'layerdiff compare REF CAND': parses options, runs the comparator (compare/),
 * prints the terminal report, writes the requested report files and picks the exit code. The
 * comparison itself lives in compare/; this file only talks to the user. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "compare.h"
#include "floor.h"
#include "gate.h"
#include "model.h"
#include "replay.h"
#include "util.h"

#define MAX_ALLOW 256
#define MAX_FLOORS 2 /* one per low-precision dtype: bf16, f16 */

enum { OPT_FLOOR = 1000, OPT_FLOOR_K, OPT_FLOOR_ULP, OPT_MODEL };
/* Regression gate options (gate.h, docs/gate.md). */
enum { OPT_BASELINE = 1100, OPT_REGRESS_FACTOR, OPT_REGRESS_SLACK, OPT_UPDATE_BASELINE, OPT_EXACT };

static void usage(FILE *out)
{
    fprintf(out,
"usage: layerdiff compare REF.jsonl CAND.jsonl [options]\n"
"\n"
"Aligns two probe streams by key (step, layer, tag), measures every pair (relative L2 error,\n"
"cosine, max abs/rel error, SNR, ULPs, NaN/Inf counts) and reports the first divergence: the\n"
"earliest probe, in the reference's order, that fails its tolerance, with its inputs' errors so\n"
"you can tell whether that op made the error or inherited it. Streams may be gzip-compressed.\n"
"\n"
"options:\n"
"  --policy P.json         tolerance overrides per tag glob, dtype, layers and steps\n"
"                          (schemas/policy.schema.json); the built-in defaults, chosen by the\n"
"                          candidate probe's dtype (f32, bf16, f16), apply to everything else\n"
"  --map M.json            rename foreign tags to ours in both streams, e.g.\n"
"                          layer_3_attn_q_proj_raw -> layer 3, q_proj (schemas/map.schema.json)\n"
"  --json R.json           write the full result as JSON (schemas/report.schema.json)\n"
"  --md R.md               write a short Markdown summary, for a pull-request comment\n"
"  --html R.html           write one self-contained HTML file: summary, charts of error per\n"
"                          layer, heat map of the first divergence, every probe\n"
"  --junit R.xml           write JUnit XML: one test case per probe\n"
"  --brief                 terminal table with only failing probes and their context\n"
"  --quiet                 no terminal report (files and exit code only)\n"
"  --allow-missing GLOB    keys allowed to be missing on either side or to differ in shape;\n"
"                          repeat it or give a comma list. A glob with a '.' matches the key\n"
"                          ('S*.L27.*', 'S0.logits'), one without matches the tag ('logits',\n"
"                          'q_*'); 'end' allows a missing or failed end record (a stream cut\n"
"                          short); '*' allows everything. An empty stream is never allowed.\n"
"  --allow-input-mismatch  compare even when the prompts, model configs or decoded tokens differ\n"
"                          (stated in every report)\n"
"  --fail-on LIST          what makes the exit code non-zero, comma-separated: divergence,\n"
"                          incomplete, argmax, fingerprint, faults, nodata, regression, all,\n"
"                          none (default: divergence,incomplete; regression is added with\n"
"                          --baseline)\n"
"  --floor FLOOR.json      judge the probes of the floor's dtype by their error over a noise\n"
"                          floor measured with 'layerdiff calibrate' on this model and input:\n"
"                          a probe fails when its relative L2 error is more than k times the\n"
"                          floor and some element is more than the ULP cap off. Replaces the\n"
"                          policy for those probes; give one file per dtype (bf16, f16)\n"
"  --floor-k K             the floor multiple (default 2)\n"
"  --floor-ulp N           errors of at most N ULPs never fail under a floor (default 2)\n"
"  --model DIR             op-local attribution: rerun the reference op of every probe on the\n"
"                          candidate's own inputs (weights from DIR, the checkpoint both runs\n"
"                          used; needs full payloads) and report each probe's local error (made\n"
"                          by its op) beside its inherited error (brought by its inputs); the\n"
"                          first probe whose local error is over budget is named the culprit.\n"
"                          Budgets: k x the floor's local error with --floor, else a few\n"
"                          roundings of the candidate's dtype. Reads both streams a second time\n"
"  --baseline B.json       regression gate: B.json is the --json report of an earlier, accepted\n"
"                          candidate against the same reference (same model, input and probe\n"
"                          keys, else exit 2). Fails (exit 1, --fail-on regression, on by\n"
"                          default with a baseline) when a probe's relative L2 error grew over\n"
"                          F x its baseline error + S, and lists every probe's old and new\n"
"                          error by growth, the first regression in execution order and the\n"
"                          probes that improved (docs/gate.md)\n"
"  --regress-factor F      growth that counts as a regression (default 3: honest bf16/f16\n"
"                          rounding variants move a probe's error by up to ~2.2x)\n"
"  --regress-slack S       absolute rel_l2 always allowed on top, for probes at ~0 error\n"
"                          (default 1e-06)\n"
"  --update-baseline       accept this candidate: write its JSON report to the --baseline file\n"
"                          (the old one is not read) when the comparison passes; commit it\n"
"  --exact                 bit-exactness of two runs of one implementation (OLD.jsonl\n"
"                          NEW.jsonl): compares every key's payload bytes (stats and head\n"
"                          values when a payload is absent, which is said) and names the first\n"
"                          key that changed. Exit 0 identical, 1 changed, 3 a stream cut short.\n"
"                          Goes with --json, --md, --quiet and --color only\n"
"  --topk K                logits top-k agreement (1-64, default 5)\n"
"  --color WHEN            auto (default: when stdout is a terminal and NO_COLOR is unset),\n"
"                          always, never\n"
"  -h, --help              this text\n"
"\n"
"exit codes:\n"
"  0  nothing that --fail-on names happened\n"
"  1  divergence: a probe fails its tolerance (or, with --fail-on argmax, an argmax differs;\n"
"     with --baseline, a probe's error grew over the factor; with --exact, a key changed)\n"
"  2  bad usage or input: unreadable or malformed stream, different prompts, model configs or\n"
"     decoded tokens (unless --allow-input-mismatch); with --fail-on fingerprint / faults,\n"
"     different weight fingerprints / fault lists\n"
"  3  incomplete: keys missing, shapes differing, a stream cut short or ended in error, unless\n"
"     --allow-missing covers it (or --fail-on leaves out incomplete); with --fail-on nodata,\n"
"     probes compared by stats only. An empty or header-only stream is always 3.\n"
"  When several apply, 2 wins over 1, and 1 over 3: a divergence found in what was compared\n"
"  is a definite failure, while missing keys only make the answer partial.\n");
}

int ld_cmd_compare(int argc, char **argv)
{
    /* Single-character values (with their short forms in shortopts) let ld_cli_getopt tell a
     * missing value from an unknown option. */
    static const char shortopts[] = "P:M:j:d:H:J:bqa:AF:k:c:h";
    static const struct option longopts[] = {
        {"policy", required_argument, NULL, 'P'},
        {"map", required_argument, NULL, 'M'},
        {"json", required_argument, NULL, 'j'},
        {"md", required_argument, NULL, 'd'},
        {"html", required_argument, NULL, 'H'},
        {"junit", required_argument, NULL, 'J'},
        {"brief", no_argument, NULL, 'b'},
        {"quiet", no_argument, NULL, 'q'},
        {"allow-missing", required_argument, NULL, 'a'},
        {"allow-input-mismatch", no_argument, NULL, 'A'},
        {"fail-on", required_argument, NULL, 'F'},
        {"topk", required_argument, NULL, 'k'},
        {"color", required_argument, NULL, 'c'},
        {"floor", required_argument, NULL, OPT_FLOOR},
        {"floor-k", required_argument, NULL, OPT_FLOOR_K},
        {"floor-ulp", required_argument, NULL, OPT_FLOOR_ULP},
        {"model", required_argument, NULL, OPT_MODEL},
        {"baseline", required_argument, NULL, OPT_BASELINE},
        {"regress-factor", required_argument, NULL, OPT_REGRESS_FACTOR},
        {"regress-slack", required_argument, NULL, OPT_REGRESS_SLACK},
        {"update-baseline", no_argument, NULL, OPT_UPDATE_BASELINE},
        {"exact", no_argument, NULL, OPT_EXACT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *policy_path = NULL, *map_path = NULL, *model_dir = NULL;
    ld_model *model = NULL;
    const char *out_json = NULL, *out_md = NULL, *out_html = NULL, *out_junit = NULL;
    const char *color = "auto";
    bool brief = false, quiet = false;
    ld_compare_options opt;
    ld_compare_options_init(&opt);
    char *allow_buf[MAX_ALLOW]; /* strdup'd globs */
    size_t n_allow = 0;
    int rc = LD_EXIT_USAGE;
    ld_policy *policy = NULL;
    ld_keymap *map = NULL;
    ld_compare_result *res = NULL;
    ld_floor *floors[MAX_FLOORS] = {NULL};
    size_t n_floors = 0;
    const char *baseline_path = NULL;
    ld_baseline *baseline = NULL;
    double regress_factor = LD_REGRESS_FACTOR_DEFAULT, regress_slack = LD_REGRESS_SLACK_DEFAULT;
    bool update_baseline = false, exact = false, fail_on_given = false;
    ld_error err;
    ld_error_clear(&err);
    int c;
    optind = 1;
    while ((c = ld_cli_getopt(argc, argv, shortopts, longopts, "compare")) != -1) {
        switch (c) {
        case 'P': policy_path = optarg; break;
        case 'M': map_path = optarg; break;
        case 'j': out_json = optarg; break;
        case 'd': out_md = optarg; break;
        case 'H': out_html = optarg; break;
        case 'J': out_junit = optarg; break;
        case 'b': brief = true; break;
        case 'q': quiet = true; break;
        case 'A': opt.allow_input_mismatch = true; break;
        case 'a': {
            const char *p = optarg;
            for (;;) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                if (len == 0) {
                    rc = ld_cli_usage_error("compare", "--allow-missing: empty glob in '%s'", optarg);
                    goto done;
                }
                if (n_allow == MAX_ALLOW) {
                    rc = ld_cli_usage_error("compare", "--allow-missing: more than %d globs",
                                            MAX_ALLOW);
                    goto done;
                }
                if (!(allow_buf[n_allow] = strndup(p, len))) {
                    rc = ld_cli_usage_error("compare", "out of memory");
                    goto done;
                }
                n_allow++;
                if (!comma)
                    break;
                p = comma + 1;
            }
            break;
        }
        case 'F':
            fail_on_given = true;
            if (ld_fail_on_parse(optarg, &opt.fail_on, &err) != LD_OK) {
                rc = ld_cli_fail("compare", &err);
                goto done;
            }
            break;
        case 'k':
            if (!ld_parse_int(optarg, 1, 64, &opt.topk)) {
                rc = ld_cli_usage_error("compare", "--topk: '%s' is not an integer in [1, 64]",
                                        optarg);
                goto done;
            }
            break;
        case 'c':
            if (strcmp(optarg, "auto") && strcmp(optarg, "always") && strcmp(optarg, "never")) {
                rc = ld_cli_usage_error("compare", "--color: '%s' is not auto, always or never",
                                        optarg);
                goto done;
            }
            color = optarg;
            break;
        case OPT_FLOOR:
            if (n_floors == MAX_FLOORS) {
                rc = ld_cli_usage_error("compare", "--floor: at most %d files (one per dtype)",
                                        MAX_FLOORS);
                goto done;
            }
            if (ld_floor_load(optarg, &floors[n_floors], &err) != LD_OK) {
                rc = ld_cli_fail("compare", &err);
                goto done;
            }
            for (size_t i = 0; i < n_floors; i++)
                if (ld_floor_dtype(floors[i]) == ld_floor_dtype(floors[n_floors])) {
                    rc = ld_cli_usage_error("compare", "--floor: %s and %s are both %s floors",
                                            ld_floor_label(floors[i]), optarg,
                                            ld_dtype_name(ld_floor_dtype(floors[i])));
                    n_floors++;
                    goto done;
                }
            n_floors++;
            break;
        case OPT_MODEL: model_dir = optarg; break;
        case OPT_FLOOR_K:
            if (!ld_parse_double(optarg, &opt.floor_k) || !(opt.floor_k >= 1.0)) {
                rc = ld_cli_usage_error("compare", "--floor-k: '%s' is not a number >= 1", optarg);
                goto done;
            }
            break;
        case OPT_FLOOR_ULP: {
            int v;
            if (!ld_parse_int(optarg, 0, 1 << 20, &v)) {
                rc = ld_cli_usage_error("compare", "--floor-ulp: '%s' is not a count of ULPs",
                                        optarg);
                goto done;
            }
            opt.floor_ulp_cap = (uint64_t)v;
            break;
        }
        case OPT_BASELINE: baseline_path = optarg; break;
        case OPT_UPDATE_BASELINE: update_baseline = true; break;
        case OPT_EXACT: exact = true; break;
        case OPT_REGRESS_FACTOR:
            if (!ld_parse_double(optarg, &regress_factor) || !(regress_factor >= 1.0) ||
                regress_factor > 1e300) {
                rc = ld_cli_usage_error("compare", "--regress-factor: '%s' is not a number >= 1",
                                        optarg);
                goto done;
            }
            break;
        case OPT_REGRESS_SLACK:
            if (!ld_parse_double(optarg, &regress_slack) || !(regress_slack >= 0.0) ||
                regress_slack > 1e300) {
                rc = ld_cli_usage_error("compare", "--regress-slack: '%s' is not a number >= 0",
                                        optarg);
                goto done;
            }
            break;
        case 'h':
            usage(stdout);
            rc = LD_EXIT_OK;
            goto done;
        default: rc = LD_EXIT_USAGE; goto done;
        }
    }
    if (argc - optind != 2) {
        rc = ld_cli_usage_error("compare", "expected two streams, REF.jsonl CAND.jsonl (got %d; see "
                                "'layerdiff compare --help')", argc - optind);
        goto done;
    }
    if (exact) {
        if (policy_path || map_path || out_html || out_junit || n_allow || opt.allow_input_mismatch ||
            fail_on_given || n_floors || model_dir || baseline_path || update_baseline || brief) {
            rc = ld_cli_usage_error("compare", "--exact checks bit-exactness only: it goes with "
                                    "--json, --md, --quiet and --color, not with tolerance, "
                                    "baseline or report options of a numerical comparison");
            goto done;
        }
        rc = ld_cli_compare_exact(argv[optind], argv[optind + 1], out_json, out_md, quiet, color);
        goto done;
    }
    if (update_baseline && !baseline_path) {
        rc = ld_cli_usage_error("compare", "--update-baseline needs --baseline B.json (the file "
                                "to write)");
        goto done;
    }
    /* Load the baseline before reading the streams: a malformed one fails fast. */
    if (baseline_path && !update_baseline) {
        if (ld_baseline_load(baseline_path, &baseline, &err) != LD_OK) {
            rc = ld_cli_fail("compare", &err);
            goto done;
        }
        if (!fail_on_given)
            opt.fail_on |= LD_FAIL_ON_REGRESSION;
    }
    if (model_dir && map_path) {
        rc = ld_cli_usage_error("compare", "--model replays our ops on our tags; it cannot follow a "
                                           "--map of foreign tags");
        goto done;
    }
    if (model_dir && ld_model_open(&model, model_dir, &err) != LD_OK) {
        rc = ld_cli_fail("compare", &err);
        goto done;
    }
    if (policy_path && ld_policy_load(policy_path, &policy, &err) != LD_OK) {
        rc = ld_cli_fail("compare", &err);
        goto done;
    }
    if (map_path && ld_keymap_load(map_path, &map, &err) != LD_OK) {
        rc = ld_cli_fail("compare", &err);
        goto done;
    }
    opt.policy = policy;
    opt.map = map;
    opt.allow_missing = (const char *const *)allow_buf;
    opt.n_allow_missing = n_allow;
    opt.floors = (const ld_floor *const *)floors;
    opt.n_floors = n_floors;
    if (ld_compare_run(argv[optind], argv[optind + 1], &opt, &res, &err) != LD_OK) {
        rc = ld_cli_fail("compare", &err);
        goto done;
    }
    if (model) {
        ld_replay_options rop;
        ld_replay_options_init(&rop);
        rop.floors = opt.floors;
        rop.n_floors = opt.n_floors;
        rop.k = opt.floor_k;
        rop.ulp_cap = opt.floor_ulp_cap;
        if (ld_replay_run(res, argv[optind], argv[optind + 1], model, &rop, &err) != LD_OK) {
            rc = ld_cli_fail("compare", &err);
            goto done;
        }
    }
    if (baseline && ld_baseline_apply(res, baseline, regress_factor, regress_slack, &err) != LD_OK) {
        rc = ld_cli_fail("compare", &err);
        goto done;
    }
    ld_report_options ro = {brief, false};
    if (!strcmp(color, "always"))
        ro.color = true;
    else if (!strcmp(color, "auto"))
        ro.color = isatty(STDOUT_FILENO) == 1 && !getenv("NO_COLOR");
    if (!quiet && ld_report_text(stdout, res, &ro, &err) != LD_OK) {
        rc = ld_cli_fail("compare", &err);
        goto done;
    }
    const struct {
        const char *path;
        ld_report_fn fn;
    } files[] = {{out_json, ld_report_json},
                 {out_md, ld_report_markdown},
                 {out_html, ld_report_html},
                 {out_junit, ld_report_junit}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (files[i].path && ld_report_to_file(files[i].path, files[i].fn, res, &ro, &err) != LD_OK) {
            rc = ld_cli_fail("compare", &err);
            goto done;
        }
    }
    rc = ld_compare_exit_code(res, opt.fail_on);
    if (update_baseline) {
        if (rc != 0) {
            fprintf(stderr, "layerdiff compare: not updating the baseline %s: this comparison "
                    "fails (exit %d); fix the candidate, or accept what fails with --fail-on\n",
                    baseline_path, rc);
        } else if (ld_report_to_file(baseline_path, ld_report_json, res, &ro, &err) != LD_OK) {
            rc = ld_cli_fail("compare", &err);
        } else if (!quiet) {
            printf("\nbaseline %s updated (%zu probes); commit it to accept this candidate\n",
                   baseline_path, res->n_rows);
        }
    }
done:
    ld_baseline_destroy(baseline);
    ld_compare_result_destroy(res);
    ld_policy_destroy(policy);
    ld_keymap_destroy(map);
    ld_model_close(model);
    for (size_t i = 0; i < n_floors; i++)
        ld_floor_destroy(floors[i]);
    for (size_t i = 0; i < n_allow; i++)
        free(allow_buf[i]);
    return rc;
}

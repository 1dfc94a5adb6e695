/* cmd_compare.c — 'layerdiff compare REF CAND': parses options, runs the compare pipeline
 * (src/pipeline/pipeline_compare.h: comparison, replay, baseline, reports, exit decision) with the
 * terminal as its text report and says what became of the baseline. It only talks to the user. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "floor.h"
#include "pipeline_compare.h"
#include "util.h"

#define MAX_ALLOW 256
#define MAX_FLOORS 2 /* one per low-precision dtype: bf16, f16 */

enum {
    OPT_FLOOR = 1000, OPT_FLOOR_K, OPT_FLOOR_ULP, OPT_MODEL, OPT_FULL, OPT_STRICT, OPT_TOKENIZER
};
/* Regression gate options (gate.h, docs/gate.md). */
enum { OPT_BASELINE = 1100, OPT_REGRESS_FACTOR, OPT_REGRESS_SLACK, OPT_UPDATE_BASELINE, OPT_EXACT };
enum { OPT_MAX_LINE = 1200, OPT_MAX_PARKED };

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
"                          layer at every failing step, heat map of the first divergence, the\n"
"                          probe table (failing-only toggle; chart points link to rows)\n"
"  --junit R.xml           write JUnit XML: one test case per probe\n"
"  --full                  terminal table of every probe (default: the verdict and summary\n"
"                          first, then only failing probes and the first divergence's context)\n"
"  --brief                 the default short terminal report (kept for scripts)\n"
"  --quiet                 no terminal report (files and exit code only)\n"
"  --strict                for CI: refuse (exit 2) what only warns otherwise, such as REF and\n"
"                          CAND being the same file (a comparison that passes by construction)\n"
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
"                          roundings of the candidate's dtype. Reads both streams a second time.\n"
"                          DIR's tokenizer.json, when it has one, names tokens as --tokenizer.\n"
"                          Not with --map (foreign tags have no op to replay)\n"
"  --tokenizer FILE        a tokenizer.json (the checkpoint's): the reports name tokens by their\n"
"                          text as well as their id (the worst element's token, the argmax of\n"
"                          each step), escaped for the terminal, Markdown and HTML\n"
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
"                          Goes with --json, --md, --quiet, --color, --strict and --max-line\n"
"                          only\n"
"  --topk K                logits top-k agreement (1-64, default 5)\n"
"  --max-line BYTES        refuse a line (record) longer than this: what a reader may buffer\n"
"                          (default 1073741824, 1 GiB)\n"
"  --max-parked BYTES      records waiting for a partner that has not arrived yet (streams in\n"
"                          different orders) may hold this much; more is refused (default\n"
"                          536870912, 512 MiB)\n"
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

/* The options once parsed: the pipeline's job, and what only the terminal needs. */
typedef struct compare_args {
    ld_compare_job job;
    char *allow_buf[MAX_ALLOW]; /* strdup'd globs */
    size_t n_allow;
    ld_floor *floors[MAX_FLOORS];
    size_t n_floors;
    const char *color;
    const char *not_exact; /* the first option given that --exact does not take, or NULL */
    bool brief, full, strict, quiet, exact, fail_on_given;
} compare_args;

/* --allow-missing GLOBS: appends each glob of the comma list; returns -1, or an exit code. */
static int add_allow_missing(compare_args *a, const char *arg)
{
    const char *p = arg;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0)
            return ld_cli_usage_error("compare", "--allow-missing: empty glob in '%s'", arg);
        if (a->n_allow == MAX_ALLOW)
            return ld_cli_usage_error("compare", "--allow-missing: more than %d globs", MAX_ALLOW);
        if (!(a->allow_buf[a->n_allow] = strndup(p, len)))
            return ld_cli_usage_error("compare", "out of memory");
        a->n_allow++;
        if (!comma)
            return -1;
        p = comma + 1;
    }
}

/* --floor F.json: loads it, one per dtype; returns -1, or an exit code. */
static int add_floor(compare_args *a, const char *path)
{
    ld_error err;
    if (a->n_floors == MAX_FLOORS)
        return ld_cli_usage_error("compare", "--floor: at most %d files (one per dtype)",
                                  MAX_FLOORS);
    if (ld_floor_load(path, &a->floors[a->n_floors], &err) != LD_OK)
        return ld_cli_fail("compare", &err);
    const ld_floor *added = a->floors[a->n_floors++];
    for (size_t i = 0; i + 1 < a->n_floors; i++)
        if (ld_floor_dtype(a->floors[i]) == ld_floor_dtype(added))
            return ld_cli_usage_error("compare", "--floor: %s and %s are both %s floors",
                                      ld_floor_label(a->floors[i]), path,
                                      ld_dtype_name(ld_floor_dtype(a->floors[i])));
    return -1;
}

/* One option of the numerical comparison; returns -1 to go on, else the exit code. */
static int parse_option(compare_args *a, int c)
{
    ld_compare_job *j = &a->job;
    ld_compare_options *opt = &j->compare;
    ld_error err;
    switch (c) {
    case 'P': j->policy_path = optarg; break;
    case 'M': j->map_path = optarg; break;
    case 'j': j->json_path = optarg; break;
    case 'd': j->md_path = optarg; break;
    case 'H': j->html_path = optarg; break;
    case 'J': j->junit_path = optarg; break;
    case 'b': a->brief = true; break;
    case OPT_FULL: a->full = true; break;
    case OPT_STRICT: a->strict = true; break;
    case 'q': a->quiet = true; break;
    case 'A': opt->allow_input_mismatch = true; break;
    case 'a': return add_allow_missing(a, optarg);
    case 'F':
        a->fail_on_given = true;
        if (ld_fail_on_parse(optarg, &opt->fail_on, &err) != LD_OK)
            return ld_cli_fail("compare", &err);
        break;
    case 'k':
        if (!ld_parse_int(optarg, 1, 64, &opt->topk))
            return ld_cli_usage_error("compare", "--topk: '%s' is not an integer in [1, 64]",
                                      optarg);
        break;
    case 'c':
        if (strcmp(optarg, "auto") && strcmp(optarg, "always") && strcmp(optarg, "never"))
            return ld_cli_usage_error("compare", "--color: '%s' is not auto, always or never",
                                      optarg);
        a->color = optarg;
        break;
    case OPT_FLOOR: return add_floor(a, optarg);
    case OPT_MODEL: j->model_dir = optarg; break;
    case OPT_TOKENIZER: j->tokenizer_path = optarg; break;
    case OPT_FLOOR_K:
        if (!ld_parse_double(optarg, &opt->floor_k) || !(opt->floor_k >= 1.0))
            return ld_cli_usage_error("compare", "--floor-k: '%s' is not a number >= 1", optarg);
        break;
    case OPT_FLOOR_ULP: {
        int v;
        if (!ld_parse_int(optarg, 0, 1 << 20, &v))
            return ld_cli_usage_error("compare", "--floor-ulp: '%s' is not a count of ULPs",
                                      optarg);
        opt->floor_ulp_cap = (uint64_t)v;
        break;
    }
    case OPT_MAX_LINE:
    case OPT_MAX_PARKED: {
        int64_t v;
        if (!ld_parse_i64(optarg, 1, INT64_MAX, &v))
            return ld_cli_usage_error("compare", "--%s: '%s' is not a positive integer",
                                      c == OPT_MAX_LINE ? "max-line" : "max-parked", optarg);
        *(c == OPT_MAX_LINE ? &opt->max_line : &opt->max_parked) = (size_t)v;
        break;
    }
    case OPT_BASELINE: j->baseline_path = optarg; break;
    case OPT_UPDATE_BASELINE: j->update_baseline = true; break;
    case OPT_EXACT: a->exact = true; break;
    case OPT_REGRESS_FACTOR:
        if (!ld_parse_double(optarg, &j->regress_factor) || !(j->regress_factor >= 1.0) ||
            j->regress_factor > 1e300)
            return ld_cli_usage_error("compare", "--regress-factor: '%s' is not a number >= 1",
                                      optarg);
        break;
    case OPT_REGRESS_SLACK:
        if (!ld_parse_double(optarg, &j->regress_slack) || !(j->regress_slack >= 0.0) ||
            j->regress_slack > 1e300)
            return ld_cli_usage_error("compare", "--regress-slack: '%s' is not a number >= 0",
                                      optarg);
        break;
    case 'h': usage(stdout); return LD_EXIT_OK;
    default: return LD_EXIT_USAGE;
    }
    return -1;
}

/* Whether --exact takes option c: it reads two streams and writes text, JSON or Markdown. */
static bool exact_takes(int c)
{
    return c == 'j' || c == 'd' || c == 'q' || c == 'c' || c == OPT_STRICT || c == OPT_MAX_LINE ||
           c == OPT_EXACT;
}

/* Parses argv into a; returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, compare_args *a)
{
    /* Only -h is a short option: the letters of the long ones are codes, not options --help
     * lists ('-q' is an unknown option, not --quiet). */
    static const char shortopts[] = "h";
    static const struct option longopts[] = {
        {"policy", required_argument, NULL, 'P'},
        {"map", required_argument, NULL, 'M'},
        {"json", required_argument, NULL, 'j'},
        {"md", required_argument, NULL, 'd'},
        {"html", required_argument, NULL, 'H'},
        {"junit", required_argument, NULL, 'J'},
        {"brief", no_argument, NULL, 'b'},
        {"full", no_argument, NULL, OPT_FULL},
        {"strict", no_argument, NULL, OPT_STRICT},
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
        {"tokenizer", required_argument, NULL, OPT_TOKENIZER},
        {"baseline", required_argument, NULL, OPT_BASELINE},
        {"regress-factor", required_argument, NULL, OPT_REGRESS_FACTOR},
        {"regress-slack", required_argument, NULL, OPT_REGRESS_SLACK},
        {"update-baseline", no_argument, NULL, OPT_UPDATE_BASELINE},
        {"exact", no_argument, NULL, OPT_EXACT},
        {"max-line", required_argument, NULL, OPT_MAX_LINE},
        {"max-parked", required_argument, NULL, OPT_MAX_PARKED},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, rc;
    optind = 1;
    while ((c = ld_cli_getopt(argc, argv, shortopts, longopts, "compare")) != -1) {
        if ((rc = parse_option(a, c)) >= 0)
            return rc;
        for (const struct option *o = longopts; o->name && !a->not_exact; o++)
            if (o->val == c && !exact_takes(c))
                a->not_exact = o->name;
    }
    if (argc - optind != 2)
        return ld_cli_usage_error("compare", "expected two streams, REF.jsonl CAND.jsonl (got %d; "
                                  "see 'layerdiff compare --help')", argc - optind);
    return -1;
}

/* Whether path starts like our own --json report: given as a stream, it would otherwise read as
 * a probe stream with a JSON syntax error. Only a regular file is looked at: a pipe's first bytes
 * read here would be lost to the comparison, and opening a FIFO would wait for its writer. */
static bool is_report(const char *path)
{
    static const char magic[] = "{\"format\":\"layerdiff-report\"";
    char head[sizeof magic] = "";
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t n = fread(head, 1, sizeof magic - 1, f);
    fclose(f);
    return n == sizeof magic - 1 && !memcmp(head, magic, n);
}

/* Checks on the two paths before reading them: a report given as a stream; one file given twice
 * (it passes whatever it holds: a warning, or exit 2 with --strict). Returns -1 or an exit code. */
static int check_paths(const compare_args *a)
{
    const char *p[2] = {a->job.ref_path, a->job.cand_path};
    for (int i = 0; i < 2; i++)
        if (is_report(p[i]))
            return ld_cli_usage_error("compare", "%s is a layerdiff compare report (--json), not a "
                                      "probe stream: give the .jsonl streams 'layerdiff run "
                                      "--probes' (or your engine) wrote", p[i]);
    struct stat s0, s1;
    if (stat(p[0], &s0) == 0 && stat(p[1], &s1) == 0 && s0.st_dev == s1.st_dev &&
        s0.st_ino == s1.st_ino && S_ISREG(s0.st_mode)) {
        if (a->strict)
            return ld_cli_usage_error("compare", "%s and %s are the same file: comparing a stream "
                                      "with itself passes by construction (--strict)", p[0], p[1]);
        fprintf(stderr, "layerdiff compare: warning: %s and %s are the same file: this comparison "
                "passes by construction (--strict makes it exit 2)\n", p[0], p[1]);
    }
    return -1;
}

/* The numerical comparison once its options are checked: the pipeline, then what became of the
 * baseline. */
static int compare_streams(compare_args *a)
{
    ld_compare_job *j = &a->job;
    int checked = check_paths(a);
    if (checked >= 0)
        return checked;
    /* A baseline to check against adds regression to the default --fail-on. */
    if (j->baseline_path && !j->update_baseline && !a->fail_on_given)
        j->compare.fail_on |= LD_FAIL_ON_REGRESSION;
    j->compare.allow_missing = (const char *const *)a->allow_buf;
    j->compare.n_allow_missing = a->n_allow;
    j->compare.floors = (const ld_floor *const *)a->floors;
    j->compare.n_floors = a->n_floors;
    j->text = a->quiet ? NULL : stdout;
    j->report.brief = !a->full;
    bool tty = isatty(STDOUT_FILENO) == 1 && !getenv("NO_COLOR");
    j->report.color = !strcmp(a->color, "always") || (!strcmp(a->color, "auto") && tty);
    ld_compare_outcome o;
    ld_error err;
    ld_error_clear(&err);
    int rc;
    if (ld_compare_pipeline(j, &o, &err) != LD_OK) {
        rc = ld_cli_fail("compare", &err);
    } else {
        rc = o.exit_code;
        if (o.baseline_refused)
            fprintf(stderr, "layerdiff compare: not updating the baseline %s: this comparison "
                    "fails (exit %d); fix the candidate, or accept what fails with --fail-on\n",
                    j->baseline_path, rc);
        else if (o.baseline_updated && !a->quiet)
            printf("\nbaseline %s updated (%zu probes); commit it to accept this candidate\n",
                   j->baseline_path, o.result->n_rows);
    }
    ld_compare_outcome_free(&o);
    return rc;
}

/* What the parsed options ask for: --exact, or the numerical comparison. */
static int dispatch(compare_args *a, char **argv)
{
    ld_compare_job *j = &a->job;
    j->ref_path = argv[optind];
    j->cand_path = argv[optind + 1];
    if (a->exact) {
        if (a->not_exact)
            return ld_cli_usage_error("compare", "--exact checks bit-exactness only: it goes with "
                                      "--json, --md, --quiet, --color, --strict and --max-line, "
                                      "not with --%s", a->not_exact);
        int rc = check_paths(a);
        if (rc >= 0)
            return rc;
        return ld_cli_compare_exact(j->ref_path, j->cand_path, j->json_path, j->md_path,
                                    j->compare.max_line, a->quiet, a->color);
    }
    if (j->update_baseline && !j->baseline_path)
        return ld_cli_usage_error("compare", "--update-baseline needs --baseline B.json (the file "
                                  "to write)");
    return compare_streams(a);
}

int ld_cmd_compare(int argc, char **argv)
{
    compare_args a = {.color = "auto"};
    ld_compare_job_init(&a.job);
    int rc = parse_args(argc, argv, &a);
    if (rc < 0)
        rc = dispatch(&a, argv);
    for (size_t i = 0; i < a.n_floors; i++)
        ld_floor_destroy(a.floors[i]);
    for (size_t i = 0; i < a.n_allow; i++)
        free(a.allow_buf[i]);
    return rc;
}

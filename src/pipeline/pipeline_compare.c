/* pipeline_compare.c — the compare pipeline (pipeline_compare.h): inputs, comparison, replay,
 * baseline, reports and the exit decision, in the order the command has always run them. Calls
 * compare/'s public API only; prints nothing but the reports it is given a FILE* or a path for. */
#include "pipeline_compare.h"

#include <string.h>
#include <sys/stat.h>

#include "floor.h"
#include "prompt.h"
#include "replay.h"
#include "util.h"

void ld_compare_job_init(ld_compare_job *j)
{
    memset(j, 0, sizeof *j);
    ld_compare_options_init(&j->compare);
    j->regress_factor = LD_REGRESS_FACTOR_DEFAULT;
    j->regress_slack = LD_REGRESS_SLACK_DEFAULT;
}

void ld_compare_outcome_free(ld_compare_outcome *o)
{
    ld_baseline_destroy(o->baseline);
    ld_compare_result_destroy(o->result);
    ld_policy_destroy(o->policy);
    ld_keymap_destroy(o->map);
    ld_model_close(o->model);
    ld_tokenizer_free(o->tokenizer);
    memset(o, 0, sizeof *o);
}

/* No report may replace an input (the streams, the baseline read, policy, map, floors, the
 * tokenizer, the checkpoint's files): checked before anything is written, once the model is
 * open. */
static ld_status refuse_overwrites(const ld_compare_job *j, const ld_model *model, ld_error *err)
{
    const char *inputs[] = {j->ref_path, j->cand_path,
                            j->update_baseline ? NULL : j->baseline_path, j->policy_path,
                            j->map_path, j->tokenizer_path};
    const struct {
        const char *option, *path;
    } outputs[] = {{"--json", j->json_path},
                   {"--md", j->md_path},
                   {"--html", j->html_path},
                   {"--junit", j->junit_path},
                   {"--update-baseline", j->update_baseline ? j->baseline_path : NULL}};
    for (size_t i = 0; i < LD_ARRAY_LEN(outputs); i++) {
        const char *out = outputs[i].path;
        if (!out)
            continue;
        ld_status st = ld_refuse_overwrite(out, inputs, LD_ARRAY_LEN(inputs), err);
        for (size_t f = 0; st == LD_OK && f < j->compare.n_floors; f++) {
            const char *floor = ld_floor_label(j->compare.floors[f]);
            st = ld_refuse_overwrite(out, &floor, 1, err);
        }
        if (st == LD_OK)
            st = ld_model_refuse_overwrite(model, out, err);
        if (st != LD_OK)
            return ld_error_prefix(err, "%s", outputs[i].option);
        for (size_t k = 0; k < i; k++)
            if (outputs[k].path && ld_same_path(outputs[k].path, out))
                return ld_error_set(err, LD_E_USAGE,
                                    "%s and %s both name %s: each report needs its own file",
                                    outputs[k].option, outputs[i].option, out);
    }
    return LD_OK;
}

/* The inputs, loaded in the command's order so that the first bad one is the one reported: the
 * baseline first (a malformed one fails before any stream is read). */
static ld_status load_inputs(const ld_compare_job *j, ld_compare_outcome *o, ld_error *err)
{
    if (j->baseline_path && !j->update_baseline &&
        ld_baseline_load(j->baseline_path, &o->baseline, err) != LD_OK)
        return err->code;
    if (j->model_dir && j->map_path)
        return ld_error_set(err, LD_E_USAGE, "--model replays our ops on our tags; it cannot "
                                             "follow a --map of foreign tags");
    /* Replay reads both streams a second time: a pipe would read as empty then. */
    const char *streams[] = {j->ref_path, j->cand_path};
    for (size_t i = 0; j->model_dir && i < LD_ARRAY_LEN(streams); i++) {
        struct stat sb;
        if (stat(streams[i], &sb) == 0 && !S_ISREG(sb.st_mode))
            return ld_error_set(err, LD_E_USAGE,
                                "--model reads both streams a second time, and %s is not a "
                                "regular file (a pipe?) that can be read again: write it to a "
                                "file first",
                                streams[i]);
    }
    if (j->model_dir && ld_model_open(&o->model, j->model_dir, err) != LD_OK)
        return err->code;
    if (j->tokenizer_path ? ld_tokenizer_load(j->tokenizer_path, &o->tokenizer, err) != LD_OK
        : j->model_dir && ld_prompt_tokenizer(j->model_dir, NULL, &o->tokenizer, err) != LD_OK)
        return err->code;
    if (j->policy_path && ld_policy_load(j->policy_path, &o->policy, err) != LD_OK)
        return err->code;
    if (j->map_path && ld_keymap_load(j->map_path, &o->map, err) != LD_OK)
        return err->code;
    return refuse_overwrites(j, o->model, err);
}

static ld_status write_reports(const ld_compare_job *j, const ld_compare_result *r, ld_error *err)
{
    if (j->text && ld_report_text(j->text, r, &j->report, err) != LD_OK)
        return err->code;
    const struct {
        const char *path;
        ld_report_fn fn;
    } files[] = {{j->json_path, ld_report_json},
                 {j->md_path, ld_report_markdown},
                 {j->html_path, ld_report_html},
                 {j->junit_path, ld_report_junit}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (files[i].path &&
            ld_report_to_file(files[i].path, files[i].fn, r, &j->report, err) != LD_OK)
            return err->code;
    return LD_OK;
}

ld_status ld_compare_pipeline(const ld_compare_job *j, ld_compare_outcome *o, ld_error *err)
{
    ld_error ignored; /* the steps return err->code */
    if (!err)
        err = &ignored;
    memset(o, 0, sizeof *o);
    ld_status st = load_inputs(j, o, err);
    if (st != LD_OK)
        return st;
    ld_compare_options opt = j->compare;
    opt.policy = o->policy;
    opt.map = o->map;
    if ((st = ld_compare_run(j->ref_path, j->cand_path, &opt, &o->result, err)) != LD_OK)
        return st;
    o->result->tokenizer = o->tokenizer;
    if (o->model) {
        ld_replay_options rop;
        ld_replay_options_init(&rop);
        rop.floors = opt.floors;
        rop.n_floors = opt.n_floors;
        rop.k = opt.floor_k;
        rop.ulp_cap = opt.floor_ulp_cap;
        st = ld_replay_run(o->result, j->ref_path, j->cand_path, o->model, &rop, err);
        if (st != LD_OK)
            return st;
    }
    if (o->baseline && (st = ld_baseline_apply(o->result, o->baseline, j->regress_factor,
                                               j->regress_slack, err)) != LD_OK)
        return st;
    if ((st = write_reports(j, o->result, err)) != LD_OK)
        return st;
    o->exit_code = ld_compare_exit_code(o->result, opt.fail_on);
    if (j->update_baseline) {
        /* Only a passing candidate becomes the new baseline. */
        if (o->exit_code != 0) {
            o->baseline_refused = true;
            return LD_OK;
        }
        if ((st = ld_report_to_file(j->baseline_path, ld_report_json, o->result, &j->report,
                                    err)) != LD_OK)
            return st;
        o->baseline_updated = true;
    }
    return LD_OK;
}

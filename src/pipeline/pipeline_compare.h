/* pipeline_compare.h — 'compare REF CAND' as one library call: load the inputs, compare, replay,
 * apply a baseline, write the reports and decide the exit status, returned as data. Not here: the
 * comparator (compare/), options, terminal choices and messages (src/cli/), --exact (gate.h). */
#ifndef LD_PIPELINE_COMPARE_H
#define LD_PIPELINE_COMPARE_H

#include <stdbool.h>
#include <stdio.h>

#include "compare.h"
#include "gate.h"
#include "model.h"

typedef struct ld_compare_job {
    const char *ref_path, *cand_path;
    /* The comparison: tolerances, --allow-missing, floors, topk, fail_on. policy and map are
     * ignored: they are loaded from policy_path and map_path. */
    ld_compare_options compare;
    const char *policy_path, *map_path; /* NULL: none */
    const char *model_dir;              /* replay each probe's op on the candidate's inputs; its
                                           tokenizer.json, when it has one, names tokens */
    const char *tokenizer_path;         /* a tokenizer.json naming tokens by their text in the
                                           reports (wins over model_dir's); NULL: none */
    const char *baseline_path;          /* the gate's accepted report; read unless updated */
    bool update_baseline;               /* write the JSON report to baseline_path when passing */
    double regress_factor, regress_slack;
    FILE *text;                         /* the terminal report goes here; NULL: none */
    ld_report_options report;           /* for the text report and the files */
    const char *json_path, *md_path, *html_path, *junit_path; /* report files; NULL: not written */
} ld_compare_job;

/* Defaults: ld_compare_options_init, the gate's default factor and slack, nothing else. */
void ld_compare_job_init(ld_compare_job *j);

typedef struct ld_compare_outcome {
    ld_compare_result *result; /* the comparison, replayed and gated */
    int exit_code;             /* ld_compare_exit_code against compare.fail_on: 0 passes, 1
                                  divergence or regression, 2 bad input, 3 incomplete */
    bool baseline_updated;     /* update_baseline, and the comparison passed: written */
    bool baseline_refused;     /* update_baseline, and the comparison failed: not written */
    /* What was loaded; the result may point into it. */
    ld_baseline *baseline;
    ld_policy *policy;
    ld_keymap *map;
    ld_model *model;
    ld_tokenizer *tokenizer;   /* the result's tokenizer */
} ld_compare_outcome;

/* Runs the job in this order: baseline, model, tokenizer, policy, map, comparison, replay,
 * baseline check, text report, report files, exit decision, baseline update. A failure stops there (LD_E_USAGE
 * when model_dir is given with map_path). *out holds what was made so far either way: free it
 * with ld_compare_outcome_free. */
ld_status ld_compare_pipeline(const ld_compare_job *j, ld_compare_outcome *out, ld_error *err);
void ld_compare_outcome_free(ld_compare_outcome *o);

#endif

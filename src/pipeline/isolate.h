/* isolate.h — 'layerdiff isolate': for the first divergence (or a given key), rerun the candidate
 * with the reference's tensors fed in (run.h's feed) and tell the op's own error on exact inputs
 * from what it inherited, next to replay's answer, and whether feeding the divergent tensor
 * clears the rest of the run. Not here: the feeding (reference/forward.c), the comparisons
 * (compare/), messages and exit codes (src/cli/cmd_isolate.c). */
#ifndef LD_PIPELINE_ISOLATE_H
#define LD_PIPELINE_ISOLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "compare.h"
#include "run.h"

typedef struct ld_isolate_job {
    const char *ref_path;  /* the reference stream, full payload */
    const char *model_dir; /* the checkpoint both ran (replay opens it too) */
    /* The candidate: backend, model, faults, emulate, sr_seed; prompt and decode steps are the
     * reference's, probes and feed are set here. */
    ld_run_options cand;
    const char *key;       /* NULL: the first divergence of the unfed candidate */
    const char *work_dir;  /* where the three candidate streams are written (kept) */
    ld_compare_options compare; /* tolerances, floors; fail_on decides "divergence" */
} ld_isolate_job;

typedef struct ld_isolate_result {
    bool diverged;          /* the unfed candidate has a divergence (or key was given) */
    ld_key key;             /* the key isolated */
    char op[64];            /* its op, "" for a custom tag */
    double plain_rel_l2;    /* its error in the unfed run */
    double replay_local;    /* replay's local error on the candidate's own inputs (NaN: none) */
    double replay_budget;
    bool replay_over;
    double exact_rel_l2;    /* its error with every tensor fed: the op on exact inputs */
    double exact_tol;       /* the policy's rel_l2 tolerance for it */
    bool exact_fails;       /* the op is wrong on exact inputs */
    ld_key exact_first;     /* all fed: the first key failing on exact inputs (culprit) */
    size_t n_exact_fail;    /* all fed: keys failing on exact inputs */
    size_t n_later;         /* compared keys after key (the op's own at later steps left out) */
    size_t later_fail_plain, later_fail_fed; /* of those, failing unfed / with key fed */
    char conclusion[640];   /* one sentence */
} ld_isolate_result;

/* Three candidate runs into work_dir (plain.jsonl; exact.jsonl: everything fed; fed.jsonl: the
 * key's tag and layer fed at every step) and their comparisons against the reference. LD_E_INPUT
 * naming the file for a reference that is not a full-payload stream of this model; a key absent
 * from the comparison is LD_E_USAGE, and so is a work_dir file of those names that is the
 * reference (checked before any run). */
ld_status ld_isolate(const ld_isolate_job *j, ld_isolate_result *out, ld_error *err);

#endif

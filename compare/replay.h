/* replay.h — op-local error attribution (issue 8). For every probe whose inputs the candidate
 * stream holds with full payloads, the reference op (reference/ops.h, the very functions of the
 * forward pass) is rerun on the candidate's own inputs with the checkpoint's weights: y = op(c_in).
 * Then local = ||c − y|| / ||y|| is the error the candidate's op made, and inherited =
 * ||y − r|| / ||r|| the error its inputs carried in. The first probe whose local error is over
 * budget is the culprit. A second pass over both streams, after ld_compare_run. */
#ifndef LD_REPLAY_H
#define LD_REPLAY_H

#include "compare.h"
#include "floor.h"
#include "model.h"

/* Local-error budgets without a calibrated floor, by candidate dtype: a few units of the dtype's
 * rounding (an honest op rounds its output once, and may have used unrounded inputs that the
 * stream holds rounded). bf16: 2^-9 = 0.00195 per rounding; f16: 2^-11; f32 allows for a different
 * fp32 accumulation order. */
#define LD_LOCAL_BUDGET_BF16 1e-2
#define LD_LOCAL_BUDGET_F16 2.5e-3
#define LD_LOCAL_BUDGET_F32 1e-5

typedef struct ld_replay_options {
    const ld_floor *const *floors; /* with a local floor for a key: budget = k x that floor */
    size_t n_floors;
    double k;                      /* LD_FLOOR_K_DEFAULT */
    uint64_t ulp_cap;              /* never over budget within this many ULPs */
} ld_replay_options;

void ld_replay_options_init(ld_replay_options *o);

/* Replays every probe of r's rows it can and fills their local / inherited errors, r->culprit and
 * the counts. m must be the checkpoint both streams ran (its fingerprint is checked against the
 * reference stream's: LD_E_INPUT when it differs). Adds a note to r describing the pass. */
ld_status ld_replay_run(ld_compare_result *r, const char *ref_path, const char *cand_path,
                        const ld_model *m, const ld_replay_options *opt, ld_error *err);

#endif

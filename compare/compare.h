/* compare.h — the comparator: aligns two probe streams by key (step, layer, tag), measures every
 * pair, judges it against a tolerance policy, finds the first divergence and writes reports
 * (terminal text, JSON, Markdown, HTML, JUnit). It never prints or exits: every fallible call
 * returns an ld_status and fills an ld_error; ld_compare_exit_code says which exit code a result
 * earns, and only main (src/cli/) exits. The sequence compare -> replay -> baseline -> reports is
 * src/pipeline/pipeline_compare.h.
 *
 * Ownership: ld_*_create/_load/_parse hand out objects that the matching _destroy frees (NULL is
 * accepted). A result owns every string and array it points to.
 *
 * Layers inside compare/ (a file calls only its own layer or those below; headers in brackets):
 *   0 base     jsonfile.c, emit.c                              [compare_internal.h]
 *   1 inputs   metrics.c, policy.c, keymap.c (the op graph: layerdiff/tags.h) [compare.h]
 *   2 core     compare.c, compare_{options,result,read,rows,headers}.c [compare_core.h],
 *              floor.c [floor.h]
 *   3 gates    baseline.c, exact.c [gate.h], replay.c [replay.h]
 *   4 reports  report_{text,json,md,html,junit}.c (one per format, the gates' sections included),
 *              report_util.c, report_gate.c, columns.c, summary.c  [report.h] */
#ifndef LD_COMPARE_H
#define LD_COMPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "layerdiff/probes.h"
#include "layerdiff/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- tolerances and verdicts ---------------------------------------------------------------- */

/* What a probe must satisfy to pass. Every check also fails on a NaN metric. A disabled check
 * holds +inf (max_abs, ulp) or 1 (outside) or -inf (cosine). */
typedef struct ld_tolerance {
    double rel_l2;  /* fail when ||c-r|| / ||r|| > rel_l2 */
    double cosine;  /* fail when cosine similarity < cosine */
    double atol;    /* an element is "outside" when |c-r| > atol + rtol*|r| ...            */
    double rtol;
    double outside; /* ... and the probe fails when the fraction outside > outside (1 = never) */
    double max_abs; /* fail when max |c-r| > max_abs (+inf = off) */
    double ulp;     /* fail when the largest ULP distance > ulp (+inf = off) */
} ld_tolerance;

/* Why a probe failed: a bit set of ld_judge(). Later checks (noise floor, baseline) add bits. */
enum {
    LD_FAIL_NONFINITE = 1u << 0, /* NaN/Inf in the candidate where the reference is finite (or back) */
    LD_FAIL_REL_L2 = 1u << 1,
    LD_FAIL_COSINE = 1u << 2,
    LD_FAIL_OUTSIDE = 1u << 3,
    LD_FAIL_MAX_ABS = 1u << 4,
    LD_FAIL_ULP = 1u << 5,
    LD_FAIL_FLOOR = 1u << 6,     /* error over k times the calibrated noise floor (--floor) */
    LD_FAIL_REASON_COUNT = 7
};
/* "nonfinite", "rel_l2", "cosine", "outside", "max_abs", "ulp" for one bit; NULL otherwise. */
const char *ld_fail_reason_name(unsigned bit);

/* ---- metrics ------------------------------------------------------------------------------ */

/* Floor of the max-relative-error denominator, as a fraction of the RMS of the reference over the
 * same innermost row (one token's vector for [T,H], one head of one token for [T,Hq,D]): an
 * element's relative error is |c-r| / max(|r|, LD_REL_FLOOR * rms(row)). Elements much smaller
 * than their neighbours carry only the rounding noise of the large ones, so their own relative
 * error says nothing; without a floor one near-zero element would dominate the maximum. */
#define LD_REL_FLOOR 1e-3

typedef enum ld_metric_source {
    LD_SRC_NONE = 0,  /* not compared */
    LD_SRC_FULL = 1,  /* every element of both payloads */
    LD_SRC_STATS = 2  /* no payload on one side: stats and the first LD_HEAD_COUNT values only */
} ld_metric_source;

/* Per-probe metrics, all computed in double. Errors are over the elements finite on both sides;
 * non-finite elements are counted first and judged on their own. */
typedef struct ld_metrics {
    ld_metric_source source;
    uint64_t numel;           /* elements of the tensor */
    uint64_t n;               /* elements compared (finite on both sides; head values for stats) */
    uint64_t nan_ref, inf_ref, nan_cand, inf_cand;
    uint64_t nonfinite_new;   /* reference finite, candidate NaN/Inf */
    uint64_t nonfinite_lost;  /* reference NaN/Inf, candidate finite or another non-finite */
    double max_abs;           /* max |c-r| */
    double mean_abs;          /* mean |c-r| */
    double rmse;              /* sqrt(mean (c-r)^2) */
    double rel_l2;            /* ||c-r|| / ||r||: 0 when both are 0, +inf when only ||r|| is 0 */
    double max_rel;           /* max |c-r| / max(|r|, floor), see LD_REL_FLOOR */
    double cosine;            /* r.c / (||r|| ||c||): 1 when both are 0, 0 when one is */
    double snr_db;            /* 10 log10(sum r^2 / sum (c-r)^2): +inf when identical */
    double ref_l2, cand_l2;   /* ||r||, ||c|| over the compared elements */
    uint64_t n_outside;       /* elements with |c-r| > atol + rtol*|r| */
    double frac_outside;      /* n_outside / n (0 when n is 0) */
    uint64_t ulp_max;         /* ULP distance in the candidate's dtype after rounding the ref to it */
    double ulp_mean;
    uint64_t ulp_p99;         /* 99th percentile: exact below 256, else a power-of-two bound;
                                 over every 16th element when numel > 65536 */
    bool has_worst;
    uint64_t worst_index;     /* flat row-major index of the worst element: the first non-finite
                                 disagreement, else the largest |c-r| */
    double worst_ref, worst_cand;
    double l2_lower_bound;    /* stats fallback only: | ||c|| - ||r|| | / ||r||, a lower bound of rel_l2 */
} ld_metrics;

/* A tensor to measure: raw little-endian elements of dtype, row-major, in shape. */
typedef struct ld_cmp_tensor {
    const void *data;
    ld_dtype dtype;
    int ndim;
    int64_t shape[LD_MAX_NDIM];
    uint64_t numel;
} ld_cmp_tensor;

/* Error per cell of a (token, head) grid, for the heat strip of the first divergence. For [T,H]
 * and [T,V] there is one "head" per token; for [T,Hq,D] a cell is one head of one token. */
typedef struct ld_err_grid {
    size_t tokens, heads;
    double *diff2; /* [tokens, heads] sum (c-r)^2 over the cell's finite elements */
    double *ref2;  /* [tokens, heads] sum r^2 */
    uint64_t *nonfinite; /* [tokens, heads] non-finite disagreements */
    size_t cap;    /* cells allocated */
} ld_err_grid;
/* Most cells a grid keeps (larger tensors are measured without one). */
#define LD_GRID_MAX_CELLS ((size_t)1 << 20)
void ld_err_grid_free(ld_err_grid *g);
/* Relative error of a cell or of a whole token row / head column (sqrt(diff2/ref2), with the same
 * conventions as rel_l2). */
double ld_err_grid_cell(const ld_err_grid *g, size_t t, size_t h);
double ld_err_grid_token(const ld_err_grid *g, size_t t);
double ld_err_grid_head(const ld_err_grid *g, size_t h);

/* Measures cand against ref. Both must have the same number of elements; ref's shape gives the
 * grid and the worst element's index. precision is the candidate's dtype (the ULP grid); tol gives
 * atol and rtol for the "outside" count. grid may be NULL; when given it is resized and filled
 * (left empty when the tensor has more than LD_GRID_MAX_CELLS cells). */
ld_status ld_metrics_compute(const ld_cmp_tensor *ref, const ld_cmp_tensor *cand, ld_dtype precision,
                             const ld_tolerance *tol, ld_metrics *out, ld_err_grid *grid,
                             ld_error *err);

/* The same measurement fed piece by piece, for tensors that arrive in chunks (a streamed payload):
 * begin with both tensors' shapes and dtypes (data ignored), feed the elements in order, whole rows
 * at a time, then end. A row is the innermost dimension of ref's shape (the whole tensor when it is
 * 1-D); rows never straddle feeds because the floored relative error needs a row's RMS before it
 * can look at the row's elements. The results are bit for bit those of ld_metrics_compute, however
 * the rows are split (it is begin, one feed, end). end and abort free the measurement. */
typedef struct ld_metrics_acc ld_metrics_acc;
ld_status ld_metrics_begin(ld_metrics_acc **out, const ld_cmp_tensor *ref,
                           const ld_cmp_tensor *cand, ld_dtype precision, const ld_tolerance *tol,
                           ld_err_grid *grid, ld_error *err);
/* Elements per row: feeds hold a multiple of it. */
uint64_t ld_metrics_row_len(const ld_metrics_acc *m);
/* The next n elements: ref and cand point at their first element, raw little-endian in the dtypes
 * given to begin. LD_E_USAGE when n is not a whole number of rows or runs past the tensor. */
ld_status ld_metrics_feed(ld_metrics_acc *m, const void *ref, const void *cand, uint64_t n,
                          ld_error *err);
/* Fills *out once every row was fed (LD_E_USAGE otherwise); frees m either way. */
ld_status ld_metrics_end(ld_metrics_acc *m, ld_metrics *out, ld_error *err);
/* Frees an unfinished measurement. NULL accepted. */
void ld_metrics_abort(ld_metrics_acc *m);

/* Fallback when a payload is missing: from the stats of both records and their first values.
 * Errors are measured on the first min(ref_n_head, cand_n_head) values; rel_l2 is the larger of
 * that and a lower bound that holds for the whole tensor (l2_lower_bound, from the norms, means
 * and standard deviations); max_abs is at least |dmin|, |dmax| and |dmean|. Non-finite counts are
 * compared as counts. Stats that bound nothing (a non-finite l2 where elements are finite) give
 * rel_l2 NaN, which fails. */
void ld_metrics_from_stats(const ld_stats *ref, const double *ref_head, int ref_n_head,
                           const ld_stats *cand, const double *cand_head, int cand_n_head,
                           uint64_t numel, ld_dtype precision, const ld_tolerance *tol,
                           ld_metrics *out);

/* The checks of tol that m fails, as LD_FAIL_* bits (0 = pass). Non-finite disagreement always
 * fails, whatever the tolerance says. */
unsigned ld_judge(const ld_metrics *m, const ld_tolerance *tol);

/* ULP distance between two finite-or-infinite values on the grid of dtype t (both are rounded to
 * t first). NaN on either side: UINT64_MAX. */
uint64_t ld_ulp_distance(float a, float b, ld_dtype t);

/* Splits a flat row-major index into idx[ndim]. */
void ld_unravel(uint64_t flat, const int64_t *shape, int ndim, int64_t *idx);

/* ---- policy ------------------------------------------------------------------------------- */

/* A tolerance policy: the per-dtype defaults (ld_tolerance_default) with overrides per tag glob
 * read from a JSON file (schemas/policy.schema.json, docs/compare.md). */
typedef struct ld_policy ld_policy;

/* The built-in tolerance for a candidate of dtype cand and a tag (one table in policy.c). */
void ld_tolerance_default(ld_dtype cand, const char *tag, ld_tolerance *out);
/* Loads and checks a policy file; messages name the file and the field ("P.json: rules[1].cosine:
 * ..."). */
ld_status ld_policy_load(const char *path, ld_policy **out, ld_error *err);
ld_status ld_policy_parse(const char *text, size_t len, const char *label, ld_policy **out,
                          ld_error *err);
void ld_policy_destroy(ld_policy *p);
/* The tolerance for key with a candidate of dtype cand: defaults, then every matching rule of p in
 * file order (later rules win field by field). p may be NULL (defaults only). */
void ld_policy_resolve(const ld_policy *p, const ld_key *key, ld_dtype cand, ld_tolerance *out);
/* The file a policy came from. */
const char *ld_policy_label(const ld_policy *p);

/* ---- key map (--map) ------------------------------------------------------------------------- */

/* Renames foreign tags to ours (docs/compare.md, schemas/map.schema.json). */
typedef struct ld_keymap ld_keymap;
typedef enum ld_map_action { LD_MAP_KEEP = 0, LD_MAP_RENAME = 1, LD_MAP_DROP = 2 } ld_map_action;

ld_status ld_keymap_load(const char *path, ld_keymap **out, ld_error *err);
ld_status ld_keymap_parse(const char *text, size_t len, const char *label, ld_keymap **out,
                          ld_error *err);
void ld_keymap_destroy(ld_keymap *m);
/* The first rule whose pattern matches tag decides: LD_MAP_RENAME fills *out (and *reshape when
 * the rule allows a different layout of the same size), LD_MAP_DROP ignores the record,
 * LD_MAP_KEEP (no rule matched) leaves the key as written (copied to *out). */
ld_map_action ld_keymap_apply(const ld_keymap *m, int step, int layer, const char *tag,
                              ld_key *out, bool *reshape);

/* ---- comparing two streams ------------------------------------------------------------------- */

/* What fails a CI run (--fail-on). Each condition has its exit code; see ld_compare_exit_code. */
enum {
    LD_FAIL_ON_DIVERGENCE = 1u << 0,  /* a probe fails its tolerance: exit 1 */
    LD_FAIL_ON_INCOMPLETE = 1u << 1,  /* keys missing, shapes differ, a stream cut short: exit 3 */
    LD_FAIL_ON_ARGMAX = 1u << 2,      /* the argmax token differs at some step: exit 1 */
    LD_FAIL_ON_FINGERPRINT = 1u << 3, /* the weight fingerprints differ: exit 2 */
    LD_FAIL_ON_FAULTS = 1u << 4,      /* the injected fault lists differ: exit 2 */
    LD_FAIL_ON_NODATA = 1u << 5,      /* some probe was compared by stats only: exit 3 */
    LD_FAIL_ON_REGRESSION = 1u << 6,  /* some probe's error grew over a baseline's (gate.h): exit 1 */
    LD_FAIL_ON_ALL = (1u << 7) - 1
};
/* compare --baseline adds LD_FAIL_ON_REGRESSION to the default. */
#define LD_FAIL_ON_DEFAULT (LD_FAIL_ON_DIVERGENCE | LD_FAIL_ON_INCOMPLETE)
/* "divergence,incomplete,argmax,fingerprint,faults,nodata,regression", "all", "none" -> bits. */
ld_status ld_fail_on_parse(const char *list, unsigned *out, ld_error *err);
/* Writes the names of the set bits, comma-separated ("none" when 0). */
void ld_fail_on_format(unsigned bits, char *buf, size_t size);

typedef struct ld_compare_options {
    const ld_policy *policy;          /* NULL: defaults by candidate dtype */
    const ld_keymap *map;             /* NULL: keys as written; applies to both streams */
    const char *const *allow_missing; /* globs of keys allowed to be missing or to differ in
                                         shape: "S*.L27.*", "logits" (no '.': the tag alone),
                                         "end" (a missing end record), "*" */
    size_t n_allow_missing;
    bool allow_input_mismatch;        /* compare even when prompts, configs or decoded tokens differ */
    unsigned fail_on;                 /* LD_FAIL_ON_* (LD_FAIL_ON_DEFAULT) */
    int topk;                         /* logits top-k agreement, 1..64 (5) */
    /* Noise floors (floor.h), one per candidate dtype at most: a probe whose candidate dtype has a
     * floor is judged by it (error over k x floor, with a ULP cap) instead of the policy. */
    const struct ld_floor *const *floors;
    size_t n_floors;
    double floor_k;                   /* LD_FLOOR_K_DEFAULT */
    uint64_t floor_ulp_cap;           /* LD_FLOOR_ULP_CAP_DEFAULT */
    size_t max_line;                  /* longest record accepted, bytes (0: the reader's default) */
    size_t max_parked;                /* bytes of records waiting for their partners, payloads and
                                         bookkeeping (0: LD_CMP_MAX_PARKED_DEFAULT); more fails
                                         the comparison with LD_E_INPUT */
    bool whole_records;               /* read each record whole, payload included (as before
                                         payloads streamed: the same results, more memory; for
                                         tests and comparisons of the two) */
} ld_compare_options;

void ld_compare_options_init(ld_compare_options *o);

/* What records waiting for their partners may hold by default: streams in the same order park
 * nothing, a few ops swapped within a layer park a few records; beyond this the streams' orders
 * (or keys) differ so much that memory would grow with the stream. */
#define LD_CMP_MAX_PARKED_DEFAULT ((size_t)512 << 20)

/* What happened to one key. */
typedef enum ld_row_state {
    LD_ROW_COMPARED = 0,       /* both sides present, same shape: metrics and verdict */
    LD_ROW_MISSING_IN_CAND = 1,
    LD_ROW_MISSING_IN_REF = 2,
    LD_ROW_SHAPE_MISMATCH = 3
} ld_row_state;

/* One probe key: the unit of every report. Rows come in reference order, then keys found only in
 * the candidate in candidate order. */
typedef struct ld_row {
    ld_key key;
    ld_tag tag_id;           /* LD_TAG_UNKNOWN for custom tags */
    ld_row_state state;
    bool pass;               /* COMPARED and fail_mask == 0 */
    bool allowed;            /* missing / shape mismatch covered by --allow-missing */
    unsigned fail_mask;      /* LD_FAIL_* bits */
    uint64_t ref_index;      /* position in the reference stream (UINT64_MAX when absent) */
    uint64_t cand_index;     /* position in the candidate stream (UINT64_MAX when absent) */
    uint64_t ref_line, cand_line; /* 1-based line numbers of the records (0 when absent) */
    int64_t pos0;            /* position of row 0 (reference's, else candidate's) */
    int ndim;                /* the reference's shape (the candidate's when missing in ref) */
    int64_t shape[LD_MAX_NDIM];
    int cand_ndim;           /* the candidate's shape (when it differs: SHAPE_MISMATCH) */
    int64_t cand_shape[LD_MAX_NDIM];
    bool reshaped;           /* compared in the reference's shape through a map rule */
    ld_dtype ref_dtype, cand_dtype;
    bool ref_has_data, cand_has_data;
    bool cand_fed;           /* the candidate replaced this tensor by its feed's after probing
                                (run --feed): what follows it saw the reference's tensor */
    uint32_t ref_crc32, cand_crc32; /* of the raw payload bytes, when present */
    ld_stats ref_stats, cand_stats;
    ld_tolerance tol;        /* the policy's tolerance for this key */
    ld_metrics m;
    /* Op-graph context, filled once every row is known: the largest rel_l2 among this key's
     * compared inputs (NaN when none was compared), which input that is (-1: none) and
     * amplification = rel_l2 / inputs_rel_l2 (+inf when the inputs agree exactly, NaN unknown). */
    double inputs_rel_l2;
    ptrdiff_t worst_input;
    double amplification;
    /* Noise floor (--floor): the floor's rel_l2 for this key and rel_l2 / floor; NaN when the
     * probe was judged by the policy instead. */
    double floor_rel_l2;
    double floor_ratio;
    /* Op-local attribution (compare --model, replay.h): the reference op rerun on the candidate's
     * own inputs, y = op(c_in). local = ||c - y|| / ||y|| is the error this op made; inherited =
     * ||y - r|| / ||r|| the error its inputs brought. NaN when not replayed (replay_why says why). */
    bool replayed;
    const char *replay_why;  /* static text: why this probe was not replayed ("" when it was) */
    double local_rel_l2;
    double inherited_rel_l2;
    uint64_t local_ulp_max;
    double local_budget;     /* the largest local error an honest op of this dtype makes */
    bool local_over;         /* local_rel_l2 > local_budget (and some element > the ULP cap) */
} ld_row;

/* What one stream said about itself. */
typedef struct ld_stream_info {
    char *path;
    bool opened;             /* a header was read */
    char *implementation;
    char *backend_json, *model_json, *input_json, *tool_json, *created; /* compact JSON / text */
    struct cJSON *backend, *model; /* the two header objects, parsed once when the header is read
                                      (NULL when absent or not JSON); every check reads these */
    char *fingerprint;       /* "" when absent */
    char *feed_json;         /* the header's "feed" (a teacher-forced run), "" when absent */
    char **faults;
    size_t n_faults;
    int32_t *tokens;         /* the prompt */
    size_t n_tokens;
    int decode_steps;
    uint64_t probes;         /* probe records read (after the map's drops) */
    uint64_t dropped;        /* records the map dropped */
    uint64_t with_data;      /* probe records that carried a payload */
    uint64_t bytes;          /* input bytes consumed */
    bool has_end, end_ok;
    char *end_message;       /* producer's error message ("" when ok) */
    bool truncated;          /* cut short: no end record, or a partial last line */
    char *last_key;          /* last complete key read */
    int32_t *end_tokens;     /* argmax per step, from the end record */
    size_t n_end_tokens;
    int32_t *decoded;        /* tokens fed to decode steps 1..N */
    size_t n_decoded;
    int dtype_mask;          /* bit (1 << ld_dtype) for every probe dtype seen */
} ld_stream_info;

typedef enum ld_note_level { LD_NOTE_INFO = 0, LD_NOTE_WARN = 1, LD_NOTE_ERROR = 2 } ld_note_level;

/* A statement every report shows near the top (fingerprints differ, fault lists differ, inputs
 * allowed to differ, stats-only comparisons, ...). code is a stable identifier for tools. */
typedef struct ld_note {
    ld_note_level level;
    char code[32];
    char *text;
} ld_note;

/* One step's final tokens and logits agreement. */
typedef struct ld_step_tokens {
    int step;
    bool have_ref, have_cand;
    int32_t ref_token, cand_token; /* argmax of the step (end record, else the last logits row) */
    uint64_t logits_rows;          /* rows of logits compared with payload (0: none) */
    uint64_t top1_agree;           /* rows whose argmax agrees */
    double topk_overlap;           /* mean |topk(r) ∩ topk(c)| / k over the rows */
    int64_t first_top1_diff_row;   /* first row whose argmax differs (-1: none) */
} ld_step_tokens;

typedef struct ld_compare_result {
    ld_stream_info ref, cand;
    char *policy_label;            /* "built-in defaults" or the policy file */
    double floor_k;                /* the floor verdict's multiple and ULP cap */
    uint64_t floor_ulp_cap;
    size_t n_floor_judged;         /* compared rows judged by a noise floor */
    bool replay_ran;               /* op-local attribution ran (compare --model) */
    size_t n_replayed;             /* rows whose op was replayed */
    ptrdiff_t culprit;             /* first row (reference order) whose local error is over budget */
    size_t n_culprits;             /* rows whose local error is over budget */
    unsigned fail_on;
    int topk;
    int n_layers;                  /* num_hidden_layers from the reference header, else seen */
    ld_row *rows;
    size_t n_rows;
    ld_note *notes;
    size_t n_notes;
    ld_step_tokens *steps;         /* by step, 0..n_steps-1 */
    size_t n_steps;
    const ld_tokenizer *tokenizer; /* not owned: the reports name tokens by their text as well as
                                      their id (the caller sets it after the comparison, e.g. from
                                      compare --tokenizer); NULL: ids only */

    /* Counts over rows. */
    size_t n_compared, n_pass, n_fail, n_missing_in_cand, n_missing_in_ref, n_shape_mismatch;
    size_t n_allowed;              /* missing / shape rows covered by --allow-missing */
    size_t n_stats_only;           /* compared rows with LD_SRC_STATS */

    ptrdiff_t first_div;           /* row of the first failing probe in reference order, -1 */
    ld_err_grid first_grid;        /* its error grid (empty when unavailable) */
    int argmax_step;               /* first step whose argmax token differs, -1 */

    /* Conditions, each judged by ld_compare_exit_code against fail_on. */
    bool divergence;
    bool incomplete;               /* missing / shape / truncation / error end not allowed */
    bool empty;                    /* a stream with no probe at all: never a pass */
    bool fingerprint_differs;
    bool faults_differ;
    bool input_mismatch;           /* allowed by --allow-input-mismatch, else the run failed */

    void *index_;                  /* internal: key -> row lookup */

    /* Regression gate (gate.h, compare --baseline): set by ld_baseline_apply, owned, NULL when no
     * baseline was given; regression (judged against fail_on) when some probe's error grew. */
    struct ld_baseline_check *baseline;
    bool regression;
} ld_compare_result;

/* Compares two probe streams. Errors: unreadable or malformed input and (unless
 * allow_input_mismatch) different prompts, model configs or decoded tokens are LD_E_INPUT / LD_E_IO
 * with a message naming the file; missing keys, truncation and divergences are results, not errors.
 * On success *out holds the result (free with ld_compare_result_destroy). */
ld_status ld_compare_run(const char *ref_path, const char *cand_path,
                         const ld_compare_options *opt, ld_compare_result **out, ld_error *err);
void ld_compare_result_destroy(ld_compare_result *r);

/* The row of a key, or -1. */
ptrdiff_t ld_compare_find(const ld_compare_result *r, const ld_key *key);

/* Exit code for fail_on: 0 nothing fails; otherwise the highest-precedence failing condition:
 * 2 (fingerprint, faults) > 1 (divergence, argmax) > 3 (incomplete, nodata). An empty stream is
 * 3 whatever fail_on says. Input and usage errors never reach a result (they are exit 2). */
int ld_compare_exit_code(const ld_compare_result *r, unsigned fail_on);

/* ---- reports ----------------------------------------------------------------------------- */

typedef struct ld_report_options {
    bool brief;  /* text: only failing rows and their context (the CLI's default; --full: off) */
    bool color;  /* text: ANSI colours */
} ld_report_options;

typedef ld_status (*ld_report_fn)(FILE *f, const ld_compare_result *r,
                                  const ld_report_options *opt, ld_error *err);

ld_status ld_report_text(FILE *f, const ld_compare_result *r, const ld_report_options *opt,
                         ld_error *err);
/* schemas/report.schema.json */
ld_status ld_report_json(FILE *f, const ld_compare_result *r, const ld_report_options *opt,
                         ld_error *err);
ld_status ld_report_markdown(FILE *f, const ld_compare_result *r, const ld_report_options *opt,
                             ld_error *err);
/* One self-contained file: no script, no network. */
ld_status ld_report_html(FILE *f, const ld_compare_result *r, const ld_report_options *opt,
                         ld_error *err);
ld_status ld_report_junit(FILE *f, const ld_compare_result *r, const ld_report_options *opt,
                          ld_error *err);
/* Renders with fn in memory, then replaces path (write, fsync, rename). */
ld_status ld_report_to_file(const char *path, ld_report_fn fn, const ld_compare_result *r,
                            const ld_report_options *opt, ld_error *err);

/* The summary paragraph in plain words (first divergence, its inputs, amplification, worst
 * element, argmax, completeness). malloc'd; NULL when out of memory. */
char *ld_compare_summary(const ld_compare_result *r);

#ifdef __cplusplus
}
#endif
#endif

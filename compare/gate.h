/* gate.h — the regression gate for kernel changes (issue 9): compare a candidate's error against a
 * baseline (the JSON report of an earlier, accepted candidate against the same reference), and
 * check two builds of one implementation for bit-exactness. Not here: the comparison itself
 * (compare.h) and the sequence that runs them (src/pipeline/pipeline_compare.h). docs/gate.md
 * explains both. */
#ifndef LD_GATE_H
#define LD_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "compare.h"

/* ---- baseline: did the error against the reference grow anywhere? -------------------------- */

/* A probe regresses when new_rel_l2 > factor * old_rel_l2 + slack (or when it has more NaN/Inf
 * disagreements than in the baseline); it improved when old_rel_l2 > factor * new_rel_l2 + slack.
 * With a noise floor (compare --floor), a growth that stays at or under the floor (the largest
 * error honest kernel sets of that dtype make at that key) is not a regression.
 * factor: honest bf16/f16 kernel variants (nearest-even and stochastic rounding, each pair as
 * baseline and candidate) move a probe's error by at most 2.17x over 81,792 probe ratios on the
 * tiny and small presets (docs/gate.md), so 3 leaves a margin above that, while the zoo's faults
 * move their keys by 4x to 500x. slack: the absolute rel_l2 a probe exact in the baseline may
 * reach (about 16 f32 unit roundoffs), so that probes at ~0 error do not trip on f32
 * accumulation-order noise. */
#define LD_REGRESS_FACTOR_DEFAULT 3.0
#define LD_REGRESS_SLACK_DEFAULT  1e-6
/* Largest baseline file accepted. */
#define LD_BASELINE_MAX_BYTES ((size_t)256 << 20)

/* A baseline report loaded from disk (only what the gate needs). */
typedef struct ld_baseline ld_baseline;

/* Reads and checks a JSON report (schemas/report.schema.json). Malformed files are LD_E_INPUT with
 * a message naming the file and the field ("B.json: probes[3].metrics.rel_l2: ..."). */
ld_status ld_baseline_load(const char *path, ld_baseline **out, ld_error *err);
void ld_baseline_destroy(ld_baseline *b);
const char *ld_baseline_path(const ld_baseline *b);

typedef enum ld_gate_verdict {
    LD_GATE_WITHIN = 0, /* judged, within the factor both ways */
    LD_GATE_REGRESSED = 1,
    LD_GATE_IMPROVED = 2,
    LD_GATE_UNJUDGED = 3 /* not compared here or not in the baseline's comparison */
} ld_gate_verdict;

/* One probe key: its error in the baseline and now. */
typedef struct ld_gate_entry {
    size_t row; /* the result's row (entries are in row order) */
    ld_gate_verdict verdict;
    bool by_nonfinite;             /* regressed through new NaN/Inf disagreements */
    bool stats_only;               /* either error is an estimate from stats (no payload) */
    double old_rel_l2, new_rel_l2; /* NaN when that side was not compared */
    double ratio;                  /* new / old: 1 when both are 0, +inf when only old is 0 */
    double floor_rel_l2;           /* the noise floor at this key (--floor), NaN without one */
    bool under_floor;              /* grew over the factor but stayed under the floor: within */
    uint64_t old_nonfinite, new_nonfinite; /* NaN/Inf disagreements (new + lost) */
} ld_gate_entry;

/* The gate's outcome, attached to a comparison result (ld_compare_result.baseline). */
typedef struct ld_baseline_check {
    char *path;      /* the baseline file */
    char *cand_path; /* what the baseline's candidate was: path, implementation, */
    char *cand_impl; /* faults (space-separated), */
    char *cand_faults;
    char *tool; /* and the layerdiff that wrote it: "layerdiff 0.1.0 (git abc)" */
    double factor, slack;
    ld_gate_entry *entries; /* [n_entries]: one per row of the result, in row order */
    size_t n_entries;
    size_t *by_growth; /* [n_judged] entry indices, largest ratio first (regressions by
                          NaN/Inf first of all); ties in execution order */
    size_t n_judged, n_regressed, n_improved, n_stats_only;
    size_t n_under_floor;      /* growths over the factor forgiven by the noise floor */
    bool floor_used;           /* some judged probe had a noise floor */
    ptrdiff_t first_regressed; /* entry of the first regressed probe in execution order, -1 */
} ld_baseline_check;

/* Judges result r against baseline b. The baseline must come from the same model (reference
 * fingerprint and config), the same input (prompt, decode steps, decoded tokens) and cover the
 * same probe keys; otherwise LD_E_INPUT with the reason. On success r->baseline holds the check
 * (freed with r) and r->regression says whether any probe regressed; an empty result (nothing
 * compared, exit 3 already) is left as it is. factor >= 1, slack >= 0. */
ld_status ld_baseline_apply(ld_compare_result *r, const ld_baseline *b, double factor, double slack,
                            ld_error *err);
void ld_baseline_check_destroy(ld_baseline_check *c);

/* The gate's section of each report, written beside the rest of its format (report_text.c,
 * report_json.c, report_md.c, report_html.c); nothing when r->baseline is NULL. brief (text):
 * only the regressed and improved probes. */
void ld_baseline_report_text(FILE *f, const ld_compare_result *r, bool color, bool brief);
void ld_baseline_report_json(FILE *f, const ld_compare_result *r); /* the "baseline" member */
void ld_baseline_report_markdown(FILE *f, const ld_compare_result *r);
void ld_baseline_report_html(FILE *f, const ld_compare_result *r);

/* ---- exact: are two runs of one implementation bit-identical? ------------------------------- */

/* What differs at one key. */
typedef struct ld_exact_change {
    ld_key key;
    uint64_t index; /* position in the streams */
    uint64_t old_line, new_line;
    char what[192];         /* "payload bytes differ", "dtype f32 -> bf16", "shape ..." */
    bool have_elements;     /* the payloads were compared element by element: */
    uint64_t n_diff, numel; /* elements whose bytes differ, of numel */
    uint64_t first_elem;    /* flat index of the first differing element */
    int ndim;
    int64_t shape[LD_MAX_NDIM];
    double old_value, new_value; /* that element on each side */
    uint32_t old_crc32, new_crc32;
    bool have_crc;
} ld_exact_change;

/* Most changed keys kept in the list (all are counted). */
#define LD_EXACT_MAX_LISTED 1000

typedef struct ld_exact_result {
    char *old_path, *new_path;
    char *old_impl, *new_impl;
    char *old_backend, *new_backend; /* compact JSON of the headers' backend */
    uint64_t keys;                   /* keys compared */
    uint64_t by_bytes;               /* keys compared by payload bytes (both sides have data) */
    uint64_t by_stats;               /* keys compared by stats and head values only */
    uint64_t n_changed;              /* keys whose record differs */
    ld_exact_change *changes;        /* the first LD_EXACT_MAX_LISTED, in stream order */
    size_t n_listed;
    bool structural; /* the key sequences differ: stopped at changes[n_listed-1] */
    bool truncated_old, truncated_new; /* cut short or ended in error */
    bool empty;                        /* a stream without probes */
    char **notes;                      /* statements for every report */
    size_t n_notes;
} ld_exact_result;

/* Walks both streams in lockstep (memory: one record of each). Different prompts, decode steps or
 * model configs are LD_E_INPUT; different backends, faults or weights are noted. max_line: longest
 * record (0: the reader's default). */
ld_status ld_exact_run(const char *old_path, const char *new_path, size_t max_line,
                       ld_exact_result **out, ld_error *err);
void ld_exact_result_destroy(ld_exact_result *r);
/* 0 identical, 1 some key changed (or the key sequences differ), 3 incomplete (a stream cut short
 * or empty) with no change before the cut. */
int ld_exact_exit_code(const ld_exact_result *r);

/* The --exact reports, each beside the rest of its format (report_<format>.c). */
typedef ld_status (*ld_exact_report_fn)(FILE *f, const ld_exact_result *r, bool color,
                                        ld_error *err);
ld_status ld_exact_report_text(FILE *f, const ld_exact_result *r, bool color, ld_error *err);
/* schemas/exact.schema.json */
ld_status ld_exact_report_json(FILE *f, const ld_exact_result *r, bool color, ld_error *err);
ld_status ld_exact_report_markdown(FILE *f, const ld_exact_result *r, bool color, ld_error *err);
/* Renders in memory, then replaces path. */
ld_status ld_exact_report_to_file(const char *path, ld_exact_report_fn fn, const ld_exact_result *r,
                                  ld_error *err);

/* ---- shared by baseline.c and exact.c ---- */

struct cJSON;
/* The first member that differs between the JSON objects a and b, names in skip (NULL-terminated,
 * or NULL) left out, into buf: "hidden_size is 64 <in_a> and 256 <in_b>"; false when they agree. */
bool ld_gate_json_difference(const struct cJSON *a, const struct cJSON *b, const char *const *skip,
                             const char *in_a, const char *in_b, char *buf, size_t size);

#endif

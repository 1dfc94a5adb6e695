/* floor.h — the noise floor (issue 8): per probe key, the error an honest implementation of a given
 * precision makes at that point, measured by `layerdiff calibrate` as the largest error of several
 * emulated kernel sets (round-to-nearest-even and stochastic-rounding variants) against the fp32
 * reference on the same model and input. compare --floor judges a candidate probe by its error over
 * the floor. File format: schemas/floor.schema.json. Not here: running the variants (the CLI). */
#ifndef LD_FLOOR_H
#define LD_FLOOR_H

#include <stddef.h>
#include <stdint.h>

#include "compare.h"

#define LD_FLOOR_FORMAT "layerdiff-floor"
#define LD_FLOOR_VERSION 1
/* Defaults of the verdict: fail when rel_l2 > k * floor and the largest ULP distance > ulp_cap. */
#define LD_FLOOR_K_DEFAULT 2.0
#define LD_FLOOR_ULP_CAP_DEFAULT 2

typedef struct ld_floor_entry {
    ld_key key;
    double rel_l2;         /* the floor: largest relative L2 error over the variants */
    double rel_l2_nearest; /* the round-to-nearest-even variant's alone */
    double max_abs;        /* largest max |c-r| over the variants */
    uint64_t ulp_max;      /* largest ULP distance over the variants */
    double local_rel_l2;   /* largest op-local error (replay.h) over the variants; NaN: not
                              measured */
} ld_floor_entry;

typedef struct ld_floor ld_floor;

/* A new, empty floor for candidates of dtype, on the model and input of a reference stream. */
ld_floor *ld_floor_create(ld_dtype dtype, const char *fingerprint, const char *model_json,
                          const int32_t *tokens, size_t n_tokens, int decode_steps);
/* Folds one variant's comparison into the floor (each key keeps the largest error). */
ld_status ld_floor_add_variant(ld_floor *f, const char *variant, bool nearest_even,
                               const ld_compare_result *r, ld_error *err);
ld_status ld_floor_write(const ld_floor *f, const char *path, ld_error *err);
ld_status ld_floor_load(const char *path, ld_floor **out, ld_error *err);
void ld_floor_destroy(ld_floor *f);

ld_dtype ld_floor_dtype(const ld_floor *f);
const char *ld_floor_label(const ld_floor *f);
size_t ld_floor_count(const ld_floor *f);
const ld_floor_entry *ld_floor_find(const ld_floor *f, const ld_key *key);
/* LD_OK when the floor was calibrated on this model (fingerprint) and input (prompt and decode
 * count); LD_E_INPUT naming the difference otherwise. */
ld_status ld_floor_check_stream(const ld_floor *f, const ld_stream_info *ref, ld_error *err);

/* Ratio of a compared probe's error to its floor: rel_l2 / floor (0 when both are 0, +inf when
 * only the floor is 0). */
double ld_floor_ratio(const ld_floor_entry *e, const ld_metrics *m);
/* The verdict against the floor: true (pass) when the ratio is at most k, or when every element is
 * within ulp_cap ULPs of the reference. Non-finite disagreement is judged elsewhere (always fails). */
bool ld_floor_pass(const ld_floor_entry *e, const ld_metrics *m, double k, uint64_t ulp_cap);

#endif

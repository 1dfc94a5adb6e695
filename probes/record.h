/* record.h — limits, names and statistics checks shared by the probe writer and reader (internal
 * to the library).
 * The normative description of a record is schemas/probe.schema.json; this is its C side. */
#ifndef LD_PROBES_RECORD_H
#define LD_PROBES_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerdiff/probes.h"

/* Elements of one probe: 2^40 (4 TiB of f32) is far beyond any activation and keeps every byte
 * count of a payload inside size_t and int64 arithmetic. */
#define LD_RECORD_MAX_NUMEL ((uint64_t)1 << 40)
/* Longest free-text field we copy into a fixed buffer (implementation). */
#define LD_RECORD_IMPL_MAX 255

/* Statistics that contradict themselves or the head (stats.c): NaN where elements are finite, a
 * number where none is, min > max, a negative std or l2, counts the head disproves, l2 apart from
 * mean and std. Returns false with the reason in why[len]. numel >= nan + inf is the caller's. */
bool ld_stats_check(const ld_stats *s, uint64_t numel, const double *head, int n_head, char *why,
                    size_t len);
/* What a payload proves of its stats, gathered piece by piece (a streamed payload arrives in
 * pieces): its NaN and Inf counts and the min and max of its finite elements. Start from {0}. */
typedef struct ld_tally {
    uint64_t nan, inf, finite;
    double min, max;
} ld_tally;
void ld_tally_add(ld_tally *t, const void *data, ld_dtype dtype, size_t n);
/* Claimed statistics against a payload's tally: counts, min and max, exactly (every writer
 * computes them exactly). mean, std and l2 are left to ld_stats_check: the metrics of a payload
 * come from the payload itself, never from them. */
bool ld_stats_agree(const ld_stats *claimed, const ld_tally *t, char *why, size_t len);
/* The header's "filter" object: which keys the writer was asked for, each field present only
 * when it narrows (tags: comma-separated globs; layers, steps: ranges like "0-3,10"). */
extern const char *const ld_filter_fields[3]; /* "tags", "layers", "steps" */

#endif

/* record.h — limits and names shared by the probe writer and reader (internal to the library).
 * The normative description of a record is schemas/probe.schema.json; this is its C side. */
#ifndef LD_PROBES_RECORD_H
#define LD_PROBES_RECORD_H

#include <stdbool.h>
#include <stdint.h>

/* Elements of one probe: 2^40 (4 TiB of f32) is far beyond any activation and keeps every byte
 * count of a payload inside size_t and int64 arithmetic. */
#define LD_RECORD_MAX_NUMEL ((uint64_t)1 << 40)
/* Longest free-text field we copy into a fixed buffer (implementation). */
#define LD_RECORD_IMPL_MAX 255

/* The header's "filter" object: which keys the writer was asked for, each field present only
 * when it narrows (tags: comma-separated globs; layers, steps: ranges like "0-3,10"). */
extern const char *const ld_filter_fields[3]; /* "tags", "layers", "steps" */
/* Whether tag matches one of the comma-separated globs of list ("" or NULL: every tag). */
bool ld_rec_tags_match(const char *list, const char *tag);

#endif

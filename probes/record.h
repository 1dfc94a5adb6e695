/* record.h — limits and names shared by the probe writer and reader (internal to the library).
 * The normative description of a record is schemas/probe.schema.json; this is its C side. */
#ifndef LD_PROBES_RECORD_H
#define LD_PROBES_RECORD_H

#include <stdint.h>

/* Elements of one probe: 2^40 (4 TiB of f32) is far beyond any activation and keeps every byte
 * count of a payload inside size_t and int64 arithmetic. */
#define LD_RECORD_MAX_NUMEL ((uint64_t)1 << 40)
/* Longest free-text field we copy into a fixed buffer (implementation). */
#define LD_RECORD_IMPL_MAX 255

#endif

/* keyfilter.h — which keys a sink writes or a feed replaces (internal to the probe library): tag
 * globs, layer ranges and step ranges, as LAYERDIFF_PROBE_TAGS/LAYERDIFF_PROBE_LAYERS/
 * LAYERDIFF_PROBE_STEPS and `run --feed-tags/--feed-layers/--feed-steps` spell them. Not the
 * probes themselves. */
#ifndef LD_PROBES_KEYFILTER_H
#define LD_PROBES_KEYFILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "layerdiff/error.h"
#include "util.h"

typedef struct ld_keyfilter {
    char **globs; /* [n_globs] tag patterns; none = every tag */
    size_t n_globs;
    ld_ranges layers, steps; /* model-level tags pass any layer filter */
} ld_keyfilter;

/* LD_E_USAGE unless list is empty or comma-separated tag globs; the message starts with what. */
ld_status ld_keyfilter_check_tags(const char *list, const char *what, ld_error *err);
/* Parses the three filters (NULL or "" = everything). On failure f holds nothing. */
ld_status ld_keyfilter_init(ld_keyfilter *f, const char *tags, const char *layers,
                            const char *steps, ld_error *err);
bool ld_keyfilter_match(const ld_keyfilter *f, int step, int layer, const char *tag);
void ld_keyfilter_free(ld_keyfilter *f);

#endif

/* keyfilter.c — tag globs, layer and step ranges deciding which keys a sink writes or a feed
 * replaces (keyfilter.h). Parsing and matching only; the sink and the feed decide what to do. */
#include "keyfilter.h"

#include <stdlib.h>
#include <string.h>

#include "layerdiff/tags.h"

/* A tag glob is a tag name that may also hold '*' and '?'. */
static bool glob_valid(const char *g, size_t n)
{
    if (n == 0 || n > LD_TAG_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = g[i];
        char one[2] = {c, '\0'};
        if (c != '*' && c != '?' && !ld_tag_name_valid(one))
            return false;
    }
    return true;
}

ld_status ld_keyfilter_check_tags(const char *list, const char *what, ld_error *err)
{
    if (!list || !*list)
        return LD_OK;
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (!glob_valid(p, n))
            return ld_error_set(err, LD_E_USAGE,
                                "%s: bad tag pattern '%.*s' in '%s' (tag characters and * ?, "
                                "separated by commas)",
                                what, (int)LD_MIN(n, (size_t)200), p, list);
        if (!comma)
            return LD_OK;
        p = comma + 1;
    }
}

void ld_keyfilter_free(ld_keyfilter *f)
{
    for (size_t i = 0; i < f->n_globs; i++)
        free(f->globs[i]);
    free(f->globs);
    memset(f, 0, sizeof *f);
}

ld_status ld_keyfilter_init(ld_keyfilter *f, const char *tags, const char *layers,
                            const char *steps, ld_error *err)
{
    memset(f, 0, sizeof *f);
    if (ld_keyfilter_check_tags(tags, "tags", err) != LD_OK)
        return LD_E_USAGE;
    if (ld_ranges_parse(layers, &f->layers, err) != LD_OK)
        return ld_error_prefix(err, "layers");
    if (ld_ranges_parse(steps, &f->steps, err) != LD_OK)
        return ld_error_prefix(err, "steps");
    if (!tags || !*tags)
        return LD_OK;
    size_t n = 1;
    for (const char *p = tags; *p; p++)
        n += *p == ',';
    f->globs = calloc(n, sizeof *f->globs);
    if (!f->globs)
        return ld_error_set(err, LD_E_NOMEM, "cannot allocate tag patterns");
    for (const char *p = tags;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char *g = strndup(p, len);
        if (!g) {
            ld_keyfilter_free(f);
            return ld_error_set(err, LD_E_NOMEM, "cannot allocate tag patterns");
        }
        f->globs[f->n_globs++] = g;
        if (!comma)
            return LD_OK;
        p = comma + 1;
    }
}

bool ld_keyfilter_match(const ld_keyfilter *f, int step, int layer, const char *tag)
{
    if (!tag || !ld_ranges_contains(&f->steps, step))
        return false;
    if (layer != LD_NO_LAYER && !ld_ranges_contains(&f->layers, layer))
        return false;
    if (f->n_globs == 0)
        return true;
    for (size_t i = 0; i < f->n_globs; i++)
        if (ld_glob_match(f->globs[i], tag))
            return true;
    return false;
}

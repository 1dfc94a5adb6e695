/* compare_options.c — the comparator's options: defaults, the --fail-on list, and the exit code a
 * result earns under it. Not the comparison itself (compare.c and the compare_*.c beside it). */
#include <stdio.h>
#include <string.h>

#include "compare.h"
#include "floor.h"
#include "util.h"

static const struct {
    const char *name;
    unsigned bit;
} fail_on_names[] = {
    {"divergence", LD_FAIL_ON_DIVERGENCE}, {"incomplete", LD_FAIL_ON_INCOMPLETE},
    {"argmax", LD_FAIL_ON_ARGMAX},         {"fingerprint", LD_FAIL_ON_FINGERPRINT},
    {"faults", LD_FAIL_ON_FAULTS},         {"nodata", LD_FAIL_ON_NODATA},
    {"regression", LD_FAIL_ON_REGRESSION},
};

ld_status ld_fail_on_parse(const char *list, unsigned *out, ld_error *err)
{
    unsigned bits = 0;
    const char *p = list;
    if (!p || !*p)
        return ld_error_set(err, LD_E_USAGE, "--fail-on: empty list");
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        bool found = false;
        if (len == 3 && !strncmp(p, "all", 3)) {
            bits |= LD_FAIL_ON_ALL;
            found = true;
        } else if (len == 4 && !strncmp(p, "none", 4)) {
            found = true;
        }
        for (size_t i = 0; !found && i < LD_ARRAY_LEN(fail_on_names); i++) {
            if (strlen(fail_on_names[i].name) == len && !strncmp(p, fail_on_names[i].name, len)) {
                bits |= fail_on_names[i].bit;
                found = true;
            }
        }
        if (!found)
            return ld_error_set(err, LD_E_USAGE,
                                "--fail-on: unknown condition '%.*s' (divergence, incomplete, "
                                "argmax, fingerprint, faults, nodata, regression, all, none)",
                                (int)LD_MIN(len, (size_t)64), p);
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = bits;
    return LD_OK;
}

void ld_fail_on_format(unsigned bits, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < LD_ARRAY_LEN(fail_on_names); i++) {
        if (!(bits & fail_on_names[i].bit))
            continue;
        int n = snprintf(buf + used, size - used, "%s%s", used ? "," : "", fail_on_names[i].name);
        if (n < 0 || (size_t)n >= size - used)
            return;
        used += (size_t)n;
    }
    if (!used)
        snprintf(buf, size, "none");
}

void ld_compare_options_init(ld_compare_options *o)
{
    memset(o, 0, sizeof *o);
    o->fail_on = LD_FAIL_ON_DEFAULT;
    o->topk = 5;
    o->floor_k = LD_FLOOR_K_DEFAULT;
    o->floor_ulp_cap = LD_FLOOR_ULP_CAP_DEFAULT;
}


int ld_compare_exit_code(const ld_compare_result *r, unsigned fail_on)
{
    int code = 0;
    if (r->empty || ((fail_on & LD_FAIL_ON_INCOMPLETE) && r->incomplete) ||
        ((fail_on & LD_FAIL_ON_NODATA) && r->n_stats_only))
        code = 3;
    if (((fail_on & LD_FAIL_ON_DIVERGENCE) && r->divergence) ||
        ((fail_on & LD_FAIL_ON_ARGMAX) && r->argmax_step >= 0) ||
        ((fail_on & LD_FAIL_ON_REGRESSION) && r->regression))
        code = 1;
    if (((fail_on & LD_FAIL_ON_FINGERPRINT) && r->fingerprint_differs) ||
        ((fail_on & LD_FAIL_ON_FAULTS) && r->faults_differ))
        code = 2;
    return code;
}

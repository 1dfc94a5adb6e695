/* compare_exact.c — 'layerdiff compare OLD NEW --exact': runs the bit-exactness walk (compare/
 * exact.c), prints its report, writes the JSON / Markdown files asked for and picks the exit code.
 * Option parsing stays in cmd_compare.c; this file only talks to the user. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gate.h"
#include "util.h"

int ld_cli_compare_exact(const char *old_path, const char *new_path, const char *out_json,
                         const char *out_md, size_t max_line, bool quiet, const char *color)
{
    ld_error err;
    ld_error_clear(&err);
    ld_exact_result *r = NULL;
    const char *inputs[] = {old_path, new_path};
    const char *outputs[][2] = {{"--json", out_json}, {"--md", out_md}};
    for (size_t i = 0; i < LD_ARRAY_LEN(outputs); i++)
        if (outputs[i][1] && ld_refuse_overwrite(outputs[i][1], inputs,
                                                 LD_ARRAY_LEN(inputs), &err) != LD_OK) {
            ld_error_prefix(&err, "%s", outputs[i][0]);
            return ld_cli_fail("compare", &err);
        }
    if (out_json && out_md && ld_same_path(out_json, out_md)) {
        ld_error_set(&err, LD_E_USAGE, "--json and --md both name %s: each report needs its own "
                                       "file", out_md);
        return ld_cli_fail("compare", &err);
    }
    if (ld_exact_run(old_path, new_path, max_line, &r, &err) != LD_OK)
        return ld_cli_fail("compare", &err);
    bool paint = !strcmp(color, "always") ||
                 (!strcmp(color, "auto") && isatty(STDOUT_FILENO) == 1 && !getenv("NO_COLOR"));
    int rc = ld_exact_exit_code(r);
    if (!quiet && ld_exact_report_text(stdout, r, paint, &err) != LD_OK)
        rc = ld_cli_fail("compare", &err);
    else if (out_json && ld_exact_report_to_file(out_json, ld_exact_report_json, r, &err) != LD_OK)
        rc = ld_cli_fail("compare", &err);
    else if (out_md && ld_exact_report_to_file(out_md, ld_exact_report_markdown, r, &err) != LD_OK)
        rc = ld_cli_fail("compare", &err);
    ld_exact_result_destroy(r);
    return rc;
}

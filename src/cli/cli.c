/* cli.c — option-error and error-message helpers shared by the subcommands (cli.h). */
#include "cli.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "layerdiff/tokenizer.h"

int ld_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
                  const char *cmd)
{
    /* A leading ':' makes getopt return ':' for a missing value and '?' for an unknown option,
     * for long and short options alike, without printing anything itself. */
    char spec[128];
    snprintf(spec, sizeof spec, ":%s", shortopts[0] == ':' ? shortopts + 1 : shortopts);
    opterr = 0;
    int c = getopt_long(argc, argv, spec, longopts, NULL);
    if (c != '?' && c != ':')
        return c;
    /* The offending word: getopt has moved past it, except for a bad letter inside a cluster. */
    const char *word = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    if (c == ':')
        fprintf(stderr, "layerdiff %s: option '%s' needs a value (see 'layerdiff %s --help')\n",
                cmd, word, cmd);
    else if (optopt && strncmp(word, "--", 2) != 0)
        fprintf(stderr, "layerdiff %s: unknown option '-%c' (see 'layerdiff %s --help')\n", cmd,
                optopt, cmd);
    else
        fprintf(stderr, "layerdiff %s: unknown option '%s' (see 'layerdiff %s --help')\n", cmd,
                word, cmd);
    return '?';
}

int ld_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "layerdiff %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return LD_EXIT_USAGE;
}

int ld_cli_fail(const char *cmd, const ld_error *err)
{
    fprintf(stderr, "layerdiff %s: %s\n", cmd, err->msg[0] ? err->msg : ld_status_name(err->code));
    return ld_status_exit_code(err->code);
}

const ld_backend *ld_cli_backend(const char *cmd, const char *name, int *rc)
{
    ld_error err = {0};
    const ld_backend *b = ld_backend_find(name);
    if (ld_backend_check(b, &err) == LD_OK)
        return b;
    ld_error_prefix(&err, "--backend %s", name);
    *rc = ld_cli_fail(cmd, &err);
    return NULL;
}

bool ld_cli_stderr_is_tty(void) { return isatty(STDERR_FILENO) == 1; }

void ld_cli_prompt_note(const char *cmd, const char *text, size_t len)
{
    int32_t cp = text ? ld_tokenizer_unclassed(text, len) : -1;
    if (cp >= 0)
        fprintf(stderr, "%s: note: the prompt holds U+%04X, which Unicode 14 had not assigned: "
                "this build splits text by Unicode 14's classes, HF tokenizers by Unicode 16's, "
                "so HF may give other ids for this prompt (docs/tokenizer.md)\n", cmd,
                (unsigned)cp);
}

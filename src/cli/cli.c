/* cli.c — option-error and error-message helpers shared by the subcommands (cli.h). */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int ld_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
                  const char *cmd)
{
    opterr = 0;
    int prev = optind;
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    if (c == '?' || c == ':') {
        const char *arg = (optind - 1 >= 0 && optind - 1 < argc) ? argv[optind - 1] : "?";
        if (optind == prev) /* getopt did not advance: the failing word is argv[optind] */
            arg = optind < argc ? argv[optind] : arg;
        if (c == ':' || (optopt && strchr(shortopts, optopt) && optopt != '?'))
            fprintf(stderr, "layerdiff %s: option '%s' needs a value (see 'layerdiff %s --help')\n",
                    cmd, arg, cmd);
        else if (optopt)
            fprintf(stderr, "layerdiff %s: unknown option '-%c' (see 'layerdiff %s --help')\n", cmd,
                    optopt, cmd);
        else
            fprintf(stderr, "layerdiff %s: unknown option '%s' (see 'layerdiff %s --help')\n", cmd,
                    arg, cmd);
        return '?';
    }
    return c;
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

bool ld_cli_stderr_is_tty(void) { return isatty(STDERR_FILENO) == 1; }

/* cmd_compare.c — 'layerdiff compare': not built yet; fails loudly (exit 2) rather than doing nothing. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int ld_cmd_compare(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: layerdiff compare ...\n\n'layerdiff compare' is not built yet.\n");
        return LD_EXIT_OK;
    }
    return ld_cli_usage_error("compare", "not built yet");
}

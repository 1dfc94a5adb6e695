/* cmd_run.c — 'layerdiff run': not built yet; fails loudly (exit 2) rather than doing nothing. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int ld_cmd_run(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: layerdiff run ...\n\n'layerdiff run' is not built yet.\n");
        return LD_EXIT_OK;
    }
    return ld_cli_usage_error("run", "not built yet");
}

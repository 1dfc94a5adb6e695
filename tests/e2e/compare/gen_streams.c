/* gen_streams.c — writes the comparator's constructed test streams into a directory, for the CLI
 * test (test_compare_cli.sh) and for trying the reports by hand:
 *   ld_compare_gen_streams DIR   ->  DIR/ref.jsonl, DIR/perturbed.jsonl, ... (see streams.c) */
#include <stdio.h>

#include "streams.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    char msg[1024];
    if (ts_write_all(argv[1], msg, sizeof msg)) {
        fprintf(stderr, "%s: %s\n", argv[0], msg);
        return 1;
    }
    return 0;
}

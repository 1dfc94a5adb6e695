/* main.c — the layerdiff binary: dispatches to one subcommand per file (cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ld_version.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"gen-model", ld_cmd_gen_model, "write a random Qwen3 checkpoint (presets tiny, small, qwen3-0.6b)"},
    {"run", ld_cmd_run, "run the Qwen3 forward pass (CPU reference or CUDA) and write probes"},
    {"compare", ld_cmd_compare, "align two probe streams and report the first divergence"},
    {"inspect", ld_cmd_inspect, "summarize a probe stream, one line per probe"},
    {"extract", ld_cmd_extract, "write one probe's tensor as a NumPy .npy file"},
    {"isolate", ld_cmd_isolate, "teacher forcing: is the first divergence its op's own error?"},
    {"calibrate", ld_cmd_calibrate, "measure the noise floor of an honest low-precision run"},
};

static void usage(FILE *out)
{
    fprintf(out,
            "layerdiff %s — find where two implementations of the Qwen3 forward pass first\n"
            "stop agreeing: which step, layer, op and head.\n\n"
            "usage: layerdiff <command> [options]\n\ncommands:\n",
            LD_VERSION_STRING);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s  %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\nRun 'layerdiff <command> --help' (or 'layerdiff help <command>') for the options of\n"
            "a command; 'layerdiff --version' prints the version and git revision.\n\n"
            "exit codes: 0 success / no divergence, 1 divergence (or regression) found,\n"
            "            2 bad usage or input,\n"
            "            3 comparison incomplete (stream cut short, keys missing, shapes differ)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return LD_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") && argc >= 3) { /* help COMMAND: that command's --help */
        for (size_t i = 0; argc == 3 && i < sizeof commands / sizeof commands[0]; i++)
            if (!strcmp(argv[2], commands[i].name))
                return commands[i].fn(2, (char *[]){argv[2], (char *)"--help", NULL});
        if (argc > 3)
            fprintf(stderr, "layerdiff help: one command at a time (see 'layerdiff --help')\n");
        else
            fprintf(stderr, "layerdiff help: unknown command '%s' (see 'layerdiff --help')\n",
                    argv[2]);
        return LD_EXIT_USAGE;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return LD_EXIT_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("layerdiff %s (git %s)\n", LD_VERSION_STRING, LD_GIT_REVISION);
        return LD_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "layerdiff: unknown command '%s' (see 'layerdiff --help')\n", cmd);
    return LD_EXIT_USAGE;
}

/* cli.h — what the subcommands of the layerdiff binary share: their entry points and the helpers
 * that turn option errors and library errors into one-line messages and exit codes. Only this
 * layer prints to the terminal or chooses an exit code. */
#ifndef LD_CLI_H
#define LD_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "layerdiff/error.h"
#include "run.h"

/* Exit codes (README, layerdiff --help). */
enum {
    LD_EXIT_OK = 0,
    LD_EXIT_DIVERGED = 1,
    LD_EXIT_USAGE = 2,
    LD_EXIT_INCOMPLETE = 3
};

int ld_cmd_gen_model(int argc, char **argv);
int ld_cmd_run(int argc, char **argv);
int ld_cmd_compare(int argc, char **argv);
int ld_cmd_inspect(int argc, char **argv);
int ld_cmd_extract(int argc, char **argv);
int ld_cmd_calibrate(int argc, char **argv);
int ld_cmd_isolate(int argc, char **argv);
/* 'compare OLD NEW --exact' once its options are parsed (compare_exact.c); max_line 0: the
 * reader's default. */
int ld_cli_compare_exact(const char *old_path, const char *new_path, const char *out_json,
                         const char *out_md, size_t max_line, bool quiet, const char *color);

/* getopt_long without getopt's own messages: on an unknown option or a missing argument prints
 * "layerdiff CMD: ..." (one line, with a pointer to --help) and returns '?'. */
int ld_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
                  const char *cmd);
/* The backend called name, checked before any file is read, so that a build without CUDA or a
 * machine without a GPU says so at once; NULL after printing why (*rc: the exit code). */
const ld_backend *ld_cli_backend(const char *cmd, const char *name, int *rc);
/* Prints "layerdiff CMD: <message>" and returns LD_EXIT_USAGE. */
int ld_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "layerdiff CMD: <err->msg>" and returns the exit code of err->code. */
int ld_cli_fail(const char *cmd, const ld_error *err);
/* true when stderr is a terminal (progress lines are shown only then). */
bool ld_cli_stderr_is_tty(void);
/* "CMD: note: ..." on stderr when a prompt's text holds a code point HF tokenizers may class
 * otherwise than this build (ld_tokenizer_unclassed): its ids may differ from HF's. */
void ld_cli_prompt_note(const char *cmd, const char *text, size_t len);

#endif

/* prompt.c — text prompts through the checkpoint's tokenizer.json (prompt.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prompt.h"
#include "util.h"

ld_status ld_prompt_tokenizer(const char *dir, const char *need, ld_tokenizer **out,
                              ld_error *err)
{
    char path[PATH_MAX];
    struct stat sb;
    *out = NULL;
    if (!ld_path_join(path, sizeof path, dir, "tokenizer.json"))
        return ld_error_set(err, LD_E_USAGE, "%s: path too long", dir);
    if (stat(path, &sb) != 0 && errno == ENOENT) {
        if (!need) return LD_OK;
        return ld_error_set(err, LD_E_USAGE, "%s has no tokenizer.json: %s needs the checkpoint's "
                            "tokenizer (give the ids with --tokens instead)", dir, need);
    }
    return ld_tokenizer_load(path, out, err);
}

ld_status ld_prompt_encode(const ld_tokenizer *t, const char *option, const char *text,
                           size_t len, int32_t **ids, size_t *n, ld_error *err)
{
    ld_status st = ld_tokenizer_encode(t, text, len, ids, n, err);
    if (st != LD_OK) return ld_error_prefix(err, "%s", option);
    if (*n == 0) {
        free(*ids);
        *ids = NULL;
        return ld_error_set(err, LD_E_USAGE, "%s: the text gives no tokens (an empty prompt)",
                            option);
    }
    return LD_OK;
}

/* --prompt-file F: a regular file, or '-' for standard input, or a pipe, FIFO or terminal
 * (/dev/stdin, <(cmd)) read to its end; at most LD_TOK_MAX_TEXT bytes either way. */
static ld_status read_prompt_file(const char *file, char **text, size_t *len, ld_error *err)
{
    struct stat st;
    bool stream = !strcmp(file, "-");
    if (!stream && stat(file, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) ||
                                           S_ISSOCK(st.st_mode)))
        stream = true;
    if (!stream)
        return ld_read_file(file, LD_TOK_MAX_TEXT, text, len, err);
    const char *name = strcmp(file, "-") ? file : "standard input";
    int fd = strcmp(file, "-") ? open(file, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
    if (fd < 0)
        return ld_error_set(err, LD_E_IO, "%s: cannot open: %s", file, strerror(errno));
    ld_status s = ld_read_stream(fd, name, LD_TOK_MAX_TEXT, text, len, err);
    if (fd != STDIN_FILENO)
        close(fd);
    return s;
}

ld_status ld_prompt_read(const char *model_dir, const char *ids_arg, const char *text_arg,
                         const char *file, int32_t **ids, size_t *n, char **text, size_t *text_len,
                         ld_tokenizer **tok, ld_error *err)
{
    *ids = NULL, *n = 0, *text = NULL, *text_len = 0, *tok = NULL;
    int given = (ids_arg != NULL) + (text_arg != NULL) + (file != NULL);
    if (given != 1)
        return ld_error_set(err, LD_E_USAGE, given ? "--tokens, --prompt and --prompt-file "
                                                     "exclude each other"
                                                   : "missing the prompt: --tokens IDS, --prompt "
                                                     "TEXT or --prompt-file F");
    if (ids_arg) {
        ld_status st = ld_parse_i32_list(ids_arg, 0, INT32_MAX, ids, n, err);
        return st == LD_OK ? LD_OK : ld_error_prefix(err, "--tokens");
    }
    const char *option = text_arg ? "--prompt" : "--prompt-file";
    ld_status st = LD_OK;
    if (text_arg) {
        *text_len = strlen(text_arg);
        if (!(*text = strdup(text_arg)))
            return ld_error_set(err, LD_E_NOMEM, "out of memory");
    } else if ((st = read_prompt_file(file, text, text_len, err)) != LD_OK) {
        return ld_error_prefix(err, "--prompt-file");
    }
    if ((st = ld_prompt_tokenizer(model_dir, option, tok, err)) == LD_OK)
        st = ld_prompt_encode(*tok, option, *text, *text_len, ids, n, err);
    if (st != LD_OK) {
        free(*text);
        ld_tokenizer_free(*tok);
        *text = NULL, *tok = NULL, *text_len = 0;
    }
    return st;
}

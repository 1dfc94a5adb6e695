/* prompt.c — text prompts through the checkpoint's tokenizer.json (prompt.h). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* ld_tok_sample TOKENIZER.json CASES — encodes each case of CASES (each a decimal byte count, a
 * newline and the bytes) and prints one line per case: the ids, comma-separated; a tab and the
 * decoded bytes' hex; a tab and the case's first code point Unicode 14 had not assigned
 * (ld_tokenizer_unclassed, -1 for none). The HF-identity test (test_tok_hf.py) compares these
 * lines with Hugging Face tokenizers. Exit 2 with the error on stderr when the tokenizer or a case
 * is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layerdiff/tokenizer.h"
#include "util.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: ld_tok_sample TOKENIZER.json CASES\n");
        return 2;
    }
    ld_error err;
    ld_tokenizer *t;
    char *buf;
    size_t len;
    if (ld_tokenizer_load(argv[1], &t, &err) != LD_OK ||
        ld_read_file(argv[2], LD_TOK_MAX_TEXT, &buf, &len, &err) != LD_OK) {
        fprintf(stderr, "ld_tok_sample: %s\n", err.msg);
        return ld_status_exit_code(err.code);
    }
    int rc = 0;
    for (size_t at = 0; at < len && rc == 0;) {
        const char *nl = memchr(buf + at, '\n', LD_MIN(len - at, (size_t)24));
        char count[24];
        int64_t n64;
        if (nl) {
            memcpy(count, buf + at, (size_t)(nl - (buf + at)));
            count[nl - (buf + at)] = 0;
        }
        if (!nl || !ld_parse_i64(count, 0, (int64_t)(len - at), &n64) ||
            (size_t)n64 > len - (size_t)(nl + 1 - buf)) {
            fprintf(stderr, "ld_tok_sample: %s: bad case header at byte %zu\n", argv[2], at);
            rc = 2;
            break;
        }
        size_t n = (size_t)n64;
        at = (size_t)(nl + 1 - buf);
        int32_t *ids;
        size_t nids;
        char *dec;
        size_t dlen;
        if (ld_tokenizer_encode(t, buf + at, n, &ids, &nids, &err) != LD_OK ||
            ld_tokenizer_decode(t, ids, nids, &dec, &dlen, &err) != LD_OK) {
            fprintf(stderr, "ld_tok_sample: case at byte %zu: %s\n", at, err.msg);
            rc = ld_status_exit_code(err.code);
            break;
        }
        for (size_t i = 0; i < nids; i++)
            printf("%s%d", i ? "," : "", (int)ids[i]);
        putchar('\t');
        for (size_t i = 0; i < dlen; i++)
            printf("%02x", (unsigned char)dec[i]);
        printf("\t%d\n", (int)ld_tokenizer_unclassed(buf + at, n));
        free(ids);
        free(dec);
        at += n;
    }
    free(buf);
    ld_tokenizer_free(t);
    return rc;
}

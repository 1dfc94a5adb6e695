/* fuzz_tokenizer.c — libFuzzer target for the tokenizer (tokenizer/): the first input byte picks
 * what the rest is.
 *   even: a tokenizer.json, loaded from memory (ld_tokenizer_load_text). When it loads, a few
 *         fixed texts are encoded and decoded and every id below 4096 is labelled, so a file that
 *         passes the loader's checks cannot make the encoder, decoder or labels misbehave.
 *   odd:  a prompt, encoded with the tokenizer.json named by $LD_FUZZ_TOKENIZER (loaded once).
 *         When the text encodes, its ids must survive a round trip: encode(decode(ids)) == ids
 *         (the decoded text is the NFC of the input, and NFC is idempotent); any difference
 *         traps. The text is also escaped for people (ld_token_text_escape) into a small buffer,
 *         whose length and NUL are checked.
 * Not a test by itself: tests/fuzz/fuzz_smoke.sh tokenizer runs it for a few seconds under ctest,
 * seeded with gen-model's tokenizer.json and the corpus of tests/data/tokenizer/corpus.json. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layerdiff/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const TEXTS[] = {"Hello world, 123!", "  \n\t x'LL naïve 日本語 🙂", "",
                                    "<|im_start|>user\nhi<|im_end|>"};

/* Encodes text, decodes the ids, encodes the decoded text again: the ids must not change. */
static void round_trip(const ld_tokenizer *t, const char *text, size_t len)
{
    ld_error err;
    int32_t *ids = NULL, *again = NULL;
    size_t n = 0, n2 = 0, dlen = 0;
    char *dec = NULL;
    if (ld_tokenizer_encode(t, text, len, &ids, &n, &err) != LD_OK)
        return; /* invalid UTF-8 or too long: refused with a message, nothing to check */
    if (ld_tokenizer_decode(t, ids, n, &dec, &dlen, &err) != LD_OK)
        __builtin_trap(); /* the encoder gave an id the decoder does not know */
    if (ld_tokenizer_encode(t, dec, dlen, &again, &n2, &err) != LD_OK || n2 != n ||
        (n && memcmp(ids, again, n * sizeof *ids)))
        __builtin_trap();
    for (size_t i = 0; i < n; i++) {
        char label[64];
        ld_tokenizer_label(t, ids[i], label, sizeof label);
        if (strlen(label) >= sizeof label)
            __builtin_trap();
    }
    free(ids);
    free(again);
    free(dec);
}

static const ld_tokenizer *fixed_tokenizer(void)
{
    static ld_tokenizer *t;
    static int tried;
    if (!tried) {
        tried = 1;
        const char *path = getenv("LD_FUZZ_TOKENIZER");
        ld_error err;
        if (!path || ld_tokenizer_load(path, &t, &err) != LD_OK) {
            fprintf(stderr, "fuzz_tokenizer: set LD_FUZZ_TOKENIZER to a tokenizer.json (%s)\n",
                    path ? err.msg : "unset");
            abort();
        }
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *rest = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] % 2 == 0) {
        ld_tokenizer *t = NULL;
        ld_error err;
        if (ld_tokenizer_load_text(rest, len, "fuzz", &t, &err) != LD_OK) {
            if (!err.msg[0])
                __builtin_trap(); /* a refusal must say why */
            return 0;
        }
        for (size_t i = 0; i < sizeof TEXTS / sizeof *TEXTS; i++)
            round_trip(t, TEXTS[i], strlen(TEXTS[i]));
        int32_t end = ld_tokenizer_id_end(t);
        for (int32_t id = 0; id < end && id < 4096; id++) {
            char label[64];
            ld_tokenizer_label(t, id, label, sizeof label);
        }
        ld_tokenizer_free(t);
        return 0;
    }
    round_trip(fixed_tokenizer(), rest, len);
    char out[48];
    size_t w = ld_token_text_escape(rest, len, out, sizeof out);
    if (w >= sizeof out || out[w] != 0)
        __builtin_trap();
    return 0;
}

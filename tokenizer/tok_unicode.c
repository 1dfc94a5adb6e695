/* tok_unicode.c — where Hugging Face tokenizers' Unicode and this library's differ: NFC as HF
 * computes it, and the code points whose class HF's regex knows and Debian's Oniguruma does not.
 *
 * HF's NFC normalizer (the unicode-normalization-alignments crate) carries Unicode 9.0's tables,
 * utf8proc Unicode 15.0's. The two disagree on the code points below: combining marks assigned
 * after 9.0, which HF treats as unassigned (combining class 0: it neither reorders them among
 * other marks nor lets them stand between a letter and a mark that compose), and Dives Akuru's
 * U+11938 = U+11935 U+11930 (Unicode 13), which HF neither decomposes nor composes. Such a code
 * point is a starter that composes with nothing for HF, so HF's NFC of a text is utf8proc's NFC
 * of each run between them, with them left as they are; that is what tok_nfc does.
 *
 * The table is what `tests/unit/tokenizer/hf_nfc_gaps.py` prints: it asks both libraries, for
 * every code point utf8proc gives a combining class or a decomposition. The tok_hf_nfc_gaps test
 * fails when it no longer matches (a new utf8proc or tokenizers), and tok_hf_qwen compares the
 * ids of every assigned code point in context with HF's. */
#include <oniguruma.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "buf.h"
#include "tok_internal.h"

static const uint32_t hf_nfc_gaps[][2] = {
    {0x07fd, 0x07fd}, {0x0898, 0x089f}, {0x08ca, 0x08d3}, {0x09fe, 0x09fe},
    {0x0c3c, 0x0c3c}, {0x0d3b, 0x0d3c}, {0x0eba, 0x0eba}, {0x1715, 0x1715},
    {0x1abf, 0x1ace}, {0x1df6, 0x1dfa}, {0xa82c, 0xa82c}, {0x10d24, 0x10d27},
    {0x10eab, 0x10eac}, {0x10efd, 0x10eff}, {0x10f46, 0x10f50}, {0x10f82, 0x10f85},
    {0x11070, 0x11070}, {0x1133b, 0x1133b}, {0x1145e, 0x1145e}, {0x11839, 0x1183a},
    {0x11930, 0x11930}, {0x11935, 0x11935}, {0x11938, 0x11938}, {0x1193d, 0x1193e},
    {0x11943, 0x11943}, {0x119e0, 0x119e0}, {0x11a34, 0x11a34}, {0x11a47, 0x11a47},
    {0x11a99, 0x11a99}, {0x11d42, 0x11d42}, {0x11d44, 0x11d45}, {0x11d97, 0x11d97},
    {0x11f41, 0x11f42}, {0x16ff0, 0x16ff1}, {0x1e08f, 0x1e08f}, {0x1e130, 0x1e136},
    {0x1e2ae, 0x1e2ae}, {0x1e2ec, 0x1e2ef}, {0x1e4ec, 0x1e4ef},
};

static bool hf_nfc_gap(uint32_t cp)
{
    size_t lo = 0, hi = sizeof hf_nfc_gaps / sizeof hf_nfc_gaps[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < hf_nfc_gaps[mid][0]) hi = mid;
        else if (cp > hf_nfc_gaps[mid][1]) lo = mid + 1;
        else return true;
    }
    return false;
}

/* utf8proc's NFC of s[0..n), appended to out. */
static ld_status nfc_run(const char *s, size_t n, ld_buf *out)
{
    if (n == 0) return LD_OK;
    utf8proc_uint8_t *r = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &r,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (m < 0) return m == UTF8PROC_ERROR_NOMEM ? LD_E_NOMEM : LD_E_INTERNAL;
    ld_buf_append(out, r, (size_t)m);
    free(r);
    return LD_OK;
}

ld_status tok_nfc(const char *s, size_t n, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    ld_buf o = {0};
    size_t run = 0;
    ld_status st = LD_OK;
    for (size_t i = 0; i < n && st == LD_OK;) {
        unsigned char b = (unsigned char)s[i];
        if (b < 0xdf) { /* below U+07C0, where the table starts: one byte, or a lead and one */
            i += b < 0x80 ? 1 : 2;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              (utf8proc_ssize_t)(n - i), &cp);
        if (l <= 0) {
            st = LD_E_INTERNAL; /* the callers pass valid UTF-8 only */
            break;
        }
        if (hf_nfc_gap((uint32_t)cp)) {
            st = nfc_run(s + run, i - run, &o);
            ld_buf_append(&o, s + i, (size_t)l);
            run = i + (size_t)l;
        }
        i += (size_t)l;
    }
    if (st == LD_OK) st = nfc_run(s + run, n - run, &o);
    if (st == LD_OK && ld_buf_failed(&o)) st = LD_E_NOMEM;
    if (st != LD_OK) {
        ld_buf_free(&o);
        return st;
    }
    *out_len = o.len;
    *out = ld_buf_take(&o);
    return *out ? LD_OK : LD_E_NOMEM;
}

/* Debian 12's Oniguruma (6.9.8) classes code points by Unicode 14, the one inside tokenizers 0.23
 * by Unicode 16: a code point Unicode 14 had not assigned may be a letter or a digit to HF's
 * split regex and is none to ours (docs/tokenizer.md, the known difference). */
int32_t ld_tokenizer_unclassed(const char *text, size_t len)
{
    tok_onig_init();
    static const OnigUChar cn[] = "Cn";
    OnigEncoding enc = ONIG_ENCODING_UTF8;
    int ctype = ONIGENC_PROPERTY_NAME_TO_CTYPE(enc, (OnigUChar *)cn, (OnigUChar *)cn + 2);
    if (ctype < 0) return -1;
    for (size_t i = 0; i < len;) {
        if ((unsigned char)text[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)text + i,
                                              (utf8proc_ssize_t)(len - i), &cp);
        if (l <= 0) return -1; /* not UTF-8: encoding refuses it anyway */
        bool nonchar = (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe;
        if (!nonchar && ONIGENC_IS_CODE_CTYPE(enc, (OnigCodePoint)cp, (unsigned)ctype))
            return cp;
        i += (size_t)l;
    }
    return -1;
}

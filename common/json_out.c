/* json_out.c — the JSON string escaper and number formatter of json_out.h. Writing only: the
 * strict parsing side is json_lex.c. */
#include "json_out.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "fmt_double.h"
#include "json_lex.h"

void ld_json_put_string(ld_buf *out, const char *s, size_t n, bool fix_utf8)
{
    static const char hex[] = "0123456789abcdef";
    ld_buf_putc(out, '"');
    size_t i = 0, run = 0; /* run: start of the bytes not yet copied, copied verbatim in one go */
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t ul = fix_utf8 ? ld_json_utf8_len((const unsigned char *)s + i, n - i) : 1;
            if (ul > 0) {
                i += ul;
                continue;
            }
        }
        ld_buf_append(out, s + run, i - run);
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            ld_buf_append(out, e, 2);
        } else if (c == '\n') {
            ld_buf_append(out, "\\n", 2);
        } else if (c == '\t') {
            ld_buf_append(out, "\\t", 2);
        } else if (c == '\r') {
            ld_buf_append(out, "\\r", 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            ld_buf_append(out, e, 6);
        } else {
            ld_buf_append(out, "\\ufffd", 6); /* not UTF-8: keep the output valid */
        }
        i++;
        run = i;
    }
    ld_buf_append(out, s + run, n - run);
    ld_buf_putc(out, '"');
}

static double read_back(const char *s, locale_t c_locale)
{
    return c_locale ? strtod_l(s, NULL, c_locale) : strtod(s, NULL);
}

/* Shortest "%.Ne" that reads back as v, then laid out the way Python's repr() does: positional
 * for decimal exponents -4..15, scientific (two-digit exponent at least) else. */
static void put_python(ld_buf *out, double v, locale_t c_locale)
{
    char sci[40];
    for (int prec = 0; prec <= 16; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec, v);
        if (read_back(sci, c_locale) == v)
            break;
    }
    const char *p = sci;
    bool neg = *p == '-';
    if (neg)
        p++;
    char digits[24];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < sizeof digits - 1)
            digits[nd++] = *p;
    digits[nd] = '\0';
    int exp10 = *p == 'e' ? atoi(p + 1) : 0;
    if (neg)
        ld_buf_putc(out, '-');
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            ld_buf_puts(out, "0.");
            for (int i = 0; i < -exp10 - 1; i++)
                ld_buf_putc(out, '0');
            ld_buf_puts(out, digits);
        } else {
            size_t int_digits = (size_t)exp10 + 1;
            for (size_t i = 0; i < int_digits; i++)
                ld_buf_putc(out, i < nd ? digits[i] : '0');
            ld_buf_putc(out, '.');
            ld_buf_puts(out, nd > int_digits ? digits + int_digits : "0");
        }
    } else {
        ld_buf_putc(out, digits[0]);
        if (nd > 1)
            ld_buf_printf(out, ".%s", digits + 1);
        ld_buf_printf(out, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
}

void ld_json_put_double(ld_buf *out, double v, ld_json_num_style style, locale_t c_locale)
{
    if (isnan(v)) {
        ld_buf_puts(out, "\"NaN\"");
        return;
    }
    if (isinf(v)) {
        ld_buf_puts(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    if (style == LD_JSON_NUM_EXACT) { /* in place; only fmt_double.c's slow path reads the locale */
        if (ld_buf_reserve(out, LD_FMT_DOUBLE_MAX))
            out->len += ld_fmt_double_exact(v, out->p + out->len, c_locale);
        return;
    }
    locale_t old = c_locale ? uselocale(c_locale) : (locale_t)0;
    if (style == LD_JSON_NUM_PYTHON)
        put_python(out, v, c_locale);
    else if (v == 0) /* LD_JSON_NUM_BRIEF */
        ld_buf_putc(out, '0');
    else
        ld_buf_printf(out, "%.9g", v);
    if (c_locale)
        uselocale(old);
}

/* fmt_double.h — the probe records' number spelling (LD_JSON_NUM_EXACT of json_out.h): the
 * shortest of "%.15g", "%.16g", "%.17g" (C locale) that strtod reads back as v, "%.17g" when none
 * does. One fast path with integer arithmetic that answers almost every double, and the
 * snprintf/strtod loop that defines the format, used whenever the fast path cannot decide.
 * Finite values only (json_out.c spells NaN and the infinities). */
#ifndef LD_FMT_DOUBLE_H
#define LD_FMT_DOUBLE_H

#include <locale.h>
#include <stddef.h>

/* How the numbers are written, for the benchmarks' reports. */
#define LD_FMT_DOUBLE_PATH "128-bit integer fast path, snprintf/strtod when it cannot decide"

/* The size of out: the longest spelling, "-2.2250738585072014e-308", is 24 bytes and its NUL;
 * the fast path moves digits in fixed-size blocks and may write up to 35 bytes. */
#define LD_FMT_DOUBLE_MAX 48

/* Writes the spelling of finite v and a NUL into out[LD_FMT_DOUBLE_MAX]; returns its length. */
size_t ld_fmt_double_exact(double v, char *out, locale_t c_locale);

/* The two halves of ld_fmt_double_exact, exposed for the tests and the benchmark. The fast path
 * returns 0 (out unspecified) when its error bounds cannot decide a rounding or a read-back, and
 * otherwise exactly what the slow path writes; it never depends on the locale. The slow path is
 * the definition: snprintf "%.*g" and strtod in c_locale ((locale_t)0: the thread's locale). */
size_t ld_fmt_double_exact_fast(double v, char *out);
size_t ld_fmt_double_exact_slow(double v, char *out, locale_t c_locale);

#endif

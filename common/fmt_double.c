/* fmt_double.c — the number spelling of fmt_double.h.
 *
 * The slow path is the definition: "%.15g", then "%.16g", then "%.17g" until strtod reads the
 * text back as v. glibc's printf rounds the exact binary value correctly (ties to even) and its
 * strtod rounds the exact decimal value correctly (ties to even), so the answer for precision p
 * is: d = v rounded to p significant digits; it reads back when |d - v| is below half the gap
 * from v to its neighbour on d's side (equal: when v's significand is even).
 *
 * The fast path decides those two questions with integers. Write v = m * 2^e (m < 2^53 shifted
 * up so that bit 52 is set) and take k so that x = v / 10^k lies in [10^16, 10^17) (x carries 17
 * digits before the point). With 10^-k = (T + t) * 2^s from pow10_table.h (2^127 <= T < 2^128,
 * 0 <= t < 1) and r = -(e + s + 64):
 *
 *   X* = x * 2^64 = m * (T + t) / 2^r,    X = floor(m * T / 2^r),
 *   X* - X = (m*T mod 2^r) / 2^r + m*t / 2^r  in [0, 2)  because m < 2^53 <= 2^r,
 *
 * and X* == X when t == 0 (10^-k an integer below 2^128) and no bit was shifted out. Likewise
 * the half-gaps H* (above v) and L* (below v: H* / 2 when v is a power of two above the smallest
 * normal, where the gap below is half the gap above) are T shifted right, each within [H, H + 2).
 * Rounding x to p digits is deciding whether X*'s remainder modulo U = 10^(17-p) * 2^64 is above
 * or below U/2; the read-back is comparing |d*U - X*| with H* or L*. Whenever X's error interval
 * contains the point in question (a near-tie, a candidate near the edge of v's rounding interval)
 * without X being exact, or anything falls outside the table or the shifts assumed here, the
 * fast path returns 0 and the slow path answers; an exact tie (X* == X, H* == H) is decided as
 * printf and strtod decide it, to even. The layout is glibc's %g: exponent form when the
 * decimal exponent is below -4 or at least p, trailing zeros removed, two exponent digits at
 * least. */
#include "fmt_double.h"

#include <fenv.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pow10_table.h"

typedef unsigned __int128 u128;

static const uint64_t k_pow10[18] = {1u,
                                     10u,
                                     100u,
                                     1000u,
                                     10000u,
                                     100000u,
                                     1000000u,
                                     10000000u,
                                     100000000u,
                                     1000000000u,
                                     10000000000u,
                                     100000000000u,
                                     1000000000000u,
                                     10000000000000u,
                                     100000000000000u,
                                     1000000000000000u,
                                     10000000000000000u,
                                     100000000000000000u};

size_t ld_fmt_double_exact_slow(double v, char *out, locale_t c_locale)
{
    locale_t old = c_locale ? uselocale(c_locale) : (locale_t)0;
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, LD_FMT_DOUBLE_MAX, "%.*g", prec, v);
        if (prec == 17)
            break;
        double back = c_locale ? strtod_l(out, NULL, c_locale) : strtod(out, NULL);
        if (back == v)
            break;
    }
    if (c_locale)
        uselocale(old);
    return n > 0 ? (size_t)n : 0;
}

/* floor(m * (hi*2^64 + lo) / 2^r) for 1 <= r <= 127, the product below 2^192 and the result
 * below 2^128 (the caller's ranges); *lost: a nonzero bit was shifted out. */
static u128 mul_shift(uint64_t m, uint64_t hi, uint64_t lo, int r, bool *lost)
{
    u128 p0 = (u128)m * lo;
    u128 upper = (u128)m * hi + (p0 >> 64); /* floor(product / 2^64) */
    uint64_t low = (uint64_t)p0;
    if (r < 64) {
        *lost = (low << (64 - r)) != 0;
        return (upper << (64 - r)) | (low >> r);
    }
    int sh = r - 64;
    *lost = low != 0 || (sh > 0 && (upper << (128 - sh)) != 0);
    return upper >> sh;
}

/* Rounds X* (within [X, X + ex]) to a multiple of U = D * 2^64: *d = the nearest multiple's
 * X* / U, an exact tie (ex == 0) to the even one as printf does. below = floor(X / U), given by
 * the caller (a division by a constant there). False when X's error interval reaches U/2
 * without X being exact. */
static bool round_digits(u128 x, unsigned ex, uint64_t dpow, uint64_t below, uint64_t *d)
{
    uint64_t ip = (uint64_t)(x >> 64);
    u128 rem = ((u128)(ip - below * dpow) << 64) | (uint64_t)x;
    u128 half = (u128)dpow << 63;
    if (__builtin_expect(rem <= half && rem + ex >= half, 0)) { /* at or near the tie */
        if (ex != 0)
            return false;
        *d = below + (below & 1); /* rem == half exactly */
        return true;
    }
    /* rem > half: above the tie even if X* carries into the next multiple; else below it */
    *d = below + (rem > half);
    return true;
}

/* Whether c = d*U reads back as v: |c - X*| against the half-gap on c's side. h, l: the upper
 * and lower half-gaps, each within [h, h + eh]; even: v's significand is even (strtod rounds an
 * exact tie to it). 1 yes, 0 no, -1 undecided. */
static int reads_back(u128 c, u128 x, unsigned ex, u128 h, u128 l, unsigned eh, bool even)
{
    u128 xe = x + ex;
    if (__builtin_expect(c > x && c < xe, 0))
        return 1; /* within 2 of X*: far inside either half-gap (both above 4, the caller saw) */
    bool above = c >= xe; /* c >= X*: the distance is c - X*; else c <= X <= X* */
    u128 lo = above ? c - xe : x - c, hi = above ? c - x : xe - c, gap = above ? h : l;
    bool yes = hi < gap, no = lo > gap + eh;
    if (__builtin_expect(yes || no, 1))
        return yes;
    if (ex == 0 && eh == 0) /* lo == hi == gap: exactly halfway between v and a neighbour */
        return even;
    return -1;
}

static const char k_pairs[201] = "0001020304050607080910111213141516171819"
                                 "2021222324252627282930313233343536373839"
                                 "4041424344454647484950515253545556575859"
                                 "6061626364656667686970717273747576777879"
                                 "8081828384858687888990919293949596979899";

/* The p digits of d (15 <= p <= 17, d < 10^p) into dig[0..p), two at a time, in two independent
 * 32-bit halves. */
static void put_digits(char *dig, uint64_t d, int p)
{
    uint32_t lo = (uint32_t)(d % 100000000u), hi = (uint32_t)(d / 100000000u);
    char *end = dig + p;
    for (int i = 0; i < 4; i++) {
        end -= 2;
        memcpy(end, k_pairs + 2 * (lo % 100), 2);
        lo /= 100;
    }
    int n = p - 8;
    for (; n >= 2; n -= 2) {
        end -= 2;
        memcpy(end, k_pairs + 2 * (hi % 100), 2);
        hi /= 100;
    }
    if (n)
        *--end = (char)('0' + hi);
}

/* Writes the p-digit decimal d * 10^(exp10 - p + 1) (10^(p-1) <= d < 10^p, 15 <= p <= 17) as
 * %.{p}g does. The digits are moved in fixed-size blocks (no length-dependent copy loop or call):
 * out may be written up to 35 bytes in, past the text's NUL (LD_FMT_DOUBLE_MAX leaves room). */
static size_t layout(char *out, bool neg, uint64_t d, int p, int exp10)
{
    char dig[40] = {0};
    put_digits(dig, d, p);
    int nd = p; /* significant digits, trailing zeros dropped */
    while (dig[nd - 1] == '0')
        nd--; /* d >= 10^(p-1): dig[0] is not '0' */
    out[0] = '-';
    char *o = out + neg;
    if (exp10 >= -4 && exp10 < p) {
        if (exp10 >= 0) { /* ddd[.ddd] */
            int ip = exp10 + 1;
            memcpy(o, dig, 20);
            o[ip] = '.';
            memcpy(o + ip + 1, dig + ip, 16);
            o += nd > ip ? nd + 1 : ip;
        } else { /* 0.[000]ddd */
            memcpy(o, "0.000", 5);
            memcpy(o + 1 - exp10, dig, 20);
            o += 1 - exp10 + nd;
        }
    } else { /* d[.ddd]e+XX */
        o[0] = dig[0];
        o[1] = '.';
        memcpy(o + 2, dig + 1, 16);
        o += nd > 1 ? nd + 1 : 1;
        *o++ = 'e';
        *o++ = exp10 < 0 ? '-' : '+';
        int ae = exp10 < 0 ? -exp10 : exp10;
        if (ae >= 100)
            *o++ = (char)('0' + ae / 100);
        *o++ = (char)('0' + ae / 10 % 10);
        *o++ = (char)('0' + ae % 10);
    }
    *o = '\0';
    return (size_t)(o - out);
}

size_t ld_fmt_double_exact_fast(double v, char *out)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    bool neg = bits >> 63;
    int be = (int)(bits >> 52) & 0x7ff;
    uint64_t frac = bits & ((UINT64_C(1) << 52) - 1);
    /* printf and strtod round in the current rounding mode; the decisions below are those of
     * the default one, to nearest (layerdiff never changes it; a caller that does gets the slow
     * path's bytes all the same). */
    if (be == 0x7ff || fegetround() != FE_TONEAREST)
        return 0;
    if (be == 0 && frac == 0) { /* "0", "-0" */
        char *o = out;
        if (neg)
            *o++ = '-';
        *o++ = '0';
        *o = '\0';
        return (size_t)(o - out);
    }
    uint64_t m = be ? frac | UINT64_C(1) << 52 : frac;
    int e0 = be ? be - 1075 : -1074; /* v = m * 2^e0; the gap above v is 2^e0 */
    bool lower_closer = be > 1 && frac == 0;
    int z = __builtin_clzll(m) - 11;
    m <<= z;
    int e = e0 - z;
    int b = e + 52; /* floor(log2 |v|) */
    /* floor(b * log10(2)): 78913 / 2^18 gives it exactly for |b| <= 1650 */
    int est = b >= 0 ? (b * 78913) >> 18 : -((-b * 78913 + (1 << 18) - 1) >> 18);
    int k = est - 16;
    u128 x = 0;
    int r = 0, q = 0;
    bool lost = false;
    for (int tries = 0;; tries++) {
        q = -k;
        if (tries == 2 || q < LD_POW10_QMIN || q > LD_POW10_QMAX)
            return 0;
        const struct ld_pow10 *t = &ld_pow10_table[q - LD_POW10_QMIN];
        r = -(e + t->s + 64);
        if (r < 53 || r > 127)
            return 0;
        x = mul_shift(m, t->hi, t->lo, r, &lost);
        if ((uint64_t)(x >> 64) < k_pow10[17])
            break;
        k++; /* x >= 10^17: one digit too many (est was one below the decimal exponent) */
    }
    const struct ld_pow10 *t = &ld_pow10_table[q - LD_POW10_QMIN];
    bool t_exact = q >= 0 && q <= LD_POW10_EXACT_QMAX;
    unsigned ex = t_exact && !lost ? 0 : 2;
    if ((uint64_t)(x >> 64) + 1 < k_pow10[16])
        return 0; /* x below 10^16 - 1: est was not floor(log10 |v|) */
    int rh = r - z + 1; /* H* = 2^(e0-1) * 10^-k * 2^64 = (T + t) / 2^rh */
    if (rh < 1 || rh > 126)
        return 0;
    bool hl, ll = false;
    u128 h = mul_shift(1, t->hi, t->lo, rh, &hl);
    u128 l = lower_closer ? mul_shift(1, t->hi, t->lo, rh + 1, &ll) : h;
    unsigned eh = t_exact && !hl && !(lower_closer && ll) ? 0 : 2;
    if (h <= 4 || l <= 4)
        return 0;
    uint64_t ip = (uint64_t)(x >> 64), ip100 = ip / 100, ip10 = ip / 10;
    for (int p = 15; p <= 17; p++) {
        uint64_t dpow = k_pow10[17 - p], d;
        if (!round_digits(x, ex, dpow, p == 15 ? ip100 : p == 16 ? ip10 : ip, &d))
            return 0;
        if (p < 17) {
            int ok = reads_back((u128)(d * dpow) << 64, x, ex, h, l, eh, !(bits & 1));
            if (ok < 0)
                return 0;
            if (!ok)
                continue;
        }
        int exp10 = k + 16;
        if (d == k_pow10[p]) { /* rounded up to 10^p: one digit more, one exponent more */
            d = k_pow10[p - 1];
            exp10++;
        }
        return layout(out, neg, d, p, exp10);
    }
    return 0;
}

size_t ld_fmt_double_exact(double v, char *out, locale_t c_locale)
{
    size_t n = ld_fmt_double_exact_fast(v, out);
    return n ? n : ld_fmt_double_exact_slow(v, out, c_locale);
}

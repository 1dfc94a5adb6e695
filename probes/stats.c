/* stats.c — tensor statistics of probe records (ld_stats_compute), in one pass over the data.
 * Sums are taken in double over fixed 8192-element chunks, eight interleaved lanes per chunk,
 * and the chunk results are joined in order: the result is the same bit for bit whatever the
 * number of threads or the vector width. Not a general statistics library. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layerdiff/probes.h"
#include "record.h"
#include "util.h"

#define CHUNK 8192
#define LANES 8
#define PARALLEL_MIN_ELEMS ((size_t)1 << 20) /* below: one thread (see PARALLEL_MIN in codec.c) */

/* What one chunk contributes. Sums are of (x - shift), (x - shift)^2 and x^2 over finite x. */
typedef struct partial {
    double sum, sq, raw;
    float mn, mx;
    uint64_t finite, nan, inf;
} partial;

static double tree8(const double v[LANES])
{
    return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

/* Four lanes in one vector (GNU C vector extensions, gcc and clang): two of each make the eight
 * lanes. Lane j sees elements j, j+8, j+16, ...: the same operations in the same order as a
 * scalar loop over eight accumulators, so the vector width never changes a result. */
typedef float f4 __attribute__((vector_size(16)));
typedef double d4 __attribute__((vector_size(32)));
typedef int32_t i4 __attribute__((vector_size(16)));
typedef uint32_t u4 __attribute__((vector_size(16)));

static inline f4 vmin(f4 a, f4 b)
{
    i4 m = a < b; /* all ones where a < b: exactly "a < b ? a : b" for numbers */
    return (f4)(((i4)a & m) | ((i4)b & ~m));
}

static inline f4 vmax(f4 a, f4 b)
{
    i4 m = a > b;
    return (f4)(((i4)a & m) | ((i4)b & ~m));
}

/* The fast path: every element finite (checked on the side from the exponent bits). Returns false
 * when some element is not, and the caller takes the careful path for this chunk. */
static bool chunk_all_finite(const float *x, size_t n, double shift, partial *out)
{
    const d4 sh = {shift, shift, shift, shift};
    d4 s0 = {0}, s1 = {0}, q0 = {0}, q1 = {0}, r0 = {0}, r1 = {0};
    f4 mn0 = {INFINITY, INFINITY, INFINITY, INFINITY}, mn1 = mn0, mx0 = -mn0, mx1 = -mn0;
    u4 bad4 = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        f4 a, b;
        memcpy(&a, x + i, sizeof a);
        memcpy(&b, x + i + 4, sizeof b);
        /* bit 31 set iff the exponent is all ones (NaN or infinity) */
        bad4 |= (((u4)a & 0x7f800000u) + 0x00800000u) | (((u4)b & 0x7f800000u) + 0x00800000u);
        d4 da = __builtin_convertvector(a, d4), db = __builtin_convertvector(b, d4);
        d4 ea = da - sh, eb = db - sh;
        s0 += ea;
        s1 += eb;
        q0 += ea * ea;
        q1 += eb * eb;
        r0 += da * da;
        r1 += db * db;
        mn0 = vmin(a, mn0);
        mn1 = vmin(b, mn1);
        mx0 = vmax(a, mx0);
        mx1 = vmax(b, mx1);
    }
    double s[LANES], q[LANES], r[LANES];
    float mn[LANES], mx[LANES];
    uint32_t bad = bad4[0] | bad4[1] | bad4[2] | bad4[3];
    for (int j = 0; j < 4; j++) {
        s[j] = s0[j], s[j + 4] = s1[j];
        q[j] = q0[j], q[j + 4] = q1[j];
        r[j] = r0[j], r[j + 4] = r1[j];
        mn[j] = mn0[j], mn[j + 4] = mn1[j];
        mx[j] = mx0[j], mx[j + 4] = mx1[j];
    }
    for (int j = 0; i < n; i++, j++) { /* the tail, into lanes 0.. in order */
        float v = x[i];
        uint32_t bits;
        memcpy(&bits, &v, 4);
        bad |= (bits & 0x7f800000u) + 0x00800000u;
        double dv = (double)v, d = dv - shift;
        s[j] += d;
        q[j] += d * d;
        r[j] += dv * dv;
        mn[j] = v < mn[j] ? v : mn[j];
        mx[j] = v > mx[j] ? v : mx[j];
    }
    if (bad & 0x80000000u)
        return false;
    for (int j = 1; j < LANES; j++) {
        mn[0] = mn[j] < mn[0] ? mn[j] : mn[0];
        mx[0] = mx[j] > mx[0] ? mx[j] : mx[0];
    }
    *out = (partial){tree8(s), tree8(q), tree8(r), mn[0], mx[0], n, 0, 0};
    return true;
}

/* The careful path, for chunks holding NaN or infinity: finite values only, counts of the rest. */
static void chunk_mixed(const float *x, size_t n, double shift, partial *out)
{
    double s[LANES] = {0}, q[LANES] = {0}, r[LANES] = {0};
    float mn = INFINITY, mx = -INFINITY;
    uint64_t finite = 0, nan = 0, inf = 0;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (isnan(v)) {
            nan++;
        } else if (isinf(v)) {
            inf++;
        } else {
            size_t j = i % LANES;
            double dv = (double)v, d = dv - shift;
            s[j] += d;
            q[j] += d * d;
            r[j] += dv * dv;
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
            finite++;
        }
    }
    *out = (partial){tree8(s), tree8(q), tree8(r), mn, mx, finite, nan, inf};
}

/* Widens elements [i0, i0+n) of data to f32 in tmp (or points into data for f32). */
static const float *chunk_f32(const void *data, ld_dtype dtype, size_t i0, size_t n, float *tmp)
{
    if (dtype == LD_F32)
        return (const float *)data + i0;
    const unsigned char *b = (const unsigned char *)data + 2 * i0;
    if (dtype == LD_BF16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);
            uint32_t u = (uint32_t)h << 16;
            memcpy(&tmp[i], &u, 4);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);
            tmp[i] = ld_f16_to_f32(h);
        }
    }
    return tmp;
}

static void chunk_stats(const void *data, ld_dtype dtype, size_t n, size_t c, double shift,
                        partial *out)
{
    float tmp[CHUNK];
    size_t i0 = c * CHUNK, len = LD_MIN((size_t)CHUNK, n - i0);
    const float *x = chunk_f32(data, dtype, i0, len, tmp);
    if (!chunk_all_finite(x, len, shift, out))
        chunk_mixed(x, len, shift, out);
}

static void join(partial *acc, const partial *p)
{
    acc->sum += p->sum;
    acc->sq += p->sq;
    acc->raw += p->raw;
    if (p->finite) {
        acc->mn = acc->finite == 0 || p->mn < acc->mn ? p->mn : acc->mn;
        acc->mx = acc->finite == 0 || p->mx > acc->mx ? p->mx : acc->mx;
    }
    acc->finite += p->finite;
    acc->nan += p->nan;
    acc->inf += p->inf;
}

void ld_stats_compute(const void *data, ld_dtype dtype, size_t n, ld_stats *out)
{
    /* Shifting by the first finite value keeps the variance accurate when |mean| >> std. */
    double shift = 0.0;
    for (size_t i = 0; i < n; i++) {
        float v = ld_load_f32(data, dtype, i);
        if (isfinite(v)) {
            shift = (double)v;
            break;
        }
    }
    size_t nchunks = (n + CHUNK - 1) / CHUNK;
    partial acc = {0};
    partial *parts = n >= PARALLEL_MIN_ELEMS ? malloc(nchunks * sizeof *parts) : NULL;
    if (parts) {
#pragma omp parallel for schedule(static)
        for (size_t c = 0; c < nchunks; c++)
            chunk_stats(data, dtype, n, c, shift, &parts[c]);
        for (size_t c = 0; c < nchunks; c++)
            join(&acc, &parts[c]);
        free(parts);
    } else { /* the same chunks, joined in the same order, on this thread */
        for (size_t c = 0; c < nchunks; c++) {
            partial p;
            chunk_stats(data, dtype, n, c, shift, &p);
            join(&acc, &p);
        }
    }
    out->nan = acc.nan;
    out->inf = acc.inf;
    if (acc.finite == 0) {
        out->min = out->max = out->mean = out->std = out->l2 = out->absmax = NAN;
        return;
    }
    double cnt = (double)acc.finite, dm = acc.sum / cnt;
    double var = acc.sq / cnt - dm * dm;
    out->min = (double)acc.mn;
    out->max = (double)acc.mx;
    out->mean = shift + dm;
    out->std = sqrt(var > 0.0 ? var : 0.0);
    out->l2 = sqrt(acc.raw);
    out->absmax = fmax(fabs(out->min), fabs(out->max));
}

/* ---- consistency: what stats claim against each other, the head and a payload ---------------- */

/* Relative slack where statistics are related to each other (mean within [min, max], l2 against
 * mean and std): a writer may sum in float or round the text it writes (a hand-made
 * "std":1.118), while a lie (l2 x100, a NaN) is far outside it. Counts, min, max and absmax are
 * exact in every writer and are compared exactly. */
#define STATS_RTOL 1e-3

static bool near(double a, double b, double scale)
{
    return fabs(a - b) <= STATS_RTOL * scale;
}

static bool fail_why(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail_why(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return false;
}

/* min, max, absmax, mean, std and l2 of finite elements against each other. */
static bool self_consistent(const ld_stats *s, uint64_t finite, char *why, size_t len)
{
    if (s->min > s->max)
        return fail_why(why, len, "stats.min %.17g is above stats.max %.17g", s->min, s->max);
    if (s->absmax != fmax(fabs(s->min), fabs(s->max)))
        return fail_why(why, len, "stats.absmax %.17g is not the larger of |min| %.17g and |max| "
                        "%.17g", s->absmax, fabs(s->min), fabs(s->max));
    if (s->std < 0 || s->l2 < 0)
        return fail_why(why, len, "stats.%s is negative (%.17g)", s->std < 0 ? "std" : "l2",
                        s->std < 0 ? s->std : s->l2);
    /* A mean inside [min, max], a population std at most half the range (Popoviciu), and
     * l2^2 = n (mean^2 + std^2) over the finite elements. */
    double spread = s->max - s->min;
    if (!near(s->mean, fmax(s->min, fmin(s->max, s->mean)), s->absmax) ||
        !(s->std <= spread / 2 + STATS_RTOL * s->absmax))
        return fail_why(why, len, "stats.mean %.17g or stats.std %.17g does not fit min %.17g "
                        "and max %.17g", s->mean, s->std, s->min, s->max);
    double sq = (double)finite * (s->mean * s->mean + s->std * s->std);
    if (!near(s->l2 * s->l2, sq, fmax(s->l2 * s->l2, sq)) || s->l2 < s->absmax * (1 - STATS_RTOL))
        return fail_why(why, len, "stats.l2 %.17g disagrees with mean %.17g, std %.17g and absmax "
                        "%.17g over %llu finite elements (l2 should be %.17g)", s->l2, s->mean,
                        s->std, s->absmax, (unsigned long long)finite, sqrt(sq));
    return true;
}

bool ld_stats_check(const ld_stats *s, uint64_t numel, const double *head, int n_head, char *why,
                    size_t len)
{
    static const char *const names[6] = {"min", "max", "mean", "std", "l2", "absmax"};
    const double v[6] = {s->min, s->max, s->mean, s->std, s->l2, s->absmax};
    uint64_t finite = numel - s->nan - s->inf; /* the caller checked nan + inf <= numel */
    for (int i = 0; i < 6; i++) {
        if (finite == 0 && !isnan(v[i]))
            return fail_why(why, len, "stats.%s is %.17g but no element is finite (nan %llu, inf "
                            "%llu of %llu)", names[i], v[i], (unsigned long long)s->nan,
                            (unsigned long long)s->inf, (unsigned long long)numel);
        if (finite > 0 && !isfinite(v[i]))
            return fail_why(why, len, "stats.%s is %g but %llu elements are finite (stats count "
                            "nan %llu, inf %llu)", names[i], v[i], (unsigned long long)finite,
                            (unsigned long long)s->nan, (unsigned long long)s->inf);
    }
    uint64_t h_nan = 0, h_inf = 0, h_fin = 0;
    int outside = -1; /* the first finite head value outside [min, max] or above absmax */
    for (int i = 0; i < n_head; i++) {
        double x = head[i];
        if (isnan(x))
            h_nan++;
        else if (isinf(x))
            h_inf++;
        else if (h_fin++, outside < 0 && (x < s->min || x > s->max || fabs(x) > s->absmax))
            outside = i;
    }
    if (h_nan > s->nan || h_inf > s->inf || h_fin > finite ||
        ((uint64_t)n_head == numel && (h_nan != s->nan || h_inf != s->inf)))
        return fail_why(why, len, "the head holds %llu NaN, %llu Inf and %llu finite values but "
                        "the stats count nan %llu, inf %llu of %llu elements",
                        (unsigned long long)h_nan, (unsigned long long)h_inf,
                        (unsigned long long)h_fin, (unsigned long long)s->nan,
                        (unsigned long long)s->inf, (unsigned long long)numel);
    if (finite > 0 && !self_consistent(s, finite, why, len))
        return false;
    if (outside >= 0)
        return fail_why(why, len, "head[%d] = %.17g lies outside stats min %.17g, max %.17g, "
                        "absmax %.17g", outside, head[outside], s->min, s->max, s->absmax);
    return true;
}

/* One chunk of the tally: the fast path's exponent check and min/max lanes without its sums; a
 * chunk holding NaN or infinity is counted element by element. */
static void tally_chunk(ld_tally *t, const float *x, size_t n)
{
    f4 mn = {INFINITY, INFINITY, INFINITY, INFINITY}, mx = -mn;
    u4 bad4 = {0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        f4 a;
        memcpy(&a, x + i, sizeof a);
        bad4 |= ((u4)a & 0x7f800000u) + 0x00800000u;
        mn = vmin(a, mn);
        mx = vmax(a, mx);
    }
    uint32_t bad = bad4[0] | bad4[1] | bad4[2] | bad4[3];
    for (size_t k = i; k < n; k++) {
        uint32_t bits;
        memcpy(&bits, x + k, 4);
        bad |= (bits & 0x7f800000u) + 0x00800000u;
    }
    if (!(bad & 0x80000000u)) {
        float lo = mn[0], hi = mx[0];
        for (int j = 1; j < 4; j++) {
            lo = mn[j] < lo ? mn[j] : lo;
            hi = mx[j] > hi ? mx[j] : hi;
        }
        for (; i < n; i++) {
            float v;
            memcpy(&v, x + i, 4);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if (n > 0) {
            t->min = t->finite == 0 || lo < t->min ? (double)lo : t->min;
            t->max = t->finite == 0 || hi > t->max ? (double)hi : t->max;
        }
        t->finite += n;
        return;
    }
    for (i = 0; i < n; i++) {
        float f;
        memcpy(&f, x + i, 4);
        double v = (double)f;
        if (isnan(v)) {
            t->nan++;
        } else if (isinf(v)) {
            t->inf++;
        } else {
            t->min = t->finite == 0 || v < t->min ? v : t->min;
            t->max = t->finite == 0 || v > t->max ? v : t->max;
            t->finite++;
        }
    }
}

void ld_tally_add(ld_tally *t, const void *data, ld_dtype dtype, size_t n)
{
    float tmp[CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        size_t len = LD_MIN((size_t)CHUNK, n - i0);
        tally_chunk(t, chunk_f32(data, dtype, i0, len, tmp), len);
    }
}

bool ld_stats_agree(const ld_stats *claimed, const ld_tally *t, char *why, size_t len)
{
    const ld_stats *c = claimed;
    if (c->nan != t->nan || c->inf != t->inf)
        return fail_why(why, len, "the stats count nan %llu, inf %llu but the payload holds %llu "
                        "NaN and %llu Inf", (unsigned long long)c->nan, (unsigned long long)c->inf,
                        (unsigned long long)t->nan, (unsigned long long)t->inf);
    if (t->finite > 0 && (c->min != t->min || c->max != t->max))
        return fail_why(why, len, "stats.min %.17g and stats.max %.17g but the payload's are "
                        "%.17g and %.17g", c->min, c->max, t->min, t->max);
    return true;
}

/* metrics.c — per-probe error metrics of a candidate tensor against a reference, in double, in one
 * streaming pass over bounded chunks (plus a second pass over each innermost row for the floored
 * relative error), fed whole or row by row (ld_metrics_begin/_feed/_end: the same sums in the same
 * order either way), and the verdict of a tolerance. Not the policy (policy.c) or alignment. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compare_internal.h"
#include "util.h"

/* Elements widened to f32 at a time: rows of up to this length (D, H, I of real models) are
 * measured with one widening; longer rows (logits) are widened twice, chunk by chunk. */
#define CHUNK 4096

/* ULP histogram: exact counts below 256, then one bucket per power of two up to 2^64. */
#define ULP_EXACT 256
#define ULP_BUCKETS (ULP_EXACT + 56)

const char *ld_fail_reason_name(unsigned bit)
{
    switch (bit) {
    case LD_FAIL_NONFINITE: return "nonfinite";
    case LD_FAIL_REL_L2: return "rel_l2";
    case LD_FAIL_COSINE: return "cosine";
    case LD_FAIL_OUTSIDE: return "outside";
    case LD_FAIL_MAX_ABS: return "max_abs";
    case LD_FAIL_ULP: return "ulp";
    case LD_FAIL_FLOOR: return "floor";
    default: return NULL;
    }
}

/* Maps an IEEE bit pattern of `bits` width onto a line where adjacent values differ by 1 and
 * +0 == -0, so that a ULP distance is a difference of two such numbers. */
static inline int64_t ulp_order(uint32_t u, unsigned bits)
{
    uint32_t sign = 1u << (bits - 1);
    int64_t mag = (int64_t)(u & (sign - 1u));
    return (u & sign) ? -mag : mag;
}

static inline uint64_t ulp_dist(float a, float b, ld_dtype t)
{
    int64_t x, y;
    if (t == LD_BF16) {
        x = ulp_order(ld_f32_to_bf16(a), 16);
        y = ulp_order(ld_f32_to_bf16(b), 16);
    } else if (t == LD_F16) {
        x = ulp_order(ld_f32_to_f16(a), 16);
        y = ulp_order(ld_f32_to_f16(b), 16);
    } else {
        x = ulp_order(ld_f32_bits(a), 32);
        y = ulp_order(ld_f32_bits(b), 32);
    }
    return x > y ? (uint64_t)(x - y) : (uint64_t)(y - x);
}

uint64_t ld_ulp_distance(float a, float b, ld_dtype t)
{
    if (isnan(a) || isnan(b))
        return UINT64_MAX;
    return ulp_dist(a, b, t);
}

void ld_unravel(uint64_t flat, const int64_t *shape, int ndim, int64_t *idx)
{
    for (int i = ndim - 1; i >= 0; i--) {
        uint64_t d = shape[i] > 0 ? (uint64_t)shape[i] : 1;
        idx[i] = (int64_t)(flat % d);
        flat /= d;
    }
}

void ld_cmp_widen(const void *base, ld_dtype t, uint64_t off, size_t n, float *dst)
{
    const unsigned char *p = (const unsigned char *)base;
    if (t == LD_F32) {
        memcpy(dst, p + 4 * off, 4 * n);
    } else if (t == LD_BF16) {
        const unsigned char *q = p + 2 * off;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, q + 2 * i, 2); /* probe payloads are little-endian, like the host */
            dst[i] = ld_bf16_to_f32(h);
        }
    } else {
        const unsigned char *q = p + 2 * off;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, q + 2 * i, 2);
            dst[i] = ld_f16_to_f32(h);
        }
    }
}

void ld_err_grid_free(ld_err_grid *g)
{
    if (!g)
        return;
    free(g->diff2);
    free(g->ref2);
    free(g->nonfinite);
    memset(g, 0, sizeof *g);
}

static bool grid_resize(ld_err_grid *g, size_t tokens, size_t heads)
{
    size_t cells = tokens * heads; /* callers bound both by LD_GRID_MAX_CELLS */
    if (cells > g->cap) {
        double *a = realloc(g->diff2, cells * sizeof *a);
        if (a)
            g->diff2 = a;
        double *b = realloc(g->ref2, cells * sizeof *b);
        if (b)
            g->ref2 = b;
        uint64_t *c = realloc(g->nonfinite, cells * sizeof *c);
        if (c)
            g->nonfinite = c;
        if (!a || !b || !c)
            return false;
        g->cap = cells;
    }
    g->tokens = tokens;
    g->heads = heads;
    memset(g->diff2, 0, cells * sizeof *g->diff2);
    memset(g->ref2, 0, cells * sizeof *g->ref2);
    memset(g->nonfinite, 0, cells * sizeof *g->nonfinite);
    return true;
}

static double rel_from_sums(double diff2, double ref2)
{
    if (diff2 == 0)
        return 0;
    if (ref2 == 0)
        return INFINITY;
    return sqrt(diff2 / ref2);
}

double ld_err_grid_cell(const ld_err_grid *g, size_t t, size_t h)
{
    size_t i = t * g->heads + h;
    if (g->nonfinite[i])
        return INFINITY;
    return rel_from_sums(g->diff2[i], g->ref2[i]);
}

double ld_err_grid_token(const ld_err_grid *g, size_t t)
{
    double d = 0, r = 0;
    for (size_t h = 0; h < g->heads; h++) {
        size_t i = t * g->heads + h;
        if (g->nonfinite[i])
            return INFINITY;
        d += g->diff2[i];
        r += g->ref2[i];
    }
    return rel_from_sums(d, r);
}

double ld_err_grid_head(const ld_err_grid *g, size_t h)
{
    double d = 0, r = 0;
    for (size_t t = 0; t < g->tokens; t++) {
        size_t i = t * g->heads + h;
        if (g->nonfinite[i])
            return INFINITY;
        d += g->diff2[i];
        r += g->ref2[i];
    }
    return rel_from_sums(d, r);
}

/* ULP percentiles come from a histogram of every element of small tensors and of every
 * HIST_STRIDE-th element (by flat index) of tensors with more than HIST_ALL elements: a systematic
 * sample of at least 4096 values, enough for a 99th percentile, at a sixteenth of the cost. */
#define HIST_ALL 65536
#define HIST_STRIDE 16

/* Running sums of one measurement. */
typedef struct acc {
    uint64_t n, n_outside;
    uint64_t nan_ref, inf_ref, nan_cand, inf_cand, nf_new, nf_lost;
    double sum_abs, sum_d2, sum_r2, sum_c2, sum_rc;
    double max_abs, max_rel;
    uint64_t worst_abs_i, first_nf_i;
    double worst_abs_r, worst_abs_c, first_nf_r, first_nf_c;
    bool have_abs, have_nf;
    double ulp_sum;
    uint64_t ulp_max;
    uint64_t hist_stride, hist_n;  /* sampling of the histogram, values in it */
    uint64_t ulp_hist[ULP_BUCKETS];
    uint32_t ubuf[CHUNK];          /* ULP distances of the current chunk */
} acc;

static inline size_t ulp_bucket(uint64_t u)
{
    return u < ULP_EXACT ? (size_t)u : (size_t)(ULP_EXACT - 8 + 63 - __builtin_clzll(u | 1));
}

/* One ULP distance of the element at flat index idx (the careful path). */
static void ulp_add(acc *a, uint64_t u, uint64_t idx)
{
    a->ulp_sum += (double)u;
    if (u > a->ulp_max)
        a->ulp_max = u;
    if (idx % a->hist_stride == 0) {
        a->ulp_hist[ulp_bucket(u)]++;
        a->hist_n++;
    }
}

static uint64_t ulp_p99(const acc *a)
{
    if (a->hist_n == 0)
        return 0;
    /* smallest v with at least ceil(0.99 n) of the values <= v */
    uint64_t need = a->hist_n - a->hist_n / 100;
    uint64_t cum = 0;
    for (size_t b = 0; b < ULP_BUCKETS; b++) {
        cum += a->ulp_hist[b];
        if (cum >= need) {
            if (b < ULP_EXACT)
                return b;
            unsigned lg = (unsigned)(b - ULP_EXACT) + 8;
            uint64_t hi = lg >= 63 ? UINT64_MAX : (((uint64_t)1 << (lg + 1)) - 1);
            return hi < a->ulp_max ? hi : a->ulp_max;
        }
    }
    return a->ulp_max;
}

/* Non-finite element on one side at least: counts it and records the first disagreement. */
static void nonfinite_pair(acc *a, float r, float c, uint64_t idx, uint64_t *cell_nf)
{
    bool rf = isfinite(r), cf = isfinite(c);
    if (isnan(r))
        a->nan_ref++;
    else if (!rf)
        a->inf_ref++;
    if (isnan(c))
        a->nan_cand++;
    else if (!cf)
        a->inf_cand++;
    bool disagree;
    if (rf) {
        a->nf_new++;
        disagree = true;
    } else {
        /* both NaN, or the same infinity, agree */
        disagree = cf || (isnan(r) != isnan(c)) || (!isnan(r) && r != c);
        if (disagree)
            a->nf_lost++;
    }
    if (disagree) {
        if (cell_nf)
            (*cell_nf)++;
        if (!a->have_nf) {
            a->have_nf = true;
            a->first_nf_i = idx;
            a->first_nf_r = r;
            a->first_nf_c = c;
        }
    }
}

/* Careful pass 1 over a chunk that holds NaN or Inf: element by element. */
static void sums_careful(acc *a, const float *rb, const float *cb, size_t n, uint64_t base,
                         ld_dtype prec, double atol, double rtol, double *seg_d2, double *seg_r2,
                         uint64_t *cell_nf)
{
    double d2 = 0, r2 = 0, c2 = 0, rc = 0, sa = 0;
    uint64_t cnt = 0, out = 0;
    for (size_t i = 0; i < n; i++) {
        float rf = rb[i], cf = cb[i];
        if (!isfinite(rf) || !isfinite(cf)) {
            nonfinite_pair(a, rf, cf, base + i, cell_nf);
            continue;
        }
        double r = rf, c = cf;
        double d = c - r;
        double ad = fabs(d);
        sa += ad;
        d2 += d * d;
        r2 += r * r;
        c2 += c * c;
        rc += r * c;
        cnt++;
        if (ad > atol + rtol * fabs(r))
            out++;
        if (!a->have_abs || ad > a->max_abs) {
            a->max_abs = ad;
            a->worst_abs_i = base + i;
            a->worst_abs_r = r;
            a->worst_abs_c = c;
            a->have_abs = true;
        }
        ulp_add(a, ulp_dist(rf, cf, prec), base + i);
    }
    a->sum_abs += sa;
    a->sum_d2 += d2;
    a->sum_r2 += r2;
    a->sum_c2 += c2;
    a->sum_rc += rc;
    a->n += cnt;
    a->n_outside += out;
    *seg_d2 += d2;
    *seg_r2 += r2;
}

/* Fast pass 1 over a chunk assumed finite: four independent lanes of sums (a fixed order, so the
 * results do not depend on the machine); the largest error is located afterwards by a rescan of
 * this chunk only. A NaN or Inf anywhere makes a sum non-finite (finite floats cannot overflow a
 * double sum of 4096 squares): then nothing is recorded and false is returned, and the caller
 * measures the chunk with sums_careful. */
static bool sums_fast(acc *a, const float *rb, const float *cb, size_t n, uint64_t base,
                      double atol, double rtol, double *seg_d2, double *seg_r2)
{
    enum { L = 4 };
    double sa[L] = {0}, d2[L] = {0}, r2[L] = {0}, c2[L] = {0}, rc[L] = {0}, mx[L] = {0};
    uint64_t out[L] = {0};
    size_t i = 0;
    for (; i + L <= n; i += L) {
        for (int j = 0; j < L; j++) {
            double r = rb[i + j], c = cb[i + j];
            double d = c - r, ad = fabs(d);
            sa[j] += ad;
            d2[j] += d * d;
            r2[j] += r * r;
            c2[j] += c * c;
            rc[j] += r * c;
            mx[j] = ad > mx[j] ? ad : mx[j];
            out[j] += ad > atol + rtol * fabs(r);
        }
    }
    for (; i < n; i++) {
        double r = rb[i], c = cb[i];
        double d = c - r, ad = fabs(d);
        sa[0] += ad;
        d2[0] += d * d;
        r2[0] += r * r;
        c2[0] += c * c;
        rc[0] += r * c;
        mx[0] = ad > mx[0] ? ad : mx[0];
        out[0] += ad > atol + rtol * fabs(r);
    }
    double ssa = (sa[0] + sa[1]) + (sa[2] + sa[3]);
    double sd2 = (d2[0] + d2[1]) + (d2[2] + d2[3]);
    double sr2 = (r2[0] + r2[1]) + (r2[2] + r2[3]);
    double sc2 = (c2[0] + c2[1]) + (c2[2] + c2[3]);
    if (!isfinite(ssa + sr2 + sc2))
        return false;
    a->sum_abs += ssa;
    a->sum_d2 += sd2;
    a->sum_r2 += sr2;
    a->sum_c2 += sc2;
    a->sum_rc += (rc[0] + rc[1]) + (rc[2] + rc[3]);
    a->n += n;
    a->n_outside += (out[0] + out[1]) + (out[2] + out[3]);
    *seg_d2 += sd2;
    *seg_r2 += sr2;
    double cmax = LD_MAX(LD_MAX(mx[0], mx[1]), LD_MAX(mx[2], mx[3]));
    if (n && (!a->have_abs || cmax > a->max_abs)) {
        for (size_t k = 0; k < n; k++) {
            double r = rb[k], c = cb[k];
            if (fabs(c - r) == cmax) {
                a->max_abs = cmax;
                a->worst_abs_i = base + k;
                a->worst_abs_r = r;
                a->worst_abs_c = c;
                a->have_abs = true;
                break;
            }
        }
    }
    return true;
}

/* bf16 rounding of a finite value (ld_f32_to_bf16 without its NaN branch). */
static inline uint32_t bf16_finite(uint32_t u) { return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16; }

/* Position of an f32 or 16-bit pattern on the line of adjacent values, as a 32-bit integer:
 * negative patterns map to -(magnitude). Differences of two fit in 32 unsigned bits. */
static inline int32_t ord32(uint32_t u)
{
    int32_t m = (int32_t)(u & 0x7fffffffu);
    return (u >> 31) ? -m : m;
}

static inline int32_t ord16(uint32_t h)
{
    int32_t m = (int32_t)(h & 0x7fffu);
    return (h >> 15) ? -m : m;
}

/* ULP distances of a finite chunk on the grid of prec: written to a->ubuf by a loop with no
 * stores elsewhere (it vectorizes), then summed, maxed and sampled into the histogram. */
static void ulps_fast(acc *a, const float *rb, const float *cb, size_t n, uint64_t base,
                      ld_dtype prec)
{
    uint32_t *u = a->ubuf;
    if (prec == LD_BF16) {
        for (size_t i = 0; i < n; i++) {
            uint32_t ur, uc;
            memcpy(&ur, &rb[i], 4);
            memcpy(&uc, &cb[i], 4);
            int32_t x = ord16(bf16_finite(ur)), y = ord16(bf16_finite(uc));
            u[i] = x > y ? (uint32_t)(x - y) : (uint32_t)(y - x);
        }
    } else if (prec == LD_F16) {
        for (size_t i = 0; i < n; i++) {
            int32_t x = ord16(ld_f32_to_f16(rb[i])), y = ord16(ld_f32_to_f16(cb[i]));
            u[i] = x > y ? (uint32_t)(x - y) : (uint32_t)(y - x);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            uint32_t ur, uc;
            memcpy(&ur, &rb[i], 4);
            memcpy(&uc, &cb[i], 4);
            int32_t x = ord32(ur), y = ord32(uc);
            /* the difference of two values within +-(2^31 - 1) fits in 32 unsigned bits */
            u[i] = x > y ? (uint32_t)x - (uint32_t)y : (uint32_t)y - (uint32_t)x;
        }
    }
    uint64_t sum = 0;
    uint32_t mx = 0;
    for (size_t i = 0; i < n; i++) {
        sum += u[i];
        mx = u[i] > mx ? u[i] : mx;
    }
    a->ulp_sum += (double)sum;
    if (mx > a->ulp_max)
        a->ulp_max = mx;
    uint64_t st = a->hist_stride;
    for (size_t i = (size_t)((st - base % st) % st); i < n; i += st) {
        a->ulp_hist[ulp_bucket(u[i])]++;
        a->hist_n++;
    }
}

/* Fast pass 2 over a finite chunk with floor > 0: the largest |c-r| / max(|r|, floor), in four
 * lanes (a maximum does not depend on the order). */
static void rel_fast(acc *a, const float *rb, const float *cb, size_t n, double floor_)
{
    double best[4] = {a->max_rel, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        for (int j = 0; j < 4; j++) {
            double r = rb[i + j], c = cb[i + j];
            double ar = fabs(r);
            double q = fabs(c - r) / (ar > floor_ ? ar : floor_);
            best[j] = q > best[j] ? q : best[j];
        }
    }
    for (; i < n; i++) {
        double r = rb[i], c = cb[i];
        double ar = fabs(r);
        double q = fabs(c - r) / (ar > floor_ ? ar : floor_);
        best[0] = q > best[0] ? q : best[0];
    }
    a->max_rel = LD_MAX(LD_MAX(best[0], best[1]), LD_MAX(best[2], best[3]));
}

/* Careful pass 2 (non-finite values in the row, or a zero floor): skips non-finite pairs;
 * compares fractions by cross multiplication, so a zero denominator needs no division. */
static void rel_careful(acc *a, const float *rb, const float *cb, size_t n, double floor_)
{
    double best_num = 0, best_den = 1;
    bool inf_found = false;
    for (size_t i = 0; i < n; i++) {
        float rf = rb[i], cf = cb[i];
        if (!isfinite(rf) || !isfinite(cf))
            continue;
        double r = rf, c = cf;
        double num = fabs(c - r);
        double den = fabs(r) > floor_ ? fabs(r) : floor_;
        if (den == 0) {
            if (num > 0)
                inf_found = true;
            continue;
        }
        if (num * best_den > best_num * den) {
            best_num = num;
            best_den = den;
        }
    }
    double v = inf_found ? INFINITY : best_num / best_den;
    if (v > a->max_rel)
        a->max_rel = v;
}

static void finish(const acc *a, uint64_t numel, ld_metrics *out)
{
    memset(out, 0, sizeof *out);
    out->source = LD_SRC_FULL;
    out->numel = numel;
    out->n = a->n;
    out->nan_ref = a->nan_ref;
    out->inf_ref = a->inf_ref;
    out->nan_cand = a->nan_cand;
    out->inf_cand = a->inf_cand;
    out->nonfinite_new = a->nf_new;
    out->nonfinite_lost = a->nf_lost;
    double n = (double)a->n;
    out->max_abs = a->have_abs ? a->max_abs : 0;
    out->mean_abs = a->n ? a->sum_abs / n : 0;
    out->rmse = a->n ? sqrt(a->sum_d2 / n) : 0;
    out->ref_l2 = sqrt(a->sum_r2);
    out->cand_l2 = sqrt(a->sum_c2);
    out->rel_l2 = rel_from_sums(a->sum_d2, a->sum_r2);
    out->max_rel = a->max_rel;
    if (a->sum_d2 == 0) {
        out->cosine = 1; /* identical (both zero included) */
    } else if (a->sum_r2 == 0 || a->sum_c2 == 0) {
        out->cosine = 0;
    } else {
        double cs = a->sum_rc / (out->ref_l2 * out->cand_l2);
        out->cosine = cs > 1 ? 1 : (cs < -1 ? -1 : cs);
    }
    if (a->sum_d2 == 0)
        out->snr_db = INFINITY;
    else if (a->sum_r2 == 0)
        out->snr_db = -INFINITY;
    else
        out->snr_db = 10.0 * log10(a->sum_r2 / a->sum_d2);
    out->n_outside = a->n_outside;
    out->frac_outside = a->n ? (double)a->n_outside / n : 0;
    out->ulp_max = a->ulp_max;
    out->ulp_mean = a->n ? a->ulp_sum / n : 0;
    out->ulp_p99 = ulp_p99(a);
    if (a->have_nf) {
        out->has_worst = true;
        out->worst_index = a->first_nf_i;
        out->worst_ref = a->first_nf_r;
        out->worst_cand = a->first_nf_c;
    } else if (a->have_abs) {
        out->has_worst = true;
        out->worst_index = a->worst_abs_i;
        out->worst_ref = a->worst_abs_r;
        out->worst_cand = a->worst_abs_c;
    }
}

static ld_status check_tensor(const ld_cmp_tensor *t, const char *side, bool need_data,
                              ld_error *err)
{
    if (t->ndim < 0 || t->ndim > LD_MAX_NDIM)
        return ld_error_set(err, LD_E_INPUT, "%s tensor has %d dimensions (at most %d)", side,
                            t->ndim, LD_MAX_NDIM);
    uint64_t n;
    if (!ld_shape_numel(t->shape, t->ndim, UINT64_MAX, &n) || n != t->numel)
        return ld_error_set(err, LD_E_INPUT, "%s tensor: shape does not hold %llu elements", side,
                            (unsigned long long)t->numel);
    if (need_data && t->numel > 0 && !t->data)
        return ld_error_set(err, LD_E_INPUT, "%s tensor carries no data", side);
    if (t->dtype != LD_F32 && t->dtype != LD_BF16 && t->dtype != LD_F16)
        return ld_error_set(err, LD_E_INPUT, "%s tensor has an unknown dtype", side);
    return LD_OK;
}

/* A measurement in progress: the running sums, where the next feed starts, and the work buffers. */
struct ld_metrics_acc {
    acc a;
    ld_dtype ref_dtype, cand_dtype, precision;
    double atol, rtol;
    uint64_t numel;
    uint64_t seg, nseg;  /* innermost rows ("segments") and how many */
    uint64_t next_seg;   /* the first row of the next feed */
    ld_err_grid *grid;   /* NULL when the tensor is measured without one */
    float rb[CHUNK], cb[CHUNK];
};

ld_status ld_metrics_begin(ld_metrics_acc **out, const ld_cmp_tensor *ref,
                           const ld_cmp_tensor *cand, ld_dtype precision, const ld_tolerance *tol,
                           ld_err_grid *grid, ld_error *err)
{
    *out = NULL;
    ld_status st = check_tensor(ref, "reference", false, err);
    if (st == LD_OK)
        st = check_tensor(cand, "candidate", false, err);
    if (st != LD_OK)
        return st;
    if (ref->numel != cand->numel)
        return ld_error_set(err, LD_E_INPUT,
                            "reference has %llu elements, candidate %llu: cannot compare",
                            (unsigned long long)ref->numel, (unsigned long long)cand->numel);
    uint64_t numel = ref->numel;
    /* Innermost rows ("segments") and the (token, head) cell each belongs to. */
    uint64_t seg = ref->ndim >= 1 ? (uint64_t)ref->shape[ref->ndim - 1] : 1;
    if (ref->ndim == 1)
        seg = numel;
    uint64_t tokens = ref->ndim >= 2 ? (uint64_t)ref->shape[0] : 1;
    uint64_t nseg = seg ? numel / seg : 0;
    uint64_t heads = tokens ? nseg / tokens : 0;
    bool use_grid = false;
    if (grid) {
        grid->tokens = grid->heads = 0;
        if (nseg > 0 && nseg <= LD_GRID_MAX_CELLS) {
            if (!grid_resize(grid, (size_t)tokens, (size_t)heads))
                return ld_error_set(err, LD_E_NOMEM, "cannot allocate an error grid of %llu cells",
                                    (unsigned long long)nseg);
            use_grid = true;
        }
    }
    ld_metrics_acc *m = calloc(1, sizeof *m);
    if (!m)
        return ld_error_set(err, LD_E_NOMEM, "cannot allocate metric buffers");
    m->ref_dtype = ref->dtype;
    m->cand_dtype = cand->dtype;
    m->precision = precision;
    m->atol = tol ? tol->atol : 0;
    m->rtol = tol ? tol->rtol : 0;
    m->numel = numel;
    m->seg = seg;
    m->nseg = nseg;
    m->grid = use_grid ? grid : NULL;
    m->a.hist_stride = numel > HIST_ALL ? HIST_STRIDE : 1;
    *out = m;
    return LD_OK;
}

uint64_t ld_metrics_row_len(const ld_metrics_acc *m) { return m ? m->seg : 0; }

ld_status ld_metrics_feed(ld_metrics_acc *m, const void *ref, const void *cand, uint64_t n,
                          ld_error *err)
{
    if (n == 0)
        return LD_OK;
    if (!ref || !cand)
        return ld_error_set(err, LD_E_USAGE, "metrics: no data fed");
    uint64_t left = (m->nseg - m->next_seg) * m->seg;
    if (n > left || n % m->seg != 0)
        return ld_error_set(err, LD_E_USAGE, "metrics: %llu elements fed where whole rows of %llu "
                            "(at most %llu) were expected", (unsigned long long)n,
                            (unsigned long long)m->seg, (unsigned long long)left);
    acc *a = &m->a;
    float *rb = m->rb, *cb = m->cb;
    const uint64_t seg = m->seg;
    const double atol = m->atol, rtol = m->rtol;
    uint64_t s0 = m->next_seg, s1 = s0 + n / seg;
    for (uint64_t s = s0; s < s1; s++) {
        uint64_t start = s * seg;        /* flat index of the row's first element */
        uint64_t local = (s - s0) * seg; /* the same within this feed */
        double seg_d2 = 0, seg_r2 = 0;
        uint64_t n_before = a->n;
        uint64_t *cell_nf = m->grid ? &m->grid->nonfinite[s] : NULL;
        bool seg_nf = false; /* the row holds a NaN or Inf somewhere */
        for (uint64_t off = 0; off < seg; off += CHUNK) {
            size_t k = (size_t)LD_MIN((uint64_t)CHUNK, seg - off);
            uint64_t base = start + off;
            ld_cmp_widen(ref, m->ref_dtype, local + off, k, rb);
            ld_cmp_widen(cand, m->cand_dtype, local + off, k, cb);
            if (sums_fast(a, rb, cb, k, base, atol, rtol, &seg_d2, &seg_r2)) {
                ulps_fast(a, rb, cb, k, base, m->precision);
            } else {
                seg_nf = true;
                sums_careful(a, rb, cb, k, base, m->precision, atol, rtol, &seg_d2, &seg_r2,
                             cell_nf);
            }
        }
        uint64_t seg_n = a->n - n_before;
        double floor_ = seg_n ? LD_REL_FLOOR * sqrt(seg_r2 / (double)seg_n) : 0;
        bool careful = seg_nf || !(floor_ > 0);
        if (seg <= CHUNK) { /* the row is still in the buffers */
            if (careful)
                rel_careful(a, rb, cb, (size_t)seg, floor_);
            else
                rel_fast(a, rb, cb, (size_t)seg, floor_);
        } else {
            for (uint64_t off = 0; off < seg; off += CHUNK) {
                size_t k = (size_t)LD_MIN((uint64_t)CHUNK, seg - off);
                ld_cmp_widen(ref, m->ref_dtype, local + off, k, rb);
                ld_cmp_widen(cand, m->cand_dtype, local + off, k, cb);
                if (careful)
                    rel_careful(a, rb, cb, k, floor_);
                else
                    rel_fast(a, rb, cb, k, floor_);
            }
        }
        if (m->grid) {
            m->grid->diff2[s] = seg_d2;
            m->grid->ref2[s] = seg_r2;
        }
    }
    m->next_seg = s1;
    return LD_OK;
}

void ld_metrics_abort(ld_metrics_acc *m) { free(m); }

ld_status ld_metrics_end(ld_metrics_acc *m, ld_metrics *out, ld_error *err)
{
    if (m->next_seg != m->nseg) {
        unsigned long long fed = m->next_seg * m->seg, all = m->nseg * m->seg;
        free(m);
        return ld_error_set(err, LD_E_USAGE, "metrics: %llu of %llu elements fed", fed, all);
    }
    finish(&m->a, m->numel, out);
    free(m);
    return LD_OK;
}

ld_status ld_metrics_compute(const ld_cmp_tensor *ref, const ld_cmp_tensor *cand, ld_dtype precision,
                             const ld_tolerance *tol, ld_metrics *out, ld_err_grid *grid,
                             ld_error *err)
{
    ld_status st = check_tensor(ref, "reference", true, err);
    if (st == LD_OK)
        st = check_tensor(cand, "candidate", true, err);
    if (st != LD_OK)
        return st;
    ld_metrics_acc *m;
    if ((st = ld_metrics_begin(&m, ref, cand, precision, tol, grid, err)) != LD_OK)
        return st;
    /* The whole tensor as one feed: the same rows, chunks and lanes as any other split. */
    if ((st = ld_metrics_feed(m, ref->data, cand->data, m->nseg * m->seg, err)) != LD_OK) {
        ld_metrics_abort(m);
        return st;
    }
    return ld_metrics_end(m, out, err);
}

static bool stats_finite(const ld_stats *s)
{
    return isfinite(s->min) && isfinite(s->max) && isfinite(s->mean) && isfinite(s->std) &&
           isfinite(s->l2);
}

void ld_metrics_from_stats(const ld_stats *ref, const double *ref_head, int ref_n_head,
                           const ld_stats *cand, const double *cand_head, int cand_n_head,
                           uint64_t numel, ld_dtype precision, const ld_tolerance *tol,
                           ld_metrics *out)
{
    /* The first values, measured like a full payload (they were f32/bf16/f16 values widened to
     * double, so narrowing them back to f32 is exact). */
    int nh = LD_MIN(ref_n_head, cand_n_head);
    if (nh < 0)
        nh = 0;
    if ((uint64_t)nh > numel)
        nh = (int)numel;
    float rh[LD_HEAD_COUNT], ch[LD_HEAD_COUNT];
    if (nh > LD_HEAD_COUNT)
        nh = LD_HEAD_COUNT;
    for (int i = 0; i < nh; i++) {
        rh[i] = (float)ref_head[i];
        ch[i] = (float)cand_head[i];
    }
    ld_cmp_tensor rt = {rh, LD_F32, 1, {nh}, (uint64_t)nh};
    ld_cmp_tensor ct = {ch, LD_F32, 1, {nh}, (uint64_t)nh};
    if (ld_metrics_compute(&rt, &ct, precision, tol, out, NULL, NULL) != LD_OK)
        memset(out, 0, sizeof *out); /* cannot happen: the tensors are well formed */
    out->source = LD_SRC_STATS;
    out->numel = numel;
    out->nan_ref = ref->nan;
    out->inf_ref = ref->inf;
    out->nan_cand = cand->nan;
    out->inf_cand = cand->inf;
    uint64_t nf_ref = ref->nan + ref->inf, nf_cand = cand->nan + cand->inf;
    /* As counts only: which elements they are is unknown. A head disagreement is kept. */
    if (nf_cand > nf_ref && out->nonfinite_new < nf_cand - nf_ref)
        out->nonfinite_new = nf_cand - nf_ref;
    if (nf_ref > nf_cand && out->nonfinite_lost < nf_ref - nf_cand)
        out->nonfinite_lost = nf_ref - nf_cand;
    if (ref->nan != cand->nan && out->nonfinite_new + out->nonfinite_lost == 0)
        out->nonfinite_lost = 1; /* same total, different kinds (NaN vs Inf) */
    out->ref_l2 = ref->l2;
    out->cand_l2 = cand->l2;
    out->l2_lower_bound = NAN;
    bool fin_ref = numel > nf_ref, fin_cand = numel > nf_cand; /* some element is finite */
    if (fin_ref && fin_cand && !(stats_finite(ref) && stats_finite(cand))) {
        /* Finite elements on both sides but statistics that bound nothing (a reader refuses
         * them; a caller that did not check gets here): a judge that cannot judge fails. NaN
         * fails every rel_l2 and max_abs tolerance (ld_judge). */
        out->rel_l2 = NAN;
        out->max_abs = NAN;
        return;
    }
    /* ||c-r|| >= | ||c|| - ||r|| |, and (finite case) ||c-r||^2 >= n (dmean^2 + dstd^2). */
    if (isfinite(ref->l2) && isfinite(cand->l2)) {
        double num = fabs(cand->l2 - ref->l2);
        if (nf_ref == 0 && nf_cand == 0) {
            double dm = cand->mean - ref->mean, ds = cand->std - ref->std;
            double b2 = sqrt((double)numel) * sqrt(dm * dm + ds * ds);
            if (b2 > num)
                num = b2;
            /* The same elements, all finite: max |c-r| >= |dmin|, |dmax| and |dmean| (for dmax,
             * take i with c_i = max c: c_i - r_i >= max c - max r; the others alike). */
            double b = fmax(fmax(fabs(cand->min - ref->min), fabs(cand->max - ref->max)),
                            fabs(dm));
            if (b > out->max_abs)
                out->max_abs = b;
        }
        double lb = num == 0 ? 0 : (ref->l2 == 0 ? INFINITY : num / ref->l2);
        out->l2_lower_bound = lb;
        if (lb > out->rel_l2)
            out->rel_l2 = lb;
    }
}

unsigned ld_judge(const ld_metrics *m, const ld_tolerance *tol)
{
    unsigned mask = 0;
    if (m->nonfinite_new || m->nonfinite_lost)
        mask |= LD_FAIL_NONFINITE;
    if (m->source == LD_SRC_NONE)
        return mask;
    /* Written as !(ok) so that a NaN metric fails. */
    if (!(m->rel_l2 <= tol->rel_l2))
        mask |= LD_FAIL_REL_L2;
    if (!(m->cosine >= tol->cosine))
        mask |= LD_FAIL_COSINE;
    if (!(m->frac_outside <= tol->outside))
        mask |= LD_FAIL_OUTSIDE;
    if (!(m->max_abs <= tol->max_abs))
        mask |= LD_FAIL_MAX_ABS;
    if (!((double)m->ulp_max <= tol->ulp))
        mask |= LD_FAIL_ULP;
    return mask;
}

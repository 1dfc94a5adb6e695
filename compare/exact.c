/* exact.c — bit-exactness of two runs of one implementation (compare --exact): walks both streams
 * in lockstep, one record of each in memory, and compares every key's payload bytes (stats and
 * head values when a payload is absent, which is said), reporting the first key that changed.
 * Not a numerical comparison: any changed bit is a change (compare.c measures how much). Its
 * reports are written beside their formats (report_text.c, report_json.c, report_md.c). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "compare_internal.h"
#include "gate.h"
#include "util.h"

typedef struct side {
    const char *label; /* "old" / "new" */
    ld_reader *rd;
    const ld_probe *p; /* the current record, NULL at the end */
    bool done;
} side;

void ld_exact_result_destroy(ld_exact_result *r)
{
    if (!r) return;
    free(r->old_path);
    free(r->new_path);
    free(r->old_impl);
    free(r->new_impl);
    free(r->old_backend);
    free(r->new_backend);
    free(r->changes);
    for (size_t i = 0; i < r->n_notes; i++)
        free(r->notes[i]);
    free(r->notes);
    free(r);
}

static ld_status add_note(ld_exact_result *r, ld_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ld_status add_note(ld_exact_result *r, ld_error *err, const char *fmt, ...)
{
    char **nn = realloc(r->notes, (r->n_notes + 1) * sizeof *nn);
    if (!nn) return ld_error_set(err, LD_E_NOMEM, "out of memory");
    r->notes = nn;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!(r->notes[r->n_notes] = strdup(buf)))
        return ld_error_set(err, LD_E_NOMEM, "out of memory");
    r->n_notes++;
    return LD_OK;
}

/* ---- headers ------------------------------------------------------------------------------- */

static ld_status check_headers(ld_exact_result *r, const ld_header_info *a, const ld_header_info *b,
                               ld_error *err)
{
    if (a->n_tokens != b->n_tokens ||
        (a->n_tokens && memcmp(a->tokens, b->tokens, a->n_tokens * sizeof *a->tokens)))
        return ld_error_set(err, LD_E_INPUT,
                            "different inputs: the prompts of %s (%zu tokens) and "
                            "%s (%zu tokens) differ; --exact compares two runs on one input",
                            r->old_path, a->n_tokens, r->new_path, b->n_tokens);
    if (a->decode_steps != b->decode_steps)
        return ld_error_set(err, LD_E_INPUT, "different inputs: %d decode steps in %s, %d in %s",
                            a->decode_steps, r->old_path, b->decode_steps, r->new_path);
    cJSON *ma = cJSON_Parse(a->model_json), *mb = cJSON_Parse(b->model_json);
    cJSON *ba = cJSON_Parse(a->backend_json), *bb = cJSON_Parse(b->backend_json);
    static const char *const weights[] = {"fingerprint", "checkpoint_dtype", NULL};
    char why[256];
    ld_status st = LD_OK;
    if (ma && mb && ld_gate_json_difference(ma, mb, weights, "in old", "in new", why, sizeof why))
        st = ld_error_set(err, LD_E_INPUT, "different models: %s (%s vs %s)", why, r->old_path,
                          r->new_path);
    else if (strcmp(a->fingerprint, b->fingerprint))
        st = add_note(r, err,
                      "weight fingerprints differ (%s in old, %s in new): the runs read "
                      "different weights, so their outputs cannot be expected to match",
                      a->fingerprint[0] ? a->fingerprint : "none",
                      b->fingerprint[0] ? b->fingerprint : "none");
    if (st == LD_OK && ba && bb &&
        ld_gate_json_difference(ba, bb, NULL, "in old", "in new", why, sizeof why))
        st = add_note(r, err, "backend settings differ: %s (the outputs must still match)", why);
    cJSON_Delete(ma);
    cJSON_Delete(mb);
    cJSON_Delete(ba);
    cJSON_Delete(bb);
    if (st != LD_OK) return st;
    bool faults_same = a->n_faults == b->n_faults;
    for (size_t i = 0; faults_same && i < a->n_faults; i++)
        faults_same = !strcmp(a->faults[i], b->faults[i]);
    if (!faults_same)
        st = add_note(r, err, "injected faults differ (%zu in old, %zu in new)", a->n_faults,
                      b->n_faults);
    return st;
}

/* ---- one key ------------------------------------------------------------------------------- */

static bool same_bits(double x, double y)
{
    return memcmp(&x, &y, sizeof x) == 0;
}

static void shape_text(const ld_probe *p, char *buf, size_t size)
{
    ld_cmp_fmt_shape(p->shape, p->ndim < 0 ? 0 : LD_MIN(p->ndim, LD_MAX_NDIM), buf, size);
}

/* Compares the payload bytes of two records of equal shape and data dtype element by element. */
static void compare_bytes(const ld_probe *a, const ld_probe *b, ld_exact_change *c)
{
    size_t es = ld_dtype_size(a->data_dtype);
    const unsigned char *pa = a->data, *pb = b->data;
    c->have_elements = true;
    c->numel = a->numel;
    for (uint64_t i = 0; i < a->numel; i++) {
        if (memcmp(pa + i * es, pb + i * es, es) == 0) continue;
        if (c->n_diff++ == 0) {
            c->first_elem = i;
            c->old_value = ld_load_f32(a->data, a->data_dtype, (size_t)i);
            c->new_value = ld_load_f32(b->data, b->data_dtype, (size_t)i);
        }
    }
}

/* What differs between two records of one key ("" when nothing); bytes says whether payloads
 * were compared. */
static void compare_records(const ld_probe *a, const ld_probe *b, ld_exact_change *c, bool *bytes)
{
    char x[96], y[96];
    *bytes = a->has_data && b->has_data;
    c->what[0] = '\0';
    if (a->dtype != b->dtype) {
        snprintf(c->what, sizeof c->what, "dtype %s -> %s", ld_dtype_name(a->dtype),
                 ld_dtype_name(b->dtype));
        return;
    }
    bool same_shape = a->ndim == b->ndim;
    for (int i = 0; same_shape && i < a->ndim && i < LD_MAX_NDIM; i++)
        same_shape = a->shape[i] == b->shape[i];
    if (!same_shape) {
        shape_text(a, x, sizeof x);
        shape_text(b, y, sizeof y);
        snprintf(c->what, sizeof c->what, "shape %s -> %s", x, y);
        return;
    }
    if (a->pos0 != b->pos0) {
        snprintf(c->what, sizeof c->what, "pos0 %lld -> %lld", (long long)a->pos0,
                 (long long)b->pos0);
        return;
    }
    if (*bytes) {
        c->have_crc = true;
        c->old_crc32 = a->crc32;
        c->new_crc32 = b->crc32;
        if (a->data_dtype != b->data_dtype) {
            snprintf(c->what, sizeof c->what, "payload dtype %s -> %s",
                     ld_dtype_name(a->data_dtype), ld_dtype_name(b->data_dtype));
            return;
        }
        if (a->crc32 == b->crc32 && a->data_bytes == b->data_bytes &&
            (a->data_bytes == 0 || memcmp(a->data, b->data, a->data_bytes) == 0))
            return;
        c->ndim = LD_MIN(LD_MAX(a->ndim, 0), LD_MAX_NDIM);
        memcpy(c->shape, a->shape, sizeof c->shape);
        compare_bytes(a, b, c);
        snprintf(c->what, sizeof c->what, "payload bytes differ%s",
                 a->crc32 == b->crc32 ? " (with equal crc32)" : "");
        return;
    }
    /* No payload on one side at least: the stats and head values must match bit for bit. */
    static const char *const names[] = {"min", "max", "mean", "std", "l2", "absmax"};
    const double va[] = {a->stats.min, a->stats.max, a->stats.mean,
                         a->stats.std, a->stats.l2,  a->stats.absmax};
    const double vb[] = {b->stats.min, b->stats.max, b->stats.mean,
                         b->stats.std, b->stats.l2,  b->stats.absmax};
    for (size_t i = 0; i < LD_ARRAY_LEN(va); i++) {
        if (!same_bits(va[i], vb[i])) {
            snprintf(c->what, sizeof c->what, "stats.%s %.9g -> %.9g", names[i], va[i], vb[i]);
            return;
        }
    }
    if (a->stats.nan != b->stats.nan || a->stats.inf != b->stats.inf) {
        snprintf(c->what, sizeof c->what, "NaN/Inf counts %llu/%llu -> %llu/%llu",
                 (unsigned long long)a->stats.nan, (unsigned long long)a->stats.inf,
                 (unsigned long long)b->stats.nan, (unsigned long long)b->stats.inf);
        return;
    }
    int n = LD_MIN(a->n_head, b->n_head);
    for (int i = 0; i < n && i < LD_HEAD_COUNT; i++) {
        if (!same_bits(a->head[i], b->head[i])) {
            snprintf(c->what, sizeof c->what, "head[%d] %.9g -> %.9g", i, a->head[i], b->head[i]);
            return;
        }
    }
    if (a->n_head != b->n_head)
        snprintf(c->what, sizeof c->what, "%d head values -> %d", a->n_head, b->n_head);
}

static ld_status record_change(ld_exact_result *r, const ld_exact_change *c, ld_error *err)
{
    r->n_changed++;
    if (r->n_listed == LD_EXACT_MAX_LISTED) return LD_OK;
    if (!r->changes && !(r->changes = malloc(LD_EXACT_MAX_LISTED * sizeof *r->changes)))
        return ld_error_set(err, LD_E_NOMEM, "out of memory");
    r->changes[r->n_listed++] = *c;
    return LD_OK;
}

static void set_key(ld_exact_change *c, const ld_probe *p)
{
    c->key.step = p->step;
    c->key.layer = p->layer;
    snprintf(c->key.tag, sizeof c->key.tag, "%s", p->tag);
}

/* ---- the walk ------------------------------------------------------------------------------ */

/* Next probe of a side into s->p; at the end (or a cut) s->p is NULL. */
static ld_status next(ld_exact_result *r, side *s, ld_error *err)
{
    s->p = NULL;
    if (s->done) return LD_OK;
    ld_error e;
    ld_error_clear(&e);
    ld_status st = ld_reader_next(s->rd, &s->p, &e);
    bool is_old = s->label[0] == 'o';
    if (st == LD_E_TRUNCATED) {
        s->done = true;
        s->p = NULL;
        *(is_old ? &r->truncated_old : &r->truncated_new) = true;
        return add_note(
            r, err, "the %s stream %s was cut short after %s (%s)", s->label, ld_reader_path(s->rd),
            ld_reader_last_key(s->rd)[0] ? ld_reader_last_key(s->rd) : "its header", e.msg);
    }
    if (st != LD_OK) {
        *err = e;
        return st;
    }
    if (!s->p) {
        s->done = true;
        const ld_end_info *end = ld_reader_end(s->rd);
        if (!end->ok) {
            *(is_old ? &r->truncated_old : &r->truncated_new) = true;
            return add_note(r, err, "the %s run ended with an error: %s", s->label,
                            end->message[0] ? end->message : "(no message)");
        }
    }
    return LD_OK;
}

static ld_status compare_ends(ld_exact_result *r, const side *a, const side *b, ld_error *err)
{
    if (r->truncated_old || r->truncated_new || !a->done || !b->done) /* stopped early */
        return LD_OK;
    const ld_end_info *ea = ld_reader_end(a->rd), *eb = ld_reader_end(b->rd);
    if (ea->n_tokens != eb->n_tokens ||
        (ea->n_tokens && memcmp(ea->tokens, eb->tokens, ea->n_tokens * sizeof *ea->tokens)))
        return add_note(r, err, "the generated tokens differ (end records)");
    if (ea->n_decoded != eb->n_decoded ||
        (ea->n_decoded && memcmp(ea->decoded, eb->decoded, ea->n_decoded * sizeof *ea->decoded)))
        return add_note(r, err, "the decode steps were fed different tokens (end records)");
    return LD_OK;
}

static ld_status open_side(ld_exact_result *r, side *s, const char *path, size_t max_line,
                           ld_error *err)
{
    ld_reader_options ro;
    ld_reader_options_init(&ro);
    if (max_line) ro.max_line = max_line;
    ld_error e;
    ld_error_clear(&e);
    ld_status st = ld_reader_open(&s->rd, path, &ro, &e);
    if (st == LD_E_TRUNCATED) { /* empty, or cut inside its header */
        s->done = true;
        r->empty = true;
        *(s->label[0] == 'o' ? &r->truncated_old : &r->truncated_new) = true;
        return add_note(r, err, "the %s stream %s has no complete header (%s)", s->label, path,
                        e.msg);
    }
    if (st != LD_OK) *err = e;
    return st;
}

static ld_status walk(ld_exact_result *r, side *a, side *b, ld_error *err)
{
    ld_status st;
    for (;;) {
        if ((st = next(r, a, err)) != LD_OK || (st = next(r, b, err)) != LD_OK) return st;
        if (!a->p && !b->p) return LD_OK;
        ld_exact_change c;
        memset(&c, 0, sizeof c);
        c.index = r->keys;
        if (!a->p || !b->p) {
            const side *longer = a->p ? a : b, *shorter = a->p ? b : a;
            bool cut = shorter == a ? r->truncated_old : r->truncated_new;
            if (cut) return LD_OK; /* incomplete, not a change */
            set_key(&c, longer->p);
            c.old_line = a->p ? a->p->line : 0;
            c.new_line = b->p ? b->p->line : 0;
            snprintf(c.what, sizeof c.what,
                     "only in the %s stream (the %s one ends after %llu "
                     "probes)",
                     longer->label, shorter->label, (unsigned long long)r->keys);
            r->structural = true;
            return record_change(r, &c, err);
        }
        set_key(&c, a->p);
        c.old_line = a->p->line;
        c.new_line = b->p->line;
        if (a->p->step != b->p->step || a->p->layer != b->p->layer ||
            strcmp(a->p->tag, b->p->tag)) {
            char kb[LD_TAG_NAME_MAX + 48];
            ld_exact_change nb;
            set_key(&nb, b->p);
            snprintf(c.what, sizeof c.what, "the key sequences differ here: the new stream has %s",
                     ld_cmp_key_text(&nb.key, kb, sizeof kb));
            r->structural = true;
            return record_change(r, &c, err);
        }
        r->keys++;
        bool bytes;
        compare_records(a->p, b->p, &c, &bytes);
        if (bytes)
            r->by_bytes++;
        else
            r->by_stats++;
        if (c.what[0] && (st = record_change(r, &c, err)) != LD_OK) return st;
    }
}

ld_status ld_exact_run(const char *old_path, const char *new_path, size_t max_line,
                       ld_exact_result **out, ld_error *err)
{
    *out = NULL;
    ld_exact_result *r = calloc(1, sizeof *r);
    if (!r) return ld_error_set(err, LD_E_NOMEM, "out of memory");
    side a = {"old", NULL, NULL, false}, b = {"new", NULL, NULL, false};
    ld_status st = LD_OK;
    r->old_path = strdup(old_path);
    r->new_path = strdup(new_path);
    if (!r->old_path || !r->new_path) {
        st = ld_error_set(err, LD_E_NOMEM, "out of memory");
        goto done;
    }
    if ((st = open_side(r, &a, old_path, max_line, err)) != LD_OK ||
        (st = open_side(r, &b, new_path, max_line, err)) != LD_OK)
        goto done;
    if (a.rd && b.rd) {
        const ld_header_info *ha = ld_reader_header(a.rd), *hb = ld_reader_header(b.rd);
        r->old_impl = strdup(ha->implementation);
        r->new_impl = strdup(hb->implementation);
        r->old_backend = strdup(ha->backend_json ? ha->backend_json : "{}");
        r->new_backend = strdup(hb->backend_json ? hb->backend_json : "{}");
        if (!r->old_impl || !r->new_impl || !r->old_backend || !r->new_backend) {
            st = ld_error_set(err, LD_E_NOMEM, "out of memory");
            goto done;
        }
        if ((st = check_headers(r, ha, hb, err)) != LD_OK || (st = walk(r, &a, &b, err)) != LD_OK ||
            (st = compare_ends(r, &a, &b, err)) != LD_OK)
            goto done;
    }
    if (r->keys == 0 && !r->n_changed) r->empty = true;
    if (r->by_stats && (st = add_note(r, err,
                                      "%llu of %llu probes carry no payload on one side "
                                      "and were compared by their stats and first %d values only: "
                                      "equal there does not prove bit-exact (write both runs with "
                                      "--payload full)",
                                      (unsigned long long)r->by_stats, (unsigned long long)r->keys,
                                      LD_HEAD_COUNT)) != LD_OK)
        goto done;
done:
    ld_reader_close(a.rd);
    ld_reader_close(b.rd);
    if (st != LD_OK) {
        ld_exact_result_destroy(r);
        return st;
    }
    *out = r;
    return LD_OK;
}

int ld_exact_exit_code(const ld_exact_result *r)
{
    if (r->n_changed) return 1;
    if (r->empty || r->truncated_old || r->truncated_new) return 3;
    return 0;
}

/* compare.c — aligns two probe streams record by record and builds the comparison result: header
 * checks, matching by key, metrics and verdicts, missing keys, truncation, the first divergence,
 * argmax and logits agreement. Memory: the rows (small, one per key) and the records still waiting
 * for their partner (copied whole). When both streams come in the same order nothing waits: the
 * two payloads of a pair are read from their readers in lockstep, a piece of whole rows at a time,
 * so memory stays at two readers' buffers and two pieces whatever the records' sizes. Not the
 * reports (report_*.c). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "compare_internal.h"
#include "floor.h"
#include "gate.h"
#include "util.h"

/* ---- options, fail-on ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    unsigned bit;
} fail_on_names[] = {
    {"divergence", LD_FAIL_ON_DIVERGENCE}, {"incomplete", LD_FAIL_ON_INCOMPLETE},
    {"argmax", LD_FAIL_ON_ARGMAX},         {"fingerprint", LD_FAIL_ON_FINGERPRINT},
    {"faults", LD_FAIL_ON_FAULTS},         {"nodata", LD_FAIL_ON_NODATA},
    {"regression", LD_FAIL_ON_REGRESSION},
};

ld_status ld_fail_on_parse(const char *list, unsigned *out, ld_error *err)
{
    unsigned bits = 0;
    const char *p = list;
    if (!p || !*p)
        return ld_error_set(err, LD_E_USAGE, "--fail-on: empty list");
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        bool found = false;
        if (len == 3 && !strncmp(p, "all", 3)) {
            bits |= LD_FAIL_ON_ALL;
            found = true;
        } else if (len == 4 && !strncmp(p, "none", 4)) {
            found = true;
        }
        for (size_t i = 0; !found && i < LD_ARRAY_LEN(fail_on_names); i++) {
            if (strlen(fail_on_names[i].name) == len && !strncmp(p, fail_on_names[i].name, len)) {
                bits |= fail_on_names[i].bit;
                found = true;
            }
        }
        if (!found)
            return ld_error_set(err, LD_E_USAGE,
                                "--fail-on: unknown condition '%.*s' (divergence, incomplete, "
                                "argmax, fingerprint, faults, nodata, regression, all, none)",
                                (int)LD_MIN(len, (size_t)64), p);
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = bits;
    return LD_OK;
}

void ld_fail_on_format(unsigned bits, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < LD_ARRAY_LEN(fail_on_names); i++) {
        if (!(bits & fail_on_names[i].bit))
            continue;
        int n = snprintf(buf + used, size - used, "%s%s", used ? "," : "", fail_on_names[i].name);
        if (n < 0 || (size_t)n >= size - used)
            return;
        used += (size_t)n;
    }
    if (!used)
        snprintf(buf, size, "none");
}

void ld_compare_options_init(ld_compare_options *o)
{
    memset(o, 0, sizeof *o);
    o->fail_on = LD_FAIL_ON_DEFAULT;
    o->topk = 5;
    o->floor_k = LD_FLOOR_K_DEFAULT;
    o->floor_ulp_cap = LD_FLOOR_ULP_CAP_DEFAULT;
}

/* ---- one probe record, live in a reader or copied while it waits for its partner ------------- */

typedef struct view {
    ld_key key;
    ld_tag tag_id;
    bool reshape;        /* a map rule allows another layout of the same size */
    uint64_t index;      /* order in its stream (records the map dropped not counted) */
    uint64_t line;
    int64_t pos0;
    ld_dtype dtype, data_dtype;
    int ndim;
    int64_t shape[LD_MAX_NDIM];
    uint64_t numel;
    ld_stats stats;
    double head[LD_HEAD_COUNT];
    int n_head;
    bool has_data;
    uint32_t crc32;      /* known once the payload was read (a live payload's comes with it) */
    const void *data;    /* the payload in memory (decoded whole, or a parked copy), else NULL */
    size_t data_bytes;
    bool live;           /* the payload is still in the reader, to be read in pieces */
    size_t read;         /* bytes of a live payload read so far */
    const ld_probe *src; /* the reader's record (until its next call), NULL for a copy */
    bool counted;        /* settled: known complete, counted in its stream's figures */
    void *owned;         /* the copy's data */
} view;

typedef struct side {
    const char *name;    /* "reference" / "candidate" */
    ld_reader *rd;
    ld_stream_info *info;
    bool done;
    view cur;
    bool have;
    unsigned char *chunk; /* [chunk_cap] pieces of live payloads */
    size_t chunk_cap;
} side;

/* Row bookkeeping that no report needs. */
typedef struct aux {
    bool ref_seen, cand_seen;
    view *pending;       /* the record waiting for its partner (either side) */
} aux;

/* key -> row: open addressing over row indices + 1 (0 = empty). */
typedef struct index_t {
    size_t *slot;
    size_t cap;          /* power of two */
    size_t used;
} index_t;

typedef struct ctx {
    const ld_compare_options *opt;
    ld_compare_result *res;
    side ref, cand;
    aux *aux;
    size_t cap_rows;
    index_t idx;
    ld_err_grid scratch;       /* grid of the pair being measured */
    uint64_t first_fail_ref;   /* ref_index of the earliest failing row so far */
    size_t floor_missing;      /* compared rows of a floor's dtype the floor has no entry for */
    float *row_r, *row_c;      /* logits rows for top-k */
    size_t row_cap;
    ld_error *err;
} ctx;

/* Bytes of each payload measured at a time (whole rows: more when one row is larger). Two
 * readers' pieces of this size, not whole records, are what comparing costs in memory. */
#define PIECE_BYTES ((size_t)1 << 20)

static uint64_t key_hash(const ld_key *k)
{
    uint64_t h = ld_fnv1a(LD_FNV_INIT, &k->step, sizeof k->step);
    h = ld_fnv1a(h, &k->layer, sizeof k->layer);
    return ld_fnv1a(h, k->tag, strlen(k->tag));
}

static bool key_eq(const ld_key *a, const ld_key *b)
{
    return a->step == b->step && a->layer == b->layer && !strcmp(a->tag, b->tag);
}

static ptrdiff_t index_find(const index_t *ix, const ld_row *rows, const ld_key *k)
{
    if (!ix->cap)
        return -1;
    size_t mask = ix->cap - 1;
    for (size_t i = (size_t)key_hash(k) & mask;; i = (i + 1) & mask) {
        size_t s = ix->slot[i];
        if (!s)
            return -1;
        if (key_eq(&rows[s - 1].key, k))
            return (ptrdiff_t)(s - 1);
    }
}

static bool index_put(index_t *ix, const ld_row *rows, size_t row)
{
    if ((ix->used + 1) * 2 > ix->cap) {
        size_t ncap = ix->cap ? ix->cap * 2 : 1024;
        size_t *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return false;
        for (size_t i = 0; i < ix->cap; i++) {
            size_t s = ix->slot[i];
            if (!s)
                continue;
            size_t j = (size_t)key_hash(&rows[s - 1].key) & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = s;
        }
        free(ix->slot);
        ix->slot = ns;
        ix->cap = ncap;
    }
    size_t j = (size_t)key_hash(&rows[row].key) & (ix->cap - 1);
    while (ix->slot[j])
        j = (j + 1) & (ix->cap - 1);
    ix->slot[j] = row + 1;
    ix->used++;
    return true;
}

static void index_free(index_t *ix)
{
    free(ix->slot);
    memset(ix, 0, sizeof *ix);
}

ptrdiff_t ld_compare_find(const ld_compare_result *r, const ld_key *key)
{
    return r->index_ ? index_find(r->index_, r->rows, key) : -1;
}

/* ---- result ownership ------------------------------------------------------------------------ */

static void stream_info_free(ld_stream_info *s)
{
    free(s->path);
    free(s->implementation);
    free(s->backend_json);
    free(s->model_json);
    free(s->input_json);
    free(s->tool_json);
    free(s->created);
    free(s->fingerprint);
    for (size_t i = 0; i < s->n_faults; i++)
        free(s->faults[i]);
    free(s->faults);
    free(s->tokens);
    free(s->end_message);
    free(s->last_key);
    free(s->end_tokens);
    free(s->decoded);
}

void ld_compare_result_destroy(ld_compare_result *r)
{
    if (!r)
        return;
    stream_info_free(&r->ref);
    stream_info_free(&r->cand);
    free(r->policy_label);
    free(r->rows);
    for (size_t i = 0; i < r->n_notes; i++)
        free(r->notes[i].text);
    free(r->notes);
    free(r->steps);
    ld_err_grid_free(&r->first_grid);
    ld_baseline_check_destroy(r->baseline);
    if (r->index_) {
        index_free(r->index_);
        free(r->index_);
    }
    free(r);
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

static ld_status note(ctx *c, ld_note_level level, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ld_status note(ctx *c, ld_note_level level, const char *code, const char *fmt, ...)
{
    ld_compare_result *r = c->res;
    ld_note *nn = realloc(r->notes, (r->n_notes + 1) * sizeof *nn);
    if (!nn)
        return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
    r->notes = nn;
    ld_note *n = &r->notes[r->n_notes];
    memset(n, 0, sizeof *n);
    n->level = level;
    snprintf(n->code, sizeof n->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    n->text = malloc(len > 0 ? (size_t)len + 1 : 1);
    if (!n->text)
        return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
    va_start(ap, fmt);
    vsnprintf(n->text, (size_t)len + 1, fmt, ap);
    va_end(ap);
    r->n_notes++;
    return LD_OK;
}

static ld_status copy_i32(const int32_t *src, size_t n, int32_t **dst, size_t *dn, ld_error *err)
{
    *dst = NULL;
    *dn = 0;
    if (!src || !n)
        return LD_OK;
    size_t bytes;
    if (!ld_mul_size(n, sizeof *src, &bytes) || !(*dst = malloc(bytes)))
        return ld_error_set(err, LD_E_NOMEM, "out of memory copying %zu tokens", n);
    memcpy(*dst, src, bytes);
    *dn = n;
    return LD_OK;
}

/* ---- reading --------------------------------------------------------------------------------- */

static ld_status open_side(ctx *c, side *s, const char *path)
{
    ld_stream_info *info = s->info;
    if (!(info->path = strdup(path)))
        return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
    ld_reader_options ro;
    ld_reader_options_init(&ro);
    if (c->opt->max_line)
        ro.max_line = c->opt->max_line;
    ro.stream_data = !c->opt->whole_records;
    ld_error e;
    ld_error_clear(&e);
    ld_status st = ld_reader_open(&s->rd, path, &ro, &e);
    if (st == LD_E_TRUNCATED) {
        /* An empty file, or one cut inside its header: nothing to compare, never a pass. */
        s->done = true;
        info->truncated = true;
        info->last_key = strdup("");
        return note(c, LD_NOTE_ERROR, "no_header", "%s stream %s has no complete header (%s)",
                    s->name, path, e.msg);
    }
    if (st != LD_OK) {
        *c->err = e;
        return st;
    }
    const ld_header_info *h = ld_reader_header(s->rd);
    info->opened = true;
    info->implementation = strdup(h->implementation);
    info->backend_json = dup_or_empty(h->backend_json);
    info->model_json = dup_or_empty(h->model_json);
    info->input_json = dup_or_empty(h->input_json);
    info->tool_json = dup_or_empty(h->tool);
    info->created = dup_or_empty(h->created);
    info->fingerprint = dup_or_empty(h->fingerprint);
    info->last_key = strdup("");
    info->decode_steps = h->decode_steps;
    if (!info->implementation || !info->backend_json || !info->model_json || !info->input_json ||
        !info->tool_json || !info->created || !info->fingerprint || !info->last_key)
        return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
    if (h->n_faults) {
        if (!(info->faults = calloc(h->n_faults, sizeof *info->faults)))
            return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
        for (size_t i = 0; i < h->n_faults; i++) {
            if (!(info->faults[i] = dup_or_empty(h->faults[i])))
                return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
            info->n_faults = i + 1;
        }
    }
    return copy_i32(h->tokens, h->n_tokens, &info->tokens, &info->n_tokens, c->err);
}

/* The stream of a side was cut short: it is done, its last complete key noted. */
static ld_status side_cut(ctx *c, side *s, const ld_error *e)
{
    s->done = true;
    s->have = false;
    s->info->truncated = true;
    s->info->bytes = ld_reader_bytes(s->rd);
    free(s->info->last_key);
    s->info->last_key = strdup(ld_reader_last_key(s->rd));
    if (!s->info->last_key)
        return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
    return note(c, LD_NOTE_ERROR, "truncated", "%s stream %s was cut short after %s (%s)", s->name,
                s->info->path, s->info->last_key[0] ? s->info->last_key : "its header", e->msg);
}

/* A reader's verdict on the record being read: LD_OK; a cut-short stream (the record never
 * arrived: *gone, the side is done); anything else fails the comparison with the reader's
 * message. */
static ld_status reader_outcome(ctx *c, side *s, ld_status st, const ld_error *e, bool *gone)
{
    if (st == LD_E_TRUNCATED) {
        *gone = true;
        return side_cut(c, s, e);
    }
    if (st != LD_OK)
        *c->err = *e;
    return st;
}

/* The current record is complete and valid: it counts. */
static void count_record(side *s)
{
    if (s->cur.counted)
        return;
    s->cur.counted = true;
    s->info->probes++;
    s->info->with_data += s->cur.has_data;
    s->info->dtype_mask |= 1 << s->cur.dtype;
    s->info->bytes = ld_reader_bytes(s->rd);
}

/* Reads the rest of the current record's payload, checked, without keeping it (or nothing to
 * read); then it counts. *gone: the stream ended inside it. */
static ld_status settle(ctx *c, side *s, bool *gone)
{
    *gone = false;
    view *v = &s->cur;
    if (v->live) {
        ld_error e;
        ld_error_clear(&e);
        ld_status st = ld_reader_skip_data(s->rd, &e);
        if ((st = reader_outcome(c, s, st, &e, gone)) != LD_OK || *gone)
            return st;
        v->live = false;
        v->crc32 = v->src->crc32;
    }
    count_record(s);
    return LD_OK;
}

/* The next n bytes of the current record's live payload into dst; the record counts once its
 * last byte was read (the reader has then checked it all). *gone as for settle. */
static ld_status read_live(ctx *c, side *s, unsigned char *dst, size_t n, bool *gone)
{
    *gone = false;
    view *v = &s->cur;
    size_t done = 0;
    while (done < n) {
        size_t got;
        ld_error e;
        ld_error_clear(&e);
        ld_status st = ld_reader_read_data(s->rd, dst + done, n - done, &got, &e);
        if ((st = reader_outcome(c, s, st, &e, gone)) != LD_OK || *gone)
            return st;
        if (!got)
            return ld_error_set(c->err, LD_E_INTERNAL, "%s: line %llu: the payload ended after "
                                "%zu of %zu bytes", s->info->path, (unsigned long long)v->line,
                                v->read, v->data_bytes);
        done += got;
        v->read += got;
    }
    if (v->read == v->data_bytes) {
        v->live = false;
        v->crc32 = v->src->crc32; /* known now that the payload was read */
        count_record(s);
    }
    return LD_OK;
}

/* Reads the next probe of a side into s->cur (through the map); s->have false at the end. The
 * record counts (probes, with_data) once it is settled: read whole, or its payload read to the
 * end. */
static ld_status advance(ctx *c, side *s)
{
    s->have = false;
    while (!s->done) {
        const ld_probe *p = NULL;
        ld_error e;
        ld_error_clear(&e);
        ld_status st = ld_reader_next(s->rd, &p, &e);
        s->info->bytes = ld_reader_bytes(s->rd);
        bool gone = false;
        if ((st = reader_outcome(c, s, st, &e, &gone)) != LD_OK || gone)
            return st;
        if (!p) {
            s->done = true;
            const ld_end_info *end = ld_reader_end(s->rd);
            ld_stream_info *in = s->info;
            in->has_end = true;
            in->end_ok = end->ok;
            free(in->last_key);
            in->last_key = strdup(ld_reader_last_key(s->rd));
            in->end_message = dup_or_empty(end->message);
            if (!in->last_key || !in->end_message)
                return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
            if ((st = copy_i32(end->tokens, end->n_tokens, &in->end_tokens, &in->n_end_tokens,
                               c->err)) != LD_OK ||
                (st = copy_i32(end->decoded, end->n_decoded, &in->decoded, &in->n_decoded,
                               c->err)) != LD_OK)
                return st;
            if (!end->ok)
                return note(c, LD_NOTE_ERROR, "run_error",
                            "the %s run ended with an error after %s: %s", s->name,
                            in->last_key[0] ? in->last_key : "its header",
                            in->end_message[0] ? in->end_message : "(no message)");
            return LD_OK;
        }
        view *v = &s->cur;
        memset(v, 0, sizeof *v);
        bool reshape = false;
        ld_map_action act = ld_keymap_apply(c->opt->map, p->step, p->layer, p->tag, &v->key,
                                            &reshape);
        if (act == LD_MAP_DROP) { /* counted once it is known to be complete */
            ld_error_clear(&e);
            st = ld_reader_skip_data(s->rd, &e);
            if ((st = reader_outcome(c, s, st, &e, &gone)) != LD_OK || gone)
                return st;
            s->info->dropped++;
            continue;
        }
        v->reshape = reshape;
        v->tag_id = act == LD_MAP_KEEP ? p->tag_id : ld_tag_from_name(v->key.tag);
        v->index = s->info->probes;
        v->line = p->line;
        v->pos0 = p->pos0;
        v->dtype = p->dtype;
        v->data_dtype = p->data_dtype;
        v->ndim = p->ndim < 0 ? 0 : LD_MIN(p->ndim, LD_MAX_NDIM);
        memcpy(v->shape, p->shape, sizeof v->shape);
        v->numel = p->numel;
        v->stats = p->stats;
        v->n_head = LD_MAX(0, LD_MIN(p->n_head, LD_HEAD_COUNT));
        memcpy(v->head, p->head, sizeof v->head);
        v->has_data = p->has_data;
        v->crc32 = p->crc32;
        v->data = p->data;
        v->data_bytes = p->data_bytes;
        v->live = p->streaming;
        v->src = p;
        if (p->has_data) {
            uint64_t need;
            if ((!p->data && !p->streaming && p->data_bytes) ||
                !ld_mul_u64(p->numel, ld_dtype_size(p->data_dtype), &need) ||
                need != p->data_bytes)
                return ld_error_set(c->err, LD_E_INPUT,
                                    "%s: line %llu: %s: payload holds %zu bytes, its shape needs "
                                    "%llu elements of %s",
                                    s->info->path, (unsigned long long)p->line, p->tag,
                                    p->data_bytes, (unsigned long long)p->numel,
                                    ld_dtype_name(p->data_dtype));
        }
        s->have = true;
        return LD_OK;
    }
    return LD_OK;
}

/* Copies a record so that it survives the reader's next call, reading a live payload whole
 * (memory then holds every record parked: streams in different orders cost what waits). */
static ld_status park(ctx *c, side *s, view **out, bool *gone)
{
    const view *v = &s->cur;
    *out = NULL;
    *gone = false;
    view *p = malloc(sizeof *p);
    if (!p)
        return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
    *p = *v;
    p->owned = NULL;
    p->live = false;
    p->src = NULL;
    if (v->has_data && v->data_bytes) {
        if (!(p->owned = malloc(v->data_bytes))) {
            free(p);
            return ld_error_set(c->err, LD_E_NOMEM, "cannot keep a record of %zu bytes",
                                v->data_bytes);
        }
        if (v->live) {
            if (v->read) { /* never: a record is parked before any of it is read */
                free(p->owned);
                free(p);
                return ld_error_set(c->err, LD_E_INTERNAL, "parking a record half read");
            }
            ld_status st = read_live(c, s, p->owned, v->data_bytes, gone);
            if (st != LD_OK || *gone) {
                free(p->owned);
                free(p);
                return st;
            }
        } else {
            memcpy(p->owned, v->data, v->data_bytes);
            count_record(s);
        }
        p->data = p->owned;
    } else {
        ld_status st = settle(c, s, gone);
        if (st != LD_OK || *gone) {
            free(p);
            return st;
        }
    }
    p->crc32 = s->cur.crc32;
    *out = p;
    return LD_OK;
}

static void unpark(view *p)
{
    if (p) {
        free(p->owned);
        free(p);
    }
}

/* ---- rows ------------------------------------------------------------------------------------ */

static ld_status new_row(ctx *c, const ld_key *key, size_t *out)
{
    ld_compare_result *r = c->res;
    if (r->n_rows == c->cap_rows) {
        size_t ncap = c->cap_rows ? c->cap_rows * 2 : 256;
        ld_row *nr = realloc(r->rows, ncap * sizeof *nr);
        if (nr)
            r->rows = nr;
        aux *na = realloc(c->aux, ncap * sizeof *na);
        if (na)
            c->aux = na;
        if (!nr || !na)
            return ld_error_set(c->err, LD_E_NOMEM, "out of memory for %zu rows", ncap);
        c->cap_rows = ncap;
    }
    size_t i = r->n_rows;
    ld_row *row = &r->rows[i];
    memset(row, 0, sizeof *row);
    memset(&c->aux[i], 0, sizeof c->aux[i]);
    row->key = *key;
    row->ref_index = row->cand_index = UINT64_MAX;
    row->worst_input = -1;
    row->inputs_rel_l2 = NAN;
    row->amplification = NAN;
    row->floor_rel_l2 = NAN;
    row->floor_ratio = NAN;
    row->replay_why = "";
    row->local_rel_l2 = NAN;
    row->inherited_rel_l2 = NAN;
    row->local_budget = NAN;
    row->m.source = LD_SRC_NONE;
    r->n_rows++;
    if (!index_put(&c->idx, r->rows, i))
        return ld_error_set(c->err, LD_E_NOMEM, "out of memory for the key index");
    *out = i;
    return LD_OK;
}

static void fill_side(ld_row *row, const view *v, bool is_ref)
{
    row->tag_id = v->tag_id;
    if (is_ref) {
        row->ref_index = v->index;
        row->ref_line = v->line;
        row->ref_dtype = v->dtype;
        row->ref_has_data = v->has_data;
        row->ref_crc32 = v->crc32;
        row->ref_stats = v->stats;
        row->pos0 = v->pos0;
        row->ndim = v->ndim;
        memcpy(row->shape, v->shape, sizeof row->shape);
    } else {
        row->cand_index = v->index;
        row->cand_line = v->line;
        row->cand_dtype = v->dtype;
        row->cand_has_data = v->has_data;
        row->cand_crc32 = v->crc32;
        row->cand_stats = v->stats;
        row->cand_ndim = v->ndim;
        memcpy(row->cand_shape, v->shape, sizeof row->cand_shape);
        if (row->ref_index == UINT64_MAX) { /* until (unless) the reference's record arrives */
            row->pos0 = v->pos0;
            row->ndim = v->ndim;
            memcpy(row->shape, v->shape, sizeof row->shape);
        }
    }
}

static bool same_shape(const view *a, const view *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

static ld_step_tokens *step_slot(ctx *c, int step)
{
    ld_compare_result *r = c->res;
    if (step < 0 || step > 1000000)
        return NULL;
    if ((size_t)step >= r->n_steps) {
        size_t n = (size_t)step + 1;
        ld_step_tokens *ns = realloc(r->steps, n * sizeof *ns);
        if (!ns)
            return NULL;
        for (size_t i = r->n_steps; i < n; i++) {
            memset(&ns[i], 0, sizeof ns[i]);
            ns[i].step = (int)i;
            ns[i].first_top1_diff_row = -1;
        }
        r->steps = ns;
        r->n_steps = n;
    }
    return &r->steps[step];
}

/* Indices of the k largest finite values of row[0..n), best first, into top[0..k). */
static int topk_of(const float *row, size_t n, int k, uint32_t *top)
{
    int have = 0;
    for (size_t i = 0; i < n; i++) {
        float v = row[i];
        if (!isfinite(v))
            continue;
        if (have == k && v <= row[top[k - 1]])
            continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && row[top[j - 1]] < v) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = (uint32_t)i;
    }
    return have;
}

/* What measuring a pair found, before it goes into its row. */
typedef struct pair_eval {
    ld_tolerance tol;
    ld_metrics m;
    bool shape_mismatch, reshaped, have_grid;
    /* logits: top-k agreement over the rows */
    bool logits;
    uint64_t rows, top1_agree;
    double overlap_sum;
    int64_t first_diff_row;
    bool last_row_tokens;          /* the last row had finite values on both sides */
    int32_t ref_token, cand_token; /* its argmax */
} pair_eval;

/* Top-k agreement of one row of a [T,V] logits pair (widened rows in c->row_r, c->row_c). */
static void logits_row(ctx *c, pair_eval *pe, size_t V, uint64_t t, uint64_t T)
{
    int k = c->opt->topk < 1 ? 1 : LD_MIN(c->opt->topk, 64);
    uint32_t tr[64], tc[64];
    int nr = topk_of(c->row_r, V, k, tr), nc = topk_of(c->row_c, V, k, tc);
    int common = 0;
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nc; j++)
            common += tr[i] == tc[j];
    pe->overlap_sum += (double)common / k;
    bool agree = nr > 0 && nc > 0 && tr[0] == tc[0];
    pe->top1_agree += agree;
    if (!agree && pe->first_diff_row < 0)
        pe->first_diff_row = (int64_t)t;
    if (t + 1 == T && nr > 0 && nc > 0) {
        pe->last_row_tokens = true;
        pe->ref_token = (int32_t)tr[0];
        pe->cand_token = (int32_t)tc[0];
    }
}

/* The step's logits agreement from a measured pair. */
static void logits_commit(ctx *c, int step, const pair_eval *pe)
{
    ld_step_tokens *st = step_slot(c, step);
    if (!st)
        return;
    st->top1_agree += pe->top1_agree;
    if (st->first_top1_diff_row < 0)
        st->first_top1_diff_row = pe->first_diff_row;
    if (pe->last_row_tokens) {
        /* The step's token comes from its last row; the end record, when present, wins. */
        if (!st->have_ref) {
            st->ref_token = pe->ref_token;
            st->have_ref = true;
        }
        if (!st->have_cand) {
            st->cand_token = pe->cand_token;
            st->have_cand = true;
        }
    }
    st->logits_rows = pe->rows;
    st->topk_overlap = pe->rows ? pe->overlap_sum / (double)pe->rows : 0;
}

/* The next n bytes of a live side's payload, into its piece buffer (grown as needed): *p points
 * at them, or *gone is set when the stream ended inside the record. */
static ld_status read_piece(ctx *c, side *s, size_t n, const unsigned char **p, side **gone)
{
    if (n > s->chunk_cap) {
        unsigned char *b = realloc(s->chunk, n);
        if (!b)
            return ld_error_set(c->err, LD_E_NOMEM, "cannot allocate %zu bytes for a payload piece",
                                n);
        s->chunk = b;
        s->chunk_cap = n;
    }
    bool lost = false;
    ld_status st = read_live(c, s, s->chunk, n, &lost);
    if (st == LD_OK && lost)
        *gone = s;
    else if (st == LD_OK)
        *p = s->chunk;
    return st;
}

/* Measures both payloads of a pair, whole rows at a time: a payload in memory is read where it
 * lies, a live one from its reader into its side's piece buffer, so both streams advance in
 * lockstep and neither record is ever whole in memory. *gone: a live side's stream ended inside
 * its record (nothing measured; that side is done). */
static ld_status measure_payloads(ctx *c, const view *rv, side *rs, const view *cv, side *cs,
                                  pair_eval *pe, side **gone)
{
    ld_cmp_tensor rt = {rv->data, rv->data_dtype, rv->ndim, {0}, rv->numel};
    ld_cmp_tensor ct = {cv->data, cv->data_dtype, rv->ndim, {0}, cv->numel};
    memcpy(rt.shape, rv->shape, sizeof rt.shape);
    memcpy(ct.shape, rv->shape, sizeof ct.shape); /* a reshaped record reads in ref's shape */
    ld_metrics_acc *m;
    ld_error e;
    ld_status st = ld_metrics_begin(&m, &rt, &ct, cv->dtype, &pe->tol, &c->scratch, &e);
    if (st != LD_OK)
        return ld_error_set(c->err, st, "%s vs %s: line %llu / %llu: %s", c->res->ref.path,
                            c->res->cand.path, (unsigned long long)rv->line,
                            (unsigned long long)cv->line, e.msg);
    size_t rsz = ld_dtype_size(rv->data_dtype), csz = ld_dtype_size(cv->data_dtype);
    uint64_t row = ld_metrics_row_len(m), rows = row ? rv->numel / row : 0;
    uint64_t per = row ? LD_MAX((uint64_t)1, PIECE_BYTES / (row * LD_MAX(rsz, csz))) : 0;
    /* logits rows for top-k: [T, V] */
    pe->logits = rv->tag_id == LD_TAG_LOGITS && rv->ndim == 2 && rv->shape[1] > 0 &&
                 rv->shape[1] <= UINT32_MAX;
    size_t V = pe->logits ? (size_t)rv->shape[1] : 0;
    pe->first_diff_row = -1;
    if (pe->logits && V > c->row_cap) {
        float *a = realloc(c->row_r, V * sizeof *a);
        if (a)
            c->row_r = a;
        float *b = realloc(c->row_c, V * sizeof *b);
        if (b)
            c->row_c = b;
        if (!a || !b) {
            ld_metrics_abort(m);
            return ld_error_set(c->err, LD_E_NOMEM, "out of memory for a logits row");
        }
        c->row_cap = V;
    }
    for (uint64_t done = 0; done < rows && st == LD_OK; done += per) {
        uint64_t k = LD_MIN(per, rows - done), n = k * row;
        const unsigned char *rp = rv->data ? (const unsigned char *)rv->data + done * row * rsz
                                           : NULL;
        const unsigned char *cp = cv->data ? (const unsigned char *)cv->data + done * row * csz
                                           : NULL;
        if (rs && ((st = read_piece(c, rs, (size_t)n * rsz, &rp, gone)) != LD_OK || *gone))
            break;
        if (cs && ((st = read_piece(c, cs, (size_t)n * csz, &cp, gone)) != LD_OK || *gone))
            break;
        if ((st = ld_metrics_feed(m, rp, cp, n, &e)) != LD_OK) {
            st = ld_error_set(c->err, st, "%s vs %s: line %llu / %llu: %s", c->res->ref.path,
                              c->res->cand.path, (unsigned long long)rv->line,
                              (unsigned long long)cv->line, e.msg);
            break;
        }
        for (uint64_t t = 0; pe->logits && t < k; t++) {
            ld_cmp_widen(rp, rv->data_dtype, t * V, V, c->row_r);
            ld_cmp_widen(cp, cv->data_dtype, t * V, V, c->row_c);
            logits_row(c, pe, V, done + t, rows);
        }
    }
    if (st != LD_OK || *gone) {
        ld_metrics_abort(m);
        return st;
    }
    pe->rows = pe->logits ? rows : 0;
    if ((st = ld_metrics_end(m, &pe->m, &e)) != LD_OK)
        return ld_error_set(c->err, st, "%s vs %s: %s", c->res->ref.path, c->res->cand.path,
                            e.msg);
    pe->have_grid = c->scratch.tokens > 0;
    return LD_OK;
}

/* Reads and measures a matched pair. rs, cs: the sides whose current records rv, cv are (NULL for
 * a parked copy). Every current record involved is settled (read to its end, checked, counted)
 * when it returns LD_OK without *gone. */
static ld_status measure_pair(ctx *c, const view *rv, side *rs, const view *cv, side *cs,
                              pair_eval *pe, side **gone)
{
    memset(pe, 0, sizeof *pe);
    *gone = NULL;
    ld_status st;
    bool shapes_ok = same_shape(rv, cv);
    if (!shapes_ok && (rv->reshape || cv->reshape) && rv->numel == cv->numel) {
        pe->reshaped = true;
        shapes_ok = true;
    }
    pe->shape_mismatch = !shapes_ok;
    if (shapes_ok)
        ld_policy_resolve(c->opt->policy, &rv->key, cv->dtype, &pe->tol);
    if (shapes_ok && rv->has_data && cv->has_data &&
        (st = measure_payloads(c, rv, rs && rs->cur.live ? rs : NULL, cv,
                               cs && cs->cur.live ? cs : NULL, pe, gone)) != LD_OK)
        return st;
    if (*gone)
        return LD_OK;
    /* What was not read (a shape mismatch, a stats-only partner) is read and checked now: a
     * record counts only once it is known to be complete. */
    side *sides[2] = {rs, cs};
    for (int i = 0; i < 2; i++) {
        bool lost = false;
        if (sides[i] && (st = settle(c, sides[i], &lost)) != LD_OK)
            return st;
        if (lost) {
            *gone = sides[i];
            return LD_OK;
        }
    }
    if (shapes_ok && !(rv->has_data && cv->has_data))
        ld_metrics_from_stats(&rv->stats, rv->head, rv->n_head, &cv->stats, cv->head, cv->n_head,
                              rv->numel, cv->dtype, &pe->tol, &pe->m);
    return LD_OK;
}

/* The noise-floor entry for key when a floor of the candidate's dtype was given, else NULL. */
static const ld_floor_entry *floor_entry(const ctx *c, ld_dtype cand, const ld_key *key,
                                         bool *have_dtype)
{
    for (size_t i = 0; i < c->opt->n_floors; i++)
        if (ld_floor_dtype(c->opt->floors[i]) == cand) {
            *have_dtype = true;
            return ld_floor_find(c->opt->floors[i], key);
        }
    return NULL;
}

/* Puts a measured pair into its row and judges it. */
static void commit_pair(ctx *c, size_t ri, const view *rv, const view *cv, pair_eval *pe)
{
    ld_row *row = &c->res->rows[ri];
    fill_side(row, rv, true);
    fill_side(row, cv, false);
    c->aux[ri].ref_seen = c->aux[ri].cand_seen = true;
    if (pe->shape_mismatch) {
        row->state = LD_ROW_SHAPE_MISMATCH;
        return;
    }
    row->reshaped = pe->reshaped;
    row->state = LD_ROW_COMPARED;
    row->tol = pe->tol;
    row->m = pe->m;
    if (pe->logits)
        logits_commit(c, rv->key.step, pe);
    row->fail_mask = ld_judge(&row->m, &row->tol);
    /* A calibrated noise floor for the candidate's dtype replaces the policy's thresholds; NaN/Inf
     * disagreement fails either way. */
    bool floor_dtype = false;
    const ld_floor_entry *fe = floor_entry(c, cv->dtype, &row->key, &floor_dtype);
    c->floor_missing += floor_dtype && !fe;
    if (fe && row->m.source == LD_SRC_FULL) {
        row->floor_rel_l2 = fe->rel_l2;
        row->floor_ratio = ld_floor_ratio(fe, &row->m);
        row->fail_mask &= LD_FAIL_NONFINITE;
        if (!ld_floor_pass(fe, &row->m, c->opt->floor_k, c->opt->floor_ulp_cap))
            row->fail_mask |= LD_FAIL_FLOOR;
        c->res->n_floor_judged++;
    }
    row->pass = row->fail_mask == 0;
    if (!row->pass && row->ref_index < c->first_fail_ref) {
        c->first_fail_ref = row->ref_index;
        /* Keep this pair's grid for the heat strip: swap buffers rather than copy. */
        ld_err_grid keep = c->res->first_grid;
        if (pe->have_grid) {
            c->res->first_grid = c->scratch;
            c->scratch = keep;
        } else {
            c->res->first_grid.tokens = c->res->first_grid.heads = 0;
        }
    }
}

/* A record of one side arrives: pair it with its waiting partner, or make it wait. */
static ld_status take(ctx *c, side *s, bool is_ref)
{
    const view *v = &s->cur;
    side *other = is_ref ? &c->cand : &c->ref;
    ptrdiff_t found = index_find(&c->idx, c->res->rows, &v->key);
    ld_status st;
    bool lost = false;
    if (found >= 0 && (is_ref ? c->aux[found].ref_seen : c->aux[found].cand_seen)) {
        /* a second record of a key: an input error, once the record proves complete */
        if ((st = settle(c, s, &lost)) != LD_OK || lost)
            return st;
        char kb[LD_TAG_NAME_MAX + 48];
        return ld_error_set(c->err, LD_E_INPUT, "%s: line %llu: key %s appears twice",
                            s->info->path, (unsigned long long)v->line,
                            ld_cmp_key_text(&v->key, kb, sizeof kb));
    }
    if (found >= 0 && c->aux[found].pending) { /* the partner waited for us */
        view *p = c->aux[found].pending;
        pair_eval pe;
        side *gone;
        st = is_ref ? measure_pair(c, v, s, p, NULL, &pe, &gone)
                    : measure_pair(c, p, NULL, v, s, &pe, &gone);
        if (st != LD_OK || gone) /* gone: this record never arrived; the partner waits on */
            return st;
        c->aux[found].pending = NULL;
        if (is_ref)
            commit_pair(c, (size_t)found, v, p, &pe);
        else
            commit_pair(c, (size_t)found, p, v, &pe);
        unpark(p);
        return LD_OK;
    }
    /* Wait for the partner only while the other stream can still bring it. */
    view *parked = NULL;
    st = other->done ? settle(c, s, &lost) : park(c, s, &parked, &lost);
    if (st != LD_OK || lost)
        return st;
    size_t ri;
    if (found < 0) {
        if ((st = new_row(c, &v->key, &ri)) != LD_OK) {
            unpark(parked);
            return st;
        }
    } else {
        ri = (size_t)found;
    }
    fill_side(&c->res->rows[ri], parked ? parked : v, is_ref);
    if (is_ref)
        c->aux[ri].ref_seen = true;
    else
        c->aux[ri].cand_seen = true;
    c->aux[ri].pending = parked;
    return LD_OK;
}

/* Execution order of two keys when both are in our tag table; 0 when it cannot tell. */
static int exec_order(const view *a, const view *b)
{
    if (a->tag_id == LD_TAG_UNKNOWN || b->tag_id == LD_TAG_UNKNOWN)
        return 0;
    return ld_key_cmp_exec(&a->key, &b->key);
}

static ld_status stream_pairs(ctx *c)
{
    ld_status st;
    if ((st = advance(c, &c->ref)) != LD_OK || (st = advance(c, &c->cand)) != LD_OK)
        return st;
    while (c->ref.have || c->cand.have) {
        if (c->ref.have && c->cand.have && key_eq(&c->ref.cur.key, &c->cand.cur.key)) {
            ptrdiff_t found = index_find(&c->idx, c->res->rows, &c->ref.cur.key);
            if (found >= 0) { /* a duplicate: let take() report it */
                if ((st = take(c, &c->ref, true)) != LD_OK)
                    return st;
                if ((st = take(c, &c->cand, false)) != LD_OK)
                    return st;
            } else { /* the common case: both streams at the same key, read in lockstep */
                pair_eval pe;
                side *gone;
                size_t ri;
                if ((st = measure_pair(c, &c->ref.cur, &c->ref, &c->cand.cur, &c->cand, &pe,
                                       &gone)) != LD_OK)
                    return st;
                if (gone) /* that stream ended inside the record: the other's record is alone */
                    continue;
                if ((st = new_row(c, &c->ref.cur.key, &ri)) != LD_OK)
                    return st;
                commit_pair(c, ri, &c->ref.cur, &c->cand.cur, &pe);
            }
            if ((st = advance(c, &c->ref)) != LD_OK || (st = advance(c, &c->cand)) != LD_OK)
                return st;
            continue;
        }
        int order = (c->ref.have && c->cand.have) ? exec_order(&c->ref.cur, &c->cand.cur) : 0;
        bool adv_ref = c->ref.have && (!c->cand.have || order <= 0);
        bool adv_cand = c->cand.have && (!c->ref.have || order >= 0);
        if (adv_ref) {
            if ((st = take(c, &c->ref, true)) != LD_OK || (st = advance(c, &c->ref)) != LD_OK)
                return st;
        }
        if (adv_cand) {
            if ((st = take(c, &c->cand, false)) != LD_OK || (st = advance(c, &c->cand)) != LD_OK)
                return st;
        }
    }
    /* Whoever still waits has no partner. */
    for (size_t i = 0; i < c->res->n_rows; i++) {
        unpark(c->aux[i].pending);
        c->aux[i].pending = NULL;
    }
    return LD_OK;
}

/* ---- header checks --------------------------------------------------------------------------- */

/* The model fields whose difference makes two runs incomparable (fingerprint and checkpoint
 * dtype differ legitimately and are reported instead). */
static const char *const config_fields[] = {
    "architecture",       "hidden_size",         "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim",           "intermediate_size", "vocab_size",
    "max_position_embeddings", "rms_norm_eps",   "rope_theta",        "tie_word_embeddings",
};

static void json_value_text(const cJSON *v, char *buf, size_t size)
{
    char *s = v ? cJSON_PrintUnformatted(v) : NULL;
    snprintf(buf, size, "%s", s ? s : "absent");
    if (s)
        cJSON_free(s);
}

/* Faults an input cannot show (docs/faults.md, "Blind spots"): said in every report, so that a
 * clean comparison of such an input is not read as proof that those ops are right. */
static ld_status blind_spots(ctx *c)
{
    const ld_stream_info *a = &c->res->ref;
    ld_status st;
    if (a->n_tokens == 1 &&
        (st = note(c, LD_NOTE_INFO, "blind_rope", "the prompt has one token: RoPE at position 0 is "
                   "the identity and the causal mask has nothing to hide at step 0, so RoPE and "
                   "mask faults can only show in decode steps (use a prompt of 2 tokens or more)"))
            != LD_OK)
        return st;
    if (a->decode_steps == 0 &&
        (st = note(c, LD_NOTE_INFO, "blind_kv_cache", "no decode steps: KV-cache append and decode "
                   "attention faults cannot show (use --decode 1 or more)")) != LD_OK)
        return st;
    cJSON *m = cJSON_Parse(a->model_json);
    const cJSON *hq = m ? cJSON_GetObjectItemCaseSensitive(m, "num_attention_heads") : NULL;
    const cJSON *hkv = m ? cJSON_GetObjectItemCaseSensitive(m, "num_key_value_heads") : NULL;
    st = LD_OK;
    if (cJSON_IsNumber(hq) && cJSON_IsNumber(hkv) &&
        (hkv->valuedouble == 1 || hq->valuedouble == hkv->valuedouble))
        st = note(c, LD_NOTE_INFO, "blind_gqa", "Hq = %g, Hkv = %g: every query head maps to its kv "
                  "head the same way under any mapping, so a GQA mapping fault cannot show",
                  hq->valuedouble, hkv->valuedouble);
    cJSON_Delete(m);
    return st;
}

static ld_status check_headers(ctx *c)
{
    ld_compare_result *r = c->res;
    ld_stream_info *a = &r->ref, *b = &r->cand;
    bool allow = c->opt->allow_input_mismatch;
    ld_status st;
    /* Prompt tokens. */
    size_t n = LD_MIN(a->n_tokens, b->n_tokens);
    size_t diff = n;
    for (size_t i = 0; i < n; i++) {
        if (a->tokens[i] != b->tokens[i]) {
            diff = i;
            break;
        }
    }
    if (diff < n || a->n_tokens != b->n_tokens) {
        char what[256];
        if (diff < n)
            snprintf(what, sizeof what, "prompt token %zu is %d in %s and %d in %s", diff,
                     (int)a->tokens[diff], a->path, (int)b->tokens[diff], b->path);
        else
            snprintf(what, sizeof what, "the prompt has %zu tokens in %s and %zu in %s",
                     a->n_tokens, a->path, b->n_tokens, b->path);
        if (!allow)
            return ld_error_set(c->err, LD_E_INPUT, "different inputs: %s (--allow-input-mismatch "
                                "compares anyway)", what);
        r->input_mismatch = true;
        if ((st = note(c, LD_NOTE_WARN, "input_mismatch", "inputs differ (allowed): %s", what)) !=
            LD_OK)
            return st;
    }
    /* Model configuration, field by field. */
    cJSON *ma = cJSON_Parse(a->model_json), *mb = cJSON_Parse(b->model_json);
    st = LD_OK;
    char unchecked[512] = "";
    for (size_t i = 0; i < LD_ARRAY_LEN(config_fields) && st == LD_OK; i++) {
        const cJSON *fa = ma ? cJSON_GetObjectItemCaseSensitive(ma, config_fields[i]) : NULL;
        const cJSON *fb = mb ? cJSON_GetObjectItemCaseSensitive(mb, config_fields[i]) : NULL;
        if (!fa || !fb) {
            if (fa || fb) {
                size_t used = strlen(unchecked);
                snprintf(unchecked + used, sizeof unchecked - used, "%s%s", used ? ", " : "",
                         config_fields[i]);
            }
            continue;
        }
        if (cJSON_Compare(fa, fb, true))
            continue;
        char va[64], vb[64];
        json_value_text(fa, va, sizeof va);
        json_value_text(fb, vb, sizeof vb);
        if (!allow) {
            st = ld_error_set(c->err, LD_E_INPUT, "different models: %s is %s in %s and %s in %s "
                              "(--allow-input-mismatch compares anyway)", config_fields[i], va,
                              a->path, vb, b->path);
        } else {
            r->input_mismatch = true;
            st = note(c, LD_NOTE_WARN, "config_mismatch", "model configs differ (allowed): %s is "
                      "%s in the reference and %s in the candidate", config_fields[i], va, vb);
        }
    }
    if (ma) {
        const cJSON *nl = cJSON_GetObjectItemCaseSensitive(ma, "num_hidden_layers");
        if (cJSON_IsNumber(nl) && nl->valuedouble >= 0 && nl->valuedouble <= 1e6)
            r->n_layers = (int)nl->valuedouble;
    }
    cJSON_Delete(ma);
    cJSON_Delete(mb);
    if (st != LD_OK)
        return st;
    if (unchecked[0] &&
        (st = note(c, LD_NOTE_INFO, "config_unchecked", "model config fields stated by one side "
                   "only, not checked: %s", unchecked)) != LD_OK)
        return st;
    /* Weights and faults: legitimate differences, stated prominently. */
    if (a->fingerprint[0] && b->fingerprint[0] && strcmp(a->fingerprint, b->fingerprint)) {
        r->fingerprint_differs = true;
        if ((st = note(c, LD_NOTE_WARN, "fingerprint", "weight fingerprints differ: %s "
                       "(reference) vs %s (candidate): the runs did not read the same weights",
                       a->fingerprint, b->fingerprint)) != LD_OK)
            return st;
    } else if (!a->fingerprint[0] || !b->fingerprint[0]) {
        if ((st = note(c, LD_NOTE_INFO, "fingerprint", "weight fingerprint not stated by the %s: "
                       "cannot tell whether both runs read the same weights",
                       !a->fingerprint[0] ? (b->fingerprint[0] ? "reference" : "either stream")
                                          : "candidate")) != LD_OK)
            return st;
    }
    bool faults_same = a->n_faults == b->n_faults;
    for (size_t i = 0; faults_same && i < a->n_faults; i++)
        faults_same = !strcmp(a->faults[i], b->faults[i]);
    if (!faults_same) {
        r->faults_differ = true;
        char fa[512] = "", fb[512] = "";
        for (size_t i = 0; i < a->n_faults; i++)
            snprintf(fa + strlen(fa), sizeof fa - strlen(fa), "%s%s", i ? " " : "", a->faults[i]);
        for (size_t i = 0; i < b->n_faults; i++)
            snprintf(fb + strlen(fb), sizeof fb - strlen(fb), "%s%s", i ? " " : "", b->faults[i]);
        if ((st = note(c, LD_NOTE_WARN, "faults", "injected faults differ: reference [%s], "
                       "candidate [%s]", fa, fb)) != LD_OK)
            return st;
    }
    if (a->decode_steps != b->decode_steps &&
        (st = note(c, LD_NOTE_WARN, "decode_steps", "decode steps differ: %d in the reference, "
                   "%d in the candidate", a->decode_steps, b->decode_steps)) != LD_OK)
        return st;
    return LD_OK;
}

/* ---- after the streams ----------------------------------------------------------------------- */

static int row_order(const void *pa, const void *pb)
{
    const ld_row *a = pa, *b = pb;
    if (a->ref_index != b->ref_index)
        return a->ref_index < b->ref_index ? -1 : 1;
    if (a->cand_index != b->cand_index)
        return a->cand_index < b->cand_index ? -1 : 1;
    return 0;
}

static bool allowed_missing(const ld_compare_options *o, const ld_key *k, bool end_record)
{
    char text[LD_TAG_NAME_MAX + 48];
    if (!end_record)
        ld_cmp_key_text(k, text, sizeof text);
    for (size_t i = 0; i < o->n_allow_missing; i++) {
        const char *g = o->allow_missing[i];
        if (end_record) {
            if (ld_glob_match(g, "end"))
                return true;
        } else if (strchr(g, '.') ? ld_glob_match(g, text) : ld_glob_match(g, k->tag)) {
            return true;
        }
    }
    return false;
}

/* Inputs' errors and amplification of every compared row. */
static ld_status op_context(ctx *c)
{
    ld_compare_result *r = c->res;
    size_t cap = 0;
    ld_key *in = NULL;
    for (size_t i = 0; i < r->n_rows; i++) {
        ld_row *row = &r->rows[i];
        if (row->state != LD_ROW_COMPARED)
            continue;
        size_t n = ld_tag_input_keys(&row->key, r->n_layers, in, cap);
        if (n > cap) {
            ld_key *ni = realloc(in, n * sizeof *ni);
            if (!ni) {
                free(in);
                return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
            }
            in = ni;
            cap = n;
            n = ld_tag_input_keys(&row->key, r->n_layers, in, cap);
        }
        double worst = -1;
        for (size_t j = 0; j < n; j++) {
            ptrdiff_t k = ld_compare_find(r, &in[j]);
            if (k < 0 || r->rows[k].state != LD_ROW_COMPARED)
                continue;
            double e = r->rows[k].m.rel_l2;
            if (row->worst_input < 0 || e > worst || (isnan(e) && !isnan(worst))) {
                worst = e;
                row->worst_input = k;
            }
        }
        if (row->worst_input < 0)
            continue;
        row->inputs_rel_l2 = worst;
        double e = row->m.rel_l2;
        if (worst == 0)
            row->amplification = e == 0 ? NAN : INFINITY;
        else
            row->amplification = e / worst;
    }
    free(in);
    return LD_OK;
}

static ld_status finish_result(ctx *c)
{
    ld_compare_result *r = c->res;
    ld_status st;
    /* Reference order first, then candidate-only keys in candidate order. */
    qsort(r->rows, r->n_rows, sizeof *r->rows, row_order);
    index_free(&c->idx);
    index_t *ix = calloc(1, sizeof *ix);
    if (!ix)
        return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
    r->index_ = ix;
    int max_layer = -1;
    for (size_t i = 0; i < r->n_rows; i++) {
        if (!index_put(ix, r->rows, i))
            return ld_error_set(c->err, LD_E_NOMEM, "out of memory for the key index");
        ld_row *row = &r->rows[i];
        if (row->key.layer > max_layer)
            max_layer = row->key.layer;
        /* A row that never met its partner (rows start out as COMPARED with no metrics). */
        if (row->m.source == LD_SRC_NONE && row->state == LD_ROW_COMPARED)
            row->state = row->ref_index == UINT64_MAX ? LD_ROW_MISSING_IN_REF
                                                      : LD_ROW_MISSING_IN_CAND;
        switch (row->state) {
        case LD_ROW_COMPARED:
            r->n_compared++;
            if (row->pass)
                r->n_pass++;
            else
                r->n_fail++;
            if (row->m.source == LD_SRC_STATS)
                r->n_stats_only++;
            if (!row->pass && r->first_div < 0)
                r->first_div = (ptrdiff_t)i;
            break;
        case LD_ROW_MISSING_IN_CAND: r->n_missing_in_cand++; break;
        case LD_ROW_MISSING_IN_REF: r->n_missing_in_ref++; break;
        case LD_ROW_SHAPE_MISMATCH: r->n_shape_mismatch++; break;
        }
        if (row->state != LD_ROW_COMPARED) {
            row->allowed = allowed_missing(c->opt, &row->key, false);
            if (row->allowed)
                r->n_allowed++;
            else
                r->incomplete = true;
        }
    }
    if (r->n_layers <= 0)
        r->n_layers = max_layer + 1;
    if (r->first_div < 0)
        ld_err_grid_free(&r->first_grid);
    r->divergence = r->n_fail > 0;
    /* Truncation and failed runs: the pseudo-key "end". */
    for (int s = 0; s < 2; s++) {
        ld_stream_info *in = s ? &r->cand : &r->ref;
        if ((in->truncated || (in->has_end && !in->end_ok)) && !allowed_missing(c->opt, NULL, true))
            r->incomplete = true;
    }
    if (r->ref.probes == 0 || r->cand.probes == 0) {
        r->empty = true;
        r->incomplete = true;
        const char *who = r->ref.probes == 0 ? (r->cand.probes == 0 ? "both streams" : "the "
                                                "reference stream") : "the candidate stream";
        if ((st = note(c, LD_NOTE_ERROR, "empty", "%s hold no probe record: nothing was "
                       "compared, which is never a pass", who)) != LD_OK)
            return st;
    }
    if ((st = op_context(c)) != LD_OK)
        return st;
    /* Argmax per step: the end records, else the last logits rows (set while comparing). */
    for (int s = 0; s < 2; s++) {
        const ld_stream_info *in = s ? &r->cand : &r->ref;
        for (size_t i = 0; i < in->n_end_tokens; i++) {
            ld_step_tokens *t = step_slot(c, (int)i);
            if (!t)
                break;
            if (s) {
                t->cand_token = in->end_tokens[i];
                t->have_cand = true;
            } else {
                t->ref_token = in->end_tokens[i];
                t->have_ref = true;
            }
        }
    }
    r->argmax_step = -1;
    for (size_t i = 0; i < r->n_steps; i++) {
        const ld_step_tokens *t = &r->steps[i];
        if (t->have_ref && t->have_cand && t->ref_token != t->cand_token) {
            r->argmax_step = (int)i;
            break;
        }
    }
    /* Decoded tokens: the inputs of the decode steps. */
    const ld_stream_info *a = &r->ref, *b = &r->cand;
    if (a->decoded && b->decoded) {
        size_t n = LD_MIN(a->n_decoded, b->n_decoded);
        for (size_t i = 0; i < n; i++) {
            if (a->decoded[i] == b->decoded[i])
                continue;
            if (!c->opt->allow_input_mismatch)
                return ld_error_set(c->err, LD_E_INPUT,
                                    "different inputs: decode step %zu was fed token %d in %s and "
                                    "%d in %s (run the candidate with --follow, or "
                                    "--allow-input-mismatch compares anyway)",
                                    i + 1, (int)a->decoded[i], a->path, (int)b->decoded[i],
                                    b->path);
            r->input_mismatch = true;
            if ((st = note(c, LD_NOTE_WARN, "decoded_mismatch", "decode step %zu was fed "
                           "different tokens (allowed): %d in the reference, %d in the candidate; "
                           "later steps compare different computations", i + 1,
                           (int)a->decoded[i], (int)b->decoded[i])) != LD_OK)
                return st;
            break;
        }
    }
    for (size_t i = 0; i < c->opt->n_floors; i++) {
        const ld_floor *fl = c->opt->floors[i];
        if ((st = note(c, LD_NOTE_INFO, "noise_floor", "%s candidates judged against the noise "
                       "floor %s: fail when the relative error exceeds %g x the floor and some "
                       "element is more than %llu ULP off; %zu probes judged this way",
                       ld_dtype_name(ld_floor_dtype(fl)), ld_floor_label(fl), c->opt->floor_k,
                       (unsigned long long)c->opt->floor_ulp_cap, r->n_floor_judged)) != LD_OK)
            return st;
    }
    if (c->floor_missing &&
        (st = note(c, LD_NOTE_WARN, "floor_missing", "%zu probes of a calibrated dtype have no "
                   "noise-floor entry (the floor was measured over fewer steps or other tags) and "
                   "were judged by the policy", c->floor_missing)) != LD_OK)
        return st;
    if (r->n_stats_only &&
        (st = note(c, LD_NOTE_WARN, "stats_only", "%zu of %zu probes were compared by their "
                   "stats and first %d values only (no payload on one side): their metrics are "
                   "estimates; write both runs with --payload full for exact ones",
                   r->n_stats_only, r->n_compared, LD_HEAD_COUNT)) != LD_OK)
        return st;
    if (a->dropped + b->dropped &&
        (st = note(c, LD_NOTE_INFO, "map_dropped", "the map dropped %llu reference and %llu "
                   "candidate records", (unsigned long long)a->dropped,
                   (unsigned long long)b->dropped)) != LD_OK)
        return st;
    return LD_OK;
}

ld_status ld_compare_run(const char *ref_path, const char *cand_path,
                         const ld_compare_options *opt, ld_compare_result **out, ld_error *err)
{
    *out = NULL;
    ld_compare_options defaults;
    if (!opt) {
        ld_compare_options_init(&defaults);
        opt = &defaults;
    }
    ctx c;
    memset(&c, 0, sizeof c);
    c.opt = opt;
    c.err = err;
    c.first_fail_ref = UINT64_MAX;
    c.res = calloc(1, sizeof *c.res);
    if (!c.res)
        return ld_error_set(err, LD_E_NOMEM, "out of memory");
    ld_compare_result *r = c.res;
    r->first_div = -1;
    r->culprit = -1;
    r->argmax_step = -1;
    r->fail_on = opt->fail_on;
    r->topk = opt->topk < 1 ? 1 : LD_MIN(opt->topk, 64);
    c.ref.name = "reference";
    c.cand.name = "candidate";
    c.ref.info = &r->ref;
    c.cand.info = &r->cand;
    ld_status st;
    if (!(r->policy_label = strdup(ld_policy_label(opt->policy)))) {
        st = ld_error_set(err, LD_E_NOMEM, "out of memory");
        goto done;
    }
    if ((st = open_side(&c, &c.ref, ref_path)) != LD_OK ||
        (st = open_side(&c, &c.cand, cand_path)) != LD_OK)
        goto done;
    if (r->ref.opened && r->cand.opened && (st = check_headers(&c)) != LD_OK)
        goto done;
    if (r->ref.opened && (st = blind_spots(&c)) != LD_OK)
        goto done;
    r->floor_k = opt->floor_k;
    r->floor_ulp_cap = opt->floor_ulp_cap;
    for (size_t i = 0; i < opt->n_floors && r->ref.opened; i++)
        if ((st = ld_floor_check_stream(opt->floors[i], &r->ref, err)) != LD_OK)
            goto done;
    if ((st = stream_pairs(&c)) != LD_OK)
        goto done;
    st = finish_result(&c);
done:
    for (size_t i = 0; i < r->n_rows && c.aux; i++)
        unpark(c.aux[i].pending);
    free(c.aux);
    index_free(&c.idx);
    ld_err_grid_free(&c.scratch);
    free(c.row_r);
    free(c.row_c);
    free(c.ref.chunk);
    free(c.cand.chunk);
    ld_reader_close(c.ref.rd);
    ld_reader_close(c.cand.rd);
    if (st != LD_OK) {
        ld_compare_result_destroy(r);
        return st;
    }
    *out = r;
    return LD_OK;
}

int ld_compare_exit_code(const ld_compare_result *r, unsigned fail_on)
{
    int code = 0;
    if (r->empty || ((fail_on & LD_FAIL_ON_INCOMPLETE) && r->incomplete) ||
        ((fail_on & LD_FAIL_ON_NODATA) && r->n_stats_only))
        code = 3;
    if (((fail_on & LD_FAIL_ON_DIVERGENCE) && r->divergence) ||
        ((fail_on & LD_FAIL_ON_ARGMAX) && r->argmax_step >= 0) ||
        ((fail_on & LD_FAIL_ON_REGRESSION) && r->regression))
        code = 1;
    if (((fail_on & LD_FAIL_ON_FINGERPRINT) && r->fingerprint_differs) ||
        ((fail_on & LD_FAIL_ON_FAULTS) && r->faults_differ))
        code = 2;
    return code;
}

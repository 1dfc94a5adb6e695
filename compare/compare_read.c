/* compare_read.c — one side of a comparison: opening its reader, moving to its next record,
 * reading a live payload, parking a record (copied whole) while it waits for its partner. Not the
 * pairing (compare_rows.c). */
#include <stdlib.h>
#include <string.h>

#include "compare_core.h"
#include "util.h"

ld_status ld_cmp_open_side(ctx *c, side *s, const char *path)
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
        return ld_cmp_note(c, LD_NOTE_ERROR, "no_header",
                           "%s stream %s has no complete header (%s)", s->name, path, e.msg);
    }
    if (st != LD_OK) {
        *c->err = e;
        return st;
    }
    const ld_header_info *h = ld_reader_header(s->rd);
    info->opened = true;
    info->implementation = strdup(h->implementation);
    info->backend_json = ld_cmp_dup_or_empty(h->backend_json);
    info->model_json = ld_cmp_dup_or_empty(h->model_json);
    info->input_json = ld_cmp_dup_or_empty(h->input_json);
    info->tool_json = ld_cmp_dup_or_empty(h->tool);
    info->created = ld_cmp_dup_or_empty(h->created);
    info->fingerprint = ld_cmp_dup_or_empty(h->fingerprint);
    info->feed_json = ld_cmp_dup_or_empty(h->feed_json);
    info->last_key = strdup("");
    info->backend = info->backend_json ? cJSON_Parse(info->backend_json) : NULL;
    info->model = info->model_json ? cJSON_Parse(info->model_json) : NULL;
    info->decode_steps = h->decode_steps;
    if (!info->implementation || !info->backend_json || !info->model_json || !info->input_json ||
        !info->tool_json || !info->created || !info->fingerprint || !info->last_key ||
        !info->feed_json)
        return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
    if (h->n_faults) {
        if (!(info->faults = calloc(h->n_faults, sizeof *info->faults)))
            return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
        for (size_t i = 0; i < h->n_faults; i++) {
            if (!(info->faults[i] = ld_cmp_dup_or_empty(h->faults[i])))
                return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
            info->n_faults = i + 1;
        }
    }
    return ld_cmp_copy_i32(h->tokens, h->n_tokens, &info->tokens, &info->n_tokens, c->err);
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
    return ld_cmp_note(c, LD_NOTE_ERROR, "truncated", "%s stream %s was cut short after %s (%s)",
                       s->name, s->info->path,
                       s->info->last_key[0] ? s->info->last_key : "its header", e->msg);
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
ld_status ld_cmp_settle(ctx *c, side *s, bool *gone)
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
ld_status ld_cmp_read_live(ctx *c, side *s, unsigned char *dst, size_t n, bool *gone)
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

/* Notes the first known-tag record that comes before an earlier one in execution order. */
static void note_order(side *s, const view *v)
{
    if (v->tag_id == LD_TAG_UNKNOWN)
        return;
    if (s->have_last && !s->out_of_order && ld_key_cmp_exec(&v->key, &s->last) < 0) {
        s->out_of_order = true;
        s->back_key = v->key;
        s->back_after = s->last;
        s->back_line = v->line;
    }
    if (!s->have_last || ld_key_cmp_exec(&v->key, &s->last) > 0)
        s->last = v->key;
    s->have_last = true;
}

/* Reads the next probe of a side into s->cur (through the map); s->have false at the end. The
 * record counts (probes, with_data) once it is settled: read whole, or its payload read to the
 * end. */
ld_status ld_cmp_advance(ctx *c, side *s)
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
            in->end_message = ld_cmp_dup_or_empty(end->message);
            if (!in->last_key || !in->end_message)
                return ld_error_set(c->err, LD_E_NOMEM, "out of memory");
            if ((st = ld_cmp_copy_i32(end->tokens, end->n_tokens, &in->end_tokens,
                                      &in->n_end_tokens, c->err)) != LD_OK ||
                (st = ld_cmp_copy_i32(end->decoded, end->n_decoded, &in->decoded, &in->n_decoded,
                                      c->err)) != LD_OK)
                return st;
            if (!end->ok)
                return ld_cmp_note(c, LD_NOTE_ERROR, "run_error",
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
        v->fed = p->fed;
        v->crc32 = p->crc32;
        v->data = p->data;
        v->data_bytes = p->data_bytes;
        v->live = p->streaming;
        v->src = p;
        note_order(s, v);
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

/* What a parked record holds: its copy and its payload. */
static size_t park_cost(const view *v)
{
    return sizeof *v + (v->has_data ? v->data_bytes : 0);
}

/* Copies a record so that it survives the reader's next call, reading a live payload whole
 * (memory then holds every record parked: streams in different orders cost what waits, up to
 * max_parked bytes). */
ld_status ld_cmp_park(ctx *c, side *s, view **out, bool *gone)
{
    const view *v = &s->cur;
    *out = NULL;
    *gone = false;
    size_t limit = c->opt->max_parked ? c->opt->max_parked : LD_CMP_MAX_PARKED_DEFAULT;
    if (park_cost(v) > limit - LD_MIN(limit, c->parked)) {
        char kb[LD_TAG_NAME_MAX + 48];
        return ld_error_set(c->err, LD_E_INPUT,
                            "%s: line %llu: %s cannot wait for its partner: records waiting for "
                            "theirs already hold %zu bytes and the limit is %zu (--max-parked): "
                            "the two streams come in very different orders, or with keys the "
                            "other lacks (foreign tag names need --map)",
                            s->info->path, (unsigned long long)v->line,
                            ld_cmp_key_text(&v->key, kb, sizeof kb), c->parked, limit);
    }
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
            ld_status st = ld_cmp_read_live(c, s, p->owned, v->data_bytes, gone);
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
        ld_status st = ld_cmp_settle(c, s, gone);
        if (st != LD_OK || *gone) {
            free(p);
            return st;
        }
    }
    p->crc32 = s->cur.crc32;
    c->parked += park_cost(p);
    *out = p;
    return LD_OK;
}

void ld_cmp_unpark(ctx *c, view *p)
{
    if (p) {
        c->parked -= LD_MIN(c->parked, park_cost(p));
        free(p->owned);
        free(p);
    }
}

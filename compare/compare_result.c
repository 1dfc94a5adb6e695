/* compare_result.c — what a comparison result owns: the key -> row index, notes, copied header
 * fields, and the destructor. How rows are filled is compare_rows.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare_core.h"
#include "util.h"

static uint64_t key_hash(const ld_key *k)
{
    uint64_t h = ld_fnv1a(LD_FNV_INIT, &k->step, sizeof k->step);
    h = ld_fnv1a(h, &k->layer, sizeof k->layer);
    return ld_fnv1a(h, k->tag, strlen(k->tag));
}

bool ld_cmp_key_eq(const ld_key *a, const ld_key *b)
{
    return a->step == b->step && a->layer == b->layer && !strcmp(a->tag, b->tag);
}

ptrdiff_t ld_cmp_index_find(const index_t *ix, const ld_row *rows, const ld_key *k)
{
    if (!ix->cap)
        return -1;
    size_t mask = ix->cap - 1;
    for (size_t i = (size_t)key_hash(k) & mask;; i = (i + 1) & mask) {
        size_t s = ix->slot[i];
        if (!s)
            return -1;
        if (ld_cmp_key_eq(&rows[s - 1].key, k))
            return (ptrdiff_t)(s - 1);
    }
}

bool ld_cmp_index_put(index_t *ix, const ld_row *rows, size_t row)
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

void ld_cmp_index_free(index_t *ix)
{
    free(ix->slot);
    memset(ix, 0, sizeof *ix);
}

ptrdiff_t ld_compare_find(const ld_compare_result *r, const ld_key *key)
{
    return r->index_ ? ld_cmp_index_find(r->index_, r->rows, key) : -1;
}

/* ---- result ownership ------------------------------------------------------------------------ */

static void stream_info_free(ld_stream_info *s)
{
    free(s->path);
    free(s->implementation);
    free(s->backend_json);
    free(s->model_json);
    cJSON_Delete(s->backend);
    cJSON_Delete(s->model);
    free(s->input_json);
    free(s->tool_json);
    free(s->created);
    free(s->fingerprint);
    free(s->feed_json);
    for (size_t i = 0; i < s->n_faults; i++)
        free(s->faults[i]);
    free(s->faults);
    free(s->tokens);
    free(s->end_message);
    free(s->last_key);
    free(s->end_tokens);
    free(s->decoded);
}

/* Everything but a baseline check: that belongs to the gate above (baseline.c), whose
 * ld_compare_result_destroy frees it and then calls this. */
void ld_cmp_result_free(ld_compare_result *r)
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
    if (r->index_) {
        ld_cmp_index_free(r->index_);
        free(r->index_);
    }
    free(r);
}

char *ld_cmp_dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

ld_status ld_cmp_note(ctx *c, ld_note_level level, const char *code, const char *fmt, ...)
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

ld_status ld_cmp_copy_i32(const int32_t *src, size_t n, int32_t **dst, size_t *dn, ld_error *err)
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

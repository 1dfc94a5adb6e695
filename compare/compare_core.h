/* compare_core.h — what the files of the core comparison share (private to compare/): the record
 * views, the two sides, the run's context and the functions one file offers another. Files:
 * compare_result.c (index, notes, ownership) <- compare_read.c (one side) <- compare_rows.c
 * (pairs) and compare_headers.c <- compare.c (ld_compare_run). Not for the reports. */
#ifndef LD_COMPARE_CORE_H
#define LD_COMPARE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compare_internal.h"

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
    bool fed;            /* teacher forcing: replaced by the feed's tensor after this probe */
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
    /* Execution order: the latest known-tag key read, and the first record that went back before
     * it (the rows are then put in execution order: compare.c). */
    bool have_last;
    ld_key last;
    bool out_of_order;
    ld_key back_key, back_after;
    uint64_t back_line;
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
    ld_key first_fail_key;     /* its key, whose error grid first_grid holds */
    size_t floor_missing;      /* compared rows of a floor's dtype the floor has no entry for */
    size_t parked;             /* bytes held by parked records (ld_cmp_park_cost) */
    float *row_r, *row_c;      /* logits rows for top-k */
    size_t row_cap;
    ld_error *err;
} ctx;

/* ---- key index, notes, result ownership (compare_result.c) ---- */
bool ld_cmp_key_eq(const ld_key *a, const ld_key *b);
ptrdiff_t ld_cmp_index_find(const index_t *ix, const ld_row *rows, const ld_key *k);
bool ld_cmp_index_put(index_t *ix, const ld_row *rows, size_t row);
void ld_cmp_index_free(index_t *ix);
/* strdup of s, "" for NULL. */
char *ld_cmp_dup_or_empty(const char *s);
/* Adds a note to the result (its text formatted); LD_E_NOMEM when it cannot. */
ld_status ld_cmp_note(ctx *c, ld_note_level level, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Copies n tokens into a new array (*dst NULL and *dn 0 when there are none). */
ld_status ld_cmp_copy_i32(const int32_t *src, size_t n, int32_t **dst, size_t *dn, ld_error *err);

/* ---- one side's records (compare_read.c) ---- */
ld_status ld_cmp_open_side(ctx *c, side *s, const char *path);
ld_status ld_cmp_settle(ctx *c, side *s, bool *gone);
ld_status ld_cmp_read_live(ctx *c, side *s, unsigned char *dst, size_t n, bool *gone);
ld_status ld_cmp_advance(ctx *c, side *s);
ld_status ld_cmp_park(ctx *c, side *s, view **out, bool *gone);
/* Frees a parked record (NULL: nothing) and gives its bytes back to c->parked. */
void ld_cmp_unpark(ctx *c, view *p);

/* ---- pairing into rows (compare_rows.c) ---- */
ld_step_tokens *ld_cmp_step_slot(ctx *c, int step);
ld_status ld_cmp_stream_pairs(ctx *c);

/* ---- header checks (compare_headers.c) ---- */
ld_status ld_cmp_blind_spots(ctx *c);
ld_status ld_cmp_check_headers(ctx *c);

#endif

/* reader_internal.h — what the files of the probe reader share (private to probes/): the reader
 * itself, the validation context of a line, and the functions one file offers another. The public
 * API is layerdiff/probes.h; nothing here is installed. Files, in the order a record flows:
 * reader_input.c (lines, sticky errors) -> reader_fields.c (typed field access) ->
 * reader_header.c, reader_probe.c (records) -> reader_stream.c (stream_data payloads) -> reader.c
 * (open, next, close). */
#ifndef LD_PROBES_READER_INTERNAL_H
#define LD_PROBES_READER_INTERNAL_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "codec.h"
#include "json.h"
#include "keyfilter.h"
#include "layerdiff/probes.h"
#include "record.h"
#include "util.h"

#define READ_CHUNK ((size_t)1 << 20)
/* stream_data: the staging buffer of decoded base64 (what the reader holds of a streaming payload,
 * besides its read buffer). */
#define STAGE ((size_t)64 << 10)
#define JSON_SAFE_INT ((int64_t)1 << 53) /* integers every JSON reader holds exactly */

/* A set of probe keys (keys.c), for ld_reader_options.unique_keys: open addressing over
 * (step, layer, tag), the tags kept in one arena. */
typedef struct ld_keyset {
    struct ld_keyset_slot *slots; /* [cap], cap a power of two, at most half full */
    size_t cap, count;
    char *arena;                  /* the tags, each ended by '\0' */
    size_t arena_len, arena_cap;
} ld_keyset;

/* Adds the key: 0 when new, 1 when already there (*first_line: the line it was added with), -1
 * when out of memory. */
int ld_keyset_add(ld_keyset *s, int step, int layer, const char *tag, uint64_t line,
                  uint64_t *first_line);
void ld_keyset_free(ld_keyset *s);

typedef enum line_kind { LINE_OK, LINE_EOF, LINE_PARTIAL, LINE_ERROR } line_kind;

struct ld_reader {
    char *path;
    gzFile gz;                 /* NULL for a memory source */
    const unsigned char *mem;  /* [mem_len], not owned */
    size_t mem_len, mem_pos;
    bool gz_cut;               /* the gzip stream ended before its trailer */
    ld_reader_options opt;
    locale_t c_locale;

    char *buf;                 /* [cap]: unread input is buf[start..end) */
    size_t cap, start, end, scanned;
    size_t line_ws;            /* leading whitespace of the last line read, dropped (not kept) */
    bool eof;
    uint64_t line;             /* number of the last line returned */
    uint64_t bytes;

    bool ended;
    ld_status sticky;          /* after an error every call returns it again */
    ld_error sticky_err;

    ld_json_doc doc;
    ld_header_info header;
    char *backend_json, *model_json, *input_json, *tool_json, *feed_json, *fingerprint, *created;
    int32_t *tokens;
    char *prompt_text;         /* header.input.text, NULL when absent */
    char **faults;             /* n_faults_cap entries, NULL where none was copied (yet) */
    size_t n_faults_cap;
    char *filter[3];           /* header.filter's tags, layers, steps ("" when absent) */
    ld_keyfilter filter_keys;  /* the same, parsed: the keys the stream may hold */

    ld_end_info end_info;
    char *end_message, *end_last_key;
    int32_t *end_tokens, *end_decoded;

    ld_probe probe;
    uint64_t n_probes;
    ld_keyset keys;            /* opt.unique_keys: every key read so far */
    char last_key[LD_TAG_NAME_MAX + 32];
    unsigned char *raw, *inflated, *unshuffled; /* payload work buffers, reused */
    size_t raw_cap, inflated_cap, unshuffled_cap;
    bool current;              /* probe holds the record ld_reader_next returned last */
    size_t whole_pos;          /* ld_reader_read_data's position in a payload decoded whole */

    /* stream_data: the current probe's line, read piece by piece around its payload. */
    struct pstream {
        bool active;           /* the current probe streams (its line is being read) */
        bool finished;         /* its line was read to the end and every check passed */
        char *pfx;             /* [pfx_len] the line up to and including b64's opening quote */
        size_t pfx_len, pfx_cap;
        char *sfx;             /* [sfx_len] the line after b64's closing quote, without '\n' */
        size_t sfx_len, sfx_cap;
        char *syn;             /* [syn_cap] the record without its payload characters, to parse */
        size_t syn_cap;
        uint64_t line_len;     /* bytes of the line consumed so far */
        ld_b64_scan scan;
        unsigned char *stage;  /* [STAGE] decoded base64 not used yet: [stage_pos, stage_len) */
        size_t stage_pos, stage_len;
        size_t expected;       /* payload bytes: numel * size(data_dtype) */
        size_t handed;         /* payload bytes handed out (or skipped) so far */
        uint32_t crc;          /* crc32 of those */
        unsigned char head[LD_HEAD_COUNT * 4]; /* the first elements, for the head check */
        ld_tally tally;        /* of the elements handed out, for the stats check */
        unsigned char carry[4]; /* the bytes of an element split between two pieces */
        size_t carry_len;
        ld_zstream z;          /* zlib encodings */
        bool planes_ready;     /* shuffle: the byte planes are all in r->inflated, checked */
        bool line_checked;     /* the line's end was reached and its checks passed */
        unsigned char *discard; /* [STAGE] where skipped payload bytes go */
    } ps;
};

/* Validation failures of the current line: "PATH:LINE: <context>: <what>". */
typedef struct vctx {
    ld_reader *r;
    ld_error *err;
    const char *context; /* "header", "end record", or "probe S0.L3.q_norm" */
    char key_context[LD_TAG_NAME_MAX + 48];
} vctx;

/* How much of a probe record parse_probe sees and checks. */
typedef enum probe_mode {
    PROBE_WHOLE,    /* the whole line: payload decoded (decode_data) into the reader's buffers */
    PROBE_PREFIX,   /* the line up to data.b64's opening quote, closed by '"}}': b64 is empty and
                       crc32 may come later; nothing decoded */
    PROBE_STREAMED  /* the whole line without the payload's characters: fields only; the payload
                       was checked as it streamed */
} probe_mode;

/* ---- input, errors (reader_input.c) ---- */
/* Records the error: every later call returns it again, and *err (when given) gets it. */
ld_status ld_rd_stick(ld_reader *r, ld_error *err, ld_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A validation failure of the current line (vctx), LD_E_INPUT. */
ld_status ld_rd_bad(vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ld_rd_last_key_text(const ld_reader *r);
long long ld_rd_source_read(ld_reader *r, size_t want, ld_error *err);
size_t ld_rd_quantum(const ld_reader *r);
line_kind ld_rd_read_line(ld_reader *r, char **line, size_t *len, ld_error *err);

/* ---- field access (reader_fields.c) ---- */
const ld_json_node *ld_rd_field(vctx *v, const ld_json_node *obj, const char *name, int type,
                                bool required, ld_status *st);
ld_status ld_rd_only_fields(vctx *v, const ld_json_node *obj, const char *where,
                            const char *const *allowed);
bool ld_rd_get_int(vctx *v, const ld_json_node *obj, const char *name, int64_t min, int64_t max,
                   bool required, bool *present, int64_t *out, ld_status *st);
bool ld_rd_get_text(vctx *v, const ld_json_node *obj, const char *name, char *out, size_t size,
                    ld_status *st);
bool ld_rd_text_is(const ld_json_node *n, const char *s);
bool ld_rd_get_value(vctx *v, const ld_json_node *n, const char *what, double *out, ld_status *st);
char *ld_rd_dup_compact(ld_reader *r, const ld_json_node *n);
bool ld_rd_get_tokens(vctx *v, const ld_json_node *obj, const char *name, int64_t min,
                      int32_t **out, size_t *n_out, ld_status *st);

/* ---- header and end records (reader_header.c) ---- */
ld_status ld_rd_parse_header(ld_reader *r, const ld_json_node *root, ld_error *err);
ld_status ld_rd_parse_end(ld_reader *r, const ld_json_node *root, ld_error *err);

/* ---- probe records read whole (reader_probe.c) ---- */
bool ld_rd_grow(void *slot, size_t *cap, size_t need);
void ld_rd_name_probe(vctx *v, const ld_probe *p);
ld_status ld_rd_check_b64_sizes(vctx *v, const ld_probe *p, size_t len, size_t decoded,
                                size_t expected);
ld_status ld_rd_check_crc_head(vctx *v, const ld_probe *p, uint32_t crc, const void *first);
ld_status ld_rd_parse_probe(ld_reader *r, const ld_json_node *root, ld_probe *p, probe_mode mode,
                            ld_error *err);

/* ---- streamed payloads (reader_stream.c) ---- */
ld_status ld_rd_finish_line(ld_reader *r, ld_error *err);
void ld_rd_set_last_key(ld_reader *r);
void ld_rd_stream_done(ld_reader *r);
ld_status ld_rd_stream_start(ld_reader *r, bool *streamed, ld_error *err);

#endif

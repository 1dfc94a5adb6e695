/* layerdiff/probes.h — the probe library: write and read layerdiff probe records (JSON-lines,
 * format version 1; docs/probes.md, schemas/probe.schema.json).
 *
 * Writer: an engine opens a sink, asks ld_sink_wants() before copying anything, and emits host
 * tensors (or precomputed stats from a device). Reader: streams records one at a time with memory
 * bounded by the largest record, or (stream_data) hands payloads out in pieces in about 1 MiB
 * whatever the record. Neither knows any model math. Nothing here prints or exits; every
 * fallible call returns an ld_status and fills an ld_error. A sink or reader is not thread-safe:
 * use one per thread, or serialize calls. Pointers returned by the library are owned by it unless
 * a comment says otherwise. */
#ifndef LAYERDIFF_PROBES_H
#define LAYERDIFF_PROBES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "layerdiff/dtype.h"
#include "layerdiff/error.h"
#include "layerdiff/tags.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LD_PROBE_FORMAT "layerdiff-probes"
#define LD_PROBE_VERSION 1
#define LD_HEAD_COUNT 16 /* values kept in a record's "head" */
#define LD_MAX_NDIM 4

/* ---- keys ------------------------------------------------------------------------------------ */

/* A probe's identity: (step, layer, tag). layer is LD_NO_LAYER for model-level tags. */
typedef struct ld_key {
    int step;
    int layer;
    char tag[LD_TAG_NAME_MAX + 1];
} ld_key;

/* Parses "S2.L3.q_norm", "L3.q_norm" (step 0), "S1.logits", "logits". */
ld_status ld_key_parse(const char *text, ld_key *out, ld_error *err);
/* Writes "S2.L3.q_norm" or "S0.logits" into buf (always NUL-terminated); returns buf. */
char *ld_key_format(const ld_key *key, char *buf, size_t size);
/* Total order used for sorting keys of our tag table: step, then execution order within a step. */
int ld_key_cmp_exec(const ld_key *a, const ld_key *b);

/* ---- statistics -------------------------------------------------------------------------------- */

/* Computed in double over all elements. min/max/mean/std/l2/absmax are over the finite elements
 * (all NaN when there are none); nan and inf count the non-finite ones. std is the population
 * standard deviation. */
typedef struct ld_stats {
    double min, max, mean, std, l2, absmax;
    uint64_t nan, inf;
} ld_stats;

void ld_stats_compute(const void *data, ld_dtype dtype, size_t n, ld_stats *out);

/* ---- writer ---------------------------------------------------------------------------------- */

typedef enum ld_payload { LD_PAYLOAD_STATS = 0, LD_PAYLOAD_FULL = 1 } ld_payload;

typedef enum ld_encoding {
    LD_ENC_BASE64 = 0,              /* "base64" */
    LD_ENC_ZLIB_BASE64 = 1,         /* "zlib+base64" */
    LD_ENC_SHUFFLE_ZLIB_BASE64 = 2  /* "shuffle+zlib+base64": byte planes, then zlib */
} ld_encoding;

const char *ld_encoding_name(ld_encoding e);
bool ld_encoding_parse(const char *s, ld_encoding *out);

/* What a sink writes and which keys it wants. Strings are copied by ld_sink_open*. */
typedef struct ld_sink_config {
    ld_payload payload;   /* default LD_PAYLOAD_STATS */
    ld_encoding encoding; /* used with LD_PAYLOAD_FULL; default: see ld_sink_config_init */
    int zlib_level;       /* 1..9, default 1 */
    const char *tags;     /* comma-separated globs ("q_*,logits"); NULL or "" = every tag */
    const char *layers;   /* "3", "0-5,10"; NULL or "" = every layer. Model-level tags always pass. */
    const char *steps;    /* "0", "1-3"; NULL or "" = every step */
} ld_sink_config;

/* Fills defaults: stats payload, base64 encoding (the fastest: f32 activations barely compress;
 * see docs/probes.md for the measurements), zlib level 1 for the zlib encodings, no filters. */
void ld_sink_config_init(ld_sink_config *cfg);
/* Overrides fields from LAYERDIFF_PROBE_TAGS, LAYERDIFF_PROBE_LAYERS, LAYERDIFF_PROBE_STEPS,
 * LAYERDIFF_PROBE_PAYLOAD ("stats" | "full") and LAYERDIFF_PROBE_ENCODING. String fields then
 * point into the environment. Bad values fail with LD_E_USAGE naming the variable. */
ld_status ld_sink_config_from_env(ld_sink_config *cfg, ld_error *err);

/* What the header record says about the run. JSON texts must be objects; NULL means {}. */
typedef struct ld_run_info {
    const char *implementation;        /* "reference", "cuda", "my-engine" */
    const char *backend_json;          /* device, compute dtype, accumulation, ... */
    const char *model_json;            /* architecture, config fields, fingerprint, ... */
    const int32_t *tokens;             /* prompt ids */
    size_t n_tokens;
    int decode_steps;
    const char *const *faults;         /* injected faults, as given on the command line */
    size_t n_faults;
    const char *feed_json;             /* teacher forcing: the header's "feed" object (the
                                          reference stream fed in and its filters); NULL: none */
    const char *prompt_text;           /* input.text: the prompt as the user wrote it, when it was
                                          text (tokens are its ids); NULL: none */
    size_t prompt_text_len;
} ld_run_info;

/* How the run ended, for the end record. The writer adds the probe count and the last key. */
typedef struct ld_run_end {
    bool ok;
    const char *message;      /* on error: what went wrong; NULL otherwise */
    const int32_t *tokens;    /* the argmax token of every step (step 0 = prefill; -1: no finite
                                 logit), may be NULL */
    size_t n_tokens;
    const int32_t *decoded;   /* the token fed to each decode step 1..N, may be NULL */
    size_t n_decoded;
} ld_run_end;

typedef struct ld_sink ld_sink;

/* Creates (truncates) path and writes the header record. A path ending in ".gz" is refused: the
 * writer must stay crash-safe line by line, so compress finished files afterwards. */
ld_status ld_sink_open(ld_sink **out, const char *path, const ld_sink_config *cfg,
                       const ld_run_info *run, ld_error *err);
/* Writes to an open file descriptor, which the sink does not close. */
ld_status ld_sink_open_fd(ld_sink **out, int fd, const ld_sink_config *cfg,
                          const ld_run_info *run, ld_error *err);
/* Opens LAYERDIFF_PROBES with the configuration of ld_sink_config_from_env. When the variable
 * is unset or empty, *out is NULL and the result is LD_OK: probing is off. */
ld_status ld_sink_open_env(ld_sink **out, const ld_run_info *run, ld_error *err);

/* Cheap, before any work: would a probe with this key be written? NULL sink: false. */
bool ld_sink_wants(const ld_sink *s, int step, int layer, const char *tag);
/* Teacher forcing: the record of the next emit call carries "fed":true (the engine replaces this
 * tensor by the reference's after probing it). The mark is used up by that call, written or not. */
void ld_sink_mark_fed(ld_sink *s);
/* Whether wanted probes carry their data (LD_PAYLOAD_FULL). NULL sink: false. */
bool ld_sink_wants_data(const ld_sink *s);

/* Emits a host tensor: stats and head are computed here, data written when the payload is full.
 * Shape is logical, row-major, ndim <= LD_MAX_NDIM; its product must fit the data. A key the sink
 * does not want is skipped (LD_OK). After an I/O error the sink refuses further writes. */
ld_status ld_sink_emit(ld_sink *s, int step, int layer, const char *tag, int64_t pos0,
                       ld_dtype dtype, const int64_t *shape, int ndim, const void *data,
                       ld_error *err);

/* Emits with stats and head computed elsewhere (on a device). data may be NULL (stats only even
 * when the payload is full); head holds min(LD_HEAD_COUNT, numel) values widened to double. */
ld_status ld_sink_emit_precomputed(ld_sink *s, int step, int layer, const char *tag, int64_t pos0,
                                   ld_dtype dtype, const int64_t *shape, int ndim,
                                   const ld_stats *stats, const double *head, const void *data,
                                   ld_error *err);

/* The key of the last probe written, "" before the first. */
const char *ld_sink_last_key(const ld_sink *s);
uint64_t ld_sink_probe_count(const ld_sink *s);

/* For a handler of a fatal signal (SIGBUS from a checkpoint truncated under the run): writes an
 * error end record naming the last key written, with message, in one write(), and nothing else.
 * Async-signal-safe: it neither allocates nor formats (the record up to its message is kept
 * current as records are written); the message is cut at 2 KiB and its control and non-ASCII
 * bytes become '?'. The process must exit afterwards without using the sink again. Does nothing
 * for a NULL or failed sink. */
void ld_sink_emergency_end(ld_sink *s, const char *message);

/* Writes the end record, closes and frees. NULL s is accepted (LD_OK). end may be NULL (status ok,
 * no tokens). The sink is freed even when writing fails. */
ld_status ld_sink_close(ld_sink *s, const ld_run_end *end, ld_error *err);

/* ---- reader ---------------------------------------------------------------------------------- */

typedef struct ld_reader_options {
    size_t max_line;   /* longest line accepted, bytes; default 1 GiB */
    bool decode_data;  /* decode and verify payloads (base64, zlib, crc); default true */
    bool stream_data;  /* hand payloads out piece by piece (ld_reader_read_data) instead of whole:
                          the reader then holds a few hundred KiB whatever the record's size
                          (shuffle+zlib+base64 payloads excepted: see ld_reader_read_data); default
                          false */
    bool unique_keys;  /* refuse a probe whose key (step, layer, tag) came before: "PATH:LINE:
                          probe K: appears twice (first on line N)". Holds every key read, some 40
                          bytes a probe; default false (compare finds duplicates itself) */
} ld_reader_options;

void ld_reader_options_init(ld_reader_options *opt);

/* The header record. Strings and arrays are owned by the reader. */
typedef struct ld_header_info {
    int version;
    char implementation[256];
    const char *backend_json;  /* compact JSON of "backend" ("{}" when absent) */
    const char *model_json;    /* compact JSON of "model" */
    const char *input_json;    /* compact JSON of "input" */
    const char *fingerprint;   /* model.fingerprint, "" when absent */
    const int32_t *tokens;     /* input.tokens */
    size_t n_tokens;
    int decode_steps;          /* input.decode_steps */
    const char *const *faults;
    size_t n_faults;
    const char *created;
    const char *tool;          /* compact JSON of "tool" */
    const char *filter_tags;   /* "filter": the keys the writer was asked for ("" when absent: */
    const char *filter_layers; /* every key); a probe outside them is refused by the reader */
    const char *filter_steps;
    const char *feed_json;     /* compact JSON of "feed" (a teacher-forced run), "" when absent */
    const char *prompt_text;   /* input.text (NUL-terminated; prompt_text_len bytes), NULL when
                                  absent: the prompt was given as ids */
    size_t prompt_text_len;
} ld_header_info;

/* One probe record. Valid until the next ld_reader_next() or ld_reader_close(). */
typedef struct ld_probe {
    uint64_t index;
    int step;
    int layer;                  /* LD_NO_LAYER for model-level tags */
    char tag[LD_TAG_NAME_MAX + 1];
    ld_tag tag_id;              /* LD_TAG_UNKNOWN for custom or foreign tags */
    int64_t pos0;
    ld_dtype dtype;
    int ndim;
    int64_t shape[LD_MAX_NDIM];
    uint64_t numel;
    ld_stats stats;
    double head[LD_HEAD_COUNT];
    int n_head;
    bool has_data;
    ld_encoding encoding;
    ld_dtype data_dtype;
    uint32_t crc32;
    const void *data;           /* decoded raw little-endian bytes, numel * size(data_dtype);
                                   NULL when streaming */
    size_t data_bytes;          /* numel * size(data_dtype) when the payload is decoded or streamed */
    uint64_t line;              /* 1-based line number of the record */
    bool streaming;             /* stream_data: the payload waits in the input, to be read with
                                   ld_reader_read_data (crc32 is known only once it is read) */
    bool fed;                   /* "fed": after this probe the run replaced the tensor by the
                                   feed's (teacher forcing); false in streams without the flag */
} ld_probe;

/* How the stream ended. */
typedef struct ld_end_info {
    bool ok;
    const char *message;       /* "" when ok */
    uint64_t probes;
    const int32_t *tokens;
    size_t n_tokens;
    const int32_t *decoded;
    size_t n_decoded;
    const char *last_key;      /* as written by the producer, "" when absent */
} ld_end_info;

typedef struct ld_reader ld_reader;

/* Opens path (plain or gzip-compressed, detected from the content) and reads the header record.
 * opt may be NULL for defaults. */
ld_status ld_reader_open(ld_reader **out, const char *path, const ld_reader_options *opt,
                         ld_error *err);
/* Reads records from a memory buffer of plain (not gzip) JSON lines, which must outlive the
 * reader; name is used in messages in place of a path. For tests, fuzzing and embedding. */
ld_status ld_reader_open_mem(ld_reader **out, const char *name, const void *data, size_t len,
                             const ld_reader_options *opt, ld_error *err);
const ld_header_info *ld_reader_header(const ld_reader *r);
/* Whether the stream's header filter admits a key: false means the stream never holds it. */
bool ld_reader_wants(const ld_reader *r, int step, int layer, const char *tag);

/* Reads the next record. On a probe: LD_OK and *probe set. On the end record: LD_OK and *probe
 * NULL; ld_reader_end() then describes it, and further calls keep returning NULL. A stream cut
 * short (last line incomplete, or no end record): LD_E_TRUNCATED, the message naming the last
 * complete key. A malformed record: LD_E_INPUT with the line number.
 * With stream_data, a probe record laid out as the writer writes it (compact, data last, its b64
 * within the first 64 KiB of the line and followed by crc32 at most) comes back with data NULL
 * and streaming true: read its payload with ld_reader_read_data. Other records (other field
 * orders, foreign writers, custom tags without a layer) are read whole as without stream_data. A payload left unread is read and checked here first, so its
 * errors show here. */
ld_status ld_reader_next(ld_reader *r, const ld_probe **probe, ld_error *err);
const ld_end_info *ld_reader_end(const ld_reader *r);

/* The current probe's payload, in order: copies its next min(max_bytes, rest) decoded raw bytes
 * into buf (*got of them; fewer only at the end; 0 once it was all read). Works on any probe with
 * data when the reader decodes data; with stream_data, on a streaming probe it decodes straight
 * from the input, so memory stays bounded by a small buffer whatever the payload's size.
 * Every check of a whole read still happens, with the same status and message: the record's
 * fields after the payload, base64 and zlib validity and sizes, then crc32 and the head against
 * the data. Those that need the whole payload (crc32, the head, the decoded size) are made before
 * the call that hands out the last bytes returns: only a read that reaches the end with LD_OK
 * vouches for the bytes, and after an error (*got is then 0) whatever this probe handed out must
 * be thrown away. A stream cut inside the payload is LD_E_TRUNCATED naming the last complete
 * probe (not this one). shuffle+zlib+base64 cannot be produced in order without every byte plane,
 * so such a payload is inflated whole into the reader (its decoded size) on the first call, and
 * handed out from there. Errors are sticky, as for ld_reader_next. */
ld_status ld_reader_read_data(ld_reader *r, void *buf, size_t max_bytes, size_t *got,
                              ld_error *err);
/* Reads and checks the rest of the current probe's payload without handing it out (what
 * ld_reader_next does first when a payload was left unread): LD_OK when the record is complete
 * and valid. */
ld_status ld_reader_skip_data(ld_reader *r, ld_error *err);

/* Key of the last complete probe read ("" before the first); with stream_data a streaming probe
 * counts once its payload was read to the end. */
const char *ld_reader_last_key(const ld_reader *r);
const char *ld_reader_path(const ld_reader *r);
/* Bytes of input consumed so far (uncompressed). */
uint64_t ld_reader_bytes(const ld_reader *r);
void ld_reader_close(ld_reader *r);

/* Widens a probe's data to f32 into out[numel]. LD_E_INPUT when the probe carries no data. */
ld_status ld_probe_to_f32(const ld_probe *p, float *out, ld_error *err);

/* ---- feed: reference tensors by key (teacher forcing) --------------------------------------- */

/* A reader of a probe stream with payloads that serves its tensors by key, so that an engine can
 * replace its own tensor by the reference's (docs/probes.md, "Feeding reference tensors"). It
 * reads the stream forward with stream_data: memory stays about 1 MiB whatever the stream's size.
 * Keys are best asked for in the stream's order (execution order); asking for a key before the
 * last one served reads the stream again from its start. */
typedef struct ld_feed ld_feed;

/* Opens path (plain or gzip) and reads its header (ld_feed_header). */
ld_status ld_feed_open(ld_feed **out, const char *path, ld_error *err);
const ld_header_info *ld_feed_header(const ld_feed *f);
/* Which keys an engine should replace, spelled as the sink's filters (tag globs, layer and step
 * ranges; NULL or "" = all). Every key until called. LD_E_USAGE naming the bad filter. */
ld_status ld_feed_select(ld_feed *f, const char *tags, const char *layers, const char *steps,
                         ld_error *err);
/* Cheap, before any work: should the engine replace this key's tensor? NULL feed: false. */
bool ld_feed_wants(const ld_feed *f, int step, int layer, const char *tag);
/* Copies the tensor of key (step, layer, tag) into dst: numel elements of dtype, converted from
 * the stream's dtype (widening exactly, narrowing to nearest even). LD_E_INPUT naming the key when
 * the stream has no such probe, when it holds no payload or another number of elements, or when
 * its payload is damaged; LD_E_TRUNCATED when the stream is cut short before the key. After an
 * error dst holds garbage; the feed can still serve other keys unless the stream itself is bad. */
ld_status ld_feed_get(ld_feed *f, int step, int layer, const char *tag, ld_dtype dtype,
                      void *dst, size_t numel, ld_error *err);
void ld_feed_close(ld_feed *f);

/* ---- library ---------------------------------------------------------------------------------- */

/* "0.1.0 (git abc123)" */
const char *ld_probes_version(void);

#ifdef __cplusplus
}
#endif
#endif

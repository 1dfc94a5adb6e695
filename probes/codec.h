/* codec.h — payload encodings of probe records (internal to the probe library): base64, byte
 * shuffle, zlib in independent blocks, crc32. Large buffers are processed in fixed-size blocks
 * spread over OpenMP threads; the block size never depends on the thread count, so every output
 * is byte-identical however many threads run. Not a general compression library. */
#ifndef LD_PROBES_CODEC_H
#define LD_PROBES_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "layerdiff/error.h"

/* Input bytes per independently deflated zlib block. Part of what makes output reproducible:
 * changing it changes the compressed bytes (not what they decode to). */
#define LD_CODEC_BLOCK ((size_t)1 << 20)

/* Base64 (RFC 4648 alphabet, '=' padding, no line breaks). */
size_t ld_b64_encoded_len(size_t n); /* 4 * ceil(n / 3) */
void ld_b64_encode(const unsigned char *in, size_t n, char *out);
/* The same, returning the crc32 of in, computed in the same pass. */
uint32_t ld_b64_encode_crc(const unsigned char *in, size_t n, char *out);
/* Strict decoding: length a multiple of 4, padding only at the end, unused bits zero. out needs
 * len / 4 * 3 bytes. On failure *bad is the offset of the offending character and *why says
 * what is wrong with it. */
bool ld_b64_decode(const char *in, size_t len, unsigned char *out, size_t *out_len, size_t *bad,
                   const char **why);

/* Byte planes: plane p holds byte p of every element (little-endian bytes), planes in order. */
void ld_shuffle(const unsigned char *in, size_t n_elem, size_t elem_size, unsigned char *out);
void ld_unshuffle(const unsigned char *in, size_t n_elem, size_t elem_size, unsigned char *out);

uint32_t ld_crc32(const void *data, size_t n);

/* A complete zlib stream (RFC 1950) of in[0..n), shuffled first when elem_size > 1, built from
 * independently deflated LD_CODEC_BLOCK-byte blocks joined with sync flushes. *out is malloc'd,
 * *out_len its size. level 1..9. */
ld_status ld_zlib_encode(const unsigned char *in, size_t n, size_t elem_size, int level,
                         unsigned char **out, size_t *out_len, ld_error *err);
/* Inflates a zlib stream into exactly expected bytes. Refuses corrupt data, a stream that ends
 * early or would produce more than expected, and bytes after the stream's end. The message says
 * what was wrong, without a location (the caller adds it). */
ld_status ld_zlib_decode(const unsigned char *in, size_t n, unsigned char *out, size_t expected,
                         ld_error *err);
/* Deflate expands at most 1032:1; an expected size beyond that is a lie. */
bool ld_zlib_size_plausible(size_t compressed, size_t expected);

/* ---- payloads read piece by piece (the reader's stream_data) ------------------------------ */

/* Inflating a zlib stream that arrives in pieces into exactly `expected` bytes, with the verdicts
 * of ld_zlib_decode (which is this, fed once): corrupt data, output past or short of expected,
 * bytes after the stream's end, input that ends first. */
typedef struct ld_zstream {
    z_stream zs;
    bool ready; /* inflateInit done */
    size_t expected;
    size_t out_done;   /* bytes inflated so far */
    bool ended;        /* the stream's end was read */
    uint64_t trailing; /* input bytes given after the end */
    bool failed;       /* then code and msg say why (no location: the caller adds it) */
    ld_status code;
    char msg[96];
} ld_zstream;

ld_status ld_zstream_init(ld_zstream *z, size_t expected, ld_error *err);
/* Inflates from in[0..n) into out[0..room); returns the input bytes used and *produced the bytes
 * written. Stops when the input is used up, out is full, or it failed. last: in holds the rest of
 * the input (a stream that cannot finish from it is cut short). Once expected bytes are out, more
 * output is a failure ("inflates past"), whatever room says. */
size_t ld_zstream_feed(ld_zstream *z, const unsigned char *in, size_t n, unsigned char *out,
                       size_t room, bool last, size_t *produced);
/* After a feed with last: LD_OK, or the failure (also bytes after the end). */
ld_status ld_zstream_verdict(const ld_zstream *z, ld_error *err);
void ld_zstream_end(ld_zstream *z);

/* An incremental reader of a data.b64 string value as it stands in a record line, JSON escapes
 * included: the checks and the outcome of ld_json_parse followed by ld_b64_decode on the whole
 * string, with the same offsets and messages, from pieces of the line. JSON offsets (line_off,
 * json_at) count raw bytes of the line; base64 positions (len, bad_at) count characters of the
 * unescaped string. A '\n' ends the line, so the string is "not closed" there. */
typedef struct ld_b64_scan {
    bool decode;        /* false: JSON checks only, no base64 facts, no output */
    uint64_t str_start; /* line offset of the opening quote */
    uint64_t line_off;  /* line offset of the next byte */
    uint64_t len;       /* unescaped characters so far */
    bool closed;        /* the closing quote was read (then the base64 facts are final) */
    bool json_bad;      /* a JSON error stopped the scan at json_at, before its byte */
    uint64_t json_at;
    const char *json_msg; /* static text, as ld_json_parse words it */
    bool b64_bad;         /* the first bad base64 character is known */
    uint64_t bad_at;
    const char *bad_why;       /* as ld_b64_decode words it */
    uint64_t eq_run, eq_start; /* the run of '=' the string ends with so far, and where it starts */
    uint32_t quad;             /* bits of the quad being read, nq characters of it */
    int nq;
    uint64_t produced; /* bytes decoded so far */
} ld_b64_scan;

/* str_start: line offset of the opening quote; the scan starts at the byte after it. */
void ld_b64_scan_init(ld_b64_scan *s, uint64_t str_start, bool decode);
/* Reads raw line bytes in[0..n), writing decoded bytes to out. Stops after the closing quote, at a
 * JSON error, when out has fewer than 3 bytes of room (while decoding), or before an escape or a
 * UTF-8 sequence that needs bytes beyond n. Returns the bytes consumed, *produced the bytes
 * written. */
size_t ld_b64_scan_feed(ld_b64_scan *s, const char *in, size_t n, unsigned char *out, size_t room,
                        size_t *produced);
/* Bytes the whole string decodes to by its length and padding (valid once closed). */
uint64_t ld_b64_scan_decoded_len(const ld_b64_scan *s);

#endif

/* codec.h — payload encodings of probe records (internal to the probe library): base64, byte
 * shuffle, zlib in independent blocks, crc32. Large buffers are processed in fixed-size blocks
 * spread over OpenMP threads; the block size never depends on the thread count, so every output
 * is byte-identical however many threads run. Not a general compression library. */
#ifndef LD_PROBES_CODEC_H
#define LD_PROBES_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#endif

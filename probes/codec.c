/* codec.c — base64, byte shuffle, block-parallel zlib and crc32 for probe payloads (codec.h).
 * Parallel loops split work into fixed-size pieces and join them in order, so the
 * bytes produced never depend on the number of threads. Not a general compression library. */
#include "codec.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "json.h"
#include "json_lex.h"
#include "util.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the probe library stores little-endian bytes and assumes a little-endian host"
#endif

/* Work items of base64, crc32 and unshuffle (their output does not depend on it), and the size
 * below which a buffer stays on the calling thread. Starting a team costs microseconds on idle
 * cores but a scheduler quantum per region when the cores are busy with other work (measured:
 * a 479-record prefill read 7x slower with teams for every 1 MB record on a loaded 2-core
 * machine), so only large tensors (logits, long prompts) go parallel. zlib blocks are
 * LD_CODEC_BLOCK (codec.h). */
#define WORK ((size_t)256 << 10)
#define PARALLEL_MIN ((size_t)4 << 20)

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* enc_pair[v] holds the two characters for the 12-bit value v, in memory order. dec[k][c] holds
 * the 6-bit value of character c shifted into place for position k of a quad, or BAD. */
#define BAD 0xff000000u
static uint16_t enc_pair[4096];
static uint32_t dec[4][256];
static bool json_plain[256]; /* a string byte JSON takes as it is: not '"', '\\', control, non-ASCII */
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void build_tables(void)
{
    for (unsigned v = 0; v < 4096; v++) {
        unsigned char two[2] = {(unsigned char)b64_alphabet[v >> 6],
                                (unsigned char)b64_alphabet[v & 63]};
        memcpy(&enc_pair[v], two, 2);
    }
    for (int k = 0; k < 4; k++)
        for (int c = 0; c < 256; c++)
            dec[k][c] = BAD;
    for (int c = 0; c < 256; c++)
        json_plain[c] = c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
    for (uint32_t i = 0; i < 64; i++) {
        unsigned char c = (unsigned char)b64_alphabet[i];
        for (int k = 0; k < 4; k++)
            dec[k][c] = i << (6 * (3 - k));
    }
}

size_t ld_b64_encoded_len(size_t n) { return (n / 3 + (n % 3 != 0)) * 4; }

/* Encodes whole 3-byte groups of in[0..n) (n a multiple of 3) into out. */
static void b64_encode_groups(const unsigned char *in, size_t n, char *out)
{
    size_t i = 0;
    /* 6 input bytes -> 8 characters per step, reading 8 bytes (2 beyond the group). */
    for (; i + 8 <= n; i += 6, out += 8) {
        uint64_t x;
        memcpy(&x, in + i, 8);
        x = __builtin_bswap64(x); /* first byte on top */
        uint16_t c[4] = {enc_pair[(x >> 52) & 0xfff], enc_pair[(x >> 40) & 0xfff],
                         enc_pair[(x >> 28) & 0xfff], enc_pair[(x >> 16) & 0xfff]};
        memcpy(out, c, 8);
    }
    for (; i + 3 <= n; i += 3, out += 4) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        uint16_t c[2] = {enc_pair[v >> 12], enc_pair[v & 0xfff]};
        memcpy(out, c, 4);
    }
}

/* Encodes in[0..n) into out; with crc non-NULL also computes the crc32 of in in the same pass
 * over each work item, while it sits in cache. */
static void b64_encode(const unsigned char *in, size_t n, char *out, uint32_t *crc)
{
    pthread_once(&tables_once, build_tables);
    size_t whole = n / 3 * 3;
    const size_t chunk = WORK / 3 * 3; /* input bytes per work item */
    size_t nchunks = (whole + chunk - 1) / chunk;
    uLong *part = crc && whole >= PARALLEL_MIN ? malloc(nchunks * sizeof *part) : NULL;
    if (crc && !part) { /* on this thread, the crc running along */
        uLong c32 = crc32(0L, Z_NULL, 0);
        for (size_t c = 0; c < nchunks; c++) {
            size_t off = c * chunk, len = LD_MIN(chunk, whole - off);
            c32 = crc32(c32, in + off, (uInt)len);
            b64_encode_groups(in + off, len, out + off / 3 * 4);
        }
        *crc = (uint32_t)crc32(c32, in + whole, (uInt)(n - whole));
    } else {
#pragma omp parallel for schedule(static) if (whole >= PARALLEL_MIN)
        for (size_t c = 0; c < nchunks; c++) {
            size_t off = c * chunk, len = LD_MIN(chunk, whole - off);
            if (part)
                part[c] = crc32(0L, in + off, (uInt)len);
            b64_encode_groups(in + off, len, out + off / 3 * 4);
        }
        if (part) {
            uLong c32 = part[0];
            for (size_t c = 1; c < nchunks; c++)
                c32 = crc32_combine(c32, part[c], (z_off_t)LD_MIN(chunk, whole - c * chunk));
            *crc = (uint32_t)crc32(c32, in + whole, (uInt)(n - whole));
            free(part);
        }
    }
    out += whole / 3 * 4;
    size_t rest = n - whole;
    if (rest) {
        uint32_t v = (uint32_t)in[whole] << 16 | (rest == 2 ? (uint32_t)in[whole + 1] << 8 : 0);
        out[0] = b64_alphabet[v >> 18];
        out[1] = b64_alphabet[(v >> 12) & 63];
        out[2] = rest == 2 ? b64_alphabet[(v >> 6) & 63] : '=';
        out[3] = '=';
    }
}

void ld_b64_encode(const unsigned char *in, size_t n, char *out) { b64_encode(in, n, out, NULL); }

uint32_t ld_b64_encode_crc(const unsigned char *in, size_t n, char *out)
{
    uint32_t crc = 0;
    b64_encode(in, n, out, &crc);
    return crc;
}

/* Decodes full quads without padding; false when a character is outside the alphabet. */
static bool b64_decode_quads(const unsigned char *in, size_t nq, unsigned char *out)
{
    uint32_t bad = 0;
    for (size_t q = 0; q < nq; q++, in += 4, out += 3) {
        uint32_t v = dec[0][in[0]] | dec[1][in[1]] | dec[2][in[2]] | dec[3][in[3]];
        bad |= v;
        out[0] = (unsigned char)(v >> 16);
        out[1] = (unsigned char)(v >> 8);
        out[2] = (unsigned char)v;
    }
    return (bad & BAD) == 0;
}

bool ld_b64_decode(const char *in_chars, size_t len, unsigned char *out, size_t *out_len,
                   size_t *bad, const char **why)
{
    pthread_once(&tables_once, build_tables);
    const unsigned char *in = (const unsigned char *)in_chars;
    *out_len = 0;
    if (len % 4 != 0) {
        *bad = len;
        *why = "length is not a multiple of 4";
        return false;
    }
    if (len == 0)
        return true;
    size_t pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    size_t full = len / 4 - (pad ? 1 : 0); /* quads without padding */
    const size_t chunk = WORK / 4;     /* quads per work item */
    size_t nchunks = (full + chunk - 1) / chunk;
    int any_bad = 0;
#pragma omp parallel for schedule(static) if (len >= PARALLEL_MIN) reduction(| : any_bad)
    for (size_t c = 0; c < nchunks; c++) {
        size_t q0 = c * chunk, nq = LD_MIN(chunk, full - q0);
        if (!b64_decode_quads(in + q0 * 4, nq, out + q0 * 3))
            any_bad |= 1;
    }
    if (any_bad) { /* find the first offending character, serially */
        for (size_t i = 0; i < full * 4; i++)
            if (dec[0][in[i]] == BAD) {
                *bad = i;
                *why = in[i] == '=' ? "'=' padding before the end" : "character outside the alphabet";
                return false;
            }
    }
    size_t n = full * 3;
    if (pad) {
        const unsigned char *t = in + full * 4;
        for (size_t k = 0; k < 4 - pad; k++)
            if (dec[0][t[k]] == BAD) {
                *bad = full * 4 + k;
                *why = t[k] == '=' ? "'=' padding before the end" : "character outside the alphabet";
                return false;
            }
        uint32_t v = dec[0][t[0]] | dec[1][t[1]] | (pad == 1 ? dec[2][t[2]] : 0);
        uint32_t unused = pad == 1 ? (v & 0xff) : (v & 0xffff);
        if (unused) {
            *bad = len - pad - 1;
            *why = "nonzero bits in the last character before the padding";
            return false;
        }
        out[n++] = (unsigned char)(v >> 16);
        if (pad == 1)
            out[n++] = (unsigned char)(v >> 8);
    }
    *out_len = n;
    return true;
}

void ld_shuffle(const unsigned char *in, size_t n_elem, size_t elem_size, unsigned char *out)
{
    for (size_t p = 0; p < elem_size; p++) {
        unsigned char *plane = out + p * n_elem;
        const unsigned char *src = in + p;
        for (size_t i = 0; i < n_elem; i++)
            plane[i] = src[i * elem_size];
    }
}

void ld_unshuffle(const unsigned char *in, size_t n_elem, size_t elem_size, unsigned char *out)
{
    size_t nchunks = (n_elem + WORK - 1) / WORK;
#pragma omp parallel for schedule(static) if (n_elem * elem_size >= PARALLEL_MIN)
    for (size_t c = 0; c < nchunks; c++) {
        size_t i0 = c * WORK, i1 = LD_MIN(i0 + WORK, n_elem);
        for (size_t p = 0; p < elem_size; p++) {
            const unsigned char *plane = in + p * n_elem;
            for (size_t i = i0; i < i1; i++)
                out[i * elem_size + p] = plane[i];
        }
    }
}

/* Copies bytes [off, off+len) of the shuffled form of in (n_elem elements) into dst. */
static void shuffled_slice(const unsigned char *in, size_t n_elem, size_t elem_size, size_t off,
                           size_t len, unsigned char *dst)
{
    size_t s = off, end = off + len;
    while (s < end) {
        size_t p = s / n_elem, i = s % n_elem;
        size_t cnt = LD_MIN(end - s, n_elem - i);
        const unsigned char *src = in + i * elem_size + p;
        if (elem_size == 4) {
            for (size_t j = 0; j < cnt; j++)
                dst[j] = src[4 * j];
        } else {
            for (size_t j = 0; j < cnt; j++)
                dst[j] = src[j * elem_size];
        }
        dst += cnt;
        s += cnt;
    }
}

uint32_t ld_crc32(const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t nblocks = (n + WORK - 1) / WORK;
    uLong *part = n >= PARALLEL_MIN ? malloc(nblocks * sizeof *part) : NULL;
    if (!part) { /* small, or no memory for the partial sums: serially */
        uLong crc = crc32(0L, Z_NULL, 0);
        for (size_t b = 0; b < nblocks; b++) {
            size_t off = b * WORK;
            crc = crc32(crc, p + off, (uInt)LD_MIN(WORK, n - off));
        }
        return (uint32_t)crc;
    }
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nblocks; b++) {
        size_t off = b * WORK;
        part[b] = crc32(0L, p + off, (uInt)LD_MIN(WORK, n - off));
    }
    uLong crc = part[0];
    for (size_t b = 1; b < nblocks; b++)
        crc = crc32_combine(crc, part[b], (z_off_t)LD_MIN(WORK, n - b * WORK));
    free(part);
    return (uint32_t)crc;
}

/* Whether a block is noise to an entropy coder: the Shannon entropy of a sample of its bytes
 * (every 17th: odd, so unshuffled data is sampled at every byte position of its elements) above
 * 7.8 bits per byte, where Huffman coding saves under 2.5%. Mantissa byte planes of real
 * activations are like that; sign/exponent planes sit near 3 bits. */
static bool looks_random(const unsigned char *p, size_t n)
{
    size_t stride = n >= 65536 ? 17 : 1;
    uint32_t count[256] = {0};
    size_t m = 0;
    for (size_t i = 0; i < n; i += stride, m++)
        count[p[i]]++;
    if (m < 256)
        return false;
    double sum = 0.0; /* sum of c * log2(c) */
    for (int c = 0; c < 256; c++)
        if (count[c] > 1)
            sum += (double)count[c] * log2((double)count[c]);
    double bits = log2((double)m) - sum / (double)m;
    return bits > 7.8;
}

bool ld_zlib_size_plausible(size_t compressed, size_t expected)
{
    size_t limit;
    if (!ld_mul_size(compressed, 1032, &limit) || !ld_add_size(limit, 64, &limit))
        return true;
    return expected <= limit;
}

ld_status ld_zlib_encode(const unsigned char *in, size_t n, size_t elem_size, int level,
                         unsigned char **out, size_t *out_len, ld_error *err)
{
    *out = NULL;
    *out_len = 0;
    if (level < 1 || level > 9)
        return ld_error_set(err, LD_E_USAGE, "zlib level %d is outside 1..9", level);
    bool shuffle = elem_size > 1;
    size_t n_elem = shuffle ? n / elem_size : n;
    if (shuffle && n % elem_size != 0)
        return ld_error_set(err, LD_E_INTERNAL, "shuffle of %zu bytes in %zu-byte elements", n,
                            elem_size);
    size_t nblocks = n ? (n + LD_CODEC_BLOCK - 1) / LD_CODEC_BLOCK : 1;
    size_t slot = (size_t)compressBound((uLong)LD_CODEC_BLOCK) + 64;
    size_t total;
    if (!ld_mul_size(nblocks, slot, &total) || !ld_add_size(total, 6, &total))
        return ld_error_set(err, LD_E_NOMEM, "payload of %zu bytes is too large to compress", n);
    unsigned char *buf = malloc(total);
    size_t *clen = calloc(nblocks, sizeof *clen);
    uLong *adl = calloc(nblocks, sizeof *adl);
    int failed = 0;
    if (!buf || !clen || !adl) {
        free(buf);
        free(clen);
        free(adl);
        return ld_error_set(err, LD_E_NOMEM, "cannot allocate %zu bytes to compress a payload",
                            total);
    }
#pragma omp parallel if (nblocks > 1 && n >= PARALLEL_MIN) reduction(| : failed)
    {
        /* zs[0] stores, zs[1] compresses; each started on first use and reset per block. */
        z_stream zs[2];
        bool ready[2] = {false, false};
        memset(zs, 0, sizeof zs);
        unsigned char *tmp = shuffle ? malloc(LD_CODEC_BLOCK) : NULL;
        if (shuffle && !tmp)
            failed |= 1;
#pragma omp for schedule(dynamic, 1)
        for (size_t b = 0; b < nblocks; b++) {
            if (shuffle && !tmp)
                continue;
            size_t off = b * LD_CODEC_BLOCK, len = n ? LD_MIN(LD_CODEC_BLOCK, n - off) : 0;
            const unsigned char *src = in + off;
            if (shuffle) {
                shuffled_slice(in, n_elem, elem_size, off, len, tmp);
                src = tmp;
            }
            adl[b] = adler32(1L, src, (uInt)len);
            int k = level == 1 && looks_random(src, len) ? 0 : 1;
            if (!ready[k]) {
                int lv = k == 0 ? 0 : level, strategy = level == 1 ? Z_RLE : Z_DEFAULT_STRATEGY;
                ready[k] = deflateInit2(&zs[k], lv, Z_DEFLATED, -15, 8, strategy) == Z_OK;
                if (!ready[k]) {
                    failed |= 1;
                    continue;
                }
            }
            bool last = b + 1 == nblocks;
            deflateReset(&zs[k]);
            zs[k].next_in = (Bytef *)(uintptr_t)src;
            zs[k].avail_in = (uInt)len;
            zs[k].next_out = buf + 2 + b * slot;
            zs[k].avail_out = (uInt)slot;
            int r = deflate(&zs[k], last ? Z_FINISH : Z_SYNC_FLUSH);
            bool ok = last ? r == Z_STREAM_END
                           : (r == Z_OK && zs[k].avail_in == 0 && zs[k].avail_out > 0);
            if (!ok)
                failed |= 1;
            clen[b] = slot - zs[k].avail_out;
        }
        for (int k = 0; k < 2; k++)
            if (ready[k])
                deflateEnd(&zs[k]);
        free(tmp);
    }
    if (failed) {
        free(buf);
        free(clen);
        free(adl);
        return ld_error_set(err, LD_E_NOMEM, "zlib could not compress a payload of %zu bytes", n);
    }
    /* Header: deflate with a 32 KiB window, FLEVEL from the level, check bits to a multiple of 31. */
    unsigned flevel = level == 1 ? 0u : level <= 5 ? 1u : level == 6 ? 2u : 3u;
    unsigned cmf = 0x78, flg = flevel << 6;
    flg += 31u - (cmf * 256u + flg) % 31u;
    buf[0] = (unsigned char)cmf;
    buf[1] = (unsigned char)flg;
    size_t pos = 2;
    uLong adler = adl[0];
    for (size_t b = 0; b < nblocks; b++) {
        memmove(buf + pos, buf + 2 + b * slot, clen[b]); /* slots only move toward the front */
        pos += clen[b];
        if (b > 0) {
            size_t len = LD_MIN(LD_CODEC_BLOCK, n - b * LD_CODEC_BLOCK);
            adler = adler32_combine(adler, adl[b], (z_off_t)len);
        }
    }
    for (int k = 3; k >= 0; k--)
        buf[pos++] = (unsigned char)(adler >> (8 * k));
    free(clen);
    free(adl);
    *out = buf;
    *out_len = pos;
    return LD_OK;
}

/* ---- zlib, piece by piece ------------------------------------------------------------------- */

ld_status ld_zstream_init(ld_zstream *z, size_t expected, ld_error *err)
{
    memset(z, 0, sizeof *z);
    z->expected = expected;
    if (inflateInit(&z->zs) != Z_OK)
        return ld_error_set(err, LD_E_NOMEM, "zlib cannot start inflating");
    z->ready = true;
    return LD_OK;
}

void ld_zstream_end(ld_zstream *z)
{
    if (z && z->ready)
        inflateEnd(&z->zs);
    if (z)
        z->ready = false;
}

static void zstream_fail(ld_zstream *z, ld_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void zstream_fail(ld_zstream *z, ld_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(z->msg, sizeof z->msg, fmt, ap);
    va_end(ap);
    z->failed = true;
    z->code = code;
}

size_t ld_zstream_feed(ld_zstream *z, const unsigned char *in, size_t n, unsigned char *out,
                       size_t room, bool last, size_t *produced)
{
    size_t used = 0;
    *produced = 0;
    while (!z->failed) {
        if (z->ended) { /* whatever follows the stream's end is counted, not read */
            z->trailing += n - used;
            used = n;
            break;
        }
        /* zlib counts in 32-bit uInt: at most 1 GiB at a time in each direction. */
        size_t in_now = LD_MIN(n - used, (size_t)1 << 30);
        size_t want = z->expected - z->out_done;
        size_t out_now = LD_MIN(LD_MIN(want, room - *produced), (size_t)1 << 30);
        /* With the expected output all produced, offer one spare byte: a stream that fills it
         * would inflate past the expected size. */
        bool spare_mode = want == 0;
        if (!spare_mode && out_now == 0)
            break; /* out is full */
        unsigned char spare;
        z->zs.next_in = (Bytef *)(uintptr_t)(in + used);
        z->zs.avail_in = (uInt)in_now;
        z->zs.next_out = spare_mode ? &spare : out + *produced;
        z->zs.avail_out = spare_mode ? 1 : (uInt)out_now;
        int r = inflate(&z->zs, Z_NO_FLUSH);
        size_t took = in_now - z->zs.avail_in;
        size_t made = (spare_mode ? 1 : out_now) - z->zs.avail_out;
        used += took;
        if (spare_mode && made) {
            zstream_fail(z, LD_E_INPUT, "zlib data inflates past the expected %zu bytes",
                         z->expected);
            break;
        }
        z->out_done += made;
        *produced += made;
        if (r == Z_STREAM_END) {
            z->ended = true;
            if (z->out_done != z->expected)
                zstream_fail(z, LD_E_INPUT, "zlib data inflates to %zu bytes, expected %zu",
                             z->out_done, z->expected);
            continue;
        }
        if (r == Z_NEED_DICT || r == Z_DATA_ERROR) {
            zstream_fail(z, LD_E_INPUT, "corrupt zlib data (%s)",
                         z->zs.msg ? z->zs.msg : "needs a preset dictionary");
            break;
        }
        if (r == Z_MEM_ERROR) {
            zstream_fail(z, LD_E_NOMEM, "zlib ran out of memory inflating");
            break;
        }
        if (r == Z_BUF_ERROR || (r == Z_OK && !took && !made)) {
            /* no progress: more input is needed, and with the last of it there is none */
            if (last && used == n)
                zstream_fail(z, LD_E_INPUT, "zlib stream cut short after %zu of %zu bytes",
                             z->out_done, z->expected);
            break;
        }
        if (r != Z_OK) {
            zstream_fail(z, LD_E_INTERNAL, "zlib inflate failed (%d)", r);
            break;
        }
    }
    return used;
}

ld_status ld_zstream_verdict(const ld_zstream *z, ld_error *err)
{
    if (z->failed)
        return ld_error_set(err, z->code, "%s", z->msg);
    if (!z->ended)
        return ld_error_set(err, LD_E_INPUT, "zlib stream cut short after %zu of %zu bytes",
                            z->out_done, z->expected);
    if (z->trailing)
        return ld_error_set(err, LD_E_INPUT, "%llu bytes after the end of the zlib stream",
                            (unsigned long long)z->trailing);
    return LD_OK;
}

ld_status ld_zlib_decode(const unsigned char *in, size_t n, unsigned char *out, size_t expected,
                         ld_error *err)
{
    ld_zstream z;
    ld_status st = ld_zstream_init(&z, expected, err);
    if (st != LD_OK)
        return st;
    size_t produced;
    ld_zstream_feed(&z, in, n, out, expected, true, &produced);
    st = ld_zstream_verdict(&z, err);
    ld_zstream_end(&z);
    return st;
}

/* ---- a data.b64 string, piece by piece --------------------------------------------------------- */

void ld_b64_scan_init(ld_b64_scan *s, uint64_t str_start, bool decode)
{
    pthread_once(&tables_once, build_tables);
    memset(s, 0, sizeof *s);
    s->decode = decode;
    s->str_start = str_start;
    s->line_off = str_start + 1;
}

uint64_t ld_b64_scan_decoded_len(const ld_b64_scan *s)
{
    uint64_t pad = LD_MIN(s->eq_run, (uint64_t)2);
    return s->len / 4 * 3 - (s->len / 4 ? pad : 0);
}

static void scan_bad(ld_b64_scan *s, uint64_t at, const char *why)
{
    if (!s->b64_bad) {
        s->b64_bad = true;
        s->bad_at = at;
        s->bad_why = why;
    }
}

/* One character of the unescaped string. */
static void scan_char(ld_b64_scan *s, unsigned char c, unsigned char *out, size_t *w)
{
    uint64_t pos = s->len++;
    if (!s->decode)
        return;
    if (c == '=') {
        if (!s->eq_run)
            s->eq_start = pos;
        s->eq_run++;
        return;
    }
    bool after_eq = s->eq_run > 0;
    s->eq_run = 0;
    if (s->b64_bad)
        return;
    if (after_eq) { /* padding is only allowed at the very end */
        scan_bad(s, s->eq_start, "'=' padding before the end");
        return;
    }
    uint32_t v = dec[s->nq][c];
    if (v & BAD) {
        scan_bad(s, pos, "character outside the alphabet");
        return;
    }
    s->quad |= v;
    if (++s->nq == 4) {
        out[(*w)++] = (unsigned char)(s->quad >> 16);
        out[(*w)++] = (unsigned char)(s->quad >> 8);
        out[(*w)++] = (unsigned char)s->quad;
        s->quad = 0;
        s->nq = 0;
        s->produced += 3;
    }
}

/* The closing quote: the padding and the last partial quad (ld_b64_decode's rules). */
static void scan_close(ld_b64_scan *s, unsigned char *out, size_t *w)
{
    s->closed = true;
    if (!s->decode || s->b64_bad)
        return;
    if (s->eq_run >= 3) {
        scan_bad(s, s->eq_start, "'=' padding before the end");
        return;
    }
    if (s->eq_run == 0 || s->len % 4 != 0)
        return; /* complete quads only, or a length the caller refuses first */
    uint32_t unused = s->eq_run == 1 ? (s->quad & 0xff) : (s->quad & 0xffff);
    if (unused) {
        scan_bad(s, s->len - s->eq_run - 1, "nonzero bits in the last character before the padding");
        return;
    }
    out[(*w)++] = (unsigned char)(s->quad >> 16);
    if (s->eq_run == 1)
        out[(*w)++] = (unsigned char)(s->quad >> 8);
    s->produced += 3 - s->eq_run;
}

static bool scan_json_fail(ld_b64_scan *s, uint64_t at, const char *msg)
{
    s->json_bad = true;
    s->json_at = at;
    s->json_msg = msg;
    return false;
}

/* Index of the first '\n' in in[i..i+k) (k bytes or up to n), k when none; *short_ when the bytes
 * run past n before k or a '\n'. */
static size_t until_newline(const char *in, size_t n, size_t i, size_t k, bool *short_)
{
    for (size_t j = 0; j < k; j++) {
        if (i + j >= n) {
            *short_ = true;
            return j;
        }
        if (in[i + j] == '\n')
            return j;
    }
    return k;
}

/* A backslash escape at in[i] (JSON rules of ld_json_parse): its characters go to scan_char.
 * Returns the raw bytes it takes, 0 when more input is needed or on a JSON error. */
static size_t scan_escape(ld_b64_scan *s, const char *in, size_t n, size_t i, unsigned char *out,
                          size_t *w)
{
    uint64_t at = s->line_off + i;
    if (i + 1 >= n)
        return 0;
    char e = in[i + 1];
    if (e == '\n')
        return scan_json_fail(s, at, "string not closed"), 0;
    const char *simple = e ? strchr("\"\\/bfnrt", e) : NULL;
    if (simple) {
        static const char map[] = "\"\\/\b\f\n\r\t";
        scan_char(s, (unsigned char)map[simple - "\"\\/bfnrt"], out, w);
        return 2;
    }
    if (e != 'u')
        return scan_json_fail(s, at, "invalid escape sequence in a string"), 0;
    bool short_ = false;
    size_t k = until_newline(in, n, i + 2, 4, &short_);
    if (short_)
        return 0;
    if (k < 4)
        return scan_json_fail(s, at, "truncated \\u escape"), 0;
    int u = ld_json_hex4(in + i + 2);
    if (u < 0)
        return scan_json_fail(s, at, "invalid \\u escape (needs four hex digits)"), 0;
    if (u >= 0xdc00 && u <= 0xdfff)
        return scan_json_fail(s, at, "lone low surrogate in a \\u escape"), 0;
    uint32_t cp = (uint32_t)u;
    size_t used = 6;
    if (u >= 0xd800 && u <= 0xdbff) {
        k = until_newline(in, n, i + 6, 6, &short_);
        if (short_)
            return 0;
        int lo = k == 6 && in[i + 6] == '\\' && in[i + 7] == 'u' ? ld_json_hex4(in + i + 8) : -1;
        if (lo < 0xdc00 || lo > 0xdfff)
            return scan_json_fail(s, at, "high surrogate not followed by a low surrogate"), 0;
        cp = 0x10000u + (((uint32_t)u - 0xd800u) << 10) + ((uint32_t)lo - 0xdc00u);
        used = 12;
    }
    /* the code point's UTF-8 bytes are the string's characters */
    char b[4];
    size_t nb = ld_json_utf8_encode(cp, b);
    for (size_t j = 0; j < nb; j++)
        scan_char(s, (unsigned char)b[j], out, w);
    return used;
}

size_t ld_b64_scan_feed(ld_b64_scan *s, const char *in_chars, size_t n, unsigned char *out,
                        size_t room, size_t *produced)
{
    const unsigned char *in = (const unsigned char *)in_chars;
    size_t i = 0, w = 0;
    while (i < n && !s->closed && !s->json_bad) {
        bool emitting = s->decode && !s->b64_bad;
        if (emitting && room - w < 3)
            break;
        if (!s->decode) { /* JSON checks only: plain bytes are just counted */
            size_t j = i;
            while (j < n && json_plain[in[j]])
                j++;
            s->len += j - i;
            i = j;
            if (i >= n)
                break;
        }
        /* Fast path: whole quads of alphabet characters, 16 at a time, then one at a time. */
        if (emitting && s->nq == 0 && s->eq_run == 0) {
            size_t q0 = i;
            while (i + 64 <= n && w + 48 <= room) {
                uint32_t bad = 0;
                unsigned char *o = out + w;
                for (size_t q = 0; q < 16; q++) {
                    const unsigned char *t = in + i + 4 * q;
                    uint32_t v = dec[0][t[0]] | dec[1][t[1]] | dec[2][t[2]] | dec[3][t[3]];
                    bad |= v;
                    o[3 * q] = (unsigned char)(v >> 16);
                    o[3 * q + 1] = (unsigned char)(v >> 8);
                    o[3 * q + 2] = (unsigned char)v;
                }
                if (bad & BAD)
                    break; /* the quads up to the bad one are redone below */
                i += 64;
                w += 48;
            }
            while (i + 4 <= n && w + 3 <= room) {
                const unsigned char *t = in + i;
                uint32_t v = dec[0][t[0]] | dec[1][t[1]] | dec[2][t[2]] | dec[3][t[3]];
                if (v & BAD)
                    break;
                out[w] = (unsigned char)(v >> 16);
                out[w + 1] = (unsigned char)(v >> 8);
                out[w + 2] = (unsigned char)v;
                i += 4;
                w += 3;
            }
            s->len += i - q0;
            s->produced += (i - q0) / 4 * 3;
            if (i >= n || room - w < 3)
                continue;
        }
        /* One byte (or escape, or UTF-8 sequence) the careful way. */
        unsigned char c = in[i];
        if (c == '"') {
            i++;
            scan_close(s, out, &w);
            break;
        }
        if (c == '\\') {
            size_t used = scan_escape(s, in_chars, n, i, out, &w);
            if (!used)
                break; /* more input needed, or a JSON error */
            i += used;
            continue;
        }
        if (c < 0x20) {
            if (c == '\n') /* the line ends inside the string */
                scan_json_fail(s, s->str_start, "string not closed");
            else
                scan_json_fail(s, s->line_off + i,
                               "raw control character in a string (must be escaped)");
            break;
        }
        if (c >= 0x80) {
            size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            bool short_ = false;
            size_t avail = until_newline(in_chars, n, i, need, &short_);
            if (short_)
                break;
            size_t k = ld_json_utf8_len(in + i, avail);
            if (!k) {
                scan_json_fail(s, s->line_off + i, "invalid UTF-8 in a string");
                break;
            }
            for (size_t j = 0; j < k; j++)
                scan_char(s, in[i + j], out, &w);
            i += k;
            continue;
        }
        scan_char(s, c, out, &w);
        i++;
    }
    s->line_off += i;
    *produced = w;
    return i;
}

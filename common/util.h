/* util.h — small internal helpers shared by every layerdiff library: checked size arithmetic,
 * bounded file reading, number and list parsing, time stamps. Not public API (the probe library's
 * public headers live in probes/include/layerdiff/). */
#ifndef LD_UTIL_H
#define LD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerdiff/error.h"

#define LD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LD_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LD_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Checked arithmetic: return false on overflow (and leave *out unspecified). */
static inline bool ld_mul_size(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool ld_add_size(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool ld_mul_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool ld_add_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }
/* Product of n non-negative dims; false when a dim is negative or the product of the non-zero
 * dims exceeds max (one rule for every order: a zero does not excuse the other dims). */
bool ld_shape_numel(const int64_t *shape, int ndim, uint64_t max, uint64_t *out);

/* Opens path for reading when it is a regular file of at most max_bytes, without waiting on a FIFO
 * (a FIFO, device or directory is LD_E_INPUT "not a regular file"); *fd is the descriptor, *size
 * its size. */
ld_status ld_open_regular(const char *path, uint64_t max_bytes, int *fd, uint64_t *size,
                          ld_error *err);
/* Reads a whole regular file of at most max_bytes into a NUL-terminated malloc'd buffer. */
ld_status ld_read_file(const char *path, size_t max_bytes, char **buf, size_t *len, ld_error *err);
/* Reads fd to its end (a pipe, a FIFO, a terminal) into a NUL-terminated malloc'd buffer; more
 * than max_bytes is an LD_E_INPUT error naming `name`. The caller closes fd. */
ld_status ld_read_stream(int fd, const char *name, size_t max_bytes, char **buf, size_t *len,
                         ld_error *err);
/* Creates and opens for writing a new file beside target, named TARGET.PID-N.tmp (N the first
 * serial number whose name is free; O_EXCL, so no existing file or link is ever opened); its path
 * goes to tmp (size bytes) and its descriptor to *fd. Errors name `name` (the file the user asked
 * for): LD_E_USAGE when the path does not fit, else LD_E_IO. The caller renames the temporary
 * over target, or unlinks it. */
ld_status ld_create_temp(const char *target, const char *name, char *tmp, size_t size, int *fd,
                         ld_error *err);
/* Writes data to path atomically enough for our use: write to a new temporary beside it
 * (ld_create_temp), fsync, rename. A path that is a device, FIFO or socket (/dev/stdout, a pipe)
 * is written in place instead. */
ld_status ld_write_file(const char *path, const void *data, size_t len, ld_error *err);
/* LD_E_USAGE naming both paths when output is the same existing file (device and inode, through
 * links) as one of the n inputs (NULL entries skipped); also LD_E_USAGE for an empty output, one
 * that is a directory, or one in a directory that does not exist; LD_OK otherwise. Writers call
 * it before opening anything for writing. (The temporary ld_write_file writes first is always a
 * new file, so it never is an input.) */
ld_status ld_refuse_overwrite(const char *output, const char *const *inputs, size_t n,
                              ld_error *err);
/* True when paths a and b name the same file, whether or not it exists yet: the same device and
 * inode when both exist, else the same resolved directory and the same last component once links
 * are followed (a dangling link names the file writing through it would create). */
bool ld_same_path(const char *a, const char *b);
/* Joins dir and name with one '/' into out (size bytes); false when it does not fit. */
bool ld_path_join(char *out, size_t size, const char *dir, const char *name);
/* Creates a directory if missing (one level). */
ld_status ld_mkdir(const char *path, ld_error *err);

/* Strict integer parsing of a whole string (no sign for unsigned, no trailing junk, in range). */
bool ld_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
bool ld_parse_int(const char *s, int min, int max, int *out);
/* Strict finite double parsing of a whole string. */
bool ld_parse_double(const char *s, double *out);
/* "1,2,3" -> malloc'd array; bounds each value to [min,max]; refuses empty items. */
ld_status ld_parse_i32_list(const char *s, int32_t min, int32_t max, int32_t **out, size_t *n,
                            ld_error *err);

/* A set of inclusive integer ranges parsed from "3", "0-5,10", "7-". Empty string: matches all. */
#define LD_RANGES_MAX 64
typedef struct ld_ranges {
    int n; /* 0 = everything */
    int lo[LD_RANGES_MAX];
    int hi[LD_RANGES_MAX];
} ld_ranges;
ld_status ld_ranges_parse(const char *s, ld_ranges *out, ld_error *err);
bool ld_ranges_contains(const ld_ranges *r, int v);

/* Shell-style glob with '*' and '?' (no classes); whole-string match. */
bool ld_glob_match(const char *pattern, const char *s);

/* ISO-8601 UTC time stamp "2026-11-21T23:21:11Z" into buf (>= 21 bytes). */
void ld_utc_now(char *buf, size_t size);
/* Monotonic seconds, for progress and benchmarks. */
double ld_seconds(void);

/* GPT-2's byte-level alphabet (byte-level BPE tokenizers): byte b is written as the code point
 * ld_byte_level_cp(b) (b itself for the bytes that print, 256, 257, ... in byte order for the 68
 * others); ld_byte_level_byte is the inverse, -1 for a code point outside the alphabet. */
uint32_t ld_byte_level_cp(unsigned b);
int ld_byte_level_byte(uint32_t cp);

/* 64-bit FNV-1a over bytes, continuing from h (start with LD_FNV_INIT). */
#define LD_FNV_INIT 0xcbf29ce484222325ULL
uint64_t ld_fnv1a(uint64_t h, const void *data, size_t n);

#endif

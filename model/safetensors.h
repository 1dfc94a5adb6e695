/* safetensors.h — a validating, zero-copy reader of .safetensors files (mmap), and the writer the
 * checkpoint generator uses. Every number in a header is checked before it is used: header length,
 * JSON well-formedness, dtypes, shapes, byte ranges that tile the data area exactly. */
#ifndef LD_SAFETENSORS_H
#define LD_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerdiff/dtype.h"
#include "layerdiff/error.h"
#include "layerdiff/probes.h"

#define LD_ST_MAX_HEADER (100u * 1000u * 1000u) /* 100 MB */

/* A tensor inside a mapped file: zero-copy, in its stored dtype, little-endian, row-major. */
typedef struct ld_tensor {
    const char *name;          /* owned by the file */
    ld_dtype dtype;
    int ndim;
    int64_t shape[LD_MAX_NDIM];
    size_t numel;
    const void *data;          /* points into the mapping */
    size_t nbytes;
} ld_tensor;

typedef struct ld_st_file ld_st_file;

/* Maps and validates path. Tensor data is not copied; it may be unaligned when a writer did not
 * pad the header to a multiple of 8 (read elements with memcpy, as ld_load_f32 does). The file
 * must not be truncated while mapped: reading a page past its new end raises SIGBUS (see
 * ld_st_maps, ld_st_check_unchanged). The descriptor stays open until ld_st_close. */
ld_status ld_st_open(ld_st_file **out, const char *path, ld_error *err);
/* Validates a file image already in memory (tests, fuzzing); buf must outlive the result. */
ld_status ld_st_parse(ld_st_file **out, const void *buf, size_t len, const char *label,
                      ld_error *err);
size_t ld_st_count(const ld_st_file *f);
/* Tensors in bytewise name order; NULL past the end. */
const ld_tensor *ld_st_at(const ld_st_file *f, size_t i);
const ld_tensor *ld_st_find(const ld_st_file *f, const char *name);
const char *ld_st_path(const ld_st_file *f);
/* Byte offset of t's data from the start of the file (t from this file). */
size_t ld_st_offset(const ld_st_file *f, const ld_tensor *t);
size_t ld_st_size(const ld_st_file *f); /* whole file, bytes */
/* LD_OK while the mapped file keeps the size and modification time it had when opened (always for
 * ld_st_parse images); LD_E_INPUT "PATH changed during the run (...)" once it was truncated or
 * rewritten in place. A file replaced by rename leaves the mapping, and so the run, intact. */
ld_status ld_st_check_unchanged(const ld_st_file *f, ld_error *err);
/* Whether addr lies inside f's mapping. Reads two fields only: async-signal-safe, for a SIGBUS
 * handler naming the file whose pages vanished. */
bool ld_st_maps(const ld_st_file *f, const void *addr);
void ld_st_close(ld_st_file *f);

/* Writer: the caller lists the tensors up front (header offsets are known from shapes), then the
 * fill callback produces each tensor's bytes in order into buf (nbytes of it). */
typedef struct ld_st_entry {
    const char *name;
    ld_dtype dtype;
    int ndim;
    int64_t shape[LD_MAX_NDIM];
} ld_st_entry;
typedef ld_status (*ld_st_fill_fn)(void *ctx, size_t index, void *buf, size_t nbytes,
                                   ld_error *err);
ld_status ld_st_write(const char *path, const ld_st_entry *entries, size_t n, ld_st_fill_fn fill,
                      void *ctx, ld_error *err);
/* The streaming form: fill is called for successive pieces of each tensor, at byte offsets that
 * are multiples of chunk_bytes (rounded down to a multiple of 8), so memory stays bounded however
 * large a tensor is. Entries are written in the order given, "__metadata__" {"format":"pt"}
 * first; the file appears under its name (written to a new temporary beside it, ld_create_temp,
 * then renamed) only when complete. */
typedef ld_status (*ld_st_fill_range_fn)(void *ctx, size_t index, size_t offset, void *buf,
                                         size_t nbytes, ld_error *err);
ld_status ld_st_write_ranges(const char *path, const ld_st_entry *entries, size_t n,
                             ld_st_fill_range_fn fill, void *ctx, size_t chunk_bytes,
                             ld_error *err);

#endif

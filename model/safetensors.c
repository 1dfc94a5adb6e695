/* safetensors.c — the validating zero-copy reader (mmap) and the streaming writer of .safetensors
 * files (safetensors.h). The reader trusts no number before checking it; the writer lays files
 * out as the safetensors library does (sorted entries, "__metadata__" first, header padded with
 * spaces to a multiple of 8). Not a general tensor library: only BF16, F16 and F32 are read. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_out.h"
#include "json_pull.h"
#include "util.h"

struct ld_st_file {
    char *path;                /* or the label given to ld_st_parse */
    const unsigned char *base; /* the whole file image */
    size_t size;
    bool mapped; /* base is our mapping, to munmap on close */
    int fd;      /* the mapped file, kept open to tell whether it changed under us; -1: none */
    int64_t mtime_s, mtime_ns; /* its modification time when mapped */
    size_t n;
    ld_tensor *tensors; /* [n], sorted by name (bytewise) */
};

static const char *st_dtype_name(ld_dtype t)
{
    return t == LD_BF16 ? "BF16" : t == LD_F16 ? "F16" : "F32";
}

/* One tensor while the header is being read: its byte range inside the data area. */
typedef struct range {
    uint64_t begin, end;
    size_t index;
} range;

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const ld_tensor *)a)->name, ((const ld_tensor *)b)->name);
}

static void free_tensors(ld_tensor *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)t[i].name);
    free(t);
}

/* "[2, 3]" into buf, for messages. */
static const char *shape_text(const int64_t *shape, int ndim, char *buf, size_t size)
{
    size_t n = 0;
    n += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}

/* __metadata__: an object whose values are all strings, without duplicate keys. */
static ld_status parse_metadata(ld_jp *j)
{
    if (ld_jp_peek(j) != LD_JP_OBJECT)
        return ld_jp_fail(j, LD_E_INPUT, "__metadata__ must be an object of strings, found %s",
                          ld_jp_kind_name(ld_jp_peek(j)));
    ld_status st = ld_jp_object_begin(j);
    size_t count = 0;
    bool more = true;
    ld_jp_keys keys = {0};
    while (st == LD_OK) {
        char *key;
        st = ld_jp_object_next(j, &count, &more, &key);
        if (st != LD_OK || !more || (st = ld_jp_keys_add(j, &keys, key)) != LD_OK) break;
        if (ld_jp_peek(j) != LD_JP_STRING) {
            char pk[128];
            st =
                ld_jp_fail(j, LD_E_INPUT, "__metadata__ value of \"%s\" must be a string, found %s",
                           ld_jp_printable(key, pk, sizeof pk), ld_jp_kind_name(ld_jp_peek(j)));
        } else {
            st = ld_jp_skip(j);
        }
    }
    if (st == LD_OK) {
        const char *dup = ld_jp_keys_duplicate(&keys);
        char pk[128];
        if (dup)
            st = ld_jp_fail(j, LD_E_INPUT, "duplicate key \"%s\" in __metadata__",
                            ld_jp_printable(dup, pk, sizeof pk));
    }
    ld_jp_keys_free(&keys);
    return st;
}

/* One tensor entry {"dtype":..,"shape":[..],"data_offsets":[b,e]}; t->name is set by the caller. */
static ld_status parse_tensor(ld_jp *j, ld_tensor *t, range *r)
{
    char pname[160];
    const char *name = ld_jp_printable(t->name, pname, sizeof pname);
    if (ld_jp_peek(j) != LD_JP_OBJECT)
        return ld_jp_fail(j, LD_E_INPUT, "tensor '%s' must be an object, found %s", name,
                          ld_jp_kind_name(ld_jp_peek(j)));
    ld_status st = ld_jp_object_begin(j);
    size_t count = 0;
    bool more = true, have_dtype = false, have_shape = false, have_offsets = false;
    while (st == LD_OK) {
        char *key;
        st = ld_jp_object_next(j, &count, &more, &key);
        if (st != LD_OK || !more) break;
        if (!strcmp(key, "dtype")) {
            if (have_dtype) {
                st = ld_jp_fail(j, LD_E_INPUT, "tensor '%s': duplicate key \"dtype\"", name);
            } else if (ld_jp_peek(j) != LD_JP_STRING) {
                st = ld_jp_fail(j, LD_E_INPUT, "tensor '%s': dtype must be a string", name);
            } else {
                char *dt;
                st = ld_jp_string(j, &dt, NULL);
                if (st == LD_OK) {
                    if (!strcmp(dt, "BF16")) {
                        t->dtype = LD_BF16;
                    } else if (!strcmp(dt, "F16")) {
                        t->dtype = LD_F16;
                    } else if (!strcmp(dt, "F32")) {
                        t->dtype = LD_F32;
                    } else {
                        char pdt[48];
                        st = ld_jp_fail(j, LD_E_UNSUPPORTED,
                                        "tensor '%s': dtype %s is not supported (layerdiff "
                                        "reads BF16, F16 and F32)",
                                        name, ld_jp_printable(dt, pdt, sizeof pdt));
                    }
                    free(dt);
                }
                have_dtype = true;
            }
        } else if (!strcmp(key, "shape") || !strcmp(key, "data_offsets")) {
            bool is_shape = key[0] == 's';
            if (is_shape ? have_shape : have_offsets) {
                st = ld_jp_fail(j, LD_E_INPUT, "tensor '%s': duplicate key \"%s\"", name, key);
            } else if (ld_jp_peek(j) != LD_JP_ARRAY) {
                st = ld_jp_fail(j, LD_E_INPUT, "tensor '%s': %s must be a list of integers", name,
                                key);
            } else {
                st = ld_jp_array_begin(j);
                size_t n = 0;
                bool amore = true;
                uint64_t offs[2] = {0, 0};
                while (st == LD_OK) {
                    st = ld_jp_array_next(j, &n, &amore);
                    if (st != LD_OK || !amore) break;
                    ld_jp_num num;
                    uint64_t v = 0;
                    if (ld_jp_peek(j) != LD_JP_NUMBER) {
                        st = ld_jp_fail(j, LD_E_INPUT,
                                        "tensor '%s': %s entries must be non-negative integers",
                                        name, key);
                        break;
                    }
                    st = ld_jp_number(j, &num);
                    if (st != LD_OK) break;
                    if (!ld_jp_num_u64(&num, &v) || v > INT64_MAX) {
                        st = ld_jp_fail(j, LD_E_INPUT,
                                        "tensor '%s': %s entry %.*s is not an integer in "
                                        "[0, 2^63)",
                                        name, key, (int)LD_MIN(num.len, 40), num.tok);
                        break;
                    }
                    if (is_shape) {
                        if (n > LD_MAX_NDIM) {
                            st = ld_jp_fail(j, LD_E_UNSUPPORTED,
                                            "tensor '%s': more than %d dimensions", name,
                                            LD_MAX_NDIM);
                            break;
                        }
                        t->shape[n - 1] = (int64_t)v;
                    } else {
                        if (n > 2) {
                            st = ld_jp_fail(j, LD_E_INPUT,
                                            "tensor '%s': data_offsets must hold exactly 2 "
                                            "numbers",
                                            name);
                            break;
                        }
                        offs[n - 1] = v;
                    }
                }
                if (st == LD_OK && is_shape) {
                    t->ndim = (int)n;
                    have_shape = true;
                } else if (st == LD_OK) {
                    if (n != 2)
                        st = ld_jp_fail(j, LD_E_INPUT,
                                        "tensor '%s': data_offsets must hold exactly 2 numbers, "
                                        "found %zu",
                                        name, n);
                    r->begin = offs[0];
                    r->end = offs[1];
                    have_offsets = true;
                }
            }
        } else {
            char pk[64];
            st = ld_jp_fail(j, LD_E_INPUT, "tensor '%s': unexpected key \"%s\"", name,
                            ld_jp_printable(key, pk, sizeof pk));
        }
        free(key);
    }
    if (st != LD_OK) return st;
    const char *missing = !have_dtype     ? "dtype"
                          : !have_shape   ? "shape"
                          : !have_offsets ? "data_offsets"
                                          : NULL;
    if (missing) return ld_jp_fail(j, LD_E_INPUT, "tensor '%s': \"%s\" is missing", name, missing);
    return LD_OK;
}

/* Checks one tensor's numbers against each other and the data area; sets numel, nbytes, data. */
static ld_status check_tensor(const char *label, ld_tensor *t, const range *r,
                              const unsigned char *data, size_t data_size, ld_error *err)
{
    char pname[160], shp[128];
    const char *name = ld_jp_printable(t->name, pname, sizeof pname);
    size_t esize = ld_dtype_size(t->dtype);
    uint64_t numel;
    if (!ld_shape_numel(t->shape, t->ndim, SIZE_MAX / esize, &numel))
        return ld_error_set(err, LD_E_INPUT,
                            "%s: tensor '%s': shape %s has more elements than can be addressed",
                            label, name, shape_text(t->shape, t->ndim, shp, sizeof shp));
    size_t nbytes = (size_t)numel * esize;
    if (r->begin > r->end)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: tensor '%s': data_offsets [%llu, %llu] run backwards", label, name,
                            (unsigned long long)r->begin, (unsigned long long)r->end);
    if (r->end > data_size)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: tensor '%s': data_offsets end %llu is past the end of the data "
                            "(%zu bytes after the header)",
                            label, name, (unsigned long long)r->end, data_size);
    if (r->end - r->begin != nbytes)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: tensor '%s': data_offsets [%llu, %llu] span %llu bytes but shape "
                            "%s of %s needs %zu",
                            label, name, (unsigned long long)r->begin, (unsigned long long)r->end,
                            (unsigned long long)(r->end - r->begin),
                            shape_text(t->shape, t->ndim, shp, sizeof shp), st_dtype_name(t->dtype),
                            nbytes);
    t->numel = (size_t)numel;
    t->nbytes = nbytes;
    t->data = data + r->begin;
    return LD_OK;
}

/* The byte ranges must tile [0, data_size) exactly: sorted by start, each begins where the
 * previous one ended, the first at 0 and the last at the end of the file. */
static ld_status check_tiling(const char *label, const ld_tensor *t, range *r, size_t n,
                              size_t data_size, ld_error *err)
{
    if (n > 1) qsort(r, n, sizeof *r, cmp_range);
    uint64_t at = 0;
    const char *prev = NULL;
    char pa[128], pb[128];
    for (size_t i = 0; i < n; i++) {
        const char *name = ld_jp_printable(t[r[i].index].name, pb, sizeof pb);
        if (r[i].begin < at)
            return ld_error_set(err, LD_E_INPUT,
                                "%s: tensors '%s' and '%s' overlap (bytes %llu..%llu of the data)",
                                label, ld_jp_printable(prev, pa, sizeof pa), name,
                                (unsigned long long)r[i].begin, (unsigned long long)at);
        if (r[i].begin > at)
            return ld_error_set(err, LD_E_INPUT,
                                "%s: a gap of %llu bytes in the data before tensor '%s' (bytes "
                                "%llu..%llu belong to no tensor)",
                                label, (unsigned long long)(r[i].begin - at), name,
                                (unsigned long long)at, (unsigned long long)r[i].begin);
        at = r[i].end;
        prev = t[r[i].index].name;
    }
    if (at != data_size)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: the tensors end at data byte %llu but the file holds %zu bytes of "
                            "data (%llu trailing bytes belong to no tensor)",
                            label, (unsigned long long)at, data_size,
                            (unsigned long long)(data_size - at));
    return LD_OK;
}

static ld_status parse_image(ld_st_file *f, ld_error *err)
{
    const char *label = f->path;
    if (f->size < 8)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: %zu bytes, too short for a safetensors file (8-byte header "
                            "length first)",
                            label, f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | f->base[i];
    if (hlen > LD_ST_MAX_HEADER)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: header length %llu is more than the %u bytes allowed (not a "
                            "safetensors file?)",
                            label, (unsigned long long)hlen, LD_ST_MAX_HEADER);
    if (hlen > f->size - 8)
        return ld_error_set(err, LD_E_INPUT,
                            "%s: header length %llu runs past the end of the file (%zu bytes): "
                            "truncated?",
                            label, (unsigned long long)hlen, f->size);
    if (hlen < 2 || f->base[8] != '{')
        return ld_error_set(err, LD_E_INPUT, "%s: the header does not start with a JSON object",
                            label);
    const unsigned char *data = f->base + 8 + hlen;
    size_t data_size = f->size - 8 - (size_t)hlen;

    char jlabel[PATH_MAX + 16];
    snprintf(jlabel, sizeof jlabel, "%s: header", label);
    ld_jp j;
    ld_jp_init(&j, (const char *)f->base + 8, (size_t)hlen, jlabel, err);
    ld_tensor *t = NULL;
    range *r = NULL;
    size_t n = 0, cap = 0, count = 0;
    bool more = true, have_meta = false;
    ld_status st = ld_jp_object_begin(&j);
    while (st == LD_OK) {
        char *key;
        st = ld_jp_object_next(&j, &count, &more, &key);
        if (st != LD_OK || !more) break;
        if (!strcmp(key, "__metadata__")) {
            free(key);
            if (have_meta) {
                st = ld_jp_fail(&j, LD_E_INPUT, "duplicate key \"__metadata__\"");
                break;
            }
            have_meta = true;
            st = parse_metadata(&j);
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            ld_tensor *nt = realloc(t, ncap * sizeof *nt);
            range *nr = nt ? realloc(r, ncap * sizeof *nr) : NULL;
            if (nt) t = nt;
            if (nr) r = nr;
            if (!nt || !nr) {
                free(key);
                st = ld_error_set(err, LD_E_NOMEM, "%s: cannot allocate %zu tensor entries", label,
                                  ncap);
                break;
            }
            cap = ncap;
        }
        memset(&t[n], 0, sizeof t[n]);
        t[n].name = key;
        r[n].index = n;
        n++;
        st = parse_tensor(&j, &t[n - 1], &r[n - 1]);
    }
    if (st == LD_OK) st = ld_jp_end(&j, true);
    if (st == LD_OK && n > 1) {
        ld_json_name *names = malloc(n * sizeof *names);
        if (!names) {
            st = ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label);
        } else {
            for (size_t i = 0; i < n; i++)
                names[i] = (ld_json_name){t[i].name, strlen(t[i].name)};
            const ld_json_name *dup = ld_json_names_duplicate(names, n, LD_JSON_NAMES_BYTEWISE);
            char pn[160];
            if (dup)
                st = ld_error_set(err, LD_E_INPUT, "%s: tensor '%s' appears twice in the header",
                                  label, ld_jp_printable(dup->s, pn, sizeof pn));
            free(names);
        }
    }
    for (size_t i = 0; i < n && st == LD_OK; i++)
        st = check_tensor(label, &t[r[i].index], &r[i], data, data_size, err);
    if (st == LD_OK) st = check_tiling(label, t, r, n, data_size, err);
    free(r);
    if (st == LD_OK && n > 1)
        qsort(t, n, sizeof *t, cmp_tensor_name); /* ld_st_at order, and ld_st_find's search */
    if (st != LD_OK) {
        free_tensors(t, n);
        return st;
    }
    f->tensors = t;
    f->n = n;
    return LD_OK;
}

static ld_status new_file(ld_st_file **out, const char *label, ld_error *err)
{
    *out = NULL;
    ld_st_file *f = calloc(1, sizeof *f);
    char *path = strdup(label ? label : "(memory)");
    if (!f || !path) {
        free(f);
        free(path);
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", label ? label : "(memory)");
    }
    f->path = path;
    f->fd = -1;
    *out = f;
    return LD_OK;
}

ld_status ld_st_parse(ld_st_file **out, const void *buf, size_t len, const char *label,
                      ld_error *err)
{
    ld_st_file *f;
    ld_status st = new_file(&f, label, err);
    if (st != LD_OK) return st;
    f->base = buf;
    f->size = len;
    st = parse_image(f, err);
    if (st != LD_OK) {
        ld_st_close(f);
        return st;
    }
    *out = f;
    return LD_OK;
}

ld_status ld_st_open(ld_st_file **out, const char *path, ld_error *err)
{
    *out = NULL;
    int fd;
    uint64_t file_size;
    ld_status open_st = ld_open_regular(path, SIZE_MAX, &fd, &file_size, err);
    if (open_st != LD_OK)
        return open_st;
    size_t size = (size_t)file_size;
    if (size < 8) {
        close(fd);
        return ld_error_set(err, LD_E_INPUT,
                            "%s: %zu bytes, too short for a safetensors file (8-byte header "
                            "length first)",
                            path, size);
    }
    struct stat sb;
    void *map = fstat(fd, &sb) == 0 ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    int map_errno = errno;
    if (map == MAP_FAILED) {
        close(fd);
        return ld_error_set(err, LD_E_IO, "%s: cannot map: %s", path, strerror(map_errno));
    }
    ld_st_file *f;
    ld_status st = new_file(&f, path, err);
    if (st != LD_OK) {
        munmap(map, size);
        close(fd);
        return st;
    }
    f->base = map;
    f->size = size;
    f->mapped = true;
    f->fd = fd;
    f->mtime_s = (int64_t)sb.st_mtim.tv_sec;
    f->mtime_ns = (int64_t)sb.st_mtim.tv_nsec;
    st = parse_image(f, err);
    if (st != LD_OK) {
        ld_st_close(f);
        return st;
    }
    *out = f;
    return LD_OK;
}

size_t ld_st_count(const ld_st_file *f)
{
    return f->n;
}
const ld_tensor *ld_st_at(const ld_st_file *f, size_t i)
{
    return i < f->n ? &f->tensors[i] : NULL;
}
const char *ld_st_path(const ld_st_file *f)
{
    return f->path;
}
size_t ld_st_size(const ld_st_file *f)
{
    return f->size;
}

size_t ld_st_offset(const ld_st_file *f, const ld_tensor *t)
{
    return (size_t)((const unsigned char *)t->data - f->base);
}

const ld_tensor *ld_st_find(const ld_st_file *f, const char *name)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[mid].name, name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

ld_status ld_st_check_unchanged(const ld_st_file *f, ld_error *err)
{
    struct stat sb;
    if (f->fd < 0)
        return LD_OK;
    if (fstat(f->fd, &sb) != 0)
        return ld_error_set(err, LD_E_IO, "%s: cannot stat: %s", f->path, strerror(errno));
    if ((uint64_t)sb.st_size != f->size)
        return ld_error_set(err, LD_E_INPUT,
                            "%s changed during the run (truncated? %lld bytes, was %zu): a "
                            "checkpoint must not be rewritten while a run reads it",
                            f->path, (long long)sb.st_size, f->size);
    if ((int64_t)sb.st_mtim.tv_sec != f->mtime_s || (int64_t)sb.st_mtim.tv_nsec != f->mtime_ns)
        return ld_error_set(err, LD_E_INPUT,
                            "%s changed during the run (rewritten in place): a checkpoint must "
                            "not be rewritten while a run reads it",
                            f->path);
    return LD_OK;
}

bool ld_st_maps(const ld_st_file *f, const void *addr)
{
    uintptr_t a = (uintptr_t)addr, base = (uintptr_t)f->base;
    return f->mapped && a >= base && a - base < f->size;
}

void ld_st_close(ld_st_file *f)
{
    if (!f) return;
    if (f->mapped) munmap((void *)f->base, f->size);
    if (f->fd >= 0) close(f->fd);
    free_tensors(f->tensors, f->n);
    free(f->path);
    free(f);
}

/* ---- writer ---- */

static ld_status write_all(int fd, const char *path, const void *p, size_t n, ld_error *err)
{
    const unsigned char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return ld_error_set(err, LD_E_IO, "%s: write failed: %s", path,
                                w < 0 ? strerror(errno) : "no progress");
        b += w;
        n -= (size_t)w;
    }
    return LD_OK;
}

/* The header JSON, padded with spaces to a multiple of 8 bytes; sizes[i] gets each entry's bytes.
 */
static ld_status build_header(const char *path, const ld_st_entry *e, size_t n, size_t *sizes,
                              char **out, size_t *out_len, ld_error *err)
{
    ld_buf b = {0};
    uint64_t offset = 0;
    ld_buf_printf(&b, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n; i++) {
        uint64_t numel;
        size_t esize = ld_dtype_size(e[i].dtype);
        if (e[i].ndim < 0 || e[i].ndim > LD_MAX_NDIM || !e[i].name ||
            !ld_shape_numel(e[i].shape, e[i].ndim, SIZE_MAX / esize, &numel) ||
            !ld_add_u64(offset, numel * esize, &offset)) {
            ld_buf_free(&b);
            return ld_error_set(err, LD_E_INTERNAL, "%s: tensor %zu has an invalid shape", path, i);
        }
        sizes[i] = (size_t)(numel * esize);
        ld_buf_printf(&b, ",");
        ld_json_put_string(&b, e[i].name, strlen(e[i].name), false);
        ld_buf_printf(&b, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(e[i].dtype));
        for (int d = 0; d < e[i].ndim; d++)
            ld_buf_printf(&b, "%s%lld", d ? "," : "", (long long)e[i].shape[d]);
        ld_buf_printf(&b, "],\"data_offsets\":[%llu,%llu]}",
                      (unsigned long long)(offset - sizes[i]), (unsigned long long)offset);
    }
    ld_buf_printf(&b, "}");
    while (!ld_buf_failed(&b) && b.len % 8 != 0)
        ld_buf_printf(&b, " ");
    size_t len = b.len;
    char *text = ld_buf_take(&b);
    if (!text) return ld_error_set(err, LD_E_NOMEM, "%s: cannot build the header", path);
    if (len > LD_ST_MAX_HEADER) {
        free(text);
        return ld_error_set(err, LD_E_USAGE, "%s: header of %zu bytes is over the limit", path,
                            len);
    }
    *out = text;
    *out_len = len;
    return LD_OK;
}

ld_status ld_st_write_ranges(const char *path, const ld_st_entry *entries, size_t n,
                             ld_st_fill_range_fn fill, void *ctx, size_t chunk_bytes, ld_error *err)
{
    chunk_bytes -= chunk_bytes % 8;
    if (chunk_bytes == 0) chunk_bytes = 8;
    size_t *sizes = calloc(n ? n : 1, sizeof *sizes);
    if (!sizes) return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", path);
    char *header = NULL;
    size_t hlen = 0;
    ld_status st = build_header(path, entries, n, sizes, &header, &hlen, err);
    if (st != LD_OK) {
        free(sizes);
        return st;
    }
    char tmp[PATH_MAX];
    unsigned char *buf = NULL;
    int fd = -1;
    st = ld_create_temp(path, path, tmp, sizeof tmp, &fd, err);
    if (st != LD_OK)
        goto done;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    st = write_all(fd, path, len8, 8, err);
    if (st == LD_OK) st = write_all(fd, path, header, hlen, err);
    buf = malloc(chunk_bytes);
    if (st == LD_OK && !buf)
        st = ld_error_set(err, LD_E_NOMEM, "%s: cannot allocate a %zu-byte buffer", path,
                          chunk_bytes);
    for (size_t i = 0; i < n && st == LD_OK; i++) {
        for (size_t off = 0; off < sizes[i] && st == LD_OK; off += chunk_bytes) {
            size_t k = LD_MIN(chunk_bytes, sizes[i] - off);
            st = fill(ctx, i, off, buf, k, err);
            if (st == LD_OK) st = write_all(fd, path, buf, k, err);
        }
    }
    if (st == LD_OK && fsync(fd) != 0)
        st = ld_error_set(err, LD_E_IO, "%s: cannot flush: %s", path, strerror(errno));
    if (close(fd) != 0 && st == LD_OK)
        st = ld_error_set(err, LD_E_IO, "%s: cannot close: %s", path, strerror(errno));
    fd = -1;
    if (st == LD_OK && rename(tmp, path) != 0)
        st = ld_error_set(err, LD_E_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (st != LD_OK) unlink(tmp);
done:
    if (fd >= 0) close(fd);
    free(buf);
    free(header);
    free(sizes);
    return st;
}

/* ld_st_write on top of ld_st_write_ranges: one chunk as large as the largest tensor. */
typedef struct whole_fill {
    ld_st_fill_fn fill;
    void *ctx;
} whole_fill;

static ld_status fill_whole(void *ctx, size_t index, size_t offset, void *buf, size_t nbytes,
                            ld_error *err)
{
    (void)offset; /* always 0: the chunk holds the whole tensor */
    const whole_fill *w = ctx;
    return w->fill(w->ctx, index, buf, nbytes, err);
}

ld_status ld_st_write(const char *path, const ld_st_entry *entries, size_t n, ld_st_fill_fn fill,
                      void *ctx, ld_error *err)
{
    size_t largest = 8;
    for (size_t i = 0; i < n; i++) {
        uint64_t numel;
        if (entries[i].ndim >= 0 && entries[i].ndim <= LD_MAX_NDIM &&
            ld_shape_numel(entries[i].shape, entries[i].ndim, SIZE_MAX / 4, &numel))
            largest = LD_MAX(largest, (size_t)numel * ld_dtype_size(entries[i].dtype));
    }
    largest += (8 - largest % 8) % 8;
    whole_fill w = {fill, ctx};
    return ld_st_write_ranges(path, entries, n, fill_whole, &w, largest, err);
}

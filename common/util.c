/* util.c — internal helpers shared by the layerdiff libraries (see util.h). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

bool ld_shape_numel(const int64_t *shape, int ndim, uint64_t max, uint64_t *out)
{
    /* Zeros are skipped in the product, so the order of the dims never decides: [0, 2^62, 2^62]
     * and [2^62, 2^62, 0] are both refused, [0, 8] and [8, 0] both hold 0 elements. */
    uint64_t n = 1;
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return false;
        if (shape[i] == 0)
            empty = true;
        else if (!ld_mul_u64(n, (uint64_t)shape[i], &n) || n > max)
            return false;
    }
    *out = empty ? 0 : n;
    return true;
}

ld_status ld_open_regular(const char *path, uint64_t max_bytes, int *fd_out, uint64_t *size,
                          ld_error *err)
{
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever; a
     * regular file ignores the flag, so reads stay blocking. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return ld_error_set(err, errno == ENOENT ? LD_E_INPUT : LD_E_IO, "%s: cannot open: %s",
                            path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ld_error_set(err, LD_E_INPUT, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return ld_error_set(err, LD_E_INPUT, "%s: file is %llu bytes, more than the %llu allowed",
                            path, (unsigned long long)st.st_size, (unsigned long long)max_bytes);
    }
    *fd_out = fd;
    *size = (uint64_t)st.st_size;
    return LD_OK;
}

ld_status ld_read_file(const char *path, size_t max_bytes, char **buf, size_t *len, ld_error *err)
{
    *buf = NULL;
    *len = 0;
    int fd;
    uint64_t file_size;
    ld_status status = ld_open_regular(path, max_bytes, &fd, &file_size, err);
    if (status != LD_OK)
        return status;
    size_t size = (size_t)file_size;
    char *p = malloc(size + 1);
    if (!p) {
        close(fd);
        return ld_error_set(err, LD_E_NOMEM, "%s: cannot allocate %zu bytes", path, size + 1);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, p + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = errno;
            free(p);
            close(fd);
            return ld_error_set(err, LD_E_IO, "%s: read failed: %s", path,
                                r == 0 ? "file shrank while reading" : strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    p[size] = '\0';
    *buf = p;
    *len = size;
    return LD_OK;
}

ld_status ld_read_stream(int fd, const char *name, size_t max_bytes, char **buf, size_t *len,
                         ld_error *err)
{
    *buf = NULL;
    *len = 0;
    size_t cap = 4096, got = 0;
    char *p = malloc(cap);
    if (!p)
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", name);
    for (;;) {
        if (got == cap - 1) { /* room for the NUL, and one byte past the limit to detect it */
            size_t ncap = cap > max_bytes / 2 ? max_bytes + 2 : cap * 2;
            char *q = ncap > cap ? realloc(p, ncap) : NULL;
            if (!q) {
                free(p);
                return ncap > cap ? ld_error_set(err, LD_E_NOMEM, "%s: out of memory", name)
                                  : ld_error_set(err, LD_E_INPUT, "%s: more than %zu bytes",
                                                 name, max_bytes);
            }
            p = q, cap = ncap;
        }
        ssize_t r = read(fd, p + got, cap - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(p);
            return ld_error_set(err, LD_E_IO, "%s: read failed: %s", name, strerror(e));
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got > max_bytes) {
            free(p);
            return ld_error_set(err, LD_E_INPUT, "%s: more than %zu bytes", name, max_bytes);
        }
    }
    p[got] = '\0';
    *buf = p;
    *len = got;
    return LD_OK;
}

/* Writes all of data to fd, EINTR retried; errno set when it returns false. */
static bool write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return false;
        }
        done += (size_t)w;
    }
    return true;
}

/* The descriptor (1 or 2) of this process's stdout or stderr when st is the file it is open on,
 * else -1. */
static int own_stdio_fd(const struct stat *st)
{
    for (int fd = 1; fd <= 2; fd++) {
        struct stat so;
        if (fstat(fd, &so) == 0 && so.st_dev == st->st_dev && so.st_ino == st->st_ino)
            return fd;
    }
    return -1;
}

/* The directory path is in, as written (everything before the last '/'; "." without one, "/"
 * for a file in the root) into parent (PATH_MAX bytes), and its last component; false when it
 * does not fit. */
static bool parent_dir(const char *path, char *parent, const char **base)
{
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    size_t n = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path);
    if (n >= PATH_MAX)
        return false;
    memcpy(parent, slash ? path : ".", slash ? n : 1);
    parent[slash ? n : 1] = 0;
    return true;
}

/* Where path leads once every symbolic link in its last component is followed, as text in out
 * (size bytes): path itself when it is no link; a link's target taken relative to the link's
 * directory. A dangling link leads to the file that writing through it would create. False on a
 * loop or a name that does not fit. */
static bool follow_links(const char *path, char *out, size_t size)
{
    char cur[PATH_MAX], target[PATH_MAX];
    if ((size_t)snprintf(cur, sizeof cur, "%s", path) >= sizeof cur)
        return false;
    for (int hops = 0; hops < 40; hops++) {
        struct stat sl;
        ssize_t n;
        if (lstat(cur, &sl) != 0 || !S_ISLNK(sl.st_mode) ||
            (n = readlink(cur, target, sizeof target - 1)) < 0)
            return (size_t)snprintf(out, size, "%s", cur) < size;
        target[n] = 0;
        const char *slash = strrchr(cur, '/');
        if (target[0] == '/' || !slash) {
            memcpy(cur, target, (size_t)n + 1);
        } else { /* relative to the link's directory: keep cur up to its last '/' */
            size_t dl = (size_t)(slash - cur) + 1;
            if (dl + (size_t)n >= sizeof cur)
                return false;
            memcpy(cur + dl, target, (size_t)n + 1);
        }
    }
    return false;
}

ld_status ld_create_temp(const char *target, const char *name, char *tmp, size_t size, int *fd,
                         ld_error *err)
{
    /* O_EXCL creates a file that did not exist, and never follows a link: nothing already there
     * (an input named like the temporary, a link planted in its place, a second output of the
     * same command) is truncated or written through. A name taken is skipped. */
    static unsigned serial;
    for (int tries = 0; tries < 1000; tries++) {
        unsigned n = __atomic_fetch_add(&serial, 1u, __ATOMIC_RELAXED);
        int w = snprintf(tmp, size, "%s.%ld-%u.tmp", target, (long)getpid(), n);
        if (w < 0 || (size_t)w >= size)
            return ld_error_set(err, LD_E_USAGE, "%s: path too long", name);
        *fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (*fd >= 0)
            return LD_OK;
        if (errno != EEXIST)
            break;
    }
    /* Messages name the file the user asked for, not the temporary beside it. */
    return ld_error_set(err, LD_E_IO, "%s: cannot create: %s", name, strerror(errno));
}

ld_status ld_write_file(const char *path, const void *data, size_t len, ld_error *err)
{
    /* Written in place: the file this process's stdout or stderr is open on (/dev/stdout
     * redirected to a file or a pipe), through that descriptor so that the shell's offset and
     * O_APPEND hold ('>>' appends, and nothing already there is overwritten); and a device, FIFO
     * or socket (/dev/null, >(jq .)). Renaming over them would replace the device node, or the
     * link to it (/dev/stdout itself, as root), with a regular file, and output meant for stdout
     * would never reach it. */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        int own = own_stdio_fd(&st);
        if (own >= 0 || !S_ISREG(st.st_mode)) {
            int fd = own >= 0 ? own : open(path, O_WRONLY | O_CLOEXEC);
            if (fd < 0)
                return ld_error_set(err, LD_E_IO, "%s: cannot open: %s", path, strerror(errno));
            bool ok = write_all(fd, data, len);
            int e = errno;
            if (own < 0 && close(fd) != 0 && ok) {
                ok = false;
                e = errno;
            }
            return ok ? LD_OK
                      : ld_error_set(err, LD_E_IO, "%s: write failed: %s", path, strerror(e));
        }
    }
    /* A link to a regular file: the new file replaces its target, and the link stays; a link whose
     * target does not exist yet creates it (follow_links: the file ld_same_path takes it for). */
    char real[PATH_MAX];
    struct stat sl;
    const char *target = path;
    if (lstat(path, &sl) == 0 && S_ISLNK(sl.st_mode) &&
        (realpath(path, real) || follow_links(path, real, sizeof real)))
        target = real;
    char tmp[PATH_MAX];
    int fd;
    ld_status created = ld_create_temp(target, path, tmp, sizeof tmp, &fd, err);
    if (created != LD_OK)
        return created;
    if (!write_all(fd, data, len)) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return ld_error_set(err, LD_E_IO, "%s: write failed: %s", path, strerror(e));
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return ld_error_set(err, LD_E_IO, "%s: cannot flush: %s", path, strerror(e));
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return ld_error_set(err, LD_E_IO, "%s: cannot flush: %s", path, strerror(e));
    }
    if (rename(tmp, target) != 0) {
        int e = errno;
        unlink(tmp);
        return ld_error_set(err, LD_E_IO, "%s: cannot rename into place: %s", path, strerror(e));
    }
    return LD_OK;
}

ld_status ld_refuse_overwrite(const char *output, const char *const *inputs, size_t n,
                              ld_error *err)
{
    /* Also what writing would only find out at the end, after all the work: no name, a
     * directory where the file goes, or no directory for it to go in. */
    struct stat sd;
    if (!*output)
        return ld_error_set(err, LD_E_USAGE, "an empty path: give the file to write");
    if (stat(output, &sd) == 0 && S_ISDIR(sd.st_mode))
        return ld_error_set(err, LD_E_USAGE, "%s is a directory, not a file to write", output);
    char parent[PATH_MAX];
    const char *base;
    if (parent_dir(output, parent, &base)) {
        if (stat(parent, &sd) != 0)
            return ld_error_set(err, LD_E_USAGE, "%s: the directory %s %s", output, parent,
                                errno == ENOENT ? "does not exist" : strerror(errno));
        if (!S_ISDIR(sd.st_mode))
            return ld_error_set(err, LD_E_USAGE, "%s: %s is not a directory", output, parent);
    }
    struct stat so, si;
    if (stat(output, &so) != 0)
        return LD_OK; /* not there (yet): writing it overwrites nothing */
    for (size_t i = 0; i < n; i++)
        if (inputs[i] && stat(inputs[i], &si) == 0 && si.st_dev == so.st_dev &&
            si.st_ino == so.st_ino)
            return ld_error_set(err, LD_E_USAGE,
                                "%s is the same file as the input %s: refusing to overwrite an "
                                "input",
                                output, inputs[i]);
    return LD_OK;
}

/* The resolved directory of path (realpath of everything before the last '/') and its last
 * component; false when the directory does not resolve or the result does not fit. */
static bool resolve_parent(const char *path, char *dir, const char **base)
{
    char parent[PATH_MAX];
    return parent_dir(path, parent, base) && realpath(parent, dir) != NULL;
}

bool ld_same_path(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char fa[PATH_MAX], fb[PATH_MAX], da[PATH_MAX], db[PATH_MAX];
    const char *ba, *bb;
    if (!follow_links(a, fa, sizeof fa) || !follow_links(b, fb, sizeof fb) ||
        !resolve_parent(fa, da, &ba) || !resolve_parent(fb, db, &bb))
        return !strcmp(a, b);
    return !strcmp(da, db) && !strcmp(ba, bb);
}

bool ld_path_join(char *out, size_t size, const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    int n = snprintf(out, size, "%.*s/%s", (int)dl, dir, name);
    return n >= 0 && (size_t)n < size;
}

ld_status ld_mkdir(const char *path, ld_error *err)
{
    if (mkdir(path, 0755) == 0)
        return LD_OK;
    if (errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return LD_OK;
        return ld_error_set(err, LD_E_USAGE, "%s: exists and is not a directory", path);
    }
    return ld_error_set(err, LD_E_IO, "%s: cannot create directory: %s", path, strerror(errno));
}

bool ld_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s)
        return false;
    const char *p = s;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    } else if (*p == '+') {
        p++;
    }
    if (*p < '0' || *p > '9')
        return false;
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
        if (v > (uint64_t)INT64_MAX + 1)
            return false;
    }
    int64_t r;
    if (neg)
        r = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else if (v > (uint64_t)INT64_MAX)
        return false;
    else
        r = (int64_t)v;
    if (r < min || r > max)
        return false;
    *out = r;
    return true;
}

bool ld_parse_int(const char *s, int min, int max, int *out)
{
    int64_t v;
    if (!ld_parse_i64(s, min, max, &v))
        return false;
    *out = (int)v;
    return true;
}

bool ld_parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return false;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    /* ERANGE also flags an underflow (1e-308 is subnormal, 1e-400 rounds to 0): the value is
     * still the nearest double and finite; only an overflow is refused. */
    if ((errno != 0 && !(errno == ERANGE && fabs(v) <= DBL_MIN)) || end == s || *end != '\0' ||
        !isfinite(v))
        return false;
    *out = v;
    return true;
}

ld_status ld_parse_i32_list(const char *s, int32_t min, int32_t max, int32_t **out, size_t *n,
                            ld_error *err)
{
    *out = NULL;
    *n = 0;
    if (!s || !*s)
        return ld_error_set(err, LD_E_USAGE, "empty list");
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *v = malloc(cap * sizeof *v);
    if (!v)
        return ld_error_set(err, LD_E_NOMEM, "cannot allocate a list of %zu numbers", cap);
    size_t count = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[32];
        int64_t x;
        if (len == 0 || len >= sizeof item) {
            free(v);
            return ld_error_set(err, LD_E_USAGE, "the item at index %zu of '%s' is %s", count, s,
                                len == 0 ? "empty" : "too long");
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (!ld_parse_i64(item, min, max, &x)) {
            free(v);
            return ld_error_set(err, LD_E_USAGE,
                                "'%s' (at index %zu) is not an integer in [%d, %d]",
                                item, count, (int)min, (int)max);
        }
        v[count++] = (int32_t)x;
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = v;
    *n = count;
    return LD_OK;
}

ld_status ld_ranges_parse(const char *s, ld_ranges *out, ld_error *err)
{
    memset(out, 0, sizeof *out);
    if (!s || !*s)
        return LD_OK;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[48];
        if (len == 0 || len >= sizeof item)
            return ld_error_set(err, LD_E_USAGE, "bad range list '%s': %s item", s,
                                len == 0 ? "an empty" : "a too long");
        if (out->n >= LD_RANGES_MAX)
            return ld_error_set(err, LD_E_USAGE, "bad range list '%s': more than %d items", s,
                                LD_RANGES_MAX);
        memcpy(item, p, len);
        item[len] = '\0';
        int lo, hi;
        char *dash = strchr(item, '-');
        if (dash) {
            *dash = '\0';
            if (!ld_parse_int(item, 0, INT_MAX, &lo))
                return ld_error_set(err, LD_E_USAGE, "bad range '%.*s' in '%s'", (int)len, p, s);
            if (dash[1] == '\0')
                hi = INT_MAX;
            else if (!ld_parse_int(dash + 1, 0, INT_MAX, &hi) || hi < lo)
                return ld_error_set(err, LD_E_USAGE, "bad range '%.*s' in '%s'", (int)len, p, s);
        } else {
            if (!ld_parse_int(item, 0, INT_MAX, &lo))
                return ld_error_set(err, LD_E_USAGE, "bad range '%s' in '%s'", item, s);
            hi = lo;
        }
        out->lo[out->n] = lo;
        out->hi[out->n] = hi;
        out->n++;
        if (!comma)
            break;
        p = comma + 1;
    }
    return LD_OK;
}

bool ld_ranges_contains(const ld_ranges *r, int v)
{
    if (r->n == 0)
        return true;
    for (int i = 0; i < r->n; i++)
        if (v >= r->lo[i] && v <= r->hi[i])
            return true;
    return false;
}

bool ld_glob_match(const char *pat, const char *s)
{
    /* Iterative matcher with one backtrack point for the last '*': linear in practice. */
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat == '?' || *pat == *s) {
            pat++;
            s++;
        } else if (star) {
            pat = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

void ld_utc_now(char *buf, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

double ld_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool byte_prints(unsigned b)
{
    return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

uint32_t ld_byte_level_cp(unsigned b)
{
    if (byte_prints(b)) return b;
    uint32_t n = 0;
    for (unsigned c = 0; c < b; c++)
        n += !byte_prints(c);
    return 256 + n;
}

int ld_byte_level_byte(uint32_t cp)
{
    if (cp < 256) return byte_prints(cp) ? (int)cp : -1;
    uint32_t n = 256;
    for (unsigned c = 0; c < 256; c++)
        if (!byte_prints(c) && n++ == cp) return (int)c;
    return -1;
}

uint64_t ld_fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

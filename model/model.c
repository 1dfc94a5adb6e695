/* model.c — opens a Qwen3 checkpoint directory: config.json, then model.safetensors or the shards
 * named by model.safetensors.index.json, and binds every weight by name with the shape the config
 * demands (model.h). Weights stay in the mappings, in their stored dtype. Not a forward pass. */
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_out.h"
#include "json_pull.h"
#include "util.h"

#define LD_CONFIG_FILE_MAX (4u << 20)
#define LD_INDEX_FILE_MAX  (64u << 20)
#define LD_MAX_SHARDS      4096
#define LD_LIST_SHOWN      8 /* names listed per kind of problem; the rest are counted */

static const char index_name[] = "model.safetensors.index.json";
static const char single_name[] = "model.safetensors";

/* A list of problems for one error message: the first LD_LIST_SHOWN in full, the rest counted. */
typedef struct problems {
    ld_buf text;
    size_t count;
} problems;

static void add_problem(problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_problem(problems *p, const char *fmt, ...)
{
    p->count++;
    if (p->count > LD_LIST_SHOWN) return;
    char item[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(item, sizeof item, fmt, ap);
    va_end(ap);
    ld_buf_printf(&p->text, "%s%s", p->count > 1 ? ", " : "", item);
}

/* Appends "what (N): a, b, ... (and M more)" to msg when p holds anything. */
static void flush_problems(ld_buf *msg, const char *what, problems *p)
{
    if (p->count == 0) return;
    ld_buf_printf(msg, "%s%s (%zu): %s", msg->len ? "; " : "", what, p->count,
                  ld_buf_cstr(&p->text));
    if (p->count > LD_LIST_SHOWN) ld_buf_printf(msg, " (and %zu more)", p->count - LD_LIST_SHOWN);
    ld_buf_free(&p->text);
}

/* ---- model.safetensors.index.json ---- */

typedef struct map_entry {
    char *name;  /* tensor */
    char *shard; /* file name inside the directory */
} map_entry;

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const map_entry *)a)->name, ((const map_entry *)b)->name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_map(map_entry *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].name);
        free(m[i].shard);
    }
    free(m);
}

/* Why a shard name from the index may not be used, or NULL: it must name a file directly inside
 * the checkpoint directory. */
static const char *bad_shard_name(const char *s)
{
    if (!*s) return "is empty";
    if (s[0] == '/') return "is an absolute path";
    if (!strcmp(s, "..") || !strncmp(s, "../", 3) || strstr(s, "/../") ||
        (strlen(s) >= 3 && !strcmp(s + strlen(s) - 3, "/..")))
        return "leaves the directory ('..')";
    if (strchr(s, '/')) return "contains '/' (shards must sit in the checkpoint directory itself)";
    if (!strcmp(s, ".")) return "names the directory itself";
    return NULL;
}

/* Reads weight_map (tensor -> shard file) from the index, sorted by tensor name. */
static ld_status read_index(const char *path, map_entry **out, size_t *out_n, ld_error *err)
{
    *out = NULL;
    *out_n = 0;
    char *text;
    size_t len;
    ld_status st = ld_read_file(path, LD_INDEX_FILE_MAX, &text, &len, err);
    if (st != LD_OK) return st;
    ld_jp j;
    ld_jp_init(&j, text, len, path, err);
    map_entry *map = NULL;
    size_t n = 0, cap = 0, count = 0;
    bool more = true, have_map = false;
    ld_jp_keys keys = {0};
    st = ld_jp_object_begin(&j);
    while (st == LD_OK) {
        char *key;
        st = ld_jp_object_next(&j, &count, &more, &key);
        if (st != LD_OK || !more || (st = ld_jp_keys_add(&j, &keys, key)) != LD_OK) break;
        if (strcmp(key, "weight_map") != 0) {
            if (!strcmp(key, "metadata") && ld_jp_peek(&j) != LD_JP_OBJECT &&
                ld_jp_peek(&j) != LD_JP_NULL) {
                st = ld_jp_fail(&j, LD_E_INPUT, "metadata must be an object, found %s",
                                ld_jp_kind_name(ld_jp_peek(&j)));
                break;
            }
            st = ld_jp_skip(&j);
            continue;
        }
        if (have_map) {
            st = ld_error_set(err, LD_E_INPUT, "%s: duplicate key \"weight_map\"", path);
            break;
        }
        have_map = true;
        if (ld_jp_peek(&j) != LD_JP_OBJECT) {
            st = ld_jp_fail(&j, LD_E_INPUT, "weight_map must be an object, found %s",
                            ld_jp_kind_name(ld_jp_peek(&j)));
            break;
        }
        st = ld_jp_object_begin(&j);
        size_t mcount = 0;
        bool mmore = true;
        while (st == LD_OK) {
            char *name;
            st = ld_jp_object_next(&j, &mcount, &mmore, &name);
            if (st != LD_OK || !mmore) break;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 256;
                map_entry *nm = realloc(map, ncap * sizeof *nm);
                if (!nm) {
                    free(name);
                    st = ld_error_set(err, LD_E_NOMEM, "%s: out of memory", path);
                    break;
                }
                map = nm;
                cap = ncap;
            }
            map[n].name = name;
            map[n].shard = NULL;
            n++;
            if (ld_jp_peek(&j) != LD_JP_STRING) {
                char pn[160];
                st = ld_jp_fail(
                    &j, LD_E_INPUT, "weight_map entry '%s' must be a file name, found %s",
                    ld_jp_printable(name, pn, sizeof pn), ld_jp_kind_name(ld_jp_peek(&j)));
                break;
            }
            st = ld_jp_string(&j, &map[n - 1].shard, NULL);
        }
    }
    if (st == LD_OK) st = ld_jp_end(&j, false);
    if (st == LD_OK) {
        const char *dup = ld_jp_keys_duplicate(&keys);
        if (dup) st = ld_error_set(err, LD_E_INPUT, "%s: duplicate key \"%.100s\"", path, dup);
    }
    ld_jp_keys_free(&keys);
    free(text);
    if (st == LD_OK && !have_map)
        st = ld_error_set(err, LD_E_INPUT, "%s: weight_map is missing", path);
    if (st == LD_OK && n == 0) st = ld_error_set(err, LD_E_INPUT, "%s: weight_map is empty", path);
    if (st == LD_OK) {
        qsort(map, n, sizeof *map, cmp_entry);
        for (size_t i = 1; i < n && st == LD_OK; i++) {
            char pn[160];
            if (!strcmp(map[i - 1].name, map[i].name))
                st = ld_error_set(err, LD_E_INPUT, "%s: weight_map lists '%s' twice", path,
                                  ld_jp_printable(map[i].name, pn, sizeof pn));
        }
    }
    for (size_t i = 0; i < n && st == LD_OK; i++) {
        const char *why = bad_shard_name(map[i].shard);
        char ps[160], pn[160];
        if (why)
            st = ld_error_set(err, LD_E_INPUT, "%s: shard \"%s\" (for tensor '%s') %s", path,
                              ld_jp_printable(map[i].shard, ps, sizeof ps),
                              ld_jp_printable(map[i].name, pn, sizeof pn), why);
    }
    if (st != LD_OK) {
        free_map(map, n);
        return st;
    }
    *out = map;
    *out_n = n;
    return LD_OK;
}

/* The distinct shard names of the map, sorted (pointers into the map). */
static ld_status distinct_shards(const char *index_path, const map_entry *map, size_t n,
                                 char ***out, size_t *out_n, ld_error *err)
{
    char **s = malloc(n * sizeof *s);
    if (!s) return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", index_path);
    for (size_t i = 0; i < n; i++)
        s[i] = map[i].shard;
    qsort(s, n, sizeof *s, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || strcmp(s[k - 1], s[i]) != 0) s[k++] = s[i];
    if (k > LD_MAX_SHARDS) {
        free(s);
        return ld_error_set(err, LD_E_INPUT, "%s: %zu shard files, more than the %d allowed",
                            index_path, k, LD_MAX_SHARDS);
    }
    *out = s;
    *out_n = k;
    return LD_OK;
}

/* Checks that each shard exists and resolves (symlinks followed) to a file directly inside the
 * checkpoint directory; all missing shards are named at once. */
static ld_status check_shard_paths(const char *dir, const char *index_path, char **shards, size_t n,
                                   ld_error *err)
{
    char real_dir[PATH_MAX];
    if (!realpath(dir, real_dir))
        return ld_error_set(err, LD_E_IO, "%s: cannot resolve: %s", dir, strerror(errno));
    problems missing = {0};
    ld_status st = LD_OK;
    for (size_t i = 0; i < n && st == LD_OK; i++) {
        char path[PATH_MAX], real[PATH_MAX];
        char ps[160];
        if (!ld_path_join(path, sizeof path, dir, shards[i])) {
            st = ld_error_set(err, LD_E_INPUT, "%s: shard path too long", index_path);
            break;
        }
        struct stat sb;
        if (lstat(path, &sb) != 0 && errno == ENOENT) {
            add_problem(&missing, "%s", ld_jp_printable(shards[i], ps, sizeof ps));
            continue;
        }
        if (!realpath(path, real)) {
            if (errno == ENOENT)
                add_problem(&missing, "%s (a dangling link)",
                            ld_jp_printable(shards[i], ps, sizeof ps));
            else
                st = ld_error_set(err, LD_E_IO, "%s: cannot resolve: %s", path, strerror(errno));
            continue;
        }
        char *slash = strrchr(real, '/');
        size_t parent_len = slash ? (size_t)(slash - real) : 0;
        bool inside =
            slash && parent_len == strlen(real_dir) && !strncmp(real, real_dir, parent_len);
        if (!strcmp(real_dir, "/")) /* the root directory: its files have parent length 0 */
            inside = slash == real;
        if (!inside)
            st =
                ld_error_set(err, LD_E_INPUT,
                             "%s: shard %s resolves to %s, outside the checkpoint directory %s "
                             "(symbolic links out of the directory are refused)",
                             index_path, ld_jp_printable(shards[i], ps, sizeof ps), real, real_dir);
    }
    if (st == LD_OK && missing.count) {
        ld_buf msg = {0};
        flush_problems(&msg, "missing shard files", &missing);
        st = ld_error_set(err, LD_E_INPUT, "%s: %s, listed in %s", dir,
                          msg.len ? ld_buf_cstr(&msg) : "missing shard files", index_path);
        ld_buf_free(&msg);
    }
    ld_buf_free(&missing.text);
    return st;
}

/* Every tensor the index lists is in the shard it names, and every tensor of every shard is
 * listed there (so no tensor sits in two shards). */
static ld_status check_shard_contents(const char *index_path, const map_entry *map, size_t n,
                                      char **shards, ld_st_file **files, size_t nfiles,
                                      ld_error *err)
{
    problems absent = {0}, unlisted = {0}, elsewhere = {0};
    char pn[160], ps[160], pt[160];
    for (size_t i = 0; i < n; i++) {
        char **hit = bsearch(&map[i].shard, shards, nfiles, sizeof *shards, cmp_str);
        if (!hit || !ld_st_find(files[hit - shards], map[i].name))
            add_problem(&absent, "'%s' (in %s)", ld_jp_printable(map[i].name, pn, sizeof pn),
                        ld_jp_printable(map[i].shard, ps, sizeof ps));
    }
    for (size_t f = 0; f < nfiles; f++) {
        for (size_t t = 0; t < ld_st_count(files[f]); t++) {
            const char *name = ld_st_at(files[f], t)->name;
            map_entry key = {(char *)name, NULL};
            const map_entry *e = bsearch(&key, map, n, sizeof *map, cmp_entry);
            if (!e)
                add_problem(&unlisted, "'%s' (in %s)", ld_jp_printable(name, pn, sizeof pn),
                            ld_jp_printable(shards[f], ps, sizeof ps));
            else if (strcmp(e->shard, shards[f]) != 0)
                add_problem(&elsewhere, "'%s' is in %s but the index says %s",
                            ld_jp_printable(name, pn, sizeof pn),
                            ld_jp_printable(shards[f], ps, sizeof ps),
                            ld_jp_printable(e->shard, pt, sizeof pt));
        }
    }
    ld_status st = LD_OK;
    if (absent.count || unlisted.count || elsewhere.count) {
        ld_buf msg = {0};
        flush_problems(&msg, "listed but not in their shard", &absent);
        flush_problems(&msg, "in a shard but not listed", &unlisted);
        flush_problems(&msg, "in another shard than listed", &elsewhere);
        st = ld_error_set(err, LD_E_INPUT, "%s: the shards do not match the index: %s", index_path,
                          msg.len ? ld_buf_cstr(&msg) : "out of memory");
        ld_buf_free(&msg);
    }
    ld_buf_free(&absent.text);
    ld_buf_free(&unlisted.text);
    ld_buf_free(&elsewhere.text);
    return st;
}

static ld_status open_sharded(ld_model *m, const char *index_path, ld_error *err)
{
    map_entry *map;
    size_t n;
    ld_status st = read_index(index_path, &map, &n, err);
    if (st != LD_OK) return st;
    char **shards = NULL;
    size_t nshards = 0;
    st = distinct_shards(index_path, map, n, &shards, &nshards, err);
    if (st == LD_OK) st = check_shard_paths(m->dir, index_path, shards, nshards, err);
    if (st == LD_OK) {
        m->files = calloc(nshards, sizeof *m->files);
        if (!m->files) st = ld_error_set(err, LD_E_NOMEM, "%s: out of memory", index_path);
    }
    for (size_t i = 0; i < nshards && st == LD_OK; i++) {
        char path[PATH_MAX];
        ld_path_join(path, sizeof path, m->dir, shards[i]); /* length checked above */
        st = ld_st_open(&m->files[i], path, err);
        if (st == LD_OK) m->n_files = i + 1;
    }
    if (st == LD_OK) st = check_shard_contents(index_path, map, n, shards, m->files, nshards, err);
    free(shards);
    free_map(map, n);
    return st;
}

/* ---- binding tensors to the config ---- */

typedef struct want {
    char name[80];
    int ndim;
    int64_t shape[2];
    ld_tensor *slot;
} want;

static int cmp_want(const void *a, const void *b)
{
    return strcmp(((const want *)a)->name, ((const want *)b)->name);
}

static void add_want(want *w, size_t *n, ld_tensor *slot, int64_t d0, int64_t d1, const char *fmt,
                     ...) __attribute__((format(printf, 6, 7)));
static void add_want(want *w, size_t *n, ld_tensor *slot, int64_t d0, int64_t d1, const char *fmt,
                     ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w[*n].name, sizeof w[*n].name, fmt, ap);
    va_end(ap);
    w[*n].ndim = d1 > 0 ? 2 : 1;
    w[*n].shape[0] = d0;
    w[*n].shape[1] = d1;
    w[*n].slot = slot;
    (*n)++;
}

/* Every tensor the model reads, with its [out, in] shape from the config. */
static size_t list_wanted(ld_model *m, want *w)
{
    const ld_config *c = &m->cfg;
    int64_t H = c->hidden_size, D = c->head_dim, I = c->intermediate_size, V = c->vocab_size;
    int64_t QD = (int64_t)c->num_heads * D, KD = (int64_t)c->num_kv_heads * D;
    size_t n = 0;
    add_want(w, &n, &m->embed, V, H, "model.embed_tokens.weight");
    add_want(w, &n, &m->final_norm, H, 0, "model.norm.weight");
    if (!c->tie_word_embeddings) add_want(w, &n, &m->lm_head, V, H, "lm_head.weight");
    for (int l = 0; l < c->num_layers; l++) {
        ld_layer_weights *L = &m->layers[l];
        add_want(w, &n, &L->attn_norm, H, 0, "model.layers.%d.input_layernorm.weight", l);
        add_want(w, &n, &L->wq, QD, H, "model.layers.%d.self_attn.q_proj.weight", l);
        add_want(w, &n, &L->wk, KD, H, "model.layers.%d.self_attn.k_proj.weight", l);
        add_want(w, &n, &L->wv, KD, H, "model.layers.%d.self_attn.v_proj.weight", l);
        add_want(w, &n, &L->q_norm, D, 0, "model.layers.%d.self_attn.q_norm.weight", l);
        add_want(w, &n, &L->k_norm, D, 0, "model.layers.%d.self_attn.k_norm.weight", l);
        add_want(w, &n, &L->wo, H, QD, "model.layers.%d.self_attn.o_proj.weight", l);
        add_want(w, &n, &L->mlp_norm, H, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        add_want(w, &n, &L->wg, I, H, "model.layers.%d.mlp.gate_proj.weight", l);
        add_want(w, &n, &L->wu, I, H, "model.layers.%d.mlp.up_proj.weight", l);
        add_want(w, &n, &L->wd, H, I, "model.layers.%d.mlp.down_proj.weight", l);
    }
    return n;
}

static const ld_tensor *find_tensor(const ld_model *m, const char *name)
{
    for (size_t f = 0; f < m->n_files; f++) {
        const ld_tensor *t = ld_st_find(m->files[f], name);
        if (t) return t;
    }
    return NULL;
}

static const char *dims_text(const int64_t *shape, int ndim, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}

static ld_status bind_tensors(ld_model *m, ld_error *err)
{
    const ld_config *c = &m->cfg;
    size_t cap = 3 + 11 * (size_t)c->num_layers;
    want *w = malloc(cap * sizeof *w);
    if (!w) return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", m->dir);
    size_t n = list_wanted(m, w);
    problems missing = {0}, unexpected = {0}, wrong = {0};
    for (size_t i = 0; i < n; i++) {
        const ld_tensor *t = find_tensor(m, w[i].name);
        char have[96], need[64];
        if (!t) {
            add_problem(&missing, "%s", w[i].name);
        } else if (t->ndim != w[i].ndim || t->shape[0] != w[i].shape[0] ||
                   (w[i].ndim == 2 && t->shape[1] != w[i].shape[1])) {
            add_problem(&wrong, "%s is %s, config.json needs %s", w[i].name,
                        dims_text(t->shape, t->ndim, have, sizeof have),
                        dims_text(w[i].shape, w[i].ndim, need, sizeof need));
        } else {
            *w[i].slot = *t;
        }
    }
    qsort(w, n, sizeof *w, cmp_want);
    for (size_t f = 0; f < m->n_files; f++) {
        for (size_t i = 0; i < ld_st_count(m->files[f]); i++) {
            const char *name = ld_st_at(m->files[f], i)->name;
            want key;
            snprintf(key.name, sizeof key.name, "%s", name);
            if (strlen(name) < sizeof key.name && bsearch(&key, w, n, sizeof *w, cmp_want))
                continue;
            if (c->tie_word_embeddings && !strcmp(name, "lm_head.weight")) {
                /* transformers ties lm_head to the embedding and ignores a stored copy. */
                m->lm_head_ignored = true;
                continue;
            }
            char pn[160];
            add_problem(&unexpected, "%s", ld_jp_printable(name, pn, sizeof pn));
        }
    }
    free(w);
    ld_status st = LD_OK;
    if (missing.count || unexpected.count || wrong.count) {
        ld_buf msg = {0};
        flush_problems(&msg, "missing", &missing);
        flush_problems(&msg, "unexpected", &unexpected);
        flush_problems(&msg, "wrong shape", &wrong);
        st = ld_error_set(err, LD_E_INPUT,
                          "%s: the tensors do not match config.json (H %d, %d layers, Hq %d, "
                          "Hkv %d, D %d, I %d, V %d, %s): %s",
                          m->dir, c->hidden_size, c->num_layers, c->num_heads, c->num_kv_heads,
                          c->head_dim, c->intermediate_size, c->vocab_size,
                          c->tie_word_embeddings ? "tied" : "untied",
                          msg.len ? ld_buf_cstr(&msg) : "out of memory");
        ld_buf_free(&msg);
    }
    ld_buf_free(&missing.text);
    ld_buf_free(&unexpected.text);
    ld_buf_free(&wrong.text);
    if (st == LD_OK && c->tie_word_embeddings) m->lm_head = m->embed;
    return st;
}

/* ---- fingerprint ---- */


/* The sample of a tensor's bytes the fingerprint hashes: all of a small tensor; else the first and
 * last LD_FP_EDGE bytes and LD_FP_WORDS 8-byte words at evenly spaced offsets. The bytes are read
 * with pread on a descriptor advised for random access, not through the mapping: a page fault on
 * the mapping would read ahead (and map) up to megabytes around each sample, so a cold open would
 * read most of the file and show it all as resident. */
#define LD_FP_EDGE  256
#define LD_FP_WORDS 16

static bool read_at(int fd, uint64_t off, unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t r = pread(fd, buf, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        buf += r;
        off += (uint64_t)r;
        n -= (size_t)r;
    }
    return true;
}

static bool hash_sample(int fd, uint64_t start, size_t n, uint64_t *out)
{
    unsigned char buf[2 * LD_FP_EDGE + 8 * LD_FP_WORDS];
    uint64_t h = LD_FNV_INIT;
    if (n <= sizeof buf) {
        if (!read_at(fd, start, buf, n)) return false;
        *out = ld_fnv1a(h, buf, n);
        return true;
    }
    if (!read_at(fd, start, buf, LD_FP_EDGE) ||
        !read_at(fd, start + n - LD_FP_EDGE, buf + LD_FP_EDGE, LD_FP_EDGE))
        return false;
    for (uint64_t k = 0; k < LD_FP_WORDS; k++) {
        uint64_t off = (uint64_t)(n - 8) * k / (LD_FP_WORDS - 1);
        if (!read_at(fd, start + off, buf + 2 * LD_FP_EDGE + 8 * k, 8)) return false;
    }
    *out = ld_fnv1a(h, buf, sizeof buf);
    return true;
}

typedef struct sampled {
    const ld_tensor *t;
    uint64_t hash; /* of its sampled bytes */
} sampled;

static int cmp_sampled(const void *a, const void *b)
{
    return strcmp(((const sampled *)a)->t->name, ((const sampled *)b)->t->name);
}

static ld_status compute_fingerprint(ld_model *m, const char *config_text, size_t config_len,
                                     ld_error *err)
{
    size_t total = 0;
    for (size_t f = 0; f < m->n_files; f++)
        total += ld_st_count(m->files[f]);
    sampled *all = malloc((total ? total : 1) * sizeof *all);
    if (!all) return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", m->dir);
    size_t k = 0;
    for (size_t f = 0; f < m->n_files; f++) {
        const char *path = ld_st_path(m->files[f]);
        int fd;
        uint64_t size;
        ld_status open_st = ld_open_regular(path, UINT64_MAX, &fd, &size, err);
        if (open_st != LD_OK) {
            free(all);
            return open_st;
        }
        posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
        for (size_t i = 0; i < ld_st_count(m->files[f]); i++) {
            const ld_tensor *t = ld_st_at(m->files[f], i);
            all[k].t = t;
            if (!hash_sample(fd, ld_st_offset(m->files[f], t), t->nbytes, &all[k].hash)) {
                int e = errno;
                close(fd);
                free(all);
                return ld_error_set(err, LD_E_IO, "%s: cannot read tensor '%s': %s", path, t->name,
                                    e ? strerror(e) : "file shrank");
            }
            k++;
        }
        close(fd);
    }
    if (total > 1) qsort(all, total, sizeof *all, cmp_sampled);
    /* Sharding does not change the fingerprint: tensors are taken in name order, whatever file
     * holds them. */
    uint64_t h = ld_fnv1a(LD_FNV_INIT, config_text, config_len);
    for (size_t i = 0; i < total; i++) {
        const ld_tensor *t = all[i].t;
        const char *dt = ld_dtype_name(t->dtype);
        unsigned char le[8];
        h = ld_fnv1a(h, t->name, strlen(t->name) + 1);
        h = ld_fnv1a(h, dt, strlen(dt) + 1);
        for (int d = 0; d < t->ndim; d++) {
            for (int b = 0; b < 8; b++)
                le[b] = (unsigned char)((uint64_t)t->shape[d] >> (8 * b));
            h = ld_fnv1a(h, le, sizeof le);
        }
        for (int b = 0; b < 8; b++)
            le[b] = (unsigned char)(all[i].hash >> (8 * b));
        h = ld_fnv1a(h, le, sizeof le);
    }
    free(all);
    snprintf(m->fingerprint, sizeof m->fingerprint, "%016llx", (unsigned long long)h);
    return LD_OK;
}

/* ---- open / close ---- */

/* A Hugging Face hub cache root (models--ORG--NAME: refs/main names the revision, snapshots/REV
 * holds its files) stands for the snapshot refs/main names: writes that folder to out. Any other
 * directory is itself. The revision must be one plain name, so a ref cannot lead elsewhere. */
static ld_status resolve_dir(const char *dir, char *out, size_t size, ld_error *err)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return ld_error_set(err, LD_E_INPUT, "%s: does not exist (give a checkpoint directory: "
                            "config.json and safetensors)", dir);
    if (!S_ISDIR(sb.st_mode))
        return ld_error_set(err, LD_E_INPUT, "%s: not a directory (give the checkpoint's "
                            "directory, not a file in it)", dir);
    char config[PATH_MAX], ref[PATH_MAX];
    if (!ld_path_join(config, sizeof config, dir, "config.json") ||
        !ld_path_join(ref, sizeof ref, dir, "refs/main"))
        return ld_error_set(err, LD_E_USAGE, "%s: path too long", dir);
    if ((size_t)snprintf(out, size, "%s", dir) >= size)
        return ld_error_set(err, LD_E_USAGE, "%s: path too long", dir);
    if (stat(config, &sb) == 0 || stat(ref, &sb) != 0)
        return LD_OK;
    char *rev = NULL;
    size_t len = 0;
    ld_status st = ld_read_file(ref, 256, &rev, &len, err);
    if (st != LD_OK)
        return st;
    while (len && (rev[len - 1] == '\n' || rev[len - 1] == '\r'))
        rev[--len] = '\0';
    bool plain = len > 0 && strcmp(rev, ".") && strcmp(rev, "..");
    for (size_t i = 0; i < len; i++)
        plain &= rev[i] != '/' && rev[i] != '\\' && (unsigned char)rev[i] > ' ';
    char snap[PATH_MAX];
    if (!plain) {
        free(rev);
        return ld_error_set(err, LD_E_INPUT, "%s: does not hold a revision name", ref);
    }
    bool fits = (size_t)snprintf(snap, sizeof snap, "snapshots/%s", rev) < sizeof snap &&
                ld_path_join(out, size, dir, snap);
    free(rev);
    if (!fits)
        return ld_error_set(err, LD_E_USAGE, "%s: path too long", dir);
    if (stat(out, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ld_error_set(err, LD_E_INPUT, "%s: names a snapshot that is not there (%s); "
                            "download the model again", ref, out);
    return LD_OK;
}

ld_status ld_model_open(ld_model **out, const char *given, ld_error *err)
{
    *out = NULL;
    char resolved[PATH_MAX];
    ld_status rs = resolve_dir(given, resolved, sizeof resolved, err);
    if (rs != LD_OK)
        return rs;
    const char *dir = resolved;
    ld_model *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(dir))) {
        free(m);
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", dir);
    }
    char config_path[PATH_MAX], index_path[PATH_MAX], single_path[PATH_MAX];
    if (!ld_path_join(config_path, sizeof config_path, dir, "config.json") ||
        !ld_path_join(index_path, sizeof index_path, dir, index_name) ||
        !ld_path_join(single_path, sizeof single_path, dir, single_name)) {
        ld_model_close(m);
        return ld_error_set(err, LD_E_USAGE, "%s: path too long", dir);
    }
    struct stat sb;
    if (stat(config_path, &sb) != 0) {
        ld_model_close(m);
        return ld_error_set(err, LD_E_INPUT, "%s: no config.json: not a Hugging Face checkpoint "
                            "(config.json with model.safetensors or a sharded index beside it); "
                            "'layerdiff gen-model %s' writes one, and a hub cache is given as its "
                            "models--ORG--NAME folder or a snapshots/REV folder in it", dir, dir);
    }
    char *config_text = NULL;
    size_t config_len = 0;
    ld_status st = ld_read_file(config_path, LD_CONFIG_FILE_MAX, &config_text, &config_len, err);
    if (st == LD_OK) st = ld_config_parse(config_text, config_len, config_path, &m->cfg, err);
    if (st == LD_OK) {
        bool have_index = stat(index_path, &sb) == 0;
        bool have_single = stat(single_path, &sb) == 0;
        if (have_index && have_single) {
            st = ld_error_set(err, LD_E_INPUT,
                              "%s: holds both %s and %s; remove the stale one (layerdiff will not "
                              "guess which is current)",
                              dir, single_name, index_name);
        } else if (have_index) {
            st = open_sharded(m, index_path, err);
        } else if (have_single) {
            m->files = calloc(1, sizeof *m->files);
            if (!m->files)
                st = ld_error_set(err, LD_E_NOMEM, "%s: out of memory", dir);
            else if ((st = ld_st_open(&m->files[0], single_path, err)) == LD_OK)
                m->n_files = 1;
        } else {
            st = ld_error_set(err, LD_E_INPUT, "%s: neither %s nor %s is there", dir, single_name,
                              index_name);
        }
    }
    if (st == LD_OK) {
        m->layers = calloc((size_t)m->cfg.num_layers, sizeof *m->layers);
        if (!m->layers) st = ld_error_set(err, LD_E_NOMEM, "%s: out of memory", dir);
    }
    if (st == LD_OK) st = bind_tensors(m, err);
    if (st == LD_OK) st = compute_fingerprint(m, config_text, config_len, err);
    free(config_text);
    if (st != LD_OK) {
        ld_model_close(m);
        return st;
    }
    for (size_t f = 0; f < m->n_files; f++)
        m->checkpoint_bytes += ld_st_size(m->files[f]);
    *out = m;
    return LD_OK;
}

void ld_model_close(ld_model *m)
{
    if (!m) return;
    for (size_t f = 0; f < m->n_files; f++)
        ld_st_close(m->files[f]);
    free(m->files);
    free(m->layers);
    free(m->dir);
    free(m);
}

ld_status ld_model_refuse_overwrite(const ld_model *m, const char *output, ld_error *err)
{
    if (!m)
        return LD_OK;
    /* tokenizer.json is the checkpoint's too: run and calibrate encode prompts with it, and
     * every command names tokens by it. */
    char config_path[PATH_MAX], index_path[PATH_MAX], tok_path[PATH_MAX];
    const char *files[] = {config_path, index_path, tok_path};
    if (!ld_path_join(config_path, sizeof config_path, m->dir, "config.json") ||
        !ld_path_join(index_path, sizeof index_path, m->dir, index_name) ||
        !ld_path_join(tok_path, sizeof tok_path, m->dir, "tokenizer.json"))
        return ld_error_set(err, LD_E_USAGE, "%s: path too long", m->dir);
    ld_status st = ld_refuse_overwrite(output, files, LD_ARRAY_LEN(files), err);
    for (size_t f = 0; st == LD_OK && f < m->n_files; f++) {
        const char *shard = ld_st_path(m->files[f]);
        st = ld_refuse_overwrite(output, &shard, 1, err);
    }
    return st;
}

ld_status ld_model_check_unchanged(const ld_model *m, ld_error *err)
{
    for (size_t f = 0; f < m->n_files; f++) {
        ld_status st = ld_st_check_unchanged(m->files[f], err);
        if (st != LD_OK)
            return st;
    }
    return LD_OK;
}

const char *ld_model_file_at(const ld_model *m, const void *addr)
{
    for (size_t f = 0; m && f < m->n_files; f++)
        if (ld_st_maps(m->files[f], addr))
            return ld_st_path(m->files[f]);
    return NULL;
}

/* The dtype shared by every weight the model reads, or "mixed". */
static const char *checkpoint_dtype(const ld_model *m)
{
    ld_dtype t = m->embed.dtype;
    bool mixed = m->final_norm.dtype != t || m->lm_head.dtype != t;
    for (int l = 0; l < m->cfg.num_layers && !mixed; l++) {
        const ld_tensor *w = &m->layers[l].attn_norm;
        const ld_tensor *ws[] = {w,
                                 &m->layers[l].wq,
                                 &m->layers[l].wk,
                                 &m->layers[l].wv,
                                 &m->layers[l].q_norm,
                                 &m->layers[l].k_norm,
                                 &m->layers[l].wo,
                                 &m->layers[l].mlp_norm,
                                 &m->layers[l].wg,
                                 &m->layers[l].wu,
                                 &m->layers[l].wd};
        for (size_t i = 0; i < LD_ARRAY_LEN(ws); i++)
            mixed |= ws[i]->dtype != t;
    }
    return mixed ? "mixed" : ld_dtype_name(t);
}

char *ld_model_header_json(const ld_model *m)
{
    const ld_config *c = &m->cfg;
    ld_buf b = {0};
    ld_buf_printf(&b, "{\"architecture\":");
    ld_json_put_string(&b, c->architecture, strlen(c->architecture), false);
    ld_buf_printf(&b,
                  ",\"hidden_size\":%d,\"num_hidden_layers\":%d,\"num_attention_heads\":%d,"
                  "\"num_key_value_heads\":%d,\"head_dim\":%d,\"intermediate_size\":%d,"
                  "\"vocab_size\":%d,\"max_position_embeddings\":%d,\"rms_norm_eps\":",
                  c->hidden_size, c->num_layers, c->num_heads, c->num_kv_heads, c->head_dim,
                  c->intermediate_size, c->vocab_size, c->max_position_embeddings);
    ld_json_put_double(&b, c->rms_norm_eps, LD_JSON_NUM_PYTHON, (locale_t)0);
    ld_buf_printf(&b, ",\"rope_theta\":");
    ld_json_put_double(&b, c->rope_theta, LD_JSON_NUM_PYTHON, (locale_t)0);
    ld_buf_printf(&b,
                  ",\"tie_word_embeddings\":%s,\"checkpoint_dtype\":\"%s\","
                  "\"fingerprint\":\"%s\"}",
                  c->tie_word_embeddings ? "true" : "false", checkpoint_dtype(m), m->fingerprint);
    return ld_buf_take(&b);
}

/* gen.c — the checkpoint generator (gen.h): the fixed presets, the deterministic weight stream and
 * the streamed writing of config.json, safetensors shards and the shard index.
 * Not a trainer: the weights are random, only their scale is realistic. */
#include "gen.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "safetensors.h"
#include "util.h"

#define LD_GEN_CHUNK      (4u << 20) /* bytes produced per fill call: memory stays flat */
#define LD_GEN_MAX_SHARDS 99999      /* the file names have five digits */

typedef struct preset {
    const char *name;
    int hidden, layers, heads, kv_heads, head_dim, intermediate, vocab, max_pos;
} preset;

/* Fixed: other engineers' tests depend on these shapes. tiny and small have Hq*D != H and
 * Hq/Hkv > 1 like the real model; small's intermediate size is odd on purpose. */
static const preset presets[] = {
    {"tiny", 64, 4, 4, 2, 32, 176, 512, 1024},
    {"small", 256, 4, 8, 2, 64, 691, 1000, 2048},
    {"qwen3-0.6b", 1024, 28, 16, 8, 128, 3072, 151936, 40960},
};

const char *ld_preset_names(void)
{
    return "tiny, small, qwen3-0.6b";
}

ld_status ld_preset_config(const char *name, ld_config *out, ld_error *err)
{
    for (size_t i = 0; i < LD_ARRAY_LEN(presets); i++) {
        const preset *p = &presets[i];
        if (!name || strcmp(name, p->name) != 0) continue;
        memset(out, 0, sizeof *out);
        snprintf(out->architecture, sizeof out->architecture, "Qwen3ForCausalLM");
        out->hidden_size = p->hidden;
        out->num_layers = p->layers;
        out->num_heads = p->heads;
        out->num_kv_heads = p->kv_heads;
        out->head_dim = p->head_dim;
        out->head_dim_explicit = true;
        out->intermediate_size = p->intermediate;
        out->vocab_size = p->vocab;
        out->max_position_embeddings = p->max_pos;
        out->rms_norm_eps = 1e-6;
        out->rope_theta = 1e6;
        out->tie_word_embeddings = true;
        out->torch_dtype = LD_BF16;
        return LD_OK;
    }
    return ld_error_set(err, LD_E_USAGE, "unknown preset '%s' (presets: %s)", name ? name : "",
                        ld_preset_names());
}

/* ---- the weight stream (gen.h states the definition) ---- */

#define GOLDEN 0x9e3779b97f4a7c15ULL

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double unit(uint64_t key, uint64_t n)
{
    return (double)(mix64(key + (n + 1) * GOLDEN) >> 11) * 0x1p-53;
}

/* One tensor to write: its place in the model's parameter order and in a shard. */
typedef struct gen_tensor {
    char name[80];
    int ndim;
    int64_t shape[2];
    size_t numel;
    size_t nbytes;
    bool norm;    /* uniform around 1 instead of N(0, 0.02^2) */
    uint64_t key; /* the stream of this tensor */
    int shard;
} gen_tensor;

static void add_tensor(gen_tensor *t, size_t *n, uint64_t seed, ld_dtype dt, int64_t d0, int64_t d1,
                       const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void add_tensor(gen_tensor *t, size_t *n, uint64_t seed, ld_dtype dt, int64_t d0, int64_t d1,
                       const char *fmt, ...)
{
    gen_tensor *g = &t[*n];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->name, sizeof g->name, fmt, ap);
    va_end(ap);
    g->ndim = d1 > 0 ? 2 : 1;
    g->shape[0] = d0;
    g->shape[1] = d1;
    g->numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    g->nbytes = g->numel * ld_dtype_size(dt);
    size_t len = strlen(g->name);
    g->norm = len >= 11 && !strcmp(g->name + len - 11, "norm.weight");
    g->key = mix64(seed + GOLDEN) ^ ld_fnv1a(LD_FNV_INIT, g->name, len);
    g->shard = 0;
    (*n)++;
}

/* The tensors in the order transformers' state_dict lists them for Qwen3. Sizes cannot overflow:
 * the presets are far inside the config limits. */
static size_t list_tensors(const ld_config *c, uint64_t seed, ld_dtype dt, gen_tensor *t)
{
    int64_t H = c->hidden_size, D = c->head_dim, I = c->intermediate_size, V = c->vocab_size;
    int64_t QD = (int64_t)c->num_heads * D, KD = (int64_t)c->num_kv_heads * D;
    size_t n = 0;
    add_tensor(t, &n, seed, dt, V, H, "model.embed_tokens.weight");
    for (int l = 0; l < c->num_layers; l++) {
        add_tensor(t, &n, seed, dt, QD, H, "model.layers.%d.self_attn.q_proj.weight", l);
        add_tensor(t, &n, seed, dt, KD, H, "model.layers.%d.self_attn.k_proj.weight", l);
        add_tensor(t, &n, seed, dt, KD, H, "model.layers.%d.self_attn.v_proj.weight", l);
        add_tensor(t, &n, seed, dt, H, QD, "model.layers.%d.self_attn.o_proj.weight", l);
        add_tensor(t, &n, seed, dt, D, 0, "model.layers.%d.self_attn.q_norm.weight", l);
        add_tensor(t, &n, seed, dt, D, 0, "model.layers.%d.self_attn.k_norm.weight", l);
        add_tensor(t, &n, seed, dt, I, H, "model.layers.%d.mlp.gate_proj.weight", l);
        add_tensor(t, &n, seed, dt, I, H, "model.layers.%d.mlp.up_proj.weight", l);
        add_tensor(t, &n, seed, dt, H, I, "model.layers.%d.mlp.down_proj.weight", l);
        add_tensor(t, &n, seed, dt, H, 0, "model.layers.%d.input_layernorm.weight", l);
        add_tensor(t, &n, seed, dt, H, 0, "model.layers.%d.post_attention_layernorm.weight", l);
    }
    add_tensor(t, &n, seed, dt, H, 0, "model.norm.weight");
    if (!c->tie_word_embeddings) add_tensor(t, &n, seed, dt, V, H, "lm_head.weight");
    return n;
}

/* Contiguous runs of the parameter order, each shard ending near its share of the bytes (a
 * tensor goes where its middle falls), and never empty. */
static void assign_shards(gen_tensor *t, size_t n, int shards)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += t[i].nbytes;
    size_t i = 0;
    uint64_t start = 0;
    for (int s = 0; s < shards; s++) {
        uint64_t target = total / (uint64_t)shards * (uint64_t)(s + 1) +
                          total % (uint64_t)shards * (uint64_t)(s + 1) / (uint64_t)shards;
        size_t leave = (size_t)(shards - 1 - s); /* one tensor at least for each later shard */
        do {
            t[i].shard = s;
            start += t[i].nbytes;
            i++;
        } while (i < n - leave && (s == shards - 1 || start + t[i].nbytes / 2 <= target));
    }
}

static void store(unsigned char *out, ld_dtype dt, double v)
{
    float f = (float)v;
    if (dt == LD_F32) {
        uint32_t u = ld_f32_bits(f);
        for (int b = 0; b < 4; b++)
            out[b] = (unsigned char)(u >> (8 * b));
        return;
    }
    uint16_t h = dt == LD_BF16 ? ld_f32_to_bf16(f) : ld_f32_to_f16(f);
    out[0] = (unsigned char)h;
    out[1] = (unsigned char)(h >> 8);
}

/* Elements [first, first + count) of tensor g into out; first is even for normal tensors (chunks
 * are multiples of 8 bytes), so Box-Muller pairs never straddle two calls. */
static void generate(const gen_tensor *g, ld_dtype dt, size_t first, size_t count,
                     unsigned char *out)
{
    size_t es = ld_dtype_size(dt);
    if (g->norm) {
        for (size_t i = 0; i < count; i++)
            store(out + i * es, dt, 0.8 + 0.4 * unit(g->key, first + i));
        return;
    }
    const double two_pi = 6.283185307179586476925286766559;
    for (size_t i = 0; i < count; i += 2) {
        uint64_t k = (first + i) / 2;
        double r = sqrt(-2.0 * log(unit(g->key, 2 * k) + 0x1p-53));
        double a = two_pi * unit(g->key, 2 * k + 1);
        store(out + i * es, dt, 0.02 * r * cos(a));
        if (i + 1 < count) store(out + (i + 1) * es, dt, 0.02 * r * sin(a));
    }
}

typedef struct shard_ctx {
    const gen_tensor **tensors; /* this shard's tensors in file order */
    ld_dtype dtype;
    const ld_gen_options *opt;
    size_t *done;
    size_t total;
} shard_ctx;

static ld_status fill(void *vctx, size_t index, size_t offset, void *buf, size_t nbytes,
                      ld_error *err)
{
    (void)err;
    shard_ctx *c = vctx;
    size_t es = ld_dtype_size(c->dtype);
    generate(c->tensors[index], c->dtype, offset / es, nbytes / es, buf);
    *c->done += nbytes;
    if (c->opt->progress) c->opt->progress(c->opt->progress_ctx, *c->done, c->total);
    return LD_OK;
}

static int cmp_gen_name(const void *a, const void *b)
{
    return strcmp((*(const gen_tensor *const *)a)->name, (*(const gen_tensor *const *)b)->name);
}

static bool is_checkpoint_file(const char *name)
{
    return !strcmp(name, "config.json") || !strcmp(name, "model.safetensors") ||
           !strcmp(name, "tokenizer.json") ||
           !strcmp(name, "model.safetensors.index.json") ||
           ld_glob_match("model-*-of-*.safetensors", name);
}

/* Refuses a dir that already holds checkpoint files (named, three at most) unless force; with
 * force, refuses one whose checkpoint name is taken by a directory, which nothing would replace. */
static ld_status check_existing(const char *dir, bool force, ld_error *err)
{
    DIR *d = opendir(dir);
    if (!d) return ld_error_set(err, LD_E_IO, "%s: cannot list: %s", dir, strerror(errno));
    ld_status st = LD_OK;
    struct dirent *e;
    char found[256] = "", path[PATH_MAX];
    size_t nfound = 0;
    while (st == LD_OK && (e = readdir(d)) != NULL) {
        if (!is_checkpoint_file(e->d_name)) continue;
        struct stat sb;
        if (ld_path_join(path, sizeof path, dir, e->d_name) && lstat(path, &sb) == 0 &&
            S_ISDIR(sb.st_mode))
            st = ld_error_set(err, LD_E_USAGE, "%s is a directory where a checkpoint file goes",
                              path);
        else if (++nfound <= 3)
            snprintf(found + strlen(found), sizeof found - strlen(found), "%s%s",
                     nfound > 1 ? ", " : "", e->d_name);
    }
    closedir(d);
    if (st == LD_OK && !force && nfound > 0)
        st = ld_error_set(err, LD_E_USAGE,
                          "%s already holds a checkpoint (%s%s); use --force to replace it", dir,
                          found, nfound > 3 ? ", ..." : "");
    return st;
}

/* Names of the files one move_files call renamed, in order. */
typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

static bool name_push(name_list *l, const char *name)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) return false;
        l->v = v, l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(name))) return false;
    l->n++;
    return true;
}

static void name_free(name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/* Renames the checkpoint files of from into to, config.json last when config_last, else first;
 * each name moved goes to moved. The names are listed before any moves (a directory is not
 * changed while it is read). Stops at the first failure. */
static ld_status move_files(const char *from, const char *to, bool config_last, name_list *moved,
                            ld_error *err)
{
    name_list names = {0};
    bool has_config = false, oom = false;
    DIR *d = opendir(from);
    if (!d) return ld_error_set(err, LD_E_IO, "%s: cannot list: %s", from, strerror(errno));
    struct dirent *e;
    while (!oom && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, "config.json"))
            has_config = true;
        else if (is_checkpoint_file(e->d_name))
            oom = !name_push(&names, e->d_name);
    }
    closedir(d);
    if (!oom && has_config) {
        oom = !name_push(&names, "config.json"); /* last */
        if (!oom && !config_last) {              /* or first */
            char *c = names.v[names.n - 1];
            memmove(names.v + 1, names.v, (names.n - 1) * sizeof *names.v);
            names.v[0] = c;
        }
    }
    ld_status st = oom ? ld_error_set(err, LD_E_NOMEM, "out of memory") : LD_OK;
    char src[PATH_MAX], dst[PATH_MAX];
    for (size_t i = 0; st == LD_OK && i < names.n; i++) {
        if (!ld_path_join(src, sizeof src, from, names.v[i]) ||
            !ld_path_join(dst, sizeof dst, to, names.v[i]))
            st = ld_error_set(err, LD_E_USAGE, "%s: path too long", to);
        else if (rename(src, dst) != 0)
            st = ld_error_set(err, LD_E_IO, "%s: cannot move to %s: %s", src, dst,
                              strerror(errno));
        else if (!name_push(moved, names.v[i])) {
            rename(dst, src); /* not listed, so not moved back: undone here */
            st = ld_error_set(err, LD_E_NOMEM, "out of memory");
        }
    }
    name_free(&names);
    return st;
}

/* Renames the names back from from into to, the last moved first (a rollback). False when one
 * could not be. */
static bool move_back(const char *from, const char *to, const name_list *names)
{
    char src[PATH_MAX], dst[PATH_MAX];
    bool ok = true;
    for (size_t i = names->n; i-- > 0;)
        ok = ld_path_join(src, sizeof src, from, names->v[i]) &&
             ld_path_join(dst, sizeof dst, to, names->v[i]) && rename(src, dst) == 0 && ok;
    return ok;
}

/* Swaps the complete checkpoint in stage (a directory inside dir) for the one in dir, as one step
 * as far as renames allow: the old files (config.json first, so that dir is never taken for a
 * checkpoint while files change) move into stage/old, then the new ones into dir, config.json
 * last. A failure puts everything back; only when that fails too is *keep_stage set, and the
 * error says where the old files are. Signals that end the process are held off meanwhile (a few
 * renames). */
static ld_status publish(const char *stage, const char *dir, bool *keep_stage, ld_error *err)
{
    char old_dir[PATH_MAX];
    if (!ld_path_join(old_dir, sizeof old_dir, stage, "old"))
        return ld_error_set(err, LD_E_USAGE, "%s: path too long", stage);
    if (mkdir(old_dir, 0700) != 0)
        return ld_error_set(err, LD_E_IO, "%s: cannot create: %s", old_dir, strerror(errno));
    sigset_t hold, saved;
    sigemptyset(&hold);
    sigaddset(&hold, SIGINT);
    sigaddset(&hold, SIGTERM);
    sigaddset(&hold, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &hold, &saved);
    name_list old_names = {0}, new_names = {0};
    ld_status st = move_files(dir, old_dir, false, &old_names, err);
    if (st == LD_OK && (st = move_files(stage, dir, true, &new_names, err)) != LD_OK &&
        !move_back(dir, stage, &new_names)) {
        *keep_stage = true;
        ld_error_prefix(err, "the new checkpoint is partly in %s", dir);
    }
    if (st != LD_OK && !move_back(old_dir, dir, &old_names)) {
        *keep_stage = true;
        ld_error_prefix(err, "the old checkpoint is in %s, not all of it moved back", old_dir);
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    name_free(&old_names);
    name_free(&new_names);
    return st;
}

/* Messages name the files the user asked for: DIR/NAME, not the staging directory's copy. */
static void name_final_paths(ld_error *err, const char *stage, const char *dir)
{
    char *at = strstr(err->msg, stage);
    if (!at) return;
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%.*s%s%s", (int)(at - err->msg), err->msg, dir, at + strlen(stage));
    memcpy(err->msg, msg, sizeof msg);
}

/* Deletes the staging directory and what is left in it (the old checkpoint after a swap, the new
 * one after a failure), unless a failed rollback left the old checkpoint there. */
static void remove_stage(const char *stage)
{
    char old_dir[PATH_MAX], path[PATH_MAX];
    const char *dirs[] = {old_dir, stage};
    if (!ld_path_join(old_dir, sizeof old_dir, stage, "old")) return;
    for (size_t i = 0; i < 2; i++) {
        DIR *d = opendir(dirs[i]);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "old") &&
                ld_path_join(path, sizeof path, dirs[i], e->d_name))
                unlink(path);
        closedir(d);
        rmdir(dirs[i]);
    }
}

static ld_status write_index(const char *dir, const gen_tensor *t, size_t n, int shards,
                             ld_error *err)
{
    /* transformers writes json.dumps(index, indent=2, sort_keys=True) + "\n". */
    const gen_tensor **sorted = malloc(n * sizeof *sorted);
    if (!sorted) return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", dir);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        sorted[i] = &t[i];
        total += t[i].nbytes;
    }
    qsort(sorted, n, sizeof *sorted, cmp_gen_name);
    ld_buf b = {0};
    ld_buf_printf(&b,
                  "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {\n",
                  (unsigned long long)total);
    for (size_t i = 0; i < n; i++)
        ld_buf_printf(&b, "    \"%s\": \"model-%05d-of-%05d.safetensors\"%s\n", sorted[i]->name,
                      sorted[i]->shard + 1, shards, i + 1 < n ? "," : "");
    ld_buf_printf(&b, "  }\n}\n");
    free(sorted);
    size_t len = b.len;
    char *text = ld_buf_take(&b);
    if (!text) return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", dir);
    char path[PATH_MAX];
    ld_status st = ld_path_join(path, sizeof path, dir, "model.safetensors.index.json")
                       ? ld_write_file(path, text, len, err)
                       : ld_error_set(err, LD_E_USAGE, "%s: path too long", dir);
    free(text);
    return st;
}

static ld_status write_shard(const char *dir, gen_tensor *t, size_t n, int shard, int shards,
                             ld_dtype dt, const ld_gen_options *opt, size_t *done, size_t total,
                             ld_error *err)
{
    char name[64], path[PATH_MAX];
    if (shards == 1)
        snprintf(name, sizeof name, "model.safetensors");
    else
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", shard + 1, shards);
    if (!ld_path_join(path, sizeof path, dir, name))
        return ld_error_set(err, LD_E_USAGE, "%s: path too long", dir);
    const gen_tensor **mine = malloc(n * sizeof *mine);
    ld_st_entry *entries = malloc(n * sizeof *entries);
    if (!mine || !entries) {
        free(mine);
        free(entries);
        return ld_error_set(err, LD_E_NOMEM, "%s: out of memory", path);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i].shard == shard) mine[k++] = &t[i];
    /* The safetensors library sorts by dtype, then name; one dtype here, so by name. */
    qsort(mine, k, sizeof *mine, cmp_gen_name);
    for (size_t i = 0; i < k; i++) {
        memset(&entries[i], 0, sizeof entries[i]);
        entries[i].name = mine[i]->name;
        entries[i].dtype = dt;
        entries[i].ndim = mine[i]->ndim;
        entries[i].shape[0] = mine[i]->shape[0];
        entries[i].shape[1] = mine[i]->shape[1];
    }
    shard_ctx ctx = {mine, dt, opt, done, total};
    ld_status st = ld_st_write_ranges(path, entries, k, fill, &ctx, LD_GEN_CHUNK, err);
    free(mine);
    free(entries);
    return st;
}

ld_status ld_gen_model(const char *dir, const ld_gen_options *opt, ld_error *err)
{
    ld_config cfg;
    ld_status st = ld_preset_config(opt->preset, &cfg, err);
    if (st != LD_OK) return st;
    if (opt->dtype != LD_F32 && opt->dtype != LD_BF16 && opt->dtype != LD_F16)
        return ld_error_set(err, LD_E_USAGE, "unknown dtype %d", (int)opt->dtype);
    if (opt->tied < -1 || opt->tied > 1)
        return ld_error_set(err, LD_E_USAGE, "tied must be -1, 0 or 1, not %d", opt->tied);
    if (opt->tied >= 0) cfg.tie_word_embeddings = opt->tied == 1;
    cfg.torch_dtype = opt->dtype;
    st = ld_config_validate(&cfg, opt->preset, err);
    if (st != LD_OK) return st;

    size_t cap = 3 + 11 * (size_t)cfg.num_layers;
    gen_tensor *t = malloc(cap * sizeof *t);
    if (!t) return ld_error_set(err, LD_E_NOMEM, "out of memory");
    size_t n = list_tensors(&cfg, opt->seed, opt->dtype, t);
    size_t max_shards = LD_MIN(n, (size_t)LD_GEN_MAX_SHARDS);
    if (opt->shards < 1 || (size_t)opt->shards > max_shards) {
        free(t);
        return ld_error_set(err, LD_E_USAGE, "--shards %d: must be 1 to %zu for preset %s",
                            opt->shards, max_shards, opt->preset);
    }
    assign_shards(t, n, opt->shards);
    size_t total = 0, done = 0;
    for (size_t i = 0; i < n; i++)
        total += t[i].nbytes;

    /* Everything is written into a staging directory inside dir and moved into place only once
     * complete: a run that fails (a full disk, a write error) leaves dir as it was, the old
     * checkpoint of a --force included. */
    char stage[PATH_MAX];
    bool staged = false;
    st = ld_mkdir(dir, err);
    if (st == LD_OK) st = check_existing(dir, opt->force != 0, err);
    if (st == LD_OK) {
        if (!ld_path_join(stage, sizeof stage, dir, ".gen-model-XXXXXX"))
            st = ld_error_set(err, LD_E_USAGE, "%s: path too long", dir);
        else if (!mkdtemp(stage))
            st = ld_error_set(err, LD_E_IO, "%s: cannot create a staging directory: %s", dir,
                              strerror(errno));
        else
            staged = true;
    }
    for (int s = 0; s < opt->shards && st == LD_OK; s++)
        st = write_shard(stage, t, n, s, opt->shards, opt->dtype, opt, &done, total, err);
    if (st == LD_OK && opt->shards > 1) st = write_index(stage, t, n, opt->shards, err);
    free(t);
    if (st == LD_OK) {
        char *json;
        size_t len;
        char path[PATH_MAX];
        st = ld_gen_tokenizer_json((int)cfg.vocab_size, &json, &len, err);
        if (st == LD_OK) {
            st = ld_path_join(path, sizeof path, stage, "tokenizer.json")
                     ? ld_write_file(path, json, len, err)
                     : ld_error_set(err, LD_E_USAGE, "%s: path too long", dir);
            free(json);
        }
    }
    /* config.json last: a directory with one is complete. */
    if (st == LD_OK) {
        char *json = ld_config_to_hf_json(&cfg);
        char path[PATH_MAX];
        if (!json)
            st = ld_error_set(err, LD_E_NOMEM, "out of memory");
        else if (!ld_path_join(path, sizeof path, stage, "config.json"))
            st = ld_error_set(err, LD_E_USAGE, "%s: path too long", dir);
        else
            st = ld_write_file(path, json, strlen(json), err);
        free(json);
    }
    if (st != LD_OK && staged) name_final_paths(err, stage, dir);
    bool keep_stage = false;
    if (st == LD_OK) st = publish(stage, dir, &keep_stage, err);
    if (staged && !keep_stage) remove_stage(stage);
    return st;
}

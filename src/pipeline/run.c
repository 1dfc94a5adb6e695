/* run.c — the backend table and one run into a probe stream (run.h): open sink, header, generate,
 * end record. The one place that knows whether this build has CUDA. Not here: the forward passes
 * themselves (reference/forward.c, cuda/), option parsing and messages (src/cli/). */
#include "run.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "generate.h"
#include "json_out.h"
#include "ops.h"
#include "util.h"
#ifdef LD_HAVE_CUDA
#include "cuda_backend.h"
#endif

typedef ld_status (*generate_fn)(const ld_model *m, const int32_t *prompt, size_t n_prompt,
                                 int decode_steps, const ld_forward_options *opt,
                                 int32_t *tokens_out, int32_t *decoded_out, ld_error *err);

struct ld_backend {
    const char *name;                   /* as --backend spells it */
    const char *implementation;         /* the header's name for an fp32 run ... */
    const char *implementation_emulated; /* ... and for one with emulated kernels */
    ld_status (*check)(ld_error *err);  /* NULL: always available */
    /* The header's "backend" object (malloc'd); NULL on failure, err set when not for memory. */
    char *(*backend_json)(const ld_model *m, const ld_forward_options *fo, ld_error *err);
    generate_fn generate;               /* NULL: not built in; check says why */
};

static char *ref_backend_json(const ld_model *m, const ld_forward_options *fo, ld_error *err)
{
    (void)m, (void)err;
    return ld_ref_backend_json(fo);
}

/* LD_REF_KERNEL names a kernel path this build and CPU have (ops.h). */
static ld_status ref_check(ld_error *err) { return ld_ref_kernel_ready(err); }

#ifdef LD_HAVE_CUDA
static ld_status cuda_check(ld_error *err) { return ld_cuda_device_check(NULL, 0, err); }

static char *cuda_backend_json(const ld_model *m, const ld_forward_options *fo, ld_error *err)
{
    (void)fo;
    return ld_cuda_backend_json(m, err);
}
#else
static ld_status cuda_check(ld_error *err)
{
    return ld_error_set(err, LD_E_USAGE, "this layerdiff was built without CUDA (nvcc was not "
                                         "found at configure time)");
}
#endif

static const ld_backend backends[] = {
    {"ref", "reference", "reference-emulated", ref_check, ref_backend_json, ld_ref_generate},
#ifdef LD_HAVE_CUDA
    {"cuda", "cuda", "cuda", cuda_check, cuda_backend_json, ld_cuda_generate},
#else
    {"cuda", "cuda", "cuda", cuda_check, NULL, NULL},
#endif
};

const ld_backend *ld_backend_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof backends / sizeof backends[0]; i++)
        if (!strcmp(backends[i].name, name))
            return &backends[i];
    return NULL;
}

ld_status ld_backend_check(const ld_backend *b, ld_error *err)
{
    return b->check ? b->check(err) : LD_OK;
}

void ld_run_options_init(ld_run_options *o) { memset(o, 0, sizeof *o); }

void ld_run_result_free(ld_run_result *r)
{
    if (!r)
        return;
    free(r->tokens);
    free(r->decoded);
    r->tokens = r->decoded = NULL;
}

static ld_status open_sink(const ld_run_options *o, const ld_run_info *info, ld_sink **sink,
                           ld_error *err)
{
    *sink = NULL;
    /* The stream is truncated on open: it must not be the checkpoint (mapped: SIGBUS) or an input
     * such as the followed stream. */
    const char *path = o->probes_path ? o->probes_path
                       : o->probes_from_env ? getenv("LAYERDIFF_PROBES") : NULL;
    if (path && *path &&
        (ld_model_refuse_overwrite(o->model, path, err) != LD_OK ||
         ld_refuse_overwrite(path, o->inputs, o->n_inputs, err) != LD_OK))
        return ld_error_prefix(err, "%s", o->probes_path ? "--probes" : "LAYERDIFF_PROBES");
    if (!o->probes_path) {
        if (!o->probes_from_env)
            return LD_OK;
        if (!o->sink_config)
            return ld_sink_open_env(sink, info, err);
        if (!path || !*path)
            return LD_OK;
    }
    /* --probes, or LAYERDIFF_PROBES with the caller's configuration: 'layerdiff run --tags ...
     * --payload full' narrows or fills the stream the variable names as it does one --probes
     * names. */
    ld_sink_config defaults;
    ld_sink_config_init(&defaults);
    ld_status st = ld_sink_open(sink, path, o->sink_config ? o->sink_config : &defaults, info,
                                err);
    return st == LD_OK || o->probes_path ? st : ld_error_prefix(err, "LAYERDIFF_PROBES");
}

/* Generates into an open sink and closes it: an error end record naming the last key when the
 * run fails (the close's own error then matters less than the run's), else the ok end record. */
/* Teacher forcing: opens o->feed_path, refuses a stream of another model or prompt, selects its
 * keys and builds the header's "feed" object (*json, malloc'd). Nothing to do without a path. */
static ld_status open_feed(const ld_run_options *o, ld_feed **feed, char **json, ld_error *err)
{
    *feed = NULL;
    *json = NULL;
    if (!o->feed_path)
        return LD_OK;
    ld_status st = ld_feed_open(feed, o->feed_path, err);
    if (st != LD_OK)
        return st;
    const ld_header_info *h = ld_feed_header(*feed);
    if (h->fingerprint[0] && strcmp(h->fingerprint, o->model->fingerprint))
        st = ld_error_set(err, LD_E_INPUT,
                          "%s: the feed is a stream of another model (fingerprint %s, this "
                          "checkpoint's %s)",
                          o->feed_path, h->fingerprint, o->model->fingerprint);
    else if (h->n_tokens != o->n_prompt ||
             memcmp(h->tokens, o->prompt, o->n_prompt * sizeof *o->prompt) != 0)
        st = ld_error_set(err, LD_E_INPUT,
                          "%s: the feed's prompt differs from --tokens (its tensors belong to "
                          "other inputs)",
                          o->feed_path);
    else if ((st = ld_feed_select(*feed, o->feed_tags, o->feed_layers, o->feed_steps, err)) !=
             LD_OK)
        ld_error_prefix(err, "--feed");
    ld_buf b = {0};
    const char *names[] = {"path", "tags", "layers", "steps"};
    const char *values[] = {o->feed_path, o->feed_tags, o->feed_layers, o->feed_steps};
    for (size_t i = 0; st == LD_OK && i < LD_ARRAY_LEN(names); i++) {
        const char *v = values[i] && *values[i] ? values[i] : i ? "*" : "";
        ld_buf_printf(&b, "%s\"%s\":", i ? "," : "{", names[i]);
        ld_json_put_string(&b, v, strlen(v), true);
    }
    ld_buf_putc(&b, '}');
    if (st == LD_OK && (ld_buf_failed(&b) || !(*json = ld_buf_take(&b))))
        st = ld_error_set(err, LD_E_NOMEM, "out of memory");
    ld_buf_free(&b);
    if (st != LD_OK) {
        ld_feed_close(*feed);
        *feed = NULL;
    }
    return st;
}

static ld_status generate_and_close(const ld_backend *b, const ld_run_options *o,
                                    const ld_forward_options *fo, ld_sink *sink, ld_run_result *r,
                                    ld_error *err)
{
    size_t n = (size_t)o->decode_steps;
    r->tokens = calloc(n + 1, sizeof *r->tokens);
    r->decoded = calloc(n + 1, sizeof *r->decoded);
    if (o->live_sink)
        *o->live_sink = sink;
    /* A step's argmax is written when the step ends (-1 when no logit is finite): what is still
     * NOT_RUN after a failure never ran, and the error end record lists the steps that did. */
    enum { NOT_RUN = INT32_MIN };
    for (size_t i = 0; r->tokens && i <= n; i++)
        r->tokens[i] = NOT_RUN;
    ld_status st = !r->tokens || !r->decoded
                       ? ld_error_set(err, LD_E_NOMEM, "out of memory")
                       : b->generate(o->model, o->prompt, o->n_prompt, o->decode_steps, fo,
                                     r->tokens, r->decoded, err);
    if (o->live_sink)
        *o->live_sink = NULL;
    /* Weights rewritten under the run (same size, so no SIGBUS) may have mixed old and new
     * values into what it computed: such a stream must not end ok. */
    if (st == LD_OK)
        st = ld_model_check_unchanged(o->model, err);
    if (st != LD_OK) {
        size_t done = 0;
        while (r->tokens && done <= n && r->tokens[done] != NOT_RUN)
            done++;
        ld_run_end failed_end = {.ok = false, .message = err->msg, .tokens = r->tokens,
                                 .n_tokens = done, .decoded = r->decoded,
                                 .n_decoded = done ? done - 1 : 0};
        ld_sink_close(sink, &failed_end, NULL);
        return st;
    }
    ld_run_end end = {.ok = true, .tokens = r->tokens, .n_tokens = n + 1, .decoded = r->decoded,
                      .n_decoded = n};
    r->n_decoded = n;
    r->n_probes = ld_sink_probe_count(sink);
    return ld_sink_close(sink, &end, err);
}

ld_status ld_run(const ld_run_options *o, ld_run_result *out, ld_error *err)
{
    ld_error ignored; /* the error end record needs a message even when the caller wants none */
    if (!err)
        err = &ignored;
    const ld_backend *b = o->backend ? o->backend : &backends[0];
    if (!b->generate)
        return ld_backend_check(b, err);
    ld_forward_options fo = {.faults = o->faults, .emulate = o->emulate, .sr_seed = o->sr_seed,
                             .follow = o->follow, .n_follow = o->n_follow,
                             .progress = o->progress, .progress_ctx = o->progress_ctx,
                             .notice = o->notice, .notice_ctx = o->notice_ctx};
    ld_run_result r = {.implementation = o->implementation ? o->implementation
                                         : o->emulate == LD_F32 ? b->implementation
                                                                : b->implementation_emulated};
    const char *fault_texts[LD_MAX_FAULTS];
    int n_faults = o->faults ? o->faults->n : 0;
    for (int i = 0; i < n_faults; i++)
        fault_texts[i] = o->faults->items[i].text;
    ld_error_clear(err);
    char *backend_json = b->backend_json(o->model, &fo, err);
    char *model_json = ld_model_header_json(o->model);
    char *feed_json = NULL;
    ld_status st = LD_OK;
    if (backend_json && model_json &&
        (st = open_feed(o, &fo.feed, &feed_json, err)) != LD_OK)
        goto out;
    if (!backend_json || !model_json) {
        st = err->code != LD_OK ? err->code : ld_error_set(err, LD_E_NOMEM, "out of memory");
        goto out;
    }
    ld_run_info info = {.implementation = r.implementation, .backend_json = backend_json,
                        .model_json = model_json, .tokens = o->prompt, .n_tokens = o->n_prompt,
                        .decode_steps = o->decode_steps, .faults = fault_texts,
                        .n_faults = (size_t)n_faults, .feed_json = feed_json,
                        .prompt_text = o->prompt_text, .prompt_text_len = o->prompt_text_len};
    if ((st = open_sink(o, &info, &fo.sink, err)) != LD_OK)
        goto out;
    if ((st = generate_and_close(b, o, &fo, fo.sink, &r, err)) != LD_OK)
        ld_run_result_free(&r);
    else
        *out = r;
out:
    ld_feed_close(fo.feed);
    free(feed_json);
    free(backend_json);
    free(model_json);
    return st;
}

ld_status ld_run_read_follow(const char *option, const char *path, const int32_t *prompt,
                             size_t n_prompt, int32_t **out, size_t *n_out, ld_error *err)
{
    ld_reader_options ro;
    ld_reader_options_init(&ro);
    ro.decode_data = false; /* only the tokens matter */
    ld_reader *r = NULL;
    ld_status st = ld_reader_open(&r, path, &ro, err);
    if (st != LD_OK)
        return st;
    const ld_header_info *h = ld_reader_header(r);
    if (h->n_tokens != n_prompt || memcmp(h->tokens, prompt, n_prompt * sizeof *prompt) != 0) {
        ld_reader_close(r);
        return ld_error_set(err, LD_E_USAGE,
                            "%s %s: that stream's prompt differs from --tokens; following it "
                            "would compare different inputs",
                            option, path);
    }
    const ld_probe *p;
    do {
        st = ld_reader_next(r, &p, err);
    } while (st == LD_OK && p);
    if (st != LD_OK) {
        ld_reader_close(r);
        return st;
    }
    const ld_end_info *e = ld_reader_end(r);
    const int32_t *src = e->decoded;
    size_t n = e->n_decoded;
    if (!src || n == 0) { /* an older producer without "decoded": its argmax tokens fed the steps */
        src = e->tokens;
        n = e->n_tokens ? e->n_tokens - 1 : 0;
    }
    *out = malloc((n ? n : 1) * sizeof **out);
    if (!*out) {
        ld_reader_close(r);
        return ld_error_set(err, LD_E_NOMEM, "out of memory");
    }
    if (n)
        memcpy(*out, src, n * sizeof **out);
    *n_out = n;
    ld_reader_close(r);
    return LD_OK;
}

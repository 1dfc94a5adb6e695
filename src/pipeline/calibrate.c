/* calibrate.c — the calibration algorithm (calibrate.h): the fp32 reference and the emulated
 * variants, each run into a full-payload stream (run.h), compared and replayed against the
 * reference and folded into a floor (compare/floor.h). Prints nothing: progress is a callback. */
#include "calibrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compare.h"
#include "floor.h"
#include "replay.h"
#include "run.h"

/* One reference run (fp32 or emulated) into a full-payload probe file; decoded, when not NULL,
 * gets the tokens fed to the decode steps. */
static ld_status run_to_file(const ld_calibrate_options *o, ld_dtype emulate, uint32_t seed,
                             const int32_t *follow, const char *path, int32_t *decoded,
                             ld_error *err)
{
    ld_sink_config sc;
    ld_sink_config_init(&sc);
    sc.payload = LD_PAYLOAD_FULL;
    ld_run_options ro;
    ld_run_options_init(&ro);
    ro.model = o->model;
    ro.prompt = o->prompt;
    ro.n_prompt = o->n_prompt;
    ro.decode_steps = o->decode_steps;
    ro.follow = follow;
    ro.n_follow = follow ? (size_t)o->decode_steps : 0;
    ro.emulate = emulate;
    ro.sr_seed = seed;
    ro.probes_path = path;
    ro.sink_config = &sc;
    ld_run_result r;
    ld_status st = ld_run(&ro, &r, err);
    if (st != LD_OK)
        return st;
    if (decoded)
        memcpy(decoded, r.decoded, r.n_decoded * sizeof *decoded);
    ld_run_result_free(&r);
    return LD_OK;
}

/* An empty floor carrying the reference stream's identity, as compare --floor will check it. */
static ld_status floor_for(const ld_calibrate_options *o, const char *ref_path, ld_floor **out,
                           ld_error *err)
{
    ld_reader *rd = NULL;
    if (ld_reader_open(&rd, ref_path, NULL, err) != LD_OK)
        return err->code;
    const ld_header_info *h = ld_reader_header(rd);
    *out = ld_floor_create(o->dtype, h->fingerprint, h->model_json, o->prompt, o->n_prompt,
                           o->decode_steps);
    ld_reader_close(rd);
    return *out ? LD_OK : ld_error_set(err, LD_E_NOMEM, "out of memory");
}

/* Variant v (0-based) of n: run, compare with the reference, replay, fold into the floor. */
static ld_status add_variant(const ld_calibrate_options *o, int v, const int32_t *follow,
                             const char *ref_path, const char *var_path, ld_floor *floor,
                             ld_error *err)
{
    char name[64];
    if (v == 0)
        snprintf(name, sizeof name, "%s, round to nearest even", ld_dtype_name(o->dtype));
    else
        snprintf(name, sizeof name, "%s, stochastic rounding seed %d", ld_dtype_name(o->dtype), v);
    if (o->progress)
        o->progress(o->progress_ctx, v + 1, o->variants, name);
    if (run_to_file(o, o->dtype, (uint32_t)v, follow, var_path, NULL, err) != LD_OK)
        return err->code;
    ld_compare_options co;
    ld_compare_options_init(&co);
    ld_compare_result *res = NULL;
    ld_status st = ld_compare_run(ref_path, var_path, &co, &res, err);
    /* The op-local errors of an honest variant: the budgets compare --model applies. */
    if (st == LD_OK)
        st = ld_replay_run(res, ref_path, var_path, o->model, NULL, err);
    if (st == LD_OK)
        st = ld_floor_add_variant(floor, name, v == 0, res, err);
    ld_compare_result_destroy(res);
    return st;
}

ld_status ld_calibrate(const ld_calibrate_options *o, size_t *n_keys, ld_error *err)
{
    ld_error ignored; /* the steps return err->code */
    if (!err)
        err = &ignored;
    /* Refused before minutes of runs: the floor replaces its file whole (ld_write_file). */
    if (ld_model_refuse_overwrite(o->model, o->output_path, err) != LD_OK)
        return ld_error_prefix(err, "-o");
    char dir[] = "/tmp/layerdiff-calibrate-XXXXXX";
    if (!mkdtemp(dir))
        return ld_error_set(err, LD_E_IO, "cannot create a temporary directory under /tmp");
    char ref_path[64], var_path[64];
    snprintf(ref_path, sizeof ref_path, "%s/ref.jsonl", dir);
    snprintf(var_path, sizeof var_path, "%s/variant.jsonl", dir);
    ld_floor *floor = NULL;
    ld_status st = LD_OK;
    int32_t *decoded = calloc((size_t)o->decode_steps + 1, sizeof *decoded);
    if (!decoded) {
        st = ld_error_set(err, LD_E_NOMEM, "out of memory");
        goto out;
    }
    if (o->progress)
        o->progress(o->progress_ctx, 0, o->variants, NULL);
    if ((st = run_to_file(o, LD_F32, 0, NULL, ref_path, decoded, err)) != LD_OK ||
        (st = floor_for(o, ref_path, &floor, err)) != LD_OK)
        goto out;
    for (int v = 0; v < o->variants; v++)
        if ((st = add_variant(o, v, decoded, ref_path, var_path, floor, err)) != LD_OK)
            goto out;
    if ((st = ld_floor_write(floor, o->output_path, err)) != LD_OK)
        goto out;
    *n_keys = ld_floor_count(floor);
out:
    unlink(ref_path);
    unlink(var_path);
    rmdir(dir);
    ld_floor_destroy(floor);
    free(decoded);
    return st;
}

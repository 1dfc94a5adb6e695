/* test_pipelines.c — the compare pipeline (exit decision, baseline updated or refused, text only
 * where asked, --model with --map refused) and calibration (progress calls, the floor written) as
 * library calls on the tiny preset. Not here: the CLI's bytes (tests/e2e: compare, gate, floor). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "calibrate.h"
#include "floor.h"
#include "gen.h"
#include "model.h"
#include "model/model_test_util.h"
#include "pipeline_compare.h"
#include "run.h"

typedef struct fixture {
    char *dir, *ckpt, *ref, *cand, *faulty;
    ld_model *m;
} fixture;

static const int32_t PROMPT[] = {5, 7, 11};
enum { DECODE = 2 };

/* A full-payload run into path: the fp32 reference, or bf16 emulated following decoded, with
 * faults when not NULL. */
static void run_into(const fixture *f, const char *path, ld_dtype emulate, int32_t *decoded,
                     const ld_fault_set *faults)
{
    ld_sink_config sc;
    ld_sink_config_init(&sc);
    sc.payload = LD_PAYLOAD_FULL;
    ld_run_options o;
    ld_run_options_init(&o);
    o.model = f->m;
    o.prompt = PROMPT;
    o.n_prompt = 3;
    o.decode_steps = DECODE;
    o.emulate = emulate;
    o.follow = emulate == LD_F32 ? NULL : decoded;
    o.n_follow = emulate == LD_F32 ? 0 : DECODE;
    o.faults = faults;
    o.probes_path = path;
    o.sink_config = &sc;
    ld_run_result r;
    ld_error err = {0};
    if (ld_run(&o, &r, &err) != LD_OK)
        fail_msg("%s", err.msg);
    if (emulate == LD_F32)
        memcpy(decoded, r.decoded, DECODE * sizeof *decoded);
    ld_run_result_free(&r);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = make_temp_dir();
    assert_non_null(f->dir);
    f->ckpt = path_in(f->dir, "tiny");
    f->ref = path_in(f->dir, "ref.jsonl");
    f->cand = path_in(f->dir, "cand.jsonl");
    f->faulty = path_in(f->dir, "faulty.jsonl");
    ld_gen_options opt = {.preset = "tiny", .seed = 0, .dtype = LD_BF16, .tied = -1, .shards = 1};
    ld_error err = {0};
    if (ld_gen_model(f->ckpt, &opt, &err) != LD_OK || ld_model_open(&f->m, f->ckpt, &err) != LD_OK)
        fail_msg("tiny checkpoint: %s", err.msg);
    int32_t decoded[DECODE];
    run_into(f, f->ref, LD_F32, decoded, NULL);
    run_into(f, f->cand, LD_BF16, decoded, NULL);
    ld_fault_set faults = {0};
    if (ld_fault_set_add(&faults, "swap_gate_up@1", &err) != LD_OK)
        fail_msg("%s", err.msg);
    run_into(f, f->faulty, LD_BF16, decoded, &faults);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ld_model_close(f->m);
    free(f->ckpt);
    free(f->ref);
    free(f->cand);
    free(f->faulty);
    rm_tree(f->dir);
    free(f);
    return 0;
}

static ld_compare_job job(const fixture *f, const char *cand)
{
    ld_compare_job j;
    ld_compare_job_init(&j);
    j.ref_path = f->ref;
    j.cand_path = cand;
    return j;
}

static void test_compare_baseline(void **state)
{
    fixture *f = *state;
    char *baseline = path_in(f->dir, "baseline.json");
    ld_error err = {0};
    ld_compare_outcome o;

    /* The reference against itself passes and becomes the baseline; no text was asked for. */
    ld_compare_job j = job(f, f->ref);
    j.baseline_path = baseline;
    j.update_baseline = true;
    if (ld_compare_pipeline(&j, &o, &err) != LD_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(o.exit_code, 0);
    assert_true(o.baseline_updated);
    assert_false(o.baseline_refused);
    assert_non_null(o.result);
    ld_compare_outcome_free(&o);
    size_t len0 = 0;
    unsigned char *before = slurp(baseline, &len0);
    assert_non_null(before);

    /* The emulated candidate's errors grew over that zero-error baseline: a regression, exit 1,
     * once regression is in fail_on (the CLI adds it with --baseline). */
    j = job(f, f->cand);
    j.baseline_path = baseline;
    j.compare.fail_on |= LD_FAIL_ON_REGRESSION;
    if (ld_compare_pipeline(&j, &o, &err) != LD_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(o.exit_code, 1);
    assert_non_null(o.baseline);
    ld_compare_outcome_free(&o);

    /* Accepting a failing candidate (a divergence: a fault) is refused, and the file is left as
     * it was. */
    j = job(f, f->faulty);
    j.baseline_path = baseline;
    j.update_baseline = true;
    if (ld_compare_pipeline(&j, &o, &err) != LD_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(o.exit_code, 1);
    assert_true(o.baseline_refused);
    assert_false(o.baseline_updated);
    ld_compare_outcome_free(&o);
    size_t len1 = 0;
    unsigned char *after = slurp(baseline, &len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0);
    free(before);
    free(after);
    free(baseline);
}

static void test_compare_text_and_replay(void **state)
{
    fixture *f = *state;
    ld_error err = {0};
    ld_compare_outcome o;
    ld_compare_job j = job(f, f->cand);
    j.model_dir = f->ckpt;
    j.text = tmpfile();
    assert_non_null(j.text);
    if (ld_compare_pipeline(&j, &o, &err) != LD_OK)
        fail_msg("%s", err.msg);
    assert_true(ftell(j.text) > 0);
    assert_true(o.result->n_replayed > 0);
    fclose(j.text);
    ld_compare_outcome_free(&o);

    /* A replay cannot follow foreign tags: refused before any stream is read. */
    j = job(f, f->cand);
    j.model_dir = f->ckpt;
    j.map_path = "no-such-map.json";
    assert_int_equal(ld_compare_pipeline(&j, &o, &err), LD_E_USAGE);
    assert_null(o.result);
    ld_compare_outcome_free(&o);
}

typedef struct progress_log {
    int n, variants[8];
    bool named[8];
} progress_log;

static void on_progress(void *ctx, int variant, int n_variants, const char *name)
{
    progress_log *p = ctx;
    assert_int_equal(n_variants, 2);
    assert_true(p->n < 8);
    p->variants[p->n] = variant;
    p->named[p->n++] = name != NULL;
}

static void test_calibrate(void **state)
{
    fixture *f = *state;
    char *out = path_in(f->dir, "floor.json");
    progress_log log = {0};
    ld_calibrate_options co = {.model = f->m, .prompt = PROMPT, .n_prompt = 3,
                               .decode_steps = DECODE, .dtype = LD_BF16, .variants = 2,
                               .output_path = out, .progress = on_progress, .progress_ctx = &log};
    size_t n_keys = 0;
    ld_error err = {0};
    if (ld_calibrate(&co, &n_keys, &err) != LD_OK)
        fail_msg("%s", err.msg);
    /* The reference (unnamed), then each variant by name. */
    assert_int_equal(log.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(log.variants[i], i);
        assert_true(log.named[i] == (i > 0));
    }
    ld_floor *floor = NULL;
    if (ld_floor_load(out, &floor, &err) != LD_OK)
        fail_msg("%s", err.msg);
    assert_true(n_keys > 0);
    assert_int_equal(ld_floor_count(floor), n_keys);
    assert_int_equal(ld_floor_dtype(floor), LD_BF16);
    ld_floor_destroy(floor);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_baseline),
        cmocka_unit_test(test_compare_text_and_replay),
        cmocka_unit_test(test_calibrate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

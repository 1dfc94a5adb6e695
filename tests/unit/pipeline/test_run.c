/* test_run.c — ld_run and the backend table (src/pipeline/run.h) on the tiny preset: the stream
 * read back against what the call returns, a refused run's error end record, a followed run, the
 * backend names. Not here: the CLI's messages (tests/e2e), the numbers (reference, oracle). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gen.h"
#include "model.h"
#include "model/model_test_util.h"
#include "run.h"
#include "util.h"

typedef struct fixture {
    char *dir;
    ld_model *m;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = make_temp_dir();
    assert_non_null(f->dir);
    char *ckpt = path_in(f->dir, "tiny");
    ld_gen_options opt = {.preset = "tiny", .seed = 0, .dtype = LD_BF16, .tied = -1, .shards = 1};
    ld_error err = {0};
    if (ld_gen_model(ckpt, &opt, &err) != LD_OK || ld_model_open(&f->m, ckpt, &err) != LD_OK)
        fail_msg("tiny checkpoint: %s", err.msg);
    free(ckpt);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ld_model_close(f->m);
    rm_tree(f->dir);
    free(f);
    return 0;
}

static const int32_t PROMPT[] = {1, 2, 3};

static ld_run_options options(const fixture *f, const char *path)
{
    ld_run_options o;
    ld_run_options_init(&o);
    o.model = f->m;
    o.prompt = PROMPT;
    o.n_prompt = 3;
    o.decode_steps = 2;
    o.probes_path = path;
    return o;
}

/* Reads path to its end; returns the reader (header and end available). */
static ld_reader *read_all(const char *path, uint64_t *n_probes)
{
    ld_reader *r = NULL;
    ld_error err = {0};
    if (ld_reader_open(&r, path, NULL, &err) != LD_OK)
        fail_msg("%s", err.msg);
    const ld_probe *p;
    *n_probes = 0;
    while (ld_reader_next(r, &p, &err) == LD_OK && p)
        (*n_probes)++;
    return r;
}

static void test_backends(void **state)
{
    (void)state;
    ld_error err = {0};
    assert_non_null(ld_backend_find("ref"));
    assert_int_equal(ld_backend_check(ld_backend_find("ref"), &err), LD_OK);
    assert_null(ld_backend_find("reference"));
    assert_null(ld_backend_find(NULL));
    /* "cuda" is known in every build; where it cannot run, the check says why. */
    const ld_backend *cuda = ld_backend_find("cuda");
    assert_non_null(cuda);
    ld_status st = ld_backend_check(cuda, &err);
    if (st != LD_OK) {
        assert_true(st == LD_E_USAGE || st == LD_E_NODEVICE);
        assert_true(err.msg[0] != '\0');
    }
}

static void test_run_stream(void **state)
{
    fixture *f = *state;
    char *path = path_in(f->dir, "run.jsonl");
    ld_run_options o = options(f, path);
    ld_run_result res;
    ld_error err = {0};
    if (ld_run(&o, &res, &err) != LD_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(res.implementation, "reference");
    assert_int_equal(res.n_decoded, 2);
    uint64_t n = 0;
    ld_reader *r = read_all(path, &n);
    const ld_header_info *h = ld_reader_header(r);
    assert_string_equal(h->implementation, "reference");
    assert_int_equal(h->n_tokens, 3);
    assert_memory_equal(h->tokens, PROMPT, sizeof PROMPT);
    const ld_end_info *e = ld_reader_end(r);
    assert_true(e->ok);
    assert_int_equal(e->probes, res.n_probes);
    assert_int_equal(n, res.n_probes);
    assert_int_equal(e->n_tokens, 3);
    assert_memory_equal(e->tokens, res.tokens, 3 * sizeof *res.tokens);
    assert_int_equal(e->n_decoded, 2);
    assert_memory_equal(e->decoded, res.decoded, 2 * sizeof *res.decoded);
    ld_reader_close(r);

    /* A run that follows that stream is fed its tokens, and says it is emulated when it is. */
    int32_t *follow = NULL;
    size_t n_follow = 0;
    if (ld_run_read_follow("--follow", path, PROMPT, 3, &follow, &n_follow, &err) != LD_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(n_follow, 2);
    assert_memory_equal(follow, res.decoded, 2 * sizeof *follow);
    char *path2 = path_in(f->dir, "follow.jsonl");
    ld_run_options o2 = options(f, path2);
    o2.follow = follow;
    o2.n_follow = n_follow;
    o2.emulate = LD_BF16;
    ld_run_result res2;
    if (ld_run(&o2, &res2, &err) != LD_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(res2.implementation, "reference-emulated");
    assert_memory_equal(res2.decoded, follow, 2 * sizeof *follow);
    ld_run_result_free(&res2);
    free(follow);
    free(path2);

    /* Following a stream with another prompt is refused. */
    const int32_t other[] = {3, 2, 1};
    assert_int_equal(ld_run_read_follow("--follow", path, other, 3, &follow, &n_follow, &err),
                     LD_E_USAGE);
    ld_run_result_free(&res);
    free(path);
}

static void test_run_refused(void **state)
{
    fixture *f = *state;
    char *path = path_in(f->dir, "refused.jsonl");
    const int32_t bad[] = {1, 99999};
    ld_run_options o = options(f, path);
    o.prompt = bad;
    o.n_prompt = 2;
    o.implementation = "my-engine";
    ld_run_result res;
    ld_error err = {0};
    assert_int_equal(ld_run(&o, &res, &err), LD_E_USAGE);
    /* token indices count from 0 in every message, as in the reports ("token 0 (position 7)") */
    if (!strstr(err.msg, "prompt token at index 1 is 99999"))
        fail_msg("%s", err.msg);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    ld_error perr = {0};
    assert_int_equal(ld_parse_i32_list("1,2,x", 0, 9, &ids, &n_ids, &perr), LD_E_USAGE);
    if (!strstr(perr.msg, "'x' (at index 2)"))
        fail_msg("%s", perr.msg);
    /* The stream was opened, so it ends: an error end record carrying the run's message. */
    uint64_t n = 0;
    ld_reader *r = read_all(path, &n);
    assert_string_equal(ld_reader_header(r)->implementation, "my-engine");
    const ld_end_info *e = ld_reader_end(r);
    assert_false(e->ok);
    assert_string_equal(e->message, err.msg);
    assert_int_equal(e->probes, 0);
    ld_reader_close(r);
    free(path);
}

/* Issue 15, item 11: a step without a finite logit ends the run (no token to decode), and the
 * error end record lists the steps that ran, -1 for that one (it had tokens [] before). */
static void test_run_no_finite_logit(void **state)
{
    fixture *f = *state;
    char *path = path_in(f->dir, "nan.jsonl");
    ld_fault_set faults = {0};
    ld_error err = {0};
    if (ld_fault_set_add(&faults, "nan=q_norm@0", &err) != LD_OK)
        fail_msg("%s", err.msg);
    ld_run_options o = options(f, path);
    o.faults = &faults;
    ld_run_result res;
    assert_int_equal(ld_run(&o, &res, &err), LD_E_INPUT);
    assert_non_null(strstr(err.msg, "step 0: no logit is finite"));
    uint64_t n = 0;
    ld_reader *r = read_all(path, &n);
    const ld_end_info *e = ld_reader_end(r);
    assert_false(e->ok);
    assert_int_equal(e->n_tokens, 1);
    assert_int_equal(e->tokens[0], -1);
    assert_int_equal(e->n_decoded, 0);
    ld_reader_close(r);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backends),
        cmocka_unit_test(test_run_stream),
        cmocka_unit_test(test_run_refused),
        cmocka_unit_test(test_run_no_finite_logit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

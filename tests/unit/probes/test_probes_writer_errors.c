/* test_probes_writer_errors.c — the writer's refusals and failures: disk full (/dev/full), a file
 * size limit hit mid-stream (what is on disk still parses, as a truncated stream), bad paths,
 * bad configuration, bad arguments (the sink stays usable), bad run descriptions, the emergency
 * end record of a fatal-signal handler, and that nothing is ever printed. */
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>

#include "probe_test_util.h"

static void test_dev_full(void **state)
{
    (void)state;
    ld_sink *s = (ld_sink *)1;
    ld_error err;
    ld_run_info run = tu_run();
    TU_FAILS(ld_sink_open(&s, "/dev/full", NULL, &run, &err), &err, LD_E_IO,
             "/dev/full: write failed after 0 of");
    assert_non_null(strstr(err.msg, "No space left on device"));
    assert_null(s);
    int fd = open("/dev/full", O_WRONLY);
    assert_true(fd >= 0);
    TU_FAILS(ld_sink_open_fd(&s, fd, NULL, &run, &err), &err, LD_E_IO, "No space left on device");
    assert_null(s);
    assert_int_equal(close(fd), 0); /* the sink does not close a descriptor it was given */
}

/* RLIMIT_FSIZE makes write() fail with EFBIG past 64 KiB, in the middle of a record. */
static void test_fails_mid_stream(void **state)
{
    (void)state;
    char path[512];
    tu_path(path, sizeof path, "fsize.jsonl");
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 64 << 10;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.payload = LD_PAYLOAD_FULL;
    ld_error err;
    ld_sink *s;
    ld_run_info run = tu_run();
    TU_OK(ld_sink_open(&s, path, &cfg, &run, &err), &err);
    float x[4096];
    for (int i = 0; i < 4096; i++)
        x[i] = (float)i;
    int64_t shape[2] = {4, 1024};
    ld_status st = LD_OK;
    int layer = 0;
    for (; layer < 10 && st == LD_OK; layer++)
        st = ld_sink_emit(s, 0, layer, "attn_norm", 0, LD_F32, shape, 2, x, &err);
    assert_int_equal(st, LD_E_IO);
    assert_non_null(strstr(err.msg, "File too large"));
    assert_non_null(strstr(err.msg, "of the probe S0.L"));
    char first[LD_ERROR_MSG_MAX];
    snprintf(first, sizeof first, "%s", err.msg);
    /* the sink refuses more work, wants nothing, and close reports the same failure */
    assert_false(ld_sink_wants(s, 0, 0, "attn_norm"));
    TU_FAILS(ld_sink_emit(s, 0, 20, "attn_norm", 0, LD_F32, shape, 2, x, &err), &err, LD_E_IO,
             "File too large");
    assert_string_equal(err.msg, first);
    TU_FAILS(ld_sink_close(s, NULL, &err), &err, LD_E_IO, "File too large");
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    /* on disk: complete lines that parse, then a cut line: a truncated stream */
    ld_reader *r;
    uint64_t n;
    TU_OK(ld_reader_open(&r, path, NULL, &err), &err);
    TU_FAILS(tu_read_all(r, &n, &err), &err, LD_E_TRUNCATED, "last complete probe: S0.L");
    assert_int_equal(n, (uint64_t)layer - 1);
    ld_reader_close(r);
}

/* Reads path whole: an ok stream of n probes whose end record is an error with message and
 * last_key. */
static void expect_error_end(const char *path, uint64_t n, const char *last_key,
                             const char *message)
{
    ld_reader *r;
    ld_error err;
    uint64_t got;
    TU_OK(ld_reader_open(&r, path, NULL, &err), &err);
    TU_OK(tu_read_all(r, &got, &err), &err);
    assert_int_equal(got, n);
    const ld_end_info *e = ld_reader_end(r);
    assert_false(e->ok);
    assert_int_equal(e->probes, n);
    assert_string_equal(e->last_key, last_key);
    assert_string_equal(e->message, message);
    ld_reader_close(r);
}

/* ld_sink_emergency_end (a fatal-signal handler's end record): the last key, the message escaped
 * so that the strict reader takes the line, before any probe and after some; a long message cut. */
static void test_emergency_end(void **state)
{
    (void)state;
    char path[512];
    tu_path(path, sizeof path, "emergency.jsonl");
    ld_run_info run = tu_run();
    ld_error err;
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t shape[2] = {1, 8};
    for (int probes = 0; probes <= 2; probes += 2) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        ld_sink *s;
        TU_OK(ld_sink_open_fd(&s, fd, NULL, &run, &err), &err);
        for (int l = 0; l < probes; l++)
            TU_OK(ld_sink_emit(s, 0, l, "custom_tag", 0, LD_F32, shape, 2, x, &err), &err);
        ld_sink_emergency_end(s, "m/\"x\\y\".safetensors\nchanged \xc3\xa9");
        expect_error_end(path, (uint64_t)probes, probes ? "S0.L1.custom_tag" : "",
                         "m/\"x\\y\".safetensors?changed ??");
        assert_int_equal(close(fd), 0);
        ld_sink_close(s, NULL, NULL); /* frees; its write fails on the closed descriptor */
    }
    char *long_msg = malloc(5000);
    assert_non_null(long_msg);
    memset(long_msg, 'a', 4999);
    long_msg[4999] = '\0';
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ld_sink *s;
    TU_OK(ld_sink_open_fd(&s, fd, NULL, &run, &err), &err);
    ld_sink_emergency_end(s, long_msg);
    ld_reader *r;
    uint64_t got;
    TU_OK(ld_reader_open(&r, path, NULL, &err), &err);
    TU_OK(tu_read_all(r, &got, &err), &err);
    size_t len = strlen(ld_reader_end(r)->message);
    assert_true(len >= 1024 && len < 4999);
    ld_reader_close(r);
    assert_int_equal(close(fd), 0);
    ld_sink_close(s, NULL, NULL);
    free(long_msg);
}

static void test_paths_and_config(void **state)
{
    (void)state;
    ld_sink *s;
    ld_error err;
    ld_run_info run = tu_run();
    TU_FAILS(ld_sink_open(&s, "/nonexistent-dir/p.jsonl", NULL, &run, &err), &err, LD_E_IO,
             "/nonexistent-dir/p.jsonl: cannot create: No such file or directory");
    TU_FAILS(ld_sink_open(&s, "out.jsonl.gz", NULL, &run, &err), &err, LD_E_USAGE,
             "out.jsonl.gz: the probe writer does not compress");
    TU_FAILS(ld_sink_open(&s, "", NULL, &run, &err), &err, LD_E_USAGE, "no probe output path");
    TU_FAILS(ld_sink_open_fd(&s, -1, NULL, &run, &err), &err, LD_E_USAGE, "bad file descriptor");
    char path[512];
    tu_path(path, sizeof path, "cfg.jsonl");
    ld_sink_config cfg;
    ld_sink_config_init(&cfg);
    cfg.zlib_level = 0;
    TU_FAILS(ld_sink_open(&s, path, &cfg, &run, &err), &err, LD_E_USAGE, "zlib level 0");
    ld_sink_config_init(&cfg);
    cfg.encoding = (ld_encoding)7;
    TU_FAILS(ld_sink_open(&s, path, &cfg, &run, &err), &err, LD_E_USAGE, "encoding 7");
    ld_sink_config_init(&cfg);
    cfg.payload = (ld_payload)3;
    TU_FAILS(ld_sink_open(&s, path, &cfg, &run, &err), &err, LD_E_USAGE, "payload 3");
    /* run descriptions */
    ld_run_info bad = run;
    bad.backend_json = "{\"device\": }";
    TU_FAILS(ld_sink_open(&s, path, NULL, &bad, &err), &err, LD_E_USAGE,
             "run.backend_json is not valid JSON: unexpected character (expected a value) at "
             "column 12");
    bad = run;
    bad.model_json = "[1,2]";
    TU_FAILS(ld_sink_open(&s, path, NULL, &bad, &err), &err, LD_E_USAGE,
             "run.model_json must be a JSON object, not an array");
    bad = run;
    bad.model_json = "{\"a\":1,\"a\":2}";
    TU_FAILS(ld_sink_open(&s, path, NULL, &bad, &err), &err, LD_E_USAGE, "duplicate member name");
    char longname[300];
    memset(longname, 'x', 299);
    longname[299] = '\0';
    bad = run;
    bad.implementation = longname;
    TU_FAILS(ld_sink_open(&s, path, NULL, &bad, &err), &err, LD_E_USAGE,
             "run.implementation must be 1 to 255 bytes");
    const int32_t neg[1] = {-5};
    bad = run;
    bad.tokens = neg;
    bad.n_tokens = 1;
    TU_FAILS(ld_sink_open(&s, path, NULL, &bad, &err), &err, LD_E_USAGE, "run.tokens[0] = -5");
    bad = run;
    bad.decode_steps = -1;
    TU_FAILS(ld_sink_open(&s, path, NULL, &bad, &err), &err, LD_E_USAGE, "decode_steps = -1");
    /* NULL run: an "unknown" implementation with no tokens */
    TU_OK(ld_sink_open(&s, path, NULL, NULL, &err), &err);
    TU_OK(ld_sink_close(s, NULL, &err), &err);
    ld_reader *r;
    TU_OK(ld_reader_open(&r, path, NULL, &err), &err);
    assert_string_equal(ld_reader_header(r)->implementation, "unknown");
    assert_string_equal(ld_reader_header(r)->backend_json, "{}");
    ld_reader_close(r);
    TU_OK(ld_sink_close(NULL, NULL, &err), &err);
}

static void test_bad_arguments_keep_sink_usable(void **state)
{
    (void)state;
    char path[512];
    tu_path(path, sizeof path, "args.jsonl");
    ld_error err;
    ld_sink *s;
    ld_run_info run = tu_run();
    TU_OK(ld_sink_open(&s, path, NULL, &run, &err), &err);
    float x[8] = {0};
    int64_t shape[2] = {2, 4}, neg[2] = {2, -4}, huge[4] = {1 << 20, 1 << 20, 1 << 20, 1 << 20};
    TU_FAILS(ld_sink_emit(s, 0, 0, "q norm", 0, LD_F32, shape, 2, x, &err), &err, LD_E_USAGE,
             "bad tag name 'q norm'");
    TU_FAILS(ld_sink_emit(s, 0, 0, NULL, 0, LD_F32, shape, 2, x, &err), &err, LD_E_USAGE,
             "bad tag name '(null)'");
    TU_FAILS(ld_sink_emit(s, -1, 0, "q_norm", 0, LD_F32, shape, 2, x, &err), &err, LD_E_USAGE,
             "step -1 is negative");
    TU_FAILS(ld_sink_emit(s, 0, -2, "q_norm", 0, LD_F32, shape, 2, x, &err), &err, LD_E_USAGE,
             "layer -2 is negative");
    TU_FAILS(ld_sink_emit(s, 0, LD_NO_LAYER, "q_norm", 0, LD_F32, shape, 2, x, &err), &err,
             LD_E_USAGE, "q_norm is a per-layer tag but was emitted without a layer");
    TU_FAILS(ld_sink_emit(s, 0, 3, "embed", 0, LD_F32, shape, 2, x, &err), &err, LD_E_USAGE,
             "embed is a model-level tag but was emitted with a layer");
    TU_FAILS(ld_sink_emit(s, 0, 0, "q_norm", 0, LD_F32, shape, 0, x, &err), &err, LD_E_USAGE,
             "ndim 0 is outside 1..4");
    TU_FAILS(ld_sink_emit(s, 0, 0, "q_norm", 0, LD_F32, shape, 5, x, &err), &err, LD_E_USAGE,
             "ndim 5");
    TU_FAILS(ld_sink_emit(s, 0, 0, "q_norm", 0, LD_F32, neg, 2, x, &err), &err, LD_E_USAGE,
             "negative dimension");
    TU_FAILS(ld_sink_emit(s, 0, 0, "q_norm", 0, LD_F32, huge, 4, x, &err), &err, LD_E_USAGE,
             "more than 2^40 elements");
    TU_FAILS(ld_sink_emit(s, 0, 0, "q_norm", -1, LD_F32, shape, 2, x, &err), &err, LD_E_USAGE,
             "pos0 -1 is negative");
    TU_FAILS(ld_sink_emit(s, 0, 0, "q_norm", 0, (ld_dtype)9, shape, 2, x, &err), &err, LD_E_USAGE,
             "unknown dtype 9");
    TU_FAILS(ld_sink_emit(s, 0, 0, "q_norm", 0, LD_F32, shape, 2, NULL, &err), &err, LD_E_USAGE,
             "data is NULL");
    TU_FAILS(ld_sink_emit_precomputed(s, 0, 0, "q_norm", 0, LD_F32, shape, 2, NULL, NULL, NULL,
                                      &err),
             &err, LD_E_USAGE, "stats or head is NULL");
    assert_int_equal(ld_sink_probe_count(s), 0);
    TU_OK(ld_sink_emit(s, 0, 0, "q_norm", 0, LD_F32, shape, 2, x, &err), &err);
    /* a bad end description still ends the stream, as an error */
    const int32_t am[2] = {3, -2}; /* -1 is allowed: a step without a finite logit */
    ld_run_end end = {.ok = true, .tokens = am, .n_tokens = 2};
    TU_FAILS(ld_sink_close(s, &end, &err), &err, LD_E_USAGE, "end.tokens[1] = -2 is negative");
    ld_reader *r;
    uint64_t n;
    TU_OK(ld_reader_open(&r, path, NULL, &err), &err);
    TU_OK(tu_read_all(r, &n, &err), &err);
    assert_int_equal(n, 1);
    assert_false(ld_reader_end(r)->ok);
    assert_string_equal(ld_reader_end(r)->message, "end.tokens[1] = -2 is negative");
    assert_int_equal(ld_reader_end(r)->n_tokens, 0);
    ld_reader_close(r);
}

/* The library never prints: run failures with stdout and stderr pointed at a file. */
static void test_never_prints(void **state)
{
    (void)state;
    char out[512];
    tu_path(out, sizeof out, "printed.txt");
    fflush(stdout);
    fflush(stderr);
    int saved1 = dup(1), saved2 = dup(2);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0 && saved1 >= 0 && saved2 >= 0);
    dup2(fd, 1);
    dup2(fd, 2);
    ld_sink *s;
    ld_reader *r;
    ld_error err;
    ld_run_info run = tu_run();
    (void)ld_sink_open(&s, "/dev/full", NULL, &run, &err);
    (void)ld_reader_open(&r, "/nonexistent", NULL, &err);
    (void)ld_reader_open_mem(&r, "m", "{\"record\":\"probe\"}\n", 19, NULL, &err);
    (void)ld_reader_open_mem(&r, "m", "[[[[", 4, NULL, &err);
    fflush(stdout);
    fflush(stderr);
    dup2(saved1, 1);
    dup2(saved2, 2);
    close(saved1);
    close(saved2);
    close(fd);
    size_t len;
    char *text = tu_slurp(out, &len);
    assert_int_equal(len, 0);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dev_full),
        cmocka_unit_test(test_fails_mid_stream),
        cmocka_unit_test(test_emergency_end),
        cmocka_unit_test(test_paths_and_config),
        cmocka_unit_test(test_bad_arguments_keep_sink_usable),
        cmocka_unit_test(test_never_prints),
    };
    return cmocka_run_group_tests(tests, NULL, tu_teardown);
}

/* test_probes_truncation.c — a stream cut at every byte offset reads as "truncated" (never as
 * data, never a crash, never a leak under ASan) and names the last complete probe: the one whose
 * whole line, newline included, survived the cut. Runs over every offset of a small stream with
 * payloads, in memory and, for the last two records, from files and gzip files too. */
#include <zlib.h>

#include "probe_test_util.h"

static const char *const keys[] = {"S0.embed",  "S0.L0.attn_norm", "S0.L0.q_proj",
                                   "S0.final_norm", "S0.logits", "S1.L0.attn_norm"};

/* Line starts of the sample: line_end[i] is the offset just past the '\n' of line i. */
/* The key the reader must name for a cut at offset cut: lines 1..6 are the probes. */
static const char *expected_key(const size_t *ends, size_t cut)
{
    const char *k = "none (no probe read)";
    for (size_t i = 1; i <= 6; i++)
        if (ends[i] <= cut)
            k = keys[i - 1];
    return k;
}

static void check_cut(ld_status st, const ld_error *err, const char *want_key, size_t cut,
                      size_t header_end)
{
    if (st != LD_E_TRUNCATED)
        fail_msg("cut at %zu: %s (%s), expected truncated", cut, ld_status_name(st), err->msg);
    if (cut >= header_end) {
        char needle[128];
        snprintf(needle, sizeof needle, "last complete probe: %s", want_key);
        if (!strstr(err->msg, needle))
            fail_msg("cut at %zu: '%s' does not name '%s'", cut, err->msg, want_key);
    } else if (!strstr(err->msg, cut == 0 ? "the file is empty" : "cut short")) {
        fail_msg("cut at %zu inside the header: '%s'", cut, err->msg);
    }
}

static ld_status read_cut(const char *name, const char *data, size_t len, ld_error *err,
                          char *last_key, size_t key_size)
{
    ld_reader *r;
    ld_status st = ld_reader_open_mem(&r, name, data, len, NULL, err);
    if (st != LD_OK)
        return st;
    uint64_t n;
    st = tu_read_all(r, &n, err);
    snprintf(last_key, key_size, "%s", ld_reader_last_key(r));
    /* once truncated, it stays truncated */
    const ld_probe *p;
    ld_error again;
    if (st != LD_OK && ld_reader_next(r, &p, &again) != st)
        fail_msg("a second call after '%s' changed the status", err->msg);
    ld_reader_close(r);
    return st;
}

static void test_every_offset(void **state)
{
    (void)state;
    for (int e = 0; e < 3; e++) {
        char path[512];
        tu_path(path, sizeof path, "whole.jsonl");
        size_t len;
        char *text = tu_full_sample(path, (ld_encoding)e, &len);
        size_t ends[16] = {0};
        assert_int_equal(tu_line_ends(text, len, ends, 16), 8); /* header, 6 probes, end */
        assert_int_equal(ends[7], len);
        /* the whole file reads fine */
        char last[160];
        ld_error err;
        TU_OK(read_cut("mem", text, len, &err, last, sizeof last), &err);
        for (size_t cut = 0; cut < len; cut++) {
            char *copy = malloc(cut ? cut : 1); /* exact size: ASan sees any read past the cut */
            memcpy(copy, text, cut);
            ld_status st = read_cut("mem", copy, cut, &err, last, sizeof last);
            const char *want = expected_key(ends, cut);
            check_cut(st, &err, want, cut, ends[0]);
            if (cut >= ends[0] && strcmp(last, strncmp(want, "none", 4) ? want : "") != 0)
                fail_msg("cut at %zu: ld_reader_last_key = '%s', expected '%s'", cut, last, want);
            free(copy);
        }
        free(text);
    }
}

/* The same for the last two records through files, plain and gzip-compressed. */
static void test_last_two_records_from_files(void **state)
{
    (void)state;
    char path[512], cut_path[512], gz_path[512];
    tu_path(path, sizeof path, "whole2.jsonl");
    tu_path(cut_path, sizeof cut_path, "cut.jsonl");
    tu_path(gz_path, sizeof gz_path, "cut.jsonl.gz");
    size_t len;
    char *text = tu_full_sample(path, LD_ENC_SHUFFLE_ZLIB_BASE64, &len);
    size_t ends[16] = {0};
    tu_line_ends(text, len, ends, 16);
    for (size_t cut = ends[5]; cut < len; cut++) { /* from the start of the last probe line */
        tu_spit(cut_path, text, cut);
        gzFile g = gzopen(gz_path, "wb");
        assert_non_null(g);
        if (cut)
            assert_int_equal(gzwrite(g, text, (unsigned)cut), (int)cut);
        assert_int_equal(gzclose(g), Z_OK);
        const char *paths[2] = {cut_path, gz_path};
        for (int k = 0; k < 2; k++) {
            ld_reader *r;
            ld_error err;
            uint64_t n = 0;
            ld_status st = ld_reader_open(&r, paths[k], NULL, &err);
            assert_int_equal(st, LD_OK);
            st = tu_read_all(r, &n, &err);
            ld_reader_close(r);
            check_cut(st, &err, expected_key(ends, cut), cut, ends[0]);
            assert_non_null(strstr(err.msg, paths[k]));
        }
    }
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_offset),
        cmocka_unit_test(test_last_two_records_from_files),
    };
    return cmocka_run_group_tests(tests, NULL, tu_teardown);
}

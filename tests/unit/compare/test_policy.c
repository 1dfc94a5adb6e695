/* test_policy.c — tolerance policies: the built-in defaults per candidate dtype, overrides by tag
 * glob / dtype / layers / steps (later rules win field by field), and bad files refused with a
 * message that names the file and the field. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "compare.h"

static ld_key key(int step, int layer, const char *tag)
{
    ld_key k = {step, layer, ""};
    snprintf(k.tag, sizeof k.tag, "%s", tag);
    return k;
}

static void test_defaults(void **state)
{
    (void)state;
    ld_tolerance t;
    ld_tolerance_default(LD_F32, "q_norm", &t);
    assert_true(t.rel_l2 == 1e-4 && t.cosine == 1.0 - 1e-8);
    assert_true(t.outside == 1 && isinf(t.max_abs) && isinf(t.ulp)); /* off by default */
    ld_tolerance_default(LD_BF16, "q_norm", &t);
    assert_true(t.rel_l2 == 4e-2 && t.cosine == 0.999);
    ld_tolerance_default(LD_BF16, "logits", &t);
    assert_true(t.rel_l2 == 6e-2 && t.cosine == 0.998); /* looser on logits */
    ld_tolerance_default(LD_F16, "attn_out", &t);
    assert_true(t.rel_l2 == 6e-3); /* about 7x tighter than bf16 */
    /* Without a policy, resolve gives the defaults. */
    ld_key k = key(0, 3, "q_norm");
    ld_policy_resolve(NULL, &k, LD_BF16, &t);
    assert_true(t.rel_l2 == 4e-2);
    assert_string_equal(ld_policy_label(NULL), "built-in defaults");
}

static const char *good =
    "{\n"
    "  \"version\": 1,\n"
    "  \"description\": \"looser attention in the last layers\",\n"
    "  \"rules\": [\n"
    "    {\"tags\": \"attn_out\", \"rel_l2\": 0.05},\n"
    "    {\"tags\": [\"attn_out\", \"o_proj\"], \"dtype\": \"bf16\", \"layers\": \"2-\", \"cosine\": 0.99},\n"
    "    {\"tags\": \"q_*\", \"steps\": 1, \"rel_l2\": 0.1, \"max_abs\": 3, \"ulp\": null},\n"
    "    {\"tags\": \"*\", \"dtype\": [\"f16\"], \"outside\": 0.01, \"atol\": 1e-3, \"rtol\": 0},\n"
    "    {\"tags\": \"attn_out\", \"layers\": 5, \"rel_l2\": 0.2, \"comment\": \"later wins\"}\n"
    "  ]\n"
    "}\n";

static void test_good_file(void **state)
{
    (void)state;
    ld_policy *p = NULL;
    ld_error err;
    assert_int_equal(ld_policy_parse(good, strlen(good), "good.json", &p, &err), LD_OK);
    assert_string_equal(ld_policy_label(p), "good.json");
    ld_tolerance t;
    ld_key k = key(0, 0, "attn_out");
    ld_policy_resolve(p, &k, LD_F32, &t);
    assert_true(t.rel_l2 == 0.05 && t.cosine == 1.0 - 1e-8); /* rule 0 only */
    k = key(0, 3, "attn_out");
    ld_policy_resolve(p, &k, LD_BF16, &t);
    assert_true(t.rel_l2 == 0.05 && t.cosine == 0.99); /* rules 0 and 1 */
    ld_policy_resolve(p, &k, LD_F32, &t);
    assert_true(t.cosine == 1.0 - 1e-8); /* rule 1 is bf16 only */
    k = key(0, 5, "attn_out");
    ld_policy_resolve(p, &k, LD_BF16, &t);
    assert_true(t.rel_l2 == 0.2 && t.cosine == 0.99); /* rule 4 wins rel_l2 */
    k = key(1, 0, "q_norm");
    ld_policy_resolve(p, &k, LD_BF16, &t);
    assert_true(t.rel_l2 == 0.1 && t.max_abs == 3 && isinf(t.ulp));
    k = key(0, 0, "q_norm");
    ld_policy_resolve(p, &k, LD_BF16, &t);
    assert_true(t.rel_l2 == 4e-2 && isinf(t.max_abs)); /* step 0: rule 2 does not apply */
    k = key(0, LD_NO_LAYER, "logits");
    ld_policy_resolve(p, &k, LD_F16, &t);
    assert_true(t.outside == 0.01 && t.atol == 1e-3 && t.rtol == 0 && t.rel_l2 == 8e-3);
    /* a layer range never matches a model-level tag */
    k = key(0, LD_NO_LAYER, "attn_out");
    ld_policy_resolve(p, &k, LD_BF16, &t);
    assert_true(t.cosine == 0.999);
    ld_policy_destroy(p);
    ld_policy_destroy(NULL);
}

/* Each bad file fails with LD_E_INPUT and a message containing both the label and want. */
static void expect_bad(const char *text, const char *want)
{
    ld_policy *p = (ld_policy *)1;
    ld_error err;
    ld_error_clear(&err);
    ld_status st = ld_policy_parse(text, strlen(text), "bad.json", &p, &err);
    if (st != LD_E_INPUT || !strstr(err.msg, "bad.json") || !strstr(err.msg, want))
        fail_msg("for %s: status %d, message '%s' (wanted '%s')", text, st, err.msg, want);
    assert_null(p);
}

static void test_bad_files(void **state)
{
    (void)state;
    expect_bad("{\"version\": 1, \"rules\": [}", "line 1, column");
    expect_bad("{\"version\": 1,\n \"rules\": [\n {\"tags\": \"*\" \"rel_l2\": 1}]}", "line 3");
    expect_bad("[1, 2]", "must hold a JSON object");
    expect_bad("{\"rules\": []}", "version");
    expect_bad("{\"version\": 2, \"rules\": []}", "version");
    expect_bad("{\"version\": 1}", "rules");
    expect_bad("{\"version\": 1, \"rules\": [], \"rule\": 1}", "rule: unknown field");
    expect_bad("{\"version\": 1, \"rules\": [{\"tags\": \"*\", \"cosin\": 0.9}]}",
               "rules[0].cosin: unknown field");
    expect_bad("{\"version\": 1, \"rules\": [{\"tags\": \"*\", \"rel_l2\": 1}, "
               "{\"tags\": \"*\", \"cosine\": 2}]}",
               "rules[1].cosine: must be a number in [-1, 1]");
    expect_bad("{\"version\": 1, \"rules\": [{\"rel_l2\": 1}]}", "rules[0].tags: missing");
    expect_bad("{\"version\": 1, \"rules\": [{\"tags\": [], \"rel_l2\": 1}]}", "rules[0].tags");
    expect_bad("{\"version\": 1, \"rules\": [{\"tags\": [3], \"rel_l2\": 1}]}", "rules[0].tags");
    expect_bad("{\"version\": 1, \"rules\": [{\"tags\": \"*\", \"rel_l2\": -1}]}", "rules[0].rel_l2");
    expect_bad("{\"version\": 1, \"rules\": [{\"tags\": \"*\", \"rel_l2\": \"0.1\"}]}",
               "rules[0].rel_l2");
    expect_bad("{\"version\": 1, \"rules\": [{\"tags\": \"*\", \"outside\": 1.5}]}",
               "rules[0].outside");
    expect_bad("{\"version\": 1, \"rules\": [{\"tags\": \"*\", \"rel_l2\": null}]}",
               "rules[0].rel_l2");
    expect_bad("{\"version\": 1, \"rules\": [{\"tags\": \"*\", \"dtype\": \"fp8\", \"rel_l2\": 1}]}",
               "rules[0].dtype");
    expect_bad("{\"version\": 1, \"rules\": [{\"tags\": \"*\", \"layers\": \"3-1\", \"rel_l2\": 1}]}",
               "rules[0].layers");
    expect_bad("{\"version\": 1, \"rules\": [{\"tags\": \"*\", \"steps\": -1, \"rel_l2\": 1}]}",
               "rules[0].steps");
    expect_bad("{\"version\": 1, \"rules\": [{\"tags\": \"*\"}]}", "rules[0]: sets no tolerance");
    expect_bad("{\"version\": 1, \"rules\": [{\"tags\": \"*\", \"rel_l2\": 1, \"rel_l2\": 2}]}",
               "rules[0].rel_l2: given twice");
    expect_bad("{\"version\": 1, \"rules\": [7]}", "rules[0]: must be an object");
    expect_bad("{\"version\": 1, \"rules\": []} x", "text after");
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/ld_policy_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *bad = "{\"version\": 1, \"rules\": [{\"tags\": \"q_*\", \"cosine\": \"high\"}]}";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    ld_policy *p = NULL;
    ld_error err;
    assert_int_equal(ld_policy_load(path, &p, &err), LD_E_INPUT);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "rules[0].cosine"));
    unlink(path);
    assert_int_not_equal(ld_policy_load(path, &p, &err), LD_OK); /* gone: names the path */
    assert_non_null(strstr(err.msg, path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

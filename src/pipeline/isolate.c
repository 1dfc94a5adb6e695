/* isolate.c — teacher-forced isolation of one divergence (isolate.h): three candidate runs
 * (unfed, everything fed, the key fed), their comparisons against the reference, replay's local
 * error of the unfed run, and the one-sentence conclusion. Not here: feeding (reference/forward.c,
 * cuda/forward.c), the comparator and replay (compare/), printing (src/cli/cmd_isolate.c). */
#include "isolate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline_compare.h"
#include "util.h"

/* One candidate run into work_dir/name, fed as the filters say (feed NULL: not fed). */
static ld_status cand_run(const ld_isolate_job *j, const char *name, const char *feed,
                          const char *tags, const char *layers, const char *steps, char *path,
                          size_t size, ld_error *err)
{
    if (snprintf(path, size, "%s/%s", j->work_dir, name) >= (int)size)
        return ld_error_set(err, LD_E_USAGE, "%s: the work directory's path is too long",
                            j->work_dir);
    ld_sink_config sc;
    ld_sink_config_init(&sc);
    sc.payload = LD_PAYLOAD_FULL;
    ld_run_options o = j->cand;
    o.probes_path = path;
    o.sink_config = &sc;
    o.probes_from_env = false;
    o.feed_path = feed;
    o.feed_tags = tags;
    o.feed_layers = layers;
    o.feed_steps = steps;
    ld_run_result r;
    ld_status st = ld_run(&o, &r, err);
    if (st == LD_OK)
        ld_run_result_free(&r);
    return st;
}

/* Compared rows after row k (reference order) that fail, the op's own rows at later steps left
 * out (fed or not, the op recomputes them). */
static size_t later_failing(const ld_compare_result *c, ptrdiff_t k, size_t *n_later)
{
    size_t n = 0, bad = 0;
    const ld_key *key = &c->rows[k].key;
    for (size_t i = (size_t)k + 1; i < c->n_rows; i++)
        if (c->rows[i].state == LD_ROW_COMPARED && (c->rows[i].key.layer != key->layer ||
                                                    strcmp(c->rows[i].key.tag, key->tag))) {
            n++;
            bad += !c->rows[i].pass;
        }
    *n_later = n;
    return bad;
}

static ptrdiff_t find_row(const ld_compare_result *c, const ld_key *key, const char *path,
                          ld_error *err)
{
    ptrdiff_t k = ld_compare_find(c, key);
    if (k < 0 || c->rows[k].state != LD_ROW_COMPARED) {
        char text[LD_TAG_NAME_MAX + 32];
        ld_error_set(err, LD_E_USAGE, "%s: probe %s was not compared (absent from a stream)",
                     path, ld_key_format(key, text, sizeof text));
        return -1;
    }
    return k;
}

static void conclude(ld_isolate_result *r)
{
    char key[LD_TAG_NAME_MAX + 32], first[LD_TAG_NAME_MAX + 32];
    ld_key_format(&r->key, key, sizeof key);
    ld_key_format(&r->exact_first, first, sizeof first);
    char recovers[200];
    if (r->later_fail_fed == 0)
        snprintf(recovers, sizeof recovers, "and feeding its output clears every later probe");
    else
        snprintf(recovers, sizeof recovers,
                 "but with its output fed %zu later probes still fail (another tensor is wrong "
                 "too: %zu keys fail on exact inputs)",
                 r->later_fail_fed, r->n_exact_fail);
    if (r->exact_fails)
        snprintf(r->conclusion, sizeof r->conclusion,
                 "%s (%s) is wrong itself: on the reference's exact inputs its error is %.3g "
                 "(tolerance %.3g), %s.",
                 key, r->op[0] ? r->op : "custom op", r->exact_rel_l2, r->exact_tol, recovers);
    else if (r->n_exact_fail)
        snprintf(r->conclusion, sizeof r->conclusion,
                 "%s inherits its error: on exact inputs it is within tolerance (%.3g <= %.3g); "
                 "the first op wrong on exact inputs is %s (%zu keys fail fed).",
                 key, r->exact_rel_l2, r->exact_tol, first, r->n_exact_fail);
    else
        snprintf(r->conclusion, sizeof r->conclusion,
                 "%s inherits its error: on exact inputs every op is within tolerance (%.3g <= "
                 "%.3g here), so the divergence is accumulated rounding, not one wrong op.",
                 key, r->exact_rel_l2, r->exact_tol);
}

/* The unfed run: the key to isolate and replay's local error of its op. */
static ld_status plain_pass(const ld_isolate_job *j, ld_isolate_result *r, ld_error *err)
{
    char path[4096];
    ld_status st = cand_run(j, "plain.jsonl", NULL, NULL, NULL, NULL, path, sizeof path, err);
    if (st != LD_OK)
        return st;
    ld_compare_job cj;
    ld_compare_job_init(&cj);
    cj.ref_path = j->ref_path;
    cj.cand_path = path;
    cj.compare = j->compare;
    cj.model_dir = j->model_dir;
    ld_compare_outcome oc = {0};
    if ((st = ld_compare_pipeline(&cj, &oc, err)) != LD_OK) {
        ld_compare_outcome_free(&oc);
        return st;
    }
    const ld_compare_result *c = oc.result;
    ptrdiff_t k = -1;
    if (j->key) {
        if ((st = ld_key_parse(j->key, &r->key, err)) == LD_OK &&
            (k = find_row(c, &r->key, path, err)) < 0)
            st = LD_E_USAGE;
    } else if (c->first_div >= 0) {
        k = c->first_div;
        r->key = c->rows[k].key;
    }
    if (st == LD_OK && k >= 0) {
        const ld_row *row = &c->rows[k];
        r->diverged = true;
        r->plain_rel_l2 = row->m.rel_l2;
        r->replay_local = row->replayed ? row->local_rel_l2 : NAN;
        r->replay_budget = row->local_budget;
        r->replay_over = row->replayed && row->local_over;
        r->later_fail_plain = later_failing(c, k, &r->n_later);
        const char *op = row->tag_id != LD_TAG_UNKNOWN ? ld_tag_op_name(row->tag_id) : "";
        snprintf(r->op, sizeof r->op, "%s", op ? op : "");
    }
    ld_compare_outcome_free(&oc);
    return st;
}

/* Runs name fed by the filters and compares it with the reference. */
static ld_status fed_compare(const ld_isolate_job *j, const char *name, const char *tags,
                             const char *layers, const char *steps, ld_compare_result **c,
                             char *path, size_t size, ld_error *err)
{
    ld_status st = cand_run(j, name, j->ref_path, tags, layers, steps, path, size, err);
    return st != LD_OK ? st : ld_compare_run(j->ref_path, path, &j->compare, c, err);
}

/* What would fail only after a run had replaced the work directory's streams, checked before
 * any: an empty work path (it would put them in /), a --key that does not parse or that REF does
 * not hold, and a REF of another checkpoint (the fed runs refuse it). */
static ld_status check_job(const ld_isolate_job *j, ld_error *err)
{
    if (!*j->work_dir)
        return ld_error_set(err, LD_E_USAGE, "--work: an empty path: give the work directory");
    ld_key key;
    if (j->key && ld_key_parse(j->key, &key, err) != LD_OK)
        return ld_error_prefix(err, "--key");
    ld_reader *r;
    ld_reader_options ro;
    ld_reader_options_init(&ro);
    ro.stream_data = true; /* payloads are checked as they go by, never held whole */
    ld_status st = ld_reader_open(&r, j->ref_path, &ro, err);
    if (st != LD_OK)
        return st;
    const ld_header_info *h = ld_reader_header(r);
    const ld_model *m = j->cand.model;
    if (m && h->fingerprint[0] && strcmp(h->fingerprint, m->fingerprint))
        st = ld_error_set(err, LD_E_INPUT,
                          "--model: the checkpoint's weights (fingerprint %s) are not the ones "
                          "the reference stream %s ran (%s)",
                          m->fingerprint, j->ref_path, h->fingerprint);
    /* The key, looked for in REF: one read of it, against the three runs and comparisons that
     * would otherwise come before finding it missing. */
    const ld_probe *p = NULL;
    while (st == LD_OK && j->key && (st = ld_reader_next(r, &p, err)) == LD_OK && p &&
           !(p->step == key.step && p->layer == key.layer && !strcmp(p->tag, key.tag)))
        ;
    if (st == LD_OK && j->key && !p) {
        char text[LD_TAG_NAME_MAX + 32];
        st = ld_error_set(err, LD_E_USAGE, "--key %s: %s holds no such probe",
                          ld_key_format(&key, text, sizeof text), j->ref_path);
    }
    ld_reader_close(r);
    return st;
}

ld_status ld_isolate(const ld_isolate_job *j, ld_isolate_result *out, ld_error *err)
{
    ld_status st0 = check_job(j, err);
    if (st0 != LD_OK)
        return st0;
    /* The work directory may hold the reference under one of our names: refused before the
     * first run rather than truncated, which left the runs comparing against what they wrote. */
    static const char *const names[] = {"plain.jsonl", "exact.jsonl", "fed.jsonl"};
    for (size_t i = 0; i < LD_ARRAY_LEN(names); i++) {
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", j->work_dir, names[i]) >= (int)sizeof p)
            return ld_error_set(err, LD_E_USAGE, "%s: the work directory's path is too long",
                                j->work_dir);
        if (ld_refuse_overwrite(p, &j->ref_path, 1, err) != LD_OK)
            return ld_error_prefix(err, "--work");
    }
    ld_isolate_result r = {.replay_local = NAN, .exact_rel_l2 = NAN, .plain_rel_l2 = NAN};
    ld_status st = plain_pass(j, &r, err);
    if (st != LD_OK || !r.diverged) {
        if (st == LD_OK)
            snprintf(r.conclusion, sizeof r.conclusion,
                     "No probe diverges: there is nothing to isolate.");
        *out = r;
        return st;
    }
    char path[4096], layer[16];
    ld_compare_result *c = NULL;
    /* Everything fed: each probe is its op's output on the reference's exact inputs. */
    if ((st = fed_compare(j, "exact.jsonl", NULL, NULL, NULL, &c, path, sizeof path, err)) !=
        LD_OK)
        return st;
    ptrdiff_t k = find_row(c, &r.key, path, err);
    if (k < 0) {
        ld_compare_result_destroy(c);
        return LD_E_USAGE;
    }
    r.exact_rel_l2 = c->rows[k].m.rel_l2;
    r.exact_tol = c->rows[k].tol.rel_l2;
    r.exact_fails = !c->rows[k].pass;
    for (size_t i = 0; i < c->n_rows; i++)
        if (c->rows[i].state == LD_ROW_COMPARED && !c->rows[i].pass && r.n_exact_fail++ == 0)
            r.exact_first = c->rows[i].key;
    ld_compare_result_destroy(c);
    /* The divergent tensor fed (at every step: the op recomputes it at each): do the probes after
     * it recover? */
    snprintf(layer, sizeof layer, "%d", r.key.layer);
    if ((st = fed_compare(j, "fed.jsonl", r.key.tag, r.key.layer == LD_NO_LAYER ? NULL : layer,
                          NULL, &c, path, sizeof path, err)) != LD_OK)
        return st;
    if ((k = find_row(c, &r.key, path, err)) < 0) {
        ld_compare_result_destroy(c);
        return LD_E_USAGE;
    }
    size_t n;
    r.later_fail_fed = later_failing(c, k, &n);
    ld_compare_result_destroy(c);
    conclude(&r);
    *out = r;
    return LD_OK;
}

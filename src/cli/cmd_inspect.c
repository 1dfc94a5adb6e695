/* cmd_inspect.c — 'layerdiff inspect FILE': the header of a probe stream, one line per probe
 * (key, dtype, shape, min/max/mean/absmax, nan/inf, payload) and whether the stream is complete.
 * Reading and validation are the probe library's; this file only prints and picks the exit code. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "layerdiff/probes.h"
#include "util.h"

static void usage(FILE *out)
{
    fprintf(out,
"usage: layerdiff inspect FILE.jsonl [options]\n"
"\n"
"Prints the header of a probe stream (plain or gzip-compressed), one line per probe and whether\n"
"the stream is complete. Every record is validated as it is read, payloads included (base64,\n"
"zlib, crc32, the head and the stats against the data), and a key that appears twice is refused\n"
"(as compare refuses it), so a clean exit also means the file is sound.\n"
"\n"
"options:\n"
"  --summary          the header and the totals only, no line per probe\n"
"  --no-verify        do not decode payloads (faster on big files; their base64, zlib and\n"
"                     crc32 are then not checked)\n"
"  --max-line BYTES   refuse records longer than this (default 1073741824, 1 GiB)\n"
"  -h, --help         this text\n"
"\n"
"per-probe columns: key (S<step>.L<layer>.<tag>, or S<step>.<tag> for model-level tags), dtype,\n"
"shape, min, max, mean, absmax (over finite values), counts of NaN and Inf, and the payload\n"
"encoding ('-' for stats only).\n"
"\n"
"exit codes:\n"
"  0  the stream is complete and its producer ended it with status ok\n"
"  2  bad usage, unreadable or malformed file (the message names FILE:LINE)\n"
"  3  incomplete: the stream is cut short (no end record, or a last line without newline), or\n"
"     its producer ended it with status error\n");
}

static void print_header(const char *path, const ld_header_info *h)
{
    printf("file:            %s\n", path);
    printf("format:          " LD_PROBE_FORMAT " version %d\n", h->version);
    printf("implementation:  %s\n", h->implementation);
    printf("backend:         %s\n", h->backend_json);
    printf("model:           %s\n", h->model_json);
    printf("input:           %zu tokens [", h->n_tokens);
    for (size_t i = 0; i < h->n_tokens && i < 16; i++)
        printf(i ? ", %d" : "%d", (int)h->tokens[i]);
    printf("%s], decode steps %d\n", h->n_tokens > 16 ? ", ..." : "", h->decode_steps);
    printf("faults:          ");
    if (h->n_faults == 0)
        printf("none");
    for (size_t i = 0; i < h->n_faults; i++)
        printf(i ? ", %s" : "%s", h->faults[i]);
    printf("\ncreated:         %s\n", h->created);
    printf("tool:            %s\n", h->tool);
}

static void print_tokens(const char *name, const int32_t *t, size_t n)
{
    printf(", %s [", name);
    for (size_t i = 0; i < n && i < 32; i++)
        printf(i ? ", %d" : "%d", (int)t[i]);
    printf("%s]", n > 32 ? ", ..." : "");
}

static void print_probe(const ld_probe *p)
{
    char key[LD_TAG_NAME_MAX + 32], shape[96];
    ld_key k = {p->step, p->layer, ""};
    memcpy(k.tag, p->tag, sizeof k.tag);
    ld_key_format(&k, key, sizeof key);
    size_t n = (size_t)snprintf(shape, sizeof shape, "[");
    for (int d = 0; d < p->ndim && n < sizeof shape; d++)
        n += (size_t)snprintf(shape + n, sizeof shape - n, d ? ",%" PRId64 : "%" PRId64,
                              p->shape[d]);
    if (n < sizeof shape)
        snprintf(shape + n, sizeof shape - n, "]");
    printf("%-24s %-5s %-16s %12.5g %12.5g %12.5g %12.5g %6" PRIu64 " %6" PRIu64 "  %s\n", key,
           ld_dtype_name(p->dtype), shape, p->stats.min, p->stats.max, p->stats.mean,
           p->stats.absmax, p->stats.nan, p->stats.inf,
           p->has_data ? ld_encoding_name(p->encoding) : "-");
}

int ld_cmd_inspect(int argc, char **argv)
{
    static const char shortopts[] = "h"; /* the other letters are codes, not options */
    static const struct option longopts[] = {
        {"summary", no_argument, NULL, 's'},
        {"no-verify", no_argument, NULL, 'V'},
        {"max-line", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ld_reader_options opt;
    ld_reader_options_init(&opt);
    opt.unique_keys = true; /* a key twice is refused, as compare refuses it */
    bool summary = false;
    int c;
    optind = 1;
    while ((c = ld_cli_getopt(argc, argv, shortopts, longopts, "inspect")) != -1) {
        switch (c) {
        case 's': summary = true; break;
        case 'V': opt.decode_data = false; break;
        case 'm': {
            int64_t v;
            if (!ld_parse_i64(optarg, 1, INT64_MAX, &v))
                return ld_cli_usage_error("inspect", "--max-line: '%s' is not a positive integer",
                                          optarg);
            opt.max_line = (size_t)v;
            break;
        }
        case 'h': usage(stdout); return LD_EXIT_OK;
        default: return LD_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc)
        return ld_cli_usage_error("inspect", optind >= argc ? "no FILE given (see --help)"
                                                            : "one FILE only (see --help)");
    const char *path = argv[optind];
    ld_error err;
    ld_reader *r;
    ld_status st = ld_reader_open(&r, path, &opt, &err);
    if (st != LD_OK)
        return ld_cli_fail("inspect", &err);
    print_header(path, ld_reader_header(r));
    if (!summary)
        printf("\n%-24s %-5s %-16s %12s %12s %12s %12s %6s %6s  %s\n", "key", "dtype", "shape",
               "min", "max", "mean", "absmax", "nan", "inf", "data");
    uint64_t n = 0, with_nonfinite = 0;
    const ld_probe *p;
    while ((st = ld_reader_next(r, &p, &err)) == LD_OK && p) {
        n++;
        with_nonfinite += p->stats.nan + p->stats.inf > 0;
        if (!summary)
            print_probe(p);
    }
    fflush(stdout);
    int rc;
    printf("\n");
    if (st != LD_OK) {
        printf("%s: %" PRIu64 " probes read before it\n",
               st == LD_E_TRUNCATED ? "INCOMPLETE: stream truncated" : "MALFORMED", n);
        fflush(stdout);
        rc = ld_cli_fail("inspect", &err);
    } else {
        const ld_end_info *e = ld_reader_end(r);
        printf("%s: %" PRIu64 " probes (%" PRIu64 " with NaN or Inf), status %s", e->ok ? "complete" : "INCOMPLETE",
               n, with_nonfinite, e->ok ? "ok" : "error");
        print_tokens("tokens", e->tokens, e->n_tokens);
        print_tokens("decoded", e->decoded, e->n_decoded);
        printf("\n");
        if (!e->ok)
            printf("the producer stopped after %s: %s\n", e->last_key[0] ? e->last_key : "no probe",
                   e->message);
        rc = e->ok ? LD_EXIT_OK : LD_EXIT_INCOMPLETE;
    }
    ld_reader_close(r);
    return rc;
}

/* cmd_extract.c — 'layerdiff extract FILE KEY --npy OUT.npy': one probe's tensor as a NumPy .npy
 * file (format 1.0, little-endian, C order). f32 and f16 keep their type; bf16, which NumPy lacks,
 * is widened exactly to float32. Reading is the probe library's; this file writes the .npy. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "layerdiff/probes.h"
#include "util.h"

static void usage(FILE *out)
{
    fprintf(out,
"usage: layerdiff extract FILE.jsonl KEY --npy OUT.npy\n"
"\n"
"Writes the tensor of one probe as a NumPy .npy file, for numpy.load(OUT.npy). FILE may be\n"
"gzip-compressed. KEY reads like S0.L3.q_norm, L3.q_norm (step 0), S1.logits or logits; the\n"
"whole stream is read and a KEY that appears twice is refused as ambiguous (a stream cut short\n"
"after the probe still gives it, with a note). The probe must carry its data, i.e. the stream\n"
"was written with --payload full (LAYERDIFF_PROBE_PAYLOAD=full); stats-only probes have none.\n"
"\n"
"The stored dtype is kept: f32 -> float32, f16 -> float16. bf16 has no NumPy type and is\n"
"widened to float32, which is exact (every bf16 value is a float32 value); the message says so.\n"
"The shape is the probe's logical, row-major shape.\n"
"\n"
"options:\n"
"  --npy OUT.npy   the file to write (required; replaced if it exists)\n"
"  -h, --help      this text\n"
"\n"
"exit codes:\n"
"  0  written\n"
"  2  bad usage, unreadable or malformed FILE, no probe with that KEY, KEY twice, or a probe\n"
"     without data\n"
"  3  the stream is cut short before a probe with that KEY\n");
}

/* The .npy 1.0 header: magic, version, header length, then a Python dict literal padded with
 * spaces to a multiple of 64 bytes and ended by '\n'. */
static size_t npy_header(char *buf, size_t size, const char *descr, const ld_probe *p)
{
    char dict[256];
    size_t n = (size_t)snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                                descr);
    for (int d = 0; d < p->ndim; d++)
        n += (size_t)snprintf(dict + n, sizeof dict - n, "%s%" PRId64, d ? ", " : "", p->shape[d]);
    /* (5,) for one dimension, (5, 7) for more */
    n += (size_t)snprintf(dict + n, sizeof dict - n, "%s), }", p->ndim == 1 ? "," : "");
    size_t total = 10 + n + 1;
    size_t padded = (total + 63) / 64 * 64;
    if (padded > size)
        return 0;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    size_t hlen = padded - 10;
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    memcpy(buf + 10, dict, n);
    memset(buf + 10 + n, ' ', padded - 10 - n - 1);
    buf[padded - 1] = '\n';
    return padded;
}

static bool same_key(const ld_probe *p, const ld_key *k)
{
    return p->step == k->step && p->layer == k->layer && !strcmp(p->tag, k->tag);
}

/* Reads the rest of the stream: a second probe with found's key makes KEY ambiguous (exit 2). A
 * stream cut short after it still gives the tensor (a crashed run's probes are what one wants to
 * look at), with a note that a second one may have been lost; a malformed one does not. */
static int check_unique(ld_reader *r, const char *path, const ld_key *key, const ld_probe *found,
                        const char *name)
{
    const ld_probe *p;
    ld_status st;
    ld_error err;
    while ((st = ld_reader_next(r, &p, &err)) == LD_OK && p)
        if (same_key(p, key))
            return ld_cli_usage_error("extract",
                                      "%s:%" PRIu64 ": probe %s appears twice (first on line %"
                                      PRIu64 "): the key is ambiguous, nothing written",
                                      path, p->line, name, found->line);
    if (st == LD_E_TRUNCATED) {
        fprintf(stderr, "layerdiff extract: note: %s is cut short after line %" PRIu64
                        "; another probe %s may have been lost\n", path, found->line, name);
        return LD_EXIT_OK;
    }
    return st == LD_OK ? LD_EXIT_OK : ld_cli_fail("extract", &err);
}

/* What was written, on stderr: stdout may be the .npy itself (--npy /dev/stdout). */
static void report(const char *out, const char *name, const ld_probe *p, bool widen,
                   const char *descr)
{
    fprintf(stderr, "wrote %s: %s, %s [", out, name,
           widen ? "float32" : descr[2] == '2' ? "float16" : "float32");
    for (int d = 0; d < p->ndim; d++)
        fprintf(stderr, d ? ", %" PRId64 : "%" PRId64, p->shape[d]);
    fprintf(stderr, "], %" PRIu64 " values", p->numel);
    if (widen)
        fprintf(stderr, " (stored as bf16, widened exactly to float32: NumPy has no bfloat16)");
    fputc('\n', stderr);
}

int ld_cmd_extract(int argc, char **argv)
{
    static const char shortopts[] = "h"; /* 'o' is --npy's code, not an option */
    static const struct option longopts[] = {
        {"npy", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    int c;
    optind = 1;
    while ((c = ld_cli_getopt(argc, argv, shortopts, longopts, "extract")) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'h': usage(stdout); return LD_EXIT_OK;
        default: return LD_EXIT_USAGE;
        }
    }
    if (argc - optind != 2)
        return ld_cli_usage_error("extract", "expected FILE and KEY (see --help)");
    if (!out || !*out)
        return ld_cli_usage_error("extract", "--npy OUT.npy is required (see --help)");
    const char *path = argv[optind], *key_text = argv[optind + 1];
    ld_error err;
    ld_key key;
    if (ld_key_parse(key_text, &key, &err) != LD_OK)
        return ld_cli_fail("extract", &err);
    if (ld_refuse_overwrite(out, &path, 1, &err) != LD_OK) {
        ld_error_prefix(&err, "--npy");
        return ld_cli_fail("extract", &err);
    }
    ld_reader *r;
    if (ld_reader_open(&r, path, NULL, &err) != LD_OK)
        return ld_cli_fail("extract", &err);
    const ld_probe *p = NULL;
    ld_status st;
    uint64_t seen = 0;
    while ((st = ld_reader_next(r, &p, &err)) == LD_OK && p) {
        if (same_key(p, &key))
            break;
        seen++;
    }
    char name[LD_TAG_NAME_MAX + 32];
    ld_key_format(&key, name, sizeof name);
    int rc = LD_EXIT_USAGE;
    if (st != LD_OK) {
        ld_error_prefix(&err, "no probe %s before the stream stopped", name);
        rc = ld_cli_fail("extract", &err);
    } else if (!p) {
        rc = ld_cli_usage_error("extract", "%s: no probe %s among its %" PRIu64 " probes", path,
                                name, seen);
    } else if (!p->has_data) {
        rc = ld_cli_usage_error("extract",
                                "%s:%" PRIu64 ": probe %s carries stats only, no data: write the "
                                "stream with --payload full (LAYERDIFF_PROBE_PAYLOAD=full)",
                                path, p->line, name);
    } else {
        bool widen = p->data_dtype == LD_BF16;
        const char *descr = p->data_dtype == LD_F16 ? "<f2" : "<f4";
        size_t elem = widen ? 4 : ld_dtype_size(p->data_dtype), bytes;
        char head[256];
        size_t hl = npy_header(head, sizeof head, descr, p);
        char *buf = NULL;
        if (hl == 0 || !ld_mul_size((size_t)p->numel, elem, &bytes) ||
            !(buf = malloc(hl + bytes + 1))) {
            rc = ld_cli_usage_error("extract", "%s: cannot hold probe %s in memory", path, name);
        } else {
            memcpy(buf, head, hl);
            if (widen)
                ld_probe_to_f32(p, (float *)(void *)(buf + hl), &err);
            else
                memcpy(buf + hl, p->data, bytes);
            ld_probe found = *p; /* p is the reader's until the next record */
            rc = check_unique(r, path, &key, &found, name);
            if (rc == LD_EXIT_OK && ld_write_file(out, buf, hl + bytes, &err) != LD_OK)
                rc = ld_cli_fail("extract", &err);
            if (rc == LD_EXIT_OK)
                report(out, name, &found, widen, descr);
        }
        free(buf);
    }
    ld_reader_close(r);
    return rc;
}

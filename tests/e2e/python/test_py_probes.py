"""test_py_probes.py — the Python package's probe writer and reader (python/layerdiff/probes.py)
against the C library, without torch: C streams (every encoding, dtype, NaN/Inf, error end,
cut short) read by Python; Python streams read by `layerdiff inspect`; probe records byte for
byte equal to the C writer's, statistics included. Not the torch capture (test_py_torch.py).

usage: test_py_probes.py LD_PROBE_SAMPLE   (LD_BIN names the layerdiff binary, LD_SRC the source)
"""

import base64
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import zlib

import numpy as np

sys.path.insert(0, os.path.join(os.environ["LD_SRC"], "python"))
from layerdiff import probes  # noqa: E402
from checks import check, finish  # noqa: E402

SAMPLE, LD_BIN = sys.argv[1], os.environ["LD_BIN"]


def lines(path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")


def inspect(path):
    return subprocess.run([LD_BIN, "inspect", path], capture_output=True, text=True)


def test_reads_c_streams(d):
    subprocess.run([SAMPLE, d], check=True)
    for name in ("stats", "full_base64", "full_zlib", "full_shuffle"):
        s = probes.Stream(os.path.join(d, name + ".jsonl"))
        check(len(s.probes) == 12 and s.end["status"] == "ok", f"{name}: 12 probes, status ok")
        if name != "stats":
            a = s.tensor(0, 0, "q_proj")  # f32 (i - 7) / 4
            check(np.array_equal(a.reshape(-1), (np.arange(32, dtype=np.float32) - 7) / 4),
                  f"{name}: q_proj data")
            b = s.tensor(0, 1, "attn_norm")  # bf16 with NaN at 2, +Inf at 3, -Inf at 5
            check(np.isnan(b.reshape(-1)[2]) and b.reshape(-1)[5] == -np.inf,
                  f"{name}: bf16 NaN/Inf data")
    err = probes.Stream(os.path.join(d, "error_end.jsonl"))
    check(err.end["status"] == "error" and "assertion" in err.end["message"], "error end read")
    try:
        probes.Stream(os.path.join(d, "cut.jsonl"))
        check(False, "cut.jsonl must be refused as truncated")
    except probes.ProbeError as e:
        check(e.kind == "truncated" and "no end record; last complete probe: S1.L0.attn_norm"
              in str(e), f"cut.jsonl message: {e}")
    full = lines(os.path.join(d, "full_base64.jsonl"))
    for cut in (len(full[0]) + 10, sum(len(x) + 1 for x in full[:3]) - 1):
        p = os.path.join(d, "cut_py.jsonl")
        with open(p, "wb") as f:
            f.write(b"\n".join(full)[:cut])
        try:
            probes.Stream(p)
            check(False, f"cut at {cut} must be refused")
        except probes.ProbeError as e:
            check(e.kind == "truncated", f"cut at {cut}: truncated, got {e.kind}: {e}")
    for bad, why in ((b'"crc32":', "crc32"), (b'"index":3', "index")):
        p = os.path.join(d, "bad_py.jsonl")
        text = b"\n".join(full)
        text = text.replace(bad, bad + b"1", 1) if why == "crc32" else text.replace(
            b'"index":3', b'"index":4', 1)
        with open(p, "wb") as f:
            f.write(text)
        try:
            probes.Stream(p)
            check(False, f"a bad {why} must be refused")
        except probes.ProbeError as e:
            check(e.kind == "input" and why in str(e), f"bad {why}: {e}")


def test_text_prompt_header(d):
    """A stream of a text prompt (run --prompt): the Python Sink writes the header's input.text as
    the C writer does (quotes, a backslash, control characters, \\b and \\f as \\u00xx, DEL,
    non-ASCII), and the reader gives it back."""
    m = os.path.join(d, "tiny")
    subprocess.run([LD_BIN, "gen-model", m], check=True, capture_output=True)
    text = 'Hi "there"\\ 123\nnaïve 日本 \x01\x08\x0c\r\t\x1f\x7f\u2028 \U0001F600'
    src, dst = os.path.join(d, "text.jsonl"), os.path.join(d, "text_py.jsonl")
    subprocess.run([LD_BIN, "run", "--model", m, "--prompt", text, "--decode", "1", "--probes",
                    src, "--quiet"], check=True, capture_output=True)
    check(probes.Stream(src).header["input"]["text"] == text, "C header: input.text")
    rewrite(src, dst, "base64", payload="stats")
    strip = re.compile(rb',"created":"[^"]*","tool":\{[^}]*\}')
    check(strip.sub(b"", lines(src)[0]) == strip.sub(b"", lines(dst)[0]),
          f"text prompt header: {lines(src)[0][:300]} vs {lines(dst)[0][:300]}")
    check(probes.Stream(dst).header["input"]["text"] == text, "Python header: input.text")
    try:
        probes.Sink(os.path.join(d, "bad_text.jsonl"), implementation="x", backend={}, model={},
                    tokens=[1], decode_steps=0, text=b"bytes")
        check(False, "a text that is not a str must be refused")
    except probes.ProbeError as e:
        check(e.kind == "usage", f"text of bytes: {e}")


def rewrite(src, dst, encoding, payload="full"):
    """Writes the probes of the C stream src again with the Python Sink, from the decoded data
    (emit) or from the C stats (emit_precomputed) for a probe without data."""
    s = probes.Stream(src)
    h = s.header
    with probes.Sink(dst, implementation=h["implementation"], backend=h["backend"],
                     model=h["model"], tokens=h["input"]["tokens"],
                     text=h["input"].get("text"),
                     decode_steps=h["input"]["decode_steps"], faults=h["faults"],
                     payload=payload, encoding=encoding) as sink:
        for p in s.probes:
            if p.data is not None:
                a = np.frombuffer(p.data, {"f32": "<f4", "bf16": "<u2", "f16": "<f2"}[p.dtype])
                sink.emit(p.step, p.layer, p.tag, a.reshape(p.shape), pos0=p.pos0, dtype=p.dtype)
            else:
                sink.emit_precomputed(p.step, p.layer, p.tag, shape=p.shape, dtype=p.dtype,
                                      stats=p.stats, head=p.head, pos0=p.pos0)
        sink.close(tokens=s.end["tokens"], decoded=s.end["decoded"])


def test_writes_c_bytes(d):
    """Probe and end records equal to the C writer's byte for byte (the header differs only in
    created and tool; zlib payloads in their compressed bytes, which decode the same)."""
    for name, enc in (("full_base64", "base64"), ("full_zlib", "zlib+base64"),
                      ("full_shuffle", "shuffle+zlib+base64")):
        src, dst = os.path.join(d, name + ".jsonl"), os.path.join(d, name + "_py.jsonl")
        rewrite(src, dst, enc)
        a, b = lines(src), lines(dst)
        strip = re.compile(rb',"created":"[^"]*","tool":\{[^}]*\}')
        check(strip.sub(b"", a[0]) == strip.sub(b"", b[0]), f"{name}: header")
        if enc != "base64":
            nob64 = re.compile(rb'"b64":"[^"]*"')
            a, b = [nob64.sub(b"", x) for x in a], [nob64.sub(b"", x) for x in b]
        check(a[1:] == b[1:], f"{name}: probe and end records byte for byte")
        r = inspect(dst)
        check(r.returncode == 0, f"inspect {name}_py: exit {r.returncode}: {r.stderr}")
    # stats-only: the C stream's records again (the same run as full_base64's)
    src, dst = os.path.join(d, "stats.jsonl"), os.path.join(d, "stats_py.jsonl")
    rewrite(os.path.join(d, "full_base64.jsonl"), dst, "base64", payload="stats")
    check(lines(src)[1:] == lines(dst)[1:], "stats-only records byte for byte")


def test_stats_match_c(d):
    """Large and awkward tensors (several 8192-element chunks, NaN/Inf, signed zeros, a large
    mean, f16 and bf16): Python's records equal those the C writer makes of the same data."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(3 * 8192 + 13).astype(np.float32)
    y = (x * 1e-3 + 1000).astype(np.float32)
    z = x.copy()
    z[[5, 9000, 20000]] = [np.nan, np.inf, -np.inf]
    zeros = np.abs(x[:100])
    zeros[[3, 11, 40]] = 0.0
    zeros[[11, 50]] = -0.0
    zeros[50] = -0.0
    negz = -np.abs(x[:20000])
    negz[[7, 8200, 15]] = [-0.0, 0.0, 0.0]
    one = np.array([np.nan, np.nan], dtype=np.float32)
    signed_zeros = []  # which zero min/max keep depends on lanes and chunks (stats.c)
    for seed in range(6):
        r = np.random.default_rng(seed)
        w = (np.abs(r.standard_normal(20000)) + 1).astype(np.float32)
        at = r.choice(20000, 6, replace=False)
        w[at] = np.where(r.random(6) < 0.5, -0.0, 0.0).astype(np.float32)
        if seed % 2:
            w[r.integers(20000)] = np.nan
        signed_zeros += [w, -w]
    path, restat = os.path.join(d, "stats_py_full.jsonl"), os.path.join(d, "stats_c.jsonl")
    with probes.Sink(path, implementation="py", backend={}, model={}, tokens=[1],
                     decode_steps=0, payload="full") as sink:
        for i, a in enumerate([x, y, z, zeros, negz, one, np.zeros(0, np.float32)] + signed_zeros):
            sink.emit(0, None, f"t{i}", a)
            sink.emit(0, None, f"h{i}", a.astype(np.float16))
            sink.emit(0, None, f"b{i}", probes.bf16_bits(a), dtype="bf16")
        sink.emit(0, None, "m", rng.standard_normal((7, 5, 3)).astype(np.float32))
        sink.close()
    subprocess.run([SAMPLE, "--restat", path, restat], check=True)
    a, b = lines(path), lines(restat)
    check(len(a) == len(b), "restat: same number of records")
    for la, lb in zip(a[1:], b[1:]):
        check(la == lb, f"stats differ from the C writer's:\n  py {la[:300]}\n  C  {lb[:300]}")


def test_env_and_filters(d):
    env = {"LAYERDIFF_PROBE_TAGS": "q_*,logits", "LAYERDIFF_PROBE_LAYERS": "1-",
           "LAYERDIFF_PROBE_STEPS": "0", "LAYERDIFF_PROBE_PAYLOAD": "full",
           "LAYERDIFF_PROBE_ENCODING": "zlib+base64"}
    cfg = probes.config_from_env(env)
    sink = probes.Sink(os.path.join(d, "env.jsonl"), implementation="x", backend={}, model={},
                       tokens=[1], decode_steps=1, **cfg)
    check(sink.wants(0, 1, "q_norm") and not sink.wants(0, 0, "q_norm") and
          sink.wants(0, None, "logits") and not sink.wants(1, 1, "q_norm") and
          not sink.wants(0, 2, "k_norm"), "filters from the environment")
    sink.close()
    run = dict(implementation="x", backend={}, model={}, tokens=[1], decode_steps=0)
    os.environ.pop("LAYERDIFF_PROBES", None)
    check(probes.open_env(**run) is None, "open_env without LAYERDIFF_PROBES: probing off")
    os.environ.update(env, LAYERDIFF_PROBES=os.path.join(d, "open_env.jsonl"))
    s = probes.open_env(**run)
    check(s is not None and s.payload == "full" and s.encoding == "zlib+base64" and
          not s.wants(0, 0, "q_norm"), "open_env takes LAYERDIFF_PROBES and LAYERDIFF_PROBE_*")
    s.close()
    for var in list(env) + ["LAYERDIFF_PROBES"]:
        del os.environ[var]
    for var, val in (("LAYERDIFF_PROBE_PAYLOAD", "some"), ("LAYERDIFF_PROBE_LAYERS", "3-1"),
                     ("LAYERDIFF_PROBE_TAGS", "q norm"), ("LAYERDIFF_PROBE_ENCODING", "gzip")):
        try:
            probes.config_from_env({var: val})
            check(False, f"{var}={val} must be refused")
        except probes.ProbeError as e:
            check(e.kind == "usage" and var in str(e), f"{var}: {e}")
    try:
        probes.Sink(os.path.join(d, "x.jsonl.gz"), implementation="x", backend={}, model={},
                    tokens=[], decode_steps=0)
        check(False, ".gz must be refused")
    except probes.ProbeError as e:
        check("does not compress" in str(e), ".gz message")


def test_tags_match_c():
    out = subprocess.run([SAMPLE, "--tags"], check=True, capture_output=True, text=True).stdout
    c = [(n, f == "1") for n, f in (ln.split() for ln in out.splitlines())]
    check(c == list(probes.TAGS), f"probes.TAGS differs from the C table: {c}")


def test_crash_leaves_complete_lines(d):
    """A killed writer leaves the records written so far; the C reader reports truncation."""
    path = os.path.join(d, "killed.jsonl")
    code = ("import sys, os, numpy as np; sys.path.insert(0, sys.argv[2]);"
            "from layerdiff import probes;"
            "s = probes.Sink(sys.argv[1], implementation='k', backend={}, model={}, tokens=[1],"
            " decode_steps=0, payload='full');"
            "s.emit(0, None, 'embed', np.ones((1, 8), np.float32)); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, path, os.path.join(os.environ["LD_SRC"],
                                                                   "python")], check=True)
    r = inspect(path)
    check(r.returncode == 3 and "S0.embed" in r.stdout + r.stderr,
          f"inspect of a killed stream: exit {r.returncode} {r.stderr}")


def test_feed(d):
    """Feed serves a C stream's tensors by key, in any order, converted like the C feed; names a
    key the stream lacks and a stats-only probe; its filter is the sink's."""
    full, stats = os.path.join(d, "full_base64.jsonl"), os.path.join(d, "stats.jsonl")
    with probes.Feed(full) as f:
        q1 = f.get(0, 1, "q_proj")  # a later key first, then an earlier one: read again
        e = f.get(0, None, "embed")
        s = probes.Stream(full)
        check(np.array_equal(q1, s.tensor(0, 1, "q_proj")) and
              np.array_equal(e, s.tensor(0, None, "embed")), "feed: tensors by key, any order")
        q0 = f.get(0, 0, "q_proj", "bf16")
        check(q0.dtype == np.uint16 and np.array_equal(q0, probes.bf16_bits(s.tensor(0, 0,
              "q_proj"))), "feed: narrowed to bf16 bit patterns")
        check(f.get(0, 0, "q_proj", "f16").dtype == np.float16, "feed: f16")
        try:
            f.get(0, 7, "q_proj")
            check(False, "feed: a missing key must raise")
        except probes.ProbeError as err:
            check("the feed has no probe S0.L7.q_proj" in str(err), f"feed: missing key: {err}")
        f.select(tags="q_*", layers="1")
        check(f.wants(0, 1, "q_proj") and not f.wants(0, 0, "q_proj") and
              not f.wants(0, 1, "attn_norm"), "feed: select/wants as the sink's filter")
    with probes.Feed(stats) as f:
        try:
            f.get(0, None, "embed")
            check(False, "feed: a stats-only probe must raise")
        except probes.ProbeError as err:
            check("holds no payload" in str(err), f"feed: stats-only: {err}")


def hostile_cases(src):
    """(name, file bytes, the ProbeError kind and a piece of its message) made from a valid C
    stream (src: its bytes): every way a stream can be malformed that a reader must survive."""
    lines_ = src.split(b"\n")[:-1]

    def rec(i):
        return json.loads(lines_[i])

    def dump(o):
        return json.dumps(o, separators=(",", ":")).encode()

    def with_line(i, text):
        ls = list(lines_)
        ls[i] = text
        return b"\n".join(ls) + b"\n"

    def probe(i, drop_data=False, **kw):
        o = rec(i)
        if drop_data:
            o.pop("data", None)
        o.update(kw)
        return with_line(i, dump(o))

    def data(i, **kw):
        return probe(i, data=dict(rec(i)["data"], **kw))

    def no(i, field):
        return with_line(i, dump({k: v for k, v in rec(i).items() if k != field}))

    bomb = base64.b64encode(zlib.compress(b"\0" * 4000000, 9)).decode()
    dup = [lines_[0], lines_[1]] + [re.sub(rb'"index":(\d+)', lambda m: b'"index":%d' %
                                           (int(m.group(1)) + 1), x) for x in lines_[1:-1]]
    dup.append(lines_[-1].replace(b'"probes":12', b'"probes":13'))
    g = gzip.compress(src)
    return [
        ("empty", b"", "truncated", "the file is empty (no header record)"),
        ("cut inside a line", src[:len(lines_[0]) + 60], "truncated",
         "the last line is cut short (no newline); last complete probe: none"),
        ("no end record", b"\n".join(lines_[:5]) + b"\n", "truncated",
         "no end record; last complete probe: S0.L1.attn_norm"),
        ("gzip cut short", g[:len(g) // 2], "truncated", "(the gzip data ends early)"),
        ("gzip corrupt", g[:40] + bytes(b ^ 0x55 for b in g[40:80]) + g[80:], "input",
         "corrupt gzip data"),
        ("gzip crc", g[:-8] + bytes([g[-8] ^ 1]) + g[-7:], "input", "corrupt gzip data"),
        ("NUL bytes", b"\0" * 4096, "input", "a NUL byte at byte 0 of the text"),
        ("UTF-16", lines_[0].decode().encode("utf-16-le") + b"\n", "input", "a NUL byte"),
        ("huge shape, stats only", probe(1, True, shape=[2**32, 2**32, 2**32]), "input",
         "probe S0.embed: shape has more than 2^40 elements"),
        ("huge shape, payload", probe(1, shape=[2**32, 2**32, 2**32]), "input",
         "shape has more than 2^40 elements"),
        ("a zero beside a huge shape", probe(1, True, shape=[0, 2**30, 2**30]), "input",
         "shape has more than 2^40 elements"),
        ("shape over 2^53", probe(1, shape=[2**62, 4]), "input", "shape[0] is not an integer"),
        ("negative shape", probe(1, True, shape=[-4, -8]), "input", "shape[0] is not an integer"),
        ("fractional shape", probe(1, shape=[4, 8.5]), "input", "shape[1] is not an integer"),
        ("shape a string", probe(1, shape="32"), "input",
         'field "shape" is a string, expected an array'),
        ("no shape", no(1, "shape"), "input", 'probe S0.embed: missing field "shape"'),
        ("five dimensions", probe(1, True, shape=[1, 1, 1, 4, 8]), "input",
         "shape has 5 dimensions"),
        ("step a string", probe(1, step="0"), "input", 'field "step" is a string'),
        ("step fractional", probe(1, step=0.5), "input", 'field "step" is 0.5'),
        ("step a boolean", probe(1, step=False), "input", 'field "step" is a boolean'),
        ("step over int32", probe(1, step=2**31), "input",
         "expected an integer in [0, 2147483647]"),
        ("index 0.0", probe(1, index=0.0), "input", 'field "index" is 0.0'),
        ("index true", probe(2, index=True), "input", 'field "index" is a boolean'),
        ("index out of order", src.replace(b'"index":3', b'"index":4', 1), "input",
         "index is 4 but 3 probes came before it"),
        ("duplicate member", src.replace(b'"step":0,', b'"step":0,"step":0,', 1), "input",
         'duplicate member name "step"'),
        ("duplicate key", b"\n".join(dup) + b"\n", "input",
         "probe S0.embed: appears twice (first on line 2)"),
        ("crc32 mismatch", data(1, crc32=rec(1)["data"]["crc32"] ^ 1), "input",
         "but the decoded payload's crc32 is"),
        ("crc32 out of range", data(1, crc32=2**32), "input",
         "expected an integer in [0, 4294967295]"),
        ("crc32 a string", data(1, crc32="1"), "input", 'field "data.crc32" is a string'),
        ("b64 a number", data(1, b64=5), "input", 'field "data.b64" is a number'),
        ("b64 bad character", data(1, b64="*" + rec(1)["data"]["b64"][1:]), "input",
         "bad base64 in data.b64"),
        ("payload too short", data(1, b64=rec(1)["data"]["b64"][:-8]), "input",
         "payload decodes to 123 bytes, expected 128"),
        ("data not an object", probe(1, data=[1]), "input", 'field "data" is an array'),
        ("data.dtype f64", data(1, dtype="f64"), "input", 'data.dtype is "f64"'),
        ("zlib bomb", probe(1, shape=[1000000000], data={
            "encoding": "zlib+base64", "dtype": "f32", "b64": bomb, "crc32": 0}), "input",
         "cannot inflate to the expected 4000000000 bytes"),
        ("dtype f64", probe(1, True, dtype="f64"), "input", 'dtype is "f64"'),
        ("stats a list", probe(1, stats=[1]), "input", 'field "stats" is an array'),
        ("stats.max missing", probe(1, stats={"min": 1}), "input",
         'missing field "stats.max"'),
        ("stats.min a word", probe(1, stats=dict(rec(1)["stats"], min="foo")), "input",
         "stats.min is a string"),
        ("stats.nan fractional", probe(1, stats=dict(rec(1)["stats"], nan=0.5)), "input",
         'field "stats.nan" is 0.5'),
        ("more NaN than elements", probe(1, stats=dict(rec(1)["stats"], nan=33)), "input",
         "stats count 33 NaN and 0 Inf among 32 elements"),
        ("head short", probe(1, head=rec(1)["head"][:3]), "input",
         "head has 3 values, expected 16"),
        ("head of words", probe(1, head=["x"] * 16), "input", "head[0] is a string"),
        ("head a number", probe(1, head=5), "input", 'field "head" is a number'),
        ("head against data", probe(1, head=[9] + rec(1)["head"][1:]), "input",
         "head[0] = 9 disagrees with element 0 of the data"),
        ("tag with a space", probe(1, tag="q norm"), "input", '"q norm", not a tag name'),
        ("tag a number", probe(1, tag=5), "input", 'field "tag" is a number'),
        ("per-layer tag without layer", no(2, "layer"), "input",
         "attn_norm is a per-layer tag but the record has no layer"),
        ("fed a string", probe(1, fed="yes"), "input", 'field "fed" is a string'),
        ("unknown field", probe(1, foo=1), "input", 'unknown field "foo" in a probe record'),
        ("not JSON", with_line(1, b"{oops"), "input", "not valid JSON"),
        ("JSON array", with_line(1, b"[1,2]"), "input", "a record must be a JSON object"),
        ("nesting", with_line(1, b"[" * 100000 + b"]" * 100000), "input", "not valid JSON"),
        ("long number", src.replace(b'"pos0":0', b'"pos0":' + b"9" * 5000, 1), "input",
         "number literal longer than 64 characters"),
        ("1e999", src.replace(b'"pos0":0', b'"pos0":1e999', 1), "input", "out of the range"),
        ("NaN literal", src.replace(b'"pos0":0', b'"pos0":NaN', 1), "input", "not valid JSON"),
        ("bad UTF-8", src.replace(b'"embed"', b'"emb\xffed"', 1), "input", "not valid JSON"),
        ("no record field", with_line(1, b'{"x":1}'), "input", 'no "record" field'),
        ("unknown record kind", with_line(1, b'{"record":"trace"}'), "input",
         'unknown record kind "trace"'),
        ("a probe first", b"\n".join(lines_[1:]) + b"\n", "input",
         "the first record is a probe, not the header"),
        ("a second header", with_line(1, lines_[0]), "input", "a second header record"),
        ("not a probe stream", with_line(0, dump(dict(rec(0), format="x"))), "input",
         "not a layerdiff probe stream"),
        ("version 2", with_line(0, dump(dict(rec(0), version=2))), "unsupported",
         "format version 2 is not supported"),
        ("header without input", no(0, "input"), "input", 'header: missing field "input"'),
        ("tokens of words", with_line(0, dump(dict(rec(0), input={
            "tokens": ["a"], "decode_steps": 1}))), "input", "input.tokens[0] is a string"),
        ("created not a time", with_line(0, dump(dict(rec(0), created="now"))), "input",
         'field "created" is not an ISO-8601 UTC time'),
        ("bad filter", with_line(0, dump(dict(rec(0), filter={"layers": "3-1"}))), "input",
         "bad range '3-1'"),
        ("probe outside the filter", with_line(0, dump(dict(rec(0), filter={"tags": "q_*"}))),
         "input", "probe S0.embed: the key is outside the header's filter"),
        ("end without status", with_line(len(lines_) - 1, b'{"record":"end","probes":12}'),
         "input", 'end record: missing field "status"'),
        ("end counting wrong", with_line(len(lines_) - 1, lines_[-1].replace(
            b'"probes":12', b'"probes":11')), "input", "it counts 11 probes but"),
        ("end count a boolean", with_line(len(lines_) - 1, lines_[-1].replace(
            b'"probes":12', b'"probes":true')), "input", 'field "probes" is a boolean'),
        ("end tokens of floats", with_line(len(lines_) - 1, lines_[-1].replace(
            b'"tokens":[13,42]', b'"tokens":[13.5]')), "input", "tokens[0] is 13.5"),
        ("error end without message", with_line(len(lines_) - 1, lines_[-1].replace(
            b'"ok"', b'"error"')), "input", 'status is "error" but there is no message'),
        ("data after the end", src + b"{}\n", "input", "data after the end record"),
    ]


def test_hostile_streams(d):
    """Malformed streams: the Python reader raises ProbeError of the right kind with a message
    naming the file and the problem (never KeyError, TypeError, RecursionError, ...), and
    `layerdiff inspect` refuses the same file with the matching exit code (2 input, 3 cut short);
    what both accept (CRLF, a BOM, gzip known by its magic, a payload of another dtype than the
    tensor's, as the schema allows) reads the same."""
    src = open(os.path.join(d, "full_base64.jsonl"), "rb").read()
    cases = hostile_cases(src)
    for i, (_, text, _, _) in enumerate(cases):
        with open(os.path.join(d, f"hostile{i}.jsonl"), "wb") as f:
            f.write(text)
    c_reads = [subprocess.Popen([LD_BIN, "inspect", os.path.join(d, f"hostile{i}.jsonl")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for i in range(len(cases))]
    for i, (name, text, kind, msg) in enumerate(cases):
        p = os.path.join(d, f"hostile{i}.jsonl")
        try:
            probes.Stream(p)
            check(False, f"hostile '{name}': read without error")
        except probes.ProbeError as e:
            check(e.kind == kind and str(e).startswith(p) and msg in str(e),
                  f"hostile '{name}': want {kind} '{msg}', got {e.kind}: {str(e)[:300]}")
        except Exception as e:  # noqa: BLE001 -- exactly what must not escape
            check(False, f"hostile '{name}': {type(e).__name__}: {str(e)[:200]}")
        err = c_reads[i].communicate()[1]
        check(c_reads[i].returncode == (3 if kind == "truncated" else 2),
              f"hostile '{name}': layerdiff inspect exit {c_reads[i].returncode}: {err[-300:]}")
    full = probes.Stream(os.path.join(d, "full_base64.jsonl"))
    lines_ = src.split(b"\n")
    other = json.loads(lines_[1])  # embed as bf16 bits in an f32-tagged record
    bits = probes.bf16_bits(full.tensor(0, None, "embed")).tobytes()
    other["data"] = {"encoding": "base64", "dtype": "bf16",
                     "b64": base64.b64encode(bits).decode(), "crc32": zlib.crc32(bits)}
    lines_[1] = json.dumps(other, separators=(",", ":")).encode()
    for name, text in (("CRLF", src.replace(b"\n", b"\r\n")), ("BOM", b"\xef\xbb\xbf" + src),
                       ("gzip without .gz", gzip.compress(src)),
                       ("gzip of two members", gzip.compress(src[:999]) + gzip.compress(src[999:])),
                       ("payload dtype bf16", b"\n".join(lines_))):
        p = os.path.join(d, "accepted.jsonl")
        with open(p, "wb") as f:
            f.write(text)
        try:
            s = probes.Stream(p)
            check(len(s.probes) == 12 and np.array_equal(s.tensor(0, None, "embed"),
                                                         full.tensor(0, None, "embed")),
                  f"accepted '{name}': the same tensors")
        except probes.ProbeError as e:
            check(False, f"accepted '{name}': {e}")
        r = inspect(p)
        check(r.returncode == 0, f"accepted '{name}': inspect exit {r.returncode} {r.stderr}")


def expect_error(what, kind, msg, fn, *args, **kw):
    """fn(*args, **kw) must raise ProbeError of kind with msg in its message."""
    try:
        fn(*args, **kw)
        check(False, f"{what}: no error")
        return None
    except probes.ProbeError as e:
        check(e.kind == kind and msg in str(e), f"{what}: want {kind} '{msg}', got {e.kind}: {e}")
        return e
    except Exception as e:  # noqa: BLE001 -- exactly what must not escape
        check(False, f"{what}: {type(e).__name__}: {e}")
        return None


def test_reader_inputs(d):
    """Files that are not streams, bounded memory, errors that stay, pipes."""
    full = os.path.join(d, "full_base64.jsonl")
    expect_error("a directory", "input", f"{d}: is a directory, not a probe file",
                 probes.Reader, d)
    expect_error("a missing file", "input", "cannot open: No such file or directory",
                 probes.Reader, os.path.join(d, "nothing.jsonl"))
    expect_error("/dev/zero", "input", "a NUL byte at byte 0", probes.Reader, "/dev/zero")
    # a line longer than max_line is refused before it is read whole
    big = os.path.join(d, "long_line.jsonl")
    with open(big, "wb") as f:
        f.write(b"{" + b" " * (3 << 20) + b"}\n")
    expect_error("a long line", "input", "line longer than the 1048576-byte limit",
                 probes.Reader, big, max_line=1 << 20)
    bomb = os.path.join(d, "bomb.jsonl")  # 64 MiB of one line in 64 KiB of gzip
    with open(bomb, "wb") as f:
        f.write(gzip.compress(b"x" * (64 << 20)))
    expect_error("a gzip bomb line", "input", "line longer than the 1048576-byte limit",
                 probes.Reader, bomb, max_line=1 << 20)
    # an error stays: the next call raises it again instead of reading on
    bad = os.path.join(d, "sticky.jsonl")
    with open(full, "rb") as f, open(bad, "wb") as g:
        g.write(f.read().replace(b'"crc32":', b'"crc32":1', 1))
    with probes.Reader(bad) as r:
        e1 = expect_error("crc", "input", "crc32", next, r)
        e2 = expect_error("crc again", "input", "crc32", next, r)
        check(e1 is not None and e1 is e2, "the reader's error is sticky")
    # a FIFO: read as a stream; a feed cannot go back in it
    fifo = os.path.join(d, "pipe.jsonl")
    os.mkfifo(fifo)
    for content, feed in ((open(full, "rb").read(), False), (open(full, "rb").read(), True),
                          (b"\0garbage", False)):
        w = subprocess.Popen(["sh", "-c", 'cat > "$1"', "sh", fifo], stdin=subprocess.PIPE)
        w.stdin.write(content)
        w.stdin.close()
        if content.startswith(b"\0"):
            expect_error("a FIFO of garbage", "input", "a NUL byte", probes.Reader, fifo)
        elif not feed:
            check(len(probes.Stream(fifo).probes) == 12, "a FIFO read as a stream")
        else:
            with probes.Feed(fifo) as fd:
                check(fd.get(0, 1, "q_proj").shape == (4, 2, 4), "feed from a FIFO")
                expect_error("a FIFO feed asked back", "input",
                             "the stream is not a regular file", fd.get, 0, None, "embed")
        w.wait()


def test_sink_refusals(d):
    """Sink arguments that would write a stream the readers refuse, or destroy a file, are
    refused (kind usage) before the file is touched; a failed write stays failed."""
    run = dict(implementation="x", backend={}, model={}, tokens=[1], decode_steps=0)
    full = os.path.join(d, "full_base64.jsonl")
    before = open(full, "rb").read()
    with probes.Feed(full) as feed:  # the feed's own stream as the output
        expect_error("sink on the feed's stream", "usage", "is a stream this process is reading",
                     probes.Sink, full, **run)
        link = os.path.join(d, "link_to_feed.jsonl")
        os.symlink(full, link)
        expect_error("sink on a link to it", "usage", "is a stream this process is reading",
                     probes.Sink, link, **run)
        check(feed.get(0, None, "embed").shape == (4, 8), "the feed still reads")
    check(open(full, "rb").read() == before, "the feed's stream is untouched")
    expect_error("sink on a directory", "usage", f"{d}: is a directory", probes.Sink, d, **run)
    out = os.path.join(d, "kept.jsonl")
    with open(out, "wb") as f:
        f.write(b"precious")
    for what, kw, msg in (
            ("NaN in backend", dict(run, backend={"x": float("nan")}), "backend is not JSON"),
            ("an object in model", dict(run, model={"x": object()}), "model is not JSON"),
            ("a lone surrogate", dict(run, text="caf\udce9"), "not valid UTF-8"),
            ("implementation not a str", dict(run, implementation=5), "implementation must be"),
            ("a float token", dict(run, tokens=[1.7]), "tokens[] must be an integer"),
            ("a token over int32", dict(run, tokens=[2**31]), "outside [0, 2147483647]"),
            ("decode_steps a str", dict(run, decode_steps="3"), "decode_steps must be an int"),
            ("layers an int", dict(run, layers=3), "layers must be a str"),
            ("a fault not a str", dict(run, faults=[1]), "faults must be strs")):
        expect_error(what, "usage", msg, probes.Sink, out, **kw)
    check(open(out, "rb").read() == b"precious", "a refused sink leaves its file as it was")
    with probes.Sink(out, payload="full", **run) as sink:
        x = np.ones((2, 3), np.float32)
        for what, args, kw, msg in (
                ("a float step", (0.5, None, "embed", x), {}, "step must be an integer"),
                ("step over int32", (2**31, 0, "q_norm", x), {}, "outside [0, 2147483647]"),
                ("a scalar", (0, None, "embed", np.float32(1)), {}, "is not 1 to 4"),
                ("five dims", (0, None, "embed", np.ones((1,) * 5, np.float32)), {},
                 "is not 1 to 4"),
                ("float64", (0, None, "embed", x.astype(np.float64)), {}, "float64"),
                ("bf16 of floats", (0, None, "embed", x), {"dtype": "bf16"}, "uint16 bit"),
                ("dtype f64", (0, None, "embed", x), {"dtype": "f64"}, "dtype 'f64' is not"),
                ("a bad tag", (0, None, "q norm", x), {}, "bad tag name"),
                ("layer on a model-level tag", (0, 1, "logits", x), {}, "model-level tag"),
                ("a float pos0", (0, None, "embed", x), {"pos0": 1.5}, "pos0 must be an")):
            expect_error(what, "usage", msg, sink.emit, *args, **kw)
        x[0, 1] = np.nan
        sink.emit(0, None, "embed", x)
        expect_error("a key twice", "usage", "probe S0.embed was already written",
                     sink.emit, 0, None, "embed", x)
        pre = dict(shape=(2, 3), dtype="f32", stats=probes.compute_stats(x), head=list(x.ravel()))
        for what, kw, msg in (
                ("a short head", dict(pre, head=[1.0]), "head has 1 values, expected 6"),
                ("stats without nan", dict(pre, stats={"min": 1}), "stats must be a dict"),
                ("data an int", dict(pre, data=24), "data must be bytes"),
                ("more NaN than elements", dict(pre, stats=dict(pre["stats"], nan=7)),
                 "stats count 7 NaN")):
            expect_error(what, "usage", msg, sink.emit_precomputed, 0, 0, "q_proj", **kw)
    s = probes.Stream(out)
    check([p.key for p in s.probes] == ["S0.embed"] and s.end["status"] == "ok" and
          s.probes[0].stats["nan"] == 1, "refused emits leave the sink usable")
    expect_error("emit after close", "usage", "the sink is closed", sink.emit, 1, None, "embed",
                 x)
    # a write that fails (the file size limit) stays failed: no record after the cut one
    code = ("import resource, sys, numpy as np; sys.path.insert(0, sys.argv[2]);"
            "from layerdiff import probes;"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000));"
            "s = probes.Sink(sys.argv[1], implementation='k', backend={}, model={}, tokens=[1],"
            " decode_steps=0, payload='full')\n"
            "for i, k in enumerate(('first', 'again', 'close')):\n"
            "    try:\n"
            "        s.emit(0, None, 'embed', np.ones(400, np.float32)) if i < 2 else s.close()\n"
            "    except probes.ProbeError as e: print(k, e.kind, e)\n")
    cut = os.path.join(d, "efbig.jsonl")
    r = subprocess.run([sys.executable, "-c", code, cut, os.path.join(os.environ["LD_SRC"],
                                                                      "python")],
                       capture_output=True, text=True)
    got = r.stdout.splitlines()
    check(len(got) == 3 and all(g.startswith(k + " io ") and "write failed after" in g
                                for g, k in zip(got, ("first", "again", "close"))) and
          inspect(cut).returncode == 3,
          f"a failed write is sticky: {r.stdout} {r.stderr[-300:]}")
    # an exception inside the block writes an error end record; a message of any text is valid
    out2 = os.path.join(d, "error_end_py.jsonl")
    try:
        with probes.Sink(out2, **run):
            raise RuntimeError("bad byte \udcff and a NUL \0")
    except RuntimeError:
        pass
    r = inspect(out2)
    check(r.returncode == 3 and probes.Stream(out2).end["status"] == "error",
          f"error end record with an odd message: {r.returncode} {r.stderr}")


def test_docs_example(d):
    """docs/python.md's layerdiff.probes example runs as written and writes a stream that
    `layerdiff inspect` reads."""
    text = open(os.path.join(os.environ["LD_SRC"], "docs", "python.md")).read()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S)
              if "from layerdiff import probes\n" in b and "probes.Sink(" in b]
    check(len(blocks) == 1, f"docs/python.md: one probes example, found {len(blocks)}")
    if len(blocks) != 1:
        return
    r = subprocess.run([sys.executable, "-c", blocks[0]], cwd=d, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=os.path.join(os.environ["LD_SRC"],
                                                                    "python")))
    out = os.path.join(d, "out.jsonl")
    check(r.returncode == 0 and r.stdout.split() == ["S0.L3.q_norm", "8.0", "(2,", "4,", "8)",
                                                     "S0.logits", r.stdout.split()[6], "(2,",
                                                     "16)"]
          and inspect(out).returncode == 0,
          f"docs example: exit {r.returncode} {r.stdout} {r.stderr[-500:]}")


def test_ranges_match_c(d):
    """LAYERDIFF_PROBE_LAYERS/_STEPS values: the Python sink accepts exactly what the C parser
    does (`layerdiff run --layers`), so a filter the Python sink writes into a header is one the
    C reader takes (65 items were accepted and made the stream unreadable)."""
    m = os.path.join(d, "tiny")  # test_text_prompt_header's checkpoint
    many = ",".join(str(i) for i in range(65))
    for v in ("3", "03", "+3", " 3", "3 ", "1-", "-3", "3-3", "3-1", "0000000000003",
              "2147483647", "2147483648", "1,,2", ",", "1,", "1-2-3", "\u0661", many[:-3],
              many, "1" * 48):
        try:
            probes.parse_ranges(v, "layers")
            py = True
        except probes.ProbeError as e:
            py = False
            check(e.kind == "usage" and "layers" in str(e), f"ranges {v!r}: {e}")
        r = subprocess.run([LD_BIN, "run", "--model", m, "--tokens", "1", "--layers", v,
                            "--probes", os.path.join(d, "ranges.jsonl"), "--quiet"],
                           capture_output=True, text=True)
        check(py == (r.returncode == 0), f"ranges {v[:40]!r}: Python "
              f"{'accepts' if py else 'refuses'}, layerdiff run exit {r.returncode} "
              f"{r.stderr[-200:]}")


def main():
    with tempfile.TemporaryDirectory() as d:
        test_reads_c_streams(d)
        test_writes_c_bytes(d)
        test_text_prompt_header(d)
        test_stats_match_c(d)
        test_env_and_filters(d)
        test_tags_match_c()
        test_crash_leaves_complete_lines(d)
        test_feed(d)
        test_hostile_streams(d)
        test_reader_inputs(d)
        test_sink_refusals(d)
        test_docs_example(d)
        test_ranges_match_c(d)
    return finish()


if __name__ == "__main__":
    sys.exit(main())

"""test_py_probes.py — the Python package's probe writer and reader (python/layerdiff/probes.py)
against the C library, without torch: C streams (every encoding, dtype, NaN/Inf, error end,
cut short) read by Python; Python streams read by `layerdiff inspect`; probe records byte for
byte equal to the C writer's, statistics included. Not the torch capture (test_py_torch.py).

usage: test_py_probes.py LD_PROBE_SAMPLE   (LD_BIN names the layerdiff binary, LD_SRC the source)
"""

import os
import re
import subprocess
import sys
import tempfile

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
    the C writer does (quotes, a backslash, a newline, non-ASCII), and the reader gives it back."""
    m = os.path.join(d, "tiny")
    subprocess.run([LD_BIN, "gen-model", m], check=True, capture_output=True)
    text = 'Hi "there"\\ 123\nnaïve 日本'
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
    return finish()


if __name__ == "__main__":
    sys.exit(main())

"""test_py_probes_bounds.py — the Python probe writer and reader at the C reader's bounds and
under interruption: headers the Sink must refuse up front (nesting, values, long numbers,
duplicate names, NULs) and the deepest and largest ones it may write, each read by `layerdiff
inspect`; records the Python Reader must refuse as the C reader does (lone surrogates, NULs,
nesting, values); end tokens of any integer type and a bad end description that still ends the
stream; a write interrupted between two pieces; Readers that close themselves; the statistics of
tensors of many blocks, bit for bit as the C writer's and in bounded memory; f16 signalling NaNs
without a warning; every `layerdiff.hf` option documented. Not the capture (test_py_capture.py).

usage: test_py_probes_bounds.py LD_PROBE_SAMPLE   (LD_BIN names the layerdiff binary, LD_SRC the
source)
"""

import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import tracemalloc
import warnings

import numpy as np

SRC = os.environ["LD_SRC"]
sys.path.insert(0, os.path.join(SRC, "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from layerdiff import probes  # noqa: E402
from checks import check, finish, run_each  # noqa: E402

SAMPLE, LD_BIN = sys.argv[1], os.environ["LD_BIN"]
RUN = dict(implementation="x", backend={}, model={}, tokens=[1], decode_steps=0)
MAX_VALUES = 2000000  # values in one record, the C reader's bound (probes/json.h)


def inspect(path):
    return subprocess.run([LD_BIN, "inspect", path], capture_output=True, text=True)


def expect_error(what, kind, msg, fn, *args, **kw):
    """fn(*args, **kw) must raise ProbeError of kind with msg in its message."""
    try:
        fn(*args, **kw)
        check(False, f"{what}: no error")
    except probes.ProbeError as e:
        check(e.kind == kind and msg in str(e), f"{what}: want {kind} '{msg}', got {e.kind}: "
              f"{str(e)[:300]}")
    except Exception as e:  # noqa: BLE001 -- exactly what must not escape
        check(False, f"{what}: {type(e).__name__}: {str(e)[:300]}")


def both_read(what, path):
    """The C reader (layerdiff inspect) and the Python one both take the stream at path."""
    r = inspect(path)
    check(r.returncode == 0, f"{what}: inspect exit {r.returncode}: {r.stderr[-300:]}")
    try:
        probes.Stream(path)
    except probes.ProbeError as e:
        check(False, f"{what}: the Python reader refuses it: {e}")


def nest(k):
    """k objects one inside the other: {"a":{"a":{}}} is nest(3)."""
    v = {}
    for _ in range(k - 1):
        v = {"a": v}
    return v


def test_header_bounds(d):
    """The Sink refuses, before touching the file, a header the C reader would refuse; the
    deepest backend and the most values the C reader takes are written, and read by both."""
    out = os.path.join(d, "kept.jsonl")
    with open(out, "wb") as f:
        f.write(b"precious")
    # backend is level 2 of the header: 63 nested objects reach level 64, the C reader's last
    # header: 14 fixed values + tokens + backend {} + model {} = 2,000,000 at the limit
    most = MAX_VALUES - 16
    looped = {}
    looped["m"] = looped
    for what, kw, msg in (
            ("backend 64 deep", dict(RUN, backend=nest(64)), "backend: nesting deeper than 64"),
            ("a model holding itself", dict(RUN, model=looped), "model: nesting deeper than 64"),
            ("too many values", dict(RUN, tokens=[1] * (most + 1)),
             "more than 2000000 values in one record"),
            ("values in backend", dict(RUN, backend={"a": [0] * MAX_VALUES}),
             "backend: more than 2000000 values"),
            ("a 71-character number", dict(RUN, backend={"n": 10**70}),
             "number literal longer than 64 characters"),
            ("keys 1 and '1'", dict(RUN, backend={1: "a", "1": "b"}),
             'duplicate member name "1"'),
            ("keys True and 'true'", dict(RUN, model={True: 1, "true": 2}),
             'duplicate member name "true"'),
            ("NUL in implementation", dict(RUN, implementation="a\0b"),
             "implementation is a string holding a NUL character"),
            ("NUL in a fault", dict(RUN, faults=["ok", "x\0"]),
             "faults[1] is a string holding a NUL character"),
            ("a fingerprint not a string", dict(RUN, model={"fingerprint": 5}),
             "model.fingerprint is a number, expected a string")):
        expect_error(what, "usage", msg, probes.Sink, out, **kw)
    check(open(out, "rb").read() == b"precious", "a refused header leaves the file as it was")
    for what, kw in (("backend 63 deep", dict(RUN, backend=nest(63))),
                     ("2,000,000 values", dict(RUN, tokens=[1] * most)),
                     ("a 64-character number", dict(RUN, backend={"n": -10**62})),
                     ("keys 1 and 2", dict(RUN, backend={1: "a", 2: "b"}))):
        p = os.path.join(d, "bound.jsonl")
        try:
            probes.Sink(p, **kw).close()
        except probes.ProbeError as e:
            check(False, f"{what}: refused: {e}")
            continue
        both_read(what, p)


def header_line(**kw):
    rec = {"record": "header", "format": "layerdiff-probes", "version": 1,
           "implementation": "x", "backend": {}, "model": {},
           "input": {"tokens": [1], "decode_steps": 0}, "faults": [],
           "created": "2026-01-31T12:00:00Z",
           "tool": {"name": "layerdiff", "version": "1", "git": "x"}}
    rec.update(kw)
    return json.dumps(rec, separators=(",", ":"))


def test_reader_bounds(d):
    """Records the C reader refuses, the Python Reader refuses too, in the C reader's words; the
    same records one step inside the bounds, both accept."""
    end = '{"record":"end","status":"ok","probes":0,"tokens":[],"decoded":[],"last_key":""}\n'
    # backend at level 2 holding [0] * m: 18 + m values in all
    limit = MAX_VALUES - 18
    refused = (
        ("a lone high surrogate", header_line(implementation="ab\ud800"),
         "high surrogate not followed by a low surrogate"),
        ("a lone low surrogate in a key", header_line(backend={"\udc00x": 1}),
         "lone low surrogate"),
        ("two high surrogates", header_line(model={"a": "\ud83d\ud83d\ude00"}),
         "high surrogate not followed by a low surrogate"),
        ("NUL in implementation", header_line(implementation="a\0b"),
         'field "implementation" is a string holding a NUL character'),
        ("NUL in a fault", header_line(faults=["x\0"]), "faults[0] is not a string"),
        ("65 levels", header_line(backend=nest(64)), "nesting deeper than 64 levels"),
        ("901 levels", header_line(backend=nest(900)), "nesting deeper than 64 levels"),
        ("2,000,001 values", header_line(backend={"a": [0] * (limit + 1)}),
         "more than 2000000 values in one record"))
    accepted = (("a surrogate pair", header_line(model={"a": "\ud83d\ude00"})),
                ("64 levels", header_line(backend=nest(63))),
                ("2,000,000 values", header_line(backend={"a": [0] * limit})))
    for i, (what, line, msg) in enumerate(refused):
        p = os.path.join(d, f"refused{i}.jsonl")
        with open(p, "w") as f:
            f.write(line + "\n" + end)
        r = inspect(p)
        check(r.returncode == 2 and msg in r.stderr, f"{what}: inspect exit {r.returncode}: "
              f"{r.stderr[-300:]} (the test's premise: the C reader refuses it)")
        expect_error(what, "input", msg, probes.Stream, p)
    for what, line in accepted:
        p = os.path.join(d, "accepted.jsonl")
        with open(p, "w") as f:
            f.write(line + "\n" + end)
        both_read(what, p)


class Index:
    """An integer of another library: what __index__ gives (a 0-d integer tensor is one)."""

    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v


def test_end_tokens(d):
    """Tokens of any integer type; a bad end description is written as an error end record (as
    the C sink's close does), raised, and the file is closed in any case."""
    p = os.path.join(d, "tokens.jsonl")
    sink = probes.Sink(p, **RUN)
    try:
        sink.close(tokens=[np.array(5), np.int32(6), Index(7), -1], decoded=[Index(5)])
    except probes.ProbeError as e:
        check(False, f"end tokens of integer types: {e}")
    s = probes.Stream(p)
    check(s.end["tokens"] == [5, 6, 7, -1] and s.end["decoded"] == [5],
          f"end tokens of integer types: {s.end}")
    for what, kw, msg in (("a float token", dict(tokens=[1.5]), "end tokens[] must be an integer"),
                          ("a float array", dict(tokens=[np.array(2.0)]), "must be an integer"),
                          ("a bool", dict(decoded=[True]), "decoded[] must be an integer"),
                          ("not a sequence", dict(tokens=3), "must be a sequence of integers"),
                          ("a negative decoded", dict(decoded=[-1]), "outside [0, 2147483647]")):
        sink = probes.Sink(p, **RUN)
        fd = sink._fd
        expect_error(what, "usage", msg, sink.close, **kw)
        try:
            os.fstat(fd)
            check(False, f"{what}: the file is still open after close")
        except OSError:
            pass
        r = inspect(p)
        s = probes.Stream(p)
        check(r.returncode == 3 and s.end["status"] == "error" and msg in s.end["message"],
              f"{what}: an error end record naming the problem: {r.returncode} {s.end}")
    # an error in flight keeps its message, the bad tokens are added to it
    sink = probes.Sink(p, **RUN)
    expect_error("tokens after an error", "usage", "written as an error end record", sink.close,
                 tokens=["3"], ok=False, message="RuntimeError: mine")
    end = probes.Stream(p).end
    check(end["message"].startswith("RuntimeError: mine (and a bad end description"),
          f"the error's message kept: {end}")


def test_interrupted_write(d):
    """An interrupt inside a record's write, whether after a piece of it, after all of it (the
    write completes and the interrupt is raised as it returns) or before any byte, leaves the
    sink failed: no end record (which could be glued to a half line, or count one probe short),
    and readers report the stream as cut short."""
    real = os.write
    for when in ("after a piece", "after the whole record", "before any byte"):
        p = os.path.join(d, "interrupted.jsonl")
        sink = probes.Sink(p, payload="full", **RUN)
        calls = [0]

        def flaky(fd, data):
            if fd != sink._fd:
                return real(fd, data)
            calls[0] += 1
            if calls[0] == 1 and when == "after a piece":
                return real(fd, data[:len(data) // 2])
            if when == "after the whole record":
                real(fd, data)
            raise KeyboardInterrupt

        os.write = flaky
        try:
            sink.emit(0, None, "embed", np.ones((4, 8), np.float32))
            check(False, f"{when}: no interrupt")
        except KeyboardInterrupt:
            pass
        finally:
            os.write = real
        expect_error(f"{when}: close", "io", "write interrupted (KeyboardInterrupt) in the",
                     sink.close)
        r = inspect(p)
        check(r.returncode == 3 and "truncated" in r.stderr,
              f"{when}: inspect exit {r.returncode}: {r.stderr[-300:]}")
        expect_error(f"{when}: read", "truncated", "", probes.Stream, p)


def test_reader_closes(d):
    """A Reader closes its file at the end of its stream, at its first error and when it is
    garbage: a later Sink on the path is not blocked. One still reading blocks it, and so does a
    Feed until it is closed."""
    p = os.path.join(d, "read.jsonl")

    def write():
        try:
            with probes.Sink(p, payload="full", **RUN) as s:
                for step in range(3):
                    s.emit(step, None, "embed", np.ones((1, 4), np.float32))
            return True
        except probes.ProbeError as e:
            check(False, f"a Sink after {what}: {e}")
            return False

    what = "nothing"
    write()
    for _ in probes.Reader(p):  # the docs' pattern
        pass
    what = "a Reader iterated to its end"
    write()
    r = probes.Reader(p)
    next(r)
    expect_error("a Sink on a stream being read", "usage", "is a stream this process is reading",
                 probes.Sink, p, **RUN)
    del r
    gc.collect()
    what = "a Reader left mid-stream"
    write()
    with open(p, "ab") as f:
        f.write(b"junk\n")  # after the end record: the reader's error
    r = probes.Reader(p)
    expect_error("data after the end", "input", "data after the end record", list, r)
    what = "a Reader's error"
    write()
    # A Feed guards its stream for its whole life, also after a get() whose reader read to the
    # end (a key the stream lacks) and closed itself; closed, it lets a Sink in again.
    feed = probes.Feed(p)
    expect_error("an absent key", "input", "the feed has no probe", feed.get, 9, None, "embed")
    expect_error("a Sink on a stream a Feed serves", "usage",
                 "is a stream this process is reading", probes.Sink, p, **RUN)
    feed.close()
    what = "a closed Feed"
    write()


def test_stats_blocks(d):
    """Tensors of many blocks of chunks (NaN/Inf, signed zeros and the first finite value in
    later blocks): the records the C writer makes of the same data, byte for byte; and the
    statistics take a few MB beside the tensor (whole float64 copies took 14 times its size)."""
    rng = np.random.default_rng(11)
    n = 16 * 8192 * 5 + 1234  # five blocks of 16 chunks, and a part
    x = rng.standard_normal(n).astype(np.float32)
    late = x.copy()
    late[:300000] = np.nan  # the first finite value two blocks in
    late[[400000, 500000]] = [np.inf, -np.inf]
    zeros = np.abs(x) + 1
    zeros[[600000, 3, 200000]] = [-0.0, 0.0, -0.0]  # min 0: which zero across blocks
    big = (x * 1e-3 + 1000).astype(np.float32)
    path, restat = os.path.join(d, "blocks.jsonl"), os.path.join(d, "blocks_c.jsonl")
    with probes.Sink(path, payload="full", **RUN) as sink:
        for i, a in enumerate((x, late, zeros, -zeros, big)):
            sink.emit(0, None, f"t{i}", a)
            sink.emit(0, None, f"h{i}", a.astype(np.float16))
            sink.emit(0, None, f"b{i}", probes.bf16_bits(a), dtype="bf16")
    subprocess.run([SAMPLE, "--restat", path, restat], check=True)
    with open(path, "rb") as f, open(restat, "rb") as g:
        a, b = f.read().split(b"\n"), g.read().split(b"\n")
    check(len(a) == len(b) == 18, f"restat: {len(a)} and {len(b)} lines")
    for la, lb in zip(a[1:], b[1:]):
        check(la == lb, f"stats differ from the C writer's:\n  py {la[:300]}\n  C  {lb[:300]}")
    y = rng.standard_normal(4 << 20).astype(np.float32)  # 16 MiB
    tracemalloc.start()
    try:
        probes.compute_stats(y)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        with probes.Sink(os.path.join(d, "mem.jsonl"), **RUN) as sink:
            sink.emit(0, None, "t", y)
        emit_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    check(peak < y.nbytes // 2, f"compute_stats of {y.nbytes >> 20} MiB took {peak >> 20} MiB")
    check(emit_peak < 2 * y.nbytes, f"emit of {y.nbytes >> 20} MiB took {emit_peak >> 20} MiB")


def test_f16_signalling_nan(d):
    """An f16 signalling NaN is a NaN to the statistics, with no numpy warning."""
    a = np.array([0x7D00, 0x3C00, 0xFC01], np.uint16).view(np.float16)
    p = os.path.join(d, "snan.jsonl")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            with probes.Sink(p, payload="full", **RUN) as sink:
                sink.emit(0, None, "t", a)
            st = probes.Stream(p).probes[0]
            check(st.stats["nan"] == 2 and st.stats["max"] == 1.0 and
                  np.isnan(st.array()).sum() == 2, f"signalling NaNs: {st.stats}")
        except RuntimeWarning as e:
            check(False, f"signalling NaNs: a warning: {e}")


def test_hf_options_documented(d):
    """Every option of `python -m layerdiff.hf` appears in docs/python.md."""
    r = subprocess.run([sys.executable, "-m", "layerdiff.hf", "--help"], capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=os.path.join(SRC, "python")))
    options = sorted(set(re.findall(r"--[a-z][a-z-]+", r.stdout)) - {"--help"})
    doc = open(os.path.join(SRC, "docs", "python.md")).read()
    check(r.returncode == 0 and len(options) >= 7, f"layerdiff.hf --help: {r.stderr[-300:]}")
    missing = [o for o in options if o not in doc]
    check(not missing, f"docs/python.md does not mention {missing}")


def main():
    with tempfile.TemporaryDirectory() as d:
        run_each((test_header_bounds, test_reader_bounds, test_end_tokens,
                     test_interrupted_write, test_reader_closes, test_stats_blocks,
                     test_f16_signalling_nan, test_hf_options_documented), d)
    return finish()


if __name__ == "__main__":
    sys.exit(main())

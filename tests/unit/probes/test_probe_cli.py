#!/usr/bin/env python3
"""'layerdiff inspect' and 'layerdiff extract' on streams written by the probe library: output,
exit codes (0 complete, 2 malformed or bad usage, 3 cut short or ended in error) and .npy files
checked with numpy.load against values worked out here.

usage: test_probe_cli.py LD_PROBE_SAMPLE   (LD_BIN names the layerdiff binary)
"""
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

failures = []


def run(*args):
    p = subprocess.run([os.environ["LD_BIN"], *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def check(what, cond, detail=""):
    if not cond:
        failures.append(f"{what} {detail}")


def expect(what, args, code, out_has=(), err_has=(), out_lacks=()):
    rc, out, err = run(*args)
    check(what, rc == code, f": exit {rc}, expected {code}; stderr: {err.strip()}")
    for s in out_has:
        check(what, s in out, f": stdout lacks {s!r}:\n{out}")
    for s in err_has:
        check(what, s in err, f": stderr lacks {s!r}: {err.strip()}")
    for s in out_lacks:
        check(what, s not in out, f": stdout has {s!r}")
    return out


def values(n, nonfinite, dtype=np.float32):
    """What ld_probe_sample writes: (i - 7) / 4, with NaN, +Inf, -Inf at 2, 3, 5."""
    x = (np.arange(n, dtype=np.float64) - 7) / 4
    if nonfinite:
        x[2], x[3], x[5] = np.nan, np.inf, -np.inf
    return x.astype(dtype)


def key_name(r):
    return f"S{r['step']}." + (f"L{r['layer']}." if "layer" in r else "") + r["tag"]


def with_duplicate(src, key, dst):
    """src with the probe record of key written twice in a row, indexes and counts kept right."""
    with open(src) as f:
        recs = [json.loads(line) for line in f]
    out = []
    for r in recs:
        out.append(r)
        if r["record"] == "probe" and key_name(r) == key:
            out.append(dict(r))
    n = 0
    for r in out:
        if r["record"] == "probe":
            r["index"] = n
            n += 1
        elif r["record"] == "end":
            r["probes"] = n
    with open(dst, "w") as f:
        for r in out:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
    return dst


def main():
    sample = sys.argv[1]
    d = tempfile.mkdtemp(prefix="ld_probe_cli_")
    try:
        subprocess.run([sample, d], check=True)
        full = os.path.join(d, "full_shuffle.jsonl")
        gz = os.path.join(d, "full_zlib.jsonl.gz")
        with open(os.path.join(d, "full_zlib.jsonl"), "rb") as f, gzip.open(gz, "wb") as g:
            shutil.copyfileobj(f, g)

        # inspect
        expect("inspect --help", ["inspect", "--help"], 0, out_has=["--summary", "--no-verify", "exit codes"])
        out = expect("inspect", ["inspect", full], 0,
                     out_has=["implementation:  sample", "input:           4 tokens [9707, 11, 1879, 0], decode steps 1",
                              "S0.embed", "S0.L1.attn_norm", "bf16", "[4,2,4]", "S0.L1.my.custom/tap:0",
                              "shuffle+zlib+base64", "complete: 12 probes (4 with NaN or Inf), status ok",
                              "tokens [13, 42]", "decoded [13]"])
        line = next(l for l in out.splitlines() if l.startswith("S0.L0.attn_norm"))
        check("inspect columns", line.split()[1:5] == ["f32", "[4,8]", "-1.75", "6"], line)
        check("inspect nan/inf", line.split()[7:9] == ["1", "2"], line)
        expect("inspect --summary", ["inspect", "--summary", full], 0, out_has=["complete: 12 probes"],
               out_lacks=["S0.embed"])
        expect("inspect --no-verify", ["inspect", "--no-verify", gz], 0, out_has=["zlib+base64", "complete"])
        expect("inspect cut", ["inspect", os.path.join(d, "cut.jsonl")], 3,
               out_has=["INCOMPLETE: stream truncated: 12 probes read"],
               err_has=["cut.jsonl: stream truncated after line 13: no end record; last complete probe: S1.L0.attn_norm"])
        expect("inspect error end", ["inspect", os.path.join(d, "error_end.jsonl")], 3,
               out_has=["INCOMPLETE: 12 probes", "status error",
                        "the producer stopped after S1.L0.attn_norm: injected fault tripped an assertion",
                        "faults:          rope_theta=5000"])
        bad = os.path.join(d, "bad.jsonl")
        with open(full, encoding="utf-8") as f:
            lines = f.readlines()
        lines[3] = lines[3].replace('"dtype":"f32"', '"dtype":"f64"', 1)
        with open(bad, "w", encoding="utf-8") as f:
            f.writelines(lines)
        expect("inspect malformed", ["inspect", bad], 2, out_has=["MALFORMED: 2 probes read"],
               err_has=["bad.jsonl:4: probe S0.L0.q_proj: dtype is \"f64\""])
        expect("inspect no file", ["inspect"], 2, err_has=["no FILE given"])
        expect("inspect missing", ["inspect", os.path.join(d, "nope.jsonl")], 2, err_has=["nope.jsonl: cannot open"])
        expect("inspect bad option", ["inspect", "--frobnicate", full], 2, err_has=["unknown option"])
        expect("inspect max-line", ["inspect", "--max-line", "100", full], 2, err_has=["longer than the 100-byte limit"])

        # extract
        expect("extract --help", ["extract", "--help"], 0, out_has=["--npy", "bf16", "float32"])
        npy = os.path.join(d, "x.npy")
        cases = [  # key, file, dtype, shape, expected values
            ("S0.L0.attn_norm", full, np.float32, (4, 8), values(32, True)),
            ("L0.attn_norm", gz, np.float32, (4, 8), values(32, True)),
            ("L1.attn_norm", full, np.float32, (4, 8), values(32, True)),  # bf16 widened
            ("L2.attn_norm", full, np.float16, (4, 8), values(32, True, np.float16)),
            ("S0.L0.q_proj", full, np.float32, (4, 2, 4), values(32, False)),
            ("logits", full, np.float32, (4, 16), values(64, False)),
            ("S0.L1.my.custom/tap:0", full, np.float32, (4, 8), values(32, False)),
            ("S0.final_norm", full, np.float32, (0, 8), np.zeros(0, np.float32)),
        ]
        for key, path, dt, shape, want in cases:
            # The report goes to stderr: stdout may be the .npy itself (--npy /dev/stdout).
            msgs = [f"wrote {npy}"] + (["widened exactly to float32"] if key == "L1.attn_norm" else [])
            expect(f"extract {key}", ["extract", path, key, "--npy", npy], 0, err_has=msgs)
            a = np.load(npy)
            check(f"extract {key} dtype", a.dtype == dt, f"{a.dtype}")
            check(f"extract {key} shape", a.shape == shape, f"{a.shape}")
            check(f"extract {key} values",
                  np.array_equal(a.reshape(-1), want, equal_nan=True), f"{a.reshape(-1)} != {want}")
        expect("extract stats-only", ["extract", os.path.join(d, "stats.jsonl"), "L0.q_proj", "--npy", npy], 2,
               err_has=["stats.jsonl:4: probe S0.L0.q_proj carries stats only, no data"])
        expect("extract precomputed", ["extract", full, "S1.L0.attn_norm", "--npy", npy], 2,
               err_has=["carries stats only"])
        expect("extract missing key", ["extract", full, "L9.q_norm", "--npy", npy], 2,
               err_has=["no probe S0.L9.q_norm among its 12 probes"])
        expect("extract cut", ["extract", os.path.join(d, "cut.jsonl"), "L9.q_norm", "--npy", npy], 3,
               err_has=["no probe S0.L9.q_norm before the stream stopped", "stream truncated"])
        # issue 15, item 8: a key twice. inspect refused nothing and extract took the first.
        dup = with_duplicate(full, "S0.L0.q_proj", os.path.join(d, "dup.jsonl"))
        expect("inspect duplicate key", ["inspect", dup], 2,
               err_has=["dup.jsonl:5: probe S0.L0.q_proj: appears twice (first on line 4)"])
        expect("extract ambiguous key", ["extract", dup, "L0.q_proj", "--npy", npy], 2,
               err_has=["dup.jsonl:5: probe S0.L0.q_proj appears twice (first on line 4): the key "
                        "is ambiguous"])
        expect("extract other key of dup", ["extract", dup, "logits", "--npy", npy], 0)
        with open(dup) as f:
            cut_dup = f.read().splitlines(keepends=True)[:4]
        with open(os.path.join(d, "cut_after.jsonl"), "w") as f:
            f.writelines(cut_dup)
        expect("extract before a cut", ["extract", os.path.join(d, "cut_after.jsonl"), "L0.q_proj",
                                        "--npy", npy], 0, err_has=["cut short after line 4"])
        expect("extract bad key", ["extract", full, "q_norm", "--npy", npy], 2, err_has=["per-layer tag"])
        expect("extract no --npy", ["extract", full, "L0.q_proj"], 2, err_has=["--npy OUT.npy is required"])
        expect("extract --npy no value", ["extract", full, "L0.q_proj", "--npy"], 2, err_has=["needs a value"])
        expect("extract no key", ["extract", full, "--npy", npy], 2, err_has=["expected FILE and KEY"])
    finally:
        shutil.rmtree(d, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

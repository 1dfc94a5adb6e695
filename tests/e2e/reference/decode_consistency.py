#!/usr/bin/env python3
"""Decode consistency of the reference: the probes of a prefill over n+1 tokens equal (relative L2
1e-6) the probes of a prefill over n tokens followed by one decode step, for the last row. Run A
prefills n tokens and decodes one step, whose input token g is A's own argmax; run B prefills the
n tokens plus g. Then B's last row of every tag at step 0 must match A's step 1."""
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from ldprobes import Stream  # noqa: E402

LD_BIN = os.environ["LD_BIN"]


def run(args):
    return subprocess.run([LD_BIN] + args, check=True, capture_output=True, text=True).stdout.strip()


def main():
    fails, checked = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for preset, prompt in (("tiny", [5, 9, 2, 77, 31, 8]), ("small", [900, 1, 44, 12, 7, 300, 2])):
            model = os.path.join(tmp, preset)
            run(["gen-model", model, "--preset", preset, "--dtype", "bf16", "--seed", "11"])
            a = os.path.join(tmp, f"{preset}-a.jsonl")
            b = os.path.join(tmp, f"{preset}-b.jsonl")
            run(["run", "--model", model, "--tokens", ",".join(map(str, prompt)), "--decode", "1",
                 "--payload", "full", "--probes", a, "--quiet"])
            sa = Stream(a)
            g = sa.end["decoded"][0]
            run(["run", "--model", model, "--tokens", ",".join(map(str, prompt + [g])),
                 "--payload", "full", "--probes", b, "--quiet"])
            sb = Stream(b)
            for p in sa.probes:
                if p["step"] != 1:
                    continue
                layer, tag = p.get("layer"), p["tag"]
                one = sa.tensor(1, layer, tag)
                full = sb.tensor(0, layer, tag)[-1:]
                if sb.by_key[(0, layer, tag)]["pos0"] != 0 or p["pos0"] != len(prompt):
                    fails.append(f"{preset} {tag}: wrong pos0")
                denom = np.linalg.norm(full)
                err = np.linalg.norm(one - full) / (denom if denom else 1.0)
                checked += 1
                if not err <= 1e-6:
                    fails.append(f"{preset} L{layer} {tag}: relative error {err:.3e}")
    print(f"decode consistency: {checked} tags compared")
    for f in fails:
        print("FAIL", f)
    return 1 if fails or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

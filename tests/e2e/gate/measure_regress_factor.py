#!/usr/bin/env python3
"""How far do honest kernel variants move a probe's error? The measurement behind the default
--regress-factor (docs/gate.md). Not a ctest: run it by hand when the numerics change.

For each model preset and low-precision dtype, runs the emulated kernel set with round-to-nearest-
even and N stochastic-rounding seeds (each one an honest implementation of that dtype: weights and
stored activations rounded, fp32 accumulation), compares each against the fp32 reference, and then
every variant's report against every other variant's as a baseline: the per-probe ratio new/old
rel_l2 is what a correct kernel change can do to the gate. Then the same for a few faults against
the nearest-even baseline: the largest ratio, which the gate must catch.

usage: LD_BIN=build/src/cli/layerdiff measure_regress_factor.py [--presets tiny,small]
       [--dtypes bf16,f16] [--seeds 8]"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

LD_BIN = os.environ.get("LD_BIN", "layerdiff")
PROMPT = "1,2,3,4,5,6,7"
DECODE = 3
FAULTS = ["softmax_bf16", "attn_scale@1=0.17", "rope_theta@1=900000", "rmsnorm_eps@1=3e-5",
          "qk_norm_block@2=16", "silu_as_gelu@2"]


def sh(*args):
    subprocess.run([LD_BIN, *args], check=False, stdout=subprocess.DEVNULL)


def errors(report):
    out = {}
    for p in json.load(open(report))["probes"]:
        m = p.get("metrics")
        if m:
            v = m["rel_l2"]
            out[p["key"]] = float("inf") if v == "Infinity" else float(v)
    return out


def ratio(new, old):
    if old == 0:
        return 1.0 if new == 0 else float("inf")
    return new / old


def quantile(v, q):
    return v[min(len(v) - 1, int(q * len(v)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--dtypes", default="bf16,f16")
    ap.add_argument("--seeds", type=int, default=8)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for preset in a.presets.split(","):
            model = os.path.join(tmp, preset)
            sh("gen-model", model, "--preset", preset)
            ref = os.path.join(tmp, f"{preset}_ref.jsonl")
            sh("run", "--model", model, "--tokens", PROMPT, "--decode", str(DECODE), "--payload",
               "full", "--probes", ref, "--quiet")
            for dtype in a.dtypes.split(","):
                reports = {}
                for seed in range(a.seeds + 1):  # 0: round to nearest even
                    name = f"{preset}_{dtype}_{seed}"
                    cand = os.path.join(tmp, name + ".jsonl")
                    extra = ["--sr-seed", str(seed)] if seed else []
                    sh("run", "--model", model, "--tokens", PROMPT, "--payload", "full", "--emulate",
                       dtype, "--follow", ref, "--probes", cand, "--quiet", *extra)
                    rep = os.path.join(tmp, name + ".json")
                    sh("compare", ref, cand, "--json", rep, "--quiet", "--fail-on", "none")
                    reports[seed] = errors(rep)
                rs, worst = [], (0, "", 0, 0)
                for b in reports:
                    for c in reports:
                        if b == c:
                            continue
                        for k, old in reports[b].items():
                            r = ratio(reports[c][k], old)
                            rs.append(r)
                            if r > worst[0]:
                                worst = (r, k, b, c)
                rs.sort()
                print(f"{preset} {dtype}: {len(rs)} probe ratios over {len(reports)} honest variants "
                      f"(pairs of baselines and candidates): median {quantile(rs, 0.5):.3f}, "
                      f"p99 {quantile(rs, 0.99):.3f}, p99.9 {quantile(rs, 0.999):.3f}, max "
                      f"{worst[0]:.3f} at {worst[1]} (baseline variant {worst[2]}, candidate "
                      f"{worst[3]}; 0 = nearest even)")
                if dtype != "bf16":
                    continue
                for fault in FAULTS:
                    cand = os.path.join(tmp, "fault.jsonl")
                    sh("run", "--model", model, "--tokens", PROMPT, "--payload", "full", "--emulate",
                       dtype, "--follow", ref, "--inject", fault, "--probes", cand, "--quiet")
                    rep = os.path.join(tmp, "fault.json")
                    div = subprocess.run([LD_BIN, "compare", ref, cand, "--json", rep, "--quiet"],
                                         check=False).returncode
                    e = errors(rep)
                    r, k = max((ratio(e[k], reports[0][k]), k) for k in e)
                    print(f"    fault {fault:22} largest ratio against the nearest-even baseline "
                          f"{r:8.2f} at {k:18} (compare alone: exit {div})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

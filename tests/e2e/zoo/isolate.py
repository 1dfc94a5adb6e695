#!/usr/bin/env python3
"""The fault zoo under teacher forcing (layerdiff isolate, issue 19): for every fault of the zoo,
an f32 and an emulated-bf16 candidate on the tiny model, isolation must name the injected op as
the first key wrong on the reference's exact inputs (so every op before it, the one just before
included, is cleared) and exit 1; honest candidates (the reference itself, --emulate bf16 and f16)
must name nothing and exit 0. Prints the table docs/faults.md shows; exits 1 on any miss.

usage: isolate.py [--configs tiny] [--dtypes f32,bf16] [--markdown]"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo import DECODE, PROMPT, fault_cases, key_text, run  # noqa: E402

LD_BIN = os.environ.get("LD_BIN", "layerdiff")


def isolate(ref, model, extra):
    p = subprocess.run([LD_BIN, "isolate", ref, "--model", model] + extra, capture_output=True,
                       text=True)
    out = p.stdout
    key = re.search(r"^isolate: (\S+)", out, re.M)
    first = re.search(r"keys fail with all fed, the first (\S+)", out)
    fed = re.search(r"output fed: +(\d+) of (\d+)", out)
    concl = re.search(r"^conclusion: (.*)$", out, re.M)
    return (p.returncode, key and key.group(1), first and first.group(1),
            fed and f"{fed.group(1)}/{fed.group(2)}", concl and concl.group(1), p.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="tiny")
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    bad, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for config in a.configs.split(","):
            model = os.path.join(tmp, config)
            run(["gen-model", model, "--preset", config, "--dtype", "bf16", "--seed", "5"])
            ref = os.path.join(tmp, f"{config}-ref.jsonl")
            run(["run", "--model", model, "--tokens", ",".join(map(str, PROMPT)), "--decode",
                 str(DECODE), "--payload", "full", "--probes", ref, "--quiet"])
            cases = [(spec, key_text(*k)) for spec, k in fault_cases(4)]
            for dtype in a.dtypes.split(","):
                emu = [] if dtype == "f32" else ["--emulate", dtype]
                for spec, want in cases:
                    rc, key, first, fed, concl, err = isolate(ref, model, emu + ["--inject", spec])
                    ok = rc == 1 and first == want and key == want
                    rows.append((config, dtype, spec, want, key, first, fed, ok))
                    if not ok:
                        bad.append(f"{config} {dtype} {spec}: exit {rc}, isolated {key}, first "
                                   f"wrong on exact inputs {first}, want {want}\n{err}")
            for dtype in ["f32", "bf16", "f16"]:
                emu = [] if dtype == "f32" else ["--emulate", dtype]
                rc, key, first, fed, concl, err = isolate(ref, model, emu)
                ok = rc == 0 and first is None
                rows.append((config, dtype, "(honest)", "-", key or "-", first or "-", fed or "-",
                             ok))
                if not ok:
                    bad.append(f"{config} {dtype} honest: exit {rc}, named {first}: {concl}\n{err}")
    if a.markdown:
        print("| config | candidate | fault | expected | isolated | first wrong on exact inputs "
              "| later probes failing, output fed |")
        print("|---|---|---|---|---|---|---|")
    for config, dtype, spec, want, key, first, fed, ok in rows:
        if a.markdown:
            print(f"| {config} | {dtype} | `{spec}` | {want} | {key} | {first} | {fed} |")
        else:
            print(f"{'ok  ' if ok else 'MISS'} {config:5} {dtype:5} {spec:28} want {want:18} "
                  f"isolated {key or '-':18} exact-first {first or '-':18} fed {fed or '-'}")
    for b in bad:
        print("isolate zoo:", b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

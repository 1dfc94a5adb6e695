#!/usr/bin/env python3
"""The CUDA forward pass against the reference on a generated checkpoint of one preset: every probe
of every step, compared by `layerdiff compare` under the default (bf16) tolerances, must pass
(exit 0), the CUDA run following the reference's decoded tokens (--follow). The CUDA stream itself
must carry the reference's keys in the same execution order, bf16 probes, a header stating its
numerics, and an ok end record. bf16 and f32 checkpoints (the latter rounded to bf16 on upload),
tied and untied, prompts of 7 and 1 tokens, full and stats-only payloads. Needs a GPU (exit 77).
Argument: the preset (tiny, small)."""
import os
import sys
import tempfile

from common import Stream, compare, gen_model, run, skip_without_gpu

PROMPT7 = [3, 141, 59, 26, 5, 35, 89]


def key(p):
    return (p["step"], p.get("layer"), p["tag"])


def check_case(tmp, preset, dtype, tie, prompt, decode, payload, fails):
    name = f"{preset} {dtype} {tie} prompt={len(prompt)} decode={decode} {payload}"
    model = os.path.join(tmp, f"m-{dtype}{tie}")
    if not os.path.exists(os.path.join(model, "config.json")):
        gen_model(model, preset, dtype, tie)
    skip_without_gpu(model)
    ref = os.path.join(tmp, f"ref-{dtype}{tie}-{len(prompt)}.jsonl")
    cand = os.path.join(tmp, "cand.jsonl")
    tokens = ",".join(map(str, prompt))
    if not os.path.exists(ref):
        run(["run", "--model", model, "--tokens", tokens, "--decode", str(decode), "--payload",
             "full", "--probes", ref, "--quiet"])
    run(["run", "--model", model, "--tokens", tokens, "--backend", "cuda", "--follow", ref,
         "--payload", payload, "--probes", cand, "--quiet"])

    r, c = Stream(ref), Stream(cand)
    if [key(p) for p in c.probes] != [key(p) for p in r.probes]:
        rk, ck = [key(p) for p in r.probes], [key(p) for p in c.probes]
        first = next((i for i, (a, b) in enumerate(zip(rk, ck)) if a != b), min(len(rk), len(ck)))
        fails.append(f"{name}: keys differ from the reference's from record {first}: "
                     f"{rk[first:first + 3]} vs {ck[first:first + 3]} ({len(rk)} vs {len(ck)})")
    if any(p["dtype"] != "bf16" for p in c.probes):
        fails.append(f"{name}: a CUDA probe is not bf16")
    if any((p.get("data") is not None) != (payload == "full") for p in c.probes):
        fails.append(f"{name}: payloads present/absent against --payload {payload}")
    b = c.header.get("backend", {})
    want = {"name": "cuda", "compute_dtype": "bf16", "accumulation": "f32", "tf32": False,
            "residual_dtype": "bf16", "weights_rounded": dtype != "bf16"}
    for k, v in want.items():
        if b.get(k) != v:
            fails.append(f"{name}: header backend.{k} = {b.get(k)!r}, expected {v!r}")
    if c.header.get("implementation") != "cuda":
        fails.append(f"{name}: implementation {c.header.get('implementation')!r}")
    if c.end.get("status") != "ok" or c.end.get("decoded") != r.end.get("decoded"):
        fails.append(f"{name}: end record {c.end} (reference decoded {r.end.get('decoded')})")

    rc, rep, text = compare(ref, cand, os.path.join(tmp, "report.json"))
    if rc != 0:
        fd = rep.get("first_divergence") if rep else None
        fails.append(f"{name}: compare exits {rc}; first divergence {fd and fd.get('key')}\n{text}")
        # Is the policy itself too tight for bf16 arithmetic? The reference emulating a correct
        # bf16 kernel set answers that, independently of the CUDA code.
        emu = os.path.join(tmp, "emu.jsonl")
        run(["run", "--model", model, "--tokens", tokens, "--emulate", "bf16", "--follow", ref,
             "--payload", "full", "--probes", emu, "--quiet"])
        erc, _, _ = compare(ref, emu, os.path.join(tmp, "emu.json"))
        fails.append(f"  (for scale: the reference emulating bf16 compares with exit {erc})")
    print(f"{'ok  ' if rc == 0 else 'FAIL'} {name}: {len(c.probes)} probes, compare exit {rc}")


def main():
    preset = sys.argv[1] if len(sys.argv) > 1 else "tiny"
    fails = []
    with tempfile.TemporaryDirectory() as tmp:
        for dtype, tie, prompt, decode, payload in (
                ("bf16", "--tied", PROMPT7, 4, "full"),
                ("bf16", "--tied", PROMPT7, 4, "stats"),
                ("f32", "--untied", [11], 3, "full"),
                ("bf16", "--untied", PROMPT7 * 3, 2, "full")):
            check_case(tmp, preset, dtype, tie, prompt, decode, payload, fails)
    for f in fails:
        print("FAIL", f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Teacher forcing on the CUDA path (run --backend cuda --feed, issue 19): fed every tag but
q_norm/k_norm (fused with RoPE: refused with exit 2), an honest CUDA run passes against the
reference and marks every fed record; with a fault injected, only the faulty op's own keys fail
(each op sees the reference's exact inputs, the residual stream and the KV cache included); fed
only the faulty op's output, everything after it recovers. Needs a GPU (exit 77)."""
import json
import os
import sys
import tempfile

from common import compare, gen_model, run, skip_without_gpu

PROMPT = "3,141,59,26,5,35,89"
TAGS = ("embed,attn_norm,q_proj,k_proj,v_proj,q_rope,k_rope,attn_out,o_proj,attn_residual,"
        "mlp_norm,gate_proj,up_proj,mlp_act,down_proj,layer_out,final_norm,logits")
# fault at layer 1 -> the tags that may fail on exact inputs
FAULTS = {"silu_as_gelu@1": {"mlp_act"}, "swap_gate_up@1": {"gate_proj", "up_proj"},
          "rope_theta@1=10000": {"q_rope", "k_rope"}, "skip_attn_residual@1": {"attn_residual"},
          "kv_append_off_by_one@1": {"attn_out"}, "o_proj_weight_shift@1": {"o_proj"}}


def failing(rep):
    return [(p["layer"], p["tag"], p["key"]) for p in rep["probes"] if p["status"] != "pass"]


def main():
    bad = []
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "m")
        gen_model(model, "tiny")
        skip_without_gpu(model)
        ref = os.path.join(tmp, "ref.jsonl")
        run(["run", "--model", model, "--tokens", PROMPT, "--decode", "2", "--payload", "full",
             "--probes", ref, "--quiet"])
        base = ["run", "--model", model, "--tokens", PROMPT, "--backend", "cuda", "--payload",
                "full", "--feed", ref, "--quiet"]
        rc, _, err = run(base, check=False)
        if rc != 2 or "cannot replace q_norm or k_norm" not in err:
            bad.append(f"feeding q_norm on cuda: exit {rc}: {err}")
        honest = os.path.join(tmp, "honest.jsonl")
        run(base + ["--feed-tags", TAGS, "--probes", honest])
        rc, rep, out = compare(ref, honest, os.path.join(tmp, "h.json"))
        if rc != 0:
            bad.append(f"honest fed cuda run: compare exit {rc}: {failing(rep) if rep else out}")
        with open(honest) as f:
            recs = [json.loads(x) for x in f][1:-1]
        unmarked = [r["tag"] for r in recs if r["tag"] in TAGS.split(",") and not r.get("fed")]
        if unmarked:
            bad.append(f"fed records without the mark: {unmarked[:5]}")
        for spec, tags in FAULTS.items():
            cand = os.path.join(tmp, "c.jsonl")
            run(base + ["--feed-tags", TAGS, "--inject", spec, "--probes", cand])
            rc, rep, out = compare(ref, cand, os.path.join(tmp, "c.json"))
            f = failing(rep) if rep else []
            wrong = [k for layer, tag, k in f if layer != 1 or tag not in tags]
            if rc != 1 or not f or wrong:
                bad.append(f"{spec} all fed: exit {rc}, failing {[k for _, _, k in f]}")
        cand = os.path.join(tmp, "one.jsonl")
        run(base + ["--feed-tags", "mlp_act", "--feed-layers", "1", "--inject", "silu_as_gelu@1",
                    "--probes", cand])
        rc, rep, out = compare(ref, cand, os.path.join(tmp, "o.json"))
        f = [k for _, _, k in failing(rep)] if rep else out
        if rc != 1 or f != ["S0.L1.mlp_act", "S1.L1.mlp_act", "S2.L1.mlp_act"]:
            bad.append(f"mlp_act fed: exit {rc}, failing {f}")
    for b in bad:
        print("FAIL:", b)
    print("cuda feed:", "ok" if not bad else f"{len(bad)} failures")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Every fault of the zoo that concerns a kernel, injected into the CUDA path, is localized where
the reference localizes it: `layerdiff compare` of an honest reference run against the faulty CUDA
run (following the reference's tokens) finds a divergence (exit 1) whose first key is the fault's
expected tag, step and layer (model/faults.h, LD_FAULT_TABLE, read here so that there is one
table). The same fault injected into the reference is compared too, as a control. Not here:
softmax_bf16, too subtle for bf16 tolerances by design (its kernel variant is held against the
twin in test_cuda_kernels). Needs a GPU (exit 77). Argument: the preset (default tiny)."""
import os
import re
import sys
import tempfile

from common import compare, gen_model, run, skip_without_gpu

PROMPT = "3,141,59,26,5,35,89"
DECODE = 2
LAYER = 1
# Specs injected, each at LAYER unless it carries its own layer or is model-level.
SPECS = ["rmsnorm_mul_var", "qk_norm_block=16", "qk_norm_skip", "q_proj_zero", "rope_interleaved",
         "rope_theta=10000", "gqa_modulo", "no_causal_mask", "attn_scale=0.5",
         "kv_append_off_by_one", "skip_attn_residual", "swap_gate_up", "silu_as_gelu",
         "o_proj_weight_shift", "rmsnorm_eps=0.5",
         "nan=attn_norm", "nan=q_proj", "nan=k_proj", "nan=v_proj", "nan=q_norm", "nan=k_norm",
         "nan=q_rope", "nan=k_rope", "nan=attn_out", "nan=o_proj", "nan=attn_residual",
         "nan=mlp_norm", "nan=gate_proj", "nan=up_proj", "nan=mlp_act", "nan=down_proj",
         "nan=layer_out", "nan=embed!", "nan=final_norm!", "nan=logits!"]


def fault_table():
    """name -> (expected tag, expected step) from LD_FAULT_TABLE in faults.h."""
    src = os.environ.get("LD_SRC", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    with open(os.path.join(src, "model", "faults.h")) as f:
        text = f.read()
    table = {}
    entry = r'X\(\s*\w+\s*,\s*"(\w+)"\s*,\s*LD_FV_\w+\s*,\s*"(\w*)"\s*,\s*(\d+)'
    for m in re.finditer(entry, text):
        table[m.group(1)] = (m.group(2), int(m.group(3)))
    if len(table) < 15:
        print(f"FAIL: read only {len(table)} faults from faults.h")
        sys.exit(1)
    return table


def main():
    preset = sys.argv[1] if len(sys.argv) > 1 else "tiny"
    table = fault_table()
    fails = []
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "m")
        gen_model(model, preset)
        skip_without_gpu(model)
        ref = os.path.join(tmp, "ref.jsonl")
        run(["run", "--model", model, "--tokens", PROMPT, "--decode", str(DECODE), "--payload",
             "full", "--probes", ref, "--quiet"])
        for spec in SPECS:
            model_level = spec.endswith("!")
            spec = spec.rstrip("!")
            name, _, value = spec.partition("=")
            tag, step = table[name]
            layer = None if model_level else LAYER
            if name == "nan":
                tag = value
            inject = spec if model_level else f"{name}@{LAYER}" + (f"={value}" if value else "")
            want = (step, layer, tag)
            got = {}
            for backend in ("ref", "cuda"):
                out = os.path.join(tmp, f"faulty-{backend}.jsonl")
                run(["run", "--model", model, "--tokens", PROMPT, "--backend", backend, "--follow",
                     ref, "--inject", inject, "--payload", "full", "--probes", out, "--quiet"])
                rc, rep, text = compare(ref, out, os.path.join(tmp, f"faulty-{backend}.json"))
                fd = rep.get("first_divergence") if rep else None
                got[backend] = (fd["step"], fd["layer"], fd["tag"]) if fd else None
                if rc != 1 or got[backend] != want:
                    fails.append(f"{inject} ({backend}): compare exit {rc}, first divergence "
                                 f"{got[backend]}, expected {want}\n{text}")
            ok = got["cuda"] == want
            print(f"{'ok  ' if ok else 'FAIL'} {inject:28s} expected S{step}.{tag} "
                  f"(layer {layer}); reference {got['ref']}, cuda {got['cuda']}")
    for f in fails:
        print("FAIL", f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

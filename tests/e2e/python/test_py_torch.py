"""test_py_torch.py — transformers' Qwen3 through layerdiff.hf / layerdiff.torch against the
reference: fp32 within 1e-5 rel_l2 at every probe (tiny and small, tied and untied, prompts of 1
and 7 tokens, 3 decode steps), bf16 passing `layerdiff compare`'s default policy, a fault planted
in the PyTorch model found at its key, and an untied checkpoint without lm_head refused. Not the
format itself (test_py_probes.py).

usage: test_py_torch.py VENV_PYTHON   (LD_BIN, LD_SRC; skips with 77 when VENV_PYTHON lacks torch
and transformers, unless LD_REQUIRE_TORCH=1, which CI sets: then that is a failure)
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

SRC, LD_BIN, VPY = os.environ["LD_SRC"], os.environ["LD_BIN"], sys.argv[1]
sys.path.insert(0, os.path.join(SRC, "python"))
from layerdiff import probes  # noqa: E402
from checks import check, finish  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=os.path.join(SRC, "python"), HF_HUB_OFFLINE="1",
           TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
# q_norm over 16-element blocks instead of the whole head, as the fused-kernel bug of the seeds.
PLANT = """
import sys, torch, runpy
from transformers.models.qwen3 import modeling_qwen3 as m
orig = m.Qwen3RMSNorm.forward
def blocked(self, x):
    if x.shape[-1] != self.weight.shape[0] or not getattr(self, "_planted", False):
        return orig(self, x)
    xs = x.float().reshape(*x.shape[:-1], -1, 16)
    xs = xs * torch.rsqrt(xs.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
    return self.weight * xs.reshape(x.shape).to(x.dtype)
m.Qwen3RMSNorm.forward = blocked
orig_init = m.Qwen3Attention.__init__
def init(self, config, layer_idx):
    orig_init(self, config, layer_idx)
    self.q_norm._planted = layer_idx == 2
m.Qwen3Attention.__init__ = init
sys.argv = ["layerdiff.hf"] + sys.argv[1:]
runpy.run_module("layerdiff.hf", run_name="__main__")
"""

# transformers before 4.56 as layerdiff.hf sees it: its version, and from_pretrained taking the
# compute dtype as torch_dtype only (dtype= reaches the model's constructor there and fails).
OLD_TRANSFORMERS = """
import sys, runpy, torch, transformers
orig = transformers.Qwen3ForCausalLM.from_pretrained
# loading Qwen3 may put another module object in sys.modules: patch the one importers get
tf = sys.modules["transformers"]
tf.__version__ = "4.55.4"
def from_pretrained(*args, **kw):
    if "dtype" in kw:
        raise TypeError("Qwen3ForCausalLM.__init__() got an unexpected keyword argument 'dtype'")
    # the checkpoint is bf16 and transformers 5 loads it as such without being told: say it
    if kw.get("torch_dtype") is not torch.bfloat16:
        sys.exit(f"torch_dtype is {kw.get('torch_dtype')!r}, not torch.bfloat16")
    return orig(*args, **kw)
tf.Qwen3ForCausalLM.from_pretrained = from_pretrained
sys.argv = ["layerdiff.hf"] + sys.argv[1:]
runpy.run_module("layerdiff.hf", run_name="__main__")
"""

# capture() with a tag map that matches nothing (the Qwen3 map on another model), a bad row, a
# per-layer tag without its layer group, a bad regex, a rope function that does not exist.
MAPS = """
import sys, torch
from layerdiff import probes
from layerdiff.torch import capture
model = torch.nn.Sequential(torch.nn.Linear(4, 4))
for what, kw in (("matches none", {}), ("row", {"tag_map": [("0", "embed")]}),
                 ("group", {"tag_map": [("0", "q_proj", "out")], "rope": None}),
                 ("regex", {"tag_map": [("(", "x", "out")], "rope": None}),
                 ("rope", {"tag_map": [("0", "x", "out")], "rope": ("math", "nope", "0")})):
    try:
        with capture(model, sys.argv[1], tokens=[1], decode_steps=0, **kw):
            pass
        print("accepted", what)
    except probes.ProbeError as e:
        ok = e.kind == "usage" and {"matches none": "matches none of the model's 2 modules",
              "row": "is not (regex, tag", "group": "must have a group", "regex": "regex",
              "rope": "rope=None"}[what] in str(e)
        print("ok" if ok else f"{what}: {e}")
"""


def sh(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, env=ENV, **kw)


def rel_l2_all(ref, cand):
    """rel_l2 of every probe of ref against cand (both full payloads); a missing key is inf."""
    a, b = probes.Stream(ref), probes.Stream(cand)
    out = {}
    for k, p in a.by_key.items():
        q = b.by_key.get(k)
        if q is None or q.shape != p.shape:
            out[p.key] = float("inf")
            continue
        x, y = p.array().astype(np.float64), q.array().astype(np.float64)
        n = np.linalg.norm(x)
        out[p.key] = float(np.linalg.norm(x - y) / (n if n > 0 else 1.0))
    check(len(a.probes) == len(b.probes) and [p.key for p in a.probes] ==
          [p.key for p in b.probes], f"{cand}: the same keys in the same order as {ref}")
    return out


def main():
    if not os.path.exists(VPY) or sh([VPY, "-c", "import torch, transformers"]).returncode:
        if os.environ.get("LD_REQUIRE_TORCH") == "1":
            print(f"FAIL: {VPY} lacks torch/transformers and LD_REQUIRE_TORCH=1 (make python-deps)")
            return 1
        print(f"skipped: {VPY} lacks torch/transformers (make python-deps installs them)")
        return 77
    with tempfile.TemporaryDirectory() as d:
        for preset in ("tiny", "small"):
            for tie in ("--tied", "--untied"):
                m = os.path.join(d, f"{preset}{tie}")
                r = sh([LD_BIN, "gen-model", m, "--preset", preset, tie, "--seed", "3"])
                check(r.returncode == 0, f"gen-model {preset} {tie}: {r.stderr}")
                for toks in ("5", "1,17,3,99,4,250,8"):
                    ref = os.path.join(d, "ref.jsonl")
                    r = sh([LD_BIN, "run", "--model", m, "--tokens", toks, "--decode", "3",
                            "--payload", "full", "--probes", ref, "--quiet"])
                    check(r.returncode == 0, f"run {m}: {r.stderr}")
                    what = f"{preset} {tie} prompt {toks}"
                    runs = [("f32", "eager"), ("bf16", "sdpa")]
                    if preset == "small" and tie == "--tied":  # sdpa in fp32 too, once
                        runs.append(("f32", "sdpa"))
                    for dtype, attn in runs:
                        out = os.path.join(d, f"hf_{dtype}.jsonl")
                        r = sh([VPY, "-m", "layerdiff.hf", m, "--follow", ref, "--probes", out,
                                "--dtype", dtype, "--attn", attn, "--payload", "full"])
                        check(r.returncode == 0, f"layerdiff.hf {what} {dtype}: {r.stderr}")
                        if dtype == "f32":
                            errs = rel_l2_all(ref, out)
                            worst = max(errs, key=errs.get)
                            check(errs[worst] <= 1e-5,
                                  f"{what} f32 {attn}: rel_l2 {errs[worst]:.3g} at {worst}")
                            print(f"{what} f32 {attn}: {len(errs)} probes, worst rel_l2 "
                                  f"{errs[worst]:.3g} at {worst}")
                        c = sh([LD_BIN, "compare", ref, out])
                        check(c.returncode == 0, f"compare {what} {dtype} {attn}: exit "
                              f"{c.returncode}\n{c.stdout[-1500:]}")
        # the header, the decode count and the end record come from the followed stream
        s = probes.Stream(os.path.join(d, "hf_f32.jsonl"))
        check(s.header["input"]["decode_steps"] == 3 and s.end["decoded"] ==
              probes.Stream(ref).end["decoded"] and s.end["last_key"] == "S3.logits" and
              "transformers" in s.header["backend"] and "torch" in s.header["backend"],
              f"header/end of the HF stream: {s.header['backend']} {s.end}")
        # a text prompt: the HF stream's header carries the followed stream's input.text
        m, ref, out = (os.path.join(d, "tiny--tied"), os.path.join(d, "reft.jsonl"),
                       os.path.join(d, "hft.jsonl"))
        r = sh([LD_BIN, "run", "--model", m, "--prompt", "Hello, wörld", "--decode", "1",
                "--probes", ref, "--quiet"])
        check(r.returncode == 0, f"run --prompt: {r.stderr}")
        r = sh([VPY, "-m", "layerdiff.hf", m, "--follow", ref, "--probes", out])
        check(r.returncode == 0 and probes.Stream(out).header["input"].get("text") ==
              "Hello, wörld", f"layerdiff.hf after a text prompt: {r.stderr}")
        # a planted fault: q_norm of layer 2 over 16-element blocks
        m = os.path.join(d, "small--tied")
        ref = os.path.join(d, "ref7.jsonl")
        sh([LD_BIN, "run", "--model", m, "--tokens", "1,17,3,99,4,250,8", "--decode", "3",
            "--payload", "full", "--probes", ref, "--quiet"])
        out, rep = os.path.join(d, "planted.jsonl"), os.path.join(d, "r.json")
        r = sh([VPY, "-c", PLANT, m, "--follow", ref, "--probes", out, "--payload", "full"])
        check(r.returncode == 0, f"planted run: {r.stderr}")
        c = sh([LD_BIN, "compare", ref, out, "--json", rep])
        first = json.load(open(rep))["first_divergence"] if os.path.exists(rep) else None
        check(c.returncode == 1 and first and first.get("key") == "S0.L2.q_norm",
              f"planted fault: exit {c.returncode}, first divergence {first}")
        # transformers 4.51-4.55 (torch_dtype): the same bf16 probes, bit for bit
        new, old = os.path.join(d, "bf16_new.jsonl"), os.path.join(d, "bf16_old.jsonl")
        args = [m, "--follow", ref, "--dtype", "bf16", "--attn", "sdpa", "--payload", "full"]
        r = sh([VPY, "-m", "layerdiff.hf"] + args + ["--probes", new])
        o = sh([VPY, "-c", OLD_TRANSFORMERS] + args + ["--probes", old])
        check(r.returncode == 0 and o.returncode == 0,
              f"bf16 under transformers 5 / as 4.55: {r.stderr[-300:]} / {o.stderr[-300:]}")
        if o.returncode == 0:
            c = sh([LD_BIN, "compare", new, old, "--exact", "--quiet"])
            check(c.returncode == 0 and probes.Stream(old).header["backend"]["transformers"] ==
                  "4.55.4", f"bf16 as transformers 4.55: compare --exact exit {c.returncode}")
        # an untied config over a checkpoint without lm_head.weight is refused
        bad = os.path.join(d, "untied-without-head")
        shutil.copytree(os.path.join(d, "tiny--tied"), bad)
        cfg = json.load(open(os.path.join(bad, "config.json")))
        cfg["tie_word_embeddings"] = False
        json.dump(cfg, open(os.path.join(bad, "config.json"), "w"))
        r = sh([VPY, "-m", "layerdiff.hf", bad, "--follow", ref, "--probes",
                os.path.join(d, "x.jsonl")])
        check(r.returncode == 2 and "missing: lm_head.weight" in r.stderr,
              f"untied without lm_head: exit {r.returncode}: {r.stderr[-400:]}")
        # configs that are not Qwen3's, or lack what sizes the model, are refused by name (else
        # transformers would build its default sizes, or a Qwen3 of another model's weights)
        for what, edit, msg in (
                ("llama", {"model_type": "llama", "architectures": ["LlamaForCausalLM"]},
                 "model_type 'llama', architectures LlamaForCausalLM: only Qwen3"),
                ("no hidden_size", {"hidden_size": None}, "hidden_size is missing"),
                ("no rms_norm_eps", {"rms_norm_eps": None}, "rms_norm_eps is missing"),
                ("no rope_theta", {"rope_theta": None, "rope_parameters": None},
                 "rope_theta is missing"),
                ("a list", [], "the model config is not a JSON object")):
            bad = os.path.join(d, "cfg-" + what.replace(" ", "_"))
            shutil.copytree(os.path.join(d, "tiny--tied"), bad)
            cfg = json.load(open(os.path.join(bad, "config.json")))
            if isinstance(edit, dict):
                cfg.update(edit)
                cfg = {k: v for k, v in cfg.items() if v is not None}
            else:
                cfg = edit
            json.dump(cfg, open(os.path.join(bad, "config.json"), "w"))
            r = sh([VPY, "-m", "layerdiff.hf", bad, "--follow", ref, "--probes",
                    os.path.join(d, "x.jsonl")])
            check(r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr,
                  f"config {what}: exit {r.returncode}: {r.stderr[-400:]}")
        # --probes naming the followed stream (here through a link) would destroy it
        link = os.path.join(d, "ref-link.jsonl")
        os.symlink(ref, link)
        before = open(ref, "rb").read()
        r = sh([VPY, "-m", "layerdiff.hf", m, "--follow", ref, "--probes", link])
        check(r.returncode == 2 and "is the followed stream" in r.stderr and
              open(ref, "rb").read() == before, f"--probes = --follow: exit {r.returncode}: "
              f"{r.stderr[-300:]}")
        # ... and so would a --probes that is one of the checkpoint's files: refused before the
        # model loads; so are an output directory that does not exist, a device that is not one,
        # and a checkpoint transformers cannot read (each exit 2, a message, no traceback)
        cfg_before = open(os.path.join(m, "config.json"), "rb").read()
        trunc = os.path.join(d, "truncated")
        shutil.copytree(m, trunc)
        with open(os.path.join(trunc, "model.safetensors"), "r+b") as f:
            f.truncate(100000)
        for what, model_dir, extra, msg in (
                ("config.json", m, ["--probes", os.path.join(m, "config.json")],
                 "is the checkpoint's config.json"),
                ("a shard", m, ["--probes", os.path.join(m, "model.safetensors")],
                 "is the checkpoint's model.safetensors"),
                ("missing dir", m, ["--probes", os.path.join(d, "nodir", "x.jsonl")],
                 "does not exist"),
                ("bad device", m, ["--probes", os.path.join(d, "x.jsonl"), "--device", "bogus"],
                 "--device bogus: not a torch device"),
                ("absent device", m, ["--probes", os.path.join(d, "x.jsonl"), "--device",
                                      "cuda:99"], "--device cuda:99: torch sees"),
                ("truncated", trunc, ["--probes", os.path.join(d, "x.jsonl")],
                 "transformers cannot load the checkpoint")):
            r = sh([VPY, "-m", "layerdiff.hf", model_dir, "--follow", ref] + extra)
            check(r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr,
                  f"hostile {what}: exit {r.returncode}: {r.stderr[-400:]}")
        check(open(os.path.join(m, "config.json"), "rb").read() == cfg_before,
              "--probes m/config.json changed the checkpoint's config.json")
        # no tokenizer is needed: the ids come from the followed stream
        notok = os.path.join(d, "no-tokenizer")
        shutil.copytree(m, notok)
        os.remove(os.path.join(notok, "tokenizer.json"))
        r = sh([VPY, "-m", "layerdiff.hf", notok, "--follow", ref, "--probes",
                os.path.join(d, "notok.jsonl")])
        check(r.returncode == 0, f"a checkpoint without tokenizer.json: {r.stderr[-300:]}")
        # the example of docs/python.md: a user's own model through a tag map, read by inspect
        toy = os.path.join(d, "toy.jsonl")
        r = sh([VPY, os.path.join(SRC, "examples", "python", "probe_my_model.py"), toy])
        i = sh([LD_BIN, "inspect", toy])
        keys = [p.key for p in probes.Stream(toy).probes] if r.returncode == 0 else []
        check(r.returncode == 0 and i.returncode == 0 and len(keys) == 3 * 12 and
              keys[:3] == ["S0.embed", "S0.L0.mlp_norm", "S0.L0.up_proj"] and
              keys[-1] == "S2.logits", f"example: exit {r.returncode}/{i.returncode} {keys[:4]} "
              f"{r.stderr[-300:]}{i.stderr[-300:]}")
        # tag maps that cannot work are refused before the output file is created
        r = sh([VPY, "-c", MAPS, os.path.join(d, "maps.jsonl")])
        check(r.returncode == 0 and r.stdout.split() == ["ok"] * 5 and
              not os.path.exists(os.path.join(d, "maps.jsonl")),
              f"tag map refusals: {r.stdout} {r.stderr[-600:]}")
        # a cut-short followed stream is exit 3
        cut = os.path.join(d, "cut.jsonl")
        with open(ref, "rb") as f, open(cut, "wb") as g:
            g.write(f.read()[:5000])
        r = sh([VPY, "-m", "layerdiff.hf", m, "--follow", cut, "--probes",
                os.path.join(d, "x.jsonl")])
        check(r.returncode == 3 and "last complete probe" in r.stderr,
              f"cut-short follow: exit {r.returncode}: {r.stderr[-300:]}")
    return finish()


if __name__ == "__main__":
    sys.exit(main())

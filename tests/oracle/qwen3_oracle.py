#!/usr/bin/env python3
"""An independent NumPy implementation of the Qwen3 forward pass, written from the semantics of
Hugging Face transformers' modeling_qwen3.py (Qwen3RMSNorm, Qwen3Attention with q/k norm and
rotate_half RoPE, repeat_kv grouped-query attention, Qwen3MLP), computed in float64. It reads the
same checkpoint as layerdiff and a probe stream written by `layerdiff run --payload full`, replays
the stream's prompt and decoded tokens, and checks every probe of every step against its own
value: relative L2 error <= tolerance. It shares no code with the C reference.

usage: qwen3_oracle.py MODEL_DIR PROBES.jsonl [--tol 1e-5] [--require-all]
exit 0 when every probe agrees (and, with --require-all, every tag of every layer and step is
present), 1 otherwise, 2 on bad input."""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from ldprobes import Stream, decode_payload  # noqa: E402

LAYER_TAGS = ["attn_norm", "q_proj", "k_proj", "v_proj", "q_norm", "k_norm", "q_rope", "k_rope",
              "attn_out", "o_proj", "attn_residual", "mlp_norm", "gate_proj", "up_proj", "mlp_act",
              "down_proj", "layer_out"]
MODEL_TAGS = ["embed", "final_norm", "logits"]


# ---- checkpoint -------------------------------------------------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = np.frombuffer(blob, dtype=np.uint8, count=e - b, offset=base + b)
        dt = info["dtype"]
        if dt == "F32":
            arr = raw.view("<f4").astype(np.float64)
        elif dt == "F16":
            arr = raw.view("<f2").astype(np.float64)
        elif dt == "BF16":
            arr = (raw.view("<u2").astype(np.uint32) << 16).view("<f4").astype(np.float64)
        else:
            raise SystemExit(f"oracle: {path}: dtype {dt} not handled")
        out[name] = arr.reshape(info["shape"])
    return out


def load_checkpoint(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    index = os.path.join(model_dir, "model.safetensors.index.json")
    weights = {}
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        for s in shards:
            weights.update(read_safetensors(os.path.join(model_dir, s)))
    else:
        weights = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return cfg, weights


# ---- the model, after modeling_qwen3.py --------------------------------------------------------

def rms_norm(x, weight, eps):
    # Qwen3RMSNorm: variance = mean(x^2) over the last axis; x * rsqrt(variance + eps) * weight
    variance = np.mean(x * x, axis=-1, keepdims=True)
    return weight * (x / np.sqrt(variance + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rope_cos_sin(positions, head_dim, theta):
    # Qwen3RotaryEmbedding (default rope): inv_freq = 1 / theta^(arange(0, D, 2) / D);
    # emb = cat(freqs, freqs)
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    freqs = np.outer(np.asarray(positions, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(emb), np.sin(emb)


def silu(x):
    return x / (1.0 + np.exp(-x))


class Oracle:
    def __init__(self, cfg, w):
        self.cfg = cfg
        self.w = w
        self.H = cfg["hidden_size"]
        self.L = cfg["num_hidden_layers"]
        self.Hq = cfg["num_attention_heads"]
        self.Hkv = cfg["num_key_value_heads"]
        self.D = cfg.get("head_dim") or self.H // self.Hq
        self.eps = cfg["rms_norm_eps"]
        rp = cfg.get("rope_parameters") or {}
        self.theta = cfg.get("rope_theta", rp.get("rope_theta"))
        tied = cfg.get("tie_word_embeddings", False)
        self.lm_head = w["model.embed_tokens.weight"] if tied else w["lm_head.weight"]
        self.k_cache = [np.zeros((0, self.Hkv, self.D)) for _ in range(self.L)]
        self.v_cache = [np.zeros((0, self.Hkv, self.D)) for _ in range(self.L)]

    def lw(self, layer, name):
        return self.w[f"model.layers.{layer}.{name}"]

    def step(self, ids, pos0):
        """Runs len(ids) tokens at positions pos0.. and returns {(layer, tag): array}."""
        out = {}
        T = len(ids)
        h = self.w["model.embed_tokens.weight"][np.asarray(ids)]
        out[(None, "embed")] = h
        positions = np.arange(pos0, pos0 + T)
        cos, sin = rope_cos_sin(positions, self.D, self.theta)
        cos, sin = cos[:, None, :], sin[:, None, :]
        n_rep = self.Hq // self.Hkv
        scaling = self.D ** -0.5
        for l in range(self.L):
            x = rms_norm(h, self.lw(l, "input_layernorm.weight"), self.eps)
            out[(l, "attn_norm")] = x
            q = (x @ self.lw(l, "self_attn.q_proj.weight").T).reshape(T, self.Hq, self.D)
            k = (x @ self.lw(l, "self_attn.k_proj.weight").T).reshape(T, self.Hkv, self.D)
            v = (x @ self.lw(l, "self_attn.v_proj.weight").T).reshape(T, self.Hkv, self.D)
            out[(l, "q_proj")], out[(l, "k_proj")], out[(l, "v_proj")] = q, k, v
            q = rms_norm(q, self.lw(l, "self_attn.q_norm.weight"), self.eps)
            k = rms_norm(k, self.lw(l, "self_attn.k_norm.weight"), self.eps)
            out[(l, "q_norm")], out[(l, "k_norm")] = q, k
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            out[(l, "q_rope")], out[(l, "k_rope")] = q, k
            self.k_cache[l] = np.concatenate([self.k_cache[l], k], axis=0)
            self.v_cache[l] = np.concatenate([self.v_cache[l], v], axis=0)
            K, V = self.k_cache[l], self.v_cache[l]          # [S, Hkv, D]
            S = K.shape[0]
            # repeat_kv: query head j uses kv head j // n_rep
            Kr = np.repeat(K, n_rep, axis=1)                  # [S, Hq, D]
            Vr = np.repeat(V, n_rep, axis=1)
            scores = np.einsum("thd,shd->hts", q, Kr) * scaling
            key_pos = np.arange(S)
            mask = key_pos[None, :] > positions[:, None]      # causal: key position > query position
            scores = np.where(mask[None, :, :], -np.inf, scores)
            scores = scores - scores.max(axis=-1, keepdims=True)
            p = np.exp(scores)
            p = p / p.sum(axis=-1, keepdims=True)
            a = np.einsum("hts,shd->thd", p, Vr)              # [T, Hq, D]
            out[(l, "attn_out")] = a
            o = a.reshape(T, self.Hq * self.D) @ self.lw(l, "self_attn.o_proj.weight").T
            out[(l, "o_proj")] = o
            h = h + o
            out[(l, "attn_residual")] = h
            x = rms_norm(h, self.lw(l, "post_attention_layernorm.weight"), self.eps)
            out[(l, "mlp_norm")] = x
            g = x @ self.lw(l, "mlp.gate_proj.weight").T
            u = x @ self.lw(l, "mlp.up_proj.weight").T
            out[(l, "gate_proj")], out[(l, "up_proj")] = g, u
            act = silu(g) * u
            out[(l, "mlp_act")] = act
            d = act @ self.lw(l, "mlp.down_proj.weight").T
            out[(l, "down_proj")] = d
            h = h + d
            out[(l, "layer_out")] = h
        x = rms_norm(h, self.w["model.norm.weight"], self.eps)
        out[(None, "final_norm")] = x
        out[(None, "logits")] = x @ self.lm_head.T
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("probes")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--require-all", action="store_true")
    args = ap.parse_args()

    cfg, weights = load_checkpoint(args.model_dir)
    stream = Stream(args.probes)
    header, probes, end = stream.header, stream.probes, stream.end
    prompt = header["input"]["tokens"]
    steps = header["input"]["decode_steps"]
    decoded = end.get("decoded", end["tokens"][:steps])
    if end["status"] != "ok":
        print(f"oracle: stream ended with status {end['status']}: {end.get('message')}")
        return 1

    oracle = Oracle(cfg, weights)
    by_key = {(p["step"], p.get("layer"), p["tag"]): p for p in probes}
    worst = {}
    failures = []
    checked = 0
    for step in range(steps + 1):
        ids = prompt if step == 0 else [decoded[step - 1]]
        pos0 = 0 if step == 0 else len(prompt) + step - 1
        values = oracle.step(ids, pos0)
        for (layer, tag), want in values.items():
            key = (step, layer, tag)
            rec = by_key.pop(key, None)
            name = f"S{step}." + (f"L{layer}." if layer is not None else "") + tag
            if rec is None:
                if args.require_all:
                    failures.append(f"{name}: missing from the stream")
                continue
            if "data" not in rec:
                failures.append(f"{name}: no payload (run with --payload full)")
                continue
            if rec["pos0"] != pos0:
                failures.append(f"{name}: pos0 {rec['pos0']} != {pos0}")
            got = decode_payload(rec["data"], rec["shape"])
            want = want.reshape(got.shape) if want.size == got.size else None
            if want is None:
                failures.append(f"{name}: shape {rec['shape']} does not match the model")
                continue
            denom = np.linalg.norm(want)
            err = np.linalg.norm(got - want) / (denom if denom > 0 else 1.0)
            checked += 1
            worst[tag] = max(worst.get(tag, 0.0), err)
            if not (err <= args.tol):
                failures.append(f"{name}: relative L2 error {err:.3e} > {args.tol:g}")
        # the argmax the stream reports for this step must be the oracle's too (or a near tie)
        logits = values[(None, "logits")][-1]
        top = int(np.argmax(logits))
        if end["tokens"][step] != top:
            gap = logits[top] - logits[end["tokens"][step]]
            if gap > 1e-5 * max(1.0, abs(logits[top])):
                failures.append(f"step {step}: argmax {end['tokens'][step]} != oracle {top} (gap {gap:.3e})")
    for key in by_key:
        failures.append(f"probe {key} is not a tag of the model")

    print(f"oracle: {args.probes}: {checked} probes checked against float64 NumPy, tolerance {args.tol:g}")
    for tag in MODEL_TAGS[:1] + LAYER_TAGS + MODEL_TAGS[1:]:
        if tag in worst:
            print(f"  {tag:14s} max relative L2 error {worst[tag]:.3e}")
    if checked == 0:
        failures.append("no probe was checked")
    for f in failures[:50]:
        print("FAIL", f)
    if len(failures) > 50:
        print(f"... and {len(failures) - 50} more")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

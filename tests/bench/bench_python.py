"""bench_python.py — figures of the Python package (make bench): the probe writer's throughput
with full payloads (MB/s of raw tensor bytes) and the cost of capture() on the small preset
against the same forward passes without hooks. Not a test: it checks nothing.

usage: bench_python.py LAYERDIFF_BIN   (run with .venv-py's python for the capture part)
"""

import os
import platform
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_host import cpu_model  # noqa: E402

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from layerdiff import probes  # noqa: E402


def bench_writer(d):
    """One Qwen3-0.6B-sized prefill of 16 tokens per layer, 28 layers' worth of tensors."""
    rng = np.random.default_rng(0)
    shapes = [(16, 1024), (16, 16, 128), (16, 8, 128), (16, 3072)]
    tensors = [rng.standard_normal(s).astype(np.float32) for s in shapes for _ in range(28)]
    raw = sum(t.nbytes for t in tensors)
    for payload, enc in (("stats", "base64"), ("full", "base64"),
                         ("full", "shuffle+zlib+base64")):
        for dtype in ("f32", "bf16"):
            arrs = tensors if dtype == "f32" else [probes.bf16_bits(t) for t in tensors]
            nbytes = raw if dtype == "f32" else raw // 2
            path = os.path.join(d, "w.jsonl")
            t0 = time.perf_counter()
            with probes.Sink(path, implementation="bench", backend={}, model={}, tokens=[1],
                             decode_steps=0, payload=payload, encoding=enc) as s:
                for i, a in enumerate(arrs):
                    s.emit(0, None, f"t{i}", a, dtype=dtype)
            dt = time.perf_counter() - t0
            print(f"writer  {dtype:4} {payload:5} {enc:20} {nbytes / dt / 1e6:8.1f} MB/s  "
                  f"({len(arrs)} probes, {nbytes / 1e6:.1f} MB raw, file "
                  f"{os.path.getsize(path) / nbytes:.3f} x raw)")


def bench_capture(ld_bin, d):
    try:
        import torch
        import transformers
    except ImportError:
        print("capture: skipped (torch/transformers missing: make python-deps, then run with "
              ".venv-py/bin/python)")
        return
    from layerdiff import torch as ldtorch
    m = os.path.join(d, "small")
    subprocess.run([ld_bin, "gen-model", m, "--preset", "small"], check=True,
                   capture_output=True)
    model = transformers.Qwen3ForCausalLM.from_pretrained(m, dtype=torch.float32,
                                                          attn_implementation="eager").eval()
    tokens = list(range(1, 65))
    print(f"capture: small preset, {len(tokens)}-token prefill + 4 decode steps, fp32 eager, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")

    def forward_all():
        cache = transformers.DynamicCache(config=model.config)
        ids = torch.tensor([tokens])
        with torch.no_grad():
            for _ in range(5):
                out = model(input_ids=ids, use_cache=True, cache=cache)
                ids = out.logits[:, -1:].argmax(-1)

    def best(fn, n=3):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    base = best(forward_all)
    print(f"capture  no hooks            {base * 1e3:8.1f} ms")
    for payload in ("stats", "full"):
        path = os.path.join(d, f"cap_{payload}.jsonl")

        def captured():
            with ldtorch.capture(model, path, tokens=tokens, decode_steps=4,
                                 payload=payload) as cap:
                forward_all()
                cap.end_tokens = []
        t = best(captured)
        print(f"capture  payload {payload:5}       {t * 1e3:8.1f} ms  ({t / base:.2f}x, "
              f"{os.path.getsize(path) / 1e6:.1f} MB written)")


def main():
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    with tempfile.TemporaryDirectory() as d:
        bench_writer(d)
        bench_capture(sys.argv[1], d)
    return 0


if __name__ == "__main__":
    sys.exit(main())

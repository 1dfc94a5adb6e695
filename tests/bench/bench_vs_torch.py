"""bench_vs_torch.py — the reference's speed per kernel path against PyTorch fp32 (Hugging Face
transformers) and against a llama2.c-style fp32 decode loop, on the same checkpoint and machine, in
interleaved rounds (make bench). For each x86 path it races PyTorch held to the same instruction
set: avx512 against PyTorch's own choice, avx2 against PyTorch with ATEN_CPU_CAPABILITY=avx2,
MKL_ENABLE_INSTRUCTIONS=AVX2 and ONEDNN_MAX_CPU_ISA=AVX2, which makes an AVX-512 machine stand in
for an AVX2-only one. Figures as medians of the rounds, ratios of figures measured in the same run.
Not a test: it checks nothing.

usage: bench_vs_torch.py BENCH_REFERENCE MODEL_DIR [ROUNDS]   (2 threads each, LD_BENCH_THREADS
       to change; python with torch and transformers for the PyTorch column, which is skipped
       with the reason otherwise)
       bench_vs_torch.py --torch-worker MODEL_DIR               (internal: one PyTorch process)
"""

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_host import cpu_model  # noqa: E402

THREADS = int(os.environ.get("LD_BENCH_THREADS", "2"))
PROMPT = 128
DECODE = 32
TORCH_ENV = {
    "avx512": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ONEDNN_MAX_CPU_ISA": "AVX2"},
}


def torch_worker(model_dir):
    """Loads the checkpoint once in fp32, then answers 'prefill' (seconds for PROMPT tokens, the
    logits of the last row only, as the reference computes them) and 'decode' (tokens/s over
    DECODE greedy steps after a 1-token prompt) on stdin, one line each."""
    import torch
    import transformers
    torch.set_num_threads(THREADS)
    model = transformers.Qwen3ForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    ids = torch.tensor([[(i * 7919 + 13) % vocab for i in range(PROMPT)]])
    print(f"ready torch {torch.__version__} capability "
          f"{torch.backends.cpu.get_cpu_capability()}", flush=True)
    for line in sys.stdin:
        with torch.no_grad():
            if line.strip() == "prefill":
                t0 = time.perf_counter()
                model(input_ids=ids, use_cache=False, logits_to_keep=1)
                print(f"{time.perf_counter() - t0:.4f}", flush=True)
            elif line.strip() == "decode":
                cache = transformers.DynamicCache(config=model.config)
                out = model(input_ids=ids[:, :1], past_key_values=cache, use_cache=True)
                nxt = out.logits[:, -1:].argmax(-1)
                t0 = time.perf_counter()
                for _ in range(DECODE):
                    out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
                    nxt = out.logits[:, -1:].argmax(-1)
                print(f"{DECODE / (time.perf_counter() - t0):.4f}", flush=True)
            else:
                return 2
    return 0


class Torch:
    """One PyTorch worker process held to an instruction set; None-valued when it cannot start."""

    def __init__(self, model_dir, isa):
        env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS),
                   **TORCH_ENV[isa])
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--torch-worker",
                                   model_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, env=env)
        self.banner = self.p.stdout.readline().strip()
        if not self.banner.startswith("ready"):
            self.p.kill()
            raise RuntimeError("the PyTorch worker did not start")

    def ask(self, what):
        self.p.stdin.write(what + "\n")
        self.p.stdin.flush()
        return float(self.p.stdout.readline())

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def ours(bench, model_dir, path, what):
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), LD_REF_KERNEL=path)
    out = subprocess.run([bench, "--time", what, model_dir], env=env, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{bench} --time {what} on {path}: {out.stderr.strip()}")
    return float(out.stdout.split()[1]), out.stdout.split()[3]


def main(argv):
    if len(argv) > 2 and argv[1] == "--torch-worker":
        return torch_worker(argv[2])
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    bench, model_dir = argv[1], argv[2]
    rounds = int(argv[3]) if len(argv) > 3 else 3
    listed = subprocess.run([bench, "--paths"], capture_output=True, text=True, check=True)
    paths = [ln.split()[0] for ln in listed.stdout.splitlines() if ln.endswith(" usable")]
    raced = [p for p in paths if p in TORCH_ENV]
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; {THREADS} threads each; kernel paths this "
          f"CPU runs: {', '.join(paths)}; raced: {', '.join(raced) or 'none'}")
    if not raced:
        print("(no x86 kernel path to race: the paths above have no PyTorch counterpart here)")
        return 0
    torches, why = {}, None
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        why = f"{sys.executable} cannot import torch/transformers ({e}; make python-deps)"
    for isa in raced:
        if why:
            break
        try:
            torches[isa] = Torch(model_dir, isa)
            print(f"PyTorch for {isa}: {torches[isa].banner[6:]}")
        except (RuntimeError, OSError) as e:
            why = str(e)
    if why:
        print(f"PyTorch column skipped: {why}")
    fig = {(p, k): [] for p in raced for k in
           ("prefill", "decode", "anchor", "t_prefill", "t_decode")}
    level = {}
    for r in range(rounds):
        for p in raced:
            fig[p, "prefill"].append(ours(bench, model_dir, p, "prefill")[0])
            if p in torches:
                fig[p, "t_prefill"].append(torches[p].ask("prefill"))
            fig[p, "decode"].append(ours(bench, model_dir, p, "decode")[0])
            if p in torches:
                fig[p, "t_decode"].append(torches[p].ask("decode"))
            a, level[p] = ours(bench, model_dir, p, "anchor")
            fig[p, "anchor"].append(a)
        print(f"  round {r + 1}/{rounds} done", flush=True)
    for t in torches.values():
        t.close()

    def med(p, k):
        v = fig[p, k]
        return statistics.median(v) if v else float("nan")

    def spread(p, k):
        v = fig[p, k]
        return f"{min(v):.2f}–{max(v):.2f}" if v else "-"

    print(f"\nqwen3-0.6b preset (bf16), prefill {PROMPT} tokens, decode {DECODE} steps; medians "
          f"of {rounds} interleaved rounds (min–max)")
    for p in raced:
        print(f"\nkernel path {p} (LD_REF_KERNEL={p}); PyTorch "
              f"{'as it chooses' if not TORCH_ENV[p] else 'held to AVX2'}; anchor built for "
              f"{level[p]}")
        print(f"  prefill {PROMPT}: layerdiff {med(p, 'prefill'):.2f} s ({spread(p, 'prefill')}), "
              f"PyTorch {med(p, 't_prefill'):.2f} s ({spread(p, 't_prefill')}): "
              f"{med(p, 'prefill') / med(p, 't_prefill'):.2f}x PyTorch's time (goal <= 2)")
        print(f"  decode: layerdiff {med(p, 'decode'):.2f} tokens/s ({spread(p, 'decode')}), "
              f"PyTorch {med(p, 't_decode'):.2f} ({spread(p, 't_decode')}): "
              f"{med(p, 'decode') / med(p, 't_decode'):.2f}x PyTorch's speed (goal >= 1)")
        print(f"  anchor (llama2.c-style fp32 decode loop): {med(p, 'anchor'):.2f} tokens/s "
              f"({spread(p, 'anchor')}); layerdiff decode / anchor: "
              f"{med(p, 'decode') / med(p, 'anchor'):.2f}x (goal >= 1.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

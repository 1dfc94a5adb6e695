"""bench_tokenizer.py BUILD — encode throughput (MB/s, one thread) of the C tokenizer against
Hugging Face tokenizers on the same text and the same tokenizer.json: Qwen's real vocabulary
(tests/unit/tokenizer/qwen_vocab.py), the text this repository's docs, C sources and tokenizer
corpus (English, code, Chinese, Japanese, emoji). Both encode it five times, as one string in one
call, and as its documents (files, corpus cases) one call each; the figures are the best and
median of each, measured in one run, and their ratios. The ids must be identical. Run with the
venv's python (make python-deps); prints why when it cannot run.
"""

import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_host import cpu_model  # noqa: E402

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SRC, "tests", "unit", "tokenizer"))
REPS = 5


def fnv(ids):
    import numpy as np
    h = 0xcbf29ce484222325
    for b in np.asarray(ids, dtype="<i4").tobytes():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def main():
    build = sys.argv[1]
    try:
        import tokenizers
        import qwen_vocab
    except ImportError as e:
        print(f"skipped: {sys.executable} lacks {e.name} (run 'make python-deps')")
        return 0
    if qwen_vocab.tiktoken_path() is None:
        print(f"skipped: {sys.executable} lacks dashscope (Qwen's vocabulary; make python-deps)")
        return 0
    cache = os.environ.get("LD_BENCH_CACHE") or tempfile.gettempdir()
    tok_path = os.path.join(cache, "qwen-tokenizer.json")
    if not os.path.exists(tok_path):
        qwen_vocab.build(tok_path)
    parts = []
    for pat in ("README.md", "docs/*.md", "*/*.c", "*/*.h", "src/*/*.c"):
        for f in sorted(glob.glob(os.path.join(SRC, pat))):
            with open(f, encoding="utf-8") as fh:
                parts.append(fh.read())
    with open(os.path.join(SRC, "tests", "data", "tokenizer", "corpus.json")) as fh:
        parts += json.load(fh)
    tok = tokenizers.Tokenizer.from_file(tok_path)
    print(f"cpu: {cpu_model()}")
    print(f"HF tokenizers {tokenizers.__version__}: Rust, RAYON_NUM_THREADS=1 (one call on one "
          f"string does not fan out)")
    same = True
    for mode, docs in (("one string", ["\n".join(parts)]), ("per document", parts)):
        data = [d.encode("utf-8") for d in docs]
        with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as fh:
            if mode == "one string":
                fh.write(data[0])
            else:
                for d in data:
                    fh.write(b"%d\n" % len(d) + d)
            text_path = fh.name
        try:
            r = subprocess.run([os.path.join(build, "tests", "bench", "tok_encode_speed"),
                                tok_path, text_path, str(REPS)] + (["docs"] if len(docs) > 1
                                                                   else []),
                               capture_output=True, text=True)
        finally:
            os.unlink(text_path)
        if r.returncode != 0:
            print(f"tok_encode_speed failed: {r.stderr.strip()}")
            return 1
        c = {}
        for line in r.stdout.splitlines():
            k, _, v = line.partition(": " if line.startswith(("cpu:", "path:")) else " ")
            c[k.rstrip(":")] = v
        rates = []
        for _ in range(REPS):
            t0 = time.perf_counter()
            ids = [i for d in docs for i in tok.encode(d).ids]
            rates.append(sum(map(len, data)) / 1e6 / (time.perf_counter() - t0))
        ok = fnv(ids) == c["ids_fnv"] and len(ids) == int(c["ids"])
        same = same and ok
        c_best, c_med = float(c["best_mb_s"]), float(c["median_mb_s"])
        hf_best, hf_med = max(rates), statistics.median(rates)
        if mode == "one string":
            print(f"layerdiff: {c['path']}")
            print(f"tokenizer: Qwen's vocabulary ({tok.get_vocab_size()} ids), load "
                  f"{float(c['load_s']):.2f} s in C")
        print(f"{mode}: {sum(map(len, data)) / 1e6:.2f} MB in {len(docs)} call(s), {len(ids)} "
              f"ids, identical ids: {'yes' if ok else 'NO'}")
        print(f"  encode MB/s, best of {REPS} (median): layerdiff {c_best:.2f} ({c_med:.2f}), "
              f"HF tokenizers {hf_best:.2f} ({hf_med:.2f}); ratio {c_best / hf_best:.2f}x best, "
              f"{c_med / hf_med:.2f}x median")
    return 0 if same else 1


sys.exit(main())

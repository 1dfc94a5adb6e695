"""Helpers shared by the CUDA end-to-end tests: running the layerdiff binary, skipping (exit 77)
when no GPU is usable, comparing two streams with `layerdiff compare --json`. Test code only."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from ldprobes import Stream  # noqa: E402,F401  (re-exported for the tests)

LD_BIN = os.environ["LD_BIN"]
SKIP = 77


def run(args, env=None, check=True):
    """Runs layerdiff; returns (exit code, stdout, stderr). check: fail on a non-zero exit."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([LD_BIN] + args, capture_output=True, text=True, env=e)
    if check and p.returncode != 0:
        print(f"FAIL: layerdiff {' '.join(args)} exited {p.returncode}\n{p.stdout}{p.stderr}")
        sys.exit(1)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def skip_without_gpu(model):
    """Exits 77 when `run --backend cuda` reports no usable device."""
    rc, _, err = run(["run", "--model", model, "--tokens", "1", "--backend", "cuda", "--quiet"],
                     check=False)
    if rc == 2 and "no usable CUDA device" in err:
        print(f"skipped: {err}")
        sys.exit(SKIP)
    if rc != 0:
        print(f"FAIL: a plain CUDA run exits {rc}: {err}")
        sys.exit(1)


def compare(ref, cand, report, extra=()):
    """`layerdiff compare REF CAND --json REPORT`: (exit code, report dict, text output)."""
    rc, out, err = run(["compare", ref, cand, "--json", report] + list(extra), check=False)
    rep = None
    if os.path.exists(report):
        with open(report) as f:
            rep = json.load(f)
    return rc, rep, out + ("\n" + err if err else "")


def gen_model(path, preset, dtype="bf16", tie="--tied", seed=7):
    run(["gen-model", path, "--preset", preset, "--dtype", dtype, tie, "--seed", str(seed),
         "--force"])

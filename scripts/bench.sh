#!/usr/bin/env bash
# Runs every benchmark built in BUILD/tests/bench (make bench). Generated checkpoints are cached in
# $LD_BENCH_CACHE (default BUILD/bench-cache) so repeated runs skip generation. Figures go to stdout
# and to BUILD/bench-results.txt. LD_BENCH_PYTHON: the Python with torch for bench_vs_torch.py;
# LD_BENCH_ROUNDS, LD_BENCH_THREADS: its rounds (3) and threads (2).
set -uo pipefail
build=${1:-build}
export LD_BENCH_CACHE=${LD_BENCH_CACHE:-$(cd "$build" && pwd)/bench-cache}
mkdir -p "$LD_BENCH_CACHE"
out="$build/bench-results.txt"
: >"$out"
status=0
for b in "$build"/tests/bench/bench_*; do
  [[ -x $b && -f $b ]] || continue
  name=$(basename "$b")
  echo "===== $name =====" | tee -a "$out"
  "$b" 2>&1 | tee -a "$out"
  rc=${PIPESTATUS[0]}
  if [[ $rc -eq 77 ]]; then
    echo "($name skipped: needs hardware this machine lacks)" | tee -a "$out"
  elif [[ $rc -ne 0 ]]; then
    echo "($name failed with exit code $rc)" | tee -a "$out"
    status=1
  fi
done
# Python for the parts below: $LD_BENCH_PYTHON, else .venv-py's (make python-deps), else python3.
py=/usr/bin/python3
[[ -x .venv-py/bin/python ]] && py=.venv-py/bin/python
py=${LD_BENCH_PYTHON:-$py}
# The reference per kernel path against PyTorch fp32 and the llama2.c-style anchor, interleaved
# rounds on the checkpoint bench_reference generated (the PyTorch column needs torch in $py).
echo "===== bench_vs_torch ($py) =====" | tee -a "$out"
if ! "$py" tests/bench/bench_vs_torch.py "$build/tests/bench/bench_reference" \
    "$LD_BENCH_CACHE/qwen3-0.6b-bf16" "${LD_BENCH_ROUNDS:-3}" 2>&1 | tee -a "$out"; then
  echo "(bench_vs_torch failed)" | tee -a "$out"
  status=1
fi
# The Python package: writer throughput, and capture overhead when make python-deps was run.
echo "===== bench_python ($py) =====" | tee -a "$out"
if ! "$py" tests/bench/bench_python.py "$build/src/cli/layerdiff" 2>&1 | grep -v "Loading weights" \
    | tee -a "$out"; then
  echo "(bench_python failed)" | tee -a "$out"
  status=1
fi
# The tokenizer: encode MB/s against Hugging Face tokenizers on Qwen's vocabulary (needs
# make python-deps for tokenizers and the vocabulary; says so otherwise).
echo "===== bench_tokenizer ($py) =====" | tee -a "$out"
if ! "$py" tests/bench/bench_tokenizer.py "$build" 2>&1 | tee -a "$out"; then
  echo "(bench_tokenizer failed)" | tee -a "$out"
  status=1
fi
echo "bench: figures saved in $out"
exit $status

#!/usr/bin/env bash
# Holds the C reference against the NumPy oracle on one preset: bf16 and f32 checkpoints, tied and
# untied, prompts of 1 and 7 tokens, 3 decode steps each; every probe of every step must agree to a
# relative L2 error of 1e-5. Needs LD_BIN and LD_PYTHON (set by ctest).
set -euo pipefail
preset=${1:?preset}
: "${LD_BIN:?}" "${LD_PYTHON:?}"
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
for dtype in bf16 f32; do
  for tie in --tied --untied; do
    "$LD_BIN" gen-model "$tmp/m" --preset "$preset" --dtype "$dtype" "$tie" --seed 7 --force >/dev/null
    for prompt in 11 3,141,59,26,5,35,89; do
      echo "== $preset $dtype $tie prompt=$prompt"
      "$LD_BIN" run --model "$tmp/m" --tokens "$prompt" --decode 3 --payload full \
                    --probes "$tmp/p.jsonl" --quiet >/dev/null
      if ! "$LD_PYTHON" "$here/qwen3_oracle.py" "$tmp/m" "$tmp/p.jsonl" --require-all; then
        fail=1
      fi
    done
  done
done
exit $fail

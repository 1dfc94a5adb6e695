#!/usr/bin/env bash
# make demo: generate the tiny model, run the fp32 reference and a candidate with a real kernel bug
# (q/k RMSNorm taken over 16-element blocks instead of the whole head, at layer 2), compare them,
# print the terminal report and write an HTML report. The candidate is the CUDA path when a GPU is
# present, otherwise the reference emulating a bf16 kernel set (the numerics of a correct bf16
# implementation, plus the bug).
set -euo pipefail
build=${1:-build}
ld="$build/src/cli/layerdiff"
out="$build/demo"
rm -rf "$out"
mkdir -p "$out"
prompt="The quick brown fox jumps"  # encoded with the checkpoint's tokenizer.json
bug="qk_norm_block@2=16"

# run ARGS...: a forward pass; its stdout (the argmax token of the prefill, then of each decode
# step) gets a label; stderr shows the tokens' text
run() {
  local ids
  ids=$("$ld" run "$@") || return
  echo "   argmax tokens (prefill, then each decode step): $ids"
}

echo "== 1. a random Qwen3 checkpoint with the tiny preset's shapes (head_dim != hidden/heads, GQA 2:1)"
"$ld" gen-model "$out/model" --preset tiny --seed 1

echo "== 2. the fp32 reference: prefill of \"$prompt\" + 3 decode steps, every intermediate probed"
run --model "$out/model" --prompt "$prompt" --decode 3 --payload full --probes "$out/ref.jsonl"

echo "== 3. the candidate, with the bug $bug"
if run --model "$out/model" --backend cuda --prompt "$prompt" --follow "$out/ref.jsonl" \
       --payload full --inject "$bug" --probes "$out/cand.jsonl" 2>"$out/cuda.err"; then
  echo "   (candidate: the CUDA path)"
else
  # Why CUDA could not run is in cuda.err (driver versions and the like); the user needs less.
  if grep -q "no usable CUDA device\|built without CUDA" "$out/cuda.err"; then
    echo "   no GPU found, using the emulated bf16 candidate (the reference rounding as bf16 does)"
  else
    echo "   the CUDA candidate failed ($out/cuda.err), using the emulated bf16 candidate"
  fi
  run --model "$out/model" --emulate bf16 --prompt "$prompt" --follow "$out/ref.jsonl" \
      --payload full --inject "$bug" --probes "$out/cand.jsonl"
fi

echo "== 4. compare"
set +e
"$ld" compare "$out/ref.jsonl" "$out/cand.jsonl" --html "$out/report.html" \
      --json "$out/report.json" --md "$out/report.md" --tokenizer "$out/model/tokenizer.json"
rc=$?
set -e
case $rc in
  1) echo; echo "demo: the first divergence is named above (exit 1 = divergence found, as expected)";;
  0) echo; echo "demo: no divergence found: unexpected, the candidate carries a bug" >&2; exit 1;;
  *) echo "demo: compare failed with exit code $rc" >&2; exit "$rc";;
esac
echo "demo: HTML report: $(cd "$out" && pwd)/report.html"

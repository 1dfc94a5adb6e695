#!/usr/bin/env bash
# A walk through layerdiff in one script: generate a model, run the reference and two candidates
# (an honest bf16 one and one with a bug), compare, inspect, extract a tensor, calibrate a noise
# floor and attribute the error to its op. Usage: examples/walkthrough.sh [path/to/layerdiff]
set -euo pipefail
L=${1:-build/src/cli/layerdiff}
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
P=17,3,250,41,9,128,77
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
diverges() { # runs a compare that must find a divergence (exit 1)
  printf '\n\033[1m$ %s\033[0m\n' "$*"
  local rc=0
  "$@" || rc=$?
  [[ $rc == 1 ]] || { echo "walkthrough: expected a divergence (exit 1), got exit $rc" >&2; exit 1; }
}

step "$L" gen-model "$w/m" --preset tiny
step "$L" run --model "$w/m" --tokens $P --decode 3 --payload full --probes "$w/ref.jsonl"
# An honest bf16 implementation: within tolerance everywhere.
step "$L" run --model "$w/m" --tokens $P --follow "$w/ref.jsonl" --emulate bf16 --payload full \
     --probes "$w/bf16.jsonl"
step "$L" compare "$w/ref.jsonl" "$w/bf16.jsonl" --brief
# The same with a q/k norm over 16-element blocks at layer 2: named exactly.
step "$L" run --model "$w/m" --tokens $P --follow "$w/ref.jsonl" --emulate bf16 --payload full \
     --inject qk_norm_block@2=16 --probes "$w/bug.jsonl"
diverges "$L" compare "$w/ref.jsonl" "$w/bug.jsonl" --brief --json "$w/r.json"
step "$L" inspect "$w/bug.jsonl" --summary
step "$L" extract "$w/bug.jsonl" S0.L2.q_norm --npy "$w/q_norm.npy"
# A subtle bug the fixed bf16 tolerance misses; the noise floor and op-local replay do not.
step "$L" calibrate --model "$w/m" --tokens $P --decode 3 --dtype bf16 -o "$w/floor.json"
step "$L" run --model "$w/m" --tokens $P --follow "$w/ref.jsonl" --emulate bf16 --payload full \
     --inject rmsnorm_eps@0=1e-5 --probes "$w/subtle.jsonl"
diverges "$L" compare "$w/ref.jsonl" "$w/subtle.jsonl" --brief --floor "$w/floor.json" --model "$w/m"
echo
echo "walkthrough: done"

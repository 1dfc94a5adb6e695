#!/usr/bin/env bash
# The reference is bit-identical run to run and for 1 or 2 OpenMP threads: every probe record (full
# payloads, so every bit of every tensor) must be byte-identical. Only the header may differ (its
# time stamp and thread count). Also covers the emulated bf16 path.
set -euo pipefail
: "${LD_BIN:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$LD_BIN" gen-model "$tmp/m" --preset small --seed 3 >/dev/null
# A prompt long enough that the blocked matmul splits rows and tokens across both threads.
prompt=$(seq -s, 1 70)
fail=0
for emulate in "" "--emulate bf16"; do
  for run in a b c; do
    threads=2; [[ $run == c ]] && threads=1
    # shellcheck disable=SC2086
    "$LD_BIN" run --model "$tmp/m" --tokens "$prompt" --decode 3 --payload full $emulate \
                  --threads $threads --probes "$tmp/$run.jsonl" --quiet >"$tmp/$run.tokens"
    tail -n +2 "$tmp/$run.jsonl" >"$tmp/$run.body"
  done
  for run in b c; do
    if ! cmp -s "$tmp/a.body" "$tmp/$run.body" || ! cmp -s "$tmp/a.tokens" "$tmp/$run.tokens"; then
      echo "FAIL: run $run (${emulate:-reference}) differs from run a:"
      cmp "$tmp/a.body" "$tmp/$run.body" || true
      fail=1
    fi
  done
  n=$(wc -l <"$tmp/a.body")
  echo "${emulate:-reference}: $n records identical across 3 runs (2, 2 and 1 threads)"
done
exit $fail

#!/usr/bin/env bash
# The reference is bit-identical run to run and for 1 or 2 OpenMP threads: every probe record (full
# payloads, so every bit of every tensor) must be byte-identical. Only the header may differ (its
# time stamp and thread count). Also covers the emulated bf16 path. And a run that does not probe
# logits (so computes only the last row of them in prefill) decodes the same tokens and writes the
# same bytes for every other probe.
set -euo pipefail
: "${LD_BIN:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$LD_BIN" gen-model "$tmp/m" --preset small --seed 3 >/dev/null
# A prompt long enough that the blocked matmul splits rows and tokens across both threads.
prompt=$(seq -s, 1 70)
no_logits=embed,attn_norm,q_proj,k_proj,v_proj,q_norm,k_norm,q_rope,k_rope,attn_out,o_proj
no_logits+=,attn_residual,mlp_norm,gate_proj,up_proj,mlp_act,down_proj,layer_out,final_norm
# The end record without its probe count and last key.
end_tokens() { tail -n 1 "$1" | sed 's/"probes":[0-9]*,//; s/"last_key":"[^"]*"//'; }
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
  # shellcheck disable=SC2086
  "$LD_BIN" run --model "$tmp/m" --tokens "$prompt" --decode 3 --payload full $emulate \
                --tags "$no_logits" --probes "$tmp/d.jsonl" --quiet >"$tmp/d.tokens"
  # Records are numbered, so the numbers after the first logits record differ: drop them.
  grep -v '"tag":"logits"' "$tmp/a.body" | grep -v '"record":"end"' |
    sed 's/"index":[0-9]*,//' >"$tmp/a.nologits"
  tail -n +2 "$tmp/d.jsonl" | grep -v '"record":"end"' | sed 's/"index":[0-9]*,//' >"$tmp/d.nologits"
  [[ -s "$tmp/d.nologits" ]] || fail=1
  if grep -q '"tag":"logits"' "$tmp/d.jsonl" || ! cmp -s "$tmp/a.nologits" "$tmp/d.nologits" ||
     ! cmp -s "$tmp/a.tokens" "$tmp/d.tokens" ||
     [[ "$(end_tokens "$tmp/a.body")" != "$(end_tokens "$tmp/d.jsonl")" ]]; then
    echo "FAIL: without logits probed (${emulate:-reference}) the tokens or other probes differ"
    fail=1
  fi
  n=$(wc -l <"$tmp/a.body")
  echo "${emulate:-reference}: $n records identical across 3 runs (2, 2 and 1 threads)"
done
exit $fail

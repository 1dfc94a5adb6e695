#!/usr/bin/env bash
# Every matmul kernel path this CPU runs (layerdiff run --list-kernels) writes the same probe
# records, bit for bit (full payloads), as the generic path: small preset, bf16, f16 and f32
# checkpoints, a 70-token prompt (the blocked kernels) and 3 decode steps (the direct ones).
set -euo pipefail
: "${LD_BIN:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mapfile -t paths < <("$LD_BIN" run --list-kernels | awk '/runs on this CPU/ {print $1}')
echo "paths this CPU runs: ${paths[*]}"
prompt=$(seq -s, 3 72)
fail=0
for dtype in bf16 f16 f32; do
  "$LD_BIN" gen-model "$tmp/m" --preset small --dtype "$dtype" --seed 5 --force >/dev/null
  for p in "${paths[@]}"; do
    LD_REF_KERNEL=$p "$LD_BIN" run --model "$tmp/m" --tokens "$prompt" --decode 3 --payload full \
                     --probes "$tmp/$p.jsonl" --quiet >"$tmp/$p.tokens"
    grep -q "\"kernel\":\"$p\"" <(head -n 1 "$tmp/$p.jsonl") ||
      { echo "FAIL: $dtype: the header of the $p run does not name its kernel path"; fail=1; }
    tail -n +2 "$tmp/$p.jsonl" >"$tmp/$p.body"
  done
  for p in "${paths[@]}"; do
    if ! cmp -s "$tmp/generic.body" "$tmp/$p.body" ||
       ! cmp -s "$tmp/generic.tokens" "$tmp/$p.tokens"; then
      echo "FAIL: $dtype: the $p path's probes differ from the generic path's:"
      cmp "$tmp/generic.body" "$tmp/$p.body" || true
      fail=1
    fi
  done
  echo "$dtype: ${#paths[@]} paths, identical records: $([[ $fail == 0 ]] && echo yes || echo no)"
done
exit $fail

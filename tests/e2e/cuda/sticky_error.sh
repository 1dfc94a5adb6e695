#!/usr/bin/env bash
# A sticky device error (an illegal memory access, provoked with LAYERDIFF_CUDA_TRAP_AFTER right
# after a given probe) ends the run with a non-zero exit, a one-line message naming the CUDA call,
# file and line where it surfaced, and a probe file that is complete up to that probe: every
# record intact, and an end record with status "error" whose last_key is that probe. Needs a GPU
# (exit 77).
set -uo pipefail
# ld_need_cuda MODEL: exit 77 without a usable CUDA device (tests/e2e/lib.sh)
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
: "${LD_BIN:?}" "${LD_PYTHON:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$LD_BIN" gen-model "$tmp/m" --preset tiny --seed 3 >/dev/null || exit 1
ld_need_cuda "$tmp/m"
fail=0
for key in S0.L1.o_proj S1.L0.q_norm S0.logits; do
  msg=$(LAYERDIFF_CUDA_TRAP_AFTER=$key "$LD_BIN" run --model "$tmp/m" --tokens 5,6,7 --decode 2 \
        --backend cuda --probes "$tmp/p.jsonl" --quiet 2>&1 >/dev/null)
  rc=$?
  echo "trap after $key: exit $rc: $msg"
  if [[ $rc -eq 0 ]]; then
    echo "FAIL: the run succeeded"
    fail=1
  fi
  if [[ $(wc -l <<<"$msg") -ne 1 || $msg != *"cudaError"* ]]; then
    echo "FAIL: expected one line naming the CUDA call"
    fail=1
  fi
  "$LD_PYTHON" - "$tmp/p.jsonl" "$key" <<'PY' || fail=1
import json, sys
recs = [json.loads(line) for line in open(sys.argv[1])]
end = recs[-1]
if end.get("record") != "end" or end.get("status") != "error":
    print(f"FAIL: last record is {end}"); sys.exit(1)
if end.get("last_key") != sys.argv[2]:
    print(f"FAIL: last_key {end.get('last_key')!r}, expected {sys.argv[2]!r}"); sys.exit(1)
probes = [r for r in recs if r["record"] == "probe"]
if end.get("probes") != len(probes):
    print(f"FAIL: end says {end.get('probes')} probes, the file has {len(probes)}"); sys.exit(1)
print(f"ok: {len(probes)} records intact, end: {end['message']}")
PY
done
exit $fail

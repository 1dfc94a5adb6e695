#!/usr/bin/env bash
# The CUDA path is deterministic and its three ways of running agree bit for bit: decode steps
# replayed from a CUDA graph (probes off), the same steps on the stream (LAYERDIFF_CUDA_GRAPH=0),
# and with probes on must produce the same tokens, also with every kernel waiting for the one
# before it to end (LAYERDIFF_CUDA_PDL=0: no programmatic dependent launch); two runs with full
# payloads must write byte-identical probe records, and so must a run without programmatic
# launches; with a fault that puts a memset node in the graph (q_proj_zero), graph and stream
# decode the same tokens; a filtered run (--tags, --layers, --steps) writes exactly the keys
# asked for, with the same values. Needs a GPU (exit 77).
set -uo pipefail
# ld_need_cuda MODEL: exit 77 without a usable CUDA device (tests/e2e/lib.sh)
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
: "${LD_BIN:?}" "${LD_PYTHON:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$LD_BIN" gen-model "$tmp/m" --preset small --seed 5 >/dev/null || exit 1
ld_need_cuda "$tmp/m"
prompt=$(seq -s, 7 7 140)
run() { "$LD_BIN" run --model "$tmp/m" --tokens "$prompt" --decode 12 --backend cuda --quiet "$@"; }
fail=0
graph=$(run) || fail=1
stream=$(LAYERDIFF_CUDA_GRAPH=0 run) || fail=1
probed=$(run --probes "$tmp/a.jsonl" --payload full) || fail=1
run --probes "$tmp/b.jsonl" --payload full >/dev/null || fail=1
nopdl=$(LAYERDIFF_CUDA_PDL=0 run) || fail=1
LAYERDIFF_CUDA_PDL=0 run --probes "$tmp/c.jsonl" --payload full >/dev/null || fail=1
echo "graph:  $graph"
echo "stream: $stream"
echo "probed: $probed"
echo "graph without programmatic launch: $nopdl"
if [[ $graph != "$stream" || $graph != "$probed" || $graph != "$nopdl" ]]; then
  echo "FAIL: graph, stream, probed and non-programmatic runs decode different tokens"
  fail=1
fi
# A fault inside the graph: q_proj_zero captures a memset node in front of the q/k/v GEMV, a
# programmatic launch (a capture the driver may refuse: captured again without them, same bits).
fault_graph=$(run --inject q_proj_zero@1) || fail=1
fault_stream=$(LAYERDIFF_CUDA_GRAPH=0 run --inject q_proj_zero@1) || fail=1
echo "q_proj_zero@1, graph:  $fault_graph"
echo "q_proj_zero@1, stream: $fault_stream"
if [[ $fault_graph != "$fault_stream" || $fault_graph == "$graph" ]]; then
  echo "FAIL: with q_proj_zero@1 the graph and the stream decode different tokens, or the same" \
    "as without the fault"
  fail=1
fi
if ! cmp -s <(tail -n +2 "$tmp/a.jsonl") <(tail -n +2 "$tmp/b.jsonl"); then
  echo "FAIL: two identical runs wrote different probe records"
  cmp <(tail -n +2 "$tmp/a.jsonl") <(tail -n +2 "$tmp/b.jsonl")
  fail=1
fi
if ! cmp -s <(tail -n +2 "$tmp/a.jsonl") <(tail -n +2 "$tmp/c.jsonl"); then
  echo "FAIL: the probe records change without programmatic launches (LAYERDIFF_CUDA_PDL=0)"
  cmp <(tail -n +2 "$tmp/a.jsonl") <(tail -n +2 "$tmp/c.jsonl")
  fail=1
fi
run --probes "$tmp/f.jsonl" --payload full --tags 'q_norm,k_rope,logits' --layers 2 --steps 0,3 \
  >/dev/null || fail=1
"$LD_PYTHON" - "$tmp/a.jsonl" "$tmp/f.jsonl" <<'PY' || fail=1
import sys
sys.path.insert(0, __import__("os").environ["LD_SRC"] + "/tests/python")
from ldprobes import Stream
a, f = Stream(sys.argv[1]), Stream(sys.argv[2])
want = [(p["step"], p.get("layer"), p["tag"]) for p in a.probes
        if p["step"] in (0, 3) and p["tag"] in ("q_norm", "k_rope", "logits")
        and p.get("layer") in (None, 2)]
got = [(p["step"], p.get("layer"), p["tag"]) for p in f.probes]
if got != want:
    print(f"FAIL: filtered run wrote {got}, expected {want}")
    sys.exit(1)
for k in got:
    if a.by_key[k]["data"]["b64"] != f.by_key[k]["data"]["b64"]:
        print(f"FAIL: {k} differs between the full and the filtered run")
        sys.exit(1)
print(f"filtered run: {len(got)} keys, identical to the full run's")
PY
exit $fail

#!/usr/bin/env bash
# scripts/gate_ratios.py, which puts scripts/gpu_check.sh's "ours against transformers'" in a line:
# the median, p90 and largest new/old against hand-computed ones on reports written here, its
# verdicts (median over the limit, new NaN/Inf disagreements, NaN errors, nothing with a ratio)
# and its refusals, then a real --baseline report of runs of a generated model: the candidate
# against itself as the baseline (every ratio 1) and an honest bf16 variant against another.
set -uo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
: "${LD_SRC:?}" "${LD_PYTHON:?}" "${LD_BIN:?}"
R=("$LD_PYTHON" "$LD_SRC/scripts/gate_ratios.py")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check_timeout=120

probe() { # KEY STATUS RATIO [OLD_NONFINITE NEW_NONFINITE]
  printf '{"key":"%s","step":0,"layer":null,"tag":"x","status":"%s","ratio":%s,' "$1" "$2" "$3"
  printf '"old_rel_l2":0.01,"new_rel_l2":0.01,"old_nonfinite":%s,"new_nonfinite":%s}' \
    "${4:-0}" "${5:-0}"
}
report() { # FILE PROBE...: a report whose baseline object holds these probes
  local f=$1 sep=
  shift
  { printf '{"verdict":"pass","baseline":{"factor":1,"probes":['
    for p in "$@"; do printf '%s%s' "$sep" "$p"; sep=,; done
    printf ']}}\n'; } >"$f"
}

# 0.5 0.8 0.9 1.2 2.0 (and one unjudged): median 0.9; p90 at 0.9 x 4 = 3.6, 1.2 + 0.6 x 0.8 = 1.68.
report "$tmp/five.json" "$(probe S0.embed improved 0.5)" "$(probe S0.L0.q_proj within 1.2)" \
  "$(probe S0.L1.o_proj regressed 2.0)" "$(probe S0.L0.k_proj improved 0.8)" \
  "$(probe S1.logits unjudged null)" "$(probe S0.L0.v_proj improved 0.9)"
want="cuda/hf rel_l2 over 5 probes: median 0.9, p90 1.68, max 2 at S0.L1.o_proj; over 1 at 2"
check "five probes: median, p90, max and where" 0 "$want (40.0 %); 1 unjudged" \
  "${R[@]}" "$tmp/five.json" --label cuda/hf
check "  ... over --max-median 0.85" 1 "the median is over 0.85" \
  "${R[@]}" "$tmp/five.json" --max-median 0.85
# An even count: the median between the middle two; at exactly 1 it passes.
report "$tmp/even.json" "$(probe S0.a improved 0.5)" "$(probe S0.b regressed 1.5)"
check "two probes: median 1 passes" 0 "median 1, p90 1.4, max 1.5 at S0.b" \
  "${R[@]}" "$tmp/even.json"
report "$tmp/over.json" "$(probe S0.a improved 0.5)" "$(probe S0.b regressed 1.7)"
check "two probes: median 1.1 fails" 1 "the median is over 1" "${R[@]}" "$tmp/over.json"
# An infinite ratio (the baseline's error was 0): the max, never a NaN from inf - inf.
report "$tmp/inf.json" "$(probe S0.a within 0.5)" "$(probe S0.b regressed '"Infinity"')" \
  "$(probe S0.c within 0.7)" "$(probe S0.d regressed '"Infinity"')" "$(probe S0.e within 0.6)"
check "infinite ratios" 0 "median 0.7, p90 inf, max inf at S0.b; over 1 at 2 (40.0 %)" \
  "${R[@]}" "$tmp/inf.json"
# More NaN/Inf disagreements than the baseline fail, whatever the median.
report "$tmp/nan.json" "$(probe S0.a improved 0.5)" "$(probe S0.L3.q_norm regressed 0.6 0 7)"
check "new NaN/Inf disagreements fail" 1 \
  "more NaN/Inf disagreements than the baseline at 1: S0.L3.q_norm" "${R[@]}" "$tmp/nan.json"
# NaN ratios (an error is NaN): counted apart, outside the median; where the gate says regressed
# (only the candidate's error is NaN) the run fails, where both are NaN (within) it does not.
report "$tmp/nanr.json" "$(probe S0.a within 0.5)" "$(probe S0.b within '"NaN"')" \
  "$(probe S0.c improved 0.7)"
check "a NaN ratio, both errors NaN" 0 \
  "over 2 probes: median 0.6, p90 0.68, max 0.7 at S0.c; over 1 at 0 (0.0 %); 1 without a ratio" \
  "${R[@]}" "$tmp/nanr.json"
report "$tmp/lost.json" "$(probe S0.a within 0.5)" "$(probe S0.L2.v_proj regressed '"NaN"')"
check "a NaN error only the candidate has fails" 1 \
  "a NaN error where the baseline's is a number at 1: S0.L2.v_proj" "${R[@]}" "$tmp/lost.json"
report "$tmp/none.json" "$(probe S0.a unjudged null)" "$(probe S0.b within '"NaN"')"
check "nothing with a ratio fails" 1 "no probe with a ratio (1 judged without one, 1 unjudged)" \
  "${R[@]}" "$tmp/none.json"

# Refusals, naming the file.
echo '{"verdict":"pass","probes":[]}' >"$tmp/nogate.json"
check "a report without --baseline" 2 "$tmp/nogate.json: no \"baseline\" object" \
  "${R[@]}" "$tmp/nogate.json"
echo '{"baseline":' >"$tmp/cut.json"
check "not JSON" 2 "$tmp/cut.json: not JSON" "${R[@]}" "$tmp/cut.json"
check "no such file" 2 "$tmp/absent.json: cannot read it" "${R[@]}" "$tmp/absent.json"
report "$tmp/null.json" "$(probe S0.a within null)"
check "a judged probe without a ratio" 2 "baseline.probes[0] (S0.a).ratio is None, not a number" \
  "${R[@]}" "$tmp/null.json"
report "$tmp/status.json" "$(probe S0.a maybe 1)"
check "an unknown status" 2 "status 'maybe'" "${R[@]}" "$tmp/status.json"
check "--max-median 0" 2 "--max-median must be a positive number" \
  "${R[@]}" "$tmp/five.json" --max-median 0

# Real reports: the tiny preset, 7 tokens + 3 decode steps (284 probes), the bf16 emulation
# rounded to nearest even and with stochastic rounding.
M=$tmp/tiny
"$LD_BIN" gen-model "$M" --preset tiny --seed 5 >/dev/null || { echo "FAIL gen-model"; exit 1; }
run() {
  "$LD_BIN" run --model "$M" --tokens 1,2,3,4,5,6,7 --decode 3 --payload full --quiet "$@" \
    >/dev/null
}
if ! { run --probes "$tmp/ref.jsonl" &&
       run --emulate bf16 --follow "$tmp/ref.jsonl" --probes "$tmp/a.jsonl" &&
       run --emulate bf16 --sr-seed 1 --follow "$tmp/ref.jsonl" --probes "$tmp/b.jsonl"; }; then
  echo "FAIL the runs of the tiny preset"
  exit 1
fi
"$LD_BIN" compare "$tmp/ref.jsonl" "$tmp/a.jsonl" --json "$tmp/a.json" --quiet --fail-on none
"$LD_BIN" compare "$tmp/ref.jsonl" "$tmp/a.jsonl" --baseline "$tmp/a.json" --regress-factor 1 \
  --regress-slack 0 --fail-on none --json "$tmp/self.json" --quiet
check "a candidate against itself: every ratio 1" 0 \
  "rel_l2 over 284 probes: median 1, p90 1, max 1 at S" \
  "${R[@]}" "$tmp/self.json"
check "  ... none over 1" 0 "; over 1 at 0 (0.0 %)" "${R[@]}" "$tmp/self.json"
"$LD_BIN" compare "$tmp/ref.jsonl" "$tmp/b.jsonl" --baseline "$tmp/a.json" --regress-factor 1 \
  --regress-slack 0 --fail-on none --json "$tmp/sr.json" --quiet
# Its figures, recomputed here from the report's own errors (new/old; 1 where both are 0).
want=$("$LD_PYTHON" - "$tmp/sr.json" <<'PY'
import json, sys
ps = [p for p in json.load(open(sys.argv[1]))["baseline"]["probes"] if p["status"] != "unjudged"]
r = sorted(p["new_rel_l2"] / p["old_rel_l2"] if p["old_rel_l2"] else
           1.0 if p["new_rel_l2"] == 0 else float("inf") for p in ps)
def q(p):  # linear interpolation between the order statistics around p * (n - 1)
    i, f = divmod(p * (len(r) - 1), 1)
    i = int(i)
    return r[i] + f * (r[min(i + 1, len(r) - 1)] - r[i])
print(int(q(0.5) > 1), f"over {len(r)} probes: median {q(0.5):.3g}, p90 {q(0.9):.3g}, "
      f"max {r[-1]:.3g}")
PY
)
# stochastic rounding's error is the larger: the median is over 1 and the script says so (exit 1)
check "an honest bf16 variant against another: ${want#* }" "${want%% *}" "${want#* }" \
  "${R[@]}" "$tmp/sr.json"
exit $((fails > 0))

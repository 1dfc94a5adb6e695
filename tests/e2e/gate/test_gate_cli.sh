#!/usr/bin/env bash
# 'layerdiff compare --baseline' and '--exact' on real runs of a generated tiny model: a fault
# injected at one layer regresses against the honest candidate's baseline, first at the injected
# key; honest candidates (the same one, stochastic-rounding variants) pass; baselines of another
# tag set, model or input are refused (exit 2); --update-baseline writes a baseline only for a
# passing candidate; every report validates against its schema. --exact: two reference runs and
# different thread counts are bit-identical, another emulated dtype or a fault changes at the
# first key it should.
set -uo pipefail
: "${LD_BIN:?}" "${LD_PYTHON:?}" "${LD_SRC:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
L=$LD_BIN
P=1,2,3,4,5,6,7

# check_rc NAME EXPECTED_RC ACTUAL_RC [TEXT FILE]: the exit code, and TEXT in FILE
# (tests/e2e/lib.sh); a wrong exit code shows the ends of $tmp/out and $tmp/err.
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
check_log=("$tmp/out" "$tmp/err")
# cmp_ ARGS...: layerdiff compare, stdout to $tmp/out, stderr to $tmp/err; sets rc.
cmp_() {
  "$L" compare "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
}
# json_is FILE PYTHON-EXPR: the expression holds for the JSON document d.
json_is() {
  "$LD_PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"
}
# valid SCHEMA FILE: FILE validates against schemas/SCHEMA.
valid() {
  "$LD_PYTHON" - "$LD_SRC/schemas/$1" "$2" <<'PY'
import json, sys
from jsonschema import Draft202012Validator
schema, doc = (json.load(open(p)) for p in sys.argv[1:3])
Draft202012Validator.check_schema(schema)
errors = list(Draft202012Validator(schema).iter_errors(doc))
for e in errors[:5]:
    print("schema:", list(e.absolute_path), e.message[:300])
sys.exit(1 if errors else 0)
PY
}
run() { # run NAME ARGS...: a probe stream $tmp/NAME.jsonl of the tiny model
  local name=$1
  shift
  "$L" run --model "$tmp/m" --tokens $P --payload full --quiet --probes "$tmp/$name.jsonl" "$@" \
    >/dev/null || { echo "FAIL: layerdiff run $name $*"; exit 1; }
}

"$L" gen-model "$tmp/m" --preset tiny >/dev/null || exit 1
run ref --decode 3
run ref2 --decode 3
run ref_t1 --decode 3 --threads 1
run ref_t2 --decode 3 --threads 2
run cand --emulate bf16 --follow "$tmp/ref.jsonl"
run sr1 --emulate bf16 --sr-seed 1 --follow "$tmp/ref.jsonl"
run sr2 --emulate bf16 --sr-seed 2 --follow "$tmp/ref.jsonl"
run f16 --emulate f16 --follow "$tmp/ref.jsonl"
run fault --emulate bf16 --inject qk_norm_block@2=16 --follow "$tmp/ref.jsonl"
run nan --emulate bf16 --inject nan=mlp_act@1 --follow "$tmp/ref.jsonl"

# ---- the baseline: the honest candidate's report ----
cmp_ "$tmp/ref.jsonl" "$tmp/cand.jsonl" --json "$tmp/base.json" --quiet
check_rc "the honest candidate passes; its --json report is the baseline" 0 $rc
valid report.schema.json "$tmp/base.json"
check_rc "the baseline validates against report.schema.json" 0 $?

cmp_ "$tmp/ref.jsonl" "$tmp/cand.jsonl" --baseline "$tmp/base.json" --json "$tmp/same.json"
check_rc "honest candidate against its own baseline: exit 0" 0 $rc \
  "0 of 284 probes regressed, 0 improved, 284 within the factor" "$tmp/out"
json_is "$tmp/same.json" 'd["baseline"]["regressed"] == 0 and all(abs(p["ratio"] - 1) < 1e-6 for p in d["baseline"]["probes"])'
check_rc "  every ratio is 1" 0 $?
for s in sr1 sr2; do
  cmp_ "$tmp/ref.jsonl" "$tmp/$s.jsonl" --baseline "$tmp/base.json" --json "$tmp/$s.json"
  check_rc "honest stochastic-rounding variant $s: within the default factor" 0 $rc \
    "0 of 284 probes regressed" "$tmp/out"
done
json_is "$tmp/sr1.json" 'max(p["ratio"] for p in d["baseline"]["probes"]) > 1.5'
check_rc "  (the variant does move errors: its largest growth is over 1.5x)" 0 $?
cmp_ "$tmp/ref.jsonl" "$tmp/sr1.jsonl" --baseline "$tmp/base.json" --regress-factor 1.5
check_rc "  ... so a factor of 1.5 would call it a regression" 1 $rc \
  "verdict: REGRESSION" "$tmp/out"

# ---- a fault at layer 2 ----
cmp_ "$tmp/ref.jsonl" "$tmp/fault.jsonl" --baseline "$tmp/base.json" --json "$tmp/fault.json" \
  --md "$tmp/fault.md" --html "$tmp/fault.html" --junit "$tmp/fault.xml"
check_rc "a fault at layer 2 against the honest baseline: exit 1" 1 $rc \
  "First regression in execution order: S0.L2.q_norm (layer 2, q_norm, step 0)" "$tmp/out"
grep -qF "S0.L2.q_norm" "$tmp/out" && grep -qF "<- first regression" "$tmp/out"
check_rc "  the growth table calls the first regression out" 0 $?
json_is "$tmp/fault.json" 'd["baseline"]["first_regressed"]["key"] == "S0.L2.q_norm" and d["baseline"]["first_regressed"]["ratio"] > 3 and d["baseline"]["regressed"] > 0'
check_rc "  JSON: first_regressed is S0.L2.q_norm" 0 $?
json_is "$tmp/fault.json" '[p["ratio"] for p in d["baseline"]["probes"] if p["status"] != "unjudged"] == sorted((p["ratio"] for p in d["baseline"]["probes"] if p["status"] != "unjudged"), reverse=True)'
check_rc "  JSON: probes sorted by growth" 0 $?
json_is "$tmp/fault.json" 'all(p["status"] == "within" for p in d["baseline"]["probes"] if p["key"].startswith("S0.L0.") or p["key"].startswith("S0.L1.") or p["key"] == "S0.embed")'
check_rc "  JSON: every probe before layer 2 is within the factor" 0 $?
valid report.schema.json "$tmp/fault.json"
check_rc "  JSON validates against report.schema.json" 0 $?
check_rc "  Markdown has the gate section" 0 0 "#### Regression gate: ❌" "$tmp/fault.md"
check_rc "  HTML has the gate section" 0 0 "<h2>Regression gate</h2>" "$tmp/fault.html"
check_rc "  the table has a vs_base column" 0 0 "vs_base" "$tmp/out"
cmp_ "$tmp/ref.jsonl" "$tmp/fault.jsonl" --baseline "$tmp/base.json" --fail-on regression
check_rc "  --fail-on regression alone: still exit 1" 1 $rc
cmp_ "$tmp/ref.jsonl" "$tmp/fault.jsonl" --baseline "$tmp/base.json" --fail-on incomplete
check_rc "  --fail-on without regression (nor divergence): exit 0" 0 $rc

cmp_ "$tmp/ref.jsonl" "$tmp/nan.jsonl" --baseline "$tmp/base.json" --json "$tmp/nan.json"
check_rc "a NaN at layer 1: regression by NaN/Inf" 1 $rc "REGRESSED (new NaN/Inf)" "$tmp/out"
json_is "$tmp/nan.json" 'd["baseline"]["first_regressed"]["key"] == "S0.L1.mlp_act" and d["baseline"]["first_regressed"]["reason"] == "nonfinite"'
check_rc "  first regression S0.L1.mlp_act, reason nonfinite" 0 $?

# ---- the fault's report as a baseline: the honest candidate improves ----
cmp_ "$tmp/ref.jsonl" "$tmp/fault.jsonl" --json "$tmp/fault_base.json" --quiet
cmp_ "$tmp/ref.jsonl" "$tmp/cand.jsonl" --baseline "$tmp/fault_base.json" --json "$tmp/fixed.json"
check_rc "the fix against the broken baseline: exit 0, improvements listed" 0 $rc \
  "improved (most first)" "$tmp/out"
json_is "$tmp/fixed.json" 'd["baseline"]["improved"] > 0 and d["baseline"]["regressed"] == 0'
check_rc "  JSON: improved > 0" 0 $?

# ---- baselines that do not fit ----
run ref_qk --decode 3 --tags 'q_*,k_*'
run cand_qk --emulate bf16 --tags 'q_*,k_*' --follow "$tmp/ref_qk.jsonl"
cmp_ "$tmp/ref_qk.jsonl" "$tmp/cand_qk.jsonl" --baseline "$tmp/base.json"
check_rc "a baseline with another tag set: exit 2" 2 $rc "covers other probes than this comparison" "$tmp/err"
check_rc "  the reason names the tags" 0 0 "tags embed, attn_norm" "$tmp/err"
"$L" gen-model "$tmp/m2" --preset tiny --seed 7 >/dev/null
"$L" run --model "$tmp/m2" --tokens $P --decode 3 --payload full --quiet --probes "$tmp/ref_m2.jsonl" >/dev/null
"$L" run --model "$tmp/m2" --tokens $P --payload full --quiet --emulate bf16 \
  --follow "$tmp/ref_m2.jsonl" --probes "$tmp/cand_m2.jsonl" >/dev/null
cmp_ "$tmp/ref_m2.jsonl" "$tmp/cand_m2.jsonl" --baseline "$tmp/base.json"
check_rc "a baseline of another model: exit 2" 2 $rc "was made on another model: model.fingerprint" "$tmp/err"
"$L" gen-model "$tmp/m3" --preset small >/dev/null
"$L" run --model "$tmp/m3" --tokens $P --decode 3 --payload full --quiet --probes "$tmp/ref_m3.jsonl" >/dev/null
"$L" run --model "$tmp/m3" --tokens $P --payload full --quiet --emulate bf16 \
  --follow "$tmp/ref_m3.jsonl" --probes "$tmp/cand_m3.jsonl" >/dev/null
cmp_ "$tmp/ref_m3.jsonl" "$tmp/cand_m3.jsonl" --baseline "$tmp/base.json"
check_rc "a baseline of another model config: exit 2" 2 $rc \
  "model.hidden_size is 64 there" "$tmp/err"
"$L" run --model "$tmp/m" --tokens 1,2,3,4,5,6,8 --decode 3 --payload full --quiet --probes "$tmp/ref_p.jsonl" >/dev/null
"$L" run --model "$tmp/m" --tokens 1,2,3,4,5,6,8 --payload full --quiet --emulate bf16 \
  --follow "$tmp/ref_p.jsonl" --probes "$tmp/cand_p.jsonl" >/dev/null
cmp_ "$tmp/ref_p.jsonl" "$tmp/cand_p.jsonl" --baseline "$tmp/base.json"
check_rc "a baseline of another prompt: exit 2" 2 $rc \
  "another input: prompt token at index 6 is 7 there and 8" "$tmp/err"
printf '{"format": "layerdiff-report", "version": 1, "reference": 3}' >"$tmp/junk.json"
cmp_ "$tmp/ref.jsonl" "$tmp/cand.jsonl" --baseline "$tmp/junk.json"
check_rc "a malformed baseline: exit 2 naming the file" 2 $rc "junk.json: reference, candidate: must be objects" "$tmp/err"
cmp_ "$tmp/ref.jsonl" "$tmp/cand.jsonl" --baseline "$tmp/none.json"
check_rc "a missing baseline: exit 2" 2 $rc "none.json" "$tmp/err"
cmp_ "$tmp/ref.jsonl" "$tmp/cand.jsonl" --baseline "$tmp/base.json" --regress-factor 0.9
check_rc "--regress-factor below 1: exit 2" 2 $rc "--regress-factor" "$tmp/err"
cmp_ "$tmp/ref.jsonl" "$tmp/cand.jsonl" --baseline "$tmp/base.json" --regress-slack -1
check_rc "--regress-slack below 0: exit 2" 2 $rc "--regress-slack" "$tmp/err"

# ---- refreshing the baseline deliberately ----
cmp_ "$tmp/ref.jsonl" "$tmp/sr1.jsonl" --baseline "$tmp/new_base.json" --update-baseline
check_rc "--update-baseline writes the baseline of a passing candidate" 0 $rc "baseline $tmp/new_base.json updated (284 probes)" "$tmp/out"
valid report.schema.json "$tmp/new_base.json" && json_is "$tmp/new_base.json" '"baseline" not in d and d["candidate"]["path"].endswith("sr1.jsonl")'
check_rc "  it is the candidate's plain JSON report" 0 $?
cp "$tmp/new_base.json" "$tmp/kept.json"
cmp_ "$tmp/ref.jsonl" "$tmp/fault.jsonl" --baseline "$tmp/new_base.json" --update-baseline
check_rc "--update-baseline refuses a failing candidate" 1 $rc \
  "not updating the baseline" "$tmp/err"
cmp -s "$tmp/new_base.json" "$tmp/kept.json"
check_rc "  and leaves the file alone" 0 $?
cmp_ "$tmp/ref.jsonl" "$tmp/cand.jsonl" --update-baseline
check_rc "--update-baseline without --baseline: exit 2" 2 $rc "needs --baseline" "$tmp/err"

# ---- the noise floor forgives growth an honest kernel set shows ----
"$L" calibrate --model "$tmp/m" --tokens $P --decode 3 --dtype bf16 -o "$tmp/floor.json" --quiet \
  >/dev/null 2>&1
check_rc "calibrate a bf16 noise floor" 0 $?
cmp_ "$tmp/ref.jsonl" "$tmp/sr1.jsonl" --baseline "$tmp/base.json" --regress-factor 1.5 \
  --floor "$tmp/floor.json" --json "$tmp/floor_gate.json"
check_rc "with --floor, an honest variant's growth over 1.5x stays under the floor: exit 0" 0 $rc \
  "grew over the factor but stay under the noise floor" "$tmp/out"
json_is "$tmp/floor_gate.json" 'd["baseline"]["floor"] and d["baseline"]["under_floor"] > 0 and d["baseline"]["regressed"] == 0'
check_rc "  JSON: under_floor > 0" 0 $?
cmp_ "$tmp/ref.jsonl" "$tmp/fault.jsonl" --baseline "$tmp/base.json" --floor "$tmp/floor.json"
check_rc "  ... while the fault still regresses at S0.L2.q_norm" 1 $rc \
  "First regression in execution order: S0.L2.q_norm" "$tmp/out"

# ---- --exact ----
cmp_ "$tmp/ref.jsonl" "$tmp/ref2.jsonl" --exact --json "$tmp/ex_same.json" --md "$tmp/ex_same.md"
check_rc "--exact on two runs of the reference: exit 0" 0 $rc "All 284 probes are bit-identical (284 by payload bytes" "$tmp/out"
valid exact.schema.json "$tmp/ex_same.json" && json_is "$tmp/ex_same.json" 'd["verdict"] == "identical" and d["changed"] == 0'
check_rc "  JSON validates against exact.schema.json" 0 $?
check_rc "  Markdown" 0 0 "✅ bit-identical (284 probes" "$tmp/ex_same.md"
cmp_ "$tmp/ref_t1.jsonl" "$tmp/ref_t2.jsonl" --exact
check_rc "--exact, reference with 1 vs 2 threads: still exit 0" 0 $rc "threads is 1 in old and 2 in new" "$tmp/out"
cmp_ "$tmp/cand.jsonl" "$tmp/f16.jsonl" --exact --json "$tmp/ex_dtype.json"
check_rc "--exact, emulated bf16 vs f16: exit 1 at the first key" 1 $rc "First change: S0.embed" "$tmp/out"
json_is "$tmp/ex_dtype.json" 'd["first_change"]["key"] == "S0.embed" and d["first_change"]["what"] == "dtype bf16 -> f16"'
check_rc "  JSON: first_change S0.embed, dtype bf16 -> f16" 0 $?
cmp_ "$tmp/cand.jsonl" "$tmp/fault.jsonl" --exact --json "$tmp/ex_fault.json"
check_rc "--exact, a fault at layer 2: exit 1 at S0.L2.q_norm" 1 $rc "First change: S0.L2.q_norm" "$tmp/out"
valid exact.schema.json "$tmp/ex_fault.json" && json_is "$tmp/ex_fault.json" 'd["first_change"]["key"] == "S0.L2.q_norm" and d["first_change"]["elements"]["changed"] > 0 and d["first_change"]["crc32"]["old"] != d["first_change"]["crc32"]["new"]'
check_rc "  JSON: first_change S0.L2.q_norm with its elements and crc32" 0 $?
"$L" run --model "$tmp/m" --tokens $P --decode 3 --quiet --probes "$tmp/stats1.jsonl" >/dev/null
"$L" run --model "$tmp/m" --tokens $P --decode 3 --quiet --threads 1 --probes "$tmp/stats2.jsonl" >/dev/null
cmp_ "$tmp/stats1.jsonl" "$tmp/stats2.jsonl" --exact
check_rc "--exact without payloads: exit 0, said so" 0 $rc "does not prove bit-exact" "$tmp/out"
head -n 40 "$tmp/ref2.jsonl" >"$tmp/cut.jsonl"
cmp_ "$tmp/ref.jsonl" "$tmp/cut.jsonl" --exact
check_rc "--exact against a stream cut short: exit 3" 3 $rc "INCOMPLETE" "$tmp/out"
cmp_ "$tmp/ref.jsonl" "$tmp/ref_p.jsonl" --exact
check_rc "--exact on different prompts: exit 2" 2 $rc "different inputs" "$tmp/err"
cmp_ "$tmp/ref.jsonl" "$tmp/ref2.jsonl" --exact --baseline "$tmp/base.json"
check_rc "--exact with --baseline: exit 2" 2 $rc "--exact checks bit-exactness only" "$tmp/err"
cmp_ "$tmp/ref.jsonl" "$tmp/ref2.jsonl" --exact --topk 3
check_rc "--exact with --topk (a numerical option): exit 2, named" 2 $rc "not with --topk" "$tmp/err"
cmp_ "$tmp/ref.jsonl" "$tmp/ref.jsonl" --exact --strict
check_rc "--exact --strict on one file given twice: exit 2" 2 $rc "are the same file" "$tmp/err"
cmp_ "$tmp/ref.jsonl" "$tmp/ref2.jsonl" --exact --max-line 100
check_rc "--exact --max-line 100: the limit holds, exit 2" 2 $rc "line longer than the 100-byte limit" "$tmp/err"
cmp_ --help
check_rc "--help describes the gate" 0 $rc "--regress-factor F" "$tmp/out"
check_rc "  and --exact" 0 0 "--exact" "$tmp/out"

if ((fails)); then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all gate CLI checks passed"

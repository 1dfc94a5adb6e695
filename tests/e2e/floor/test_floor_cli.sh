#!/usr/bin/env bash
# calibrate and compare --floor from the command line: the floor file validates against its schema;
# an honest bf16 candidate passes and a subtle fault fails at its key with a floor column; floors of
# another input, malformed floors and bad options are refused with exit 2 and a message.
set -uo pipefail
: "${LD_BIN:?}" "${LD_PYTHON:?}" "${LD_SRC:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# check_rc NAME EXPECTED_RC ACTUAL_RC [TEXT FILE]: tests/e2e/lib.sh
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
L=$LD_BIN
P=17,3,250,41,9,128,77
$L gen-model "$tmp/m" --preset tiny --seed 4 >/dev/null
$L run --model "$tmp/m" --tokens $P --decode 2 --payload full --probes "$tmp/ref.jsonl" --quiet >/dev/null

$L calibrate --model "$tmp/m" --tokens $P --decode 2 --dtype bf16 -o "$tmp/floor.json" --quiet
check_rc "calibrate writes a floor" 0 $?
"$LD_PYTHON" - "$LD_SRC/schemas/floor.schema.json" "$tmp/floor.json" <<'PY'
import json, sys
from jsonschema import Draft202012Validator
schema, doc = (json.load(open(p)) for p in sys.argv[1:3])
Draft202012Validator.check_schema(schema)
errors = list(Draft202012Validator(schema).iter_errors(doc))
for e in errors[:5]:
    print("schema:", e.message)
assert not errors
keys = [p["key"] for p in doc["probes"]]
assert len(keys) == len(set(keys)) == 3 * (4 * 17 + 3), len(keys)
# nearest-even is one of the variants, so the floor is at least its error
assert all(p["rel_l2"] >= p["rel_l2_nearest"] for p in doc["probes"])
assert any(p["rel_l2"] > 0 for p in doc["probes"])
PY
check_rc "the floor validates against schemas/floor.schema.json" 0 $?

$L run --model "$tmp/m" --tokens $P --follow "$tmp/ref.jsonl" --emulate bf16 --payload full \
   --probes "$tmp/honest.jsonl" --quiet >/dev/null
$L compare "$tmp/ref.jsonl" "$tmp/honest.jsonl" --floor "$tmp/floor.json" --json "$tmp/h.json" >"$tmp/out" 2>&1
check_rc "honest bf16 passes against the floor" 0 $? "noise floor" "$tmp/out"

$L run --model "$tmp/m" --tokens $P --follow "$tmp/ref.jsonl" --emulate bf16 --payload full \
   --inject rmsnorm_eps@0=1e-5 --probes "$tmp/subtle.jsonl" --quiet >/dev/null
$L compare "$tmp/ref.jsonl" "$tmp/subtle.jsonl" >"$tmp/out" 2>&1
check_rc "fixed bf16 tolerances miss the subtle epsilon fault" 0 $?
$L compare "$tmp/ref.jsonl" "$tmp/subtle.jsonl" --floor "$tmp/floor.json" --json "$tmp/s.json" >"$tmp/out" 2>&1
check_rc "the floor catches it" 1 $? "x its noise floor" "$tmp/out"
grep -q "floor_x" "$tmp/out"; check_rc "the table has the floor column" 0 $?
"$LD_PYTHON" - "$LD_SRC/schemas/report.schema.json" "$tmp/s.json" <<'PY'
import json, sys
from jsonschema import Draft202012Validator
schema, doc = (json.load(open(p)) for p in sys.argv[1:3])
errors = list(Draft202012Validator(schema).iter_errors(doc))
for e in errors[:5]:
    print("schema:", e.message)
assert not errors
assert doc["first_divergence"]["key"] == "S0.L0.attn_norm", doc["first_divergence"]["key"]
row = next(p for p in doc["probes"] if p["key"] == "S0.L0.attn_norm")
assert "floor" in row["reasons"] and row["floor"]["ratio"] > 2, row["floor"]
assert doc["policy"]["floor"]["k"] == 2
PY
check_rc "JSON report: first divergence, floor ratio, schema" 0 $?

$L compare "$tmp/ref.jsonl" "$tmp/subtle.jsonl" --floor "$tmp/floor.json" --floor-k 100 >/dev/null 2>&1
check_rc "--floor-k 100 lets it pass" 0 $?

# A floor of another input is refused.
$L calibrate --model "$tmp/m" --tokens 1,2,3 --decode 2 --dtype bf16 -o "$tmp/other.json" --quiet
$L compare "$tmp/ref.jsonl" "$tmp/honest.jsonl" --floor "$tmp/other.json" >"$tmp/out" 2>&1
check_rc "a floor of another prompt is refused" 2 $? "another prompt" "$tmp/out"
# Malformed floors.
echo '{"format":"layerdiff-floor","version":1}' >"$tmp/bad1.json"
$L compare "$tmp/ref.jsonl" "$tmp/honest.jsonl" --floor "$tmp/bad1.json" >"$tmp/out" 2>&1
check_rc "a floor without dtype is refused" 2 $? "bad1.json: dtype" "$tmp/out"
sed 's/"rel_l2": 0,/"rel_l2": -1,/' "$tmp/floor.json" >"$tmp/bad2.json"
$L compare "$tmp/ref.jsonl" "$tmp/honest.jsonl" --floor "$tmp/bad2.json" >"$tmp/out" 2>&1
check_rc "a negative floor is refused" 2 $? "bad2.json: probes[" "$tmp/out"
echo 'not json' >"$tmp/bad3.json"
$L compare "$tmp/ref.jsonl" "$tmp/honest.jsonl" --floor "$tmp/bad3.json" >"$tmp/out" 2>&1
check_rc "a floor that is not JSON is refused" 2 $? "not valid JSON" "$tmp/out"
$L compare "$tmp/ref.jsonl" "$tmp/honest.jsonl" --floor "$tmp/floor.json" --floor "$tmp/floor.json" >"$tmp/out" 2>&1
check_rc "two floors of one dtype are refused" 2 $? "both bf16 floors" "$tmp/out"
$L compare "$tmp/ref.jsonl" "$tmp/honest.jsonl" --floor-k 0.5 >"$tmp/out" 2>&1
check_rc "--floor-k below 1 is refused" 2 $? "floor-k" "$tmp/out"
$L calibrate --model "$tmp/m" --tokens $P --dtype f32 -o "$tmp/x.json" >"$tmp/out" 2>&1
check_rc "calibrate --dtype f32 is refused" 2 $? "use bf16 or f16" "$tmp/out"
$L calibrate --model "$tmp/m" --tokens $P -o "$tmp/x.json" >"$tmp/out" 2>&1
check_rc "calibrate without --dtype is refused" 2 $? "needs" "$tmp/out"

echo "$fails failure(s)"
exit $((fails > 0))

#!/usr/bin/env bash
# 'layerdiff compare' end to end: the exit code of every constructed scenario (streams.c), the
# JSON reports validated against schemas/report.schema.json and naming the right first divergence,
# the example policy and map files against their schemas, bad ones refused both by the schema and
# by the C parser (message naming the file and field), usage errors, --help and colour.
# Usage: test_compare_cli.sh GEN_STREAMS   (env: LD_BIN, LD_PYTHON, LD_SRC)
set -u
gen=$1
: "${LD_BIN:?}" "${LD_PYTHON:?}" "${LD_SRC:?}"
here=$LD_SRC/tests/e2e/compare
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$gen" "$tmp" || { echo "FAIL: cannot write the test streams"; exit 1; }
fails=0
R=$tmp/ref.jsonl
MAP=$here/foreign_map.json

# expect CODE ARGS...: runs 'layerdiff compare ARGS' and checks its exit code.
expect() {
  local want=$1
  shift
  "$LD_BIN" compare "$@" >"$tmp/out.txt" 2>"$tmp/err.txt"
  local got=$?
  if [[ $got != "$want" ]]; then
    echo "FAIL: compare $* -> exit $got, expected $want"
    head -c 3000 "$tmp/out.txt" "$tmp/err.txt"
    fails=$((fails + 1))
  fi
}
# stderr_has TEXT: the last run's stderr contains TEXT.
stderr_has() {
  if ! grep -qF -- "$1" "$tmp/err.txt"; then
    echo "FAIL: stderr lacks '$1':"
    cat "$tmp/err.txt"
    fails=$((fails + 1))
  fi
}
stdout_has() {
  if ! grep -qF -- "$1" "$tmp/out.txt"; then
    echo "FAIL: stdout lacks '$1'"
    fails=$((fails + 1))
  fi
}

expect 0 "$R" "$tmp/same.jsonl" --json "$tmp/same.json" --md "$tmp/same.md" \
  --html "$tmp/same.html" --junit "$tmp/same.xml"
stdout_has "verdict: PASS — exit 0"
expect 1 "$R" "$tmp/perturbed.jsonl" --json "$tmp/perturbed.json" --md "$tmp/perturbed.md" \
  --html "$tmp/perturbed.html" --junit "$tmp/perturbed.xml"
stdout_has "First divergence: layer 1, q_norm, step 0 (S0.L1.q_norm)"
expect 1 "$R" "$tmp/perturbed.jsonl" --policy "$here/policy_good.json" --json "$tmp/policy.json"
expect 0 "$R" "$tmp/perturbed.jsonl" --fail-on none
expect 0 "$R" "$tmp/bf16.jsonl" --json "$tmp/bf16.json"
expect 1 "$R" "$tmp/bf16_bad.jsonl" --json "$tmp/bf16_bad.json" --brief --html "$tmp/bf16_bad.html"
expect 3 "$R" "$tmp/missing.jsonl" --json "$tmp/missing.json" --junit "$tmp/missing.xml"
expect 0 "$R" "$tmp/missing.jsonl" --allow-missing S0.L1.mlp_act
expect 0 "$R" "$tmp/missing.jsonl" --allow-missing 'q_norm,mlp_act'
expect 0 "$R" "$tmp/missing.jsonl" --fail-on divergence
expect 3 "$R" "$tmp/shape.jsonl" --json "$tmp/shape.json"
expect 3 "$R" "$tmp/truncated.jsonl" --json "$tmp/truncated.json" --html "$tmp/truncated.html"
stdout_has "cut short after S0.L1.up_proj"
expect 0 "$R" "$tmp/truncated.jsonl" --allow-missing '*'
expect 3 "$R" "$tmp/truncated.jsonl" --allow-missing 'S*'
expect 2 "$R" "$tmp/tokens.jsonl"
stderr_has "prompt token at index 2 is 15 in $R and 16 in $tmp/tokens.jsonl"
expect 0 "$R" "$tmp/tokens.jsonl" --allow-input-mismatch --json "$tmp/tokens.json"
expect 2 "$R" "$tmp/decoded.jsonl"
stderr_has "decode step 2 was fed token 102"
expect 2 "$R" "$tmp/config.jsonl"
stderr_has "hidden_size is 64"
expect 0 "$R" "$tmp/argmax.jsonl" --json "$tmp/argmax.json"
expect 1 "$R" "$tmp/argmax.jsonl" --fail-on divergence,argmax
expect 1 "$R" "$tmp/nan.jsonl" --json "$tmp/nan.json"
expect 0 "$R" "$tmp/fault.jsonl" --json "$tmp/fault.json"
stdout_has "weight fingerprints differ"
stdout_has "injected faults differ"
expect 2 "$R" "$tmp/fault.jsonl" --fail-on fingerprint
expect 2 "$R" "$tmp/fault.jsonl" --fail-on all
expect 0 "$R" "$tmp/stats.jsonl" --json "$tmp/stats.json"
expect 3 "$R" "$tmp/stats.jsonl" --fail-on nodata
# issue 15, item 1: a stats-only candidate whose l2 is NaN with no NaN counted passed; the
# reader now refuses the record (and inspect with it), naming the field
sed -E '0,/"l2":[^,]*/s//"l2":"NaN"/' "$tmp/stats.jsonl" >"$tmp/stats_nan_l2.jsonl"
expect 2 "$R" "$tmp/stats_nan_l2.jsonl"
stderr_has "stats_nan_l2.jsonl:2: probe S0.embed: stats.l2 is nan but"
"$LD_BIN" inspect "$tmp/stats_nan_l2.jsonl" >/dev/null 2>&1
[[ $? == 2 ]] || { echo "FAIL: inspect accepted a NaN l2"; fails=$((fails + 1)); }
expect 3 "$R" "$tmp/header_only.jsonl" --json "$tmp/header_only.json"
expect 3 "$R" "$tmp/empty.jsonl" --fail-on none --allow-missing '*' --json "$tmp/empty.json"
expect 3 "$tmp/empty.jsonl" "$R"
expect 0 "$R" "$tmp/foreign.jsonl" --map "$MAP" --json "$tmp/foreign.json"
expect 1 "$R" "$tmp/foreign_bad.jsonl" --map "$MAP" --json "$tmp/foreign_bad.json"
expect 3 "$R" "$tmp/foreign.jsonl"

# issue 15, item 7: a stream's strings (here the implementation and a fault) carry an escape
# sequence, newlines faking a green verdict line, HTML and a table pipe: none reaches the terminal
# or the Markdown report raw
"$LD_PYTHON" - "$tmp/perturbed.jsonl" "$tmp/evil.jsonl" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines(keepends=True)
h = json.loads(lines[0])
h["implementation"] = "x\x1b[32m\nverdict: PASS \u2014 exit 0\x1b[0m<script>alert(1)</script>|\x9b"
h["faults"] = ["a\n\x1b[2J"]
lines[0] = json.dumps(h) + "\n"
open(sys.argv[2], "w").writelines(lines)
PY
expect 1 "$R" "$tmp/evil.jsonl" --md "$tmp/evil.md"
stdout_has 'x\x1b[32m\x0averdict: PASS — exit 0\x1b[0m<script>alert(1)</script>|\u009b'
stdout_has 'faults: a\x0a\x1b[2J)'
if grep -q $'\033\|\xc2\x9b' "$tmp/out.txt" || grep -q '^verdict: PASS' "$tmp/out.txt"; then
  echo "FAIL: an escape sequence or a fake verdict line reached the terminal report"
  fails=$((fails + 1))
fi
if grep -q $'<script>\|^verdict: PASS\|\033' "$tmp/evil.md" ||
  ! grep -qF '&lt;script&gt;alert(1)&lt;/script&gt;\|' "$tmp/evil.md"; then
  echo "FAIL: raw HTML, a newline, an escape or a pipe from a stream reached the Markdown report"
  cat "$tmp/evil.md"
  fails=$((fails + 1))
fi

# the terminal default is short (issue 16): the verdict is the first thing after the header and
# the last line, the table holds the failing rows and context only; --full lists every probe, and
# no column prints an infinity or the meaningless ULP maximum
expect 1 "$R" "$tmp/perturbed.jsonl"
first_verdict=$(grep -n '^verdict:' "$tmp/out.txt" | head -1 | cut -d: -f1)
table_at=$(grep -n '^key ' "$tmp/out.txt" | head -1 | cut -d: -f1)
[[ -n $first_verdict && -n $table_at && $first_verdict -lt 10 && $first_verdict -lt $table_at ]] ||
  { echo "FAIL: the verdict does not come first"; cat "$tmp/out.txt"; fails=$((fails + 1)); }
[[ $(tail -1 "$tmp/out.txt") == verdict:* ]] ||
  { echo "FAIL: verdict not last"; fails=$((fails + 1)); }
short=$(wc -l <"$tmp/out.txt")
stdout_has "--full lists all 162"
grep -qE ' inf | ulp_max ' "$tmp/out.txt" &&
  { echo "FAIL: inf or ulp_max in the table"; fails=$((fails + 1)); }
expect 1 "$R" "$tmp/perturbed.jsonl" --full
full=$(wc -l <"$tmp/out.txt")
stdout_has "S0.L0.attn_norm"
stdout_has "ulp_p99"
[[ $short -lt 60 && $full -gt 162 ]] ||
  { echo "FAIL: default $short lines, --full $full lines"; fails=$((fails + 1)); }
grep -qE ' inf ' "$tmp/out.txt" && { echo "FAIL: inf in the --full table"; fails=$((fails + 1)); }
expect 2 "$R" "$tmp/perturbed.jsonl" --exact --full
stderr_has "--exact checks bit-exactness only"

# the right check first (issue 16): other weights are named before the tokens they decoded; a
# stream compared with itself warns (exit 2 under --strict); our own JSON report given as a stream
# is recognised; an empty stream is said once, without a table of every key missing
expect 2 "$R" "$tmp/seed.jsonl"
stderr_has "different weights: the weight fingerprints differ (fp-0123456789abcdef in $R"
expect 0 "$R" "$R"
stderr_has "are the same file: this comparison passes by construction"
expect 2 "$R" "$R" --strict
stderr_has "are the same file"
expect 1 "$R" "$tmp/perturbed.jsonl" --json "$tmp/as_stream.json" --quiet
expect 2 "$R" "$tmp/as_stream.json"
stderr_has "$tmp/as_stream.json is a layerdiff compare report (--json), not a probe stream"
expect 3 "$R" "$tmp/empty.jsonl"
stdout_has "holds no probe"
grep -qE 'cut short|missing in cand' "$tmp/out.txt" &&
  { echo "FAIL: empty stream: cut short / missing rows"; cat "$tmp/out.txt"; fails=$((fails + 1)); }

# an output that cannot be written is named as given, not by its temporary twin, and found before
# the comparison runs
expect 2 "$R" "$tmp/perturbed.jsonl" --html "$tmp/nonexistent-dir/r.html" --quiet
stderr_has "$tmp/nonexistent-dir/r.html: the directory $tmp/nonexistent-dir does not exist"
grep -q '\.tmp' "$tmp/err.txt" && { echo "FAIL: names a temporary"; fails=$((fails + 1)); }

# colour: only when asked (stdout is not a terminal here)
expect 1 "$R" "$tmp/perturbed.jsonl" --color always
grep -q $'\033\[' "$tmp/out.txt" || { echo "FAIL: --color always wrote no colour"; fails=$((fails + 1)); }
expect 1 "$R" "$tmp/perturbed.jsonl"
! grep -q $'\033\[' "$tmp/out.txt" || { echo "FAIL: colour without a terminal"; fails=$((fails + 1)); }
expect 1 "$R" "$tmp/perturbed.jsonl" --quiet
[[ ! -s $tmp/out.txt ]] || { echo "FAIL: --quiet printed"; fails=$((fails + 1)); }

# usage and input errors: one line naming what is wrong, exit 2
expect 2 "$R"
stderr_has "expected two streams"
expect 2 "$R" "$tmp/same.jsonl" --bogus
stderr_has "unknown option '--bogus'"
expect 2 "$R" "$tmp/same.jsonl" --json
stderr_has "needs a value"
expect 2 "$R" "$tmp/same.jsonl" --fail-on bogus
stderr_has "'bogus'"
expect 2 "$R" "$tmp/same.jsonl" --color sometimes
expect 2 "$R" "$tmp/same.jsonl" --topk 0
# memory bounds (issue 15, item 6): a line (a gzip bomb of spaces) past --max-line, and records
# waiting for partners that never come (foreign tags without --map) past --max-parked
"$LD_PYTHON" -c 'import gzip,sys; gzip.open(sys.argv[1], "wb").write(b" " * (4 << 20))' \
  "$tmp/spaces.jsonl.gz"
expect 2 "$R" "$tmp/spaces.jsonl.gz" --max-line 65536
stderr_has "spaces.jsonl.gz:1: line longer than the 65536-byte limit"
expect 2 "$R" "$tmp/same.jsonl" --max-line 0
stderr_has "--max-line: '0' is not a positive integer"
expect 2 "$R" "$tmp/foreign.jsonl" --max-parked 4000
stderr_has "cannot wait for its partner: records waiting for theirs already hold"
stderr_has "and the limit is 4000 (--max-parked)"
expect 3 "$R" "$tmp/foreign.jsonl" --max-parked 100000000
# ... and by default, a line of nothing but whitespace is counted, not kept: 'compare B B' on a
# 512 MiB bomb of spaces peaks within 128 MiB of comparing two small streams (it took 1 GiB)
"$LD_PYTHON" - "$LD_BIN" "$R" "$tmp/bomb.jsonl.gz" <<'PY' || fails=$((fails + 1))
import gzip, resource, subprocess, sys
ld, ref, bomb = sys.argv[1:4]
with gzip.open(bomb, "wb", 1) as g:
    g.write(open(ref, "rb").readline())
    for _ in range(512):
        g.write(b" " * (1 << 20))
def peak(*args):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    rc = subprocess.run([ld, "compare", *args, "--quiet"], capture_output=True).returncode
    return rc, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
_, small = peak(ref, ref)
rc, big = peak(bomb, bomb)
if rc != 3 or big > small + (128 << 10):
    sys.exit("FAIL: compare of a bomb of spaces: exit %d, peak %d KiB (two small streams: %d KiB)"
             % (rc, big, small))
PY

# a reference whose records were reversed (reindexed, its end record fixed: inspect accepts it)
# still names the earliest divergence in execution order, not its own first failing record
# (issue 15, item 5: qk_norm_skip@1 was reported at S2.logits, "inherited")
"$LD_BIN" gen-model "$tmp/tiny" --preset tiny >/dev/null
for f in "" qk_norm_skip@1; do
  "$LD_BIN" run --model "$tmp/tiny" --tokens 1,2,3 --decode 2 --payload full --quiet \
    --probes "$tmp/run${f:+_qk}.jsonl" ${f:+--inject "$f"} >/dev/null
done
"$LD_PYTHON" - "$tmp/run.jsonl" "$tmp/run_rev.jsonl" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().split("\n")[:-1]
probes = lines[1:-1][::-1]
out = [lines[0]] + [re.sub(r'"index":\d+', '"index":%d' % i, l, count=1)
                    for i, l in enumerate(probes)]
end = re.sub(r'"last_key":"[^"]*"', '"last_key":"S0.embed"', lines[-1])
open(sys.argv[2], "w").write("\n".join(out + [end]) + "\n")
PY
"$LD_BIN" inspect "$tmp/run_rev.jsonl" >/dev/null || { echo "FAIL: reversed stream unreadable"; fails=$((fails + 1)); }
expect 1 "$tmp/run_rev.jsonl" "$tmp/run_qk.jsonl" --json "$tmp/run_rev.json"
stdout_has "First divergence: layer 1, q_norm, step 0 (S0.L1.q_norm)"
"$LD_PYTHON" - "$tmp/run_rev.json" <<'PY' || fails=$((fails + 1))
import json, sys
notes = [n["text"] for n in json.load(open(sys.argv[1]))["notes"] if n["code"] == "ref_order"]
if not notes or "(S2.final_norm at line 3 comes after S2.logits)" not in notes[0]:
    sys.exit("FAIL: no ref_order note naming S2.final_norm: %r" % notes)
PY
expect 2 "$R" "$tmp/nonexistent.jsonl"
stderr_has "$tmp/nonexistent.jsonl"
expect 2 "$R" "$tmp/same.jsonl" --json "$tmp/no/such/dir/r.json"
stderr_has "$tmp/no/such/dir/r.json"
printf 'not json\n' >"$tmp/garbage.jsonl"
expect 2 "$R" "$tmp/garbage.jsonl"
stderr_has "$tmp/garbage.jsonl"

# A path that is not UTF-8 (Latin-1 'é') in the reports: the JSON and JUnit files stay valid
# UTF-8 (the byte becomes U+FFFD) so that JSON and XML parsers read them.
lat=$tmp/$'caf\xe9'
mkdir -p "$lat" && cp "$R" "$lat/ref.jsonl"
expect 1 "$lat/ref.jsonl" "$tmp/perturbed.jsonl" --json "$lat/r.json" --junit "$lat/r.xml" \
  --html "$lat/r.html" --md "$lat/r.md"
# ... and a backtick in a path does not end the Markdown code span around it.
cp "$R" "$tmp/a\`b.jsonl"
expect 0 "$R" "$tmp/a\`b.jsonl" --md "$tmp/tick.md"
grep -qF -- "vs \`\` $tmp/a\`b.jsonl \`\` (" "$tmp/tick.md" ||
  { echo "FAIL: tick.md lacks the path in a double-backtick span"; fails=$((fails + 1)); }
"$LD_PYTHON" - "$lat" <<'PY' || fails=$((fails + 1))
import json, os, sys, xml.etree.ElementTree as ET
d = os.fsencode(sys.argv[1])
want = sys.argv[1].replace("\udce9", "\ufffd") + "/ref.jsonl"
try:
    got = json.loads(open(d + b"/r.json", "rb").read())["reference"]["path"]
    props = {p.get("name"): p.get("value") for p in ET.parse(d + b"/r.xml").iter("property")}
    html = open(d + b"/r.html", "rb").read().decode("utf-8")
    md = open(d + b"/r.md", "rb").read().decode("utf-8")
except (ValueError, ET.ParseError) as e:
    sys.exit(f"FAIL: a report with a non-UTF-8 path is unreadable: {e}")
for what, v in (("JSON reference.path", got), ("JUnit property reference", props["reference"])):
    if v != want:
        sys.exit(f"FAIL: {what} is {v!r}, expected {want!r}")
if want.replace("/", "") not in html.replace("/", ""):
    sys.exit("FAIL: the HTML report lacks the path with U+FFFD")
if f"`{want}` (" not in md:
    sys.exit("FAIL: the Markdown report lacks the path with U+FFFD")
PY

# bad policy and map files: refused by the C parser, naming file and field ...
printf '{"version": 1, "rules": [{"tags": "q_*", "cosin": 0.9}]}' >"$tmp/bad_field.json"
printf '{"version": 1, "rules": [{"tags": "*", "rel_l2": 1}, {"tags": "*", "cosine": 2}]}' \
  >"$tmp/bad_range.json"
printf '{"version": 1, "rules": [{"rel_l2": 0.1}]}' >"$tmp/bad_tags.json"
printf '{"version": 1, "rules": [{"from": "layer_{lyr}_q", "tag": "q_proj"}]}' >"$tmp/bad_map.json"
expect 2 "$R" "$tmp/same.jsonl" --policy "$tmp/bad_field.json"
stderr_has "$tmp/bad_field.json: rules[0].cosin: unknown field"
expect 2 "$R" "$tmp/same.jsonl" --policy "$tmp/bad_range.json"
stderr_has "$tmp/bad_range.json: rules[1].cosine"
expect 2 "$R" "$tmp/same.jsonl" --policy "$tmp/bad_tags.json"
stderr_has "rules[0].tags"
expect 2 "$R" "$tmp/same.jsonl" --map "$tmp/bad_map.json"
stderr_has "$tmp/bad_map.json: rules[0].from"

# --help names every option
"$LD_BIN" compare --help >"$tmp/help.txt" || { echo "FAIL: --help exit"; fails=$((fails + 1)); }
for o in --policy --map --json --md --html --junit --brief --full --strict --quiet --allow-missing \
  --allow-input-mismatch --fail-on --topk --color; do
  grep -q -- "$o" "$tmp/help.txt" || { echo "FAIL: --help lacks $o"; fails=$((fails + 1)); }
done
# 'layerdiff help compare' is the same text; an unknown command, or two, is a usage error.
"$LD_BIN" help compare | cmp -s - "$tmp/help.txt" || { echo "FAIL: help compare"; fails=$((fails + 1)); }
for args in "nosuch" "compare run"; do
  # shellcheck disable=SC2086 # the words are the arguments
  "$LD_BIN" help $args >"$tmp/help2.txt" 2>&1
  rc=$?
  [[ $rc == 2 ]] && grep -q "^layerdiff help: " "$tmp/help2.txt" ||
    { echo "FAIL: help $args: exit $rc, $(head -c 200 "$tmp/help2.txt")"; fails=$((fails + 1)); }
done

# ... and by the schemas; every report against the report schema.
"$LD_PYTHON" - "$tmp" "$LD_SRC" <<'PY' || fails=$((fails + 1))
import json, sys
import xml.etree.ElementTree as ET
from jsonschema import Draft202012Validator

tmp, src = sys.argv[1], sys.argv[2]
def load(p):
    with open(p) as f:
        return json.load(f)
def validator(name):
    s = load(f"{src}/schemas/{name}")
    Draft202012Validator.check_schema(s)
    return Draft202012Validator(s)
report, policy, keymap = (validator(n) for n in
                          ("report.schema.json", "policy.schema.json", "map.schema.json"))
bad = 0
def check(cond, what):
    global bad
    if not cond:
        print("FAIL:", what)
        bad += 1

expected = {  # report -> (exit code, first divergence key)
    "same": (0, None), "perturbed": (1, "S0.L1.q_norm"), "policy": (1, "S0.L1.q_rope"),
    "bf16": (0, None), "bf16_bad": (1, "S1.L2.attn_out"), "missing": (3, None),
    "shape": (3, None), "truncated": (3, None), "tokens": (0, None), "argmax": (0, None),
    "nan": (1, "S0.L2.mlp_act"), "fault": (0, None), "stats": (0, None),
    "header_only": (3, None), "empty": (3, None), "foreign": (0, None),
    "foreign_bad": (1, "S0.L2.q_proj"),
}
for name, (code, key) in expected.items():
    doc = load(f"{tmp}/{name}.json")
    errors = sorted(report.iter_errors(doc), key=lambda e: list(e.path))
    for e in errors[:5]:
        print(f"FAIL: {name}.json: {list(e.path)}: {e.message[:300]}")
    bad += len(errors) > 0
    check(doc["exit_code"] == code, f"{name}.json: exit_code {doc['exit_code']}, expected {code}")
    fd = doc["first_divergence"]
    check((fd and fd["key"]) == key, f"{name}.json: first divergence {fd and fd['key']}, expected {key}")

doc = load(f"{tmp}/perturbed.json")
fd = doc["first_divergence"]
check(fd["inputs"][0]["key"] == "S0.L1.q_proj" and fd["inputs"][0]["rel_l2"] == 0,
      "perturbed: q_norm's input q_proj is exact")
check(fd["worst"]["head"] is not None and fd["grid"]["heads"] == 4, "perturbed: worst head, grid")
check("the q/k norm made this error" in doc["summary"]["text"], "perturbed: summary words")
check(len(doc["probes"]) == 162 and doc["probes"][0]["key"] == "S0.embed", "perturbed: probes")
miss = load(f"{tmp}/missing.json")
m = [p for p in miss["probes"] if p["state"] != "compared"]
check([p["key"] for p in m] == ["S0.L1.mlp_act"] and m[0]["status"] == "incomplete",
      "missing: the missing key")
tr = load(f"{tmp}/truncated.json")
check(tr["candidate"]["truncated"] and tr["candidate"]["last_key"] == "S0.L1.up_proj",
      "truncated: last complete key")
check(load(f"{tmp}/tokens.json")["summary"]["input_mismatch"], "tokens: input mismatch stated")
check(load(f"{tmp}/argmax.json")["argmax"]["first_diff_step"] == 1, "argmax: step 1")
check(load(f"{tmp}/foreign.json")["candidate"]["dropped_by_map"] == 9, "foreign: dropped")

# JUnit: well-formed, one test case per probe plus three
for name, fails_, errors_ in (("perturbed", None, 0), ("missing", 0, 1), ("same", 0, 0)):
    root = ET.parse(f"{tmp}/{name}.xml").getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    check(len(cases) == 165, f"{name}.xml: {len(cases)} test cases")
    check(int(suite.get("errors")) == errors_, f"{name}.xml: errors")
    if fails_ is not None:
        check(int(suite.get("failures")) == fails_, f"{name}.xml: failures")
    check(len(suite.findall("testcase/failure")) == int(suite.get("failures")), f"{name}.xml: count")

# Markdown and HTML exist and say the verdict
check("divergence at `S0.L1.q_norm`" in open(f"{tmp}/perturbed.md").read(), "perturbed.md")
html = open(f"{tmp}/perturbed.html").read()
check("<svg" in html and "<script" not in html and "src=" not in html, "perturbed.html: self-contained")
# navigable at 28 layers (issue 16): a failing-only toggle (checked when something fails), rows
# with anchors that the summary and the chart points link to, no raw backend JSON
import re
check('id="failonly" checked' in html, "perturbed.html: failing-only toggle")
ids = set(re.findall(r'<tr class="[^"]*" id="(r[0-9]+)"', html))
links = set(re.findall(r'href="#(r[0-9]+)"', html))
check(len(ids) == 162 and links and links <= ids, "perturbed.html: rows have anchors, links land")
check("Go to: <a href" in html and "first divergence's row" in html,
      "perturbed.html: summary links")
check('"name":' not in html and "{&quot;" not in html, "perturbed.html: raw backend JSON")
same = open(f"{tmp}/same.html").read()
check("red dotted" not in same and 'id="failonly">' in same, "same.html: no divergence words")
# every failing step is charted: bf16_bad fails from step 1 on
bad_html = open(f"{tmp}/bf16_bad.html").read()
check("<h3>Step 0 (prefill)</h3>" in bad_html and "<h3>Step 1</h3>" in bad_html and
      "<h3>Step 2</h3>" in bad_html, "bf16_bad.html: a chart per failing step")
# the decode step's heat map draws its one token once, not three times
check(bad_html.count("per head</text>") == 0, "bf16_bad.html: one-token heat map")

# example input files against their schemas; bad ones fail
for p, v in ((f"{src}/tests/e2e/compare/policy_good.json", policy),
             (f"{src}/tests/e2e/compare/foreign_map.json", keymap)):
    errs = list(v.iter_errors(load(p)))
    check(not errs, f"{p}: {errs[:1]}")
for p, v in ((f"{tmp}/bad_field.json", policy), (f"{tmp}/bad_range.json", policy),
             (f"{tmp}/bad_tags.json", policy), (f"{tmp}/bad_map.json", keymap)):
    check(list(v.iter_errors(load(p))), f"{p}: the schema accepts a file the parser refuses")
sys.exit(1 if bad else 0)
PY

# A candidate step with no finite logit (a NaN in final_norm) has no token: the summary says so,
# not "candidate -1"
"$LD_BIN" run --model "$tmp/tiny" --tokens 1,2,3 --decode 2 --payload full --quiet \
  --inject nan=final_norm --probes "$tmp/run_nan.jsonl" >/dev/null 2>&1
expect 1 "$tmp/run.jsonl" "$tmp/run_nan.jsonl"
stdout_has "candidate no token (no finite logit)"
# A file name holding an ESC sequence reaches the terminal report escaped, never raw
evil=$tmp/$'e\033[31mvil.jsonl'
cp "$tmp/run.jsonl" "$evil"
for mode in "" --exact; do
  "$LD_BIN" compare $mode "$evil" "$tmp/run_nan.jsonl" >"$tmp/out.txt" 2>&1
  if grep -q $'\033' "$tmp/out.txt" || ! grep -qF 'e\x1b[31mvil.jsonl' "$tmp/out.txt"; then
    echo "FAIL: compare $mode: a raw ESC from the file name, or its escaped form missing"
    fails=$((fails + 1))
  fi
done
if [[ $fails -ne 0 ]]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "compare CLI: all checks passed"

#!/usr/bin/env bash
# The CI examples end to end. examples/ci/layerdiff-gate.sh: no baseline (exit 2, says how to make
# one), --update-baseline, a passing gate with all four reports and the job summary, an engine
# with a fault (exit 1, first regression at the injected key), another prompt (exit 2).
# examples/ci/github-actions.yml: its run steps executed in order the way a runner would (the
# dependency and build steps and the 'uses:' actions skipped; the artifacts' paths checked), on a
# fresh repository, with update_baseline, on a pass and on a regression.
set -uo pipefail
: "${LD_BIN:?}" "${LD_PYTHON:?}" "${LD_SRC:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
script=$LD_SRC/examples/ci/layerdiff-gate.sh
workflow=$LD_SRC/examples/ci/github-actions.yml

# check_rc NAME EXPECTED_RC ACTUAL_RC [TEXT FILE]: tests/e2e/lib.sh; a wrong exit code shows the
# end of $tmp/out.
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
check_log=("$tmp/out")

# ---- the plain shell script, run from a repository's root ----
repo=$tmp/repo
mkdir -p "$repo"
gate() { # gate [ARGS]: runs the script in $repo with layerdiff as the engine
  (cd "$repo" && LAYERDIFF=$LD_BIN GITHUB_STEP_SUMMARY=$tmp/summary.md bash "$script" "$@") \
    >"$tmp/out" 2>&1
  rc=$?
}
gate
check_rc "script: no baseline yet: exit 2, says how to make one" 2 $rc \
  "--update-baseline   and commit ci/layerdiff-baseline.json" "$tmp/out"
gate --update-baseline
check_rc "script: --update-baseline accepts the candidate" 0 $rc \
  "review ci/layerdiff-baseline.json and commit it" "$tmp/out"
"$LD_PYTHON" - "$LD_SRC/schemas/report.schema.json" "$repo/ci/layerdiff-baseline.json" <<'PY'
import json, sys
from jsonschema import Draft202012Validator
schema, doc = (json.load(open(p)) for p in sys.argv[1:3])
errors = list(Draft202012Validator(schema).iter_errors(doc))
sys.exit(1 if errors or doc["exit_code"] != 0 else 0)
PY
check_rc "script: the baseline is a valid, passing report" 0 $?
rm -f "$tmp/summary.md"
gate
check_rc "script: the gate passes against its baseline" 0 $rc "exit 0; reports in layerdiff-gate/reports" "$tmp/out"
for f in report.html summary.md report.json junit.xml; do
  [[ -s $repo/layerdiff-gate/reports/$f ]]
  check_rc "  wrote reports/$f" 0 $?
done
check_rc "  appended the Markdown summary to \$GITHUB_STEP_SUMMARY" 0 0 \
  "#### Regression gate: ✅ no probe regressed" "$tmp/summary.md"
(cd "$repo" && LAYERDIFF=$LD_BIN \
  ENGINE='"$LAYERDIFF" run --model "$GATE_MODEL_DIR" --tokens "$TOKENS" --emulate bf16 --follow "$GATE_REF" --inject qk_norm_block@2=16 --quiet' \
  bash "$script") >"$tmp/out" 2>&1
rc=$?
check_rc "script: an engine with a fault at layer 2 fails the gate" 1 $rc \
  "First regression in execution order: S0.L2.q_norm" "$tmp/out"
check_rc "  its summary names the first regression" 0 0 "regressed, first \`S0.L2.q_norm\`" \
  "$repo/layerdiff-gate/reports/summary.md"
(cd "$repo" && LAYERDIFF=$LD_BIN TOKENS=5,6,7,8 bash "$script") >"$tmp/out" 2>&1
rc=$?
check_rc "script: another prompt than the baseline's: exit 2" 2 $rc "another input" "$tmp/out"
[[ ! -e $repo/layerdiff-gate/reports/summary.md ]]
check_rc "  and no stale summary from the run before" 0 $?
(cd "$repo" && bash "$script" --help) >"$tmp/out" 2>&1
check_rc "script: --help" 0 $? "ENGINE      the command that runs your engine" "$tmp/out"
(cd "$repo" && bash "$script" --bogus) >"$tmp/out" 2>&1
check_rc "script: an unknown argument: exit 2" 2 $?

# ---- the GitHub Actions workflow, step by step ----
if ! "$LD_PYTHON" -c "import yaml" 2>/dev/null; then
  echo "skip workflow checks: PyYAML is not installed for $LD_PYTHON"
else
  cat >"$tmp/runner.py" <<'PY'
"""Runs the 'run:' steps of a GitHub Actions job in order, as a runner would: job env, bash -e,
stop at the first failure, 'if:' conditions on inputs.update_baseline and always(). Steps with id
deps or build are skipped (layerdiff is already built: LAYERDIFF points at it); 'uses:' steps are
skipped, but an upload-artifact step's path must exist. Prints the steps; exits with the first
failing step's code (0 when the job succeeds)."""
import os, re, subprocess, sys
import yaml

workflow, repo, update, summary, layerdiff = sys.argv[1:6]
update = update == "1"
doc = yaml.safe_load(open(workflow))
triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare 'on' key as true
assert set(triggers) >= {"pull_request", "push", "workflow_dispatch"}, triggers
(job,) = doc["jobs"].values()
env = dict(os.environ)
env.update({k: str(v) for k, v in job.get("env", {}).items()})
env.update({"LAYERDIFF": layerdiff, "GITHUB_STEP_SUMMARY": summary})

def wanted(cond, failed):
    if cond is None:
        return not failed
    cond = cond.strip()
    if "always()" in cond:
        return True
    if failed:
        return False
    if "!inputs.update_baseline" in cond:
        return not update
    if "inputs.update_baseline" in cond:
        return update
    raise SystemExit(f"unknown condition {cond!r}")

def expand(text):
    return re.sub(r"\$\{\{\s*env\.(\w+)\s*\}\}", lambda m: env[m.group(1)], text)

failed = 0
for step in job["steps"]:
    name = step.get("name", step.get("uses"))
    if not wanted(step.get("if"), failed):
        print(f"skip  {name}")
        continue
    if step.get("id") in ("deps", "build"):
        print(f"skip  {name} (layerdiff is built)")
        continue
    if "uses" in step:
        if step["uses"].startswith("actions/upload-artifact"):
            path = os.path.join(repo, expand(step["with"]["path"]))
            if not os.path.exists(path) and step["with"].get("if-no-files-found") != "warn":
                print(f"FAIL  {name}: {path} does not exist")
                failed = failed or 1
            else:
                print(f"ok    {name}: {path} {'exists' if os.path.exists(path) else 'is missing (warn)'}")
        else:
            print(f"skip  {name}")
        continue
    rc = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=repo, env=env).returncode
    print(f"{'ok' if rc == 0 else 'exit ' + str(rc):5} {name}")
    if rc and not failed:
        failed = rc
sys.exit(failed)
PY
  wrepo=$tmp/wrepo
  mkdir -p "$wrepo"
  job() { # job UPDATE: runs the workflow's job in $wrepo
    "$LD_PYTHON" "$tmp/runner.py" "$workflow" "$wrepo" "$1" "$tmp/wsummary.md" "$LD_BIN" \
      >"$tmp/out" 2>&1
    rc=$?
  }
  job 0
  check_rc "workflow: a fresh repository without a baseline fails" 2 $rc "no baseline at ci/layerdiff-baseline.json" "$tmp/out"
  job 1
  check_rc "workflow: update_baseline writes the baseline and uploads it" 0 $rc \
    "ok    Upload the new baseline: $wrepo/ci/layerdiff-baseline.json exists" "$tmp/out"
  rm -f "$tmp/wsummary.md"
  job 0
  check_rc "workflow: the gate passes" 0 $rc "ok    Upload the reports: $wrepo/layerdiff-gate/reports/ exists" "$tmp/out"
  [[ -s $wrepo/layerdiff-gate/reports/report.html ]]
  check_rc "  the HTML report is there to upload" 0 $?
  check_rc "  the job summary has the Markdown report" 0 0 "### layerdiff: ✅ no divergence" "$tmp/wsummary.md"
  # A baseline whose candidate was exact (the reference against itself): every bf16 probe's error
  # grew from 0, so the job must fail on regression.
  "$LD_BIN" compare "$wrepo/layerdiff-gate/ref.jsonl" "$wrepo/layerdiff-gate/ref.jsonl" \
    --json "$wrepo/ci/layerdiff-baseline.json" --quiet
  rm -f "$tmp/wsummary.md"
  job 0
  check_rc "workflow: a regression fails the job (exit 1)" 1 $rc "exit 1 Compare with the reference and the baseline" "$tmp/out"
  check_rc "  the reports are still uploaded" 0 0 "ok    Upload the reports" "$tmp/out"
  check_rc "  the job summary says what regressed" 0 0 "#### Regression gate: ❌" "$tmp/wsummary.md"
fi

if ((fails)); then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all CI example checks passed"

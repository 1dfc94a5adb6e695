#!/usr/bin/env bash
# layerdiff-gate.sh — a numerical gate for any CI system (GitLab CI, Jenkins, Buildkite, a Makefile
# target, a pre-merge hook): runs the fp32 reference and your engine on one model and prompt,
# compares the two probe streams layer by layer, and judges the candidate against a baseline kept
# in your repository (the report of the last accepted candidate). examples/ci/github-actions.yml
# runs the same steps on GitHub Actions.
#
#   examples/ci/layerdiff-gate.sh                    # the gate: exit 0 pass, 1 divergence or
#                                                    # regression, 2 bad input, 3 incomplete
#   examples/ci/layerdiff-gate.sh --update-baseline  # accept this candidate: rewrite the baseline
#                                                    # (then review and commit it)
#
# Reports land in $GATE/reports: report.html (one self-contained file: upload it as an artifact),
# summary.md (a pull-request comment or job summary; appended to $GITHUB_STEP_SUMMARY when that is
# set), report.json (everything, schemas/report.schema.json) and junit.xml (one test per probe).
#
# Environment (all optional):
#   LAYERDIFF   the layerdiff binary                                  (default: layerdiff on PATH)
#   GATE        scratch directory: model, probe streams, reports      (default: layerdiff-gate)
#   BASELINE    the baseline file kept in the repository        (default: ci/layerdiff-baseline.json)
#   MODEL       a checkpoint directory; unset: a tiny Qwen3 model generated from a fixed seed, so
#               its weights (and fingerprint) are the same on every run and the baseline stays valid
#   TOKENS      the prompt, comma-separated ids                       (default: 1,2,3,4,5,6,7)
#   DECODE      greedy decode steps after the prefill                 (default: 3)
#   ENGINE      the command that runs your engine, through bash -c. It must write its probes where
#               the probe library is told to (LAYERDIFF_PROBES and LAYERDIFF_PROBE_PAYLOAD are set
#               for it; probes/include/layerdiff/probes.h) and decode the reference's tokens, read
#               from $GATE_REF (teacher forcing), so that both runs see the same inputs. It can use
#               $GATE_MODEL_DIR, $TOKENS and $DECODE. Default: layerdiff itself stands in, running a
#               correct bf16 kernel set (run --emulate bf16 --follow $GATE_REF).
#   COMPARE_ARGS  extra options for 'layerdiff compare' (e.g. --policy tol.json, --floor F.json,
#               --regress-factor 2)
set -euo pipefail

LAYERDIFF=${LAYERDIFF:-layerdiff}
GATE=${GATE:-layerdiff-gate}
BASELINE=${BASELINE:-ci/layerdiff-baseline.json}
TOKENS=${TOKENS:-1,2,3,4,5,6,7}
DECODE=${DECODE:-3}
COMPARE_ARGS=${COMPARE_ARGS:-}
update=false
case "${1:-}" in
  "") ;;
  --update-baseline) update=true ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "layerdiff-gate.sh: unknown argument '$1' (--update-baseline, --help)" >&2; exit 2 ;;
esac

reports=$GATE/reports
mkdir -p "$reports"
rm -f "$reports"/report.json "$reports"/summary.md "$reports"/report.html "$reports"/junit.xml
export GATE_REF=$GATE/ref.jsonl GATE_CAND=$GATE/cand.jsonl TOKENS DECODE LAYERDIFF

# 1. The model: yours, or a generated one (deterministic: same seed, same weights).
if [[ -n ${MODEL:-} ]]; then
  GATE_MODEL_DIR=$MODEL
else
  GATE_MODEL_DIR=$GATE/model
  [[ -f $GATE_MODEL_DIR/config.json ]] ||
    "$LAYERDIFF" gen-model "$GATE_MODEL_DIR" --preset tiny --seed 0 >/dev/null
fi
export GATE_MODEL_DIR

# 2. The reference: the fp32 CPU forward pass, every probe with its full payload.
"$LAYERDIFF" run --model "$GATE_MODEL_DIR" --tokens "$TOKENS" --decode "$DECODE" \
  --payload full --probes "$GATE_REF" --quiet >/dev/null

# 3. The candidate: your engine, writing probes through the probe library's environment.
# shellcheck disable=SC2016  # expanded by the bash -c below, with the variables exported above
ENGINE=${ENGINE:-'"$LAYERDIFF" run --model "$GATE_MODEL_DIR" --tokens "$TOKENS" --emulate bf16 --follow "$GATE_REF" --quiet'}
rm -f "$GATE_CAND"
LAYERDIFF_PROBES=$GATE_CAND LAYERDIFF_PROBE_PAYLOAD=full bash -c "$ENGINE" >/dev/null
[[ -s $GATE_CAND ]] || { echo "layerdiff-gate.sh: the engine wrote no probes to $GATE_CAND" >&2; exit 2; }

# 4. Compare. Without a baseline there is nothing to hold the candidate to: say how to make one.
reports_args=(--json "$reports/report.json" --md "$reports/summary.md"
              --html "$reports/report.html" --junit "$reports/junit.xml")
rc=0
if $update; then
  mkdir -p "$(dirname "$BASELINE")"
  # shellcheck disable=SC2086  # COMPARE_ARGS is a list of options
  "$LAYERDIFF" compare "$GATE_REF" "$GATE_CAND" --baseline "$BASELINE" --update-baseline --brief \
    "${reports_args[@]}" $COMPARE_ARGS || rc=$?
  ((rc == 0)) && echo "layerdiff-gate.sh: review $BASELINE and commit it to accept this candidate"
elif [[ ! -f $BASELINE ]]; then
  echo "layerdiff-gate.sh: no baseline at $BASELINE. Accept the current candidate with" >&2
  echo "  $0 --update-baseline   and commit $BASELINE" >&2
  rc=2
else
  # shellcheck disable=SC2086
  "$LAYERDIFF" compare "$GATE_REF" "$GATE_CAND" --baseline "$BASELINE" --brief \
    "${reports_args[@]}" $COMPARE_ARGS || rc=$?
fi

# 5. The job summary (GitHub Actions reads this file; elsewhere post summary.md as you like).
if [[ -n ${GITHUB_STEP_SUMMARY:-} && -f $reports/summary.md ]]; then
  cat "$reports/summary.md" >>"$GITHUB_STEP_SUMMARY"
fi
echo "layerdiff-gate.sh: exit $rc; reports in $reports (report.html, summary.md, report.json, junit.xml)"
exit "$rc"

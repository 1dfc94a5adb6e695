#!/usr/bin/env bash
# Runs one target under one compute-sanitizer tool and fails on any error it reports:
#   sanitize.sh TOOL kernels|probes|run [TEST_BINARY]
# TOOL is memcheck, initcheck, racecheck or synccheck; 'kernels' and 'probes' run the given unit
# test binary (test_cuda_kernels, test_cuda_probes), 'run' a probed tiny-preset run of 130 tokens
# (ld_sanitize_tokens: every kernel of a run runs) and 3 decode steps on the CUDA path (full
# payloads, every tag). Exits 77 ("skipped: ...") when compute-sanitizer or a usable GPU is
# missing. Labels gpu;sanitize.
set -uo pipefail
# ld_need_cuda MODEL: exit 77 without a usable CUDA device (tests/e2e/lib.sh)
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
: "${LD_BIN:?}"
tool=${1:?tool}
what=${2:?target}
bin=${3:-}
CS=${LD_COMPUTE_SANITIZER:-}
if [[ -z $CS ]]; then
  CS=$(command -v compute-sanitizer || true)
  for d in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer; do
    [[ -z $CS && -x $d/compute-sanitizer ]] && CS=$d/compute-sanitizer
  done
fi
if [[ -z $CS ]]; then
  echo "skipped: compute-sanitizer not found (PATH, /usr/local/cuda, LD_COMPUTE_SANITIZER)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$LD_BIN" gen-model "$tmp/m" --preset tiny --seed 3 >/dev/null || exit 1
ld_need_cuda "$tmp/m"
# --error-exitcode makes any reported error fail the test, whatever the target's own exit code.
cs=("$CS" --tool "$tool" --error-exitcode 99 --print-limit 20)
case $tool in
  racecheck) cs+=(--racecheck-report all) ;;
  memcheck | initcheck | synccheck) ;;
  *) echo "unknown tool $tool"; exit 2 ;;
esac
# Its report goes to the log as well, for the checks after it.
case $what in
  kernels | probes)
    [[ -x $bin ]] || { echo "no test binary '$bin'"; exit 2; }
    # The tests that fault the device on purpose (an illegal write) skip themselves, loudly.
    LD_UNDER_SANITIZER=$tool "${cs[@]}" "$bin" 2>&1 | tee "$tmp/log"
    ;;
  run)
    "${cs[@]}" "$LD_BIN" run --model "$tmp/m" --tokens "$(ld_sanitize_tokens)" --decode 3 \
      --backend cuda --payload full --probes "$tmp/p.jsonl" --quiet 2>&1 | tee "$tmp/log"
    ;;
  *) echo "unknown target $what"; exit 2 ;;
esac
rc=${PIPESTATUS[0]}
echo "compute-sanitizer --tool $tool on $what: exit $rc"
# A sanitizer that cannot attach to this device (seen under gVisor) checks nothing: a skip with
# its words, as when compute-sanitizer is missing.
if unsupported=$(grep -m1 '^========= .*Device not supported' "$tmp/log"); then
  echo "skipped: compute-sanitizer cannot check this device: ${unsupported#========= }"
  exit 77
fi
[[ $rc -eq 0 ]] || exit 1
# Exit 0 is not enough: the sanitizer must have reported on a target that really ran to its end.
# (memcheck, initcheck, synccheck: "ERROR SUMMARY: 0 errors"; racecheck: "RACECHECK SUMMARY: 0
# hazards displayed (0 errors, 0 warnings)".)
if ! grep -Eq '^========= [A-Z]+ SUMMARY: (0 errors|[0-9]+ hazards? displayed \(0 errors)' \
  "$tmp/log"; then
  echo "FAIL: no '========= ... SUMMARY: 0 errors' line: the sanitizer did not report on $what"
  exit 1
fi
case $what in
  kernels | probes)
    if ! grep -Eq '^\[  PASSED  \] [1-9][0-9]* test' "$tmp/log"; then
      echo "FAIL: $bin did not report its passed tests: it did not run to its end"
      exit 1
    fi
    ;;
  run)
    if ! tail -n 1 "$tmp/p.jsonl" 2>/dev/null | grep -q '^{"record":"end","status":"ok"'; then
      echo "FAIL: the probed run did not write its probes to an ok end record"
      exit 1
    fi
    ;;
esac
exit 0

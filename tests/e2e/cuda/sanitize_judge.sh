#!/usr/bin/env bash
# sanitize.sh's verdicts, judged against stand-ins for compute-sanitizer: a sanitizer that exits 0
# must also have reported "0 errors" on a target that ran to its end, or the test fails; one that
# cannot attach to the device makes it skip (77); reported errors fail it. LD_BIN must be a
# layerdiff whose CUDA path runs here: on a machine without a GPU, the CPU emulation's
# (tests/unit/cuda/emu/run.sh runs this in its sanitizer modes, so make test does).
set -uo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
: "${LD_BIN:?}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The stand-in takes compute-sanitizer's options (each with its value), then the target; what it
# does is $FAKE_MODE.
cat >"$tmp/cs" <<'SH'
#!/usr/bin/env bash
while [[ $1 == --* ]]; do shift 2; done
case $FAKE_MODE in
  clean) "$@"; rc=$?; echo "========= ERROR SUMMARY: 0 errors"; exit $rc ;;
  race_clean) "$@"; rc=$?
    echo "========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)"; exit $rc ;;
  silent) "$@" ;;
  no_target) echo "========= ERROR SUMMARY: 0 errors"; exit 0 ;;
  unsupported) echo "========= Error: Device not supported"; exit 1 ;;
  errors) echo "========= Invalid __shared__ read of size 12 bytes"
    echo "========= ERROR SUMMARY: 1 error"; exit 99 ;;
esac
SH
# Stand-ins for a unit test binary: one that reports its passed tests, one that ends early.
printf '#!/bin/sh\necho "[==========] 3 test(s) run."\necho "[  PASSED  ] 3 test(s)."\n' \
  >"$tmp/tests_ok"
printf '#!/bin/sh\necho "[==========] Running 3 test(s)."\n' >"$tmp/tests_cut"
chmod +x "$tmp/cs" "$tmp/tests_ok" "$tmp/tests_cut"

judge() { # NAME WANT_RC MODE TOOL TARGET [BIN]
  local name=$1 want=$2 mode=$3 before=$fails
  shift 3
  FAKE_MODE=$mode LD_COMPUTE_SANITIZER=$tmp/cs bash "$here/sanitize.sh" "$@" >"$tmp/out" 2>&1
  check_rc "$name" "$want" $?
  [[ $fails -eq $before ]] || sed 's/^/    /' "$tmp/out"
}
judge "clean report on a probed run that ended: pass" 0 clean memcheck run
judge "clean racecheck report on tests that passed: pass" 0 race_clean racecheck kernels \
  "$tmp/tests_ok"
judge "exit 0 without a report: fail" 1 silent initcheck run
judge "a report of 0 errors on a target that never ran: fail" 1 no_target memcheck run
judge "a report of 0 errors on tests that ended early: fail" 1 clean synccheck probes \
  "$tmp/tests_cut"
judge "reported errors: fail" 1 errors memcheck kernels "$tmp/tests_ok"
judge "a device the sanitizer cannot attach to: skip" 77 unsupported memcheck run
exit $((fails > 0))

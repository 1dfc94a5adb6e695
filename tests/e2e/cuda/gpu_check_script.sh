#!/usr/bin/env bash
# scripts/gpu_check.sh where it can run without a GPU, CI included: its refusals (exit 2, naming
# the problem, nothing written) and, with every device hidden (CUDA_VISIBLE_DEVICES=, so this also
# runs on GPU machines), exit 77 with a summary.txt that says why and no step run.
#   gpu_check_script.sh BUILD_DIR   (a build with CUDA: its layerdiff, bench_cuda, GPU tests)
set -uo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
: "${LD_SRC:?}"
B=${1:?usage: gpu_check_script.sh BUILD_DIR}
G=$LD_SRC/scripts/gpu_check.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check_timeout=60

check "no arguments" 2 "usage: scripts/gpu_check.sh OUTDIR" bash "$G"
check "too many arguments" 2 "usage:" bash "$G" "$tmp/o" "$B" "$tmp" extra
mkdir "$tmp/notbuild"
check "not a build directory" 2 "$tmp/notbuild is not a configured build directory" \
  bash "$G" "$tmp/o" "$tmp/notbuild"
check "missing LIB_DIR" 2 "library directory $tmp/nolib does not exist" \
  bash "$G" "$tmp/o" "$B" "$tmp/nolib"
: >"$tmp/file"
check "OUTDIR is a file" 2 "$tmp/file exists and is not a directory" bash "$G" "$tmp/file" "$B"
check "OUTDIR is the build" 2 "is one of the inputs" bash "$G" "$B" "$B"
check "OUTDIR is LIB_DIR" 2 "is one of the inputs" bash "$G" "$tmp" "$B" "$tmp"
[[ ! -e $tmp/o && ! -e $B/summary.txt && ! -e $tmp/summary.txt ]]
check_rc "the refusals wrote nothing" 0 $?

out=$(CUDA_VISIBLE_DEVICES='' timeout 60 bash "$G" "$tmp/o" "$B" 2>&1)
check_rc "no device: exit 77" 77 $? "no usable CUDA device" "$tmp/o/summary.txt"
echo "$out" | sed 's/^/    /'
check_rc "no device: summary names the CPU" 0 0 "cpu: " "$tmp/o/summary.txt"
check_rc "no device: no step ran" 0 0 "skipped: the GPU tests" "$tmp/o/summary.txt"
files=$(ls "$tmp/o")
check_rc "no device: summary.txt is the only file (got: $files)" 0 \
  "$([[ $files == summary.txt ]]; echo $?)"
exit $((fails > 0))

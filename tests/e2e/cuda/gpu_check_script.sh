#!/usr/bin/env bash
# The GPU-machine scripts where they can run without a GPU, CI included:
# - scripts/gpu_check.sh: its refusals (exit 2, naming the problem, nothing written) and, with
#   every device hidden (CUDA_VISIBLE_DEVICES=, so this also runs on GPU machines), exit 77 with a
#   summary.txt that says why and no step run;
# - scripts/ctest_carried.sh, which gpu_check.sh runs ctest through: its refusals, a copy of this
#   build configured where it lies (ctest as it is), and a copy that says it was configured at
#   other paths with a Python that does not exist (a build carried to a GPU machine), whose tests
#   must still find their scripts, binary and Python through the mirror;
# - scripts/gpu_pack.sh: its refusals, and its pack, accepted by both scripts above.
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
sed 's/^/    /' <<<"$out"
check_rc "no device: summary names the CPU" 0 0 "cpu: " "$tmp/o/summary.txt"
check_rc "no device: no step ran" 0 0 "skipped: the GPU tests" "$tmp/o/summary.txt"
files=$(ls "$tmp/o")
check_rc "no device: summary.txt is the only file (got: $files)" 0 \
  "$([[ $files == summary.txt ]]; echo $?)"
C=$LD_SRC/scripts/ctest_carried.sh
check "ctest_carried: not a build" 2 "is not a configured build directory" \
  bash "$C" "$tmp/notbuild" "$tmp/m"

# Copies of this build's cache, ctest's files and CLI (never ctest on the build itself: the run
# that runs this test writes its logs there). carry DIR SRC BUILD PYTHON: a copy that says it was
# configured with those paths.
(cd "$B" && find . -name CTestTestfile.cmake) >"$tmp/files"
echo ./CMakeCache.txt >>"$tmp/files"
carry() {
  while read -r f; do
    mkdir -p "$1/$(dirname "$f")"
    sed -e "s|$B|$3|g" -e "s|$LD_SRC|$2|g" -e "s|$LD_PYTHON|$4|g" "$B/$f" >"$1/$f"
  done <"$tmp/files"
  mkdir -p "$1/src/cli"
  cp "$LD_BIN" "$1/src/cli/layerdiff"
}
tests='^(cuda_no_device|cuda_forward_vs_ref_tiny)$'

# Configured where it is: ctest runs on it as it is, no mirror.
H=$tmp/here
carry "$H" "$LD_SRC" "$H" "$LD_PYTHON"
check "configured where it is: ctest as it is" 0 "100% tests passed" \
  bash "$C" "$H" "$tmp/mirror0" -R "$tests"
[[ ! -e $tmp/mirror0 ]]
check_rc "  ... no mirror written" 0 $?

check "ctest_carried: refuses a mirror inside the build" 2 "inside it" \
  bash "$C" "$H" "$H/mirror" -R "$tests"
[[ ! -e $H/mirror ]]
check_rc "  ... and creates nothing there" 0 $?

# Carried: configured in /nonexistent (sources, build, Python). Mirrored with today's paths,
# cuda_no_device finds its script and binary, and cuda_forward_vs_ref_tiny its Python (python3 on
# PATH, with numpy).
K=$tmp/carried
carry "$K" /nonexistent/src /nonexistent/build /nonexistent/python3
mkdir -p "$tmp/bin"
ln -s "$LD_PYTHON" "$tmp/bin/python3"
ctest --test-dir "$K" -R "$tests" >"$tmp/asis.log" 2>&1
check_rc "carried: its tests fail without the mirror (so the checks below can fail)" 0 0 \
  "0% tests passed" "$tmp/asis.log"
rm -rf "$K/Testing"
stamp=$(find "$K" -type f -exec md5sum {} + | sort | md5sum)
PATH=$tmp/bin:$PATH bash "$C" "$K" "$tmp/mirror" -R "$tests" >"$tmp/carried.log" 2>&1
rc=$?
check_log=("$tmp/carried.log")
check_rc "carried: both tests pass or skip through the mirror" 0 $rc \
  "running with $LD_SRC, $K, $tmp/bin/python3" "$tmp/carried.log"
check_rc "  ... 2 tests, none failed" 0 0 "100% tests passed, 0 tests failed out of 2" \
  "$tmp/carried.log"
[[ $(find "$K" -type f -exec md5sum {} + | sort | md5sum) == "$stamp" && ! -e $K/Testing ]]
check_rc "  ... the carried build is left as it was" 0 $?
# gpu_pack.sh: the pieces gpu_check.sh needs, with their libraries, accepted by gpu_check.sh as a
# build and by ctest_carried.sh as a carried one; never over a directory that is not a pack.
mkdir "$tmp/full" && : >"$tmp/full/keep"
check "gpu_pack: refuses a directory that is not a pack" 2 "not an earlier pack" \
  bash "$LD_SRC/scripts/gpu_pack.sh" "$B" "$tmp/full"
[[ -f $tmp/full/keep ]]
check_rc "  ... and leaves it as it was" 0 $?
check "gpu_pack: refuses a pack inside the build" 2 "must not hold one another" \
  bash "$LD_SRC/scripts/gpu_pack.sh" "$B" "$B/pack-in-build"
[[ ! -e $B/pack-in-build ]]
check_rc "  ... and creates nothing there" 0 $?
check "gpu_pack" 0 "4 binaries; lib/: " bash "$LD_SRC/scripts/gpu_pack.sh" "$B" "$tmp/pack"
check "gpu_pack: again, over the earlier pack" 0 "4 binaries" \
  bash "$LD_SRC/scripts/gpu_pack.sh" "$B" "$tmp/pack"
[[ -f $tmp/pack/lib/libcjson.so.1 && ! -e $tmp/pack/lib/libc.so.6 &&
   -x $tmp/pack/src/cli/layerdiff ]]
check_rc "  ... holds the CLI and libcjson, not the C library" 0 $?
CUDA_VISIBLE_DEVICES='' timeout 60 bash "$G" "$tmp/o3" "$tmp/pack" "$tmp/pack/lib" >/dev/null 2>&1
check_rc "gpu_check.sh on the pack, devices hidden: exit 77" 77 $? "no usable CUDA device" \
  "$tmp/o3/summary.txt"
check "ctest_carried on the pack" 0 "100% tests passed" \
  bash "$C" "$tmp/pack" "$tmp/mirror_pack" -R '^cuda_no_device$'
exit $((fails > 0))

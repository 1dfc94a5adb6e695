#!/usr/bin/env bash
# gpu_pack.sh — what scripts/gpu_check.sh needs of a CUDA build, for a GPU machine without the
# compiler or the packages the build used: BUILD_DIR's CMakeCache.txt and ctest files, layerdiff,
# bench_cuda and the two GPU unit tests, each at its place in the tree (about 25 MB), and in
# PACK_DIR/lib the shared libraries they load (about 2 MB). Left out: the C library's own, the C++
# runtime and cuBLAS, which a machine with CUDA has (cuBLAS alone is over 500 MB).
#   scripts/gpu_pack.sh BUILD_DIR PACK_DIR
# Then, on the GPU machine, with the same sources:
#   scripts/gpu_check.sh OUTDIR PACK_DIR PACK_DIR/lib
# (ctest runs the pack's tests through scripts/ctest_carried.sh, since the pack is not where the
# build was configured.) PACK_DIR must be absent, empty, or an earlier pack, which is replaced.
# Exit 0, or 2 naming the problem.
set -uo pipefail
die() { echo "gpu_pack: $*" >&2; exit 2; }
[[ $# -eq 2 ]] || die "usage: scripts/gpu_pack.sh BUILD_DIR PACK_DIR"
[[ -f $1/CMakeCache.txt ]] || die "$1 is not a configured build directory (no CMakeCache.txt)"
B=$(cd "$1" && pwd)
P=$(realpath -m -- "$2") || die "bad PACK_DIR '$2'"
[[ $P != "$B" && $B != "$P"/* && $P != "$B"/* ]] ||
  die "PACK_DIR $P and the build directory $B must not hold one another"
bins=(src/cli/layerdiff tests/bench/bench_cuda tests/unit/cuda/test_cuda_kernels
      tests/unit/cuda/test_cuda_probes)
for f in "${bins[@]}"; do
  [[ -x $B/$f ]] || die "$B/$f is missing: build with CUDA first (nvcc in /usr/local/cuda)"
done
MARK=.layerdiff-gpu-pack
if [[ -e $P ]]; then
  [[ -d $P ]] || die "$P exists and is not a directory"
  if [[ -e $P/$MARK ]]; then
    rm -rf "$P" || die "cannot remove the earlier pack $P"
  elif [[ -n $(ls -A "$P") ]]; then
    die "$P is not empty and not an earlier pack: refusing to replace it"
  fi
fi
mkdir -p "$P/lib" || die "cannot create $P"
: >"$P/$MARK"
cp "$B/CMakeCache.txt" "$P/" || die "cannot write $P"
(cd "$B" && find . -name CTestTestfile.cmake -not -path './_deps/*') | while read -r f; do
  mkdir -p "$P/$(dirname "$f")" && cp "$B/$f" "$P/$f"
done
for f in "${bins[@]}"; do
  if ! { mkdir -p "$P/$(dirname "$f")" && cp "$B/$f" "$P/$f"; }; then
    die "cannot copy $f into $P"
  fi
done
# Every library ldd resolves for the four, but those of the C library, the C++ runtime and cuBLAS.
missing=$(cd "$B" && ldd "${bins[@]}" | grep 'not found' | sort -u)
[[ -z $missing ]] || die "the build's binaries lack libraries here already: $missing"
skip='^(libc|libm|libdl|libpthread|librt|libresolv|libstdc\+\+|libgcc_s|libcublas|libcublasLt'
skip+='|ld-linux-.*)\.so'
(cd "$B" && ldd "${bins[@]}") | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
  while read -r name path; do
    [[ $name =~ $skip ]] && continue
    cp -L "$path" "$P/lib/$name" || exit 1
  done || die "cannot copy the libraries into $P/lib"
n=$(find "$P" -name CTestTestfile.cmake | wc -l)
echo "gpu_pack: $P ($(du -sh "$P" | cut -f1)): $n ctest files, ${#bins[@]} binaries;" \
  "lib/: $(cd "$P/lib" && echo *)"

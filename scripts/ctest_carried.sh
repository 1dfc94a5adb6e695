#!/usr/bin/env bash
# ctest_carried.sh — ctest on a build directory that was configured somewhere else: built on one
# machine and carried to a GPU machine, or moved. ctest's files (CTestTestfile.cmake) name the
# absolute paths of the sources, the build and the Python the tests run with, as they were at
# configure time. Where those differ from here, this writes a mirror of those files with today's
# paths into MIRROR_DIR and runs ctest there; the build directory itself is never written. Where
# nothing differs, it runs ctest on the build directory as it is.
#   scripts/ctest_carried.sh BUILD_DIR MIRROR_DIR [CTEST_ARGS...]
# The sources are the tree this script is in. The Python: the configured one (LD_PYTHON) when it
# imports numpy here, else python3 on PATH when that one does. Says on stderr what it rewrote.
# Exit: ctest's, or 2 when BUILD_DIR is not a configured build or MIRROR_DIR cannot be used
# (the sources, the build or inside it, a file, not writable).
set -uo pipefail
die() { echo "ctest_carried: $*" >&2; exit 2; }
[[ $# -ge 2 ]] || die "usage: scripts/ctest_carried.sh BUILD_DIR MIRROR_DIR [CTEST_ARGS...]"
SRC=$(cd "$(dirname "$0")/.." && pwd)
[[ -f $1/CMakeCache.txt ]] || die "$1 is not a configured build directory (no CMakeCache.txt)"
B=$(cd "$1" && pwd)
M=$2
shift 2
cache() { sed -n "s|^$1:[A-Z]*=||p" "$B/CMakeCache.txt" | head -1; }
cfg_src=$(cache CMAKE_HOME_DIRECTORY)
cfg_b=$(cache CMAKE_CACHEFILE_DIR)
cfg_py=$(cache LD_PYTHON)
[[ -n $cfg_src && -n $cfg_b ]] || die "$B/CMakeCache.txt names no source or build directory"
M=$(realpath -m -- "$M") || die "bad MIRROR_DIR"
[[ $M != "$B" && $M != "$B"/* && $M != "$SRC" ]] ||
  die "MIRROR_DIR $M is the source directory, or the build directory or inside it"
[[ ! -e $M || -d $M ]] || die "$M exists and is not a directory"
py=$cfg_py
if [[ -n $cfg_py ]] && ! "$cfg_py" -c 'import numpy' >/dev/null 2>&1; then
  alt=$(command -v python3 || true)
  if [[ -n $alt && $alt != "$cfg_py" ]] && "$alt" -c 'import numpy' >/dev/null 2>&1; then
    py=$alt
  fi
fi
if [[ $cfg_src == "$SRC" && $cfg_b == "$B" && $py == "$cfg_py" ]]; then
  exec ctest --test-dir "$B" "$@"
fi
mkdir -p "$M" || die "cannot create $M"
echo "ctest_carried: configured as sources $cfg_src, build $cfg_b, Python $cfg_py;" \
  "running with $SRC, $B, $py (ctest files mirrored in $M)" >&2
# The build directory first: it often lies inside the sources, so its path begins with theirs.
python3 - "$B" "$M" "$cfg_b" "$B" "$cfg_src" "$SRC" "$cfg_py" "$py" <<'PY' || die "cannot write $M"
import os
import sys

build, mirror = sys.argv[1], sys.argv[2]
pairs = [(sys.argv[i], sys.argv[i + 1]) for i in (3, 5, 7)]
pairs = [(old, new) for old, new in pairs if old and old != new]
n = 0
for root, dirs, files in os.walk(build):
    if "CTestTestfile.cmake" not in files:
        continue
    with open(os.path.join(root, "CTestTestfile.cmake"), encoding="utf-8") as f:
        text = f.read()
    for i, (old, _) in enumerate(pairs):
        text = text.replace(old, "\0%d\0" % i)
    for i, (_, new) in enumerate(pairs):
        text = text.replace("\0%d\0" % i, new)
    out = os.path.join(mirror, os.path.relpath(root, build))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "CTestTestfile.cmake"), "w", encoding="utf-8") as f:
        f.write(text)
    n += 1
if n == 0:
    sys.exit("no CTestTestfile.cmake under " + build)
PY
exec ctest --test-dir "$M" "$@"

#!/usr/bin/env bash
# cmake/LdGitRev.cmake, which the ld_version target runs at every build: the header names the
# commit checked out (not the one the build was configured at), "-dirty" while a tracked file
# differs from it, "unknown" outside a git checkout; an unchanged revision leaves the file alone.
#   usage: check_git_rev.sh SRC_DIR
set -uo pipefail
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
rev_in() { sed -n 's/^#define LD_GIT_REVISION "\(.*\)"$/\1/p' "$tmp/ld_version.h"; }
gen() { cmake -DLD_SRC="$tmp/repo" -DLD_OUT="$tmp/ld_version.h" -DPROJECT_VERSION=9.8.7 \
          -P "$src/cmake/LdGitRev.cmake" || fail "cmake -P exited $?"; }

mkdir -p "$tmp/repo/cmake"
cp "$src/cmake/ld_version.h.in" "$tmp/repo/cmake/"
gen
[[ $(rev_in) == unknown ]] || fail "outside git: '$(rev_in)', want unknown"
grep -q '^#define LD_VERSION_STRING "9.8.7"$' "$tmp/ld_version.h" || fail "version not written"

git -C "$tmp/repo" init -q
git -C "$tmp/repo" -c user.name=t -c user.email=t@t add -A
git -C "$tmp/repo" -c user.name=t -c user.email=t@t commit -qm one
one=$(git -C "$tmp/repo" rev-parse --short=12 HEAD)
gen
[[ $(rev_in) == "$one" ]] || fail "first commit: '$(rev_in)', want $one"
touch -d '2000-01-01' "$tmp/ld_version.h"
gen
[[ $(stat -c %Y "$tmp/ld_version.h") == $(date -d 2000-01-01 +%s) ]] ||
  fail "an unchanged revision rewrote the header (everything that includes it recompiles)"

echo "// edited" >>"$tmp/repo/cmake/ld_version.h.in"
echo new >"$tmp/repo/untracked.txt"
gen
[[ $(rev_in) == "$one-dirty" ]] || fail "tracked file edited: '$(rev_in)', want $one-dirty"

git -C "$tmp/repo" -c user.name=t -c user.email=t@t commit -qam two
two=$(git -C "$tmp/repo" rev-parse --short=12 HEAD)
gen
[[ $(rev_in) == "$two" ]] || fail "after a commit: '$(rev_in)', want $two (untracked files do not count)"

[[ $fails == 0 ]] && echo "check_git_rev: ok"
exit $((fails > 0))

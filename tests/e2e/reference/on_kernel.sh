#!/usr/bin/env bash
# on_kernel.sh PATH CMD...: runs CMD (a reference test) with LD_REF_KERNEL=PATH, so that the test
# holds on that kernel path; exits 77 ("skipped: ...") when this CPU cannot run PATH. Checks that
# the path is the one chosen before handing over. Needs LD_BIN (set by ctest).
set -euo pipefail
path=${1:?kernel path}
shift
: "${LD_BIN:?}"
list=$("$LD_BIN" run --list-kernels)
if ! grep -q "^$path " <<<"$list"; then
  echo "FAIL: this build has no kernel path '$path':"
  echo "$list"
  exit 1
fi
if ! grep -q "^$path  *runs on this CPU" <<<"$list"; then
  echo "skipped: this CPU cannot run the $path kernels"
  exit 77
fi
export LD_REF_KERNEL=$path
if ! "$LD_BIN" run --list-kernels | grep -q "^$path .*(chosen)$"; then
  echo "FAIL: LD_REF_KERNEL=$path did not choose $path"
  exit 1
fi
exec "$@"

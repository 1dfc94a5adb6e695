#!/usr/bin/env bash
# `layerdiff run --backend cuda` where the CUDA path cannot run exits 2 with a message that says
# why: built with CUDA but no device (CUDA_VISIBLE_DEVICES= hides every GPU, so this also runs on
# GPU machines), or built without CUDA. Runs everywhere, CI included. Argument: cuda | nocuda (how
# this layerdiff was built).
set -uo pipefail
built=${1:?usage: no_device.sh cuda|nocuda}
: "${LD_BIN:?}"
fail=0

expect() { # expect NAME RC PATTERN -- ARGS...
  local name=$1 want_rc=$2 pattern=$3
  shift 4
  local out rc
  out=$(CUDA_VISIBLE_DEVICES= "$LD_BIN" "$@" 2>&1)
  rc=$?
  if [[ $rc -ne $want_rc ]] || ! grep -q -- "$pattern" <<<"$out"; then
    echo "FAIL $name: exit $rc (want $want_rc), output:"
    echo "$out"
    fail=1
  else
    echo "ok   $name: exit $rc: $out"
  fi
  if [[ $(wc -l <<<"$out") -ne 1 ]]; then
    echo "FAIL $name: the message is not one line"
    fail=1
  fi
}

if [[ $built == cuda ]]; then
  expect "no device" 2 "no usable CUDA device" -- run --model /nonexistent --tokens 1 --backend cuda
else
  expect "built without CUDA" 2 "built without CUDA" -- \
    run --model /nonexistent --tokens 1 --backend cuda
fi
expect "emulation is for the reference" 2 "emulate" -- \
  run --model /nonexistent --tokens 1 --backend cuda --emulate bf16
exit $fail

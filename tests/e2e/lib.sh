# shellcheck shell=bash
# tests/e2e/lib.sh — helpers sourced by the shell tests (bash); not run on its own. A test sources
# it with  . "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"  (adjusted to where the test lies).
#
#   check NAME WANT_RC WANT_TEXT CMD...    runs CMD; ok when it exits WANT_RC and its output
#                                          (stdout and stderr) contains WANT_TEXT (fixed string)
#   check_rc NAME WANT_RC RC [TEXT FILE]   ok when RC is WANT_RC and, if given, FILE contains TEXT
#                                          (fixed string); for a command the test ran itself
#   ld_need_cuda MODEL                     exits 77 ("skipped: ...") when 'layerdiff run --backend
#                                          cuda' on MODEL says there is no usable CUDA device
#   ld_sanitize_tokens                     prints the prompt of the probed tiny run that
#                                          compute-sanitizer checks (cuda/sanitize.sh) and the CPU
#                                          emulation mirrors (tests/unit/cuda/emu/run.sh)
#
# Each check prints "ok   NAME..." or "FAIL NAME: ..." and counts failures in $fails (set to 0
# here); the test decides its exit code from it. Settings a test may change after sourcing:
#   check_timeout   seconds after which check kills CMD (timeout(1)), so that a hang fails
#                   instead of stalling CI; empty (the default): no limit
#   check_lines     how many lines of CMD's output a failing check shows; empty: all of it
#   check_log       files whose last 4000 bytes a failing check_rc shows when the exit code is
#                   wrong (the output of the command it judged); empty: none
fails=0
check_timeout=
check_lines=
check_log=()

check() {
  local name=$1 want_rc=$2 want_text=$3
  shift 3
  local out rc
  if [[ -n $check_timeout ]]; then
    out=$(timeout "$check_timeout" "$@" 2>&1)
  else
    out=$("$@" 2>&1)
  fi
  rc=$?
  if [[ $rc != "$want_rc" ]] || ! grep -qF -- "$want_text" <<<"$out"; then
    echo "FAIL $name: exit $rc (want $want_rc), output:"
    if [[ -n $check_lines ]]; then
      head -n "$check_lines" <<<"$out" | sed 's/^/    /'
    else
      sed 's/^/    /' <<<"$out"
    fi
    echo "    (wanted to see: $want_text)"
    fails=$((fails + 1))
  else
    echo "ok   $name: $(head -n 1 <<<"$out")"
  fi
}

check_rc() {
  if [[ $2 != "$3" ]]; then
    echo "FAIL $1: exit $3, expected $2"
    local f
    for f in "${check_log[@]}"; do
      [[ -f $f ]] && tail -c 4000 "$f"
    done
    fails=$((fails + 1))
    return
  fi
  if [[ $# -ge 5 ]] && ! grep -qF -- "$4" "$5"; then
    echo "FAIL $1: '$4' not in $5:"
    head -c 4000 "$5"
    fails=$((fails + 1))
    return
  fi
  echo "ok   $1"
}

# 130 tokens: with 3 decode steps every kernel of a run runs, the tiled prefill attention (16
# queries or more) and decode attention over 133 cache slots, in two splits and their combine.
ld_sanitize_tokens() { seq -s, 3 3 390; }

ld_need_cuda() {
  local out
  out=$("${LD_BIN:?LD_BIN is not set}" run --model "$1" --tokens 1 --backend cuda --quiet 2>&1)
  if [[ $? -eq 2 && $out == *"no usable CUDA device"* ]]; then
    echo "skipped: $out"
    exit 77
  fi
}

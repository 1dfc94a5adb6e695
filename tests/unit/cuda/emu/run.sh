#!/usr/bin/env bash
# run.sh — runs the CUDA path WITHOUT A GPU: builds cuda/, probes/cuda, the GPU tests, the
# layerdiff CLI and bench_cuda against a CPU emulation of the CUDA runtime and cuBLAS (one OS thread
# per CUDA thread, blocks in turn, __shared__ as statics, a std::barrier per __syncthreads), then
# runs the GPU unit tests and, with LD_EMU_E2E=1, the GPU end-to-end tests on the result. The CLI
# goes with src/pipeline/, where the backend table is built with CUDA (LD_HAVE_CUDA).
# It checks logic (indexing, barriers, fault variants, probe order, graph capture, error path), not
# GPU numerics (fp32 sums are sequential here, cuBLAS's are not), timing or memory semantics.
# Slow (minutes: thousands of threads per launch). Not part of ctest; make test runs the
# LD_EMU_SAN=address mode below (make test-cuda-emu).
# LD_EMU_SAN=address builds all of it with AddressSanitizer and UBSan instead (into
# cuda-emu-address) and adds a probed tiny run (130 tokens, 3 decode steps, every tag, full
# payloads, following the reference's tokens; layerdiff compare against the reference must pass),
# the run that compute-sanitizer checks on a GPU, and the verdicts of the tests that run
# compute-sanitizer (tests/e2e/cuda/sanitize_judge.sh, with stand-ins for the sanitizer), and a
# graph run whose capture, then whose launch, refuses programmatic launches (the library captures
# again without them).
# Device allocations and dynamic shared memory are exactly their size and __shared__ arrays are
# globals, so an access past any of them is reported (memcheck's bounds), as is a vector load or
# store at a misaligned address (a GPU's "misaligned address").
# LD_EMU_SAN=thread does the same with ThreadSanitizer: two threads of a block touching the same
# shared or global bytes, one writing, with no barrier, fence or atomic between them (racecheck).
#   usage: tests/unit/cuda/emu/run.sh [BUILD_DIR]   (a configured build with the C libraries built)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$here/../../../.." && pwd)
B=$(cd "${1:-$SRC/build-cuda}" && pwd)
san=${LD_EMU_SAN:-}
CF="-O1 -g -ffp-contract=off -D_GNU_SOURCE -fopenmp"
LF=""
case $san in
  "") ;;
  address)
    LF="-fsanitize=address,undefined -fno-sanitize-recover=all"
    # LeakSanitizer too: device memory is host memory here, so a cudaFree left out is a leak.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    ;;
  thread)
    LF="-fsanitize=thread"
    # libgomp is not instrumented: its threads' hand-offs would look like races.
    export OMP_NUM_THREADS=1 TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
    ;;
  *) echo "run.sh: LD_EMU_SAN must be address or thread, not '$san'" >&2; exit 2 ;;
esac
O=$B/cuda-emu${san:+-$san}
CF="$CF $LF${san:+ -fno-omit-frame-pointer}"
mkdir -p "$O"
cmake --build "$B" --target ld_reference ld_compare ld_tokenizer ld_model layerdiff_probes \
  >/dev/null
INC="-I$here/include -I$here -I$SRC/cuda -I$SRC/probes/cuda/include -I$SRC/probes/include
     -I$SRC/common/include -I$SRC/model -I$SRC/common -I$SRC/reference -I$B/generated
     -I$SRC/tests/unit/cuda -I$SRC/src/cli -I$SRC/src/pipeline -I$SRC/compare
     -I$SRC/tokenizer/include"
objs=()
for cu in "$SRC"/cuda/*.cu "$SRC"/probes/cuda/*.cu; do
  n=$(basename "$cu" .cu)
  python3 "$here/transform.py" "$cu" "$O/$n.cpp"
  g++ -std=c++20 $CF -Wall -Wno-unused-function -Wno-unknown-pragmas $INC -c "$O/$n.cpp" \
      -o "$O/$n.o"
  objs+=("$O/$n.o")
done
for c in "$SRC"/cuda/*.c; do
  n=$(basename "$c" .c)
  gcc -std=c11 $CF -Wall -Wextra $INC -c "$c" -o "$O/c_$n.o"
  objs+=("$O/c_$n.o")
done
g++ -std=c++20 $CF -Wall $INC -c "$here/emu_runtime.cpp" -o "$O/emu_runtime.o"
objs+=("$O/emu_runtime.o")
LIBS="$B/reference/libld_reference.a $B/model/libld_model.a
      $B/probes/liblayerdiff_probes.a -lcjson -lz -lm -lpthread"
for t in test_cuda_kernels test_cuda_probes; do
  gcc -std=c11 $CF $INC -c "$SRC/tests/unit/cuda/$t.c" -o "$O/$t.o"
  g++ -fopenmp $LF "$O/$t.o" "${objs[@]}" $LIBS -lcmocka -o "$O/$t"
done
clis=()
for c in "$SRC"/src/pipeline/*.c "$SRC"/src/cli/*.c; do
  n=$(basename "$(dirname "$c")")_$(basename "$c" .c)
  gcc -std=c11 $CF -DLD_HAVE_CUDA=1 $INC -c "$c" -o "$O/$n.o"
  clis+=("$O/$n.o")
done
g++ -fopenmp $LF "${clis[@]}" "${objs[@]}" "$B/compare/libld_compare.a" \
  "$B/tokenizer/libld_tokenizer.a" $LIBS -lutf8proc -lonig -o "$O/layerdiff"
g++ -std=c++20 $CF $INC -x c++ -c "$SRC/tests/bench/bench_cuda.cu" -o "$O/bench_cuda.o"
g++ -fopenmp $LF "$O/bench_cuda.o" "${objs[@]}" $LIBS -o "$O/bench_cuda"
echo "emulated build in $O"
fail=0
for t in test_cuda_kernels test_cuda_probes; do
  "$O/$t" || fail=1
done
if [[ -n $san ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  L=$O/layerdiff
  $L gen-model "$tmp/m" --preset tiny --seed 3 >/dev/null
  # shellcheck source=../../../e2e/lib.sh
  . "$SRC/tests/e2e/lib.sh" # ld_sanitize_tokens: the prompt of the sanitized run
  run=(run --model "$tmp/m" --tokens "$(ld_sanitize_tokens)" --decode 3 --payload full --quiet)
  # The CUDA run follows the reference's tokens, and must compare within the bf16 tolerances.
  if $L "${run[@]}" --probes "$tmp/ref.jsonl" >/dev/null &&
     $L "${run[@]}" --backend cuda --follow "$tmp/ref.jsonl" --probes "$tmp/p.jsonl" >/dev/null &&
     $L compare "$tmp/ref.jsonl" "$tmp/p.jsonl" >"$tmp/compare.txt"; then
    echo "LD_EMU_SAN=$san: probed tiny run (130 tokens, 3 decode steps, full payloads): clean;"
    echo "  against the reference, $(grep -m1 '^verdict' "$tmp/compare.txt")"
  else
    echo "LD_EMU_SAN=$san: probed tiny run failed"; cat "$tmp/compare.txt" 2>/dev/null; fail=1
  fi
  # A driver that refuses programmatic launches in a graph (LD_EMU_NO_PDL_GRAPH), while capturing
  # it or at its launch: the decode step must be captured again without them, decode the same
  # tokens, and the CLI say so (a note, which a run that was not refused does not print).
  gen=(run --model "$tmp/m" --tokens "17,3,250,41" --decode 3 --backend cuda)
  note="run: note: the decode steps' CUDA graph was captured without programmatic launches"
  a=$($L "${gen[@]}" 2>"$tmp/plain.txt") || a=""
  # Graphs captured: the plain run's one; a refused capture ends without one, a refused launch
  # after one; then the graph without programmatic launches.
  for stage in capture:1 launch:2; do
    n=${stage#*:} stage=${stage%:*} b=""
    if [[ -n $a ]] && ! grep -qF "$note" "$tmp/plain.txt" &&
       [[ $(grep -c '^emu: captured a graph' "$tmp/plain.txt") == 1 ]] &&
       b=$(LD_EMU_NO_PDL_GRAPH=$stage $L "${gen[@]}" 2>"$tmp/refused.txt") &&
       [[ $(grep -c '^emu: captured a graph' "$tmp/refused.txt") == "$n" && $a == "$b" ]] &&
       grep -qF "$note" "$tmp/refused.txt"; then
      echo "LD_EMU_SAN=$san: programmatic launches refused at the graph's $stage: captured again"
      echo "  without them, the same tokens ($b), and $(grep -m1 -oF "$note" "$tmp/refused.txt")"
    else
      echo "LD_EMU_SAN=$san: programmatic launches refused at the graph's $stage: a run failed,"
      echo "  the tokens differ ('$a' against '${b:-}'), or the note is missing or wrongly there"
      cat "$tmp/refused.txt" "$tmp/plain.txt"; fail=1
    fi
  done
  # The profiler's range (LAYERDIFF_CUDA_PROFILE, for `ncu --profile-from-start off`) holds one
  # phase's launches and no others: the prefill's are what a run without decode steps launches,
  # the decode steps' the rest; from the graph and on the stream alike. 16 tokens, so that the
  # prefill runs cuBLAS GEMMs (up to 4 rows go through the GEMVs) and decode none.
  counts() { # [VAR=VALUE...] -- RUN ARGS: "kernels GEMMs" of the run, then of the range if any
    local e=()
    while [[ $1 != -- ]]; do e+=("$1"); shift; done
    shift
    env LD_EMU_COUNT=1 "${e[@]}" "$L" "$@" 2>&1 >/dev/null |
      sed -nE 's/^emu: ([0-9]+) kernels and ([0-9]+) cuBLAS GEMMs .*/\1 \2/p' | tr '\n' ' '
    echo
  }
  p16=(run --model "$tmp/m" --tokens "$(seq -s, 5 5 80)" --backend cuda --quiet)
  read -r k0 g0 _ < <(counts -- "${p16[@]}")
  read -r k g pk pg < <(counts LAYERDIFF_CUDA_PROFILE=prefill -- "${p16[@]}" --decode 3)
  read -r _ _ dk dg < <(counts LAYERDIFF_CUDA_PROFILE=decode -- "${p16[@]}" --decode 3)
  read -r _ _ sk sg < <(counts LAYERDIFF_CUDA_PROFILE=decode LAYERDIFF_CUDA_GRAPH=0 -- \
    "${p16[@]}" --decode 3)
  bad=$(LAYERDIFF_CUDA_PROFILE=both $L "${gen[@]}" 2>&1 >/dev/null || true)
  if [[ -n ${k0:-} && -n ${sk:-} && $k0 -gt 0 && $g0 -gt 0 && $pk/$pg == "$k0/$g0" && $k -gt $k0 &&
        $dk/$dg == "$((k - k0))/$((g - g0))" && $sk/$sg == "$dk/$dg" &&
        $bad == *"LAYERDIFF_CUDA_PROFILE is 'both': it must be prefill or decode"* ]]; then
    echo "LD_EMU_SAN=$san: the profiler's range: prefill $pk kernels + $pg GEMMs (a run without"
    echo "  decode steps: $k0 + $g0), decode $dk + $dg (graph) and $sk + $sg (stream) of $k + $g"
  else
    echo "LD_EMU_SAN=$san: the profiler's range holds the wrong launches: without decode steps" \
      "${k0:-?} + ${g0:-?}; prefill ${pk:-?} + ${pg:-?}; decode ${dk:-?} + ${dg:-?} (graph)," \
      "${sk:-?} + ${sg:-?} (stream); of ${k:-?} + ${g:-?}; 'both' said: $bad"
    fail=1
  fi
  # The compute-sanitizer tests' judge (sanitize.sh), against stand-ins for the sanitizer.
  if [[ $san == address ]]; then
    LD_BIN=$L bash "$SRC/tests/e2e/cuda/sanitize_judge.sh" || fail=1
  fi
fi
if [[ ${LD_EMU_E2E:-0} == 1 ]]; then
  export LD_BIN=$O/layerdiff LD_PYTHON=${LD_PYTHON:-python3} LD_SRC=$SRC
  for p in tiny small; do "$LD_PYTHON" "$SRC/tests/e2e/cuda/forward_vs_ref.py" $p || fail=1; done
  "$LD_PYTHON" "$SRC/tests/e2e/cuda/fault_zoo.py" tiny || fail=1
  bash "$SRC/tests/e2e/cuda/graph_determinism.sh" || fail=1
  bash "$SRC/tests/e2e/cuda/sticky_error.sh" || fail=1
  # Again with the device far behind: the records in flight at the fault must still be written.
  LD_EMU_LAZY=1 bash "$SRC/tests/e2e/cuda/sticky_error.sh" || fail=1
fi
exit $fail

#!/usr/bin/env bash
# gpu_check.sh — the CUDA path's checks on a GPU machine, in one go (under 5 minutes on an H200):
#   scripts/gpu_check.sh OUTDIR [BUILD_DIR [LIB_DIR]]
# BUILD_DIR (default build/) is a configured tree built with CUDA, or a pack of one made by
# scripts/gpu_pack.sh on the machine that built it; LIB_DIR holds shared libraries the machine
# lacks (a pack's lib/) and goes first on LD_LIBRARY_PATH. First the tiny preset for 2 decode steps
# (a CUDA graph), then the steps, each under its own time limit: the GPU tests, then the
# compute-sanitizer tests (meanwhile the CPU writes the qwen3-0.6b checkpoint the other steps
# share), bench_cuda, a 28-layer (qwen3-0.6b preset) reference-vs-CUDA comparison, the same
# through transformers' bf16 on this GPU (the CUDA path's error against transformers'), and
# Nsight Compute per-kernel summaries of decode and of a 512-token prefill. Writes
# OUTDIR/summary.txt and one log per step (8 files). Exit 0 when every step passed, 1 when one
# failed (a device that cannot run the tiny preset included: the steps still run, for their logs),
# 2 on bad usage or a missing piece, 77 when there is no usable CUDA device (summary.txt says why).
set -uo pipefail
usage() { echo "usage: scripts/gpu_check.sh OUTDIR [BUILD_DIR [LIB_DIR]]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 3 ]] || usage
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=$1
B=${2:-$SRC/build}
LIBDIR=${3:-}
# Python (torch, transformers) runs with the library path the script was given, not with LIB_DIR's
# runtime in front of the CUDA libraries of its own wheels.
PY_LD_PATH=${LD_LIBRARY_PATH-}
die() { echo "gpu_check: $*" >&2; exit 2; }
[[ -d $B && -f $B/CMakeCache.txt ]] || die "$B is not a configured build directory"
B=$(cd "$B" && pwd)
if [[ -n $LIBDIR ]]; then
  [[ -d $LIBDIR ]] || die "library directory $LIBDIR does not exist"
  LIBDIR=$(cd "$LIBDIR" && pwd)
  export LD_LIBRARY_PATH=$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
L=$B/src/cli/layerdiff
BENCH=$B/tests/bench/bench_cuda
for f in "$L" "$BENCH" "$B/tests/unit/cuda/test_cuda_kernels" "$B/tests/unit/cuda/test_cuda_probes"
do
  [[ -x $f ]] || die "$f is missing (build with CUDA: make build, nvcc in /usr/local/cuda)"
done
# The libraries the loader does not find. CUDA's own (cuBLAS, the runtime) may be where the
# machine's toolkit or its Python wheels keep them, off the loader's path: those directories are
# searched and added to LD_LIBRARY_PATH (the summary says which). Any other stops the script.
unfound() {
  ldd "$L" "$BENCH" "$B/tests/unit/cuda/test_cuda_kernels" 2>/dev/null |
    awk '$2 == "=>" && $3 == "not" { print $1 }' | sort -u
}
cuda_lib_dir() { # NAME: the first directory of CUDA's or of Python's nvidia wheels that holds it
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda-*/lib64 /usr/local/cuda*/lib \
           /usr/local/cuda*/targets/*/lib; do
    [[ -e $d/$1 ]] && { echo "$d"; return 0; }
  done
  python3 - "$1" 2>/dev/null <<'PY'
import glob, site, sys
for sp in site.getsitepackages():
    for p in sorted(glob.glob(sp + "/nvidia/**/" + sys.argv[1], recursive=True)):
        sys.exit(print(p.rsplit("/", 1)[0]))
sys.exit(1)
PY
}
added=
for lib in $(unfound); do
  [[ $lib == libcu* ]] || continue
  if d=$(cuda_lib_dir "$lib"); then
    export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d
    added+=" $lib in $d;"
  fi
done
missing=$(unfound | tr '\n' ' ')
[[ -z $missing ]] ||
  die "shared libraries not found (pass LIB_DIR; gpu_pack.sh puts them in its lib/): $missing"
command -v ctest >/dev/null || die "ctest not found"
[[ ! -e $OUT || -d $OUT ]] || die "$OUT exists and is not a directory"
mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
# The logs go beside summary.txt: never into the sources, the build or the libraries.
for d in "$SRC" "$B" "$LIBDIR"; do
  [[ $OUT != "$d" ]] || die "OUTDIR $OUT is one of the inputs (sources, build or LIB_DIR)"
done
S=$OUT/summary.txt
: >"$S"
say() { echo "$*" | tee -a "$S"; }
fail=0
t0=$SECONDS
mark() { t0=$SECONDS; } # a step starts: step() gives the seconds since
step() { # name rc: the result and the step's seconds
  local t="$((SECONDS - t0)) s"
  if [[ $2 -eq 0 ]]; then say "$1: ok ($t)"; else say "$1: FAILED (exit $2, $t)"; fail=1; fi
}

say "gpu_check $(date -u +%FT%TZ) on $(hostname)"
say "source $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?'), build $B"
say "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
[[ -z $added ]] || say "libraries found off the loader's path:$added"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$L" gen-model "$tmp/tiny" --preset tiny --seed 3 >/dev/null || die "gen-model failed"
# Two decode steps: the second replays the first's CUDA graph, captured with programmatic launches.
# What the run says on stderr: the prompt and tokens, then its notes (say, that the graph was
# captured again without programmatic launches) and its summary line, or its error.
probe_run() {
  # shellcheck disable=SC2069  # on purpose: stderr is the output, stdout (the tokens) goes away
  timeout 60 "$L" run --model "$tmp/tiny" --tokens 1,2 --decode 2 --backend cuda 2>&1 >/dev/null
}
mark
probe=$(probe_run)
rc=$?
if [[ $rc -eq 2 && ( $probe == *"no usable CUDA device"* || $probe == *"built without CUDA"* ) ]]
then
  say "no GPU: $probe"
  say "skipped: the GPU tests, sanitizers, bench_cuda, the 28-layer comparison and ncu need one"
  exit 77
fi
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
say "gpu: ${gpu:-unknown (no nvidia-smi)}"
# A device that is there but cannot run the tiny preset: every step still runs, for the logs that
# say why. Where it runs without programmatic launches only (say, the driver refuses them on a
# stream; a refusal inside a graph, at its capture or its launch, the library answers by capturing
# again without them), every step runs without them, and the summary says so.
step "2 decode steps of the tiny preset on the CUDA path (a graph)" $rc
grep '^run: note:' <<<"$probe" | sed 's/^/  /' | tee -a "$S"
if [[ $rc -ne 0 ]]; then
  grep -vE '^run: (prompt|tokens|note):' <<<"$probe" | head -5 | sed 's/^/  /' | tee -a "$S"
  if LAYERDIFF_CUDA_PDL=0 probe_run >/dev/null; then
    export LAYERDIFF_CUDA_PDL=0
    say "  it runs with LAYERDIFF_CUDA_PDL=0: every step below runs without programmatic launches"
  fi
fi

# The 28-layer checkpoint for steps 2 to 6, written by the CPU while the GPU tests run: the one
# bench_cuda would generate for itself (qwen3-0.6b, bf16, seed 1, in $LD_BENCH_CACHE).
Q=$tmp/qwen3-0.6b-bf16-seed1
gen_model() { # writes its own seconds: it ends while the tests run
  local s=$SECONDS
  timeout 120 "$L" gen-model "$Q" --preset qwen3-0.6b --seed 1 >"$tmp/gen.log" 2>&1
  local rc=$?
  echo $((SECONDS - s)) >"$tmp/gen.seconds"
  return $rc
}
gen_model &
gen_pid=$!
export LD_BENCH_CACHE=$tmp

# 1. GPU tests, then the compute-sanitizer tests, each set under its own limit: the sanitizer
# runs are the slow ones (racecheck over the attention kernels' shared memory), and a cut of the
# first set must not take the second with it. Each test has a limit of its own too (a slow one
# shows as its own Timeout; the rest still report).
# A build configured at other paths (built elsewhere and carried here) runs through a mirror of
# ctest's files with today's paths (scripts/ctest_carried.sh); its first line says so.
# tally LOG: how each test that ended ended, from ctest's own lines (also when the step's limit
# cut it short), then those that started and did not end.
tally() {
  local ended t total
  ended=$(grep -E '^ *[0-9]+/[0-9]+ Test +#[0-9]+: ' "$1")
  count() { grep -c -- "$1" <<<"$ended"; }
  total=$(grep -m1 -oE '/[0-9]+ Test' <<<"$ended" | tr -dc 0-9)
  say "  tests ended: $(grep -c . <<<"$ended") of ${total:-?}: passed $(count ' Passed')," \
    "skipped $(count 'Skipped'), failed $(count '\*\*\*Failed'), timed out" \
    "$(count '\*\*\*Timeout'), not run $(count 'Not Run')"
  grep -E '\*\*\*(Failed|Timeout)|Not Run' <<<"$ended" | sed 's/^ */  /' | tee -a "$S"
  for t in $(sed -nE 's/^ *Start +[0-9]+: (.*)$/\1/p' "$1"); do
    grep -qE "Test +#[0-9]+: $t " <<<"$ended" || say "  did not end: $t"
  done
}
mark
timeout 100 bash "$SRC/scripts/ctest_carried.sh" "$B" "$tmp/ctest" -L gpu -LE sanitize \
  --timeout 90 --output-on-failure -j4 >"$OUT/ctest.log" 2>&1
step "ctest -L gpu -LE sanitize" $?
grep -m1 '^ctest_carried:' "$OUT/ctest.log" | sed 's/^/  /' | tee -a "$S"
tally "$OUT/ctest.log"
mark
timeout 200 bash "$SRC/scripts/ctest_carried.sh" "$B" "$tmp/ctest-san" -L sanitize --timeout 180 \
  --output-on-failure -j6 >"$OUT/sanitize.log" 2>&1
step "ctest -L sanitize (compute-sanitizer)" $?
tally "$OUT/sanitize.log"

wait "$gen_pid"
rc=$?
t0=$((SECONDS - $(cat "$tmp/gen.seconds" 2>/dev/null || echo 0)))
step "gen-model qwen3-0.6b (while the tests ran)" $rc
[[ $rc -eq 0 ]] || tail -3 "$tmp/gen.log" | sed 's/^/  /' | tee -a "$S"

# 2. Speed (bench_cuda prints each figure as it is measured: a timeout keeps those before it).
mark
timeout 40 "$BENCH" >"$OUT/bench.log" 2>&1
step "bench_cuda" $?
sed 's/^/  /' "$OUT/bench.log" | head -30 >>"$S"

# 3. 28 layers: the fp32 reference against the CUDA path, 32-token prompt + 8 decode steps.
# shellcheck disable=SC2317  # run by timeout through bash -c
compare_28() {
  set -e
  toks=$(seq -s, 11 13 414)
  "$L" run --model "$Q" --tokens "$toks" --decode 8 --payload full --probes "$tmp/ref.jsonl" \
    --quiet
  "$L" run --model "$Q" --tokens "$toks" --decode 8 --backend cuda --payload full \
    --follow "$tmp/ref.jsonl" --probes "$tmp/cuda.jsonl" --quiet
  "$L" compare "$tmp/ref.jsonl" "$tmp/cuda.jsonl"
}
export -f compare_28
export L Q tmp
# timeout ends the whole process group (bash and the layerdiff it runs).
mark
timeout 60 bash -c compare_28 >"$OUT/compare.log" 2>&1
rc=$?
step "qwen3-0.6b reference vs cuda (28 layers)" $rc
{ grep -m1 '^verdict' "$OUT/compare.log"; grep -m1 '^First divergence' "$OUT/compare.log"; } \
  | sed 's/^/  /' | tee -a "$S"

# 4. The yardstick of the CUDA path's accuracy: the same prompt and decode tokens through
# transformers' Qwen3 in bf16 (sdpa) on this GPU (layerdiff.hf, the python/ package). Its report
# against the reference is the baseline of the regression gate, factor 1, for the CUDA path's:
# scripts/gate_ratios.py sums up the ratios ours/transformers' rel_l2, and fails the step when
# their median is over 1 or the CUDA path disagrees on NaN/Inf where transformers does not.
# A python3 without torch and transformers fails this step alone (the message says so).
# shellcheck disable=SC2317  # run by timeout through bash -c
hf_28() {
  set -e
  for f in ref cuda; do # whole streams only: a run cut by step 3's limit has no end record
    tail -n1 "$tmp/$f.jsonl" 2>/dev/null | grep -q '"status":"ok"' ||
      { echo "gpu_check: step 3's $f.jsonl did not end ok (cut short, or an error end record)"
        exit 3; }
  done
  LD_LIBRARY_PATH=$PY_LD_PATH PYTHONPATH=$SRC/python${PYTHONPATH:+:$PYTHONPATH} \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 \
    python3 -m layerdiff.hf "$Q" \
    --follow "$tmp/ref.jsonl" --probes "$tmp/hf.jsonl" --dtype bf16 --device cuda --attn sdpa \
    --payload full
  "$L" compare "$tmp/ref.jsonl" "$tmp/hf.jsonl" --json "$tmp/hf.json" --fail-on none
  "$L" compare "$tmp/ref.jsonl" "$tmp/cuda.jsonl" --baseline "$tmp/hf.json" --regress-factor 1 \
    --regress-slack 0 --fail-on none --json "$tmp/gate.json" --quiet
  python3 "$SRC/scripts/gate_ratios.py" "$tmp/gate.json" --label "cuda/transformers"
}
export -f hf_28
export SRC PY_LD_PATH
mark
timeout 60 bash -c hf_28 >"$OUT/hf.log" 2>&1
rc=$?
step "qwen3-0.6b transformers bf16 (sdpa) vs the reference, and cuda's error against it" $rc
{ grep -m1 '^verdict' "$OUT/hf.log" | sed 's/^/transformers against the reference: /'
  grep -A3 '^cuda/transformers' "$OUT/hf.log"; } | sed 's/^/  /' | tee -a "$S"
[[ $rc -eq 0 ]] || grep -v '^Loading' "$OUT/hf.log" | tail -3 | sed 's/^/  | /' | tee -a "$S"

# 5. Where the time goes: per-kernel durations of 2 decode steps alone (the run opens the
# profiler's range around them; the 16-token prefill before runs unprofiled), then of a 512-token
# prefill alone; -c covers every launch of each (counted on the emulation: docs/cuda.md,
# gpu_check). ncu prints its results only when the run ends, so each run is kept well inside its
# limit.
NCU=$(command -v ncu || true)
for d in /usr/local/cuda/bin /opt/nvidia/nsight-compute/*; do
  [[ -z $NCU && -x $d/ncu ]] && NCU=$d/ncu
done
# Each log is ncu's CSV, a row per launch; summary.txt gets its per-kernel table
# (scripts/ncu_digest.py: launches, average and total microseconds, share).
# Where ncu failed (say, no access to the performance counters), its last lines say why.
digest() { # LOG [STEPS]
  local d
  if d=$(python3 "$SRC/scripts/ncu_digest.py" "$1" ${2:+--steps "$2"} 2>&1); then
    sed 's/^/  /' <<<"$d" | tee -a "$S"
  else
    say "  no per-kernel table: $d"
    grep -v '^"' "$1" | tail -3 | sed 's/^/  | /' | tee -a "$S"
  fi
}
if [[ -n $NCU ]]; then
  # ncu's default clock control locks the clocks to base: durations read somewhat longer than
  # bench_cuda's figures.
  ncu=("$NCU" --csv --metrics gpu__time_duration.sum)
  steps=2 # the decode steps profiled: the table gives the kernel time per step
  dec=(run --model "$Q" --tokens "$(seq -s, 5 5 80)" --decode "$steps" --backend cuda --quiet)
  mark
  LAYERDIFF_CUDA_PROFILE=decode timeout 45 "${ncu[@]}" --profile-from-start off -c 400 "$L" \
    "${dec[@]}" >"$OUT/ncu.log" 2>&1
  rc=$?
  if [[ $rc -eq 0 ]] && ! grep -q gpu__time_duration "$OUT/ncu.log"; then
    say "  ncu profiled no kernel inside the decode steps' range: the whole run instead (prefill" \
      "and decode mixed)"
    timeout 45 "${ncu[@]}" -c 800 "$L" "${dec[@]}" >"$OUT/ncu.log" 2>&1
    rc=$?
    steps=
  fi
  step "ncu per-kernel summary, decode" $rc
  digest "$OUT/ncu.log" ${steps:+"$steps"}
  mark
  timeout 25 "${ncu[@]}" -c 400 "$L" run --model "$Q" --tokens "$(seq -s, 7 7 3584)" \
    --backend cuda --quiet >"$OUT/ncu_prefill.log" 2>&1
  step "ncu per-kernel summary, prefill 512" $?
  digest "$OUT/ncu_prefill.log"
else
  say "ncu: skipped (not on PATH, in /usr/local/cuda/bin or /opt/nvidia/nsight-compute)"
fi
say "total: $SECONDS s (the aim: under 300 s on an H200)"
say "files: $(find "$OUT" -maxdepth 1 -type f -printf '%f ')"
exit $fail
